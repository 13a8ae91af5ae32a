//! Creates the topics a service publishes to, when they do not exist.

use std::time::Duration;

use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::error::RDKafkaErrorCode;

use crate::KafkaConfig;

/// Creates each topic with the configured partitions and replication, leaving existing ones.
pub async fn ensure_topics(config: &KafkaConfig, topics: &[&str]) -> Result<(), String> {
    let admin: AdminClient<DefaultClientContext> = config
        .client("metachat-admin")
        .create()
        .map_err(|e| format!("cannot create a Kafka admin client: {e}"))?;
    let new_topics: Vec<NewTopic> = topics
        .iter()
        .map(|name| {
            NewTopic::new(
                name,
                config.partitions,
                TopicReplication::Fixed(config.replication_factor),
            )
        })
        .collect();
    let options = AdminOptions::new().operation_timeout(Some(Duration::from_secs(10)));
    let results = admin
        .create_topics(&new_topics, &options)
        .await
        .map_err(|e| {
            format!(
                "cannot reach Kafka at {} to create topics: {e}",
                config.bootstrap_servers
            )
        })?;
    for result in results {
        match result {
            Ok(_) | Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => {}
            Err((topic, code)) => return Err(format!("cannot create topic {topic}: {code}")),
        }
    }
    Ok(())
}

/// Answers whether the brokers respond to a metadata request (for health probes).
#[derive(Clone)]
pub struct KafkaProbe {
    admin: std::sync::Arc<AdminClient<DefaultClientContext>>,
}

impl KafkaProbe {
    pub fn new(config: &KafkaConfig) -> Result<Self, rdkafka::error::KafkaError> {
        Ok(Self {
            admin: std::sync::Arc::new(config.client("metachat-probe").create()?),
        })
    }

    pub async fn reachable(&self) -> bool {
        let admin = std::sync::Arc::clone(&self.admin);
        // librdkafka's metadata call blocks: keep it off the async workers.
        tokio::task::spawn_blocking(move || {
            admin
                .inner()
                .fetch_metadata(None, Duration::from_secs(2))
                .is_ok()
        })
        .await
        .unwrap_or(false)
    }
}
