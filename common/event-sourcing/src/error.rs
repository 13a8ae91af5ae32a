use uuid::Uuid;

use crate::event::ExpectedVersion;

/// Why the event store refused or failed an operation.
#[derive(Debug, thiserror::Error)]
pub enum EventStoreError {
    /// Optimistic concurrency: the stream is not at the version the writer expected. Nothing of
    /// the write was stored. Reload the aggregate and decide again.
    #[error("stream {stream_id} was expected at {expected} but is at {}", describe_version(*.actual))]
    WrongExpectedVersion {
        stream_id: String,
        expected: ExpectedVersion,
        /// `None` when the stream does not exist.
        actual: Option<u64>,
    },
    /// An event id that is already stored was sent again with other events or to another
    /// place, so the write is neither new nor a clean retry.
    #[error("event {event_id} is already stored elsewhere; a retry must resend the same batch")]
    EventIdReused { event_id: Uuid },
    /// The write itself is malformed (for example an empty stream id).
    #[error("invalid write: {0}")]
    InvalidWrite(String),
    /// A stored payload could not be encoded or decoded.
    #[error("event payload codec: {0}")]
    Codec(String),
    /// The backend failed (I/O, connection, constraint the store did not expect).
    #[error("event store backend: {0}")]
    Backend(#[from] sqlx::Error),
}

fn describe_version(actual: Option<u64>) -> String {
    match actual {
        Some(v) => format!("version {v}"),
        None => "no stream".to_owned(),
    }
}

impl EventStoreError {
    /// True for errors that a retry after re-reading state can resolve.
    pub fn is_conflict(&self) -> bool {
        matches!(self, Self::WrongExpectedVersion { .. })
    }

    /// True when the storage is unreachable or busy, not broken: a later retry may succeed.
    pub fn is_unavailable(&self) -> bool {
        match self {
            Self::Backend(
                sqlx::Error::PoolTimedOut | sqlx::Error::PoolClosed | sqlx::Error::Io(_),
            ) => true,
            Self::Backend(sqlx::Error::Database(e)) => {
                // SQLITE_BUSY / SQLITE_LOCKED: another writer held the file too long.
                matches!(e.code().as_deref(), Some("5" | "6"))
            }
            _ => false,
        }
    }
}

pub type Result<T, E = EventStoreError> = std::result::Result<T, E>;
