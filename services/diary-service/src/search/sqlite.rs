//! The search index in the embedded SQLite database: one row per entry (its vectors as one
//! blob) and one per term of each entry. A search reads the writer's rows and compares every
//! vector with the query's (exact nearest neighbours; see `docs/search.md` for its cost).

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};
use std::sync::{Arc, Mutex, RwLock};

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use metachat_read_model::{QueryError, time_from_micros};
use metachat_validation::{EntryId, UserId};
use sqlx::sqlite::SqlitePool;
use sqlx::{AssertSqlSafe, Row};

use super::{
    BM25_B as B, BM25_K1 as K1, Hit, IndexStats, IndexedEntry, Posting, SearchIndex, StoredVectors,
    bm25_weights, dot, vectors_from_bytes, vectors_to_bytes,
};

const SCHEMA: &[&str] = &[
    "CREATE TABLE IF NOT EXISTS entry_search_index (
        entry_id    TEXT PRIMARY KEY,
        user_id     TEXT NOT NULL,
        fingerprint INTEGER NOT NULL,
        written_at  INTEGER NOT NULL,
        length      INTEGER NOT NULL,
        keywords    TEXT NOT NULL,
        vectors     BLOB NOT NULL
    )",
    "CREATE INDEX IF NOT EXISTS entry_search_by_user
        ON entry_search_index (user_id, written_at DESC)",
    "CREATE TABLE IF NOT EXISTS entry_search_terms (
        user_id  TEXT NOT NULL,
        term     TEXT NOT NULL,
        entry_id TEXT NOT NULL,
        count    INTEGER NOT NULL,
        length   INTEGER NOT NULL,
        PRIMARY KEY (user_id, term, entry_id)
    ) WITHOUT ROWID",
    "CREATE INDEX IF NOT EXISTS entry_search_terms_by_entry ON entry_search_terms (entry_id)",
];

/// The embedded search index. Each writer's vectors are also held in memory once searched
/// ([`VectorCache`]), so a search compares vectors without reading them from the database;
/// the cache is kept in step by this object's own writes, so only one process may write the
/// index (the diary service that owns the database file).
#[derive(Clone)]
pub struct SqliteSearchIndex {
    pool: SqlitePool,
    cache: Arc<Mutex<VectorCache>>,
}

impl SqliteSearchIndex {
    pub async fn new(pool: SqlitePool) -> Result<Self, sqlx::Error> {
        Self::with_cache_budget(pool, CACHE_BYTES).await
    }

    /// As [`Self::new`], holding at most `bytes` of vectors in memory.
    pub async fn with_cache_budget(pool: SqlitePool, bytes: usize) -> Result<Self, sqlx::Error> {
        for statement in SCHEMA {
            sqlx::query(*statement).execute(&pool).await?;
        }
        Ok(Self {
            pool,
            cache: Arc::new(Mutex::new(VectorCache::new(bytes))),
        })
    }

    fn cache(&self) -> std::sync::MutexGuard<'_, VectorCache> {
        self.cache.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// `user_id`'s vectors: from memory, else read and (unless written meanwhile) kept.
    async fn user_vectors(&self, user_id: &UserId) -> Result<Arc<RwLock<UserVectors>>, QueryError> {
        let generation = {
            let mut cache = self.cache();
            if let Some(found) = cache.get(user_id) {
                return Ok(found);
            }
            cache.generation(user_id)
        };
        let rows = sqlx::query(
            "SELECT entry_id, length, vectors FROM entry_search_index WHERE user_id = ?",
        )
        .bind(user_id.to_string())
        .fetch_all(&self.pool)
        .await?;
        let mut loaded = UserVectors::default();
        for row in &rows {
            let id: String = row.try_get("entry_id")?;
            let bytes: &[u8] = row.try_get("vectors")?;
            let length: i64 = row.try_get("length")?;
            let vectors = flat_vectors(bytes).ok_or_else(|| corrupt("vectors"))?;
            loaded.insert(entry_id(&id)?, vectors, length.max(0) as u64);
        }
        let loaded = Arc::new(RwLock::new(loaded));
        self.cache().keep(user_id, generation, loaded.clone());
        Ok(loaded)
    }
}

/// Vectors held in memory at most, across writers (least recently searched dropped first).
pub const CACHE_BYTES: usize = 512 * 1024 * 1024;

/// One writer's entries in memory: each entry's chunk vectors, one after another.
#[derive(Default)]
struct UserVectors {
    entries: Vec<(EntryId, Vec<f32>)>,
    position: HashMap<EntryId, usize>,
    words: u64,
    lengths: HashMap<EntryId, u64>,
    bytes: usize,
}

