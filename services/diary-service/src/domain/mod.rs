//! The diary domain: pure rules, no I/O.

mod entry;
mod events;
mod session;

pub use entry::{
    Entry, EntryChanges, EntryCommand, EntryError, EntryState, NewEntry, Tag, estimate_tokens,
};
pub use events::{
    DiaryEntryCreated, DiaryEntryDeleted, DiaryEntryUpdated, DiarySessionEnded,
    DiarySessionEntryAdded, DiarySessionStarted, EntryEvent, SessionEvent,
};
pub use session::{Session, SessionCommand, SessionError, SessionState};

#[cfg(test)]
mod tests;
