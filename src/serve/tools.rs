//! Tool calling: `tools` and `tool_choice` checked, the tools handed to
//! the model's chat template (its `tools` variable), a forced call
//! constrained by a grammar, and calls parsed back out of the text.
//!
//! The model writes calls as Hermes-style templates (Qwen2.5's among
//! them) teach it: `<tool_call>\n{"name": ..., "arguments": {...}}\n
//! </tool_call>`. `required` and a named function constrain the output
//! to such calls of the given functions (their parameters' schemas
//! included); `auto` lets the model choose and parses what it wrote;
//! `none` renders no tools.

use serde_json::{json, Value};

use super::errors::ApiError;
use super::ids::random_u64;
use super::openai_types::ChatFields;
use super::structured::Requested;
use crate::grammar::tool_call::{forced_calls, ToolSpec};

const OPEN: &str = "<tool_call>";
const CLOSE: &str = "</tool_call>";

#[derive(Debug, Clone, PartialEq)]
pub enum ToolChoice {
    None,
    Auto,
    Required,
    Named(String),
}

/// A request's tools and what it allows the model to do with them.
#[derive(Debug, Clone, PartialEq)]
pub struct Tools {
    /// The tools as given (what the template renders).
    pub list: Value,
    pub specs: Vec<ToolSpec>,
    pub choice: ToolChoice,
}

/// `tools` and `tool_choice`; `None` when the model gets no tools.
pub fn tools(f: &ChatFields) -> Result<Option<Tools>, ApiError> {
    for (name, v) in [
        ("functions", &f.functions),
        ("function_call", &f.function_call),
    ] {
        if v.as_ref().is_some_and(|v| !v.is_null() && v != &json!([])) {
            return Err(ApiError::unsupported(
                name,
                format!("{name} (the legacy form) is not supported: use `tools` and `tool_choice`"),
            ));
        }
    }
    let list = match &f.tools {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Array(a)) => a.clone(),
        Some(_) => return Err(ApiError::invalid_param("tools", "`tools` must be a list")),
    };
    let specs = list
        .iter()
        .enumerate()
        .map(|(i, t)| spec(i, t))
        .collect::<Result<Vec<_>, _>>()?;
    let choice = choice(f.tool_choice.as_ref(), &specs)?;
    if specs.is_empty() || choice == ToolChoice::None {
        return Ok(None);
    }
    Ok(Some(Tools {
        list: Value::Array(list),
        specs,
        choice,
    }))
}

fn spec(i: usize, t: &Value) -> Result<ToolSpec, ApiError> {
    let param = format!("tools[{i}]");
    if t.get("type").and_then(Value::as_str) != Some("function") {
        return Err(ApiError::invalid_param(
            format!("{param}.type"),
            format!("{param}.type must be \"function\" (the only tool type)"),
        ));
    }
    let func = t.get("function").filter(|f| f.is_object()).ok_or_else(|| {
        ApiError::invalid_param(
            format!("{param}.function"),
            format!("{param}.function must be an object with a `name`"),
        )
    })?;
    let name = func
        .get("name")
        .and_then(Value::as_str)
        .filter(|n| {
            !n.is_empty()
                && n.chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
        })
        .ok_or_else(|| {
            ApiError::invalid_param(
                format!("{param}.function.name"),
                format!("{param}.function.name must be letters, digits, `_` or `-`"),
            )
        })?;
    let parameters = match func.get("parameters") {
        None | Some(Value::Null) => json!({"type": "object", "properties": {}}),
        Some(p) if p.is_object() => p.clone(),
        Some(_) => {
            return Err(ApiError::invalid_param(
                format!("{param}.function.parameters"),
                format!("{param}.function.parameters must be a JSON schema object"),
            ))
        }
    };
    Ok(ToolSpec {
        name: name.to_string(),
        parameters,
    })
}

