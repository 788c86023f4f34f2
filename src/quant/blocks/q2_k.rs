//! Q2_K: 256 values in 16 groups of 16, `x = d * sc * q - dmin * m` with
//! 2-bit levels and 4-bit group scale `sc` / min `m` (2.625 bits per value).
//!
//! Levels: byte `l` of the 32-byte run `n` (0..2) holds, at bits `2 * s`,
//! the level of element `128 * n + 32 * s + l`. Group `g` covers elements
//! `16 * g..16 * g + 16`; `scales[g]` is `sc | m << 4`.

use super::{assert_block_size, QuantBlock, QuantizeBlock, QK_K};
use crate::quant::fit::{fit_affine, quantize_unsigned_scales, requantize_affine, Fan};
use crate::quant::GgmlType;
use bytemuck::{Pod, Zeroable};
use half::f16;

#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Pod, Zeroable)]
pub struct BlockQ2K {
    pub scales: [u8; QK_K / 16],
    pub qs: [u8; QK_K / 4],
    pub d: f16,
    pub dmin: f16,
}

assert_block_size!(BlockQ2K, GgmlType::Q2_K);

impl BlockQ2K {
    /// The 2-bit level of element `i` (0..256).
    #[inline]
    pub fn level(&self, i: usize) -> u8 {
        let (run, rest) = (i / 128, i % 128);
        (self.qs[32 * run + rest % 32] >> (2 * (rest / 32))) & 3
    }
}

impl QuantBlock for BlockQ2K {
    const TYPE: GgmlType = GgmlType::Q2_K;
    fn dequantize_into(&self, out: &mut [f32]) {
        let out: &mut [f32; QK_K] = out.try_into().expect("Q2_K decodes to 256 values");
        let (d, dmin) = (self.d.to_f32(), self.dmin.to_f32());
        for (g, group) in out.chunks_exact_mut(16).enumerate() {
            let dl = d * (self.scales[g] & 0xf) as f32;
            let ml = dmin * (self.scales[g] >> 4) as f32;
            for (l, o) in group.iter_mut().enumerate() {
                *o = dl * self.level(16 * g + l) as f32 - ml;
            }
        }
    }
}

impl QuantizeBlock for BlockQ2K {
    fn quantize(x: &[f32]) -> Self {
        let x: &[f32; QK_K] = x.try_into().expect("Q2_K encodes 256 values");
        let mut levels = [0u8; QK_K];
        let (mut scales, mut mins) = ([0f32; 16], [0f32; 16]);
        let w = [1.0f32; 16];
        for (g, (xs, ls)) in x
            .chunks_exact(16)
            .zip(levels.chunks_exact_mut(16))
            .enumerate()
        {
            let fit = fit_affine(xs, &w, 3, FAN_Q2K, ls);
            (scales[g], mins[g]) = (fit.scale, fit.offset);
        }
        let (d, sc) = quantize_unsigned_scales(&scales, 15);
        let (dmin, m) = quantize_unsigned_scales(&mins, 15);
        for (g, (xs, ls)) in x
            .chunks_exact(16)
            .zip(levels.chunks_exact_mut(16))
            .enumerate()
        {
            let scale = d.to_f32() * sc[g] as f32;
            requantize_affine(xs, scale, dmin.to_f32() * m[g] as f32, 3, ls);
        }
        BlockQ2K {
            scales: std::array::from_fn(|g| sc[g] | m[g] << 4),
            qs: pack_2bit(&levels),
            d,
            dmin,
        }
    }
}

/// ggml's search for 2-bit groups: 16 scales from (3 - 0.5) to (3 + 1) / range.
const FAN_Q2K: Fan = Fan {
    first: -0.5,
    step: 0.1,
    steps: 15,
};

/// Packs 256 2-bit values (Q2_K levels, Q3_K low bits) as [`BlockQ2K::level`] reads them.
pub(crate) fn pack_2bit(levels: &[u8; QK_K]) -> [u8; QK_K / 4] {
    let mut qs = [0u8; QK_K / 4];
    for (i, &l) in levels.iter().enumerate() {
        let (run, rest) = (i / 128, i % 128);
        qs[32 * run + rest % 32] |= (l & 3) << (2 * (rest / 32));
    }
    qs
}
