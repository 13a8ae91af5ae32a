//! The user service's use cases, one function each: load what the rule needs, decide with the
//! aggregate, append, and answer from what was stored. Transports (gRPC here) only translate
//! messages and errors; every rule reachable through them lives here or in the domain, and is
//! tested in-process against the SQLite store.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use event_sourcing::{
    Aggregate, AppendError, EventMetadata, EventStore, EventStoreError, ExpectedVersion, Loaded,
    RecordedEvent, Repository, StreamName, StreamWrite, append_settled, decode_event,
    new_event_with_id, new_events, read_full_stream,
};
use metachat_grpc::{
    DEFAULT_READ_YOUR_WRITES_TIMEOUT, append_error, await_applied, consistency_token,
    execute_error, query_error, store_error, unknown_write,
};
use metachat_proto::error::{ApiError, ErrorCode, FieldViolation};
use metachat_read_model::{Page, PageRequest};
use metachat_validation::UserId;

use crate::domain::{
    ArchetypeInput, ClaimEvent, NewUser, ProfileChanges, UserCommand, UserErased, UserEvent,
    UserState,
};
use crate::read_model::UserReadModels;
use crate::view::UserView;

/// What a client sends to register.
#[derive(Debug, Clone, Default)]
pub struct Registration {
    pub username: String,
    pub email: String,
    pub first_name: String,
    pub last_name: String,
    pub date_of_birth: Option<String>,
    /// To sign in with (`POST /auth/token`); kept only as an argon2id hash.
    pub password: Option<String>,
    /// The client's `Idempotency-Key`: a retry of the same registration under it answers the
    /// user its first attempt registered instead of "already taken".
    pub idempotency_key: Option<String>,
}

mod auth;

pub use auth::{PASSWORD_MAX_CHARS, PASSWORD_MIN_CHARS, REFRESH_DAYS, SignedIn, check_password};

/// A change to one user, applied only at `expected_version` when one is given (`If-Match`).
#[derive(Debug, Clone)]
pub enum UserChange {
    Profile(ProfileChanges),
    AssignArchetype(ArchetypeInput),
    UpdateArchetype(ArchetypeInput),
    Modalities(std::collections::BTreeMap<String, f64>),
}

/// The unique values a user claims, each in a stream of its own (`username-<key>`,
/// `email-<key>`): the first claim of a key wins because it is appended as a new stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Claim {
    Username,
    Email,
}

impl Claim {
    /// The stream category, which is also the field the client sent.
    pub const fn field(self) -> &'static str {
        match self {
            Self::Username => "username",
            Self::Email => "email",
        }
    }

    pub(crate) fn stream(self, key: &str) -> StreamName {
        StreamName::new(self.field(), key)
    }
}

/// The users use cases over an event store and the users read models.
pub struct Users {
    store: Arc<dyn EventStore>,
    users: Repository<UserState>,
    read_models: Arc<dyn UserReadModels>,
    /// How long a list waits for the write its consistency token names.
    read_your_writes: Duration,
}

impl Users {
    pub fn new(store: Arc<dyn EventStore>, read_models: Arc<dyn UserReadModels>) -> Self {
        Self {
            users: Repository::new(Arc::clone(&store)),
            store,
            read_models,
            read_your_writes: DEFAULT_READ_YOUR_WRITES_TIMEOUT,
        }
    }

    /// Bounds the wait of a list for its consistency token (`READ_YOUR_WRITES_TIMEOUT_MS`).
    pub fn with_read_your_writes_timeout(self, timeout: Duration) -> Self {
        Self {
            read_your_writes: timeout,
            ..self
        }
    }

