//! The Cassandra search index against a real Cassandra 5.0 (`scripts/infra/cassandra.sh
//! start`; `METACHAT_TEST_CASSANDRA_HOSTS` to use another), each test in a fresh keyspace,
//! beside the SQLite search index fed the same entries: both must answer the same (the
//! similarities within 1e-4), and what Cassandra stores is checked table by table. Vectors
//! are synthetic unit vectors (no model needed).

use std::time::Instant;

use chrono::{DateTime, Duration, TimeZone, Utc};
use diary_service::cassandra::{MIGRATION_DOMAIN, MIGRATIONS};
use diary_service::search::cassandra::CassandraSearchIndex;
use diary_service::search::sqlite::SqliteSearchIndex;
use diary_service::search::{
    Hit, IndexStats, IndexedEntry, Posting, SearchIndex, StoredVectors, dot,
};
use metachat_cassandra::test_support::TestKeyspace;
use metachat_validation::{EntryId, UserId};
use uuid::Uuid;

const DIMENSIONS: usize = embeddings::DIMENSIONS;

struct Fixture {
    test: TestKeyspace,
    cassandra: CassandraSearchIndex,
    sqlite: SqliteSearchIndex,
}

async fn fixture() -> Fixture {
    let test = TestKeyspace::create().await;
    let started = Instant::now();
    metachat_cassandra::migrate(&test.session, test.name(), MIGRATION_DOMAIN, MIGRATIONS)
        .await
        .expect("migrate");
    let migrated = started.elapsed();
    let cassandra = CassandraSearchIndex::prepare(test.session.clone(), test.name())
        .await
        .expect("prepare");
    eprintln!(
        "keyspace {}: connect + create {:?}, migrate {:?}, prepare {:?}",
        test.name(),
        test.connect_time,
        migrated,
        started.elapsed() - migrated
    );
    let pool = sqlx::sqlite::SqlitePoolOptions::new()
        .max_connections(1)
        .connect("sqlite::memory:")
        .await
        .unwrap();
    let sqlite = SqliteSearchIndex::new(pool).await.unwrap();
    Fixture {
        test,
        cassandra,
        sqlite,
    }
}

impl Fixture {
    /// Both stores, named for the assertion messages.
    fn both(&self) -> [(&'static str, &dyn SearchIndex); 2] {
        [("sqlite", &self.sqlite), ("cassandra", &self.cassandra)]
    }

    async fn put(&self, entries: &[IndexedEntry]) {
        let started = Instant::now();
        for (name, index) in self.both() {
            for entry in entries {
                index
                    .put(entry)
                    .await
                    .unwrap_or_else(|e| panic!("{name}: put: {e}"));
            }
        }
        eprintln!(
            "put {} entries in both stores: {:?}",
            entries.len(),
            started.elapsed()
        );
    }

    /// The `COUNT(*)` of a query on this keyspace's `table`, with `values`.
    async fn count(
        &self,
        table: &str,
        condition: &str,
        values: impl scylla::serialize::row::SerializeRow,
    ) -> i64 {
        let cql = format!(
            "SELECT COUNT(*) FROM {} {condition}",
            self.test.table(table)
        );
        self.test
            .session
            .query_unpaged(cql, values)
            .await
            .unwrap()
            .into_rows_result()
            .unwrap()
            .single_row::<(i64,)>()
            .unwrap()
            .0
    }

    /// The rows the index keeps in Cassandra for `user`, table by table (the postings of
    /// `terms` only: the terms table is partitioned by user and term).
    async fn stored_rows(&self, user: &UserId, terms: &[&str]) -> StoredRows {
        let u = *user.as_uuid();
        let by_user = "WHERE user_id = ?";
        let mut postings = 0;
        for term in terms {
            postings += self
                .count(
                    "entry_search_terms",
                    "WHERE user_id = ? AND term = ?",
                    (u, *term),
                )
                .await;
        }
        StoredRows {
            entries: self.count("entry_search_entries", by_user, (u,)).await,
            by_time: self.count("entry_search_by_time", by_user, (u,)).await,
            vectors: self.count("entry_search_vectors", by_user, (u,)).await,
            postings,
        }
    }

    /// Rows in the owner table for `entry`.
    async fn owner_rows(&self, entry: &EntryId) -> i64 {
        self.count(
            "entry_search_owner",
            "WHERE entry_id = ?",
            (*entry.as_uuid(),),
        )
        .await
    }

    async fn finish(self) {
        self.test.drop_keyspace().await;
    }
}

#[derive(Debug, PartialEq, Eq)]
struct StoredRows {
    entries: i64,
    by_time: i64,
    vectors: i64,
    postings: i64,
}

fn base_time() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2024, 3, 1, 10, 0, 0).unwrap() + Duration::microseconds(654_321)
}

