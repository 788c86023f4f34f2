//! AVX-512 VNNI kernels for the K-quants of the real models (Q4_K, Q6_K)
//! against [`Q8x256Row`](crate::exec::cpu::acts::Q8x256Row) activations,
//! sixteen rows in the lanes of a register ([`avx512_rows`](super::avx512_rows)).
//!
//! Both weight types are unsigned levels (Q4_K's nibbles, Q6_K's six bits,
//! stored as `q + 32`), so `vpdpbusd` takes them as they are. The
//! activations have a scale per 32 elements (one block), so a lane's
//! integer sum is converted once per block and token and times
//! `(d · sc) · d_x` (sixteen rows' sub-block scales at once) added:
//! - Q4_K: `x = d·sc_s·q − dmin·m_s` per 32-element sub-block `s`; the
//!   minimum takes one more multiply-add with the block's scaled sum.
//! - Q6_K: `x = d·sc_g·(q − 32)` per 16-element group `g`: two integer
//!   sums per block, each started at `−32 · Σx` of its 16 activations
//!   (exact, as the 32-element types' offsets).
//!
//! Bounds: Q6_K `16 · 63 · 127 + 32 · 16 · 127` and Q4_K `32 · 15 · 127`
//! per lane, below 2^24: the conversions are exact.

use super::isa512::*;

use super::avx512_rows::{halves_low, transpose16x4, LaneKernel, ROWS};
use crate::exec::cpu::acts::QuantizedActs;

/// One token's 256-element activation rows.
#[derive(Clone, Copy)]
pub(super) struct Tok {
    /// Values in [`k_slot`](crate::exec::cpu::acts::k_slot) order.
    qs: *const u8,
    /// A scale per 32 values.
    d: *const f32,
    /// Per 32 values: the scale times the values' sum.
    dsum: *const f32,
    /// Q6_K: `−32 ·` the sum of each 16 values.
    init: *const i32,
}

/// Activation bytes `4g..4g+4` of block `s` (of eight) in a super-block:
/// where [`k_slot`](crate::exec::cpu::acts::k_slot) puts them (four bytes
/// of a block stay together).
#[inline(always)]
const fn slot(s: usize, g: usize) -> usize {
    128 * (s / 4) + 32 * (g % 4) + 16 * (g / 4) + 4 * (s % 4)
}

/// Byte `k` of each i32 lane, zero-extended.
#[inline(always)]
unsafe fn byte(v: __m512i, k: u32) -> __m512i {
    _mm512_and_si512(
        _mm512_srlv_epi32(v, _mm512_set1_epi32(8 * k as i32)),
        _mm512_set1_epi32(0xff),
    )
}

/// Byte `k` of each i32 lane, sign-extended.
#[inline(always)]
unsafe fn byte_signed(v: __m512i, k: u32) -> __m512i {
    _mm512_srai_epi32::<24>(_mm512_sllv_epi32(v, _mm512_set1_epi32(24 - 8 * k as i32)))
}

fn tok256(x: &QuantizedActs, t: usize, init: *const i32) -> Tok {
    let r = x.q256_row(t);
    Tok {
        qs: r.qs.as_ptr() as *const u8,
        d: r.d.as_ptr() as *const f32,
        dsum: r.dsum.as_ptr() as *const f32,
        init,
    }
}

pub(super) struct Q4K;

impl LaneKernel for Q4K {
    type Tok = Tok;
    const BYTES: usize = 144;
    const BLOCK: usize = 256;
    /// Per sub-block: eight registers of levels; then eight `d · sc` and
    /// eight `dmin · m`.
    const SLOTS: usize = 80;
    const INITS: usize = 0;

