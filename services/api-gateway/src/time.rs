//! Timestamps in and out: RFC 3339 or a bare date on the way in, RFC 3339 UTC on the way out.

use chrono::{DateTime, NaiveDate, SecondsFormat, TimeDelta, Timelike, Utc};
use metachat_proto::Timestamp;

use crate::error::AppError;
use crate::extract::QueryParams;

/// What a bare date (`YYYY-MM-DD`, UTC) stands for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum DateMeans {
    /// 00:00:00Z that day: the inclusive start of a range.
    StartOfDay,
    /// 00:00:00Z the next day: the exclusive end of a range that includes the whole day.
    EndOfDayExclusive,
    /// The last instant of that day: "as of" the day, including everything recorded on it.
    LastInstantOfDay,
}

const EXPECTED: &str =
    "must be an RFC 3339 timestamp (e.g. 2023-01-01T10:00:00Z) or a date (YYYY-MM-DD)";
const EXPECTED_TIMESTAMP: &str = "must be an RFC 3339 timestamp (e.g. 2023-01-01T10:00:00Z)";
const NO_LEAP_SECOND: &str =
    "must not be a leap second (second 60): UTC timestamps here have seconds 00 to 59";

/// Parses a query parameter that accepts an RFC 3339 timestamp or a bare date.
pub(crate) fn parse_instant(
    name: &str,
    value: &str,
    date_means: DateMeans,
) -> Result<DateTime<Utc>, AppError> {
    if let Some(date) = parse_date(value) {
        let start = match date_means {
            DateMeans::StartOfDay => Some(date),
            DateMeans::EndOfDayExclusive | DateMeans::LastInstantOfDay => date.succ_opt(),
        }
        .and_then(|day| day.and_hms_opt(0, 0, 0))
        .map(|midnight| midnight.and_utc())
        .ok_or_else(|| AppError::invalid(name, EXPECTED))?;
        return Ok(match date_means {
            DateMeans::LastInstantOfDay => start - TimeDelta::nanoseconds(1),
            _ => start,
        });
    }
    checked(name, parse_rfc3339(value), EXPECTED)
}

/// Parses a body field that must be a full RFC 3339 timestamp.
pub(crate) fn parse_timestamp(name: &str, value: &str) -> Result<DateTime<Utc>, AppError> {
    checked(name, parse_rfc3339(value.trim()), EXPECTED_TIMESTAMP)
}

/// chrono accepts second 60 and represents it as a nanosecond past 999_999_999, which no
/// protobuf Timestamp (and no service) can hold: refused here, naming the field.
fn checked(
    name: &str,
    parsed: Option<DateTime<Utc>>,
    expected: &str,
) -> Result<DateTime<Utc>, AppError> {
    match parsed {
        Some(instant) if instant.nanosecond() >= 1_000_000_000 => {
            Err(AppError::invalid(name, NO_LEAP_SECOND))
        }
        Some(instant) => Ok(instant),
        None => Err(AppError::invalid(name, expected)),
    }
}

/// A calendar date written exactly `YYYY-MM-DD` (no sign, no single-digit parts, no spaces).
pub(crate) fn parse_date(value: &str) -> Option<NaiveDate> {
    let bytes = value.as_bytes();
    let shaped = bytes.len() == 10
        && bytes[4] == b'-'
        && bytes[7] == b'-'
        && bytes
            .iter()
            .enumerate()
            .all(|(i, b)| i == 4 || i == 7 || b.is_ascii_digit());
    shaped
        .then(|| NaiveDate::parse_from_str(value, "%Y-%m-%d").ok())
        .flatten()
}

fn parse_rfc3339(value: &str) -> Option<DateTime<Utc>> {
    if let Ok(parsed) = DateTime::parse_from_rfc3339(value) {
        return Some(parsed.with_timezone(&Utc));
    }
    // An unencoded `+` in a query string arrives as a space: `...T10:00:00 02:00`.
    let bytes = value.as_bytes();
    let n = bytes.len();
    if n > 6 && bytes[n - 6] == b' ' && bytes[n - 3] == b':' {
        let repaired = format!("{}+{}", &value[..n - 6], &value[n - 5..]);
        return DateTime::parse_from_rfc3339(&repaired)
            .ok()
            .map(|parsed| parsed.with_timezone(&Utc));
    }
    None
}

