//! Operations on the production wiring (PostgreSQL event store, Cassandra read models).

use std::sync::Arc;

use diary_service::standalone::DiaryService;
use event_sourcing::postgres::PostgresCheckpoints;
use event_sourcing::{EventStore, Projection, ProjectionRunner};
use metachat_bootstrap::Service;
use metachat_production::ProductionConfig;
use user_service::standalone::UserService;

/// Truncates the Cassandra read models of both services and replays every event of the
/// PostgreSQL event store into them. The services may keep running: their consumers go on
/// from their Kafka offsets, and replaying an event the rebuild already applied changes nothing.
pub async fn rebuild_read_models(config: &ProductionConfig) -> anyhow::Result<()> {
    let store = metachat_production::open_event_store(&config.postgres, crate::codec()).await?;
    let (users, _) = UserService::cassandra_read_models(&config.cassandra).await?;
    let (diary, _) = DiaryService::cassandra_read_models(&config.cassandra).await?;
    let projections: [Arc<dyn Projection>; 2] = [users.projection, diary.projection];
    let checkpoints = Arc::new(PostgresCheckpoints::new(&store));
    let events: Arc<dyn EventStore> = Arc::new(store.clone());
    let runners = projections
        .into_iter()
        .map(|p| ProjectionRunner::new(events.clone(), checkpoints.clone(), p))
        .collect();
    crate::rebuild(runners).await?;
    store.close().await;
    Ok(())
}

/// Analyses again the current content of every entry in the PostgreSQL event store with this
/// build's analyzers; the services may be running (their consumers see the new analyses).
pub async fn reanalyze(config: &ProductionConfig) -> anyhow::Result<()> {
    let store = metachat_production::open_event_store(&config.postgres, crate::codec()).await?;
    let (diary, _) = DiaryService::cassandra_read_models(&config.cassandra).await?;
    let events: Arc<dyn EventStore> = Arc::new(store.clone());
    let analyzer = diary_service::analyzer::EntryAnalyzer::new(events.clone(), diary.queries);
    crate::reanalyze(&analyzer, events.as_ref()).await?;
    store.close().await;
    Ok(())
}

/// Indexes every live entry of the PostgreSQL event store in the Cassandra search index; the
/// services may be running.
pub async fn reindex(config: &ProductionConfig, env: &metachat_runtime::Env) -> anyhow::Result<()> {
    let store = metachat_production::open_event_store(&config.postgres, crate::codec()).await?;
    let (diary, _) = DiaryService::cassandra_read_models(&config.cassandra).await?;
    let events: Arc<dyn EventStore> = Arc::new(store.clone());
    let model_dir = diary_service::search::model_dir(env);
    crate::reindex(&model_dir, events, diary.queries).await?;
    store.close().await;
    Ok(())
}
