//! The OpenAPI document, generated from the handlers' `#[utoipa::path]` attributes and the
//! request and response types, with the limits and the error table filled in from the
//! constants the code enforces. Built once, on first use.

use std::collections::BTreeMap;
use std::sync::LazyLock;

use metachat_proto::error::ErrorCode;
use utoipa::openapi::header::HeaderBuilder;
use utoipa::openapi::response::ResponseBuilder;
use utoipa::openapi::schema::{AdditionalProperties, ObjectBuilder, Schema, Type};
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityRequirement, SecurityScheme};
use utoipa::openapi::{Ref, RefOr, Response, ServerBuilder};

use crate::auth::Access;
use utoipa::{IntoResponses, Modify, OpenApi};

use crate::config::{
    DEFAULT_BODY_READ_TIMEOUT, DEFAULT_HEADER_READ_TIMEOUT, DEFAULT_REQUEST_TIMEOUT,
};
use crate::grpc::REQUEST_ID;
use crate::limits::*;
use crate::{diary, docs, export, health, metrics, signin, users, web};

/// The document as served at `/openapi.json`.
pub(crate) static OPENAPI_JSON: LazyLock<String> = LazyLock::new(|| {
    // Serialising a tree of strings, numbers and maps cannot fail.
    serde_json::to_string(&ApiDoc::openapi()).unwrap_or_default()
});

#[derive(OpenApi)]
#[openapi(
    info(title = "MetaChat API"),
    paths(
        web::index,
        web::asset,
        docs::docs,
        docs::asset,
        docs::openapi,
        health::live,
        health::ready,
        metrics::metrics,
        users::create_user,
        users::list_users,
        users::get_user,
        users::update_user,
        users::erase_user,
        users::assign_archetype,
        users::update_archetype,
        users::update_modalities,
        users::user_history,
        users::get_analysis_setting,
        users::set_analysis_setting,
        users::list_archetypes,
        export::export_json,
        export::export_markdown,
        diary::create_entry,
        diary::get_entry,
        diary::update_entry,
        diary::delete_entry,
        diary::entry_history,
        diary::list_entries,
        diary::start_session,
        diary::get_session,
        diary::end_session,
        diary::session_history,
        diary::list_sessions,
        diary::analytics,
        diary::search,
        diary::related_entries,
        signin::sign_in,
        signin::refresh,
        signin::sign_out,
        signin::change_password,
        web::sign_in,
        web::session,
        web::refresh,
        web::sign_out,
    ),
    components(schemas(crate::error::Envelope)),
    tags(
        (name = "Users", description = "Profiles, archetypes and sensory modalities (user service)."),
        (name = "Diary entries", description = "Diary entries (diary service)."),
        (name = "Diary sessions", description = "Writing sessions (diary service)."),
        (name = "Analytics", description = "Statistics over a user's diary (diary service)."),
        (name = "Authentication", description = "Signing in with a password for tokens the platform issues; refreshing them; signing out."),
        (name = "Search", description = "Search by meaning and related entries, with a sentence-embedding model run by the diary service."),
        (name = "History", description = "Event-sourced audit history of each resource."),
        (name = "Web app", description = "The app for writers served at `/`, and its sign-in by cookies (`__Host-` cookies, `SameSite=Strict`; requests that change something with the cookie send `X-CSRF-Token`)."),
        (name = "Operations", description = "Health probes and documentation."),
    ),
    modifiers(&Finish),
)]
struct ApiDoc;

/// What the attributes cannot say: the description with its numbers, the server, the
/// headers every response carries, and closed response objects.
struct Finish;

impl Modify for Finish {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        openapi.info.description = Some(description());
        openapi.info.version = env!("CARGO_PKG_VERSION").to_owned();
        openapi.info.license = None;
        openapi.servers = Some(vec![
            ServerBuilder::new()
                .url("/")
                .description(Some("This gateway"))
                .build(),
        ]);
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            BEARER,
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("JWT")
                    .description(Some(
                        "An access token: from `POST /auth/token` (tokens the platform issues \
                         with `AUTH_TOKEN_SECRET`), or from the identity provider that \
                         `AUTH_JWKS_URL` names. Its subject is the caller's user id. Without \
                         authentication configured (loopback only), no token is needed.",
                    ))
                    .build(),
            ),
        );
        let accesses = crate::accesses();
        for (path, item) in openapi.paths.paths.iter_mut() {
            let operations = [
                (&mut item.get, false, "GET"),
                (&mut item.put, true, "PUT"),
                (&mut item.post, true, "POST"),
                (&mut item.delete, true, "DELETE"),
                (&mut item.patch, true, "PATCH"),
                (&mut item.head, false, "HEAD"),
                (&mut item.options, false, "OPTIONS"),
                (&mut item.trace, false, "TRACE"),
            ];
            for (operation, writes, method) in operations {
                let Some(operation) = operation.as_mut() else {
                    continue;
                };
                let access = accesses
                    .iter()
                    .find(|(m, p, _)| m.as_str() == method && p == path)
                    .map(|(_, _, a)| *a);
                secure(operation, access, path.starts_with("/health/"));
                if method == "POST" {
                    idempotent(operation);
                }
                if let Some(RefOr::T(body)) = operation.request_body.as_mut() {
                    optional_not_null(body);
                }
                for (status, response) in operation.responses.responses.iter_mut() {
                    if let RefOr::T(response) = response {
                        add_headers(status, response, writes);
                    }
                }
            }
        }
        // Every object the gateway writes has exactly the properties of its type; request
        // bodies already say so (serde's deny_unknown_fields).
        if let Some(components) = openapi.components.as_mut() {
            for schema in components.schemas.values_mut() {
                if let RefOr::T(Schema::Object(object)) = schema
                    && !object.properties.is_empty()
                    && object.additional_properties.is_none()
                {
                    object.additional_properties =
                        Some(Box::new(AdditionalProperties::FreeForm(false)));
                }
            }
        }
    }
}

