//! The diary service as its own process, configured by the environment: the embedded store
//! by default, the production wiring (PostgreSQL, Kafka, Cassandra) when `DB_HOST` is set.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use event_sourcing::sqlite::{SqliteCheckpoints, SqliteEventStore};
use event_sourcing::{EventCodec, EventStore, ProjectionRunner};
use metachat_production::{Pipeline, PipelineSpec, ProductionConfig};
use metachat_runtime::{LogSettings, Stop, env_or, env_parse, init_logging, shutdown_signal};
use tokio::net::TcpListener;

use crate::cassandra::CassandraDiaryReadModels;
use crate::{GrpcUserDirectory, SqliteDiaryReadModels};

/// Runs until Ctrl-C or SIGTERM, serving gRPC on `PORT` (default 50052) and looking users up
/// at `USER_SERVICE_ADDRESS` (default localhost:50051); a stop waits at most
/// `SHUTDOWN_TIMEOUT_SECS` (default 10) for in-flight calls.
pub async fn run_from_env() -> anyhow::Result<()> {
    init_logging(&LogSettings::from_env("diary-service")?)?;
    let port: u16 = env_parse("PORT", 50052)?;
    let shutdown_timeout = Duration::from_secs(env_parse(
        metachat_grpc::SHUTDOWN_TIMEOUT_VAR,
        metachat_grpc::DEFAULT_SHUTDOWN_TIMEOUT.as_secs(),
    )?);
    let production = ProductionConfig::from_env()?;
    let user_service = env_or("USER_SERVICE_ADDRESS", "localhost:50051");
    let users = Arc::new(GrpcUserDirectory::new(&user_service).with_context(|| {
        format!("USER_SERVICE_ADDRESS={user_service:?} is not a valid address")
    })?);
    let listener = TcpListener::bind(("0.0.0.0", port))
        .await
        .with_context(|| format!("binding gRPC port {port}"))?;
    match production {
        None => run_embedded(listener, users, shutdown_timeout).await,
        Some(config) => run_production(listener, users, config, shutdown_timeout).await,
    }
}

/// Events and read models in `DATA_DIR/diary-service.db`, projections in-process.
async fn run_embedded(
    listener: TcpListener,
    users: Arc<GrpcUserDirectory>,
    shutdown_timeout: Duration,
) -> anyhow::Result<()> {
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
    let stop = Stop::new();
    let projections = tokio::spawn(runner.run(stop.signal()));
    tracing::info!(port = listener.local_addr()?.port(), data = %path.display(), "diary service listening");
    crate::serve(
        listener,
        store.clone(),
        read_models,
        users,
        Vec::new(),
        shutdown_signal(),
        shutdown_timeout,
    )
    .await?;
    stop.now();
    let _ = projections.await;
    store.close().await;
    tracing::info!("diary service stopped");
    Ok(())
}

/// Events in PostgreSQL, published to `KAFKA_DIARY_EVENTS_TOPIC` by the elected relay, read
/// models in Cassandra fed by consumer group `KAFKA_CONSUMER_GROUP`.
async fn run_production(
    listener: TcpListener,
    users: Arc<GrpcUserDirectory>,
    config: ProductionConfig,
    shutdown_timeout: Duration,
) -> anyhow::Result<()> {
    let spec = PipelineSpec {
        service: "diary-service",
        topic: env_or("KAFKA_DIARY_EVENTS_TOPIC", "diary-events"),
        group: env_or("KAFKA_CONSUMER_GROUP", "diary-service-read-models"),
        categories: &["entry", "session"],
    };
    let store = metachat_production::open_event_store(
        &config.postgres,
        EventCodec::new(crate::upcasters()),
    )
    .await?;
    let cassandra = metachat_cassandra::CassandraConfig::from_env()?;
    let read_models = Arc::new(CassandraDiaryReadModels::connect(&cassandra).await?);
    let pipeline = Pipeline::start(&spec, &config.kafka, &store, read_models.clone()).await?;
    tracing::info!(
        port = listener.local_addr()?.port(),
        event_store = ?config.postgres,
        topic = %spec.topic,
        "diary service listening (production wiring)"
    );
    let dependencies =
        metachat_production::dependencies(&store, &config.kafka, read_models.session().clone())?;
    let events: Arc<dyn EventStore> = Arc::new(store.clone());
    crate::serve(
        listener,
        events,
        read_models,
        users,
        dependencies,
        shutdown_signal(),
        shutdown_timeout,
    )
    .await?;
    pipeline.stop().await;
    store.close().await;
    tracing::info!("diary service stopped");
    Ok(())
}
