//! The 2-bit lattice formats IQ2_XXS, IQ2_XS and IQ2_S: 256 values as 32
//! groups of 8, each group one entry of an E8-lattice grid of magnitudes
//! (0x08, 0x19, 0x2b) with its own signs; a 4-bit scale `ls` per 32 (XXS)
//! or 16 (XS, S) values gives `x = d * (0.5 + ls) / 4 * grid * sign`.
//!
//! - IQ2_XXS (2.0625 bpv): per 32 values two LE u32 words: the first holds
//!   four 8-bit grid indices, the second four 7-bit sign indices
//!   ([`ksign`]) in bits `7l..7l+7` and `ls` in its top four bits.
//! - IQ2_XS (2.3125 bpv): per group a u16, grid index in the low 9 bits and
//!   sign index in the top 7; `scales[s]`: nibble `n` scales values
//!   `32s + 16n..+16`.
//! - IQ2_S (2.5625 bpv): grid index = `qs[g]` plus two high bits from
//!   `qh[g / 4]` (bits `2(g % 4)..`), eight explicit sign bits per group in
//!   `signs[g]`, scales as IQ2_XS.
//!
//! No quantizers: imatrix-driven lattice search is out of scope; tests use
//! random valid blocks (every byte pattern is one).

use super::iq_grids::{IQ2S_GRID, IQ2XS_GRID, IQ2XXS_GRID};
use super::lattice::{grid_byte, ksign, signed};
use super::{assert_block_size, GroupScaled, QuantBlock, QK_K};
use crate::quant::GgmlType;
use bytemuck::{Pod, Zeroable};
use half::f16;

#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Pod, Zeroable)]
pub struct BlockIQ2XXS {
    pub d: f16,
    pub qs: [u8; QK_K / 4],
}

#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Pod, Zeroable)]
pub struct BlockIQ2XS {
    pub d: f16,
    pub qs: [u8; QK_K / 4],
    pub scales: [u8; QK_K / 32],
}

#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Pod, Zeroable)]
pub struct BlockIQ2S {
    pub d: f16,
    pub qs: [u8; QK_K / 8],
    pub signs: [u8; QK_K / 8],
    pub qh: [u8; QK_K / 32],
    pub scales: [u8; QK_K / 32],
}

assert_block_size!(BlockIQ2XXS, GgmlType::IQ2_XXS);
assert_block_size!(BlockIQ2XS, GgmlType::IQ2_XS);
assert_block_size!(BlockIQ2S, GgmlType::IQ2_S);

/// One decoded group of 8: the grid word, its signs and its 4-bit scale.
#[derive(Clone, Copy)]
struct Group {
    grid: u64,
    signs: u8,
    ls: u8,
}

fn le_u32(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

/// A block as 32 groups of 8 values.
trait Groups8 {
    fn d(&self) -> f32;
    fn group(&self, g: usize) -> Group;
}

impl Groups8 for BlockIQ2XXS {
    fn d(&self) -> f32 {
        self.d.to_f32()
    }
    fn group(&self, g: usize) -> Group {
        let (s, l) = (g / 4, g % 4);
        let aux = le_u32(&self.qs, 8 * s + 4);
        Group {
            grid: IQ2XXS_GRID[self.qs[8 * s + l] as usize],
            signs: ksign((aux >> (7 * l)) as u8),
            ls: (aux >> 28) as u8,
        }
    }
}

impl Groups8 for BlockIQ2XS {
    fn d(&self) -> f32 {
        self.d.to_f32()
    }
    fn group(&self, g: usize) -> Group {
        let q = u16::from_le_bytes([self.qs[2 * g], self.qs[2 * g + 1]]);
        Group {
            grid: IQ2XS_GRID[(q & 511) as usize],
            signs: ksign((q >> 9) as u8),
            ls: (self.scales[g / 4] >> (4 * ((g / 2) % 2))) & 0xf,
        }
    }
}

impl Groups8 for BlockIQ2S {
    fn d(&self) -> f32 {
        self.d.to_f32()
    }
    fn group(&self, g: usize) -> Group {
        let high = ((self.qh[g / 4] >> (2 * (g % 4))) & 3) as usize;
        Group {
            grid: IQ2S_GRID[self.qs[g] as usize | high << 8],
            signs: self.signs[g],
            ls: (self.scales[g / 4] >> (4 * ((g / 2) % 2))) & 0xf,
        }
    }
}

/// `d * (0.5 + ls) * 0.25 * grid * sign`, in numpy's order of f32 operations.
fn dequantize_groups<B: Groups8>(b: &B, out: &mut [f32]) {
    let out: &mut [f32; QK_K] = out.try_into().expect("IQ2 blocks decode to 256 values");
    let d = b.d();
    for (g, part) in out.chunks_exact_mut(8).enumerate() {
        let grp = b.group(g);
        let db = d * (0.5 + grp.ls as f32) * 0.25;
        for (k, o) in part.iter_mut().enumerate() {
            *o = signed(db * grid_byte(grp.grid, k) as f32, grp.signs, k);
        }
    }
}

/// `x = d/8 * (2 ls + 1) * (±grid)`: the same value as an integer form.
fn group_scaled<B: Groups8>(b: &B, q: &mut [i8; QK_K], sc: &mut [i32; 16]) -> f32 {
    for (g, part) in q.chunks_exact_mut(8).enumerate() {
        let grp = b.group(g);
        sc[g / 2] = 2 * grp.ls as i32 + 1;
        for (k, v) in part.iter_mut().enumerate() {
            let m = grid_byte(grp.grid, k) as i8;
            *v = if grp.signs >> k & 1 == 1 { -m } else { m };
        }
    }
    b.d() * 0.125
}

macro_rules! iq2_block {
    ($block:ty, $ty:expr) => {
        impl QuantBlock for $block {
            const TYPE: GgmlType = $ty;
            fn dequantize_into(&self, out: &mut [f32]) {
                dequantize_groups(self, out)
            }
        }
        impl GroupScaled for $block {
            fn group_scaled(&self, q: &mut [i8; QK_K], sc: &mut [i32; 16]) -> f32 {
                group_scaled(self, q, sc)
            }
        }
    };
}

iq2_block!(BlockIQ2XXS, GgmlType::IQ2_XXS);
iq2_block!(BlockIQ2XS, GgmlType::IQ2_XS);
iq2_block!(BlockIQ2S, GgmlType::IQ2_S);
