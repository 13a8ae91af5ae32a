//! Apache Cassandra for the read models, through the `scylla` driver (which speaks CQL to
//! Apache Cassandra as well as to ScyllaDB). It knows nothing of users or diaries:
//!
//! - [`CassandraConfig`]: where the cluster is and which keyspace to use, from
//!   `CASSANDRA_HOSTS`, `CASSANDRA_KEYSPACE` and `CASSANDRA_REPLICATION`.
//! - [`connect`]: a session to the cluster, with that keyspace created when missing, or a
//!   clear error naming the hosts within [`CONNECT_TIMEOUT`]. The session is not bound to
//!   the keyspace (no `USE`, which Cassandra warns against with prepared statements):
//!   every statement names its tables fully qualified, [`qualified`]`(keyspace, table)`.
//! - [`migrate`]: versioned CQL files, applied once per domain and recorded in the
//!   keyspace's `schema_migrations`; their statements write the keyspace as
//!   [`KEYSPACE_PLACEHOLDER`] (`{keyspace}.<table>`).
//! - [`fetch_page`]: one page of a query, asked for by offset or by a cursor that carries the
//!   driver's paging state ([`encode_cursor`], [`decode_cursor`]).

mod config;
mod cursor;
mod migrate;
mod paging;
mod session;

pub use config::{
    CassandraConfig, DEFAULT_KEYSPACE, DEFAULT_PORT, DEFAULT_REPLICATION, ENV_HOSTS, ENV_KEYSPACE,
    ENV_REPLICATION, qualified, quote_identifier,
};
pub use cursor::{decode_cursor, encode_cursor};
pub use migrate::{KEYSPACE_PLACEHOLDER, migrate, split_statements};
pub use paging::{fetch_page, version_by_id};
pub use session::{CONNECT_TIMEOUT, connect, connect_with_timeout, ping};

/// Any error the driver reports, boxed (also what a projection returns).
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// Why connecting to Cassandra or preparing its schema failed.
#[derive(Debug, thiserror::Error)]
pub enum CassandraError {
    /// A configuration value is unusable.
    #[error(transparent)]
    Config(#[from] metachat_runtime::ConfigError),
    /// No node answered.
    #[error("cannot connect to Cassandra at {hosts} (CASSANDRA_HOSTS): {reason}")]
    Unreachable { hosts: String, reason: String },
    /// The keyspace could not be created or used.
    #[error(
        "cannot create or use the Cassandra keyspace {keyspace:?} \
         (CASSANDRA_KEYSPACE, CASSANDRA_REPLICATION): {source}"
    )]
    Keyspace {
        keyspace: String,
        #[source]
        source: BoxError,
    },
    /// A migration is malformed or one of its statements failed.
    #[error("CQL migration {domain} v{version} failed: {reason}")]
    Migration {
        domain: String,
        version: u32,
        reason: String,
    },
    /// A request failed (preparing a statement, reading the migration table, ...).
    #[error("Cassandra request failed: {0}")]
    Request(#[source] BoxError),
}

impl CassandraError {
    /// Wraps any driver error as a failed request.
    pub fn request(error: impl Into<BoxError>) -> Self {
        Self::Request(error.into())
    }
}

#[cfg(feature = "test-support")]
pub mod test_support;
