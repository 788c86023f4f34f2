//! The vocabulary: token texts, attributes and scores as the GGUF stores
//! them, with text -> id lookup.

use super::error::TokenizerError;
use super::token_attr::TokenAttr;
use crate::gguf::Metadata;
use rustc_hash::FxHashMap;

pub const KEY_TOKENS: &str = "tokenizer.ggml.tokens";
pub const KEY_TOKEN_TYPE: &str = "tokenizer.ggml.token_type";
pub const KEY_SCORES: &str = "tokenizer.ggml.scores";

/// Token texts (as stored: byte-level characters for BPE, `▁` for spaces in
/// SPM), their attributes and scores.
#[derive(Debug, Clone)]
pub struct Vocab {
    texts: Vec<Box<str>>,
    attrs: Vec<TokenAttr>,
    scores: Vec<f32>,
    by_text: FxHashMap<Box<str>, u32>,
}

impl Vocab {
    /// Reads tokens, types and scores. As llama.cpp does, an empty token text
    /// becomes `[EMPTY_<id>]` (so it can never match), a missing type array
    /// makes every token normal, and missing scores are zero.
    pub fn from_metadata(md: &Metadata) -> Result<Self, TokenizerError> {
        let tokens = md.get_str_array(KEY_TOKENS)?;
        if tokens.is_empty() {
            return Err(TokenizerError::EmptyVocab);
        }
        let n = tokens.len();
        let types = md.opt(KEY_TOKEN_TYPE, Metadata::get_i64_array)?;
        let scores = md.opt(KEY_SCORES, Metadata::get_f32_array)?;
        check_len(KEY_TOKEN_TYPE, n, types.as_ref().map(Vec::len))?;
        check_len(KEY_SCORES, n, scores.as_ref().map(Vec::len))?;

        let mut texts = Vec::with_capacity(n);
        let mut by_text = FxHashMap::with_capacity_and_hasher(n, Default::default());
        for (i, t) in tokens.iter().enumerate() {
            let id = i as u32;
            let text: Box<str> = if t.is_empty() {
                tracing::warn!(id, "empty token text in the vocabulary");
                format!("[EMPTY_{id}]").into()
            } else {
                (*t).into()
            };
            if let Some(&first) = by_text.get(&text) {
                return Err(TokenizerError::DuplicateToken {
                    text: text.into(),
                    first,
                    second: id,
                });
            }
            by_text.insert(text.clone(), id);
            texts.push(text);
        }
        let attrs = match types {
            Some(t) => t[..n]
                .iter()
                .map(|&x| TokenAttr::from_token_type(x))
                .collect(),
            None => vec![TokenAttr::NORMAL; n],
        };
        let scores = scores.map_or_else(|| vec![0.0; n], |s| s[..n].to_vec());
        Ok(Self {
            texts,
            attrs,
            scores,
            by_text,
        })
    }

    pub fn len(&self) -> usize {
        self.texts.len()
    }

    pub fn is_empty(&self) -> bool {
        self.texts.is_empty()
    }

    pub fn contains(&self, id: u32) -> bool {
        (id as usize) < self.texts.len()
    }

    /// The stored text of a token; panics on an id outside the vocabulary
    /// (callers check with [`Vocab::contains`]).
    pub fn text(&self, id: u32) -> &str {
        &self.texts[id as usize]
    }

    pub fn attr(&self, id: u32) -> TokenAttr {
        self.attrs[id as usize]
    }

    pub fn set_attr(&mut self, id: u32, attr: TokenAttr) {
        self.attrs[id as usize] = attr;
    }

    pub fn score(&self, id: u32) -> f32 {
        self.scores[id as usize]
    }

    /// The id of the token whose stored text is exactly `text`.
    pub fn id_of(&self, text: &str) -> Option<u32> {
        self.by_text.get(text).copied()
    }

    /// All ids in increasing order with their texts.
    pub fn iter(&self) -> impl Iterator<Item = (u32, &str)> {
        self.texts.iter().enumerate().map(|(i, t)| (i as u32, &**t))
    }
}

fn check_len(
    key: &'static str,
    expected: usize,
    found: Option<usize>,
) -> Result<(), TokenizerError> {
    match found {
        Some(found) if found < expected => Err(TokenizerError::ShortArray {
            key,
            expected,
            found,
        }),
        _ => Ok(()),
    }
}
