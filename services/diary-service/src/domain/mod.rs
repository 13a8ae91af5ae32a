//! The diary domain: pure rules, no I/O.

mod analysis;
mod entry;
mod events;
mod session;

pub use analysis::{analyze_content, analyzer_key};
pub use entry::{
    Entry, EntryChanges, EntryCommand, EntryError, EntryState, NewEntry, Tag, estimate_tokens,
};
pub use events::{
    ArchetypeScore, DiaryEntryAnalyzed, DiaryEntryCreated, DiaryEntryDeleted, DiaryEntryUpdated,
    DiarySessionEnded, DiarySessionEntryAdded, DiarySessionStarted, EntryEvent, SensoryShares,
    SentimentScores, SessionEvent,
};
pub use session::{Session, SessionCommand, SessionError, SessionState};
pub(crate) use session::not_in_future;

#[cfg(test)]
mod tests;
