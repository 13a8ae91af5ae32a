//! The server backend: PostgreSQL, shared by any number of service processes.
//!
//! [`PostgresEventStore`] meets the same [`EventStore`] contract as the embedded
//! [`SqliteEventStore`](crate::sqlite::SqliteEventStore) (the contract suite runs against both),
//! and [`PostgresCheckpoints`] keeps projection checkpoints beside the events.
//!
//! ```no_run
//! # async fn demo() -> event_sourcing::Result<()> {
//! use event_sourcing::EventCodec;
//! use event_sourcing::postgres::{PostgresEventStore, PostgresOptions};
//!
//! // Defaults: the connection's current schema (normally `public`), 10 connections.
//! let store = PostgresEventStore::connect(
//!     "postgres://metachat:metachat@127.0.0.1:55432/metachat",
//!     EventCodec::default(),
//!     Some("events"), // the schema, created if missing
//! )
//! .await?;
//!
//! // Everything configurable:
//! let options = PostgresOptions {
//!     schema: Some("events".into()),
//!     max_connections: 20,
//!     ..PostgresOptions::default()
//! };
//! let connect = "postgres://metachat:metachat@127.0.0.1:55432/metachat".parse()?;
//! let store = PostgresEventStore::connect_with(connect, EventCodec::default(), options).await?;
//! # Ok(()) }
//! ```
//!
//! # Global order without skips
//!
//! Positions come from a sequence, and PostgreSQL sequences are not transactional: writer A can
//! take position 10, writer B position 11, and B can commit first. A reader that saw 11 and
//! resumed "after 11" would never see 10. The store rules this out by **serialising appends**:
//! the first statement of every append transaction is
//! `SELECT pg_advisory_xact_lock(<append key of this schema>)`, and positions are only drawn
//! after it. Why that is enough:
//!
//! 1. While A holds the lock, no other append draws a position, so the positions of one
//!    transaction are all above those of every transaction that held the lock before it
//!    (the sequence has `CACHE 1`, so no session hands out pre-allocated lower values).
//! 2. A transaction-scoped advisory lock is released at commit *after* the commit has become
//!    visible: PostgreSQL marks the transaction committed in the proc array, then releases its
//!    locks. So when B gets the lock, A is already visible to every new snapshot.
//! 3. Take any snapshot S (one `read_all` statement). If S sees B, B committed before S, so A
//!    (which was visible before B even got the lock) committed before S too: S sees A. Hence
//!    every snapshot sees a prefix of the position order (minus positions of rolled-back
//!    appends, which no one will ever see). `read_all` therefore never returns P while a lower
//!    position can still commit, and "resume after the last position" never skips.
//!
//! The lock is taken in its own statement: a READ COMMITTED statement takes its snapshot when
//! it starts, so the checks that follow (current versions, stored ids) must be later statements
//! to see the previous holder's commit. `recorded_at` is the database clock when the insert
//! statement starts (`statement_timestamp()`), but never earlier than the last stored event's,
//! so it never decreases along the positions even if the clock steps back, and "as of" a time
//! always selects a prefix of a stream. The cost is
//! that appends do not run in parallel, exactly like SQLite's single writer: each holds the lock
//! for three round trips (lookup, insert with notify, commit). Reads never take it.
//! `append_throughput_against_sqlite` in `tests/postgres_contract.rs` measures the result.
//!
//! Waiting for the lock is bounded by [`PostgresOptions::lock_timeout`] (the append then fails
//! with an error for which [`EventStoreError::is_unavailable`] is true), and a writer that
//! stalls while holding it is cut off by the server after
//! [`PostgresOptions::idle_in_transaction_timeout`], so one frozen process cannot block all
//! others for long.
//!
//! Anything that writes `events` without this protocol (manual SQL, another program) breaks
//! the guarantee. As a second line of defence, a unique violation caused by such a writer
//! (same stream version or event id committed first) makes the append retry its checks, so it
//! surfaces as [`EventStoreError::WrongExpectedVersion`], [`EventStoreError::EventIdReused`] or a
//! clean `already_stored` result, never as a raw backend error.
//!
//! # Wake-ups across processes
//!
//! Every stream write of an append calls `pg_notify(<channel>, <its last position>)` inside the
//! append's transaction (in its insert statement); PostgreSQL delivers it at commit, and not at
//! all on rollback. Each store runs one background task with a dedicated `LISTEN` connection
//! that advances [`EventStore::watch_head`] on every notification, so subscribers in *every*
//! process are woken at once, not after their fallback poll. The
//! channel ([`PostgresEventStore::notification_channel`]) is derived from the schema, so stores
//! in different schemas do not wake each other. When the listening connection is lost, the task
//! reconnects with a growing pause and re-reads the head after each (re)subscription, so an
//! append committed while it was away still wakes subscribers. The task ends when the store is
//! closed or its last clone is dropped.
//!
//! # Schema and migrations
//!
//! All tables live in one schema ([`PostgresOptions::schema`]); several stores (tenants, test
//! cases) can share a database in different schemas. [`PostgresEventStore::connect_with`]
//! applies the migrations in `migrations/postgres/` that the schema's `schema_migrations` table
//! does not list yet, all in one transaction under a per-schema advisory lock, so several
//! processes starting at once are safe: one migrates, the others wait and find nothing to do.
//! A process that finds every migration applied takes no lock at all.
//!
//! Payloads and metadata are stored as `TEXT`, exactly as [`EventCodec`] produced them: `JSONB`
//! would rewrite the codec's output, reject `\u0000`, and rule out a codec that encrypts payloads
//! into something that is not JSON. Nothing queries inside payloads in SQL.

