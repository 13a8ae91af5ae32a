//! The contract every [`EventStore`] backend must meet, written once and run against each
//! backend by [`event_store_contract_tests!`](crate::event_store_contract_tests).
//!
//! A backend's test file implements [`TestBackend`] and invokes the macro; each case becomes
//! its own `#[tokio::test]`. The cases panic with a message naming the broken guarantee.

use std::collections::{BTreeMap, HashSet};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use chrono::Utc;
use serde::{Deserialize, Serialize};
use serde_json::json;
use uuid::Uuid;

use crate::personal::{PersonalData, SEALED_FIELD, Subject};
use crate::{
    Aggregate, CheckpointStore, DomainEvent, EventCodec, EventMetadata, EventStore,
    EventStoreError, ExecuteError, ExpectedVersion, NewEvent, Projection, ProjectionError,
    ProjectionRunner, RecordedEvent, Repository, StreamWrite, Subscription, Upcasters,
};

/// A store under test: its event store and checkpoint store.
pub struct Opened {
    pub store: Arc<dyn EventStore>,
    pub checkpoints: Arc<dyn CheckpointStore>,
}

/// How the contract suite gets stores from a backend.
#[async_trait]
pub trait TestBackend: Send + Sync {
    /// Opens the store at `location` (a unique name per test), creating it empty the first
    /// time. Opening the same location again must see the same data, as after a restart.
    async fn open(&self, location: &str, codec: EventCodec) -> Opened;
}

/// Expands to one `#[tokio::test]` per contract case for the backend built by `$backend`.
#[macro_export]
macro_rules! event_store_contract_tests {
    ($backend:expr) => {
        $crate::event_store_contract_tests!(@cases $backend;
            append_and_read_stream,
            expected_version_conflicts,
            multi_stream_write_is_atomic,
            conflict_names_the_stale_write,
            retried_append_is_idempotent,
            append_reports_recorded_at,
            reused_event_id_is_refused,
            read_all_is_ordered_and_batched,
            concurrent_writers_never_skip_or_duplicate,
            stream_as_of_a_time,
            old_payloads_are_upcast_when_read,
            aggregate_is_rebuilt_by_replay,
            subscriber_is_woken_by_append,
            projection_resumes_from_checkpoint_after_restart,
            rebuild_equals_incremental,
            personal_data_is_sealed_and_erasure_shreds_it,
            poison_events_are_parked_and_applied_again,
        );
    };
    (@cases $backend:expr; $($case:ident),* $(,)?) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn $case() {
                $crate::contract::$case(&$backend).await;
            }
        )*
    };
}

fn location() -> String {
    format!("contract_{}", Uuid::new_v4().simple())
}

async fn open(backend: &impl TestBackend) -> Opened {
    backend.open(&location(), EventCodec::default()).await
}

fn event(event_type: &str, payload: serde_json::Value) -> NewEvent {
    NewEvent::new(event_type, 1, payload, EventMetadata::default())
}

fn events(n: usize) -> Vec<NewEvent> {
    (0..n)
        .map(|i| event("Happened", json!({ "n": i })))
        .collect()
}

pub async fn append_and_read_stream(backend: &impl TestBackend) {
    let Opened { store, .. } = open(backend).await;
    assert_eq!(store.stream_version("thing-1").await.unwrap(), None);
    assert!(
        store
            .read_stream("thing-1", 1, 10)
            .await
            .unwrap()
            .is_empty()
    );

    let metadata = EventMetadata {
        correlation_id: Some("corr".into()),
        causation_id: Some("cause".into()),
        request_id: Some("req".into()),
        actor: Some("tester".into()),
        traceparent: Some("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01".into()),
    };
    let mut batch = events(3);
    batch[0].metadata = metadata.clone();
    let sent: Vec<_> = batch.iter().map(|e| e.event_id).collect();
    let before = Utc::now();
    let result = store
        .append("thing-1", ExpectedVersion::NoStream, batch)
        .await
        .unwrap();
    assert_eq!(result.stream_version, 3);
    assert!(!result.already_stored);
    assert_eq!(store.stream_version("thing-1").await.unwrap(), Some(3));
    assert_eq!(store.head_position().await.unwrap(), result.last_position);

    let read = store.read_stream("thing-1", 1, 10).await.unwrap();
    assert_eq!(read.iter().map(|e| e.event_id).collect::<Vec<_>>(), sent);
    assert_eq!(
        read.iter().map(|e| e.stream_version).collect::<Vec<_>>(),
        [1, 2, 3]
    );
    assert_eq!(read[0].metadata, metadata, "metadata must round-trip");
    assert_eq!(read[1].payload, json!({ "n": 1 }));
    assert_eq!(read[2].position, result.last_position);
    assert!(
        read.iter()
            .all(|e| e.stream_id == "thing-1" && e.event_type == "Happened")
    );
    assert!(read[0].recorded_at >= before - chrono::Duration::seconds(1));

    let tail = store.read_stream("thing-1", 2, 1).await.unwrap();
    assert_eq!(tail.len(), 1, "limit must be honoured");
    assert_eq!(tail[0].stream_version, 2);
}

