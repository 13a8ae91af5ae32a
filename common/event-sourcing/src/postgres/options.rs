//! [`PostgresOptions`]: pool sizes and timeouts of a PostgreSQL store.

use std::time::Duration;

/// Options of a PostgreSQL store.
#[derive(Debug, Clone)]
pub struct PostgresOptions {
    /// The schema holding the store's tables; created if missing. `None` uses the connection's
    /// current schema (the first existing schema of its `search_path`, normally `public`), which
    /// must exist.
    pub schema: Option<String>,
    /// Most connections in the pool (readers and writers share it). The listening connection
    /// comes on top.
    pub max_connections: u32,
    /// Connections kept open even when idle.
    pub min_connections: u32,
    /// How long an operation waits for a connection from the pool (including opening one).
    pub acquire_timeout: Duration,
    /// Bound on the whole of `connect_with`: first connection, migrations, head, `LISTEN`.
    pub connect_timeout: Duration,
    /// How long an append waits for the append lock before failing as unavailable.
    pub lock_timeout: Duration,
    /// An append transaction idle for this long (a frozen or cut-off process holding the append
    /// lock) is ended by the server, releasing the lock.
    pub idle_in_transaction_timeout: Duration,
    /// While the server is unreachable, how often a probe tries to reach it again (operations
    /// fail at once meanwhile; see "Outages" in the module docs).
    pub health_probe_interval: Duration,
    /// How long a probe waits for the server to answer; also how long an operation waits for a
    /// pool connection before a probe checks the server.
    pub health_probe_timeout: Duration,
}

impl Default for PostgresOptions {
    fn default() -> Self {
        Self {
            schema: None,
            max_connections: 10,
            min_connections: 0,
            acquire_timeout: Duration::from_secs(5),
            connect_timeout: Duration::from_secs(10),
            lock_timeout: Duration::from_secs(10),
            idle_in_transaction_timeout: Duration::from_secs(10),
            health_probe_interval: Duration::from_millis(500),
            health_probe_timeout: Duration::from_secs(1),
        }
    }
}

impl PostgresOptions {
    /// Default options with the tables in `schema`.
    pub fn in_schema(schema: impl Into<String>) -> Self {
        Self {
            schema: Some(schema.into()),
            ..Self::default()
        }
    }
}
