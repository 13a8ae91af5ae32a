//! The one place where payloads become stored bytes and back. Every backend calls it: it
//! seals personal data on the way in and opens it on the way out ([`crate::personal`]), and
//! upcasts old payload shapes.

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;

use crate::error::{EventStoreError, Result};
use crate::event::{EventMetadata, NewEvent, RecordedEvent, StreamWrite};
use crate::personal::{DataKey, KeyCache, KeyTable, PersonalData};

/// Turns a payload of one schema version into the next version's shape.
pub type UpcastFn = Arc<dyn Fn(serde_json::Value) -> serde_json::Value + Send + Sync>;

/// Upcasters by `(event type, from version)`. Reading applies them in a chain, so a stored
/// version 1 payload of a type now at version 3 goes 1 -> 2 -> 3.
#[derive(Clone, Default)]
pub struct Upcasters {
    steps: HashMap<(String, u32), UpcastFn>,
}

impl Upcasters {
    pub fn new() -> Self {
        Self::default()
    }

    /// Registers the step that turns `event_type` at `from_version` into `from_version + 1`.
    pub fn register(
        mut self,
        event_type: impl Into<String>,
        from_version: u32,
        step: impl Fn(serde_json::Value) -> serde_json::Value + Send + Sync + 'static,
    ) -> Self {
        self.steps
            .insert((event_type.into(), from_version), Arc::new(step));
        self
    }

    /// Adds every step of `other` (the upcasters of another domain sharing the store).
    pub fn merge(mut self, other: Upcasters) -> Self {
        self.steps.extend(other.steps);
        self
    }

    /// Upcasts a payload as far as registered steps go; returns the payload and its version.
    pub fn upcast(
        &self,
        event_type: &str,
        mut version: u32,
        mut payload: serde_json::Value,
    ) -> (serde_json::Value, u32) {
        // A lookup by borrowed key would need a custom key type; the clone is cheap next to I/O.
        while let Some(step) = self.steps.get(&(event_type.to_owned(), version)) {
            payload = step(payload);
            version += 1;
        }
        (payload, version)
    }
}

impl std::fmt::Debug for Upcasters {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Upcasters")
            .field("steps", &self.steps.keys().collect::<Vec<_>>())
            .finish()
    }
}

/// Encodes payloads and metadata for storage (sealing personal data) and decodes them when
/// read (opening and upcasting).
#[derive(Debug, Clone, Default)]
pub struct EventCodec {
    upcasters: Upcasters,
    personal: PersonalData,
    keys: KeyCache,
}

impl EventCodec {
    pub fn new(upcasters: Upcasters) -> Self {
        Self {
            upcasters,
            ..Self::default()
        }
    }

    /// Seals the personal data `personal` describes.
    pub fn with_personal_data(mut self, personal: PersonalData) -> Self {
        self.personal = personal;
        self
    }

    pub fn personal_data(&self) -> &PersonalData {
        &self.personal
    }

    /// The keys this process has read.
    pub fn key_cache(&self) -> &KeyCache {
        &self.keys
    }

    /// The subjects whose keys the events of `writes` are sealed with.
    pub fn write_subjects(&self, writes: &[StreamWrite]) -> BTreeSet<String> {
        writes
            .iter()
            .flat_map(|w| {
                w.events.iter().filter_map(|e| {
                    self.personal
                        .subject(&e.event_type, &w.stream_id, &e.payload)
                })
            })
            .collect()
    }

    /// The payload of `event` in `stream_id` as stored: its personal data sealed with its
    /// subject's key (one of `keys`, which [`Self::write_subjects`] named).
    pub fn encode_payload(
        &self,
        stream_id: &str,
        event: &NewEvent,
        keys: &HashMap<String, DataKey>,
    ) -> Result<String> {
        let sealed;
        let payload = match self
            .personal
            .subject(&event.event_type, stream_id, &event.payload)
        {
            Some(subject) => {
                let key = keys.get(&subject).ok_or_else(|| {
                    EventStoreError::InvalidWrite(format!("no data key for {}", event.event_type))
                })?;
                sealed = self.personal.seal(
                    &event.event_type,
                    event.event_id,
                    &subject,
                    key,
                    &event.payload,
                )?;
                &sealed
            }
            None => &event.payload,
        };
        serde_json::to_string(payload).map_err(|e| EventStoreError::Codec(e.to_string()))
    }

