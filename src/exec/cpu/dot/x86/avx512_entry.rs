//! The AVX-512 VNNI kernels' entry points: the only `#[target_feature]`
//! code of the rows-in-lanes kernels, so that tests/avx512_emulated.rs can
//! compile the kernels themselves against a scalar model of the
//! instructions.

use std::ops::Range;

use super::super::OutView;
use super::avx512_k::{Q4K, Q6K};
use super::avx512_q32::{Lanes32, IQ4NL, MXFP4, Q4_0, Q4_1, Q5_0, Q5_1, Q8_0};
use super::avx512_rows::{tile, LaneKernel};
use crate::exec::cpu::acts::QuantizedActs;
use crate::exec::cpu::weights::WeightMatrix;

// Emulated (feature `emulate-avx512`), the kernels must not be compiled
// for AVX-512: the compiler could vectorise the scalar model with it.
#[cfg_attr(
    not(feature = "emulate-avx512"),
    target_feature(enable = "avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni")
)]
unsafe fn tile_512<K: LaneKernel>(
    w: &WeightMatrix,
    rows: Range<usize>,
    x: &QuantizedActs,
    toks: Range<usize>,
    out: &OutView,
) {
    unsafe { tile::<K>(w, rows, x, toks, out) }
}

macro_rules! entry {
    ($name:ident, $kernel:ty) => {
        pub(super) fn $name(
            w: &WeightMatrix,
            rows: Range<usize>,
            x: &QuantizedActs,
            toks: Range<usize>,
            out: &OutView,
        ) {
            // SAFETY: returned only for the Avx512Vnni path, whose features
            // matmul checked are available.
            unsafe { tile_512::<$kernel>(w, rows, x, toks, out) }
        }
    };
}

entry!(tile_q4_0, Lanes32<Q4_0>);
entry!(tile_q4_1, Lanes32<Q4_1>);
entry!(tile_q5_0, Lanes32<Q5_0>);
entry!(tile_q5_1, Lanes32<Q5_1>);
entry!(tile_q8_0, Lanes32<Q8_0>);
entry!(tile_iq4_nl, Lanes32<IQ4NL>);
entry!(tile_mxfp4, Lanes32<MXFP4>);
entry!(tile_q4_k, Q4K);
entry!(tile_q6_k, Q6K);
