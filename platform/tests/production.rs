//! What only the production wiring has: a Kafka outage during writes, several diary-service
//! replicas sharing a consumer group, stock clients reading the topics and tables, and the
//! read-model rebuild. Needs the servers of `scripts/infra/all.sh start` (`make test` starts
//! them); the outage test starts a broker of its own.

mod support;

use std::collections::HashSet;
use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::json;
use support::{Platform, ProductionEnv, Wiring};

fn infra_script(name: &str) -> PathBuf {
    PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../scripts/infra")).join(name)
}

async fn production() -> ProductionEnv {
    ProductionEnv::fresh().await
}

async fn write_entries(app: &Platform, user: &str, count: usize) -> Vec<String> {
    let mut ids = Vec::new();
    for i in 0..count {
        let reply = app
            .post(
                "/diary/entries",
                json!({ "userId": user, "title": format!("entry {i}"), "content": "words" }),
            )
            .await;
        assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.body);
        ids.push(reply.id());
    }
    ids
}

/// Every entry id in the user's list (all pages); `None` while the list answers 503 (the read
/// store is coming back).
async fn listed_entries(app: &Platform, user: &str) -> Option<Vec<String>> {
    let mut ids = Vec::new();
    let mut cursor = String::new();
    loop {
        let reply = app
            .get(&format!(
                "/diary/entries/user/{user}?limit=100&cursor={cursor}"
            ))
            .await;
        if reply.status == StatusCode::SERVICE_UNAVAILABLE {
            return None;
        }
        assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
        for entry in reply.body["entries"].as_array().unwrap() {
            ids.push(entry["id"].as_str().unwrap().to_owned());
        }
        match reply.body["nextCursor"].as_str() {
            Some(next) => cursor = next.to_owned(),
            None => return Some(ids),
        }
    }
}

async fn wait_for_entries(app: &Platform, user: &str, expected: &[String]) {
    let want: HashSet<_> = expected.iter().cloned().collect();
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        let listed = listed_entries(app, user).await.unwrap_or_default();
        let unique: HashSet<_> = listed.iter().cloned().collect();
        assert_eq!(
            unique.len(),
            listed.len(),
            "an entry is listed twice: {listed:?}"
        );
        if unique == want {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "read models never caught up: {} of {} entries\n{}",
            unique.len(),
            want.len(),
            app.logs()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test]
async fn a_kafka_outage_delays_the_read_models_but_loses_and_duplicates_nothing() {
    let [port, controller, metrics] = free_ports();
    let broker = OwnServer::start(
        "kafka.sh",
        vec![
            ("METACHAT_INFRA_DIR", own_state_dir("kafka")),
            ("METACHAT_KAFKA_PORT", port),
            ("METACHAT_KAFKA_CONTROLLER_PORT", controller),
            ("METACHAT_KAFKA_METRICS_PORT", metrics),
        ],
    );
    let mut env = production().await;
    env.kafka = format!("127.0.0.1:{}", broker.var("METACHAT_KAFKA_PORT"));
    let app = Platform::start_wired(Wiring::Production(env)).await;
    let user = app.create_user().await;
    let mut written = write_entries(&app, &user, 5).await;
    wait_for_entries(&app, &user, &written).await;

    broker.run("stop");
    // Readiness reports the broker down, but the service stays ready: Kafka is not critical.
    let ready = app
        .eventually("/health/ready", |r| {
            r.body["dependencies"]["diaryService"]["kafka"] == "not_serving"
        })
        .await;
    assert_eq!(ready.status, StatusCode::OK, "{}", ready.body);
    assert_eq!(
        ready.body["dependencies"]["diaryService"]["postgres"],
        "serving"
    );
    // Writes still succeed, and reads by id still see them: the event store has them.
    let during = write_entries(&app, &user, 10).await;
    let one = app.get(&format!("/diary/entries/{}", during[0])).await;
    assert_eq!(one.status, StatusCode::OK, "{}", one.body);
    let acknowledged = during.len();
    written.extend(during);

    broker.run("start");
    let back = Instant::now();
    wait_for_entries(&app, &user, &written).await;
    println!(
        "Kafka stopped under writes: 1 fault injected, {acknowledged} writes sent and {acknowledged} acknowledged while it was down (a read by id answered too), {} of {} entries listed once {:?} after it returned",
        written.len(),
        written.len(),
        back.elapsed()
    );
    app.eventually("/health/ready", |r| {
        r.body["dependencies"]["diaryService"]["kafka"] == "serving"
    })
    .await;
    let more = write_entries(&app, &user, 2).await;
    written.extend(more);
    wait_for_entries(&app, &user, &written).await;
}

/// Event ids a diary replica logged as projected.
/// The ids of the entry creations a replica's read-model consumer projected (its other
/// consumer, the entry analyzer, follows the same topic in a group of its own).
fn projected_ids(log: &str) -> Vec<String> {
    log.lines()
        .filter(|l| l.contains("\"message\":\"projected\""))
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|v| v["fields"]["event_type"] == "DiaryEntryCreated" && of_read_model_group(v))
        .filter_map(|v| v["fields"]["event_id"].as_str().map(str::to_owned))
        .collect()
}

