//! Reads: streams, the global order, the head, and decoding stored rows.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use sqlx::postgres::PgRow;
use sqlx::{AssertSqlSafe, Row};

use super::Inner;
use super::sql::to_i64;
use crate::codec::StoredRow;
use crate::error::Result;
use crate::event::{Position, RecordedEvent};

impl Inner {
    pub(super) async fn read_stream(
        &self,
        stream_id: &str,
        from_version: u64,
        limit: usize,
    ) -> Result<Vec<RecordedEvent>> {
        let mut conn = self.health.connection(&self.pool).await?;
        let rows = self.health.checked(
            sqlx::query(AssertSqlSafe(Arc::clone(&self.sql.read_stream)))
                .bind(stream_id)
                .bind(to_i64(from_version))
                .bind(to_i64(limit as u64))
                .fetch_all(&mut *conn)
                .await,
        )?;
        drop(conn);
        self.decode_all(&rows).await
    }

    pub(super) async fn read_stream_as_of(
        &self,
        stream_id: &str,
        as_of: DateTime<Utc>,
    ) -> Result<Vec<RecordedEvent>> {
        let mut conn = self.health.connection(&self.pool).await?;
        let rows = self.health.checked(
            sqlx::query(AssertSqlSafe(Arc::clone(&self.sql.read_stream_as_of)))
                .bind(stream_id)
                .bind(as_of)
                .fetch_all(&mut *conn)
                .await,
        )?;
        drop(conn);
        self.decode_all(&rows).await
    }

    /// Events after `after`, their payloads still sealed (the store opens them).
    pub(super) async fn read_all(
        &self,
        after: Position,
        limit: usize,
    ) -> Result<Vec<RecordedEvent>> {
        // No extra filter is needed: appends commit in position order (module docs), so every
        // snapshot already holds a settled prefix.
        let mut conn = self.health.connection(&self.pool).await?;
        let rows = self.health.checked(
            sqlx::query(AssertSqlSafe(Arc::clone(&self.sql.read_all)))
                .bind(to_i64(after))
                .bind(to_i64(limit as u64))
                .fetch_all(&mut *conn)
                .await,
        )?;
        rows.iter().map(|r| self.decode_sealed(r)).collect()
    }

    pub(super) async fn head_position(&self) -> Result<Position> {
        let mut conn = self.health.connection(&self.pool).await?;
        let head: i64 = self.health.checked(
            sqlx::query_scalar(AssertSqlSafe(Arc::clone(&self.sql.head)))
                .fetch_one(&mut *conn)
                .await,
        )?;
        Ok(head as Position)
    }

    pub(super) async fn stream_version(&self, stream_id: &str) -> Result<Option<u64>> {
        let mut conn = self.health.connection(&self.pool).await?;
        let version: Option<i64> = self.health.checked(
            sqlx::query_scalar(AssertSqlSafe(Arc::clone(&self.sql.stream_version)))
                .bind(stream_id)
                .fetch_one(&mut *conn)
                .await,
        )?;
        Ok(version.map(|v| v as u64))
    }

    async fn decode_all(&self, rows: &[PgRow]) -> Result<Vec<RecordedEvent>> {
        let events = rows
            .iter()
            .map(|r| self.decode_sealed(r))
            .collect::<Result<Vec<_>>>()?;
        self.codec.open(events, self).await
    }

    /// A stored row as an event, its payload still sealed and at its stored version.
    fn decode_sealed(&self, row: &PgRow) -> Result<RecordedEvent> {
        let payload: String = row.try_get("payload")?;
        let metadata: String = row.try_get("metadata")?;
        Ok(self.codec.stored_event(StoredRow {
            event_id: row.try_get("event_id")?,
            event_type: row.try_get("event_type")?,
            schema_version: row.try_get::<i32, _>("schema_version")? as u32,
            stream_id: row.try_get("stream_id")?,
            stream_version: row.try_get::<i64, _>("stream_version")? as u64,
            position: row.try_get::<i64, _>("position")? as Position,
            recorded_at: row.try_get("recorded_at")?,
            payload: &payload,
            metadata: &metadata,
        }))
    }
}
