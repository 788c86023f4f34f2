//! The KV cache's pages as the scheduler sees them: reference-counted, so
//! that sequences with a common prefix share its pages without copies, and
//! kept after their last user leaves as a prefix cache, evicted least
//! recently used when memory is needed.
//!
//! A full page is known by a hash of its tokens chained with the hash of
//! every page before it, so one key names one whole prefix. A hit also
//! compares the page's own tokens; a collision of the 128-bit chain would
//! need both halves of two independent 64-bit hashes to collide.

use std::collections::{BTreeMap, HashMap};

/// The chained hash of a full page: (hash of the prefix before it, tokens).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PageKey(u64, u64);

impl PageKey {
    /// The key of the page holding `tokens` after the prefix `parent`
    /// (`None` for the first page).
    pub fn chain(parent: Option<PageKey>, tokens: &[u32]) -> PageKey {
        let (mut a, mut b) = match parent {
            Some(PageKey(a, b)) => (a, b),
            None => (0x243F_6A88_85A3_08D3, 0x1319_8A2E_0370_7344),
        };
        for &t in tokens {
            a = mix(a ^ t as u64, 0x9E37_79B9_7F4A_7C15);
            b = mix(b.wrapping_add(t as u64), 0xC2B2_AE3D_27D4_EB4F);
        }
        PageKey(mix(a, tokens.len() as u64 + 1), b)
    }
}

