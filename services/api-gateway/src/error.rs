//! The one error envelope every failure is rendered in:
//! `{"error": {"code", "message", "details": [{"field", "message"}]}, "requestId"}`.
//!
//! Handlers return [`AppError`]; its response carries the error as an extension and the
//! request-id middleware renders the body, because only it knows the request id. Error
//! responses that axum produces by itself (plain-text rejections) are rewritten there too.

use axum::body::Body;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use metachat_proto::error::{ApiError, ErrorCode, FieldViolation};
use serde::Serialize;
use utoipa::ToSchema;

use crate::schema::{ErrorCodeSchema, FieldViolationSchema};

/// An error on its way to the client.
#[derive(Debug, Clone)]
pub(crate) struct AppError(pub ApiError);

impl AppError {
    pub(crate) fn invalid(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self(ApiError::invalid_field(field, message))
    }
}

impl From<ApiError> for AppError {
    fn from(error: ApiError) -> Self {
        Self(error)
    }
}

/// Marks a response whose body the middleware still has to render.
#[derive(Debug, Clone)]
pub(crate) struct PendingError(pub ApiError);

impl IntoResponse for AppError {
    fn into_response(self) -> Response {
        let mut response = self.0.code.http_status().into_response();
        response.extensions_mut().insert(PendingError(self.0));
        response
    }
}

/// The one body of every failure, including unknown routes (404), wrong methods (405),
/// malformed JSON, oversized bodies (413), an unavailable service (503) and timeouts (504).
#[derive(Serialize, ToSchema)]
#[schema(as = Error, examples(json!({
    "error": {
        "code": "invalid_argument",
        "message": "email: must be an e-mail address like name@example.com",
        "details": [{"field": "email", "message": "must be an e-mail address like name@example.com"}]
    },
    "requestId": "5f0c6a8e-1c2b-4d0e-9a51-0b4c1f6f2d7e"
})))]
pub(crate) struct Envelope<'a> {
    error: ErrorBody<'a>,
    /// The request id, also in the `x-request-id` response header.
    #[serde(rename = "requestId")]
    request_id: &'a str,
}

/// What went wrong.
#[derive(Serialize, ToSchema)]
pub(crate) struct ErrorBody<'a> {
    #[schema(value_type = ErrorCodeSchema)]
    code: &'static str,
    /// Human-readable summary. Never contains diary text, secrets or internal addresses.
    message: &'a str,
    /// One entry per invalid field; empty for errors that are not about a field.
    #[schema(value_type = Vec<FieldViolationSchema>)]
    details: &'a [FieldViolation],
}

/// The JSON body of `error` for the request `request_id`.
pub(crate) fn envelope(error: &ApiError, request_id: &str) -> Vec<u8> {
    let envelope = Envelope {
        error: ErrorBody {
            code: error.code.as_str(),
            message: &error.message,
            details: &error.details,
        },
        request_id,
    };
    // Serialising strings and string pairs cannot fail.
    serde_json::to_vec(&envelope).unwrap_or_default()
}

/// Renders `response` as the error envelope when it is an error: a pending [`AppError`], or
/// an error status that something else (axum's own rejections) answered in plain text.
pub(crate) fn render(response: Response, request_id: &str) -> Response {
    let status = response.status();
    let error = match response.extensions().get::<PendingError>() {
        Some(pending) => pending.0.clone(),
        None if status.is_client_error() || status.is_server_error() => {
            if is_json(response.headers()) {
                return response;
            }
            let code = code_for_status(status);
            match code {
                ErrorCode::Unavailable => ApiError::unavailable(default_message(code)),
                _ => ApiError::new(code, default_message(code)),
            }
        }
        None => return response,
    };
    let (mut parts, _) = response.into_parts();
    parts.extensions.remove::<PendingError>();
    // Only a failure that changed nothing invites a retry; a write whose outcome is unknown
    // carries no delay (repeating a create could store it twice).
    if let Some(delay) = error.retry_after {
        // Rounded up: waiting that long is enough.
        let seconds = (delay.as_secs() + u64::from(delay.subsec_nanos() > 0))
            .max(1)
            .to_string();
        if let Ok(value) = HeaderValue::from_str(&seconds) {
            parts.headers.insert(header::RETRY_AFTER, value);
        }
    }
    parts.headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    parts.headers.remove(header::CONTENT_LENGTH);
    Response::from_parts(parts, Body::from(envelope(&error, request_id)))
}

