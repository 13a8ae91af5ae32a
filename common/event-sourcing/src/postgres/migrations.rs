//! Versioned schema migrations: the files in `migrations/postgres/`, applied once per schema.

use std::collections::HashSet;

use sqlx::AssertSqlSafe;
use sqlx::postgres::PgPool;

use super::sql::{configuration, lock_key, quote_ident};
use crate::error::Result;

struct Migration {
    version: i64,
    description: &'static str,
    sql: &'static str,
}

/// Applied in order; a released migration is never edited, only followed by a new one.
const MIGRATIONS: &[Migration] = &[
    Migration {
        version: 1,
        description: "events",
        sql: include_str!("../../migrations/postgres/0001_events.sql"),
    },
    Migration {
        version: 2,
        description: "checkpoints",
        sql: include_str!("../../migrations/postgres/0002_checkpoints.sql"),
    },
    Migration {
        version: 3,
        description: "data keys",
        sql: include_str!("../../migrations/postgres/0003_data_keys.sql"),
    },
    Migration {
        version: 4,
        description: "dead letters",
        sql: include_str!("../../migrations/postgres/0004_dead_letters.sql"),
    },
];

/// Applies the migrations the schema lacks (module docs).
pub(super) async fn migrate(pool: &PgPool, schema: &str, create_schema: bool) -> Result<()> {
    let quoted = quote_ident(schema);
    let migrations_table = format!("{quoted}.schema_migrations");
    if missing_migrations(pool, &migrations_table)
        .await?
        .is_empty()
    {
        return Ok(());
    }

    let mut tx = pool.begin().await?;
    sqlx::query("SELECT pg_advisory_xact_lock($1)")
        .bind(lock_key("migrate", schema))
        .execute(&mut *tx)
        .await?;
    // Checked before creating: CREATE ... IF NOT EXISTS needs the CREATE privilege even when
    // there is nothing to create.
    let schema_exists: bool =
        sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM pg_namespace WHERE nspname = $1)")
            .bind(schema)
            .fetch_one(&mut *tx)
            .await?;
    if !schema_exists {
        if !create_schema {
            return Err(configuration(format!("schema {schema} does not exist")));
        }
        sqlx::raw_sql(AssertSqlSafe(format!("CREATE SCHEMA {quoted}")))
            .execute(&mut *tx)
            .await?;
    }
    sqlx::raw_sql(AssertSqlSafe(format!("SET LOCAL search_path TO {quoted}")))
        .execute(&mut *tx)
        .await?;
    let table_exists: bool = sqlx::query_scalar("SELECT to_regclass($1) IS NOT NULL")
        .bind(&migrations_table)
        .fetch_one(&mut *tx)
        .await?;
    if !table_exists {
        sqlx::raw_sql(
            "CREATE TABLE schema_migrations (
                version     BIGINT      PRIMARY KEY,
                description TEXT        NOT NULL,
                applied_at  TIMESTAMPTZ NOT NULL DEFAULT now()
            )",
        )
        .execute(&mut *tx)
        .await?;
    }
    // Read again under the lock: another process may have migrated while we waited.
    let applied: HashSet<i64> = sqlx::query_scalar("SELECT version FROM schema_migrations")
        .fetch_all(&mut *tx)
        .await?
        .into_iter()
        .collect();
    for migration in MIGRATIONS {
        if applied.contains(&migration.version) {
            continue;
        }
        tracing::info!(
            schema,
            version = migration.version,
            description = migration.description,
            "applying event store migration"
        );
        sqlx::raw_sql(AssertSqlSafe(migration.sql))
            .execute(&mut *tx)
            .await?;
        sqlx::query("INSERT INTO schema_migrations (version, description) VALUES ($1, $2)")
            .bind(migration.version)
            .bind(migration.description)
            .execute(&mut *tx)
            .await?;
    }
    tx.commit().await?;
    Ok(())
}

/// The migrations not yet applied (all of them when the schema or its table does not exist).
async fn missing_migrations(pool: &PgPool, migrations_table: &str) -> Result<Vec<i64>> {
    let exists: bool = sqlx::query_scalar("SELECT to_regclass($1) IS NOT NULL")
        .bind(migrations_table)
        .fetch_one(pool)
        .await?;
    let applied: HashSet<i64> = if exists {
        sqlx::query_scalar(AssertSqlSafe(format!(
            "SELECT version FROM {migrations_table}"
        )))
        .fetch_all(pool)
        .await?
        .into_iter()
        .collect()
    } else {
        HashSet::new()
    };
    let known: HashSet<i64> = MIGRATIONS.iter().map(|m| m.version).collect();
    if let Some(newer) = applied.iter().find(|v| !known.contains(v)) {
        tracing::warn!(
            version = newer,
            "the event store schema has a migration this build does not know (a newer build \
             migrated it); continuing"
        );
    }
    Ok(MIGRATIONS
        .iter()
        .map(|m| m.version)
        .filter(|v| !applied.contains(v))
        .collect())
}
