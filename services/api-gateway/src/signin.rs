//! `/auth` routes: signing in with a password for tokens the platform issues, refreshing
//! them, signing out. The user service checks the password and keeps the sign-ins; the
//! gateway signs the access tokens with `AUTH_TOKEN_SECRET`.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use metachat_proto::error::{ApiError, ErrorCode};
use metachat_proto::user::{ChangePasswordRequest, RefreshSignInRequest, SignInRequest, SignedIn};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::error::AppError;
use crate::extract::{JsonBody, PathId};
use crate::grpc::{Backends, RequestContext, unary};
use crate::openapi::{Backend, BadRequest, BodyErrors, Limits, NotFound};
use crate::schema::UserIdPath;
use crate::time::format_optional;

/// The longest login (an e-mail address) and password accepted.
const LOGIN_MAX: usize = 254;
const PASSWORD_MAX: usize = 256;

#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[schema(as = SignInRequest, examples(json!({"login": "johndoe", "password": "correct horse battery"})))]
pub(crate) struct SignInBody {
    /// A username or an e-mail address.
    #[schema(min_length = 1, max_length = 254)]
    login: String,
    #[schema(min_length = 1, max_length = 256, write_only)]
    password: String,
}

impl SignInBody {
    pub(crate) fn login(&self) -> &str {
        &self.login
    }

    pub(crate) fn into_parts(self) -> (String, String) {
        (self.login, self.password)
    }
}

/// Refuses an over-long login or password before any hashing: it costs nothing.
pub(crate) fn check_sign_in_lengths(body: &SignInBody) -> Result<(), AppError> {
    if body.login.chars().count() > LOGIN_MAX {
        return Err(AppError::invalid(
            "login",
            format!("must be at most {LOGIN_MAX} characters"),
        ));
    }
    if body.password.chars().count() > PASSWORD_MAX {
        return Err(AppError::invalid(
            "password",
            format!("must be at most {PASSWORD_MAX} characters"),
        ));
    }
    Ok(())
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[schema(as = RefreshRequest)]
pub(crate) struct RefreshBody {
    /// The `refreshToken` of a sign-in or of the last refresh.
    #[schema(min_length = 1, max_length = 200)]
    refresh_token: String,
}

/// Tokens for one sign-in.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(as = Tokens)]
pub(crate) struct TokensJson {
    /// Send as `Authorization: Bearer <accessToken>`.
    access_token: String,
    #[schema(examples("Bearer"))]
    token_type: &'static str,
    /// Seconds the access token is valid.
    expires_in: u64,
    /// Exchange it at `POST /auth/refresh` for new tokens before the access token expires;
    /// each is valid once (presenting a used one ends the sign-in).
    refresh_token: String,
    #[schema(format = DateTime)]
    refresh_expires_at: Option<String>,
    #[schema(format = Uuid)]
    user_id: String,
}

fn tokens(backends: &Backends, signed_in: SignedIn) -> Result<Json<TokensJson>, AppError> {
    let issuer = backends
        .auth
        .config
        .issuer
        .as_ref()
        .ok_or_else(not_issuing)?;
    Ok(Json(TokensJson {
        access_token: issuer.issue(&signed_in.user_id, false, None),
        token_type: "Bearer",
        expires_in: issuer.access_ttl.as_secs(),
        refresh_token: signed_in.refresh_token,
        refresh_expires_at: format_optional(signed_in.refresh_expires_at.as_ref()),
        user_id: signed_in.user_id,
    }))
}

fn not_issuing() -> AppError {
    AppError(ApiError::new(
        ErrorCode::NotFound,
        "this platform does not issue tokens: AUTH_TOKEN_SECRET is not set (with an identity \
         provider, sign in there)",
    ))
}

/// Sign in
///
/// Checks a login (username or e-mail) and password and answers a short-lived access token
/// and a refresh token. A wrong login or password is 401, the same answer either way.
#[utoipa::path(post, path = "/auth/token", tag = "Authentication", operation_id = "signIn",
    request_body = SignInBody, security(()),
    responses((status = 200, description = "Tokens.", body = TokensJson),
        (status = 401, description = "Wrong login or password.", body = crate::error::Envelope),
        BadRequest, BodyErrors, Limits, Backend))]
