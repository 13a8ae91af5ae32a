//! The event store's and the projections' metrics (the catalogue is docs/metrics.md).

use std::sync::LazyLock;

use metrics::{CounterVec, GaugeVec, HistogramVec, LATENCY_BUCKETS};

/// Appends by outcome: `stored`, `already_stored` (a retry), `conflict`, `error`.
pub static APPENDS: LazyLock<CounterVec> = LazyLock::new(|| {
    CounterVec::new(
        "metachat_event_store_appends_total",
        "Appends to the event store, by outcome: stored, already_stored (a retried append), conflict (a stale expected version), error.",
        &["outcome"],
    )
});

/// Events stored by appends.
pub static EVENTS_APPENDED: LazyLock<CounterVec> = LazyLock::new(|| {
    CounterVec::new(
        "metachat_event_store_events_appended_total",
        "Events stored in the event store by this process.",
        &[],
    )
});

/// Transactions that committed appends: with appends per commit
/// (`metachat_event_store_appends_total` over this), how much group commit shares.
pub static COMMITS: LazyLock<CounterVec> = LazyLock::new(|| {
    CounterVec::new(
        "metachat_event_store_commits_total",
        "Transactions that committed appends to the event store; concurrent appends share one (group commit), so appends over commits is the appends per commit.",
        &[],
    )
});

/// How long appends took.
pub static APPEND_DURATION: LazyLock<HistogramVec> = LazyLock::new(|| {
    HistogramVec::new(
        "metachat_event_store_append_duration_seconds",
        "Time an append to the event store took, retries of a lost connection included.",
        &[],
        LATENCY_BUCKETS,
    )
});

/// The position each projection has applied up to.
pub static PROJECTION_POSITION: LazyLock<GaugeVec> = LazyLock::new(|| {
    GaugeVec::new(
        "metachat_projection_position",
        "The global position of the last event a projection or follower applied (compare with metachat_event_store_head_position for its lag in events).",
        &["projection"],
    )
});

/// How long after its recording the last applied event was applied; 0 once caught up.
pub static PROJECTION_DELAY: LazyLock<GaugeVec> = LazyLock::new(|| {
    GaugeVec::new(
        "metachat_projection_lag_seconds",
        "How long after it was recorded a projection or follower applied the last event it applied, while it has more to apply; 0 once it has applied everything there is: its lag in seconds.",
        &["projection"],
    )
});

/// How many events a projection has yet to apply.
pub static PROJECTION_BEHIND: LazyLock<GaugeVec> = LazyLock::new(|| {
    GaugeVec::new(
        "metachat_projection_lag_events",
        "Events a projection or follower has yet to apply: up to the event store's head (embedded), or its consumer group's lag on its topic's partitions (Kafka).",
        &["projection"],
    )
});

/// The newest position this process knows of.
pub static HEAD_POSITION: LazyLock<GaugeVec> = LazyLock::new(|| {
    GaugeVec::new(
        "metachat_event_store_head_position",
        "The global position of the newest event this process has seen appended or applied.",
        &[],
    )
});

/// Events parked as dead letters.
pub static DEAD_LETTERS: LazyLock<CounterVec> = LazyLock::new(|| {
    CounterVec::new(
        "metachat_dead_letters_total",
        "Events a projection or follower could not apply and parked as dead letters (see metachat dead-letters).",
        &["projection"],
    )
});

/// Creates the families, so that they are shown before the first use.
pub fn describe() {
    LazyLock::force(&APPENDS);
    LazyLock::force(&EVENTS_APPENDED);
    LazyLock::force(&APPEND_DURATION);
    LazyLock::force(&COMMITS);
    LazyLock::force(&PROJECTION_POSITION);
    LazyLock::force(&PROJECTION_DELAY);
    LazyLock::force(&PROJECTION_BEHIND);
    LazyLock::force(&HEAD_POSITION);
    LazyLock::force(&DEAD_LETTERS);
}

/// Records that a projection applied `event`, the last of a batch.
pub fn applied(projection: &str, event: &crate::RecordedEvent) {
    PROJECTION_POSITION.set(&[projection], event.position as f64);
    let delay = chrono::Utc::now() - event.recorded_at;
    PROJECTION_DELAY.set(
        &[projection],
        delay.num_microseconds().unwrap_or(i64::MAX) as f64 / 1e6,
    );
    seen(event.position);
}

/// Records how many events a projection has yet to apply; none left, it is not late either.
pub fn behind(projection: &str, events: u64) {
    PROJECTION_BEHIND.set(&[projection], events as f64);
    if events == 0 {
        PROJECTION_DELAY.set(&[projection], 0.0);
    }
}

/// Records a position seen, keeping the head the highest.
pub fn seen(position: u64) {
    HEAD_POSITION.update_max(&[], position as f64);
}
