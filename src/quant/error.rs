//! Errors of the quant layer: what was asked of which type, and why it
//! cannot be done.

use super::GgmlType;

/// Why a conversion between f32 and a block format failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum QuantError {
    /// The type's blocks cannot be decoded by this build (the integer types, F64).
    #[error("{0} data is not supported: this build has no dequantizer for it")]
    Unsupported(GgmlType),
    /// The type can be decoded but this build has no quantizer producing it.
    #[error("quantizing to {0} is not supported")]
    NoQuantizer(GgmlType),
    /// `bytes` is not `elements` values of `ty` stored as whole blocks.
    #[error(
        "{ty}: {bytes} bytes do not hold {elements} elements \
         ({} elements per {}-byte block)",
        ty.block_len(),
        ty.block_bytes()
    )]
    Length {
        ty: GgmlType,
        bytes: usize,
        elements: usize,
    },
    /// A quantizer was given a number of values that is not whole blocks.
    #[error("{ty}: {elements} values are not a whole number of {}-element blocks", ty.block_len())]
    PartialBlock { ty: GgmlType, elements: usize },
}
