//! KV-cache page bookkeeping shared by every backend: which physical pages
//! each sequence owns, and the page table rows a step passes to the kernels.
//!
//! The cache itself (the K and V bytes) belongs to the backend; this module
//! only hands out page numbers, so the same logic serves CPU and GPU.

use super::ExecError;

/// Tokens per KV-cache page.
pub const PAGE_SIZE: usize = 16;

/// Pages owned by one sequence, in position order, and its length.
#[derive(Debug, Clone, Default)]
pub struct SeqPages {
    pub pages: Vec<u32>,
    /// Tokens stored so far.
    pub len: usize,
}

/// A free list of fixed-size KV pages.
#[derive(Debug)]
pub struct KvPages {
    page_size: usize,
    free: Vec<u32>,
    n_pages: usize,
}

impl KvPages {
    /// `n_pages` pages of `page_size` tokens each.
    pub fn new(n_pages: usize, page_size: usize) -> Self {
        KvPages {
            page_size,
            // Popped from the back: hand out low page numbers first.
            free: (0..n_pages as u32).rev().collect(),
            n_pages,
        }
    }

    pub fn page_size(&self) -> usize {
        self.page_size
    }

    pub fn n_pages(&self) -> usize {
        self.n_pages
    }

    pub fn free_pages(&self) -> usize {
        self.free.len()
    }

    /// Grows `seq` so that it can hold `new_len` tokens. On failure nothing
    /// is taken.
    pub fn reserve(&mut self, seq: &mut SeqPages, new_len: usize) -> Result<(), ExecError> {
        let need = new_len.div_ceil(self.page_size);
        let more = need.saturating_sub(seq.pages.len());
        if more > self.free.len() {
            return Err(ExecError::KvCacheFull {
                needed_tokens: new_len,
                free_pages: self.free.len(),
                page_size: self.page_size,
            });
        }
        for _ in 0..more {
            let p = self.free.pop().expect("checked above");
            seq.pages.push(p);
        }
        Ok(())
    }

    /// Returns every page of `seq` to the free list and empties it.
    pub fn release(&mut self, seq: &mut SeqPages) {
        self.free.extend(seq.pages.drain(..).rev());
        seq.len = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reserve_takes_whole_pages_and_release_returns_them() {
        let mut kv = KvPages::new(4, 16);
        let mut s = SeqPages::default();
        kv.reserve(&mut s, 17).unwrap();
        assert_eq!(s.pages, vec![0, 1]);
        kv.reserve(&mut s, 32).unwrap();
        assert_eq!(s.pages.len(), 2);
        kv.release(&mut s);
        assert_eq!(kv.free_pages(), 4);
    }

    #[test]
    fn reserve_past_capacity_fails_and_takes_nothing() {
        let mut kv = KvPages::new(2, 16);
        let mut s = SeqPages::default();
        assert!(kv.reserve(&mut s, 33).is_err());
        assert!(s.pages.is_empty());
        assert_eq!(kv.free_pages(), 2);
    }
}
