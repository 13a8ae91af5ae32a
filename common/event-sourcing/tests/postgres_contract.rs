//! The event-store contract, run against PostgreSQL, and the PostgreSQL-specific guarantees:
//! no position is returned while a lower one can still commit, typed errors for racing writers,
//! wake-ups across processes through `LISTEN`/`NOTIFY`, and connection loss.
//!
//! Needs the test server: `scripts/infra/postgres.sh start` (or `METACHAT_TEST_DATABASE_URL`).
//! Every store lives in a schema of its own, so tests run in parallel without seeing each other.

use std::collections::HashSet;
use std::str::FromStr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use event_sourcing::contract::{Opened, TestBackend};
use event_sourcing::postgres::{
    LISTENER_APPLICATION_NAME, PostgresCheckpoints, PostgresEventStore, PostgresOptions,
};
use event_sourcing::{
    EventCodec, EventMetadata, EventStore, EventStoreError, ExpectedVersion, NewEvent, Position,
    Subscription,
};
use serde_json::json;
use sqlx::postgres::{PgConnectOptions, PgConnection};
use sqlx::{AssertSqlSafe, Connection};
use uuid::Uuid;

const DEFAULT_URL: &str = "postgres://metachat:metachat@127.0.0.1:55432/metachat";

fn database_url() -> String {
    std::env::var("METACHAT_TEST_DATABASE_URL").unwrap_or_else(|_| DEFAULT_URL.to_owned())
}

fn connect_options() -> PgConnectOptions {
    PgConnectOptions::from_str(&database_url()).expect("METACHAT_TEST_DATABASE_URL is a valid URL")
}

/// Several pool connections, so concurrent appends really run on different connections.
fn test_options(schema: &str) -> PostgresOptions {
    PostgresOptions {
        max_connections: 4,
        ..PostgresOptions::in_schema(schema)
    }
}

async fn open_with(
    schema: &str,
    codec: EventCodec,
    connect: PgConnectOptions,
    options: PostgresOptions,
) -> PostgresEventStore {
    remove_stale_schemas().await;
    match PostgresEventStore::connect_with(connect, codec, options).await {
        Ok(store) => store,
        Err(e) if e.is_unavailable() => panic!(
            "PostgreSQL at {} is unreachable ({e}). Start the test server with \
             `scripts/infra/postgres.sh start`, or point METACHAT_TEST_DATABASE_URL at one.",
            database_url()
        ),
        Err(e) => panic!("cannot open the PostgreSQL event store in schema {schema}: {e}"),
    }
}

async fn open_store(schema: &str) -> PostgresEventStore {
    open_with(
        schema,
        EventCodec::default(),
        connect_options(),
        test_options(schema),
    )
    .await
}

async fn raw_connection() -> PgConnection {
    PgConnection::connect_with(&connect_options())
        .await
        .unwrap_or_else(|e| {
            panic!(
                "PostgreSQL at {} is unreachable ({e}); run `scripts/infra/postgres.sh start`",
                database_url()
            )
        })
}

/// Test schemas are kept after a run for inspection; the first store a test process opens
/// drops those older than a day.
async fn remove_stale_schemas() {
    static DONE: AtomicBool = AtomicBool::new(false);
    if DONE.swap(true, Ordering::SeqCst) {
        return;
    }
    let Ok(mut conn) = PgConnection::connect_with(&connect_options()).await else {
        return;
    };
    let stale: Vec<String> = sqlx::query_scalar(
        "SELECT n.nspname FROM pg_namespace n \
         JOIN pg_class c ON c.relnamespace = n.oid AND c.relname = 'schema_migrations' \
         WHERE n.nspname LIKE 'contract\\_%' OR n.nspname LIKE 'pgtest\\_%'",
    )
    .fetch_all(&mut conn)
    .await
    .unwrap_or_default();
    for schema in stale {
        let quoted = format!("\"{schema}\"");
        let old: bool = sqlx::query_scalar(AssertSqlSafe(format!(
            "SELECT COALESCE(MIN(applied_at) < now() - interval '1 day', false) \
             FROM {quoted}.schema_migrations"
        )))
        .fetch_one(&mut conn)
        .await
        .unwrap_or(false);
        if old {
            let _ = sqlx::raw_sql(AssertSqlSafe(format!(
                "DROP SCHEMA IF EXISTS {quoted} CASCADE"
            )))
            .execute(&mut conn)
            .await;
        }
    }
}

