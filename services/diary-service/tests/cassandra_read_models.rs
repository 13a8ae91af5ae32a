//! The Cassandra diary read models against a real Cassandra (`scripts/infra/cassandra.sh
//! start`; `METACHAT_TEST_CASSANDRA_HOSTS` to use another), each test in a fresh keyspace.
//! Expected results come from replaying each entry's and session's events, and from the
//! SQLite read model fed the same events.

use std::time::Instant;

use chrono::{DateTime, Duration, TimeZone, Utc};
use diary_service::cassandra::CassandraDiaryReadModels;
use std::collections::BTreeMap;

use diary_service::analytics::{
    AnalysisSummary, BucketTotals, EntryFacts, SessionFacts, Window, bucket_of, compute,
};
use diary_service::domain::{
    AnalysisSettingEvent, DiaryAnalysisSwitched, DiaryEntryCreated, DiaryEntryDeleted,
    DiaryEntryUpdated, DiarySessionEnded, DiarySessionStarted, Entry, EntryEvent, EntryState,
    Session, SessionEvent, SessionState, Tag, analyze_content,
};
use diary_service::read_model::{DiaryReadModels, SqliteDiaryReadModels, TimeRange};
use event_sourcing::{DomainEvent, Loaded, Projection, RecordedEvent, encode_event, replay};
use metachat_cassandra::test_support::TestKeyspace;
use metachat_read_model::{Page, PageRequest, QueryError};
use metachat_validation::{EntryId, SessionId, UserId};
use uuid::Uuid;

struct Fixture {
    test: TestKeyspace,
    models: CassandraDiaryReadModels,
}

async fn fixture() -> Fixture {
    let test = TestKeyspace::create().await;
    let started = Instant::now();
    let models = CassandraDiaryReadModels::new(test.session.clone(), test.name())
        .await
        .expect("migrate and prepare");
    eprintln!(
        "keyspace {}: connect + create {:?}, migrate + prepare {:?}",
        test.name(),
        test.connect_time,
        started.elapsed()
    );
    Fixture { test, models }
}

impl Fixture {
    async fn apply_all<'a>(&self, events: impl IntoIterator<Item = &'a RecordedEvent>) {
        for event in events {
            self.models.apply(event).await.expect("apply");
        }
    }

    async fn finish(self) {
        self.test.drop_keyspace().await;
    }
}

fn recorded<E: DomainEvent>(
    stream_id: &str,
    version: u64,
    at: DateTime<Utc>,
    event: &E,
) -> RecordedEvent {
    let (event_type, payload) = encode_event(event).unwrap();
    RecordedEvent {
        event_id: Uuid::new_v4(),
        event_type,
        schema_version: 1,
        stream_id: stream_id.to_owned(),
        stream_version: version,
        position: 0,
        recorded_at: at,
        payload,
        metadata: Default::default(),
        erased: false,
        undecodable: None,
    }
}

fn base_time() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2024, 3, 1, 10, 0, 0).unwrap() + Duration::microseconds(654_321)
}

fn user(n: u128) -> UserId {
    UserId::from_uuid(Uuid::from_u128(0xa000 + n))
}

fn tags(names: &[&str]) -> Vec<Tag> {
    names.iter().map(|t| Tag::parse(t).unwrap()).collect()
}

/// A replayed entry as a read model lists it: only while live, created when it was written,
/// without its analysis.
fn listed_entry(l: Loaded<EntryState>) -> Option<Loaded<Entry>> {
    let mut entry = l.state.live()?.clone();
    let created_at = entry.written_at.take().or(l.created_at);
    Some(Loaded {
        state: entry,
        version: l.version,
        created_at,
        updated_at: l.updated_at,
        erased: false,
    })
}

fn listed_session(l: Loaded<SessionState>) -> Option<Loaded<Session>> {
    let session = l.state.session()?.clone();
    Some(Loaded {
        state: session,
        version: l.version,
        created_at: l.created_at,
        updated_at: l.updated_at,
        erased: false,
    })
}

struct History {
    events: Vec<RecordedEvent>,
    entries: Vec<Vec<RecordedEvent>>,
    sessions: Vec<Vec<RecordedEvent>>,
    /// Analysis switched on or off.
    settings: Vec<RecordedEvent>,
}

