//! The paged KV cache: keys and values in f16 (llama.cpp's default cache
//! type) or f32, in fixed-size pages addressed through per-sequence page
//! tables.
//!
//! Layout, for K and for V separately: `[layer][page][slot][kv_head][head_dim]`,
//! so one token's heads are contiguous and a page is one contiguous run.
//! Token `t` of sequence `s` at position `p` lives in page
//! `page_table[s * pages_per_seq + p / page_size]`, slot `p % page_size`.

use half::f16;

use super::error::KernelError;
use super::simd::SimdPath;

#[derive(Debug)]
pub struct KvCache {
    n_layers: usize,
    n_kv_heads: usize,
    head_dim: usize,
    page_size: usize,
    n_pages: usize,
    store: Store,
}

/// The element type of the cache.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum KvType {
    /// Half the memory; attention then rounds q and the softmax weights to
    /// f16 too, as ggml does when it multiplies with an f16 cache.
    #[default]
    F16,
    /// Exact: what float-weight models need to match an f32 reference.
    F32,
}

impl KvType {
    pub fn parse(s: &str) -> Option<Self> {
        match s.to_ascii_lowercase().as_str() {
            "f16" => Some(KvType::F16),
            "f32" => Some(KvType::F32),
            _ => None,
        }
    }
}

#[derive(Debug)]
enum Store {
    F16 { k: Vec<f16>, v: Vec<f16> },
    F32 { k: Vec<f32>, v: Vec<f32> },
}

/// Consecutive rows of keys or values, in the cache's element type.
#[derive(Debug, Clone, Copy)]
pub(crate) enum KvRun<'a> {
    F16(&'a [f16]),
    F32(&'a [f32]),
}

impl KvRun<'_> {
    /// Elements `[at, at + out.len())` as f32.
    #[inline(always)]
    pub(crate) fn to_f32(self, path: SimdPath, at: usize, out: &mut [f32]) {
        match self {
            KvRun::F16(h) => super::f16::to_f32(path, &h[at..at + out.len()], out),
            KvRun::F32(f) => out.copy_from_slice(&f[at..at + out.len()]),
        }
    }
}

/// Where one token's keys and values are: page and slot.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KvSlot {
    pub page: usize,
    pub slot: usize,
}

impl KvCache {
    /// A zeroed f16 cache of `n_pages` pages of `page_size` tokens per layer.
    pub fn new(
        n_layers: usize,
        n_kv_heads: usize,
        head_dim: usize,
        page_size: usize,
        n_pages: usize,
    ) -> Self {
        Self::with_type(
            n_layers,
            n_kv_heads,
            head_dim,
            page_size,
            n_pages,
            KvType::F16,
        )
    }

    /// A zeroed cache holding `ty` elements.
    pub fn with_type(
        n_layers: usize,
        n_kv_heads: usize,
        head_dim: usize,
        page_size: usize,
        n_pages: usize,
        ty: KvType,
    ) -> Self {
        let n = n_layers * n_pages * page_size * n_kv_heads * head_dim;
        let store = match ty {
            KvType::F16 => Store::F16 {
                k: vec![f16::ZERO; n],
                v: vec![f16::ZERO; n],
            },
            KvType::F32 => Store::F32 {
                k: vec![0.0; n],
                v: vec![0.0; n],
            },
        };
        KvCache {
            n_layers,
            n_kv_heads,
            head_dim,
            page_size,
            n_pages,
            store,
        }
    }

    pub fn kv_type(&self) -> KvType {
        match self.store {
            Store::F16 { .. } => KvType::F16,
            Store::F32 { .. } => KvType::F32,
        }
    }

    pub fn n_layers(&self) -> usize {
        self.n_layers
    }
    pub fn n_kv_heads(&self) -> usize {
        self.n_kv_heads
    }
    pub fn head_dim(&self) -> usize {
        self.head_dim
    }
    pub fn page_size(&self) -> usize {
        self.page_size
    }
    pub fn n_pages(&self) -> usize {
        self.n_pages
    }

    /// Elements of one token's keys (all kv heads).
    pub fn row_len(&self) -> usize {
        self.n_kv_heads * self.head_dim
    }

    /// Bytes of K and V together.
    pub fn bytes(&self) -> usize {
        match &self.store {
            Store::F16 { k, v } => (k.len() + v.len()) * 2,
            Store::F32 { k, v } => (k.len() + v.len()) * 4,
        }
    }

    fn offset(&self, layer: usize, page: usize, slot: usize) -> usize {
        ((layer * self.n_pages + page) * self.page_size + slot) * self.row_len()
    }

    fn check_cell(&self, layer: usize, page: usize, slot: usize) -> Result<(), KernelError> {
        let range = |what, index: usize, len| {
            if index < len {
                Ok(())
            } else {
                Err(KernelError::OutOfRange {
                    what,
                    index: index as i64,
                    len,
                })
            }
        };
        range("kv cache layer", layer, self.n_layers)?;
        range("kv cache page", page, self.n_pages)?;
        range("kv cache slot", slot, self.page_size)
    }

