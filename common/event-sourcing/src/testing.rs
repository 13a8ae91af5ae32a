//! Given/when/then for aggregates: given these past events, when this command, then these new
//! events (or this refusal). One helper for every aggregate of every service.
//!
//! ```ignore
//! assert_eq!(given::<UserState>(&[created()]).when(assign(0.85)), Ok(vec![assigned()]));
//! ```

use crate::aggregate::{Aggregate, fold};

/// The state after `history`: the "given" of a test.
pub fn given<A: Aggregate>(history: &[A::Event]) -> Given<A> {
    Given(fold(history))
}

/// An aggregate rebuilt from past events, waiting for a command.
#[derive(Debug, Clone)]
pub struct Given<A>(pub A);

impl<A: Aggregate> Given<A> {
    /// The events the command decides, or the aggregate's refusal: the "then" to assert on.
    pub fn when(&self, command: A::Command) -> Result<Vec<A::Event>, A::Error> {
        self.0.decide(&command)
    }
}

/// A fresh SQLite event store in a file of its own under the system's temporary directory,
/// for in-process tests of use cases against a real store.
pub async fn scratch_sqlite_store(codec: crate::EventCodec) -> crate::sqlite::SqliteEventStore {
    let dir = std::env::temp_dir().join("metachat-scratch-stores");
    let path = dir.join(format!("{}.db", uuid::Uuid::new_v4()));
    if let Err(e) = std::fs::create_dir_all(&dir) {
        panic!("cannot create {}: {e}", dir.display());
    }
    match crate::sqlite::SqliteEventStore::open(&path, codec).await {
        Ok(store) => store,
        Err(e) => panic!("cannot open a scratch store at {}: {e}", path.display()),
    }
}

/// How many times each kind of store call was made.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct StoreCalls {
    /// Reads of one stream (`read_stream`, `read_stream_as_of`, `stream_version`).
    pub stream_reads: usize,
    /// Calls of `append_streams` (and so of `append`).
    pub appends: usize,
    /// Reads of the global order (`read_all`, `head_position`).
    pub global_reads: usize,
}

/// An event store that counts the calls made to the store it wraps: a test of what a use case
/// costs (one stream read and one append per write, say).
pub struct CountingStore {
    inner: std::sync::Arc<dyn crate::EventStore>,
    calls: std::sync::Mutex<StoreCalls>,
}

impl CountingStore {
    pub fn new(inner: std::sync::Arc<dyn crate::EventStore>) -> Self {
        Self {
            inner,
            calls: std::sync::Mutex::new(StoreCalls::default()),
        }
    }

    /// The calls made since the last `take`.
    pub fn take(&self) -> StoreCalls {
        std::mem::take(&mut *self.calls.lock().unwrap_or_else(|e| e.into_inner()))
    }

    fn count(&self, call: impl FnOnce(&mut StoreCalls)) {
        call(&mut self.calls.lock().unwrap_or_else(|e| e.into_inner()));
    }
}

#[async_trait::async_trait]
impl crate::EventStore for CountingStore {
    async fn append_streams(
        &self,
        writes: Vec<crate::StreamWrite>,
    ) -> crate::Result<Vec<crate::AppendResult>> {
        self.count(|c| c.appends += 1);
        self.inner.append_streams(writes).await
    }

    async fn read_stream(
        &self,
        stream_id: &str,
        from_version: u64,
        limit: usize,
    ) -> crate::Result<Vec<crate::RecordedEvent>> {
        self.count(|c| c.stream_reads += 1);
        self.inner.read_stream(stream_id, from_version, limit).await
    }

    async fn read_stream_as_of(
        &self,
        stream_id: &str,
        as_of: chrono::DateTime<chrono::Utc>,
    ) -> crate::Result<Vec<crate::RecordedEvent>> {
        self.count(|c| c.stream_reads += 1);
        self.inner.read_stream_as_of(stream_id, as_of).await
    }

    async fn read_all_sealed(
        &self,
        after: crate::Position,
        limit: usize,
    ) -> crate::Result<Vec<crate::RecordedEvent>> {
        self.inner.read_all_sealed(after, limit).await
    }

    async fn open(
        &self,
        events: Vec<crate::RecordedEvent>,
    ) -> crate::Result<Vec<crate::RecordedEvent>> {
        self.inner.open(events).await
    }

    async fn erase_subject(&self, subject: &str) -> crate::Result<()> {
        self.inner.erase_subject(subject).await
    }

    async fn stream_version(&self, stream_id: &str) -> crate::Result<Option<u64>> {
        self.count(|c| c.stream_reads += 1);
        self.inner.stream_version(stream_id).await
    }

    async fn read_all(
        &self,
        after: crate::Position,
        limit: usize,
    ) -> crate::Result<Vec<crate::RecordedEvent>> {
        self.count(|c| c.global_reads += 1);
        self.inner.read_all(after, limit).await
    }

    async fn head_position(&self) -> crate::Result<crate::Position> {
        self.count(|c| c.global_reads += 1);
        self.inner.head_position().await
    }

    fn watch_head(&self) -> tokio::sync::watch::Receiver<crate::Position> {
        self.inner.watch_head()
    }
}

