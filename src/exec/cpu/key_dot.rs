//! Scores of keys stored in Q8_0 or Q4_0 blocks. As ggml's flash attention
//! does, q is quantized once per head to Q8_0 (the dot type of both), and
//! each key head is then dotted with it in integers: per block one integer
//! dot and one f32 multiply-add by `d_k · d_q`. No key is ever expanded to
//! f32.

use super::simd::SimdPath;
use crate::quant::blocks::{BlockQ4_0, BlockQ8_0, QuantizeBlock};

/// Elements per block of both formats.
pub(crate) const QK: usize = 32;

/// Most heads and blocks per head a [`QueryBlocks`] holds (attention's
/// group of heads; head_dim ≤ 256).
pub(crate) const MAX_HEADS: usize = 8;
pub(crate) const MAX_BLOCKS: usize = 8;

/// The q of a group of heads in Q8_0, with the block scales already f32,
/// so that each key block is loaded and made unsigned once for all heads.
pub(crate) struct QueryBlocks {
    qs: [[[i8; QK]; MAX_BLOCKS]; MAX_HEADS],
    d: [[f32; MAX_BLOCKS]; MAX_HEADS],
    heads: usize,
    nb: usize,
}

impl QueryBlocks {
    /// `q` holds `heads` rows of `hd` (a multiple of 32, at most 256;
    /// `heads` at most 8: the caller checks both).
    pub(crate) fn new(q: &[f32], heads: usize, hd: usize) -> Self {
        let mut qb = QueryBlocks {
            qs: [[[0; QK]; MAX_BLOCKS]; MAX_HEADS],
            d: [[0.0; MAX_BLOCKS]; MAX_HEADS],
            heads,
            nb: hd / QK,
        };
        for h in 0..heads {
            for (b, x) in q[h * hd..(h + 1) * hd].chunks_exact(QK).enumerate() {
                let block = BlockQ8_0::quantize(x);
                qb.qs[h][b] = block.qs;
                qb.d[h][b] = block.d.to_f32();
            }
        }
        qb
    }

    /// `out[h] = q_h · k` for one key head in Q8_0 blocks.
    #[inline(always)]
    pub(crate) fn scores_q8_0(&self, path: SimdPath, k: &[BlockQ8_0], out: &mut [f32]) {
        #[cfg(target_arch = "x86_64")]
        if path != SimdPath::Portable {
            // SAFETY: every non-portable path implies AVX2, FMA and F16C.
            return unsafe { x86::scores_q8_0(self, k, out) };
        }
        let _ = path;
        for h in 0..self.heads {
            out[h] = (0..self.nb)
                .map(|b| {
                    let s: i32 = k[b]
                        .qs
                        .iter()
                        .zip(&self.qs[h][b])
                        .map(|(&a, &c)| a as i32 * c as i32)
                        .sum();
                    k[b].d.to_f32() * self.d[h][b] * s as f32
                })
                .sum();
        }
    }

    /// [`scores_q8_0`](Self::scores_q8_0) for a key head in Q4_0 blocks.
    #[inline(always)]
    pub(crate) fn scores_q4_0(&self, path: SimdPath, k: &[BlockQ4_0], out: &mut [f32]) {
        #[cfg(target_arch = "x86_64")]
        if path != SimdPath::Portable {
            // SAFETY: every non-portable path implies AVX2, FMA and F16C.
            return unsafe { x86::scores_q4_0(self, k, out) };
        }
        let _ = path;
        for h in 0..self.heads {
            out[h] = (0..self.nb)
                .map(|b| {
                    let q = &self.qs[h][b];
                    let mut s = 0i32;
                    for (j, &x) in k[b].qs.iter().enumerate() {
                        s += ((x & 0xf) as i32 - 8) * q[j] as i32;
                        s += ((x >> 4) as i32 - 8) * q[j + 16] as i32;
                    }
                    k[b].d.to_f32() * self.d[h][b] * s as f32
                })
                .sum();
        }
    }
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    use std::arch::x86_64::*;

    use crate::quant::blocks::{BlockQ4_0, BlockQ8_0};

