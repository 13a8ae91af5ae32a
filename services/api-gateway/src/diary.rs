//! `/diary` routes: entries, sessions, histories and analytics, each one gRPC call to the diary
//! service.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use metachat_proto::Timestamp;
use metachat_proto::common::HistoryRequest;
use metachat_proto::diary::{
    CreateEntryRequest, DeleteEntryRequest, EndSessionRequest, Entry, GetAnalyticsRequest,
    GetEntryRequest, GetSessionRequest, ListEntriesByUserRequest, ListRelatedEntriesRequest,
    ListSessionsByUserRequest, SearchEntriesRequest, Session, StartSessionRequest,
    UpdateEntryRequest,
};
use serde::Deserialize;
use utoipa::ToSchema;

use crate::consistency::{ReadAfter, with_token};
use crate::convert::{
    AnalyticsJson, DeletedJson, EntryJson, EntryListJson, HistoryJson, SearchResultsJson,
    SessionJson, SessionListJson,
};
use crate::created;
use crate::error::AppError;
use crate::extract::{JsonBody, OptionalJsonBody, PathId, QueryParams, token_count};
use crate::grpc::{Backends, RequestContext, unary};
use crate::limits::DEFAULT_PERIOD;
use crate::openapi::{
    Backend, BadRequest, BodyErrors, Conflict, Limits, NotFound, PreconditionFailed,
};
use crate::precondition::{IfMatch, tagged};
use crate::schema::{
    self, AnalyticsQuery, AsOfQuery, ConsistencyTokenHeader, EntryIdPath, IfMatchHeader,
    OwnerIdPath, PagingQuery, RelatedQuery, SearchQuery, SessionIdPath, TimeRangeQuery,
};
use crate::time::{DateMeans, as_of, parse_instant, parse_timestamp, to_timestamp};
use crate::validate::Checks;

#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[schema(as = CreateEntryRequest, examples(json!({
    "userId": "0b9e4c9e-7d1a-4f57-8d59-3f7b8f0d1a2c", "title": "My First Entry",
    "content": "Today was a good day...", "tokenCount": 150,
    "sessionId": "5f0c2a8e-3b1d-4c2e-9a7f-1e2d3c4b5a69", "tags": ["reflection", "gratitude"]
})))]
pub(crate) struct CreateEntryBody {
    #[schema(schema_with = schema::user_id)]
    user_id: String,
    #[schema(schema_with = schema::title)]
    title: String,
    #[schema(schema_with = schema::content)]
    content: String,
    #[serde(default, deserialize_with = "token_count")]
    #[schema(schema_with = schema::token_count_or_null)]
    token_count: Option<u32>,
    #[schema(schema_with = schema::session_id_or_null)]
    session_id: Option<String>,
    #[schema(schema_with = schema::tags_or_null)]
    tags: Option<Vec<String>>,
    #[schema(schema_with = schema::created_at_or_null)]
    created_at: Option<String>,
}

/// Absent (or `null`) fields are left unchanged; `tags`, when present, replaces the tags.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[schema(as = UpdateEntryRequest, examples(json!({
    "title": "Updated Title", "content": "Updated content...", "tokenCount": 200,
    "tags": ["reflection", "gratitude", "growth"]
})))]
pub(crate) struct UpdateEntryBody {
    #[schema(schema_with = schema::title_or_null)]
    title: Option<String>,
    #[schema(schema_with = schema::content_or_null)]
    content: Option<String>,
    #[serde(default, deserialize_with = "token_count")]
    #[schema(schema_with = schema::token_count_or_null)]
    token_count: Option<u32>,
    #[schema(schema_with = schema::tags_or_null)]
    tags: Option<Vec<String>>,
}

/// Title, tags and content: one line, one line each, and text with line breaks.
fn check_text(
    checks: &mut Checks,
    title: Option<&str>,
    content: Option<&str>,
    tags: Option<&[String]>,
) {
    checks.single_line("title", title);
    checks.multi_line("content", content);
    for (i, tag) in tags.unwrap_or_default().iter().enumerate() {
        checks.single_line(format!("tags[{i}]"), Some(tag));
    }
}

