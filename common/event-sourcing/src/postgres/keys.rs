//! The data keys of [`crate::personal`] in the schema's `data_keys` table.

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;

use async_trait::async_trait;
use sqlx::{AssertSqlSafe, Connection, PgConnection};

use super::Inner;
use crate::error::{EventStoreError, Result};
use crate::personal::{DataKey, KeyTable, StoredKey};

#[async_trait]
impl KeyTable for Inner {
    async fn read_keys(&self, subjects: &[String]) -> Result<HashMap<String, StoredKey>> {
        let mut conn = self.health.connection(&self.pool).await?;
        let rows: Vec<(String, StoredKey)> = self.health.checked(
            sqlx::query_as(AssertSqlSafe(Arc::clone(&self.sql.keys_read)))
                .bind(subjects)
                .fetch_all(&mut *conn)
                .await,
        )?;
        Ok(rows.into_iter().collect())
    }
}

impl Inner {
    /// The keys of `subjects` inside an append's transaction, after the append lock: read, or
    /// created for subjects without one. An erased subject is refused. Holding the lock, no
    /// erasure can commit between this read and the append's commit.
    pub(super) async fn write_keys(
        &self,
        tx: &mut PgConnection,
        subjects: BTreeSet<String>,
    ) -> Result<HashMap<String, DataKey>> {
        if subjects.is_empty() {
            return Ok(HashMap::new());
        }
        let wanted: Vec<String> = subjects.into_iter().collect();
        let mut rows: HashMap<String, StoredKey> =
            sqlx::query_as(AssertSqlSafe(Arc::clone(&self.sql.keys_read)))
                .bind(&wanted)
                .fetch_all(&mut *tx)
                .await
                .map(|rows: Vec<(String, StoredKey)>| rows.into_iter().collect())?;
        let missing: Vec<String> = wanted
            .iter()
            .filter(|s| !rows.contains_key(*s))
            .cloned()
            .collect();
        if !missing.is_empty() {
            let fresh = missing
                .iter()
                .map(|_| DataKey::generate().map(|k| k.to_vec()))
                .collect::<Result<Vec<_>>>()?;
            sqlx::query(AssertSqlSafe(Arc::clone(&self.sql.keys_create)))
                .bind(&missing)
                .bind(&fresh)
                .execute(&mut *tx)
                .await?;
            rows.extend(missing.into_iter().zip(fresh.into_iter().map(Some)));
        }
        let mut keys = HashMap::with_capacity(rows.len());
        for (subject, key) in rows {
            let Some(bytes) = key else {
                return Err(EventStoreError::SubjectErased { subject });
            };
            keys.insert(subject, DataKey::from_bytes(&bytes)?);
        }
        Ok(keys)
    }

    /// Deletes the subject's key under the append lock (so no append seals with it later),
    /// then vacuums the table so the deleted row version does not linger in its pages.
    pub(super) async fn erase(&self, subject: &str) -> Result<()> {
        let mut conn = self.health.connection(&self.pool).await?;
        let erased: Result<()> = async {
            let mut tx = conn.begin().await?;
            sqlx::raw_sql(AssertSqlSafe(Arc::clone(&self.sql.append_lock)))
                .execute(&mut *tx)
                .await?;
            sqlx::query(AssertSqlSafe(Arc::clone(&self.sql.keys_erase)))
                .bind(subject)
                .execute(&mut *tx)
                .await?;
            tx.commit().await?;
            Ok(())
        }
        .await;
        if let Err(error) = erased {
            self.health.observe(&error);
            return Err(error);
        }
        self.codec.key_cache().erased(subject);
        if let Err(error) = sqlx::raw_sql(AssertSqlSafe(Arc::clone(&self.sql.keys_vacuum)))
            .execute(&mut *conn)
            .await
        {
            tracing::warn!(%error, "vacuuming the data keys after an erasure failed");
        }
        Ok(())
    }
}
