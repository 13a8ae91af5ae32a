//! A real Prometheus (Debian's, installed by `scripts/check-monitoring.sh`) scrapes the
//! running platform with the project's alert rules: it sees the gateway and both services up
//! (and in the production wiring the JMX exporters of the Kafka broker and Cassandra node, with
//! what the infrastructure alerts watch),
//! records the requests, and fires `ServiceDown` when the diary service is killed, all read
//! through the Prometheus HTTP API. The rules are the ones in `config/prometheus/rules`, with
//! their `for:` durations shortened so the test takes seconds, not minutes. Runs on the
//! embedded platform (one process answers on all three ports, so killing it takes all three
//! down), and with `METACHAT_TEST_WIRING=production` as three processes.

mod support;

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::Value;
use support::{Platform, Wiring};

/// A Prometheus server of the test's own, stopped when dropped.
struct Prometheus {
    child: Child,
    url: String,
    _dir: TempDir,
}

struct TempDir(std::path::PathBuf);

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

/// A query string value, percent-encoded.
fn encode(value: &str) -> String {
    value
        .bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// Every panel query of the provisioned Grafana dashboards, with its panel's title.
fn dashboard_queries() -> Vec<(String, String)> {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../config/grafana/dashboards");
    let mut queries = Vec::new();
    for file in std::fs::read_dir(dir).unwrap() {
        let dashboard: Value =
            serde_json::from_str(&std::fs::read_to_string(file.unwrap().path()).unwrap()).unwrap();
        for panel in dashboard["panels"].as_array().unwrap() {
            for target in panel["targets"].as_array().unwrap() {
                queries.push((
                    panel["title"].as_str().unwrap_or_default().to_owned(),
                    target["expr"].as_str().unwrap().to_owned(),
                ));
            }
        }
    }
    queries
}

impl Prometheus {
    /// Starts Prometheus scraping the platform's three processes every second, with the
    /// project's rules evaluated every second.
    async fn scraping(app: &Platform) -> Self {
        let dir = TempDir(std::env::temp_dir().join(format!(
            "metachat-prometheus-{}",
            uuid::Uuid::new_v4().simple()
        )));
        std::fs::create_dir_all(&dir.0).unwrap();
        for file in ["metachat.yml", "infrastructure.yml"] {
            let rules = std::fs::read_to_string(format!(
                "{}/../config/prometheus/rules/{file}",
                env!("CARGO_MANIFEST_DIR")
            ))
            .unwrap()
            .replace("for: 15m", "for: 2s")
            .replace("for: 1m", "for: 2s")
            .replace("for: 5m", "for: 2s");
            std::fs::write(dir.0.join(file), rules).unwrap();
        }
        let job = |name: &str, port: u16| {
            format!(
                "  - job_name: {name}\n    metrics_path: /metrics\n    static_configs:\n      - targets: [\"127.0.0.1:{port}\"]\n"
            )
        };
        let mut jobs = vec![
            job("api-gateway", app.gateway_port),
            job("user-service", app.user_port),
            job("diary-service", app.diary_port),
        ];
        if app.is_production() {
            jobs.extend(
                support::jmx_exporters()
                    .iter()
                    .map(|(name, port)| job(name, *port)),
            );
        }
        let config = format!(
            "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\nrule_files:\n  - metachat.yml\n  - infrastructure.yml\nscrape_configs:\n{}",
            jobs.concat()
        );
        std::fs::write(dir.0.join("prometheus.yml"), config).unwrap();
        let port = free_port();
        let log = std::fs::File::create(dir.0.join("prometheus.log")).unwrap();
        let child = Command::new("prometheus")
            .arg(format!(
                "--config.file={}",
                dir.0.join("prometheus.yml").display()
            ))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.0.join("data").display()
            ))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .stdout(Stdio::from(log.try_clone().unwrap()))
            .stderr(Stdio::from(log))
            .spawn()
            .expect("run prometheus (Debian's package; scripts/check-monitoring.sh installs it)");
        let prometheus = Self {
            child,
            url: format!("http://127.0.0.1:{port}"),
            _dir: dir,
        };
        prometheus
            .until("ready", async |p| {
                reqwest::get(format!("{}/-/ready", p.url))
                    .await
                    .is_ok_and(|r| r.status() == StatusCode::OK)
            })
            .await;
        prometheus
    }

    async fn api(&self, path: &str) -> Value {
        let reply = reqwest::get(format!("{}{path}", self.url))
            .await
            .expect("the Prometheus API answers");
        assert_eq!(reply.status(), StatusCode::OK, "{path}");
        let body: Value = reply.json().await.unwrap();
        assert_eq!(body["status"], "success", "{body}");
        body["data"].clone()
    }

    /// Polls `check` for up to 60 s.
    async fn until(&self, what: &str, check: impl AsyncFn(&Self) -> bool) {
        let deadline = Instant::now() + Duration::from_secs(60);
        while !check(self).await {
            assert!(
                Instant::now() < deadline,
                "Prometheus: never {what}:\n{}",
                std::fs::read_to_string(self._dir.0.join("prometheus.log")).unwrap_or_default()
            );
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }

    /// The health of each scrape target, by job.
    async fn targets(&self) -> Vec<(String, String)> {
        let data = self.api("/api/v1/targets").await;
        data["activeTargets"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| {
                (
                    t["labels"]["job"].as_str().unwrap().to_owned(),
                    t["health"].as_str().unwrap().to_owned(),
                )
            })
            .collect()
    }

    /// The series an instant query gives (failing the test on a query Prometheus refuses).
    async fn evaluate(&self, promql: &str) -> Vec<Value> {
        let data = self
            .api(&format!("/api/v1/query?query={}", encode(promql)))
            .await;
        data["result"].as_array().cloned().unwrap_or_default()
    }

    /// The value of an instant query's first series, if any.
    async fn query(&self, promql: &str) -> Option<f64> {
        let data = self
            .api(&format!("/api/v1/query?query={}", encode(promql)))
            .await;
        data["result"].as_array()?.first()?["value"][1]
            .as_str()?
            .parse()
            .ok()
    }

    /// The jobs `alert` fires for.
    async fn firing(&self, alert: &str) -> Vec<String> {
        let data = self.api("/api/v1/alerts").await;
        data["alerts"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|a| a["labels"]["alertname"] == alert && a["state"] == "firing")
            .map(|a| a["labels"]["job"].as_str().unwrap_or_default().to_owned())
            .collect()
    }
}