fn user(n: u128) -> UserId {
    UserId::from_uuid(Uuid::from_u128(0xa000 + n))
}

/// A random-looking id that is the same on every run.
fn entry_id(n: u64) -> EntryId {
    let bits = u128::from(splitmix(n ^ 0x5eed)) << 64 | u128::from(splitmix(n.wrapping_add(7)));
    EntryId::from_uuid(uuid::Builder::from_random_bytes(bits.to_be_bytes()).into_uuid())
}

fn splitmix(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}

fn unit(mut v: Vec<f32>) -> Vec<f32> {
    let norm = dot(&v, &v).sqrt();
    v.iter_mut().for_each(|x| *x /= norm);
    v
}

/// A unit vector in a direction of its own (random directions in 384 dimensions are close
/// to orthogonal).
fn random(seed: u64) -> Vec<f32> {
    unit(
        (0..DIMENSIONS as u64)
            .map(|i| (splitmix(seed.wrapping_mul(1_000_003).wrapping_add(i)) >> 11) as f32)
            .map(|x| x / (1u64 << 53) as f32 * 2.0 - 1.0)
            .collect(),
    )
}

/// A unit vector whose cosine with `q` grows with `weight` (in [0, 1]); negative weights
/// point away from `q`.
fn toward(q: &[f32], weight: f32, seed: u64) -> Vec<f32> {
    let noise = random(seed);
    unit(
        q.iter()
            .zip(&noise)
            .map(|(a, b)| weight * a + (1.0 - weight.abs()) * b)
            .collect(),
    )
}

fn indexed(
    owner: &UserId,
    id: EntryId,
    written_at: DateTime<Utc>,
    vectors: Vec<Vec<f32>>,
    terms: &[(&str, u32)],
    length: u32,
    fingerprint: i64,
) -> IndexedEntry {
    IndexedEntry {
        entry_id: id,
        user_id: *owner,
        fingerprint,
        written_at,
        vectors,
        terms: terms.iter().map(|(t, n)| ((*t).to_owned(), *n)).collect(),
        length,
        keywords: terms
            .iter()
            .take(2)
            .map(|(t, _)| format!("{t} words"))
            .collect(),
    }
}

fn stored(entry: &IndexedEntry) -> StoredVectors {
    StoredVectors {
        entry_id: entry.entry_id,
        written_at: entry.written_at,
        vectors: entry.vectors.clone(),
        keywords: entry.keywords.clone(),
    }
}

fn terms(list: &[&str]) -> Vec<String> {
    list.iter().map(|t| (*t).to_owned()).collect()
}

/// The same entries in the same order, the similarities within 1e-4.
fn assert_same_hits(context: &str, ours: &[Hit], theirs: &[Hit]) {
    let ids = |hits: &[Hit]| hits.iter().map(|h| h.entry_id).collect::<Vec<_>>();
    assert_eq!(ids(ours), ids(theirs), "{context}: entries or order differ");
    for (a, b) in ours.iter().zip(theirs) {
        assert!(
            (a.similarity - b.similarity).abs() < 1e-4,
            "{context}: {} vs {} for {}",
            a.similarity,
            b.similarity,
            a.entry_id
        );
    }
}