    /// A stored payload as JSON, still sealed and at its stored schema version; `Err` with
    /// the reason (never quoting the payload) when it is not JSON.
    pub fn parse_payload(
        &self,
        event_type: &str,
        stored: &str,
    ) -> std::result::Result<serde_json::Value, String> {
        serde_json::from_str(stored).map_err(|e| {
            format!(
                "{event_type} payload is not JSON (line {}, column {})",
                e.line(),
                e.column()
            )
        })
    }

    /// Opens the personal data of events read as stored (from the store, or from a topic the
    /// relay published them to) with their subjects' keys, read from `table`, and upcasts
    /// them. The events of an erased subject keep only their readable fields and are marked
    /// [`RecordedEvent::erased`]. Opening an opened event changes nothing.
    pub async fn open(
        &self,
        mut events: Vec<RecordedEvent>,
        table: &dyn KeyTable,
    ) -> Result<Vec<RecordedEvent>> {
        let subjects: Vec<Option<String>> = events
            .iter()
            .map(|e| {
                self.personal
                    .subject(&e.event_type, &e.stream_id, &e.payload)
            })
            .collect();
        let wanted: BTreeSet<String> = subjects.iter().flatten().cloned().collect();
        let keys = if wanted.is_empty() {
            None
        } else {
            Some(self.keys.keys(wanted, table).await?)
        };
        for (event, subject) in events.iter_mut().zip(subjects) {
            if event.undecodable.is_some() {
                continue;
            }
            if let (Some(keys), Some(subject)) = (&keys, subject.as_deref()) {
                let payload = std::mem::take(&mut event.payload);
                match self.personal.open(
                    &event.event_type,
                    event.event_id,
                    keys.state(Some(subject)),
                    payload,
                ) {
                    Ok((payload, erased)) => {
                        event.payload = payload;
                        event.erased |= erased;
                    }
                    // One event that does not open does not fail the others: it is marked.
                    Err(EventStoreError::Codec(reason)) => {
                        event.undecodable = Some(reason);
                        continue;
                    }
                    Err(other) => return Err(other),
                }
            }
            if !event.erased {
                let payload = std::mem::take(&mut event.payload);
                let (payload, version) =
                    self.upcasters
                        .upcast(&event.event_type, event.schema_version, payload);
                event.payload = payload;
                event.schema_version = version;
            }
        }
        Ok(events)
    }

    pub fn encode_metadata(&self, metadata: &EventMetadata) -> Result<String> {
        serde_json::to_string(metadata).map_err(|e| EventStoreError::Codec(e.to_string()))
    }

    /// Stored metadata; `Err` with the reason when it does not decode.
    pub fn decode_metadata(&self, stored: &str) -> std::result::Result<EventMetadata, String> {
        serde_json::from_str(stored).map_err(|e| {
            format!(
                "the metadata do not decode ({:?} error at line {}, column {})",
                e.classify(),
                e.line(),
                e.column()
            )
        })
    }

    /// An event from a stored row's parts: a payload or metadata that does not decode makes
    /// it an [undecodable](RecordedEvent::undecodable) event rather than an error, so one bad
    /// row never stops a reader of the others.
    pub fn stored_event(&self, row: StoredRow<'_>) -> RecordedEvent {
        let mut undecodable = None;
        let payload = self
            .parse_payload(&row.event_type, row.payload)
            .unwrap_or_else(|reason| {
                undecodable = Some(reason);
                serde_json::Value::Null
            });
        let metadata = self.decode_metadata(row.metadata).unwrap_or_else(|reason| {
            undecodable.get_or_insert(reason);
            EventMetadata::default()
        });
        RecordedEvent {
            event_id: row.event_id,
            event_type: row.event_type,
            schema_version: row.schema_version,
            stream_id: row.stream_id,
            stream_version: row.stream_version,
            position: row.position,
            recorded_at: row.recorded_at,
            payload,
            metadata,
            erased: false,
            undecodable,
        }
    }
}

/// The columns of a stored event, as a backend read them.
pub struct StoredRow<'a> {
    pub event_id: uuid::Uuid,
    pub event_type: String,
    pub schema_version: u32,
    pub stream_id: String,
    pub stream_version: u64,
    pub position: crate::event::Position,
    pub recorded_at: chrono::DateTime<chrono::Utc>,
    pub payload: &'a str,
    pub metadata: &'a str,
}
