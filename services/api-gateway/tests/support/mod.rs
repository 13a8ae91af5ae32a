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
