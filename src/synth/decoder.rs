//! A decoder-only transformer (LLaMA/Qwen2/Mistral family) described by its
//! sizes, per-role tensor types and tokenizer, written as a GGUF file with
//! random weights in the tensor order and with the metadata keys that
//! llama.cpp's converters use.

use std::collections::hash_map::Entry;
use std::collections::HashMap;
use std::io::Write;
use std::path::Path;

use super::blocks::{random_data, Values};
use super::error::SynthError;
use super::vocab::Vocab;
use super::SynthRng;
use crate::gguf::{GgufError, GgufWriter};
use crate::quant::GgmlType;

/// The tensor type of each weight role.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RoleTypes {
    pub embd: GgmlType,
    pub q: GgmlType,
    pub k: GgmlType,
    pub v: GgmlType,
    pub o: GgmlType,
    pub gate: GgmlType,
    pub up: GgmlType,
    pub down: GgmlType,
    /// The output projection (unused when the output is tied).
    pub output: GgmlType,
}

impl RoleTypes {
    /// Every matrix of one type.
    pub fn uniform(ty: GgmlType) -> Self {
        RoleTypes {
            embd: ty,
            q: ty,
            k: ty,
            v: ty,
            o: ty,
            gate: ty,
            up: ty,
            down: ty,
            output: ty,
        }
    }
}

/// How weights are drawn.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fill {
    /// mk_synthetic_gguf.py's scheme, for speed tests: uniform random bytes
    /// with f16 scales d = 0.01 (dmin 0.001), one array per role shared by
    /// all layers, norms exactly 1, biases 0.01 N(0, 1).
    Benchmark,
    /// For correctness tests: every tensor drawn on its own, matrices with
    /// spread 1/sqrt(row length) so activations stay O(1) layer after layer,
    /// norms 1 + 0.1 N(0, 1), biases 0.1 N(0, 1), embedding N(0, 1).
    Test,
}

/// A decoder model's shape, types and tokenizer.
#[derive(Debug, Clone, PartialEq)]
pub struct DecoderSpec {
    /// general.architecture (Mistral files say "llama").
    pub arch: String,
    pub name: String,
    pub n_layers: usize,
    pub d_model: usize,
    pub ffn: usize,
    pub n_heads: usize,
    pub n_kv_heads: usize,
    pub context: u32,
    pub rope_base: f32,
    pub rms_eps: f32,
    /// q/k/v biases (Qwen2).
    pub qkv_bias: bool,
    /// Per-head RMSNorm weights of queries and keys (`attn_q_norm`,
    /// `attn_k_norm`, one head long: Qwen3), and the `attention.key_length`
    /// / `value_length` keys that Qwen3 files carry.
    pub qk_norm: bool,
    /// RMSNorm weights after attention and after the FFN
    /// (`post_attention_norm`, `post_ffw_norm`: Gemma 2/3).
    pub post_norms: bool,
    /// One `attn_qkv` matrix for q, k and v, and one `ffn_up` of twice the
    /// FFN width for gate and up (gate rows first): Phi-3.
    pub fused: bool,
    /// No output.weight: the output projection is token_embd.
    pub tied: bool,
    /// {arch}.attention.sliding_window (Mistral).
    pub sliding_window: Option<u32>,
    /// A Llama-3.1-style `rope_freqs.weight`: `head_dim/2` f32 divisors of
    /// the RoPE pair angles.
    pub rope_freqs: bool,
    /// YaRN RoPE scaling: (factor, original context length), written as
    /// `rope.scaling.type = yarn` and its keys.
    pub yarn: Option<(f32, u32)>,
    /// LongRoPE (Phi-3 128k): the original context length; written as
    /// `rope_factors_long`/`rope_factors_short` tensors,
    /// `rope.scaling.original_context_length` and the converter's
    /// `rope.scaling.attn_factor = sqrt(1 + ln(s) / ln(orig))`,
    /// `s = context / orig`.
    pub longrope: Option<u32>,
    /// Gemma 2's soft-caps (attention logits, final logits).
    pub softcaps: Option<(f32, f32)>,
    /// A routed mixture-of-experts feed-forward in place of the dense one
    /// (Mixtral, Qwen3-MoE).
    pub experts: Option<ExpertFfn>,
    /// general.file_type (llama_ftype), informational.
    pub file_type: u32,
    pub types: RoleTypes,
    pub vocab: Vocab,
}

