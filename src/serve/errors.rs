//! Errors as OpenAI shapes them: `{"error": {"message", "type", "param",
//! "code"}}` with the matching HTTP status. Every failure a client can
//! cause ends here, so no handler answers in plain text and none panics.

use axum::body::Body;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};

use crate::sched::SubmitError;

/// Seconds a client should wait before retrying a request refused for
/// load (a full queue, a model still loading).
const RETRY_AFTER_SECS: u64 = 1;

/// The body of an error response.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ErrorBody {
    pub error: ErrorDetail,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ErrorDetail {
    pub message: String,
    #[serde(rename = "type")]
    pub kind: String,
    pub param: Option<String>,
    pub code: Option<String>,
}

/// An error response: a status and OpenAI's error object.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{status}: {}", detail.message)]
pub struct ApiError {
    pub status: StatusCode,
    pub detail: ErrorDetail,
    /// `Retry-After` seconds, for refusals that pass.
    pub retry_after: Option<u64>,
}

impl ApiError {
    fn new(status: StatusCode, kind: &str, code: Option<&str>, message: impl Into<String>) -> Self {
        ApiError {
            status,
            detail: ErrorDetail {
                message: message.into(),
                kind: kind.to_string(),
                param: None,
                code: code.map(str::to_string),
            },
            retry_after: None,
        }
    }

    /// 400: the request is malformed or a value is out of range.
    pub fn invalid(message: impl Into<String>) -> Self {
        Self::new(
            StatusCode::BAD_REQUEST,
            "invalid_request_error",
            None,
            message,
        )
    }

    /// 400 about one field (`param` names it, e.g. `messages[1].content`).
    pub fn invalid_param(param: impl Into<String>, message: impl Into<String>) -> Self {
        Self::invalid(message).with_param(param)
    }

    /// 400 for a field this server does not implement.
    pub fn unsupported(param: &str, message: impl Into<String>) -> Self {
        Self::invalid(message)
            .with_param(param)
            .with_code("unsupported_parameter")
    }

    pub fn unauthorized() -> Self {
        Self::new(
            StatusCode::UNAUTHORIZED,
            "invalid_request_error",
            Some("invalid_api_key"),
            "missing or wrong API key: send it as `Authorization: Bearer KEY`",
        )
    }

    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(
            StatusCode::NOT_FOUND,
            "invalid_request_error",
            Some("not_found"),
            message,
        )
    }

    pub fn model_not_found(model: &str, served: &str) -> Self {
        Self::new(
            StatusCode::NOT_FOUND,
            "invalid_request_error",
            Some("model_not_found"),
            format!("the model `{model}` does not exist; this server serves `{served}`"),
        )
        .with_param("model")
    }

    /// 503 while the model loads or after it failed to; retried later.
    pub fn unavailable(code: &str, message: impl Into<String>) -> Self {
        let mut e = Self::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "unavailable_error",
            Some(code),
            message,
        );
        e.retry_after = Some(RETRY_AFTER_SECS);
        e
    }

    /// 500: the backend failed; the request's own input was fine.
    pub fn internal(message: impl Into<String>) -> Self {
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "server_error",
            None,
            message,
        )
    }

    /// The shape of any other status (axum's own rejections, 404, 405).
    pub fn from_status(status: StatusCode, message: impl Into<String>) -> Self {
        let kind = if status.is_server_error() {
            "server_error"
        } else {
            "invalid_request_error"
        };
        let code = match status {
            StatusCode::NOT_FOUND => Some("not_found"),
            StatusCode::METHOD_NOT_ALLOWED => Some("method_not_allowed"),
            StatusCode::PAYLOAD_TOO_LARGE => Some("request_too_large"),
            StatusCode::UNSUPPORTED_MEDIA_TYPE => Some("unsupported_media_type"),
            _ => None,
        };
        Self::new(status, kind, code, message)
    }

    pub fn with_param(mut self, param: impl Into<String>) -> Self {
        self.detail.param = Some(param.into());
        self
    }

    pub fn with_code(mut self, code: &str) -> Self {
        self.detail.code = Some(code.to_string());
        self
    }

    pub fn body(&self) -> ErrorBody {
        ErrorBody {
            error: self.detail.clone(),
        }
    }

    /// The body as JSON text.
    pub fn json(&self) -> String {
        // Strings only: serializing cannot fail.
        serde_json::to_string(&self.body()).unwrap_or_default()
    }

    /// A refused submission, naming `prompt_param` (`messages` or
    /// `prompt`) where the prompt is at fault.
    pub fn from_submit(e: SubmitError, prompt_param: &str) -> Self {
        let message = e.to_string();
        match e {
            SubmitError::EmptyPrompt | SubmitError::BadToken { .. } => {
                Self::invalid_param(prompt_param, message)
            }
            SubmitError::PromptTooLong { .. } => {
                Self::invalid_param(prompt_param, message).with_code("context_length_exceeded")
            }
            SubmitError::NoTokens => Self::invalid_param("max_tokens", message),
            SubmitError::BadBiasToken { .. } => Self::invalid_param("logit_bias", message),
            SubmitError::QueueFull { .. } => {
                let mut e = Self::new(
                    StatusCode::TOO_MANY_REQUESTS,
                    "rate_limit_error",
                    Some("queue_full"),
                    message,
                );
                e.retry_after = Some(RETRY_AFTER_SECS);
                e
            }
            SubmitError::Loading => Self::unavailable("model_loading", message),
            SubmitError::Failed(_) => Self::unavailable("model_failed", message),
            SubmitError::ShuttingDown => Self::unavailable("shutting_down", message),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut res = Response::new(Body::from(self.json()));
        *res.status_mut() = self.status;
        let headers = res.headers_mut();
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        if let Some(s) = self.retry_after {
            headers.insert(header::RETRY_AFTER, HeaderValue::from(s));
        }
        res
    }
}

