//! The search index in Cassandra (production wiring).

use std::sync::Arc;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use metachat_cassandra::CassandraError;
use metachat_read_model::QueryError;
use metachat_validation::{EntryId, UserId};
use scylla::client::session::Session;

use super::{Hit, IndexStats, IndexedEntry, Posting, SearchIndex, StoredVectors};

/// The search index in Cassandra.
pub struct CassandraSearchIndex {
    #[allow(dead_code)]
    session: Arc<Session>,
}

impl CassandraSearchIndex {
    /// Prepares the statements, on a `keyspace` that is already migrated.
    pub async fn prepare(session: Arc<Session>, _keyspace: &str) -> Result<Self, CassandraError> {
        Ok(Self { session })
    }
}

fn missing() -> QueryError {
    QueryError::Backend("the Cassandra search index is not built yet".into())
}

#[async_trait]
impl SearchIndex for CassandraSearchIndex {
    async fn fingerprint(&self, _: &EntryId) -> Result<Option<i64>, QueryError> {
        Err(missing())
    }
    async fn put(&self, _: &IndexedEntry) -> Result<(), QueryError> {
        Err(missing())
    }
    async fn remove(&self, _: &UserId, _: &EntryId) -> Result<(), QueryError> {
        Err(missing())
    }
    async fn remove_user(&self, _: &UserId) -> Result<(), QueryError> {
        Err(missing())
    }
    async fn nearest(&self, _: &UserId, _: &[f32], _: usize) -> Result<Vec<Hit>, QueryError> {
        Err(missing())
    }
    async fn vectors(&self, _: &UserId, _: &[EntryId]) -> Result<Vec<StoredVectors>, QueryError> {
        Err(missing())
    }
    async fn postings(&self, _: &UserId, _: &[String]) -> Result<Vec<Posting>, QueryError> {
        Err(missing())
    }
    async fn stats(&self, _: &UserId) -> Result<IndexStats, QueryError> {
        Err(missing())
    }
    async fn written_between(
        &self,
        _: &UserId,
        _: DateTime<Utc>,
        _: DateTime<Utc>,
        _: usize,
    ) -> Result<Vec<StoredVectors>, QueryError> {
        Err(missing())
    }
    async fn clear(&self) -> Result<(), QueryError> {
        Err(missing())
    }
}
