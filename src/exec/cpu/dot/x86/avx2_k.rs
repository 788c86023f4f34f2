//! AVX2 kernels for K-quant super-blocks (Q4_K, Q6_K) and the signed
//! 256-value types (IQ4_XS, the TQ and lattice IQ types, unpacked to their
//! integer form by [`lattice_unpack`](super::lattice_unpack)) against
//! [`Q8x256Row`] activations.
//!
//! Sub-block scales are small integers, so they are applied inside the
//! integer dot: `vpmaddubsw` (u8 weights × i8 activations → i16 pairs),
//! then `vpmaddwd` with the broadcast scale (→ i32, scaled and summed in
//! one step). Each 32-element activation block has its own scale, so the
//! blocks' integer sums must stay apart until they are converted: the
//! weights of four blocks are interleaved four bytes at a time (the order
//! the activations are stored in), so each i32 lane holds one block's sum
//! and one conversion and multiply-add per half super-block and token
//! applies the four activation scales; one more per super-block applies
//! the weights' `d`. Q4_K's mins multiply the activations' scaled
//! 32-element sums; Q6_K's offset of 32 takes the 16-element sums, one i32
//! lane per activation block, scaled by the eight block scales at once.
//! Bounds: Q4_K 15·127·2 and Q6_K 63·127·2 per i16 pair, below 32768; one
//! block's i32 lanes stay below 2^23, so their conversion is exact.
//!
//! Signed weights (IQ4_XS's codebook values, |w| ≤ 127; the integer forms
//! of the other types, |w| ≤ 62) use `sign(x, w)·|w|`: 127·127·2 < 32768
//! per i16 pair; times an i16 scale (|sc| ≤ 32) and summed over four
//! registers, an i32 lane stays below 2^24, exact in f32.
//!
//! Unpacking a lattice block (grid table reads, sign masks, the
//! interleave) costs about as much as dotting it with a few tokens, so
//! prefill unpacks each row once into a per-thread buffer and runs every
//! token group of the tile over it; a single token unpacks as it streams.
//! Both go through [`Unpacked::accumulate`], so a token's result is the
//! same bits alone or in any group.

use std::arch::x86_64::*;
use std::ops::Range;

use super::super::OutView;
use super::lattice_unpack::{self as lu, Unpack};
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

/// Four blocks' 32 weight bytes (one register each) regrouped four bytes
/// at a time into the activations' order
/// ([`k_slot`](crate::exec::cpu::acts::k_slot)): register `k` holds bytes
/// `4k..4k+4` of blocks 0..4 in its low half and `16+4k..16+4k+4` in its
/// high half, so i32 lanes `i` and `i + 4` belong to block `i`.
#[inline(always)]
unsafe fn interleave4(b: [__m256i; 4]) -> [__m256i; 4] {
    let t0 = _mm256_unpacklo_epi32(b[0], b[1]);
    let t1 = _mm256_unpackhi_epi32(b[0], b[1]);
    let t2 = _mm256_unpacklo_epi32(b[2], b[3]);
    let t3 = _mm256_unpackhi_epi32(b[2], b[3]);
    [
        _mm256_unpacklo_epi64(t0, t2),
        _mm256_unpackhi_epi64(t0, t2),
        _mm256_unpacklo_epi64(t1, t3),
        _mm256_unpackhi_epi64(t1, t3),
    ]
}

/// Half `h` of a super-block: `w` the interleaved weights, `scales` the
/// i16 sub-block scale of each lane. Per token, the four blocks stay apart
/// in the i32 lanes (below 2^24, exact in f32) and are converted once,
/// times their activation scales (lane `i` and `i + 4`: block `4h + i`).
#[inline(always)]
unsafe fn accumulate_half<const T: usize>(
    w: [__m256i; 4],
    scales: __m256i,
    h: usize,
    x: &[Act; T],
    f: &mut [__m256; T],
) {
    unsafe {
        for t in 0..T {
            let a = x[t].qs.add(128 * h);
            let mut sum = _mm256_setzero_si256();
            for (k, &wk) in w.iter().enumerate() {
                let p = _mm256_maddubs_epi16(wk, load32(a.add(32 * k)));
                sum = _mm256_add_epi32(sum, _mm256_madd_epi16(p, scales));
            }
            let d = _mm256_broadcast_ps(&*(x[t].d.add(4 * h) as *const __m128));
            f[t] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(sum), d, f[t]);
        }
    }
}

