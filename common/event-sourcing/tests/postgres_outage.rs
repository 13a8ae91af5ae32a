//! PostgreSQL outages: while the server is unreachable the store knows it, fails at once instead
//! of waiting for the pool's acquire timeout, and recovers when the server answers again.
//!
//! The shared test server is never stopped: each store reaches it through a TCP proxy that the
//! test starts on a port of its own, then cuts (refusing connections and dropping the open
//! ones, like a server that went away) or freezes (accepting connections but never answering,
//! like a lost network), and restores.
//!
//! Needs the test server: `scripts/infra/postgres.sh start` (or `METACHAT_TEST_DATABASE_URL`).

use std::fmt::Debug;
use std::str::FromStr;
use std::time::{Duration, Instant};

use event_sourcing::postgres::{PostgresCheckpoints, PostgresEventStore, PostgresOptions};
use event_sourcing::{
    CheckpointStore, EventCodec, EventMetadata, EventStore, ExpectedVersion, NewEvent,
};
use serde_json::json;
use sqlx::postgres::PgConnectOptions;
use tokio::net::{TcpListener, TcpSocket, TcpStream};
use tokio::task::{JoinHandle, JoinSet};
use uuid::Uuid;

const DEFAULT_URL: &str = "postgres://metachat:metachat@127.0.0.1:55432/metachat";

/// The pool's acquire timeout in these tests: what every request waited during an outage before
/// the store learnt to fail fast.
const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(5);
/// "At once", generously: a behaviour check, not a benchmark.
const FAST: Duration = Duration::from_secs(2);

fn connect_options() -> PgConnectOptions {
    let url = std::env::var("METACHAT_TEST_DATABASE_URL").unwrap_or_else(|_| DEFAULT_URL.into());
    PgConnectOptions::from_str(&url).expect("METACHAT_TEST_DATABASE_URL is a valid URL")
}

fn schema() -> String {
    format!("pgtest_{}", Uuid::new_v4().simple())
}

fn events(n: usize) -> Vec<NewEvent> {
    (0..n)
        .map(|i| NewEvent::new("Happened", 1, json!({ "n": i }), EventMetadata::default()))
        .collect()
}

/// A TCP proxy from a local port to the test server.
struct Proxy {
    port: u16,
    upstream: String,
    task: Option<JoinHandle<()>>,
}

impl Proxy {
    async fn start() -> Self {
        let server = connect_options();
        let upstream = format!("{}:{}", server.get_host(), server.get_port());
        let listener = bind(0);
        let port = listener.local_addr().expect("proxy address").port();
        Self {
            port,
            task: Some(tokio::spawn(forward(listener, upstream.clone()))),
            upstream,
        }
    }

    /// Connection options that reach the server through this proxy.
    fn connect_options(&self) -> PgConnectOptions {
        connect_options().host("127.0.0.1").port(self.port)
    }

    async fn stop(&mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
            // Dropping the task drops the listener and every open connection.
            let _ = task.await;
        }
    }

    /// Like a server that went away: open connections are closed, new ones refused.
    async fn cut(&mut self) {
        self.stop().await;
    }

    /// Like a lost network: open connections are closed, new ones are accepted and never
    /// answered.
    async fn freeze(&mut self) {
        self.stop().await;
        self.task = Some(tokio::spawn(swallow(bind(self.port))));
    }

    async fn restore(&mut self) {
        self.stop().await;
        self.task = Some(tokio::spawn(forward(
            bind(self.port),
            self.upstream.clone(),
        )));
    }
}

fn bind(port: u16) -> TcpListener {
    let socket = TcpSocket::new_v4().expect("socket");
    // The port is bound again after a cut, while its old connections may linger in TIME_WAIT.
    socket.set_reuseaddr(true).expect("SO_REUSEADDR");
    socket
        .bind(([127, 0, 0, 1], port).into())
        .expect("bind the proxy port");
    socket.listen(64).expect("listen")
}

async fn forward(listener: TcpListener, upstream: String) {
    // Owned here, so that aborting this task drops every connection.
    let mut connections = JoinSet::new();
    loop {
        let Ok((mut client, _)) = listener.accept().await else {
            continue;
        };
        let upstream = upstream.clone();
        connections.spawn(async move {
            if let Ok(mut server) = TcpStream::connect(upstream).await {
                let _ = tokio::io::copy_bidirectional(&mut client, &mut server).await;
            }
        });
        while connections.try_join_next().is_some() {}
    }
}

async fn swallow(listener: TcpListener) {
    let mut held = Vec::new();
    while let Ok((client, _)) = listener.accept().await {
        held.push(client);
    }
}

fn options(schema: &str) -> PostgresOptions {
    PostgresOptions {
        max_connections: 2,
        acquire_timeout: ACQUIRE_TIMEOUT,
        ..PostgresOptions::in_schema(schema)
    }
}

async fn open(connect: PgConnectOptions, schema: &str) -> PostgresEventStore {
    match PostgresEventStore::connect_with(connect, EventCodec::default(), options(schema)).await {
        Ok(store) => store,
        Err(e) => panic!(
            "cannot open the PostgreSQL event store ({e}); start the test server with \
             `scripts/infra/postgres.sh start`"
        ),
    }
}

/// Asserts that an operation started at `started` failed as unavailable, and fast.
fn assert_failed_fast<T: Debug>(what: &str, result: event_sourcing::Result<T>, started: Instant) {
    let took = started.elapsed();
    match result {
        Err(e) => assert!(e.is_unavailable(), "{what}: not an unavailable error: {e}"),
        Ok(value) => panic!("{what} succeeded while the server is unreachable: {value:?}"),
    }
    assert!(
        took < FAST,
        "{what} took {took:?} to fail; the acquire timeout is {ACQUIRE_TIMEOUT:?}"
    );
}