pub async fn expected_version_conflicts(backend: &impl TestBackend) {
    let Opened { store, .. } = open(backend).await;
    store
        .append("s-1", ExpectedVersion::NoStream, events(2))
        .await
        .unwrap();
    let head = store.head_position().await.unwrap();

    let cases = [
        (ExpectedVersion::NoStream, Some(2)),
        (ExpectedVersion::Exact(1), Some(2)),
        (ExpectedVersion::Exact(3), Some(2)),
    ];
    for (expected, actual) in cases {
        match store.append("s-1", expected, events(1)).await {
            Err(EventStoreError::WrongExpectedVersion {
                write,
                stream_id,
                expected: e,
                actual: a,
            }) => {
                assert_eq!(
                    (write, stream_id.as_str(), e, a),
                    (0, "s-1", expected, actual)
                );
            }
            other => panic!("expected a conflict for {expected}, got {other:?}"),
        }
    }
    match store
        .append("s-missing", ExpectedVersion::Exact(0), events(1))
        .await
    {
        Err(EventStoreError::WrongExpectedVersion { actual: None, .. }) => {}
        other => panic!("Exact(0) on a missing stream must conflict, got {other:?}"),
    }
    assert_eq!(
        store.head_position().await.unwrap(),
        head,
        "a conflict must store nothing"
    );

    let ok = store
        .append("s-1", ExpectedVersion::Exact(2), events(1))
        .await
        .unwrap();
    assert_eq!(ok.stream_version, 3);
    let any = store
        .append("s-1", ExpectedVersion::Any, events(2))
        .await
        .unwrap();
    assert_eq!(any.stream_version, 5);
    let fresh = store
        .append("s-2", ExpectedVersion::Any, events(1))
        .await
        .unwrap();
    assert_eq!(fresh.stream_version, 1);
}

pub async fn multi_stream_write_is_atomic(backend: &impl TestBackend) {
    let Opened { store, .. } = open(backend).await;
    store
        .append("taken-x", ExpectedVersion::NoStream, events(1))
        .await
        .unwrap();
    let head = store.head_position().await.unwrap();

    let refused = store
        .append_streams(vec![
            StreamWrite::new("owner-1", ExpectedVersion::NoStream, events(2)),
            StreamWrite::new("taken-x", ExpectedVersion::NoStream, events(1)),
        ])
        .await;
    assert!(
        matches!(refused, Err(EventStoreError::WrongExpectedVersion { write: 1, ref stream_id, .. }) if stream_id == "taken-x")
    );
    assert_eq!(
        store.stream_version("owner-1").await.unwrap(),
        None,
        "first write must roll back"
    );
    assert_eq!(store.head_position().await.unwrap(), head);

    let results = store
        .append_streams(vec![
            StreamWrite::new("owner-1", ExpectedVersion::NoStream, events(2)),
            StreamWrite::new("taken-y", ExpectedVersion::NoStream, events(1)),
        ])
        .await
        .unwrap();
    assert_eq!(results.len(), 2);
    assert_eq!(
        (results[0].stream_version, results[1].stream_version),
        (2, 1)
    );
    assert!(results[1].last_position > results[0].last_position);

    // An empty write is a version check: it guards the batch and stores nothing itself.
    let head = store.head_position().await.unwrap();
    let guarded = store
        .append_streams(vec![
            StreamWrite::new("owner-2", ExpectedVersion::NoStream, events(1)),
            StreamWrite::new("taken-x", ExpectedVersion::Exact(7), vec![]),
        ])
        .await;
    assert!(
        matches!(guarded, Err(EventStoreError::WrongExpectedVersion { write: 1, ref stream_id, .. }) if stream_id == "taken-x")
    );
    assert_eq!(store.head_position().await.unwrap(), head);
    store
        .append_streams(vec![
            StreamWrite::new("owner-2", ExpectedVersion::NoStream, events(1)),
            StreamWrite::new("taken-x", ExpectedVersion::Exact(1), vec![]),
        ])
        .await
        .unwrap();
    assert_eq!(store.stream_version("taken-x").await.unwrap(), Some(1));
    assert_eq!(store.stream_version("owner-2").await.unwrap(), Some(1));
}

/// A batch whose second write is stale names that write, by index and stream, and stores
/// nothing of the other two.
pub async fn conflict_names_the_stale_write(backend: &impl TestBackend) {
    let Opened { store, .. } = open(backend).await;
    store
        .append("stale-b", ExpectedVersion::NoStream, events(2))
        .await
        .unwrap();
    let head = store.head_position().await.unwrap();

    let refused = store
        .append_streams(vec![
            StreamWrite::new("fresh-a", ExpectedVersion::NoStream, events(1)),
            StreamWrite::new("stale-b", ExpectedVersion::Exact(1), events(1)),
            StreamWrite::new("fresh-c", ExpectedVersion::NoStream, events(2)),
        ])
        .await;
    match refused {
        Err(EventStoreError::WrongExpectedVersion {
            write,
            stream_id,
            expected,
            actual,
        }) => assert_eq!(
            (write, stream_id.as_str(), expected, actual),
            (1, "stale-b", ExpectedVersion::Exact(1), Some(2)),
            "the conflict must name the second write"
        ),
        other => panic!("a stale second write must conflict, got {other:?}"),
    }
    assert_eq!(store.head_position().await.unwrap(), head, "nothing stored");
    assert_eq!(store.stream_version("fresh-a").await.unwrap(), None);
    assert_eq!(store.stream_version("stale-b").await.unwrap(), Some(2));
    assert_eq!(store.stream_version("fresh-c").await.unwrap(), None);
    assert_eq!(store.read_all(0, 100).await.unwrap().len(), 2);
}

