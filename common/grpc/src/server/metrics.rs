//! RED metrics of a gRPC server: calls and their duration, by service, method and status
//! code (the catalogue is docs/metrics.md); and `GET /metrics` on the gRPC port itself, over
//! HTTP/1.1, so that Prometheus scrapes every process where it already listens.

use std::future::Future;
use std::pin::Pin;
use std::sync::LazyLock;
use std::task::{Context, Poll};
use std::time::Instant;

use metrics::{CounterVec, HistogramVec, LATENCY_BUCKETS};
use tonic::codegen::Service;
use tonic::codegen::http;
use tower_layer::Layer;

/// Calls answered, by service, method and gRPC status code.
pub static GRPC_REQUESTS: LazyLock<CounterVec> = LazyLock::new(|| {
    CounterVec::new(
        "metachat_grpc_requests_total",
        "gRPC calls a service answered, by service, method and status code (OK, NOT_FOUND, ...).",
        &["service", "method", "code"],
    )
});

/// How long calls took, by service and method.
pub static GRPC_DURATION: LazyLock<HistogramVec> = LazyLock::new(|| {
    HistogramVec::new(
        "metachat_grpc_request_duration_seconds",
        "Time a service took to answer a gRPC call (to its headers), by service and method.",
        &["service", "method"],
        LATENCY_BUCKETS,
    )
});

/// Creates the families, so that they are shown before the first call.
pub fn describe() {
    LazyLock::force(&GRPC_REQUESTS);
    LazyLock::force(&GRPC_DURATION);
}

/// Counts and times every call of the server it wraps.
#[derive(Debug, Clone, Copy, Default)]
pub struct MetricsLayer;

impl<S> Layer<S> for MetricsLayer {
    type Service = Measured<S>;

    fn layer(&self, inner: S) -> Self::Service {
        Measured { inner }
    }
}

#[derive(Debug, Clone)]
pub struct Measured<S> {
    inner: S,
}

impl<S, ReqBody> Service<http::Request<ReqBody>> for Measured<S>
where
    S: Service<http::Request<ReqBody>, Response = http::Response<tonic::body::Body>>,
    S::Future: Send + 'static,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Self::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: http::Request<ReqBody>) -> Self::Future {
        // gRPC is HTTP/2: over HTTP/1 this port serves its metrics and nothing else.
        if request.version() < http::Version::HTTP_2 {
            let answer = match (request.method(), request.uri().path()) {
                (&http::Method::GET | &http::Method::HEAD, "/metrics") => scrape(),
                (_, "/metrics") => plain(http::StatusCode::METHOD_NOT_ALLOWED, "GET /metrics\n"),
                _ => plain(
                    http::StatusCode::NOT_FOUND,
                    "this is a gRPC port; over HTTP/1.1 it serves GET /metrics only\n",
                ),
            };
            return Box::pin(async { Ok(answer) });
        }
        let started = Instant::now();
        let path = request.uri().path().to_owned();
        let response = self.inner.call(request);
        Box::pin(async move {
            let response = response.await?;
            // An error is answered trailers-only, its status in the headers; a success has
            // its status (OK) in the trailers.
            let code = match tonic::Status::from_header_map(response.headers()) {
                Some(status) => status.code(),
                None if response.status() == http::StatusCode::OK => tonic::Code::Ok,
                None => tonic::Code::Unknown,
            };
            let (service, method) = name(&path, code);
            GRPC_REQUESTS.inc(&[service, method, code_name(code)]);
            let elapsed = started.elapsed();
            GRPC_DURATION.observe(&[service, method], elapsed.as_secs_f64());
            log_call(service, method, code, elapsed);
            Ok(response)
        })
    }
}

/// One line for each call of a MetaChat service (not health checks nor reflection), in the
/// call's span (its request id and trace: see `trace.rs`), attributed to the service that
/// answered it, also when both run in one process.
fn log_call(service: &str, method: &str, code: tonic::Code, elapsed: std::time::Duration) {
    let duration_ms = (elapsed.as_secs_f64() * 1000.0 * 1000.0).round() / 1000.0;
    let code = code_name(code);
    match service {
        "metachat.user.v1.UserService" => {
            tracing::info!(target: "user_service::access", method, code, duration_ms, "call");
        }
        "metachat.diary.v1.DiaryService" => {
            tracing::info!(target: "diary_service::access", method, code, duration_ms, "call");
        }
        _ => {}
    }
}

/// A short plain-text answer to an HTTP/1 request this port does not serve.
fn plain(status: http::StatusCode, text: &'static str) -> http::Response<tonic::body::Body> {
    let body = http_body_util::Full::new(bytes::Bytes::from_static(text.as_bytes()));
    let mut response = http::Response::new(tonic::body::Body::new(body));
    *response.status_mut() = status;
    response.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    if status == http::StatusCode::METHOD_NOT_ALLOWED {
        response.headers_mut().insert(
            http::header::ALLOW,
            http::HeaderValue::from_static("GET, HEAD"),
        );
    }
    response
}

/// The answer to `GET /metrics`: every metric of this process.
fn scrape() -> http::Response<tonic::body::Body> {
    let body = http_body_util::Full::new(bytes::Bytes::from(metrics::render()));
    let mut response = http::Response::new(tonic::body::Body::new(body));
    response.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static(metrics::CONTENT_TYPE),
    );
    response
}

/// `(service, method)` of a call path `/<service>/<method>`; an unknown one (answered
/// UNIMPLEMENTED: any path a client sends) is `("other", "other")`, so labels stay bounded.
fn name(path: &str, code: tonic::Code) -> (&str, &str) {
    match path.trim_start_matches('/').split_once('/') {
        Some((service, method)) if code != tonic::Code::Unimplemented => (service, method),
        _ => ("other", "other"),
    }
}

/// The status code as gRPC names it (`OK`, `NOT_FOUND`, ...).
fn code_name(code: tonic::Code) -> &'static str {
    use tonic::Code::*;
    match code {
        Ok => "OK",
        Cancelled => "CANCELLED",
        Unknown => "UNKNOWN",
        InvalidArgument => "INVALID_ARGUMENT",
        DeadlineExceeded => "DEADLINE_EXCEEDED",
        NotFound => "NOT_FOUND",
        AlreadyExists => "ALREADY_EXISTS",
        PermissionDenied => "PERMISSION_DENIED",
        ResourceExhausted => "RESOURCE_EXHAUSTED",
        FailedPrecondition => "FAILED_PRECONDITION",
        Aborted => "ABORTED",
        OutOfRange => "OUT_OF_RANGE",
        Unimplemented => "UNIMPLEMENTED",
        Internal => "INTERNAL",
        Unavailable => "UNAVAILABLE",
        DataLoss => "DATA_LOSS",
        Unauthenticated => "UNAUTHENTICATED",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn call_paths_name_service_and_method_and_unknown_ones_stay_bounded() {
        assert_eq!(
            name("/metachat.user.v1.UserService/GetUser", tonic::Code::Ok),
            ("metachat.user.v1.UserService", "GetUser")
        );
        assert_eq!(
            name("/made.up/Path", tonic::Code::Unimplemented),
            ("other", "other")
        );
        assert_eq!(name("/", tonic::Code::Ok), ("other", "other"));
    }
}
