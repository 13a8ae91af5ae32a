//! gRPC plumbing shared by the MetaChat services: the request context that becomes event
//! metadata, error mapping into the shared error table, time conversions, audit history, and a
//! server with health checking and reflection.

use chrono::{DateTime, Utc};
use event_sourcing::{AppendError, EventMetadata, EventStoreError, ExecuteError, RecordedEvent};
use metachat_proto::Timestamp;
use metachat_proto::common::{EventHistory, StoredEvent};
use metachat_proto::error::{ApiError, ErrorCode};
use metachat_read_model::{PageRequest, QueryError};

use metachat_proto::metadata::{ACTOR, CORRELATION_ID, REQUEST_ID};
use metachat_proto::trace::TraceContext;

mod caller;
mod read_your_writes;
mod server;

pub use caller::{ACTOR_ROLES, Actor, SERVICE_TOKEN, ServiceToken};
pub use read_your_writes::{
    DEFAULT_READ_YOUR_WRITES_TIMEOUT, READ_YOUR_WRITES_TIMEOUT_VAR, await_applied,
    consistency_token, unknown_write,
};
pub use server::{
    CurrentCall, DEFAULT_SHUTDOWN_TIMEOUT, DEPENDENCY_PREFIX, Dependency, GrpcRouter, Probe,
    SHUTDOWN_TIMEOUT_VAR, current_call, serve,
};

/// The event metadata for a command carried by `request`.
pub fn event_metadata<T>(request: &tonic::Request<T>) -> EventMetadata {
    // As the gateway sends them; from any other caller, what is not is left out.
    let get = |key: &str| {
        request
            .metadata()
            .get(key)
            .and_then(|v| v.to_str().ok())
            .filter(|v| metachat_proto::metadata::usable_id(v))
            .map(str::to_owned)
    };
    let request_id = get(REQUEST_ID);
    EventMetadata {
        correlation_id: get(CORRELATION_ID).or_else(|| request_id.clone()),
        causation_id: request_id.clone(),
        request_id,
        actor: get(ACTOR),
        traceparent: request
            .extensions()
            .get::<TraceContext>()
            .map(TraceContext::traceparent),
    }
}

pub use metachat_proto::metadata::IDEMPOTENCY_KEY;

/// The `Idempotency-Key` a creating call carries (validated by the gateway).
pub fn idempotency_key<T>(request: &tonic::Request<T>) -> Option<String> {
    request
        .metadata()
        .get(IDEMPOTENCY_KEY)
        .and_then(|v| v.to_str().ok())
        .filter(|v| !v.is_empty() && v.len() <= 255)
        .map(str::to_owned)
}

/// The id a creation retried under `key` gets again: derived from the key and everything the
/// request asks (`request`, in a fixed form), so a retry finds what its first attempt made,
/// and a different request under the same key makes its own.
pub fn idempotent_id(kind: &str, key: &str, request: &str) -> uuid::Uuid {
    const NAMESPACE: uuid::Uuid = uuid::Uuid::from_u128(0x6d65_7461_6368_6174_2d69_6465_6d70_6f74);
    uuid::Uuid::new_v5(&NAMESPACE, format!("{kind}\n{key}\n{request}").as_bytes())
}

/// A store failure as the API reports it, when nothing was stored: a conflict the client may
/// retry, storage that is down (retry later), or a problem that is ours (logged here, never
/// shown in detail).
pub fn store_error(error: EventStoreError) -> ApiError {
    match error {
        EventStoreError::WrongExpectedVersion { .. } => ApiError::new(
            ErrorCode::Conflict,
            "the resource was changed concurrently; retry the request",
        ),
        // A write for a user erased meanwhile: there is no such user any more.
        EventStoreError::SubjectErased { .. } => ApiError::not_found("the user was erased"),
        // An event this build cannot read (a newer version's, during a rolling deploy).
        EventStoreError::Codec(reason) => {
            tracing::error!(%reason, "an event does not decode");
            ApiError::unavailable(
                "this resource has an event this version of the service cannot read; retry \
                 later (a newer version may)",
            )
        }
        ref e if e.is_unavailable() => {
            tracing::warn!(error = %error, "event store unavailable");
            ApiError::unavailable("storage is unavailable; retry later")
        }
        other => {
            tracing::error!(error = %other, "event store failure");
            ApiError::internal("internal storage error")
        }
    }
}

/// A failed append as the API reports it. When its outcome is unknown the answer invites no
/// retry (no `Retry-After`): repeating a create could store it twice.
pub fn append_error(error: AppendError) -> ApiError {
    match error {
        AppendError::Refused(e) => store_error(e),
        AppendError::OutcomeUnknown(e) => {
            tracing::warn!(error = %e, "event store unreachable during an append; outcome unknown");
            ApiError::new(
                ErrorCode::Unavailable,
                "storage became unavailable while saving; the change may or may not be saved: \
                 read the resource before repeating the request",
            )
        }
    }
}

/// A failed command as the API reports it: the aggregate's refusal (which says its own code),
/// a version precondition that no longer holds, or a store failure.
pub fn execute_error<E: Into<ApiError>>(error: ExecuteError<E>) -> ApiError {
    match error {
        ExecuteError::Rejected(e) => e.into(),
        ExecuteError::VersionMismatch { expected, actual } => {
            let actual = actual.map_or_else(|| "none".to_owned(), |v| v.to_string());
            ApiError::new(
                ErrorCode::PreconditionFailed,
                format!("the resource is at version {actual}, not {expected}; read it again"),
            )
        }
        ExecuteError::Store(e) => store_error(e),
        ExecuteError::OutcomeUnknown(e) => append_error(AppendError::OutcomeUnknown(e)),
    }
}

