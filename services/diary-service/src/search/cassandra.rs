//! The search index in Cassandra (production wiring): the same contract and the same results
//! as [`super::sqlite::SqliteSearchIndex`], in the tables of `cql/004_search_index.cql`:
//!
//! - `entry_search_vectors`, partitioned by user, one row per chunk, under a Cassandra 5.0
//!   storage-attached (SAI) vector index with cosine similarity. [`SearchIndex::nearest`] is
//!   one `ORDER BY vector ANN OF ?` query restricted to the writer's partition.
//! - `entry_search_entries`, partitioned by user, one row per entry: fingerprint, time
//!   written, length, keywords, and the terms and chunk count a replacement or a removal
//!   has to delete. [`SearchIndex::stats`] aggregates this partition.
//! - `entry_search_owner`, by entry id: the writer and the fingerprint
//!   ([`SearchIndex::fingerprint`] is asked with the entry id alone).
//! - `entry_search_by_time`, partitioned by user and clustered newest first:
//!   [`SearchIndex::written_between`] reads one slice (rather than every entry of the writer,
//!   filtered and sorted here: one partition slice stays cheap whatever the writer's number
//!   of entries, for one more small write per put).
//! - `entry_search_terms`, partitioned by (user, term): the postings.
//!
//! What Cassandra's vector search imposes (5.0):
//!
//! - An ANN query needs a `LIMIT` of at most 1000 rows ([`ANN_MAX_ROWS`]), cannot be paged
//!   (it is executed unpaged: with a page size it must be larger than the limit), and runs at
//!   consistency `ONE`/`LOCAL_ONE` (Cassandra downgrades a stronger level, with a warning;
//!   the statement asks for `LOCAL_ONE`). Rows are chunks: the query asks for
//!   [`CHUNKS_PER_HIT`] rows per entry wanted, and more (up to 1000) when the chunks found
//!   belong to fewer entries. A writer whose `limit` best entries span more than 1000
//!   chunks gets fewer than `limit` hits.
//! - `similarity_cosine` answers `(1 + cosine) / 2`, in `[0, 1]`; hits carry the cosine
//!   (`2s - 1`), what the SQLite index computes (the dot product of unit vectors).
//! - Concurrent vector writes: Cassandra 5.0.9 fails a write ("Number of outstanding pooled
//!   objects has gone beyond the limit of N", jvector's pool; N was 3 on a 2-processor test
//!   node) when more than N inserts add to one table's in-memory vector graph at once
//!   (CASSANDRA-21644, fixed upstream after 5.0.9). A put therefore writes its vectors one
//!   at a time (its postings concurrently); a put that fails anyway fails its event, which
//!   the projection runner applies again.
//! - Cosine is undefined for a zero vector: Cassandra refuses to index or query one, so a
//!   zero query finds nothing here (every entry would score 0 in SQLite, which ranks
//!   nothing either, [`super::MIN_SCORE`] being above zero).
//!
//! Writes are several statements, not one transaction. Their order keeps an interrupted
//! write repairable: a put first records, in the entry's row, every term and chunk it may
//! leave behind, and clears the owner row's fingerprint; it writes the fingerprint last. So
//! an interrupted put leaves an entry that is not current (the indexer puts it again) and
//! that a removal can find and delete whole. A removal deletes the owner row first (the
//! entry is no longer current) and the entry's row last (it lists what to delete).
//!
//! Every statement names its tables fully qualified with the configured keyspace.

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use futures::TryStreamExt;
use futures::stream::{FuturesOrdered, FuturesUnordered};
use metachat_cassandra::{CassandraError, qualified};
use metachat_read_model::{QueryError, time_from_micros};
use metachat_validation::{EntryId, UserId};
use scylla::client::session::Session;
use scylla::deserialize::row::DeserializeRow;
use scylla::serialize::row::SerializeRow;
use scylla::statement::Consistency;
use scylla::statement::prepared::PreparedStatement;
use uuid::Uuid;

