//! MetaChat's HTTP API gateway: camelCase JSON over HTTP in front of the user and diary
//! services, which it reaches only over gRPC.
//!
//! The gateway checks request *shape* (JSON syntax and types, unknown fields, query parameters,
//! dates) and forwards values faithfully; business rules are the services'. Every failure is
//! rendered as one JSON envelope with the request id:
//! `{"error": {"code", "message", "details": [{"field", "message"}]}, "requestId"}`.

pub mod auth;
mod config;
mod consistency;
mod convert;
mod diary;
mod docs;
mod error;
mod export;
mod extract;
mod grpc;
mod health;
pub mod limits;
pub mod metrics;
mod openapi;
mod precondition;
pub mod ratelimit;
mod request_id;
mod schema;
mod server;
mod signin;
pub mod standalone;
mod time;
mod users;
mod validate;
mod web;

use std::future::Future;
use std::sync::LazyLock;

use axum::Extension;
use axum::Router;
use axum::extract::{DefaultBodyLimit, MatchedPath};
use axum::handler::Handler;
use axum::http::{HeaderValue, Method, StatusCode, Uri, header};
use axum::response::Response;
use axum::routing::{MethodFilter, MethodRouter, on};
use metachat_proto::error::{ApiError, ErrorCode};
use serde::Serialize;
use tokio::net::TcpListener;

pub use config::{DEFAULT_REQUEST_TIMEOUT, DEFAULT_SHUTDOWN_TIMEOUT, GatewayConfig};
pub use docs::DOCS_HTML;
pub use health::{DIARY_SERVICE_NAME, USER_SERVICE_NAME};
pub use limits::{BODY_LIMIT_BYTES, MAX_HEADER_BYTES, MAX_HEADERS, MAX_URI_BYTES};

use crate::auth::{Access, Auth};
use crate::error::AppError;
use crate::grpc::Backends;

/// One route: method, path template (OpenAPI syntax, which is also axum's), who may call it
/// and handler.
struct Endpoint {
    method: Method,
    path: &'static str,
    access: Access,
    handler: MethodRouter<Backends>,
}

fn endpoint<H, T>(method: Method, path: &'static str, access: Access, handler: H) -> Endpoint
where
    H: Handler<T, Backends>,
    T: 'static,
{
    // Only the standard methods below are used; each has a filter.
    let filter = MethodFilter::try_from(method.clone()).expect("a standard HTTP method");
    Endpoint {
        method,
        path,
        access,
        handler: on(filter, handler),
    }
}

/// Every route the gateway serves. The router is built from this list, so it is also the list
/// the OpenAPI document must match.
fn endpoints() -> Vec<Endpoint> {
    use Access::{Admin, Authenticated, OwnerInPath, OwnerInQuery, Public, Registration};
    use Method as M;
    let owner = OwnerInPath("id");
    let writer = OwnerInPath("userId");
    vec![
        endpoint(M::GET, "/", Public, web::index),
        endpoint(M::GET, "/app/{file}", Public, web::asset),
        endpoint(M::GET, "/docs", Public, docs::docs),
        endpoint(M::GET, "/docs/{file}", Public, docs::asset),
        endpoint(M::GET, "/openapi.json", Public, docs::openapi),
        endpoint(M::GET, "/health/live", Public, health::live),
        endpoint(M::GET, "/health/ready", Public, health::ready),
        endpoint(M::GET, "/metrics", Public, metrics::metrics),
        endpoint(M::POST, "/users", Registration, users::create_user),
        endpoint(M::GET, "/users", Admin, users::list_users),
        endpoint(M::GET, "/users/{id}", owner, users::get_user),
        endpoint(M::PUT, "/users/{id}", owner, users::update_user),
        endpoint(M::DELETE, "/users/{id}", owner, users::erase_user),
        endpoint(
            M::POST,
            "/users/{id}/archetype",
            owner,
            users::assign_archetype,
        ),
        endpoint(
            M::PUT,
            "/users/{id}/archetype",
            owner,
            users::update_archetype,
        ),
        endpoint(
            M::PUT,
            "/users/{id}/modalities",
            owner,
            users::update_modalities,
        ),
        endpoint(M::GET, "/users/{id}/history", owner, users::user_history),
        endpoint(
            M::GET,
            "/users/{id}/analysis",
            owner,
            users::get_analysis_setting,
        ),
        endpoint(
            M::PUT,
            "/users/{id}/analysis",
            owner,
            users::set_analysis_setting,
        ),
        endpoint(
            M::PUT,
            "/users/{id}/password",
            owner,
            signin::change_password,
        ),
        endpoint(M::GET, "/users/{id}/export", owner, export::export_json),
        endpoint(
            M::GET,
            "/users/{id}/export.md",
            owner,
            export::export_markdown,
        ),
        endpoint(M::GET, "/archetypes", Public, users::list_archetypes),
        endpoint(M::POST, "/auth/token", Public, signin::sign_in),
        endpoint(M::POST, "/auth/refresh", Public, signin::refresh),
        endpoint(M::POST, "/auth/signout", Public, signin::sign_out),
        endpoint(M::POST, "/auth/session", Public, web::sign_in),
        endpoint(M::GET, "/auth/session", Public, web::session),
        endpoint(M::DELETE, "/auth/session", Public, web::sign_out),
        endpoint(M::POST, "/auth/session/refresh", Public, web::refresh),
        // The body names the writer: the handler checks it.
        endpoint(
            M::POST,
            "/diary/entries",
            Authenticated,
            diary::create_entry,
        ),
        // By id: the diary service checks the owner.
        endpoint(
            M::GET,
            "/diary/entries/{id}",
            Authenticated,
            diary::get_entry,
        ),
        endpoint(
            M::PUT,
            "/diary/entries/{id}",
            Authenticated,
            diary::update_entry,
        ),
        endpoint(
            M::DELETE,
            "/diary/entries/{id}",
            Authenticated,
            diary::delete_entry,
        ),
        endpoint(
            M::GET,
            "/diary/entries/{id}/history",
            Authenticated,
            diary::entry_history,
        ),
        endpoint(
            M::GET,
            "/diary/entries/{id}/related",
            Authenticated,
            diary::related_entries,
        ),
        endpoint(M::GET, "/diary/search", OwnerInQuery, diary::search),
        endpoint(
            M::GET,
            "/diary/entries/user/{userId}",
            writer,
            diary::list_entries,
        ),
        endpoint(
            M::POST,
            "/diary/sessions",
            Authenticated,
            diary::start_session,
        ),
        endpoint(
            M::GET,
            "/diary/sessions/{id}",
            Authenticated,
            diary::get_session,
        ),
        endpoint(
            M::PUT,
            "/diary/sessions/{id}/end",
            Authenticated,
            diary::end_session,
        ),
        endpoint(
            M::GET,
            "/diary/sessions/{id}/history",
            Authenticated,
            diary::session_history,
        ),
        endpoint(
            M::GET,
            "/diary/sessions/user/{userId}",
            writer,
            diary::list_sessions,
        ),
        endpoint(M::GET, "/diary/analytics", OwnerInQuery, diary::analytics),
    ]
}

/// The OpenAPI document served at `/openapi.json`, generated from the handlers and types.
pub fn openapi_json() -> &'static str {
    openapi::OPENAPI_JSON.as_str()
}

