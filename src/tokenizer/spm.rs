//! SentencePiece BPE (`tokenizer.ggml.model = llama`): the text, with spaces
//! escaped to `▁`, is merged pair by pair, always taking the adjacent pair
//! whose concatenation is the token with the highest score; characters left
//! without a token are spelled with the byte tokens `<0xXX>`.

use super::merge_queue::{char_symbols, merge_all, Score, NO_ID};
use super::vocab::Vocab;

/// The SentencePiece whitespace marker U+2581.
pub const SPACE_MARK: char = '\u{2581}';

/// Appends the tokens of `text` (spaces already escaped).
pub fn encode(vocab: &Vocab, text: &str, unk: Option<u32>, out: &mut Vec<u32>) {
    let mut symbols = char_symbols(text, |c| vocab.id_of(c).unwrap_or(NO_ID));
    merge_all(&mut symbols, |l, r| {
        vocab
            .id_of(&text[l.start..r.end])
            .map(|id| (Score(vocab.score(id)), id))
    });
    for s in symbols.iter().filter(|s| s.is_live()) {
        if s.id != NO_ID {
            out.push(s.id);
            continue;
        }
        for &b in &text.as_bytes()[s.start..s.end] {
            match byte_token(vocab, b).or(unk) {
                Some(id) => out.push(id),
                None => {
                    tracing::warn!(byte = b, "no byte token and no unknown token; byte dropped")
                }
            }
        }
    }
}

/// The token for a raw byte: `<0xXX>`, else the byte itself as a token.
pub fn byte_token(vocab: &Vocab, b: u8) -> Option<u32> {
    vocab.id_of(&format!("<0x{b:02X}>")).or_else(|| {
        b.is_ascii()
            .then(|| vocab.id_of(std::str::from_utf8(&[b]).unwrap_or_default()))
            .flatten()
    })
}

/// The byte of a `<0xXX>` token text.
pub fn parse_byte_token(text: &str) -> Option<u8> {
    let hex = text.strip_prefix("<0x")?.strip_suffix('>')?;
    (hex.len() == 2)
        .then(|| u8::from_str_radix(hex, 16).ok())
        .flatten()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn byte_token_texts_parse_to_their_byte() {
        assert_eq!(parse_byte_token("<0x0A>"), Some(b'\n'));
        assert_eq!(parse_byte_token("<0xFF>"), Some(0xFF));
    }

    #[test]
    fn other_texts_are_not_byte_tokens() {
        assert_eq!(parse_byte_token("<0x0>"), None);
        assert_eq!(parse_byte_token("0x0A"), None);
    }
}