pub async fn retried_append_is_idempotent(backend: &impl TestBackend) {
    let Opened { store, .. } = open(backend).await;
    let batch = events(3);
    let first = store
        .append("r-1", ExpectedVersion::NoStream, batch.clone())
        .await
        .unwrap();
    // The retry carries the same stale expected version: it must still succeed.
    let retry = store
        .append("r-1", ExpectedVersion::NoStream, batch.clone())
        .await
        .unwrap();
    assert!(retry.already_stored);
    assert_eq!(retry.stream_version, first.stream_version);
    assert_eq!(retry.last_position, first.last_position);
    assert_eq!(
        store.read_all(0, 100).await.unwrap().len(),
        3,
        "a retry must not duplicate"
    );
    assert_eq!(store.stream_version("r-1").await.unwrap(), Some(3));
}

/// `AppendResult::recorded_at` is the time stored with the write's events, for a fresh append
/// and for a retry, so a command can answer without reading its events back.
pub async fn append_reports_recorded_at(backend: &impl TestBackend) {
    let Opened { store, .. } = open(backend).await;
    let recorded =
        |events: &[RecordedEvent]| events.iter().map(|e| e.recorded_at).collect::<HashSet<_>>();

    let single = store
        .append("at-1", ExpectedVersion::NoStream, events(3))
        .await
        .unwrap();
    let read = store.read_stream("at-1", 1, 10).await.unwrap();
    assert_eq!(
        recorded(&read),
        HashSet::from([single.recorded_at]),
        "every event of the write is stored with the reported time"
    );

    // Let the clock move, so a retry that reported "now" would be caught.
    tokio::time::sleep(Duration::from_millis(20)).await;
    let batch = vec![
        StreamWrite::new("at-1", ExpectedVersion::Exact(3), events(1)),
        StreamWrite::new("at-2", ExpectedVersion::NoStream, events(2)),
    ];
    let fresh = store.append_streams(batch.clone()).await.unwrap();
    let tail = store.read_stream("at-1", 4, 10).await.unwrap();
    let other = store.read_stream("at-2", 1, 10).await.unwrap();
    assert_eq!(recorded(&tail), HashSet::from([fresh[0].recorded_at]));
    assert_eq!(recorded(&other), HashSet::from([fresh[1].recorded_at]));
    assert!(fresh[0].recorded_at >= single.recorded_at);

    tokio::time::sleep(Duration::from_millis(20)).await;
    let retry = store.append_streams(batch).await.unwrap();
    assert!(retry.iter().all(|r| r.already_stored));
    assert_eq!(
        retry.iter().map(|r| r.recorded_at).collect::<Vec<_>>(),
        [tail[0].recorded_at, other[1].recorded_at],
        "a retry reports the time stored by the first attempt"
    );
    let single_retry = store
        .append(
            "at-1",
            ExpectedVersion::NoStream,
            read.iter()
                .map(|e| NewEvent {
                    event_id: e.event_id,
                    event_type: e.event_type.clone(),
                    schema_version: e.schema_version,
                    payload: e.payload.clone(),
                    metadata: e.metadata.clone(),
                })
                .collect(),
        )
        .await
        .unwrap();
    assert!(single_retry.already_stored);
    assert_eq!(single_retry.recorded_at, read[2].recorded_at);
    assert_eq!(
        store.read_all(0, 100).await.unwrap().len(),
        6,
        "retries store nothing"
    );

    // A write without events (a version check) reports a time no earlier than what is stored.
    let check = store
        .append("at-2", ExpectedVersion::Exact(2), vec![])
        .await
        .unwrap();
    assert!(check.recorded_at >= fresh[1].recorded_at);
}

pub async fn reused_event_id_is_refused(backend: &impl TestBackend) {
    let Opened { store, .. } = open(backend).await;
    let batch = events(2);
    store
        .append("u-1", ExpectedVersion::NoStream, batch.clone())
        .await
        .unwrap();

    let mut mixed = events(1);
    mixed.push(batch[0].clone());
    let refused = store.append("u-1", ExpectedVersion::Any, mixed).await;
    assert!(
        matches!(refused, Err(EventStoreError::EventIdReused { event_id }) if event_id == batch[0].event_id)
    );

    let elsewhere = store
        .append("u-2", ExpectedVersion::Any, batch.clone())
        .await;
    assert!(matches!(
        elsewhere,
        Err(EventStoreError::EventIdReused { .. })
    ));
    assert_eq!(
        store.read_all(0, 100).await.unwrap().len(),
        2,
        "refused writes store nothing"
    );

    let twice = vec![batch[0].clone(), batch[0].clone()];
    assert!(matches!(
        store.append("u-3", ExpectedVersion::Any, twice).await,
        Err(EventStoreError::InvalidWrite(_))
    ));
}

pub async fn read_all_is_ordered_and_batched(backend: &impl TestBackend) {
    let Opened { store, .. } = open(backend).await;
    let mut sent = Vec::new();
    for i in 0..10 {
        let batch = events(3);
        sent.extend(batch.iter().map(|e| e.event_id));
        store
            .append(&format!("o-{}", i % 3), ExpectedVersion::Any, batch)
            .await
            .unwrap();
    }
    let mut seen = Vec::new();
    let mut position = 0;
    loop {
        let page = store.read_all(position, 7).await.unwrap();
        assert!(page.len() <= 7);
        let Some(last) = page.last() else { break };
        assert!(
            page.windows(2).all(|w| w[0].position < w[1].position),
            "positions must increase"
        );
        assert!(
            page[0].position > position,
            "read_all must start after the given position"
        );
        position = last.position;
        seen.extend(page.iter().map(|e| e.event_id));
    }
    assert_eq!(
        seen, sent,
        "read_all must return every event in append order"
    );
    assert_eq!(store.head_position().await.unwrap(), position);
}

