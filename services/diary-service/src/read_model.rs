//! The diary read models (`DiaryEntryReadModel`, `DiarySessionReadModel`), kept by a
//! projection of the diary events. This is the embedded (SQLite) implementation. Every write is
//! guarded by the stream version, and a deleted entry stays as a tombstone, so replaying any
//! event (even an entry's creation after its deletion) changes nothing.

use std::sync::Arc;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use event_sourcing::{Loaded, Projection, ProjectionError, RecordedEvent, decode_event};
use metachat_read_model::keyset_cursor::{self, SortKey};
use metachat_read_model::{Page, PageRequest, QueryError, time_from_micros as time};
use sqlx::Row;
use sqlx::sqlite::{SqlitePool, SqliteRow};
use uuid::Uuid;

use event_sourcing::Aggregate;
use metachat_validation::{EntryId, UserId};

use crate::analytics::{
    AnalysisSummary, BUCKET_MICROS, BucketTotals, DAY_MICROS, DayRollup, EntryFacts, SessionFacts,
    WindowTotals, bucket_of, day_of_micros,
};
use crate::domain::{
    AnalysisSettingEvent, AnalysisSettingState, Entry, EntryEvent, EntryState, Session,
    SessionEvent, SessionState,
};
use crate::search::SearchIndex;
use crate::search::sqlite::SqliteSearchIndex;

/// A time window `[start, end)`; either side may be open.
#[derive(Debug, Clone, Copy, Default)]
pub struct TimeRange {
    pub start: Option<DateTime<Utc>>,
    pub end: Option<DateTime<Utc>>,
}

/// Queries the diary read models answer. Lists are newest first.
#[async_trait]
pub trait DiaryReadModels: Send + Sync + 'static {
    /// A user's live entries created within `range`.
    async fn entries_by_user(
        &self,
        user_id: &UserId,
        range: TimeRange,
        page: &PageRequest,
    ) -> Result<Page<Loaded<Entry>>, QueryError>;

    /// A user's sessions started within `range`.
    async fn sessions_by_user(
        &self,
        user_id: &UserId,
        range: TimeRange,
        page: &PageRequest,
    ) -> Result<Page<Loaded<Session>>, QueryError>;

    /// A user's analytics buckets (see [`crate::analytics`]) whose quarter hour starts within
    /// `[start, end)`, as `(bucket start in microseconds, totals)`, oldest first; buckets
    /// without entries or sessions are left out.
    async fn buckets(
        &self,
        user_id: &UserId,
        start: DateTime<Utc>,
        end: DateTime<Utc>,
    ) -> Result<Vec<(i64, BucketTotals)>, QueryError>;

    /// The analytics totals of a user's quarter hours that start within `[start, end)`
    /// (both on quarter hours). By default summed from [`DiaryReadModels::buckets`]; a read
    /// model that keeps totals per day reads those.
    async fn window_totals(
        &self,
        user_id: &UserId,
        start: DateTime<Utc>,
        end: DateTime<Utc>,
    ) -> Result<WindowTotals, QueryError> {
        Ok(WindowTotals::of(&self.buckets(user_id, start, end).await?))
    }

    /// The starts of a user's quarter hours with an entry within `[start, end)` (both on
    /// quarter hours), oldest first: the writing days, for streaks.
    async fn writing_quarters(
        &self,
        user_id: &UserId,
        start: DateTime<Utc>,
        end: DateTime<Utc>,
    ) -> Result<Vec<i64>, QueryError> {
        let totals = self.window_totals(user_id, start, end).await?;
        Ok(totals.quarters.into_iter().map(|(b, _)| b).collect())
    }

    /// Whether the user's entries are analysed (on unless they switched it off).
    async fn analysis_enabled(&self, user_id: &UserId) -> Result<bool, QueryError>;

    /// The version of entry or session `id` that the lists (and analytics) reflect, `None`
    /// when they have never seen it. A deleted entry keeps its version. Read-your-writes waits
    /// on it.
    async fn applied_version(&self, id: Uuid) -> Result<Option<u64>, QueryError>;

    /// The search index kept beside these read models (see [`crate::search`]).
    fn search_index(&self) -> Arc<dyn SearchIndex>;

    /// Waits (at most `limit`) until the lists reflect every event up to the store's global
    /// `position`, where the read models know positions (embedded); returns at once where
    /// they do not.
    async fn wait_for_position(&self, _position: u64, _limit: std::time::Duration) {}
}

const SCHEMA: &[&str] = &[
    "CREATE TABLE IF NOT EXISTS diary_entry_read_model (
        entry_id    TEXT PRIMARY KEY,
        user_id     TEXT NOT NULL,
        title       TEXT NOT NULL,
        content     TEXT NOT NULL,
        token_count INTEGER NOT NULL,
        session_id  TEXT,
        tags        TEXT NOT NULL,
        deleted     INTEGER NOT NULL DEFAULT 0,
        created_at  INTEGER NOT NULL,
        updated_at  INTEGER NOT NULL,
        version     INTEGER NOT NULL,
        content_version INTEGER NOT NULL DEFAULT 1,
        seen_version INTEGER NOT NULL DEFAULT 0,
        analysis    TEXT
    )",
    "CREATE INDEX IF NOT EXISTS diary_entry_by_user_time
        ON diary_entry_read_model (user_id, created_at DESC, entry_id DESC)",
    "CREATE TABLE IF NOT EXISTS diary_session_read_model (
        session_id TEXT PRIMARY KEY,
        user_id    TEXT NOT NULL,
        start_time INTEGER NOT NULL,
        end_time   INTEGER,
        created_at INTEGER NOT NULL,
        updated_at INTEGER NOT NULL,
        version    INTEGER NOT NULL
    )",
    "CREATE INDEX IF NOT EXISTS diary_session_by_user_time
        ON diary_session_read_model (user_id, start_time DESC, session_id DESC)",
    "CREATE TABLE IF NOT EXISTS diary_analytics_buckets (
        user_id TEXT NOT NULL,
        bucket  INTEGER NOT NULL,
        totals  TEXT NOT NULL,
        PRIMARY KEY (user_id, bucket)
    ) WITHOUT ROWID",
    "CREATE TABLE IF NOT EXISTS diary_analytics_days (
        user_id  TEXT NOT NULL,
        day      INTEGER NOT NULL,
        totals   TEXT NOT NULL,
        quarters TEXT NOT NULL,
        written  BLOB NOT NULL,
        PRIMARY KEY (user_id, day)
    ) WITHOUT ROWID",
    "CREATE TABLE IF NOT EXISTS diary_analysis_settings (
        user_id       TEXT PRIMARY KEY,
        enabled       INTEGER NOT NULL,
        version       INTEGER NOT NULL,
        last_disabled INTEGER NOT NULL
    )",
];

