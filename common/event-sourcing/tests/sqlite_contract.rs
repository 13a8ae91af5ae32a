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
