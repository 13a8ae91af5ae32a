//! The user read models (`UserReadModel`, `UserArchetypeReadModel`, `UserModalityReadModel`),
//! kept by a projection of the user events. This is the embedded (SQLite) implementation;
//! every write is guarded by the stream version, so replaying an event changes nothing.

use std::collections::BTreeMap;

use async_trait::async_trait;
use chrono::{DateTime, NaiveDate, Utc};
use event_sourcing::{Projection, ProjectionError, RecordedEvent, decode_event};
use metachat_read_model::keyset_cursor::{self, SortKey};
use metachat_read_model::{Page, PageRequest, QueryError, time_from_micros as time};
use sqlx::sqlite::{SqlitePool, SqliteRow};
use sqlx::{Row, Sqlite, Transaction};
use uuid::Uuid;

use event_sourcing::Aggregate;
use metachat_validation::UserId;

use crate::domain::{
    ArchetypeSet, Confidence, Email, ModalitiesUpdated, User, UserEvent, UserState, Username,
};
use crate::view::UserView;

/// Queries the read models answer.
#[async_trait]
pub trait UserReadModels: Send + Sync + 'static {
    /// Users, oldest first.
    async fn list_users(&self, page: &PageRequest) -> Result<Page<UserView>, QueryError>;

    async fn count_users(&self) -> Result<u64, QueryError>;

    /// The version of user `id` that the list reflects (every event of the user up to it is
    /// in the list), `None` when the list has never seen the user. Read-your-writes waits on it.
    async fn applied_version(&self, id: Uuid) -> Result<Option<u64>, QueryError>;
}

const SCHEMA: &[&str] = &[
    "CREATE TABLE IF NOT EXISTS user_read_model (
        user_id       TEXT PRIMARY KEY,
        username      TEXT NOT NULL,
        email         TEXT NOT NULL,
        first_name    TEXT NOT NULL,
        last_name     TEXT NOT NULL,
        date_of_birth TEXT,
        avatar        TEXT,
        bio           TEXT,
        created_at    INTEGER NOT NULL,
        updated_at    INTEGER NOT NULL,
        version       INTEGER NOT NULL
    )",
    "CREATE INDEX IF NOT EXISTS user_read_model_by_creation ON user_read_model (created_at, user_id)",
    "CREATE TABLE IF NOT EXISTS user_archetype_read_model (
        user_id        TEXT PRIMARY KEY,
        archetype_id   TEXT NOT NULL,
        archetype_name TEXT NOT NULL,
        confidence     REAL NOT NULL,
        description    TEXT NOT NULL,
        assigned_at    INTEGER NOT NULL,
        updated_at     INTEGER NOT NULL,
        version        INTEGER NOT NULL
    )",
    "CREATE TABLE IF NOT EXISTS user_modality_read_model (
        user_id    TEXT PRIMARY KEY,
        modalities TEXT NOT NULL,
        updated_at INTEGER NOT NULL,
        version    INTEGER NOT NULL
    )",
];

/// The user read models in the embedded database.
#[derive(Clone)]
pub struct SqliteUserReadModels {
    pool: SqlitePool,
}

impl SqliteUserReadModels {
    pub async fn new(pool: SqlitePool) -> Result<Self, sqlx::Error> {
        for statement in SCHEMA {
            sqlx::query(*statement).execute(&pool).await?;
        }
        Ok(Self { pool })
    }
}

#[async_trait]
impl Projection for SqliteUserReadModels {
    fn name(&self) -> &str {
        "user-read-models"
    }

