//! `POST /v1/completions`: a raw prompt, no chat template.

use std::sync::Arc;

use axum::extract::State;
use axum::response::{IntoResponse, Response};
use axum::Json;

use super::blocking;
use crate::serve::errors::ApiError;
use crate::serve::extract::{typed, JsonBody};
use crate::serve::generation::{collect, submit};
use crate::serve::logging::LoggedByGeneration;
use crate::serve::openai_types::{CommonFields, CompletionFields};
use crate::serve::prompt::Prompt;
use crate::serve::responses::{completion, CompletionChunker, LegacyBuilder, Meta};
use crate::serve::sampling::settings;
use crate::serve::sse::stream_response;
use crate::serve::state::AppState;
use crate::serve::structured;

/// Alternatives per token at most in the legacy format (OpenAI's limit).
pub const MAX_LOGPROBS: i64 = 5;

pub async fn handler(State(state): State<Arc<AppState>>, JsonBody(body): JsonBody) -> Response {
    handle(state, body)
        .await
        .unwrap_or_else(IntoResponse::into_response)
}

async fn handle(state: Arc<AppState>, body: serde_json::Value) -> Result<Response, ApiError> {
    let common: CommonFields = typed(&body)?;
    let fields: CompletionFields = typed(&body)?;
    state.model.check(common.model.as_deref())?;
    let settings = settings(&common)?;
    let logprobs = logprobs(&fields)?;
    let prompt = Prompt::parse(fields.prompt.as_ref())?;
    let wanted = structured::requested(&common)?;
    state.ready()?;
    let (prompt, constraint) = {
        let state = state.clone();
        blocking(move || {
            let ready = state.ready()?;
            let constraint = match &wanted {
                Some(w) => Some(state.grammars.compile(ready, w)?),
                None => None,
            };
            Ok((prompt.tokens(&ready.tokenizer)?, constraint))
        })
        .await?
    };
    let context = state.ready()?.context;
    let mut req = settings.request(prompt, context, logprobs);
    req.constraint = constraint;
    let meta = Meta::new(&state, "cmpl");
    let mut gen = submit(
        &state,
        req,
        (&meta.id, "completions", settings.stream),
        "prompt",
    )?;
    if settings.stream {
        let chunker = CompletionChunker {
            meta,
            include_usage: settings.include_usage,
            logprobs: LegacyBuilder::default(),
        };
        return Ok(stream_response(gen, chunker));
    }
    let mut res = match collect(&mut gen).await {
        Ok(c) => Json(completion(&meta, c)).into_response(),
        Err(e) => e.into_response(),
    };
    res.extensions_mut().insert(LoggedByGeneration);
    Ok(res)
}

/// The legacy `logprobs`: an integer 0..=5; `echo`, `best_of` > 1 and a
/// `suffix` are refused (one plain completion per request).
fn logprobs(f: &CompletionFields) -> Result<Option<usize>, ApiError> {
    if f.echo == Some(true) {
        return Err(ApiError::unsupported("echo", "echo: true is not supported"));
    }
    if f.best_of.is_some_and(|b| b != 1) {
        return Err(ApiError::unsupported("best_of", "best_of must be 1"));
    }
    if f.suffix.as_deref().is_some_and(|s| !s.is_empty()) {
        return Err(ApiError::unsupported(
            "suffix",
            "suffix (insertion) is not supported",
        ));
    }
    match f.logprobs {
        None => Ok(None),
        Some(n) if (0..=MAX_LOGPROBS).contains(&n) => Ok(Some(n as usize)),
        Some(n) => Err(ApiError::invalid_param(
            "logprobs",
            format!("logprobs = {n} is out of range: it must be between 0 and {MAX_LOGPROBS}"),
        )
        .with_code("invalid_value")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn lp(v: serde_json::Value) -> Result<Option<usize>, ApiError> {
        logprobs(&typed::<CompletionFields>(&v)?)
    }

    #[test]
    fn legacy_logprobs_are_an_integer_up_to_five() {
        assert_eq!(lp(json!({})).unwrap(), None);
        assert_eq!(lp(json!({"logprobs": 0})).unwrap(), Some(0));
        assert_eq!(lp(json!({"logprobs": 5})).unwrap(), Some(5));
        assert!(lp(json!({"logprobs": 6})).is_err());
        assert!(lp(json!({"logprobs": true})).is_err());
    }

    #[test]
    fn echo_best_of_and_suffix_are_refused_by_name() {
        assert_eq!(
            lp(json!({"echo": true}))
                .unwrap_err()
                .detail
                .param
                .as_deref(),
            Some("echo")
        );
        assert_eq!(
            lp(json!({"best_of": 2}))
                .unwrap_err()
                .detail
                .param
                .as_deref(),
            Some("best_of")
        );
        assert_eq!(
            lp(json!({"suffix": "x"}))
                .unwrap_err()
                .detail
                .param
                .as_deref(),
            Some("suffix")
        );
        assert!(lp(json!({"echo": false, "best_of": 1, "suffix": ""})).is_ok());
    }
}
