//! The model's hyperparameters, read from GGUF metadata through a spec's
//! key table, with the defaults llama.cpp uses for absent optional keys.

use super::error::{FrontendError, Result};
use super::spec::ArchSpec;
use crate::gguf::{GgufFile, Metadata};
use crate::ir::{AttentionSpec, RopeScaling, RopeSpec};

/// YaRN's defaults when the file does not give them (llama.cpp's).
const YARN_BETA_FAST: f32 = 32.0;
const YARN_BETA_SLOW: f32 = 1.0;

/// Every hyperparameter the graph and the executors need.
#[derive(Debug, Clone, PartialEq)]
pub struct ModelConfig {
    /// The spec that built the graph (`llama`, `qwen2`, `mistral`, ...).
    pub arch: String,
    /// The file's `general.architecture` (Mistral files often say `llama`).
    pub gguf_arch: String,
    pub n_layer: usize,
    pub d_model: usize,
    pub n_heads: usize,
    pub n_kv_heads: usize,
    pub head_dim: usize,
    pub ffn: usize,
    /// Experts per mixture-of-experts layer (0: a dense model).
    pub n_expert: usize,
    /// Experts each token is routed to (0: a dense model).
    pub n_expert_used: usize,
    /// Rows of each expert's gate/up matrix (`ffn` unless the file says).
    pub expert_ffn: usize,
    /// Rows of the embedding (may exceed the tokenizer's vocabulary).
    pub vocab: usize,
    pub rms_eps: f32,
    pub rope: RopeSpec,
    /// Sliding attention window in positions, if any.
    pub window: Option<u32>,
    /// With a window: every `n`-th layer attends globally (spec
    /// `[defaults] sliding_window_pattern`); `None`: all layers use it.
    pub window_pattern: Option<u32>,
    /// RoPE base of the sliding-window layers when it differs from
    /// `rope.base` (spec `[defaults] rope_local_base`).
    pub rope_local_base: Option<f32>,
    /// The attention's q·k multiplier (spec `[defaults] attention_scale`,
    /// else `1/sqrt(head_dim)`).
    pub attn_scale: f32,
    /// Soft-cap of the attention's scaled q·k (Gemma 2), if any.
    pub attn_softcap: Option<f32>,
    /// Soft-cap of the final logits (Gemma 2), if any: the wiring's
    /// `softcap(x, final_softcap)`.
    pub final_softcap: Option<f32>,
    /// The output projection reuses `token_embd` (no `output.weight`).
    pub tied_output: bool,
    pub context_length: usize,
    /// The longest sequence the graph is built for (llama.cpp's
    /// `n_ctx_seq`): the file's `context_length` unless a loader says less.
    /// It picks LongRoPE's factor set.
    pub seq_context: usize,
    /// LongRoPE's factor sets, when the spec names them and the file has
    /// them.
    pub longrope: Option<LongRope>,
    /// Aliases of the spec's optional tensors that the file has (e.g.
    /// `attn_q_bias`, `rope_freqs`).
    pub optional_tensors: Vec<String>,
}

/// LongRoPE's two factor sets (tensor aliases) and the context they split at.
#[derive(Debug, Clone, PartialEq)]
pub struct LongRope {
    pub long: String,
    pub short: String,
    /// `rope.scaling.original_context_length` (absent: `context_length`).
    pub orig_ctx: usize,
}

impl ModelConfig {
    /// The factor set the wiring's `rope_factors` names: the long one for
    /// sequences longer than the original context (llama.cpp compares its
    /// `n_ctx_seq`, a multiple of 256, strictly; ours is a multiple of the
    /// KV page, so the two agree whenever `orig_ctx` is a multiple of 256).
    pub fn rope_factors(&self) -> Option<&str> {
        let lr = self.longrope.as_ref()?;
        Some(if self.seq_context > lr.orig_ctx {
            &lr.long
        } else {
            &lr.short
        })
    }

    /// Columns of the query projection (`n_heads * head_dim`).
    pub fn q_dim(&self) -> usize {
        self.n_heads * self.head_dim
    }

    /// Columns of the key (and value) projection (`n_kv_heads * head_dim`).
    pub fn kv_dim(&self) -> usize {
        self.n_kv_heads * self.head_dim
    }

