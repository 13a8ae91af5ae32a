//! Signing in: a user's password (as an argon2id hash, in `credentials-<userId>`) and each
//! sign-in (in `signin-<id>`: its refresh token's digest, rotated on every refresh, and its
//! end). Neither category is published to Kafka, and no route shows their events.

use chrono::{DateTime, Utc};
use event_sourcing::DomainEvent;
use metachat_validation::UserId;
use serde::{Deserialize, Serialize};

/// The stream categories.
pub const CREDENTIALS_CATEGORY: &str = "credentials";
pub const SIGN_IN_CATEGORY: &str = "signin";

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", content = "data")]
pub enum CredentialEvent {
    /// The PHC string of an argon2id hash of the password.
    PasswordSet {
        #[serde(rename = "userId")]
        user_id: UserId,
        #[serde(rename = "passwordHash")]
        password_hash: String,
    },
}

impl DomainEvent for CredentialEvent {}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", content = "data")]
pub enum SignInEvent {
    SignedIn {
        #[serde(rename = "userId")]
        user_id: UserId,
        /// SHA-256 of the refresh token's secret, hex.
        #[serde(rename = "refreshDigest")]
        refresh_digest: String,
        #[serde(rename = "expiresAt")]
        expires_at: DateTime<Utc>,
    },
    /// The refresh token was exchanged for a new one.
    TokenRefreshed {
        #[serde(rename = "refreshDigest")]
        refresh_digest: String,
        #[serde(rename = "expiresAt")]
        expires_at: DateTime<Utc>,
    },
    /// Signed out, or ended because a refresh token was used twice (stolen).
    SignedOut { reason: String },
}

impl DomainEvent for SignInEvent {}

/// A sign-in as its events leave it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignIn {
    pub user_id: UserId,
    /// The digest of the one refresh token that is valid now.
    pub current: String,
    /// Digests of refresh tokens already exchanged: presenting one again ends the sign-in.
    pub spent: Vec<String>,
    pub expires_at: DateTime<Utc>,
    pub ended: Option<String>,
    /// When the sign-in was recorded (set from the store; the events do not carry it).
    pub signed_in_at: DateTime<Utc>,
}

impl SignIn {
    /// The sign-in its events make; `None` without a `SignedIn` first.
    pub fn replay(events: &[SignInEvent]) -> Option<Self> {
        let mut events = events.iter();
        let Some(SignInEvent::SignedIn {
            user_id,
            refresh_digest,
            expires_at,
        }) = events.next()
        else {
            return None;
        };
        let mut state = Self {
            user_id: *user_id,
            current: refresh_digest.clone(),
            spent: Vec::new(),
            expires_at: *expires_at,
            ended: None,
            signed_in_at: DateTime::<Utc>::MIN_UTC,
        };
        for event in events {
            match event {
                SignInEvent::SignedIn { .. } => {}
                SignInEvent::TokenRefreshed {
                    refresh_digest,
                    expires_at,
                } => {
                    let old = std::mem::replace(&mut state.current, refresh_digest.clone());
                    state.spent.push(old);
                    state.expires_at = *expires_at;
                }
                SignInEvent::SignedOut { reason } => state.ended = Some(reason.clone()),
            }
        }
        Some(state)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refreshes_rotate_and_remember_spent_tokens() {
        let user_id = UserId::new();
        let at = Utc::now();
        let events = vec![
            SignInEvent::SignedIn {
                user_id,
                refresh_digest: "a".into(),
                expires_at: at,
            },
            SignInEvent::TokenRefreshed {
                refresh_digest: "b".into(),
                expires_at: at,
            },
            SignInEvent::TokenRefreshed {
                refresh_digest: "c".into(),
                expires_at: at,
            },
        ];
        let state = SignIn::replay(&events).unwrap();
        assert_eq!(state.current, "c");
        assert_eq!(state.spent, vec!["a".to_owned(), "b".to_owned()]);
        assert_eq!(state.ended, None);
        assert_eq!(SignIn::replay(&events[1..]), None);
    }
}