use std::collections::{HashMap, HashSet};
use std::str::FromStr;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use sqlx::postgres::{PgConnectOptions, PgListener, PgPool, PgPoolOptions, PgRow};
use sqlx::{AssertSqlSafe, Row};
use tokio::sync::watch;
use tokio::task::JoinHandle;
use uuid::Uuid;

use crate::codec::EventCodec;
use crate::error::{EventStoreError, Result};
use crate::event::{AppendResult, ExpectedVersion, Position, RecordedEvent, StreamWrite};
use crate::projection::CheckpointStore;
use crate::store::{EventStore, validate_writes};

struct Migration {
    version: i64,
    description: &'static str,
    sql: &'static str,
}

/// Applied in order; a released migration is never edited, only followed by a new one.
const MIGRATIONS: &[Migration] = &[
    Migration {
        version: 1,
        description: "events",
        sql: include_str!("../migrations/postgres/0001_events.sql"),
    },
    Migration {
        version: 2,
        description: "checkpoints",
        sql: include_str!("../migrations/postgres/0002_checkpoints.sql"),
    },
];

/// `application_name` of the listening connection, to find it in `pg_stat_activity`.
pub const LISTENER_APPLICATION_NAME: &str = "metachat-event-listener";

/// How often an append retries after a unique violation caused by a writer that bypassed the
/// append lock (see the module docs). With only this store writing, it never retries.
const RACE_ATTEMPTS: u32 = 3;

/// Reconnection pauses of the listening task.
const LISTEN_RETRY_MIN: Duration = Duration::from_millis(100);
const LISTEN_RETRY_MAX: Duration = Duration::from_secs(5);

const EVENT_COLUMNS: &str = "position, event_id, stream_id, stream_version, event_type, \
     schema_version, payload, metadata, recorded_at";

/// Options of a PostgreSQL store.
#[derive(Debug, Clone)]
pub struct PostgresOptions {
    /// The schema holding the store's tables; created if missing. `None` uses the connection's
    /// current schema (the first existing schema of its `search_path`, normally `public`), which
    /// must exist.
    pub schema: Option<String>,
    /// Most connections in the pool (readers and writers share it). The listening connection
    /// comes on top.
    pub max_connections: u32,
    /// Connections kept open even when idle.
    pub min_connections: u32,
    /// How long an operation waits for a connection from the pool (including opening one).
    pub acquire_timeout: Duration,
    /// Bound on the whole of `connect_with`: first connection, migrations, head, `LISTEN`.
    pub connect_timeout: Duration,
    /// How long an append waits for the append lock before failing as unavailable.
    pub lock_timeout: Duration,
    /// An append transaction idle for this long (a frozen or cut-off process holding the append
    /// lock) is ended by the server, releasing the lock.
    pub idle_in_transaction_timeout: Duration,
}

impl Default for PostgresOptions {
    fn default() -> Self {
        Self {
            schema: None,
            max_connections: 10,
            min_connections: 0,
            acquire_timeout: Duration::from_secs(5),
            connect_timeout: Duration::from_secs(10),
            lock_timeout: Duration::from_secs(10),
            idle_in_transaction_timeout: Duration::from_secs(10),
        }
    }
}

impl PostgresOptions {
    /// Default options with the tables in `schema`.
    pub fn in_schema(schema: impl Into<String>) -> Self {
        Self {
            schema: Some(schema.into()),
            ..Self::default()
        }
    }
}

/// The PostgreSQL event store. Cheap to clone: clones share the pool, the head and the
/// listening task, which stops when the last clone is dropped or [`close`](Self::close)d.
#[derive(Clone)]
pub struct PostgresEventStore {
    inner: Arc<Inner>,
}

struct Inner {
    pool: PgPool,
    listener_pool: PgPool,
    codec: EventCodec,
    schema: String,
    channel: String,
    sql: Sql,
    head: Arc<watch::Sender<Position>>,
    listener: Mutex<Option<JoinHandle<()>>>,
    #[cfg(feature = "contract-tests")]
    commit_hold: Mutex<Option<HeldCommit>>,
}

