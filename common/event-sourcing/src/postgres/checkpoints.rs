//! [`PostgresCheckpoints`]: projection checkpoints beside the events.

use std::sync::Arc;

use async_trait::async_trait;
use sqlx::AssertSqlSafe;
use sqlx::postgres::PgPool;

use super::PostgresEventStore;
use super::health::Health;
use super::sql::to_i64;
use crate::error::Result;
use crate::event::Position;
use crate::projection::CheckpointStore;

/// Projection checkpoints in the store's schema.
#[derive(Clone)]
pub struct PostgresCheckpoints {
    pool: PgPool,
    health: Arc<Health>,
    load_sql: Arc<str>,
    save_sql: Arc<str>,
}

impl PostgresCheckpoints {
    /// Checkpoints kept beside the events of `store`.
    pub fn new(store: &PostgresEventStore) -> Self {
        Self {
            pool: store.inner.pool.clone(),
            health: Arc::clone(&store.inner.health),
            load_sql: Arc::clone(&store.inner.sql.checkpoint_load),
            save_sql: Arc::clone(&store.inner.sql.checkpoint_save),
        }
    }
}

#[async_trait]
impl CheckpointStore for PostgresCheckpoints {
    async fn load(&self, name: &str) -> Result<Position> {
        let mut conn = self.health.connection(&self.pool).await?;
        let position: Option<i64> = self.health.checked(
            sqlx::query_scalar(AssertSqlSafe(Arc::clone(&self.load_sql)))
                .bind(name)
                .fetch_optional(&mut *conn)
                .await,
        )?;
        Ok(position.unwrap_or(0) as Position)
    }

    async fn save(&self, name: &str, position: Position) -> Result<()> {
        let mut conn = self.health.connection(&self.pool).await?;
        self.health.checked(
            sqlx::query(AssertSqlSafe(Arc::clone(&self.save_sql)))
                .bind(name)
                .bind(to_i64(position))
                .execute(&mut *conn)
                .await,
        )?;
        Ok(())
    }
}
