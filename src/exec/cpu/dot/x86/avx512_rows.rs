//! Sixteen weight rows in the lanes of a 512-bit register: the tile loop
//! shared by the AVX-512 VNNI kernels (32-element blocks, K-quants).
//!
//! A kernel unpacks one block of sixteen rows into registers whose i32
//! lane `r` holds four consecutive weight levels of row `r` (a 16×4
//! transpose of the blocks' bytes), so one `vpdpbusd` with four activation
//! bytes broadcast to every lane is 64 useful multiply-adds, and a lane
//! ends a block holding row `r`'s integer dot product with the token:
//! the float work (convert, `d_w · d_x`, multiply-add) is per sixteen rows
//! and no horizontal sum is needed. The rows' blocks are unpacked once per
//! call into a per-thread scratch, then every token of the call reads
//! them: eight tokens at a time, then four, then one, with the same
//! operations per (row, token) lane, so a token's result is the same bits
//! whether it ran alone or batched (tests/sched_batching.rs) and wherever
//! its row falls in a group.

// The instruction set through `isa512`: std's intrinsics here, a scalar
// model of them in tests/avx512_emulated.rs (which compiles these files
// again, so that machines without AVX-512 run their logic).
use super::isa512::*;
use std::cell::Cell;
use std::ops::Range;

use super::OutView;
use crate::exec::cpu::acts::QuantizedActs;
use crate::exec::cpu::weights::WeightMatrix;

/// Weight rows per group: one per i32 lane of a 512-bit register.
pub(super) const ROWS: usize = 16;
/// Tokens per pass over a group's unpacked blocks (one i32 and one f32
/// accumulator each: 16 registers, plus the weights' and the scales').
const TOKENS: usize = 8;

/// A 512-bit register's worth, for the per-thread scratch.
#[derive(Clone, Copy)]
#[repr(C, align(64))]
struct Lanes([u32; 16]);

/// One weight type's rows-in-lanes kernel.
pub(super) trait LaneKernel {
    /// One token's activations as the kernel reads them.
    type Tok: Copy;
    /// Bytes and elements per weight block.
    const BYTES: usize;
    const BLOCK: usize;
    /// Registers per unpacked block (of sixteen rows) in the scratch.
    const SLOTS: usize;
    /// i32 starting values per token and block (see [`LaneKernel::init`]).
    const INITS: usize;
    /// Unpacks the block at `p[r]` of each of the sixteen rows (each with
    /// `Self::BYTES` readable bytes) into `Self::SLOTS` registers at `out`.
    unsafe fn unpack(p: &[*const u8; ROWS], out: *mut __m512i);
    /// Appends token `t`'s `INITS` starting values per block to `out`
    /// (integer offsets, e.g. `−o · Σx`).
    fn init(x: &QuantizedActs, t: usize, out: &mut Vec<i32>);
    /// Token `t`'s activations, its starting values at `init`.
    fn tok(x: &QuantizedActs, t: usize, init: *const i32) -> Self::Tok;
    /// `T` tokens against `nb` unpacked blocks at `u`: lane `r` of result
    /// `t` is row `r` dotted with token `t`.
    unsafe fn dot<const T: usize>(u: *const __m512i, nb: usize, x: [Self::Tok; T]) -> [__m512; T];
}

/// The 16 bytes at `off` of each row's block, transposed: register `g`
/// lane `r` = bytes `off+4g..off+4g+4` of row `r`. Register `j` before the
/// in-lane 4×4 transpose holds rows `j, 4+j, 8+j, 12+j` in its 128-bit
/// lanes, so that after it lane `4l + i` is row `4l + i`.
#[inline(always)]
pub(super) unsafe fn transpose16x4(p: &[*const u8; ROWS], off: usize) -> [__m512i; 4] {
    unsafe {
        // Loops, not closures: a closure would not inherit the caller's
        // target features (this body is inlined, not annotated).
        let mut a = [_mm512_setzero_si512(); 4];
        for (j, v) in a.iter_mut().enumerate() {
            let ld = |r: usize| p[r].add(off) as *const __m128i;
            *v = _mm512_castsi128_si512(_mm_loadu_si128(ld(j)));
            *v = _mm512_inserti32x4::<1>(*v, _mm_loadu_si128(ld(4 + j)));
            *v = _mm512_inserti32x4::<2>(*v, _mm_loadu_si128(ld(8 + j)));
            *v = _mm512_inserti32x4::<3>(*v, _mm_loadu_si128(ld(12 + j)));
        }
        let t0 = _mm512_unpacklo_epi32(a[0], a[1]);
        let t1 = _mm512_unpackhi_epi32(a[0], a[1]);
        let t2 = _mm512_unpacklo_epi32(a[2], a[3]);
        let t3 = _mm512_unpackhi_epi32(a[2], a[3]);
        [
            _mm512_unpacklo_epi64(t0, t2),
            _mm512_unpackhi_epi64(t0, t2),
            _mm512_unpacklo_epi64(t1, t3),
            _mm512_unpackhi_epi64(t1, t3),
        ]
    }
}