/// How many assignments and revocations a replica has logged.
fn rebalance_count(log: &str) -> usize {
    read_model_group_lines(log)
        .filter(|v| v["message"] == "partitions assigned" || v["message"] == "partitions revoked")
        .count()
}

/// The log records of a diary replica's read-model consumer group (not of its followers',
/// such as the entry analyzer's, which get partitions of the same topic).
/// Whether a log record is of the read-model consumer group, not of a follower's (the entry
/// analyzer's and the entry indexer's groups consume the same topic).
fn of_read_model_group(record: &serde_json::Value) -> bool {
    let followers = [
        diary_service::analyzer::ANALYZER_NAME,
        diary_service::search::indexer::INDEXER_NAME,
    ];
    record["fields"]["group"].as_str().is_some_and(|g| {
        !followers
            .iter()
            .any(|f| g.strip_suffix(f).is_some_and(|rest| rest.ends_with('-')))
    })
}

fn read_model_group_lines(log: &str) -> impl DoubleEndedIterator<Item = serde_json::Value> + '_ {
    log.lines()
        .filter(|l| l.contains("\"message\":\"partitions "))
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(of_read_model_group)
}

/// The partitions the last assignment of its read-model group in a replica's log gave it.
fn assigned_partitions(log: &str) -> Vec<String> {
    read_model_group_lines(log)
        .rev()
        .find(|v| v["message"] == "partitions assigned")
        .and_then(|v| v["fields"]["partitions"].as_str().map(str::to_owned))
        .map(|p| {
            p.split(',')
                .filter(|s| !s.is_empty())
                .map(str::to_owned)
                .collect()
        })
        .unwrap_or_default()
}

