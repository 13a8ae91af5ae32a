//! Extractors that turn every malformed request into a 4xx naming the offending field or
//! parameter: JSON bodies (via `serde_path_to_error`), query parameters and path segments.

use std::collections::HashMap;
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::{FromRequest, FromRequestParts, RawPathParams, Request};
use axum::http::request::Parts;
use axum::http::{HeaderMap, StatusCode, header};
use metachat_proto::error::{ApiError, ErrorCode, FieldViolation};
use serde::de::{self, DeserializeOwned, Deserializer, MapAccess, Unexpected, Visitor};

use crate::config::DEFAULT_BODY_READ_TIMEOUT;
use crate::error::AppError;
use crate::limits::{
    BODY_LIMIT_BYTES, CURSOR_MAX, PAGE_LIMIT_DEFAULT, PAGE_LIMIT_MAX, TOKEN_COUNT_MAX,
};
use crate::validate::{UUID_MESSAGE, canonical_uuid};

/// How long the body of one request may take to arrive; set by the router from the config.
#[derive(Debug, Clone, Copy)]
pub(crate) struct BodyReadTimeout(pub Duration);

/// A JSON object body, required.
pub(crate) struct JsonBody<T>(pub T);

/// A JSON object body that may be left out entirely (an empty body means `T::default()`).
pub(crate) struct OptionalJsonBody<T>(pub T);

impl<S, T> FromRequest<S> for JsonBody<T>
where
    S: Send + Sync,
    T: DeserializeOwned,
{
    type Rejection = AppError;

    async fn from_request(request: Request, state: &S) -> Result<Self, AppError> {
        match read_body(request, state).await? {
            Some(bytes) => parse_json(&bytes).map(Self),
            None => Err(AppError::invalid(
                "body",
                "a JSON object is required (Content-Type: application/json)",
            )),
        }
    }
}

impl<S, T> FromRequest<S> for OptionalJsonBody<T>
where
    S: Send + Sync,
    T: DeserializeOwned + Default,
{
    type Rejection = AppError;

    async fn from_request(request: Request, state: &S) -> Result<Self, AppError> {
        match read_body(request, state).await? {
            Some(bytes) => parse_json(&bytes).map(Self),
            None => Ok(Self(T::default())),
        }
    }
}

/// The 413 message, with the limit in MiB.
pub(crate) fn too_large_message() -> String {
    format!(
        "the request body is too large (limit {} MiB)",
        BODY_LIMIT_BYTES >> 20
    )
}

/// The body, `None` when empty; a non-empty body must be declared as JSON in UTF-8. A body
/// that does not arrive within the body read timeout is a 408.
async fn read_body<S: Send + Sync>(request: Request, state: &S) -> Result<Option<Bytes>, AppError> {
    let media_type = media_type_problem(request.headers());
    // A body announced as larger than the limit is refused before any of it is read.
    let announced = request
        .headers()
        .get(axum::http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok());
    if announced.is_some_and(|length| length > BODY_LIMIT_BYTES as u64) {
        return Err(AppError(ApiError::new(
            ErrorCode::PayloadTooLarge,
            too_large_message(),
        )));
    }
    let timeout = request
        .extensions()
        .get::<BodyReadTimeout>()
        .map_or(DEFAULT_BODY_READ_TIMEOUT, |t| t.0);
    let read = tokio::time::timeout(timeout, Bytes::from_request(request, state)).await;
    let bytes = match read {
        Ok(Ok(bytes)) => bytes,
        Ok(Err(rejection)) if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE => {
            return Err(AppError(ApiError::new(
                ErrorCode::PayloadTooLarge,
                too_large_message(),
            )));
        }
        Ok(Err(_)) => {
            return Err(AppError::invalid(
                "body",
                "the request body could not be read",
            ));
        }
        Err(_) => {
            return Err(AppError(ApiError::new(
                ErrorCode::RequestTimeout,
                format!(
                    "the request body did not arrive within {} s",
                    timeout.as_secs_f64()
                ),
            )));
        }
    };
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Ok(None);
    }
    match media_type {
        Some(error) => Err(AppError(error)),
        None => Ok(Some(bytes)),
    }
}

