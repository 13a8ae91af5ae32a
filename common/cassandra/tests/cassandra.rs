//! Against a real Cassandra (`scripts/infra/cassandra.sh start`): connecting, migrations and
//! paging.

use std::time::{Duration, Instant};

use metachat_cassandra::test_support::TestKeyspace;
use metachat_cassandra::{
    CassandraConfig, CassandraError, connect, connect_with_timeout, fetch_page, migrate,
};
use metachat_read_model::{Page, PageRequest, QueryError};

const V1: &str = "
    -- the first version
    CREATE TABLE IF NOT EXISTS {keyspace}.things (k int PRIMARY KEY, label text)
        WITH comment = 'things; by key';
    CREATE TABLE IF NOT EXISTS {keyspace}.rows_by_group (g int, n int, PRIMARY KEY (g, n));
";
const V2: &str = "CREATE TABLE IF NOT EXISTS {keyspace}.more_things (k int PRIMARY KEY);";

async fn recorded(test: &TestKeyspace, domain: &str) -> Vec<i32> {
    test.session
        .query_unpaged(
            format!(
                "SELECT version FROM {} WHERE domain = ?",
                test.table("schema_migrations")
            ),
            (domain,),
        )
        .await
        .unwrap()
        .into_rows_result()
        .unwrap()
        .rows::<(i32,)>()
        .unwrap()
        .map(|r| r.unwrap().0)
        .collect()
}

#[tokio::test]
async fn an_unreachable_cluster_fails_fast_naming_the_hosts() {
    let config = CassandraConfig::for_hosts("127.0.0.1:1,127.0.0.1:2").unwrap();
    let started = Instant::now();
    let Err(error) = connect_with_timeout(&config, Duration::from_secs(3)).await else {
        panic!("nothing listens there");
    };
    eprintln!("{error}");
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
    assert!(
        matches!(error, CassandraError::Unreachable { .. }),
        "{error}"
    );
    let message = error.to_string();
    assert!(
        message.contains("127.0.0.1:1,127.0.0.1:2") && message.contains("CASSANDRA_HOSTS"),
        "{message}"
    );
}

#[tokio::test]
async fn a_bad_replication_map_is_reported_against_its_variable() {
    let test = TestKeyspace::create().await;
    let mut config = test
        .config
        .clone()
        .with_keyspace("t_never_created")
        .unwrap();
    config.replication = "{'class': 'NoSuchStrategy'}".to_owned();
    let Err(error) = connect(&config).await else {
        panic!("an unknown strategy is refused");
    };
    eprintln!("{error}");
    assert!(matches!(error, CassandraError::Keyspace { .. }), "{error}");
    assert!(
        error.to_string().contains("CASSANDRA_REPLICATION"),
        "{error}"
    );
    test.drop_keyspace().await;
}

#[tokio::test]
async fn migrations_apply_once_per_domain_and_record_their_versions() {
    let test = TestKeyspace::create().await;
    let session = &test.session;
    let keyspace = test.name();
    // The session has no current keyspace: every statement names it.
    assert_eq!(session.get_keyspace(), None);
    let started = Instant::now();
    assert_eq!(
        migrate(session, keyspace, "demo", &[(1, V1)])
            .await
            .unwrap(),
        [1]
    );
    eprintln!(
        "connect + keyspace: {:?}; first migration (3 tables): {:?}",
        test.connect_time,
        started.elapsed()
    );
    assert_eq!(
        migrate(session, keyspace, "demo", &[(1, V1)])
            .await
            .unwrap(),
        Vec::<u32>::new()
    );
    assert_eq!(
        migrate(session, keyspace, "demo", &[(1, V1), (2, V2)])
            .await
            .unwrap(),
        [2]
    );
    // Another domain has versions of its own.
    assert_eq!(
        migrate(session, keyspace, "other", &[(1, V2)])
            .await
            .unwrap(),
        [1]
    );
    assert_eq!(recorded(&test, "demo").await, [1, 2]);
    session
        .query_unpaged(
            format!("INSERT INTO {} (k) VALUES (1)", test.table("more_things")),
            &[],
        )
        .await
        .unwrap();

    for (migrations, why) in [
        (vec![(2, V1), (1, V2)], "descending"),
        (vec![(1, V1), (1, V2)], "repeated"),
        (vec![(0, V1)], "zero"),
        (vec![(3, "-- nothing\n")], "empty"),
        (
            vec![
                (1, V1),
                (2, V2),
                (3, "CREATE TABLE unqualified (k int PRIMARY KEY)"),
            ],
            "a table without its keyspace",
        ),
        (
            vec![(3, "/* {keyspace}. */ DROP TABLE more_things")],
            "the keyspace only in a comment",
        ),
    ] {
        let error = migrate(session, keyspace, "demo", &migrations)
            .await
            .unwrap_err();
        assert!(
            matches!(error, CassandraError::Migration { .. }),
            "{why}: {error}"
        );
    }
    let error = migrate(session, keyspace, "demo", &[(3, "DROP TABLE more_things")])
        .await
        .unwrap_err();
    assert!(
        error.to_string().contains("demo v3") && error.to_string().contains("{keyspace}"),
        "{error}"
    );
    let error = migrate(
        session,
        keyspace,
        "demo",
        &[(1, V1), (2, V2), (3, "CREATE TABLE {keyspace}.broken (")],
    )
    .await
    .unwrap_err();
    assert!(error.to_string().contains("demo v3"), "{error}");
    assert_eq!(recorded(&test, "demo").await, [1, 2]);
    // Nothing was created outside the migrated keyspace, and the refused table never was.
    let tables: Vec<String> = session
        .query_unpaged(
            "SELECT table_name FROM system_schema.tables WHERE keyspace_name = ?",
            (keyspace,),
        )
        .await
        .unwrap()
        .into_rows_result()
        .unwrap()
        .rows::<(String,)>()
        .unwrap()
        .map(|r| r.unwrap().0)
        .collect();
    assert_eq!(
        tables,
        [
            "more_things",
            "rows_by_group",
            "schema_migrations",
            "things"
        ]
    );
    test.drop_keyspace().await;
}

