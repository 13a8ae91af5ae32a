//! Given these past events, when this command, then these new events (or this error).

use chrono::{DateTime, Duration, TimeZone, Utc};
use event_sourcing::testing::given;
use metachat_validation::{EntryId, SessionId, UserId};
use uuid::Uuid;

use super::*;

const E1: EntryId = EntryId::from_uuid(Uuid::from_u128(0xe1));
const U1: UserId = UserId::from_uuid(Uuid::from_u128(0x01));
const S1: SessionId = SessionId::from_uuid(Uuid::from_u128(0x51));

fn tags(names: &[&str]) -> Vec<Tag> {
    names.iter().map(|t| Tag::parse(t).unwrap()).collect()
}

fn new_entry() -> NewEntry {
    NewEntry {
        entry_id: E1,
        user_id: U1,
        title: " My First Entry ".into(),
        content: "Today was a good day...".into(),
        token_count: Some(150),
        session_id: Some(S1),
        tags: vec!["reflection".into(), "gratitude".into()],
        written_at: None,
    }
}

fn created() -> EntryEvent {
    EntryEvent::DiaryEntryCreated(DiaryEntryCreated {
        entry_id: E1,
        user_id: U1,
        title: "My First Entry".into(),
        content: "Today was a good day...".into(),
        token_count: 150,
        session_id: Some(S1),
        tags: tags(&["reflection", "gratitude"]),
        created_at: None,
    })
}

fn deleted() -> EntryEvent {
    EntryEvent::DiaryEntryDeleted(DiaryEntryDeleted { user_id: U1 })
}

fn entry_when(
    history: &[EntryEvent],
    command: EntryCommand,
) -> Result<Vec<EntryEvent>, EntryError> {
    given::<EntryState>(history).when(command)
}

fn invalid<E: std::fmt::Debug>(result: Result<E, EntryError>) -> Vec<String> {
    match result {
        Err(EntryError::Invalid(v)) => v.iter().map(|x| x.field.clone()).collect(),
        other => panic!("expected invalid input, got {other:?}"),
    }
}

#[test]
fn creating_an_entry_records_it_with_a_trimmed_title() {
    assert_eq!(
        entry_when(&[], EntryCommand::Create(new_entry())),
        Ok(vec![created()])
    );
    assert_eq!(
        entry_when(&[created()], EntryCommand::Create(new_entry())),
        Err(EntryError::AlreadyExists)
    );
}

#[test]
fn tags_are_trimmed_and_deduplicated_ignoring_case() {
    let command = EntryCommand::Create(NewEntry {
        tags: vec![" Work ".into(), "work".into(), "WORK".into(), "home".into()],
        ..new_entry()
    });
    let events = entry_when(&[], command).unwrap();
    let EntryEvent::DiaryEntryCreated(e) = &events[0] else {
        panic!("{events:?}")
    };
    assert_eq!(e.tags, tags(&["Work", "home"]));
}

#[test]
fn entry_input_is_validated_field_by_field() {
    let command = EntryCommand::Create(NewEntry {
        title: "t".repeat(201),
        content: " \n ".into(),
        token_count: Some(1_000_001),
        tags: vec!["ok".into(), "".into(), "x".repeat(51)],
        ..new_entry()
    });
    assert_eq!(
        invalid(entry_when(&[], command)),
        ["title", "content", "tags[1]", "tags[2]", "tokenCount"]
    );
    let many = EntryCommand::Create(NewEntry {
        tags: (0..21).map(|i| format!("t{i}")).collect(),
        ..new_entry()
    });
    assert_eq!(invalid(entry_when(&[], many)), ["tags"]);
}

#[test]
fn a_missing_token_count_is_measured_with_the_tokenizer() {
    let command = EntryCommand::Create(NewEntry {
        token_count: None,
        // 10 o200k_base tokens (tiktoken's count), 9 words.
        content: "The quick brown fox jumps over the lazy dog.".into(),
        ..new_entry()
    });
    let events = entry_when(&[], command).unwrap();
    assert!(matches!(&events[0], EntryEvent::DiaryEntryCreated(e) if e.token_count == 10));
}

