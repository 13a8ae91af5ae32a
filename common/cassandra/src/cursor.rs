//! Cursors: the driver's paging state as an opaque, URL-safe string.
//!
//! A cursor is `base64url(1 || check || paging state)`, where `check` is a 64-bit FNV-1a hash
//! of the query's scope and the paging state. The scope names the query and its arguments
//! (for example `entries|<user>|<start>|<end>`), so a cursor from another list, another user
//! or another time range, a truncated cursor and random text are all refused as
//! [`QueryError::InvalidCursor`] before anything reaches Cassandra. The check catches
//! mistakes, not forgery; it needs no secret because a paging state can only move within
//! the query it is sent with, whose partition the server fixes from the query's own
//! arguments.

use std::hash::Hasher;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use fnv::FnvHasher;
use metachat_read_model::QueryError;
use scylla::response::PagingState;

const FORMAT: u8 = 1;
const CHECK_LEN: usize = 8;
/// Paging states are tens of bytes; anything much longer was not issued here.
const CURSOR_MAX: usize = 2048;

/// The cursor for resuming a query of `scope` at `state` (the start when it is empty).
pub fn encode_cursor(scope: &str, state: &PagingState) -> String {
    let raw: &[u8] = state.as_bytes_slice().map_or(&[], |b| &b[..]);
    let mut bytes = Vec::with_capacity(1 + CHECK_LEN + raw.len());
    bytes.push(FORMAT);
    bytes.extend_from_slice(&check(scope, raw).to_be_bytes());
    bytes.extend_from_slice(raw);
    URL_SAFE_NO_PAD.encode(bytes)
}

/// The paging state in a cursor that [`encode_cursor`] issued for `scope`.
pub fn decode_cursor(scope: &str, cursor: &str) -> Result<PagingState, QueryError> {
    if cursor.len() > CURSOR_MAX {
        return Err(QueryError::InvalidCursor);
    }
    let bytes = URL_SAFE_NO_PAD
        .decode(cursor)
        .map_err(|_| QueryError::InvalidCursor)?;
    let [FORMAT, rest @ ..] = bytes.as_slice() else {
        return Err(QueryError::InvalidCursor);
    };
    if rest.len() < CHECK_LEN {
        return Err(QueryError::InvalidCursor);
    }
    let (stored, raw) = rest.split_at(CHECK_LEN);
    if stored != check(scope, raw).to_be_bytes() {
        return Err(QueryError::InvalidCursor);
    }
    Ok(if raw.is_empty() {
        PagingState::start()
    } else {
        PagingState::new_from_raw_bytes(raw)
    })
}

fn check(scope: &str, raw: &[u8]) -> u64 {
    let mut hash = FnvHasher::default();
    // The scope's length first, so that no scope/state split collides with another.
    hash.write(&(scope.len() as u64).to_be_bytes());
    hash.write(scope.as_bytes());
    hash.write(raw);
    hash.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn state(bytes: &[u8]) -> PagingState {
        PagingState::new_from_raw_bytes(bytes)
    }

    fn raw(state: &PagingState) -> Vec<u8> {
        state
            .as_bytes_slice()
            .map(|b| b.to_vec())
            .unwrap_or_default()
    }

    #[test]
    fn cursors_round_trip_and_are_url_safe() {
        let bytes: Vec<u8> = (0..=255).collect();
        let cursor = encode_cursor("entries|u1", &state(&bytes));
        assert!(
            cursor
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_'),
            "{cursor}"
        );
        assert_eq!(raw(&decode_cursor("entries|u1", &cursor).unwrap()), bytes);
        let start = encode_cursor("users", &PagingState::start());
        assert!(raw(&decode_cursor("users", &start).unwrap()).is_empty());
    }

    #[test]
    fn foreign_damaged_and_random_cursors_are_refused() {
        let cursor = encode_cursor("entries|u1", &state(b"paging-state"));
        let mut damaged = cursor.clone().into_bytes();
        let last = damaged.len() - 2;
        damaged[last] = if damaged[last] == b'A' { b'B' } else { b'A' };
        let damaged = String::from_utf8(damaged).unwrap();
        for (scope, bad) in [
            ("entries|u2", cursor.as_str()),
            ("entries|u1", damaged.as_str()),
            ("entries|u1", &cursor[..cursor.len() - 3]),
            ("entries|u1", ""),
            ("entries|u1", "o20"),
            ("entries|u1", "not a cursor!"),
            ("entries|u1", "AQ"),
            ("entries|u1", &"A".repeat(5000)),
        ] {
            assert!(
                matches!(decode_cursor(scope, bad), Err(QueryError::InvalidCursor)),
                "{bad:?}"
            );
        }
    }
}
