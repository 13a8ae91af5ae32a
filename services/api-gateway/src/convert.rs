//! Protobuf messages to the JSON the API promises (camelCase, RFC 3339 UTC, `null` for absent).

use std::collections::BTreeMap;

use metachat_proto::common::{EventHistory, StoredEvent};
use metachat_proto::{diary, user};
use serde::Serialize;
use serde_json::Value;
use utoipa::ToSchema;

use crate::schema;

use crate::time::{format_optional, format_timestamp};

/// A user: profile, archetype and modalities.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(as = User)]
pub(crate) struct UserJson {
    #[schema(format = Uuid)]
    id: String,
    #[schema(examples("johndoe"))]
    username: String,
    #[schema(format = Email, examples("john@example.com"))]
    email: String,
    #[schema(examples("John"))]
    first_name: String,
    #[schema(examples("Doe"))]
    last_name: String,
    #[schema(required = true, format = Date)]
    date_of_birth: Option<String>,
    #[schema(required = true)]
    avatar: Option<String>,
    #[schema(required = true)]
    bio: Option<String>,
    #[schema(required = true)]
    archetype: Option<ArchetypeJson>,
    #[schema(required = true, schema_with = schema::modalities_or_null)]
    modalities: Option<BTreeMap<String, f64>>,
    #[schema(required = true, format = DateTime)]
    created_at: Option<String>,
    #[schema(required = true, format = DateTime)]
    updated_at: Option<String>,
    /// Version of the user's event stream (`user-<id>`) this state reflects; also its `ETag`.
    #[schema(minimum = 1)]
    version: u64,
    /// The archetype the platform inferred from the user's recent writing, beside the
    /// explicit `archetype` (which inference never changes). `null` until there is enough
    /// English writing to infer from, while analysis is switched off, and in lists.
    #[schema(required = true)]
    inferred_archetype: Option<InferredArchetypeJson>,
    /// The sensory modalities inferred from the user's recent writing, beside the explicit
    /// `modalities`. `null` as `inferredArchetype` is.
    #[schema(required = true)]
    inferred_modalities: Option<InferredModalitiesJson>,
}

/// An archetype inferred from the user's writing, with what it rests on.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(as = InferredArchetype)]
pub(crate) struct InferredArchetypeJson {
    /// An id of the catalogue (`GET /archetypes`).
    #[schema(examples("thinker"))]
    archetype_id: String,
    #[schema(examples("The Thinker"))]
    archetype_name: String,
    /// How strongly the writing matches the archetype's rule, scaled down while there is
    /// little writing.
    #[schema(minimum = 0, maximum = 1)]
    confidence: f64,
    description: String,
    /// The measured features behind it, largest part first.
    evidence: Vec<InferenceEvidenceJson>,
    basis: InferenceBasisJson,
    #[schema(required = true, format = DateTime)]
    assigned_at: Option<String>,
    #[schema(required = true, format = DateTime)]
    updated_at: Option<String>,
}

/// Sensory modalities inferred from the user's writing.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(as = InferredModalities)]
pub(crate) struct InferredModalitiesJson {
    /// Shares of the sensory words (visual, auditory, kinesthetic), summing to 1. A
    /// description of the words used, not a diagnosis of how anyone learns or perceives.
    weights: BTreeMap<String, f64>,
    /// Sensory words over all the English words analysed.
    #[schema(minimum = 0, maximum = 1)]
    coverage: f64,
    /// One item per modality, with its most frequent words.
    evidence: Vec<InferenceEvidenceJson>,
    basis: InferenceBasisJson,
    #[schema(required = true, format = DateTime)]
    updated_at: Option<String>,
}

/// One measured feature behind an inference.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(as = InferenceEvidence)]
pub(crate) struct InferenceEvidenceJson {
    /// e.g. `cognitive`, `questionRate`, `visual`.
    feature: String,
    value: f64,
    strength: f64,
    weight: f64,
    /// The most frequent words behind it.
    words: Vec<String>,
}

/// The writing an inference was computed from.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(as = InferenceBasis)]
pub(crate) struct InferenceBasisJson {
    /// Entries analysed in the window.
    entries: u32,
    /// English words among them.
    words: u64,
    /// The days of writing looked at, ending when it was inferred.
    window_days: u32,
    analyzer_version: String,
}

fn evidence_json(evidence: Vec<user::InferenceEvidence>) -> Vec<InferenceEvidenceJson> {
    evidence
        .into_iter()
        .map(|e| InferenceEvidenceJson {
            feature: e.feature,
            value: e.value,
            strength: e.strength,
            weight: e.weight,
            words: e.words,
        })
        .collect()
}

fn basis_json(basis: Option<user::InferenceBasis>) -> InferenceBasisJson {
    let basis = basis.unwrap_or_default();
    InferenceBasisJson {
        entries: basis.entries,
        words: basis.words,
        window_days: basis.window_days,
        analyzer_version: basis.analyzer_version,
    }
}

