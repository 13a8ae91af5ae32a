//! The gRPC side: lazily connected channels to the services, the request context forwarded as
//! metadata, and one helper that runs a call under the request timeout.

use std::future::Future;
use std::time::Duration;

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use metachat_proto::diary::diary_service_client::DiaryServiceClient;
use metachat_proto::error::{ApiError, ErrorCode};
use metachat_proto::user::user_service_client::UserServiceClient;
use tonic::metadata::MetadataValue;
use tonic::transport::{Channel, Endpoint};
use tonic_health::pb::health_client::HealthClient;

use metachat_runtime::grpc_uri;

use crate::auth::Caller;
use crate::config::GatewayConfig;
use crate::error::AppError;

pub(crate) use metachat_proto::metadata::{ACTOR, CORRELATION_ID, REQUEST_ID};
use metachat_proto::trace::{TRACEPARENT, TraceContext};

/// The roles of the caller (`admin`), beside `x-actor`.
pub(crate) const ACTOR_ROLES: &str = "x-actor-roles";

/// The shared secret that tells the services a call comes from the gateway.
pub(crate) const SERVICE_TOKEN: &str = "x-service-token";

/// A service that cannot be connected to within this is unavailable (503); one that connects
/// but does not answer within the request timeout is a 504. When the request timeout is the
/// shorter, it wins.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);

/// Largest response accepted from a service: a page of 100 users may carry 100 avatars.
const MAX_RESPONSE_BYTES: usize = 256 * 1024 * 1024;

/// The clients of both services, sharing one channel per service.
#[derive(Clone)]
pub(crate) struct Backends {
    pub users: UserServiceClient<Channel>,
    pub diary: DiaryServiceClient<Channel>,
    pub user_health: HealthClient<Channel>,
    pub diary_health: HealthClient<Channel>,
    pub timeout: Duration,
    /// Who may call what; `/auth` issues tokens with it.
    pub auth: crate::auth::Auth,
}

impl Backends {
    /// Creates the channels without connecting: the gateway may start before the services.
    /// Must run inside a Tokio runtime (the channels spawn their workers).
    pub(crate) fn connect_lazy(
        config: &GatewayConfig,
        auth: crate::auth::Auth,
    ) -> anyhow::Result<Self> {
        if tokio::runtime::Handle::try_current().is_err() {
            anyhow::bail!("the gateway's router must be built inside a Tokio runtime");
        }
        let users = channel("USER_SERVICE_ADDRESS", &config.user_service_address)?;
        let diary = channel("DIARY_SERVICE_ADDRESS", &config.diary_service_address)?;
        Ok(Self {
            users: UserServiceClient::new(users.clone())
                .max_decoding_message_size(MAX_RESPONSE_BYTES),
            diary: DiaryServiceClient::new(diary.clone())
                .max_decoding_message_size(MAX_RESPONSE_BYTES),
            user_health: HealthClient::new(users),
            diary_health: HealthClient::new(diary),
            timeout: config.request_timeout,
            auth,
        })
    }
}

fn channel(name: &str, address: &str) -> anyhow::Result<Channel> {
    let uri = grpc_uri(name, address)?;
    let endpoint = Endpoint::from_shared(uri)?
        .connect_timeout(CONNECT_TIMEOUT)
        .tcp_nodelay(true)
        .http2_keep_alive_interval(Duration::from_secs(30))
        .keep_alive_while_idle(true);
    Ok(endpoint.connect_lazy())
}

/// Who is asking, carried from the HTTP request into every gRPC call it makes.
#[derive(Debug, Clone)]
pub(crate) struct RequestContext {
    pub request_id: String,
    pub correlation_id: String,
    /// Set by [`crate::auth::middleware`].
    pub caller: Caller,
    pub service_token: Option<String>,
    /// A POST's `Idempotency-Key`, forwarded to the service.
    pub idempotency_key: Option<String>,
    /// The gateway's span in the request's trace, passed on as `traceparent`.
    pub trace: TraceContext,
}

impl RequestContext {
    /// `message` as a gRPC request with the context's metadata and the given deadline.
    pub(crate) fn request<T>(&self, message: T, timeout: Duration) -> tonic::Request<T> {
        let mut request = tonic::Request::new(message);
        request.set_timeout(timeout);
        let metadata = request.metadata_mut();
        // Both ids were checked to be visible ASCII by the middleware.
        if let Ok(value) = MetadataValue::try_from(self.request_id.as_str()) {
            metadata.insert(REQUEST_ID, value);
        }
        if let Ok(value) = MetadataValue::try_from(self.correlation_id.as_str()) {
            metadata.insert(CORRELATION_ID, value);
        }
        if let Ok(value) = MetadataValue::try_from(self.trace.traceparent()) {
            metadata.insert(TRACEPARENT, value);
        }
        let (actor, admin) = self.caller.actor();
        if let Ok(value) = MetadataValue::try_from(actor) {
            metadata.insert(ACTOR, value);
        }
        if admin {
            metadata.insert(ACTOR_ROLES, MetadataValue::from_static("admin"));
        }
        if let Some(value) = self
            .service_token
            .as_deref()
            .and_then(|t| MetadataValue::try_from(t).ok())
        {
            metadata.insert(SERVICE_TOKEN, value);
        }
        if let Some(value) = self
            .idempotency_key
            .as_deref()
            .and_then(|k| MetadataValue::try_from(k).ok())
        {
            metadata.insert(metachat_proto::metadata::IDEMPOTENCY_KEY, value);
        }
        request
    }
}

impl<S: Send + Sync> FromRequestParts<S> for RequestContext {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        Ok(parts.extensions.get::<Self>().cloned().unwrap_or_else(|| {
            let id = uuid::Uuid::new_v4().to_string();
            Self {
                request_id: id.clone(),
                correlation_id: id,
                caller: Caller::default(),
                service_token: None,
                idempotency_key: None,
                trace: TraceContext::start(),
            }
        }))
    }
}

/// Awaits a unary call for at most `timeout`, mapping its failure to the API error.
pub(crate) async fn unary<R>(
    context: &RequestContext,
    timeout: Duration,
    call: impl Future<Output = Result<tonic::Response<R>, tonic::Status>>,
) -> Result<R, AppError> {
    match tokio::time::timeout(timeout, call).await {
        Ok(Ok(response)) => Ok(response.into_inner()),
        Ok(Err(status)) => {
            let mut error = ApiError::from(status.clone());
            // The services name the request field; HTTP clients sent it as a header.
            for detail in &mut error.details {
                if detail.field == "consistencyToken" {
                    detail.field = crate::consistency::HEADER_NAME.to_owned();
                }
            }
            if error.code == ErrorCode::InvalidArgument {
                error.message = error.message.replace(
                    "consistencyToken:",
                    &format!("{}:", crate::consistency::HEADER_NAME),
                );
            }
            if matches!(
                error.code,
                ErrorCode::Unavailable | ErrorCode::DeadlineExceeded | ErrorCode::Internal
            ) {
                // The raw status may name addresses: it goes to the log, not to the client.
                tracing::warn!(
                    request_id = %context.request_id,
                    grpc_code = ?status.code(),
                    grpc_message = status.message(),
                    "backend call failed"
                );
            }
            Err(AppError(error))
        }
        Err(_) => {
            tracing::warn!(
                request_id = %context.request_id,
                timeout_ms = timeout.as_millis() as u64,
                "backend call timed out"
            );
            Err(AppError(ApiError::new(
                ErrorCode::DeadlineExceeded,
                "a backend service did not answer in time",
            )))
        }
    }
}