/// A `Retry-After` response header: whole seconds, at least 1.
fn retry_after(description: &str) -> utoipa::openapi::header::Header {
    HeaderBuilder::new()
        .schema(Some(
            ObjectBuilder::new()
                .schema_type(Type::Integer)
                .minimum(Some(1)),
        ))
        .description(Some(description))
        .build()
}

/// The `Idempotency-Key` header a POST accepts.
fn idempotent(operation: &mut utoipa::openapi::path::Operation) {
    let parameter = utoipa::openapi::path::ParameterBuilder::new()
        .name("Idempotency-Key")
        .parameter_in(utoipa::openapi::path::ParameterIn::Header)
        .required(utoipa::openapi::Required::False)
        .description(Some(
            "Any string of 1 to 255 visible ASCII characters the client chooses for this \
             request. A retry with the same key and the same body (after a lost answer) gets \
             the resource the first attempt created (a user, an entry, a session), not a second \
             one nor a 409. Other POSTs accept it and act as without it.",
        ))
        .schema(Some(
            ObjectBuilder::new()
                .schema_type(Type::String)
                .min_length(Some(1))
                .max_length(Some(crate::request_id::IDEMPOTENCY_KEY_MAX))
                .pattern(Some("^[!-~]+$")),
        ))
        .build();
    operation
        .parameters
        .get_or_insert_with(Vec::new)
        .push(RefOr::T(parameter));
}

/// The name of the bearer-token security scheme.
const BEARER: &str = "bearerAuth";

/// Says who may call an operation: a bearer token where the route wants one (with 401, and
/// 403 where it checks an owner or a role), optional where it does not.
fn secure(operation: &mut utoipa::openapi::path::Operation, access: Option<Access>, probe: bool) {
    let bearer = || SecurityRequirement::new(BEARER, Vec::<String>::new());
    let (security, forbidden) = match access {
        None | Some(Access::Public) => (vec![SecurityRequirement::default()], false),
        Some(Access::Registration) => (vec![SecurityRequirement::default(), bearer()], true),
        Some(Access::Authenticated) => (vec![bearer()], true),
        Some(Access::OwnerInPath(_) | Access::OwnerInQuery | Access::Admin) => {
            (vec![bearer()], true)
        }
    };
    let needs_token = security
        .iter()
        .all(|s| *s != SecurityRequirement::default());
    operation.security = Some(security);
    let responses = &mut operation.responses.responses;
    if needs_token {
        let (status, response) = error_response(401);
        responses.entry(status).or_insert(response);
    }
    if forbidden {
        let (status, response) = error_response(403);
        responses.entry(status).or_insert(response);
    }
    // Rate limits (with authentication on) spare only the probes.
    if !probe {
        let (status, response) = error_response(429);
        responses.entry(status).or_insert(response);
    }
}

/// An `Option<Body>` request body (`OptionalJsonBody`) may be left out, but is not `null`:
/// its schema is the body's, and it is not required.
fn optional_not_null(body: &mut utoipa::openapi::request_body::RequestBody) {
    for content in body.content.values_mut() {
        let RefOr::T(content) = content else { continue };
        if let Some(RefOr::T(Schema::OneOf(one_of))) = &content.schema {
            let reference = one_of
                .items
                .iter()
                .find(|item| matches!(item, RefOr::Ref(_)))
                .cloned();
            if let Some(reference) = reference {
                content.schema = Some(reference);
                body.required = Some(utoipa::openapi::Required::False);
            }
        }
    }
}

