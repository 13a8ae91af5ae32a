//! The user service: users, profiles, archetypes and modalities, event-sourced.
//!
//! Commands are decided by the [`domain::User`] aggregate and stored as events; single-user
//! reads replay the user's stream (read-your-writes), lists come from the read models kept by
//! [`read_model::SqliteUserReadModels`].

pub mod application;
pub mod cassandra;
pub mod domain;
pub mod grpc;
pub mod read_model;
pub mod standalone;
pub mod view;

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use event_sourcing::{EventStore, Upcasters};
use metachat_proto::user::user_service_server::UserServiceServer;
use tokio::net::TcpListener;

pub use grpc::UserGrpc;
pub use read_model::{SqliteUserReadModels, UserReadModels};

/// Upcasters for old user event payloads (none yet: every user event is at version 1).
pub fn upcasters() -> Upcasters {
    Upcasters::new()
}

/// Serves the user service, with gRPC health (reporting `dependencies` too) and reflection,
/// until `shutdown` completes, then for at most `shutdown_timeout` while calls finish. Lists
/// wait for their consistency token at most `READ_YOUR_WRITES_TIMEOUT_MS` (read here, once).
pub async fn serve(
    listener: TcpListener,
    store: Arc<dyn EventStore>,
    read_models: Arc<dyn UserReadModels>,
    dependencies: Vec<metachat_grpc::Dependency>,
    shutdown: impl Future<Output = ()> + Send,
    shutdown_timeout: Duration,
) -> anyhow::Result<()> {
    let read_your_writes = read_your_writes_timeout()?;
    let service = UserServiceServer::new(UserGrpc::new(store, read_models, read_your_writes));
    metachat_grpc::serve::<UserServiceServer<UserGrpc>>(
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