    /// Whether `layer` attends through the sliding window (Gemma 3: all but
    /// every `window_pattern`-th layer; others: every layer, if windowed).
    pub fn is_local(&self, layer: u32) -> bool {
        self.window.is_some()
            && self
                .window_pattern
                .is_none_or(|n| !(layer + 1).is_multiple_of(n))
    }

    /// The attention of `layer`: its window depends on the layer pattern.
    pub fn attention(&self, layer: u32) -> AttentionSpec {
        AttentionSpec {
            n_heads: self.n_heads as u32,
            n_kv_heads: self.n_kv_heads as u32,
            head_dim: self.head_dim as u32,
            scale: self.attn_scale,
            window: self.window.filter(|_| self.is_local(layer)),
            softcap: self.attn_softcap,
        }
    }

    /// The RoPE of `layer`: sliding-window layers may have their own base.
    pub fn rope_for(&self, layer: u32) -> RopeSpec {
        match self.rope_local_base {
            Some(base) if self.is_local(layer) => RopeSpec { base, ..self.rope },
            _ => self.rope,
        }
    }

    /// The value of a hparam by the name spec shapes use, if there is one.
    pub fn hparam(&self, name: &str) -> Option<u64> {
        Some(match name {
            "n_layer" => self.n_layer,
            "d_model" => self.d_model,
            "n_heads" => self.n_heads,
            "n_kv_heads" => self.n_kv_heads,
            "head_dim" => self.head_dim,
            "ffn" => self.ffn,
            "n_expert" => self.n_expert,
            "n_expert_used" => self.n_expert_used,
            "expert_ffn" => self.expert_ffn,
            "vocab" => self.vocab,
            "context_length" => self.context_length,
            "rope_dims" => self.rope.n_rot as usize,
            _ => return None,
        } as u64)
    }

    /// Reads the hparams of `file` as `spec` names them. `vocab` falls back
    /// to the rows of `token_embd` when the spec's key is absent.
    pub fn from_gguf(file: &GgufFile, spec: &ArchSpec) -> Result<ModelConfig> {
        let gguf_arch = file.metadata().get_str("general.architecture")?.to_string();
        let r = Reader {
            md: file.metadata(),
            arch: &gguf_arch,
        };
        let k = &spec.hparams;
        let n_layer = r.count(&k.n_layer)?;
        let d_model = r.count(&k.d_model)?;
        let n_heads = r.count(&k.n_heads)?;
        let n_kv_heads = r.opt_count(k.n_kv_heads.as_deref())?.unwrap_or(n_heads);
        let head_dim = match r.opt_count(k.head_dim.as_deref())? {
            Some(hd) => hd,
            None => r.divide(&k.d_model, d_model, n_heads)?,
        };
        if n_heads % n_kv_heads != 0 {
            return Err(r.bad(
                k.n_kv_heads.as_deref().unwrap_or(&k.n_heads),
                format!("{n_heads} query heads are not a multiple of {n_kv_heads} KV heads"),
            ));
        }
        let rope = read_rope(&r, spec, head_dim)?;
        let vocab = match r.opt_count(k.vocab.as_deref())? {
            Some(v) => v,
            None => embedding_rows(file, spec)?,
        };
        let ffn = r.count(&k.ffn)?;
        let n_expert = r.opt_count(k.n_expert.as_deref())?.unwrap_or(0);
        let n_expert_used = r.opt_count(k.n_expert_used.as_deref())?.unwrap_or(0);
        if n_expert_used > n_expert {
            return Err(r.bad(
                k.n_expert_used.as_deref().unwrap_or("n_expert_used"),
                format!("{n_expert_used} experts per token of {n_expert}"),
            ));
        }
        let mut cfg = ModelConfig {
            arch: spec.name.clone(),
            n_layer,
            d_model,
            n_heads,
            n_kv_heads,
            head_dim,
            ffn,
            n_expert,
            n_expert_used,
            expert_ffn: r.opt_count(k.expert_ffn.as_deref())?.unwrap_or(ffn),
            vocab,
            rms_eps: r.f32(&k.rms_eps)?,
            rope,
            window: r
                .opt_count(k.sliding_window.as_deref())?
                .map(|w| w as u32)
                .or(spec.defaults.sliding_window),
            window_pattern: spec.defaults.sliding_window_pattern,
            rope_local_base: spec.defaults.rope_local_base,
            attn_scale: 1.0 / (head_dim as f32).sqrt(),
            attn_softcap: r
                .opt_f32(k.attn_softcap.as_deref())?
                .or(spec.defaults.attn_softcap),
            final_softcap: r
                .opt_f32(k.final_softcap.as_deref())?
                .or(spec.defaults.final_softcap),
            tied_output: false,
            context_length: r.count(&k.context_length)?,
            seq_context: 0,
            longrope: None,
            optional_tensors: Vec::new(),
            gguf_arch: gguf_arch.clone(),
        };
        cfg.seq_context = cfg.context_length;
        cfg.longrope = read_longrope(&r, file, spec, cfg.context_length)?;
        if cfg.longrope.is_some() && cfg.rope.scaling == RopeScaling::None {
            cfg.rope.scaling = longrope_scaling(&r, spec)?;
        }
        if cfg.window_pattern == Some(0) {
            return Err(FrontendError::spec(
                &spec.name,
                "defaults.sliding_window_pattern must be at least 1",
            ));
        }
        let by_layers = spec
            .defaults
            .attention_scale_for_layers
            .get(&n_layer.to_string());
        if let Some(expr) = by_layers.or(spec.defaults.attention_scale.as_ref()) {
            cfg.attn_scale = super::constants::eval(expr, &cfg).map_err(|e| {
                FrontendError::spec(&spec.name, format!("defaults.attention_scale: {e}"))
            })?;
        }
        Ok(cfg)
    }
}