/// The ids of every live entry of `user_id` the lists hold, newest first, read page by page:
/// what a follower walks when a writer switches analysis back on.
pub(crate) async fn live_entry_ids(
    read_models: &dyn DiaryReadModels,
    user_id: &UserId,
) -> Result<Vec<EntryId>, ProjectionError> {
    let mut page = PageRequest {
        offset: 0,
        limit: 100,
        cursor: None,
    };
    let mut ids = Vec::new();
    loop {
        let found = read_models
            .entries_by_user(user_id, TimeRange::default(), &page)
            .await
            .map_err(|e| -> ProjectionError { format!("listing entries: {e}").into() })?;
        ids.extend(found.items.iter().map(|listed| listed.state.id));
        match found.next_cursor {
            Some(cursor) => page.cursor = Some(cursor),
            None => return Ok(ids),
        }
    }
}

/// Whether `recorded` switches a user's analysis on or off: `(user, enabled)`; `None` for
/// any other event. An erasure switches it off for good.
pub(crate) fn analysis_switch(
    recorded: &RecordedEvent,
) -> Result<Option<(UserId, bool)>, ProjectionError> {
    if recorded.category() != AnalysisSettingState::CATEGORY {
        return Ok(None);
    }
    Ok(Some(match decode_event(recorded)? {
        AnalysisSettingEvent::DiaryAnalysisEnabled(e) => (e.user_id, true),
        AnalysisSettingEvent::DiaryAnalysisDisabled(e) | AnalysisSettingEvent::DiaryErased(e) => {
            (e.user_id, false)
        }
    }))
}

/// The user whose diary `recorded` erases (`DiaryErased`); `None` for any other event.
pub(crate) fn diary_erasure(recorded: &RecordedEvent) -> Result<Option<UserId>, ProjectionError> {
    if recorded.category() != AnalysisSettingState::CATEGORY || recorded.event_type != "DiaryErased"
    {
        return Ok(None);
    }
    match decode_event(recorded)? {
        AnalysisSettingEvent::DiaryErased(e) => Ok(Some(e.user_id)),
        _ => Ok(None),
    }
}

/// The projection's name (and checkpoint).
pub const PROJECTION_NAME: &str = "diary-read-models";

/// The diary read models in the embedded database.
#[derive(Clone)]
pub struct SqliteDiaryReadModels {
    pool: SqlitePool,
    search: Arc<SqliteSearchIndex>,
}

impl SqliteDiaryReadModels {
    pub async fn new(pool: SqlitePool) -> Result<Self, sqlx::Error> {
        // Rows written before analytics kept per-quarter-hour totals lack what those totals
        // are made of: such tables are rebuilt from the events (their checkpoint removed).
        let columns: Vec<String> =
            sqlx::query_scalar("SELECT name FROM pragma_table_info('diary_entry_read_model')")
                .fetch_all(&pool)
                .await?;
        if !columns.is_empty() && !columns.iter().any(|c| c == "seen_version") {
            let mut tx = pool.begin().await?;
            sqlx::query("DROP TABLE diary_entry_read_model")
                .execute(&mut *tx)
                .await?;
            sqlx::query("DROP TABLE IF EXISTS diary_session_read_model")
                .execute(&mut *tx)
                .await?;
            let checkpoints: Option<String> = sqlx::query_scalar(
                "SELECT name FROM sqlite_master WHERE type = 'table' AND name = 'checkpoints'",
            )
            .fetch_optional(&mut *tx)
            .await?;
            if checkpoints.is_some() {
                sqlx::query("DELETE FROM checkpoints WHERE name = ?")
                    .bind(PROJECTION_NAME)
                    .execute(&mut *tx)
                    .await?;
            }
            tx.commit().await?;
        }
        // Days stored before they kept their written quarter hours are summed again.
        let day_columns: Vec<String> =
            sqlx::query_scalar("SELECT name FROM pragma_table_info('diary_analytics_days')")
                .fetch_all(&pool)
                .await?;
        if !day_columns.is_empty() && !day_columns.iter().any(|c| c == "written") {
            sqlx::query("DROP TABLE diary_analytics_days")
                .execute(&pool)
                .await?;
        }
        let had_days = day_columns.iter().any(|c| c == "written").then_some(());
        for statement in SCHEMA {
            sqlx::query(*statement).execute(&pool).await?;
        }
        if had_days.is_none() {
            // A database from before the totals per day: summed once from its buckets.
            fill_days_from_buckets(&pool)
                .await
                .map_err(|e| sqlx::Error::Protocol(format!("summing analytics per day: {e}")))?;
        }
        let search = Arc::new(SqliteSearchIndex::new(pool.clone()).await?);
        Ok(Self { pool, search })
    }

    /// The database, for tests.
    pub fn pool(&self) -> &SqlitePool {
        &self.pool
    }

