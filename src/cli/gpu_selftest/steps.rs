//! Where a test step's tokens are: sequences, positions, the page table,
//! and the paged KV cache in the GPU layout (rows of [K | V] f16).

use half::f16;

use super::{Res, Rng, Suite};
use rocmforge::backend::DeviceBuffer;
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
/// `0..lens[s]` of each sequence, in both layouts.
pub struct FilledCache {
    /// GPU layout, as f16 bits: `n_pages * page_size` rows of 2*kv_dim.
    pub gpu: Vec<u16>,
    pub cpu: cpu::KvCache,
}

pub fn filled_cache(
    rng: &mut Rng,
    pl: &Places,
    lens: &[usize],
    n_kv: usize,
    hd: usize,
) -> Res<FilledCache> {
    let kv_dim = n_kv * hd;
    let rows = pl.n_pages * pl.page_size;
    let mut gpu = vec![f16::NAN.to_bits(); rows * 2 * kv_dim];
    let mut cpu = cpu::KvCache::new(1, n_kv, hd, pl.page_size, pl.n_pages);
    for (s, &len) in lens.iter().enumerate() {
        let pos: Vec<i32> = (0..len as i32).collect();
        let seq = vec![s as i32; len];
        let k = rng.vec(len * kv_dim, -1.0, 1.0);
        let v = rng.vec(len * kv_dim, -1.0, 1.0);
        cpu.write_tokens(0, &k, &v, &pos, &seq, &pl.pages, pl.pages_per_seq)?;
        for p in 0..len {
            let r = pl.row(s, p) * 2 * kv_dim;
            for i in 0..kv_dim {
                gpu[r + i] = f16::from_f32(k[p * kv_dim + i]).to_bits();
                gpu[r + kv_dim + i] = f16::from_f32(v[p * kv_dim + i]).to_bits();
            }
        }
    }
    Ok(FilledCache { gpu, cpu })
}