pub async fn concurrent_writers_never_skip_or_duplicate(backend: &impl TestBackend) {
    const WRITERS: usize = 8;
    const APPENDS: usize = 40;
    let Opened { store, .. } = open(backend).await;
    let expected_total = WRITERS * APPENDS * 2;

    let reader = {
        let store = Arc::clone(&store);
        tokio::spawn(async move {
            let mut subscription = Subscription::new(store, 0, 16);
            let mut seen = Vec::new();
            while seen.len() < expected_total {
                let batch = subscription.next_batch().await.unwrap();
                seen.extend(batch.into_iter().map(|e| (e.position, e.event_id)));
            }
            seen
        })
    };

    let mut writers = Vec::new();
    for w in 0..WRITERS {
        let store = Arc::clone(&store);
        writers.push(tokio::spawn(async move {
            let mut ids = Vec::new();
            for i in 0..APPENDS {
                // Half the appends go to a stream shared by all writers, which forces conflicts
                // and retries, and half to the writer's own stream.
                let stream = if i % 2 == 0 {
                    "shared-1".to_owned()
                } else {
                    format!("own-{w}")
                };
                let batch = events(2);
                ids.extend(batch.iter().map(|e| e.event_id));
                loop {
                    let version = store.stream_version(&stream).await.unwrap();
                    let expected =
                        version.map_or(ExpectedVersion::NoStream, ExpectedVersion::Exact);
                    match store.append(&stream, expected, batch.clone()).await {
                        Ok(_) => break,
                        Err(e) if e.is_conflict() => tokio::task::yield_now().await,
                        Err(e) => panic!("append failed: {e}"),
                    }
                }
            }
            ids
        }));
    }
    let mut appended = HashSet::new();
    for writer in writers {
        appended.extend(writer.await.unwrap());
    }
    let seen = tokio::time::timeout(Duration::from_secs(60), reader)
        .await
        .expect("the reader must see every appended event")
        .unwrap();

    assert_eq!(
        seen.len(),
        expected_total,
        "the reader must see each event exactly once"
    );
    assert!(
        seen.windows(2).all(|w| w[0].0 < w[1].0),
        "the reader must see position order"
    );
    let seen_ids: HashSet<_> = seen.iter().map(|(_, id)| *id).collect();
    assert_eq!(seen_ids.len(), expected_total, "no event may be seen twice");
    assert_eq!(
        seen_ids, appended,
        "the reader must see exactly the appended events"
    );

    let all = store.read_all(0, expected_total + 10).await.unwrap();
    let positions: Vec<_> = all.iter().map(|e| (e.position, e.event_id)).collect();
    assert_eq!(
        positions, seen,
        "a later full read must equal what the follower saw"
    );
    let shared = store
        .read_stream("shared-1", 1, expected_total)
        .await
        .unwrap();
    assert_eq!(
        shared.len(),
        WRITERS * APPENDS,
        "shared stream keeps every write"
    );
    assert!(
        shared
            .iter()
            .enumerate()
            .all(|(i, e)| e.stream_version == i as u64 + 1)
    );
}

pub async fn stream_as_of_a_time(backend: &impl TestBackend) {
    let Opened { store, .. } = open(backend).await;
    let before_all = Utc::now() - chrono::Duration::seconds(1);
    store
        .append("t-1", ExpectedVersion::NoStream, events(1))
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(20)).await;
    let between = Utc::now();
    tokio::time::sleep(Duration::from_millis(20)).await;
    store
        .append("t-1", ExpectedVersion::Exact(1), events(2))
        .await
        .unwrap();

    let then = store.read_stream_as_of("t-1", between).await.unwrap();
    assert_eq!(
        then.iter().map(|e| e.stream_version).collect::<Vec<_>>(),
        [1]
    );
    assert!(
        store
            .read_stream_as_of("t-1", before_all)
            .await
            .unwrap()
            .is_empty()
    );
    let now = store.read_stream_as_of("t-1", Utc::now()).await.unwrap();
    assert_eq!(now.len(), 3);
}

/// Version 1 of `NameChanged` carried one `name`; version 2 splits it into `first` and `last`.
fn name_changed_v1_to_v2(v1: serde_json::Value) -> serde_json::Value {
    let name = v1["name"].as_str().unwrap_or_default();
    let (first, last) = name.split_once(' ').unwrap_or((name, ""));
    json!({ "first": first, "last": last })
}

pub async fn old_payloads_are_upcast_when_read(backend: &impl TestBackend) {
    let place = location();
    let old_code = backend.open(&place, EventCodec::default()).await;
    let old = NewEvent::new(
        "NameChanged",
        1,
        json!({ "name": "Ada Lovelace" }),
        EventMetadata::default(),
    );
    old_code
        .store
        .append("p-1", ExpectedVersion::NoStream, vec![old])
        .await
        .unwrap();

    let upcasters = Upcasters::new().register("NameChanged", 1, name_changed_v1_to_v2);
    let new_code = backend.open(&place, EventCodec::new(upcasters)).await;
    let current = NewEvent::new(
        "NameChanged",
        2,
        json!({ "first": "Grace", "last": "Hopper" }),
        EventMetadata::default(),
    );
    new_code
        .store
        .append("p-1", ExpectedVersion::Exact(1), vec![current])
        .await
        .unwrap();

    let read = new_code.store.read_stream("p-1", 1, 10).await.unwrap();
    assert_eq!(
        read[0].schema_version, 2,
        "an old payload is reported in its upcast version"
    );
    assert_eq!(
        read[0].payload,
        json!({ "first": "Ada", "last": "Lovelace" })
    );
    assert_eq!(
        read[1].payload,
        json!({ "first": "Grace", "last": "Hopper" })
    );
    let all = new_code.store.read_all(0, 10).await.unwrap();
    assert_eq!(all[0].payload, read[0].payload, "every read path upcasts");
    // The stored history itself is untouched: old code still reads version 1.
    let raw = old_code.store.read_stream("p-1", 1, 1).await.unwrap();
    assert_eq!(
        (raw[0].schema_version, &raw[0].payload),
        (1, &json!({ "name": "Ada Lovelace" }))
    );
}