impl UserVectors {
    fn insert(&mut self, id: EntryId, vectors: Vec<f32>, length: u64) {
        self.remove(&id);
        self.bytes += vectors.len() * 4;
        self.words += length;
        self.lengths.insert(id, length);
        self.position.insert(id, self.entries.len());
        self.entries.push((id, vectors));
    }

    fn remove(&mut self, id: &EntryId) {
        let Some(at) = self.position.remove(id) else {
            return;
        };
        let (_, vectors) = self.entries.swap_remove(at);
        self.bytes -= vectors.len() * 4;
        self.words -= self.lengths.remove(id).unwrap_or(0);
        if let Some((moved, _)) = self.entries.get(at) {
            self.position.insert(*moved, at);
        }
    }

    /// The `limit` entries most similar to `query`, most similar first.
    fn nearest(&self, query: &[f32], limit: usize) -> Vec<Hit> {
        let mut best: BinaryHeap<Reverse<(OrderedScore, usize)>> = BinaryHeap::new();
        for (i, (_, vectors)) in self.entries.iter().enumerate() {
            let similarity = vectors
                .chunks_exact(embeddings::DIMENSIONS)
                .map(|v| dot(v, query))
                .fold(f32::NEG_INFINITY, f32::max);
            if best.len() < limit {
                best.push(Reverse((OrderedScore(similarity), i)));
            } else if let Some(Reverse((worst, _))) = best.peek()
                && similarity > worst.0
            {
                best.pop();
                best.push(Reverse((OrderedScore(similarity), i)));
            }
        }
        let mut hits: Vec<Hit> = best
            .into_iter()
            .map(|Reverse((score, i))| Hit {
                entry_id: self.entries[i].0,
                similarity: score.0,
            })
            .collect();
        hits.sort_by(|a, b| {
            b.similarity
                .total_cmp(&a.similarity)
                .then_with(|| a.entry_id.as_uuid().cmp(b.entry_id.as_uuid()))
        });
        hits
    }
}

/// The writers' vectors in memory, and how often each writer's index was written (a read
/// from the database is kept only if no write for that writer happened while it ran).
struct VectorCache {
    users: HashMap<UserId, (Arc<RwLock<UserVectors>>, u64)>,
    writes: HashMap<UserId, u64>,
    /// Bumped by `clear`.
    epoch: u64,
    clock: u64,
    budget: usize,
}

impl VectorCache {
    fn new(budget: usize) -> Self {
        Self {
            users: HashMap::new(),
            writes: HashMap::new(),
            epoch: 0,
            clock: 0,
            budget,
        }
    }

    fn get(&mut self, user_id: &UserId) -> Option<Arc<RwLock<UserVectors>>> {
        self.clock += 1;
        let clock = self.clock;
        self.users.get_mut(user_id).map(|(vectors, used)| {
            *used = clock;
            vectors.clone()
        })
    }

    fn generation(&self, user_id: &UserId) -> (u64, u64) {
        (self.epoch, self.writes.get(user_id).copied().unwrap_or(0))
    }

    /// Keeps `vectors`, read at `generation`, unless written since or over the budget alone;
    /// drops the least recently used writers to stay within the budget.
    fn keep(
        &mut self,
        user_id: &UserId,
        generation: (u64, u64),
        vectors: Arc<RwLock<UserVectors>>,
    ) {
        let bytes = read(&vectors).bytes;
        if self.generation(user_id) != generation || bytes > self.budget {
            return;
        }
        self.clock += 1;
        self.users.insert(*user_id, (vectors, self.clock));
        while self.bytes() > self.budget {
            let oldest = self
                .users
                .iter()
                .filter(|(id, _)| *id != user_id)
                .min_by_key(|(_, (_, used))| *used)
                .map(|(id, _)| *id);
            match oldest {
                Some(id) => {
                    self.users.remove(&id);
                }
                None => break,
            }
        }
    }

    fn bytes(&self) -> usize {
        self.users.values().map(|(v, _)| read(v).bytes).sum()
    }

    /// A write of `user_id`'s index happened: applied to the cached vectors, if any.
    fn written(&mut self, user_id: &UserId, change: impl FnOnce(&mut UserVectors)) {
        *self.writes.entry(*user_id).or_default() += 1;
        if let Some((vectors, _)) = self.users.get(user_id) {
            change(&mut vectors.write().unwrap_or_else(|e| e.into_inner()));
        }
    }