use super::{Hit, IndexStats, IndexedEntry, Posting, SearchIndex, StoredVectors};

/// The most rows an ANN query may ask for (Cassandra refuses a larger `LIMIT`).
pub const ANN_MAX_ROWS: usize = 1000;

/// Chunk rows asked for per entry wanted, at first.
pub const CHUNKS_PER_HIT: usize = 4;

/// Statements in flight at once for the writes of one call.
const IN_FLIGHT: usize = 32;

/// Reads in flight at once for one call.
const READS_IN_FLIGHT: usize = 8;

/// Entry ids per `IN (...)` read.
const IN_BATCH: usize = 100;

const ENTRIES: &str = "entry_search_entries";
const OWNER: &str = "entry_search_owner";
const BY_TIME: &str = "entry_search_by_time";
const VECTORS: &str = "entry_search_vectors";
const TERMS: &str = "entry_search_terms";

/// The index's tables, as [`SearchIndex::clear`] truncates them: the owners first, so that
/// no entry is taken as current while the others are emptied.
const TABLES: [&str; 5] = [OWNER, TERMS, VECTORS, BY_TIME, ENTRIES];

struct Statements {
    owner: PreparedStatement,
    claim_owner: PreparedStatement,
    put_owner: PreparedStatement,
    delete_owner: PreparedStatement,
    entry: PreparedStatement,
    claim_entry: PreparedStatement,
    put_entry: PreparedStatement,
    delete_entry: PreparedStatement,
    entries_of_user: PreparedStatement,
    delete_entries_of_user: PreparedStatement,
    entries_in: PreparedStatement,
    stats: PreparedStatement,
    put_by_time: PreparedStatement,
    delete_by_time: PreparedStatement,
    delete_by_time_of_user: PreparedStatement,
    written_between: PreparedStatement,
    written_at: PreparedStatement,
    put_vector: PreparedStatement,
    delete_chunks_from: PreparedStatement,
    delete_vectors_of_entry: PreparedStatement,
    delete_vectors_of_user: PreparedStatement,
    vectors_in: PreparedStatement,
    nearest: PreparedStatement,
    put_term: PreparedStatement,
    delete_term: PreparedStatement,
    delete_term_of_user: PreparedStatement,
    postings: PreparedStatement,
}

/// The search index in Cassandra.
pub struct CassandraSearchIndex {
    session: Arc<Session>,
    /// The tables of [`TABLES`], qualified.
    tables: Vec<String>,
    statements: Statements,
}

