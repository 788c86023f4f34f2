//! Portable tile kernels: plain Rust, every type. The reference the SIMD
//! kernels are tested against, and the path on CPUs without them.

use std::ops::Range;

use super::super::acts::{k_slot, QuantizedActs};
use super::super::blocks::{decode256, decode32, dequantize_row};
use super::super::math::dot;
use super::super::weights::WeightMatrix;
use super::{OutView, TileKernel};
use crate::quant::GgmlType;

/// Tokens whose accumulators are kept while one weight block is decoded.
const TOKS: usize = 8;

pub(super) fn tile_kernel(ty: GgmlType) -> TileKernel {
    match ty.block_len() {
        1 => float_tile,
        32 => q32_tile,
        _ => q256_tile,
    }
}

fn float_tile(
    w: &WeightMatrix,
    rows: Range<usize>,
    x: &QuantizedActs,
    toks: Range<usize>,
    out: &OutView,
) {
    let mut wrow = [0f32; 64];
    for j in rows {
        let bytes = w.row(j);
        let per = w.ty.block_bytes();
        let mut acc = vec_acc(toks.len());
        for (c, wb) in bytes.chunks(64 * per).enumerate() {
            let n = wb.len() / per;
            dequantize_row(w.ty, wb, &mut wrow[..n]);
            for (a, t) in acc.iter_mut().zip(toks.clone()) {
                let xs = &x.f32_row(t)[64 * c..64 * c + n];
                *a += dot(&wrow[..n], xs);
            }
        }
        for (a, t) in acc.iter().zip(toks.clone()) {
            out.set(t, j, *a);
        }
    }
}

/// Accumulators for a tile's tokens: portable, so allocating per row is
/// acceptable (the SIMD paths do not).
fn vec_acc(n: usize) -> Vec<f32> {
    vec![0.0; n]
}

fn q32_tile(
    w: &WeightMatrix,
    rows: Range<usize>,
    x: &QuantizedActs,
    toks: Range<usize>,
    out: &OutView,
) {
    let bb = w.ty.block_bytes();
    for j in rows {
        let row = w.row(j);
        for t0 in toks.clone().step_by(TOKS) {
            let tn = TOKS.min(toks.end - t0);
            let mut acc = [0f32; TOKS];
            for (b, wb) in row.chunks_exact(bb).enumerate() {
                let blk = decode32(w.ty, wb);
                for (u, a) in acc[..tn].iter_mut().enumerate() {
                    let xr = x.q32_row(t0 + u);
                    let xq = &xr.qs[32 * b..32 * b + 32];
                    let s: i32 = blk
                        .q
                        .iter()
                        .zip(xq)
                        .map(|(&p, &q)| p as i32 * q as i32)
                        .sum();
                    *a += blk.d * xr.d[b] * s as f32 + blk.m * xr.d[b] * xr.sum[b] as f32;
                }
            }
            for (u, a) in acc[..tn].iter().enumerate() {
                out.set(t0 + u, j, *a);
            }
        }
    }
}

fn q256_tile(
    w: &WeightMatrix,
    rows: Range<usize>,
    x: &QuantizedActs,
    toks: Range<usize>,
    out: &OutView,
) {
    let bb = w.ty.block_bytes();
    for j in rows {
        let row = w.row(j);
        for t0 in toks.clone().step_by(TOKS) {
            let tn = TOKS.min(toks.end - t0);
            let mut acc = [0f32; TOKS];
            for (b, wb) in row.chunks_exact(bb).enumerate() {
                let blk = decode256(w.ty, wb);
                for (u, a) in acc[..tn].iter_mut().enumerate() {
                    let xr = x.q256_row(t0 + u);
                    let xq = &xr.qs[256 * b..256 * b + 256];
                    // Per activation block s (groups 2s and 2s+1): integer
                    // sums, then its scale; the weights' d and dmin last.
                    let (mut fsum, mut fmin) = (0f32, 0f32);
                    for (s, &dx) in xr.d[b].iter().enumerate() {
                        let (mut isum, mut msum) = (0i32, 0i32);
                        for g in 2 * s..2 * s + 2 {
                            isum += blk.sc[g] * group_dot(&blk.q, xq, g);
                            msum += blk.mn[g] * xr.bsums[b][g] as i32;
                        }
                        fsum += dx * isum as f32;
                        fmin += dx * msum as f32;
                    }
                    *a += blk.d * fsum - blk.dmin * fmin;
                }
            }
            for (u, a) in acc[..tn].iter().enumerate() {
                out.set(t0 + u, j, *a);
            }
        }
    }
}

/// `Σ q·x` over the 16 elements of group `g` of a super-block; the
/// activations `xq` are in their interleaved order ([`k_slot`]), where
/// the group lies in runs of four.
fn group_dot(q: &[i8; 256], xq: &[i8], g: usize) -> i32 {
    (16 * g..16 * g + 16)
        .step_by(4)
        .map(|i| {
            let x = &xq[k_slot(i)..k_slot(i) + 4];
            let w = &q[i..i + 4];
            w.iter()
                .zip(x)
                .map(|(&p, &v)| p as i32 * v as i32)
                .sum::<i32>()
        })
        .sum()
}