fn choice(v: Option<&Value>, specs: &[ToolSpec]) -> Result<ToolChoice, ApiError> {
    let c = match v {
        None | Some(Value::Null) => {
            if specs.is_empty() {
                ToolChoice::None
            } else {
                ToolChoice::Auto
            }
        }
        Some(Value::String(s)) => match s.as_str() {
            "none" => ToolChoice::None,
            "auto" => ToolChoice::Auto,
            "required" => ToolChoice::Required,
            other => {
                return Err(ApiError::invalid_param(
                    "tool_choice",
                    format!("tool_choice = {other:?}: it must be \"none\", \"auto\", \"required\" or {{\"type\": \"function\", \"function\": {{\"name\": ...}}}}"),
                ))
            }
        },
        Some(obj) => match obj.pointer("/function/name").and_then(Value::as_str) {
            Some(name) if specs.iter().any(|s| s.name == name) => ToolChoice::Named(name.into()),
            Some(name) => {
                return Err(ApiError::invalid_param(
                    "tool_choice.function.name",
                    format!("tool_choice names {name:?}, which is not among `tools`"),
                ))
            }
            None => {
                return Err(ApiError::invalid_param(
                    "tool_choice",
                    "tool_choice must be a string or {\"type\": \"function\", \"function\": {\"name\": ...}}",
                ))
            }
        },
    };
    if specs.is_empty() && matches!(c, ToolChoice::Required | ToolChoice::Named(_)) {
        return Err(ApiError::invalid_param(
            "tool_choice",
            "tool_choice asks for a tool call, but `tools` is empty",
        ));
    }
    Ok(c)
}

impl Tools {
    /// The constraint a forced call needs (`required`, a named function).
    pub fn constraint(&self) -> Option<Requested> {
        let specs: Vec<ToolSpec> = match &self.choice {
            ToolChoice::Required => self.specs.clone(),
            ToolChoice::Named(n) => self
                .specs
                .iter()
                .filter(|s| &s.name == n)
                .cloned()
                .collect(),
            ToolChoice::None | ToolChoice::Auto => return None,
        };
        Some(Requested {
            source: forced_calls(&specs),
            param: "tools".into(),
        })
    }
}

/// A call parsed from the model's text.
#[derive(Debug, Clone, PartialEq)]
pub struct ToolCall {
    pub id: String,
    pub name: String,
    /// The arguments as a JSON text (OpenAI's form).
    pub arguments: String,
}

impl ToolCall {
    /// OpenAI's `tool_calls[]` entry (`index` for streamed deltas).
    pub fn to_json(&self, index: Option<usize>) -> Value {
        let mut v = json!({
            "id": self.id,
            "type": "function",
            "function": {"name": self.name, "arguments": self.arguments},
        });
        if let Some(i) = index {
            v["index"] = json!(i);
        }
        v
    }
}

/// One `<tool_call>` block's inside, if it is a call.
fn parse_call(inner: &str) -> Option<ToolCall> {
    let v: Value = serde_json::from_str(inner.trim()).ok()?;
    let name = v.get("name")?.as_str()?.to_string();
    let arguments = match v.get("arguments") {
        None | Some(Value::Null) => "{}".to_string(),
        Some(Value::String(s)) => s.clone(),
        Some(a) => a.to_string(),
    };
    Some(ToolCall {
        id: format!("call_{:016x}", random_u64()),
        name,
        arguments,
    })
}

/// The text's calls and the content around them (trimmed; blocks that
/// are not calls stay in the content).
pub fn split_calls(text: &str) -> (String, Vec<ToolCall>) {
    let mut s = CallStream::default();
    let mut content = s.push(text).0;
    let (rest, calls_end) = s.finish();
    content.push_str(&rest);
    let mut calls = s.calls;
    calls.extend(calls_end);
    (content.trim().to_string(), calls)
}

/// Calls found in text that arrives piece by piece: content is released
/// as soon as it cannot be the start of a call, a call as soon as its
/// block closes. Blanks are held until something follows them, so the
/// newlines between calls never become content.
#[derive(Debug, Default)]
pub struct CallStream {
    buf: String,
    /// Every call found so far.
    pub calls: Vec<ToolCall>,
}

impl CallStream {
    /// Adds text; returns the content now certain and the calls now closed.
    pub fn push(&mut self, text: &str) -> (String, Vec<ToolCall>) {
        self.buf.push_str(text);
        let mut content = String::new();
        let mut calls = Vec::new();
        loop {
            if let Some(start) = self.buf.find(OPEN) {
                let Some(end) = self.buf[start..].find(CLOSE).map(|e| start + e) else {
                    content.push_str(&self.buf[..start]);
                    self.buf.drain(..start);
                    break;
                };
                content.push_str(&self.buf[..start]);
                match parse_call(&self.buf[start + OPEN.len()..end]) {
                    Some(call) => calls.push(call),
                    None => content.push_str(&self.buf[start..end + CLOSE.len()]),
                }
                self.buf.drain(..end + CLOSE.len());
                continue;
            }
            // Keep what could begin `<tool_call>`.
            let keep = (1..OPEN.len().min(self.buf.len() + 1))
                .rev()
                .find(|&k| {
                    self.buf.is_char_boundary(self.buf.len() - k)
                        && OPEN.starts_with(&self.buf[self.buf.len() - k..])
                })
                .unwrap_or(0);
            let cut = self.buf.len() - keep;
            content.push_str(&self.buf[..cut]);
            self.buf.drain(..cut);
            break;
        }
        // Blanks wait for what follows them.
        let blank_tail = content.len() - content.trim_end().len();
        let held = content.split_off(content.len() - blank_tail);
        self.buf.insert_str(0, &held);
        if content.trim().is_empty() && !calls.is_empty() {
            content.clear();
        }
        self.calls.extend(calls.iter().cloned());
        (content, calls)
    }