    /// `(day, columns…)` of a user's UTC days that overlap `[start, end)` (microseconds),
    /// oldest first; `columns` is a fixed list of `diary_analytics_days` columns.
    async fn days<R>(
        &self,
        user_id: &UserId,
        columns: &'static str,
        start: i64,
        end: i64,
    ) -> Result<Vec<R>, QueryError>
    where
        R: for<'r> sqlx::FromRow<'r, SqliteRow> + Send + Unpin,
    {
        Ok(sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "SELECT day, {columns} FROM diary_analytics_days \
             WHERE user_id = ? AND day >= ? AND day < ? ORDER BY day"
        )))
        .bind(user_id.to_string())
        .bind(day_of_micros(start))
        .bind(end)
        .fetch_all(&self.pool)
        .await?)
    }

    /// Applies an entry or session event in `tx` (which holds the write lock, taken before
    /// any read, so that no other writer commits between a row's share read and its change);
    /// the totals it moves are gathered in `moves`.
    async fn apply_row(
        &self,
        tx: &mut sqlx::Transaction<'_, sqlx::Sqlite>,
        recorded: &RecordedEvent,
        moves: &mut Moves,
    ) -> Result<(), ProjectionError> {
        match recorded.category() {
            EntryState::CATEGORY => self.apply_entry(tx, recorded, moves).await,
            _ => self.apply_session(tx, recorded, moves).await,
        }
    }

    async fn apply_entry(
        &self,
        tx: &mut sqlx::Transaction<'_, sqlx::Sqlite>,
        recorded: &RecordedEvent,
        moves: &mut Moves,
    ) -> Result<(), ProjectionError> {
        let event: EntryEvent = decode_event(recorded)?;
        let id = recorded.aggregate_id().to_owned();
        let version = recorded.stream_version as i64;
        let at = recorded.recorded_at.timestamp_micros();
        let before = entry_share(tx, &id).await?;
        let query = match &event {
            EntryEvent::DiaryEntryCreated(e) => sqlx::query(
                "INSERT INTO diary_entry_read_model (entry_id, user_id, title, content, token_count, \
                 session_id, tags, created_at, updated_at, version) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?) \
                 ON CONFLICT (entry_id) DO NOTHING",
            )
            .bind(id.clone())
            .bind(e.user_id.to_string())
            .bind(e.title.clone())
            .bind(e.content.clone())
            .bind(i64::from(e.token_count))
            .bind(e.session_id.map(|id| id.to_string()))
            .bind(serde_json::to_string(&e.tags)?)
            // When it was written: the client's account, else when it was recorded.
            .bind(e.created_at.map_or(at, |t| t.timestamp_micros()))
            .bind(at)
            .bind(version),
            // New content makes the analysis that of older content.
            EntryEvent::DiaryEntryUpdated(e) => sqlx::query(
                "UPDATE diary_entry_read_model SET \
                 analysis = CASE WHEN content = ? THEN analysis END, \
                 content_version = CASE WHEN content = ? THEN content_version ELSE ? END, \
                 title = ?, content = ?, token_count = ?, tags = ?, \
                 updated_at = ?, version = ? WHERE entry_id = ? AND version < ?",
            )
            .bind(e.content.clone())
            .bind(e.content.clone())
            .bind(version)
            .bind(e.title.clone())
            .bind(e.content.clone())
            .bind(i64::from(e.token_count))
            .bind(serde_json::to_string(&e.tags)?)
            .bind(at)
            .bind(version)
            .bind(id.clone())
            .bind(version),
            // The tombstone keeps no text: a deleted entry's words live only in its history.
            EntryEvent::DiaryEntryDeleted(_) => sqlx::query(
                "UPDATE diary_entry_read_model SET deleted = 1, title = '', content = '', tags = '[]', \
                 analysis = NULL, updated_at = ?, version = ? WHERE entry_id = ? AND version < ?",
            )
            .bind(at)
            .bind(version)
            .bind(id.clone())
            .bind(version),
            // The analysis of the current content counts in analytics (unless the writer
            // switched analysis off, or did so after it was made). Lists do not show it (nor
            // move their version); analytics reflect it from `seen_version` on.
            EntryEvent::DiaryEntryAnalyzed(e) => sqlx::query(
                "UPDATE diary_entry_read_model SET \
                 analysis = CASE WHEN content_version = ? AND NOT EXISTS (SELECT 1 FROM \
                   diary_analysis_settings s WHERE s.user_id = diary_entry_read_model.user_id \
                   AND (s.enabled = 0 OR s.last_disabled > ?)) THEN ? ELSE analysis END, \
                 seen_version = ? WHERE entry_id = ? AND MAX(version, seen_version) < ? \
                 AND deleted = 0",
            )
            .bind(e.entry_version as i64)
            .bind(e.setting_version as i64)
            .bind(serde_json::to_string(&AnalysisSummary::of(e))?)
            .bind(version)
            .bind(id.clone())
            .bind(version),
        };
        query.execute(&mut **tx).await?;
        // The entry's share of its quarter hour's totals moves from what its row made before
        // to what it makes now (a redelivered event changed nothing: no move).
        let after = entry_share(tx, &id).await?;
        moves.share(tx, before, after).await
    }

    async fn apply_session(
        &self,
        tx: &mut sqlx::Transaction<'_, sqlx::Sqlite>,
        recorded: &RecordedEvent,
        moves: &mut Moves,
    ) -> Result<(), ProjectionError> {
        let event: SessionEvent = decode_event(recorded)?;
        let id = recorded.aggregate_id().to_owned();
        let version = recorded.stream_version as i64;
        let at = recorded.recorded_at.timestamp_micros();
        let before = session_share(tx, &id).await?;
        let query = match &event {
            SessionEvent::DiarySessionStarted(e) => sqlx::query(
                "INSERT INTO diary_session_read_model (session_id, user_id, start_time, created_at, \
                 updated_at, version) VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (session_id) DO NOTHING",
            )
            .bind(id.clone())
            .bind(e.user_id.to_string())
            .bind(e.start_time.timestamp_micros())
            .bind(at)
            .bind(at)
            .bind(version),
            // An entry written in the session moves its version and last change.
            SessionEvent::DiarySessionEntryAdded(_) => sqlx::query(
                "UPDATE diary_session_read_model SET updated_at = ?, version = ? \
                 WHERE session_id = ? AND version < ?",
            )
            .bind(at)
            .bind(version)
            .bind(id.clone())
            .bind(version),
            SessionEvent::DiarySessionEnded(e) => sqlx::query(
                "UPDATE diary_session_read_model SET end_time = ?, updated_at = ?, version = ? \
                 WHERE session_id = ? AND version < ?",
            )
            .bind(e.end_time.timestamp_micros())
            .bind(at)
            .bind(version)
            .bind(id.clone())
            .bind(version),
        };
        query.execute(&mut **tx).await?;
        if !matches!(event, SessionEvent::DiarySessionEntryAdded(_)) {
            let after = session_share(tx, &id).await?;
            moves.share(tx, before, after).await?;
        }
        Ok(())
    }

    /// Entry and session events in one transaction, their totals written once.
    async fn apply_rows(&self, events: &[&RecordedEvent]) -> Result<(), ProjectionError> {
        let mut tx = self.pool.begin_with("BEGIN IMMEDIATE").await?;
        let mut moves = Moves::default();
        for recorded in events {
            self.apply_row(&mut tx, recorded, &mut moves).await?;
        }
        moves.write(&mut tx).await?;
        tx.commit().await?;
        Ok(())
    }

    /// Drops every row of an erased writer, their analysis setting included (an erased
    /// writer's routes answer 404, so nothing reads the default a missing setting means).
    async fn erase_writer(&self, user_id: &UserId) -> Result<(), ProjectionError> {
        let user_id = user_id.to_string();
        let mut tx = self.pool.begin().await?;
        for table in [
            "diary_entry_read_model",
            "diary_session_read_model",
            "diary_analytics_buckets",
            "diary_analytics_days",
            "diary_analysis_settings",
        ] {
            sqlx::query(sqlx::AssertSqlSafe(format!(
                "DELETE FROM {table} WHERE user_id = ?"
            )))
            .bind(&user_id)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        event_sourcing::sqlite::checkpoint_soon(&self.pool);
        Ok(())
    }

    /// A user switched analysis on or off. Off drops every analysis summary of theirs (and
    /// so the buckets' sentiment, keywords and features): an analysis made before a switch
    /// off stays void, and none is kept while it stays off. On brings nothing back: entries
    /// count again as the analyzer analyses them again.
    async fn apply_analysis_switch(
        &self,
        recorded: &RecordedEvent,
        user_id: UserId,
        enabled: bool,
    ) -> Result<(), ProjectionError> {
        let version = recorded.stream_version as i64;
        let user_id = user_id.to_string();
        let mut tx = self.pool.begin().await?;
        let changed = sqlx::query(
            "INSERT INTO diary_analysis_settings (user_id, enabled, version, last_disabled) \
             VALUES (?, ?, ?, ?) ON CONFLICT (user_id) DO UPDATE SET enabled = excluded.enabled, \
             version = excluded.version, last_disabled = CASE WHEN excluded.enabled \
             THEN diary_analysis_settings.last_disabled ELSE excluded.version END \
             WHERE diary_analysis_settings.version < excluded.version",
        )
        .bind(&user_id)
        .bind(enabled)
        .bind(version)
        .bind(if enabled { 0 } else { version })
        .execute(&mut *tx)
        .await?
        .rows_affected();
        if changed > 0 && !enabled {
            sqlx::query("UPDATE diary_entry_read_model SET analysis = NULL WHERE user_id = ?")
                .bind(&user_id)
                .execute(&mut *tx)
                .await?;
            let buckets: Vec<i64> =
                sqlx::query_scalar("SELECT bucket FROM diary_analytics_buckets WHERE user_id = ?")
                    .bind(&user_id)
                    .fetch_all(&mut *tx)
                    .await?;
            for bucket in buckets {
                recompute_bucket(&mut tx, &user_id, bucket).await?;
            }
        }
        tx.commit().await?;
        Ok(())
    }
}

