//! Element-wise kernels: residual add, SwiGLU, GeGLU, argmax.
//!
//! Each has one body, compiled twice: plainly and inside an AVX2+FMA
//! `#[target_feature]` wrapper, so the same loop auto-vectorises to 256-bit
//! code where the CPU has it.

use rayon::prelude::*;

use super::math::{gelu_tanh, silu};
use super::simd::SimdPath;

/// Rows per rayon task for row-parallel element-wise work.
const ROWS_PER_TASK: usize = 16;

/// `acc[i] += x[i]`. Panics if the lengths differ (a plan bug, not input).
pub fn add_in_place(acc: &mut [f32], x: &[f32]) {
    assert_eq!(acc.len(), x.len(), "add_in_place: lengths differ");
    #[cfg(target_arch = "x86_64")]
    if SimdPath::detect() != SimdPath::Portable {
        // SAFETY: the path is only detected where AVX2 and FMA exist.
        return unsafe { add_avx2(acc, x) };
    }
    add_body(acc, x)
}

#[inline(always)]
fn add_body(acc: &mut [f32], x: &[f32]) {
    for (a, b) in acc.iter_mut().zip(x) {
        *a += b;
    }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn add_avx2(acc: &mut [f32], x: &[f32]) {
    add_body(acc, x)
}

/// SwiGLU: for each of the `T = out.len() / ffn` rows, `gate_up` holds
/// `[gate (ffn) | up (ffn)]` and `out = silu(gate) * up`.
pub fn silu_mul(gate_up: &[f32], ffn: usize, out: &mut [f32]) {
    silu_mul_with(SimdPath::detect(), gate_up, ffn, out)
}

/// [`silu_mul`] on an explicit path.
pub fn silu_mul_with(path: SimdPath, gate_up: &[f32], ffn: usize, out: &mut [f32]) {
    gated_rows(path, gate_up, ffn, out, silu_mul_row)
}

/// GeGLU (Gemma): as [`silu_mul`] with the tanh GELU on the gate.
pub fn gelu_mul(gate_up: &[f32], ffn: usize, out: &mut [f32]) {
    gated_rows(SimdPath::detect(), gate_up, ffn, out, gelu_mul_row)
}

/// A gated activation of each `[gate | up]` row, `row` doing one row.
fn gated_rows(
    path: SimdPath,
    gate_up: &[f32],
    ffn: usize,
    out: &mut [f32],
    row: fn(SimdPath, &[f32], &[f32], &mut [f32]),
) {
    assert!(
        ffn > 0 && out.len().is_multiple_of(ffn),
        "gated activation: output is not whole rows"
    );
    assert_eq!(
        gate_up.len(),
        2 * out.len(),
        "gated activation: input is not [T, 2*ffn]"
    );
    let rows = |(o, g): (&mut [f32], &[f32])| {
        for (o, gu) in o.chunks_exact_mut(ffn).zip(g.chunks_exact(2 * ffn)) {
            row(path, &gu[..ffn], &gu[ffn..], o);
        }
    };
    let (chunk_out, chunk_in) = (ROWS_PER_TASK * ffn, 2 * ROWS_PER_TASK * ffn);
    if out.len() <= chunk_out {
        rows((out, gate_up));
    } else {
        out.par_chunks_mut(chunk_out)
            .zip(gate_up.par_chunks(chunk_in))
            .for_each(rows);
    }
}

fn silu_mul_row(path: SimdPath, gate: &[f32], up: &[f32], out: &mut [f32]) {
    #[cfg(target_arch = "x86_64")]
    if path != SimdPath::Portable && path.is_available() {
        // SAFETY: AVX2 and FMA are present (checked just above).
        return unsafe { silu_mul_avx2(gate, up, out) };
    }
    let _ = path;
    silu_mul_body(gate, up, out)
}

#[inline(always)]
fn silu_mul_body(gate: &[f32], up: &[f32], out: &mut [f32]) {
    for ((o, &g), &u) in out.iter_mut().zip(gate).zip(up) {
        *o = silu(g) * u;
    }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn silu_mul_avx2(gate: &[f32], up: &[f32], out: &mut [f32]) {
    silu_mul_body(gate, up, out)
}

fn gelu_mul_row(path: SimdPath, gate: &[f32], up: &[f32], out: &mut [f32]) {
    #[cfg(target_arch = "x86_64")]
    if path != SimdPath::Portable && path.is_available() {
        // SAFETY: AVX2 and FMA are present (checked just above).
        return unsafe { gelu_mul_avx2(gate, up, out) };
    }
    let _ = path;
    gelu_mul_body(gate, up, out)
}

#[inline(always)]
fn gelu_mul_body(gate: &[f32], up: &[f32], out: &mut [f32]) {
    for ((o, &g), &u) in out.iter_mut().zip(gate).zip(up) {
        *o = gelu_tanh(g) * u;
    }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn gelu_mul_avx2(gate: &[f32], up: &[f32], out: &mut [f32]) {
    gelu_mul_body(gate, up, out)
}

/// The index of the largest element (the first of equal ones), ignoring
/// NaN; `None` for an empty or all-NaN slice.
pub fn argmax(x: &[f32]) -> Option<usize> {
    let mut best: Option<(usize, f32)> = None;
    for (i, &v) in x.iter().enumerate() {
        if !v.is_nan() && best.is_none_or(|(_, b)| v > b) {
            best = Some((i, v));
        }
    }
    best.map(|(i, _)| i)
}