/// One round of a 64-bit finalizer (splitmix64's), keyed by `k`.
fn mix(x: u64, k: u64) -> u64 {
    let mut z = x.wrapping_add(k);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

#[derive(Debug, Clone, Default)]
struct PageState {
    refs: u32,
    /// Set while the page is registered in the prefix cache.
    key: Option<PageKey>,
    tokens: Vec<u32>,
    /// Tick of its last use, for LRU eviction of unreferenced cached pages.
    last_use: u64,
}

/// Reference-counted KV pages with a prefix cache.
#[derive(Debug)]
pub struct PagePool {
    page_size: usize,
    pages: Vec<PageState>,
    /// Pages holding nothing, popped from the back (low numbers first).
    free: Vec<u32>,
    /// Cached pages nobody references, by (last use, page): the eviction
    /// order.
    idle: BTreeMap<(u64, u32), ()>,
    cache: HashMap<PageKey, u32>,
    caching: bool,
    tick: u64,
    /// Pages evicted from the cache so far.
    pub evictions: u64,
}

impl PagePool {
    pub fn new(n_pages: usize, page_size: usize, caching: bool) -> Self {
        PagePool {
            page_size,
            pages: vec![PageState::default(); n_pages],
            free: (0..n_pages as u32).rev().collect(),
            idle: BTreeMap::new(),
            cache: HashMap::new(),
            caching,
            tick: 0,
            evictions: 0,
        }
    }

    pub fn page_size(&self) -> usize {
        self.page_size
    }

    pub fn n_pages(&self) -> usize {
        self.pages.len()
    }

    pub fn caching(&self) -> bool {
        self.caching
    }

    /// Pages that can be handed out now: empty ones and idle cached ones.
    pub fn available(&self) -> usize {
        self.free.len() + self.idle.len()
    }

    /// Pages referenced by some sequence.
    pub fn used(&self) -> usize {
        self.pages.len() - self.available()
    }

    /// Idle pages kept only as prefix cache.
    pub fn cached_idle(&self) -> usize {
        self.idle.len()
    }

    /// A page for new tokens (reference count 1), evicting the least
    /// recently used idle cached page when no empty one is left.
    pub fn alloc(&mut self) -> Option<u32> {
        let p = match self.free.pop() {
            Some(p) => p,
            None => {
                let (&(tick, p), _) = self.idle.iter().next()?;
                self.idle.remove(&(tick, p));
                let st = &mut self.pages[p as usize];
                if let Some(k) = st.key.take() {
                    self.cache.remove(&k);
                }
                st.tokens.clear();
                self.evictions += 1;
                p
            }
        };
        self.pages[p as usize].refs = 1;
        Some(p)
    }

    /// Drops one reference to each of `pages`; a page nobody references
    /// stays cached (idle) if it is registered, else becomes empty.
    pub fn release(&mut self, pages: &[u32]) {
        for &p in pages {
            self.tick += 1;
            let st = &mut self.pages[p as usize];
            debug_assert!(st.refs > 0, "page {p} released twice");
            st.refs = st.refs.saturating_sub(1);
            if st.refs > 0 {
                continue;
            }
            if st.key.is_some() {
                st.last_use = self.tick;
                self.idle.insert((self.tick, p), ());
            } else {
                self.free.push(p);
            }
        }
    }

    /// The longest run of cached pages that holds a prefix of `tokens`
    /// (whole pages only, at most `max_pages`), each referenced once more.
    pub fn lookup(&mut self, tokens: &[u32], max_pages: usize) -> Vec<u32> {
        let mut out = Vec::new();
        if !self.caching {
            return out;
        }
        let mut parent = None;
        for chunk in tokens.chunks_exact(self.page_size).take(max_pages) {
            let key = PageKey::chain(parent, chunk);
            let Some(&p) = self.cache.get(&key) else {
                break;
            };
            let st = &self.pages[p as usize];
            if st.tokens != chunk {
                break;
            }
            self.take(p);
            out.push(p);
            parent = Some(key);
        }
        out
    }

    fn take(&mut self, p: u32) {
        self.tick += 1;
        let st = &mut self.pages[p as usize];
        if st.refs == 0 {
            self.idle.remove(&(st.last_use, p));
        }
        st.refs += 1;
        st.last_use = self.tick;
    }

    /// Registers page `p`, now full with `tokens` after the prefix `parent`,
    /// in the cache; returns its key. Where an equal page is cached already
    /// the cache keeps that one and `p` stays private.
    pub fn register(&mut self, p: u32, parent: Option<PageKey>, tokens: &[u32]) -> PageKey {
        let key = PageKey::chain(parent, tokens);
        if self.caching && !self.cache.contains_key(&key) && self.pages[p as usize].key.is_none() {
            self.cache.insert(key, p);
            let st = &mut self.pages[p as usize];
            st.key = Some(key);
            st.tokens = tokens.to_vec();
        }
        key
    }

    /// Whether the internal counts agree (tests and debug checks).
    pub fn is_consistent(&self) -> bool {
        let idle_ok = self.idle.keys().all(|&(_, p)| {
            self.pages[p as usize].refs == 0 && self.pages[p as usize].key.is_some()
        });
        let free_ok = self
            .free
            .iter()
            .all(|&p| self.pages[p as usize].refs == 0 && self.pages[p as usize].key.is_none());
        let unreferenced = self.pages.iter().filter(|s| s.refs == 0).count();
        idle_ok && free_ok && unreferenced == self.free.len() + self.idle.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_released_registered_page_is_found_again_and_shared() {
        let mut pool = PagePool::new(4, 2, true);
        let a = pool.alloc().unwrap();
        let b = pool.alloc().unwrap();
        let k = pool.register(a, None, &[1, 2]);
        pool.register(b, Some(k), &[3, 4]);
        pool.release(&[a, b]);
        assert_eq!(pool.available(), 4);
        assert_eq!(pool.lookup(&[1, 2, 3, 4, 5], 8), vec![a, b]);
        assert_eq!(pool.lookup(&[1, 2, 3, 9], 8), vec![a]);
        assert_eq!(pool.used(), 2);
        assert!(pool.is_consistent());
    }

    #[test]
    fn the_same_tokens_after_another_prefix_do_not_hit() {
        let mut pool = PagePool::new(4, 2, true);
        let a = pool.alloc().unwrap();
        let b = pool.alloc().unwrap();
        let k = pool.register(a, None, &[1, 2]);
        pool.register(b, Some(k), &[3, 4]);
        pool.release(&[a, b]);
        assert!(pool.lookup(&[3, 4], 8).is_empty());
        assert!(pool.lookup(&[7, 7, 3, 4], 8).is_empty());
    }

    #[test]
    fn eviction_takes_the_least_recently_used_idle_page() {
        let mut pool = PagePool::new(2, 1, true);
        let a = pool.alloc().unwrap();
        let b = pool.alloc().unwrap();
        pool.register(a, None, &[1]);
        pool.register(b, None, &[2]);
        pool.release(&[a]);
        pool.release(&[b]);
        assert_eq!(pool.alloc(), Some(a));
        assert!(pool.lookup(&[1], 1).is_empty());
        assert_eq!(pool.lookup(&[2], 1), vec![b]);
        assert_eq!(pool.alloc(), None);
        assert!(pool.is_consistent());
    }

    #[test]
    fn without_caching_pages_return_empty() {
        let mut pool = PagePool::new(2, 2, false);
        let a = pool.alloc().unwrap();
        pool.register(a, None, &[1, 2]);
        pool.release(&[a]);
        assert!(pool.lookup(&[1, 2], 1).is_empty());
        assert_eq!(pool.cached_idle(), 0);
        assert_eq!(pool.available(), 2);
    }
}
