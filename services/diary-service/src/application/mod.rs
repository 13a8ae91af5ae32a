//! The diary service's use cases, one function each: load what the rule needs, check rules
//! across aggregates (the user exists, the session is the writer's and still active), decide
//! with the aggregate, append, and answer from what was stored. Transports only translate;
//! every rule reachable through them lives here or in the domain, tested in-process against
//! the SQLite store.

use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{DateTime, Days, NaiveDate, Utc};
use event_sourcing::{
    Aggregate, AppendError, EventMetadata, EventStore, EventStoreError, ExpectedVersion, Loaded,
    RecordedEvent, Repository, StreamName, StreamWrite, append_settled, conflict_backoff,
    new_events, read_full_stream,
};
use metachat_grpc::{
    Actor, DEFAULT_READ_YOUR_WRITES_TIMEOUT, append_error, await_applied, consistency_token,
    execute_error, query_error, store_error, unknown_write,
};
use metachat_proto::error::{ApiError, ErrorCode, FieldViolation};
use metachat_read_model::{Page, PageRequest};
use metachat_validation::{ConsistencyToken, EntryId, SessionId, UserId, Violations};

use crate::analytics::{self, Analytics, Window};
use crate::domain::{
    AnalysisSetting, AnalysisSettingState, DiaryEntryAnalyzed, Entry, EntryChanges, EntryCommand,
    EntryState, NewEntry, Session, SessionCommand, SessionError, SessionState, SwitchAnalysis,
    analyze_content, analyzer_key, not_in_future,
};
use crate::read_model::{DiaryReadModels, TimeRange};
use crate::search::Semantic;

mod search;

use crate::users::UserDirectory;
pub use search::{
    DEFAULT_RESULTS, MAX_QUERY_CHARS, MAX_RESULTS, MAX_THEME_ENTRIES, Match, Matches, SearchQuery,
};

/// What a client sends to write an entry.
#[derive(Debug, Clone, Default)]
pub struct EntryDraft {
    pub title: String,
    pub content: String,
    pub token_count: Option<u32>,
    pub session_id: Option<SessionId>,
    pub tags: Vec<String>,
    /// When the entry was written (`createdAt`): now when absent; may be earlier, never later
    /// than now plus the tolerated clock skew, nor before the start of its session.
    pub created_at: Option<DateTime<Utc>>,
    /// The client's `Idempotency-Key`: a retry of the same draft under it answers the entry
    /// its first attempt wrote instead of writing a second.
    pub idempotency_key: Option<String>,
}

/// What a client asks analytics for: a `period` (day, week, month, year) ending `to` or now,
/// or an explicit window `[from, to)`, with the days of `time_zone` (IANA; empty for UTC).
#[derive(Debug, Clone, Default)]
pub struct AnalyticsQuery {
    pub period: String,
    pub from: Option<DateTime<Utc>>,
    pub to: Option<DateTime<Utc>>,
    pub time_zone: String,
}

/// A current streak that reaches a window's first day is read further back in chunks, the
/// first of this many days, each next one twice as long (a long streak costs a few reads),
/// at most this many days back (ten years).
const STREAK_FIRST_CHUNK_DAYS: u64 = 61;
const STREAK_MAX_DAYS: u64 = 3_660;

/// How often, and for how long, writing an entry is tried again when its session changed
/// between the check and the append (the check is repeated, so an ended session is then
/// reported as such).
const SESSION_RETRIES: usize = 100;
const SESSION_RETRY_FOR: Duration = Duration::from_secs(5);

/// The diary use cases over an event store, the diary read models and the user directory.
pub struct Diary {
    store: Arc<dyn EventStore>,
    entries: Repository<EntryState>,
    sessions: Repository<SessionState>,
    settings: Repository<AnalysisSettingState>,
    read_models: Arc<dyn DiaryReadModels>,
    users: Arc<dyn UserDirectory>,
    /// How long a list waits for the write its consistency token names.
    read_your_writes: Duration,
    /// The sentence-embedding model and the search index; `None` without the model.
    semantic: Option<Semantic>,
}

impl Diary {
    pub fn new(
        store: Arc<dyn EventStore>,
        read_models: Arc<dyn DiaryReadModels>,
        users: Arc<dyn UserDirectory>,
    ) -> Self {
        Self {
            entries: Repository::new(Arc::clone(&store)),
            sessions: Repository::new(Arc::clone(&store)),
            settings: Repository::new(Arc::clone(&store)),
            store,
            read_models,
            users,
            read_your_writes: DEFAULT_READ_YOUR_WRITES_TIMEOUT,
            semantic: None,
        }
    }

