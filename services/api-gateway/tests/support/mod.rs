//! Starts the gateway on a free port with its services' addresses pointing at nothing, at a
//! socket that never answers, or at something that is not a gRPC service.

#![allow(dead_code)]

use std::time::Duration;

use api_gateway::GatewayConfig;
use reqwest::{Client, Method, StatusCode};
use serde_json::Value;
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

pub const SOME_ID: &str = "0b9e4c9e-7d1a-4f57-8d59-3f7b8f0d1a2c";

pub struct Gateway {
    pub base: String,
    pub client: Client,
    stop: Option<oneshot::Sender<()>>,
    task: JoinHandle<anyhow::Result<()>>,
}

impl Gateway {
    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.base, path)
    }

    pub async fn send(&self, method: Method, path: &str) -> reqwest::Response {
        self.client
            .request(method, self.url(path))
            .send()
            .await
            .expect("the gateway answers")
    }

    pub async fn send_with_headers(
        &self,
        method: Method,
        path: &str,
        headers: &[(&str, &str)],
    ) -> reqwest::Response {
        let mut request = self.client.request(method, self.url(path));
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        request.send().await.expect("the gateway answers")
    }

    pub async fn send_json(&self, method: Method, path: &str, body: &str) -> reqwest::Response {
        self.client
            .request(method, self.url(path))
            .header("content-type", "application/json")
            .body(body.to_owned())
            .send()
            .await
            .expect("the gateway answers")
    }

    pub async fn stop(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        let result = tokio::time::timeout(Duration::from_secs(10), self.task)
            .await
            .expect("the gateway stops after the shutdown signal")
            .expect("the serve task does not panic");
        result.expect("serve returns Ok after a graceful shutdown");
    }
}

/// A local port with nothing listening on it.
pub async fn dead_address() -> String {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap().to_string();
    drop(listener);
    address
}

/// A socket that accepts connections and never says a word.
pub async fn silent_address() -> (String, JoinHandle<()>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap().to_string();
    let task = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((socket, _)) = listener.accept().await {
            held.push(socket);
        }
    });
    (address, task)
}

pub async fn spawn(config: GatewayConfig) -> Gateway {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let (stop, stopped) = oneshot::channel::<()>();
    let task = tokio::spawn(api_gateway::serve(listener, config, async {
        let _ = stopped.await;
    }));
    let client = Client::builder()
        .no_proxy()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(20))
        .build()
        .unwrap();
    Gateway {
        base,
        client,
        stop: Some(stop),
        task,
    }
}

/// A gateway whose services are down.
pub async fn spawn_without_services() -> Gateway {
    spawn(GatewayConfig {
        user_service_address: dead_address().await,
        diary_service_address: format!("http://{}", dead_address().await),
        request_timeout: Duration::from_secs(5),
        ..GatewayConfig::default()
    })
    .await
}

/// The error envelope of `response`, checked for shape and for the echoed request id.
pub async fn envelope(response: reqwest::Response, status: StatusCode, code: &str) -> Value {
    assert_eq!(response.status(), status);
    let header_id = response
        .headers()
        .get("x-request-id")
        .expect("every response carries x-request-id")
        .to_str()
        .unwrap()
        .to_owned();
    let body: Value = response.json().await.expect("an error body is JSON");
    assert_eq!(body["error"]["code"], code, "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .is_some_and(|m| !m.is_empty()),
        "{body}"
    );
    assert!(body["error"]["details"].is_array(), "{body}");
    assert_eq!(body["requestId"], header_id.as_str(), "{body}");
    body
}

pub fn fields(body: &Value) -> Vec<String> {
    body["error"]["details"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["field"].as_str().unwrap().to_owned())
        .collect()
}

/// A server that answers every connection with an HTTP/1 400: not a gRPC service.
pub async fn http1_address() -> (String, JoinHandle<()>) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap().to_string();
    let task = tokio::spawn(async move {
        while let Ok((mut socket, _)) = listener.accept().await {
            let mut buffer = [0u8; 1024];
            let _ = socket.read(&mut buffer).await;
            let _ = socket
                .write_all(b"HTTP/1.1 400 Bad Request\r\ncontent-length: 0\r\n\r\n")
                .await;
        }
    });
    (address, task)
}

/// An HTTP/1.1 response read off a raw socket.
#[derive(Debug)]
pub struct RawReply {
    pub status: u16,
    /// Header names lower-cased.
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl RawReply {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    /// Asserts the error envelope: status, code, JSON content type, and the request id in
    /// both the header and the body.
    pub fn assert_envelope(&self, status: u16, code: &str) -> Value {
        assert_eq!(self.status, status, "{self:?}");
        assert_eq!(
            self.header("content-type"),
            Some("application/json"),
            "{self:?}"
        );
        let body: Value = serde_json::from_str(&self.body).expect("a JSON body");
        assert_eq!(body["error"]["code"], code, "{body}");
        assert!(body["error"]["details"].is_array(), "{body}");
        let id = self.header("x-request-id").expect("x-request-id");
        assert_eq!(body["requestId"], id, "{body}");
        body
    }
}

/// Sends `request` as raw bytes on a new connection and reads the first response (the
/// connection must close after it, or its content-length must say where it ends).
pub async fn raw(base: &str, request: &[u8]) -> RawReply {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let address = base.trim_start_matches("http://");
    let mut socket = tokio::net::TcpStream::connect(address).await.unwrap();
    // The server may answer and close before everything is written (a header block it
    // refuses early): a failed write is not a failed test.
    let _ = socket.write_all(request).await;
    let mut received = Vec::new();
    let read = async {
        let mut buffer = [0u8; 8192];
        loop {
            match socket.read(&mut buffer).await {
                Ok(0) | Err(_) => break,
                Ok(n) => received.extend_from_slice(&buffer[..n]),
            }
            if let Some(reply) = parse_raw(&received) {
                return reply;
            }
        }
        parse_raw(&received).unwrap_or_else(|| {
            panic!(
                "no complete response: {:?}",
                String::from_utf8_lossy(&received)
            )
        })
    };
    tokio::time::timeout(Duration::from_secs(10), read)
        .await
        .expect("a response within 10 s")
}

fn parse_raw(bytes: &[u8]) -> Option<RawReply> {
    let text = String::from_utf8_lossy(bytes);
    let (head, body) = text.split_once("\r\n\r\n")?;
    let mut lines = head.split("\r\n");
    let status = lines.next()?.split(' ').nth(1)?.parse().ok()?;
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    let length: usize = headers
        .iter()
        .find(|(n, _)| n == "content-length")
        .and_then(|(_, v)| v.parse().ok())?;
    (body.len() >= length).then(|| RawReply {
        status,
        headers,
        body: body[..length].to_owned(),
    })
}
