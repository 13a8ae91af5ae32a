//! The user read models in Apache Cassandra (the production wiring). Same projection and
//! same queries as [`crate::read_model::SqliteUserReadModels`], same results for the same
//! events.
//!
//! Tables (`cql/001_user_read_models.cql`), one per query: `user_read_model`,
//! `user_archetype_read_model` and `user_modality_read_model` by user id, and
//! `users_by_creation` (one partition, oldest first) for listing. A page of users is a page
//! of `users_by_creation` (by offset, or by a cursor holding the driver's paging state),
//! whose users are then read by id, concurrently.
//!
//! Every statement names its tables fully qualified with the configured keyspace (the
//! session has no current keyspace; see [`metachat_cassandra::connect`]).
//!
//! Idempotency: every write carries `USING TIMESTAMP <stream version>`, so for each cell the
//! newest event of the user wins, in any order of delivery, and a redelivered event rewrites
//! identical cells. The model therefore never reads before writing.
//!
//! Read-your-writes (`cql/002_user_read_model_versions.cql`): an event is applied in several
//! writes, so no single one of them says the list is complete. `user_read_model_versions`
//! is written last for every event, at the event's version; [`UserReadModels::applied_version`]
//! answers from it. Events of one user arrive in order (one Kafka partition per user id), so
//! when it says n every event up to n has been applied.

use std::collections::BTreeMap;
use std::sync::Arc;

use async_trait::async_trait;
use chrono::NaiveDate;
use event_sourcing::{Projection, ProjectionError, RecordedEvent, decode_event};
use metachat_cassandra::{
    CassandraConfig, CassandraError, fetch_page, migrate, qualified, version_by_id,
};
use metachat_read_model::{Page, PageRequest, QueryError, time_from_micros as time};
use scylla::DeserializeRow;
use scylla::client::session::Session;
use scylla::statement::prepared::PreparedStatement;
use uuid::Uuid;

use event_sourcing::Aggregate;

use crate::domain::{
    ArchetypeSet, Confidence, Email, ModalitiesUpdated, User, UserEvent, UserState, Username,
};
use crate::read_model::UserReadModels;
use crate::read_model::stored_id;
use crate::view::UserView;

/// The migrations of the `user` domain, in order.
pub const MIGRATIONS: &[(u32, &str)] = &[
    (1, include_str!("../cql/001_user_read_models.cql")),
    (2, include_str!("../cql/002_user_read_model_versions.cql")),
];

/// The migration domain of these tables in `schema_migrations`.
pub const MIGRATION_DOMAIN: &str = "user";

/// Every table, as `reset` truncates them: the versions first, so that while a reset runs
/// no token is taken as reflected by lists that are being emptied.
const TABLES: [&str; 5] = [
    "user_read_model_versions",
    "user_read_model",
    "user_archetype_read_model",
    "user_modality_read_model",
    "users_by_creation",
];

/// The single partition of `users_by_creation` (see the CQL file).
const BUCKET: i32 = 0;

const USER_COLUMNS: &str = "user_id, username, email, first_name, last_name, date_of_birth, \
     avatar, bio, created_at_micros, updated_at_micros, version";

struct Statements {
    insert_user: PreparedStatement,
    insert_by_creation: PreparedStatement,
    update_profile: PreparedStatement,
    touch_user: PreparedStatement,
    assign_archetype: PreparedStatement,
    update_archetype: PreparedStatement,
    set_modalities: PreparedStatement,
    list_users: PreparedStatement,
    count_users: PreparedStatement,
    user_by_id: PreparedStatement,
    archetype_by_id: PreparedStatement,
    modalities_by_id: PreparedStatement,
    mark_applied: PreparedStatement,
    applied_version: PreparedStatement,
    created_at_by_id: PreparedStatement,
    erase_listing: PreparedStatement,
    erase_user: PreparedStatement,
    erase_archetype: PreparedStatement,
    erase_modalities: PreparedStatement,
}

