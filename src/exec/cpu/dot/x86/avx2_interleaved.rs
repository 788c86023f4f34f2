//! AVX2 kernels for Q4_0, Q5_0 and Q8_0 weights in their interleaved copy
//! ([`InterleavedRows`]): eight rows per 256-bit vector, one 32-bit lane
//! each, so a block's integer dot for eight rows needs no reduction.
//!
//! Per group-block and token: for each of the eight element vectors the
//! activations' four bytes are broadcast and multiplied with
//! `vpmaddubsw`. The 4- and 5-bit levels stay unsigned (≤ 31, against
//! |x| ≤ 128): four vectors' i16 pairs add without overflow
//! (4·2·31·128 < 32768) before one `vpmaddwd`. Q8_0 is signed and takes
//! `sign(x, w)·|w|`, widened per vector. The eight i32 dots convert and
//! take `d_w·d_x` in one multiply-add; the unsigned types' offset
//! (−8d, −16d) is the activation block's scaled sum times `d_w`,
//! accumulated apart and scaled once at the end (exact: a power of two).
//!
//! A token's results are the same bits alone or in a group of tokens: a
//! group only shares the unpacking, each token's arithmetic is the same.
//! Rows outside whole groups go to the GGUF-order kernels.

use std::arch::x86_64::*;
use std::ops::Range;

use super::super::{OutView, TileKernel};
use super::avx2_q32;
use crate::exec::cpu::acts::{Q8x32Row, QuantizedActs};
use crate::exec::cpu::interleaved::GROUP_ROWS;
use crate::exec::cpu::weights::WeightMatrix;

/// One group-block's eight element vectors, as `vpmaddubsw` takes them.
struct Unpacked {
    /// Unsigned levels, or |w| for a signed type.
    u: [__m256i; 8],
    /// The signed values (signed types only; else equal to `u`).
    s: [__m256i; 8],
}

trait Layout {
    /// Bytes of one group-block.
    const BYTES: usize;
    /// The GGUF-order kernel (rows outside whole groups, no copy).
    const PLAIN: TileKernel;
    /// `x = d·(q + OFFSET)` for the unsigned types; 0 for a signed one.
    const OFFSET: f32;
    unsafe fn unpack(p: *const u8) -> Unpacked;
    /// The eight rows' integer dots with the activation block at `x`
    /// (unsigned levels unless the type says otherwise).
    #[inline(always)]
    unsafe fn dot(w: &Unpacked, x: *const i8) -> __m256i {
        unsafe { unsigned_dot(&w.u, x) }
    }
}

/// Activation bytes `4j..4j + 4` in every lane.
#[inline(always)]
unsafe fn x_quad(x: *const i8, j: usize) -> __m256i {
    // SAFETY: the caller's block holds 32 readable bytes.
    unsafe { _mm256_set1_epi32((x.add(4 * j) as *const i32).read_unaligned()) }
}

/// Eight unsigned vectors' dots, i16 pairs summed four vectors at a time.
#[inline(always)]
unsafe fn unsigned_dot(u: &[__m256i; 8], x: *const i8) -> __m256i {
    unsafe {
        let m = |j: usize| _mm256_maddubs_epi16(u[j], x_quad(x, j));
        let lo = _mm256_add_epi16(_mm256_add_epi16(m(0), m(1)), _mm256_add_epi16(m(2), m(3)));
        let hi = _mm256_add_epi16(_mm256_add_epi16(m(4), m(5)), _mm256_add_epi16(m(6), m(7)));
        let ones = _mm256_set1_epi16(1);
        _mm256_add_epi32(_mm256_madd_epi16(lo, ones), _mm256_madd_epi16(hi, ones))
    }
}

#[inline(always)]
unsafe fn load(p: *const u8) -> __m256i {
    // SAFETY: the caller guarantees 32 readable bytes.
    unsafe { _mm256_loadu_si256(p as *const __m256i) }
}

