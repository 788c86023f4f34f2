//! Tensor infos and zero-copy views of tensor data.

use super::error::{GgufError, Result};
use crate::quant::GgmlType;

/// One entry of the tensor table.
#[derive(Debug, Clone, PartialEq)]
pub struct TensorInfo {
    pub name: String,
    /// Dimensions in GGUF order: `dims[0]` (ne0) is the contiguous row length.
    pub dims: Vec<u64>,
    pub ty: GgmlType,
    /// Offset relative to the start of the tensor data section.
    pub offset: u64,
    /// Bytes of data.
    pub size: u64,
}

impl TensorInfo {
    pub fn n_elements(&self) -> u64 {
        self.dims.iter().product()
    }

    /// Elements per row (ne0).
    pub fn row_len(&self) -> u64 {
        self.dims.first().copied().unwrap_or(1)
    }

    /// Number of rows (the product of all dims but the first).
    pub fn n_rows(&self) -> u64 {
        self.dims.iter().skip(1).product()
    }

    /// Bytes per row.
    pub fn row_bytes(&self) -> u64 {
        self.row_len() / self.ty.block_len() as u64 * self.ty.block_bytes() as u64
    }
}

/// A tensor's info and its bytes, borrowed from the mapped file.
#[derive(Debug, Clone, Copy)]
pub struct TensorView<'a> {
    pub info: &'a TensorInfo,
    pub data: &'a [u8],
}

impl<'a> TensorView<'a> {
    pub fn name(&self) -> &'a str {
        &self.info.name
    }

    pub fn ty(&self) -> GgmlType {
        self.info.ty
    }

    /// Fails with a clear error when the type cannot be computed with.
    pub fn require_supported(&self) -> Result<()> {
        if self.info.ty.is_supported() {
            Ok(())
        } else {
            Err(GgufError::UnsupportedType {
                tensor: self.info.name.clone(),
                ty: self.info.ty,
            })
        }
    }

    /// The bytes of row `i` (a row is `dims[0]` elements). Panics when
    /// `i >= info.n_rows()`, like slice indexing.
    pub fn row(&self, i: usize) -> &'a [u8] {
        let rb = self.info.row_bytes() as usize;
        &self.data[i * rb..(i + 1) * rb]
    }
}