    #[inline(always)]
    unsafe fn hsum(v: __m256) -> f32 {
        unsafe {
            let s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps::<1>(v));
            let s = _mm_add_ps(s, _mm_movehl_ps(s, s));
            _mm_cvtss_f32(_mm_add_ss(s, _mm_movehdup_ps(s)))
        }
    }

    /// Per head, one accumulator of eight lanes; each key block is
    /// loaded and made unsigned once for all heads.
    #[inline(always)]
    unsafe fn scores(
        qb: &super::QueryBlocks,
        key_block: impl Fn(usize) -> (__m256i, f32),
        out: &mut [f32],
    ) {
        unsafe {
            let mut acc = [_mm256_setzero_ps(); super::MAX_HEADS];
            let ones = _mm256_set1_epi16(1);
            for b in 0..qb.nb {
                let (k, dk) = key_block(b);
                let k_abs = _mm256_sign_epi8(k, k);
                for h in 0..qb.heads {
                    let q = _mm256_loadu_si256(qb.qs[h][b].as_ptr() as *const __m256i);
                    let pairs = _mm256_maddubs_epi16(k_abs, _mm256_sign_epi8(q, k));
                    let sums = _mm256_cvtepi32_ps(_mm256_madd_epi16(pairs, ones));
                    acc[h] = _mm256_fmadd_ps(_mm256_set1_ps(dk * qb.d[h][b]), sums, acc[h]);
                }
            }
            for h in 0..qb.heads {
                out[h] = hsum(acc[h]);
            }
        }
    }

    #[inline(always)]
    pub(super) unsafe fn scores_q8_0(qb: &super::QueryBlocks, k: &[BlockQ8_0], out: &mut [f32]) {
        unsafe { scores(qb, |b| (q_bytes(&k[b]), k[b].d.to_f32()), out) }
    }

    #[inline(always)]
    pub(super) unsafe fn scores_q4_0(qb: &super::QueryBlocks, k: &[BlockQ4_0], out: &mut [f32]) {
        unsafe {
            let mask = _mm_set1_epi8(0x0f);
            let eight = _mm256_set1_epi8(8);
            scores(
                qb,
                |b| {
                    let x = _mm_loadu_si128(k[b].qs.as_ptr() as *const __m128i);
                    let lo = _mm_and_si128(x, mask);
                    let hi = _mm_and_si128(_mm_srli_epi16::<4>(x), mask);
                    let levels = _mm256_sub_epi8(_mm256_set_m128i(hi, lo), eight);
                    (levels, k[b].d.to_f32())
                },
                out,
            )
        }
    }

    #[inline(always)]
    unsafe fn q_bytes(b: &BlockQ8_0) -> __m256i {
        unsafe { _mm256_loadu_si256(b.qs.as_ptr() as *const __m256i) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::quant::blocks::QuantizeBlock;

    fn wave(n: usize, f: f32) -> Vec<f32> {
        (0..n).map(|i| (i as f32 * f).sin() * 3.0).collect()
    }

    /// Each head's score equals the f32 dot of the dequantized key and q
    /// blocks (up to f32 summation order), on every path.
    fn check<B: QuantizeBlock>(scores: impl Fn(&QueryBlocks, SimdPath, &[B], &mut [f32])) {
        let (hd, heads) = (128, 3);
        let k = wave(hd, 0.37);
        let q = wave(heads * hd, 0.11);
        let kb: Vec<B> = k.chunks_exact(QK).map(B::quantize).collect();
        let mut kf = vec![0f32; hd];
        crate::quant::blocks::dequantize_row(&kb, &mut kf);
        let qb = QueryBlocks::new(&q, heads, hd);
        for path in SimdPath::available() {
            let mut got = [0f32; MAX_HEADS];
            scores(&qb, path, &kb, &mut got);
            for h in 0..heads {
                let qh: Vec<BlockQ8_0> = q[h * hd..(h + 1) * hd]
                    .chunks_exact(QK)
                    .map(BlockQ8_0::quantize)
                    .collect();
                let mut qf = vec![0f32; hd];
                crate::quant::blocks::dequantize_row(&qh, &mut qf);
                let want: f64 = kf.iter().zip(&qf).map(|(a, b)| *a as f64 * *b as f64).sum();
                let g = got[h] as f64;
                assert!(
                    (g - want).abs() <= 1e-5 * want.abs().max(1.0),
                    "{path:?} {} head {h}: {g} vs {want}",
                    B::TYPE
                );
            }
        }
    }

    #[test]
    fn q8_0_key_scores_equal_the_dots_of_the_dequantized_blocks() {
        check::<BlockQ8_0>(|qb, p, k, out| qb.scores_q8_0(p, k, out));
    }

    #[test]
    fn q4_0_key_scores_equal_the_dots_of_the_dequantized_blocks() {
        check::<BlockQ4_0>(|qb, p, k, out| qb.scores_q4_0(p, k, out));
    }
}