/// The IEEE halves in the low 16 bits of each i32 lane, as f32.
#[inline(always)]
pub(super) unsafe fn halves_low(v: __m512i) -> __m512 {
    _mm512_cvtph_ps(_mm512_cvtepi32_epi16(v))
}

thread_local! {
    /// Per-thread scratch: a group's unpacked blocks, and the tokens'
    /// starting values. Grown to the largest call seen, then reused.
    static UNPACKED: Cell<Vec<Lanes>> = const { Cell::new(Vec::new()) };
    static INITS: Cell<Vec<i32>> = const { Cell::new(Vec::new()) };
}

/// Unpacks every block of the rows at `p` into `out`, prefetching the same
/// bytes `ahead` bytes on (the next group's rows: decode reads each weight
/// once, straight from memory).
#[inline(always)]
unsafe fn unpack_rows<K: LaneKernel>(
    p: [*const u8; ROWS],
    nb: usize,
    ahead: usize,
    out: *mut Lanes,
) {
    unsafe {
        for b in 0..nb {
            let mut pb = p;
            for q in pb.iter_mut() {
                *q = q.add(b * K::BYTES);
            }
            for q in pb {
                // Every 64th byte from the block's 64th and its last: the
                // lines it ends in (the line it starts in is where the
                // block before ended). A prefetch never faults, even past
                // the end of the weights.
                for off in (0..K::BYTES).step_by(64) {
                    let at = q.wrapping_add(ahead + (off + 63).min(K::BYTES - 1));
                    _mm_prefetch::<_MM_HINT_T0>(at as *const i8);
                }
            }
            K::unpack(&pb, out.add(b * K::SLOTS) as *mut __m512i);
        }
    }
}

/// Writes lanes `0..n` of each token's result to its output row.
#[inline(always)]
unsafe fn store<const T: usize>(f: [__m512; T], t0: usize, j: usize, n: usize, out: &OutView) {
    for (t, v) in f.iter().enumerate() {
        let mut lanes = [0f32; ROWS];
        // SAFETY: 16 writable floats.
        unsafe { _mm512_storeu_ps(lanes.as_mut_ptr(), *v) };
        // A whole group's run has a constant length: a 64-byte copy, not
        // a call to memcpy.
        if n == ROWS {
            out.set_run(t0 + t, j, &lanes);
        } else {
            out.set_run(t0 + t, j, &lanes[..n]);
        }
    }
}

/// Sixteen rows at a time; each group's tokens eight, four, then one at a
/// time. Inlined into a `#[target_feature]` entry (avx512_entry.rs).
#[inline(always)]
pub(super) unsafe fn tile<K: LaneKernel>(
    w: &WeightMatrix,
    rows: Range<usize>,
    x: &QuantizedActs,
    toks: Range<usize>,
    out: &OutView,
) {
    let nb = w.cols / K::BLOCK;
    if toks.is_empty() || rows.is_empty() || nb == 0 {
        return;
    }
    let mut init = INITS.take();
    init.clear();
    for t in toks.clone() {
        K::init(x, t, &mut init);
    }
    // Kernels without starting values get a valid pointer they never read.
    init.push(0);
    let mut unpacked = UNPACKED.take();
    if unpacked.len() < nb * K::SLOTS {
        unpacked.resize(nb * K::SLOTS, Lanes([0; 16]));
    }
    let stride = nb * K::INITS;
    // Each token's row once per call, not once per group of rows.
    let tok: Vec<K::Tok> = (0..toks.len())
        .map(|i| K::tok(x, toks.start + i, init[i * stride..].as_ptr()))
        .collect();
    let tok_at = |t: usize| tok[t - toks.start];
    let rb = w.row_bytes();
    let mut j = rows.start;
    while j < rows.end {
        let n = ROWS.min(rows.end - j);
        // Lanes past the tile's rows repeat its first row; they are not
        // stored.
        let p: [*const u8; ROWS] =
            std::array::from_fn(|r| w.row(if r < n { j + r } else { j }).as_ptr());
        let u = unpacked.as_mut_ptr();
        // SAFETY: every row holds nb blocks; the scratch holds nb * SLOTS.
        unsafe { unpack_rows::<K>(p, nb, ROWS * rb, u) };
        let u = u as *const __m512i;
        let mut t = toks.start;
        // SAFETY (the three loops): each token row holds nb blocks and
        // their scales, sums and starting values; the scratch holds the
        // group's unpacked blocks.
        while t + TOKENS <= toks.end {
            let f = unsafe { K::dot::<TOKENS>(u, nb, std::array::from_fn(|i| tok_at(t + i))) };
            unsafe { store(f, t, j, n, out) };
            t += TOKENS;
        }
        while t + 4 <= toks.end {
            let f = unsafe { K::dot::<4>(u, nb, std::array::from_fn(|i| tok_at(t + i))) };
            unsafe { store(f, t, j, n, out) };
            t += 4;
        }
        while t < toks.end {
            let f = unsafe { K::dot::<1>(u, nb, [tok_at(t)]) };
            unsafe { store(f, t, j, n, out) };
            t += 1;
        }
        j += n;
    }
    UNPACKED.set(unpacked);
    INITS.set(init);
}