#[tokio::test]
async fn diary_replicas_share_the_partitions_and_take_over_from_each_other() {
    let mut env = production().await;
    env.log_level = "debug".into();
    let mut app = Platform::start_wired(Wiring::Production(env)).await;
    let replica_port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let replica_env = app.service_env("diary-service", replica_port);
    app.spawn_process("diary-replica", "diary-service", &replica_env);

    let data_dir = app.data_dir.clone();
    let read = |name: &str| {
        std::fs::read_to_string(data_dir.join(format!("{name}.log"))).unwrap_or_default()
    };
    let deadline = Instant::now() + Duration::from_secs(60);
    let (first, second) = loop {
        let first = assigned_partitions(&read("diary-service"));
        let second = assigned_partitions(&read("diary-replica"));
        if !first.is_empty() && !second.is_empty() && first.len() + second.len() == 6 {
            break (first, second);
        }
        assert!(
            Instant::now() < deadline,
            "the group never split: {first:?} / {second:?}\n{}",
            app.logs()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert!(
        first.iter().all(|p| !second.contains(p)),
        "a partition assigned twice: {first:?} {second:?}"
    );

    let rebalances =
        || rebalance_count(&read("diary-service")) + rebalance_count(&read("diary-replica"));
    let settled = rebalances();

    let user = app.create_user().await;
    let mut written = write_entries(&app, &user, 20).await;
    wait_for_entries(&app, &user, &written).await;
    // The list shows an entry as soon as its row is written; the replica logs "projected"
    // right after: read the logs until they caught up too.
    let logged = Instant::now() + Duration::from_secs(10);
    let (by_first, by_second) = loop {
        let (first, second) = (
            projected_ids(&read("diary-service")),
            projected_ids(&read("diary-replica")),
        );
        let all: HashSet<_> = first.iter().chain(&second).collect();
        if all.len() >= 20 || Instant::now() > logged {
            break (first, second);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert!(
        !by_first.is_empty() && !by_second.is_empty(),
        "both replicas must do work"
    );
    let all: HashSet<_> = by_first.iter().chain(&by_second).collect();
    assert_eq!(all.len(), 20, "every entry's creation is projected");
    // Delivery is at least once: only a rebalance (say, a missed heartbeat on a loaded
    // machine) may hand an uncommitted event to the other replica. Without one, each event
    // is projected by exactly one replica, once.
    if rebalances() == settled {
        let first_set: HashSet<_> = by_first.iter().collect();
        assert!(
            by_second.iter().all(|id| !first_set.contains(id)),
            "an event was projected by both replicas"
        );
        assert_eq!(
            by_first.len() + by_second.len(),
            20,
            "each creation is projected once"
        );
    }

    app.stop_service("diary-replica");
    let after = write_entries(&app, &user, 10).await;
    written.extend(after);
    wait_for_entries(&app, &user, &written).await;
    assert_eq!(
        assigned_partitions(&read("diary-service")).len(),
        6,
        "the survivor must take every partition"
    );
}

#[tokio::test]
async fn stock_clients_read_topics_and_tables_and_a_rebuild_restores_the_read_models() {
    let env = production().await;
    let app = Platform::start_wired(Wiring::Production(env.clone())).await;
    let user = app.create_user().await;
    let written = write_entries(&app, &user, 3).await;
    wait_for_entries(&app, &user, &written).await;

    // Kafka's own console consumer reads the events: key = entry id, type in a header.
    let consumed = Command::new("bash")
        .arg(infra_script("kafka-console-consumer.sh"))
        .args([
            "--bootstrap-server",
            &env.kafka,
            "--topic",
            &env.diary_topic,
            "--from-beginning",
        ])
        // Three creations and, recorded by the entry analyzer, their three analyses.
        .args(["--max-messages", "6", "--timeout-ms", "60000"])
        .args([
            "--formatter-property",
            "print.key=true",
            "--formatter-property",
            "print.headers=true",
        ])
        .output()
        .expect("run the Kafka console consumer");
    let consumed = String::from_utf8_lossy(&consumed.stdout);
    for id in &written {
        assert!(
            consumed.contains(id.as_str()),
            "entry {id} not on the topic:\n{consumed}"
        );
    }
    assert!(
        consumed.contains("event-type:DiaryEntryCreated"),
        "{consumed}"
    );

    // cqlsh reads the read model.
    let cql = format!(
        "SELECT entry_id FROM {}.entries_by_user WHERE user_id = '{user}';",
        env.keyspace
    );
    let selected = Command::new("bash")
        .arg(infra_script("cql.sh"))
        .arg(&cql)
        .output()
        .expect("run cqlsh");
    let selected = String::from_utf8_lossy(&selected.stdout);
    for id in &written {
        assert!(
            selected.contains(id.as_str()),
            "entry {id} not in Cassandra:\n{selected}"
        );
    }

    // The read models are rebuilt from the event store by one command.
    let mut rebuild = Command::new(env!("CARGO_BIN_EXE_metachat"));
    rebuild
        .arg("rebuild-read-models")
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default());
    for (key, value) in env.service_env("rebuild") {
        rebuild.env(key, value);
    }
    let output = rebuild.output().expect("run metachat rebuild-read-models");
    assert!(
        output.status.success(),
        "rebuild failed: {}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    wait_for_entries(&app, &user, &written).await;
    let users = app.get("/users").await;
    assert_eq!(users.body["total"], 1, "{}", users.body);

    // Readiness reports every dependency of both services.
    let ready = app.get("/health/ready").await;
    for service in ["userService", "diaryService"] {
        for dependency in ["postgres", "kafka", "cassandra"] {
            assert_eq!(
                ready.body["dependencies"][service][dependency], "serving",
                "{}",
                ready.body
            );
        }
    }
}

/// Runs `metachat user-service` with `env` and returns its exit status and error output.
fn start_failure(env: &[(&str, String)]) -> (bool, String) {
    let mut command = Command::new(env!("CARGO_BIN_EXE_metachat"));
    command
        .arg("user-service")
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default());
    for (key, value) in env {
        command.env(key, value);
    }
    command.env("PORT", "0");
    let output = command.output().expect("run metachat user-service");
    (
        output.status.success(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

#[tokio::test]
async fn unreachable_or_missing_dependencies_stop_the_start_with_a_clear_error() {
    let env = production().await;
    let with = |overrides: &[(&'static str, &str)]| -> Vec<(&'static str, String)> {
        let mut all = env.service_env("user-service");
        for (key, value) in overrides {
            all.retain(|(k, _)| k != key);
            if !value.is_empty() {
                all.push((key, (*value).to_owned()));
            }
        }
        all
    };

    let (ok, stderr) = start_failure(&with(&[("KAFKA_BOOTSTRAP_SERVERS", "")]));
    assert!(
        !ok && stderr.contains("missing: KAFKA_BOOTSTRAP_SERVERS"),
        "{stderr}"
    );

    let (ok, stderr) = start_failure(&with(&[("DB_PORT", "1")]));
    assert!(
        !ok && stderr.contains("cannot open the event store at postgres://metachat@127.0.0.1:1/"),
        "{stderr}"
    );
    assert!(
        !stderr.contains("password") && !stderr.contains(":metachat@"),
        "no secret in errors: {stderr}"
    );

    let (ok, stderr) = start_failure(&with(&[("CASSANDRA_HOSTS", "127.0.0.1:1")]));
    assert!(
        !ok && stderr.contains("Cassandra") && stderr.contains("127.0.0.1:1"),
        "{stderr}"
    );

    let (ok, stderr) = start_failure(&with(&[("CASSANDRA_KEYSPACE", "bad keyspace!")]));
    assert!(!ok && stderr.contains("CASSANDRA_KEYSPACE"), "{stderr}");
}

#[tokio::test]
async fn a_bad_variable_is_refused_before_anything_connects() {
    let env = production().await;
    // PostgreSQL unreachable as well: a refusal that names the variable, not the database,
    // shows that every variable was read before the first connection.
    let with = |name: &'static str, value: &str| -> Vec<(&'static str, String)> {
        let mut all = env.service_env("user-service");
        all.retain(|(k, _)| *k != name && *k != "DB_PORT");
        all.push(("DB_PORT", "1".into()));
        all.push((name, value.to_owned()));
        all
    };
    for (name, value) in [
        ("KAFKA_TOPIC_PARTITIONS", "0"),
        ("KAFKA_REPLICATION_FACTOR", "many"),
        ("KAFKA_USER_EVENTS_TOPIC", "user events"),
        ("CASSANDRA_KEYSPACE", "bad keyspace!"),
        ("CASSANDRA_HOSTS", "127.0.0.1:99999"),
        ("DB_PORT", "0"),
    ] {
        let (ok, stderr) = start_failure(&with(name, value));
        assert!(!ok, "{name}={value} started");
        assert!(
            stderr.contains(&format!("{name}={value:?}")),
            "{name}={value}: the error must name the variable: {stderr}"
        );
        assert!(
            !stderr.contains("cannot open the event store"),
            "{name}={value}: connected before reading every variable: {stderr}"
        );
    }
}

/// A TCP proxy from a local port to the test PostgreSQL server, which the test can cut off
/// (refusing connections and dropping open ones, like a server that went away) and restore.
struct PgProxy {
    port: u16,
    upstream: String,
    task: Option<tokio::task::JoinHandle<()>>,
}

impl PgProxy {
    fn start() -> Self {
        let upstream = format!(
            "127.0.0.1:{}",
            std::env::var("METACHAT_PG_PORT").unwrap_or_else(|_| "55432".into())
        );
        let listener = proxy_listener(0);
        let port = listener.local_addr().expect("proxy address").port();
        Self {
            port,
            task: Some(tokio::spawn(forward(listener, upstream.clone()))),
            upstream,
        }
    }

    async fn cut(&mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
            // Dropping the task drops the listener and every open connection.
            let _ = task.await;
        }
    }

    async fn restore(&mut self) {
        self.cut().await;
        self.task = Some(tokio::spawn(forward(
            proxy_listener(self.port),
            self.upstream.clone(),
        )));
    }
}

fn proxy_listener(port: u16) -> tokio::net::TcpListener {
    let socket = tokio::net::TcpSocket::new_v4().expect("socket");
    // The port is bound again after a cut, while its old connections may linger in TIME_WAIT.
    socket.set_reuseaddr(true).expect("SO_REUSEADDR");
    socket
        .bind(([127, 0, 0, 1], port).into())
        .expect("bind the proxy port");
    socket.listen(64).expect("listen")
}

async fn forward(listener: tokio::net::TcpListener, upstream: String) {
    // Owned here, so that aborting this task drops every connection.
    let mut connections = tokio::task::JoinSet::new();
    loop {
        let Ok((mut client, _)) = listener.accept().await else {
            continue;
        };
        let upstream = upstream.clone();
        connections.spawn(async move {
            if let Ok(mut server) = tokio::net::TcpStream::connect(upstream).await {
                let _ = tokio::io::copy_bidirectional(&mut client, &mut server).await;
            }
        });
        while connections.try_join_next().is_some() {}
    }
}

/// The user service's gRPC health status of `service`.
async fn grpc_health(address: &str, service: &str) -> i32 {
    let channel = tonic::transport::Endpoint::from_shared(address.to_owned())
        .expect("endpoint")
        .connect()
        .await
        .expect("the user service answers");
    tonic_health::pb::health_client::HealthClient::new(channel)
        .check(tonic_health::pb::HealthCheckRequest {
            service: service.to_owned(),
        })
        .await
        .expect("health check")
        .into_inner()
        .status
}

/// Polls until `service` reports `want`; returns how long that took, failing after `within`.
async fn wait_health(address: &str, service: &str, want: i32, within: Duration) -> Duration {
    let started = Instant::now();
    loop {
        if grpc_health(address, service).await == want {
            return started.elapsed();
        }
        assert!(
            started.elapsed() < within,
            "{service} not {want} within {within:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn readiness_follows_the_event_store_through_a_postgresql_outage() {
    use tonic_health::pb::health_check_response::ServingStatus;
    const SERVICE: &str = "metachat.user.v1.UserService";
    const POSTGRES: &str = "metachat.dependency.postgres";
    let (serving, not_serving) = (
        ServingStatus::Serving as i32,
        ServingStatus::NotServing as i32,
    );

    let mut proxy = PgProxy::start();
    let mut env = production().await;
    env.db_port = proxy.port.to_string();
    let app = Platform::start_wired(Wiring::Production(env)).await;
    let users = app.user_grpc();
    app.create_user().await;
    assert_eq!(grpc_health(&users, SERVICE).await, serving);

    proxy.cut().await;
    let took = wait_health(&users, SERVICE, not_serving, Duration::from_secs(2)).await;
    assert_eq!(grpc_health(&users, POSTGRES).await, not_serving);
    let ready = app.get("/health/ready").await;
    assert_eq!(
        ready.status,
        StatusCode::SERVICE_UNAVAILABLE,
        "{}",
        ready.body
    );
    assert_eq!(
        ready.body["dependencies"]["userService"]["postgres"], "not_serving",
        "{}",
        ready.body
    );
    // Requests see the same: they fail at once, not after the pool's acquire timeout.
    let started = Instant::now();
    let write = app
        .post(
            "/users",
            json!({
                "username": "during_outage",
                "email": "during@example.com",
                "firstName": "Dur",
                "lastName": "Ing",
            }),
        )
        .await;
    write.assert_error(StatusCode::SERVICE_UNAVAILABLE, "unavailable", None);
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "a write took {:?} to fail",
        started.elapsed()
    );
    eprintln!("NOT_SERVING {took:?} after the cut");

    proxy.restore().await;
    wait_health(&users, SERVICE, serving, Duration::from_secs(5)).await;
    assert_eq!(grpc_health(&users, POSTGRES).await, serving);
    app.eventually("/health/ready", |r| r.status == StatusCode::OK)
        .await;
    app.create_user().await;
}

/// Fault: the diary service is killed (SIGKILL) while a client writes entries, then started
/// again. The client behaves as a careful one does: it retries a write whose answer it did not
/// get, with the same `Idempotency-Key`. Afterwards every acknowledged write is in the event
/// store and listed exactly once, and nothing else is.
#[tokio::test]
async fn a_diary_service_killed_during_writes_loses_and_doubles_nothing() {
    const WRITES: usize = 60;
    let env = production().await;
    let mut app = Platform::start_wired(Wiring::Production(env)).await;
    let user = app.create_user().await;
    let base = app.url("");
    let (writes, writer) = careful_writer(base, user.clone(), WRITES);
    // Let some writes land, then kill the diary service mid-stream.
    writes.wait_for(WRITES / 3).await;
    app.stop_service("diary-service");
    tokio::time::sleep(Duration::from_millis(500)).await;
    let diary_env = app.service_env("diary-service", app.diary_port);
    app.spawn_process("diary-service", "diary-service", &diary_env);
    tokio::time::timeout(Duration::from_secs(120), writer)
        .await
        .expect("the writes completed after the restart")
        .unwrap();

    let found = writes.check_stored_once(&app, &user, WRITES).await;
    println!(
        "kill -9 under writes: {} requests sent, 1 fault injected, {} writes acknowledged, {found} found in the store and listed once",
        writes.sent(),
        writes.acknowledged().len(),
    );
}

/// What a careful client did: it writes entries one after another, each with its own
/// `Idempotency-Key`, and sends a write again (same key) until it is acknowledged.
#[derive(Default)]
struct Writes {
    sent: std::sync::atomic::AtomicUsize,
    /// Answers 503 `unavailable`, or no answer at all.
    refused: std::sync::atomic::AtomicUsize,
    acknowledged: std::sync::Mutex<Vec<String>>,
}

impl Writes {
    fn sent(&self) -> usize {
        self.sent.load(std::sync::atomic::Ordering::SeqCst)
    }

    fn refused(&self) -> usize {
        self.refused.load(std::sync::atomic::Ordering::SeqCst)
    }

    fn acknowledged(&self) -> Vec<String> {
        self.acknowledged.lock().unwrap().clone()
    }

    /// Waits until `count` writes were acknowledged.
    async fn wait_for(&self, count: usize) {
        let deadline = Instant::now() + Duration::from_secs(60);
        while self.acknowledged.lock().unwrap().len() < count {
            assert!(Instant::now() < deadline, "no writes landed");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Checks that every acknowledged write is one entry, readable by id from the event
    /// store and listed exactly once, and that nothing else is listed; returns how many.
    async fn check_stored_once(&self, app: &Platform, user: &str, writes: usize) -> usize {
        let acknowledged = self.acknowledged();
        let unique: HashSet<&String> = acknowledged.iter().collect();
        assert_eq!(
            unique.len(),
            writes,
            "one entry per write, retries included"
        );
        for id in &acknowledged {
            let reply = app.get(&format!("/diary/entries/{id}")).await;
            assert_eq!(reply.status, StatusCode::OK, "{id}: {}", reply.body);
        }
        wait_for_entries(app, user, &acknowledged).await;
        unique.len()
    }
}

/// Starts a careful client writing `count` entries for `user` through the gateway at `base`.
fn careful_writer(
    base: String,
    user: String,
    count: usize,
) -> (std::sync::Arc<Writes>, tokio::task::JoinHandle<()>) {
    use std::sync::atomic::Ordering::SeqCst;
    let writes = std::sync::Arc::new(Writes::default());
    let task = {
        let writes = writes.clone();
        let key = uuid::Uuid::new_v4().simple().to_string();
        tokio::spawn(async move {
            let client = reqwest::Client::builder()
                .timeout(Duration::from_secs(5))
                .pool_idle_timeout(Duration::from_secs(5))
                .build()
                .unwrap();
            for i in 0..count {
                loop {
                    writes.sent.fetch_add(1, SeqCst);
                    let reply = client
                        .post(format!("{base}/diary/entries"))
                        .header("idempotency-key", format!("{key}-{i}"))
                        .json(&json!({"userId": user, "title": format!("entry {i}"), "content": "words"}))
                        .send()
                        .await;
                    match reply {
                        Ok(r) if r.status() == StatusCode::CREATED => {
                            let body: serde_json::Value = r.json().await.unwrap();
                            writes
                                .acknowledged
                                .lock()
                                .unwrap()
                                .push(body["id"].as_str().unwrap().to_owned());
                            break;
                        }
                        Ok(r) if r.status() != StatusCode::SERVICE_UNAVAILABLE => {
                            panic!(
                                "write {i}: {} {}",
                                r.status(),
                                r.text().await.unwrap_or_default()
                            )
                        }
                        // 503 while a dependency is down, or no answer: the same request again.
                        _ => {
                            writes.refused.fetch_add(1, SeqCst);
                            tokio::time::sleep(Duration::from_millis(100)).await;
                        }
                    }
                }
            }
        })
    };
    (writes, task)
}

/// A server of this test's own, started by our script `script` with `env` (its own state
/// directory and ports), so stopping it disturbs no other test. Stopped when dropped.
struct OwnServer {
    script: &'static str,
    env: Vec<(&'static str, String)>,
}

impl OwnServer {
    fn start(script: &'static str, env: Vec<(&'static str, String)>) -> Self {
        let server = Self { script, env };
        server.run("start");
        server
    }

    fn run(&self, action: &str) {
        let status = Command::new("bash")
            .arg(infra_script(self.script))
            .arg(action)
            .envs(self.env.iter().map(|(k, v)| (*k, v.as_str())))
            .status()
            .expect("run the infra script");
        assert!(status.success(), "{} {action} failed", self.script);
    }

    fn var(&self, name: &str) -> String {
        self.env
            .iter()
            .find(|(k, _)| *k == name)
            .map(|(_, v)| v.clone())
            .unwrap_or_default()
    }
}

impl Drop for OwnServer {
    fn drop(&mut self) {
        let _ = Command::new("bash")
            .arg(infra_script(self.script))
            .arg("stop")
            .envs(self.env.iter().map(|(k, v)| (*k, v.as_str())))
            .status();
        if let Some((_, dir)) = self.env.iter().find(|(k, _)| *k == "METACHAT_INFRA_DIR") {
            let _ = std::fs::remove_dir_all(dir);
        }
    }
}

/// A free local port, and a fresh state directory for an own server.
fn free_port() -> String {
    let [port] = free_ports();
    port
}

/// `N` distinct free local ports: each is held until all are chosen (a port let go at once
/// may be handed out again by the next bind, and one server's two ports would collide).
fn free_ports<const N: usize>() -> [String; N] {
    let held: Vec<std::net::TcpListener> = (0..N)
        .map(|_| std::net::TcpListener::bind("127.0.0.1:0").expect("a free port"))
        .collect();
    std::array::from_fn(|i| {
        held[i]
            .local_addr()
            .map(|a| a.port().to_string())
            .expect("a bound port")
    })
}

fn own_state_dir(what: &str) -> String {
    let dir = std::env::temp_dir().join(format!(
        "metachat-own-{what}-{}",
        uuid::Uuid::new_v4().simple()
    ));
    dir.display().to_string()
}

/// Fault: PostgreSQL (a server of this test's own) is restarted while a careful client writes
/// entries. Meanwhile writes answer 503 at once, with `Retry-After`; afterwards they succeed
/// again without any service being restarted, and every acknowledged write is in the event
/// store and listed exactly once.
#[tokio::test]
async fn a_postgresql_restart_fails_writes_fast_and_they_recover_without_restarting_services() {
    const WRITES: usize = 40;
    let postgres = OwnServer::start(
        "postgres.sh",
        vec![
            ("METACHAT_INFRA_DIR", own_state_dir("postgres")),
            ("METACHAT_PG_PORT", free_port()),
        ],
    );
    let cassandra = std::env::var("METACHAT_CASSANDRA_PORT").unwrap_or_else(|_| "19042".into());
    let env = ProductionEnv::fresh_on(&postgres.var("METACHAT_PG_PORT"), &cassandra).await;
    let app = Platform::start_wired(Wiring::Production(env)).await;
    let user = app.create_user().await;
    let (writes, writer) = careful_writer(app.url(""), user.clone(), WRITES);
    writes.wait_for(WRITES / 3).await;

    postgres.run("stop");
    let started = Instant::now();
    let during = app
        .post(
            "/diary/entries",
            json!({"userId": user, "title": "", "content": "During the restart."}),
        )
        .await;
    during.assert_error(StatusCode::SERVICE_UNAVAILABLE, "unavailable", None);
    assert!(
        during.headers.get("retry-after").is_some(),
        "{:?}",
        during.headers
    );
    let answered_in = started.elapsed();
    assert!(
        answered_in < Duration::from_secs(2),
        "a write took {answered_in:?} to fail"
    );
    tokio::time::sleep(Duration::from_secs(1)).await;
    postgres.run("start");

    tokio::time::timeout(Duration::from_secs(120), writer)
        .await
        .expect("the writes completed after the restart")
        .unwrap();
    let found = writes.check_stored_once(&app, &user, WRITES).await;
    println!(
        "PostgreSQL restart under writes: {} requests sent, 1 fault injected ({} writes refused with 503 or unanswered meanwhile, the first in {answered_in:?}), {} writes acknowledged, {found} found in the store and listed once, no service restarted",
        writes.sent() + 1,
        writes.refused() + 1,
        writes.acknowledged().len(),
    );
}

/// Fault: Cassandra (a node of this test's own) is stopped while a client writes. Meanwhile
/// writes succeed (the event store is PostgreSQL), reads by id too, and lists answer 503 with
/// `Retry-After`; when the node is back, the read models catch up with every write, once.
#[tokio::test]
async fn a_cassandra_outage_fails_lists_with_retry_after_while_writes_go_on_and_catch_up() {
    let [port, storage, ssl_storage, metrics] = free_ports();
    let cassandra = OwnServer::start(
        "cassandra.sh",
        vec![
            ("METACHAT_INFRA_DIR", own_state_dir("cassandra")),
            ("METACHAT_CASSANDRA_PORT", port),
            ("METACHAT_CASSANDRA_STORAGE_PORT", storage),
            ("METACHAT_CASSANDRA_SSL_STORAGE_PORT", ssl_storage),
            ("METACHAT_CASSANDRA_METRICS_PORT", metrics),
            ("METACHAT_CASSANDRA_KEEP_DATA", "1".into()),
            ("METACHAT_CASSANDRA_HEAP", "512M".into()),
        ],
    );
    let pg = std::env::var("METACHAT_PG_PORT").unwrap_or_else(|_| "55432".into());
    let env = ProductionEnv::fresh_on(&pg, &cassandra.var("METACHAT_CASSANDRA_PORT")).await;
    let app = Platform::start_wired(Wiring::Production(env)).await;
    let user = app.create_user().await;
    let mut written = write_entries(&app, &user, 5).await;
    wait_for_entries(&app, &user, &written).await;

    cassandra.run("stop");
    let mut sent = 0;
    let list = app.get(&format!("/diary/entries/user/{user}")).await;
    sent += 1;
    list.assert_error(StatusCode::SERVICE_UNAVAILABLE, "unavailable", None);
    assert!(
        list.headers.get("retry-after").is_some(),
        "{:?}",
        list.headers
    );
    let during = write_entries(&app, &user, 10).await;
    sent += during.len();
    for id in &during {
        let read = app.get(&format!("/diary/entries/{id}")).await;
        sent += 1;
        assert_eq!(read.status, StatusCode::OK, "{}", read.body);
    }
    written.extend(during.iter().cloned());

    cassandra.run("start");
    let back = Instant::now();
    wait_for_entries(&app, &user, &written).await;
    println!(
        "Cassandra stopped under writes: 1 fault injected, {sent} requests sent while it was down, {} writes acknowledged meanwhile (a list answered 503 with Retry-After, reads by id 200), {} of {} entries listed once {:?} after it returned",
        during.len(),
        written.len(),
        written.len(),
        back.elapsed()
    );
}
