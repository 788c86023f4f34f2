//! Where a test step's tokens are: sequences, positions, the page table,
//! and the paged KV cache in the GPU layout (codegen::KvLayout: per page,
//! its key rows then its value rows, in the cache's element types).

use super::{Res, Rng, Suite};
use rocmforge::backend::DeviceBuffer;
use rocmforge::codegen::KvLayout;
use rocmforge::exec::cpu;

/// Sequences with their pages, and the tokens of one step.
pub struct Places {
    pub page_size: usize,
    pub n_pages: usize,
    pub pages_per_seq: usize,
    /// `[S, pages_per_seq]`, -1 where a sequence has no page.
    pub pages: Vec<i32>,
    pub pos: Vec<i32>,
    pub seq: Vec<i32>,
}

impl Places {
    /// Sequences that can hold `capacity[s]` positions each, pages drawn
    /// at random from a pool with spare pages, and the step's tokens
    /// `(seq, pos)`.
    pub fn new(
        rng: &mut Rng,
        page_size: usize,
        capacity: &[usize],
        tokens: &[(usize, usize)],
    ) -> Places {
        let need: Vec<usize> = capacity.iter().map(|c| c.div_ceil(page_size)).collect();
        let pages_per_seq = need.iter().copied().max().unwrap_or(1).max(1);
        let n_pages = need.iter().sum::<usize>() + 3;
        let mut pool: Vec<i32> = (0..n_pages as i32).collect();
        rng.shuffle(&mut pool);
        let mut pages = vec![-1i32; capacity.len() * pages_per_seq];
        let mut next = 0;
        for (s, &n) in need.iter().enumerate() {
            for p in 0..n {
                pages[s * pages_per_seq + p] = pool[next];
                next += 1;
            }
        }
        Places {
            page_size,
            n_pages,
            pages_per_seq,
            pages,
            pos: tokens.iter().map(|t| t.1 as i32).collect(),
            seq: tokens.iter().map(|t| t.0 as i32).collect(),
        }
    }

    /// The cache row (page * page_size + slot) of `(seq, pos)`.
    pub fn row(&self, seq: usize, pos: usize) -> usize {
        let page = self.pages[seq * self.pages_per_seq + pos / self.page_size] as usize;
        page * self.page_size + pos % self.page_size
    }

    /// Device copies of pos, seq and the page table.
    pub fn upload(&self, s: &Suite) -> Res<[DeviceBuffer; 3]> {
        Ok([
            s.upload(&self.pos)?,
            s.upload(&self.seq)?,
            s.upload(&self.pages)?,
        ])
    }
}

/// A KV cache filled with random keys and values for positions
/// `0..lens[s]` of each sequence, in both layouts, holding the same bytes.
pub struct FilledCache {
    /// The GPU layout of `layout`; rows no token was written to hold 0xff
    /// bytes (NaN as f16 and as a block's f16 scale).
    pub gpu: Vec<u8>,
    pub cpu: cpu::KvCache,
}

/// Fills caches of `types` (heads of `hd`). Keys get one large channel per
/// head (as Qwen2's key biases make), which the rotation of a block-typed
/// cache spreads; a row stored unrotated, or q not rotated alike, fails.
pub fn filled_cache(
    rng: &mut Rng,
    pl: &Places,
    lens: &[usize],
    n_kv: usize,
    hd: usize,
    types: cpu::KvTypes,
) -> Res<FilledCache> {
    let kv_dim = n_kv * hd;
    let layout = KvLayout {
        types,
        n_kv_heads: n_kv as u32,
        head_dim: hd as u32,
        page_size: pl.page_size as u32,
    };
    let mut gpu = vec![0xffu8; layout.layer_bytes(pl.n_pages)];
    let mut cpu = cpu::KvCache::with_types(1, n_kv, hd, pl.page_size, pl.n_pages, types)?;
    for (s, &len) in lens.iter().enumerate() {
        let pos: Vec<i32> = (0..len as i32).collect();
        let seq = vec![s as i32; len];
        let mut k = rng.vec(len * kv_dim, -1.0, 1.0);
        for row in k.chunks_exact_mut(hd) {
            row[3] += 6.0;
        }
        let v = rng.vec(len * kv_dim, -1.0, 1.0);
        cpu.write_tokens(0, &k, &v, &pos, &seq, &pl.pages, pl.pages_per_seq)?;
        for p in 0..len {
            let r = pl.row(s, p);
            let (page, slot) = (r / pl.page_size, r % pl.page_size);
            let (ko, vo) = layout.row_offsets(page, slot);
            let (kb, vb) = (
                cpu.key_bytes(0, page, slot)?,
                cpu.value_bytes(0, page, slot)?,
            );
            gpu[ko..ko + kb.len()].copy_from_slice(kb);
            gpu[vo..vo + vb.len()].copy_from_slice(vb);
        }
    }
    Ok(FilledCache { gpu, cpu })
}

/// Cache row `r`'s key and value (`kv_dim` values each) as f32, keys
/// first, from an f16 cache read back as u16 words in `layout`.
pub fn f16_cache_row(layout: &KvLayout, cache: &[u16], r: usize, kv_dim: usize) -> Vec<f32> {
    let page = layout.page_size as usize;
    let (ko, vo) = layout.row_offsets(r / page, r % page);
    [ko / 2, vo / 2]
        .into_iter()
        .flat_map(|o| cache[o..o + kv_dim].iter())
        .map(|&b| half::f16::from_bits(b).to_f32())
        .collect()
}