/// Who may call each `(method, path template)`.
pub(crate) fn accesses() -> Vec<(Method, &'static str, Access)> {
    endpoints()
        .into_iter()
        .map(|e| (e.method, e.path, e.access))
        .collect()
}

/// Every `(method, path template)` the router serves, in OpenAPI path syntax.
pub fn routes() -> Vec<(Method, &'static str)> {
    ROUTES.clone()
}

static ROUTES: LazyLock<Vec<(Method, &'static str)>> = LazyLock::new(|| {
    endpoints()
        .into_iter()
        .map(|e| (e.method, e.path))
        .collect()
});

/// The gateway's routes and middleware, with lazily connected gRPC channels (the services may
/// start later). Must be called inside a Tokio runtime.
pub fn router(config: &GatewayConfig) -> anyhow::Result<Router> {
    metrics::describe();
    let auth = Auth::new(&config.auth, config.rate_limits)?;
    let backends = Backends::connect_lazy(config, auth.clone())?;
    let mut router = Router::new();
    for endpoint in endpoints() {
        let checked = endpoint.handler.layer(axum::middleware::from_fn_with_state(
            (auth.clone(), endpoint.access),
            auth::middleware,
        ));
        router = router.route(endpoint.path, checked);
    }
    Ok(router
        .method_not_allowed_fallback(method_not_allowed)
        .fallback(not_found)
        .layer(DefaultBodyLimit::max(BODY_LIMIT_BYTES))
        .layer(Extension(extract::BodyReadTimeout(
            config.body_read_timeout,
        )))
        .layer(axum::middleware::from_fn(request_id::middleware))
        .with_state(backends))
}

/// Serves the gateway on `listener` until `shutdown` completes, then drains in-flight requests
/// for at most `config.shutdown_timeout`.
pub async fn serve(
    listener: TcpListener,
    config: GatewayConfig,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let app = router(&config)?;
    if let Ok(address) = listener.local_addr() {
        tracing::info!(
            address = %address,
            user_service = %config.user_service_address,
            diary_service = %config.diary_service_address,
            "api gateway listening"
        );
    }
    server::serve(listener, app, &config, shutdown).await;
    tracing::info!("api gateway stopped");
    Ok(())
}

/// 201 with `Location`, the created resource and its ETag.
pub(crate) fn created<T: Serialize>(location: &str, body: T, version: u64) -> Response {
    let mut response = precondition::tagged(StatusCode::CREATED, body, version);
    if let Ok(value) = HeaderValue::from_str(location) {
        response.headers_mut().insert(header::LOCATION, value);
    }
    response
}

async fn not_found(method: Method, uri: Uri) -> AppError {
    let path: String = uri.path().chars().take(200).collect();
    AppError(ApiError::not_found(format!("no route for {method} {path}")))
}

/// axum adds the `Allow` header; the message names the allowed methods too.
async fn method_not_allowed(method: Method, route: Option<MatchedPath>) -> AppError {
    let allowed: Vec<String> = ROUTES
        .iter()
        .filter(|(_, path)| route.as_ref().is_some_and(|r| r.as_str() == *path))
        .map(|(method, _)| method.to_string())
        .collect();
    let message = if allowed.is_empty() {
        format!("method {method} is not allowed on this route")
    } else {
        format!(
            "method {method} is not allowed on this route; allowed: {}",
            allowed.join(", ")
        )
    };
    AppError(ApiError::new(ErrorCode::MethodNotAllowed, message))
}
