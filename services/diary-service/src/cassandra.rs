//! The diary read models in Apache Cassandra (the production wiring). Same projection and
//! same queries as [`crate::read_model::SqliteDiaryReadModels`], same results for the same
//! events.
//!
//! Tables (`cql/001_diary_read_models.cql`), one per query: `diary_entry_read_model` and
//! `diary_session_read_model` by id, `entries_by_user` and `sessions_by_user` partitioned by
//! user and clustered newest first, so a time range `[start, end)` is one slice of one
//! partition. Pages come by offset or by a cursor holding the driver's paging state.
//!
//! Idempotency: every write carries `USING TIMESTAMP <stream version>`, so for each cell the
//! newest event of the entry or session wins, in any order of delivery, and a redelivered
//! event rewrites identical cells. Each event is first applied to the by-id row; the by-id
//! row, read back, is then copied to the by-user table at the row's own version (or, for a
//! deleted entry, the by-user row is deleted at that version). That read supplies what an
//! update or a deletion does not carry (the entry's creation time, its partition's
//! clustering key) and makes the order of delivery irrelevant: nothing reaches the listing
//! before the creation, and an entry deleted at version n stays deleted whatever arrives
//! later, because the by-user row's tombstone at n shadows every write of versions up to n.
//!
//! Analytics (`cql/005_analytics_quarters.cql`): each entry and session has a share of its
//! user's quarter hour's totals, computed from its by-id rows after every event. A move
//! replaces the member's stored share and the quarter hour's totals together, in one
//! lightweight transaction on the quarter hour's partition, unless the stored share was
//! computed from as late a state (its stamp). So an event costs the same however many
//! entries share its quarter hour, and consumers applying one user's entries concurrently
//! (they are on different Kafka partitions) lose no move. The totals are then copied, at
//! their revision, to the table a window's query reads as one partition slice.
//!
//! Read-your-writes (`cql/002_diary_read_model_versions.cql`): an event is applied in
//! several writes, so the by-id row's version does not say the listing has it yet.
//! `diary_read_model_versions` is written last, after the listing was made to match the
//! by-id row, at the version that row had; [`DiaryReadModels::applied_version`] answers from
//! it. So when it says n, the listing holds the entry or session at n or later (or no longer
//! holds the deleted entry), whatever the order of delivery.
//!
//! Every statement names its tables fully qualified with the configured keyspace (the
//! session has no current keyspace; see [`metachat_cassandra::connect`]).
//!
//! Nothing here logs diary text (titles, content, tags).

use std::sync::Arc;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use event_sourcing::{Loaded, Projection, ProjectionError, RecordedEvent, decode_event};
use metachat_cassandra::{
    CassandraConfig, CassandraError, fetch_page, migrate, qualified, version_by_id,
};
use metachat_read_model::{Page, PageRequest, QueryError, time_from_micros as time};
use scylla::DeserializeRow;
use scylla::client::session::Session;
use scylla::statement::prepared::PreparedStatement;
use uuid::Uuid;

use event_sourcing::Aggregate;
use metachat_validation::UserId;

use crate::analytics::{AnalysisSummary, BucketTotals, EntryFacts, SessionFacts, bucket_of};
use crate::domain::{
    Entry, EntryEvent, EntryState, Session as DiarySession, SessionEvent, SessionState, Tag,
};
use crate::read_model::stored_id;
use crate::read_model::{DiaryReadModels, TimeRange, analysis_switch, diary_erasure};
use crate::search::SearchIndex;
use crate::search::cassandra::CassandraSearchIndex;

/// The migrations of the `diary` domain, in order.
pub const MIGRATIONS: &[(u32, &str)] = &[
    (1, include_str!("../cql/001_diary_read_models.cql")),
    (2, include_str!("../cql/002_diary_read_model_versions.cql")),
    (3, include_str!("../cql/003_diary_analytics.cql")),
    (4, include_str!("../cql/004_search_index.cql")),
    (5, include_str!("../cql/005_analytics_quarters.cql")),
];

/// The migration domain of these tables in `schema_migrations`.
pub const MIGRATION_DOMAIN: &str = "diary";

/// Every table, as `reset` truncates them: the versions first, so that while a reset runs
/// no token is taken as reflected by lists that are being emptied.
const TABLES: [&str; 11] = [
    "diary_read_model_versions",
    "diary_entry_read_model",
    "entries_by_user",
    "diary_session_read_model",
    "sessions_by_user",
    "diary_entry_analysis",
    "analytics_entries",
    "analytics_sessions",
    "analytics_quarters",
    "analytics_quarter_totals",
    "diary_analysis_settings",
];

const ENTRY_COLUMNS: &str = "entry_id, user_id, title, content, token_count, session_id, tags, \
     created_at_micros, updated_at_micros, version";
const SESSION_COLUMNS: &str = "session_id, user_id, start_time_micros, end_time_micros, \
     created_at_micros, updated_at_micros, version";

struct Statements {
    insert_entry: PreparedStatement,
    update_entry: PreparedStatement,
    delete_entry: PreparedStatement,
    entry_by_id: PreparedStatement,
    put_entry_by_user: PreparedStatement,
    remove_entry_by_user: PreparedStatement,
    entries_by_user: PreparedStatement,
    new_content: PreparedStatement,
    clear_analysis: PreparedStatement,
    put_analysis: PreparedStatement,
    put_analytics_entry: PreparedStatement,
    analytics_entries_of_user: PreparedStatement,
    put_analytics_session: PreparedStatement,
    bucket_entry: PreparedStatement,
    bucket_entry_analysis: PreparedStatement,
    analysis_written: PreparedStatement,
    bucket_session: PreparedStatement,
    quarter: PreparedStatement,
    quarter_member: PreparedStatement,
    move_share: PreparedStatement,
    put_quarter_totals: PreparedStatement,
    remove_quarter_totals: PreparedStatement,
    quarter_totals: PreparedStatement,
    put_setting: PreparedStatement,
    put_last_disabled: PreparedStatement,
    setting: PreparedStatement,
    start_session: PreparedStatement,
    end_session: PreparedStatement,
    touch_session: PreparedStatement,
    session_by_id: PreparedStatement,
    put_session_by_user: PreparedStatement,
    sessions_by_user: PreparedStatement,
    mark_applied: PreparedStatement,
    applied_version: PreparedStatement,
}

