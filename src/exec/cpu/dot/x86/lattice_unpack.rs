//! AVX2 decoding of the lattice IQ and ternary super-blocks to their
//! integer form (the same `q`, group scales and `d` as the portable
//! [`decode256`]), eight registers of 32 values at a time.
//!
//! A grid entry holds the magnitudes of 4 (IQ3) or 8 (IQ2, IQ1) values, so
//! one register is four 8-value entries (or eight 4-value ones) put side by
//! side from scalar table reads; the signs of its 32 values are one u32 of
//! bits (IQ2_XXS, IQ2_XS and IQ3_XXS through the 7-bit sign table), spread
//! to byte masks that negate with `(m ^ mask) - mask`. What stays scalar
//! is index arithmetic and table reads, a few per 8 values, instead of the
//! portable decoder's per-value loops.

use std::arch::x86_64::*;

use super::util::{bits_to_bytes, codebook, f16_at, nibbles_32};
use crate::exec::cpu::blocks::decode256;
use crate::quant::blocks::iq_grids::{
    IQ1S_GRID, IQ2S_GRID, IQ2XS_GRID, IQ2XXS_GRID, IQ3S_GRID, IQ3XXS_GRID,
};
use crate::quant::blocks::lattice::ksign;
use crate::quant::blocks::KVALUES_IQ4NL;
use crate::quant::GgmlType;

/// A super-block's integer form in element order: `x[32r + i] = d *
/// sc[(32r + i) / 16] * q[r][i]`, lane `g` of `sc` (i16) the scale of
/// values `16g..16g + 16`.
#[derive(Clone, Copy)]
pub(super) struct Natural {
    pub q: [__m256i; 8],
    pub sc: __m256i,
    pub d: f32,
}

/// A type whose super-blocks decode to [`Natural`].
pub(super) trait Unpack {
    const TY: GgmlType;
    /// Decodes the block at `p` (`TY.block_bytes()` readable bytes).
    unsafe fn unpack(p: *const u8) -> Natural;
}

/// All eight signs of each 7-bit sign index (the table form of [`ksign`]).
const KSIGNS: [u8; 128] = {
    let mut t = [0u8; 128];
    let mut i = 0;
    while i < 128 {
        t[i] = ksign(i as u8);
        i += 1;
    }
    t
};

/// Four 7-bit sign indices (bits `7l..7l + 7` of `aux`) as 32 sign bits.
#[inline(always)]
fn ksigns4(aux: u32) -> u32 {
    (0..4).fold(0, |acc, l| {
        acc | (KSIGNS[(aux >> (7 * l)) as usize & 127] as u32) << (8 * l)
    })
}

/// `m` negated in byte `j` where bit `j` of `signs` is set.
#[inline(always)]
unsafe fn with_signs(m: __m256i, signs: u32) -> __m256i {
    unsafe {
        let mask = bits_to_bytes(signs);
        _mm256_sub_epi8(_mm256_xor_si256(m, mask), mask)
    }
}

#[inline(always)]
unsafe fn u16_at(p: *const u8) -> u16 {
    unsafe { (p as *const u16).read_unaligned() }
}

#[inline(always)]
unsafe fn u32_at(p: *const u8) -> u32 {
    unsafe { (p as *const u32).read_unaligned() }
}

/// Four 8-value grid entries, entry `l` in bytes `8l..8l + 8`.
#[inline(always)]
unsafe fn entries8(grid: &[u64], i: [usize; 4]) -> __m256i {
    unsafe {
        _mm256_set_epi64x(
            *grid.get_unchecked(i[3]) as i64,
            *grid.get_unchecked(i[2]) as i64,
            *grid.get_unchecked(i[1]) as i64,
            *grid.get_unchecked(i[0]) as i64,
        )
    }
}

/// Eight 4-value grid entries, entry `l` in bytes `4l..4l + 4`.
#[inline(always)]
unsafe fn entries4(grid: &[u32], i: [usize; 8]) -> __m256i {
    let e = |l: usize| unsafe { *grid.get_unchecked(i[l]) as i32 };
    unsafe { _mm256_setr_epi32(e(0), e(1), e(2), e(3), e(4), e(5), e(6), e(7)) }
}

