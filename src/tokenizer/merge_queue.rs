//! The merge loop shared by BPE and SentencePiece: a word starts as one
//! symbol per character; the best adjacent pair is merged, again and again,
//! until no pair is mergeable. "Best" is the lowest merge rank (BPE) or the
//! highest token score (SPM); ties go to the leftmost pair, as in llama.cpp.

use std::cmp::{Ordering, Reverse};
use std::collections::BinaryHeap;

/// Marks a symbol whose text is neither a token nor a merge part.
pub const NO_ID: u32 = u32::MAX;

/// A span `start..end` of the word with the id of its text. Symbols are only
/// ever merged into their left neighbour, so the live symbols, in index
/// order, always tile the word; a dead symbol has `start == end`.
#[derive(Debug, Clone, Copy)]
pub struct Symbol {
    pub start: usize,
    pub end: usize,
    pub id: u32,
    prev: Option<usize>,
    next: Option<usize>,
}

impl Symbol {
    pub fn is_live(&self) -> bool {
        self.end > self.start
    }
}

/// One symbol per character of `word`, each with the id `id_of` gives it.
pub fn char_symbols(word: &str, mut id_of: impl FnMut(&str) -> u32) -> Vec<Symbol> {
    let n = word.chars().count();
    word.char_indices()
        .enumerate()
        .map(|(i, (start, c))| {
            let end = start + c.len_utf8();
            Symbol {
                start,
                end,
                id: id_of(&word[start..end]),
                prev: i.checked_sub(1),
                next: (i + 1 < n).then_some(i + 1),
            }
        })
        .collect()
}

/// A candidate pair; the heap pops the greatest: best key, then leftmost.
struct Candidate<K> {
    key: K,
    left: usize,
    right: usize,
    /// Combined length when queued; a different length means stale.
    len: usize,
    merged: u32,
}

impl<K: Ord> PartialEq for Candidate<K> {
    fn eq(&self, o: &Self) -> bool {
        self.cmp(o) == Ordering::Equal
    }
}
impl<K: Ord> Eq for Candidate<K> {}
impl<K: Ord> PartialOrd for Candidate<K> {
    fn partial_cmp(&self, o: &Self) -> Option<Ordering> {
        Some(self.cmp(o))
    }
}
impl<K: Ord> Ord for Candidate<K> {
    fn cmp(&self, o: &Self) -> Ordering {
        (&self.key, Reverse(self.left)).cmp(&(&o.key, Reverse(o.left)))
    }
}

/// Merges pairs while `pair` finds one: `pair(left, right)` gives the pair's
/// priority key (greater is better) and the id of the merged symbol.
pub fn merge_all<K: Ord>(
    symbols: &mut [Symbol],
    mut pair: impl FnMut(&Symbol, &Symbol) -> Option<(K, u32)>,
) {
    let mut heap = BinaryHeap::new();
    let mut push = |heap: &mut BinaryHeap<Candidate<K>>,
                    syms: &[Symbol],
                    l: Option<usize>,
                    r: Option<usize>| {
        if let (Some(left), Some(right)) = (l, r) {
            if let Some((key, merged)) = pair(&syms[left], &syms[right]) {
                let len = syms[right].end - syms[left].start;
                heap.push(Candidate {
                    key,
                    left,
                    right,
                    len,
                    merged,
                });
            }
        }
    };
    for i in 1..symbols.len() {
        push(&mut heap, symbols, Some(i - 1), Some(i));
    }
    while let Some(c) = heap.pop() {
        let (l, r) = (symbols[c.left], symbols[c.right]);
        // A symbol only grows by absorbing its right neighbour (which dies),
        // so both alive with the queued total length means both unchanged.
        if !l.is_live() || !r.is_live() || r.end - l.start != c.len {
            continue;
        }
        symbols[c.left].end = r.end;
        symbols[c.left].id = c.merged;
        symbols[c.left].next = r.next;
        symbols[c.right].end = symbols[c.right].start;
        if let Some(n) = r.next {
            symbols[n].prev = Some(c.left);
        }
        push(&mut heap, symbols, l.prev, Some(c.left));
        push(&mut heap, symbols, Some(c.left), r.next);
    }
}

/// An f32 score ordered totally, so it can key the heap.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Score(pub f32);

impl Eq for Score {}
impl PartialOrd for Score {
    fn partial_cmp(&self, o: &Self) -> Option<Ordering> {
        Some(self.cmp(o))
    }
}
impl Ord for Score {
    fn cmp(&self, o: &Self) -> Ordering {
        self.0.total_cmp(&o.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spans(word: &str, syms: &[Symbol]) -> Vec<String> {
        syms.iter()
            .filter(|s| s.is_live())
            .map(|s| word[s.start..s.end].to_string())
            .collect()
    }

    #[test]
    fn the_best_key_merges_first() {
        let word = "abc";
        let mut syms = char_symbols(word, |_| 0);
        // "bc" beats "ab"; after it, "a"+"bc" is not mergeable.
        merge_all(&mut syms, |l, r| match &word[l.start..r.end] {
            "ab" => Some((1, 0)),
            "bc" => Some((2, 0)),
            _ => None,
        });
        assert_eq!(spans(word, &syms), ["a", "bc"]);
    }

    #[test]
    fn equal_keys_merge_leftmost_first() {
        let word = "aaa";
        let mut syms = char_symbols(word, |_| 0);
        merge_all(&mut syms, |l, r| {
            (&word[l.start..r.end] == "aa").then_some((1, 0))
        });
        assert_eq!(spans(word, &syms), ["aa", "a"]);
    }

    #[test]
    fn merges_continue_on_merged_symbols() {
        let word = "abcd";
        let mut syms = char_symbols(word, |_| 0);
        merge_all(&mut syms, |l, r| match &word[l.start..r.end] {
            "ab" | "cd" | "abcd" => Some((1, 7)),
            _ => None,
        });
        assert_eq!(spans(word, &syms), ["abcd"]);
        assert_eq!(syms[0].id, 7);
    }
}