/// The diary read models in Cassandra.
#[derive(Clone)]
pub struct CassandraDiaryReadModels {
    session: Arc<Session>,
    /// The keyspace the tables are in, as configured.
    keyspace: Arc<str>,
    statements: Arc<Statements>,
    search: Arc<CassandraSearchIndex>,
}

impl CassandraDiaryReadModels {
    /// Connects (see [`metachat_cassandra::connect`]: the keyspace is created when missing),
    /// applies the migrations and prepares the statements.
    pub async fn connect(config: &CassandraConfig) -> Result<Self, CassandraError> {
        Self::new(metachat_cassandra::connect(config).await?, &config.keyspace).await
    }

    /// Applies the `diary` migrations to `keyspace` (a name as in
    /// [`CassandraConfig::keyspace`], created by [`metachat_cassandra::connect`]), then
    /// prepares every statement.
    pub async fn new(session: Arc<Session>, keyspace: &str) -> Result<Self, CassandraError> {
        migrate(&session, keyspace, MIGRATION_DOMAIN, MIGRATIONS).await?;
        Self::prepare(session, keyspace).await
    }

    /// The session, for health probes.
    pub fn session(&self) -> &Arc<Session> {
        &self.session
    }

    /// Prepares every statement, on a `keyspace` that is already migrated.
    pub async fn prepare(session: Arc<Session>, keyspace: &str) -> Result<Self, CassandraError> {
        let s = &session;
        let diary_entry_read_model = qualified(keyspace, "diary_entry_read_model");
        let entries_by_user = qualified(keyspace, "entries_by_user");
        let diary_session_read_model = qualified(keyspace, "diary_session_read_model");
        let sessions_by_user = qualified(keyspace, "sessions_by_user");
        let versions = qualified(keyspace, "diary_read_model_versions");
        let entry_analysis = qualified(keyspace, "diary_entry_analysis");
        let analytics_entries = qualified(keyspace, "analytics_entries");
        let analytics_sessions = qualified(keyspace, "analytics_sessions");
        let analytics_quarters = qualified(keyspace, "analytics_quarters");
        let quarter_totals = qualified(keyspace, "analytics_quarter_totals");
        let settings = qualified(keyspace, "diary_analysis_settings");
        let statements = Statements {
            insert_entry: prepare(
                s,
                &format!(
                    "INSERT INTO {diary_entry_read_model} (entry_id, user_id, title, content, \
                     token_count, session_id, tags, deleted, created_at_micros, \
                     updated_at_micros, version) \
                     VALUES (?, ?, ?, ?, ?, ?, ?, false, ?, ?, ?) USING TIMESTAMP ?"
                ),
            )
            .await?,
            update_entry: prepare(
                s,
                &format!(
                    "UPDATE {diary_entry_read_model} USING TIMESTAMP ? SET user_id = ?, \
                     title = ?, content = ?, token_count = ?, tags = ?, \
                     updated_at_micros = ?, version = ? WHERE entry_id = ?"
                ),
            )
            .await?,
            // The tombstone keeps no text: a deleted entry's words live only in its history.
            delete_entry: prepare(
                s,
                &format!(
                    "UPDATE {diary_entry_read_model} USING TIMESTAMP ? SET user_id = ?, \
                     deleted = true, title = null, content = null, tags = null, \
                     updated_at_micros = ?, version = ? WHERE entry_id = ?"
                ),
            )
            .await?,
            entry_by_id: prepare(
                s,
                &format!(
                    "SELECT user_id, title, content, token_count, session_id, tags, \
                     created_at_micros, updated_at_micros, version, deleted \
                     FROM {diary_entry_read_model} WHERE entry_id = ?"
                ),
            )
            .await?,
            put_entry_by_user: prepare(
                s,
                &format!(
                    "INSERT INTO {entries_by_user} (user_id, created_at_micros, entry_id, \
                     title, content, token_count, session_id, tags, updated_at_micros, \
                     version) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?) USING TIMESTAMP ?"
                ),
            )
            .await?,
            remove_entry_by_user: prepare(
                s,
                &format!(
                    "DELETE FROM {entries_by_user} USING TIMESTAMP ? \
                     WHERE user_id = ? AND created_at_micros = ? AND entry_id = ?"
                ),
            )
            .await?,
            entries_by_user: prepare(
                s,
                &format!(
                    "SELECT {ENTRY_COLUMNS} FROM {entries_by_user} WHERE user_id = ? \
                     AND created_at_micros >= ? AND created_at_micros < ?"
                ),
            )
            .await?,
            new_content: prepare(
                s,
                &format!(
                    "UPDATE {entry_analysis} USING TIMESTAMP ? SET content_version = ? \
                     WHERE entry_id = ?"
                ),
            )
            .await?,
            clear_analysis: prepare(
                s,
                &format!(
                    "UPDATE {entry_analysis} USING TIMESTAMP ? SET analysis = null \
                     WHERE entry_id = ?"
                ),
            )
            .await?,
            put_analysis: prepare(
                s,
                &format!(
                    "UPDATE {entry_analysis} USING TIMESTAMP ? SET analysed_version = ?, \
                     analysis = ? WHERE entry_id = ?"
                ),
            )
            .await?,
            put_analytics_entry: prepare(
                s,
                &format!(
                    "INSERT INTO {analytics_entries} (user_id, bucket_micros, entry_id) \
                     VALUES (?, ?, ?) USING TIMESTAMP 1"
                ),
            )
            .await?,
            analytics_entries_of_user: prepare(
                s,
                &format!(
                    "SELECT bucket_micros, entry_id FROM {analytics_entries} WHERE user_id = ?"
                ),
            )
            .await?,
            put_analytics_session: prepare(
                s,
                &format!(
                    "INSERT INTO {analytics_sessions} (user_id, bucket_micros, session_id) \
                     VALUES (?, ?, ?) USING TIMESTAMP 1"
                ),
            )
            .await?,
            // What a bucket counts of an entry, and when each of those cells was written.
            bucket_entry: prepare(
                s,
                &format!(
                    "SELECT token_count, tags, content, deleted, \
                     WRITETIME(token_count) AS token_count_at, \
                     WRITETIME(deleted) AS deleted_at, \
                     WRITETIME(created_at_micros) AS created_at_at \
                     FROM {diary_entry_read_model} WHERE entry_id = ?"
                ),
            )
            .await?,
            bucket_entry_analysis: prepare(
                s,
                &format!(
                    "SELECT content_version, analysed_version, analysis, \
                     WRITETIME(content_version) AS content_version_at, \
                     WRITETIME(analysed_version) AS analysed_version_at \
                     FROM {entry_analysis} WHERE entry_id = ?"
                ),
            )
            .await?,
            analysis_written: prepare(
                s,
                &format!("SELECT WRITETIME(analysis) FROM {entry_analysis} WHERE entry_id = ?"),
            )
            .await?,
            bucket_session: prepare(
                s,
                &format!(
                    "SELECT start_time_micros, end_time_micros, \
                     WRITETIME(start_time_micros) AS start_at, \
                     WRITETIME(end_time_micros) AS end_at \
                     FROM {diary_session_read_model} WHERE session_id = ?"
                ),
            )
            .await?,
            quarter: prepare(
                s,
                &format!(
                    "SELECT revision, totals FROM {analytics_quarters} \
                     WHERE user_id = ? AND bucket_micros = ? LIMIT 1"
                ),
            )
            .await?,
            quarter_member: prepare(
                s,
                &format!(
                    "SELECT share, setting_version, stamp FROM {analytics_quarters} \
                     WHERE user_id = ? AND bucket_micros = ? AND member_id = ?"
                ),
            )
            .await?,
            // One lightweight transaction: the totals and the member's share move together,
            // if nothing moved since the revision was read.
            move_share: prepare(
                s,
                &format!(
                    "UPDATE {analytics_quarters} SET totals = ?, revision = ?, share = ?, \
                     setting_version = ?, stamp = ? \
                     WHERE user_id = ? AND bucket_micros = ? AND member_id = ? IF revision = ?"
                ),
            )
            .await?,
            put_quarter_totals: prepare(
                s,
                &format!(
                    "INSERT INTO {quarter_totals} (user_id, bucket_micros, totals) \
                     VALUES (?, ?, ?) USING TIMESTAMP ?"
                ),
            )
            .await?,
            remove_quarter_totals: prepare(
                s,
                &format!(
                    "DELETE FROM {quarter_totals} USING TIMESTAMP ? \
                     WHERE user_id = ? AND bucket_micros = ?"
                ),
            )
            .await?,
            quarter_totals: prepare(
                s,
                &format!(
                    "SELECT bucket_micros, totals FROM {quarter_totals} WHERE user_id = ? \
                     AND bucket_micros >= ? AND bucket_micros < ?"
                ),
            )
            .await?,
            put_setting: prepare(
                s,
                &format!(
                    "INSERT INTO {settings} (user_id, enabled, version) VALUES (?, ?, ?) \
                     USING TIMESTAMP ?"
                ),
            )
            .await?,
            put_last_disabled: prepare(
                s,
                &format!(
                    "UPDATE {settings} USING TIMESTAMP ? SET last_disabled = ? WHERE user_id = ?"
                ),
            )
            .await?,
            setting: prepare(
                s,
                &format!(
                    "SELECT enabled, version, last_disabled FROM {settings} WHERE user_id = ?"
                ),
            )
            .await?,
            start_session: prepare(
                s,
                &format!(
                    "INSERT INTO {diary_session_read_model} (session_id, user_id, \
                     start_time_micros, created_at_micros, updated_at_micros, version) \
                     VALUES (?, ?, ?, ?, ?, ?) USING TIMESTAMP ?"
                ),
            )
            .await?,
            end_session: prepare(
                s,
                &format!(
                    "UPDATE {diary_session_read_model} USING TIMESTAMP ? SET user_id = ?, \
                     end_time_micros = ?, updated_at_micros = ?, version = ? \
                     WHERE session_id = ?"
                ),
            )
            .await?,
            touch_session: prepare(
                s,
                &format!(
                    "UPDATE {diary_session_read_model} USING TIMESTAMP ? SET user_id = ?, \
                     updated_at_micros = ?, version = ? WHERE session_id = ?"
                ),
            )
            .await?,
            session_by_id: prepare(
                s,
                &format!(
                    "SELECT {SESSION_COLUMNS} FROM {diary_session_read_model} \
                     WHERE session_id = ?"
                ),
            )
            .await?,
            put_session_by_user: prepare(
                s,
                &format!(
                    "INSERT INTO {sessions_by_user} (user_id, start_time_micros, session_id, \
                     end_time_micros, created_at_micros, updated_at_micros, version) \
                     VALUES (?, ?, ?, ?, ?, ?, ?) USING TIMESTAMP ?"
                ),
            )
            .await?,
            sessions_by_user: prepare(
                s,
                &format!(
                    "SELECT {SESSION_COLUMNS} FROM {sessions_by_user} WHERE user_id = ? \
                     AND start_time_micros >= ? AND start_time_micros < ?"
                ),
            )
            .await?,
            mark_applied: prepare(
                s,
                &format!("INSERT INTO {versions} (id, version) VALUES (?, ?) USING TIMESTAMP ?"),
            )
            .await?,
            applied_version: prepare(s, &format!("SELECT version FROM {versions} WHERE id = ?"))
                .await?,
        };
        let search = Arc::new(CassandraSearchIndex::prepare(session.clone(), keyspace).await?);
        Ok(Self {
            session,
            keyspace: keyspace.into(),
            statements: Arc::new(statements),
            search,
        })
    }

