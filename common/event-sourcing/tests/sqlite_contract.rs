//! The event-store contract, run against the embedded SQLite backend.

use std::path::PathBuf;
use std::sync::Arc;

use async_trait::async_trait;
use event_sourcing::EventCodec;
use event_sourcing::contract::{Opened, TestBackend};
use event_sourcing::sqlite::{SqliteCheckpoints, SqliteEventStore};

struct Sqlite;

fn data_dir() -> PathBuf {
    std::env::temp_dir().join("metachat-event-store-contract")
}

#[async_trait]
impl TestBackend for Sqlite {
    async fn open(&self, location: &str, codec: EventCodec) -> Opened {
        let path = data_dir().join(format!("{location}.db"));
        let store = SqliteEventStore::open(&path, codec)
            .await
            .expect("open SQLite event store");
        let checkpoints = Arc::new(SqliteCheckpoints::new(&store));
        Opened {
            store: Arc::new(store),
            checkpoints,
        }
    }
}

event_sourcing::event_store_contract_tests!(Sqlite);

/// Concurrent appends share commits (group commit), and one refused append in a group costs
/// the others nothing: each is answered for itself.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_appends_share_commits_and_keep_their_own_outcomes() {
    use event_sourcing::{EventStore, ExpectedVersion, NewEvent};
    let path = data_dir().join(format!("group_{}.db", uuid::Uuid::new_v4().simple()));
    let store = Arc::new(
        SqliteEventStore::open(&path, EventCodec::default())
            .await
            .unwrap(),
    );
    let event = || {
        NewEvent::new(
            "Noted",
            1,
            serde_json::json!({ "n": 1 }),
            Default::default(),
        )
    };
    let before = store.commits();
    let mut tasks = Vec::new();
    for i in 0..64 {
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            // Every eighth append contends for one stream that must not exist yet.
            let stream = if i % 8 == 0 {
                "contested".to_owned()
            } else {
                format!("own-{i}")
            };
            store
                .append(&stream, ExpectedVersion::NoStream, vec![event()])
                .await
        }));
    }
    let mut stored = 0;
    let mut conflicts = 0;
    for task in tasks {
        match task.await.unwrap() {
            Ok(_) => stored += 1,
            Err(e) if e.is_conflict() => conflicts += 1,
            Err(e) => panic!("append failed: {e}"),
        }
    }
    assert_eq!(
        (stored, conflicts),
        (57, 7),
        "one of the eight contested appends lands"
    );
    let all = store.read_all(0, 100).await.unwrap();
    assert_eq!(all.len(), 57);
    assert!(all.windows(2).all(|w| w[1].position == w[0].position + 1));
    let contested = store.read_stream("contested", 1, 10).await.unwrap();
    assert_eq!(contested.len(), 1);
    let commits = store.commits() - before;
    assert!(
        commits < 57,
        "{commits} commits for 64 concurrent appends: they did not share commits"
    );
}
