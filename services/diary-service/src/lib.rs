//! The diary service: entries, writing sessions and analytics, event-sourced.
//!
//! Commands are decided by the [`domain::Entry`] and [`domain::Session`] aggregates; reads of
//! one entry or session replay its stream (read-your-writes); lists, time ranges and analytics
//! come from the read models kept by [`read_model::SqliteDiaryReadModels`].

pub mod analytics;
pub mod application;
pub mod cassandra;
pub mod domain;
pub mod grpc;
pub mod read_model;
pub mod standalone;
pub mod users;

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use event_sourcing::{EventStore, Upcasters};
use metachat_proto::diary::diary_service_server::DiaryServiceServer;
use tokio::net::TcpListener;

pub use grpc::DiaryGrpc;
pub use read_model::{DiaryReadModels, SqliteDiaryReadModels};
pub use users::{GrpcUserDirectory, UserDirectory};

/// Upcasters for old diary event payloads (none yet: every diary event is at version 1).
pub fn upcasters() -> Upcasters {
    Upcasters::new()
}

/// Serves the diary service, with gRPC health (reporting `dependencies` too) and reflection,
/// until `shutdown` completes, then for at most `shutdown_timeout` while calls finish. Lists
/// and analytics wait for their consistency token at most `READ_YOUR_WRITES_TIMEOUT_MS`
/// (read here, once).
pub async fn serve(
    listener: TcpListener,
    store: Arc<dyn EventStore>,
    read_models: Arc<dyn DiaryReadModels>,
    users: Arc<dyn UserDirectory>,
    dependencies: Vec<metachat_grpc::Dependency>,
    shutdown: impl Future<Output = ()> + Send,
    shutdown_timeout: Duration,
) -> anyhow::Result<()> {
    let read_your_writes = read_your_writes_timeout()?;
    let service =
        DiaryServiceServer::new(DiaryGrpc::new(store, read_models, users, read_your_writes));
    metachat_grpc::serve::<DiaryServiceServer<DiaryGrpc>>(
        listener,
        |router| router.add_service(service),
        dependencies,
        shutdown,
        shutdown_timeout,
    )
    .await?;
    Ok(())
}

/// `READ_YOUR_WRITES_TIMEOUT_MS` (default 3000): how long a list waits for the write its
/// consistency token names before answering 503.
pub fn read_your_writes_timeout() -> Result<Duration, metachat_runtime::ConfigError> {
    let default = metachat_grpc::DEFAULT_READ_YOUR_WRITES_TIMEOUT.as_millis() as u64;
    metachat_runtime::env_parse(metachat_grpc::READ_YOUR_WRITES_TIMEOUT_VAR, default)
        .map(Duration::from_millis)
}
