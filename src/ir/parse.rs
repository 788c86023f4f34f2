//! Reads the textual form written by [`super::text`] back into a graph.
//!
//! Lines are parsed in two steps: a small lexer/reader turns each node line
//! into its op head, `key=value` items and type, then [`build`] makes ops out
//! of them. Operands may refer to later lines (a printed cycle reads back).
//! Arena placements (`arena[a..b]`) are accepted and ignored.

mod ops;

use std::collections::HashMap;

use super::dim::Dim;
use super::graph::{Graph, Node, NodeId};
use super::tensor_type::TensorType;
use super::text::default_name;
use crate::quant::GgmlType;

/// A syntax or meaning error at `line`:`column` (1-based).
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("line {line}, column {column}: {message}")]
pub struct ParseError {
    pub line: usize,
    pub column: usize,
    pub message: String,
}

/// Parses a whole graph.
pub fn parse(text: &str) -> Result<Graph, ParseError> {
    let mut nodes: Vec<NodeLine> = Vec::new();
    let mut outputs: Vec<(String, usize, Pos)> = Vec::new();
    let mut defined: HashMap<usize, usize> = HashMap::new();
    for (i, raw) in text.lines().enumerate() {
        let mut c = Cursor::new(raw, i + 1);
        c.skip_ws();
        if c.at_end() || c.peek() == Some('#') {
            continue;
        }
        if c.peek() == Some('%') {
            let line = node_line(&mut c)?;
            if defined.insert(line.text_id, nodes.len()).is_some() {
                return Err(line.at.error(format!("%{} is defined twice", line.text_id)));
            }
            nodes.push(line);
        } else {
            outputs.push(output_line(&mut c)?);
        }
    }
    build(nodes, outputs, &defined)
}

/// A position in the text, for errors.
#[derive(Debug, Clone, Copy)]
struct Pos {
    line: usize,
    column: usize,
}

impl Pos {
    fn error(self, message: impl Into<String>) -> ParseError {
        ParseError {
            line: self.line,
            column: self.column,
            message: message.into(),
        }
    }
}

/// An attribute or operand value as written.
#[derive(Debug, Clone)]
enum Value {
    Ref(usize),
    Hole,
    Number(String),
    Word(String),
    Str(String),
    Call(String, Vec<Item>),
    List(Vec<(Value, Pos)>),
}

/// `key=value`, or a bare value (`input(tokens)`).
#[derive(Debug, Clone)]
struct Item {
    key: Option<String>,
    value: Value,
    at: Pos,
    /// Where the value starts (after `key=`).
    value_at: Pos,
}

struct NodeLine {
    text_id: usize,
    at: Pos,
    op_name: String,
    attrs: Vec<Item>,
    items: Vec<Item>,
    ty: TensorType,
    layer: Option<u32>,
    name: Option<String>,
}

struct Cursor<'a> {
    chars: Vec<char>,
    pos: usize,
    line: usize,
    _src: &'a str,
}

impl<'a> Cursor<'a> {
    fn new(src: &'a str, line: usize) -> Self {
        Cursor {
            chars: src.chars().collect(),
            pos: 0,
            line,
            _src: src,
        }
    }

    fn here(&self) -> Pos {
        Pos {
            line: self.line,
            column: self.pos + 1,
        }
    }

    fn fail<T>(&self, message: impl Into<String>) -> Result<T, ParseError> {
        Err(self.here().error(message))
    }

    fn peek(&self) -> Option<char> {
        self.chars.get(self.pos).copied()
    }

    fn at_end(&self) -> bool {
        self.pos >= self.chars.len()
    }

    fn skip_ws(&mut self) {
        while self.peek().is_some_and(char::is_whitespace) {
            self.pos += 1;
        }
    }

    fn eat(&mut self, c: char) -> bool {
        self.skip_ws();
        let hit = self.peek() == Some(c);
        if hit {
            self.pos += 1;
        }
        hit
    }

    fn expect(&mut self, c: char) -> Result<(), ParseError> {
        if self.eat(c) {
            Ok(())
        } else {
            self.fail(format!("expected '{c}'"))
        }
    }

    fn take_while(&mut self, f: impl Fn(char) -> bool) -> String {
        let start = self.pos;
        while self.peek().is_some_and(&f) {
            self.pos += 1;
        }
        self.chars[start..self.pos].iter().collect()
    }

    fn word(&mut self) -> Result<String, ParseError> {
        self.skip_ws();
        if !self
            .peek()
            .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        {
            return self.fail("expected a name");
        }
        Ok(self.take_while(|c| c.is_ascii_alphanumeric() || c == '_'))
    }

    fn unsigned(&mut self) -> Result<u64, ParseError> {
        self.skip_ws();
        let at = self.here();
        let digits = self.take_while(|c| c.is_ascii_digit());
        digits
            .parse()
            .map_err(|_| at.error("expected a non-negative integer"))
    }

