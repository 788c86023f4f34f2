//! AVX-512 VNNI kernels for 32-element weight blocks (Q4_0, Q4_1, Q5_0,
//! Q5_1, Q8_0) against [`Q8x32Row`] activations.
//!
//! Two blocks fill one 512-bit register. `vpdpbusd` multiplies unsigned
//! weight bytes with signed activation bytes and sums fours into i32
//! without intermediate saturation, so every type is brought to unsigned
//! levels `u` with `x = d*u + m`: the symmetric types' offsets become a
//! minimum (`m = -8d`, `-16d`, `-128d`), applied through the activation
//! blocks' sums. Prefill only: groups of 16 tokens, see `row_x_group`;
//! single tokens (decode) take the AVX2 kernels, which stream the weights
//! as fast.

use std::arch::x86_64::*;
use std::ops::Range;

use super::super::OutView;
use super::avx2_q32::{tile_vl, Block32, Unpacked};
use super::util::{f16_at, nibbles_32, put_scratch, take_scratch, transpose_group};
use crate::exec::cpu::acts::{Q8x32Row, QuantizedActs};
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

/// Q5_0 and Q5_1 for the AVX2 loops, with the fifth bits added through a
/// mask register (two instructions instead of six).
struct Q5_0Vl;
struct Q5_1Vl;

#[inline(always)]
unsafe fn fifth_bits_256(nib: __m256i, qh: *const u8) -> __m256i {
    unsafe {
        let k = (qh as *const u32).read_unaligned();
        _mm256_mask_add_epi8(nib, k, nib, _mm256_set1_epi8(16))
    }
}

impl Block32 for Q5_0Vl {
    const BYTES: usize = 22;
    const SIGNED: bool = false;
    #[inline(always)]
    unsafe fn unpack(p: *const u8) -> Unpacked {
        unsafe {
            let d = f16_at(p);
            Unpacked {
                q: fifth_bits_256(nibbles_32(p.add(6)), p.add(2)),
                d,
                m: -16.0 * d,
            }
        }
    }
}

impl Block32 for Q5_1Vl {
    const BYTES: usize = 24;
    const SIGNED: bool = false;
    #[inline(always)]
    unsafe fn unpack(p: *const u8) -> Unpacked {
        unsafe {
            Unpacked {
                q: fifth_bits_256(nibbles_32(p.add(8)), p.add(4)),
                d: f16_at(p),
                m: f16_at(p.add(2)),
            }
        }
    }
}

fn q5_0_rest(
    w: &WeightMatrix,
    rows: Range<usize>,
    x: &QuantizedActs,
    toks: Range<usize>,
    out: &OutView,
) {
    // SAFETY: called only from the Avx512Vnni entry points (features checked).
    unsafe { tile_vl::<Q5_0Vl>(w, rows, x, toks, out) }
}

fn q5_1_rest(
    w: &WeightMatrix,
    rows: Range<usize>,
    x: &QuantizedActs,
    toks: Range<usize>,
    out: &OutView,
) {
    // SAFETY: as for `q5_0_rest`.
    unsafe { tile_vl::<Q5_1Vl>(w, rows, x, toks, out) }
}

macro_rules! entry {
    ($name:ident, $block:ty, $avx2:path) => {
        /// Groups of 16 tokens here; the rest (decode, tails) on the AVX2
        /// kernel, which is as fast where one token reads each weight.
        pub(in super::super) fn $name(
            w: &WeightMatrix,
            rows: Range<usize>,
            x: &QuantizedActs,
            toks: Range<usize>,
            out: &OutView,
        ) {
            // SAFETY: returned only for the Avx512Vnni path, whose features
            // (a superset of AVX2's) matmul checked are available.
            let done = unsafe { tile_groups::<$block>(w, rows.clone(), x, toks.clone(), out) };
            if done < toks.end {
                $avx2(w, rows, x, done..toks.end, out);
            }
        }
    };
}

entry!(tile_q4_0, Q4_0, super::avx2_q32::tile_q4_0);
entry!(tile_q4_1, Q4_1, super::avx2_q32::tile_q4_1);
entry!(tile_q5_0, Q5_0, q5_0_rest);
entry!(tile_q5_1, Q5_1, q5_1_rest);
entry!(tile_q8_0, Q8_0, super::avx2_q32::tile_q8_0);
