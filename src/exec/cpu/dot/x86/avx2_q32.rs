//! AVX2 kernels for 32-element weight blocks (Q4_0, Q4_1, Q5_0, Q5_1,
//! Q8_0, IQ4_NL, MXFP4) against [`Q8x32Row`] activations.
//!
//! Per block and token: `vpmaddubsw` (u8 weights × i8 activations → i16
//! pairs), `vpmaddwd` with ones (→ i32), convert, and one multiply-add by
//! `d_w * d_x`, tabulated per chunk of blocks beforehand. The 4- and 5-bit
//! types stay unsigned (`x = d*u + m`, with `m = -8d` / `-16d` for Q4_0 /
//! Q5_0), their minimum applied once per chunk through the activation
//! blocks' sums; 31·127·2 < 32768 keeps `vpmaddubsw` exact. Q8_0 is signed
//! and uses `sign(x, w)·|w|` (|w| ≤ 128, |x| ≤ 127, again exact); so are
//! the codebook types IQ4_NL and MXFP4, whose nibbles become their
//! codebook values with one `vpshufb` (|w| ≤ 127 and ≤ 12).

use std::arch::x86_64::*;
use std::ops::Range;

use super::super::OutView;
use super::util::{
    bits_to_bytes, codebook, dot_u8i8, f16_at, hsum_ps, nibbles_32, put_scratch, take_scratch,
    transpose_group,
};
use crate::exec::cpu::acts::{Q8x32Row, QuantizedActs};
use crate::exec::cpu::weights::WeightMatrix;
use crate::quant::blocks::{e8m0_to_f32_half, KVALUES_IQ4NL, KVALUES_MXFP4};

/// One unpacked weight block.
struct Unpacked {
    /// Signed values (`SIGNED`) or unsigned levels 0..31.
    pub q: __m256i,
    pub d: f32,
    /// The block minimum (unsigned types only): `x = d*q + m`.
    pub m: f32,
}

trait Block32 {
    const BYTES: usize;
    const SIGNED: bool;
    unsafe fn unpack(p: *const u8) -> Unpacked;
    /// The block's scale and minimum (0 for signed types).
    #[inline(always)]
    unsafe fn scales(p: *const u8) -> (f32, f32) {
        unsafe {
            let u = Self::unpack(p);
            (u.d, u.m)
        }
    }
}

struct Q4_0;
struct Q4_1;
struct Q5_0;
struct Q5_1;
struct Q8_0;