/// The archetype assigned to a user.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(as = Archetype)]
pub(crate) struct ArchetypeJson {
    #[schema(examples("thinker"))]
    archetype_id: String,
    #[schema(examples("The Thinker"))]
    archetype_name: String,
    #[schema(minimum = 0, maximum = 1, examples(0.85))]
    confidence: f64,
    description: String,
    /// When an archetype was first assigned.
    #[schema(required = true, format = DateTime)]
    assigned_at: Option<String>,
    /// When the archetype last changed.
    #[schema(required = true, format = DateTime)]
    updated_at: Option<String>,
}

impl From<user::User> for UserJson {
    fn from(user: user::User) -> Self {
        Self {
            id: user.id,
            username: user.username,
            email: user.email,
            first_name: user.first_name,
            last_name: user.last_name,
            date_of_birth: user.date_of_birth,
            avatar: user.avatar,
            bio: user.bio,
            archetype: user.archetype.map(|a| ArchetypeJson {
                assigned_at: format_optional(a.assigned_at.as_ref()),
                updated_at: format_optional(a.updated_at.as_ref()),
                archetype_id: a.archetype_id,
                archetype_name: a.archetype_name,
                confidence: a.confidence,
                description: a.description,
            }),
            modalities: user.modalities.map(|m| m.weights.into_iter().collect()),
            created_at: format_optional(user.created_at.as_ref()),
            updated_at: format_optional(user.updated_at.as_ref()),
            version: user.version,
            inferred_archetype: user.inferred_archetype.map(|a| InferredArchetypeJson {
                assigned_at: format_optional(a.assigned_at.as_ref()),
                updated_at: format_optional(a.updated_at.as_ref()),
                archetype_id: a.archetype_id,
                archetype_name: a.archetype_name,
                confidence: a.confidence,
                description: a.description,
                evidence: evidence_json(a.evidence),
                basis: basis_json(a.basis),
            }),
            inferred_modalities: user.inferred_modalities.map(|m| InferredModalitiesJson {
                updated_at: format_optional(m.updated_at.as_ref()),
                weights: m.weights.into_iter().collect(),
                coverage: m.coverage,
                evidence: evidence_json(m.evidence),
                basis: basis_json(m.basis),
            }),
        }
    }
}

/// Whether a user's entries are analysed.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(as = AnalysisSetting)]
pub(crate) struct AnalysisSettingJson {
    #[schema(format = Uuid)]
    user_id: String,
    /// On by default. Off: nothing more is analysed, and what was derived from the user's
    /// writing (entry analyses, the analytics' sentiment, keywords and profile, the inferred
    /// archetype and modalities) is erased from every read.
    enabled: bool,
    /// When it last changed; `null` while never changed.
    #[schema(required = true, format = DateTime)]
    updated_at: Option<String>,
    /// Version of the setting's stream (`analysis_setting-<userId>`); 0 while never changed.
    version: u64,
}

impl From<diary::AnalysisSetting> for AnalysisSettingJson {
    fn from(s: diary::AnalysisSetting) -> Self {
        Self {
            updated_at: format_optional(s.updated_at.as_ref()),
            user_id: s.user_id,
            enabled: s.enabled,
            version: s.version,
        }
    }
}

/// The archetypes that inference can name, and the rules that score them.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(as = ArchetypeCatalogue)]
pub(crate) struct ArchetypeCatalogueJson {
    /// The rules' version, e.g. `archetypes-1`.
    version: String,
    /// English words needed before any archetype is scored.
    minimum_words: u64,
    /// English words from which a confidence is no longer scaled down.
    full_confidence_words: u64,
    archetypes: Vec<CatalogueArchetypeJson>,
}

/// One archetype of the catalogue.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(as = CatalogueArchetype)]
pub(crate) struct CatalogueArchetypeJson {
    #[schema(examples("thinker"))]
    id: String,
    #[schema(examples("The Thinker"))]
    name: String,
    description: String,
    /// The rule in words.
    rule: String,
    terms: Vec<RuleTermJson>,
}

/// One term of an archetype's rule: the feature's strength rises linearly from 0 at `low` to
/// 1 at `high`, and counts with `weight`.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(as = RuleTerm)]
pub(crate) struct RuleTermJson {
    feature: String,
    weight: f64,
    low: f64,
    high: f64,
}

impl From<user::ArchetypeCatalogue> for ArchetypeCatalogueJson {
    fn from(c: user::ArchetypeCatalogue) -> Self {
        Self {
            version: c.version,
            minimum_words: c.minimum_words,
            full_confidence_words: c.full_confidence_words,
            archetypes: c
                .archetypes
                .into_iter()
                .map(|a| CatalogueArchetypeJson {
                    id: a.id,
                    name: a.name,
                    description: a.description,
                    rule: a.rule,
                    terms: a
                        .terms
                        .into_iter()
                        .map(|t| RuleTermJson {
                            feature: t.feature,
                            weight: t.weight,
                            low: t.low,
                            high: t.high,
                        })
                        .collect(),
                })
                .collect(),
        }
    }
}

