//! The embedded backend: one SQLite file in WAL mode with durable (`synchronous = FULL`) commits.
//!
//! Appends go through one dedicated connection and `BEGIN IMMEDIATE`, so writers are serialised
//! (also across processes sharing the file) and positions become visible in order; appends
//! that arrive while one commits share the next transaction and its `fsync` (group commit,
//! [`Inner::append`]). Reads use a pool of connections that never block the writer.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, TimeZone, Utc};
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteConnection, SqliteJournalMode, SqlitePool, SqlitePoolOptions,
    SqliteRow, SqliteSynchronous,
};
use sqlx::{Connection, Row};
use tokio::sync::{Mutex, oneshot, watch};
use uuid::Uuid;

use std::collections::HashMap;

use crate::codec::{EventCodec, StoredRow};
use crate::dead_letter::{DeadLetter, DeadLetters, LetterFilter};
use crate::error::{EventStoreError, Result};
use crate::event::{AppendResult, ExpectedVersion, Position, RecordedEvent, StreamWrite};
use crate::personal::{DataKey, KeyTable, StoredKey};
use crate::projection::CheckpointStore;
use crate::store::{EventStore, detached, validate_writes};

const SCHEMA: &[&str] = &[
    "CREATE TABLE IF NOT EXISTS events (
        position       INTEGER PRIMARY KEY AUTOINCREMENT,
        event_id       TEXT    NOT NULL UNIQUE,
        stream_id      TEXT    NOT NULL,
        stream_version INTEGER NOT NULL,
        event_type     TEXT    NOT NULL,
        schema_version INTEGER NOT NULL,
        payload        TEXT    NOT NULL,
        metadata       TEXT    NOT NULL,
        recorded_at    INTEGER NOT NULL,
        UNIQUE (stream_id, stream_version)
    )",
    "CREATE TABLE IF NOT EXISTS checkpoints (
        name       TEXT    PRIMARY KEY,
        position   INTEGER NOT NULL,
        updated_at INTEGER NOT NULL
    )",
    // Events a projection could not apply ([`crate::dead_letter`]).
    "CREATE TABLE IF NOT EXISTS dead_letters (
        projection      TEXT    NOT NULL,
        event_id        TEXT    NOT NULL,
        position        INTEGER NOT NULL,
        stream_id       TEXT    NOT NULL,
        stream_version  INTEGER NOT NULL,
        event_type      TEXT    NOT NULL,
        error           TEXT    NOT NULL,
        parked_at       INTEGER NOT NULL,
        attempts        INTEGER NOT NULL,
        retry_requested INTEGER NOT NULL DEFAULT 0,
        PRIMARY KEY (projection, event_id)
    )",
    // Each subject's data key ([`crate::personal`]); `key` is NULL once the subject is erased.
    "CREATE TABLE IF NOT EXISTS data_keys (
        subject    TEXT    PRIMARY KEY,
        key        BLOB,
        created_at INTEGER NOT NULL,
        erased_at  INTEGER,
        CHECK ((key IS NULL) = (erased_at IS NOT NULL))
    )",
];

const SELECT_EVENT: &str = "SELECT position, event_id, stream_id, stream_version, event_type, \
     schema_version, payload, metadata, recorded_at FROM events";

/// Options of an embedded store.
#[derive(Debug, Clone)]
pub struct SqliteOptions {
    /// Connections for readers (the writer has its own).
    pub read_connections: u32,
    /// How long a writer waits for another process holding the file's write lock.
    pub busy_timeout: Duration,
    /// `synchronous = FULL`: a commit survives power loss. Turning it off trades that for speed
    /// and is only for throwaway data.
    pub durable: bool,
}

impl Default for SqliteOptions {
    fn default() -> Self {
        Self {
            read_connections: 4,
            busy_timeout: Duration::from_secs(5),
            durable: true,
        }
    }
}

/// The embedded event store. Cheap to clone: clones share the file, connections and head.
#[derive(Clone)]
pub struct SqliteEventStore {
    inner: Arc<Inner>,
}