#[tokio::test]
async fn a_put_replaces_the_entry_whole() {
    let f = fixture().await;
    let owner = user(1);
    let id = entry_id(1);
    let q = random(1);
    let at = base_time();
    let three = indexed(
        &owner,
        id,
        at,
        vec![
            toward(&q, 0.2, 11),
            toward(&q, 0.9, 12),
            toward(&q, -0.5, 13),
        ],
        &[("cello", 3), ("practic", 1), ("even", 2)],
        50,
        11,
    );
    let one = indexed(
        &owner,
        id,
        at + Duration::hours(2),
        vec![toward(&q, 0.4, 21)],
        &[("violin", 2), ("even", 1)],
        20,
        22,
    );
    let four = indexed(
        &owner,
        id,
        at + Duration::hours(2),
        (0..4).map(|i| toward(&q, 0.1 * i as f32, 30 + i)).collect(),
        &[("viola", 1)],
        70,
        33,
    );
    let every_term = ["cello", "practic", "even", "violin", "viola"];
    let all_time = (at - Duration::days(1), at + Duration::days(1));

    f.put(std::slice::from_ref(&three)).await;
    for (name, index) in f.both() {
        assert_eq!(index.fingerprint(&id).await.unwrap(), Some(11), "{name}");
        assert_eq!(
            index.fingerprint(&entry_id(99)).await.unwrap(),
            None,
            "{name}"
        );
        assert_eq!(
            index.vectors(&owner, &[id]).await.unwrap(),
            vec![stored(&three)],
            "{name}"
        );
        assert_eq!(
            index
                .postings(&owner, &terms(&["cello", "absent", "even"]))
                .await
                .unwrap(),
            vec![
                Posting {
                    term: "cello".into(),
                    entry_id: id,
                    count: 3,
                    length: 50
                },
                Posting {
                    term: "even".into(),
                    entry_id: id,
                    count: 2,
                    length: 50
                },
            ],
            "{name}"
        );
        assert_eq!(
            index.stats(&owner).await.unwrap(),
            IndexStats {
                entries: 1,
                words: 50
            },
            "{name}"
        );
    }
    assert_eq!(
        f.stored_rows(&owner, &every_term).await,
        StoredRows {
            entries: 1,
            by_time: 1,
            vectors: 3,
            postings: 3
        }
    );

    // Fewer chunks, other terms, another time: nothing of the first version is left.
    f.put(std::slice::from_ref(&one)).await;
    for (name, index) in f.both() {
        assert_eq!(index.fingerprint(&id).await.unwrap(), Some(22), "{name}");
        assert_eq!(
            index.vectors(&owner, &[id]).await.unwrap(),
            vec![stored(&one)],
            "{name}"
        );
        assert_eq!(
            index.postings(&owner, &terms(&every_term)).await.unwrap(),
            vec![
                Posting {
                    term: "even".into(),
                    entry_id: id,
                    count: 1,
                    length: 20
                },
                Posting {
                    term: "violin".into(),
                    entry_id: id,
                    count: 2,
                    length: 20
                },
            ],
            "{name}"
        );
        assert_eq!(
            index.stats(&owner).await.unwrap(),
            IndexStats {
                entries: 1,
                words: 20
            },
            "{name}"
        );
        assert!(
            index
                .written_between(&owner, at, at + Duration::microseconds(1), 10)
                .await
                .unwrap()
                .is_empty(),
            "{name}: still listed at its former time"
        );
        assert_eq!(
            index
                .written_between(&owner, all_time.0, all_time.1, 10)
                .await
                .unwrap(),
            vec![stored(&one)],
            "{name}"
        );
        // The best chunk of the first version pointed at q: gone.
        let hits = index.nearest(&owner, &q, 10).await.unwrap();
        assert_eq!(hits.len(), 1, "{name}");
        assert!(
            (hits[0].similarity - dot(&one.vectors[0], &q)).abs() < 1e-4,
            "{name}: {hits:?}"
        );
    }
    assert_eq!(
        f.stored_rows(&owner, &every_term).await,
        StoredRows {
            entries: 1,
            by_time: 1,
            vectors: 1,
            postings: 2
        }
    );

    // More chunks again.
    f.put(std::slice::from_ref(&four)).await;
    for (name, index) in f.both() {
        assert_eq!(index.fingerprint(&id).await.unwrap(), Some(33), "{name}");
        assert_eq!(
            index.vectors(&owner, &[id]).await.unwrap(),
            vec![stored(&four)],
            "{name}"
        );
        assert_eq!(
            index.postings(&owner, &terms(&every_term)).await.unwrap(),
            vec![Posting {
                term: "viola".into(),
                entry_id: id,
                count: 1,
                length: 70
            }],
            "{name}"
        );
        let hits = index.nearest(&owner, &q, 10).await.unwrap();
        assert_eq!(hits.len(), 1, "{name}");
        assert!(
            (hits[0].similarity - stored(&four).similarity(&q)).abs() < 1e-4,
            "{name}"
        );
    }
    assert_eq!(
        f.stored_rows(&owner, &every_term).await,
        StoredRows {
            entries: 1,
            by_time: 1,
            vectors: 4,
            postings: 1
        }
    );
    assert_eq!(f.owner_rows(&id).await, 1);
    f.finish().await;
}

