//! The completions endpoint's `prompt`: a string, a list of one string, or
//! token ids (a list of integers, or a list of one such list). Several
//! prompts in one request are refused: one request, one sequence.
//!
//! Text prompts are tokenized as llama-server does: BOS added where the
//! tokenizer asks for it, and the texts of special tokens parsed (so a
//! client can write `<|im_start|>` into a raw prompt). Token-id prompts
//! are used exactly as given, without BOS.

use serde_json::Value;

use super::errors::ApiError;
use crate::tokenizer::Tokenizer;

/// A prompt as the client gave it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Prompt {
    Text(String),
    Tokens(Vec<u32>),
}

impl Prompt {
    pub fn parse(v: Option<&Value>) -> Result<Prompt, ApiError> {
        let p = match v {
            None | Some(Value::Null) => {
                return Err(ApiError::invalid_param("prompt", "`prompt` is required"))
            }
            Some(Value::String(s)) => Prompt::Text(s.clone()),
            Some(Value::Array(items)) => match items.as_slice() {
                [] => return Err(empty()),
                [Value::String(s)] => Prompt::Text(s.clone()),
                [Value::Array(ids)] => Prompt::Tokens(token_ids(ids, "prompt[0]")?),
                [Value::Number(_), ..] => Prompt::Tokens(token_ids(items, "prompt")?),
                [Value::String(_) | Value::Array(_), _, ..] => {
                    return Err(ApiError::invalid_param(
                        "prompt",
                        format!(
                            "`prompt` holds {} prompts; send one per request",
                            items.len()
                        ),
                    ))
                }
                _ => return Err(shape()),
            },
            Some(_) => return Err(shape()),
        };
        match &p {
            Prompt::Text(t) if t.is_empty() => Err(empty()),
            Prompt::Tokens(t) if t.is_empty() => Err(empty()),
            _ => Ok(p),
        }
    }

    /// The prompt's token ids under `tokenizer`.
    pub fn tokens(self, tokenizer: &Tokenizer) -> Result<Vec<u32>, ApiError> {
        match self {
            Prompt::Tokens(ids) => Ok(ids),
            Prompt::Text(text) => tokenizer.encode(&text, true, true).map_err(|e| {
                ApiError::invalid_param("prompt", format!("the prompt does not tokenize: {e}"))
            }),
        }
    }
}

fn empty() -> ApiError {
    ApiError::invalid_param("prompt", "the prompt is empty")
}

fn shape() -> ApiError {
    ApiError::invalid_param(
        "prompt",
        "`prompt` must be a string, a list of one string, or a list of token ids",
    )
}

/// Token ids as u32; the vocabulary is checked when the request is queued.
fn token_ids(items: &[Value], param: &str) -> Result<Vec<u32>, ApiError> {
    items
        .iter()
        .enumerate()
        .map(|(i, v)| {
            v.as_u64()
                .and_then(|id| u32::try_from(id).ok())
                .ok_or_else(|| {
                    ApiError::invalid_param(
                        format!("{param}[{i}]"),
                        format!("{param}[{i}] = {v}: token ids are integers from 0 to the vocabulary size"),
                    )
                })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn parse(v: Value) -> Result<Prompt, ApiError> {
        Prompt::parse(Some(&v))
    }

    #[test]
    fn strings_and_single_string_lists_are_text() {
        assert_eq!(parse(json!("hi")).unwrap(), Prompt::Text("hi".into()));
        assert_eq!(parse(json!(["hi"])).unwrap(), Prompt::Text("hi".into()));
    }

    #[test]
    fn integer_lists_are_token_ids() {
        assert_eq!(
            parse(json!([1, 2, 3])).unwrap(),
            Prompt::Tokens(vec![1, 2, 3])
        );
        assert_eq!(parse(json!([[4, 5]])).unwrap(), Prompt::Tokens(vec![4, 5]));
    }

    #[test]
    fn several_prompts_are_refused() {
        let e = parse(json!(["a", "b"])).unwrap_err();
        assert!(
            e.detail.message.contains("2 prompts"),
            "{}",
            e.detail.message
        );
        assert!(parse(json!([[1], [2]])).is_err());
    }

    #[test]
    fn empty_absent_and_malformed_prompts_are_400() {
        for v in [
            json!(""),
            json!([]),
            json!([""]),
            json!([[]]),
            json!(5),
            json!({"a": 1}),
            json!([true]),
        ] {
            let e = parse(v.clone()).expect_err(&v.to_string());
            assert_eq!(e.status, axum::http::StatusCode::BAD_REQUEST);
        }
        assert!(Prompt::parse(None).is_err());
    }

    #[test]
    fn negative_or_fractional_ids_name_their_index() {
        let e = parse(json!([1, -2])).unwrap_err();
        assert_eq!(e.detail.param.as_deref(), Some("prompt[1]"));
        let e = parse(json!([1.5])).unwrap_err();
        assert_eq!(e.detail.param.as_deref(), Some("prompt[0]"));
    }
}