/// A 415 unless the Content-Type is JSON (`application/json` or `application/*+json`) with no
/// charset or a UTF-8 one: JSON is UTF-8, and a body in another charset would be misread.
fn media_type_problem(headers: &HeaderMap) -> Option<ApiError> {
    let unsupported = |message: String| {
        let mut error = ApiError::new(
            ErrorCode::UnsupportedMediaType,
            format!("Content-Type: {message}"),
        );
        error.details.push(FieldViolation {
            field: "Content-Type".into(),
            message,
        });
        error
    };
    let value = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    let mut parts = value.split(';');
    let essence = parts.next().unwrap_or_default().trim().to_ascii_lowercase();
    let json = essence == "application/json"
        || (essence.starts_with("application/") && essence.ends_with("+json"));
    if !json {
        return Some(unsupported("must be application/json".to_owned()));
    }
    for parameter in parts {
        let Some((name, charset)) = parameter.split_once('=') else {
            continue;
        };
        if !name.trim().eq_ignore_ascii_case("charset") {
            continue;
        }
        let charset = charset.trim().trim_matches('"');
        if !charset.eq_ignore_ascii_case("utf-8") && !charset.eq_ignore_ascii_case("utf8") {
            let shown: String = charset.chars().take(40).collect();
            return Some(unsupported(format!(
                "charset {shown} is not supported; JSON must be sent as UTF-8"
            )));
        }
    }
    None
}

/// Parses a JSON object into `T`, naming the field of the first problem.
pub(crate) fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, AppError> {
    let first = bytes.iter().find(|b| !b.is_ascii_whitespace());
    if first != Some(&b'{') {
        return Err(AppError::invalid("body", "must be a JSON object"));
    }
    let mut deserializer = serde_json::Deserializer::from_slice(bytes);
    let value = serde_path_to_error::deserialize(&mut deserializer).map_err(json_error)?;
    deserializer.end().map_err(|e| {
        AppError::invalid("body", format!("malformed JSON: {}", without_position(&e)))
    })?;
    Ok(value)
}

fn json_error(error: serde_path_to_error::Error<serde_json::Error>) -> AppError {
    let path = error.path().to_string();
    let inner = error.inner();
    let message = without_position(inner);
    let (field, message) = match inner.classify() {
        serde_json::error::Category::Data => data_error(&path, &message),
        // Syntax errors describe the JSON text, never echo it.
        _ => (
            field_or_body(&path),
            format!(
                "malformed JSON: {message} (line {}, column {})",
                inner.line(),
                inner.column()
            ),
        ),
    };
    AppError::invalid(field, message)
}

/// Field and message for a well-formed document of the wrong shape. serde's messages quote the
/// offending value, which may be diary text: only the expectation is kept.
fn data_error(path: &str, message: &str) -> (String, String) {
    if let Some(name) = quoted_name(message, "unknown field `") {
        let expected = message
            .find("`, expected ")
            .map(|i| format!("; expected {}", &message[i + "`, expected ".len()..]))
            .unwrap_or_default();
        return (
            child(path, &name),
            format!("is not a known field{expected}"),
        );
    }
    if let Some(name) = quoted_name(message, "missing field `") {
        return (child(path, &name), "is required".to_owned());
    }
    if let Some(name) = quoted_name(message, "duplicate field `") {
        return (child(path, &name), "appears more than once".to_owned());
    }
    let expectation = match message.rfind(", expected ") {
        Some(i) => friendly_expectation(&message[i + ", expected ".len()..]),
        None => "has an invalid value".to_owned(),
    };
    (field_or_body(path), expectation)
}

/// The name between the prefix and the next backtick, shortened so an attacker's 1 MiB key is
/// not echoed back.
fn quoted_name(message: &str, prefix: &str) -> Option<String> {
    let rest = message.strip_prefix(prefix)?;
    let end = rest.find("`, ").or_else(|| rest.rfind('`'))?;
    Some(rest[..end].chars().take(100).collect())
}

fn friendly_expectation(expected: &str) -> String {
    // The expectations of the gateway's own deserializers are written for clients already.
    if expected.starts_with("a whole number") {
        return format!("must be {expected}");
    }
    let what = match expected {
        "u32" => "a whole number from 0 to 4294967295",
        "u64" => "a whole number from 0 to 18446744073709551615",
        "f64" | "f32" => "a number",
        "a string" => "a string",
        "a sequence" => "an array",
        "a map" => "an object",
        "a boolean" => "true or false",
        other if other.starts_with("struct ") => "an object",
        _ => return format!("has an invalid value; expected {expected}"),
    };
    format!("must be {what}")
}