/// A page of users.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(as = UserList)]
pub(crate) struct UserListJson {
    users: Vec<UserJson>,
    /// The page returned (1-based); 1 for a page reached by cursor (not numbered).
    // Any page number a request may ask for: up to 2^32 - 1, beyond int32.
    #[schema(minimum = 1, maximum = 4_294_967_295_i64, format = Int64)]
    page: u32,
    /// The page size used.
    #[schema(minimum = 1)]
    limit: u32,
    /// Number of users in all pages.
    total: u64,
    /// Whether a next page exists.
    has_more: bool,
    /// Pass as `cursor` to get the next page; `null` on the last page.
    #[schema(required = true)]
    next_cursor: Option<String>,
}

impl From<user::ListUsersResponse> for UserListJson {
    fn from(list: user::ListUsersResponse) -> Self {
        Self {
            users: list.users.into_iter().map(UserJson::from).collect(),
            page: list.page,
            limit: list.limit,
            total: list.total,
            has_more: list.has_more,
            next_cursor: (!list.next_cursor.is_empty()).then_some(list.next_cursor),
        }
    }
}

/// A diary entry.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(as = Entry)]
pub(crate) struct EntryJson {
    #[schema(format = Uuid)]
    id: String,
    #[schema(format = Uuid)]
    user_id: String,
    #[schema(examples("My First Entry"))]
    title: String,
    #[schema(examples("Today was a good day..."))]
    content: String,
    token_count: u32,
    #[schema(required = true, format = Uuid)]
    session_id: Option<String>,
    tags: Vec<String>,
    #[schema(required = true, format = DateTime)]
    created_at: Option<String>,
    #[schema(required = true, format = DateTime)]
    updated_at: Option<String>,
    /// Version of the entry's event stream (`entry-<id>`); also its `ETag`. Recording an
    /// analysis moves it too.
    #[schema(minimum = 1)]
    version: u64,
    /// The analysis of the current content, recorded asynchronously after each creation or
    /// content update (a `DiaryEntryAnalyzed` event); `null` until then, and in lists (read
    /// the entry by id).
    #[schema(required = true)]
    analysis: Option<EntryAnalysisJson>,
}

/// What the offline analyzers measured in one version of an entry's content.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(as = EntryAnalysis)]
pub(crate) struct EntryAnalysisJson {
    /// The entry version whose content was analysed.
    #[schema(minimum = 1)]
    entry_version: u64,
    /// Version of the analysis rules (tokens, language, keywords, sensory language, archetypes).
    #[schema(examples("1"))]
    analyzer_version: String,
    /// VADER scores; `null` for content detected as another language than English (VADER
    /// reads English).
    #[schema(required = true)]
    sentiment: Option<SentimentJson>,
    /// o200k_base tokens of the content, measured (the entry's `tokenCount` may be the
    /// client's own figure).
    token_count: u32,
    /// ISO 639-1 code of the language the content was analysed as; `null` when it could not
    /// be told (short text, under about 20 words, often cannot) or is none of en, de, fr,
    /// es, it, pt, nl.
    #[schema(required = true, examples("en"))]
    language: Option<String>,
    /// Key phrases, most relevant first; empty for an unknown language.
    keywords: Vec<String>,
    /// `null` when there was too little English text to measure.
    #[schema(required = true)]
    sensory: Option<SensoryJson>,
    /// Strongest first; empty when there was too little English text to measure.
    archetype_signals: Vec<ArchetypeScoreJson>,
    /// The same, explained: each measure's state (`measured`, `insufficientText` with the
    /// words needed, `unsupportedLanguage`), the sensory words, and each archetype's features
    /// and the words behind them.
    explanation: WritingProfileJson,
}

/// VADER sentiment scores.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(as = Sentiment)]
pub(crate) struct SentimentJson {
    #[schema(minimum = 0, maximum = 1)]
    neg: f64,
    #[schema(minimum = 0, maximum = 1)]
    neu: f64,
    #[schema(minimum = 0, maximum = 1)]
    pos: f64,
    #[schema(minimum = -1, maximum = 1)]
    compound: f64,
    analyzer_version: String,
    lexicon: String,
}

/// Shares of the sensory words (summing to 1 when `coverage` > 0), and their share of all words.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(as = SensoryShares)]
pub(crate) struct SensoryJson {
    #[schema(minimum = 0, maximum = 1)]
    visual: f64,
    #[schema(minimum = 0, maximum = 1)]
    auditory: f64,
    #[schema(minimum = 0, maximum = 1)]
    kinesthetic: f64,
    #[schema(minimum = 0, maximum = 1)]
    coverage: f64,
}

/// How strongly the writing matches one archetype.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(as = ArchetypeScore)]
pub(crate) struct ArchetypeScoreJson {
    #[schema(examples("thinker"))]
    id: String,
    #[schema(minimum = 0, maximum = 1)]
    confidence: f64,
}

