//! Q3_K: 256 values in 16 groups of 16, `x = d * sc * (q - 4)` with 3-bit
//! levels and signed 6-bit group scales (3.4375 bits per value).
//!
//! The low two bits of a level are placed as in Q2_K (`qs`); its high bit,
//! for element `i`, is bit `i / 32` of `hmask[i % 32]`. A set high bit means
//! level `q` in 4..8, i.e. no offset is subtracted. Scales: see
//! [`super::k_scales`].

use super::k_scales::{pack_q3_k_scales, unpack_q3_k_scales};
use super::q2_k::pack_2bit;
use super::{assert_block_size, QuantBlock, QuantizeBlock, QK_K};
use crate::quant::fit::{fit_symmetric, quantize_signed_scales, requantize_symmetric};
use crate::quant::GgmlType;
use bytemuck::{Pod, Zeroable};
use half::f16;

#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Pod, Zeroable)]
pub struct BlockQ3K {
    pub hmask: [u8; QK_K / 8],
    pub qs: [u8; QK_K / 4],
    pub scales: [u8; 12],
    pub d: f16,
}

assert_block_size!(BlockQ3K, GgmlType::Q3_K);

impl BlockQ3K {
    /// The signed level (-4..4) of element `i` (0..256).
    #[inline]
    pub fn level(&self, i: usize) -> i8 {
        let (run, rest) = (i / 128, i % 128);
        let low = (self.qs[32 * run + rest % 32] >> (2 * (rest / 32))) & 3;
        let high = (self.hmask[i % 32] >> (i / 32)) & 1;
        low as i8 - if high == 1 { 0 } else { 4 }
    }
}

impl BlockQ3K {
    /// All 256 signed levels, in element order.
    pub fn levels(&self) -> [i8; QK_K] {
        let mut out = [0i8; QK_K];
        for (run, out) in out.chunks_exact_mut(128).enumerate() {
            let qs = &self.qs[32 * run..32 * run + 32];
            for (s, out) in out.chunks_exact_mut(32).enumerate() {
                let bit = 4 * run + s;
                for ((o, &q), &h) in out.iter_mut().zip(qs).zip(&self.hmask) {
                    let low = ((q >> (2 * s)) & 3) as i8;
                    // A clear high bit means the level is offset by -4.
                    *o = low - 4 + 4 * ((h >> bit) & 1) as i8;
                }
            }
        }
        out
    }
}

impl QuantBlock for BlockQ3K {
    const TYPE: GgmlType = GgmlType::Q3_K;
    fn dequantize_into(&self, out: &mut [f32]) {
        let out: &mut [f32; QK_K] = out.try_into().expect("Q3_K decodes to 256 values");
        let d = self.d.to_f32();
        let scales = unpack_q3_k_scales(&self.scales);
        let levels = self.levels();
        for ((group, ls), &sc) in out
            .chunks_exact_mut(16)
            .zip(levels.chunks_exact(16))
            .zip(&scales)
        {
            let dl = d * sc as f32;
            for (o, &l) in group.iter_mut().zip(ls) {
                *o = dl * l as f32;
            }
        }
    }
}

impl QuantizeBlock for BlockQ3K {
    fn quantize(x: &[f32]) -> Self {
        let x: &[f32; QK_K] = x.try_into().expect("Q3_K encodes 256 values");
        let mut levels = [0i8; QK_K];
        let mut scales = [0f32; 16];
        let w = [1.0f32; 16];
        for (g, (xs, ls)) in x
            .chunks_exact(16)
            .zip(levels.chunks_exact_mut(16))
            .enumerate()
        {
            scales[g] = fit_symmetric(xs, &w, 4, ls);
        }
        let (d, sc) = quantize_signed_scales(&scales, 32);
        for (g, (xs, ls)) in x
            .chunks_exact(16)
            .zip(levels.chunks_exact_mut(16))
            .enumerate()
        {
            requantize_symmetric(xs, d.to_f32() * sc[g] as f32, 4, ls);
        }
        let biased = levels.map(|l| (l + 4) as u8);
        let mut hmask = [0u8; QK_K / 8];
        for (i, &q) in biased.iter().enumerate() {
            hmask[i % 32] |= (q >> 2) << (i / 32);
        }
        BlockQ3K {
            hmask,
            qs: pack_2bit(&biased),
            scales: pack_q3_k_scales(&sc),
            d,
        }
    }
}
