//! Events as the 0.1 release stored them (payloads captured from that release's encoder, in
//! `fixtures/events-0.1.tsv`: event type, tab, payload JSON) are read by this release and
//! written back byte for byte: typed ids and parsed values did not change what is stored or
//! published to Kafka.

use diary_service::domain::{EntryEvent, SessionEvent};
use event_sourcing::testing::{assert_stored_payloads_unchanged, reencode};

#[test]
fn events_stored_by_the_previous_release_read_and_write_back_unchanged() {
    assert_stored_payloads_unchanged(include_str!("fixtures/events-0.1.tsv"), |recorded| {
        if recorded.event_type.starts_with("DiarySession") {
            reencode::<SessionEvent>(recorded)
        } else {
            reencode::<EntryEvent>(recorded)
        }
    });
}
