//! The diary domain: pure rules, no I/O.

mod analysis;
mod analysis_setting;
mod entry;
mod events;
mod session;

pub use analysis::{analyze_content, analyzer_key};
pub use analysis_setting::{
    AnalysisSetting, AnalysisSettingError, AnalysisSettingState, SwitchAnalysis,
};
pub use entry::{
    Entry, EntryChanges, EntryCommand, EntryError, EntryState, NewEntry, Tag, estimate_tokens,
};
pub use events::{
    AnalysisSettingEvent, ArchetypeScore, DiaryAnalysisSwitched, DiaryEntryAnalyzed,
    DiaryEntryCreated, DiaryEntryDeleted, DiaryEntryUpdated, DiarySessionEnded,
    DiarySessionEntryAdded, DiarySessionStarted, EntryEvent, SensoryShares, SentimentScores,
    SessionEvent,
};
pub use session::{Session, SessionCommand, SessionError, SessionState};

#[cfg(test)]
mod tests;