    fn forget(&mut self, user_id: &UserId) {
        *self.writes.entry(*user_id).or_default() += 1;
        self.users.remove(user_id);
    }

    fn clear(&mut self) {
        self.epoch += 1;
        self.users.clear();
        self.writes.clear();
    }
}

fn read(vectors: &RwLock<UserVectors>) -> std::sync::RwLockReadGuard<'_, UserVectors> {
    vectors.read().unwrap_or_else(|e| e.into_inner())
}

/// The vectors of `bytes` (as [`vectors_to_bytes`] wrote them) as one flat run of floats.
fn flat_vectors(bytes: &[u8]) -> Option<Vec<f32>> {
    if bytes.is_empty() || !bytes.len().is_multiple_of(embeddings::DIMENSIONS * 4) {
        return None;
    }
    Some(
        bytes
            .chunks_exact(4)
            .map(|x| f32::from_le_bytes([x[0], x[1], x[2], x[3]]))
            .collect(),
    )
}

fn corrupt(what: impl std::fmt::Display) -> QueryError {
    QueryError::Backend(format!("search index: {what}").into())
}

fn entry_id(text: &str) -> Result<EntryId, QueryError> {
    text.parse()
        .map_err(|_| corrupt(format!("entry id {text:?}")))
}

fn stored(row: &sqlx::sqlite::SqliteRow) -> Result<StoredVectors, QueryError> {
    let id: String = row.try_get("entry_id")?;
    let bytes: Vec<u8> = row.try_get("vectors")?;
    let keywords: String = row.try_get("keywords")?;
    Ok(StoredVectors {
        entry_id: entry_id(&id)?,
        written_at: time_from_micros(row.try_get("written_at")?)?,
        vectors: vectors_from_bytes(&bytes).ok_or_else(|| corrupt("vectors"))?,
        keywords: serde_json::from_str(&keywords).map_err(corrupt)?,
    })
}

#[async_trait]
impl SearchIndex for SqliteSearchIndex {
    async fn fingerprint(&self, entry_id: &EntryId) -> Result<Option<i64>, QueryError> {
        Ok(
            sqlx::query_scalar("SELECT fingerprint FROM entry_search_index WHERE entry_id = ?")
                .bind(entry_id.to_string())
                .fetch_optional(&self.pool)
                .await?,
        )
    }

