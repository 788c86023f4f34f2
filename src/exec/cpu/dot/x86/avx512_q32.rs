//! AVX-512 VNNI kernels for 32-element weight blocks (Q4_0, Q4_1, Q5_0,
//! Q5_1, Q8_0, IQ4_NL, MXFP4) against [`Q8x32Row`] activations.
//!
//! Two blocks fill one 512-bit register. `vpdpbusd` multiplies unsigned
//! weight bytes with signed activation bytes and sums fours into i32
//! without intermediate saturation, so every type is brought to unsigned
//! levels `u` with `x = d*u + m`: the symmetric types' offsets become a
//! minimum (`m = -8d`, `-16d`, `-128d`; the codebook types IQ4_NL and
//! MXFP4 look their nibbles up in a codebook shifted by 128 and 12, and
//! take `m = -128d`, `-12d`), applied through the activation
//! blocks' sums. Groups of 16 tokens (`row_x_group`), and single tokens
//! (decode, a group's remainder) through `rows_x_token`, which repeats a
//! group lane's arithmetic operation for operation: a token's result is
//! the same bits whether it ran alone or batched with others (the
//! scheduler's batched == alone; tests/sched_batching.rs).

use std::arch::x86_64::*;
use std::ops::Range;

use super::super::OutView;
use super::util::{f16_at, nibbles_32, put_scratch, take_scratch, transpose_group};
use crate::exec::cpu::acts::{Q8x32Row, QuantizedActs};
use crate::exec::cpu::weights::WeightMatrix;
use crate::quant::blocks::{e8m0_to_f32_half, KVALUES_IQ4NL, KVALUES_MXFP4};

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

struct IQ4NL;
struct MXFP4;

/// The 16-entry codebook `book` plus `bias` (wrapping: the unsigned
/// levels), in all four 128-bit lanes, for `vpshufb`.
#[inline(always)]
unsafe fn codebook_u8(book: &[i8; 16], bias: i8) -> __m512i {
    unsafe {
        // SAFETY: 16 readable bytes.
        let b = _mm_loadu_si128(book.as_ptr() as *const __m128i);
        _mm512_broadcast_i32x4(_mm_add_epi8(b, _mm_set1_epi8(bias)))
    }
}

impl Pair32 for IQ4NL {
    const BYTES: usize = 18;
    #[inline(always)]
    unsafe fn levels(p: *const u8) -> __m512i {
        unsafe {
            let idx = join(nibbles_32(p.add(2)), nibbles_32(p.add(20)));
            // kv + 128 in 1..=241.
            _mm512_shuffle_epi8(codebook_u8(&KVALUES_IQ4NL, -128), idx)
        }
    }
    #[inline(always)]
    unsafe fn scales(p: *const u8) -> (f32, f32) {
        let d = unsafe { f16_at(p) };
        (d, -128.0 * d)
    }
}

impl Pair32 for MXFP4 {
    const BYTES: usize = 17;
    #[inline(always)]
    unsafe fn levels(p: *const u8) -> __m512i {
        unsafe {
            let idx = join(nibbles_32(p.add(1)), nibbles_32(p.add(18)));
            // kv + 12 in 0..=24.
            _mm512_shuffle_epi8(codebook_u8(&KVALUES_MXFP4, 12), idx)
        }
    }
    #[inline(always)]
    unsafe fn scales(p: *const u8) -> (f32, f32) {
        let d = e8m0_to_f32_half(unsafe { *p });
        (d, -12.0 * d)
    }
}

/// Tokens per prefill group (one f32 lane each, one accumulator each).
const TB: usize = 16;
/// Blocks whose scales are tabulated before their dot products (even).
const GROUP_CHUNK: usize = 32;

