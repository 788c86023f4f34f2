//! The syntax tree of a GBNF grammar: rules of alternatives of sequences
//! of items, each item remembering where it was written.

/// A 1-based line and column in the GBNF text (columns count characters).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Pos {
    pub line: u32,
    pub col: u32,
}

/// One rule: `name ::= body`.
#[derive(Debug, Clone, PartialEq)]
pub struct Rule {
    pub name: String,
    /// Where its name is written.
    pub at: Pos,
    pub body: Expr,
}

/// The rules in the order written.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Grammar {
    pub rules: Vec<Rule>,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Expr {
    /// `a | b | c`, each alternative a sequence (possibly empty).
    Alt(Vec<Vec<Expr>>),
    /// `"text"`, escapes resolved.
    Literal(String),
    /// `[a-z_]` or `[^"\\]`: inclusive ranges of characters.
    Class {
        negated: bool,
        ranges: Vec<(char, char)>,
    },
    /// `.`: any one character.
    Any,
    /// A reference to another rule.
    Ref { name: String, at: Pos },
    /// `x*`, `x+`, `x?`, `x{m}`, `x{m,}`, `x{m,n}`; `max` None: unbounded.
    Repeat {
        inner: Box<Expr>,
        min: u32,
        max: Option<u32>,
    },
}
