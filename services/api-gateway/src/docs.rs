//! The OpenAPI document and a browsable, self-contained page that renders it (no external
//! resources: it works offline).

use axum::http::header;
use axum::response::{Html, IntoResponse, Redirect};

/// The hand-written OpenAPI 3.1 document of every route.
pub const OPENAPI_JSON: &str = include_str!("../openapi.json");

/// The documentation page: inline CSS and JavaScript that fetch and render `/openapi.json`.
pub const DOCS_HTML: &str = include_str!("../docs.html");

pub(crate) async fn openapi() -> impl IntoResponse {
    ([(header::CONTENT_TYPE, "application/json")], OPENAPI_JSON)
}

pub(crate) async fn docs() -> Html<&'static str> {
    Html(DOCS_HTML)
}

pub(crate) async fn root() -> Redirect {
    Redirect::temporary("/docs")
}