struct Postgres;

#[async_trait]
impl TestBackend for Postgres {
    async fn open(&self, location: &str, codec: EventCodec) -> Opened {
        let store = open_with(location, codec, connect_options(), test_options(location)).await;
        let checkpoints = Arc::new(PostgresCheckpoints::new(&store));
        Opened {
            store: Arc::new(store),
            checkpoints,
        }
    }
}

event_sourcing::event_store_contract_tests!(Postgres);

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_appends_share_commits() {
    let store = Arc::new(open_store(&schema()).await);
    let counted = Arc::clone(&store);
    event_sourcing::contract::concurrent_appends_share_commits(store, move || counted.commits())
        .await;
}

fn schema() -> String {
    format!("pgtest_{}", Uuid::new_v4().simple())
}

fn event(n: usize) -> NewEvent {
    NewEvent::new("Happened", 1, json!({ "n": n }), EventMetadata::default())
}

fn events(n: usize) -> Vec<NewEvent> {
    (0..n).map(event).collect()
}

/// Inserts an event the way a careless outside program would: without the append lock.
async fn insert_unlocked(
    conn: &mut PgConnection,
    schema: &str,
    event_id: Uuid,
    stream_id: &str,
    version: i64,
) {
    sqlx::query(AssertSqlSafe(format!(
        "INSERT INTO \"{schema}\".events (event_id, stream_id, stream_version, event_type, \
         schema_version, payload, metadata, recorded_at) \
         VALUES ($1, $2, $3, 'Happened', 1, '{{\"n\":0}}', '{{}}', now())"
    )))
    .bind(event_id)
    .bind(stream_id)
    .bind(version)
    .execute(conn)
    .await
    .expect("unlocked insert");
}

/// The pids of the listening connections of a schema's stores.
async fn listener_pids(conn: &mut PgConnection, channel: &str) -> Vec<i32> {
    sqlx::query_scalar(
        "SELECT pid FROM pg_stat_activity WHERE application_name = $1 AND query LIKE $2",
    )
    .bind(LISTENER_APPLICATION_NAME)
    .bind(format!("%{channel}%"))
    .fetch_all(conn)
    .await
    .expect("pg_stat_activity")
}

/// Waits until the schema's channel has `count` listening connections.
async fn wait_for_listeners(admin: &mut PgConnection, channel: &str, count: usize) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let found = listener_pids(admin, channel).await.len();
        if found == count {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "expected {count} listening connections on {channel}, found {found}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Follows `store` from `after` until it has seen `count` events; returns (position, id) pairs.
fn follow(
    store: &PostgresEventStore,
    after: Position,
    count: usize,
    fallback_poll: Duration,
) -> tokio::task::JoinHandle<Vec<(Position, Uuid)>> {
    let store: Arc<dyn EventStore> = Arc::new(store.clone());
    tokio::spawn(async move {
        let mut subscription =
            Subscription::new(store, after, 16).with_fallback_poll(fallback_poll);
        let mut seen = Vec::new();
        while seen.len() < count {
            let batch = subscription.next_batch().await.expect("subscription");
            seen.extend(batch.into_iter().map(|e| (e.position, e.event_id)));
        }
        seen
    })
}

/// The hazard itself, on a plain table: a sequence hands out 1 then 2, the transaction holding
/// 2 commits first, and a reader sees 2 without 1. Reading "after 2" later would skip 1 for
/// ever. This is what the store's append lock exists to prevent.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plain_sequences_commit_out_of_order() {
    let schema = schema();
    let mut setup = raw_connection().await;
    sqlx::raw_sql(AssertSqlSafe(format!(
        "CREATE SCHEMA \"{schema}\"; \
         CREATE TABLE \"{schema}\".log (position BIGSERIAL PRIMARY KEY, body TEXT NOT NULL)"
    )))
    .execute(&mut setup)
    .await
    .unwrap();
    let table = format!("\"{schema}\".log");
    let insert = format!("INSERT INTO {table} (body) VALUES ($1) RETURNING position");
    let select = format!("SELECT position FROM {table} ORDER BY position");

    let mut a = raw_connection().await;
    let mut b = raw_connection().await;
    let mut tx_a = a.begin().await.unwrap();
    let pos_a: i64 = sqlx::query_scalar(AssertSqlSafe(insert.clone()))
        .bind("a")
        .fetch_one(&mut *tx_a)
        .await
        .unwrap();
    let mut tx_b = b.begin().await.unwrap();
    let pos_b: i64 = sqlx::query_scalar(AssertSqlSafe(insert.clone()))
        .bind("b")
        .fetch_one(&mut *tx_b)
        .await
        .unwrap();
    assert!(pos_a < pos_b);
    tx_b.commit().await.unwrap();
    let visible: Vec<i64> = sqlx::query_scalar(AssertSqlSafe(select.clone()))
        .fetch_all(&mut setup)
        .await
        .unwrap();
    assert_eq!(
        visible,
        [pos_b],
        "without serialisation a reader sees the higher position first"
    );
    tx_a.commit().await.unwrap();
    let visible: Vec<i64> = sqlx::query_scalar(AssertSqlSafe(select))
        .fetch_all(&mut setup)
        .await
        .unwrap();
    assert_eq!(visible, [pos_a, pos_b]);
    sqlx::raw_sql(AssertSqlSafe(format!("DROP SCHEMA \"{schema}\" CASCADE")))
        .execute(&mut setup)
        .await
        .unwrap();
}

