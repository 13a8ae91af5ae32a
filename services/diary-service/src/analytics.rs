//! Writing analytics, kept by the read models as totals per user and UTC quarter hour.
//!
//! Every time zone's offset is a multiple of 15 minutes, so each quarter-hour bucket lies
//! inside one calendar day of any zone: summing buckets gives the days of any `timeZone`
//! exactly, and a query reads only the buckets of its window, whatever the writer's history.
//! A bucket's totals are the sum of its entries' and sessions' shares ([`BucketTotals::of`]).
//! The embedded read models move a row's share when the row changes (subtract the old, add
//! the new: an event applied again changes no row, so moves nothing) and also keep each UTC
//! day's totals ([`DayRollup`]), so a window reads a row per day; the Cassandra read models
//! move a member's share in a lightweight transaction, with the stamp of the state it was
//! computed from, so that redeliveries and concurrent consumers move each change once. Sums
//! of floats stay on a grid of 10⁻⁹, so totals do not depend on the order of additions and
//! subtractions.
//! Nothing here holds diary text: counts, tags, keywords and the analyzers' summable counts.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use analysis::{ArchetypeSignals, Features, SensoryProfile};
use chrono::{DateTime, Duration, NaiveDate, TimeZone, Utc};
use chrono_tz::Tz;
use metachat_proto::error::ApiError;
use serde::{Deserialize, Serialize};

use crate::domain::DiaryEntryAnalyzed;

/// Length of a bucket.
pub const BUCKET_MICROS: i64 = 15 * 60 * 1_000_000;

/// The longest window a query may cover: a leap year and a few days, so that a year in any
/// zone fits.
pub const MAX_WINDOW_DAYS: i64 = 370;

/// Keywords listed, most widespread first.
pub const TOP_KEYWORDS: usize = 10;

/// The start (microseconds since the epoch) of the quarter hour holding `micros`.
pub fn bucket_of(micros: i64) -> i64 {
    micros.div_euclid(BUCKET_MICROS) * BUCKET_MICROS
}

/// What the read models keep of an entry's analysis: the summable part, no text beyond the
/// keywords. Stored as JSON in the entry's row.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AnalysisSummary {
    /// The entry version whose content was analysed.
    pub entry_version: u64,
    pub analyzer_version: String,
    /// `None` for text in another language than English (not scored).
    pub compound: Option<f64>,
    pub keywords: Vec<String>,
    pub features: Features,
}

impl AnalysisSummary {
    pub fn of(analyzed: &DiaryEntryAnalyzed) -> Self {
        Self {
            entry_version: analyzed.entry_version,
            analyzer_version: analyzed.analyzer_version.clone(),
            compound: analyzed.sentiment.as_ref().map(|s| s.compound),
            keywords: analyzed.keywords.clone(),
            features: analyzed.features.clone(),
        }
    }
}

/// What analytics reads of one live entry's row.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct EntryFacts {
    pub token_count: u32,
    pub tags: Vec<String>,
    /// Words of the current content, counted from the text.
    pub word_count: u32,
    /// The analysis of the current content; `None` before it, or with analysis switched off.
    pub analysis: Option<AnalysisSummary>,
}

/// What analytics reads of one session's row.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SessionFacts {
    pub start_time: DateTime<Utc>,
    pub end_time: Option<DateTime<Utc>>,
}

/// The totals of one user's quarter hour: entries created in it and sessions started in it.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct BucketTotals {
    pub entries: u32,
    pub words: u64,
    pub tokens: u64,
    /// Entries with an analysis.
    pub analysed: u32,
    /// Of which scored for sentiment (English), and the sum of their VADER compounds.
    pub scored: u32,
    pub sentiment_sum: f64,
    /// Lower-cased tag → entries carrying it.
    pub tags: BTreeMap<String, u32>,
    /// Keyword → entries among whose keywords it is.
    pub keywords: BTreeMap<String, u32>,
    /// Entries analysed by the current analyzer version, and their summed features.
    pub profile_entries: u32,
    pub features: Features,
    pub sessions: u32,
    pub ended_sessions: u32,
    pub session_minutes: f64,
}

