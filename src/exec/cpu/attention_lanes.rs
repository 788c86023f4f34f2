//! Attention of a tile of query rows at once, rows in the lanes of the
//! vectors: the heads of one kv head for several tokens of one sequence
//! that see the same first key.
//!
//! Each key chunk is converted to f32 once per tile instead of once per
//! token, and both products keep their accumulators in registers: the
//! scores as `q_rows(d) × broadcast k_j(d)`, the weighted values as
//! `p_rows(j) × broadcast v_j(d)`. A lane's arithmetic is one row's, in the
//! per-token kernel's order: a score is eight fused multiply-add chains
//! summed as an eight-lane horizontal reduction does (or [`dot`]'s order
//! where that kernel used it), the softmax runs over the same chunks (from
//! the row's first key, cut at pages and [`CHUNK`]) in key order, and keys
//! beyond a row's own position weigh exactly 0. So a token's output is the
//! same bits alone, in any tile, and as before tiles.

use half::f16;

use super::attention::{AttentionShape, TokenPlaces, CHUNK, MAX_HEAD_DIM};
use super::kv_cache::{KvCache, KvType};
use super::math::{dot, exp};
use super::simd::SimdPath;

/// Most rows (tokens × heads) of one tile.
pub(super) const MAX_ROWS: usize = 64;
/// Lanes of one vector (AVX2's f32 width; the portable loops use the same
/// layout).
const LANES: usize = 8;

/// One tile: a kv head's `heads` query heads for tokens of one sequence
/// whose visible keys all start at `lo`.
pub(super) struct Tile<'a> {
    pub seq: i32,
    pub lo: usize,
    /// Each token's position: its last visible key (checked
    /// non-negative before any task ran).
    pub positions: &'a [i32],
    pub kv_head: usize,
    pub heads: usize,
}

thread_local! {
    /// The tile's working set (q transposed, scores, output accumulators,
    /// a chunk's keys and values as f32); per thread, so a task neither
    /// allocates nor zeroes it.
    static SCRATCH: std::cell::Cell<Vec<f32>> = const { std::cell::Cell::new(Vec::new()) };
}

/// What every tile of a step reads besides its queries: the path, the
/// layer's cache, the step's token places and the attention's shape.
#[derive(Clone, Copy)]
pub(super) struct TileSource<'a> {
    pub path: SimdPath,
    pub kv: &'a KvCache,
    pub layer: usize,
    pub places: &'a TokenPlaces<'a>,
    pub shape: &'a AttentionShape,
}

/// `outs[i][h*hd..]` = attention of `qs[i][h*hd..]` (token `i`, head `h`
/// of the tile's kv head) over its sequence's keys `lo..=positions[i]`.
pub(super) fn attend_tile(src: &TileSource, tile: &Tile, qs: &[&[f32]], outs: &mut [&mut [f32]]) {
    #[cfg(target_arch = "x86_64")]
    if src.path != SimdPath::Portable {
        // SAFETY: every non-portable path implies AVX2, FMA and F16C.
        return unsafe { attend_tile_avx2(src, tile, qs, outs) };
    }
    attend_tile_body(src, tile, qs, outs)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn attend_tile_avx2(src: &TileSource, tile: &Tile, qs: &[&[f32]], outs: &mut [&mut [f32]]) {
    attend_tile_body(src, tile, qs, outs)
}

/// The scratch's parts, `rw` lanes wide.
struct Parts<'a> {
    /// `qt[d * rw + r]`: row `r`'s q (rotated like the keys, if they are).
    qt: &'a mut [f32],
    /// `s[j * rw + r]`: row `r`'s score, then weight, of the chunk's key `j`.
    s: &'a mut [f32],
    /// `ot[d * rw + r]`: row `r`'s weighted sum of values so far.
    ot: &'a mut [f32],
    k: &'a mut [f32],
    v: &'a mut [f32],
}

