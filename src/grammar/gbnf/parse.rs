//! GBNF text → [`Grammar`], following llama.cpp's `grammar-parser`: a rule
//! ends at the end of its line, except inside parentheses and right after
//! `::=` or `|`; `#` starts a comment to the end of the line. Rule names
//! are letters, digits, `-` and `_`.

use super::ast::{Expr, Grammar, Pos, Rule};
use super::GbnfError;

/// Repetition counts above this are refused: `x{1000000}` would expand
/// into a grammar too large to compile.
const MAX_REPEAT: u32 = 10_000;

/// Parses a whole GBNF grammar.
pub fn parse(src: &str) -> Result<Grammar, GbnfError> {
    let mut p = Parser {
        chars: src.chars().collect(),
        i: 0,
        line: 1,
        col: 1,
    };
    let mut grammar = Grammar::default();
    p.space(true);
    while !p.at_end() {
        let rule = p.rule()?;
        if let Some(first) = grammar.rules.iter().find(|r| r.name == rule.name) {
            return Err(GbnfError::new(
                rule.at,
                format!(
                    "rule `{}` is defined twice (first at line {}, column {})",
                    rule.name, first.at.line, first.at.col
                ),
            ));
        }
        grammar.rules.push(rule);
        p.space(true);
    }
    Ok(grammar)
}

struct Parser {
    chars: Vec<char>,
    i: usize,
    line: u32,
    col: u32,
}

fn is_name_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '-' || c == '_'
}

impl Parser {
    fn at_end(&self) -> bool {
        self.i >= self.chars.len()
    }

    fn peek(&self) -> Option<char> {
        self.chars.get(self.i).copied()
    }

    fn pos(&self) -> Pos {
        Pos {
            line: self.line,
            col: self.col,
        }
    }

    fn bump(&mut self) -> Option<char> {
        let c = self.peek()?;
        self.i += 1;
        if c == '\n' {
            self.line += 1;
            self.col = 1;
        } else {
            self.col += 1;
        }
        Some(c)
    }

    fn err<T>(&self, message: impl Into<String>) -> Result<T, GbnfError> {
        Err(GbnfError::new(self.pos(), message))
    }

    /// Skips blanks and comments; newlines too where `newlines` allows.
    fn space(&mut self, newlines: bool) {
        while let Some(c) = self.peek() {
            match c {
                ' ' | '\t' => {}
                '\r' | '\n' if newlines => {}
                '#' => {
                    while self.peek().is_some_and(|c| c != '\n' && c != '\r') {
                        self.bump();
                    }
                    continue;
                }
                _ => return,
            }
            self.bump();
        }
    }

    fn name(&mut self) -> Result<String, GbnfError> {
        let mut name = String::new();
        while let Some(c) = self.peek().filter(|&c| is_name_char(c)) {
            name.push(c);
            self.bump();
        }
        if name.is_empty() {
            return match self.peek() {
                Some(c) => self.err(format!("expected a rule name, found {c:?}")),
                None => self.err("expected a rule name, found the end of the grammar"),
            };
        }
        Ok(name)
    }

    fn rule(&mut self) -> Result<Rule, GbnfError> {
        let at = self.pos();
        let name = self.name()?;
        self.space(false);
        if !self.chars[self.i..].starts_with(&[':', ':', '=']) {
            return self.err(format!("expected `::=` after the rule name `{name}`"));
        }
        for _ in 0..3 {
            self.bump();
        }
        self.space(true);
        let body = self.alternatives(false)?;
        match self.peek() {
            None | Some('\n') | Some('\r') => {}
            Some(c) => {
                return self.err(format!(
                    "unexpected {c:?}: expected the end of the line after rule `{name}`"
                ))
            }
        }
        Ok(Rule { name, at, body })
    }

    /// `seq | seq | ...`; `nested`: inside parentheses (newlines are blanks).
    fn alternatives(&mut self, nested: bool) -> Result<Expr, GbnfError> {
        let mut alts = vec![self.sequence(nested)?];
        while self.peek() == Some('|') {
            self.bump();
            self.space(true);
            alts.push(self.sequence(nested)?);
        }
        Ok(Expr::Alt(alts))
    }

