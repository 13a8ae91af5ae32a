//! The gRPC adapter: requests become commands, results become messages.

use std::sync::Arc;

use chrono::Utc;
use event_sourcing::{
    Aggregate, EventMetadata, EventStore, EventStoreError, ExecuteError, ExpectedVersion,
    Repository, StreamWrite, new_events, read_full_stream,
};
use metachat_grpc::{event_metadata, from_timestamp, history, invalid, store_error, timestamp};
use metachat_proto::common::{EventHistory, HistoryRequest};
use metachat_proto::error::{ApiError, ErrorCode};
use metachat_proto::user::user_service_server::UserService;
use metachat_proto::user::{
    self as pb, ArchetypeRequest, CreateUserRequest, GetUserRequest, ListUsersRequest,
    ListUsersResponse, UpdateModalitiesRequest, UpdateProfileRequest,
};
use metachat_validation::parse_id;
use tonic::{Request, Response, Status};
use uuid::Uuid;

use crate::domain::{
    ArchetypeInput, ClaimEvent, NewUser, ProfileChanges, User, UserCommand, UserError, claim_key,
};
use crate::read_model::UserReadModels;
use crate::view::UserView;

/// The user service over an event store and read models.
pub struct UserGrpc {
    store: Arc<dyn EventStore>,
    users: Repository<User>,
    read_models: Arc<dyn UserReadModels>,
}

impl UserGrpc {
    pub fn new(store: Arc<dyn EventStore>, read_models: Arc<dyn UserReadModels>) -> Self {
        Self {
            users: Repository::new(Arc::clone(&store)),
            store,
            read_models,
        }
    }

    /// The current user, replayed from the event store (so a write is visible at once).
    async fn current(&self, id: &Uuid) -> Result<UserView, ApiError> {
        let events = read_full_stream(self.store.as_ref(), &User::stream_id(&id.to_string()))
            .await
            .map_err(store_error)?;
        UserView::replay(&events)
            .map_err(store_error)?
            .ok_or_else(|| ApiError::not_found(format!("user {id} not found")))
    }

    async fn execute(
        &self,
        id: &str,
        command: UserCommand,
        metadata: EventMetadata,
    ) -> Result<Response<pb::User>, Status> {
        let id = parse_id("id", id).map_err(invalid)?;
        match self
            .users
            .execute(&id.to_string(), &command, &metadata)
            .await
        {
            Ok(_) => {}
            Err(ExecuteError::Rejected(e)) => return Err(user_error(e).into()),
            Err(ExecuteError::Store(e)) => return Err(store_error(e).into()),
        }
        Ok(Response::new(to_proto(self.current(&id).await?)))
    }
}

fn user_error(error: UserError) -> ApiError {
    match error {
        UserError::Invalid(v) => invalid(v),
        UserError::NotFound => ApiError::not_found("user not found"),
        UserError::AlreadyExists => ApiError::new(ErrorCode::AlreadyExists, error.to_string()),
        UserError::ArchetypeAlreadyAssigned | UserError::NoArchetype => {
            ApiError::new(ErrorCode::FailedPrecondition, error.to_string())
        }
    }
}

fn archetype_input(request: ArchetypeRequest) -> ArchetypeInput {
    ArchetypeInput {
        archetype_id: request.archetype_id,
        archetype_name: request.archetype_name,
        confidence: request.confidence,
        description: request.description,
    }
}

#[tonic::async_trait]
impl UserService for UserGrpc {
    async fn create_user(
        &self,
        request: Request<CreateUserRequest>,
    ) -> Result<Response<pb::User>, Status> {
        let metadata = event_metadata(&request);
        let r = request.into_inner();
        let id = Uuid::new_v4();
        let command = UserCommand::Create(NewUser {
            user_id: id,
            username: r.username,
            email: r.email,
            first_name: r.first_name,
            last_name: r.last_name,
            date_of_birth: r.date_of_birth,
            today: Utc::now().date_naive(),
        });
        let events = User::default().decide(&command).map_err(user_error)?;
        let Some(crate::domain::UserEvent::UserCreated(created)) = events.first() else {
            return Err(ApiError::internal("user creation decided no event").into());
        };
        // The user and the claims of their username and e-mail are one atomic write: a claim
        // stream that already exists means the value is taken, and nothing is stored.
        let user_id = id.to_string();
        let claims = [
            (
                "username",
                &created.username,
                ClaimEvent::UsernameClaimed {
                    user_id: user_id.clone(),
                },
            ),
            (
                "email",
                &created.email,
                ClaimEvent::EmailClaimed {
                    user_id: user_id.clone(),
                },
            ),
        ];
        let mut writes = vec![StreamWrite::new(
            User::stream_id(&user_id),
            ExpectedVersion::NoStream,
            new_events(&events, &metadata).map_err(store_error)?,
        )];
        for (field, value, event) in &claims {
            writes.push(StreamWrite::new(
                format!("{field}-{}", claim_key(value)),
                ExpectedVersion::NoStream,
                new_events(std::slice::from_ref(event), &metadata).map_err(store_error)?,
            ));
        }
        match self.store.append_streams(writes).await {
            Ok(_) => {}
            Err(EventStoreError::WrongExpectedVersion { stream_id, .. }) => {
                let field = if stream_id.starts_with("email-") {
                    "email"
                } else {
                    "username"
                };
                let mut error = ApiError::new(
                    ErrorCode::AlreadyExists,
                    format!("{field} is already taken"),
                );
                error.details.push(metachat_proto::error::FieldViolation {
                    field: field.into(),
                    message: "is already taken".into(),
                });
                return Err(error.into());
            }
            Err(e) => return Err(store_error(e).into()),
        }
        tracing::info!(user_id = %id, "user created");
        Ok(Response::new(to_proto(self.current(&id).await?)))
    }

