//! The web app for writers (`web/`, docs/web-app.md): its files, served at `/` and
//! `/app/{file}` from the binary (nothing to build, nothing fetched at run time), and its
//! sign-in by cookies at `/auth/session`.
//!
//! A sign-in sets three cookies, each `__Host-` prefixed (`Secure`, `Path=/`, no `Domain`: no
//! subdomain can set them; cookies are not kept apart by port, so the host should serve
//! nothing else untrusted) and `SameSite=Strict`:
//! - the access token (`HttpOnly`: scripts never see it), which the gateway accepts in place
//!   of `Authorization: Bearer` ([`credential`]);
//! - the refresh token (`HttpOnly`), spent by `POST /auth/session/refresh`;
//! - a CSRF token the app's script reads and sends back as `X-CSRF-Token` with every request
//!   that changes something: a request authenticated by the cookie without the matching
//!   header is refused (403), so a page of another site cannot act with the cookie.
//!
//! The access token is signed with `AUTH_TOKEN_SECRET`. Without authentication (the open
//! development mode, loopback only) the app still signs people in, to know whose diary to
//! show, with a key made when the gateway starts; the API is open anyway. With only an
//! identity provider's tokens (`AUTH_JWKS_URL`) the app cannot sign in: its tokens would not
//! be accepted, and `POST /auth/session` says so.

use std::sync::LazyLock;

use axum::Json;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use metachat_proto::error::{ApiError, ErrorCode};
use metachat_proto::user::{RefreshSignInRequest, SignInRequest, SignedIn};
use serde::Serialize;
use utoipa::ToSchema;

use crate::auth::{Issuer, Subject, TokenError};
use crate::error::AppError;
use crate::extract::JsonBody;
use crate::grpc::{Backends, RequestContext, unary};
use crate::openapi::{Backend, BadRequest, BodyErrors, Limits, NotFound};
use crate::signin::{SignInBody, check_sign_in_lengths};

/// The cookie holding the access token.
pub const ACCESS_COOKIE: &str = "__Host-metachat-access";
/// The cookie holding the refresh token.
pub const REFRESH_COOKIE: &str = "__Host-metachat-refresh";
/// The cookie holding the CSRF token the app sends back in [`CSRF_HEADER`].
pub const CSRF_COOKIE: &str = "__Host-metachat-csrf";
/// The header a cookie-authenticated request that changes something must carry.
pub const CSRF_HEADER: &str = "x-csrf-token";

/// How long the refresh and CSRF cookies last when the sign-in does not say.
const DEFAULT_SIGN_IN_SECS: i64 = 30 * 24 * 3600;

/// The page and the files it loads: `(name, content type, content)`.
const FILES: [(&str, &str, &[u8]); 7] = [
    (
        "index.html",
        "text/html; charset=utf-8",
        include_bytes!("../web/index.html"),
    ),
    (
        "app.js",
        "text/javascript; charset=utf-8",
        include_bytes!("../web/app.js"),
    ),
    (
        "api.js",
        "text/javascript; charset=utf-8",
        include_bytes!("../web/api.js"),
    ),
    (
        "dom.js",
        "text/javascript; charset=utf-8",
        include_bytes!("../web/dom.js"),
    ),
    (
        "charts.js",
        "text/javascript; charset=utf-8",
        include_bytes!("../web/charts.js"),
    ),
    (
        "app.css",
        "text/css; charset=utf-8",
        include_bytes!("../web/app.css"),
    ),
    (
        "icon.svg",
        "image/svg+xml",
        include_bytes!("../web/icon.svg"),
    ),
];

/// Everything comes from the gateway; avatars may be pictures elsewhere (https).
const CONTENT_SECURITY_POLICY: &str = "default-src 'self'; script-src 'self'; \
     style-src 'self'; img-src 'self' data: https:; connect-src 'self'; \
     frame-ancestors 'none'; base-uri 'none'; form-action 'self'; object-src 'none'";

