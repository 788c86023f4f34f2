//! `rfc serve`: an OpenAI-compatible HTTP server over the scheduler's
//! [`Engine`](crate::sched::Engine) (ARCHITECTURE.md decision 10). The
//! step loop runs on its own thread; the handlers here run on tokio, talk
//! to it through channels, and never block it or each other.
//!
//! - [`app`]: the router and the server's life (graceful shutdown);
//! - [`routes`]: the endpoints;
//! - [`extract`], [`openai_types`]: request bodies and response JSON;
//! - [`sampling`], [`chat`], [`prompt`]: fields → a checked
//!   [`GenRequest`](crate::sched::GenRequest);
//! - [`generation`], [`responses`], [`sse`]: events → responses, whole or
//!   streamed;
//! - [`errors`], [`auth`], [`logging`], [`shutdown`], [`state`], [`ids`].
//!
//! docs/SERVING.md describes the endpoints as a user sees them.

pub mod app;
pub mod auth;
pub mod chat;
pub mod errors;
pub mod extract;
pub mod generation;
pub mod ids;
pub mod logging;
pub mod openai_types;
pub mod prompt;
pub mod responses;
pub mod routes;
pub mod sampling;
pub mod shutdown;
pub mod sse;
pub mod state;
pub mod structured;
pub mod tool_calls;
pub mod tools;

pub use app::{router, serve, ServeOptions};
pub use errors::ApiError;
pub use state::{AppState, ModelInfo, ServeEngine, ServedModel};

#[cfg(test)]
mod tests;