/// A mixture-of-experts feed-forward: `ffn_gate_inp` (the router, F32 as
/// llama.cpp leaves it unquantized) and 3-D `ffn_{gate,up,down}_exps`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ExpertFfn {
    /// {arch}.expert_count.
    pub count: usize,
    /// {arch}.expert_used_count (the router's top-k).
    pub used: usize,
    /// Rows of each expert's gate/up matrix.
    pub ffn: usize,
    /// Write {arch}.expert_feed_forward_length (Qwen3-MoE); without it
    /// readers take `feed_forward_length`, which must then equal `ffn`
    /// (Mixtral).
    pub ffn_key: bool,
}

/// What a tensor is, which decides how its values are drawn.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Kind {
    Norm,
    Bias,
    Embedding,
    /// RoPE frequency divisors (`rope_freqs.weight`).
    FreqFactor,
    /// A matrix of a role shared across layers (`q`, `gate`, ..., `output`).
    Matrix(&'static str),
}

/// One entry of the tensor table to write.
#[derive(Debug, Clone, PartialEq)]
pub struct TensorSpec {
    pub name: String,
    /// GGUF order: `dims[0]` is the row length.
    pub dims: Vec<u64>,
    pub ty: GgmlType,
    pub kind: Kind,
}

impl TensorSpec {
    pub fn n_elements(&self) -> usize {
        self.dims.iter().product::<u64>() as usize
    }
}

/// Sizes of what was written, as mk_synthetic_gguf.py reports them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Written {
    pub n_tensors: usize,
    pub total_weight_bytes: u64,
    pub token_embd_bytes: u64,
    /// Every weight but token_embd (only rows are gathered), or every
    /// weight when token_embd is also the output matrix.
    pub bytes_per_decode_token: u64,
}

impl DecoderSpec {
    pub fn head_dim(&self) -> usize {
        self.d_model / self.n_heads.max(1)
    }

    /// Checks that heads divide the width and rows are whole blocks.
    pub fn check(&self) -> Result<(), SynthError> {
        let bad = |why: String| Err(SynthError::Settings(why));
        if self.n_layers == 0 || self.d_model == 0 || self.ffn == 0 || self.n_heads == 0 {
            return bad("layers, width, ffn size and heads must be positive".into());
        }
        if self.n_kv_heads == 0 || !self.n_heads.is_multiple_of(self.n_kv_heads) {
            return bad(format!(
                "{} kv heads do not divide {} heads",
                self.n_kv_heads, self.n_heads
            ));
        }
        if !self.d_model.is_multiple_of(self.n_heads) || !self.head_dim().is_multiple_of(2) {
            return bad(format!(
                "width {} is not {} heads of an even head size",
                self.d_model, self.n_heads
            ));
        }
        if let Some(x) = &self.experts {
            if x.used == 0 || x.used > x.count || x.ffn == 0 || (!x.ffn_key && x.ffn != self.ffn) {
                return bad(format!(
                    "{} of {} experts of width {} (ffn {})",
                    x.used, x.count, x.ffn, self.ffn
                ));
            }
        }
        if self.vocab.len() < 2 {
            return bad("the vocabulary is empty".into());
        }
        for t in self.tensors() {
            let row = t.dims[0] as usize;
            if !row.is_multiple_of(t.ty.block_len()) {
                return bad(format!(
                    "{}: row length {row} is not a multiple of the {} block size {}",
                    t.name,
                    t.ty,
                    t.ty.block_len()
                ));
            }
        }
        Ok(())
    }

