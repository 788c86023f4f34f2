//! Portable decoding of ggml weight blocks into small integers and scales.
//!
//! Every quantized type is brought to one of two integer forms, so that one
//! portable dot product (and one dequantizer) serves them all:
//! - 32-element blocks (Q4_0, Q4_1, Q5_0, Q5_1, Q8_0, IQ4_NL, MXFP4):
//!   `x = d*q + m` (IQ4_NL and MXFP4: `q` the codebook value, `m` = 0);
//! - 256-element super-blocks (Q2_K..Q6_K, the IQ and TQ types):
//!   `x = d*sc[g]*q - dmin*mn[g]` for the 16-element group `g = i/16`
//!   (Q4_K/Q5_K's 32-element sub-blocks give two groups the same scale; the
//!   IQ/TQ types have no minimum and come from
//!   [`GroupScaled`](crate::quant::blocks::GroupScaled)).
//!
//! Block layouts are ggml's (`ggml-common.h`); all multi-byte fields are
//! little-endian, scales are IEEE half floats.

use crate::quant::blocks::{
    e8m0_to_f32_half, BlockIQ1M, BlockIQ1S, BlockIQ2S, BlockIQ2XS, BlockIQ2XXS, BlockIQ3S,
    BlockIQ3XXS, BlockIQ4XS, BlockTQ1_0, BlockTQ2_0, GroupScaled, KVALUES_IQ4NL, KVALUES_MXFP4,
};
use crate::quant::GgmlType;

/// A 32-element block: `x[i] = d * q[i] + m`.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Decoded32 {
    pub q: [i8; 32],
    pub d: f32,
    pub m: f32,
}

/// A 256-element super-block: `x[i] = d * sc[i/16] * q[i] - dmin * mn[i/16]`.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Decoded256 {
    pub q: [i8; 256],
    pub sc: [i32; 16],
    pub mn: [i32; 16],
    pub d: f32,
    pub dmin: f32,
}

#[inline]
pub(crate) fn f16_at(b: &[u8], at: usize) -> f32 {
    half::f16::from_bits(u16::from_le_bytes([b[at], b[at + 1]])).to_f32()
}

#[inline]
fn nibbles(qs: &[u8], q: &mut [i8; 32], offset: i8) {
    for j in 0..16 {
        q[j] = (qs[j] & 0x0f) as i8 - offset;
        q[j + 16] = (qs[j] >> 4) as i8 - offset;
    }
}

/// Adds the fifth bit: bit `j` of the little-endian `qh` belongs to element `j`.
#[inline]
fn fifth_bits(qh: &[u8], q: &mut [i8; 32]) {
    let qh = u32::from_le_bytes([qh[0], qh[1], qh[2], qh[3]]);
    for (j, v) in q.iter_mut().enumerate() {
        *v |= (((qh >> j) & 1) << 4) as i8;
    }
}

/// Nibble `j` / `j + 16` layout (as Q4_0), each nibble an index into `book`.
#[inline]
fn codebook_nibbles(qs: &[u8], q: &mut [i8; 32], book: &[i8; 16]) {
    for j in 0..16 {
        q[j] = book[(qs[j] & 0x0f) as usize];
        q[j + 16] = book[(qs[j] >> 4) as usize];
    }
}

/// Decodes one block of a 32-element type. `b` is exactly one block.
pub(crate) fn decode32(ty: GgmlType, b: &[u8]) -> Decoded32 {
    let mut q = [0i8; 32];
    let d = f16_at(b, 0);
    let m = match ty {
        GgmlType::Q4_0 => {
            nibbles(&b[2..18], &mut q, 8);
            0.0
        }
        GgmlType::Q4_1 => {
            nibbles(&b[4..20], &mut q, 0);
            f16_at(b, 2)
        }
        GgmlType::Q5_0 => {
            nibbles(&b[6..22], &mut q, 0);
            fifth_bits(&b[2..6], &mut q);
            q.iter_mut().for_each(|v| *v -= 16);
            0.0
        }
        GgmlType::Q5_1 => {
            nibbles(&b[8..24], &mut q, 0);
            fifth_bits(&b[4..8], &mut q);
            f16_at(b, 2)
        }
        GgmlType::Q8_0 => {
            for (v, &s) in q.iter_mut().zip(&b[2..34]) {
                *v = s as i8;
            }
            0.0
        }
        GgmlType::IQ4_NL => {
            codebook_nibbles(&b[2..18], &mut q, &KVALUES_IQ4NL);
            0.0
        }
        GgmlType::MXFP4 => {
            codebook_nibbles(&b[1..17], &mut q, &KVALUES_MXFP4);
            return Decoded32 {
                q,
                d: e8m0_to_f32_half(b[0]),
                m: 0.0,
            };
        }
        _ => unreachable!("decode32 called for {ty}"),
    };
    Decoded32 { q, d, m }
}