/// Each file's strong ETag: a hash of its bytes, so a browser revalidates and gets a new
/// build's files at once.
static ETAGS: LazyLock<Vec<String>> = LazyLock::new(|| {
    FILES
        .iter()
        .map(|(_, _, content)| {
            // FNV-1a: stable across builds and platforms.
            let hash = content.iter().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
                (h ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3)
            });
            format!("\"{hash:016x}\"")
        })
        .collect()
});

fn file(name: &str, headers: &HeaderMap) -> Option<Response> {
    let index = FILES.iter().position(|(file, _, _)| *file == name)?;
    let (_, content_type, content) = FILES[index];
    let etag = &ETAGS[index];
    // Weak comparison (RFC 9110 13.1.2): a proxy that compresses marks the tag weak.
    let fresh = headers
        .get_all(header::IF_NONE_MATCH)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|tag| tag.trim())
        .any(|tag| tag == "*" || tag.strip_prefix("W/").unwrap_or(tag) == etag);
    let mut response = if fresh {
        StatusCode::NOT_MODIFIED.into_response()
    } else {
        ([(header::CONTENT_TYPE, content_type)], content).into_response()
    };
    let set = response.headers_mut();
    set.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    if let Ok(value) = HeaderValue::from_str(etag) {
        set.insert(header::ETAG, value);
    }
    set.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CONTENT_SECURITY_POLICY),
    );
    set.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    set.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    set.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    Some(response)
}

/// The web app
///
/// The app for writers: sign up and in, write, look back, see your analytics, settings. One
/// HTML page that loads its script and styles from `/app/{file}`. The API reference is at
/// `/docs`.
#[utoipa::path(get, path = "/", tag = "Web app", operation_id = "webApp", security(()),
    responses((status = 200, description = "The page.", content_type = "text/html",
        body = String), (status = 304, description = "Not modified (`If-None-Match`)."), Limits))]
pub(crate) async fn index(headers: HeaderMap) -> Response {
    file("index.html", &headers).unwrap_or_else(|| StatusCode::NOT_FOUND.into_response())
}

/// A file of the web app
///
/// `app.js`, `api.js`, `dom.js`, `charts.js`, `app.css` or `icon.svg`, with a strong ETag.
#[utoipa::path(get, path = "/app/{file}", tag = "Web app", operation_id = "webAppFile",
    security(()),
    params(("file" = String, Path, description = "The file's name.")),
    responses(
        (status = 200, description = "The file.", content(
            (String = "text/javascript"), (String = "text/css"), (String = "image/svg+xml"))),
        (status = 304, description = "Not modified (`If-None-Match`)."),
        NotFound, Limits))]
pub(crate) async fn asset(
    Path(name): Path<String>,
    headers: HeaderMap,
) -> Result<Response, AppError> {
    if name == "index.html" {
        return Err(ApiError::not_found("no such file of the web app").into());
    }
    file(&name, &headers).ok_or_else(|| ApiError::not_found("no such file of the web app").into())
}

/// Who the web app's cookies sign in.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(as = WebSession)]
pub(crate) struct SessionJson {
    #[schema(format = Uuid)]
    user_id: String,
    /// Seconds the new access cookie is valid (on signing in and renewing).
    #[serde(skip_serializing_if = "Option::is_none")]
    expires_in: Option<u64>,
}

/// The values of cookie `name` in `headers` (a browser may send several, or several headers).
/// A pair that is not ASCII is skipped, not the whole header (another site of the host may
/// set such cookies).
pub(crate) fn cookies<'h>(headers: &'h HeaderMap, name: &str) -> Vec<&'h str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .flat_map(|v| v.as_bytes().split(|b| *b == b';'))
        .filter_map(|pair| std::str::from_utf8(pair).ok())
        .filter_map(|pair| {
            let (key, value) = pair.trim().split_once('=')?;
            (key == name && value.is_ascii()).then_some(value.trim())
        })
        .collect()
}