pub use metachat_proto::time::timestamp;

/// How long a service waits to connect to another.
pub const CONNECT_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(2);

/// A channel from one service to another at `uri` (a checked `http://host:port`), connected
/// on first use, each call bounded by `call_timeout`.
pub fn service_channel(
    uri: String,
    call_timeout: std::time::Duration,
) -> Result<tonic::transport::Channel, tonic::transport::Error> {
    Ok(tonic::transport::Endpoint::from_shared(uri)?
        .connect_timeout(CONNECT_TIMEOUT)
        .timeout(call_timeout)
        .connect_lazy())
}

/// A timestamp from the wire; `field` names it in the error. Years outside 1..=9999 are
/// refused: no store keeps them, and they can only be mistakes.
pub fn from_timestamp(field: &str, ts: &Timestamp) -> Result<DateTime<Utc>, ApiError> {
    metachat_proto::time::datetime(ts)
        .filter(|time| (1..=9999).contains(&chrono::Datelike::year(time)))
        .ok_or_else(|| ApiError::invalid_field(field, "is not a valid timestamp (years 1 to 9999)"))
}

/// An aggregate's stream as an audit history.
pub fn history(events: Vec<RecordedEvent>) -> EventHistory {
    EventHistory {
        events: events
            .into_iter()
            .map(|e| StoredEvent {
                event_id: e.event_id.to_string(),
                payload_json: e.payload.to_string(),
                event_type: e.event_type,
                schema_version: e.schema_version,
                stream_id: e.stream_id,
                stream_version: e.stream_version,
                position: e.position,
                recorded_at: Some(timestamp(e.recorded_at)),
                metadata: Some(metachat_proto::common::EventMetadata {
                    correlation_id: e.metadata.correlation_id,
                    causation_id: e.metadata.causation_id,
                    request_id: e.metadata.request_id,
                    actor: e.metadata.actor,
                    traceparent: e.metadata.traceparent,
                }),
            })
            .collect(),
    }
}

const DEFAULT_LIMIT: u32 = 10;
const MAX_LIMIT: u32 = 100;

/// The page number (1-based, 0 meaning 1) and the read-model request for a list call's
/// `page`, `limit` (0 meaning 10, at most 100) and `cursor` (empty meaning none).
pub fn page_request(page: u32, limit: u32, cursor: String) -> Result<(u32, PageRequest), ApiError> {
    // A page reached by cursor is not numbered: it reports 1, whatever `page` said.
    let page = if cursor.is_empty() { page.max(1) } else { 1 };
    let limit = if limit == 0 { DEFAULT_LIMIT } else { limit };
    if limit > MAX_LIMIT {
        return Err(ApiError::invalid_field(
            "limit",
            format!("must be between 1 and {MAX_LIMIT}"),
        ));
    }
    Ok((
        page,
        PageRequest {
            offset: u64::from(page - 1) * u64::from(limit),
            limit,
            cursor: (!cursor.is_empty()).then_some(cursor),
        },
    ))
}

/// A failed read-model query as the API reports it.
pub fn query_error(error: QueryError) -> ApiError {
    match error {
        QueryError::InvalidCursor => {
            ApiError::invalid_field("cursor", "is not a cursor this list returned")
        }
        QueryError::Backend(e) => {
            tracing::error!(error = %e, "read model query failed");
            ApiError::unavailable("queries are unavailable; retry later")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reset() -> EventStoreError {
        EventStoreError::Backend(sqlx_io_error())
    }

    fn sqlx_io_error() -> sqlx::Error {
        sqlx::Error::Io(std::io::Error::new(
            std::io::ErrorKind::ConnectionReset,
            "reset",
        ))
    }

    #[test]
    fn event_metadata_keeps_only_usable_ids_and_the_calls_trace() {
        let mut request = tonic::Request::new(());
        let metadata = request.metadata_mut();
        metadata.insert(REQUEST_ID, "req-1".parse().unwrap());
        metadata.insert(CORRELATION_ID, "has spaces in it".parse().unwrap());
        metadata.insert(ACTOR, "x".repeat(129).parse().unwrap());
        let trace = TraceContext::start();
        request.extensions_mut().insert(trace);
        let stored = event_metadata(&request);
        assert_eq!(stored.request_id.as_deref(), Some("req-1"));
        // An unusable correlation id falls back to the request id; an unusable actor is none.
        assert_eq!(stored.correlation_id.as_deref(), Some("req-1"));
        assert_eq!(stored.actor, None);
        assert_eq!(stored.traceparent, Some(trace.traceparent()));

        let bare = event_metadata(&tonic::Request::new(()));
        assert_eq!(bare, EventMetadata::default());
    }

    #[test]
    fn only_a_failure_that_stored_nothing_invites_a_retry() {
        let refused = append_error(AppendError::Refused(reset()));
        assert_eq!(refused.code, ErrorCode::Unavailable);
        assert!(refused.retry_after.is_some());

        let unknown = append_error(AppendError::OutcomeUnknown(reset()));
        assert_eq!(unknown.code, ErrorCode::Unavailable);
        assert_eq!(unknown.retry_after, None);
        assert!(unknown.message.contains("read the resource"));

        let unknown: ApiError = execute_error::<ApiError>(ExecuteError::OutcomeUnknown(reset()));
        assert_eq!(unknown.retry_after, None);
    }

    #[test]
    fn a_stale_version_is_precondition_failed() {
        let error = execute_error::<ApiError>(ExecuteError::VersionMismatch {
            expected: 2,
            actual: Some(3),
        });
        assert_eq!(error.code, ErrorCode::PreconditionFailed);
        assert!(error.message.contains("version 3"));
    }
}