    fn sequence(&mut self, nested: bool) -> Result<Vec<Expr>, GbnfError> {
        let mut items = Vec::new();
        loop {
            match self.peek() {
                None | Some('|') | Some(')') | Some('\n') | Some('\r') => return Ok(items),
                Some(_) => {}
            }
            let item = self.primary()?;
            self.space(nested);
            items.push(self.postfix(item, nested)?);
        }
    }

    fn primary(&mut self) -> Result<Expr, GbnfError> {
        let at = self.pos();
        match self.peek() {
            Some('"') => {
                self.bump();
                self.literal()
            }
            Some('[') => {
                self.bump();
                self.class()
            }
            Some('(') => {
                self.bump();
                self.space(true);
                let inner = self.alternatives(true)?;
                if self.peek() != Some(')') {
                    return Err(GbnfError::new(
                        at,
                        "this parenthesis is never closed (expected `)`)",
                    ));
                }
                self.bump();
                Ok(inner)
            }
            Some('.') => {
                self.bump();
                Ok(Expr::Any)
            }
            Some('<') => self.err("token references (`<...>`) are not supported"),
            Some('!') => self.err("negated token references (`!<...>`) are not supported"),
            Some(c) if is_name_char(c) => Ok(Expr::Ref {
                name: self.name()?,
                at,
            }),
            Some(c) => self.err(format!("unexpected {c:?}")),
            None => self.err("unexpected end of the grammar"),
        }
    }

    fn postfix(&mut self, mut item: Expr, nested: bool) -> Result<Expr, GbnfError> {
        loop {
            let (min, max) = match self.peek() {
                Some('*') => (0, None),
                Some('+') => (1, None),
                Some('?') => (0, Some(1)),
                Some('{') => {
                    self.bump();
                    let r = self.braces()?;
                    item = Expr::Repeat {
                        inner: Box::new(item),
                        min: r.0,
                        max: r.1,
                    };
                    self.space(nested);
                    continue;
                }
                _ => return Ok(item),
            };
            self.bump();
            self.space(nested);
            item = Expr::Repeat {
                inner: Box::new(item),
                min,
                max,
            };
        }
    }

    /// `{m}`, `{m,}`, `{m,n}` after the `{`.
    fn braces(&mut self) -> Result<(u32, Option<u32>), GbnfError> {
        self.space(true);
        let min = self.number()?;
        self.space(true);
        let max = match self.peek() {
            Some('}') => Some(min),
            Some(',') => {
                self.bump();
                self.space(true);
                if self.peek() == Some('}') {
                    None
                } else {
                    let at = self.pos();
                    let max = self.number()?;
                    if max < min {
                        return Err(GbnfError::new(
                            at,
                            format!("repetition {{{min},{max}}}: the maximum is below the minimum"),
                        ));
                    }
                    Some(max)
                }
            }
            _ => return self.err("expected `,` or `}` in a repetition"),
        };
        self.space(true);
        if self.peek() != Some('}') {
            return self.err("expected `}` to close the repetition");
        }
        self.bump();
        Ok((min, max))
    }

    fn number(&mut self) -> Result<u32, GbnfError> {
        let at = self.pos();
        let mut digits = String::new();
        while let Some(c) = self.peek().filter(char::is_ascii_digit) {
            digits.push(c);
            self.bump();
        }
        if digits.is_empty() {
            return self.err("expected a number");
        }
        match digits.parse::<u32>() {
            Ok(n) if n <= MAX_REPEAT => Ok(n),
            _ => Err(GbnfError::new(
                at,
                format!("repetition count {digits} is above the limit of {MAX_REPEAT}"),
            )),
        }
    }

    /// A string literal after its opening quote.
    fn literal(&mut self) -> Result<Expr, GbnfError> {
        let mut text = String::new();
        loop {
            match self.peek() {
                None | Some('\n') | Some('\r') => {
                    return self.err("unterminated string literal (missing `\"`)")
                }
                Some('"') => {
                    self.bump();
                    return Ok(Expr::Literal(text));
                }
                Some(_) => text.push(self.char_in("a string literal")?),
            }
        }
    }

