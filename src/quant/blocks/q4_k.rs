//! Q4_K: 256 values in 8 sub-blocks of 32, `x = d * sc * q - dmin * m` with
//! 4-bit levels and 6-bit sub-block scale/min (4.5 bits per value).
//!
//! Levels: the 32-byte run `r` (0..4) of `qs` holds sub-block `2r` in its
//! low nibbles and sub-block `2r + 1` in its high nibbles. Scales: see
//! [`super::k_scales`].

use super::k_scales::{get_scale_min_k4, pack_scale_min_k4};
use super::{assert_block_size, QuantBlock, QuantizeBlock, QK_K};
use crate::quant::fit::{fit_affine, quantize_unsigned_scales, requantize_affine, Fan};
use crate::quant::GgmlType;
use bytemuck::{Pod, Zeroable};
use half::f16;

#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Pod, Zeroable)]
pub struct BlockQ4K {
    pub d: f16,
    pub dmin: f16,
    pub scales: [u8; 12],
    pub qs: [u8; QK_K / 2],
}

assert_block_size!(BlockQ4K, GgmlType::Q4_K);

impl BlockQ4K {
    /// The 4-bit level of element `i` (0..256).
    #[inline]
    pub fn level(&self, i: usize) -> u8 {
        let (sub, l) = (i / 32, i % 32);
        (self.qs[32 * (sub / 2) + l] >> (4 * (sub % 2))) & 0xf
    }
}

impl QuantBlock for BlockQ4K {
    const TYPE: GgmlType = GgmlType::Q4_K;
    fn dequantize_into(&self, out: &mut [f32]) {
        let out: &mut [f32; QK_K] = out.try_into().expect("Q4_K decodes to 256 values");
        let (d, dmin) = (self.d.to_f32(), self.dmin.to_f32());
        for (sub, part) in out.chunks_exact_mut(32).enumerate() {
            let (sc, m) = get_scale_min_k4(sub, &self.scales);
            let (dl, ml) = (d * sc as f32, dmin * m as f32);
            let run = &self.qs[32 * (sub / 2)..32 * (sub / 2) + 32];
            let shift = 4 * (sub % 2);
            for (o, &b) in part.iter_mut().zip(run) {
                *o = dl * ((b >> shift) & 0xf) as f32 - ml;
            }
        }
    }
}

impl QuantizeBlock for BlockQ4K {
    fn quantize(x: &[f32]) -> Self {
        let x: &[f32; QK_K] = x.try_into().expect("Q4_K encodes 256 values");
        let mut levels = [0u8; QK_K];
        let (scales, mins) = fit_subblocks(x, 15, FAN_Q4K, &mut levels);
        let (d, sc) = quantize_unsigned_scales(&scales, 63);
        let (dmin, m) = quantize_unsigned_scales(&mins, 63);
        for (sub, (xs, ls)) in x
            .chunks_exact(32)
            .zip(levels.chunks_exact_mut(32))
            .enumerate()
        {
            let scale = d.to_f32() * sc[sub] as f32;
            requantize_affine(xs, scale, dmin.to_f32() * m[sub] as f32, 15, ls);
        }
        let mut qs = [0u8; QK_K / 2];
        for (sub, ls) in levels.chunks_exact(32).enumerate() {
            let run = &mut qs[32 * (sub / 2)..32 * (sub / 2) + 32];
            for (q, &l) in run.iter_mut().zip(ls) {
                *q |= l << (4 * (sub % 2));
            }
        }
        BlockQ4K {
            d,
            dmin,
            scales: pack_scale_min_k4(&sc, &m),
            qs,
        }
    }
}

/// ggml's search for 4-bit groups: 21 scales from (15 - 1) to (15 + 1) / range.
const FAN_Q4K: Fan = Fan {
    first: -1.0,
    step: 0.1,
    steps: 20,
};

/// Fits each 32-value sub-block (Q4_K and Q5_K): its scales and offsets.
pub(crate) fn fit_subblocks(
    x: &[f32; QK_K],
    nmax: u8,
    fan: Fan,
    levels: &mut [u8; QK_K],
) -> ([f32; 8], [f32; 8]) {
    let (mut scales, mut mins) = ([0f32; 8], [0f32; 8]);
    // Unit weights: the fit minimises plain squared error. (ggml weights by
    // RMS + |x|; that measured slightly worse RMS on llama.cpp's test data.)
    let w = [1.0f32; 32];
    for (sub, (xs, ls)) in x
        .chunks_exact(32)
        .zip(levels.chunks_exact_mut(32))
        .enumerate()
    {
        let fit = fit_affine(xs, &w, nmax, fan, ls);
        (scales[sub], mins[sub]) = (fit.scale, fit.offset);
    }
    (scales, mins)
}