/// The path of `name` in the object at `path`; serde_path_to_error already ends the path with
/// an unknown field's name, but not with a missing one's.
fn child(path: &str, name: &str) -> String {
    let path = known_part(path);
    if path.is_empty() {
        name.to_owned()
    } else if path == name || path.ends_with(&format!(".{name}")) {
        path.to_owned()
    } else {
        format!("{path}.{name}")
    }
}

fn field_or_body(path: &str) -> String {
    match known_part(path) {
        "" => "body".to_owned(),
        known => known.to_owned(),
    }
}

/// The path without the root marker `.` and the `?` segments of keys not yet read.
fn known_part(path: &str) -> &str {
    let mut path = path;
    while let Some(parent) = path.strip_suffix(".?") {
        path = parent;
    }
    match path {
        "." | "?" => "",
        known => known,
    }
}

/// serde_json's message without its " at line L column C" suffix.
fn without_position(error: &serde_json::Error) -> String {
    let text = error.to_string();
    match text.rfind(" at line ") {
        Some(i) => text[..i].to_owned(),
        None => text,
    }
}

/// The query string's parameters.
pub(crate) struct QueryParams {
    pairs: Vec<(String, String)>,
    /// Every name a handler looked up, so tests can compare them with the documented ones.
    #[cfg(test)]
    pub(crate) asked: std::cell::RefCell<std::collections::BTreeSet<String>>,
}

impl QueryParams {
    fn new(pairs: Vec<(String, String)>) -> Self {
        Self {
            pairs,
            #[cfg(test)]
            asked: Default::default(),
        }
    }
}

impl<S: Send + Sync> FromRequestParts<S> for QueryParams {
    type Rejection = AppError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, AppError> {
        parse_query(parts.uri.query().unwrap_or_default()).map(Self::new)
    }
}

/// `application/x-www-form-urlencoded` pairs (`+` is a space, `%XX` a byte), each name and value
/// strictly UTF-8 once decoded: a percent-encoded byte sequence that is not UTF-8 is 400 naming
/// the parameter, rather than replaced by U+FFFD.
pub(crate) fn parse_query(query: &str) -> Result<Vec<(String, String)>, AppError> {
    let mut pairs = Vec::new();
    for piece in query.split('&').filter(|p| !p.is_empty()) {
        let (name, value) = piece.split_once('=').unwrap_or((piece, ""));
        let name = form_decode(name)
            .ok_or_else(|| AppError::invalid("query", "is not a valid query string"))?;
        let value = form_decode(value)
            .ok_or_else(|| AppError::invalid(&name, "must be UTF-8 once percent-decoded"))?;
        pairs.push((name, value));
    }
    Ok(pairs)
}

/// One form-encoded component decoded; `None` when it is not UTF-8 once decoded.
fn form_decode(text: &str) -> Option<String> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < bytes.len()
                && hex(bytes[i + 1]).is_some()
                && hex(bytes[i + 2]).is_some() =>
            {
                out.push(hex(bytes[i + 1])? * 16 + hex(bytes[i + 2])?);
                i += 2;
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8(out).ok()
}

fn hex(b: u8) -> Option<u8> {
    (b as char).to_digit(16).map(|d| d as u8)
}

impl QueryParams {
    #[cfg(test)]
    pub(crate) fn from_pairs(pairs: &[(&str, &str)]) -> Self {
        Self::new(
            pairs
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect(),
        )
    }

    /// The parameter's value; `None` when absent or empty. Unknown parameters are ignored.
    pub(crate) fn get(&self, name: &str) -> Result<Option<&str>, AppError> {
        #[cfg(test)]
        self.asked.borrow_mut().insert(name.to_owned());
        let mut values = self.pairs.iter().filter(|(key, _)| key == name);
        let first = values.next();
        if values.next().is_some() {
            return Err(AppError::invalid(name, "must be given at most once"));
        }
        Ok(first
            .map(|(_, value)| value.trim())
            .filter(|value| !value.is_empty()))
    }