    async fn apply_entry(&self, recorded: &RecordedEvent) -> Result<(), ProjectionError> {
        let event: EntryEvent = decode_event(recorded)?;
        let id = recorded.aggregate_id();
        let version = i64::try_from(recorded.stream_version)?;
        let at = recorded.recorded_at.timestamp_micros();
        let st = &self.statements;
        match &event {
            EntryEvent::DiaryEntryCreated(e) => {
                self.session
                    .execute_unpaged(
                        &st.insert_entry,
                        (
                            id,
                            e.user_id.to_string(),
                            &e.title,
                            &e.content,
                            i32::try_from(e.token_count)?,
                            e.session_id.map(|s| s.to_string()),
                            tag_texts(&e.tags),
                            // When it was written: the client's account, else when recorded.
                            e.created_at.map_or(at, |t| t.timestamp_micros()),
                            at,
                            version,
                            version,
                        ),
                    )
                    .await?;
            }
            EntryEvent::DiaryEntryUpdated(e) => {
                // New content makes the analysis that of older content.
                let current = self
                    .session
                    .execute_unpaged(&st.entry_by_id, (id,))
                    .await?
                    .into_rows_result()?
                    .maybe_first_row::<EntryByIdRow>()?;
                if current.is_none_or(|row| row.content.as_deref() != Some(e.content.as_str())) {
                    self.session
                        .execute_unpaged(&st.new_content, (version, version, id))
                        .await?;
                }
                self.session
                    .execute_unpaged(
                        &st.update_entry,
                        (
                            version,
                            e.user_id.to_string(),
                            &e.title,
                            &e.content,
                            i32::try_from(e.token_count)?,
                            tag_texts(&e.tags),
                            at,
                            version,
                            id,
                        ),
                    )
                    .await?;
            }
            EntryEvent::DiaryEntryDeleted(e) => {
                self.session
                    .execute_unpaged(&st.clear_analysis, (version, id))
                    .await?;
                self.session
                    .execute_unpaged(
                        &st.delete_entry,
                        (version, e.user_id.to_string(), at, version, id),
                    )
                    .await?;
            }
            // The analysis of the current content counts in analytics (unless the writer
            // switched analysis off); it moves the entry's version, as reading it by id shows.
            EntryEvent::DiaryEntryAnalyzed(e) => {
                let setting = self.setting(&e.user_id.to_string()).await?;
                let shown =
                    setting.enabled && i64::try_from(e.setting_version)? >= setting.last_disabled;
                let summary = shown
                    .then(|| serde_json::to_string(&AnalysisSummary::of(e)))
                    .transpose()?;
                self.session
                    .execute_unpaged(
                        &st.put_analysis,
                        (version, i64::try_from(e.entry_version)?, summary, id),
                    )
                    .await?;
            }
        }
        self.copy_entry_to_listing(id, version).await
    }

