//! Connecting: a session to the cluster, with the configured keyspace created when missing.
//!
//! The session is not bound to the keyspace (no `USE`): Cassandra warns that `USE` with
//! prepared statements is an anti-pattern, since an unqualified table name in a prepared
//! statement is ambiguous. Every statement names its tables fully qualified instead
//! ([`crate::qualified`]), and migrations write `{keyspace}.<table>` ([`crate::migrate`]).

use std::sync::Arc;
use std::time::{Duration, Instant};

use scylla::client::session::Session;
use scylla::client::session_builder::SessionBuilder;

use crate::{CassandraConfig, CassandraError, quote_identifier};

/// How long [`connect`] waits for the cluster to answer before giving up.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(15);

/// A session to the cluster, creating `config.keyspace` (with `config.replication`) when it
/// does not exist. The session has no current keyspace: statements qualify their tables
/// with `config.keyspace` ([`crate::qualified`]). Fails within [`CONNECT_TIMEOUT`] with an
/// error naming the hosts when no node answers.
pub async fn connect(config: &CassandraConfig) -> Result<Arc<Session>, CassandraError> {
    connect_with_timeout(config, CONNECT_TIMEOUT).await
}

/// [`connect`] with another bound on the wait for the first node.
pub async fn connect_with_timeout(
    config: &CassandraConfig,
    timeout: Duration,
) -> Result<Arc<Session>, CassandraError> {
    let started = Instant::now();
    let hosts = config.hosts.join(",");
    let unreachable = |reason: String| CassandraError::Unreachable {
        hosts: hosts.clone(),
        reason,
    };
    let builder = SessionBuilder::new()
        .known_nodes(&config.hosts)
        .connection_timeout(timeout.min(Duration::from_secs(5)));
    let session = match tokio::time::timeout(timeout, builder.build()).await {
        Err(_) => return Err(unreachable(format!("no answer within {timeout:?}"))),
        Ok(Err(error)) => return Err(unreachable(error.to_string())),
        Ok(Ok(session)) => session,
    };
    let keyspace_error = |source: crate::BoxError| CassandraError::Keyspace {
        keyspace: config.keyspace.clone(),
        source,
    };
    // The name is a validated identifier, quoted so that it may also be a CQL keyword.
    let create = format!(
        "CREATE KEYSPACE IF NOT EXISTS {} WITH replication = {}",
        quote_identifier(&config.keyspace),
        config.replication
    );
    session
        .query_unpaged(create, &[])
        .await
        .map_err(|e| keyspace_error(e.into()))?;
    session
        .await_schema_agreement()
        .await
        .map_err(|e| keyspace_error(e.into()))?;
    tracing::info!(
        hosts = %hosts,
        keyspace = %config.keyspace,
        elapsed_ms = started.elapsed().as_millis() as u64,
        "connected to Cassandra"
    );
    Ok(Arc::new(session))
}

/// Whether the cluster answers a trivial query (for health probes).
pub async fn ping(session: &Session) -> bool {
    session
        .query_unpaged("SELECT release_version FROM system.local", &[])
        .await
        .is_ok()
}