#[tokio::test]
async fn replicas_migrating_at_once_both_succeed() {
    let test = TestKeyspace::create().await;
    let other = connect(&test.config).await.unwrap();
    let (a, b) = tokio::join!(
        migrate(&test.session, test.name(), "demo", &[(1, V1), (2, V2)]),
        migrate(&other, test.name(), "demo", &[(1, V1), (2, V2)]),
    );
    a.unwrap();
    b.unwrap();
    assert_eq!(recorded(&test, "demo").await, [1, 2]);
    test.drop_keyspace().await;
}

async fn page(
    test: &TestKeyspace,
    statement: &scylla::statement::prepared::PreparedStatement,
    group: i32,
    request: PageRequest,
) -> Result<Page<(i32,)>, QueryError> {
    fetch_page(
        &test.session,
        statement,
        &(group,),
        &format!("rows|{group}"),
        &request,
    )
    .await
}

fn by_offset(offset: u64, limit: u32) -> PageRequest {
    PageRequest {
        offset,
        limit,
        cursor: None,
    }
}

#[tokio::test]
async fn pages_by_offset_and_by_cursor_agree() {
    let test = TestKeyspace::create().await;
    migrate(&test.session, test.name(), "demo", &[(1, V1)])
        .await
        .unwrap();
    let insert = test
        .session
        .prepare(format!(
            "INSERT INTO {} (g, n) VALUES (?, ?)",
            test.table("rows_by_group")
        ))
        .await
        .unwrap();
    // Group 1: 25 rows; group 2: exactly 20 (pages end on the last row); group 3: 2500.
    for (group, count) in [(1, 25), (2, 20), (3, 2500)] {
        for n in 0..count {
            test.session
                .execute_unpaged(&insert, (group, n))
                .await
                .unwrap();
        }
    }
    let select = test
        .session
        .prepare(format!(
            "SELECT n FROM {} WHERE g = ?",
            test.table("rows_by_group")
        ))
        .await
        .unwrap();
    let numbers = |p: &Page<(i32,)>| p.items.iter().map(|r| r.0).collect::<Vec<_>>();

    for (group, count) in [(1, 25), (2, 20)] {
        let mut cursor = None;
        let mut offset = 0;
        loop {
            let by_number = page(&test, &select, group, by_offset(offset, 10))
                .await
                .unwrap();
            let by_cursor = page(
                &test,
                &select,
                group,
                PageRequest {
                    // An offset is ignored beside a cursor.
                    offset: if cursor.is_some() { 999 } else { 0 },
                    limit: 10,
                    cursor: cursor.clone(),
                },
            )
            .await
            .unwrap();
            assert_eq!(numbers(&by_number), numbers(&by_cursor));
            let expected: Vec<i32> = (offset as i32..(offset as i32 + 10).min(count)).collect();
            assert_eq!(numbers(&by_number), expected);
            assert_eq!(by_number.has_more(), by_cursor.has_more());
            assert_eq!(
                by_number.has_more(),
                offset + 10 < count as u64,
                "group {group} at {offset}"
            );
            if !by_cursor.has_more() {
                break;
            }
            cursor = by_cursor.next_cursor;
            offset += 10;
        }
    }

    // Past the end: nothing, and no cursor.
    let past = page(&test, &select, 1, by_offset(30, 10)).await.unwrap();
    assert!(past.items.is_empty() && !past.has_more());
    // A limit larger than a round trip, from an offset larger than one.
    let all = page(&test, &select, 3, by_offset(1200, u32::MAX - 1))
        .await
        .unwrap();
    assert_eq!(numbers(&all), (1200..2500).collect::<Vec<_>>());
    assert!(!all.has_more());
    let middle = page(&test, &select, 3, by_offset(1000, 1001))
        .await
        .unwrap();
    assert_eq!(numbers(&middle), (1000..2001).collect::<Vec<_>>());
    let rest = page(
        &test,
        &select,
        3,
        PageRequest {
            cursor: middle.next_cursor.clone(),
            ..by_offset(0, 2000)
        },
    )
    .await
    .unwrap();
    assert_eq!(numbers(&rest), (2001..2500).collect::<Vec<_>>());
    assert!(!rest.has_more());

    // A cursor is only good for the query (and arguments) that issued it.
    let first = page(&test, &select, 1, by_offset(0, 10)).await.unwrap();
    for (group, cursor) in [
        (2, first.next_cursor.clone().unwrap()),
        (1, "bm90IGEgY3Vyc29y".to_owned()),
        (1, "o10".to_owned()),
        // A forged cursor: the check is right (anyone can compute it), the paging state junk.
        (
            1,
            metachat_cassandra::encode_cursor(
                "rows|1",
                &scylla::response::PagingState::new_from_raw_bytes(vec![0u8; 10]),
            ),
        ),
        (
            1,
            metachat_cassandra::encode_cursor(
                "rows|1",
                &scylla::response::PagingState::new_from_raw_bytes(b"junk junk junk".to_vec()),
            ),
        ),
    ] {
        let request = PageRequest {
            cursor: Some(cursor),
            ..by_offset(0, 10)
        };
        assert!(matches!(
            page(&test, &select, group, request).await,
            Err(QueryError::InvalidCursor)
        ));
    }
    test.drop_keyspace().await;
}
