//! AVX-512 VNNI kernels for 32-element weight blocks (Q4_0, Q4_1, Q5_0,
//! Q5_1, Q8_0) against [`Q8x32Row`] activations.
//!
//! Two blocks fill one 512-bit register. `vpdpbusd` multiplies unsigned
//! weight bytes with signed activation bytes and sums fours into i32
//! without intermediate saturation, so every type is brought to unsigned
//! levels `u` with `x = d*u + m`: the symmetric types' offsets become a
//! minimum (`m = -8d`, `-16d`, `-128d`), applied through the activation
//! blocks' integer sums. Per weight row, the products `d_w * d_x` and the
//! minimum terms are tabulated for a chunk of blocks and all tokens of the
//! tile first; the inner loop is then load, `vpdpbusd`, convert, and one
//! multiply-add per two blocks and token.

use std::arch::x86_64::*;
use std::ops::Range;

use super::super::OutView;
use super::util::{f16_at, nibbles_32};
use crate::exec::cpu::acts::{Q8x32Row, QuantizedActs};
use crate::exec::cpu::math::dot;
use crate::exec::cpu::weights::WeightMatrix;

trait Pair32 {
    const BYTES: usize;
    /// Unsigned levels of the two blocks at `p` (block 0 in the low half).
    unsafe fn levels(p: *const u8) -> __m512i;
    /// `(d, m)` of the block at `p`: `x = d*u + m`.
    unsafe fn scales(p: *const u8) -> (f32, f32);
}

struct Q4_0;
struct Q4_1;
struct Q5_0;
struct Q5_1;
struct Q8_0;

#[inline(always)]
unsafe fn join(lo: __m256i, hi: __m256i) -> __m512i {
    _mm512_inserti64x4::<1>(_mm512_castsi256_si512(lo), hi)
}

/// Adds 16 to the bytes whose fifth bit is set in the two blocks' `qh`.
#[inline(always)]
unsafe fn fifth_bits(nib: __m512i, qh0: *const u8, qh1: *const u8) -> __m512i {
    unsafe {
        let k = (qh0 as *const u32).read_unaligned() as u64
            | ((qh1 as *const u32).read_unaligned() as u64) << 32;
        _mm512_mask_add_epi8(nib, k, nib, _mm512_set1_epi8(16))
    }
}

impl Pair32 for Q4_0 {
    const BYTES: usize = 18;
    #[inline(always)]
    unsafe fn levels(p: *const u8) -> __m512i {
        unsafe { join(nibbles_32(p.add(2)), nibbles_32(p.add(20))) }
    }
    #[inline(always)]
    unsafe fn scales(p: *const u8) -> (f32, f32) {
        let d = unsafe { f16_at(p) };
        (d, -8.0 * d)
    }
}

impl Pair32 for Q4_1 {
    const BYTES: usize = 20;
    #[inline(always)]
    unsafe fn levels(p: *const u8) -> __m512i {
        unsafe { join(nibbles_32(p.add(4)), nibbles_32(p.add(24))) }
    }
    #[inline(always)]
    unsafe fn scales(p: *const u8) -> (f32, f32) {
        unsafe { (f16_at(p), f16_at(p.add(2))) }
    }
}

impl Pair32 for Q5_0 {
    const BYTES: usize = 22;
    #[inline(always)]
    unsafe fn levels(p: *const u8) -> __m512i {
        unsafe {
            fifth_bits(
                join(nibbles_32(p.add(6)), nibbles_32(p.add(28))),
                p.add(2),
                p.add(24),
            )
        }
    }
    #[inline(always)]
    unsafe fn scales(p: *const u8) -> (f32, f32) {
        let d = unsafe { f16_at(p) };
        (d, -16.0 * d)
    }
}

impl Pair32 for Q5_1 {
    const BYTES: usize = 24;
    #[inline(always)]
    unsafe fn levels(p: *const u8) -> __m512i {
        unsafe {
            fifth_bits(
                join(nibbles_32(p.add(8)), nibbles_32(p.add(32))),
                p.add(4),
                p.add(28),
            )
        }
    }
    #[inline(always)]
    unsafe fn scales(p: *const u8) -> (f32, f32) {
        unsafe { (f16_at(p), f16_at(p.add(2))) }
    }
}

impl Pair32 for Q8_0 {
    const BYTES: usize = 34;
    #[inline(always)]
    unsafe fn levels(p: *const u8) -> __m512i {
        unsafe {
            let lo = _mm256_loadu_si256(p.add(2) as *const __m256i);
            let hi = _mm256_loadu_si256(p.add(36) as *const __m256i);
            // Two's complement + 128 = flip the top bit.
            _mm512_xor_si512(join(lo, hi), _mm512_set1_epi8(-128))
        }
    }
    #[inline(always)]
    unsafe fn scales(p: *const u8) -> (f32, f32) {
        let d = unsafe { f16_at(p) };
        (d, -128.0 * d)
    }
}

/// Blocks tabulated at a time (even, so pairs never straddle chunks).
const CHUNK: usize = 64;

