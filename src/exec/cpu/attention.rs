//! Causal self-attention over the paged KV cache, with GQA and an optional
//! sliding window, for a step of tokens from any number of sequences.
//!
//! Token `t` (sequence `seq_ids[t]`, position `p = positions[t]`) attends to
//! its own sequence's positions `lo..=p`, `lo = 0` or, with a window `w`,
//! `lo = p + 1 - w` (the last `w` positions including itself, as
//! llama.cpp's standard SWA mask and HF Mistral do). The keys of this step's
//! tokens must already be in the cache. Softmax is online (running max and
//! sum per head, in f32), over runs of keys that share a page.
//!
//! Keys and values are read from the cache's pages in their own types: f16,
//! f32 and bf16 keys a chunk at a time as f32; Q8_0 and Q4_0 keys block by
//! block against q quantized to Q8_0 ([`super::key_dot`]); values row by row
//! (block by block for block types) into the weighted sum.

use half::f16;
use rayon::prelude::*;

use super::attention_lanes::{attend_tile, Tile, TileSource, MAX_ROWS};
use super::error::KernelError;
use super::key_dot::{QueryBlocks, QK};
use super::kv_cache::{KvCache, KvRun, KvType};
use super::math::{dot, exp};
use super::simd::SimdPath;

/// The heads and scaling of one attention op.
#[derive(Debug, Clone, Copy)]
pub struct AttentionShape {
    pub n_heads: usize,
    pub n_kv_heads: usize,
    pub head_dim: usize,
    /// Multiplies q·k, usually `1/sqrt(head_dim)`.
    pub scale: f32,
    pub sliding_window: Option<usize>,
    /// Gemma 2: scaled scores become `cap·tanh(score / cap)`.
    pub softcap: Option<f32>,
}

/// Where the step's tokens are: per token, its position and sequence, and
/// the page table they are resolved through.
#[derive(Debug, Clone, Copy)]
pub struct TokenPlaces<'a> {
    pub positions: &'a [i32],
    pub seq_ids: &'a [i32],
    pub page_table: &'a [i32],
    pub pages_per_seq: usize,
}

/// `out[t, h*hd..]` = softmax(scale · q_h · Kᵀ) · V over the visible keys of
/// kv head `h / (n_heads / n_kv_heads)`. `q` and `out` are `[T, n_heads *
/// head_dim]`.
#[allow(clippy::too_many_arguments)]
pub fn attention(
    q: &[f32],
    kv: &KvCache,
    layer: usize,
    positions: &[i32],
    seq_ids: &[i32],
    page_table: &[i32],
    pages_per_seq: usize,
    n_heads: usize,
    n_kv_heads: usize,
    head_dim: usize,
    scale: f32,
    sliding_window: Option<usize>,
    out: &mut [f32],
) -> Result<(), KernelError> {
    let shape = AttentionShape {
        n_heads,
        n_kv_heads,
        head_dim,
        scale,
        sliding_window,
        softcap: None,
    };
    let places = TokenPlaces {
        positions,
        seq_ids,
        page_table,
        pages_per_seq,
    };
    attention_with(SimdPath::detect(), &shape, q, kv, layer, &places, out)
}

/// Most query heads that share one kv head processed together; larger
/// groups are split (each part re-reads the keys).
const GROUP: usize = 8;
/// Largest head_dim the stack buffers hold.
pub(super) const MAX_HEAD_DIM: usize = 256;
/// Keys scored before their values are accumulated.
pub(super) const CHUNK: usize = 32;

/// [`attention`] on an explicit path, with the arguments gathered.
pub fn attention_with(
    path: SimdPath,
    shape: &AttentionShape,
    q: &[f32],
    kv: &KvCache,
    layer: usize,
    places: &TokenPlaces,
    out: &mut [f32],
) -> Result<(), KernelError> {
    check(path, shape, q, kv, layer, places, out)?;
    let hd = shape.head_dim;
    let n_rep = shape.n_heads / shape.n_kv_heads;
    // Heads per task: a divisor of n_rep, so a task never spans kv heads.
    let group = (1..=n_rep.min(GROUP))
        .rev()
        .find(|&g| n_rep.is_multiple_of(g))
        .unwrap_or(1);
    let width = shape.n_heads * hd;
    if !matches!(kv.kv_types().k, KvType::Q8_0 | KvType::Q4_0) {
        attention_tiles(path, shape, group, q, kv, layer, places, out);
        return Ok(());
    }
    // One task per (token, run of up to GROUP heads sharing a kv head).
    let task = |(i, o): (usize, &mut [f32])| {
        let (t, h0) = (i * group / shape.n_heads, (i * group) % shape.n_heads);
        let qs = &q[t * width + h0 * hd..t * width + (h0 + group) * hd];
        let window = visible(shape, places.positions[t]);
        attend(
            path,
            kv,
            layer,
            places,
            places.seq_ids[t],
            window,
            h0 / n_rep,
            shape,
            qs,
            o,
        );
    };
    if places.positions.len() * shape.n_heads / group <= 1 {
        out.chunks_mut(group * hd).enumerate().for_each(task);
    } else {
        out.par_chunks_mut(group * hd).enumerate().for_each(task);
    }
    Ok(())
}

