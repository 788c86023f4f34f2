//! Tiny models of each supported architecture for correctness tests: a few
//! layers, a byte-level vocabulary, weights drawn with [`Fill::Test`] so that
//! activations and attention are far from trivial.

use std::fmt;

use super::decoder::{DecoderSpec, ExpertFfn, Fill, RoleTypes};
use super::error::SynthError;
use super::vocab::Vocab;
use crate::quant::GgmlType;

/// The architecture a tiny model imitates.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TinyArch {
    /// general.architecture llama, SentencePiece byte-fallback vocabulary.
    Llama,
    /// general.architecture qwen2, byte-level BPE vocabulary.
    Qwen2,
    /// A LLaMA file (general.architecture llama) named "mistral", with
    /// llama.attention.sliding_window when a window is given.
    Mistral,
    /// general.architecture qwen3: per-head Q/K RMSNorm, no biases,
    /// byte-level BPE vocabulary.
    Qwen3,
    /// general.architecture gemma3: scaled embeddings, pre and post norms,
    /// per-head Q/K RMSNorm, GeGLU, RoPE base 1e6 in the file (the
    /// sliding-window layers use the spec's 1e4); SentencePiece vocabulary.
    Gemma3,
    /// general.architecture gemma2: Gemma 3's block without Q/K norms,
    /// one RoPE base, soft-capped attention (cap 2) and final logits (cap
    /// 5) — small caps, so that tiny models' values reach tanh's bend —
    /// always tied; SentencePiece vocabulary.
    Gemma2,
    /// general.architecture phi3: fused `attn_qkv` and gate/up `ffn_up`,
    /// SentencePiece vocabulary.
    Phi3,
    /// general.architecture qwen3moe: Qwen3's attention, a routed
    /// mixture of `n_experts` experts of width `ffn / 2` (its own
    /// `expert_feed_forward_length` key), byte-level BPE vocabulary.
    Qwen3Moe,
    /// A LLaMA file (general.architecture llama) with `expert_count`:
    /// Mixtral's routed experts of width `ffn`, SentencePiece vocabulary.
    Mixtral,
}

impl TinyArch {
    pub const ALL: [TinyArch; 9] = [
        TinyArch::Llama,
        TinyArch::Qwen2,
        TinyArch::Mistral,
        TinyArch::Qwen3,
        TinyArch::Gemma3,
        TinyArch::Phi3,
        TinyArch::Qwen3Moe,
        TinyArch::Mixtral,
        TinyArch::Gemma2,
    ];

    pub fn name(self) -> &'static str {
        match self {
            TinyArch::Llama => "llama",
            TinyArch::Qwen2 => "qwen2",
            TinyArch::Mistral => "mistral",
            TinyArch::Qwen3 => "qwen3",
            TinyArch::Gemma3 => "gemma3",
            TinyArch::Gemma2 => "gemma2",
            TinyArch::Phi3 => "phi3",
            TinyArch::Qwen3Moe => "qwen3moe",
            TinyArch::Mixtral => "mixtral",
        }
    }

    pub fn from_name(name: &str) -> Option<TinyArch> {
        TinyArch::ALL.into_iter().find(|a| a.name() == name)
    }
}

impl fmt::Display for TinyArch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A tiny model's settings. The defaults make a 2-layer GQA model 64 wide;
/// K-quant types need rows of multiples of 256 (`d_model` 256, `ffn` 512).
#[derive(Debug, Clone, PartialEq)]
pub struct TinySpec {
    pub arch: TinyArch,
    pub n_heads: usize,
    pub n_kv_heads: usize,
    pub d_model: usize,
    pub ffn: usize,
    pub n_layers: usize,
    /// At least 259: 256 byte tokens plus the specials.
    pub n_vocab: usize,
    /// The type of every matrix, token_embd and output included (norms and
    /// biases stay F32, as converters write them).
    pub ty: GgmlType,
    /// The token embedding's type where it differs from `ty` (mixed files,
    /// as llama.cpp's quantizer writes them: e.g. IQ4_XS matrices with a
    /// Q8_0 embedding).
    pub embd_ty: Option<GgmlType>,
    /// The output projection's type where it differs from `ty` (e.g. Q6_K).
    pub output_ty: Option<GgmlType>,
    pub tied: bool,
    /// q/k/v biases.
    pub bias: bool,
    /// Sliding-window attention (Mistral only).
    pub window: Option<u32>,
    /// A Llama-3.1-style `rope_freqs.weight` (RoPE frequency divisors).
    pub rope_freqs: bool,
    /// YaRN RoPE scaling (factor, original context length).
    pub yarn: Option<(f32, u32)>,
    /// LongRoPE factors (Phi-3 only): the original context length (the
    /// file's context is 512).
    pub longrope: Option<u32>,
    /// Experts per layer of the MoE architectures (ignored by the others).
    pub n_experts: usize,
    /// Experts each token is routed to (MoE architectures).
    pub experts_used: usize,
}