    /// Searches by meaning with `semantic` (without it, the semantic use cases answer 503).
    pub fn with_semantic(self, semantic: Option<Semantic>) -> Self {
        Self { semantic, ..self }
    }

    /// Bounds the wait of a list for its consistency token (`READ_YOUR_WRITES_TIMEOUT_MS`).
    pub fn with_read_your_writes_timeout(self, timeout: Duration) -> Self {
        Self {
            read_your_writes: timeout,
            ..self
        }
    }

    /// Waits until the lists reflect the entry or session write that `token` names
    /// (`<id>:<version>`; nothing to wait for when `None`), within the read-your-writes bound.
    async fn caught_up(&self, token: Option<ConsistencyToken>) -> Result<(), ApiError> {
        let waited = await_applied(token, self.read_your_writes, |id| {
            self.read_models.applied_version(id)
        })
        .await;
        match (waited, token) {
            (Err(error), Some(token)) if error.code == ErrorCode::Unavailable => {
                let streams = [
                    EntryState::CATEGORY,
                    SessionState::CATEGORY,
                    AnalysisSettingState::CATEGORY,
                ]
                .map(|category| StreamName::new(category, token.id).to_string());
                Err(unknown_write(
                    self.store.as_ref(),
                    &token,
                    &streams,
                    "consistencyToken",
                    error,
                )
                .await)
            }
            (waited, _) => waited,
        }
    }

    /// Erases the diary of a user the user service has erased (see [`crate::eraser`]); a
    /// user who is still registered keeps theirs.
    pub async fn erase_diary(
        &self,
        user_id: &UserId,
        metadata: &EventMetadata,
    ) -> Result<(), ApiError> {
        if self.users.user_exists(user_id).await? {
            return Err(ApiError {
                details: vec![FieldViolation {
                    field: "userId".into(),
                    message: "the user is not erased".into(),
                }],
                ..ApiError::new(
                    ErrorCode::FailedPrecondition,
                    format!("user {user_id} is not erased; a diary is erased with its user"),
                )
            });
        }
        crate::eraser::erase_diary(self.store.as_ref(), user_id, metadata)
            .await
            .map_err(append_error)
    }

    /// Checks the user is registered; `field` names the id in the error.
    async fn registered(&self, field: &str, user_id: &UserId) -> Result<(), ApiError> {
        if self.users.user_exists(user_id).await? {
            return Ok(());
        }
        Err(ApiError {
            details: vec![FieldViolation {
                field: field.into(),
                message: "no such user".into(),
            }],
            ..ApiError::not_found(format!("user {user_id} not found"))
        })
    }

