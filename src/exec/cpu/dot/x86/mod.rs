//! x86-64 tile kernels, chosen at run time. Every `unsafe fn` here is
//! `#[target_feature]` code; the safe entry points are returned only for a
//! [`SimdPath`] that `matmul` has checked is available.

mod avx2_float;
mod avx2_k;
mod avx2_q32;
mod avx512_q32;
mod util;

use super::TileKernel;
use crate::exec::cpu::simd::SimdPath;
use crate::quant::GgmlType;

/// The specialised kernel for `ty` weights of `cols` columns on `path`, if
/// there is one.
pub(super) fn tile_kernel(ty: GgmlType, cols: usize, path: SimdPath) -> Option<TileKernel> {
    use GgmlType::*;
    match path {
        SimdPath::Portable => None,
        // Pairs of blocks fill a 512-bit register: rows of an odd number of
        // blocks take the AVX2 kernels.
        SimdPath::Avx512Vnni if ty.block_len() == 32 && cols.is_multiple_of(64) => match ty {
            Q4_0 => Some(avx512_q32::tile_q4_0),
            Q4_1 => Some(avx512_q32::tile_q4_1),
            Q5_0 => Some(avx512_q32::tile_q5_0),
            Q5_1 => Some(avx512_q32::tile_q5_1),
            Q8_0 => Some(avx512_q32::tile_q8_0),
            _ => None,
        },
        SimdPath::Avx512Vnni if ty == Q4_K => Some(avx2_k::tile_q4_k_wide),
        SimdPath::Avx512Vnni if ty == Q6_K => Some(avx2_k::tile_q6_k_wide),
        SimdPath::Avx2 | SimdPath::Avx512Vnni => match ty {
            Q4_0 => Some(avx2_q32::tile_q4_0),
            Q4_1 => Some(avx2_q32::tile_q4_1),
            Q5_0 => Some(avx2_q32::tile_q5_0),
            Q5_1 => Some(avx2_q32::tile_q5_1),
            Q8_0 => Some(avx2_q32::tile_q8_0),
            Q4_K => Some(avx2_k::tile_q4_k),
            Q6_K => Some(avx2_k::tile_q6_k),
            F32 => Some(avx2_float::tile_f32),
            F16 => Some(avx2_float::tile_f16),
            BF16 => Some(avx2_float::tile_bf16),
            _ => None,
        },
    }
}