/// The user read models in Cassandra.
#[derive(Clone)]
pub struct CassandraUserReadModels {
    session: Arc<Session>,
    /// The keyspace the tables are in, as configured.
    keyspace: Arc<str>,
    statements: Arc<Statements>,
}

impl CassandraUserReadModels {
    /// Connects (see [`metachat_cassandra::connect`]: the keyspace is created when missing),
    /// applies the migrations and prepares the statements.
    pub async fn connect(config: &CassandraConfig) -> Result<Self, CassandraError> {
        Self::new(metachat_cassandra::connect(config).await?, &config.keyspace).await
    }

    /// Applies the `user` migrations to `keyspace` (a name as in
    /// [`CassandraConfig::keyspace`], created by [`metachat_cassandra::connect`]), then
    /// prepares every statement.
    pub async fn new(session: Arc<Session>, keyspace: &str) -> Result<Self, CassandraError> {
        migrate(&session, keyspace, MIGRATION_DOMAIN, MIGRATIONS).await?;
        Self::prepare(session, keyspace).await
    }

    /// The session, for health probes.
    pub fn session(&self) -> &Arc<Session> {
        &self.session
    }

    /// Prepares every statement, on a `keyspace` that is already migrated.
    pub async fn prepare(session: Arc<Session>, keyspace: &str) -> Result<Self, CassandraError> {
        let s = &session;
        let user_read_model = qualified(keyspace, "user_read_model");
        let user_archetype_read_model = qualified(keyspace, "user_archetype_read_model");
        let user_modality_read_model = qualified(keyspace, "user_modality_read_model");
        let users_by_creation = qualified(keyspace, "users_by_creation");
        let versions = qualified(keyspace, "user_read_model_versions");
        let statements = Statements {
            insert_user: prepare(
                s,
                &format!(
                    "INSERT INTO {user_read_model} (user_id, username, email, first_name, \
                     last_name, date_of_birth, created_at_micros, updated_at_micros, version) \
                     VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) USING TIMESTAMP ?"
                ),
            )
            .await?,
            insert_by_creation: prepare(
                s,
                &format!(
                    "INSERT INTO {users_by_creation} (bucket, created_at_micros, user_id) \
                     VALUES (?, ?, ?) USING TIMESTAMP ?"
                ),
            )
            .await?,
            update_profile: prepare(
                s,
                &format!(
                    "UPDATE {user_read_model} USING TIMESTAMP ? SET first_name = ?, \
                     last_name = ?, date_of_birth = ?, avatar = ?, bio = ?, \
                     updated_at_micros = ?, version = ? WHERE user_id = ?"
                ),
            )
            .await?,
            touch_user: prepare(
                s,
                &format!(
                    "UPDATE {user_read_model} USING TIMESTAMP ? SET updated_at_micros = ?, \
                     version = ? WHERE user_id = ?"
                ),
            )
            .await?,
            assign_archetype: prepare(
                s,
                &format!(
                    "UPDATE {user_archetype_read_model} USING TIMESTAMP ? SET archetype_id = ?, \
                     archetype_name = ?, confidence = ?, description = ?, \
                     assigned_at_micros = ?, updated_at_micros = ?, version = ? \
                     WHERE user_id = ?"
                ),
            )
            .await?,
            update_archetype: prepare(
                s,
                &format!(
                    "UPDATE {user_archetype_read_model} USING TIMESTAMP ? SET archetype_id = ?, \
                     archetype_name = ?, confidence = ?, description = ?, \
                     updated_at_micros = ?, version = ? WHERE user_id = ?"
                ),
            )
            .await?,
            set_modalities: prepare(
                s,
                &format!(
                    "UPDATE {user_modality_read_model} USING TIMESTAMP ? SET modalities = ?, \
                     updated_at_micros = ?, version = ? WHERE user_id = ?"
                ),
            )
            .await?,
            list_users: prepare(
                s,
                &format!(
                    "SELECT created_at_micros, user_id FROM {users_by_creation} \
                     WHERE bucket = ?"
                ),
            )
            .await?,
            count_users: prepare(
                s,
                &format!("SELECT COUNT(*) FROM {users_by_creation} WHERE bucket = ?"),
            )
            .await?,
            user_by_id: prepare(
                s,
                &format!("SELECT {USER_COLUMNS} FROM {user_read_model} WHERE user_id = ?"),
            )
            .await?,
            archetype_by_id: prepare(
                s,
                &format!(
                    "SELECT archetype_id, archetype_name, confidence, description, \
                     assigned_at_micros, updated_at_micros FROM {user_archetype_read_model} \
                     WHERE user_id = ?"
                ),
            )
            .await?,
            modalities_by_id: prepare(
                s,
                &format!(
                    "SELECT modalities, updated_at_micros FROM {user_modality_read_model} \
                     WHERE user_id = ?"
                ),
            )
            .await?,
            mark_applied: prepare(
                s,
                &format!(
                    "INSERT INTO {versions} (user_id, version) VALUES (?, ?) USING TIMESTAMP ?"
                ),
            )
            .await?,
            created_at_by_id: prepare(
                s,
                &format!("SELECT created_at_micros FROM {user_read_model} WHERE user_id = ?"),
            )
            .await?,
            // Erasure deletes at the erasure's version: the tombstones shadow every earlier
            // write, also one an older event redelivered later would make.
            erase_listing: prepare(
                s,
                &format!(
                    "DELETE FROM {users_by_creation} USING TIMESTAMP ? \
                     WHERE bucket = ? AND created_at_micros = ? AND user_id = ?"
                ),
            )
            .await?,
            erase_user: prepare(
                s,
                &format!("DELETE FROM {user_read_model} USING TIMESTAMP ? WHERE user_id = ?"),
            )
            .await?,
            erase_archetype: prepare(
                s,
                &format!(
                    "DELETE FROM {user_archetype_read_model} USING TIMESTAMP ? WHERE user_id = ?"
                ),
            )
            .await?,
            erase_modalities: prepare(
                s,
                &format!(
                    "DELETE FROM {user_modality_read_model} USING TIMESTAMP ? WHERE user_id = ?"
                ),
            )
            .await?,
            applied_version: prepare(
                s,
                &format!("SELECT version FROM {versions} WHERE user_id = ?"),
            )
            .await?,
        };
        Ok(Self {
            session,
            keyspace: keyspace.into(),
            statements: Arc::new(statements),
        })
    }