impl BucketTotals {
    /// The totals of a bucket's live entries and sessions, the same in any order of rows.
    pub fn of(entries: &[EntryFacts], sessions: &[SessionFacts]) -> Self {
        let mut t = Self::default();
        let mut compounds = Vec::new();
        for e in entries {
            t.entries += 1;
            t.words += u64::from(e.word_count);
            t.tokens += u64::from(e.token_count);
            let mut seen: Vec<String> = Vec::new();
            for tag in &e.tags {
                let tag = tag.to_lowercase();
                if !seen.contains(&tag) {
                    *t.tags.entry(tag.clone()).or_default() += 1;
                    seen.push(tag);
                }
            }
            if let Some(a) = &e.analysis {
                t.analysed += 1;
                if let Some(compound) = a.compound {
                    t.scored += 1;
                    compounds.push(on_grid(compound));
                }
                for k in a.keywords.iter().collect::<BTreeSet<_>>() {
                    *t.keywords.entry(k.clone()).or_default() += 1;
                }
                if a.analyzer_version == analysis::ANALYZER_VERSION {
                    t.profile_entries += 1;
                    t.features.add(&a.features);
                }
            }
        }
        t.sentiment_sum = sorted_sum(compounds);
        let mut minutes = Vec::new();
        for s in sessions {
            t.sessions += 1;
            if let Some(end) = s.end_time {
                t.ended_sessions += 1;
                minutes.push(on_grid(
                    (end - s.start_time).num_milliseconds() as f64 / 60_000.0,
                ));
            }
        }
        t.session_minutes = sorted_sum(minutes);
        t
    }

    /// Whether nothing is counted (such a bucket need not be stored).
    pub fn is_empty(&self) -> bool {
        self.entries == 0 && self.sessions == 0
    }

    /// Adds another bucket's totals (or an entry's or session's share of one). Sums of
    /// floats are kept on a grid of 10⁻⁹, so that they do not depend on the order they were
    /// added and subtracted in.
    pub fn add(&mut self, o: &BucketTotals) {
        self.entries += o.entries;
        self.words += o.words;
        self.tokens += o.tokens;
        self.analysed += o.analysed;
        self.scored += o.scored;
        self.sentiment_sum = on_grid(self.sentiment_sum + o.sentiment_sum);
        for (counts, added) in [(&mut self.tags, &o.tags), (&mut self.keywords, &o.keywords)] {
            for (k, n) in added {
                // A key already counted is not copied again.
                match counts.get_mut(k) {
                    Some(c) => *c += n,
                    None => {
                        counts.insert(k.clone(), *n);
                    }
                }
            }
        }
        self.profile_entries += o.profile_entries;
        self.features.add(&o.features);
        self.sessions += o.sessions;
        self.ended_sessions += o.ended_sessions;
        self.session_minutes = on_grid(self.session_minutes + o.session_minutes);
    }

    /// Takes back totals [`BucketTotals::add`] added: what was added and subtracted leaves
    /// no trace (no tag or keyword counted zero times).
    pub fn subtract(&mut self, o: &BucketTotals) {
        self.entries = self.entries.saturating_sub(o.entries);
        self.words = self.words.saturating_sub(o.words);
        self.tokens = self.tokens.saturating_sub(o.tokens);
        self.analysed = self.analysed.saturating_sub(o.analysed);
        self.scored = self.scored.saturating_sub(o.scored);
        self.sentiment_sum = on_grid(self.sentiment_sum - o.sentiment_sum);
        for (counts, taken) in [(&mut self.tags, &o.tags), (&mut self.keywords, &o.keywords)] {
            for (k, n) in taken {
                if let Some(c) = counts.get_mut(k) {
                    *c = c.saturating_sub(*n);
                    if *c == 0 {
                        counts.remove(k);
                    }
                }
            }
        }
        self.profile_entries = self.profile_entries.saturating_sub(o.profile_entries);
        self.features.subtract(&o.features);
        self.sessions = self.sessions.saturating_sub(o.sessions);
        self.ended_sessions = self.ended_sessions.saturating_sub(o.ended_sessions);
        self.session_minutes = on_grid(self.session_minutes - o.session_minutes);
        if self.scored == 0 {
            self.sentiment_sum = 0.0;
        }
        if self.ended_sessions == 0 {
            self.session_minutes = 0.0;
        }
    }

    /// The counts a calendar day of any zone needs of this quarter hour.
    pub fn counts(&self) -> QuarterCounts {
        QuarterCounts {
            entries: self.entries,
            words: self.words,
            tokens: self.tokens,
            scored: self.scored,
            sentiment_sum: self.sentiment_sum,
        }
    }
}

/// `x` on the grid of 10⁻⁹ that sums of the totals' floats are kept on.
fn on_grid(x: f64) -> f64 {
    (x * 1e9).round() / 1e9
}

/// What the days of a window need of one quarter hour: the counts that make a day's line
/// (the window's totals come from [`BucketTotals`]).
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct QuarterCounts {
    pub entries: u32,
    pub words: u64,
    pub tokens: u64,
    pub scored: u32,
    pub sentiment_sum: f64,
}