    fn reference(&mut self) -> Result<usize, ParseError> {
        self.expect('%')?;
        Ok(self.unsigned()? as usize)
    }

    /// A number as Rust prints integers and floats (`-1.5e-6`, `0.125`).
    fn number(&mut self) -> String {
        let start = self.pos;
        if matches!(self.peek(), Some('-' | '+')) {
            self.pos += 1;
        }
        self.take_while(|c| c.is_ascii_digit());
        if self.peek() == Some('.')
            && self
                .chars
                .get(self.pos + 1)
                .is_some_and(char::is_ascii_digit)
        {
            self.pos += 1;
            self.take_while(|c| c.is_ascii_digit());
        }
        if matches!(self.peek(), Some('e' | 'E')) {
            self.pos += 1;
            if matches!(self.peek(), Some('-' | '+')) {
                self.pos += 1;
            }
            self.take_while(|c| c.is_ascii_digit());
        }
        self.chars[start..self.pos].iter().collect()
    }

    /// A double-quoted string with Rust's escapes (as `{:?}` writes them).
    fn string(&mut self) -> Result<String, ParseError> {
        self.expect('"')?;
        let mut s = String::new();
        loop {
            let Some(c) = self.peek() else {
                return self.fail("unterminated string");
            };
            self.pos += 1;
            match c {
                '"' => return Ok(s),
                '\\' => s.push(self.escape()?),
                c => s.push(c),
            }
        }
    }

    fn escape(&mut self) -> Result<char, ParseError> {
        let Some(c) = self.peek() else {
            return self.fail("unterminated escape");
        };
        self.pos += 1;
        Ok(match c {
            'n' => '\n',
            't' => '\t',
            'r' => '\r',
            '0' => '\0',
            '\\' | '"' | '\'' => c,
            'u' => {
                self.expect('{')?;
                let hex = self.take_while(|c| c.is_ascii_hexdigit());
                self.expect('}')?;
                u32::from_str_radix(&hex, 16)
                    .ok()
                    .and_then(char::from_u32)
                    .ok_or_else(|| self.here().error(format!("bad unicode escape {hex:?}")))?
            }
            other => return self.fail(format!("unknown escape '\\{other}'")),
        })
    }

    fn value(&mut self) -> Result<Value, ParseError> {
        self.skip_ws();
        match self.peek() {
            Some('%') => Ok(Value::Ref(self.reference()?)),
            Some('"') => Ok(Value::Str(self.string()?)),
            Some('[') => {
                self.pos += 1;
                let mut items = Vec::new();
                if !self.eat(']') {
                    loop {
                        self.skip_ws();
                        let at = self.here();
                        items.push((self.value()?, at));
                        if self.eat(']') {
                            break;
                        }
                        self.expect(',')?;
                    }
                }
                Ok(Value::List(items))
            }
            Some(c) if c.is_ascii_digit() || c == '-' || c == '+' => {
                Ok(Value::Number(self.number()))
            }
            Some(_) => {
                let w = self.word()?;
                if w == "_" {
                    Ok(Value::Hole)
                } else if self.peek() == Some('(') {
                    self.pos += 1;
                    Ok(Value::Call(w, self.items_until(')')?))
                } else {
                    Ok(Value::Word(w))
                }
            }
            None => self.fail("expected a value"),
        }
    }

    /// Comma-separated items up to `close` (consumed).
    fn items_until(&mut self, close: char) -> Result<Vec<Item>, ParseError> {
        let mut items = Vec::new();
        if self.eat(close) {
            return Ok(items);
        }
        loop {
            items.push(self.item()?);
            if self.eat(close) {
                return Ok(items);
            }
            self.expect(',')?;
        }
    }

    fn item(&mut self) -> Result<Item, ParseError> {
        self.skip_ws();
        let at = self.here();
        let value = self.value()?;
        if let Value::Word(key) = &value {
            if self.eat('=') {
                self.skip_ws();
                let value_at = self.here();
                return Ok(Item {
                    key: Some(key.clone()),
                    value: self.value()?,
                    at,
                    value_at,
                });
            }
        }
        Ok(Item {
            key: None,
            value,
            at,
            value_at: at,
        })
    }

    /// `dtype[dim,...]`.
    fn tensor_type(&mut self) -> Result<TensorType, ParseError> {
        self.skip_ws();
        let at = self.here();
        let name = self.word()?;
        let dtype = GgmlType::from_name(&name)
            .ok_or_else(|| at.error(format!("unknown dtype {name:?}")))?;
        self.expect('[')?;
        let mut shape = Vec::new();
        if !self.eat(']') {
            loop {
                self.skip_ws();
                shape.push(self.dim()?);
                if self.eat(']') {
                    break;
                }
                self.expect(',')?;
            }
        }
        Ok(TensorType::new(dtype, shape))
    }