    /// Registers a user with their username and e-mail claims, in one atomic append: a taken
    /// value stores nothing and names the field.
    pub async fn register(
        &self,
        input: Registration,
        metadata: &EventMetadata,
    ) -> Result<UserView, ApiError> {
        let id = match &input.idempotency_key {
            Some(key) => {
                // The password is part of the request: a replay without it is another
                // registration (refused as taken), not a way in.
                let request = format!(
                    "{:?}\n{:?}\n{:?}\n{:?}\n{:?}\n{:?}",
                    input.username.trim().to_lowercase(),
                    input.email.trim().to_lowercase(),
                    input.first_name,
                    input.last_name,
                    input.date_of_birth,
                    input.password,
                );
                let id = UserId::from(metachat_grpc::idempotent_id("user", key, &request));
                if let Some(first) = self.registered_before(&id).await? {
                    return Ok(first);
                }
                id
            }
            None => UserId::new(),
        };
        let idempotent = input.idempotency_key.is_some();
        let password_hash = match input.password {
            Some(password) => {
                check_password(&password)?;
                Some(auth::hash_password(password).await?)
            }
            None => None,
        };
        let command = UserCommand::Create(NewUser {
            user_id: id,
            username: input.username,
            email: input.email,
            first_name: input.first_name,
            last_name: input.last_name,
            date_of_birth: input.date_of_birth,
            today: Utc::now().date_naive(),
        });
        let mut loaded = Loaded::<UserState>::default();
        let events = loaded.state.decide(&command)?;
        let Some(UserEvent::UserCreated(created)) = events.first() else {
            return Err(ApiError::internal("user creation decided no event"));
        };
        let claims = [
            (
                Claim::Username,
                created.username.claim_key(),
                ClaimEvent::UsernameClaimed { user_id: id },
            ),
            (
                Claim::Email,
                created.email.claim_key(),
                ClaimEvent::EmailClaimed { user_id: id },
            ),
        ];
        let mut writes = vec![StreamWrite::new(
            UserState::stream_name(&id),
            ExpectedVersion::NoStream,
            new_events(&events, metadata).map_err(store_error)?,
        )];
        for (claim, key, event) in &claims {
            writes.push(StreamWrite::new(
                claim.stream(key),
                ExpectedVersion::NoStream,
                new_events(std::slice::from_ref(event), metadata).map_err(store_error)?,
            ));
        }
        // After the claims: a refused write names its claim by index.
        if let Some(hash) = password_hash {
            writes.push(auth::password_write(&id, hash, metadata)?);
        }
        // A claim's stream exists once its value was claimed. When that claimant was erased
        // since (the claim released), the append is made again at the release's version.
        let mut attempt = 0;
        let appended = loop {
            let refused = match append_settled(self.store.as_ref(), writes.clone()).await {
                Err(AppendError::Refused(EventStoreError::WrongExpectedVersion {
                    write, ..
                })) if (1..=claims.len()).contains(&write) && attempt < 2 => write,
                other => break other,
            };
            match self
                .released_claim(writes[refused].stream_id.as_str())
                .await?
            {
                Some(version) => writes[refused].expected = ExpectedVersion::Exact(version),
                None => {
                    break Err(AppendError::Refused(
                        EventStoreError::WrongExpectedVersion {
                            write: refused,
                            stream_id: writes[refused].stream_id.clone(),
                            expected: writes[refused].expected,
                            actual: None,
                        },
                    ));
                }
            }
            attempt += 1;
        };
        let mut results = match appended {
            Ok(results) => results,
            // The same retry, at the same time: the first one registered the user.
            Err(AppendError::Refused(EventStoreError::WrongExpectedVersion {
                write: 0, ..
            })) if idempotent => {
                return self
                    .registered_before(&id)
                    .await?
                    .ok_or_else(|| not_found(&id));
            }
            Err(AppendError::Refused(EventStoreError::WrongExpectedVersion { write, .. })) => {
                // Write 0 is the new user's own stream (a fresh id); 1 and 2 are the claims.
                let field = claims
                    .get(write.wrapping_sub(1))
                    .map_or("username", |(claim, ..)| claim.field());
                return Err(ApiError {
                    details: vec![FieldViolation {
                        field: field.into(),
                        message: "is already taken".into(),
                    }],
                    ..ApiError::new(
                        ErrorCode::AlreadyExists,
                        format!("{field} is already taken"),
                    )
                });
            }
            Err(e) => return Err(append_error(e)),
        };
        loaded.stored(&events, &results.remove(0));
        tracing::info!(user_id = %id, "user created");
        crate::metrics::USERS_CREATED.inc(&[]);
        answer(loaded)
    }

    /// The version of a claim stream whose value is free again (its claimant was erased),
    /// `None` when the value is held.
    async fn released_claim(&self, stream: &str) -> Result<Option<u64>, ApiError> {
        let Some(version) = self
            .store
            .stream_version(stream)
            .await
            .map_err(store_error)?
        else {
            return Ok(None);
        };
        let last = self
            .store
            .read_stream(stream, version, 1)
            .await
            .map_err(store_error)?;
        let released = last.first().is_some_and(|e| {
            !e.erased && decode_event::<ClaimEvent>(e).is_ok_and(|c| c.holder().is_none())
        });
        Ok(released.then_some(version))
    }

