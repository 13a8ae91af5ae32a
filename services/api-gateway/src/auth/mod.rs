//! Who may call what. The gateway authenticates every request that carries
//! `Authorization: Bearer <access token>` ([`tokens`], [`jwks`]), or the web app's access
//! cookie with, on a request that changes something, its CSRF token ([`crate::web`]), and
//! checks each route's
//! [`Access`] before its handler runs; the diary service checks the owner of an entry or
//! session named by id (only it knows the owner), from the caller the gateway forwards in the
//! gRPC metadata (`x-actor`, `x-actor-roles`), which the services trust: see
//! `docs/security.md` for the trust boundary and the service token that guards it.
//!
//! Authentication is on when a token source is configured (`AUTH_TOKEN_SECRET` for tokens
//! the platform issues, `AUTH_JWKS_URL` for an identity provider's). Without one the gateway
//! serves everyone as before, but only on a loopback address and never with
//! `ENVIRONMENT=prod`: [`AuthConfig::check_exposure`].

pub mod jwks;
pub mod tokens;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use metachat_proto::error::{ApiError, ErrorCode, FieldViolation};
use metachat_runtime::{ConfigError, Env};

pub use jwks::{Jwks, ProviderConfig};
pub use tokens::{Issuer, Subject, TokenError};

use crate::error::AppError;
use crate::grpc::RequestContext;
use crate::ratelimit::{self, Buckets, PeerAddr, RateLimitConfig};

/// How registration (`POST /users`) is open.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Registration {
    /// Anyone may register.
    #[default]
    Open,
    /// Admins, and whoever brings an invitation (`X-Invite-Token`, minted by
    /// `metachat token --invite`).
    Invite,
    /// Only admins create users.
    Closed,
}

/// The header carrying an invitation.
pub const INVITE_HEADER: &str = "x-invite-token";

/// The purpose-built subject of invitation tokens (they never act for a user).
pub const INVITE_SUBJECT: &str = "00000000-0000-4000-8000-00000000beef";

/// How long an access token the platform issues lives by default.
pub const DEFAULT_ACCESS_TTL: Duration = Duration::from_secs(15 * 60);

/// The gateway's authentication settings.
#[derive(Debug, Clone, Default)]
pub struct AuthConfig {
    /// Tokens the platform issues (`AUTH_TOKEN_SECRET`).
    pub issuer: Option<Issuer>,
    /// An identity provider's tokens (`AUTH_JWKS_URL`, `AUTH_ISSUER`, `AUTH_AUDIENCE`).
    pub provider: Option<ProviderConfig>,
    pub registration: Registration,
    /// Sent to the services with every call (`SERVICE_TOKEN`).
    pub service_token: Option<String>,
    /// `ENVIRONMENT=prod`.
    pub production: bool,
}

impl AuthConfig {
    /// Reads `AUTH_TOKEN_SECRET`, `AUTH_ACCESS_TOKEN_TTL_SECS`, `AUTH_JWKS_URL`,
    /// `AUTH_ISSUER`, `AUTH_AUDIENCE`, `AUTH_JWKS_REFETCH_SECS`, `REGISTRATION`,
    /// `SERVICE_TOKEN` and `ENVIRONMENT`.
    pub fn read(env: &Env) -> Result<Self, ConfigError> {
        let ttl = env.parse_within::<u64>(
            "AUTH_ACCESS_TOKEN_TTL_SECS",
            DEFAULT_ACCESS_TTL.as_secs(),
            30,
            24 * 3600,
        )?;
        let issuer = match env.var("AUTH_TOKEN_SECRET") {
            Some(secret) if secret.len() < tokens::MIN_SECRET_BYTES => {
                return Err(ConfigError::new(
                    "AUTH_TOKEN_SECRET",
                    "(hidden)",
                    format!("must be at least {} bytes", tokens::MIN_SECRET_BYTES),
                ));
            }
            Some(secret) => Some(
                Issuer::new(secret.as_bytes(), Duration::from_secs(ttl)).ok_or_else(|| {
                    ConfigError::new("AUTH_TOKEN_SECRET", "(hidden)", "cannot key HS256")
                })?,
            ),
            None => None,
        };
        let provider = match env.var("AUTH_JWKS_URL") {
            Some(url) => {
                if !(url.starts_with("https://") || url.starts_with("http://")) {
                    return Err(ConfigError::new(
                        "AUTH_JWKS_URL",
                        &url,
                        "must be an http:// or https:// URL",
                    ));
                }
                let required = |name: &str| {
                    env.var(name)
                        .ok_or_else(|| ConfigError::new(name, "", "is required with AUTH_JWKS_URL"))
                };
                let refetch = env.parse_within::<u64>(
                    "AUTH_JWKS_REFETCH_SECS",
                    jwks::DEFAULT_REFETCH_AFTER.as_secs(),
                    1,
                    3600,
                )?;
                Some(ProviderConfig {
                    jwks_url: url,
                    issuer: required("AUTH_ISSUER")?,
                    audience: required("AUTH_AUDIENCE")?,
                    admin_role: tokens::ADMIN_ROLE.to_owned(),
                    refetch_after: Duration::from_secs(refetch),
                })
            }
            None => None,
        };
        let registration = match env.or("REGISTRATION", "open").to_ascii_lowercase().as_str() {
            "open" => Registration::Open,
            "invite" => Registration::Invite,
            "closed" => Registration::Closed,
            other => {
                return Err(ConfigError::new(
                    "REGISTRATION",
                    other,
                    "expected open, invite or closed",
                ));
            }
        };
        Ok(Self {
            issuer,
            provider,
            registration,
            service_token: env.var("SERVICE_TOKEN"),
            production: env.or("ENVIRONMENT", "dev") == "prod",
        })
    }

