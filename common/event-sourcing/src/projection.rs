//! Subscriptions to the global order and checkpointed projections built on them.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use tokio::sync::watch;

use crate::dead_letter::{DeadLetters, RETRY_POLL, apply_or_park, retry_dead_letters};
use crate::error::Result;
use crate::event::{Position, RecordedEvent};
use crate::store::EventStore;

/// How long a subscriber waits for a wake-up before re-reading anyway. The wake-up covers this
/// process's appends; the re-read covers other processes writing the same store.
pub const FALLBACK_POLL: Duration = Duration::from_millis(500);

/// Follows the global order from a position: each call returns the next events, waiting for new
/// ones when it has caught up. Every event is returned exactly once, in position order.
pub struct Subscription {
    store: Arc<dyn EventStore>,
    position: Position,
    head: watch::Receiver<Position>,
    batch_size: usize,
    fallback_poll: Duration,
    sealed: bool,
}

impl Subscription {
    pub fn new(store: Arc<dyn EventStore>, after: Position, batch_size: usize) -> Self {
        let head = store.watch_head();
        Self {
            store,
            position: after,
            head,
            batch_size: batch_size.max(1),
            fallback_poll: FALLBACK_POLL,
            sealed: false,
        }
    }

    /// Returns events as stored, their personal data still sealed
    /// ([`EventStore::read_all_sealed`]): for publishing them.
    pub fn sealed(mut self) -> Self {
        self.sealed = true;
        self
    }

    /// Changes how long to wait for a wake-up before re-reading anyway.
    pub fn with_fallback_poll(mut self, fallback_poll: Duration) -> Self {
        self.fallback_poll = fallback_poll;
        self
    }

    /// The position of the last event returned.
    pub fn position(&self) -> Position {
        self.position
    }

    /// The next events (at least one), waiting as long as there are none.
    pub async fn next_batch(&mut self) -> Result<Vec<RecordedEvent>> {
        loop {
            // Mark the current head as seen before reading, so an append that lands between the
            // read and the wait still wakes us.
            self.head.borrow_and_update();
            let batch = if self.sealed {
                self.store
                    .read_all_sealed(self.position, self.batch_size)
                    .await?
            } else {
                self.store.read_all(self.position, self.batch_size).await?
            };
            if let Some(last) = batch.last() {
                self.position = last.position;
                return Ok(batch);
            }
            let _ = tokio::time::timeout(self.fallback_poll, self.head.changed()).await;
        }
    }
}

/// An error a projection reports; the runner retries the event after a pause.
pub type ProjectionError = Box<dyn std::error::Error + Send + Sync>;

/// A read model fed by events. `apply` must be idempotent: applying an event it has already
/// applied changes nothing, because delivery is at-least-once (a crash between applying and
/// saving the checkpoint replays the batch).
#[async_trait]
pub trait Projection: Send + Sync + 'static {
    /// Unique name; also the checkpoint's key.
    fn name(&self) -> &str;

    async fn apply(&self, event: &RecordedEvent) -> std::result::Result<(), ProjectionError>;

    /// Deletes everything the projection built, before a rebuild from position zero.
    async fn reset(&self) -> std::result::Result<(), ProjectionError>;

    /// Applies the events of a batch, in order, at once where the projection can (in one
    /// transaction, say); `Ok(false)`, the default, when it cannot, and the runner applies
    /// them one by one. On an error the runner applies them again one by one (applying is
    /// idempotent), parking any that can never be applied.
    async fn apply_batch(
        &self,
        _events: &[&RecordedEvent],
    ) -> std::result::Result<bool, ProjectionError> {
        Ok(false)
    }

    /// For a projection whose result of an event depends only on the last event of a kind
    /// (a follower that recomputes something per user, say): the key of that kind. Of the
    /// events of one batch sharing a key, only the last is applied, which must leave the
    /// same state as applying each in turn. A follower that has fallen behind then does its
    /// work once per key and batch instead of once per event. `None` (the default): every
    /// event is applied.
    fn coalescing_key(&self, _event: &RecordedEvent) -> Option<String> {
        None
    }
}

/// The events of `batch` to apply: those not erased and not followed, in the batch, by an
/// event with the same [`Projection::coalescing_key`].
pub fn to_apply<'a>(
    projection: &dyn Projection,
    batch: &'a [RecordedEvent],
) -> Vec<&'a RecordedEvent> {
    let keys: Vec<Option<String>> = batch.iter().map(|e| projection.coalescing_key(e)).collect();
    let mut last: std::collections::HashMap<&str, usize> = std::collections::HashMap::new();
    for (i, key) in keys.iter().enumerate() {
        if let Some(key) = key {
            last.insert(key, i);
        }
    }
    batch
        .iter()
        .enumerate()
        .filter(|(i, e)| !e.erased && keys[*i].as_deref().is_none_or(|k| last.get(k) == Some(i)))
        .map(|(_, e)| e)
        .collect()
}

