//! `/diary` routes: entries, sessions, histories and analytics, each one gRPC call to the diary
//! service.

use axum::Json;
use axum::extract::State;
use axum::response::Response;
use metachat_proto::Timestamp;
use metachat_proto::common::HistoryRequest;
use metachat_proto::diary::{
    CreateEntryRequest, DeleteEntryRequest, EndSessionRequest, GetAnalyticsRequest,
    GetEntryRequest, GetSessionRequest, ListEntriesByUserRequest, ListSessionsByUserRequest,
    StartSessionRequest, UpdateEntryRequest,
};
use serde::Deserialize;

use crate::convert::{
    AnalyticsJson, DeletedJson, EntryJson, EntryListJson, HistoryJson, SessionJson, SessionListJson,
};
use crate::created;
use crate::error::AppError;
use crate::extract::{JsonBody, OptionalJsonBody, PathId, QueryParams};
use crate::grpc::{Backends, RequestContext, unary};
use crate::time::{DateMeans, as_of, parse_instant, parse_timestamp, to_timestamp};

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub(crate) struct CreateEntryBody {
    user_id: String,
    title: String,
    content: String,
    token_count: Option<u32>,
    session_id: Option<String>,
    tags: Option<Vec<String>>,
}

/// Absent (or `null`) fields are left unchanged; `tags`, when present, replaces the tags.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub(crate) struct UpdateEntryBody {
    title: Option<String>,
    content: Option<String>,
    token_count: Option<u32>,
    tags: Option<Vec<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub(crate) struct StartSessionBody {
    user_id: String,
    start_time: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub(crate) struct EndSessionBody {
    end_time: Option<String>,
}

pub(crate) async fn create_entry(
    State(backends): State<Backends>,
    context: RequestContext,
    JsonBody(body): JsonBody<CreateEntryBody>,
) -> Result<Response, AppError> {
    let request = CreateEntryRequest {
        user_id: body.user_id,
        title: body.title,
        content: body.content,
        token_count: body.token_count,
        session_id: body.session_id,
        tags: body.tags.unwrap_or_default(),
    };
    let mut client = backends.diary.clone();
    let call = client.create_entry(context.request(request, backends.timeout));
    let entry = unary(&context, backends.timeout, call).await?;
    Ok(created(
        &format!("/diary/entries/{}", entry.id),
        EntryJson::from(entry),
    ))
}

pub(crate) async fn get_entry(
    State(backends): State<Backends>,
    context: RequestContext,
    PathId(id): PathId,
    query: QueryParams,
) -> Result<Json<EntryJson>, AppError> {
    let request = GetEntryRequest {
        id,
        as_of: as_of(&query)?,
    };
    let mut client = backends.diary.clone();
    let call = client.get_entry(context.request(request, backends.timeout));
    Ok(Json(unary(&context, backends.timeout, call).await?.into()))
}

pub(crate) async fn update_entry(
    State(backends): State<Backends>,
    context: RequestContext,
    PathId(id): PathId,
    JsonBody(body): JsonBody<UpdateEntryBody>,
) -> Result<Json<EntryJson>, AppError> {
    let request = UpdateEntryRequest {
        id,
        title: body.title,
        content: body.content,
        token_count: body.token_count,
        replace_tags: body.tags.is_some(),
        tags: body.tags.unwrap_or_default(),
        expected_version: None,
    };
    let mut client = backends.diary.clone();
    let call = client.update_entry(context.request(request, backends.timeout));
    Ok(Json(unary(&context, backends.timeout, call).await?.into()))
}

pub(crate) async fn delete_entry(
    State(backends): State<Backends>,
    context: RequestContext,
    PathId(id): PathId,
) -> Result<Json<DeletedJson>, AppError> {
    let mut client = backends.diary.clone();
    let call = client.delete_entry(context.request(
        DeleteEntryRequest {
            id,
            expected_version: None,
        },
        backends.timeout,
    ));
    Ok(Json(unary(&context, backends.timeout, call).await?.into()))
}

/// `startTime`/`endTime` of a user's entries: `[start, end)`, a bare end date including its day.
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

pub(crate) async fn list_entries(
    State(backends): State<Backends>,
    context: RequestContext,
    PathId(user_id): PathId,
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
    };
    let mut client = backends.diary.clone();
    let call = client.list_entries_by_user(context.request(request, backends.timeout));
    Ok(Json(unary(&context, backends.timeout, call).await?.into()))
}