/// Float keys: one task per (tile of tokens, run of `group` heads sharing a
/// kv head). A tile is up to [`MAX_ROWS`] rows of consecutive tokens of one
/// sequence whose visible keys start at the same position.
#[allow(clippy::too_many_arguments)]
fn attention_tiles(
    path: SimdPath,
    shape: &AttentionShape,
    group: usize,
    q: &[f32],
    kv: &KvCache,
    layer: usize,
    places: &TokenPlaces,
    out: &mut [f32],
) {
    let (hd, n_tok) = (shape.head_dim, places.positions.len());
    let n_rep = shape.n_heads / shape.n_kv_heads;
    let groups = shape.n_heads / group;
    let per_tile = (MAX_ROWS / group).max(1);
    let width = shape.n_heads * hd;
    let lo = |t: usize| visible(shape, places.positions[t]).0;
    let mut slots: Vec<Option<&mut [f32]>> = out.chunks_mut(group * hd).map(Some).collect();
    let mut tasks = Vec::new();
    let mut t = 0;
    while t < n_tok {
        let mut e = t + 1;
        while e < n_tok
            && e - t < per_tile
            && places.seq_ids[e] == places.seq_ids[t]
            && lo(e) == lo(t)
        {
            e += 1;
        }
        for g in 0..groups {
            let outs: Vec<&mut [f32]> = (t..e)
                .map(|u| slots[u * groups + g].take().expect("each slot taken once"))
                .collect();
            tasks.push((t, e, g, outs));
        }
        t = e;
    }
    let src = TileSource {
        path,
        kv,
        layer,
        places,
        shape,
    };
    let task = |(t, e, g, mut outs): (usize, usize, usize, Vec<&mut [f32]>)| {
        let h0 = g * group;
        let qs: Vec<&[f32]> = (t..e)
            .map(|u| &q[u * width + h0 * hd..u * width + (h0 + group) * hd])
            .collect();
        let tile = Tile {
            seq: places.seq_ids[t],
            lo: lo(t),
            positions: &places.positions[t..e],
            kv_head: h0 / n_rep,
            heads: group,
        };
        attend_tile(&src, &tile, &qs, &mut outs);
    };
    if tasks.len() <= 1 {
        tasks.into_iter().for_each(task);
    } else {
        tasks.into_par_iter().for_each(task);
    }
}

/// Positions `lo..=p` visible from position `p`.
fn visible(shape: &AttentionShape, p: i32) -> (usize, usize) {
    let p = p as usize;
    let lo = shape
        .sliding_window
        .map_or(0, |w| (p + 1).saturating_sub(w));
    (lo, p)
}

