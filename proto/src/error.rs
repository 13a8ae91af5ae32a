//! One error type for the whole platform and the one table that maps its codes to gRPC and HTTP.
//!
//! A service returns an [`ApiError`]; it crosses the gRPC hop as a `tonic::Status` with a
//! `google.rpc.ErrorInfo` (reason = the code) and a `google.rpc.BadRequest` (the field
//! violations), and the gateway turns it back into the same [`ApiError`] and its HTTP status.

use std::collections::HashMap;
use std::time::Duration;

use metachat_validation::Violations;

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
    /// The client asked for a change at a version (`If-Match`) the resource is no longer at.
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
    /// The caller sent more requests than its rate allows; retry after `Retry-After`.
    TooManyRequests,
}

impl ErrorCode {
    pub const ALL: [ErrorCode; 18] = [
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
        Self::TooManyRequests,
    ];

    /// The one table: each code's name, gRPC status and HTTP status. An exhaustive match, so
    /// a new code does not compile until it has its row.
    #[rustfmt::skip]
    const fn row(self) -> (&'static str, Code, StatusCode) {
        match self {
            Self::InvalidArgument => ("invalid_argument", Code::InvalidArgument, StatusCode::BAD_REQUEST),
            Self::NotFound => ("not_found", Code::NotFound, StatusCode::NOT_FOUND),
            Self::AlreadyExists => ("already_exists", Code::AlreadyExists, StatusCode::CONFLICT),
            Self::Conflict => ("conflict", Code::Aborted, StatusCode::CONFLICT),
            Self::FailedPrecondition => ("failed_precondition", Code::FailedPrecondition, StatusCode::CONFLICT),
            // FAILED_PRECONDITION as for failed_precondition: the ErrorInfo reason tells them apart.
            Self::PreconditionFailed => ("precondition_failed", Code::FailedPrecondition, StatusCode::PRECONDITION_FAILED),
            Self::RequestTimeout => ("request_timeout", Code::DeadlineExceeded, StatusCode::REQUEST_TIMEOUT),
            Self::PayloadTooLarge => ("payload_too_large", Code::ResourceExhausted, StatusCode::PAYLOAD_TOO_LARGE),
            Self::UriTooLong => ("uri_too_long", Code::InvalidArgument, StatusCode::URI_TOO_LONG),
            Self::RequestHeaderFieldsTooLarge => ("request_header_fields_too_large", Code::InvalidArgument, StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE),
            Self::UnsupportedMediaType => ("unsupported_media_type", Code::InvalidArgument, StatusCode::UNSUPPORTED_MEDIA_TYPE),
            Self::MethodNotAllowed => ("method_not_allowed", Code::Unimplemented, StatusCode::METHOD_NOT_ALLOWED),
            Self::Unauthenticated => ("unauthenticated", Code::Unauthenticated, StatusCode::UNAUTHORIZED),
            Self::PermissionDenied => ("permission_denied", Code::PermissionDenied, StatusCode::FORBIDDEN),
            Self::Unavailable => ("unavailable", Code::Unavailable, StatusCode::SERVICE_UNAVAILABLE),
            Self::DeadlineExceeded => ("deadline_exceeded", Code::DeadlineExceeded, StatusCode::GATEWAY_TIMEOUT),
            Self::Internal => ("internal", Code::Internal, StatusCode::INTERNAL_SERVER_ERROR),
            Self::TooManyRequests => ("too_many_requests", Code::ResourceExhausted, StatusCode::TOO_MANY_REQUESTS),
        }
    }

    pub const fn as_str(self) -> &'static str {
        self.row().0
    }

    pub const fn grpc_code(self) -> Code {
        self.row().1
    }

    pub const fn http_status(self) -> StatusCode {
        self.row().2
    }

    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|code| code.as_str() == name)
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
    /// When the client may retry the same request: crosses gRPC as a `google.rpc.RetryInfo`
    /// and becomes HTTP `Retry-After`. `None` when a retry is not known to be safe, such as a
    /// write whose outcome is unknown (it may have been stored).
    pub retry_after: Option<Duration>,
}

