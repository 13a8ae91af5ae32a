//! Against a real Cassandra (`scripts/infra/cassandra.sh start`): connecting, migrating and
//! preparing fully qualified statements draws no warning from the server. In particular no
//! "`USE <keyspace>` with prepared statements is considered to be an anti-pattern" (which
//! Cassandra sends once per connection that prepares an unqualified statement after `USE`).
//!
//! The driver logs every warning in a response as a `tracing` event; this test binary
//! installs a subscriber of its own (process-wide, hence one test here) that keeps them.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use metachat_cassandra::test_support::TestKeyspace;
use metachat_cassandra::{connect, fetch_page, migrate};
use metachat_read_model::{Page, PageRequest};
use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id, Record};
use tracing::{Event, Level, Metadata, Subscriber};

/// What the driver logs for a warning in a response (scylla's `network/connection.rs`).
const DRIVER_MESSAGE: &str = "Response from the database contains a warning";

/// Keeps the `warning` field of the driver's warning events.
#[derive(Default)]
struct ServerWarnings {
    seen: Arc<Mutex<Vec<String>>>,
    next_span: AtomicU64,
}

#[derive(Default)]
struct Fields {
    message: String,
    warning: Option<String>,
}

impl Visit for Fields {
    fn record_str(&mut self, field: &Field, value: &str) {
        match field.name() {
            "warning" => self.warning = Some(value.to_owned()),
            "message" => self.message = value.to_owned(),
            _ => {}
        }
    }

    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        match field.name() {
            "warning" => self.warning = Some(format!("{value:?}")),
            "message" => self.message = format!("{value:?}"),
            _ => {}
        }
    }
}

impl Subscriber for ServerWarnings {
    fn enabled(&self, metadata: &Metadata<'_>) -> bool {
        *metadata.level() <= Level::WARN
    }

    fn new_span(&self, _: &Attributes<'_>) -> Id {
        Id::from_u64(self.next_span.fetch_add(1, Ordering::Relaxed) + 1)
    }

    fn record(&self, _: &Id, _: &Record<'_>) {}

    fn record_follows_from(&self, _: &Id, _: &Id) {}

    fn event(&self, event: &Event<'_>) {
        let mut fields = Fields::default();
        event.record(&mut fields);
        if fields.message == DRIVER_MESSAGE || fields.warning.is_some() {
            let warning = fields.warning.unwrap_or(fields.message);
            self.seen.lock().unwrap().push(warning);
        }
    }

    fn enter(&self, _: &Id) {}

    fn exit(&self, _: &Id) {}
}

const SCHEMA: &str = "
    CREATE TABLE IF NOT EXISTS {keyspace}.rows_by_group (g int, n int, PRIMARY KEY (g, n));
    CREATE TABLE IF NOT EXISTS {keyspace}.labels (k int PRIMARY KEY, label text);
";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn qualified_statements_draw_no_server_warning() {
    let seen = Arc::new(Mutex::new(Vec::new()));
    tracing::subscriber::set_global_default(ServerWarnings {
        seen: seen.clone(),
        ..ServerWarnings::default()
    })
    .expect("the only subscriber of this test binary");
    let taken = || std::mem::take(&mut *seen.lock().unwrap());

    // What a service does at start: connect (creating the keyspace), migrate, prepare, use.
    let test = TestKeyspace::create().await;
    let session = &test.session;
    assert_eq!(session.get_keyspace(), None, "no USE was issued");
    migrate(session, test.name(), "demo", &[(1, SCHEMA)])
        .await
        .unwrap();
    let insert = session
        .prepare(format!(
            "INSERT INTO {} (g, n) VALUES (?, ?)",
            test.table("rows_by_group")
        ))
        .await
        .unwrap();
    let select = session
        .prepare(format!(
            "SELECT n FROM {} WHERE g = ?",
            test.table("rows_by_group")
        ))
        .await
        .unwrap();
    for n in 0..5 {
        session.execute_unpaged(&insert, (1, n)).await.unwrap();
    }
    let page: Page<(i32,)> = fetch_page(
        session,
        &select,
        &(1,),
        "rows|1",
        &PageRequest {
            offset: 1,
            limit: 2,
            cursor: None,
        },
    )
    .await
    .unwrap();
    assert_eq!(page.items, [(1,), (2,)]);
    session
        .query_unpaged(format!("TRUNCATE TABLE {}", test.table("labels")), &[])
        .await
        .unwrap();
    assert_eq!(taken(), Vec::<String>::new());

    // The check itself works: a fresh session that does `USE` and prepares an unqualified
    // statement draws the warning.
    let used = connect(&test.config).await.unwrap();
    used.use_keyspace(test.name(), true).await.unwrap();
    used.prepare("SELECT n FROM rows_by_group WHERE g = ?")
        .await
        .unwrap();
    let warnings = taken();
    assert!(
        warnings.iter().any(|w| w.contains("anti-pattern")),
        "{warnings:?}"
    );
    test.drop_keyspace().await;
}