/// `x-request-id` on every response (the request-id middleware sets it); `Location` on a
/// 201; `ETag` on the answers that carry a user, entry or session (`precondition::tagged`);
/// `X-Consistency-Token` on the successful answers of writes.
fn add_headers(status: &str, response: &mut Response, write: bool) {
    use crate::schema::CONSISTENCY_TOKEN_PATTERN;
    let header = |description: &str, schema: ObjectBuilder| {
        RefOr::T(
            HeaderBuilder::new()
                .schema(Some(schema))
                .description(Some(description))
                .build(),
        )
    };
    let string = || ObjectBuilder::new().schema_type(Type::String);
    response.headers.insert(
        REQUEST_ID.to_owned(),
        header(
            &format!(
                "The request id: the client's `x-request-id` when it sent a usable one \
                 (1..{REQUEST_ID_MAX} visible ASCII characters), else a generated UUID."
            ),
            string(),
        ),
    );
    if status == "201" {
        response.headers.insert(
            "Location".to_owned(),
            header("Path of the created resource.", string()),
        );
    }
    let tagged = ["User", "Entry", "Session", "DeletedEntry"]
        .map(|name| Ref::from_schema_name(name).ref_location);
    let carries_tagged = response.content.values().any(|content| {
        matches!(content, RefOr::T(content)
            if matches!(&content.schema, Some(RefOr::Ref(r)) if tagged.contains(&r.ref_location)))
    });
    let deleted = Ref::from_schema_name("DeletedEntry").ref_location;
    let carries_deleted = response.content.values().any(|content| {
        matches!(content, RefOr::T(content)
            if matches!(&content.schema, Some(RefOr::Ref(r)) if r.ref_location == deleted))
    });
    if write && status.starts_with('2') && (carries_tagged || carries_deleted) {
        response.headers.insert(
            crate::consistency::HEADER_NAME.to_owned(),
            header(
                "The write's consistency token, `<id>:<version>`: send it as \
                 `X-Consistency-Token` on a list or analytics read to see this write in it.",
                string().pattern(Some(CONSISTENCY_TOKEN_PATTERN)),
            ),
        );
    }
    if carries_tagged {
        response.headers.insert(
            "ETag".to_owned(),
            header(
                "The resource's version as a strong entity tag, e.g. `\"3\"`; send it back in \
                 `If-Match`.",
                string().pattern(Some("^\"[0-9]+\"$")),
            ),
        );
    }
}

/// What each code means to a client, for the table in the description and the error
/// responses. An exhaustive match: a new code needs its sentence.
fn meaning(code: ErrorCode) -> String {
    match code {
        ErrorCode::InvalidArgument => {
            "malformed JSON, wrong type, missing, unknown or invalid field or parameter".into()
        }
        ErrorCode::NotFound => "no such resource (or deleted), or no such route".into(),
        ErrorCode::AlreadyExists => "username or e-mail already taken".into(),
        ErrorCode::Conflict => "a concurrent change won; retry with fresh state".into(),
        ErrorCode::FailedPrecondition => "the resource's state forbids the operation (archetype \
             already assigned, session already ended, ...)"
            .into(),
        ErrorCode::PreconditionFailed => {
            "`If-Match` names a version the resource no longer has (or a weak tag)".into()
        }
        ErrorCode::RequestTimeout => format!(
            "the body did not arrive within {} s",
            DEFAULT_BODY_READ_TIMEOUT.as_secs()
        ),
        ErrorCode::PayloadTooLarge => format!("body larger than {} MiB", BODY_LIMIT_BYTES >> 20),
        ErrorCode::UriTooLong => {
            format!("path and query longer than {} KiB", MAX_URI_BYTES >> 10)
        }
        ErrorCode::RequestHeaderFieldsTooLarge => format!(
            "more than {MAX_HEADERS} header fields, or more than {} KiB of them",
            MAX_HEADER_BYTES >> 10
        ),
        ErrorCode::UnsupportedMediaType => "a body not sent as `Content-Type: application/json`, \
             or with a charset other than UTF-8"
            .into(),
        ErrorCode::MethodNotAllowed => "the route exists, not with this method".into(),
        ErrorCode::Unauthenticated => "reserved for authentication".into(),
        ErrorCode::PermissionDenied => "reserved for authorisation".into(),
        ErrorCode::Unavailable => "a backend service is down; when the request changed nothing, \
             retry after `Retry-After` seconds"
            .into(),
        ErrorCode::DeadlineExceeded => format!(
            "a backend service did not answer in time ({} s by default)",
            DEFAULT_REQUEST_TIMEOUT.as_secs()
        ),
        ErrorCode::Internal => "a bug; never caused by client input".into(),
        ErrorCode::TooManyRequests => {
            "more requests than the caller's rate allows (per user, or per address without a \
             token; sign-ins per address): retry after `Retry-After` seconds"
                .into()
        }
    }
}

fn error_table() -> String {
    let mut table = "| code | HTTP status | meaning |\n| --- | --- | --- |\n".to_owned();
    for code in ErrorCode::ALL {
        table.push_str(&format!(
            "| {} | {} | {} |\n",
            code.as_str(),
            code.http_status().as_u16(),
            meaning(code)
        ));
    }
    table
}

/// `1234567` as `1,234,567`.
fn thousands(n: usize) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, digit) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(digit);
    }
    out
}

fn listed(values: &[&str]) -> String {
    let quoted: Vec<String> = values.iter().map(|v| format!("`{v}`")).collect();
    quoted.join(", ")
}

