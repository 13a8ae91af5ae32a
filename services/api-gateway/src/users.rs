//! `/users` routes: JSON in, one gRPC call to the user service, JSON out.

use std::collections::HashMap;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{Json, Response};
use metachat_proto::common::HistoryRequest;
use metachat_proto::diary::{
    EraseDiaryRequest, GetAnalysisSettingRequest, SetAnalysisSettingRequest,
};
use metachat_proto::user::{
    ArchetypeRequest, CreateUserRequest, EraseUserRequest, GetUserRequest, ListArchetypesRequest,
    ListUsersRequest, UpdateModalitiesRequest, UpdateProfileRequest, User,
};
use serde::Deserialize;
use utoipa::ToSchema;

use crate::consistency::{ReadAfter, with_token};
use crate::convert::{
    AnalysisSettingJson, ArchetypeCatalogueJson, HistoryJson, UserJson, UserListJson,
};
use crate::created;
use crate::error::AppError;
use crate::extract::{JsonBody, PathId, QueryParams, unique_map};
use crate::grpc::{Backends, RequestContext, unary};
use crate::openapi::{
    Backend, BadRequest, BodyErrors, Conflict, Limits, NotFound, PreconditionFailed,
};
use crate::precondition::{IfMatch, tagged};
use crate::schema::{
    self, AsOfQuery, ConsistencyTokenHeader, IfMatchHeader, PagingQuery, UserIdPath,
};
use crate::time::as_of;
use crate::validate::Checks;

#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[schema(as = CreateUserRequest, examples(json!({
    "username": "johndoe", "email": "john@example.com", "firstName": "John",
    "lastName": "Doe", "dateOfBirth": "1990-01-01"
})))]
pub(crate) struct CreateUserBody {
    #[schema(schema_with = schema::username)]
    username: String,
    #[schema(schema_with = schema::email)]
    email: String,
    #[schema(schema_with = schema::name)]
    first_name: String,
    #[schema(schema_with = schema::name)]
    last_name: String,
    #[schema(schema_with = schema::date_of_birth_or_null)]
    date_of_birth: Option<String>,
    /// To sign in with (`POST /auth/token`): 10 to 256 characters, kept only as an argon2id
    /// hash, never shown.
    #[schema(write_only, min_length = 10, max_length = 256, nullable)]
    password: Option<String>,
}

impl CreateUserBody {
    fn check(&self) -> Result<(), AppError> {
        let mut checks = Checks::default();
        checks.single_line("username", Some(&self.username));
        checks.single_line("email", Some(&self.email));
        checks.single_line("firstName", Some(&self.first_name));
        checks.single_line("lastName", Some(&self.last_name));
        checks.date("dateOfBirth", self.date_of_birth.as_deref(), false);
        checks.finish()
    }
}

/// Absent (or `null`) fields are left unchanged.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[schema(as = UpdateUserRequest, examples(json!({
    "firstName": "John", "lastName": "Doe", "dateOfBirth": "1990-01-01",
    "avatar": "base64-encoded-image", "bio": "Software developer and AI enthusiast"
})))]
pub(crate) struct UpdateUserBody {
    #[schema(schema_with = schema::name_or_null)]
    first_name: Option<String>,
    #[schema(schema_with = schema::name_or_null)]
    last_name: Option<String>,
    #[schema(schema_with = schema::date_of_birth_update)]
    date_of_birth: Option<String>,
    #[schema(schema_with = schema::avatar_or_null)]
    avatar: Option<String>,
    #[schema(schema_with = schema::bio_or_null)]
    bio: Option<String>,
}

