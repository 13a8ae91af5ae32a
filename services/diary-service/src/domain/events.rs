//! The diary events, exactly as the product names them.

use chrono::{DateTime, Utc};
use event_sourcing::DomainEvent;
use serde::{Deserialize, Serialize};

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
    pub entry_id: String,
    pub user_id: String,
    pub title: String,
    pub content: String,
    pub token_count: u32,
    pub session_id: Option<String>,
    pub tags: Vec<String>,
}

/// The entry's editable fields after the update.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DiaryEntryUpdated {
    pub user_id: String,
    pub title: String,
    pub content: String,
    pub token_count: u32,
    pub tags: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DiaryEntryDeleted {
    pub user_id: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", content = "data")]
pub enum SessionEvent {
    DiarySessionStarted(DiarySessionStarted),
    DiarySessionEnded(DiarySessionEnded),
}

impl DomainEvent for SessionEvent {}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DiarySessionStarted {
    pub session_id: String,
    pub user_id: String,
    pub start_time: DateTime<Utc>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DiarySessionEnded {
    pub user_id: String,
    pub end_time: DateTime<Utc>,
}
