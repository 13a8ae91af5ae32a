//! A request that is not a valid protobuf message (invalid UTF-8 in a string, garbage bytes)
//! is the client's mistake. tonic's protobuf codec reports it as INTERNAL without details,
//! which reads as our bug; this layer answers it as INVALID_ARGUMENT with the same
//! `google.rpc.ErrorInfo` as every other invalid input.
//!
//! Only decode failures are rewritten: tonic answers them before any handler runs, as a
//! trailers-only response whose status is INTERNAL, whose message is the prost decode error
//! and which carries no details. Errors from our handlers always carry an `ErrorInfo`, so an
//! INTERNAL of ours never matches.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use metachat_proto::error::{ApiError, ErrorCode};
use tonic::codegen::Service;
use tonic::codegen::http::{self, HeaderMap};
use tower_layer::Layer;

/// How prost's `DecodeError` (as tonic's codec reports it) begins.
const DECODE_ERROR_PREFIX: &str = "failed to decode Protobuf message";

/// Status headers of a trailers-only response.
const STATUS_HEADERS: [&str; 3] = ["grpc-status", "grpc-message", "grpc-status-details-bin"];

/// Answers requests that fail to decode with INVALID_ARGUMENT (see the module documentation).
#[derive(Debug, Clone, Copy, Default)]
pub struct DecodeErrorLayer;

impl<S> Layer<S> for DecodeErrorLayer {
    type Service = DecodeErrors<S>;

    fn layer(&self, inner: S) -> Self::Service {
        DecodeErrors { inner }
    }
}

/// The service [`DecodeErrorLayer`] wraps around the server's routes.
#[derive(Debug, Clone)]
pub struct DecodeErrors<S> {
    inner: S,
}

impl<S, ReqBody, ResBody> Service<http::Request<ReqBody>> for DecodeErrors<S>
where
    S: Service<http::Request<ReqBody>, Response = http::Response<ResBody>>,
    S::Future: Send + 'static,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Self::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: http::Request<ReqBody>) -> Self::Future {
        let response = self.inner.call(request);
        Box::pin(async move {
            let mut response = response.await?;
            rewrite_decode_error(response.headers_mut());
            Ok(response)
        })
    }
}

/// Turns a decode failure's status headers into INVALID_ARGUMENT; leaves anything else alone.
fn rewrite_decode_error(headers: &mut HeaderMap) {
    // A successful call has its status in the trailers, not here: this is cheap for them.
    let Some(status) = tonic::Status::from_header_map(headers) else {
        return;
    };
    let reason = match status.message().strip_prefix(DECODE_ERROR_PREFIX) {
        Some(reason) if status.code() == tonic::Code::Internal && status.details().is_empty() => {
            reason.trim_start_matches(':').trim()
        }
        _ => return,
    };
    tracing::debug!(reason, "request is not a valid protobuf message");
    let answer = tonic::Status::from(ApiError::new(
        ErrorCode::InvalidArgument,
        format!("the request is not a valid protobuf message: {reason}"),
    ));
    let mut rewritten = HeaderMap::new();
    if answer.add_header(&mut rewritten).is_err() {
        return;
    }
    for name in STATUS_HEADERS {
        headers.remove(name);
    }
    headers.extend(rewritten);
}

#[cfg(test)]
mod tests {
    use super::*;
    use metachat_proto::error::ERROR_DOMAIN;
    use prost::Message;
    use tonic_types::StatusExt;

    fn headers_of(status: &tonic::Status) -> HeaderMap {
        let mut headers = HeaderMap::new();
        status.add_header(&mut headers).expect("status headers");
        headers
    }

    #[test]
    fn a_decode_error_becomes_invalid_argument_with_error_info() {
        let error = metachat_proto::user::GetUserRequest::decode(&[0x0a, 0x02, 0xff, 0xfe][..])
            .expect_err("invalid UTF-8 in a string field");
        // What tonic's protobuf codec answers.
        let mut headers = headers_of(&tonic::Status::internal(error.to_string()));

        rewrite_decode_error(&mut headers);

        let status = tonic::Status::from_header_map(&headers).expect("a status");
        assert_eq!(status.code(), tonic::Code::InvalidArgument);
        assert!(
            status.message().contains("not a valid protobuf"),
            "{status:?}"
        );
        let details = status.get_error_details();
        let info = details.error_info().expect("error info");
        assert_eq!(info.domain, ERROR_DOMAIN);
        assert_eq!(info.reason, "invalid_argument");
        let back = ApiError::from(status);
        assert_eq!(back.code, ErrorCode::InvalidArgument);
    }

    #[test]
    fn other_statuses_are_left_alone() {
        for status in [
            // Our own internal errors carry details.
            tonic::Status::from(ApiError::internal(
                "failed to decode Protobuf message: ours",
            )),
            tonic::Status::internal("something else broke"),
            tonic::Status::unavailable("failed to decode Protobuf message: not internal"),
            tonic::Status::from(ApiError::not_found("no such user")),
        ] {
            let before = headers_of(&status);
            let mut headers = before.clone();
            rewrite_decode_error(&mut headers);
            assert_eq!(headers, before, "{status:?}");
        }
        let mut success = HeaderMap::new();
        success.insert(
            "content-type",
            http::HeaderValue::from_static("application/grpc"),
        );
        rewrite_decode_error(&mut success);
        assert_eq!(success.len(), 1);
    }
}