fn entry_response(status: StatusCode, entry: Entry) -> Response {
    let version = entry.version;
    tagged(status, EntryJson::from(entry), version)
}

fn session_response(session: Session) -> Response {
    let version = session.version;
    tagged(StatusCode::OK, SessionJson::from(session), version)
}

/// A write's answer with its consistency token: resource `id` is now at `version`.
fn written(response: Response, id: &str, version: u64) -> Response {
    with_token(response, id, version)
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[schema(as = StartSessionRequest, examples(json!({
    "userId": "0b9e4c9e-7d1a-4f57-8d59-3f7b8f0d1a2c", "startTime": "2023-01-01T10:00:00Z"
})))]
pub(crate) struct StartSessionBody {
    #[schema(schema_with = schema::user_id)]
    user_id: String,
    #[schema(schema_with = schema::start_time_or_null)]
    start_time: Option<String>,
}

/// May be omitted entirely (an empty body) or `{}`.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[schema(as = EndSessionRequest, examples(json!({"endTime": "2023-01-01T11:00:00Z"})))]
pub(crate) struct EndSessionBody {
    #[schema(schema_with = schema::end_time_or_null)]
    end_time: Option<String>,
}

/// Create a diary entry
///
/// Creates an entry (event `DiaryEntryCreated`).
#[utoipa::path(post, path = "/diary/entries", tag = "Diary entries", operation_id = "createEntry",
    request_body = CreateEntryBody,
    responses((status = 201, description = "The created entry.", body = EntryJson),
        BadRequest, NotFound, Conflict, BodyErrors, Limits, Backend))]
pub(crate) async fn create_entry(
    State(backends): State<Backends>,
    context: RequestContext,
    JsonBody(body): JsonBody<CreateEntryBody>,
) -> Result<Response, AppError> {
    let mut checks = Checks::default();
    let user_id = checks.uuid("userId", body.user_id);
    let session_id = checks.optional_uuid("sessionId", body.session_id);
    check_text(
        &mut checks,
        Some(&body.title),
        Some(&body.content),
        body.tags.as_deref(),
    );
    let created_at = body
        .created_at
        .and_then(|v| checks.absorb(parse_timestamp("createdAt", &v)));
    checks.finish()?;
    context.caller.ensure_acts_for("userId", &user_id)?;
    let request = CreateEntryRequest {
        user_id,
        title: body.title,
        content: body.content,
        token_count: body.token_count,
        session_id,
        tags: body.tags.unwrap_or_default(),
        created_at: created_at.map(to_timestamp),
    };
    let mut client = backends.diary.clone();
    let call = client.create_entry(context.request(request, backends.timeout));
    let entry = unary(&context, backends.timeout, call).await?;
    let (id, version) = (entry.id.clone(), entry.version);
    let response = created(
        &format!("/diary/entries/{id}"),
        EntryJson::from(entry),
        version,
    );
    Ok(written(response, &id, version))
}

/// Get a diary entry
///
/// The entry, or its state at `asOf`. A deleted entry is 404 (its history stays available).
/// Served from the event store: reflects every completed write immediately.
#[utoipa::path(get, path = "/diary/entries/{id}", tag = "Diary entries", operation_id = "getEntry",
    params(EntryIdPath, AsOfQuery),
    responses((status = 200, description = "The entry.", body = EntryJson),
        BadRequest, NotFound, Limits, Backend))]
pub(crate) async fn get_entry(
    State(backends): State<Backends>,
    context: RequestContext,
    PathId(id): PathId,
    query: QueryParams,
) -> Result<Response, AppError> {
    let request = GetEntryRequest {
        id,
        as_of: as_of(&query)?,
    };
    let mut client = backends.diary.clone();
    let call = client.get_entry(context.request(request, backends.timeout));
    let entry = unary(&context, backends.timeout, call).await?;
    Ok(entry_response(StatusCode::OK, entry))
}