impl UpdateUserBody {
    fn check(&self) -> Result<(), AppError> {
        let mut checks = Checks::default();
        checks.single_line("firstName", self.first_name.as_deref());
        checks.single_line("lastName", self.last_name.as_deref());
        // An empty string clears the date of birth.
        checks.date("dateOfBirth", self.date_of_birth.as_deref(), true);
        checks.single_line("avatar", self.avatar.as_deref());
        checks.multi_line("bio", self.bio.as_deref());
        checks.finish()
    }
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[schema(as = ArchetypeRequest, examples(json!({
    "archetypeId": "thinker", "archetypeName": "The Thinker", "confidence": 0.85,
    "description": "Analytical and introspective personality type"
})))]
pub(crate) struct ArchetypeBody {
    #[schema(schema_with = schema::archetype_id)]
    archetype_id: String,
    #[schema(schema_with = schema::archetype_name)]
    archetype_name: String,
    #[schema(schema_with = schema::confidence)]
    confidence: f64,
    #[serde(default)]
    #[schema(schema_with = schema::archetype_description)]
    description: String,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[schema(as = ModalitiesRequest, examples(json!({
    "modalities": {"visual": 0.8, "auditory": 0.6, "kinesthetic": 0.4}
})))]
pub(crate) struct ModalitiesBody {
    #[serde(deserialize_with = "unique_map")]
    #[schema(schema_with = schema::modalities)]
    modalities: HashMap<String, f64>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[schema(as = AnalysisSettingRequest, examples(json!({"enabled": false})))]
pub(crate) struct AnalysisSettingBody {
    /// `false` switches analysis off and erases what was derived; `true` switches it back on
    /// and has every entry analysed again.
    enabled: bool,
}

/// 200 with the user and its ETag.
fn user_response(user: User) -> Response {
    let version = user.version;
    tagged(StatusCode::OK, UserJson::from(user), version)
}

/// 200 with the changed user, its ETag and the write's consistency token.
fn changed_user_response(user: User) -> Response {
    let (id, version) = (user.id.clone(), user.version);
    with_token(user_response(user), &id, version)
}

/// Create a user
///
/// Creates a user (event `UserCreated`). 409 `already_exists` when the username or e-mail is
/// taken (regardless of case).
#[utoipa::path(post, path = "/users", tag = "Users", operation_id = "createUser",
    request_body = CreateUserBody,
    responses((status = 201, description = "The created user.", body = UserJson),
        BadRequest, Conflict, BodyErrors, Limits, Backend))]
pub(crate) async fn create_user(
    State(backends): State<Backends>,
    context: RequestContext,
    JsonBody(body): JsonBody<CreateUserBody>,
) -> Result<Response, AppError> {
    body.check()?;
    let request = CreateUserRequest {
        username: body.username,
        email: body.email,
        first_name: body.first_name,
        last_name: body.last_name,
        date_of_birth: body.date_of_birth,
        password: body.password,
    };
    let mut client = backends.users.clone();
    let call = client.create_user(context.request(request, backends.timeout));
    let user = unary(&context, backends.timeout, call).await?;
    let (id, version) = (user.id.clone(), user.version);
    let response = created(&format!("/users/{id}"), UserJson::from(user), version);
    Ok(with_token(response, &id, version))
}

/// Get a user
///
/// The user's current state, or their state at `asOf`. Served from the event store: reflects
/// every completed write immediately.
#[utoipa::path(get, path = "/users/{id}", tag = "Users", operation_id = "getUser",
    params(UserIdPath, AsOfQuery),
    responses((status = 200, description = "The user.", body = UserJson),
        BadRequest, NotFound, Limits, Backend))]
pub(crate) async fn get_user(
    State(backends): State<Backends>,
    context: RequestContext,
    PathId(id): PathId,
    query: QueryParams,
) -> Result<Response, AppError> {
    let request = GetUserRequest {
        id,
        as_of: as_of(&query)?,
    };
    let mut client = backends.users.clone();
    let call = client.get_user(context.request(request, backends.timeout));
    Ok(user_response(
        unary(&context, backends.timeout, call).await?,
    ))
}

/// Update a user's profile
///
/// Changes the given profile fields (event `UserProfileUpdated`); absent fields are unchanged,
/// an empty string clears `dateOfBirth`, `avatar` or `bio`.
#[utoipa::path(put, path = "/users/{id}", tag = "Users", operation_id = "updateUserProfile",
    params(UserIdPath, IfMatchHeader), request_body = UpdateUserBody,
    responses((status = 200, description = "The updated user.", body = UserJson), BadRequest, NotFound, Conflict, PreconditionFailed, BodyErrors, Limits, Backend))]
