//! GPT-2 byte-level encoding: every byte is written as one printable Unicode
//! character so that BPE merges never see raw control bytes or spaces.
//!
//! Printable Latin-1 bytes (`!`..`~`, `¡`..`¬`, `®`..`ÿ`) stand for
//! themselves; the other 68 bytes map, in increasing order, to U+0100,
//! U+0101, ... (so the space 0x20 becomes `Ġ` U+0120, `\n` becomes `Ċ`).

use std::sync::OnceLock;

struct Tables {
    to_char: [char; 256],
    /// Indexed by code point; only code points below 0x180 are used.
    to_byte: Vec<Option<u8>>,
}

fn is_self_mapped(b: u8) -> bool {
    matches!(b, b'!'..=b'~' | 0xA1..=0xAC | 0xAE..=0xFF)
}

fn tables() -> &'static Tables {
    static T: OnceLock<Tables> = OnceLock::new();
    T.get_or_init(|| {
        let mut to_char = ['\0'; 256];
        let mut next = 0x100u32;
        for b in 0..=255u8 {
            to_char[b as usize] = if is_self_mapped(b) {
                char::from(b)
            } else {
                let c = char::from_u32(next).expect("U+0100..U+0143 are valid chars");
                next += 1;
                c
            };
        }
        let mut to_byte = vec![None; 0x180];
        for (b, c) in to_char.iter().enumerate() {
            to_byte[*c as usize] = Some(b as u8);
        }
        Tables { to_char, to_byte }
    })
}

/// The character that stands for byte `b`.
pub fn byte_to_char(b: u8) -> char {
    tables().to_char[b as usize]
}

/// The byte a character stands for, if it is one of the 256 byte characters.
pub fn char_to_byte(c: char) -> Option<u8> {
    tables().to_byte.get(c as usize).copied().flatten()
}

/// Writes `bytes` as byte-level characters.
pub fn encode(bytes: &[u8]) -> String {
    bytes.iter().map(|&b| byte_to_char(b)).collect()
}

/// The bytes a byte-level token text stands for. A character outside the
/// byte alphabet (possible only in a malformed vocab) is kept as its UTF-8.
pub fn decode(text: &str) -> Vec<u8> {
    let mut out = Vec::with_capacity(text.len());
    for c in text.chars() {
        match char_to_byte(c) {
            Some(b) => out.push(b),
            None => out.extend_from_slice(c.encode_utf8(&mut [0; 4]).as_bytes()),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn space_and_newline_map_to_g_dot_and_c_dot() {
        assert_eq!(byte_to_char(b' '), 'Ġ');
        assert_eq!(byte_to_char(b'\n'), 'Ċ');
    }

    #[test]
    fn printable_ascii_maps_to_itself() {
        assert_eq!(encode(b"Hello!"), "Hello!");
    }

    #[test]
    fn every_byte_round_trips() {
        let all: Vec<u8> = (0..=255).collect();
        assert_eq!(decode(&encode(&all)), all);
    }

    #[test]
    fn the_mapping_is_a_bijection_onto_256_chars() {
        let mut chars: Vec<char> = (0..=255u8).map(byte_to_char).collect();
        chars.sort();
        chars.dedup();
        assert_eq!(chars.len(), 256);
    }
}
