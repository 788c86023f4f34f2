//! AVX2 kernels for 32-element weight blocks (Q4_0, Q4_1, Q5_0, Q5_1,
//! Q8_0) against [`ActBlock32`] activations.
//!
//! A weight block is unpacked once into 32 bytes and multiplied with the
//! blocks of up to four tokens (prefill) or, for a single token, two rows
//! are interleaved for independent dependency chains (decode). Per block:
//! `vpmaddubsw` (u8×i8 → i16 pairs), `vpmaddwd` with ones (→ i32), then
//! one f32 multiply-add by `d_w * d_x`. Signed weights use the
//! `sign(x, w)·|w|` identity because `vpmaddubsw` wants one unsigned side;
//! |w| ≤ 128 and |x| ≤ 127 keep the i16 pair sums below 32768.

use std::arch::x86_64::*;
use std::ops::Range;

use super::super::OutView;
use super::util::{bits_to_bytes, dot_u8i8, f16_at, hsum_ps, nibbles_32};
use crate::exec::cpu::acts::{ActBlock32, QuantizedActs};
use crate::exec::cpu::weights::WeightMatrix;

/// One unpacked weight block.
struct Unpacked {
    /// Signed values (`SIGNED`) or unsigned 0..31 values.
    q: __m256i,
    d: f32,
    /// The block minimum (unsigned types only): `x = d*q + m`.
    m: f32,
}

trait Block32 {
    const BYTES: usize;
    const SIGNED: bool;
    unsafe fn unpack(p: *const u8) -> Unpacked;
}

struct Q4_0;
struct Q4_1;
struct Q5_0;
struct Q5_1;
struct Q8_0;

impl Block32 for Q4_0 {
    const BYTES: usize = 18;
    const SIGNED: bool = true;
    #[inline(always)]
    unsafe fn unpack(p: *const u8) -> Unpacked {
        unsafe {
            let q = _mm256_sub_epi8(nibbles_32(p.add(2)), _mm256_set1_epi8(8));
            Unpacked {
                q,
                d: f16_at(p),
                m: 0.0,
            }
        }
    }
}

impl Block32 for Q4_1 {
    const BYTES: usize = 20;
    const SIGNED: bool = false;
    #[inline(always)]
    unsafe fn unpack(p: *const u8) -> Unpacked {
        unsafe {
            Unpacked {
                q: nibbles_32(p.add(4)),
                d: f16_at(p),
                m: f16_at(p.add(2)),
            }
        }
    }
}

impl Block32 for Q5_0 {
    const BYTES: usize = 22;
    const SIGNED: bool = true;
    #[inline(always)]
    unsafe fn unpack(p: *const u8) -> Unpacked {
        unsafe {
            let high = bits_to_bytes((p.add(2) as *const u32).read_unaligned());
            // q - 16 = nibble - 16 where the fifth bit is clear: set 0xf0 there.
            let q = _mm256_or_si256(
                nibbles_32(p.add(6)),
                _mm256_andnot_si256(high, _mm256_set1_epi8(0xf0u8 as i8)),
            );
            Unpacked {
                q,
                d: f16_at(p),
                m: 0.0,
            }
        }
    }
}

impl Block32 for Q5_1 {
    const BYTES: usize = 24;
    const SIGNED: bool = false;
    #[inline(always)]
    unsafe fn unpack(p: *const u8) -> Unpacked {
        unsafe {
            let high = bits_to_bytes((p.add(4) as *const u32).read_unaligned());
            let q = _mm256_or_si256(
                nibbles_32(p.add(8)),
                _mm256_and_si256(high, _mm256_set1_epi8(0x10)),
            );
            Unpacked {
                q,
                d: f16_at(p),
                m: f16_at(p.add(2)),
            }
        }
    }
}

impl Block32 for Q8_0 {
    const BYTES: usize = 34;
    const SIGNED: bool = true;
    #[inline(always)]
    unsafe fn unpack(p: *const u8) -> Unpacked {
        unsafe {
            Unpacked {
                q: _mm256_loadu_si256(p.add(2) as *const __m256i),
                d: f16_at(p),
                m: 0.0,
            }
        }
    }
}

