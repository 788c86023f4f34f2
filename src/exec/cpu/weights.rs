//! A weight matrix as the kernels see it: borrowed GGUF bytes plus shape,
//! and where the model made one, an interleaved copy for the AVX2 kernels.

use super::blocks::is_computable;
use super::error::KernelError;
use super::interleaved::InterleavedRows;
use crate::quant::GgmlType;

/// `rows` output features of `cols` inputs each. GGUF stores a `[k, n]`
/// tensor (ne0 = k) as `n` rows of `k` elements, so `rows = n`, `cols = k`,
/// and row `j` is the contiguous byte range `j*row_bytes..(j+1)*row_bytes`.
#[derive(Debug, Clone, Copy)]
pub struct WeightMatrix<'a> {
    pub ty: GgmlType,
    pub data: &'a [u8],
    pub rows: usize,
    pub cols: usize,
    /// The same rows interleaved ([`InterleavedRows`]); kernels that have
    /// no use for it read `data`.
    pub interleaved: Option<&'a InterleavedRows>,
}

impl<'a> WeightMatrix<'a> {
    pub fn new(ty: GgmlType, data: &'a [u8], rows: usize, cols: usize) -> Self {
        WeightMatrix {
            ty,
            data,
            rows,
            cols,
            interleaved: None,
        }
    }

    /// The matrix with its interleaved copy, where `copy` is one of it
    /// (another matrix's copy is not taken).
    pub fn with_interleaved(mut self, copy: Option<&'a InterleavedRows>) -> Self {
        self.interleaved = copy.filter(|c| c.fits(&self));
        self
    }

    /// Bytes per row (whole blocks; checked by [`validate`](Self::validate)).
    pub fn row_bytes(&self) -> usize {
        self.cols / self.ty.block_len() * self.ty.block_bytes()
    }

    /// Row `j`'s bytes.
    #[inline]
    pub fn row(&self, j: usize) -> &'a [u8] {
        let rb = self.row_bytes();
        &self.data[j * rb..(j + 1) * rb]
    }

    /// Checks that the type is computable, rows are whole blocks and the
    /// data holds exactly `rows` of them.
    pub fn validate(&self, what: &'static str) -> Result<(), KernelError> {
        if !is_computable(self.ty) {
            return Err(KernelError::UnsupportedType { what, ty: self.ty });
        }
        let block = self.ty.block_len();
        if !self.cols.is_multiple_of(block) {
            return Err(KernelError::RaggedRow {
                what,
                ty: self.ty,
                cols: self.cols,
                block,
            });
        }
        let expected = self.rows * self.row_bytes();
        if self.data.len() != expected {
            return Err(KernelError::SizeMismatch {
                what,
                unit: "weight bytes",
                expected,
                found: self.data.len(),
            });
        }
        Ok(())
    }
}