pub(crate) async fn entry_history(
    State(backends): State<Backends>,
    context: RequestContext,
    PathId(id): PathId,
) -> Result<Json<HistoryJson>, AppError> {
    let stream_id = format!("entry-{id}");
    let mut client = backends.diary.clone();
    let call = client.get_entry_history(context.request(HistoryRequest { id }, backends.timeout));
    let history = unary(&context, backends.timeout, call).await?;
    Ok(Json(HistoryJson::new(stream_id, history)))
}

pub(crate) async fn start_session(
    State(backends): State<Backends>,
    context: RequestContext,
    JsonBody(body): JsonBody<StartSessionBody>,
) -> Result<Response, AppError> {
    let start_time = body
        .start_time
        .map(|v| parse_timestamp("startTime", &v))
        .transpose()?;
    let request = StartSessionRequest {
        user_id: body.user_id,
        start_time: start_time.map(to_timestamp),
    };
    let mut client = backends.diary.clone();
    let call = client.start_session(context.request(request, backends.timeout));
    let session = unary(&context, backends.timeout, call).await?;
    Ok(created(
        &format!("/diary/sessions/{}", session.id),
        SessionJson::from(session),
    ))
}

pub(crate) async fn end_session(
    State(backends): State<Backends>,
    context: RequestContext,
    PathId(id): PathId,
    OptionalJsonBody(body): OptionalJsonBody<EndSessionBody>,
) -> Result<Json<SessionJson>, AppError> {
    let end_time = body
        .end_time
        .map(|v| parse_timestamp("endTime", &v))
        .transpose()?;
    let request = EndSessionRequest {
        id,
        end_time: end_time.map(to_timestamp),
        expected_version: None,
    };
    let mut client = backends.diary.clone();
    let call = client.end_session(context.request(request, backends.timeout));
    Ok(Json(unary(&context, backends.timeout, call).await?.into()))
}

pub(crate) async fn get_session(
    State(backends): State<Backends>,
    context: RequestContext,
    PathId(id): PathId,
    query: QueryParams,
) -> Result<Json<SessionJson>, AppError> {
    let request = GetSessionRequest {
        id,
        as_of: as_of(&query)?,
    };
    let mut client = backends.diary.clone();
    let call = client.get_session(context.request(request, backends.timeout));
    Ok(Json(unary(&context, backends.timeout, call).await?.into()))
}

pub(crate) async fn list_sessions(
    State(backends): State<Backends>,
    context: RequestContext,
    PathId(user_id): PathId,
    query: QueryParams,
) -> Result<Json<SessionListJson>, AppError> {
    let (page, limit, cursor) = query.paging()?;
    let request = ListSessionsByUserRequest {
        user_id,
        page,
        limit,
        cursor,
    };
    let mut client = backends.diary.clone();
    let call = client.list_sessions_by_user(context.request(request, backends.timeout));
    Ok(Json(unary(&context, backends.timeout, call).await?.into()))
}

pub(crate) async fn session_history(
    State(backends): State<Backends>,
    context: RequestContext,
    PathId(id): PathId,
) -> Result<Json<HistoryJson>, AppError> {
    let stream_id = format!("session-{id}");
    let mut client = backends.diary.clone();
    let call = client.get_session_history(context.request(HistoryRequest { id }, backends.timeout));
    let history = unary(&context, backends.timeout, call).await?;
    Ok(Json(HistoryJson::new(stream_id, history)))
}

pub(crate) async fn analytics(
    State(backends): State<Backends>,
    context: RequestContext,
    query: QueryParams,
) -> Result<Json<AnalyticsJson>, AppError> {
    let request = GetAnalyticsRequest {
        user_id: query.required("userId")?.to_owned(),
        period: query.get("period")?.unwrap_or("week").to_owned(),
    };
    let mut client = backends.diary.clone();
    let call = client.get_analytics(context.request(request, backends.timeout));
    Ok(Json(unary(&context, backends.timeout, call).await?.into()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::extract::parse_json;
    use crate::time::format_timestamp;

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