/// The nearest entries of each store: the same entries, in the same order, with the same
/// cosine similarities, which are those of the closest chunk; never another writer's.
#[tokio::test]
async fn nearest_ranks_like_sqlite_with_the_same_cosines() {
    let f = fixture().await;
    let (a, b, c) = (user(1), user(2), user(3));
    let q = random(7);
    let mut entries = Vec::new();
    // Writer a: 30 entries of 1 to 4 chunks, from pointing away from q to close to it; the
    // best chunk is not always the first. (No two alike: the order of ties is not defined.)
    for i in 0..30u64 {
        let weight = -0.9 + 1.8 * (i as f32) / 29.0;
        let chunks = 1 + (i % 4);
        let vectors = (0..chunks)
            .map(|c| {
                let w = if c == chunks / 2 {
                    weight
                } else {
                    weight - 0.3
                };
                toward(&q, w.max(-0.95), 100 + i * 10 + c)
            })
            .collect();
        let at = base_time() + Duration::minutes(i as i64);
        entries.push(indexed(
            &a,
            entry_id(i),
            at,
            vectors,
            &[("word", 1)],
            10,
            i as i64,
        ));
    }
    // q itself and its opposite: similarities 1 and -1.
    let exact = entry_id(40);
    let opposite = entry_id(41);
    entries.push(indexed(&a, exact, base_time(), vec![q.clone()], &[], 1, 40));
    entries.push(indexed(
        &a,
        opposite,
        base_time(),
        vec![q.iter().map(|x| -x).collect()],
        &[],
        1,
        41,
    ));
    // Writer b: entries closer to q than any of a's but one.
    for i in 0..5u64 {
        let vectors = vec![toward(&q, 0.95, 500 + i)];
        entries.push(indexed(
            &b,
            entry_id(50 + i),
            base_time(),
            vectors,
            &[],
            1,
            0,
        ));
    }
    // Writer c: 8 entries of 12 chunks, the chunks of an entry alike, so that the first
    // 4 × limit chunks nearest q belong to fewer than `limit` entries.
    for i in 0..8u64 {
        let weight = 0.9 - 0.1 * i as f32;
        let vectors = (0..12)
            .map(|c| toward(&q, weight, 700 + i * 20 + c))
            .collect();
        entries.push(indexed(
            &c,
            entry_id(60 + i),
            base_time(),
            vectors,
            &[],
            1,
            0,
        ));
    }
    f.put(&entries).await;

    let mut timings = assert_nearest_agree(&f, &entries, &q, "in the memtable").await;

    // Again from SSTables (their on-disk vector index), then with replacements and removals
    // in the memtable over them.
    flush_vectors(&f, entries.iter().map(|e| e.vectors.len() as i64).sum()).await;
    timings.extend(assert_nearest_agree(&f, &entries, &q, "flushed").await);
    let mut changed = entries.clone();
    for (k, e) in changed
        .iter_mut()
        .filter(|e| e.user_id == c)
        .take(3)
        .enumerate()
    {
        e.vectors.truncate(2);
        e.vectors[0] = toward(&q, 0.97 - 0.03 * k as f32, 9_000 + k as u64);
        e.fingerprint += 1_000;
    }
    let removed = [entry_id(7), entry_id(20), entry_id(61)];
    changed.retain(|e| !removed.contains(&e.entry_id));
    for (name, index) in f.both() {
        for e in changed.iter().filter(|e| e.fingerprint >= 1_000) {
            index.put(e).await.unwrap_or_else(|e| panic!("{name}: {e}"));
        }
        for id in &removed {
            let owner = entries.iter().find(|e| e.entry_id == *id).unwrap().user_id;
            index.remove(&owner, id).await.unwrap();
        }
    }
    timings.extend(assert_nearest_agree(&f, &changed, &q, "changed after the flush").await);

    let hits = f.cassandra.nearest(&a, &q, 100).await.unwrap();
    assert_eq!(hits.len(), 30);
    assert_eq!(hits[0].entry_id, exact);
    assert!((hits[0].similarity - 1.0).abs() < 1e-4, "{:?}", hits[0]);
    assert_eq!(hits[29].entry_id, opposite);
    assert!((hits[29].similarity + 1.0).abs() < 1e-4, "{:?}", hits[29]);
    // Cassandra's own scale: similarity_cosine is (1 + cosine) / 2, 1 for q, 0 for -q.
    for (id, scaled) in [(exact, 1.0f32), (opposite, 0.0)] {
        let (similarity,): (f32,) = f
            .test
            .session
            .query_unpaged(
                format!(
                    "SELECT similarity_cosine(vector, ?) FROM {} \
                     WHERE user_id = ? AND entry_id = ? AND chunk = 0",
                    f.test.table("entry_search_vectors")
                ),
                (&q, *a.as_uuid(), *id.as_uuid()),
            )
            .await
            .unwrap()
            .into_rows_result()
            .unwrap()
            .single_row()
            .unwrap();
        assert!((similarity - scaled).abs() < 1e-6, "{id}: {similarity}");
    }
    // Nothing for a writer with no entries, a limit of 0 or a zero query.
    assert!(
        f.cassandra
            .nearest(&user(9), &q, 10)
            .await
            .unwrap()
            .is_empty()
    );
    assert!(f.cassandra.nearest(&a, &q, 0).await.unwrap().is_empty());
    assert!(
        f.cassandra
            .nearest(&a, &vec![0.0; DIMENSIONS], 5)
            .await
            .unwrap()
            .is_empty()
    );
    timings.sort();
    eprintln!(
        "nearest in Cassandra, {} queries: median {:?}, max {:?}",
        timings.len(),
        timings[timings.len() / 2],
        timings[timings.len() - 1]
    );
    f.finish().await;
}

