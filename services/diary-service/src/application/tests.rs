//! The diary use cases in-process, against a real SQLite event store: given what is stored,
//! when a use case runs, then its answer and what it stored.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use async_trait::async_trait;
use chrono::Duration;
use event_sourcing::sqlite::SqliteCheckpoints;
use event_sourcing::testing::{CountingStore, InterceptedStore, StoreCalls, scratch_sqlite_store};
use event_sourcing::{EventMetadata, EventStore, ProjectionRunner};
use metachat_proto::error::ErrorCode;

use super::*;
use crate::SqliteDiaryReadModels;

/// The registered users, as the user service would answer (the user service itself is tested
/// on its own; here only its answer matters).
#[derive(Default)]
struct Registered(Mutex<HashSet<UserId>>);

#[async_trait]
impl UserDirectory for Registered {
    async fn user_exists(&self, user_id: &UserId) -> Result<bool, ApiError> {
        Ok(self
            .0
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .contains(user_id))
    }
}

struct Given {
    diary: Diary,
    store: Arc<CountingStore>,
    users: Arc<Registered>,
    read_models: Arc<SqliteDiaryReadModels>,
    /// Feeds the read models, only when a test says so (`catch_up`).
    projection: ProjectionRunner,
    checkpoints: Arc<SqliteCheckpoints>,
}

/// The bound of a list's wait for its consistency token in these tests.
const READ_YOUR_WRITES: std::time::Duration = std::time::Duration::from_millis(300);

impl Given {
    fn user(&self) -> UserId {
        let id = UserId::new();
        self.users.0.lock().unwrap().insert(id);
        id
    }
}

async fn given_a_store() -> Given {
    let sqlite = Arc::new(scratch_sqlite_store(crate::codec()).await);
    let read_models = Arc::new(
        SqliteDiaryReadModels::new(sqlite.pool().clone())
            .await
            .unwrap(),
    );
    let checkpoints = Arc::new(SqliteCheckpoints::new(&sqlite));
    let projection =
        ProjectionRunner::new(sqlite.clone(), checkpoints.clone(), read_models.clone());
    let store = Arc::new(CountingStore::new(sqlite));
    let users = Arc::new(Registered::default());
    Given {
        diary: Diary::new(store.clone(), read_models.clone(), users.clone())
            .with_read_your_writes_timeout(READ_YOUR_WRITES),
        store,
        users,
        read_models,
        projection,
        checkpoints,
    }
}

fn first_page() -> PageRequest {
    PageRequest {
        offset: 0,
        limit: 10,
        cursor: None,
    }
}

/// The token of a write: the id and version it answered.
fn token_of<T>(id: impl std::fmt::Display, written: &Loaded<T>) -> String {
    format!("{id}:{}", written.version.unwrap())
}

fn meta() -> EventMetadata {
    EventMetadata::default()
}

fn draft(session_id: Option<SessionId>) -> EntryDraft {
    EntryDraft {
        title: "My First Entry".into(),
        content: "Today was a good day...".into(),
        token_count: Some(150),
        session_id,
        tags: vec!["reflection".into()],
        created_at: None,
        idempotency_key: None,
    }
}

fn week() -> AnalyticsQuery {
    AnalyticsQuery {
        period: "week".into(),
        ..AnalyticsQuery::default()
    }
}

fn retitle(title: &str) -> EntryChanges {
    EntryChanges {
        title: Some(title.into()),
        ..EntryChanges::default()
    }
}

#[tokio::test]
async fn an_entry_written_in_an_active_session_costs_one_read_and_one_append() {
    let g = given_a_store().await;
    let user = g.user();
    let session = g
        .diary
        .start_session(&user, None, None, &meta())
        .await
        .unwrap();
    let session_id = session.state.session().unwrap().id;
    g.store.take();
    let written = g
        .diary
        .write_entry(&user, draft(Some(session_id)), &meta())
        .await
        .unwrap();
    assert_eq!(
        g.store.take(),
        StoreCalls {
            stream_reads: 1,
            appends: 1,
            global_reads: 0,
        },
        "the session is read once; the entry and the session guard are one append"
    );
    let entry = written.state.live().unwrap();
    assert_eq!(entry.session_id, Some(session_id));
    let history = g.diary.entry_history(&entry.id).await.unwrap();
    assert_eq!(written.created_at, Some(history[0].recorded_at));
    assert_eq!(written.version, Some(1));
}

#[tokio::test]
async fn only_the_writers_own_active_session_takes_entries() {
    let g = given_a_store().await;
    let (alice, bob) = (g.user(), g.user());
    let bobs = g
        .diary
        .start_session(&bob, None, None, &meta())
        .await
        .unwrap();
    let bobs = bobs.state.session().unwrap().id;
    let error = g
        .diary
        .write_entry(&alice, draft(Some(bobs)), &meta())
        .await
        .unwrap_err();
    assert_eq!(
        error.code,
        ErrorCode::NotFound,
        "another user's session is private"
    );

    g.diary
        .end_session(&bobs, None, None, &meta())
        .await
        .unwrap();
    let error = g
        .diary
        .write_entry(&bob, draft(Some(bobs)), &meta())
        .await
        .unwrap_err();
    assert_eq!(error.code, ErrorCode::FailedPrecondition);

    let unknown = g
        .diary
        .write_entry(&bob, draft(Some(SessionId::new())), &meta())
        .await
        .unwrap_err();
    assert_eq!(unknown.code, ErrorCode::NotFound);
    assert_eq!(
        g.store.head_position().await.unwrap(),
        2,
        "nothing but the session"
    );
}

#[tokio::test]
async fn an_unregistered_user_writes_nothing() {
    let g = given_a_store().await;
    let error = g
        .diary
        .write_entry(&UserId::new(), draft(None), &meta())
        .await
        .unwrap_err();
    assert_eq!(error.code, ErrorCode::NotFound);
    assert_eq!(error.details[0].field, "userId");
    let error = g
        .diary
        .start_session(&UserId::new(), None, None, &meta())
        .await
        .unwrap_err();
    assert_eq!(error.details[0].field, "userId");
    assert_eq!(g.store.take().appends, 0);
}

#[tokio::test]
async fn a_change_costs_one_read_and_one_append_and_answers_what_it_stored() {
    let g = given_a_store().await;
    let user = g.user();
    let id = g
        .diary
        .write_entry(&user, draft(None), &meta())
        .await
        .unwrap()
        .state
        .live()
        .unwrap()
        .id;
    g.store.take();
    let changed = g
        .diary
        .change_entry(&id, retitle("Updated"), None, &meta())
        .await
        .unwrap();
    assert_eq!(
        g.store.take(),
        StoreCalls {
            stream_reads: 1,
            appends: 1,
            global_reads: 0,
        }
    );
    let history = g.diary.entry_history(&id).await.unwrap();
    assert_eq!(changed.updated_at, Some(history[1].recorded_at));
    assert_eq!(changed.created_at, Some(history[0].recorded_at));
    assert_eq!(changed.state.live().unwrap().title, "Updated");
}