    /// Erases a user: records `UserErased` (the read models drop the user, the diary service
    /// erases their diary) and releases their username and e-mail claims, in one append; then
    /// deletes their key, so their personal data (profile, password hash, and everything they
    /// wrote in the diary) can no longer be read from the event store, from Kafka, or from
    /// any backup. Erasing an erased user again deletes the key again (a first attempt may
    /// have stopped in between; the diary eraser deletes it too) and succeeds; an unknown user
    /// is 404. The stream is read event by event, so an event this build cannot read (a newer
    /// version's) does not keep a user from being erased.
    pub async fn erase(&self, id: &UserId, metadata: &EventMetadata) -> Result<(), ApiError> {
        let stream = UserState::stream_name(id);
        let events = read_full_stream(self.store.as_ref(), stream.as_str())
            .await
            .map_err(store_error)?;
        let decoded: Vec<UserEvent> = events
            .iter()
            .filter(|e| !e.erased)
            .filter_map(|e| decode_event(e).ok())
            .collect();
        let recorded = decoded
            .iter()
            .any(|e| matches!(e, UserEvent::UserErased(_)));
        if events.is_empty() {
            return Err(not_found(id));
        }
        if !recorded {
            // The claims are found through the user's own data: read while the key is there.
            let created = decoded.iter().find_map(|e| match e {
                UserEvent::UserCreated(created) => Some(created),
                _ => None,
            });
            let releases = created.map(|created| {
                [
                    (
                        Claim::Username,
                        created.username.claim_key(),
                        ClaimEvent::UsernameReleased { user_id: *id },
                    ),
                    (
                        Claim::Email,
                        created.email.claim_key(),
                        ClaimEvent::EmailReleased { user_id: *id },
                    ),
                ]
            });
            // Ids derived from the user, so a retried erasure stores nothing twice.
            let derived = |what: &str| metachat_grpc::idempotent_id("erase", &id.to_string(), what);
            let erased = UserEvent::UserErased(UserErased { user_id: *id });
            let mut writes = vec![StreamWrite::new(
                stream.clone(),
                ExpectedVersion::Any,
                vec![new_event_with_id(&erased, derived("user"), metadata).map_err(store_error)?],
            )];
            for (claim, key, release) in releases.into_iter().flatten() {
                writes.push(StreamWrite::new(
                    claim.stream(&key),
                    ExpectedVersion::Any,
                    vec![
                        new_event_with_id(&release, derived(claim.field()), metadata)
                            .map_err(store_error)?,
                    ],
                ));
            }
            append_settled(self.store.as_ref(), writes)
                .await
                .map_err(append_error)?;
        }
        self.store
            .erase_subject(&id.to_string())
            .await
            .map_err(store_error)?;
        tracing::info!(user_id = %id, "user erased");
        crate::metrics::USERS_ERASED.inc(&[]);
        Ok(())
    }

    /// The user an earlier attempt of an idempotent registration registered, as that attempt
    /// answered (nothing changed since is told); `None` when there was none.
    async fn registered_before(&self, id: &UserId) -> Result<Option<UserView>, ApiError> {
        let loaded = self.users.load_created(id).await.map_err(store_error)?;
        Ok(UserView::from_loaded(loaded))
    }

    /// The user as they are now, replayed from the event store (so a write is visible at once).
    pub async fn user(&self, id: &UserId) -> Result<UserView, ApiError> {
        let loaded = self.users.load(id).await.map_err(store_error)?;
        UserView::from_loaded(loaded).ok_or_else(|| not_found(id))
    }

    /// The user as they were at `as_of`, without inferred values the user erased since (by
    /// switching analysis off).
    pub async fn user_as_of(
        &self,
        id: &UserId,
        as_of: DateTime<Utc>,
    ) -> Result<UserView, ApiError> {
        let loaded = self
            .users
            .load_as_of(id, as_of)
            .await
            .map_err(store_error)?;
        let mut view = UserView::from_loaded(loaded)
            .ok_or_else(|| ApiError::not_found(format!("user {id} did not exist at {as_of}")))?;
        let erased_until = erased_until(&self.full_history(id).await?);
        if view.version < erased_until {
            view.user.clear_inferred();
        }
        Ok(view)
    }

