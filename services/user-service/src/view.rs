//! A user as the API shows it: the registered user plus when they were created and last changed.

use chrono::{DateTime, Utc};
use event_sourcing::Loaded;

use crate::domain::{User, UserState};

#[derive(Debug, Clone, PartialEq)]
pub struct UserView {
    pub user: User,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub version: u64,
}

impl UserView {
    /// The view of a replayed user; `None` when the user is not registered (in that state).
    pub fn from_loaded(loaded: Loaded<UserState>) -> Option<Self> {
        let UserState::Registered(user) = loaded.state else {
            return None;
        };
        Some(Self {
            user,
            created_at: loaded.created_at?,
            updated_at: loaded.updated_at?,
            version: loaded.version?,
        })
    }
}
