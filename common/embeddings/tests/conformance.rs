//! The real model on its real files (fetched by `scripts/model.sh`; `make test` runs it first)
//! against sentence-transformers' vectors of the same sentences, committed in
//! `reference.json` with the script that produced them (`scripts/embedding-reference.py`).

use std::sync::LazyLock;

use embeddings::{CHUNK_PIECES, DIMENSIONS, Embedder, MAX_PIECES, cosine};
use serde::Deserialize;

#[derive(Deserialize)]
struct Reference {
    vectors: Vec<Vec<f32>>,
}

static EMBEDDER: LazyLock<Embedder> = LazyLock::new(|| {
    Embedder::load(&embeddings::model_dir_from_env())
        .unwrap_or_else(|e| panic!("{e} (run scripts/model.sh, as make test does)"))
});

fn sentences() -> Vec<String> {
    serde_json::from_str(include_str!("sentences.json")).expect("sentences.json")
}

#[test]
fn every_sentence_matches_sentence_transformers_to_a_cosine_of_0_9999() {
    let sentences = sentences();
    let reference: Reference =
        serde_json::from_str(include_str!("reference.json")).expect("reference.json");
    assert_eq!(reference.vectors.len(), sentences.len());
    assert!(sentences.len() >= 50);
    // One at a time and in a padded batch: both as the reference.
    let texts: Vec<&str> = sentences.iter().map(String::as_str).collect();
    let batched: Vec<Vec<f32>> = texts
        .chunks(16)
        .flat_map(|batch| EMBEDDER.embed(batch).expect("embed a batch"))
        .collect();
    let mut worst = (1.0f32, "");
    for (i, text) in texts.iter().enumerate() {
        let single = EMBEDDER.embed(&[text]).expect("embed").remove(0);
        assert_eq!(single.len(), DIMENSIONS);
        let norm: f32 = single.iter().map(|x| x * x).sum::<f32>().sqrt();
        assert!((norm - 1.0).abs() < 1e-4, "{text:?} has norm {norm}");
        for vector in [&single, &batched[i]] {
            let similarity = cosine(vector, &reference.vectors[i]);
            if similarity < worst.0 {
                worst = (similarity, text);
            }
        }
    }
    eprintln!("lowest cosine: {} ({:?})", worst.0, worst.1);
    assert!(
        worst.0 >= 0.9999,
        "lowest cosine {} for {:?}",
        worst.0,
        worst.1
    );
}

#[test]
fn meaning_is_closer_than_wording() {
    let [anxious, worried, bread] = [
        "I felt anxious all morning before the exam.",
        "The whole morning I was nervous about the test.",
        "Learned to make bread today; the crust crackled when it cooled.",
    ]
    .map(|t| EMBEDDER.embed(&[t]).expect("embed").remove(0));
    assert!(cosine(&anxious, &worried) > cosine(&anxious, &bread) + 0.3);
}

#[test]
fn long_texts_are_cut_at_sentence_ends_into_chunks_the_model_reads_whole() {
    let sentence = "I walked along the river and thought about the year behind me. ";
    let text = sentence.repeat(60);
    assert!(EMBEDDER.pieces(&text).unwrap() > 3 * CHUNK_PIECES);
    let chunks = EMBEDDER.chunks(&text).unwrap();
    assert!(chunks.len() >= 4, "{}", chunks.len());
    for chunk in &chunks {
        let pieces = EMBEDDER.pieces(chunk).unwrap();
        assert!(
            pieces <= CHUNK_PIECES && pieces + 2 <= MAX_PIECES,
            "{pieces}"
        );
        assert!(chunk.ends_with('.'), "cut mid-sentence: {chunk:?}");
        assert!(text.contains(chunk));
    }
    // Nothing lost: the chunks hold every word, in order.
    let words = |s: &str| s.split_whitespace().map(str::to_owned).collect::<Vec<_>>();
    assert_eq!(words(&chunks.join(" ")), words(&text));
    let vectors = EMBEDDER.embed_document(&text).unwrap();
    assert_eq!(vectors.len(), chunks.len());

    // A sentence longer than a chunk is cut between words.
    let run_on = "and then we walked on ".repeat(120);
    let chunks = EMBEDDER.chunks(&run_on).unwrap();
    assert!(chunks.len() >= 2);
    for chunk in &chunks {
        assert!(EMBEDDER.pieces(chunk).unwrap() <= CHUNK_PIECES);
    }
    assert_eq!(words(&chunks.join(" ")), words(&run_on));

    // Short, empty and odd texts are one chunk, themselves.
    for text in [
        "Tired.",
        "",
        "   ",
        "😊🎉",
        "今日はとても静かな一日でした。",
    ] {
        assert_eq!(EMBEDDER.chunks(text).unwrap(), vec![text]);
        assert_eq!(EMBEDDER.embed_document(text).unwrap().len(), 1);
    }
}

#[test]
fn a_missing_model_names_the_file_and_the_script() {
    let empty = std::env::temp_dir().join("metachat-no-model");
    std::fs::create_dir_all(&empty).unwrap();
    let error = Embedder::load(&empty)
        .err()
        .expect("no model there")
        .to_string();
    assert!(
        error.contains("config.json") && error.contains("scripts/model.sh"),
        "{error}"
    );
}
