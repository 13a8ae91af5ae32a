//! The format of an event on a Kafka topic.
//!
//! - key: the aggregate id (the stream id without its category), so all events of one user,
//!   entry or session land in one partition, in order;
//! - value: the stored event as JSON (camelCase): `eventId`, `eventType`, `schemaVersion`,
//!   `streamId`, `streamVersion`, `position`, `recordedAt`, `payload`, `metadata`;
//! - headers: `event-type`, `event-id`, `schema-version`, `stream-id`, `stream-version`,
//!   `position`, as UTF-8 text, so tools can route or filter without parsing the value.

use event_sourcing::RecordedEvent;
use rdkafka::message::{Header, Headers, OwnedHeaders};

/// The value of a message: the event as JSON.
pub fn encode(event: &RecordedEvent) -> Result<Vec<u8>, serde_json::Error> {
    serde_json::to_vec(event)
}

/// The event in a message value.
pub fn decode(value: &[u8]) -> Result<RecordedEvent, serde_json::Error> {
    serde_json::from_slice(value)
}

/// The headers of an event's message.
pub fn headers(event: &RecordedEvent) -> OwnedHeaders {
    let pairs = [
        ("event-type", event.event_type.clone()),
        ("event-id", event.event_id.to_string()),
        ("schema-version", event.schema_version.to_string()),
        ("stream-id", event.stream_id.clone()),
        ("stream-version", event.stream_version.to_string()),
        ("position", event.position.to_string()),
    ];
    pairs
        .iter()
        .fold(OwnedHeaders::new_with_capacity(pairs.len()), |h, (k, v)| {
            h.insert(Header {
                key: k,
                value: Some(v.as_bytes()),
            })
        })
}

/// The event a message's headers name, without its payload: enough to find it in the store.
pub fn event_from_headers(headers: &impl Headers) -> Option<RecordedEvent> {
    Some(RecordedEvent {
        event_id: header(headers, "event-id")?.parse().ok()?,
        event_type: header(headers, "event-type")?.to_owned(),
        schema_version: header(headers, "schema-version")?.parse().ok()?,
        stream_id: header(headers, "stream-id")?.to_owned(),
        stream_version: header(headers, "stream-version")?.parse().ok()?,
        position: header(headers, "position")?.parse().ok()?,
        recorded_at: Default::default(),
        payload: serde_json::Value::Null,
        metadata: Default::default(),
        erased: false,
        undecodable: None,
    })
}

/// A header's text value.
pub fn header<'a>(headers: &'a impl Headers, key: &str) -> Option<&'a str> {
    headers
        .iter()
        .find(|h| h.key == key)
        .and_then(|h| h.value)
        .and_then(|v| std::str::from_utf8(v).ok())
}

#[cfg(test)]
mod tests {
    use super::*;
    use event_sourcing::EventMetadata;

    #[test]
    fn an_event_round_trips_through_value_and_headers() {
        let event = RecordedEvent {
            event_id: uuid_from(7),
            event_type: "DiaryEntryCreated".into(),
            schema_version: 1,
            stream_id: "entry-42".into(),
            stream_version: 3,
            position: 99,
            recorded_at: chrono_now(),
            payload: serde_json::json!({ "title": "t" }),
            metadata: EventMetadata {
                request_id: Some("r".into()),
                ..EventMetadata::default()
            },
            erased: false,
            undecodable: None,
        };
        assert_eq!(decode(&encode(&event).unwrap()).unwrap(), event);
        let headers = headers(&event);
        assert_eq!(header(&headers, "event-type"), Some("DiaryEntryCreated"));
        assert_eq!(header(&headers, "stream-version"), Some("3"));
        assert_eq!(
            header(&headers, "event-id"),
            Some(event.event_id.to_string().as_str())
        );
        assert_eq!(header(&headers, "missing"), None);
    }

    fn uuid_from(n: u128) -> uuid::Uuid {
        uuid::Uuid::from_u128(n)
    }

    fn chrono_now() -> chrono::DateTime<chrono::Utc> {
        chrono::DateTime::from_timestamp_micros(1_700_000_000_123_456).unwrap()
    }
}
