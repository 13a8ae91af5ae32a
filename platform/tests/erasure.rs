//! Erasing a user (`DELETE /users/{id}`), end to end: afterwards nothing they wrote or said
//! about themselves can be read through the API, nor found in the stored bytes: the embedded
//! database file, or in production the PostgreSQL event store, the Kafka topics (read with
//! Kafka's own console consumer) and the Cassandra tables (read with cqlsh). Another user's
//! diary is untouched, and the username and e-mail address can be registered again. Runs on
//! the embedded platform, and with `METACHAT_TEST_WIRING=production` over PostgreSQL, Kafka and
//! Cassandra.

mod support;

use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use api_gateway::auth::Issuer;
use reqwest::StatusCode;
use serde_json::{Value, json};
use support::{Platform, Reply, Wiring, default_wiring};

const SECRET: &str = "erasure-test-secret-0123456789abcdef";

/// A call with a bearer token.
async fn call(app: &Platform, method: &str, path: &str, body: Option<Value>, token: &str) -> Reply {
    app.request_with(
        method,
        path,
        body,
        &[("authorization", format!("Bearer {token}"))],
    )
    .await
}

/// Words that appear nowhere but in what the erased user wrote.
const MARKERS: [&str; 5] = [
    "quokkaveldt",
    "zebrulafen",
    "mirthwhistle",
    "bioglimmerant",
    "xanthippequa",
];

fn infra_script(name: &str) -> PathBuf {
    PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../scripts/infra")).join(name)
}

/// The markers found in `bytes`.
fn markers_in(bytes: &[u8]) -> Vec<&'static str> {
    let text = String::from_utf8_lossy(bytes).to_lowercase();
    MARKERS.into_iter().filter(|m| text.contains(m)).collect()
}

/// Writes an English entry (so it is analysed, keyworded and indexed) holding the markers.
async fn write_marked(app: &Platform, token: &str, user: &str, session: &str, day: u32) -> String {
    let reply = call(
        app,
        "POST",
        "/diary/entries",
        Some(json!({
                "userId": user,
                "sessionId": session,
                "title": format!("The zebrulafen garden, day {day}"),
                "content": "I walked to the quokkaveldt again this evening and felt calm and \
                            grateful. The quokkaveldt light was golden, the birds were loud, and \
                            I listened for a long time before writing this down.",
                "tags": ["mirthwhistle"],
        })),
        token,
    )
    .await;
    assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.body);
    reply.id()
}

