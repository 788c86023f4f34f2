//! Architecture specs: TOML files (ir_specs/) that say how GGUF metadata and
//! tensor names become a graph. The built-in ones are embedded in the binary;
//! `--spec FILE` can add or replace one.
//!
//! A spec may say `extends = "<built-in name>"`: its tables are merged over
//! the base spec's, key by key (a table merges, any other value replaces).

use std::collections::BTreeMap;
use std::path::Path;

use serde::Deserialize;

use super::error::{FrontendError, Result};
use super::wiring::{self, Statement};
use crate::ir::RopeStyle;

/// The specs compiled into the binary, by name.
/// Refinements are tried in this order: Mixtral comes before Mistral,
/// since a Mixtral file's name usually mentions "mistral" too (its
/// `expert_count` key is what tells them apart).
const BUILTIN: [(&str, &str); 9] = [
    ("llama", include_str!("../../ir_specs/llama.toml")),
    ("qwen2", include_str!("../../ir_specs/qwen2.toml")),
    ("mixtral", include_str!("../../ir_specs/mixtral.toml")),
    ("mistral", include_str!("../../ir_specs/mistral.toml")),
    ("gemma3", include_str!("../../ir_specs/gemma3.toml")),
    ("gemma2", include_str!("../../ir_specs/gemma2.toml")),
    ("qwen3", include_str!("../../ir_specs/qwen3.toml")),
    ("phi3", include_str!("../../ir_specs/phi3.toml")),
    ("qwen3moe", include_str!("../../ir_specs/qwen3moe.toml")),
];

/// One architecture, as its spec file describes it.
#[derive(Debug, Clone)]
pub struct ArchSpec {
    pub name: String,
    pub detect: DetectRule,
    pub hparams: HParamKeys,
    pub rope: RopeRule,
    /// What the architecture fixes that its files leave out.
    pub defaults: Defaults,
    /// Named numbers the wiring may use (`scale(x, embed_scale)`), each an
    /// expression over the hparams ([`super::constants`]).
    pub constants: BTreeMap<String, String>,
    /// Named column counts for `slice(x, start, len)`, each a shape
    /// expression over the hparams (Phi-3: where q, k, v start in the
    /// fused projection).
    pub dims: BTreeMap<String, String>,
    /// Tensors by alias.
    pub tensors: BTreeMap<String, TensorRule>,
    pub graph: GraphWiring,
}

/// Values llama.cpp fills in for an architecture because its files do not
/// carry them (Gemma 3: the global-layer pattern, the local RoPE base), in
/// one table of the spec rather than in code. Absent: the plain decoder.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Defaults {
    /// Every `n`-th layer (layers `l` with `(l + 1) % n == 0`) attends to the
    /// whole context; the others use the sliding window. Absent: every layer
    /// uses the window, if the file gives one.
    pub sliding_window_pattern: Option<u32>,
    /// RoPE base of the sliding-window layers (the global ones use the
    /// file's `rope.freq_base`). Absent: one base for all layers.
    pub rope_local_base: Option<f32>,
    /// The attention's q·k multiplier, an expression such as
    /// `1/sqrt(head_dim)` (the default).
    pub attention_scale: Option<String>,
    /// `attention_scale` for files of a given layer count, where a model
    /// size differs (llama.cpp: Gemma 2 27B, 46 layers, uses
    /// `1/sqrt(d_model/n_heads)`).
    #[serde(default)]
    pub attention_scale_for_layers: BTreeMap<String, String>,
    /// The sliding window where the file gives none (Gemma 2: 4096).
    pub sliding_window: Option<u32>,
    /// Attention logit soft-cap where the file gives none (Gemma 2: 50).
    pub attn_softcap: Option<f32>,
    /// Final logit soft-cap where the file gives none (Gemma 2: 30).
    pub final_softcap: Option<f32>,
}

/// When a file is this architecture.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DetectRule {
    /// `general.architecture` values that choose this spec outright.
    #[serde(default)]
    pub architectures: Vec<String>,
    /// Chooses this spec over another for files of `architecture` when any
    /// hint holds (Mistral files that say `llama`).
    #[serde(default)]
    pub refine: Option<RefineRule>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RefineRule {
    pub architecture: String,
    /// Case-insensitive substrings of `general.name` or `general.basename`.
    #[serde(default)]
    pub name_contains: Vec<String>,
    /// Metadata keys (`{arch}` substituted) whose presence chooses this spec.
    #[serde(default)]
    pub has_key: Vec<String>,
}

