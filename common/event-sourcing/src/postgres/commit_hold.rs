//! Test support: holding an append just before its `COMMIT`.

use std::sync::PoisonError;

use super::{Inner, PostgresEventStore};
use crate::event::Position;

impl PostgresEventStore {
    /// Test support: the next append to reach its commit stops just before `COMMIT`, holding
    /// the append lock with its positions drawn, until the returned hold is released (or
    /// dropped). Lets a test watch what others see while a transaction is in flight.
    #[doc(hidden)]
    pub fn hold_next_commit(&self) -> CommitHold {
        let (reached_tx, reached) = tokio::sync::oneshot::channel();
        let (release, release_rx) = tokio::sync::oneshot::channel();
        *self
            .inner
            .commit_hold
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = Some(HeldCommit {
            reached: reached_tx,
            release: release_rx,
        });
        CommitHold {
            reached,
            release: Some(release),
        }
    }
}

pub(super) struct HeldCommit {
    reached: tokio::sync::oneshot::Sender<Position>,
    release: tokio::sync::oneshot::Receiver<()>,
}

/// See [`PostgresEventStore::hold_next_commit`].
pub struct CommitHold {
    reached: tokio::sync::oneshot::Receiver<Position>,
    release: Option<tokio::sync::oneshot::Sender<()>>,
}

impl CommitHold {
    /// Waits until the held append is about to commit; returns its last drawn position.
    pub async fn reached(&mut self) -> Position {
        (&mut self.reached)
            .await
            .expect("the held append ended before reaching its commit")
    }

    /// Lets the held append commit.
    pub fn release(mut self) {
        if let Some(release) = self.release.take() {
            let _ = release.send(());
        }
    }
}

impl Inner {
    pub(super) async fn wait_if_held(&self, position: Position) {
        let held = self
            .commit_hold
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        if let Some(held) = held {
            let _ = held.reached.send(position);
            let _ = held.release.await;
        }
    }
}