#[inline(always)]
fn attend_tile_body(src: &TileSource, tile: &Tile, qs: &[&[f32]], outs: &mut [&mut [f32]]) {
    let TileSource {
        path,
        kv,
        layer,
        places,
        shape,
    } = *src;
    let (hd, ps, row) = (shape.head_dim, kv.page_size(), kv.row_len());
    let rows = tile.positions.len() * tile.heads;
    let rw = rows.div_ceil(LANES) * LANES;
    let mut buf = SCRATCH.take();
    let need = 2 * MAX_HEAD_DIM * MAX_ROWS + CHUNK * MAX_ROWS + 2 * CHUNK * MAX_HEAD_DIM;
    if buf.len() < need {
        buf.resize(need, 0.0);
    }
    let (qt, rest) = buf.split_at_mut(hd * rw);
    let (ot, rest) = rest.split_at_mut(hd * rw);
    let (s, rest) = rest.split_at_mut(CHUNK * rw);
    let (k, rest) = rest.split_at_mut(CHUNK * hd);
    let v = &mut rest[..CHUNK * hd];
    let p = Parts { qt, s, ot, k, v };
    p.qt.fill(0.0);
    p.ot.fill(0.0);
    let mut qrow = [0f32; MAX_HEAD_DIM];
    for (i, q) in qs.iter().enumerate() {
        for h in 0..tile.heads {
            let r = i * tile.heads + h;
            let qr = &mut qrow[..hd];
            qr.copy_from_slice(&q[h * hd..(h + 1) * hd]);
            // Keys stored rotated meet q rotated alike (the dot is unchanged).
            if let Some(n) = kv.key_rotation() {
                super::hadamard::rotate(qr, n);
            }
            for (d, &x) in qr.iter().enumerate() {
                p.qt[d * rw + r] = x;
            }
        }
    }
    // Per lane: last visible position, running max and sum. Padding lanes
    // see every key (their q is 0; they are never written out).
    let his = || tile.positions.iter().map(|&p| p as usize);
    let top = his().max().unwrap_or(tile.lo);
    let mut hi = [top; MAX_ROWS];
    for (i, h) in his().enumerate() {
        hi[i * tile.heads..(i + 1) * tile.heads].fill(h);
    }
    let low = his().min().unwrap_or(tile.lo);
    let mut max = [f32::NEG_INFINITY; MAX_ROWS];
    let mut sum = [0f32; MAX_ROWS];
    let mut corr = [0f32; MAX_ROWS];
    let round_weights = kv.kv_types().v == KvType::F16;
    let mut pos = tile.lo;
    while pos <= top {
        // Checked before any task ran: the page exists.
        let page = places.page_table[tile.seq as usize * places.pages_per_seq + pos / ps] as usize;
        let len = (ps - pos % ps).min(top + 1 - pos).min(CHUNK);
        let keys = kv.k_run(layer, page, pos % ps, len);
        let values = kv.v_run(layer, page, pos % ps, len);
        for j in 0..len {
            let at = j * row + tile.kv_head * hd;
            keys.to_f32(path, at, &mut p.k[j * hd..(j + 1) * hd]);
            values.to_f32(path, at, &mut p.v[j * hd..(j + 1) * hd]);
        }
        // The portable path scored every key with `dot` (as the per-token
        // kernel did there); the others eight keys at a time.
        let every = path == SimdPath::Portable || !hd.is_multiple_of(8);
        if !every {
            scores(path, p.qt, &p.k[..len * hd], hd, rw, shape.scale, p.s);
        }
        if every || pos + len - 1 > low || !len.is_multiple_of(8) {
            let k = &p.k[..len * hd];
            tail_scores(p.qt, k, hd, rw, shape.scale, p.s, pos, &hi[..rows], every);
        }
        let s = &mut p.s[..len * rw];
        if let Some(cap) = shape.softcap {
            s.iter_mut()
                .for_each(|x| *x = super::math::softcap(*x, cap));
        }
        // Rows whose last key falls in this chunk see only part of it.
        let partial = pos + len - 1 > low;
        if partial {
            for (j, sj) in s.chunks_exact_mut(rw).enumerate() {
                for (x, &h) in sj.iter_mut().zip(&hi[..rw]) {
                    if pos + j > h {
                        *x = f32::NEG_INFINITY;
                    }
                }
            }
        }
        let mut m = [0f32; MAX_ROWS];
        for l in (0..rw).step_by(LANES) {
            let g = lane_fold(s, rw, l, &max[l..l + LANES], |g, x| {
                // `f32::max` without its NaN rule (a compare and a blend
                // more): the running max starts at -inf and is never NaN,
                // so either way a NaN score leaves it as it was.
                if x > g {
                    x
                } else {
                    g
                }
            });
            m[l..l + LANES].copy_from_slice(&g);
        }
        for ((c, old), &m) in corr[..rw].iter_mut().zip(&mut max[..rw]).zip(&m[..rw]) {
            *c = exp(*old - m);
            *old = m;
        }
        for sj in s.chunks_exact_mut(rw) {
            for (x, &m) in sj.iter_mut().zip(&max[..rw]) {
                *x = exp(*x - m);
            }
        }
        if partial {
            // Masked keys weigh exactly 0 (`exp` clamps, so it would not).
            for (j, sj) in s.chunks_exact_mut(rw).enumerate() {
                for (x, &h) in sj.iter_mut().zip(&hi[..rw]) {
                    if pos + j > h {
                        *x = 0.0;
                    }
                }
            }
        }
        // Sums in key order, then folded into the running sum.
        let mut chunk = [0f32; MAX_ROWS];
        for l in (0..rw).step_by(LANES) {
            let g = lane_fold(s, rw, l, &[0.0; LANES], |c, x| c + x);
            chunk[l..l + LANES].copy_from_slice(&g);
        }
        for ((t, &c), &x) in sum[..rw].iter_mut().zip(&corr[..rw]).zip(&chunk[..rw]) {
            *t = *t * c + x;
        }
        if round_weights {
            // ggml multiplies an f16 V with the softmax weights rounded to
            // f16; rounding them relative to the sum so far does the same
            // (exactly so while the keys fit one chunk).
            round_to_f16(path, s, &sum[..rw]);
        }
        weighted_values(path, p.ot, s, &p.v[..len * hd], hd, rw, &corr[..rw]);
        pos += len;
    }
    for (i, out) in outs.iter_mut().enumerate() {
        for h in 0..tile.heads {
            let r = i * tile.heads + h;
            let inv = if sum[r] > 0.0 { 1.0 / sum[r] } else { 0.0 };
            for (d, o) in out[h * hd..(h + 1) * hd].iter_mut().enumerate() {
                *o = p.ot[d * rw + r] * inv;
            }
        }
        // Values stored rotated sum to the rotated output: turn it back.
        if let Some(n) = kv.value_rotation() {
            super::hadamard::rotate(&mut out[..tile.heads * hd], n);
        }
    }
    SCRATCH.set(buf);
}

