//! The gRPC adapter: requests become commands, results become messages.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use event_sourcing::{
    Aggregate, EventMetadata, EventStore, EventStoreError, ExecuteError, ExpectedVersion, Loaded,
    Repository, StreamWrite, new_events, read_full_stream,
};
use metachat_grpc::{
    event_metadata, from_timestamp, history, invalid, page_request, query_error, store_error,
    timestamp,
};
use metachat_proto::Timestamp;
use metachat_proto::common::{EventHistory, HistoryRequest};
use metachat_proto::diary::diary_service_server::DiaryService;
use metachat_proto::diary::{self as pb};
use metachat_proto::error::{ApiError, ErrorCode};
use metachat_read_model::PageRequest;
use metachat_validation::parse_id;
use tonic::{Request, Response, Status};
use uuid::Uuid;

use crate::analytics::{self, Period};
use crate::domain::{
    Entry, EntryChanges, EntryCommand, EntryError, NewEntry, Session, SessionCommand, SessionError,
};
use crate::read_model::{DiaryReadModels, TimeRange};
use crate::users::UserDirectory;

/// The diary service over an event store, read models and the user directory.
pub struct DiaryGrpc {
    store: Arc<dyn EventStore>,
    entries: Repository<Entry>,
    sessions: Repository<Session>,
    read_models: Arc<dyn DiaryReadModels>,
    users: Arc<dyn UserDirectory>,
}

impl DiaryGrpc {
    pub fn new(
        store: Arc<dyn EventStore>,
        read_models: Arc<dyn DiaryReadModels>,
        users: Arc<dyn UserDirectory>,
    ) -> Self {
        Self {
            entries: Repository::new(Arc::clone(&store)),
            sessions: Repository::new(Arc::clone(&store)),
            store,
            read_models,
            users,
        }
    }

    /// Checks the user exists; `field` names the id in the error.
    async fn existing_user(&self, field: &str, user_id: &str) -> Result<Uuid, ApiError> {
        let id = parse_id(field, user_id).map_err(invalid)?;
        if self.users.user_exists(&id.to_string()).await? {
            Ok(id)
        } else {
            let mut error = ApiError::not_found(format!("user {id} not found"));
            error.details.push(metachat_proto::error::FieldViolation {
                field: field.into(),
                message: "no such user".into(),
            });
            Err(error)
        }
    }

    async fn live_entry(&self, id: &Uuid) -> Result<Loaded<Entry>, ApiError> {
        let loaded = self
            .entries
            .load(&id.to_string())
            .await
            .map_err(store_error)?;
        if loaded.state.is_live() {
            Ok(loaded)
        } else {
            Err(ApiError::not_found(format!("diary entry {id} not found")))
        }
    }

    async fn session(&self, id: &Uuid) -> Result<Loaded<Session>, ApiError> {
        let loaded = self
            .sessions
            .load(&id.to_string())
            .await
            .map_err(store_error)?;
        if loaded.state.exists() {
            Ok(loaded)
        } else {
            Err(ApiError::not_found(format!("diary session {id} not found")))
        }
    }

    async fn execute_entry(
        &self,
        id: &Uuid,
        command: EntryCommand,
        metadata: &EventMetadata,
    ) -> Result<(), ApiError> {
        match self
            .entries
            .execute(&id.to_string(), &command, metadata)
            .await
        {
            Ok(_) => Ok(()),
            Err(ExecuteError::Rejected(e)) => Err(entry_error(e)),
            Err(ExecuteError::Store(e)) => Err(store_error(e)),
        }
    }

    async fn execute_session(
        &self,
        id: &Uuid,
        command: SessionCommand,
        metadata: &EventMetadata,
    ) -> Result<Loaded<Session>, ApiError> {
        match self
            .sessions
            .execute(&id.to_string(), &command, metadata)
            .await
        {
            Ok(_) => self.session(id).await,
            Err(ExecuteError::Rejected(e)) => Err(session_error(e)),
            Err(ExecuteError::Store(e)) => Err(store_error(e)),
        }
    }

    async fn stream_history(
        &self,
        stream_id: String,
        what: &str,
    ) -> Result<EventHistory, ApiError> {
        let events = read_full_stream(self.store.as_ref(), &stream_id)
            .await
            .map_err(store_error)?;
        if events.is_empty() {
            return Err(ApiError::not_found(format!("{what} not found")));
        }
        Ok(history(events))
    }
}

