//! The Cassandra user read models against a real Cassandra (`scripts/infra/cassandra.sh
//! start`; `METACHAT_TEST_CASSANDRA_HOSTS` to use another), each test in a fresh keyspace.
//! Expected results come from replaying each user's events (`UserView::replay`), and from
//! the SQLite read model fed the same events.

use std::collections::BTreeMap;
use std::time::Instant;

use chrono::{DateTime, Duration, NaiveDate, TimeZone, Utc};
use event_sourcing::{DomainEvent, Projection, RecordedEvent, encode_event};
use metachat_cassandra::test_support::TestKeyspace;
use metachat_read_model::{Page, PageRequest, QueryError};
use metachat_validation::UserId;
use user_service::cassandra::CassandraUserReadModels;
use user_service::domain::{
    ArchetypeSet, ClaimEvent, Confidence, Email, Inference, InferenceBasis, ModalitiesUpdated,
    UserCreated, UserEvent, UserProfileUpdated, UserState, Username, claim_key,
};
use user_service::view::UserView;
use user_service::{SqliteUserReadModels, UserReadModels};
use uuid::Uuid;

struct Fixture {
    test: TestKeyspace,
    models: CassandraUserReadModels,
}

async fn fixture() -> Fixture {
    let test = TestKeyspace::create().await;
    let started = Instant::now();
    let models = CassandraUserReadModels::new(test.session.clone(), test.name())
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
    async fn apply_all(&self, events: &[RecordedEvent]) {
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
    Utc.with_ymd_and_hms(2024, 3, 1, 10, 0, 0).unwrap() + Duration::microseconds(123_456)
}

/// Users and their streams, with claim events interleaved (which the projection ignores).
struct History {
    /// Every event in the order the store would deliver them.
    events: Vec<RecordedEvent>,
    /// Each user's stream.
    streams: Vec<Vec<RecordedEvent>>,
}

impl History {
    /// The users as listed: each stream replayed, oldest first (ties by id).
    fn expected(&self) -> Vec<UserView> {
        let mut views: Vec<UserView> = self
            .streams
            .iter()
            .map(|s| {
                let mut view =
                    UserView::from_loaded(event_sourcing::replay::<UserState>(s).unwrap()).unwrap();
                // Lists show what clients set; the inferred values are on the user alone.
                view.user.clear_inferred();
                view
            })
            .collect();
        views.sort_by(|a, b| (a.created_at, &a.user.id).cmp(&(b.created_at, &b.user.id)));
        views
    }
}

/// `count` users created a second apart (users 3 and 4 in the same microsecond), with
/// profile, archetype and modality changes, including cleared fields.
fn history(count: u32) -> History {
    let mut events = Vec::new();
    let mut streams = Vec::new();
    for i in 0..count {
        let user_id = UserId::from_uuid(Uuid::from_u128(0x1000 + u128::from((i * 7919) % 1000)));
        let id = user_id.to_string();
        let stream = format!("user-{id}");
        let created_at = base_time() + Duration::seconds(i64::from(i.min(3) + i.saturating_sub(4)));
        let mut at = created_at;
        let mut stream_events = Vec::new();
        let mut push = |event: UserEvent, at: DateTime<Utc>| {
            let version = stream_events.len() as u64 + 1;
            stream_events.push(recorded(&stream, version, at, &event));
        };
        let username = format!("user{i}");
        let email = format!("user{i}@example.com");
        push(
            UserEvent::UserCreated(UserCreated {
                user_id,
                username: Username::parse(&username).unwrap(),
                email: Email::parse(&email).unwrap(),
                first_name: format!("First{i}"),
                last_name: format!("Last{i}"),
                date_of_birth: (i % 2 == 0)
                    .then(|| NaiveDate::from_ymd_opt(1990, 1, 1 + i % 28).unwrap()),
            }),
            at,
        );
        events.push(recorded(
            &format!("username-{}", claim_key(&username)),
            1,
            at,
            &ClaimEvent::UsernameClaimed { user_id },
        ));
        events.push(recorded(
            &format!("email-{}", claim_key(&email)),
            1,
            at,
            &ClaimEvent::EmailClaimed { user_id },
        ));
        if i % 3 != 2 {
            at += Duration::milliseconds(1500);
            push(
                UserEvent::UserProfileUpdated(UserProfileUpdated {
                    first_name: format!("Renamed{i}"),
                    last_name: format!("Last{i}"),
                    date_of_birth: None,
                    avatar: Some(format!("https://example.com/{i}.png")),
                    bio: Some("Writes every day".into()),
                }),
                at,
            );
        }
        if i % 3 == 0 {
            let archetype = |confidence: f64, name: &str| ArchetypeSet {
                archetype_id: name.to_lowercase(),
                archetype_name: format!("The {name}"),
                confidence: Confidence::parse(confidence).unwrap(),
                description: format!("{name} archetype"),
                inferred: None,
            };
            at += Duration::milliseconds(700);
            push(UserEvent::ArchetypeAssigned(archetype(0.6, "Thinker")), at);
            at += Duration::milliseconds(700);
            push(UserEvent::ArchetypeUpdated(archetype(0.85, "Explorer")), at);
        }
        if i % 4 == 1 {
            at += Duration::milliseconds(300);
            push(
                UserEvent::ModalitiesUpdated(ModalitiesUpdated {
                    modalities: BTreeMap::from([
                        ("visual".to_owned(), 0.5),
                        ("auditory".to_owned(), 0.25),
                    ]),
                    inferred: None,
                }),
                at,
            );
            at += Duration::milliseconds(300);
            push(
                UserEvent::ModalitiesUpdated(ModalitiesUpdated {
                    modalities: BTreeMap::from([("kinesthetic".to_owned(), 0.9)]),
                    inferred: None,
                }),
                at,
            );
            // The platform's inference, beside (never over) what was set above.
            let inference = Inference {
                evidence: Vec::new(),
                basis: InferenceBasis {
                    entries: 3,
                    words: 400,
                    window_days: 90,
                    analyzer_version: "1".into(),
                },
                coverage: Some(0.1),
            };
            at += Duration::milliseconds(300);
            push(
                UserEvent::ArchetypeAssigned(ArchetypeSet {
                    archetype_id: "caregiver".into(),
                    archetype_name: "The Caregiver".into(),
                    confidence: Confidence::parse(0.4).unwrap(),
                    description: String::new(),
                    inferred: Some(inference.clone()),
                }),
                at,
            );
            at += Duration::milliseconds(300);
            push(
                UserEvent::ModalitiesUpdated(ModalitiesUpdated {
                    modalities: BTreeMap::from([("visual".to_owned(), 1.0)]),
                    inferred: Some(inference),
                }),
                at,
            );
        }
        if i % 5 == 0 {
            // Clears the avatar and bio set above (or sets nothing new).
            at += Duration::milliseconds(100);
            push(
                UserEvent::UserProfileUpdated(UserProfileUpdated {
                    first_name: format!("Final{i}"),
                    last_name: format!("Last{i}"),
                    date_of_birth: NaiveDate::from_ymd_opt(1985, 5, 5),
                    avatar: None,
                    bio: None,
                }),
                at,
            );
        }
        events.extend(stream_events.iter().cloned());
        streams.push(stream_events);
    }
    History { events, streams }
}

fn by_offset(offset: u64, limit: u32) -> PageRequest {
    PageRequest {
        offset,
        limit,
        cursor: None,
    }
}

async fn list_all(models: &impl UserReadModels) -> Vec<UserView> {
    let page = models.list_users(&by_offset(0, 1000)).await.unwrap();
    assert!(!page.has_more());
    page.items
}

fn ids(page: &Page<UserView>) -> Vec<String> {
    page.items.iter().map(|v| v.user.id.to_string()).collect()
}

/// Every user, field by field, in order.
fn assert_users(actual: &[UserView], expected: &[UserView]) {
    assert_eq!(actual.len(), expected.len());
    for (a, e) in actual.iter().zip(expected) {
        assert_eq!(a, e, "user {}", e.user.id);
    }
}

#[tokio::test]
async fn lists_users_oldest_first_with_their_latest_state() {
    let f = fixture().await;
    assert_eq!(f.models.count_users().await.unwrap(), 0);
    let empty = f.models.list_users(&by_offset(0, 10)).await.unwrap();
    assert!(empty.items.is_empty() && !empty.has_more());

    let history = history(23);
    let started = Instant::now();
    f.apply_all(&history.events).await;
    eprintln!(
        "applied {} events in {:?}",
        history.events.len(),
        started.elapsed()
    );
    let expected = history.expected();
    assert_eq!(f.models.count_users().await.unwrap(), 23);
    assert_users(&list_all(&f.models).await, &expected);

    // What the events changed is visible: a profile update, a cleared avatar, the updated
    // archetype (assigned earlier), the latest modalities.
    let listed = list_all(&f.models).await;
    let user = |i: u32| {
        let username = format!("user{i}");
        listed
            .iter()
            .find(|v| v.user.username.as_str() == username)
            .unwrap()
    };
    assert_eq!(user(1).user.first_name, "Renamed1");
    assert_eq!(
        user(1).user.avatar.as_deref(),
        Some("https://example.com/1.png")
    );
    assert_eq!(
        user(1).user.modalities,
        Some(BTreeMap::from([("kinesthetic".to_owned(), 0.9)]))
    );
    assert!(user(1).user.modalities_updated_at.is_some());
    let five = user(5);
    assert_eq!(
        (
            five.user.first_name.as_str(),
            &five.user.avatar,
            &five.user.bio
        ),
        ("Final5", &None, &None)
    );
    assert_eq!(five.user.date_of_birth, NaiveDate::from_ymd_opt(1985, 5, 5));
    let three = user(3);
    let archetype = three.user.archetype.as_ref().unwrap();
    assert_eq!(
        (archetype.archetype_id.as_str(), archetype.confidence),
        ("explorer", Confidence::parse(0.85).unwrap())
    );
    assert!(three.user.archetype_assigned_at < three.user.archetype_updated_at);
    assert_eq!(three.version, 4);
    assert!(user(2).user.archetype.is_none() && user(2).user.archetype_assigned_at.is_none());
    // Users 3 and 4 were created in the same microsecond: ordered by id.
    assert_eq!(user(3).created_at, user(4).created_at);

    // Pages by number and by cursor agree, and the last page says so.
    let mut cursor = None;
    let mut offset = 0;
    let mut seen = Vec::new();
    loop {
        let by_number = f.models.list_users(&by_offset(offset, 5)).await.unwrap();
        let by_cursor = f
            .models
            .list_users(&PageRequest {
                offset: 0,
                limit: 5,
                cursor: cursor.clone(),
            })
            .await
            .unwrap();
        assert_eq!(by_number.items, by_cursor.items, "page at {offset}");
        assert_eq!(by_number.has_more(), offset + 5 < 23);
        assert_eq!(by_cursor.has_more(), offset + 5 < 23);
        seen.extend(ids(&by_cursor));
        if !by_cursor.has_more() {
            break;
        }
        cursor = by_cursor.next_cursor;
        offset += 5;
    }
    let expected_ids: Vec<String> = expected.iter().map(|v| v.user.id.to_string()).collect();
    assert_eq!(seen, expected_ids);
    let past = f.models.list_users(&by_offset(40, 5)).await.unwrap();
    assert!(past.items.is_empty() && !past.has_more());

    for bogus in ["o5", "not-a-cursor", "AQIDBAUGBwgJ", ""] {
        let request = PageRequest {
            cursor: Some(bogus.to_owned()),
            ..by_offset(0, 5)
        };
        assert!(
            matches!(
                f.models.list_users(&request).await,
                Err(QueryError::InvalidCursor)
            ),
            "{bogus:?}"
        );
    }
    f.finish().await;
}

#[tokio::test]
async fn applying_every_event_twice_changes_nothing() {
    let f = fixture().await;
    let history = history(12);
    for event in &history.events {
        f.models.apply(event).await.unwrap();
        f.models.apply(event).await.unwrap();
    }
    let expected = history.expected();
    assert_users(&list_all(&f.models).await, &expected);
    // A whole redelivery later changes nothing either.
    f.apply_all(&history.events).await;
    assert_users(&list_all(&f.models).await, &expected);
    assert_eq!(f.models.count_users().await.unwrap(), 12);
    f.finish().await;
}

#[tokio::test]
async fn events_applied_out_of_order_end_in_the_same_state() {
    let f = fixture().await;
    let history = history(12);
    // Each stream newest first, streams interleaved.
    let mut reversed: Vec<RecordedEvent> = Vec::new();
    let longest = history.streams.iter().map(Vec::len).max().unwrap();
    for k in 0..longest {
        for stream in &history.streams {
            if let Some(event) = stream.iter().rev().nth(k) {
                reversed.push(event.clone());
            }
        }
    }
    f.apply_all(&reversed).await;
    let expected = history.expected();
    assert_users(&list_all(&f.models).await, &expected);
    // An old event arriving after everything else changes nothing.
    for stream in &history.streams {
        f.models.apply(&stream[0]).await.unwrap();
        if let Some(second) = stream.get(1) {
            f.models.apply(second).await.unwrap();
        }
    }
    assert_users(&list_all(&f.models).await, &expected);
    f.finish().await;
}

#[tokio::test]
async fn reset_then_replay_gives_the_same_results() {
    let f = fixture().await;
    let history = history(9);
    f.apply_all(&history.events).await;
    let before = list_all(&f.models).await;
    f.models.reset().await.unwrap();
    assert_eq!(f.models.count_users().await.unwrap(), 0);
    assert!(list_all(&f.models).await.is_empty());
    f.apply_all(&history.events).await;
    assert_users(&list_all(&f.models).await, &before);
    assert_users(&before, &history.expected());
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
    let sqlite = SqliteUserReadModels::new(pool).await.unwrap();
    let history = history(17);
    for event in &history.events {
        sqlite.apply(event).await.unwrap();
        f.models.apply(event).await.unwrap();
    }
    assert_eq!(
        f.models.count_users().await.unwrap(),
        sqlite.count_users().await.unwrap()
    );
    for (offset, limit) in [(0, 1000), (0, 5), (5, 5), (15, 5), (16, 1), (17, 3), (3, 7)] {
        let request = by_offset(offset, limit);
        let ours = f.models.list_users(&request).await.unwrap();
        let theirs = sqlite.list_users(&request).await.unwrap();
        assert_users(&ours.items, &theirs.items);
        assert_eq!(
            ours.has_more(),
            theirs.has_more(),
            "offset {offset} limit {limit}"
        );
    }
    assert_users(&list_all(&f.models).await, &history.expected());
    f.finish().await;
}

/// What read-your-writes waits on: the version of each user the list reflects, the same in
/// both stores, never lowered by a redelivery, gone after a reset.
#[tokio::test]
async fn the_applied_version_is_the_version_the_list_reflects() {
    let f = fixture().await;
    let pool = sqlx::sqlite::SqlitePoolOptions::new()
        .max_connections(1)
        .connect("sqlite::memory:")
        .await
        .unwrap();
    let sqlite = SqliteUserReadModels::new(pool).await.unwrap();
    let history = history(9);
    let id = |stream: &[RecordedEvent]| Uuid::parse_str(stream[0].aggregate_id()).unwrap();
    for stream in &history.streams {
        assert_eq!(f.models.applied_version(id(stream)).await.unwrap(), None);
        for event in stream {
            f.models.apply(event).await.unwrap();
            sqlite.apply(event).await.unwrap();
            let version = Some(event.stream_version);
            assert_eq!(f.models.applied_version(id(stream)).await.unwrap(), version);
            assert_eq!(sqlite.applied_version(id(stream)).await.unwrap(), version);
        }
        // A redelivered creation leaves it where it is.
        f.apply_all(&stream[..1]).await;
        let last = stream.last().map(|e| e.stream_version);
        assert_eq!(f.models.applied_version(id(stream)).await.unwrap(), last);
    }
    // The list shows every user at the version the table names.
    for user in list_all(&f.models).await {
        let applied = f.models.applied_version(*user.user.id.as_uuid()).await;
        assert_eq!(applied.unwrap(), Some(user.version));
    }
    f.models.reset().await.unwrap();
    let first = id(&history.streams[0]);
    assert_eq!(f.models.applied_version(first).await.unwrap(), None);
    f.finish().await;
}
