//! An append whose reply is lost (the connection drops after the commit) must neither be
//! reported as failed when it was stored, nor stored twice when it is sent again.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use event_sourcing::testing::{InterceptedStore, scratch_sqlite_store};
use event_sourcing::{
    AppendError, EventCodec, EventMetadata, EventStore, EventStoreError, ExpectedVersion, NewEvent,
    StreamWrite, append_settled,
};

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

/// A store whose connection breaks: the first `lose` appends are committed but their replies
/// are lost; after that, `refuse` appends fail before reaching the store.
async fn broken(lose: usize, refuse: usize) -> InterceptedStore {
    let lose = Arc::new(AtomicUsize::new(lose));
    let refuse = Arc::new(AtomicUsize::new(refuse));
    let store = Arc::new(scratch_sqlite_store(EventCodec::default()).await);
    InterceptedStore::new(store, move |writes, inner| {
        let (lose, refuse) = (Arc::clone(&lose), Arc::clone(&refuse));
        async move {
            if take_one(&lose) {
                inner.append_streams(writes).await?;
                return Err(connection_reset());
            }
            if take_one(&refuse) {
                return Err(connection_reset());
            }
            inner.append_streams(writes).await
        }
    })
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

#[tokio::test]
async fn an_append_that_never_reached_the_store_is_refused_at_once() {
    // The store knows the server is down and sends nothing (PostgreSQL's fail-fast answer).
    let attempts = Arc::new(AtomicUsize::new(0));
    let store = InterceptedStore::new(
        Arc::new(scratch_sqlite_store(EventCodec::default()).await),
        {
            let attempts = Arc::clone(&attempts);
            move |_, _| {
                attempts.fetch_add(1, Ordering::SeqCst);
                async {
                    Err(EventStoreError::Backend(sqlx::Error::Io(
                        std::io::Error::new(std::io::ErrorKind::NotConnected, "unreachable"),
                    )))
                }
            }
        },
    );
    let error = append_settled(&store, created()).await.unwrap_err();
    assert!(matches!(error, AppendError::Refused(_)), "{error:?}");
    assert_eq!(
        attempts.load(Ordering::SeqCst),
        1,
        "what was never sent is not re-sent"
    );
}