/// Group scales `2 ls + 1` from one 4-bit `ls` per 32 values (both of
/// its 16-value groups).
#[inline(always)]
unsafe fn odd_scales_per_32(ls: [u32; 8]) -> __m256i {
    let s = |r: usize| (2 * ls[r] + 1) as i16;
    unsafe {
        _mm256_setr_epi16(
            s(0),
            s(0),
            s(1),
            s(1),
            s(2),
            s(2),
            s(3),
            s(3),
            s(4),
            s(4),
            s(5),
            s(5),
            s(6),
            s(6),
            s(7),
            s(7),
        )
    }
}

/// Group scales `2 ls + 1` from eight bytes of nibbles at `p`: byte `r`'s
/// low nibble scales group `2r`, its high nibble group `2r + 1`.
#[inline(always)]
unsafe fn odd_scales_nibbles(p: *const u8) -> __m256i {
    unsafe {
        let b = _mm_loadl_epi64(p as *const __m128i);
        let m = _mm_set1_epi8(0x0f);
        let nib = _mm_unpacklo_epi8(
            _mm_and_si128(b, m),
            _mm_and_si128(_mm_srli_epi16::<4>(b), m),
        );
        let w = _mm256_cvtepu8_epi16(nib);
        _mm256_add_epi16(_mm256_add_epi16(w, w), _mm256_set1_epi16(1))
    }
}

macro_rules! unpackers {
    ($($marker:ident => $ty:ident, $f:ident);* $(;)?) => {
        $(
            pub(super) struct $marker;
            impl Unpack for $marker {
                const TY: GgmlType = GgmlType::$ty;
                #[inline(always)]
                unsafe fn unpack(p: *const u8) -> Natural {
                    unsafe { $f(p) }
                }
            }
        )*
    };
}

unpackers!(
    Tq1_0 => TQ1_0, tq1_0;
    Tq2_0 => TQ2_0, tq2_0;
    Iq2Xxs => IQ2_XXS, iq2_xxs;
    Iq2Xs => IQ2_XS, iq2_xs;
    Iq2S => IQ2_S, iq2_s;
    Iq3Xxs => IQ3_XXS, iq3_xxs;
    Iq3S => IQ3_S, iq3_s;
    Iq1S => IQ1_S, iq1_s;
    Iq1M => IQ1_M, iq1_m;
    Iq4Xs => IQ4_XS, iq4_xs;
);

/// Through the portable decoder (TQ1_0's base-3 digits have no cheap
/// vector form here; its speed is not a goal).
#[inline(always)]
unsafe fn tq1_0(p: *const u8) -> Natural {
    let ty = GgmlType::TQ1_0;
    // SAFETY: the caller's pointer covers one whole block.
    let blk = decode256(ty, unsafe {
        std::slice::from_raw_parts(p, ty.block_bytes())
    });
    let sc: [i16; 16] = std::array::from_fn(|g| blk.sc[g] as i16);
    unsafe {
        Natural {
            q: std::array::from_fn(|r| {
                _mm256_loadu_si256(blk.q.as_ptr().add(32 * r) as *const __m256i)
            }),
            sc: _mm256_loadu_si256(sc.as_ptr() as *const __m256i),
            d: blk.d,
        }
    }
}

/// TQ2_0: qs[64], d. Element `128h + 32n + m` is `((qs[32h + m] >> 2n) & 3) - 1`.
#[inline(always)]
unsafe fn tq2_0(p: *const u8) -> Natural {
    unsafe {
        let (three, one) = (_mm256_set1_epi8(3), _mm256_set1_epi8(1));
        let mut q = [_mm256_setzero_si256(); 8];
        for h in 0..2 {
            let v = _mm256_loadu_si256(p.add(32 * h) as *const __m256i);
            let two_bits = [
                v,
                _mm256_srli_epi16::<2>(v),
                _mm256_srli_epi16::<4>(v),
                _mm256_srli_epi16::<6>(v),
            ];
            for (n, b) in two_bits.into_iter().enumerate() {
                q[4 * h + n] = _mm256_sub_epi8(_mm256_and_si256(b, three), one);
            }
        }
        Natural {
            q,
            sc: _mm256_set1_epi16(1),
            d: f16_at(p.add(64)),
        }
    }
}

