//! The writing session aggregate.

use chrono::{DateTime, Duration, Utc};
use event_sourcing::Aggregate;
use metachat_proto::error::{ApiError, ErrorCode};
use metachat_validation::{EntryId, SessionId, UserId, Violations};

use super::events::{DiarySessionEnded, DiarySessionEntryAdded, DiarySessionStarted, SessionEvent};

/// How far ahead of the server's clock a client's time may be (clock skew).
pub(crate) const FUTURE_TOLERANCE_MINUTES: i64 = 5;

/// A writing session that has started.
#[derive(Debug, Clone, PartialEq)]
pub struct Session {
    pub id: SessionId,
    pub user_id: UserId,
    pub start_time: DateTime<Utc>,
    /// `None` while the session is active.
    pub end_time: Option<DateTime<Utc>>,
    /// The latest `createdAt` a client gave to an entry written in it (not kept by the read
    /// models).
    pub last_entry_at: Option<DateTime<Utc>>,
}

impl Session {
    pub fn is_active(&self) -> bool {
        self.end_time.is_none()
    }

    /// Minutes between start and end; 0 while active.
    pub fn duration_minutes(&self) -> f64 {
        match self.end_time {
            Some(end) => (end - self.start_time).num_milliseconds() as f64 / 60_000.0,
            None => 0.0,
        }
    }
}

/// The session aggregate: not started yet, or started (active or ended).
#[derive(Debug, Clone, Default, PartialEq)]
pub enum SessionState {
    #[default]
    Absent,
    Started(Session),
}

impl SessionState {
    pub fn session(&self) -> Option<&Session> {
        match self {
            Self::Absent => None,
            Self::Started(session) => Some(session),
        }
    }
}

#[derive(Debug, Clone)]
pub enum SessionCommand {
    Start {
        session_id: SessionId,
        /// A registered user: the application checks before deciding.
        user_id: UserId,
        start_time: Option<DateTime<Utc>>,
        now: DateTime<Utc>,
    },
    /// Records that an entry of the session's writer is written in it, `now`.
    AddEntry {
        entry_id: EntryId,
        user_id: UserId,
        now: DateTime<Utc>,
        /// When the entry was written, if the client said (not before the session's start).
        written_at: Option<DateTime<Utc>>,
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
    /// The session starts later (a start given slightly ahead of the server's clock).
    #[error("the session has not started yet (it starts at {0}); try again then")]
    NotStarted(DateTime<Utc>),
    /// Another user's session: reported as missing, its existence is private.
    #[error("diary session not found")]
    NotTheWriters,
}

/// Each refusal says its code once; the gRPC and HTTP statuses follow from the code table.
impl From<SessionError> for ApiError {
    fn from(error: SessionError) -> Self {
        let code = match error {
            SessionError::Invalid(violations) => return violations.into(),
            SessionError::NotFound | SessionError::NotTheWriters => ErrorCode::NotFound,
            SessionError::AlreadyExists => ErrorCode::AlreadyExists,
            SessionError::AlreadyEnded | SessionError::NotStarted(_) => {
                ErrorCode::FailedPrecondition
            }
        };
        ApiError::new(code, error.to_string())
    }
}

/// Adds a violation of `field` when `time` is later than `now` plus the tolerated clock skew.
pub(crate) fn not_in_future(
    v: &mut Violations,
    field: &str,
    time: DateTime<Utc>,
    now: DateTime<Utc>,
) {
    if time > now + Duration::minutes(FUTURE_TOLERANCE_MINUTES) {
        v.add(
            field,
            format!("must not be more than {FUTURE_TOLERANCE_MINUTES} minutes in the future"),
        );
    }
}

impl Aggregate for SessionState {
    const CATEGORY: &'static str = "session";
    type Id = SessionId;
    type Event = SessionEvent;
    type Command = SessionCommand;
    type Error = SessionError;

