//! Q6_K: 256 values in 16 groups of 16, `x = d * sc * (q - 32)` with 6-bit
//! levels and signed 8-bit group scales (6.5625 bits per value).
//!
//! Per 128-element half `h`: low nibbles come from the 64-byte run
//! `ql[64h..]` (byte `l` low: element `l`, byte `l + 32` low: `l + 32`,
//! byte `l` high: `l + 64`, byte `l + 32` high: `l + 96`); the two high bits
//! of element `32 s + l` sit at bits `2 s` of `qh[32h + l]`.

use super::{assert_block_size, QuantBlock, QuantizeBlock, QK_K};
use crate::quant::fit::{fit_symmetric, quantize_signed_scales, requantize_symmetric};
use crate::quant::GgmlType;
use bytemuck::{Pod, Zeroable};
use half::f16;

#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Pod, Zeroable)]
pub struct BlockQ6K {
    pub ql: [u8; QK_K / 2],
    pub qh: [u8; QK_K / 4],
    pub scales: [i8; QK_K / 16],
    pub d: f16,
}

assert_block_size!(BlockQ6K, GgmlType::Q6_K);

impl BlockQ6K {
    /// The signed level (-32..32) of element `i` (0..256).
    #[inline]
    pub fn level(&self, i: usize) -> i8 {
        let (half, rest) = (i / 128, i % 128);
        let (s, l) = (rest / 32, rest % 32);
        let low_byte = self.ql[64 * half + 32 * (s % 2) + l];
        let low = (low_byte >> (4 * (s / 2))) & 0xf;
        let high = (self.qh[32 * half + l] >> (2 * s)) & 3;
        (low | high << 4) as i8 - 32
    }
}

impl BlockQ6K {
    /// All 256 signed levels, in element order.
    pub fn levels(&self) -> [i8; QK_K] {
        let mut out = [0i8; QK_K];
        for half in 0..2 {
            let (ql, qh) = (
                &self.ql[64 * half..64 * half + 64],
                &self.qh[32 * half..32 * half + 32],
            );
            let out = &mut out[128 * half..128 * half + 128];
            for l in 0..32 {
                let (a, b, h) = (ql[l], ql[l + 32], qh[l]);
                out[l] = ((a & 0xf) | (h & 3) << 4) as i8 - 32;
                out[l + 32] = ((b & 0xf) | ((h >> 2) & 3) << 4) as i8 - 32;
                out[l + 64] = ((a >> 4) | ((h >> 4) & 3) << 4) as i8 - 32;
                out[l + 96] = ((b >> 4) | ((h >> 6) & 3) << 4) as i8 - 32;
            }
        }
        out
    }
}

impl QuantBlock for BlockQ6K {
    const TYPE: GgmlType = GgmlType::Q6_K;
    fn dequantize_into(&self, out: &mut [f32]) {
        let out: &mut [f32; QK_K] = out.try_into().expect("Q6_K decodes to 256 values");
        let d = self.d.to_f32();
        let levels = self.levels();
        for ((group, ls), &sc) in out
            .chunks_exact_mut(16)
            .zip(levels.chunks_exact(16))
            .zip(&self.scales)
        {
            let dl = d * sc as f32;
            for (o, &l) in group.iter_mut().zip(ls) {
                *o = dl * l as f32;
            }
        }
    }
}

impl QuantizeBlock for BlockQ6K {
    fn quantize(x: &[f32]) -> Self {
        let x: &[f32; QK_K] = x.try_into().expect("Q6_K encodes 256 values");
        let mut levels = [0i8; QK_K];
        let mut scales = [0f32; 16];
        let w = [1.0f32; 16];
        for (g, (xs, ls)) in x
            .chunks_exact(16)
            .zip(levels.chunks_exact_mut(16))
            .enumerate()
        {
            scales[g] = fit_symmetric(xs, &w, 32, ls);
        }
        let (d, sc) = quantize_signed_scales(&scales, 128);
        for (g, (xs, ls)) in x
            .chunks_exact(16)
            .zip(levels.chunks_exact_mut(16))
            .enumerate()
        {
            requantize_symmetric(xs, d.to_f32() * sc[g] as f32, 32, ls);
        }
        let (mut ql, mut qh) = ([0u8; QK_K / 2], [0u8; QK_K / 4]);
        for (i, &l) in levels.iter().enumerate() {
            let q = (l + 32) as u8;
            let (half, rest) = (i / 128, i % 128);
            let (s, l) = (rest / 32, rest % 32);
            ql[64 * half + 32 * (s % 2) + l] |= (q & 0xf) << (4 * (s / 2));
            qh[32 * half + l] |= (q >> 4) << (2 * s);
        }
        BlockQ6K {
            ql,
            qh,
            scales: sc,
            d,
        }
    }
}