impl From<diary::EntryAnalysis> for EntryAnalysisJson {
    fn from(a: diary::EntryAnalysis) -> Self {
        Self {
            entry_version: a.entry_version,
            analyzer_version: a.analyzer_version,
            sentiment: a.sentiment.map(|sentiment| SentimentJson {
                neg: sentiment.neg,
                neu: sentiment.neu,
                pos: sentiment.pos,
                compound: sentiment.compound,
                analyzer_version: sentiment.analyzer_version,
                lexicon: sentiment.lexicon,
            }),
            token_count: a.token_count,
            language: a.language,
            keywords: a.keywords,
            sensory: a.sensory.map(|s| SensoryJson {
                visual: s.visual,
                auditory: s.auditory,
                kinesthetic: s.kinesthetic,
                coverage: s.coverage,
            }),
            archetype_signals: a
                .archetype_signals
                .into_iter()
                .map(|s| ArchetypeScoreJson {
                    id: s.id,
                    confidence: s.confidence,
                })
                .collect(),
            explanation: WritingProfileJson::from(a.explanation.unwrap_or_default()),
        }
    }
}

impl From<diary::Entry> for EntryJson {
    fn from(entry: diary::Entry) -> Self {
        Self {
            created_at: format_optional(entry.created_at.as_ref()),
            updated_at: format_optional(entry.updated_at.as_ref()),
            id: entry.id,
            user_id: entry.user_id,
            title: entry.title,
            content: entry.content,
            token_count: entry.token_count,
            session_id: entry.session_id,
            tags: entry.tags,
            version: entry.version,
            analysis: entry.analysis.map(EntryAnalysisJson::from),
        }
    }
}

/// A page of a user's entries.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(as = EntryList)]
pub(crate) struct EntryListJson {
    /// Newest first.
    entries: Vec<EntryJson>,
    /// The page returned (1-based); 1 for a page reached by cursor (not numbered).
    // Any page number a request may ask for: up to 2^32 - 1, beyond int32.
    #[schema(minimum = 1, maximum = 4_294_967_295_i64, format = Int64)]
    page: u32,
    /// The page size used.
    #[schema(minimum = 1)]
    limit: u32,
    /// Whether a next page exists.
    has_more: bool,
    /// Pass as `cursor` to get the next page; `null` on the last page.
    #[schema(required = true)]
    next_cursor: Option<String>,
}

impl From<diary::ListEntriesResponse> for EntryListJson {
    fn from(list: diary::ListEntriesResponse) -> Self {
        Self {
            entries: list.entries.into_iter().map(EntryJson::from).collect(),
            page: list.page,
            limit: list.limit,
            has_more: list.has_more,
            next_cursor: (!list.next_cursor.is_empty()).then_some(list.next_cursor),
        }
    }
}

/// What a deletion answers.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(as = DeletedEntry)]
pub(crate) struct DeletedJson {
    #[schema(format = Uuid)]
    id: String,
    #[schema(required = true, format = DateTime)]
    deleted_at: Option<String>,
    /// The entry's version after the deletion (the version of its consistency token).
    version: u64,
}

impl From<diary::DeleteEntryResponse> for DeletedJson {
    fn from(deleted: diary::DeleteEntryResponse) -> Self {
        Self {
            deleted_at: format_optional(deleted.deleted_at.as_ref()),
            id: deleted.id,
            version: deleted.version,
        }
    }
}

/// A writing session.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(as = Session)]
pub(crate) struct SessionJson {
    #[schema(format = Uuid)]
    id: String,
    #[schema(format = Uuid)]
    user_id: String,
    #[schema(required = true, format = DateTime)]
    start_time: Option<String>,
    /// When the session ended; `null` while active.
    #[schema(required = true, format = DateTime)]
    end_time: Option<String>,
    #[schema(schema_with = schema::session_status)]
    status: String,
    /// Minutes (with fraction) between start and end; 0 while active.
    #[schema(minimum = 0)]
    duration_minutes: f64,
    #[schema(required = true, format = DateTime)]
    created_at: Option<String>,
    #[schema(required = true, format = DateTime)]
    updated_at: Option<String>,
    /// Version of the session's event stream (`session-<id>`); also its `ETag`.
    #[schema(minimum = 1)]
    version: u64,
}

impl From<diary::Session> for SessionJson {
    fn from(session: diary::Session) -> Self {
        Self {
            start_time: format_optional(session.start_time.as_ref()),
            end_time: format_optional(session.end_time.as_ref()),
            created_at: format_optional(session.created_at.as_ref()),
            updated_at: format_optional(session.updated_at.as_ref()),
            id: session.id,
            user_id: session.user_id,
            status: session.status,
            duration_minutes: session.duration_minutes,
            version: session.version,
        }
    }
}

