//! The OpenAPI document at `/openapi.json` (generated, see [`crate::openapi`]) and the
//! interactive reference at `/docs`: Swagger UI, vendored in `vendor/swagger-ui` and served by
//! the gateway itself, so it works offline.

use axum::extract::Path;
use axum::http::{HeaderValue, header};
use axum::response::{Html, IntoResponse, Response};
use metachat_proto::error::ApiError;

use crate::error::AppError;
use crate::openapi::{Limits, NotFound, OPENAPI_JSON};

/// The documentation page, loading Swagger UI from `/docs/{file}`.
pub const DOCS_HTML: &str = include_str!("../docs.html");

/// The files of the page: `(name, content type, content)`.
const ASSETS: [(&str, &str, &[u8]); 3] = [
    (
        "swagger-ui-bundle.js",
        "text/javascript; charset=utf-8",
        include_bytes!("../vendor/swagger-ui/swagger-ui-bundle.js"),
    ),
    (
        "swagger-ui.css",
        "text/css; charset=utf-8",
        include_bytes!("../vendor/swagger-ui/swagger-ui.css"),
    ),
    (
        "swagger-initializer.js",
        "text/javascript; charset=utf-8",
        include_bytes!("../swagger-initializer.js"),
    ),
];

/// Everything the page loads comes from the gateway (Swagger UI styles elements inline and
/// draws icons from data: URIs).
const CONTENT_SECURITY_POLICY: &str = "default-src 'self'; script-src 'self'; \
     style-src 'self' 'unsafe-inline'; img-src 'self' data:; connect-src 'self'; \
     frame-ancestors 'none'";

/// This OpenAPI document
///
/// The OpenAPI 3.1 description of every route, generated from the gateway's types.
#[utoipa::path(get, path = "/openapi.json", tag = "Operations", operation_id = "openapi",
    responses((status = 200, description = "The document.", content_type = "application/json",
        body = Object), Limits))]
pub(crate) async fn openapi() -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "application/json")],
        OPENAPI_JSON.as_str(),
    )
}

/// API documentation page
///
/// Swagger UI (vendored, served by the gateway: works offline) rendering this document;
/// "Try it out" sends requests to this gateway.
#[utoipa::path(get, path = "/docs", tag = "Operations", operation_id = "docs",
    responses((status = 200, description = "The page.", content_type = "text/html",
        body = String), Limits))]
pub(crate) async fn docs() -> Response {
    let mut response = Html(DOCS_HTML).into_response();
    response.headers_mut().insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CONTENT_SECURITY_POLICY),
    );
    // The page runs with the web app's cookies: it is not to be framed or sniffed.
    response.headers_mut().insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    response
}

/// A file of the documentation page
///
/// `swagger-ui-bundle.js`, `swagger-ui.css` or `swagger-initializer.js`.
#[utoipa::path(get, path = "/docs/{file}", tag = "Operations", operation_id = "docsAsset",
    params(("file" = String, Path, description = "The file's name.")),
    responses(
        (status = 200, description = "The file.", content(
            (String = "text/javascript"), (String = "text/css"))),
        NotFound, Limits))]
pub(crate) async fn asset(Path(file): Path<String>) -> Result<Response, AppError> {
    let (_, content_type, content) = ASSETS
        .iter()
        .find(|(name, _, _)| *name == file)
        .ok_or_else(|| ApiError::not_found("no such documentation file"))?;
    Ok((
        [
            (header::CONTENT_TYPE, *content_type),
            (header::CACHE_CONTROL, "public, max-age=3600"),
        ],
        *content,
    )
        .into_response())
}