/// A tiny aggregate for the aggregate and projection cases.
#[derive(Debug, Default)]
struct Counter {
    value: i64,
    opened: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", content = "data")]
enum CounterEvent {
    Opened,
    Added { amount: i64 },
}

impl DomainEvent for CounterEvent {}

enum CounterCommand {
    Open,
    Add(i64),
}

impl Aggregate for Counter {
    const CATEGORY: &'static str = "counter";
    type Id = &'static str;
    type Event = CounterEvent;
    type Command = CounterCommand;
    type Error = String;

    fn apply(&mut self, event: &CounterEvent) {
        match event {
            CounterEvent::Opened => self.opened = true,
            CounterEvent::Added { amount } => self.value += amount,
        }
    }

    fn decide(&self, command: &CounterCommand) -> Result<Vec<CounterEvent>, String> {
        match command {
            CounterCommand::Open if self.opened => Err("already open".into()),
            CounterCommand::Open => Ok(vec![CounterEvent::Opened]),
            CounterCommand::Add(_) if !self.opened => Err("not open".into()),
            CounterCommand::Add(0) => Ok(vec![]),
            CounterCommand::Add(amount) => Ok(vec![CounterEvent::Added { amount: *amount }]),
        }
    }
}

pub async fn aggregate_is_rebuilt_by_replay(backend: &impl TestBackend) {
    let Opened { store, .. } = open(backend).await;
    let repo = Repository::<Counter>::new(Arc::clone(&store));
    let meta = EventMetadata::default();

    assert!(matches!(
        repo.execute(&"c1", &CounterCommand::Add(1), &meta, None).await,
        Err(ExecuteError::Rejected(ref e)) if e == "not open"
    ));
    let opened = repo
        .execute(&"c1", &CounterCommand::Open, &meta, None)
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(20)).await;
    let added = repo
        .execute(&"c1", &CounterCommand::Add(5), &meta, None)
        .await
        .unwrap();
    assert_eq!(added.events, [CounterEvent::Added { amount: 5 }]);
    assert_eq!(
        (added.loaded.state.value, added.loaded.version),
        (5, Some(2))
    );
    // The times and position come from the store, equal to what a reload sees.
    let reloaded = repo.load(&"c1").await.unwrap();
    assert_eq!(added.loaded.created_at, reloaded.created_at);
    assert_eq!(opened.loaded.created_at, reloaded.created_at);
    assert_eq!(added.loaded.updated_at, reloaded.updated_at);
    assert!(added.loaded.updated_at > opened.loaded.updated_at);
    assert_eq!(
        added.last_position(),
        Some(store.head_position().await.unwrap())
    );
    let unchanged = repo
        .execute(&"c1", &CounterCommand::Add(0), &meta, None)
        .await
        .unwrap();
    assert!(unchanged.events.is_empty());
    assert!(unchanged.append.is_none());
    assert_eq!(
        unchanged.loaded.version,
        Some(2),
        "a command that decides nothing stores nothing"
    );

    tokio::time::sleep(Duration::from_millis(20)).await;
    let mid = Utc::now();
    tokio::time::sleep(Duration::from_millis(20)).await;
    repo.execute(&"c1", &CounterCommand::Add(-2), &meta, None)
        .await
        .unwrap();

    let loaded = repo.load(&"c1").await.unwrap();
    assert_eq!((loaded.state.value, loaded.version), (3, Some(3)));
    let stored = store.read_stream("counter-c1", 1, 10).await.unwrap();
    assert_eq!(stored[1].event_type, "Added");
    assert_eq!(stored[1].payload, json!({ "amount": 5 }));
    let then = repo.load_as_of(&"c1", mid).await.unwrap();
    assert_eq!((then.state.value, then.version), (5, Some(2)));
    assert!(!repo.load(&"missing").await.unwrap().exists());

    // Concurrent commands on one aggregate all land, through conflict retries.
    let tasks: Vec<_> = (0..4)
        .map(|_| {
            let repo = repo.clone();
            tokio::spawn(async move {
                repo.execute(
                    &"c1",
                    &CounterCommand::Add(1),
                    &EventMetadata::default(),
                    None,
                )
                .await
            })
        })
        .collect();
    let mut landed = 0;
    for task in tasks {
        if task.await.unwrap().is_ok() {
            landed += 1;
        }
    }
    let loaded = repo.load(&"c1").await.unwrap();
    assert_eq!(
        loaded.state.value,
        3 + landed,
        "every successful command is in the stream"
    );
    assert_eq!(
        landed, 4,
        "without a version precondition, a command is decided again after a conflict"
    );
}

