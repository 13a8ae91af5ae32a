//! The OpenAPI document matches the router, and the documentation is served self-contained.

mod support;

use std::collections::BTreeSet;

use api_gateway::{GatewayConfig, openapi_json};
use reqwest::{Method, StatusCode};
use serde_json::Value;
use support::*;

/// The OpenAPI document's operations, as `(METHOD, path)`.
fn documented_operations() -> BTreeSet<(String, String)> {
    let doc: Value = serde_json::from_str(openapi_json()).expect("openapi.json is JSON");
    assert_eq!(doc["openapi"], "3.1.0");
    let mut operations = BTreeSet::new();
    for (path, item) in doc["paths"].as_object().expect("paths") {
        for (method, _) in item.as_object().expect("path item") {
            if [
                "get", "put", "post", "delete", "patch", "head", "options", "trace",
            ]
            .contains(&method.as_str())
            {
                operations.insert((method.to_uppercase(), path.clone()));
            }
        }
    }
    operations
}

#[tokio::test]
async fn the_openapi_document_and_the_router_have_the_same_routes() {
    let served: BTreeSet<(String, String)> = api_gateway::routes()
        .into_iter()
        .map(|(method, path)| (method.to_string(), path.to_owned()))
        .collect();
    let documented = documented_operations();
    let undocumented: Vec<_> = served.difference(&documented).collect();
    let unserved: Vec<_> = documented.difference(&served).collect();
    assert!(
        undocumented.is_empty(),
        "served but not documented: {undocumented:?}"
    );
    assert!(
        unserved.is_empty(),
        "documented but not served: {unserved:?}"
    );

    // And each documented operation really reaches a handler (not the 404/405 fallbacks).
    let gateway = spawn_without_services().await;
    for (method, path) in &documented {
        let file = if path.starts_with("/app/") {
            "app.js"
        } else {
            "swagger-ui.css"
        };
        let concrete = path
            .replace("{id}", SOME_ID)
            .replace("{userId}", SOME_ID)
            .replace("{file}", file);
        let method = Method::from_bytes(method.as_bytes()).unwrap();
        let response = gateway.send_json(method.clone(), &concrete, "{}").await;
        assert!(
            ![StatusCode::NOT_FOUND, StatusCode::METHOD_NOT_ALLOWED].contains(&response.status()),
            "{method} {concrete} -> {}",
            response.status()
        );
    }
    gateway.stop().await;
}

#[tokio::test]
async fn the_web_app_is_served_self_contained() {
    let gateway = spawn_without_services().await;
    let root = gateway.send(Method::GET, "/").await;
    assert_eq!(root.status(), StatusCode::OK);
    assert!(
        root.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/html")
    );
    let policy = root.headers()["content-security-policy"]
        .to_str()
        .unwrap()
        .to_owned();
    for directive in [
        "script-src 'self'",
        "style-src 'self'",
        "frame-ancestors 'none'",
    ] {
        assert!(policy.contains(directive), "{policy}");
    }
    assert_eq!(root.headers()["x-content-type-options"], "nosniff");
    let etag = root.headers()["etag"].to_str().unwrap().to_owned();
    let html = root.text().await.unwrap();
    for external in ["http://", "https://", "//cdn"] {
        assert!(!html.contains(external), "the app must not load {external}");
    }
    // Every file the page and its modules load comes from the gateway.
    let mut files: Vec<String> = Vec::new();
    for (prefix, end) in [("src=\"", '"'), ("href=\"", '"')] {
        for piece in html.split(prefix).skip(1) {
            let url = &piece[..piece.find(end).unwrap()];
            if url.starts_with('#') {
                continue;
            }
            if url == "/docs" {
                continue;
            }
            assert!(url.starts_with("/app/"), "{url}");
            files.push(url.to_owned());
        }
    }
    let script = gateway.send(Method::GET, "/app/app.js").await;
    assert_eq!(script.status(), StatusCode::OK);
    let script = script.text().await.unwrap();
    for module in script.split("from \"./").skip(1) {
        files.push(format!("/app/{}", &module[..module.find('"').unwrap()]));
    }
    assert!(files.len() >= 6, "{files:?}");
    for url in &files {
        let file = gateway.send(Method::GET, url).await;
        assert_eq!(file.status(), StatusCode::OK, "{url}");
        let body = file.text().await.unwrap();
        assert!(!body.contains("https://cdn"), "{url}");
        assert!(body.len() > 100, "{url}");
    }
    // Unchanged since the last visit: 304 with no body.
    let again = gateway
        .send_with_headers(Method::GET, "/", &[("if-none-match", &etag)])
        .await;
    assert_eq!(again.status(), StatusCode::NOT_MODIFIED);
    let missing = gateway.send(Method::GET, "/app/nope.js").await;
    envelope(missing, StatusCode::NOT_FOUND, "not_found").await;
    gateway.stop().await;
}

