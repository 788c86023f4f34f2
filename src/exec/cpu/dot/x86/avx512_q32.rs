//! AVX-512 VNNI kernels for 32-element weight blocks (Q4_0, Q4_1, Q5_0,
//! Q5_1, Q8_0, IQ4_NL, MXFP4) against [`Q8x32Row`](crate::exec::cpu::acts::Q8x32Row)
//! activations, sixteen rows in the lanes of a register
//! ([`avx512_rows`](super::avx512_rows)): per block and token eight
//! `vpdpbusd`, one convert, one multiply (`d_w · d_x`, sixteen rows at
//! once) and one multiply-add, where one row and two blocks per register
//! spent a convert, two broadcasts and a multiply-add per 64 products and
//! a horizontal sum per row and token.
//!
//! `vpdpbusd` multiplies unsigned weight bytes with signed activation
//! bytes and sums fours into i32 without saturation, so every type is
//! brought to unsigned levels `u` with `x = d·(u − o)` (o = 8, 16, 128 for
//! Q4_0, Q5_0, Q8_0; the codebook types look their nibbles up in a
//! codebook shifted by 128 (IQ4_NL) or 12 (MXFP4)) or `x = d·u + m`
//! (Q4_1, Q5_1). The offset is exact integer arithmetic: the accumulator
//! of a block starts at `−o · Σx` (the activation block's integer sum), so
//! it ends at `Σ (u − o)·x`, below 2^24 and so exact in f32. The minimum
//! `m` takes one more multiply-add with the activation block's scaled sum.

use super::isa512::*;
use std::marker::PhantomData;

use super::avx512_rows::{halves_low, transpose16x4, LaneKernel, ROWS};
use crate::exec::cpu::acts::QuantizedActs;
use crate::quant::blocks::{KVALUES_IQ4NL, KVALUES_MXFP4};

/// One block of sixteen rows, unpacked: `w[g]` lane `r` = levels
/// `4g..4g+4` of row `r`; `d`, `m` the rows' scales and minima.
pub(super) struct Unpacked {
    w: [__m512i; 8],
    d: __m512,
    m: __m512,
}

pub(super) trait Block32 {
    const BYTES: usize;
    /// The integer offset `o` in `x = d·(u − o)`.
    const OFFSET: i32;
    /// Whether the block has a float minimum (`x = d·u + m`).
    const HAS_MIN: bool;
    /// The block at `p[r]` of each of the sixteen rows (`p[r]` points at
    /// `Self::BYTES` readable bytes).
    unsafe fn unpack(p: &[*const u8; ROWS]) -> Unpacked;
}

/// 16 bytes of nibbles per row (transposed) → eight registers of levels:
/// the low nibbles are elements 0..16 (registers 0..4), the high nibbles
/// elements 16..32 (registers 4..8): ggml's order for 32-element blocks.
#[inline(always)]
unsafe fn nibble_levels(q: [__m512i; 4]) -> [__m512i; 8] {
    let m = _mm512_set1_epi8(0x0f);
    // The dword shift moves each byte's high nibble down; the next byte's
    // low nibble, shifted into the top, is masked off.
    let mut w = [_mm512_setzero_si512(); 8];
    for g in 0..4 {
        w[g] = _mm512_and_si512(q[g], m);
        w[g + 4] = _mm512_and_si512(_mm512_srli_epi32::<4>(q[g]), m);
    }
    w
}

/// Adds 16 to level `k` of each row where bit `k` of its `qh` lane is set
/// (Q5_0, Q5_1). Levels `4g..4g+4` take bits `4g..4g+4`: bits 0..4 or
/// 4..8 of byte `g / 2`, copied into every byte of the lane and tested.
#[inline(always)]
unsafe fn fifth_bits(w: &mut [__m512i; 8], qh: __m512i) {
    for (pair, wp) in w.chunks_exact_mut(2).enumerate() {
        // Byte 4l + i of each 128-bit lane takes byte 4l + pair.
        let lane: [u8; 16] = std::array::from_fn(|i| (i / 4 * 4 + pair) as u8);
        let idx = _mm512_broadcast_i32x4(_mm_loadu_si128(lane.as_ptr() as *const __m128i));
        let spread = _mm512_shuffle_epi8(qh, idx);
        let sixteen = _mm512_set1_epi8(16);
        for (half, v) in wp.iter_mut().enumerate() {
            // Byte i of every lane tests bit 4·half + i.
            let bits = _mm512_set1_epi32(0x0804_0201 << (4 * half));
            let k = _mm512_test_epi8_mask(spread, bits);
            *v = _mm512_mask_add_epi8(*v, k, *v, sixteen);
        }
    }
}

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

