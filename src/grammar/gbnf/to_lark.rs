//! [`Grammar`] → llguidance's Lark dialect.
//!
//! Every GBNF rule becomes a lowercase (parser) rule, so GBNF's
//! character-level semantics are kept: every character of a literal and
//! every character class is a one-character regex lexeme that the Earley
//! parser sequences, since llguidance's lexer is greedy and longer
//! lexemes (whole literals, or rules turned into tokens) would change
//! what `("ab" | "a") "bc"` or `[a-z]* "z"` accepts. Characters are written as
//! `\x{..}` escapes, so no GBNF text can break out of a Lark regex.
//! Rule names are made Lark-safe (`g_` + lowercase, `-` → `_`), with a
//! number added where two GBNF names would collide.

use std::collections::HashMap;
use std::fmt::Write;

use super::ast::{Expr, Grammar, Pos};
use super::GbnfError;

/// The GBNF rule generation starts from.
pub const ROOT: &str = "root";

pub fn to_lark(g: &Grammar) -> Result<String, GbnfError> {
    let Some(root) = g.rules.iter().find(|r| r.name == ROOT) else {
        let at = g.rules.first().map_or(Pos { line: 1, col: 1 }, |r| r.at);
        return Err(GbnfError::new(
            at,
            "the grammar has no `root` rule (generation starts from `root`)",
        ));
    };
    let names = lark_names(g);
    let mut out = String::new();
    let _ = writeln!(out, "start: {}", names[&root.name]);
    for rule in &g.rules {
        let mut body = String::new();
        write_expr(&rule.body, &names, &mut body, true)?;
        let _ = writeln!(out, "{}: {body}", names[&rule.name]);
    }
    Ok(out)
}

/// A distinct Lark rule name for every GBNF rule.
fn lark_names(g: &Grammar) -> HashMap<String, String> {
    let mut names = HashMap::new();
    let mut taken = std::collections::HashSet::new();
    for rule in &g.rules {
        let base: String = rule
            .name
            .chars()
            .map(|c| match c {
                'a'..='z' | '0'..='9' => c,
                'A'..='Z' => c.to_ascii_lowercase(),
                _ => '_',
            })
            .collect();
        let mut name = format!("g_{base}");
        let mut n = 1;
        while !taken.insert(name.clone()) {
            n += 1;
            name = format!("g_{base}_{n}");
        }
        names.insert(rule.name.clone(), name);
    }
    names
}

/// Writes `e`; `top`: the whole body of a rule (no parentheses needed).
fn write_expr(
    e: &Expr,
    names: &HashMap<String, String>,
    out: &mut String,
    top: bool,
) -> Result<(), GbnfError> {
    match e {
        Expr::Alt(alts) => write_alternatives(alts, names, out, top)?,
        // One lexeme per character: llguidance's lexer is greedy, so a
        // literal lexeme "ab" would win over "a" followed by "bc" and
        // refuse text that GBNF accepts (tests/grammar_constraint.rs).
        Expr::Literal(text) => {
            let many = text.chars().count() > 1 && !top;
            if many {
                out.push('(');
            }
            for (i, c) in text.chars().enumerate() {
                if i > 0 {
                    out.push(' ');
                }
                out.push('/');
                push_char(c, out);
                out.push('/');
            }
            if many {
                out.push(')');
            }
        }
        Expr::Class { negated, ranges } => {
            out.push_str(if *negated { "/[^" } else { "/[" });
            for &(lo, hi) in ranges {
                push_char(lo, out);
                if hi != lo {
                    out.push('-');
                    push_char(hi, out);
                }
            }
            out.push_str("]/");
        }
        Expr::Any => out.push_str(r"/[\x{0}-\x{10FFFF}]/"),
        Expr::Ref { name, at } => match names.get(name) {
            Some(n) => out.push_str(n),
            None => {
                return Err(GbnfError::new(
                    *at,
                    format!("the rule `{name}` is used but never defined"),
                ))
            }
        },
        Expr::Repeat { inner, min, max } => {
            out.push('(');
            write_expr(inner, names, out, true)?;
            out.push(')');
            match (min, max) {
                (0, None) => out.push('*'),
                (1, None) => out.push('+'),
                (0, Some(1)) => out.push('?'),
                (m, None) => {
                    let _ = write!(out, "{{{m},}}");
                }
                (m, Some(n)) => {
                    let _ = write!(out, "{{{m},{n}}}");
                }
            }
        }
    }
    Ok(())
}

