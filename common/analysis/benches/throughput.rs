//! Analysis throughput on realistic diary text, in MB per second on one core.
//!
//! `cargo bench -p metachat-analysis --bench throughput`

use std::hint::black_box;
use std::time::{Duration, Instant};

const ENTRIES: &[&str] = &[
    include_str!("../tests/entries/01-thinker.txt"),
    include_str!("../tests/entries/02-feeler.txt"),
    include_str!("../tests/entries/03-explorer.txt"),
    include_str!("../tests/entries/04-caregiver.txt"),
    include_str!("../tests/entries/05-planner.txt"),
    include_str!("../tests/entries/06-sensory-city.txt"),
    include_str!("../tests/entries/08-mixed-negation.txt"),
    include_str!("../tests/entries/09-german.txt"),
    include_str!("../tests/entries/10-french.txt"),
];

/// Runs `f` over `inputs` until at least `budget` has passed; MB/s over the bytes processed.
fn measure(name: &str, inputs: &[&str], budget: Duration, f: impl Fn(&str)) {
    let bytes: usize = inputs.iter().map(|s| s.len()).sum();
    let start = Instant::now();
    let mut rounds = 0u32;
    while start.elapsed() < budget {
        for text in inputs {
            f(black_box(text));
        }
        rounds += 1;
    }
    let secs = start.elapsed().as_secs_f64();
    let mb = (bytes as f64 * f64::from(rounds)) / 1e6;
    println!(
        "{name:<34} {:>8.2} MB/s  ({:>7.0} entries/s, {rounds} rounds)",
        mb / secs,
        f64::from(rounds) * inputs.len() as f64 / secs
    );
}

fn main() {
    // Load every lexicon and model once, outside the timings.
    let cold = Instant::now();
    black_box(metachat_analysis_warm());
    println!(
        "first call (loads tokenizer, lexicons): {:.0} ms",
        cold.elapsed().as_secs_f64() * 1e3
    );

    let budget = Duration::from_secs(3);
    measure("analyze, one entry at a time", ENTRIES, budget, |t| {
        black_box(analysis::analyze(t));
    });
    measure("count_tokens only", ENTRIES, budget, |t| {
        black_box(analysis::count_tokens(t));
    });
    measure("language detection only", ENTRIES, budget, |t| {
        black_box(analysis::language::detect(t));
    });
    measure("keywords only (English)", ENTRIES, budget, |t| {
        black_box(analysis::keywords::extract(
            t,
            Some(analysis::Language::En),
            10,
        ));
    });
    let long: String = ENTRIES.join("\n\n").repeat(100);
    measure("analyze, one 130 KB text", &[&long], budget, |t| {
        black_box(analysis::analyze(t));
    });
}

fn metachat_analysis_warm() -> analysis::Analysis {
    analysis::analyze(ENTRIES[0])
}