    /// A user as listed, from the three tables; `None` when the user's creation is missing.
    async fn load(&self, user_id: &str) -> Result<Option<UserView>, ProjectionError> {
        let st = &self.statements;
        let (user, archetype, modalities) = tokio::try_join!(
            self.session.execute_unpaged(&st.user_by_id, (user_id,)),
            self.session
                .execute_unpaged(&st.archetype_by_id, (user_id,)),
            self.session
                .execute_unpaged(&st.modalities_by_id, (user_id,)),
        )?;
        let user = user.into_rows_result()?.maybe_first_row::<UserRow>()?;
        let archetype = archetype
            .into_rows_result()?
            .maybe_first_row::<ArchetypeRow>()?;
        let modalities = modalities
            .into_rows_result()?
            .maybe_first_row::<ModalitiesRow>()?;
        let Some(user) = user else {
            return Ok(None);
        };
        let (Some(username), Some(email), Some(created_at)) =
            (user.username, user.email, user.created_at_micros)
        else {
            return Ok(None);
        };
        let (archetype, archetype_assigned_at, archetype_updated_at) =
            match archetype.filter(|a| a.archetype_id.is_some()) {
                Some(a) => (
                    Some(ArchetypeSet {
                        archetype_id: a.archetype_id.unwrap_or_default(),
                        archetype_name: a.archetype_name.unwrap_or_default(),
                        confidence: Confidence::from_stored(a.confidence.unwrap_or_default()),
                        description: a.description.unwrap_or_default(),
                        inferred: None,
                    }),
                    a.assigned_at_micros.map(time).transpose()?,
                    a.updated_at_micros.map(time).transpose()?,
                ),
                None => (None, None, None),
            };
        let (modalities, modalities_updated_at) = match modalities {
            Some(m) if m.modalities.is_some() => {
                (m.modalities, m.updated_at_micros.map(time).transpose()?)
            }
            _ => (None, None),
        };
        Ok(Some(UserView {
            user: User {
                id: stored_id(&user.user_id)?,
                username: Username::from_stored(username),
                email: Email::from_stored(email),
                first_name: user.first_name.unwrap_or_default(),
                last_name: user.last_name.unwrap_or_default(),
                date_of_birth: user.date_of_birth,
                avatar: user.avatar,
                bio: user.bio,
                archetype,
                modalities,
                archetype_assigned_at,
                archetype_updated_at,
                inferred_archetype: None,
                inferred_modalities: None,
                inferred_archetype_assigned_at: None,
                inferred_archetype_updated_at: None,
                inferred_modalities_updated_at: None,
                modalities_updated_at,
            },
            created_at: time(created_at)?,
            updated_at: time(user.updated_at_micros.unwrap_or(created_at))?,
            version: user.version.unwrap_or(1).try_into()?,
        }))
    }
}

