//! The sizes the gateway enforces or documents. Field lengths are the services' rules (counted in
//! characters, after trimming where the service trims); they are here to size the body limit and
//! to document them, and must follow the services when those change.

/// Longest request URI (path and query) accepted; longer ones get 414.
pub const MAX_URI_BYTES: usize = 8 * 1024;
/// Most header fields in one request; more get 431.
pub const MAX_HEADERS: usize = 100;
/// Largest total size of the header fields (names and values) of one request; more get 431.
pub const MAX_HEADER_BYTES: usize = 32 * 1024;

pub const USERNAME_MIN: usize = 3;
pub const USERNAME_MAX: usize = 32;
pub const EMAIL_MAX: usize = 254;
pub const NAME_MAX: usize = 100;
pub const AVATAR_MAX: usize = 256_000;
pub const BIO_MAX: usize = 2_000;
pub const ARCHETYPE_ID_MAX: usize = 64;
pub const ARCHETYPE_NAME_MAX: usize = 100;
pub const DESCRIPTION_MAX: usize = 1_000;
pub const TITLE_MAX: usize = 200;
pub const CONTENT_MAX: usize = 100_000;
pub const TOKEN_COUNT_MAX: u32 = 1_000_000;
pub const TAGS_MAX: usize = 20;
pub const TAG_MAX: usize = 50;

/// Page size of the lists: `limit` is `1..=PAGE_LIMIT_MAX`, `PAGE_LIMIT_DEFAULT` when absent.
pub const PAGE_LIMIT_DEFAULT: u32 = 10;
pub const PAGE_LIMIT_MAX: u32 = 100;
/// Cursors are short opaque strings; anything longer was not issued by a list.
pub const CURSOR_MAX: usize = 1024;
/// Longest client-supplied `x-request-id` (or `x-correlation-id`) kept; longer ones are replaced.
pub const REQUEST_ID_MAX: usize = 128;

/// The sensory modalities a user can be weighted on (the user service's rule).
pub const MODALITIES: [&str; 3] = ["visual", "auditory", "kinesthetic"];
/// The analytics periods (the diary service's rule) and the one used when none is given.
pub const PERIODS: [&str; 4] = ["day", "week", "month", "year"];
pub const DEFAULT_PERIOD: &str = "week";
/// The `period` of analytics over an explicit `from` and `to`.
pub const CUSTOM_PERIOD: &str = "custom";
/// The states of a sensory measure or of archetype signals.
pub const MEASURE_STATES: [&str; 3] = ["measured", "insufficientText", "unsupportedLanguage"];
/// A session's `status`, as the diary service reports it.
pub const SESSION_STATUSES: [&str; 2] = ["active", "ended"];

/// Bytes of one character in the worst JSON spelling: an astral character as a `\uXXXX\uXXXX`
/// surrogate-pair escape (what Python's `json.dumps` sends by default).
const ESCAPED_CHAR: usize = 12;

/// The largest valid body: a profile update with every field at its maximum length, every
/// character escaped. Keys, quotes and separators are counted generously.
pub const LARGEST_VALID_BODY: usize =
    (2 * NAME_MAX + AVATAR_MAX + BIO_MAX + "1990-01-01".len()) * ESCAPED_CHAR + 256;

/// The request body limit: the largest valid body rounded up to whole MiB, so that any valid
/// request fits however its text is escaped; larger bodies get 413.
pub const BODY_LIMIT_BYTES: usize = LARGEST_VALID_BODY.div_ceil(1 << 20) * (1 << 20);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_maximal_body_fits_escaped() {
        assert_eq!(BODY_LIMIT_BYTES, 3 * 1024 * 1024);
        let entry = (TITLE_MAX + CONTENT_MAX + TAGS_MAX * TAG_MAX) * ESCAPED_CHAR + 256;
        let archetype =
            (ARCHETYPE_ID_MAX + ARCHETYPE_NAME_MAX + DESCRIPTION_MAX) * ESCAPED_CHAR + 256;
        let user = (USERNAME_MAX + EMAIL_MAX + 2 * NAME_MAX + 10) * ESCAPED_CHAR + 256;
        for size in [entry, archetype, user, LARGEST_VALID_BODY] {
            assert!(size <= BODY_LIMIT_BYTES, "{size}");
        }
    }
}