/// What analytics reads of an entry's row.
fn entry_facts(row: &SqliteRow) -> Result<EntryFacts, ProjectionError> {
    let tags: String = row.try_get("tags")?;
    let analysis: Option<String> = row.try_get("analysis")?;
    Ok(EntryFacts {
        token_count: u32::try_from(row.try_get::<i64, _>("token_count")?)?,
        tags: serde_json::from_str(&tags)?,
        // Counted from the text, so it counts also while analysis is off.
        word_count: analysis::count_words(row.try_get("content")?),
        analysis: analysis.as_deref().map(serde_json::from_str).transpose()?,
    })
}

/// Someone's share of a quarter hour's totals: `(owner, when, totals of that one row)`.
type Share = (String, i64, BucketTotals);

/// A live entry's share of its quarter hour's totals, from its row (`None` without a row,
/// or for a deleted entry).
async fn entry_share(
    tx: &mut sqlx::Transaction<'_, sqlx::Sqlite>,
    id: &str,
) -> Result<Option<Share>, ProjectionError> {
    let row = sqlx::query(
        "SELECT user_id, created_at, token_count, tags, content, analysis \
         FROM diary_entry_read_model WHERE entry_id = ? AND deleted = 0",
    )
    .bind(id)
    .fetch_optional(&mut **tx)
    .await?;
    let Some(row) = row else { return Ok(None) };
    let facts = entry_facts(&row)?;
    Ok(Some((
        row.try_get("user_id")?,
        row.try_get("created_at")?,
        BucketTotals::of(&[facts], &[]),
    )))
}

/// A session's share of its quarter hour's totals, from its row.
async fn session_share(
    tx: &mut sqlx::Transaction<'_, sqlx::Sqlite>,
    id: &str,
) -> Result<Option<Share>, ProjectionError> {
    let row: Option<(String, i64, Option<i64>)> = sqlx::query_as(
        "SELECT user_id, start_time, end_time FROM diary_session_read_model WHERE session_id = ?",
    )
    .bind(id)
    .fetch_optional(&mut **tx)
    .await?;
    let Some((user_id, start, end)) = row else {
        return Ok(None);
    };
    let facts = SessionFacts {
        start_time: time(start)?,
        end_time: end.map(time).transpose()?,
    };
    Ok(Some((user_id, start, BucketTotals::of(&[], &[facts]))))
}