/// The one value of cookie `name`: none when absent or sent more than once (which one the
/// browser meant cannot be told).
pub(crate) fn cookie<'h>(headers: &'h HeaderMap, name: &str) -> Option<&'h str> {
    match cookies(headers, name).as_slice() {
        [one] if !one.is_empty() => Some(one),
        _ => None,
    }
}

/// Whether a request with these headers carries the CSRF header matching its CSRF cookie
/// (compared in constant time).
pub(crate) fn csrf_matches(headers: &HeaderMap) -> bool {
    let (Some(cookie), Some(sent)) = (
        cookie(headers, CSRF_COOKIE),
        headers.get(CSRF_HEADER).and_then(|v| v.to_str().ok()),
    ) else {
        return false;
    };
    let (a, b) = (cookie.as_bytes(), sent.trim().as_bytes());
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |d, (x, y)| d | (x ^ y)) == 0
}

/// Whether `method` changes nothing (and so needs no CSRF token).
pub(crate) fn is_safe(method: &Method) -> bool {
    matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS)
}

/// The access token of a request authenticated by the web app's cookie, when it carries no
/// `Authorization` header.
pub(crate) fn credential(headers: &HeaderMap) -> Option<&str> {
    cookie(headers, ACCESS_COOKIE)
}

/// A random token of 32 bytes, base64url.
fn random_token() -> String {
    let mut bytes = [0u8; 32];
    bytes[..16].copy_from_slice(uuid::Uuid::new_v4().as_bytes());
    bytes[16..].copy_from_slice(uuid::Uuid::new_v4().as_bytes());
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

/// The issuer of the web app's access tokens: the platform's, or (authentication off) one
/// keyed when the gateway started.
pub(crate) fn session_issuer(config: &crate::auth::AuthConfig) -> Option<Issuer> {
    static OPEN: LazyLock<Option<Issuer>> =
        LazyLock::new(|| Issuer::new(random_token().as_bytes(), crate::auth::DEFAULT_ACCESS_TTL));
    match (&config.issuer, config.enabled()) {
        (Some(issuer), _) => Some(issuer.clone()),
        (None, false) => OPEN.clone(),
        // An identity provider's tokens only: the app's would not be accepted.
        (None, true) => None,
    }
}

fn not_signing_in() -> AppError {
    AppError(ApiError::new(
        ErrorCode::NotFound,
        "the web app signs in with the platform's own tokens, and AUTH_TOKEN_SECRET is not \
         set (with an identity provider only, use the API with its tokens)",
    ))
}

fn set_cookie(response: &mut Response, name: &str, value: &str, max_age: i64, http_only: bool) {
    let http_only = if http_only { "; HttpOnly" } else { "" };
    let line =
        format!("{name}={value}; Max-Age={max_age}; Path=/; Secure; SameSite=Strict{http_only}");
    if let Ok(value) = HeaderValue::from_str(&line) {
        response.headers_mut().append(header::SET_COOKIE, value);
    }
}

fn clear_cookies(response: &mut Response) {
    for (name, http_only) in [
        (ACCESS_COOKIE, true),
        (REFRESH_COOKIE, true),
        (CSRF_COOKIE, false),
    ] {
        set_cookie(response, name, "", 0, http_only);
    }
}

/// 200 with the session, and the three cookies of a sign-in.
fn signed_in(issuer: &Issuer, signed_in: SignedIn) -> Result<Response, AppError> {
    let ttl = issuer.access_ttl.as_secs();
    let refresh_for = signed_in
        .refresh_expires_at
        .as_ref()
        .map_or(DEFAULT_SIGN_IN_SECS, |t| {
            t.seconds - chrono::Utc::now().timestamp()
        })
        .max(1);
    let access = issuer.issue(&signed_in.user_id, false, None);
    let mut response = Json(SessionJson {
        user_id: signed_in.user_id,
        expires_in: Some(ttl),
    })
    .into_response();
    set_cookie(
        &mut response,
        ACCESS_COOKIE,
        &access,
        i64::try_from(ttl).unwrap_or(i64::MAX),
        true,
    );
    // Refresh tokens are URL-safe already; the check keeps a cookie header well-formed.
    if !signed_in
        .refresh_token
        .bytes()
        .all(|b| b.is_ascii_graphic() && b != b';' && b != b',')
    {
        return Err(AppError(ApiError::internal(
            "the sign-in's refresh token cannot be kept in a cookie",
        )));
    }
    set_cookie(
        &mut response,
        REFRESH_COOKIE,
        &signed_in.refresh_token,
        refresh_for,
        true,
    );
    set_cookie(
        &mut response,
        CSRF_COOKIE,
        &random_token(),
        refresh_for,
        false,
    );
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    Ok(response)
}

fn refused(message: &str) -> AppError {
    AppError(ApiError::new(ErrorCode::PermissionDenied, message))
}

/// Sign in to the web app
///
/// Checks a login and password, as `POST /auth/token` does, and answers with the session in
/// cookies instead of tokens in the body: the access token and the refresh token
/// (`HttpOnly`), and the CSRF token that requests changing something send back as
/// `X-CSRF-Token`. A wrong login or password is 401, the same answer either way.
#[utoipa::path(post, path = "/auth/session", tag = "Web app", operation_id = "webSignIn",
    request_body = SignInBody, security(()),
    responses((status = 200, description = "Signed in: the cookies are set.", body = SessionJson),
        (status = 401, description = "Wrong login or password.", body = crate::error::Envelope),
        (status = 404, description = "The platform does not issue its own tokens.", body = crate::error::Envelope),
        BadRequest, BodyErrors, Limits, Backend))]