#[allow(clippy::too_many_arguments)]
fn attend(
    path: SimdPath,
    kv: &KvCache,
    layer: usize,
    places: &TokenPlaces,
    seq: i32,
    (lo, hi): (usize, usize),
    kv_head: usize,
    shape: &AttentionShape,
    qs: &[f32],
    out: &mut [f32],
) {
    #[cfg(target_arch = "x86_64")]
    if path != SimdPath::Portable {
        // SAFETY: every non-portable path implies AVX2, FMA and F16C.
        return unsafe {
            attend_avx2(
                path,
                kv,
                layer,
                places,
                seq,
                (lo, hi),
                kv_head,
                shape,
                qs,
                out,
            )
        };
    }
    attend_body(
        path,
        kv,
        layer,
        places,
        seq,
        (lo, hi),
        kv_head,
        shape,
        qs,
        out,
    )
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma,f16c")]
#[allow(clippy::too_many_arguments)]
unsafe fn attend_avx2(
    path: SimdPath,
    kv: &KvCache,
    layer: usize,
    places: &TokenPlaces,
    seq: i32,
    window: (usize, usize),
    kv_head: usize,
    shape: &AttentionShape,
    qs: &[f32],
    out: &mut [f32],
) {
    attend_body(
        path, kv, layer, places, seq, window, kv_head, shape, qs, out,
    )
}

thread_local! {
    /// A chunk's keys as f32 (one conversion shared by the group's heads);
    /// per thread, so a task neither allocates nor zeroes 32 KiB.
    static KEYS: std::cell::Cell<Vec<f32>> = const { std::cell::Cell::new(Vec::new()) };
}

/// Running softmax state of the heads of one task.
struct Online {
    max: [f32; GROUP],
    sum: [f32; GROUP],
    acc: [f32; GROUP * MAX_HEAD_DIM],
}

#[inline(always)]
#[allow(clippy::too_many_arguments)]
fn attend_body(
    path: SimdPath,
    kv: &KvCache,
    layer: usize,
    places: &TokenPlaces,
    seq: i32,
    (lo, hi): (usize, usize),
    kv_head: usize,
    shape: &AttentionShape,
    qs: &[f32],
    out: &mut [f32],
) {
    let (hd, ps, row) = (shape.head_dim, kv.page_size(), kv.row_len());
    let heads = qs.len() / hd;
    let mut st = Online {
        max: [f32::NEG_INFINITY; GROUP],
        sum: [0.0; GROUP],
        acc: [0.0; GROUP * MAX_HEAD_DIM],
    };
    let mut scores = [[0f32; CHUNK]; GROUP];
    // Keys stored rotated meet q rotated alike (the dot is unchanged).
    let mut rotated = [0f32; GROUP * MAX_HEAD_DIM];
    let qs = match kv.key_rotation() {
        Some(n) => {
            let r = &mut rotated[..qs.len()];
            r.copy_from_slice(qs);
            super::hadamard::rotate(r, n);
            &*r
        }
        None => qs,
    };
    let types = kv.kv_types();
    // Q8_0/Q4_0 keys are scored against q in Q8_0, quantized once here.
    let quantized_keys = matches!(types.k, KvType::Q8_0 | KvType::Q4_0);
    let q8 = quantized_keys.then(|| QueryBlocks::new(qs, heads, hd));
    // Taken and put back rather than lent to a closure, which would not
    // inherit `attend_avx2`'s target features.
    let mut kf = KEYS.take();
    kf.resize(CHUNK * MAX_HEAD_DIM, 0.0);
    {
        let mut pos = lo;
        while pos <= hi {
            // Checked before any task ran: the page exists.
            let page = places.page_table[seq as usize * places.pages_per_seq + pos / ps] as usize;
            let len = (ps - pos % ps).min(hi + 1 - pos).min(CHUNK);
            let keys = kv.k_run(layer, page, pos % ps, len);
            if let Some(q8) = &q8 {
                let at = |j: usize| (j * row + kv_head * hd) / QK;
                score_blocks(path, keys, at, q8, hd / QK, shape.scale, &mut scores, len);
            } else {
                for j in 0..len {
                    keys.to_f32(path, j * row + kv_head * hd, &mut kf[j * hd..(j + 1) * hd]);
                }
                for h in 0..heads {
                    score_chunk(
                        path,
                        &qs[h * hd..(h + 1) * hd],
                        &kf[..len * hd],
                        shape.scale,
                        &mut scores[h][..len],
                    );
                }
            }
            if let Some(cap) = shape.softcap {
                for h in 0..heads {
                    scores[h][..len]
                        .iter_mut()
                        .for_each(|s| *s = super::math::softcap(*s, cap));
                }
            }
            let values = kv.v_run(layer, page, pos % ps, len);
            accumulate(
                path,
                &mut st,
                &mut scores,
                values,
                types.v == KvType::F16,
                row,
                kv_head,
                hd,
                heads,
                len,
            );
            pos += len;
        }
        for h in 0..heads {
            let inv = if st.sum[h] > 0.0 {
                1.0 / st.sum[h]
            } else {
                0.0
            };
            for (o, a) in out[h * hd..(h + 1) * hd]
                .iter_mut()
                .zip(&st.acc[h * hd..(h + 1) * hd])
            {
                *o = a * inv;
            }
        }
        // Values stored rotated sum to the rotated output: turn it back.
        if let Some(n) = kv.value_rotation() {
            super::hadamard::rotate(&mut out[..heads * hd], n);
        }
    }
    KEYS.set(kf);
}

/// `scores[h][j] = scale * q_h · k_j` for `len` keys in Q8_0 or Q4_0
/// blocks, key `j`'s head starting at block `at(j)`, `nb` blocks long.
#[inline(always)]
#[allow(clippy::too_many_arguments)]
fn score_blocks(
    path: SimdPath,
    keys: KvRun,
    at: impl Fn(usize) -> usize,
    q8: &QueryBlocks,
    nb: usize,
    scale: f32,
    scores: &mut [[f32; CHUNK]; GROUP],
    len: usize,
) {
    let mut s = [0f32; GROUP];
    for j in 0..len {
        let b = at(j);
        match keys {
            KvRun::Q8_0(k) => q8.scores_q8_0(path, &k[b..b + nb], &mut s),
            KvRun::Q4_0(k) => q8.scores_q4_0(path, &k[b..b + nb], &mut s),
            // The caller takes this path for these two types only.
            _ => {}
        }
        for (h, &v) in s.iter().enumerate() {
            scores[h][j] = scale * v;
        }
    }
}

/// `out[j] = scale * q · k_j` for the keys `k` (rows of `q.len()`).
#[inline(always)]
fn score_chunk(path: SimdPath, q: &[f32], k: &[f32], scale: f32, out: &mut [f32]) {
    let hd = q.len();
    let mut j = 0;
    #[cfg(target_arch = "x86_64")]
    if path != SimdPath::Portable && hd.is_multiple_of(8) {
        while j + 8 <= out.len() {
            // SAFETY: non-portable paths imply AVX2 and FMA (and this runs
            // inside `attend_avx2`); eight rows of hd are in `k`.
            let s = unsafe { dots8(q, &k[j * hd..(j + 8) * hd]) };
            for (o, v) in out[j..j + 8].iter_mut().zip(s) {
                *o = scale * v;
            }
            j += 8;
        }
    }
    let _ = path;
    for (jj, o) in out.iter_mut().enumerate().skip(j) {
        *o = scale * dot(q, &k[jj * hd..(jj + 1) * hd]);
    }
}

/// Eight dot products of `q` with the rows of `k` (8 × q.len(), a multiple
/// of 8): eight lanes of partial sums per row, then one transposing
/// reduction for all eight rows instead of eight horizontal sums.
#[cfg(target_arch = "x86_64")]
#[inline(always)]
unsafe fn dots8(q: &[f32], k: &[f32]) -> [f32; 8] {
    use std::arch::x86_64::*;
    let hd = q.len();
    unsafe {
        let mut p = [_mm256_setzero_ps(); 8];
        for d in (0..hd).step_by(8) {
            let qv = _mm256_loadu_ps(q.as_ptr().add(d));
            for (r, acc) in p.iter_mut().enumerate() {
                *acc = _mm256_fmadd_ps(qv, _mm256_loadu_ps(k.as_ptr().add(r * hd + d)), *acc);
            }
        }
        let a = _mm256_hadd_ps(p[0], p[1]);
        let b = _mm256_hadd_ps(p[2], p[3]);
        let c = _mm256_hadd_ps(p[4], p[5]);
        let e = _mm256_hadd_ps(p[6], p[7]);
        let lo = _mm256_hadd_ps(a, b);
        let hi = _mm256_hadd_ps(c, e);
        // lo = [r0 r1 r2 r3 (lanes 0..4) | r0 r1 r2 r3 (lanes 4..8)], hi likewise.
        let sum = _mm256_add_ps(
            _mm256_permute2f128_ps::<0x20>(lo, hi),
            _mm256_permute2f128_ps::<0x31>(lo, hi),
        );
        let mut out = [0f32; 8];
        _mm256_storeu_ps(out.as_mut_ptr(), sum);
        out
    }
}

/// Folds a chunk of `len` scored keys and their values into the state.
#[inline(always)]
#[allow(clippy::too_many_arguments)]
fn accumulate(
    path: SimdPath,
    st: &mut Online,
    scores: &mut [[f32; CHUNK]; GROUP],
    values: KvRun,
    round_weights: bool,
    row: usize,
    kv_head: usize,
    hd: usize,
    heads: usize,
    len: usize,
) {
    for h in 0..heads {
        let s = &mut scores[h][..len];
        let m = s.iter().fold(st.max[h], |m, &v| m.max(v));
        let correction = exp(st.max[h] - m);
        st.max[h] = m;
        // Two loops: the exponentials vectorise only apart from the sum,
        // which stays in key order (the same bits on every path).
        for v in s.iter_mut() {
            *v = exp(*v - m);
        }
        let sum = s.iter().fold(0f32, |a, &v| a + v);
        st.sum[h] = st.sum[h] * correction + sum;
        if round_weights {
            // ggml multiplies an f16 V with the softmax weights rounded to
            // f16; rounding them relative to the sum so far does the same
            // (exactly so while the keys fit one chunk).
            round_to_f16_of(path, s, st.sum[h]);
        }
        st.acc[h * hd..(h + 1) * hd]
            .iter_mut()
            .for_each(|a| *a *= correction);
    }
    let mut vf = [0f32; MAX_HEAD_DIM];
    for j in 0..len {
        values.to_f32(path, j * row + kv_head * hd, &mut vf[..hd]);
        for h in 0..heads {
            let p = scores[h][j];
            for (a, &x) in st.acc[h * hd..(h + 1) * hd].iter_mut().zip(&vf[..hd]) {
                *a = p.mul_add(x, *a);
            }
        }
    }
}

/// `w = f16(w / total) * total` for every weight: eight at a time through
/// F16C where the path has it (the same round-to-nearest-even as `half`'s
/// scalar conversion, so the same bits), one at a time elsewhere.
#[inline(always)]
fn round_to_f16_of(path: SimdPath, w: &mut [f32], total: f32) {
    let mut i = 0;
    #[cfg(target_arch = "x86_64")]
    if path != SimdPath::Portable {
        // SAFETY: every non-portable path implies AVX2 and F16C.
        i = unsafe { round_to_f16_of_f16c(w, total) };
    }
    let _ = path;
    for v in &mut w[i..] {
        *v = f16::from_f32(*v / total).to_f32() * total;
    }
}

/// The whole groups of eight of [`round_to_f16_of`]; returns how many
/// weights it rounded.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn round_to_f16_of_f16c(w: &mut [f32], total: f32) -> usize {
    use std::arch::x86_64::*;
    let t = _mm256_set1_ps(total);
    let n = w.len() / 8 * 8;
    for c in w[..n].chunks_exact_mut(8) {
        // SAFETY: eight f32 in `c`.
        unsafe {
            let v = _mm256_div_ps(_mm256_loadu_ps(c.as_ptr()), t);
            let h = _mm256_cvtps_ph::<_MM_FROUND_TO_NEAREST_INT>(v);
            _mm256_storeu_ps(c.as_mut_ptr(), _mm256_mul_ps(_mm256_cvtph_ps(h), t));
        }
    }
    n
}

