//! Starts the real `metachat` binary on free ports with a fresh data directory, and talks to it
//! over HTTP. Each test gets its own processes and data.
//!
//! `METACHAT_TEST_WIRING=production` runs the same tests against the production wiring: the
//! three services as separate processes on PostgreSQL, Kafka and Cassandra (started by
//! `scripts/infra/all.sh start`), with a fresh database, keyspace, topics and consumer groups
//! per test.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::Value;

/// How the platform under test is put together.
#[derive(Debug, Clone, PartialEq)]
pub enum Wiring {
    /// One `metachat` process, SQLite.
    Embedded,
    /// Three processes, each with its own SQLite file.
    Separate,
    /// Three processes on PostgreSQL, Kafka and Cassandra.
    Production(ProductionEnv),
}

/// The dependencies of a production-wired test, isolated per test.
#[derive(Debug, Clone, PartialEq)]
pub struct ProductionEnv {
    /// The PostgreSQL port the services use (a proxy's, to cut them off).
    pub db_port: String,
    pub database: String,
    pub keyspace: String,
    pub user_topic: String,
    pub diary_topic: String,
    pub kafka: String,
    /// The Cassandra node's CQL port.
    pub cassandra_port: String,
    /// `LOG_LEVEL` of the service processes.
    pub log_level: String,
}

fn infra_env(name: &str, default: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| default.to_owned())
}

impl ProductionEnv {
    /// A fresh database (created here), and names for a keyspace and topics the services
    /// create on start.
    pub async fn fresh() -> Self {
        Self::fresh_on(
            &infra_env("METACHAT_PG_PORT", "55432"),
            &infra_env("METACHAT_CASSANDRA_PORT", "19042"),
        )
        .await
    }

    /// As [`ProductionEnv::fresh`], on the PostgreSQL server and Cassandra node at these ports
    /// (a test's own).
    pub async fn fresh_on(pg_port: &str, cassandra_port: &str) -> Self {
        let id = uuid::Uuid::new_v4().simple().to_string();
        let database = format!("t_{}", &id[..16]);
        let admin_url = format!("postgres://metachat:metachat@127.0.0.1:{pg_port}/metachat");
        let mut admin = <sqlx::PgConnection as sqlx::Connection>::connect(&admin_url)
            .await
            .unwrap_or_else(|e| {
                panic!("PostgreSQL is not reachable at {admin_url} ({e}); run scripts/infra/all.sh start")
            });
        sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {database}")))
            .execute(&mut admin)
            .await
            .expect("create a test database");
        Self {
            db_port: pg_port.to_owned(),
            database,
            keyspace: format!("t_{}", &id[..16]),
            user_topic: format!("t-{}-user-events", &id[..16]),
            diary_topic: format!("t-{}-diary-events", &id[..16]),
            kafka: format!("127.0.0.1:{}", infra_env("METACHAT_KAFKA_PORT", "19092")),
            cassandra_port: cassandra_port.to_owned(),
            log_level: "info".into(),
        }
    }

    /// The environment of a service process (`group` names its consumer group).
    pub fn service_env(&self, group: &str) -> Vec<(&'static str, String)> {
        vec![
            ("DB_HOST", "127.0.0.1".into()),
            ("DB_PORT", self.db_port.clone()),
            ("DB_USER", "metachat".into()),
            ("DB_PASSWORD", "metachat".into()),
            ("DB_NAME", self.database.clone()),
            ("KAFKA_BOOTSTRAP_SERVERS", self.kafka.clone()),
            ("KAFKA_USER_EVENTS_TOPIC", self.user_topic.clone()),
            ("KAFKA_DIARY_EVENTS_TOPIC", self.diary_topic.clone()),
            ("KAFKA_CONSUMER_GROUP", format!("{}-{group}", self.keyspace)),
            (
                "CASSANDRA_HOSTS",
                format!("127.0.0.1:{}", self.cassandra_port),
            ),
            ("CASSANDRA_KEYSPACE", self.keyspace.clone()),
            ("LOG_LEVEL", self.log_level.clone()),
        ]
    }
}

/// The wiring chosen by `METACHAT_TEST_WIRING` (`embedded`, the default, or `production`).
pub async fn default_wiring() -> Wiring {
    match std::env::var("METACHAT_TEST_WIRING").as_deref() {
        Ok("production") => Wiring::Production(ProductionEnv::fresh().await),
        Ok("embedded") | Err(_) => Wiring::Embedded,
        Ok(other) => panic!("METACHAT_TEST_WIRING={other}: expected embedded or production"),
    }
}

