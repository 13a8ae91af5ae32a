//! The diary service's business metrics (the catalogue is docs/metrics.md). Each counts what
//! this process stored: a retried request that stored nothing new is not counted again.

use std::sync::LazyLock;

use metrics::CounterVec;

macro_rules! counter {
    ($name:ident, $metric:literal, $help:literal) => {
        pub static $name: LazyLock<CounterVec> =
            LazyLock::new(|| CounterVec::new($metric, $help, &[]));
    };
}

counter!(
    ENTRIES_CREATED,
    "metachat_diary_entries_created_total",
    "Diary entries created."
);
counter!(
    ENTRIES_UPDATED,
    "metachat_diary_entries_updated_total",
    "Diary entries changed."
);
counter!(
    ENTRIES_DELETED,
    "metachat_diary_entries_deleted_total",
    "Diary entries deleted."
);
counter!(
    SESSIONS_STARTED,
    "metachat_diary_sessions_started_total",
    "Writing sessions started."
);
counter!(
    SESSIONS_ENDED,
    "metachat_diary_sessions_ended_total",
    "Writing sessions ended."
);
counter!(
    ENTRIES_ANALYSED,
    "metachat_diary_entry_analyses_total",
    "Analyses of an entry version's content recorded by the entry analyzer."
);

/// Creates the families, so that they are shown (at zero) before anything is counted.
pub fn describe() {
    for counter in [
        &ENTRIES_CREATED,
        &ENTRIES_UPDATED,
        &ENTRIES_DELETED,
        &SESSIONS_STARTED,
        &SESSIONS_ENDED,
        &ENTRIES_ANALYSED,
    ] {
        LazyLock::force(counter);
    }
}

/// Counts one, when `stored` (something new was appended).
pub(crate) fn count(counter: &LazyLock<CounterVec>, stored: bool) {
    if stored {
        counter.inc(&[]);
    }
}