impl CassandraSearchIndex {
    /// Prepares the statements, on a `keyspace` that is already migrated.
    pub async fn prepare(session: Arc<Session>, keyspace: &str) -> Result<Self, CassandraError> {
        let s = &session;
        let entries = qualified(keyspace, ENTRIES);
        let owner = qualified(keyspace, OWNER);
        let by_time = qualified(keyspace, BY_TIME);
        let vectors = qualified(keyspace, VECTORS);
        let terms = qualified(keyspace, TERMS);
        let mut nearest = prepare(
            s,
            &format!(
                "SELECT entry_id, similarity_cosine(vector, ?) FROM {vectors} \
                 WHERE user_id = ? ORDER BY vector ANN OF ? LIMIT ?"
            ),
        )
        .await?;
        // What SAI's ANN queries support; a stronger level is downgraded with a warning.
        nearest.set_consistency(Consistency::LocalOne);
        let statements = Statements {
            owner: prepare(
                s,
                &format!("SELECT user_id, fingerprint FROM {owner} WHERE entry_id = ?"),
            )
            .await?,
            claim_owner: prepare(
                s,
                &format!("UPDATE {owner} SET user_id = ?, fingerprint = null WHERE entry_id = ?"),
            )
            .await?,
            put_owner: prepare(
                s,
                &format!("INSERT INTO {owner} (entry_id, user_id, fingerprint) VALUES (?, ?, ?)"),
            )
            .await?,
            delete_owner: prepare(s, &format!("DELETE FROM {owner} WHERE entry_id = ?")).await?,
            entry: prepare(
                s,
                &format!(
                    "SELECT terms, chunks, written_at_micros FROM {entries} \
                     WHERE user_id = ? AND entry_id = ?"
                ),
            )
            .await?,
            claim_entry: prepare(
                s,
                &format!(
                    "UPDATE {entries} SET terms = ?, chunks = ? WHERE user_id = ? AND entry_id = ?"
                ),
            )
            .await?,
            put_entry: prepare(
                s,
                &format!(
                    "INSERT INTO {entries} (user_id, entry_id, fingerprint, written_at_micros, \
                     length, keywords, terms, chunks) VALUES (?, ?, ?, ?, ?, ?, ?, ?)"
                ),
            )
            .await?,
            delete_entry: prepare(
                s,
                &format!("DELETE FROM {entries} WHERE user_id = ? AND entry_id = ?"),
            )
            .await?,
            entries_of_user: prepare(
                s,
                &format!("SELECT entry_id, terms FROM {entries} WHERE user_id = ?"),
            )
            .await?,
            delete_entries_of_user: prepare(s, &format!("DELETE FROM {entries} WHERE user_id = ?"))
                .await?,
            entries_in: prepare(
                s,
                &format!(
                    "SELECT entry_id, written_at_micros, keywords FROM {entries} \
                     WHERE user_id = ? AND entry_id IN ?"
                ),
            )
            .await?,
            // COUNT(length): the rows of entries whose put is complete or was once.
            stats: prepare(
                s,
                &format!("SELECT COUNT(length), SUM(length) FROM {entries} WHERE user_id = ?"),
            )
            .await?,
            put_by_time: prepare(
                s,
                &format!(
                    "INSERT INTO {by_time} (user_id, written_at_micros, entry_id, keywords) \
                     VALUES (?, ?, ?, ?)"
                ),
            )
            .await?,
            delete_by_time: prepare(
                s,
                &format!(
                    "DELETE FROM {by_time} WHERE user_id = ? AND written_at_micros = ? \
                     AND entry_id = ?"
                ),
            )
            .await?,
            delete_by_time_of_user: prepare(s, &format!("DELETE FROM {by_time} WHERE user_id = ?"))
                .await?,
            written_between: prepare(
                s,
                &format!(
                    "SELECT written_at_micros, entry_id, keywords FROM {by_time} \
                     WHERE user_id = ? AND written_at_micros >= ? AND written_at_micros < ? \
                     LIMIT ?"
                ),
            )
            .await?,
            written_at: prepare(
                s,
                &format!(
                    "SELECT written_at_micros, entry_id, keywords FROM {by_time} \
                     WHERE user_id = ? AND written_at_micros = ?"
                ),
            )
            .await?,
            put_vector: prepare(
                s,
                &format!(
                    "INSERT INTO {vectors} (user_id, entry_id, chunk, vector) VALUES (?, ?, ?, ?)"
                ),
            )
            .await?,
            delete_chunks_from: prepare(
                s,
                &format!("DELETE FROM {vectors} WHERE user_id = ? AND entry_id = ? AND chunk >= ?"),
            )
            .await?,
            delete_vectors_of_entry: prepare(
                s,
                &format!("DELETE FROM {vectors} WHERE user_id = ? AND entry_id = ?"),
            )
            .await?,
            delete_vectors_of_user: prepare(s, &format!("DELETE FROM {vectors} WHERE user_id = ?"))
                .await?,
            vectors_in: prepare(
                s,
                &format!(
                    "SELECT entry_id, chunk, vector FROM {vectors} \
                     WHERE user_id = ? AND entry_id IN ?"
                ),
            )
            .await?,
            nearest,
            put_term: prepare(
                s,
                &format!(
                    "INSERT INTO {terms} (user_id, term, entry_id, count, length) \
                     VALUES (?, ?, ?, ?, ?)"
                ),
            )
            .await?,
            delete_term: prepare(
                s,
                &format!("DELETE FROM {terms} WHERE user_id = ? AND term = ? AND entry_id = ?"),
            )
            .await?,
            delete_term_of_user: prepare(
                s,
                &format!("DELETE FROM {terms} WHERE user_id = ? AND term = ?"),
            )
            .await?,
            postings: prepare(
                s,
                &format!(
                    "SELECT entry_id, count, length FROM {terms} WHERE user_id = ? AND term = ?"
                ),
            )
            .await?,
        };
        Ok(Self {
            tables: TABLES.iter().map(|t| qualified(keyspace, t)).collect(),
            session,
            statements,
        })
    }