/// What [`InterceptedStore`] does with an append: given the writes and the real store.
pub type AppendInterceptor = Box<
    dyn Fn(
            Vec<crate::StreamWrite>,
            std::sync::Arc<dyn crate::EventStore>,
        ) -> futures_like::BoxFuture<crate::Result<Vec<crate::AppendResult>>>
        + Send
        + Sync,
>;

mod futures_like {
    pub type BoxFuture<T> = std::pin::Pin<Box<dyn std::future::Future<Output = T> + Send>>;
}

/// An event store whose appends pass through a test's function (to lose a reply, to hold an
/// append back, to fail), and whose reads go straight to the store it wraps.
pub struct InterceptedStore {
    inner: std::sync::Arc<dyn crate::EventStore>,
    append: AppendInterceptor,
}

impl InterceptedStore {
    pub fn new<F, Fut>(inner: std::sync::Arc<dyn crate::EventStore>, append: F) -> Self
    where
        F: Fn(Vec<crate::StreamWrite>, std::sync::Arc<dyn crate::EventStore>) -> Fut
            + Send
            + Sync
            + 'static,
        Fut: std::future::Future<Output = crate::Result<Vec<crate::AppendResult>>> + Send + 'static,
    {
        Self {
            inner,
            append: Box::new(move |writes, inner| Box::pin(append(writes, inner))),
        }
    }
}

#[async_trait::async_trait]
impl crate::EventStore for InterceptedStore {
    async fn append_streams(
        &self,
        writes: Vec<crate::StreamWrite>,
    ) -> crate::Result<Vec<crate::AppendResult>> {
        (self.append)(writes, std::sync::Arc::clone(&self.inner)).await
    }

    async fn read_stream(
        &self,
        stream_id: &str,
        from_version: u64,
        limit: usize,
    ) -> crate::Result<Vec<crate::RecordedEvent>> {
        self.inner.read_stream(stream_id, from_version, limit).await
    }

    async fn read_stream_as_of(
        &self,
        stream_id: &str,
        as_of: chrono::DateTime<chrono::Utc>,
    ) -> crate::Result<Vec<crate::RecordedEvent>> {
        self.inner.read_stream_as_of(stream_id, as_of).await
    }

    async fn read_all_sealed(
        &self,
        after: crate::Position,
        limit: usize,
    ) -> crate::Result<Vec<crate::RecordedEvent>> {
        self.inner.read_all_sealed(after, limit).await
    }

    async fn open(
        &self,
        events: Vec<crate::RecordedEvent>,
    ) -> crate::Result<Vec<crate::RecordedEvent>> {
        self.inner.open(events).await
    }

    async fn erase_subject(&self, subject: &str) -> crate::Result<()> {
        self.inner.erase_subject(subject).await
    }

    async fn stream_version(&self, stream_id: &str) -> crate::Result<Option<u64>> {
        self.inner.stream_version(stream_id).await
    }

    async fn read_all(
        &self,
        after: crate::Position,
        limit: usize,
    ) -> crate::Result<Vec<crate::RecordedEvent>> {
        self.inner.read_all(after, limit).await
    }

    async fn head_position(&self) -> crate::Result<crate::Position> {
        self.inner.head_position().await
    }

    fn watch_head(&self) -> tokio::sync::watch::Receiver<crate::Position> {
        self.inner.watch_head()
    }
}

/// Checks that payloads an earlier release stored (`fixture`: one `EventType<TAB>payload JSON`
/// per line) decode into this release's events and encode back to the very same bytes.
/// `reencode` decodes one stored event with the right event enum and encodes it again.
pub fn assert_stored_payloads_unchanged(
    fixture: &str,
    reencode: impl Fn(&crate::RecordedEvent) -> crate::Result<(String, serde_json::Value)>,
) {
    let mut seen = 0;
    for line in fixture.lines().filter(|l| !l.trim().is_empty()) {
        let Some((event_type, payload)) = line.split_once('\t') else {
            panic!("fixture line without a tab: {line}");
        };
        let parsed: serde_json::Value = match serde_json::from_str(payload) {
            Ok(value) => value,
            Err(e) => panic!("fixture payload of {event_type} is not JSON: {e}"),
        };
        let recorded = crate::RecordedEvent {
            event_id: uuid::Uuid::new_v4(),
            event_type: event_type.to_owned(),
            schema_version: 1,
            stream_id: "fixture-1".into(),
            stream_version: 1,
            position: 1,
            recorded_at: chrono::Utc::now(),
            payload: parsed,
            metadata: crate::EventMetadata::default(),
            erased: false,
            undecodable: None,
        };
        let (written_type, written) = match reencode(&recorded) {
            Ok(pair) => pair,
            Err(e) => panic!("{event_type} as stored does not read: {e}"),
        };
        let written = serde_json::to_string(&written).unwrap_or_default();
        assert_eq!(
            (written_type.as_str(), written.as_str()),
            (event_type, payload),
            "{event_type} does not write back as it was stored"
        );
        seen += 1;
    }
    assert!(seen > 0, "the fixture lists no event");
}

/// Decodes a stored event as `E` and encodes it again: the `reencode` of
/// [`assert_stored_payloads_unchanged`].
pub fn reencode<E: crate::DomainEvent>(
    recorded: &crate::RecordedEvent,
) -> crate::Result<(String, serde_json::Value)> {
    crate::encode_event(&crate::decode_event::<E>(recorded)?)
}
