//! AVX2 kernels for K-quant super-blocks (Q4_K, Q6_K) against
//! [`Q8x256Row`] activations.
//!
//! Sub-block scales are small integers, so they are applied inside the
//! integer dot: `vpmaddubsw` (u8 weights × i8 activations → i16 pairs),
//! then `vpmaddwd` with the broadcast scale (→ i32, scaled and summed in
//! one step). One f32 multiply-add per super-block and token applies
//! `d_w * d_x`; mins and offsets come from the activations' 16-element
//! sums. Bounds: Q4_K 15·127·2 and Q6_K 63·127·2 per i16 pair, well below
//! 32768; the i32 sums stay below 2^26.

use std::arch::x86_64::*;
use std::ops::Range;

use super::super::OutView;
use super::util::{f16_at, hsum_ps};
use crate::exec::cpu::acts::{Q8x256Row, QuantizedActs};

/// One token's 256-element activation block.
#[derive(Clone, Copy)]
struct Act {
    /// 256 values, 32-byte aligned.
    qs: *const i8,
    d: f32,
    /// 16 sums of 16 values.
    bsums: *const i16,
}
use crate::exec::cpu::blocks::scale_min_k4;
use crate::exec::cpu::weights::WeightMatrix;

trait SuperBlock {
    const BYTES: usize;
    /// Adds the super-block at `p` dotted with each `x[t]` to `acc[t]`
    /// (as f32 lanes to be summed at the end).
    unsafe fn accumulate<const T: usize>(p: *const u8, x: [Act; T], acc: &mut [__m256; T]);
}

struct Q4K;
struct Q6K;

#[inline(always)]
unsafe fn load32(p: *const i8) -> __m256i {
    unsafe { _mm256_load_si256(p as *const __m256i) }
}

impl SuperBlock for Q4K {
    const BYTES: usize = 144;

    /// Layout: d, dmin (f16), 12 bytes of 6-bit scales/mins, 128 bytes of
    /// nibbles: bytes 32j..32j+32 hold sub-block 2j (low) and 2j+1 (high).
    #[inline(always)]
    unsafe fn accumulate<const T: usize>(p: *const u8, x: [Act; T], acc: &mut [__m256; T]) {
        unsafe {
            let (d, dmin) = (f16_at(p), f16_at(p.add(2)));
            let scales = std::slice::from_raw_parts(p.add(4), 12);
            let mut sc = [0i16; 8];
            let mut mn16 = [0i16; 16];
            for s in 0..8 {
                let (a, b) = scale_min_k4(s, scales);
                sc[s] = a as i16;
                mn16[2 * s] = b as i16;
                mn16[2 * s + 1] = b as i16;
            }
            let mins = _mm256_loadu_si256(mn16.as_ptr() as *const __m256i);
            let mut sumi = [_mm256_setzero_si256(); T];
            let low = _mm256_set1_epi8(0x0f);
            for j in 0..4 {
                let v = _mm256_loadu_si256(p.add(16 + 32 * j) as *const __m256i);
                let q_lo = _mm256_and_si256(v, low);
                let q_hi = _mm256_and_si256(_mm256_srli_epi16::<4>(v), low);
                let (s_lo, s_hi) = (
                    _mm256_set1_epi16(sc[2 * j]),
                    _mm256_set1_epi16(sc[2 * j + 1]),
                );
                for t in 0..T {
                    let a = x[t].qs.add(64 * j);
                    let p_lo = _mm256_madd_epi16(_mm256_maddubs_epi16(q_lo, load32(a)), s_lo);
                    let p_hi =
                        _mm256_madd_epi16(_mm256_maddubs_epi16(q_hi, load32(a.add(32))), s_hi);
                    sumi[t] = _mm256_add_epi32(sumi[t], _mm256_add_epi32(p_lo, p_hi));
                }
            }
            for t in 0..T {
                let bsums = _mm256_loadu_si256(x[t].bsums as *const __m256i);
                let m = _mm256_cvtepi32_ps(_mm256_madd_epi16(bsums, mins));
                acc[t] = _mm256_fmadd_ps(
                    _mm256_cvtepi32_ps(sumi[t]),
                    _mm256_set1_ps(d * x[t].d),
                    acc[t],
                );
                acc[t] = _mm256_fnmadd_ps(m, _mm256_set1_ps(dmin * x[t].d), acc[t]);
            }
        }
    }
}