/// The quarter hours whose totals the events of one transaction moved, as stored and as
/// they are now: read once, written once with their days when the transaction ends.
#[derive(Default)]
struct Moves {
    buckets: std::collections::HashMap<(String, i64), (BucketTotals, BucketTotals)>,
}

impl Moves {
    /// Moves a row's share of its quarter hour from `before` to `after`. Nothing is read but
    /// the quarter hour's totals, whatever else it holds.
    async fn share(
        &mut self,
        tx: &mut sqlx::Transaction<'_, sqlx::Sqlite>,
        before: Option<Share>,
        after: Option<Share>,
    ) -> Result<(), ProjectionError> {
        let empty = BucketTotals::default();
        let (user_id, at) = match (&before, &after) {
            (_, Some((user_id, at, _))) | (Some((user_id, at, _)), None) => (user_id.clone(), *at),
            (None, None) => return Ok(()),
        };
        let old = before.as_ref().map_or(&empty, |(_, _, t)| t);
        let new = after.as_ref().map_or(&empty, |(_, _, t)| t);
        if old == new {
            return Ok(());
        }
        let key = (user_id, bucket_of(at));
        if !self.buckets.contains_key(&key) {
            let stored = stored_bucket(tx, &key.0, key.1).await?;
            self.buckets.insert(key.clone(), (stored.clone(), stored));
        }
        if let Some((_, now)) = self.buckets.get_mut(&key) {
            now.subtract(old);
            now.add(new);
        }
        Ok(())
    }

    /// A quarter hour recomputed whole: from `was` (as stored) to `now`.
    fn set(&mut self, user_id: &str, bucket: i64, was: BucketTotals, now: BucketTotals) {
        self.buckets
            .insert((user_id.to_owned(), bucket), (was, now));
    }

    /// Writes the quarter hours that changed (an empty one is removed), and moves each day's
    /// totals from what its quarter hours held to what they hold now.
    async fn write(
        self,
        tx: &mut sqlx::Transaction<'_, sqlx::Sqlite>,
    ) -> Result<(), ProjectionError> {
        let mut days: std::collections::HashMap<(String, i64), DayRollup> = Default::default();
        for ((user_id, bucket), (was, now)) in self.buckets {
            if was == now {
                continue;
            }
            if now.is_empty() {
                sqlx::query("DELETE FROM diary_analytics_buckets WHERE user_id = ? AND bucket = ?")
                    .bind(&user_id)
                    .bind(bucket)
                    .execute(&mut **tx)
                    .await?;
            } else {
                sqlx::query(
                    "INSERT INTO diary_analytics_buckets (user_id, bucket, totals) VALUES (?, ?, ?) \
                     ON CONFLICT (user_id, bucket) DO UPDATE SET totals = excluded.totals",
                )
                .bind(&user_id)
                .bind(bucket)
                .bind(serde_json::to_string(&now)?)
                .execute(&mut **tx)
                .await?;
            }
            let key = (user_id, day_of_micros(bucket));
            if !days.contains_key(&key) {
                let stored = stored_day(tx, &key.0, key.1).await?;
                days.insert(key.clone(), stored);
            }
            if let Some(rollup) = days.get_mut(&key) {
                rollup.change(bucket, &was, &now);
            }
        }
        for ((user_id, day), rollup) in days {
            store_day(tx, &user_id, day, &rollup).await?;
        }
        Ok(())
    }
}

/// A user's stored totals of a quarter hour (empty when none are stored).
async fn stored_bucket(
    tx: &mut sqlx::Transaction<'_, sqlx::Sqlite>,
    user_id: &str,
    bucket: i64,
) -> Result<BucketTotals, ProjectionError> {
    let totals: Option<String> = sqlx::query_scalar(
        "SELECT totals FROM diary_analytics_buckets WHERE user_id = ? AND bucket = ?",
    )
    .bind(user_id)
    .bind(bucket)
    .fetch_optional(&mut **tx)
    .await?;
    Ok(totals
        .as_deref()
        .map(serde_json::from_str)
        .transpose()?
        .unwrap_or_default())
}

/// A user's stored totals of a UTC day (empty when none are stored).
async fn stored_day(
    tx: &mut sqlx::Transaction<'_, sqlx::Sqlite>,
    user_id: &str,
    day: i64,
) -> Result<DayRollup, ProjectionError> {
    let row: Option<(String, String)> = sqlx::query_as(
        "SELECT totals, quarters FROM diary_analytics_days WHERE user_id = ? AND day = ?",
    )
    .bind(user_id)
    .bind(day)
    .fetch_optional(&mut **tx)
    .await?;
    Ok(match row {
        Some((totals, quarters)) => DayRollup {
            totals: serde_json::from_str(&totals)?,
            quarters: DayRollup::quarters_from_json(day, &quarters)?,
        },
        None => DayRollup::default(),
    })
}

async fn store_day(
    tx: &mut sqlx::Transaction<'_, sqlx::Sqlite>,
    user_id: &str,
    day: i64,
    rollup: &DayRollup,
) -> Result<(), ProjectionError> {
    if rollup.is_empty() {
        sqlx::query("DELETE FROM diary_analytics_days WHERE user_id = ? AND day = ?")
            .bind(user_id)
            .bind(day)
            .execute(&mut **tx)
            .await?;
    } else {
        sqlx::query(
            "INSERT INTO diary_analytics_days (user_id, day, totals, quarters, written) \
             VALUES (?, ?, ?, ?, ?) ON CONFLICT (user_id, day) DO UPDATE SET \
             totals = excluded.totals, quarters = excluded.quarters, written = excluded.written",
        )
        .bind(user_id)
        .bind(day)
        .bind(serde_json::to_string(&rollup.totals)?)
        .bind(rollup.quarters_json(day)?)
        .bind(rollup.written_mask(day))
        .execute(&mut **tx)
        .await?;
    }
    Ok(())
}