/// For user 1: `count` entries a minute apart (entries 8 and 9 in the same microsecond),
/// every third one updated, every seventh (from the fourth) deleted, some in a session; and
/// 12 sessions, every other one ended. For user 2: 4 entries and 2 sessions.
fn history(count: u32) -> History {
    let mut entries = Vec::new();
    let mut sessions = Vec::new();
    let mut events = Vec::new();
    for (owner, sessions_count) in [(1, 12u32), (2, 2)] {
        for i in 0..sessions_count {
            let id = SessionId::from_uuid(Uuid::from_u128(
                0x5000 + u128::from((i * 7919 + owner * 31) % 1000),
            ));
            let stream = format!("session-{id}");
            let start =
                base_time() + Duration::minutes(30 * i64::from(i.min(5) + i.saturating_sub(6)));
            let mut stream_events = vec![recorded(
                &stream,
                1,
                start + Duration::seconds(1),
                &SessionEvent::DiarySessionStarted(DiarySessionStarted {
                    session_id: id,
                    user_id: user(owner.into()),
                    start_time: start,
                }),
            )];
            if i % 2 == 0 {
                stream_events.push(recorded(
                    &stream,
                    2,
                    start + Duration::minutes(20),
                    &SessionEvent::DiarySessionEnded(DiarySessionEnded {
                        user_id: user(owner.into()),
                        end_time: start + Duration::minutes(19) + Duration::microseconds(7),
                    }),
                ));
            }
            events.extend(stream_events.iter().cloned());
            sessions.push(stream_events);
        }
    }
    for (owner, entries_count) in [(1, count), (2, 4)] {
        for i in 0..entries_count {
            let id = EntryId::from_uuid(Uuid::from_u128(
                0x9000 + u128::from((i * 7919 + owner * 17) % 1000),
            ));
            let stream = format!("entry-{id}");
            let created = base_time()
                + Duration::minutes(i64::from(i.min(8) + i.saturating_sub(9)))
                + Duration::microseconds(i64::from(owner));
            let mut stream_events = vec![recorded(
                &stream,
                1,
                created,
                &EntryEvent::DiaryEntryCreated(DiaryEntryCreated {
                    entry_id: id,
                    user_id: user(owner.into()),
                    title: format!("Entry {i}"),
                    content: format!("Dear diary, day {i}.\nIt rained."),
                    token_count: 6 + i,
                    session_id: (i % 4 == 1).then(|| SessionId::from_uuid(Uuid::from_u128(0x5000))),
                    tags: if i % 2 == 0 {
                        tags(&["rain", "Day"])
                    } else {
                        vec![]
                    },
                    // Every fifth entry was written on an earlier day than recorded.
                    created_at: (i % 5 == 2).then(|| created - Duration::days(3)),
                }),
            )];
            let mut at = created;
            if i % 3 == 0 {
                at += Duration::seconds(5);
                stream_events.push(recorded(
                    &stream,
                    2,
                    at,
                    &EntryEvent::DiaryEntryUpdated(DiaryEntryUpdated {
                        user_id: user(owner.into()),
                        title: format!("Entry {i}, revised"),
                        content: format!("Dear diary, day {i}.\nThe sun came out."),
                        token_count: 9 + i,
                        tags: tags(&["sun", "rain", "mood"]),
                    }),
                ));
            }
            if i % 2 == 0 {
                // The analysis of the current content.
                at += Duration::seconds(5);
                let content_version = stream_events.len() as u64;
                let content = stream_events[content_version as usize - 1].payload["content"]
                    .as_str()
                    .unwrap()
                    .to_owned();
                let analysed = analyze_content(user(owner.into()), content_version, 0, &content);
                stream_events.push(recorded(
                    &stream,
                    content_version + 1,
                    at,
                    &EntryEvent::DiaryEntryAnalyzed(analysed),
                ));
            }
            if i % 7 == 3 {
                at += Duration::seconds(5);
                let version = stream_events.len() as u64 + 1;
                stream_events.push(recorded(
                    &stream,
                    version,
                    at,
                    &EntryEvent::DiaryEntryDeleted(DiaryEntryDeleted {
                        user_id: user(owner.into()),
                    }),
                ));
            }
            events.extend(stream_events.iter().cloned());
            entries.push(stream_events);
        }
    }
    // User 2 switched analysis off: what was derived from their writing goes.
    let settings = vec![recorded(
        &format!("analysis_setting-{}", user(2)),
        1,
        base_time() + Duration::hours(3),
        &AnalysisSettingEvent::DiaryAnalysisDisabled(DiaryAnalysisSwitched { user_id: user(2) }),
    )];
    events.extend(settings.iter().cloned());
    // Events of other categories, which the projection ignores.
    events.push(recorded(
        "user-00000000-0000-0000-0000-00000000a001",
        1,
        base_time(),
        &EntryEvent::DiaryEntryDeleted(DiaryEntryDeleted { user_id: user(1) }),
    ));
    History {
        events,
        entries,
        sessions,
        settings,
    }
}

