//! An append whose reply is lost (the connection drops after the commit) must neither be
//! reported as failed when it was stored, nor stored twice when it is sent again.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use event_sourcing::testing::scratch_sqlite_store;
use event_sourcing::{
    AppendError, AppendResult, EventCodec, EventMetadata, EventStore, EventStoreError,
    ExpectedVersion, NewEvent, Position, RecordedEvent, StreamWrite, append_settled,
};
use tokio::sync::watch;

/// A store whose connection breaks: the first `lose` appends are committed but their replies
/// are lost; after that, `refuse` appends fail before reaching the store.
struct BrokenConnection {
    inner: Arc<dyn EventStore>,
    lose: AtomicUsize,
    refuse: AtomicUsize,
}

fn connection_reset() -> EventStoreError {
    EventStoreError::Backend(sqlx::Error::Io(std::io::Error::new(
        std::io::ErrorKind::ConnectionReset,
        "connection reset by peer",
    )))
}

fn take_one(counter: &AtomicUsize) -> bool {
    counter
        .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
        .is_ok()
}

#[async_trait]
impl EventStore for BrokenConnection {
    async fn append_streams(
        &self,
        writes: Vec<StreamWrite>,
    ) -> event_sourcing::Result<Vec<AppendResult>> {
        if take_one(&self.lose) {
            self.inner.append_streams(writes).await?;
            return Err(connection_reset());
        }
        if take_one(&self.refuse) {
            return Err(connection_reset());
        }
        self.inner.append_streams(writes).await
    }

    async fn read_stream(
        &self,
        stream_id: &str,
        from_version: u64,
        limit: usize,
    ) -> event_sourcing::Result<Vec<RecordedEvent>> {
        self.inner.read_stream(stream_id, from_version, limit).await
    }

    async fn read_stream_as_of(
        &self,
        stream_id: &str,
        as_of: DateTime<Utc>,
    ) -> event_sourcing::Result<Vec<RecordedEvent>> {
        self.inner.read_stream_as_of(stream_id, as_of).await
    }

    async fn stream_version(&self, stream_id: &str) -> event_sourcing::Result<Option<u64>> {
        self.inner.stream_version(stream_id).await
    }

    async fn read_all(
        &self,
        after: Position,
        limit: usize,
    ) -> event_sourcing::Result<Vec<RecordedEvent>> {
        self.inner.read_all(after, limit).await
    }

    async fn head_position(&self) -> event_sourcing::Result<Position> {
        self.inner.head_position().await
    }

    fn watch_head(&self) -> watch::Receiver<Position> {
        self.inner.watch_head()
    }
}

async fn broken(lose: usize, refuse: usize) -> BrokenConnection {
    BrokenConnection {
        inner: Arc::new(scratch_sqlite_store(EventCodec::default()).await),
        lose: AtomicUsize::new(lose),
        refuse: AtomicUsize::new(refuse),
    }
}

fn created() -> Vec<StreamWrite> {
    let event = NewEvent::new(
        "Created",
        1,
        serde_json::json!({"n": 1}),
        EventMetadata::default(),
    );
    vec![StreamWrite::new(
        "thing-1",
        ExpectedVersion::NoStream,
        vec![event],
    )]
}

#[tokio::test]
async fn a_lost_reply_is_resolved_by_resending_the_same_events() {
    let store = broken(1, 0).await;
    let results = append_settled(&store, created()).await.unwrap();
    assert!(results[0].already_stored, "the re-send found them stored");
    let stored = store.read_stream("thing-1", 1, 10).await.unwrap();
    assert_eq!(stored.len(), 1, "stored once, not twice");
    assert_eq!(results[0].recorded_at, stored[0].recorded_at);
}

#[tokio::test]
async fn a_store_that_stays_unreachable_leaves_the_outcome_unknown() {
    // The first attempt is committed and its reply lost; every re-send fails.
    let store = broken(1, 10).await;
    let error = append_settled(&store, created()).await.unwrap_err();
    assert!(matches!(error, AppendError::OutcomeUnknown(_)), "{error:?}");
    // It was stored: a client told "retry later" would have created a second copy.
    assert_eq!(store.read_stream("thing-1", 1, 10).await.unwrap().len(), 1);
}

#[tokio::test]
async fn a_refusal_is_not_retried() {
    let store = broken(0, 0).await;
    append_settled(&store, created()).await.unwrap();
    let mut again = created();
    again[0].events[0].event_id = uuid::Uuid::new_v4();
    let error = append_settled(&store, again).await.unwrap_err();
    assert!(
        matches!(
            error,
            AppendError::Refused(EventStoreError::WrongExpectedVersion { .. })
        ),
        "{error:?}"
    );
}