struct Inner {
    writer: Mutex<SqliteConnection>,
    /// Appends waiting for the writer ([`Inner::append`]).
    queue: std::sync::Mutex<Vec<PendingAppend>>,
    /// Transactions that committed appends.
    commits: std::sync::atomic::AtomicU64,
    pool: SqlitePool,
    codec: EventCodec,
    head: watch::Sender<Position>,
}

impl SqliteEventStore {
    /// Opens (creating if needed) the store in the file at `path`.
    pub async fn open(path: impl AsRef<Path>, codec: EventCodec) -> Result<Self> {
        Self::open_with(path, codec, SqliteOptions::default()).await
    }

    pub async fn open_with(
        path: impl AsRef<Path>,
        codec: EventCodec,
        options: SqliteOptions,
    ) -> Result<Self> {
        let connect = connect_options(path.as_ref(), &options)?;
        let mut writer = SqliteConnection::connect_with(&connect).await?;
        retry_busy_soon(&mut writer, options.busy_timeout).await?;
        for statement in SCHEMA {
            sqlx::query(*statement).execute(&mut writer).await?;
        }
        // What the pool writes (checkpoints, read models, dead letters, the search index) is
        // derived from the events, so its commits need not wait for the disk: with the log,
        // `NORMAL` keeps the file consistent, and a power cut loses at most the last commits,
        // checkpoints with the rows they cover, which the projections then apply again. The
        // events and the data keys are written by the writer connection, with `FULL`.
        let derived = if options.durable {
            connect.synchronous(SqliteSynchronous::Normal)
        } else {
            connect
        };
        let busy_timeout = options.busy_timeout;
        let pool = SqlitePoolOptions::new()
            .max_connections(options.read_connections.max(1))
            .after_connect(move |conn, _| {
                Box::pin(async move { retry_busy_soon(conn, busy_timeout).await })
            })
            .connect_with(derived)
            .await?;
        let head: i64 = sqlx::query_scalar("SELECT COALESCE(MAX(position), 0) FROM events")
            .fetch_one(&mut writer)
            .await?;
        let (head, _) = watch::channel(head as Position);
        Ok(Self {
            inner: Arc::new(Inner {
                writer: Mutex::new(writer),
                queue: std::sync::Mutex::new(Vec::new()),
                commits: Default::default(),
                pool,
                codec,
                head,
            }),
        })
    }

    /// Transactions that committed appends since the store was opened: fewer than the
    /// appends when concurrent ones shared commits.
    pub fn commits(&self) -> u64 {
        self.inner
            .commits
            .load(std::sync::atomic::Ordering::Relaxed)
    }

    /// A pool on the same file, for components that keep their own tables beside the events
    /// (checkpoints, embedded read models).
    pub fn pool(&self) -> &SqlitePool {
        &self.inner.pool
    }

    /// Checkpoints the log into the file (what was deleted leaves both), then closes every
    /// connection; later calls fail.
    pub async fn close(&self) {
        {
            let mut writer = self.inner.writer.lock().await;
            if let Err(error) = sqlx::query("PRAGMA wal_checkpoint(TRUNCATE)")
                .execute(&mut *writer)
                .await
            {
                tracing::debug!(%error, "checkpoint on close skipped");
            }
        }
        self.inner.pool.close().await;
    }
}

/// How long a connection that finds the file locked by another writer pauses before it
/// tries again.
const BUSY_PAUSE: Duration = Duration::from_micros(100);

/// Makes a connection that finds the database locked by another writer try again every
/// [`BUSY_PAUSE`], for up to `timeout`. SQLite's own busy handler (`busy_timeout`) sleeps 1,
/// 2, 5, 10, … up to 100 ms between tries, so a writer held back by a transaction of two
/// milliseconds (a projection's, on another connection of this process) could wait tens of
/// milliseconds: the tail of every write's latency under load.
pub async fn retry_busy_soon(
    conn: &mut SqliteConnection,
    timeout: Duration,
) -> std::result::Result<(), sqlx::Error> {
    extern "C" fn try_again(
        tries_allowed: *mut std::ffi::c_void,
        tries: std::ffi::c_int,
    ) -> std::ffi::c_int {
        if usize::try_from(tries).unwrap_or(usize::MAX) >= tries_allowed as usize {
            return 0;
        }
        std::thread::sleep(BUSY_PAUSE);
        1
    }
    let tries_allowed = (timeout.as_micros() / BUSY_PAUSE.as_micros()).max(1) as usize;
    let mut handle = conn.lock_handle().await?;
    // SAFETY: the handle is a live connection, locked for this call; the handler is a plain
    // function, and its data a number carried in the pointer, never dereferenced.
    let code = unsafe {
        libsqlite3_sys::sqlite3_busy_handler(
            handle.as_raw_handle().as_ptr(),
            Some(try_again),
            tries_allowed as *mut std::ffi::c_void,
        )
    };
    if code != libsqlite3_sys::SQLITE_OK {
        return Err(sqlx::Error::Protocol(format!(
            "setting the busy handler failed with SQLite code {code}"
        )));
    }
    Ok(())
}

