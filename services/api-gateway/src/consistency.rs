//! Read-your-writes over HTTP. Every write answers with `X-Consistency-Token: <id>:<version>`
//! (the written resource and its version now); a list or analytics request that sends it back
//! is answered only once the read models reflect that write (the service waits, bounded, and
//! answers 503 `unavailable` with `Retry-After` when they have not caught up in time).

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{HeaderName, HeaderValue};
use axum::response::Response;
use metachat_validation::ConsistencyToken;

use crate::error::AppError;

/// The header, as written in the API's documentation (header names are case-insensitive).
pub(crate) const HEADER_NAME: &str = "X-Consistency-Token";

static HEADER: HeaderName = HeaderName::from_static("x-consistency-token");

/// The token a list request waits for, canonical (`<lower-case UUID>:<version>`); empty when
/// the request sent none, which is also how the gRPC field says "no wait".
pub(crate) struct ReadAfter(pub String);

impl<S: Send + Sync> FromRequestParts<S> for ReadAfter {
    type Rejection = AppError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, AppError> {
        let mut values = parts.headers.get_all(&HEADER).iter();
        let Some(value) = values.next() else {
            return Ok(Self(String::new()));
        };
        if values.next().is_some() {
            return Err(AppError::invalid(
                HEADER_NAME,
                "must be sent once: a list waits for one write",
            ));
        }
        parse(value.to_str().unwrap_or_default().trim()).map(Self)
    }
}

fn parse(value: &str) -> Result<String, AppError> {
    match ConsistencyToken::parse_optional(HEADER_NAME, value) {
        Ok(Some(token)) => Ok(token.to_string()),
        // An empty header is a mistake, not a way to ask for no wait.
        Ok(None) => Err(AppError::invalid(
            HEADER_NAME,
            metachat_validation::consistency::TOKEN_FORMAT_MESSAGE,
        )),
        Err(violations) => Err(AppError(violations.into())),
    }
}

/// `response` with the token of the write it answers: resource `id` now at `version`.
pub(crate) fn with_token(mut response: Response, id: &str, version: u64) -> Response {
    // A canonical UUID, a colon and digits are always a valid header value.
    if let Ok(value) = HeaderValue::from_str(&format!("{id}:{version}")) {
        response.headers_mut().insert(HEADER.clone(), value);
    }
    response
}

#[cfg(test)]
mod tests {
    use axum::http::StatusCode;
    use axum::response::IntoResponse;
    use metachat_proto::error::ErrorCode;

    use super::*;

    const ID: &str = "6f1c1a4e-4a0b-4c53-9e7e-8d8f3f7f2f10";

    #[test]
    fn a_token_is_forwarded_canonically() {
        assert_eq!(parse(&format!("{ID}:7")).unwrap(), format!("{ID}:7"));
        assert_eq!(
            parse(&format!("{}:7", ID.to_uppercase())).unwrap(),
            format!("{ID}:7")
        );
    }

    #[test]
    fn a_malformed_token_names_the_header() {
        for bad in ["", "7", ID, &format!("{ID}:0"), &format!("{ID}:x"), "a:b:c"] {
            let error = parse(bad).unwrap_err().0;
            assert_eq!(error.code, ErrorCode::InvalidArgument, "{bad}");
            assert_eq!(error.details[0].field, HEADER_NAME, "{bad}");
        }
    }

    #[test]
    fn a_write_carries_its_token() {
        let response = with_token(StatusCode::OK.into_response(), ID, 3);
        assert_eq!(response.headers()[HEADER_NAME], format!("{ID}:3").as_str());
    }
}
