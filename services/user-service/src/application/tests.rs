//! The user use cases in-process, against a real SQLite event store: given what is stored,
//! when a use case runs, then its answer and what it stored.

use std::collections::BTreeMap;
use std::sync::Arc;

use event_sourcing::testing::{CountingStore, StoreCalls, scratch_sqlite_store};
use event_sourcing::{EventCodec, EventMetadata, EventStore, read_full_stream};
use metachat_proto::error::ErrorCode;

use super::*;
use crate::SqliteUserReadModels;

struct Given {
    users: Users,
    store: Arc<CountingStore>,
}

async fn given_a_store() -> Given {
    let sqlite = scratch_sqlite_store(EventCodec::new(crate::upcasters())).await;
    let read_models = Arc::new(
        SqliteUserReadModels::new(sqlite.pool().clone())
            .await
            .unwrap(),
    );
    let store = Arc::new(CountingStore::new(Arc::new(sqlite)));
    Given {
        users: Users::new(store.clone(), read_models),
        store,
    }
}

fn john() -> Registration {
    Registration {
        username: "johndoe".into(),
        email: "john@example.com".into(),
        first_name: "John".into(),
        last_name: "Doe".into(),
        date_of_birth: Some("1990-01-01".into()),
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
