//! The wiring language of a spec's `[graph]` sections: one statement a line,
//!
//! ```text
//! stmt := name '=' sum            ('#' starts a comment)
//! sum  := prod ('+' prod)*        a + b  is add(a, b)
//! prod := atom ('*' atom)*        a * b  is mul(a, b)
//! atom := name '?'? | name '(' sum (',' sum)* ')' | '(' sum ')'
//! ```
//!
//! `name?` marks an optional tensor. The builder (`super::builder`) gives
//! the names and functions their meaning.

use std::fmt;

/// `target = expr`, from line `line` (1-based) of its section.
#[derive(Debug, Clone, PartialEq)]
pub struct Statement {
    pub target: String,
    pub expr: Expr,
    pub line: usize,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Expr {
    /// A variable, graph input, `kv_cache` or tensor alias.
    Name {
        name: String,
        optional: bool,
    },
    Call {
        func: String,
        args: Vec<Expr>,
    },
    Add(Box<Expr>, Box<Expr>),
    Mul(Box<Expr>, Box<Expr>),
}

/// A syntax error at `line`:`column` (1-based) of a section.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("line {line}, column {column}: {message}")]
pub struct WiringError {
    pub line: usize,
    pub column: usize,
    pub message: String,
}

impl fmt::Display for Expr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Expr::Name { name, optional } => {
                write!(f, "{name}{}", if *optional { "?" } else { "" })
            }
            Expr::Call { func, args } => {
                write!(f, "{func}(")?;
                for (i, a) in args.iter().enumerate() {
                    write!(f, "{}{a}", if i > 0 { ", " } else { "" })?;
                }
                f.write_str(")")
            }
            Expr::Add(a, b) => write!(f, "({a} + {b})"),
            Expr::Mul(a, b) => write!(f, "({a} * {b})"),
        }
    }
}

/// Parses a section: blank lines and `#` comments are skipped.
pub fn parse_statements(text: &str) -> Result<Vec<Statement>, WiringError> {
    let mut out = Vec::new();
    for (i, raw) in text.lines().enumerate() {
        let code = raw.split('#').next().unwrap_or("");
        if code.trim().is_empty() {
            continue;
        }
        let mut p = Parser {
            s: code.as_bytes(),
            pos: 0,
            line: i + 1,
        };
        out.push(p.statement()?);
    }
    Ok(out)
}

struct Parser<'a> {
    s: &'a [u8],
    pos: usize,
    line: usize,
}

impl Parser<'_> {
    fn fail<T>(&self, message: impl Into<String>) -> Result<T, WiringError> {
        Err(WiringError {
            line: self.line,
            column: self.pos + 1,
            message: message.into(),
        })
    }

    fn skip_ws(&mut self) {
        while self
            .s
            .get(self.pos)
            .is_some_and(|c| c.is_ascii_whitespace())
        {
            self.pos += 1;
        }
    }

    fn eat(&mut self, c: u8) -> bool {
        self.skip_ws();
        let hit = self.s.get(self.pos) == Some(&c);
        if hit {
            self.pos += 1;
        }
        hit
    }

    fn expect(&mut self, c: u8) -> Result<(), WiringError> {
        if self.eat(c) {
            Ok(())
        } else {
            self.fail(format!("expected '{}'", c as char))
        }
    }

    fn name(&mut self) -> Result<String, WiringError> {
        self.skip_ws();
        let start = self.pos;
        while self
            .s
            .get(self.pos)
            .is_some_and(|c| c.is_ascii_alphanumeric() || *c == b'_')
        {
            self.pos += 1;
        }
        if start == self.pos || self.s[start].is_ascii_digit() {
            self.pos = start;
            return self.fail("expected a name");
        }
        Ok(String::from_utf8_lossy(&self.s[start..self.pos]).into_owned())
    }

    fn statement(&mut self) -> Result<Statement, WiringError> {
        let target = self.name()?;
        self.expect(b'=')?;
        let expr = self.sum()?;
        self.skip_ws();
        if self.pos < self.s.len() {
            return self.fail("unexpected text after the expression");
        }
        Ok(Statement {
            target,
            expr,
            line: self.line,
        })
    }

    fn sum(&mut self) -> Result<Expr, WiringError> {
        let mut e = self.prod()?;
        while self.eat(b'+') {
            e = Expr::Add(Box::new(e), Box::new(self.prod()?));
        }
        Ok(e)
    }

    fn prod(&mut self) -> Result<Expr, WiringError> {
        let mut e = self.atom()?;
        while self.eat(b'*') {
            e = Expr::Mul(Box::new(e), Box::new(self.atom()?));
        }
        Ok(e)
    }

    fn atom(&mut self) -> Result<Expr, WiringError> {
        if self.eat(b'(') {
            let e = self.sum()?;
            self.expect(b')')?;
            return Ok(e);
        }
        let name = self.name()?;
        if self.eat(b'?') {
            return Ok(Expr::Name {
                name,
                optional: true,
            });
        }
        if !self.eat(b'(') {
            return Ok(Expr::Name {
                name,
                optional: false,
            });
        }
        let mut args = vec![self.sum()?];
        while self.eat(b',') {
            args.push(self.sum()?);
        }
        self.expect(b')')?;
        Ok(Expr::Call { func: name, args })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn one(s: &str) -> Statement {
        parse_statements(s).unwrap().remove(0)
    }

    #[test]
    fn multiplication_binds_tighter_than_addition() {
        let s = one("y = a + b * c");
        assert_eq!(s.expr.to_string(), "(a + (b * c))");
    }

    #[test]
    fn optional_names_and_calls_parse() {
        let s = one("q = matmul(h, attn_q) + attn_q_bias?  # comment");
        assert_eq!(s.target, "q");
        assert_eq!(s.expr.to_string(), "(matmul(h, attn_q) + attn_q_bias?)");
    }

    #[test]
    fn comments_and_blank_lines_are_skipped_and_lines_counted() {
        let v = parse_statements("# c\n\nx = a\n").unwrap();
        assert_eq!(v.len(), 1);
        assert_eq!(v[0].line, 3);
    }

    #[test]
    fn errors_carry_line_and_column() {
        let e = parse_statements("x = a\ny = f(a,\n").unwrap_err();
        assert_eq!((e.line, e.column), (2, 9));
        assert!(parse_statements("x = a b").is_err());
    }
}