pub(crate) async fn sign_in(
    State(backends): State<Backends>,
    context: RequestContext,
    headers: HeaderMap,
    JsonBody(body): JsonBody<SignInBody>,
) -> Result<Response, AppError> {
    let issuer = session_issuer(&backends.auth.config).ok_or_else(not_signing_in)?;
    check_sign_in_lengths(&body)?;
    backends
        .auth
        .sign_in_attempt(body.login())
        .map_err(AppError)?;
    let (login, password) = body.into_parts();
    let request = SignInRequest { login, password };
    let mut client = backends.users.clone();
    let call = client.sign_in(context.request(request, backends.timeout));
    let new = unary(&context, backends.timeout, call).await?;
    // The sign-in these cookies replace (another account on a shared device) is ended, as
    // far as it can be: its refresh token would otherwise live on.
    if let Some(old) = cookie(&headers, REFRESH_COOKIE)
        && let Err(error) = end_sign_in(&backends, &context, old).await
    {
        tracing::debug!(code = ?error.0.code, "the replaced sign-in was not ended");
    }
    signed_in(&issuer, new)
}

/// Ends the sign-in `refresh_token` belongs to. One already ended, or whose user was erased,
/// counts as ended.
async fn end_sign_in(
    backends: &Backends,
    context: &RequestContext,
    refresh_token: &str,
) -> Result<(), AppError> {
    let request = RefreshSignInRequest {
        refresh_token: refresh_token.to_owned(),
    };
    let mut client = backends.users.clone();
    let call = client.sign_out(context.request(request, backends.timeout));
    match unary(context, backends.timeout, call).await {
        Ok(_) => Ok(()),
        Err(error)
            if matches!(
                error.0.code,
                ErrorCode::Unauthenticated | ErrorCode::NotFound
            ) =>
        {
            Ok(())
        }
        Err(error) => Err(error),
    }
}

/// The web app's session
///
/// Who the access cookie signs in: 401 when it is missing, expired or not valid (the app
/// then renews it with `POST /auth/session/refresh`).
#[utoipa::path(get, path = "/auth/session", tag = "Web app", operation_id = "webSession",
    security(()),
    responses((status = 200, description = "Signed in.", body = SessionJson),
        (status = 401, description = "Not signed in.", body = crate::error::Envelope),
        Limits))]