    fn dim(&mut self) -> Result<Dim, ParseError> {
        match self.peek() {
            Some(c) if c.is_ascii_digit() => Ok(Dim::Fixed(self.unsigned()?)),
            Some(c) => {
                let d = Dim::from_symbol(c)
                    .ok_or_else(|| self.here().error(format!("unknown dim {c:?}")))?;
                self.pos += 1;
                Ok(d)
            }
            None => self.fail("expected a dim"),
        }
    }

    /// The rest of the line after `#`: a quoted name or the bare text.
    fn name_comment(&mut self) -> Result<String, ParseError> {
        self.skip_ws();
        if self.peek() == Some('"') {
            let s = self.string()?;
            self.skip_ws();
            if !self.at_end() {
                return self.fail("unexpected text after the name");
            }
            return Ok(s);
        }
        let rest: String = self.chars[self.pos..].iter().collect();
        self.pos = self.chars.len();
        Ok(rest.trim_end().to_string())
    }
}

fn node_line(c: &mut Cursor) -> Result<NodeLine, ParseError> {
    let at = c.here();
    let text_id = c.reference()?;
    c.expect('=')?;
    let op_name = c.word()?;
    let attrs = if c.peek() == Some('(') {
        c.pos += 1;
        c.items_until(')')?
    } else {
        Vec::new()
    };
    let mut items = Vec::new();
    while !c.eat(':') {
        if c.at_end() {
            return c.fail("expected ':' and the result type");
        }
        let item = c.item()?;
        if item.key.is_none() {
            return Err(item
                .at
                .error("expected role=%N, or ':' and the result type"));
        }
        items.push(item);
    }
    let ty = c.tensor_type()?;
    let mut layer = None;
    let mut name = None;
    loop {
        c.skip_ws();
        match c.peek() {
            None => break,
            Some('@') => {
                c.pos += 1;
                if c.peek() != Some('L') {
                    return c.fail("expected @L<layer>");
                }
                c.pos += 1;
                let l = c.unsigned()?;
                layer = Some(u32::try_from(l).map_err(|_| at.error("layer out of range"))?);
            }
            Some('#') => {
                c.pos += 1;
                name = Some(c.name_comment()?);
            }
            Some(_) => {
                if c.word()? != "arena" {
                    return c.fail("expected @L<layer>, arena[..] or # name");
                }
                c.expect('[')?;
                c.unsigned()?;
                c.expect('.')?;
                c.expect('.')?;
                c.unsigned()?;
                c.expect(']')?;
            }
        }
    }
    Ok(NodeLine {
        text_id,
        at,
        op_name,
        attrs,
        items,
        ty,
        layer,
        name,
    })
}

/// `output name = %N`.
fn output_line(c: &mut Cursor) -> Result<(String, usize, Pos), ParseError> {
    let at = c.here();
    if c.word()? != "output" {
        return Err(at.error("expected a node line (%N = ...), an output line or a comment"));
    }
    c.skip_ws();
    let name = if c.peek() == Some('"') {
        c.string()?
    } else {
        c.take_while(|ch| !ch.is_whitespace() && ch != '=')
    };
    c.expect('=')?;
    c.skip_ws();
    let ref_at = c.here();
    let id = c.reference()?;
    c.skip_ws();
    if !c.at_end() {
        return c.fail("unexpected text after the output");
    }
    Ok((name, id, ref_at))
}

fn build(
    nodes: Vec<NodeLine>,
    outputs: Vec<(String, usize, Pos)>,
    defined: &HashMap<usize, usize>,
) -> Result<Graph, ParseError> {
    let mut g = Graph::new();
    let mut ids: Vec<NodeId> = Vec::with_capacity(nodes.len());
    let mut edges = Vec::new();
    for line in &nodes {
        let (op, operands) = ops::op(line.at, &line.op_name, &line.attrs, &line.items)?;
        let name = line.name.clone().unwrap_or_else(|| default_name(&op));
        let mut node = Node::new(op, line.ty.clone(), name);
        node.layer = line.layer;
        ids.push(g.add(node, &[]));
        edges.push(operands);
    }
    let resolve = |text_id: usize, at: Pos| {
        defined
            .get(&text_id)
            .map(|&i| ids[i])
            .ok_or_else(|| at.error(format!("%{text_id} is not defined")))
    };
    for (dst, operands) in ids.iter().zip(edges) {
        for (operand, text_id, at) in operands {
            g.connect_at(resolve(text_id, at)?, *dst, operand);
        }
    }
    for (name, text_id, at) in outputs {
        g.set_output(name, resolve(text_id, at)?);
    }
    Ok(g)
}
