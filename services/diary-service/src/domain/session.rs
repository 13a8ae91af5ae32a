//! The writing session aggregate.

use chrono::{DateTime, Duration, Utc};
use event_sourcing::Aggregate;
use metachat_validation::Violations;

use super::events::{DiarySessionEnded, DiarySessionStarted, SessionEvent};

/// How far ahead of the server's clock a client's time may be (clock skew).
const FUTURE_TOLERANCE_MINUTES: i64 = 5;

#[derive(Debug, Clone, Default, PartialEq)]
pub struct Session {
    pub id: String,
    pub user_id: String,
    pub start_time: Option<DateTime<Utc>>,
    pub end_time: Option<DateTime<Utc>>,
}

impl Session {
    pub fn exists(&self) -> bool {
        !self.id.is_empty()
    }

    pub fn is_active(&self) -> bool {
        self.exists() && self.end_time.is_none()
    }

    /// Minutes between start and end; 0 while active.
    pub fn duration_minutes(&self) -> f64 {
        match (self.start_time, self.end_time) {
            (Some(start), Some(end)) => (end - start).num_milliseconds() as f64 / 60_000.0,
            _ => 0.0,
        }
    }
}

#[derive(Debug, Clone)]
pub enum SessionCommand {
    Start {
        session_id: String,
        /// An existing user (the service checks before deciding).
        user_id: String,
        start_time: Option<DateTime<Utc>>,
        now: DateTime<Utc>,
    },
    End {
        end_time: Option<DateTime<Utc>>,
        now: DateTime<Utc>,
    },
}

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum SessionError {
    #[error("{0}")]
    Invalid(Violations),
    #[error("diary session not found")]
    NotFound,
    #[error("diary session already exists")]
    AlreadyExists,
    #[error("the session has already ended")]
    AlreadyEnded,
}

fn not_in_future(v: &mut Violations, field: &str, time: DateTime<Utc>, now: DateTime<Utc>) {
    if time > now + Duration::minutes(FUTURE_TOLERANCE_MINUTES) {
        v.add(field, "must not be in the future");
    }
}

impl Aggregate for Session {
    const CATEGORY: &'static str = "session";
    type Event = SessionEvent;
    type Command = SessionCommand;
    type Error = SessionError;

    fn apply(&mut self, event: &SessionEvent) {
        match event {
            SessionEvent::DiarySessionStarted(e) => {
                *self = Session {
                    id: e.session_id.clone(),
                    user_id: e.user_id.clone(),
                    start_time: Some(e.start_time),
                    end_time: None,
                };
            }
            SessionEvent::DiarySessionEnded(e) => self.end_time = Some(e.end_time),
        }
    }

    fn decide(&self, command: &SessionCommand) -> Result<Vec<SessionEvent>, SessionError> {
        match command {
            SessionCommand::Start { .. } if self.exists() => Err(SessionError::AlreadyExists),
            SessionCommand::Start {
                session_id,
                user_id,
                start_time,
                now,
            } => {
                let start_time = start_time.unwrap_or(*now);
                let mut v = Violations::new();
                not_in_future(&mut v, "startTime", start_time, *now);
                v.finish(vec![SessionEvent::DiarySessionStarted(
                    DiarySessionStarted {
                        session_id: session_id.clone(),
                        user_id: user_id.clone(),
                        start_time,
                    },
                )])
                .map_err(SessionError::Invalid)
            }
            SessionCommand::End { .. } if !self.exists() => Err(SessionError::NotFound),
            SessionCommand::End { .. } if self.end_time.is_some() => {
                Err(SessionError::AlreadyEnded)
            }
            SessionCommand::End { end_time, now } => {
                let end_time = end_time.unwrap_or(*now);
                let mut v = Violations::new();
                not_in_future(&mut v, "endTime", end_time, *now);
                if self.start_time.is_some_and(|start| end_time < start) {
                    v.add("endTime", "must not be before the session's startTime");
                }
                v.finish(vec![SessionEvent::DiarySessionEnded(DiarySessionEnded {
                    user_id: self.user_id.clone(),
                    end_time,
                })])
                .map_err(SessionError::Invalid)
            }
        }
    }
}