    /// The tensor table in llama.cpp's converter order.
    pub fn tensors(&self) -> Vec<TensorSpec> {
        let (d, f, v) = (
            self.d_model as u64,
            self.ffn as u64,
            self.vocab.len() as u64,
        );
        let q_dim = (self.n_heads * self.head_dim()) as u64;
        let kv_dim = (self.n_kv_heads * self.head_dim()) as u64;
        let t = |name: String, dims: Vec<u64>, ty, kind| TensorSpec {
            name,
            dims,
            ty,
            kind,
        };
        let norm = |name: String, n| t(name, vec![n], GgmlType::F32, Kind::Norm);
        let bias = |name: String, n| t(name, vec![n], GgmlType::F32, Kind::Bias);
        let ty = &self.types;
        let mut out = vec![t(
            "token_embd.weight".into(),
            vec![d, v],
            ty.embd,
            Kind::Embedding,
        )];
        let half = self.head_dim() as u64 / 2;
        let mut factors =
            |name: &str| out.push(t(name.into(), vec![half], GgmlType::F32, Kind::FreqFactor));
        if self.rope_freqs {
            factors("rope_freqs.weight");
        }
        if self.longrope.is_some() {
            factors("rope_factors_long.weight");
            factors("rope_factors_short.weight");
        }
        for l in 0..self.n_layers {
            let p = |s: &str| format!("blk.{l}.{s}");
            out.push(norm(p("attn_norm.weight"), d));
            if self.fused {
                out.push(t(
                    p("attn_qkv.weight"),
                    vec![d, q_dim + 2 * kv_dim],
                    ty.q,
                    Kind::Matrix("qkv"),
                ));
            } else {
                out.push(t(
                    p("attn_q.weight"),
                    vec![d, q_dim],
                    ty.q,
                    Kind::Matrix("q"),
                ));
                out.push(t(
                    p("attn_k.weight"),
                    vec![d, kv_dim],
                    ty.k,
                    Kind::Matrix("k"),
                ));
                out.push(t(
                    p("attn_v.weight"),
                    vec![d, kv_dim],
                    ty.v,
                    Kind::Matrix("v"),
                ));
            }
            if self.qkv_bias {
                out.push(bias(p("attn_q.bias"), q_dim));
                out.push(bias(p("attn_k.bias"), kv_dim));
                out.push(bias(p("attn_v.bias"), kv_dim));
            }
            if self.qk_norm {
                let hd = self.head_dim() as u64;
                out.push(norm(p("attn_q_norm.weight"), hd));
                out.push(norm(p("attn_k_norm.weight"), hd));
            }
            out.push(t(
                p("attn_output.weight"),
                vec![q_dim, d],
                ty.o,
                Kind::Matrix("o"),
            ));
            if self.post_norms {
                out.push(norm(p("post_attention_norm.weight"), d));
                out.push(norm(p("post_ffw_norm.weight"), d));
            }
            out.push(norm(p("ffn_norm.weight"), d));
            if let Some(x) = &self.experts {
                let (e, xf) = (x.count as u64, x.ffn as u64);
                let router = Kind::Matrix("router");
                out.push(t(
                    p("ffn_gate_inp.weight"),
                    vec![d, e],
                    GgmlType::F32,
                    router,
                ));
                out.push(t(
                    p("ffn_gate_exps.weight"),
                    vec![d, xf, e],
                    ty.gate,
                    Kind::Matrix("gate"),
                ));
                out.push(t(
                    p("ffn_up_exps.weight"),
                    vec![d, xf, e],
                    ty.up,
                    Kind::Matrix("up"),
                ));
                out.push(t(
                    p("ffn_down_exps.weight"),
                    vec![xf, d, e],
                    ty.down,
                    Kind::Matrix("down"),
                ));
                continue;
            }
            if self.fused {
                out.push(t(
                    p("ffn_up.weight"),
                    vec![d, 2 * f],
                    ty.up,
                    Kind::Matrix("up"),
                ));
            } else {
                out.push(t(
                    p("ffn_gate.weight"),
                    vec![d, f],
                    ty.gate,
                    Kind::Matrix("gate"),
                ));
                out.push(t(p("ffn_up.weight"), vec![d, f], ty.up, Kind::Matrix("up")));
            }
            out.push(t(
                p("ffn_down.weight"),
                vec![f, d],
                ty.down,
                Kind::Matrix("down"),
            ));
        }
        out.push(norm("output_norm.weight".into(), d));
        if !self.tied {
            out.push(t(
                "output.weight".into(),
                vec![d, v],
                ty.output,
                Kind::Matrix("output"),
            ));
        }
        out
    }