    /// Executes a statement that returns no rows.
    async fn run(
        &self,
        statement: &PreparedStatement,
        values: impl SerializeRow,
    ) -> Result<(), QueryError> {
        self.session
            .execute_unpaged(statement, values)
            .await
            .map_err(backend)?;
        Ok(())
    }

    /// Executes `statement` once per element of `values`, [`IN_FLIGHT`] at a time. (A loop,
    /// not stream combinators: closures over borrowed values held across an await make the
    /// trait's futures fail the `Send` check.)
    async fn run_all<V: SerializeRow>(
        &self,
        statement: &PreparedStatement,
        values: Vec<V>,
    ) -> Result<(), QueryError> {
        let mut pending = FuturesUnordered::new();
        for v in values {
            if pending.len() >= IN_FLIGHT {
                pending.try_next().await?;
            }
            pending.push(self.run(statement, v));
        }
        while pending.try_next().await?.is_some() {}
        Ok(())
    }

    /// Every row of a query, through as many pages as it takes.
    async fn rows<R>(
        &self,
        statement: &PreparedStatement,
        values: impl SerializeRow,
    ) -> Result<Vec<R>, QueryError>
    where
        R: for<'f, 'm> DeserializeRow<'f, 'm>,
    {
        self.session
            .execute_iter(statement.clone(), values)
            .await
            .map_err(backend)?
            .rows_stream::<R>()
            .map_err(backend)?
            .try_collect()
            .await
            .map_err(backend)
    }

    /// The rows of `statement` for each element of `values`, in order, a few queries at a
    /// time.
    async fn rows_each<R, V>(
        &self,
        statement: &PreparedStatement,
        values: Vec<V>,
    ) -> Result<Vec<Vec<R>>, QueryError>
    where
        R: for<'f, 'm> DeserializeRow<'f, 'm>,
        V: SerializeRow,
    {
        let mut found = Vec::with_capacity(values.len());
        let mut pending = FuturesOrdered::new();
        for v in values {
            if pending.len() >= READS_IN_FLIGHT
                && let Some(rows) = pending.try_next().await?
            {
                found.push(rows);
            }
            pending.push_back(self.rows(statement, v));
        }
        while let Some(rows) = pending.try_next().await? {
            found.push(rows);
        }
        Ok(found)
    }

    /// The first row of a query, if any.
    async fn first<R>(
        &self,
        statement: &PreparedStatement,
        values: impl SerializeRow,
    ) -> Result<Option<R>, QueryError>
    where
        R: for<'f, 'm> DeserializeRow<'f, 'm>,
    {
        self.session
            .execute_unpaged(statement, values)
            .await
            .map_err(backend)?
            .into_rows_result()
            .map_err(backend)?
            .maybe_first_row::<R>()
            .map_err(backend)
    }

    /// Whose entry `id` is, by its owner row.
    async fn owner(&self, id: Uuid) -> Result<Option<Uuid>, QueryError> {
        let row: Option<(Option<Uuid>, Option<i64>)> =
            self.first(&self.statements.owner, (id,)).await?;
        Ok(row.and_then(|(user, _)| user))
    }