/// A page of a user's sessions.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(as = SessionList)]
pub(crate) struct SessionListJson {
    /// Newest first.
    sessions: Vec<SessionJson>,
    /// The page returned (1-based); 1 for a page reached by cursor (not numbered).
    // Any page number a request may ask for: up to 2^32 - 1, beyond int32.
    #[schema(minimum = 1, maximum = 4_294_967_295_i64, format = Int64)]
    page: u32,
    /// The page size used.
    #[schema(minimum = 1)]
    limit: u32,
    /// Whether a next page exists.
    has_more: bool,
    /// Pass as `cursor` to get the next page; `null` on the last page.
    #[schema(required = true)]
    next_cursor: Option<String>,
}

impl From<diary::ListSessionsResponse> for SessionListJson {
    fn from(list: diary::ListSessionsResponse) -> Self {
        Self {
            sessions: list.sessions.into_iter().map(SessionJson::from).collect(),
            page: list.page,
            limit: list.limit,
            has_more: list.has_more,
            next_cursor: (!list.next_cursor.is_empty()).then_some(list.next_cursor),
        }
    }
}

/// Statistics of a user's diary over a window, with the days of a time zone.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(as = Analytics)]
pub(crate) struct AnalyticsJson {
    #[schema(format = Uuid)]
    user_id: String,
    /// `day`, `week`, `month`, `year`, or `custom` for an explicit `from` and `to`.
    #[schema(schema_with = schema::analytics_period)]
    period: String,
    /// Start of the window counted. Totals are kept per UTC quarter hour, so the window asked
    /// for is widened to whole quarter hours: this is `from` (or now minus the period)
    /// rounded down to one.
    #[schema(required = true, format = DateTime)]
    period_start: Option<String>,
    /// End of the window counted (exclusive): `to` (or now) rounded up to a quarter hour.
    #[schema(required = true, format = DateTime)]
    period_end: Option<String>,
    /// The IANA time zone of the days (`UTC` by default).
    #[schema(examples("Europe/Paris"))]
    time_zone: String,
    entry_count: u32,
    /// Sessions started in the window.
    session_count: u32,
    #[schema(minimum = 0)]
    total_session_minutes: f64,
    /// Over the sessions that ended.
    #[schema(minimum = 0)]
    average_session_minutes: f64,
    total_tokens: u64,
    /// Words of the entries (runs of letters and digits), counted from their text, also
    /// while analysis is off.
    word_count: u64,
    /// Most frequent first.
    tag_frequencies: Vec<TagCountJson>,
    /// Every day of the window, oldest first, days without entries included (kept for
    /// compatibility; `days` has more).
    entries_per_day: Vec<DayCountJson>,
    /// Days of the window with at least one entry.
    writing_days: u32,
    /// Consecutive writing days ending on the window's last day (or the day before, while
    /// that day has no entry yet), counted back past the window's start.
    current_streak: u32,
    /// The longest run of consecutive writing days inside the window.
    longest_streak: u32,
    /// Every calendar day (of `timeZone`) the window touches, oldest first, days without
    /// entries included: a week ending now touches 8 days, the first and last in part.
    days: Vec<DayTotalsJson>,
    /// Mean VADER compound of the window's analysed entries; `null` when none was analysed,
    /// or analysis is off.
    #[schema(required = true, minimum = -1, maximum = 1)]
    mean_sentiment: Option<f64>,
    /// Most widespread first; empty when analysis is off.
    top_keywords: Vec<KeywordCountJson>,
    /// The window's sensory profile and archetype signals, scored from its entries' summed
    /// counts; `null` when analysis is off.
    #[schema(required = true)]
    profile: Option<WritingProfileJson>,
    /// `false` when the user switched analysis off: nothing derived from the text is shown.
    analysis_enabled: bool,
    /// The window's entries grouped by meaning, largest group first (at most 6 groups, from
    /// the window's latest 2,000 entries; none under 6 entries). `null` when analysis is off
    /// or the diary service runs without its sentence-embedding model.
    #[schema(required = true)]
    themes: Option<Vec<ThemeJson>>,
}

/// How many entries of the window carry a tag.
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = TagCount)]
pub(crate) struct TagCountJson {
    tag: String,
    #[schema(minimum = 1)]
    count: u32,
}

/// How many entries were written on a day.
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = DayCount)]
pub(crate) struct DayCountJson {
    /// The day in the request's time zone, `YYYY-MM-DD`.
    #[schema(format = Date)]
    date: String,
    entries: u32,
}

/// One calendar day of the window.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(as = DayTotals)]
pub(crate) struct DayTotalsJson {
    /// The day in the request's time zone, `YYYY-MM-DD`.
    #[schema(format = Date)]
    date: String,
    entries: u32,
    words: u64,
    tokens: u64,
    /// Mean VADER compound of the day's analysed entries; `null` when none was analysed.
    #[schema(required = true, minimum = -1, maximum = 1)]
    mean_sentiment: Option<f64>,
}

/// A keyword and the entries among whose keywords it is.
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = KeywordCount)]
pub(crate) struct KeywordCountJson {
    keyword: String,
    #[schema(minimum = 1)]
    entries: u32,
}

