//! Minimal tokenizer vocabularies in which any text tokenizes: the 256
//! byte tokens, special tokens, and filler tokens up to the vocab size.

use crate::gguf::{GgufError, GgufWriter};

/// llama.cpp's token types (tokenizer.ggml.token_type).
pub mod token_type {
    pub const NORMAL: i32 = 1;
    pub const UNKNOWN: i32 = 2;
    pub const CONTROL: i32 = 3;
    pub const BYTE: i32 = 6;
}

/// A tokenizer's GGUF metadata (the tokenizer.ggml.* keys).
#[derive(Debug, Clone, PartialEq)]
pub struct Vocab {
    /// tokenizer.ggml.model: "gpt2" (byte-level BPE) or "llama" (SentencePiece).
    pub model: &'static str,
    /// tokenizer.ggml.pre, for BPE vocabularies.
    pub pre: Option<&'static str>,
    pub tokens: Vec<String>,
    pub types: Vec<i32>,
    pub scores: Option<Vec<f32>>,
    pub merges: Option<Vec<String>>,
    pub bos: u32,
    pub eos: u32,
    pub unk: Option<u32>,
    pub add_bos: Option<bool>,
}

impl Vocab {
    pub fn len(&self) -> usize {
        self.tokens.len()
    }

    pub fn is_empty(&self) -> bool {
        self.tokens.is_empty()
    }

    /// mk_synthetic_gguf.py's vocabulary: the byte-level alphabet, `tok{i}`
    /// fillers, then `<|bos|>` and `<|eos|>` (control tokens) last; two
    /// merges whose results are not tokens.
    pub fn benchmark(n_vocab: usize, pre: &'static str) -> Result<Vocab, String> {
        if n_vocab < 258 {
            return Err(format!("vocab {n_vocab} < 258 (256 bytes + bos + eos)"));
        }
        let mut tokens = byte_level_alphabet();
        tokens.extend((256..n_vocab - 2).map(|i| format!("tok{i}")));
        tokens.extend(["<|bos|>".to_string(), "<|eos|>".to_string()]);
        let mut types = vec![token_type::NORMAL; n_vocab - 2];
        types.extend([token_type::CONTROL; 2]);
        Ok(Vocab {
            model: "gpt2",
            pre: Some(pre),
            tokens,
            types,
            scores: None,
            merges: Some(vec!["Ġ t".into(), "Ġ a".into()]),
            bos: n_vocab as u32 - 2,
            eos: n_vocab as u32 - 1,
            unk: None,
            add_bos: None,
        })
    }

    /// A byte-level BPE vocabulary (Qwen2-style): the byte alphabet, the two
    /// merges' results, fillers, and `<|endoftext|>` as bos and eos.
    pub fn byte_level_bpe(n_vocab: usize, pre: &'static str) -> Result<Vocab, String> {
        let fixed = 256 + 2 + 1;
        if n_vocab < fixed {
            return Err(format!(
                "vocab {n_vocab} < {fixed} (256 bytes, 2 merges, 1 special)"
            ));
        }
        let mut tokens = byte_level_alphabet();
        tokens.extend(["Ġt".to_string(), "Ġa".to_string()]);
        tokens.extend((tokens.len()..n_vocab - 1).map(|i| format!("tok{i}")));
        tokens.push("<|endoftext|>".into());
        let mut types = vec![token_type::NORMAL; n_vocab - 1];
        types.push(token_type::CONTROL);
        let eot = n_vocab as u32 - 1;
        Ok(Vocab {
            model: "gpt2",
            pre: Some(pre),
            tokens,
            types,
            scores: None,
            merges: Some(vec!["Ġ t".into(), "Ġ a".into()]),
            bos: eot,
            eos: eot,
            unk: None,
            add_bos: Some(false),
        })
    }