pub async fn subscriber_is_woken_by_append(backend: &impl TestBackend) {
    let Opened { store, .. } = open(backend).await;
    store
        .append("w-1", ExpectedVersion::NoStream, events(1))
        .await
        .unwrap();
    let head = store.head_position().await.unwrap();
    // With the fallback re-read an hour away, only the append's wake-up can end the wait.
    let mut subscription = Subscription::new(Arc::clone(&store), head, 10)
        .with_fallback_poll(Duration::from_secs(3600));
    let waiter = tokio::spawn(async move { subscription.next_batch().await.unwrap() });
    tokio::time::sleep(Duration::from_millis(50)).await;
    let sent = events(2);
    let ids: Vec<_> = sent.iter().map(|e| e.event_id).collect();
    store
        .append("w-1", ExpectedVersion::Exact(1), sent)
        .await
        .unwrap();
    let batch = tokio::time::timeout(Duration::from_secs(30), waiter)
        .await
        .expect("an append must wake a waiting subscriber")
        .unwrap();
    assert_eq!(batch.iter().map(|e| e.event_id).collect::<Vec<_>>(), ids);
}

/// Counts events per stream, idempotently: an event at or below the stream's applied version
/// changes nothing.
#[derive(Default)]
struct StreamTally {
    applied: Mutex<BTreeMap<String, (u64, i64)>>,
    calls: AtomicUsize,
}

#[async_trait]
impl Projection for StreamTally {
    fn name(&self) -> &str {
        "stream-tally"
    }

    async fn apply(&self, event: &RecordedEvent) -> Result<(), ProjectionError> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        let amount = event.payload["n"].as_i64().ok_or("payload without n")?;
        let mut applied = self.applied.lock().map_err(|e| e.to_string())?;
        let entry = applied.entry(event.stream_id.clone()).or_default();
        if event.stream_version > entry.0 {
            *entry = (event.stream_version, entry.1 + amount);
        }
        Ok(())
    }

    async fn reset(&self) -> Result<(), ProjectionError> {
        self.applied.lock().map_err(|e| e.to_string())?.clear();
        Ok(())
    }
}

impl StreamTally {
    fn snapshot(&self) -> BTreeMap<String, (u64, i64)> {
        self.applied.lock().unwrap().clone()
    }
}

pub async fn projection_resumes_from_checkpoint_after_restart(backend: &impl TestBackend) {
    let place = location();
    let first = backend.open(&place, EventCodec::default()).await;
    first
        .store
        .append("k-1", ExpectedVersion::NoStream, events(3))
        .await
        .unwrap();
    let tally = Arc::new(StreamTally::default());
    let runner = ProjectionRunner::new(
        Arc::clone(&first.store),
        Arc::clone(&first.checkpoints),
        tally.clone(),
    );
    let reached = runner.catch_up().await.unwrap();
    assert_eq!(reached, first.store.head_position().await.unwrap());
    assert_eq!(
        first.checkpoints.load("stream-tally").await.unwrap(),
        reached
    );
    drop((runner, first));

    let restarted = backend.open(&place, EventCodec::default()).await;
    assert_eq!(
        restarted.checkpoints.load("stream-tally").await.unwrap(),
        reached,
        "checkpoint must survive a restart"
    );
    restarted
        .store
        .append("k-1", ExpectedVersion::Exact(3), events(2))
        .await
        .unwrap();
    let runner = ProjectionRunner::new(
        Arc::clone(&restarted.store),
        restarted.checkpoints,
        tally.clone(),
    );
    runner.catch_up().await.unwrap();
    assert_eq!(
        tally.calls.load(Ordering::SeqCst),
        5,
        "a resumed projection reads only new events"
    );
    assert_eq!(tally.snapshot()["k-1"], (5, 4));

    // Applying the same events again (a redelivery) changes nothing.
    for event in restarted.store.read_all(0, 100).await.unwrap() {
        tally.apply(&event).await.unwrap();
    }
    assert_eq!(tally.snapshot()["k-1"], (5, 4));
}

pub async fn rebuild_equals_incremental(backend: &impl TestBackend) {
    let Opened { store, checkpoints } = open(backend).await;
    let incremental = Arc::new(StreamTally::default());
    let runner = ProjectionRunner::new(
        Arc::clone(&store),
        Arc::clone(&checkpoints),
        incremental.clone(),
    );
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let mut progress = runner.progress();
    let running = tokio::spawn(runner.run(async {
        let _ = stopped.await;
    }));
    for i in 0..20 {
        store
            .append(
                &format!("b-{}", i % 4),
                ExpectedVersion::Any,
                events(i % 3 + 1),
            )
            .await
            .unwrap();
    }
    let head = store.head_position().await.unwrap();
    assert!(
        crate::wait_for_position(&mut progress, head, Duration::from_secs(30)).await,
        "a running projection must follow new events"
    );
    let _ = stop.send(());
    running.await.unwrap();

    let rebuilt = Arc::new(StreamTally::default());
    let rebuilder = ProjectionRunner::new(Arc::clone(&store), checkpoints, rebuilt.clone());
    assert_eq!(rebuilder.rebuild().await.unwrap(), head);
    assert_eq!(rebuilt.snapshot(), incremental.snapshot());
    assert_eq!(rebuilt.snapshot().len(), 4);
}

/// The personal data rules of the erasure case: a diary line's text is Ada's or Bob's.
fn diary_codec() -> EventCodec {
    let personal = PersonalData::new()
        .register("LineWritten", Subject::Field("userId"), &["userId"])
        .register("Renamed", Subject::Stream, &[]);
    let upcasters = Upcasters::new().register("LineWritten", 1, |mut payload| {
        payload["words"] = json!(payload["text"].as_str().map_or(0, |t| t.split(' ').count()));
        payload
    });
    EventCodec::new(upcasters).with_personal_data(personal)
}