/// The sensory-language profile and archetype signals of the window's writing.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(as = WritingProfile)]
pub(crate) struct WritingProfileJson {
    /// Entries whose analysis (of the current analyzer version) is counted.
    entries: u32,
    /// Words analysed with the English lexicons.
    words: u64,
    #[schema(schema_with = schema::measure_state)]
    sensory_state: String,
    /// The words a sensory measure needs.
    sensory_minimum_words: u64,
    /// `null` unless `sensoryState` is `measured`.
    #[schema(required = true)]
    sensory: Option<SensoryJson>,
    /// The most frequent sensory words per modality, negated occurrences included.
    sensory_evidence: Vec<SensoryWordJson>,
    #[schema(schema_with = schema::measure_state)]
    archetype_state: String,
    /// The words archetype signals need.
    archetype_minimum_words: u64,
    /// When measured: every archetype of the catalogue, strongest first.
    archetype_signals: Vec<ArchetypeSignalJson>,
    #[schema(examples("1"))]
    analyzer_version: String,
}

/// One sensory word of evidence.
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = SensoryWord)]
pub(crate) struct SensoryWordJson {
    word: String,
    /// `visual`, `auditory` or `kinesthetic`.
    #[schema(examples("visual"))]
    modality: String,
    /// Occurrences counted.
    count: u64,
    /// Occurrences under a negation (not counted).
    negated: u64,
}

/// How strongly the window's writing matches one archetype, and why.
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = ArchetypeSignal)]
pub(crate) struct ArchetypeSignalJson {
    #[schema(examples("thinker"))]
    id: String,
    #[schema(examples("The Thinker"))]
    name: String,
    #[schema(minimum = 0, maximum = 1)]
    confidence: f64,
    evidence: Vec<FeatureEvidenceJson>,
}

/// One measured feature's part in an archetype signal.
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = FeatureEvidence)]
pub(crate) struct FeatureEvidenceJson {
    #[schema(examples("cognitive"))]
    feature: String,
    value: f64,
    #[schema(minimum = 0, maximum = 1)]
    strength: f64,
    weight: f64,
    /// The most frequent words behind the value.
    words: Vec<WordCountJson>,
}

/// A word and how often it occurred.
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = WordCount)]
pub(crate) struct WordCountJson {
    word: String,
    count: u64,
}

impl From<diary::WritingProfile> for WritingProfileJson {
    fn from(p: diary::WritingProfile) -> Self {
        Self {
            entries: p.entries,
            words: p.words,
            sensory_state: p.sensory_state,
            sensory_minimum_words: p.sensory_minimum_words,
            sensory: p.sensory.map(|s| SensoryJson {
                visual: s.visual,
                auditory: s.auditory,
                kinesthetic: s.kinesthetic,
                coverage: s.coverage,
            }),
            sensory_evidence: p
                .sensory_evidence
                .into_iter()
                .map(|w| SensoryWordJson {
                    word: w.word,
                    modality: w.modality,
                    count: w.count,
                    negated: w.negated,
                })
                .collect(),
            archetype_state: p.archetype_state,
            archetype_minimum_words: p.archetype_minimum_words,
            archetype_signals: p
                .archetype_signals
                .into_iter()
                .map(|s| ArchetypeSignalJson {
                    id: s.id,
                    name: s.name,
                    confidence: s.confidence,
                    evidence: s
                        .evidence
                        .into_iter()
                        .map(|e| FeatureEvidenceJson {
                            feature: e.feature,
                            value: e.value,
                            strength: e.strength,
                            weight: e.weight,
                            words: e
                                .words
                                .into_iter()
                                .map(|w| WordCountJson {
                                    word: w.word,
                                    count: w.count,
                                })
                                .collect(),
                        })
                        .collect(),
                })
                .collect(),
            analyzer_version: p.analyzer_version,
        }
    }
}

impl From<diary::Analytics> for AnalyticsJson {
    fn from(a: diary::Analytics) -> Self {
        Self {
            period_start: format_optional(a.period_start.as_ref()),
            period_end: format_optional(a.period_end.as_ref()),
            user_id: a.user_id,
            period: a.period,
            time_zone: a.time_zone,
            entry_count: a.entry_count,
            session_count: a.session_count,
            total_session_minutes: a.total_session_minutes,
            average_session_minutes: a.average_session_minutes,
            total_tokens: a.total_tokens,
            word_count: a.word_count,
            tag_frequencies: a
                .tag_frequencies
                .into_iter()
                .map(|t| TagCountJson {
                    tag: t.tag,
                    count: t.count,
                })
                .collect(),
            entries_per_day: a
                .entries_per_day
                .into_iter()
                .map(|d| DayCountJson {
                    date: d.date,
                    entries: d.entries,
                })
                .collect(),
            writing_days: a.writing_days,
            current_streak: a.current_streak,
            longest_streak: a.longest_streak,
            days: a
                .days
                .into_iter()
                .map(|d| DayTotalsJson {
                    date: d.date,
                    entries: d.entries,
                    words: d.words,
                    tokens: d.tokens,
                    mean_sentiment: d.mean_sentiment,
                })
                .collect(),
            mean_sentiment: a.mean_sentiment,
            top_keywords: a
                .top_keywords
                .into_iter()
                .map(|k| KeywordCountJson {
                    keyword: k.keyword,
                    entries: k.entries,
                })
                .collect(),
            profile: a.profile.map(WritingProfileJson::from),
            analysis_enabled: a.analysis_enabled,
            themes: a
                .themes_available
                .then(|| a.themes.into_iter().map(ThemeJson::from).collect()),
        }
    }
}

