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
pub mod grpc;
pub mod read_model;
pub mod search;
pub mod standalone;
pub mod users;
pub mod walk;

use event_sourcing::Upcasters;

pub use grpc::DiaryGrpc;
pub use read_model::{DiaryReadModels, SqliteDiaryReadModels};
pub use standalone::DiaryService;
pub use users::{GrpcUserDirectory, UserDirectory};

/// Upcasters for old diary event payloads (none yet: every diary event is at version 1).
pub fn upcasters() -> Upcasters {
    Upcasters::new()
}