    /// Makes the entry's row in `entries_by_user` match its by-id row, at the by-id row's
    /// version: written while live, deleted once deleted, absent until created; then its
    /// analytics bucket. The lists and analytics then reflect the entry at that version, or
    /// at `applied`, the version of the event applied, when that is later: an analysis does
    /// not change what lists show (nor their version), only what analytics count.
    async fn copy_entry_to_listing(&self, id: &str, applied: i64) -> Result<(), ProjectionError> {
        let st = &self.statements;
        let row = self
            .session
            .execute_unpaged(&st.entry_by_id, (id,))
            .await?
            .into_rows_result()?
            .maybe_first_row::<EntryByIdRow>()?;
        let Some(row) = row else {
            return Ok(());
        };
        let (Some(user_id), Some(created_at), Some(version)) =
            (&row.user_id, row.created_at_micros, row.version)
        else {
            // Not created yet (a later event arrived first): its creation will copy it.
            return Ok(());
        };
        let deleted = row.deleted == Some(true);
        let bucket = bucket_of(created_at);
        self.session
            .execute_unpaged(&st.put_analytics_entry, (user_id, bucket, id))
            .await?;
        self.move_entry_share(user_id, bucket, id).await?;
        if deleted {
            self.session
                .execute_unpaged(&st.remove_entry_by_user, (version, user_id, created_at, id))
                .await?;
        } else {
            let e = &row;
            self.session
                .execute_unpaged(
                    &st.put_entry_by_user,
                    (
                        user_id,
                        created_at,
                        id,
                        &e.title,
                        &e.content,
                        e.token_count,
                        &e.session_id,
                        &e.tags,
                        e.updated_at_micros,
                        version,
                        version,
                    ),
                )
                .await?;
        }
        self.mark_applied(id, version.max(applied)).await
    }

    async fn apply_session(&self, recorded: &RecordedEvent) -> Result<(), ProjectionError> {
        let event: SessionEvent = decode_event(recorded)?;
        let id = recorded.aggregate_id();
        let version = i64::try_from(recorded.stream_version)?;
        let at = recorded.recorded_at.timestamp_micros();
        let st = &self.statements;
        match &event {
            SessionEvent::DiarySessionStarted(e) => {
                self.session
                    .execute_unpaged(
                        &st.start_session,
                        (
                            id,
                            e.user_id.to_string(),
                            e.start_time.timestamp_micros(),
                            at,
                            at,
                            version,
                            version,
                        ),
                    )
                    .await?;
            }
            SessionEvent::DiarySessionEntryAdded(e) => {
                self.session
                    .execute_unpaged(
                        &st.touch_session,
                        (version, e.user_id.to_string(), at, version, id),
                    )
                    .await?;
            }
            SessionEvent::DiarySessionEnded(e) => {
                self.session
                    .execute_unpaged(
                        &st.end_session,
                        (
                            version,
                            e.user_id.to_string(),
                            e.end_time.timestamp_micros(),
                            at,
                            version,
                            id,
                        ),
                    )
                    .await?;
            }
        }
        self.copy_session_to_listing(id).await
    }

