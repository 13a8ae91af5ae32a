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
            r#"{"userId": "u", "startTime": "tomorrow"}"#,
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
async fn bodies_over_one_mebibyte_are_413() {
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
