//! `POST /tokenize` and `POST /detokenize` (llama-server's extensions).

use std::sync::Arc;

use axum::extract::State;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::{json, Value};

use super::blocking;
use crate::serve::errors::ApiError;
use crate::serve::extract::{typed, JsonBody};
use crate::serve::openai_types::{DetokenizeRequest, TokenizeRequest};
use crate::serve::state::AppState;
use crate::tokenizer::Tokenizer;

/// `{content, add_special = false, parse_special = true, with_pieces =
/// false}` → `{tokens: [id, ...]}` or `{tokens: [{id, piece}, ...]}`.
pub async fn tokenize(State(state): State<Arc<AppState>>, JsonBody(body): JsonBody) -> Response {
    let run = async {
        let req: TokenizeRequest = typed(&body)?;
        state.ready()?;
        let state = state.clone();
        let tokens = blocking(move || {
            let tok = &state.ready()?.tokenizer;
            let ids = tok
                .encode(&req.content, req.add_special, req.parse_special)
                .map_err(|e| {
                    ApiError::invalid_param("content", format!("the text does not tokenize: {e}"))
                })?;
            Ok(match req.with_pieces {
                false => ids.into_iter().map(Value::from).collect(),
                true => ids
                    .into_iter()
                    .map(|id| json!({"id": id, "piece": piece(tok, id)}))
                    .collect(),
            })
        })
        .await?;
        Ok::<_, ApiError>(Json(json!({ "tokens": Value::Array(tokens) })))
    };
    run.await
        .map_or_else(IntoResponse::into_response, IntoResponse::into_response)
}

/// A token's text, or its bytes where they are not UTF-8 (part of a
/// character), as llama-server answers.
fn piece(tok: &Tokenizer, id: u32) -> Value {
    let bytes = tok.token_bytes(id);
    match std::str::from_utf8(bytes) {
        Ok(s) => Value::from(s),
        Err(_) => Value::from(bytes.to_vec()),
    }
}

/// `{tokens: [id, ...]}` → `{content}`; control tokens give no text.
pub async fn detokenize(State(state): State<Arc<AppState>>, JsonBody(body): JsonBody) -> Response {
    let run = async {
        let req: DetokenizeRequest = typed(&body)?;
        let ready = state.ready()?;
        let vocab = ready.tokenizer.n_vocab();
        let ids = req
            .tokens
            .iter()
            .enumerate()
            .map(|(i, &t)| {
                u32::try_from(t)
                    .ok()
                    .filter(|&id| (id as usize) < vocab)
                    .ok_or_else(|| {
                        ApiError::invalid_param(
                            format!("tokens[{i}]"),
                            format!("token id {t} is outside the vocabulary of {vocab}"),
                        )
                    })
            })
            .collect::<Result<Vec<u32>, _>>()?;
        let state = state.clone();
        let content = blocking(move || Ok(state.ready()?.tokenizer.decode(&ids))).await?;
        Ok::<_, ApiError>(Json(json!({ "content": content })))
    };
    run.await
        .map_or_else(IntoResponse::into_response, IntoResponse::into_response)
}
