//! Consistency tokens: `<resource id>:<version>` names one write (the id and the `version` its
//! answer carries). A list read that presents one waits until the read models reflect that
//! resource at that version or later, so a client reads its own writes.

use std::fmt;

use uuid::Uuid;

use crate::{Violations, parse_canonical_uuid};

/// What a malformed token is told, wherever it came from (header or gRPC field).
pub const TOKEN_FORMAT_MESSAGE: &str = "must be <id>:<version> as a write answered it \
     (X-Consistency-Token), like 123e4567-e89b-12d3-a456-426614174000:3";

/// A write: the resource's id and its version right after the write.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ConsistencyToken {
    pub id: Uuid,
    /// 1 or more: a resource's first event is version 1.
    pub version: u64,
}

impl ConsistencyToken {
    pub const fn new(id: Uuid, version: u64) -> Self {
        Self { id, version }
    }

    /// Parses a token; `field` names it in the violation. Empty means none (proto3's default).
    pub fn parse_optional(field: &str, text: &str) -> Result<Option<Self>, Violations> {
        if text.is_empty() {
            return Ok(None);
        }
        match Self::parse_text(text) {
            Some(token) => Ok(Some(token)),
            None => {
                let mut violations = Violations::new();
                violations.add(field, TOKEN_FORMAT_MESSAGE);
                Err(violations)
            }
        }
    }

    /// The token in `text`, `None` unless it is exactly `<canonical UUID>:<version>`, the
    /// version as a write answers it: digits without a sign, spaces or leading zeros, from 1
    /// to 999,999,999,999,999,999 (18 digits: far beyond any stream, and a bound a pattern in
    /// the API document can state exactly).
    pub fn parse_text(text: &str) -> Option<Self> {
        let (id, version) = text.split_once(':')?;
        let id = parse_canonical_uuid(id)?;
        if version.is_empty()
            || version.len() > 18
            || version.starts_with('0')
            || !version.bytes().all(|b| b.is_ascii_digit())
        {
            return None;
        }
        let version = version.parse::<u64>().ok()?;
        Some(Self { id, version })
    }
}

impl fmt::Display for ConsistencyToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.id.hyphenated(), self.version)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ID: &str = "6f1c1a4e-4a0b-4c53-9e7e-8d8f3f7f2f10";

    #[test]
    fn a_token_is_an_id_and_a_version_and_prints_back_canonically() {
        let token = ConsistencyToken::parse_optional("t", &format!("{ID}:3"))
            .unwrap()
            .unwrap();
        assert_eq!(token.version, 3);
        assert_eq!(token.to_string(), format!("{ID}:3"));
        let upper = ConsistencyToken::parse_text(&format!("{}:12", ID.to_uppercase())).unwrap();
        assert_eq!(upper.to_string(), format!("{ID}:12"));
        assert_eq!(ConsistencyToken::parse_optional("t", ""), Ok(None));
    }

    #[test]
    fn anything_else_is_refused_naming_the_field() {
        for bad in [
            ID.to_owned(),
            format!("{ID}:"),
            format!("{ID}:0"),
            format!("{ID}:-1"),
            format!("{ID}:+1"),
            format!("{ID}: 1"),
            format!("{ID}:1:2"),
            format!("{ID}:99999999999999999999"),
            format!("{ID}:9223372036854775808"),
            format!("{ID}:1000000000000000000"),
            format!("{ID}:0001"),
            "user-id:1".to_owned(),
            ":1".to_owned(),
            format!("{{{ID}}}:1"),
        ] {
            let error = ConsistencyToken::parse_optional("consistencyToken", &bad).unwrap_err();
            let violation = error.iter().next().unwrap();
            assert_eq!(violation.field, "consistencyToken", "{bad}");
            assert_eq!(violation.message, TOKEN_FORMAT_MESSAGE, "{bad}");
        }
    }
}
