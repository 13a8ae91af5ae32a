//! What the read models of every domain share: how a page is asked for and returned, and how a
//! query fails.
//!
//! A page is asked for by number (`offset` = (page - 1) * limit) or by the cursor a previous
//! page returned. Cursors are opaque to clients; each backend encodes its own position in them
//! (an offset in SQLite, a paging state in Cassandra).

use chrono::{DateTime, TimeZone, Utc};
use event_sourcing::ProjectionError;

/// Which page of a query to return.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PageRequest {
    /// Rows to skip; ignored when `cursor` is set.
    pub offset: u64,
    pub limit: u32,
    /// Where the previous page ended, as that page's `next_cursor` said.
    pub cursor: Option<String>,
}

/// One page of results.
#[derive(Debug, Clone, PartialEq)]
pub struct Page<T> {
    pub items: Vec<T>,
    /// Where the next page starts; `None` on the last page.
    pub next_cursor: Option<String>,
}

impl<T> Page<T> {
    pub fn has_more(&self) -> bool {
        self.next_cursor.is_some()
    }

    pub fn map<U>(self, f: impl FnMut(T) -> U) -> Page<U> {
        Page {
            items: self.items.into_iter().map(f).collect(),
            next_cursor: self.next_cursor,
        }
    }
}

/// Why a read-model query failed.
#[derive(Debug, thiserror::Error)]
pub enum QueryError {
    /// The cursor was not one this read model issued.
    #[error("cursor is not valid for this query")]
    InvalidCursor,
    /// The read store failed or is unreachable.
    #[error("read model query failed: {0}")]
    Backend(ProjectionError),
}

impl From<ProjectionError> for QueryError {
    fn from(error: ProjectionError) -> Self {
        Self::Backend(error)
    }
}

impl From<sqlx::Error> for QueryError {
    fn from(error: sqlx::Error) -> Self {
        Self::Backend(Box::new(error))
    }
}

/// An instant stored as microseconds since the Unix epoch (as the read models keep them);
/// one out of chrono's range is a stored row that no event could have written.
pub fn time_from_micros(micros: i64) -> Result<DateTime<Utc>, ProjectionError> {
    Utc.timestamp_micros(micros)
        .single()
        .ok_or_else(|| format!("timestamp {micros} out of range").into())
}

/// Offset cursors, for stores that page by offset.
pub mod offset_cursor {
    use super::{PageRequest, QueryError};

    /// The offset a request starts at.
    pub fn start(request: &PageRequest) -> Result<u64, QueryError> {
        match &request.cursor {
            None => Ok(request.offset),
            Some(cursor) => cursor
                .strip_prefix("o")
                .and_then(|n| n.parse::<u64>().ok())
                // Offsets go to SQL as i64: a larger one was never issued.
                .filter(|n| i64::try_from(*n).is_ok())
                .ok_or(QueryError::InvalidCursor),
        }
    }

    /// The cursor of the page after one that started at `start` and had `limit` rows.
    pub fn next(start: u64, limit: u32) -> String {
        format!("o{}", start.saturating_add(u64::from(limit)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stored_micros_become_instants() {
        let instant = time_from_micros(1_672_567_200_123_456).unwrap();
        assert_eq!(instant.to_rfc3339(), "2023-01-01T10:00:00.123456+00:00");
        assert!(time_from_micros(i64::MAX).is_err());
    }

    #[test]
    fn offset_cursors_round_trip_and_reject_foreign_ones() {
        let first = PageRequest {
            offset: 20,
            limit: 10,
            cursor: None,
        };
        assert_eq!(offset_cursor::start(&first).unwrap(), 20);
        let next = PageRequest {
            cursor: Some(offset_cursor::next(20, 10)),
            ..first
        };
        assert_eq!(offset_cursor::start(&next).unwrap(), 30);
        for bad in ["30", "o-1", "oX", "", "o18446744073709551615"] {
            let request = PageRequest {
                cursor: Some(bad.into()),
                ..PageRequest::default()
            };
            assert!(
                matches!(
                    offset_cursor::start(&request),
                    Err(QueryError::InvalidCursor)
                ),
                "{bad}"
            );
        }
    }
}