/// Update a diary entry
///
/// Changes the given fields (event `DiaryEntryUpdated`). A deleted entry is 404.
#[utoipa::path(put, path = "/diary/entries/{id}", tag = "Diary entries",
    operation_id = "updateEntry", params(EntryIdPath, IfMatchHeader),
    request_body = UpdateEntryBody,
    responses((status = 200, description = "The updated entry.", body = EntryJson), BadRequest, NotFound, Conflict, PreconditionFailed, BodyErrors, Limits, Backend))]
pub(crate) async fn update_entry(
    State(backends): State<Backends>,
    context: RequestContext,
    PathId(id): PathId,
    IfMatch(expected_version): IfMatch,
    JsonBody(body): JsonBody<UpdateEntryBody>,
) -> Result<Response, AppError> {
    let mut checks = Checks::default();
    check_text(
        &mut checks,
        body.title.as_deref(),
        body.content.as_deref(),
        body.tags.as_deref(),
    );
    checks.finish()?;
    let request = UpdateEntryRequest {
        id,
        title: body.title,
        content: body.content,
        token_count: body.token_count,
        replace_tags: body.tags.is_some(),
        tags: body.tags.unwrap_or_default(),
        expected_version,
    };
    let mut client = backends.diary.clone();
    let call = client.update_entry(context.request(request, backends.timeout));
    let entry = unary(&context, backends.timeout, call).await?;
    let (id, version) = (entry.id.clone(), entry.version);
    Ok(written(entry_response(StatusCode::OK, entry), &id, version))
}

/// Delete a diary entry
///
/// Deletes the entry (event `DiaryEntryDeleted`): later GET, PUT and DELETE answer 404; its
/// history stays available.
#[utoipa::path(delete, path = "/diary/entries/{id}", tag = "Diary entries",
    operation_id = "deleteEntry", params(EntryIdPath, IfMatchHeader),
    responses(
        (status = 200, description = "The deleted entry's id, its version after the deletion \
            and when it was deleted.", body = DeletedJson),
        BadRequest, NotFound, Conflict, PreconditionFailed, Limits, Backend))]
pub(crate) async fn delete_entry(
    State(backends): State<Backends>,
    context: RequestContext,
    PathId(id): PathId,
    IfMatch(expected_version): IfMatch,
) -> Result<Response, AppError> {
    let request = DeleteEntryRequest {
        id,
        expected_version,
    };
    let mut client = backends.diary.clone();
    let call = client.delete_entry(context.request(request, backends.timeout));
    let deleted = unary(&context, backends.timeout, call).await?;
    let (id, version) = (deleted.id.clone(), deleted.version);
    // The deletion's version as its ETag too, like every write that answers a version.
    let response = tagged(StatusCode::OK, DeletedJson::from(deleted), version);
    Ok(written(response, &id, version))
}

/// `startTime`/`endTime` of a user's entries: `[start, end)`, a bare end date including its day.
/// `startTime == endTime` is an empty range, not an error; only a start after the end is.
pub(crate) fn time_range(
    query: &QueryParams,
) -> Result<(Option<Timestamp>, Option<Timestamp>), AppError> {
    let start = query
        .get("startTime")?
        .map(|v| parse_instant("startTime", v, DateMeans::StartOfDay))
        .transpose()?;
    let end = query
        .get("endTime")?
        .map(|v| parse_instant("endTime", v, DateMeans::EndOfDayExclusive))
        .transpose()?;
    if let (Some(start), Some(end)) = (start, end)
        && start > end
    {
        return Err(AppError::invalid("startTime", "must not be after endTime"));
    }
    Ok((start.map(to_timestamp), end.map(to_timestamp)))
}

