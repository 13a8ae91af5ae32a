//! One error type for the whole platform and the one table that maps its codes to gRPC and HTTP.
//!
//! A service returns an [`ApiError`]; it crosses the gRPC hop as a `tonic::Status` with a
//! `google.rpc.ErrorInfo` (reason = the code) and a `google.rpc.BadRequest` (the field
//! violations), and the gateway turns it back into the same [`ApiError`] and its HTTP status.

use std::collections::HashMap;

use serde::Serialize;
use tonic::Code;
use tonic::codegen::http::StatusCode;
use tonic_types::{ErrorDetails, StatusExt};

/// The `domain` of the `google.rpc.ErrorInfo` MetaChat services attach.
pub const ERROR_DOMAIN: &str = "metachat";

/// What went wrong, as clients see it. The string form is the `error.code` of the JSON body.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorCode {
    /// The request is malformed or a field is invalid.
    InvalidArgument,
    /// The resource does not exist (or is deleted).
    NotFound,
    /// A resource with the same unique key already exists (username, e-mail).
    AlreadyExists,
    /// A concurrent change won; retry with fresh state.
    Conflict,
    /// The resource is not in a state that allows the operation.
    FailedPrecondition,
    /// The request's `If-Match` names a version the resource no longer has.
    PreconditionFailed,
    /// The client did not send the whole request (header or body) in time.
    RequestTimeout,
    /// The request body is larger than the gateway accepts.
    PayloadTooLarge,
    /// The request URI (path and query) is longer than the gateway accepts.
    UriTooLong,
    /// The request has more or larger header fields than the gateway accepts.
    RequestHeaderFieldsTooLarge,
    /// The request body is not declared as JSON.
    UnsupportedMediaType,
    /// The route exists but not with this method.
    MethodNotAllowed,
    Unauthenticated,
    PermissionDenied,
    /// A dependency is down or overloaded; retry later.
    Unavailable,
    /// A dependency did not answer in time.
    DeadlineExceeded,
    /// A bug: nothing the client did can cause it.
    Internal,
}

/// The one table: code, name, gRPC status, HTTP status.
#[rustfmt::skip]
const TABLE: &[(ErrorCode, &str, Code, StatusCode)] = &[
    (ErrorCode::InvalidArgument, "invalid_argument", Code::InvalidArgument, StatusCode::BAD_REQUEST),
    (ErrorCode::NotFound, "not_found", Code::NotFound, StatusCode::NOT_FOUND),
    (ErrorCode::AlreadyExists, "already_exists", Code::AlreadyExists, StatusCode::CONFLICT),
    (ErrorCode::Conflict, "conflict", Code::Aborted, StatusCode::CONFLICT),
    (ErrorCode::FailedPrecondition, "failed_precondition", Code::FailedPrecondition, StatusCode::CONFLICT),
    // FAILED_PRECONDITION as for failed_precondition: the ErrorInfo reason tells them apart.
    (ErrorCode::PreconditionFailed, "precondition_failed", Code::FailedPrecondition, StatusCode::PRECONDITION_FAILED),
    (ErrorCode::RequestTimeout, "request_timeout", Code::DeadlineExceeded, StatusCode::REQUEST_TIMEOUT),
    (ErrorCode::PayloadTooLarge, "payload_too_large", Code::ResourceExhausted, StatusCode::PAYLOAD_TOO_LARGE),
    (ErrorCode::UriTooLong, "uri_too_long", Code::InvalidArgument, StatusCode::URI_TOO_LONG),
    (ErrorCode::RequestHeaderFieldsTooLarge, "request_header_fields_too_large", Code::InvalidArgument, StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE),
    (ErrorCode::UnsupportedMediaType, "unsupported_media_type", Code::InvalidArgument, StatusCode::UNSUPPORTED_MEDIA_TYPE),
    (ErrorCode::MethodNotAllowed, "method_not_allowed", Code::Unimplemented, StatusCode::METHOD_NOT_ALLOWED),
    (ErrorCode::Unauthenticated, "unauthenticated", Code::Unauthenticated, StatusCode::UNAUTHORIZED),
    (ErrorCode::PermissionDenied, "permission_denied", Code::PermissionDenied, StatusCode::FORBIDDEN),
    (ErrorCode::Unavailable, "unavailable", Code::Unavailable, StatusCode::SERVICE_UNAVAILABLE),
    (ErrorCode::DeadlineExceeded, "deadline_exceeded", Code::DeadlineExceeded, StatusCode::GATEWAY_TIMEOUT),
    (ErrorCode::Internal, "internal", Code::Internal, StatusCode::INTERNAL_SERVER_ERROR),
];

