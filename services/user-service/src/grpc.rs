//! The gRPC adapter: messages become use-case calls, results and errors become messages.
//! No rule lives here; see [`crate::application`].

use std::sync::Arc;
use std::time::Duration;

use metachat_grpc::{event_metadata, from_timestamp, history, page_request, timestamp};
use metachat_proto::common::{EventHistory, HistoryRequest};
use metachat_proto::error::ApiError;
use metachat_proto::user::user_service_server::UserService;
use metachat_proto::user::{
    self as pb, ArchetypeRequest, CreateUserRequest, GetUserRequest, ListUsersRequest,
    ListUsersResponse, UpdateModalitiesRequest, UpdateProfileRequest,
};
use metachat_validation::UserId;
use tonic::{Request, Response, Status};

use crate::application::{Registration, UserChange, Users};
use crate::domain::{ArchetypeInput, Inference, ProfileChanges};
use crate::read_model::UserReadModels;
use crate::view::UserView;

/// The user service over its use cases.
pub struct UserGrpc {
    users: Users,
}

impl UserGrpc {
    /// `read_your_writes` bounds how long a list waits for the write its token names.
    pub fn new(
        store: Arc<dyn event_sourcing::EventStore>,
        read_models: Arc<dyn UserReadModels>,
        read_your_writes: Duration,
    ) -> Self {
        Self {
            users: Users::new(store, read_models).with_read_your_writes_timeout(read_your_writes),
        }
    }

    async fn change<T>(
        &self,
        request: Request<T>,
        id: impl FnOnce(&T) -> &str,
        expected_version: impl FnOnce(&T) -> Option<u64>,
        change: impl FnOnce(T) -> UserChange,
    ) -> Result<Response<pb::User>, Status> {
        let metadata = event_metadata(&request);
        let r = request.into_inner();
        let user_id = UserId::parse("id", id(&r)).map_err(ApiError::from)?;
        let expected = expected_version(&r);
        let view = self
            .users
            .change(&user_id, change(r), expected, &metadata)
            .await?;
        Ok(Response::new(to_proto(view)))
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
        let idempotency_key = metachat_grpc::idempotency_key(&request);
        let r = request.into_inner();
        let registration = Registration {
            username: r.username,
            email: r.email,
            first_name: r.first_name,
            last_name: r.last_name,
            date_of_birth: r.date_of_birth,
            password: r.password,
            idempotency_key,
        };
        let view = self.users.register(registration, &metadata).await?;
        Ok(Response::new(to_proto(view)))
    }

    async fn get_user(
        &self,
        request: Request<GetUserRequest>,
    ) -> Result<Response<pb::User>, Status> {
        let r = request.into_inner();
        let id = UserId::parse("id", &r.id).map_err(ApiError::from)?;
        let view = match r.as_of {
            None => self.users.user(&id).await?,
            Some(as_of) => {
                let as_of = from_timestamp("asOf", &as_of)?;
                self.users.user_as_of(&id, as_of).await?
            }
        };
        Ok(Response::new(to_proto(view)))
    }

    async fn update_profile(
        &self,
        request: Request<UpdateProfileRequest>,
    ) -> Result<Response<pb::User>, Status> {
        self.change(
            request,
            |r| &r.id,
            |r| r.expected_version,
            |r| {
                UserChange::Profile(ProfileChanges {
                    first_name: r.first_name,
                    last_name: r.last_name,
                    date_of_birth: r.date_of_birth,
                    avatar: r.avatar,
                    bio: r.bio,
                    ..ProfileChanges::default()
                })
            },
        )
        .await
    }

    async fn assign_archetype(
        &self,
        request: Request<ArchetypeRequest>,
    ) -> Result<Response<pb::User>, Status> {
        self.change(
            request,
            |r| &r.user_id,
            |r| r.expected_version,
            |r| UserChange::AssignArchetype(archetype_input(r)),
        )
        .await
    }

    async fn update_archetype(
        &self,
        request: Request<ArchetypeRequest>,
    ) -> Result<Response<pb::User>, Status> {
        self.change(
            request,
            |r| &r.user_id,
            |r| r.expected_version,
            |r| UserChange::UpdateArchetype(archetype_input(r)),
        )
        .await
    }

    async fn update_modalities(
        &self,
        request: Request<UpdateModalitiesRequest>,
    ) -> Result<Response<pb::User>, Status> {
        self.change(
            request,
            |r| &r.user_id,
            |r| r.expected_version,
            |r| UserChange::Modalities(r.modalities.into_iter().collect()),
        )
        .await
    }

    async fn list_users(
        &self,
        request: Request<ListUsersRequest>,
    ) -> Result<Response<ListUsersResponse>, Status> {
        let r = request.into_inner();
        let (page, request) = page_request(r.page, r.limit, r.cursor)?;
        let (found, total) = self.users.list(&request, &r.consistency_token).await?;
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
        let id = UserId::parse("id", &request.into_inner().id).map_err(ApiError::from)?;
        Ok(Response::new(history(self.users.history(&id).await?)))
    }

    async fn list_archetypes(
        &self,
        _request: Request<pb::ListArchetypesRequest>,
    ) -> Result<Response<pb::ArchetypeCatalogue>, Status> {
        Ok(Response::new(archetype_catalogue()))
    }

    async fn sign_in(
        &self,
        request: Request<pb::SignInRequest>,
    ) -> Result<Response<pb::SignedIn>, Status> {
        let metadata = event_metadata(&request);
        let r = request.into_inner();
        let signed_in = self.users.sign_in(&r.login, &r.password, &metadata).await?;
        Ok(Response::new(signed_in_to_proto(signed_in)))
    }