/// IQ2_XXS: d, then per 32 values four grid bytes and a u32 of four 7-bit
/// sign indices with `ls` in its top nibble.
#[inline(always)]
unsafe fn iq2_xxs(p: *const u8) -> Natural {
    unsafe {
        let mut q = [_mm256_setzero_si256(); 8];
        let mut ls = [0u32; 8];
        for r in 0..8 {
            let b = p.add(2 + 8 * r);
            let aux = u32_at(b.add(4));
            let grid = entries8(&IQ2XXS_GRID, std::array::from_fn(|l| *b.add(l) as usize));
            q[r] = with_signs(grid, ksigns4(aux));
            ls[r] = aux >> 28;
        }
        Natural {
            q,
            sc: odd_scales_per_32(ls),
            d: f16_at(p) * 0.125,
        }
    }
}

/// IQ2_XS: d, 32 u16 (grid index in the low 9 bits, sign index in the top
/// 7), eight bytes of nibble scales per 16 values.
#[inline(always)]
unsafe fn iq2_xs(p: *const u8) -> Natural {
    unsafe {
        let mut q = [_mm256_setzero_si256(); 8];
        for (r, v) in q.iter_mut().enumerate() {
            let w: [u16; 4] = std::array::from_fn(|l| u16_at(p.add(2 + 8 * r + 2 * l)));
            let grid = entries8(&IQ2XS_GRID, w.map(|w| (w & 511) as usize));
            let signs = (0..4).fold(0u32, |acc, l| {
                acc | (KSIGNS[(w[l] >> 9) as usize] as u32) << (8 * l)
            });
            *v = with_signs(grid, signs);
        }
        Natural {
            q,
            sc: odd_scales_nibbles(p.add(66)),
            d: f16_at(p) * 0.125,
        }
    }
}

/// IQ2_S: d, qs[32] (low 8 index bits), signs[32] (explicit bits), qh[8]
/// (two high index bits per group), scales as IQ2_XS.
#[inline(always)]
unsafe fn iq2_s(p: *const u8) -> Natural {
    unsafe {
        let mut q = [_mm256_setzero_si256(); 8];
        for (r, v) in q.iter_mut().enumerate() {
            let high = *p.add(66 + r) as usize;
            let idx = std::array::from_fn(|l| {
                *p.add(2 + 4 * r + l) as usize | ((high >> (2 * l)) & 3) << 8
            });
            *v = with_signs(entries8(&IQ2S_GRID, idx), u32_at(p.add(34 + 4 * r)));
        }
        Natural {
            q,
            sc: odd_scales_nibbles(p.add(74)),
            d: f16_at(p) * 0.125,
        }
    }
}

/// IQ3_XXS: d, qs[64] (one 4-value grid byte each), then per 32 values a
/// u32 of four 7-bit sign indices (one per 8 values) and `ls` on top.
#[inline(always)]
unsafe fn iq3_xxs(p: *const u8) -> Natural {
    unsafe {
        let mut q = [_mm256_setzero_si256(); 8];
        let mut ls = [0u32; 8];
        for r in 0..8 {
            let aux = u32_at(p.add(66 + 4 * r));
            let idx = std::array::from_fn(|l| *p.add(2 + 8 * r + l) as usize);
            q[r] = with_signs(entries4(&IQ3XXS_GRID, idx), ksigns4(aux));
            ls[r] = aux >> 28;
        }
        Natural {
            q,
            sc: odd_scales_per_32(ls),
            d: f16_at(p) * 0.25,
        }
    }
}

