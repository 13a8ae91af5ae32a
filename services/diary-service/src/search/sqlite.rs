//! The search index in the embedded SQLite database: one row per entry (its vectors as one
//! blob) and one per term of each entry. A search reads the writer's rows and compares every
//! vector with the query's (exact nearest neighbours; see `docs/search.md` for its cost).

use std::cmp::Reverse;
use std::collections::BinaryHeap;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use futures::TryStreamExt;
use metachat_read_model::{QueryError, time_from_micros};
use metachat_validation::{EntryId, UserId};
use sqlx::Row;
use sqlx::sqlite::SqlitePool;

use super::{
    Hit, IndexStats, IndexedEntry, Posting, SearchIndex, StoredVectors, vectors_from_bytes,
    vectors_to_bytes,
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

/// The embedded search index.
#[derive(Clone)]
pub struct SqliteSearchIndex {
    pool: SqlitePool,
}

impl SqliteSearchIndex {
    pub async fn new(pool: SqlitePool) -> Result<Self, sqlx::Error> {
        for statement in SCHEMA {
            sqlx::query(*statement).execute(&pool).await?;
        }
        Ok(Self { pool })
    }
}

fn corrupt(what: impl std::fmt::Display) -> QueryError {
    QueryError::Backend(format!("search index: {what}").into())
}

fn entry_id(text: &str) -> Result<EntryId, QueryError> {
    text.parse().map_err(|_| corrupt(format!("entry id {text:?}")))
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
        Ok(())
    }

    async fn remove(&self, _user_id: &UserId, entry_id: &EntryId) -> Result<(), QueryError> {
        let id = entry_id.to_string();
        let mut tx = self.pool.begin().await?;
        for statement in [
            "DELETE FROM entry_search_terms WHERE entry_id = ?",
            "DELETE FROM entry_search_index WHERE entry_id = ?",
        ] {
            sqlx::query(statement).bind(&id).execute(&mut *tx).await?;
        }
        tx.commit().await?;
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
        Ok(())
    }

    async fn nearest(
        &self,
        user_id: &UserId,
        query: &[f32],
        limit: usize,
    ) -> Result<Vec<Hit>, QueryError> {
        // The `limit` best so far, the worst on top.
        let mut best: BinaryHeap<Reverse<(OrderedScore, String)>> = BinaryHeap::new();
        let mut rows = sqlx::query("SELECT entry_id, vectors FROM entry_search_index WHERE user_id = ?")
            .bind(user_id.to_string())
            .fetch(&self.pool);
        while let Some(row) = rows.try_next().await? {
            let bytes: &[u8] = row.try_get("vectors")?;
            let similarity = best_chunk(bytes, query).ok_or_else(|| corrupt("vectors"))?;
            if best.len() < limit {
                best.push(Reverse((OrderedScore(similarity), row.try_get("entry_id")?)));
            } else if let Some(Reverse((worst, _))) = best.peek()
                && similarity > worst.0
            {
                best.pop();
                best.push(Reverse((OrderedScore(similarity), row.try_get("entry_id")?)));
            }
        }
        let mut hits = best
            .into_iter()
            .map(|Reverse((score, id))| {
                Ok(Hit {
                    entry_id: entry_id(&id)?,
                    similarity: score.0,
                })
            })
            .collect::<Result<Vec<_>, QueryError>>()?;
        hits.sort_by(|a, b| b.similarity.total_cmp(&a.similarity));
        Ok(hits)
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
        let row = sqlx::query(
            "SELECT COUNT(*) AS entries, COALESCE(SUM(length), 0) AS words \
             FROM entry_search_index WHERE user_id = ?",
        )
        .bind(user_id.to_string())
        .fetch_one(&self.pool)
        .await?;
        let entries: i64 = row.try_get("entries")?;
        let words: i64 = row.try_get("words")?;
        Ok(IndexStats {
            entries: entries.max(0) as u64,
            words: words.max(0) as u64,
        })
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
        for statement in ["DELETE FROM entry_search_terms", "DELETE FROM entry_search_index"] {
            sqlx::query(statement).execute(&mut *tx).await?;
        }
        tx.commit().await?;
        Ok(())
    }
}

/// The similarity of `query` to the closest of the vectors stored in `bytes`, read in place.
fn best_chunk(bytes: &[u8], query: &[f32]) -> Option<f32> {
    let width = embeddings::DIMENSIONS * 4;
    if bytes.is_empty() || bytes.len() % width != 0 {
        return None;
    }
    bytes
        .chunks_exact(width)
        .map(|v| {
            v.chunks_exact(4)
                .zip(query)
                .map(|(x, q)| f32::from_le_bytes([x[0], x[1], x[2], x[3]]) * q)
                .sum::<f32>()
        })
        .reduce(f32::max)
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