/// Connection options for any component that opens the embedded database file.
pub fn connect_options(path: &Path, options: &SqliteOptions) -> Result<SqliteConnectOptions> {
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent).map_err(|e| {
            EventStoreError::InvalidWrite(format!(
                "cannot create data directory {}: {e}",
                parent.display()
            ))
        })?;
    }
    Ok(SqliteConnectOptions::new()
        .filename(path)
        .create_if_missing(true)
        .journal_mode(SqliteJournalMode::Wal)
        .synchronous(if options.durable {
            SqliteSynchronous::Full
        } else {
            SqliteSynchronous::Off
        })
        .busy_timeout(options.busy_timeout)
        .foreign_keys(true)
        // Deleted rows are overwritten with zeros, not left in free pages: an erased user's
        // read-model rows and key must not be recoverable from the file.
        .pragma("secure_delete", "on"))
}

#[async_trait]
impl EventStore for SqliteEventStore {
    async fn append_streams(&self, writes: Vec<StreamWrite>) -> Result<Vec<AppendResult>> {
        validate_writes(&writes)?;
        let inner = Arc::clone(&self.inner);
        detached("append", async move { inner.append(writes).await }).await
    }

    async fn read_stream(
        &self,
        stream_id: &str,
        from_version: u64,
        limit: usize,
    ) -> Result<Vec<RecordedEvent>> {
        let sql = format!(
            "{SELECT_EVENT} WHERE stream_id = ? AND stream_version >= ? ORDER BY stream_version LIMIT ?"
        );
        let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(stream_id.to_owned())
            .bind(from_version as i64)
            .bind(limit as i64)
            .fetch_all(&self.inner.pool)
            .await?;
        self.inner.decode_all(&rows).await
    }

    async fn read_stream_as_of(
        &self,
        stream_id: &str,
        as_of: DateTime<Utc>,
    ) -> Result<Vec<RecordedEvent>> {
        let sql = format!(
            "{SELECT_EVENT} WHERE stream_id = ? AND recorded_at <= ? ORDER BY stream_version"
        );
        let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(stream_id.to_owned())
            .bind(as_of.timestamp_micros())
            .fetch_all(&self.inner.pool)
            .await?;
        self.inner.decode_all(&rows).await
    }

    async fn stream_version(&self, stream_id: &str) -> Result<Option<u64>> {
        let version: Option<i64> =
            sqlx::query_scalar("SELECT MAX(stream_version) FROM events WHERE stream_id = ?")
                .bind(stream_id.to_owned())
                .fetch_one(&self.inner.pool)
                .await?;
        Ok(version.map(|v| v as u64))
    }

    async fn read_all(&self, after: Position, limit: usize) -> Result<Vec<RecordedEvent>> {
        let events = self.read_all_sealed(after, limit).await?;
        self.open(events).await
    }

    async fn read_all_sealed(&self, after: Position, limit: usize) -> Result<Vec<RecordedEvent>> {
        let sql = format!("{SELECT_EVENT} WHERE position > ? ORDER BY position LIMIT ?");
        let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(after as i64)
            .bind(limit as i64)
            .fetch_all(&self.inner.pool)
            .await?;
        rows.iter().map(|r| self.inner.decode_sealed(r)).collect()
    }

    async fn open(&self, events: Vec<RecordedEvent>) -> Result<Vec<RecordedEvent>> {
        self.inner.codec.open(events, &*self.inner).await
    }