fn analyzed(entry_version: u64) -> DiaryEntryAnalyzed {
    analyze_content(U1, entry_version, 0, "Today was a good day...")
}

fn record(entry_version: u64) -> EntryCommand {
    EntryCommand::RecordAnalysis(Box::new(analyzed(entry_version)))
}

fn updated() -> EntryEvent {
    EntryEvent::DiaryEntryUpdated(DiaryEntryUpdated {
        user_id: U1,
        title: "My First Entry".into(),
        content: "A terrible, awful day.".into(),
        token_count: 150,
        tags: tags(&["reflection"]),
    })
}

#[test]
fn an_analysis_of_the_current_content_is_recorded_once() {
    let analysis = EntryEvent::DiaryEntryAnalyzed(analyzed(1));
    assert_eq!(
        entry_when(&[created()], record(1)),
        Ok(vec![analysis.clone()])
    );
    // Already recorded: a redelivery stores nothing more.
    assert_eq!(
        entry_when(&[created(), analysis.clone()], record(1)),
        Ok(vec![])
    );
    let state = given::<EntryState>(&[created(), analysis]).0;
    let entry = state.live().unwrap();
    assert_eq!(entry.analysis, Some(analyzed(1)));
    assert_eq!((entry.content_version, entry.version), (1, 2));
}

#[test]
fn an_analysis_of_replaced_content_is_stale() {
    // Updated at version 2: the analysis of version 1 is no longer decided...
    assert_eq!(entry_when(&[created(), updated()], record(1)), Ok(vec![]));
    // ...and one already recorded goes with the content it described.
    let history = [
        created(),
        EntryEvent::DiaryEntryAnalyzed(analyzed(1)),
        updated(),
    ];
    let state = given::<EntryState>(&history).0;
    let entry = state.live().unwrap();
    assert_eq!((entry.analysis.as_ref(), entry.content_version), (None, 3));
    // A stale one, however it got into the stream, is ignored.
    let stale = [
        created(),
        updated(),
        EntryEvent::DiaryEntryAnalyzed(analyzed(1)),
    ];
    assert_eq!(given::<EntryState>(&stale).0.live().unwrap().analysis, None);
    // The new content's analysis is recorded.
    assert_eq!(
        entry_when(&history, record(3)),
        Ok(vec![EntryEvent::DiaryEntryAnalyzed(analyzed(3))])
    );
}

#[test]
fn a_retitled_entry_keeps_its_analysis() {
    let retitled = EntryEvent::DiaryEntryUpdated(DiaryEntryUpdated {
        user_id: U1,
        title: "Another title".into(),
        content: "Today was a good day...".into(),
        token_count: 150,
        tags: tags(&[]),
    });
    let history = [
        created(),
        EntryEvent::DiaryEntryAnalyzed(analyzed(1)),
        retitled,
    ];
    let state = given::<EntryState>(&history).0;
    let entry = state.live().unwrap();
    assert_eq!(
        (entry.analysis.clone(), entry.content_version),
        (Some(analyzed(1)), 1)
    );
    // Unanalysed yet, the creation's content is still the one to analyse.
    let unanalysed = [created(), history[2].clone()];
    assert_eq!(
        entry_when(&unanalysed, record(1)),
        Ok(vec![EntryEvent::DiaryEntryAnalyzed(analyzed(1))])
    );
}

#[test]
fn a_deleted_entry_is_not_analysed_and_loses_its_analysis() {
    assert_eq!(
        entry_when(&[created(), deleted()], record(1)),
        Err(EntryError::NotFound)
    );
    let history = [
        created(),
        EntryEvent::DiaryEntryAnalyzed(analyzed(1)),
        deleted(),
    ];
    match given::<EntryState>(&history).0 {
        EntryState::Deleted(entry) => assert_eq!(entry.analysis, None),
        other => panic!("expected a deleted entry, got {other:?}"),
    }
}

