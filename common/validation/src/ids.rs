//! Typed ids: a `UserId` cannot be passed where an `EntryId` is expected, and a value of one of
//! these types is always a valid UUID. They serialise as the canonical hyphenated string, the
//! same bytes as the plain strings that stored events and Kafka messages already carry.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::{Violations, parse_canonical_uuid};

macro_rules! uuid_id {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[serde(transparent)]
        pub struct $name(Uuid);

        impl $name {
            /// A new random id.
            pub fn new() -> Self {
                Self(Uuid::new_v4())
            }

            pub const fn from_uuid(id: Uuid) -> Self {
                Self(id)
            }

            pub fn as_uuid(&self) -> &Uuid {
                &self.0
            }

            /// Parses client input; `field` names it in the violation.
            pub fn parse(field: &str, text: &str) -> Result<Self, Violations> {
                crate::parse_id(field, text).map(Self)
            }
        }

        impl Default for $name {
            fn default() -> Self {
                Self::new()
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                self.0.hyphenated().fmt(f)
            }
        }

        impl FromStr for $name {
            type Err = InvalidId;

            fn from_str(text: &str) -> Result<Self, InvalidId> {
                parse_canonical_uuid(text).map(Self).ok_or(InvalidId)
            }
        }

        impl From<Uuid> for $name {
            fn from(id: Uuid) -> Self {
                Self(id)
            }
        }
    };
}

uuid_id!(
    /// The id of a user (stream `user-<id>`).
    UserId
);
uuid_id!(
    /// The id of a diary entry (stream `entry-<id>`).
    EntryId
);
uuid_id!(
    /// The id of a writing session (stream `session-<id>`).
    SessionId
);

/// Text that is not a canonical UUID.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("not a UUID in canonical form")]
pub struct InvalidId;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_serialise_as_the_plain_canonical_string() {
        let text = "6f1c1a4e-4a0b-4c53-9e7e-8d8f3f7f2f10";
        let id: UserId = text.parse().unwrap();
        assert_eq!(id.to_string(), text);
        assert_eq!(serde_json::to_string(&id).unwrap(), format!("\"{text}\""));
        let back: EntryId = serde_json::from_str(&format!("\"{text}\"")).unwrap();
        assert_eq!(back.to_string(), text);
        // Upper case is accepted and shown in the one canonical spelling.
        let upper: SessionId = text.to_uppercase().parse().unwrap();
        assert_eq!(upper.to_string(), text);
        assert!("not-an-id".parse::<UserId>().is_err());
    }

    #[test]
    fn parse_names_the_field() {
        let err = SessionId::parse("sessionId", "").unwrap_err();
        assert_eq!(err.to_string(), "sessionId: is required");
    }
}