/// Entries of the window that are about the same thing, grouped by the meaning of their text
/// (sentence embeddings) and labelled by their keywords.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(as = Theme)]
pub(crate) struct ThemeJson {
    /// Its first three keywords.
    #[schema(examples("hospital, chemo, oncologist"))]
    label: String,
    /// The keywords most particular to the theme (frequent in it, rare in the others), best
    /// first.
    keywords: Vec<String>,
    #[schema(minimum = 2)]
    entry_count: u32,
    /// Its share of the entries grouped (the window's, at most the latest 2,000), those in no
    /// theme included: the shares add up to less than 1 when some entries fit no theme.
    #[schema(minimum = 0, maximum = 1)]
    share: f64,
    #[schema(required = true, format = DateTime)]
    first_written_at: Option<String>,
    #[schema(required = true, format = DateTime)]
    last_written_at: Option<String>,
    /// The entries closest to the theme's centre, closest first (at most three).
    example_entry_ids: Vec<String>,
}

impl From<diary::Theme> for ThemeJson {
    fn from(t: diary::Theme) -> Self {
        Self {
            label: t.label,
            keywords: t.keywords,
            entry_count: t.entry_count,
            share: t.share,
            first_written_at: format_optional(t.first_written_at.as_ref()),
            last_written_at: format_optional(t.last_written_at.as_ref()),
            example_entry_ids: t.example_entry_ids,
        }
    }
}

/// An entry found by a search, and how well it matched.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(as = SearchResult)]
pub(crate) struct SearchResultJson {
    /// The entry as it is now (`analysis` is `null`, as in lists).
    entry: EntryJson,
    /// What results are ranked by: `0.7 × similarity + 0.3 × keywordScore` for a search,
    /// the similarity for related entries. At least 0.2, or the entry holds a word of the
    /// query.
    #[schema(minimum = 0, maximum = 1)]
    score: f64,
    /// Cosine similarity of the sentence embeddings of the query (or entry) and of the
    /// entry's closest passage.
    #[schema(minimum = -1, maximum = 1)]
    similarity: f64,
    /// BM25 of the query's stemmed words in the entry, over the most any entry could score:
    /// 1 when it holds every word of the query, often. 0 for related entries.
    #[schema(minimum = 0, maximum = 1)]
    keyword_score: f64,
}

/// A page of ranked results, best first.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(as = SearchResults)]
pub(crate) struct SearchResultsJson {
    results: Vec<SearchResultJson>,
    // Any page number a request may ask for: up to 2^32 - 1, beyond int32.
    #[schema(minimum = 1, maximum = 4_294_967_295_i64, format = Int64)]
    page: u32,
    #[schema(minimum = 1, maximum = 50)]
    limit: u32,
    /// Whether a next page exists (a search ranks at most 100 results).
    has_more: bool,
}

impl From<diary::SearchResults> for SearchResultsJson {
    fn from(r: diary::SearchResults) -> Self {
        Self {
            results: r
                .results
                .into_iter()
                .map(|found| SearchResultJson {
                    entry: EntryJson::from(found.entry.unwrap_or_default()),
                    score: found.score,
                    similarity: found.similarity,
                    keyword_score: found.keyword_score,
                })
                .collect(),
            page: r.page,
            limit: r.limit,
            has_more: r.has_more,
        }
    }
}

/// The events of one stream.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(as = History)]
pub(crate) struct HistoryJson {
    /// `user-<id>`, `entry-<id>` or `session-<id>`.
    stream_id: String,
    /// Every event of the stream, oldest first.
    events: Vec<EventJson>,
}

/// One stored event.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(as = Event)]
pub(crate) struct EventJson {
    #[schema(format = Uuid)]
    event_id: String,
    /// User events: `UserCreated`, `UserProfileUpdated`, `ArchetypeAssigned`,
    /// `ArchetypeUpdated`, `ModalitiesUpdated`. Diary events: `DiaryEntryCreated`,
    /// `DiaryEntryUpdated`, `DiaryEntryDeleted`, `DiaryEntryAnalyzed`, `DiarySessionStarted`,
    /// `DiarySessionEntryAdded`, `DiarySessionEnded`.
    #[schema(examples("UserCreated"))]
    event_type: String,
    /// Version of the payload's shape (older shapes are upcast when read).
    #[schema(minimum = 1)]
    schema_version: u32,
    #[schema(examples("user-0b9e4c9e-7d1a-4f57-8d59-3f7b8f0d1a2c"))]
    stream_id: String,
    /// Position of the event in its stream: 1, 2, 3...
    #[schema(minimum = 1)]
    version: u64,
    /// Global position across all streams.
    position: u64,
    #[schema(required = true, format = DateTime)]
    recorded_at: Option<String>,
    /// The event's payload, a JSON object.
    data: Value,
    metadata: EventMetadataJson,
}

