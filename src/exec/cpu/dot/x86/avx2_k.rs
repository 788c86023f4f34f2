//! AVX2 kernels for K-quant super-blocks (Q4_K, Q6_K) against
//! [`Q8x256Row`] activations.
//!
//! Sub-block scales are small integers, so they are applied inside the
//! integer dot: `vpmaddubsw` (u8 weights × i8 activations → i16 pairs),
//! then `vpmaddwd` with the broadcast scale (→ i32, scaled and summed in
//! one step). Each 32-element activation block has its own scale: its i32
//! lanes are converted and multiply-added with it into a per-super-block
//! f32 sum, which one more multiply-add scales by the weights' `d`. Q4_K's
//! mins multiply the activations' scaled 32-element sums; Q6_K's offset of
//! 32 takes the 16-element sums, one i32 lane per activation block, scaled
//! by the eight block scales at once.
//! Bounds: Q4_K 15·127·2 and Q6_K 63·127·2 per i16 pair, below 32768; one
//! block's i32 lanes stay below 2^23, so their conversion is exact.

use std::arch::x86_64::*;
use std::ops::Range;

use super::super::OutView;
use super::util::{f16_at, hsum_ps};
use crate::exec::cpu::acts::{Q8x256Row, QuantizedActs};
use crate::exec::cpu::weights::WeightMatrix;
use crate::quant::blocks::unpack_scale_min_k4;

/// One token's 256-element activation super-block.
#[derive(Clone, Copy)]
struct Act {
    /// 256 values, 32-byte aligned.
    qs: *const i8,
    /// 8 scales, one per 32 values.
    d: *const f32,
    /// 16 sums of 16 values.
    bsums: *const i16,
    /// 8 sums of 32 values, each times its scale.
    dsum: *const f32,
}

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

/// `f + lanes · d`: one activation block's i32 lanes at its scale.
#[inline(always)]
unsafe fn add_scaled(f: __m256, lanes: __m256i, d: *const f32) -> __m256 {
    unsafe { _mm256_fmadd_ps(_mm256_cvtepi32_ps(lanes), _mm256_broadcast_ss(&*d), f) }
}

/// `lanes · d` for lane `s` = activation block `s` of the super-block.
#[inline(always)]
unsafe fn per_block(lanes: __m256i, d: *const f32) -> __m256 {
    unsafe { _mm256_mul_ps(_mm256_cvtepi32_ps(lanes), _mm256_loadu_ps(d)) }
}

impl SuperBlock for Q4K {
    const BYTES: usize = 144;

    /// Layout: d, dmin (f16), 12 bytes of 6-bit scales/mins, 128 bytes of
    /// nibbles: bytes 32j..32j+32 hold sub-block 2j (low) and 2j+1 (high).
    /// Sub-block `s` is activation block `s`.
    #[inline(always)]
    unsafe fn accumulate<const T: usize>(p: *const u8, x: [Act; T], acc: &mut [__m256; T]) {
        unsafe {
            let (d, dmin) = (f16_at(p), f16_at(p.add(2)));
            let (sc, mn) = unpack_scale_min_k4(&*(p.add(4) as *const [u8; 12]));
            // Lane s: dmin · mn[s], against the activations' scaled block sums.
            let mins = _mm256_mul_ps(
                _mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(_mm_cvtsi64_si128(mn as i64))),
                _mm256_set1_ps(dmin),
            );
            let scv = _mm256_set1_epi64x(sc as i64);
            let mut f = [_mm256_setzero_ps(); T];
            let low = _mm256_set1_epi8(0x0f);
            for j in 0..4 {
                let v = _mm256_loadu_si256(p.add(16 + 32 * j) as *const __m256i);
                let q_lo = _mm256_and_si256(v, low);
                let q_hi = _mm256_and_si256(_mm256_srli_epi16::<4>(v), low);
                // Every i16 lane = scale byte 2j (2j+1); index bit 7 zeroes the high byte.
                let pick = |s: usize| _mm256_set1_epi16((0x8000 | s) as u16 as i16);
                let s_lo = _mm256_shuffle_epi8(scv, pick(2 * j));
                let s_hi = _mm256_shuffle_epi8(scv, pick(2 * j + 1));
                for t in 0..T {
                    let a = x[t].qs.add(64 * j);
                    let p_lo = _mm256_madd_epi16(_mm256_maddubs_epi16(q_lo, load32(a)), s_lo);
                    let p_hi =
                        _mm256_madd_epi16(_mm256_maddubs_epi16(q_hi, load32(a.add(32))), s_hi);
                    f[t] = add_scaled(f[t], p_lo, x[t].d.add(2 * j));
                    f[t] = add_scaled(f[t], p_hi, x[t].d.add(2 * j + 1));
                }
            }
            for t in 0..T {
                acc[t] = _mm256_fmadd_ps(f[t], _mm256_set1_ps(d), acc[t]);
                acc[t] = _mm256_fnmadd_ps(mins, _mm256_loadu_ps(x[t].dsum), acc[t]);
            }
        }
    }
}