impl CassandraUserReadModels {
    /// The last write of every event: the list now reflects the user at `version`.
    async fn mark_applied(&self, id: &str, version: i64) -> Result<(), ProjectionError> {
        self.session
            .execute_unpaged(&self.statements.mark_applied, (id, version, version))
            .await?;
        Ok(())
    }
}

async fn prepare(session: &Session, cql: &str) -> Result<PreparedStatement, CassandraError> {
    let mut statement = session
        .prepare(cql)
        .await
        .map_err(CassandraError::request)?;
    // Every statement here may be retried: writes are versioned, reads have no effect.
    statement.set_is_idempotent(true);
    Ok(statement)
}

#[derive(DeserializeRow)]
struct UserRow {
    user_id: String,
    username: Option<String>,
    email: Option<String>,
    first_name: Option<String>,
    last_name: Option<String>,
    date_of_birth: Option<NaiveDate>,
    avatar: Option<String>,
    bio: Option<String>,
    created_at_micros: Option<i64>,
    updated_at_micros: Option<i64>,
    version: Option<i64>,
}

#[derive(DeserializeRow)]
struct ArchetypeRow {
    archetype_id: Option<String>,
    archetype_name: Option<String>,
    confidence: Option<f64>,
    description: Option<String>,
    assigned_at_micros: Option<i64>,
    updated_at_micros: Option<i64>,
}

#[derive(DeserializeRow)]
struct ModalitiesRow {
    modalities: Option<BTreeMap<String, f64>>,
    updated_at_micros: Option<i64>,
}

#[async_trait]
impl Projection for CassandraUserReadModels {
    fn name(&self) -> &str {
        "user-read-models-cassandra"
    }

