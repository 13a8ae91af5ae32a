//! The ordered append: one transaction under the append lock (see the module docs of
//! [`crate::postgres`]), its checks, and the typed errors of racing writers.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use chrono::{DateTime, Utc};
use sqlx::{AssertSqlSafe, Connection, Row};
use uuid::Uuid;

use super::Inner;
use super::listen::advance;
use super::sql::to_i64;
use crate::error::{EventStoreError, Result};
use crate::event::{AppendResult, ExpectedVersion, Position, StreamWrite};
use crate::personal::DataKey;

/// How often an append retries after a unique violation caused by a writer that bypassed the
/// append lock (see the module docs). With only this store writing, it never retries.
const RACE_ATTEMPTS: u32 = 3;

/// One stream write's events as they go into the insert's arrays.
struct EncodedWrite {
    event_ids: Vec<Uuid>,
    event_types: Vec<String>,
    schema_versions: Vec<i32>,
    metadata: Vec<String>,
}

/// Why one attempt at an append did not commit.
enum AttemptError {
    /// A writer that bypassed the append lock committed the same stream version or event id
    /// first (unique violation on insert): the checks must run again.
    Raced {
        write: usize,
        on: Constraint,
    },
    Failed(EventStoreError),
}

#[derive(Debug, Clone, Copy)]
enum Constraint {
    StreamVersion,
    EventId,
}

impl From<EventStoreError> for AttemptError {
    fn from(error: EventStoreError) -> Self {
        Self::Failed(error)
    }
}

impl From<sqlx::Error> for AttemptError {
    fn from(error: sqlx::Error) -> Self {
        Self::Failed(error.into())
    }
}

/// Where an event id is stored, and when.
struct StoredPlace {
    stream_id: String,
    version: u64,
    position: Position,
    recorded_at: DateTime<Utc>,
}

/// An append waiting for the append lock, and where its outcome goes.
pub(super) struct PendingAppend {
    writes: Vec<StreamWrite>,
    encoded: Vec<EncodedWrite>,
    reply: tokio::sync::oneshot::Sender<Result<Vec<AppendResult>>>,
}

/// One append's outcome inside a group's transaction, with the keys it sealed with.
type Attempt = std::result::Result<(Vec<AppendResult>, HashMap<String, DataKey>), AttemptError>;

