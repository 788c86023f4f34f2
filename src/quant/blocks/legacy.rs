//! The 32-element "legacy" formats: Q4_0, Q4_1, Q5_0, Q5_1, Q8_0, Q8_1.
//!
//! Layouts follow ggml-common.h. Nibble order: byte `j` of `qs` holds element
//! `j` in its low nibble and element `j + 16` in its high nibble. Q5 formats
//! keep the fifth bit of element `j` in bit `j` of the little-endian u32 `qh`.
//!
//! The quantizers are bit-exact with the gguf package (`gguf/quants.py`),
//! which mirrors ggml's reference quantizers: the scale is computed in f32 and
//! only stored as f16, and levels come from f32 arithmetic in the same order.

use super::{assert_block_size, QuantBlock, QuantizeBlock};
use crate::quant::round::{absmax, inverse_or_zero, min_max, signed_absmax};
use crate::quant::GgmlType;
use bytemuck::{Pod, Zeroable};
use half::f16;

/// Elements per legacy block.
pub const QK: usize = 32;

/// `x = d * (q - 8)`, q in 0..16.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Pod, Zeroable)]
#[allow(non_camel_case_types)]
pub struct BlockQ4_0 {
    pub d: f16,
    pub qs: [u8; QK / 2],
}

/// `x = d * q + m`, q in 0..16.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Pod, Zeroable)]
#[allow(non_camel_case_types)]
pub struct BlockQ4_1 {
    pub d: f16,
    pub m: f16,
    pub qs: [u8; QK / 2],
}

/// `x = d * (q - 16)`, q in 0..32 (high bit in `qh`).
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Pod, Zeroable)]
#[allow(non_camel_case_types)]
pub struct BlockQ5_0 {
    pub d: f16,
    pub qh: [u8; 4],
    pub qs: [u8; QK / 2],
}

/// `x = d * q + m`, q in 0..32 (high bit in `qh`).
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Pod, Zeroable)]
#[allow(non_camel_case_types)]
pub struct BlockQ5_1 {
    pub d: f16,
    pub m: f16,
    pub qh: [u8; 4],
    pub qs: [u8; QK / 2],
}

/// `x = d * q`, q an i8.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Pod, Zeroable)]
#[allow(non_camel_case_types)]
pub struct BlockQ8_0 {
    pub d: f16,
    pub qs: [i8; QK],
}

/// Q8_0 plus `s = d * sum(qs)`, which Q4_1/Q5_1 dot products use to apply
/// the other operand's offset `m` once per block. An activation format.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Pod, Zeroable)]
#[allow(non_camel_case_types)]
pub struct BlockQ8_1 {
    pub d: f16,
    pub s: f16,
    pub qs: [i8; QK],
}

assert_block_size!(BlockQ4_0, GgmlType::Q4_0);
assert_block_size!(BlockQ4_1, GgmlType::Q4_1);
assert_block_size!(BlockQ5_0, GgmlType::Q5_0);
assert_block_size!(BlockQ5_1, GgmlType::Q5_1);
assert_block_size!(BlockQ8_0, GgmlType::Q8_0);
assert_block_size!(BlockQ8_1, GgmlType::Q8_1);

fn out32(out: &mut [f32]) -> &mut [f32; QK] {
    out.try_into().expect("a legacy block decodes to 32 values")
}

fn in32(x: &[f32]) -> &[f32; QK] {
    x.try_into().expect("a legacy block encodes 32 values")
}

/// The 32 5-bit levels of a Q5 block.
fn q5_levels(qh: [u8; 4], qs: &[u8; 16]) -> [u8; QK] {
    let qh = u32::from_le_bytes(qh);
    let mut q = [0u8; QK];
    for (j, &b) in qs.iter().enumerate() {
        q[j] = (b & 0xf) | (((qh >> j) & 1) as u8) << 4;
        q[j + 16] = (b >> 4) | (((qh >> (j + 16)) & 1) as u8) << 4;
    }
    q
}

/// Packs 32 levels of at most 5 bits into nibbles plus the high-bit word.
fn pack_q5(q: &[u8; QK]) -> ([u8; 4], [u8; 16]) {
    let mut high = 0u32;
    for (j, &v) in q.iter().enumerate() {
        high |= ((v >> 4) as u32 & 1) << j;
    }
    (high.to_le_bytes(), pack_nibbles(q))
}

/// Low nibbles of 32 levels, element `j` and `j + 16` sharing byte `j`.
fn pack_nibbles(q: &[u8; QK]) -> [u8; 16] {
    let mut qs = [0u8; 16];
    for j in 0..16 {
        qs[j] = (q[j] & 0xf) | (q[j + 16] & 0xf) << 4;
    }
    qs
}

impl QuantBlock for BlockQ4_0 {
    const TYPE: GgmlType = GgmlType::Q4_0;
    fn dequantize_into(&self, out: &mut [f32]) {
        let (out, d) = (out32(out), self.d.to_f32());
        for (j, &b) in self.qs.iter().enumerate() {
            out[j] = d * ((b & 0xf) as i32 - 8) as f32;
            out[j + 16] = d * ((b >> 4) as i32 - 8) as f32;
        }
    }
}

