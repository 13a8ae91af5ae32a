//! Dead letters: events a projection cannot apply, parked so that it goes on with the rest.
//!
//! A projection's failure is one of two kinds. A **transient** one (the read store is down, a
//! timeout) is retried until it succeeds: skipping the event would lose it. A **poison** one
//! can never succeed with this code: the event does not decode (an event type or payload shape
//! this build does not know, as when an older replica meets a newer one's event during a
//! rolling deploy). Retrying that forever would stop the projection for good, so the event is
//! parked here, with the error, and the projection goes on.
//!
//! Parked events are applied again: all of a projection's when it starts (a newer build may
//! know them now), and those an operator asks for (`metachat dead-letters retry`), which the
//! running projections pick up within [`RETRY_POLL`]. One that applies is removed; one that
//! still fails stays, its attempts counted. `metachat dead-letters drop` removes them for good.
//!
//! A parked event is applied after later events of its stream were: projections that keep a
//! version per row (MetaChat's do) then ignore what is older than what they hold.

use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use uuid::Uuid;

use crate::error::{EventStoreError, Result};
use crate::event::{Position, RecordedEvent};
use crate::projection::{Projection, ProjectionError};
use crate::store::EventStore;

/// How often running projections look for dead letters an operator asked to retry.
pub const RETRY_POLL: Duration = Duration::from_secs(5);

/// One parked event of one projection.
#[derive(Debug, Clone, PartialEq)]
pub struct DeadLetter {
    pub projection: String,
    pub event_id: Uuid,
    pub position: Position,
    pub stream_id: String,
    pub stream_version: u64,
    pub event_type: String,
    /// Why it could not be applied (never a payload's content).
    pub error: String,
    /// When it was first parked.
    pub parked_at: DateTime<Utc>,
    /// How many times applying it failed.
    pub attempts: u32,
    /// An operator asked to apply it again.
    pub retry_requested: bool,
}

/// Which dead letters an operation concerns: all, a projection's, or one event's.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LetterFilter {
    pub projection: Option<String>,
    pub event_id: Option<Uuid>,
}

/// Where dead letters are kept (beside the checkpoints).
#[async_trait]
pub trait DeadLetters: Send + Sync + 'static {
    /// Parks `event` for `projection` with `error`; parking it again counts an attempt and
    /// clears a retry request.
    async fn park(&self, projection: &str, event: &RecordedEvent, error: &str) -> Result<()>;

    /// The parked events, oldest position first.
    async fn dead_letters(&self, filter: &LetterFilter) -> Result<Vec<DeadLetter>>;

    /// Asks the running projections to apply these again; returns how many were asked.
    async fn request_retry(&self, filter: &LetterFilter) -> Result<u64>;

    /// Removes these for good; returns how many.
    async fn drop_letters(&self, filter: &LetterFilter) -> Result<u64>;

    /// Removes one that was applied.
    async fn resolve(&self, projection: &str, event_id: Uuid) -> Result<()>;
}

/// Why `error` can never be mended by retrying, or `None` for a transient failure. The text
/// names the problem without quoting the payload (which may be someone's diary).
pub fn poison(error: &ProjectionError) -> Option<String> {
    if let Some(EventStoreError::Codec(message)) = error.downcast_ref::<EventStoreError>() {
        return Some(message.clone());
    }
    if let Some(error) = error.downcast_ref::<serde_json::Error>() {
        return Some(format!(
            "the payload does not decode ({:?} error at line {}, column {})",
            error.classify(),
            error.line(),
            error.column()
        ));
    }
    None
}

/// Applies `event` to `projection`; a poison failure parks the event and counts as applied.
pub async fn apply_or_park(
    projection: &dyn Projection,
    letters: &dyn DeadLetters,
    event: &RecordedEvent,
) -> std::result::Result<(), ProjectionError> {
    let Err(error) = projection.apply(event).await else {
        return Ok(());
    };
    let Some(reason) = poison(&error) else {
        return Err(error);
    };
    tracing::error!(
        projection = projection.name(),
        event_id = %event.event_id,
        event_type = %event.event_type,
        stream_id = %event.stream_id,
        position = event.position,
        error = %reason,
        "event parked as a dead letter; see `metachat dead-letters`"
    );
    letters.park(projection.name(), event, &reason).await?;
    crate::metrics::DEAD_LETTERS.inc(&[projection.name()]);
    Ok(())
}

/// Applies again `projection`'s dead letters: every one (`all`, when it starts), or those an
/// operator asked for. The events are read from `store`. Returns how many were applied.
pub async fn retry_dead_letters(
    projection: &dyn Projection,
    letters: &dyn DeadLetters,
    store: &dyn EventStore,
    all: bool,
) -> std::result::Result<usize, ProjectionError> {
    let filter = LetterFilter {
        projection: Some(projection.name().to_owned()),
        event_id: None,
    };
    let mut applied = 0;
    for letter in letters.dead_letters(&filter).await? {
        if !all && !letter.retry_requested {
            continue;
        }
        let found = store
            .read_all(letter.position.saturating_sub(1), 1)
            .await?
            .into_iter()
            .next()
            .filter(|e| e.event_id == letter.event_id);
        let Some(event) = found else {
            tracing::warn!(
                projection = projection.name(),
                event_id = %letter.event_id,
                position = letter.position,
                "a dead letter's event is not in the store at its position; left parked"
            );
            continue;
        };
        if !event.erased {
            let Err(error) = projection.apply(&event).await else {
                letters.resolve(projection.name(), letter.event_id).await?;
                applied += 1;
                continue;
            };
            let Some(reason) = poison(&error) else {
                return Err(error);
            };
            letters.park(projection.name(), &event, &reason).await?;
            continue;
        }
        // Its subject was erased since: there is nothing left to apply.
        letters.resolve(projection.name(), letter.event_id).await?;
    }
    if applied > 0 {
        tracing::info!(
            projection = projection.name(),
            applied,
            "dead letters applied"
        );
    }
    Ok(applied)
}