impl Block32 for Q4_0 {
    const BYTES: usize = 18;
    const SIGNED: bool = false;
    #[inline(always)]
    unsafe fn unpack(p: *const u8) -> Unpacked {
        unsafe {
            let d = f16_at(p);
            Unpacked {
                q: nibbles_32(p.add(2)),
                d,
                m: -8.0 * d,
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
    const SIGNED: bool = false;
    #[inline(always)]
    unsafe fn unpack(p: *const u8) -> Unpacked {
        unsafe {
            let high = bits_to_bytes((p.add(2) as *const u32).read_unaligned());
            let fifth = _mm256_and_si256(high, _mm256_set1_epi8(0x10));
            let d = f16_at(p);
            Unpacked {
                q: _mm256_or_si256(nibbles_32(p.add(6)), fifth),
                d,
                m: -16.0 * d,
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

struct IQ4NL;
struct MXFP4;

impl Block32 for IQ4NL {
    const BYTES: usize = 18;
    const SIGNED: bool = true;
    #[inline(always)]
    unsafe fn unpack(p: *const u8) -> Unpacked {
        unsafe {
            Unpacked {
                q: _mm256_shuffle_epi8(codebook(&KVALUES_IQ4NL), nibbles_32(p.add(2))),
                d: f16_at(p),
                m: 0.0,
            }
        }
    }
}

impl Block32 for MXFP4 {
    const BYTES: usize = 17;
    const SIGNED: bool = true;
    #[inline(always)]
    unsafe fn unpack(p: *const u8) -> Unpacked {
        unsafe {
            Unpacked {
                q: _mm256_shuffle_epi8(codebook(&KVALUES_MXFP4), nibbles_32(p.add(1))),
                d: e8m0_to_f32_half(*p),
                m: 0.0,
            }
        }
    }
}

/// Integer dot of a weight block with an activation block, as i32 lanes.
#[inline(always)]
unsafe fn block_dot<B: Block32>(q: __m256i, q_abs: __m256i, x: *const i8) -> __m256i {
    unsafe {
        let xv = _mm256_load_si256(x as *const __m256i);
        if B::SIGNED {
            dot_u8i8(q_abs, _mm256_sign_epi8(xv, q))
        } else {
            dot_u8i8(q, xv)
        }
    }
}

/// Tokens processed together in prefill (one f32 lane each).
const TB: usize = 8;
/// Rows processed together for a single token (independent chains).
const RB: usize = 4;

/// Blocks whose scales are tabulated before their dot products.
const CHUNK: usize = 32;

/// One weight row against a group of `TB` tokens whose block scales and
/// scaled sums are given block-major (`dx[b][t]`, `dsum[b][t]`). A first
/// pass over a chunk of blocks forms `d_w * d_x` for all tokens with one
/// vector multiply per block (and accumulates the minimum term); the
/// second spends per block and token only `vpmaddubsw`, `vpmaddwd`,
/// convert and a multiply-add with a broadcast load from that table.
#[inline(always)]
unsafe fn row_x_group<B: Block32>(
    w: *const u8,
    x: &[Q8x32Row; TB],
    dx: &[[f32; TB]],
    dsum: &[[f32; TB]],
) -> [f32; TB] {
    unsafe {
        let mut acc = [_mm256_setzero_ps(); TB];
        let mut mins = _mm256_setzero_ps();
        let mut scale = [[0f32; TB]; CHUNK];
        for c0 in (0..dx.len()).step_by(CHUNK) {
            let n = CHUNK.min(dx.len() - c0);
            for b in 0..n {
                let wb = w.add((c0 + b) * B::BYTES);
                let (d, m) = B::scales(wb);
                let s = _mm256_mul_ps(_mm256_set1_ps(d), _mm256_loadu_ps(dx[c0 + b].as_ptr()));
                _mm256_storeu_ps(scale[b].as_mut_ptr(), s);
                if !B::SIGNED {
                    mins = _mm256_fmadd_ps(
                        _mm256_set1_ps(m),
                        _mm256_loadu_ps(dsum[c0 + b].as_ptr()),
                        mins,
                    );
                }
            }
            for b in 0..n {
                let q = B::unpack(w.add((c0 + b) * B::BYTES)).q;
                let q_abs = if B::SIGNED { _mm256_sign_epi8(q, q) } else { q };
                for t in 0..TB {
                    // In bounds: rows hold dx.len() blocks; qs rows are 64-byte aligned.
                    let xq = x[t].qs.as_ptr().add(32 * (c0 + b));
                    let p = _mm256_cvtepi32_ps(block_dot::<B>(q, q_abs, xq));
                    acc[t] = _mm256_fmadd_ps(p, _mm256_broadcast_ss(&scale[b][t]), acc[t]);
                }
            }
        }
        let mut m = [0f32; TB];
        _mm256_storeu_ps(m.as_mut_ptr(), mins);
        let mut out = [0f32; TB];
        for t in 0..TB {
            out[t] = hsum_ps(acc[t]) + m[t];
        }
        out
    }
}

/// `R` weight rows against one token (decode): independent chains per row,
/// and a software prefetch of the rows `ahead` bytes further on, since
/// decode streams every weight from memory exactly once.
#[inline(always)]
unsafe fn rows_x_token<B: Block32, const R: usize>(
    w: [*const u8; R],
    x: Q8x32Row,
    nb: usize,
    ahead: usize,
) -> [f32; R] {
    unsafe {
        let mut acc = [_mm256_setzero_ps(); R];
        let mut mins = [0f32; R];
        for b in 0..nb {
            // In bounds: rows hold nb blocks; qs rows are 64-byte aligned.
            let xq = x.qs.as_ptr().add(32 * b);
            let (xd, xs) = (*x.d.get_unchecked(b), *x.dsum.get_unchecked(b));
            for r in 0..R {
                // A prefetch never faults, even past the end of the weights.
                let next = w[r].wrapping_add(ahead + b * B::BYTES);
                _mm_prefetch::<_MM_HINT_T0>(next as *const i8);
                let u = B::unpack(w[r].add(b * B::BYTES));
                let q_abs = if B::SIGNED {
                    _mm256_sign_epi8(u.q, u.q)
                } else {
                    u.q
                };
                let p = _mm256_cvtepi32_ps(block_dot::<B>(u.q, q_abs, xq));
                acc[r] = _mm256_fmadd_ps(p, _mm256_set1_ps(u.d * xd), acc[r]);
                if !B::SIGNED {
                    // Fused, as `row_x_group`'s vector multiply-add: a
                    // token's result must not depend on whether it was
                    // computed in a group (batched) or alone.
                    mins[r] = u.m.mul_add(xs, mins[r]);
                }
            }
        }
        let mut out = [0f32; R];
        for r in 0..R {
            out[r] = hsum_ps(acc[r]) + mins[r];
        }
        out
    }
}

#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn tile<B: Block32>(
    w: &WeightMatrix,
    rows: Range<usize>,
    x: &QuantizedActs,
    toks: Range<usize>,
    out: &OutView,
) {
    unsafe { tile_body::<B>(w, rows, x, toks, out) }
}

/// Groups of `TB` tokens, then single tokens `RB` rows at a time.
#[inline(always)]
unsafe fn tile_body<B: Block32>(
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
        if t + TB <= toks.end {
            let mut scratch = take_scratch(2 * nb * TB);
            let (groups, _) = scratch[..2 * nb * TB].as_chunks_mut::<TB>();
            let (dx, dsum) = groups.split_at_mut(nb);

            while t + TB <= toks.end {
                let xs: [Q8x32Row; TB] = std::array::from_fn(|u| x.q32_row(t + u));
                transpose_group(&xs, dx, dsum);
                for j in rows.clone() {
                    let d = row_x_group::<B>(rp(j), &xs, dx, dsum);
                    for (u, v) in d.iter().enumerate() {
                        out.set(t + u, j, *v);
                    }
                }
                t += TB;
            }
            put_scratch(scratch);
        }
        // Remaining tokens one at a time, RB rows at once.
        for t in t..toks.end {
            let xr = x.q32_row(t);
            let mut j = rows.start;
            while j + RB <= rows.end {
                let ahead = 2 * RB * w.row_bytes();
                let d = rows_x_token::<B, RB>(std::array::from_fn(|r| rp(j + r)), xr, nb, ahead);
                for (r, v) in d.iter().enumerate() {
                    out.set(t, j + r, *v);
                }
                j += RB;
            }
            for j in j..rows.end {
                out.set(t, j, rows_x_token::<B, 1>([rp(j)], xr, nb, 0)[0]);
            }
        }
    }
}

avx2_entry!(tile_q4_0, tile::<Q4_0>);
avx2_entry!(tile_q4_1, tile::<Q4_1>);
avx2_entry!(tile_q5_0, tile::<Q5_0>);
avx2_entry!(tile_q5_1, tile::<Q5_1>);
avx2_entry!(tile_q8_0, tile::<Q8_0>);
avx2_entry!(tile_iq4_nl, tile::<IQ4NL>);
avx2_entry!(tile_mxfp4, tile::<MXFP4>);