/// IQ3_S: d, qs[64] (low index bits), qh[8] (ninth bits, one byte per 32
/// values), signs[32], scales[4] (a nibble per 32 values).
#[inline(always)]
unsafe fn iq3_s(p: *const u8) -> Natural {
    unsafe {
        let mut q = [_mm256_setzero_si256(); 8];
        let mut ls = [0u32; 8];
        for r in 0..8 {
            let high = *p.add(66 + r) as usize;
            let idx =
                std::array::from_fn(|l| *p.add(2 + 8 * r + l) as usize | ((high >> l) & 1) << 8);
            q[r] = with_signs(entries4(&IQ3S_GRID, idx), u32_at(p.add(74 + 4 * r)));
            ls[r] = (*p.add(106 + r / 2) as u32 >> (4 * (r % 2))) & 0xf;
        }
        Natural {
            q,
            sc: odd_scales_per_32(ls),
            d: f16_at(p),
        }
    }
}

/// `8 g + delta` for grid bytes `g` in {-1, 0, 1}: `vpsignb` gives `8 g`.
#[inline(always)]
unsafe fn iq1_values(grid: __m256i, delta: __m256i) -> __m256i {
    unsafe { _mm256_add_epi8(_mm256_sign_epi8(_mm256_set1_epi8(8), grid), delta) }
}

/// IQ1_S: d, qs[32] (low index bits), then per 32 values a u16: three high
/// index bits per 8 values, `ls` in bits 12..15, the delta's sign on top.
#[inline(always)]
unsafe fn iq1_s(p: *const u8) -> Natural {
    unsafe {
        let mut q = [_mm256_setzero_si256(); 8];
        let mut ls = [0u32; 8];
        for r in 0..8 {
            let qh = u16_at(p.add(34 + 2 * r)) as usize;
            let idx = std::array::from_fn(|l| {
                *p.add(2 + 4 * r + l) as usize | ((qh >> (3 * l)) & 7) << 8
            });
            let delta = _mm256_set1_epi8(if qh & 0x8000 != 0 { -1 } else { 1 });
            q[r] = iq1_values(entries8(&IQ1S_GRID, idx), delta);
            ls[r] = (qh as u32 >> 12) & 7;
        }
        Natural {
            q,
            sc: odd_scales_per_32(ls),
            d: f16_at(p) * 0.125,
        }
    }
}

/// IQ1_M: qs[32], qh[16] (a nibble per 8 values: three high index bits and
/// the delta's sign), four u16 of 3-bit scales per 16 values whose top
/// nibbles together are the f16 `d`.
#[inline(always)]
unsafe fn iq1_m(p: *const u8) -> Natural {
    unsafe {
        let mut q = [_mm256_setzero_si256(); 8];
        for (r, v) in q.iter_mut().enumerate() {
            let nib: [usize; 4] = std::array::from_fn(|l| {
                (*p.add(32 + 2 * r + l / 2) as usize >> (4 * (l % 2))) & 0xf
            });
            let idx = std::array::from_fn(|l| *p.add(4 * r + l) as usize | (nib[l] & 7) << 8);
            let delta = |l: usize| {
                if nib[l] & 8 != 0 {
                    -1i64
                } else {
                    0x0101_0101_0101_0101
                }
            };
            let delta = _mm256_set_epi64x(delta(3), delta(2), delta(1), delta(0));
            *v = iq1_values(entries8(&IQ1S_GRID, idx), delta);
        }
        let words: [u16; 4] = std::array::from_fn(|w| u16_at(p.add(48 + 2 * w)));
        let sc: [i16; 16] =
            std::array::from_fn(|g| (2 * ((words[g / 4] >> (3 * (g % 4))) & 7) + 1) as i16);
        let bits = (0..4).fold(0u16, |acc, w| acc | (words[w] >> 12) << (4 * w));
        Natural {
            q,
            sc: _mm256_loadu_si256(sc.as_ptr() as *const __m256i),
            d: half::f16::from_bits(bits).to_f32() * 0.125,
        }
    }
}