type Key = (DateTime<Utc>, String);

/// A listed item's state, version, creation and last change.
type Fields<S> = (S, Option<u64>, Option<DateTime<Utc>>, Option<DateTime<Utc>>);

/// What a listed item is made of, for comparing field by field.
/// (Lists carry no analysis, and know only the latest version.)
fn entry_fields(l: &Loaded<Entry>) -> Fields<Entry> {
    let version = l.version.unwrap_or_default();
    let state = Entry {
        analysis: None,
        content_version: version,
        version,
        ..l.state.clone()
    };
    (state, l.version, l.created_at, l.updated_at)
}

fn session_fields(l: &Loaded<Session>) -> Fields<Session> {
    (l.state.clone(), l.version, l.created_at, l.updated_at)
}

fn in_range(at: DateTime<Utc>, range: TimeRange) -> bool {
    range.start.is_none_or(|s| at >= s) && range.end.is_none_or(|e| at < e)
}

impl History {
    /// A user's live entries in `range`, newest first (ties: larger id first).
    fn expected_entries(&self, owner: &UserId, range: TimeRange) -> Vec<Loaded<Entry>> {
        let mut live: Vec<Loaded<Entry>> = self
            .entries
            .iter()
            .filter_map(|s| {
                // Lists show the version and last change of the entry's last event that is
                // not its analysis.
                let shown = s
                    .iter()
                    .rfind(|e| e.event_type != "DiaryEntryAnalyzed")
                    .unwrap();
                let mut listed = listed_entry(replay::<EntryState>(s).unwrap())?;
                listed.version = Some(shown.stream_version);
                listed.updated_at = Some(shown.recorded_at);
                Some(listed)
            })
            .filter(|l| l.state.user_id == *owner)
            .filter(|l| in_range(l.created_at.unwrap(), range))
            .collect();
        live.sort_by_key(|l| {
            std::cmp::Reverse::<Key>((l.created_at.unwrap(), l.state.id.to_string()))
        });
        live
    }

    fn expected_sessions(&self, owner: &UserId, range: TimeRange) -> Vec<Loaded<Session>> {
        let mut all: Vec<Loaded<Session>> = self
            .sessions
            .iter()
            .filter_map(|s| listed_session(replay::<SessionState>(s).unwrap()))
            .filter(|l| l.state.user_id == *owner)
            .filter(|l| in_range(l.state.start_time, range))
            .collect();
        all.sort_by_key(|l| std::cmp::Reverse::<Key>((l.state.start_time, l.state.id.to_string())));
        all
    }

    fn created_at(&self, entry: usize) -> DateTime<Utc> {
        self.entries[entry][0].recorded_at
    }