pub(super) struct Q4_0;
pub(super) struct Q4_1;
pub(super) struct Q5_0;
pub(super) struct Q5_1;
pub(super) struct Q8_0;
pub(super) struct IQ4NL;
pub(super) struct MXFP4;

impl Block32 for Q4_0 {
    const BYTES: usize = 18;
    const OFFSET: i32 = 8;
    const HAS_MIN: bool = false;
    #[inline(always)]
    unsafe fn unpack(p: &[*const u8; ROWS]) -> Unpacked {
        unsafe {
            let head = transpose16x4(p, 0);
            Unpacked {
                w: nibble_levels(transpose16x4(p, 2)),
                d: halves_low(head[0]),
                m: _mm512_setzero_ps(),
            }
        }
    }
}

impl Block32 for Q4_1 {
    const BYTES: usize = 20;
    const OFFSET: i32 = 0;
    const HAS_MIN: bool = true;
    #[inline(always)]
    unsafe fn unpack(p: &[*const u8; ROWS]) -> Unpacked {
        unsafe {
            let head = transpose16x4(p, 0);
            Unpacked {
                w: nibble_levels(transpose16x4(p, 4)),
                d: halves_low(head[0]),
                m: halves_low(_mm512_srli_epi32::<16>(head[0])),
            }
        }
    }
}

impl Block32 for Q5_0 {
    const BYTES: usize = 22;
    const OFFSET: i32 = 16;
    const HAS_MIN: bool = false;
    /// Layout: d (f16), qh (bytes 2..6), qs (6..22).
    #[inline(always)]
    unsafe fn unpack(p: &[*const u8; ROWS]) -> Unpacked {
        unsafe {
            let head = transpose16x4(p, 0);
            let qh = _mm512_or_si512(
                _mm512_srli_epi32::<16>(head[0]),
                _mm512_slli_epi32::<16>(head[1]),
            );
            let mut w = nibble_levels(transpose16x4(p, 6));
            fifth_bits(&mut w, qh);
            Unpacked {
                w,
                d: halves_low(head[0]),
                m: _mm512_setzero_ps(),
            }
        }
    }
}

impl Block32 for Q5_1 {
    const BYTES: usize = 24;
    const OFFSET: i32 = 0;
    const HAS_MIN: bool = true;
    /// Layout: d, m (f16), qh (bytes 4..8), qs (8..24).
    #[inline(always)]
    unsafe fn unpack(p: &[*const u8; ROWS]) -> Unpacked {
        unsafe {
            let head = transpose16x4(p, 0);
            let mut w = nibble_levels(transpose16x4(p, 8));
            fifth_bits(&mut w, head[1]);
            Unpacked {
                w,
                d: halves_low(head[0]),
                m: halves_low(_mm512_srli_epi32::<16>(head[0])),
            }
        }
    }
}

impl Block32 for Q8_0 {
    const BYTES: usize = 34;
    const OFFSET: i32 = 128;
    const HAS_MIN: bool = false;
    #[inline(always)]
    unsafe fn unpack(p: &[*const u8; ROWS]) -> Unpacked {
        unsafe {
            let head = transpose16x4(p, 0);
            let (lo, hi) = (transpose16x4(p, 2), transpose16x4(p, 18));
            // Two's complement + 128 = flip the top bit.
            let flip = _mm512_set1_epi8(-128);
            let mut w = [_mm512_setzero_si512(); 8];
            for g in 0..4 {
                w[g] = _mm512_xor_si512(lo[g], flip);
                w[g + 4] = _mm512_xor_si512(hi[g], flip);
            }
            Unpacked {
                w,
                d: halves_low(head[0]),
                m: _mm512_setzero_ps(),
            }
        }
    }
}

impl Block32 for IQ4NL {
    const BYTES: usize = 18;
    const OFFSET: i32 = 128;
    const HAS_MIN: bool = false;
    #[inline(always)]
    unsafe fn unpack(p: &[*const u8; ROWS]) -> Unpacked {
        unsafe {
            let head = transpose16x4(p, 0);
            // kv + 128 in 1..=241.
            let book = codebook_u8(&KVALUES_IQ4NL, -128);
            let mut w = nibble_levels(transpose16x4(p, 2));
            for v in w.iter_mut() {
                *v = _mm512_shuffle_epi8(book, *v);
            }
            Unpacked {
                w,
                d: halves_low(head[0]),
                m: _mm512_setzero_ps(),
            }
        }
    }
}

