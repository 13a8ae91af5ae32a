//! The one place where payloads become stored bytes and back. Every backend calls it, so
//! payload encryption (crypto-shredding) can later sit here without touching the backends.

use std::collections::HashMap;
use std::sync::Arc;

use crate::error::{EventStoreError, Result};
use crate::event::EventMetadata;

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

/// Encodes payloads and metadata for storage and decodes (and upcasts) them when read.
#[derive(Debug, Clone, Default)]
pub struct EventCodec {
    upcasters: Upcasters,
}

impl EventCodec {
    pub fn new(upcasters: Upcasters) -> Self {
        Self { upcasters }
    }

    pub fn encode_payload(&self, payload: &serde_json::Value) -> Result<String> {
        serde_json::to_string(payload).map_err(|e| EventStoreError::Codec(e.to_string()))
    }

    pub fn encode_metadata(&self, metadata: &EventMetadata) -> Result<String> {
        serde_json::to_string(metadata).map_err(|e| EventStoreError::Codec(e.to_string()))
    }

    /// Decodes a stored payload and upcasts it to the newest registered version.
    pub fn decode_payload(
        &self,
        event_type: &str,
        schema_version: u32,
        stored: &str,
    ) -> Result<(serde_json::Value, u32)> {
        let payload: serde_json::Value = serde_json::from_str(stored).map_err(|e| {
            EventStoreError::Codec(format!(
                "{event_type} payload is not JSON (line {}, column {})",
                e.line(),
                e.column()
            ))
        })?;
        Ok(self.upcasters.upcast(event_type, schema_version, payload))
    }

    pub fn decode_metadata(&self, stored: &str) -> Result<EventMetadata> {
        serde_json::from_str(stored).map_err(|e| EventStoreError::Codec(format!("metadata: {e}")))
    }
}
