//! The gRPC servers as clients other than the gateway see them: shutdown with idle and
//! half-open connections, reflection (v1 and v1alpha) per port, malformed messages.

mod support;

use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use prost::bytes::{Buf, BufMut};
use tokio::io::AsyncWriteExt;
use tonic::codec::{Codec, DecodeBuf, Decoder, EncodeBuf, Encoder};
use tonic::codegen::http::uri::PathAndQuery;
use tonic::transport::Channel;
use tonic_types::StatusExt;

const USER_SERVICE: &str = "metachat.user.v1.UserService";
const DIARY_SERVICE: &str = "metachat.diary.v1.DiaryService";
const HEALTH: &str = "grpc.health.v1.Health";
const REFLECTION_V1: &str = "grpc.reflection.v1.ServerReflection";
const REFLECTION_V1ALPHA: &str = "grpc.reflection.v1alpha.ServerReflection";

/// The drain timeout the shutdown tests set, and how much longer the process may take.
const SHUTDOWN_TIMEOUT_SECS: u64 = 1;
const SHUTDOWN_MARGIN: Duration = Duration::from_secs(5);

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

fn spawn_metachat(args: &[&str], env: &[(&str, String)], dir: &Path) -> Child {
    std::fs::create_dir_all(dir).expect("data dir");
    let log = std::fs::File::create(dir.join("process.log")).expect("log file");
    let mut command = Command::new(env!("CARGO_BIN_EXE_metachat"));
    command
        .args(args)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("LOG_LEVEL", "info")
        .env("DATA_DIR", dir)
        .env("SHUTDOWN_TIMEOUT_SECS", SHUTDOWN_TIMEOUT_SECS.to_string())
        .stdout(Stdio::from(log.try_clone().expect("log handle")))
        .stderr(Stdio::from(log))
        .stdin(Stdio::null());
    for (name, value) in env {
        command.env(name, value);
    }
    command.spawn().expect("spawn metachat")
}

fn logs(dir: &Path) -> String {
    std::fs::read_to_string(dir.join("process.log")).unwrap_or_default()
}