#[test]
fn the_analysis_payload_is_measured_and_versioned() {
    let a = analyze_content(
        U1,
        4,
        0,
        "I love the bright morning light. I feel calm and grateful, and I hear the birds \
         singing outside while I think about what matters most to me this year.",
    );
    assert_eq!(a.entry_version, 4);
    assert_eq!(a.analyzer_version, ::analysis::ANALYZER_VERSION);
    let scores = a.sentiment.as_ref().expect("English is scored");
    assert_eq!(scores.analyzer_version, sentiment::ANALYZER_VERSION);
    assert!(scores.compound > 0.5, "{scores:?}");
    assert!(a.token_count > 20);
    assert_eq!(a.language.as_deref(), Some("en"));
    assert!(!a.keywords.is_empty());
    // Scores, versions and short key phrases: no sentence of the text.
    let payload = serde_json::to_string(&a).unwrap();
    assert!(!payload.contains("I feel calm"), "{payload}");
    assert!(a.keywords.iter().all(|k| k.split(' ').count() <= 3));
}

#[test]
fn only_english_or_too_short_to_tell_is_scored_for_sentiment() {
    let french = analyze_content(
        U1,
        1,
        0,
        "Aujourd'hui j'ai marché longtemps au bord de la rivière avec ma sœur, et nous avons \
         parlé de notre enfance, de la maison de nos grands-parents et de leurs voyages.",
    );
    assert_eq!(french.language.as_deref(), Some("fr"));
    assert_eq!(french.sentiment, None, "VADER reads English");
    assert!(!french.keywords.is_empty(), "keywords are per language");
    let short = analyze_content(U1, 1, 0, "Great day!");
    assert_eq!(short.language, None);
    assert!(short.sentiment.unwrap().compound > 0.5);
}

#[test]
fn an_update_keeps_what_it_does_not_change() {
    let command = EntryCommand::Update(EntryChanges {
        title: Some("Updated Title".into()),
        ..EntryChanges::default()
    });
    assert_eq!(
        entry_when(&[created()], command),
        Ok(vec![EntryEvent::DiaryEntryUpdated(DiaryEntryUpdated {
            user_id: U1,
            title: "Updated Title".into(),
            content: "Today was a good day...".into(),
            token_count: 150,
            tags: tags(&["reflection", "gratitude"]),
        })])
    );
    let nothing = EntryCommand::Update(EntryChanges {
        title: Some("My First Entry".into()),
        ..EntryChanges::default()
    });
    assert_eq!(entry_when(&[created()], nothing), Ok(vec![]));
}

#[test]
fn new_content_without_a_count_is_recounted() {
    let command = EntryCommand::Update(EntryChanges {
        content: Some("just four words here".into()),
        ..EntryChanges::default()
    });
    let events = entry_when(&[created()], command).unwrap();
    assert!(matches!(&events[0], EntryEvent::DiaryEntryUpdated(e) if e.token_count == 4));
}

#[test]
fn a_deleted_entry_is_gone_for_every_command() {
    assert_eq!(
        entry_when(&[created()], EntryCommand::Delete),
        Ok(vec![deleted()])
    );
    for command in [
        EntryCommand::Delete,
        EntryCommand::Update(EntryChanges::default()),
    ] {
        assert_eq!(
            entry_when(&[created(), deleted()], command),
            Err(EntryError::NotFound)
        );
    }
    assert_eq!(
        entry_when(&[], EntryCommand::Delete),
        Err(EntryError::NotFound)
    );
    assert!(
        given::<EntryState>(&[created(), deleted()])
            .0
            .live()
            .is_none()
    );
}

fn t(hour: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2024, 5, 1, hour, 0, 0).unwrap()
}

fn started(at: DateTime<Utc>) -> SessionEvent {
    SessionEvent::DiarySessionStarted(DiarySessionStarted {
        session_id: S1,
        user_id: U1,
        start_time: at,
    })
}

fn start(at: Option<DateTime<Utc>>, now: DateTime<Utc>) -> SessionCommand {
    SessionCommand::Start {
        session_id: S1,
        user_id: U1,
        start_time: at,
        now,
    }
}

fn session_when(
    history: &[SessionEvent],
    command: SessionCommand,
) -> Result<Vec<SessionEvent>, SessionError> {
    given::<SessionState>(history).when(command)
}

