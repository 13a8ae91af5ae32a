//! The platform as a whole: restart durability, the services as separate processes, the gRPC
//! surface (health, reflection, typed errors), and what the logs may not contain.

mod support;

use metachat_proto::error::{ApiError, ErrorCode};
use metachat_proto::user::GetUserRequest;
use metachat_proto::user::user_service_client::UserServiceClient;
use reqwest::StatusCode;
use serde_json::json;
use support::Platform;

#[tokio::test]
async fn data_survives_a_restart_and_read_models_resume() {
    let mut app = Platform::start().await;
    let user = app.create_user().await;
    let entry = app
        .post(
            "/diary/entries",
            json!({ "userId": user, "title": "kept", "content": "still here after a restart" }),
        )
        .await;
    assert_eq!(entry.status, StatusCode::CREATED);
    let entry_id = entry.id();
    let listed = app
        .get_after(&format!("/diary/entries/user/{user}"), &entry.token())
        .await;
    assert_eq!(listed.status, StatusCode::OK, "{}", listed.body);
    assert_eq!(listed.body["entries"].as_array().unwrap().len(), 1);
    // The entry as it settles: its analysis is recorded asynchronously.
    let analysed = app
        .eventually(&format!("/diary/entries/{entry_id}"), |r| {
            r.body["analysis"].is_object()
        })
        .await;

    app.restart().await;

    let user_after = app.get(&format!("/users/{user}")).await;
    assert_eq!(user_after.status, StatusCode::OK, "{}", user_after.body);
    let entry_after = app.get(&format!("/diary/entries/{entry_id}")).await;
    assert_eq!(entry_after.body, analysed.body);
    // A write after the restart lands in the read models too (projections resumed).
    let second = app
        .post(
            "/diary/entries",
            json!({ "userId": user, "title": "new", "content": "after" }),
        )
        .await;
    assert_eq!(second.status, StatusCode::CREATED);
    let list = app
        .get_after(&format!("/diary/entries/user/{user}"), &second.token())
        .await;
    assert_eq!(list.body["entries"].as_array().unwrap().len(), 2);
    assert_eq!(list.body["entries"][1]["id"], entry_id.as_str());
    let users = app.get("/users").await;
    assert_eq!(
        users.body["total"], 1,
        "a restart must not replay into duplicates"
    );
    app.stop();

    // The embedded read models can be rebuilt from the events while the platform is down.
    if app.wiring == support::Wiring::Embedded {
        let rebuilt = std::process::Command::new(env!("CARGO_BIN_EXE_metachat"))
            .arg("rebuild-read-models")
            .env_clear()
            .env("DATA_DIR", &app.data_dir)
            .env("LOG_LEVEL", "warn")
            .output()
            .expect("run metachat rebuild-read-models");
        let stdout = String::from_utf8_lossy(&rebuilt.stdout);
        assert!(
            rebuilt.status.success(),
            "{stdout}{}",
            String::from_utf8_lossy(&rebuilt.stderr)
        );
        assert!(stdout.contains("rebuilt diary-read-models"), "{stdout}");
        app.restart().await;
        let after = app.get(&format!("/diary/entries/user/{user}")).await;
        assert_eq!(
            after.body["entries"], list.body["entries"],
            "a rebuild gives the same lists"
        );
        assert_eq!(app.get("/users").await.body["total"], 1);
        app.stop();
    }
}

#[tokio::test]
async fn the_services_run_as_separate_processes() {
    let mut app = Platform::start_separate().await;
    let user = app.create_user().await;
    let session = app.post("/diary/sessions", json!({ "userId": user })).await;
    assert_eq!(session.status, StatusCode::CREATED, "{}", session.body);
    let entry = app
        .post(
            "/diary/entries",
            json!({ "userId": user, "title": "t", "content": "c", "sessionId": session.id() }),
        )
        .await;
    assert_eq!(entry.status, StatusCode::CREATED, "{}", entry.body);
    // The diary service checks users with the user service, over gRPC.
    app.post(
        "/diary/entries",
        json!({ "userId": uuid::Uuid::new_v4(), "title": "t", "content": "c" }),
    )
    .await
    .assert_error(StatusCode::NOT_FOUND, "not_found", Some("userId"));
    let ready = app.get("/health/ready").await;
    assert_eq!(ready.body["checks"]["userService"], "serving");
    assert_eq!(ready.body["checks"]["diaryService"], "serving");
    app.stop();
}

