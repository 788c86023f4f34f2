//! `rfc synth`: GGUF models with random weights and exact real layouts.
//!
//! - `rfc synth qwen05b|llama8b OUT.gguf [--layers N]`: the speed-test models
//!   of shared/tools/mk_synthetic_gguf.py (prints the same JSON summary);
//! - `rfc synth --layout LAYOUT.json OUT.gguf`: any model's layout as
//!   `rfc inspect MODEL.gguf --json --full` prints it;
//! - `rfc synth tiny --arch llama|qwen2|mistral|...|qwen3moe|mixtral [...] OUT.gguf`: a tiny
//!   model for correctness tests.

use std::path::PathBuf;

use rocmforge::quant::GgmlType;
use rocmforge::synth::layout::Layout;
use rocmforge::synth::{Fill, Preset, RoleTypes, TinyArch, TinySpec};

use super::CmdResult;

#[derive(Debug, clap::Args)]
#[command(
    override_usage = "rfc synth qwen05b|llama8b OUT.gguf [--layers N] [--type TY]\n       \
                      rfc synth --layout LAYOUT.json OUT.gguf\n       \
                      rfc synth tiny --arch llama|qwen2|mistral|qwen3|gemma3|phi3|qwen3moe|mixtral [OPTIONS] OUT.gguf"
)]
pub struct SynthArgs {
    /// `qwen05b`, `llama8b` or `tiny`, then the output file (only the output
    /// file with --layout).
    #[arg(required = true, num_args = 1..=2, value_name = "WHAT OUT")]
    pub positional: Vec<String>,
    /// Copy the layout printed by `rfc inspect MODEL --json --full`.
    #[arg(long, value_name = "LAYOUT.json")]
    pub layout: Option<PathBuf>,
    /// Layer count (presets and tiny models).
    #[arg(long)]
    pub layers: Option<usize>,
    /// Seed of the random weights.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    #[command(flatten)]
    pub tiny: TinyArgs,
}

/// Settings of `rfc synth tiny` (defaults: TinySpec::default()).
#[derive(Debug, clap::Args)]
pub struct TinyArgs {
    /// llama, qwen2, mistral, qwen3, gemma3, phi3, qwen3moe or mixtral.
    #[arg(long, value_parser = parse_arch)]
    pub arch: Option<TinyArch>,
    #[arg(long)]
    pub heads: Option<usize>,
    #[arg(long)]
    pub kv_heads: Option<usize>,
    /// Model width.
    #[arg(long)]
    pub d: Option<usize>,
    #[arg(long)]
    pub ffn: Option<usize>,
    /// Vocabulary size (at least 259: 256 byte tokens plus specials).
    #[arg(long)]
    pub vocab: Option<usize>,
    /// Type of every matrix: F32, F16, Q8_0, Q4_0, Q4_K, Q6_K, ...
    #[arg(long = "type", value_parser = parse_type)]
    pub ty: Option<GgmlType>,
    /// Type of token_embd where it differs from --type (a mixed file).
    #[arg(long = "embd-type", value_parser = parse_type)]
    pub embd_ty: Option<GgmlType>,
    /// Type of the output projection where it differs from --type.
    #[arg(long = "output-type", value_parser = parse_type)]
    pub output_ty: Option<GgmlType>,
    /// Output projection tied to token_embd.
    #[arg(long)]
    pub tied: bool,
    /// q/k/v biases.
    #[arg(long)]
    pub bias: bool,
    /// Sliding-window attention of N tokens (mistral; gemma3: every layer but each 6th).
    #[arg(long, value_name = "N")]
    pub window: Option<u32>,
    /// A Llama-3.1-style `rope_freqs.weight` (per-pair RoPE frequency divisors).
    #[arg(long)]
    pub rope_freqs: bool,
    /// YaRN RoPE scaling: FACTOR,ORIGINAL_CONTEXT (rope.scaling.type = yarn).
    #[arg(long, value_name = "FACTOR,CTX", value_parser = parse_yarn)]
    pub yarn: Option<(f32, u32)>,
    /// LongRoPE factor sets (phi3): the original context length (the
    /// file's is 512; rope.scaling.attn_factor follows from the two).
    #[arg(long, value_name = "ORIGINAL_CONTEXT")]
    pub longrope: Option<u32>,
    /// Experts per layer (qwen3moe, mixtral; default 4).
    #[arg(long, value_name = "N")]
    pub experts: Option<usize>,
    /// Experts each token is routed to (qwen3moe, mixtral; default 2).
    #[arg(long, value_name = "K")]
    pub experts_used: Option<usize>,
}