    /// Stores one token's keys and values (`n_kv_heads * head_dim` each).
    pub fn write(
        &mut self,
        layer: usize,
        k_row: &[f32],
        v_row: &[f32],
        page: usize,
        slot: usize,
    ) -> Result<(), KernelError> {
        self.check_cell(layer, page, slot)?;
        super::acts::check_len("kv cache key row", k_row.len(), self.row_len())?;
        super::acts::check_len("kv cache value row", v_row.len(), self.row_len())?;
        let (o, n, path) = (
            self.offset(layer, page, slot),
            self.row_len(),
            SimdPath::detect(),
        );
        match &mut self.store {
            Store::F16 { k, v } => {
                super::f16::from_f32(path, k_row, &mut k[o..o + n]);
                super::f16::from_f32(path, v_row, &mut v[o..o + n]);
            }
            Store::F32 { k, v } => {
                k[o..o + n].copy_from_slice(k_row);
                v[o..o + n].copy_from_slice(v_row);
            }
        }
        Ok(())
    }

    /// Stores the keys and values of a step's tokens (`[T, n_kv_heads *
    /// head_dim]` each) at their sequences' positions.
    #[allow(clippy::too_many_arguments)]
    pub fn write_tokens(
        &mut self,
        layer: usize,
        k: &[f32],
        v: &[f32],
        positions: &[i32],
        seq_ids: &[i32],
        page_table: &[i32],
        pages_per_seq: usize,
    ) -> Result<(), KernelError> {
        let n = self.row_len();
        super::acts::check_len("kv cache keys", k.len(), positions.len() * n)?;
        super::acts::check_len("kv cache values", v.len(), positions.len() * n)?;
        super::acts::check_len("kv cache seq_ids", seq_ids.len(), positions.len())?;
        for (t, (&pos, &seq)) in positions.iter().zip(seq_ids).enumerate() {
            let at = self.locate(page_table, pages_per_seq, seq, pos)?;
            self.write(
                layer,
                &k[t * n..(t + 1) * n],
                &v[t * n..(t + 1) * n],
                at.page,
                at.slot,
            )?;
        }
        Ok(())
    }

    /// Resolves `(seq, pos)` through the page table, checking every index.
    pub fn locate(
        &self,
        page_table: &[i32],
        pages_per_seq: usize,
        seq: i32,
        pos: i32,
    ) -> Result<KvSlot, KernelError> {
        let n_seqs = page_table.len() / pages_per_seq.max(1);
        if seq < 0 || seq as usize >= n_seqs {
            return Err(KernelError::OutOfRange {
                what: "sequence id",
                index: seq as i64,
                len: n_seqs,
            });
        }
        let page_index = if pos < 0 {
            usize::MAX
        } else {
            pos as usize / self.page_size
        };
        if page_index >= pages_per_seq {
            let len = pages_per_seq * self.page_size;
            return Err(KernelError::OutOfRange {
                what: "position (beyond the sequence's pages)",
                index: pos as i64,
                len,
            });
        }
        let page = page_table[seq as usize * pages_per_seq + page_index];
        if page < 0 || page as usize >= self.n_pages {
            return Err(KernelError::OutOfRange {
                what: "page table entry",
                index: page as i64,
                len: self.n_pages,
            });
        }
        Ok(KvSlot {
            page: page as usize,
            slot: pos as usize % self.page_size,
        })
    }

    /// One token's keys, all kv heads, as f32.
    pub fn k_row(&self, layer: usize, page: usize, slot: usize) -> Vec<f32> {
        let mut out = vec![0.0; self.row_len()];
        self.k_run(layer, page, slot, 1)
            .to_f32(SimdPath::detect(), 0, &mut out);
        out
    }

    /// One token's values, all kv heads, as f32.
    pub fn v_row(&self, layer: usize, page: usize, slot: usize) -> Vec<f32> {
        let mut out = vec![0.0; self.row_len()];
        self.v_run(layer, page, slot, 1)
            .to_f32(SimdPath::detect(), 0, &mut out);
        out
    }

    /// Keys of `len` consecutive slots from `slot` of a page (`len * row_len`).
    pub(crate) fn k_run(&self, layer: usize, page: usize, slot: usize, len: usize) -> KvRun<'_> {
        let o = self.offset(layer, page, slot);
        let n = len * self.row_len();
        match &self.store {
            Store::F16 { k, .. } => KvRun::F16(&k[o..o + n]),
            Store::F32 { k, .. } => KvRun::F32(&k[o..o + n]),
        }
    }

    /// Values of `len` consecutive slots, as [`k_run`](Self::k_run).
    pub(crate) fn v_run(&self, layer: usize, page: usize, slot: usize, len: usize) -> KvRun<'_> {
        let o = self.offset(layer, page, slot);
        let n = len * self.row_len();
        match &self.store {
            Store::F16 { v, .. } => KvRun::F16(&v[o..o + n]),
            Store::F32 { v, .. } => KvRun::F32(&v[o..o + n]),
        }
    }
}
