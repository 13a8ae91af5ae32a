//! Knowing that PostgreSQL is down, so that operations fail at once instead of each waiting
//! for the pool's acquire timeout (see "Outages" in the module docs of [`crate::postgres`]).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Weak};
use std::time::Duration;

use sqlx::pool::PoolConnection;
use sqlx::postgres::{PgConnectOptions, PgConnection, PgPool};
use sqlx::{Connection, Postgres};
use tokio::sync::watch;

use super::options::PostgresOptions;
use crate::error::{EventStoreError, Result};

/// `application_name` of the probe's connections, to find them in `pg_stat_activity`.
pub const PROBE_APPLICATION_NAME: &str = "metachat-event-probe";

/// Whether the server answers, shared by a store's clones, its checkpoints and its listening
/// task. Starts available (the store has just connected).
pub(super) struct Health {
    available: watch::Sender<bool>,
    /// A probe task is running; at most one per store.
    probing: AtomicBool,
    /// The store was closed: no more probes.
    closed: AtomicBool,
    connect: PgConnectOptions,
    interval: Duration,
    timeout: Duration,
}

impl Health {
    pub(super) fn new(connect: PgConnectOptions, options: &PostgresOptions) -> Arc<Self> {
        Arc::new(Self {
            available: watch::channel(true).0,
            probing: AtomicBool::new(false),
            closed: AtomicBool::new(false),
            connect: connect.application_name(PROBE_APPLICATION_NAME),
            interval: options.health_probe_interval.max(Duration::from_millis(10)),
            timeout: options.health_probe_timeout.max(Duration::from_millis(10)),
        })
    }

    pub(super) fn is_available(&self) -> bool {
        *self.available.borrow()
    }

    pub(super) fn subscribe(&self) -> watch::Receiver<bool> {
        self.available.subscribe()
    }

    /// The store is closing: it reports unavailable from now on and stops probing.
    pub(super) fn close(&self) {
        self.closed.store(true, Ordering::SeqCst);
        self.available.send_replace(false);
    }

    /// A pool connection; fails at once while the server is known to be down, and stops
    /// waiting as soon as it becomes known while this call waits.
    pub(super) async fn connection(
        self: &Arc<Self>,
        pool: &PgPool,
    ) -> Result<PoolConnection<Postgres>> {
        let mut available = self.available.subscribe();
        // A closed pool answers `PoolClosed` itself, which says more than "down".
        if !*available.borrow_and_update() && !pool.is_closed() {
            return Err(down());
        }
        let acquire = pool.acquire();
        tokio::pin!(acquire);
        // A wait this long is suspicious (a server that stopped answering refuses nothing):
        // check the server while waiting on.
        let slow = tokio::time::sleep(self.timeout);
        tokio::pin!(slow);
        let mut suspected = false;
        let mut watching = true;
        loop {
            tokio::select! {
                acquired = &mut acquire => return self.checked(acquired),
                () = &mut slow, if !suspected => {
                    suspected = true;
                    self.suspect();
                }
                changed = available.changed(), if watching => {
                    // The sender lives in `self`, so this only fails if it is gone for good.
                    watching = changed.is_ok();
                    if !*available.borrow_and_update() && !pool.is_closed() {
                        return Err(down());
                    }
                }
            }
        }
    }

    /// Converts an operation's result, starting a probe when its error suggests an outage.
    pub(super) fn checked<T>(self: &Arc<Self>, result: Result<T, sqlx::Error>) -> Result<T> {
        result.map_err(|error| {
            let error = EventStoreError::from(error);
            self.observe(&error);
            error
        })
    }

    /// Starts a probe when `error` suggests that the server is down.
    pub(super) fn observe(self: &Arc<Self>, error: &EventStoreError) {
        if let EventStoreError::Backend(error) = error {
            self.observe_sqlx(error);
        }
    }

    pub(super) fn observe_sqlx(self: &Arc<Self>, error: &sqlx::Error) {
        if suggests_outage(error) {
            self.suspect();
        }
    }

