//! The CPU backend's kernels: every op of a LLaMA/Qwen2/Mistral decoder,
//! multi-threaded (rayon) and SIMD where the CPU allows (chosen at run time,
//! [`SimdPath`]), with a portable path that compiles everywhere.
//!
//! Quantized matmuls multiply weights in their GGUF blocks with 8-bit
//! activations ([`QuantizedActs`], prepared once per op input); float
//! weights multiply f32 activations.

// Kernels walk several arrays (rows, tokens, lanes) in lockstep by index.
#![allow(clippy::needless_range_loop)]

mod acts;
mod attention;
mod attention_lanes;
mod blocks;
mod dot;
mod elementwise;
mod embed;
mod error;
mod f16;
pub(crate) mod hadamard;
mod interleaved;
mod key_dot;
mod kv_cache;
mod math;
mod matmul;
mod norm;
mod rope;
mod route;
mod simd;
mod weights;

pub use acts::{k_slot, ActFormat, Q8x256Row, Q8x32Row, QuantizedActs};
pub use attention::{attention, attention_with, AttentionShape, TokenPlaces};
pub use blocks::is_computable;
pub use elementwise::{add_in_place, argmax, gelu_mul, silu_mul, silu_mul_with};
pub use embed::embed_rows;
pub use error::KernelError;
pub use interleaved::InterleavedRows;
pub use kv_cache::{KvCache, KvSlot, KvType, KvTypes};
pub use math::{gelu_tanh, softcap};
pub use matmul::{matmul, matmul_with};
pub use norm::{rms_norm, rms_norm_with};
pub use rope::{rope, rope_with, RopeParams, RopeStyle, Yarn};
pub use route::{route_top_k, ExpertGroups};
pub use simd::SimdPath;
pub use weights::WeightMatrix;

/// Dequantizes one row of `out.len()` elements of type `ty` (for tests and
/// for embedding lookups outside a plan).
pub fn dequantize_row(
    ty: crate::quant::GgmlType,
    bytes: &[u8],
    out: &mut [f32],
) -> Result<(), KernelError> {
    let w = WeightMatrix::new(ty, bytes, 1, out.len());
    w.validate("dequantize_row")?;
    blocks::dequantize_row(ty, bytes, out);
    Ok(())
}