    /// The entry's row in its writer's partition.
    async fn stored_entry(&self, user: Uuid, id: Uuid) -> Result<Option<EntryRow>, QueryError> {
        self.first(&self.statements.entry, (user, id)).await
    }

    /// Deletes what the index holds of entry `id` of `user`, `stored` being its row there.
    async fn remove_stored(
        &self,
        user: Uuid,
        id: Uuid,
        stored: Option<EntryRow>,
    ) -> Result<(), QueryError> {
        let st = &self.statements;
        self.run(&st.delete_owner, (id,)).await?;
        if let Some(row) = &stored {
            let terms: Vec<_> = row.terms.iter().flatten().map(|t| (user, t, id)).collect();
            self.run_all(&st.delete_term, terms).await?;
            if let Some(at) = row.written_at_micros {
                self.run(&st.delete_by_time, (user, at, id)).await?;
            }
        }
        self.run(&st.delete_vectors_of_entry, (user, id)).await?;
        self.run(&st.delete_entry, (user, id)).await
    }

    /// The chunks of `ids` (entries of `user`), in order, by entry.
    async fn vectors_of(
        &self,
        user: Uuid,
        ids: &[Uuid],
    ) -> Result<HashMap<Uuid, Vec<Vec<f32>>>, QueryError> {
        let batches: Vec<_> = ids.chunks(IN_BATCH).map(|b| (user, b)).collect();
        let batches: Vec<Vec<(Uuid, i32, Vec<f32>)>> =
            self.rows_each(&self.statements.vectors_in, batches).await?;
        let mut chunks: HashMap<Uuid, Vec<(i32, Vec<f32>)>> = HashMap::new();
        for (id, chunk, vector) in batches.into_iter().flatten() {
            chunks.entry(id).or_default().push((chunk, vector));
        }
        Ok(chunks
            .into_iter()
            .map(|(id, mut chunks)| {
                chunks.sort_by_key(|(chunk, _)| *chunk);
                (id, chunks.into_iter().map(|(_, v)| v).collect())
            })
            .collect())
    }
}

#[async_trait]
impl SearchIndex for CassandraSearchIndex {
    async fn fingerprint(&self, entry_id: &EntryId) -> Result<Option<i64>, QueryError> {
        let row: Option<(Option<Uuid>, Option<i64>)> = self
            .first(&self.statements.owner, (*entry_id.as_uuid(),))
            .await?;
        Ok(row.and_then(|(_, fingerprint)| fingerprint))
    }

