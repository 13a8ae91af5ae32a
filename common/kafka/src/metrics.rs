//! Kafka metrics (the catalogue is docs/metrics.md).

use std::sync::LazyLock;

use metrics::CounterVec;

/// Events the relay published, acknowledged by the brokers.
pub static PRODUCED: LazyLock<CounterVec> = LazyLock::new(|| {
    CounterVec::new(
        "metachat_kafka_messages_produced_total",
        "Events the relay published to Kafka and the brokers acknowledged, by topic.",
        &["topic"],
    )
});

/// Messages a consumer group applied (or parked, or skipped as not an event).
pub static CONSUMED: LazyLock<CounterVec> = LazyLock::new(|| {
    CounterVec::new(
        "metachat_kafka_messages_consumed_total",
        "Kafka messages a consumer group of this process handled, by group and topic.",
        &["group", "topic"],
    )
});

/// Creates the families, so that they are shown before the first message.
pub fn describe() {
    LazyLock::force(&PRODUCED);
    LazyLock::force(&CONSUMED);
}
