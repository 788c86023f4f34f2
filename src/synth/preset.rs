//! The real-shaped models of /work/shared/tools/mk_synthetic_gguf.py, whose
//! llama.cpp speed figures BENCHMARKS.md lists: same metadata (keys, types,
//! values, order), tensor names, types and shapes, and the same kind of
//! bytes (uniform random levels, fixed f16 scales), so engines are measured
//! on equivalent files.

use super::decoder::{DecoderSpec, RoleTypes};
use super::error::SynthError;
use super::vocab::Vocab;
use crate::quant::GgmlType as T;

/// llama_ftype MOSTLY_Q4_K_M, which the script writes for both models.
const FTYPE_Q4_K_M: u32 = 15;

/// A model made by `mk_synthetic_gguf.py WHICH`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Preset {
    /// qwen2, 24 layers, 896 wide, ffn 4864, 14/2 heads, vocab 151936,
    /// q/k/v biases, tied embedding.
    Qwen05b,
    /// llama, 32 layers, 4096 wide, ffn 14336, 32/8 heads, vocab 128256.
    Llama8b,
}

impl Preset {
    pub const ALL: [Preset; 2] = [Preset::Qwen05b, Preset::Llama8b];

    /// The preset named as the script names it (`qwen05b`, `llama8b`).
    pub fn from_name(name: &str) -> Option<Preset> {
        Preset::ALL.into_iter().find(|p| p.name() == name)
    }

    pub fn name(self) -> &'static str {
        match self {
            Preset::Qwen05b => "qwen05b",
            Preset::Llama8b => "llama8b",
        }
    }

    /// The model, with `layers` overriding the layer count.
    pub fn spec(self, layers: Option<usize>) -> Result<DecoderSpec, SynthError> {
        let mut s = match self {
            Preset::Qwen05b => DecoderSpec {
                arch: "qwen2".into(),
                name: "synthetic-qwen05b".into(),
                n_layers: 24,
                d_model: 896,
                ffn: 4864,
                n_heads: 14,
                n_kv_heads: 2,
                context: 32768,
                rope_base: 1e6,
                rms_eps: 1e-6,
                qkv_bias: true,
                qk_norm: false,
                post_norms: false,
                fused: false,
                tied: true,
                sliding_window: None,
                rope_freqs: false,
                yarn: None,
                longrope: None,
                softcaps: None,
                experts: None,
                file_type: FTYPE_Q4_K_M,
                // Rows of 896 cannot be K-quants: llama.cpp's Q4_K_M falls
                // back to Q5_0 for Q4_K and Q8_0 for Q6_K there.
                types: RoleTypes {
                    embd: T::Q8_0,
                    q: T::Q5_0,
                    k: T::Q5_0,
                    v: T::Q8_0,
                    o: T::Q5_0,
                    gate: T::Q5_0,
                    up: T::Q5_0,
                    down: T::Q6_K,
                    output: T::Q8_0,
                },
                vocab: Vocab::benchmark(151936, "qwen2").map_err(SynthError::Settings)?,
            },
            Preset::Llama8b => DecoderSpec {
                arch: "llama".into(),
                name: "synthetic-llama8b".into(),
                n_layers: 32,
                d_model: 4096,
                ffn: 14336,
                n_heads: 32,
                n_kv_heads: 8,
                context: 131072,
                rope_base: 500000.0,
                rms_eps: 1e-5,
                qkv_bias: false,
                qk_norm: false,
                post_norms: false,
                fused: false,
                tied: false,
                sliding_window: None,
                rope_freqs: false,
                yarn: None,
                longrope: None,
                softcaps: None,
                experts: None,
                file_type: FTYPE_Q4_K_M,
                types: RoleTypes {
                    embd: T::Q4_K,
                    q: T::Q4_K,
                    k: T::Q4_K,
                    v: T::Q6_K,
                    o: T::Q4_K,
                    gate: T::Q4_K,
                    up: T::Q4_K,
                    down: T::Q6_K,
                    output: T::Q6_K,
                },
                vocab: Vocab::benchmark(128256, "llama-bpe").map_err(SynthError::Settings)?,
            },
        };
        if let Some(l) = layers {
            s.n_layers = l;
        }
        Ok(s)
    }
}
