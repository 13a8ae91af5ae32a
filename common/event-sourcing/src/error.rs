use uuid::Uuid;

use crate::event::ExpectedVersion;

/// Why the event store refused or failed an operation.
#[derive(Debug, thiserror::Error)]
pub enum EventStoreError {
    /// Optimistic concurrency: the stream is not at the version the writer expected. Nothing of
    /// the write was stored. Reload the aggregate and decide again.
    #[error("stream {stream_id} was expected at {expected} but is at {}", describe_version(*.actual))]
    WrongExpectedVersion {
        /// Which write of the batch conflicted: its index in the `Vec<StreamWrite>` given to
        /// [`EventStore::append_streams`](crate::EventStore::append_streams) (0 for a
        /// single-stream `append`).
        write: usize,
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
    /// The data subject of an event to append was erased ([`crate::personal`]): nothing more
    /// is stored of them.
    #[error("the data subject {subject} was erased")]
    SubjectErased { subject: String },
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

    /// True when the operation failed before anything reached the server: no connection could
    /// be had (the pool timed out or is closed, the connection was refused, or the store knew
    /// the server was down and did not try). A write that failed so was certainly not stored.
    pub fn is_unsent(&self) -> bool {
        match self {
            Self::Backend(sqlx::Error::PoolTimedOut | sqlx::Error::PoolClosed) => true,
            Self::Backend(sqlx::Error::Io(e)) => matches!(
                e.kind(),
                std::io::ErrorKind::NotConnected | std::io::ErrorKind::ConnectionRefused
            ),
            _ => false,
        }
    }

    /// True when the storage is unreachable or busy, not broken: a later retry may succeed.
    pub fn is_unavailable(&self) -> bool {
        match self {
            Self::Backend(
                sqlx::Error::PoolTimedOut
                | sqlx::Error::PoolClosed
                | sqlx::Error::Io(_)
                | sqlx::Error::Tls(_)
                | sqlx::Error::WorkerCrashed,
            ) => true,
            Self::Backend(sqlx::Error::Database(e)) => {
                e.code().as_deref().is_some_and(is_unavailable_code)
            }
            _ => false,
        }
    }
}

/// Database error codes meaning "busy or unreachable, try again later".
fn is_unavailable_code(code: &str) -> bool {
    match code {
        // SQLite: SQLITE_BUSY / SQLITE_LOCKED, another writer held the file too long.
        "5" | "6" => true,
        // PostgreSQL SQLSTATEs:
        // 08xxx connection exception; 53xxx insufficient resources (53300 too many
        // connections); 57P01 admin shutdown, 57P02 crash shutdown, 57P03 cannot connect now,
        // 57P05 idle session timeout; 57014 statement timeout or cancel; 55P03 lock timeout
        // (the append lock); 25P03 idle-in-transaction timeout; 40001 serialization failure
        // and 40P01 deadlock, both resolved by a retry.
        _ => {
            code.starts_with("08")
                || code.starts_with("53")
                || matches!(
                    code,
                    "57P01"
                        | "57P02"
                        | "57P03"
                        | "57P05"
                        | "57014"
                        | "55P03"
                        | "25P03"
                        | "40001"
                        | "40P01"
                )
        }
    }
}

pub type Result<T, E = EventStoreError> = std::result::Result<T, E>;

#[cfg(test)]
mod tests {
    use super::is_unavailable_code;

    #[test]
    fn busy_and_connection_codes_are_unavailable() {
        for code in [
            "5", "6", "08006", "53300", "57P01", "55P03", "25P03", "40001",
        ] {
            assert!(is_unavailable_code(code), "{code}");
        }
        // Unique violation, syntax error, undefined table, SQLite constraint: real failures.
        for code in ["23505", "42601", "42P01", "2067"] {
            assert!(!is_unavailable_code(code), "{code}");
        }
    }
}
