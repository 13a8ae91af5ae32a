//! Protobuf messages to the JSON the API promises (camelCase, RFC 3339 UTC, `null` for absent).

use std::collections::BTreeMap;

use metachat_proto::common::{EventHistory, StoredEvent};
use metachat_proto::{diary, user};
use serde::Serialize;
use serde_json::Value;

use crate::time::{format_optional, format_timestamp};

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct UserJson {
    id: String,
    username: String,
    email: String,
    first_name: String,
    last_name: String,
    date_of_birth: Option<String>,
    avatar: Option<String>,
    bio: Option<String>,
    archetype: Option<ArchetypeJson>,
    modalities: Option<BTreeMap<String, f64>>,
    created_at: Option<String>,
    updated_at: Option<String>,
    version: u64,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct ArchetypeJson {
    archetype_id: String,
    archetype_name: String,
    confidence: f64,
    description: String,
    assigned_at: Option<String>,
    updated_at: Option<String>,
}

impl From<user::User> for UserJson {
    fn from(user: user::User) -> Self {
        Self {
            id: user.id,
            username: user.username,
            email: user.email,
            first_name: user.first_name,
            last_name: user.last_name,
            date_of_birth: user.date_of_birth,
            avatar: user.avatar,
            bio: user.bio,
            archetype: user.archetype.map(|a| ArchetypeJson {
                assigned_at: format_optional(a.assigned_at.as_ref()),
                updated_at: format_optional(a.updated_at.as_ref()),
                archetype_id: a.archetype_id,
                archetype_name: a.archetype_name,
                confidence: a.confidence,
                description: a.description,
            }),
            modalities: user.modalities.map(|m| m.weights.into_iter().collect()),
            created_at: format_optional(user.created_at.as_ref()),
            updated_at: format_optional(user.updated_at.as_ref()),
            version: user.version,
        }
    }
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct UserListJson {
    users: Vec<UserJson>,
    page: u32,
    limit: u32,
    total: u64,
    has_more: bool,
    /// Pass as `cursor` to get the next page; `null` on the last page.
    next_cursor: Option<String>,
}

impl From<user::ListUsersResponse> for UserListJson {
    fn from(list: user::ListUsersResponse) -> Self {
        Self {
            users: list.users.into_iter().map(UserJson::from).collect(),
            page: list.page,
            limit: list.limit,
            total: list.total,
            has_more: list.has_more,
            next_cursor: (!list.next_cursor.is_empty()).then_some(list.next_cursor),
        }
    }
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct EntryJson {
    id: String,
    user_id: String,
    title: String,
    content: String,
    token_count: u32,
    session_id: Option<String>,
    tags: Vec<String>,
    created_at: Option<String>,
    updated_at: Option<String>,
    version: u64,
}

impl From<diary::Entry> for EntryJson {
    fn from(entry: diary::Entry) -> Self {
        Self {
            created_at: format_optional(entry.created_at.as_ref()),
            updated_at: format_optional(entry.updated_at.as_ref()),
            id: entry.id,
            user_id: entry.user_id,
            title: entry.title,
            content: entry.content,
            token_count: entry.token_count,
            session_id: entry.session_id,
            tags: entry.tags,
            version: entry.version,
        }
    }
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct EntryListJson {
    entries: Vec<EntryJson>,
    page: u32,
    limit: u32,
    has_more: bool,
    /// Pass as `cursor` to get the next page; `null` on the last page.
    next_cursor: Option<String>,
}

impl From<diary::ListEntriesResponse> for EntryListJson {
    fn from(list: diary::ListEntriesResponse) -> Self {
        Self {
            entries: list.entries.into_iter().map(EntryJson::from).collect(),
            page: list.page,
            limit: list.limit,
            has_more: list.has_more,
            next_cursor: (!list.next_cursor.is_empty()).then_some(list.next_cursor),
        }
    }
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct DeletedJson {
    id: String,
    deleted_at: Option<String>,
    /// The entry's version after the deletion (the version of its consistency token).
    version: u64,
}

impl From<diary::DeleteEntryResponse> for DeletedJson {
    fn from(deleted: diary::DeleteEntryResponse) -> Self {
        Self {
            deleted_at: format_optional(deleted.deleted_at.as_ref()),
            id: deleted.id,
            version: deleted.version,
        }
    }
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct SessionJson {
    id: String,
    user_id: String,
    start_time: Option<String>,
    end_time: Option<String>,
    status: String,
    duration_minutes: f64,
    created_at: Option<String>,
    updated_at: Option<String>,
    version: u64,
}

impl From<diary::Session> for SessionJson {
    fn from(session: diary::Session) -> Self {
        Self {
            start_time: format_optional(session.start_time.as_ref()),
            end_time: format_optional(session.end_time.as_ref()),
            created_at: format_optional(session.created_at.as_ref()),
            updated_at: format_optional(session.updated_at.as_ref()),
            id: session.id,
            user_id: session.user_id,
            status: session.status,
            duration_minutes: session.duration_minutes,
            version: session.version,
        }
    }
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct SessionListJson {
    sessions: Vec<SessionJson>,
    page: u32,
    limit: u32,
    has_more: bool,
    /// Pass as `cursor` to get the next page; `null` on the last page.
    next_cursor: Option<String>,
}

impl From<diary::ListSessionsResponse> for SessionListJson {
    fn from(list: diary::ListSessionsResponse) -> Self {
        Self {
            sessions: list.sessions.into_iter().map(SessionJson::from).collect(),
            page: list.page,
            limit: list.limit,
            has_more: list.has_more,
            next_cursor: (!list.next_cursor.is_empty()).then_some(list.next_cursor),
        }
    }
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct AnalyticsJson {
    user_id: String,
    period: String,
    period_start: Option<String>,
    period_end: Option<String>,
    entry_count: u32,
    session_count: u32,
    total_session_minutes: f64,
    average_session_minutes: f64,
    total_tokens: u64,
    tag_frequencies: Vec<TagCountJson>,
    entries_per_day: Vec<DayCountJson>,
}

#[derive(Debug, Serialize)]
pub(crate) struct TagCountJson {
    tag: String,
    count: u32,
}

#[derive(Debug, Serialize)]
pub(crate) struct DayCountJson {
    date: String,
    entries: u32,
}

impl From<diary::Analytics> for AnalyticsJson {
    fn from(a: diary::Analytics) -> Self {
        Self {
            period_start: format_optional(a.period_start.as_ref()),
            period_end: format_optional(a.period_end.as_ref()),
            user_id: a.user_id,
            period: a.period,
            entry_count: a.entry_count,
            session_count: a.session_count,
            total_session_minutes: a.total_session_minutes,
            average_session_minutes: a.average_session_minutes,
            total_tokens: a.total_tokens,
            tag_frequencies: a
                .tag_frequencies
                .into_iter()
                .map(|t| TagCountJson {
                    tag: t.tag,
                    count: t.count,
                })
                .collect(),
            entries_per_day: a
                .entries_per_day
                .into_iter()
                .map(|d| DayCountJson {
                    date: d.date,
                    entries: d.entries,
                })
                .collect(),
        }
    }
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct HistoryJson {
    stream_id: String,
    events: Vec<EventJson>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct EventJson {
    event_id: String,
    event_type: String,
    schema_version: u32,
    stream_id: String,
    version: u64,
    position: u64,
    recorded_at: Option<String>,
    data: Value,
    metadata: EventMetadataJson,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct EventMetadataJson {
    correlation_id: Option<String>,
    causation_id: Option<String>,
    request_id: Option<String>,
    actor: Option<String>,
}

impl HistoryJson {
    /// The history of `stream_id` (used when the service returns no events to take it from).
    pub(crate) fn new(stream_id: String, history: EventHistory) -> Self {
        let stream_id = history
            .events
            .first()
            .map(|e| e.stream_id.clone())
            .filter(|id| !id.is_empty())
            .unwrap_or(stream_id);
        Self {
            stream_id,
            events: history.events.into_iter().map(EventJson::from).collect(),
        }
    }
}

impl From<StoredEvent> for EventJson {
    fn from(event: StoredEvent) -> Self {
        let data = serde_json::from_str(&event.payload_json).unwrap_or_else(|_| {
            // A payload the service stored must be JSON; show it rather than fail the history.
            tracing::warn!(event_id = %event.event_id, "event payload is not JSON");
            Value::String(event.payload_json.clone())
        });
        let metadata = event.metadata.unwrap_or_default();
        Self {
            recorded_at: event.recorded_at.as_ref().and_then(format_timestamp),
            event_id: event.event_id,
            event_type: event.event_type,
            schema_version: event.schema_version,
            stream_id: event.stream_id,
            version: event.stream_version,
            position: event.position,
            data,
            metadata: EventMetadataJson {
                correlation_id: metadata.correlation_id,
                causation_id: metadata.causation_id,
                request_id: metadata.request_id,
                actor: metadata.actor,
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use metachat_proto::Timestamp;
    use serde_json::json;

    use super::*;

    #[test]
    fn a_user_renders_with_nulls_and_utc_timestamps() {
        let user = user::User {
            id: "u1".into(),
            username: "johndoe".into(),
            email: "john@example.com".into(),
            first_name: "John".into(),
            last_name: "Doe".into(),
            date_of_birth: Some("1990-01-01".into()),
            modalities: Some(user::Modalities {
                weights: [("visual".to_owned(), 0.8)].into_iter().collect(),
                updated_at: None,
            }),
            created_at: Some(Timestamp {
                seconds: 1_672_567_200,
                nanos: 0,
            }),
            version: 3,
            ..Default::default()
        };
        let value = serde_json::to_value(UserJson::from(user)).unwrap();
        assert_eq!(
            value,
            json!({
                "id": "u1", "username": "johndoe", "email": "john@example.com",
                "firstName": "John", "lastName": "Doe", "dateOfBirth": "1990-01-01",
                "avatar": null, "bio": null, "archetype": null,
                "modalities": {"visual": 0.8},
                "createdAt": "2023-01-01T10:00:00Z", "updatedAt": null, "version": 3
            })
        );
    }

    #[test]
    fn an_event_carries_its_payload_as_json() {
        let history = EventHistory {
            events: vec![StoredEvent {
                event_id: "e1".into(),
                event_type: "UserCreated".into(),
                schema_version: 1,
                stream_id: "user-u1".into(),
                stream_version: 1,
                position: 7,
                recorded_at: Some(Timestamp {
                    seconds: 1_672_567_200,
                    nanos: 500_000_000,
                }),
                payload_json: r#"{"username":"johndoe"}"#.into(),
                metadata: None,
            }],
        };
        let value = serde_json::to_value(HistoryJson::new("user-x".into(), history)).unwrap();
        assert_eq!(value["streamId"], "user-u1");
        assert_eq!(value["events"][0]["data"], json!({"username": "johndoe"}));
        assert_eq!(value["events"][0]["recordedAt"], "2023-01-01T10:00:00.500Z");
        assert_eq!(value["events"][0]["metadata"]["actor"], Value::Null);
        assert_eq!(value["events"][0]["version"], 1);
    }
}