/// A running platform: either one embedded process or three service processes.
pub struct Platform {
    children: Vec<(String, Child)>,
    pub data_dir: PathBuf,
    pub gateway_port: u16,
    pub user_port: u16,
    pub diary_port: u16,
    pub wiring: Wiring,
    /// Set in every process the platform runs, over the wiring's own (`start_with_env`).
    extra_env: Vec<(&'static str, String)>,
    client: reqwest::Client,
}

/// A port that was free a moment ago and that no other test of this process has been given.
fn free_port() -> u16 {
    static GIVEN: std::sync::Mutex<Vec<u16>> = std::sync::Mutex::new(Vec::new());
    let mut given = GIVEN.lock().unwrap_or_else(|e| e.into_inner());
    loop {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map(|a| a.port())
            .expect("a free port");
        if !given.contains(&port) {
            given.push(port);
            return port;
        }
    }
}

fn fresh_data_dir() -> PathBuf {
    let dir = std::env::temp_dir()
        .join("metachat-tests")
        .join(uuid::Uuid::new_v4().simple().to_string());
    std::fs::create_dir_all(&dir).expect("create data dir");
    dir
}

/// Runs `metachat` (the embedded platform) with `env` on free ports and a fresh data directory,
/// for a start that must be refused: its exit status and what it printed, once it exited
/// (killed, and a panic, if it is still running after 10 s).
pub async fn run_to_exit(env: &[(&str, String)]) -> (std::process::ExitStatus, String) {
    let data_dir = fresh_data_dir();
    let log = data_dir.join("refused.log");
    let mut all = vec![
        ("PORT", free_port().to_string()),
        ("USER_SERVICE_PORT", free_port().to_string()),
        ("DIARY_SERVICE_PORT", free_port().to_string()),
        ("DATA_DIR", data_dir.display().to_string()),
        ("LOG_FORMAT", "text".to_owned()),
    ];
    all.extend(env.iter().map(|(k, v)| (*k, v.clone())));
    let mut child = spawn(&[], &all, &log);
    let deadline = Instant::now() + Duration::from_secs(10);
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait for metachat") {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("metachat with {env:?} started instead of refusing");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    (status, std::fs::read_to_string(&log).unwrap_or_default())
}

fn spawn(args: &[&str], envs: &[(&str, String)], log: &Path) -> Child {
    let log_file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)
        .expect("open log file");
    let mut command = Command::new(env!("CARGO_BIN_EXE_metachat"));
    command
        .args(args)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        // Where scripts/model.sh put the sentence-embedding model (a test may point elsewhere).
        .env("METACHAT_MODEL_DIR", embeddings::model_dir_from_env())
        .env("LOG_LEVEL", "info")
        .env("LOG_FORMAT", "json")
        // Under `make test-coverage`, where the started binary writes its coverage profile.
        .envs(std::env::var("LLVM_PROFILE_FILE").map(|v| ("LLVM_PROFILE_FILE", v)))
        .stdout(Stdio::from(log_file.try_clone().expect("log handle")))
        .stderr(Stdio::from(log_file))
        .stdin(Stdio::null());
    for (k, v) in envs {
        command.env(k, v);
    }
    command.spawn().expect("spawn metachat")
}

impl Platform {
    /// The platform in the wiring `METACHAT_TEST_WIRING` asks for, with new data.
    pub async fn start() -> Self {
        Self::start_wired(default_wiring().await).await
    }

    /// The three services as separate processes (`metachat user-service` etc.) on SQLite.
    pub async fn start_separate() -> Self {
        Self::start_wired(Wiring::Separate).await
    }

    pub async fn start_wired(wiring: Wiring) -> Self {
        Self::start_with_env(wiring, &[]).await
    }

