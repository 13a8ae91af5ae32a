//! The user events, exactly as the product names them.

use std::collections::BTreeMap;

use chrono::NaiveDate;
use event_sourcing::DomainEvent;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", content = "data")]
pub enum UserEvent {
    UserCreated(UserCreated),
    UserProfileUpdated(UserProfileUpdated),
    ArchetypeAssigned(ArchetypeSet),
    ArchetypeUpdated(ArchetypeSet),
    ModalitiesUpdated(ModalitiesUpdated),
}

impl DomainEvent for UserEvent {}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct UserCreated {
    pub user_id: String,
    pub username: String,
    pub email: String,
    pub first_name: String,
    pub last_name: String,
    pub date_of_birth: Option<NaiveDate>,
}

/// The whole profile after the update, so a reader needs no earlier event to show it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct UserProfileUpdated {
    pub first_name: String,
    pub last_name: String,
    pub date_of_birth: Option<NaiveDate>,
    pub avatar: Option<String>,
    pub bio: Option<String>,
}

/// The archetype after an assignment or an update.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ArchetypeSet {
    pub archetype_id: String,
    pub archetype_name: String,
    pub confidence: f64,
    pub description: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ModalitiesUpdated {
    pub modalities: BTreeMap<String, f64>,
}

/// Events of the uniqueness streams (`username-<key>`, `email-<key>`): the first claim of a
/// key wins because a claim is appended with "no stream" expected.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", content = "data")]
pub enum ClaimEvent {
    UsernameClaimed {
        #[serde(rename = "userId")]
        user_id: String,
    },
    EmailClaimed {
        #[serde(rename = "userId")]
        user_id: String,
    },
}

impl DomainEvent for ClaimEvent {}
