//! Branch-free f32 transcendental functions that vectorise: written as
//! straight-line code so that the compiler turns loops over them into SIMD
//! (inside `#[target_feature]` wrappers, into AVX2).

const LOG2E: f32 = std::f32::consts::LOG2_E;
// ln 2 split in two so that `x - n*ln2` loses no bits (Cody-Waite).
const LN2_HI: f32 = 0.693_359_4;
const LN2_LO: f32 = -2.121_944_4e-4;
/// 1.5·2^23: adding it to an integer-valued float puts the integer in the
/// low mantissa bits.
const ROUND_MAGIC: f32 = 12_582_912.0;

/// `e^x` to about 2 ulp for x in [-87, 88]; inputs outside are clamped, so
/// the result is never Inf or NaN for finite x (NaN stays NaN).
#[inline(always)]
pub(crate) fn exp(x: f32) -> f32 {
    let x = x.clamp(-87.0, 88.0);
    let n = (x * LOG2E + 0.5).floor();
    let r = x - n * LN2_HI - n * LN2_LO;
    // Minimax polynomial for e^r - 1 - r on |r| <= ln2/2 (Cephes expf).
    let mut p = 1.987_569_1e-4f32;
    p = p.mul_add(r, 1.398_199_9e-3);
    p = p.mul_add(r, 8.333_452e-3);
    p = p.mul_add(r, 4.166_579_6e-2);
    p = p.mul_add(r, 1.666_666_5e-1);
    p = p.mul_add(r, 0.5);
    let e = p.mul_add(r * r, r) + 1.0;
    // n is in -126..=127 after the clamp, so the biased exponent is normal.
    // Its integer is read from the bits of n + 1.5·2^23 (exact for |n| <
    // 2^22) rather than by `as i32`, whose saturating semantics keep the
    // compiler from vectorising the conversion: the same value, without
    // four scalar instructions per lane.
    let biased = (n + ROUND_MAGIC)
        .to_bits()
        .wrapping_sub(ROUND_MAGIC.to_bits())
        .wrapping_add(127);
    let two_n = f32::from_bits(biased << 23);
    e * two_n
}

/// `x * sigmoid(x)`.
#[inline(always)]
pub(crate) fn silu(x: f32) -> f32 {
    x / (1.0 + exp(-x))
}

/// √(2/π), the slope of GELU's tanh approximation at 0.
const SQRT_2_OVER_PI: f32 = 0.797_884_6;

/// GELU, tanh approximation: `0.5·x·(1 + tanh(√(2/π)·(x + 0.044715·x³)))`,
/// computed as `x·sigmoid(2y)` (the same number, since
/// `(1 + tanh y)/2 = sigmoid(2y)`) so that it shares `exp` and never
/// overflows.
#[inline(always)]
pub fn gelu_tanh(x: f32) -> f32 {
    let y = SQRT_2_OVER_PI * x * (0.044_715 * x * x).mul_add(1.0, 1.0);
    x / (1.0 + exp(-2.0 * y))
}

/// `cap·tanh(x / cap)` (Gemma 2's soft-capping), as ggml computes it: a
/// scale, tanh, and a scale back.
#[inline(always)]
pub fn softcap(x: f32, cap: f32) -> f32 {
    (x * (1.0 / cap)).tanh() * cap
}

/// f32 dot product with eight partial sums (the lanes of one AVX register),
/// so the loop vectorises and its result does not depend on the path.
#[inline(always)]
pub(crate) fn dot(a: &[f32], b: &[f32]) -> f32 {
    let mut s = [0f32; 8];
    let mut ca = a.chunks_exact(8);
    let mut cb = b.chunks_exact(8);
    for (x, y) in (&mut ca).zip(&mut cb) {
        for l in 0..8 {
            s[l] = x[l].mul_add(y[l], s[l]);
        }
    }
    let mut tail = 0f32;
    for (x, y) in ca.remainder().iter().zip(cb.remainder()) {
        tail = x.mul_add(*y, tail);
    }
    ((s[0] + s[4]) + (s[1] + s[5])) + ((s[2] + s[6]) + (s[3] + s[7])) + tail
}

#[cfg(test)]
mod tests {
    /// The exponent's integer from the rounding constant is the one `as
    /// i32` gives, for every n the clamp allows: `exp` keeps its bits.
    #[test]
    fn exponent_from_the_rounding_constant_equals_the_cast() {
        for n in -126..=127 {
            let f = n as f32;
            let biased = (f + super::ROUND_MAGIC)
                .to_bits()
                .wrapping_sub(super::ROUND_MAGIC.to_bits())
                .wrapping_add(127);
            assert_eq!(biased, (n + 127) as u32, "n = {n}");
        }
        for x in [f32::NAN, f32::INFINITY, f32::NEG_INFINITY, -1e30, 1e30] {
            let y = super::exp(x);
            assert!(
                if x.is_nan() {
                    y.is_nan()
                } else {
                    y.is_finite()
                },
                "exp({x}) = {y}"
            );
        }
    }

    #[test]
    fn exp_matches_std_to_a_few_ulp() {
        let mut x = -87.0f32;
        while x < 88.0 {
            let (ours, reference) = (super::exp(x), (x as f64).exp());
            assert!(
                ((ours as f64 - reference) / reference).abs() < 5e-7,
                "exp({x}) = {ours}, expected {reference}"
            );
            x += 0.0137;
        }
    }

    #[test]
    fn gelu_tanh_matches_the_tanh_formula_in_f64() {
        let mut x = -30.0f32;
        while x < 30.0 {
            let xd = x as f64;
            let y = (2.0 / std::f64::consts::PI).sqrt() * (xd + 0.044715 * xd * xd * xd);
            let reference = 0.5 * xd * (1.0 + y.tanh());
            let ours = super::gelu_tanh(x) as f64;
            assert!(
                (ours - reference).abs() <= 1e-6 * (1.0 + reference.abs()),
                "gelu({x}) = {ours}, expected {reference}"
            );
            x += 0.0173;
        }
        assert!(super::gelu_tanh(-1e30).abs() < 1e-6);
        assert_eq!(super::gelu_tanh(1e30), 1e30);
    }

    #[test]
    fn silu_saturates_without_nan() {
        assert!(super::silu(-1e30).abs() < 1e-6);
        assert_eq!(super::silu(1e30), 1e30);
        assert!((super::silu(1.0) - 0.731_058_6).abs() < 1e-6);
    }
}
