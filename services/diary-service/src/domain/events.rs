//! The diary events, exactly as the product names them.

use chrono::{DateTime, Utc};
use event_sourcing::DomainEvent;
use metachat_validation::{EntryId, SessionId, UserId};
use serde::{Deserialize, Serialize};

use super::entry::Tag;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", content = "data")]
pub enum EntryEvent {
    DiaryEntryCreated(DiaryEntryCreated),
    DiaryEntryUpdated(DiaryEntryUpdated),
    DiaryEntryDeleted(DiaryEntryDeleted),
}

impl DomainEvent for EntryEvent {}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DiaryEntryCreated {
    pub entry_id: EntryId,
    pub user_id: UserId,
    pub title: String,
    pub content: String,
    pub token_count: u32,
    pub session_id: Option<SessionId>,
    pub tags: Vec<Tag>,
}

/// The entry's editable fields after the update.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DiaryEntryUpdated {
    pub user_id: UserId,
    pub title: String,
    pub content: String,
    pub token_count: u32,
    pub tags: Vec<Tag>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DiaryEntryDeleted {
    pub user_id: UserId,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", content = "data")]
pub enum SessionEvent {
    DiarySessionStarted(DiarySessionStarted),
    /// An entry was written in the session. Recorded in the session's stream so that ending
    /// the session and writing in it are ordered: an end decided before an entry was stored
    /// conflicts and is decided again, so no entry is created after its session's end.
    DiarySessionEntryAdded(DiarySessionEntryAdded),
    DiarySessionEnded(DiarySessionEnded),
}

impl DomainEvent for SessionEvent {}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DiarySessionStarted {
    pub session_id: SessionId,
    pub user_id: UserId,
    pub start_time: DateTime<Utc>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DiarySessionEntryAdded {
    pub entry_id: EntryId,
    pub user_id: UserId,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DiarySessionEnded {
    pub user_id: UserId,
    pub end_time: DateTime<Utc>,
}
