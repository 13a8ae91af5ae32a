//! How the diary service learns whether a user exists: it asks the user service.

use std::time::Duration;

use async_trait::async_trait;
use metachat_grpc::ServiceToken;
use metachat_proto::error::ApiError;
use metachat_proto::user::GetUserRequest;
use metachat_proto::user::user_service_client::UserServiceClient;
use metachat_validation::UserId;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::Channel;

#[async_trait]
pub trait UserDirectory: Send + Sync + 'static {
    async fn user_exists(&self, user_id: &UserId) -> Result<bool, ApiError>;
}

/// Asks the user service over gRPC.
#[derive(Clone)]
pub struct GrpcUserDirectory {
    client: UserServiceClient<InterceptedService<Channel, ServiceToken>>,
}

impl GrpcUserDirectory {
    /// Connects lazily to `address` (`host:port`, with or without `http://`; an error names
    /// `USER_SERVICE_ADDRESS`, where the address comes from).
    /// Each call carries `token` (`SERVICE_TOKEN`).
    pub fn new(address: &str, token: ServiceToken) -> anyhow::Result<Self> {
        let uri = metachat_runtime::grpc_uri("USER_SERVICE_ADDRESS", address)?;
        let channel = metachat_grpc::service_channel(uri, Duration::from_secs(5))?;
        Ok(Self {
            client: UserServiceClient::with_interceptor(channel, token),
        })
    }
}

#[async_trait]
impl UserDirectory for GrpcUserDirectory {
    async fn user_exists(&self, user_id: &UserId) -> Result<bool, ApiError> {
        let request = GetUserRequest {
            id: user_id.to_string(),
            as_of: None,
        };
        match self.client.clone().get_user(request).await {
            Ok(_) => Ok(true),
            Err(status) if status.code() == tonic::Code::NotFound => Ok(false),
            Err(status) => {
                tracing::warn!(code = ?status.code(), "user service lookup failed");
                Err(ApiError::unavailable(
                    "the user service is unavailable; retry later",
                ))
            }
        }
    }
}