impl TinyArgs {
    fn any_given(&self) -> bool {
        self.arch.is_some()
            || self.heads.is_some()
            || self.kv_heads.is_some()
            || self.d.is_some()
            || self.ffn.is_some()
            || self.vocab.is_some()
            || self.ty.is_some()
            || self.embd_ty.is_some()
            || self.output_ty.is_some()
            || self.tied
            || self.bias
            || self.window.is_some()
            || self.rope_freqs
            || self.yarn.is_some()
            || self.longrope.is_some()
            || self.experts.is_some()
            || self.experts_used.is_some()
    }

    fn spec(&self, layers: Option<usize>) -> TinySpec {
        let arch = self.arch.unwrap_or(TinyArch::Llama);
        let base = TinySpec::for_type(arch, self.ty.unwrap_or(GgmlType::F32));
        TinySpec {
            n_heads: self.heads.unwrap_or(base.n_heads),
            n_kv_heads: self.kv_heads.unwrap_or(base.n_kv_heads),
            d_model: self.d.unwrap_or(base.d_model),
            ffn: self.ffn.unwrap_or(base.ffn),
            n_layers: layers.unwrap_or(base.n_layers),
            n_vocab: self.vocab.unwrap_or(base.n_vocab),
            embd_ty: self.embd_ty,
            output_ty: self.output_ty,
            tied: self.tied,
            bias: self.bias,
            window: self.window,
            rope_freqs: self.rope_freqs,
            yarn: self.yarn,
            longrope: self.longrope,
            n_experts: self.experts.unwrap_or(base.n_experts),
            experts_used: self.experts_used.unwrap_or(base.experts_used),
            ..base
        }
    }
}

fn parse_arch(s: &str) -> Result<TinyArch, String> {
    TinyArch::from_name(s).ok_or_else(|| {
        let known: Vec<_> = TinyArch::ALL.iter().map(|a| a.name()).collect();
        format!("unknown architecture {s:?} ({})", known.join(", "))
    })
}

fn parse_yarn(s: &str) -> Result<(f32, u32), String> {
    let bad = || format!("--yarn {s:?}: expected FACTOR,ORIGINAL_CONTEXT such as 4,64");
    let (f, c) = s.split_once(',').ok_or_else(bad)?;
    let factor: f32 = f.trim().parse().map_err(|_| bad())?;
    let ctx: u32 = c.trim().parse().map_err(|_| bad())?;
    if !(factor > 1.0 && factor.is_finite()) || ctx == 0 {
        return Err(bad());
    }
    Ok((factor, ctx))
}

fn parse_type(s: &str) -> Result<GgmlType, String> {
    GgmlType::from_name(s).ok_or_else(|| format!("unknown tensor type {s:?}"))
}