/// Lanes `l..l + 8` of `s` (rows of `rw`) folded over the rows in order
/// from `init`: eight running values in a register, where a running
/// value in memory would wait for its store at every key.
#[inline(always)]
fn lane_fold(
    s: &[f32],
    rw: usize,
    l: usize,
    init: &[f32],
    f: impl Fn(f32, f32) -> f32,
) -> [f32; LANES] {
    let mut g = [0f32; LANES];
    g.copy_from_slice(init);
    for sj in s.chunks_exact(rw) {
        for (g, &x) in g.iter_mut().zip(&sj[l..l + LANES]) {
            *g = f(*g, x);
        }
    }
    g
}

/// `s[j * rw + r] = scale · Σ_d qt[d * rw + r] · k[j * hd + d]`: eight
/// fused multiply-add chains per lane, chain `c` over `d ≡ c (mod 8)` in
/// order, summed `((x0+x1)+(x2+x3)) + ((x4+x5)+(x6+x7))` (the order of an
/// eight-lane dot reduced by horizontal adds, as the per-token kernel did).
#[inline(always)]
fn scores(path: SimdPath, qt: &[f32], k: &[f32], hd: usize, rw: usize, scale: f32, s: &mut [f32]) {
    #[cfg(target_arch = "x86_64")]
    if path != SimdPath::Portable {
        // SAFETY: non-portable paths imply AVX2 and FMA (and this runs
        // inside `attend_tile_avx2`); `qt` holds hd × rw, `s` len × rw.
        return unsafe { lanes_avx2::scores(qt, k, hd, rw, scale, s) };
    }
    let _ = path;
    let len = k.len() / hd;
    let mut part = [[0f32; MAX_ROWS]; 8];
    for j in 0..len {
        for (c, pc) in part.iter_mut().enumerate() {
            let pc = &mut pc[..rw];
            pc.fill(0.0);
            for d in (c..hd).step_by(8) {
                let kd = k[j * hd + d];
                for (x, &q) in pc.iter_mut().zip(&qt[d * rw..(d + 1) * rw]) {
                    *x = q.mul_add(kd, *x);
                }
            }
        }
        for (r, o) in s[j * rw..(j + 1) * rw].iter_mut().enumerate() {
            let x = |c: usize| part[c][r];
            *o = scale * (((x(0) + x(1)) + (x(2) + x(3))) + ((x(4) + x(5)) + (x(6) + x(7))));
        }
    }
}

