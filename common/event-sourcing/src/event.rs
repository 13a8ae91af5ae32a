//! What an event is: the data a writer appends and the record a reader gets back.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// A position in the store's single total order of events. Position 0 means "before the first
/// event", so a reader that has seen nothing starts from `read_all(0, ..)`.
pub type Position = u64;

/// Who and what caused an event. Every field is optional so that tools and tests can append
/// without a request context, but the services always fill them.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct EventMetadata {
    /// Ties together every event caused, directly or not, by one user action.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub correlation_id: Option<String>,
    /// The id of the message (command or event) that directly caused this one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub causation_id: Option<String>,
    /// The id of the request that carried the command (the gateway's `x-request-id`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_id: Option<String>,
    /// Who issued the command: a user id, a service name, or an operator tool.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub actor: Option<String>,
    /// The W3C `traceparent` of the span that recorded the event: the trace of the request
    /// (from the client, else started by the gateway) and the service's span in it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub traceparent: Option<String>,
}

impl EventMetadata {
    /// The metadata of an event that a follower (a process manager reacting to events) records
    /// because of `cause`: in the same correlation and trace, caused by it, by `actor`.
    pub fn caused_by(cause: &RecordedEvent, actor: &str) -> Self {
        Self {
            correlation_id: cause.metadata.correlation_id.clone(),
            causation_id: Some(cause.event_id.to_string()),
            request_id: None,
            actor: Some(actor.to_owned()),
            traceparent: cause.metadata.traceparent.clone(),
        }
    }
}

/// An event to append. Its `event_id` makes appends idempotent: storing the same id twice is a
/// no-op, so a client may retry an append whose outcome it did not see.
#[derive(Debug, Clone, PartialEq)]
pub struct NewEvent {
    pub event_id: Uuid,
    pub event_type: String,
    pub schema_version: u32,
    pub payload: serde_json::Value,
    pub metadata: EventMetadata,
}

impl NewEvent {
    /// A new event with a fresh random id.
    pub fn new(
        event_type: impl Into<String>,
        schema_version: u32,
        payload: serde_json::Value,
        metadata: EventMetadata,
    ) -> Self {
        Self {
            event_id: Uuid::new_v4(),
            event_type: event_type.into(),
            schema_version,
            payload,
            metadata,
        }
    }
}

/// An event as stored, with everything the store assigned to it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RecordedEvent {
    pub event_id: Uuid,
    pub event_type: String,
    /// The payload's schema version after upcasting: readers always see the current shape.
    pub schema_version: u32,
    pub stream_id: String,
    /// 1 for the first event of a stream, then 2, 3, ...
    pub stream_version: u64,
    /// Position in the global order (see [`Position`]).
    pub position: Position,
    pub recorded_at: DateTime<Utc>,
    pub payload: serde_json::Value,
    pub metadata: EventMetadata,
    /// The event's subject was erased ([`crate::personal`]): the payload holds only the fields
    /// that are not personal data. Replays and projections skip such events.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub erased: bool,
    /// Why the stored event could not be read (a payload that is not JSON, sealed fields that
    /// do not open): its payload is then `null`. Decoding it fails with this reason, so a
    /// projection parks it as a dead letter instead of stopping on it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub undecodable: Option<String>,
}

impl RecordedEvent {
    /// The part of the stream id after its category prefix: `user-42` has aggregate id `42`.
    pub fn aggregate_id(&self) -> &str {
        stream_aggregate_id(&self.stream_id)
    }

    /// The stream's category: `user-42` is in category `user`.
    pub fn category(&self) -> &str {
        stream_category(&self.stream_id)
    }
}

/// The category of a stream id `category-id`.
pub fn stream_category(stream_id: &str) -> &str {
    stream_id.split_once('-').map_or(stream_id, |(c, _)| c)
}

/// The aggregate id of a stream id `category-id`.
pub fn stream_aggregate_id(stream_id: &str) -> &str {
    stream_id.split_once('-').map_or("", |(_, id)| id)
}

/// The name of a stream: `<category>-<id>`. Built only by [`crate::Aggregate::stream_name`]
/// (or [`StreamName::new`] for streams that are not aggregates, such as uniqueness claims), so
/// that how streams are named has one owner.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct StreamName(String);

impl StreamName {
    /// The stream `<category>-<id>`. A category must not contain `-`.
    pub fn new(category: &str, id: impl std::fmt::Display) -> Self {
        debug_assert!(!category.contains('-'), "stream category {category:?}");
        Self(format!("{category}-{id}"))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn category(&self) -> &str {
        stream_category(&self.0)
    }
}

impl std::fmt::Display for StreamName {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl From<StreamName> for String {
    fn from(name: StreamName) -> Self {
        name.0
    }
}

impl PartialEq<str> for StreamName {
    fn eq(&self, other: &str) -> bool {
        self.0 == other
    }
}

impl PartialEq<StreamName> for String {
    fn eq(&self, other: &StreamName) -> bool {
        *self == other.0
    }
}

/// The stream a writer expects to append to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExpectedVersion {
    /// The stream must not exist yet (creating an aggregate, claiming a unique name).
    NoStream,
    /// The stream's last event must have exactly this version (optimistic concurrency).
    Exact(u64),
    /// No check: append after whatever is there.
    Any,
}

impl std::fmt::Display for ExpectedVersion {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::NoStream => f.write_str("no stream"),
            Self::Exact(v) => write!(f, "version {v}"),
            Self::Any => f.write_str("any version"),
        }
    }
}

/// Events to append to one stream, as part of an atomic write of one or more streams.
#[derive(Debug, Clone)]
pub struct StreamWrite {
    pub stream_id: String,
    pub expected: ExpectedVersion,
    pub events: Vec<NewEvent>,
}

impl StreamWrite {
    pub fn new(
        stream_id: impl Into<String>,
        expected: ExpectedVersion,
        events: Vec<NewEvent>,
    ) -> Self {
        Self {
            stream_id: stream_id.into(),
            expected,
            events,
        }
    }
}

/// What an append did to one stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AppendResult {
    pub stream_id: String,
    /// The stream's version after the append: the next `ExpectedVersion::Exact`.
    pub stream_version: u64,
    /// Global position of the last event of this write (0 when nothing was written).
    pub last_position: Position,
    /// True when every event was already stored (a retried append): nothing new was written.
    pub already_stored: bool,
    /// The `recorded_at` stored with this write's events, the same value `read_stream` returns
    /// for them, so a command can answer from what it stored without reading it back. For a
    /// retry (`already_stored`), the time stored by the first attempt; for a write without
    /// events (a version check), the time the append checked it.
    pub recorded_at: DateTime<Utc>,
}