/// The 6-bit scale and min of sub-block `j` (0..8) of Q4_K/Q5_K's 12 bytes.
#[inline]
pub(crate) fn scale_min_k4(j: usize, s: &[u8]) -> (i32, i32) {
    if j < 4 {
        ((s[j] & 63) as i32, (s[j + 4] & 63) as i32)
    } else {
        let sc = (s[j + 4] & 0x0f) | ((s[j - 4] >> 6) << 4);
        let mn = (s[j + 4] >> 4) | ((s[j] >> 6) << 4);
        (sc as i32, mn as i32)
    }
}

/// Q3_K's sixteen 6-bit scales (stored with an offset of 32): low nibbles in
/// bytes 0..8 (groups 0..8 low, 8..16 high nibble), high bit pairs in 8..12.
#[inline]
pub(crate) fn q3k_scale(g: usize, s: &[u8]) -> i32 {
    let low = if g < 8 { s[g] & 0x0f } else { s[g - 8] >> 4 };
    let high = (s[8 + g % 4] >> (2 * (g / 4))) & 3;
    (low | (high << 4)) as i32 - 32
}

/// Decodes one super-block of a K-quant type. `b` is exactly one block.
pub(crate) fn decode256(ty: GgmlType, b: &[u8]) -> Decoded256 {
    let mut o = Decoded256 {
        q: [0; 256],
        sc: [0; 16],
        mn: [0; 16],
        d: 0.0,
        dmin: 0.0,
    };
    match ty {
        GgmlType::Q2_K => decode_q2k(b, &mut o),
        GgmlType::Q3_K => decode_q3k(b, &mut o),
        GgmlType::Q4_K | GgmlType::Q5_K => decode_q45k(ty, b, &mut o),
        GgmlType::Q6_K => decode_q6k(b, &mut o),
        GgmlType::IQ4_XS => group_scaled::<BlockIQ4XS>(b, &mut o),
        GgmlType::TQ1_0 => group_scaled::<BlockTQ1_0>(b, &mut o),
        GgmlType::TQ2_0 => group_scaled::<BlockTQ2_0>(b, &mut o),
        GgmlType::IQ2_XXS => group_scaled::<BlockIQ2XXS>(b, &mut o),
        GgmlType::IQ2_XS => group_scaled::<BlockIQ2XS>(b, &mut o),
        GgmlType::IQ2_S => group_scaled::<BlockIQ2S>(b, &mut o),
        GgmlType::IQ3_XXS => group_scaled::<BlockIQ3XXS>(b, &mut o),
        GgmlType::IQ3_S => group_scaled::<BlockIQ3S>(b, &mut o),
        GgmlType::IQ1_S => group_scaled::<BlockIQ1S>(b, &mut o),
        GgmlType::IQ1_M => group_scaled::<BlockIQ1M>(b, &mut o),
        _ => unreachable!("decode256 called for {ty}"),
    }
    o
}

/// The IQ/TQ types: their own integer form, no minimum.
fn group_scaled<B: GroupScaled>(b: &[u8], o: &mut Decoded256) {
    let block: B = bytemuck::pod_read_unaligned(b);
    o.d = block.group_scaled(&mut o.q, &mut o.sc);
}

/// Q2_K: scales[16] (low nibble scale, high nibble min), qs[64], d, dmin.
/// Element `i` is bits `2*((i%128)/32)` of `qs[32*(i/128) + i%32]`.
fn decode_q2k(b: &[u8], o: &mut Decoded256) {
    let (scales, qs) = (&b[0..16], &b[16..80]);
    o.d = f16_at(b, 80);
    o.dmin = f16_at(b, 82);
    for g in 0..16 {
        o.sc[g] = (scales[g] & 0x0f) as i32;
        o.mn[g] = (scales[g] >> 4) as i32;
    }
    for (i, v) in o.q.iter_mut().enumerate() {
        let byte = qs[32 * (i / 128) + i % 32];
        *v = ((byte >> (2 * ((i % 128) / 32))) & 3) as i8;
    }
}

/// Q3_K: hmask[32], qs[64], scales[12], d. The high bit of element `i` is
/// bit `i/32` of `hmask[i%32]`; a clear bit subtracts 4.
fn decode_q3k(b: &[u8], o: &mut Decoded256) {
    let (hmask, qs, scales) = (&b[0..32], &b[32..96], &b[96..108]);
    o.d = f16_at(b, 108);
    for g in 0..16 {
        o.sc[g] = q3k_scale(g, scales);
    }
    for (i, v) in o.q.iter_mut().enumerate() {
        let low = (qs[32 * (i / 128) + i % 32] >> (2 * ((i % 128) / 32))) & 3;
        let high = (hmask[i % 32] >> (i / 32)) & 1;
        *v = low as i8 - if high == 1 { 0 } else { 4 };
    }
}