    async fn put(&self, entry: &IndexedEntry) -> Result<(), QueryError> {
        if let Some(v) = entry
            .vectors
            .iter()
            .find(|v| v.len() != embeddings::DIMENSIONS)
        {
            return Err(corrupt(format!(
                "a vector of {} dimensions (expected {})",
                v.len(),
                embeddings::DIMENSIONS
            )));
        }
        let st = &self.statements;
        let (user, id) = (*entry.user_id.as_uuid(), *entry.entry_id.as_uuid());
        let owner = self.owner(id).await?;
        // Entries do not change hands; should one have, it leaves its former writer whole.
        if let Some(previous) = owner.filter(|o| *o != user) {
            let stored = self.stored_entry(previous, id).await?;
            self.remove_stored(previous, id, stored).await?;
        }
        let old = self.stored_entry(user, id).await?;
        let old_terms: BTreeSet<&str> = old
            .iter()
            .flat_map(|row| row.terms.iter().flatten())
            .map(String::as_str)
            .collect();
        let old_chunks = old.as_ref().and_then(|row| row.chunks).unwrap_or(0);
        let old_written_at = old.as_ref().and_then(|row| row.written_at_micros);
        let new_terms: BTreeSet<&str> = entry.terms.iter().map(|(t, _)| t.as_str()).collect();
        let chunks = i32::try_from(entry.vectors.len()).map_err(corrupt)?;
        let written_at = entry.written_at.timestamp_micros();

        // First, what this put may leave behind, so that a removal finds it all.
        let left: BTreeSet<&str> = old_terms.union(&new_terms).copied().collect();
        if old.is_none() || left.len() > old_terms.len() || chunks > old_chunks {
            let left: Vec<&str> = left.into_iter().collect();
            self.run(&st.claim_entry, (left, chunks.max(old_chunks), user, id))
                .await?;
        }
        if owner.is_some() {
            self.run(&st.claim_owner, (user, id)).await?;
        }

        // What the entry no longer has.
        let stale: Vec<_> = old_terms
            .difference(&new_terms)
            .map(|t| (user, *t, id))
            .collect();
        self.run_all(&st.delete_term, stale).await?;
        if old_chunks > chunks {
            self.run(&st.delete_chunks_from, (user, id, chunks)).await?;
        }
        if let Some(at) = old_written_at.filter(|at| *at != written_at) {
            self.run(&st.delete_by_time, (user, at, id)).await?;
        }

        // What it has now.
        let length = i64::from(entry.length);
        let terms: Vec<_> = (entry.terms.iter())
            .map(|(t, count)| (user, t, id, i64::from(*count), length))
            .collect();
        self.run_all(&st.put_term, terms).await?;
        // One vector at a time: see "Concurrent vector writes" above.
        for (vector, chunk) in entry.vectors.iter().zip(0i32..) {
            self.run(&st.put_vector, (user, id, chunk, vector)).await?;
        }
        self.run(&st.put_by_time, (user, written_at, id, &entry.keywords))
            .await?;
        let new_terms: Vec<&str> = new_terms.into_iter().collect();
        self.run(
            &st.put_entry,
            (
                user,
                id,
                entry.fingerprint,
                written_at,
                length,
                &entry.keywords,
                new_terms,
                chunks,
            ),
        )
        .await?;
        // Last: the entry is current.
        self.run(&st.put_owner, (id, user, entry.fingerprint)).await
    }

    async fn remove(&self, user_id: &UserId, entry_id: &EntryId) -> Result<(), QueryError> {
        let id = *entry_id.as_uuid();
        let owner = self.owner(id).await?;
        let user = owner.unwrap_or(*user_id.as_uuid());
        let stored = self.stored_entry(user, id).await?;
        if owner.is_none() && stored.is_none() {
            // Not indexed (the common case of a deletion after analysis was switched off):
            // no tombstones for nothing.
            return Ok(());
        }
        self.remove_stored(user, id, stored).await
    }

    async fn remove_user(&self, user_id: &UserId) -> Result<(), QueryError> {
        let st = &self.statements;
        let user = *user_id.as_uuid();
        let entries: Vec<(Uuid, Option<Vec<String>>)> =
            self.rows(&st.entries_of_user, (user,)).await?;
        if entries.is_empty() {
            return Ok(());
        }
        let owners: Vec<_> = entries.iter().map(|(id, _)| (*id,)).collect();
        self.run_all(&st.delete_owner, owners).await?;
        let terms: BTreeSet<&str> = entries
            .iter()
            .flat_map(|(_, terms)| terms.iter().flatten())
            .map(String::as_str)
            .collect();
        let terms: Vec<_> = terms.into_iter().map(|t| (user, t)).collect();
        self.run_all(&st.delete_term_of_user, terms).await?;
        self.run(&st.delete_vectors_of_user, (user,)).await?;
        self.run(&st.delete_by_time_of_user, (user,)).await?;
        // Last: the list of what to delete.
        self.run(&st.delete_entries_of_user, (user,)).await
    }