    /// A user's analytics buckets as their entries' and sessions' events say (user 2
    /// switched analysis off: their analyses do not count, their words do, counted from
    /// the text).
    fn expected_buckets(&self, owner: &UserId) -> BTreeMap<i64, BucketTotals> {
        let mut entries: BTreeMap<i64, Vec<EntryFacts>> = BTreeMap::new();
        for l in self.expected_entries(owner, TimeRange::default()) {
            let e = &l.state;
            entries
                .entry(bucket_of(l.created_at.unwrap().timestamp_micros()))
                .or_default()
                .push(EntryFacts {
                    token_count: e.token_count,
                    tags: e.tags.iter().map(|t| t.as_str().to_owned()).collect(),
                    word_count: analysis::count_words(&e.content),
                    analysis: e
                        .analysis
                        .as_ref()
                        .filter(|_| *owner != user(2))
                        .map(AnalysisSummary::of),
                });
        }
        let mut sessions: BTreeMap<i64, Vec<SessionFacts>> = BTreeMap::new();
        for l in self.expected_sessions(owner, TimeRange::default()) {
            sessions
                .entry(bucket_of(l.state.start_time.timestamp_micros()))
                .or_default()
                .push(SessionFacts {
                    start_time: l.state.start_time,
                    end_time: l.state.end_time,
                });
        }
        let keys: std::collections::BTreeSet<i64> =
            entries.keys().chain(sessions.keys()).copied().collect();
        keys.into_iter()
            .map(|b| {
                let none = Vec::new();
                let totals = BucketTotals::of(
                    entries.get(&b).unwrap_or(&none),
                    sessions.get(&b).map_or(&[][..], |s| s.as_slice()),
                );
                // As stored: through JSON.
                let stored = serde_json::to_string(&totals).unwrap();
                (b, serde_json::from_str(&stored).unwrap())
            })
            .collect()
    }
}

/// Every bucket of a user.
async fn buckets(models: &impl DiaryReadModels, owner: &UserId) -> BTreeMap<i64, BucketTotals> {
    let far = |years: i64| Utc::now() + Duration::days(365 * years);
    models
        .buckets(owner, far(-100), far(100))
        .await
        .unwrap()
        .into_iter()
        .collect()
}

fn all() -> PageRequest {
    by_offset(0, 1000)
}

fn by_offset(offset: u64, limit: u32) -> PageRequest {
    PageRequest {
        offset,
        limit,
        cursor: None,
    }
}

async fn entries(
    models: &impl DiaryReadModels,
    owner: &UserId,
    range: TimeRange,
) -> Vec<Loaded<Entry>> {
    let page = models.entries_by_user(owner, range, &all()).await.unwrap();
    assert!(!page.has_more());
    page.items
}

async fn sessions(
    models: &impl DiaryReadModels,
    owner: &UserId,
    range: TimeRange,
) -> Vec<Loaded<Session>> {
    let page = models.sessions_by_user(owner, range, &all()).await.unwrap();
    assert!(!page.has_more());
    page.items
}

fn assert_entries(actual: &[Loaded<Entry>], expected: &[Loaded<Entry>]) {
    let actual: Vec<_> = actual.iter().map(entry_fields).collect();
    let expected: Vec<_> = expected.iter().map(entry_fields).collect();
    assert_eq!(actual, expected);
}

fn assert_sessions(actual: &[Loaded<Session>], expected: &[Loaded<Session>]) {
    let actual: Vec<_> = actual.iter().map(session_fields).collect();
    let expected: Vec<_> = expected.iter().map(session_fields).collect();
    assert_eq!(actual, expected);
}

/// Everything both users can list, compared with what their events say.
async fn assert_matches_history(models: &impl DiaryReadModels, history: &History) {
    for owner in [user(1), user(2)] {
        let open = TimeRange::default();
        assert_entries(
            &entries(models, &owner, open).await,
            &history.expected_entries(&owner, open),
        );
        assert_sessions(
            &sessions(models, &owner, open).await,
            &history.expected_sessions(&owner, open),
        );
        assert_eq!(
            buckets(models, &owner).await,
            history.expected_buckets(&owner),
            "{owner}"
        );
    }
    assert!(models.analysis_enabled(&user(1)).await.unwrap());
    assert!(!models.analysis_enabled(&user(2)).await.unwrap());
}

fn entry_ids(page: &Page<Loaded<Entry>>) -> Vec<String> {
    page.items.iter().map(|l| l.state.id.to_string()).collect()
}