pub(crate) async fn update_user(
    State(backends): State<Backends>,
    context: RequestContext,
    PathId(id): PathId,
    IfMatch(expected_version): IfMatch,
    JsonBody(body): JsonBody<UpdateUserBody>,
) -> Result<Response, AppError> {
    body.check()?;
    let request = UpdateProfileRequest {
        id,
        first_name: body.first_name,
        last_name: body.last_name,
        date_of_birth: body.date_of_birth,
        avatar: body.avatar,
        bio: body.bio,
        expected_version,
    };
    let mut client = backends.users.clone();
    let call = client.update_profile(context.request(request, backends.timeout));
    Ok(changed_user_response(
        unary(&context, backends.timeout, call).await?,
    ))
}

fn archetype_request(
    user_id: String,
    body: ArchetypeBody,
    expected_version: Option<u64>,
) -> Result<ArchetypeRequest, AppError> {
    let mut checks = Checks::default();
    checks.single_line("archetypeId", Some(&body.archetype_id));
    checks.single_line("archetypeName", Some(&body.archetype_name));
    checks.multi_line("description", Some(&body.description));
    checks.finish()?;
    Ok(ArchetypeRequest {
        user_id,
        archetype_id: body.archetype_id,
        archetype_name: body.archetype_name,
        confidence: body.confidence,
        description: body.description,
        expected_version,
    })
}

/// Assign an archetype
///
/// Assigns the user's first archetype (event `ArchetypeAssigned`). 409 `failed_precondition`
/// when one is already assigned: use PUT to change it. Answers 200 with the user.
#[utoipa::path(post, path = "/users/{id}/archetype", tag = "Users",
    operation_id = "assignArchetype", params(UserIdPath, IfMatchHeader),
    request_body = ArchetypeBody,
    responses((status = 200, description = "The user with the archetype.", body = UserJson),
        BadRequest, NotFound, Conflict, PreconditionFailed, BodyErrors, Limits, Backend))]
pub(crate) async fn assign_archetype(
    State(backends): State<Backends>,
    context: RequestContext,
    PathId(id): PathId,
    IfMatch(expected_version): IfMatch,
    JsonBody(body): JsonBody<ArchetypeBody>,
) -> Result<Response, AppError> {
    let request = archetype_request(id, body, expected_version)?;
    let mut client = backends.users.clone();
    let call = client.assign_archetype(context.request(request, backends.timeout));
    Ok(changed_user_response(
        unary(&context, backends.timeout, call).await?,
    ))
}

/// Update the archetype
///
/// Changes the assigned archetype (event `ArchetypeUpdated`). 409 `failed_precondition` when
/// none is assigned yet: use POST first.
#[utoipa::path(put, path = "/users/{id}/archetype", tag = "Users",
    operation_id = "updateArchetype", params(UserIdPath, IfMatchHeader),
    request_body = ArchetypeBody,
    responses((status = 200, description = "The user with the new archetype.", body = UserJson),
        BadRequest, NotFound, Conflict, PreconditionFailed, BodyErrors, Limits, Backend))]
pub(crate) async fn update_archetype(
    State(backends): State<Backends>,
    context: RequestContext,
    PathId(id): PathId,
    IfMatch(expected_version): IfMatch,
    JsonBody(body): JsonBody<ArchetypeBody>,
) -> Result<Response, AppError> {
    let request = archetype_request(id, body, expected_version)?;
    let mut client = backends.users.clone();
    let call = client.update_archetype(context.request(request, backends.timeout));
    Ok(changed_user_response(
        unary(&context, backends.timeout, call).await?,
    ))
}

/// Update modalities
///
/// Replaces the user's sensory-modality weights (event `ModalitiesUpdated`).
#[utoipa::path(put, path = "/users/{id}/modalities", tag = "Users",
    operation_id = "updateModalities", params(UserIdPath, IfMatchHeader),
    request_body = ModalitiesBody,
    responses((status = 200, description = "The updated user.", body = UserJson), BadRequest, NotFound, Conflict, PreconditionFailed, BodyErrors, Limits, Backend))]