impl SuperBlock for Q6K {
    const BYTES: usize = 210;

    /// Layout: ql[128], qh[64], scales[16] (i8), d (f16). Half `h`, quarter
    /// `r` (32 elements from 128h+32r, activation block 4h+r) takes nibbles
    /// of ql[64h + 32(r%2)..] (high nibbles for r >= 2) and bits 2r..2r+2
    /// of qh[32h..]; value minus 32; groups 8h+2r and 8h+2r+1 each have
    /// their own scale.
    #[inline(always)]
    unsafe fn accumulate<const T: usize>(p: *const u8, x: [Act; T], acc: &mut [__m256; T]) {
        unsafe {
            let d = f16_at(p.add(208));
            let sc16 = _mm256_cvtepi8_epi16(_mm_loadu_si128(p.add(192) as *const __m128i));
            let mut f = [_mm256_setzero_ps(); T];
            // Half h's eight i16 scales in both 128-bit lanes.
            let lo = _mm256_permute2x128_si256::<0x00>(sc16, sc16);
            let hi = _mm256_permute2x128_si256::<0x11>(sc16, sc16);
            q6k_half::<T>(p, 0, lo, &x, &mut f);
            q6k_half::<T>(p, 1, hi, &x, &mut f);
            for t in 0..T {
                // The stored values are q + 32: subtract 32 · Σ_g sc_g · bsum_g,
                // lane s holding groups 2s and 2s+1 (activation block s).
                let bsums = _mm256_loadu_si256(x[t].bsums as *const __m256i);
                let offset = _mm256_slli_epi32::<5>(_mm256_madd_epi16(bsums, sc16));
                let f = _mm256_sub_ps(f[t], per_block(offset, x[t].d));
                acc[t] = _mm256_fmadd_ps(f, _mm256_set1_ps(d), acc[t]);
            }
        }
    }
}

/// Half `h` of a Q6_K super-block at `p` into `f`; `scales` holds the
/// half's eight i16 group scales in both 128-bit lanes.
#[inline(always)]
unsafe fn q6k_half<const T: usize>(
    p: *const u8,
    h: usize,
    scales: __m256i,
    x: &[Act; T],
    f: &mut [__m256; T],
) {
    unsafe {
        let (m4, m2) = (_mm256_set1_epi8(0x0f), _mm256_set1_epi8(0x30));
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
            // i16 lanes 0..8 = scale 2r of the half, lanes 8..16 = scale 2r+1.
            let byte_pair = |g: usize| _mm_set1_epi16((((2 * g + 1) << 8) | (2 * g)) as i16);
            let pick = _mm256_set_m128i(byte_pair(2 * r + 1), byte_pair(2 * r));
            let scv = _mm256_shuffle_epi8(scales, pick);
            for t in 0..T {
                let a = load32(x[t].qs.add(128 * h + 32 * r));
                let prod = _mm256_madd_epi16(_mm256_maddubs_epi16(qr, a), scv);
                f[t] = add_scaled(f[t], prod, x[t].d.add(4 * h + r));
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
                d: x[t].d.get_unchecked(b).as_ptr(),
                bsums: x[t].bsums.get_unchecked(b).as_ptr(),
                dsum: x[t].dsum.get_unchecked(b).as_ptr(),
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