#[tokio::test]
async fn lists_a_users_live_entries_newest_first_within_a_time_range() {
    let f = fixture().await;
    let history = history(30);
    let started = Instant::now();
    f.apply_all(&history.events).await;
    eprintln!(
        "applied {} events in {:?}",
        history.events.len(),
        started.elapsed()
    );
    let owner = user(1);
    let open = TimeRange::default();

    let listed = entries(&f.models, &owner, open).await;
    let expected = history.expected_entries(&owner, open);
    assert_entries(&listed, &expected);
    // Deleted entries are gone, updates are visible, order is newest first.
    assert_eq!(listed.len(), 30 - 4);
    assert!(
        listed
            .iter()
            .all(|l| !l.state.title.contains("Entry 3,") && l.state.title != "Entry 3")
    );
    let revised = listed
        .iter()
        .find(|l| l.state.title == "Entry 6, revised")
        .unwrap();
    assert_eq!(revised.state.tags, tags(&["sun", "rain", "mood"]));
    // Created, then updated (its analysis is not listed, and moves no listed version).
    assert_eq!(revised.version, Some(2));
    assert!(revised.updated_at > revised.created_at);
    assert!(
        listed
            .windows(2)
            .all(|w| w[0].created_at >= w[1].created_at)
    );
    // Entries 8 and 9 share their creation time: the larger id first.
    assert_eq!(history.created_at(8), history.created_at(9));
    let id_of = |i: usize| {
        history.entries[i][0]
            .stream_id
            .trim_start_matches("entry-")
            .parse::<EntryId>()
            .unwrap()
    };
    let position = |i: usize| listed.iter().position(|l| l.state.id == id_of(i)).unwrap();
    assert_eq!(position(8).abs_diff(position(9)), 1);
    assert_eq!(position(8) < position(9), id_of(8) > id_of(9));
    // The other user's entries are theirs only (their entry 3 is deleted too).
    assert_eq!(entries(&f.models, &user(2), open).await.len(), 3);
    assert!(entries(&f.models, &user(3), open).await.is_empty());

    // [start, end): an entry created exactly at `start` is in, one exactly at `end` is out.
    let range = TimeRange {
        start: Some(history.created_at(5)),
        end: Some(history.created_at(20)),
    };
    let slice = entries(&f.models, &owner, range).await;
    assert_entries(&slice, &history.expected_entries(&owner, range));
    let slice_ids: Vec<EntryId> = slice.iter().map(|l| l.state.id).collect();
    assert!(slice_ids.contains(&id_of(5)));
    assert!(!slice_ids.contains(&id_of(20)));
    assert_eq!(slice.last().unwrap().state.id, id_of(5));
    let one_micro = TimeRange {
        start: Some(history.created_at(5)),
        end: Some(history.created_at(5) + Duration::microseconds(1)),
    };
    assert_eq!(entries(&f.models, &owner, one_micro).await.len(), 1);
    let before = TimeRange {
        start: None,
        end: Some(history.created_at(0)),
    };
    // Only the entries written on an earlier day than recorded (2, 7, 12, 22, 27; 17 is
    // deleted) come before the first one recorded.
    let earlier = entries(&f.models, &owner, before).await;
    assert_entries(&earlier, &history.expected_entries(&owner, before));
    assert_eq!(earlier.len(), 5);

    // Pages by number and by cursor agree, in a range too.
    for range in [open, range] {
        let expected = history.expected_entries(&owner, range);
        let mut cursor = None;
        let mut offset = 0u64;
        let mut seen = Vec::new();
        loop {
            let by_number = f
                .models
                .entries_by_user(&owner, range, &by_offset(offset, 4))
                .await
                .unwrap();
            let by_cursor = f
                .models
                .entries_by_user(
                    &owner,
                    range,
                    &PageRequest {
                        offset: 0,
                        limit: 4,
                        cursor: cursor.clone(),
                    },
                )
                .await
                .unwrap();
            assert_entries(&by_number.items, &by_cursor.items);
            let more = offset + 4 < expected.len() as u64;
            assert_eq!((by_number.has_more(), by_cursor.has_more()), (more, more));
            seen.extend(entry_ids(&by_cursor));
            if !more {
                break;
            }
            cursor = by_cursor.next_cursor;
            offset += 4;
        }
        let expected_ids: Vec<String> = expected.iter().map(|l| l.state.id.to_string()).collect();
        assert_eq!(seen, expected_ids);
    }

    // A bogus cursor, or one from another user or range, is refused.
    let first = f
        .models
        .entries_by_user(&owner, open, &by_offset(0, 4))
        .await
        .unwrap();
    let cursor = first.next_cursor.unwrap();
    for (who, range, bad) in [
        (owner, open, "o4".to_owned()),
        (owner, open, "AAAAAAAAAAAAAAAAAAAA".to_owned()),
        (user(2), open, cursor.clone()),
        (owner, range, cursor.clone()),
    ] {
        let request = PageRequest {
            cursor: Some(bad),
            ..by_offset(0, 4)
        };
        assert!(matches!(
            f.models.entries_by_user(&who, range, &request).await,
            Err(QueryError::InvalidCursor)
        ));
    }
    // The analytics query asks for everything at once.
    let everything = f
        .models
        .entries_by_user(&owner, open, &by_offset(0, u32::MAX - 1))
        .await
        .unwrap();
    assert_eq!(everything.items.len(), 26);
    assert!(!everything.has_more());
    f.finish().await;
}