/// Alternatives; an empty one makes the rest optional, since Lark
/// lexemes cannot be empty.
fn write_alternatives(
    alts: &[Vec<Expr>],
    names: &HashMap<String, String>,
    out: &mut String,
    top: bool,
) -> Result<(), GbnfError> {
    // `""`, `()` and `x{0}` match only the empty string: dropped.
    let is_nothing = |e: &Expr| match e {
        Expr::Repeat { max: Some(0), .. } => true,
        Expr::Literal(t) => t.is_empty(),
        Expr::Alt(alts) => alts.iter().all(Vec::is_empty),
        _ => false,
    };
    let filled: Vec<Vec<&Expr>> = alts
        .iter()
        .map(|seq| seq.iter().filter(|e| !is_nothing(e)).collect::<Vec<_>>())
        .collect();
    let non_empty: Vec<&Vec<&Expr>> = filled.iter().filter(|s| !s.is_empty()).collect();
    let optional = non_empty.len() < filled.len();
    if non_empty.is_empty() {
        // Matches only the empty string.
        out.push_str(EMPTY);
        return Ok(());
    }
    let wrap = optional || !top;
    if wrap {
        out.push('(');
    }
    for (i, seq) in non_empty.iter().enumerate() {
        if i > 0 {
            out.push_str(" | ");
        }
        for (j, item) in seq.iter().enumerate() {
            if j > 0 {
                out.push(' ');
            }
            write_expr(item, names, out, false)?;
        }
    }
    if wrap {
        out.push(')');
    }
    if optional {
        out.push('?');
    }
    Ok(())
}

/// An expression matching only the empty string: an optional lexeme that
/// can never match (no character is below U+0000... so an empty class).
const EMPTY: &str = r"(/[^\x{0}-\x{10FFFF}]/)?";

fn push_char(c: char, out: &mut String) {
    if c.is_ascii_alphanumeric() {
        out.push(c);
    } else {
        let _ = write!(out, "\\x{{{:X}}}", c as u32);
    }
}

#[cfg(test)]
mod tests {
    use super::super::{parse, translate};

    #[test]
    fn rules_become_lowercase_lark_rules_from_start() {
        let lark = translate("root ::= Item+\nItem ::= [a-c] \"xy\"\n").unwrap();
        assert_eq!(
            lark,
            "start: g_root\ng_root: (g_item)+\ng_item: /[a-c]/ (/x/ /y/)\n"
        );
    }

    #[test]
    fn punctuation_is_escaped_inside_regexes() {
        let lark = translate(r#"root ::= "/\"" [^"\\]"#).unwrap();
        assert!(
            lark.contains(r"(/\x{2F}/ /\x{22}/) /[^\x{22}\x{5C}]/"),
            "{lark}"
        );
    }

    #[test]
    fn an_empty_alternative_makes_the_others_optional() {
        let lark = translate("root ::= | \" \" | \"\\n\"").unwrap();
        assert!(lark.contains(r"g_root: (/\x{20}/ | /\x{A}/)?"), "{lark}");
    }

    #[test]
    fn colliding_names_get_distinct_lark_names() {
        let lark = translate("root ::= a-b a_b\na-b ::= \"1\"\na_b ::= \"2\"").unwrap();
        assert!(
            lark.contains("g_a_b: /1/") && lark.contains("g_a_b_2: /2/"),
            "{lark}"
        );
    }

    #[test]
    fn bounded_repetitions_keep_their_bounds() {
        let lark = translate("root ::= [0-9]{2,4} \"a\"{3} \"b\"{1,}").unwrap();
        assert!(
            lark.contains("g_root: (/[0-9]/){2,4} (/a/){3,3} (/b/)+\n"),
            "{lark}"
        );
    }

    #[test]
    fn parse_keeps_escaped_characters() {
        let g = parse(r#"root ::= "\x41\u00e9\n""#).unwrap();
        assert_eq!(
            g.rules[0].body,
            super::Expr::Alt(vec![vec![super::Expr::Literal("Aé\n".into())]])
        );
    }
}