#[tokio::test]
async fn the_docs_are_served_self_contained() {
    let gateway = spawn_without_services().await;

    let docs = gateway.send(Method::GET, "/docs").await;
    assert_eq!(docs.status(), StatusCode::OK);
    assert!(
        docs.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/html")
    );
    assert!(
        docs.headers()["content-security-policy"]
            .to_str()
            .unwrap()
            .starts_with("default-src 'self'")
    );
    let html = docs.text().await.unwrap();
    for external in ["http://", "https://", "//cdn"] {
        assert!(
            !html.contains(external),
            "the docs page must not load {external}"
        );
    }
    // Every file the page loads is served by the gateway itself.
    for (prefix, end) in [("src=\"", '"'), ("href=\"", '"')] {
        for piece in html.split(prefix).skip(1) {
            let url = &piece[..piece.find(end).unwrap()];
            assert!(url.starts_with("/docs/"), "{url}");
            let asset = gateway.send(Method::GET, url).await;
            assert_eq!(asset.status(), StatusCode::OK, "{url}");
            assert!(asset.bytes().await.unwrap().len() > 100, "{url}");
        }
    }
    let initializer = gateway
        .send(Method::GET, "/docs/swagger-initializer.js")
        .await
        .text()
        .await
        .unwrap();
    assert!(initializer.contains("url: \"/openapi.json\""));
    assert!(initializer.contains("validatorUrl: null"));
    let missing = gateway.send(Method::GET, "/docs/nope.js").await;
    envelope(missing, StatusCode::NOT_FOUND, "not_found").await;

    let openapi = gateway.send(Method::GET, "/openapi.json").await;
    assert_eq!(openapi.status(), StatusCode::OK);
    assert_eq!(openapi.headers()["content-type"], "application/json");
    assert!(openapi.headers().contains_key("x-request-id"));
    let served = openapi.text().await.unwrap();
    assert_eq!(
        served,
        openapi_json(),
        "the generated document is what is served"
    );
    let doc: Value = serde_json::from_str(&served).unwrap();
    assert_eq!(doc["openapi"], "3.1.0");
    let description = doc["info"]["description"].as_str().unwrap();
    for code in [
        "400", "404", "408", "409", "412", "413", "414", "415", "431", "503", "504",
    ] {
        assert!(
            description.contains(&format!("| {code} |")),
            "status {code} documented"
        );
    }
    gateway.stop().await;
}

#[tokio::test]
async fn the_router_needs_a_usable_address() {
    let bad = GatewayConfig {
        user_service_address: "https://users:50051".into(),
        ..GatewayConfig::default()
    };
    let error = api_gateway::router(&bad).expect_err("TLS addresses are refused");
    assert!(
        error.to_string().contains("USER_SERVICE_ADDRESS"),
        "{error}"
    );
    assert!(api_gateway::router(&GatewayConfig::default()).is_ok());
}