/// Where projections remember how far they got, and park what they cannot apply.
#[async_trait]
pub trait CheckpointStore: DeadLetters {
    async fn load(&self, name: &str) -> Result<Position>;
    async fn save(&self, name: &str, position: Position) -> Result<()>;
}

/// Runs one projection: reads from its checkpoint, applies, saves the new checkpoint.
pub struct ProjectionRunner {
    store: Arc<dyn EventStore>,
    checkpoints: Arc<dyn CheckpointStore>,
    projection: Arc<dyn Projection>,
    progress: watch::Sender<Position>,
    batch_size: usize,
}

impl ProjectionRunner {
    pub fn new(
        store: Arc<dyn EventStore>,
        checkpoints: Arc<dyn CheckpointStore>,
        projection: Arc<dyn Projection>,
    ) -> Self {
        Self {
            store,
            checkpoints,
            projection,
            progress: watch::channel(0).0,
            batch_size: 500,
        }
    }

    pub fn name(&self) -> &str {
        self.projection.name()
    }

    /// The position this projection has applied up to, updated after every batch.
    pub fn progress(&self) -> watch::Receiver<Position> {
        self.progress.subscribe()
    }

    /// Applies everything up to the head as it is now, then returns the checkpoint.
    pub async fn catch_up(&self) -> std::result::Result<Position, ProjectionError> {
        let mut position = self.checkpoints.load(self.name()).await?;
        self.progress.send_replace(position);
        loop {
            let batch = self.store.read_all(position, self.batch_size).await?;
            let Some(last) = batch.last().map(|e| e.position) else {
                crate::metrics::behind(self.name(), 0);
                return Ok(position);
            };
            self.apply_batch(&batch).await?;
            position = last;
        }
    }

    /// Deletes the read model and builds it again from position zero.
    pub async fn rebuild(&self) -> std::result::Result<Position, ProjectionError> {
        self.projection.reset().await?;
        self.checkpoints.save(self.name(), 0).await?;
        self.catch_up().await
    }

    /// Follows the store until `shutdown` completes. Failures are logged and retried after a
    /// growing pause (never skipped): a read model must not silently miss an event. An event
    /// that can never be applied is parked as a dead letter ([`crate::dead_letter`]).
    pub async fn run(self, shutdown: impl Future<Output = ()>) {
        tokio::pin!(shutdown);
        let mut pause = Duration::from_millis(100);
        loop {
            let outcome = tokio::select! {
                _ = &mut shutdown => return,
                outcome = self.follow() => outcome,
            };
            if let Err(error) = outcome {
                tracing::error!(projection = self.name(), %error, "projection failed; retrying");
                tokio::select! {
                    _ = &mut shutdown => return,
                    _ = tokio::time::sleep(pause) => {}
                }
                pause = (pause * 2).min(Duration::from_secs(5));
            }
        }
    }

    async fn follow(&self) -> std::result::Result<(), ProjectionError> {
        // What was parked may apply with this build.
        retry_dead_letters(
            self.projection.as_ref(),
            self.checkpoints.as_ref(),
            self.store.as_ref(),
            true,
        )
        .await?;
        let from = self.catch_up().await?;
        let mut subscription = Subscription::new(Arc::clone(&self.store), from, self.batch_size);
        let mut retries = tokio::time::interval(RETRY_POLL);
        retries.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                batch = subscription.next_batch() => self.apply_batch(&batch?).await?,
                _ = retries.tick() => {
                    retry_dead_letters(
                        self.projection.as_ref(),
                        self.checkpoints.as_ref(),
                        self.store.as_ref(),
                        false,
                    )
                    .await?;
                }
            }
        }
    }

    async fn apply_batch(
        &self,
        batch: &[RecordedEvent],
    ) -> std::result::Result<(), ProjectionError> {
        // An erased subject's events are not applied: nothing of them is kept.
        let events = to_apply(self.projection.as_ref(), batch);
        let applied = match self.projection.apply_batch(&events).await {
            Ok(applied) => applied,
            Err(error) => {
                tracing::debug!(projection = self.name(), %error,
                    "a batch failed as a whole; applying its events one by one");
                false
            }
        };
        if !applied {
            for event in events {
                apply_or_park(self.projection.as_ref(), self.checkpoints.as_ref(), event).await?;
            }
        }
        if let Some(last) = batch.last() {
            self.checkpoints.save(self.name(), last.position).await?;
            self.progress.send_replace(last.position);
            crate::metrics::applied(self.name(), last);
            let head = *self.store.watch_head().borrow();
            crate::metrics::behind(self.name(), head.saturating_sub(last.position));
        }
        Ok(())
    }
}

/// Waits until a projection's progress reaches `position`; false on timeout.
pub async fn wait_for_position(
    progress: &mut watch::Receiver<Position>,
    position: Position,
    timeout: Duration,
) -> bool {
    tokio::time::timeout(timeout, progress.wait_for(|p| *p >= position))
        .await
        .is_ok_and(|r| r.is_ok())
}
