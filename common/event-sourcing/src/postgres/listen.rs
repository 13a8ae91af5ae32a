//! Wake-ups across processes: the task that turns `NOTIFY`s into head changes.

use std::sync::Arc;
use std::time::Duration;

use sqlx::AssertSqlSafe;
use sqlx::postgres::{PgListener, PgPool};
use tokio::sync::watch;

use super::health::Health;
use crate::event::Position;

/// `application_name` of the listening connection, to find it in `pg_stat_activity`.
pub const LISTENER_APPLICATION_NAME: &str = "metachat-event-listener";

/// Reconnection pauses of the listening task.
const LISTEN_RETRY_MIN: Duration = Duration::from_millis(100);
const LISTEN_RETRY_MAX: Duration = Duration::from_secs(5);

/// The task that turns other processes' notifications into head changes.
pub(super) struct ListenTask {
    pub(super) listener_pool: PgPool,
    pub(super) pool: PgPool,
    pub(super) channel: String,
    pub(super) head_sql: Arc<str>,
    pub(super) head: Arc<watch::Sender<Position>>,
    pub(super) health: Arc<Health>,
}

impl ListenTask {
    pub(super) async fn run(self, first: PgListener) {
        let mut listener = Some(first);
        let mut pause = LISTEN_RETRY_MIN;
        loop {
            let mut current = match listener.take() {
                Some(listener) => listener,
                None => match self.subscribe_when_available().await {
                    Ok(listener) => listener,
                    Err(sqlx::Error::PoolClosed) => return,
                    Err(error) => {
                        tracing::warn!(
                            channel = self.channel,
                            %error,
                            retry_in = ?pause,
                            "cannot listen for appends; retrying"
                        );
                        self.health.observe_sqlx(&error);
                        self.pause(pause).await;
                        pause = (pause * 2).min(LISTEN_RETRY_MAX);
                        continue;
                    }
                },
            };
            // Subscribed: later commits are notified; earlier ones are in the head.
            self.refresh_head().await;
            pause = LISTEN_RETRY_MIN;
            loop {
                match current.try_recv().await {
                    Ok(Some(notification)) => match notification.payload().parse() {
                        Ok(position) => advance(&self.head, position),
                        Err(_) => self.refresh_head().await,
                    },
                    // The connection dropped (sqlx does not reconnect by itself, see
                    // `subscribe`). Notifications sent until we listen again are lost; the head
                    // re-read after subscribing again covers them. A dropped connection is the
                    // first sign of an outage, often long before an operation fails: check.
                    Ok(None) => {
                        tracing::debug!(
                            channel = self.channel,
                            "the connection listening for appends closed; reconnecting"
                        );
                        self.health.suspect();
                        break;
                    }
                    Err(sqlx::Error::PoolClosed) => return,
                    Err(error) => {
                        tracing::warn!(
                            channel = self.channel,
                            %error,
                            "lost the connection listening for appends; reconnecting"
                        );
                        self.health.suspect();
                        break;
                    }
                }
            }
            drop(current);
            self.pause(pause).await;
        }
    }

    /// Subscribes again, but not while the server is known to be down: waits until it answers,
    /// and abandons an attempt (which would wait for the listening pool's timeout) as soon as
    /// an outage becomes known, so that wake-ups resume right after the server is back.
    async fn subscribe_when_available(&self) -> std::result::Result<PgListener, sqlx::Error> {
        let mut available = self.health.subscribe();
        loop {
            if available.wait_for(|up| *up).await.is_err() {
                // The health state is gone with the store.
                return Err(sqlx::Error::PoolClosed);
            }
            tokio::select! {
                subscribed = subscribe(&self.listener_pool, &self.channel) => return subscribed,
                _ = available.wait_for(|up| !*up) => {}
            }
        }
    }

    /// Waits before reconnecting, but no longer than until an outage ends.
    async fn pause(&self, pause: Duration) {
        let mut available = self.health.subscribe();
        if *available.borrow_and_update() {
            tokio::time::sleep(pause).await;
            return;
        }
        tokio::select! {
            () = tokio::time::sleep(pause) => {}
            _ = available.wait_for(|up| *up) => {}
        }
    }

    async fn refresh_head(&self) {
        let head: std::result::Result<i64, _> =
            sqlx::query_scalar(AssertSqlSafe(Arc::clone(&self.head_sql)))
                .fetch_one(&self.pool)
                .await;
        match head {
            Ok(head) => advance(&self.head, head as Position),
            Err(error) => tracing::debug!(%error, "cannot re-read the head after subscribing"),
        }
    }
}

pub(super) async fn subscribe(
    pool: &PgPool,
    channel: &str,
) -> std::result::Result<PgListener, sqlx::Error> {
    let mut listener = PgListener::connect_with(pool).await?;
    // Reconnecting inside `try_recv` would wait there (up to the pool's timeout) and hide the
    // loss; the task reconnects itself, and learns of the loss at once.
    listener.eager_reconnect(false);
    listener.listen(channel).await?;
    Ok(listener)
}

/// Moves the head forward, never back (a late notification can carry an older position).
pub(super) fn advance(head: &watch::Sender<Position>, to: Position) {
    head.send_if_modified(|h| {
        let forward = to > *h;
        if forward {
            *h = to;
        }
        forward
    });
}
