//! Append and read-all throughput of the embedded event store, beside the raw SQLite insert
//! rate of the same machine, same file settings (WAL, synchronous=FULL), same run.
//!
//! Run: `cargo bench -p metachat-event-sourcing --bench event_store`
//! Scale with `BENCH_EVENTS` (default 2000 single appends; batches write 10x that) and
//! `BENCH_ROUNDS` (default 3). Each round measures the raw baseline and the store back to back,
//! so a noisy neighbour slows both; compare the ratios, not the absolute numbers.

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

/// Appends `count` single events, each to a new stream.
async fn store_singles(store: &SqliteEventStore, round: usize, count: usize) -> Duration {
    let started = Instant::now();
    for i in 0..count {
        store
            .append(
                &format!("entry-{round}-{i}"),
                ExpectedVersion::NoStream,
                vec![event(i)],
            )
            .await
            .expect("append");
    }
    started.elapsed()
}

/// Appends `count` events in batches of `BATCH`, each batch to a new stream.
async fn store_batches(store: &SqliteEventStore, round: usize, count: usize) -> Duration {
    let started = Instant::now();
    for b in 0..count / BATCH {
        let events = (0..BATCH).map(|i| event(b * BATCH + i)).collect();
        store
            .append(
                &format!("batch-{round}-{b}"),
                ExpectedVersion::NoStream,
                events,
            )
            .await
            .expect("append batch");
    }
    started.elapsed()
}

fn median(mut rates: Vec<f64>) -> f64 {
    rates.sort_by(f64::total_cmp);
    rates[rates.len() / 2]
}

fn report(name: &str, rates: Vec<f64>, baseline: Option<f64>) -> f64 {
    let rate = median(rates.clone());
    let spread = format!(
        "[{:.0}..{:.0}]",
        rates.iter().cloned().fold(f64::INFINITY, f64::min),
        rates.iter().cloned().fold(0.0, f64::max)
    );
    match baseline {
        Some(base) => println!(
            "{name:<44} {rate:>9.0}/s {spread:<18} {:.2}x raw SQLite",
            rate / base
        ),
        None => println!("{name:<44} {rate:>9.0}/s {spread:<18}"),
    }
    rate
}

#[tokio::main]
async fn main() {
    let singles: usize = std::env::var("BENCH_EVENTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(2000);
    let rounds: usize = std::env::var("BENCH_ROUNDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(3);
    let batched = singles * 10;
    let dir = std::env::temp_dir().join("metachat-event-store-bench");
    std::fs::create_dir_all(&dir).expect("bench dir");
    println!(
        "event store benchmark in {} (WAL, synchronous=FULL): {singles} single appends and \
         {batched} batched events per round, {rounds} rounds interleaved with the raw baseline; \
         median rate [min..max]",
        dir.display()
    );

    let store = SqliteEventStore::open(fresh(&dir, "events.db"), EventCodec::default())
        .await
        .expect("open store");
    let (mut raw1, mut raw100, mut es1, mut es100) = (vec![], vec![], vec![], vec![]);
    for round in 0..rounds {
        let raw = raw_sqlite(&fresh(&dir, "raw1.db"), singles, 1).await;
        raw1.push(rate(singles, raw));
        es1.push(rate(singles, store_singles(&store, round, singles).await));
        let raw = raw_sqlite(&fresh(&dir, "raw100.db"), batched, BATCH).await;
        raw100.push(rate(batched, raw));
        es100.push(rate(batched, store_batches(&store, round, batched).await));
    }
    let base1 = report("raw SQLite insert, 1 row per transaction", raw1, None);
    let base100 = report(
        &format!("raw SQLite insert, {BATCH} rows per transaction"),
        raw100,
        None,
    );
    report("append 1 event (new stream, NoStream)", es1, Some(base1));
    report(
        &format!("append {BATCH}-event batches"),
        es100,
        Some(base100),
    );

    let total = (singles + batched) * rounds;
    let mut reads = Vec::new();
    for _ in 0..rounds {
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
        reads.push(rate(read, started.elapsed()));
    }
    report("read_all in pages of 1000", reads, None);
    store.close().await;
}
