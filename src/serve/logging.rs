//! One `tracing` info line per HTTP request. Generation requests log when
//! their generation ends (a stream's status is sent long before), with
//! their token counts and timings; every other request is logged by the
//! [`log_requests`] middleware when its response leaves.

use std::time::{Duration, Instant};

use axum::extract::Request;
use axum::middleware::Next;
use axum::response::Response;

use crate::sched::{FinishReason, Usage};

/// Marks a response whose request logs itself through a [`RequestLog`].
#[derive(Debug, Clone, Copy)]
pub struct LoggedByGeneration;

/// Logs requests that are not generations.
pub async fn log_requests(req: Request, next: Next) -> Response {
    let start = Instant::now();
    let method = req.method().clone();
    let path = req.uri().path().to_string();
    let res = next.run(req).await;
    if res.extensions().get::<LoggedByGeneration>().is_none() {
        tracing::info!(
            target: "rfc::serve",
            %method,
            path,
            status = res.status().as_u16(),
            ms = ms(start.elapsed()),
            "request"
        );
    }
    res
}

/// A generation's record, logged once when dropped (whether it finished,
/// failed, or its client went away).
#[derive(Debug)]
pub struct RequestLog {
    id: String,
    endpoint: &'static str,
    start: Instant,
    first_token: Option<Duration>,
    usage: Usage,
    status: u16,
    outcome: &'static str,
    stream: bool,
}

impl RequestLog {
    pub fn new(id: &str, endpoint: &'static str, stream: bool) -> Self {
        RequestLog {
            id: id.to_string(),
            endpoint,
            start: Instant::now(),
            first_token: None,
            usage: Usage::default(),
            // A stream's status went out with its headers; a whole
            // response's is 499 (nginx's "client closed request") until
            // its generation ends.
            status: if stream { 200 } else { 499 },
            // Replaced when the generation ends; a log still saying this
            // means the client left first.
            outcome: "disconnected",
            stream,
        }
    }

    pub fn token(&mut self) {
        self.first_token.get_or_insert_with(|| self.start.elapsed());
        self.usage.completion_tokens += 1;
    }

    pub fn prompt(&mut self, tokens: usize) {
        self.usage.prompt_tokens = tokens;
    }

    pub fn done(&mut self, finish: FinishReason, usage: Usage) {
        self.usage = usage;
        self.outcome = finish.as_str();
        self.status = 200;
    }

    /// The generation failed with `status` (a stream's status stays the
    /// 200 it sent; its error went out as an event).
    pub fn failed(&mut self, status: u16) {
        if !self.stream {
            self.status = status;
        }
        self.outcome = "error";
    }
}

impl Drop for RequestLog {
    fn drop(&mut self) {
        tracing::info!(
            target: "rfc::serve",
            id = self.id,
            endpoint = self.endpoint,
            stream = self.stream,
            status = self.status,
            finish = self.outcome,
            prompt_tokens = self.usage.prompt_tokens,
            cached_tokens = self.usage.cached_tokens,
            completion_tokens = self.usage.completion_tokens,
            ttft_ms = self.first_token.map(ms),
            ms = ms(self.start.elapsed()),
            "generation"
        );
    }
}

fn ms(d: Duration) -> f64 {
    (d.as_secs_f64() * 1e4).round() / 10.0
}
