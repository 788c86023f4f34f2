//! MXFP4 (OCP microscaling, the gpt-oss weights): 32 E2M1 values sharing
//! one power-of-two scale `e` (E8M0), 4.25 bits per value.
//!
//! ggml stores each E2M1 value as a 4-bit index into [`KVALUES_MXFP4`],
//! the E2M1 values doubled so they are integers, and halves the scale to
//! compensate: `x = 2^(e - 128) * kv[q]`. Nibble order as in Q4_0.
//!
//! The quantizer is bit-exact with the gguf package's: `e` from the block's
//! largest magnitude (`floor(log2(max)) - 2 + 127`, which puts the maximum
//! within the top E2M1 binade), then per value the nearest representable
//! value (the first index on a tie).

use super::{assert_block_size, QuantBlock, QuantizeBlock};
use crate::quant::round::absmax;
use crate::quant::GgmlType;
use bytemuck::{Pod, Zeroable};

/// E2M1 values times two, by 4-bit code (format data): sign in bit 3.
pub const KVALUES_MXFP4: [i8; 16] = [0, 1, 2, 3, 4, 6, 8, 12, 0, -1, -2, -3, -4, -6, -8, -12];

/// `x = e8m0_half(e) * kv[q]`.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Pod, Zeroable)]
pub struct BlockMXFP4 {
    pub e: u8,
    pub qs: [u8; 16],
}

assert_block_size!(BlockMXFP4, GgmlType::MXFP4);

/// Half the E8M0 scale `2^(e - 127)`, as an f32 (ggml's
/// `ggml_e8m0_to_fp32_half`): exact for every `e`, subnormal for e < 2.
#[inline]
pub fn e8m0_to_f32_half(e: u8) -> f32 {
    let bits = if e < 2 {
        0x0020_0000u32 << e
    } else {
        (e as u32 - 1) << 23
    };
    f32::from_bits(bits)
}

impl QuantBlock for BlockMXFP4 {
    const TYPE: GgmlType = GgmlType::MXFP4;
    fn dequantize_into(&self, out: &mut [f32]) {
        let out: &mut [f32; 32] = out.try_into().expect("MXFP4 decodes to 32 values");
        let d = e8m0_to_f32_half(self.e);
        for (i, o) in out.iter_mut().enumerate() {
            let q = (self.qs[i % 16] >> (4 * (i / 16))) & 0xf;
            *o = d * KVALUES_MXFP4[q as usize] as f32;
        }
    }
}

impl QuantizeBlock for BlockMXFP4 {
    fn quantize(x: &[f32]) -> Self {
        assert_eq!(x.len(), 32, "MXFP4 encodes 32 values");
        let max = absmax(x);
        // As numpy: log2 in f32, floor, then a wrapping cast to u8.
        let e = if max > 0.0 {
            (max.log2().floor() - 2.0 + 127.0) as i32 as u8
        } else {
            0
        };
        let d = e8m0_to_f32_half(e);
        let mut qs = [0u8; 16];
        for (i, &v) in x.iter().enumerate() {
            let mut best = (0u8, f32::INFINITY);
            for (k, &kv) in KVALUES_MXFP4.iter().enumerate() {
                let err = (d * kv as f32 - v).abs();
                if err < best.1 {
                    best = (k as u8, err);
                }
            }
            qs[i % 16] |= best.0 << (4 * (i / 16));
        }
        BlockMXFP4 { e, qs }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn e8m0_half_is_two_to_the_e_minus_128() {
        assert_eq!(e8m0_to_f32_half(128), 1.0);
        assert_eq!(e8m0_to_f32_half(127), 0.5);
        assert_eq!(e8m0_to_f32_half(2), 2f32.powi(-126));
        assert_eq!(e8m0_to_f32_half(1), 2f32.powi(-127));
        assert_eq!(e8m0_to_f32_half(0), 2f32.powi(-128));
        assert_eq!(e8m0_to_f32_half(255), 2f32.powi(127));
    }
}