impl ErrorCode {
    pub const ALL: [ErrorCode; 17] = [
        Self::InvalidArgument,
        Self::NotFound,
        Self::AlreadyExists,
        Self::Conflict,
        Self::FailedPrecondition,
        Self::PreconditionFailed,
        Self::RequestTimeout,
        Self::PayloadTooLarge,
        Self::UriTooLong,
        Self::RequestHeaderFieldsTooLarge,
        Self::UnsupportedMediaType,
        Self::MethodNotAllowed,
        Self::Unauthenticated,
        Self::PermissionDenied,
        Self::Unavailable,
        Self::DeadlineExceeded,
        Self::Internal,
    ];

    fn row(self) -> &'static (ErrorCode, &'static str, Code, StatusCode) {
        TABLE
            .iter()
            .find(|row| row.0 == self)
            .unwrap_or(&TABLE[TABLE.len() - 1])
    }

    pub fn as_str(self) -> &'static str {
        self.row().1
    }

    pub fn grpc_code(self) -> Code {
        self.row().2
    }

    pub fn http_status(self) -> StatusCode {
        self.row().3
    }

    pub fn parse(name: &str) -> Option<Self> {
        TABLE.iter().find(|row| row.1 == name).map(|row| row.0)
    }

    /// The code for a gRPC status that carries no MetaChat reason (a transport failure, or a
    /// status from a component that is not ours).
    pub fn from_grpc(code: Code) -> Self {
        match code {
            Code::InvalidArgument | Code::OutOfRange => Self::InvalidArgument,
            Code::NotFound => Self::NotFound,
            Code::AlreadyExists => Self::AlreadyExists,
            Code::Aborted => Self::Conflict,
            Code::FailedPrecondition => Self::FailedPrecondition,
            Code::Unauthenticated => Self::Unauthenticated,
            Code::PermissionDenied => Self::PermissionDenied,
            // Unknown is what tonic reports when a connection breaks mid-call.
            Code::Unavailable | Code::ResourceExhausted | Code::Cancelled | Code::Unknown => {
                Self::Unavailable
            }
            Code::DeadlineExceeded => Self::DeadlineExceeded,
            Code::Unimplemented => Self::MethodNotAllowed,
            _ => Self::Internal,
        }
    }
}

impl std::fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One invalid field: its JSON path (camelCase, as the client sent it) and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FieldViolation {
    pub field: String,
    pub message: String,
}

/// An error as the API reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    pub code: ErrorCode,
    pub message: String,
    pub details: Vec<FieldViolation>,
}

impl ApiError {
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
            details: Vec::new(),
        }
    }

    /// Invalid input in one field.
    pub fn invalid_field(field: impl Into<String>, message: impl Into<String>) -> Self {
        let field = field.into();
        let message = message.into();
        Self {
            code: ErrorCode::InvalidArgument,
            message: format!("{field}: {message}"),
            details: vec![FieldViolation { field, message }],
        }
    }

    /// Invalid input in several fields; the message names them all.
    pub fn invalid_fields(details: Vec<FieldViolation>) -> Self {
        let message = details
            .iter()
            .map(|d| format!("{}: {}", d.field, d.message))
            .collect::<Vec<_>>()
            .join("; ");
        Self {
            code: ErrorCode::InvalidArgument,
            message,
            details,
        }
    }

    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::NotFound, message)
    }

    pub fn internal(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::Internal, message)
    }
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.code, self.message)
    }
}

