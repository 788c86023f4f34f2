//! Rounding and range helpers shared by the quantizers.
//!
//! ggml rounds in two ways and the difference shows in the produced bytes:
//! `nearest_int` (its float-magic trick, i.e. round half to even under the
//! default FP mode) in the K-quants, and `roundf` (half away from zero) in
//! Q8_0/Q8_1. The gguf package reproduces the latter with `np_roundf`.

/// Round half to even, saturating to `i32` (ggml's `nearest_int`).
#[inline]
pub fn nearest_int(x: f32) -> i32 {
    x.round_ties_even() as i32
}

/// The element of largest magnitude, with its sign; the first one wins ties
/// (as numpy's `argmax` and ggml's strict `>` scan both do). 0 for an empty slice.
#[inline]
pub fn signed_absmax(x: &[f32]) -> f32 {
    let mut best = 0.0f32;
    let mut best_abs = 0.0f32;
    for &v in x {
        if v.abs() > best_abs {
            best_abs = v.abs();
            best = v;
        }
    }
    best
}

/// Largest magnitude in `x` (0 for an empty slice).
#[inline]
pub fn absmax(x: &[f32]) -> f32 {
    x.iter().fold(0.0f32, |m, v| m.max(v.abs()))
}

/// Smallest and largest value of a non-empty slice.
#[inline]
pub fn min_max(x: &[f32]) -> (f32, f32) {
    x.iter()
        .fold((x[0], x[0]), |(lo, hi), &v| (lo.min(v), hi.max(v)))
}

/// `1/d`, or 0 where `d` is 0 (an all-zero block quantizes to zeros).
#[inline]
pub fn inverse_or_zero(d: f32) -> f32 {
    if d == 0.0 {
        0.0
    } else {
        1.0 / d
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_int_rounds_half_to_even() {
        assert_eq!(nearest_int(2.5), 2);
        assert_eq!(nearest_int(3.5), 4);
        assert_eq!(nearest_int(-2.5), -2);
        assert_eq!(nearest_int(-0.6), -1);
    }

    #[test]
    fn signed_absmax_keeps_sign_and_first_of_ties() {
        assert_eq!(signed_absmax(&[1.0, -3.0, 2.0]), -3.0);
        assert_eq!(signed_absmax(&[3.0, -3.0]), 3.0);
        assert_eq!(signed_absmax(&[-3.0, 3.0]), -3.0);
    }
}