/// The same situation through the store: append A has drawn its position and is about to
/// commit; append B (another process) must wait for it, and no reader may see anything past the
/// settled head meanwhile. Then a follower in a third process sees A and B, in order, once.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_uncommitted_append_holds_back_later_positions() {
    let schema = schema();
    let writer_a = open_store(&schema).await;
    let writer_b = open_store(&schema).await;
    let reader = open_store(&schema).await;
    writer_a
        .append("setup-1", ExpectedVersion::NoStream, events(2))
        .await
        .unwrap();
    let settled = reader.head_position().await.unwrap();

    // The follower's fallback poll is an hour: only LISTEN/NOTIFY can wake it in time.
    let follower = follow(&reader, settled, 2, Duration::from_secs(3600));

    let mut hold = writer_a.hold_next_commit();
    let a_event = event(1);
    let a_id = a_event.event_id;
    let a_task = {
        let store = writer_a.clone();
        tokio::spawn(async move {
            store
                .append("stream-a", ExpectedVersion::NoStream, vec![a_event])
                .await
        })
    };
    let a_position = tokio::time::timeout(Duration::from_secs(10), hold.reached())
        .await
        .expect("append A reaches its commit");
    assert!(a_position > settled);

    let b_event = event(2);
    let b_id = b_event.event_id;
    let b_task = {
        let store = writer_b.clone();
        tokio::spawn(async move {
            store
                .append("stream-b", ExpectedVersion::NoStream, vec![b_event])
                .await
        })
    };
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(
        !b_task.is_finished(),
        "append B must wait for A's append lock instead of committing a later position first"
    );
    assert!(
        reader.read_all(settled, 100).await.unwrap().is_empty(),
        "nothing past the settled head is visible while A is in flight"
    );
    assert_eq!(reader.head_position().await.unwrap(), settled);
    assert!(!follower.is_finished());

    hold.release();
    let a = a_task.await.unwrap().unwrap();
    let b = b_task.await.unwrap().unwrap();
    assert_eq!(a.last_position, a_position);
    assert!(
        b.last_position > a.last_position,
        "B commits after A, at a higher position"
    );
    let seen = tokio::time::timeout(Duration::from_secs(10), follower)
        .await
        .expect("a follower in another process is woken by NOTIFY")
        .unwrap();
    assert_eq!(seen, [(a.last_position, a_id), (b.last_position, b_id)]);
}