#[tokio::test]
async fn prometheus_scrapes_every_process_and_fires_service_down_when_one_is_killed() {
    let mut app = Platform::start().await;
    let prometheus = Prometheus::scraping(&app).await;
    // The platform's three, and in the production wiring the broker's and node's exporters.
    let expected = if app.is_production() { 5 } else { 3 };
    prometheus
        .until("saw every target up", async |p| {
            let targets = p.targets().await;
            targets.len() == expected && targets.iter().all(|(_, health)| health == "up")
        })
        .await;
    if app.is_production() {
        // What the infrastructure alerts watch is scraped, and healthy.
        for (series, healthy) in [
            (
                "max(kafka_server_replicamanager_underreplicatedpartitions)",
                0.0,
            ),
            (
                "max(kafka_controller_kafkacontroller_activecontrollercount)",
                1.0,
            ),
            (
                "max(kafka_controller_kafkacontroller_offlinepartitionscount)",
                0.0,
            ),
        ] {
            prometheus
                .until(&format!("read {series}"), async |p| {
                    p.query(series).await == Some(healthy)
                })
                .await;
        }
        prometheus
            .until("read cassandra_compaction_pending_tasks", async |p| {
                p.query("max(cassandra_compaction_pending_tasks)")
                    .await
                    .is_some()
            })
            .await;
    }

    let user = app.create_user().await;
    let written = app
        .post(
            "/diary/entries",
            serde_json::json!({"userId": user, "title": "", "content": "Scraped."}),
        )
        .await;
    assert_eq!(written.status, StatusCode::CREATED, "{}", written.body);
    // `max`: in the embedded platform the three targets are one process, scraped three times.
    let recorded =
        r#"max(metachat_http_requests_total{route="/users",method="POST",status="201"})"#;
    prometheus
        .until("recorded the requests", async |p| {
            p.query(recorded).await == Some(1.0)
                && p.query("max(metachat_diary_entries_created_total)").await == Some(1.0)
        })
        .await;
    // Every query of the dashboards is one this Prometheus evaluates (Grafana itself cannot be
    // installed here: this is what stands in for seeing its panels), and once the rates have
    // two samples, the panels about processes, requests and entries show the ones just made.
    // (A counter's first value is no increase: a series that counted once has no rate yet;
    // the gateway's keeps counting, its readiness polls among them.)
    prometheus
        .until("has a rate of the requests", async |p| {
            p.query("sum(rate(metachat_http_requests_total[1m]))")
                .await
                .is_some_and(|rate| rate > 0.0)
        })
        .await;
    let (mut evaluated, mut with_data) = (0, Vec::new());
    for (panel, expr) in dashboard_queries() {
        let result = prometheus.evaluate(&expr).await;
        evaluated += 1;
        if !result.is_empty() {
            with_data.push(panel);
        }
    }
    assert!(evaluated >= 24, "{evaluated} queries");
    for panel in [
        "Processes up",
        "HTTP requests per second, by status",
        "HTTP latency",
        "Diary entries per hour",
    ] {
        assert!(
            with_data.iter().any(|p| p == panel),
            "the panel {panel:?} shows nothing for the requests made; with data: {with_data:?}"
        );
    }
    let with_data = with_data.len();
    for alert in [
        "ServiceDown",
        "KafkaDown",
        "CassandraDown",
        "KafkaUnderReplicatedPartitions",
        "KafkaOfflinePartitions",
    ] {
        assert_eq!(
            prometheus.firing(alert).await,
            Vec::<String>::new(),
            "{alert}"
        );
    }

    let started = Instant::now();
    let killed = if app.wiring == Wiring::Embedded {
        app.stop();
        vec!["api-gateway", "diary-service", "user-service"]
    } else {
        app.stop_service("diary-service");
        vec!["diary-service"]
    };
    prometheus
        .until("fired ServiceDown", async |p| {
            let mut firing = p.firing("ServiceDown").await;
            firing.sort();
            firing == killed
        })
        .await;
    println!(
        "Prometheus: {expected} targets up, requests recorded, {evaluated} dashboard queries evaluated ({with_data} with data); ServiceDown fired for {killed:?} {:?} after the kill",
        started.elapsed()
    );
}