pub async fn personal_data_is_sealed_and_erasure_shreds_it(backend: &impl TestBackend) {
    let place = location();
    let Opened { store, checkpoints } = backend.open(&place, diary_codec()).await;
    let line = |user: &str, text: &str| event("LineWritten", json!({"userId": user, "text": text}));
    store
        .append_streams(vec![
            StreamWrite::new(
                "line-1",
                ExpectedVersion::NoStream,
                vec![line("ada", "ada's secret garden")],
            ),
            StreamWrite::new(
                "line-2",
                ExpectedVersion::NoStream,
                vec![line("bob", "bob's open book")],
            ),
            StreamWrite::new(
                "person-ada",
                ExpectedVersion::NoStream,
                vec![event("Renamed", json!({"name": "Ada King"}))],
            ),
        ])
        .await
        .unwrap();

    // Readers see the data; what is stored (and published) holds none of it.
    let read = store.read_stream("line-1", 1, 10).await.unwrap();
    assert_eq!(
        read[0].payload,
        json!({"userId": "ada", "text": "ada's secret garden", "words": 3}),
        "a sealed payload opens and is upcast when read"
    );
    assert!(!read[0].erased);
    let sealed = store.read_all_sealed(0, 10).await.unwrap();
    assert_eq!(sealed.len(), 3);
    for event in &sealed {
        let text = event.payload.to_string();
        assert!(
            !text.contains("secret") && !text.contains("open book") && !text.contains("King"),
            "personal data is stored sealed: {text}"
        );
        assert!(event.payload.get(SEALED_FIELD).is_some());
    }
    assert_eq!(
        sealed[0].payload["userId"], "ada",
        "kept fields stay readable"
    );
    assert_eq!(sealed[0].schema_version, 1, "sealed events are as stored");
    let opened = store.open(sealed.clone()).await.unwrap();
    assert_eq!(
        opened,
        store.read_all(0, 10).await.unwrap(),
        "open(sealed) = read_all"
    );

    store.erase_subject("ada").await.unwrap();
    store.erase_subject("ada").await.unwrap();

    // Every read path: Ada's data is gone, Bob's is not.
    let after = store.read_all(0, 10).await.unwrap();
    assert_eq!(after[0].payload, json!({"userId": "ada"}));
    assert!(after[0].erased, "an erased subject's event is marked");
    assert_eq!(after[1].payload["text"], "bob's open book");
    assert!(!after[1].erased);
    assert_eq!(after[2].payload, json!({}));
    assert!(after[2].erased);
    let reopened = store.open(sealed.clone()).await.unwrap();
    assert!(
        reopened[0].erased && reopened[0].payload.get("text").is_none(),
        "copies published before the erasure no longer open"
    );
    let restarted = backend.open(&place, diary_codec()).await;
    let line_1 = restarted.store.read_stream("line-1", 1, 10).await.unwrap();
    assert!(line_1[0].erased && line_1[0].payload.get("text").is_none());

    // Nothing more of Ada is stored; others still are.
    let refused = restarted
        .store
        .append(
            "line-3",
            ExpectedVersion::NoStream,
            vec![line("ada", "again")],
        )
        .await;
    assert!(
        matches!(refused, Err(EventStoreError::SubjectErased { ref subject }) if subject == "ada"),
        "{refused:?}"
    );
    assert_eq!(
        restarted.store.stream_version("line-3").await.unwrap(),
        None
    );
    restarted
        .store
        .append(
            "line-4",
            ExpectedVersion::NoStream,
            vec![line("cy", "fine")],
        )
        .await
        .unwrap();

    // Projections and replays skip what was erased.
    let seen = Arc::new(Mutex::new(Vec::new()));
    let runner = ProjectionRunner::new(
        Arc::clone(&store),
        checkpoints,
        Arc::new(Recording {
            seen: Arc::clone(&seen),
        }),
    );
    runner.rebuild().await.unwrap();
    let seen: Vec<String> = seen.lock().unwrap().clone();
    assert_eq!(seen, vec!["line-2".to_owned(), "line-4".to_owned()]);
}

/// Records the streams of the events it is given.
struct Recording {
    seen: Arc<Mutex<Vec<String>>>,
}

#[async_trait]
impl Projection for Recording {
    fn name(&self) -> &str {
        "recording"
    }

    async fn apply(&self, event: &RecordedEvent) -> Result<(), ProjectionError> {
        self.seen.lock().unwrap().push(event.stream_id.clone());
        Ok(())
    }

    async fn reset(&self) -> Result<(), ProjectionError> {
        self.seen.lock().unwrap().clear();
        Ok(())
    }
}

/// A projection that does not know `Newer` events (until told), and whose store is busy for
/// the first `busy` `Flaky` events.
struct Picky {
    knows_newer: std::sync::atomic::AtomicBool,
    busy: AtomicUsize,
    seen: Mutex<Vec<String>>,
}

#[async_trait]
impl Projection for Picky {
    fn name(&self) -> &str {
        "picky"
    }

    async fn apply(&self, event: &RecordedEvent) -> Result<(), ProjectionError> {
        match event.event_type.as_str() {
            "Newer" if !self.knows_newer.load(Ordering::SeqCst) => {
                return Err(
                    EventStoreError::Codec("Newer is not a known event type".into()).into(),
                );
            }
            "Flaky"
                if self
                    .busy
                    .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
                    .is_ok() =>
            {
                return Err("the read store is busy".into());
            }
            _ => {}
        }
        self.seen.lock().unwrap().push(event.stream_id.clone());
        Ok(())
    }

    async fn reset(&self) -> Result<(), ProjectionError> {
        Ok(())
    }
}