#[tokio::test]
async fn an_erased_user_cannot_be_read_anywhere() {
    let app = Platform::start_with_env(
        default_wiring().await,
        &[("AUTH_TOKEN_SECRET", SECRET.to_owned())],
    )
    .await;
    let issuer = Issuer::new(SECRET.as_bytes(), Duration::from_secs(600)).unwrap();
    let registered = app
        .post(
            "/users",
            json!({"username": "erin", "email": "erin@example.com", "firstName": "Xanthippequa",
                   "lastName": "Doe", "password": "a long enough password"}),
        )
        .await;
    assert_eq!(
        registered.status,
        StatusCode::CREATED,
        "{}",
        registered.body
    );
    let erin = registered.id();
    let signed_in = app
        .post(
            "/auth/token",
            json!({"login": "erin", "password": "a long enough password"}),
        )
        .await;
    assert_eq!(signed_in.status, StatusCode::OK, "{}", signed_in.body);
    let token = signed_in.body["accessToken"].as_str().unwrap().to_owned();
    let refresh = signed_in.body["refreshToken"].as_str().unwrap().to_owned();
    let updated = call(
        &app,
        "PUT",
        &format!("/users/{erin}"),
        Some(json!({"bio": "bioglimmerant days"})),
        &token,
    )
    .await;
    assert_eq!(updated.status, StatusCode::OK, "{}", updated.body);
    let session = call(
        &app,
        "POST",
        "/diary/sessions",
        Some(json!({"userId": erin})),
        &token,
    )
    .await
    .id();
    let mut entries = Vec::new();
    for day in 1..=3 {
        entries.push(write_marked(&app, &token, &erin, &session, day).await);
    }
    let bob = app.create_user().await;
    let bob_token = issuer.issue(&bob, false, None);
    let kept = call(
        &app,
        "POST",
        "/diary/entries",
        Some(json!({"userId": bob, "title": "Bob's day", "content": "Bob keeps every word."})),
        &bob_token,
    )
    .await;
    assert_eq!(kept.status, StatusCode::CREATED, "{}", kept.body);
    let kept = kept.id();

    // Analysed (its keywords name a marker) and listed before the erasure.
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let read = call(
            &app,
            "GET",
            &format!("/diary/entries/{}", entries[2]),
            None,
            &token,
        )
        .await;
        let listed = call(
            &app,
            "GET",
            &format!("/diary/entries/user/{erin}"),
            None,
            &token,
        )
        .await;
        if read.body["analysis"]["keywords"]
            .to_string()
            .contains("quokkaveldt")
            && listed.body["entries"]
                .as_array()
                .is_some_and(|e| e.len() == 3)
        {
            break;
        }
        assert!(Instant::now() < deadline, "{} {}", read.body, listed.body);
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let stored = StoredBytes::of(&app);
    assert!(
        !stored.read().await.is_empty(),
        "the raw check finds the markers in the read models before the erasure"
    );

    // Only Erin (or an admin) may erase Erin.
    call(&app, "DELETE", &format!("/users/{erin}"), None, &bob_token)
        .await
        .assert_error(StatusCode::FORBIDDEN, "permission_denied", None);
    let erased = call(&app, "DELETE", &format!("/users/{erin}"), None, &token).await;
    assert_eq!(erased.status, StatusCode::NO_CONTENT, "{}", erased.body);
    let again = call(&app, "DELETE", &format!("/users/{erin}"), None, &token).await;
    assert_eq!(
        again.status,
        StatusCode::NO_CONTENT,
        "erasing again: {}",
        again.body
    );

    // Through the API, with her still valid access token: gone.
    for path in [
        format!("/users/{erin}"),
        format!("/users/{erin}/history"),
        format!("/users/{erin}/export"),
        format!("/diary/entries/{}", entries[0]),
        format!("/diary/entries/{}/history", entries[0]),
        format!("/diary/sessions/{session}/history"),
        format!("/diary/sessions/{session}"),
        format!("/diary/entries/user/{erin}"),
    ] {
        call(&app, "GET", &path, None, &token).await.assert_error(
            StatusCode::NOT_FOUND,
            "not_found",
            None,
        );
    }
    call(
        &app,
        "POST",
        "/diary/entries",
        Some(json!({"userId": erin, "title": "", "content": "After the end."})),
        &token,
    )
    .await
    .assert_error(StatusCode::NOT_FOUND, "not_found", None);
    app.post(
        "/auth/token",
        json!({"login": "erin", "password": "a long enough password"}),
    )
    .await
    .assert_error(StatusCode::UNAUTHORIZED, "unauthenticated", None);
    app.post("/auth/refresh", json!({"refreshToken": refresh}))
        .await
        .assert_error(StatusCode::UNAUTHORIZED, "unauthenticated", None);

    // In the stored bytes: gone, once the read models have dropped their copies.
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let found = stored.read().await;
        if found.is_empty() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "still stored after the erasure: {found:?}"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }

    // Nor listed (the read models dropped her)...
    let admin = issuer.issue(&bob, true, None);
    let listed = call(&app, "GET", "/users?limit=100", None, &admin).await;
    assert_eq!(listed.status, StatusCode::OK, "{}", listed.body);
    assert!(!listed.body.to_string().contains(&erin), "{}", listed.body);

    // The name and address are free again; Bob's diary is untouched.
    let again = app
        .post(
            "/users",
            json!({"username": "Erin", "email": "ERIN@example.com", "firstName": "E",
                   "lastName": "D"}),
        )
        .await;
    assert_eq!(again.status, StatusCode::CREATED, "{}", again.body);
    assert_ne!(again.id(), erin);
    app.post(
        "/users",
        json!({"username": "erin", "email": "other@example.com", "firstName": "E",
               "lastName": "D"}),
    )
    .await
    .assert_error(StatusCode::CONFLICT, "already_exists", Some("username"));
    let bobs = call(
        &app,
        "GET",
        &format!("/diary/entries/{kept}"),
        None,
        &bob_token,
    )
    .await;
    assert_eq!(bobs.status, StatusCode::OK, "{}", bobs.body);
    assert_eq!(bobs.body["content"], "Bob keeps every word.");
}