    /// The text still held (an unclosed block is content) at the end.
    pub fn finish(&mut self) -> (String, Vec<ToolCall>) {
        let rest = std::mem::take(&mut self.buf);
        if self.calls.is_empty() {
            (rest, Vec::new())
        } else {
            (rest.trim_end().to_string(), Vec::new())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::serve::extract::typed;

    fn weather() -> Value {
        json!([{"type": "function", "function": {"name": "get_weather",
            "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}}])
    }

    fn parse(v: Value) -> Result<Option<Tools>, ApiError> {
        tools(&typed::<ChatFields>(&v)?)
    }

    #[test]
    fn choices_are_read_and_checked_against_the_tools() {
        let t = parse(json!({"tools": weather()})).unwrap().unwrap();
        assert_eq!(t.choice, ToolChoice::Auto);
        assert!(t.constraint().is_none());
        let t = parse(json!({"tools": weather(), "tool_choice": "required"}))
            .unwrap()
            .unwrap();
        assert!(t.constraint().is_some());
        let named = json!({"type": "function", "function": {"name": "get_weather"}});
        let t = parse(json!({"tools": weather(), "tool_choice": named}))
            .unwrap()
            .unwrap();
        assert_eq!(t.choice, ToolChoice::Named("get_weather".into()));
        assert_eq!(
            parse(json!({"tools": weather(), "tool_choice": "none"})).unwrap(),
            None
        );
        let other = json!({"type": "function", "function": {"name": "nope"}});
        let e = parse(json!({"tools": weather(), "tool_choice": other})).unwrap_err();
        assert_eq!(e.detail.param.as_deref(), Some("tool_choice.function.name"));
        let e = parse(json!({"tool_choice": "required"})).unwrap_err();
        assert_eq!(e.detail.param.as_deref(), Some("tool_choice"));
        let e = parse(json!({"tools": [{"type": "code_interpreter"}]})).unwrap_err();
        assert_eq!(e.detail.param.as_deref(), Some("tools[0].type"));
    }

    #[test]
    fn calls_are_split_from_the_content() {
        let text = "Let me check.\n<tool_call>\n{\"name\": \"get_weather\", \"arguments\": {\"city\": \"Oslo\"}}\n</tool_call>\n<tool_call>\n{\"name\": \"f\", \"arguments\": {}}\n</tool_call>";
        let (content, calls) = split_calls(text);
        assert_eq!(content, "Let me check.");
        assert_eq!(calls.len(), 2);
        assert_eq!(calls[0].name, "get_weather");
        assert_eq!(calls[0].arguments, r#"{"city":"Oslo"}"#);
        let (content, calls) = split_calls("<tool_call>not json</tool_call> x");
        assert!(calls.is_empty());
        assert_eq!(content, "<tool_call>not json</tool_call> x");
    }

    #[test]
    fn streamed_pieces_release_content_early_and_calls_when_closed() {
        let mut s = CallStream::default();
        assert_eq!(s.push("Hi <tool").0, "Hi");
        let (c, calls) = s.push("_call>\n{\"name\": \"f\", \"arguments\": {\"a\": 1}}\n</tool_");
        assert_eq!((c.as_str(), calls.len()), ("", 0));
        let (c, calls) = s.push("call>\n");
        assert_eq!(c, "");
        assert_eq!(calls[0].arguments, r#"{"a":1}"#);
        assert_eq!(s.finish().0, "");
        let mut plain = CallStream::default();
        assert_eq!(plain.push("a < b").0, "a < b");
        assert_eq!(plain.push(" <").0, "");
        assert_eq!(plain.finish().0, " <");
    }
}