    /// A writer holding the metadata (mk_synthetic_gguf.py's keys and order)
    /// and the declared tensor table.
    pub fn gguf_header(&self) -> Result<GgufWriter, SynthError> {
        self.check()?;
        let mut w = GgufWriter::new();
        self.write_metadata(&mut w)?;
        for t in self.tensors() {
            w.declare_tensor(&t.name, &t.dims, t.ty)?;
        }
        Ok(w)
    }

    fn write_metadata(&self, w: &mut GgufWriter) -> Result<(), GgufError> {
        let a = &self.arch;
        let u = |n: usize| n as u32;
        w.add_metadata("general.architecture", a.as_str())?;
        w.add_metadata("general.name", self.name.as_str())?;
        w.add_metadata(&format!("{a}.context_length"), self.context)?;
        w.add_metadata(&format!("{a}.embedding_length"), u(self.d_model))?;
        w.add_metadata(&format!("{a}.block_count"), u(self.n_layers))?;
        w.add_metadata(&format!("{a}.feed_forward_length"), u(self.ffn))?;
        w.add_metadata(&format!("{a}.attention.head_count"), u(self.n_heads))?;
        w.add_metadata(&format!("{a}.attention.head_count_kv"), u(self.n_kv_heads))?;
        w.add_metadata(&format!("{a}.rope.freq_base"), self.rope_base)?;
        w.add_metadata(
            &format!("{a}.attention.layer_norm_rms_epsilon"),
            self.rms_eps,
        )?;
        w.add_metadata(&format!("{a}.rope.dimension_count"), u(self.head_dim()))?;
        if self.qk_norm {
            w.add_metadata(&format!("{a}.attention.key_length"), u(self.head_dim()))?;
            w.add_metadata(&format!("{a}.attention.value_length"), u(self.head_dim()))?;
        }
        if let Some((factor, orig_ctx)) = self.yarn {
            w.add_metadata(&format!("{a}.rope.scaling.type"), "yarn")?;
            w.add_metadata(&format!("{a}.rope.scaling.factor"), factor)?;
            w.add_metadata(
                &format!("{a}.rope.scaling.original_context_length"),
                orig_ctx,
            )?;
        }
        if let Some(orig_ctx) = self.longrope {
            let scale = self.context as f64 / f64::from(orig_ctx);
            let attn_factor = if scale > 1.0 {
                (1.0 + scale.ln() / f64::from(orig_ctx).ln()).sqrt()
            } else {
                1.0
            };
            w.add_metadata(
                &format!("{a}.rope.scaling.original_context_length"),
                orig_ctx,
            )?;
            w.add_metadata(&format!("{a}.rope.scaling.attn_factor"), attn_factor as f32)?;
        }
        if let Some((attn, fin)) = self.softcaps {
            w.add_metadata(&format!("{a}.attn_logit_softcapping"), attn)?;
            w.add_metadata(&format!("{a}.final_logit_softcapping"), fin)?;
        }
        if let Some(x) = &self.experts {
            w.add_metadata(&format!("{a}.expert_count"), u(x.count))?;
            w.add_metadata(&format!("{a}.expert_used_count"), u(x.used))?;
            if x.ffn_key {
                w.add_metadata(&format!("{a}.expert_feed_forward_length"), u(x.ffn))?;
            }
        }
        if let Some(window) = self.sliding_window {
            w.add_metadata(&format!("{a}.attention.sliding_window"), window)?;
        }
        w.add_metadata("general.file_type", self.file_type)?;
        w.add_metadata(&format!("{a}.vocab_size"), u(self.vocab.len()))?;
        self.vocab.write_metadata(w)
    }

