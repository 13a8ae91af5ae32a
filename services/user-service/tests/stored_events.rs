//! Events as the 0.1 release stored them (payloads captured from that release's encoder, in
//! `fixtures/events-0.1.tsv`: event type, tab, payload JSON) are read by this release and
//! written back byte for byte: typed ids and parsed values did not change what is stored or
//! published to Kafka.

use event_sourcing::{DomainEvent, RecordedEvent, decode_event, encode_event};
use user_service::domain::{ClaimEvent, UserEvent};

const STORED: &str = include_str!("fixtures/events-0.1.tsv");

fn reencode<E: DomainEvent>(recorded: &RecordedEvent) -> (String, String) {
    let event: E = decode_event(recorded).expect("a stored payload decodes");
    let (event_type, payload) = encode_event(&event).expect("it encodes again");
    (event_type, serde_json::to_string(&payload).expect("JSON"))
}

#[test]
fn events_stored_by_the_previous_release_read_and_write_back_unchanged() {
    let mut seen = 0;
    for line in STORED.lines().filter(|l| !l.trim().is_empty()) {
        let (event_type, payload) = line.split_once('\t').expect("type<TAB>payload");
        let recorded = RecordedEvent {
            event_id: uuid::Uuid::new_v4(),
            event_type: event_type.to_owned(),
            schema_version: 1,
            stream_id: "fixture-1".into(),
            stream_version: 1,
            position: 1,
            recorded_at: chrono::Utc::now(),
            payload: serde_json::from_str(payload).expect("fixture JSON"),
            metadata: Default::default(),
        };
        let written = match event_type {
            "UsernameClaimed" | "EmailClaimed" => reencode::<ClaimEvent>(&recorded),
            _ => reencode::<UserEvent>(&recorded),
        };
        assert_eq!(written, (event_type.to_owned(), payload.to_owned()));
        seen += 1;
    }
    assert!(seen >= 6, "the fixture lists every event type");
}
