//! Everything of one user, to take away: `GET /users/{id}/export` as JSON (profile, analysis
//! setting, entries and sessions with every event of their streams, so earlier versions too)
//! and `GET /users/{id}/export.md`, the diary as Markdown. Composed here from the services'
//! reads: the user and every stream from the event store, the lists of entries and sessions
//! from the read models (waiting on nothing: a write of the last milliseconds may be missing).

use axum::Json;
use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use metachat_proto::common::HistoryRequest;
use metachat_proto::diary::{
    Entry, GetAnalysisSettingRequest, GetEntryRequest, ListEntriesByUserRequest,
    ListSessionsByUserRequest, Session,
};
use metachat_proto::user::{GetUserRequest, User};
use serde::Serialize;
use utoipa::ToSchema;

use crate::convert::{AnalysisSettingJson, EntryJson, HistoryJson, SessionJson, UserJson};
use crate::error::AppError;
use crate::extract::PathId;
use crate::grpc::{Backends, RequestContext, unary};
use crate::openapi::{Backend, BadRequest, Limits, NotFound};
use crate::schema::UserIdPath;
use crate::time::format_optional;

/// Entries and sessions read per page.
const PAGE: u32 = 100;

/// One entry with every event of its stream.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(as = ExportedEntry)]
pub(crate) struct ExportedEntryJson {
    entry: EntryJson,
    history: HistoryJson,
}

/// One session with every event of its stream.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(as = ExportedSession)]
pub(crate) struct ExportedSessionJson {
    session: SessionJson,
    history: HistoryJson,
}

/// Everything the platform keeps of one user that they may read.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(as = Export)]
pub(crate) struct ExportJson {
    /// `metachat-export-1`.
    format: &'static str,
    #[schema(format = DateTime)]
    exported_at: String,
    user: UserJson,
    user_history: HistoryJson,
    analysis: AnalysisSettingJson,
    /// Live entries, newest first, each with its analysis and every event of its stream.
    entries: Vec<ExportedEntryJson>,
    /// Sessions, newest first.
    sessions: Vec<ExportedSessionJson>,
}

struct Gathered {
    user: User,
    entries: Vec<Entry>,
    sessions: Vec<Session>,
}

async fn gather(
    backends: &Backends,
    context: &RequestContext,
    id: &str,
) -> Result<Gathered, AppError> {
    let timeout = backends.timeout;
    let mut users = backends.users.clone();
    let user = unary(
        context,
        timeout,
        users.get_user(context.request(
            GetUserRequest {
                id: id.to_owned(),
                as_of: None,
            },
            timeout,
        )),
    )
    .await?;
    let mut diary = backends.diary.clone();
    let mut entries = Vec::new();
    let mut cursor = String::new();
    loop {
        let request = ListEntriesByUserRequest {
            user_id: id.to_owned(),
            limit: PAGE,
            cursor: cursor.clone(),
            ..Default::default()
        };
        let page = unary(
            context,
            timeout,
            diary.list_entries_by_user(context.request(request, timeout)),
        )
        .await?;
        for listed in page.entries {
            // Read by id: with its analysis, as it is now.
            let request = GetEntryRequest {
                id: listed.id.clone(),
                as_of: None,
            };
            match unary(
                context,
                timeout,
                diary.get_entry(context.request(request, timeout)),
            )
            .await
            {
                Ok(entry) => entries.push(entry),
                // Deleted since it was listed.
                Err(AppError(e)) if e.code == metachat_proto::error::ErrorCode::NotFound => {}
                Err(e) => return Err(e),
            }
        }
        if page.next_cursor.is_empty() {
            break;
        }
        cursor = page.next_cursor;
    }
    let mut sessions = Vec::new();
    let mut cursor = String::new();
    loop {
        let request = ListSessionsByUserRequest {
            user_id: id.to_owned(),
            limit: PAGE,
            cursor: cursor.clone(),
            ..Default::default()
        };
        let page = unary(
            context,
            timeout,
            diary.list_sessions_by_user(context.request(request, timeout)),
        )
        .await?;
        sessions.extend(page.sessions);
        if page.next_cursor.is_empty() {
            break;
        }
        cursor = page.next_cursor;
    }
    Ok(Gathered {
        user,
        entries,
        sessions,
    })
}

/// Export a user's data (JSON)
///
/// Everything of the user they may read: the profile, its event history, the analysis
/// setting, every live entry (with its analysis) and session, each with every event of its
/// stream, so earlier versions of an entry's text are in it too.
#[utoipa::path(get, path = "/users/{id}/export", tag = "Users", operation_id = "exportUser",
    params(UserIdPath),
    responses((status = 200, description = "The user's data.", body = ExportJson),
        BadRequest, NotFound, Limits, Backend))]
