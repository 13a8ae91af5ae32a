//! The diary entry aggregate.

use event_sourcing::Aggregate;
use metachat_validation::Violations;

use super::events::{DiaryEntryCreated, DiaryEntryDeleted, DiaryEntryUpdated, EntryEvent};

const TITLE_MAX: usize = 200;
const CONTENT_MAX: usize = 100_000;
const TOKEN_COUNT_MAX: u32 = 1_000_000;
const TAGS_MAX: usize = 20;
const TAG_MAX: usize = 50;

#[derive(Debug, Clone, Default, PartialEq)]
pub struct Entry {
    pub id: String,
    pub user_id: String,
    pub title: String,
    pub content: String,
    pub token_count: u32,
    pub session_id: Option<String>,
    pub tags: Vec<String>,
    pub deleted: bool,
}

impl Entry {
    /// Created and not deleted.
    pub fn is_live(&self) -> bool {
        !self.id.is_empty() && !self.deleted
    }
}

#[derive(Debug, Clone)]
pub struct NewEntry {
    pub entry_id: String,
    /// An existing user (the service checks before deciding).
    pub user_id: String,
    pub title: String,
    pub content: String,
    pub token_count: Option<u32>,
    /// A live session of the same user (the service checks before deciding).
    pub session_id: Option<String>,
    pub tags: Vec<String>,
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

/// A word-based token estimate for clients that send no count.
pub fn estimate_tokens(content: &str) -> u32 {
    u32::try_from(content.split_whitespace().count()).unwrap_or(u32::MAX)
}

impl Aggregate for Entry {
    const CATEGORY: &'static str = "entry";
    type Event = EntryEvent;
    type Command = EntryCommand;
    type Error = EntryError;

    fn apply(&mut self, event: &EntryEvent) {
        match event {
            EntryEvent::DiaryEntryCreated(e) => {
                *self = Entry {
                    id: e.entry_id.clone(),
                    user_id: e.user_id.clone(),
                    title: e.title.clone(),
                    content: e.content.clone(),
                    token_count: e.token_count,
                    session_id: e.session_id.clone(),
                    tags: e.tags.clone(),
                    deleted: false,
                };
            }
            EntryEvent::DiaryEntryUpdated(e) => {
                self.title = e.title.clone();
                self.content = e.content.clone();
                self.token_count = e.token_count;
                self.tags = e.tags.clone();
            }
            EntryEvent::DiaryEntryDeleted(_) => self.deleted = true,
        }
    }

    fn decide(&self, command: &EntryCommand) -> Result<Vec<EntryEvent>, EntryError> {
        match command {
            EntryCommand::Create(_) if !self.id.is_empty() => Err(EntryError::AlreadyExists),
            EntryCommand::Create(new) => {
                let mut v = Violations::new();
                let title = v.text("title", &new.title, 0, TITLE_MAX);
                let content = content(&mut v, &new.content);
                let tags = tags(&mut v, &new.tags);
                let token_count = token_count(&mut v, new.token_count, &content);
                let created = DiaryEntryCreated {
                    entry_id: new.entry_id.clone(),
                    user_id: new.user_id.clone(),
                    title,
                    content,
                    token_count,
                    session_id: new.session_id.clone(),
                    tags,
                };
                v.finish(vec![EntryEvent::DiaryEntryCreated(created)])
                    .map_err(EntryError::Invalid)
            }
            _ if !self.is_live() => Err(EntryError::NotFound),
            EntryCommand::Update(changes) => {
                let mut v = Violations::new();
                let title = match &changes.title {
                    Some(t) => v.text("title", t, 0, TITLE_MAX),
                    None => self.title.clone(),
                };
                let content = match &changes.content {
                    Some(c) => content(&mut v, c),
                    None => self.content.clone(),
                };
                let tags = match &changes.tags {
                    Some(t) => tags(&mut v, t),
                    None => self.tags.clone(),
                };
                let token_count = match (changes.token_count, &changes.content) {
                    (Some(_), _) | (None, Some(_)) => {
                        token_count(&mut v, changes.token_count, &content)
                    }
                    (None, None) => self.token_count,
                };
                v.finish(()).map_err(EntryError::Invalid)?;
                let unchanged = title == self.title
                    && content == self.content
                    && tags == self.tags
                    && token_count == self.token_count;
                if unchanged {
                    return Ok(vec![]);
                }
                Ok(vec![EntryEvent::DiaryEntryUpdated(DiaryEntryUpdated {
                    user_id: self.user_id.clone(),
                    title,
                    content,
                    token_count,
                    tags,
                })])
            }
            EntryCommand::Delete => Ok(vec![EntryEvent::DiaryEntryDeleted(DiaryEntryDeleted {
                user_id: self.user_id.clone(),
            })]),
        }
    }
}

fn content(v: &mut Violations, text: &str) -> String {
    // Content keeps its own whitespace (line breaks matter in a diary); only the check trims.
    let len = text.chars().count();
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
fn tags(v: &mut Violations, given: &[String]) -> Vec<String> {
    let mut kept: Vec<String> = Vec::new();
    for (i, tag) in given.iter().enumerate() {
        let field = format!("tags[{i}]");
        let tag = v.text(&field, tag, 1, TAG_MAX);
        if !tag.is_empty() && !kept.iter().any(|k| k.to_lowercase() == tag.to_lowercase()) {
            kept.push(tag);
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