/// [`accumulate_half`] for signed weights: `|w|` times `x` with `w`'s sign.
#[inline(always)]
unsafe fn accumulate_half_signed<const T: usize>(
    w: [__m256i; 4],
    scales: __m256i,
    h: usize,
    x: &[Act; T],
    f: &mut [__m256; T],
) {
    unsafe {
        let w_abs = w.map(|v| _mm256_sign_epi8(v, v));
        for t in 0..T {
            let a = x[t].qs.add(128 * h);
            let mut sum = _mm256_setzero_si256();
            for k in 0..4 {
                let xs = _mm256_sign_epi8(load32(a.add(32 * k)), w[k]);
                let p = _mm256_maddubs_epi16(w_abs[k], xs);
                sum = _mm256_add_epi32(sum, _mm256_madd_epi16(p, scales));
            }
            let d = _mm256_broadcast_ps(&*(x[t].d.add(4 * h) as *const __m128));
            f[t] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(sum), d, f[t]);
        }
    }
}

/// `lanes · d` for lane `s` = activation block `s` of the super-block.
#[inline(always)]
unsafe fn per_block(lanes: __m256i, d: *const f32) -> __m256 {
    unsafe { _mm256_mul_ps(_mm256_cvtepi32_ps(lanes), _mm256_loadu_ps(d)) }
}

/// `vpshufb` indices putting byte `first + i` of each 8 into both bytes
/// of i16 lanes `2i` and `2i + 1` (i = 0..4), high bytes zero: Q4_K's
/// scale of block `first + i` for the lanes [`interleave4`] gives it.
const fn q4k_pick(first: u8) -> [u8; 32] {
    let mut p = [0x80u8; 32];
    let mut j = 0;
    while j < 16 {
        p[2 * j] = first + (j as u8 % 8) / 2;
        j += 1;
    }
    p
}
const Q4K_PICK: [[u8; 32]; 2] = [q4k_pick(0), q4k_pick(4)];

/// `vpshufb` indices over a half's eight i16 Q6_K group scales: low
/// 128-bit half (bytes 0..16 of each block) takes group `2i`, high half
/// (bytes 16..32) group `2i + 1`, for the lanes of block `i`.
const fn q6k_pick() -> [u8; 32] {
    let mut p = [0u8; 32];
    let mut j = 0;
    while j < 16 {
        let group = 2 * ((j % 8) / 2) + j / 8;
        p[2 * j] = 2 * group as u8;
        p[2 * j + 1] = 2 * group as u8 + 1;
        j += 1;
    }
    p
}
const Q6K_PICK: [u8; 32] = q6k_pick();

