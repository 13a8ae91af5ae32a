//! The user domain: pure rules, no I/O.

mod events;
mod user;

pub use events::{
    ArchetypeSet, ClaimEvent, ModalitiesUpdated, UserCreated, UserEvent, UserProfileUpdated,
};
pub use user::{
    ArchetypeInput, MODALITIES, NewUser, ProfileChanges, User, UserCommand, UserError, claim_key,
};

#[cfg(test)]
mod tests;