/// A user's diary entries
///
/// The user's entries, newest first, optionally within `[startTime, endTime)`. A date-only
/// endTime includes that whole day, so `?startTime=2023-01-01&endTime=2023-12-31` is the year
/// 2023. 400 when startTime is after endTime. Served from a read model, which lags writes
/// slightly (milliseconds in the embedded mode).
#[utoipa::path(get, path = "/diary/entries/user/{userId}", tag = "Diary entries",
    operation_id = "listEntriesByUser",
    params(OwnerIdPath, TimeRangeQuery, PagingQuery, ConsistencyTokenHeader),
    responses((status = 200, description = "A page of entries.", body = EntryListJson),
        BadRequest, NotFound, Limits, Backend))]
pub(crate) async fn list_entries(
    State(backends): State<Backends>,
    context: RequestContext,
    PathId(user_id): PathId,
    ReadAfter(consistency_token): ReadAfter,
    query: QueryParams,
) -> Result<Json<EntryListJson>, AppError> {
    let (start_time, end_time) = time_range(&query)?;
    let (page, limit, cursor) = query.paging()?;
    let request = ListEntriesByUserRequest {
        user_id,
        start_time,
        end_time,
        page,
        limit,
        cursor,
        consistency_token,
    };
    let mut client = backends.diary.clone();
    let call = client.list_entries_by_user(context.request(request, backends.timeout));
    Ok(Json(unary(&context, backends.timeout, call).await?.into()))
}

/// An entry's event history
///
/// Every event of the stream `entry-<id>`, oldest first, including after deletion. Served
/// from the event store: reflects every completed write immediately.
#[utoipa::path(get, path = "/diary/entries/{id}/history", tag = "History",
    operation_id = "getEntryHistory", params(EntryIdPath),
    responses((status = 200, description = "The entry's events.", body = HistoryJson),
        BadRequest, NotFound, Limits, Backend))]
pub(crate) async fn entry_history(
    State(backends): State<Backends>,
    context: RequestContext,
    PathId(id): PathId,
) -> Result<Json<HistoryJson>, AppError> {
    let mut client = backends.diary.clone();
    let call = client.get_entry_history(context.request(HistoryRequest { id }, backends.timeout));
    let history = unary(&context, backends.timeout, call).await?;
    Ok(Json(HistoryJson::new(history)))
}

/// Start a diary session
///
/// Starts a writing session (event `DiarySessionStarted`).
#[utoipa::path(post, path = "/diary/sessions", tag = "Diary sessions",
    operation_id = "startSession", request_body = StartSessionBody,
    responses((status = 201, description = "The started session.", body = SessionJson),
        BadRequest, NotFound, BodyErrors, Limits, Backend))]
pub(crate) async fn start_session(
    State(backends): State<Backends>,
    context: RequestContext,
    JsonBody(body): JsonBody<StartSessionBody>,
) -> Result<Response, AppError> {
    let mut checks = Checks::default();
    let user_id = checks.uuid("userId", body.user_id);
    let start_time = body
        .start_time
        .and_then(|v| checks.absorb(parse_timestamp("startTime", &v)));
    checks.finish()?;
    context.caller.ensure_acts_for("userId", &user_id)?;
    let request = StartSessionRequest {
        user_id,
        start_time: start_time.map(to_timestamp),
    };
    let mut client = backends.diary.clone();
    let call = client.start_session(context.request(request, backends.timeout));
    let session = unary(&context, backends.timeout, call).await?;
    let (id, version) = (session.id.clone(), session.version);
    let response = created(
        &format!("/diary/sessions/{id}"),
        SessionJson::from(session),
        version,
    );
    Ok(written(response, &id, version))
}