    pub fn enabled(&self) -> bool {
        self.issuer.is_some() || self.provider.is_some()
    }

    /// Refuses to serve without authentication on anything but loopback, or in production;
    /// says loudly that it runs without it otherwise.
    pub fn check_exposure(&self, address: SocketAddr) -> anyhow::Result<()> {
        if self.enabled() {
            if self.production && self.service_token.is_none() {
                anyhow::bail!(
                    "ENVIRONMENT=prod needs SERVICE_TOKEN: the services trust the caller the \
                     gateway forwards only from a caller that holds it"
                );
            }
            return Ok(());
        }
        if self.production {
            anyhow::bail!(
                "ENVIRONMENT=prod needs authentication: set AUTH_TOKEN_SECRET (tokens the \
                 platform issues) or AUTH_JWKS_URL, AUTH_ISSUER and AUTH_AUDIENCE (an identity \
                 provider's)"
            );
        }
        if !address.ip().is_loopback() {
            anyhow::bail!(
                "authentication is off, and the gateway would listen on {address}, which other \
                 machines can reach: set AUTH_TOKEN_SECRET or AUTH_JWKS_URL, or listen on \
                 127.0.0.1 (BIND_ADDRESS)"
            );
        }
        tracing::warn!(
            %address,
            "AUTHENTICATION IS OFF: every caller can read and change every diary. This is only \
             allowed on a loopback address; set AUTH_TOKEN_SECRET or AUTH_JWKS_URL to turn it on"
        );
        Ok(())
    }
}

/// The authentication the routes share.
#[derive(Clone)]
pub(crate) struct Auth {
    pub config: Arc<AuthConfig>,
    jwks: Option<Jwks>,
    /// Requests per caller, and sign-ins per address ([`crate::ratelimit`]).
    requests: Buckets,
    sign_ins: Buckets,
}

impl Auth {
    pub(crate) fn new(config: &AuthConfig, limits: RateLimitConfig) -> anyhow::Result<Self> {
        let jwks = config.provider.clone().map(Jwks::new).transpose()?;
        if let Some(jwks) = &jwks {
            let jwks = jwks.clone();
            tokio::spawn(async move { jwks.prefetch().await });
        }
        Ok(Self {
            config: Arc::new(config.clone()),
            jwks,
            requests: Buckets::new(limits.per_minute),
            sign_ins: Buckets::new(limits.sign_ins_per_minute),
        })
    }