pub(crate) async fn session(
    State(backends): State<Backends>,
    headers: HeaderMap,
) -> Result<Response, AppError> {
    let subject = session_subject(&backends, &headers)?;
    let mut response = Json(SessionJson {
        user_id: subject.user_id,
        expires_in: None,
    })
    .into_response();
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    Ok(response)
}

fn session_subject(backends: &Backends, headers: &HeaderMap) -> Result<Subject, AppError> {
    let unauthenticated =
        |e: TokenError| AppError(ApiError::new(ErrorCode::Unauthenticated, e.to_string()));
    let issuer = session_issuer(&backends.auth.config).ok_or_else(not_signing_in)?;
    let token = credential(headers).ok_or_else(|| {
        AppError(ApiError::new(
            ErrorCode::Unauthenticated,
            "not signed in: POST /auth/session signs in",
        ))
    })?;
    let subject = issuer.verify(token).map_err(unauthenticated)?;
    if subject.user_id == crate::auth::INVITE_SUBJECT {
        // An invitation opens registration, nothing else.
        return Err(unauthenticated(TokenError::Invalid));
    }
    Ok(subject)
}

/// Renew the web app's session
///
/// Spends the refresh cookie for a new access cookie and a new refresh cookie. Needs the
/// `X-CSRF-Token` header. A refresh token is valid once: presenting one again ends the
/// sign-in, 401, and the cookies are cleared.
#[utoipa::path(post, path = "/auth/session/refresh", tag = "Web app",
    operation_id = "webRefresh", security(()),
    responses((status = 200, description = "Renewed: the cookies are set.", body = SessionJson),
        (status = 401, description = "No valid refresh cookie: sign in again.", body = crate::error::Envelope),
        (status = 403, description = "No `X-CSRF-Token` matching the CSRF cookie.", body = crate::error::Envelope),
        Limits, Backend))]
pub(crate) async fn refresh(
    State(backends): State<Backends>,
    context: RequestContext,
    headers: HeaderMap,
) -> Result<Response, AppError> {
    let issuer = session_issuer(&backends.auth.config).ok_or_else(not_signing_in)?;
    let refresh_cookie = cookie(&headers, REFRESH_COOKIE);
    if refresh_cookie.is_some() && !csrf_matches(&headers) {
        return Err(refused(CSRF_MISSING));
    }
    let Some(refresh_token) = refresh_cookie else {
        let mut response = AppError(ApiError::new(
            ErrorCode::Unauthenticated,
            "no refresh cookie: sign in again",
        ))
        .into_response();
        clear_cookies(&mut response);
        return Ok(response);
    };
    let request = RefreshSignInRequest {
        refresh_token: refresh_token.to_owned(),
    };
    let mut client = backends.users.clone();
    let call = client.refresh_sign_in(context.request(request, backends.timeout));
    match unary(&context, backends.timeout, call).await {
        Ok(renewed) => signed_in(&issuer, renewed),
        Err(error) if error.0.code == ErrorCode::Unauthenticated => {
            let mut response = error.into_response();
            clear_cookies(&mut response);
            Ok(response)
        }
        Err(error) => Err(error),
    }
}

/// Sign out of the web app
///
/// Ends the sign-in of the refresh cookie and clears the cookies. Needs the `X-CSRF-Token`
/// header.
#[utoipa::path(delete, path = "/auth/session", tag = "Web app", operation_id = "webSignOut",
    security(()),
    responses((status = 204, description = "Signed out: the cookies are cleared."),
        (status = 403, description = "No `X-CSRF-Token` matching the CSRF cookie.", body = crate::error::Envelope),
        Limits, Backend))]
pub(crate) async fn sign_out(
    State(backends): State<Backends>,
    context: RequestContext,
    headers: HeaderMap,
) -> Result<Response, AppError> {
    // Without a sign-in cookie there is nothing to end (and nothing a forged request could).
    let has_cookie = cookie(&headers, REFRESH_COOKIE).is_some() || credential(&headers).is_some();
    if has_cookie && !csrf_matches(&headers) {
        return Err(refused(CSRF_MISSING));
    }
    let mut response = StatusCode::NO_CONTENT.into_response();
    if let Some(refresh_token) = cookie(&headers, REFRESH_COOKIE)
        && let Err(error) = end_sign_in(&backends, &context, refresh_token).await
    {
        // The browser forgets the sign-in anyway; the error says the server could not end
        // it (its refresh token expires on its own).
        response = error.into_response();
    }
    clear_cookies(&mut response);
    Ok(response)
}

