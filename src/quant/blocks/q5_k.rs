//! Q5_K: Q4_K plus a fifth level bit (5.5 bits per value).
//!
//! The high bit of element `i` is bit `i / 32` of `qh[i % 32]`; nibbles and
//! scales are laid out as in Q4_K.

use super::k_scales::get_scale_min_k4;
use super::{assert_block_size, QuantBlock, QK_K};
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
            for (l, o) in part.iter_mut().enumerate() {
                *o = dl * self.level(32 * sub + l) as f32 - ml;
            }
        }
    }
}