    async fn refresh_sign_in(
        &self,
        request: Request<pb::RefreshSignInRequest>,
    ) -> Result<Response<pb::SignedIn>, Status> {
        let metadata = event_metadata(&request);
        let r = request.into_inner();
        let signed_in = self.users.refresh(&r.refresh_token, &metadata).await?;
        Ok(Response::new(signed_in_to_proto(signed_in)))
    }

    async fn erase_user(
        &self,
        request: Request<pb::EraseUserRequest>,
    ) -> Result<Response<pb::UserErased>, Status> {
        let metadata = event_metadata(&request);
        let id = UserId::parse("id", &request.into_inner().id).map_err(ApiError::from)?;
        self.users.erase(&id, &metadata).await?;
        Ok(Response::new(pb::UserErased {}))
    }

    async fn change_password(
        &self,
        request: Request<pb::ChangePasswordRequest>,
    ) -> Result<Response<pb::PasswordChanged>, Status> {
        let metadata = event_metadata(&request);
        let r = request.into_inner();
        let user_id = UserId::parse("userId", &r.user_id).map_err(ApiError::from)?;
        self.users
            .change_password(
                &user_id,
                r.current_password.as_deref(),
                &r.new_password,
                &metadata,
            )
            .await?;
        Ok(Response::new(pb::PasswordChanged {}))
    }

    async fn sign_out(
        &self,
        request: Request<pb::RefreshSignInRequest>,
    ) -> Result<Response<pb::SignedOut>, Status> {
        let metadata = event_metadata(&request);
        let r = request.into_inner();
        self.users.sign_out(&r.refresh_token, &metadata).await?;
        Ok(Response::new(pb::SignedOut {}))
    }
}

/// The archetypes inference can name, from the analysis crate's rules.
pub fn archetype_catalogue() -> pb::ArchetypeCatalogue {
    use analysis::archetypes;
    pb::ArchetypeCatalogue {
        version: archetypes::VERSION.to_owned(),
        minimum_words: archetypes::MIN_WORDS,
        full_confidence_words: archetypes::FULL_CONFIDENCE_WORDS,
        archetypes: archetypes::catalogue()
            .iter()
            .map(|a| pb::CatalogueArchetype {
                id: a.id.to_owned(),
                name: a.name.to_owned(),
                description: a.description.to_owned(),
                rule: a.rule.to_owned(),
                terms: a
                    .terms
                    .iter()
                    .map(|t| pb::ArchetypeRuleTerm {
                        feature: t.feature.name().to_owned(),
                        weight: t.weight,
                        low: t.low,
                        high: t.high,
                    })
                    .collect(),
            })
            .collect(),
    }
}

/// The wire form of a user.
pub fn to_proto(view: UserView) -> pb::User {
    let UserView {
        user,
        created_at,
        updated_at,
        version,
    } = view;
    pb::User {
        id: user.id.to_string(),
        username: user.username.as_str().to_owned(),
        email: user.email.as_str().to_owned(),
        first_name: user.first_name,
        last_name: user.last_name,
        date_of_birth: user.date_of_birth.map(|d| d.format("%Y-%m-%d").to_string()),
        avatar: user.avatar,
        bio: user.bio,
        archetype: user.archetype.map(|a| pb::Archetype {
            archetype_id: a.archetype_id,
            archetype_name: a.archetype_name,
            confidence: a.confidence.value(),
            description: a.description,
            assigned_at: user.archetype_assigned_at.map(timestamp),
            updated_at: user.archetype_updated_at.map(timestamp),
        }),
        modalities: user.modalities.map(|weights| pb::Modalities {
            weights: weights.into_iter().collect(),
            updated_at: user.modalities_updated_at.map(timestamp),
        }),
        created_at: Some(timestamp(created_at)),
        updated_at: Some(timestamp(updated_at)),
        version,
        inferred_archetype: user.inferred_archetype.map(|a| {
            let (evidence, basis) = inference_to_proto(a.inferred);
            pb::InferredArchetype {
                archetype_id: a.archetype_id,
                archetype_name: a.archetype_name,
                confidence: a.confidence.value(),
                description: a.description,
                evidence,
                basis,
                assigned_at: user.inferred_archetype_assigned_at.map(timestamp),
                updated_at: user.inferred_archetype_updated_at.map(timestamp),
            }
        }),
        inferred_modalities: user.inferred_modalities.map(|m| {
            let coverage = m.inferred.as_ref().and_then(|i| i.coverage).unwrap_or(0.0);
            let (evidence, basis) = inference_to_proto(m.inferred);
            pb::InferredModalities {
                weights: m.modalities.into_iter().collect(),
                coverage,
                evidence,
                basis,
                updated_at: user.inferred_modalities_updated_at.map(timestamp),
            }
        }),
    }
}

fn inference_to_proto(
    inference: Option<Inference>,
) -> (Vec<pb::InferenceEvidence>, Option<pb::InferenceBasis>) {
    let Some(inference) = inference else {
        return (Vec::new(), None);
    };
    let evidence = inference
        .evidence
        .into_iter()
        .map(|e| pb::InferenceEvidence {
            feature: e.feature,
            value: e.value,
            strength: e.strength,
            weight: e.weight,
            words: e.words,
        })
        .collect();
    let basis = pb::InferenceBasis {
        entries: inference.basis.entries,
        words: inference.basis.words,
        window_days: inference.basis.window_days,
        analyzer_version: inference.basis.analyzer_version,
    };
    (evidence, Some(basis))
}

fn signed_in_to_proto(s: crate::application::SignedIn) -> pb::SignedIn {
    pb::SignedIn {
        user_id: s.user_id.to_string(),
        refresh_token: s.refresh_token,
        refresh_expires_at: Some(metachat_grpc::timestamp(s.refresh_expires_at)),
    }
}