#[tokio::test]
async fn lists_a_users_sessions_newest_start_first() {
    let f = fixture().await;
    let history = history(4);
    f.apply_all(&history.events).await;
    let owner = user(1);
    let open = TimeRange::default();
    let listed = sessions(&f.models, &owner, open).await;
    assert_sessions(&listed, &history.expected_sessions(&owner, open));
    assert_eq!(listed.len(), 12);
    assert_eq!(
        listed.iter().filter(|l| l.state.end_time.is_some()).count(),
        6
    );
    let ended = listed.iter().find(|l| l.state.end_time.is_some()).unwrap();
    assert_eq!(ended.version, Some(2));
    assert_eq!(
        ended.state.end_time.unwrap() - ended.state.start_time,
        Duration::minutes(19) + Duration::microseconds(7)
    );
    // Sessions 5 and 6 start at the same time: ordered by id, larger first.
    let start_of = |i: usize| {
        listed_session(replay::<SessionState>(&history.sessions[i]).unwrap())
            .unwrap()
            .state
            .start_time
    };
    assert_eq!(start_of(5), start_of(6));
    let range = TimeRange {
        start: Some(start_of(2)),
        end: Some(start_of(8)),
    };
    let slice = sessions(&f.models, &owner, range).await;
    assert_sessions(&slice, &history.expected_sessions(&owner, range));
    assert_eq!(slice.len(), 6);

    let mut cursor = None;
    let mut offset = 0;
    loop {
        let by_number = f
            .models
            .sessions_by_user(&owner, open, &by_offset(offset, 5))
            .await
            .unwrap();
        let by_cursor = f
            .models
            .sessions_by_user(
                &owner,
                open,
                &PageRequest {
                    offset: 0,
                    limit: 5,
                    cursor: cursor.clone(),
                },
            )
            .await
            .unwrap();
        assert_sessions(&by_number.items, &by_cursor.items);
        assert_eq!(by_cursor.has_more(), offset + 5 < 12);
        if !by_cursor.has_more() {
            break;
        }
        cursor = by_cursor.next_cursor;
        offset += 5;
    }
    let bogus = PageRequest {
        cursor: Some("garbage".into()),
        ..by_offset(0, 5)
    };
    assert!(matches!(
        f.models.sessions_by_user(&owner, open, &bogus).await,
        Err(QueryError::InvalidCursor)
    ));
    f.finish().await;
}

#[tokio::test]
async fn applying_every_event_twice_changes_nothing() {
    let f = fixture().await;
    let history = history(16);
    for event in &history.events {
        f.models.apply(event).await.unwrap();
        f.models.apply(event).await.unwrap();
    }
    assert_matches_history(&f.models, &history).await;
    f.apply_all(&history.events).await;
    assert_matches_history(&f.models, &history).await;
    f.finish().await;
}

