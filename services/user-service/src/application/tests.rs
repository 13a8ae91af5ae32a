//! The user use cases in-process, against a real SQLite event store: given what is stored,
//! when a use case runs, then its answer and what it stored.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Instant;

use event_sourcing::sqlite::SqliteCheckpoints;
use event_sourcing::testing::{CountingStore, StoreCalls, scratch_sqlite_store};
use event_sourcing::{EventMetadata, EventStore, NewEvent, ProjectionRunner, read_full_stream};
use metachat_proto::error::ErrorCode;

use super::*;
use crate::SqliteUserReadModels;

struct Given {
    users: Users,
    store: Arc<CountingStore>,
    /// Feeds the read models, only when a test says so (`catch_up`).
    projection: ProjectionRunner,
}

/// The bound of a list's wait for its consistency token in these tests.
const READ_YOUR_WRITES: Duration = Duration::from_millis(300);

async fn given_a_store() -> Given {
    let sqlite = Arc::new(scratch_sqlite_store(crate::codec()).await);
    let read_models = Arc::new(
        SqliteUserReadModels::new(sqlite.pool().clone())
            .await
            .unwrap(),
    );
    let projection = ProjectionRunner::new(
        sqlite.clone(),
        Arc::new(SqliteCheckpoints::new(&sqlite)),
        read_models.clone(),
    );
    let store = Arc::new(CountingStore::new(sqlite));
    Given {
        users: Users::new(store.clone(), read_models)
            .with_read_your_writes_timeout(READ_YOUR_WRITES),
        store,
        projection,
    }
}

fn first_page() -> PageRequest {
    PageRequest {
        offset: 0,
        limit: 10,
        cursor: None,
    }
}

fn john() -> Registration {
    Registration {
        username: "johndoe".into(),
        email: "john@example.com".into(),
        first_name: "John".into(),
        last_name: "Doe".into(),
        date_of_birth: Some("1990-01-01".into()),
        password: None,
        idempotency_key: None,
    }
}

fn meta() -> EventMetadata {
    EventMetadata {
        request_id: Some("req-1".into()),
        ..EventMetadata::default()
    }
}

fn modalities(visual: f64) -> UserChange {
    UserChange::Modalities(BTreeMap::from([("visual".to_owned(), visual)]))
}

fn thinker(confidence: f64) -> ArchetypeInput {
    ArchetypeInput {
        archetype_id: "thinker".into(),
        archetype_name: "The Thinker".into(),
        confidence,
        description: "Analytical".into(),
    }
}

#[tokio::test]
async fn registering_stores_the_user_and_both_claims_in_one_append() {
    let g = given_a_store().await;
    let view = g.users.register(john(), &meta()).await.unwrap();
    assert_eq!(
        g.store.take(),
        StoreCalls {
            appends: 1,
            ..StoreCalls::default()
        },
        "a registration reads nothing and appends once"
    );
    assert_eq!(view.user.username.as_str(), "johndoe");
    assert_eq!(view.version, 1);
    let stored = read_full_stream(g.store.as_ref(), &format!("user-{}", view.user.id))
        .await
        .unwrap();
    assert_eq!(stored.len(), 1);
    assert_eq!(stored[0].event_type, "UserCreated");
    // The answer is what was stored, not a second guess of the time.
    assert_eq!(view.created_at, stored[0].recorded_at);
    assert_eq!(view.updated_at, stored[0].recorded_at);
    assert_eq!(stored[0].metadata.request_id.as_deref(), Some("req-1"));
    assert_eq!(
        g.store.head_position().await.unwrap(),
        3,
        "user + two claims"
    );
}

#[tokio::test]
async fn a_taken_username_or_email_is_named_and_nothing_is_stored() {
    let g = given_a_store().await;
    g.users.register(john(), &meta()).await.unwrap();
    let head = g.store.head_position().await.unwrap();

    let same_name = Registration {
        username: "JohnDoe".into(),
        email: "other@example.com".into(),
        ..john()
    };
    let error = g.users.register(same_name, &meta()).await.unwrap_err();
    assert_eq!(error.code, ErrorCode::AlreadyExists);
    assert_eq!(error.details[0].field, "username");

    let same_email = Registration {
        username: "someoneelse".into(),
        email: " JOHN@example.com ".into(),
        ..john()
    };
    let error = g.users.register(same_email, &meta()).await.unwrap_err();
    assert_eq!(error.code, ErrorCode::AlreadyExists);
    assert_eq!(error.details[0].field, "email");
    assert_eq!(error.message, "email is already taken");

    assert_eq!(g.store.head_position().await.unwrap(), head);
}