impl SuperBlock for Q6K {
    const BYTES: usize = 210;

    /// Layout: ql[128], qh[64], scales[16] (i8), d (f16). Half `h`, quarter
    /// `r` (32 elements from 128h+32r) takes nibbles of ql[64h + 32(r%2)..]
    /// (high nibbles for r >= 2) and bits 2r..2r+2 of qh[32h..]; value
    /// minus 32; groups 8h+2r and 8h+2r+1 each have their own scale.
    #[inline(always)]
    unsafe fn accumulate<const T: usize>(p: *const u8, x: [Act; T], acc: &mut [__m256; T]) {
        unsafe {
            let d = f16_at(p.add(208));
            let sc8 = _mm_loadu_si128(p.add(192) as *const __m128i);
            let sc16 = _mm256_cvtepi8_epi16(sc8);
            let mut sumi = [_mm256_setzero_si256(); T];
            let (m4, m2) = (_mm256_set1_epi8(0x0f), _mm256_set1_epi8(0x30));
            for h in 0..2 {
                let ql0 = _mm256_loadu_si256(p.add(64 * h) as *const __m256i);
                let ql1 = _mm256_loadu_si256(p.add(64 * h + 32) as *const __m256i);
                let qh = _mm256_loadu_si256(p.add(128 + 32 * h) as *const __m256i);
                let q = [
                    _mm256_or_si256(
                        _mm256_and_si256(ql0, m4),
                        _mm256_and_si256(_mm256_slli_epi16::<4>(qh), m2),
                    ),
                    _mm256_or_si256(
                        _mm256_and_si256(ql1, m4),
                        _mm256_and_si256(_mm256_slli_epi16::<2>(qh), m2),
                    ),
                    _mm256_or_si256(
                        _mm256_and_si256(_mm256_srli_epi16::<4>(ql0), m4),
                        _mm256_and_si256(qh, m2),
                    ),
                    _mm256_or_si256(
                        _mm256_and_si256(_mm256_srli_epi16::<4>(ql1), m4),
                        _mm256_and_si256(_mm256_srli_epi16::<2>(qh), m2),
                    ),
                ];
                for (r, &qr) in q.iter().enumerate() {
                    let g = (8 * h + 2 * r) as i8;
                    let pick = _mm_set_epi8(
                        g + 1,
                        g + 1,
                        g + 1,
                        g + 1,
                        g + 1,
                        g + 1,
                        g + 1,
                        g + 1,
                        g,
                        g,
                        g,
                        g,
                        g,
                        g,
                        g,
                        g,
                    );
                    let scv = _mm256_cvtepi8_epi16(_mm_shuffle_epi8(sc8, pick));
                    for t in 0..T {
                        let a = load32(x[t].qs.add(128 * h + 32 * r));
                        sumi[t] = _mm256_add_epi32(
                            sumi[t],
                            _mm256_madd_epi16(_mm256_maddubs_epi16(qr, a), scv),
                        );
                    }
                }
            }
            for t in 0..T {
                // The stored values are q + 32: subtract 32 · Σ_g sc_g · bsum_g.
                let bsums = _mm256_loadu_si256(x[t].bsums as *const __m256i);
                let offset = _mm256_slli_epi32::<5>(_mm256_madd_epi16(bsums, sc16));
                let s = _mm256_sub_epi32(sumi[t], offset);
                acc[t] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(s), _mm256_set1_ps(d * x[t].d), acc[t]);
            }
        }
    }
}

