//! The plain float types as one-element "blocks": F32, F16 and BF16.
//!
//! F16 uses IEEE binary16 with round-to-nearest-even from f32 (as numpy's
//! `astype(float16)`); BF16 keeps the top 16 bits of an f32, rounded to
//! nearest even, NaNs forced quiet (ggml's `ggml_compute_fp32_to_bf16`, which
//! the gguf package mirrors bit for bit).

use super::{QuantBlock, QuantizeBlock};
use crate::quant::GgmlType;
use half::{bf16, f16};

super::assert_block_size!(f32, GgmlType::F32);
super::assert_block_size!(f16, GgmlType::F16);
super::assert_block_size!(bf16, GgmlType::BF16);

impl QuantBlock for f32 {
    const TYPE: GgmlType = GgmlType::F32;
    fn dequantize_into(&self, out: &mut [f32]) {
        let [out] = out else {
            panic!("F32 block is one value")
        };
        *out = *self;
    }
}

impl QuantizeBlock for f32 {
    fn quantize(x: &[f32]) -> Self {
        let [x] = x else {
            panic!("F32 block is one value")
        };
        *x
    }
}

impl QuantBlock for f16 {
    const TYPE: GgmlType = GgmlType::F16;
    fn dequantize_into(&self, out: &mut [f32]) {
        let [out] = out else {
            panic!("F16 block is one value")
        };
        *out = self.to_f32();
    }
}

impl QuantizeBlock for f16 {
    fn quantize(x: &[f32]) -> Self {
        let [x] = x else {
            panic!("F16 block is one value")
        };
        f16::from_f32(*x)
    }
}

impl QuantBlock for bf16 {
    const TYPE: GgmlType = GgmlType::BF16;
    fn dequantize_into(&self, out: &mut [f32]) {
        let [out] = out else {
            panic!("BF16 block is one value")
        };
        *out = bf16_to_f32(*self);
    }
}

impl QuantizeBlock for bf16 {
    fn quantize(x: &[f32]) -> Self {
        let [x] = x else {
            panic!("BF16 block is one value")
        };
        bf16_from_f32(*x)
    }
}

/// BF16 is the high half of an f32: widening is exact.
#[inline]
pub fn bf16_to_f32(x: bf16) -> f32 {
    f32::from_bits((x.to_bits() as u32) << 16)
}

/// Narrows to BF16 with round-to-nearest-even; a NaN stays a (quiet) NaN.
#[inline]
pub fn bf16_from_f32(x: f32) -> bf16 {
    let bits = x.to_bits();
    if bits & 0x7fff_ffff > 0x7f80_0000 {
        // Truncating could clear every mantissa bit and turn NaN into Inf.
        return bf16::from_bits((bits >> 16) as u16 | 0x0040);
    }
    let round = 0x7fff + ((bits >> 16) & 1);
    bf16::from_bits(((bits as u64 + round as u64) >> 16) as u16)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bf16_rounds_ties_to_even() {
        // 1 + 2^-8 lies halfway between two BF16 values; the even one is 1.0.
        assert_eq!(bf16_from_f32(1.0 + 1.0 / 256.0).to_bits(), 0x3f80);
        assert_eq!(bf16_from_f32(1.0 + 3.0 / 256.0).to_bits(), 0x3f82);
    }

    #[test]
    fn bf16_keeps_nan_a_nan() {
        let nan = f32::from_bits(0x7f80_0001);
        assert!(bf16_to_f32(bf16_from_f32(nan)).is_nan());
    }
}