/// Q4_K: d, dmin, scales[12], qs[128]; Q5_K adds qh[32] before qs. Sub-block
/// `s = i/32` reads the low (even `s`) or high (odd `s`) nibbles of
/// `qs[32*(s/2)..]`; Q5_K's fifth bit of element `i` is bit `s` of `qh[i%32]`.
fn decode_q45k(ty: GgmlType, b: &[u8], o: &mut Decoded256) {
    o.d = f16_at(b, 0);
    o.dmin = f16_at(b, 2);
    let scales = &b[4..16];
    let (qh, qs) = if ty == GgmlType::Q5_K {
        (Some(&b[16..48]), &b[48..176])
    } else {
        (None, &b[16..144])
    };
    for s in 0..8 {
        let (sc, mn) = scale_min_k4(s, scales);
        o.sc[2 * s..2 * s + 2].fill(sc);
        o.mn[2 * s..2 * s + 2].fill(mn);
    }
    for (i, v) in o.q.iter_mut().enumerate() {
        let s = i / 32;
        let byte = qs[32 * (s / 2) + i % 32];
        let mut q = if s % 2 == 0 { byte & 0x0f } else { byte >> 4 };
        if let Some(qh) = qh {
            q |= ((qh[i % 32] >> s) & 1) << 4;
        }
        *v = q as i8;
    }
}

/// Q6_K: ql[128], qh[64], scales[16] (i8), d. In each 128-element half `h`,
/// quarter `r` of element `i` takes its low nibble from `ql[64h + l + 32(r%2)]`
/// (high nibble when `r >= 2`) and two bits `2r` of `qh[32h + l]`; offset 32.
fn decode_q6k(b: &[u8], o: &mut Decoded256) {
    let (ql, qh, scales) = (&b[0..128], &b[128..192], &b[192..208]);
    o.d = f16_at(b, 208);
    for g in 0..16 {
        o.sc[g] = scales[g] as i8 as i32;
    }
    for (i, v) in o.q.iter_mut().enumerate() {
        let (h, r, l) = (i / 128, (i % 128) / 32, i % 32);
        let byte = ql[64 * h + l + 32 * (r % 2)];
        let low = if r < 2 { byte & 0x0f } else { byte >> 4 };
        let high = (qh[32 * h + l] >> (2 * r)) & 3;
        *v = (low | (high << 4)) as i8 - 32;
    }
}

/// Dequantizes a row of `out.len()` elements of type `ty` from `bytes` (the
/// row's blocks). The caller checks that the sizes agree and that the type
/// is one [`is_computable`] accepts.
pub(crate) fn dequantize_row(ty: GgmlType, bytes: &[u8], out: &mut [f32]) {
    if GgmlType::NEWER_WEIGHT_QUANTS.contains(&ty) {
        // The reference decoders, bit for bit (the integer forms round
        // differently: IQ1's `d/8 * (sc*q)` is not numpy's `d*sc * (g+δ)`).
        crate::quant::dequantize(ty, bytes, out).expect("the caller checked the row's size");
        return;
    }
    match ty {
        GgmlType::F32 => {
            for (o, c) in out.iter_mut().zip(bytes.chunks_exact(4)) {
                *o = f32::from_le_bytes([c[0], c[1], c[2], c[3]]);
            }
        }
        GgmlType::F16 => {
            for (o, c) in out.iter_mut().zip(bytes.chunks_exact(2)) {
                *o = half::f16::from_bits(u16::from_le_bytes([c[0], c[1]])).to_f32();
            }
        }
        GgmlType::BF16 => {
            for (o, c) in out.iter_mut().zip(bytes.chunks_exact(2)) {
                *o = f32::from_bits((u16::from_le_bytes([c[0], c[1]]) as u32) << 16);
            }
        }
        _ if ty.block_len() == 32 => {
            for (o, b) in out
                .chunks_exact_mut(32)
                .zip(bytes.chunks_exact(ty.block_bytes()))
            {
                let blk = decode32(ty, b);
                for (x, &q) in o.iter_mut().zip(&blk.q) {
                    *x = blk.d * q as f32 + blk.m;
                }
            }
        }
        _ => {
            for (o, b) in out
                .chunks_exact_mut(256)
                .zip(bytes.chunks_exact(ty.block_bytes()))
            {
                let blk = decode256(ty, b);
                for (i, x) in o.iter_mut().enumerate() {
                    let g = i / 16;
                    *x = blk.d * (blk.sc[g] * blk.q[i] as i32) as f32 - blk.dmin * blk.mn[g] as f32;
                }
            }
        }
    }
}

/// Whether the CPU kernels compute with weights of this type.
pub fn is_computable(ty: GgmlType) -> bool {
    use GgmlType::*;
    matches!(
        ty,
        F32 | F16
            | BF16
            | Q4_0
            | Q4_1
            | Q5_0
            | Q5_1
            | Q8_0
            | Q2_K
            | Q3_K
            | Q4_K
            | Q5_K
            | Q6_K
            | IQ4_NL
            | IQ4_XS
            | TQ1_0
            | TQ2_0
            | MXFP4
            | IQ2_XXS
            | IQ2_XS
            | IQ2_S
            | IQ3_XXS
            | IQ3_S
            | IQ1_S
            | IQ1_M
    )
}