/// Why a cookie-authenticated request that changes something is refused without its token.
pub(crate) const CSRF_MISSING: &str = "this request carries the web app's sign-in cookie but \
     not its X-CSRF-Token header (the value of the __Host-metachat-csrf cookie): requests \
     that change something must send it";

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.append(
                axum::http::HeaderName::from_bytes(name.as_bytes()).unwrap(),
                HeaderValue::from_str(value).unwrap(),
            );
        }
        map
    }

    #[test]
    fn a_cookie_is_read_only_when_sent_once() {
        let one = headers(&[("cookie", "a=1; __Host-metachat-access=tok; b=2")]);
        assert_eq!(credential(&one), Some("tok"));
        let twice = headers(&[
            ("cookie", "__Host-metachat-access=tok"),
            ("cookie", "__Host-metachat-access=other"),
        ]);
        assert_eq!(credential(&twice), None);
        let prefixed = headers(&[("cookie", "x__Host-metachat-access=tok")]);
        assert_eq!(credential(&prefixed), None);
        assert_eq!(
            credential(&headers(&[("cookie", "__Host-metachat-access=")])),
            None
        );
        // Another site's cookie that is not ASCII is skipped, not the whole header.
        let mut odd = HeaderMap::new();
        odd.insert(
            header::COOKIE,
            HeaderValue::from_bytes("other=caf\u{e9}; __Host-metachat-access=tok".as_bytes())
                .unwrap(),
        );
        assert_eq!(credential(&odd), Some("tok"));
    }

    #[test]
    fn the_csrf_header_must_match_its_cookie() {
        let cookie = ("cookie", "__Host-metachat-csrf=abc123");
        assert!(csrf_matches(&headers(&[
            cookie,
            ("x-csrf-token", "abc123")
        ])));
        assert!(!csrf_matches(&headers(&[
            cookie,
            ("x-csrf-token", "abc124")
        ])));
        assert!(!csrf_matches(&headers(&[
            cookie,
            ("x-csrf-token", "abc12")
        ])));
        assert!(!csrf_matches(&headers(&[cookie])));
        assert!(!csrf_matches(&headers(&[("x-csrf-token", "abc123")])));
    }

    #[test]
    fn files_revalidate_by_their_etag() {
        let first = file("app.js", &HeaderMap::new()).unwrap();
        assert_eq!(first.status(), StatusCode::OK);
        let etag = first.headers()[header::ETAG].to_str().unwrap().to_owned();
        let again = file("app.js", &headers(&[("if-none-match", &etag)])).unwrap();
        assert_eq!(again.status(), StatusCode::NOT_MODIFIED);
        // Weakly (a compressing proxy's), among others, on a second line, or any.
        let weak = format!("W/{etag}");
        for sent in [
            vec![("if-none-match", weak.as_str())],
            vec![
                ("if-none-match", "\"other\""),
                ("if-none-match", etag.as_str()),
            ],
            vec![("if-none-match", "*")],
        ] {
            let again = file("app.js", &headers(&sent)).unwrap();
            assert_eq!(again.status(), StatusCode::NOT_MODIFIED, "{sent:?}");
        }
        let other = file("app.js", &headers(&[("if-none-match", "\"other\"")])).unwrap();
        assert_eq!(other.status(), StatusCode::OK);
        assert!(file("nope.js", &HeaderMap::new()).is_none());
        assert!(
            first.headers()[header::CONTENT_SECURITY_POLICY]
                .to_str()
                .unwrap()
                .contains("script-src 'self'")
        );
    }
}