    pub(crate) fn required(&self, name: &str) -> Result<&str, AppError> {
        self.get(name)?
            .ok_or_else(|| AppError::invalid(name, "is required"))
    }

    /// A whole number in `min..=max`, `default` when absent.
    pub(crate) fn number(
        &self,
        name: &str,
        default: u32,
        min: u32,
        max: u32,
    ) -> Result<u32, AppError> {
        let Some(value) = self.get(name)? else {
            return Ok(default);
        };
        let message = format!("must be a whole number from {min} to {max}");
        match value.parse::<u32>() {
            Ok(n) if (min..=max).contains(&n) => Ok(n),
            _ => Err(AppError::invalid(name, message)),
        }
    }

    /// `page` (>= 1, default 1), `limit` (1..=[`PAGE_LIMIT_MAX`]) and `cursor` (a previous
    /// page's `nextCursor`; it takes precedence over `page`).
    pub(crate) fn paging(&self) -> Result<(u32, u32, String), AppError> {
        let cursor = self.get("cursor")?.unwrap_or_default();
        if cursor.len() > CURSOR_MAX {
            return Err(AppError::invalid(
                "cursor",
                "is not a cursor this list returned",
            ));
        }
        Ok((
            self.number("page", 1, 1, u32::MAX)?,
            self.number("limit", PAGE_LIMIT_DEFAULT, 1, PAGE_LIMIT_MAX)?,
            cursor.to_owned(),
        ))
    }
}

impl QueryParams {
    /// A required UUID parameter, canonicalised.
    pub(crate) fn uuid(&self, name: &str) -> Result<String, AppError> {
        canonical_uuid(self.required(name)?).ok_or_else(|| AppError::invalid(name, UUID_MESSAGE))
    }
}

/// The route's one path parameter (`id` or `userId`), a canonical UUID (returned lower-case);
/// anything else is a 400 naming the parameter, not a 404 or a 500.
pub(crate) struct PathId(pub String);

impl<S: Send + Sync> FromRequestParts<S> for PathId {
    type Rejection = AppError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, AppError> {
        let params = RawPathParams::from_request_parts(parts, state)
            .await
            .map_err(|_| AppError::invalid("id", "is not a valid path segment"))?;
        let (name, value) = params.iter().next().unwrap_or(("id", ""));
        canonical_uuid(value)
            .map(Self)
            .ok_or_else(|| AppError::invalid(name, UUID_MESSAGE))
    }
}

/// `tokenCount`: a whole number in `0..=TOKEN_COUNT_MAX`, also when written as an integral
/// float (`549.0`: JSON Schema calls that an integer, and some encoders write it so).
pub(crate) fn token_count<'de, D: Deserializer<'de>>(
    deserializer: D,
) -> Result<Option<u32>, D::Error> {
    struct TokenCount;
    const EXPECTED: &str = "a whole number from 0 to 1000000";
    const _: () = assert!(TOKEN_COUNT_MAX == 1_000_000, "update EXPECTED");

    impl<'de> Visitor<'de> for TokenCount {
        type Value = Option<u32>;

        fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
            f.write_str(EXPECTED)
        }

        fn visit_none<E: de::Error>(self) -> Result<Self::Value, E> {
            Ok(None)
        }

        fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
            Ok(None)
        }

        fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
            d.deserialize_any(self)
        }

        fn visit_u64<E: de::Error>(self, n: u64) -> Result<Self::Value, E> {
            match u32::try_from(n) {
                Ok(n) if n <= TOKEN_COUNT_MAX => Ok(Some(n)),
                _ => Err(E::invalid_value(Unexpected::Unsigned(n), &self)),
            }
        }

        fn visit_i64<E: de::Error>(self, n: i64) -> Result<Self::Value, E> {
            match u64::try_from(n) {
                Ok(n) => self.visit_u64(n),
                Err(_) => Err(E::invalid_value(Unexpected::Signed(n), &self)),
            }
        }

        fn visit_f64<E: de::Error>(self, n: f64) -> Result<Self::Value, E> {
            if n.fract() == 0.0 && (0.0..=f64::from(TOKEN_COUNT_MAX)).contains(&n) {
                // Integral and in range, so the conversion is exact.
                Ok(Some(n as u32))
            } else {
                Err(E::invalid_value(Unexpected::Float(n), &self))
            }
        }
    }

    deserializer.deserialize_option(TokenCount)
}