impl Drop for Inner {
    fn drop(&mut self) {
        let task = self
            .listener
            .get_mut()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        if let Some(task) = task {
            task.abort();
        }
    }
}

/// Every statement, with the schema's quoted name filled in once.
struct Sql {
    append_lock: Arc<str>,
    lookup: Arc<str>,
    insert: Arc<str>,
    read_stream: Arc<str>,
    read_stream_as_of: Arc<str>,
    stream_version: Arc<str>,
    stored_ids: Arc<str>,
    read_all: Arc<str>,
    head: Arc<str>,
    checkpoint_load: Arc<str>,
    checkpoint_save: Arc<str>,
}

impl Sql {
    fn new(schema: &str, options: &PostgresOptions) -> Self {
        let events = format!("{}.events", quote_ident(schema));
        let checkpoints = format!("{}.checkpoints", quote_ident(schema));
        let select = format!("SELECT {EVENT_COLUMNS} FROM {events}");
        let s = |sql: String| Arc::<str>::from(sql);
        Self {
            // One round trip; see the module docs for why the lock makes the order safe.
            append_lock: s(format!(
                "SET LOCAL lock_timeout = {}; \
                 SET LOCAL idle_in_transaction_session_timeout = {}; \
                 SELECT pg_advisory_xact_lock({})",
                options.lock_timeout.as_millis().max(1),
                options.idle_in_transaction_timeout.as_millis().max(1),
                lock_key("append", schema),
            )),
            // Where the write's event ids are stored already, and each stream's version; rows
            // of the second kind have no event id.
            lookup: s(format!(
                "SELECT event_id, stream_id, stream_version, position FROM {events} \
                 WHERE event_id = ANY($1) \
                 UNION ALL \
                 SELECT NULL, s.stream_id, \
                   (SELECT MAX(stream_version) FROM {events} WHERE stream_id = s.stream_id), NULL \
                 FROM UNNEST($2::text[]) AS s(stream_id)"
            )),
            // One statement per stream write, returning its last position. ORDER BY makes
            // positions follow the event order. The notification ($8 is the channel) rides in
            // the same round trip; PostgreSQL delivers it only if the transaction commits.
            insert: s(format!(
                "WITH inserted AS ( \
                   INSERT INTO {events} (event_id, stream_id, stream_version, event_type, \
                     schema_version, payload, metadata, recorded_at) \
                   SELECT e.event_id, $2, $3 + e.ord, e.event_type, e.schema_version, \
                     e.payload, e.metadata, GREATEST(statement_timestamp(), \
                       (SELECT recorded_at FROM {events} ORDER BY position DESC LIMIT 1)) \
                   FROM UNNEST($1::uuid[], $4::text[], $5::int4[], $6::text[], $7::text[]) \
                     WITH ORDINALITY \
                     AS e(event_id, event_type, schema_version, payload, metadata, ord) \
                   ORDER BY e.ord \
                   RETURNING position), \
                 last AS (SELECT MAX(position) AS position FROM inserted) \
                 SELECT last.position, pg_notify($8, last.position::text) FROM last"
            )),
            read_stream: s(format!(
                "{select} WHERE stream_id = $1 AND stream_version >= $2 \
                 ORDER BY stream_version LIMIT $3"
            )),
            read_stream_as_of: s(format!(
                "{select} WHERE stream_id = $1 AND recorded_at <= $2 ORDER BY stream_version"
            )),
            stream_version: s(format!(
                "SELECT MAX(stream_version) FROM {events} WHERE stream_id = $1"
            )),
            stored_ids: s(format!(
                "SELECT event_id FROM {events} WHERE event_id = ANY($1)"
            )),
            read_all: s(format!(
                "{select} WHERE position > $1 ORDER BY position LIMIT $2"
            )),
            head: s(format!("SELECT COALESCE(MAX(position), 0) FROM {events}")),
            checkpoint_load: s(format!(
                "SELECT position FROM {checkpoints} WHERE name = $1"
            )),
            checkpoint_save: s(format!(
                "INSERT INTO {checkpoints} (name, position, updated_at) VALUES ($1, $2, now()) \
                 ON CONFLICT (name) DO UPDATE SET position = EXCLUDED.position, \
                 updated_at = EXCLUDED.updated_at"
            )),
        }
    }
}

impl PostgresEventStore {
    /// Connects to the database at `url` with default [`PostgresOptions`], keeping the tables in
    /// `schema` (created if missing) or, for `None`, in the connection's current schema.
    pub async fn connect(url: &str, codec: EventCodec, schema: Option<&str>) -> Result<Self> {
        let connect = PgConnectOptions::from_str(url)?;
        let options = PostgresOptions {
            schema: schema.map(str::to_owned),
            ..PostgresOptions::default()
        };
        Self::connect_with(connect, codec, options).await
    }