pub async fn poison_events_are_parked_and_applied_again(backend: &impl TestBackend) {
    use crate::dead_letter::{LetterFilter, retry_dead_letters};
    let Opened { store, checkpoints } = open(backend).await;
    for (stream, event_type) in [
        ("s-1", "Known"),
        ("s-2", "Newer"),
        ("s-3", "Flaky"),
        ("s-4", "Known"),
    ] {
        store
            .append(
                stream,
                ExpectedVersion::NoStream,
                vec![event(event_type, json!({}))],
            )
            .await
            .unwrap();
    }
    let picky = Arc::new(Picky {
        knows_newer: false.into(),
        busy: AtomicUsize::new(1),
        seen: Mutex::new(Vec::new()),
    });
    let runner = ProjectionRunner::new(Arc::clone(&store), Arc::clone(&checkpoints), picky.clone());
    // A transient failure stops the batch, to be retried; nothing is parked for it.
    assert!(runner.catch_up().await.is_err(), "a busy store is an error");
    assert_eq!(runner.catch_up().await.unwrap(), 4);
    // At least once: the failed batch is applied again from its start.
    let mut seen = picky.seen.lock().unwrap().clone();
    seen.dedup();
    assert_eq!(
        seen,
        ["s-1", "s-3", "s-4"],
        "the projection went on past the event it cannot apply"
    );
    let all = LetterFilter::default();
    let parked = checkpoints.dead_letters(&all).await.unwrap();
    assert_eq!(parked.len(), 1, "{parked:?}");
    let letter = &parked[0];
    assert_eq!(
        (
            letter.projection.as_str(),
            letter.stream_id.as_str(),
            letter.event_type.as_str()
        ),
        ("picky", "s-2", "Newer")
    );
    // Met twice: in the batch that failed, and again when it was applied again.
    assert_eq!(
        (letter.position, letter.stream_version, letter.attempts),
        (2, 1, 2)
    );
    assert!(
        letter.error.contains("not a known event type"),
        "{}",
        letter.error
    );
    assert!(!letter.retry_requested);

    // Still unknown: a retry fails again and counts the attempt.
    let requested = checkpoints.request_retry(&all).await.unwrap();
    assert_eq!(requested, 1);
    let applied = retry_dead_letters(picky.as_ref(), checkpoints.as_ref(), store.as_ref(), false)
        .await
        .unwrap();
    assert_eq!(applied, 0);
    let parked = checkpoints.dead_letters(&all).await.unwrap();
    assert_eq!((parked[0].attempts, parked[0].retry_requested), (3, false));

    // A build that knows it: applied when asked (not before), and no longer parked.
    picky.knows_newer.store(true, Ordering::SeqCst);
    let other = LetterFilter {
        projection: Some("another".into()),
        event_id: None,
    };
    assert_eq!(checkpoints.request_retry(&other).await.unwrap(), 0);
    assert_eq!(
        retry_dead_letters(picky.as_ref(), checkpoints.as_ref(), store.as_ref(), false)
            .await
            .unwrap(),
        0,
        "nothing was asked for"
    );
    let this_one = LetterFilter {
        projection: None,
        event_id: Some(letter.event_id),
    };
    assert_eq!(checkpoints.request_retry(&this_one).await.unwrap(), 1);
    assert_eq!(
        retry_dead_letters(picky.as_ref(), checkpoints.as_ref(), store.as_ref(), false)
            .await
            .unwrap(),
        1
    );
    assert!(checkpoints.dead_letters(&all).await.unwrap().is_empty());
    assert_eq!(
        picky.seen.lock().unwrap().last().map(String::as_str),
        Some("s-2")
    );

    // Dropping removes for good.
    let again = store.read_all(1, 1).await.unwrap();
    checkpoints.park("picky", &again[0], "again").await.unwrap();
    assert_eq!(checkpoints.drop_letters(&this_one).await.unwrap(), 1);
    assert!(checkpoints.dead_letters(&all).await.unwrap().is_empty());
}

/// Concurrent appends share commits (group commit), and a refused append in a group costs
/// the others nothing: each is answered for itself. `commits` reads the backend's count of
/// committed append transactions.
pub async fn concurrent_appends_share_commits(
    store: Arc<dyn EventStore>,
    commits: impl Fn() -> u64,
) {
    let before = commits();
    let mut tasks = Vec::new();
    for i in 0..64 {
        let store = Arc::clone(&store);
        tasks.push(tokio::spawn(async move {
            // Every eighth append contends for one stream that must not exist yet.
            let stream = if i % 8 == 0 {
                "contested".to_owned()
            } else {
                format!("own-{i}")
            };
            store
                .append(&stream, ExpectedVersion::NoStream, events(1))
                .await
        }));
    }
    let (mut stored, mut conflicts) = (0, 0);
    for task in tasks {
        match task.await.unwrap() {
            Ok(_) => stored += 1,
            Err(e) if e.is_conflict() => conflicts += 1,
            Err(e) => panic!("append failed: {e}"),
        }
    }
    assert_eq!(
        (stored, conflicts),
        (57, 7),
        "one of the eight contested appends lands"
    );
    let all = store.read_all(0, 100).await.unwrap();
    assert_eq!(all.len(), 57);
    assert!(all.windows(2).all(|w| w[1].position > w[0].position));
    assert_eq!(
        store.read_stream("contested", 1, 10).await.unwrap().len(),
        1
    );
    let commits = commits() - before;
    assert!(
        commits < 57,
        "{commits} commits for 64 concurrent appends: they did not share commits"
    );
}
