//! Kafka settings from the environment.

use metachat_runtime::{ConfigError, env_parse, env_var};
use rdkafka::ClientConfig;

/// Where the brokers are and how topics are laid out.
#[derive(Debug, Clone)]
pub struct KafkaConfig {
    /// `KAFKA_BOOTSTRAP_SERVERS`, e.g. `localhost:9092`.
    pub bootstrap_servers: String,
    /// `KAFKA_TOPIC_PARTITIONS` (default 6): partitions of topics this service creates.
    pub partitions: i32,
    /// `KAFKA_REPLICATION_FACTOR` (default 1) of topics this service creates.
    pub replication_factor: i32,
}

impl KafkaConfig {
    /// `None` when `KAFKA_BOOTSTRAP_SERVERS` is unset.
    pub fn from_env() -> Result<Option<Self>, ConfigError> {
        let Some(bootstrap_servers) = env_var("KAFKA_BOOTSTRAP_SERVERS") else {
            return Ok(None);
        };
        let partitions = env_parse("KAFKA_TOPIC_PARTITIONS", 6)?;
        let replication_factor = env_parse("KAFKA_REPLICATION_FACTOR", 1)?;
        if partitions < 1 || replication_factor < 1 {
            return Err(ConfigError {
                name: "KAFKA_TOPIC_PARTITIONS/KAFKA_REPLICATION_FACTOR".into(),
                value: format!("{partitions}/{replication_factor}"),
                reason: "must be at least 1".into(),
            });
        }
        Ok(Some(Self {
            bootstrap_servers,
            partitions,
            replication_factor,
        }))
    }

    /// The client settings every MetaChat Kafka client starts from.
    pub fn client(&self, client_id: &str) -> ClientConfig {
        let mut config = ClientConfig::new();
        config
            .set("bootstrap.servers", &self.bootstrap_servers)
            .set("client.id", client_id)
            // Fail fast on a wrong address instead of retrying name resolution forever.
            .set("socket.connection.setup.timeout.ms", "5000")
            // Reconnect within a second of a broker coming back.
            .set("reconnect.backoff.ms", "100")
            .set("reconnect.backoff.max.ms", "1000")
            .set("log_level", "4");
        config
    }
}