#[tokio::test]
async fn every_invalid_field_is_reported_at_once() {
    let g = given_a_store().await;
    let bad = Registration {
        username: "a b".into(),
        email: "nope".into(),
        first_name: "".into(),
        last_name: "Doe".into(),
        date_of_birth: Some("1990-02-30".into()),
        password: None,
        idempotency_key: None,
    };
    let error = g.users.register(bad, &meta()).await.unwrap_err();
    assert_eq!(error.code, ErrorCode::InvalidArgument);
    let fields: Vec<_> = error.details.iter().map(|d| d.field.as_str()).collect();
    assert_eq!(fields, ["username", "email", "firstName", "dateOfBirth"]);
    assert_eq!(g.store.take().appends, 0);
}

#[tokio::test]
async fn a_change_costs_one_stream_read_and_one_append() {
    let g = given_a_store().await;
    let id = g.users.register(john(), &meta()).await.unwrap().user.id;
    g.store.take();
    let view = g
        .users
        .change(&id, modalities(0.8), None, &meta())
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
    let stored = g.users.history(&id).await.unwrap();
    let last = stored.last().unwrap();
    assert_eq!(view.version, 2);
    assert_eq!(view.updated_at, last.recorded_at);
    assert_eq!(view.user.modalities_updated_at, Some(last.recorded_at));
}

#[tokio::test]
async fn a_change_pinned_to_an_old_version_is_refused_and_stores_nothing() {
    let g = given_a_store().await;
    let id = g.users.register(john(), &meta()).await.unwrap().user.id;
    g.users
        .change(&id, modalities(0.5), Some(1), &meta())
        .await
        .unwrap();
    let error = g
        .users
        .change(&id, modalities(0.9), Some(1), &meta())
        .await
        .unwrap_err();
    assert_eq!(error.code, ErrorCode::PreconditionFailed);
    let user = g.users.user(&id).await.unwrap();
    assert_eq!(user.version, 2);
    assert_eq!(user.user.modalities.unwrap()["visual"], 0.5);
}

#[tokio::test]
async fn concurrent_changes_without_a_version_all_land() {
    let g = given_a_store().await;
    let id = g.users.register(john(), &meta()).await.unwrap().user.id;
    let users = Arc::new(g.users);
    let tasks: Vec<_> = (1..=20)
        .map(|i| {
            let users = Arc::clone(&users);
            tokio::spawn(async move {
                users
                    .change(&id, modalities(f64::from(i) / 100.0), None, &meta())
                    .await
            })
        })
        .collect();
    for task in tasks {
        task.await.unwrap().unwrap();
    }
    assert_eq!(users.user(&id).await.unwrap().version, 21);
}

#[tokio::test]
async fn an_archetype_is_assigned_once_then_updated() {
    let g = given_a_store().await;
    let id = g.users.register(john(), &meta()).await.unwrap().user.id;
    let error = g
        .users
        .change(
            &id,
            UserChange::UpdateArchetype(thinker(0.9)),
            None,
            &meta(),
        )
        .await
        .unwrap_err();
    assert_eq!(error.code, ErrorCode::FailedPrecondition);
    let before = g.users.user(&id).await.unwrap().updated_at;
    let assigned = g
        .users
        .change(
            &id,
            UserChange::AssignArchetype(thinker(0.85)),
            None,
            &meta(),
        )
        .await
        .unwrap();
    assert_eq!(
        assigned.user.archetype.as_ref().unwrap().confidence.value(),
        0.85
    );
    let again = g
        .users
        .change(
            &id,
            UserChange::AssignArchetype(thinker(0.9)),
            None,
            &meta(),
        )
        .await
        .unwrap_err();
    assert_eq!(again.code, ErrorCode::FailedPrecondition);
    // Time travel: before the assignment there was no archetype.
    let then = g.users.user_as_of(&id, before).await.unwrap();
    assert!(then.user.archetype.is_none());
}

#[tokio::test]
async fn unknown_users_are_not_found() {
    let g = given_a_store().await;
    let nobody = UserId::new();
    assert_eq!(
        g.users.user(&nobody).await.unwrap_err().code,
        ErrorCode::NotFound
    );
    assert_eq!(
        g.users.history(&nobody).await.unwrap_err().code,
        ErrorCode::NotFound
    );
    let error = g
        .users
        .change(&nobody, modalities(0.1), None, &meta())
        .await
        .unwrap_err();
    assert_eq!(error.code, ErrorCode::NotFound);
    assert_eq!(g.store.take().appends, 0);
}