/// Cassandra's and SQLite's nearest entries agree, for several queries, writers and limits,
/// and both are the exact cosines of the closest chunks of `entries` (what is indexed).
/// Returns how long each Cassandra query took.
async fn assert_nearest_agree(
    f: &Fixture,
    entries: &[IndexedEntry],
    q: &[f32],
    stage: &str,
) -> Vec<std::time::Duration> {
    let expected = |owner: &UserId, query: &[f32]| -> Vec<(EntryId, f32)> {
        let mut all: Vec<(EntryId, f32)> = entries
            .iter()
            .filter(|e| e.user_id == *owner)
            .map(|e| (e.entry_id, stored(e).similarity(query)))
            .collect();
        all.sort_by(|x, y| y.1.total_cmp(&x.1));
        all
    };
    let queries = [
        ("q", q.to_vec()),
        ("another", toward(q, 0.5, 9_999)),
        ("random", random(77)),
    ];
    let mut timings = Vec::new();
    for (label, query) in &queries {
        for owner in [user(1), user(2), user(3)] {
            for limit in [1, 3, 5, 10, 32, 100] {
                let theirs = f.sqlite.nearest(&owner, query, limit).await.unwrap();
                let started = Instant::now();
                let ours = f.cassandra.nearest(&owner, query, limit).await.unwrap();
                timings.push(started.elapsed());
                let context = format!("{stage}: query {label}, writer {owner}, limit {limit}");
                assert_same_hits(&context, &ours, &theirs);
                let exact: Vec<(EntryId, f32)> =
                    expected(&owner, query).into_iter().take(limit).collect();
                assert_eq!(ours.len(), exact.len(), "{context}");
                for (hit, (id, similarity)) in ours.iter().zip(&exact) {
                    assert_eq!(hit.entry_id, *id, "{context}");
                    assert!((hit.similarity - similarity).abs() < 1e-4, "{context}");
                }
            }
        }
    }
    timings
}

/// Has the node flush the vectors table to an SSTable, with its SAI vector index on disk:
/// the test node opens no JMX port for `nodetool flush`, so the table is given a flush period
/// of one second until `system_views.sai_sstable_indexes` lists an on-disk index holding every
/// chunk.
async fn flush_vectors(f: &Fixture, chunks: i64) {
    let table = f.test.table("entry_search_vectors");
    let started = Instant::now();
    let period = |ms: u32| format!("ALTER TABLE {table} WITH memtable_flush_period_in_ms = {ms}");
    f.test
        .session
        .query_unpaged(period(1_000), ())
        .await
        .unwrap();
    let on_disk = loop {
        let (cells,): (Option<i64>,) = f
            .test
            .session
            .query_unpaged(
                "SELECT SUM(cell_count) FROM system_views.sai_sstable_indexes \
                 WHERE keyspace_name = ? AND index_name = 'entry_search_vectors_ann'",
                (f.test.name(),),
            )
            .await
            .unwrap()
            .into_rows_result()
            .unwrap()
            .single_row()
            .unwrap();
        if cells.unwrap_or(0) >= chunks || started.elapsed().as_secs() >= 20 {
            break cells.unwrap_or(0);
        }
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    };
    f.test.session.query_unpaged(period(0), ()).await.unwrap();
    assert_eq!(on_disk, chunks, "chunks in on-disk SAI vector indexes");
    eprintln!("flush of the vectors table: {:?}", started.elapsed());
}

