//! Writing analytics over a rolling window, computed from the read models' rows.

use std::collections::{BTreeMap, HashMap};

use chrono::{DateTime, Duration, NaiveDate, Utc};

use crate::domain::Session;
use crate::read_model::EntryStat;

/// The length of an analytics window, ending now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Period {
    Day,
    Week,
    Month,
    Year,
}

impl Period {
    pub fn parse(text: &str) -> Option<Self> {
        match text.trim().to_ascii_lowercase().as_str() {
            "day" => Some(Self::Day),
            "week" | "" => Some(Self::Week),
            "month" => Some(Self::Month),
            "year" => Some(Self::Year),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Day => "day",
            Self::Week => "week",
            Self::Month => "month",
            Self::Year => "year",
        }
    }

    pub fn length(self) -> Duration {
        Duration::days(match self {
            Self::Day => 1,
            Self::Week => 7,
            Self::Month => 30,
            Self::Year => 365,
        })
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Analytics {
    pub period: Period,
    pub start: DateTime<Utc>,
    pub end: DateTime<Utc>,
    pub entry_count: u32,
    pub session_count: u32,
    pub total_session_minutes: f64,
    pub average_session_minutes: f64,
    pub total_tokens: u64,
    /// Lower-cased tags, most frequent first, ties alphabetical.
    pub tag_frequencies: Vec<(String, u32)>,
    /// Every UTC day the window touches, oldest first, zero days included.
    pub entries_per_day: Vec<(NaiveDate, u32)>,
}

/// Analytics of the entries and sessions inside the window. Items outside `[start, end)` are
/// ignored, so callers may pass a superset.
pub fn compute(
    period: Period,
    end: DateTime<Utc>,
    entries: &[EntryStat],
    sessions: &[Session],
) -> Analytics {
    let start = end - period.length();
    let inside = |t: DateTime<Utc>| t >= start && t < end;
    let entries: Vec<_> = entries.iter().filter(|e| inside(e.created_at)).collect();
    let sessions: Vec<_> = sessions.iter().filter(|s| inside(s.start_time)).collect();

    let mut tags: HashMap<String, u32> = HashMap::new();
    let mut per_day: BTreeMap<NaiveDate, u32> = BTreeMap::new();
    let mut day = start.date_naive();
    while day <= end.date_naive() {
        per_day.insert(day, 0);
        day = day.succ_opt().unwrap_or(NaiveDate::MAX);
    }
    for entry in &entries {
        for tag in &entry.tags {
            *tags.entry(tag.to_lowercase()).or_default() += 1;
        }
        *per_day.entry(entry.created_at.date_naive()).or_default() += 1;
    }
    let mut tag_frequencies: Vec<_> = tags.into_iter().collect();
    tag_frequencies.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));

    let ended: Vec<f64> = sessions
        .iter()
        .filter(|s| s.end_time.is_some())
        .map(|s| s.duration_minutes())
        .collect();
    let total_session_minutes: f64 = ended.iter().sum();
    Analytics {
        period,
        start,
        end,
        entry_count: entries.len() as u32,
        session_count: sessions.len() as u32,
        total_session_minutes,
        average_session_minutes: if ended.is_empty() {
            0.0
        } else {
            total_session_minutes / ended.len() as f64
        },
        total_tokens: entries.iter().map(|e| u64::from(e.token_count)).sum(),
        tag_frequencies,
        entries_per_day: per_day.into_iter().collect(),
    }
}

#[cfg(test)]
mod tests {
    use metachat_validation::{SessionId, UserId};

    use super::*;
    use chrono::TimeZone;

    fn at(d: u32, h: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2024, 3, d, h, 0, 0).unwrap()
    }

    fn entry(tokens: u32, tags: &[&str], created_at: DateTime<Utc>) -> EntryStat {
        EntryStat {
            created_at,
            token_count: tokens,
            tags: tags.iter().map(|t| t.to_string()).collect(),
        }
    }

    fn session(start: DateTime<Utc>, minutes: Option<i64>) -> Session {
        Session {
            id: SessionId::new(),
            user_id: UserId::new(),
            start_time: start,
            end_time: minutes.map(|m| start + Duration::minutes(m)),
        }
    }

    #[test]
    fn a_week_counts_only_what_is_inside_the_window() {
        let now = at(10, 12);
        let entries = vec![
            entry(100, &["Gratitude", "work"], at(10, 9)),
            entry(50, &["gratitude"], at(8, 9)),
            entry(999, &["old"], at(1, 9)), // before the window
        ];
        let sessions = vec![
            session(at(10, 8), Some(30)),
            session(at(9, 8), Some(60)),
            session(at(10, 11), None), // still active: counted, no minutes
            session(at(2, 8), Some(500)), // before the window
        ];
        let a = compute(Period::Week, now, &entries, &sessions);
        assert_eq!(a.start, at(3, 12));
        assert_eq!(
            (a.entry_count, a.session_count, a.total_tokens),
            (2, 3, 150)
        );
        assert_eq!(a.total_session_minutes, 90.0);
        assert_eq!(a.average_session_minutes, 45.0);
        assert_eq!(
            a.tag_frequencies,
            [("gratitude".to_string(), 2), ("work".to_string(), 1)]
        );
        assert_eq!(a.entries_per_day.len(), 8, "3rd..10th March");
        assert_eq!(a.entries_per_day.first(), Some(&(at(3, 0).date_naive(), 0)));
        assert_eq!(a.entries_per_day.last(), Some(&(at(10, 0).date_naive(), 1)));
        assert_eq!(a.entries_per_day.iter().map(|d| d.1).sum::<u32>(), 2);
    }

    #[test]
    fn an_empty_window_has_zero_averages_not_nan() {
        let a = compute(Period::Day, at(10, 12), &[], &[]);
        assert_eq!((a.entry_count, a.average_session_minutes), (0, 0.0));
        assert_eq!(a.entries_per_day.len(), 2);
    }

    #[test]
    fn periods_parse_case_insensitively_and_default_to_week() {
        assert_eq!(Period::parse("Month"), Some(Period::Month));
        assert_eq!(Period::parse(""), Some(Period::Week));
        assert_eq!(Period::parse("fortnight"), None);
    }
}
