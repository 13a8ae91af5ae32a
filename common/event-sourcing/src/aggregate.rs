//! Aggregates: domain types rebuilt by replaying their stream. Commands decide, events apply.

use std::marker::PhantomData;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::error::{EventStoreError, Result};
use crate::event::{
    AppendResult, EventMetadata, ExpectedVersion, NewEvent, Position, RecordedEvent, StreamName,
    StreamWrite,
};
use crate::store::{EventStore, read_full_stream};

/// A domain event enum. It must serialise as `{"type": "<EventName>", "data": {...}}`
/// (`#[serde(tag = "type", content = "data")]`): the tag becomes the stored event type and the
/// content the stored payload.
pub trait DomainEvent: Serialize + DeserializeOwned + Clone + Send + Sync + 'static {
    /// The current payload schema version of an event type (what this code writes).
    fn schema_version(_event_type: &str) -> u32 {
        1
    }
}

/// Splits a domain event into its stored type name and payload.
pub fn encode_event<E: DomainEvent>(event: &E) -> Result<(String, serde_json::Value)> {
    let value = serde_json::to_value(event).map_err(|e| EventStoreError::Codec(e.to_string()))?;
    let serde_json::Value::Object(mut map) = value else {
        return Err(EventStoreError::Codec(
            "domain event must serialise as an object".into(),
        ));
    };
    let Some(serde_json::Value::String(event_type)) = map.remove("type") else {
        return Err(EventStoreError::Codec(
            "domain event must have a string `type` tag".into(),
        ));
    };
    let payload = map.remove("data").unwrap_or(serde_json::Value::Null);
    Ok((event_type, payload))
}

/// Rebuilds a domain event from a stored event.
pub fn decode_event<E: DomainEvent>(event: &RecordedEvent) -> Result<E> {
    if let Some(reason) = &event.undecodable {
        return Err(EventStoreError::Codec(format!(
            "{} at {}@{}: {reason}",
            event.event_type, event.stream_id, event.stream_version
        )));
    }
    let tagged = serde_json::json!({ "type": event.event_type, "data": event.payload });
    // serde's message can quote a payload value (diary text): report only where it failed.
    serde_json::from_value(tagged).map_err(|e| {
        EventStoreError::Codec(format!(
            "{} at {}@{}: payload does not match the event type ({:?} error)",
            event.event_type,
            event.stream_id,
            event.stream_version,
            e.classify()
        ))
    })
}

/// A domain event to append under an id the caller chose (derived from what caused it, so a
/// retry stores it once).
pub fn new_event_with_id<E: DomainEvent>(
    event: &E,
    event_id: uuid::Uuid,
    metadata: &EventMetadata,
) -> Result<NewEvent> {
    let (event_type, payload) = encode_event(event)?;
    Ok(NewEvent {
        event_id,
        schema_version: E::schema_version(&event_type),
        event_type,
        payload,
        metadata: metadata.clone(),
    })
}

/// Turns domain events into events to append, all with the same metadata.
pub fn new_events<E: DomainEvent>(events: &[E], metadata: &EventMetadata) -> Result<Vec<NewEvent>> {
    events
        .iter()
        .map(|e| {
            let (event_type, payload) = encode_event(e)?;
            let version = E::schema_version(&event_type);
            Ok(NewEvent::new(
                event_type,
                version,
                payload,
                metadata.clone(),
            ))
        })
        .collect()
}

/// A consistency boundary whose state is the fold of its events.
pub trait Aggregate: Default + Send + Sync + 'static {
    /// Stream category: the aggregate with id `X` lives in stream `<CATEGORY>-X`.
    const CATEGORY: &'static str;
    /// The aggregate's id (a typed id, shown in its canonical text form in the stream name).
    type Id: std::fmt::Display + Send + Sync;
    type Event: DomainEvent;
    type Command;
    type Error;

    /// Changes state by one event. Never fails: an event is a fact.
    fn apply(&mut self, event: &Self::Event);

    /// Changes state by one stored event, for aggregates that keep when things happened.
    fn apply_recorded(&mut self, event: &Self::Event, _recorded_at: DateTime<Utc>) {
        self.apply(event);
    }

    /// Decides which events a command causes, from the current state, without side effects.
    fn decide(&self, command: &Self::Command)
    -> std::result::Result<Vec<Self::Event>, Self::Error>;

    /// True once nothing before can matter any more (an erased user): a replay that reaches
    /// such a state does not fail on an earlier event it cannot decode (a newer version's).
    fn is_final(&self) -> bool {
        false
    }

    /// The stream of the aggregate `id`: the one place stream names are made.
    fn stream_name(id: &Self::Id) -> StreamName {
        StreamName::new(Self::CATEGORY, id)
    }
}