    /// Something went wrong with a connection: check the server now, unless a probe is already
    /// running. The probe, not the failed operation, decides: one killed connection or a busy
    /// pool does not make the store unavailable.
    pub(super) fn suspect(self: &Arc<Self>) {
        if self.closed.load(Ordering::SeqCst)
            || self
                .probing
                .compare_exchange(false, true, Ordering::SeqCst, Ordering::SeqCst)
                .is_err()
        {
            return;
        }
        tokio::spawn(probe(Arc::downgrade(self)));
    }

    /// Opens a connection of its own (the pool's may all be busy or dead) and pings.
    async fn probe_once(&self) -> std::result::Result<(), sqlx::Error> {
        let attempt = async {
            let mut conn = PgConnection::connect_with(&self.connect).await?;
            conn.ping().await?;
            conn.close().await
        };
        match tokio::time::timeout(self.timeout, attempt).await {
            Ok(result) => result,
            Err(_) => Err(sqlx::Error::Io(std::io::Error::new(
                std::io::ErrorKind::TimedOut,
                "the health probe got no answer",
            ))),
        }
    }

    /// Sets the state; true when it changed.
    fn set_available(&self, up: bool) -> bool {
        self.available.send_if_modified(|available| {
            let changed = *available != up;
            *available = up;
            changed
        })
    }
}

/// Probes until the server answers; holds only a weak reference so that a dropped store's
/// probe ends.
async fn probe(health: Weak<Health>) {
    loop {
        let Some(current) = health.upgrade() else {
            return;
        };
        if current.closed.load(Ordering::SeqCst) {
            current.probing.store(false, Ordering::SeqCst);
            return;
        }
        match current.probe_once().await {
            Err(error) if suggests_outage(&error) => {
                if current.set_available(false) {
                    tracing::warn!(
                        %error,
                        retry_every = ?current.interval,
                        "PostgreSQL is unreachable: event store operations fail fast until it \
                         answers again"
                    );
                }
            }
            // It answered, possibly with a refusal that is not an outage (too many
            // connections): operations wait for the pool as usual.
            answered => {
                if current.closed.load(Ordering::SeqCst) {
                    current.probing.store(false, Ordering::SeqCst);
                    return;
                }
                if current.set_available(true) {
                    tracing::info!("PostgreSQL answers again: event store available");
                }
                if let Err(error) = answered {
                    tracing::debug!(%error, "the health probe was refused, not cut off");
                }
                current.probing.store(false, Ordering::SeqCst);
                return;
            }
        }
        let interval = current.interval;
        drop(current);
        tokio::time::sleep(interval).await;
    }
}

/// Errors that mean the server is unreachable, shutting down or starting up, as opposed to
/// busy (lock or statement timeouts, too many connections) or refusing a statement.
fn suggests_outage(error: &sqlx::Error) -> bool {
    match error {
        sqlx::Error::Io(_)
        | sqlx::Error::Tls(_)
        | sqlx::Error::PoolTimedOut
        | sqlx::Error::WorkerCrashed => true,
        // 08xxx connection exception; 57P01 admin shutdown, 57P02 crash shutdown, 57P03 cannot
        // connect now (starting up or shutting down).
        sqlx::Error::Database(e) => e.code().as_deref().is_some_and(|code| {
            code.starts_with("08") || matches!(code, "57P01" | "57P02" | "57P03")
        }),
        _ => false,
    }
}

/// The error of an operation refused because the server is known to be down. An I/O error,
/// so that [`EventStoreError::is_unavailable`] is true for it.
fn down() -> EventStoreError {
    EventStoreError::Backend(sqlx::Error::Io(std::io::Error::new(
        std::io::ErrorKind::NotConnected,
        "PostgreSQL is unreachable (failing fast until a probe reaches it again)",
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_connection_failures_suggest_an_outage() {
        assert!(suggests_outage(&sqlx::Error::PoolTimedOut));
        assert!(suggests_outage(&sqlx::Error::Io(std::io::Error::from(
            std::io::ErrorKind::ConnectionRefused
        ))));
        assert!(!suggests_outage(&sqlx::Error::PoolClosed));
        assert!(!suggests_outage(&sqlx::Error::RowNotFound));
        assert!(down().is_unavailable());
    }
}
