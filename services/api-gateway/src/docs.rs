//! The OpenAPI document and the interactive reference at `/docs`: Swagger UI, vendored in
//! `vendor/swagger-ui` and served by the gateway itself, so it works offline.

use axum::extract::Path;
use axum::http::{HeaderValue, header};
use axum::response::{Html, IntoResponse, Redirect, Response};
use metachat_proto::error::ApiError;

use crate::error::AppError;

/// The hand-written OpenAPI 3.1 document of every route.
pub const OPENAPI_JSON: &str = include_str!("../openapi.json");

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
     style-src 'self' 'unsafe-inline'; img-src 'self' data:; connect-src 'self'";

pub(crate) async fn openapi() -> impl IntoResponse {
    ([(header::CONTENT_TYPE, "application/json")], OPENAPI_JSON)
}

pub(crate) async fn docs() -> Response {
    let mut response = Html(DOCS_HTML).into_response();
    response.headers_mut().insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CONTENT_SECURITY_POLICY),
    );
    response
}

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

pub(crate) async fn root() -> Redirect {
    Redirect::temporary("/docs")
}

/// The hand-written document cannot drift from the types: every request body's fields (as
/// serde's `deny_unknown_fields` lists them) and every response's fields (as serialised) are
/// the properties of its schema, and the constraints the gateway enforces are stated there.
#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use serde::de::DeserializeOwned;
    use serde_json::Value;

    use super::OPENAPI_JSON;
    use crate::convert::*;
    use crate::extract::parse_json;
    use crate::{diary, users};

    fn schema(name: &str) -> Value {
        let doc: Value = serde_json::from_str(OPENAPI_JSON).unwrap();
        doc["components"]["schemas"][name].clone()
    }

    fn properties(name: &str) -> BTreeSet<String> {
        schema(name)["properties"]
            .as_object()
            .unwrap_or_else(|| panic!("schema {name} has properties"))
            .keys()
            .cloned()
            .collect()
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
        ];
        for (name, fields) in cases {
            assert!(!fields.is_empty(), "{name}");
            assert_eq!(properties(name), fields, "{name}");
            assert_eq!(schema(name)["additionalProperties"], false, "{name}");
        }
    }

    fn keys(value: impl serde::Serialize) -> BTreeSet<String> {
        let value = serde_json::to_value(value).unwrap();
        value.as_object().unwrap().keys().cloned().collect()
    }

    #[test]
    fn response_schemas_have_exactly_the_serialised_fields() {
        use metachat_proto::{common, diary as d, user as u};
        let cases = [
            ("User", keys(UserJson::from(u::User::default()))),
            (
                "UserList",
                keys(UserListJson::from(u::ListUsersResponse::default())),
            ),
            ("Entry", keys(EntryJson::from(d::Entry::default()))),
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
            (
                "Analytics",
                keys(AnalyticsJson::from(d::Analytics::default())),
            ),
            (
                "History",
                keys(HistoryJson::new(
                    String::new(),
                    common::EventHistory::default(),
                )),
            ),
            (
                "Event",
                keys(EventJson::from(common::StoredEvent::default())),
            ),
        ];
        for (name, fields) in cases {
            assert_eq!(properties(name), fields, "{name}");
            let required: BTreeSet<String> = schema(name)["required"]
                .as_array()
                .unwrap()
                .iter()
                .map(|v| v.as_str().unwrap().to_owned())
                .collect();
            assert_eq!(required, fields, "{name}: every field is always present");
        }
    }

    #[test]
    fn the_enforced_limits_are_the_documented_ones() {
        use crate::limits::*;
        let create = schema("CreateEntryRequest");
        assert_eq!(create["properties"]["content"]["maxLength"], CONTENT_MAX);
        assert_eq!(create["properties"]["title"]["maxLength"], TITLE_MAX);
        assert_eq!(
            create["properties"]["tokenCount"]["maximum"],
            TOKEN_COUNT_MAX
        );
        assert_eq!(create["properties"]["tags"]["maxItems"], TAGS_MAX);
        assert_eq!(create["properties"]["tags"]["items"]["maxLength"], TAG_MAX);
        let update = schema("UpdateUserRequest");
        assert_eq!(update["properties"]["avatar"]["maxLength"], AVATAR_MAX);
        assert_eq!(update["properties"]["bio"]["maxLength"], BIO_MAX);
        assert_eq!(update["properties"]["firstName"]["maxLength"], NAME_MAX);
        let user = schema("CreateUserRequest");
        assert_eq!(user["properties"]["username"]["maxLength"], USERNAME_MAX);
        assert_eq!(user["properties"]["username"]["minLength"], USERNAME_MIN);
        assert_eq!(user["properties"]["email"]["maxLength"], EMAIL_MAX);
        let archetype = schema("ArchetypeRequest");
        assert_eq!(
            archetype["properties"]["archetypeId"]["maxLength"],
            ARCHETYPE_ID_MAX
        );
        assert_eq!(
            archetype["properties"]["archetypeName"]["maxLength"],
            ARCHETYPE_NAME_MAX
        );
        assert_eq!(
            archetype["properties"]["description"]["maxLength"],
            DESCRIPTION_MAX
        );
        let doc: Value = serde_json::from_str(OPENAPI_JSON).unwrap();
        let description = doc["info"]["description"].as_str().unwrap();
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
    }
}