    /// Connects, migrates the schema, and starts listening for other processes' appends.
    pub async fn connect_with(
        connect: PgConnectOptions,
        codec: EventCodec,
        options: PostgresOptions,
    ) -> Result<Self> {
        let limit = options.connect_timeout;
        match tokio::time::timeout(limit, Self::open(connect, codec, options)).await {
            Ok(opened) => opened,
            Err(_) => Err(EventStoreError::Backend(sqlx::Error::Io(
                std::io::Error::new(
                    std::io::ErrorKind::TimedOut,
                    format!("connecting to PostgreSQL took longer than {limit:?}"),
                ),
            ))),
        }
    }

    async fn open(
        connect: PgConnectOptions,
        codec: EventCodec,
        options: PostgresOptions,
    ) -> Result<Self> {
        let pool = PgPoolOptions::new()
            .max_connections(options.max_connections.max(1))
            .min_connections(options.min_connections)
            .acquire_timeout(options.acquire_timeout)
            .connect_with(connect.clone())
            .await?;
        let schema = match &options.schema {
            Some(schema) => {
                check_schema_name(schema)?;
                schema.clone()
            }
            None => sqlx::query_scalar::<_, Option<String>>("SELECT current_schema()")
                .fetch_one(&pool)
                .await?
                .ok_or_else(|| {
                    configuration(
                        "the connection's search_path names no existing schema; \
                         create it or pass PostgresOptions::schema",
                    )
                })?,
        };
        migrate(&pool, &schema, options.schema.is_some()).await?;
        let sql = Sql::new(&schema, &options);
        let head: i64 = sqlx::query_scalar(AssertSqlSafe(Arc::clone(&sql.head)))
            .fetch_one(&pool)
            .await?;
        let head = Arc::new(watch::channel(head as Position).0);
        let channel = notification_channel(&schema);

        // The listening connection has a pool of its own so that it never takes a connection
        // from readers and writers; it lives as long as the store.
        let listener_pool = PgPoolOptions::new()
            .max_connections(1)
            .min_connections(0)
            .acquire_timeout(options.connect_timeout)
            .idle_timeout(None)
            .max_lifetime(None)
            .connect_lazy_with(connect.application_name(LISTENER_APPLICATION_NAME));
        // Subscribe before returning, so that a subscriber created right after `connect` is
        // woken by every later append of any process.
        let listener = subscribe(&listener_pool, &channel).await?;
        let task = ListenTask {
            listener_pool: listener_pool.clone(),
            pool: pool.clone(),
            channel: channel.clone(),
            head_sql: Arc::clone(&sql.head),
            head: Arc::clone(&head),
        };
        let listener = tokio::spawn(task.run(listener));

        Ok(Self {
            inner: Arc::new(Inner {
                pool,
                listener_pool,
                codec,
                schema,
                channel,
                sql,
                head,
                listener: Mutex::new(Some(listener)),
                #[cfg(feature = "contract-tests")]
                commit_hold: Mutex::new(None),
            }),
        })
    }

    /// The pool, for components that keep their own tables beside the events.
    pub fn pool(&self) -> &PgPool {
        &self.inner.pool
    }

    /// The schema holding the store's tables.
    pub fn schema(&self) -> &str {
        &self.inner.schema
    }

    /// The `LISTEN`/`NOTIFY` channel on which appends to this schema are announced; the payload
    /// is the append's last position.
    pub fn notification_channel(&self) -> &str {
        &self.inner.channel
    }

    /// Stops the listening task and closes every connection; later calls fail.
    pub async fn close(&self) {
        let task = self
            .inner
            .listener
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        if let Some(task) = task {
            task.abort();
            let _ = task.await;
        }
        self.inner.listener_pool.close().await;
        self.inner.pool.close().await;
    }

    /// Test support: the next append to reach its commit stops just before `COMMIT`, holding
    /// the append lock with its positions drawn, until the returned hold is released (or
    /// dropped). Lets a test watch what others see while a transaction is in flight.
    #[cfg(feature = "contract-tests")]
    #[doc(hidden)]
    pub fn hold_next_commit(&self) -> CommitHold {
        let (reached_tx, reached) = tokio::sync::oneshot::channel();
        let (release, release_rx) = tokio::sync::oneshot::channel();
        *self
            .inner
            .commit_hold
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = Some(HeldCommit {
            reached: reached_tx,
            release: release_rx,
        });
        CommitHold {
            reached,
            release: Some(release),
        }
    }
}

#[cfg(feature = "contract-tests")]
struct HeldCommit {
    reached: tokio::sync::oneshot::Sender<Position>,
    release: tokio::sync::oneshot::Receiver<()>,
}

/// See [`PostgresEventStore::hold_next_commit`].
#[cfg(feature = "contract-tests")]
#[doc(hidden)]
pub struct CommitHold {
    reached: tokio::sync::oneshot::Receiver<Position>,
    release: Option<tokio::sync::oneshot::Sender<()>>,
}