/// Many writers in two "processes" (two stores, each with its own pool), one follower in a
/// third: every event seen once, in position order, nothing skipped.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn writers_in_several_processes_never_skip_or_duplicate() {
    const WRITERS_PER_STORE: usize = 4;
    const APPENDS: usize = 25;
    let schema = schema();
    let stores = [open_store(&schema).await, open_store(&schema).await];
    let reader = open_store(&schema).await;
    let total = stores.len() * WRITERS_PER_STORE * APPENDS * 2;
    let follower = follow(&reader, 0, total, Duration::from_secs(3600));

    let mut writers = Vec::new();
    for (s, store) in stores.iter().enumerate() {
        for w in 0..WRITERS_PER_STORE {
            let store = store.clone();
            writers.push(tokio::spawn(async move {
                let mut ids = Vec::new();
                for i in 0..APPENDS {
                    let stream = if i % 2 == 0 {
                        "shared-1".to_owned()
                    } else {
                        format!("own-{s}-{w}")
                    };
                    let batch = events(2);
                    ids.extend(batch.iter().map(|e| e.event_id));
                    loop {
                        let version = store.stream_version(&stream).await.unwrap();
                        let expected =
                            version.map_or(ExpectedVersion::NoStream, ExpectedVersion::Exact);
                        match store.append(&stream, expected, batch.clone()).await {
                            Ok(_) => break,
                            Err(e) if e.is_conflict() => tokio::task::yield_now().await,
                            Err(e) => panic!("append failed: {e}"),
                        }
                    }
                }
                ids
            }));
        }
    }
    let mut appended = HashSet::new();
    for writer in writers {
        appended.extend(writer.await.unwrap());
    }
    let seen = tokio::time::timeout(Duration::from_secs(60), follower)
        .await
        .expect("the follower sees every event")
        .unwrap();
    assert_eq!(seen.len(), total);
    assert!(seen.windows(2).all(|w| w[0].0 < w[1].0), "position order");
    let ids: HashSet<_> = seen.iter().map(|(_, id)| *id).collect();
    assert_eq!(ids, appended, "each appended event seen exactly once");
    let all: Vec<_> = reader
        .read_all(0, total + 1)
        .await
        .unwrap()
        .into_iter()
        .map(|e| (e.position, e.event_id))
        .collect();
    assert_eq!(all, seen);
}

