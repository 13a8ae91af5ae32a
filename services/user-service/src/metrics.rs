//! The user service's business metrics (the catalogue is docs/metrics.md). Each counts what
//! this process stored: a retried request that stored nothing new is not counted again.

use std::sync::LazyLock;

use metrics::CounterVec;

pub static USERS_CREATED: LazyLock<CounterVec> =
    LazyLock::new(|| CounterVec::new("metachat_users_created_total", "Users registered.", &[]));

pub static USERS_UPDATED: LazyLock<CounterVec> = LazyLock::new(|| {
    CounterVec::new(
        "metachat_users_updated_total",
        "Changes of a user's profile, archetype or modalities, by what changed (profile, archetype, modalities) and who chose it (client, inferred).",
        &["change", "source"],
    )
});

pub static ARCHETYPE_ASSIGNMENTS: LazyLock<CounterVec> = LazyLock::new(|| {
    CounterVec::new(
        "metachat_archetype_assignments_total",
        "Archetypes assigned or updated, by who chose them: client (the API) or inferred (from the user's writing).",
        &["source"],
    )
});

pub static USERS_ERASED: LazyLock<CounterVec> =
    LazyLock::new(|| CounterVec::new("metachat_users_erased_total", "Users erased.", &[]));

/// Creates the families, so that they are shown (at zero) before anything is counted.
pub fn describe() {
    LazyLock::force(&USERS_CREATED);
    LazyLock::force(&USERS_UPDATED);
    LazyLock::force(&ARCHETYPE_ASSIGNMENTS);
    LazyLock::force(&USERS_ERASED);
}

/// Counts the changes `events` made.
pub(crate) fn changed(events: &[crate::domain::UserEvent]) {
    use crate::domain::UserEvent as E;
    for event in events {
        let source = |inferred: bool| if inferred { "inferred" } else { "client" };
        match event {
            E::UserProfileUpdated(_) => USERS_UPDATED.inc(&["profile", "client"]),
            E::ArchetypeAssigned(a) | E::ArchetypeUpdated(a) => {
                let source = source(a.inferred.is_some());
                USERS_UPDATED.inc(&["archetype", source]);
                ARCHETYPE_ASSIGNMENTS.inc(&[source]);
            }
            E::ModalitiesUpdated(m) => {
                USERS_UPDATED.inc(&["modalities", source(m.inferred.is_some())])
            }
            E::UserCreated(_) | E::InferredProfileCleared(_) | E::UserErased(_) => {}
        }
    }
}
