//! Tool calls parsed back out of the model's text: Hermes-style
//! `<tool_call>{"name": ..., "arguments": {...}}</tool_call>` blocks
//! become OpenAI `tool_calls`, whole ([`split_calls`]) or as the text
//! streams in ([`CallStream`]).

use serde_json::{json, Value};

use super::ids::random_u64;

const OPEN: &str = "<tool_call>";
const CLOSE: &str = "</tool_call>";

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
