//! Byte-level BPE (`tokenizer.ggml.model = gpt2`): words from the
//! pre-tokenizer are written as byte-level characters and merged by the rank
//! of `tokenizer.ggml.merges` (lower rank first).

use super::byte_level;
use super::error::TokenizerError;
use super::merge_queue::{char_symbols, merge_all, NO_ID};
use super::vocab::Vocab;
use crate::gguf::Metadata;
use rustc_hash::FxHashMap;

pub const KEY_MERGES: &str = "tokenizer.ggml.merges";

/// Merge ranks keyed by symbol ids. Merge parts that are not tokens get ids
/// from `n_vocab` up, so merging works on ids and never on strings.
#[derive(Debug)]
pub struct BpeMerges {
    /// (left, right) -> (rank, id of the merged text).
    ranks: FxHashMap<(u32, u32), (u32, u32)>,
    /// Texts of merge parts and results that are not tokens.
    extra: FxHashMap<Box<str>, u32>,
    n_vocab: u32,
}

impl BpeMerges {
    /// Reads `"left right"` merge lines; as llama.cpp does, the separator is
    /// the first space after the first byte, and the first of duplicate
    /// pairs keeps its rank.
    pub fn from_metadata(md: &Metadata, vocab: &Vocab) -> Result<Self, TokenizerError> {
        let lines = md.get_str_array(KEY_MERGES)?;
        let mut m = Self {
            ranks: FxHashMap::with_capacity_and_hasher(lines.len(), Default::default()),
            extra: FxHashMap::default(),
            n_vocab: vocab.len() as u32,
        };
        for (rank, line) in lines.iter().enumerate() {
            let Some(pos) = line.bytes().skip(1).position(|b| b == b' ').map(|p| p + 1) else {
                tracing::warn!(rank, line, "BPE merge without a separating space ignored");
                continue;
            };
            let (left, right) = (&line[..pos], &line[pos + 1..]);
            let l = m.intern(vocab, left);
            let r = m.intern(vocab, right);
            let merged = m.intern(vocab, &format!("{left}{right}"));
            m.ranks.entry((l, r)).or_insert((rank as u32, merged));
        }
        Ok(m)
    }

    fn intern(&mut self, vocab: &Vocab, text: &str) -> u32 {
        if let Some(id) = vocab.id_of(text) {
            return id;
        }
        let next = self.n_vocab + self.extra.len() as u32;
        *self.extra.entry(text.into()).or_insert(next)
    }

    fn lookup(&self, vocab: &Vocab, text: &str) -> u32 {
        vocab
            .id_of(text)
            .or_else(|| self.extra.get(text).copied())
            .unwrap_or(NO_ID)
    }

    /// Appends the tokens of one pre-tokenized word (raw text).
    pub fn encode_word(&self, vocab: &Vocab, word: &str, ignore_merges: bool, out: &mut Vec<u32>) {
        let encoded = byte_level::encode(word.as_bytes());
        if ignore_merges {
            if let Some(id) = vocab.id_of(&encoded) {
                out.push(id);
                return;
            }
        }
        let mut symbols = char_symbols(&encoded, |c| self.lookup(vocab, c));
        merge_all(&mut symbols, |l, r| {
            self.ranks
                .get(&(l.id, r.id))
                .map(|&(rank, merged)| (std::cmp::Reverse(rank), merged))
        });
        for s in symbols.iter().filter(|s| s.is_live()) {
            if s.id < self.n_vocab {
                out.push(s.id);
            } else {
                // No token for the symbol: llama.cpp emits the single-byte
                // tokens of its text (only ASCII characters can be such).
                let text = &encoded[s.start..s.end];
                for b in text.bytes().filter(u8::is_ascii) {
                    if let Some(id) = vocab.id_of(std::str::from_utf8(&[b]).unwrap_or_default()) {
                        out.push(id);
                    }
                }
            }
        }
    }
}