#[test]
fn a_session_starts_at_the_given_time_or_now() {
    assert_eq!(
        session_when(&[], start(Some(t(10)), t(12))),
        Ok(vec![started(t(10))])
    );
    assert_eq!(
        session_when(&[], start(None, t(12))),
        Ok(vec![started(t(12))])
    );
    assert_eq!(
        session_when(&[started(t(10))], start(None, t(12))),
        Err(SessionError::AlreadyExists)
    );
    // A little clock skew is tolerated; the future is not.
    assert!(session_when(&[], start(Some(t(12) + Duration::minutes(4)), t(12))).is_ok());
    assert!(matches!(
        session_when(&[], start(Some(t(13)), t(12))),
        Err(SessionError::Invalid(v)) if v.iter().any(|x| x.field == "startTime")
    ));
}

#[test]
fn a_session_ends_once_and_not_before_it_started() {
    let end = |at| SessionCommand::End {
        end_time: Some(at),
        now: t(23),
    };
    assert_eq!(
        session_when(&[started(t(10))], end(t(11))),
        Ok(vec![SessionEvent::DiarySessionEnded(DiarySessionEnded {
            user_id: U1,
            end_time: t(11),
        })])
    );
    assert!(matches!(
        session_when(&[started(t(10))], end(t(9))),
        Err(SessionError::Invalid(v)) if v.iter().any(|x| x.field == "endTime")
    ));
    let ended = SessionEvent::DiarySessionEnded(DiarySessionEnded {
        user_id: U1,
        end_time: t(11),
    });
    assert_eq!(
        session_when(&[started(t(10)), ended.clone()], end(t(12))),
        Err(SessionError::AlreadyEnded)
    );
    assert_eq!(session_when(&[], end(t(12))), Err(SessionError::NotFound));
    let state = given::<SessionState>(&[started(t(10)), ended]).0;
    let session = state.session().unwrap();
    assert_eq!(session.duration_minutes(), 60.0);
    assert!(!session.is_active());
}

#[test]
fn a_session_does_not_end_before_an_entry_written_in_it() {
    let added = |at| {
        SessionEvent::DiarySessionEntryAdded(DiarySessionEntryAdded {
            entry_id: E1,
            user_id: U1,
            written_at: Some(at),
        })
    };
    let end = |at| SessionCommand::End {
        end_time: Some(at),
        now: t(14),
    };
    let history = [started(t(10)), added(t(12)), added(t(11))];
    let refused = session_when(&history, end(t(11))).unwrap_err();
    let SessionError::Invalid(v) = refused else {
        panic!("{refused:?}");
    };
    assert!(v.to_string().contains("last entry"), "{v}");
    assert!(session_when(&history, end(t(12))).is_ok());
    // Ended now, without a time: after the entry dated latest, also one dated a little ahead.
    let ahead = [started(t(10)), added(t(14) + chrono::Duration::minutes(3))];
    let now_end = SessionCommand::End {
        end_time: None,
        now: t(14),
    };
    let ended = session_when(&ahead, now_end).unwrap();
    let [SessionEvent::DiarySessionEnded(e)] = ended.as_slice() else {
        panic!("{ended:?}");
    };
    assert_eq!(e.end_time, t(14) + chrono::Duration::minutes(3));
    // An entry without a client's time: the session's times are the client's account.
    let old = SessionEvent::DiarySessionEntryAdded(DiarySessionEntryAdded {
        entry_id: E1,
        user_id: U1,
        written_at: None,
    });
    assert!(session_when(&[started(t(10)), old], end(t(10))).is_ok());
}

