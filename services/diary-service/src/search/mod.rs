//! Search by meaning: each live entry's sentence embeddings (one per chunk of its text) and
//! search terms are kept in a [`SearchIndex`] beside the read models by the
//! [`indexer::EntryIndexer`], a follower of the diary events like the entry analyzer. The use
//! cases ([`crate::application::Diary::search`], `related`, `themes`) rank a writer's own
//! entries by the cosine similarity of their embeddings with the query's, blended with a
//! keyword score (BM25 over the stemmed terms), as [`rank`] describes.
//!
//! What is indexed is derived from the writer's text, so it follows the analysis switch: an
//! entry is indexed only while its writer's analysis is on, and its vectors and terms are
//! removed when it is deleted or analysis is switched off.

pub mod cassandra;
pub mod indexer;
pub mod sqlite;
pub mod themes;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use embeddings::Embedder;
use metachat_read_model::QueryError;
use metachat_validation::{EntryId, UserId};

/// Everything the index keeps of one entry.
#[derive(Debug, Clone, PartialEq)]
pub struct IndexedEntry {
    pub entry_id: EntryId,
    pub user_id: UserId,
    /// A fingerprint of the text indexed (title and content): an entry is indexed again only
    /// when it changed.
    pub fingerprint: i64,
    /// When the entry was written.
    pub written_at: DateTime<Utc>,
    /// Unit-length embeddings, one per chunk of the text, in order.
    pub vectors: Vec<Vec<f32>>,
    /// Stemmed terms with their counts ([`analysis::terms`]).
    pub terms: Vec<(String, u32)>,
    /// Words in the text: the document length of BM25.
    pub length: u32,
    /// The text's keywords, best first: the labels of themes.
    pub keywords: Vec<String>,
}

/// An entry's vectors and what labels it, as searches and themes read them.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredVectors {
    pub entry_id: EntryId,
    pub written_at: DateTime<Utc>,
    pub vectors: Vec<Vec<f32>>,
    pub keywords: Vec<String>,
}

impl StoredVectors {
    /// The entry's similarity to `query`: that of its closest chunk.
    pub fn similarity(&self, query: &[f32]) -> f32 {
        self.vectors
            .iter()
            .map(|v| dot(v, query))
            .fold(f32::NEG_INFINITY, f32::max)
            .max(-1.0)
    }

    /// The mean of its chunks' vectors, at unit length: the entry as one point.
    pub fn centroid(&self) -> Vec<f32> {
        mean_unit(&self.vectors)
    }
}

/// An entry with its similarity to a query.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Hit {
    pub entry_id: EntryId,
    pub similarity: f32,
}

/// One term of one entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Posting {
    pub term: String,
    pub entry_id: EntryId,
    pub count: u32,
    pub length: u32,
}

/// The size of a writer's index: entries and their total length in words.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct IndexStats {
    pub entries: u64,
    pub words: u64,
}