/// Metadata access with `{arch}` substituted into key patterns.
struct Reader<'a> {
    md: &'a Metadata,
    arch: &'a str,
}

impl Reader<'_> {
    fn key(&self, pattern: &str) -> String {
        pattern.replace("{arch}", self.arch)
    }

    fn bad(&self, pattern: &str, message: String) -> FrontendError {
        FrontendError::BadHParam {
            key: self.key(pattern),
            message,
        }
    }

    /// A positive count (u32/u64/... in the file).
    fn count(&self, pattern: &str) -> Result<usize> {
        let key = self.key(pattern);
        let n = self.md.get_usize(&key)?;
        if n == 0 || n > u32::MAX as usize {
            return Err(self.bad(pattern, format!("{n} is out of range")));
        }
        Ok(n)
    }

    fn opt_count(&self, pattern: Option<&str>) -> Result<Option<usize>> {
        match pattern {
            Some(p) if self.md.get(&self.key(p)).is_some() => self.count(p).map(Some),
            _ => Ok(None),
        }
    }

    fn f32(&self, pattern: &str) -> Result<f32> {
        let v = self.md.get_f32(&self.key(pattern))?;
        if !v.is_finite() || v <= 0.0 {
            return Err(self.bad(pattern, format!("{v} is not a positive number")));
        }
        Ok(v)
    }

    fn opt_f32(&self, pattern: Option<&str>) -> Result<Option<f32>> {
        match pattern {
            Some(p) if self.md.get(&self.key(p)).is_some() => self.f32(p).map(Some),
            _ => Ok(None),
        }
    }

    fn opt_str(&self, pattern: Option<&str>) -> Result<Option<&str>> {
        let Some(key) = pattern.map(|p| self.key(p)) else {
            return Ok(None);
        };
        if self.md.get(&key).is_none() {
            return Ok(None);
        }
        Ok(Some(self.md.get_str(&key)?))
    }

    fn divide(&self, pattern: &str, total: usize, parts: usize) -> Result<usize> {
        if !total.is_multiple_of(parts) {
            return Err(self.bad(
                pattern,
                format!("{total} is not divisible into {parts} heads"),
            ));
        }
        Ok(total / parts)
    }
}