    /// The caller of a request: by its `Authorization` header, else by the web app's access
    /// cookie, which a request that changes something must back with the CSRF token
    /// ([`crate::web`]).
    async fn caller(
        &self,
        headers: &HeaderMap,
        method: &axum::http::Method,
    ) -> Result<Caller, Refusal> {
        if !self.config.enabled() {
            return Ok(Caller::Unrestricted);
        }
        let mut values = headers.get_all(header::AUTHORIZATION).iter();
        let Some(value) = values.next() else {
            let Some(token) = crate::web::credential(headers) else {
                return Ok(Caller::Anonymous);
            };
            let subject = self.verify(token).await.map_err(Refusal::Token)?;
            if !crate::web::is_safe(method) && !crate::web::csrf_matches(headers) {
                return Err(Refusal::Forbidden(crate::web::CSRF_MISSING));
            }
            return Ok(Caller::User(subject));
        };
        // Two credentials: which one is meant cannot be told.
        if values.next().is_some() {
            return Err(Refusal::Token(TokenError::Invalid));
        }
        let token = value
            .to_str()
            .ok()
            .and_then(|v| {
                let (scheme, token) = v.split_once(' ')?;
                scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
            })
            .filter(|t| !t.is_empty())
            .ok_or(Refusal::Token(TokenError::Invalid))?;
        self.verify(token)
            .await
            .map(Caller::User)
            .map_err(Refusal::Token)
    }

    /// Verifies `token` with the source its algorithm names.
    pub(crate) async fn verify(&self, token: &str) -> Result<Subject, TokenError> {
        let header = jsonwebtoken::decode_header(token).map_err(|_| TokenError::Invalid)?;
        let subject = match (header.alg, &self.config.issuer, &self.jwks) {
            (jsonwebtoken::Algorithm::HS256, Some(issuer), _) => issuer.verify(token),
            (_, _, Some(jwks)) => jwks.verify(token).await,
            _ => Err(TokenError::Invalid),
        }?;
        if subject.user_id == INVITE_SUBJECT {
            // An invitation opens registration, nothing else.
            return Err(TokenError::Invalid);
        }
        Ok(subject)
    }

    /// Counts the request against its caller's rate, and a sign-in against its address's.
    fn within_limits(&self, caller: &Caller, request: &Request) -> Result<(), ApiError> {
        let path = request.uri().path();
        // Open on loopback (development), nobody to tell apart; probes and scrapes are never
        // limited.
        if !self.config.enabled() || path.starts_with("/health/") || path == "/metrics" {
            return Ok(());
        }
        let address = request
            .extensions()
            .get::<PeerAddr>()
            .map_or_else(|| "unknown".to_owned(), |p| p.0.to_string());
        // The web app's renewals are not counted: they carry no password to guess, and every
        // page load of a signed-out browser behind one proxy would otherwise use the bucket up.
        let signs_in = matches!(path, "/auth/token" | "/auth/refresh")
            || (path == "/auth/session" && request.method() == axum::http::Method::POST);
        if signs_in {
            self.sign_ins
                .take(&address)
                .map_err(|wait| ratelimit::too_many(wait, "sign-in attempts from this address"))?;
        }
        let key = match caller {
            Caller::User(s) => format!("user {}", s.user_id),
            _ => format!("address {address}"),
        };
        self.requests
            .take(&key)
            .map_err(|wait| ratelimit::too_many(wait, "requests"))
    }

    /// Counts a sign-in attempt for `login` (any case), wherever it comes from: guessing one
    /// account's password from many addresses meets the same limit as from one.
    pub(crate) fn sign_in_attempt(&self, login: &str) -> Result<(), ApiError> {
        if !self.config.enabled() {
            return Ok(());
        }
        self.sign_ins
            .take(&format!("login {}", login.trim().to_lowercase()))
            .map_err(|wait| ratelimit::too_many(wait, "sign-in attempts for this login"))
    }

    /// Whether `headers` carry a valid invitation.
    fn invited(&self, headers: &HeaderMap) -> bool {
        let Some(issuer) = &self.config.issuer else {
            return false;
        };
        headers
            .get(INVITE_HEADER)
            .and_then(|v| v.to_str().ok())
            .and_then(|token| issuer.verify(token.trim()).ok())
            .is_some_and(|s| s.user_id == INVITE_SUBJECT)
    }
}

/// Who is calling, as the gateway established it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) enum Caller {
    /// Authentication is off: everyone may do everything (loopback only).
    #[default]
    Unrestricted,
    /// Authentication is on and the request carries no token.
    Anonymous,
    /// A valid token's user.
    User(Subject),
}

impl Caller {
    /// Whether the caller may read and change what belongs to `user_id` (a UUID as sent; any
    /// case).
    pub(crate) fn acts_for(&self, user_id: &str) -> bool {
        match self {
            Caller::Unrestricted => true,
            Caller::Anonymous => false,
            Caller::User(s) => s.admin || s.user_id.eq_ignore_ascii_case(user_id),
        }
    }