/// Where the entries' vectors and terms are kept: SQLite embedded ([`sqlite`]), Cassandra in
/// the production wiring ([`cassandra`]). Only the [`indexer::EntryIndexer`] writes.
#[async_trait]
pub trait SearchIndex: Send + Sync + 'static {
    /// The fingerprint of the text `entry_id` is indexed with; `None` when it is not indexed.
    async fn fingerprint(&self, entry_id: &EntryId) -> Result<Option<i64>, QueryError>;

    /// Stores `entry`, replacing what the index held of it.
    async fn put(&self, entry: &IndexedEntry) -> Result<(), QueryError>;

    /// Removes an entry of `user_id` (nothing when it is not indexed).
    async fn remove(&self, user_id: &UserId, entry_id: &EntryId) -> Result<(), QueryError>;

    /// Removes every entry of `user_id`.
    async fn remove_user(&self, user_id: &UserId) -> Result<(), QueryError>;

    /// The `limit` entries of `user_id` most similar to `query` (by their closest chunk),
    /// most similar first.
    async fn nearest(
        &self,
        user_id: &UserId,
        query: &[f32],
        limit: usize,
    ) -> Result<Vec<Hit>, QueryError>;

    /// The stored vectors of those of `entry_ids` that belong to `user_id` and are indexed.
    async fn vectors(
        &self,
        user_id: &UserId,
        entry_ids: &[EntryId],
    ) -> Result<Vec<StoredVectors>, QueryError>;

    /// The postings of `terms` among `user_id`'s entries.
    async fn postings(
        &self,
        user_id: &UserId,
        terms: &[String],
    ) -> Result<Vec<Posting>, QueryError>;

    /// How many entries of `user_id` are indexed, and their words.
    async fn stats(&self, user_id: &UserId) -> Result<IndexStats, QueryError>;

    /// How many of `user_id`'s entries hold each of `terms`.
    async fn document_frequencies(
        &self,
        user_id: &UserId,
        terms: &[String],
    ) -> Result<Vec<u64>, QueryError> {
        let postings = self.postings(user_id, terms).await?;
        Ok(terms
            .iter()
            .map(|t| postings.iter().filter(|p| &p.term == t).count() as u64)
            .collect())
    }

    /// The keyword scores ([`keyword_scores`]) of `terms` in `user_id`'s entries: those of
    /// the `limit` best entries, and of each of `also` that holds any of the terms. A store
    /// may compute them where the postings are rather than read them all.
    async fn keyword_matches(
        &self,
        user_id: &UserId,
        terms: &[String],
        also: &[EntryId],
        limit: usize,
    ) -> Result<HashMap<EntryId, f32>, QueryError> {
        let postings = self.postings(user_id, terms).await?;
        let stats = self.stats(user_id).await?;
        Ok(best_and(
            keyword_scores(terms, &postings, stats),
            also,
            limit,
        ))
    }

    /// The vectors of `user_id`'s entries written in `[start, end)`, newest first, at most
    /// `limit`.
    async fn written_between(
        &self,
        user_id: &UserId,
        start: DateTime<Utc>,
        end: DateTime<Utc>,
        limit: usize,
    ) -> Result<Vec<StoredVectors>, QueryError>;

    /// Removes everything (a rebuild indexes every entry again).
    async fn clear(&self) -> Result<(), QueryError>;
}

/// The sentence-embedding model and the index the use cases search.
#[derive(Clone)]
pub struct Semantic {
    pub model: Arc<Embedder>,
    pub index: Arc<dyn SearchIndex>,
}

/// Where the model is read from: `METACHAT_MODEL_DIR`, else
/// `~/.cache/metachat/models/all-MiniLM-L6-v2`, where `scripts/model.sh` puts it.
pub fn model_dir(env: &metachat_runtime::Env) -> PathBuf {
    embeddings::model_dir(
        env.var(embeddings::DIR_VARIABLE).as_deref(),
        env.var("HOME").as_deref(),
    )
}

/// Loads the model from `dir`, saying once at start-up whether search by meaning is on;
/// `None` (and a warning naming the directory and the fix) when it cannot be loaded.
pub fn load_model(dir: &Path) -> Option<Arc<Embedder>> {
    let started = std::time::Instant::now();
    match Embedder::load(dir) {
        Ok(model) => {
            tracing::info!(
                model = embeddings::MODEL,
                dir = %dir.display(),
                elapsed_ms = started.elapsed().as_millis() as u64,
                "sentence-embedding model loaded: search by meaning, related entries and themes are on"
            );
            Some(Arc::new(model))
        }
        Err(error) => {
            tracing::warn!(
                %error,
                "search by meaning, related entries and themes are off (their routes answer 503): \
                 run scripts/model.sh to install the model, or set METACHAT_MODEL_DIR"
            );
            None
        }
    }
}

/// The dot product: the cosine similarity of unit vectors.
pub fn dot(a: &[f32], b: &[f32]) -> f32 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

/// The mean of `vectors`, scaled to unit length (zeros when they cancel out or are none).
pub fn mean_unit(vectors: &[Vec<f32>]) -> Vec<f32> {
    let mut mean = vec![0f32; embeddings::DIMENSIONS];
    for v in vectors {
        for (m, x) in mean.iter_mut().zip(v) {
            *m += x;
        }
    }
    let norm = dot(&mean, &mean).sqrt();
    if norm > 0.0 {
        mean.iter_mut().for_each(|m| *m /= norm);
    }
    mean
}

/// How the semantic and keyword scores are blended: `score = SEMANTIC_WEIGHT * similarity +
/// (1 - SEMANTIC_WEIGHT) * keyword`.
pub const SEMANTIC_WEIGHT: f32 = 0.7;

/// An entry is a result when its blended score reaches this (unrelated English text scores
/// 0.0–0.15 with this model), or when it holds a word of the query.
pub const MIN_SCORE: f32 = 0.2;

/// Candidates taken from each side (semantic, keyword) before blending: a search ranks at
/// most twice this many entries, and pages through at most this many results.
pub const CANDIDATES: usize = 100;

