//! Scale search for the K-quant quantizers.
//!
//! A K-quant group is stored as integer levels `l` and a scale (plus, for the
//! asymmetric formats, an offset): `x ≈ scale * l - offset`. Rounding
//! `x / scale` for the obvious scale (range / levels) is rarely the best
//! choice, so we try a small fan of scales around it, and for each level
//! assignment solve the weighted least-squares problem for the scale (and
//! offset) exactly; the candidate with the smallest weighted squared error
//! wins. This is the idea of ggml's `make_qkx2_quants` / `make_qx_quants`
//! (ggml-quants.c); sums are kept in f64 so the 2x2 solve stays well-conditioned.
//!
//! The group scales are then themselves quantized against one f16 super-block
//! scale, and the levels re-rounded for the scales actually stored.

use super::round::{min_max, nearest_int, signed_absmax};
use half::f16;

/// Below this magnitude a group counts as all zero.
const GROUP_EPS: f32 = 1e-15;

/// The largest group any K-quant fits at once (Q4_K/Q5_K sub-blocks).
const MAX_GROUP: usize = 32;

/// The fan of inverse scales tried: `(nmax + first + step * k) / range` for
/// `k` in `0..=steps`.
#[derive(Clone, Copy, Debug)]
pub struct Fan {
    pub first: f32,
    pub step: f32,
    pub steps: u32,
}

/// An asymmetric fit `x ≈ scale * l - offset` with `offset >= 0`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct AffineFit {
    pub scale: f32,
    pub offset: f32,
}

/// Fits levels `0..=nmax` to `x` (weights `w`), writing them to `levels`.
pub fn fit_affine(x: &[f32], w: &[f32], nmax: u8, fan: Fan, levels: &mut [u8]) -> AffineFit {
    let (lo, hi) = min_max(x);
    // The offset is stored as a non-negative "min" to subtract, so the
    // represented range always contains 0.
    let lo = lo.min(0.0);
    if hi <= lo {
        levels.fill(0);
        return AffineFit {
            scale: 0.0,
            offset: -lo,
        };
    }
    let range = hi - lo;
    let nmax_f = nmax as f32;
    let assign = |iscale: f32, out: &mut [u8]| {
        for (l, &v) in out.iter_mut().zip(x) {
            *l = nearest_int(iscale * (v - lo)).clamp(0, nmax as i32) as u8;
        }
    };

    // Baseline: the plain min/max mapping.
    assign(nmax_f / range, levels);
    let mut best = (range / nmax_f, lo);
    let mut best_err = affine_error(x, w, levels, best.0, best.1);

    let mut trial = [0u8; MAX_GROUP];
    let trial = &mut trial[..x.len()];
    for k in 0..=fan.steps {
        let iscale = (nmax_f + fan.first + fan.step * k as f32) / range;
        assign(iscale, trial);
        let Some((scale, min)) = solve_affine(x, w, trial) else {
            continue;
        };
        let err = affine_error(x, w, trial, scale, min);
        if err < best_err {
            best_err = err;
            best = (scale, min);
            levels.copy_from_slice(trial);
        }
    }
    AffineFit {
        scale: best.0,
        offset: -best.1,
    }
}

/// Weighted least squares for `x ≈ scale * l + min` with `min <= 0`.
fn solve_affine(x: &[f32], w: &[f32], l: &[u8]) -> Option<(f32, f32)> {
    let (mut sw, mut sx, mut sl, mut sl2, mut sxl) = (0f64, 0f64, 0f64, 0f64, 0f64);
    for ((&x, &w), &l) in x.iter().zip(w).zip(l) {
        let (x, w, l) = (x as f64, w as f64, l as f64);
        sw += w;
        sx += w * x;
        sl += w * l;
        sl2 += w * l * l;
        sxl += w * x * l;
    }
    let det = sw * sl2 - sl * sl;
    if det <= 0.0 {
        return None;
    }
    let scale = (sw * sxl - sx * sl) / det;
    let min = (sl2 * sx - sl * sxl) / det;
    if min > 0.0 {
        // The format cannot add an offset: refit the scale alone.
        return (sl2 > 0.0).then(|| ((sxl / sl2) as f32, 0.0));
    }
    Some((scale as f32, min as f32))
}

fn affine_error(x: &[f32], w: &[f32], l: &[u8], scale: f32, min: f32) -> f64 {
    x.iter()
        .zip(w)
        .zip(l)
        .map(|((&x, &w), &l)| {
            let diff = (scale * l as f32 + min - x) as f64;
            w as f64 * diff * diff
        })
        .sum()
}