    /// Writes an entry for a registered user, in one of their active sessions if one is named.
    /// The entry and the session's `DiarySessionEntryAdded` are one atomic append at the
    /// session's checked version: if the session changed meanwhile (it ended, or another entry
    /// was written in it), nothing is stored and the session is checked again. An end decided
    /// before the entry was stored conflicts the same way, so stored times follow the order of
    /// the events: no entry is created after its session's end.
    pub async fn write_entry(
        &self,
        user_id: &UserId,
        draft: EntryDraft,
        metadata: &EventMetadata,
    ) -> Result<Loaded<EntryState>, ApiError> {
        // Times are kept to the microsecond, as the read models and lists keep them.
        let draft = EntryDraft {
            created_at: draft.created_at.map(micros),
            ..draft
        };
        if let Some(at) = draft.created_at {
            let mut v = Violations::new();
            not_in_future(&mut v, "createdAt", at, Utc::now());
            v.finish(()).map_err(ApiError::from)?;
        }
        self.registered("userId", user_id).await?;
        let id = match &draft.idempotency_key {
            Some(key) => {
                let request = format!(
                    "{user_id}\n{:?}\n{:?}\n{:?}\n{:?}\n{:?}\n{:?}",
                    draft.title,
                    draft.content,
                    draft.token_count,
                    draft.session_id.map(|s| s.to_string()),
                    draft.tags,
                    draft.created_at,
                );
                let id = EntryId::from(metachat_grpc::idempotent_id("entry", key, &request));
                if let Some(first) = self.written_before(&id).await? {
                    return Ok(first);
                }
                id
            }
            None => EntryId::new(),
        };
        let idempotent = draft.idempotency_key.is_some();
        let command = EntryCommand::Create(NewEntry {
            entry_id: id,
            user_id: *user_id,
            title: draft.title,
            content: draft.content,
            token_count: draft.token_count,
            session_id: draft.session_id,
            tags: draft.tags,
            written_at: draft.created_at,
        });
        let mut loaded = Loaded::<EntryState>::default();
        let events = loaded.state.decide(&command)?;
        let started = Instant::now();
        let mut attempt = 0;
        let session_turn = draft.session_id.as_ref().map(|session| {
            event_sourcing::stream_turn(&self.store, &SessionState::stream_name(session))
        });
        loop {
            // Writers into one session take turns in this process (other processes' writers
            // may still collide, and are retried below).
            let turn = match session_turn {
                Some(turn) => Some(turn.lock().await),
                None => None,
            };
            let mut writes = vec![StreamWrite::new(
                EntryState::stream_name(&id),
                ExpectedVersion::NoStream,
                new_events(&events, metadata).map_err(store_error)?,
            )];
            if let Some(session_id) = &draft.session_id {
                writes.push(
                    self.add_to_session(session_id, &id, user_id, draft.created_at, metadata)
                        .await?,
                );
            }
            match append_settled(self.store.as_ref(), writes).await {
                Ok(results) => {
                    let Some(result) = results.first() else {
                        return Err(ApiError::internal("the store answered no write"));
                    };
                    loaded.stored(&events, result);
                    tracing::info!(entry_id = %id, user_id = %user_id, "diary entry created");
                    crate::metrics::count(&crate::metrics::ENTRIES_CREATED, true);
                    return Ok(loaded);
                }
                Err(AppendError::Refused(EventStoreError::WrongExpectedVersion {
                    write: 1,
                    ..
                })) if attempt < SESSION_RETRIES && started.elapsed() < SESSION_RETRY_FOR => {
                    attempt += 1;
                    drop(turn);
                    conflict_backoff(attempt).await;
                }
                Err(AppendError::Refused(EventStoreError::WrongExpectedVersion {
                    write: 1,
                    ..
                })) => {
                    return Err(ApiError::new(
                        ErrorCode::Conflict,
                        "the session keeps changing while the entry is written; retry",
                    ));
                }
                // The same retry, at the same time: the first one wrote it.
                Err(AppendError::Refused(EventStoreError::WrongExpectedVersion {
                    write: 0,
                    ..
                })) if idempotent => {
                    if let Some(first) = self.written_before(&id).await? {
                        return Ok(first);
                    }
                    return Err(ApiError::new(
                        ErrorCode::Conflict,
                        "the entry was changed concurrently; retry",
                    ));
                }
                Err(e) => return Err(append_error(e)),
            }
        }
    }

    /// The entry an earlier attempt of an idempotent write created, as that attempt answered
    /// it (its creation: nothing changed since is told); `None` when there was none. One
    /// deleted since is gone, as for any other read.
    async fn written_before(&self, id: &EntryId) -> Result<Option<Loaded<EntryState>>, ApiError> {
        let now = self.entries.load(id).await.map_err(store_error)?;
        match &now.state {
            EntryState::Absent => Ok(None),
            EntryState::Live(_) => Ok(Some(
                self.entries.load_created(id).await.map_err(store_error)?,
            )),
            EntryState::Deleted(_) => Err(entry_not_found(id)),
        }
    }

    /// The session's part of writing an entry in it: the writer's own active session, at the
    /// version it was read at. Another user's session is reported as missing: its existence
    /// is private.
    async fn add_to_session(
        &self,
        session_id: &SessionId,
        entry_id: &EntryId,
        user_id: &UserId,
        written_at: Option<DateTime<Utc>>,
        metadata: &EventMetadata,
    ) -> Result<StreamWrite, ApiError> {
        let session = self.sessions.load(session_id).await.map_err(store_error)?;
        let command = SessionCommand::AddEntry {
            entry_id: *entry_id,
            user_id: *user_id,
            now: Utc::now(),
            written_at,
        };
        let added = session.state.decide(&command).map_err(|e| match e {
            SessionError::AlreadyEnded => ApiError::new(
                ErrorCode::FailedPrecondition,
                "the session has ended; start a new session",
            ),
            SessionError::NotFound | SessionError::NotTheWriters => session_not_found(session_id),
            other => other.into(),
        })?;
        self.sessions
            .write_for(session_id, &session, &added, metadata)
            .map_err(store_error)
    }

