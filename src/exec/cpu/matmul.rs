//! Matrix multiplication `out[t, col0 + j] = Σ_i w[j, i] * x[t, i]`, split
//! into tiles of weight rows × tokens that run on rayon's pool.
//!
//! Prefill tiles are sized so one tile's weight rows stay in cache while
//! every token of the tile reads them: weights are read once per token tile,
//! not once per token. Decode (few tokens) only splits rows.

use rayon::prelude::*;

use super::acts::{ActFormat, QuantizedActs};
use super::dot::{tile_kernel, OutView};
use super::error::KernelError;
use super::simd::SimdPath;
use super::weights::WeightMatrix;

/// Tokens per tile in prefill.
const TOKEN_TILE: usize = 64;
/// Below this many multiply-adds the call runs on the calling thread.
const SERIAL_MACS: usize = 1 << 16;

/// `out[t * ld_out + col0 + j] = dot(x row t, w row j)` for every row `j` of
/// `w` and token `t` of `x`, on the fastest path.
pub fn matmul(
    w: &WeightMatrix,
    x: &QuantizedActs,
    out: &mut [f32],
    ld_out: usize,
    col0: usize,
) -> Result<(), KernelError> {
    matmul_with(SimdPath::detect(), w, x, out, ld_out, col0)
}

/// [`matmul`] on an explicit path (tests compare paths; an unavailable
/// path is refused).
pub fn matmul_with(
    path: SimdPath,
    w: &WeightMatrix,
    x: &QuantizedActs,
    out: &mut [f32],
    ld_out: usize,
    col0: usize,
) -> Result<(), KernelError> {
    check(path, w, x, out, ld_out, col0)?;
    let (t, n) = (x.rows(), w.rows);
    if t == 0 || n == 0 {
        return Ok(());
    }
    let kernel = tile_kernel(w, path);
    let view = OutView::new(out, ld_out, col0);
    let (row_tile, tok_tile) = tile_shape(w, t);
    let row_tiles = n.div_ceil(row_tile);
    let tok_tiles = t.div_ceil(tok_tile);
    let run = |i: usize| {
        let (rt, tt) = (i % row_tiles, i / row_tiles);
        let rows = rt * row_tile..((rt + 1) * row_tile).min(n);
        let toks = tt * tok_tile..((tt + 1) * tok_tile).min(t);
        kernel(w, rows, x, toks, &view);
    };
    if t * n * w.cols <= SERIAL_MACS || rayon::current_num_threads() == 1 {
        (0..row_tiles * tok_tiles).for_each(run);
    } else {
        (0..row_tiles * tok_tiles).into_par_iter().for_each(run);
    }
    Ok(())
}

/// Rows and tokens per task: enough tasks for every thread (four per
/// thread, so a slow core does not hold up the rest), rows in multiples of
/// 16 so SIMD kernels keep their row blocking.
fn tile_shape(w: &WeightMatrix, t: usize) -> (usize, usize) {
    let threads = rayon::current_num_threads().max(1);
    let tok_tile = t.min(TOKEN_TILE);
    let tok_tiles = t.div_ceil(tok_tile);
    let want_row_tiles = (4 * threads).div_ceil(tok_tiles).max(1);
    // A tile's weights should fit in L2 alongside the token tile.
    let max_rows = ((256 << 10) / w.row_bytes().max(1)).max(16);
    let rows = w.rows.div_ceil(want_row_tiles).min(max_rows);
    (rows.div_ceil(16) * 16, tok_tile)
}

fn check(
    path: SimdPath,
    w: &WeightMatrix,
    x: &QuantizedActs,
    out: &[f32],
    ld_out: usize,
    col0: usize,
) -> Result<(), KernelError> {
    w.validate("matmul")?;
    if !path.is_available() {
        return Err(KernelError::PathUnavailable {
            what: "matmul",
            path,
        });
    }
    let format = ActFormat::for_weights(w.ty).ok_or(KernelError::UnsupportedType {
        what: "matmul",
        ty: w.ty,
    })?;
    if !x.has(format) {
        return Err(KernelError::MissingActFormat { ty: w.ty });
    }
    if x.cols() != w.cols {
        return Err(KernelError::SizeMismatch {
            what: "matmul activations",
            unit: "columns (the weights' k)",
            expected: w.cols,
            found: x.cols(),
        });
    }
    if col0 + w.rows > ld_out {
        return Err(KernelError::SizeMismatch {
            what: "matmul output row stride",
            unit: "columns at least",
            expected: col0 + w.rows,
            found: ld_out,
        });
    }
    let need = if x.rows() == 0 {
        0
    } else {
        (x.rows() - 1) * ld_out + col0 + w.rows
    };
    if out.len() < need {
        return Err(KernelError::SizeMismatch {
            what: "matmul output",
            unit: "elements at least",
            expected: need,
            found: out.len(),
        });
    }
    Ok(())
}
