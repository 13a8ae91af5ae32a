//! Append and read-all throughput of the embedded event store, beside the raw SQLite insert
//! rate of the same machine, same file settings (WAL, synchronous=FULL), same run.
//!
//! Run: `cargo bench -p metachat-event-sourcing --bench event_store`
//! Scale with `BENCH_EVENTS` (default 2000 single appends; batches write 10x that).
//! Compare the ratios, not the absolute numbers: machines (and runs) differ.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use event_sourcing::sqlite::{SqliteEventStore, SqliteOptions, connect_options};
use event_sourcing::{EventCodec, EventMetadata, EventStore, ExpectedVersion, NewEvent};
use sqlx::Connection;
use sqlx::sqlite::SqliteConnection;

const BATCH: usize = 100;

fn payload(i: usize) -> serde_json::Value {
    serde_json::json!({
        "entryId": format!("entry-{i}"),
        "title": "A day",
        "tokenCount": 150,
        "tags": ["reflection", "gratitude"],
    })
}

fn event(i: usize) -> NewEvent {
    NewEvent::new(
        "DiaryEntryCreated",
        1,
        payload(i),
        EventMetadata {
            correlation_id: Some("bench".into()),
            ..EventMetadata::default()
        },
    )
}

fn rate(count: usize, elapsed: Duration) -> f64 {
    count as f64 / elapsed.as_secs_f64()
}

fn report(name: &str, count: usize, elapsed: Duration, baseline: Option<f64>) -> f64 {
    let per_second = rate(count, elapsed);
    match baseline {
        Some(base) => println!(
            "{name:<44} {count:>7} in {:>8.1} ms = {per_second:>10.0}/s  ({:.2}x raw SQLite)",
            elapsed.as_secs_f64() * 1e3,
            per_second / base
        ),
        None => println!(
            "{name:<44} {count:>7} in {:>8.1} ms = {per_second:>10.0}/s",
            elapsed.as_secs_f64() * 1e3
        ),
    }
    per_second
}

async fn raw_sqlite(path: &Path, rows: usize, per_tx: usize) -> Duration {
    let options = connect_options(path, &SqliteOptions::default()).expect("options");
    let mut conn = SqliteConnection::connect_with(&options)
        .await
        .expect("connect");
    sqlx::query(
        "CREATE TABLE IF NOT EXISTS raw (id INTEGER PRIMARY KEY AUTOINCREMENT, body TEXT NOT NULL)",
    )
    .execute(&mut conn)
    .await
    .expect("create");
    let body = payload(0).to_string();
    let started = Instant::now();
    for chunk in 0..rows / per_tx {
        let mut tx = conn.begin().await.expect("begin");
        for i in 0..per_tx {
            sqlx::query("INSERT INTO raw (body) VALUES (?)")
                .bind(format!("{body}{}", chunk * per_tx + i))
                .execute(&mut *tx)
                .await
                .expect("insert");
        }
        tx.commit().await.expect("commit");
    }
    started.elapsed()
}

fn fresh(dir: &Path, name: &str) -> PathBuf {
    let path = dir.join(name);
    for suffix in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{}{suffix}", path.display()));
    }
    path
}

#[tokio::main]
async fn main() {
    let singles: usize = std::env::var("BENCH_EVENTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(2000);
    let batched = singles * 10;
    let dir = std::env::temp_dir().join("metachat-event-store-bench");
    std::fs::create_dir_all(&dir).expect("bench dir");
    println!(
        "event store benchmark in {} (WAL, synchronous=FULL)",
        dir.display()
    );

    let raw_single = report(
        "raw SQLite insert, 1 row per transaction",
        singles,
        raw_sqlite(&fresh(&dir, "raw1.db"), singles, 1).await,
        None,
    );
    let raw_batch = report(
        &format!("raw SQLite insert, {BATCH} rows per transaction"),
        batched,
        raw_sqlite(&fresh(&dir, "raw100.db"), batched, BATCH).await,
        None,
    );

    let store = SqliteEventStore::open(fresh(&dir, "events.db"), EventCodec::default())
        .await
        .expect("open store");
    let started = Instant::now();
    for i in 0..singles {
        store
            .append(
                &format!("entry-{i}"),
                ExpectedVersion::NoStream,
                vec![event(i)],
            )
            .await
            .expect("append");
    }
    report(
        "append 1 event (new stream, NoStream)",
        singles,
        started.elapsed(),
        Some(raw_single),
    );

    let started = Instant::now();
    for b in 0..batched / BATCH {
        let events = (0..BATCH).map(|i| event(b * BATCH + i)).collect();
        store
            .append(&format!("batch-{b}"), ExpectedVersion::NoStream, events)
            .await
            .expect("append batch");
    }
    report(
        &format!("append {BATCH}-event batches"),
        batched,
        started.elapsed(),
        Some(raw_batch),
    );

    let total = singles + batched;
    let started = Instant::now();
    let mut position = 0;
    let mut read = 0;
    loop {
        let page = store.read_all(position, 1000).await.expect("read_all");
        let Some(last) = page.last() else { break };
        position = last.position;
        read += page.len();
    }
    assert_eq!(read, total, "read_all must return every event");
    report("read_all in pages of 1000", read, started.elapsed(), None);
    store.close().await;
}