    /// A live entry as it is now (replayed, so a write is visible at once), with its
    /// analysis unless the user switched analysis off since it was made.
    pub async fn entry(&self, id: &EntryId) -> Result<Loaded<EntryState>, ApiError> {
        let loaded = self.entries.load(id).await.map_err(store_error)?;
        let loaded = live(loaded).ok_or_else(|| entry_not_found(id))?;
        self.without_void_analysis(loaded).await
    }

    /// Drops the entry's analysis when the user's setting does not show it.
    async fn without_void_analysis(
        &self,
        mut loaded: Loaded<EntryState>,
    ) -> Result<Loaded<EntryState>, ApiError> {
        let (user_id, made_under) = match loaded.state.live() {
            Some(Entry {
                user_id,
                analysis: Some(a),
                ..
            }) => (*user_id, a.setting_version),
            _ => return Ok(loaded),
        };
        if !self.setting(&user_id).await?.shows(made_under)
            && let EntryState::Live(entry) = &mut loaded.state
        {
            entry.analysis = None;
        }
        Ok(loaded)
    }

    async fn setting(&self, user_id: &UserId) -> Result<AnalysisSetting, ApiError> {
        let loaded = self.settings.load(user_id).await.map_err(store_error)?;
        Ok(loaded.state.setting())
    }

    /// Whether a registered user's entries are analysed (on unless switched off).
    pub async fn analysis_setting(
        &self,
        user_id: &UserId,
    ) -> Result<Loaded<AnalysisSettingState>, ApiError> {
        self.registered("userId", user_id).await?;
        self.settings.load(user_id).await.map_err(store_error)
    }

    /// Switches a registered user's analysis on or off; the same value again records nothing.
    pub async fn set_analysis_setting(
        &self,
        user_id: &UserId,
        enabled: bool,
        metadata: &EventMetadata,
    ) -> Result<Loaded<AnalysisSettingState>, ApiError> {
        self.registered("userId", user_id).await?;
        let command = SwitchAnalysis {
            user_id: *user_id,
            enabled,
        };
        let executed = self
            .settings
            .execute(user_id, &command, metadata, None)
            .await
            .map_err(execute_error)?;
        tracing::info!(user_id = %user_id, enabled, "analysis setting changed");
        Ok(executed.loaded)
    }

    /// An entry as it was at `as_of`.
    pub async fn entry_as_of(
        &self,
        id: &EntryId,
        as_of: DateTime<Utc>,
    ) -> Result<Loaded<EntryState>, ApiError> {
        let loaded = self
            .entries
            .load_as_of(id, as_of)
            .await
            .map_err(store_error)?;
        let loaded = live(loaded).ok_or_else(|| {
            ApiError::not_found(format!("diary entry {id} did not exist at {as_of}"))
        })?;
        // Erased means erased in the past too.
        self.without_void_analysis(loaded).await
    }

    /// Changes a live entry: one stream read and one append.
    pub async fn change_entry(
        &self,
        id: &EntryId,
        changes: EntryChanges,
        expected_version: Option<u64>,
        metadata: &EventMetadata,
    ) -> Result<Loaded<EntryState>, ApiError> {
        let executed = self
            .entries
            .execute(
                id,
                &EntryCommand::Update(changes),
                metadata,
                expected_version,
            )
            .await
            .map_err(execute_error)?;
        crate::metrics::count(&crate::metrics::ENTRIES_UPDATED, executed.append.is_some());
        Ok(executed.loaded)
    }

    /// Deletes a live entry; its history stays. Answers with the deleted state (its
    /// `updated_at` is the moment of deletion).
    pub async fn delete_entry(
        &self,
        id: &EntryId,
        expected_version: Option<u64>,
        metadata: &EventMetadata,
    ) -> Result<Loaded<EntryState>, ApiError> {
        let executed = self
            .entries
            .execute(id, &EntryCommand::Delete, metadata, expected_version)
            .await
            .map_err(execute_error)?;
        tracing::info!(entry_id = %id, "diary entry deleted");
        crate::metrics::count(&crate::metrics::ENTRIES_DELETED, executed.append.is_some());
        Ok(executed.loaded)
    }