/// BM25's term-frequency saturation and length normalisation (the usual values).
pub const BM25_K1: f32 = 1.2;
pub const BM25_B: f32 = 0.75;

/// Each query term's weight in the keyword score: its IDF among the writer's entries (from
/// `frequencies`, the entries holding each term), over the sum of all terms' IDFs, so a score
/// is at most 1. `None` when no term can weigh anything.
pub fn bm25_weights(frequencies: &[f32], stats: IndexStats) -> Option<Vec<f32>> {
    let n = stats.entries as f32;
    let idf: Vec<f32> = frequencies
        .iter()
        .map(|df| (1.0 + (n - df + 0.5) / (df + 0.5)).ln())
        .collect();
    let bound: f32 = idf.iter().sum();
    (n > 0.0 && bound > 0.0).then(|| idf.iter().map(|i| i / bound).collect())
}

/// One ranked result.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Ranked {
    pub entry_id: EntryId,
    /// The blended score, in [0, 1] for the entries that pass [`MIN_SCORE`].
    pub score: f32,
    /// Cosine similarity of the query and the entry's closest chunk.
    pub similarity: f32,
    /// BM25 of the query's terms in the entry, divided by the most any entry could score
    /// (every term, saturated): in [0, 1].
    pub keyword: f32,
}

/// The keyword score of each entry in `postings` for a query made of `query_terms`: BM25
/// with the writer's own statistics, divided by its bound (each term present, saturated), so
/// 1 means every term of the query, often.
pub fn keyword_scores(
    query_terms: &[String],
    postings: &[Posting],
    stats: IndexStats,
) -> HashMap<EntryId, f32> {
    let mut scores: HashMap<EntryId, f32> = HashMap::new();
    if query_terms.is_empty() || stats.entries == 0 {
        return scores;
    }
    let average = (stats.words as f32 / stats.entries as f32).max(1.0);
    let frequencies: Vec<f32> = query_terms
        .iter()
        .map(|t| postings.iter().filter(|p| &p.term == t).count() as f32)
        .collect();
    let Some(weights) = bm25_weights(&frequencies, stats) else {
        return scores;
    };
    let weight: HashMap<&str, f32> = query_terms
        .iter()
        .map(String::as_str)
        .zip(weights)
        .collect();
    for p in postings {
        let tf = p.count as f32;
        let norm = 1.0 - BM25_B + BM25_B * p.length as f32 / average;
        // BM25's saturation over its bound (k1 + 1): in [0, 1).
        let saturated = tf / (tf + BM25_K1 * norm);
        *scores.entry(p.entry_id).or_default() +=
            weight.get(p.term.as_str()).copied().unwrap_or(0.0) * saturated.min(1.0);
    }
    scores
}

/// The `limit` best of `scores`, and those of `also`.
pub fn best_and(
    mut scores: HashMap<EntryId, f32>,
    also: &[EntryId],
    limit: usize,
) -> HashMap<EntryId, f32> {
    if scores.len() <= limit {
        return scores;
    }
    let mut ranked: Vec<(EntryId, f32)> = scores.iter().map(|(id, s)| (*id, *s)).collect();
    ranked.sort_by(|a, b| {
        b.1.total_cmp(&a.1)
            .then_with(|| a.0.as_uuid().cmp(b.0.as_uuid()))
    });
    let mut kept: HashMap<EntryId, f32> = ranked.into_iter().take(limit).collect();
    for id in also {
        if let Some(score) = scores.remove(id) {
            kept.insert(*id, score);
        }
    }
    kept
}

/// Blends each candidate's similarity and keyword score, keeps those reaching [`MIN_SCORE`]
/// and those holding a word of the query (a name written once in a long entry is a match,
/// however low its score), best first (ties by entry id, so pages are stable).
pub fn rank(similarities: &HashMap<EntryId, f32>, keywords: &HashMap<EntryId, f32>) -> Vec<Ranked> {
    let mut ranked: Vec<Ranked> = similarities
        .keys()
        .chain(keywords.keys())
        .collect::<std::collections::BTreeSet<_>>()
        .into_iter()
        .map(|id| {
            let similarity = similarities.get(id).copied().unwrap_or(0.0);
            let keyword = keywords.get(id).copied().unwrap_or(0.0).clamp(0.0, 1.0);
            Ranked {
                entry_id: *id,
                score: SEMANTIC_WEIGHT * similarity.max(0.0) + (1.0 - SEMANTIC_WEIGHT) * keyword,
                similarity,
                keyword,
            }
        })
        .filter(|r| r.score >= MIN_SCORE || r.keyword > 0.0)
        .collect();
    ranked.sort_by(|a, b| {
        b.score
            .total_cmp(&a.score)
            .then_with(|| a.entry_id.as_uuid().cmp(b.entry_id.as_uuid()))
    });
    ranked
}

