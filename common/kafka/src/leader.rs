//! Leader election on PostgreSQL: the holder of a session-level advisory lock leads. The lock
//! lives as long as the connection that took it, so a leader that dies (or loses its
//! connection) releases it, and a waiting replica takes over.

use std::hash::Hasher;
use std::time::Duration;

use fnv::FnvHasher;
use sqlx::pool::PoolConnection;
use sqlx::postgres::{PgPool, Postgres};

/// How often a follower retries the lock, and how often a leader checks it still holds it.
const CHECK_EVERY: Duration = Duration::from_secs(1);

/// Elects one leader per name among every process sharing a database (and schema).
#[derive(Clone)]
pub struct PgLeadership {
    pool: PgPool,
    scope: String,
}

/// Leadership, held while this value lives.
pub struct Leader {
    connection: PoolConnection<Postgres>,
    key: i64,
}

impl PgLeadership {
    /// `scope` separates elections of stores sharing a database (the event store's schema).
    pub fn new(pool: PgPool, scope: &str) -> Self {
        Self {
            pool,
            scope: scope.to_owned(),
        }
    }

    /// Waits until this process leads `name`.
    pub async fn acquire(&self, name: &str) -> Result<Leader, sqlx::Error> {
        let key = lock_key(&format!("{}:{name}", self.scope));
        loop {
            let mut connection = self.pool.acquire().await?;
            // The lock lives as long as this session: never hand the connection back to the
            // pool (another task could inherit the lock), and have the server notice a
            // vanished leader within seconds instead of after the OS's TCP keepalive (hours).
            connection.close_on_drop();
            for setting in [
                "SET tcp_keepalives_idle = 5",
                "SET tcp_keepalives_interval = 2",
                "SET tcp_keepalives_count = 3",
            ] {
                sqlx::query(setting).execute(&mut *connection).await?;
            }
            let acquired: bool = sqlx::query_scalar("SELECT pg_try_advisory_lock($1)")
                .bind(key)
                .fetch_one(&mut *connection)
                .await?;
            if acquired {
                return Ok(Leader { connection, key });
            }
            drop(connection);
            tokio::time::sleep(CHECK_EVERY).await;
        }
    }
}

impl Leader {
    /// Completes when leadership is lost (the lock's connection failed).
    pub async fn lost(&mut self) {
        loop {
            tokio::time::sleep(CHECK_EVERY).await;
            // A session lock lasts as long as its session: a live connection still holds it.
            let alive = sqlx::query("SELECT 1").execute(&mut *self.connection).await;
            if alive.is_err() {
                return;
            }
        }
    }

    /// Gives leadership up now (otherwise it ends when the connection closes, which dropping
    /// the leader does).
    pub async fn release(mut self) {
        let _ = sqlx::query("SELECT pg_advisory_unlock($1)")
            .bind(self.key)
            .execute(&mut *self.connection)
            .await;
    }
}

/// A stable 64-bit lock key for a name (FNV-1a; `hashtext` is not guaranteed stable across
/// PostgreSQL versions).
fn lock_key(name: &str) -> i64 {
    let mut hash = FnvHasher::default();
    hash.write(format!("metachat:{name}").as_bytes());
    hash.finish() as i64
}

#[cfg(test)]
mod tests {
    use super::lock_key;

    #[test]
    fn lock_keys_are_stable_and_distinct() {
        // Fixed: a change would let old and new builds both think they lead.
        assert_eq!(lock_key("relay:user"), -7_271_413_208_513_817_390);
        assert_ne!(lock_key("relay:user"), lock_key("relay:diary"));
    }
}