    async fn erase_subject(&self, subject: &str) -> Result<()> {
        let inner = Arc::clone(&self.inner);
        let subject = subject.to_owned();
        detached("erase", async move { inner.erase(&subject).await }).await
    }

    async fn head_position(&self) -> Result<Position> {
        let head: i64 = sqlx::query_scalar("SELECT COALESCE(MAX(position), 0) FROM events")
            .fetch_one(&self.inner.pool)
            .await?;
        Ok(head as Position)
    }

    fn watch_head(&self) -> watch::Receiver<Position> {
        self.inner.head.subscribe()
    }
}

/// An append waiting for the writer, and where its outcome goes.
struct PendingAppend {
    writes: Vec<StreamWrite>,
    reply: oneshot::Sender<Result<Vec<AppendResult>>>,
}

/// What one append of a group wrote: its results, and the keys it sealed with.
struct Appended {
    results: Vec<AppendResult>,
    keys: HashMap<String, DataKey>,
}

impl Inner {
    /// Group commit: an append joins the queue; whoever holds the writer takes every append
    /// queued and commits them in one transaction (one `fsync` for all), each in a savepoint
    /// of its own so that one refused append (a version conflict) leaves the others. An
    /// append is answered only after the commit that holds it.
    async fn append(&self, writes: Vec<StreamWrite>) -> Result<Vec<AppendResult>> {
        let (reply, mut outcome) = oneshot::channel();
        self.queue
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(PendingAppend { writes, reply });
        let mut conn = self.writer.lock().await;
        // The writer before us may have committed ours with its own.
        if let Ok(done) = outcome.try_recv() {
            return done;
        }
        let group = std::mem::take(&mut *self.queue.lock().unwrap_or_else(|e| e.into_inner()));
        self.commit_group(&mut conn, group).await;
        drop(conn);
        outcome
            .await
            .unwrap_or_else(|_| Err(EventStoreError::Backend(sqlx::Error::WorkerCrashed)))
    }

    /// Commits `group` in one transaction and answers each of its appends. Should the
    /// transaction itself fail (the disk, another process holding the file), nothing of it
    /// is stored and each append is tried again alone, to get an answer of its own.
    async fn commit_group(&self, conn: &mut SqliteConnection, group: Vec<PendingAppend>) {
        let writes: Vec<&[StreamWrite]> = group.iter().map(|p| p.writes.as_slice()).collect();
        let outcomes = match self.run_group(conn, &writes).await {
            Ok(outcomes) => outcomes,
            Err(error) if group.len() == 1 => vec![Err(error)],
            Err(_) => {
                let mut alone = Vec::with_capacity(group.len());
                for writes in writes {
                    alone.push(match self.run_group(conn, &[writes]).await {
                        Ok(mut outcome) => outcome.pop().unwrap_or_else(|| {
                            Err(EventStoreError::InvalidWrite("no outcome".into()))
                        }),
                        Err(error) => Err(error),
                    });
                }
                alone
            }
        };
        let mut head = None;
        for (pending, outcome) in group.into_iter().zip(outcomes) {
            let answer = outcome.map(|appended| {
                for (subject, key) in &appended.keys {
                    self.codec.key_cache().remember(subject, key);
                }
                for r in appended.results.iter().filter(|r| !r.already_stored) {
                    head = head.max(Some(r.last_position));
                }
                appended.results
            });
            let _ = pending.reply.send(answer);
        }
        if let Some(head) = head {
            self.head.send_if_modified(|h| {
                let advance = head > *h;
                if advance {
                    *h = head;
                }
                advance
            });
        }
    }