/// Who and what caused an event.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(as = EventMetadata)]
pub(crate) struct EventMetadataJson {
    /// The `x-correlation-id` of the request that caused the event (or its request id).
    #[schema(required = true)]
    correlation_id: Option<String>,
    #[schema(required = true)]
    causation_id: Option<String>,
    /// The `x-request-id` of the request that caused the event.
    #[schema(required = true)]
    request_id: Option<String>,
    /// Who caused it: a user id, or the name of the service's follower that recorded it.
    #[schema(required = true)]
    actor: Option<String>,
    /// The W3C `traceparent` of the service's span that recorded the event: its trace id is
    /// the one of the request (the client's `traceparent`, else one the gateway started).
    #[schema(required = true)]
    traceparent: Option<String>,
}

impl HistoryJson {
    /// A stream's history, named as its events name it: the services own stream names, and
    /// answer a stream without events as not found.
    pub(crate) fn new(history: EventHistory) -> Self {
        let stream_id = history
            .events
            .first()
            .map(|e| e.stream_id.clone())
            .unwrap_or_default();
        Self {
            stream_id,
            events: history.events.into_iter().map(EventJson::from).collect(),
        }
    }
}

impl From<StoredEvent> for EventJson {
    fn from(event: StoredEvent) -> Self {
        let data = serde_json::from_str(&event.payload_json).unwrap_or_else(|_| {
            // A payload the service stored must be JSON; show it rather than fail the history.
            tracing::warn!(event_id = %event.event_id, "event payload is not JSON");
            Value::String(event.payload_json.clone())
        });
        let metadata = event.metadata.unwrap_or_default();
        Self {
            recorded_at: event.recorded_at.as_ref().and_then(format_timestamp),
            event_id: event.event_id,
            event_type: event.event_type,
            schema_version: event.schema_version,
            stream_id: event.stream_id,
            version: event.stream_version,
            position: event.position,
            data,
            metadata: EventMetadataJson {
                correlation_id: metadata.correlation_id,
                causation_id: metadata.causation_id,
                request_id: metadata.request_id,
                actor: metadata.actor,
                traceparent: metadata.traceparent,
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use metachat_proto::Timestamp;
    use serde_json::json;

    use super::*;

    #[test]
    fn a_user_renders_with_nulls_and_utc_timestamps() {
        let user = user::User {
            id: "u1".into(),
            username: "johndoe".into(),
            email: "john@example.com".into(),
            first_name: "John".into(),
            last_name: "Doe".into(),
            date_of_birth: Some("1990-01-01".into()),
            modalities: Some(user::Modalities {
                weights: [("visual".to_owned(), 0.8)].into_iter().collect(),
                updated_at: None,
            }),
            created_at: Some(Timestamp {
                seconds: 1_672_567_200,
                nanos: 0,
            }),
            version: 3,
            ..Default::default()
        };
        let value = serde_json::to_value(UserJson::from(user)).unwrap();
        assert_eq!(
            value,
            json!({
                "id": "u1", "username": "johndoe", "email": "john@example.com",
                "firstName": "John", "lastName": "Doe", "dateOfBirth": "1990-01-01",
                "avatar": null, "bio": null, "archetype": null,
                "modalities": {"visual": 0.8},
                "inferredArchetype": null, "inferredModalities": null,
                "createdAt": "2023-01-01T10:00:00Z", "updatedAt": null, "version": 3
            })
        );
    }

    #[test]
    fn an_event_carries_its_payload_as_json() {
        let history = EventHistory {
            events: vec![StoredEvent {
                event_id: "e1".into(),
                event_type: "UserCreated".into(),
                schema_version: 1,
                stream_id: "user-u1".into(),
                stream_version: 1,
                position: 7,
                recorded_at: Some(Timestamp {
                    seconds: 1_672_567_200,
                    nanos: 500_000_000,
                }),
                payload_json: r#"{"username":"johndoe"}"#.into(),
                metadata: None,
            }],
        };
        let value = serde_json::to_value(HistoryJson::new(history)).unwrap();
        assert_eq!(value["streamId"], "user-u1");
        assert_eq!(value["events"][0]["data"], json!({"username": "johndoe"}));
        assert_eq!(value["events"][0]["recordedAt"], "2023-01-01T10:00:00.500Z");
        assert_eq!(value["events"][0]["metadata"]["actor"], Value::Null);
        assert_eq!(value["events"][0]["version"], 1);
    }
}