pub(crate) async fn update_modalities(
    State(backends): State<Backends>,
    context: RequestContext,
    PathId(id): PathId,
    IfMatch(expected_version): IfMatch,
    JsonBody(body): JsonBody<ModalitiesBody>,
) -> Result<Response, AppError> {
    let request = UpdateModalitiesRequest {
        user_id: id,
        modalities: body.modalities,
        expected_version,
    };
    let mut client = backends.users.clone();
    let call = client.update_modalities(context.request(request, backends.timeout));
    Ok(changed_user_response(
        unary(&context, backends.timeout, call).await?,
    ))
}

/// List users
///
/// A page of users. Served from a read model, which lags writes slightly (milliseconds in the
/// embedded mode).
#[utoipa::path(get, path = "/users", tag = "Users", operation_id = "listUsers",
    params(PagingQuery, ConsistencyTokenHeader),
    responses((status = 200, description = "A page of users.", body = UserListJson),
        BadRequest, Limits, Backend))]
pub(crate) async fn list_users(
    State(backends): State<Backends>,
    context: RequestContext,
    ReadAfter(consistency_token): ReadAfter,
    query: QueryParams,
) -> Result<Json<UserListJson>, AppError> {
    let (page, limit, cursor) = query.paging()?;
    let request = ListUsersRequest {
        page,
        limit,
        cursor,
        consistency_token,
    };
    let mut client = backends.users.clone();
    let call = client.list_users(context.request(request, backends.timeout));
    Ok(Json(unary(&context, backends.timeout, call).await?.into()))
}

/// A user's event history
///
/// Every event of the stream `user-<id>`, oldest first: the audit history. Served from the
/// event store: reflects every completed write immediately.
#[utoipa::path(get, path = "/users/{id}/history", tag = "History", operation_id = "getUserHistory",
    params(UserIdPath),
    responses((status = 200, description = "The user's events.", body = HistoryJson),
        BadRequest, NotFound, Limits, Backend))]
pub(crate) async fn user_history(
    State(backends): State<Backends>,
    context: RequestContext,
    PathId(id): PathId,
) -> Result<Json<HistoryJson>, AppError> {
    let mut client = backends.users.clone();
    let call = client.get_user_history(context.request(HistoryRequest { id }, backends.timeout));
    let history = unary(&context, backends.timeout, call).await?;
    Ok(Json(HistoryJson::new(history)))
}

/// Erase a user
///
/// Erases the user and everything they wrote: their key is deleted, so their profile, password
/// and diary (entries, sessions' writing, analyses) can no longer be read from the event
/// store, from Kafka or from any backup; the read models and the search index drop them;
/// their username and e-mail address are free again. What remains are ids, times and event
/// types (see docs/security.md). It cannot be undone: export first (`/users/{id}/export`).
/// Erasing an erased user again answers 204 too.
#[utoipa::path(delete, path = "/users/{id}", tag = "Users", operation_id = "eraseUser",
    params(UserIdPath),
    responses((status = 204, description = "The user is erased."),
        BadRequest, NotFound, Limits, Backend))]
pub(crate) async fn erase_user(
    State(backends): State<Backends>,
    context: RequestContext,
    PathId(id): PathId,
) -> Result<StatusCode, AppError> {
    let mut users = backends.users.clone();
    let request = EraseUserRequest { id: id.clone() };
    let call = users.erase_user(context.request(request, backends.timeout));
    unary(&context, backends.timeout, call).await?;
    // The diary service would also learn of it from the user topic, but only an erasure that
    // is complete is answered: its own key cache forgets the user now, not in 30 s. If this
    // fails, the client's retry (erasing again answers 204) finishes it.
    let mut diary = backends.diary.clone();
    let request = EraseDiaryRequest { user_id: id };
    let call = diary.erase_diary(context.request(request, backends.timeout));
    unary(&context, backends.timeout, call).await?;
    Ok(StatusCode::NO_CONTENT)
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
    fn duplicate_modalities_are_refused() {
        let error = parse_json::<ModalitiesBody>(
            br#"{"modalities": {"visual": 0.1, "auditory": 0.2, "visual": 0.9}}"#,
        )
        .unwrap_err()
        .0;
        assert_eq!(error.details[0].field, "modalities.visual", "{error:?}");
        assert_eq!(error.details[0].message, "appears more than once");
    }

    #[test]
    fn form_checks_name_every_field() {
        let body: CreateUserBody = parse_json(
            br#"{"username": "bell\u0007", "email": "a@b.c", "firstName": "\u001b[1m",
                 "lastName": "Doe", "dateOfBirth": "1990-1-1"}"#,
        )
        .unwrap();
        let error = body.check().unwrap_err().0;
        let fields: Vec<_> = error.details.iter().map(|d| d.field.as_str()).collect();
        assert_eq!(fields, ["username", "firstName", "dateOfBirth"]);
        let update: UpdateUserBody =
            parse_json(br#"{"bio": "line one\nline two\ttabbed", "dateOfBirth": ""}"#).unwrap();
        assert!(update.check().is_ok());
    }

    #[test]
    fn an_update_leaves_absent_fields_absent() {
        let update: UpdateUserBody = parse_json(br#"{"bio": ""}"#).unwrap();
        assert_eq!(update.bio.as_deref(), Some(""));
        assert!(update.first_name.is_none() && update.avatar.is_none());
    }
}

/// Get a user's analysis setting
///
/// Whether the user's entries are analysed (on unless switched off).
#[utoipa::path(get, path = "/users/{id}/analysis", tag = "Users",
    operation_id = "getAnalysisSetting", params(UserIdPath),
    responses((status = 200, description = "The setting.", body = AnalysisSettingJson),
        BadRequest, NotFound, Limits, Backend))]
