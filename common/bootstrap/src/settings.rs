//! A service process's settings, read once from the environment at start-up: a bad value stops
//! the start with an error naming its variable, before anything is opened or connected.

use std::path::PathBuf;
use std::time::Duration;

use metachat_grpc::ServiceToken;

use metachat_production::ProductionConfig;
use metachat_runtime::{ConfigError, Env, LogSettings};

/// What differs between the services, as far as starting one is concerned.
#[derive(Debug, Clone, Copy)]
pub struct ServiceSpec {
    /// `user-service`: names its logs, its relay (checkpoint and leader lock), its embedded
    /// database file (`<name>.db`) and its default consumer group (`<name>-read-models`).
    pub name: &'static str,
    /// The default of `PORT`.
    pub port: u16,
    /// The variable naming the topic its events go to, and its default.
    pub topic_variable: &'static str,
    pub topic: &'static str,
    /// The stream categories it publishes (`user`; `entry`, `session`).
    pub categories: &'static [&'static str],
    /// Another service's topic its followers read ([`crate::Topic::Followed`]): the variable
    /// naming it and its default.
    pub follows: Option<(&'static str, &'static str)>,
}

/// How a service process is configured.
#[derive(Debug, Clone)]
pub struct ServiceSettings {
    pub log: LogSettings,
    /// `PORT`: the gRPC port, on every interface.
    pub port: u16,
    /// `SHUTDOWN_TIMEOUT_SECS`: how long a stop waits for calls in progress.
    pub shutdown_timeout: Duration,
    /// `READ_YOUR_WRITES_TIMEOUT_MS`: how long a list waits for the write its consistency
    /// token names.
    pub read_your_writes: Duration,
    pub wiring: Wiring,
    /// `SERVICE_TOKEN`: the shared secret callers of the service's API must hold (required
    /// with `ENVIRONMENT=prod`), also sent on its calls to the other service.
    pub service_token: ServiceToken,
}

/// Where a service keeps its events and read models.
#[derive(Debug, Clone)]
pub enum Wiring {
    /// SQLite in `DATA_DIR/<service>.db` (the default: `DB_HOST` unset).
    Embedded { data_dir: PathBuf },
    /// PostgreSQL, Kafka and Cassandra.
    Production(Box<ProductionSettings>),
}

/// The production wiring of one service.
#[derive(Debug, Clone)]
pub struct ProductionSettings {
    pub config: ProductionConfig,
    /// The topic of the service's events (`KAFKA_USER_EVENTS_TOPIC`, ...).
    pub topic: String,
    /// `KAFKA_CONSUMER_GROUP`: the group its replicas share.
    pub group: String,
    /// The other service's topic its followers read (`KAFKA_DIARY_EVENTS_TOPIC` for the
    /// user service), if it follows one.
    pub followed_topic: Option<String>,
}

impl ServiceSettings {
    /// Every variable the service `spec` reads, from `env`.
    pub fn from_env(spec: &ServiceSpec, env: &Env) -> anyhow::Result<Self> {
        let log = LogSettings::read(env, spec.name)?;
        let port = env.parse("PORT", spec.port)?;
        let shutdown_timeout = shutdown_timeout(env)?;
        let read_your_writes = read_your_writes_timeout(env)?;
        let wiring = match ProductionConfig::from_env(env)? {
            None => Wiring::Embedded {
                data_dir: data_dir(env),
            },
            Some(config) => Wiring::Production(Box::new(ProductionSettings {
                config,
                topic: metachat_kafka::topic_from_env(env, spec.topic_variable, spec.topic)?,
                group: env.or(
                    "KAFKA_CONSUMER_GROUP",
                    &format!("{}-read-models", spec.name),
                ),
                followed_topic: spec
                    .follows
                    .map(|(variable, default)| {
                        metachat_kafka::topic_from_env(env, variable, default)
                    })
                    .transpose()?,
            })),
        };
        let service_token = service_token(env)?;
        Ok(Self {
            log,
            port,
            shutdown_timeout,
            read_your_writes,
            wiring,
            service_token,
        })
    }
}