#[cfg(feature = "contract-tests")]
impl CommitHold {
    /// Waits until the held append is about to commit; returns its last drawn position.
    pub async fn reached(&mut self) -> Position {
        (&mut self.reached)
            .await
            .expect("the held append ended before reaching its commit")
    }

    /// Lets the held append commit.
    pub fn release(mut self) {
        if let Some(release) = self.release.take() {
            let _ = release.send(());
        }
    }
}

#[async_trait]
impl EventStore for PostgresEventStore {
    async fn append_streams(&self, writes: Vec<StreamWrite>) -> Result<Vec<AppendResult>> {
        validate_writes(&writes)?;
        // The transaction runs in its own task so that a caller giving up (a cancelled request)
        // cannot abandon it half-way; it commits or rolls back on its own.
        let inner = Arc::clone(&self.inner);
        tokio::spawn(async move { inner.append(writes).await })
            .await
            .map_err(|e| EventStoreError::InvalidWrite(format!("append task failed: {e}")))?
    }

    async fn read_stream(
        &self,
        stream_id: &str,
        from_version: u64,
        limit: usize,
    ) -> Result<Vec<RecordedEvent>> {
        let rows = sqlx::query(AssertSqlSafe(Arc::clone(&self.inner.sql.read_stream)))
            .bind(stream_id)
            .bind(to_i64(from_version))
            .bind(to_i64(limit as u64))
            .fetch_all(&self.inner.pool)
            .await?;
        rows.iter().map(|r| self.inner.decode(r)).collect()
    }

    async fn read_stream_as_of(
        &self,
        stream_id: &str,
        as_of: DateTime<Utc>,
    ) -> Result<Vec<RecordedEvent>> {
        let rows = sqlx::query(AssertSqlSafe(Arc::clone(&self.inner.sql.read_stream_as_of)))
            .bind(stream_id)
            .bind(as_of)
            .fetch_all(&self.inner.pool)
            .await?;
        rows.iter().map(|r| self.inner.decode(r)).collect()
    }

    async fn stream_version(&self, stream_id: &str) -> Result<Option<u64>> {
        self.inner.stream_version(stream_id).await
    }

    async fn read_all(&self, after: Position, limit: usize) -> Result<Vec<RecordedEvent>> {
        // No extra filter is needed: appends commit in position order (module docs), so every
        // snapshot already holds a settled prefix.
        let rows = sqlx::query(AssertSqlSafe(Arc::clone(&self.inner.sql.read_all)))
            .bind(to_i64(after))
            .bind(to_i64(limit as u64))
            .fetch_all(&self.inner.pool)
            .await?;
        rows.iter().map(|r| self.inner.decode(r)).collect()
    }

    async fn head_position(&self) -> Result<Position> {
        let head: i64 = sqlx::query_scalar(AssertSqlSafe(Arc::clone(&self.inner.sql.head)))
            .fetch_one(&self.inner.pool)
            .await?;
        Ok(head as Position)
    }

    /// Changes after every append of this process and, through `LISTEN`/`NOTIFY`, of every
    /// other process using the same schema.
    fn watch_head(&self) -> watch::Receiver<Position> {
        self.inner.head.subscribe()
    }
}

/// One stream write's events as they go into the insert's arrays.
struct EncodedWrite {
    event_ids: Vec<Uuid>,
    event_types: Vec<String>,
    schema_versions: Vec<i32>,
    payloads: Vec<String>,
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

/// Where an event id is stored: stream, version, position.
type StoredPlace = (String, u64, Position);

impl Inner {
    async fn append(&self, writes: Vec<StreamWrite>) -> Result<Vec<AppendResult>> {
        let encoded = writes
            .iter()
            .map(|write| self.encode(write))
            .collect::<Result<Vec<_>>>()?;
        let mut attempt = 1;
        loop {
            match self.append_once(&writes, &encoded).await {
                Ok(results) => {
                    if let Some(last) = results.iter().map(|r| r.last_position).max() {
                        advance(&self.head, last);
                    }
                    return Ok(results);
                }
                Err(AttemptError::Failed(error)) => return Err(error),
                Err(AttemptError::Raced { write, on }) if attempt >= RACE_ATTEMPTS => {
                    return Err(self.race_error(&writes[write], on).await);
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

    fn encode(&self, write: &StreamWrite) -> Result<EncodedWrite> {
        let mut encoded = EncodedWrite {
            event_ids: Vec::with_capacity(write.events.len()),
            event_types: Vec::with_capacity(write.events.len()),
            schema_versions: Vec::with_capacity(write.events.len()),
            payloads: Vec::with_capacity(write.events.len()),
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
                .payloads
                .push(self.codec.encode_payload(&event.payload)?);
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
        let mut tx = self.pool.begin().await?;
        // First, alone in its statement: the append lock (module docs).
        sqlx::raw_sql(AssertSqlSafe(Arc::clone(&self.sql.append_lock)))
            .execute(&mut *tx)
            .await?;

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
        for row in &rows {
            let stream_id: String = row.try_get(1)?;
            let version: Option<i64> = row.try_get(2)?;
            match row.try_get::<Option<Uuid>, _>(0)? {
                Some(event_id) => {
                    let position: Option<i64> = row.try_get(3)?;
                    stored.insert(
                        event_id,
                        (
                            stream_id,
                            version.unwrap_or(0) as u64,
                            position.unwrap_or(0) as Position,
                        ),
                    );
                }
                None => {
                    if let Some(version) = version {
                        versions.insert(stream_id, version as u64);
                    }
                }
            }
        }

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
                });
                continue;
            }
            let inserted: std::result::Result<i64, sqlx::Error> =
                sqlx::query_scalar(AssertSqlSafe(Arc::clone(&self.sql.insert)))
                    .bind(&events.event_ids)
                    .bind(&write.stream_id)
                    .bind(to_i64(base))
                    .bind(&events.event_types)
                    .bind(&events.schema_versions)
                    .bind(&events.payloads)
                    .bind(&events.metadata)
                    .bind(&self.channel)
                    .fetch_one(&mut *tx)
                    .await;
            let last_position = match inserted {
                Ok(position) => position as Position,
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
            });
        }

        #[cfg(feature = "contract-tests")]
        self.wait_if_held(results.iter().map(|r| r.last_position).max().unwrap_or(0))
            .await;
        tx.commit().await?;
        Ok(results)
    }

