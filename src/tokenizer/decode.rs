//! Token ids -> bytes and text.

use super::byte_level;
use super::special_tokens::VocabKind;
use super::spm::{self, SPACE_MARK};
use super::token_attr::TokenAttr;
use super::vocab::Vocab;
use super::Tokenizer;

/// The bytes of one token with special tokens shown as their text, as
/// llama.cpp's `token_to_piece(.., special = true)`: control, unknown and
/// user-defined tokens are their stored text; normal tokens are byte-level
/// decoded (BPE) or have `▁` turned into spaces (SPM); byte tokens are their
/// byte; unused and undefined tokens are empty.
pub fn token_piece(vocab: &Vocab, kind: VocabKind, id: u32) -> Vec<u8> {
    let attr = vocab.attr(id);
    let text = vocab.text(id);
    if attr.is_special() {
        text.as_bytes().to_vec()
    } else if attr.has(TokenAttr::NORMAL) {
        match kind {
            VocabKind::Bpe => byte_level::decode(text),
            VocabKind::Spm => text.replace(SPACE_MARK, " ").into_bytes(),
        }
    } else if attr.has(TokenAttr::BYTE) {
        spm::parse_byte_token(text)
            .map(|b| vec![b])
            .unwrap_or_default()
    } else {
        Vec::new()
    }
}

impl Tokenizer {
    /// The bytes of a token, special tokens rendered as their text; empty for
    /// an id outside the vocabulary.
    pub fn token_bytes(&self, id: u32) -> &[u8] {
        self.pieces.get(id as usize).map_or(&[], |p| p)
    }

    /// The bytes a token contributes to decoded text: as [`Self::token_bytes`]
    /// but control and unknown tokens give nothing (llama.cpp's
    /// `special = false`).
    pub fn text_bytes(&self, id: u32) -> &[u8] {
        if !self.vocab.contains(id) {
            return &[];
        }
        let attr = self.vocab.attr(id);
        if attr.has(TokenAttr::CONTROL.with(TokenAttr::UNKNOWN)) {
            &[]
        } else {
            self.token_bytes(id)
        }
    }

    /// A token's piece as text (invalid UTF-8 replaced), specials rendered.
    pub fn piece(&self, id: u32) -> String {
        String::from_utf8_lossy(self.token_bytes(id)).into_owned()
    }

    /// The text of `ids`, control tokens left out, invalid UTF-8 replaced.
    /// For SPM vocabularies with a dummy prefix, the space the encoder put
    /// before the first word is removed again (as HF and llama-cpp-python do).
    pub fn decode(&self, ids: &[u32]) -> String {
        let mut bytes = Vec::new();
        for &id in ids {
            let piece = self.text_bytes(id);
            if bytes.is_empty() && self.add_space_prefix && self.kind() == VocabKind::Spm {
                bytes.extend_from_slice(piece.strip_prefix(b" ").unwrap_or(piece));
            } else {
                bytes.extend_from_slice(piece);
            }
        }
        String::from_utf8_lossy(&bytes).into_owned()
    }
}