/// Fits signed levels `-nmax..nmax` (exclusive top) to `x`, `x ≈ scale * l`.
/// The extreme value maps to `-nmax`, the side with the extra level; the
/// returned scale is negative when that value is positive.
pub fn fit_symmetric(x: &[f32], w: &[f32], nmax: i32, levels: &mut [i8]) -> f32 {
    let max = signed_absmax(x);
    if max.abs() < GROUP_EPS {
        levels.fill(0);
        return 0.0;
    }
    let mut best_gain = -1.0f64;
    let mut best_scale = 0.0f32;
    let mut trial = [0i8; MAX_GROUP];
    let trial = &mut trial[..x.len()];
    for k in -9..=9 {
        let iscale = -(nmax as f32 + 0.1 * k as f32) / max;
        let (mut sxl, mut sl2) = (0f64, 0f64);
        for ((l, &v), &w) in trial.iter_mut().zip(x).zip(w) {
            *l = nearest_int(iscale * v).clamp(-nmax, nmax - 1) as i8;
            sxl += w as f64 * v as f64 * *l as f64;
            sl2 += w as f64 * (*l as f64) * (*l as f64);
        }
        // With the optimal scale sxl/sl2, the error drops by sxl²/sl2.
        if sl2 > 0.0 && sxl * sxl / sl2 > best_gain {
            best_gain = sxl * sxl / sl2;
            best_scale = (sxl / sl2) as f32;
            levels.copy_from_slice(trial);
        }
    }
    best_scale
}

/// Quantizes non-negative group scales to `0..=qmax` against one f16
/// super-scale; returns the super-scale and the integer scales.
pub fn quantize_unsigned_scales<const N: usize>(s: &[f32; N], qmax: u8) -> (f16, [u8; N]) {
    let max = s.iter().fold(0.0f32, |m, &v| m.max(v));
    if max <= 0.0 {
        return (f16::ZERO, [0; N]);
    }
    let d = f16::from_f32(max / qmax as f32);
    let inv = inverse(d.to_f32());
    (
        d,
        s.map(|v| nearest_int(v * inv).clamp(0, qmax as i32) as u8),
    )
}

/// Quantizes signed group scales to `-qmax..qmax` (exclusive top) against
/// one f16 super-scale, mapping the largest magnitude to `-qmax`.
pub fn quantize_signed_scales<const N: usize>(s: &[f32; N], qmax: i32) -> (f16, [i8; N]) {
    let max = signed_absmax(s);
    if max == 0.0 {
        return (f16::ZERO, [0; N]);
    }
    let d = f16::from_f32(-max / qmax as f32);
    let inv = inverse(d.to_f32());
    (
        d,
        s.map(|v| nearest_int(v * inv).clamp(-qmax, qmax - 1) as i8),
    )
}

fn inverse(d: f32) -> f32 {
    if d == 0.0 || !d.is_finite() {
        0.0
    } else {
        1.0 / d
    }
}

/// Re-rounds levels for the scale actually stored: `l = round((x + offset) / scale)`.
pub fn requantize_affine(x: &[f32], scale: f32, offset: f32, nmax: u8, levels: &mut [u8]) {
    if scale == 0.0 {
        levels.fill(0);
        return;
    }
    for (l, &v) in levels.iter_mut().zip(x) {
        *l = nearest_int((v + offset) / scale).clamp(0, nmax as i32) as u8;
    }
}

/// Re-rounds signed levels for the scale actually stored.
pub fn requantize_symmetric(x: &[f32], scale: f32, nmax: i32, levels: &mut [i8]) {
    if scale == 0.0 {
        levels.fill(0);
        return;
    }
    for (l, &v) in levels.iter_mut().zip(x) {
        *l = nearest_int(v / scale).clamp(-nmax, nmax - 1) as i8;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn affine_fit_of_exact_levels_recovers_them() {
        let x: Vec<f32> = (0..16).map(|l| 0.5 * l as f32 - 1.0).collect();
        let w = vec![1.0; 16];
        let mut levels = vec![0u8; 16];
        let fit = fit_affine(
            &x,
            &w,
            15,
            Fan {
                first: -1.0,
                step: 0.1,
                steps: 20,
            },
            &mut levels,
        );
        assert!(
            (fit.scale - 0.5).abs() < 1e-6 && (fit.offset - 1.0).abs() < 1e-6,
            "{fit:?}"
        );
        assert_eq!(levels, (0..16).collect::<Vec<u8>>());
    }

    #[test]
    fn symmetric_fit_maps_the_extreme_to_the_wide_side() {
        let x = [4.0f32, -2.0, 1.0, 0.0];
        let mut levels = [0i8; 4];
        let scale = fit_symmetric(&x, &[1.0; 4], 4, &mut levels);
        assert_eq!(levels, [-4, 2, -1, 0]);
        assert_eq!(scale, -1.0);
    }
}