#[tokio::test]
async fn a_stopped_service_makes_the_gateway_answer_503_not_500() {
    let mut app = Platform::start_separate().await;
    let user = app.create_user().await;
    app.stop_service("diary-service");
    let down = app.post("/diary/sessions", json!({ "userId": user })).await;
    down.assert_error(StatusCode::SERVICE_UNAVAILABLE, "unavailable", None);
    assert!(
        down.headers.contains_key("retry-after"),
        "{:?}",
        down.headers
    );
    let ready = app.get("/health/ready").await;
    assert_eq!(ready.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(ready.body["checks"]["userService"], "serving");
    let live = app.get("/health/live").await;
    assert_eq!(live.status, StatusCode::OK);
}

#[tokio::test]
async fn grpc_clients_get_typed_errors_health_and_reflection() {
    let app = Platform::start().await;
    let mut users = UserServiceClient::connect(app.user_grpc()).await.unwrap();

    let status = users
        .get_user(GetUserRequest {
            id: "nope".into(),
            as_of: None,
        })
        .await
        .unwrap_err();
    assert_eq!(status.code(), tonic::Code::InvalidArgument);
    let error = ApiError::from(status);
    assert_eq!(error.code, ErrorCode::InvalidArgument);
    assert_eq!(error.details[0].field, "id");

    let missing = users
        .get_user(GetUserRequest {
            id: uuid::Uuid::new_v4().to_string(),
            as_of: None,
        })
        .await
        .unwrap_err();
    assert_eq!(missing.code(), tonic::Code::NotFound);

    for (address, service) in [
        (app.user_grpc(), "metachat.user.v1.UserService"),
        (app.diary_grpc(), "metachat.diary.v1.DiaryService"),
    ] {
        let channel = tonic::transport::Endpoint::from_shared(address)
            .unwrap()
            .connect()
            .await
            .unwrap();
        let mut health = tonic_health::pb::health_client::HealthClient::new(channel.clone());
        let reply = health
            .check(tonic_health::pb::HealthCheckRequest {
                service: service.into(),
            })
            .await
            .unwrap()
            .into_inner();
        assert_eq!(
            reply.status,
            tonic_health::pb::health_check_response::ServingStatus::Serving as i32
        );
        assert!(
            reflection_lists(channel, service).await,
            "{service} missing from reflection"
        );
    }
}

/// Asks the reflection service which services it knows, as `grpcurl list` does.
async fn reflection_lists(channel: tonic::transport::Channel, service: &str) -> bool {
    use tonic_reflection::pb::v1::ServerReflectionRequest;
    use tonic_reflection::pb::v1::server_reflection_client::ServerReflectionClient;
    use tonic_reflection::pb::v1::server_reflection_request::MessageRequest;
    use tonic_reflection::pb::v1::server_reflection_response::MessageResponse;

    let mut client = ServerReflectionClient::new(channel);
    let request = ServerReflectionRequest {
        host: String::new(),
        message_request: Some(MessageRequest::ListServices(String::new())),
    };
    let mut stream = client
        .server_reflection_info(tokio_stream::iter([request]))
        .await
        .unwrap()
        .into_inner();
    let Some(reply) = stream.message().await.unwrap() else {
        return false;
    };
    match reply.message_response {
        Some(MessageResponse::ListServicesResponse(list)) => {
            list.service.iter().any(|s| s.name == service)
        }
        _ => false,
    }
}

#[tokio::test]
async fn diary_text_never_reaches_the_logs() {
    let mut app = Platform::start().await;
    let user = app.create_user().await;
    let secret = "my-very-private-thought-4711";
    let entry = app
        .post(
            "/diary/entries",
            json!({ "userId": user, "title": "private title 4711", "content": secret, "tags": ["tag-4711"] }),
        )
        .await;
    assert_eq!(entry.status, StatusCode::CREATED);
    app.put(
        &format!("/diary/entries/{}", entry.id()),
        json!({ "content": format!("{secret} again") }),
    )
    .await;
    app.post(
        "/diary/entries",
        json!({ "userId": user, "content": secret, "title": 4711 }),
    )
    .await
    .assert_error(StatusCode::BAD_REQUEST, "invalid_argument", Some("title"));
    app.stop();
    let logs = app.logs();
    assert!(
        logs.contains("diary entry created"),
        "the logs are being read: {logs}"
    );
    assert!(
        !logs.contains("4711"),
        "diary text leaked into the logs: {logs}"
    );
}

#[tokio::test]
async fn unknown_routes_and_methods_use_the_error_envelope() {
    let app = Platform::start().await;
    app.get("/nothing-here")
        .await
        .assert_error(StatusCode::NOT_FOUND, "not_found", None);
    app.request("PATCH", "/users", None).await.assert_error(
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
        None,
    );
    let reply = app
        .send_raw("POST", "/users", "text/plain", "username=x")
        .await;
    assert!(reply.status.is_client_error(), "{}", reply.body);
    assert!(reply.body["error"]["code"].is_string(), "{}", reply.body);
    let docs = app.get("/docs").await;
    assert_eq!(docs.status, StatusCode::OK);
    let spec = app.get("/openapi.json").await;
    assert_eq!(spec.status, StatusCode::OK);
    assert!(spec.body["paths"]["/users"].is_object());
}

#[tokio::test]
async fn the_platform_stops_on_sigterm_despite_stalled_clients() {
    use tokio::io::AsyncWriteExt;
    let mut app = Platform::start().await;
    let address = app.url("").trim_start_matches("http://").to_owned();
    let _idle = tokio::net::TcpStream::connect(&address).await.unwrap();
    let mut half_header = tokio::net::TcpStream::connect(&address).await.unwrap();
    half_header
        .write_all(b"GET /users HTTP/1.1\r\nHost: x\r\n")
        .await
        .unwrap();
    let mut half_body = tokio::net::TcpStream::connect(&address).await.unwrap();
    half_body
        .write_all(
            b"POST /users HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n\
              Content-Length: 1000\r\n\r\n{",
        )
        .await
        .unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    // Asserts a clean exit within 20 s; the drain is bounded by SHUTDOWN_TIMEOUT_SECS (10).
    app.stop();
}

/// Runs `metachat <args>` with only `env` (and a fresh `DATA_DIR`), expecting it to refuse to
/// start: returns its error output, after checking that it exited with a failure, promptly, and
/// before opening any store.
fn refused_start(args: &[&str], env: &[(&str, &str)]) -> String {
    use std::process::{Command, Stdio};
    use std::time::{Duration, Instant};

    let data_dir = std::env::temp_dir()
        .join("metachat-tests")
        .join(uuid::Uuid::new_v4().simple().to_string());
    std::fs::create_dir_all(&data_dir).expect("create data dir");
    let stderr_path = data_dir.join("stderr");
    let mut child = Command::new(env!("CARGO_BIN_EXE_metachat"))
        .args(args)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("DATA_DIR", &data_dir)
        .env("LOG_FORMAT", "text")
        .envs(env.iter().copied())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::from(
            std::fs::File::create(&stderr_path).expect("stderr file"),
        ))
        .spawn()
        .expect("run metachat");
    let deadline = Instant::now() + Duration::from_secs(10);
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait for metachat") {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("metachat {args:?} with {env:?} started instead of refusing");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let stderr = std::fs::read_to_string(&stderr_path).unwrap_or_default();
    assert!(
        !status.success(),
        "{args:?} {env:?}: exited {status}: {stderr}"
    );
    let opened: Vec<_> = std::fs::read_dir(&data_dir)
        .expect("read data dir")
        .flatten()
        .map(|e| e.file_name())
        .filter(|name| name != "stderr")
        .collect();
    assert!(
        opened.is_empty(),
        "{args:?} {env:?}: opened {opened:?} before refusing"
    );
    stderr
}

