//! Our tokenizer as llguidance sees it: a trie of every token's bytes,
//! from which it computes which tokens may come next.
//!
//! Control tokens (`<|im_end|>`, `<|endoftext|>`) are marked with the byte
//! 0xFF, llguidance's marker for special tokens, so no text in a grammar
//! can produce them; the end-of-generation ones are the trie's EOS set,
//! allowed exactly when the grammar may end. User-defined tokens (Qwen's
//! `<tool_call>`) are ordinary text: a grammar literal `<tool_call>` can
//! be written with that one token. Unused and undefined ids have no bytes
//! and are never allowed.

use std::sync::Arc;

use llguidance::toktrie::{TokEnv, TokRxInfo, TokTrie, TokenId, TokenizerEnv};

use crate::tokenizer::token_attr::TokenAttr;
use crate::tokenizer::Tokenizer;

/// A [`TokenizerEnv`] over our tokenizer, for a model with `n_logits`
/// logits per row (at least the tokenizer's vocabulary; ids past it have
/// no bytes).
pub struct Vocabulary {
    tokenizer: Arc<Tokenizer>,
    trie: TokTrie,
}

impl Vocabulary {
    pub fn new(tokenizer: Arc<Tokenizer>, n_logits: usize) -> Self {
        let n = n_logits.max(tokenizer.n_vocab());
        let words: Vec<Vec<u8>> = (0..n as u32).map(|id| word(&tokenizer, id)).collect();
        let eog: Vec<TokenId> = tokenizer.special_tokens().eog.iter().copied().collect();
        // The first end-of-generation id stands for all of them; with none
        // (a bare vocabulary) an id that never occurs does.
        let eos = eog.first().copied().or(tokenizer.eos()).unwrap_or(0);
        let mut info = TokRxInfo::new(n as u32, eos);
        info.tok_bos = tokenizer.bos();
        let mut trie = TokTrie::from(&info, &words);
        if !eog.is_empty() {
            trie = trie.with_eos_tokens(&eog);
        }
        Vocabulary { tokenizer, trie }
    }

    /// As an llguidance token environment.
    pub fn into_env(self) -> TokEnv {
        Arc::new(self)
    }
}

/// The bytes llguidance matches for token `id`.
fn word(tokenizer: &Tokenizer, id: u32) -> Vec<u8> {
    if !tokenizer.vocab().contains(id) {
        return Vec::new();
    }
    let attr = tokenizer.vocab().attr(id);
    if attr.has(TokenAttr::CONTROL) {
        let mut w = vec![TokTrie::SPECIAL_TOKEN_MARKER];
        w.extend_from_slice(tokenizer.vocab().text(id).as_bytes());
        w
    } else if attr.has(TokenAttr::UNUSED) || attr == TokenAttr::UNDEFINED {
        Vec::new()
    } else {
        tokenizer.token_bytes(id).to_vec()
    }
}

impl TokenizerEnv for Vocabulary {
    fn tok_trie(&self) -> &TokTrie {
        &self.trie
    }

    /// Our own (canonical) tokenization of text; special-token texts stay
    /// text. Bytes that are not UTF-8 fall back to the trie's greedy split.
    fn tokenize_bytes(&self, s: &[u8]) -> Vec<TokenId> {
        match std::str::from_utf8(s) {
            Ok(text) => self
                .tokenizer
                .encode(text, false, false)
                .unwrap_or_else(|_| self.trie.greedy_tokenize(s)),
            Err(_) => self.trie.greedy_tokenize(s),
        }
    }
}
