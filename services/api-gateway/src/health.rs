//! Liveness (the process answers) and readiness (both services answer the standard gRPC health
//! check as SERVING).

use std::time::Duration;

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::json;
use tonic::Code;
use tonic::transport::Channel;
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;

use crate::grpc::Backends;

/// The gRPC service names the services register with their health service.
pub const USER_SERVICE_NAME: &str = "metachat.user.v1.UserService";
pub const DIARY_SERVICE_NAME: &str = "metachat.diary.v1.DiaryService";

/// A readiness probe must answer quickly even when a service hangs.
const READY_TIMEOUT: Duration = Duration::from_secs(2);

pub(crate) async fn live() -> Json<serde_json::Value> {
    Json(json!({ "status": "ok" }))
}

/// The dependencies a service may report (production wiring), as its health service names
/// them after `metachat.dependency.`.
const DEPENDENCIES: [&str; 3] = ["postgres", "kafka", "cassandra"];

pub(crate) async fn ready(State(backends): State<Backends>) -> Response {
    let timeout = backends.timeout.min(READY_TIMEOUT);
    let (users, diary, user_dependencies, diary_dependencies) = tokio::join!(
        check(backends.user_health.clone(), USER_SERVICE_NAME, timeout),
        check(backends.diary_health.clone(), DIARY_SERVICE_NAME, timeout),
        dependencies(backends.user_health.clone(), timeout),
        dependencies(backends.diary_health.clone(), timeout),
    );
    let ready = users == "serving" && diary == "serving";
    let status = if ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    let body = json!({
        "status": if ready { "ok" } else { "unavailable" },
        "checks": { "userService": users, "diaryService": diary },
        "dependencies": { "userService": user_dependencies, "diaryService": diary_dependencies },
    });
    (status, Json(body)).into_response()
}

/// What a service reports of each dependency it has (none in the embedded wiring).
async fn dependencies(client: HealthClient<Channel>, timeout: Duration) -> serde_json::Value {
    let checks = DEPENDENCIES.map(|name| {
        let client = client.clone();
        async move {
            let service = format!("metachat.dependency.{name}");
            (name, check(client, &service, timeout).await)
        }
    });
    let results = futures::future::join_all(checks).await;
    let known: serde_json::Map<String, serde_json::Value> = results
        .into_iter()
        // A service that does not know the name has no such dependency; one that is
        // unreachable says nothing of its dependencies.
        .filter(|(_, state)| !matches!(*state, "unknown" | "unreachable"))
        .map(|(name, state)| (name.to_owned(), state.into()))
        .collect();
    known.into()
}

/// `serving`, `not_serving` (answers, but not SERVING), `unknown` (no such service) or
/// `unreachable`.
async fn check(
    mut client: HealthClient<Channel>,
    service: &str,
    timeout: Duration,
) -> &'static str {
    let mut request = tonic::Request::new(HealthCheckRequest {
        service: service.to_owned(),
    });
    request.set_timeout(timeout);
    match tokio::time::timeout(timeout, client.check(request)).await {
        Ok(Ok(response)) if response.get_ref().status == ServingStatus::Serving as i32 => "serving",
        Ok(Ok(_)) => "not_serving",
        Ok(Err(status)) => match status.code() {
            Code::NotFound => "unknown",
            Code::Unavailable | Code::DeadlineExceeded | Code::Cancelled | Code::Unknown => {
                tracing::debug!(
                    service,
                    grpc_message = status.message(),
                    "health check failed"
                );
                "unreachable"
            }
            _ => "not_serving",
        },
        Err(_) => "unreachable",
    }
}
