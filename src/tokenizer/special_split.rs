//! Cutting raw text at the texts of special tokens before the model's
//! tokenizer sees it, as llama.cpp's `tokenizer_st_partition` does.
//!
//! Special tokens are tried one after another, longest text first; each cuts
//! every text fragment left by the longer ones at all its (non-overlapping,
//! leftmost-first) occurrences. User-defined tokens are always cut out;
//! control and unknown tokens only when `parse_special` is set.

use super::token_attr::TokenAttr;
use super::vocab::Vocab;

/// A piece of the input: text still to tokenize, or a token found in it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fragment<'t> {
    Text(&'t str),
    Token(u32),
}

/// The special tokens in the order they are tried: longest text first, ties
/// by increasing id.
pub fn special_cache(vocab: &Vocab) -> Vec<u32> {
    let mut ids: Vec<u32> = vocab
        .iter()
        .filter(|&(id, _)| vocab.attr(id).is_special())
        .map(|(id, _)| id)
        .collect();
    ids.sort_by_key(|&id| std::cmp::Reverse(vocab.text(id).len()));
    ids
}

/// Splits `text` into fragments.
pub fn partition<'t>(
    text: &'t str,
    cache: &[u32],
    vocab: &Vocab,
    parse_special: bool,
) -> Vec<Fragment<'t>> {
    let mut frags = if text.is_empty() {
        vec![]
    } else {
        vec![Fragment::Text(text)]
    };
    for &id in cache {
        let attr = vocab.attr(id);
        if !parse_special && attr.has(TokenAttr::CONTROL.with(TokenAttr::UNKNOWN)) {
            continue;
        }
        let needle = vocab.text(id);
        if !frags
            .iter()
            .any(|f| matches!(f, Fragment::Text(t) if t.contains(needle)))
        {
            continue;
        }
        let mut next = Vec::with_capacity(frags.len() + 2);
        for f in frags {
            match f {
                Fragment::Text(t) => cut(t, needle, id, attr, &mut next),
                token => next.push(token),
            }
        }
        frags = next;
    }
    frags
}

/// C `isspace` on a byte, which llama.cpp uses for LSTRIP/RSTRIP.
fn is_c_space(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\n' | 0x0B | 0x0C | b'\r')
}

fn cut<'t>(mut t: &'t str, needle: &str, id: u32, attr: TokenAttr, out: &mut Vec<Fragment<'t>>) {
    while let Some(pos) = t.find(needle) {
        let mut left = &t[..pos];
        if attr.has(TokenAttr::LSTRIP) {
            left = left.trim_end_matches(|c: char| c.is_ascii() && is_c_space(c as u8));
        }
        if !left.is_empty() {
            out.push(Fragment::Text(left));
        }
        out.push(Fragment::Token(id));
        t = &t[pos + needle.len()..];
        if attr.has(TokenAttr::RSTRIP) {
            t = t.trim_start_matches(|c: char| c.is_ascii() && is_c_space(c as u8));
        }
    }
    if !t.is_empty() {
        out.push(Fragment::Text(t));
    }
}
