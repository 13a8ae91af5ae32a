//! What the read models of every domain share: how a page is asked for and returned, and how a
//! query fails.
//!
//! A page is asked for by number (`offset` = (page - 1) * limit) or by the cursor a previous
//! page returned. Cursors are opaque to clients and valid only for the list that issued them;
//! each backend encodes its own position in them (an offset in SQLite, a paging state in
//! Cassandra).

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
///
/// A cursor is `base64url(2 || check || offset)`, where `check` is a 64-bit FNV-1a hash of the
/// query's scope (its name and arguments, e.g. `entries|<user>|<start>|<end>`) and the offset:
/// a cursor from another list, another user or another time range, a truncated cursor and
/// random text are all refused as [`QueryError::InvalidCursor`]. The check catches mistakes,
/// not forgery: an offset grants nothing a page number does not.
pub mod offset_cursor {
    use std::hash::Hasher;

    use base64::Engine as _;
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    use fnv::FnvHasher;

    use super::{PageRequest, QueryError};

    const FORMAT: u8 = 2;

    /// The offset a request of the query `scope` starts at.
    pub fn start(scope: &str, request: &PageRequest) -> Result<u64, QueryError> {
        let Some(cursor) = &request.cursor else {
            return Ok(request.offset);
        };
        let bytes = URL_SAFE_NO_PAD
            .decode(cursor)
            .map_err(|_| QueryError::InvalidCursor)?;
        let [FORMAT, rest @ ..] = bytes.as_slice() else {
            return Err(QueryError::InvalidCursor);
        };
        let (Ok(check_bytes), Ok(offset_bytes)) = (
            <[u8; 8]>::try_from(rest.get(..8).unwrap_or_default()),
            <[u8; 8]>::try_from(rest.get(8..).unwrap_or_default()),
        ) else {
            return Err(QueryError::InvalidCursor);
        };
        let offset = u64::from_be_bytes(offset_bytes);
        if u64::from_be_bytes(check_bytes) != check(scope, offset)
            // Offsets go to SQL as i64: a larger one was never issued.
            || i64::try_from(offset).is_err()
        {
            return Err(QueryError::InvalidCursor);
        }
        Ok(offset)
    }

    /// The cursor of the page of `scope` after one that started at `start` with `limit` rows.
    pub fn next(scope: &str, start: u64, limit: u32) -> String {
        let offset = start.saturating_add(u64::from(limit));
        let mut bytes = Vec::with_capacity(17);
        bytes.push(FORMAT);
        bytes.extend_from_slice(&check(scope, offset).to_be_bytes());
        bytes.extend_from_slice(&offset.to_be_bytes());
        URL_SAFE_NO_PAD.encode(bytes)
    }

    fn check(scope: &str, offset: u64) -> u64 {
        let mut hasher = FnvHasher::default();
        hasher.write(scope.as_bytes());
        hasher.write_u8(0);
        hasher.write_u64(offset);
        hasher.finish()
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
        let scope = "entries|u1|0|9";
        assert_eq!(offset_cursor::start(scope, &first).unwrap(), 20);
        let issued = offset_cursor::next(scope, 20, 10);
        let next = PageRequest {
            cursor: Some(issued.clone()),
            ..first
        };
        assert_eq!(offset_cursor::start(scope, &next).unwrap(), 30);
        // Another list, another user or range: refused.
        for other in [
            "entries|u2|0|9",
            "entries|u1|0|8",
            "sessions|u1|0|9",
            "users",
        ] {
            assert!(
                matches!(
                    offset_cursor::start(other, &next),
                    Err(QueryError::InvalidCursor)
                ),
                "{other}"
            );
        }
        let truncated = issued[..issued.len() - 2].to_owned();
        for bad in [
            "30",
            "o10",
            "o-1",
            "",
            "AAAAAAAAAAAAAAAAAAAAAAA",
            truncated.as_str(),
        ] {
            let request = PageRequest {
                cursor: Some(bad.into()),
                ..PageRequest::default()
            };
            assert!(
                matches!(
                    offset_cursor::start(scope, &request),
                    Err(QueryError::InvalidCursor)
                ),
                "{bad}"
            );
        }
    }
}