/// One weight row against a group of `TB` tokens whose block scales and
/// scaled sums are given block-major (`dx[b][t]`, `dsum[b][t]`): a first
/// pass per chunk forms `d_w * d_x` for all tokens with one vector multiply
/// per block (and the minimum term with one multiply-add); the second
/// spends per pair of blocks and token a `vpdpbusd`, a convert, one masked
/// broadcast (the two blocks' scales into the register's halves) and a
/// multiply-add.
#[inline(always)]
unsafe fn row_x_group<B: Pair32>(
    w: *const u8,
    x: &[Q8x32Row; TB],
    dx: &[[f32; TB]],
    dsum: &[[f32; TB]],
) -> [f32; TB] {
    unsafe {
        let mut acc = [_mm512_setzero_ps(); TB];
        let mut mins = _mm512_setzero_ps();
        let mut scale = [[0f32; TB]; GROUP_CHUNK];
        for c0 in (0..dx.len()).step_by(GROUP_CHUNK) {
            let n = GROUP_CHUNK.min(dx.len() - c0);
            for b in 0..n {
                let (d, m) = B::scales(w.add((c0 + b) * B::BYTES));
                let s = _mm512_mul_ps(_mm512_set1_ps(d), _mm512_loadu_ps(dx[c0 + b].as_ptr()));
                _mm512_storeu_ps(scale[b].as_mut_ptr(), s);
                mins = _mm512_fmadd_ps(
                    _mm512_set1_ps(m),
                    _mm512_loadu_ps(dsum[c0 + b].as_ptr()),
                    mins,
                );
            }
            for b in (0..n).step_by(2) {
                let u = B::levels(w.add((c0 + b) * B::BYTES));
                for t in 0..TB {
                    // In bounds: rows hold an even dx.len() blocks; qs rows are
                    // 64-byte aligned.
                    let xv =
                        _mm512_load_si512(x[t].qs.as_ptr().add(32 * (c0 + b)) as *const __m512i);
                    let p = _mm512_cvtepi32_ps(_mm512_dpbusd_epi32(_mm512_setzero_si512(), u, xv));
                    let s = _mm512_mask_broadcastss_ps(
                        _mm512_set1_ps(scale[b][t]),
                        0xff00,
                        _mm_load_ss(&scale[b + 1][t]),
                    );
                    acc[t] = _mm512_fmadd_ps(p, s, acc[t]);
                }
            }
        }
        let mut m = [0f32; TB];
        _mm512_storeu_ps(m.as_mut_ptr(), mins);
        let mut out = [0f32; TB];
        for t in 0..TB {
            out[t] = _mm512_reduce_add_ps(acc[t]) + m[t];
        }
        out
    }
}

/// Whole groups of `TB` tokens from `toks.start`; returns where the groups
/// end (the caller finishes the remaining tokens).
#[target_feature(enable = "avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni")]
unsafe fn tile_groups<B: Pair32>(
    w: &WeightMatrix,
    rows: Range<usize>,
    x: &QuantizedActs,
    toks: Range<usize>,
    out: &OutView,
) -> usize {
    let nb = w.cols / 32;
    let mut t = toks.start;
    if t + TB > toks.end {
        return t;
    }
    let mut scratch = take_scratch(2 * nb * TB);
    let (groups, _) = scratch[..2 * nb * TB].as_chunks_mut::<TB>();
    let (dx, dsum) = groups.split_at_mut(nb);

    while t + TB <= toks.end {
        let xs: [Q8x32Row; TB] = std::array::from_fn(|u| x.q32_row(t + u));
        transpose_group(&xs, dx, dsum);
        for j in rows.clone() {
            // SAFETY: row j holds nb (even) blocks; see row_x_group.
            let d = unsafe { row_x_group::<B>(w.row(j).as_ptr(), &xs, dx, dsum) };
            for (u, v) in d.iter().enumerate() {
                out.set(t + u, j, *v);
            }
        }
        t += TB;
    }
    put_scratch(scratch);
    t
}

