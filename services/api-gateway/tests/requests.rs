//! What the gateway decides by itself, over real HTTP: the error envelope for unknown routes,
//! wrong methods, malformed bodies, bad query parameters and oversized bodies; request ids; and
//! how a service that is down, slow or not a gRPC service is reported. End-to-end behaviour with
//! the real services is tested in the platform crate.

mod support;

use std::time::Duration;

use api_gateway::GatewayConfig;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use support::*;

#[tokio::test]
async fn unknown_routes_and_methods_get_the_envelope() {
    let gateway = spawn_without_services().await;
    let body = envelope(
        gateway.send(Method::GET, "/nope").await,
        StatusCode::NOT_FOUND,
        "not_found",
    )
    .await;
    assert!(body["error"]["message"].as_str().unwrap().contains("/nope"));
    envelope(
        gateway.send(Method::GET, "/users/").await,
        StatusCode::NOT_FOUND,
        "not_found",
    )
    .await;

    let response = gateway.send(Method::DELETE, "/users").await;
    let allow = response.headers()["allow"].to_str().unwrap().to_owned();
    assert!(allow.contains("GET") && allow.contains("POST"), "{allow}");
    let body = envelope(
        response,
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
    )
    .await;
    assert!(
        body["error"]["message"].as_str().unwrap().contains("POST"),
        "{body}"
    );
    envelope(
        gateway.send(Method::PATCH, "/diary/entries/x").await,
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
    )
    .await;
    gateway.stop().await;
}

