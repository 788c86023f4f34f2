//! Text <-> token ids, built from the tokenizer metadata of a GGUF file, with
//! llama.cpp's behaviour as the reference.
//!
//! Two algorithms: byte-level BPE (`tokenizer.ggml.model = gpt2`, with the
//! pre-tokenizer named by `tokenizer.ggml.pre`) and SentencePiece BPE
//! (`llama`). Special tokens are cut out of the text first
//! ([`special_split`]); decoding maps ids back to bytes, and
//! [`StreamDecoder`] turns a stream of ids into complete UTF-8 text.
//! Chat templates live in [`chat`]. See docs/TOKENIZER.md.

pub mod bpe;
pub mod byte_level;
pub mod chat;
pub mod decode;
pub mod encode;
pub mod error;
pub mod load;
pub mod merge_queue;
pub mod pre_tokenizer;
pub mod special_split;
pub mod special_tokens;
pub mod spm;
pub mod stream;
#[cfg(test)]
mod tests;
pub mod token_attr;
pub mod vocab;

pub use error::TokenizerError;
pub use special_tokens::{SpecialTokens, VocabKind};
pub use stream::{StreamDecoder, Utf8Stream};
pub use token_attr::TokenAttr;
pub use vocab::Vocab;

use bpe::BpeMerges;
use pre_tokenizer::PreTokenizer;

/// The algorithm-specific part of a tokenizer.
#[derive(Debug)]
enum Model {
    Bpe {
        merges: BpeMerges,
        pre: PreTokenizer,
        ignore_merges: bool,
    },
    Spm,
}

/// A tokenizer for one model's vocabulary.
#[derive(Debug)]
pub struct Tokenizer {
    vocab: Vocab,
    model: Model,
    special: SpecialTokens,
    /// Special tokens in the order the splitter tries them.
    special_cache: Vec<u32>,
    /// Each token's bytes with special tokens rendered as their text.
    pieces: Vec<Box<[u8]>>,
    add_bos: bool,
    add_eos: bool,
    /// SPM: a space is put before text at the start and after special tokens.
    add_space_prefix: bool,
}

impl Tokenizer {
    pub fn kind(&self) -> VocabKind {
        match self.model {
            Model::Bpe { .. } => VocabKind::Bpe,
            Model::Spm => VocabKind::Spm,
        }
    }

    /// The `tokenizer.ggml.pre` name in use (BPE only).
    pub fn pre_tokenizer(&self) -> Option<&str> {
        match &self.model {
            Model::Bpe { pre, .. } => Some(pre.name()),
            Model::Spm => None,
        }
    }

    pub fn n_vocab(&self) -> usize {
        self.vocab.len()
    }

    pub fn vocab(&self) -> &Vocab {
        &self.vocab
    }

    pub fn special_tokens(&self) -> &SpecialTokens {
        &self.special
    }

    pub fn bos(&self) -> Option<u32> {
        self.special.bos
    }

    pub fn eos(&self) -> Option<u32> {
        self.special.eos
    }

    /// Whether `encode(.., add_special = true, ..)` puts BOS first.
    pub fn add_bos(&self) -> bool {
        self.add_bos
    }

    /// Whether `encode(.., add_special = true, ..)` puts EOS last.
    pub fn add_eos(&self) -> bool {
        self.add_eos
    }

    /// Whether generating `id` ends generation (EOS, EOT, EOM, `<|im_end|>`
    /// and the other tokens llama.cpp marks as end-of-generation).
    pub fn is_eog(&self, id: u32) -> bool {
        self.special.eog.contains(&id)
    }

    /// The id of the token whose text is exactly `text`.
    pub fn token_id(&self, text: &str) -> Option<u32> {
        self.vocab.id_of(text)
    }
}
