//! Scores of keys stored in Q8_0 or Q4_0 blocks. As ggml's flash attention
//! does, q is quantized once per head to Q8_0 (the dot type of both), and
//! each key head is then dotted with it in integers: per block one integer
//! dot and one f32 multiply-add by `d_k · d_q`. No key is ever expanded to
//! f32.

use bytemuck::Zeroable;

use super::simd::SimdPath;
use crate::quant::blocks::{BlockQ4_0, BlockQ8_0, QuantizeBlock};

/// Elements per block of both formats.
pub(crate) const QK: usize = 32;

/// `q` (a whole number of blocks) as Q8_0 blocks, ggml's reference rounding.
pub(crate) fn quantize_query(q: &[f32], out: &mut [BlockQ8_0]) {
    for (o, x) in out.iter_mut().zip(q.chunks_exact(QK)) {
        *o = BlockQ8_0::quantize(x);
    }
}

/// A zeroed block, for stack buffers.
pub(crate) fn empty_block() -> BlockQ8_0 {
    BlockQ8_0::zeroed()
}

/// `Σ_b d_k d_q Σ_i k_i q_i` over the blocks of one key head.
#[inline(always)]
pub(crate) fn dot_q8_0(path: SimdPath, k: &[BlockQ8_0], q: &[BlockQ8_0]) -> f32 {
    #[cfg(target_arch = "x86_64")]
    if path != SimdPath::Portable {
        // SAFETY: every non-portable path implies AVX2, FMA and F16C.
        return unsafe { x86::dot_q8_0(k, q) };
    }
    let _ = path;
    k.iter()
        .zip(q)
        .map(|(kb, qb)| {
            let s: i32 = kb
                .qs
                .iter()
                .zip(&qb.qs)
                .map(|(&a, &b)| a as i32 * b as i32)
                .sum();
            kb.d.to_f32() * qb.d.to_f32() * s as f32
        })
        .sum()
}

/// [`dot_q8_0`] for Q4_0 keys (levels `nibble - 8`; byte `j` holds
/// elements `j` and `j + 16`).
#[inline(always)]
pub(crate) fn dot_q4_0(path: SimdPath, k: &[BlockQ4_0], q: &[BlockQ8_0]) -> f32 {
    #[cfg(target_arch = "x86_64")]
    if path != SimdPath::Portable {
        // SAFETY: every non-portable path implies AVX2, FMA and F16C.
        return unsafe { x86::dot_q4_0(k, q) };
    }
    let _ = path;
    k.iter()
        .zip(q)
        .map(|(kb, qb)| {
            let mut s = 0i32;
            for (j, &b) in kb.qs.iter().enumerate() {
                s += ((b & 0xf) as i32 - 8) * qb.qs[j] as i32;
                s += ((b >> 4) as i32 - 8) * qb.qs[j + 16] as i32;
            }
            kb.d.to_f32() * qb.d.to_f32() * s as f32
        })
        .sum()
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    use std::arch::x86_64::*;

    use crate::quant::blocks::{BlockQ4_0, BlockQ8_0};

    /// Eight i32 partial sums of the signed bytes `k · q`:
    /// `vpmaddubsw(|k|, sign(q, k))` is exact for |k| ≤ 128, |q| ≤ 127.
    #[inline(always)]
    unsafe fn dot_i8(k: __m256i, q: __m256i) -> __m256 {
        unsafe {
            let pairs = _mm256_maddubs_epi16(_mm256_sign_epi8(k, k), _mm256_sign_epi8(q, k));
            _mm256_cvtepi32_ps(_mm256_madd_epi16(pairs, _mm256_set1_epi16(1)))
        }
    }

    #[inline(always)]
    unsafe fn hsum(v: __m256) -> f32 {
        unsafe {
            let s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps::<1>(v));
            let s = _mm_add_ps(s, _mm_movehl_ps(s, s));
            _mm_cvtss_f32(_mm_add_ss(s, _mm_movehdup_ps(s)))
        }
    }

    #[inline(always)]
    unsafe fn q_bytes(b: &BlockQ8_0) -> __m256i {
        unsafe { _mm256_loadu_si256(b.qs.as_ptr() as *const __m256i) }
    }

    #[inline(always)]
    pub(super) unsafe fn dot_q8_0(k: &[BlockQ8_0], q: &[BlockQ8_0]) -> f32 {
        unsafe {
            let mut acc = _mm256_setzero_ps();
            for (kb, qb) in k.iter().zip(q) {
                let d = _mm256_set1_ps(kb.d.to_f32() * qb.d.to_f32());
                acc = _mm256_fmadd_ps(d, dot_i8(q_bytes(kb), q_bytes(qb)), acc);
            }
            hsum(acc)
        }
    }

    #[inline(always)]
    pub(super) unsafe fn dot_q4_0(k: &[BlockQ4_0], q: &[BlockQ8_0]) -> f32 {
        unsafe {
            let (mask, eight) = (_mm_set1_epi8(0x0f), _mm256_set1_epi8(8));
            let mut acc = _mm256_setzero_ps();
            for (kb, qb) in k.iter().zip(q) {
                let x = _mm_loadu_si128(kb.qs.as_ptr() as *const __m128i);
                let lo = _mm_and_si128(x, mask);
                let hi = _mm_and_si128(_mm_srli_epi16::<4>(x), mask);
                let levels = _mm256_sub_epi8(_mm256_set_m128i(hi, lo), eight);
                let d = _mm256_set1_ps(kb.d.to_f32() * qb.d.to_f32());
                acc = _mm256_fmadd_ps(d, dot_i8(levels, q_bytes(qb)), acc);
            }
            hsum(acc)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::quant::blocks::QuantizeBlock;

    fn wave(n: usize, f: f32) -> Vec<f32> {
        (0..n).map(|i| (i as f32 * f).sin() * 3.0).collect()
    }

    /// The integer dot equals the f32 dot of the dequantized blocks (up to
    /// f32 summation order).
    fn check<B: QuantizeBlock>(dot: impl Fn(SimdPath, &[B], &[BlockQ8_0]) -> f32) {
        let (k, q) = (wave(128, 0.37), wave(128, 0.11));
        let kb: Vec<B> = k.chunks_exact(QK).map(B::quantize).collect();
        let mut qb = vec![empty_block(); 4];
        quantize_query(&q, &mut qb);
        let (mut kf, mut qf) = (vec![0f32; 128], vec![0f32; 128]);
        crate::quant::blocks::dequantize_row(&kb, &mut kf);
        crate::quant::blocks::dequantize_row(&qb, &mut qf);
        let want: f64 = kf.iter().zip(&qf).map(|(a, b)| *a as f64 * *b as f64).sum();
        for path in SimdPath::available() {
            let got = dot(path, &kb, &qb) as f64;
            assert!(
                (got - want).abs() <= 1e-5 * want.abs().max(1.0),
                "{path:?} {}: {got} vs {want}",
                B::TYPE
            );
        }
    }

    #[test]
    fn q8_0_key_dot_equals_the_dot_of_the_dequantized_blocks() {
        check::<BlockQ8_0>(dot_q8_0);
    }

    #[test]
    fn q4_0_key_dot_equals_the_dot_of_the_dequantized_blocks() {
        check::<BlockQ4_0>(dot_q4_0);
    }
}