    /// Refuses unless the caller acts for `user_id` (named by `field`).
    pub(crate) fn ensure_acts_for(&self, field: &str, user_id: &str) -> Result<(), AppError> {
        match self {
            _ if self.acts_for(user_id) => Ok(()),
            Caller::Anonymous => Err(Refusal::Missing.into()),
            _ => {
                let message = "a user may only act on their own diary and profile";
                Err(AppError(ApiError {
                    details: vec![FieldViolation {
                        field: field.to_owned(),
                        message: message.to_owned(),
                    }],
                    ..ApiError::new(ErrorCode::PermissionDenied, format!("{field}: {message}"))
                }))
            }
        }
    }

    /// The user id sent to the services as `x-actor`, with `admin` when it holds that role.
    pub(crate) fn actor(&self) -> (&str, bool) {
        match self {
            Caller::Unrestricted | Caller::Anonymous => ("anonymous", false),
            Caller::User(s) => (s.user_id.as_str(), s.admin),
        }
    }
}

/// Why a request was refused before its handler.
#[derive(Debug)]
enum Refusal {
    /// No token where one is needed.
    Missing,
    Token(TokenError),
    Forbidden(&'static str),
}

impl From<Refusal> for AppError {
    fn from(refusal: Refusal) -> Self {
        let error = match refusal {
            Refusal::Missing => ApiError::new(
                ErrorCode::Unauthenticated,
                "this route needs an access token: send Authorization: Bearer <token> \
                 (POST /auth/token issues one)",
            ),
            Refusal::Token(TokenError::KeysUnavailable) => {
                ApiError::unavailable(TokenError::KeysUnavailable.to_string())
            }
            Refusal::Token(e) => ApiError::new(ErrorCode::Unauthenticated, e.to_string()),
            Refusal::Forbidden(message) => ApiError::new(ErrorCode::PermissionDenied, message),
        };
        AppError(error)
    }
}

fn refused(refusal: Refusal) -> Response {
    let invalid_token = matches!(refusal, Refusal::Token(_));
    let mut response = AppError::from(refusal).into_response();
    if response.status() == axum::http::StatusCode::UNAUTHORIZED {
        let challenge = if invalid_token {
            r#"Bearer realm="metachat", error="invalid_token""#
        } else {
            r#"Bearer realm="metachat""#
        };
        response.headers_mut().insert(
            header::WWW_AUTHENTICATE,
            HeaderValue::from_static(challenge),
        );
    }
    response
}

/// What a route asks of its caller.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Access {
    /// Anyone: health, documentation, the archetype catalogue, signing in.
    Public,
    /// `POST /users`, as [`Registration`] says.
    Registration,
    /// Any valid token; the handler or the service checks the owner.
    Authenticated,
    /// The user whose id is the path parameter `id` or `userId`, or an admin.
    OwnerInPath(&'static str),
    /// The user whose id is the query parameter `userId`, or an admin.
    OwnerInQuery,
    /// Admins only.
    Admin,
}

impl Access {
    fn check(
        self,
        auth: &Auth,
        caller: &Caller,
        request: &Request,
        path_id: Option<String>,
    ) -> Result<(), Refusal> {
        if *caller == Caller::Unrestricted {
            return Ok(());
        }
        let admin = matches!(caller, Caller::User(s) if s.admin);
        let owner = |id: Option<String>| match (caller, id) {
            (Caller::Anonymous, _) => Err(Refusal::Missing),
            // Not one id: the handler answers 400 naming it.
            (_, None) => Ok(()),
            (caller, Some(id)) if caller.acts_for(&id) => Ok(()),
            _ => Err(Refusal::Forbidden(
                "a user may only act on their own diary and profile",
            )),
        };
        match self {
            Access::Public => Ok(()),
            Access::Registration => match (auth.config.registration, caller) {
                _ if admin => Ok(()),
                (Registration::Open, _) => Ok(()),
                (Registration::Invite, _) if auth.invited(request.headers()) => Ok(()),
                (Registration::Invite, _) => Err(Refusal::Forbidden(
                    "registration is by invitation: send the invitation as X-Invite-Token",
                )),
                (Registration::Closed, _) => Err(Refusal::Forbidden(
                    "registration is closed: an admin creates users",
                )),
            },
            Access::Authenticated => match caller {
                Caller::Anonymous => Err(Refusal::Missing),
                _ => Ok(()),
            },
            Access::OwnerInPath(_) => owner(path_id),
            Access::OwnerInQuery => owner(query_param(request, "userId")),
            Access::Admin => match caller {
                Caller::Anonymous => Err(Refusal::Missing),
                _ if admin => Ok(()),
                _ => Err(Refusal::Forbidden("only an admin may do this")),
            },
        }
    }
}

/// The path parameter `name` of the matched route, as sent (percent-decoded).
async fn path_param(request: Request, name: &str) -> (Request, Option<String>) {
    use axum::extract::FromRequestParts;
    let (mut parts, body) = request.into_parts();
    let value = axum::extract::RawPathParams::from_request_parts(&mut parts, &())
        .await
        .ok()
        .and_then(|params| {
            params
                .iter()
                .find(|(key, _)| *key == name)
                .map(|(_, value)| value.to_owned())
        });
    (Request::from_parts(parts, body), value)
}

/// The query parameter `name`, when given exactly once.
fn query_param(request: &Request, name: &str) -> Option<String> {
    let pairs = crate::extract::parse_query(request.uri().query().unwrap_or_default()).ok()?;
    let mut values = pairs.into_iter().filter(|(k, _)| k == name);
    match (values.next(), values.next()) {
        (Some((_, value)), None) => Some(value),
        _ => None,
    }
}

/// Authenticates the request, checks its route's [`Access`], and hands the caller on to the
/// handler and the gRPC calls it makes.
pub(crate) async fn middleware(
    State((auth, access)): State<(Auth, Access)>,
    mut request: Request,
    next: Next,
) -> Response {
    let method = request.method().clone();
    let caller = match auth.caller(request.headers(), &method).await {
        Ok(caller) => caller,
        // A public route ignores a bad token rather than failing on it.
        Err(_) if access == Access::Public => Caller::Anonymous,
        Err(refusal) => return refused(refusal),
    };
    let path_id = match access {
        Access::OwnerInPath(name) => {
            let (rebuilt, value) = path_param(request, name).await;
            request = rebuilt;
            value
        }
        _ => None,
    };
    if let Err(refusal) = access.check(&auth, &caller, &request, path_id) {
        return refused(refusal);
    }
    if let Err(error) = auth.within_limits(&caller, &request) {
        return AppError(error).into_response();
    }
    if let Some(context) = request.extensions_mut().get_mut::<RequestContext>() {
        context.caller = caller.clone();
        context.service_token = auth.config.service_token.clone();
    }
    // Answers to the web app's cookie carry someone's diary: no cache may keep them (a
    // Bearer token's answers are kept from shared caches by the Authorization header itself).
    // A user known without an Authorization header was known by the cookie (`Auth::caller`).
    let by_cookie =
        matches!(caller, Caller::User(_)) && !request.headers().contains_key(header::AUTHORIZATION);
    request.extensions_mut().insert(caller);
    let mut response = next.run(request).await;
    if by_cookie {
        let headers = response.headers_mut();
        headers.insert(
            header::CACHE_CONTROL,
            HeaderValue::from_static("private, no-store"),
        );
        headers.append(header::VARY, HeaderValue::from_static("Cookie"));
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn sign_in_attempts_are_counted_per_login_whatever_the_address() {
        let config = AuthConfig {
            issuer: Issuer::new(b"0123456789abcdef0123456789abcdef", DEFAULT_ACCESS_TTL),
            ..AuthConfig::default()
        };
        let limits = RateLimitConfig {
            per_minute: 0,
            sign_ins_per_minute: 2,
        };
        let auth = Auth::new(&config, limits).unwrap();
        assert!(auth.sign_in_attempt("Frank").is_ok());
        assert!(auth.sign_in_attempt(" frank ").is_ok());
        let refused = auth.sign_in_attempt("FRANK").unwrap_err();
        assert_eq!(refused.code, ErrorCode::TooManyRequests);
        assert!(refused.retry_after.is_some());
        assert!(
            auth.sign_in_attempt("grace").is_ok(),
            "another login has its own"
        );
        // Without authentication nothing is counted.
        let open = Auth::new(&AuthConfig::default(), limits).unwrap();
        assert!((0..10).all(|_| open.sign_in_attempt("frank").is_ok()));
    }
}