#[tokio::test]
async fn a_list_with_the_token_of_a_write_waits_until_it_shows_that_write() {
    let g = given_a_store().await;
    let created = g.users.register(john(), &meta()).await.unwrap();
    let id = created.user.id;
    let changed = g
        .users
        .change(&id, modalities(0.8), None, &meta())
        .await
        .unwrap();
    // Without a token the list answers at once, from read models that lag the writes.
    let (page, total) = g.users.list(&first_page(), "").await.unwrap();
    assert_eq!((page.items.len(), total), (0, 0));

    let token = format!("{id}:{}", changed.version);
    let feed_later = async {
        tokio::time::sleep(Duration::from_millis(50)).await;
        g.projection.catch_up().await.unwrap();
    };
    let page = first_page();
    let (listed, ()) = tokio::join!(g.users.list(&page, &token), feed_later);
    let (page, total) = listed.unwrap();
    assert_eq!(total, 1);
    assert_eq!(page.items[0].version, 2);
    assert_eq!(
        page.items[0].user.modalities,
        Some(BTreeMap::from([("visual".to_owned(), 0.8)]))
    );
    // An earlier version of the same user is reflected too.
    let (page, _) = g
        .users
        .list(&first_page(), &format!("{id}:1"))
        .await
        .unwrap();
    assert_eq!(page.items.len(), 1);
}

#[tokio::test]
async fn a_token_the_lists_do_not_reach_in_time_is_unavailable_or_names_no_write() {
    let g = given_a_store().await;
    let created = g.users.register(john(), &meta()).await.unwrap();
    // Made, not in the list yet: unavailable, retry.
    let error = g
        .users
        .list(&first_page(), &format!("{}:1", created.user.id))
        .await
        .unwrap_err();
    assert_eq!(error.code, ErrorCode::Unavailable);
    assert!(error.retry_after.is_some(), "a read may be retried");
    g.projection.catch_up().await.unwrap();
    for token in [
        // A version the user never reaches.
        format!("{}:2", created.user.id),
        // An id the read models never saw (its write may still be on its way).
        format!("{}:1", UserId::new()),
    ] {
        let started = Instant::now();
        let error = g.users.list(&first_page(), &token).await.unwrap_err();
        // Waited, then found in the store that no such write was made.
        assert!(started.elapsed() >= READ_YOUR_WRITES, "{token}");
        assert_eq!(error.code, ErrorCode::InvalidArgument, "{token}");
        assert_eq!(error.retry_after, None);
        assert!(error.message.contains(&token), "{}", error.message);
    }
}

#[tokio::test]
async fn a_malformed_token_is_invalid_at_once() {
    let g = given_a_store().await;
    let created = g.users.register(john(), &meta()).await.unwrap();
    for token in [
        "nope".to_owned(),
        created.user.id.to_string(),
        format!("{}:0", created.user.id),
        format!("{}:x", created.user.id),
    ] {
        let started = Instant::now();
        let error = g.users.list(&first_page(), &token).await.unwrap_err();
        assert!(started.elapsed() < READ_YOUR_WRITES, "{token}: no wait");
        assert_eq!(error.code, ErrorCode::InvalidArgument, "{token}");
        assert_eq!(error.details[0].field, "consistencyToken");
    }
}

