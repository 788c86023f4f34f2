//! GBNF, llama.cpp's grammar format, read into a syntax tree
//! ([`parse`]) and written out as llguidance's Lark dialect ([`to_lark`]).
//! Users of llama.cpp bring GBNF files; llguidance does not read them.
//!
//! Every error names the GBNF line and column (1-based) it comes from.

mod ast;
mod parse;
mod to_lark;

pub use ast::{Expr, Grammar, Pos, Rule};
pub use parse::parse;
pub use to_lark::to_lark;

/// A GBNF grammar that cannot be used, and where.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("GBNF line {}, column {}: {message}", at.line, at.col)]
pub struct GbnfError {
    pub at: Pos,
    pub message: String,
}

impl GbnfError {
    pub fn new(at: Pos, message: impl Into<String>) -> Self {
        GbnfError {
            at,
            message: message.into(),
        }
    }
}

/// GBNF text → Lark text for llguidance.
pub fn translate(gbnf: &str) -> Result<String, GbnfError> {
    to_lark(&parse(gbnf)?)
}