    /// Makes the session's row in `sessions_by_user` match its by-id row, at that row's
    /// version (absent until the session's start has been applied).
    async fn copy_session_to_listing(&self, id: &str) -> Result<(), ProjectionError> {
        let st = &self.statements;
        let row = self
            .session
            .execute_unpaged(&st.session_by_id, (id,))
            .await?
            .into_rows_result()?
            .maybe_first_row::<SessionRow>()?;
        let Some(row) = row else {
            return Ok(());
        };
        let (Some(user_id), Some(start_time), Some(version)) =
            (&row.user_id, row.start_time_micros, row.version)
        else {
            return Ok(());
        };
        let bucket = bucket_of(start_time);
        self.session
            .execute_unpaged(&st.put_analytics_session, (user_id, bucket, id))
            .await?;
        self.move_session_share(user_id, bucket, id).await?;
        self.session
            .execute_unpaged(
                &st.put_session_by_user,
                (
                    user_id,
                    start_time,
                    id,
                    row.end_time_micros,
                    row.created_at_micros,
                    row.updated_at_micros,
                    version,
                    version,
                ),
            )
            .await?;
        self.mark_applied(id, version).await
    }

    /// A user's analysis setting (on at version 0 until switched).
    async fn setting(&self, user_id: &str) -> Result<Setting, ProjectionError> {
        let row = self
            .session
            .execute_unpaged(&self.statements.setting, (user_id,))
            .await?
            .into_rows_result()?
            .maybe_first_row::<SettingRow>()?;
        Ok(row.map_or(
            Setting {
                enabled: true,
                version: 0,
                last_disabled: 0,
            },
            |r| Setting {
                enabled: r.enabled.unwrap_or(true),
                version: r.version.unwrap_or(0),
                last_disabled: r.last_disabled.unwrap_or(0),
            },
        ))
    }

    /// The by-id row of a quarter hour's member (it was listed after that row was written).
    async fn by_id<R>(&self, statement: &PreparedStatement, id: &str) -> Result<R, ProjectionError>
    where
        R: for<'f, 'm> scylla::deserialize::row::DeserializeRow<'f, 'm>,
    {
        self.session
            .execute_unpaged(statement, (id,))
            .await?
            .into_rows_result()?
            .maybe_first_row::<R>()?
            .ok_or_else(|| missing("by-id row of a quarter hour's member"))
    }

    /// Moves an entry's share of its quarter hour's totals to what its by-id rows hold now
    /// (nothing once it is deleted).
    async fn move_entry_share(
        &self,
        user_id: &str,
        bucket: i64,
        id: &str,
    ) -> Result<(), ProjectionError> {
        let st = &self.statements;
        // The setting before the rows: a share computed under a later setting wins.
        let setting = self.setting(user_id).await?;
        let row: BucketEntryRow = self.by_id(&st.bucket_entry, id).await?;
        let kept = self
            .session
            .execute_unpaged(&st.bucket_entry_analysis, (id,))
            .await?
            .into_rows_result()?
            .maybe_first_row::<BucketAnalysisRow>()?;
        // Only cells no event clears, whose write times only grow: the creation's, the
        // token count (every update rewrites it, where a deletion clears the text and the
        // tags) and the deletion flag (false from the creation, true from the deletion).
        let mut written = [row.token_count_at, row.deleted_at, row.created_at_at]
            .into_iter()
            .fold(0i64, |sum, at| sum.saturating_add(at.unwrap_or(0)));
        // And of the analysis row, the versions (a switch off clears only the summary).
        if let Some(k) = &kept {
            for at in [k.content_version_at, k.analysed_version_at] {
                written = written.saturating_add(at.unwrap_or(0));
            }
        }
        let stamp = Stamp {
            setting_version: setting.version,
            written,
        };
        if row.deleted == Some(true) {
            return self.move_share(user_id, bucket, id, None, stamp).await;
        }
        // The analysis counts while it is of the current content (the creation's until an
        // update changes it), and while analysis is on.
        let analysis = match kept {
            Some(k)
                if setting.enabled
                    && k.analysed_version == Some(k.content_version.unwrap_or(1)) =>
            {
                k.analysis
            }
            _ => None,
        };
        let facts = EntryFacts {
            token_count: u32::try_from(row.token_count.unwrap_or_default())?,
            tags: row.tags.unwrap_or_default(),
            // Counted from the text, so it counts also while analysis is off.
            word_count: analysis::count_words(row.content.as_deref().unwrap_or_default()),
            analysis: analysis.as_deref().map(serde_json::from_str).transpose()?,
        };
        let share = BucketTotals::of(&[facts], &[]);
        self.move_share(user_id, bucket, id, Some(share), stamp)
            .await
    }

    /// Moves a session's share of its quarter hour's totals to what its by-id row holds now.
    async fn move_session_share(
        &self,
        user_id: &str,
        bucket: i64,
        id: &str,
    ) -> Result<(), ProjectionError> {
        let row: BucketSessionRow = self.by_id(&self.statements.bucket_session, id).await?;
        let facts = SessionFacts {
            start_time: time(
                row.start_time_micros
                    .ok_or_else(|| missing("start_time_micros"))?,
            )?,
            end_time: row.end_time_micros.map(time).transpose()?,
        };
        let stamp = Stamp {
            // A session's share does not depend on the analysis setting.
            setting_version: 0,
            written: row
                .start_at
                .unwrap_or(0)
                .saturating_add(row.end_at.unwrap_or(0)),
        };
        let share = BucketTotals::of(&[], &[facts]);
        self.move_share(user_id, bucket, id, Some(share), stamp)
            .await
    }

