//! TQ1_0 and TQ2_0: ternary weights (BitNet b1.58 style), `x = d * t` with
//! `t` in {-1, 0, 1} and one f16 scale per 256 values.
//!
//! TQ2_0 (2.0625 bits per value) stores `t + 1` in two bits: element
//! `128h + 32n + m` is bits `2n..2n+2` of `qs[32h + m]`.
//!
//! TQ1_0 (1.6875 bits per value) packs five trits per byte as a base-3
//! fraction: the digits `d0..d4` (most significant first) of a byte's value
//! `v = Σ d_k 3^(4-k)` are stored as `ceil(v * 256 / 243)`, so digit `k` is
//! recovered as `((byte * 3^k mod 256) * 3) >> 8` (ggml's trick, no
//! division). `qs[0..32]` holds elements `32k + m` (digit `k` of byte `m`),
//! `qs[32..48]` elements `160 + 16k + m`, and `qh[0..4]` (four digits, the
//! fifth zero) elements `240 + 4k + m`.
//!
//! Both quantizers are bit-exact with the gguf package's: `d` is the block's
//! largest magnitude, `t = round(x / d)` half away from zero.

use super::{assert_block_size, GroupScaled, QuantBlock, QuantizeBlock, QK_K};
use crate::quant::round::{absmax, inverse_or_zero};
use crate::quant::GgmlType;
use bytemuck::{Pod, Zeroable};
use half::f16;

#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Pod, Zeroable)]
#[allow(non_camel_case_types)]
pub struct BlockTQ1_0 {
    pub qs: [u8; 48],
    pub qh: [u8; 4],
    pub d: f16,
}

#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Pod, Zeroable)]
#[allow(non_camel_case_types)]
pub struct BlockTQ2_0 {
    pub qs: [u8; 64],
    pub d: f16,
}

assert_block_size!(BlockTQ1_0, GgmlType::TQ1_0);
assert_block_size!(BlockTQ2_0, GgmlType::TQ2_0);

/// Where TQ1_0 keeps element `i`: (byte index into `qs ++ qh`, digit).
#[inline]
fn tq1_place(i: usize) -> (usize, u32) {
    match i {
        0..160 => (i % 32, (i / 32) as u32),
        160..240 => (32 + (i - 160) % 16, ((i - 160) / 16) as u32),
        _ => (48 + (i - 240) % 4, ((i - 240) / 4) as u32),
    }
}

/// Digit `k` (0..5, most significant first) of a TQ1_0 byte, 0..=2.
#[inline]
pub fn tq1_digit(byte: u8, k: u32) -> u8 {
    let shifted = byte.wrapping_mul(3u8.pow(k));
    ((shifted as u16 * 3) >> 8) as u8
}

impl BlockTQ1_0 {
    /// The trit `t + 1` (0..=2) of element `i` (0..256).
    #[inline]
    pub fn level(&self, i: usize) -> u8 {
        let (at, k) = tq1_place(i);
        let byte = if at < 48 {
            self.qs[at]
        } else {
            self.qh[at - 48]
        };
        tq1_digit(byte, k)
    }
}

impl BlockTQ2_0 {
    /// The trit `t + 1` (0..=3; 3 never written) of element `i` (0..256).
    #[inline]
    pub fn level(&self, i: usize) -> u8 {
        let (h, n, m) = (i / 128, (i % 128) / 32, i % 32);
        (self.qs[32 * h + m] >> (2 * n)) & 3
    }
}

impl QuantBlock for BlockTQ1_0 {
    const TYPE: GgmlType = GgmlType::TQ1_0;
    fn dequantize_into(&self, out: &mut [f32]) {
        let out: &mut [f32; QK_K] = out.try_into().expect("TQ1_0 decodes to 256 values");
        let d = self.d.to_f32();
        for (i, o) in out.iter_mut().enumerate() {
            *o = d * (self.level(i) as i32 - 1) as f32;
        }
    }
}

impl QuantBlock for BlockTQ2_0 {
    const TYPE: GgmlType = GgmlType::TQ2_0;
    fn dequantize_into(&self, out: &mut [f32]) {
        let out: &mut [f32; QK_K] = out.try_into().expect("TQ2_0 decodes to 256 values");
        let d = self.d.to_f32();
        for (i, o) in out.iter_mut().enumerate() {
            *o = d * (self.level(i) as i32 - 1) as f32;
        }
    }
}