fn entry_error(error: EntryError) -> ApiError {
    match error {
        EntryError::Invalid(v) => invalid(v),
        EntryError::NotFound => ApiError::not_found(error.to_string()),
        EntryError::AlreadyExists => ApiError::new(ErrorCode::AlreadyExists, error.to_string()),
    }
}

fn session_error(error: SessionError) -> ApiError {
    match error {
        SessionError::Invalid(v) => invalid(v),
        SessionError::NotFound => ApiError::not_found(error.to_string()),
        SessionError::AlreadyExists => ApiError::new(ErrorCode::AlreadyExists, error.to_string()),
        SessionError::AlreadyEnded => {
            ApiError::new(ErrorCode::FailedPrecondition, error.to_string())
        }
    }
}

fn optional_time(field: &str, ts: Option<Timestamp>) -> Result<Option<DateTime<Utc>>, ApiError> {
    ts.map(|ts| from_timestamp(field, &ts)).transpose()
}

#[tonic::async_trait]
impl DiaryService for DiaryGrpc {
    async fn create_entry(
        &self,
        request: Request<pb::CreateEntryRequest>,
    ) -> Result<Response<pb::Entry>, Status> {
        let metadata = event_metadata(&request);
        let r = request.into_inner();
        let user_id = self.existing_user("userId", &r.user_id).await?;
        // The session (id and the version it was checked at) the entry is written in.
        let session = match r.session_id.as_deref().map(str::trim) {
            None | Some("") => None,
            Some(text) => {
                let id = parse_id("sessionId", text).map_err(invalid)?;
                let session = self.session(&id).await?;
                if session.state.user_id != user_id.to_string() {
                    // Another user's session is reported as missing: its existence is private.
                    return Err(ApiError::not_found(format!("diary session {id} not found")).into());
                }
                if !session.state.is_active() {
                    return Err(ApiError::new(
                        ErrorCode::FailedPrecondition,
                        "the session has ended; start a new session",
                    )
                    .into());
                }
                Some((id.to_string(), session.version.unwrap_or(0)))
            }
        };
        let id = Uuid::new_v4();
        let command = EntryCommand::Create(NewEntry {
            entry_id: id.to_string(),
            user_id: user_id.to_string(),
            title: r.title,
            content: r.content,
            token_count: r.token_count,
            session_id: session.as_ref().map(|(id, _)| id.clone()),
            tags: r.tags,
        });
        let events = Entry::default().decide(&command).map_err(entry_error)?;
        let mut writes = vec![StreamWrite::new(
            Entry::stream_id(&id.to_string()),
            ExpectedVersion::NoStream,
            new_events(&events, &metadata).map_err(store_error)?,
        )];
        // The session must still be the one checked above when the entry is stored: an empty
        // write at its version makes the append fail if the session ended meanwhile.
        if let Some((session_id, version)) = &session {
            writes.push(StreamWrite::new(
                Session::stream_id(session_id),
                ExpectedVersion::Exact(*version),
                Vec::new(),
            ));
        }
        match self.store.append_streams(writes).await {
            Ok(_) => {}
            Err(EventStoreError::WrongExpectedVersion { stream_id, .. })
                if stream_id.starts_with("session-") =>
            {
                return Err(ApiError::new(
                    ErrorCode::Conflict,
                    "the session changed while the entry was written; retry",
                )
                .into());
            }
            Err(e) => return Err(store_error(e).into()),
        }
        tracing::info!(entry_id = %id, user_id = %user_id, "diary entry created");
        Ok(Response::new(entry_to_proto(self.live_entry(&id).await?)))
    }

    async fn get_entry(
        &self,
        request: Request<pb::GetEntryRequest>,
    ) -> Result<Response<pb::Entry>, Status> {
        let r = request.into_inner();
        let id = parse_id("id", &r.id).map_err(invalid)?;
        let loaded = match optional_time("asOf", r.as_of)? {
            None => self.live_entry(&id).await?,
            Some(as_of) => {
                let then = self
                    .entries
                    .load_as_of(&id.to_string(), as_of)
                    .await
                    .map_err(store_error)?;
                if !then.state.is_live() {
                    return Err(ApiError::not_found(format!(
                        "diary entry {id} did not exist at {as_of}"
                    ))
                    .into());
                }
                then
            }
        };
        Ok(Response::new(entry_to_proto(loaded)))
    }

