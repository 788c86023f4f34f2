//! The 1-bit lattice formats IQ1_S and IQ1_M: 256 values as 32 groups of
//! 8, each one entry of a grid of values in {-1, 0, 1} (11-bit index),
//! shifted by ±1/8 (`delta`) and scaled by `d * (2 ls + 1)` with a 3-bit
//! `ls`: `x = d * (2 ls + 1) * (grid ± 0.125)`.
//!
//! - IQ1_S (1.5625 bpv): `qs[32]` low index bytes, then per 32 values a LE
//!   u16 `qh`: three high index bits per group (bits `3l..3l+3`), `ls` in
//!   bits 12..15 and the delta's sign in bit 15.
//! - IQ1_M (1.75 bpv): `qs[32]`, `qh[16]` (per group a nibble: three high
//!   index bits and the delta's sign in bit 3), and `scales[8]` as four LE
//!   u16: 3-bit `ls` per 16 values in bits `3j..3j+3`, and the f16 `d`
//!   spread over the four words' top nibbles.
//!
//! No quantizers (see [`super::iq2`]).

use super::iq_grids::IQ1S_GRID;
use super::lattice::grid_byte;
use super::{assert_block_size, GroupScaled, QuantBlock, QK_K};
use crate::quant::GgmlType;
use bytemuck::{Pod, Zeroable};
use half::f16;

/// The grid shift (ggml's `IQ1S_DELTA`), exact in binary.
pub const IQ1_DELTA: f32 = 0.125;

#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Pod, Zeroable)]
#[allow(non_camel_case_types)]
pub struct BlockIQ1S {
    pub d: f16,
    pub qs: [u8; QK_K / 8],
    pub qh: [u8; QK_K / 16],
}

#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Pod, Zeroable)]
pub struct BlockIQ1M {
    pub qs: [u8; QK_K / 8],
    pub qh: [u8; QK_K / 16],
    pub scales: [u8; QK_K / 32],
}

assert_block_size!(BlockIQ1S, GgmlType::IQ1_S);
assert_block_size!(BlockIQ1M, GgmlType::IQ1_M);

/// One decoded group of 8.
struct Group {
    grid: u64,
    /// The 3-bit scale; the multiplier is `2 ls + 1`.
    ls: u8,
    negative_delta: bool,
}

trait Groups8 {
    fn d(&self) -> f32;
    fn group(&self, g: usize) -> Group;
}

impl Groups8 for BlockIQ1S {
    fn d(&self) -> f32 {
        self.d.to_f32()
    }
    fn group(&self, g: usize) -> Group {
        let s = g / 4;
        let qh = u16::from_le_bytes([self.qh[2 * s], self.qh[2 * s + 1]]);
        let high = ((qh >> (3 * (g % 4))) & 7) as usize;
        Group {
            grid: IQ1S_GRID[self.qs[g] as usize | high << 8],
            ls: ((qh >> 12) & 7) as u8,
            negative_delta: qh & 0x8000 != 0,
        }
    }
}

impl BlockIQ1M {
    fn scale_word(&self, w: usize) -> u16 {
        u16::from_le_bytes([self.scales[2 * w], self.scales[2 * w + 1]])
    }
}

impl Groups8 for BlockIQ1M {
    /// The f16 bits are the top nibbles of the four scale words, word 0 lowest.
    fn d(&self) -> f32 {
        let bits = (0..4).fold(0u16, |acc, w| acc | (self.scale_word(w) >> 12) << (4 * w));
        f16::from_bits(bits).to_f32()
    }
    fn group(&self, g: usize) -> Group {
        let nib = (self.qh[g / 2] >> (4 * (g % 2))) & 0xf;
        let j = g / 2; // the 16-value scale index
        Group {
            grid: IQ1S_GRID[self.qs[g] as usize | ((nib & 7) as usize) << 8],
            ls: ((self.scale_word(j / 4) >> (3 * (j % 4))) & 7) as u8,
            negative_delta: nib & 8 != 0,
        }
    }
}

fn dequantize_groups<B: Groups8>(b: &B, out: &mut [f32]) {
    let out: &mut [f32; QK_K] = out.try_into().expect("IQ1 blocks decode to 256 values");
    let d = b.d();
    for (g, part) in out.chunks_exact_mut(8).enumerate() {
        let grp = b.group(g);
        let dl = d * (2 * grp.ls as u32 + 1) as f32;
        let delta = if grp.negative_delta {
            -IQ1_DELTA
        } else {
            IQ1_DELTA
        };
        for (k, o) in part.iter_mut().enumerate() {
            *o = dl * (grid_byte(grp.grid, k) as i8 as f32 + delta);
        }
    }
}

/// `x = d/8 * (2 ls + 1) * (8 grid ± 1)`.
fn group_scaled<B: Groups8>(b: &B, q: &mut [i8; QK_K], sc: &mut [i32; 16]) -> f32 {
    for (g, part) in q.chunks_exact_mut(8).enumerate() {
        let grp = b.group(g);
        sc[g / 2] = 2 * grp.ls as i32 + 1;
        let delta = if grp.negative_delta { -1 } else { 1 };
        for (k, v) in part.iter_mut().enumerate() {
            *v = 8 * grid_byte(grp.grid, k) as i8 + delta;
        }
    }
    b.d() * 0.125
}

macro_rules! iq1_block {
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

iq1_block!(BlockIQ1S, GgmlType::IQ1_S);
iq1_block!(BlockIQ1M, GgmlType::IQ1_M);
