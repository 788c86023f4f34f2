//! `POST /v1/chat/completions`.

use std::sync::Arc;

use axum::extract::State;
use axum::response::{IntoResponse, Response};
use axum::Json;

use super::blocking;
use crate::serve::chat;
use crate::serve::errors::ApiError;
use crate::serve::extract::{typed, JsonBody};
use crate::serve::generation::{collect, submit};
use crate::serve::logging::LoggedByGeneration;
use crate::serve::openai_types::{ChatFields, CommonFields};
use crate::serve::responses::{chat_completion, ChatChunker, Meta};
use crate::serve::sampling::settings;
use crate::serve::sse::stream_response;
use crate::serve::state::AppState;
use crate::serve::structured::{self, Requested};
use crate::serve::tool_calls::CallStream;
use crate::serve::tools;

/// Alternatives per token at most (OpenAI's limit).
pub const MAX_TOP_LOGPROBS: i64 = 20;

pub async fn handler(State(state): State<Arc<AppState>>, JsonBody(body): JsonBody) -> Response {
    handle(state, body)
        .await
        .unwrap_or_else(IntoResponse::into_response)
}

async fn handle(state: Arc<AppState>, body: serde_json::Value) -> Result<Response, ApiError> {
    let common: CommonFields = typed(&body)?;
    let fields: ChatFields = typed(&body)?;
    state.model.check(common.model.as_deref())?;
    let settings = settings(&common)?;
    let logprobs = logprobs(&fields)?;
    let messages = chat::messages(&fields)?;
    let tools = tools::tools(&fields)?;
    let wanted = constraint(&common, tools.as_ref())?;
    state.ready()?;
    let parse_calls = tools.is_some();
    let (prompt, constraint) = {
        let state = state.clone();
        blocking(move || {
            let ready = state.ready()?;
            let template = ready.info.template.as_ref().map_err(|e| {
                ApiError::internal(format!("the model's chat template does not compile: {e}"))
            })?;
            let list = tools.as_ref().map(|t| &t.list);
            let prompt = chat::prompt_tokens(template, &ready.tokenizer, &messages, list)?;
            let constraint = match &wanted {
                Some(w) => Some(state.grammars.compile(ready, w)?),
                None => None,
            };
            Ok((prompt, constraint))
        })
        .await?
    };
    let context = state.ready()?.context;
    let mut req = settings.request(prompt, context, logprobs);
    req.constraint = constraint;
    let meta = Meta::new(&state, "chatcmpl");
    let mut gen = submit(
        &state,
        req,
        (&meta.id, "chat.completions", settings.stream),
        "messages",
    )?;
    if settings.stream {
        let chunker = ChatChunker {
            meta,
            include_usage: settings.include_usage,
            calls: parse_calls.then(CallStream::default),
        };
        return Ok(stream_response(gen, chunker));
    }
    let mut res = match collect(&mut gen).await {
        Ok(c) => Json(chat_completion(&meta, c, parse_calls)).into_response(),
        Err(e) => e.into_response(),
    };
    res.extensions_mut().insert(LoggedByGeneration);
    Ok(res)
}

/// The output constraint: `response_format`/`grammar`/`json_schema`, or
/// a forced tool call — not both.
fn constraint(
    common: &CommonFields,
    tools: Option<&tools::Tools>,
) -> Result<Option<Requested>, ApiError> {
    let asked = structured::requested(common)?;
    match (asked, tools.and_then(tools::Tools::constraint)) {
        (Some(a), Some(_)) => Err(ApiError::invalid_param(
            a.param,
            "a forced tool call (tool_choice required or a named function) already constrains the output; drop one of them",
        )),
        (a, t) => Ok(a.or(t)),
    }
}

/// `logprobs: true` with `top_logprobs` alternatives (0..=20).
fn logprobs(f: &ChatFields) -> Result<Option<usize>, ApiError> {
    let top = match f.top_logprobs {
        None => 0,
        Some(n) if (0..=MAX_TOP_LOGPROBS).contains(&n) => n as usize,
        Some(n) => {
            return Err(ApiError::invalid_param(
                "top_logprobs",
                format!(
                "top_logprobs = {n} is out of range: it must be between 0 and {MAX_TOP_LOGPROBS}"
            ),
            )
            .with_code("invalid_value"))
        }
    };
    match f.logprobs {
        Some(true) => Ok(Some(top)),
        _ if f.top_logprobs.is_some_and(|n| n > 0) => Err(ApiError::invalid_param(
            "top_logprobs",
            "top_logprobs needs logprobs: true",
        )),
        _ => Ok(None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn lp(v: serde_json::Value) -> Result<Option<usize>, ApiError> {
        logprobs(&typed::<ChatFields>(&v)?)
    }

    #[test]
    fn logprobs_take_up_to_twenty_alternatives() {
        assert_eq!(lp(json!({})).unwrap(), None);
        assert_eq!(lp(json!({"logprobs": false})).unwrap(), None);
        assert_eq!(lp(json!({"logprobs": true})).unwrap(), Some(0));
        assert_eq!(
            lp(json!({"logprobs": true, "top_logprobs": 20})).unwrap(),
            Some(20)
        );
        for bad in [
            json!({"logprobs": true, "top_logprobs": 21}),
            json!({"logprobs": true, "top_logprobs": -1}),
            json!({"top_logprobs": 3}),
        ] {
            assert_eq!(
                lp(bad).unwrap_err().detail.param.as_deref(),
                Some("top_logprobs")
            );
        }
    }
}