/// End a diary session
///
/// Ends the session (event `DiarySessionEnded`). A session ends once: 409
/// `failed_precondition` when it already ended. The body may be empty: the session then ends
/// now (never before its start), and no entry written in it can be created after that end,
/// also when the end races with a write. An `endTime` the client gives is its own account of
/// the session (a session entered after the fact), as `startTime` is: entries written in it
/// without a `createdAt` keep the time they were stored, which may then lie outside the
/// session's times; an `endTime` before the `createdAt` a client gave an entry of the session
/// is a 400 (also when that entry was deleted since: the session keeps the times it was
/// given). Without an `endTime`, the session ends now, or at the latest such `createdAt` when
/// an entry was dated a few minutes ahead.
#[utoipa::path(put, path = "/diary/sessions/{id}/end", tag = "Diary sessions",
    operation_id = "endSession", params(SessionIdPath, IfMatchHeader),
    request_body = Option<EndSessionBody>,
    responses((status = 200, description = "The ended session.", body = SessionJson), BadRequest, NotFound, Conflict, PreconditionFailed, BodyErrors, Limits, Backend))]
pub(crate) async fn end_session(
    State(backends): State<Backends>,
    context: RequestContext,
    PathId(id): PathId,
    IfMatch(expected_version): IfMatch,
    OptionalJsonBody(body): OptionalJsonBody<EndSessionBody>,
) -> Result<Response, AppError> {
    let end_time = body
        .end_time
        .map(|v| parse_timestamp("endTime", &v))
        .transpose()?;
    let request = EndSessionRequest {
        id,
        end_time: end_time.map(to_timestamp),
        expected_version,
    };
    let mut client = backends.diary.clone();
    let call = client.end_session(context.request(request, backends.timeout));
    let session = unary(&context, backends.timeout, call).await?;
    let (id, version) = (session.id.clone(), session.version);
    Ok(written(session_response(session), &id, version))
}

/// Get a diary session
///
/// The session, or its state at `asOf`. Served from the event store: reflects every
/// completed write immediately.
#[utoipa::path(get, path = "/diary/sessions/{id}", tag = "Diary sessions",
    operation_id = "getSession", params(SessionIdPath, AsOfQuery),
    responses((status = 200, description = "The session.", body = SessionJson),
        BadRequest, NotFound, Limits, Backend))]
pub(crate) async fn get_session(
    State(backends): State<Backends>,
    context: RequestContext,
    PathId(id): PathId,
    query: QueryParams,
) -> Result<Response, AppError> {
    let request = GetSessionRequest {
        id,
        as_of: as_of(&query)?,
    };
    let mut client = backends.diary.clone();
    let call = client.get_session(context.request(request, backends.timeout));
    Ok(session_response(
        unary(&context, backends.timeout, call).await?,
    ))
}

/// A user's diary sessions
///
/// The user's sessions, newest first. Served from a read model, which lags writes slightly
/// (milliseconds in the embedded mode).
#[utoipa::path(get, path = "/diary/sessions/user/{userId}", tag = "Diary sessions",
    operation_id = "listSessionsByUser",
    params(OwnerIdPath, PagingQuery, ConsistencyTokenHeader),
    responses((status = 200, description = "A page of sessions.", body = SessionListJson),
        BadRequest, NotFound, Limits, Backend))]
pub(crate) async fn list_sessions(
    State(backends): State<Backends>,
    context: RequestContext,
    PathId(user_id): PathId,
    ReadAfter(consistency_token): ReadAfter,
    query: QueryParams,
) -> Result<Json<SessionListJson>, AppError> {
    let (page, limit, cursor) = query.paging()?;
    let request = ListSessionsByUserRequest {
        user_id,
        page,
        limit,
        cursor,
        consistency_token,
    };
    let mut client = backends.diary.clone();
    let call = client.list_sessions_by_user(context.request(request, backends.timeout));
    Ok(Json(unary(&context, backends.timeout, call).await?.into()))
}

/// A session's event history
///
/// Every event of the stream `session-<id>`, oldest first. Served from the event store:
/// reflects every completed write immediately.
#[utoipa::path(get, path = "/diary/sessions/{id}/history", tag = "History",
    operation_id = "getSessionHistory", params(SessionIdPath),
    responses((status = 200, description = "The session's events.", body = HistoryJson),
        BadRequest, NotFound, Limits, Backend))]