/// Sums the stored quarter hours into days, for a database from before the days were kept.
async fn fill_days_from_buckets(pool: &SqlitePool) -> Result<(), ProjectionError> {
    let mut tx = pool.begin_with("BEGIN IMMEDIATE").await?;
    let buckets: Vec<(String, i64, String)> = sqlx::query_as(
        "SELECT user_id, bucket, totals FROM diary_analytics_buckets ORDER BY user_id, bucket",
    )
    .fetch_all(&mut *tx)
    .await?;
    let mut days: std::collections::BTreeMap<(String, i64), DayRollup> = Default::default();
    for (user_id, bucket, totals) in buckets {
        let totals: BucketTotals = serde_json::from_str(&totals)?;
        days.entry((user_id, day_of_micros(bucket)))
            .or_default()
            .change(bucket, &BucketTotals::default(), &totals);
    }
    for ((user_id, day), rollup) in days {
        store_day(&mut tx, &user_id, day, &rollup).await?;
    }
    tx.commit().await?;
    Ok(())
}

/// Recomputes a user's bucket from the rows of the entries created and sessions started in
/// it (an empty bucket is removed), and its day with it.
async fn recompute_bucket(
    tx: &mut sqlx::Transaction<'_, sqlx::Sqlite>,
    user_id: &str,
    bucket: i64,
) -> Result<(), ProjectionError> {
    let end = bucket + BUCKET_MICROS;
    let rows = sqlx::query(
        "SELECT token_count, tags, content, analysis FROM diary_entry_read_model \
         WHERE user_id = ? AND deleted = 0 AND created_at >= ? AND created_at < ?",
    )
    .bind(user_id)
    .bind(bucket)
    .bind(end)
    .fetch_all(&mut **tx)
    .await?;
    let entries = rows
        .iter()
        .map(entry_facts)
        .collect::<Result<Vec<_>, _>>()?;
    let sessions: Vec<(i64, Option<i64>)> = sqlx::query_as(
        "SELECT start_time, end_time FROM diary_session_read_model \
         WHERE user_id = ? AND start_time >= ? AND start_time < ?",
    )
    .bind(user_id)
    .bind(bucket)
    .bind(end)
    .fetch_all(&mut **tx)
    .await?;
    let sessions = sessions
        .into_iter()
        .map(|(start, end)| -> Result<SessionFacts, ProjectionError> {
            Ok(SessionFacts {
                start_time: time(start)?,
                end_time: end.map(time).transpose()?,
            })
        })
        .collect::<Result<Vec<_>, _>>()?;
    let totals = BucketTotals::of(&entries, &sessions);
    let was = stored_bucket(tx, user_id, bucket).await?;
    let mut moves = Moves::default();
    moves.set(user_id, bucket, was, totals);
    moves.write(tx).await
}

#[async_trait]
impl Projection for SqliteDiaryReadModels {
    fn name(&self) -> &str {
        PROJECTION_NAME
    }

    async fn apply_batch(&self, events: &[&RecordedEvent]) -> Result<bool, ProjectionError> {
        // Runs of entry and session events go in one transaction each; others one by one.
        let rows = |e: &&RecordedEvent| {
            matches!(e.category(), EntryState::CATEGORY | SessionState::CATEGORY)
        };
        let mut rest = events;
        while let Some(first) = rest.first() {
            if rows(first) {
                let run = rest.iter().take_while(|e| rows(e)).count();
                self.apply_rows(&rest[..run]).await?;
                rest = &rest[run..];
            } else {
                self.apply(first).await?;
                rest = &rest[1..];
            }
        }
        Ok(true)
    }

    async fn apply(&self, recorded: &RecordedEvent) -> Result<(), ProjectionError> {
        match recorded.category() {
            EntryState::CATEGORY | SessionState::CATEGORY => self.apply_rows(&[recorded]).await,
            _ => {
                if let Some(user_id) = diary_erasure(recorded)? {
                    return self.erase_writer(&user_id).await;
                }
                match analysis_switch(recorded)? {
                    Some((user_id, enabled)) => {
                        self.apply_analysis_switch(recorded, user_id, enabled).await
                    }
                    None => Ok(()),
                }
            }
        }
    }

    async fn reset(&self) -> Result<(), ProjectionError> {
        let mut tx = self.pool.begin().await?;
        sqlx::query("DELETE FROM diary_entry_read_model")
            .execute(&mut *tx)
            .await?;
        sqlx::query("DELETE FROM diary_session_read_model")
            .execute(&mut *tx)
            .await?;
        sqlx::query("DELETE FROM diary_analytics_buckets")
            .execute(&mut *tx)
            .await?;
        sqlx::query("DELETE FROM diary_analytics_days")
            .execute(&mut *tx)
            .await?;
        sqlx::query("DELETE FROM diary_analysis_settings")
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(())
    }
}

fn bounds(range: TimeRange) -> (i64, i64) {
    (
        range.start.map_or(i64::MIN, |t| t.timestamp_micros()),
        range.end.map_or(i64::MAX, |t| t.timestamp_micros()),
    )
}

#[async_trait]
impl DiaryReadModels for SqliteDiaryReadModels {
    async fn entries_by_user(
        &self,
        user_id: &UserId,
        range: TimeRange,
        page: &PageRequest,
    ) -> Result<Page<Loaded<Entry>>, QueryError> {
        let (start, end) = bounds(range);
        let scope = format!("entries|{user_id}|{start}|{end}");
        let (after, offset) = resume(&scope, page, NEWEST_FIRST)?;
        let rows = sqlx::query(
            "SELECT * FROM diary_entry_read_model WHERE user_id = ? AND deleted = 0 \
             AND created_at >= ? AND created_at < ? \
             AND (created_at < ? OR (created_at = ? AND entry_id < ?)) \
             ORDER BY created_at DESC, entry_id DESC LIMIT ? OFFSET ?",
        )
        .bind(user_id.to_string())
        .bind(start)
        .bind(end)
        .bind(after.micros)
        .bind(after.micros)
        .bind(after.id)
        .bind(i64::from(page.limit) + 1)
        .bind(offset)
        .fetch_all(&self.pool)
        .await?;
        let rows = rows.iter().map(row_to_entry).collect::<Result<Vec<_>, _>>();
        Ok(page_of(
            rows.map_err(QueryError::Backend)?,
            &scope,
            page.limit,
            |entry| SortKey {
                micros: entry.created_at.map_or(0, |t| t.timestamp_micros()),
                id: entry.state.id.to_string(),
            },
        ))
    }