#[test]
fn a_bad_variable_stops_the_start_with_an_error_naming_it() {
    let cases: [(&[&str], &str, &str); 18] = [
        (&[], "PORT", "abc"),
        (&["run"], "USER_SERVICE_PORT", "70000"),
        (&["run"], "BIND_ADDRESS", "localhost"),
        (&["run"], "REQUEST_TIMEOUT_MS", "0"),
        (&["run"], "SHUTDOWN_TIMEOUT_SECS", "soon"),
        (&["run"], "LOG_LEVEL", "loud"),
        (&["run"], "ENVIRONMENT", "qa"),
        (&["user-service"], "RUST_LOG", "[[["),
        (&["user-service"], "PORT", "abc"),
        (&["user-service"], "SHUTDOWN_TIMEOUT_SECS", "-1"),
        (
            &["diary-service"],
            "USER_SERVICE_ADDRESS",
            "https://users:50051",
        ),
        (&["diary-service"], "LOG_FORMAT", "xml"),
        (&["api-gateway"], "PORT", "abc"),
        // A deadline this long cannot even be sent over gRPC.
        (
            &["api-gateway"],
            "REQUEST_TIMEOUT_MS",
            "9223372036854775807",
        ),
        (&["run"], "REQUEST_TIMEOUT_MS", "18446744073709551615"),
        (
            &["user-service"],
            "READ_YOUR_WRITES_TIMEOUT_MS",
            "99999999999",
        ),
        (&["run"], "SHUTDOWN_TIMEOUT_SECS", "99999999999"),
        (&["rebuild-read-models"], "LOG_FORMAT", "xml"),
    ];
    for (args, name, value) in cases {
        let stderr = refused_start(args, &[("PORT", "0"), (name, value)]);
        assert!(
            stderr.contains(&format!("{name}={value:?}")),
            "metachat {args:?} with {name}={value}: the error must name the variable: {stderr}"
        );
    }
}