impl QuarterCounts {
    fn add(&mut self, o: &QuarterCounts) {
        self.entries += o.entries;
        self.words += o.words;
        self.tokens += o.tokens;
        self.scored += o.scored;
        self.sentiment_sum = on_grid(self.sentiment_sum + o.sentiment_sum);
    }
}

/// What analytics reads for a window: the totals of every quarter hour in it, and the
/// counts of each of those quarter hours with an entry (`(bucket start, counts)`, oldest
/// first).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct WindowTotals {
    pub total: BucketTotals,
    pub quarters: Vec<(i64, QuarterCounts)>,
}

impl WindowTotals {
    /// The totals of `buckets` (each `(bucket start, totals)`, oldest first).
    pub fn of(buckets: &[(i64, BucketTotals)]) -> Self {
        let mut w = Self::default();
        for (bucket, t) in buckets {
            w.total.add(t);
            if t.entries > 0 {
                w.quarters.push((*bucket, t.counts()));
            }
        }
        w
    }
}

/// The analytics totals of one user's UTC day, kept beside its buckets so that a window
/// reads a row per day instead of one per quarter hour: the day's totals, and the counts of
/// its quarter hours with an entry, for the days of other zones.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct DayRollup {
    pub totals: BucketTotals,
    /// Bucket start → counts; only quarter hours with an entry.
    pub quarters: BTreeMap<i64, QuarterCounts>,
}

/// Quarter hours in a UTC day.
pub const QUARTERS_PER_DAY: i64 = DAY_MICROS / BUCKET_MICROS;

impl DayRollup {
    /// The quarters as stored: `[[quarter of the day, entries, words, tokens, scored,
    /// sentiment sum], ...]`, a fraction of the size of named fields (a year's analytics
    /// reads 365 of these).
    pub fn quarters_json(&self, day: i64) -> serde_json::Result<String> {
        let rows: Vec<(i64, u32, u64, u64, u32, f64)> = self
            .quarters
            .iter()
            .map(|(b, c)| {
                (
                    (b - day) / BUCKET_MICROS,
                    c.entries,
                    c.words,
                    c.tokens,
                    c.scored,
                    c.sentiment_sum,
                )
            })
            .collect();
        serde_json::to_string(&rows)
    }

    /// Quarters stored by [`DayRollup::quarters_json`], of the day starting at `day`.
    pub fn quarters_from_json(
        day: i64,
        json: &str,
    ) -> serde_json::Result<BTreeMap<i64, QuarterCounts>> {
        let rows: Vec<(i64, u32, u64, u64, u32, f64)> = serde_json::from_str(json)?;
        Ok(rows
            .into_iter()
            .map(|(q, entries, words, tokens, scored, sentiment_sum)| {
                let counts = QuarterCounts {
                    entries,
                    words,
                    tokens,
                    scored,
                    sentiment_sum,
                };
                (day + q * BUCKET_MICROS, counts)
            })
            .collect())
    }

    /// Which quarter hours of the day hold an entry, one bit each (bit `i` for the `i`th):
    /// what streaks read, a few bytes a day.
    pub fn written_mask(&self, day: i64) -> Vec<u8> {
        let mut mask = vec![0u8; (QUARTERS_PER_DAY as usize).div_ceil(8)];
        for (b, c) in &self.quarters {
            let q = (b - day) / BUCKET_MICROS;
            if c.entries > 0 && (0..QUARTERS_PER_DAY).contains(&q) {
                mask[q as usize / 8] |= 1 << (q % 8);
            }
        }
        mask
    }

    /// The starts of the quarter hours a [`DayRollup::written_mask`] marks.
    pub fn written_from_mask(day: i64, mask: &[u8]) -> impl Iterator<Item = i64> + '_ {
        (0..QUARTERS_PER_DAY)
            .filter(move |q| {
                mask.get(*q as usize / 8)
                    .is_some_and(|m| m & (1 << (q % 8)) != 0)
            })
            .map(move |q| day + q * BUCKET_MICROS)
    }

    /// Moves a quarter hour `bucket` of this day from totals `before` to `after`.
    pub fn change(&mut self, bucket: i64, before: &BucketTotals, after: &BucketTotals) {
        self.totals.subtract(before);
        self.totals.add(after);
        let counts = after.counts();
        if counts.entries == 0 {
            self.quarters.remove(&bucket);
        } else {
            self.quarters.insert(bucket, counts);
        }
    }

    pub fn is_empty(&self) -> bool {
        self.totals.is_empty()
    }
}

