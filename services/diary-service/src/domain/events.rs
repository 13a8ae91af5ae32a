//! The diary events, exactly as the product names them.

use chrono::{DateTime, Utc};
use event_sourcing::DomainEvent;
use metachat_validation::{EntryId, SessionId, UserId};
use serde::{Deserialize, Serialize};

use super::entry::Tag;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", content = "data")]
pub enum EntryEvent {
    DiaryEntryCreated(DiaryEntryCreated),
    DiaryEntryUpdated(DiaryEntryUpdated),
    DiaryEntryDeleted(DiaryEntryDeleted),
    /// The content of one version of the entry was analysed (appended by the entry analyzer).
    DiaryEntryAnalyzed(DiaryEntryAnalyzed),
}

impl DomainEvent for EntryEvent {}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DiaryEntryCreated {
    pub entry_id: EntryId,
    pub user_id: UserId,
    pub title: String,
    pub content: String,
    pub token_count: u32,
    pub session_id: Option<SessionId>,
    pub tags: Vec<Tag>,
    /// When the entry was written, as the client said (an entry about an earlier day, or one
    /// imported from another journal); absent when it was written as it was recorded. Left
    /// out of the payload when absent, so entries written before it existed store the same
    /// bytes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created_at: Option<DateTime<Utc>>,
}

/// The entry's editable fields after the update.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DiaryEntryUpdated {
    pub user_id: UserId,
    pub title: String,
    pub content: String,
    pub token_count: u32,
    pub tags: Vec<Tag>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DiaryEntryDeleted {
    pub user_id: UserId,
}

/// What the analyzers measured in one version of an entry's content. Compact by design: scores
/// and versions, no copy of the text (keywords aside, which are phrases of it by nature).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DiaryEntryAnalyzed {
    pub user_id: UserId,
    /// The stream version of the event (creation or update) whose content was analysed.
    pub entry_version: u64,
    /// `analysis::ANALYZER_VERSION`: tokens, language, keywords, sensory and archetype rules.
    pub analyzer_version: String,
    /// `None` when the content was detected as another language than English: VADER reads
    /// English, and a score of another language's words would be noise, not a mood.
    pub sentiment: Option<SentimentScores>,
    /// o200k_base tokens of the content, measured (beside the entry's `tokenCount`, which may
    /// be the client's own figure).
    pub token_count: u32,
    /// ISO 639-1 code of the language the content was analysed as; `None` when unknown.
    pub language: Option<String>,
    /// Key phrases, most relevant first; empty for an unknown language.
    pub keywords: Vec<String>,
    /// Shares of the sensory words; `None` when there was too little English text to measure.
    pub sensory: Option<SensoryShares>,
    /// Archetypes with the confidence the writing matches each, strongest first; empty when
    /// there was too little English text to measure.
    pub archetype_signals: Vec<ArchetypeScore>,
    /// Words of the content (0 in analyses recorded before it was kept).
    #[serde(default)]
    pub word_count: u32,
    /// The summable counts behind `sensory` and `archetype_signals`: analytics add them up
    /// over many entries and score the sum (empty in analyses recorded before they were kept).
    #[serde(default)]
    pub features: analysis::Features,
    /// The version of the user's analysis setting stream it was made under (0: never
    /// switched). An analysis made before the user switched analysis off is void.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub setting_version: u64,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

/// A user's analysis setting changed (`DiaryAnalysisDisabled` or `DiaryAnalysisEnabled`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", content = "data")]
pub enum AnalysisSettingEvent {
    /// The user switched analysis off: what was derived from their writing is erased from
    /// every read, and nothing more is analysed.
    DiaryAnalysisDisabled(DiaryAnalysisSwitched),
    /// The user switched analysis back on: their entries are analysed again.
    DiaryAnalysisEnabled(DiaryAnalysisSwitched),
    /// The user was erased (`UserErased`): the read models and the search index drop their
    /// diary, and nothing of it is analysed again.
    DiaryErased(DiaryAnalysisSwitched),
}

impl DomainEvent for AnalysisSettingEvent {}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DiaryAnalysisSwitched {
    pub user_id: UserId,
}

/// VADER scores of the content.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SentimentScores {
    pub neg: f64,
    pub neu: f64,
    pub pos: f64,
    /// In [-1, 1].
    pub compound: f64,
    /// `sentiment::ANALYZER_VERSION`.
    pub analyzer_version: String,
    /// `sentiment::LEXICON`.
    pub lexicon: String,
}

/// The visual / auditory / kinesthetic split of the sensory words (summing to 1 when
/// `coverage` > 0), and their share of all words.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SensoryShares {
    pub visual: f64,
    pub auditory: f64,
    pub kinesthetic: f64,
    pub coverage: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ArchetypeScore {
    /// An id of `analysis::archetypes::CATALOGUE` (e.g. `thinker`).
    pub id: String,
    /// In [0, 1].
    pub confidence: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", content = "data")]
pub enum SessionEvent {
    DiarySessionStarted(DiarySessionStarted),
    /// An entry was written in the session. Recorded in the session's stream so that ending
    /// the session and writing in it are ordered: an end decided before an entry was stored
    /// conflicts and is decided again, so no entry is created after its session's end.
    DiarySessionEntryAdded(DiarySessionEntryAdded),
    DiarySessionEnded(DiarySessionEnded),
}

impl DomainEvent for SessionEvent {}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DiarySessionStarted {
    pub session_id: SessionId,
    pub user_id: UserId,
    pub start_time: DateTime<Utc>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DiarySessionEntryAdded {
    pub entry_id: EntryId,
    pub user_id: UserId,
    /// When the client said the entry was written (its `createdAt`): the session's end may
    /// not be before it. Absent when the client gave no time (the entry's time is then when
    /// it was stored, and the session's times are the client's own account).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub written_at: Option<DateTime<Utc>>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DiarySessionEnded {
    pub user_id: UserId,
    pub end_time: DateTime<Utc>,
}
