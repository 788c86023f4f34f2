//! Tool calling: `tools` and `tool_choice` checked, the tools handed to
//! the model's chat template (its `tools` variable), a forced call
//! constrained by a grammar (calls are parsed back out of the text by
//! [`super::tool_calls`]).
//!
//! The model writes calls as Hermes-style templates (Qwen2.5's among
//! them) teach it: `<tool_call>\n{"name": ..., "arguments": {...}}\n
//! </tool_call>`. `required` and a named function constrain the output
//! to such calls of the given functions (their parameters' schemas
//! included); `auto` lets the model choose and parses what it wrote;
//! `none` renders no tools.

use serde_json::{json, Value};

use super::errors::ApiError;
use super::openai_types::ChatFields;
use super::structured::Requested;
use crate::grammar::tool_call::{forced_calls, ToolSpec};

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
}