impl QuantizeBlock for BlockQ4_0 {
    fn quantize(x: &[f32]) -> Self {
        // The largest-magnitude element maps to level 0 exactly (q - 8 = -8).
        let d = signed_absmax(x) / -8.0;
        let id = inverse_or_zero(d);
        let q = in32(x).map(|v| ((v * id + 8.5).trunc() as u8).min(15));
        BlockQ4_0 {
            d: f16::from_f32(d),
            qs: pack_nibbles(&q),
        }
    }
}

impl QuantBlock for BlockQ4_1 {
    const TYPE: GgmlType = GgmlType::Q4_1;
    fn dequantize_into(&self, out: &mut [f32]) {
        let (out, d, m) = (out32(out), self.d.to_f32(), self.m.to_f32());
        for (j, &b) in self.qs.iter().enumerate() {
            out[j] = d * (b & 0xf) as f32 + m;
            out[j + 16] = d * (b >> 4) as f32 + m;
        }
    }
}

impl QuantizeBlock for BlockQ4_1 {
    fn quantize(x: &[f32]) -> Self {
        let x = in32(x);
        let (min, max) = min_max(x);
        let d = (max - min) / 15.0;
        let id = inverse_or_zero(d);
        let q = x.map(|v| (((v - min) * id + 0.5).trunc() as u8).min(15));
        BlockQ4_1 {
            d: f16::from_f32(d),
            m: f16::from_f32(min),
            qs: pack_nibbles(&q),
        }
    }
}

impl QuantBlock for BlockQ5_0 {
    const TYPE: GgmlType = GgmlType::Q5_0;
    fn dequantize_into(&self, out: &mut [f32]) {
        let (out, d) = (out32(out), self.d.to_f32());
        for (o, q) in out.iter_mut().zip(q5_levels(self.qh, &self.qs)) {
            *o = d * (q as i32 - 16) as f32;
        }
    }
}

impl QuantizeBlock for BlockQ5_0 {
    fn quantize(x: &[f32]) -> Self {
        let d = signed_absmax(x) / -16.0;
        let id = inverse_or_zero(d);
        let q = in32(x).map(|v| ((v * id + 16.5).trunc() as u8).min(31));
        let (qh, qs) = pack_q5(&q);
        BlockQ5_0 {
            d: f16::from_f32(d),
            qh,
            qs,
        }
    }
}

impl QuantBlock for BlockQ5_1 {
    const TYPE: GgmlType = GgmlType::Q5_1;
    fn dequantize_into(&self, out: &mut [f32]) {
        let (out, d, m) = (out32(out), self.d.to_f32(), self.m.to_f32());
        for (o, q) in out.iter_mut().zip(q5_levels(self.qh, &self.qs)) {
            *o = d * q as f32 + m;
        }
    }
}

impl QuantizeBlock for BlockQ5_1 {
    fn quantize(x: &[f32]) -> Self {
        let x = in32(x);
        let (min, max) = min_max(x);
        let d = (max - min) / 31.0;
        let id = inverse_or_zero(d);
        let q = x.map(|v| (((v - min) * id + 0.5).trunc() as u8).min(31));
        let (qh, qs) = pack_q5(&q);
        BlockQ5_1 {
            d: f16::from_f32(d),
            m: f16::from_f32(min),
            qh,
            qs,
        }
    }
}

/// Q8 levels of 32 values and the f32 scale they were taken with.
/// `f32::round` is half away from zero, ggml's `roundf`.
fn q8_levels(x: &[f32]) -> (f32, [i8; QK]) {
    let d = absmax(x) / 127.0;
    let id = inverse_or_zero(d);
    (d, in32(x).map(|v| (v * id).round() as i8))
}

impl QuantBlock for BlockQ8_0 {
    const TYPE: GgmlType = GgmlType::Q8_0;
    fn dequantize_into(&self, out: &mut [f32]) {
        let (out, d) = (out32(out), self.d.to_f32());
        for (o, &q) in out.iter_mut().zip(&self.qs) {
            *o = q as f32 * d;
        }
    }
}

impl QuantizeBlock for BlockQ8_0 {
    fn quantize(x: &[f32]) -> Self {
        let (d, qs) = q8_levels(x);
        BlockQ8_0 {
            d: f16::from_f32(d),
            qs,
        }
    }
}

impl QuantBlock for BlockQ8_1 {
    const TYPE: GgmlType = GgmlType::Q8_1;
    fn dequantize_into(&self, out: &mut [f32]) {
        let (out, d) = (out32(out), self.d.to_f32());
        for (o, &q) in out.iter_mut().zip(&self.qs) {
            *o = q as f32 * d;
        }
    }
}

impl QuantizeBlock for BlockQ8_1 {
    fn quantize(x: &[f32]) -> Self {
        let (d, qs) = q8_levels(x);
        let sum: i32 = qs.iter().map(|&q| q as i32).sum();
        BlockQ8_1 {
            d: f16::from_f32(d),
            s: f16::from_f32(sum as f32 * d),
            qs,
        }
    }
}