/// Vectors, postings and stats: a writer's own entries only.
#[tokio::test]
async fn vectors_postings_and_stats_are_the_writers_own() {
    let f = fixture().await;
    let (a, b) = (user(1), user(2));
    let entries = vec![
        indexed(
            &a,
            entry_id(1),
            base_time(),
            vec![random(1), random(2)],
            &[("cello", 2), ("rain", 1)],
            30,
            1,
        ),
        indexed(
            &a,
            entry_id(2),
            base_time() + Duration::minutes(1),
            vec![random(3)],
            &[("cello", 1)],
            12,
            2,
        ),
        indexed(
            &a,
            entry_id(3),
            base_time() - Duration::days(3),
            vec![random(4)],
            &[("rain", 4), ("walk", 1)],
            45,
            3,
        ),
        indexed(
            &b,
            entry_id(4),
            base_time(),
            vec![random(5)],
            &[("cello", 9)],
            100,
            4,
        ),
    ];
    f.put(&entries).await;
    let asked = [
        entry_id(3),
        entry_id(4),
        entry_id(99),
        entry_id(1),
        entry_id(3),
    ];
    let query_terms = terms(&["cello", "rain", "absent", "walk"]);
    for (name, index) in f.both() {
        assert_eq!(
            index.vectors(&a, &asked).await.unwrap(),
            vec![
                stored(&entries[2]),
                stored(&entries[0]),
                stored(&entries[2])
            ],
            "{name}"
        );
        assert_eq!(
            index.vectors(&b, &asked).await.unwrap(),
            vec![stored(&entries[3])],
            "{name}"
        );
        assert!(index.vectors(&a, &[]).await.unwrap().is_empty(), "{name}");
        assert_eq!(
            index.stats(&a).await.unwrap(),
            IndexStats {
                entries: 3,
                words: 87
            },
            "{name}"
        );
        assert_eq!(
            index.stats(&b).await.unwrap(),
            IndexStats {
                entries: 1,
                words: 100
            },
            "{name}"
        );
        assert_eq!(
            index.stats(&user(9)).await.unwrap(),
            IndexStats::default(),
            "{name}"
        );
        let b_postings = index.postings(&b, &query_terms).await.unwrap();
        assert_eq!(
            b_postings,
            vec![Posting {
                term: "cello".into(),
                entry_id: entry_id(4),
                count: 9,
                length: 100
            }],
            "{name}"
        );
    }
    let ours = f.cassandra.postings(&a, &query_terms).await.unwrap();
    let theirs = f.sqlite.postings(&a, &query_terms).await.unwrap();
    assert_eq!(ours, theirs);
    assert_eq!(ours.len(), 5);
    assert_eq!(
        ours.iter().filter(|p| p.term == "cello").count(),
        2,
        "{ours:?}"
    );
    assert_eq!(
        f.stored_rows(&a, &["cello", "rain", "walk"]).await,
        StoredRows {
            entries: 3,
            by_time: 3,
            vectors: 4,
            postings: 5
        }
    );
    f.finish().await;
}

/// Entries written in a range, newest first (ties by id, as SQLite orders them), at most
/// `limit`.
#[tokio::test]
async fn written_between_slices_newest_first() {
    let f = fixture().await;
    let (a, b) = (user(1), user(2));
    let mut entries = Vec::new();
    for i in 0..20u64 {
        // Entries 5 to 9 in the same microsecond.
        let minutes = if (5..10).contains(&i) { 5 } else { i as i64 };
        let at = base_time() + Duration::minutes(minutes);
        let vectors = (0..=(i % 3)).map(|c| random(i * 10 + c)).collect();
        let term = format!("t{}", i % 4);
        entries.push(indexed(
            &a,
            entry_id(i),
            at,
            vectors,
            &[(term.as_str(), 1)],
            10,
            i as i64,
        ));
    }
    entries.push(indexed(
        &b,
        entry_id(50),
        base_time() + Duration::minutes(3),
        vec![random(50)],
        &[],
        1,
        50,
    ));
    f.put(&entries).await;

    let t = |minutes: i64| base_time() + Duration::minutes(minutes);
    let ranges = [
        (t(-10), t(100)),
        (t(0), t(5)),
        (t(5), t(6)),
        (t(3), t(12)),
        (t(19), t(20)),
        (t(20), t(30)),
        (t(10), t(3)),
        (t(5) + Duration::microseconds(1), t(7)),
    ];
    for (start, end) in ranges {
        for limit in [0, 1, 2, 3, 4, 6, 7, 8, 100] {
            for owner in [a, b] {
                let ours = f
                    .cassandra
                    .written_between(&owner, start, end, limit)
                    .await
                    .unwrap();
                let theirs = f
                    .sqlite
                    .written_between(&owner, start, end, limit)
                    .await
                    .unwrap();
                assert_eq!(ours, theirs, "{owner} [{start}, {end}) limit {limit}");
                assert!(ours.len() <= limit);
                assert!(
                    ours.iter()
                        .all(|s| s.written_at >= start && s.written_at < end)
                );
                assert!(ours.windows(2).all(|w| w[0].written_at >= w[1].written_at));
            }
        }
    }
    let all = f
        .cassandra
        .written_between(&a, t(-10), t(100), 100)
        .await
        .unwrap();
    assert_eq!(all.len(), 20);
    let expected: Vec<StoredVectors> = {
        let mut mine: Vec<&IndexedEntry> = entries.iter().filter(|e| e.user_id == a).collect();
        mine.sort_by(|x, y| {
            y.written_at
                .cmp(&x.written_at)
                .then(y.entry_id.to_string().cmp(&x.entry_id.to_string()))
        });
        mine.into_iter().map(stored).collect()
    };
    assert_eq!(all, expected);
    // The limit cuts among the five entries of the same microsecond: the ones SQLite keeps.
    let cut = f
        .cassandra
        .written_between(&a, t(0), t(6), 3)
        .await
        .unwrap();
    assert_eq!(cut, expected[10..13].to_vec());
    f.finish().await;
}

