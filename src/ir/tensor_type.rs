//! The type of a value in the graph: element type and shape.

use std::fmt;

use super::dim::{Dim, DimEnv};
use crate::quant::GgmlType;

/// Element type and row-major shape (the last dim is contiguous).
///
/// Weights keep their GGUF element type (a block quant type included); a
/// GGUF tensor with dims `[k, n]` (ne0 first) is the IR shape `[n, k]`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct TensorType {
    pub dtype: GgmlType,
    pub shape: Vec<Dim>,
}

impl TensorType {
    pub fn new(dtype: GgmlType, shape: impl Into<Vec<Dim>>) -> Self {
        TensorType {
            dtype,
            shape: shape.into(),
        }
    }

    pub fn f32(shape: impl Into<Vec<Dim>>) -> Self {
        Self::new(GgmlType::F32, shape)
    }

    pub fn i32(shape: impl Into<Vec<Dim>>) -> Self {
        Self::new(GgmlType::I32, shape)
    }

    pub fn rank(&self) -> usize {
        self.shape.len()
    }

    /// The last (contiguous) dim.
    pub fn last(&self) -> Option<Dim> {
        self.shape.last().copied()
    }

    /// Elements under `env`.
    pub fn elements(&self, env: &DimEnv) -> u64 {
        self.shape.iter().map(|d| d.eval(env)).product()
    }

    /// Bytes under `env` (whole blocks for block-quantized types).
    pub fn bytes(&self, env: &DimEnv) -> u64 {
        let n = self.elements(env);
        n.div_ceil(self.dtype.block_len() as u64) * self.dtype.block_bytes() as u64
    }
}

impl fmt::Display for TensorType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}[", self.dtype.name().to_ascii_lowercase())?;
        for (i, d) in self.shape.iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            write!(f, "{d}")?;
        }
        f.write_str("]")
    }
}

/// Shorthand for a fixed dim.
pub fn n(x: u64) -> Dim {
    Dim::Fixed(x)
}
