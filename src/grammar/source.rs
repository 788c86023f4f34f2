//! What a user constrains output with, before it is compiled: a GBNF
//! grammar, a grammar in llguidance's own Lark syntax, a JSON schema, or
//! "any JSON object".

use llguidance::api::TopLevelGrammar;
use serde_json::{json, Value};

use super::gbnf;
use super::GrammarError;

/// Text that starts with this (after blanks) is llguidance's Lark syntax,
/// not GBNF — llama.cpp's marker for the same choice.
pub const LARK_MARKER: &str = "%llguidance";

#[derive(Debug, Clone, PartialEq)]
pub enum GrammarSource {
    /// llama.cpp's GBNF (translated to Lark before compiling).
    Gbnf(String),
    /// llguidance's Lark dialect, used as given.
    Lark(String),
    /// A JSON schema.
    JsonSchema(Value),
    /// Any JSON object (`--json`, `response_format: json_object`).
    JsonObject,
}

impl GrammarSource {
    /// A grammar's text: Lark when it begins with [`LARK_MARKER`], else GBNF.
    pub fn from_text(text: &str) -> Self {
        if text.trim_start().starts_with(LARK_MARKER) {
            GrammarSource::Lark(text.to_string())
        } else {
            GrammarSource::Gbnf(text.to_string())
        }
    }

    /// The grammar llguidance compiles.
    pub fn to_llguidance(&self) -> Result<TopLevelGrammar, GrammarError> {
        Ok(match self {
            GrammarSource::Gbnf(text) => TopLevelGrammar::from_lark(gbnf::translate(text)?),
            GrammarSource::Lark(text) => TopLevelGrammar::from_lark(text.clone()),
            GrammarSource::JsonSchema(schema) => {
                if !schema.is_object() && !schema.is_boolean() {
                    return Err(GrammarError::Schema(
                        "a JSON schema must be an object (or true/false)".into(),
                    ));
                }
                TopLevelGrammar::from_json_schema(with_layout(schema.clone()))
            }
            GrammarSource::JsonObject => {
                TopLevelGrammar::from_json_schema(with_layout(json!({"type": "object"})))
            }
        })
    }
}

/// Fixes the JSON layout to `{"a": 1, "b": [2, 3]}` unless the schema
/// asks otherwise (`x-guidance`): llguidance's default lets blanks and
/// newlines run between any two values, and a model sampled at
/// temperature 1 then sometimes spends its whole budget on blanks.
pub fn with_layout(mut schema: Value) -> Value {
    if let Value::Object(map) = &mut schema {
        map.entry("x-guidance").or_insert_with(
            || json!({"whitespace_flexible": false, "item_separator": ", ", "key_separator": ": "}),
        );
    }
    schema
}