/// A writer that bypasses the append lock inserts the stream version (or event id) first; the
/// store's append, blocked on the unique index until that writer commits, must then report the
/// typed outcome, not a backend error.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn unique_violations_from_outside_writers_become_typed_errors() {
    let schema = schema();
    let store = open_store(&schema).await;
    let mut outside = raw_connection().await;

    // Same (stream, version), expected NoStream: a conflict.
    let mut tx = outside.begin().await.unwrap();
    insert_unlocked(&mut tx, &schema, Uuid::new_v4(), "race-1", 1).await;
    let append = {
        let store = store.clone();
        tokio::spawn(async move {
            store
                .append("race-1", ExpectedVersion::NoStream, events(1))
                .await
        })
    };
    tokio::time::sleep(Duration::from_millis(300)).await;
    tx.commit().await.unwrap();
    match append.await.unwrap() {
        Err(EventStoreError::WrongExpectedVersion {
            stream_id, actual, ..
        }) => assert_eq!((stream_id.as_str(), actual), ("race-1", Some(1))),
        other => panic!("expected WrongExpectedVersion, got {other:?}"),
    }

    // Same (stream, version), expected Any: the append lands after the outside event.
    let mut tx = outside.begin().await.unwrap();
    insert_unlocked(&mut tx, &schema, Uuid::new_v4(), "race-2", 1).await;
    let append = {
        let store = store.clone();
        tokio::spawn(async move {
            store
                .append("race-2", ExpectedVersion::Any, events(1))
                .await
        })
    };
    tokio::time::sleep(Duration::from_millis(300)).await;
    tx.commit().await.unwrap();
    assert_eq!(append.await.unwrap().unwrap().stream_version, 2);

    // The same event id committed in another stream: reused.
    let sent = event(0);
    let mut tx = outside.begin().await.unwrap();
    insert_unlocked(&mut tx, &schema, sent.event_id, "elsewhere", 1).await;
    let append = {
        let store = store.clone();
        let sent = sent.clone();
        tokio::spawn(async move {
            store
                .append("race-3", ExpectedVersion::Any, vec![sent])
                .await
        })
    };
    tokio::time::sleep(Duration::from_millis(300)).await;
    tx.commit().await.unwrap();
    assert!(matches!(
        append.await.unwrap(),
        Err(EventStoreError::EventIdReused { event_id }) if event_id == sent.event_id
    ));

    // The same event at the same place (a concurrent retry of this very write): already stored.
    let sent = event(0);
    let mut tx = outside.begin().await.unwrap();
    insert_unlocked(&mut tx, &schema, sent.event_id, "race-4", 1).await;
    let append = {
        let store = store.clone();
        let sent = sent.clone();
        tokio::spawn(async move {
            store
                .append("race-4", ExpectedVersion::NoStream, vec![sent])
                .await
        })
    };
    tokio::time::sleep(Duration::from_millis(300)).await;
    tx.commit().await.unwrap();
    let result = append.await.unwrap().unwrap();
    assert!(result.already_stored);
    assert_eq!(result.stream_version, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_append_in_another_process_wakes_a_subscriber() {
    let schema = schema();
    let writer = open_store(&schema).await;
    let reader = open_store(&schema).await;
    let other_schema = open_store(&schema_name_suffix(&schema)).await;
    let mut head = reader.watch_head();
    head.borrow_and_update();

    // Another schema's appends are not announced on this schema's channel.
    other_schema
        .append("x-1", ExpectedVersion::NoStream, events(1))
        .await
        .unwrap();
    assert!(
        tokio::time::timeout(Duration::from_millis(300), head.changed())
            .await
            .is_err(),
        "an append in another schema must not wake this one"
    );

    let result = writer
        .append("w-1", ExpectedVersion::NoStream, events(3))
        .await
        .unwrap();
    tokio::time::timeout(
        Duration::from_secs(5),
        head.wait_for(|h| *h >= result.last_position),
    )
    .await
    .expect("NOTIFY reaches the other store")
    .unwrap();
}

fn schema_name_suffix(schema: &str) -> String {
    format!("{schema}_other")
}

/// The listening connection is killed; the store reconnects, and appends (also one made while
/// it was away) still wake its subscribers.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_listener_reconnects_after_losing_its_connection() {
    let schema = schema();
    let writer = open_store(&schema).await;
    let reader = open_store(&schema).await;
    let channel = reader.notification_channel().to_owned();
    let mut admin = raw_connection().await;
    let before = listener_pids(&mut admin, &channel).await;
    assert_eq!(before.len(), 2, "one listening connection per store");

    for round in 1..=2_u64 {
        let mut head = reader.watch_head();
        head.borrow_and_update();
        let killed: Vec<bool> = sqlx::query_scalar(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
             WHERE application_name = $1 AND query LIKE $2",
        )
        .bind(LISTENER_APPLICATION_NAME)
        .bind(format!("%{channel}%"))
        .fetch_all(&mut admin)
        .await
        .unwrap();
        assert_eq!(killed, [true, true]);
        // Appended at once, probably before the listeners are back: the head re-read after
        // re-subscribing must cover it.
        let result = writer
            .append(&format!("r-{round}"), ExpectedVersion::NoStream, events(1))
            .await
            .unwrap();
        tokio::time::timeout(
            Duration::from_secs(10),
            head.wait_for(|h| *h >= result.last_position),
        )
        .await
        .expect("a subscriber is woken after the listener reconnects")
        .unwrap();
        wait_for_listeners(&mut admin, &channel, 2).await;
    }

    // And the reconnected listener still delivers notifications.
    let mut head = reader.watch_head();
    head.borrow_and_update();
    let result = writer
        .append("r-after", ExpectedVersion::NoStream, events(1))
        .await
        .unwrap();
    tokio::time::timeout(
        Duration::from_secs(5),
        head.wait_for(|h| *h >= result.last_position),
    )
    .await
    .expect("NOTIFY after reconnecting")
    .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_listener_stops_when_the_store_is_closed_or_dropped() {
    let schema = schema();
    let mut admin = raw_connection().await;
    let dropped = open_store(&schema).await;
    let channel = dropped.notification_channel().to_owned();
    assert_eq!(listener_pids(&mut admin, &channel).await.len(), 1);
    let clone = dropped.clone();
    drop(dropped);
    assert_eq!(
        listener_pids(&mut admin, &channel).await.len(),
        1,
        "a clone keeps the store alive"
    );
    drop(clone);
    wait_for_listeners(&mut admin, &channel, 0).await;

    let closed = open_store(&schema).await;
    assert_eq!(listener_pids(&mut admin, &channel).await.len(), 1);
    closed.close().await;
    wait_for_listeners(&mut admin, &channel, 0).await;
    assert!(closed.head_position().await.is_err());
}

/// Several processes starting at once on a new schema: one migrates, all open, each migration
/// is recorded once; reopening migrates nothing and sees the data.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_starts_migrate_once() {
    let schema = schema();
    let starts: Vec<_> = (0..4)
        .map(|_| {
            let schema = schema.clone();
            tokio::spawn(async move { open_store(&schema).await })
        })
        .collect();
    let mut stores = Vec::new();
    for start in starts {
        stores.push(start.await.unwrap());
    }
    stores[0]
        .append("m-1", ExpectedVersion::NoStream, events(1))
        .await
        .unwrap();
    let mut admin = raw_connection().await;
    let versions: Vec<i64> = sqlx::query_scalar(AssertSqlSafe(format!(
        "SELECT version FROM \"{schema}\".schema_migrations ORDER BY version"
    )))
    .fetch_all(&mut admin)
    .await
    .unwrap();
    assert_eq!(versions, [1, 2, 3, 4]);
    let reopened = open_store(&schema).await;
    assert_eq!(reopened.stream_version("m-1").await.unwrap(), Some(1));
}