pub(crate) async fn export_json(
    State(backends): State<Backends>,
    context: RequestContext,
    PathId(id): PathId,
) -> Result<Response, AppError> {
    let gathered = gather(&backends, &context, &id).await?;
    let timeout = backends.timeout;
    let mut users = backends.users.clone();
    let user_history = unary(
        &context,
        timeout,
        users.get_user_history(context.request(HistoryRequest { id: id.clone() }, timeout)),
    )
    .await?;
    let mut diary = backends.diary.clone();
    let analysis = unary(
        &context,
        timeout,
        diary.get_analysis_setting(context.request(
            GetAnalysisSettingRequest {
                user_id: id.clone(),
            },
            timeout,
        )),
    )
    .await?;
    let mut entries = Vec::with_capacity(gathered.entries.len());
    for entry in gathered.entries {
        let request = HistoryRequest {
            id: entry.id.clone(),
        };
        let history = unary(
            &context,
            timeout,
            diary.get_entry_history(context.request(request, timeout)),
        )
        .await?;
        entries.push(ExportedEntryJson {
            entry: EntryJson::from(entry),
            history: HistoryJson::new(history),
        });
    }
    let mut sessions = Vec::with_capacity(gathered.sessions.len());
    for session in gathered.sessions {
        let request = HistoryRequest {
            id: session.id.clone(),
        };
        let history = unary(
            &context,
            timeout,
            diary.get_session_history(context.request(request, timeout)),
        )
        .await?;
        sessions.push(ExportedSessionJson {
            session: SessionJson::from(session),
            history: HistoryJson::new(history),
        });
    }
    let body = ExportJson {
        format: "metachat-export-1",
        exported_at: chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Micros, true),
        user: UserJson::from(gathered.user),
        user_history: HistoryJson::new(user_history),
        analysis: AnalysisSettingJson::from(analysis),
        entries,
        sessions,
    };
    let filename = format!("attachment; filename=\"metachat-{id}.json\"");
    let mut response = Json(body).into_response();
    if let Ok(value) = header::HeaderValue::from_str(&filename) {
        response
            .headers_mut()
            .insert(header::CONTENT_DISPOSITION, value);
    }
    Ok(response)
}

/// Export a user's diary (Markdown)
///
/// The user's live entries, oldest first, as one Markdown document: a heading per entry with
/// when it was written and its title, its tags, then its text as written.
#[utoipa::path(get, path = "/users/{id}/export.md", tag = "Users", operation_id = "exportDiaryMarkdown",
    params(UserIdPath),
    responses((status = 200, description = "The diary.", content_type = "text/markdown",
        body = String), BadRequest, NotFound, Limits, Backend))]
pub(crate) async fn export_markdown(
    State(backends): State<Backends>,
    context: RequestContext,
    PathId(id): PathId,
) -> Result<Response, AppError> {
    let gathered = gather(&backends, &context, &id).await?;
    let markdown = markdown(&gathered.user, &gathered.entries);
    let filename = format!("attachment; filename=\"metachat-{id}.md\"");
    let mut response = (
        [(header::CONTENT_TYPE, "text/markdown; charset=utf-8")],
        markdown,
    )
        .into_response();
    if let Ok(value) = header::HeaderValue::from_str(&filename) {
        response
            .headers_mut()
            .insert(header::CONTENT_DISPOSITION, value);
    }
    Ok(response)
}

/// The diary as Markdown, oldest entry first.
fn markdown(user: &User, entries: &[Entry]) -> String {
    let mut out = format!(
        "# The diary of {} {} (@{})\n\n{} entries, exported {}.\n",
        user.first_name,
        user.last_name,
        user.username,
        entries.len(),
        chrono::Utc::now().format("%Y-%m-%d %H:%M UTC"),
    );
    for entry in entries.iter().rev() {
        let when = format_optional(entry.created_at.as_ref()).unwrap_or_default();
        let title = entry.title.trim();
        out.push_str(&format!(
            "\n---\n\n## {when}{}\n\n",
            if title.is_empty() {
                String::new()
            } else {
                format!(" · {title}")
            }
        ));
        if !entry.tags.is_empty() {
            out.push_str(&format!("*Tags: {}*\n\n", entry.tags.join(", ")));
        }
        out.push_str(entry.content.trim_end());
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_markdown_lists_entries_oldest_first_with_their_text() {
        let user = User {
            first_name: "Ana".into(),
            last_name: "B".into(),
            username: "ana".into(),
            ..Default::default()
        };
        let entry = |title: &str, content: &str, at: i64| Entry {
            title: title.into(),
            content: content.into(),
            tags: vec!["walk".into()],
            created_at: Some(metachat_proto::Timestamp {
                seconds: at,
                nanos: 0,
            }),
            ..Default::default()
        };
        // Newest first, as lists give them.
        let text = markdown(
            &user,
            &[
                entry("", "Second.", 1_700_000_100),
                entry("First", "One.\n\nTwo.", 1_700_000_000),
            ],
        );
        assert!(
            text.starts_with("# The diary of Ana B (@ana)\n\n2 entries"),
            "{text}"
        );
        let first = text.find("First").unwrap();
        let second = text.find("Second.").unwrap();
        assert!(first < second, "{text}");
        assert!(text.contains("One.\n\nTwo.\n"));
        assert!(text.contains("*Tags: walk*"));
        assert!(text.contains("## 2023-11-14T22:13:20Z · First"), "{text}");
    }
}
