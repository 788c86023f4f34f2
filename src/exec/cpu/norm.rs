//! RMS normalisation: `out = x / sqrt(mean(x²) + eps) * w`, per row.

use rayon::prelude::*;

use super::simd::SimdPath;

const ROWS_PER_TASK: usize = 16;

/// Normalises each row of `x` (rows of `w.len()` elements) into `out`.
/// Panics if the lengths are not whole rows (a plan bug, not input).
pub fn rms_norm(x: &[f32], w: &[f32], eps: f32, out: &mut [f32]) {
    rms_norm_with(SimdPath::detect(), x, w, eps, out)
}

/// [`rms_norm`] on an explicit path.
pub fn rms_norm_with(path: SimdPath, x: &[f32], w: &[f32], eps: f32, out: &mut [f32]) {
    let d = w.len();
    assert!(
        d > 0 && x.len().is_multiple_of(d),
        "rms_norm: input is not whole rows"
    );
    assert_eq!(x.len(), out.len(), "rms_norm: output length differs");
    let rows = |(o, x): (&mut [f32], &[f32])| {
        for (o, x) in o.chunks_exact_mut(d).zip(x.chunks_exact(d)) {
            norm_row(path, x, w, eps, o);
        }
    };
    if x.len() <= ROWS_PER_TASK * d {
        rows((out, x));
    } else {
        let c = ROWS_PER_TASK * d;
        out.par_chunks_mut(c).zip(x.par_chunks(c)).for_each(rows);
    }
}

fn norm_row(path: SimdPath, x: &[f32], w: &[f32], eps: f32, out: &mut [f32]) {
    #[cfg(target_arch = "x86_64")]
    if path != SimdPath::Portable && path.is_available() {
        // SAFETY: AVX2 and FMA are present (checked just above).
        return unsafe { norm_row_avx2(x, w, eps, out) };
    }
    let _ = path;
    norm_row_body(x, w, eps, out)
}

#[inline(always)]
fn norm_row_body(x: &[f32], w: &[f32], eps: f32, out: &mut [f32]) {
    // Eight partial sums (vector lanes), added in f64 like ggml's sum.
    let mut lanes = [0f32; 8];
    let mut chunks = x.chunks_exact(8);
    for c in &mut chunks {
        for l in 0..8 {
            lanes[l] = c[l].mul_add(c[l], lanes[l]);
        }
    }
    let mut sum: f64 = lanes.iter().map(|&v| v as f64).sum();
    sum += chunks
        .remainder()
        .iter()
        .map(|&v| (v as f64) * (v as f64))
        .sum::<f64>();
    let scale = (1.0 / (sum / x.len() as f64 + eps as f64).sqrt()) as f32;
    for ((o, &v), &g) in out.iter_mut().zip(x).zip(w) {
        *o = v * scale * g;
    }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn norm_row_avx2(x: &[f32], w: &[f32], eps: f32, out: &mut [f32]) {
    norm_row_body(x, w, eps, out)
}
