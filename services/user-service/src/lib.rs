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
pub mod metrics;
pub mod read_model;
pub mod standalone;
pub mod view;

use event_sourcing::personal::{PersonalData, Subject};
use event_sourcing::{EventCodec, Upcasters};

pub use grpc::UserGrpc;
pub use inference::{GrpcWritingProfiles, ProfileInference, WritingProfiles};
pub use read_model::{SqliteUserReadModels, UserReadModels};
pub use standalone::UserService;

/// Upcasters for old user event payloads (none yet: every user event is at version 1).
pub fn upcasters() -> Upcasters {
    Upcasters::new()
}

/// The personal data in user events ([`event_sourcing::personal`]): a user's events are
/// theirs; ids, reasons, refresh-token digests and times stay readable, everything else
/// (names, e-mail, birth date, bio, avatar, archetypes and modalities with their evidence,
/// the password hash) is sealed with the user's key. `UserErased` is nobody's.
pub fn personal_data() -> PersonalData {
    let user = |data: PersonalData, event: &str, keep: &'static [&'static str]| {
        data.register(event, Subject::Stream, keep)
    };
    let of_user_id = |data: PersonalData, event: &str, keep: &'static [&'static str]| {
        data.register(event, Subject::Field("userId"), keep)
    };
    let data = user(PersonalData::new(), "UserCreated", &["userId"]);
    let data = user(data, "UserProfileUpdated", &[]);
    let data = user(data, "ArchetypeAssigned", &[]);
    let data = user(data, "ArchetypeUpdated", &[]);
    let data = user(data, "ModalitiesUpdated", &[]);
    let data = user(data, "InferredProfileCleared", &["reason"]);
    let data = of_user_id(data, "PasswordSet", &["userId"]);
    let data = of_user_id(data, "SignedIn", &["userId", "refreshDigest", "expiresAt"]);
    let data = of_user_id(data, "UsernameClaimed", &["userId"]);
    of_user_id(data, "EmailClaimed", &["userId"])
}

/// How the user service's events are stored: [`upcasters`] and [`personal_data`].
pub fn codec() -> EventCodec {
    EventCodec::new(upcasters()).with_personal_data(personal_data())
}
