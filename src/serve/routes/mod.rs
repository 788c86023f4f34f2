//! One file per group of endpoints; each handler reads its body with
//! [`super::extract`], checks it, and answers through [`super::errors`].

pub mod chat_completions;
pub mod completions;
pub mod info;
pub mod tokens;

use super::errors::ApiError;

/// Runs `f` (tokenization, template rendering) off the async workers: a
/// long prompt takes milliseconds that other connections should not wait.
async fn blocking<T, F>(f: F) -> Result<T, ApiError>
where
    T: Send + 'static,
    F: FnOnce() -> Result<T, ApiError> + Send + 'static,
{
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| ApiError::internal(format!("the prompt could not be prepared: {e}")))?
}