    /// Replaces a member's share of a user's quarter hour with `share`, computed at `stamp`,
    /// unless the share stored was computed at the same stamp or a later one (see
    /// `cql/005_analytics_quarters.cql`). The totals and the share move in one lightweight
    /// transaction, retried while another move of the same quarter hour comes first; the
    /// totals are then copied to the table windows are read from. (A transaction the driver
    /// sends again after a timeout, that had been applied, answers "not applied": the loop
    /// then finds the share stored at this stamp and only copies.)
    async fn move_share(
        &self,
        user_id: &str,
        bucket: i64,
        member: &str,
        share: Option<BucketTotals>,
        stamp: Stamp,
    ) -> Result<(), ProjectionError> {
        let st = &self.statements;
        let stored_share = share.as_ref().map(serde_json::to_string).transpose()?;
        loop {
            // The revision before the member: a share read after it is at least as new.
            let (revision, totals) = self
                .session
                .execute_unpaged(&st.quarter, (user_id, bucket))
                .await?
                .into_rows_result()?
                .maybe_first_row::<(Option<i64>, Option<String>)>()?
                .unwrap_or((None, None));
            let mut totals: BucketTotals = totals
                .as_deref()
                .map(serde_json::from_str)
                .transpose()?
                .unwrap_or_default();
            let stored = self
                .session
                .execute_unpaged(&st.quarter_member, (user_id, bucket, member))
                .await?
                .into_rows_result()?
                .maybe_first_row::<(Option<String>, Option<i64>, Option<i64>)>()?;
            let mut old = BucketTotals::default();
            if let Some((old_share, setting_version, written)) = stored {
                let old_stamp = Stamp {
                    setting_version: setting_version.unwrap_or(0),
                    written: written.unwrap_or(0),
                };
                if old_stamp >= stamp {
                    // Moved already (a redelivery), or to a later state: only the copy may
                    // be missing.
                    return self.copy_quarter(user_id, bucket, revision, &totals).await;
                }
                if let Some(json) = old_share {
                    old = serde_json::from_str(&json)?;
                }
            }
            totals.subtract(&old);
            if let Some(new) = &share {
                totals.add(new);
            }
            let next = revision.unwrap_or(0) + 1;
            let outcome = self
                .session
                .execute_unpaged(
                    &st.move_share,
                    (
                        serde_json::to_string(&totals)?,
                        next,
                        &stored_share,
                        stamp.setting_version,
                        stamp.written,
                        user_id,
                        bucket,
                        member,
                        revision,
                    ),
                )
                .await?
                .into_rows_result()?
                .maybe_first_row::<scylla::value::Row>()?;
            let applied = matches!(
                outcome.as_ref().and_then(|row| row.columns.first()),
                Some(Some(scylla::value::CqlValue::Boolean(true)))
            );
            if applied {
                return self
                    .copy_quarter(user_id, bucket, Some(next), &totals)
                    .await;
            }
        }
    }

    /// Copies a quarter hour's totals at `revision` to `analytics_quarter_totals` (removed
    /// there while they count nothing).
    async fn copy_quarter(
        &self,
        user_id: &str,
        bucket: i64,
        revision: Option<i64>,
        totals: &BucketTotals,
    ) -> Result<(), ProjectionError> {
        let st = &self.statements;
        let Some(revision) = revision else {
            return Ok(());
        };
        if totals.is_empty() {
            self.session
                .execute_unpaged(&st.remove_quarter_totals, (revision, user_id, bucket))
                .await?;
        } else {
            self.session
                .execute_unpaged(
                    &st.put_quarter_totals,
                    (user_id, bucket, serde_json::to_string(totals)?, revision),
                )
                .await?;
        }
        Ok(())
    }

    /// A user switched analysis on or off. Off drops the summaries of every entry of theirs
    /// (each at the time it was written, where a deletion beats the write it ties with) and
    /// moves each entry's share to one without its analysis; analyses recorded while it
    /// stays off are not kept.
    async fn apply_analysis_switch(
        &self,
        recorded: &RecordedEvent,
        user_id: UserId,
        enabled: bool,
    ) -> Result<(), ProjectionError> {
        let st = &self.statements;
        let version = i64::try_from(recorded.stream_version)?;
        let user_id = user_id.to_string();
        self.session
            .execute_unpaged(&st.put_setting, (&user_id, enabled, version, version))
            .await?;
        if !enabled {
            self.session
                .execute_unpaged(&st.put_last_disabled, (version, version, &user_id))
                .await?;
        }
        if !self.setting(&user_id).await?.enabled {
            let rows = self
                .session
                .execute_unpaged(&st.analytics_entries_of_user, (&user_id,))
                .await?
                .into_rows_result()?;
            for row in rows.rows::<(i64, String)>()? {
                let (bucket, id) = row?;
                // At the analysis's own write time, where the clearing wins.
                let written = self
                    .session
                    .execute_unpaged(&st.analysis_written, (&id,))
                    .await?
                    .into_rows_result()?
                    .maybe_first_row::<(Option<i64>,)>()?
                    .and_then(|(at,)| at);
                if let Some(at) = written {
                    self.session
                        .execute_unpaged(&st.clear_analysis, (at, &id))
                        .await?;
                }
                self.move_entry_share(&user_id, bucket, &id).await?;
            }
        }
        self.mark_applied(&user_id, version).await
    }

