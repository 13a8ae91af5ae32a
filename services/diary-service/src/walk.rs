//! Walking the event store up to its head, as the operator commands that bring derived data in
//! step with it (`metachat reanalyze`, `metachat reindex`) do.

use event_sourcing::{EventStore, ProjectionError, RecordedEvent};

/// Events read per batch.
const BATCH: usize = 500;

/// Calls `each` with `state` for every event up to the store's head as it is when the walk
/// starts (events appended meanwhile are left to the followers), in order, and `after_batch`
/// after each batch (for progress).
pub async fn to_head<S>(
    store: &dyn EventStore,
    state: &mut S,
    mut each: impl AsyncFnMut(&mut S, &RecordedEvent) -> Result<(), ProjectionError>,
    mut after_batch: impl FnMut(&S),
) -> Result<(), ProjectionError> {
    let head = store.head_position().await?;
    let mut after = 0;
    while after < head {
        let batch = store.read_all(after, BATCH).await?;
        let Some(last) = batch.last() else {
            break;
        };
        after = last.position;
        for recorded in batch.iter().filter(|e| e.position <= head) {
            each(state, recorded).await?;
        }
        after_batch(state);
    }
    Ok(())
}