/// Error responses that left a handler in another shape (axum's own 405,
/// a rejection's plain text) become OpenAI-shaped, keeping their status
/// and headers (`Allow` on a 405).
pub async fn json_errors(req: axum::extract::Request, next: axum::middleware::Next) -> Response {
    let res = next.run(req).await;
    let status = res.status();
    let is_json = res
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"));
    if !(status.is_client_error() || status.is_server_error()) || is_json {
        return res;
    }
    let (mut parts, body) = res.into_parts();
    // Plain-text error bodies are a line or two; a larger one is cut.
    let text = axum::body::to_bytes(body, 4096)
        .await
        .map(|b| String::from_utf8_lossy(&b).trim().to_string())
        .unwrap_or_default();
    let message = if text.is_empty() {
        default_message(status)
    } else {
        text
    };
    let body = ApiError::from_status(status, message).json();
    parts.headers.remove(header::CONTENT_LENGTH);
    parts.headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    Response::from_parts(parts, Body::from(body))
}

fn default_message(status: StatusCode) -> String {
    match status {
        StatusCode::NOT_FOUND => "no such endpoint".to_string(),
        StatusCode::METHOD_NOT_ALLOWED => "this endpoint does not take that method".to_string(),
        s => s.canonical_reason().unwrap_or("error").to_lowercase(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_body_has_openai_fields_with_nulls() {
        let e = ApiError::invalid("bad");
        let v = serde_json::to_value(e.body()).unwrap();
        assert_eq!(
            v,
            serde_json::json!({"error": {"message": "bad", "type": "invalid_request_error", "param": null, "code": null}})
        );
    }

    #[test]
    fn unsupported_field_names_its_param_and_code() {
        let e = ApiError::unsupported("tools", "tools are not supported");
        assert_eq!(e.status, StatusCode::BAD_REQUEST);
        assert_eq!(e.detail.param.as_deref(), Some("tools"));
        assert_eq!(e.detail.code.as_deref(), Some("unsupported_parameter"));
    }

    #[test]
    fn full_queue_is_429_with_retry_after() {
        let e = ApiError::from_submit(SubmitError::QueueFull { queued: 3 }, "prompt");
        assert_eq!(e.status, StatusCode::TOO_MANY_REQUESTS);
        let res = e.into_response();
        assert_eq!(res.headers()[header::RETRY_AFTER], "1");
        assert_eq!(res.headers()[header::CONTENT_TYPE], "application/json");
    }

    #[test]
    fn long_prompt_is_400_context_length_exceeded() {
        let e = ApiError::from_submit(
            SubmitError::PromptTooLong {
                tokens: 5000,
                context: 4096,
            },
            "messages",
        );
        assert_eq!(e.status, StatusCode::BAD_REQUEST);
        assert_eq!(e.detail.code.as_deref(), Some("context_length_exceeded"));
        assert_eq!(e.detail.param.as_deref(), Some("messages"));
        assert!(e.detail.message.contains("5000"), "{}", e.detail.message);
        assert!(e.detail.message.contains("4096"), "{}", e.detail.message);
    }

    #[test]
    fn loading_and_shutdown_are_503() {
        for s in [SubmitError::Loading, SubmitError::ShuttingDown] {
            assert_eq!(
                ApiError::from_submit(s, "prompt").status,
                StatusCode::SERVICE_UNAVAILABLE
            );
        }
    }
}
