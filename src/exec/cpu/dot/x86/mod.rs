//! x86-64 tile kernels, chosen at run time. Every `unsafe fn` here is
//! `#[target_feature]` code; the safe entry points are returned only for a
//! [`SimdPath`] that `matmul` has checked is available.

/// A safe tile entry `$name` that calls `$tile`, an AVX2 (FMA, F16C)
/// `#[target_feature]` function of the tile signature.
macro_rules! avx2_entry {
    ($name:ident, $tile:expr) => {
        pub(in super::super) fn $name(
            w: &WeightMatrix,
            rows: Range<usize>,
            x: &QuantizedActs,
            toks: Range<usize>,
            out: &OutView,
        ) {
            // SAFETY: returned only for paths that include AVX2, FMA and F16C,
            // which matmul checked are available.
            unsafe { $tile(w, rows, x, toks, out) }
        }
    };
}

mod avx2_float;
mod avx2_interleaved;
// Emulating AVX-512 leaves its IQ-type entries unused.
#[cfg_attr(feature = "emulate-avx512", allow(dead_code))]
mod avx2_k;
mod avx2_q32;
mod avx512_entry;
mod avx512_k;
mod avx512_q32;
mod avx512_rows;
/// The intrinsics the AVX-512 kernels name (tests/avx512_emulated.rs puts
/// a scalar model in their place).
#[cfg(not(feature = "emulate-avx512"))]
mod isa512 {
    pub(super) use std::arch::x86_64::*;
}
/// With the developer feature `emulate-avx512`, the whole AVX-512 path
/// runs on that scalar model (exact: integer products, fused multiply-adds,
/// round-to-nearest converts) on any AVX2 machine, so that a real model's
/// outputs on this path can be checked where no AVX-512 CPU is at hand.
#[cfg(feature = "emulate-avx512")]
#[path = "../../../../../tests/avx512_emulated/isa512.rs"]
#[allow(dead_code, unused_imports, clippy::all)]
pub(super) mod isa512;
mod lattice_unpack;
mod util;

// The kernels name `super::OutView` (not `super::super::`), so that
// tests/avx512_emulated.rs can compile them at its root.
use super::{OutView, TileKernel};
use crate::exec::cpu::simd::SimdPath;
use crate::quant::GgmlType;

/// The specialised kernel for `ty` weights on `path`, if there is one.
pub(super) fn tile_kernel(ty: GgmlType, path: SimdPath) -> Option<TileKernel> {
    use GgmlType::*;
    match path {
        SimdPath::Portable => None,
        SimdPath::Avx512Vnni if ty.block_len() == 32 => match ty {
            Q4_0 => Some(avx512_entry::tile_q4_0),
            Q4_1 => Some(avx512_entry::tile_q4_1),
            Q5_0 => Some(avx512_entry::tile_q5_0),
            Q5_1 => Some(avx512_entry::tile_q5_1),
            Q8_0 => Some(avx512_entry::tile_q8_0),
            IQ4_NL => Some(avx512_entry::tile_iq4_nl),
            MXFP4 => Some(avx512_entry::tile_mxfp4),
            _ => None,
        },
        SimdPath::Avx512Vnni if ty == Q4_K => Some(avx512_entry::tile_q4_k),
        SimdPath::Avx512Vnni if ty == Q6_K => Some(avx512_entry::tile_q6_k),
        // Compiled for AVX-512: not where that is emulated.
        #[cfg(not(feature = "emulate-avx512"))]
        SimdPath::Avx512Vnni if ty == IQ4_XS => Some(avx2_k::tile_iq4_xs_wide),
        // Compiled for AVX-512: not where that is emulated.
        #[cfg(not(feature = "emulate-avx512"))]
        SimdPath::Avx512Vnni if ty == TQ1_0 => Some(avx2_k::tile_tq1_0_wide),
        // Compiled for AVX-512: not where that is emulated.
        #[cfg(not(feature = "emulate-avx512"))]
        SimdPath::Avx512Vnni if ty == TQ2_0 => Some(avx2_k::tile_tq2_0_wide),
        // Compiled for AVX-512: not where that is emulated.
        #[cfg(not(feature = "emulate-avx512"))]
        SimdPath::Avx512Vnni if ty == IQ2_XXS => Some(avx2_k::tile_iq2_xxs_wide),
        // Compiled for AVX-512: not where that is emulated.
        #[cfg(not(feature = "emulate-avx512"))]
        SimdPath::Avx512Vnni if ty == IQ2_XS => Some(avx2_k::tile_iq2_xs_wide),
        // Compiled for AVX-512: not where that is emulated.
        #[cfg(not(feature = "emulate-avx512"))]
        SimdPath::Avx512Vnni if ty == IQ2_S => Some(avx2_k::tile_iq2_s_wide),
        // Compiled for AVX-512: not where that is emulated.
        #[cfg(not(feature = "emulate-avx512"))]
        SimdPath::Avx512Vnni if ty == IQ3_XXS => Some(avx2_k::tile_iq3_xxs_wide),
        // Compiled for AVX-512: not where that is emulated.
        #[cfg(not(feature = "emulate-avx512"))]
        SimdPath::Avx512Vnni if ty == IQ3_S => Some(avx2_k::tile_iq3_s_wide),
        // Compiled for AVX-512: not where that is emulated.
        #[cfg(not(feature = "emulate-avx512"))]
        SimdPath::Avx512Vnni if ty == IQ1_S => Some(avx2_k::tile_iq1_s_wide),
        // Compiled for AVX-512: not where that is emulated.
        #[cfg(not(feature = "emulate-avx512"))]
        SimdPath::Avx512Vnni if ty == IQ1_M => Some(avx2_k::tile_iq1_m_wide),
        SimdPath::Avx2 | SimdPath::Avx512Vnni => match ty {
            // GGUF order where the matrix has no interleaved copy.
            Q4_0 => Some(avx2_interleaved::tile_q4_0),
            Q4_1 => Some(avx2_q32::tile_q4_1),
            Q5_0 => Some(avx2_interleaved::tile_q5_0),
            Q5_1 => Some(avx2_q32::tile_q5_1),
            Q8_0 => Some(avx2_interleaved::tile_q8_0),
            IQ4_NL => Some(avx2_q32::tile_iq4_nl),
            MXFP4 => Some(avx2_q32::tile_mxfp4),
            Q4_K => Some(avx2_k::tile_q4_k),
            Q6_K => Some(avx2_k::tile_q6_k),
            IQ4_XS => Some(avx2_k::tile_iq4_xs),
            TQ1_0 => Some(avx2_k::tile_tq1_0),
            TQ2_0 => Some(avx2_k::tile_tq2_0),
            IQ2_XXS => Some(avx2_k::tile_iq2_xxs),
            IQ2_XS => Some(avx2_k::tile_iq2_xs),
            IQ2_S => Some(avx2_k::tile_iq2_s),
            IQ3_XXS => Some(avx2_k::tile_iq3_xxs),
            IQ3_S => Some(avx2_k::tile_iq3_s),
            IQ1_S => Some(avx2_k::tile_iq1_s),
            IQ1_M => Some(avx2_k::tile_iq1_m),
            F32 => Some(avx2_float::tile_f32),
            F16 => Some(avx2_float::tile_f16),
            BF16 => Some(avx2_float::tile_bf16),
            _ => None,
        },
    }
}