fn read_rope(r: &Reader, spec: &ArchSpec, head_dim: usize) -> Result<RopeSpec> {
    let k = &spec.hparams;
    let n_rot = r.opt_count(k.rope_dims.as_deref())?.unwrap_or(head_dim);
    if n_rot > head_dim || n_rot % 2 != 0 {
        let key = k.rope_dims.as_deref().unwrap_or("rope_dims");
        return Err(r.bad(key, format!("{n_rot} rotated dims for head dim {head_dim}")));
    }
    let base = r
        .opt_f32(k.rope_base.as_deref())?
        .unwrap_or(spec.rope.base_default);
    Ok(RopeSpec {
        head_dim: head_dim as u32,
        n_rot: n_rot as u32,
        base,
        style: spec.rope.style,
        scaling: read_scaling(r, spec)?,
    })
}

fn read_scaling(r: &Reader, spec: &ArchSpec) -> Result<RopeScaling> {
    let k = &spec.hparams;
    let ty = r.opt_str(k.rope_scaling_type.as_deref())?;
    let factor = || -> Result<f32> {
        let key = k
            .rope_scaling_factor
            .as_deref()
            .unwrap_or("rope_scaling_factor");
        r.f32(key)
    };
    Ok(match ty {
        None | Some("none") => RopeScaling::None,
        Some("longrope") => longrope_scaling(r, spec)?,
        Some("linear") => RopeScaling::Linear { factor: factor()? },
        Some("yarn") => RopeScaling::Yarn {
            factor: factor()?,
            orig_ctx: r.count(
                k.rope_scaling_orig_ctx
                    .as_deref()
                    .unwrap_or("rope_scaling_orig_ctx"),
            )? as u32,
            beta_fast: r
                .opt_f32(k.rope_yarn_beta_fast.as_deref())?
                .unwrap_or(YARN_BETA_FAST),
            beta_slow: r
                .opt_f32(k.rope_yarn_beta_slow.as_deref())?
                .unwrap_or(YARN_BETA_SLOW),
        },
        Some(other) => {
            let key = k.rope_scaling_type.as_deref().unwrap_or_default();
            return Err(r.bad(
                key,
                format!("rope scaling {other:?} is not supported (none, linear, yarn, longrope)"),
            ));
        }
    })
}

/// The spec's LongRoPE factor sets, if the file has either. (An artifact
/// keeps only the set its graph reads; a file whose needed set is missing
/// fails when the graph is built, naming it.)
fn read_longrope(
    r: &Reader,
    file: &GgufFile,
    spec: &ArchSpec,
    context_length: usize,
) -> Result<Option<LongRope>> {
    let Some(lr) = &spec.rope.longrope else {
        return Ok(None);
    };
    let present = |alias: &str| {
        spec.tensors
            .get(alias)
            .is_some_and(|t| file.has_tensor(&t.gguf_name(None)))
    };
    if !present(&lr.long) && !present(&lr.short) {
        return Ok(None);
    }
    let orig = r.opt_count(spec.hparams.rope_scaling_orig_ctx.as_deref())?;
    Ok(Some(LongRope {
        long: lr.long.clone(),
        short: lr.short.clone(),
        orig_ctx: orig.unwrap_or(context_length),
    }))
}

/// LongRoPE's cos/sin multiplier: `rope.scaling.attn_factor` (the
/// converter writes `sqrt(1 + ln(scale) / ln(orig_ctx))`), absent 1.
fn longrope_scaling(r: &Reader, spec: &ArchSpec) -> Result<RopeScaling> {
    let attn_factor = r
        .opt_f32(spec.hparams.rope_scaling_attn_factor.as_deref())?
        .unwrap_or(1.0);
    Ok(RopeScaling::LongRope { attn_factor })
}

/// Rows of the spec's `token_embd` tensor (GGUF dims are ne0 first).
fn embedding_rows(file: &GgufFile, spec: &ArchSpec) -> Result<usize> {
    let rule = spec.tensors.get("token_embd").ok_or_else(|| {
        FrontendError::spec(
            &spec.name,
            "no vocab key and no token_embd tensor to size it",
        )
    })?;
    let name = rule.gguf_name(None);
    let info = file
        .tensor_info(&name)
        .ok_or_else(|| FrontendError::MissingTensor {
            name: name.clone(),
            alias: "token_embd".into(),
        })?;
    match info.dims.as_slice() {
        [_, rows] => Ok(*rows as usize),
        dims => Err(FrontendError::TensorShape {
            name,
            expected: vec![],
            found: dims.iter().rev().copied().collect(),
            rule: "a 2-D embedding table".into(),
        }),
    }
}
