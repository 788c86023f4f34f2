//! One plain `#[repr(C)]` struct per block format, laid out byte for byte as
//! ggml stores it (ggml-common.h), with its reference dequantizer and, where
//! this build has one, its quantizer.
//!
//! Every struct is `Pod`, so a tensor's bytes can be viewed as `&[Block]`
//! (when aligned) or read block by block; its size is checked against
//! [`GgmlType::block_bytes`] at compile time.

pub mod float;
pub mod iq1;
pub mod iq2;
pub mod iq3;
pub mod iq4;
pub mod iq_grids;
pub mod k_scales;
pub mod lattice;
pub mod legacy;
pub mod mxfp4;
pub mod q2_k;
pub mod q3_k;
pub mod q4_k;
pub mod q5_k;
pub mod q6_k;
pub mod q8_k;
pub mod ternary;

pub use iq1::{BlockIQ1M, BlockIQ1S};
pub use iq2::{BlockIQ2S, BlockIQ2XS, BlockIQ2XXS};
pub use iq3::{BlockIQ3S, BlockIQ3XXS};
pub use iq4::{BlockIQ4NL, BlockIQ4XS, KVALUES_IQ4NL};
pub use k_scales::{get_scale_min_k4, pack_scale_min_k4, unpack_q3_k_scales, unpack_scale_min_k4};
pub use legacy::{BlockQ4_0, BlockQ4_1, BlockQ5_0, BlockQ5_1, BlockQ8_0, BlockQ8_1};
pub use mxfp4::{e8m0_to_f32_half, BlockMXFP4, KVALUES_MXFP4};
pub use q2_k::BlockQ2K;
pub use q3_k::BlockQ3K;
pub use q4_k::BlockQ4K;
pub use q5_k::BlockQ5K;
pub use q6_k::BlockQ6K;
pub use q8_k::BlockQ8K;
pub use ternary::{BlockTQ1_0, BlockTQ2_0};

use super::GgmlType;
use bytemuck::Pod;

/// Elements in one K-quant super-block.
pub const QK_K: usize = 256;

/// A block of `LEN` elements of one ggml type.
pub trait QuantBlock: Pod {
    /// The ggml type this block encodes.
    const TYPE: GgmlType;
    /// Elements per block.
    const LEN: usize = Self::TYPE.block_len();

    /// Decodes the block into `out`.
    ///
    /// Panics if `out.len() != Self::LEN` (a caller's slicing bug, not bad data).
    fn dequantize_into(&self, out: &mut [f32]);
}

/// A block format this build can also produce from f32.
pub trait QuantizeBlock: QuantBlock {
    /// Encodes `x` as one block.
    ///
    /// Panics if `x.len() != Self::LEN` (a caller's slicing bug, not bad data).
    fn quantize(x: &[f32]) -> Self;
}

/// A 256-value block whose values are small integers times a scale per
/// 16 values times one factor: `x[i] = d * sc[i / 16] * q[i]` exactly (in
/// real arithmetic), the form the CPU's integer dot products take. Every
/// IQ/TQ super-block type has it; its f32 rounding may differ from
/// [`QuantBlock::dequantize_into`]'s by an ulp.
pub trait GroupScaled: QuantBlock {
    /// Writes `q` and `sc` and returns the factor `d`.
    fn group_scaled(&self, q: &mut [i8; QK_K], sc: &mut [i32; 16]) -> f32;
}

/// Decodes consecutive blocks into `out` (`blocks.len() * B::LEN` values).
///
/// Panics if `out` has another length.
pub fn dequantize_row<B: QuantBlock>(blocks: &[B], out: &mut [f32]) {
    assert_eq!(out.len(), blocks.len() * B::LEN, "{} row length", B::TYPE);
    for (block, out) in blocks.iter().zip(out.chunks_exact_mut(B::LEN)) {
        block.dequantize_into(out);
    }
}

/// Encodes `x` (a whole number of blocks) into `out`, one block per `B::LEN` values.
///
/// Panics if `x.len()` is not a multiple of `B::LEN`.
pub fn quantize_row<B: QuantizeBlock>(x: &[f32], out: &mut Vec<B>) {
    assert!(x.len().is_multiple_of(B::LEN), "{} row length", B::TYPE);
    out.extend(x.chunks_exact(B::LEN).map(B::quantize));
}

/// Asserts at compile time that a block struct has ggml's size.
macro_rules! assert_block_size {
    ($block:ty, $ty:expr) => {
        const _: () = assert!(std::mem::size_of::<$block>() == $ty.block_bytes());
    };
}
pub(crate) use assert_block_size;