/// The scores that the per-token kernel took from [`dot`] rather than
/// from eight keys at once: a row's last `len % 8` keys of a chunk cut at
/// its own position, or with `every`, all (the portable path, or a
/// `head_dim` not a multiple of 8). Scored the same way here, a row keeps
/// the bits it had before tiles.
#[inline(always)]
#[allow(clippy::too_many_arguments)]
fn tail_scores(
    qt: &[f32],
    k: &[f32],
    hd: usize,
    rw: usize,
    scale: f32,
    s: &mut [f32],
    pos: usize,
    hi: &[usize],
    every: bool,
) {
    let len = k.len() / hd;
    let mut q = [0f32; MAX_HEAD_DIM];
    for (r, &h) in hi.iter().enumerate() {
        if h < pos {
            continue;
        }
        let len_r = len.min(h + 1 - pos);
        let from = if every { 0 } else { len_r / 8 * 8 };
        if from == len_r {
            continue;
        }
        for (d, x) in q[..hd].iter_mut().enumerate() {
            *x = qt[d * rw + r];
        }
        for j in from..len_r {
            s[j * rw + r] = scale * dot(&q[..hd], &k[j * hd..(j + 1) * hd]);
        }
    }
}

/// `ot[d * rw + r] = ot[d * rw + r] · corr[r] + Σ_j p[j * rw + r] ·
/// v[j * hd + d]`, each term a fused multiply-add in key order.
#[inline(always)]
fn weighted_values(
    path: SimdPath,
    ot: &mut [f32],
    p: &[f32],
    v: &[f32],
    hd: usize,
    rw: usize,
    corr: &[f32],
) {
    #[cfg(target_arch = "x86_64")]
    if path != SimdPath::Portable {
        // SAFETY: as in `scores`.
        return unsafe { lanes_avx2::weighted_values(ot, p, v, hd, rw, corr) };
    }
    let _ = path;
    let len = v.len() / hd;
    for d in 0..hd {
        let od = &mut ot[d * rw..(d + 1) * rw];
        od.iter_mut().zip(corr).for_each(|(a, &c)| *a *= c);
        for j in 0..len {
            let x = v[j * hd + d];
            for (a, &w) in od.iter_mut().zip(&p[j * rw..(j + 1) * rw]) {
                *a = w.mul_add(x, *a);
            }
        }
    }
}

/// `w = f16(w / total) · total`, each lane with its row's total: through
/// F16C where the path has it (the same round-to-nearest-even as `half`'s
/// scalar conversion, so the same bits).
#[inline(always)]
fn round_to_f16(path: SimdPath, w: &mut [f32], total: &[f32]) {
    #[cfg(target_arch = "x86_64")]
    if path != SimdPath::Portable {
        // SAFETY: non-portable paths imply AVX2 and F16C; rows of
        // total.len(), a multiple of 8.
        return unsafe { lanes_avx2::round_to_f16(w, total) };
    }
    let _ = path;
    for wj in w.chunks_exact_mut(total.len()) {
        for (x, &t) in wj.iter_mut().zip(total) {
            *x = f16::from_f32(*x / t).to_f32() * t;
        }
    }
}

#[cfg(target_arch = "x86_64")]
mod lanes_avx2 {
    use std::arch::x86_64::*;

    /// Keys per block of the score product and value dims per block of the
    /// weighted sum, against two row vectors: 12 accumulators.
    const KEYS: usize = 6;
    const DIMS: usize = 6;