/// The text of an entry as it is embedded: its title, then its content.
pub fn indexed_text(title: &str, content: &str) -> String {
    let title = title.trim();
    if title.is_empty() {
        content.to_owned()
    } else {
        format!("{title}\n\n{content}")
    }
}

/// A stable fingerprint of the indexed text (FNV-1a, 64 bits).
pub fn fingerprint(text: &str) -> i64 {
    use std::hash::Hasher;
    let mut hasher = fnv::FnvHasher::default();
    hasher.write(text.as_bytes());
    hasher.finish() as i64
}

/// Vectors as stored: little-endian `f32`s, one vector after another.
pub fn vectors_to_bytes(vectors: &[Vec<f32>]) -> Vec<u8> {
    vectors
        .iter()
        .flat_map(|v| v.iter().flat_map(|x| x.to_le_bytes()))
        .collect()
}

/// The vectors [`vectors_to_bytes`] stored; `None` when the bytes are not whole vectors.
pub fn vectors_from_bytes(bytes: &[u8]) -> Option<Vec<Vec<f32>>> {
    let width = embeddings::DIMENSIONS * 4;
    if bytes.is_empty() || !bytes.len().is_multiple_of(width) {
        return None;
    }
    Some(
        bytes
            .chunks_exact(width)
            .map(|v| {
                v.chunks_exact(4)
                    .map(|x| f32::from_le_bytes([x[0], x[1], x[2], x[3]]))
                    .collect()
            })
            .collect(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn posting(term: &str, entry: EntryId, count: u32, length: u32) -> Posting {
        Posting {
            term: term.to_owned(),
            entry_id: entry,
            count,
            length,
        }
    }

    #[test]
    fn rare_terms_weigh_more_and_every_term_scores_one() {
        let (a, b, c) = (EntryId::new(), EntryId::new(), EntryId::new());
        let terms = vec!["cello".to_owned(), "practic".to_owned()];
        let postings = vec![
            posting("cello", a, 3, 50),
            posting("practic", a, 3, 50),
            posting("practic", b, 1, 50),
            posting("practic", c, 1, 50),
        ];
        let stats = IndexStats {
            entries: 10,
            words: 500,
        };
        let scores = keyword_scores(&terms, &postings, stats);
        assert!(scores[&a] > 0.7 && scores[&a] <= 1.0, "{scores:?}");
        assert!(scores[&b] < 0.3, "{scores:?}");
        assert_eq!(scores[&b], scores[&c]);
        assert!(keyword_scores(&[], &postings, stats).is_empty());
    }

    #[test]
    fn ranking_blends_filters_and_orders() {
        let (a, b, c, d) = (
            EntryId::new(),
            EntryId::new(),
            EntryId::new(),
            EntryId::new(),
        );
        let similarities = HashMap::from([(a, 0.6), (b, 0.5), (c, 0.05)]);
        let keywords = HashMap::from([(b, 1.0), (d, 0.7)]);
        let ranked = rank(&similarities, &keywords);
        let order: Vec<EntryId> = ranked.iter().map(|r| r.entry_id).collect();
        assert_eq!(order, vec![b, a, d]);
        // A word of the query makes a result, however low the blend.
        let faint = rank(&HashMap::from([(c, 0.05)]), &HashMap::from([(c, 0.1)]));
        assert_eq!(faint.len(), 1);
        assert!(faint[0].score < MIN_SCORE);
        assert!((ranked[0].score - (0.7 * 0.5 + 0.3)).abs() < 1e-6);
        assert_eq!(ranked[2].similarity, 0.0);
    }

    #[test]
    fn vectors_round_trip_as_bytes() {
        let v = vec![
            vec![0.5f32; embeddings::DIMENSIONS],
            vec![-1.0; embeddings::DIMENSIONS],
        ];
        assert_eq!(vectors_from_bytes(&vectors_to_bytes(&v)), Some(v));
        assert_eq!(vectors_from_bytes(&[0u8; 7]), None);
        assert_eq!(vectors_from_bytes(&[]), None);
    }
}