    /// Layout: d, dmin (f16), 12 bytes of 6-bit scales and mins (as
    /// `unpack_scale_min_k4`), 128 bytes of nibbles: bytes 32j..32j+32
    /// hold sub-block 2j (low nibbles) and 2j+1 (high).
    #[inline(always)]
    unsafe fn unpack(p: &[*const u8; ROWS], out: *mut __m512i) {
        unsafe {
            let head = transpose16x4(p, 0);
            let (d, dmin) = (
                halves_low(head[0]),
                halves_low(_mm512_srli_epi32::<16>(head[0])),
            );
            let (w0, w1, w2) = (head[1], head[2], head[3]);
            let low6 = _mm512_set1_epi32(0x3f3f_3f3f);
            let low4 = _mm512_set1_epi32(0x0f0f_0f0f);
            let top2 = _mm512_set1_epi32(0x0303_0303);
            // Bytes: scales 0..4, mins 0..4, scales 4..8, mins 4..8.
            let sc_lo = _mm512_and_si512(w0, low6);
            let mn_lo = _mm512_and_si512(w1, low6);
            let sc_hi = _mm512_or_si512(
                _mm512_and_si512(w2, low4),
                _mm512_slli_epi32::<4>(_mm512_and_si512(_mm512_srli_epi32::<6>(w0), top2)),
            );
            let mn_hi = _mm512_or_si512(
                _mm512_and_si512(_mm512_srli_epi32::<4>(w2), low4),
                _mm512_slli_epi32::<4>(_mm512_and_si512(_mm512_srli_epi32::<6>(w1), top2)),
            );
            for s in 0..8 {
                let (sc, mn) = if s < 4 {
                    (sc_lo, mn_lo)
                } else {
                    (sc_hi, mn_hi)
                };
                let k = (s % 4) as u32;
                let a = _mm512_mul_ps(d, _mm512_cvtepi32_ps(byte(sc, k)));
                let m = _mm512_mul_ps(dmin, _mm512_cvtepi32_ps(byte(mn, k)));
                _mm512_store_ps(out.add(64 + s) as *mut f32, a);
                _mm512_store_ps(out.add(72 + s) as *mut f32, m);
            }
            let nib = _mm512_set1_epi8(0x0f);
            for j in 0..4 {
                let lo = transpose16x4(p, 16 + 32 * j);
                let hi = transpose16x4(p, 32 + 32 * j);
                for g in 0..4 {
                    // The dword shift moves each byte's high nibble down;
                    // the next byte's low nibble, shifted in, is masked.
                    _mm512_store_si512(out.add(8 * (2 * j) + g), _mm512_and_si512(lo[g], nib));
                    _mm512_store_si512(out.add(8 * (2 * j) + g + 4), _mm512_and_si512(hi[g], nib));
                    _mm512_store_si512(
                        out.add(8 * (2 * j + 1) + g),
                        _mm512_and_si512(_mm512_srli_epi32::<4>(lo[g]), nib),
                    );
                    _mm512_store_si512(
                        out.add(8 * (2 * j + 1) + g + 4),
                        _mm512_and_si512(_mm512_srli_epi32::<4>(hi[g]), nib),
                    );
                }
            }
        }
    }

    fn init(_: &QuantizedActs, _: usize, _: &mut Vec<i32>) {}

    fn tok(x: &QuantizedActs, t: usize, init: *const i32) -> Tok {
        tok256(x, t, init)
    }

    /// Per sub-block and token: eight `vpdpbusd`, a convert, `(d·sc)·d_x`,
    /// a multiply-add, and the minimum's multiply-add.
    #[inline(always)]
    unsafe fn dot<const T: usize>(u: *const __m512i, nb: usize, x: [Tok; T]) -> [__m512; T] {
        unsafe {
            let mut f = [_mm512_setzero_ps(); T];
            for b in 0..nb {
                let ub = u.add(b * Self::SLOTS);
                for s in 0..8 {
                    let mut acc = [_mm512_setzero_si512(); T];
                    for g in 0..8 {
                        let w = _mm512_load_si512(ub.add(8 * s + g));
                        for t in 0..T {
                            let at = x[t].qs.add(256 * b + slot(s, g));
                            let xg = (at as *const i32).read_unaligned();
                            acc[t] = _mm512_dpbusd_epi32(acc[t], w, _mm512_set1_epi32(xg));
                        }
                    }
                    let a = _mm512_load_ps(ub.add(64 + s) as *const f32);
                    let m = _mm512_load_ps(ub.add(72 + s) as *const f32);
                    for t in 0..T {
                        let sc = _mm512_mul_ps(a, _mm512_set1_ps(*x[t].d.add(8 * b + s)));
                        f[t] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(acc[t]), sc, f[t]);
                        let ds = _mm512_set1_ps(*x[t].dsum.add(8 * b + s));
                        f[t] = _mm512_fnmadd_ps(m, ds, f[t]);
                    }
                }
            }
            f
        }
    }
}

pub(super) struct Q6K;

impl LaneKernel for Q6K {
    type Tok = Tok;
    const BYTES: usize = 210;
    const BLOCK: usize = 256;
    /// Per block (32 elements): eight registers of levels; then sixteen
    /// `d · sc`, one per 16-element group.
    const SLOTS: usize = 80;
    const INITS: usize = 16;