    async fn get_user(
        &self,
        request: Request<GetUserRequest>,
    ) -> Result<Response<pb::User>, Status> {
        let r = request.into_inner();
        let id = parse_id("id", &r.id).map_err(invalid)?;
        let view = match r.as_of {
            None => self.current(&id).await?,
            Some(as_of) => {
                let as_of = from_timestamp("asOf", &as_of)?;
                let events = self
                    .store
                    .read_stream_as_of(&User::stream_id(&id.to_string()), as_of)
                    .await
                    .map_err(store_error)?;
                UserView::replay(&events)
                    .map_err(store_error)?
                    .ok_or_else(|| {
                        ApiError::not_found(format!("user {id} did not exist at {as_of}"))
                    })?
            }
        };
        Ok(Response::new(to_proto(view)))
    }

    async fn update_profile(
        &self,
        request: Request<UpdateProfileRequest>,
    ) -> Result<Response<pb::User>, Status> {
        let metadata = event_metadata(&request);
        let r = request.into_inner();
        let changes = ProfileChanges {
            first_name: r.first_name,
            last_name: r.last_name,
            date_of_birth: r.date_of_birth,
            avatar: r.avatar,
            bio: r.bio,
            today: Utc::now().date_naive(),
        };
        self.execute(&r.id, UserCommand::UpdateProfile(changes), metadata)
            .await
    }

    async fn assign_archetype(
        &self,
        request: Request<ArchetypeRequest>,
    ) -> Result<Response<pb::User>, Status> {
        let metadata = event_metadata(&request);
        let r = request.into_inner();
        let id = r.user_id.clone();
        self.execute(
            &id,
            UserCommand::AssignArchetype(archetype_input(r)),
            metadata,
        )
        .await
    }

    async fn update_archetype(
        &self,
        request: Request<ArchetypeRequest>,
    ) -> Result<Response<pb::User>, Status> {
        let metadata = event_metadata(&request);
        let r = request.into_inner();
        let id = r.user_id.clone();
        self.execute(
            &id,
            UserCommand::UpdateArchetype(archetype_input(r)),
            metadata,
        )
        .await
    }

    async fn update_modalities(
        &self,
        request: Request<UpdateModalitiesRequest>,
    ) -> Result<Response<pb::User>, Status> {
        let metadata = event_metadata(&request);
        let r = request.into_inner();
        let weights = r.modalities.into_iter().collect();
        self.execute(&r.user_id, UserCommand::UpdateModalities(weights), metadata)
            .await
    }

    async fn list_users(
        &self,
        request: Request<ListUsersRequest>,
    ) -> Result<Response<ListUsersResponse>, Status> {
        let r = request.into_inner();
        let (page, request) = metachat_grpc::page_request(r.page, r.limit, r.cursor)?;
        let found = self
            .read_models
            .list_users(&request)
            .await
            .map_err(metachat_grpc::query_error)?;
        let total = self
            .read_models
            .count_users()
            .await
            .map_err(metachat_grpc::query_error)?;
        Ok(Response::new(ListUsersResponse {
            has_more: found.has_more(),
            next_cursor: found.next_cursor.unwrap_or_default(),
            users: found.items.into_iter().map(to_proto).collect(),
            page,
            limit: request.limit,
            total,
        }))
    }

    async fn get_user_history(
        &self,
        request: Request<HistoryRequest>,
    ) -> Result<Response<EventHistory>, Status> {
        let id = parse_id("id", &request.into_inner().id).map_err(invalid)?;
        let events = read_full_stream(self.store.as_ref(), &User::stream_id(&id.to_string()))
            .await
            .map_err(store_error)?;
        if events.is_empty() {
            return Err(ApiError::not_found(format!("user {id} not found")).into());
        }
        Ok(Response::new(history(events)))
    }
}

/// The wire form of a user.
pub fn to_proto(view: UserView) -> pb::User {
    let UserView {
        user,
        created_at,
        updated_at,
        version,
        archetype_assigned_at,
        archetype_updated_at,
        modalities_updated_at,
    } = view;
    pb::User {
        id: user.id,
        username: user.username,
        email: user.email,
        first_name: user.first_name,
        last_name: user.last_name,
        date_of_birth: user.date_of_birth.map(|d| d.format("%Y-%m-%d").to_string()),
        avatar: user.avatar,
        bio: user.bio,
        archetype: user.archetype.map(|a| pb::Archetype {
            archetype_id: a.archetype_id,
            archetype_name: a.archetype_name,
            confidence: a.confidence,
            description: a.description,
            assigned_at: archetype_assigned_at.map(timestamp),
            updated_at: archetype_updated_at.map(timestamp),
        }),
        modalities: user.modalities.map(|weights| pb::Modalities {
            weights: weights.into_iter().collect(),
            updated_at: modalities_updated_at.map(timestamp),
        }),
        created_at: Some(timestamp(created_at)),
        updated_at: Some(timestamp(updated_at)),
        version,
    }
}
