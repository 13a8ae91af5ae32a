//! Per-request plumbing: the request id (taken from `x-request-id` or generated), the
//! correlation id, the W3C trace context (the client's `traceparent` continued, else a new
//! trace), error rendering, the echoed header, and one access-log line; the request is served
//! in a span naming its request id and trace, so every log line written meanwhile does too.

use std::time::Instant;

use axum::extract::{MatchedPath, Request};
use axum::http::{HeaderMap, HeaderValue};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use metachat_proto::error::{ApiError, ErrorCode};
use metachat_proto::trace::{TRACEPARENT, TraceContext};
use tracing::Instrument;

use crate::error::{self, AppError};
use crate::grpc::{CORRELATION_ID, REQUEST_ID, RequestContext};
use crate::limits::{MAX_HEADER_BYTES, MAX_HEADERS, MAX_URI_BYTES, REQUEST_ID_MAX};

pub(crate) async fn middleware(mut request: Request, next: Next) -> Response {
    let started = Instant::now();
    let request_id = client_id(request.headers(), REQUEST_ID)
        .unwrap_or_else(|| uuid::Uuid::new_v4().to_string());
    let correlation_id =
        client_id(request.headers(), CORRELATION_ID).unwrap_or_else(|| request_id.clone());
    let method = request.method().clone();
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map(|path| path.as_str().to_owned())
        .filter(|path| !path.contains("__private__"))
        .unwrap_or_else(|| "unmatched".to_owned());
    let idempotency_key = idempotency_key(&request);
    let trace = TraceContext::continue_from(single(request.headers(), TRACEPARENT));
    // Every log line written while serving the request names it and its trace.
    let span = tracing::info_span!(
        "request",
        request_id = %request_id,
        trace_id = %trace.trace_id(),
        span_id = %trace.span_id(),
    );
    request.extensions_mut().insert(RequestContext {
        request_id: request_id.clone(),
        correlation_id,
        caller: Default::default(),
        service_token: None,
        idempotency_key: idempotency_key.clone().ok().flatten(),
        trace,
    });

    let response = match (over_limits(&request), idempotency_key) {
        (Some(error), _) | (None, Err(error)) => AppError(error).into_response(),
        (None, Ok(_)) => next.run(request).instrument(span.clone()).await,
    };
    let mut response = error::render(response, &request_id);
    if let Ok(value) = HeaderValue::from_str(&request_id) {
        response.headers_mut().insert(REQUEST_ID, value);
    }
    crate::metrics::observe(
        method.as_str(),
        &route,
        response.status().as_u16(),
        started.elapsed(),
    );
    span.in_scope(|| {
        tracing::info!(
            target: "api_gateway::access",
            method = crate::metrics::method_label(method.as_str()),
            route = %route,
            status = response.status().as_u16(),
            duration_ms = (started.elapsed().as_secs_f64() * 1000.0 * 1000.0).round() / 1000.0,
            "request"
        );
    });
    response
}

/// The longest `Idempotency-Key` accepted.
pub(crate) const IDEMPOTENCY_KEY_MAX: usize = 255;

/// A POST's `Idempotency-Key`: 1 to 255 visible ASCII characters, once; else 400 naming it.
/// A retry carrying the key of a creation that was answered gets that answer (a user, entry
/// or session made once), not a second resource or a 409.
fn idempotency_key(request: &Request) -> Result<Option<String>, ApiError> {
    if request.method() != axum::http::Method::POST {
        return Ok(None);
    }
    let mut values = request.headers().get_all("idempotency-key").iter();
    let Some(value) = values.next() else {
        return Ok(None);
    };
    let valid = values.next().is_none()
        && (1..=IDEMPOTENCY_KEY_MAX).contains(&value.len())
        && value.as_bytes().iter().all(|b| b.is_ascii_graphic());
    if !valid {
        return Err(ApiError::invalid_field(
            "Idempotency-Key",
            format!("must be one header of 1 to {IDEMPOTENCY_KEY_MAX} visible ASCII characters"),
        ));
    }
    Ok(value.to_str().ok().map(str::to_owned))
}

/// 414 for a URI over [`MAX_URI_BYTES`], 431 for more than [`MAX_HEADERS`] header fields or
/// more than [`MAX_HEADER_BYTES`] of them. Hyper's own limits are set higher so that these
/// answers carry the envelope and the client's request id.
fn over_limits(request: &Request) -> Option<ApiError> {
    let uri_len = request
        .uri()
        .path_and_query()
        .map_or(0, |pq| pq.as_str().len());
    if uri_len > MAX_URI_BYTES {
        return Some(ApiError::new(
            ErrorCode::UriTooLong,
            format!("the request URI is {uri_len} bytes; the limit is {MAX_URI_BYTES}"),
        ));
    }
    let headers = request.headers();
    let bytes: usize = headers
        .iter()
        .map(|(name, value)| name.as_str().len() + value.len() + 4)
        .sum();
    if headers.len() > MAX_HEADERS || bytes > MAX_HEADER_BYTES {
        return Some(ApiError::new(
            ErrorCode::RequestHeaderFieldsTooLarge,
            format!(
                "the request has {} header fields of {bytes} bytes; the limits are \
                 {MAX_HEADERS} fields and {MAX_HEADER_BYTES} bytes",
                headers.len()
            ),
        ));
    }
    None
}

/// The header's value when it is sent once (twice, which one would be meant?).
fn single<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    let mut values = headers.get_all(name).iter();
    match (values.next(), values.next()) {
        (Some(value), None) => value.to_str().ok(),
        _ => None,
    }
}

/// The header's value when it is usable as an id: 1..=128 visible ASCII characters.
fn client_id(headers: &HeaderMap, name: &str) -> Option<String> {
    let value = single(headers, name)?.trim();
    debug_assert_eq!(REQUEST_ID_MAX, metachat_proto::metadata::ID_MAX);
    metachat_proto::metadata::usable_id(value).then(|| value.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_printable_bounded_ids_are_taken_from_the_client() {
        let mut headers = HeaderMap::new();
        headers.insert(REQUEST_ID, HeaderValue::from_static("abc-123"));
        assert_eq!(client_id(&headers, REQUEST_ID).as_deref(), Some("abc-123"));
        headers.insert(REQUEST_ID, HeaderValue::from_static("has space"));
        assert_eq!(client_id(&headers, REQUEST_ID), None);
        let long = "x".repeat(REQUEST_ID_MAX + 1);
        headers.insert(REQUEST_ID, HeaderValue::from_str(&long).unwrap());
        assert_eq!(client_id(&headers, REQUEST_ID), None);
        assert_eq!(client_id(&headers, CORRELATION_ID), None);
    }
}