    /// A character class after its `[`.
    fn class(&mut self) -> Result<Expr, GbnfError> {
        let negated = self.peek() == Some('^');
        if negated {
            self.bump();
        }
        let mut ranges = Vec::new();
        loop {
            match self.peek() {
                None | Some('\n') | Some('\r') => {
                    return self.err("unterminated character class (missing `]`)")
                }
                Some(']') => {
                    self.bump();
                    return Ok(Expr::Class { negated, ranges });
                }
                Some(_) => {}
            }
            let lo = self.char_in("a character class")?;
            let mut hi = lo;
            let after_dash = self.chars.get(self.i + 1).copied();
            if self.peek() == Some('-')
                && !matches!(after_dash, None | Some(']') | Some('\n') | Some('\r'))
            {
                self.bump();
                let at = self.pos();
                hi = self.char_in("a character class")?;
                if hi < lo {
                    return Err(GbnfError::new(
                        at,
                        format!("the range {lo:?}-{hi:?} is empty (its end is below its start)"),
                    ));
                }
            }
            ranges.push((lo, hi));
        }
    }

    /// One character of a literal or class, escapes resolved.
    fn char_in(&mut self, what: &str) -> Result<char, GbnfError> {
        let at = self.pos();
        let c = self.bump().expect("callers check for the end");
        if c != '\\' {
            return Ok(c);
        }
        let Some(e) = self.bump() else {
            return Err(GbnfError::new(at, format!("unfinished escape in {what}")));
        };
        let digits = match e {
            'n' => return Ok('\n'),
            'r' => return Ok('\r'),
            't' => return Ok('\t'),
            '\\' | '"' | '[' | ']' | '-' | '^' | '/' => return Ok(e),
            'x' => 2,
            'u' => 4,
            'U' => 8,
            other => {
                return Err(GbnfError::new(
                    at,
                    format!("unknown escape `\\{other}` in {what}"),
                ))
            }
        };
        let mut v: u32 = 0;
        for _ in 0..digits {
            let d = self.peek().and_then(|c| c.to_digit(16)).ok_or_else(|| {
                GbnfError::new(
                    at,
                    format!("`\\{e}` needs {digits} hexadecimal digits in {what}"),
                )
            })?;
            self.bump();
            v = v * 16 + d;
        }
        char::from_u32(v)
            .ok_or_else(|| GbnfError::new(at, format!("`\\{e}{v:X}` is not a Unicode character")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn error(src: &str) -> (u32, u32, String) {
        let e = parse(src).unwrap_err();
        (e.at.line, e.at.col, e.message)
    }

    #[test]
    fn rules_continue_after_operators_and_inside_parentheses_only() {
        let g = parse("root ::=\n  a |\n  b\na ::= (\"x\"\n  \"y\")\nb ::= \"z\"\n").unwrap();
        assert_eq!(g.rules.len(), 3);
        let (line, col, msg) = error("root ::= \"a\"\n  \"b\"\n");
        assert_eq!((line, col), (2, 3), "{msg}");
    }

    #[test]
    fn errors_say_where_and_what() {
        assert_eq!(error("root ::= \"a\\q\"").0, 1);
        assert!(error("root ::= \"a\\q\"")
            .2
            .contains("unknown escape `\\q`"));
        let (line, _, msg) = error("root ::= a\na ::= \"x\"\na ::= \"y\"\n");
        assert_eq!(line, 3);
        assert!(
            msg.contains("defined twice (first at line 2, column 1)"),
            "{msg}"
        );
        assert!(error("root = \"a\"").2.contains("expected `::=`"));
        assert!(error("root ::= <[42]>").2.contains("token references"));
        assert!(error("root ::= [z-a]").2.contains("is empty"));
        assert!(error("root ::= \"a\"{3,1}").2.contains("below the minimum"));
        assert!(error("root ::= \"a\"{99999}").2.contains("above the limit"));
    }

    #[test]
    fn columns_count_characters_not_bytes() {
        let (line, col, _) = error("root ::= \"é\" ?? )");
        assert_eq!((line, col), (1, 17));
    }
}