    async fn apply(&self, recorded: &RecordedEvent) -> Result<(), ProjectionError> {
        if recorded.category() != UserState::CATEGORY {
            return Ok(());
        }
        let event: UserEvent = decode_event(recorded)?;
        let user_id = recorded.aggregate_id().to_owned();
        let version = recorded.stream_version as i64;
        let at = recorded.recorded_at.timestamp_micros();
        let mut tx = self.pool.begin().await?;
        match &event {
            UserEvent::UserCreated(e) => {
                sqlx::query(
                    "INSERT INTO user_read_model (user_id, username, email, first_name, last_name, \
                     date_of_birth, created_at, updated_at, version) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) \
                     ON CONFLICT (user_id) DO NOTHING",
                )
                .bind(user_id.clone())
                .bind(e.username.as_str().to_owned())
                .bind(e.email.as_str().to_owned())
                .bind(e.first_name.clone())
                .bind(e.last_name.clone())
                .bind(e.date_of_birth.map(|d| d.to_string()))
                .bind(at)
                .bind(at)
                .bind(version)
                .execute(&mut *tx)
                .await?;
            }
            UserEvent::UserProfileUpdated(e) => {
                sqlx::query(
                    "UPDATE user_read_model SET first_name = ?, last_name = ?, date_of_birth = ?, \
                     avatar = ?, bio = ? WHERE user_id = ? AND version < ?",
                )
                .bind(e.first_name.clone())
                .bind(e.last_name.clone())
                .bind(e.date_of_birth.map(|d| d.to_string()))
                .bind(e.avatar.clone())
                .bind(e.bio.clone())
                .bind(user_id.clone())
                .bind(version)
                .execute(&mut *tx)
                .await?;
            }
            // The platform's inferences are shown on the user (replayed), not in the lists,
            // which keep the explicit values; they still move the user's version.
            UserEvent::ArchetypeAssigned(ArchetypeSet {
                inferred: Some(_), ..
            })
            | UserEvent::ArchetypeUpdated(ArchetypeSet {
                inferred: Some(_), ..
            })
            | UserEvent::ModalitiesUpdated(ModalitiesUpdated {
                inferred: Some(_), ..
            })
            | UserEvent::InferredProfileCleared(_) => {}
            UserEvent::ArchetypeAssigned(a) | UserEvent::ArchetypeUpdated(a) => {
                upsert_archetype(&mut tx, &user_id, a, at, version).await?;
            }
            UserEvent::UserErased(_) => {
                for table in [
                    "user_read_model",
                    "user_archetype_read_model",
                    "user_modality_read_model",
                ] {
                    sqlx::query(sqlx::AssertSqlSafe(format!(
                        "DELETE FROM {table} WHERE user_id = ?"
                    )))
                    .bind(user_id.clone())
                    .execute(&mut *tx)
                    .await?;
                }
            }
            UserEvent::ModalitiesUpdated(m) => {
                sqlx::query(
                    "INSERT INTO user_modality_read_model (user_id, modalities, updated_at, version) \
                     VALUES (?, ?, ?, ?) ON CONFLICT (user_id) DO UPDATE SET \
                     modalities = excluded.modalities, updated_at = excluded.updated_at, \
                     version = excluded.version WHERE user_modality_read_model.version < excluded.version",
                )
                .bind(user_id.clone())
                .bind(serde_json::to_string(&m.modalities)?)
                .bind(at)
                .bind(version)
                .execute(&mut *tx)
                .await?;
            }
        }
        // Every event moves the user's version and last change, once.
        sqlx::query(
            "UPDATE user_read_model SET updated_at = ?, version = ? WHERE user_id = ? AND version < ?",
        )
        .bind(at)
        .bind(version)
        .bind(user_id)
        .bind(version)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        if let UserEvent::UserErased(_) = event {
            event_sourcing::sqlite::checkpoint_soon(&self.pool);
        }
        Ok(())
    }

    async fn reset(&self) -> Result<(), ProjectionError> {
        let mut tx = self.pool.begin().await?;
        for table in [
            "user_read_model",
            "user_archetype_read_model",
            "user_modality_read_model",
        ] {
            sqlx::query(sqlx::AssertSqlSafe(format!("DELETE FROM {table}")))
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(())
    }
}

async fn upsert_archetype(
    tx: &mut Transaction<'_, Sqlite>,
    user_id: &str,
    a: &ArchetypeSet,
    at: i64,
    version: i64,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO user_archetype_read_model (user_id, archetype_id, archetype_name, confidence, \
         description, assigned_at, updated_at, version) VALUES (?, ?, ?, ?, ?, ?, ?, ?) \
         ON CONFLICT (user_id) DO UPDATE SET archetype_id = excluded.archetype_id, \
         archetype_name = excluded.archetype_name, confidence = excluded.confidence, \
         description = excluded.description, updated_at = excluded.updated_at, \
         version = excluded.version WHERE user_archetype_read_model.version < excluded.version",
    )
    .bind(user_id.to_owned())
    .bind(a.archetype_id.clone())
    .bind(a.archetype_name.clone())
    .bind(a.confidence.value())
    .bind(a.description.clone())
    .bind(at)
    .bind(at)
    .bind(version)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

#[async_trait]
impl UserReadModels for SqliteUserReadModels {
    async fn count_users(&self) -> Result<u64, QueryError> {
        let total: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM user_read_model")
            .fetch_one(&self.pool)
            .await?;
        Ok(total as u64)
    }

    /// `user_read_model.version`: bumped by every event of the user, in the transaction that
    /// writes the event's changes to every table the list joins.
    async fn applied_version(&self, id: Uuid) -> Result<Option<u64>, QueryError> {
        let version: Option<i64> =
            sqlx::query_scalar("SELECT version FROM user_read_model WHERE user_id = ?")
                .bind(id.hyphenated().to_string())
                .fetch_optional(&self.pool)
                .await?;
        Ok(version.and_then(|v| u64::try_from(v).ok()))
    }