/// The metadata key of each hparam (`{arch}` = the file's architecture).
/// Optional ones have documented defaults in [`super::config`].
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HParamKeys {
    pub n_layer: String,
    pub d_model: String,
    pub n_heads: String,
    pub n_kv_heads: Option<String>,
    pub head_dim: Option<String>,
    pub ffn: String,
    pub rms_eps: String,
    pub context_length: String,
    pub vocab: Option<String>,
    pub rope_base: Option<String>,
    pub rope_dims: Option<String>,
    pub rope_scaling_type: Option<String>,
    pub rope_scaling_factor: Option<String>,
    pub rope_scaling_orig_ctx: Option<String>,
    pub rope_yarn_beta_fast: Option<String>,
    pub rope_yarn_beta_slow: Option<String>,
    /// cos/sin multiplier of LongRoPE (`rope.scaling.attn_factor`).
    pub rope_scaling_attn_factor: Option<String>,
    pub sliding_window: Option<String>,
    /// Experts of each mixture-of-experts layer (absent: a dense model).
    pub n_expert: Option<String>,
    /// Experts each token is routed to (the router's top-k).
    pub n_expert_used: Option<String>,
    /// Rows of each expert's gate/up matrix (absent: `ffn`; Mixtral's
    /// files give only `feed_forward_length`).
    pub expert_ffn: Option<String>,
    /// Gemma 2's soft-caps: of the attention's scaled q·k and of the
    /// final logits (`cap·tanh(x / cap)`).
    pub attn_softcap: Option<String>,
    pub final_softcap: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RopeRule {
    #[serde(with = "rope_style")]
    pub style: RopeStyle,
    pub base_default: f32,
    /// LongRoPE's two sets of per-pair divisors, by tensor alias. When the
    /// file has them, the wiring's `rope_factors` names the long set if
    /// the graph is built for sequences longer than
    /// `rope.scaling.original_context_length`, else the short one (as
    /// llama.cpp's `get_rope_factors` picks by context size).
    pub longrope: Option<LongRopeRule>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LongRopeRule {
    pub long: String,
    pub short: String,
}

/// A tensor the wiring refers to by alias.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TensorRule {
    /// GGUF name; `{l}` is the layer number.
    pub name: String,
    /// IR shape (rows first), each dim a product/quotient of hparams and numbers.
    pub shape: Vec<String>,
    /// The alias to use when this tensor is absent (tied output embedding).
    pub fallback: Option<String>,
    /// Present in a file, the tensor means a feature we lack: the build
    /// fails with this reason (Phi-3's LongRoPE factors).
    pub unsupported: Option<String>,
}

impl TensorRule {
    pub fn is_per_layer(&self) -> bool {
        self.name.contains("{l}")
    }

    pub fn gguf_name(&self, layer: Option<u32>) -> String {
        match layer {
            Some(l) => self.name.replace("{l}", &l.to_string()),
            None => self.name.clone(),
        }
    }
}

/// The statements of each section of the graph, parsed.
#[derive(Debug, Clone)]
pub struct GraphWiring {
    pub embed: Vec<Statement>,
    pub layer: Vec<Statement>,
    pub head: Vec<Statement>,
    pub outputs: Vec<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSpec {
    name: String,
    detect: DetectRule,
    hparams: HParamKeys,
    rope: RopeRule,
    #[serde(default)]
    defaults: Defaults,
    #[serde(default)]
    constants: BTreeMap<String, String>,
    #[serde(default)]
    dims: BTreeMap<String, String>,
    tensors: BTreeMap<String, TensorRule>,
    graph: RawGraph,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawGraph {
    embed: String,
    layer: String,
    head: String,
    outputs: Vec<String>,
}

mod rope_style {
    use serde::{Deserialize, Deserializer};

    use crate::ir::RopeStyle;

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<RopeStyle, D::Error> {
        match String::deserialize(d)?.as_str() {
            "normal" => Ok(RopeStyle::Normal),
            "neox" => Ok(RopeStyle::Neox),
            other => Err(serde::de::Error::custom(format!(
                "rope style {other:?}: expected \"normal\" or \"neox\""
            ))),
        }
    }
}

impl ArchSpec {
    /// Every built-in spec.
    pub fn builtin() -> Vec<ArchSpec> {
        BUILTIN
            .iter()
            .map(|(name, _)| Self::builtin_named(name).expect("built-in specs are valid"))
            .collect()
    }

    /// The built-in spec `name`.
    pub fn builtin_named(name: &str) -> Result<ArchSpec> {
        let text = builtin_text(name).ok_or_else(|| {
            FrontendError::spec(
                name,
                format!("no built-in spec (known: {})", builtin_names()),
            )
        })?;
        Self::from_toml(name, text)
    }

    /// Parses a spec; `origin` names it in errors (a file name or built-in name).
    pub fn from_toml(origin: &str, text: &str) -> Result<ArchSpec> {
        let table = resolve_extends(origin, text, 0)?;
        let raw: RawSpec = toml::Value::Table(table)
            .try_into()
            .map_err(|e: toml::de::Error| FrontendError::spec(origin, e.to_string()))?;
        let parse = |section: &str, text: &str| {
            wiring::parse_statements(text)
                .map_err(|e| FrontendError::spec(&raw.name, format!("graph.{section}: {e}")))
        };
        let graph = GraphWiring {
            embed: parse("embed", &raw.graph.embed)?,
            layer: parse("layer", &raw.graph.layer)?,
            head: parse("head", &raw.graph.head)?,
            outputs: raw.graph.outputs,
        };
        let spec = ArchSpec {
            name: raw.name,
            detect: raw.detect,
            hparams: raw.hparams,
            rope: raw.rope,
            defaults: raw.defaults,
            constants: raw.constants,
            dims: raw.dims,
            tensors: raw.tensors,
            graph,
        };
        spec.check_aliases()?;
        Ok(spec)
    }

    /// Reads a spec file (`--spec FILE`).
    pub fn from_file(path: &Path) -> Result<ArchSpec> {
        let text = std::fs::read_to_string(path).map_err(|source| FrontendError::SpecFile {
            path: path.to_path_buf(),
            source,
        })?;
        Self::from_toml(&path.display().to_string(), &text)
    }

    /// Fallbacks and LongRoPE factor sets must name tensors of the spec.
    fn check_aliases(&self) -> Result<()> {
        if let Some(lr) = &self.rope.longrope {
            for a in [&lr.long, &lr.short] {
                if !self.tensors.contains_key(a) {
                    return Err(FrontendError::spec(
                        &self.name,
                        format!("rope.longrope: {a:?} is not a tensor alias"),
                    ));
                }
            }
        }
        for (alias, rule) in &self.tensors {
            if let Some(f) = &rule.fallback {
                if !self.tensors.contains_key(f) {
                    return Err(FrontendError::spec(
                        &self.name,
                        format!("tensor {alias}: fallback {f:?} is not a tensor alias"),
                    ));
                }
            }
        }
        Ok(())
    }
}

fn builtin_text(name: &str) -> Option<&'static str> {
    BUILTIN.iter().find(|(n, _)| *n == name).map(|(_, t)| *t)
}

/// The built-in spec names, comma-separated (for error messages).
pub fn builtin_names() -> String {
    BUILTIN.map(|(n, _)| n).join(", ")
}

/// The spec's table with its `extends` chain merged in (base first).
fn resolve_extends(origin: &str, text: &str, depth: usize) -> Result<toml::Table> {
    let mut table: toml::Table = text
        .parse()
        .map_err(|e: toml::de::Error| FrontendError::spec(origin, e.to_string()))?;
    let Some(base) = table.remove("extends") else {
        return Ok(table);
    };
    let base = base
        .as_str()
        .ok_or_else(|| FrontendError::spec(origin, "extends must be a spec name"))?
        .to_string();
    let base_text = builtin_text(&base).ok_or_else(|| {
        FrontendError::spec(
            origin,
            format!(
                "extends {base:?}: no such built-in spec (known: {})",
                builtin_names()
            ),
        )
    })?;
    if depth > BUILTIN.len() {
        return Err(FrontendError::spec(origin, "extends chain loops"));
    }
    let mut merged = resolve_extends(&base, base_text, depth + 1)?;
    // A refinement belongs to the spec that states it, never to its children.
    if let Some(toml::Value::Table(d)) = merged.get_mut("detect") {
        d.remove("refine");
    }
    merge(&mut merged, table);
    Ok(merged)
}

fn merge(base: &mut toml::Table, over: toml::Table) {
    for (k, v) in over {
        match (base.get_mut(&k), v) {
            (Some(toml::Value::Table(b)), toml::Value::Table(o)) => merge(b, o),
            (_, v) => {
                base.insert(k, v);
            }
        }
    }
}
