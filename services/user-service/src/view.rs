//! A user as the API shows it: the aggregate's state plus when things happened.

use chrono::{DateTime, Utc};
use event_sourcing::{Aggregate, RecordedEvent, decode_event};

use crate::domain::{User, UserEvent};

#[derive(Debug, Clone, PartialEq)]
pub struct UserView {
    pub user: User,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub version: u64,
    pub archetype_assigned_at: Option<DateTime<Utc>>,
    pub archetype_updated_at: Option<DateTime<Utc>>,
    pub modalities_updated_at: Option<DateTime<Utc>>,
}

impl UserView {
    /// Replays a user's stream (or a prefix of it, for a past state). `None` when the events
    /// do not start with the user's creation.
    pub fn replay(events: &[RecordedEvent]) -> event_sourcing::Result<Option<Self>> {
        let (Some(first), Some(last)) = (events.first(), events.last()) else {
            return Ok(None);
        };
        let mut view = UserView {
            user: User::default(),
            created_at: first.recorded_at,
            updated_at: last.recorded_at,
            version: last.stream_version,
            archetype_assigned_at: None,
            archetype_updated_at: None,
            modalities_updated_at: None,
        };
        for recorded in events {
            let event: UserEvent = decode_event(recorded)?;
            match &event {
                UserEvent::ArchetypeAssigned(_) => {
                    view.archetype_assigned_at = Some(recorded.recorded_at);
                    view.archetype_updated_at = Some(recorded.recorded_at);
                }
                UserEvent::ArchetypeUpdated(_) => {
                    view.archetype_updated_at = Some(recorded.recorded_at);
                }
                UserEvent::ModalitiesUpdated(_) => {
                    view.modalities_updated_at = Some(recorded.recorded_at);
                }
                UserEvent::UserCreated(_) | UserEvent::UserProfileUpdated(_) => {}
            }
            view.user.apply(&event);
        }
        Ok(view.user.exists().then_some(view))
    }
}
