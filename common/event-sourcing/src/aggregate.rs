//! Aggregates: domain types rebuilt by replaying their stream. Commands decide, events apply.

use std::marker::PhantomData;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::error::{EventStoreError, Result};
use crate::event::{
    AppendResult, EventMetadata, ExpectedVersion, NewEvent, Position, RecordedEvent, StreamWrite,
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
    type Event: DomainEvent;
    type Command;
    type Error;

    /// Changes state by one event. Never fails: an event is a fact.
    fn apply(&mut self, event: &Self::Event);

    /// Decides which events a command causes, from the current state, without side effects.
    fn decide(&self, command: &Self::Command)
    -> std::result::Result<Vec<Self::Event>, Self::Error>;

    fn stream_id(id: &str) -> String {
        format!("{}-{id}", Self::CATEGORY)
    }
}

/// An aggregate rebuilt from its stream, with the version it was rebuilt at.
#[derive(Debug, Clone)]
pub struct Loaded<A> {
    pub state: A,
    /// `None` when the stream does not exist.
    pub version: Option<u64>,
    /// When the last replayed event was recorded.
    pub updated_at: Option<DateTime<Utc>>,
    /// When the first event was recorded.
    pub created_at: Option<DateTime<Utc>>,
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

/// Why executing a command failed.
#[derive(Debug, thiserror::Error)]
pub enum ExecuteError<E> {
    /// The aggregate refused the command.
    #[error(transparent)]
    Rejected(E),
    #[error(transparent)]
    Store(#[from] EventStoreError),
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

/// How often a command is retried after a concurrent writer changed its stream first.
const CONFLICT_RETRIES: usize = 3;

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
    pub async fn load(&self, id: &str) -> Result<Loaded<A>> {
        let events = read_full_stream(self.store.as_ref(), &A::stream_id(id)).await?;
        replay(&events)
    }

    /// The aggregate as it was at `as_of`.
    pub async fn load_as_of(&self, id: &str, as_of: DateTime<Utc>) -> Result<Loaded<A>> {
        let events = self
            .store
            .read_stream_as_of(&A::stream_id(id), as_of)
            .await?;
        replay(&events)
    }

    /// The stream write that stores `events` after `loaded`.
    pub fn write_for(
        &self,
        id: &str,
        loaded: &Loaded<A>,
        events: &[A::Event],
        metadata: &EventMetadata,
    ) -> Result<StreamWrite> {
        Ok(StreamWrite::new(
            A::stream_id(id),
            loaded.expected_version(),
            new_events(events, metadata)?,
        ))
    }

    /// Loads, decides and appends, retrying when a concurrent writer got there first.
    /// Returns the new state, the events it stored (none when the command changed nothing) and
    /// what the append reported, so the caller can answer without reading the stream again.
    pub async fn execute(
        &self,
        id: &str,
        command: &A::Command,
        metadata: &EventMetadata,
    ) -> std::result::Result<Executed<A>, ExecuteError<A::Error>> {
        let mut attempt = 0;
        loop {
            let mut loaded = self.load(id).await?;
            let events = loaded
                .state
                .decide(command)
                .map_err(ExecuteError::Rejected)?;
            if events.is_empty() {
                return Ok(Executed {
                    loaded,
                    events,
                    append: None,
                });
            }
            let write = self.write_for(id, &loaded, &events, metadata)?;
            match self.store.append_streams(vec![write]).await {
                Ok(results) => {
                    let Some(append) = results.into_iter().next() else {
                        // One write in, one result out: a backend breaking that is a bug.
                        return Err(EventStoreError::InvalidWrite(
                            "the store returned no result for the write".into(),
                        )
                        .into());
                    };
                    for event in &events {
                        loaded.state.apply(event);
                    }
                    loaded.version = Some(append.stream_version);
                    loaded.created_at.get_or_insert(append.recorded_at);
                    loaded.updated_at = Some(append.recorded_at);
                    return Ok(Executed {
                        loaded,
                        events,
                        append: Some(append),
                    });
                }
                Err(e) if e.is_conflict() && attempt < CONFLICT_RETRIES => attempt += 1,
                Err(e) => return Err(e.into()),
            }
        }
    }
}

/// The state after `events`: the "given" of a given/when/then test.
pub fn fold<A: Aggregate>(events: &[A::Event]) -> A {
    let mut state = A::default();
    for event in events {
        state.apply(event);
    }
    state
}

/// Folds recorded events into an aggregate.
pub fn replay<A: Aggregate>(events: &[RecordedEvent]) -> Result<Loaded<A>> {
    let mut state = A::default();
    for event in events {
        state.apply(&decode_event::<A::Event>(event)?);
    }
    Ok(Loaded {
        state,
        version: events.last().map(|e| e.stream_version),
        updated_at: events.last().map(|e| e.recorded_at),
        created_at: events.first().map(|e| e.recorded_at),
    })
}