    /// `body` for every block of up to `most` of `n` (keys or dims, from
    /// `i`, `ib` of them) by one or two of `nv` row vectors (from `v`, `vb`
    /// of them).
    macro_rules! each_block {
        ($n:expr, $most:expr, $nv:expr, |$i:ident, $ib:ident, $v:ident, $vb:ident| $body:expr) => {{
            let (n, nv) = ($n, $nv);
            let mut $i = 0;
            while $i < n {
                let $ib = (n - $i).min($most);
                let mut $v = 0;
                while $v < nv {
                    let $vb = (nv - $v).min(2);
                    $body;
                    $v += $vb;
                }
                $i += $ib;
            }
        }};
    }

    /// `f::<n, vb>(args)` for a block of `n` (1..=6) keys or dims by `vb`
    /// (1 or 2) row vectors: the sizes as constants, so the accumulators
    /// stay in registers.
    macro_rules! by_block {
        ($f:ident, $n:expr, $vb:expr, ($($a:expr),*)) => {
            match ($n, $vb) {
                (6, 2) => $f::<6, 2>($($a),*),
                (5, 2) => $f::<5, 2>($($a),*),
                (4, 2) => $f::<4, 2>($($a),*),
                (3, 2) => $f::<3, 2>($($a),*),
                (2, 2) => $f::<2, 2>($($a),*),
                (1, 2) => $f::<1, 2>($($a),*),
                (6, _) => $f::<6, 1>($($a),*),
                (5, _) => $f::<5, 1>($($a),*),
                (4, _) => $f::<4, 1>($($a),*),
                (3, _) => $f::<3, 1>($($a),*),
                (2, _) => $f::<2, 1>($($a),*),
                _ => $f::<1, 1>($($a),*),
            }
        };
    }

    #[target_feature(enable = "avx2,fma")]
    pub(super) unsafe fn scores(
        qt: &[f32],
        k: &[f32],
        hd: usize,
        rw: usize,
        scale: f32,
        s: &mut [f32],
    ) {
        let nv = rw / 8;
        // SAFETY: each block lies inside qt, k and s (callers' shapes).
        each_block!(k.len() / hd, KEYS, nv, |j, kb, v, vb| unsafe {
            by_block!(score_block, kb, vb, (qt, k, hd, rw, scale, s, j, v))
        });
    }

    /// Chain `c` of [`super::scores`] for a block of keys and row vectors.
    #[inline(always)]
    #[allow(clippy::too_many_arguments)]
    unsafe fn chain<const KB: usize, const VB: usize>(
        qt: &[f32],
        k: &[f32],
        hd: usize,
        rw: usize,
        j0: usize,
        v0: usize,
        c: usize,
    ) -> [[__m256; VB]; KB] {
        unsafe {
            let mut acc = [[_mm256_setzero_ps(); VB]; KB];
            let (qp, kp) = (qt.as_ptr(), k.as_ptr());
            let mut d = c;
            while d < hd {
                let mut q = [_mm256_setzero_ps(); VB];
                for (b, qv) in q.iter_mut().enumerate() {
                    *qv = _mm256_loadu_ps(qp.add(d * rw + (v0 + b) * 8));
                }
                for (kk, a) in acc.iter_mut().enumerate() {
                    let x = _mm256_set1_ps(*kp.add((j0 + kk) * hd + d));
                    for (b, ab) in a.iter_mut().enumerate() {
                        *ab = _mm256_fmadd_ps(q[b], x, *ab);
                    }
                }
                d += 8;
            }
            acc
        }
    }

    /// `a + b` lane by lane, block by block.
    #[inline(always)]
    unsafe fn add<const KB: usize, const VB: usize>(
        mut a: [[__m256; VB]; KB],
        b: [[__m256; VB]; KB],
    ) -> [[__m256; VB]; KB] {
        unsafe {
            for (x, y) in a.iter_mut().zip(&b) {
                for (x, y) in x.iter_mut().zip(y) {
                    *x = _mm256_add_ps(*x, *y);
                }
            }
            a
        }
    }

