//! Kafka metrics (the catalogue is docs/metrics.md).

use std::sync::LazyLock;

use metrics::{CounterVec, GaugeVec};

/// Events the relay published, acknowledged by the brokers.
pub static PRODUCED: LazyLock<CounterVec> = LazyLock::new(|| {
    CounterVec::new(
        "metachat_kafka_messages_produced_total",
        "Events the relay published to Kafka and the brokers acknowledged, by topic.",
        &["topic"],
    )
});

/// How far the relay has published.
pub static RELAY_POSITION: LazyLock<GaugeVec> = LazyLock::new(|| {
    GaugeVec::new(
        "metachat_relay_position",
        "The global position of the last event the relay published (compare with metachat_event_store_head_position for its lag in events); shown by the replica that leads.",
        &["relay"],
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
    LazyLock::force(&RELAY_POSITION);
}
