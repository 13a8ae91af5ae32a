//! [`PostgresCheckpoints`]: projection checkpoints and dead letters beside the events.

use std::sync::Arc;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use sqlx::AssertSqlSafe;
use sqlx::postgres::PgPool;
use uuid::Uuid;

use super::PostgresEventStore;
use super::health::Health;
use super::sql::{quote_ident, to_i64};
use crate::dead_letter::{DeadLetter, DeadLetters, LetterFilter};
use crate::error::Result;
use crate::event::{Position, RecordedEvent};
use crate::projection::CheckpointStore;

/// Projection checkpoints in the store's schema.
#[derive(Clone)]
pub struct PostgresCheckpoints {
    pool: PgPool,
    health: Arc<Health>,
    load_sql: Arc<str>,
    save_sql: Arc<str>,
    /// The schema-qualified `dead_letters` table.
    dead_letters: Arc<str>,
}

impl PostgresCheckpoints {
    /// Checkpoints kept beside the events of `store`.
    pub fn new(store: &PostgresEventStore) -> Self {
        Self {
            pool: store.inner.pool.clone(),
            health: Arc::clone(&store.inner.health),
            load_sql: Arc::clone(&store.inner.sql.checkpoint_load),
            save_sql: Arc::clone(&store.inner.sql.checkpoint_save),
            dead_letters: format!("{}.dead_letters", quote_ident(&store.inner.schema)).into(),
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

/// `WHERE` of a [`LetterFilter`]: `$1` the projection and `$2` the event id, each `NULL` for any.
const LETTER_FILTER: &str =
    "($1::text IS NULL OR projection = $1) AND ($2::uuid IS NULL OR event_id = $2)";

type LetterRow = (
    String,
    Uuid,
    i64,
    String,
    i64,
    String,
    String,
    DateTime<Utc>,
    i32,
    bool,
);

#[async_trait]
impl DeadLetters for PostgresCheckpoints {
    async fn park(&self, projection: &str, event: &RecordedEvent, error: &str) -> Result<()> {
        let sql = format!(
            "INSERT INTO {} (projection, event_id, position, stream_id, stream_version, \
             event_type, error) VALUES ($1, $2, $3, $4, $5, $6, $7) \
             ON CONFLICT (projection, event_id) DO UPDATE SET error = EXCLUDED.error, \
             attempts = dead_letters.attempts + 1, retry_requested = false",
            self.dead_letters
        );
        let mut conn = self.health.connection(&self.pool).await?;
        self.health.checked(
            sqlx::query(AssertSqlSafe(sql))
                .bind(projection)
                .bind(event.event_id)
                .bind(to_i64(event.position))
                .bind(&event.stream_id)
                .bind(to_i64(event.stream_version))
                .bind(&event.event_type)
                .bind(error)
                .execute(&mut *conn)
                .await,
        )?;
        Ok(())
    }

    async fn dead_letters(&self, filter: &LetterFilter) -> Result<Vec<DeadLetter>> {
        let sql = format!(
            "SELECT projection, event_id, position, stream_id, stream_version, event_type, error, \
             parked_at, attempts, retry_requested FROM {} WHERE {LETTER_FILTER} \
             ORDER BY position, projection",
            self.dead_letters
        );
        let mut conn = self.health.connection(&self.pool).await?;
        let rows: Vec<LetterRow> = self.health.checked(
            sqlx::query_as(AssertSqlSafe(sql))
                .bind(filter.projection.as_deref())
                .bind(filter.event_id)
                .fetch_all(&mut *conn)
                .await,
        )?;
        Ok(rows
            .into_iter()
            .map(|r| DeadLetter {
                projection: r.0,
                event_id: r.1,
                position: r.2 as Position,
                stream_id: r.3,
                stream_version: r.4 as u64,
                event_type: r.5,
                error: r.6,
                parked_at: r.7,
                attempts: r.8 as u32,
                retry_requested: r.9,
            })
            .collect())
    }

    async fn request_retry(&self, filter: &LetterFilter) -> Result<u64> {
        let sql = format!(
            "UPDATE {} SET retry_requested = true WHERE {LETTER_FILTER}",
            self.dead_letters
        );
        self.update(sql, filter).await
    }

    async fn drop_letters(&self, filter: &LetterFilter) -> Result<u64> {
        let sql = format!("DELETE FROM {} WHERE {LETTER_FILTER}", self.dead_letters);
        self.update(sql, filter).await
    }

    async fn resolve(&self, projection: &str, event_id: Uuid) -> Result<()> {
        let filter = LetterFilter {
            projection: Some(projection.to_owned()),
            event_id: Some(event_id),
        };
        self.drop_letters(&filter).await.map(|_| ())
    }
}

impl PostgresCheckpoints {
    async fn update(&self, sql: String, filter: &LetterFilter) -> Result<u64> {
        let mut conn = self.health.connection(&self.pool).await?;
        let done = self.health.checked(
            sqlx::query(AssertSqlSafe(sql))
                .bind(filter.projection.as_deref())
                .bind(filter.event_id)
                .execute(&mut *conn)
                .await,
        )?;
        Ok(done.rows_affected())
    }
}
