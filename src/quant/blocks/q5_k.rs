//! Q5_K: Q4_K plus a fifth level bit (5.5 bits per value).
//!
//! The high bit of element `i` is bit `i / 32` of `qh[i % 32]`; nibbles and
//! scales are laid out as in Q4_K.

use super::k_scales::{get_scale_min_k4, pack_scale_min_k4};
use super::q4_k::fit_subblocks;
use super::{assert_block_size, QuantBlock, QuantizeBlock, QK_K};
use crate::quant::fit::{quantize_unsigned_scales, requantize_affine, Fan};
use crate::quant::GgmlType;
use bytemuck::{Pod, Zeroable};
use half::f16;

#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Pod, Zeroable)]
pub struct BlockQ5K {
    pub d: f16,
    pub dmin: f16,
    pub scales: [u8; 12],
    pub qh: [u8; QK_K / 8],
    pub qs: [u8; QK_K / 2],
}

assert_block_size!(BlockQ5K, GgmlType::Q5_K);

impl BlockQ5K {
    /// The 5-bit level of element `i` (0..256).
    #[inline]
    pub fn level(&self, i: usize) -> u8 {
        let (sub, l) = (i / 32, i % 32);
        let low = (self.qs[32 * (sub / 2) + l] >> (4 * (sub % 2))) & 0xf;
        let high = (self.qh[l] >> sub) & 1;
        low | high << 4
    }
}

impl QuantBlock for BlockQ5K {
    const TYPE: GgmlType = GgmlType::Q5_K;
    fn dequantize_into(&self, out: &mut [f32]) {
        let out: &mut [f32; QK_K] = out.try_into().expect("Q5_K decodes to 256 values");
        let (d, dmin) = (self.d.to_f32(), self.dmin.to_f32());
        for (sub, part) in out.chunks_exact_mut(32).enumerate() {
            let (sc, m) = get_scale_min_k4(sub, &self.scales);
            let (dl, ml) = (d * sc as f32, dmin * m as f32);
            let run = &self.qs[32 * (sub / 2)..32 * (sub / 2) + 32];
            let shift = 4 * (sub % 2);
            for ((o, &b), &h) in part.iter_mut().zip(run).zip(&self.qh) {
                let q = ((b >> shift) & 0xf) | ((h >> sub) & 1) << 4;
                *o = dl * q as f32 - ml;
            }
        }
    }
}

impl QuantizeBlock for BlockQ5K {
    fn quantize(x: &[f32]) -> Self {
        let x: &[f32; QK_K] = x.try_into().expect("Q5_K encodes 256 values");
        let mut levels = [0u8; QK_K];
        let (scales, mins) = fit_subblocks(x, 31, FAN_Q5K, &mut levels);
        let (d, sc) = quantize_unsigned_scales(&scales, 63);
        let (dmin, m) = quantize_unsigned_scales(&mins, 63);
        for (sub, (xs, ls)) in x
            .chunks_exact(32)
            .zip(levels.chunks_exact_mut(32))
            .enumerate()
        {
            let scale = d.to_f32() * sc[sub] as f32;
            requantize_affine(xs, scale, dmin.to_f32() * m[sub] as f32, 31, ls);
        }
        let (mut qs, mut qh) = ([0u8; QK_K / 2], [0u8; QK_K / 8]);
        for (sub, ls) in levels.chunks_exact(32).enumerate() {
            let run = &mut qs[32 * (sub / 2)..32 * (sub / 2) + 32];
            for (l, &v) in ls.iter().enumerate() {
                run[l] |= (v & 0xf) << (4 * (sub % 2));
                qh[l] |= (v >> 4) << sub;
            }
        }
        BlockQ5K {
            d,
            dmin,
            scales: pack_scale_min_k4(&sc, &m),
            qh,
            qs,
        }
    }
}

/// ggml's search for 5-bit groups: 16 scales from (31 - 0.5) to (31 + 1) / range.
const FAN_Q5K: Fan = Fan {
    first: -0.5,
    step: 0.1,
    steps: 15,
};
