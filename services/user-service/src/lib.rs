//! The user service: users, profiles, archetypes and modalities, event-sourced.
//!
//! Commands are decided by the [`domain::UserState`] aggregate and stored as events; single-user
//! reads replay the user's stream (read-your-writes), lists come from the read models kept by
//! [`read_model::SqliteUserReadModels`].

pub mod application;
pub mod cassandra;
pub mod domain;
pub mod grpc;
pub mod inference;
pub mod read_model;
pub mod standalone;
pub mod view;

use event_sourcing::Upcasters;

pub use grpc::UserGrpc;
pub use inference::{GrpcWritingProfiles, ProfileInference, WritingProfiles};
pub use read_model::{SqliteUserReadModels, UserReadModels};
pub use standalone::UserService;

/// Upcasters for old user event payloads (none yet: every user event is at version 1).
pub fn upcasters() -> Upcasters {
    Upcasters::new()
}
