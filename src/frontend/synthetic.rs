//! Tiny synthetic models for tests: a GGUF file of any built-in architecture
//! with F32 weights drawn from a seeded generator, laid out the way llama.cpp's
//! converters write them (names, dims ne0-first, metadata keys).

use crate::gguf::{GgufError, GgufFile, GgufWriter};
use crate::quant::GgmlType;

/// Which architecture's conventions to write.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SyntheticArch {
    Llama,
    Qwen2,
    /// LLaMA tensors under `general.architecture = llama`, named "Mistral",
    /// with the sliding window key when `window` is set.
    Mistral,
}

impl SyntheticArch {
    pub const ALL: [SyntheticArch; 3] = [Self::Llama, Self::Qwen2, Self::Mistral];

    /// The spec name the frontend should pick.
    pub fn spec_name(self) -> &'static str {
        match self {
            Self::Llama => "llama",
            Self::Qwen2 => "qwen2",
            Self::Mistral => "mistral",
        }
    }

    fn gguf_arch(self) -> &'static str {
        match self {
            Self::Qwen2 => "qwen2",
            Self::Llama | Self::Mistral => "llama",
        }
    }
}

/// A tiny model's shape and options.
#[derive(Debug, Clone, PartialEq)]
pub struct SyntheticModel {
    pub arch: SyntheticArch,
    pub n_layer: u32,
    pub d_model: u32,
    pub n_heads: u32,
    /// Equal to `n_heads` for MHA, fewer for GQA.
    pub n_kv_heads: u32,
    pub ffn: u32,
    pub vocab: u32,
    pub context_length: u32,
    pub rms_eps: f32,
    pub rope_base: f32,
    /// No `output.weight`: the output projection is `token_embd`.
    pub tied: bool,
    /// `attn_{q,k,v}.bias` tensors (Qwen2 always has them).
    pub qkv_bias: bool,
    /// A LLaMA-3-style `rope_freqs.weight` tensor of frequency divisors.
    pub rope_freqs: bool,
    /// `{arch}.attention.sliding_window`.
    pub window: Option<u32>,
    pub seed: u64,
}

impl SyntheticModel {
    /// A tiny model with the architecture's usual options: GQA (4 heads, 2
    /// KV heads of 8 dims), 2 layers, biases for Qwen2, tied output for Qwen2.
    pub fn tiny(arch: SyntheticArch) -> Self {
        SyntheticModel {
            arch,
            n_layer: 2,
            d_model: 32,
            n_heads: 4,
            n_kv_heads: 2,
            ffn: 64,
            vocab: 48,
            context_length: 256,
            rms_eps: 1e-6,
            rope_base: if arch == SyntheticArch::Qwen2 {
                1e6
            } else {
                1e4
            },
            tied: arch == SyntheticArch::Qwen2,
            qkv_bias: arch == SyntheticArch::Qwen2,
            rope_freqs: false,
            window: (arch == SyntheticArch::Mistral).then_some(16),
            seed: 1,
        }
    }

    pub fn head_dim(&self) -> u32 {
        self.d_model / self.n_heads
    }

    /// The model as a GGUF writer (metadata and tensors with data).
    pub fn writer(&self) -> Result<GgufWriter, GgufError> {
        let mut w = GgufWriter::new();
        self.add_metadata(&mut w)?;
        let mut rng = SplitMix(self.seed);
        for (name, dims, kind) in self.tensor_list() {
            let n: u64 = dims.iter().product();
            let values: Vec<f32> = (0..n).map(|_| kind.sample(&mut rng, dims[0])).collect();
            w.add_tensor(
                &name,
                &dims,
                GgmlType::F32,
                bytemuck::cast_slice(&values).to_vec(),
            )?;
        }
        Ok(w)
    }

    pub fn to_bytes(&self) -> Result<Vec<u8>, GgufError> {
        self.writer()?.to_bytes()
    }

    /// The model parsed back as a [`GgufFile`] (in memory).
    pub fn to_gguf(&self) -> Result<GgufFile, GgufError> {
        GgufFile::from_bytes(self.to_bytes()?)
    }

    pub fn write_file(&self, path: impl AsRef<std::path::Path>) -> Result<(), GgufError> {
        self.writer()?.write_file(path)
    }