    /// The appends of a group in one transaction, each in a savepoint: each one's outcome,
    /// once committed; an error when the transaction as a whole failed.
    async fn run_group(
        &self,
        conn: &mut SqliteConnection,
        group: &[&[StreamWrite]],
    ) -> Result<Vec<Result<Appended>>> {
        let mut tx = conn.begin_with("BEGIN IMMEDIATE").await?;
        // Never earlier than the last stored event, even if the clock steps back, so that
        // "as of" a time always selects a prefix of a stream.
        let last: Option<i64> =
            sqlx::query_scalar("SELECT recorded_at FROM events ORDER BY position DESC LIMIT 1")
                .fetch_optional(&mut *tx)
                .await?;
        let recorded_at = Utc::now().timestamp_micros().max(last.unwrap_or(i64::MIN));
        let mut outcomes = Vec::with_capacity(group.len());
        for writes in group {
            sqlx::query("SAVEPOINT append").execute(&mut *tx).await?;
            let outcome = self.append_one(&mut tx, writes, recorded_at).await;
            if outcome.is_err() {
                // Nothing of a refused append stays (not even a key it created).
                sqlx::query("ROLLBACK TO append").execute(&mut *tx).await?;
            }
            sqlx::query("RELEASE append").execute(&mut *tx).await?;
            outcomes.push(outcome);
        }
        tx.commit().await?;
        self.commits
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        crate::metrics::COMMITS.inc(&[]);
        Ok(outcomes)
    }

    /// One append's writes, inside the group's transaction.
    async fn append_one(
        &self,
        tx: &mut SqliteConnection,
        writes: &[StreamWrite],
        recorded_at: i64,
    ) -> Result<Appended> {
        // What the results report: the very value stored, so it equals what reads return.
        let recorded_time = micros_to_time(recorded_at)?;
        let keys = write_keys(&mut *tx, self.codec.write_subjects(writes), recorded_at).await?;
        let mut results = Vec::with_capacity(writes.len());
        for (index, write) in writes.iter().enumerate() {
            if let Some(stored) = already_stored(&mut *tx, write).await? {
                results.push(stored);
                continue;
            }
            let current: Option<i64> =
                sqlx::query_scalar("SELECT MAX(stream_version) FROM events WHERE stream_id = ?")
                    .bind(write.stream_id.clone())
                    .fetch_one(&mut *tx)
                    .await?;
            let current = current.map(|v| v as u64);
            let ok = match write.expected {
                ExpectedVersion::Any => true,
                ExpectedVersion::NoStream => current.is_none(),
                ExpectedVersion::Exact(v) => current == Some(v),
            };
            if !ok {
                return Err(EventStoreError::WrongExpectedVersion {
                    write: index,
                    stream_id: write.stream_id.clone(),
                    expected: write.expected,
                    actual: current,
                });
            }
            let mut version = current.unwrap_or(0);
            let mut last_position = 0;
            for event in &write.events {
                version += 1;
                let inserted: std::result::Result<i64, sqlx::Error> = sqlx::query_scalar(
                    "INSERT INTO events (event_id, stream_id, stream_version, event_type, \
                     schema_version, payload, metadata, recorded_at) \
                     VALUES (?, ?, ?, ?, ?, ?, ?, ?) RETURNING position",
                )
                .bind(event.event_id.to_string())
                .bind(write.stream_id.clone())
                .bind(version as i64)
                .bind(event.event_type.clone())
                .bind(i64::from(event.schema_version))
                .bind(self.codec.encode_payload(&write.stream_id, event, &keys)?)
                .bind(self.codec.encode_metadata(&event.metadata)?)
                .bind(recorded_at)
                .fetch_one(&mut *tx)
                .await;
                last_position = match inserted {
                    Ok(p) => p as Position,
                    Err(sqlx::Error::Database(e)) if e.is_unique_violation() => {
                        return Err(EventStoreError::EventIdReused {
                            event_id: event.event_id,
                        });
                    }
                    Err(e) => return Err(e.into()),
                };
            }
            results.push(AppendResult {
                stream_id: write.stream_id.clone(),
                stream_version: version,
                last_position,
                already_stored: false,
                recorded_at: recorded_time,
            });
        }
        Ok(Appended { results, keys })
    }

    async fn decode_all(&self, rows: &[SqliteRow]) -> Result<Vec<RecordedEvent>> {
        let events = rows
            .iter()
            .map(|r| self.decode_sealed(r))
            .collect::<Result<Vec<_>>>()?;
        self.codec.open(events, self).await
    }

