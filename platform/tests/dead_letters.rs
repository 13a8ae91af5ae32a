//! Poison events end to end, embedded: an event of a type this build does not know (as an
//! older replica meets a newer one's during a rolling deploy), and a stored row whose payload
//! is not even JSON, are parked by the projections that cannot apply them, which go on with
//! the events after them; `metachat dead-letters` lists them, asks for a retry (which fails
//! again, counted) and drops them; a rebuild of the read models parks them too.

mod support;

use std::process::Command;
use std::time::{Duration, Instant};

use reqwest::StatusCode;
use support::Platform;

/// `metachat dead-letters <args>` on the platform's data directory: its output.
fn dead_letters(app: &Platform, args: &[&str]) -> String {
    let output = Command::new(env!("CARGO_BIN_EXE_metachat"))
        .arg("dead-letters")
        .args(args)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("DATA_DIR", app.data_dir.display().to_string())
        .env("LOG_LEVEL", "warn")
        .output()
        .expect("run metachat dead-letters");
    assert!(
        output.status.success(),
        "metachat dead-letters {args:?}: {}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// Polls `metachat dead-letters` until `accept` holds.
async fn listed_until(app: &Platform, accept: impl Fn(&str) -> bool) -> String {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let listed = dead_letters(app, &["list"]);
        if accept(&listed) {
            return listed;
        }
        assert!(
            Instant::now() < deadline,
            "never listed as expected:\n{listed}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test]
async fn an_unknown_event_is_parked_listed_retried_and_dropped() {
    let app = Platform::start().await;
    assert_eq!(dead_letters(&app, &[]).trim(), "no dead letters");

    // A newer build's event, appended behind this build's back (another process on the file).
    let url = format!("sqlite://{}", app.data_dir.join("metachat.db").display());
    let mut db = <sqlx::SqliteConnection as sqlx::Connection>::connect(&url)
        .await
        .expect("open the platform's database");
    let stream = format!("user-{}", uuid::Uuid::new_v4());
    let event_id = uuid::Uuid::new_v4().to_string();
    sqlx::query(
        "INSERT INTO events (event_id, stream_id, stream_version, event_type, schema_version, \
         payload, metadata, recorded_at) VALUES (?, ?, 1, 'UserNicknamed', 1, ?, '{}', ?)",
    )
    .bind(&event_id)
    .bind(&stream)
    .bind(r#"{"nickname":"Jo"}"#)
    .bind(chrono::Utc::now().timestamp_micros())
    .execute(&mut db)
    .await
    .expect("append the unknown event");
    // And a row that is not an event at all: its payload is not JSON.
    let broken_id = uuid::Uuid::new_v4().to_string();
    sqlx::query(
        "INSERT INTO events (event_id, stream_id, stream_version, event_type, schema_version, \
         payload, metadata, recorded_at) VALUES (?, ?, 1, 'DiaryEntryCreated', 1, \
         'secret diary words, not JSON', '{}', ?)",
    )
    .bind(&broken_id)
    .bind(format!("entry-{}", uuid::Uuid::new_v4()))
    .bind(chrono::Utc::now().timestamp_micros())
    .execute(&mut db)
    .await
    .expect("append the broken row");

    // Parked by the user read models, which go on: a user registered after it is listed.
    let listed = listed_until(&app, |l| {
        l.contains("UserNicknamed") && l.contains("diary-read-models") && l.contains(&broken_id)
    })
    .await;
    assert!(listed.contains("user-read-models"), "{listed}");
    assert!(listed.contains(&event_id), "{listed}");
    assert!(listed.contains("payload is not JSON"), "{listed}");
    assert!(
        !listed.contains("Jo") && !listed.contains("secret"),
        "the error quotes no payload: {listed}"
    );
    let user = app.create_user().await;
    app.eventually("/users?limit=100", |r| {
        r.status == StatusCode::OK && r.body.to_string().contains(&user)
    })
    .await;

    // A retry (this build still does not know it) fails again and is counted.
    let asked = dead_letters(&app, &["retry", "--projection", "user-read-models"]);
    assert!(asked.starts_with("1 dead letters"), "{asked}");
    let retried = listed_until(&app, |l| {
        l.lines()
            .any(|line| line.contains(&event_id) && line.split('\t').nth(5) == Some("2"))
    })
    .await;
    assert!(
        retried.contains("\t-\t"),
        "the request was taken: {retried}"
    );

    let dropped = dead_letters(&app, &["drop", "--event", &event_id]);
    assert!(dropped.starts_with("1 dead letters dropped"), "{dropped}");
    let left = dead_letters(&app, &["list"]);
    assert!(
        !left.contains(&event_id) && left.contains(&broken_id),
        "{left}"
    );

    // A rebuild from the events parks the broken row again and rebuilds everything else.
    let mut app = app;
    app.stop();
    let dropped = dead_letters(&app, &["drop"]);
    assert!(!dropped.starts_with("0 "), "{dropped}");
    let rebuilt = Command::new(env!("CARGO_BIN_EXE_metachat"))
        .arg("rebuild-read-models")
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("DATA_DIR", app.data_dir.display().to_string())
        .output()
        .expect("run metachat rebuild-read-models");
    assert!(
        rebuilt.status.success(),
        "{}{}",
        String::from_utf8_lossy(&rebuilt.stdout),
        String::from_utf8_lossy(&rebuilt.stderr)
    );
    let users: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM user_read_model")
        .fetch_one(&mut db)
        .await
        .unwrap();
    assert_eq!(users, 1, "the user is listed again after the rebuild");
    let parked = dead_letters(&app, &["list"]);
    assert!(
        parked.contains(&broken_id) && parked.contains(&event_id),
        "{parked}"
    );
}