#[tokio::test]
async fn events_applied_out_of_order_end_in_the_same_state() {
    let f = fixture().await;
    let history = history(16);
    // The switch off first (analyses then arrive after it); every stream newest event first:
    // deletions before creations, ends before starts.
    f.apply_all(&history.settings).await;
    for stream in history.entries.iter().chain(&history.sessions) {
        f.apply_all(stream.iter().rev()).await;
    }
    assert_matches_history(&f.models, &history).await;
    f.finish().await;
}

/// Entries of one writer arrive on different Kafka partitions, which consumers apply
/// concurrently: every stream in a task of its own (each in order, as a partition keeps it),
/// twice over (a redelivery after a rebalance). Every quarter hour's totals still count every
/// entry and session once: moves of the same quarter hour never overwrite each other.
#[tokio::test]
async fn concurrent_consumers_lose_no_move() {
    let f = fixture().await;
    let history = history(48);
    for _ in 0..2 {
        let streams = history
            .entries
            .iter()
            .chain(&history.sessions)
            .chain(std::iter::once(&history.settings));
        let tasks: Vec<_> = streams
            .map(|stream| {
                let models = f.models.clone();
                let stream = stream.clone();
                tokio::spawn(async move {
                    for event in &stream {
                        models.apply(event).await.expect("apply");
                    }
                })
            })
            .collect();
        for task in tasks {
            task.await.expect("a consumer task");
        }
        assert_matches_history(&f.models, &history).await;
    }
    f.finish().await;
}

#[tokio::test]
async fn a_creation_replayed_after_the_deletion_stays_deleted() {
    let f = fixture().await;
    let history = history(16);
    f.apply_all(&history.events).await;
    let deleted: Vec<&Vec<RecordedEvent>> = history
        .entries
        .iter()
        .filter(|s| s.last().unwrap().event_type == "DiaryEntryDeleted")
        .collect();
    assert_eq!(deleted.len(), 3);
    for stream in &deleted {
        // The creation again, then every event but the deletion.
        f.apply_all(stream.iter().take(stream.len() - 1)).await;
    }
    assert_matches_history(&f.models, &history).await;

    // A deleted entry's by-id row keeps no text.
    let id = deleted[0][0]
        .stream_id
        .trim_start_matches("entry-")
        .to_owned();
    let (title, content, tags, gone): (
        Option<String>,
        Option<String>,
        Option<Vec<String>>,
        Option<bool>,
    ) = f
        .test
        .session
        .query_unpaged(
            format!(
                "SELECT title, content, tags, deleted FROM {} WHERE entry_id = ?",
                f.test.table("diary_entry_read_model")
            ),
            (id,),
        )
        .await
        .unwrap()
        .into_rows_result()
        .unwrap()
        .single_row()
        .unwrap();
    assert_eq!((title, content, tags, gone), (None, None, None, Some(true)));
    f.finish().await;
}

#[tokio::test]
async fn reset_then_replay_gives_the_same_results() {
    let f = fixture().await;
    let history = history(10);
    f.apply_all(&history.events).await;
    assert_matches_history(&f.models, &history).await;
    f.models.reset().await.unwrap();
    assert!(
        entries(&f.models, &user(1), TimeRange::default())
            .await
            .is_empty()
    );
    assert!(
        sessions(&f.models, &user(1), TimeRange::default())
            .await
            .is_empty()
    );
    f.apply_all(&history.events).await;
    assert_matches_history(&f.models, &history).await;
    f.finish().await;
}

