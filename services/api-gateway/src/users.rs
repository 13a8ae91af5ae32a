//! `/users` routes: JSON in, one gRPC call to the user service, JSON out.

use std::collections::HashMap;

use axum::Json;
use axum::extract::State;
use axum::response::Response;
use metachat_proto::common::HistoryRequest;
use metachat_proto::user::{
    ArchetypeRequest, CreateUserRequest, GetUserRequest, ListUsersRequest, UpdateModalitiesRequest,
    UpdateProfileRequest,
};
use serde::Deserialize;

use crate::convert::{HistoryJson, UserJson, UserListJson};
use crate::created;
use crate::error::AppError;
use crate::extract::{JsonBody, PathId, QueryParams};
use crate::grpc::{Backends, RequestContext, unary};
use crate::time::as_of;

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub(crate) struct CreateUserBody {
    username: String,
    email: String,
    first_name: String,
    last_name: String,
    date_of_birth: Option<String>,
}

/// Absent (or `null`) fields are left unchanged.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub(crate) struct UpdateUserBody {
    first_name: Option<String>,
    last_name: Option<String>,
    date_of_birth: Option<String>,
    avatar: Option<String>,
    bio: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub(crate) struct ArchetypeBody {
    archetype_id: String,
    archetype_name: String,
    confidence: f64,
    #[serde(default)]
    description: String,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub(crate) struct ModalitiesBody {
    modalities: HashMap<String, f64>,
}

pub(crate) async fn create_user(
    State(backends): State<Backends>,
    context: RequestContext,
    JsonBody(body): JsonBody<CreateUserBody>,
) -> Result<Response, AppError> {
    let request = CreateUserRequest {
        username: body.username,
        email: body.email,
        first_name: body.first_name,
        last_name: body.last_name,
        date_of_birth: body.date_of_birth,
    };
    let mut client = backends.users.clone();
    let call = client.create_user(context.request(request, backends.timeout));
    let user = unary(&context, backends.timeout, call).await?;
    Ok(created(
        &format!("/users/{}", user.id),
        UserJson::from(user),
    ))
}

pub(crate) async fn get_user(
    State(backends): State<Backends>,
    context: RequestContext,
    PathId(id): PathId,
    query: QueryParams,
) -> Result<Json<UserJson>, AppError> {
    let request = GetUserRequest {
        id,
        as_of: as_of(&query)?,
    };
    let mut client = backends.users.clone();
    let call = client.get_user(context.request(request, backends.timeout));
    Ok(Json(unary(&context, backends.timeout, call).await?.into()))
}

pub(crate) async fn update_user(
    State(backends): State<Backends>,
    context: RequestContext,
    PathId(id): PathId,
    JsonBody(body): JsonBody<UpdateUserBody>,
) -> Result<Json<UserJson>, AppError> {
    let request = UpdateProfileRequest {
        id,
        first_name: body.first_name,
        last_name: body.last_name,
        date_of_birth: body.date_of_birth,
        avatar: body.avatar,
        bio: body.bio,
        expected_version: None,
    };
    let mut client = backends.users.clone();
    let call = client.update_profile(context.request(request, backends.timeout));
    Ok(Json(unary(&context, backends.timeout, call).await?.into()))
}

fn archetype_request(user_id: String, body: ArchetypeBody) -> ArchetypeRequest {
    ArchetypeRequest {
        user_id,
        archetype_id: body.archetype_id,
        archetype_name: body.archetype_name,
        confidence: body.confidence,
        description: body.description,
        expected_version: None,
    }
}

pub(crate) async fn assign_archetype(
    State(backends): State<Backends>,
    context: RequestContext,
    PathId(id): PathId,
    JsonBody(body): JsonBody<ArchetypeBody>,
) -> Result<Json<UserJson>, AppError> {
    let mut client = backends.users.clone();
    let call =
        client.assign_archetype(context.request(archetype_request(id, body), backends.timeout));
    Ok(Json(unary(&context, backends.timeout, call).await?.into()))
}

pub(crate) async fn update_archetype(
    State(backends): State<Backends>,
    context: RequestContext,
    PathId(id): PathId,
    JsonBody(body): JsonBody<ArchetypeBody>,
) -> Result<Json<UserJson>, AppError> {
    let mut client = backends.users.clone();
    let call =
        client.update_archetype(context.request(archetype_request(id, body), backends.timeout));
    Ok(Json(unary(&context, backends.timeout, call).await?.into()))
}

pub(crate) async fn update_modalities(
    State(backends): State<Backends>,
    context: RequestContext,
    PathId(id): PathId,
    JsonBody(body): JsonBody<ModalitiesBody>,
) -> Result<Json<UserJson>, AppError> {
    let request = UpdateModalitiesRequest {
        user_id: id,
        modalities: body.modalities,
        expected_version: None,
    };
    let mut client = backends.users.clone();
    let call = client.update_modalities(context.request(request, backends.timeout));
    Ok(Json(unary(&context, backends.timeout, call).await?.into()))
}

pub(crate) async fn list_users(
    State(backends): State<Backends>,
    context: RequestContext,
    query: QueryParams,
) -> Result<Json<UserListJson>, AppError> {
    let (page, limit, cursor) = query.paging()?;
    let request = ListUsersRequest {
        page,
        limit,
        cursor,
    };
    let mut client = backends.users.clone();
    let call = client.list_users(context.request(request, backends.timeout));
    Ok(Json(unary(&context, backends.timeout, call).await?.into()))
}

pub(crate) async fn user_history(
    State(backends): State<Backends>,
    context: RequestContext,
    PathId(id): PathId,
) -> Result<Json<HistoryJson>, AppError> {
    let stream_id = format!("user-{id}");
    let mut client = backends.users.clone();
    let call = client.get_user_history(context.request(HistoryRequest { id }, backends.timeout));
    let history = unary(&context, backends.timeout, call).await?;
    Ok(Json(HistoryJson::new(stream_id, history)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::extract::parse_json;

    #[test]
    fn the_seed_examples_parse_verbatim() {
        let create: CreateUserBody = parse_json(
            br#"{
  "username": "johndoe",
  "email": "john@example.com",
  "firstName": "John",
  "lastName": "Doe",
  "dateOfBirth": "1990-01-01"
}"#,
        )
        .unwrap();
        assert_eq!(create.date_of_birth.as_deref(), Some("1990-01-01"));
        let update: UpdateUserBody = parse_json(
            br#"{
  "firstName": "John",
  "lastName": "Doe",
  "dateOfBirth": "1990-01-01",
  "avatar": "base64-encoded-image",
  "bio": "Software developer and AI enthusiast"
}"#,
        )
        .unwrap();
        assert_eq!(
            update.bio.as_deref(),
            Some("Software developer and AI enthusiast")
        );
        let archetype: ArchetypeBody = parse_json(
            br#"{
  "archetypeId": "thinker",
  "archetypeName": "The Thinker",
  "confidence": 0.85,
  "description": "Analytical and introspective personality type"
}"#,
        )
        .unwrap();
        assert_eq!(archetype.confidence, 0.85);
        let modalities: ModalitiesBody = parse_json(
            br#"{
  "modalities": {
    "visual": 0.8,
    "auditory": 0.6,
    "kinesthetic": 0.4
  }
}"#,
        )
        .unwrap();
        assert_eq!(modalities.modalities.len(), 3);
    }

    #[test]
    fn an_update_leaves_absent_fields_absent() {
        let update: UpdateUserBody = parse_json(br#"{"bio": ""}"#).unwrap();
        assert_eq!(update.bio.as_deref(), Some(""));
        assert!(update.first_name.is_none() && update.avatar.is_none());
    }
}
