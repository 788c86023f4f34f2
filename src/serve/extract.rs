//! Request bodies: JSON whatever the `Content-Type` says (as OpenAI and
//! llama-server take it; `curl -d` sends form encoding by default), parsed
//! once into a value, then read into typed structs whose errors name the
//! field at fault (`messages[1].content: invalid type: ...`).

use axum::body::Bytes;
use axum::extract::{FromRequest, Request};
use axum::http::StatusCode;
use serde::de::DeserializeOwned;
use serde_json::Value;

use super::errors::ApiError;

/// A request body that is a JSON object.
#[derive(Debug, Clone)]
pub struct JsonBody(pub Value);

impl<S: Send + Sync> FromRequest<S> for JsonBody {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        let bytes = Bytes::from_request(req, state).await.map_err(|r| {
            let status = r.status();
            if status == StatusCode::PAYLOAD_TOO_LARGE {
                ApiError::from_status(
                    status,
                    "the request body is larger than the server takes (rfc serve --max-body)",
                )
            } else {
                ApiError::from_status(status, r.body_text())
            }
        })?;
        parse_object(&bytes).map(JsonBody)
    }
}

/// The body as a JSON object, or a 400 saying what is wrong with it.
pub fn parse_object(bytes: &[u8]) -> Result<Value, ApiError> {
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Err(ApiError::invalid(
            "the request body is empty: send a JSON object",
        ));
    }
    let value: Value = serde_json::from_slice(bytes)
        .map_err(|e| ApiError::invalid(format!("the request body is not valid JSON: {e}")))?;
    if !value.is_object() {
        return Err(ApiError::invalid("the request body must be a JSON object"));
    }
    Ok(value)
}

/// Reads `body` as `T` (unknown fields are ignored by `T`'s derive); a
/// wrong type is a 400 naming the field.
pub fn typed<T: DeserializeOwned>(body: &Value) -> Result<T, ApiError> {
    serde_path_to_error::deserialize(body).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner();
        if path.is_empty() || path == "." {
            ApiError::invalid(inner.to_string())
        } else {
            ApiError::invalid_param(path.clone(), format!("`{path}`: {inner}"))
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, serde::Deserialize)]
    struct T {
        #[allow(dead_code)]
        temperature: Option<f32>,
    }

    #[test]
    fn malformed_json_is_a_400_that_says_so() {
        let e = parse_object(b"{\"a\": ").unwrap_err();
        assert_eq!(e.status, StatusCode::BAD_REQUEST);
        assert!(
            e.detail.message.contains("not valid JSON"),
            "{}",
            e.detail.message
        );
    }

    #[test]
    fn empty_body_and_non_objects_are_refused() {
        assert!(parse_object(b"  ").is_err());
        assert!(parse_object(b"[1, 2]").is_err());
        assert!(parse_object(b"\"text\"").is_err());
        assert!(parse_object(b"{}").is_ok());
    }

    #[test]
    fn a_wrong_type_names_its_field() {
        let v = serde_json::json!({"temperature": "hot"});
        let e = typed::<T>(&v).unwrap_err();
        assert_eq!(e.detail.param.as_deref(), Some("temperature"));
        assert!(
            e.detail.message.starts_with("`temperature`: invalid type"),
            "{}",
            e.detail.message
        );
    }
}
