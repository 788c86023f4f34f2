//! The 3-bit lattice formats IQ3_XXS and IQ3_S: 256 values as 64 groups of
//! 4, each one entry of a grid of magnitudes, with signs per 8 values and
//! a 4-bit scale `ls` per 32.
//!
//! - IQ3_XXS (3.0625 bpv): `qs[64]` 8-bit grid indices, then per 32 values
//!   a LE u32: four 7-bit sign indices ([`ksign`]) and `ls` in the top four
//!   bits; `x = d * (0.5 + ls) / 2 * grid * sign`, grid values 4..62.
//! - IQ3_S (3.4375 bpv): 9-bit grid indices (`qs[g]` plus bit `g % 8` of
//!   `qh[g / 8]`), explicit sign bits (`signs[j]` bit `k` for element
//!   `8j + k`), `ls` nibble `s % 2` of `scales[s / 2]`;
//!   `x = d * (1 + 2 ls) * grid * sign`, grid values 1..15 (odd).
//!
//! No quantizers (see [`super::iq2`]).

use super::iq_grids::{IQ3S_GRID, IQ3XXS_GRID};
use super::lattice::{grid_byte, ksign, signed};
use super::{assert_block_size, GroupScaled, QuantBlock, QK_K};
use crate::quant::GgmlType;
use bytemuck::{Pod, Zeroable};
use half::f16;

#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Pod, Zeroable)]
pub struct BlockIQ3XXS {
    pub d: f16,
    pub qs: [u8; QK_K / 4],
    pub scales_signs: [u8; QK_K / 8],
}

#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Pod, Zeroable)]
pub struct BlockIQ3S {
    pub d: f16,
    pub qs: [u8; QK_K / 4],
    pub qh: [u8; QK_K / 32],
    pub signs: [u8; QK_K / 8],
    pub scales: [u8; QK_K / 64],
}

assert_block_size!(BlockIQ3XXS, GgmlType::IQ3_XXS);
assert_block_size!(BlockIQ3S, GgmlType::IQ3_S);

/// One 8-value run (two grid groups) with its signs and 4-bit scale.
struct Run {
    grid: [u32; 2],
    signs: u8,
    ls: u8,
}

/// A block as 32 runs of 8 values.
trait Runs8 {
    fn d(&self) -> f32;
    fn run(&self, j: usize) -> Run;
    /// The f32 multiplier of a 32-value sub-block with scale `ls`, given `d`
    /// (in numpy's order of operations).
    fn sub_scale(d: f32, ls: u8) -> f32;
    /// `(d factor, sc)` with `sub_scale(d, ls) = factor * sc` exactly.
    fn integer_scale(d: f32, ls: u8) -> (f32, i32);
}

impl Runs8 for BlockIQ3XXS {
    fn d(&self) -> f32 {
        self.d.to_f32()
    }
    fn run(&self, j: usize) -> Run {
        let (s, l) = (j / 4, j % 4);
        let b = &self.scales_signs[4 * s..4 * s + 4];
        let aux = u32::from_le_bytes([b[0], b[1], b[2], b[3]]);
        Run {
            grid: [
                IQ3XXS_GRID[self.qs[2 * j] as usize],
                IQ3XXS_GRID[self.qs[2 * j + 1] as usize],
            ],
            signs: ksign((aux >> (7 * l)) as u8),
            ls: (aux >> 28) as u8,
        }
    }
    fn sub_scale(d: f32, ls: u8) -> f32 {
        d * (0.5 + ls as f32) * 0.5
    }
    fn integer_scale(d: f32, ls: u8) -> (f32, i32) {
        (d * 0.25, 2 * ls as i32 + 1)
    }
}

impl Runs8 for BlockIQ3S {
    fn d(&self) -> f32 {
        self.d.to_f32()
    }
    fn run(&self, j: usize) -> Run {
        let index =
            |g: usize| self.qs[g] as usize | (((self.qh[g / 8] >> (g % 8)) & 1) as usize) << 8;
        let s = j / 4;
        Run {
            grid: [IQ3S_GRID[index(2 * j)], IQ3S_GRID[index(2 * j + 1)]],
            signs: self.signs[j],
            ls: (self.scales[s / 2] >> (4 * (s % 2))) & 0xf,
        }
    }
    fn sub_scale(d: f32, ls: u8) -> f32 {
        d * (1 + 2 * ls) as f32
    }
    fn integer_scale(d: f32, ls: u8) -> (f32, i32) {
        (d, 1 + 2 * ls as i32)
    }
}

/// Magnitude `k` (0..8) of a run.
fn magnitude(r: &Run, k: usize) -> u8 {
    grid_byte(r.grid[k / 4] as u64, k % 4)
}

fn dequantize_runs<B: Runs8>(b: &B, out: &mut [f32]) {
    let out: &mut [f32; QK_K] = out.try_into().expect("IQ3 blocks decode to 256 values");
    let d = b.d();
    for (j, part) in out.chunks_exact_mut(8).enumerate() {
        let r = b.run(j);
        let db = B::sub_scale(d, r.ls);
        for (k, o) in part.iter_mut().enumerate() {
            *o = signed(db * magnitude(&r, k) as f32, r.signs, k);
        }
    }
}

fn group_scaled_runs<B: Runs8>(b: &B, q: &mut [i8; QK_K], sc: &mut [i32; 16]) -> f32 {
    let mut factor = 0.0;
    for (j, part) in q.chunks_exact_mut(8).enumerate() {
        let r = b.run(j);
        let (f, s) = B::integer_scale(b.d(), r.ls);
        (factor, sc[j / 2]) = (f, s);
        for (k, v) in part.iter_mut().enumerate() {
            let m = magnitude(&r, k) as i8;
            *v = if r.signs >> k & 1 == 1 { -m } else { m };
        }
    }
    factor
}

macro_rules! iq3_block {
    ($block:ty, $ty:expr) => {
        impl QuantBlock for $block {
            const TYPE: GgmlType = $ty;
            fn dequantize_into(&self, out: &mut [f32]) {
                dequantize_runs(self, out)
            }
        }
        impl GroupScaled for $block {
            fn group_scaled(&self, q: &mut [i8; QK_K], sc: &mut [i32; 16]) -> f32 {
                group_scaled_runs(self, q, sc)
            }
        }
    };
}

iq3_block!(BlockIQ3XXS, GgmlType::IQ3_XXS);
iq3_block!(BlockIQ3S, GgmlType::IQ3_S);