/// An aggregate rebuilt from its stream, with the version it was rebuilt at. The default is
/// an aggregate whose stream does not exist yet.
#[derive(Debug, Clone, Default)]
pub struct Loaded<A> {
    pub state: A,
    /// `None` when the stream does not exist.
    pub version: Option<u64>,
    /// When the last replayed event was recorded.
    pub updated_at: Option<DateTime<Utc>>,
    /// When the first event was recorded.
    pub created_at: Option<DateTime<Utc>>,
    /// Some events of the stream belong to an erased subject and were not replayed
    /// ([`crate::personal`]).
    pub erased: bool,
}

impl<A> Loaded<A> {
    pub fn exists(&self) -> bool {
        self.version.is_some()
    }

    /// The expected version for appending after this state.
    pub fn expected_version(&self) -> ExpectedVersion {
        self.version
            .map_or(ExpectedVersion::NoStream, ExpectedVersion::Exact)
    }
}

impl<A: Aggregate> Loaded<A> {
    /// The state after `events` were stored by `result`: what a command answers with, without
    /// reading the stream again.
    pub fn stored(&mut self, events: &[A::Event], result: &AppendResult) {
        for event in events {
            self.state.apply_recorded(event, result.recorded_at);
        }
        self.version = Some(result.stream_version);
        self.created_at.get_or_insert(result.recorded_at);
        self.updated_at = Some(result.recorded_at);
    }
}

/// Why executing a command failed.
#[derive(Debug, thiserror::Error)]
pub enum ExecuteError<E> {
    /// The aggregate refused the command.
    #[error(transparent)]
    Rejected(E),
    /// The caller asked for a version (an HTTP `If-Match`) and the aggregate is at another.
    #[error("expected version {expected}, but the current version is {}", actual.map_or_else(|| "none".to_owned(), |v| v.to_string()))]
    VersionMismatch { expected: u64, actual: Option<u64> },
    /// Nothing was stored (a failed read, or an append the store refused).
    #[error(transparent)]
    Store(#[from] EventStoreError),
    /// The store became unreachable during the append and stayed so while it was retried: the
    /// events may or may not be stored. A client must read before repeating the command.
    #[error("the outcome of the append is unknown: {0}")]
    OutcomeUnknown(EventStoreError),
}

/// Why [`append_settled`] failed.
#[derive(Debug, thiserror::Error)]
pub enum AppendError {
    /// Nothing was stored.
    #[error(transparent)]
    Refused(EventStoreError),
    /// The events may or may not be stored.
    #[error("the outcome of the append is unknown: {0}")]
    OutcomeUnknown(EventStoreError),
}

impl<E> From<AppendError> for ExecuteError<E> {
    fn from(error: AppendError) -> Self {
        match error {
            AppendError::Refused(e) => Self::Store(e),
            AppendError::OutcomeUnknown(e) => Self::OutcomeUnknown(e),
        }
    }
}

/// Pauses between re-sends of an append whose outcome a lost connection hid.
const RESEND_PAUSES_MS: [u64; 3] = [100, 300, 900];

/// Appends, and when the store fails in a way that leaves the outcome unknown (a connection
/// lost mid-commit), re-sends the identical events: their ids make the re-send idempotent, so
/// it either stores them or reports that they already are. Only when the store stays
/// unreachable is the outcome reported as unknown: the caller must then not invite a blind
/// retry, which could store a second copy of a created resource.
pub async fn append_settled(
    store: &dyn EventStore,
    writes: Vec<StreamWrite>,
) -> std::result::Result<Vec<AppendResult>, AppendError> {
    let started = std::time::Instant::now();
    let events: usize = writes.iter().map(|w| w.events.len()).sum();
    let outcome = append_settled_unmeasured(store, writes).await;
    crate::metrics::APPEND_DURATION.observe(&[], started.elapsed().as_secs_f64());
    let label = match &outcome {
        Ok(results) if results.iter().all(|r| r.already_stored) => "already_stored",
        Ok(results) => {
            crate::metrics::EVENTS_APPENDED.add(&[], events as u64);
            if let Some(head) = results.iter().map(|r| r.last_position).max() {
                crate::metrics::seen(head);
            }
            "stored"
        }
        Err(AppendError::Refused(e)) if e.is_conflict() => "conflict",
        Err(_) => "error",
    };
    crate::metrics::APPENDS.inc(&[label]);
    outcome
}

async fn append_settled_unmeasured(
    store: &dyn EventStore,
    writes: Vec<StreamWrite>,
) -> std::result::Result<Vec<AppendResult>, AppendError> {
    let mut last = match store.append_streams(writes.clone()).await {
        Ok(results) => return Ok(results),
        // Refused, or never sent (no connection): certainly not stored.
        Err(e) if !e.is_unavailable() || e.is_unsent() => return Err(AppendError::Refused(e)),
        Err(e) => e,
    };
    for pause in RESEND_PAUSES_MS {
        tokio::time::sleep(std::time::Duration::from_millis(pause)).await;
        match store.append_streams(writes.clone()).await {
            Ok(results) => return Ok(results),
            Err(e) if e.is_unavailable() => last = e,
            // A refusal now (a conflict) means the first attempt did not store the events:
            // had it, the re-send would have been recognised as already stored.
            Err(e) => return Err(AppendError::Refused(e)),
        }
    }
    Err(AppendError::OutcomeUnknown(last))
}

/// What [`Repository::execute`] did.
#[derive(Debug, Clone)]
pub struct Executed<A: Aggregate> {
    /// The state after the command: `updated_at` (and, for a new stream, `created_at`) is the
    /// time the store recorded with the events. When the command decided nothing, the state as
    /// loaded.
    pub loaded: Loaded<A>,
    /// The events the command stored (none when it changed nothing).
    pub events: Vec<A::Event>,
    /// What the append did (stream version, position of the last event, recorded time); `None`
    /// when the command decided nothing and nothing was appended.
    pub append: Option<AppendResult>,
}

impl<A: Aggregate> Executed<A> {
    /// The global position the command's write reached (its last event), for telling a client
    /// which position to wait for in read models; `None` when nothing was written.
    pub fn last_position(&self) -> Option<Position> {
        self.append.as_ref().map(|a| a.last_position)
    }
}

/// Loads and saves one aggregate type in an event store.
pub struct Repository<A> {
    store: Arc<dyn EventStore>,
    _aggregate: PhantomData<fn() -> A>,
}

impl<A> Clone for Repository<A> {
    fn clone(&self) -> Self {
        Self {
            store: Arc::clone(&self.store),
            _aggregate: PhantomData,
        }
    }
}

/// Commands on one stream through one store in one process take turns (a stripe of these
/// locks per store and stream name), so that concurrent writers of one entry queue instead of
/// colliding: each is decided once, on the state its predecessor left. Writers in other
/// processes (or through another store object) still collide, and are decided again (below).
static STREAM_TURNS: std::sync::LazyLock<Vec<tokio::sync::Mutex<()>>> =
    std::sync::LazyLock::new(|| (0..1024).map(|_| tokio::sync::Mutex::new(())).collect());

/// The turn of `stream`'s writers through `store` in this process: hold it from reading the
/// stream to appending to it, as [`Repository::execute`] does, and writers of one stream queue
/// instead of colliding.
pub fn stream_turn(
    store: &Arc<dyn EventStore>,
    stream: &StreamName,
) -> &'static tokio::sync::Mutex<()> {
    use std::hash::{BuildHasher, BuildHasherDefault, DefaultHasher};
    let store = Arc::as_ptr(store).cast::<()>() as usize;
    let hash = BuildHasherDefault::<DefaultHasher>::default().hash_one((store, stream.as_str()));
    &STREAM_TURNS[(hash % STREAM_TURNS.len() as u64) as usize]
}

