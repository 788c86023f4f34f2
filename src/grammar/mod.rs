//! Structured output: generation constrained by a grammar, a JSON schema
//! or the shape of a tool call.
//!
//! Masks come from llguidance (the library llama.cpp and mistral.rs use),
//! which takes JSON schemas and a Lark-like grammar syntax and computes,
//! from a trie of the vocabulary, which tokens may come next. It does not
//! read llama.cpp's GBNF, so [`gbnf`] translates that.
//!
//! - [`source`]: what the user gave (GBNF, Lark, a schema, any object);
//! - [`gbnf`]: GBNF → Lark, errors at GBNF line and column;
//! - [`vocabulary`]: our tokenizer as llguidance's token trie;
//! - [`compiler`]: grammars compiled once per model's vocabulary;
//! - [`constraint`]: one sequence's state: its mask, advanced per token;
//! - [`tool_call`]: the grammar of a forced tool call.

pub mod compiler;
pub mod constraint;
pub mod gbnf;
pub mod source;
pub mod tool_call;
pub mod vocabulary;

pub use compiler::GrammarCompiler;
pub use constraint::{Constraint, ConstraintFailed};
pub use source::GrammarSource;

/// A grammar or schema that cannot be used, and why (with where, for GBNF).
#[derive(Debug, Clone, thiserror::Error)]
pub enum GrammarError {
    #[error(transparent)]
    Gbnf(#[from] gbnf::GbnfError),
    #[error("the GBNF grammar translated but does not compile: {0}")]
    Translated(String),
    #[error("the llguidance grammar does not compile: {0}")]
    Lark(String),
    #[error("the JSON schema cannot be used: {0}")]
    Schema(String),
    #[error("{0}")]
    Setup(String),
}