    /// A user's live entries created within `range`, newest first. A range may be a single
    /// instant (`start == end`, which holds nothing) but not end before it starts. With a
    /// consistency token (`<entry or session id>:<version>` of a write; empty for none) the
    /// list first waits until it reflects that write (503 after the read-your-writes bound).
    pub async fn entries_by_user(
        &self,
        user_id: &UserId,
        range: TimeRange,
        page: &PageRequest,
        token: &str,
    ) -> Result<Page<Loaded<Entry>>, ApiError> {
        let token = consistency_token("consistencyToken", token)?;
        check_range(range)?;
        self.registered("userId", user_id).await?;
        self.caught_up(token).await?;
        // Entries' times are whole microseconds: a bound between two is the next one.
        let range = TimeRange {
            start: range.start.map(micros_up),
            end: range.end.map(micros_up),
        };
        self.read_models
            .entries_by_user(user_id, range, page)
            .await
            .map_err(query_error)
    }

    /// Starts a writing session for a registered user, now or at `start_time`.
    pub async fn start_session(
        &self,
        user_id: &UserId,
        start_time: Option<DateTime<Utc>>,
        idempotency_key: Option<&str>,
        metadata: &EventMetadata,
    ) -> Result<Loaded<SessionState>, ApiError> {
        self.registered("userId", user_id).await?;
        let id = match idempotency_key {
            Some(key) => {
                let request = format!("{user_id}\n{start_time:?}");
                SessionId::from(metachat_grpc::idempotent_id("session", key, &request))
            }
            None => SessionId::new(),
        };
        if idempotency_key.is_some() {
            let first = self.sessions.load_created(&id).await.map_err(store_error)?;
            if first.exists() {
                return Ok(first);
            }
        }
        let command = SessionCommand::Start {
            session_id: id,
            user_id: *user_id,
            start_time: start_time.map(micros),
            now: micros(Utc::now()),
        };
        let executed = match self.sessions.execute(&id, &command, metadata, None).await {
            Ok(executed) => executed,
            Err(error) if idempotency_key.is_some() => {
                // The same retry, at the same time: the first one started it.
                let first = self.sessions.load_created(&id).await.map_err(store_error)?;
                if first.exists() {
                    return Ok(first);
                }
                return Err(execute_error(error));
            }
            Err(error) => return Err(execute_error(error)),
        };
        tracing::info!(session_id = %id, user_id = %user_id, "diary session started");
        crate::metrics::count(&crate::metrics::SESSIONS_STARTED, executed.append.is_some());
        Ok(executed.loaded)
    }

    /// Ends an active session, now or at `end_time`.
    pub async fn end_session(
        &self,
        id: &SessionId,
        end_time: Option<DateTime<Utc>>,
        expected_version: Option<u64>,
        metadata: &EventMetadata,
    ) -> Result<Loaded<SessionState>, ApiError> {
        // "Now" is taken at each decision: an end decided again after a concurrent entry
        // ends after it.
        let command = || SessionCommand::End {
            end_time: end_time.map(micros),
            now: micros(Utc::now()),
        };
        let executed = self
            .sessions
            .execute_with(id, command, metadata, expected_version)
            .await
            .map_err(execute_error)?;
        crate::metrics::count(&crate::metrics::SESSIONS_ENDED, executed.append.is_some());
        Ok(executed.loaded)
    }

    /// A session as it is now.
    pub async fn session(&self, id: &SessionId) -> Result<Loaded<SessionState>, ApiError> {
        let loaded = self.sessions.load(id).await.map_err(store_error)?;
        started(loaded).ok_or_else(|| session_not_found(id))
    }

    /// A session as it was at `as_of`.
    pub async fn session_as_of(
        &self,
        id: &SessionId,
        as_of: DateTime<Utc>,
    ) -> Result<Loaded<SessionState>, ApiError> {
        let loaded = self
            .sessions
            .load_as_of(id, as_of)
            .await
            .map_err(store_error)?;
        started(loaded).ok_or_else(|| {
            ApiError::not_found(format!("diary session {id} did not exist at {as_of}"))
        })
    }

    /// A user's sessions, newest first; a consistency token waits as for
    /// [`Diary::entries_by_user`].
    pub async fn sessions_by_user(
        &self,
        user_id: &UserId,
        page: &PageRequest,
        token: &str,
    ) -> Result<Page<Loaded<Session>>, ApiError> {
        let token = consistency_token("consistencyToken", token)?;
        self.registered("userId", user_id).await?;
        self.caught_up(token).await?;
        self.read_models
            .sessions_by_user(user_id, TimeRange::default(), page)
            .await
            .map_err(query_error)
    }