pub(crate) async fn session_history(
    State(backends): State<Backends>,
    context: RequestContext,
    PathId(id): PathId,
) -> Result<Json<HistoryJson>, AppError> {
    let mut client = backends.diary.clone();
    let call = client.get_session_history(context.request(HistoryRequest { id }, backends.timeout));
    let history = unary(&context, backends.timeout, call).await?;
    Ok(Json(HistoryJson::new(history)))
}

/// `userId`, `period`, `from`, `to` and `timeZone` (the diary service checks the period's
/// value, the zone and the window).
pub(crate) fn analytics_request(query: &QueryParams) -> Result<GetAnalyticsRequest, AppError> {
    let moment = |name| -> Result<_, AppError> {
        query
            .get(name)?
            .map(|at| parse_timestamp(name, at).map(to_timestamp))
            .transpose()
    };
    Ok(GetAnalyticsRequest {
        user_id: query.uuid("userId")?,
        period: query.get("period")?.unwrap_or(DEFAULT_PERIOD).to_owned(),
        consistency_token: String::new(),
        from: moment("from")?,
        to: moment("to")?,
        time_zone: query.get("timeZone")?.unwrap_or_default().to_owned(),
    })
}

/// Diary analytics
///
/// Entry, word, token, session, tag, keyword and sentiment statistics of the user over a window
/// (`period` ending `to` or now, or an explicit `from`..`to`), per calendar day of `timeZone`,
/// with writing days, streaks and the window's sensory profile and archetype signals. Served
/// from per-quarter-hour totals that projections keep, which lag writes slightly
/// (milliseconds in the embedded mode).
#[utoipa::path(get, path = "/diary/analytics", tag = "Analytics", operation_id = "getAnalytics",
    params(AnalyticsQuery, ConsistencyTokenHeader),
    responses((status = 200, description = "The user's analytics.", body = AnalyticsJson),
        BadRequest, NotFound, Limits, Backend))]
pub(crate) async fn analytics(
    State(backends): State<Backends>,
    context: RequestContext,
    ReadAfter(consistency_token): ReadAfter,
    query: QueryParams,
) -> Result<Json<AnalyticsJson>, AppError> {
    let request = GetAnalyticsRequest {
        consistency_token,
        ..analytics_request(&query)?
    };
    let mut client = backends.diary.clone();
    let call = client.get_analytics(context.request(request, backends.timeout));
    Ok(Json(unary(&context, backends.timeout, call).await?.into()))
}

/// `page` and `limit` of a ranked list: a page past the ranked results is empty.
fn result_paging(query: &QueryParams) -> Result<(u32, u32), AppError> {
    Ok((
        query.number("page", 1, 1, u32::MAX)?,
        query.number("limit", 10, 1, RESULTS_MAX)?,
    ))
}

/// Results per page at most ([`diary_service`'s `MAX_RESULTS`]).
const RESULTS_MAX: u32 = 50;

/// The longest query, in characters.
const QUERY_MAX_CHARS: usize = 1_000;

/// The search request of `query`: `userId`, `q` (one line, 1 to 1,000 characters once
/// trimmed), `page` and `limit`.
pub(crate) fn search_request(query: &QueryParams) -> Result<SearchEntriesRequest, AppError> {
    let user_id = query.uuid("userId")?;
    let text = query.required("q")?;
    let mut checks = Checks::default();
    checks.single_line("q", Some(text));
    checks.finish()?;
    let trimmed = text.trim();
    if trimmed.is_empty() {
        return Err(AppError::invalid("q", "must not be empty"));
    }
    if trimmed.chars().count() > QUERY_MAX_CHARS {
        return Err(AppError::invalid(
            "q",
            format!("must be at most {QUERY_MAX_CHARS} characters"),
        ));
    }
    let (page, limit) = result_paging(query)?;
    Ok(SearchEntriesRequest {
        user_id,
        query: trimmed.to_owned(),
        page,
        limit,
    })
}

