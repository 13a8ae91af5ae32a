//! Field-level validation for the domains. A [`Violations`] collects every problem of a request
//! (not just the first), each naming its field as the public JSON API spells it. Parsed values
//! that the services share, such as the typed ids in [`ids`], are built here so that a value of
//! such a type is valid by construction.

pub mod consistency;
pub mod ids;

pub use consistency::ConsistencyToken;
pub use ids::{EntryId, SessionId, UserId};
use uuid::Uuid;

/// One invalid field and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Violation {
    pub field: String,
    pub message: String,
}

/// The problems found in one request.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Violations(Vec<Violation>);

impl Violations {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn add(&mut self, field: impl Into<String>, message: impl Into<String>) {
        self.0.push(Violation {
            field: field.into(),
            message: message.into(),
        });
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn into_vec(self) -> Vec<Violation> {
        self.0
    }

    pub fn iter(&self) -> impl Iterator<Item = &Violation> {
        self.0.iter()
    }

    /// `Ok(value)` when nothing was found, else the violations.
    pub fn finish<T>(self, value: T) -> Result<T, Violations> {
        if self.0.is_empty() {
            Ok(value)
        } else {
            Err(self)
        }
    }

    /// Trims `value` and checks its length in characters and that it is one line without
    /// control characters (names, titles, ids); returns the trimmed text.
    pub fn text(&mut self, field: &str, value: &str, min: usize, max: usize) -> String {
        self.checked_text(field, value, min, max, |_| false)
    }

    /// As [`Violations::text`], for free text that may span lines: tabs and line breaks are
    /// allowed, other control characters are not.
    pub fn multiline_text(&mut self, field: &str, value: &str, min: usize, max: usize) -> String {
        self.checked_text(field, value, min, max, |c| matches!(c, '\t' | '\n' | '\r'))
    }

    fn checked_text(
        &mut self,
        field: &str,
        value: &str,
        min: usize,
        max: usize,
        allowed_control: impl Fn(char) -> bool,
    ) -> String {
        let trimmed = value.trim();
        let len = trimmed.chars().count();
        if len < min {
            if min == 1 {
                self.add(field, "must not be empty");
            } else {
                self.add(field, format!("must be at least {min} characters"));
            }
        } else if len > max {
            self.add(field, format!("must be at most {max} characters"));
        } else if let Some(problem) = control_character(trimmed, &allowed_control) {
            self.add(field, problem);
        }
        trimmed.to_owned()
    }

    /// Records a violation when `value` holds a control character other than tab and line
    /// breaks (free text such as diary content keeps its own whitespace).
    pub fn no_control_characters(&mut self, field: &str, value: &str) {
        if let Some(problem) = control_character(value, |c| matches!(c, '\t' | '\n' | '\r')) {
            self.add(field, problem);
        }
    }

    /// Checks a value is within `min..=max` (and is a number at all).
    pub fn range(&mut self, field: &str, value: f64, min: f64, max: f64) {
        if !value.is_finite() || value < min || value > max {
            self.add(field, format!("must be between {min} and {max}"));
        }
    }

    /// Parses a UUID in its canonical form (36 characters, hyphenated, either case), recording
    /// a violation when it is not one. Braces, `urn:uuid:` and the unhyphenated form are
    /// refused: one spelling per id keeps ids comparable as text in logs, URLs and stores.
    pub fn uuid(&mut self, field: &str, value: &str) -> Option<Uuid> {
        match parse_canonical_uuid(value) {
            Some(id) => Some(id),
            None if value.is_empty() => {
                self.add(field, "is required");
                None
            }
            None => {
                self.add(
                    field,
                    "must be a UUID like 123e4567-e89b-12d3-a456-426614174000",
                );
                None
            }
        }
    }
}

impl std::fmt::Display for Violations {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let parts: Vec<_> = self
            .0
            .iter()
            .map(|v| format!("{}: {}", v.field, v.message))
            .collect();
        f.write_str(&parts.join("; "))
    }
}