/// `openapi.md` with its `{{NAME}}` placeholders filled in.
pub(crate) fn description() -> String {
    let values: [(&str, String); 28] = [
        ("BODY_LIMIT_MIB", (BODY_LIMIT_BYTES >> 20).to_string()),
        (
            "LARGEST_VALID_BODY_MB",
            format!("{:.1}", LARGEST_VALID_BODY as f64 / 1e6),
        ),
        ("AVATAR_MAX", thousands(AVATAR_MAX)),
        ("BIO_MAX", thousands(BIO_MAX)),
        ("NAME_MAX", thousands(NAME_MAX)),
        ("PAGE_LIMIT_MAX", PAGE_LIMIT_MAX.to_string()),
        ("PAGE_LIMIT_DEFAULT", PAGE_LIMIT_DEFAULT.to_string()),
        ("REQUEST_ID_MAX", REQUEST_ID_MAX.to_string()),
        ("ERROR_TABLE", error_table()),
        (
            "HEADER_READ_TIMEOUT_S",
            DEFAULT_HEADER_READ_TIMEOUT.as_secs().to_string(),
        ),
        ("USERNAME_MIN", USERNAME_MIN.to_string()),
        ("USERNAME_MAX", USERNAME_MAX.to_string()),
        ("EMAIL_MAX", EMAIL_MAX.to_string()),
        ("ARCHETYPE_ID_MAX", ARCHETYPE_ID_MAX.to_string()),
        ("ARCHETYPE_NAME_MAX", ARCHETYPE_NAME_MAX.to_string()),
        ("DESCRIPTION_MAX", thousands(DESCRIPTION_MAX)),
        ("TITLE_MAX", TITLE_MAX.to_string()),
        ("CONTENT_MAX", thousands(CONTENT_MAX)),
        ("TOKEN_COUNT_MAX", thousands(TOKEN_COUNT_MAX as usize)),
        ("TAGS_MAX", TAGS_MAX.to_string()),
        ("TAG_MAX", TAG_MAX.to_string()),
        ("MODALITIES", listed(&MODALITIES)),
        ("PERIODS", listed(&PERIODS)),
        ("DEFAULT_PERIOD", DEFAULT_PERIOD.to_owned()),
        ("MAX_HEADERS", MAX_HEADERS.to_string()),
        ("MAX_HEADER_KIB", (MAX_HEADER_BYTES >> 10).to_string()),
        ("MAX_URI_KIB", (MAX_URI_BYTES >> 10).to_string()),
        ("CURSOR_MAX", CURSOR_MAX.to_string()),
    ];
    let mut text = include_str!("openapi.md").trim_end().to_owned();
    for (name, value) in values {
        text = text.replace(&format!("{{{{{name}}}}}"), &value);
    }
    text
}

/// An error answer: the envelope, described by the codes of the table with this status.
fn error_response(status: u16) -> (String, RefOr<Response>) {
    let codes: Vec<String> = ErrorCode::ALL
        .into_iter()
        .filter(|code| code.http_status().as_u16() == status)
        .map(|code| format!("`{}`: {}", code.as_str(), meaning(code)))
        .collect();
    let example = ErrorCode::ALL
        .into_iter()
        .find(|code| code.http_status().as_u16() == status)
        .map(|code| {
            serde_json::json!({
                "error": {"code": code.as_str(), "message": meaning(code), "details": []},
                "requestId": "5f0c6a8e-1c2b-4d0e-9a51-0b4c1f6f2d7e"
            })
        });
    let mut response = ResponseBuilder::new()
        .description(codes.join("; ") + ".")
        .content(
            "application/json",
            utoipa::openapi::ContentBuilder::new()
                .schema(Some(Ref::from_schema_name("Error")))
                .example(example)
                .build(),
        );
    if status == ErrorCode::TooManyRequests.http_status().as_u16() {
        response = response.header(
            "Retry-After",
            retry_after("Seconds until the caller's allowance holds a request again (rounded up)."),
        );
    }
    if status == ErrorCode::Unavailable.http_status().as_u16() {
        response = response.header(
            "Retry-After",
            retry_after(
                "Seconds to wait before retrying; sent only when the request changed \
                     nothing (a write whose outcome is unknown has none).",
            ),
        );
    }
    (status.to_string(), response.build().into())
}

