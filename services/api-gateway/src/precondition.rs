//! Conditional requests: the resource's `version` is its strong ETag `"<version>"`, and
//! `If-Match` on a write passes the version the client expects to the service, which refuses
//! the change with 412 `precondition_failed` when the resource has moved on.

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Json, Response};
use metachat_proto::error::{ApiError, ErrorCode};
use serde::Serialize;

use crate::error::AppError;

const IF_MATCH_MESSAGE: &str =
    "must be * or one entity tag holding a version, like \"3\" (the ETag of a GET)";

/// The version an `If-Match` header demands; `None` when absent or `*` (any version).
pub(crate) struct IfMatch(pub Option<u64>);

impl<S: Send + Sync> FromRequestParts<S> for IfMatch {
    type Rejection = AppError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, AppError> {
        let mut values = parts.headers.get_all(header::IF_MATCH).iter();
        let Some(value) = values.next() else {
            return Ok(Self(None));
        };
        if values.next().is_some() {
            return Err(AppError::invalid("If-Match", IF_MATCH_MESSAGE));
        }
        let value = value.to_str().unwrap_or_default().trim();
        parse_if_match(value).map(Self)
    }
}

fn parse_if_match(value: &str) -> Result<Option<u64>, AppError> {
    if value == "*" {
        return Ok(None);
    }
    let (weak, tag) = match value.strip_prefix("W/") {
        Some(tag) => (true, tag),
        None => (false, value),
    };
    // An entity tag is a quoted string without quotes inside (RFC 9110 8.8.3); a list of them
    // is not supported (one write, one expected version).
    let opaque = tag
        .strip_prefix('"')
        .and_then(|t| t.strip_suffix('"'))
        .filter(|t| !t.contains('"'))
        .ok_or_else(|| AppError::invalid("If-Match", IF_MATCH_MESSAGE))?;
    let never_matches = |why: &str| {
        Err(AppError(ApiError::new(
            ErrorCode::PreconditionFailed,
            format!("If-Match: {why}; send the ETag as given"),
        )))
    };
    if weak {
        // If-Match compares strongly (RFC 9110 13.1.1): a weak tag never matches.
        return never_matches("a weak entity tag (W/) never matches");
    }
    // Strong comparison is byte for byte: a well-formed tag that is not how this gateway
    // spells a version (`"01"`, `"-1"`, `""`, one past the largest version) matches nothing.
    match opaque.parse::<u64>() {
        Ok(version) if opaque == version.to_string() && i64::try_from(version).is_ok() => {
            Ok(Some(version))
        }
        _ => never_matches("no version of this resource has that entity tag"),
    }
}

/// The strong ETag of a resource at `version`.
pub(crate) fn etag(version: u64) -> HeaderValue {
    // Digits and quotes are always a valid header value.
    HeaderValue::from_str(&format!("\"{version}\"")).unwrap_or(HeaderValue::from_static("\"0\""))
}

/// `body` as JSON with `status` and the ETag of `version`.
pub(crate) fn tagged<T: Serialize>(status: StatusCode, body: T, version: u64) -> Response {
    let mut response = (status, Json(body)).into_response();
    response.headers_mut().insert(header::ETAG, etag(version));
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn if_match_takes_a_star_or_one_strong_version() {
        assert_eq!(parse_if_match("*").unwrap(), None);
        assert_eq!(parse_if_match("\"7\"").unwrap(), Some(7));
        for malformed in ["7", "\"1\", \"2\"", "", "**", "\"unclosed", "W/7"] {
            let error = parse_if_match(malformed).unwrap_err().0;
            assert_eq!(error.code, ErrorCode::InvalidArgument, "{malformed}");
            assert_eq!(error.details[0].field, "If-Match");
        }
        let weak = parse_if_match("W/\"7\"").unwrap_err().0;
        assert_eq!(weak.code, ErrorCode::PreconditionFailed);
        for other_spelling in [
            "\"07\"",
            "\"052\"",
            "\"00\"",
            "\"\"",
            "\"abc\"",
            "\"-1\"",
            "\"99999999999999999999\"",
            "\"9223372036854775808\"",
        ] {
            let error = parse_if_match(other_spelling).unwrap_err().0;
            assert_eq!(
                error.code,
                ErrorCode::PreconditionFailed,
                "{other_spelling}"
            );
        }
    }

    #[test]
    fn the_etag_is_the_quoted_version() {
        assert_eq!(etag(12), "\"12\"");
        let response = tagged(StatusCode::CREATED, serde_json::json!({}), 1);
        assert_eq!(response.headers()[header::ETAG], "\"1\"");
    }
}