/// `R` weight rows against `T` tokens. With `ahead > 0` (decode, where each
/// weight is read once, straight from memory) the rows `ahead` bytes on are
/// prefetched a super-block at a time.
#[inline(always)]
unsafe fn rows_x_tokens<B: SuperBlock, const R: usize, const T: usize>(
    w: [*const u8; R],
    x: [Q8x256Row; T],
    nb: usize,
    ahead: usize,
) -> [[f32; T]; R] {
    unsafe {
        let mut acc = [[_mm256_setzero_ps(); T]; R];
        for b in 0..nb {
            // In bounds: every row holds nb blocks.
            let xb: [Act; T] = std::array::from_fn(|t| Act {
                qs: x[t].qs.as_ptr().add(256 * b),
                d: *x[t].d.get_unchecked(b),
                bsums: x[t].bsums.get_unchecked(b).as_ptr(),
            });
            for r in 0..R {
                if ahead > 0 {
                    for line in (0..B::BYTES).step_by(64) {
                        // A prefetch never faults, even past the end of the weights.
                        let next = w[r].wrapping_add(ahead + b * B::BYTES + line);
                        _mm_prefetch::<_MM_HINT_T0>(next as *const i8);
                    }
                }
                B::accumulate::<T>(w[r].add(b * B::BYTES), xb, &mut acc[r]);
            }
        }
        let mut out = [[0f32; T]; R];
        for r in 0..R {
            for t in 0..T {
                out[r][t] = hsum_ps(acc[r][t]);
            }
        }
        out
    }
}

/// The tile loop: groups of `TB` tokens, then single tokens two rows at a
/// time. Compiled twice: for AVX2 (16 registers: 4 tokens) and, where
/// AVX-512 is present, with its 32 vector registers (8 tokens).
#[inline(always)]
unsafe fn tile_body<B: SuperBlock, const TB: usize>(
    w: &WeightMatrix,
    rows: Range<usize>,
    x: &QuantizedActs,
    toks: Range<usize>,
    out: &OutView,
) {
    let nb = w.cols / 256;
    let rp = |j: usize| w.row(j).as_ptr();
    unsafe {
        let mut t = toks.start;
        while t + TB <= toks.end {
            let xs: [Q8x256Row; TB] = std::array::from_fn(|u| x.q256_row(t + u));
            for j in rows.clone() {
                let d = rows_x_tokens::<B, 1, TB>([rp(j)], xs, nb, 0);
                for (u, v) in d[0].iter().enumerate() {
                    out.set(t + u, j, *v);
                }
            }
            t += TB;
        }
        for t in t..toks.end {
            let xs = [x.q256_row(t)];
            let mut j = rows.start;
            while j + 2 <= rows.end {
                let d = rows_x_tokens::<B, 2, 1>([rp(j), rp(j + 1)], xs, nb, 4 * w.row_bytes());
                out.set(t, j, d[0][0]);
                out.set(t, j + 1, d[1][0]);
                j += 2;
            }
            if j < rows.end {
                out.set(t, j, rows_x_tokens::<B, 1, 1>([rp(j)], xs, nb, 0)[0][0]);
            }
        }
    }
}

#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn tile<B: SuperBlock>(
    w: &WeightMatrix,
    rows: Range<usize>,
    x: &QuantizedActs,
    toks: Range<usize>,
    out: &OutView,
) {
    unsafe { tile_body::<B, 4>(w, rows, x, toks, out) }
}

#[target_feature(enable = "avx2,fma,f16c,avx512f,avx512bw,avx512vl")]
unsafe fn tile_wide<B: SuperBlock>(
    w: &WeightMatrix,
    rows: Range<usize>,
    x: &QuantizedActs,
    toks: Range<usize>,
    out: &OutView,
) {
    unsafe { tile_body::<B, 8>(w, rows, x, toks, out) }
}

macro_rules! entry {
    ($name:ident, $wide:ident, $block:ty) => {
        pub(in super::super) fn $name(
            w: &WeightMatrix,
            rows: Range<usize>,
            x: &QuantizedActs,
            toks: Range<usize>,
            out: &OutView,
        ) {
            // SAFETY: returned only for paths with AVX2, FMA and F16C (checked by matmul).
            unsafe { tile::<$block>(w, rows, x, toks, out) }
        }

        pub(in super::super) fn $wide(
            w: &WeightMatrix,
            rows: Range<usize>,
            x: &QuantizedActs,
            toks: Range<usize>,
            out: &OutView,
        ) {
            // SAFETY: returned only for the Avx512Vnni path (checked by matmul),
            // whose features include AVX-512 F/BW/VL.
            unsafe { tile_wide::<$block>(w, rows, x, toks, out) }
        }
    };
}

entry!(tile_q4_k, tile_q4_k_wide, Q4K);
entry!(tile_q6_k, tile_q6_k_wide, Q6K);
