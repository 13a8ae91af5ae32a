//! Embedding throughput on realistic diary entries, in entries per second per core, beside
//! the same work on two threads (the machine's cores).
//!
//! `scripts/model.sh && cargo bench -p metachat-embeddings --bench throughput`
//!
//! The rayon pool's size is fixed at start (`RAYON_NUM_THREADS`), so each thread count runs in
//! a process of its own: this binary runs the measurement in a child process per count.

use std::time::{Duration, Instant};

use embeddings::Embedder;

/// Diary entries of the analysis crate's golden set: 150 to 600 words each.
const ENTRIES: &[&str] = &[
    include_str!("../../analysis/tests/entries/01-thinker.txt"),
    include_str!("../../analysis/tests/entries/02-feeler.txt"),
    include_str!("../../analysis/tests/entries/03-explorer.txt"),
    include_str!("../../analysis/tests/entries/04-caregiver.txt"),
    include_str!("../../analysis/tests/entries/05-planner.txt"),
    include_str!("../../analysis/tests/entries/06-sensory-city.txt"),
    include_str!("../../analysis/tests/entries/08-mixed-negation.txt"),
];

fn measure(embedder: &Embedder, threads: &str) {
    let budget = Duration::from_secs(8);
    let start = Instant::now();
    let (mut entries, mut chunks) = (0u32, 0usize);
    while start.elapsed() < budget {
        for text in ENTRIES {
            chunks += embedder.embed_document(text).expect("embed").len();
            entries += 1;
        }
    }
    let secs = start.elapsed().as_secs_f64();
    println!(
        "{threads} thread(s): {:>6.1} entries/s ({:.1} chunks/s, {entries} entries of ~{} words)",
        f64::from(entries) / secs,
        chunks as f64 / secs,
        ENTRIES
            .iter()
            .map(|t| t.split_whitespace().count())
            .sum::<usize>()
            / ENTRIES.len(),
    );
}

fn main() {
    if let Ok(threads) = std::env::var("EMBEDDINGS_BENCH_CHILD") {
        let started = Instant::now();
        let embedder = Embedder::load(&embeddings::model_dir_from_env())
            .expect("load the model (scripts/model.sh)");
        if threads == "1" {
            println!(
                "model load: {:.0} ms",
                started.elapsed().as_secs_f64() * 1e3
            );
        }
        measure(&embedder, &threads);
        return;
    }
    let me = std::env::current_exe().expect("this benchmark's path");
    for threads in ["1", "2"] {
        let status = std::process::Command::new(&me)
            .env("EMBEDDINGS_BENCH_CHILD", threads)
            .env("RAYON_NUM_THREADS", threads)
            .env("TOKENIZERS_PARALLELISM", "false")
            .status()
            .expect("run the measurement");
        assert!(status.success());
    }
}