/// `R` weight rows against `T` tokens; `nb` is even.
#[inline(always)]
unsafe fn rows_x_tokens<B: Pair32, const R: usize, const T: usize>(
    w: [*const u8; R],
    x: [Q8x32Row; T],
    nb: usize,
    scale: &mut [[[f32; CHUNK]; T]; R],
) -> [[f32; T]; R] {
    unsafe {
        let mut acc = [[_mm512_setzero_ps(); T]; R];
        let mut mins = [[0f32; T]; R];
        // Lanes 0..8 take the first block's scale, 8..16 the second's.
        let halves = _mm512_set_epi32(1, 1, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 0, 0, 0, 0);
        for c0 in (0..nb).step_by(CHUNK) {
            let n = CHUNK.min(nb - c0);
            for r in 0..R {
                let (mut dw, mut mw) = ([0f32; CHUNK], [0f32; CHUNK]);
                for b in 0..n {
                    (dw[b], mw[b]) = B::scales(w[r].add((c0 + b) * B::BYTES));
                }
                for t in 0..T {
                    let xd = &x[t].d[c0..c0 + n];
                    for b in 0..n {
                        scale[r][t][b] = dw[b] * xd[b];
                    }
                    mins[r][t] += dot(&mw[..n], &x[t].dsum[c0..c0 + n]);
                }
            }
            for b in (0..n).step_by(2) {
                for r in 0..R {
                    let u = B::levels(w[r].add((c0 + b) * B::BYTES));
                    for t in 0..T {
                        // In bounds: rows hold nb blocks; qs rows are 64-byte aligned.
                        let xv = _mm512_load_si512(
                            x[t].qs.as_ptr().add(32 * (c0 + b)) as *const __m512i
                        );
                        let p =
                            _mm512_cvtepi32_ps(_mm512_dpbusd_epi32(_mm512_setzero_si512(), u, xv));
                        let s2 =
                            _mm_castpd_ps(_mm_load_sd(scale[r][t].as_ptr().add(b) as *const f64));
                        let s = _mm512_permutexvar_ps(halves, _mm512_castps128_ps512(s2));
                        acc[r][t] = _mm512_fmadd_ps(p, s, acc[r][t]);
                    }
                }
            }
        }
        let mut out = [[0f32; T]; R];
        for r in 0..R {
            for t in 0..T {
                out[r][t] = _mm512_reduce_add_ps(acc[r][t]) + mins[r][t];
            }
        }
        out
    }
}

/// Tokens per prefill step (32 registers: 2 rows × 8 tokens accumulate).
const TB: usize = 8;

#[target_feature(enable = "avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni")]
unsafe fn tile<B: Pair32>(
    w: &WeightMatrix,
    rows: Range<usize>,
    x: &QuantizedActs,
    toks: Range<usize>,
    out: &OutView,
) {
    let nb = w.cols / 32;
    let rp = |j: usize| w.row(j).as_ptr();
    // Scale tables, zeroed once per tile rather than once per row.
    let (mut s2, mut s1) = ([[[0f32; CHUNK]; TB]; 2], [[[0f32; CHUNK]; TB]; 1]);
    let (mut s4, mut s0) = ([[[0f32; CHUNK]; 1]; 4], [[[0f32; CHUNK]; 1]; 1]);
    unsafe {
        let mut t = toks.start;
        while t + TB <= toks.end {
            let xs: [Q8x32Row; TB] = std::array::from_fn(|u| x.q32_row(t + u));
            let mut j = rows.start;
            while j + 2 <= rows.end {
                let d = rows_x_tokens::<B, 2, TB>([rp(j), rp(j + 1)], xs, nb, &mut s2);
                for u in 0..TB {
                    out.set(t + u, j, d[0][u]);
                    out.set(t + u, j + 1, d[1][u]);
                }
                j += 2;
            }
            if j < rows.end {
                for (u, v) in rows_x_tokens::<B, 1, TB>([rp(j)], xs, nb, &mut s1)[0]
                    .iter()
                    .enumerate()
                {
                    out.set(t + u, j, *v);
                }
            }
            t += TB;
        }
        for t in t..toks.end {
            let xs = [x.q32_row(t)];
            let mut j = rows.start;
            while j + 4 <= rows.end {
                let d = rows_x_tokens::<B, 4, 1>(
                    [rp(j), rp(j + 1), rp(j + 2), rp(j + 3)],
                    xs,
                    nb,
                    &mut s4,
                );
                for r in 0..4 {
                    out.set(t, j + r, d[r][0]);
                }
                j += 4;
            }
            for j in j..rows.end {
                out.set(
                    t,
                    j,
                    rows_x_tokens::<B, 1, 1>([rp(j)], xs, nb, &mut s0)[0][0],
                );
            }
        }
    }
}

macro_rules! entry {
    ($name:ident, $block:ty) => {
        pub(in super::super) fn $name(
            w: &WeightMatrix,
            rows: Range<usize>,
            x: &QuantizedActs,
            toks: Range<usize>,
            out: &OutView,
        ) {
            // SAFETY: returned only for the Avx512Vnni path, whose features
            // matmul checked are available.
            unsafe { tile::<$block>(w, rows, x, toks, out) }
        }
    };
}

entry!(tile_q4_0, Q4_0);
entry!(tile_q4_1, Q4_1);
entry!(tile_q5_0, Q5_0);
entry!(tile_q5_1, Q5_1);
entry!(tile_q8_0, Q8_0);
