//! Publishes stored events to Kafka, in position order, from a checkpoint.

use std::sync::Arc;
use std::time::Duration;

use event_sourcing::{CheckpointStore, EventStore, Position, RecordedEvent, Subscription};
use rdkafka::producer::{FutureProducer, FutureRecord};

use crate::KafkaConfig;
use crate::leader::PgLeadership;
use crate::message;

/// Which topic, if any, an event is published to.
pub type Route = Arc<dyn Fn(&RecordedEvent) -> Option<String> + Send + Sync>;

/// How long librdkafka keeps retrying one message before reporting it undelivered; the relay
/// then retries the whole batch from its checkpoint, so no event is dropped.
const DELIVERY_TIMEOUT: Duration = Duration::from_secs(30);
const BATCH: usize = 500;

/// A leader-elected publisher of one service's events.
pub struct Relay {
    name: String,
    store: Arc<dyn EventStore>,
    checkpoints: Arc<dyn CheckpointStore>,
    leadership: PgLeadership,
    producer: FutureProducer,
    route: Route,
}

impl Relay {
    /// `name` keys the relay's checkpoint and its leader lock (one per service).
    pub fn new(
        name: &str,
        kafka: &KafkaConfig,
        store: Arc<dyn EventStore>,
        checkpoints: Arc<dyn CheckpointStore>,
        leadership: PgLeadership,
        route: Route,
    ) -> Result<Self, rdkafka::error::KafkaError> {
        let producer: FutureProducer = kafka
            .client(&format!("metachat-relay-{name}"))
            // Idempotence gives exactly-once, in-order writes per partition across retries.
            .set("enable.idempotence", "true")
            .set("acks", "all")
            .set(
                "message.timeout.ms",
                DELIVERY_TIMEOUT.as_millis().to_string(),
            )
            .set("linger.ms", "5")
            .set("compression.type", "lz4")
            .create()?;
        Ok(Self {
            name: format!("relay:{name}"),
            store,
            checkpoints,
            leadership,
            producer,
            route,
        })
    }

    /// Publishes until `shutdown` completes: waits to lead, then follows the store. Failures
    /// (broker down, database down) are logged and retried from the checkpoint.
    pub async fn run(self, shutdown: impl std::future::Future<Output = ()>) {
        tokio::pin!(shutdown);
        let mut pause = Duration::from_millis(200);
        loop {
            let outcome = tokio::select! {
                _ = &mut shutdown => return,
                outcome = self.lead() => outcome,
            };
            if let Err(error) = outcome {
                tracing::warn!(relay = %self.name, %error, "relay interrupted; retrying");
                tokio::select! {
                    _ = &mut shutdown => return,
                    _ = tokio::time::sleep(pause) => {}
                }
                pause = (pause * 2).min(Duration::from_secs(5));
            }
        }
    }

    async fn lead(&self) -> Result<(), String> {
        let mut leader = self
            .leadership
            .acquire(&self.name)
            .await
            .map_err(|e| format!("leader election: {e}"))?;
        tracing::info!(relay = %self.name, "relay is the leader; publishing");
        let result = tokio::select! {
            _ = leader.lost() => Err("leadership lost".to_owned()),
            result = self.publish() => result,
        };
        leader.release().await;
        // Only the leader publishes: a replica that is not shows no position to fall behind.
        crate::metrics::RELAY_POSITION.remove(&[&self.name]);
        result
    }

    /// Follows the store from the checkpoint, publishing each batch and then recording it.
    async fn publish(&self) -> Result<(), String> {
        let from = self
            .checkpoints
            .load(&self.name)
            .await
            .map_err(|e| format!("loading the checkpoint: {e}"))?;
        // Published as stored: personal data stays sealed on the topic, so erasing a user's key
        // makes the published copies unreadable too.
        let mut subscription = Subscription::new(Arc::clone(&self.store), from, BATCH).sealed();
        loop {
            let batch = subscription
                .next_batch()
                .await
                .map_err(|e| format!("reading events: {e}"))?;
            let last = self.send_batch(&batch).await?;
            self.checkpoints
                .save(&self.name, last)
                .await
                .map_err(|e| format!("saving the checkpoint: {e}"))?;
            crate::metrics::RELAY_POSITION.set(&[&self.name], last as f64);
            event_sourcing::metrics::seen(last);
        }
    }

    /// Sends every routed event of the batch and waits until all are acknowledged; returns the
    /// batch's last position.
    async fn send_batch(&self, batch: &[RecordedEvent]) -> Result<Position, String> {
        let mut deliveries = Vec::with_capacity(batch.len());
        for event in batch {
            let Some(topic) = (self.route)(event) else {
                continue;
            };
            let value = message::encode(event).map_err(|e| format!("encoding: {e}"))?;
            let key = event.aggregate_id().to_owned();
            let record = FutureRecord::to(&topic)
                .key(&key)
                .payload(&value)
                .headers(message::headers(event));
            // Enqueued in order; librdkafka keeps that order per partition.
            let delivery = self.producer.send_result(record).map_err(|(e, _)| {
                // A message Kafka refuses outright (too large) blocks the relay until an
                // operator acts: say so loudly.
                tracing::error!(relay = %self.name, event_id = %event.event_id, error = %e, "Kafka refused an event");
                format!("enqueueing event {}: {e}", event.event_id)
            })?;
            deliveries.push((event.position, topic, delivery));
        }
        for (position, topic, delivery) in deliveries {
            match delivery.await {
                Ok(Ok(_)) => crate::metrics::PRODUCED.inc(&[&topic]),
                Ok(Err((e, _))) => return Err(format!("delivering position {position}: {e}")),
                Err(_) => return Err(format!("delivery of position {position} was cancelled")),
            }
        }
        let last = batch.last().map_or(0, |e| e.position);
        tracing::debug!(relay = %self.name, position = last, events = batch.len(), "published");
        Ok(last)
    }
}
