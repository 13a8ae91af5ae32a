//! The gateway's metrics ([`metrics`]), and `GET /metrics`.

use std::sync::LazyLock;
use std::time::Duration;

use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use metrics::{CounterVec, HistogramVec, LATENCY_BUCKETS};

use crate::openapi::Limits;

/// Requests answered, by method, route template and status.
pub static HTTP_REQUESTS: LazyLock<CounterVec> = LazyLock::new(|| {
    CounterVec::new(
        "metachat_http_requests_total",
        "HTTP requests the gateway answered, by method, route template and status code.",
        &["method", "route", "status"],
    )
});

/// How long requests took, by method and route template.
pub static HTTP_DURATION: LazyLock<HistogramVec> = LazyLock::new(|| {
    HistogramVec::new(
        "metachat_http_request_duration_seconds",
        "Time from a request's arrival at the gateway to its answer, by method and route template.",
        &["method", "route"],
        LATENCY_BUCKETS,
    )
});

/// The method as labels and logs name it: one of HTTP's standard ones, else `other` (a client
/// may send any token, of any length).
pub(crate) fn method_label(method: &str) -> &str {
    const STANDARD: [&str; 9] = [
        "GET", "HEAD", "POST", "PUT", "DELETE", "CONNECT", "OPTIONS", "TRACE", "PATCH",
    ];
    if STANDARD.contains(&method) || method == "unparsed" {
        method
    } else {
        "other"
    }
}

/// Counts one answered request. `route` is a route template (bounded), never a raw path; a
/// method outside HTTP's standard ones (a client may send any token) counts as `other`.
pub(crate) fn observe(method: &str, route: &str, status: u16, took: Duration) {
    let method = method_label(method);
    HTTP_REQUESTS.inc(&[method, route, &status.to_string()]);
    HTTP_DURATION.observe(&[method, route], took.as_secs_f64());
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn methods_outside_the_standard_ones_share_one_label() {
        observe("BREW", "unmatched", 405, Duration::ZERO);
        observe("PROPFIND", "unmatched", 405, Duration::ZERO);
        assert_eq!(HTTP_REQUESTS.get(&["other", "unmatched", "405"]), 2);
        assert_eq!(HTTP_REQUESTS.get(&["BREW", "unmatched", "405"]), 0);
    }
}

/// Creates the families, so that they are shown (at zero) before the first request.
pub fn describe() {
    LazyLock::force(&HTTP_REQUESTS);
    LazyLock::force(&HTTP_DURATION);
}

/// Prometheus metrics
///
/// Every metric of this process in the Prometheus text exposition format (version 0.0.4): the
/// gateway's, and in the embedded platform the services' too. The catalogue is in
/// docs/metrics.md.
#[utoipa::path(get, path = "/metrics", tag = "Operations", operation_id = "metrics",
    responses((status = 200, description = "The metrics, in the Prometheus text format.",
        content_type = "text/plain", body = String), Limits))]
pub(crate) async fn metrics() -> Response {
    (
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static(metrics::CONTENT_TYPE),
        )],
        metrics::render(),
    )
        .into_response()
}