#[tokio::test]
async fn a_change_pinned_to_an_old_version_is_refused() {
    let g = given_a_store().await;
    let user = g.user();
    let id = g
        .diary
        .write_entry(&user, draft(None), &meta())
        .await
        .unwrap()
        .state
        .live()
        .unwrap()
        .id;
    g.diary
        .change_entry(&id, retitle("one"), Some(1), &meta())
        .await
        .unwrap();
    let stale = g
        .diary
        .change_entry(&id, retitle("two"), Some(1), &meta())
        .await
        .unwrap_err();
    assert_eq!(stale.code, ErrorCode::PreconditionFailed);
    let stale = g
        .diary
        .delete_entry(&id, Some(1), &meta())
        .await
        .unwrap_err();
    assert_eq!(stale.code, ErrorCode::PreconditionFailed);
    assert_eq!(
        g.diary
            .entry(&id)
            .await
            .unwrap()
            .state
            .live()
            .unwrap()
            .title,
        "one"
    );
}

#[tokio::test]
async fn fifty_concurrent_updates_without_a_version_all_land() {
    let g = given_a_store().await;
    let user = g.user();
    let id = g
        .diary
        .write_entry(&user, draft(None), &meta())
        .await
        .unwrap()
        .state
        .live()
        .unwrap()
        .id;
    let diary = Arc::new(g.diary);
    let tasks: Vec<_> = (0..50)
        .map(|i| {
            let diary = Arc::clone(&diary);
            tokio::spawn(async move {
                diary
                    .change_entry(&id, retitle(&format!("title {i}")), None, &meta())
                    .await
            })
        })
        .collect();
    for task in tasks {
        task.await.unwrap().unwrap();
    }
    assert_eq!(diary.entry(&id).await.unwrap().version, Some(51));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_hundred_concurrent_writers_into_one_session_all_land() {
    let g = given_a_store().await;
    let user = g.user();
    let session = g
        .diary
        .start_session(&user, None, None, &meta())
        .await
        .unwrap();
    let session_id = session.state.session().unwrap().id;
    let diary = Arc::new(g.diary);
    let tasks: Vec<_> = (0..200)
        .map(|_| {
            let diary = Arc::clone(&diary);
            tokio::spawn(async move {
                diary
                    .write_entry(&user, draft(Some(session_id)), &meta())
                    .await
            })
        })
        .collect();
    for task in tasks {
        task.await.unwrap().unwrap();
    }
    let session = diary.session(&session_id).await.unwrap();
    // Started, then one DiarySessionEntryAdded per entry.
    assert_eq!(session.version, Some(201));
}

#[tokio::test]
async fn a_deleted_entry_is_gone_but_its_history_stays() {
    let g = given_a_store().await;
    let user = g.user();
    let id = g
        .diary
        .write_entry(&user, draft(None), &meta())
        .await
        .unwrap()
        .state
        .live()
        .unwrap()
        .id;
    let deleted = g.diary.delete_entry(&id, None, &meta()).await.unwrap();
    let history = g.diary.entry_history(&id).await.unwrap();
    assert_eq!(history.len(), 2);
    assert_eq!(deleted.updated_at, Some(history[1].recorded_at));
    assert_eq!(
        g.diary.entry(&id).await.unwrap_err().code,
        ErrorCode::NotFound
    );
    assert_eq!(
        g.diary
            .delete_entry(&id, None, &meta())
            .await
            .unwrap_err()
            .code,
        ErrorCode::NotFound
    );
}

#[tokio::test]
async fn a_time_range_may_be_an_instant_but_not_reversed() {
    let g = given_a_store().await;
    let user = g.user();
    let now = Utc::now();
    let page = PageRequest {
        offset: 0,
        limit: 10,
        cursor: None,
    };
    let instant = TimeRange {
        start: Some(now),
        end: Some(now),
    };
    assert!(
        g.diary
            .entries_by_user(&user, instant, &page, "")
            .await
            .unwrap()
            .items
            .is_empty()
    );
    let reversed = TimeRange {
        start: Some(now),
        end: Some(now - Duration::seconds(1)),
    };
    let error = g
        .diary
        .entries_by_user(&user, reversed, &page, "")
        .await
        .unwrap_err();
    assert_eq!(error.code, ErrorCode::InvalidArgument);
    assert_eq!(error.details[0].field, "startTime");
}

#[tokio::test]
async fn a_session_ends_once_and_not_before_it_started() {
    let g = given_a_store().await;
    let user = g.user();
    let start = Utc::now() - Duration::hours(2);
    let session = g
        .diary
        .start_session(&user, Some(start), None, &meta())
        .await
        .unwrap();
    let id = session.state.session().unwrap().id;
    let early = g
        .diary
        .end_session(&id, Some(start - Duration::minutes(1)), None, &meta())
        .await
        .unwrap_err();
    assert_eq!(early.details[0].field, "endTime");
    let ended = g
        .diary
        .end_session(&id, Some(start + Duration::hours(1)), None, &meta())
        .await
        .unwrap();
    assert_eq!(ended.state.session().unwrap().duration_minutes(), 60.0);
    let again = g
        .diary
        .end_session(&id, None, None, &meta())
        .await
        .unwrap_err();
    assert_eq!(again.code, ErrorCode::FailedPrecondition);
    let future = g
        .diary
        .start_session(&user, Some(Utc::now() + Duration::hours(1)), None, &meta())
        .await
        .unwrap_err();
    assert_eq!(future.details[0].field, "startTime");
}

#[tokio::test]
async fn no_entry_is_created_after_its_sessions_end() {
    let sqlite = scratch_sqlite_store(crate::codec()).await;
    let read_models = Arc::new(
        SqliteDiaryReadModels::new(sqlite.pool().clone())
            .await
            .unwrap(),
    );
    // The entry's writer is another process (its own store object): in one process, writers
    // of one session take turns and could not race like this.
    let elsewhere: Arc<dyn EventStore> = Arc::new(sqlite.clone());
    // The store holds back the first append of the session's end until told to go on: the
    // end has been decided (its time chosen) but not stored yet.
    let (go_on, held) = tokio::sync::oneshot::channel::<()>();
    let held = Arc::new(tokio::sync::Mutex::new(Some(held)));
    let reached = Arc::new(tokio::sync::Notify::new());
    let store = Arc::new(InterceptedStore::new(Arc::new(sqlite), {
        let reached = Arc::clone(&reached);
        move |writes: Vec<StreamWrite>, inner| {
            let (held, reached) = (Arc::clone(&held), Arc::clone(&reached));
            async move {
                let ends = writes
                    .iter()
                    .flat_map(|w| &w.events)
                    .any(|e| e.event_type == "DiarySessionEnded");
                if ends && let Some(go_on) = held.lock().await.take() {
                    reached.notify_one();
                    let _ = go_on.await;
                }
                inner.append_streams(writes).await
            }
        }
    }));
    let users = Arc::new(Registered::default());
    let writer = UserId::new();
    users.0.lock().unwrap().insert(writer);
    let diary = Arc::new(Diary::new(
        store.clone(),
        read_models.clone(),
        users.clone(),
    ));
    let other_process = Diary::new(elsewhere, read_models, users);
    let session = diary
        .start_session(&writer, None, None, &meta())
        .await
        .unwrap();
    let session_id = session.state.session().unwrap().id;

    // The end is decided now (its time is now) and held before it is stored ...
    let ending = tokio::spawn({
        let diary = Arc::clone(&diary);
        async move { diary.end_session(&session_id, None, None, &meta()).await }
    });
    reached.notified().await;
    // ... while an entry is written in the session, and stored first.
    tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    let entry = other_process
        .write_entry(&writer, draft(Some(session_id)), &meta())
        .await
        .unwrap();
    go_on.send(()).unwrap();
    let ended = ending.await.unwrap().unwrap();

    let end_time = ended.state.session().unwrap().end_time.unwrap();
    let created_at = entry.created_at.unwrap();
    assert!(
        created_at <= end_time,
        "the entry ({created_at}) was created after its session ended ({end_time})"
    );
    let history = diary.session_history(&session_id).await.unwrap();
    let types: Vec<_> = history.iter().map(|e| e.event_type.as_str()).collect();
    assert_eq!(
        types,
        [
            "DiarySessionStarted",
            "DiarySessionEntryAdded",
            "DiarySessionEnded"
        ]
    );
}

#[tokio::test]
async fn a_list_read_with_the_token_of_a_deletion_no_longer_shows_the_entry() {
    let g = given_a_store().await;
    let user = g.user();
    let written = g
        .diary
        .write_entry(&user, draft(None), &meta())
        .await
        .unwrap();
    let id = written.state.live().unwrap().id;
    g.projection.catch_up().await.unwrap();
    let deleted = g.diary.delete_entry(&id, None, &meta()).await.unwrap();
    // Without a token the list answers at once, from read models that lag the writes.
    let stale = g
        .diary
        .entries_by_user(&user, TimeRange::default(), &first_page(), "")
        .await
        .unwrap();
    assert_eq!(stale.items.len(), 1, "the read models were not fed yet");

    let feed_later = async {
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        g.projection.catch_up().await.unwrap();
    };
    let token = token_of(id, &deleted);
    let page = first_page();
    let (listed, ()) = tokio::join!(
        g.diary
            .entries_by_user(&user, TimeRange::default(), &page, &token),
        feed_later
    );
    assert!(listed.unwrap().items.is_empty());
    let analytics = g.diary.analytics(&user, &week(), &token).await.unwrap();
    assert_eq!(analytics.entry_count, 0);
}

#[tokio::test]
async fn sessions_and_analytics_wait_for_the_token_of_a_session_or_an_entry() {
    let g = given_a_store().await;
    let user = g.user();
    let started = g
        .diary
        .start_session(&user, None, None, &meta())
        .await
        .unwrap();
    let session_id = started.state.session().unwrap().id;
    let ended = g
        .diary
        .end_session(&session_id, None, None, &meta())
        .await
        .unwrap();
    let written = g
        .diary
        .write_entry(&user, draft(None), &meta())
        .await
        .unwrap();
    let entry_id = written.state.live().unwrap().id;

    let feed_later = async {
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        g.projection.catch_up().await.unwrap();
    };
    let session_token = token_of(session_id, &ended);
    let page = first_page();
    let (sessions, ()) = tokio::join!(
        g.diary.sessions_by_user(&user, &page, &session_token),
        feed_later
    );
    let sessions = sessions.unwrap();
    assert_eq!(sessions.items.len(), 1);
    assert!(sessions.items[0].state.end_time.is_some());
    assert_eq!(sessions.items[0].version, Some(2));
    let analytics = g
        .diary
        .analytics(&user, &week(), &token_of(entry_id, &written))
        .await
        .unwrap();
    assert_eq!((analytics.entry_count, analytics.session_count), (1, 1));
}

#[tokio::test]
async fn a_token_the_lists_do_not_reach_in_time_is_unavailable_or_names_no_write() {
    let g = given_a_store().await;
    let user = g.user();
    let written = g
        .diary
        .write_entry(&user, draft(None), &meta())
        .await
        .unwrap();
    let id = written.state.live().unwrap().id;
    g.projection.catch_up().await.unwrap();
    for token in [
        // A version the entry never reaches.
        format!("{id}:2"),
        // An id the read models never saw (its write may still be on its way).
        format!("{}:1", EntryId::new()),
    ] {
        let started = Instant::now();
        let error = g
            .diary
            .entries_by_user(&user, TimeRange::default(), &first_page(), &token)
            .await
            .unwrap_err();
        // Waited, then found in the store that no such write was made: the client's
        // mistake, not worth a retry.
        assert!(started.elapsed() >= READ_YOUR_WRITES, "{token}");
        assert_eq!(error.code, ErrorCode::InvalidArgument, "{token}");
        assert_eq!(error.retry_after, None);
        assert!(error.message.contains(&token), "{}", error.message);
    }
    let error = g
        .diary
        .sessions_by_user(&user, &first_page(), &format!("{id}:9"))
        .await
        .unwrap_err();
    assert_eq!(error.code, ErrorCode::InvalidArgument);
    // A write that was made and is not in the lists yet: unavailable, retry.
    let pending = g
        .diary
        .write_entry(&user, draft(None), &meta())
        .await
        .unwrap();
    let token = token_of(pending.state.live().unwrap().id, &pending);
    let error = g
        .diary
        .entries_by_user(&user, TimeRange::default(), &first_page(), &token)
        .await
        .unwrap_err();
    assert_eq!(error.code, ErrorCode::Unavailable);
    assert!(error.retry_after.is_some(), "a read may be retried");
}

#[tokio::test]
async fn a_malformed_token_is_invalid_at_once() {
    let g = given_a_store().await;
    let user = g.user();
    let started = Instant::now();
    for token in ["nope", "1", &format!("{user}:-1")] {
        let error = g
            .diary
            .entries_by_user(&user, TimeRange::default(), &first_page(), token)
            .await
            .unwrap_err();
        assert_eq!(error.code, ErrorCode::InvalidArgument, "{token}");
        assert_eq!(error.details[0].field, "consistencyToken");
        let error = g.diary.analytics(&user, &week(), token).await.unwrap_err();
        assert_eq!(error.details[0].field, "consistencyToken");
    }
    assert!(started.elapsed() < READ_YOUR_WRITES, "no wait");
}

/// The analyses recorded in an entry's stream, as (their version, the version analysed).
async fn analyses(g: &Given, id: &EntryId) -> Vec<(u64, u64)> {
    let history = g.diary.entry_history(id).await.unwrap();
    history
        .iter()
        .filter_map(
            |e| match event_sourcing::decode_event::<crate::domain::EntryEvent>(e) {
                Ok(crate::domain::EntryEvent::DiaryEntryAnalyzed(a)) => {
                    Some((e.stream_version, a.entry_version))
                }
                _ => None,
            },
        )
        .collect()
}

#[tokio::test]
async fn a_created_entry_gets_exactly_one_analysis_also_when_its_event_comes_twice() {
    use crate::analyzer::EntryAnalyzer;
    let g = given_a_store().await;
    let user = g.user();
    let written = g
        .diary
        .write_entry(&user, draft(None), &meta())
        .await
        .unwrap();
    let id = written.state.live().unwrap().id;
    let created = g.diary.entry_history(&id).await.unwrap().remove(0);
    let analyzer = EntryAnalyzer::new(g.store.clone(), g.read_models.clone());

    assert_eq!(
        analyzer.analyze(&created).await.unwrap(),
        Some(AnalysisOutcome::Recorded)
    );
    assert_eq!(
        analyzer.analyze(&created).await.unwrap(),
        Some(AnalysisOutcome::AlreadyRecorded)
    );
    assert_eq!(analyses(&g, &id).await, [(2, 1)]);
    // Two analyzers on one event at once (a Kafka rebalance): still one.
    let again = g
        .diary
        .change_entry(
            &id,
            EntryChanges {
                content: Some("A new day, and a better one.".into()),
                ..EntryChanges::default()
            },
            None,
            &meta(),
        )
        .await
        .unwrap();
    let updated = g.diary.entry_history(&id).await.unwrap().remove(2);
    assert_eq!(updated.stream_version, again.version.unwrap());
    let other = EntryAnalyzer::new(g.store.clone(), g.read_models.clone());
    let (a, b) = tokio::join!(analyzer.analyze(&updated), other.analyze(&updated));
    let mut outcomes = [a.unwrap().unwrap(), b.unwrap().unwrap()];
    outcomes.sort_by_key(|o| *o != AnalysisOutcome::Recorded);
    assert_eq!(outcomes[0], AnalysisOutcome::Recorded);
    assert_ne!(outcomes[1], AnalysisOutcome::Recorded);
    assert_eq!(analyses(&g, &id).await, [(2, 1), (4, 3)]);

    let entry = g.diary.entry(&id).await.unwrap();
    let analysis = entry.state.live().unwrap().analysis.clone().unwrap();
    assert_eq!(analysis.entry_version, 3);
    assert!(analysis.token_count > 0);
    // Other events are not analysed; an outdated one records nothing.
    assert_eq!(
        analyzer.analyze(&created).await.unwrap(),
        Some(AnalysisOutcome::Outdated)
    );
    let latest = g.diary.entry_history(&id).await.unwrap().remove(3);
    assert_eq!(analyzer.analyze(&latest).await.unwrap(), None);
}

#[tokio::test]
async fn the_analyzer_follows_the_store_skips_deleted_entries_and_replays_idempotently() {
    use crate::analyzer::EntryAnalyzer;
    let g = given_a_store().await;
    let user = g.user();
    let kept = g
        .diary
        .write_entry(&user, draft(None), &meta())
        .await
        .unwrap();
    let kept = kept.state.live().unwrap().id;
    let gone = g
        .diary
        .write_entry(&user, draft(None), &meta())
        .await
        .unwrap();
    let gone = gone.state.live().unwrap().id;
    g.diary.delete_entry(&gone, None, &meta()).await.unwrap();
    let sqlite: Arc<dyn EventStore> = g.store.clone();
    let runner = |checkpoints| {
        ProjectionRunner::new(
            sqlite.clone(),
            checkpoints,
            Arc::new(EntryAnalyzer::new(g.store.clone(), g.read_models.clone())),
        )
    };
    let checkpoints: Arc<dyn event_sourcing::CheckpointStore> = g.checkpoints.clone();
    runner(checkpoints.clone()).catch_up().await.unwrap();
    assert_eq!(analyses(&g, &kept).await, [(2, 1)]);
    assert_eq!(analyses(&g, &gone).await, []);
    // From position zero again (a rebuild, or a checkpoint lost): nothing more.
    runner(checkpoints.clone()).rebuild().await.unwrap();
    assert_eq!(analyses(&g, &kept).await, [(2, 1)]);
    assert_eq!(analyses(&g, &gone).await, []);
}

fn at(text: &str) -> DateTime<Utc> {
    text.parse().unwrap()
}

/// An entry written at `when`, with `tokens` tokens and `tags`.
fn written_at(when: &str, tokens: u32, tags: &[&str]) -> EntryDraft {
    EntryDraft {
        created_at: Some(at(when)),
        token_count: Some(tokens),
        tags: tags.iter().map(|t| t.to_string()).collect(),
        ..draft(None)
    }
}

fn window(from: &str, to: &str, zone: &str) -> AnalyticsQuery {
    AnalyticsQuery {
        period: String::new(),
        from: Some(at(from)),
        to: Some(at(to)),
        time_zone: zone.into(),
    }
}

#[tokio::test]
async fn an_entry_may_be_backdated_but_not_dated_ahead_nor_before_its_session() {
    let g = given_a_store().await;
    let user = g.user();
    let written = g
        .diary
        .write_entry(&user, written_at("2024-03-05T18:20:00Z", 10, &[]), &meta())
        .await
        .unwrap();
    let entry = written.state.live().unwrap();
    assert_eq!(entry.written_at, Some(at("2024-03-05T18:20:00Z")));
    let reread = g.diary.entry(&entry.id).await.unwrap();
    assert_eq!(reread.state.live().unwrap().written_at, entry.written_at);
    g.projection.catch_up().await.unwrap();
    let listed = g
        .diary
        .entries_by_user(&user, TimeRange::default(), &first_page(), "")
        .await
        .unwrap();
    assert_eq!(listed.items[0].created_at, Some(at("2024-03-05T18:20:00Z")));

    let ahead = EntryDraft {
        created_at: Some(Utc::now() + Duration::minutes(10)),
        ..draft(None)
    };
    let error = g
        .diary
        .write_entry(&user, ahead, &meta())
        .await
        .unwrap_err();
    assert_eq!(error.code, ErrorCode::InvalidArgument);
    assert_eq!(error.details[0].field, "createdAt");

    let session = g
        .diary
        .start_session(&user, Some(at("2024-03-05T10:00:00Z")), None, &meta())
        .await
        .unwrap();
    let session_id = session.state.session().unwrap().id;
    let before = EntryDraft {
        session_id: Some(session_id),
        ..written_at("2024-03-05T09:59:00Z", 1, &[])
    };
    let error = g
        .diary
        .write_entry(&user, before, &meta())
        .await
        .unwrap_err();
    assert_eq!(error.details[0].field, "createdAt");
    let inside = EntryDraft {
        session_id: Some(session_id),
        ..written_at("2024-03-05T10:30:00Z", 1, &[])
    };
    assert!(g.diary.write_entry(&user, inside, &meta()).await.is_ok());
}

#[tokio::test]
async fn analytics_count_what_was_written_on_the_days_of_the_zone() {
    let g = given_a_store().await;
    let user = g.user();
    // 23:50 in Kolkata (UTC+05:30) on the 5th; then the 6th, 7th; a gap; the 9th and 10th.
    let mut ids = Vec::new();
    for (when, tokens, tags) in [
        ("2024-03-05T18:20:00Z", 10, &["Work"][..]),
        ("2024-03-06T04:00:00Z", 20, &["work", "gratitude"][..]),
        ("2024-03-07T04:00:00Z", 30, &[][..]),
        ("2024-03-09T04:00:00Z", 40, &["gratitude"][..]),
        ("2024-03-10T04:00:00Z", 50, &[][..]),
        // Long before the window: outside every count.
        ("2022-01-01T04:00:00Z", 1000, &["old"][..]),
    ] {
        let written = g
            .diary
            .write_entry(&user, written_at(when, tokens, tags), &meta())
            .await
            .unwrap();
        ids.push(written.state.live().unwrap().id);
    }
    let session = g
        .diary
        .start_session(&user, Some(at("2024-03-06T03:00:00Z")), None, &meta())
        .await
        .unwrap();
    let session_id = session.state.session().unwrap().id;
    g.diary
        .end_session(&session_id, Some(at("2024-03-06T03:45:00Z")), None, &meta())
        .await
        .unwrap();
    g.projection.catch_up().await.unwrap();

    let kolkata = window(
        "2024-03-01T00:00:00Z",
        "2024-03-11T00:00:00Z",
        "Asia/Kolkata",
    );
    let a = g.diary.analytics(&user, &kolkata, "").await.unwrap();
    assert_eq!(a.window.period, "custom");
    assert_eq!((a.entry_count, a.total_tokens), (5, 150));
    assert_eq!((a.session_count, a.total_session_minutes), (1, 45.0));
    let written: Vec<(String, u32)> = a
        .days
        .iter()
        .filter(|d| d.entries > 0)
        .map(|d| (d.date.to_string(), d.entries))
        .collect();
    let day = |d: &str| (d.to_owned(), 1);
    assert_eq!(
        written,
        [
            day("2024-03-05"),
            day("2024-03-06"),
            day("2024-03-07"),
            day("2024-03-09"),
            day("2024-03-10")
        ]
    );
    assert_eq!(
        (a.writing_days, a.longest_streak, a.current_streak),
        (5, 3, 2)
    );
    assert_eq!(
        a.tag_frequencies,
        [("gratitude".to_owned(), 2), ("work".to_owned(), 2)]
    );
    // In UTC the 23:50 entry is on the 5th too, but the gap day differs nowhere: same days.
    let utc = window("2024-03-01T00:00:00Z", "2024-03-11T00:00:00Z", "");
    let u = g.diary.analytics(&user, &utc, "").await.unwrap();
    assert_eq!(u.window.zone.name(), "UTC");
    assert_eq!(u.days.len(), 10);

    // A current streak counts back past the window's start.
    let short = window(
        "2024-03-06T18:30:00Z",
        "2024-03-07T18:30:00Z",
        "Asia/Kolkata",
    );
    let s = g.diary.analytics(&user, &short, "").await.unwrap();
    assert_eq!((s.writing_days, s.current_streak), (1, 3));

    // Updating an entry changes its day; deleting one takes it out.
    g.diary
        .change_entry(
            &ids[1],
            EntryChanges {
                token_count: Some(25),
                ..EntryChanges::default()
            },
            None,
            &meta(),
        )
        .await
        .unwrap();
    g.diary.delete_entry(&ids[2], None, &meta()).await.unwrap();
    g.projection.catch_up().await.unwrap();
    let a = g.diary.analytics(&user, &kolkata, "").await.unwrap();
    assert_eq!((a.entry_count, a.total_tokens), (4, 125));
    assert_eq!((a.longest_streak, a.current_streak), (2, 2));

    // Every event applied again changes nothing.
    let before = g.diary.analytics(&user, &kolkata, "").await.unwrap();
    let events = g.store.read_all(0, 10_000).await.unwrap();
    for event in &events {
        event_sourcing::Projection::apply(g.read_models.as_ref(), event)
            .await
            .unwrap();
    }
    assert_eq!(
        g.diary.analytics(&user, &kolkata, "").await.unwrap(),
        before
    );

    // A year's window reads only its buckets: the entry of 2022 is not among them.
    let buckets = g
        .read_models
        .buckets(
            &user,
            at("2023-06-01T00:00:00Z"),
            at("2024-06-01T00:00:00Z"),
        )
        .await
        .unwrap();
    assert_eq!(buckets.len(), 5, "four entries' buckets and the session's");
    let year = AnalyticsQuery {
        period: "year".into(),
        to: Some(at("2024-06-01T00:00:00Z")),
        ..AnalyticsQuery::default()
    };
    let y = g.diary.analytics(&user, &year, "").await.unwrap();
    // 2023-06-02 to 2024-05-31: 365 days back from the end.
    assert_eq!((y.entry_count, y.days.len()), (4, 365));
}

#[tokio::test]
async fn bad_windows_and_zones_are_refused_naming_the_field() {
    let g = given_a_store().await;
    let user = g.user();
    let field = |q: AnalyticsQuery| {
        let diary = &g.diary;
        async move {
            diary.analytics(&user, &q, "").await.unwrap_err().details[0]
                .field
                .clone()
        }
    };
    let zone = AnalyticsQuery {
        time_zone: "Mars/Olympus".into(),
        ..week()
    };
    assert_eq!(field(zone).await, "timeZone");
    assert_eq!(
        field(window("2024-03-02T00:00:00Z", "2024-03-01T00:00:00Z", "")).await,
        "from"
    );
    assert_eq!(
        field(window("2022-03-02T00:00:00Z", "2024-03-01T00:00:00Z", "")).await,
        "to"
    );
}

#[tokio::test]
async fn an_analysis_counts_once_awaited_and_goes_when_analysis_is_switched_off() {
    use crate::analyzer::EntryAnalyzer;
    let g = given_a_store().await;
    let user = g.user();
    let text = "I think about why the garden looks so bright and green in the morning light. \
        I hear the birds singing and feel the warm sun on my skin. Tomorrow I will plan a \
        walk along the river, because I wonder what I will see there and what I will learn. \
        It was a wonderful, happy day and I am grateful for it.";
    let written = g
        .diary
        .write_entry(
            &user,
            EntryDraft {
                content: text.into(),
                token_count: None,
                ..draft(None)
            },
            &meta(),
        )
        .await
        .unwrap();
    let id = written.state.live().unwrap().id;
    let created = g.diary.entry_history(&id).await.unwrap().remove(0);
    EntryAnalyzer::new(g.store.clone(), g.read_models.clone())
        .analyze(&created)
        .await
        .unwrap();
    let analysed = g.diary.entry(&id).await.unwrap();
    let token = token_of(id, &analysed);
    let feed_later = async {
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        g.projection.catch_up().await.unwrap();
    };
    let query = week();
    let (a, ()) = tokio::join!(g.diary.analytics(&user, &query, &token), feed_later);
    let a = a.unwrap();
    assert!(a.analysis_enabled);
    assert!(a.word_count > 50, "{}", a.word_count);
    assert!(a.mean_sentiment.unwrap() > 0.5);
    assert!(!a.top_keywords.is_empty());
    let profile = a.profile.unwrap();
    assert_eq!(profile.entries, 1);
    assert!(matches!(
        profile.sensory,
        analysis::SensoryProfile::Measured(_)
    ));
    assert!(matches!(
        profile.archetypes,
        analysis::ArchetypeSignals::Measured { .. }
    ));

    // The writer switches analysis off: counts stay, nothing derived from the text does.
    let off = g
        .diary
        .set_analysis_setting(&user, false, &meta())
        .await
        .unwrap();
    assert_eq!(off.version, Some(1));
    g.projection.catch_up().await.unwrap();
    let a = g
        .diary
        .analytics(&user, &week(), &format!("{user}:1"))
        .await
        .unwrap();
    assert!(!a.analysis_enabled);
    assert_eq!(a.entry_count, 1);
    assert!(a.word_count > 50, "counts stay");
    assert_eq!((a.mean_sentiment, a.profile), (None, None));
    assert!(a.top_keywords.is_empty());
    let rows: Vec<Option<String>> =
        sqlx::query_scalar("SELECT analysis FROM diary_entry_read_model WHERE user_id = ?")
            .bind(user.to_string())
            .fetch_all(g.read_models.pool())
            .await
            .unwrap();
    assert_eq!(rows, [None], "the stored summary is gone");

    // An entry written while analysis is off counts its words all the same.
    let before = a.word_count;
    let quiet = EntryDraft {
        content: "Seven words written while analysis was off.".into(),
        ..draft(None)
    };
    g.diary.write_entry(&user, quiet, &meta()).await.unwrap();
    g.projection.catch_up().await.unwrap();
    let a = g.diary.analytics(&user, &week(), "").await.unwrap();
    assert_eq!((a.entry_count, a.word_count), (2, before + 7));
}

#[tokio::test]
async fn switching_analysis_off_hides_every_analysis_and_on_analyses_every_entry_again() {
    use crate::analyzer::EntryAnalyzer;
    let g = given_a_store().await;
    let (user, other) = (g.user(), g.user());
    let mut ids = Vec::new();
    for writer in [user, user, other] {
        let written = g
            .diary
            .write_entry(&writer, draft(None), &meta())
            .await
            .unwrap();
        ids.push(written.state.live().unwrap().id);
    }
    let sqlite: Arc<dyn EventStore> = g.store.clone();
    let analyzer = ProjectionRunner::new(
        sqlite.clone(),
        g.checkpoints.clone(),
        Arc::new(EntryAnalyzer::new(g.store.clone(), g.read_models.clone())),
    );
    g.projection.catch_up().await.unwrap();
    analyzer.catch_up().await.unwrap();
    for id in &ids {
        assert!(
            g.diary
                .entry(id)
                .await
                .unwrap()
                .state
                .live()
                .unwrap()
                .analysis
                .is_some()
        );
    }
    // A stranger's setting cannot be read or changed.
    let stranger = UserId::new();
    let refused = g
        .diary
        .set_analysis_setting(&stranger, false, &meta())
        .await;
    assert_eq!(refused.unwrap_err().code, ErrorCode::NotFound);

    // Off: the writer's analyses disappear from every read, the other writer's stay.
    let off = g
        .diary
        .set_analysis_setting(&user, false, &meta())
        .await
        .unwrap();
    assert!(!off.state.enabled());
    assert_eq!(off.version, Some(1));
    let again = g
        .diary
        .set_analysis_setting(&user, false, &meta())
        .await
        .unwrap();
    assert_eq!(again.version, Some(1), "the same value records nothing");
    for id in &ids[..2] {
        let entry = g.diary.entry(id).await.unwrap();
        assert!(entry.state.live().unwrap().analysis.is_none());
        let history = g.diary.entry_history(id).await.unwrap();
        let analysed: Vec<_> = history
            .iter()
            .filter(|e| e.event_type == "DiaryEntryAnalyzed")
            .collect();
        assert_eq!(analysed.len(), 1);
        assert_eq!(
            analysed[0].payload,
            serde_json::json!({"erased": "the user switched analysis off"})
        );
    }
    assert!(
        g.diary
            .entry(&ids[2])
            .await
            .unwrap()
            .state
            .live()
            .unwrap()
            .analysis
            .is_some()
    );

    // While off, a new entry is not analysed.
    let quiet = g
        .diary
        .write_entry(&user, draft(None), &meta())
        .await
        .unwrap();
    let quiet = quiet.state.live().unwrap().id;
    g.projection.catch_up().await.unwrap();
    analyzer.catch_up().await.unwrap();
    assert_eq!(analyses(&g, &quiet).await, []);

    // On: every live entry of the writer is analysed again, under the new setting version;
    // the analysis made before the switch off stays void.
    let on = g
        .diary
        .set_analysis_setting(&user, true, &meta())
        .await
        .unwrap();
    assert!(on.state.enabled());
    assert_eq!(on.version, Some(2));
    g.projection.catch_up().await.unwrap();
    analyzer.catch_up().await.unwrap();
    for id in [ids[0], ids[1], quiet] {
        let entry = g.diary.entry(&id).await.unwrap();
        let analysis = entry.state.live().unwrap().analysis.clone();
        assert_eq!(analysis.map(|a| a.setting_version), Some(2), "{id}");
        let history = g.diary.entry_history(&id).await.unwrap();
        let shown: Vec<_> = history
            .iter()
            .filter(|e| e.event_type == "DiaryEntryAnalyzed")
            .map(|e| e.payload.get("erased").is_some())
            .collect();
        let expected: &[bool] = if id == quiet {
            &[false]
        } else {
            &[true, false]
        };
        assert_eq!(shown, expected, "{id}");
    }
    // Replaying the switch (a redelivery, a rebuild) records nothing more.
    analyzer.rebuild().await.unwrap();
    for (id, expected) in [(ids[0], 2), (ids[2], 1)] {
        let history = g.diary.entry_history(&id).await.unwrap();
        let recorded = history
            .iter()
            .filter(|e| e.event_type == "DiaryEntryAnalyzed")
            .count();
        assert_eq!(recorded, expected, "{id}");
    }
}

#[tokio::test]
async fn a_reanalysis_records_what_an_older_analyzer_measured_again_and_only_that() {
    use crate::analyzer::EntryAnalyzer;
    use crate::domain::{EntryCommand, analyze_content};
    let g = given_a_store().await;
    let user = g.user();
    let mut ids = Vec::new();
    for _ in 0..3 {
        let written = g
            .diary
            .write_entry(&user, draft(None), &meta())
            .await
            .unwrap();
        ids.push(written.state.live().unwrap().id);
    }
    // The first entry was analysed by an older analyzer; the second by this one; the third
    // not at all yet.
    let entries = Repository::<EntryState>::new(g.store.clone());
    let mut old = analyze_content(user, 1, 0, "Today was a good day...");
    old.analyzer_version = "0".into();
    entries
        .execute(
            &ids[0],
            &EntryCommand::RecordAnalysis(Box::new(old)),
            &meta(),
            None,
        )
        .await
        .unwrap();
    let current = analyze_content(user, 1, 0, "Today was a good day...");
    entries
        .execute(
            &ids[1],
            &EntryCommand::RecordAnalysis(Box::new(current)),
            &meta(),
            None,
        )
        .await
        .unwrap();
    g.projection.catch_up().await.unwrap();

    let analyzer = EntryAnalyzer::new(g.store.clone(), g.read_models.clone());
    let mut batches = 0;
    let done = analyzer
        .reanalyze_all(g.store.as_ref(), |_| batches += 1)
        .await
        .unwrap();
    assert_eq!((done.recorded, done.current, done.skipped), (2, 1, 0));
    assert!(batches >= 1);
    for id in &ids {
        let entry = g.diary.entry(id).await.unwrap();
        let analysis = entry.state.live().unwrap().analysis.clone().unwrap();
        assert_eq!(
            analysis.analyzer_version,
            analysis::ANALYZER_VERSION,
            "{id}"
        );
    }
    // Again: everything is current, nothing recorded.
    let again = analyzer
        .reanalyze_all(g.store.as_ref(), |_| {})
        .await
        .unwrap();
    assert_eq!((again.recorded, again.current), (0, 3));
}

#[tokio::test]
async fn a_current_streak_of_years_is_counted_to_its_first_day() {
    let g = given_a_store().await;
    let user = g.user();
    let now = Utc::now();
    // One entry a day for the last 500 days, but none 430 days ago: the streak is read back
    // in chunks of 61, 122 and 244 days, and stops at the gap inside the fourth.
    for day in (0..500).filter(|d| *d != 430) {
        let entry = EntryDraft {
            created_at: Some(now - Duration::days(day) - Duration::minutes(1)),
            ..draft(None)
        };
        g.diary.write_entry(&user, entry, &meta()).await.unwrap();
    }
    g.projection.catch_up().await.unwrap();
    for zone in ["UTC", "Pacific/Kiritimati", "America/Los_Angeles"] {
        let query = AnalyticsQuery {
            period: "week".into(),
            time_zone: zone.into(),
            ..AnalyticsQuery::default()
        };
        let a = g.diary.analytics(&user, &query, "").await.unwrap();
        // Entries 24 hours apart fall on consecutive days of the zone except across a change
        // of its clock: the expected run is counted from the entries' days in the zone.
        let tz: chrono_tz::Tz = zone.parse().unwrap();
        let days: std::collections::BTreeSet<chrono::NaiveDate> = (0..500)
            .filter(|d| *d != 430)
            .map(|d| {
                (now - Duration::days(d) - Duration::minutes(1))
                    .with_timezone(&tz)
                    .date_naive()
            })
            .collect();
        let mut day = now.with_timezone(&tz).date_naive();
        let mut expected = 0;
        while days.contains(&day) {
            expected += 1;
            day = day.pred_opt().unwrap();
        }
        if zone == "UTC" {
            assert_eq!(expected, 430);
        }
        assert_eq!(a.current_streak, expected, "{zone}");
    }
}

#[tokio::test]
async fn the_current_streak_counts_the_whole_first_day_of_a_window_that_starts_within_it() {
    let g = given_a_store().await;
    let user = g.user();
    let now = Utc::now();
    // One entry a day for 20 days, each 20 minutes before this time of day: the week's
    // window starts after that day's entry (its first day is partly outside it).
    for day in 0..20 {
        let entry = EntryDraft {
            created_at: Some(now - Duration::days(day) - Duration::minutes(20)),
            ..draft(None)
        };
        g.diary.write_entry(&user, entry, &meta()).await.unwrap();
    }
    g.projection.catch_up().await.unwrap();
    for (period, days_in_window) in [("day", 1), ("week", 7), ("month", 20)] {
        let query = AnalyticsQuery {
            period: period.into(),
            ..AnalyticsQuery::default()
        };
        let a = g.diary.analytics(&user, &query, "").await.unwrap();
        assert_eq!(a.current_streak, 20, "{period}");
        assert!(
            a.entry_count >= days_in_window,
            "{period}: {}",
            a.entry_count
        );
    }
}

#[tokio::test]
async fn client_times_are_kept_to_the_microsecond_as_lists_keep_them() {
    let g = given_a_store().await;
    let user = g.user();
    let entry = EntryDraft {
        created_at: Some(at("2023-01-01T10:00:00.000000900Z")),
        ..draft(None)
    };
    let written = g.diary.write_entry(&user, entry, &meta()).await.unwrap();
    let id = written.state.live().unwrap().id;
    let history = g.diary.entry_history(&id).await.unwrap();
    assert_eq!(history[0].payload["createdAt"], "2023-01-01T10:00:00Z");
    g.projection.catch_up().await.unwrap();
    // A range starting after the microsecond does not hold it.
    let range = TimeRange {
        start: Some(at("2023-01-01T10:00:00.000000500Z")),
        end: Some(at("2023-01-01T10:00:01Z")),
    };
    let listed = g
        .diary
        .entries_by_user(&user, range, &first_page(), "")
        .await
        .unwrap();
    assert!(listed.items.is_empty());
    let session = g
        .diary
        .start_session(
            &user,
            Some(at("2023-01-01T09:00:00.123456789Z")),
            None,
            &meta(),
        )
        .await
        .unwrap();
    let started = session.state.session().unwrap().start_time;
    assert_eq!(started, at("2023-01-01T09:00:00.123456Z"));
}

#[tokio::test]
async fn a_retried_write_under_its_idempotency_key_answers_the_first_one() {
    let g = given_a_store().await;
    let user = g.user();
    let keyed = |key: &str| EntryDraft {
        idempotency_key: Some(key.into()),
        ..draft(None)
    };
    let first = g
        .diary
        .write_entry(&user, keyed("k-1"), &meta())
        .await
        .unwrap();
    let again = g
        .diary
        .write_entry(&user, keyed("k-1"), &meta())
        .await
        .unwrap();
    let id = first.state.live().unwrap().id;
    assert_eq!(again.state.live().unwrap().id, id);
    assert_eq!(again.version, first.version);
    // Retried at the same time: one entry still.
    let metadata = meta();
    let (a, b) = tokio::join!(
        g.diary.write_entry(&user, keyed("k-2"), &metadata),
        g.diary.write_entry(&user, keyed("k-2"), &metadata)
    );
    assert_eq!(
        a.unwrap().state.live().unwrap().id,
        b.unwrap().state.live().unwrap().id
    );
    // Another key, or another draft under the same key, is another entry.
    let other = g
        .diary
        .write_entry(&user, keyed("k-3"), &meta())
        .await
        .unwrap();
    assert_ne!(other.state.live().unwrap().id, id);
    let changed = EntryDraft {
        content: "Something else".into(),
        ..keyed("k-1")
    };
    let changed = g.diary.write_entry(&user, changed, &meta()).await.unwrap();
    assert_ne!(changed.state.live().unwrap().id, id);
    // Four entries: k-1 and k-2 once each, k-3, and the changed draft.
    g.projection.catch_up().await.unwrap();
    let listed = g
        .read_models
        .entries_by_user(&user, TimeRange::default(), &first_page())
        .await
        .unwrap();
    assert_eq!(listed.items.len(), 4);
    // Another writer's key of the same text is theirs.
    let other_user = g.user();
    let theirs = g
        .diary
        .write_entry(&other_user, keyed("k-1"), &meta())
        .await
        .unwrap();
    assert_ne!(theirs.state.live().unwrap().id, id);
    // Sessions too.
    let s1 = g
        .diary
        .start_session(&user, None, Some("s-1"), &meta())
        .await
        .unwrap();
    let s2 = g
        .diary
        .start_session(&user, None, Some("s-1"), &meta())
        .await
        .unwrap();
    assert_eq!(s1.state, s2.state);
    // A deleted entry is not answered again.
    g.diary.delete_entry(&id, None, &meta()).await.unwrap();
    let error = g
        .diary
        .write_entry(&user, keyed("k-1"), &meta())
        .await
        .unwrap_err();
    assert_eq!(error.code, ErrorCode::NotFound);
}

#[tokio::test]
async fn a_token_naming_no_write_is_refused_rather_than_waited_for_again() {
    let g = given_a_store().await;
    let user = g.user();
    let written = g
        .diary
        .write_entry(&user, draft(None), &meta())
        .await
        .unwrap();
    let id = written.state.live().unwrap().id;
    // A write that was made, not yet projected: retry later.
    let pending = g
        .diary
        .entries_by_user(
            &user,
            TimeRange::default(),
            &first_page(),
            &token_of(id, &written),
        )
        .await
        .unwrap_err();
    assert_eq!(pending.code, ErrorCode::Unavailable);
    // Made up: an id nobody wrote, or a version the entry never reached.
    for token in [format!("{}:1", uuid::Uuid::new_v4()), format!("{id}:9")] {
        let error = g
            .diary
            .entries_by_user(&user, TimeRange::default(), &first_page(), &token)
            .await
            .unwrap_err();
        assert_eq!(error.code, ErrorCode::InvalidArgument, "{token}");
        assert_eq!(error.details[0].field, "consistencyToken");
    }
}

#[tokio::test]
async fn a_diary_is_erased_only_with_its_user_and_then_reads_as_gone() {
    let g = given_a_store().await;
    let user = g.user();
    let written = g
        .diary
        .write_entry(&user, draft(None), &meta())
        .await
        .unwrap();
    let id = written.state.live().unwrap().id;

    let refused = g.diary.erase_diary(&user, &meta()).await.unwrap_err();
    assert_eq!(refused.code, ErrorCode::FailedPrecondition, "{refused:?}");
    assert_eq!(refused.details[0].field, "userId");
    assert!(
        g.diary.entry(&id).await.is_ok(),
        "a living user keeps their diary"
    );

    g.users.0.lock().unwrap().remove(&user);
    g.diary.erase_diary(&user, &meta()).await.unwrap();
    g.diary.erase_diary(&user, &meta()).await.unwrap();
    let gone = g.diary.entry(&id).await.unwrap_err();
    assert_eq!(gone.code, ErrorCode::NotFound, "{gone:?}");
    let erasures = read_full_stream(
        g.store.as_ref(),
        AnalysisSettingState::stream_name(&user).as_str(),
    )
    .await
    .unwrap()
    .into_iter()
    .filter(|e| e.event_type == "DiaryErased")
    .count();
    assert_eq!(erasures, 1, "erasing twice records one DiaryErased");
}

/// Every window's totals as the read models read them (per day, cut days per quarter hour)
/// against the same totals summed from the quarter hours; and the days as stored against
/// the days summed again from the quarter hours.
async fn assert_days_agree_with_quarter_hours(g: &Given, user: &UserId, seed: &mut u64) {
    use crate::read_model::DiaryReadModels;
    let mut next = move |n: i64| {
        *seed = seed
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        ((*seed >> 33) as i64).rem_euclid(n)
    };
    let origin = at("2024-02-25T00:00:00Z").timestamp_micros();
    let quarter = analytics::BUCKET_MICROS;
    for _ in 0..60 {
        let start = origin + next(50 * 96) * quarter;
        let end = start + (1 + next(45 * 96)) * quarter;
        let (start, end) = (
            DateTime::from_timestamp_micros(start).unwrap(),
            DateTime::from_timestamp_micros(end).unwrap(),
        );
        let by_day = g.read_models.window_totals(user, start, end).await.unwrap();
        let buckets = g.read_models.buckets(user, start, end).await.unwrap();
        assert_eq!(
            by_day,
            analytics::WindowTotals::of(&buckets),
            "{start}..{end}"
        );
        let written = g
            .read_models
            .writing_quarters(user, start, end)
            .await
            .unwrap();
        let expected: Vec<i64> = by_day.quarters.iter().map(|(b, _)| *b).collect();
        assert_eq!(written, expected);
    }
    let days = |pool: sqlx::SqlitePool| async move {
        sqlx::query_as::<_, (String, i64, String, String, Vec<u8>)>(
            "SELECT user_id, day, totals, quarters, written FROM diary_analytics_days \
             ORDER BY user_id, day",
        )
        .fetch_all(&pool)
        .await
        .unwrap()
        .into_iter()
        .map(|(u, d, t, q, w)| {
            let t: analytics::BucketTotals = serde_json::from_str(&t).unwrap();
            let q = analytics::DayRollup::quarters_from_json(d, &q).unwrap();
            let marked: Vec<i64> = analytics::DayRollup::written_from_mask(d, &w).collect();
            let with_entries: Vec<i64> = q
                .iter()
                .filter(|(_, c)| c.entries > 0)
                .map(|(b, _)| *b)
                .collect();
            assert_eq!(marked, with_entries, "the written mask of day {d}");
            (u, d, t, q)
        })
        .collect::<Vec<_>>()
    };
    let pool = g.read_models.pool().clone();
    let kept = days(pool.clone()).await;
    assert!(!kept.is_empty());
    sqlx::query("DROP TABLE diary_analytics_days")
        .execute(&pool)
        .await
        .unwrap();
    SqliteDiaryReadModels::new(pool.clone()).await.unwrap();
    assert_eq!(
        days(pool).await,
        kept,
        "the days summed again from the quarter hours"
    );
}

#[tokio::test]
async fn analytics_kept_per_day_agree_with_the_quarter_hours_through_every_change() {
    use crate::analyzer::EntryAnalyzer;
    let g = given_a_store().await;
    let user = g.user();
    let mut seed = 7u64;
    let mut roll = |n: i64| {
        seed = seed
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        ((seed >> 33) as i64).rem_euclid(n)
    };
    let words = [
        "happy", "sad", "saw", "heard", "felt", "think", "plan", "garden", "rain",
    ];
    let origin = at("2024-03-01T00:00:00Z");
    let mut ids = Vec::new();
    for i in 0..80 {
        // Several entries share quarter hours and days; some fall on the window's edges.
        let when = origin + Duration::minutes(roll(40 * 24 * 4) * 15 + roll(15));
        let content: Vec<&str> = (0..8).map(|_| words[roll(9) as usize]).collect();
        let tag = ["Work", "work", "home"][roll(3) as usize];
        let mut entry = written_at(&when.to_rfc3339(), 10 + i, &[tag]);
        entry.content = format!("I {}.", content.join(" "));
        let written = g.diary.write_entry(&user, entry, &meta()).await.unwrap();
        ids.push(written.state.live().unwrap().id);
    }
    for day in [3, 9, 9, 20] {
        let start = origin + Duration::days(day) + Duration::minutes(roll(600));
        let s = g
            .diary
            .start_session(&user, Some(start), None, &meta())
            .await
            .unwrap();
        let end = start + Duration::minutes(7 + roll(200));
        g.diary
            .end_session(&s.state.session().unwrap().id, Some(end), None, &meta())
            .await
            .unwrap();
    }
    let store: Arc<dyn EventStore> = g.store.clone();
    let analyzer = ProjectionRunner::new(
        store,
        g.checkpoints.clone(),
        Arc::new(EntryAnalyzer::new(g.store.clone(), g.read_models.clone())),
    );
    g.projection.catch_up().await.unwrap();
    analyzer.catch_up().await.unwrap();
    g.projection.catch_up().await.unwrap();
    assert_days_agree_with_quarter_hours(&g, &user, &mut seed).await;

    // Changed words and tags, deletions, analyses of the new words.
    for (i, id) in ids.iter().enumerate().filter(|(i, _)| i % 3 == 0) {
        let changes = EntryChanges {
            content: Some("A quiet, grateful evening in the garden.".into()),
            tags: Some(vec![format!("changed{}", i % 2)]),
            ..EntryChanges::default()
        };
        g.diary
            .change_entry(id, changes, None, &meta())
            .await
            .unwrap();
    }
    for id in ids.iter().skip(1).step_by(5) {
        g.diary.delete_entry(id, None, &meta()).await.unwrap();
    }
    g.projection.catch_up().await.unwrap();
    analyzer.catch_up().await.unwrap();
    g.projection.catch_up().await.unwrap();
    assert_days_agree_with_quarter_hours(&g, &user, &mut seed).await;
    let a = g
        .diary
        .analytics(
            &user,
            &window("2024-02-25T00:00:00Z", "2024-04-20T00:00:00Z", ""),
            "",
        )
        .await
        .unwrap();
    assert_eq!(a.entry_count, 80 - 16);
    assert!(a.mean_sentiment.is_some() && a.profile.is_some());

    // Analysis switched off: every analysis leaves the totals, days included.
    g.diary
        .set_analysis_setting(&user, false, &meta())
        .await
        .unwrap();
    g.projection.catch_up().await.unwrap();
    assert_days_agree_with_quarter_hours(&g, &user, &mut seed).await;
    let days: Vec<String> =
        sqlx::query_scalar("SELECT totals FROM diary_analytics_days WHERE user_id = ?")
            .bind(user.to_string())
            .fetch_all(g.read_models.pool())
            .await
            .unwrap();
    for totals in days {
        let t: analytics::BucketTotals = serde_json::from_str(&totals).unwrap();
        assert_eq!((t.analysed, t.keywords.len(), t.features.words), (0, 0, 0));
    }
}