    async fn list_users(&self, page: &PageRequest) -> Result<Page<UserView>, QueryError> {
        // Oldest first; a cursor resumes right after the user it names, so users registered
        // during a walk neither repeat nor hide anyone.
        let (after, offset) = match &page.cursor {
            Some(cursor) => (keyset_cursor::decode(USERS_SCOPE, cursor)?, 0),
            None => (
                SortKey {
                    micros: i64::MIN,
                    id: String::new(),
                },
                i64::try_from(page.offset).unwrap_or(i64::MAX),
            ),
        };
        let rows = sqlx::query(
            "SELECT u.user_id, u.username, u.email, u.first_name, u.last_name, u.date_of_birth, \
             u.avatar, u.bio, u.created_at, u.updated_at, u.version, \
             a.archetype_id, a.archetype_name, a.confidence, a.description, \
             a.assigned_at AS archetype_assigned_at, a.updated_at AS archetype_updated_at, \
             m.modalities, m.updated_at AS modalities_updated_at \
             FROM user_read_model u \
             LEFT JOIN user_archetype_read_model a ON a.user_id = u.user_id \
             LEFT JOIN user_modality_read_model m ON m.user_id = u.user_id \
             WHERE u.created_at > ? OR (u.created_at = ? AND u.user_id > ?) \
             ORDER BY u.created_at, u.user_id LIMIT ? OFFSET ?",
        )
        .bind(after.micros)
        .bind(after.micros)
        .bind(after.id)
        .bind(i64::from(page.limit) + 1)
        .bind(offset)
        .fetch_all(&self.pool)
        .await?;
        let mut users = rows
            .iter()
            .map(row_to_view)
            .collect::<Result<Vec<_>, _>>()
            .map_err(QueryError::Backend)?;
        let more = users.len() > page.limit as usize;
        users.truncate(page.limit as usize);
        let next_cursor = match users.last() {
            Some(last) if more => Some(keyset_cursor::encode(
                USERS_SCOPE,
                &SortKey {
                    micros: last.created_at.timestamp_micros(),
                    id: last.user.id.to_string(),
                },
            )),
            _ => None,
        };
        Ok(Page {
            items: users,
            next_cursor,
        })
    }
}

/// The scope of the users list's cursors.
const USERS_SCOPE: &str = "users";

/// The id of a stored row (written from an event, so always canonical).
pub(crate) fn stored_id(text: &str) -> Result<UserId, ProjectionError> {
    text.parse()
        .map_err(|_| format!("stored user id {text:?} is not a UUID").into())
}

fn row_to_view(row: &SqliteRow) -> Result<UserView, ProjectionError> {
    let date_of_birth: Option<String> = row.try_get("date_of_birth")?;
    let archetype_id: Option<String> = row.try_get("archetype_id")?;
    let archetype = match archetype_id {
        Some(archetype_id) => Some(ArchetypeSet {
            archetype_id,
            archetype_name: row.try_get("archetype_name")?,
            confidence: Confidence::from_stored(row.try_get("confidence")?),
            description: row.try_get("description")?,
            inferred: None,
        }),
        None => None,
    };
    let modalities: Option<String> = row.try_get("modalities")?;
    let modalities: Option<BTreeMap<String, f64>> = match modalities {
        Some(json) => Some(serde_json::from_str(&json)?),
        None => None,
    };
    let optional_time = |column: &str| -> Result<Option<DateTime<Utc>>, ProjectionError> {
        row.try_get::<Option<i64>, _>(column)?.map(time).transpose()
    };
    Ok(UserView {
        user: User {
            id: stored_id(row.try_get::<&str, _>("user_id")?)?,
            username: Username::from_stored(row.try_get("username")?),
            email: Email::from_stored(row.try_get("email")?),
            first_name: row.try_get("first_name")?,
            last_name: row.try_get("last_name")?,
            date_of_birth: date_of_birth
                .map(|d| NaiveDate::parse_from_str(&d, "%Y-%m-%d"))
                .transpose()?,
            avatar: row.try_get("avatar")?,
            bio: row.try_get("bio")?,
            archetype,
            modalities,
            archetype_assigned_at: optional_time("archetype_assigned_at")?,
            archetype_updated_at: optional_time("archetype_updated_at")?,
            modalities_updated_at: optional_time("modalities_updated_at")?,
            inferred_archetype: None,
            inferred_modalities: None,
            inferred_archetype_assigned_at: None,
            inferred_archetype_updated_at: None,
            inferred_modalities_updated_at: None,
        },
        created_at: time(row.try_get("created_at")?)?,
        updated_at: time(row.try_get("updated_at")?)?,
        version: row.try_get::<i64, _>("version")? as u64,
    })
}
