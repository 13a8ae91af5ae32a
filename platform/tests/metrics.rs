//! `/metrics` on every process, scraped as Prometheus would: the gateway's HTTP port, and
//! each service's gRPC port over HTTP/1.1. The text parses in the exposition format, every
//! family has its help and type, no label holds an id, and the counters count what the
//! requests did. Runs on the embedded platform (one process: one scrape shows everything), on
//! three separate processes, and with `METACHAT_TEST_WIRING=production` over PostgreSQL, Kafka
//! and Cassandra.

mod support;

use std::collections::{BTreeMap, BTreeSet};

use reqwest::StatusCode;
use serde_json::json;
use support::{Platform, Wiring, default_wiring};

/// One scrape: the samples by series (`name{labels}`), after checking the text.
struct Scrape {
    samples: BTreeMap<String, f64>,
    /// The families, by `# TYPE`.
    families: BTreeSet<String>,
    text: String,
}

impl Scrape {
    async fn of(url: &str) -> Self {
        let reply = reqwest::get(url).await.expect("scrape");
        assert_eq!(reply.status(), StatusCode::OK, "{url}");
        assert_eq!(
            reply.headers()["content-type"],
            "text/plain; version=0.0.4; charset=utf-8"
        );
        let text = reply.text().await.unwrap();
        let mut samples = BTreeMap::new();
        let mut typed = BTreeSet::new();
        let mut helped = BTreeSet::new();
        for line in text.lines() {
            if let Some(rest) = line.strip_prefix("# HELP ") {
                helped.insert(rest.split(' ').next().unwrap().to_owned());
                continue;
            }
            if let Some(rest) = line.strip_prefix("# TYPE ") {
                let (name, kind) = rest.split_once(' ').unwrap();
                assert!(["counter", "gauge", "histogram"].contains(&kind), "{line}");
                assert!(name.starts_with("metachat_"), "{line}");
                typed.insert(name.to_owned());
                continue;
            }
            let (series, value) = line.rsplit_once(' ').unwrap_or_else(|| panic!("{line}"));
            let value: f64 = value.parse().unwrap_or_else(|_| panic!("{line}"));
            let name = series.split('{').next().unwrap();
            let family = ["_bucket", "_sum", "_count"]
                .iter()
                .find_map(|s| name.strip_suffix(s).filter(|f| typed.contains(*f)))
                .unwrap_or(name);
            assert!(typed.contains(family) && helped.contains(family), "{line}");
            // Label values are bounded: never an id.
            assert!(
                !series.split('"').any(|v| uuid::Uuid::try_parse(v).is_ok()),
                "{line}"
            );
            samples.insert(series.to_owned(), value);
        }
        Self {
            samples,
            families: typed,
            text,
        }
    }

    fn value(&self, series: &str) -> f64 {
        *self
            .samples
            .get(series)
            .unwrap_or_else(|| panic!("no {series} in:\n{}", self.text))
    }
}

#[tokio::test]
async fn every_process_serves_its_metrics() {
    scrape_after_requests(default_wiring().await).await;
}

#[tokio::test]
async fn separate_service_processes_serve_their_metrics_on_their_grpc_ports() {
    scrape_after_requests(Wiring::Separate).await;
}