impl Default for TinySpec {
    fn default() -> Self {
        TinySpec {
            arch: TinyArch::Llama,
            n_heads: 4,
            n_kv_heads: 2,
            d_model: 64,
            ffn: 128,
            n_layers: 2,
            n_vocab: 320,
            ty: GgmlType::F32,
            embd_ty: None,
            output_ty: None,
            tied: false,
            bias: false,
            window: None,
            rope_freqs: false,
            yarn: None,
            longrope: None,
            n_experts: 4,
            experts_used: 2,
        }
    }
}

impl TinySpec {
    /// The settings for weights of `ty`: the defaults, widened to one
    /// K-quant super-block per row where `ty` needs it.
    pub fn for_type(arch: TinyArch, ty: GgmlType) -> Self {
        let wide = ty.block_len() > 32;
        TinySpec {
            arch,
            ty,
            d_model: if wide { 256 } else { 64 },
            ffn: if wide { 512 } else { 128 },
            ..TinySpec::default()
        }
    }

    /// The model as a [`DecoderSpec`].
    pub fn decoder(&self) -> Result<DecoderSpec, SynthError> {
        let windowed = matches!(
            self.arch,
            TinyArch::Mistral | TinyArch::Gemma3 | TinyArch::Gemma2
        );
        if self.longrope.is_some() && self.arch != TinyArch::Phi3 {
            return Err(SynthError::Settings(format!(
                "LongRoPE factors are a Phi-3 setting, not {}",
                self.arch
            )));
        }
        if self.window.is_some() && !windowed {
            return Err(SynthError::Settings(format!(
                "a sliding window is a Mistral or Gemma 3 setting, not {}",
                self.arch
            )));
        }
        let qk_norm = matches!(
            self.arch,
            TinyArch::Qwen3 | TinyArch::Gemma3 | TinyArch::Qwen3Moe
        );
        let no_bias = matches!(self.arch, TinyArch::Phi3 | TinyArch::Gemma2);
        if self.bias && (qk_norm || no_bias) {
            return Err(SynthError::Settings(format!(
                "{} has no q/k/v biases",
                self.arch
            )));
        }
        let vocab = match self.arch {
            TinyArch::Qwen2 | TinyArch::Qwen3 | TinyArch::Qwen3Moe => {
                Vocab::byte_level_bpe(self.n_vocab, "qwen2")
            }
            TinyArch::Llama
            | TinyArch::Mistral
            | TinyArch::Gemma3
            | TinyArch::Gemma2
            | TinyArch::Phi3
            | TinyArch::Mixtral => Vocab::sentencepiece_bytes(self.n_vocab),
        }
        .map_err(SynthError::Settings)?;
        let spec = DecoderSpec {
            arch: match self.arch {
                TinyArch::Qwen2 => "qwen2",
                TinyArch::Qwen3 => "qwen3",
                TinyArch::Gemma3 => "gemma3",
                TinyArch::Gemma2 => "gemma2",
                TinyArch::Phi3 => "phi3",
                TinyArch::Qwen3Moe => "qwen3moe",
                TinyArch::Llama | TinyArch::Mistral | TinyArch::Mixtral => "llama",
            }
            .into(),
            name: format!("tiny-{}", self.arch),
            n_layers: self.n_layers,
            d_model: self.d_model,
            ffn: self.ffn,
            n_heads: self.n_heads,
            n_kv_heads: self.n_kv_heads,
            context: 512,
            // Gemma 3's file base is the global layers'; the local ones
            // use the spec's 1e4, so the two must differ to be told apart.
            rope_base: if self.arch == TinyArch::Gemma3 {
                1_000_000.0
            } else {
                10000.0
            },
            rms_eps: match self.arch {
                TinyArch::Qwen2
                | TinyArch::Qwen3
                | TinyArch::Gemma3
                | TinyArch::Gemma2
                | TinyArch::Qwen3Moe => 1e-6,
                TinyArch::Llama | TinyArch::Mistral | TinyArch::Phi3 | TinyArch::Mixtral => 1e-5,
            },
            qkv_bias: self.bias,
            qk_norm,
            post_norms: matches!(self.arch, TinyArch::Gemma3 | TinyArch::Gemma2),
            fused: self.arch == TinyArch::Phi3,
            // llama.cpp reads Gemma 2's output from token_embd alone.
            tied: self.tied || self.arch == TinyArch::Gemma2,
            sliding_window: self.window,
            rope_freqs: self.rope_freqs,
            yarn: self.yarn,
            longrope: self.longrope,
            softcaps: (self.arch == TinyArch::Gemma2).then_some((2.0, 5.0)),
            experts: self.experts(),
            file_type: file_type(self.ty),
            types: RoleTypes {
                embd: self.embd_ty.unwrap_or(self.ty),
                output: self.output_ty.unwrap_or(self.ty),
                ..RoleTypes::uniform(self.ty)
            },
            vocab,
        };
        spec.check()?;
        Ok(spec)
    }