/// The `asOf` query parameter: the state at that moment; a bare date means the end of that day
/// (UTC), so everything recorded on it is included.
pub(crate) fn as_of(query: &QueryParams) -> Result<Option<Timestamp>, AppError> {
    Ok(query
        .get("asOf")?
        .map(|v| parse_instant("asOf", v, DateMeans::LastInstantOfDay))
        .transpose()?
        .map(to_timestamp))
}

pub(crate) fn to_timestamp(instant: DateTime<Utc>) -> Timestamp {
    metachat_proto::time::timestamp(instant)
}

/// RFC 3339 in UTC with `Z`, with as many fractional digits as needed (none for whole seconds).
pub(crate) fn format_timestamp(timestamp: &Timestamp) -> Option<String> {
    metachat_proto::time::datetime(timestamp)
        .map(|instant| instant.to_rfc3339_opts(SecondsFormat::AutoSi, true))
}

pub(crate) fn format_optional(timestamp: Option<&Timestamp>) -> Option<String> {
    timestamp.and_then(format_timestamp)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn instant(value: &str, means: DateMeans) -> String {
        let parsed = parse_instant("t", value, means).unwrap();
        format_timestamp(&to_timestamp(parsed)).unwrap()
    }

    #[test]
    fn a_bare_date_is_a_utc_day() {
        assert_eq!(
            instant("2023-01-01", DateMeans::StartOfDay),
            "2023-01-01T00:00:00Z"
        );
        assert_eq!(
            instant("2023-12-31", DateMeans::EndOfDayExclusive),
            "2024-01-01T00:00:00Z"
        );
        assert_eq!(
            instant("2024-02-28", DateMeans::EndOfDayExclusive),
            "2024-02-29T00:00:00Z"
        );
        assert_eq!(
            instant("2023-06-30", DateMeans::LastInstantOfDay),
            "2023-06-30T23:59:59.999999999Z"
        );
    }

    #[test]
    fn timestamps_are_converted_to_utc_and_kept_exact() {
        assert_eq!(
            instant("2023-01-01T10:00:00+02:00", DateMeans::EndOfDayExclusive),
            "2023-01-01T08:00:00Z"
        );
        assert_eq!(
            instant("2023-01-01T10:00:00 02:00", DateMeans::StartOfDay),
            "2023-01-01T08:00:00Z"
        );
        assert_eq!(
            instant("2023-01-01T10:00:00.250Z", DateMeans::StartOfDay),
            "2023-01-01T10:00:00.250Z"
        );
    }

    #[test]
    fn unparsable_values_name_the_parameter() {
        for bad in [
            "2023-13-01",
            "2023-02-30",
            "2023-1-1",
            "yesterday",
            "2023-01-01T25:00:00Z",
            "+2023-01-01",
        ] {
            let error = parse_instant("endTime", bad, DateMeans::EndOfDayExclusive)
                .unwrap_err()
                .0;
            assert_eq!(error.details[0].field, "endTime", "{bad}");
        }
        assert!(parse_timestamp("startTime", "2023-01-01").is_err());
        for leap in [
            "2024-02-29T12:00:60Z",
            "2016-12-31T23:59:60.5Z",
            "2016-12-31T23:59:60+00:00",
        ] {
            let error = parse_timestamp("startTime", leap).unwrap_err().0;
            assert_eq!(error.details[0].field, "startTime", "{leap}");
            assert!(error.message.contains("leap second"), "{error:?}");
            let error = parse_instant("asOf", leap, DateMeans::StartOfDay)
                .unwrap_err()
                .0;
            assert_eq!(error.details[0].field, "asOf", "{leap}");
        }
        assert!(parse_timestamp("startTime", "2023-01-01T10:00:00Z").is_ok());
    }

    #[test]
    fn invalid_stored_timestamps_render_as_none() {
        assert_eq!(
            format_timestamp(&Timestamp {
                seconds: 0,
                nanos: -1
            }),
            None
        );
        assert_eq!(
            format_timestamp(&Timestamp {
                seconds: 1_672_567_200,
                nanos: 0
            })
            .as_deref(),
            Some("2023-01-01T10:00:00Z")
        );
    }
}
