//! The diary entry aggregate.

use chrono::{DateTime, Utc};
use event_sourcing::Aggregate;
use metachat_proto::error::{ApiError, ErrorCode};
use metachat_validation::{EntryId, SessionId, UserId, Violations};
use serde::{Deserialize, Serialize};

use super::events::{
    DiaryEntryAnalyzed, DiaryEntryCreated, DiaryEntryDeleted, DiaryEntryUpdated, EntryEvent,
};

const TITLE_MAX: usize = 200;
const CONTENT_MAX: usize = 100_000;
const TOKEN_COUNT_MAX: u32 = 1_000_000;
const TAGS_MAX: usize = 20;
const TAG_MAX: usize = 50;

/// A tag: 1 to 50 characters after trimming, on one line.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Tag(String);

impl Tag {
    pub fn parse(text: &str) -> Result<Self, String> {
        let tag = text.trim();
        let len = tag.chars().count();
        if len == 0 {
            return Err("must not be empty".into());
        }
        if len > TAG_MAX {
            return Err(format!("must be at most {TAG_MAX} characters"));
        }
        if tag.chars().any(char::is_control) {
            return Err("must not contain control characters".into());
        }
        Ok(Self(tag.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Tags are equal regardless of case.
    pub fn same_as(&self, other: &Tag) -> bool {
        self.0.to_lowercase() == other.0.to_lowercase()
    }
}

/// A diary entry as written.
#[derive(Debug, Clone, PartialEq)]
pub struct Entry {
    pub id: EntryId,
    pub user_id: UserId,
    pub title: String,
    pub content: String,
    pub token_count: u32,
    pub session_id: Option<SessionId>,
    pub tags: Vec<Tag>,
    /// When the entry was written, when the client said so (else it was written when its
    /// creation was recorded).
    pub written_at: Option<DateTime<Utc>>,
    /// The analysis of the current content, once the analyzer has recorded it.
    pub analysis: Option<DiaryEntryAnalyzed>,
    /// Stream version of the event that set the current content (its creation, or the last
    /// update that changed it).
    pub content_version: u64,
    /// Stream version of the last event applied.
    pub version: u64,
}

impl Entry {
    /// Whether the content of `version` still is the entry's and has no analysis yet by the
    /// current analyzers under the user's current analysis setting (`setting_version`): an
    /// analysis of older content is stale, and one already recorded needs no second copy.
    pub fn awaits_analysis(&self, version: u64, setting_version: u64) -> bool {
        version == self.content_version
            && self.analysis.as_ref().is_none_or(|a| {
                a.entry_version != version
                    || a.setting_version != setting_version
                    || a.analyzer_version != analysis::ANALYZER_VERSION
                    || a.sentiment
                        .as_ref()
                        .is_some_and(|s| s.analyzer_version != sentiment::ANALYZER_VERSION)
            })
    }
}

/// The entry aggregate: not written yet, live, or deleted (its history stays).
#[derive(Debug, Clone, Default, PartialEq)]
pub enum EntryState {
    #[default]
    Absent,
    Live(Entry),
    Deleted(Entry),
}

impl EntryState {
    /// The entry when it exists and is not deleted.
    pub fn live(&self) -> Option<&Entry> {
        match self {
            Self::Live(entry) => Some(entry),
            Self::Absent | Self::Deleted(_) => None,
        }
    }
}

#[derive(Debug, Clone)]
pub struct NewEntry {
    pub entry_id: EntryId,
    /// A registered user: the application checks before deciding.
    pub user_id: UserId,
    pub title: String,
    pub content: String,
    pub token_count: Option<u32>,
    /// A live session of the same user: the application checks before deciding.
    pub session_id: Option<SessionId>,
    pub tags: Vec<String>,
    /// When the entry was written, if earlier than now (the application checks it against
    /// the clock and the session).
    pub written_at: Option<DateTime<Utc>>,
}

/// `None` leaves a field unchanged.
#[derive(Debug, Clone, Default)]
pub struct EntryChanges {
    pub title: Option<String>,
    pub content: Option<String>,
    pub token_count: Option<u32>,
    pub tags: Option<Vec<String>>,
}

#[derive(Debug, Clone)]
pub enum EntryCommand {
    Create(NewEntry),
    Update(EntryChanges),
    Delete,
    /// Records an analysis of the content at `entryVersion` (nothing if that content is no
    /// longer current, or already analysed).
    RecordAnalysis(Box<DiaryEntryAnalyzed>),
}

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum EntryError {
    #[error("{0}")]
    Invalid(Violations),
    #[error("diary entry not found")]
    NotFound,
    #[error("diary entry already exists")]
    AlreadyExists,
}

/// Each refusal says its code once; the gRPC and HTTP statuses follow from the code table.
impl From<EntryError> for ApiError {
    fn from(error: EntryError) -> Self {
        let code = match error {
            EntryError::Invalid(violations) => return violations.into(),
            EntryError::NotFound => ErrorCode::NotFound,
            EntryError::AlreadyExists => ErrorCode::AlreadyExists,
        };
        ApiError::new(code, error.to_string())
    }
}

/// The token count of content whose client sent none: o200k_base tokens, measured.
pub fn estimate_tokens(content: &str) -> u32 {
    analysis::count_tokens(content)
}

impl Aggregate for EntryState {
    const CATEGORY: &'static str = "entry";
    type Id = EntryId;
    type Event = EntryEvent;
    type Command = EntryCommand;
    type Error = EntryError;

    fn apply(&mut self, event: &EntryEvent) {
        match (std::mem::take(self), event) {
            (Self::Absent, EntryEvent::DiaryEntryCreated(e)) => {
                *self = Self::Live(Entry {
                    id: e.entry_id,
                    user_id: e.user_id,
                    title: e.title.clone(),
                    content: e.content.clone(),
                    token_count: e.token_count,
                    session_id: e.session_id,
                    tags: e.tags.clone(),
                    written_at: e.created_at,
                    analysis: None,
                    // A creation is always the stream's first event.
                    content_version: 1,
                    version: 1,
                });
            }
            (Self::Live(mut entry), event) => {
                entry.version += 1;
                match event {
                    EntryEvent::DiaryEntryUpdated(e) => {
                        // Only new content is analysed again: a retitled or retagged entry
                        // keeps its analysis.
                        if e.content != entry.content {
                            entry.content_version = entry.version;
                            // It described the content replaced.
                            entry.analysis = None;
                        }
                        entry.title = e.title.clone();
                        entry.content = e.content.clone();
                        entry.token_count = e.token_count;
                        entry.tags = e.tags.clone();
                    }
                    EntryEvent::DiaryEntryAnalyzed(e)
                        if e.entry_version == entry.content_version =>
                    {
                        entry.analysis = Some(e.clone());
                    }
                    EntryEvent::DiaryEntryDeleted(_) => {
                        // Derived results go with the entry; its history keeps them.
                        entry.analysis = None;
                        *self = Self::Deleted(entry);
                        return;
                    }
                    // A stale analysis, or a second creation: nothing changes.
                    EntryEvent::DiaryEntryAnalyzed(_) | EntryEvent::DiaryEntryCreated(_) => {}
                }
                *self = Self::Live(entry);
            }
            // Events the rules never decide in this state (a second creation, a change after
            // deletion) leave it as it is.
            (state, _) => *self = state,
        }
    }

    fn decide(&self, command: &EntryCommand) -> Result<Vec<EntryEvent>, EntryError> {
        let entry = match (self, command) {
            (Self::Absent, EntryCommand::Create(new)) => return create(new),
            (Self::Live(_) | Self::Deleted(_), EntryCommand::Create(_)) => {
                return Err(EntryError::AlreadyExists);
            }
            (Self::Absent | Self::Deleted(_), _) => return Err(EntryError::NotFound),
            (Self::Live(entry), _) => entry,
        };
        match command {
            EntryCommand::Create(_) => Err(EntryError::AlreadyExists),
            EntryCommand::Update(changes) => update(entry, changes),
            EntryCommand::Delete => Ok(vec![EntryEvent::DiaryEntryDeleted(DiaryEntryDeleted {
                user_id: entry.user_id,
            })]),
            EntryCommand::RecordAnalysis(analyzed) => Ok(
                if entry.awaits_analysis(analyzed.entry_version, analyzed.setting_version) {
                    vec![EntryEvent::DiaryEntryAnalyzed(DiaryEntryAnalyzed {
                        user_id: entry.user_id,
                        ..(**analyzed).clone()
                    })]
                } else {
                    vec![]
                },
            ),
        }
    }
}

fn create(new: &NewEntry) -> Result<Vec<EntryEvent>, EntryError> {
    let mut v = Violations::new();
    let title = v.text("title", &new.title, 0, TITLE_MAX);
    let content = content(&mut v, &new.content);
    let tags = tags(&mut v, &new.tags);
    let token_count = token_count(&mut v, new.token_count, &content);
    let created = DiaryEntryCreated {
        entry_id: new.entry_id,
        user_id: new.user_id,
        title,
        content,
        token_count,
        session_id: new.session_id,
        tags,
        created_at: new.written_at,
    };
    v.finish(vec![EntryEvent::DiaryEntryCreated(created)])
        .map_err(EntryError::Invalid)
}

fn update(entry: &Entry, changes: &EntryChanges) -> Result<Vec<EntryEvent>, EntryError> {
    let mut v = Violations::new();
    let title = match &changes.title {
        Some(t) => v.text("title", t, 0, TITLE_MAX),
        None => entry.title.clone(),
    };
    let content = match &changes.content {
        Some(c) => content(&mut v, c),
        None => entry.content.clone(),
    };
    let tags = match &changes.tags {
        Some(t) => tags(&mut v, t),
        None => entry.tags.clone(),
    };
    let token_count = match (changes.token_count, &changes.content) {
        (Some(_), _) | (None, Some(_)) => token_count(&mut v, changes.token_count, &content),
        (None, None) => entry.token_count,
    };
    v.finish(()).map_err(EntryError::Invalid)?;
    let unchanged = title == entry.title
        && content == entry.content
        && tags == entry.tags
        && token_count == entry.token_count;
    if unchanged {
        return Ok(vec![]);
    }
    Ok(vec![EntryEvent::DiaryEntryUpdated(DiaryEntryUpdated {
        user_id: entry.user_id,
        title,
        content,
        token_count,
        tags,
    })])
}

fn content(v: &mut Violations, text: &str) -> String {
    // Content keeps its own whitespace (line breaks matter in a diary); only the check trims.
    let len = text.chars().count();
    v.no_control_characters("content", text);
    if text.trim().is_empty() {
        v.add("content", "must not be empty");
    } else if len > CONTENT_MAX {
        v.add(
            "content",
            format!("must be at most {CONTENT_MAX} characters"),
        );
    }
    text.to_owned()
}

fn token_count(v: &mut Violations, given: Option<u32>, content: &str) -> u32 {
    match given {
        Some(n) if n > TOKEN_COUNT_MAX => {
            v.add(
                "tokenCount",
                format!("must be between 0 and {TOKEN_COUNT_MAX}"),
            );
            n
        }
        Some(n) => n,
        None => estimate_tokens(content),
    }
}

/// Trims tags and drops case-insensitive duplicates, keeping the first spelling.
fn tags(v: &mut Violations, given: &[String]) -> Vec<Tag> {
    let mut kept: Vec<Tag> = Vec::new();
    for (i, tag) in given.iter().enumerate() {
        match Tag::parse(tag) {
            Ok(tag) if !kept.iter().any(|k| k.same_as(&tag)) => kept.push(tag),
            Ok(_) => {}
            Err(message) => v.add(format!("tags[{i}]"), message),
        }
    }
    if kept.len() > TAGS_MAX {
        v.add(
            "tags",
            format!("must have at most {TAGS_MAX} distinct tags"),
        );
    }
    kept
}