    async fn nearest(
        &self,
        user_id: &UserId,
        query: &[f32],
        limit: usize,
    ) -> Result<Vec<Hit>, QueryError> {
        if query.len() != embeddings::DIMENSIONS {
            return Err(corrupt(format!(
                "a query of {} dimensions (expected {})",
                query.len(),
                embeddings::DIMENSIONS
            )));
        }
        if limit == 0 || query.iter().all(|x| *x == 0.0) {
            return Ok(Vec::new());
        }
        let user = *user_id.as_uuid();
        let mut wanted = limit.saturating_mul(CHUNKS_PER_HIT).min(ANN_MAX_ROWS);
        let best = loop {
            let wanted_rows = wanted;
            let rows_limit = i32::try_from(wanted).unwrap_or(i32::MAX);
            // Unpaged: an ANN query cannot be paged.
            let rows: Vec<(Uuid, f32)> = self
                .session
                .execute_unpaged(&self.statements.nearest, (query, user, query, rows_limit))
                .await
                .map_err(backend)?
                .into_rows_result()
                .map_err(backend)?
                .rows::<(Uuid, f32)>()
                .map_err(backend)?
                .collect::<Result<_, _>>()
                .map_err(backend)?;
            let found = rows.len();
            let mut best: HashMap<Uuid, f32> = HashMap::new();
            for (id, score) in rows {
                let best = best.entry(id).or_insert(f32::NEG_INFINITY);
                *best = best.max(score);
            }
            // Enough entries, or every chunk of the writer, or as many chunks as allowed.
            if best.len() >= limit || found < wanted_rows || wanted == ANN_MAX_ROWS {
                break best;
            }
            wanted = wanted.saturating_mul(CHUNKS_PER_HIT).min(ANN_MAX_ROWS);
        };
        let mut hits: Vec<Hit> = best
            .into_iter()
            .map(|(id, score)| Hit {
                entry_id: EntryId::from_uuid(id),
                // Cassandra's cosine similarity is (1 + cosine) / 2.
                similarity: (2.0 * score - 1.0).clamp(-1.0, 1.0),
            })
            .collect();
        hits.sort_by(|a, b| {
            b.similarity
                .total_cmp(&a.similarity)
                .then_with(|| a.entry_id.cmp(&b.entry_id))
        });
        hits.truncate(limit);
        Ok(hits)
    }

    async fn vectors(
        &self,
        user_id: &UserId,
        entry_ids: &[EntryId],
    ) -> Result<Vec<StoredVectors>, QueryError> {
        let user = *user_id.as_uuid();
        let ids: Vec<Uuid> = entry_ids
            .iter()
            .map(|id| *id.as_uuid())
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect();
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let batches: Vec<_> = ids.chunks(IN_BATCH).map(|b| (user, b)).collect();
        let rows: Vec<Vec<(Uuid, Option<i64>, Option<Vec<String>>)>> =
            self.rows_each(&self.statements.entries_in, batches).await?;
        // An entry whose first put has not finished has no time yet: not indexed.
        let entries: HashMap<Uuid, (i64, Vec<String>)> = rows
            .into_iter()
            .flatten()
            .filter_map(|(id, at, keywords)| Some((id, (at?, keywords.unwrap_or_default()))))
            .collect();
        let found: Vec<Uuid> = entries.keys().copied().collect();
        let vectors = self.vectors_of(user, &found).await?;
        let mut stored = Vec::with_capacity(entry_ids.len());
        for id in entry_ids {
            if let Some((at, keywords)) = entries.get(id.as_uuid()) {
                stored.push(StoredVectors {
                    entry_id: *id,
                    written_at: time_from_micros(*at)?,
                    vectors: vectors.get(id.as_uuid()).cloned().unwrap_or_default(),
                    keywords: keywords.clone(),
                });
            }
        }
        Ok(stored)
    }