    /// A stored row as an event, its payload still sealed and at its stored version.
    fn decode_sealed(&self, row: &SqliteRow) -> Result<RecordedEvent> {
        let event_id: String = row.try_get("event_id")?;
        let payload: String = row.try_get("payload")?;
        let metadata: String = row.try_get("metadata")?;
        Ok(self.codec.stored_event(StoredRow {
            event_id: Uuid::parse_str(&event_id)
                .map_err(|e| EventStoreError::Codec(format!("event id {event_id}: {e}")))?,
            event_type: row.try_get("event_type")?,
            schema_version: row.try_get::<i64, _>("schema_version")? as u32,
            stream_id: row.try_get("stream_id")?,
            stream_version: row.try_get::<i64, _>("stream_version")? as u64,
            position: row.try_get::<i64, _>("position")? as Position,
            recorded_at: micros_to_time(row.try_get("recorded_at")?)?,
            payload: &payload,
            metadata: &metadata,
        }))
    }

    /// Deletes the subject's key (leaving a row that says it was erased), in a write
    /// transaction like an append's, so no append can seal with it afterwards; then overwrites
    /// the freed bytes (`secure_delete`) and checkpoints the write-ahead log, so the key is
    /// not left in the file or the log.
    async fn erase(&self, subject: &str) -> Result<()> {
        let mut conn = self.writer.lock().await;
        let mut tx = conn.begin_with("BEGIN IMMEDIATE").await?;
        let now = Utc::now().timestamp_micros();
        sqlx::query(
            "INSERT INTO data_keys (subject, key, created_at, erased_at) VALUES (?, NULL, ?, ?) \
             ON CONFLICT (subject) DO UPDATE SET key = NULL, \
             erased_at = COALESCE(data_keys.erased_at, excluded.erased_at)",
        )
        .bind(subject.to_owned())
        .bind(now)
        .bind(now)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        self.codec.key_cache().erased(subject);
        drop(conn);
        checkpoint_soon(&self.pool);
        Ok(())
    }
}

#[async_trait]
impl KeyTable for Inner {
    async fn read_keys(&self, subjects: &[String]) -> Result<HashMap<String, StoredKey>> {
        let mut keys = HashMap::with_capacity(subjects.len());
        for subject in subjects {
            let row: Option<StoredKey> =
                sqlx::query_scalar("SELECT key FROM data_keys WHERE subject = ?")
                    .bind(subject.clone())
                    .fetch_optional(&self.pool)
                    .await?;
            if let Some(key) = row {
                keys.insert(subject.clone(), key);
            }
        }
        Ok(keys)
    }
}

/// The keys of `subjects`, inside an append's transaction: read, or created for a subject that
/// has none. A subject that was erased is refused: nothing more is stored of them.
async fn write_keys(
    conn: &mut SqliteConnection,
    subjects: std::collections::BTreeSet<String>,
    now: i64,
) -> Result<HashMap<String, DataKey>> {
    let mut keys = HashMap::with_capacity(subjects.len());
    for subject in subjects {
        let row: Option<StoredKey> =
            sqlx::query_scalar("SELECT key FROM data_keys WHERE subject = ?")
                .bind(subject.clone())
                .fetch_optional(&mut *conn)
                .await?;
        let bytes = match row {
            Some(Some(bytes)) => bytes,
            Some(None) => return Err(EventStoreError::SubjectErased { subject }),
            None => {
                let bytes = DataKey::generate()?.to_vec();
                sqlx::query("INSERT INTO data_keys (subject, key, created_at) VALUES (?, ?, ?)")
                    .bind(subject.clone())
                    .bind(bytes.clone())
                    .bind(now)
                    .execute(&mut *conn)
                    .await?;
                bytes
            }
        };
        keys.insert(subject, DataKey::from_bytes(&bytes)?);
    }
    Ok(keys)
}

