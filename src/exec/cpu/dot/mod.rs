//! Dot-product kernels: a tile of weight rows against a tile of activation
//! rows, one implementation per (weight type, [`SimdPath`]).
//!
//! Every kernel computes, for each row `j` in `rows` and token `t` in
//! `toks`, `out[t, j] = Σ_i w[j, i] * x[t, i]`, with `w` dequantized exactly
//! and `x` in the activation form of the type ([`ActFormat::for_weights`]).

mod portable;
#[cfg(target_arch = "x86_64")]
mod x86;

use std::ops::Range;

use super::acts::QuantizedActs;
use super::simd::SimdPath;
use super::weights::WeightMatrix;

/// Where a kernel writes: element `(t, j)` goes to
/// `out[t * ld + col0 + j]`. Built only by `matmul`, which hands disjoint
/// `(t, j)` tiles to its threads.
pub(crate) struct OutView {
    ptr: *mut f32,
    len: usize,
    ld: usize,
    col0: usize,
}

// SAFETY: the view is a `&mut [f32]` split by index; `matmul` gives every
// thread a disjoint set of (t, j) cells, so no two threads write one element.
unsafe impl Send for OutView {}
unsafe impl Sync for OutView {}

impl OutView {
    pub(crate) fn new(out: &mut [f32], ld: usize, col0: usize) -> Self {
        OutView {
            ptr: out.as_mut_ptr(),
            len: out.len(),
            ld,
            col0,
        }
    }

    #[inline]
    pub(crate) fn set(&self, t: usize, j: usize, v: f32) {
        let i = t * self.ld + self.col0 + j;
        assert!(i < self.len, "matmul output index {i} out of {}", self.len);
        // SAFETY: in bounds (checked above); exclusive per the type's contract.
        unsafe { *self.ptr.add(i) = v }
    }

    /// `set(t, j + i, v[i])` for every `i`: one row's run of columns.
    #[inline]
    pub(crate) fn set_run(&self, t: usize, j: usize, v: &[f32]) {
        let i = t * self.ld + self.col0 + j;
        assert!(
            i + v.len() <= self.len,
            "matmul output run {i}..{} out of {}",
            i + v.len(),
            self.len
        );
        // SAFETY: in bounds (checked above); exclusive per the type's contract.
        unsafe { std::ptr::copy_nonoverlapping(v.as_ptr(), self.ptr.add(i), v.len()) }
    }
}

/// A tile kernel. `rows` and `toks` are within the matrix and activations.
pub(crate) type TileKernel =
    fn(w: &WeightMatrix, rows: Range<usize>, x: &QuantizedActs, toks: Range<usize>, out: &OutView);

/// The kernel for `w.ty` on `path`, falling back to the portable one where
/// the path has no specialised kernel for the type.
pub(crate) fn tile_kernel(w: &WeightMatrix, path: SimdPath) -> TileKernel {
    #[cfg(target_arch = "x86_64")]
    if let Some(k) = x86::tile_kernel(w.ty, path) {
        return k;
    }
    let _ = path;
    portable::tile_kernel(w.ty)
}
