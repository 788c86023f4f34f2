//! IQ4_NL and IQ4_XS: 4-bit indices into one fixed non-linear codebook of
//! 16 signed values ([`KVALUES_IQ4NL`]), denser near zero where weights are.
//!
//! IQ4_NL: 32 values, `x = d * kv[q]` (4.5 bits per value). IQ4_XS: 256
//! values in 8 sub-blocks of 32, `x = d * (ls - 32) * kv[q]` with a 6-bit
//! sub-block scale `ls` (low nibble in `scales_l`, high two bits in
//! `scales_h`), 4.25 bits per value. Nibble order inside a 32-value run:
//! byte `j` holds element `j` (low nibble) and `j + 16` (high nibble), as in
//! Q4_0.
//!
//! The quantizers are ours (the gguf package has none for these types):
//! per 32 values a small fan of inverse scales, each assignment to the
//! nearest codebook entry, then the least-squares scale for it; the best
//! squared error wins (the idea of ggml's `quantize_row_iq4_nl_impl`, with
//! unit weights). Levels are re-chosen for the scales actually stored.

use super::{assert_block_size, GroupScaled, QuantBlock, QuantizeBlock, QK_K};
use crate::quant::round::{nearest_int, signed_absmax};
use crate::quant::GgmlType;
use bytemuck::{Pod, Zeroable};
use half::f16;

/// The IQ4 codebook (format data, ggml's `kvalues_iq4nl`), ascending.
pub const KVALUES_IQ4NL: [i8; 16] = [
    -127, -104, -83, -65, -49, -35, -22, -10, 1, 13, 25, 38, 53, 69, 89, 113,
];

/// `x = d * kv[q]`.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Pod, Zeroable)]
pub struct BlockIQ4NL {
    pub d: f16,
    pub qs: [u8; 16],
}

/// `x = d * (ls - 32) * kv[q]`, `ls` a 6-bit scale per 32 values.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Pod, Zeroable)]
pub struct BlockIQ4XS {
    pub d: f16,
    /// Bits `2s..2s+2`: the high two bits of sub-block `s`'s scale.
    pub scales_h: u16,
    /// Nibble `s % 2` of byte `s / 2`: the low four bits of sub-block `s`'s scale.
    pub scales_l: [u8; 4],
    pub qs: [u8; QK_K / 2],
}

assert_block_size!(BlockIQ4NL, GgmlType::IQ4_NL);
assert_block_size!(BlockIQ4XS, GgmlType::IQ4_XS);

/// The codebook index of element `i` (0..32) of a 16-byte nibble run.
#[inline]
pub fn iq4_index(qs: &[u8], i: usize) -> usize {
    ((qs[i % 16] >> (4 * (i / 16))) & 0xf) as usize
}

impl BlockIQ4XS {
    /// The stored 6-bit scale `ls` of sub-block `s` (0..8); the multiplier is `ls - 32`.
    #[inline]
    pub fn scale(&self, s: usize) -> u8 {
        let low = (self.scales_l[s / 2] >> (4 * (s % 2))) & 0xf;
        let high = ((self.scales_h >> (2 * s)) & 3) as u8;
        low | high << 4
    }
}

impl QuantBlock for BlockIQ4NL {
    const TYPE: GgmlType = GgmlType::IQ4_NL;
    fn dequantize_into(&self, out: &mut [f32]) {
        let out: &mut [f32; 32] = out.try_into().expect("IQ4_NL decodes to 32 values");
        let d = self.d.to_f32();
        for (i, o) in out.iter_mut().enumerate() {
            *o = d * KVALUES_IQ4NL[iq4_index(&self.qs, i)] as f32;
        }
    }
}

impl QuantBlock for BlockIQ4XS {
    const TYPE: GgmlType = GgmlType::IQ4_XS;
    fn dequantize_into(&self, out: &mut [f32]) {
        let out: &mut [f32; QK_K] = out.try_into().expect("IQ4_XS decodes to 256 values");
        let d = self.d.to_f32();
        for (s, part) in out.chunks_exact_mut(32).enumerate() {
            // d × scale first, then × value: numpy's order.
            let dl = d * (self.scale(s) as i32 - 32) as f32;
            let run = &self.qs[16 * s..16 * s + 16];
            for (i, o) in part.iter_mut().enumerate() {
                *o = dl * KVALUES_IQ4NL[iq4_index(run, i)] as f32;
            }
        }
    }
}

impl GroupScaled for BlockIQ4XS {
    fn group_scaled(&self, q: &mut [i8; QK_K], sc: &mut [i32; 16]) -> f32 {
        for (s, part) in q.chunks_exact_mut(32).enumerate() {
            sc[2 * s..2 * s + 2].fill(self.scale(s) as i32 - 32);
            let run = &self.qs[16 * s..16 * s + 16];
            for (i, v) in part.iter_mut().enumerate() {
                *v = KVALUES_IQ4NL[iq4_index(run, i)];
            }
        }
        self.d.to_f32()
    }
}