    async fn put(&self, entry: &IndexedEntry) -> Result<(), QueryError> {
        let id = entry.entry_id.to_string();
        let user = entry.user_id.to_string();
        let mut tx = self.pool.begin().await?;
        sqlx::query("DELETE FROM entry_search_terms WHERE entry_id = ?")
            .bind(&id)
            .execute(&mut *tx)
            .await?;
        sqlx::query(
            "INSERT INTO entry_search_index (entry_id, user_id, fingerprint, written_at, length, \
             keywords, vectors) VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (entry_id) DO UPDATE SET \
             user_id = excluded.user_id, fingerprint = excluded.fingerprint, \
             written_at = excluded.written_at, length = excluded.length, \
             keywords = excluded.keywords, vectors = excluded.vectors",
        )
        .bind(&id)
        .bind(&user)
        .bind(entry.fingerprint)
        .bind(entry.written_at.timestamp_micros())
        .bind(i64::from(entry.length))
        .bind(serde_json::to_string(&entry.keywords).map_err(corrupt)?)
        .bind(vectors_to_bytes(&entry.vectors))
        .execute(&mut *tx)
        .await?;
        for (term, count) in &entry.terms {
            sqlx::query(
                "INSERT INTO entry_search_terms (user_id, term, entry_id, count, length) \
                 VALUES (?, ?, ?, ?, ?)",
            )
            .bind(&user)
            .bind(term)
            .bind(&id)
            .bind(i64::from(*count))
            .bind(i64::from(entry.length))
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        let flat: Vec<f32> = entry.vectors.iter().flatten().copied().collect();
        self.cache().written(&entry.user_id, |cached| {
            cached.insert(entry.entry_id, flat, u64::from(entry.length));
        });
        Ok(())
    }

    async fn remove(&self, user_id: &UserId, entry_id: &EntryId) -> Result<(), QueryError> {
        let id = entry_id.to_string();
        // The writer the index holds the entry under (the caller's, unless it is corrupt).
        // Read before the transaction: a deferred transaction that reads, then writes after
        // another connection wrote, fails with "database is locked" instead of waiting.
        let owner: Option<String> =
            sqlx::query_scalar("SELECT user_id FROM entry_search_index WHERE entry_id = ?")
                .bind(&id)
                .fetch_optional(&self.pool)
                .await?;
        let mut tx = self.pool.begin().await?;
        for statement in [
            "DELETE FROM entry_search_terms WHERE entry_id = ?",
            "DELETE FROM entry_search_index WHERE entry_id = ?",
        ] {
            sqlx::query(statement).bind(&id).execute(&mut *tx).await?;
        }
        tx.commit().await?;
        let mut cache = self.cache();
        cache.written(user_id, |cached| cached.remove(entry_id));
        if let Some(owner) = owner.and_then(|o| o.parse::<UserId>().ok())
            && owner != *user_id
        {
            cache.written(&owner, |cached| cached.remove(entry_id));
        }
        Ok(())
    }

    async fn remove_user(&self, user_id: &UserId) -> Result<(), QueryError> {
        let user = user_id.to_string();
        let mut tx = self.pool.begin().await?;
        for statement in [
            "DELETE FROM entry_search_terms WHERE user_id = ?",
            "DELETE FROM entry_search_index WHERE user_id = ?",
        ] {
            sqlx::query(statement).bind(&user).execute(&mut *tx).await?;
        }
        tx.commit().await?;
        self.cache().forget(user_id);
        // What was deleted (terms and keywords of the writing) leaves the file soon.
        event_sourcing::sqlite::checkpoint_soon(&self.pool);
        Ok(())
    }

    async fn nearest(
        &self,
        user_id: &UserId,
        query: &[f32],
        limit: usize,
    ) -> Result<Vec<Hit>, QueryError> {
        let vectors = self.user_vectors(user_id).await?;
        let query = query.to_vec();
        // Up to tens of milliseconds of arithmetic for a large diary: off the async workers.
        tokio::task::spawn_blocking(move || read(&vectors).nearest(&query, limit))
            .await
            .map_err(|e| corrupt(format!("search failed: {e}")))
    }

    async fn vectors(
        &self,
        user_id: &UserId,
        entry_ids: &[EntryId],
    ) -> Result<Vec<StoredVectors>, QueryError> {
        let mut found = Vec::with_capacity(entry_ids.len());
        for id in entry_ids {
            let row = sqlx::query(
                "SELECT entry_id, written_at, keywords, vectors FROM entry_search_index \
                 WHERE entry_id = ? AND user_id = ?",
            )
            .bind(id.to_string())
            .bind(user_id.to_string())
            .fetch_optional(&self.pool)
            .await?;
            if let Some(row) = row {
                found.push(stored(&row)?);
            }
        }
        Ok(found)
    }

    async fn postings(
        &self,
        user_id: &UserId,
        terms: &[String],
    ) -> Result<Vec<Posting>, QueryError> {
        let mut postings = Vec::new();
        for term in terms {
            let rows = sqlx::query(
                "SELECT entry_id, count, length FROM entry_search_terms \
                 WHERE user_id = ? AND term = ?",
            )
            .bind(user_id.to_string())
            .bind(term)
            .fetch_all(&self.pool)
            .await?;
            for row in rows {
                let id: String = row.try_get("entry_id")?;
                let count: i64 = row.try_get("count")?;
                let length: i64 = row.try_get("length")?;
                postings.push(Posting {
                    term: term.clone(),
                    entry_id: entry_id(&id)?,
                    count: u32::try_from(count).unwrap_or(u32::MAX),
                    length: u32::try_from(length).unwrap_or(u32::MAX),
                });
            }
        }
        Ok(postings)
    }

    async fn stats(&self, user_id: &UserId) -> Result<IndexStats, QueryError> {
        let vectors = self.user_vectors(user_id).await?;
        let cached = read(&vectors);
        Ok(IndexStats {
            entries: cached.entries.len() as u64,
            words: cached.words,
        })
    }

    async fn document_frequencies(
        &self,
        user_id: &UserId,
        terms: &[String],
    ) -> Result<Vec<u64>, QueryError> {
        let user = user_id.to_string();
        let mut frequencies = Vec::with_capacity(terms.len());
        for term in terms {
            let df: i64 = sqlx::query_scalar(
                "SELECT COUNT(*) FROM entry_search_terms WHERE user_id = ? AND term = ?",
            )
            .bind(&user)
            .bind(term)
            .fetch_one(&self.pool)
            .await?;
            frequencies.push(df.max(0) as u64);
        }
        Ok(frequencies)
    }

    /// BM25 summed where the postings are: SQLite returns the `limit` best entries and those
    /// of `also`, not every posting of a frequent term.
    async fn keyword_matches(
        &self,
        user_id: &UserId,
        terms: &[String],
        also: &[EntryId],
        limit: usize,
    ) -> Result<HashMap<EntryId, f32>, QueryError> {
        if terms.is_empty() {
            return Ok(HashMap::new());
        }
        let stats = self.stats(user_id).await?;
        if stats.entries == 0 {
            return Ok(HashMap::new());
        }
        let user = user_id.to_string();
        let frequencies: Vec<f32> = self
            .document_frequencies(user_id, terms)
            .await?
            .into_iter()
            .map(|df| df as f32)
            .collect();
        let weights = bm25_weights(&frequencies, stats);
        let Some(weights) = weights else {
            return Ok(HashMap::new());
        };
        let average = (stats.words as f32 / stats.entries as f32).max(1.0);
        // score = Σ weight(term) · saturated tf, each term's weight bound in by a CASE.
        let cases: String = (0..terms.len()).map(|_| " WHEN ? THEN ?").collect();
        let score = format!(
            "SUM((CASE term{cases} ELSE 0 END) * MIN(1.0, count * 1.0 / (count + {K1} * \
             (1 - {B} + {B} * length / ?))))"
        );
        let placeholders = vec!["?"; terms.len()].join(", ");
        let best_sql = format!(
            "SELECT entry_id, {score} AS score FROM entry_search_terms \
             WHERE user_id = ? AND term IN ({placeholders}) GROUP BY entry_id \
             ORDER BY score DESC, entry_id LIMIT ?"
        );
        let mut best = sqlx::query(AssertSqlSafe(best_sql));
        for (term, weight) in terms.iter().zip(&weights) {
            best = best.bind(term).bind(*weight);
        }
        best = best.bind(average).bind(&user);
        for term in terms {
            best = best.bind(term);
        }
        let rows = best
            .bind(i64::try_from(limit).unwrap_or(i64::MAX))
            .fetch_all(&self.pool)
            .await?;
        let mut scores = HashMap::new();
        for row in &rows {
            let id: String = row.try_get("entry_id")?;
            let score: f64 = row.try_get("score")?;
            scores.insert(entry_id(&id)?, score as f32);
        }
        let missing: Vec<String> = also
            .iter()
            .filter(|id| !scores.contains_key(*id))
            .map(ToString::to_string)
            .collect();
        for ids in missing.chunks(200) {
            let sql = format!(
                "SELECT entry_id, {score} AS score FROM entry_search_terms \
                 WHERE user_id = ? AND term IN ({placeholders}) AND entry_id IN ({}) \
                 GROUP BY entry_id",
                vec!["?"; ids.len()].join(", ")
            );
            let mut query = sqlx::query(AssertSqlSafe(sql));
            for (term, weight) in terms.iter().zip(&weights) {
                query = query.bind(term).bind(*weight);
            }
            query = query.bind(average).bind(&user);
            for term in terms {
                query = query.bind(term);
            }
            for id in ids {
                query = query.bind(id);
            }
            for row in query.fetch_all(&self.pool).await? {
                let id: String = row.try_get("entry_id")?;
                let score: f64 = row.try_get("score")?;
                scores.insert(entry_id(&id)?, score as f32);
            }
        }
        Ok(scores)
    }

    async fn written_between(
        &self,
        user_id: &UserId,
        start: DateTime<Utc>,
        end: DateTime<Utc>,
        limit: usize,
    ) -> Result<Vec<StoredVectors>, QueryError> {
        let rows = sqlx::query(
            "SELECT entry_id, written_at, keywords, vectors FROM entry_search_index \
             WHERE user_id = ? AND written_at >= ? AND written_at < ? \
             ORDER BY written_at DESC, entry_id DESC LIMIT ?",
        )
        .bind(user_id.to_string())
        .bind(start.timestamp_micros())
        .bind(end.timestamp_micros())
        .bind(i64::try_from(limit).unwrap_or(i64::MAX))
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(stored).collect()
    }

    async fn clear(&self) -> Result<(), QueryError> {
        let mut tx = self.pool.begin().await?;
        for statement in [
            "DELETE FROM entry_search_terms",
            "DELETE FROM entry_search_index",
        ] {
            sqlx::query(statement).execute(&mut *tx).await?;
        }
        tx.commit().await?;
        self.cache().clear();
        Ok(())
    }
}

/// A similarity that orders totally (for the heap of best hits).
#[derive(Debug, Clone, Copy, PartialEq)]
struct OrderedScore(f32);

impl Eq for OrderedScore {}

impl PartialOrd for OrderedScore {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for OrderedScore {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.0.total_cmp(&other.0)
    }
}