/// IQ4_XS (not a lattice type, but unpacked the same way so that prefill
/// looks its codebook up once per row rather than once per token group):
/// d, scales_h (u16: two high bits per 32 values), scales_l[4] (a nibble
/// per 32 values), qs[128]: 32 values per 16 bytes, low nibbles first,
/// each an index into the IQ4 codebook; scale `ls - 32`.
#[inline(always)]
unsafe fn iq4_xs(p: *const u8) -> Natural {
    unsafe {
        let book = codebook(&KVALUES_IQ4NL);
        let q = std::array::from_fn(|r| _mm256_shuffle_epi8(book, nibbles_32(p.add(8 + 16 * r))));
        let high = u16_at(p.add(2)) as u32;
        let ls: [i16; 8] = std::array::from_fn(|r| {
            let low = (*p.add(4 + r / 2) as u32 >> (4 * (r % 2))) & 0xf;
            (low | ((high >> (2 * r)) & 3) << 4) as i16 - 32
        });
        let ls = _mm_loadu_si128(ls.as_ptr() as *const __m128i);
        Natural {
            q,
            // Each 32 values' scale for both of its 16-value groups.
            sc: _mm256_setr_m128i(_mm_unpacklo_epi16(ls, ls), _mm_unpackhi_epi16(ls, ls)),
            d: f16_at(p),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `K::unpack` stored to plain arrays: q, scales, d.
    #[target_feature(enable = "avx2")]
    unsafe fn unpacked<K: Unpack>(block: &[u8]) -> ([i8; 256], [i16; 16], f32) {
        let (mut q, mut sc) = ([0i8; 256], [0i16; 16]);
        unsafe {
            let n = K::unpack(block.as_ptr());
            for (r, v) in n.q.iter().enumerate() {
                _mm256_storeu_si256(q.as_mut_ptr().add(32 * r) as *mut __m256i, *v);
            }
            _mm256_storeu_si256(sc.as_mut_ptr() as *mut __m256i, n.sc);
            (q, sc, n.d)
        }
    }

    /// Every byte pattern is a valid block of these types (TQ1_0 bytes
    /// above 242 are never written, but decode all the same), so random
    /// bytes reach every grid index, sign and scale.
    fn agrees_with_the_portable_decoder<K: Unpack>() {
        if !is_x86_feature_detected!("avx2") {
            return;
        }
        let mut state = 0x9e37_79b9_7f4a_7c15u64 ^ K::TY as u64;
        let mut block = vec![0u8; K::TY.block_bytes()];
        for _ in 0..3000 {
            for b in block.iter_mut() {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                *b = (state >> 32) as u8;
            }
            let want = decode256(K::TY, &block);
            // SAFETY: AVX2 is present (checked above).
            let (q, sc, d) = unsafe { unpacked::<K>(&block) };
            assert_eq!(q, want.q, "{}: values", K::TY);
            assert_eq!(sc.map(i32::from), want.sc, "{}: group scales", K::TY);
            assert!(
                d.to_bits() == want.d.to_bits() || (d.is_nan() && want.d.is_nan()),
                "{}: d {d} vs {}",
                K::TY,
                want.d
            );
        }
    }

    #[test]
    fn every_unpacker_gives_the_portable_integer_form() {
        agrees_with_the_portable_decoder::<Tq1_0>();
        agrees_with_the_portable_decoder::<Tq2_0>();
        agrees_with_the_portable_decoder::<Iq2Xxs>();
        agrees_with_the_portable_decoder::<Iq2Xs>();
        agrees_with_the_portable_decoder::<Iq2S>();
        agrees_with_the_portable_decoder::<Iq3Xxs>();
        agrees_with_the_portable_decoder::<Iq3S>();
        agrees_with_the_portable_decoder::<Iq1S>();
        agrees_with_the_portable_decoder::<Iq1M>();
        agrees_with_the_portable_decoder::<Iq4Xs>();
    }
}