impl std::error::Error for ApiError {}

impl From<ApiError> for tonic::Status {
    fn from(error: ApiError) -> Self {
        let mut details = ErrorDetails::new();
        details.set_error_info(error.code.as_str(), ERROR_DOMAIN, HashMap::new());
        for violation in &error.details {
            details.add_bad_request_violation(violation.field.clone(), violation.message.clone());
        }
        tonic::Status::with_error_details(error.code.grpc_code(), error.message, details)
    }
}

impl From<tonic::Status> for ApiError {
    fn from(status: tonic::Status) -> Self {
        let details = status.get_error_details();
        let code = details
            .error_info()
            .filter(|info| info.domain == ERROR_DOMAIN)
            .and_then(|info| ErrorCode::parse(&info.reason))
            .unwrap_or_else(|| ErrorCode::from_grpc(status.code()));
        let violations = details
            .bad_request()
            .map(|bad| {
                bad.field_violations
                    .iter()
                    .map(|v| FieldViolation {
                        field: v.field.clone(),
                        message: v.description.clone(),
                    })
                    .collect()
            })
            .unwrap_or_default();
        let message = match code {
            // A status from outside MetaChat (transport, proxy) may describe internals: keep it
            // out of client responses.
            ErrorCode::Unavailable if details.error_info().is_none() => {
                "a backend service is unavailable; retry later".to_owned()
            }
            ErrorCode::Internal if details.error_info().is_none() => "internal error".to_owned(),
            _ => status.message().to_owned(),
        };
        Self {
            code,
            message,
            details: violations,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_code_has_one_row_and_round_trips_by_name() {
        for code in ErrorCode::ALL {
            assert_eq!(TABLE.iter().filter(|r| r.0 == code).count(), 1, "{code:?}");
            assert_eq!(ErrorCode::parse(code.as_str()), Some(code));
        }
        assert_eq!(TABLE.len(), ErrorCode::ALL.len());
    }

    #[test]
    fn an_error_survives_the_grpc_hop() {
        let sent = ApiError::invalid_fields(vec![
            FieldViolation {
                field: "email".into(),
                message: "is not an e-mail address".into(),
            },
            FieldViolation {
                field: "username".into(),
                message: "is too long".into(),
            },
        ]);
        let status = tonic::Status::from(sent.clone());
        assert_eq!(status.code(), Code::InvalidArgument);
        assert_eq!(ApiError::from(status), sent);

        let conflict = ApiError::new(ErrorCode::FailedPrecondition, "session already ended");
        let back = ApiError::from(tonic::Status::from(conflict.clone()));
        assert_eq!(back, conflict);
        assert_eq!(back.code.http_status(), StatusCode::CONFLICT);

        // Same gRPC code, told apart by the ErrorInfo reason.
        let stale = ApiError::new(ErrorCode::PreconditionFailed, "version 3 is not current");
        let status = tonic::Status::from(stale.clone());
        assert_eq!(status.code(), Code::FailedPrecondition);
        let back = ApiError::from(status);
        assert_eq!(back, stale);
        assert_eq!(back.code.http_status(), StatusCode::PRECONDITION_FAILED);
    }

    #[test]
    fn a_foreign_status_maps_by_grpc_code_without_leaking_its_message() {
        let status = tonic::Status::unavailable("tcp connect error: 127.0.0.1:50051");
        let error = ApiError::from(status);
        assert_eq!(error.code, ErrorCode::Unavailable);
        assert_eq!(error.code.http_status(), StatusCode::SERVICE_UNAVAILABLE);
        assert!(!error.message.contains("127.0.0.1"));
    }
}