#[tokio::test]
async fn matches_the_sqlite_read_model_field_by_field() {
    let f = fixture().await;
    let pool = sqlx::sqlite::SqlitePoolOptions::new()
        .max_connections(1)
        .connect("sqlite::memory:")
        .await
        .unwrap();
    let sqlite = SqliteDiaryReadModels::new(pool).await.unwrap();
    let history = history(25);
    for event in &history.events {
        sqlite.apply(event).await.unwrap();
        f.models.apply(event).await.unwrap();
    }
    let ranges = [
        TimeRange::default(),
        TimeRange {
            start: Some(history.created_at(4)),
            end: Some(history.created_at(17)),
        },
        TimeRange {
            start: Some(history.created_at(10)),
            end: None,
        },
        TimeRange {
            start: None,
            end: Some(base_time() + Duration::minutes(90)),
        },
    ];
    for owner in [user(1), user(2), user(3)] {
        for range in ranges {
            // Analytics' buckets: both stores agree, over any window.
            let (start, end) = (
                range.start.unwrap_or(base_time() - Duration::days(10)),
                range.end.unwrap_or(base_time() + Duration::days(10)),
            );
            let ours = f.models.buckets(&owner, start, end).await.unwrap();
            let theirs = sqlite.buckets(&owner, start, end).await.unwrap();
            assert_eq!(ours, theirs);
            assert!(
                ours.iter()
                    .all(|(b, _)| *b >= start.timestamp_micros() - 900_000_000)
            );
            let window = Window::parse("", Some(start), Some(end), "Asia/Kolkata", end).unwrap();
            assert_eq!(
                compute(window.clone(), &ours, true),
                compute(window, &theirs, true)
            );
            for (offset, limit) in [
                (0, 1000),
                (0, 5),
                (5, 5),
                (10, 3),
                (19, 2),
                (21, 5),
                (40, 5),
            ] {
                let request = by_offset(offset, limit);
                let ours = f
                    .models
                    .entries_by_user(&owner, range, &request)
                    .await
                    .unwrap();
                let theirs = sqlite
                    .entries_by_user(&owner, range, &request)
                    .await
                    .unwrap();
                assert_entries(&ours.items, &theirs.items);
                assert_eq!(ours.has_more(), theirs.has_more());
                let ours = f
                    .models
                    .sessions_by_user(&owner, range, &request)
                    .await
                    .unwrap();
                let theirs = sqlite
                    .sessions_by_user(&owner, range, &request)
                    .await
                    .unwrap();
                assert_sessions(&ours.items, &theirs.items);
                assert_eq!(ours.has_more(), theirs.has_more());
            }
        }
    }
    f.finish().await;
}

/// What read-your-writes waits on: the version of each entry and session the listing
/// reflects. An event delivered before its creation is in no listing, so it is not reported;
/// once reported, a version is never lowered by a redelivery; a reset forgets it.
#[tokio::test]
async fn the_applied_version_is_the_version_the_listing_reflects() {
    let f = fixture().await;
    let pool = sqlx::sqlite::SqlitePoolOptions::new()
        .max_connections(1)
        .connect("sqlite::memory:")
        .await
        .unwrap();
    let sqlite = SqliteDiaryReadModels::new(pool).await.unwrap();
    let history = history(16);
    let id = |stream: &[RecordedEvent]| Uuid::parse_str(stream[0].aggregate_id()).unwrap();
    let mut deleted = 0;
    f.apply_all(&history.settings).await;
    for stream in history.entries.iter().chain(&history.sessions) {
        let newest = stream.last().unwrap();
        assert_eq!(f.models.applied_version(id(stream)).await.unwrap(), None);
        if stream.len() > 1 {
            f.models.apply(newest).await.unwrap();
            assert_eq!(
                f.models.applied_version(id(stream)).await.unwrap(),
                None,
                "{} arrived before its creation: no listing has it",
                newest.event_type
            );
        }
        f.apply_all(stream.iter()).await;
        for event in stream {
            sqlite.apply(event).await.unwrap();
        }
        let version = Some(newest.stream_version);
        assert_eq!(f.models.applied_version(id(stream)).await.unwrap(), version);
        assert_eq!(sqlite.applied_version(id(stream)).await.unwrap(), version);
        // A redelivered creation leaves it where it is (a deleted entry stays deleted).
        f.apply_all(&stream[..1]).await;
        assert_eq!(f.models.applied_version(id(stream)).await.unwrap(), version);
        deleted += usize::from(newest.event_type == "DiaryEntryDeleted");
    }
    assert_eq!(deleted, 3, "deleted entries keep their version too");
    assert_matches_history(&f.models, &history).await;
    f.models.reset().await.unwrap();
    let first = id(&history.entries[0]);
    assert_eq!(f.models.applied_version(first).await.unwrap(), None);
    f.finish().await;
}