    #[cfg(feature = "contract-tests")]
    async fn wait_if_held(&self, position: Position) {
        let held = self
            .commit_hold
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        if let Some(held) = held {
            let _ = held.reached.send(position);
            let _ = held.release.await;
        }
    }

    /// The typed error for a write that kept racing an outside writer.
    async fn race_error(&self, write: &StreamWrite, on: Constraint) -> EventStoreError {
        match on {
            Constraint::StreamVersion => EventStoreError::WrongExpectedVersion {
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

    async fn stream_version(&self, stream_id: &str) -> Result<Option<u64>> {
        let version: Option<i64> =
            sqlx::query_scalar(AssertSqlSafe(Arc::clone(&self.sql.stream_version)))
                .bind(stream_id)
                .fetch_one(&self.pool)
                .await?;
        Ok(version.map(|v| v as u64))
    }

    fn decode(&self, row: &PgRow) -> Result<RecordedEvent> {
        let event_type: String = row.try_get("event_type")?;
        let stored_version: i32 = row.try_get("schema_version")?;
        let payload: String = row.try_get("payload")?;
        let (payload, schema_version) =
            self.codec
                .decode_payload(&event_type, stored_version as u32, &payload)?;
        let metadata: String = row.try_get("metadata")?;
        Ok(RecordedEvent {
            event_id: row.try_get("event_id")?,
            event_type,
            schema_version,
            stream_id: row.try_get("stream_id")?,
            stream_version: row.try_get::<i64, _>("stream_version")? as u64,
            position: row.try_get::<i64, _>("position")? as Position,
            recorded_at: row.try_get("recorded_at")?,
            payload,
            metadata: self.codec.decode_metadata(&metadata)?,
        })
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
    let Some((_, first_version, _)) = stored.get(&first.event_id) else {
        return Ok(None);
    };
    let mut last = (*first_version, 0);
    for (i, event) in write.events.iter().enumerate() {
        match stored.get(&event.event_id) {
            Some((s, v, p)) if *s == write.stream_id && *v == first_version + i as u64 => {
                last = (*v, *p);
            }
            _ => {
                return Err(EventStoreError::EventIdReused {
                    event_id: event.event_id,
                });
            }
        }
    }
    Ok(Some(AppendResult {
        stream_id: write.stream_id.clone(),
        stream_version: last.0,
        last_position: last.1,
        already_stored: true,
    }))
}

/// The task that turns other processes' notifications into head changes.
struct ListenTask {
    listener_pool: PgPool,
    pool: PgPool,
    channel: String,
    head_sql: Arc<str>,
    head: Arc<watch::Sender<Position>>,
}

impl ListenTask {
    async fn run(self, first: PgListener) {
        let mut listener = Some(first);
        let mut pause = LISTEN_RETRY_MIN;
        loop {
            let mut current = match listener.take() {
                Some(listener) => listener,
                None => match subscribe(&self.listener_pool, &self.channel).await {
                    Ok(listener) => listener,
                    Err(sqlx::Error::PoolClosed) => return,
                    Err(error) => {
                        tracing::warn!(
                            channel = self.channel,
                            %error,
                            retry_in = ?pause,
                            "cannot listen for appends; retrying"
                        );
                        tokio::time::sleep(pause).await;
                        pause = (pause * 2).min(LISTEN_RETRY_MAX);
                        continue;
                    }
                },
            };
            // Subscribed: later commits are notified; earlier ones are in the head.
            self.refresh_head().await;
            pause = LISTEN_RETRY_MIN;
            loop {
                match current.try_recv().await {
                    Ok(Some(notification)) => match notification.payload().parse() {
                        Ok(position) => advance(&self.head, position),
                        Err(_) => self.refresh_head().await,
                    },
                    // The connection dropped and sqlx re-subscribed on a new one: notifications
                    // sent in between are lost, the head is not.
                    Ok(None) => self.refresh_head().await,
                    Err(sqlx::Error::PoolClosed) => return,
                    Err(error) => {
                        tracing::warn!(
                            channel = self.channel,
                            %error,
                            "lost the connection listening for appends; reconnecting"
                        );
                        break;
                    }
                }
            }
            drop(current);
            tokio::time::sleep(pause).await;
        }
    }

    async fn refresh_head(&self) {
        let head: std::result::Result<i64, _> =
            sqlx::query_scalar(AssertSqlSafe(Arc::clone(&self.head_sql)))
                .fetch_one(&self.pool)
                .await;
        match head {
            Ok(head) => advance(&self.head, head as Position),
            Err(error) => tracing::debug!(%error, "cannot re-read the head after subscribing"),
        }
    }
}

async fn subscribe(pool: &PgPool, channel: &str) -> std::result::Result<PgListener, sqlx::Error> {
    let mut listener = PgListener::connect_with(pool).await?;
    listener.listen(channel).await?;
    Ok(listener)
}

/// Moves the head forward, never back (a late notification can carry an older position).
fn advance(head: &watch::Sender<Position>, to: Position) {
    head.send_if_modified(|h| {
        let forward = to > *h;
        if forward {
            *h = to;
        }
        forward
    });
}

/// Applies the migrations the schema lacks (module docs).
async fn migrate(pool: &PgPool, schema: &str, create_schema: bool) -> Result<()> {
    let quoted = quote_ident(schema);
    let migrations_table = format!("{quoted}.schema_migrations");
    if missing_migrations(pool, &migrations_table)
        .await?
        .is_empty()
    {
        return Ok(());
    }

    let mut tx = pool.begin().await?;
    sqlx::query("SELECT pg_advisory_xact_lock($1)")
        .bind(lock_key("migrate", schema))
        .execute(&mut *tx)
        .await?;
    // Checked before creating: CREATE ... IF NOT EXISTS needs the CREATE privilege even when
    // there is nothing to create.
    let schema_exists: bool =
        sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM pg_namespace WHERE nspname = $1)")
            .bind(schema)
            .fetch_one(&mut *tx)
            .await?;
    if !schema_exists {
        if !create_schema {
            return Err(configuration(format!("schema {schema} does not exist")));
        }
        sqlx::raw_sql(AssertSqlSafe(format!("CREATE SCHEMA {quoted}")))
            .execute(&mut *tx)
            .await?;
    }
    sqlx::raw_sql(AssertSqlSafe(format!("SET LOCAL search_path TO {quoted}")))
        .execute(&mut *tx)
        .await?;
    let table_exists: bool = sqlx::query_scalar("SELECT to_regclass($1) IS NOT NULL")
        .bind(&migrations_table)
        .fetch_one(&mut *tx)
        .await?;
    if !table_exists {
        sqlx::raw_sql(
            "CREATE TABLE schema_migrations (
                version     BIGINT      PRIMARY KEY,
                description TEXT        NOT NULL,
                applied_at  TIMESTAMPTZ NOT NULL DEFAULT now()
            )",
        )
        .execute(&mut *tx)
        .await?;
    }
    // Read again under the lock: another process may have migrated while we waited.
    let applied: HashSet<i64> = sqlx::query_scalar("SELECT version FROM schema_migrations")
        .fetch_all(&mut *tx)
        .await?
        .into_iter()
        .collect();
    for migration in MIGRATIONS {
        if applied.contains(&migration.version) {
            continue;
        }
        tracing::info!(
            schema,
            version = migration.version,
            description = migration.description,
            "applying event store migration"
        );
        sqlx::raw_sql(AssertSqlSafe(migration.sql))
            .execute(&mut *tx)
            .await?;
        sqlx::query("INSERT INTO schema_migrations (version, description) VALUES ($1, $2)")
            .bind(migration.version)
            .bind(migration.description)
            .execute(&mut *tx)
            .await?;
    }
    tx.commit().await?;
    Ok(())
}

/// The migrations not yet applied (all of them when the schema or its table does not exist).
async fn missing_migrations(pool: &PgPool, migrations_table: &str) -> Result<Vec<i64>> {
    let exists: bool = sqlx::query_scalar("SELECT to_regclass($1) IS NOT NULL")
        .bind(migrations_table)
        .fetch_one(pool)
        .await?;
    let applied: HashSet<i64> = if exists {
        sqlx::query_scalar(AssertSqlSafe(format!(
            "SELECT version FROM {migrations_table}"
        )))
        .fetch_all(pool)
        .await?
        .into_iter()
        .collect()
    } else {
        HashSet::new()
    };
    let known: HashSet<i64> = MIGRATIONS.iter().map(|m| m.version).collect();
    if let Some(newer) = applied.iter().find(|v| !known.contains(v)) {
        tracing::warn!(
            version = newer,
            "the event store schema has a migration this build does not know (a newer build \
             migrated it); continuing"
        );
    }
    Ok(MIGRATIONS
        .iter()
        .map(|m| m.version)
        .filter(|v| !applied.contains(v))
        .collect())
}

/// Projection checkpoints in the store's schema.
#[derive(Clone)]
pub struct PostgresCheckpoints {
    pool: PgPool,
    load_sql: Arc<str>,
    save_sql: Arc<str>,
}

impl PostgresCheckpoints {
    /// Checkpoints kept beside the events of `store`.
    pub fn new(store: &PostgresEventStore) -> Self {
        Self {
            pool: store.inner.pool.clone(),
            load_sql: Arc::clone(&store.inner.sql.checkpoint_load),
            save_sql: Arc::clone(&store.inner.sql.checkpoint_save),
        }
    }
}

#[async_trait]
impl CheckpointStore for PostgresCheckpoints {
    async fn load(&self, name: &str) -> Result<Position> {
        let position: Option<i64> = sqlx::query_scalar(AssertSqlSafe(Arc::clone(&self.load_sql)))
            .bind(name)
            .fetch_optional(&self.pool)
            .await?;
        Ok(position.unwrap_or(0) as Position)
    }

    async fn save(&self, name: &str, position: Position) -> Result<()> {
        sqlx::query(AssertSqlSafe(Arc::clone(&self.save_sql)))
            .bind(name)
            .bind(to_i64(position))
            .execute(&self.pool)
            .await?;
        Ok(())
    }
}

/// `"name"` with inner quotes doubled: a safe SQL identifier.
fn quote_ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

fn check_schema_name(schema: &str) -> Result<()> {
    // PostgreSQL silently truncates longer names, which could merge two stores.
    if schema.is_empty() || schema.len() > 63 || schema.contains('\0') {
        return Err(configuration(format!(
            "schema name {schema:?} must be 1 to 63 bytes without NUL"
        )));
    }
    Ok(())
}

/// The advisory lock key for `purpose` in `schema`: stable across processes and builds (FNV-1a),
/// so every process using the schema takes the same lock, and stores in other schemas of the same
/// database do not wait for each other (a hash collision would only serialise them).
fn lock_key(purpose: &str, schema: &str) -> i64 {
    fnv1a(&format!("metachat.event_store.{purpose}:{schema}")) as i64
}

/// The `NOTIFY` channel of a schema (at most 63 bytes, PostgreSQL's identifier limit).
fn notification_channel(schema: &str) -> String {
    let readable = format!("metachat_events.{schema}");
    if readable.len() <= 63 {
        readable
    } else {
        format!("metachat_events.{:016x}", fnv1a(schema))
    }
}

fn fnv1a(text: &str) -> u64 {
    text.bytes().fold(0xcbf2_9ce4_8422_2325, |hash, byte| {
        (hash ^ u64::from(byte)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

fn to_i64(value: u64) -> i64 {
    i64::try_from(value).unwrap_or(i64::MAX)
}

fn configuration(message: impl Into<String>) -> EventStoreError {
    EventStoreError::Backend(sqlx::Error::Configuration(message.into().into()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identifiers_are_quoted() {
        assert_eq!(quote_ident("events"), "\"events\"");
        assert_eq!(quote_ident("a\"b"), "\"a\"\"b\"");
    }

    #[test]
    fn lock_keys_are_stable_and_per_schema() {
        // Fixed values: a change would let old and new builds take different locks.
        assert_eq!(fnv1a(""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(fnv1a("a"), 0xaf63_dc4c_8601_ec8c);
        assert_ne!(lock_key("append", "one"), lock_key("append", "two"));
        assert_ne!(lock_key("append", "one"), lock_key("migrate", "one"));
    }

    #[test]
    fn channels_fit_postgres_identifiers() {
        assert_eq!(notification_channel("public"), "metachat_events.public");
        let long = "x".repeat(63);
        let channel = notification_channel(&long);
        assert!(channel.len() <= 63);
        assert_ne!(channel, notification_channel(&"y".repeat(63)));
    }

    #[test]
    fn schema_names_are_checked() {
        assert!(check_schema_name("contract_1").is_ok());
        assert!(check_schema_name("").is_err());
        assert!(check_schema_name(&"s".repeat(64)).is_err());
    }
}
