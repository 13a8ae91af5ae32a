//! The diary service as its own process, configured by the environment.

use std::sync::Arc;

use crate::{GrpcUserDirectory, SqliteDiaryReadModels};
use anyhow::Context;
use event_sourcing::sqlite::{SqliteCheckpoints, SqliteEventStore};
use event_sourcing::{EventCodec, ProjectionRunner};
use metachat_runtime::{LogSettings, env_or, env_parse, env_var, init_logging, shutdown_signal};

/// Runs until Ctrl-C or SIGTERM: gRPC on `PORT` (default 50052), events and read models in
/// `DATA_DIR/diary-service.db`, users looked up at `USER_SERVICE_ADDRESS`.
pub async fn run_from_env() -> anyhow::Result<()> {
    init_logging(&LogSettings::from_env("diary-service")?)?;
    let port: u16 = env_parse("PORT", 50052)?;
    if env_var("DB_HOST").is_some() {
        anyhow::bail!(
            "DB_HOST is set, but this build runs only the embedded event store; \
             unset DB_HOST to use the SQLite file under DATA_DIR"
        );
    }
    let user_service = env_or("USER_SERVICE_ADDRESS", "localhost:50051");
    let users = GrpcUserDirectory::new(&user_service)
        .with_context(|| format!("USER_SERVICE_ADDRESS={user_service:?} is not a valid address"))?;
    let path = std::path::Path::new(&env_or("DATA_DIR", "data")).join("diary-service.db");
    let store = SqliteEventStore::open(&path, EventCodec::new(crate::upcasters()))
        .await
        .with_context(|| format!("opening the event store {}", path.display()))?;
    let read_models = Arc::new(SqliteDiaryReadModels::new(store.pool().clone()).await?);
    let store = Arc::new(store);
    let runner = ProjectionRunner::new(
        store.clone(),
        Arc::new(SqliteCheckpoints::new(&store)),
        read_models.clone(),
    );
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let projections = tokio::spawn(runner.run(async move {
        let mut stopped = stopped;
        let _ = stopped.wait_for(|s| *s).await;
    }));

    let listener = tokio::net::TcpListener::bind(("0.0.0.0", port))
        .await
        .with_context(|| format!("binding gRPC port {port}"))?;
    tracing::info!(port, data = %path.display(), "diary service listening");
    crate::serve(
        listener,
        store,
        read_models,
        Arc::new(users),
        shutdown_signal(),
    )
    .await?;
    let _ = stop.send(true);
    let _ = projections.await;
    tracing::info!("diary service stopped");
    Ok(())
}