macro_rules! error_responses {
    ($($(#[doc = $doc:literal])+ $name:ident = [$($status:literal),+];)+) => {$(
        $(#[doc = $doc])+
        pub(crate) struct $name;

        impl IntoResponses for $name {
            fn responses() -> BTreeMap<String, RefOr<Response>> {
                [$($status),+].into_iter().map(error_response).collect()
            }
        }
    )+};
}

error_responses! {
    /// A path id, query parameter or body field is invalid, or the service refuses a value.
    BadRequest = [400];
    /// The resource (or one a body names) does not exist.
    NotFound = [404];
    /// The resource's state or a concurrent change refuses the write.
    Conflict = [409];
    /// `If-Match` does not match.
    PreconditionFailed = [412];
    /// Reading a JSON body: too slow, too large, not JSON.
    BodyErrors = [408, 413, 415];
    /// The request-id middleware's limits, on every route.
    Limits = [414, 431];
    /// The service behind the route is down or slow.
    Backend = [503, 504];
}

/// The document cannot drift from the code: it is generated, and these check what the
/// generation cannot see by itself (serde's field names, the parsers' query parameters, the
/// limits) and that the result is a well-formed OpenAPI 3.1 document.
#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use serde::de::DeserializeOwned;
    use serde_json::Value;

    use super::*;
    use crate::convert::*;
    use crate::extract::{QueryParams, parse_json};

    #[test]
    fn consistency_tokens_are_documented_on_writes_and_list_reads() {
        let doc = doc();
        let pattern = crate::schema::CONSISTENCY_TOKEN_PATTERN;
        let mut reads = BTreeSet::new();
        let mut writes = 0;
        for (path, item) in doc["paths"].as_object().expect("paths") {
            for (method, operation) in item.as_object().expect("operation") {
                for parameter in operation["parameters"].as_array().into_iter().flatten() {
                    if parameter["name"] == "X-Consistency-Token" {
                        assert_eq!(parameter["in"], "header");
                        assert_eq!(parameter["schema"]["pattern"], pattern);
                        reads.insert(format!("{method} {path}"));
                    }
                }
                for (status, response) in operation["responses"].as_object().expect("responses") {
                    let header = &response["headers"]["X-Consistency-Token"];
                    // The analysis setting's stream is not one a list waits on; signing in
                    // writes no resource a list shows; an erased user is in no list.
                    let erasure = method == "delete" && path == "/users/{id}";
                    let tokened = path != "/health/ready"
                        && !erasure
                        && path != "/users/{id}/analysis"
                        && path != "/users/{id}/password"
                        && !path.starts_with("/auth/");
                    if method != "get" && status.starts_with('2') && tokened {
                        assert_eq!(header["schema"]["pattern"], pattern, "{method} {path}");
                        writes += 1;
                    } else {
                        assert!(header.is_null(), "{method} {path} {status}");
                    }
                }
            }
        }
        assert_eq!(
            reads.into_iter().collect::<Vec<_>>(),
            [
                "get /diary/analytics",
                "get /diary/entries/user/{userId}",
                "get /diary/sessions/user/{userId}",
                "get /users",
            ]
        );
        assert_eq!(writes, 10, "every write route answers its token");
        // The token a write answers is one a read accepts.
        let token = format!("{}:3", uuid::Uuid::new_v4());
        let accepted = metachat_validation::ConsistencyToken::parse_optional("t", &token);
        assert!(matches!(accepted, Ok(Some(_))));
    }

    fn doc() -> Value {
        serde_json::from_str(&OPENAPI_JSON).expect("the document is JSON")
    }

    fn schema(name: &str) -> Value {
        let schema = doc()["components"]["schemas"][name].clone();
        assert!(schema.is_object(), "no schema {name}");
        schema
    }

    fn names(value: &Value) -> BTreeSet<String> {
        value
            .as_object()
            .map(|object| object.keys().cloned().collect())
            .unwrap_or_default()
    }

    fn properties(name: &str) -> BTreeSet<String> {
        names(&schema(name)["properties"])
    }

    fn strings(value: &Value) -> BTreeSet<String> {
        value
            .as_array()
            .map(|values| {
                values
                    .iter()
                    .filter_map(|v| v.as_str().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default()
    }

    /// The fields a body type accepts, from serde's own "unknown field" message.
    fn accepted_fields<T: DeserializeOwned>() -> BTreeSet<String> {
        let error = match parse_json::<T>(br#"{"~probe~": 1}"#) {
            Err(error) => error.0,
            Ok(_) => panic!("an unknown field is refused"),
        };
        let message = &error.details[0].message;
        let expected = &message[message.find("expected").expect(message)..];
        expected
            .split('`')
            .skip(1)
            .step_by(2)
            .map(str::to_owned)
            .collect()
    }

    #[test]
    fn request_schemas_have_exactly_the_accepted_fields() {
        let cases = [
            (
                "CreateUserRequest",
                accepted_fields::<users::CreateUserBody>(),
            ),
            (
                "UpdateUserRequest",
                accepted_fields::<users::UpdateUserBody>(),
            ),
            (
                "ArchetypeRequest",
                accepted_fields::<users::ArchetypeBody>(),
            ),
            (
                "ModalitiesRequest",
                accepted_fields::<users::ModalitiesBody>(),
            ),
            (
                "CreateEntryRequest",
                accepted_fields::<diary::CreateEntryBody>(),
            ),
            (
                "UpdateEntryRequest",
                accepted_fields::<diary::UpdateEntryBody>(),
            ),
            (
                "StartSessionRequest",
                accepted_fields::<diary::StartSessionBody>(),
            ),
            (
                "EndSessionRequest",
                accepted_fields::<diary::EndSessionBody>(),
            ),
            (
                "AnalysisSettingRequest",
                accepted_fields::<users::AnalysisSettingBody>(),
            ),
        ];
        for (name, fields) in cases {
            assert!(!fields.is_empty(), "{name}");
            assert_eq!(properties(name), fields, "{name}");
            assert_eq!(schema(name)["additionalProperties"], false, "{name}");
        }
        // Required is what serde requires: `{}` names the first missing field.
        let first_missing = |error: crate::error::AppError| error.0.details[0].field.clone();
        let create = parse_json::<users::CreateUserBody>(b"{}")
            .err()
            .map(first_missing);
        assert!(strings(&schema("CreateUserRequest")["required"]).contains(&create.unwrap()));
        assert!(parse_json::<users::UpdateUserBody>(b"{}").is_ok());
        assert!(schema("UpdateUserRequest")["required"].is_null());
        assert!(parse_json::<diary::EndSessionBody>(b"{}").is_ok());
        assert!(schema("EndSessionRequest")["required"].is_null());
    }

    fn keys(value: impl serde::Serialize) -> BTreeSet<String> {
        names(&serde_json::to_value(value).expect("serialisable"))
    }

    #[test]
    fn response_schemas_have_exactly_the_serialised_fields() {
        use metachat_proto::error::{ApiError, FieldViolation};
        use metachat_proto::{common, diary as d, user as u};
        let envelope: Value = serde_json::from_slice(&crate::error::envelope(
            &ApiError::invalid_field("f", "m"),
            "r",
        ))
        .expect("the envelope is JSON");
        let user = u::User {
            archetype: Some(u::Archetype::default()),
            inferred_archetype: Some(u::InferredArchetype {
                evidence: vec![Default::default()],
                ..Default::default()
            }),
            inferred_modalities: Some(u::InferredModalities::default()),
            ..Default::default()
        };
        let user = serde_json::to_value(UserJson::from(user)).expect("serialisable");
        let catalogue = u::ArchetypeCatalogue {
            archetypes: vec![u::CatalogueArchetype {
                terms: vec![Default::default()],
                ..Default::default()
            }],
            ..Default::default()
        };
        let catalogue =
            serde_json::to_value(ArchetypeCatalogueJson::from(catalogue)).expect("JSON");
        let analytics = d::Analytics {
            tag_frequencies: vec![Default::default()],
            entries_per_day: vec![Default::default()],
            days: vec![Default::default()],
            top_keywords: vec![Default::default()],
            themes: vec![Default::default()],
            themes_available: true,
            profile: Some(d::WritingProfile {
                sensory: Some(Default::default()),
                sensory_evidence: vec![Default::default()],
                archetype_signals: vec![d::ArchetypeSignal {
                    evidence: vec![d::FeatureEvidence {
                        words: vec![Default::default()],
                        ..Default::default()
                    }],
                    ..Default::default()
                }],
                ..Default::default()
            }),
            ..Default::default()
        };
        let analytics = serde_json::to_value(AnalyticsJson::from(analytics)).expect("JSON");
        let results = serde_json::to_value(SearchResultsJson::from(d::SearchResults {
            results: vec![d::SearchResult::default()],
            ..Default::default()
        }))
        .expect("serialisable");
        let history = HistoryJson::new(common::EventHistory {
            events: vec![common::StoredEvent::default()],
        });
        let history = serde_json::to_value(history).expect("serialisable");
        let analysed = serde_json::to_value(EntryJson::from(d::Entry {
            analysis: Some(d::EntryAnalysis {
                sentiment: Some(d::Sentiment::default()),
                explanation: Some(d::WritingProfile::default()),
                ..Default::default()
            }),
            ..Default::default()
        }))
        .expect("serialisable");
        let cases = [
            ("User", names(&user)),
            ("Archetype", names(&user["archetype"])),
            ("InferredArchetype", names(&user["inferredArchetype"])),
            ("InferredModalities", names(&user["inferredModalities"])),
            (
                "InferenceEvidence",
                names(&user["inferredArchetype"]["evidence"][0]),
            ),
            ("InferenceBasis", names(&user["inferredArchetype"]["basis"])),
            ("ArchetypeCatalogue", names(&catalogue)),
            ("CatalogueArchetype", names(&catalogue["archetypes"][0])),
            ("RuleTerm", names(&catalogue["archetypes"][0]["terms"][0])),
            (
                "AnalysisSetting",
                keys(AnalysisSettingJson::from(d::AnalysisSetting::default())),
            ),
            (
                "UserList",
                keys(UserListJson::from(u::ListUsersResponse::default())),
            ),
            ("Entry", keys(EntryJson::from(d::Entry::default()))),
            ("EntryAnalysis", names(&analysed["analysis"])),
            (
                "EntryList",
                keys(EntryListJson::from(d::ListEntriesResponse::default())),
            ),
            (
                "DeletedEntry",
                keys(DeletedJson::from(d::DeleteEntryResponse::default())),
            ),
            ("Session", keys(SessionJson::from(d::Session::default()))),
            (
                "SessionList",
                keys(SessionListJson::from(d::ListSessionsResponse::default())),
            ),
            ("Analytics", names(&analytics)),
            ("TagCount", names(&analytics["tagFrequencies"][0])),
            ("DayCount", names(&analytics["entriesPerDay"][0])),
            ("DayTotals", names(&analytics["days"][0])),
            ("KeywordCount", names(&analytics["topKeywords"][0])),
            ("Theme", names(&analytics["themes"][0])),
            ("SearchResults", names(&results)),
            ("SearchResult", names(&results["results"][0])),
            ("WritingProfile", names(&analytics["profile"])),
            (
                "SensoryWord",
                names(&analytics["profile"]["sensoryEvidence"][0]),
            ),
            (
                "ArchetypeSignal",
                names(&analytics["profile"]["archetypeSignals"][0]),
            ),
            (
                "FeatureEvidence",
                names(&analytics["profile"]["archetypeSignals"][0]["evidence"][0]),
            ),
            (
                "WordCount",
                names(&analytics["profile"]["archetypeSignals"][0]["evidence"][0]["words"][0]),
            ),
            ("History", names(&history)),
            ("Event", names(&history["events"][0])),
            ("EventMetadata", names(&history["events"][0]["metadata"])),
            ("Error", names(&envelope)),
            ("ErrorBody", names(&envelope["error"])),
            (
                "FieldViolation",
                keys(FieldViolation {
                    field: "f".into(),
                    message: "m".into(),
                }),
            ),
        ];
        for (name, fields) in cases {
            assert!(!fields.is_empty(), "{name}");
            assert_eq!(properties(name), fields, "{name}");
            assert_eq!(
                strings(&schema(name)["required"]),
                fields,
                "{name}: every field is always present"
            );
            assert_eq!(schema(name)["additionalProperties"], false, "{name}");
        }
    }

    #[test]
    fn the_error_codes_are_the_error_table() {
        let documented = strings(&schema("ErrorCode")["enum"]);
        let table: BTreeSet<String> = ErrorCode::ALL
            .iter()
            .map(|c| c.as_str().to_owned())
            .collect();
        assert_eq!(documented, table);
        let description = doc()["info"]["description"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        for code in ErrorCode::ALL {
            let row = format!("| {} | {} |", code.as_str(), code.http_status().as_u16());
            assert!(description.contains(&row), "no row {row}");
        }
    }

    #[test]
    fn the_enforced_limits_are_the_documented_ones() {
        let create = schema("CreateEntryRequest")["properties"].clone();
        assert_eq!(create["content"]["maxLength"], CONTENT_MAX);
        assert_eq!(create["title"]["maxLength"], TITLE_MAX);
        assert_eq!(create["tokenCount"]["maximum"], TOKEN_COUNT_MAX);
        assert_eq!(create["tags"]["maxItems"], TAGS_MAX);
        assert_eq!(create["tags"]["items"]["maxLength"], TAG_MAX);
        assert_eq!(create["userId"]["format"], "uuid");
        let update = schema("UpdateUserRequest")["properties"].clone();
        assert_eq!(update["avatar"]["maxLength"], AVATAR_MAX);
        assert_eq!(update["bio"]["maxLength"], BIO_MAX);
        assert_eq!(update["firstName"]["maxLength"], NAME_MAX);
        let user = schema("CreateUserRequest")["properties"].clone();
        assert_eq!(user["username"]["maxLength"], USERNAME_MAX);
        assert_eq!(user["username"]["minLength"], USERNAME_MIN);
        assert_eq!(
            user["username"]["pattern"],
            format!("^[A-Za-z0-9_.-]{{{USERNAME_MIN},{USERNAME_MAX}}}$")
        );
        assert_eq!(user["email"]["maxLength"], EMAIL_MAX);
        assert_eq!(user["dateOfBirth"]["format"], "date");
        let archetype = schema("ArchetypeRequest")["properties"].clone();
        assert_eq!(archetype["archetypeId"]["maxLength"], ARCHETYPE_ID_MAX);
        assert_eq!(archetype["archetypeName"]["maxLength"], ARCHETYPE_NAME_MAX);
        assert_eq!(archetype["description"]["maxLength"], DESCRIPTION_MAX);
        let modalities = schema("ModalitiesRequest")["properties"]["modalities"].clone();
        assert_eq!(
            strings(&modalities["propertyNames"]["enum"]),
            MODALITIES.map(str::to_owned).into()
        );
        assert_eq!(
            strings(&schema("Session")["properties"]["status"]["enum"]),
            SESSION_STATUSES.map(str::to_owned).into()
        );
        assert_eq!(
            strings(&schema("Analytics")["properties"]["period"]["enum"]),
            [&PERIODS[..], &[CUSTOM_PERIOD]]
                .concat()
                .into_iter()
                .map(str::to_owned)
                .collect()
        );
        let list = &doc()["paths"]["/users"]["get"]["parameters"];
        let limit = list
            .as_array()
            .and_then(|ps| ps.iter().find(|p| p["name"] == "limit"))
            .expect("limit is documented");
        assert_eq!(limit["schema"]["maximum"], PAGE_LIMIT_MAX);
        assert_eq!(limit["schema"]["default"], PAGE_LIMIT_DEFAULT);

        let description = description();
        assert!(!description.contains("{{"), "a placeholder is left");
        assert!(description.contains(&format!(
            "Bodies are limited to {} MiB",
            BODY_LIMIT_BYTES >> 20
        )));
        assert!(description.contains(&format!(
            "more than {MAX_HEADERS} header fields, or more than {} KiB",
            MAX_HEADER_BYTES >> 10
        )));
        assert!(description.contains(&format!(
            "path and query longer than {} KiB",
            MAX_URI_BYTES >> 10
        )));
        assert!(description.contains("a 256,000-character avatar"));
    }

    /// The query parameters an operation documents, by operation id.
    fn documented_query(operation_id: &str) -> BTreeSet<String> {
        let doc = doc();
        let operation = doc["paths"]
            .as_object()
            .into_iter()
            .flat_map(|paths| paths.values())
            .filter_map(|item| item.as_object())
            .flat_map(|item| item.values())
            .find(|op| op["operationId"] == operation_id)
            .unwrap_or_else(|| panic!("no operation {operation_id}"))
            .clone();
        operation["parameters"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|p| p["in"] == "query")
            .filter_map(|p| p["name"].as_str().map(str::to_owned))
            .collect()
    }

    #[test]
    fn the_documented_query_parameters_are_the_ones_read() {
        type Reader = fn(&QueryParams);
        let paging: Reader = |q| drop(q.paging());
        let as_of: Reader = |q| drop(crate::time::as_of(q));
        let range_and_paging: Reader = |q| {
            drop(diary::time_range(q));
            drop(q.paging());
        };
        let analytics: Reader = |q| drop(diary::analytics_request(q));
        let none: Reader = |_| {};
        let cases = [
            ("listUsers", paging),
            ("getUser", as_of),
            ("getEntry", as_of),
            ("getSession", as_of),
            ("listEntriesByUser", range_and_paging),
            ("listSessionsByUser", paging),
            ("getAnalytics", analytics),
            ("getUserHistory", none),
        ];
        for (operation, read) in cases {
            // A valid value for every required parameter, so that all the others are read.
            let query =
                QueryParams::from_pairs(&[("userId", "0b9e4c9e-7d1a-4f57-8d59-3f7b8f0d1a2c")]);
            read(&query);
            assert_eq!(
                documented_query(operation),
                query.asked.borrow().clone(),
                "{operation}"
            );
        }
    }

    /// Every `$ref` in `value`.
    fn refs(value: &Value, found: &mut Vec<String>) {
        match value {
            Value::Object(object) => {
                for (key, value) in object {
                    match (key.as_str(), value) {
                        ("$ref", Value::String(target)) => found.push(target.clone()),
                        _ => refs(value, found),
                    }
                }
            }
            Value::Array(values) => values.iter().for_each(|v| refs(v, found)),
            _ => {}
        }
    }

    #[test]
    fn the_document_is_well_formed_openapi_3_1() {
        let doc = doc();
        assert_eq!(doc["openapi"], "3.1.0");
        assert!(doc["info"]["title"].is_string() && doc["info"]["version"].is_string());

        let mut found = Vec::new();
        refs(&doc, &mut found);
        assert!(found.len() > 50, "{found:?}");
        for target in &found {
            let pointer = target
                .strip_prefix('#')
                .unwrap_or_else(|| panic!("{target} is not local"));
            assert!(doc.pointer(pointer).is_some(), "{target} does not resolve");
        }
        for name in names(&doc["components"]["schemas"]) {
            let target = format!("#/components/schemas/{name}");
            assert!(found.contains(&target), "{name} is never used");
        }

        let methods = [
            "get", "put", "post", "delete", "patch", "head", "options", "trace",
        ];
        let mut operation_ids = BTreeSet::new();
        for (path, item) in doc["paths"].as_object().expect("paths") {
            let templated: BTreeSet<String> = path
                .split('{')
                .skip(1)
                .filter_map(|rest| rest.split_once('}').map(|(name, _)| name.to_owned()))
                .collect();
            for (method, operation) in item.as_object().expect("a path item") {
                assert!(methods.contains(&method.as_str()), "{method} {path}");
                let id = operation["operationId"].as_str().expect("an operation id");
                assert!(operation_ids.insert(id.to_owned()), "{id} twice");
                assert!(operation["summary"].is_string(), "{id}");
                let parameters = operation["parameters"]
                    .as_array()
                    .cloned()
                    .unwrap_or_default();
                let in_path: BTreeSet<String> = parameters
                    .iter()
                    .filter(|p| p["in"] == "path")
                    .inspect(|p| assert_eq!(p["required"], true, "{id}"))
                    .filter_map(|p| p["name"].as_str().map(str::to_owned))
                    .collect();
                assert_eq!(in_path, templated, "{id}: path parameters");
                for parameter in &parameters {
                    assert!(
                        ["path", "query", "header", "cookie"]
                            .contains(&parameter["in"].as_str().unwrap_or_default()),
                        "{id}"
                    );
                    assert!(parameter["schema"].is_object(), "{id}");
                }
                let responses = operation["responses"].as_object().expect("responses");
                assert!(!responses.is_empty(), "{id}");
                for (status, response) in responses {
                    let code: u16 = status.parse().unwrap_or_else(|_| panic!("{id} {status}"));
                    assert!((100..600).contains(&code), "{id} {status}");
                    assert!(response["description"].is_string(), "{id} {status}");
                    assert!(response["headers"][REQUEST_ID].is_object(), "{id} {status}");
                    if code >= 400 && id != "ready" {
                        assert_eq!(
                            response["content"]["application/json"]["schema"]["$ref"],
                            "#/components/schemas/Error",
                            "{id} {status}"
                        );
                    }
                }
                for status in ["414", "431"] {
                    assert!(responses.contains_key(status), "{id} lacks {status}");
                }
            }
        }
    }

    #[test]
    fn the_statuses_follow_from_what_an_operation_takes() {
        let doc = doc();
        for (path, item) in doc["paths"].as_object().expect("paths") {
            for (method, operation) in item.as_object().expect("a path item") {
                let id = operation["operationId"].as_str().unwrap_or_default();
                let statuses = names(&operation["responses"]);
                let has = |status: &str| statuses.contains(status);
                let parameters = operation["parameters"]
                    .as_array()
                    .cloned()
                    .unwrap_or_default();
                let takes = |name: &str| parameters.iter().any(|p| p["name"] == name);
                if operation["requestBody"].is_object() {
                    for status in ["400", "408", "413", "415"] {
                        assert!(has(status), "{method} {path} lacks {status}");
                    }
                }
                if takes("If-Match") {
                    assert!(has("412") && has("409"), "{method} {path}");
                }
                if path.starts_with("/users") || path.starts_with("/diary") {
                    assert!(has("400") && has("503") && has("504"), "{id}");
                    let created = ["post"].contains(&method.as_str()) && !path.contains('{');
                    assert_eq!(has("201"), created, "{id}");
                    let unavailable = &operation["responses"]["503"]["headers"];
                    assert!(unavailable["Retry-After"].is_object(), "{id}");
                }
                if has("201") {
                    let headers = &operation["responses"]["201"]["headers"];
                    assert!(headers["Location"].is_object() && headers["ETag"].is_object());
                }
            }
        }
    }
}
