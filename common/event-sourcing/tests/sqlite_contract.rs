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

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_appends_share_commits() {
    let path = data_dir().join(format!("group_{}.db", uuid::Uuid::new_v4().simple()));
    let store = Arc::new(
        SqliteEventStore::open(&path, EventCodec::default())
            .await
            .unwrap(),
    );
    let counted = Arc::clone(&store);
    event_sourcing::contract::concurrent_appends_share_commits(store, move || counted.commits())
        .await;
}
