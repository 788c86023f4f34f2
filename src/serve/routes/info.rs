//! `GET /health`, `GET /v1/models[/{id}]`, `GET /metrics`.

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::json;

use crate::sched::EngineStatus;
use crate::serve::errors::ApiError;
use crate::serve::openai_types::{ModelCard, ModelList};
use crate::serve::state::AppState;

/// 200 `{"status": "ok"}` once the model is loaded; 503 with the status
/// (`loading`, `failed`, `shutting_down`) and an error object before and
/// after. Open without an API key, for load balancers.
pub async fn health(State(state): State<Arc<AppState>>) -> Response {
    let status = match (state.is_shutting_down(), state.engine.status()) {
        (true, _) => "shutting_down",
        (false, EngineStatus::Ready(_)) => {
            return Json(json!({"status": "ok"})).into_response();
        }
        (false, EngineStatus::Loading) => "loading",
        (false, EngineStatus::Failed(_)) => "failed",
    };
    let err = state
        .ready()
        .err()
        .unwrap_or_else(|| ApiError::unavailable(status, status));
    let body = json!({"status": status, "error": err.detail});
    let mut res = (StatusCode::SERVICE_UNAVAILABLE, Json(body)).into_response();
    if let Some(s) = err.retry_after {
        res.headers_mut().insert(header::RETRY_AFTER, s.into());
    }
    res
}

fn card(state: &AppState) -> ModelCard {
    ModelCard {
        id: state.model.id.clone(),
        object: "model".into(),
        created: state.model.created,
        owned_by: "rocmforge".into(),
    }
}

/// The one model, also while it loads (its name is known from the start).
pub async fn models(State(state): State<Arc<AppState>>) -> Json<ModelList> {
    Json(ModelList {
        object: "list".into(),
        data: vec![card(&state)],
    })
}

pub async fn model(State(state): State<Arc<AppState>>, Path(id): Path<String>) -> Response {
    match state.model.check(Some(&id)) {
        Ok(()) => Json(card(&state)).into_response(),
        Err(e) => e.into_response(),
    }
}

/// The engine's counters in Prometheus' text format.
pub async fn metrics(State(state): State<Arc<AppState>>) -> Response {
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        state.engine.metrics().render(),
    )
        .into_response()
}
