//! The backend-independent event store interface.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use tokio::sync::watch;

use crate::error::Result;
use crate::event::{AppendResult, ExpectedVersion, NewEvent, Position, RecordedEvent, StreamWrite};

/// An append-only store of event streams with one global order.
///
/// Guarantees every backend must give (the contract suite in [`crate::contract`] checks them):
/// - `append_streams` is atomic: all events of all writes are stored, or none.
/// - Within a stream, versions are 1, 2, 3, ... without gaps.
/// - Positions are unique and increase in commit order. `read_all(after, ..)` returns only a
///   *settled* prefix: once it returned an event at position P, no event at a position below P
///   can appear later. A reader that resumes from the last position it processed therefore
///   never skips an event. (SQLite serialises writers, so commit order is position order;
///   the PostgreSQL backend must enforce the same rule against out-of-order commits.)
/// - An event id is stored at most once. Re-sending a batch that is already stored succeeds
///   with `already_stored = true` and writes nothing, whatever the expected version says.
#[async_trait]
pub trait EventStore: Send + Sync + 'static {
    /// Appends to one or more streams in one atomic transaction. Fails with
    /// [`crate::EventStoreError::WrongExpectedVersion`] (nothing stored) when any stream is not
    /// at the version its write expects.
    async fn append_streams(&self, writes: Vec<StreamWrite>) -> Result<Vec<AppendResult>>;

    /// Appends a batch of events to one stream atomically.
    async fn append(
        &self,
        stream_id: &str,
        expected: ExpectedVersion,
        events: Vec<NewEvent>,
    ) -> Result<AppendResult> {
        let mut results = self
            .append_streams(vec![StreamWrite::new(stream_id, expected, events)])
            .await?;
        Ok(results.remove(0))
    }

    /// Events of one stream with `stream_version >= from_version`, in version order, at most
    /// `limit` of them.
    async fn read_stream(
        &self,
        stream_id: &str,
        from_version: u64,
        limit: usize,
    ) -> Result<Vec<RecordedEvent>>;

    /// Events of one stream recorded at or before `as_of`, in version order: replaying them
    /// gives the aggregate's state at that moment.
    async fn read_stream_as_of(
        &self,
        stream_id: &str,
        as_of: DateTime<Utc>,
    ) -> Result<Vec<RecordedEvent>>;

    /// The current version of a stream, `None` if it does not exist.
    async fn stream_version(&self, stream_id: &str) -> Result<Option<u64>>;

    /// Events with `position > after`, in position order, at most `limit`. See the trait docs
    /// for why a reader that resumes from its last position never skips an event.
    async fn read_all(&self, after: Position, limit: usize) -> Result<Vec<RecordedEvent>>;

    /// As [`Self::read_all`], with personal data still sealed and payloads at their stored
    /// schema version: what the relay publishes, so that erasing a subject also makes the
    /// published copies unreadable. [`Self::open`] turns them into what `read_all` returns.
    async fn read_all_sealed(&self, after: Position, limit: usize) -> Result<Vec<RecordedEvent>> {
        self.read_all(after, limit).await
    }

    /// Opens events read sealed (from a topic) with the subjects' keys, and upcasts them.
    async fn open(&self, events: Vec<RecordedEvent>) -> Result<Vec<RecordedEvent>> {
        Ok(events)
    }

    /// Erases a data subject: deletes their key, so the personal data of their events cannot
    /// be read again, from this store or any copy of its events; later appends of their
    /// personal data are refused. Erasing again does nothing.
    async fn erase_subject(&self, _subject: &str) -> Result<()> {
        Err(crate::EventStoreError::InvalidWrite(
            "this store cannot erase personal data".into(),
        ))
    }

    /// The highest settled position (0 for an empty store).
    async fn head_position(&self) -> Result<Position>;

    /// A receiver that changes whenever an append commits, carrying the new head position.
    /// Subscribers wait on it instead of polling. The SQLite backend signals this process's
    /// appends only; PostgreSQL also signals other processes' (LISTEN/NOTIFY). Subscribers
    /// still re-read now and then (see [`crate::projection`]) in case a signal was missed.
    fn watch_head(&self) -> watch::Receiver<Position>;
}

/// Reads a whole stream (in pages, so a long stream is not one huge query).
pub async fn read_full_stream<S: EventStore + ?Sized>(
    store: &S,
    stream_id: &str,
) -> Result<Vec<RecordedEvent>> {
    const PAGE: usize = 1000;
    let mut events = Vec::new();
    loop {
        let from = events.len() as u64 + 1;
        let page = store.read_stream(stream_id, from, PAGE).await?;
        let done = page.len() < PAGE;
        events.extend(page);
        if done {
            return Ok(events);
        }
    }
}

/// Runs a backend's write in a task of its own, so that a caller giving up (a cancelled
/// request) cannot abandon its transaction half-way: it commits or rolls back on its own.
pub(crate) async fn detached<T: Send + 'static>(
    what: &str,
    write: impl std::future::Future<Output = Result<T>> + Send + 'static,
) -> Result<T> {
    tokio::spawn(write)
        .await
        .map_err(|e| crate::EventStoreError::InvalidWrite(format!("{what} task failed: {e}")))?
}

/// Validates what every backend checks before touching storage.
pub(crate) fn validate_writes(writes: &[StreamWrite]) -> Result<()> {
    use crate::error::EventStoreError::InvalidWrite;
    let mut seen_streams = std::collections::HashSet::new();
    let mut seen_ids = std::collections::HashSet::new();
    for write in writes {
        if write.stream_id.is_empty() {
            return Err(InvalidWrite("empty stream id".into()));
        }
        if !seen_streams.insert(write.stream_id.as_str()) {
            return Err(InvalidWrite(format!(
                "stream {} appears twice in one write",
                write.stream_id
            )));
        }
        for event in &write.events {
            if event.event_type.is_empty() {
                return Err(InvalidWrite("empty event type".into()));
            }
            if !seen_ids.insert(event.event_id) {
                return Err(InvalidWrite(format!(
                    "event id {} appears twice in one write",
                    event.event_id
                )));
            }
        }
    }
    Ok(())
}