#[tokio::test]
async fn malformed_bodies_are_400s_naming_the_field() {
    let gateway = spawn_without_services().await;
    let cases = [
        ("/users", r#"{"username": "johndoe", "email": "#, "email"),
        (
            "/users",
            r#"{"username": "johndoe", "email": "a@b.c", "firstName": "J", "lastName": 7}"#,
            "lastName",
        ),
        (
            "/users",
            r#"{"username": "johndoe", "email": "a@b.c", "firstName": "J", "lastName": "D", "nickname": "x"}"#,
            "nickname",
        ),
        (
            "/users",
            r#"{"username": "johndoe", "firstName": "J", "lastName": "D"}"#,
            "email",
        ),
        (
            "/diary/entries",
            r#"{"userId": "u", "title": "t", "content": "c", "tokenCount": "private words"}"#,
            "tokenCount",
        ),
        (
            "/diary/entries",
            r#"{"userId": "u", "title": "t", "content": "c", "tags": ["a", 1]}"#,
            "tags[1]",
        ),
        (
            "/diary/sessions",
            r#"{"userId": "0b9e4c9e-7d1a-4f57-8d59-3f7b8f0d1a2c", "startTime": "tomorrow"}"#,
            "startTime",
        ),
        ("/users", "[]", "body"),
    ];
    for (path, body, field) in cases {
        let response = gateway.send_json(Method::POST, path, body).await;
        let error = envelope(response, StatusCode::BAD_REQUEST, "invalid_argument").await;
        assert_eq!(fields(&error), [field], "{path} {body}: {error}");
        assert!(!error.to_string().contains("private words"), "{error}");
    }
    let modalities = gateway
        .send_json(
            Method::PUT,
            &format!("/users/{SOME_ID}/modalities"),
            r#"{"modalities": {"visual": "high"}}"#,
        )
        .await;
    let error = envelope(modalities, StatusCode::BAD_REQUEST, "invalid_argument").await;
    assert_eq!(fields(&error), ["modalities.visual"]);

    // A body that is not declared as JSON, and a required body that is missing.
    let form = gateway
        .client
        .post(gateway.url("/users"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body("username=johndoe")
        .send()
        .await
        .unwrap();
    let error = envelope(
        form,
        StatusCode::UNSUPPORTED_MEDIA_TYPE,
        "unsupported_media_type",
    )
    .await;
    assert_eq!(fields(&error), ["Content-Type"]);
    let empty = gateway.send(Method::POST, "/users").await;
    let error = envelope(empty, StatusCode::BAD_REQUEST, "invalid_argument").await;
    assert_eq!(fields(&error), ["body"]);
    gateway.stop().await;
}

#[tokio::test]
async fn query_parameters_are_checked_and_named() {
    let gateway = spawn_without_services().await;
    let user = SOME_ID;
    let cases = [
        ("/users?limit=0".to_owned(), "limit"),
        ("/users?limit=abc".to_owned(), "limit"),
        ("/users?page=0".to_owned(), "page"),
        (format!("/diary/sessions/user/{user}?limit=101"), "limit"),
        (
            format!("/diary/entries/user/{user}?startTime=2023-31-01"),
            "startTime",
        ),
        (
            format!("/diary/entries/user/{user}?startTime=2023-12-31&endTime=2023-01-01"),
            "startTime",
        ),
        (format!("/users/{user}?asOf=last-tuesday"), "asOf"),
        (format!("/diary/entries/{user}?asOf=2023-02-30"), "asOf"),
        ("/diary/analytics?period=week".to_owned(), "userId"),
        (
            format!("/diary/analytics?userId={user}&from=yesterday"),
            "from",
        ),
        (
            format!("/diary/analytics?userId={user}&to=2024-03-01T10:00:00"),
            "to",
        ),
    ];
    for (path, field) in cases {
        let error = envelope(
            gateway.send(Method::GET, &path).await,
            StatusCode::BAD_REQUEST,
            "invalid_argument",
        )
        .await;
        assert_eq!(fields(&error), [field], "{path}: {error}");
    }
    gateway.stop().await;
}

#[tokio::test]
async fn bodies_over_the_limit_are_413() {
    let gateway = spawn_without_services().await;
    let huge = format!(
        r#"{{"bio": "{}"}}"#,
        "x".repeat(api_gateway::BODY_LIMIT_BYTES)
    );
    let response = gateway
        .send_json(Method::PUT, &format!("/users/{SOME_ID}"), &huge)
        .await;
    envelope(response, StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large").await;
    gateway.stop().await;
}

#[tokio::test]
async fn the_request_id_is_taken_or_generated_and_echoed() {
    let gateway = spawn_without_services().await;
    let response = gateway
        .client
        .get(gateway.url("/nope"))
        .header("x-request-id", "client-chosen-42")
        .send()
        .await
        .unwrap();
    assert_eq!(response.headers()["x-request-id"], "client-chosen-42");
    let body = envelope(response, StatusCode::NOT_FOUND, "not_found").await;
    assert_eq!(body["requestId"], "client-chosen-42");

    let live = gateway.send(Method::GET, "/health/live").await;
    assert_eq!(live.status(), StatusCode::OK);
    let generated = live.headers()["x-request-id"].to_str().unwrap().to_owned();
    assert!(uuid::Uuid::parse_str(&generated).is_ok(), "{generated}");
    assert_eq!(live.json::<Value>().await.unwrap(), json!({"status": "ok"}));
    gateway.stop().await;
}

#[tokio::test]
async fn a_service_that_is_down_is_a_503_with_retry_after() {
    let gateway = spawn_without_services().await;
    let response = gateway
        .send_json(
            Method::POST,
            "/users",
            r#"{"username": "johndoe", "email": "john@example.com", "firstName": "John", "lastName": "Doe", "dateOfBirth": "1990-01-01"}"#,
        )
        .await;
    assert_eq!(response.headers()["retry-after"], "1");
    let body = envelope(response, StatusCode::SERVICE_UNAVAILABLE, "unavailable").await;
    assert!(!body.to_string().contains("127.0.0.1"), "{body}");

    // Bodies the gateway accepts go on to the (absent) diary service: an empty body is a valid
    // "end now", `{}` too, and a confidence out of range is the service's to reject.
    let session = SOME_ID;
    let end = gateway
        .send(Method::PUT, &format!("/diary/sessions/{session}/end"))
        .await;
    envelope(end, StatusCode::SERVICE_UNAVAILABLE, "unavailable").await;
    let end = gateway
        .send_json(Method::PUT, &format!("/diary/sessions/{session}/end"), "{}")
        .await;
    envelope(end, StatusCode::SERVICE_UNAVAILABLE, "unavailable").await;
    let archetype = gateway
        .send_json(
            Method::POST,
            &format!("/users/{session}/archetype"),
            r#"{"archetypeId": "thinker", "archetypeName": "The Thinker", "confidence": 1.5, "description": ""}"#,
        )
        .await;
    envelope(archetype, StatusCode::SERVICE_UNAVAILABLE, "unavailable").await;

    let ready = gateway.send(Method::GET, "/health/ready").await;
    assert_eq!(ready.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(
        ready.json::<Value>().await.unwrap(),
        json!({
            "status": "unavailable",
            "checks": {"userService": "unreachable", "diaryService": "unreachable"},
            "dependencies": {"userService": {}, "diaryService": {}}
        })
    );
    gateway.stop().await;
}

#[tokio::test]
async fn a_service_that_never_answers_is_a_504() {
    let (silent, listener) = silent_address().await;
    let gateway = spawn(GatewayConfig {
        user_service_address: silent.clone(),
        diary_service_address: silent,
        request_timeout: Duration::from_millis(300),
        ..GatewayConfig::default()
    })
    .await;
    let response = gateway
        .send(Method::GET, &format!("/users/{SOME_ID}"))
        .await;
    envelope(response, StatusCode::GATEWAY_TIMEOUT, "deadline_exceeded").await;
    let ready = gateway.send(Method::GET, "/health/ready").await;
    assert_eq!(ready.status(), StatusCode::SERVICE_UNAVAILABLE);
    gateway.stop().await;
    listener.abort();
}

#[tokio::test]
async fn a_wrong_or_unresolvable_address_is_a_503_not_a_500() {
    let (http1, server) = http1_address().await;
    for address in ["no-such-host.invalid:50051".to_owned(), http1] {
        let gateway = spawn(GatewayConfig {
            user_service_address: address.clone(),
            diary_service_address: address.clone(),
            request_timeout: Duration::from_secs(5),
            ..GatewayConfig::default()
        })
        .await;
        let response = gateway
            .send(Method::GET, &format!("/users/{SOME_ID}"))
            .await;
        let body = envelope(response, StatusCode::SERVICE_UNAVAILABLE, "unavailable").await;
        assert!(!body.to_string().contains(&address), "{body}");
        let ready = gateway.send(Method::GET, "/health/ready").await;
        assert_eq!(ready.status(), StatusCode::SERVICE_UNAVAILABLE, "{address}");
        gateway.stop().await;
    }
    server.abort();
}

#[tokio::test]
async fn field_forms_are_checked_before_forwarding() {
    let gateway = spawn_without_services().await;
    let user = SOME_ID;
    let cases = [
        (
            Method::POST,
            "/users".to_owned(),
            r#"{"username": "johndoe", "email": "a@b.c", "firstName": "J", "lastName": "D", "dateOfBirth": "+1990-01-01"}"#.to_owned(),
            vec!["dateOfBirth"],
        ),
        (
            Method::PUT,
            format!("/users/{user}"),
            r#"{"dateOfBirth": " 1990-01-01 ", "firstName": "a\u0000b", "bio": "ok\n\tfine"}"#.to_owned(),
            vec!["firstName", "dateOfBirth"],
        ),
        (
            Method::POST,
            "/diary/entries".to_owned(),
            format!(r#"{{"userId": "{user}", "title": "\u001b[2J", "content": "c", "sessionId": "", "tags": ["ok", "b\u0007"]}}"#),
            vec!["sessionId", "title", "tags[1]"],
        ),
        (
            Method::POST,
            "/diary/entries".to_owned(),
            format!(r#"{{"userId": "{{{user}}}", "title": "t", "content": "c"}}"#),
            vec!["userId"],
        ),
        (
            Method::POST,
            "/diary/entries".to_owned(),
            format!(r#"{{"userId": "{user}", "title": "t", "content": "c", "createdAt": "2024-03-05 23:50"}}"#),
            vec!["createdAt"],
        ),
        (
            Method::POST,
            "/diary/sessions".to_owned(),
            format!(r#"{{"userId": "urn:uuid:{user}", "startTime": "2024-02-29T12:00:60Z"}}"#),
            vec!["userId", "startTime"],
        ),
        (
            Method::PUT,
            format!("/diary/sessions/{user}/end"),
            r#"{"endTime": "2016-12-31T23:59:60Z"}"#.to_owned(),
            vec!["endTime"],
        ),
        (
            Method::PUT,
            format!("/users/{user}/modalities"),
            r#"{"modalities": {"visual": 0.5, "visual": 0.9}}"#.to_owned(),
            vec!["modalities.visual"],
        ),
        (
            Method::PUT,
            format!("/users/{user}/archetype"),
            r#"{"archetypeId": "a\u0085", "archetypeName": "N", "confidence": 0.5, "description": "two\nlines"}"#.to_owned(),
            vec!["archetypeId"],
        ),
    ];
    for (method, path, body, expected) in cases {
        let response = gateway.send_json(method.clone(), &path, &body).await;
        let error = envelope(response, StatusCode::BAD_REQUEST, "invalid_argument").await;
        assert_eq!(fields(&error), expected, "{method} {path} {body}: {error}");
    }
    gateway.stop().await;
}

#[tokio::test]
async fn ids_in_paths_and_queries_must_be_canonical_uuids() {
    let gateway = spawn_without_services().await;
    let id = SOME_ID;
    let simple = id.replace('-', "");
    let cases = [
        (format!("/users/%7B{id}%7D"), "id"),
        (format!("/users/{simple}"), "id"),
        (format!("/users/urn:uuid:{id}"), "id"),
        (format!("/diary/entries/{simple}/history"), "id"),
        (format!("/diary/entries/user/{simple}"), "userId"),
        ("/diary/sessions/user/not-a-uuid".to_owned(), "userId"),
        (format!("/diary/analytics?userId={simple}"), "userId"),
        (format!("/users/{id}?asOf=2016-12-31T23:59:60Z"), "asOf"),
        (
            format!("/diary/entries/user/{id}?startTime=2016-12-31T23:59:60Z"),
            "startTime",
        ),
    ];
    for (path, field) in cases {
        let error = envelope(
            gateway.send(Method::GET, &path).await,
            StatusCode::BAD_REQUEST,
            "invalid_argument",
        )
        .await;
        assert_eq!(fields(&error), [field], "{path}: {error}");
    }
    // Upper case is canonical too: it goes on to the (absent) service.
    envelope(
        gateway
            .send(Method::GET, &format!("/users/{}", id.to_uppercase()))
            .await,
        StatusCode::SERVICE_UNAVAILABLE,
        "unavailable",
    )
    .await;
    gateway.stop().await;
}

#[tokio::test]
async fn only_utf8_json_is_accepted() {
    let gateway = spawn_without_services().await;
    let body = r#"{"username": "johndoe", "email": "a@b.c", "firstName": "J", "lastName": "D"}"#;
    for content_type in [
        "application/json; charset=latin1",
        "application/json;charset=\"ISO-8859-1\"",
        "application/json; charset=utf-16",
    ] {
        let response = gateway
            .client
            .post(gateway.url("/users"))
            .header("content-type", content_type)
            .body(body)
            .send()
            .await
            .unwrap();
        let error = envelope(
            response,
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
        )
        .await;
        assert_eq!(fields(&error), ["Content-Type"]);
        assert!(
            error["error"]["message"]
                .as_str()
                .unwrap()
                .contains("charset"),
            "{error}"
        );
    }
    for content_type in [
        "application/json; charset=utf-8",
        "application/json; charset=UTF8",
    ] {
        let response = gateway
            .client
            .post(gateway.url("/users"))
            .header("content-type", content_type)
            .body(body)
            .send()
            .await
            .unwrap();
        envelope(response, StatusCode::SERVICE_UNAVAILABLE, "unavailable").await;
    }
    gateway.stop().await;
}

#[tokio::test]
async fn if_match_must_be_a_version_or_a_star() {
    let gateway = spawn_without_services().await;
    let path = format!("/diary/entries/{SOME_ID}");
    for malformed in ["3", "three", "\"1\", \"2\""] {
        let response = gateway
            .client
            .delete(gateway.url(&path))
            .header("if-match", malformed)
            .send()
            .await
            .unwrap();
        let error = envelope(response, StatusCode::BAD_REQUEST, "invalid_argument").await;
        assert_eq!(fields(&error), ["If-Match"], "{malformed}");
    }
    let weak = gateway
        .client
        .put(gateway.url(&format!("/users/{SOME_ID}")))
        .header("if-match", "W/\"3\"")
        .header("content-type", "application/json")
        .body(r#"{"bio": "x"}"#)
        .send()
        .await
        .unwrap();
    envelope(weak, StatusCode::PRECONDITION_FAILED, "precondition_failed").await;
    // Well-formed tags that no version is spelled as: they never match.
    for other in ["\"three\"", "\"03\"", "\"\""] {
        let response = gateway
            .client
            .delete(gateway.url(&path))
            .header("if-match", other)
            .send()
            .await
            .unwrap();
        envelope(
            response,
            StatusCode::PRECONDITION_FAILED,
            "precondition_failed",
        )
        .await;
    }
    for fine in ["*", "\"3\""] {
        let response = gateway
            .client
            .delete(gateway.url(&path))
            .header("if-match", fine)
            .send()
            .await
            .unwrap();
        envelope(response, StatusCode::SERVICE_UNAVAILABLE, "unavailable").await;
    }
    gateway.stop().await;
}

#[tokio::test]
async fn a_maximal_body_fits_however_it_is_escaped() {
    let gateway = spawn_without_services().await;
    // 100,000 astral characters (the longest content), escaped as surrogate pairs: 1.2 MB.
    let content = "\\uD83D\\uDE00".repeat(100_000);
    let body = format!(
        r#"{{"userId": "{SOME_ID}", "title": "t", "content": "{content}", "tokenCount": 549.0}}"#
    );
    assert!(body.len() > 1_200_000);
    let response = gateway
        .send_json(Method::POST, "/diary/entries", &body)
        .await;
    envelope(response, StatusCode::SERVICE_UNAVAILABLE, "unavailable").await;
    // A profile with a 256,000-character avatar, escaped the same way: 3 MB.
    let avatar = "\\uD83D\\uDE00".repeat(256_000);
    let body = format!(r#"{{"avatar": "{avatar}"}}"#);
    let response = gateway
        .send_json(Method::PUT, &format!("/users/{SOME_ID}"), &body)
        .await;
    envelope(response, StatusCode::SERVICE_UNAVAILABLE, "unavailable").await;
    gateway.stop().await;
}
