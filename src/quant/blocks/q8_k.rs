//! Q8_K: the 8-bit activation format that K-quant dot products pair with.
//!
//! 256 values `x = d * q` with an f32 scale, plus the sum of each group of 16
//! levels (`bsums`), which lets Q2_K..Q5_K dot products apply their per-group
//! minimums without touching the levels again.

use super::{assert_block_size, QuantBlock, QuantizeBlock, QK_K};
use crate::quant::round::{nearest_int, signed_absmax};
use crate::quant::GgmlType;
use bytemuck::{Pod, Zeroable};

#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Pod, Zeroable)]
pub struct BlockQ8K {
    pub d: f32,
    pub qs: [i8; QK_K],
    pub bsums: [i16; QK_K / 16],
}

assert_block_size!(BlockQ8K, GgmlType::Q8_K);

impl QuantBlock for BlockQ8K {
    const TYPE: GgmlType = GgmlType::Q8_K;
    fn dequantize_into(&self, out: &mut [f32]) {
        let out: &mut [f32; QK_K] = out.try_into().expect("Q8_K decodes to 256 values");
        for (o, &q) in out.iter_mut().zip(&self.qs) {
            *o = self.d * q as f32;
        }
    }
}

impl QuantizeBlock for BlockQ8K {
    fn quantize(x: &[f32]) -> Self {
        let x: &[f32; QK_K] = x.try_into().expect("Q8_K encodes 256 values");
        let max = signed_absmax(x);
        if max == 0.0 {
            return BlockQ8K::zeroed();
        }
        // Scaling by -127/max maps the extreme to -127 whatever its sign, so
        // every level fits in -127..=127 (ggml's choice too, for IQ2 kernels).
        let iscale = -127.0 / max;
        let qs = x.map(|v| nearest_int(iscale * v).clamp(-128, 127) as i8);
        let bsums =
            std::array::from_fn(|g| qs[16 * g..16 * (g + 1)].iter().map(|&q| q as i16).sum());
        BlockQ8K {
            d: 1.0 / iscale,
            qs,
            bsums,
        }
    }
}