/// How long, and how often at most, a command without a version precondition is decided again
/// after a concurrent writer changed its stream first. Each retry re-reads the stream, so the
/// command is decided on the newest state: the client asked for "this change", not "this
/// change at version N". Fifty writers of one stream at once all land within these bounds.
const CONFLICT_RETRIES: usize = 200;
const CONFLICT_RETRY_FOR: std::time::Duration = std::time::Duration::from_secs(5);

impl<A: Aggregate> Repository<A> {
    pub fn new(store: Arc<dyn EventStore>) -> Self {
        Self {
            store,
            _aggregate: PhantomData,
        }
    }

    pub fn store(&self) -> &Arc<dyn EventStore> {
        &self.store
    }

    /// The aggregate as it is now.
    pub async fn load(&self, id: &A::Id) -> Result<Loaded<A>> {
        let events = read_full_stream(self.store.as_ref(), A::stream_name(id).as_str()).await?;
        replay(&events)
    }

    /// The aggregate as its first event made it (what a creation answered).
    pub async fn load_created(&self, id: &A::Id) -> Result<Loaded<A>> {
        let events = self
            .store
            .read_stream(A::stream_name(id).as_str(), 1, 1)
            .await?;
        replay(&events)
    }

    /// The aggregate as it was at `as_of`.
    pub async fn load_as_of(&self, id: &A::Id, as_of: DateTime<Utc>) -> Result<Loaded<A>> {
        let events = self
            .store
            .read_stream_as_of(A::stream_name(id).as_str(), as_of)
            .await?;
        replay(&events)
    }

