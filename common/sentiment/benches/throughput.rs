//! Sentiment throughput on diary text, in MB of text per second.
//!
//! Run: `cargo bench -p metachat-sentiment --bench throughput`
//! `BENCH_SECONDS` (default 2) sets how long each case runs. Cases: one diary entry of about
//! 1 KB scored as a whole, the same entry sentence by sentence (how VADER is best used), and
//! one text of about 1 MB (a thousand entries) scored at once.

use std::hint::black_box;
use std::time::{Duration, Instant};

const ENTRY: &str = "Woke up early and actually went for the run I keep promising myself. \
The air was cold but the light over the river was beautiful, and for once I didn't feel \
rushed. Work was a different story: the release slipped again, and Mark was pretty annoyed \
in the standup. I hate disappointing people, even when it isn't really my fault. Lunch with \
Sara helped a lot 😊 she always knows how to make me laugh. Afternoon was kind of a blur, \
too many meetings and not enough quiet time to think. I felt anxious around four, that tight \
feeling in my chest, so I took a walk around the block. It's not a solution but it helps. \
Evening: cooked pasta, called Mum, she sounds tired but happy about the garden. Read twenty \
pages before bed. Grateful for small things today!! Tomorrow I want to be less hard on \
myself, and maybe finally reply to those emails I've been avoiding. Not a great day, not a \
terrible one. Honestly? Just a day, and that's okay. 🙂";

fn seconds() -> Duration {
    let secs = std::env::var("BENCH_SECONDS")
        .ok()
        .and_then(|s| s.parse::<f64>().ok())
        .filter(|s| *s > 0.0)
        .unwrap_or(2.0);
    Duration::from_secs_f64(secs)
}

/// Scores `texts` over and over for `budget`; returns MB/s and calls per second.
fn measure(texts: &[&str], budget: Duration) -> (f64, f64) {
    let bytes: usize = texts.iter().map(|t| t.len()).sum();
    let started = Instant::now();
    let mut rounds = 0_usize;
    while started.elapsed() < budget || rounds == 0 {
        for text in texts {
            black_box(sentiment::polarity_scores(black_box(text)));
        }
        rounds += 1;
    }
    let elapsed = started.elapsed().as_secs_f64();
    let mb = (bytes * rounds) as f64 / 1e6;
    (mb / elapsed, (texts.len() * rounds) as f64 / elapsed)
}

fn main() {
    let budget = seconds();
    sentiment::preload();
    println!(
        "{} ({}, {})",
        sentiment::ANALYZER_VERSION,
        sentiment::LEXICON,
        sentiment::EMOJI_LEXICON
    );

    let (rate, calls) = measure(&[ENTRY], budget);
    println!(
        "whole entry ({} bytes):        {rate:7.2} MB/s  {calls:9.0} entries/s",
        ENTRY.len()
    );

    let sentences: Vec<&str> = ENTRY
        .split_inclusive(['.', '!', '?'])
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .collect();
    let (rate, calls) = measure(&sentences, budget);
    println!(
        "sentence by sentence ({} sentences): {rate:7.2} MB/s  {calls:9.0} sentences/s",
        sentences.len()
    );

    let thousand = [ENTRY; 1000].join("\n\n");
    let (rate, _) = measure(&[thousand.as_str()], budget);
    println!(
        "one text of {:.1} MB:           {rate:7.2} MB/s",
        thousand.len() as f64 / 1e6
    );
}
