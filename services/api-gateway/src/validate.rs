//! Checks of field *form* the gateway makes before forwarding: canonical UUIDs, exact dates, and
//! no control characters in text. Lengths and business rules stay the services'. Every problem
//! of a body is collected, so one answer names all the invalid fields the gateway can see.

use metachat_proto::error::{ApiError, FieldViolation};

use crate::error::AppError;
use crate::time::parse_date;

pub(crate) const UUID_MESSAGE: &str =
    "must be a UUID in the canonical form xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx";
pub(crate) const SINGLE_LINE_MESSAGE: &str =
    "must be one line: control characters and line breaks are not allowed";
pub(crate) const MULTI_LINE_MESSAGE: &str =
    "must not contain control characters other than tab, line feed and carriage return";
pub(crate) const DATE_MESSAGE: &str = "must be a calendar date written YYYY-MM-DD";

/// The UUID in its canonical lower-case form, when `value` is 36 characters, hyphenated
/// 8-4-4-4-12, hexadecimal digits in any case. Braces, `urn:uuid:`, missing hyphens and
/// surrounding spaces are refused rather than guessed at.
pub(crate) fn canonical_uuid(value: &str) -> Option<String> {
    let bytes = value.as_bytes();
    let shaped = bytes.len() == 36
        && bytes.iter().enumerate().all(|(i, b)| match i {
            8 | 13 | 18 | 23 => *b == b'-',
            _ => b.is_ascii_hexdigit(),
        });
    if !shaped {
        return None;
    }
    uuid::Uuid::parse_str(value).ok().map(|id| id.to_string())
}

/// Whether `c` may not appear in one-line text: C0 and C1 controls, DEL, and the Unicode line
/// and paragraph separators.
fn breaks_a_line(c: char) -> bool {
    c.is_control() || matches!(c, '\u{2028}' | '\u{2029}')
}

/// Whether `c` may not appear in multi-line text: controls other than tab, LF and CR.
fn forbidden_in_text(c: char) -> bool {
    c.is_control() && !matches!(c, '\t' | '\n' | '\r')
}

/// The violations found in one request.
#[derive(Default)]
pub(crate) struct Checks(Vec<FieldViolation>);

impl Checks {
    fn add(&mut self, field: impl Into<String>, message: &str) {
        self.0.push(FieldViolation {
            field: field.into(),
            message: message.to_owned(),
        });
    }

    /// Names, titles, tags, identifiers: one line of printable text.
    pub(crate) fn single_line(&mut self, field: impl Into<String>, value: Option<&str>) {
        if value.is_some_and(|v| v.chars().any(breaks_a_line)) {
            self.add(field, SINGLE_LINE_MESSAGE);
        }
    }

    /// Content, bio, description: text that may have tabs and line breaks.
    pub(crate) fn multi_line(&mut self, field: impl Into<String>, value: Option<&str>) {
        if value.is_some_and(|v| v.chars().any(forbidden_in_text)) {
            self.add(field, MULTI_LINE_MESSAGE);
        }
    }

    /// A required UUID, canonicalised.
    pub(crate) fn uuid(&mut self, field: &str, value: String) -> String {
        match canonical_uuid(&value) {
            Some(id) => id,
            None => {
                self.add(field, UUID_MESSAGE);
                value
            }
        }
    }

    /// An optional UUID: `null` or absent means none; an empty string is not a way to say so.
    pub(crate) fn optional_uuid(&mut self, field: &str, value: Option<String>) -> Option<String> {
        value.map(|v| self.uuid(field, v))
    }

    /// A date of birth: exactly `YYYY-MM-DD`; `allow_empty` lets an update clear it with "".
    pub(crate) fn date(&mut self, field: &str, value: Option<&str>, allow_empty: bool) {
        match value {
            None => {}
            Some("") if allow_empty => {}
            Some(v) if parse_date(v).is_some() => {}
            Some(_) => self.add(field, DATE_MESSAGE),
        }
    }

    /// The value of a check made elsewhere, its violations collected with these.
    pub(crate) fn absorb<T>(&mut self, result: Result<T, AppError>) -> Option<T> {
        match result {
            Ok(value) => Some(value),
            Err(AppError(error)) => {
                self.0.extend(error.details);
                None
            }
        }
    }

    /// `Ok` when nothing was found, else one 400 naming every field.
    pub(crate) fn finish(self) -> Result<(), AppError> {
        if self.0.is_empty() {
            Ok(())
        } else {
            Err(AppError(ApiError::invalid_fields(self.0)))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_canonical_uuids_are_accepted_and_lower_cased() {
        let id = "0b9e4c9e-7d1a-4f57-8d59-3f7b8f0d1a2c";
        assert_eq!(canonical_uuid(id).as_deref(), Some(id));
        assert_eq!(canonical_uuid(&id.to_uppercase()).as_deref(), Some(id));
        for bad in [
            "{0b9e4c9e-7d1a-4f57-8d59-3f7b8f0d1a2c}",
            "0b9e4c9e7d1a4f578d593f7b8f0d1a2c",
            "urn:uuid:0b9e4c9e-7d1a-4f57-8d59-3f7b8f0d1a2c",
            " 0b9e4c9e-7d1a-4f57-8d59-3f7b8f0d1a2c",
            "0b9e4c9e-7d1a-4f57-8d59-3f7b8f0d1a2g",
            "0b9e4c9e+7d1a-4f57-8d59-3f7b8f0d1a2c",
            "",
        ] {
            assert_eq!(canonical_uuid(bad), None, "{bad}");
        }
    }

    #[test]
    fn control_characters_are_refused_by_kind_of_text() {
        let mut checks = Checks::default();
        checks.single_line("firstName", Some("Zoë O'Brien\t"));
        checks.single_line("title", Some("a\u{1b}[31m"));
        checks.single_line("tags[0]", Some("bell\u{7}"));
        checks.single_line("username", Some("nul\0"));
        checks.single_line("archetypeName", Some("c1\u{85}"));
        checks.single_line("lastName", Some("line\u{2028}break"));
        checks.single_line("email", Some("plain@example.com"));
        checks.multi_line("content", Some("tab\there\r\nnew line"));
        checks.multi_line("bio", Some("escape \u{1b}"));
        checks.multi_line("description", Some("del \u{7f}"));
        let fields: Vec<_> = checks.0.iter().map(|v| v.field.as_str()).collect();
        assert_eq!(
            fields,
            [
                "firstName",
                "title",
                "tags[0]",
                "username",
                "archetypeName",
                "lastName",
                "bio",
                "description"
            ]
        );
    }

    #[test]
    fn dates_of_birth_are_exactly_year_month_day() {
        let mut checks = Checks::default();
        checks.date("a", Some("1990-01-01"), false);
        checks.date("b", Some(""), true);
        checks.date("c", None, false);
        assert!(checks.0.is_empty());
        for bad in [
            "1990-1-1",
            "+1990-01-01",
            " 1990-01-01 ",
            "1990-02-30",
            "19900101",
        ] {
            checks.date(bad, Some(bad), true);
        }
        checks.date("empty", Some(""), false);
        assert_eq!(checks.0.len(), 6);
    }

    #[test]
    fn an_empty_session_id_is_not_none() {
        let mut checks = Checks::default();
        assert_eq!(checks.optional_uuid("sessionId", None), None);
        checks.optional_uuid("sessionId", Some(String::new()));
        let error = checks.finish().unwrap_err().0;
        assert_eq!(error.details[0].field, "sessionId");
    }
}