/// Integer dot of a weight block with an activation block, as i32 lanes.
#[inline(always)]
unsafe fn block_dot<B: Block32>(q: __m256i, q_abs: __m256i, x: &ActBlock32) -> __m256i {
    unsafe {
        let xv = _mm256_loadu_si256(x.qs.as_ptr() as *const __m256i);
        if B::SIGNED {
            dot_u8i8(q_abs, _mm256_sign_epi8(xv, q))
        } else {
            dot_u8i8(q, xv)
        }
    }
}

/// Dots of `R` weight rows with `T` token rows (`nb` blocks each), returned
/// as `[row][token]`.
#[inline(always)]
unsafe fn rows_x_tokens<B: Block32, const R: usize, const T: usize>(
    w: [*const u8; R],
    x: [&[ActBlock32]; T],
    nb: usize,
) -> [[f32; T]; R] {
    unsafe {
        let mut acc = [[_mm256_setzero_ps(); T]; R];
        let mut mins = [[0f32; T]; R];
        for b in 0..nb {
            for r in 0..R {
                let u = B::unpack(w[r].add(b * B::BYTES));
                let q_abs = if B::SIGNED {
                    _mm256_sign_epi8(u.q, u.q)
                } else {
                    u.q
                };
                let dw = _mm256_set1_ps(u.d);
                for t in 0..T {
                    let xb = x[t].get_unchecked(b);
                    let p = _mm256_cvtepi32_ps(block_dot::<B>(u.q, q_abs, xb));
                    acc[r][t] =
                        _mm256_fmadd_ps(p, _mm256_mul_ps(dw, _mm256_set1_ps(xb.d)), acc[r][t]);
                    if !B::SIGNED {
                        mins[r][t] += u.m * xb.d * xb.sum as f32;
                    }
                }
            }
        }
        let mut out = [[0f32; T]; R];
        for r in 0..R {
            for t in 0..T {
                out[r][t] = hsum_ps(acc[r][t]) + mins[r][t];
            }
        }
        out
    }
}

/// Tokens processed together in prefill.
const TB: usize = 4;

#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn tile<B: Block32>(
    w: &WeightMatrix,
    rows: Range<usize>,
    x: &QuantizedActs,
    toks: Range<usize>,
    out: &OutView,
) {
    let nb = w.cols / 32;
    let rp = |j: usize| w.row(j).as_ptr();
    unsafe {
        let mut t = toks.start;
        while t + TB <= toks.end {
            let xs = [
                x.q32_row(t),
                x.q32_row(t + 1),
                x.q32_row(t + 2),
                x.q32_row(t + 3),
            ];
            for j in rows.clone() {
                let d = rows_x_tokens::<B, 1, TB>([rp(j)], xs, nb);
                for (u, v) in d[0].iter().enumerate() {
                    out.set(t + u, j, *v);
                }
            }
            t += TB;
        }
        // Remaining tokens one at a time, rows in pairs.
        for t in t..toks.end {
            let xs = [x.q32_row(t)];
            let mut j = rows.start;
            while j + 2 <= rows.end {
                let d = rows_x_tokens::<B, 2, 1>([rp(j), rp(j + 1)], xs, nb);
                out.set(t, j, d[0][0]);
                out.set(t, j + 1, d[1][0]);
                j += 2;
            }
            if j < rows.end {
                out.set(t, j, rows_x_tokens::<B, 1, 1>([rp(j)], xs, nb)[0][0]);
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
            // SAFETY: returned only for paths that include AVX2, FMA and F16C,
            // which matmul checked are available.
            unsafe { tile::<$block>(w, rows, x, toks, out) }
        }
    };
}

entry!(tile_q4_0, Q4_0);
entry!(tile_q4_1, Q4_1);
entry!(tile_q5_0, Q5_0);
entry!(tile_q5_1, Q5_1);
entry!(tile_q8_0, Q8_0);