/// Length of a UTC day.
pub const DAY_MICROS: i64 = 24 * 60 * 60 * 1_000_000;

/// The start of the UTC day holding `micros`.
pub fn day_of_micros(micros: i64) -> i64 {
    micros.div_euclid(DAY_MICROS) * DAY_MICROS
}

/// A sum of floats that does not depend on the order the rows were read in, rounded to nine
/// decimals (values read back from JSON may differ from those written in the last bit). The
/// values are on that grid already, so this is the sum [`BucketTotals::add`] reaches one
/// value at a time.
fn sorted_sum(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    let sum: f64 = values.into_iter().sum();
    (sum * 1e9).round() / 1e9
}

/// The length of an analytics window.
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

/// The window of a query, `[start, end)`, and the zone of its days. Entries and sessions
/// count by the quarter hour they fall in: the quarter hour holding `start` counts whole.
#[derive(Debug, Clone, PartialEq)]
pub struct Window {
    /// `day`, `week`, `month`, `year`, or `custom` for an explicit `from` and `to`.
    pub period: String,
    pub start: DateTime<Utc>,
    pub end: DateTime<Utc>,
    pub zone: Tz,
}

impl Window {
    /// The window a request names: `from` and `to`, each defaulting from the other and the
    /// `period` (the period ending `to`, or now).
    pub fn parse(
        period: &str,
        from: Option<DateTime<Utc>>,
        to: Option<DateTime<Utc>>,
        time_zone: &str,
        now: DateTime<Utc>,
    ) -> Result<Self, ApiError> {
        let zone = match time_zone.trim() {
            "" => Tz::UTC,
            name => name.parse::<Tz>().map_err(|_| {
                ApiError::invalid_field(
                    "timeZone",
                    "must be an IANA time zone name such as Europe/Paris or UTC",
                )
            })?,
        };
        // A period is checked also beside an explicit from and to (where it is not used).
        let period = match period.trim() {
            "" => None,
            text => Some(Period::parse(text).ok_or_else(|| {
                ApiError::invalid_field("period", "must be one of day, week, month, year")
            })?),
        };
        // The parameter a window out of range is blamed on: the one the client sent.
        let edge = if to.is_some() { "to" } else { "from" };
        let from_given = from.is_some();
        let (label, from, to) = match (from, to) {
            (Some(from), Some(to)) => ("custom".to_owned(), from, to),
            (from, to) => {
                let period = period.unwrap_or(Period::Week);
                let (from, to) = match (from, to) {
                    (Some(from), None) => (from, from + period.length()),
                    (None, Some(to)) => (to - period.length(), to),
                    _ => (now - period.length(), now),
                };
                (period.as_str().to_owned(), from, to)
            }
        };
        if from >= to {
            return Err(ApiError::invalid_field("from", "must be before to"));
        }
        if to - from > Duration::days(MAX_WINDOW_DAYS) {
            return Err(ApiError::invalid_field(
                "to",
                format!("the window from..to must be at most {MAX_WINDOW_DAYS} days"),
            ));
        }
        // Totals are kept per quarter hour: the window counted is the one asked, widened to
        // whole quarter hours (and said so in its start and end).
        let start = micros(bucket_of(from.timestamp_micros()));
        let end = match bucket_of(to.timestamp_micros()) {
            b if b == to.timestamp_micros() => to,
            b => micros(b + BUCKET_MICROS),
        };
        if end > latest() {
            return Err(ApiError::invalid_field(
                edge,
                "the window must end by 9999-12-30T00:00:00Z",
            ));
        }
        if start < earliest() {
            return Err(ApiError::invalid_field(
                if edge == "to" && from_given {
                    "from"
                } else {
                    edge
                },
                "the window must start at 0001-01-02T00:00:00Z or later",
            ));
        }
        Ok(Self {
            period: label,
            start,
            end,
            zone,
        })
    }

    /// The start of the first bucket the window reads.
    pub fn first_bucket(&self) -> DateTime<Utc> {
        micros(bucket_of(self.start.timestamp_micros()))
    }

    /// The calendar day of the zone that a bucket lies in.
    pub fn day_of(&self, bucket_micros: i64) -> NaiveDate {
        self.zone
            .from_utc_datetime(&micros(bucket_micros).naive_utc())
            .date_naive()
    }

    /// Every day of the window, oldest first.
    pub fn days(&self) -> Vec<NaiveDate> {
        let first = self.day_of(self.start.timestamp_micros());
        let last = self.day_of(self.end.timestamp_micros() - 1);
        first.iter_days().take_while(|d| *d <= last).collect()
    }