/// Where the platform under test keeps its bytes, and how to read them raw.
enum StoredBytes {
    Sqlite(PathBuf),
    Production {
        database: String,
        keyspace: String,
        topics: [String; 2],
        kafka: String,
    },
}

impl StoredBytes {
    fn of(app: &Platform) -> Self {
        match &app.wiring {
            Wiring::Production(env) => Self::Production {
                database: env.database.clone(),
                keyspace: env.keyspace.clone(),
                topics: [env.user_topic.clone(), env.diary_topic.clone()],
                kafka: env.kafka.clone(),
            },
            _ => Self::Sqlite(app.data_dir.join("metachat.db")),
        }
    }

    /// The markers found anywhere the platform stores bytes, each with where it was found.
    async fn read(&self) -> Vec<String> {
        match self {
            Self::Sqlite(path) => {
                // The file and its log as they are: the platform checkpoints the log itself
                // after an erasure, so that deleted pages do not linger in either.
                let mut found = Vec::new();
                for file in [path.clone(), path.with_extension("db-wal")] {
                    let bytes = std::fs::read(&file).unwrap_or_default();
                    found.extend(
                        markers_in(&bytes)
                            .into_iter()
                            .map(|m| format!("{m} in {}", file.display())),
                    );
                }
                found
            }
            Self::Production {
                database,
                keyspace,
                topics,
                kafka,
            } => {
                let mut found = Vec::new();
                found.extend(postgres_markers(database).await);
                for topic in topics {
                    found.extend(kafka_markers(kafka, topic));
                }
                found.extend(cassandra_markers(keyspace));
                found
            }
        }
    }
}

/// Every stored event's payload and metadata, as text.
async fn postgres_markers(database: &str) -> Vec<String> {
    let url = format!(
        "postgres://metachat:metachat@127.0.0.1:{}/{database}",
        std::env::var("METACHAT_PG_PORT").unwrap_or_else(|_| "55432".into())
    );
    let mut conn = <sqlx::PgConnection as sqlx::Connection>::connect(&url)
        .await
        .expect("connect to the test database");
    let rows: Vec<String> = sqlx::query_scalar("SELECT payload || metadata FROM events")
        .fetch_all(&mut conn)
        .await
        .expect("read the events");
    assert!(rows.len() > 10, "the events are there: {}", rows.len());
    markers_in(rows.join("\n").as_bytes())
        .into_iter()
        .map(|m| format!("{m} in PostgreSQL"))
        .collect()
}

/// Every message of a topic, read by Kafka's own console consumer, as text.
fn kafka_markers(kafka: &str, topic: &str) -> Vec<String> {
    let output = Command::new("bash")
        .arg(infra_script("kafka-console-consumer.sh"))
        .args([
            "--bootstrap-server",
            kafka,
            "--topic",
            topic,
            "--from-beginning",
        ])
        .args(["--timeout-ms", "8000"])
        .output()
        .expect("run the Kafka console consumer");
    assert!(
        output.stdout.len() > 100,
        "the topic {topic} has messages: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    markers_in(&output.stdout)
        .into_iter()
        .map(|m| format!("{m} on topic {topic}"))
        .collect()
}

/// Every row of the tables that hold users' and writers' data, read by cqlsh, as text.
fn cassandra_markers(keyspace: &str) -> Vec<String> {
    let tables = [
        "user_read_model",
        "user_archetype_read_model",
        "diary_entry_read_model",
        "entries_by_user",
        "diary_entry_analysis",
        "analytics_quarters",
        "analytics_quarter_totals",
        "entry_search_entries",
        "entry_search_terms",
    ];
    let cql: String = tables
        .iter()
        .map(|t| format!("SELECT * FROM {keyspace}.{t};"))
        .collect();
    let output = Command::new("bash")
        .arg(infra_script("cql.sh"))
        .arg(&cql)
        .output()
        .expect("run cqlsh");
    assert!(
        output.status.success(),
        "cqlsh: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    markers_in(&output.stdout)
        .into_iter()
        .map(|m| format!("{m} in Cassandra"))
        .collect()
}
