//! Every call a service answers runs in a span that carries the request id and the W3C trace
//! context the gateway sent (`x-request-id`, `traceparent`), so each log line written while
//! serving it names them (`fields.request_id`, `fields.trace_id`, `fields.span_id`), and the
//! service's own [`TraceContext`] (the caller's trace, a span of its own) is in the request's
//! extensions, where [`crate::event_metadata`] finds it for the events the call records, and
//! in a task-local, where [`crate::ServiceToken`] finds it for the calls to other services.

use std::task::{Context, Poll};

use metachat_proto::metadata::REQUEST_ID;
use metachat_proto::trace::{TRACEPARENT, TraceContext};
use tokio::task::futures::TaskLocalFuture;
use tonic::codegen::Service;
use tonic::codegen::http;
use tower_layer::Layer;
use tracing::Instrument;
use tracing::instrument::Instrumented;

/// The call being served: this service's span in its trace, and its request id.
#[derive(Debug, Clone)]
pub struct CurrentCall {
    pub trace: TraceContext,
    pub request_id: Option<String>,
}

tokio::task_local! {
    /// The call being served, for the calls it makes to other services.
    static CURRENT: CurrentCall;
}

/// The call being served, if any: [`crate::ServiceToken`] passes its trace (as `traceparent`)
/// and request id on in the calls made meanwhile.
pub fn current_call() -> Option<CurrentCall> {
    CURRENT.try_with(CurrentCall::clone).ok()
}

/// Runs each call in a span with its request id and trace context.
#[derive(Debug, Clone, Copy, Default)]
pub struct TraceLayer;

impl<S> Layer<S> for TraceLayer {
    type Service = Traced<S>;

    fn layer(&self, inner: S) -> Self::Service {
        Traced { inner }
    }
}

#[derive(Debug, Clone)]
pub struct Traced<S> {
    inner: S,
}

impl<S, ReqBody> Service<http::Request<ReqBody>> for Traced<S>
where
    S: Service<http::Request<ReqBody>>,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = TaskLocalFuture<CurrentCall, Instrumented<S::Future>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: http::Request<ReqBody>) -> Self::Future {
        // A header sent twice is no header: which one would be meant?
        let header = |name: &str| {
            let mut values = request.headers().get_all(name).iter();
            match (values.next(), values.next()) {
                (Some(value), None) => value.to_str().ok().map(str::to_owned),
                _ => None,
            }
        };
        let context = TraceContext::continue_from(header(TRACEPARENT).as_deref());
        // The gateway's id, bounded as it bounds them; a direct client's is taken as sent
        // only when it is as short and plain.
        let request_id = header(REQUEST_ID).filter(|id| metachat_proto::metadata::usable_id(id));
        let span = tracing::info_span!(
            "call",
            request_id = tracing::field::Empty,
            trace_id = %context.trace_id(),
            span_id = %context.span_id(),
        );
        if let Some(id) = &request_id {
            span.record("request_id", id.as_str());
        }
        request.extensions_mut().insert(context);
        let call = span.in_scope(|| self.inner.call(request));
        let current = CurrentCall {
            trace: context,
            request_id,
        };
        CURRENT.scope(current, call.instrument(span))
    }
}