    /// Writing analytics of a user over a window (see [`Window::parse`]), from the read
    /// models' quarter-hour buckets of that window (and, for a current streak that reaches
    /// the window's first day, of the days before it as far as the streak goes), once the
    /// wait for the consistency token, as for [`Diary::entries_by_user`], is over.
    pub async fn analytics(
        &self,
        user_id: &UserId,
        query: &AnalyticsQuery,
        token: &str,
    ) -> Result<Analytics, ApiError> {
        let token = consistency_token("consistencyToken", token)?;
        let window = Window::parse(
            &query.period,
            query.from,
            query.to,
            &query.time_zone,
            Utc::now(),
        )?;
        self.registered("userId", user_id).await?;
        self.caught_up(token).await?;
        let totals = self
            .read_models
            .window_totals(user_id, window.first_bucket(), window.end)
            .await
            .map_err(query_error)?;
        let enabled = self
            .read_models
            .analysis_enabled(user_id)
            .await
            .map_err(query_error)?;
        let mut written = analytics::writing_days(&window, totals.quarters.iter().map(|(b, _)| *b));
        let mut result = analytics::compute_totals(window, totals, enabled);
        let (Some(first), Some(last)) = (result.days.first(), result.days.last()) else {
            return Ok(result);
        };
        let (first, last) = (first.date, last.date);
        // The window's first day may begin before the window: a streak counts whole days.
        let head = result.window.start_of(first);
        if head < result.window.start {
            let before = self
                .read_models
                .writing_quarters(user_id, head, result.window.start)
                .await
                .map_err(query_error)?;
            written.extend(analytics::writing_days(&result.window, before));
        }
        let (run, reached) = analytics::run_ending(&written, first, last);
        result.current_streak = run;
        // A one-day window whose day has no entry yet: the streak may end the day before.
        let yesterday = first == last && !written.contains(&last);
        if reached || yesterday {
            result.current_streak += self.streak_before(user_id, &result.window, first).await?;
        }
        result.themes = self.themes(user_id, &result.window, enabled).await?;
        Ok(result)
    }

    /// Consecutive writing days right before `first` (a day of `window`'s zone), read back
    /// in growing chunks (from [`STREAK_FIRST_CHUNK_DAYS`]) only as far as the run goes.
    async fn streak_before(
        &self,
        user_id: &UserId,
        window: &Window,
        first: NaiveDate,
    ) -> Result<u32, ApiError> {
        let mut streak = 0;
        let mut end_day = first;
        let mut chunk = STREAK_FIRST_CHUNK_DAYS;
        let mut read = 0;
        while read < STREAK_MAX_DAYS {
            let days = chunk.min(STREAK_MAX_DAYS - read);
            let Some(start_day) = end_day.checked_sub_days(Days::new(days)) else {
                break;
            };
            read += days;
            chunk *= 2;
            let quarters = self
                .read_models
                .writing_quarters(
                    user_id,
                    window.start_of(start_day),
                    window.start_of(end_day),
                )
                .await
                .map_err(query_error)?;
            let written = analytics::writing_days(window, quarters);
            let Some(last) = end_day.pred_opt() else {
                break;
            };
            let (run, reached) = analytics::run_ending_on(&written, start_day, last);
            streak += run;
            if !reached {
                break;
            }
            end_day = start_day;
        }
        Ok(streak)
    }

    /// Every event of an entry, oldest first (also after its deletion). The payload of an
    /// analysis the user's setting no longer shows is replaced by a note saying so.
    pub async fn entry_history(&self, id: &EntryId) -> Result<Vec<RecordedEvent>, ApiError> {
        let mut events = self
            .history(EntryState::stream_name(id).as_str())
            .await?
            .ok_or_else(|| entry_not_found(id))?;
        let user_id = events
            .first()
            .and_then(|e| e.payload.get("userId"))
            .and_then(|u| u.as_str().and_then(|u| UserId::parse("userId", u).ok()));
        if let Some(user_id) = user_id {
            let setting = self.setting(&user_id).await?;
            for event in &mut events {
                if event.event_type != "DiaryEntryAnalyzed" {
                    continue;
                }
                let made_under = event
                    .payload
                    .get("settingVersion")
                    .and_then(serde_json::Value::as_u64)
                    .unwrap_or(0);
                if !setting.shows(made_under) {
                    event.payload = serde_json::json!({
                        "erased": "the user switched analysis off",
                    });
                }
            }
        }
        Ok(events)
    }