    fn add_metadata(&self, w: &mut GgufWriter) -> Result<(), GgufError> {
        let a = self.arch.gguf_arch();
        let name = match self.arch {
            SyntheticArch::Llama => "Tiny Llama",
            SyntheticArch::Qwen2 => "Tiny Qwen2",
            SyntheticArch::Mistral => "Tiny Mistral",
        };
        w.add_metadata("general.architecture", a)?;
        w.add_metadata("general.name", name)?;
        w.add_metadata(&format!("{a}.block_count"), self.n_layer)?;
        w.add_metadata(&format!("{a}.context_length"), self.context_length)?;
        w.add_metadata(&format!("{a}.embedding_length"), self.d_model)?;
        w.add_metadata(&format!("{a}.feed_forward_length"), self.ffn)?;
        w.add_metadata(&format!("{a}.attention.head_count"), self.n_heads)?;
        w.add_metadata(&format!("{a}.attention.head_count_kv"), self.n_kv_heads)?;
        w.add_metadata(&format!("{a}.rope.freq_base"), self.rope_base)?;
        w.add_metadata(
            &format!("{a}.attention.layer_norm_rms_epsilon"),
            self.rms_eps,
        )?;
        if a == "llama" {
            w.add_metadata(&format!("{a}.rope.dimension_count"), self.head_dim())?;
            w.add_metadata(&format!("{a}.vocab_size"), self.vocab)?;
        }
        if let Some(win) = self.window {
            w.add_metadata(&format!("{a}.attention.sliding_window"), win)?;
        }
        w.add_metadata("general.file_type", 0u32)?;
        Ok(())
    }

    /// Every tensor: GGUF name, GGUF dims (ne0 first), how to fill it.
    fn tensor_list(&self) -> Vec<(String, Vec<u64>, Fill)> {
        let (d, ff, v) = (self.d_model as u64, self.ffn as u64, self.vocab as u64);
        let q = (self.n_heads * self.head_dim()) as u64;
        let kv = (self.n_kv_heads * self.head_dim()) as u64;
        let mut t = vec![("token_embd.weight".to_string(), vec![d, v], Fill::Embedding)];
        if self.rope_freqs {
            let half = self.head_dim() as u64 / 2;
            t.push(("rope_freqs.weight".into(), vec![half], Fill::FreqFactor));
        }
        for l in 0..self.n_layer {
            let p = |s: &str| format!("blk.{l}.{s}");
            t.push((p("attn_norm.weight"), vec![d], Fill::Norm));
            t.push((p("attn_q.weight"), vec![d, q], Fill::Matrix));
            t.push((p("attn_k.weight"), vec![d, kv], Fill::Matrix));
            t.push((p("attn_v.weight"), vec![d, kv], Fill::Matrix));
            if self.qkv_bias {
                t.push((p("attn_q.bias"), vec![q], Fill::Bias));
                t.push((p("attn_k.bias"), vec![kv], Fill::Bias));
                t.push((p("attn_v.bias"), vec![kv], Fill::Bias));
            }
            t.push((p("attn_output.weight"), vec![q, d], Fill::Matrix));
            t.push((p("ffn_norm.weight"), vec![d], Fill::Norm));
            t.push((p("ffn_gate.weight"), vec![d, ff], Fill::Matrix));
            t.push((p("ffn_up.weight"), vec![d, ff], Fill::Matrix));
            t.push((p("ffn_down.weight"), vec![ff, d], Fill::Matrix));
        }
        t.push(("output_norm.weight".into(), vec![d], Fill::Norm));
        if !self.tied {
            t.push(("output.weight".into(), vec![d, v], Fill::Matrix));
        }
        t
    }
}

/// How a tensor's values are drawn: matrices scaled by 1/sqrt(fan-in) so
/// activations stay O(1) through the layers.
#[derive(Debug, Clone, Copy)]
enum Fill {
    Matrix,
    Embedding,
    Norm,
    Bias,
    FreqFactor,
}

impl Fill {
    fn sample(self, rng: &mut SplitMix, row_len: u64) -> f32 {
        let u = rng.uniform();
        match self {
            Fill::Matrix => u * (3.0 / row_len as f32).sqrt(),
            Fill::Embedding => u,
            Fill::Norm => 1.0 + 0.25 * u,
            Fill::Bias => 0.1 * u,
            Fill::FreqFactor => 1.5 + 0.5 * u,
        }
    }
}

/// SplitMix64: a tiny deterministic generator (no dependency, stable output).
struct SplitMix(u64);

impl SplitMix {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in [-1, 1).
    fn uniform(&mut self) -> f32 {
        (self.next() >> 40) as f32 / (1u64 << 23) as f32 - 1.0
    }
}

/// A copy of `src` without the tensors `drop_tensor` selects and the keys
/// `remove_keys`, with `set` keys added or replaced (for tests of files that
/// differ from a synthetic model in one way).
pub fn edit_gguf(
    src: &GgufFile,
    drop_tensor: impl Fn(&str) -> bool,
    remove_keys: &[&str],
    set: &[(String, crate::gguf::Value)],
) -> Result<GgufFile, GgufError> {
    let mut w = GgufWriter::new();
    for (k, v) in src.metadata().iter() {
        if remove_keys.contains(&k) {
            continue;
        }
        let v = set.iter().find(|(sk, _)| sk == k).map_or(v, |(_, sv)| sv);
        w.add_metadata(k, v.clone())?;
    }
    for (k, v) in set {
        if src.metadata().get(k).is_none() {
            w.add_metadata(k, v.clone())?;
        }
    }
    for t in src.tensors().iter().filter(|t| !drop_tensor(&t.name)) {
        w.add_tensor(&t.name, &t.dims, t.ty, src.view(t).data.to_vec())?;
    }
    GgufFile::from_bytes(w.to_bytes()?)
}