    async fn update_entry(
        &self,
        request: Request<pb::UpdateEntryRequest>,
    ) -> Result<Response<pb::Entry>, Status> {
        let metadata = event_metadata(&request);
        let r = request.into_inner();
        let id = parse_id("id", &r.id).map_err(invalid)?;
        let changes = EntryChanges {
            title: r.title,
            content: r.content,
            token_count: r.token_count,
            tags: r.replace_tags.then_some(r.tags),
        };
        self.execute_entry(&id, EntryCommand::Update(changes), &metadata)
            .await?;
        Ok(Response::new(entry_to_proto(self.live_entry(&id).await?)))
    }

    async fn delete_entry(
        &self,
        request: Request<pb::DeleteEntryRequest>,
    ) -> Result<Response<pb::DeleteEntryResponse>, Status> {
        let metadata = event_metadata(&request);
        let id = parse_id("id", &request.into_inner().id).map_err(invalid)?;
        self.execute_entry(&id, EntryCommand::Delete, &metadata)
            .await?;
        let deleted_at = self
            .entries
            .load(&id.to_string())
            .await
            .map_err(store_error)?
            .updated_at
            .unwrap_or_else(Utc::now);
        tracing::info!(entry_id = %id, "diary entry deleted");
        Ok(Response::new(pb::DeleteEntryResponse {
            id: id.to_string(),
            deleted_at: Some(timestamp(deleted_at)),
        }))
    }

    async fn list_entries_by_user(
        &self,
        request: Request<pb::ListEntriesByUserRequest>,
    ) -> Result<Response<pb::ListEntriesResponse>, Status> {
        let r = request.into_inner();
        let range = TimeRange {
            start: optional_time("startTime", r.start_time)?,
            end: optional_time("endTime", r.end_time)?,
        };
        if let (Some(start), Some(end)) = (range.start, range.end)
            && start >= end
        {
            return Err(ApiError::invalid_field("startTime", "must be before endTime").into());
        }
        let (page, request) = page_request(r.page, r.limit, r.cursor)?;
        let user_id = self.existing_user("userId", &r.user_id).await?;
        let found = self
            .read_models
            .entries_by_user(&user_id.to_string(), range, &request)
            .await
            .map_err(query_error)?;
        Ok(Response::new(pb::ListEntriesResponse {
            has_more: found.has_more(),
            next_cursor: found.next_cursor.unwrap_or_default(),
            entries: found.items.into_iter().map(entry_to_proto).collect(),
            page,
            limit: request.limit,
        }))
    }

    async fn start_session(
        &self,
        request: Request<pb::StartSessionRequest>,
    ) -> Result<Response<pb::Session>, Status> {
        let metadata = event_metadata(&request);
        let r = request.into_inner();
        let start_time = optional_time("startTime", r.start_time)?;
        let user_id = self.existing_user("userId", &r.user_id).await?;
        let id = Uuid::new_v4();
        let command = SessionCommand::Start {
            session_id: id.to_string(),
            user_id: user_id.to_string(),
            start_time,
            now: Utc::now(),
        };
        let session = self.execute_session(&id, command, &metadata).await?;
        tracing::info!(session_id = %id, user_id = %user_id, "diary session started");
        Ok(Response::new(session_to_proto(session)))
    }

    async fn end_session(
        &self,
        request: Request<pb::EndSessionRequest>,
    ) -> Result<Response<pb::Session>, Status> {
        let metadata = event_metadata(&request);
        let r = request.into_inner();
        let id = parse_id("id", &r.id).map_err(invalid)?;
        let command = SessionCommand::End {
            end_time: optional_time("endTime", r.end_time)?,
            now: Utc::now(),
        };
        let session = self.execute_session(&id, command, &metadata).await?;
        Ok(Response::new(session_to_proto(session)))
    }

    async fn get_session(
        &self,
        request: Request<pb::GetSessionRequest>,
    ) -> Result<Response<pb::Session>, Status> {
        let r = request.into_inner();
        let id = parse_id("id", &r.id).map_err(invalid)?;
        let loaded = match optional_time("asOf", r.as_of)? {
            None => self.session(&id).await?,
            Some(as_of) => {
                let then = self
                    .sessions
                    .load_as_of(&id.to_string(), as_of)
                    .await
                    .map_err(store_error)?;
                if !then.state.exists() {
                    return Err(ApiError::not_found(format!(
                        "diary session {id} did not exist at {as_of}"
                    ))
                    .into());
                }
                then
            }
        };
        Ok(Response::new(session_to_proto(loaded)))
    }

