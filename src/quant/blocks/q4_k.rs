//! Q4_K: 256 values in 8 sub-blocks of 32, `x = d * sc * q - dmin * m` with
//! 4-bit levels and 6-bit sub-block scale/min (4.5 bits per value).
//!
//! Levels: the 32-byte run `r` (0..4) of `qs` holds sub-block `2r` in its
//! low nibbles and sub-block `2r + 1` in its high nibbles. Scales: see
//! [`super::k_scales`].

use super::k_scales::get_scale_min_k4;
use super::{assert_block_size, QuantBlock, QK_K};
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