impl GroupScaled for BlockTQ2_0 {
    fn group_scaled(&self, q: &mut [i8; QK_K], sc: &mut [i32; 16]) -> f32 {
        sc.fill(1);
        for (half, bytes) in q.chunks_exact_mut(128).zip(self.qs.chunks_exact(32)) {
            for (n, part) in half.chunks_exact_mut(32).enumerate() {
                for (v, &b) in part.iter_mut().zip(bytes) {
                    *v = ((b >> (2 * n)) & 3) as i8 - 1;
                }
            }
        }
        self.d.to_f32()
    }
}

impl GroupScaled for BlockTQ1_0 {
    /// Byte by byte rather than through [`BlockTQ1_0::level`]: each next
    /// digit is the previous shifted value times 3 (mod 256).
    fn group_scaled(&self, q: &mut [i8; QK_K], sc: &mut [i32; 16]) -> f32 {
        sc.fill(1);
        let runs: [(&[u8], usize, usize, usize); 3] = [
            (&self.qs[..32], 0, 32, 5),
            (&self.qs[32..], 160, 16, 5),
            (&self.qh, 240, 4, 4),
        ];
        for (run, start, stride, digits) in runs {
            for (m, &b) in run.iter().enumerate() {
                let mut v = b;
                for k in 0..digits {
                    q[start + stride * k + m] = ((v as u16 * 3) >> 8) as i8 - 1;
                    v = v.wrapping_mul(3);
                }
            }
        }
        self.d.to_f32()
    }
}

/// `t + 1` for each value and the f32 scale (gguf's `np_roundf`, half away from zero).
fn trits(x: &[f32]) -> (f32, [u8; QK_K]) {
    let x: &[f32; QK_K] = x.try_into().expect("a ternary block encodes 256 values");
    let d = absmax(x);
    let id = inverse_or_zero(d);
    (d, x.map(|v| ((v * id).round() as i32 + 1) as u8))
}

impl QuantizeBlock for BlockTQ1_0 {
    fn quantize(x: &[f32]) -> Self {
        let (d, t) = trits(x);
        let mut packed = [0u16; 52];
        for (i, &v) in t.iter().enumerate() {
            let (at, k) = tq1_place(i);
            packed[at] += v as u16 * 3u16.pow(4 - k);
        }
        // ceil(v * 256 / 243): the smallest byte whose digits decode to v.
        let bytes = packed.map(|v| (v * 256).div_ceil(243) as u8);
        BlockTQ1_0 {
            qs: bytes[..48].try_into().expect("48 bytes"),
            qh: bytes[48..].try_into().expect("4 bytes"),
            d: f16::from_f32(d),
        }
    }
}

impl QuantizeBlock for BlockTQ2_0 {
    fn quantize(x: &[f32]) -> Self {
        let (d, t) = trits(x);
        let mut qs = [0u8; 64];
        for (i, &v) in t.iter().enumerate() {
            let (h, n, m) = (i / 128, (i % 128) / 32, i % 32);
            qs[32 * h + m] |= v << (2 * n);
        }
        BlockTQ2_0 {
            qs,
            d: f16::from_f32(d),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_five_digit_ternary_number_survives_the_byte_encoding() {
        for v in 0u16..243 {
            let byte = (v * 256).div_ceil(243) as u8;
            let mut rebuilt = 0u16;
            for k in 0..5 {
                rebuilt = rebuilt * 3 + tq1_digit(byte, k) as u16;
            }
            assert_eq!(rebuilt, v, "byte {byte}");
        }
    }

    #[test]
    fn ternary_blocks_round_trip_exactly() {
        let x: Vec<f32> = (0..256).map(|i| ((i * 7 % 3) as f32 - 1.0) * 0.5).collect();
        let mut y = [0f32; 256];
        BlockTQ1_0::quantize(&x).dequantize_into(&mut y);
        assert_eq!(&x[..], &y[..]);
        BlockTQ2_0::quantize(&x).dequantize_into(&mut y);
        assert_eq!(&x[..], &y[..]);
    }
}