    async fn postings(
        &self,
        user_id: &UserId,
        terms: &[String],
    ) -> Result<Vec<Posting>, QueryError> {
        let user = *user_id.as_uuid();
        let queries: Vec<_> = terms.iter().map(|term| (user, term)).collect();
        let found: Vec<Vec<(Uuid, Option<i64>, Option<i64>)>> =
            self.rows_each(&self.statements.postings, queries).await?;
        let mut postings = Vec::new();
        for (term, mut rows) in terms.iter().zip(found) {
            // In the order of the SQLite index: by entry id.
            rows.sort_by_key(|(id, _, _)| *id);
            postings.extend(rows.into_iter().map(|(id, count, length)| Posting {
                term: term.clone(),
                entry_id: EntryId::from_uuid(id),
                count: clamp_u32(count),
                length: clamp_u32(length),
            }));
        }
        Ok(postings)
    }

    async fn stats(&self, user_id: &UserId) -> Result<IndexStats, QueryError> {
        let row: Option<(i64, Option<i64>)> = self
            .first(&self.statements.stats, (*user_id.as_uuid(),))
            .await?;
        let (entries, words) = row.map_or((0, 0), |(n, words)| (n, words.unwrap_or(0)));
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
        if limit == 0 {
            return Ok(Vec::new());
        }
        let st = &self.statements;
        let user = *user_id.as_uuid();
        let (start, end) = (start.timestamp_micros(), end.timestamp_micros());
        let mut rows: Vec<TimeRow> = self
            .rows(
                &st.written_between,
                (user, start, end, i32::try_from(limit).unwrap_or(i32::MAX)),
            )
            .await?;
        // Entries written in the same microsecond come in Cassandra's uuid order, not the
        // SQLite index's (the id's text): when the limit cuts among them, they are all read
        // and the cut made here.
        if rows.len() >= limit
            && let Some(&(last, _, _)) = rows.last()
        {
            let ties: Vec<TimeRow> = self.rows(&st.written_at, (user, last)).await?;
            rows.retain(|(at, _, _)| *at != last);
            rows.extend(ties);
        }
        rows.sort_by(|(a_at, a_id, _), (b_at, b_id, _)| b_at.cmp(a_at).then(b_id.cmp(a_id)));
        rows.truncate(limit);
        let ids: Vec<Uuid> = rows.iter().map(|(_, id, _)| *id).collect();
        let mut vectors = self.vectors_of(user, &ids).await?;
        rows.into_iter()
            .map(|(at, id, keywords)| {
                Ok(StoredVectors {
                    entry_id: EntryId::from_uuid(id),
                    written_at: time_from_micros(at)?,
                    vectors: vectors.remove(&id).unwrap_or_default(),
                    keywords: keywords.unwrap_or_default(),
                })
            })
            .collect()
    }

    async fn clear(&self) -> Result<(), QueryError> {
        for table in &self.tables {
            self.session
                .query_unpaged(format!("TRUNCATE TABLE {table}"), &[])
                .await
                .map_err(backend)?;
        }
        Ok(())
    }
}

/// A row of `entry_search_entries` as a put or a removal reads it.
#[derive(scylla::DeserializeRow)]
struct EntryRow {
    terms: Option<Vec<String>>,
    chunks: Option<i32>,
    written_at_micros: Option<i64>,
}

/// A row of `entry_search_by_time`: when, which entry, its keywords.
type TimeRow = (i64, Uuid, Option<Vec<String>>);

async fn prepare(session: &Session, cql: &str) -> Result<PreparedStatement, CassandraError> {
    let mut statement = session
        .prepare(cql)
        .await
        .map_err(CassandraError::request)?;
    // Every statement here may be retried: writes put or delete whole values, reads change
    // nothing.
    statement.set_is_idempotent(true);
    Ok(statement)
}

fn backend(error: impl std::error::Error + Send + Sync + 'static) -> QueryError {
    QueryError::Backend(Box::new(error))
}

fn corrupt(what: impl std::fmt::Display) -> QueryError {
    QueryError::Backend(format!("search index: {what}").into())
}

fn clamp_u32(value: Option<i64>) -> u32 {
    u32::try_from(value.unwrap_or(0).max(0)).unwrap_or(u32::MAX)
}