fn check(
    path: SimdPath,
    shape: &AttentionShape,
    q: &[f32],
    kv: &KvCache,
    layer: usize,
    places: &TokenPlaces,
    out: &[f32],
) -> Result<(), KernelError> {
    use super::acts::check_len;
    if !path.is_available() {
        return Err(KernelError::PathUnavailable {
            what: "attention",
            path,
        });
    }
    let mismatch = |what, expected, found| {
        Err(KernelError::SizeMismatch {
            what,
            unit: "",
            expected,
            found,
        })
    };
    if shape.n_kv_heads == 0 || !shape.n_heads.is_multiple_of(shape.n_kv_heads) {
        return mismatch(
            "attention n_heads (a multiple of n_kv_heads)",
            shape.n_kv_heads,
            shape.n_heads,
        );
    }
    if shape.n_kv_heads != kv.n_kv_heads() || shape.head_dim != kv.head_dim() {
        return mismatch(
            "attention kv heads × head_dim (the cache's)",
            kv.row_len(),
            shape.n_kv_heads * shape.head_dim,
        );
    }
    if shape.head_dim > MAX_HEAD_DIM {
        return mismatch("attention head_dim (at most)", MAX_HEAD_DIM, shape.head_dim);
    }
    if shape.sliding_window == Some(0) {
        return mismatch("attention sliding window (at least)", 1, 0);
    }
    if layer >= kv.n_layers() {
        return Err(KernelError::OutOfRange {
            what: "attention layer",
            index: layer as i64,
            len: kv.n_layers(),
        });
    }
    let t = places.positions.len();
    check_len("attention seq_ids", places.seq_ids.len(), t)?;
    check_len("attention q", q.len(), t * shape.n_heads * shape.head_dim)?;
    check_len(
        "attention out",
        out.len(),
        t * shape.n_heads * shape.head_dim,
    )?;
    for (&pos, &seq) in places.positions.iter().zip(places.seq_ids) {
        if pos < 0 {
            return Err(KernelError::OutOfRange {
                what: "attention position",
                index: pos as i64,
                len: 0,
            });
        }
        let (lo, hi) = visible(shape, pos);
        let ps = kv.page_size();
        for page_start in (lo / ps * ps..=hi).step_by(ps) {
            kv.locate(
                places.page_table,
                places.pages_per_seq,
                seq,
                page_start.max(lo) as i32,
            )?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::exec::cpu::kv_cache::KvTypes;
    use crate::rng::Rng;

    /// The per-token kernel's output for every token of the step, as
    /// before tiles: one task per token and kv head.
    fn per_token(
        path: SimdPath,
        shape: &AttentionShape,
        q: &[f32],
        kv: &KvCache,
        places: &TokenPlaces,
    ) -> Vec<f32> {
        let hd = shape.head_dim;
        let n_rep = shape.n_heads / shape.n_kv_heads;
        let mut out = vec![f32::NAN; q.len()];
        let width = shape.n_heads * hd;
        for (t, o) in out.chunks_mut(width).enumerate() {
            for (g, o) in o.chunks_mut(n_rep * hd).enumerate() {
                let qs = &q[t * width + g * n_rep * hd..t * width + (g + 1) * n_rep * hd];
                let window = visible(shape, places.positions[t]);
                attend(
                    path,
                    kv,
                    0,
                    places,
                    places.seq_ids[t],
                    window,
                    g,
                    shape,
                    qs,
                    o,
                );
            }
        }
        out
    }

    /// Tiles change the speed, not the numbers: every token's output is the
    /// per-token kernel's, bit for bit, over head sizes (a multiple of 8 or
    /// not), page sizes that cut chunks short, windows, soft-capping and
    /// value types with and without the f16 rounding of the weights.
    #[test]
    fn tiles_give_the_per_token_kernels_bits() {
        let mut rng = Rng::new(7);
        let cases = [
            (64, 16, None, None, KvType::F16),
            (256, 32, Some(50), None, KvType::F16),
            (20, 4, None, Some(30.0), KvType::F32),
            (128, 8, Some(7), None, KvType::Bf16),
            (64, 32, None, None, KvType::Q8_0),
        ];
        for (hd, page, window, softcap, v) in cases {
            let (n_kv, n_heads, pps) = (2, 14, 16);
            let types = KvTypes {
                k: if v == KvType::Q8_0 { KvType::F16 } else { v },
                v,
            };
            let mut kv = KvCache::with_types(1, n_kv, hd, page, 2 * pps, types).unwrap();
            let page_table: Vec<i32> = (0..2 * pps as i32).rev().collect();
            let lens = [(pps * page).min(140), 37];
            for s in 0..2 {
                for p in 0..lens[s] {
                    let k = rng.normal_vec(n_kv * hd, 0.0, 1.0);
                    let vv = rng.normal_vec(n_kv * hd, 0.0, 1.0);
                    kv.write_tokens(0, &k, &vv, &[p as i32], &[s as i32], &page_table, pps)
                        .unwrap();
                }
            }
            // A prefill of sequence 0, then decodes and a short prefill
            // of sequence 1 in the same step.
            let mut pos: Vec<i32> = (5..lens[0] as i32).collect();
            let mut seq = vec![0; pos.len()];
            pos.extend([36, 0, 1, 2, 30]);
            seq.extend([1, 1, 1, 1, 1]);
            let q = rng.normal_vec(pos.len() * n_heads * hd, 0.0, 2.0);
            let shape = AttentionShape {
                n_heads,
                n_kv_heads: n_kv,
                head_dim: hd,
                scale: 1.0 / (hd as f32).sqrt(),
                sliding_window: window,
                softcap,
            };
            let places = TokenPlaces {
                positions: &pos,
                seq_ids: &seq,
                page_table: &page_table,
                pages_per_seq: pps,
            };
            for path in SimdPath::available() {
                let want = per_token(path, &shape, &q, &kv, &places);
                let mut got = vec![f32::NAN; q.len()];
                attention_with(path, &shape, &q, &kv, 0, &places, &mut got).unwrap();
                let same = got
                    .iter()
                    .zip(&want)
                    .filter(|(a, b)| a.to_bits() == b.to_bits())
                    .count();
                assert_eq!(
                    same,
                    got.len(),
                    "hd {hd} page {page} {window:?} {softcap:?} {v} {path:?}"
                );
            }
        }
    }
}