    /// A SentencePiece vocabulary with byte fallback (LLaMA/Mistral-style):
    /// `<unk>`, `<s>`, `</s>`, the byte tokens `<0x00>`..`<0xFF>`, then
    /// `▁`-prefixed fillers with decreasing scores.
    pub fn sentencepiece_bytes(n_vocab: usize) -> Result<Vocab, String> {
        let fixed = 3 + 256;
        if n_vocab < fixed {
            return Err(format!(
                "vocab {n_vocab} < {fixed} (3 specials + 256 bytes)"
            ));
        }
        let mut tokens: Vec<String> = vec!["<unk>".into(), "<s>".into(), "</s>".into()];
        tokens.extend((0..=255u8).map(|b| format!("<0x{b:02X}>")));
        let fillers = n_vocab - fixed;
        tokens.extend((0..fillers).map(|i| match i {
            0 => "▁".to_string(),
            i => format!("▁w{i}"),
        }));
        let mut types = vec![
            token_type::UNKNOWN,
            token_type::CONTROL,
            token_type::CONTROL,
        ];
        types.extend([token_type::BYTE; 256]);
        types.extend(std::iter::repeat_n(token_type::NORMAL, fillers));
        let mut scores = vec![0.0f32; fixed];
        scores.extend((0..fillers).map(|i| -(i as f32)));
        Ok(Vocab {
            model: "llama",
            pre: None,
            tokens,
            types,
            scores: Some(scores),
            merges: None,
            bos: 1,
            eos: 2,
            unk: Some(0),
            add_bos: Some(true),
        })
    }

    /// Adds the tokenizer.ggml.* keys.
    pub fn write_metadata(&self, w: &mut GgufWriter) -> Result<(), GgufError> {
        w.add_metadata("tokenizer.ggml.model", self.model)?;
        if let Some(pre) = self.pre {
            w.add_metadata("tokenizer.ggml.pre", pre)?;
        }
        w.add_metadata("tokenizer.ggml.tokens", self.tokens.clone())?;
        if let Some(scores) = &self.scores {
            w.add_metadata("tokenizer.ggml.scores", scores.clone())?;
        }
        w.add_metadata("tokenizer.ggml.token_type", self.types.clone())?;
        if let Some(merges) = &self.merges {
            w.add_metadata("tokenizer.ggml.merges", merges.clone())?;
        }
        w.add_metadata("tokenizer.ggml.bos_token_id", self.bos)?;
        w.add_metadata("tokenizer.ggml.eos_token_id", self.eos)?;
        if let Some(unk) = self.unk {
            w.add_metadata("tokenizer.ggml.unknown_token_id", unk)?;
        }
        if let Some(add_bos) = self.add_bos {
            w.add_metadata("tokenizer.ggml.add_bos_token", add_bos)?;
        }
        Ok(())
    }
}

/// GPT-2's byte-to-unicode table as tokens, printable bytes first (in byte
/// order), then the other bytes mapped to U+0100 onwards.
fn byte_level_alphabet() -> Vec<String> {
    let printable = |b: u32| {
        (0x21..=0x7E).contains(&b) || (0xA1..=0xAC).contains(&b) || (0xAE..=0xFF).contains(&b)
    };
    let mut chars: Vec<u32> = (0..256).filter(|&b| printable(b)).collect();
    chars.extend(
        (0..256u32)
            .filter(|&b| !printable(b))
            .enumerate()
            .map(|(n, _)| 256 + n as u32),
    );
    chars
        .into_iter()
        .map(|c| char::from_u32(c).expect("below the surrogates").to_string())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn byte_level_alphabet_maps_newline_to_u010a() {
        let a = byte_level_alphabet();
        assert_eq!(a.len(), 256);
        assert_eq!(a[0], "!");
        // 188 printable bytes come first; byte 0x0A is the 11th non-printable.
        assert_eq!(a[188 + 10], "\u{010A}");
        let unique: std::collections::HashSet<_> = a.iter().collect();
        assert_eq!(unique.len(), 256);
    }

    #[test]
    fn vocabularies_have_the_requested_size_and_unique_tokens() {
        for v in [
            Vocab::benchmark(300, "qwen2").unwrap(),
            Vocab::byte_level_bpe(300, "qwen2").unwrap(),
            Vocab::sentencepiece_bytes(300).unwrap(),
        ] {
            assert_eq!(v.tokens.len(), 300);
            assert_eq!(v.types.len(), 300);
            let unique: std::collections::HashSet<_> = v.tokens.iter().collect();
            assert_eq!(unique.len(), 300, "{}", v.model);
        }
    }

    #[test]
    fn too_small_a_vocab_is_refused() {
        assert!(Vocab::sentencepiece_bytes(258).is_err());
        assert!(Vocab::byte_level_bpe(258, "qwen2").is_err());
    }
}