/// The codebook index whose value is nearest `v` (the lower one on a tie).
#[inline]
pub fn nearest_iq4(v: f32) -> u8 {
    let mut best = 0;
    let mut err = f32::INFINITY;
    for (k, &kv) in KVALUES_IQ4NL.iter().enumerate() {
        let e = (kv as f32 - v).abs();
        if e < err {
            (best, err) = (k, e);
        }
    }
    best as u8
}

/// Inverse scales tried per group: `(kv[0] + k) / max` for `k` in `-FAN..=FAN`.
const FAN: i32 = 7;

/// The least-squares scale of 32 values against the codebook: the best
/// over a fan of inverse scales (0 for an all-zero group).
fn fit_group(x: &[f32]) -> f32 {
    let max = signed_absmax(x);
    if max == 0.0 {
        return 0.0;
    }
    let mut best = (0.0f64, 0.0f32);
    for k in -FAN..=FAN {
        // Maps the largest-magnitude value to about kv[0] = -127.
        let id = (KVALUES_IQ4NL[0] as i32 + k) as f32 / max;
        let (mut sumqx, mut sumq2) = (0f64, 0f64);
        for &v in x {
            let q = KVALUES_IQ4NL[nearest_iq4(id * v) as usize] as f64;
            sumqx += q * v as f64;
            sumq2 += q * q;
        }
        // Error at the least-squares scale is Σx² − sumqx²/sumq2.
        let gain = sumqx * sumqx / sumq2;
        if sumq2 > 0.0 && gain > best.0 {
            best = (gain, (sumqx / sumq2) as f32);
        }
    }
    best.1
}

/// Indices of `x` for the stored scale `d`, packed as nibbles.
fn pack_levels(x: &[f32], d: f32) -> [u8; 16] {
    let id = if d == 0.0 { 0.0 } else { 1.0 / d };
    let mut qs = [0u8; 16];
    for (i, &v) in x.iter().enumerate() {
        qs[i % 16] |= nearest_iq4(id * v) << (4 * (i / 16));
    }
    qs
}

impl QuantizeBlock for BlockIQ4NL {
    fn quantize(x: &[f32]) -> Self {
        assert_eq!(x.len(), 32, "IQ4_NL encodes 32 values");
        let d = f16::from_f32(fit_group(x));
        BlockIQ4NL {
            d,
            qs: pack_levels(x, d.to_f32()),
        }
    }
}

impl QuantizeBlock for BlockIQ4XS {
    fn quantize(x: &[f32]) -> Self {
        let x: &[f32; QK_K] = x.try_into().expect("IQ4_XS encodes 256 values");
        let scales: [f32; 8] = std::array::from_fn(|s| fit_group(&x[32 * s..32 * s + 32]));
        // The largest-magnitude sub-block scale maps to the multiplier -32.
        let d = f16::from_f32(signed_absmax(&scales) / -32.0);
        let df = d.to_f32();
        let id = if df == 0.0 { 0.0 } else { 1.0 / df };
        let mut block = BlockIQ4XS {
            d,
            scales_h: 0,
            scales_l: [0; 4],
            qs: [0; QK_K / 2],
        };
        for (s, (&sc, xs)) in scales.iter().zip(x.chunks_exact(32)).enumerate() {
            let l = nearest_int(id * sc).clamp(-32, 31);
            let ls = (l + 32) as u8;
            block.scales_l[s / 2] |= (ls & 0xf) << (4 * (s % 2));
            block.scales_h |= ((ls >> 4) as u16) << (2 * s);
            let run = pack_levels(xs, df * l as f32);
            block.qs[16 * s..16 * s + 16].copy_from_slice(&run);
        }
        block
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_index_picks_the_closest_codebook_value() {
        assert_eq!(nearest_iq4(-1000.0), 0);
        assert_eq!(nearest_iq4(0.0), 8);
        assert_eq!(nearest_iq4(112.0), 15);
        assert_eq!(nearest_iq4(-9.0), 7);
        // 25 and 38: 31 is nearer 25, 32 nearer 38.
        assert_eq!(nearest_iq4(31.0), 10);
        assert_eq!(nearest_iq4(32.0), 11);
    }

    #[test]
    fn xs_scale_fields_round_trip() {
        let x: Vec<f32> = (0..256)
            .map(|i| ((i * 37 % 101) as f32 - 50.0) * (1 + i / 32) as f32)
            .collect();
        let b = BlockIQ4XS::quantize(&x);
        let mut y = [0f32; 256];
        b.dequantize_into(&mut y);
        for s in 0..8 {
            assert!(b.scale(s) < 64);
        }
        let err: f32 = x.iter().zip(&y).map(|(a, b)| (a - b).powi(2)).sum::<f32>() / 256.0;
        let pow: f32 = x.iter().map(|a| a * a).sum::<f32>() / 256.0;
        assert!(err < 0.01 * pow, "relative mse {}", err / pow);
    }
}
