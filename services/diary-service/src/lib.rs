//! The diary service: entries, writing sessions and analytics, event-sourced.
//!
//! Commands are decided by the [`domain::Entry`] and [`domain::Session`] aggregates; reads of
//! one entry or session replay its stream (read-your-writes); lists, time ranges and analytics
//! come from the read models kept by [`read_model::SqliteDiaryReadModels`].

pub mod analytics;
pub mod analyzer;
pub mod application;
pub mod cassandra;
pub mod domain;
pub mod eraser;
pub mod grpc;
pub mod metrics;
pub mod read_model;
pub mod search;
pub mod standalone;
pub mod users;
pub mod walk;

use event_sourcing::personal::{PersonalData, Subject};
use event_sourcing::{EventCodec, Upcasters};

pub use grpc::DiaryGrpc;
pub use read_model::{DiaryReadModels, SqliteDiaryReadModels};
pub use standalone::DiaryService;
pub use users::{GrpcUserDirectory, UserDirectory};

/// Upcasters for old diary event payloads (none yet: every diary event is at version 1).
pub fn upcasters() -> Upcasters {
    Upcasters::new()
}

/// The personal data in diary events ([`event_sourcing::personal`]): every event is its
/// writer's (`userId`). Ids, versions and times stay readable; titles, contents, tags and
/// everything analysis found in them are sealed with the writer's key. `DiaryErased` is
/// nobody's.
pub fn personal_data() -> PersonalData {
    let rules: [(&str, &'static [&'static str]); 9] = [
        (
            "DiaryEntryCreated",
            &["entryId", "userId", "tokenCount", "sessionId", "createdAt"],
        ),
        ("DiaryEntryUpdated", &["userId", "tokenCount"]),
        ("DiaryEntryDeleted", &["userId"]),
        (
            "DiaryEntryAnalyzed",
            &[
                "userId",
                "entryVersion",
                "analyzerVersion",
                "settingVersion",
            ],
        ),
        ("DiaryAnalysisDisabled", &["userId"]),
        ("DiaryAnalysisEnabled", &["userId"]),
        ("DiarySessionStarted", &["sessionId", "userId", "startTime"]),
        (
            "DiarySessionEntryAdded",
            &["entryId", "userId", "writtenAt"],
        ),
        ("DiarySessionEnded", &["userId", "endTime"]),
    ];
    rules
        .into_iter()
        .fold(PersonalData::new(), |data, (event, keep)| {
            data.register(event, Subject::Field("userId"), keep)
        })
}

/// How the diary service's events are stored: [`upcasters`] and [`personal_data`].
pub fn codec() -> EventCodec {
    EventCodec::new(upcasters()).with_personal_data(personal_data())
}
