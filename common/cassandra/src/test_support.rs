//! A fresh keyspace per test on the test server (`scripts/infra/cassandra.sh start`).

use std::sync::Arc;
use std::time::{Duration, Instant};

use scylla::client::session::Session;

use crate::{CassandraConfig, CassandraError, connect_with_timeout, qualified, quote_identifier};

/// Where the test server is: `METACHAT_TEST_CASSANDRA_HOSTS`, default `127.0.0.1:19042`.
pub const TEST_HOSTS_VAR: &str = "METACHAT_TEST_CASSANDRA_HOSTS";
pub const TEST_HOSTS_DEFAULT: &str = "127.0.0.1:19042";

/// A keyspace of its own for one test, `t_<random>`.
pub struct TestKeyspace {
    pub session: Arc<Session>,
    pub config: CassandraConfig,
    /// How long connecting and creating the keyspace took.
    pub connect_time: Duration,
}

impl TestKeyspace {
    /// Connects to the test server and creates a fresh keyspace. Panics, saying how to start
    /// the server, when it is unreachable: tests that need Cassandra fail, never skip.
    pub async fn create() -> Self {
        let hosts = std::env::var(TEST_HOSTS_VAR)
            .ok()
            .filter(|h| !h.trim().is_empty())
            .unwrap_or_else(|| TEST_HOSTS_DEFAULT.to_owned());
        let keyspace = format!("t_{}", uuid::Uuid::new_v4().simple());
        let config = CassandraConfig::for_hosts(&hosts)
            .and_then(|c| c.with_keyspace(&keyspace))
            .unwrap_or_else(|e| panic!("{TEST_HOSTS_VAR}: {e}"));
        let started = Instant::now();
        match connect_with_timeout(&config, Duration::from_secs(20)).await {
            Ok(session) => Self {
                session,
                config,
                connect_time: started.elapsed(),
            },
            Err(error @ CassandraError::Unreachable { .. }) => panic!(
                "Cassandra is not reachable ({error}). Start the test server with \
                 `scripts/infra/cassandra.sh start`, or point {TEST_HOSTS_VAR} at one."
            ),
            Err(error) => panic!("cannot prepare a test keyspace: {error}"),
        }
    }

    pub fn name(&self) -> &str {
        &self.config.keyspace
    }

    /// `table` of this keyspace, fully qualified for a statement (the session has no
    /// current keyspace).
    pub fn table(&self, table: &str) -> String {
        qualified(&self.config.keyspace, table)
    }

    /// Drops the keyspace (best effort: a leftover test keyspace harms nothing).
    pub async fn drop_keyspace(self) {
        let statement = format!(
            "DROP KEYSPACE IF EXISTS {}",
            quote_identifier(&self.config.keyspace)
        );
        if let Err(error) = self.session.query_unpaged(statement, &[]).await {
            eprintln!(
                "could not drop test keyspace {}: {error}",
                self.config.keyspace
            );
        }
    }
}