/// Why `text` is refused for its control characters, if it is: they corrupt terminals, logs
/// and exports, and no person types them.
fn control_character(text: &str, allowed: impl Fn(char) -> bool) -> Option<String> {
    let found = text.chars().find(|&c| c.is_control() && !allowed(c))?;
    Some(format!(
        "must not contain control characters (found U+{:04X})",
        u32::from(found)
    ))
}

/// A UUID in the canonical hyphenated form, `None` for anything else.
pub fn parse_canonical_uuid(text: &str) -> Option<Uuid> {
    let bytes = text.as_bytes();
    let hyphens_in_place = bytes.len() == 36
        && bytes
            .iter()
            .enumerate()
            .all(|(i, b)| matches!(i, 8 | 13 | 18 | 23) == (*b == b'-'));
    hyphens_in_place
        .then(|| Uuid::try_parse(text).ok())
        .flatten()
}

/// Parses a UUID path or body id, as a single-field error.
pub fn parse_id(field: &str, value: &str) -> Result<Uuid, Violations> {
    let mut violations = Violations::new();
    match violations.uuid(field, value) {
        Some(id) => Ok(id),
        None => Err(violations),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_trims_and_counts_characters_not_bytes() {
        let mut v = Violations::new();
        assert_eq!(v.text("name", "  Zoë  ", 1, 3), "Zoë");
        assert!(v.is_empty());
        v.text("name", "   ", 1, 3);
        v.text("bio", "abcd", 0, 3);
        let found: Vec<_> = v
            .iter()
            .map(|x| (x.field.as_str(), x.message.as_str()))
            .collect();
        assert_eq!(
            found,
            [
                ("name", "must not be empty"),
                ("bio", "must be at most 3 characters")
            ]
        );
    }

    #[test]
    fn control_characters_are_refused_except_line_breaks_in_free_text() {
        let mut v = Violations::new();
        v.text("title", "a\u{1b}[31mred", 0, 100);
        v.text("name", "two\nlines", 0, 100);
        v.multiline_text("bio", "line one\r\nline\ttwo", 0, 100);
        v.multiline_text("description", "bell\u{7}", 0, 100);
        v.no_control_characters("content", "nul\u{0}");
        let fields: Vec<_> = v.iter().map(|x| x.field.as_str()).collect();
        assert_eq!(fields, ["title", "name", "description", "content"]);
        assert!(v.iter().next().unwrap().message.contains("U+001B"));
    }

    #[test]
    fn range_rejects_nan_and_out_of_bounds() {
        let mut v = Violations::new();
        v.range("a", 0.5, 0.0, 1.0);
        v.range("b", f64::NAN, 0.0, 1.0);
        v.range("c", 1.01, 0.0, 1.0);
        assert_eq!(
            v.iter().map(|x| x.field.as_str()).collect::<Vec<_>>(),
            ["b", "c"]
        );
    }

    #[test]
    fn ids_must_be_uuids() {
        assert!(parse_id("id", "6f1c1a4e-4a0b-4c53-9e7e-8d8f3f7f2f10").is_ok());
        assert!(parse_id("id", "6F1C1A4E-4A0B-4C53-9E7E-8D8F3F7F2F10").is_ok());
        let err = parse_id("userId", "user-id").unwrap_err();
        assert_eq!(
            err.to_string(),
            "userId: must be a UUID like 123e4567-e89b-12d3-a456-426614174000"
        );
        for other_spelling in [
            "{6f1c1a4e-4a0b-4c53-9e7e-8d8f3f7f2f10}",
            "6f1c1a4e4a0b4c539e7e8d8f3f7f2f10",
            "urn:uuid:6f1c1a4e-4a0b-4c53-9e7e-8d8f3f7f2f10",
            " 6f1c1a4e-4a0b-4c53-9e7e-8d8f3f7f2f10",
            "6f1c1a4e-4a0b4-c53-9e7e-8d8f3f7f2f10",
        ] {
            assert!(parse_id("id", other_spelling).is_err(), "{other_spelling}");
        }
        assert_eq!(
            parse_id("id", "").unwrap_err().to_string(),
            "id: is required"
        );
    }
}