impl Inner {
    /// Group commit: an append joins the queue; whoever commits next takes every append
    /// queued and stores them in one transaction under the append lock (one lock, one commit
    /// for all), each in a savepoint of its own so that one refused append (a version
    /// conflict) leaves the others. An append is answered only after the commit that holds
    /// it.
    pub(super) async fn append(&self, writes: Vec<StreamWrite>) -> Result<Vec<AppendResult>> {
        let encoded = writes
            .iter()
            .map(|write| self.encode(write))
            .collect::<Result<Vec<_>>>()?;
        let (reply, mut outcome) = tokio::sync::oneshot::channel();
        self.queue
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .push(PendingAppend {
                writes,
                encoded,
                reply,
            });
        let committer = self.committer.lock().await;
        // The committer before us may have committed ours with its own.
        if let Ok(done) = outcome.try_recv() {
            return done;
        }
        let group = std::mem::take(
            &mut *self
                .queue
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner),
        );
        self.commit_group(group).await;
        drop(committer);
        outcome
            .await
            .unwrap_or_else(|_| Err(EventStoreError::Backend(sqlx::Error::WorkerCrashed)))
    }

    /// Commits `group` together when it has more than one append; an append that raced an
    /// outside writer, or a group whose transaction failed, is tried again alone.
    async fn commit_group(&self, group: Vec<PendingAppend>) {
        let outcomes = if group.len() > 1 {
            self.append_group_once(&group).await.ok()
        } else {
            None
        };
        let mut outcomes = outcomes.map(Vec::into_iter);
        for pending in group {
            let answer = match outcomes.as_mut().and_then(Iterator::next) {
                Some(Ok((results, _))) => Ok(results),
                Some(Err(AttemptError::Failed(error))) => Err(error),
                Some(Err(AttemptError::Raced { .. })) | None => {
                    self.append_alone(&pending.writes, &pending.encoded).await
                }
            };
            if let Ok(results) = &answer
                && let Some(last) = results.iter().map(|r| r.last_position).max()
            {
                advance(&self.head, last);
            }
            let _ = pending.reply.send(answer);
        }
    }

    /// One append in a transaction of its own, tried again while it races a writer that
    /// bypassed the append lock.
    async fn append_alone(
        &self,
        writes: &[StreamWrite],
        encoded: &[EncodedWrite],
    ) -> Result<Vec<AppendResult>> {
        let mut attempt = 1;
        loop {
            match self.append_once(writes, encoded).await {
                Ok(results) => return Ok(results),
                Err(AttemptError::Failed(error)) => {
                    self.health.observe(&error);
                    return Err(error);
                }
                Err(AttemptError::Raced { write, on }) if attempt >= RACE_ATTEMPTS => {
                    return Err(self.race_error(write, &writes[write], on).await);
                }
                Err(AttemptError::Raced { write, on }) => {
                    tracing::warn!(
                        stream_id = writes[write].stream_id,
                        constraint = ?on,
                        "an append raced a writer that bypassed the append lock; checking again"
                    );
                    attempt += 1;
                }
            }
        }
    }

    /// The appends of a group in one transaction under the append lock, each in a savepoint:
    /// each one's outcome once committed; an error when the transaction as a whole failed.
    async fn append_group_once(
        &self,
        group: &[PendingAppend],
    ) -> std::result::Result<Vec<Attempt>, AttemptError> {
        let mut conn = self.health.connection(&self.pool).await?;
        let mut tx = conn.begin().await?;
        sqlx::raw_sql(AssertSqlSafe(Arc::clone(&self.sql.append_lock)))
            .execute(&mut *tx)
            .await?;
        let mut outcomes = Vec::with_capacity(group.len());
        for pending in group {
            sqlx::query("SAVEPOINT append").execute(&mut *tx).await?;
            let outcome = self
                .append_in(&mut tx, &pending.writes, &pending.encoded)
                .await;
            if outcome.is_err() {
                sqlx::query("ROLLBACK TO SAVEPOINT append")
                    .execute(&mut *tx)
                    .await?;
            }
            sqlx::query("RELEASE SAVEPOINT append")
                .execute(&mut *tx)
                .await?;
            outcomes.push(outcome);
        }
        #[cfg(feature = "contract-tests")]
        self.wait_if_held(
            outcomes
                .iter()
                .filter_map(|o| o.as_ref().ok())
                .flat_map(|(results, _)| results.iter().map(|r| r.last_position))
                .max()
                .unwrap_or(0),
        )
        .await;
        tx.commit().await?;
        self.commits
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        crate::metrics::COMMITS.inc(&[]);
        for (_, keys) in outcomes.iter().filter_map(|o| o.as_ref().ok()) {
            for (subject, key) in keys {
                self.codec.key_cache().remember(subject, key);
            }
        }
        Ok(outcomes)
    }

    fn encode(&self, write: &StreamWrite) -> Result<EncodedWrite> {
        let mut encoded = EncodedWrite {
            event_ids: Vec::with_capacity(write.events.len()),
            event_types: Vec::with_capacity(write.events.len()),
            schema_versions: Vec::with_capacity(write.events.len()),
            metadata: Vec::with_capacity(write.events.len()),
        };
        for event in &write.events {
            encoded.event_ids.push(event.event_id);
            encoded.event_types.push(event.event_type.clone());
            encoded
                .schema_versions
                .push(i32::try_from(event.schema_version).map_err(|_| {
                    EventStoreError::InvalidWrite(format!(
                        "schema version {} of {} is too large",
                        event.schema_version, event.event_type
                    ))
                })?);
            encoded
                .metadata
                .push(self.codec.encode_metadata(&event.metadata)?);
        }
        Ok(encoded)
    }

    async fn append_once(
        &self,
        writes: &[StreamWrite],
        encoded: &[EncodedWrite],
    ) -> std::result::Result<Vec<AppendResult>, AttemptError> {
        let mut conn = self.health.connection(&self.pool).await?;
        let mut tx = conn.begin().await?;
        // First, alone in its statement: the append lock (module docs).
        sqlx::raw_sql(AssertSqlSafe(Arc::clone(&self.sql.append_lock)))
            .execute(&mut *tx)
            .await?;
        let (results, keys) = self.append_in(&mut tx, writes, encoded).await?;
        #[cfg(feature = "contract-tests")]
        self.wait_if_held(results.iter().map(|r| r.last_position).max().unwrap_or(0))
            .await;
        tx.commit().await?;
        self.commits
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        crate::metrics::COMMITS.inc(&[]);
        for (subject, key) in &keys {
            self.codec.key_cache().remember(subject, key);
        }
        Ok(results)
    }

    /// An append's checks and inserts, inside a transaction that holds the append lock.
    async fn append_in(
        &self,
        tx: &mut sqlx::PgConnection,
        writes: &[StreamWrite],
        encoded: &[EncodedWrite],
    ) -> Attempt {
        let all_ids: Vec<Uuid> = encoded
            .iter()
            .flat_map(|e| e.event_ids.iter().copied())
            .collect();
        let streams: Vec<&str> = writes.iter().map(|w| w.stream_id.as_str()).collect();
        let rows = sqlx::query(AssertSqlSafe(Arc::clone(&self.sql.lookup)))
            .bind(&all_ids)
            .bind(&streams)
            .fetch_all(&mut *tx)
            .await?;
        let mut stored: HashMap<Uuid, StoredPlace> = HashMap::new();
        let mut versions: HashMap<String, u64> = HashMap::new();
        let mut checked_at = None;
        for row in &rows {
            let stream_id: String = row.try_get(1)?;
            let version: Option<i64> = row.try_get(2)?;
            let recorded_at: Option<DateTime<Utc>> = row.try_get(4)?;
            match row.try_get::<Option<Uuid>, _>(0)? {
                Some(event_id) => {
                    let position: Option<i64> = row.try_get(3)?;
                    let place = StoredPlace {
                        stream_id,
                        version: version.unwrap_or(0) as u64,
                        position: position.unwrap_or(0) as Position,
                        recorded_at: recorded_at.unwrap_or_default(),
                    };
                    stored.insert(event_id, place);
                }
                None => {
                    checked_at = checked_at.or(recorded_at);
                    if let Some(version) = version {
                        versions.insert(stream_id, version as u64);
                    }
                }
            }
        }

        // Payloads are sealed here, with keys read under the lock (see `write_keys`).
        let keys = self
            .write_keys(&mut *tx, self.codec.write_subjects(writes))
            .await?;
        let payloads = writes
            .iter()
            .map(|w| {
                w.events
                    .iter()
                    .map(|e| self.codec.encode_payload(&w.stream_id, e, &keys))
                    .collect::<Result<Vec<_>>>()
            })
            .collect::<Result<Vec<_>>>()?;

        let mut results = Vec::with_capacity(writes.len());
        for (index, (write, events)) in writes.iter().zip(encoded).enumerate() {
            if let Some(done) = already_stored(write, &stored)? {
                results.push(done);
                continue;
            }
            let current = versions.get(&write.stream_id).copied();
            let ok = match write.expected {
                ExpectedVersion::Any => true,
                ExpectedVersion::NoStream => current.is_none(),
                ExpectedVersion::Exact(v) => current == Some(v),
            };
            if !ok {
                return Err(AttemptError::Failed(
                    EventStoreError::WrongExpectedVersion {
                        write: index,
                        stream_id: write.stream_id.clone(),
                        expected: write.expected,
                        actual: current,
                    },
                ));
            }
            if let Some(event_id) = events.event_ids.iter().find(|id| stored.contains_key(*id)) {
                return Err(AttemptError::Failed(EventStoreError::EventIdReused {
                    event_id: *event_id,
                }));
            }
            let base = current.unwrap_or(0);
            if events.event_ids.is_empty() {
                results.push(AppendResult {
                    stream_id: write.stream_id.clone(),
                    stream_version: base,
                    last_position: 0,
                    already_stored: false,
                    // There is one stream row per write, so this is always the lookup's time.
                    recorded_at: checked_at.unwrap_or_else(Utc::now),
                });
                continue;
            }
            let inserted: std::result::Result<(i64, DateTime<Utc>), sqlx::Error> =
                sqlx::query_as(AssertSqlSafe(Arc::clone(&self.sql.insert)))
                    .bind(&events.event_ids)
                    .bind(&write.stream_id)
                    .bind(to_i64(base))
                    .bind(&events.event_types)
                    .bind(&events.schema_versions)
                    .bind(&payloads[index])
                    .bind(&events.metadata)
                    .bind(&self.channel)
                    .fetch_one(&mut *tx)
                    .await;
            let (last_position, recorded_at) = match inserted {
                Ok((position, recorded_at)) => (position as Position, recorded_at),
                Err(sqlx::Error::Database(e)) if e.is_unique_violation() => {
                    let on = match e.constraint() {
                        Some("events_event_id_key") => Constraint::EventId,
                        _ => Constraint::StreamVersion,
                    };
                    return Err(AttemptError::Raced { write: index, on });
                }
                Err(e) => return Err(e.into()),
            };
            results.push(AppendResult {
                stream_id: write.stream_id.clone(),
                stream_version: base + events.event_ids.len() as u64,
                last_position,
                already_stored: false,
                recorded_at,
            });
        }

        Ok((results, keys))
    }

    /// The typed error for a write that kept racing an outside writer.
    async fn race_error(
        &self,
        index: usize,
        write: &StreamWrite,
        on: Constraint,
    ) -> EventStoreError {
        match on {
            Constraint::StreamVersion => EventStoreError::WrongExpectedVersion {
                write: index,
                stream_id: write.stream_id.clone(),
                expected: write.expected,
                actual: self.stream_version(&write.stream_id).await.ok().flatten(),
            },
            Constraint::EventId => {
                let ids: Vec<Uuid> = write.events.iter().map(|e| e.event_id).collect();
                let stored: HashSet<Uuid> =
                    sqlx::query_scalar(AssertSqlSafe(Arc::clone(&self.sql.stored_ids)))
                        .bind(&ids)
                        .fetch_all(&self.pool)
                        .await
                        .map(|found: Vec<Uuid>| found.into_iter().collect())
                        .unwrap_or_default();
                let event_id = ids
                    .iter()
                    .copied()
                    .find(|id| stored.contains(id))
                    .unwrap_or(ids[0]);
                EventStoreError::EventIdReused { event_id }
            }
        }
    }
}

/// When the write's events are all stored already, in its stream at consecutive versions (a
/// retry), what the first attempt did; same rules as the SQLite backend.
fn already_stored(
    write: &StreamWrite,
    stored: &HashMap<Uuid, StoredPlace>,
) -> Result<Option<AppendResult>> {
    let Some(first) = write.events.first() else {
        // An empty write stores nothing; report the stream as it is.
        return Ok(None);
    };
    let Some(first_version) = stored.get(&first.event_id).map(|place| place.version) else {
        return Ok(None);
    };
    let mut last = None;
    for (i, event) in write.events.iter().enumerate() {
        match stored.get(&event.event_id) {
            Some(place)
                if place.stream_id == write.stream_id
                    && place.version == first_version + i as u64 =>
            {
                last = Some(place);
            }
            _ => {
                return Err(EventStoreError::EventIdReused {
                    event_id: event.event_id,
                });
            }
        }
    }
    // The write has a first event, so the loop matched at least one place.
    let Some(last) = last else {
        return Ok(None);
    };
    Ok(Some(AppendResult {
        stream_id: write.stream_id.clone(),
        stream_version: last.version,
        last_position: last.position,
        already_stored: true,
        recorded_at: last.recorded_at,
    }))
}