impl ApiError {
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
            details: Vec::new(),
            retry_after: None,
        }
    }

    /// A dependency is down or busy and nothing was changed: the client may retry after a
    /// moment.
    pub fn unavailable(message: impl Into<String>) -> Self {
        Self {
            retry_after: Some(Duration::from_secs(1)),
            ..Self::new(ErrorCode::Unavailable, message)
        }
    }

    /// Invalid input in one field.
    pub fn invalid_field(field: impl Into<String>, message: impl Into<String>) -> Self {
        let field = field.into();
        let message = message.into();
        Self {
            details: vec![FieldViolation {
                field: field.clone(),
                message: message.clone(),
            }],
            ..Self::new(ErrorCode::InvalidArgument, format!("{field}: {message}"))
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
            details,
            ..Self::new(ErrorCode::InvalidArgument, message)
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

impl From<Violations> for ApiError {
    fn from(violations: Violations) -> Self {
        Self::invalid_fields(
            violations
                .into_vec()
                .into_iter()
                .map(|v| FieldViolation {
                    field: v.field,
                    message: v.message,
                })
                .collect(),
        )
    }
}

/// The one conversion of an error into a gRPC status.
impl From<ApiError> for tonic::Status {
    fn from(error: ApiError) -> Self {
        let mut details = ErrorDetails::new();
        details.set_error_info(error.code.as_str(), ERROR_DOMAIN, HashMap::new());
        for violation in &error.details {
            details.add_bad_request_violation(violation.field.clone(), violation.message.clone());
        }
        if let Some(delay) = error.retry_after {
            details.set_retry_info(Some(delay));
        }
        tonic::Status::with_error_details(error.code.grpc_code(), error.message, details)
    }
}

/// The one conversion of a gRPC status back into an error. A MetaChat service always attaches
/// its error code; a status without one comes from the transport, a proxy or a process that is
/// not the service (a wrong address, an older deployment without the method). When such a
/// status says "something broke", the service is not usable: the client's 503, not a 500 bug
/// or a 405. Its message may describe internals, so it is never passed on.
impl From<tonic::Status> for ApiError {
    fn from(status: tonic::Status) -> Self {
        if call_timed_out(&status) {
            return Self::new(
                ErrorCode::DeadlineExceeded,
                "a backend service did not answer in time",
            );
        }
        let details = status.get_error_details();
        let ours = details
            .error_info()
            .filter(|info| info.domain == ERROR_DOMAIN)
            .and_then(|info| ErrorCode::parse(&info.reason));
        let Some(code) = ours else {
            let code = match status.code() {
                Code::Unknown
                | Code::Internal
                | Code::Unimplemented
                | Code::OutOfRange
                | Code::DataLoss => ErrorCode::Unavailable,
                other => ErrorCode::from_grpc(other),
            };
            return match code {
                ErrorCode::Unavailable => {
                    Self::unavailable("a backend service is unavailable; retry later")
                }
                ErrorCode::DeadlineExceeded => {
                    Self::new(code, "a backend service did not answer in time")
                }
                ErrorCode::Internal => Self::internal("internal error"),
                _ => Self::new(code, status.message()),
            };
        };
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
        Self {
            code,
            message: status.message().to_owned(),
            details: violations,
            retry_after: details.retry_info().and_then(|info| info.retry_delay),
        }
    }
}

/// Whether tonic gave up on the call because of its deadline (reported as CANCELLED), as
/// opposed to failing to connect in time (which is the service being unavailable).
fn call_timed_out(status: &tonic::Status) -> bool {
    let mut source = std::error::Error::source(status);
    while let Some(error) = source {
        if error.is::<tonic::ConnectError>() {
            return false;
        }
        if error.is::<tonic::TimeoutExpired>() {
            return true;
        }
        source = error.source();
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_code_is_listed_once_and_round_trips_by_name() {
        // `ALL` is written by hand: this match fails to compile when a code is added, and the
        // position check fails when `ALL` misses it or lists one twice.
        let position = |code: ErrorCode| match code {
            ErrorCode::InvalidArgument => 0,
            ErrorCode::NotFound => 1,
            ErrorCode::AlreadyExists => 2,
            ErrorCode::Conflict => 3,
            ErrorCode::FailedPrecondition => 4,
            ErrorCode::PreconditionFailed => 5,
            ErrorCode::RequestTimeout => 6,
            ErrorCode::PayloadTooLarge => 7,
            ErrorCode::UriTooLong => 8,
            ErrorCode::RequestHeaderFieldsTooLarge => 9,
            ErrorCode::UnsupportedMediaType => 10,
            ErrorCode::MethodNotAllowed => 11,
            ErrorCode::Unauthenticated => 12,
            ErrorCode::PermissionDenied => 13,
            ErrorCode::Unavailable => 14,
            ErrorCode::DeadlineExceeded => 15,
            ErrorCode::Internal => 16,
            ErrorCode::TooManyRequests => 17,
        };
        for (i, code) in ErrorCode::ALL.into_iter().enumerate() {
            assert_eq!(position(code), i, "{code:?}");
            assert_eq!(ErrorCode::parse(code.as_str()), Some(code));
        }
        let names: std::collections::HashSet<_> =
            ErrorCode::ALL.iter().map(|c| c.as_str()).collect();
        assert_eq!(names.len(), ErrorCode::ALL.len());
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

        let unavailable = ApiError::unavailable("storage is unavailable; retry later");
        assert_eq!(
            ApiError::from(tonic::Status::from(unavailable.clone())),
            unavailable
        );
        let unknown_outcome = ApiError::new(ErrorCode::Unavailable, "the write may be stored");
        let back = ApiError::from(tonic::Status::from(unknown_outcome.clone()));
        assert_eq!(
            back.retry_after, None,
            "no retry invited when none was given"
        );

        // Same gRPC code, told apart by the ErrorInfo reason.
        let stale = ApiError::new(ErrorCode::PreconditionFailed, "version 3 is not current");
        let status = tonic::Status::from(stale.clone());
        assert_eq!(status.code(), Code::FailedPrecondition);
        let back = ApiError::from(status);
        assert_eq!(back, stale);
        assert_eq!(back.code.http_status(), StatusCode::PRECONDITION_FAILED);

        let conflict = ApiError::new(ErrorCode::FailedPrecondition, "session already ended");
        let back = ApiError::from(tonic::Status::from(conflict.clone()));
        assert_eq!(back, conflict);
        assert_eq!(back.code.http_status(), StatusCode::CONFLICT);
    }

    #[test]
    fn a_foreign_status_maps_by_grpc_code_without_leaking_its_message() {
        let status = tonic::Status::unavailable("tcp connect error: 127.0.0.1:50051");
        let error = ApiError::from(status);
        assert_eq!(error.code, ErrorCode::Unavailable);
        assert_eq!(error.code.http_status(), StatusCode::SERVICE_UNAVAILABLE);
        assert!(!error.message.contains("127.0.0.1"));
        for code in [Code::Unknown, Code::Internal, Code::Unimplemented] {
            let broken = ApiError::from(tonic::Status::new(code, "h2 error at 10.0.0.7"));
            assert_eq!(broken.code, ErrorCode::Unavailable, "{code:?}");
            assert!(!broken.message.contains("10.0.0.7"));
            assert!(broken.retry_after.is_some());
        }
        let ours = tonic::Status::from(ApiError::internal("invariant broken"));
        assert_eq!(ApiError::from(ours).code, ErrorCode::Internal);
        let missing = tonic::Status::from(ApiError::not_found("no such user"));
        assert_eq!(ApiError::from(missing), ApiError::not_found("no such user"));
    }
}
