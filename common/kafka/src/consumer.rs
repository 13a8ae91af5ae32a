//! Feeds a projection from Kafka topics, in a consumer group.

use std::sync::Arc;
use std::time::Duration;

use event_sourcing::dead_letter::{
    DeadLetters, RETRY_POLL, apply_or_park, poison, retry_dead_letters,
};
use event_sourcing::{EventStore, Projection, ProjectionError, RecordedEvent};
use rdkafka::consumer::{Consumer, ConsumerContext, Rebalance, StreamConsumer};
use rdkafka::message::{BorrowedMessage, Message};
use rdkafka::{ClientContext, TopicPartitionList};

use crate::{KafkaConfig, message};

/// Logs partition assignments, so operators (and tests) can see how a group split the work,
/// and reports how far behind its partitions the projection is, from the client's statistics.
struct GroupContext {
    group: String,
    projection: String,
}

/// How often the client reports its statistics (and so the projection's lag in events).
const STATISTICS_EVERY: &str = "5000";

impl ClientContext for GroupContext {
    /// The messages of this replica's partitions not yet applied: each partition's high
    /// watermark less the offset stored after applying (or, before the first, the one
    /// consumed). Partitions of other replicas report no lag and count for nothing.
    fn stats(&self, statistics: rdkafka::Statistics) {
        let behind: i64 = statistics
            .topics
            .values()
            .flat_map(|topic| topic.partitions.values())
            .filter(|p| p.partition >= 0)
            .map(|p| {
                if p.consumer_lag_stored >= 0 {
                    p.consumer_lag_stored
                } else {
                    p.consumer_lag.max(0)
                }
            })
            .sum();
        event_sourcing::metrics::behind(&self.projection, behind.max(0) as u64);
    }
}

impl ConsumerContext for GroupContext {
    fn post_rebalance(
        &self,
        _base: &rdkafka::consumer::BaseConsumer<Self>,
        rebalance: &Rebalance<'_>,
    ) {
        match rebalance {
            Rebalance::Assign(partitions) => tracing::info!(
                group = %self.group,
                partitions = %describe(partitions),
                "partitions assigned"
            ),
            Rebalance::Revoke(partitions) => tracing::info!(
                group = %self.group,
                partitions = %describe(partitions),
                "partitions revoked"
            ),
            Rebalance::Error(error) => {
                tracing::warn!(group = %self.group, %error, "rebalance failed")
            }
        }
    }
}

fn describe(partitions: &TopicPartitionList) -> String {
    let mut parts: Vec<String> = partitions
        .elements()
        .iter()
        .map(|p| format!("{}/{}", p.topic(), p.partition()))
        .collect();
    parts.sort();
    parts.join(",")
}

/// Applies every event of some topics to a projection, at least once, in partition order.
pub struct ProjectionConsumer {
    consumer: StreamConsumer<GroupContext>,
    projection: Arc<dyn Projection>,
    /// Opens the events' sealed personal data ([`EventStore::open`]), and holds the events
    /// of dead letters to apply again.
    store: Arc<dyn EventStore>,
    /// Where events that can never be applied are parked ([`event_sourcing::dead_letter`]).
    letters: Arc<dyn DeadLetters>,
    group: String,
}

impl ProjectionConsumer {
    /// Joins consumer group `group` on `topics`. A new group starts from the earliest offset,
    /// so it builds its read models from the whole topic.
    pub fn new(
        kafka: &KafkaConfig,
        group: &str,
        topics: &[&str],
        projection: Arc<dyn Projection>,
        store: Arc<dyn EventStore>,
        letters: Arc<dyn DeadLetters>,
    ) -> Result<Self, rdkafka::error::KafkaError> {
        let consumer: StreamConsumer<GroupContext> = kafka
            .client(&format!("metachat-{group}"))
            .set("group.id", group)
            .set("auto.offset.reset", "earliest")
            // Offsets are stored by hand after the projection applied the message, and
            // committed in the background: a crash re-delivers, never skips.
            .set("enable.auto.commit", "true")
            .set("enable.auto.offset.store", "false")
            .set("auto.commit.interval.ms", "1000")
            .set("session.timeout.ms", "10000")
            .set("heartbeat.interval.ms", "1000")
            .set("statistics.interval.ms", STATISTICS_EVERY)
            .create_with_context(GroupContext {
                group: group.to_owned(),
                projection: projection.name().to_owned(),
            })?;
        consumer.subscribe(topics)?;
        Ok(Self {
            consumer,
            projection,
            store,
            letters,
            group: group.to_owned(),
        })
    }