impl Block32 for MXFP4 {
    const BYTES: usize = 17;
    const OFFSET: i32 = 12;
    const HAS_MIN: bool = false;
    /// Layout: e (E8M0 byte), qs (1..17); the scale is half of 2^(e−127)
    /// (`e8m0_to_f32_half`: subnormal for e < 2).
    #[inline(always)]
    unsafe fn unpack(p: &[*const u8; ROWS]) -> Unpacked {
        unsafe {
            let head = transpose16x4(p, 0);
            let e = _mm512_and_si512(head[0], _mm512_set1_epi32(0xff));
            let normal = _mm512_slli_epi32::<23>(_mm512_sub_epi32(e, _mm512_set1_epi32(1)));
            let subnormal = _mm512_sllv_epi32(_mm512_set1_epi32(0x0020_0000), e);
            let small = _mm512_cmplt_epu32_mask(e, _mm512_set1_epi32(2));
            let bits = _mm512_mask_blend_epi32(small, normal, subnormal);
            // kv + 12 in 0..=24.
            let book = codebook_u8(&KVALUES_MXFP4, 12);
            let mut w = nibble_levels(transpose16x4(p, 1));
            for v in w.iter_mut() {
                *v = _mm512_shuffle_epi8(book, *v);
            }
            Unpacked {
                w,
                d: _mm512_castsi512_ps(bits),
                m: _mm512_setzero_ps(),
            }
        }
    }
}

/// A [`Block32`] type as a rows-in-lanes kernel.
pub(super) struct Lanes32<B>(PhantomData<B>);

/// One token's activation row: values, block scales, scaled block sums,
/// and the blocks' starting values (`−o · Σx`).
#[derive(Clone, Copy)]
pub(super) struct Tok {
    qs: *const u8,
    d: *const f32,
    dsum: *const f32,
    init: *const i32,
}

impl<B: Block32> LaneKernel for Lanes32<B> {
    type Tok = Tok;
    const BYTES: usize = B::BYTES;
    const BLOCK: usize = 32;
    /// Eight registers of levels, the scales and the minima.
    const SLOTS: usize = 10;
    const INITS: usize = 1;

    #[inline(always)]
    unsafe fn unpack(p: &[*const u8; ROWS], out: *mut __m512i) {
        unsafe {
            let u = B::unpack(p);
            for (g, w) in u.w.iter().enumerate() {
                _mm512_store_si512(out.add(g), *w);
            }
            _mm512_store_ps(out.add(8) as *mut f32, u.d);
            _mm512_store_ps(out.add(9) as *mut f32, u.m);
        }
    }

    fn init(x: &QuantizedActs, t: usize, out: &mut Vec<i32>) {
        out.extend(x.q32_row(t).sum.iter().map(|&s| -B::OFFSET * s));
    }

    fn tok(x: &QuantizedActs, t: usize, init: *const i32) -> Tok {
        let r = x.q32_row(t);
        Tok {
            qs: r.qs.as_ptr() as *const u8,
            d: r.d.as_ptr(),
            dsum: r.dsum.as_ptr(),
            init,
        }
    }

    /// Per block and token: eight `vpdpbusd` from the starting value (so
    /// the lane ends at `Σ (u − o)·x`, exact), a convert, `d_w · d_x` and a
    /// multiply-add; for the types with a minimum one more multiply-add.
    #[inline(always)]
    unsafe fn dot<const T: usize>(u: *const __m512i, nb: usize, x: [Tok; T]) -> [__m512; T] {
        unsafe {
            let mut f = [_mm512_setzero_ps(); T];
            for b in 0..nb {
                let ub = u.add(b * Self::SLOTS);
                let mut acc = [_mm512_setzero_si512(); T];
                for t in 0..T {
                    acc[t] = _mm512_set1_epi32(*x[t].init.add(b));
                }
                for g in 0..8 {
                    let w = _mm512_load_si512(ub.add(g));
                    for t in 0..T {
                        let xg = (x[t].qs.add(32 * b + 4 * g) as *const i32).read_unaligned();
                        acc[t] = _mm512_dpbusd_epi32(acc[t], w, _mm512_set1_epi32(xg));
                    }
                }
                let d = _mm512_load_ps(ub.add(8) as *const f32);
                for t in 0..T {
                    let s = _mm512_mul_ps(d, _mm512_set1_ps(*x[t].d.add(b)));
                    f[t] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(acc[t]), s, f[t]);
                }
                if B::HAS_MIN {
                    let m = _mm512_load_ps(ub.add(9) as *const f32);
                    for t in 0..T {
                        f[t] = _mm512_fmadd_ps(m, _mm512_set1_ps(*x[t].dsum.add(b)), f[t]);
                    }
                }
            }
            f
        }
    }
}