    fn apply(&mut self, event: &SessionEvent) {
        match (&mut *self, event) {
            (Self::Absent, SessionEvent::DiarySessionStarted(e)) => {
                *self = Self::Started(Session {
                    id: e.session_id,
                    user_id: e.user_id,
                    start_time: e.start_time,
                    end_time: None,
                    last_entry_at: None,
                });
            }
            (Self::Started(session), SessionEvent::DiarySessionEnded(e)) => {
                session.end_time = Some(e.end_time);
            }
            (Self::Started(session), SessionEvent::DiarySessionEntryAdded(e)) => {
                session.last_entry_at = session.last_entry_at.max(e.written_at);
            }
            // Events the rules never decide in this state change nothing.
            _ => {}
        }
    }

    fn decide(&self, command: &SessionCommand) -> Result<Vec<SessionEvent>, SessionError> {
        match (self, command) {
            (Self::Started(_), SessionCommand::Start { .. }) => Err(SessionError::AlreadyExists),
            (
                Self::Absent,
                SessionCommand::Start {
                    session_id,
                    user_id,
                    start_time,
                    now,
                },
            ) => {
                let start_time = start_time.unwrap_or(*now);
                let mut v = Violations::new();
                not_in_future(&mut v, "startTime", start_time, *now);
                v.finish(vec![SessionEvent::DiarySessionStarted(
                    DiarySessionStarted {
                        session_id: *session_id,
                        user_id: *user_id,
                        start_time,
                    },
                )])
                .map_err(SessionError::Invalid)
            }
            (Self::Absent, SessionCommand::End { .. } | SessionCommand::AddEntry { .. }) => {
                Err(SessionError::NotFound)
            }
            (Self::Started(session), SessionCommand::AddEntry { user_id, .. })
                if session.user_id != *user_id =>
            {
                Err(SessionError::NotTheWriters)
            }
            (Self::Started(session), SessionCommand::AddEntry { .. }) if !session.is_active() => {
                Err(SessionError::AlreadyEnded)
            }
            (Self::Started(session), SessionCommand::AddEntry { now, .. })
                if *now < session.start_time =>
            {
                Err(SessionError::NotStarted(session.start_time))
            }
            (
                Self::Started(session),
                SessionCommand::AddEntry {
                    written_at: Some(written_at),
                    ..
                },
            ) if *written_at < session.start_time => {
                let mut v = Violations::new();
                v.add("createdAt", "must not be before the session's startTime");
                Err(SessionError::Invalid(v))
            }
            (
                Self::Started(_),
                SessionCommand::AddEntry {
                    entry_id,
                    user_id,
                    written_at,
                    ..
                },
            ) => Ok(vec![SessionEvent::DiarySessionEntryAdded(
                DiarySessionEntryAdded {
                    entry_id: *entry_id,
                    user_id: *user_id,
                    written_at: *written_at,
                },
            )]),
            (Self::Started(session), SessionCommand::End { .. }) if !session.is_active() => {
                Err(SessionError::AlreadyEnded)
            }
            // Started a little ahead of the server's clock (within the tolerated skew): it can
            // end "now" only once now has reached its start.
            (
                Self::Started(session),
                SessionCommand::End {
                    end_time: None,
                    now,
                },
            ) if *now < session.start_time => Err(SessionError::NotStarted(session.start_time)),
            (Self::Started(session), SessionCommand::End { end_time, now }) => {
                // Without a time of the client's: now, or after the entry dated latest (a
                // few minutes ahead of the server's clock at most).
                let end_time =
                    end_time.unwrap_or_else(|| session.last_entry_at.map_or(*now, |t| t.max(*now)));
                let mut v = Violations::new();
                not_in_future(&mut v, "endTime", end_time, *now);
                if end_time < session.start_time {
                    v.add("endTime", "must not be before the session's startTime");
                } else if let Some(last) = session.last_entry_at.filter(|t| end_time < *t) {
                    v.add(
                        "endTime",
                        format!(
                            "must not be before the last entry written in the session ({})",
                            last.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true)
                        ),
                    );
                }
                v.finish(vec![SessionEvent::DiarySessionEnded(DiarySessionEnded {
                    user_id: session.user_id,
                    end_time,
                })])
                .map_err(SessionError::Invalid)
            }
        }
    }
}
