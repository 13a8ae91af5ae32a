//! Liveness (the process answers) and readiness (both services answer the standard gRPC health
//! check as SERVING).

use std::time::Duration;

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use tonic::Code;
use tonic::transport::Channel;
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;
use utoipa::ToSchema;
use utoipa::openapi::schema::{AdditionalProperties, ObjectBuilder, Schema, Type};

use crate::grpc::Backends;
use crate::openapi::Limits;

/// The gRPC service names the services register with their health service.
pub const USER_SERVICE_NAME: &str = "metachat.user.v1.UserService";
pub const DIARY_SERVICE_NAME: &str = "metachat.diary.v1.DiaryService";

/// A readiness probe must answer quickly even when a service hangs.
const READY_TIMEOUT: Duration = Duration::from_secs(2);

/// What a check of a service found: `serving`, `not_serving` (answers, but not SERVING),
/// `unknown` (no such service) or `unreachable`.
pub(crate) const STATES: [&str; 4] = ["serving", "not_serving", "unknown", "unreachable"];

/// The gateway process answers.
#[derive(Serialize, ToSchema)]
#[schema(as = Liveness)]
pub(crate) struct Liveness {
    #[schema(schema_with = ok)]
    status: &'static str,
}

fn ok() -> Schema {
    ObjectBuilder::new()
        .schema_type(Type::String)
        .enum_values(Some(["ok"]))
        .into()
}

fn readiness_status() -> Schema {
    ObjectBuilder::new()
        .schema_type(Type::String)
        .enum_values(Some(["ok", "unavailable"]))
        .into()
}

fn state() -> Schema {
    ObjectBuilder::new()
        .schema_type(Type::String)
        .enum_values(Some(STATES))
        .into()
}

/// A dependency is listed only when the service knows it (see [`dependencies`]).
fn dependency_state() -> Schema {
    ObjectBuilder::new()
        .schema_type(Type::String)
        .enum_values(Some(["serving", "not_serving"]))
        .into()
}

/// What a service reports of each dependency it has, in the production wiring only
/// (`postgres`, which is critical, `kafka`, `cassandra`); empty when the service is
/// unreachable or has none.
fn dependency_states() -> Schema {
    let mut object = ObjectBuilder::new().schema_type(Type::Object);
    for name in DEPENDENCIES {
        object = object.property(name, dependency_state());
    }
    object
        .additional_properties(Some(AdditionalProperties::FreeForm(false)))
        .into()
}

/// Whether both services answer their health check as serving.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(as = Readiness)]
pub(crate) struct Readiness {
    #[schema(schema_with = readiness_status)]
    status: &'static str,
    checks: Checks,
    dependencies: Dependencies,
}

/// Each service's own health check.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Checks {
    #[schema(schema_with = state)]
    user_service: &'static str,
    #[schema(schema_with = state)]
    diary_service: &'static str,
}

/// What each service reports of its dependencies.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Dependencies {
    #[schema(schema_with = dependency_states)]
    user_service: serde_json::Value,
    #[schema(schema_with = dependency_states)]
    diary_service: serde_json::Value,
}

/// Liveness
///
/// 200 while the gateway process answers; checks nothing else.
#[utoipa::path(get, path = "/health/live", tag = "Operations", operation_id = "live",
    responses((status = 200, description = "Alive.", body = Liveness), Limits))]
pub(crate) async fn live() -> Json<Liveness> {
    Json(Liveness { status: "ok" })
}

/// The dependencies a service may report (production wiring), as its health service names
/// them after `metachat.dependency.`.
const DEPENDENCIES: [&str; 3] = ["postgres", "kafka", "cassandra"];

/// Readiness
///
/// Asks both services' standard gRPC health service (`grpc.health.v1.Health/Check` for
/// `metachat.user.v1.UserService` and `metachat.diary.v1.DiaryService`) with a short timeout.
/// 200 when both are serving, else 503.
#[utoipa::path(get, path = "/health/ready", tag = "Operations", operation_id = "ready",
    responses(
        (status = 200, description = "Both services are serving.", body = Readiness),
        (status = 503, description = "At least one service is not serving or unreachable.",
            body = Readiness),
        Limits))]
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
    let body = Readiness {
        status: if ready { "ok" } else { "unavailable" },
        checks: Checks {
            user_service: users,
            diary_service: diary,
        },
        dependencies: Dependencies {
            user_service: user_dependencies,
            diary_service: diary_dependencies,
        },
    };
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