/// Every kind of operation, each timed on its own.
async fn assert_everything_fails_fast(
    store: &PostgresEventStore,
    checkpoints: &PostgresCheckpoints,
) {
    let started = Instant::now();
    let result = store
        .append("outage-1", ExpectedVersion::Any, events(1))
        .await;
    assert_failed_fast("append", result, started);
    let started = Instant::now();
    let result = store.read_stream("outage-1", 1, 10).await;
    assert_failed_fast("read_stream", result, started);
    let started = Instant::now();
    let result = store
        .read_stream_as_of("outage-1", chrono::Utc::now())
        .await;
    assert_failed_fast("read_stream_as_of", result, started);
    let started = Instant::now();
    let result = store.read_all(0, 10).await;
    assert_failed_fast("read_all", result, started);
    let started = Instant::now();
    let result = store.head_position().await;
    assert_failed_fast("head_position", result, started);
    let started = Instant::now();
    let result = store.stream_version("outage-1").await;
    assert_failed_fast("stream_version", result, started);
    let started = Instant::now();
    let result = checkpoints.load("outage").await;
    assert_failed_fast("checkpoint load", result, started);
    let started = Instant::now();
    let result = checkpoints.save("outage", 1).await;
    assert_failed_fast("checkpoint save", result, started);
}

async fn wait_until_available(store: &PostgresEventStore, up: bool, within: Duration, why: &str) {
    let mut available = store.watch_available();
    tokio::time::timeout(within, available.wait_for(|a| *a == up))
        .await
        .unwrap_or_else(|_| panic!("{why} (within {within:?})"))
        .expect("the store is alive");
    assert_eq!(store.is_available(), up);
}

/// The server goes away and comes back, twice: noticed without traffic, every operation fails
/// fast meanwhile, a request already waiting for a connection is released, and afterwards
/// everything works again, including wake-ups from other processes.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_outage_fails_fast_and_recovers() {
    let schema = schema();
    let mut proxy = Proxy::start().await;
    let store = open(proxy.connect_options(), &schema).await;
    let checkpoints = PostgresCheckpoints::new(&store);
    // A second process on the same schema that does not go through the proxy.
    let direct = open(connect_options(), &schema).await;
    store
        .append("outage-1", ExpectedVersion::NoStream, events(2))
        .await
        .unwrap();
    checkpoints.save("outage", 2).await.unwrap();
    assert!(store.is_available());

    // No request needed: losing the listening connection starts a probe.
    proxy.cut().await;
    wait_until_available(
        &store,
        false,
        Duration::from_secs(3),
        "a cut server is noticed without traffic",
    )
    .await;
    assert_everything_fails_fast(&store, &checkpoints).await;
    assert!(direct.is_available(), "only the proxied store is cut off");

    proxy.restore().await;
    wait_until_available(
        &store,
        true,
        Duration::from_secs(5),
        "a restored server is noticed by the probe",
    )
    .await;
    let read = store.read_stream("outage-1", 1, 10).await.unwrap();
    assert_eq!(read.len(), 2, "nothing was stored during the outage");
    assert_eq!(checkpoints.load("outage").await.unwrap(), 2);
    let result = store
        .append("outage-1", ExpectedVersion::Exact(2), events(1))
        .await
        .unwrap();
    assert_eq!(result.stream_version, 3);

    // The listening connection is back: another process's append wakes this store.
    let mut head = store.watch_head();
    head.borrow_and_update();
    let other = direct
        .append("outage-2", ExpectedVersion::NoStream, events(1))
        .await
        .unwrap();
    tokio::time::timeout(
        Duration::from_secs(5),
        head.wait_for(|h| *h >= other.last_position),
    )
    .await
    .expect("NOTIFY reaches the store after the outage")
    .unwrap();

    // A request sent the moment the server goes away, before anyone knows, fails fast too.
    proxy.cut().await;
    let started = Instant::now();
    let result = store.read_all(0, 10).await;
    assert_failed_fast("a request at the start of the outage", result, started);
    proxy.restore().await;
    wait_until_available(&store, true, Duration::from_secs(5), "recovers again").await;
    assert_eq!(store.read_all(0, 10).await.unwrap().len(), 4);
}

/// A server that stops answering refuses nothing: the probe's timeout decides, and operations
/// still fail well before the acquire timeout.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_silent_server_fails_fast_and_recovers() {
    let schema = schema();
    let mut proxy = Proxy::start().await;
    let store = open(proxy.connect_options(), &schema).await;
    let checkpoints = PostgresCheckpoints::new(&store);
    store
        .append("outage-1", ExpectedVersion::NoStream, events(1))
        .await
        .unwrap();

    proxy.freeze().await;
    // Connect, ping, probe timeout (1 s by default), with room to spare.
    let started = Instant::now();
    let result = store.head_position().await;
    let took = started.elapsed();
    assert!(
        result.as_ref().is_err_and(|e| e.is_unavailable()),
        "a frozen server: {result:?}"
    );
    assert!(
        took < Duration::from_secs(4),
        "took {took:?}; the acquire timeout is {ACQUIRE_TIMEOUT:?}"
    );
    assert!(!store.is_available());
    assert_everything_fails_fast(&store, &checkpoints).await;

    proxy.restore().await;
    wait_until_available(
        &store,
        true,
        Duration::from_secs(5),
        "the server answers again",
    )
    .await;
    assert_eq!(store.stream_version("outage-1").await.unwrap(), Some(1));
}

/// A store that is closed reports unavailable, and its probe stops.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_closed_store_is_not_available() {
    let schema = schema();
    let store = open(connect_options(), &schema).await;
    assert!(store.is_available());
    store.close().await;
    assert!(!store.is_available());
    assert!(store.head_position().await.is_err());
}