    /// The stream write that stores `events` after `loaded`.
    pub fn write_for(
        &self,
        id: &A::Id,
        loaded: &Loaded<A>,
        events: &[A::Event],
        metadata: &EventMetadata,
    ) -> Result<StreamWrite> {
        Ok(StreamWrite::new(
            A::stream_name(id),
            loaded.expected_version(),
            new_events(events, metadata)?,
        ))
    }

    /// Loads, decides and appends: one stream read and one append when nobody else writes.
    ///
    /// With `expected = Some(v)` the command applies only to version `v` of the aggregate
    /// (an `If-Match`), and a concurrent change is a [`ExecuteError::VersionMismatch`]. Without
    /// it, a concurrent writer that got there first makes the command be decided again on the
    /// newer state, a bounded number of times.
    pub async fn execute(
        &self,
        id: &A::Id,
        command: &A::Command,
        metadata: &EventMetadata,
        expected: Option<u64>,
    ) -> std::result::Result<Executed<A>, ExecuteError<A::Error>> {
        self.execute_with(id, || command, metadata, expected).await
    }

    /// As [`Repository::execute`], with the command made anew for each decision: a command
    /// that depends on the time (an end "now") is decided again with the time of its retry.
    pub async fn execute_with<C: std::borrow::Borrow<A::Command>>(
        &self,
        id: &A::Id,
        command: impl Fn() -> C,
        metadata: &EventMetadata,
        expected: Option<u64>,
    ) -> std::result::Result<Executed<A>, ExecuteError<A::Error>> {
        let mut attempt = 0;
        let started = std::time::Instant::now();
        let turn = stream_turn(&self.store, &A::stream_name(id));
        loop {
            let _turn = turn.lock().await;
            let mut loaded = self.load(id).await?;
            if let Some(expected) = expected
                && loaded.version != Some(expected)
                && loaded.exists()
            {
                return Err(ExecuteError::VersionMismatch {
                    expected,
                    actual: loaded.version,
                });
            }
            let events = loaded
                .state
                .decide(command().borrow())
                .map_err(ExecuteError::Rejected)?;
            if events.is_empty() {
                return Ok(Executed {
                    loaded,
                    events,
                    append: None,
                });
            }
            let write = self.write_for(id, &loaded, &events, metadata)?;
            match append_settled(self.store.as_ref(), vec![write]).await {
                Ok(results) => {
                    let Some(append) = results.into_iter().next() else {
                        // One write in, one result out: a backend breaking that is a bug.
                        return Err(EventStoreError::InvalidWrite(
                            "the store returned no result for the write".into(),
                        )
                        .into());
                    };
                    loaded.stored(&events, &append);
                    return Ok(Executed {
                        loaded,
                        events,
                        append: Some(append),
                    });
                }
                Err(AppendError::Refused(e)) => match (e, expected) {
                    (EventStoreError::WrongExpectedVersion { actual, .. }, Some(expected)) => {
                        return Err(ExecuteError::VersionMismatch { expected, actual });
                    }
                    (e, None)
                        if e.is_conflict()
                            && attempt < CONFLICT_RETRIES
                            && started.elapsed() < CONFLICT_RETRY_FOR =>
                    {
                        attempt += 1;
                        drop(_turn);
                        conflict_backoff(attempt).await;
                    }
                    (e, _) => return Err(e.into()),
                },
                Err(unknown) => return Err(unknown.into()),
            }
        }
    }
}

/// A short random pause before deciding again, so that writers who collided do not collide
/// again in lockstep.
pub async fn conflict_backoff(attempt: usize) {
    let random = uuid::Uuid::new_v4().as_u128() as u64;
    let max_micros = 200 * attempt.min(25) as u64;
    let pause = std::time::Duration::from_micros(random % max_micros.max(1));
    tokio::time::sleep(pause).await;
}
/// The state after `events`: the "given" of a given/when/then test.
pub fn fold<A: Aggregate>(events: &[A::Event]) -> A {
    let mut state = A::default();
    for event in events {
        state.apply(event);
    }
    state
}

/// Folds recorded events into an aggregate. Events of an erased subject are skipped: what
/// they said can no longer be read ([`crate::personal`]).
pub fn replay<A: Aggregate>(events: &[RecordedEvent]) -> Result<Loaded<A>> {
    let mut state = A::default();
    let mut erased = false;
    let mut undecoded = None;
    for event in events {
        if event.erased {
            erased = true;
            continue;
        }
        match decode_event::<A::Event>(event) {
            Ok(decoded) => state.apply_recorded(&decoded, event.recorded_at),
            Err(error) => {
                undecoded.get_or_insert(error);
            }
        }
    }
    if let Some(error) = undecoded
        && !state.is_final()
    {
        return Err(error);
    }
    Ok(Loaded {
        state,
        version: events.last().map(|e| e.stream_version),
        updated_at: events.last().map(|e| e.recorded_at),
        created_at: events.first().map(|e| e.recorded_at),
        erased,
    })
}
