//! The user events, exactly as the product names them.

use std::collections::BTreeMap;

use chrono::NaiveDate;
use event_sourcing::DomainEvent;
use metachat_validation::UserId;
use serde::{Deserialize, Serialize};

use super::values::{Confidence, Email, Username};

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
    pub user_id: UserId,
    pub username: Username,
    pub email: Email,
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
    pub confidence: Confidence,
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
        user_id: UserId,
    },
    EmailClaimed {
        #[serde(rename = "userId")]
        user_id: UserId,
    },
}

impl DomainEvent for ClaimEvent {}