    /// Layout: ql[128], qh[64], scales[16] (i8), d (f16). Half `h`,
    /// quarter `r` (32 elements from 128h+32r, block 4h+r) takes nibbles
    /// of ql[64h + 32(r%2)..] (high nibbles for r >= 2) and bits 2r..2r+2
    /// of qh[32h..]; groups 8h+2r and 8h+2r+1 each have their own scale.
    #[inline(always)]
    unsafe fn unpack(p: &[*const u8; ROWS], out: *mut __m512i) {
        unsafe {
            // d is bytes 208..210: the top half of the last dword of the
            // block's last 16 bytes (a load at 208 would read past it).
            let d = halves_low(_mm512_srli_epi32::<16>(transpose16x4(p, 194)[3]));
            let sc = transpose16x4(p, 192);
            for g in 0..16 {
                let v = byte_signed(sc[g / 4], (g % 4) as u32);
                _mm512_store_ps(
                    out.add(64 + g) as *mut f32,
                    _mm512_mul_ps(d, _mm512_cvtepi32_ps(v)),
                );
            }
            let (m4, m2) = (_mm512_set1_epi8(0x0f), _mm512_set1_epi8(0x30));
            for h in 0..2 {
                for k in 0..2 {
                    // Dwords 4k..4k+4 of the 32 bytes of ql and qh that a
                    // quarter reads.
                    let ql0 = transpose16x4(p, 64 * h + 16 * k);
                    let ql1 = transpose16x4(p, 64 * h + 32 + 16 * k);
                    let qh = transpose16x4(p, 128 + 32 * h + 16 * k);
                    for i in 0..4 {
                        let g = 4 * k + i;
                        // The dword shifts move bits across bytes; the
                        // masks keep each byte's own.
                        let quarters = [
                            _mm512_or_si512(
                                _mm512_and_si512(ql0[i], m4),
                                _mm512_and_si512(_mm512_slli_epi32::<4>(qh[i]), m2),
                            ),
                            _mm512_or_si512(
                                _mm512_and_si512(ql1[i], m4),
                                _mm512_and_si512(_mm512_slli_epi32::<2>(qh[i]), m2),
                            ),
                            _mm512_or_si512(
                                _mm512_and_si512(_mm512_srli_epi32::<4>(ql0[i]), m4),
                                _mm512_and_si512(qh[i], m2),
                            ),
                            _mm512_or_si512(
                                _mm512_and_si512(_mm512_srli_epi32::<4>(ql1[i]), m4),
                                _mm512_and_si512(_mm512_srli_epi32::<2>(qh[i]), m2),
                            ),
                        ];
                        for (r, q) in quarters.into_iter().enumerate() {
                            _mm512_store_si512(out.add(8 * (4 * h + r) + g), q);
                        }
                    }
                }
            }
        }
    }

    fn init(x: &QuantizedActs, t: usize, out: &mut Vec<i32>) {
        for bs in x.q256_row(t).bsums {
            out.extend(bs.iter().map(|&s| -32 * s as i32));
        }
    }

    fn tok(x: &QuantizedActs, t: usize, init: *const i32) -> Tok {
        tok256(x, t, init)
    }

    /// Per block and token: two integer sums of four `vpdpbusd` (one per
    /// 16-element group), each converted, times `(d·sc)·d_x` and added.
    #[inline(always)]
    unsafe fn dot<const T: usize>(u: *const __m512i, nb: usize, x: [Tok; T]) -> [__m512; T] {
        unsafe {
            let mut f = [_mm512_setzero_ps(); T];
            for b in 0..nb {
                let ub = u.add(b * Self::SLOTS);
                for s in 0..8 {
                    let mut acc = [[_mm512_setzero_si512(); T]; 2];
                    for (half, acc) in acc.iter_mut().enumerate() {
                        for t in 0..T {
                            acc[t] = _mm512_set1_epi32(*x[t].init.add(16 * b + 2 * s + half));
                        }
                    }
                    for g in 0..8 {
                        let w = _mm512_load_si512(ub.add(8 * s + g));
                        let acc = &mut acc[g / 4];
                        for t in 0..T {
                            let at = x[t].qs.add(256 * b + slot(s, g));
                            let xg = (at as *const i32).read_unaligned();
                            acc[t] = _mm512_dpbusd_epi32(acc[t], w, _mm512_set1_epi32(xg));
                        }
                    }
                    for (half, acc) in acc.iter().enumerate() {
                        let a = _mm512_load_ps(ub.add(64 + 2 * s + half) as *const f32);
                        for t in 0..T {
                            let sc = _mm512_mul_ps(a, _mm512_set1_ps(*x[t].d.add(8 * b + s)));
                            f[t] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(acc[t]), sc, f[t]);
                        }
                    }
                }
            }
            f
        }
    }
}
