//! Errors of building a tokenizer from GGUF metadata and of encoding text.

use crate::gguf::GgufError;

#[derive(Debug, thiserror::Error)]
pub enum TokenizerError {
    #[error("tokenizer metadata: {0}")]
    Metadata(#[from] GgufError),

    #[error("tokenizer.ggml.model = '{0}' is not supported (supported: 'gpt2' byte-level BPE, 'llama' SentencePiece)")]
    UnsupportedModel(String),

    #[error(
        "tokenizer.ggml.pre = '{0}' names a pre-tokenizer this build does not know (known: {1})"
    )]
    UnknownPreTokenizer(String, String),

    #[error("tokenizer.ggml.tokens is empty")]
    EmptyVocab,

    #[error("duplicate token in tokenizer.ggml.tokens: {text:?} has ids {first} and {second}")]
    DuplicateToken {
        text: String,
        first: u32,
        second: u32,
    },

    #[error("{key} has {found} entries but the vocabulary has {expected} tokens")]
    ShortArray {
        key: &'static str,
        expected: usize,
        found: usize,
    },

    #[error("{flag} is true, but {id_key} is not set")]
    MissingSpecialToken {
        flag: &'static str,
        id_key: &'static str,
    },

    #[error("pre-tokenizer '{pre}': regex {pattern:?} does not compile: {source}")]
    RegexCompile {
        pre: String,
        pattern: String,
        source: Box<fancy_regex::Error>,
    },

    #[error("pre-tokenizer '{pre}': matching text failed: {source}")]
    RegexMatch {
        pre: String,
        source: Box<fancy_regex::Error>,
    },
}