    /// Every event of a session, oldest first.
    pub async fn session_history(&self, id: &SessionId) -> Result<Vec<RecordedEvent>, ApiError> {
        self.history(SessionState::stream_name(id).as_str())
            .await?
            .ok_or_else(|| session_not_found(id))
    }

    /// Every event of a stream; `None` for a stream that does not exist or whose writer was
    /// erased.
    async fn history(&self, stream: &str) -> Result<Option<Vec<RecordedEvent>>, ApiError> {
        let events = read_full_stream(self.store.as_ref(), stream)
            .await
            .map_err(store_error)?;
        Ok((!events.is_empty() && !events.iter().any(|e| e.erased)).then_some(events))
    }
}

/// What [`record_analysis`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AnalysisOutcome {
    /// A `DiaryEntryAnalyzed` was appended.
    Recorded,
    /// That version's analysis is already stored (a redelivered event, or another replica).
    AlreadyRecorded,
    /// The entry is deleted, or its content changed since that version (the change's own
    /// event is analysed instead): nothing to record.
    Outdated,
    /// The user switched analysis off: nothing is analysed.
    SwitchedOff,
}

/// Namespace of the analysis events' ids (UUID v5 of entry, version and analyzer versions).
const ANALYSIS_ID_NAMESPACE: uuid::Uuid =
    uuid::Uuid::from_u128(0x6d65_7461_6368_6174_2d61_6e61_6c79_7a65);

/// Analyses the content entry `id` had at stream version `version` and records the result
/// on the entry's stream, at the version it read (decided again if the entry changed
/// meanwhile): nothing when that content is no longer the entry's, or the entry is deleted. The event's id is derived from the entry, the version and the analyzer versions, so
/// a re-sent append is recognised as already stored rather than stored twice.
pub async fn record_analysis(
    entries: &Repository<EntryState>,
    settings: &Repository<AnalysisSettingState>,
    id: &EntryId,
    version: u64,
    metadata: &EventMetadata,
) -> Result<AnalysisOutcome, EventStoreError> {
    let mut analyzed: Option<DiaryEntryAnalyzed> = None;
    for attempt in 1..=ANALYSIS_RETRIES {
        let loaded = entries.load(id).await?;
        let Some(entry) = loaded.state.live() else {
            return Ok(AnalysisOutcome::Outdated);
        };
        let setting = settings.load(&entry.user_id).await?.state.setting();
        if !setting.enabled {
            return Ok(AnalysisOutcome::SwitchedOff);
        }
        if !entry.awaits_analysis(version, setting.version) {
            return Ok(match &entry.analysis {
                Some(a) if a.entry_version == version => AnalysisOutcome::AlreadyRecorded,
                _ => AnalysisOutcome::Outdated,
            });
        }
        // Analysed again only if the setting moved meanwhile.
        analyzed = analyzed.filter(|a| a.setting_version == setting.version);
        // The content of `version` does not change: analysed once, whatever the retries.
        let analysis = match analyzed.take() {
            Some(analysis) => analysis,
            None => {
                let (user_id, content) = (entry.user_id, entry.content.clone());
                let setting_version = setting.version;
                // Up to 100,000 characters of CPU work: off the async workers.
                tokio::task::spawn_blocking(move || {
                    analyze_content(user_id, version, setting_version, &content)
                })
                .await
                .map_err(|e| EventStoreError::InvalidWrite(format!("analysis failed: {e}")))?
            }
        };
        let key = format!("{id}|{version}|{}", analyzer_key(&analysis));
        let command = EntryCommand::RecordAnalysis(Box::new(analysis));
        let events = match loaded.state.decide(&command) {
            Ok(events) if !events.is_empty() => events,
            _ => return Ok(AnalysisOutcome::Outdated),
        };
        let mut write = entries.write_for(id, &loaded, &events, metadata)?;
        for event in &mut write.events {
            event.event_id = uuid::Uuid::new_v5(&ANALYSIS_ID_NAMESPACE, key.as_bytes());
        }
        match append_settled(entries.store().as_ref(), vec![write]).await {
            Ok(results) if results.iter().all(|r| r.already_stored) => {
                return Ok(AnalysisOutcome::AlreadyRecorded);
            }
            Ok(_) => {
                crate::metrics::count(&crate::metrics::ENTRIES_ANALYSED, true);
                return Ok(AnalysisOutcome::Recorded);
            }
            // The writer was erased since the entry was read: nothing of them is stored.
            Err(AppendError::Refused(EventStoreError::SubjectErased { .. })) => {
                return Ok(AnalysisOutcome::Outdated);
            }
            // Changed since it was read (retitled, updated, deleted, or analysed by another
            // replica): decided again on the newer state.
            Err(AppendError::Refused(e)) if e.is_conflict() && attempt < ANALYSIS_RETRIES => {
                if let EntryCommand::RecordAnalysis(analysis) = command {
                    analyzed = Some(*analysis);
                }
                conflict_backoff(attempt).await;
            }
            Err(AppendError::Refused(e) | AppendError::OutcomeUnknown(e)) => return Err(e),
        }
    }
    // Unreachable: the last attempt returns; kept total for the compiler.
    Err(EventStoreError::InvalidWrite(
        "the entry kept changing while its analysis was recorded".into(),
    ))
}