/// The low and high nibbles of the four nibble vectors at `p`, in element
/// vector order.
#[inline(always)]
unsafe fn nibbles(p: *const u8) -> [__m256i; 8] {
    unsafe {
        let lo = _mm256_set1_epi8(0x0f);
        let n: [__m256i; 4] = std::array::from_fn(|v| load(p.add(32 * v)));
        std::array::from_fn(|j| {
            let v = n[j / 2];
            if j % 2 == 0 {
                _mm256_and_si256(v, lo)
            } else {
                _mm256_and_si256(_mm256_srli_epi16::<4>(v), lo)
            }
        })
    }
}

struct Q4_0;
struct Q5_0;
struct Q8_0;

impl Layout for Q4_0 {
    const PLAIN: TileKernel = avx2_q32::tile_q4_0;
    const BYTES: usize = 16 + 128;
    const OFFSET: f32 = -8.0;
    #[inline(always)]
    unsafe fn unpack(p: *const u8) -> Unpacked {
        let u = unsafe { nibbles(p.add(16)) };
        Unpacked { u, s: u }
    }
}

impl Layout for Q5_0 {
    const PLAIN: TileKernel = avx2_q32::tile_q5_0;
    const BYTES: usize = 16 + 128 + 32;
    const OFFSET: f32 = -16.0;
    #[inline(always)]
    unsafe fn unpack(p: *const u8) -> Unpacked {
        unsafe {
            let n = nibbles(p.add(16));
            let h = load(p.add(144));
            // Bit j of each byte to bit 4: 16-bit shifts move no other
            // byte's bit into bit 4 for j in 0..8.
            let fifth = [
                _mm256_slli_epi16::<4>(h),
                _mm256_slli_epi16::<3>(h),
                _mm256_slli_epi16::<2>(h),
                _mm256_slli_epi16::<1>(h),
                h,
                _mm256_srli_epi16::<1>(h),
                _mm256_srli_epi16::<2>(h),
                _mm256_srli_epi16::<3>(h),
            ];
            let bit = _mm256_set1_epi8(0x10);
            let u = std::array::from_fn(|j| _mm256_or_si256(n[j], _mm256_and_si256(fifth[j], bit)));
            Unpacked { u, s: u }
        }
    }
}

impl Layout for Q8_0 {
    const PLAIN: TileKernel = avx2_q32::tile_q8_0;
    const BYTES: usize = 16 + 256;
    const OFFSET: f32 = 0.0;
    #[inline(always)]
    unsafe fn unpack(p: *const u8) -> Unpacked {
        unsafe {
            let s: [__m256i; 8] = std::array::from_fn(|j| load(p.add(16 + 32 * j)));
            Unpacked {
                u: s.map(|v| _mm256_sign_epi8(v, v)),
                s,
            }
        }
    }
    #[inline(always)]
    unsafe fn dot(w: &Unpacked, x: *const i8) -> __m256i {
        unsafe {
            // |w| ≤ 128 and |x| ≤ 127: a pair stays within i16, four do not.
            let m = |j: usize| {
                let p = _mm256_maddubs_epi16(w.u[j], _mm256_sign_epi8(x_quad(x, j), w.s[j]));
                _mm256_madd_epi16(p, _mm256_set1_epi16(1))
            };
            let a = _mm256_add_epi32(_mm256_add_epi32(m(0), m(1)), _mm256_add_epi32(m(2), m(3)));
            let b = _mm256_add_epi32(_mm256_add_epi32(m(4), m(5)), _mm256_add_epi32(m(6), m(7)));
            _mm256_add_epi32(a, b)
        }
    }
}

/// Tokens sharing one unpacking in prefill.
const TB: usize = 4;
/// How far ahead decode prefetches (it streams each weight once).
const AHEAD: usize = 1024;

