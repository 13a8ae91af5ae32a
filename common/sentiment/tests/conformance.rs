//! The port against the reference: every text of `tests/corpus.txt` scored by the PyPI package
//! vaderSentiment 3.3.2 (`scripts/vader-reference.sh`, which `make test` runs first) and by
//! this crate.
//!
//! Agreement rule: at least 99% of the texts within 0.005 on each of neg, neu, pos and
//! compound. The failure message lists every text outside that tolerance.

use std::path::PathBuf;

use sentiment::{Scores, polarity_scores};
use serde_json::Value;

const CORPUS: &str = include_str!("corpus.txt");
const TOLERANCE: f64 = 0.005;
const REQUIRED_SHARE: f64 = 0.99;
const MIN_CORPUS: usize = 300;

/// Where `scripts/vader-reference.sh` writes the reference scores.
fn reference_path() -> PathBuf {
    if let Some(path) = std::env::var_os("METACHAT_VADER_REFERENCE") {
        return PathBuf::from(path);
    }
    let home = std::env::var_os("HOME").unwrap_or_default();
    PathBuf::from(home).join(".cache/metachat/vader-reference-3.3.2.json")
}

/// The corpus's texts: one per line, `\n`, `\t` and `\\` as escapes (as the script decodes).
fn corpus() -> Vec<String> {
    let body = CORPUS.strip_suffix('\n').unwrap_or(CORPUS);
    body.split('\n').map(decode).collect()
}

fn decode(line: &str) -> String {
    let mut out = String::with_capacity(line.len());
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('n') => out.push('\n'),
            Some('t') => out.push('\t'),
            Some('\\') => out.push('\\'),
            Some(other) => {
                out.push('\\');
                out.push(other);
            }
            None => out.push('\\'),
        }
    }
    out
}

fn field(entry: &Value, name: &str) -> f64 {
    entry[name]
        .as_f64()
        .unwrap_or_else(|| panic!("reference entry without a numeric {name:?}: {entry}"))
}

#[test]
fn scores_match_the_reference_vader() {
    let path = reference_path();
    let json = std::fs::read_to_string(&path).unwrap_or_else(|e| {
        panic!(
            "no reference scores at {} ({e}).\nProduce them with `scripts/vader-reference.sh` \
             (`make test` and `make test-sentiment` run it; it needs python3 and PyPI the first \
             time), or point METACHAT_VADER_REFERENCE at the file.",
            path.display()
        )
    });
    let document: Value = serde_json::from_str(&json).unwrap_or_else(|e| {
        panic!(
            "{} is not JSON ({e}); rerun scripts/vader-reference.sh",
            path.display()
        )
    });
    let reference = document["scores"].as_array().cloned().unwrap_or_default();
    let texts = corpus();

    let stale = reference.len() != texts.len()
        || reference
            .iter()
            .zip(&texts)
            .any(|(entry, text)| entry["text"].as_str() != Some(text.as_str()));
    assert!(
        !stale,
        "{} was made from another corpus ({} texts, this one has {}); rerun scripts/vader-reference.sh",
        path.display(),
        reference.len(),
        texts.len()
    );
    assert!(
        texts.len() >= MIN_CORPUS,
        "the corpus should hold at least {MIN_CORPUS} texts, it has {}",
        texts.len()
    );

    let mut mismatches = Vec::new();
    let mut identical = 0;
    let mut max_diff = [0.0_f64; 4];
    for (line, (entry, text)) in reference.iter().zip(&texts).enumerate() {
        let expected = Scores {
            neg: field(entry, "neg"),
            neu: field(entry, "neu"),
            pos: field(entry, "pos"),
            compound: field(entry, "compound"),
        };
        let actual = polarity_scores(text);
        let diffs = [
            (actual.neg - expected.neg).abs(),
            (actual.neu - expected.neu).abs(),
            (actual.pos - expected.pos).abs(),
            (actual.compound - expected.compound).abs(),
        ];
        for (max, diff) in max_diff.iter_mut().zip(diffs) {
            *max = max.max(diff);
        }
        if diffs.iter().all(|d| *d < 1e-9) {
            identical += 1;
        }
        if diffs.iter().any(|d| *d > TOLERANCE) {
            mismatches.push(format!(
                "  line {}: {text:?}\n    reference {expected:?}\n    ours      {actual:?}",
                line + 1
            ));
        }
    }

    let within = texts.len() - mismatches.len();
    println!(
        "{} ({}, Python {}): {within}/{} within {TOLERANCE}, {identical} identical; \
         max difference neg {:.4} neu {:.4} pos {:.4} compound {:.4}",
        document["reference"].as_str().unwrap_or("?"),
        path.display(),
        document["python"].as_str().unwrap_or("?"),
        texts.len(),
        max_diff[0],
        max_diff[1],
        max_diff[2],
        max_diff[3],
    );
    assert!(
        within as f64 >= REQUIRED_SHARE * texts.len() as f64,
        "{} of {} texts differ from the reference by more than {TOLERANCE}:\n{}",
        mismatches.len(),
        texts.len(),
        mismatches.join("\n")
    );
}

#[test]
fn the_corpus_decodes_escapes_like_the_script() {
    assert_eq!(decode(r"a\nb\tc\\n\x"), "a\nb\tc\\n\\x");
    assert_eq!(decode("trailing\\"), "trailing\\");
    assert!(
        corpus().iter().any(String::is_empty),
        "the corpus keeps its empty text"
    );
}