#[tokio::test]
async fn a_password_signs_in_and_refresh_tokens_rotate_once_each() {
    let g = given_a_store().await;
    let user = g
        .users
        .register(
            Registration {
                password: Some("correct horse battery".into()),
                ..john()
            },
            &meta(),
        )
        .await
        .unwrap();
    let id = user.user.id;
    // The hash is in no event of the user's stream, nor anywhere as the password itself.
    let history = g.users.history(&id).await.unwrap();
    assert!(
        history
            .iter()
            .all(|e| !e.payload.to_string().contains("argon2"))
    );
    let everything = g.store.read_all(0, 1000).await.unwrap();
    assert!(
        everything
            .iter()
            .all(|e| !e.payload.to_string().contains("correct horse"))
    );
    assert!(everything.iter().any(|e| {
        e.event_type == "PasswordSet"
            && e.payload["passwordHash"]
                .as_str()
                .unwrap()
                .starts_with("$argon2id$")
    }));

    // By username or e-mail, any case; wrong password and unknown login alike.
    let signed_in = g
        .users
        .sign_in("JohnDoe", "correct horse battery", &meta())
        .await
        .unwrap();
    assert_eq!(signed_in.user_id, id);
    assert!(
        g.users
            .sign_in("john@example.com", "correct horse battery", &meta())
            .await
            .is_ok()
    );
    for (login, password) in [
        ("johndoe", "wrong horse battery"),
        ("nobody", "correct horse battery"),
        ("", ""),
    ] {
        let error = g.users.sign_in(login, password, &meta()).await.unwrap_err();
        assert_eq!(error.code, ErrorCode::Unauthenticated, "{login}");
        assert_eq!(error.message, "the login or the password is wrong");
    }

    // A refresh gives a new token; the old one, presented again, ends the sign-in.
    let refreshed = g
        .users
        .refresh(&signed_in.refresh_token, &meta())
        .await
        .unwrap();
    assert_ne!(refreshed.refresh_token, signed_in.refresh_token);
    let replayed = g
        .users
        .refresh(&signed_in.refresh_token, &meta())
        .await
        .unwrap_err();
    assert_eq!(replayed.code, ErrorCode::Unauthenticated);
    assert!(
        replayed.message.contains("already used"),
        "{}",
        replayed.message
    );
    let after = g
        .users
        .refresh(&refreshed.refresh_token, &meta())
        .await
        .unwrap_err();
    assert!(after.message.contains("ended"), "{}", after.message);

    // Signing out ends a sign-in; its token refreshes no more.
    let other = g
        .users
        .sign_in("johndoe", "correct horse battery", &meta())
        .await
        .unwrap();
    g.users
        .sign_out(&other.refresh_token, &meta())
        .await
        .unwrap();
    g.users
        .sign_out(&other.refresh_token, &meta())
        .await
        .unwrap();
    assert_eq!(
        g.users
            .refresh(&other.refresh_token, &meta())
            .await
            .unwrap_err()
            .code,
        ErrorCode::Unauthenticated
    );
    for bad in [
        "",
        "garbage",
        &format!("{}.{}", uuid::Uuid::new_v4(), "0".repeat(64)),
    ] {
        assert_eq!(
            g.users.refresh(bad, &meta()).await.unwrap_err().code,
            ErrorCode::Unauthenticated
        );
    }
    // A password too short is refused before anything is stored.
    let error = g
        .users
        .register(
            Registration {
                username: "shorty".into(),
                email: "shorty@example.com".into(),
                password: Some("short".into()),
                ..john()
            },
            &meta(),
        )
        .await
        .unwrap_err();
    assert_eq!(error.details[0].field, "password");
}

#[tokio::test]
async fn a_retried_registration_under_its_idempotency_key_answers_the_first_one() {
    let g = given_a_store().await;
    let keyed = Registration {
        idempotency_key: Some("register-1".into()),
        ..john()
    };
    let first = g.users.register(keyed.clone(), &meta()).await.unwrap();
    let again = g.users.register(keyed.clone(), &meta()).await.unwrap();
    assert_eq!(again.user.id, first.user.id);
    assert_eq!(again.version, first.version);
    // A replay answers what the first attempt answered, not what changed since.
    g.users
        .change(
            &first.user.id,
            UserChange::Profile(ProfileChanges {
                bio: Some("private".into()),
                ..ProfileChanges::default()
            }),
            None,
            &meta(),
        )
        .await
        .unwrap();
    let replayed = g.users.register(keyed.clone(), &meta()).await.unwrap();
    assert_eq!(replayed.version, first.version);
    assert_eq!(replayed.user.bio, None);
    // The password is part of the request: the same key without it is another registration.
    let guessed = g
        .users
        .register(
            Registration {
                password: Some("a guessed password".into()),
                ..keyed.clone()
            },
            &meta(),
        )
        .await
        .unwrap_err();
    assert_eq!(guessed.code, ErrorCode::AlreadyExists);
    // Without the key, the same registration is "already taken".
    let error = g.users.register(john(), &meta()).await.unwrap_err();
    assert_eq!(error.code, ErrorCode::AlreadyExists);
    // The same key with another username registers another user.
    let other = g
        .users
        .register(
            Registration {
                username: "janedoe".into(),
                email: "jane@example.com".into(),
                ..keyed
            },
            &meta(),
        )
        .await
        .unwrap();
    assert_ne!(other.user.id, first.user.id);
}