async fn scrape_after_requests(wiring: Wiring) {
    let app = Platform::start_wired(wiring).await;
    let user = app.create_user().await;
    let entry = app
        .post(
            "/diary/entries",
            json!({"userId": user, "title": "t", "content": "A good day."}),
        )
        .await;
    assert_eq!(entry.status, StatusCode::CREATED, "{}", entry.body);
    let missing = app.get(&format!("/users/{}", uuid::Uuid::new_v4())).await;
    assert_eq!(missing.status, StatusCode::NOT_FOUND);

    let gateway = Scrape::of(&app.url("/metrics")).await;
    assert_eq!(
        gateway.value(r#"metachat_http_requests_total{method="POST",route="/users",status="201"}"#),
        1.0
    );
    assert_eq!(
        gateway.value(
            r#"metachat_http_requests_total{method="GET",route="/users/{id}",status="404"}"#
        ),
        1.0
    );
    assert_eq!(
        gateway.value(
            r#"metachat_http_request_duration_seconds_count{method="POST",route="/diary/entries"}"#
        ),
        1.0
    );
    assert_eq!(
        gateway.value(
            r#"metachat_http_request_duration_seconds_bucket{method="POST",route="/diary/entries",le="+Inf"}"#
        ),
        1.0
    );

    // The services' own: the gateway's process in the embedded platform, else each
    // service's gRPC port.
    let (users, diary) = if app.wiring == Wiring::Embedded {
        let again = Scrape::of(&app.url("/metrics")).await;
        (again, Scrape::of(&app.url("/metrics")).await)
    } else {
        (
            Scrape::of(&format!("{}/metrics", app.user_grpc())).await,
            Scrape::of(&format!("{}/metrics", app.diary_grpc())).await,
        )
    };
    assert_eq!(users.value("metachat_users_created_total"), 1.0);
    assert_eq!(
        users.value(
            r#"metachat_grpc_requests_total{service="metachat.user.v1.UserService",method="CreateUser",code="OK"}"#
        ),
        1.0
    );
    assert_eq!(
        users.value(
            r#"metachat_grpc_requests_total{service="metachat.user.v1.UserService",method="GetUser",code="NOT_FOUND"}"#
        ),
        1.0
    );
    assert!(users.value(r#"metachat_event_store_appends_total{outcome="stored"}"#) >= 1.0);
    assert_eq!(diary.value("metachat_diary_entries_created_total"), 1.0);
    assert_eq!(diary.value("metachat_diary_sessions_started_total"), 0.0);
    assert_eq!(
        diary.value(
            r#"metachat_grpc_requests_total{service="metachat.diary.v1.DiaryService",method="CreateEntry",code="OK"}"#
        ),
        1.0
    );

    // Over HTTP/1.1 a gRPC port serves its metrics and nothing else.
    let client = reqwest::Client::new();
    let stray = client
        .get(format!("{}/anything", app.user_grpc()))
        .send()
        .await
        .unwrap();
    assert_eq!(stray.status(), StatusCode::NOT_FOUND);
    let posted = client
        .post(format!("{}/metrics", app.diary_grpc()))
        .send()
        .await
        .unwrap();
    assert_eq!(posted.status(), StatusCode::METHOD_NOT_ALLOWED);

    // Caught up, the read-model projections have nothing left to apply and are not late (the
    // Kafka consumers report it from their client's statistics, every 5 s).
    let projection = if app.is_production() {
        "diary-read-models-cassandra"
    } else {
        "diary-read-models"
    };
    let url = if app.wiring == Wiring::Embedded {
        app.url("/metrics")
    } else {
        format!("{}/metrics", app.diary_grpc())
    };
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        let scrape = Scrape::of(&url).await;
        let events = format!(r#"metachat_projection_lag_events{{projection="{projection}"}}"#);
        let seconds = format!(r#"metachat_projection_lag_seconds{{projection="{projection}"}}"#);
        if scrape.samples.get(&events) == Some(&0.0) && scrape.samples.get(&seconds) == Some(&0.0) {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "{projection} never reported itself caught up:\n{}",
            scrape.text
        );
        tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    }

    // Every metric the alert rules and the dashboards query is one these processes expose, or
    // (in the production wiring) the JMX exporters of the Kafka broker and Cassandra node.
    let exposed: BTreeSet<&String> = [&gateway, &users, &diary]
        .iter()
        .flat_map(|s| s.families.iter())
        .collect();
    let mut queried = BTreeSet::new();
    for file in ["metachat.yml", "infrastructure.yml"] {
        let path = format!(
            "{}/../config/prometheus/rules/{file}",
            env!("CARGO_MANIFEST_DIR")
        );
        queried.extend(queried_metrics(&expressions(
            &std::fs::read_to_string(path).unwrap(),
        )));
    }
    assert!(queried.len() >= 10, "{queried:?}");
    let dashboards = std::fs::read_dir(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../config/grafana/dashboards"
    ))
    .unwrap();
    let mut panels = 0;
    for file in dashboards {
        let dashboard: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(file.unwrap().path()).unwrap()).unwrap();
        for panel in dashboard["panels"].as_array().unwrap() {
            panels += 1;
            for target in panel["targets"].as_array().unwrap() {
                queried.extend(queried_metrics(target["expr"].as_str().unwrap()));
            }
        }
    }
    assert!(panels >= 20, "{panels} dashboard panels");
    let exporters = if app.is_production() {
        exporter_metrics().await
    } else {
        BTreeSet::new()
    };
    for name in queried {
        if !name.starts_with("metachat_") {
            // Kafka and Cassandra run in the production wiring only.
            if app.is_production() {
                assert!(
                    exporters.contains(&name),
                    "the rules query {name}, which the JMX exporters do not expose"
                );
            }
            continue;
        }
        // Kafka's relay and consumers run in the production wiring only.
        let kafka = name.starts_with("metachat_kafka_") || name.starts_with("metachat_relay_");
        if kafka && !app.is_production() {
            continue;
        }
        assert!(
            exposed.contains(&name),
            "the rules query {name}, which no process exposes"
        );
    }
}

/// The metric names the JMX exporter agents of the Kafka broker and the Cassandra node that
/// `scripts/infra` starts expose (their ports as those scripts take them).
async fn exporter_metrics() -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    for (job, port) in support::jmx_exporters() {
        let prefix = format!("{job}_");
        let url = format!("http://127.0.0.1:{port}/metrics");
        let reply = reqwest::get(&url)
            .await
            .unwrap_or_else(|e| panic!("the {job} JMX exporter at {url}: {e}"));
        assert_eq!(reply.status(), StatusCode::OK, "{url}");
        let text = reply.text().await.unwrap();
        let before = names.len();
        names.extend(
            text.lines()
                .filter(|l| !l.starts_with('#'))
                .filter_map(|l| l.split(['{', ' ']).next())
                .filter(|n| n.starts_with(&prefix))
                .map(str::to_owned),
        );
        assert!(
            names.len() > before,
            "no {prefix}* metric at {url}:\n{text}"
        );
    }
    names
}

/// The text of every `expr:` of a rules file (one line, or the block under `expr: |`).
fn expressions(rules: &str) -> String {
    let mut out = String::new();
    let mut block: Option<usize> = None;
    for line in rules.lines() {
        let indent = line.len() - line.trim_start().len();
        if let Some(key_indent) = block {
            if indent > key_indent || line.trim().is_empty() {
                out.push_str(line);
                out.push('\n');
                continue;
            }
            block = None;
        }
        if let Some(expr) = line.trim_start().strip_prefix("expr:") {
            out.push_str(expr);
            out.push('\n');
            block = Some(indent);
        }
    }
    out
}

/// The metric families (`metachat_*`, and the exporters' `kafka_*` and `cassandra_*`) an
/// expression text names; a histogram's `_bucket`, `_sum` and `_count` series as their family.
fn queried_metrics(text: &str) -> BTreeSet<String> {
    text.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == ':'))
        .filter(|word| {
            ["metachat_", "kafka_", "cassandra_"]
                .iter()
                .any(|p| word.starts_with(p))
        })
        .map(|name| {
            ["_bucket", "_sum", "_count"]
                .iter()
                .find_map(|s| name.strip_suffix(s))
                .unwrap_or(name)
                .to_owned()
        })
        .collect()
}
