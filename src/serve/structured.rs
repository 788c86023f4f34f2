//! The request fields that constrain output: `response_format`
//! (`json_object`, `json_schema`), and llama-server's extensions
//! `grammar` (GBNF, or llguidance's Lark when it starts with
//! `%llguidance`) and `json_schema`. One of them at most.
//!
//! The grammar compiler (the vocabulary's token trie) is built on the
//! first constrained request and kept for the server's life.

use std::sync::{Arc, OnceLock};

use serde_json::Value;

use super::errors::ApiError;
use super::openai_types::CommonFields;
use crate::grammar::{Constraint, GrammarCompiler, GrammarError, GrammarSource};
use crate::sched::Ready;

/// A constraint and the request field it came from (for errors).
#[derive(Debug, Clone, PartialEq)]
pub struct Requested {
    pub source: GrammarSource,
    pub param: String,
}

/// The constraint the fields ask for, if any.
pub fn requested(f: &CommonFields) -> Result<Option<Requested>, ApiError> {
    let mut found: Vec<Requested> = Vec::new();
    if let Some(rf) = f.response_format.as_ref().filter(|v| !v.is_null()) {
        found.extend(response_format(rf)?);
    }
    match &f.grammar {
        None | Some(Value::Null) => {}
        Some(Value::String(g)) if g.trim().is_empty() => {}
        Some(Value::String(g)) => found.push(Requested {
            source: GrammarSource::from_text(g),
            param: "grammar".into(),
        }),
        Some(_) => {
            return Err(ApiError::invalid_param(
                "grammar",
                "`grammar` must be a string (GBNF, or llguidance's syntax after `%llguidance`)",
            ))
        }
    }
    match &f.json_schema {
        None | Some(Value::Null) => {}
        Some(s) => found.push(Requested {
            source: GrammarSource::JsonSchema(s.clone()),
            param: "json_schema".into(),
        }),
    }
    if found.len() > 1 {
        let names: Vec<&str> = found.iter().map(|r| r.param.as_str()).collect();
        return Err(ApiError::invalid_param(
            found[1].param.clone(),
            format!(
                "{} each constrain the output: give one of them",
                names.join(" and ")
            ),
        ));
    }
    let req = found.pop();
    if let Some(r) = &req {
        // Translation errors (GBNF line and column) before any model work.
        r.source
            .to_llguidance()
            .map_err(|e| invalid(&r.param, &r.source, e))?;
    }
    Ok(req)
}

/// `{"type": "text" | "json_object" | "json_schema", ...}`.
fn response_format(rf: &Value) -> Result<Option<Requested>, ApiError> {
    let param = "response_format";
    let ty = rf.get("type").and_then(Value::as_str);
    let source = match ty {
        Some("text") => return Ok(None),
        // llama-server also takes a schema here.
        Some("json_object") => match rf.get("schema") {
            Some(s) if !s.is_null() => GrammarSource::JsonSchema(s.clone()),
            _ => GrammarSource::JsonObject,
        },
        Some("json_schema") => {
            let Some(js) = rf.get("json_schema").filter(|v| v.is_object()) else {
                return Err(ApiError::invalid_param(
                    "response_format.json_schema",
                    "response_format of type json_schema needs `json_schema: {\"name\", \"schema\"}`",
                ));
            };
            match js.get("schema") {
                Some(s) if !s.is_null() => GrammarSource::JsonSchema(s.clone()),
                // OpenAI: no schema means any JSON object.
                _ => GrammarSource::JsonObject,
            }
        }
        _ => {
            return Err(ApiError::invalid_param(
                "response_format.type",
                "response_format.type must be \"text\", \"json_object\" or \"json_schema\"",
            ))
        }
    };
    let param = match &source {
        GrammarSource::JsonSchema(_) if ty == Some("json_schema") => {
            "response_format.json_schema.schema"
        }
        _ => param,
    };
    Ok(Some(Requested {
        source,
        param: param.into(),
    }))
}

fn invalid(param: &str, source: &GrammarSource, e: GrammarError) -> ApiError {
    let code = match source {
        GrammarSource::JsonSchema(_) | GrammarSource::JsonObject => "invalid_json_schema",
        _ => "invalid_grammar",
    };
    ApiError::invalid_param(param, format!("{param}: {e}")).with_code(code)
}

/// The server's one grammar compiler, built on first use.
#[derive(Default)]
pub struct Grammars(OnceLock<Result<Arc<GrammarCompiler>, String>>);

impl Grammars {
    fn compiler<I>(&self, ready: &Ready<I>) -> Result<Arc<GrammarCompiler>, ApiError> {
        self.0
            .get_or_init(|| {
                GrammarCompiler::new(ready.tokenizer.clone(), ready.vocab)
                    .map(Arc::new)
                    .map_err(|e| e.to_string())
            })
            .clone()
            .map_err(|e| ApiError::internal(format!("constrained output is unavailable: {e}")))
    }

    /// Compiles `r` for the model in `ready` (call off the async workers:
    /// a large schema takes milliseconds).
    pub fn compile<I>(&self, ready: &Ready<I>, r: &Requested) -> Result<Constraint, ApiError> {
        self.compiler(ready)?
            .compile(&r.source)
            .map_err(|e| invalid(&r.param, &r.source, e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::serve::extract::typed;
    use serde_json::json;

    fn req(v: Value) -> Result<Option<Requested>, ApiError> {
        requested(&typed::<CommonFields>(&v)?)
    }

    #[test]
    fn response_formats_become_sources() {
        assert_eq!(
            req(json!({"response_format": {"type": "text"}})).unwrap(),
            None
        );
        assert_eq!(
            req(json!({"response_format": {"type": "json_object"}}))
                .unwrap()
                .unwrap()
                .source,
            GrammarSource::JsonObject
        );
        let s = json!({"type": "object", "properties": {"a": {"type": "integer"}}});
        let r = req(json!({"response_format": {"type": "json_schema",
            "json_schema": {"name": "x", "schema": s, "strict": true}}}))
        .unwrap()
        .unwrap();
        assert_eq!(r.source, GrammarSource::JsonSchema(s));
        assert_eq!(r.param, "response_format.json_schema.schema");
    }

    #[test]
    fn a_bad_gbnf_grammar_is_a_400_naming_its_line() {
        let e = req(json!({"grammar": "root ::= \"a\"\nx ::= (\"b\"\n"})).unwrap_err();
        assert_eq!(e.status, axum::http::StatusCode::BAD_REQUEST);
        assert_eq!(e.detail.param.as_deref(), Some("grammar"));
        assert_eq!(e.detail.code.as_deref(), Some("invalid_grammar"));
        assert!(
            e.detail.message.contains("GBNF line 2, column 7"),
            "{}",
            e.detail.message
        );
    }

    #[test]
    fn two_constraints_or_unknown_types_are_refused() {
        let e =
            req(json!({"grammar": "root ::= \"a\"", "response_format": {"type": "json_object"}}))
                .unwrap_err();
        assert!(e.detail.message.contains("give one of them"));
        let e = req(json!({"response_format": {"type": "yaml"}})).unwrap_err();
        assert_eq!(e.detail.param.as_deref(), Some("response_format.type"));
        assert!(req(json!({"grammar": 3})).is_err());
    }
}