    /// The start of `day` in the zone, at or before it (a day that starts in a gap of the
    /// zone's clock starts at the gap's end).
    pub fn start_of(&self, day: NaiveDate) -> DateTime<Utc> {
        let midnight = day.and_hms_opt(0, 0, 0).unwrap_or_default();
        match self.zone.from_local_datetime(&midnight) {
            chrono::LocalResult::Single(t) | chrono::LocalResult::Ambiguous(t, _) => {
                t.with_timezone(&Utc)
            }
            chrono::LocalResult::None => {
                // Midnight skipped: the first quarter hour that exists.
                let mut t = midnight;
                loop {
                    t += Duration::minutes(15);
                    if let Some(u) = self.zone.from_local_datetime(&t).earliest() {
                        return u.with_timezone(&Utc);
                    }
                }
            }
        }
    }
}

fn micros(m: i64) -> DateTime<Utc> {
    DateTime::from_timestamp_micros(m).unwrap_or_default()
}

/// The earliest start of a window: its days, in any time zone, must be in year 1 or later.
fn earliest() -> DateTime<Utc> {
    "0001-01-02T00:00:00Z"
        .parse()
        .unwrap_or(DateTime::<Utc>::MIN_UTC)
}

/// The latest end of a window: its days, in any time zone, must print as four-digit-year
/// dates.
fn latest() -> DateTime<Utc> {
    "9999-12-30T00:00:00Z"
        .parse()
        .unwrap_or(DateTime::<Utc>::MAX_UTC)
}

/// One calendar day of the window.
#[derive(Debug, Clone, PartialEq)]
pub struct DayTotals {
    pub date: NaiveDate,
    pub entries: u32,
    pub words: u64,
    pub tokens: u64,
    pub mean_sentiment: Option<f64>,
}