    /// As [`Platform::start_wired`], with `env` set in every process (a setting under test).
    pub async fn start_with_env(wiring: Wiring, env: &[(&'static str, String)]) -> Self {
        let mut platform = Self {
            children: Vec::new(),
            data_dir: fresh_data_dir(),
            gateway_port: free_port(),
            user_port: free_port(),
            diary_port: free_port(),
            wiring,
            extra_env: env.to_vec(),
            // Idle connections are dropped before the gateway's 10 s header read timeout would
            // close them under a request that is being sent.
            client: reqwest::Client::builder()
                .pool_idle_timeout(Duration::from_secs(5))
                .build()
                .expect("an HTTP client"),
        };
        platform.launch().await;
        platform
    }

    pub fn is_production(&self) -> bool {
        matches!(self.wiring, Wiring::Production(_))
    }

    /// The environment of one service process of a separate or production wiring.
    pub fn service_env(&self, service: &str, port: u16) -> Vec<(&'static str, String)> {
        let mut env = vec![("PORT", port.to_string())];
        match &self.wiring {
            Wiring::Production(production) => env.extend(production.service_env(service)),
            _ => env.push((
                "DATA_DIR",
                self.data_dir.join(service).display().to_string(),
            )),
        }
        env.push((
            "USER_SERVICE_ADDRESS",
            format!("127.0.0.1:{}", self.user_port),
        ));
        env.push((
            "DIARY_SERVICE_ADDRESS",
            format!("127.0.0.1:{}", self.diary_port),
        ));
        env.extend(self.extra_env.iter().cloned());
        env
    }

    /// Starts one more process running `service` (a replica), logging to `<name>.log`.
    pub fn spawn_process(&mut self, name: &str, service: &str, env: &[(&str, String)]) {
        let child = spawn(&[service], env, &self.data_dir.join(format!("{name}.log")));
        self.children.push((name.to_owned(), child));
    }

    fn spawn_all(&mut self) {
        if self.wiring == Wiring::Embedded {
            let mut env = vec![
                ("PORT", self.gateway_port.to_string()),
                ("USER_SERVICE_PORT", self.user_port.to_string()),
                ("DIARY_SERVICE_PORT", self.diary_port.to_string()),
                ("DATA_DIR", self.data_dir.display().to_string()),
            ];
            env.extend(self.extra_env.iter().cloned());
            let child = spawn(&[], &env, &self.data_dir.join("metachat.log"));
            self.children.push(("metachat".into(), child));
            return;
        }
        let user_env = self.service_env("user-service", self.user_port);
        self.spawn_process("user-service", "user-service", &user_env);
        let diary_env = self.service_env("diary-service", self.diary_port);
        self.spawn_process("diary-service", "diary-service", &diary_env);
        let mut gateway_env = vec![
            ("PORT", self.gateway_port.to_string()),
            // Authentication is off unless a test turns it on: allowed on loopback only.
            ("BIND_ADDRESS", "127.0.0.1".to_owned()),
            (
                "USER_SERVICE_ADDRESS",
                format!("127.0.0.1:{}", self.user_port),
            ),
            (
                "DIARY_SERVICE_ADDRESS",
                format!("127.0.0.1:{}", self.diary_port),
            ),
        ];
        gateway_env.extend(self.extra_env.iter().cloned());
        self.spawn_process("api-gateway", "api-gateway", &gateway_env);
    }

    /// Starts the processes; when a chosen port was taken in the meantime (another program
    /// got it between our check and the bind), tries again with new ports.
    async fn launch(&mut self) {
        for _ in 0..3 {
            self.spawn_all();
            match self.wait_ready().await {
                Ok(()) => return,
                Err(logs) if logs.contains("in use") => {
                    self.kill_all();
                    self.gateway_port = free_port();
                    self.user_port = free_port();
                    self.diary_port = free_port();
                }
                Err(logs) => panic!("the platform did not start: {logs}"),
            }
        }
        panic!("no free ports after 3 tries: {}", self.logs());
    }

    fn kill_all(&mut self) {
        for (_, mut child) in self.children.drain(..) {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    async fn wait_ready(&mut self) -> Result<(), String> {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let exited = self
                .children
                .iter_mut()
                .find_map(|(name, child)| Some((name.clone(), child.try_wait().ok()??)));
            if let Some((name, status)) = exited {
                return Err(format!(
                    "{name} exited early with {status}: {}",
                    self.logs()
                ));
            }
            let ready = self
                .client
                .get(self.url("/health/ready"))
                .send()
                .await
                .map(|r| r.status() == StatusCode::OK)
                .unwrap_or(false);
            if ready {
                return Ok(());
            }
            if Instant::now() > deadline {
                return Err(format!("platform not ready in 30 s: {}", self.logs()));
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Everything the processes logged so far.
    pub fn logs(&self) -> String {
        let mut all = String::new();
        let Ok(dir) = std::fs::read_dir(&self.data_dir) else {
            return all;
        };
        for path in dir.flatten().map(|e| e.path()) {
            if path.extension().is_some_and(|x| x == "log") {
                all.push_str(&format!("\n--- {} ---\n", path.display()));
                all.push_str(&std::fs::read_to_string(path).unwrap_or_default());
            }
        }
        all
    }

    /// Stops every process gracefully (SIGTERM) and waits for it to exit cleanly.
    pub fn stop(&mut self) {
        for (name, mut child) in self.children.drain(..).rev() {
            let _ = Command::new("kill")
                .args(["-TERM", &child.id().to_string()])
                .status();
            let deadline = Instant::now() + Duration::from_secs(20);
            loop {
                match child.try_wait() {
                    Ok(Some(status)) => {
                        assert!(status.success(), "{name} did not exit cleanly: {status}");
                        break;
                    }
                    _ if Instant::now() > deadline => {
                        let _ = child.kill();
                        panic!("{name} did not stop within 20 s after SIGTERM");
                    }
                    _ => std::thread::sleep(Duration::from_millis(20)),
                }
            }
        }
    }

    /// Stops one process of a separate-processes platform, leaving the others running.
    pub fn stop_service(&mut self, name: &str) {
        let index = self
            .children
            .iter()
            .position(|(n, _)| n == name)
            .unwrap_or_else(|| panic!("no process named {name}"));
        let (_, mut child) = self.children.remove(index);
        let _ = child.kill();
        let _ = child.wait();
    }

    /// Stops and starts again on the same data and ports.
    pub async fn restart(&mut self) {
        self.stop();
        self.launch().await;
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.gateway_port)
    }

    pub fn user_grpc(&self) -> String {
        format!("http://127.0.0.1:{}", self.user_port)
    }

    pub fn diary_grpc(&self) -> String {
        format!("http://127.0.0.1:{}", self.diary_port)
    }

    pub async fn request(&self, method: &str, path: &str, body: Option<Value>) -> Reply {
        let method = reqwest::Method::from_bytes(method.as_bytes()).expect("method");
        let mut request = self.client.request(method, self.url(path));
        if let Some(body) = body {
            request = request.json(&body);
        }
        Reply::from(request.send().await.expect("HTTP request")).await
    }

    /// As [`Platform::request`], with extra headers (an `Authorization`, an invitation).
    pub async fn request_with(
        &self,
        method: &str,
        path: &str,
        body: Option<Value>,
        headers: &[(&str, String)],
    ) -> Reply {
        let method = reqwest::Method::from_bytes(method.as_bytes()).expect("method");
        let mut request = self.client.request(method, self.url(path));
        for (name, value) in headers {
            request = request.header(*name, value);
        }
        if let Some(body) = body {
            request = request.json(&body);
        }
        Reply::from(request.send().await.expect("HTTP request")).await
    }

    /// Sends a raw body with a content type, for malformed-input tests.
    pub async fn send_raw(
        &self,
        method: &str,
        path: &str,
        content_type: &str,
        body: &str,
    ) -> Reply {
        let method = reqwest::Method::from_bytes(method.as_bytes()).expect("method");
        let response = self
            .client
            .request(method, self.url(path))
            .header("content-type", content_type)
            .body(body.to_owned())
            .send()
            .await
            .expect("HTTP request");
        Reply::from(response).await
    }

    pub async fn get(&self, path: &str) -> Reply {
        self.request("GET", path, None).await
    }

    /// A GET of a list that must reflect the write `token` names (the `X-Consistency-Token`
    /// of its answer): the first answer is the one to check, no polling.
    /// Reads `path` with a write's consistency token. Never a stale answer: either one that
    /// reflects the write, or `503` with `Retry-After` when the read models had not caught up
    /// within the service's wait, which a client retries, as this does for up to 20 s (a
    /// loaded machine starting many platforms at once can be that slow to join Kafka).
    pub async fn get_after(&self, path: &str, token: &str) -> Reply {
        let started = Instant::now();
        loop {
            let response = self
                .client
                .get(self.url(path))
                .header("x-consistency-token", token)
                .send()
                .await
                .expect("HTTP request");
            let reply = Reply::from(response).await;
            let retry = reply.status == reqwest::StatusCode::SERVICE_UNAVAILABLE
                && reply.headers.contains_key("retry-after");
            if !retry || started.elapsed() > Duration::from_secs(20) {
                return reply;
            }
            eprintln!(
                "{path}: the read models had not caught up with {token} after {:?}; retrying",
                started.elapsed()
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    pub async fn post(&self, path: &str, body: Value) -> Reply {
        self.request("POST", path, Some(body)).await
    }

    pub async fn put(&self, path: &str, body: Value) -> Reply {
        self.request("PUT", path, Some(body)).await
    }

    pub async fn delete(&self, path: &str) -> Reply {
        self.request("DELETE", path, None).await
    }

    /// Creates a user with unique names and returns its id.
    pub async fn create_user(&self) -> String {
        self.create_user_written().await.id()
    }

    /// Creates a user with unique names and returns the answer (its id, its token).
    pub async fn create_user_written(&self) -> Reply {
        let tag = uuid::Uuid::new_v4().simple().to_string();
        let reply = self
            .post(
                "/users",
                serde_json::json!({
                    "username": format!("u{}", &tag[..12]),
                    "email": format!("{}@example.com", &tag[..12]),
                    "firstName": "Test",
                    "lastName": "User",
                }),
            )
            .await;
        assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.body);
        reply
    }

    /// Polls `path` until `accept` holds (read models lag writes: by milliseconds embedded,
    /// by the relay, Kafka and the consumer in production). For a list that must show one
    /// write, [`Platform::get_after`] with the write's token needs no polling.
    pub async fn eventually(&self, path: &str, accept: impl Fn(&Reply) -> bool) -> Reply {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let reply = self.get(path).await;
            if accept(&reply) {
                return reply;
            }
            assert!(
                Instant::now() < deadline,
                "{path} never satisfied the check: {}",
                reply.body
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

impl Drop for Platform {
    fn drop(&mut self) {
        self.kill_all();
    }
}

/// An HTTP response, read whole.
#[derive(Debug)]
pub struct Reply {
    pub status: StatusCode,
    pub headers: reqwest::header::HeaderMap,
    pub body: Value,
}

impl Reply {
    async fn from(response: reqwest::Response) -> Self {
        let status = response.status();
        let headers = response.headers().clone();
        let text = response.text().await.expect("response body");
        let body = if text.is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text).unwrap_or(Value::String(text))
        };
        Self {
            status,
            headers,
            body,
        }
    }

    pub fn id(&self) -> String {
        self.body["id"]
            .as_str()
            .unwrap_or_else(|| panic!("no id in {}", self.body))
            .to_owned()
    }

    /// The `X-Consistency-Token` of a write's answer, checked to name the written resource at
    /// the version the body says.
    pub fn token(&self) -> String {
        let token = self
            .headers
            .get("x-consistency-token")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_else(|| panic!("no X-Consistency-Token on {}: {}", self.status, self.body))
            .to_owned();
        let id = self.body["id"]
            .as_str()
            .unwrap_or_else(|| panic!("no id in {}", self.body));
        let expected = format!("{id}:{}", self.body["version"]);
        assert_eq!(token, expected, "the token names the write: {}", self.body);
        token
    }

    /// Asserts an error reply: status, code, and (when given) the field named in the details.
    pub fn assert_error(&self, status: StatusCode, code: &str, field: Option<&str>) {
        assert_eq!(self.status, status, "{}", self.body);
        assert_eq!(self.body["error"]["code"], code, "{}", self.body);
        assert!(
            self.body["error"]["message"]
                .as_str()
                .is_some_and(|m| !m.is_empty()),
            "an error must say what is wrong: {}",
            self.body
        );
        assert!(self.body["requestId"].is_string(), "{}", self.body);
        if let Some(field) = field {
            let fields: Vec<&str> = self.body["error"]["details"]
                .as_array()
                .map(|d| d.iter().filter_map(|x| x["field"].as_str()).collect())
                .unwrap_or_default();
            assert!(
                fields.contains(&field),
                "expected field {field} in {}",
                self.body
            );
        }
    }
}

/// The JMX exporter agents of the Kafka broker and the Cassandra node `scripts/infra` starts,
/// by job (`kafka`, `cassandra`: also their metrics' prefix), with their ports as those scripts
/// take them.
pub fn jmx_exporters() -> [(&'static str, u16); 2] {
    let port = |variable: &str, default: u16| {
        std::env::var(variable)
            .ok()
            .and_then(|p| p.parse().ok())
            .unwrap_or(default)
    };
    [
        ("kafka", port("METACHAT_KAFKA_METRICS_PORT", 19071)),
        ("cassandra", port("METACHAT_CASSANDRA_METRICS_PORT", 19070)),
    ]
}
