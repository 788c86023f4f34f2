//! Everything a CPU kernel can refuse, each naming what is wrong.

use crate::quant::GgmlType;

/// A kernel refused its inputs. Shapes are checked once per call, before any
/// work, so a refused call has written nothing.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KernelError {
    #[error("{what}: the CPU kernels cannot compute with {ty} weights")]
    UnsupportedType { what: &'static str, ty: GgmlType },
    #[error("{what}: {ty} rows of {cols} elements are not whole blocks of {block}")]
    RaggedRow {
        what: &'static str,
        ty: GgmlType,
        cols: usize,
        block: usize,
    },
    #[error("{what}: expected {expected} {unit}, found {found}")]
    SizeMismatch {
        what: &'static str,
        unit: &'static str,
        expected: usize,
        found: usize,
    },
    #[error(
        "matmul: activations were not quantized for {ty} weights (prepare them with that type)"
    )]
    MissingActFormat { ty: GgmlType },
    #[error("{what}: the {path:?} kernels need CPU features this machine lacks")]
    PathUnavailable {
        what: &'static str,
        path: super::simd::SimdPath,
    },
    #[error("{what}: index {index} is out of range 0..{len}")]
    OutOfRange {
        what: &'static str,
        index: i64,
        len: usize,
    },
}