/// Search a user's entries by meaning
///
/// The user's entries ranked by how well they answer `q`: the cosine similarity of the
/// sentence embeddings (all-MiniLM-L6-v2, computed on the diary service) of `q` and of each
/// entry's closest passage, blended with a keyword score (BM25 of `q`'s stemmed words). At
/// most 100 results, best first, paged. Entries are indexed asynchronously after each write
/// (tens of milliseconds each). 409 while the user's analysis is switched off (nothing of
/// theirs is indexed then); 503 when the diary service runs without its model.
#[utoipa::path(get, path = "/diary/search", tag = "Search", operation_id = "searchEntries",
    params(SearchQuery),
    responses((status = 200, description = "Ranked results.", body = SearchResultsJson),
        BadRequest, NotFound,
        (status = 409, description = "The user switched analysis off.", body = crate::error::Envelope),
        Limits, Backend))]
pub(crate) async fn search(
    State(backends): State<Backends>,
    context: RequestContext,
    query: QueryParams,
) -> Result<Json<SearchResultsJson>, AppError> {
    let request = search_request(&query)?;
    let mut client = backends.diary.clone();
    let call = client.search_entries(context.request(request, backends.timeout));
    Ok(Json(unary(&context, backends.timeout, call).await?.into()))
}

/// Entries related to an entry
///
/// The entries of the same writer closest in meaning to this one (itself left out): the
/// cosine similarity of its sentence embedding (the mean of its passages') and each other
/// entry's closest passage. At most 100, best first, paged. 404 for a deleted entry; 409
/// while its writer's analysis is off; 503 when the diary service runs without its model.
#[utoipa::path(get, path = "/diary/entries/{id}/related", tag = "Search",
    operation_id = "listRelatedEntries", params(EntryIdPath, RelatedQuery),
    responses((status = 200, description = "Ranked related entries.", body = SearchResultsJson),
        BadRequest, NotFound,
        (status = 409, description = "The writer switched analysis off.", body = crate::error::Envelope),
        Limits, Backend))]
