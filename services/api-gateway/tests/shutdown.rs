//! The real `api-gateway` process stops within its drain timeout after SIGTERM, whatever its
//! clients are doing: connected and silent, half-way through a header, or through a body.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

#[tokio::test]
async fn sigterm_stops_the_process_within_the_drain_timeout_despite_stalled_clients() {
    let port = free_port();
    let dead = format!("127.0.0.1:{}", free_port());
    let mut child = Command::new(env!("CARGO_BIN_EXE_api-gateway"))
        .env_clear()
        .env("PORT", port.to_string())
        // Without authentication the gateway serves only on loopback.
        .env("BIND_ADDRESS", "127.0.0.1")
        .env("USER_SERVICE_ADDRESS", &dead)
        .env("DIARY_SERVICE_ADDRESS", &dead)
        .env("SHUTDOWN_TIMEOUT_SECS", "2")
        .env("LOG_FORMAT", "text")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start api-gateway");
    let address = format!("127.0.0.1:{port}");
    let deadline = Instant::now() + Duration::from_secs(20);
    let client = reqwest::Client::builder().no_proxy().build().unwrap();
    loop {
        let live = client
            .get(format!("http://{address}/health/live"))
            .send()
            .await;
        if live.is_ok_and(|r| r.status().is_success()) {
            break;
        }
        assert!(Instant::now() < deadline, "the gateway did not start");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    let _idle = TcpStream::connect(&address).await.unwrap();
    let mut half_header = TcpStream::connect(&address).await.unwrap();
    half_header
        .write_all(b"GET /users HTTP/1.1\r\nHost: x\r\n")
        .await
        .unwrap();
    let mut half_body = TcpStream::connect(&address).await.unwrap();
    half_body
        .write_all(
            b"POST /users HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n\
              Content-Length: 1000\r\n\r\n{\"username\":",
        )
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;

    let signalled = Instant::now();
    let killed = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if signalled.elapsed() > Duration::from_secs(8) {
            let _ = child.kill();
            let _ = child.wait();
            panic!("the gateway was still running 8 s after SIGTERM (drain timeout 2 s)");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert!(status.success(), "{status}");
    assert!(
        signalled.elapsed() < Duration::from_secs(5),
        "{:?}",
        signalled.elapsed()
    );
}
