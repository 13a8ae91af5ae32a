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
    /// The inferred archetype and modalities were removed (the user switched analysis off,
    /// or too little writing is left to infer from). Explicit values stay.
    InferredProfileCleared(InferredProfileCleared),
    /// The user was erased: their key is deleted, so nothing they wrote or said about
    /// themselves can be read again, and the read models drop them. Nothing is stored of
    /// them after it.
    UserErased(UserErased),
}

impl DomainEvent for UserEvent {}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct UserErased {
    pub user_id: UserId,
}

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
    /// Present when the platform inferred it from the user's writing (a client's
    /// assignment has none): what it was inferred from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub inferred: Option<Inference>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ModalitiesUpdated {
    pub modalities: BTreeMap<String, f64>,
    /// Present when the platform inferred them from the user's writing.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub inferred: Option<Inference>,
}

/// How an inferred value was reached.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Inference {
    /// The measured features behind it, strongest part first.
    pub evidence: Vec<Evidence>,
    pub basis: InferenceBasis,
    /// For modalities: the sensory words' share of all words analysed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub coverage: Option<f64>,
}

/// One measured feature behind an inference.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Evidence {
    pub feature: String,
    pub value: f64,
    pub strength: f64,
    pub weight: f64,
    pub words: Vec<String>,
}

/// The writing an inference was computed from.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct InferenceBasis {
    /// Entries analysed, and their English words.
    pub entries: u32,
    pub words: u64,
    /// The days of writing looked at, ending when it was inferred.
    pub window_days: u32,
    pub analyzer_version: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct InferredProfileCleared {
    /// `analysisSwitchedOff` or `insufficientText`.
    pub reason: String,
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
    /// The claimant was erased: the username is free again.
    UsernameReleased {
        #[serde(rename = "userId")]
        user_id: UserId,
    },
    /// The claimant was erased: the e-mail address is free again.
    EmailReleased {
        #[serde(rename = "userId")]
        user_id: UserId,
    },
}

impl ClaimEvent {
    /// The user holding the claim after this event: `None` after a release.
    pub fn holder(&self) -> Option<UserId> {
        match self {
            Self::UsernameClaimed { user_id } | Self::EmailClaimed { user_id } => Some(*user_id),
            Self::UsernameReleased { .. } | Self::EmailReleased { .. } => None,
        }
    }
}

impl DomainEvent for ClaimEvent {}