    async fn sessions_by_user(
        &self,
        user_id: &UserId,
        range: TimeRange,
        page: &PageRequest,
    ) -> Result<Page<Loaded<Session>>, QueryError> {
        let (start, end) = bounds(range);
        let scope = format!("sessions|{user_id}|{start}|{end}");
        let (after, offset) = resume(&scope, page, NEWEST_FIRST)?;
        let rows = sqlx::query(
            "SELECT * FROM diary_session_read_model WHERE user_id = ? \
             AND start_time >= ? AND start_time < ? \
             AND (start_time < ? OR (start_time = ? AND session_id < ?)) \
             ORDER BY start_time DESC, session_id DESC LIMIT ? OFFSET ?",
        )
        .bind(user_id.to_string())
        .bind(start)
        .bind(end)
        .bind(after.micros)
        .bind(after.micros)
        .bind(after.id)
        .bind(i64::from(page.limit) + 1)
        .bind(offset)
        .fetch_all(&self.pool)
        .await?;
        let rows = rows
            .iter()
            .map(row_to_session)
            .collect::<Result<Vec<_>, _>>();
        Ok(page_of(
            rows.map_err(QueryError::Backend)?,
            &scope,
            page.limit,
            |session| SortKey {
                micros: session.state.start_time.timestamp_micros(),
                id: session.state.id.to_string(),
            },
        ))
    }

    /// The `version` column of the entry's or session's row, which is also the row the lists
    /// read: each event changes the row and its version in one statement, and a deleted entry
    /// stays as a tombstone with the deletion's version. An entry's analysis, which lists do
    /// not show, moves only its `seen_version` (with its analytics bucket, in one
    /// transaction).
    async fn applied_version(&self, id: Uuid) -> Result<Option<u64>, QueryError> {
        let id = id.hyphenated().to_string();
        let version: Option<i64> = sqlx::query_scalar(
            "SELECT MAX(version, seen_version) FROM diary_entry_read_model WHERE entry_id = ? \
             UNION ALL SELECT version FROM diary_session_read_model WHERE session_id = ? \
             UNION ALL SELECT version FROM diary_analysis_settings WHERE user_id = ?",
        )
        .bind(id.clone())
        .bind(id.clone())
        .bind(id)
        .fetch_optional(&self.pool)
        .await?;
        Ok(version.and_then(|v| u64::try_from(v).ok()))
    }

    fn search_index(&self) -> Arc<dyn SearchIndex> {
        self.search.clone()
    }