pub(crate) async fn related_entries(
    State(backends): State<Backends>,
    context: RequestContext,
    PathId(id): PathId,
    query: QueryParams,
) -> Result<Json<SearchResultsJson>, AppError> {
    let (page, limit) = result_paging(&query)?;
    let request = ListRelatedEntriesRequest { id, page, limit };
    let mut client = backends.diary.clone();
    let call = client.list_related_entries(context.request(request, backends.timeout));
    Ok(Json(unary(&context, backends.timeout, call).await?.into()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::extract::parse_json;
    use crate::time::format_timestamp;

    #[test]
    fn analytics_take_a_window_and_a_time_zone() {
        let query = QueryParams::from_pairs(&[
            ("userId", "0b9e4c9e-7d1a-4f57-8d59-3f7b8f0d1a2c"),
            ("from", "2024-03-01T00:00:00+05:30"),
            ("to", "2024-03-08T00:00:00Z"),
            ("timeZone", "Asia/Kolkata"),
        ]);
        let request = analytics_request(&query).unwrap();
        assert_eq!(
            request.from.as_ref().and_then(format_timestamp).as_deref(),
            Some("2024-02-29T18:30:00Z")
        );
        assert_eq!(
            request.to.as_ref().and_then(format_timestamp).as_deref(),
            Some("2024-03-08T00:00:00Z")
        );
        assert_eq!(
            (request.time_zone.as_str(), request.period.as_str()),
            ("Asia/Kolkata", "week")
        );
        let plain = analytics_request(&QueryParams::from_pairs(&[(
            "userId",
            "0b9e4c9e-7d1a-4f57-8d59-3f7b8f0d1a2c",
        )]))
        .unwrap();
        assert_eq!(
            (plain.from, plain.to, plain.time_zone.as_str()),
            (None, None, "")
        );
    }

    fn range(pairs: &[(&str, &str)]) -> Result<(Option<String>, Option<String>), AppError> {
        let (start, end) = time_range(&QueryParams::from_pairs(pairs))?;
        Ok((
            start.as_ref().and_then(format_timestamp),
            end.as_ref().and_then(format_timestamp),
        ))
    }

    #[test]
    fn a_date_only_range_covers_the_whole_end_day() {
        let (start, end) =
            range(&[("startTime", "2023-01-01"), ("endTime", "2023-12-31")]).unwrap();
        assert_eq!(start.as_deref(), Some("2023-01-01T00:00:00Z"));
        assert_eq!(end.as_deref(), Some("2024-01-01T00:00:00Z"));
        let (start, end) = range(&[("endTime", "2023-01-01T10:30:00Z")]).unwrap();
        assert_eq!(start, None);
        assert_eq!(end.as_deref(), Some("2023-01-01T10:30:00Z"));
        // The same day as start and end is that whole day.
        assert!(range(&[("startTime", "2023-05-05"), ("endTime", "2023-05-05")]).is_ok());
        // The same instant is an empty range, not an error.
        let (start, end) = range(&[
            ("startTime", "2023-05-05T10:00:00Z"),
            ("endTime", "2023-05-05T10:00:00Z"),
        ])
        .unwrap();
        assert_eq!(start, end);
    }

    #[test]
    fn a_start_after_the_end_is_rejected() {
        let error = range(&[("startTime", "2023-12-31"), ("endTime", "2023-01-01")])
            .unwrap_err()
            .0;
        assert_eq!(error.details[0].field, "startTime");
        let error = range(&[("startTime", "2023-01-01"), ("endTime", "soon")])
            .unwrap_err()
            .0;
        assert_eq!(error.details[0].field, "endTime");
    }

    #[test]
    fn token_counts_are_whole_numbers_up_to_the_real_bound() {
        let parse = |count: &str| {
            parse_json::<UpdateEntryBody>(format!(r#"{{"tokenCount": {count}}}"#).as_bytes())
                .map(|body| body.token_count)
        };
        assert_eq!(parse("549").unwrap(), Some(549));
        assert_eq!(parse("549.0").unwrap(), Some(549));
        assert_eq!(parse("1e3").unwrap(), Some(1000));
        assert_eq!(parse("1000000").unwrap(), Some(1_000_000));
        assert_eq!(parse("null").unwrap(), None);
        assert_eq!(
            parse_json::<UpdateEntryBody>(b"{}").unwrap().token_count,
            None
        );
        for bad in ["1.5", "-1", "1000001", "4294967296", "\"12\"", "true"] {
            let error = parse(bad).unwrap_err().0;
            assert_eq!(error.details[0].field, "tokenCount", "{bad}");
            assert_eq!(
                error.details[0].message, "must be a whole number from 0 to 1000000",
                "{bad}"
            );
        }
    }

    #[test]
    fn the_seed_examples_parse_verbatim() {
        let entry: CreateEntryBody = parse_json(
            br#"{
  "userId": "user-id",
  "title": "My First Entry",
  "content": "Today was a good day...",
  "tokenCount": 150,
  "sessionId": "session-id",
  "tags": ["reflection", "gratitude"]
}"#,
        )
        .unwrap();
        assert_eq!(entry.token_count, Some(150));
        let update: UpdateEntryBody = parse_json(
            br#"{
  "title": "Updated Title",
  "content": "Updated content...",
  "tokenCount": 200,
  "tags": ["reflection", "gratitude", "growth"]
}"#,
        )
        .unwrap();
        assert_eq!(update.tags.map(|t| t.len()), Some(3));
        let start: StartSessionBody =
            parse_json(br#"{"userId": "user-id", "startTime": "2023-01-01T10:00:00Z"}"#).unwrap();
        assert!(parse_timestamp("startTime", start.start_time.as_deref().unwrap()).is_ok());
        let end: EndSessionBody = parse_json(br#"{"endTime": "2023-01-01T11:00:00Z"}"#).unwrap();
        assert!(end.end_time.is_some());
        let empty: EndSessionBody = parse_json(b"{}").unwrap();
        assert!(empty.end_time.is_none());
    }
}
