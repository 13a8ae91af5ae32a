//! gRPC plumbing shared by the MetaChat services: the request context that becomes event
//! metadata, error mapping into the shared error table, time conversions, audit history, and a
//! server with health checking and reflection.

use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use chrono::{DateTime, TimeZone, Utc};
use event_sourcing::{AppendError, EventMetadata, EventStoreError, ExecuteError, RecordedEvent};
use metachat_proto::Timestamp;
use metachat_proto::common::{EventHistory, StoredEvent};
use metachat_proto::error::{ApiError, ErrorCode};
use metachat_read_model::{PageRequest, QueryError};
use tokio::net::TcpListener;
use tonic::server::NamedService;
use tonic::transport::server::Router;

use metachat_proto::metadata::{ACTOR, CORRELATION_ID, REQUEST_ID};

/// The event metadata for a command carried by `request`.
pub fn event_metadata<T>(request: &tonic::Request<T>) -> EventMetadata {
    let get = |key: &str| {
        request
            .metadata()
            .get(key)
            .and_then(|v| v.to_str().ok())
            .map(|v| v.chars().take(128).collect::<String>())
            .filter(|v| !v.is_empty())
    };
    let request_id = get(REQUEST_ID);
    EventMetadata {
        correlation_id: get(CORRELATION_ID).or_else(|| request_id.clone()),
        causation_id: request_id.clone(),
        request_id,
        actor: get(ACTOR),
    }
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

/// A timestamp for the wire.
pub fn timestamp(time: DateTime<Utc>) -> Timestamp {
    Timestamp {
        seconds: time.timestamp(),
        nanos: time.timestamp_subsec_nanos() as i32,
    }
}

/// A timestamp from the wire; `field` names it in the error. Years outside 1..=9999 are
/// refused: no store keeps them, and they can only be mistakes.
pub fn from_timestamp(field: &str, ts: &Timestamp) -> Result<DateTime<Utc>, ApiError> {
    u32::try_from(ts.nanos)
        .ok()
        .and_then(|nanos| Utc.timestamp_opt(ts.seconds, nanos).single())
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
                }),
            })
            .collect(),
    }
}

/// The health-service name under which a service reports one of its dependencies.
pub const DEPENDENCY_PREFIX: &str = "metachat.dependency.";

/// How often dependencies are probed, and how long one probe may take.
const PROBE_EVERY: Duration = Duration::from_secs(5);
const PROBE_TIMEOUT: Duration = Duration::from_secs(3);

/// A probe: resolves to whether the dependency answered.
pub type Probe = Box<dyn Fn() -> Pin<Box<dyn Future<Output = bool> + Send>> + Send + Sync>;

/// Something a service needs, reported on its health service as
/// `metachat.dependency.<name>` (e.g. `grpcurl -d '{"service":"metachat.dependency.kafka"}'`).
pub struct Dependency {
    pub name: &'static str,
    /// When a critical dependency is down, nothing the service does can succeed, so the
    /// service itself reports NOT_SERVING (and readiness fails).
    pub critical: bool,
    pub probe: Probe,
}

impl Dependency {
    pub fn new<F, Fut>(name: &'static str, critical: bool, probe: F) -> Self
    where
        F: Fn() -> Fut + Send + Sync + 'static,
        Fut: Future<Output = bool> + Send + 'static,
    {
        Self {
            name,
            critical,
            probe: Box::new(move || Box::pin(probe())),
        }
    }
}

/// Serves `router` (the service already added) on `listener`, with the standard gRPC health
/// service and server reflection over every MetaChat service, until `shutdown` completes.
/// The health service reports the service `S` and, probed every few seconds, each dependency.
pub async fn serve<S>(
    listener: TcpListener,
    router: impl FnOnce(Router) -> Router,
    dependencies: Vec<Dependency>,
    shutdown: impl Future<Output = ()> + Send,
) -> Result<(), tonic::transport::Error>
where
    S: NamedService,
{
    let (reporter, health) = tonic_health::server::health_reporter();
    reporter
        .set_service_status(S::NAME, tonic_health::ServingStatus::Serving)
        .await;
    let probes = (!dependencies.is_empty())
        .then(|| tokio::spawn(probe_forever(reporter, S::NAME, dependencies)));
    let reflection = tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(metachat_proto::FILE_DESCRIPTOR_SET)
        .build_v1()
        .map_err(|e| {
            tracing::error!(error = %e, "reflection descriptors are invalid");
            e
        });
    let mut server = tonic::transport::Server::builder();
    let base = server.add_service(health);
    let base = match reflection {
        Ok(reflection) => base.add_service(reflection),
        Err(_) => base,
    };
    let incoming = tokio_stream::wrappers::TcpListenerStream::new(listener);
    let served = router(base)
        .serve_with_incoming_shutdown(incoming, shutdown)
        .await;
    if let Some(probes) = probes {
        probes.abort();
    }
    served
}

async fn probe_forever(
    reporter: tonic_health::server::HealthReporter,
    service: &'static str,
    dependencies: Vec<Dependency>,
) {
    use tonic_health::ServingStatus::{NotServing, Serving};
    let mut was_up: Vec<Option<bool>> = vec![None; dependencies.len()];
    loop {
        let mut critical_down = false;
        for (dependency, was_up) in dependencies.iter().zip(was_up.iter_mut()) {
            let up = tokio::time::timeout(PROBE_TIMEOUT, (dependency.probe)())
                .await
                .unwrap_or(false);
            if *was_up != Some(up) {
                if up {
                    tracing::info!(dependency = dependency.name, "dependency is up");
                } else {
                    tracing::warn!(dependency = dependency.name, "dependency is down");
                }
                *was_up = Some(up);
            }
            let name = format!("{DEPENDENCY_PREFIX}{}", dependency.name);
            reporter
                .set_service_status(name, if up { Serving } else { NotServing })
                .await;
            critical_down |= dependency.critical && !up;
        }
        reporter
            .set_service_status(service, if critical_down { NotServing } else { Serving })
            .await;
        tokio::time::sleep(PROBE_EVERY).await;
    }
}

const DEFAULT_LIMIT: u32 = 10;
const MAX_LIMIT: u32 = 100;

/// The page number (1-based, 0 meaning 1) and the read-model request for a list call's
/// `page`, `limit` (0 meaning 10, at most 100) and `cursor` (empty meaning none).
pub fn page_request(page: u32, limit: u32, cursor: String) -> Result<(u32, PageRequest), ApiError> {
    let page = page.max(1);
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
