//! Kafka settings from the environment.

use metachat_runtime::{ConfigError, Env};
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
    /// `None` when `KAFKA_BOOTSTRAP_SERVERS` is unset; a bad layout names its variable.
    pub fn from_env(env: &Env) -> Result<Option<Self>, ConfigError> {
        let Some(bootstrap_servers) = env.var("KAFKA_BOOTSTRAP_SERVERS") else {
            return Ok(None);
        };
        Ok(Some(Self {
            bootstrap_servers,
            partitions: env.parse_at_least("KAFKA_TOPIC_PARTITIONS", 6, 1)?,
            replication_factor: env.parse_at_least("KAFKA_REPLICATION_FACTOR", 1, 1)?,
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

/// The topic named by variable `name` of `env`, or `default`: a legal Kafka topic name (1 to 249
/// of `a-z A-Z 0-9 . _ -`, not `.` or `..`), checked at start-up rather than when the topic is
/// first created.
pub fn topic_from_env(env: &Env, name: &str, default: &str) -> Result<String, ConfigError> {
    let topic = env.or(name, default).trim().to_owned();
    let legal = !topic.is_empty()
        && topic.len() <= 249
        && topic != "."
        && topic != ".."
        && topic
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'));
    if !legal {
        return Err(ConfigError::new(
            name,
            &topic,
            "must be a Kafka topic name: 1 to 249 letters, digits, '.', '_' or '-'",
        ));
    }
    Ok(topic)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bad_layout_names_its_variable() {
        let env = |pairs: &[(&str, &str)]| {
            Env::from_pairs(
                [("KAFKA_BOOTSTRAP_SERVERS", "localhost:9092")]
                    .into_iter()
                    .chain(pairs.iter().copied()),
            )
        };
        let config = KafkaConfig::from_env(&env(&[])).unwrap().unwrap();
        assert_eq!((config.partitions, config.replication_factor), (6, 1));
        for name in ["KAFKA_TOPIC_PARTITIONS", "KAFKA_REPLICATION_FACTOR"] {
            let error = KafkaConfig::from_env(&env(&[(name, "0")])).unwrap_err();
            assert_eq!(error.name, name);
        }
        assert!(KafkaConfig::from_env(&Env::default()).unwrap().is_none());
    }

    #[test]
    fn topics_are_checked() {
        let env = Env::from_pairs([("A", "t-1.user_events"), ("B", "bad topic"), ("C", "..")]);
        assert_eq!(topic_from_env(&env, "A", "x").unwrap(), "t-1.user_events");
        assert_eq!(
            topic_from_env(&env, "D", "user-events").unwrap(),
            "user-events"
        );
        for name in ["B", "C"] {
            assert_eq!(topic_from_env(&env, name, "x").unwrap_err().name, name);
        }
    }
}