    /// The expert feed-forward of the MoE architectures.
    fn experts(&self) -> Option<ExpertFfn> {
        match self.arch {
            TinyArch::Qwen3Moe => Some(ExpertFfn {
                count: self.n_experts,
                used: self.experts_used,
                ffn: self.ffn / 2,
                ffn_key: true,
            }),
            TinyArch::Mixtral => Some(ExpertFfn {
                count: self.n_experts,
                used: self.experts_used,
                ffn: self.ffn,
                ffn_key: false,
            }),
            _ => None,
        }
    }

    /// The GGUF file's bytes, weights drawn from `seed`.
    pub fn to_bytes(&self, seed: u64) -> Result<Vec<u8>, SynthError> {
        self.decoder()?.to_bytes(Fill::Test, seed)
    }
}

/// The llama_ftype of a file whose matrices are all `ty`.
fn file_type(ty: GgmlType) -> u32 {
    use GgmlType as T;
    match ty {
        T::F32 => 0,
        T::F16 => 1,
        T::Q4_0 => 2,
        T::Q4_1 => 3,
        T::Q8_0 => 7,
        T::Q5_0 => 8,
        T::Q5_1 => 9,
        T::Q2_K => 10,
        T::Q3_K => 11,
        T::Q4_K => 14,
        T::Q5_K => 16,
        T::Q6_K => 18,
        T::BF16 => 32,
        // Other types have no "mostly" ftype; 0 only misinforms a report.
        _ => 0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gguf::GgufFile;

    #[test]
    fn same_seed_gives_identical_bytes() {
        let s = TinySpec::default();
        assert_eq!(s.to_bytes(1).unwrap(), s.to_bytes(1).unwrap());
        assert_ne!(s.to_bytes(1).unwrap(), s.to_bytes(2).unwrap());
    }

    #[test]
    fn tiny_file_parses_with_the_requested_shapes() {
        let s = TinySpec {
            arch: TinyArch::Qwen2,
            bias: true,
            tied: true,
            ..TinySpec::default()
        };
        let f = GgufFile::from_bytes(s.to_bytes(0).unwrap()).unwrap();
        assert_eq!(f.metadata().get_u32("qwen2.block_count").unwrap(), 2);
        assert!(f.tensor("blk.1.attn_k.bias").is_ok());
        assert!(f.tensor("output.weight").is_err());
        assert_eq!(
            f.tensor("blk.0.attn_k.weight").unwrap().info.dims,
            vec![64, 32]
        );
    }

    #[test]
    fn k_quant_rows_must_be_whole_super_blocks() {
        let s = TinySpec {
            ty: GgmlType::Q4_K,
            ..TinySpec::default()
        };
        assert!(matches!(s.decoder(), Err(SynthError::Settings(_))));
        assert!(TinySpec::for_type(TinyArch::Llama, GgmlType::Q4_K)
            .decoder()
            .is_ok());
    }

    #[test]
    fn a_mixed_file_holds_each_role_in_its_own_type() {
        let s = TinySpec {
            embd_ty: Some(GgmlType::Q8_0),
            output_ty: Some(GgmlType::Q6_K),
            ..TinySpec::for_type(TinyArch::Llama, GgmlType::IQ4_XS)
        };
        let f = GgufFile::from_bytes(s.to_bytes(0).unwrap()).unwrap();
        assert_eq!(f.tensor("token_embd.weight").unwrap().ty(), GgmlType::Q8_0);
        assert_eq!(f.tensor("output.weight").unwrap().ty(), GgmlType::Q6_K);
        assert_eq!(
            f.tensor("blk.1.ffn_down.weight").unwrap().ty(),
            GgmlType::IQ4_XS
        );
    }

    #[test]
    fn window_is_refused_outside_mistral() {
        let s = TinySpec {
            window: Some(4),
            ..TinySpec::default()
        };
        assert!(s.decoder().is_err());
    }
}
