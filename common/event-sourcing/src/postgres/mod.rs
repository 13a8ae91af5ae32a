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
//! for three round trips (lookup, insert with notify, commit). Reads never take it. Within a
//! process, appends that arrive while one commits wait in a queue, and the next committer
//! takes them all into one transaction under one lock, each in a savepoint of its own
//! (group commit: one lock and one commit for many appends; a refused append, such as a
//! version conflict, rolls back to its savepoint and costs the others nothing).
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
//! append committed while it was away still wakes subscribers (the pause ends early when the
//! store sees the server answer again, see below). The task ends when the store is closed or its
//! last clone is dropped.
//!
//! # Outages
//!
//! Left alone, the pool would make every operation wait its whole
//! [`PostgresOptions::acquire_timeout`] while the server is down or restarting (it retries a
//! refused connection until then), and a readiness check would see nothing wrong. So each store
//! keeps a shared "available" state:
//!
//! - **Noticing.** A connection-class failure (I/O, TLS, pool timeout, SQLSTATE `08xxx`,
//!   `57P01`-`57P03`) of any operation, the loss of the listening connection (usually the
//!   first sign, even with no traffic), or a wait for a pool connection longer than
//!   [`PostgresOptions::health_probe_timeout`] starts a *probe*: a fresh connection of its own
//!   (application name [`PROBE_APPLICATION_NAME`]) that pings, bounded by that timeout. The
//!   probe decides, not the failed operation: a single killed connection, a busy pool, a lock
//!   timeout or "too many connections" leave the store available.
//! - **Down.** When the probe cannot reach the server, the store is unavailable:
//!   [`PostgresEventStore::is_available`] turns false ([`PostgresEventStore::watch_available`]
//!   signals it), every operation (appends, reads, [`PostgresCheckpoints`]) fails at once with an
//!   error for which [`EventStoreError::is_unavailable`] is true, and operations already waiting
//!   for a pool connection give up at that moment. Nothing has been sent for them, so nothing
//!   of theirs is stored.
//! - **Back.** The probe retries every [`PostgresOptions::health_probe_interval`] (500 ms by
//!   default); the first answer makes the store available again, and the listening task
//!   re-subscribes at once. The pool tests idle connections before handing them out, so those
//!   the restart killed are replaced, not used.
//!
//! With the defaults, a server that refuses connections (stopped, restarting) is noticed within
//! milliseconds and one that stops answering (lost network) within about two seconds, instead
//! of every request waiting five. The state is per process and per store; a store that is
//! closed reports unavailable.
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

mod append;
mod checkpoints;
#[cfg(feature = "contract-tests")]
mod commit_hold;
mod health;
mod keys;
mod listen;
mod migrations;
mod options;
mod read;
mod sql;

use std::str::FromStr;
use std::sync::{Arc, Mutex, PoisonError};

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use sqlx::AssertSqlSafe;
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::codec::EventCodec;
use crate::error::{EventStoreError, Result};
use crate::event::{AppendResult, Position, RecordedEvent, StreamWrite};
use crate::store::{EventStore, detached, validate_writes};

pub use checkpoints::PostgresCheckpoints;
#[cfg(feature = "contract-tests")]
#[doc(hidden)]
pub use commit_hold::CommitHold;
pub use health::PROBE_APPLICATION_NAME;
pub use listen::LISTENER_APPLICATION_NAME;
pub use options::PostgresOptions;

use health::Health;
use listen::{ListenTask, subscribe};
use migrations::migrate;
use sql::{Sql, check_schema_name, configuration, notification_channel};
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
    health: Arc<Health>,
    listener: Mutex<Option<JoinHandle<()>>>,
    /// Appends waiting for the append lock, and who commits them ([`append`]).
    queue: Mutex<Vec<append::PendingAppend>>,
    committer: tokio::sync::Mutex<()>,
    /// Transactions that committed appends.
    commits: std::sync::atomic::AtomicU64,
    #[cfg(feature = "contract-tests")]
    commit_hold: Mutex<Option<commit_hold::HeldCommit>>,
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
        let health = Health::new(connect.clone(), &options);

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
            health: Arc::clone(&health),
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
                health,
                listener: Mutex::new(Some(listener)),
                queue: Mutex::new(Vec::new()),
                committer: tokio::sync::Mutex::new(()),
                commits: Default::default(),
                #[cfg(feature = "contract-tests")]
                commit_hold: Mutex::new(None),
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

    /// False while the server is known to be unreachable: operations then fail at once with an
    /// error for which [`EventStoreError::is_unavailable`] is true, and a probe checks the
    /// server every [`PostgresOptions::health_probe_interval`] until it answers again (see
    /// "Outages" in the module docs). Also false once the store is closed. For readiness checks.
    pub fn is_available(&self) -> bool {
        self.inner.health.is_available()
    }

    /// A receiver of [`is_available`](Self::is_available) that changes when it does.
    pub fn watch_available(&self) -> watch::Receiver<bool> {
        self.inner.health.subscribe()
    }

    /// Stops the listening task and closes every connection; later calls fail.
    pub async fn close(&self) {
        self.inner.health.close();
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
}

#[async_trait]
impl EventStore for PostgresEventStore {
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
        self.inner.read_stream(stream_id, from_version, limit).await
    }

    async fn read_stream_as_of(
        &self,
        stream_id: &str,
        as_of: DateTime<Utc>,
    ) -> Result<Vec<RecordedEvent>> {
        self.inner.read_stream_as_of(stream_id, as_of).await
    }

    async fn stream_version(&self, stream_id: &str) -> Result<Option<u64>> {
        self.inner.stream_version(stream_id).await
    }

    async fn read_all(&self, after: Position, limit: usize) -> Result<Vec<RecordedEvent>> {
        let events = self.inner.read_all(after, limit).await?;
        self.open(events).await
    }

    async fn read_all_sealed(&self, after: Position, limit: usize) -> Result<Vec<RecordedEvent>> {
        self.inner.read_all(after, limit).await
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
        self.inner.head_position().await
    }

    /// Changes after every append of this process and, through `LISTEN`/`NOTIFY`, of every
    /// other process using the same schema.
    fn watch_head(&self) -> watch::Receiver<Position> {
        self.inner.head.subscribe()
    }
}