    /// Writes the whole file to `out`, drawing weights from `seed`.
    pub fn write<W: Write>(
        &self,
        fill: Fill,
        seed: u64,
        out: W,
    ) -> Result<(W, Written), SynthError> {
        let header = self.gguf_header()?;
        let mut stream = header.begin(out)?;
        let root = SynthRng::new(seed);
        let mut shared: HashMap<Kind, Vec<u8>> = HashMap::new();
        let mut total = 0u64;
        for t in self.tensors() {
            let data = match (fill, t.kind) {
                // One array per role, reused by every layer (content does not affect speed).
                (Fill::Benchmark, k @ Kind::Matrix(role)) if role != "output" => {
                    if let Entry::Vacant(e) = shared.entry(k) {
                        e.insert(tensor_data(&root, fill, &t)?);
                    }
                    &shared[&k]
                }
                _ => &tensor_data(&root, fill, &t)?,
            };
            stream.write_tensor(&t.name, data)?;
            total += data.len() as u64;
        }
        let out = stream.finish()?;
        let embd = header.tensors()[0].size;
        let written = Written {
            n_tensors: header.tensors().len(),
            total_weight_bytes: total,
            token_embd_bytes: embd,
            bytes_per_decode_token: if self.tied { total } else { total - embd },
        };
        Ok((out, written))
    }

    /// The whole file as bytes.
    pub fn to_bytes(&self, fill: Fill, seed: u64) -> Result<Vec<u8>, SynthError> {
        Ok(self.write(fill, seed, Vec::new())?.0)
    }

    /// Writes the file at `path`.
    pub fn write_file(&self, fill: Fill, seed: u64, path: &Path) -> Result<Written, SynthError> {
        let io = |source| GgufError::Io {
            path: path.to_path_buf(),
            source,
        };
        crate::gguf::file_kind::check_output(path)?;
        let file = std::fs::File::create(path).map_err(io)?;
        let (out, written) = self
            .write(fill, seed, std::io::BufWriter::new(file))
            .map_err(|e| match e {
                SynthError::Gguf(GgufError::Output(source)) => io(source).into(),
                e => e,
            })?;
        out.into_inner().map_err(|e| io(e.into_error()))?;
        Ok(written)
    }
}

/// One tensor's random bytes: its own stream forked from the root by the
/// tensor's name (or role, for shared benchmark arrays).
fn tensor_data(root: &SynthRng, fill: Fill, t: &TensorSpec) -> Result<Vec<u8>, SynthError> {
    let label = match (fill, t.kind) {
        (Fill::Benchmark, Kind::Matrix(role)) => role.to_string(),
        _ => t.name.clone(),
    };
    let mut rng = root.fork(&label);
    let values = match (fill, t.kind) {
        // Divisors spread around 2.5 (Llama 3.1's run from 1 to 8), far
        // from 0, so that every pair's angle changes measurably.
        (_, Kind::FreqFactor) => Values::normal(2.5, 0.5),
        (Fill::Benchmark, Kind::Norm) => Values::normal(1.0, 0.0),
        (Fill::Benchmark, Kind::Bias) => Values::normal(0.0, 0.01),
        (Fill::Benchmark, _) => Values::BENCHMARK,
        (Fill::Test, Kind::Norm) => Values::normal(1.0, 0.1),
        (Fill::Test, Kind::Bias) => Values::normal(0.0, 0.1),
        (Fill::Test, Kind::Embedding) => Values::normal(0.0, 1.0),
        (Fill::Test, Kind::Matrix(_)) => Values::normal(0.0, (t.dims[0] as f32).sqrt().recip()),
    };
    random_data(&mut rng, t.ty, t.n_elements(), values).map_err(|e| e.in_tensor(&t.name))
}