pub(crate) async fn sign_in(
    State(backends): State<Backends>,
    context: RequestContext,
    JsonBody(body): JsonBody<SignInBody>,
) -> Result<Json<TokensJson>, AppError> {
    if backends.auth.config.issuer.is_none() {
        return Err(not_issuing());
    }
    check_sign_in_lengths(&body)?;
    backends
        .auth
        .sign_in_attempt(&body.login)
        .map_err(AppError)?;
    let request = SignInRequest {
        login: body.login,
        password: body.password,
    };
    let mut client = backends.users.clone();
    let call = client.sign_in(context.request(request, backends.timeout));
    tokens(&backends, unary(&context, backends.timeout, call).await?)
}

/// Refresh tokens
///
/// Exchanges a refresh token for a new access token and a new refresh token. A refresh token
/// is valid once: presenting one again (it was stolen, or replayed) ends the sign-in, 401.
#[utoipa::path(post, path = "/auth/refresh", tag = "Authentication", operation_id = "refresh",
    request_body = RefreshBody, security(()),
    responses((status = 200, description = "New tokens.", body = TokensJson),
        (status = 401, description = "The refresh token is not valid, spent, or its sign-in ended.", body = crate::error::Envelope),
        BadRequest, BodyErrors, Limits, Backend))]
pub(crate) async fn refresh(
    State(backends): State<Backends>,
    context: RequestContext,
    JsonBody(body): JsonBody<RefreshBody>,
) -> Result<Json<TokensJson>, AppError> {
    if backends.auth.config.issuer.is_none() {
        return Err(not_issuing());
    }
    let request = RefreshSignInRequest {
        refresh_token: body.refresh_token,
    };
    let mut client = backends.users.clone();
    let call = client.refresh_sign_in(context.request(request, backends.timeout));
    tokens(&backends, unary(&context, backends.timeout, call).await?)
}

/// Sign out
///
/// Ends the sign-in the refresh token belongs to: it refreshes no more. Access tokens already
/// issued stay valid until they expire (`expiresIn`, 15 minutes by default).
#[utoipa::path(post, path = "/auth/signout", tag = "Authentication", operation_id = "signOut",
    request_body = RefreshBody, security(()),
    responses((status = 204, description = "Signed out."),
        (status = 401, description = "The refresh token is not valid.", body = crate::error::Envelope),
        BadRequest, BodyErrors, Limits, Backend))]
pub(crate) async fn sign_out(
    State(backends): State<Backends>,
    context: RequestContext,
    JsonBody(body): JsonBody<RefreshBody>,
) -> Result<Response, AppError> {
    let request = RefreshSignInRequest {
        refresh_token: body.refresh_token,
    };
    let mut client = backends.users.clone();
    let call = client.sign_out(context.request(request, backends.timeout));
    unary(&context, backends.timeout, call).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[schema(as = ChangePasswordRequest)]
pub(crate) struct ChangePasswordBody {
    /// Required when the user has a password.
    #[schema(max_length = 256, write_only, nullable)]
    current_password: Option<String>,
    #[schema(min_length = 10, max_length = 256, write_only)]
    new_password: String,
}

/// Change a password
///
/// Sets the user's password (10 to 256 characters), kept as an argon2id hash. When the user has
/// one, `currentPassword` must be it (403 otherwise). Sign-ins made before refresh no more:
/// every device signs in again.
#[utoipa::path(put, path = "/users/{id}/password", tag = "Authentication",
    operation_id = "changePassword", params(UserIdPath), request_body = ChangePasswordBody,
    responses((status = 204, description = "Changed."),
        BadRequest, NotFound, BodyErrors, Limits, Backend))]
pub(crate) async fn change_password(
    State(backends): State<Backends>,
    context: RequestContext,
    PathId(id): PathId,
    JsonBody(body): JsonBody<ChangePasswordBody>,
) -> Result<Response, AppError> {
    // Refused before any hashing: an over-long password costs nothing.
    for (field, value) in [
        (
            "currentPassword",
            body.current_password.as_deref().unwrap_or_default(),
        ),
        ("newPassword", body.new_password.as_str()),
    ] {
        if value.chars().count() > PASSWORD_MAX {
            return Err(AppError::invalid(
                field,
                format!("must be at most {PASSWORD_MAX} characters"),
            ));
        }
    }
    let request = ChangePasswordRequest {
        user_id: id,
        current_password: body.current_password,
        new_password: body.new_password,
    };
    let mut client = backends.users.clone();
    let call = client.change_password(context.request(request, backends.timeout));
    unary(&context, backends.timeout, call).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}