    /// Consumes until `shutdown` completes, then commits what it applied. Dead letters are
    /// applied again when it starts, and when an operator asks.
    pub async fn run(self, shutdown: impl std::future::Future<Output = ()>) {
        tokio::pin!(shutdown);
        // While brokers are down librdkafka reports every failed connection attempt; they are
        // queued, so they must be drained at once (not slept on), and logged now and then.
        let mut last_warning: Option<std::time::Instant> = None;
        let mut retries = tokio::time::interval(RETRY_POLL);
        retries.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut all = true;
        loop {
            let message = tokio::select! {
                _ = &mut shutdown => break,
                _ = retries.tick() => {
                    match retry_dead_letters(
                        self.projection.as_ref(),
                        self.letters.as_ref(),
                        self.store.as_ref(),
                        all,
                    )
                    .await
                    {
                        Ok(_) => all = false,
                        Err(error) => {
                            tracing::warn!(group = %self.group, %error, "retrying dead letters failed; retrying later");
                        }
                    }
                    continue;
                }
                message = self.consumer.recv() => message,
            };
            match message {
                Ok(message) => {
                    tokio::select! {
                        _ = &mut shutdown => break,
                        _ = self.apply(&message) => {}
                    }
                }
                Err(error) => {
                    if last_warning.is_none_or(|at| at.elapsed() > Duration::from_secs(10)) {
                        tracing::warn!(group = %self.group, %error, "consuming failed; retrying");
                        last_warning = Some(std::time::Instant::now());
                    }
                }
            }
        }
        // Committing and closing talk to the broker synchronously: off the async workers.
        let Self {
            consumer, group, ..
        } = self;
        let _ = tokio::task::spawn_blocking(move || {
            if let Err(error) = consumer.commit_consumer_state(rdkafka::consumer::CommitMode::Sync)
            {
                tracing::debug!(group = %group, %error, "final offset commit skipped");
            }
            drop(consumer);
        })
        .await;
    }

    /// Applies one message, retrying the projection until it succeeds (a read store outage
    /// must delay the read model, not lose an event), then stores its offset.
    async fn apply(&self, message: &BorrowedMessage<'_>) {
        let Some(value) = message.payload() else {
            self.store_offset(message);
            return;
        };
        let event = match message::decode(value) {
            Ok(event) => event,
            Err(error) => {
                // Not an event this code can read: no retry can help. Parked when its headers
                // say which event it is (a retry reads it from the store), else skipped.
                let reason = format!(
                    "the message does not decode ({:?} error at line {}, column {})",
                    error.classify(),
                    error.line(),
                    error.column()
                );
                tracing::error!(
                    group = %self.group,
                    topic = message.topic(),
                    partition = message.partition(),
                    offset = message.offset(),
                    error = %reason,
                    "undecodable message"
                );
                if let Some(event) = message.headers().and_then(message::event_from_headers) {
                    while let Err(error) = self
                        .letters
                        .park(self.projection.name(), &event, &reason)
                        .await
                    {
                        tracing::warn!(group = %self.group, %error, "parking failed; retrying");
                        tokio::time::sleep(Duration::from_secs(1)).await;
                    }
                }
                self.store_offset(message);
                return;
            }
        };
        let mut pause = Duration::from_millis(100);
        loop {
            match self.open_and_apply(&event).await {
                Ok(()) => break,
                Err(error) => {
                    tracing::warn!(
                        group = %self.group,
                        event_id = %event.event_id,
                        %error,
                        "projection failed; retrying"
                    );
                    tokio::time::sleep(pause).await;
                    pause = (pause * 2).min(Duration::from_secs(5));
                }
            }
        }
        tracing::debug!(
            group = %self.group,
            event_id = %event.event_id,
            event_type = %event.event_type,
            partition = message.partition(),
            offset = message.offset(),
            "projected"
        );
        crate::metrics::CONSUMED.inc(&[&self.group, message.topic()]);
        event_sourcing::metrics::applied(self.projection.name(), &event);
        self.store_offset(message);
    }

    /// Opens the event's personal data and applies it, unless its subject was erased; an
    /// event that can never be applied is parked.
    async fn open_and_apply(&self, event: &RecordedEvent) -> Result<(), ProjectionError> {
        let opened = match self.store.open(vec![event.clone()]).await {
            Ok(opened) => opened,
            Err(error) => {
                let error: ProjectionError = error.into();
                let Some(reason) = poison(&error) else {
                    return Err(error);
                };
                self.letters
                    .park(self.projection.name(), event, &reason)
                    .await?;
                return Ok(());
            }
        };
        for event in opened.iter().filter(|e| !e.erased) {
            apply_or_park(self.projection.as_ref(), self.letters.as_ref(), event).await?;
        }
        Ok(())
    }

    fn store_offset(&self, message: &BorrowedMessage<'_>) {
        if let Err(error) = self.consumer.store_offset_from_message(message) {
            tracing::warn!(group = %self.group, %error, "storing the offset failed");
        }
    }
}
