//! Parsed values of the user domain: a value of one of these types is valid by construction.
//! Each `parse` reports a problem in the words the API shows; the aggregate collects every
//! problem of a command into one [`metachat_validation::Violations`].
//!
//! They serialise as the plain string or number, the same bytes stored events already carry.
//! `from_stored` rebuilds one from a store that only ever holds parsed values (events, read
//! models); it does not validate again.

use serde::{Deserialize, Serialize};
use uuid::Uuid;

const USERNAME_LEN: (usize, usize) = (3, 32);
const EMAIL_MAX: usize = 254;

/// A username: 3 to 32 of letters, digits, `_`, `.` and `-`, unique regardless of case.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Username(String);

impl Username {
    pub fn parse(text: &str) -> Result<Self, String> {
        let text = text.trim();
        let len = text.chars().count();
        if len < USERNAME_LEN.0 {
            return Err(if len == 0 {
                "must not be empty".into()
            } else {
                format!("must be at least {} characters", USERNAME_LEN.0)
            });
        }
        if len > USERNAME_LEN.1 {
            return Err(format!("must be at most {} characters", USERNAME_LEN.1));
        }
        if !text
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'))
        {
            return Err("may contain only letters, digits, '_', '.' and '-'".into());
        }
        Ok(Self(text.to_owned()))
    }

    pub fn from_stored(text: String) -> Self {
        Self(text)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The key of this username's uniqueness claim.
    pub fn claim_key(&self) -> String {
        claim_key(&self.0)
    }
}

/// An e-mail address: a pragmatic syntax check (one `@`, a plausible local part, a dotted
/// domain), unique regardless of case.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Email(String);

impl Email {
    pub fn parse(text: &str) -> Result<Self, &'static str> {
        let email = text.trim();
        if email.is_empty() {
            return Err("is required");
        }
        if email.chars().count() > EMAIL_MAX {
            return Err("must be at most 254 characters");
        }
        let Some((local, domain)) = email.split_once('@') else {
            return Err("must be an e-mail address like name@example.com");
        };
        let local_ok = !local.is_empty()
            && local.len() <= 64
            && !local.starts_with('.')
            && !local.ends_with('.')
            && !local.contains("..")
            && local
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "!#$%&'*+/=?^_`{|}~.-".contains(c));
        let labels: Vec<&str> = domain.split('.').collect();
        let domain_ok = labels.len() >= 2
            && labels.iter().all(|l| {
                !l.is_empty()
                    && l.len() <= 63
                    && !l.starts_with('-')
                    && !l.ends_with('-')
                    && l.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
            });
        if local_ok && domain_ok {
            Ok(Self(email.to_owned()))
        } else {
            Err("must be an e-mail address like name@example.com")
        }
    }

    pub fn from_stored(text: String) -> Self {
        Self(text)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The key of this address's uniqueness claim.
    pub fn claim_key(&self) -> String {
        claim_key(&self.0)
    }
}

/// How sure an archetype assignment is: a finite number from 0 to 1.
#[derive(Debug, Clone, Copy, PartialEq, PartialOrd, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Confidence(f64);

impl Confidence {
    pub fn parse(value: f64) -> Result<Self, &'static str> {
        if value.is_finite() && (0.0..=1.0).contains(&value) {
            Ok(Self(value))
        } else {
            Err("must be between 0 and 1")
        }
    }

    pub fn from_stored(value: f64) -> Self {
        Self(value)
    }

    pub fn value(self) -> f64 {
        self.0
    }
}

/// The key of a unique value's claim stream: the same for every spelling that differs only
/// in case, and free of the value itself (the stream id is not personal data).
pub fn claim_key(value: &str) -> String {
    const NAMESPACE: Uuid = Uuid::from_u128(0x6d65_7461_6368_6174_2d75_6e69_7175_6501);
    Uuid::new_v5(&NAMESPACE, value.trim().to_lowercase().as_bytes())
        .simple()
        .to_string()
}