fn is_json(headers: &HeaderMap) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"))
}

/// The error code for an HTTP status nobody attached a code to.
pub(crate) fn code_for_status(status: StatusCode) -> ErrorCode {
    ErrorCode::ALL
        .into_iter()
        // Of the codes sharing 409, the generic one.
        .filter(|code| {
            !matches!(
                code,
                ErrorCode::AlreadyExists | ErrorCode::FailedPrecondition
            )
        })
        .find(|code| code.http_status() == status)
        .unwrap_or(if status.is_client_error() {
            ErrorCode::InvalidArgument
        } else {
            ErrorCode::Internal
        })
}

fn default_message(code: ErrorCode) -> String {
    let message = match code {
        ErrorCode::InvalidArgument => "the request is not valid",
        ErrorCode::NotFound => "no such resource",
        ErrorCode::AlreadyExists | ErrorCode::Conflict | ErrorCode::FailedPrecondition => {
            "the request conflicts with the resource's state"
        }
        ErrorCode::PayloadTooLarge => return crate::extract::too_large_message(),
        ErrorCode::PreconditionFailed => "the resource is not at the version If-Match names",
        ErrorCode::RequestTimeout => "the request did not arrive in time",
        ErrorCode::UriTooLong => "the request URI is too long",
        ErrorCode::RequestHeaderFieldsTooLarge => "the request headers are too large",
        ErrorCode::UnsupportedMediaType => {
            "the request body must be JSON (Content-Type: application/json)"
        }
        ErrorCode::MethodNotAllowed => "method not allowed",
        ErrorCode::Unauthenticated => "authentication required",
        ErrorCode::PermissionDenied => "permission denied",
        ErrorCode::Unavailable => "a backend service is unavailable; retry later",
        ErrorCode::DeadlineExceeded => "a backend service did not answer in time",
        ErrorCode::Internal => "internal error",
        ErrorCode::TooManyRequests => "too many requests; retry after the Retry-After delay",
    };
    message.to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_without_a_code_map_to_the_table() {
        assert_eq!(code_for_status(StatusCode::NOT_FOUND), ErrorCode::NotFound);
        assert_eq!(code_for_status(StatusCode::CONFLICT), ErrorCode::Conflict);
        assert_eq!(
            code_for_status(StatusCode::PAYLOAD_TOO_LARGE),
            ErrorCode::PayloadTooLarge
        );
        assert_eq!(
            code_for_status(StatusCode::UNSUPPORTED_MEDIA_TYPE),
            ErrorCode::UnsupportedMediaType
        );
        assert_eq!(
            code_for_status(StatusCode::BAD_GATEWAY),
            ErrorCode::Internal
        );
    }

    #[test]
    fn a_plain_text_rejection_becomes_the_envelope() {
        let plain = (StatusCode::NOT_FOUND, "nope").into_response();
        let rendered = render(plain, "req-1");
        assert_eq!(rendered.status(), StatusCode::NOT_FOUND);
        assert_eq!(rendered.headers()[header::CONTENT_TYPE], "application/json");
        let unavailable = AppError(ApiError::unavailable("down")).into_response();
        let rendered = render(unavailable, "req-2");
        assert_eq!(rendered.headers()[header::RETRY_AFTER], "1");
        assert!(rendered.extensions().get::<PendingError>().is_none());
        let unknown_outcome =
            AppError(ApiError::new(ErrorCode::Unavailable, "may be saved")).into_response();
        let rendered = render(unknown_outcome, "req-3");
        assert_eq!(rendered.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert!(rendered.headers().get(header::RETRY_AFTER).is_none());
    }
}