    /// Deletes every row of an erased writer. The tombstones carry the time of the erasure,
    /// far above the stream versions the rows were written at, so no event redelivered later
    /// can bring a row back. Cassandra drops the deleted cells from its files at compaction
    /// (`nodetool garbagecollect` forces it; see docs/security.md).
    async fn erase_writer(&self, user_id: &str) -> Result<(), ProjectionError> {
        let table = |name: &str| qualified(&self.keyspace, name);
        let at = chrono::Utc::now().timestamp_micros();
        let ids = |name: &str, column: &str| {
            format!("SELECT {column} FROM {} WHERE user_id = ?", table(name))
        };
        let mut entries = std::collections::BTreeSet::new();
        let mut quarters = std::collections::BTreeSet::new();
        for name in ["analytics_entries", "analytics_sessions"] {
            let rows = self
                .session
                .query_unpaged(ids(name, "bucket_micros"), (user_id,))
                .await?
                .into_rows_result()?;
            for row in rows.rows::<(i64,)>()? {
                quarters.insert(row?.0);
            }
        }
        for (name, column) in [
            ("entries_by_user", "entry_id"),
            ("analytics_entries", "entry_id"),
        ] {
            let rows = self
                .session
                .query_unpaged(ids(name, column), (user_id,))
                .await?
                .into_rows_result()?;
            for row in rows.rows::<(String,)>()? {
                entries.insert(row?.0);
            }
        }
        let sessions = self
            .session
            .query_unpaged(ids("sessions_by_user", "session_id"), (user_id,))
            .await?
            .into_rows_result()?
            .rows::<(String,)>()?
            .map(|row| row.map(|(id,)| id))
            .collect::<Result<Vec<_>, _>>()?;
        let by_id = |name: &str, column: &str| {
            format!(
                "DELETE FROM {} USING TIMESTAMP ? WHERE {column} = ?",
                table(name)
            )
        };
        for id in &entries {
            for name in ["diary_entry_read_model", "diary_entry_analysis"] {
                self.session
                    .query_unpaged(by_id(name, "entry_id"), (at, id))
                    .await?;
            }
        }
        for id in &sessions {
            self.session
                .query_unpaged(by_id("diary_session_read_model", "session_id"), (at, id))
                .await?;
        }
        // Before the lists of members, which say which quarter hours there are.
        let quarter = format!(
            "DELETE FROM {} USING TIMESTAMP ? WHERE user_id = ? AND bucket_micros = ?",
            table("analytics_quarters")
        );
        for bucket in quarters {
            self.session
                .query_unpaged(quarter.as_str(), (at, user_id, bucket))
                .await?;
        }
        for name in [
            "analytics_quarter_totals",
            "entries_by_user",
            "sessions_by_user",
            "analytics_entries",
            "analytics_sessions",
            "diary_analysis_settings",
        ] {
            self.session
                .query_unpaged(by_id(name, "user_id"), (at, user_id))
                .await?;
        }
        Ok(())
    }

    /// The last write of every event that reached a listing: the lists now reflect the entry
    /// or session at `version`.
    async fn mark_applied(&self, id: &str, version: i64) -> Result<(), ProjectionError> {
        self.session
            .execute_unpaged(&self.statements.mark_applied, (id, version, version))
            .await?;
        Ok(())
    }
}

async fn prepare(session: &Session, cql: &str) -> Result<PreparedStatement, CassandraError> {
    let mut statement = session
        .prepare(cql)
        .await
        .map_err(CassandraError::request)?;
    // Every statement here may be retried: writes are versioned, reads have no effect.
    statement.set_is_idempotent(true);
    Ok(statement)
}

#[derive(DeserializeRow)]
struct EntryRow {
    entry_id: String,
    user_id: Option<String>,
    title: Option<String>,
    content: Option<String>,
    token_count: Option<i32>,
    session_id: Option<String>,
    tags: Option<Vec<String>>,
    created_at_micros: Option<i64>,
    updated_at_micros: Option<i64>,
    version: Option<i64>,
}

/// An `EntryRow` with the by-id table's deletion flag.
#[derive(DeserializeRow)]
struct EntryByIdRow {
    user_id: Option<String>,
    title: Option<String>,
    content: Option<String>,
    token_count: Option<i32>,
    session_id: Option<String>,
    tags: Option<Vec<String>>,
    created_at_micros: Option<i64>,
    updated_at_micros: Option<i64>,
    version: Option<i64>,
    deleted: Option<bool>,
}

#[derive(DeserializeRow)]
struct BucketEntryRow {
    token_count: Option<i32>,
    tags: Option<Vec<String>>,
    content: Option<String>,
    deleted: Option<bool>,
    token_count_at: Option<i64>,
    deleted_at: Option<i64>,
    created_at_at: Option<i64>,
}

#[derive(DeserializeRow)]
struct BucketAnalysisRow {
    content_version: Option<i64>,
    analysed_version: Option<i64>,
    analysis: Option<String>,
    content_version_at: Option<i64>,
    analysed_version_at: Option<i64>,
}

#[derive(DeserializeRow)]
struct BucketSessionRow {
    start_time_micros: Option<i64>,
    end_time_micros: Option<i64>,
    start_at: Option<i64>,
    end_at: Option<i64>,
}

/// When a member's share was computed: under which analysis setting, and from cells written
/// when. Ordered by the setting first: a switch changes what every share counts, and drops
/// cells (the analyses) whose write times the sum loses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
struct Stamp {
    setting_version: i64,
    written: i64,
}

#[derive(DeserializeRow)]
struct SettingRow {
    enabled: Option<bool>,
    version: Option<i64>,
    last_disabled: Option<i64>,
}

/// A user's analysis setting as the read models know it.
struct Setting {
    enabled: bool,
    /// The setting stream's version (0: never switched).
    version: i64,
    /// The version of the last switch off: analyses made under an earlier one are void.
    last_disabled: i64,
}

#[derive(DeserializeRow)]
struct BucketRow {
    bucket_micros: i64,
    totals: Option<String>,
}

#[derive(DeserializeRow)]
struct SessionRow {
    session_id: String,
    user_id: Option<String>,
    start_time_micros: Option<i64>,
    end_time_micros: Option<i64>,
    created_at_micros: Option<i64>,
    updated_at_micros: Option<i64>,
    version: Option<i64>,
}

/// Tags as Cassandra stores them.
fn tag_texts(tags: &[Tag]) -> Vec<&str> {
    tags.iter().map(Tag::as_str).collect()
}

/// Tags as stored (each parsed when its event was decided).
fn stored_tags(tags: Vec<String>) -> Result<Vec<Tag>, ProjectionError> {
    Ok(serde_json::from_value(serde_json::Value::from(tags))?)
}

fn missing(column: &str) -> ProjectionError {
    format!("read model row without {column}").into()
}