/// The profile of the window's writing, scored from its summed features.
#[derive(Debug, Clone, PartialEq)]
pub struct WindowProfile {
    pub entries: u32,
    pub words: u64,
    pub sensory: SensoryProfile,
    pub archetypes: ArchetypeSignals,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Analytics {
    pub window: Window,
    pub entry_count: u32,
    pub session_count: u32,
    pub total_session_minutes: f64,
    pub average_session_minutes: f64,
    pub total_tokens: u64,
    pub word_count: u64,
    /// Lower-cased tags, most frequent first, ties alphabetical.
    pub tag_frequencies: Vec<(String, u32)>,
    /// Every day of the window, oldest first, zero days included.
    pub days: Vec<DayTotals>,
    pub writing_days: u32,
    pub current_streak: u32,
    pub longest_streak: u32,
    pub analysis_enabled: bool,
    /// Derived from the text: `None`, empty and `None` when analysis is off.
    pub mean_sentiment: Option<f64>,
    pub top_keywords: Vec<(String, u32)>,
    pub profile: Option<WindowProfile>,
    /// The window's entries grouped by meaning ([`crate::search::themes`]); `None` without
    /// the sentence-embedding model or while analysis is off.
    pub themes: Option<Vec<crate::search::themes::Theme>>,
}

/// The days of the zone holding the quarter hours `written` (their starts).
pub fn writing_days(
    window: &Window,
    written: impl IntoIterator<Item = i64>,
) -> BTreeSet<NaiveDate> {
    let mut days = DayCursor::default();
    written
        .into_iter()
        .map(|b| days.day_of(window, b))
        .collect()
}

/// The day of the zone a quarter hour lies in, remembering the last day found and its span:
/// a run of quarter hours in one day reads the zone's clock once.
#[derive(Default)]
struct DayCursor {
    last: Option<(NaiveDate, std::ops::Range<i64>)>,
}

impl DayCursor {
    fn day_of(&mut self, window: &Window, bucket: i64) -> NaiveDate {
        if let Some((day, span)) = &self.last
            && span.contains(&bucket)
        {
            return *day;
        }
        let day = window.day_of(bucket);
        self.last = day.succ_opt().map(|next| {
            let span =
                window.start_of(day).timestamp_micros()..window.start_of(next).timestamp_micros();
            (day, span)
        });
        day
    }
}

/// Consecutive days of `days` ending on `last`, or on the day before while `last` has none.
/// Also says whether the run reached `first` (so that days before it may continue it).
pub fn run_ending(days: &BTreeSet<NaiveDate>, first: NaiveDate, last: NaiveDate) -> (u32, bool) {
    let mut day = if days.contains(&last) {
        last
    } else {
        match last.pred_opt() {
            Some(d) => d,
            None => return (0, false),
        }
    };
    let mut n = 0;
    while days.contains(&day) {
        n += 1;
        if day <= first {
            return (n, true);
        }
        match day.pred_opt() {
            Some(d) => day = d,
            None => break,
        }
    }
    (n, false)
}

/// Consecutive days of `days` ending exactly on `last` (none when `last` has none), and
/// whether the run reached `first`.
pub fn run_ending_on(days: &BTreeSet<NaiveDate>, first: NaiveDate, last: NaiveDate) -> (u32, bool) {
    if !days.contains(&last) {
        return (0, false);
    }
    run_ending(days, first, last)
}

/// Analytics of the window's buckets (each `(bucket start, totals)`, inside the window).
/// `current_streak` counts only inside the window; the caller extends it backwards.
pub fn compute(
    window: Window,
    buckets: &[(i64, BucketTotals)],
    analysis_enabled: bool,
) -> Analytics {
    compute_totals(window, WindowTotals::of(buckets), analysis_enabled)
}

/// Analytics of the window's totals (see [`compute`]).
pub fn compute_totals(window: Window, totals: WindowTotals, analysis_enabled: bool) -> Analytics {
    let WindowTotals { total, quarters } = totals;
    let mut per_day: BTreeMap<NaiveDate, QuarterCounts> = window
        .days()
        .into_iter()
        .map(|d| (d, QuarterCounts::default()))
        .collect();
    let mut cursor = DayCursor::default();
    for (bucket, t) in &quarters {
        per_day
            .entry(cursor.day_of(&window, *bucket))
            .or_default()
            .add(t);
    }
    let days: Vec<DayTotals> = per_day
        .iter()
        .map(|(date, t)| DayTotals {
            date: *date,
            entries: t.entries,
            words: t.words,
            tokens: t.tokens,
            mean_sentiment: (analysis_enabled && t.scored > 0)
                .then(|| t.sentiment_sum / f64::from(t.scored)),
        })
        .collect();
    let written: BTreeSet<NaiveDate> = days
        .iter()
        .filter(|d| d.entries > 0)
        .map(|d| d.date)
        .collect();
    let mut longest = 0u32;
    let mut run = 0u32;
    for d in &days {
        run = if d.entries > 0 { run + 1 } else { 0 };
        longest = longest.max(run);
    }
    let (first, last) = (
        days.first().map(|d| d.date).unwrap_or_default(),
        days.last().map(|d| d.date).unwrap_or_default(),
    );
    let (current, _) = run_ending(&written, first, last);

    let mut tag_frequencies: Vec<(String, u32)> = total.tags.clone().into_iter().collect();
    tag_frequencies.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    let mut top_keywords: Vec<(String, u32)> = total.keywords.clone().into_iter().collect();
    top_keywords.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    top_keywords.truncate(TOP_KEYWORDS);

    Analytics {
        themes: None,
        entry_count: total.entries,
        session_count: total.sessions,
        total_session_minutes: total.session_minutes,
        average_session_minutes: if total.ended_sessions == 0 {
            0.0
        } else {
            total.session_minutes / f64::from(total.ended_sessions)
        },
        total_tokens: total.tokens,
        word_count: total.words,
        tag_frequencies,
        writing_days: written.len() as u32,
        current_streak: current,
        longest_streak: longest,
        days,
        analysis_enabled,
        mean_sentiment: (analysis_enabled && total.scored > 0)
            .then(|| total.sentiment_sum / f64::from(total.scored)),
        top_keywords: if analysis_enabled {
            top_keywords
        } else {
            Vec::new()
        },
        profile: analysis_enabled.then(|| WindowProfile {
            entries: total.profile_entries,
            words: total.features.lexicon_words,
            sensory: SensoryProfile::from_features(&total.features),
            archetypes: ArchetypeSignals::from_features(&total.features),
        }),
        window,
    }
}

/// Groups rows by the bucket of their time: each bucket's rows, keyed by bucket start.
pub fn by_bucket<T>(rows: impl IntoIterator<Item = (i64, T)>) -> HashMap<i64, Vec<T>> {
    let mut out: HashMap<i64, Vec<T>> = HashMap::new();
    for (at, row) in rows {
        out.entry(bucket_of(at)).or_default().push(row);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(text: &str) -> DateTime<Utc> {
        text.parse().unwrap()
    }

    fn entry(tokens: u32, words: u32, tags: &[&str], compound: Option<f64>) -> EntryFacts {
        EntryFacts {
            token_count: tokens,
            tags: tags.iter().map(|t| t.to_string()).collect(),
            word_count: words,
            analysis: compound.map(|c| AnalysisSummary {
                entry_version: 1,
                analyzer_version: analysis::ANALYZER_VERSION.into(),
                compound: Some(c),
                keywords: vec!["garden".into()],
                features: Features {
                    words: u64::from(words),
                    lexicon_words: u64::from(words),
                    ..Features::default()
                },
            }),
        }
    }

    fn bucket(time: &str, entries: &[EntryFacts]) -> (i64, BucketTotals) {
        let b = bucket_of(at(time).timestamp_micros());
        (b, BucketTotals::of(entries, &[]))
    }

    #[test]
    fn writing_days_reads_the_clock_once_a_day_and_agrees_with_each_quarter_hour() {
        // Quarter hours over a year in zones with clock changes and odd offsets, some
        // days written all day, some once, some not at all.
        for zone in [
            "America/Los_Angeles",
            "Asia/Kathmandu",
            "Australia/Lord_Howe",
            "UTC",
        ] {
            let w = window("2024-01-01T00:00:00Z", "2025-01-01T00:00:00Z", zone);
            let start = w.start.timestamp_micros();
            let quarter = 15 * 60 * 1_000_000i64;
            let written: Vec<i64> = (0..366 * 96)
                .filter(|q| (q / 96) % 3 != 2 && (q % 96 == 40 || (q / 96) % 5 == 0))
                .map(|q| start + q * quarter)
                .collect();
            let each: BTreeSet<NaiveDate> = written.iter().map(|b| w.day_of(*b)).collect();
            assert_eq!(writing_days(&w, written.iter().copied()), each, "{zone}");
        }
    }

    fn window(from: &str, to: &str, zone: &str) -> Window {
        Window::parse("", Some(at(from)), Some(at(to)), zone, at(to)).unwrap()
    }

    #[test]
    fn entries_in_another_language_count_but_do_not_move_the_mean_sentiment() {
        let mut french = entry(30, 20, &[], Some(0.0));
        if let Some(a) = &mut french.analysis {
            a.compound = None;
        }
        let b = bucket(
            "2024-03-05T10:00:00Z",
            &[entry(10, 5, &[], Some(0.5)), french],
        );
        assert_eq!((b.1.analysed, b.1.scored), (2, 1));
        let w = window("2024-03-01T00:00:00Z", "2024-03-08T00:00:00Z", "UTC");
        let a = compute(w, &[b], true);
        assert_eq!(a.mean_sentiment, Some(0.5));
        assert_eq!(a.entry_count, 2);
    }

    #[test]
    fn a_late_evening_in_kolkata_is_that_local_day() {
        // 23:50 in Kolkata (UTC+05:30) is 18:20 UTC the same day.
        let w = window(
            "2024-03-01T00:00:00Z",
            "2024-03-08T00:00:00Z",
            "Asia/Kolkata",
        );
        let b = bucket("2024-03-05T18:20:00Z", &[entry(10, 5, &[], None)]);
        let a = compute(w.clone(), std::slice::from_ref(&b), true);
        let day = a.days.iter().find(|d| d.entries == 1).unwrap();
        assert_eq!(day.date.to_string(), "2024-03-05");
        // 00:10 in Kolkata the next day is 18:40 UTC: the next local day, the same UTC one.
        let b2 = bucket("2024-03-05T18:40:00Z", &[entry(10, 5, &[], None)]);
        let a = compute(w, &[b, b2], true);
        let days: Vec<_> = a
            .days
            .iter()
            .filter(|d| d.entries > 0)
            .map(|d| d.date.to_string())
            .collect();
        assert_eq!(days, ["2024-03-05", "2024-03-06"]);
        assert_eq!((a.writing_days, a.longest_streak), (2, 2));
    }

    #[test]
    fn streaks_break_at_a_gap_and_the_current_one_may_end_yesterday() {
        let w = window("2024-03-01T00:00:00Z", "2024-03-11T00:00:00Z", "UTC");
        let buckets: Vec<_> = ["01", "02", "03", "05", "06", "07", "08", "09"]
            .iter()
            .map(|d| bucket(&format!("2024-03-{d}T09:00:00Z"), &[entry(1, 1, &[], None)]))
            .collect();
        let a = compute(w, &buckets, true);
        assert_eq!(a.days.len(), 10);
        // The 10th has no entry yet: the streak of the 5th to the 9th still counts.
        assert_eq!(
            (a.current_streak, a.longest_streak, a.writing_days),
            (5, 5, 8)
        );
    }

    #[test]
    fn totals_means_tags_keywords_and_a_switched_off_analysis() {
        let w = window("2024-03-01T00:00:00Z", "2024-03-02T00:00:00Z", "UTC");
        let buckets = vec![
            bucket(
                "2024-03-01T09:00:00Z",
                &[
                    entry(100, 40, &["Work", "work", "gratitude"], Some(0.5)),
                    entry(50, 20, &["gratitude"], None),
                ],
            ),
            bucket("2024-03-01T21:10:00Z", &[entry(10, 30, &[], Some(-0.1))]),
        ];
        let a = compute(w.clone(), &buckets, true);
        assert_eq!((a.entry_count, a.total_tokens, a.word_count), (3, 160, 90));
        assert_eq!(
            a.tag_frequencies,
            [("gratitude".to_owned(), 2), ("work".to_owned(), 1)]
        );
        assert!((a.mean_sentiment.unwrap() - 0.2).abs() < 1e-12);
        assert_eq!(a.top_keywords, [("garden".to_owned(), 2)]);
        let profile = a.profile.unwrap();
        assert_eq!((profile.entries, profile.words), (2, 70));
        assert!(matches!(profile.sensory, SensoryProfile::Measured(_)));

        let off = compute(w, &buckets, false);
        assert_eq!((off.entry_count, off.word_count), (3, 90));
        assert_eq!((off.mean_sentiment, off.profile), (None, None));
        assert!(off.top_keywords.is_empty() && off.days[0].mean_sentiment.is_none());
    }

    #[test]
    fn windows_default_from_the_period_and_are_checked() {
        let now = at("2024-03-10T12:07:00Z");
        let w = Window::parse("week", None, None, "", now).unwrap();
        // Widened to whole quarter hours, as counted.
        assert_eq!(
            (w.start, w.end),
            (at("2024-03-03T12:00:00Z"), at("2024-03-10T12:15:00Z"))
        );
        assert_eq!(w.first_bucket(), w.start);
        assert_eq!(w.period, "week");
        let exact = Window::parse("", Some(at("2024-03-01T10:15:00Z")), Some(now), "", now);
        assert_eq!(exact.unwrap().start, at("2024-03-01T10:15:00Z"));
        let w = Window::parse("day", Some(at("2024-01-01T00:00:00Z")), None, "", now).unwrap();
        assert_eq!(w.end, at("2024-01-02T00:00:00Z"));
        let field = |r: Result<Window, ApiError>| r.unwrap_err().details[0].field.clone();
        assert_eq!(
            field(Window::parse("week", None, None, "Mars/Olympus", now)),
            "timeZone"
        );
        assert_eq!(
            field(Window::parse("fortnight", None, None, "", now)),
            "period"
        );
        assert_eq!(
            field(Window::parse("", Some(now), Some(now), "", now)),
            "from"
        );
        let long = Window::parse("", Some(now - Duration::days(400)), Some(now), "", now);
        assert_eq!(field(long), "to");
        // A period is checked also beside an explicit window.
        let bogus = Window::parse(
            "fortnight",
            Some(now - Duration::days(1)),
            Some(now),
            "",
            now,
        );
        assert_eq!(field(bogus), "period");
        // The days of a window must print with four-digit years, and fall in year 1 or later.
        let far = at("9999-12-31T00:00:00Z");
        assert_eq!(
            field(Window::parse("year", Some(far), None, "", now)),
            "from"
        );
        let early = at("0001-01-01T00:10:00Z");
        assert_eq!(
            field(Window::parse("day", None, Some(early), "", now)),
            "to"
        );
        assert!(Window::parse("day", None, Some(at("0001-01-03T00:00:00Z")), "", now).is_ok());
        // A year in any zone fits.
        assert!(Window::parse("year", None, None, "Pacific/Kiritimati", now).is_ok());
    }

    #[test]
    fn a_run_reaching_the_first_day_says_so() {
        let d = |n| NaiveDate::from_ymd_opt(2024, 3, n).unwrap();
        let days: BTreeSet<_> = [d(1), d(2), d(3)].into_iter().collect();
        assert_eq!(run_ending(&days, d(2), d(3)), (2, true));
        assert_eq!(run_ending(&days, d(1), d(4)), (3, true));
        assert_eq!(run_ending(&days, d(1), d(5)), (0, false));
    }

    #[test]
    fn periods_parse_case_insensitively_and_default_to_week() {
        assert_eq!(Period::parse("Month"), Some(Period::Month));
        assert_eq!(Period::parse(""), Some(Period::Week));
        assert_eq!(Period::parse("fortnight"), None);
    }
}