/// A JSON object as a map, refusing a key that appears twice (serde's maps keep the last).
pub(crate) fn unique_map<'de, D: Deserializer<'de>>(
    deserializer: D,
) -> Result<HashMap<String, f64>, D::Error> {
    struct UniqueMap;

    impl<'de> Visitor<'de> for UniqueMap {
        type Value = HashMap<String, f64>;

        fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
            f.write_str("a map")
        }

        fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
            let mut values = HashMap::new();
            while let Some(key) = map.next_key::<String>()? {
                let value = map.next_value::<f64>()?;
                if values.contains_key(&key) {
                    return Err(de::Error::custom(format_args!("duplicate field `{key}`")));
                }
                values.insert(key, value);
            }
            Ok(values)
        }
    }

    deserializer.deserialize_map(UniqueMap)
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    /// Every byte percent-encoded, as a browser may send it.
    fn percent_encoded(text: &str) -> String {
        text.bytes().map(|b| format!("%{b:02X}")).collect()
    }

    proptest! {
        #[test]
        fn any_text_survives_the_query_string(name in "[a-zA-Z]{1,12}", value in any::<String>()) {
            let query = format!("{name}={}", percent_encoded(&value));
            let pairs = parse_query(&query).unwrap();
            prop_assert_eq!(pairs, vec![(name, value)]);
        }

        #[test]
        fn any_query_string_decodes_or_names_what_is_wrong(bytes in proptest::collection::vec(any::<u8>(), 0..60)) {
            // Any ASCII the URI may carry, with percent escapes of any byte.
            let query: String = bytes
                .iter()
                .map(|b| if b.is_ascii_alphanumeric() || b"=&+".contains(b) { (*b as char).to_string() } else { format!("%{b:02X}") })
                .collect();
            match parse_query(&query) {
                // One pair per non-empty piece between `&`s.
                Ok(pairs) => prop_assert_eq!(pairs.len(), query.split('&').filter(|p| !p.is_empty()).count()),
                // Only bytes that are not UTF-8 once decoded are refused, naming what carries them.
                Err(error) => prop_assert!(!error.0.details.is_empty() && error.0.message.contains("UTF-8") || error.0.message.contains("query")),
            }
        }

        #[test]
        fn token_counts_are_exactly_the_whole_numbers_in_range(n in -10_000_000i64..10_000_000, fraction in any::<bool>()) {
            let text = if fraction { format!("{n}.5") } else { format!("{n}.0") };
            let parsed = parse_json::<crate::diary::UpdateEntryBody>(format!(r#"{{"tokenCount": {text}}}"#).as_bytes());
            let valid = !fraction && (0..=1_000_000).contains(&n);
            prop_assert_eq!(parsed.is_ok(), valid, "{}", text);
        }
    }

    #[test]
    fn query_strings_decode_strictly() {
        let pairs = parse_query("q=caf%C3%A9+au+lait&a=%2B1&&b&c=").unwrap();
        let expected = [("q", "café au lait"), ("a", "+1"), ("b", ""), ("c", "")];
        assert_eq!(
            pairs,
            expected.map(|(k, v)| (k.to_owned(), v.to_owned())).to_vec()
        );
        // A lone or short percent sign stays as written.
        assert_eq!(parse_query("q=100%&r=%4").unwrap()[0].1, "100%");
        for bad in ["q=%FF%FE", "q=dad%E2%82", "q=%ED%A0%80", "q=%C0%AF"] {
            let error = parse_query(bad).unwrap_err().0;
            assert_eq!(error.details[0].field, "q", "{bad}");
        }
        assert_eq!(
            parse_query("%FF=1").unwrap_err().0.details[0].field,
            "query"
        );
    }

    use serde::Deserialize;

    use super::*;

    #[derive(Debug, Deserialize)]
    #[serde(rename_all = "camelCase", deny_unknown_fields)]
    #[allow(dead_code)]
    struct Probe {
        first_name: String,
        token_count: Option<u32>,
        confidence: Option<f64>,
        tags: Option<Vec<String>>,
        modalities: Option<std::collections::HashMap<String, f64>>,
    }

    fn violation(body: &str) -> (String, String) {
        let error = parse_json::<Probe>(body.as_bytes()).unwrap_err().0;
        assert_eq!(error.code, ErrorCode::InvalidArgument);
        assert_eq!(error.details.len(), 1, "{error:?}");
        (
            error.details[0].field.clone(),
            error.details[0].message.clone(),
        )
    }

    #[test]
    fn malformed_json_names_where_it_broke() {
        let (field, message) = violation(r#"{"firstName": "a", "tokenCount": }"#);
        assert_eq!(field, "tokenCount");
        assert!(message.starts_with("malformed JSON"), "{message}");
        assert_eq!(violation(r#"{"firstName": "a""#).0, "body");
        assert_eq!(violation(r#"{"firstName": "a"} trailing"#).0, "body");
        assert_eq!(violation("[1, 2]").0, "body");
        assert_eq!(violation("\"just a string\"").0, "body");
    }

    #[test]
    fn wrong_types_name_the_field_without_echoing_the_value() {
        let (field, message) =
            violation(r#"{"firstName": "a", "tokenCount": "my secret diary words"}"#);
        assert_eq!(field, "tokenCount");
        assert!(message.contains("whole number"), "{message}");
        assert!(!message.contains("secret"), "{message}");
        assert_eq!(
            violation(r#"{"firstName": 5}"#),
            ("firstName".into(), "must be a string".into())
        );
        assert_eq!(violation(r#"{"firstName": null}"#).0, "firstName");
        assert_eq!(
            violation(r#"{"firstName": "a", "tokenCount": -1}"#).0,
            "tokenCount"
        );
        assert_eq!(
            violation(r#"{"firstName": "a", "tokenCount": 1.5}"#).0,
            "tokenCount"
        );
        assert_eq!(
            violation(r#"{"firstName": "a", "tags": ["x", 3]}"#).0,
            "tags[1]"
        );
        assert_eq!(
            violation(r#"{"firstName": "a", "modalities": {"visual": "high"}}"#).0,
            "modalities.visual"
        );
        assert_eq!(
            violation(r#"{"firstName": "a", "confidence": "0.5"}"#),
            ("confidence".into(), "must be a number".into())
        );
    }

    #[test]
    fn missing_and_unknown_fields_are_named() {
        assert_eq!(violation("{}"), ("firstName".into(), "is required".into()));
        let (field, message) = violation(r#"{"firstName": "a", "first_name": "b"}"#);
        assert_eq!(field, "first_name");
        assert!(
            message.starts_with("is not a known field; expected"),
            "{message}"
        );
        assert_eq!(
            violation(r#"{"firstName": "a", "firstName": "b"}"#).0,
            "firstName"
        );
    }

    #[test]
    fn a_valid_body_parses() {
        let probe: Probe =
            parse_json(br#" {"firstName": "a", "tokenCount": 7, "tags": []} "#).unwrap();
        assert_eq!(probe.token_count, Some(7));
        assert_eq!(probe.tags, Some(vec![]));
    }

    #[test]
    fn query_numbers_name_the_parameter() {
        let q = QueryParams::from_pairs(&[("page", "2"), ("limit", "")]);
        assert_eq!(q.paging().unwrap(), (2, 10, String::new()));
        for bad in [
            ("limit", "0"),
            ("limit", "101"),
            ("limit", "ten"),
            ("page", "0"),
            ("page", "-1"),
        ] {
            let error = QueryParams::from_pairs(&[bad]).paging().unwrap_err().0;
            assert_eq!(error.details[0].field, bad.0, "{bad:?}");
        }
        let twice = QueryParams::from_pairs(&[("page", "1"), ("page", "2")]);
        assert_eq!(twice.paging().unwrap_err().0.details[0].field, "page");
        let long = "c".repeat(2000);
        let cursor = QueryParams::from_pairs(&[("cursor", long.as_str())]);
        assert_eq!(cursor.paging().unwrap_err().0.details[0].field, "cursor");
        assert_eq!(
            QueryParams::from_pairs(&[])
                .required("userId")
                .unwrap_err()
                .0
                .details[0]
                .field,
            "userId"
        );
    }
}
