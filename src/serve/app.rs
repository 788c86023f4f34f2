//! The router and the server's life: serve until SIGINT/SIGTERM, then stop
//! accepting, let the engine finish (or cancel at the deadline) what is
//! in flight, let the responses go out, and return.

use std::future::IntoFuture;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::extract::DefaultBodyLimit;
use axum::middleware;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;

use super::errors::{json_errors, ApiError};
use super::routes::{chat_completions, completions, info, tokens};
use super::state::AppState;
use super::{auth, logging, shutdown};

/// How long finished responses get to reach their clients once the engine
/// has stopped.
const FLUSH_GRACE: Duration = Duration::from_secs(2);

/// How the server runs.
#[derive(Debug, Clone)]
pub struct ServeOptions {
    /// Request bodies above this many bytes get a 413.
    pub max_body: usize,
    /// After a shutdown signal, running requests may finish for this long;
    /// then they are cancelled.
    pub shutdown_timeout: Duration,
}

/// Every endpoint, behind the API key check, the body limit, the error
/// shaper and the request log (outermost last).
pub fn router(state: Arc<AppState>, max_body: usize) -> Router {
    Router::new()
        .route("/health", get(info::health))
        .route("/v1/models", get(info::models))
        .route("/v1/models/{*id}", get(info::model))
        .route("/v1/chat/completions", post(chat_completions::handler))
        .route("/v1/completions", post(completions::handler))
        .route("/tokenize", post(tokens::tokenize))
        .route("/detokenize", post(tokens::detokenize))
        .route("/metrics", get(info::metrics))
        .fallback(not_found)
        .layer(middleware::from_fn_with_state(
            state.clone(),
            auth::require_key,
        ))
        .layer(DefaultBodyLimit::max(max_body))
        .layer(middleware::from_fn(json_errors))
        .layer(middleware::from_fn(logging::log_requests))
        .with_state(state)
}

async fn not_found(uri: axum::http::Uri) -> Response {
    ApiError::not_found(format!("no endpoint at {}", uri.path())).into_response()
}

/// Serves on `listener` until a shutdown signal, then drains (see the
/// module's doc). A second signal while draining returns at once.
pub async fn serve(
    listener: tokio::net::TcpListener,
    state: Arc<AppState>,
    opts: ServeOptions,
) -> std::io::Result<()> {
    let app = router(state.clone(), opts.max_body);
    let (stop_tx, mut stop_rx) = tokio::sync::watch::channel(false);
    let server = axum::serve(listener, app).with_graceful_shutdown(async move {
        let _ = stop_rx.wait_for(|stop| *stop).await;
    });
    let mut server = tokio::spawn(server.into_future());
    tokio::select! {
        r = &mut server => return joined(r),
        () = shutdown::signal() => {}
    }
    tracing::info!(
        target: "rfc::serve",
        timeout_s = opts.shutdown_timeout.as_secs_f64(),
        "shutting down: no new connections; running requests may finish until the timeout"
    );
    state.begin_shutdown();
    let _ = stop_tx.send(true);
    if state.engine.ready().is_some() {
        let engine = state.engine.clone();
        let deadline = Instant::now() + opts.shutdown_timeout;
        let drain = tokio::task::spawn_blocking(move || engine.shutdown(deadline));
        tokio::select! {
            _ = drain => {}
            () = shutdown::signal() => {
                tracing::warn!(target: "rfc::serve", "second signal: exiting without draining");
                return Ok(());
            }
        }
    }
    match tokio::time::timeout(FLUSH_GRACE, &mut server).await {
        Ok(r) => joined(r),
        Err(_) => {
            server.abort();
            Ok(())
        }
    }
}

fn joined(r: Result<std::io::Result<()>, tokio::task::JoinError>) -> std::io::Result<()> {
    r.map_err(std::io::Error::other)?
}
