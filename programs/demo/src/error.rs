//! The demo's one error answer: JSON `{"error": "...", "field": "..."}` with a status
//! (and `Retry-After` when a retry makes sense).

use axum::Json;
use axum::http::{HeaderName, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Map, Value};

/// An API error: status, message and the field it is about.
#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    error: String,
    field: Option<String>,
    retry_after: Option<u64>,
    headers: Vec<(HeaderName, HeaderValue)>,
}

impl ApiError {
    /// A 400 about one field of the request.
    pub fn field(field: &str, error: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, error).about(field)
    }

    /// An error with this status.
    pub fn new(status: StatusCode, error: impl Into<String>) -> Self {
        Self {
            status,
            error: error.into(),
            field: None,
            retry_after: None,
            headers: Vec::new(),
        }
    }

    /// Names the field the error is about.
    pub fn about(mut self, field: &str) -> Self {
        self.field = Some(field.to_owned());
        self
    }

    /// Sends this header too (`WWW-Authenticate` of a 401).
    pub fn header(mut self, name: HeaderName, value: HeaderValue) -> Self {
        self.headers.push((name, value));
        self
    }

    /// Sends `Retry-After: seconds`.
    pub fn retry_after(mut self, seconds: u64) -> Self {
        self.retry_after = Some(seconds);
        self
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut body = Map::new();
        body.insert("error".into(), self.error.into());
        if let Some(field) = self.field {
            body.insert("field".into(), field.into());
        }
        let mut response = (self.status, Json(Value::Object(body))).into_response();
        if let Some(seconds) = self.retry_after {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(seconds));
        }
        for (name, value) in self.headers {
            response.headers_mut().insert(name, value);
        }
        response
    }
}