/// One group of eight rows (`g`: its group-blocks) against `T` tokens:
/// for each token, the eight rows' outputs.
#[inline(always)]
unsafe fn group_x_tokens<L: Layout, const T: usize>(g: &[u8], x: &[Q8x32Row; T]) -> [__m256; T] {
    unsafe {
        let nb = g.len() / L::BYTES;
        let mut acc = [_mm256_setzero_ps(); T];
        let mut offs = [_mm256_setzero_ps(); T];
        for b in 0..nb {
            let p = g.as_ptr().add(b * L::BYTES);
            if T == 1 {
                for line in (0..L::BYTES).step_by(64) {
                    // A prefetch never faults, even past the end.
                    _mm_prefetch::<_MM_HINT_T0>(p.wrapping_add(AHEAD + line) as *const i8);
                }
            }
            let w = L::unpack(p);
            let d = _mm256_cvtph_ps(_mm_loadu_si128(p as *const __m128i));
            for t in 0..T {
                // In bounds: activation rows hold nb blocks (matmul checked k).
                let s = L::dot(&w, x[t].qs.as_ptr().add(32 * b));
                let dd = _mm256_mul_ps(d, _mm256_set1_ps(*x[t].d.get_unchecked(b)));
                acc[t] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(s), dd, acc[t]);
                if L::OFFSET != 0.0 {
                    let xs = _mm256_set1_ps(*x[t].dsum.get_unchecked(b));
                    offs[t] = _mm256_fmadd_ps(d, xs, offs[t]);
                }
            }
        }
        if L::OFFSET != 0.0 {
            for t in 0..T {
                acc[t] = _mm256_fmadd_ps(offs[t], _mm256_set1_ps(L::OFFSET), acc[t]);
            }
        }
        acc
    }
}

/// Row `j + i` of token `t` from lane `i` of `v`, for the rows in `rows`.
#[inline(always)]
fn put(out: &OutView, t: usize, j: usize, v: __m256, rows: &Range<usize>) {
    let mut a = [0f32; GROUP_ROWS];
    // SAFETY: eight floats to an eight-float array.
    unsafe { _mm256_storeu_ps(a.as_mut_ptr(), v) };
    let (lo, hi) = (rows.start.max(j), rows.end.min(j + GROUP_ROWS));
    out.set_run(t, lo, &a[lo - j..hi - j]);
}

/// The rows of whole groups of the matrix from its copy (a group cut by
/// the tile is computed whole and written in part, so that which kernel
/// computes a row never depends on the tiling), the rest in GGUF order.
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn tile<L: Layout>(
    w: &WeightMatrix,
    rows: Range<usize>,
    x: &QuantizedActs,
    toks: Range<usize>,
    out: &OutView,
) {
    let plain = L::PLAIN;
    let Some(il) = w.interleaved else {
        return plain(w, rows, x, toks, out);
    };
    let copied = il.groups() * GROUP_ROWS;
    if rows.end > copied {
        plain(w, rows.start.max(copied)..rows.end, x, toks.clone(), out);
    }
    let groups = rows.start / GROUP_ROWS..rows.end.min(copied).div_ceil(GROUP_ROWS);
    if groups.is_empty() {
        return;
    }
    unsafe {
        let mut t = toks.start;
        while t + TB <= toks.end {
            let xs: [Q8x32Row; TB] = std::array::from_fn(|u| x.q32_row(t + u));
            for g in groups.clone() {
                let r = group_x_tokens::<L, TB>(il.group(g), &xs);
                for (u, v) in r.into_iter().enumerate() {
                    put(out, t + u, g * GROUP_ROWS, v, &rows);
                }
            }
            t += TB;
        }
        for t in t..toks.end {
            let xs = [x.q32_row(t)];
            for g in groups.clone() {
                let [v] = group_x_tokens::<L, 1>(il.group(g), &xs);
                put(out, t, g * GROUP_ROWS, v, &rows);
            }
        }
    }
}

avx2_entry!(tile_q4_0, tile::<Q4_0>);
avx2_entry!(tile_q5_0, tile::<Q5_0>);
avx2_entry!(tile_q8_0, tile::<Q8_0>);