/// Soon copies the write-ahead log into the database file and empties it, so that data just
/// deleted (an erasure's) lingers neither in the log nor in the file's older pages. Runs in
/// the background on a connection of its own that waits at most 100 ms for readers holding
/// older snapshots (a checkpoint holds writers back meanwhile), and tries again until one
/// completes: every half second for a minute, then every 10 seconds for an hour. The store
/// also checkpoints when it is closed.
pub fn checkpoint_soon(pool: &SqlitePool) {
    let options = (*pool.connect_options())
        .clone()
        .busy_timeout(Duration::from_millis(100));
    tokio::spawn(async move {
        let pauses = std::iter::repeat_n(Duration::from_millis(500), 120)
            .chain(std::iter::repeat_n(Duration::from_secs(10), 360));
        for pause in pauses {
            let done: std::result::Result<(i64, i64, i64), sqlx::Error> = async {
                let mut conn = SqliteConnection::connect_with(&options).await?;
                let result = sqlx::query_as("PRAGMA wal_checkpoint(TRUNCATE)")
                    .fetch_one(&mut conn)
                    .await;
                let _ = conn.close().await;
                result
            }
            .await;
            match done {
                // (busy, log frames, checkpointed frames): 0 = every frame is in the file.
                Ok((0, _, _)) => return,
                Ok(_) => {}
                Err(error) => tracing::debug!(%error, "checkpoint after an erasure deferred"),
            }
            tokio::time::sleep(pause).await;
        }
        tracing::warn!(
            "for an hour, readers kept the log from being checkpointed after an erasure; the next checkpoint will"
        );
    });
}

