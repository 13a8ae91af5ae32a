//! Requests broken at the HTTP level: oversized URIs and header blocks, malformed request lines
//! and headers, and clients that stop sending. Each gets the error envelope with an
//! `x-request-id`, including those hyper refuses before any handler runs.

mod support;

use std::time::{Duration, Instant};

use api_gateway::{GatewayConfig, MAX_HEADERS, MAX_URI_BYTES};
use reqwest::{Method, StatusCode};
use support::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

#[tokio::test]
async fn an_overlong_uri_is_414_with_the_envelope() {
    let gateway = spawn_without_services().await;
    // Over our limit: refused by the middleware, with the client's request id.
    let query = "x".repeat(MAX_URI_BYTES + 1);
    let response = gateway
        .client
        .get(gateway.url(&format!("/users?q={query}")))
        .header("x-request-id", "long-uri-1")
        .send()
        .await
        .unwrap();
    let body = envelope(response, StatusCode::URI_TOO_LONG, "uri_too_long").await;
    assert_eq!(body["requestId"], "long-uri-1");

    // Over hyper's own limit (64 KiB): refused before any request exists, still the envelope.
    let query = "x".repeat(80 * 1024);
    let request = format!("GET /users?q={query} HTTP/1.1\r\nHost: x\r\n\r\n");
    raw(&gateway.base, request.as_bytes())
        .await
        .assert_envelope(414, "uri_too_long");
    gateway.stop().await;
}

#[tokio::test]
async fn too_many_headers_are_431_with_the_envelope() {
    let gateway = spawn_without_services().await;
    let mut request = gateway
        .client
        .get(gateway.url("/health/live"))
        .header("x-request-id", "many-headers-1");
    for i in 0..200 {
        request = request.header(format!("x-filler-{i}"), "1");
    }
    let response = request.send().await.unwrap();
    let body = envelope(
        response,
        StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
        "request_header_fields_too_large",
    )
    .await;
    assert_eq!(body["requestId"], "many-headers-1");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains(&MAX_HEADERS.to_string())
    );

    // One large header over the byte limit.
    let response = gateway
        .client
        .get(gateway.url("/health/live"))
        .header("x-large", "y".repeat(40 * 1024))
        .send()
        .await
        .unwrap();
    envelope(
        response,
        StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
        "request_header_fields_too_large",
    )
    .await;

    // Past hyper's own count limit.
    let mut raw_request = String::from("GET /health/live HTTP/1.1\r\nHost: x\r\n");
    for i in 0..1000 {
        raw_request.push_str(&format!("x-filler-{i}: 1\r\n"));
    }
    raw_request.push_str("\r\n");
    raw(&gateway.base, raw_request.as_bytes())
        .await
        .assert_envelope(431, "request_header_fields_too_large");
    gateway.stop().await;
}

#[tokio::test]
async fn unparsable_requests_are_400_with_the_envelope() {
    let gateway = spawn_without_services().await;
    let cases: [&[u8]; 5] = [
        b"POST /users HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: ten\r\n\r\n{}",
        b"GARBAGE\r\n\r\n",
        b"GET /users HTTP/9.9\r\nHost: x\r\n\r\n",
        b"GET /users/\xff\xfe HTTP/1.1\r\nHost: x\r\n\r\n",
        b"GET /users HTTP/1.1\r\nHost: x\r\nbad header\r\n\r\n",
    ];
    for request in cases {
        let reply = raw(&gateway.base, request).await;
        let body = reply.assert_envelope(400, "invalid_argument");
        assert!(
            body["error"]["message"].as_str().unwrap().contains("HTTP"),
            "{body}"
        );
    }
    // The connection still serves well-formed requests afterwards on new connections.
    let live = gateway.send(Method::GET, "/health/live").await;
    assert_eq!(live.status(), StatusCode::OK);
    gateway.stop().await;
}

async fn spawn_with_short_timeouts() -> Gateway {
    spawn(GatewayConfig {
        user_service_address: dead_address().await,
        diary_service_address: dead_address().await,
        header_read_timeout: Duration::from_millis(500),
        body_read_timeout: Duration::from_millis(500),
        ..GatewayConfig::default()
    })
    .await
}

#[tokio::test]
async fn a_half_sent_header_is_cut_off_after_the_header_read_timeout() {
    let gateway = spawn_with_short_timeouts().await;
    let address = gateway.base.trim_start_matches("http://").to_owned();
    let mut socket = tokio::net::TcpStream::connect(&address).await.unwrap();
    socket
        .write_all(b"GET /users HTTP/1.1\r\nHost: x\r\n")
        .await
        .unwrap();
    let started = Instant::now();
    let mut buffer = Vec::new();
    let closed = tokio::time::timeout(Duration::from_secs(5), socket.read_to_end(&mut buffer))
        .await
        .is_ok();
    assert!(closed, "the server keeps a half-sent header open");
    assert!(started.elapsed() < Duration::from_secs(3));
    gateway.stop().await;
}

#[tokio::test]
async fn a_half_sent_body_is_408_after_the_body_read_timeout() {
    let gateway = spawn_with_short_timeouts().await;
    let address = gateway.base.trim_start_matches("http://").to_owned();
    let mut socket = tokio::net::TcpStream::connect(&address).await.unwrap();
    socket
        .write_all(
            b"POST /users HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n\
              Content-Length: 100\r\n\r\n{\"username\":",
        )
        .await
        .unwrap();
    let mut buffer = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(5), async {
        let mut chunk = [0u8; 4096];
        loop {
            match socket.read(&mut chunk).await {
                Ok(0) | Err(_) => break,
                Ok(n) => buffer.extend_from_slice(&chunk[..n]),
            }
            if String::from_utf8_lossy(&buffer).contains("\"requestId\"") {
                break;
            }
        }
    })
    .await;
    assert!(read.is_ok(), "no answer to a stalled body");
    let text = String::from_utf8_lossy(&buffer);
    assert!(text.starts_with("HTTP/1.1 408 "), "{text}");
    assert!(text.contains("\"code\":\"request_timeout\""), "{text}");
    assert!(
        text.to_ascii_lowercase().contains("x-request-id:"),
        "{text}"
    );
    gateway.stop().await;
}

#[tokio::test]
async fn a_body_announced_over_the_limit_is_413_before_it_is_sent() {
    let gateway = spawn_without_services().await;
    // Only two bytes follow: a gateway that waited for the announced body would answer 408
    // after the body read timeout (30 s), past `raw`'s 10 s wait for a response.
    let request = format!(
        "POST /diary/sessions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\n\r\n{{}}",
        api_gateway::BODY_LIMIT_BYTES + 1
    );
    raw(&gateway.base, request.as_bytes())
        .await
        .assert_envelope(413, "payload_too_large");
    gateway.stop().await;
}
