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

/// Keyset cursors, for stores that sort rows by (time, id): a cursor names the last row a page
/// returned, and the next page starts right after it. Rows written or deleted meanwhile do
/// not shift the walk (no row is shown twice, none that still exists is skipped), as they
/// would with an offset.
///
/// A cursor is `base64url(3 || check || time || id)`, where `time` is the row's sort time in
/// microseconds and `check` a 64-bit FNV-1a hash of the query's scope (its name and arguments,
/// e.g. `entries|<user>|<start>|<end>`), the time and the id: a cursor from another list,
/// another user or another time range, a truncated cursor and random text are all refused as
/// [`QueryError::InvalidCursor`]. The check catches mistakes, not forgery: a position in a
/// list grants nothing the list does not.
pub mod keyset_cursor {
    use std::hash::Hasher;

    use base64::Engine as _;
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    use fnv::FnvHasher;

    use super::QueryError;

    const FORMAT: u8 = 3;
    /// Ids are UUIDs; anything much longer was not issued here.
    const ID_MAX: usize = 64;

    /// Where a row sorts: its time (microseconds) and, among rows of the same time, its id.
    #[derive(Debug, Clone, PartialEq, Eq)]
    pub struct SortKey {
        pub micros: i64,
        pub id: String,
    }

    /// The cursor of the page of `scope` that follows the row at `last`.
    pub fn encode(scope: &str, last: &SortKey) -> String {
        let mut bytes = Vec::with_capacity(17 + last.id.len());
        bytes.push(FORMAT);
        bytes.extend_from_slice(&check(scope, last).to_be_bytes());
        bytes.extend_from_slice(&last.micros.to_be_bytes());
        bytes.extend_from_slice(last.id.as_bytes());
        URL_SAFE_NO_PAD.encode(bytes)
    }

    /// The row a cursor of `scope` resumes after.
    pub fn decode(scope: &str, cursor: &str) -> Result<SortKey, QueryError> {
        let bytes = URL_SAFE_NO_PAD
            .decode(cursor)
            .map_err(|_| QueryError::InvalidCursor)?;
        let [FORMAT, rest @ ..] = bytes.as_slice() else {
            return Err(QueryError::InvalidCursor);
        };
        let (Some(check_bytes), Some(micros_bytes), Some(id)) =
            (rest.get(..8), rest.get(8..16), rest.get(16..))
        else {
            return Err(QueryError::InvalidCursor);
        };
        let (Ok(check_bytes), Ok(micros_bytes)) = (
            <[u8; 8]>::try_from(check_bytes),
            <[u8; 8]>::try_from(micros_bytes),
        ) else {
            return Err(QueryError::InvalidCursor);
        };
        let id = std::str::from_utf8(id).map_err(|_| QueryError::InvalidCursor)?;
        if id.is_empty() || id.len() > ID_MAX {
            return Err(QueryError::InvalidCursor);
        }
        let key = SortKey {
            micros: i64::from_be_bytes(micros_bytes),
            id: id.to_owned(),
        };
        if u64::from_be_bytes(check_bytes) != check(scope, &key) {
            return Err(QueryError::InvalidCursor);
        }
        Ok(key)
    }

    fn check(scope: &str, key: &SortKey) -> u64 {
        let mut hasher = FnvHasher::default();
        hasher.write(scope.as_bytes());
        hasher.write_u8(0);
        hasher.write_i64(key.micros);
        hasher.write(key.id.as_bytes());
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
    fn keyset_cursors_round_trip_and_reject_foreign_ones() {
        use keyset_cursor::{SortKey, decode, encode};
        let scope = "entries|u1|0|9";
        let last = SortKey {
            micros: 1_672_567_200_123_456,
            id: "6f1c1a4e-4a0b-4c53-9e7e-8d8f3f7f2f10".into(),
        };
        let issued = encode(scope, &last);
        assert_eq!(decode(scope, &issued).unwrap(), last);
        // Another list, another user or range: refused.
        for other in [
            "entries|u2|0|9",
            "entries|u1|0|8",
            "sessions|u1|0|9",
            "users",
        ] {
            assert!(
                matches!(decode(other, &issued), Err(QueryError::InvalidCursor)),
                "{other}"
            );
        }
        let truncated = issued[..issued.len() - 2].to_owned();
        // One character of the check changed (to another that is surely different).
        let mut tampered = issued.clone().into_bytes();
        tampered[3] = if tampered[3] == b'A' { b'B' } else { b'A' };
        let tampered = String::from_utf8(tampered).unwrap();
        for bad in [
            "30",
            "o10",
            "",
            "AAAAAAAAAAAAAAAAAAAAAAA",
            truncated.as_str(),
            tampered.as_str(),
        ] {
            assert!(
                matches!(decode(scope, bad), Err(QueryError::InvalidCursor)),
                "{bad}"
            );
        }
    }
}