/// When the write's events are all stored already (a retry), what the first attempt did.
async fn already_stored(
    conn: &mut SqliteConnection,
    write: &StreamWrite,
) -> Result<Option<AppendResult>> {
    let Some(first) = write.events.first() else {
        // An empty write stores nothing; report the stream as it is.
        return Ok(None);
    };
    let found = stored_place(conn, first.event_id).await?;
    let Some(StoredPlace {
        stream_id,
        version: first_version,
        ..
    }) = found
    else {
        return Ok(None);
    };
    let mut last = None;
    for (i, event) in write.events.iter().enumerate() {
        match stored_place(conn, event.event_id).await? {
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
    // The loop ran at least once (there is a first event) and returned unless every event
    // matched, so `last` is the write's last event.
    let Some(last) = last.filter(|_| stream_id == write.stream_id) else {
        return Err(EventStoreError::EventIdReused {
            event_id: first.event_id,
        });
    };
    Ok(Some(AppendResult {
        stream_id,
        stream_version: last.version,
        last_position: last.position,
        already_stored: true,
        recorded_at: last.recorded_at,
    }))
}

/// Where an event is stored, and when.
struct StoredPlace {
    stream_id: String,
    version: u64,
    position: Position,
    recorded_at: DateTime<Utc>,
}

async fn stored_place(conn: &mut SqliteConnection, event_id: Uuid) -> Result<Option<StoredPlace>> {
    let row = sqlx::query(
        "SELECT stream_id, stream_version, position, recorded_at FROM events WHERE event_id = ?",
    )
    .bind(event_id.to_string())
    .fetch_optional(conn)
    .await?;
    row.map(|r| {
        Ok(StoredPlace {
            stream_id: r.try_get(0)?,
            version: r.try_get::<i64, _>(1)? as u64,
            position: r.try_get::<i64, _>(2)? as Position,
            recorded_at: micros_to_time(r.try_get(3)?)?,
        })
    })
    .transpose()
}

fn micros_to_time(micros: i64) -> Result<DateTime<Utc>> {
    Utc.timestamp_micros(micros)
        .single()
        .ok_or_else(|| EventStoreError::Codec(format!("recorded_at {micros} out of range")))
}

/// Projection checkpoints in the embedded database file.
#[derive(Clone)]
pub struct SqliteCheckpoints {
    pool: SqlitePool,
}

impl SqliteCheckpoints {
    /// Checkpoints kept beside the events of `store`.
    pub fn new(store: &SqliteEventStore) -> Self {
        Self {
            pool: store.pool().clone(),
        }
    }
}

#[async_trait]
impl CheckpointStore for SqliteCheckpoints {
    async fn load(&self, name: &str) -> Result<Position> {
        let position: Option<i64> =
            sqlx::query_scalar("SELECT position FROM checkpoints WHERE name = ?")
                .bind(name.to_owned())
                .fetch_optional(&self.pool)
                .await?;
        Ok(position.unwrap_or(0) as Position)
    }

    async fn save(&self, name: &str, position: Position) -> Result<()> {
        sqlx::query(
            "INSERT INTO checkpoints (name, position, updated_at) VALUES (?, ?, ?) \
             ON CONFLICT (name) DO UPDATE SET position = excluded.position, \
             updated_at = excluded.updated_at",
        )
        .bind(name.to_owned())
        .bind(position as i64)
        .bind(Utc::now().timestamp_micros())
        .execute(&self.pool)
        .await?;
        Ok(())
    }
}

impl SqliteCheckpoints {
    /// Runs `statement` (an `UPDATE` or `DELETE` of `dead_letters`) on the letters `filter`
    /// names; returns how many.
    async fn update_letters(&self, statement: &str, filter: &LetterFilter) -> Result<u64> {
        let sql = format!("{statement} WHERE {LETTER_FILTER}");
        Ok(sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(filter.projection.clone())
            .bind(filter.event_id.map(|id| id.to_string()))
            .execute(&self.pool)
            .await?
            .rows_affected())
    }
}

/// `WHERE` of a [`LetterFilter`]: `?` for the projection and the event id, each `NULL` for any.
const LETTER_FILTER: &str = "(?1 IS NULL OR projection = ?1) AND (?2 IS NULL OR event_id = ?2)";

#[async_trait]
impl DeadLetters for SqliteCheckpoints {
    async fn park(&self, projection: &str, event: &RecordedEvent, error: &str) -> Result<()> {
        sqlx::query(
            "INSERT INTO dead_letters (projection, event_id, position, stream_id, stream_version, \
             event_type, error, parked_at, attempts, retry_requested) \
             VALUES (?, ?, ?, ?, ?, ?, ?, ?, 1, 0) ON CONFLICT (projection, event_id) DO UPDATE \
             SET error = excluded.error, attempts = dead_letters.attempts + 1, retry_requested = 0",
        )
        .bind(projection.to_owned())
        .bind(event.event_id.to_string())
        .bind(event.position as i64)
        .bind(event.stream_id.clone())
        .bind(event.stream_version as i64)
        .bind(event.event_type.clone())
        .bind(error.to_owned())
        .bind(Utc::now().timestamp_micros())
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    async fn dead_letters(&self, filter: &LetterFilter) -> Result<Vec<DeadLetter>> {
        let sql = format!(
            "SELECT projection, event_id, position, stream_id, stream_version, event_type, error, \
             parked_at, attempts, retry_requested FROM dead_letters WHERE {LETTER_FILTER} \
             ORDER BY position, projection"
        );
        let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(filter.projection.clone())
            .bind(filter.event_id.map(|id| id.to_string()))
            .fetch_all(&self.pool)
            .await?;
        rows.iter()
            .map(|r| {
                let event_id: String = r.try_get(1)?;
                Ok(DeadLetter {
                    projection: r.try_get(0)?,
                    event_id: Uuid::parse_str(&event_id)
                        .map_err(|e| EventStoreError::Codec(format!("event id {event_id}: {e}")))?,
                    position: r.try_get::<i64, _>(2)? as Position,
                    stream_id: r.try_get(3)?,
                    stream_version: r.try_get::<i64, _>(4)? as u64,
                    event_type: r.try_get(5)?,
                    error: r.try_get(6)?,
                    parked_at: micros_to_time(r.try_get(7)?)?,
                    attempts: r.try_get::<i64, _>(8)? as u32,
                    retry_requested: r.try_get(9)?,
                })
            })
            .collect()
    }

    async fn request_retry(&self, filter: &LetterFilter) -> Result<u64> {
        self.update_letters("UPDATE dead_letters SET retry_requested = 1", filter)
            .await
    }

    async fn drop_letters(&self, filter: &LetterFilter) -> Result<u64> {
        self.update_letters("DELETE FROM dead_letters", filter)
            .await
    }

    async fn resolve(&self, projection: &str, event_id: Uuid) -> Result<()> {
        sqlx::query("DELETE FROM dead_letters WHERE projection = ? AND event_id = ?")
            .bind(projection.to_owned())
            .bind(event_id.to_string())
            .execute(&self.pool)
            .await?;
        Ok(())
    }
}