    async fn apply(&self, recorded: &RecordedEvent) -> Result<(), ProjectionError> {
        // Claim streams (`username-…`, `email-…`) feed no read model.
        if recorded.category() != UserState::CATEGORY {
            return Ok(());
        }
        let event: UserEvent = decode_event(recorded)?;
        let id = recorded.aggregate_id();
        // The stream version is both the row's version and every cell's write timestamp.
        let version = i64::try_from(recorded.stream_version)?;
        let at = recorded.recorded_at.timestamp_micros();
        let st = &self.statements;
        let session = &self.session;
        match &event {
            UserEvent::UserCreated(e) => {
                // The row first, then the listing: a listed user always has a row.
                session
                    .execute_unpaged(
                        &st.insert_user,
                        (
                            id,
                            e.username.as_str(),
                            e.email.as_str(),
                            &e.first_name,
                            &e.last_name,
                            e.date_of_birth,
                            at,
                            at,
                            version,
                            version,
                        ),
                    )
                    .await?;
                session
                    .execute_unpaged(&st.insert_by_creation, (BUCKET, at, id, version))
                    .await?;
                return self.mark_applied(id, version).await;
            }
            UserEvent::UserProfileUpdated(e) => {
                session
                    .execute_unpaged(
                        &st.update_profile,
                        (
                            version,
                            &e.first_name,
                            &e.last_name,
                            e.date_of_birth,
                            &e.avatar,
                            &e.bio,
                            at,
                            version,
                            id,
                        ),
                    )
                    .await?;
                return self.mark_applied(id, version).await;
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
            UserEvent::ArchetypeAssigned(a) => {
                session
                    .execute_unpaged(
                        &st.assign_archetype,
                        (
                            version,
                            &a.archetype_id,
                            &a.archetype_name,
                            a.confidence.value(),
                            &a.description,
                            at,
                            at,
                            version,
                            id,
                        ),
                    )
                    .await?;
            }
            UserEvent::ArchetypeUpdated(a) => {
                session
                    .execute_unpaged(
                        &st.update_archetype,
                        (
                            version,
                            &a.archetype_id,
                            &a.archetype_name,
                            a.confidence.value(),
                            &a.description,
                            at,
                            version,
                            id,
                        ),
                    )
                    .await?;
            }
            UserEvent::ModalitiesUpdated(m) => {
                session
                    .execute_unpaged(
                        &st.set_modalities,
                        (version, &m.modalities, at, version, id),
                    )
                    .await?;
            }
            UserEvent::UserErased(_) => {
                let created: Option<(Option<i64>,)> = session
                    .execute_unpaged(&st.created_at_by_id, (id,))
                    .await?
                    .into_rows_result()?
                    .maybe_first_row()?;
                // The listing first: it is found through the row.
                if let Some((Some(created_at),)) = created {
                    session
                        .execute_unpaged(&st.erase_listing, (version, BUCKET, created_at, id))
                        .await?;
                }
                for statement in [&st.erase_user, &st.erase_archetype, &st.erase_modalities] {
                    session.execute_unpaged(statement, (version, id)).await?;
                }
                return self.mark_applied(id, version).await;
            }
        }
        // Every event moves the user's version and last change.
        session
            .execute_unpaged(&st.touch_user, (version, at, version, id))
            .await?;
        self.mark_applied(id, version).await
    }

    async fn reset(&self) -> Result<(), ProjectionError> {
        for table in TABLES {
            let table = qualified(&self.keyspace, table);
            self.session
                .query_unpaged(format!("TRUNCATE TABLE {table}"), &[])
                .await?;
        }
        Ok(())
    }
}

#[async_trait]
impl UserReadModels for CassandraUserReadModels {
    async fn list_users(&self, page: &PageRequest) -> Result<Page<UserView>, QueryError> {
        let ids: Page<(i64, String)> = fetch_page(
            &self.session,
            &self.statements.list_users,
            &(BUCKET,),
            "users|0",
            page,
        )
        .await?;
        let loaded =
            futures::future::try_join_all(ids.items.iter().map(|(_, id)| self.load(id))).await?;
        let mut users = Vec::with_capacity(loaded.len());
        for (view, (_, id)) in loaded.into_iter().zip(&ids.items) {
            match view {
                Some(view) => users.push(view),
                // Only while a reset races the listing: the listing row outlived the user row.
                None => tracing::warn!(user_id = %id, "listed user has no profile row; skipped"),
            }
        }
        Ok(Page {
            items: users,
            next_cursor: ids.next_cursor,
        })
    }

    async fn applied_version(&self, id: Uuid) -> Result<Option<u64>, QueryError> {
        version_by_id(&self.session, &self.statements.applied_version, id).await
    }

    async fn count_users(&self) -> Result<u64, QueryError> {
        let count = self
            .session
            .execute_unpaged(&self.statements.count_users, (BUCKET,))
            .await
            .map_err(backend)?
            .into_rows_result()
            .map_err(backend)?
            .single_row::<(i64,)>()
            .map_err(backend)?
            .0;
        Ok(u64::try_from(count).unwrap_or_default())
    }
}

fn backend(error: impl std::error::Error + Send + Sync + 'static) -> QueryError {
    QueryError::Backend(Box::new(error))
}