pub fn run(mut args: SynthArgs) -> CmdResult {
    let pos = &args.positional;
    if let Some(layout) = &args.layout {
        let [out] = pos.as_slice() else {
            return Err("with --layout, give only the output file".into());
        };
        if args.tiny.any_given() || args.layers.is_some() {
            return Err(
                "--layout copies a layout: tiny-model options and --layers do not apply".into(),
            );
        }
        Layout::read(layout)?.write_file(args.seed, out.as_ref())?;
        println!(
            "{}",
            serde_json::json!({ "layout": layout, "out": out, "seed": args.seed })
        );
        return Ok(());
    }
    let [what, out] = pos.as_slice() else {
        return Err("give what to make (qwen05b, llama8b, tiny) and the output file".into());
    };
    let out = PathBuf::from(out);
    if what == "tiny" {
        let spec = args.tiny.spec(args.layers);
        let decoder = spec.decoder()?;
        let expert_options = args.tiny.experts.is_some() || args.tiny.experts_used.is_some();
        if expert_options && decoder.experts.is_none() {
            return Err(format!(
                "{} has no experts (--experts is for qwen3moe, mixtral)",
                spec.arch
            )
            .into());
        }
        let written = decoder.write_file(Fill::Test, args.seed, &out)?;
        let mut summary = serde_json::json!({
            "model": "tiny", "arch": spec.arch.name(), "type": spec.ty.name(),
            "embd_type": spec.embd_ty.map(|t| t.name()),
            "output_type": spec.output_ty.map(|t| t.name()),
            "layers": spec.n_layers, "hidden": spec.d_model, "ffn": spec.ffn,
            "heads": spec.n_heads, "kv_heads": spec.n_kv_heads, "vocab": spec.n_vocab,
            "tied": decoder.tied, "qkv_bias": spec.bias, "window": spec.window, "seed": args.seed,
            "yarn": spec.yarn,
            "total_weight_bytes": written.total_weight_bytes, "n_tensors": written.n_tensors,
        });
        if let Some(orig) = spec.longrope {
            summary["longrope"] = orig.into();
        }
        if let Some(x) = decoder.experts {
            summary["experts"] = x.count.into();
            summary["experts_used"] = x.used.into();
            summary["expert_ffn"] = x.ffn.into();
        }
        println!("{summary}");
        return Ok(());
    }
    let preset = Preset::from_name(what)
        .ok_or_else(|| format!("unknown model {what:?} (qwen05b, llama8b, tiny, or --layout)"))?;
    // A preset's layer matrices may take another type (a speed test of that
    // type at a real shape); its embedding and output keep theirs, as in
    // llama.cpp's mixes.
    let layer_ty = args.tiny.ty.take();
    if args.tiny.any_given() {
        return Err(format!(
            "{what} has a fixed layout: tiny-model options other than --type do not apply"
        )
        .into());
    }
    let mut spec = preset.spec(args.layers)?;
    if let Some(ty) = layer_ty {
        spec.types = RoleTypes {
            embd: spec.types.embd,
            output: spec.types.output,
            ..RoleTypes::uniform(ty)
        };
    }
    let written = spec.write_file(Fill::Benchmark, args.seed, &out)?;
    let t = &spec.types;
    let mut types = serde_json::json!({
        "embd": t.embd.name(), "q": t.q.name(), "k": t.k.name(), "v": t.v.name(),
        "o": t.o.name(), "gate": t.gate.name(), "up": t.up.name(), "down": t.down.name(),
    });
    if !spec.tied {
        types["out"] = t.output.name().into();
    }
    // The summary mk_synthetic_gguf.py prints, key for key.
    let summary = serde_json::json!({
        "model": preset.name(), "arch": spec.arch, "layers": spec.n_layers,
        "hidden": spec.d_model, "ffn": spec.ffn, "heads": spec.n_heads,
        "kv_heads": spec.n_kv_heads, "head_dim": spec.head_dim(), "vocab": spec.vocab.len(),
        "rope_base": shortest(spec.rope_base), "rms_eps": shortest(spec.rms_eps), "qkv_bias": spec.qkv_bias,
        "tied": spec.tied, "types": types,
        "total_weight_bytes": written.total_weight_bytes,
        "token_embd_bytes": written.token_embd_bytes,
        "bytes_per_decode_token": written.bytes_per_decode_token,
        "n_tensors": written.n_tensors,
    });
    println!("{summary}");
    Ok(())
}

/// The f32 as the shortest decimal that reads back as it (1e-6, not 9.99e-7).
fn shortest(x: f32) -> f64 {
    x.to_string().parse().unwrap_or(x as f64)
}
