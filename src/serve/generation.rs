//! The bridge from a handler to the step loop: a request is submitted with
//! a sink that feeds a tokio channel, and its events are read back
//! asynchronously. The loop never waits on a client (the channel is
//! unbounded) and a client never waits on a lock held across a step.
//!
//! A client that goes away drops its [`Generation`], hence the channel's
//! receiver: the sink then reports itself closed, and the loop cancels the
//! sequence at its next step and frees its pages — even during a prefill
//! that sends nothing. The drop also sends an explicit cancel, which
//! reaches a request still waiting in the queue just as fast.

use std::sync::Arc;

use tokio::sync::mpsc;

use super::errors::ApiError;
use super::logging::RequestLog;
use super::state::{AppState, ServeEngine};
use crate::sched::{
    Event, EventSink, FinishReason, GenRequest, Logprobs, RequestId, SubmitError, Usage,
};

/// An [`EventSink`] that forwards events to an async receiver.
pub struct ChannelSink(mpsc::UnboundedSender<Event>);

impl EventSink for ChannelSink {
    fn send(&mut self, event: Event) -> bool {
        self.0.send(event).is_ok()
    }

    fn is_closed(&self) -> bool {
        self.0.is_closed()
    }
}

/// A request in the engine, from its handler's side.
pub struct Generation {
    rx: mpsc::UnboundedReceiver<Event>,
    cancel: CancelOnDrop,
    pub log: RequestLog,
}

/// Cancels the request when its handler or stream is dropped before the
/// request ended.
struct CancelOnDrop {
    engine: Arc<ServeEngine>,
    id: RequestId,
    armed: bool,
}

impl Drop for CancelOnDrop {
    fn drop(&mut self) {
        if self.armed {
            self.engine.cancel(self.id);
        }
    }
}

/// Queues `req` for the response `id` of `endpoint`; `prompt_param` names
/// the field a bad prompt came from. A refused request is logged by the
/// request middleware, an accepted one by its generation.
pub fn submit(
    state: &AppState,
    req: GenRequest,
    (id, endpoint, stream): (&str, &'static str, bool),
    prompt_param: &str,
) -> Result<Generation, ApiError> {
    let prompt_tokens = req.prompt.len();
    let (tx, rx) = mpsc::unbounded_channel();
    let request = state
        .engine
        .submit(req, Box::new(ChannelSink(tx)))
        .map_err(|e| ApiError::from_submit(e, prompt_param))?;
    let mut log = RequestLog::new(id, endpoint, stream);
    log.prompt(prompt_tokens);
    Ok(Generation {
        rx,
        cancel: CancelOnDrop {
            engine: state.engine.clone(),
            id: request,
            armed: true,
        },
        log,
    })
}

/// One generated token, as a response reports it.
#[derive(Debug, Clone, PartialEq)]
pub struct Token {
    pub id: u32,
    /// The text it made visible (may be empty, see [`Event::Token`]).
    pub text: String,
    pub logprobs: Option<Logprobs>,
}

/// What a generation says next.
#[derive(Debug, Clone, PartialEq)]
pub enum Step {
    Token(Token),
    /// The end: the last text held back, why it ended, the counts.
    Done {
        text: String,
        finish: FinishReason,
        usage: Usage,
    },
    /// It cannot go on; the error to report.
    Failed(ApiError),
}

impl Generation {
    /// The next step; after `Done` or `Failed` nothing follows (`None`).
    pub async fn next(&mut self) -> Option<Step> {
        if !self.cancel.armed {
            return None;
        }
        let step = match self.rx.recv().await {
            Some(Event::Token { id, text, logprobs }) => {
                self.log.token();
                return Some(Step::Token(Token { id, text, logprobs }));
            }
            Some(Event::Done {
                finish: FinishReason::Cancelled,
                ..
            }) => Step::Failed(ApiError::unavailable(
                "shutting_down",
                "the request was cancelled: the server is shutting down",
            )),
            Some(Event::Done {
                text,
                finish,
                usage,
            }) => {
                self.log.done(finish, usage);
                Step::Done {
                    text,
                    finish,
                    usage,
                }
            }
            Some(Event::Error(msg)) => Step::Failed(engine_error(msg)),
            None => Step::Failed(ApiError::internal(
                "the step loop ended before the request did",
            )),
        };
        self.cancel.armed = false;
        if let Step::Failed(e) = &step {
            self.log.failed(e.status.as_u16());
        }
        Some(step)
    }
}

/// A request the loop turned away at shutdown is a 503; anything else it
/// reports is the backend failing: a 500.
fn engine_error(msg: String) -> ApiError {
    if msg == SubmitError::ShuttingDown.to_string() {
        ApiError::unavailable("shutting_down", msg)
    } else {
        ApiError::internal(msg)
    }
}

/// A whole generation, for a response that is not streamed.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Collected {
    pub text: String,
    pub tokens: Vec<Token>,
    pub finish: Option<FinishReason>,
    pub usage: Usage,
}

/// Reads `gen` to its end.
pub async fn collect(gen: &mut Generation) -> Result<Collected, ApiError> {
    let mut out = Collected::default();
    while let Some(step) = gen.next().await {
        match step {
            Step::Token(t) => {
                out.text.push_str(&t.text);
                out.tokens.push(t);
            }
            Step::Done {
                text,
                finish,
                usage,
            } => {
                out.text.push_str(&text);
                out.finish = Some(finish);
                out.usage = usage;
                return Ok(out);
            }
            Step::Failed(e) => return Err(e),
        }
    }
    Err(ApiError::internal("the generation ended without a result"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_dropped_receiver_closes_the_sink() {
        let (tx, rx) = mpsc::unbounded_channel();
        let mut sink = ChannelSink(tx);
        assert!(!sink.is_closed());
        assert!(sink.send(Event::Error("x".into())));
        drop(rx);
        assert!(sink.is_closed());
        assert!(!sink.send(Event::Error("y".into())));
    }

    #[test]
    fn shutdown_rejections_are_503_and_backend_failures_500() {
        assert_eq!(
            engine_error(SubmitError::ShuttingDown.to_string()).status,
            axum::http::StatusCode::SERVICE_UNAVAILABLE
        );
        assert_eq!(
            engine_error("HIP out of memory".into()).status,
            axum::http::StatusCode::INTERNAL_SERVER_ERROR
        );
    }
}