/// Waits until the gRPC server on `port` answers a health check.
async fn wait_serving(port: u16, child: &mut Child, dir: &Path) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Ok(Some(status)) = child.try_wait() {
            panic!("metachat exited early with {status}: {}", logs(dir));
        }
        if let Ok(channel) = connect(port).await {
            let mut health = tonic_health::pb::health_client::HealthClient::new(channel);
            let request = tonic_health::pb::HealthCheckRequest::default();
            if health.check(request).await.is_ok() {
                return;
            }
        }
        assert!(
            Instant::now() < deadline,
            "port {port} not serving in 30 s: {}",
            logs(dir)
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn connect(port: u16) -> Result<Channel, tonic::transport::Error> {
    tonic::transport::Endpoint::from_shared(format!("http://127.0.0.1:{port}"))?
        .connect()
        .await
}

/// Connections that keep a graceful shutdown waiting: one that sends nothing, one that stops
/// halfway through the HTTP/2 preface, and one that completes the preface and SETTINGS but
/// then never reads or answers.
async fn stalled_connections(port: u16) -> Vec<tokio::net::TcpStream> {
    let address = SocketAddr::from(([127, 0, 0, 1], port));
    let mut connections = Vec::new();
    for sent in [
        &b""[..],
        &b"PRI * HTTP/2.0\r\n"[..],
        &b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\0\0\0\x04\0\0\0\0\0"[..],
    ] {
        let mut stream = tokio::net::TcpStream::connect(address)
            .await
            .expect("connect");
        stream.write_all(sent).await.expect("write");
        connections.push(stream);
    }
    // Give the server a moment to accept them.
    tokio::time::sleep(Duration::from_millis(200)).await;
    connections
}

/// Sends SIGTERM and asserts a clean exit within the drain timeout plus a margin.
fn assert_stops_in_time(mut child: Child, dir: &Path) {
    let _ = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    let limit = Duration::from_secs(SHUTDOWN_TIMEOUT_SECS) + SHUTDOWN_MARGIN;
    let started = Instant::now();
    loop {
        match child.try_wait() {
            Ok(Some(status)) => {
                assert!(status.success(), "exit status {status}: {}", logs(dir));
                return;
            }
            _ if started.elapsed() > limit => {
                let _ = child.kill();
                let _ = child.wait();
                panic!(
                    "still running {limit:?} after SIGTERM with stalled connections open: {}",
                    logs(dir)
                );
            }
            _ => std::thread::sleep(Duration::from_millis(20)),
        }
    }
}

fn fresh_dir() -> std::path::PathBuf {
    std::env::temp_dir()
        .join("metachat-tests")
        .join(uuid::Uuid::new_v4().simple().to_string())
}

/// A connection that sends nothing is closed after 10 s (so that silent connections cannot
/// exhaust the process's file descriptors); one that sent its first bytes is kept.
#[tokio::test]
async fn a_connection_that_sends_nothing_is_closed() {
    use tokio::io::AsyncReadExt;
    let dir = fresh_dir();
    let port = free_port();
    let mut child = spawn_metachat(&["user-service"], &[("PORT", port.to_string())], &dir);
    wait_serving(port, &mut child, &dir).await;
    let address = SocketAddr::from(([127, 0, 0, 1], port));
    let mut silent = tokio::net::TcpStream::connect(address).await.unwrap();
    let mut talking = tokio::net::TcpStream::connect(address).await.unwrap();
    talking
        .write_all(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\0\0\0\x04\0\0\0\0\0")
        .await
        .unwrap();
    let started = std::time::Instant::now();
    let mut buf = [0u8; 64];
    let closed = tokio::time::timeout(Duration::from_secs(20), silent.read(&mut buf)).await;
    let waited = started.elapsed();
    assert!(
        matches!(closed, Ok(Ok(0)) | Ok(Err(_))),
        "the silent connection is still open after {waited:?}: {closed:?}"
    );
    assert!(
        waited >= Duration::from_secs(8),
        "closed too early: {waited:?}"
    );
    // The other one got the server's SETTINGS and is still open.
    let read = tokio::time::timeout(Duration::from_secs(1), talking.read(&mut buf)).await;
    assert!(matches!(read, Ok(Ok(n)) if n > 0), "{read:?}");
    let _ = child.kill();
    let _ = child.wait();
}

#[tokio::test]
async fn a_standalone_service_stops_in_time_despite_stalled_connections() {
    let dir = fresh_dir();
    let port = free_port();
    let mut child = spawn_metachat(&["user-service"], &[("PORT", port.to_string())], &dir);
    wait_serving(port, &mut child, &dir).await;
    let _open = stalled_connections(port).await;
    assert_stops_in_time(child, &dir);
}

#[tokio::test]
async fn the_embedded_platform_stops_in_time_despite_stalled_grpc_connections() {
    let dir = fresh_dir();
    let (gateway, user, diary) = (free_port(), free_port(), free_port());
    let env = [
        ("PORT", gateway.to_string()),
        ("USER_SERVICE_PORT", user.to_string()),
        ("DIARY_SERVICE_PORT", diary.to_string()),
    ];
    let mut child = spawn_metachat(&[], &env, &dir);
    wait_serving(user, &mut child, &dir).await;
    wait_serving(diary, &mut child, &dir).await;
    let _user_open = stalled_connections(user).await;
    let _diary_open = stalled_connections(diary).await;
    assert_stops_in_time(child, &dir);
}

/// One reflection stream, in either protocol version.
macro_rules! reflection_client {
    ($name:ident, $version:ident) => {
        /// Asks each question in turn on one stream and returns the answers.
        async fn $name(channel: Channel, questions: Vec<Question>) -> Vec<Answer> {
            use tonic_reflection::pb::$version::ServerReflectionRequest;
            use tonic_reflection::pb::$version::server_reflection_client::ServerReflectionClient;
            use tonic_reflection::pb::$version::server_reflection_request::MessageRequest;
            use tonic_reflection::pb::$version::server_reflection_response::MessageResponse;

            let requests: Vec<ServerReflectionRequest> = questions
                .into_iter()
                .map(|question| ServerReflectionRequest {
                    host: String::new(),
                    message_request: Some(match question {
                        Question::ListServices => MessageRequest::ListServices(String::new()),
                        Question::Symbol(symbol) => MessageRequest::FileContainingSymbol(symbol),
                    }),
                })
                .collect();
            let expected = requests.len();
            let mut stream = ServerReflectionClient::new(channel)
                .server_reflection_info(tokio_stream::iter(requests))
                .await
                .expect("reflection stream")
                .into_inner();
            let mut answers = Vec::new();
            while let Some(reply) = stream.message().await.expect("the stream stays open") {
                answers.push(match reply.message_response {
                    Some(MessageResponse::ListServicesResponse(list)) => {
                        let mut names: Vec<String> =
                            list.service.into_iter().map(|s| s.name).collect();
                        names.sort();
                        Answer::Services(names)
                    }
                    Some(MessageResponse::FileDescriptorResponse(files)) => {
                        Answer::Files(files.file_descriptor_proto.len())
                    }
                    Some(MessageResponse::ErrorResponse(error)) => {
                        Answer::Error(tonic::Code::from(error.error_code))
                    }
                    other => panic!("unexpected reflection answer {other:?}"),
                });
            }
            assert_eq!(answers.len(), expected, "one answer per question");
            answers
        }
    };
}

#[derive(Debug)]
enum Question {
    ListServices,
    Symbol(String),
}

#[derive(Debug, PartialEq)]
enum Answer {
    Services(Vec<String>),
    Files(usize),
    Error(tonic::Code),
}

reflection_client!(reflect_v1, v1);
reflection_client!(reflect_v1alpha, v1alpha);

#[tokio::test]
async fn reflection_v1_and_v1alpha_describe_only_what_each_port_serves() {
    let mut app = support::Platform::start().await;
    for (address, served, other) in [
        (app.user_grpc(), USER_SERVICE, DIARY_SERVICE),
        (app.diary_grpc(), DIARY_SERVICE, USER_SERVICE),
    ] {
        let channel = tonic::transport::Endpoint::from_shared(address)
            .expect("address")
            .connect()
            .await
            .expect("connect");
        let mut listed = vec![
            HEALTH.to_owned(),
            REFLECTION_V1.to_owned(),
            REFLECTION_V1ALPHA.to_owned(),
            served.to_owned(),
        ];
        listed.sort();
        let questions = || {
            vec![
                Question::ListServices,
                // Unknown here: answered in the stream, which goes on.
                Question::Symbol("no.such.Symbol".into()),
                Question::Symbol(other.into()),
                Question::Symbol(served.into()),
            ]
        };
        for answers in [
            reflect_v1(channel.clone(), questions()).await,
            reflect_v1alpha(channel.clone(), questions()).await,
        ] {
            assert_eq!(answers[0], Answer::Services(listed.clone()), "{served}");
            assert_eq!(answers[1], Answer::Error(tonic::Code::NotFound));
            assert_eq!(answers[2], Answer::Error(tonic::Code::NotFound), "{other}");
            assert!(
                matches!(answers[3], Answer::Files(n) if n >= 1),
                "{served}: {answers:?}"
            );
        }
    }
    app.stop();
}

/// Sends and receives raw message bytes, whatever the method's types.
#[derive(Debug, Clone, Copy, Default)]
struct RawCodec;

impl Codec for RawCodec {
    type Encode = Vec<u8>;
    type Decode = Vec<u8>;
    type Encoder = Self;
    type Decoder = Self;

    fn encoder(&mut self) -> Self {
        Self
    }

    fn decoder(&mut self) -> Self {
        Self
    }
}

impl Encoder for RawCodec {
    type Item = Vec<u8>;
    type Error = tonic::Status;

    fn encode(&mut self, item: Vec<u8>, dst: &mut EncodeBuf<'_>) -> Result<(), tonic::Status> {
        dst.put_slice(&item);
        Ok(())
    }
}

impl Decoder for RawCodec {
    type Item = Vec<u8>;
    type Error = tonic::Status;

    fn decode(&mut self, src: &mut DecodeBuf<'_>) -> Result<Option<Vec<u8>>, tonic::Status> {
        let mut message = vec![0; src.remaining()];
        src.copy_to_slice(&mut message);
        Ok(Some(message))
    }
}

async fn call_raw(address: String, method: &'static str, message: Vec<u8>) -> tonic::Status {
    let channel = tonic::transport::Endpoint::from_shared(address)
        .expect("address")
        .connect()
        .await
        .expect("connect");
    let mut grpc = tonic::client::Grpc::new(channel);
    grpc.ready().await.expect("ready");
    grpc.unary(
        tonic::Request::new(message),
        PathAndQuery::from_static(method),
        RawCodec,
    )
    .await
    .expect_err("a malformed message is refused")
}

fn assert_invalid_argument(status: &tonic::Status) {
    assert_eq!(status.code(), tonic::Code::InvalidArgument, "{status:?}");
    let details = status.get_error_details();
    let info = details.error_info().expect("an ErrorInfo");
    assert_eq!(info.domain, metachat_proto::error::ERROR_DOMAIN);
    assert_eq!(info.reason, "invalid_argument");
}

#[tokio::test]
async fn malformed_messages_are_invalid_argument_not_internal() {
    let mut app = support::Platform::start().await;
    // GetUserRequest.id (field 1, a string) holding invalid UTF-8.
    let status = call_raw(
        app.user_grpc(),
        "/metachat.user.v1.UserService/GetUser",
        vec![0x0a, 0x02, 0xff, 0xfe],
    )
    .await;
    assert_invalid_argument(&status);
    // Not protobuf at all.
    let status = call_raw(
        app.diary_grpc(),
        "/metachat.diary.v1.DiaryService/CreateEntry",
        vec![0xff; 11],
    )
    .await;
    assert_invalid_argument(&status);
    app.stop();
}