#[test]
fn only_the_writer_adds_entries_to_an_active_session() {
    let add = |user_id| SessionCommand::AddEntry {
        entry_id: E1,
        user_id,
        now: t(12),
        written_at: None,
    };
    assert_eq!(
        session_when(&[started(t(10))], add(U1)),
        Ok(vec![SessionEvent::DiarySessionEntryAdded(
            DiarySessionEntryAdded {
                entry_id: E1,
                user_id: U1,
                written_at: None,
            }
        )])
    );
    let someone_else = UserId::from_uuid(Uuid::from_u128(0x02));
    assert_eq!(
        session_when(&[started(t(10))], add(someone_else)),
        Err(SessionError::NotTheWriters)
    );
    let ended = SessionEvent::DiarySessionEnded(DiarySessionEnded {
        user_id: U1,
        end_time: t(11),
    });
    assert_eq!(
        session_when(&[started(t(10)), ended], add(U1)),
        Err(SessionError::AlreadyEnded)
    );
    assert_eq!(session_when(&[], add(U1)), Err(SessionError::NotFound));
    // An entry written earlier than now, but not before the session started.
    let backdated = |at| SessionCommand::AddEntry {
        entry_id: E1,
        user_id: U1,
        now: t(12),
        written_at: Some(at),
    };
    assert!(session_when(&[started(t(10))], backdated(t(10))).is_ok());
    match session_when(&[started(t(10))], backdated(t(9))) {
        Err(SessionError::Invalid(v)) => {
            assert_eq!(v.iter().next().map(|x| x.field.as_str()), Some("createdAt"))
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn a_session_that_has_not_started_yet_takes_no_entry_and_does_not_end_now() {
    // Started a few minutes ahead of the server's clock (within the tolerated skew).
    let ahead = t(12) + Duration::minutes(3);
    let end = SessionCommand::End {
        end_time: None,
        now: t(12),
    };
    assert_eq!(
        session_when(&[started(ahead)], end),
        Err(SessionError::NotStarted(ahead))
    );
    let add = SessionCommand::AddEntry {
        entry_id: E1,
        user_id: U1,
        now: t(12),
        written_at: None,
    };
    assert_eq!(
        session_when(&[started(ahead)], add),
        Err(SessionError::NotStarted(ahead))
    );
    // Once its start has passed, both are fine.
    let later = SessionCommand::End {
        end_time: None,
        now: ahead + Duration::minutes(1),
    };
    assert!(session_when(&[started(ahead)], later).is_ok());
}

mod properties {
    use event_sourcing::Aggregate;
    use proptest::prelude::*;

    use super::*;

    proptest! {
        /// Whatever tags a writer sends, an entry is created with them trimmed, each once
        /// regardless of case (the first spelling kept, in order), or refused naming the
        /// offending tag; its content is stored exactly as sent, unless it is only white space
        /// (Unicode's too), which is refused naming the content.
        #[test]
        fn an_entry_keeps_its_text_and_each_tag_once(
            sent in proptest::collection::vec("[ a-zA-Z]{0,6}", 0..25),
            content in "\\PC{1,200}",
        ) {
            let command = EntryCommand::Create(NewEntry {
                tags: sent.clone(),
                content: content.clone(),
                session_id: None,
                ..new_entry()
            });
            let decided = EntryState::Absent.decide(&command);
            let mut expected: Vec<String> = Vec::new();
            for tag in &sent {
                let tag = tag.trim();
                if !tag.is_empty() && !expected.iter().any(|k| k.to_lowercase() == tag.to_lowercase()) {
                    expected.push(tag.to_owned());
                }
            }
            let empty = sent.iter().position(|t| t.trim().is_empty());
            match decided {
                Ok(events) => {
                    prop_assert!(empty.is_none() && expected.len() <= 20 && !content.trim().is_empty());
                    let [EntryEvent::DiaryEntryCreated(created)] = events.as_slice() else {
                        return Err(TestCaseError::fail("one creation"));
                    };
                    let kept: Vec<&str> = created.tags.iter().map(Tag::as_str).collect();
                    prop_assert_eq!(kept, expected.iter().map(String::as_str).collect::<Vec<_>>());
                    prop_assert_eq!(&created.content, &content);
                }
                Err(error) => {
                    let message = format!("{error:?}");
                    let blank = content.trim().is_empty();
                    prop_assert_eq!(blank, message.contains("content"), "{}", message);
                    if blank {
                        return Ok(());
                    }
                    match empty {
                        Some(i) => prop_assert!(message.contains(&format!("tags[{i}]")), "{}", message),
                        None => prop_assert!(expected.len() > 20, "{}", message),
                    }
                }
            }
        }
    }
}