#[tokio::test]
async fn remove_and_remove_user_delete_only_what_they_name() {
    let f = fixture().await;
    let (a, b) = (user(1), user(2));
    let q = random(3);
    let entries = vec![
        indexed(
            &a,
            entry_id(1),
            base_time(),
            vec![toward(&q, 0.9, 1), random(2)],
            &[("cello", 2), ("rain", 1)],
            30,
            1,
        ),
        indexed(
            &a,
            entry_id(2),
            base_time() + Duration::minutes(1),
            vec![toward(&q, 0.5, 3)],
            &[("cello", 1), ("sun", 2)],
            12,
            2,
        ),
        indexed(
            &a,
            entry_id(3),
            base_time() + Duration::minutes(2),
            vec![toward(&q, 0.2, 4)],
            &[("walk", 1)],
            7,
            3,
        ),
        indexed(
            &b,
            entry_id(4),
            base_time(),
            vec![toward(&q, 0.7, 5)],
            &[("cello", 9)],
            100,
            4,
        ),
        indexed(
            &b,
            entry_id(5),
            base_time(),
            vec![toward(&q, 0.6, 6), toward(&q, 0.1, 7)],
            &[("rain", 1)],
            50,
            5,
        ),
    ];
    let a_terms = ["cello", "rain", "sun", "walk"];
    f.put(&entries).await;
    let b_before = StoredRows {
        entries: 2,
        by_time: 2,
        vectors: 3,
        postings: 2,
    };
    assert_eq!(f.stored_rows(&b, &a_terms).await, b_before);

    let all_terms = terms(&a_terms);
    let span = (
        base_time() - Duration::days(1),
        base_time() + Duration::days(1),
    );
    // One entry of a; removing an entry that is not indexed does nothing.
    for (name, index) in f.both() {
        index.remove(&a, &entry_id(1)).await.unwrap();
        index.remove(&a, &entry_id(99)).await.unwrap();
        assert_eq!(
            index.fingerprint(&entry_id(1)).await.unwrap(),
            None,
            "{name}"
        );
        assert_eq!(
            index.fingerprint(&entry_id(2)).await.unwrap(),
            Some(2),
            "{name}"
        );
        assert!(
            index.vectors(&a, &[entry_id(1)]).await.unwrap().is_empty(),
            "{name}"
        );
        let postings = index.postings(&a, &all_terms).await.unwrap();
        assert!(
            postings.iter().all(|p| p.entry_id != entry_id(1)),
            "{name}: {postings:?}"
        );
        assert_eq!(postings.len(), 3, "{name}");
        assert_eq!(
            index.stats(&a).await.unwrap(),
            IndexStats {
                entries: 2,
                words: 19
            },
            "{name}"
        );
        let hits = index.nearest(&a, &q, 10).await.unwrap();
        assert_eq!(
            hits.iter().map(|h| h.entry_id).collect::<Vec<_>>(),
            vec![entry_id(2), entry_id(3)],
            "{name}"
        );
        let listed = index.written_between(&a, span.0, span.1, 10).await.unwrap();
        assert_eq!(
            listed,
            vec![stored(&entries[2]), stored(&entries[1])],
            "{name}"
        );
    }
    assert_eq!(
        f.stored_rows(&a, &a_terms).await,
        StoredRows {
            entries: 2,
            by_time: 2,
            vectors: 2,
            postings: 3
        }
    );
    assert_eq!(f.owner_rows(&entry_id(1)).await, 0);

    // All of a: b keeps everything.
    let b_hits = f.sqlite.nearest(&b, &q, 10).await.unwrap();
    let b_vectors = f
        .sqlite
        .vectors(&b, &[entry_id(4), entry_id(5)])
        .await
        .unwrap();
    for (name, index) in f.both() {
        index.remove_user(&a).await.unwrap();
        index.remove_user(&user(9)).await.unwrap();
        for i in 1..=3 {
            assert_eq!(
                index.fingerprint(&entry_id(i)).await.unwrap(),
                None,
                "{name}"
            );
        }
        assert!(
            index.nearest(&a, &q, 10).await.unwrap().is_empty(),
            "{name}"
        );
        assert!(
            index.postings(&a, &all_terms).await.unwrap().is_empty(),
            "{name}"
        );
        assert_eq!(
            index.stats(&a).await.unwrap(),
            IndexStats::default(),
            "{name}"
        );
        assert!(
            index
                .written_between(&a, span.0, span.1, 10)
                .await
                .unwrap()
                .is_empty(),
            "{name}"
        );
        assert!(
            index
                .vectors(&a, &[entry_id(2), entry_id(3)])
                .await
                .unwrap()
                .is_empty(),
            "{name}"
        );

        assert_same_hits(name, &index.nearest(&b, &q, 10).await.unwrap(), &b_hits);
        assert_eq!(
            index
                .vectors(&b, &[entry_id(4), entry_id(5)])
                .await
                .unwrap(),
            b_vectors,
            "{name}"
        );
        assert_eq!(
            index.fingerprint(&entry_id(4)).await.unwrap(),
            Some(4),
            "{name}"
        );
        assert_eq!(
            index.stats(&b).await.unwrap(),
            IndexStats {
                entries: 2,
                words: 150
            },
            "{name}"
        );
        assert_eq!(
            index.postings(&b, &all_terms).await.unwrap().len(),
            2,
            "{name}"
        );
    }
    assert_eq!(
        f.stored_rows(&a, &a_terms).await,
        StoredRows {
            entries: 0,
            by_time: 0,
            vectors: 0,
            postings: 0
        }
    );
    for i in 1..=3 {
        assert_eq!(f.owner_rows(&entry_id(i)).await, 0);
    }
    assert_eq!(f.stored_rows(&b, &a_terms).await, b_before);

    // Indexed again after a removal (analysis switched back on).
    f.put(&entries[..3]).await;
    let ours = f.cassandra.nearest(&a, &q, 10).await.unwrap();
    assert_same_hits(
        "indexed again",
        &ours,
        &f.sqlite.nearest(&a, &q, 10).await.unwrap(),
    );
    assert_eq!(ours.len(), 3);
    assert_eq!(
        f.stored_rows(&a, &a_terms).await,
        StoredRows {
            entries: 3,
            by_time: 3,
            vectors: 4,
            postings: 5
        }
    );
    f.finish().await;
}