#[tokio::test]
async fn erasing_a_user_leaves_nothing_readable_and_frees_their_name() {
    let given = given_a_store().await;
    let meta = EventMetadata::default();
    let mut registration = john();
    registration.password = Some("a long enough password".into());
    let john = given.users.register(registration, &meta).await.unwrap();
    let id = john.user.id;
    given.projection.catch_up().await.unwrap();

    given.users.erase(&id, &meta).await.unwrap();
    given.projection.catch_up().await.unwrap();

    let gone = given.users.user(&id).await.unwrap_err();
    assert_eq!(gone.code, ErrorCode::NotFound);
    assert_eq!(
        given.users.history(&id).await.unwrap_err().code,
        ErrorCode::NotFound
    );
    let refused = given
        .users
        .sign_in("johndoe", "a long enough password", &meta)
        .await
        .unwrap_err();
    assert_eq!(refused.code, ErrorCode::Unauthenticated);
    let (listed, total) = given.users.list(&first_page(), "").await.unwrap();
    assert!(listed.items.is_empty() && total == 0, "{total}");
    // Stored, nothing of John can be read; what remains are ids and times.
    let stored = given.store.read_all_sealed(0, 100).await.unwrap();
    let text =
        serde_json::to_string(&stored.iter().map(|e| &e.payload).collect::<Vec<_>>()).unwrap();
    for word in ["johndoe", "john@example.com", "John", "Doe", "argon2"] {
        assert!(!text.contains(word), "{word} in {text}");
    }
    let read = given.store.read_all(0, 100).await.unwrap();
    assert!(
        read.iter().any(|e| e.erased),
        "the erased events are marked"
    );
    assert!(
        !serde_json::to_string(&read.iter().map(|e| &e.payload).collect::<Vec<_>>())
            .unwrap()
            .contains("johndoe")
    );

    // Again: nothing more to do, and it says so by succeeding.
    given.users.erase(&id, &meta).await.unwrap();
    let unknown = given.users.erase(&UserId::new(), &meta).await.unwrap_err();
    assert_eq!(unknown.code, ErrorCode::NotFound);
    // The name and address are free; taken again, they are taken.
    let again = given.users.register(self::john(), &meta).await.unwrap();
    assert_ne!(again.user.id, id);
    let taken = given.users.register(self::john(), &meta).await.unwrap_err();
    assert_eq!(taken.code, ErrorCode::AlreadyExists);
}

#[tokio::test]
async fn an_erasure_stopped_before_the_key_went_is_finished_by_erasing_again() {
    let given = given_a_store().await;
    let meta = EventMetadata::default();
    let john = given.users.register(john(), &meta).await.unwrap();
    let id = john.user.id;
    // The erasure was recorded, but the process stopped before deleting the key: the user
    // is gone from every read already, and the data is still sealed under a live key.
    let erased = UserEvent::UserErased(UserErased { user_id: id });
    given
        .store
        .append(
            UserState::stream_name(&id).as_str(),
            ExpectedVersion::Any,
            new_events(&[erased], &meta).unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(
        given.users.user(&id).await.unwrap_err().code,
        ErrorCode::NotFound
    );
    assert!(
        !given
            .store
            .read_all(0, 100)
            .await
            .unwrap()
            .iter()
            .any(|e| e.erased)
    );

    given.users.erase(&id, &meta).await.unwrap();
    let read = given.store.read_all(0, 100).await.unwrap();
    assert!(
        read.iter()
            .filter(|e| e.stream_id == UserState::stream_name(&id).as_str())
            .filter(|e| e.event_type != "UserErased")
            .all(|e| e.erased),
        "the key is deleted on the second attempt"
    );
    let recorded = read.iter().filter(|e| e.event_type == "UserErased").count();
    assert_eq!(recorded, 1, "the erasure is recorded once");
}

#[tokio::test]
async fn a_user_with_an_event_this_build_cannot_read_is_unavailable_until_erased() {
    let given = given_a_store().await;
    let meta = EventMetadata::default();
    let john = given.users.register(john(), &meta).await.unwrap();
    let id = john.user.id;
    // A newer version's event, which this build does not know.
    given
        .store
        .append(
            UserState::stream_name(&id).as_str(),
            ExpectedVersion::Any,
            vec![NewEvent::new(
                "UserTeleported",
                1,
                serde_json::json!({"to": "Mars"}),
                EventMetadata::default(),
            )],
        )
        .await
        .unwrap();
    let unreadable = given.users.user(&id).await.unwrap_err();
    assert_eq!(unreadable.code, ErrorCode::Unavailable);
    assert!(
        unreadable.message.contains("cannot read"),
        "{}",
        unreadable.message
    );

    given.users.erase(&id, &meta).await.unwrap();
    assert_eq!(
        given.users.user(&id).await.unwrap_err().code,
        ErrorCode::NotFound,
        "an erased user is gone, whatever came before"
    );
    // Their name is free again.
    given.users.register(self::john(), &meta).await.unwrap();
}