/// `SHUTDOWN_TIMEOUT_SECS` (default 10): how long a stopping gRPC server waits for calls.
pub fn shutdown_timeout(env: &Env) -> Result<Duration, ConfigError> {
    let default = metachat_grpc::DEFAULT_SHUTDOWN_TIMEOUT.as_secs();
    Ok(Duration::from_secs(env.parse_within(
        metachat_grpc::SHUTDOWN_TIMEOUT_VAR,
        default,
        0,
        3_600,
    )?))
}

/// `READ_YOUR_WRITES_TIMEOUT_MS` (default 3000, at least 1): how long a list waits for the
/// write its consistency token names before answering 503.
/// `SERVICE_TOKEN`; required with `ENVIRONMENT=prod`, where the services must trust the caller
/// the gateway forwards only from a caller that proves it is the gateway.
pub fn service_token(env: &Env) -> anyhow::Result<ServiceToken> {
    let token = env.var("SERVICE_TOKEN");
    if token.is_none() && env.or("ENVIRONMENT", "dev") == "prod" {
        anyhow::bail!(
            "ENVIRONMENT=prod needs SERVICE_TOKEN: without it anyone who reaches the gRPC port \
             could act for any user"
        );
    }
    if token.as_ref().is_some_and(|t| t.len() < 16) {
        anyhow::bail!("environment variable SERVICE_TOKEN is invalid: must be at least 16 bytes");
    }
    Ok(ServiceToken::new(token))
}

pub fn read_your_writes_timeout(env: &Env) -> Result<Duration, ConfigError> {
    let default = metachat_grpc::DEFAULT_READ_YOUR_WRITES_TIMEOUT.as_millis() as u64;
    Ok(Duration::from_millis(env.parse_within(
        metachat_grpc::READ_YOUR_WRITES_TIMEOUT_VAR,
        default,
        1,
        600_000,
    )?))
}

/// `DATA_DIR` (default `data`): where the embedded store keeps its files.
pub fn data_dir(env: &Env) -> PathBuf {
    PathBuf::from(env.or("DATA_DIR", "data"))
}

#[cfg(test)]
mod tests {
    use super::*;

    const SPEC: ServiceSpec = ServiceSpec {
        name: "user-service",
        port: 50051,
        topic_variable: "KAFKA_USER_EVENTS_TOPIC",
        topic: "user-events",
        categories: &["user"],
        follows: Some(("KAFKA_DIARY_EVENTS_TOPIC", "diary-events")),
    };

    fn production() -> Vec<(&'static str, &'static str)> {
        vec![
            ("DB_HOST", "db"),
            ("KAFKA_BOOTSTRAP_SERVERS", "kafka:9092"),
            ("CASSANDRA_HOSTS", "cassandra"),
        ]
    }

    fn settings(pairs: &[(&'static str, &'static str)]) -> anyhow::Result<ServiceSettings> {
        ServiceSettings::from_env(&SPEC, &Env::from_pairs(pairs.iter().copied()))
    }

    #[test]
    fn defaults_come_from_the_spec() {
        let embedded = settings(&[]).unwrap();
        assert_eq!(embedded.port, 50051);
        assert_eq!(embedded.shutdown_timeout, Duration::from_secs(10));
        assert!(
            matches!(embedded.wiring, Wiring::Embedded { ref data_dir } if data_dir == std::path::Path::new("data"))
        );
        let Wiring::Production(production) = settings(&production()).unwrap().wiring else {
            panic!("DB_HOST selects the production wiring");
        };
        assert_eq!(production.topic, "user-events");
        assert_eq!(production.group, "user-service-read-models");
        assert_eq!(production.config.cassandra.hosts, ["cassandra:9042"]);
    }

    #[test]
    fn every_bad_value_names_its_variable() {
        for (name, value) in [
            ("PORT", "abc"),
            ("SHUTDOWN_TIMEOUT_SECS", "-1"),
            ("LOG_FORMAT", "xml"),
            ("DB_PORT", "0"),
            ("KAFKA_TOPIC_PARTITIONS", "0"),
            ("KAFKA_REPLICATION_FACTOR", "x"),
            ("KAFKA_USER_EVENTS_TOPIC", "user events"),
            ("CASSANDRA_KEYSPACE", "bad keyspace!"),
        ] {
            let mut pairs = production();
            pairs.push((name, value));
            let error = format!("{:#}", settings(&pairs).unwrap_err());
            assert!(error.contains(name), "{name}={value}: {error}");
        }
    }
}
