//! Instants on the wire: `google.protobuf.Timestamp` to and from `chrono`, for every side of
//! a call (services and gateway), so that both convert alike.

use chrono::{DateTime, Utc};

use crate::Timestamp;

/// `time` as a wire timestamp (exact to the nanosecond).
pub fn timestamp(time: DateTime<Utc>) -> Timestamp {
    Timestamp {
        seconds: time.timestamp(),
        // Below 10^9, so it fits.
        nanos: time.timestamp_subsec_nanos() as i32,
    }
}

/// The instant of a wire timestamp; `None` when it is out of chrono's range or its nanos are
/// negative or above a second.
pub fn datetime(timestamp: &Timestamp) -> Option<DateTime<Utc>> {
    let nanos = u32::try_from(timestamp.nanos).ok()?;
    DateTime::from_timestamp(timestamp.seconds, nanos)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn instants_survive_the_round_trip_exactly() {
        let instant = DateTime::parse_from_rfc3339("2023-01-01T10:00:00.123456789+02:00")
            .unwrap()
            .with_timezone(&Utc);
        let wire = timestamp(instant);
        assert_eq!((wire.seconds, wire.nanos), (1_672_560_000, 123_456_789));
        assert_eq!(datetime(&wire), Some(instant));
    }

    #[test]
    fn impossible_timestamps_have_no_instant() {
        for (seconds, nanos) in [(0, -1), (0, 1_000_000_000), (i64::MAX, 0)] {
            assert_eq!(
                datetime(&Timestamp { seconds, nanos }),
                None,
                "{seconds} {nanos}"
            );
        }
    }
}
