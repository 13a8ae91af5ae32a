//! The user domain: pure rules, no I/O.

pub mod credentials;
mod events;
mod user;
mod values;

pub use events::{
    ArchetypeSet, ClaimEvent, Evidence, Inference, InferenceBasis, InferredProfileCleared,
    ModalitiesUpdated, UserCreated, UserErased, UserEvent, UserProfileUpdated,
};
pub use user::{
    ArchetypeInput, INFERENCE_STEP, InferredProfile, MODALITIES, NewUser, ProfileChanges, User,
    UserCommand, UserError, UserState,
};
pub use values::{Confidence, Email, Username, claim_key};

#[cfg(test)]
mod tests;