/// Without an explicit schema the store uses the connection's search_path.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_schema_can_come_from_the_search_path() {
    let schema = schema();
    let mut admin = raw_connection().await;
    sqlx::raw_sql(AssertSqlSafe(format!("CREATE SCHEMA \"{schema}\"")))
        .execute(&mut admin)
        .await
        .unwrap();
    let connect = connect_options().options([("search_path", schema.as_str())]);
    let options = PostgresOptions {
        max_connections: 2,
        ..PostgresOptions::default()
    };
    let store = open_with(
        &schema,
        EventCodec::default(),
        connect.clone(),
        options.clone(),
    )
    .await;
    assert_eq!(store.schema(), schema);
    store
        .append("sp-1", ExpectedVersion::NoStream, events(2))
        .await
        .unwrap();
    drop(store);
    let again = open_with(&schema, EventCodec::default(), connect, options).await;
    assert_eq!(again.stream_version("sp-1").await.unwrap(), Some(2));
    let explicit = open_store(&schema).await;
    assert_eq!(explicit.read_all(0, 10).await.unwrap().len(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_server_is_unavailable() {
    // Port 9 (discard) is closed on the test machine: the connection is refused.
    let connect = connect_options().host("127.0.0.1").port(9);
    let options = PostgresOptions {
        connect_timeout: Duration::from_secs(3),
        acquire_timeout: Duration::from_secs(2),
        ..PostgresOptions::in_schema(schema())
    };
    let error =
        match PostgresEventStore::connect_with(connect, EventCodec::default(), options).await {
            Ok(_) => panic!("nothing listens on port 9"),
            Err(e) => e,
        };
    assert!(
        error.is_unavailable(),
        "a refused connection is unavailable: {error}"
    );
}

/// A writer waiting too long for the append lock, and a writer whose connection dies before
/// COMMIT, both fail as "unavailable"; the second stored nothing, so its retry succeeds.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn lock_timeouts_and_lost_connections_are_unavailable() {
    let schema = schema();
    let app_name = format!("es-test-{}", Uuid::new_v4().simple());
    let holder = open_with(
        &schema,
        EventCodec::default(),
        connect_options().application_name(&app_name),
        test_options(&schema),
    )
    .await;
    let impatient = open_with(
        &schema,
        EventCodec::default(),
        connect_options(),
        PostgresOptions {
            lock_timeout: Duration::from_millis(200),
            ..test_options(&schema)
        },
    )
    .await;

    let mut hold = holder.hold_next_commit();
    let batch = events(2);
    let held = {
        let store = holder.clone();
        let batch = batch.clone();
        tokio::spawn(async move {
            store
                .append("held-1", ExpectedVersion::NoStream, batch)
                .await
        })
    };
    hold.reached().await;

    let waited = impatient
        .append("other-1", ExpectedVersion::NoStream, events(1))
        .await;
    match waited {
        Err(e) => assert!(e.is_unavailable(), "a lock timeout is unavailable: {e}"),
        Ok(_) => panic!("the append lock is held: the impatient append must time out"),
    }

    // Kill the connection of the held append (idle in transaction, holding the lock).
    let mut admin = raw_connection().await;
    let killed: Vec<bool> = sqlx::query_scalar(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
         WHERE application_name = $1 AND state = 'idle in transaction'",
    )
    .bind(&app_name)
    .fetch_all(&mut admin)
    .await
    .unwrap();
    assert_eq!(killed, [true]);
    hold.release();
    match held.await.unwrap() {
        Err(e) => assert!(e.is_unavailable(), "a lost connection is unavailable: {e}"),
        Ok(_) => panic!("the held append's connection was killed before COMMIT"),
    }
    assert_eq!(holder.stream_version("held-1").await.unwrap(), None);
    let retried = holder
        .append("held-1", ExpectedVersion::NoStream, batch)
        .await
        .unwrap();
    assert!(!retried.already_stored);
    assert_eq!(impatient.read_all(0, 10).await.unwrap().len(), 2);
}

/// A rough append-throughput comparison with SQLite, same process, same run. Not part of the
/// normal suite:
/// `cargo test --release -p metachat-event-sourcing --test postgres_contract -- --ignored --nocapture`
/// (`BENCH_EVENTS` scales it; the test server runs with fsync off, so compare with SQLite both
/// durable and not).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[ignore = "a measurement, not a test"]
async fn append_throughput_against_sqlite() {
    use event_sourcing::sqlite::{SqliteEventStore, SqliteOptions};

    let singles: usize = std::env::var("BENCH_EVENTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1000);
    let dir = std::env::temp_dir().join("metachat-event-store-pg-bench");
    let _ = std::fs::remove_dir_all(&dir);
    let postgres = Arc::new(open_store(&schema()).await) as Arc<dyn EventStore>;
    let mut backends: Vec<(&str, Arc<dyn EventStore>)> = vec![("postgres (fsync off)", postgres)];
    for (name, durable) in [("sqlite durable", true), ("sqlite not durable", false)] {
        let options = SqliteOptions {
            durable,
            ..SqliteOptions::default()
        };
        let store = SqliteEventStore::open_with(
            dir.join(format!("{durable}.db")),
            EventCodec::default(),
            options,
        )
        .await
        .unwrap();
        backends.push((name, Arc::new(store)));
    }
    let rate = |n: usize, started: Instant| n as f64 / started.elapsed().as_secs_f64();
    for (name, store) in backends {
        let started = Instant::now();
        for i in 0..singles {
            store
                .append(&format!("single-{i}"), ExpectedVersion::NoStream, events(1))
                .await
                .unwrap();
        }
        let single = rate(singles, started);

        let started = Instant::now();
        for b in 0..singles / 10 {
            store
                .append(
                    &format!("batch-{b}"),
                    ExpectedVersion::NoStream,
                    events(100),
                )
                .await
                .unwrap();
        }
        let batched = rate(singles * 10, started);

        let started = Instant::now();
        let tasks: Vec<_> = (0..8)
            .map(|w| {
                let store = Arc::clone(&store);
                tokio::spawn(async move {
                    for i in 0..singles / 8 {
                        store
                            .append(&format!("c-{w}-{i}"), ExpectedVersion::NoStream, events(1))
                            .await
                            .unwrap();
                    }
                })
            })
            .collect();
        for task in tasks {
            task.await.unwrap();
        }
        let concurrent = rate(singles / 8 * 8, started);

        let started = Instant::now();
        let mut position = 0;
        let mut read = 0;
        loop {
            let page = store.read_all(position, 1000).await.unwrap();
            let Some(last) = page.last() else { break };
            position = last.position;
            read += page.len();
        }
        let reads = rate(read, started);
        println!(
            "{name:<22} 1-event appends {single:>7.0}/s | 100-event batches {batched:>8.0} events/s \
             | 8 concurrent writers {concurrent:>7.0} appends/s | read_all {reads:>8.0} events/s"
        );
    }
}