/// `R` weight rows against one token, each computed exactly as one lane of
/// [`row_x_group`] computes it: the same pairs of blocks in one register,
/// the same products, multiply-adds and reduction, the minimum term by
/// fused multiply-adds in block order. Independent chains per row, and a
/// prefetch `ahead` bytes on, since decode streams every weight once.
#[inline(always)]
unsafe fn rows_x_token<B: Pair32, const R: usize>(
    w: [*const u8; R],
    x: Q8x32Row,
    nb: usize,
    ahead: usize,
) -> [f32; R] {
    unsafe {
        let mut acc = [_mm512_setzero_ps(); R];
        let mut mins = [0f32; R];
        for b in (0..nb).step_by(2) {
            // In bounds: rows hold an even nb blocks; qs rows are 64-byte
            // aligned.
            let xv = _mm512_load_si512(x.qs.as_ptr().add(32 * b) as *const __m512i);
            let (xd0, xd1) = (*x.d.get_unchecked(b), *x.d.get_unchecked(b + 1));
            let (xs0, xs1) = (*x.dsum.get_unchecked(b), *x.dsum.get_unchecked(b + 1));
            for r in 0..R {
                let p0 = w[r].add(b * B::BYTES);
                // A prefetch never faults, even past the end of the weights.
                _mm_prefetch::<_MM_HINT_T0>(w[r].wrapping_add(ahead + b * B::BYTES) as *const i8);
                let (d0, m0) = B::scales(p0);
                let (d1, m1) = B::scales(p0.add(B::BYTES));
                mins[r] = m0.mul_add(xs0, mins[r]);
                mins[r] = m1.mul_add(xs1, mins[r]);
                let (s0, s1) = (d0 * xd0, d1 * xd1);
                let u = B::levels(p0);
                let p = _mm512_cvtepi32_ps(_mm512_dpbusd_epi32(_mm512_setzero_si512(), u, xv));
                let s = _mm512_mask_broadcastss_ps(_mm512_set1_ps(s0), 0xff00, _mm_load_ss(&s1));
                acc[r] = _mm512_fmadd_ps(p, s, acc[r]);
            }
        }
        let mut out = [0f32; R];
        for r in 0..R {
            out[r] = _mm512_reduce_add_ps(acc[r]) + mins[r];
        }
        out
    }
}

/// Rows processed together for a single token (independent chains).
const RB: usize = 4;

/// Tokens `toks` one at a time, `RB` rows at once.
#[target_feature(enable = "avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni")]
unsafe fn tile_tokens<B: Pair32>(
    w: &WeightMatrix,
    rows: Range<usize>,
    x: &QuantizedActs,
    toks: Range<usize>,
    out: &OutView,
) {
    let nb = w.cols / 32;
    let rp = |j: usize| w.row(j).as_ptr();
    for t in toks {
        let xr = x.q32_row(t);
        let mut j = rows.start;
        while j + RB <= rows.end {
            let ahead = 2 * RB * w.row_bytes();
            // SAFETY: rows j..j+RB hold nb (even) blocks.
            let d =
                unsafe { rows_x_token::<B, RB>(std::array::from_fn(|r| rp(j + r)), xr, nb, ahead) };
            for (r, v) in d.iter().enumerate() {
                out.set(t, j + r, *v);
            }
            j += RB;
        }
        for j in j..rows.end {
            // SAFETY: as above.
            out.set(t, j, unsafe { rows_x_token::<B, 1>([rp(j)], xr, nb, 0)[0] });
        }
    }
}

macro_rules! entry {
    ($name:ident, $block:ty) => {
        /// Groups of 16 tokens, then the rest (decode, tails) one token at
        /// a time with a group lane's arithmetic.
        pub(in super::super) fn $name(
            w: &WeightMatrix,
            rows: Range<usize>,
            x: &QuantizedActs,
            toks: Range<usize>,
            out: &OutView,
        ) {
            // SAFETY: returned only for the Avx512Vnni path, whose features
            // matmul checked are available.
            unsafe {
                let done = tile_groups::<$block>(w, rows.clone(), x, toks.clone(), out);
                if done < toks.end {
                    tile_tokens::<$block>(w, rows, x, done..toks.end, out);
                }
            }
        }
    };
}

entry!(tile_q4_0, Q4_0);
entry!(tile_q4_1, Q4_1);
entry!(tile_q5_0, Q5_0);
entry!(tile_q5_1, Q5_1);
entry!(tile_q8_0, Q8_0);
entry!(tile_iq4_nl, IQ4NL);
entry!(tile_mxfp4, MXFP4);