    async fn list_sessions_by_user(
        &self,
        request: Request<pb::ListSessionsByUserRequest>,
    ) -> Result<Response<pb::ListSessionsResponse>, Status> {
        let r = request.into_inner();
        let (page, request) = page_request(r.page, r.limit, r.cursor)?;
        let user_id = self.existing_user("userId", &r.user_id).await?;
        let found = self
            .read_models
            .sessions_by_user(&user_id.to_string(), TimeRange::default(), &request)
            .await
            .map_err(query_error)?;
        Ok(Response::new(pb::ListSessionsResponse {
            has_more: found.has_more(),
            next_cursor: found.next_cursor.unwrap_or_default(),
            sessions: found.items.into_iter().map(session_to_proto).collect(),
            page,
            limit: request.limit,
        }))
    }

    async fn get_analytics(
        &self,
        request: Request<pb::GetAnalyticsRequest>,
    ) -> Result<Response<pb::Analytics>, Status> {
        let r = request.into_inner();
        let period = Period::parse(&r.period).ok_or_else(|| {
            ApiError::invalid_field("period", "must be one of day, week, month, year")
        })?;
        let user_id = self.existing_user("userId", &r.user_id).await?.to_string();
        let end = Utc::now();
        let range = TimeRange {
            start: Some(end - period.length()),
            end: Some(end),
        };
        let entries = self
            .read_models
            .entry_stats(&user_id, range)
            .await
            .map_err(query_error)?;
        // Sessions carry no text; every one of the window is read, however many pages.
        let everything = PageRequest {
            offset: 0,
            limit: u32::MAX - 1,
            cursor: None,
        };
        let sessions = self
            .read_models
            .sessions_by_user(&user_id, range, &everything)
            .await
            .map_err(query_error)?;
        let sessions: Vec<_> = sessions.items.into_iter().map(|l| l.state).collect();
        let a = analytics::compute(period, end, &entries, &sessions);
        Ok(Response::new(pb::Analytics {
            user_id,
            period: a.period.as_str().to_owned(),
            period_start: Some(timestamp(a.start)),
            period_end: Some(timestamp(a.end)),
            entry_count: a.entry_count,
            session_count: a.session_count,
            total_session_minutes: a.total_session_minutes,
            average_session_minutes: a.average_session_minutes,
            total_tokens: a.total_tokens,
            tag_frequencies: a
                .tag_frequencies
                .into_iter()
                .map(|(tag, count)| pb::TagCount { tag, count })
                .collect(),
            entries_per_day: a
                .entries_per_day
                .into_iter()
                .map(|(date, entries)| pb::DayCount {
                    date: date.format("%Y-%m-%d").to_string(),
                    entries,
                })
                .collect(),
        }))
    }

    async fn get_entry_history(
        &self,
        request: Request<HistoryRequest>,
    ) -> Result<Response<EventHistory>, Status> {
        let id = parse_id("id", &request.into_inner().id).map_err(invalid)?;
        let stream = Entry::stream_id(&id.to_string());
        Ok(Response::new(
            self.stream_history(stream, "diary entry").await?,
        ))
    }

    async fn get_session_history(
        &self,
        request: Request<HistoryRequest>,
    ) -> Result<Response<EventHistory>, Status> {
        let id = parse_id("id", &request.into_inner().id).map_err(invalid)?;
        let stream = Session::stream_id(&id.to_string());
        Ok(Response::new(
            self.stream_history(stream, "diary session").await?,
        ))
    }
}

fn entry_to_proto(loaded: Loaded<Entry>) -> pb::Entry {
    let e = loaded.state;
    pb::Entry {
        id: e.id,
        user_id: e.user_id,
        title: e.title,
        content: e.content,
        token_count: e.token_count,
        session_id: e.session_id,
        tags: e.tags,
        created_at: loaded.created_at.map(timestamp),
        updated_at: loaded.updated_at.map(timestamp),
        version: loaded.version.unwrap_or(0),
    }
}

fn session_to_proto(loaded: Loaded<Session>) -> pb::Session {
    let s = loaded.state;
    pb::Session {
        status: if s.is_active() { "active" } else { "ended" }.to_owned(),
        duration_minutes: s.duration_minutes(),
        id: s.id,
        user_id: s.user_id,
        start_time: s.start_time.map(timestamp),
        end_time: s.end_time.map(timestamp),
        created_at: loaded.created_at.map(timestamp),
        updated_at: loaded.updated_at.map(timestamp),
        version: loaded.version.unwrap_or(0),
    }
}