#[tokio::test]
async fn clear_empties_every_table() {
    let f = fixture().await;
    let q = random(1);
    let entries: Vec<IndexedEntry> = (0..6u64)
        .map(|i| {
            let owner = user(u128::from(i % 2));
            let vectors = vec![toward(&q, 0.1 * i as f32, i)];
            indexed(
                &owner,
                entry_id(i),
                base_time(),
                vectors,
                &[("word", 1)],
                5,
                i as i64,
            )
        })
        .collect();
    f.put(&entries).await;
    let started = Instant::now();
    f.cassandra.clear().await.unwrap();
    eprintln!("clear (5 truncates): {:?}", started.elapsed());
    f.sqlite.clear().await.unwrap();
    for table in [
        "entry_search_entries",
        "entry_search_owner",
        "entry_search_by_time",
        "entry_search_vectors",
        "entry_search_terms",
    ] {
        assert_eq!(f.count(table, "", ()).await, 0, "{table}");
    }
    for (name, index) in f.both() {
        for entry in &entries {
            assert_eq!(
                index.fingerprint(&entry.entry_id).await.unwrap(),
                None,
                "{name}"
            );
            assert!(
                index
                    .nearest(&entry.user_id, &q, 10)
                    .await
                    .unwrap()
                    .is_empty(),
                "{name}"
            );
            assert_eq!(
                index.stats(&entry.user_id).await.unwrap(),
                IndexStats::default(),
                "{name}"
            );
        }
    }
    // A rebuild indexes everything again.
    f.put(&entries).await;
    for owner in [user(0), user(1)] {
        assert_same_hits(
            "rebuilt",
            &f.cassandra.nearest(&owner, &q, 10).await.unwrap(),
            &f.sqlite.nearest(&owner, &q, 10).await.unwrap(),
        );
        assert_eq!(
            f.cassandra.stats(&owner).await.unwrap(),
            IndexStats {
                entries: 3,
                words: 15
            }
        );
    }
    f.finish().await;
}
