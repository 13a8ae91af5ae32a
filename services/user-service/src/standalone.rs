//! The user service as its own process, configured by the environment.

use std::sync::Arc;

use anyhow::Context;
use event_sourcing::sqlite::{SqliteCheckpoints, SqliteEventStore};
use event_sourcing::{EventCodec, ProjectionRunner};
use metachat_runtime::{LogSettings, env_or, env_parse, env_var, init_logging, shutdown_signal};

use crate::SqliteUserReadModels;

/// Runs until Ctrl-C or SIGTERM: gRPC on `PORT` (default 50051), events and read models in
/// `DATA_DIR/user-service.db`.
pub async fn run_from_env() -> anyhow::Result<()> {
    init_logging(&LogSettings::from_env("user-service")?)?;
    let port: u16 = env_parse("PORT", 50051)?;
    if env_var("DB_HOST").is_some() {
        anyhow::bail!(
            "DB_HOST is set, but this build runs only the embedded event store; \
             unset DB_HOST to use the SQLite file under DATA_DIR"
        );
    }
    let path = std::path::Path::new(&env_or("DATA_DIR", "data")).join("user-service.db");
    let store = SqliteEventStore::open(&path, EventCodec::new(crate::upcasters()))
        .await
        .with_context(|| format!("opening the event store {}", path.display()))?;
    let read_models = Arc::new(SqliteUserReadModels::new(store.pool().clone()).await?);
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
    tracing::info!(port, data = %path.display(), "user service listening");
    crate::serve(listener, store, read_models, shutdown_signal()).await?;
    let _ = stop.send(true);
    let _ = projections.await;
    tracing::info!("user service stopped");
    Ok(())
}
