//! The grammar of a forced tool call (`tool_choice` `required` or a named
//! function): one or more calls, each `<tool_call>\n{"name": ...,
//! "arguments": {...}}\n</tool_call>` — the format of Hermes-style
//! templates (Qwen2.5 among them) — whose JSON is constrained by the
//! function's name and its parameters' schema.

use serde_json::{json, Value};

use super::source::{with_layout, GrammarSource};

/// Text around each call in the model's output.
pub const OPEN: &str = "<tool_call>\n";
pub const CLOSE: &str = "\n</tool_call>";

/// A function the model may call.
#[derive(Debug, Clone, PartialEq)]
pub struct ToolSpec {
    pub name: String,
    /// A JSON schema of the arguments object.
    pub parameters: Value,
}

/// Calls of exactly the functions in `tools` (at least one call; calls
/// are separated by a newline).
pub fn forced_calls(tools: &[ToolSpec]) -> GrammarSource {
    let options: Vec<Value> = tools
        .iter()
        .map(|t| {
            json!({
                "type": "object",
                "properties": {"name": {"const": t.name}, "arguments": t.parameters},
                "required": ["name", "arguments"],
                "additionalProperties": false,
            })
        })
        .collect();
    let schema = match options.as_slice() {
        [one] => one.clone(),
        _ => json!({ "anyOf": options }),
    };
    let schema = with_layout(schema);
    GrammarSource::Lark(format!(
        "%llguidance {{}}\nstart: call (/\\x{{A}}/ call)*\ncall: {} %json {} {}\n",
        lark_literal(OPEN),
        schema,
        lark_literal(CLOSE)
    ))
}

/// `text` as a Lark regex matching exactly it.
fn lark_literal(text: &str) -> String {
    let mut out = String::from("/");
    for c in text.chars() {
        if c.is_ascii_alphanumeric() || c == '_' {
            out.push(c);
        } else {
            out.push_str(&format!("\\x{{{:X}}}", c as u32));
        }
    }
    out.push('/');
    out
}
