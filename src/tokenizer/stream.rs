//! Streaming decode: token pieces may end inside a UTF-8 character (byte
//! tokens, byte-level BPE), so text is released only in whole characters.

use super::Tokenizer;

/// Turns a byte stream into text, holding back an unfinished character.
#[derive(Debug, Default, Clone)]
pub struct Utf8Stream {
    pending: Vec<u8>,
}

impl Utf8Stream {
    pub fn new() -> Self {
        Self::default()
    }

    /// Appends bytes and returns the text that is now complete. Bytes that
    /// can never become valid UTF-8 come out as U+FFFD; a tail that may
    /// still be completed by the next bytes is held.
    pub fn push_bytes(&mut self, bytes: &[u8]) -> String {
        self.pending.extend_from_slice(bytes);
        let mut out = String::new();
        let mut rest: &[u8] = &self.pending;
        loop {
            match std::str::from_utf8(rest) {
                Ok(s) => {
                    out.push_str(s);
                    rest = &[];
                    break;
                }
                Err(e) => {
                    let (valid, after) = rest.split_at(e.valid_up_to());
                    out.push_str(std::str::from_utf8(valid).unwrap_or_default());
                    match e.error_len() {
                        Some(n) => {
                            out.push(char::REPLACEMENT_CHARACTER);
                            rest = &after[n..];
                        }
                        None => {
                            rest = after;
                            break;
                        }
                    }
                }
            }
        }
        self.pending = rest.to_vec();
        out
    }

    /// Whether bytes are held back.
    pub fn has_pending(&self) -> bool {
        !self.pending.is_empty()
    }

    /// Releases what is held, an unfinished character as U+FFFD.
    pub fn finish(&mut self) -> String {
        let out = String::from_utf8_lossy(&self.pending).into_owned();
        self.pending.clear();
        out
    }
}

/// Decodes generated ids one at a time into text of whole characters.
#[derive(Debug, Clone)]
pub struct StreamDecoder<'t> {
    tokenizer: &'t Tokenizer,
    utf8: Utf8Stream,
    render_special: bool,
}

impl<'t> StreamDecoder<'t> {
    /// A decoder that leaves control tokens out, as [`Tokenizer::decode`].
    pub fn new(tokenizer: &'t Tokenizer) -> Self {
        Self {
            tokenizer,
            utf8: Utf8Stream::new(),
            render_special: false,
        }
    }

    /// Shows control tokens as their text (`<|im_end|>`) instead.
    pub fn render_special(mut self, yes: bool) -> Self {
        self.render_special = yes;
        self
    }

    /// The text completed by token `id` (possibly empty).
    pub fn push(&mut self, id: u32) -> String {
        let bytes = if self.render_special {
            self.tokenizer.token_bytes(id)
        } else {
            self.tokenizer.text_bytes(id)
        };
        self.utf8.push_bytes(bytes)
    }

    /// What is still held, with U+FFFD for an unfinished character.
    pub fn finish(&mut self) -> String {
        self.utf8.finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_character_split_across_pushes_comes_out_whole() {
        let mut s = Utf8Stream::new();
        let euro = "€".as_bytes();
        assert_eq!(s.push_bytes(&euro[..1]), "");
        assert_eq!(s.push_bytes(&euro[1..2]), "");
        assert_eq!(s.push_bytes(&euro[2..]), "€");
    }

    #[test]
    fn complete_text_before_a_partial_character_is_released() {
        let mut s = Utf8Stream::new();
        let mut bytes = b"ab".to_vec();
        bytes.push("é".as_bytes()[0]);
        assert_eq!(s.push_bytes(&bytes), "ab");
        assert!(s.has_pending());
    }

    #[test]
    fn an_impossible_byte_becomes_a_replacement_char_at_once() {
        let mut s = Utf8Stream::new();
        assert_eq!(s.push_bytes(&[b'a', 0xFF, b'b']), "a\u{FFFD}b");
    }

    #[test]
    fn finish_flushes_an_unfinished_character_as_replacement() {
        let mut s = Utf8Stream::new();
        assert_eq!(s.push_bytes(&"€".as_bytes()[..2]), "");
        assert_eq!(s.finish(), "\u{FFFD}");
        assert!(!s.has_pending());
    }

    #[test]
    fn a_broken_sequence_is_replaced_when_the_next_byte_proves_it() {
        let mut s = Utf8Stream::new();
        assert_eq!(s.push_bytes(&[0xE2, 0x82]), "");
        assert_eq!(s.push_bytes(b"x"), "\u{FFFD}x");
    }
}