fn entry_from_row(row: EntryRow) -> Result<Loaded<Entry>, ProjectionError> {
    let version = u64::try_from(row.version.ok_or_else(|| missing("version"))?)?;
    Ok(Loaded {
        state: Entry {
            id: stored_id(&row.entry_id)?,
            user_id: stored_id(&row.user_id.ok_or_else(|| missing("user_id"))?)?,
            title: row.title.unwrap_or_default(),
            content: row.content.unwrap_or_default(),
            token_count: u32::try_from(row.token_count.unwrap_or_default())?,
            session_id: row.session_id.as_deref().map(stored_id).transpose()?,
            tags: stored_tags(row.tags.unwrap_or_default())?,
            // The row's created_at already is when it was written.
            written_at: None,
            // Lists carry no analysis; their rows know only the latest version.
            analysis: None,
            content_version: version,
            version,
        },
        version: Some(version),
        created_at: Some(time(
            row.created_at_micros
                .ok_or_else(|| missing("created_at_micros"))?,
        )?),
        updated_at: Some(time(
            row.updated_at_micros
                .ok_or_else(|| missing("updated_at_micros"))?,
        )?),
        erased: false,
    })
}

fn session_from_row(row: SessionRow) -> Result<Loaded<DiarySession>, ProjectionError> {
    let created_at = row
        .created_at_micros
        .ok_or_else(|| missing("created_at_micros"))?;
    Ok(Loaded {
        state: DiarySession {
            id: stored_id(&row.session_id)?,
            user_id: stored_id(&row.user_id.ok_or_else(|| missing("user_id"))?)?,
            start_time: time(
                row.start_time_micros
                    .ok_or_else(|| missing("start_time_micros"))?,
            )?,
            end_time: row.end_time_micros.map(time).transpose()?,
            last_entry_at: None,
        },
        version: Some(u64::try_from(
            row.version.ok_or_else(|| missing("version"))?,
        )?),
        created_at: Some(time(created_at)?),
        updated_at: Some(time(row.updated_at_micros.unwrap_or(created_at))?),
        erased: false,
    })
}

#[async_trait]
impl Projection for CassandraDiaryReadModels {
    fn name(&self) -> &str {
        "diary-read-models-cassandra"
    }

    async fn apply(&self, recorded: &RecordedEvent) -> Result<(), ProjectionError> {
        match recorded.category() {
            EntryState::CATEGORY => self.apply_entry(recorded).await,
            SessionState::CATEGORY => self.apply_session(recorded).await,
            _ => {
                if let Some(user_id) = diary_erasure(recorded)? {
                    return self.erase_writer(&user_id.to_string()).await;
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
        for table in TABLES {
            let table = qualified(&self.keyspace, table);
            self.session
                .query_unpaged(format!("TRUNCATE TABLE {table}"), &[])
                .await?;
        }
        Ok(())
    }
}

/// `[start, end)` in microseconds; an open side is the widest bound.
fn bounds(range: TimeRange) -> (i64, i64) {
    (
        range.start.map_or(i64::MIN, |t| t.timestamp_micros()),
        range.end.map_or(i64::MAX, |t| t.timestamp_micros()),
    )
}

#[async_trait]
impl DiaryReadModels for CassandraDiaryReadModels {
    async fn entries_by_user(
        &self,
        user_id: &UserId,
        range: TimeRange,
        page: &PageRequest,
    ) -> Result<Page<Loaded<Entry>>, QueryError> {
        let (start, end) = bounds(range);
        let rows: Page<EntryRow> = fetch_page(
            &self.session,
            &self.statements.entries_by_user,
            &(user_id.to_string(), start, end),
            &format!("entries|{user_id}|{start}|{end}"),
            page,
        )
        .await?;
        let items = rows
            .items
            .into_iter()
            .map(entry_from_row)
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Page {
            items,
            next_cursor: rows.next_cursor,
        })
    }

    async fn sessions_by_user(
        &self,
        user_id: &UserId,
        range: TimeRange,
        page: &PageRequest,
    ) -> Result<Page<Loaded<DiarySession>>, QueryError> {
        let (start, end) = bounds(range);
        let rows: Page<SessionRow> = fetch_page(
            &self.session,
            &self.statements.sessions_by_user,
            &(user_id.to_string(), start, end),
            &format!("sessions|{user_id}|{start}|{end}"),
            page,
        )
        .await?;
        let items = rows
            .items
            .into_iter()
            .map(session_from_row)
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Page {
            items,
            next_cursor: rows.next_cursor,
        })
    }

    async fn applied_version(&self, id: Uuid) -> Result<Option<u64>, QueryError> {
        version_by_id(&self.session, &self.statements.applied_version, id).await
    }

    fn search_index(&self) -> Arc<dyn SearchIndex> {
        self.search.clone()
    }

    async fn buckets(
        &self,
        user_id: &UserId,
        start: DateTime<Utc>,
        end: DateTime<Utc>,
    ) -> Result<Vec<(i64, BucketTotals)>, QueryError> {
        let (start, end) = (start.timestamp_micros(), end.timestamp_micros());
        let everything = PageRequest {
            offset: 0,
            limit: u32::MAX - 1,
            cursor: None,
        };
        let rows: Page<BucketRow> = fetch_page(
            &self.session,
            &self.statements.quarter_totals,
            &(user_id.to_string(), start, end),
            &format!("buckets|{user_id}|{start}|{end}"),
            &everything,
        )
        .await?;
        rows.items
            .into_iter()
            .map(|row| -> Result<(i64, BucketTotals), ProjectionError> {
                let totals = row.totals.ok_or_else(|| missing("totals"))?;
                Ok((row.bucket_micros, serde_json::from_str(&totals)?))
            })
            .collect::<Result<_, _>>()
            .map_err(QueryError::Backend)
    }

    async fn analysis_enabled(&self, user_id: &UserId) -> Result<bool, QueryError> {
        Ok(self.setting(&user_id.to_string()).await?.enabled)
    }
}