    async fn wait_for_position(&self, position: u64, limit: std::time::Duration) {
        let deadline = std::time::Instant::now() + limit;
        while std::time::Instant::now() < deadline {
            let applied: Option<i64> =
                sqlx::query_scalar("SELECT position FROM checkpoints WHERE name = ?")
                    .bind(PROJECTION_NAME)
                    .fetch_optional(&self.pool)
                    .await
                    .unwrap_or(None);
            if applied.is_some_and(|p| p >= 0 && p as u64 >= position) {
                return;
            }
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
    }

    async fn buckets(
        &self,
        user_id: &UserId,
        start: DateTime<Utc>,
        end: DateTime<Utc>,
    ) -> Result<Vec<(i64, BucketTotals)>, QueryError> {
        let rows: Vec<(i64, String)> = sqlx::query_as(
            "SELECT bucket, totals FROM diary_analytics_buckets \
             WHERE user_id = ? AND bucket >= ? AND bucket < ? ORDER BY bucket",
        )
        .bind(user_id.to_string())
        .bind(start.timestamp_micros())
        .bind(end.timestamp_micros())
        .fetch_all(&self.pool)
        .await?;
        rows.into_iter()
            .map(|(bucket, totals)| Ok((bucket, serde_json::from_str(&totals)?)))
            .collect::<Result<_, ProjectionError>>()
            .map_err(QueryError::Backend)
    }

    /// The days wholly inside the window count by their totals; the quarter hours of a day
    /// the window cuts count by their own (at most two such days): a year reads about 365
    /// rows, whatever the writer's history.
    async fn window_totals(
        &self,
        user_id: &UserId,
        start: DateTime<Utc>,
        end: DateTime<Utc>,
    ) -> Result<WindowTotals, QueryError> {
        let (start, end) = (start.timestamp_micros(), end.timestamp_micros());
        if start >= end {
            return Ok(Default::default());
        }
        let rows: Vec<(i64, String, String)> =
            self.days(user_id, "totals, quarters", start, end).await?;
        let mut window = WindowTotals::default();
        for (day, totals, quarters) in rows {
            let quarters = DayRollup::quarters_from_json(day, &quarters)
                .map_err(|e| QueryError::Backend(e.into()))?;
            window
                .quarters
                .extend(quarters.range(start..end).map(|(b, c)| (*b, *c)));
            if day >= start && day + DAY_MICROS <= end {
                let totals: BucketTotals =
                    serde_json::from_str(&totals).map_err(|e| QueryError::Backend(e.into()))?;
                window.total.add(&totals);
            } else {
                let cut = |m: i64| time(m).map_err(QueryError::Backend);
                let (from, to) = (cut(day.max(start))?, cut((day + DAY_MICROS).min(end))?);
                for (_, totals) in self.buckets(user_id, from, to).await? {
                    window.total.add(&totals);
                }
            }
        }
        Ok(window)
    }

    /// Reads only each day's mask of written quarter hours: a streak of years costs a few
    /// bytes a day.
    async fn writing_quarters(
        &self,
        user_id: &UserId,
        start: DateTime<Utc>,
        end: DateTime<Utc>,
    ) -> Result<Vec<i64>, QueryError> {
        let (start, end) = (start.timestamp_micros(), end.timestamp_micros());
        if start >= end {
            return Ok(Vec::new());
        }
        let rows: Vec<(i64, Vec<u8>)> = self.days(user_id, "written", start, end).await?;
        Ok(rows
            .iter()
            .flat_map(|(day, mask)| DayRollup::written_from_mask(*day, mask))
            .filter(|b| (start..end).contains(b))
            .collect())
    }

    async fn analysis_enabled(&self, user_id: &UserId) -> Result<bool, QueryError> {
        let enabled: Option<bool> =
            sqlx::query_scalar("SELECT enabled FROM diary_analysis_settings WHERE user_id = ?")
                .bind(user_id.to_string())
                .fetch_optional(&self.pool)
                .await?;
        Ok(enabled.unwrap_or(true))
    }
}

/// Where a newest-first list starts when no cursor is given: before every row.
const NEWEST_FIRST: fn() -> SortKey = || SortKey {
    micros: i64::MAX,
    // Above every UUID in text order.
    id: "~".into(),
};

/// Where a page of `scope` starts: after the row its cursor names (and no offset), or at the
/// request's offset from `first`.
fn resume(
    scope: &str,
    page: &PageRequest,
    first: fn() -> SortKey,
) -> Result<(SortKey, i64), QueryError> {
    match &page.cursor {
        Some(cursor) => Ok((keyset_cursor::decode(scope, cursor)?, 0)),
        // Offsets go to SQL as i64: a larger one reaches past every row anyway.
        None => Ok((first(), i64::try_from(page.offset).unwrap_or(i64::MAX))),
    }
}

/// A page from rows fetched with one row more than `limit` (which tells whether more follow);
/// the next page resumes after the last row kept.
fn page_of<T>(mut rows: Vec<T>, scope: &str, limit: u32, key: impl Fn(&T) -> SortKey) -> Page<T> {
    let more = rows.len() > limit as usize;
    rows.truncate(limit as usize);
    let next_cursor = match rows.last() {
        Some(last) if more => Some(keyset_cursor::encode(scope, &key(last))),
        _ => None,
    };
    Page {
        items: rows,
        next_cursor,
    }
}

/// An id of a stored row (written from an event, so always canonical).
pub(crate) fn stored_id<T: std::str::FromStr>(text: &str) -> Result<T, ProjectionError> {
    text.parse()
        .map_err(|_| format!("stored id {text:?} is not a UUID").into())
}

fn row_to_entry(row: &SqliteRow) -> Result<Loaded<Entry>, ProjectionError> {
    let tags: String = row.try_get("tags")?;
    let version = u64::try_from(row.try_get::<i64, _>("version")?)?;
    Ok(Loaded {
        state: Entry {
            id: stored_id(row.try_get("entry_id")?)?,
            user_id: stored_id(row.try_get("user_id")?)?,
            title: row.try_get("title")?,
            content: row.try_get("content")?,
            token_count: u32::try_from(row.try_get::<i64, _>("token_count")?)?,
            session_id: row
                .try_get::<Option<&str>, _>("session_id")?
                .map(stored_id)
                .transpose()?,
            tags: serde_json::from_str(&tags)?,
            // The row's created_at already is when it was written.
            written_at: None,
            // Lists carry no analysis; their rows know only the latest version.
            analysis: None,
            content_version: version,
            version,
        },
        version: Some(version),
        created_at: Some(time(row.try_get("created_at")?)?),
        updated_at: Some(time(row.try_get("updated_at")?)?),
        erased: false,
    })
}

fn row_to_session(row: &SqliteRow) -> Result<Loaded<Session>, ProjectionError> {
    Ok(Loaded {
        state: Session {
            id: stored_id(row.try_get("session_id")?)?,
            user_id: stored_id(row.try_get("user_id")?)?,
            start_time: time(row.try_get("start_time")?)?,
            end_time: row
                .try_get::<Option<i64>, _>("end_time")?
                .map(time)
                .transpose()?,
            last_entry_at: None,
        },
        version: Some(row.try_get::<i64, _>("version")? as u64),
        created_at: Some(time(row.try_get("created_at")?)?),
        updated_at: Some(time(row.try_get("updated_at")?)?),
        erased: false,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn rows_written_before_the_analytics_totals_are_rebuilt_from_the_events() {
        let pool = sqlx::sqlite::SqlitePoolOptions::new()
            .max_connections(1)
            .connect("sqlite::memory:")
            .await
            .unwrap();
        for statement in [
            "CREATE TABLE diary_entry_read_model (entry_id TEXT PRIMARY KEY, user_id TEXT)",
            "CREATE TABLE diary_session_read_model (session_id TEXT PRIMARY KEY)",
            "CREATE TABLE checkpoints (name TEXT PRIMARY KEY, position INTEGER, updated_at INTEGER)",
            "INSERT INTO diary_entry_read_model VALUES ('e', 'u')",
            "INSERT INTO checkpoints VALUES ('diary-read-models', 42, 0), ('entry-analyzer', 42, 0)",
        ] {
            sqlx::query(statement).execute(&pool).await.unwrap();
        }
        SqliteDiaryReadModels::new(pool.clone()).await.unwrap();
        let rows: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM diary_entry_read_model")
            .fetch_one(&pool)
            .await
            .unwrap();
        assert_eq!(rows, 0, "replayed from the events");
        let left: Vec<String> = sqlx::query_scalar("SELECT name FROM checkpoints")
            .fetch_all(&pool)
            .await
            .unwrap();
        assert_eq!(left, ["entry-analyzer"]);
        // Opening them again changes nothing.
        SqliteDiaryReadModels::new(pool.clone()).await.unwrap();
        let columns: Vec<String> =
            sqlx::query_scalar("SELECT name FROM pragma_table_info('diary_entry_read_model')")
                .fetch_all(&pool)
                .await
                .unwrap();
        assert!(columns.iter().any(|c| c == "seen_version"));
    }
}
