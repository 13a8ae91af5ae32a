//! Where the services are and how long the gateway waits for them.

use std::time::Duration;

use metachat_runtime::{ConfigError, Env, env_or, env_parse_within, grpc_uri};

use crate::auth::AuthConfig;
use crate::ratelimit::RateLimitConfig;

/// The default per-call deadline for a backend call.
pub const DEFAULT_REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// The default bound on the graceful drain after a shutdown signal.
pub const DEFAULT_SHUTDOWN_TIMEOUT: Duration = Duration::from_secs(10);

/// How long a client may take to send a request's header block.
pub const DEFAULT_HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);

/// How long a client may take to send a request's body (up to 3 MiB) once the header is in.
pub const DEFAULT_BODY_READ_TIMEOUT: Duration = Duration::from_secs(30);

/// The gateway's configuration.
#[derive(Debug, Clone)]
pub struct GatewayConfig {
    /// The user service's gRPC address, `host:port` or `http://host:port`.
    pub user_service_address: String,
    /// The diary service's gRPC address, `host:port` or `http://host:port`.
    pub diary_service_address: String,
    /// How long one backend call may take before the client gets a 504.
    pub request_timeout: Duration,
    /// After the shutdown signal, how long open connections may finish their requests before
    /// they are closed (`SHUTDOWN_TIMEOUT_SECS`).
    pub shutdown_timeout: Duration,
    /// A connection that has not sent a whole header block within this is closed.
    pub header_read_timeout: Duration,
    /// A request whose body has not arrived within this gets a 408.
    pub body_read_timeout: Duration,
    /// Who may call what ([`crate::auth`]).
    pub auth: AuthConfig,
    /// How often ([`crate::ratelimit`]).
    pub rate_limits: RateLimitConfig,
}

impl Default for GatewayConfig {
    fn default() -> Self {
        Self {
            user_service_address: "localhost:50051".to_owned(),
            diary_service_address: "localhost:50052".to_owned(),
            request_timeout: DEFAULT_REQUEST_TIMEOUT,
            shutdown_timeout: DEFAULT_SHUTDOWN_TIMEOUT,
            header_read_timeout: DEFAULT_HEADER_READ_TIMEOUT,
            body_read_timeout: DEFAULT_BODY_READ_TIMEOUT,
            auth: AuthConfig::default(),
            rate_limits: RateLimitConfig::default(),
        }
    }
}

impl GatewayConfig {
    /// Reads `USER_SERVICE_ADDRESS`, `DIARY_SERVICE_ADDRESS`, `REQUEST_TIMEOUT_MS`,
    /// `SHUTDOWN_TIMEOUT_SECS` and the authentication variables ([`AuthConfig::read`]); an
    /// unusable value is an error naming the variable.
    pub fn from_env() -> Result<Self, ConfigError> {
        let defaults = Self::default();
        // An hour bounds both: a gRPC deadline beyond about 10^17 ms cannot even be sent.
        let timeout_ms = env_parse_within::<u64>(
            "REQUEST_TIMEOUT_MS",
            defaults.request_timeout.as_millis() as u64,
            1,
            3_600_000,
        )?;
        let shutdown_secs = env_parse_within::<u64>(
            "SHUTDOWN_TIMEOUT_SECS",
            defaults.shutdown_timeout.as_secs(),
            0,
            3_600,
        )?;
        let config = Self {
            user_service_address: env_or("USER_SERVICE_ADDRESS", &defaults.user_service_address),
            diary_service_address: env_or("DIARY_SERVICE_ADDRESS", &defaults.diary_service_address),
            request_timeout: Duration::from_millis(timeout_ms),
            shutdown_timeout: Duration::from_secs(shutdown_secs),
            auth: AuthConfig::read(Env::process())?,
            rate_limits: RateLimitConfig::read(Env::process())?,
            ..defaults
        };
        grpc_uri("USER_SERVICE_ADDRESS", &config.user_service_address)?;
        grpc_uri("DIARY_SERVICE_ADDRESS", &config.diary_service_address)?;
        Ok(config)
    }
}

#[cfg(test)]
mod tests {
    use metachat_runtime::grpc_uri;

    #[test]
    fn addresses_are_accepted_with_or_without_the_scheme() {
        assert_eq!(
            grpc_uri("X", "localhost:50051").unwrap(),
            "http://localhost:50051"
        );
        assert_eq!(
            grpc_uri("X", "http://user-service:50051/").unwrap(),
            "http://user-service:50051"
        );
        assert_eq!(grpc_uri("X", "127.0.0.1:1").unwrap(), "http://127.0.0.1:1");
    }

    #[test]
    fn unusable_addresses_name_the_variable() {
        for bad in [
            "",
            "https://x:1",
            "grpc://x:1",
            "x:1/path",
            "http://",
            "a b:1",
        ] {
            let error = grpc_uri("USER_SERVICE_ADDRESS", bad).unwrap_err();
            assert_eq!(error.name, "USER_SERVICE_ADDRESS", "{bad}");
        }
    }
}