#[inline(always)]
unsafe fn load_pick(p: &[u8; 32]) -> __m256i {
    unsafe { _mm256_loadu_si256(p.as_ptr() as *const __m256i) }
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
            let sc = _mm256_set1_epi64x(sc as i64);
            let mut f = [_mm256_setzero_ps(); T];
            let low = _mm256_set1_epi8(0x0f);
            for (h, pick) in Q4K_PICK.iter().enumerate() {
                let v0 = _mm256_loadu_si256(p.add(16 + 64 * h) as *const __m256i);
                let v1 = _mm256_loadu_si256(p.add(48 + 64 * h) as *const __m256i);
                let w = interleave4([
                    _mm256_and_si256(v0, low),
                    _mm256_and_si256(_mm256_srli_epi16::<4>(v0), low),
                    _mm256_and_si256(v1, low),
                    _mm256_and_si256(_mm256_srli_epi16::<4>(v1), low),
                ]);
                let scales = _mm256_shuffle_epi8(sc, load_pick(pick));
                accumulate_half::<T>(w, scales, h, &x, &mut f);
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
            let pick = load_pick(&Q6K_PICK);
            // Each half's eight i16 group scales in both 128-bit lanes.
            let halves = [
                _mm256_permute2x128_si256::<0x00>(sc16, sc16),
                _mm256_permute2x128_si256::<0x11>(sc16, sc16),
            ];
            for (h, &half) in halves.iter().enumerate() {
                let w = interleave4(q6k_quarters(p, h));
                accumulate_half::<T>(w, _mm256_shuffle_epi8(half, pick), h, &x, &mut f);
            }
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

/// A lattice or ternary super-block unpacked for the integer dot: signed
/// weights of each half interleaved as the activations ([`interleave4`]),
/// each half's i16 group scales in the lanes that layout gives them, `d`.
/// Prefill unpacks a row once into a buffer of these and runs every token
/// group of the tile over it; decode unpacks each block as it streams by.
#[derive(Clone, Copy)]
struct Unpacked {
    w: [[__m256i; 4]; 2],
    scales: [__m256i; 2],
    d: f32,
}

impl Unpacked {
    #[inline(always)]
    unsafe fn of<K: Unpack>(p: *const u8) -> Self {
        unsafe {
            let n = K::unpack(p);
            let pick = load_pick(&Q6K_PICK);
            Unpacked {
                w: [
                    interleave4([n.q[0], n.q[1], n.q[2], n.q[3]]),
                    interleave4([n.q[4], n.q[5], n.q[6], n.q[7]]),
                ],
                // Each half's eight group scales in both 128-bit lanes,
                // picked as for Q6_K.
                scales: [
                    _mm256_shuffle_epi8(_mm256_permute2x128_si256::<0x00>(n.sc, n.sc), pick),
                    _mm256_shuffle_epi8(_mm256_permute2x128_si256::<0x11>(n.sc, n.sc), pick),
                ],
                d: n.d,
            }
        }
    }

    /// Adds this block dotted with each `x[t]` to `acc[t]`.
    #[inline(always)]
    unsafe fn accumulate<const T: usize>(&self, x: [Act; T], acc: &mut [__m256; T]) {
        unsafe {
            let mut f = [_mm256_setzero_ps(); T];
            for h in 0..2 {
                accumulate_half_signed::<T>(self.w[h], self.scales[h], h, &x, &mut f);
            }
            for t in 0..T {
                acc[t] = _mm256_fmadd_ps(f[t], _mm256_set1_ps(self.d), acc[t]);
            }
        }
    }
}

/// A [`Unpack`] type as a streamed [`SuperBlock`] (single tokens).
struct Lattice<K>(std::marker::PhantomData<K>);

impl<K: Unpack> SuperBlock for Lattice<K> {
    const BYTES: usize = K::TY.block_bytes();

    #[inline(always)]
    unsafe fn accumulate<const T: usize>(p: *const u8, x: [Act; T], acc: &mut [__m256; T]) {
        unsafe { Unpacked::of::<K>(p).accumulate::<T>(x, acc) }
    }
}

/// The four quarters (blocks) of half `h` of the Q6_K super-block at `p`,
/// as unsigned 6-bit values (q + 32).
#[inline(always)]
unsafe fn q6k_quarters(p: *const u8, h: usize) -> [__m256i; 4] {
    unsafe {
        let (m4, m2) = (_mm256_set1_epi8(0x0f), _mm256_set1_epi8(0x30));
        let ql0 = _mm256_loadu_si256(p.add(64 * h) as *const __m256i);
        let ql1 = _mm256_loadu_si256(p.add(64 * h + 32) as *const __m256i);
        let qh = _mm256_loadu_si256(p.add(128 + 32 * h) as *const __m256i);
        [
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
        ]
    }
}

/// Super-block `b` of each token's activations (every row holds more
/// than `b` blocks).
#[inline(always)]
unsafe fn acts_at<const T: usize>(x: &[Q8x256Row; T], b: usize) -> [Act; T] {
    unsafe {
        std::array::from_fn(|t| Act {
            qs: x[t].qs.as_ptr().add(256 * b),
            d: x[t].d.get_unchecked(b).as_ptr(),
            bsums: x[t].bsums.get_unchecked(b).as_ptr(),
            dsum: x[t].dsum.get_unchecked(b).as_ptr(),
        })
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
            let xb = acts_at(&x, b);
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

/// The tile loop of Q4_K and Q6_K: groups of `TB` tokens (4 for AVX2's 16
/// registers), then single tokens two rows at a time. (AVX-512 runs the
/// VNNI kernels of avx512_k for these types instead.)
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

thread_local! {
    /// Per-thread buffer of one weight row's unpacked super-blocks; grows
    /// to the longest row seen, then is reused.
    static UNPACKED_ROW: std::cell::Cell<Vec<Unpacked>> = const { std::cell::Cell::new(Vec::new()) };
}

/// An unpacked row against `T` tokens, with the arithmetic of
/// [`rows_x_tokens`] (so a token's result does not depend on its group).
#[inline(always)]
unsafe fn unpacked_x_tokens<const T: usize>(row: &[Unpacked], x: [Q8x256Row; T]) -> [f32; T] {
    unsafe {
        let mut acc = [_mm256_setzero_ps(); T];
        for (b, u) in row.iter().enumerate() {
            u.accumulate::<T>(acts_at(&x, b), &mut acc);
        }
        acc.map(|a| hsum_ps(a))
    }
}

/// [`tile_body`] for the [`Unpack`] types: with several tokens, each row
/// is unpacked once and every token group reads the unpacked form (the
/// unpacking costs about as much as a few tokens' dots); a single token
/// streams the rows as the other types do.
#[inline(always)]
unsafe fn tile_body_unpacked<K: Unpack, const TB: usize>(
    w: &WeightMatrix,
    rows: Range<usize>,
    x: &QuantizedActs,
    toks: Range<usize>,
    out: &OutView,
) {
    unsafe {
        let nb = w.cols / 256;
        if toks.len() < 2 {
            // One row at a time: two rows' unpacked blocks (ten registers
            // each) would not fit the sixteen of AVX2.
            for t in toks {
                let xs = [x.q256_row(t)];
                for j in rows.clone() {
                    let p = w.row(j).as_ptr();
                    let d = rows_x_tokens::<Lattice<K>, 1, 1>([p], xs, nb, 2 * w.row_bytes());
                    out.set(t, j, d[0][0]);
                }
            }
            return;
        }
        let mut buf = UNPACKED_ROW.take();
        if buf.len() < nb {
            // SAFETY: plain vector and float data; every entry read is written first.
            buf.resize(nb, std::mem::zeroed());
        }
        let row = &mut buf[..nb];
        for j in rows {
            let p = w.row(j).as_ptr();
            for (b, u) in row.iter_mut().enumerate() {
                *u = Unpacked::of::<K>(p.add(b * K::TY.block_bytes()));
            }
            let mut t = toks.start;
            while t + TB <= toks.end {
                let xs: [Q8x256Row; TB] = std::array::from_fn(|u| x.q256_row(t + u));
                for (u, v) in unpacked_x_tokens::<TB>(row, xs).into_iter().enumerate() {
                    out.set(t + u, j, v);
                }
                t += TB;
            }
            for t in t..toks.end {
                out.set(t, j, unpacked_x_tokens::<1>(row, [x.q256_row(t)])[0]);
            }
        }
        UNPACKED_ROW.set(buf);
    }
}

#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn tile_unpacked<K: Unpack>(
    w: &WeightMatrix,
    rows: Range<usize>,
    x: &QuantizedActs,
    toks: Range<usize>,
    out: &OutView,
) {
    unsafe { tile_body_unpacked::<K, 4>(w, rows, x, toks, out) }
}

#[target_feature(enable = "avx2,fma,f16c,avx512f,avx512bw,avx512vl")]
unsafe fn tile_unpacked_wide<K: Unpack>(
    w: &WeightMatrix,
    rows: Range<usize>,
    x: &QuantizedActs,
    toks: Range<usize>,
    out: &OutView,
) {
    unsafe { tile_body_unpacked::<K, 8>(w, rows, x, toks, out) }
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

macro_rules! entry {
    ($name:ident, $tile:expr) => {
        avx2_entry!($name, $tile);
    };
    ($name:ident, $wide:ident, $tile:expr, $tile_wide:expr) => {
        entry!($name, $tile);

        pub(in super::super) fn $wide(
            w: &WeightMatrix,
            rows: Range<usize>,
            x: &QuantizedActs,
            toks: Range<usize>,
            out: &OutView,
        ) {
            // SAFETY: returned only for the Avx512Vnni path (checked by matmul),
            // whose features include AVX-512 F/BW/VL.
            unsafe { $tile_wide(w, rows, x, toks, out) }
        }
    };
}

// AVX-512 has its own VNNI kernels for these (avx512_k).
entry!(tile_q4_k, tile::<Q4K>);
entry!(tile_q6_k, tile::<Q6K>);
entry!(
    tile_iq4_xs,
    tile_iq4_xs_wide,
    tile_unpacked::<lu::Iq4Xs>,
    tile_unpacked_wide::<lu::Iq4Xs>
);
entry!(
    tile_tq1_0,
    tile_tq1_0_wide,
    tile_unpacked::<lu::Tq1_0>,
    tile_unpacked_wide::<lu::Tq1_0>
);
entry!(
    tile_tq2_0,
    tile_tq2_0_wide,
    tile_unpacked::<lu::Tq2_0>,
    tile_unpacked_wide::<lu::Tq2_0>
);
entry!(
    tile_iq2_xxs,
    tile_iq2_xxs_wide,
    tile_unpacked::<lu::Iq2Xxs>,
    tile_unpacked_wide::<lu::Iq2Xxs>
);
entry!(
    tile_iq2_xs,
    tile_iq2_xs_wide,
    tile_unpacked::<lu::Iq2Xs>,
    tile_unpacked_wide::<lu::Iq2Xs>
);
entry!(
    tile_iq2_s,
    tile_iq2_s_wide,
    tile_unpacked::<lu::Iq2S>,
    tile_unpacked_wide::<lu::Iq2S>
);
entry!(
    tile_iq3_xxs,
    tile_iq3_xxs_wide,
    tile_unpacked::<lu::Iq3Xxs>,
    tile_unpacked_wide::<lu::Iq3Xxs>
);
entry!(
    tile_iq3_s,
    tile_iq3_s_wide,
    tile_unpacked::<lu::Iq3S>,
    tile_unpacked_wide::<lu::Iq3S>
);
entry!(
    tile_iq1_s,
    tile_iq1_s_wide,
    tile_unpacked::<lu::Iq1S>,
    tile_unpacked_wide::<lu::Iq1S>
);
entry!(
    tile_iq1_m,
    tile_iq1_m_wide,
    tile_unpacked::<lu::Iq1M>,
    tile_unpacked_wide::<lu::Iq1M>
);

/// The AVX-512 entry points of the unpacked types run these bodies with
/// 8-token groups; no AVX-512 CPU is at hand where most of this code is
/// written, so the 8-token form is checked here compiled for AVX2 (same
/// arithmetic, fewer registers) against the 4-token form, bit for bit.
/// (Q4_K and Q6_K have their own AVX-512 kernels, checked by
/// tests/avx512_emulated.rs.)
#[cfg(test)]
mod eight_token_groups {
    use super::*;
    use crate::exec::cpu::simd::SimdPath;
    use crate::quant::GgmlType;
    use crate::synth::{random_data, SynthRng, Values};

    #[target_feature(enable = "avx2,fma,f16c")]
    unsafe fn unpacked8<K: Unpack>(
        w: &WeightMatrix,
        r: Range<usize>,
        x: &QuantizedActs,
        t: Range<usize>,
        o: &OutView,
    ) {
        unsafe { tile_body_unpacked::<K, 8>(w, r, x, t, o) }
    }

    type Raw = unsafe fn(&WeightMatrix, Range<usize>, &QuantizedActs, Range<usize>, &OutView);

    fn same_bits(ty: GgmlType, four: Raw, eight: Raw) {
        let (rows, cols) = (19, 768);
        let mut rng = SynthRng::new(ty as u64 + 3);
        let w = random_data(&mut rng, ty, rows * cols, Values::normal(0.0, 0.05)).unwrap();
        let w = WeightMatrix::new(ty, &w, rows, cols);
        for t in [2, 9, 21] {
            let x = rng.normal_vec(t * cols, 0.0, 1.0);
            let mut acts = QuantizedActs::new();
            acts.prepare_with(SimdPath::Avx2, &x, t, cols, &[ty])
                .unwrap();
            let run = |k: Raw| {
                let mut out = vec![f32::NAN; t * rows];
                let view = OutView::new(&mut out, rows, 0);
                // SAFETY: the test runs only where AVX2, FMA and F16C are present.
                unsafe { k(&w, 0..rows, &acts, 0..t, &view) };
                out
            };
            let (a, b) = (run(four), run(eight));
            assert!(a.iter().all(|v| v.is_finite()), "{ty:?} T={t}");
            let same = a.iter().zip(&b).all(|(p, q)| p.to_bits() == q.to_bits());
            assert!(same, "{ty:?} T={t}: 8-token groups differ from 4");
        }
    }

    #[test]
    fn eight_token_groups_give_the_four_token_bits() {
        if !SimdPath::Avx2.is_available() {
            return;
        }
        same_bits(
            GgmlType::IQ4_XS,
            tile_unpacked::<lu::Iq4Xs>,
            unpacked8::<lu::Iq4Xs>,
        );
        same_bits(
            GgmlType::TQ1_0,
            tile_unpacked::<lu::Tq1_0>,
            unpacked8::<lu::Tq1_0>,
        );
        same_bits(
            GgmlType::TQ2_0,
            tile_unpacked::<lu::Tq2_0>,
            unpacked8::<lu::Tq2_0>,
        );
        same_bits(
            GgmlType::IQ2_XXS,
            tile_unpacked::<lu::Iq2Xxs>,
            unpacked8::<lu::Iq2Xxs>,
        );
        same_bits(
            GgmlType::IQ2_XS,
            tile_unpacked::<lu::Iq2Xs>,
            unpacked8::<lu::Iq2Xs>,
        );
        same_bits(
            GgmlType::IQ2_S,
            tile_unpacked::<lu::Iq2S>,
            unpacked8::<lu::Iq2S>,
        );
        same_bits(
            GgmlType::IQ3_XXS,
            tile_unpacked::<lu::Iq3Xxs>,
            unpacked8::<lu::Iq3Xxs>,
        );
        same_bits(
            GgmlType::IQ3_S,
            tile_unpacked::<lu::Iq3S>,
            unpacked8::<lu::Iq3S>,
        );
        same_bits(
            GgmlType::IQ1_S,
            tile_unpacked::<lu::Iq1S>,
            unpacked8::<lu::Iq1S>,
        );
        same_bits(
            GgmlType::IQ1_M,
            tile_unpacked::<lu::Iq1M>,
            unpacked8::<lu::Iq1M>,
        );
    }
}
