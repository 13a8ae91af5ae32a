//! Search latency against the number of entries a writer has: the embedded index (SQLite)
//! with 1,000 and 100,000 entries of one writer, beside the ceiling measured in the same run:
//! the same exact nearest-neighbour scan over the same vectors already in memory. And the
//! query's embedding with the real model, which every search adds.
//!
//! `scripts/model.sh && cargo bench -p diary-service --bench search`
//!
//! Vectors are random unit vectors (the scan's cost does not depend on their values); one
//! entry in ten has two or three chunks, as long entries do; each entry has 40 terms drawn from
//! a 5,000-word vocabulary with a Zipf-like skew.

use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::Utc;
use diary_service::search::sqlite::SqliteSearchIndex;
use diary_service::search::{IndexedEntry, SearchIndex, dot, keyword_scores};
use metachat_validation::{EntryId, UserId};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};

const SIZES: [usize; 2] = [1_000, 100_000];
const QUERIES: usize = 30;
const CANDIDATES: usize = 100;

/// A small deterministic generator (xorshift), so runs compare.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn unit(&mut self) -> f32 {
        (self.next() % 2_000_001) as f32 / 1_000_000.0 - 1.0
    }

    fn vector(&mut self) -> Vec<f32> {
        let v: Vec<f32> = (0..embeddings::DIMENSIONS).map(|_| self.unit()).collect();
        let norm = dot(&v, &v).sqrt();
        v.into_iter().map(|x| x / norm).collect()
    }

    /// A word of the vocabulary, frequent words more often.
    fn term(&mut self) -> String {
        let r = (self.next() % 1_000_000) as f64 / 1_000_000.0;
        format!("w{}", (r * r * r * 5_000.0) as u32)
    }
}

fn percentile(sorted: &[Duration], p: f64) -> f64 {
    let i = ((sorted.len() - 1) as f64 * p).round() as usize;
    sorted[i].as_secs_f64() * 1000.0
}

fn summary(mut times: Vec<Duration>) -> (f64, f64) {
    times.sort();
    (percentile(&times, 0.5), percentile(&times, 0.99))
}

async fn fill(
    index: &SqliteSearchIndex,
    user: &UserId,
    n: usize,
    rng: &mut Rng,
) -> Vec<Vec<Vec<f32>>> {
    let mut all = Vec::with_capacity(n);
    for i in 0..n {
        let chunks = if i % 10 == 0 { 2 + i % 2 } else { 1 };
        let vectors: Vec<Vec<f32>> = (0..chunks).map(|_| rng.vector()).collect();
        let mut terms: Vec<(String, u32)> = (0..40).map(|_| (rng.term(), 1)).collect();
        terms.sort();
        terms.dedup_by(|a, b| a.0 == b.0);
        index
            .put(&IndexedEntry {
                entry_id: EntryId::new(),
                user_id: *user,
                fingerprint: i as i64,
                written_at: Utc::now(),
                vectors: vectors.clone(),
                terms,
                length: 120,
                keywords: vec!["walk".into(), "sea".into()],
            })
            .await
            .expect("put");
        all.push(vectors);
    }
    all
}