/// How often recording an analysis is decided again after a concurrent change of its entry;
/// past that the error makes the analyzer try the event again later (never skip it).
const ANALYSIS_RETRIES: usize = 20;

/// `time` to the microsecond: what every store and read model keeps of a time.
fn micros(time: DateTime<Utc>) -> DateTime<Utc> {
    use chrono::SubsecRound;
    time.trunc_subsecs(6)
}

/// The first whole microsecond at or after `time`.
fn micros_up(time: DateTime<Utc>) -> DateTime<Utc> {
    match micros(time) {
        t if t < time => t + chrono::Duration::microseconds(1),
        t => t,
    }
}

/// The time-range rule, the same at the gateway and here: the start may not be after the end.
pub fn check_range(range: TimeRange) -> Result<(), ApiError> {
    match (range.start, range.end) {
        (Some(start), Some(end)) if start > end => Err(ApiError::invalid_field(
            "startTime",
            "must not be after endTime",
        )),
        _ => Ok(()),
    }
}

fn live(loaded: Loaded<EntryState>) -> Option<Loaded<EntryState>> {
    loaded.state.live().is_some().then_some(loaded)
}

fn started(loaded: Loaded<SessionState>) -> Option<Loaded<SessionState>> {
    loaded.state.session().is_some().then_some(loaded)
}

impl Diary {
    /// Refuses an entry that is not the actor's as if it did not exist: another writer's entry
    /// is not theirs to read or change, nor to learn exists. An entry that does not exist is
    /// left to the use case to report.
    pub async fn check_entry_access(&self, actor: &Actor, id: &EntryId) -> Result<(), ApiError> {
        if matches!(actor, Actor::Unrestricted | Actor::User { admin: true, .. }) {
            return Ok(());
        }
        let loaded = self.entries.load(id).await.map_err(store_error)?;
        let owner = match &loaded.state {
            EntryState::Live(entry) | EntryState::Deleted(entry) => entry.user_id,
            EntryState::Absent => return Ok(()),
        };
        if actor.may_act_for(&owner) {
            Ok(())
        } else {
            Err(entry_not_found(id))
        }
    }

    /// As [`Self::check_entry_access`], for a session.
    pub async fn check_session_access(
        &self,
        actor: &Actor,
        id: &SessionId,
    ) -> Result<(), ApiError> {
        if matches!(actor, Actor::Unrestricted | Actor::User { admin: true, .. }) {
            return Ok(());
        }
        let loaded = self.sessions.load(id).await.map_err(store_error)?;
        match &loaded.state {
            SessionState::Started(session) if !actor.may_act_for(&session.user_id) => {
                Err(session_not_found(id))
            }
            _ => Ok(()),
        }
    }
}

/// Refuses unless `actor` may act for `user_id` (the writer a request names).
pub fn check_acts_for(actor: &Actor, field: &str, user_id: &UserId) -> Result<(), ApiError> {
    if actor.may_act_for(user_id) {
        return Ok(());
    }
    let message = "a user may only act on their own diary";
    Err(ApiError {
        details: vec![FieldViolation {
            field: field.to_owned(),
            message: message.to_owned(),
        }],
        ..ApiError::new(ErrorCode::PermissionDenied, format!("{field}: {message}"))
    })
}

fn entry_not_found(id: &EntryId) -> ApiError {
    ApiError::not_found(format!("diary entry {id} not found"))
}

fn session_not_found(id: &SessionId) -> ApiError {
    ApiError::not_found(format!("diary session {id} not found"))
}

#[cfg(test)]
mod tests;