pub(crate) async fn get_analysis_setting(
    State(backends): State<Backends>,
    context: RequestContext,
    PathId(id): PathId,
) -> Result<Json<AnalysisSettingJson>, AppError> {
    let request = GetAnalysisSettingRequest { user_id: id };
    let mut client = backends.diary.clone();
    let call = client.get_analysis_setting(context.request(request, backends.timeout));
    Ok(Json(unary(&context, backends.timeout, call).await?.into()))
}

/// Switch analysis on or off
///
/// Off (events `DiaryAnalysisDisabled` on the diary topic, then `InferredProfileCleared` on
/// the user): no entry is analysed any more, and what was derived from the user's writing is
/// erased from every read: entry analyses (also in entry histories), the analytics'
/// sentiment, keywords and profile, the inferred archetype and modalities. Explicit values a
/// client set stay. On (`DiaryAnalysisEnabled`): every live entry is analysed again, and the
/// profile is inferred again. Setting the current value changes nothing. The change shows
/// on entries at once; in analytics and on the user within moments (no consistency token:
/// poll `analysisEnabled` in the analytics).
#[utoipa::path(put, path = "/users/{id}/analysis", tag = "Users",
    operation_id = "setAnalysisSetting", params(UserIdPath),
    request_body = AnalysisSettingBody,
    responses((status = 200, description = "The setting now.", body = AnalysisSettingJson),
        BadRequest, NotFound, Conflict, BodyErrors, Limits, Backend))]
pub(crate) async fn set_analysis_setting(
    State(backends): State<Backends>,
    context: RequestContext,
    PathId(id): PathId,
    JsonBody(body): JsonBody<AnalysisSettingBody>,
) -> Result<Json<AnalysisSettingJson>, AppError> {
    let request = SetAnalysisSettingRequest {
        user_id: id,
        enabled: body.enabled,
    };
    let mut client = backends.diary.clone();
    let call = client.set_analysis_setting(context.request(request, backends.timeout));
    // No consistency token: it would name the user, whose own stream (and the lists that
    // wait on it) this write does not move. The effects follow within moments.
    Ok(Json(unary(&context, backends.timeout, call).await?.into()))
}

/// The archetype catalogue
///
/// The archetypes that profile inference can name, each with its rule over measured
/// features of the writing (versioned: `version`).
#[utoipa::path(get, path = "/archetypes", tag = "Users", operation_id = "listArchetypes",
    responses((status = 200, description = "The catalogue.", body = ArchetypeCatalogueJson),
        Limits, Backend))]
pub(crate) async fn list_archetypes(
    State(backends): State<Backends>,
    context: RequestContext,
) -> Result<Json<ArchetypeCatalogueJson>, AppError> {
    let mut client = backends.users.clone();
    let call = client.list_archetypes(context.request(ListArchetypesRequest {}, backends.timeout));
    Ok(Json(unary(&context, backends.timeout, call).await?.into()))
}