    #[inline(always)]
    #[allow(clippy::too_many_arguments)]
    unsafe fn score_block<const KB: usize, const VB: usize>(
        qt: &[f32],
        k: &[f32],
        hd: usize,
        rw: usize,
        scale: f32,
        s: &mut [f32],
        j0: usize,
        v0: usize,
    ) {
        unsafe {
            // A macro, not a closure: a closure would not inherit the
            // caller's target features.
            macro_rules! ch {
                ($c:expr) => {
                    chain::<KB, VB>(qt, k, hd, rw, j0, v0, $c)
                };
            }
            let x01 = add(ch!(0), ch!(1));
            let x0123 = add(x01, add(ch!(2), ch!(3)));
            let x45 = add(ch!(4), ch!(5));
            let acc = add(x0123, add(x45, add(ch!(6), ch!(7))));
            let sc = _mm256_set1_ps(scale);
            let sp = s.as_mut_ptr();
            for (kk, a) in acc.iter().enumerate() {
                for (b, ab) in a.iter().enumerate() {
                    _mm256_storeu_ps(
                        sp.add((j0 + kk) * rw + (v0 + b) * 8),
                        _mm256_mul_ps(sc, *ab),
                    );
                }
            }
        }
    }

    #[target_feature(enable = "avx2,fma")]
    pub(super) unsafe fn weighted_values(
        ot: &mut [f32],
        p: &[f32],
        v: &[f32],
        hd: usize,
        rw: usize,
        corr: &[f32],
    ) {
        let nv = rw / 8;
        // SAFETY: each block lies inside ot, p, v and corr.
        each_block!(hd, DIMS, nv, |d, db, r, vb| unsafe {
            by_block!(value_block, db, vb, (ot, p, v, hd, rw, corr, d, r))
        });
    }

    #[inline(always)]
    #[allow(clippy::too_many_arguments)]
    unsafe fn value_block<const DB: usize, const VB: usize>(
        ot: &mut [f32],
        p: &[f32],
        v: &[f32],
        hd: usize,
        rw: usize,
        corr: &[f32],
        d0: usize,
        v0: usize,
    ) {
        unsafe {
            let len = v.len() / hd;
            let op = ot.as_mut_ptr();
            let (pp, vp) = (p.as_ptr(), v.as_ptr());
            let mut acc = [[_mm256_setzero_ps(); VB]; DB];
            for (dd, a) in acc.iter_mut().enumerate() {
                for (b, ab) in a.iter_mut().enumerate() {
                    let c = _mm256_loadu_ps(corr.as_ptr().add((v0 + b) * 8));
                    let o = _mm256_loadu_ps(op.add((d0 + dd) * rw + (v0 + b) * 8));
                    *ab = _mm256_mul_ps(o, c);
                }
            }
            for j in 0..len {
                let mut w = [_mm256_setzero_ps(); VB];
                for (b, wb) in w.iter_mut().enumerate() {
                    *wb = _mm256_loadu_ps(pp.add(j * rw + (v0 + b) * 8));
                }
                for (dd, a) in acc.iter_mut().enumerate() {
                    let x = _mm256_set1_ps(*vp.add(j * hd + d0 + dd));
                    for (b, ab) in a.iter_mut().enumerate() {
                        *ab = _mm256_fmadd_ps(w[b], x, *ab);
                    }
                }
            }
            for (dd, a) in acc.iter().enumerate() {
                for (b, ab) in a.iter().enumerate() {
                    _mm256_storeu_ps(op.add((d0 + dd) * rw + (v0 + b) * 8), *ab);
                }
            }
        }
    }

    #[target_feature(enable = "avx2,f16c")]
    pub(super) unsafe fn round_to_f16(w: &mut [f32], total: &[f32]) {
        let rw = total.len();
        for wj in w.chunks_exact_mut(rw) {
            for (c, t) in wj.chunks_exact_mut(8).zip(total.chunks_exact(8)) {
                // SAFETY: eight f32 in `c` and in `t`.
                unsafe {
                    let t = _mm256_loadu_ps(t.as_ptr());
                    let x = _mm256_div_ps(_mm256_loadu_ps(c.as_ptr()), t);
                    let h = _mm256_cvtps_ph::<_MM_FROUND_TO_NEAREST_INT>(x);
                    _mm256_storeu_ps(c.as_mut_ptr(), _mm256_mul_ps(_mm256_cvtph_ps(h), t));
                }
            }
        }
    }
}