/// The index database of size `n` (the loading is not what is measured: no fsync per entry).
async fn index_pool(dir: &std::path::Path, n: usize) -> sqlx::SqlitePool {
    let options = SqliteConnectOptions::new()
        .filename(dir.join(format!("index-{n}.db")))
        .create_if_missing(true)
        .journal_mode(SqliteJournalMode::Wal)
        .synchronous(SqliteSynchronous::Off);
    SqlitePoolOptions::new()
        .max_connections(2)
        .connect_with(options)
        .await
        .expect("pool")
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let dir = std::env::temp_dir().join(format!("metachat-search-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("bench dir");
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    println!(
        "search latency, one writer, exact nearest neighbours over every chunk ({QUERIES} queries each)"
    );
    println!(
        "{:>8} {:>8} | {:>14} {:>14} | {:>14} | {:>16} {:>6}",
        "entries",
        "chunks",
        "nearest p50/99",
        "keywords p50/99",
        "whole p50/p99",
        "in-memory p50",
        "ratio"
    );
    for n in SIZES {
        let index = Arc::new(
            SqliteSearchIndex::new(index_pool(&dir, n).await)
                .await
                .expect("index"),
        );
        let user = UserId::new();
        let started = Instant::now();
        let vectors = fill(&index, &user, n, &mut rng).await;
        let loaded = started.elapsed();
        let chunks: usize = vectors.iter().map(Vec::len).sum();
        // A fresh index object: its first search reads the writer's vectors from SQLite.
        let index = Arc::new(
            SqliteSearchIndex::new(index_pool(&dir, n).await)
                .await
                .expect("index"),
        );
        let cold = Instant::now();
        index
            .nearest(&user, &rng.vector(), CANDIDATES)
            .await
            .expect("nearest");
        let cold = cold.elapsed();
        let (mut nearest, mut keywords, mut whole, mut memory) =
            (Vec::new(), Vec::new(), Vec::new(), Vec::new());
        for q in 0..QUERIES + 3 {
            let query = rng.vector();
            let terms: Vec<String> = (0..3).map(|_| rng.term()).collect();
            let t0 = Instant::now();
            let hits = index
                .nearest(&user, &query, CANDIDATES)
                .await
                .expect("nearest");
            let t1 = Instant::now();
            let postings = index.postings(&user, &terms).await.expect("postings");
            let stats = index.stats(&user).await.expect("stats");
            let scores = keyword_scores(&terms, &postings, stats);
            let mut best: Vec<EntryId> = scores.keys().copied().collect();
            best.truncate(CANDIDATES);
            let extra = index.vectors(&user, &best).await.expect("vectors");
            let t2 = Instant::now();
            // The ceiling: the same scan over vectors already in memory.
            let mut scan: Vec<f32> = vectors
                .iter()
                .map(|chunks| {
                    chunks
                        .iter()
                        .map(|v| dot(v, &query))
                        .fold(f32::MIN, f32::max)
                })
                .collect();
            let nth = CANDIDATES.min(scan.len() - 1);
            scan.select_nth_unstable_by(nth, |a, b| b.total_cmp(a));
            let t3 = Instant::now();
            assert_eq!(hits.len(), CANDIDATES.min(n));
            std::hint::black_box((&extra, &scan));
            if q >= 3 {
                nearest.push(t1 - t0);
                keywords.push(t2 - t1);
                whole.push(t2 - t0);
                memory.push(t3 - t2);
            }
        }
        let (n50, n99) = summary(nearest);
        let (k50, k99) = summary(keywords);
        let (w50, w99) = summary(whole);
        let (m50, _) = summary(memory);
        println!(
            "{n:>8} {chunks:>8} | {n50:>6.1}/{n99:<7.1} {k50:>6.1}/{k99:<7.1} | {w50:>6.1}/{w99:<7.1} | {m50:>13.2} ms {:>6.1}",
            n50 / m50
        );
        println!(
            "{:>8} first search of the writer (vectors read from SQLite): {:.0} ms",
            "",
            cold.as_secs_f64() * 1000.0
        );
        eprintln!("  (loading {n} entries took {:.1} s)", loaded.as_secs_f64());
    }
    std::fs::remove_dir_all(&dir).ok();

    match embeddings::Embedder::load(&embeddings::model_dir_from_env()) {
        Ok(model) => {
            let query = "when did I last feel like this: tight chest, can't switch off at night";
            let mut times = Vec::new();
            for i in 0..QUERIES + 3 {
                let t = Instant::now();
                std::hint::black_box(model.embed(&[query]).expect("embed"));
                if i >= 3 {
                    times.push(t.elapsed());
                }
            }
            let (p50, p99) = summary(times);
            println!(
                "query embedding (all-MiniLM-L6-v2, {} chars): p50 {p50:.1} ms, p99 {p99:.1} ms",
                query.len()
            );
        }
        Err(e) => println!("query embedding not measured: {e}"),
    }
}