    /// Changes a user: one stream read and one append, decided again on the newer state when
    /// a concurrent writer got there first (unless `expected_version` pins the version).
    pub async fn change(
        &self,
        id: &UserId,
        change: UserChange,
        expected_version: Option<u64>,
        metadata: &EventMetadata,
    ) -> Result<UserView, ApiError> {
        let today = Utc::now().date_naive();
        let command = match change {
            UserChange::Profile(changes) => {
                UserCommand::UpdateProfile(ProfileChanges { today, ..changes })
            }
            UserChange::AssignArchetype(input) => UserCommand::AssignArchetype(input),
            UserChange::UpdateArchetype(input) => UserCommand::UpdateArchetype(input),
            UserChange::Modalities(weights) => UserCommand::UpdateModalities(weights),
        };
        let executed = self
            .users
            .execute(id, &command, metadata, expected_version)
            .await
            .map_err(execute_error)?;
        crate::metrics::changed(&executed.events);
        answer(executed.loaded)
    }

    /// A page of users, oldest first, and how many there are. With a consistency token
    /// (`<user id>:<version>` of a user write; empty for none) the list first waits until it
    /// reflects that user at that version, within the read-your-writes bound (503 after it).
    pub async fn list(
        &self,
        page: &PageRequest,
        token: &str,
    ) -> Result<(Page<UserView>, u64), ApiError> {
        let token = consistency_token("consistencyToken", token)?;
        let waited = await_applied(token, self.read_your_writes, |id| {
            self.read_models.applied_version(id)
        })
        .await;
        match (waited, token) {
            (Err(error), Some(token)) if error.code == ErrorCode::Unavailable => {
                let streams = [StreamName::new(UserState::CATEGORY, token.id).to_string()];
                return Err(unknown_write(
                    self.store.as_ref(),
                    &token,
                    &streams,
                    "consistencyToken",
                    error,
                )
                .await);
            }
            (waited, _) => waited?,
        }
        let found = self
            .read_models
            .list_users(page)
            .await
            .map_err(query_error)?;
        let total = self.read_models.count_users().await.map_err(query_error)?;
        Ok((found, total))
    }

    /// Every event of a user, oldest first. An inference the user erased since (by switching
    /// analysis off) keeps its place and type, its payload replaced by a note saying so.
    pub async fn history(&self, id: &UserId) -> Result<Vec<RecordedEvent>, ApiError> {
        let mut events = self.full_history(id).await?;
        let erased_until = erased_until(&events);
        for event in &mut events {
            if event.stream_version < erased_until && event.payload.get("inferred").is_some() {
                event.payload = serde_json::json!({
                    "erased": "the user switched analysis off",
                });
            }
        }
        Ok(events)
    }

    /// Every event of the user; 404 for an unknown or erased user.
    async fn full_history(&self, id: &UserId) -> Result<Vec<RecordedEvent>, ApiError> {
        let events = read_full_stream(self.store.as_ref(), UserState::stream_name(id).as_str())
            .await
            .map_err(store_error)?;
        if events.is_empty() || events.iter().any(|e| e.erased) {
            return Err(not_found(id));
        }
        Ok(events)
    }
}

/// The stream version of the user's last `InferredProfileCleared` for switching analysis off
/// (0 if none): every inference recorded before it is erased from reads.
fn erased_until(events: &[RecordedEvent]) -> u64 {
    events
        .iter()
        .rev()
        .find(|e| {
            e.event_type == "InferredProfileCleared"
                && e.payload.get("reason").and_then(|r| r.as_str()) == Some(SWITCHED_OFF)
        })
        .map_or(0, |e| e.stream_version)
}

/// Why inferred values are cleared when the user switches analysis off.
pub const SWITCHED_OFF: &str = "analysisSwitchedOff";

fn not_found(id: &UserId) -> ApiError {
    ApiError::not_found(format!("user {id} not found"))
}

fn answer(loaded: Loaded<UserState>) -> Result<UserView, ApiError> {
    UserView::from_loaded(loaded).ok_or_else(|| ApiError::internal("a stored user has no state"))
}

#[cfg(test)]
mod tests;
