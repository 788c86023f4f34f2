//! The scheduler: one owner of sequences, KV pages, the prefix cache and
//! each sequence's sampling state, which builds every step and hands it to
//! a backend that only runs steps (ARCHITECTURE.md decision 10).
//!
//! - [`request`]: what a client asks for and the events it gets back;
//! - [`scheduler`]: continuous batching, chunked prefill, preemption;
//! - [`page_pool`]: reference-counted KV pages and the prefix cache;
//! - [`engine`]: the step loop on its own thread, fed over a channel
//!   (`rfc serve`);
//! - [`metrics`]: counters and histograms in Prometheus' text format;
//! - [`logprobs`]: log-probabilities of a row of logits;
//! - [`single`]: one request run to its end on the caller's thread (`rfc run`).
//!
//! `rfc run` drives a [`Scheduler`] directly with one request; `rfc serve`
//! drives it through an [`Engine`]. Both load the model the same way.

pub mod engine;
pub mod logprobs;
pub mod metrics;
pub mod page_pool;
pub mod request;
pub mod scheduler;
pub mod single;

pub use engine::{Engine, EngineStatus, Loaded, Ready, RequestId};
pub use metrics::Metrics;
pub use request::{Event, EventSink, FinishReason, GenRequest, Logprobs, TokenLogprob, Usage};
pub use scheduler::{check_request, Scheduler, SchedulerConfig, StepReport, SubmitError};
pub use single::{generate, generate_with_progress, GenerateError, GenerateStats};
