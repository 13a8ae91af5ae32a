//! Search by meaning with the real model (all-MiniLM-L6-v2, fetched by `scripts/model.sh`)
//! against a real SQLite store:
//! - retrieval quality on a diary written for this test (`retrieval/corpus.json`: 60 entries of
//!   one writer over a year, 30 queries with the entries a person asking would want), as
//!   recall@5 and MRR, beside a keyword-only baseline (BM25 over the same stemmed terms) and
//!   similarity alone: the blended search must beat the baseline;
//! - the index follows the entries: updates, deletions and the analysis switch;
//! - related entries, themes in analytics, and the errors (no model, analysis off, bad input).

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, LazyLock, Mutex};

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use diary_service::application::{AnalyticsQuery, Diary, EntryDraft, SearchQuery};
use diary_service::domain::EntryChanges;
use diary_service::search::indexer::EntryIndexer;
use diary_service::search::{SearchIndex, Semantic, keyword_scores};
use diary_service::{DiaryReadModels, SqliteDiaryReadModels, UserDirectory};
use embeddings::Embedder;
use event_sourcing::sqlite::SqliteCheckpoints;
use event_sourcing::testing::scratch_sqlite_store;
use event_sourcing::{EventMetadata, EventStore, ProjectionRunner};
use metachat_proto::error::{ApiError, ErrorCode};
use metachat_validation::{EntryId, UserId};
use serde::Deserialize;

static MODEL: LazyLock<Arc<Embedder>> = LazyLock::new(|| {
    Arc::new(
        Embedder::load(&embeddings::model_dir_from_env())
            .unwrap_or_else(|e| panic!("{e} (run scripts/model.sh, as make test does)")),
    )
});

#[derive(Default)]
struct Registered(Mutex<HashSet<UserId>>);

#[async_trait]
impl UserDirectory for Registered {
    async fn user_exists(&self, user_id: &UserId) -> Result<bool, ApiError> {
        Ok(self.0.lock().unwrap().contains(user_id))
    }
}

struct Platform {
    diary: Diary,
    store: Arc<dyn EventStore>,
    queries: Arc<dyn DiaryReadModels>,
    semantic: Semantic,
    index: Arc<dyn SearchIndex>,
    users: Arc<Registered>,
    /// The read models and the indexer, caught up when a test says so.
    runners: Vec<ProjectionRunner>,
}

impl Platform {
    async fn new(with_model: bool) -> Self {
        let store = Arc::new(scratch_sqlite_store(diary_service::codec()).await);
        let read_models = Arc::new(
            SqliteDiaryReadModels::new(store.pool().clone())
                .await
                .unwrap(),
        );
        let queries: Arc<dyn DiaryReadModels> = read_models.clone();
        let index = queries.search_index();
        let semantic = Semantic {
            model: MODEL.clone(),
            index: index.clone(),
        };
        let checkpoints = Arc::new(SqliteCheckpoints::new(&store));
        let events: Arc<dyn EventStore> = store.clone();
        let runners = vec![
            ProjectionRunner::new(events.clone(), checkpoints.clone(), read_models.clone()),
            ProjectionRunner::new(
                events.clone(),
                checkpoints,
                Arc::new(EntryIndexer::new(
                    events.clone(),
                    queries.clone(),
                    semantic.clone(),
                )),
            ),
        ];
        let users = Arc::new(Registered::default());
        let diary = Diary::new(events.clone(), queries.clone(), users.clone())
            .with_semantic(with_model.then_some(semantic.clone()));
        Self {
            diary,
            store: events,
            queries,
            semantic,
            index,
            users,
            runners,
        }
    }

    fn user(&self) -> UserId {
        let id = UserId::new();
        self.users.0.lock().unwrap().insert(id);
        id
    }

    async fn catch_up(&self) {
        for runner in &self.runners {
            runner.catch_up().await.unwrap();
        }
    }

    async fn write(
        &self,
        user: &UserId,
        title: &str,
        content: &str,
        at: Option<DateTime<Utc>>,
    ) -> EntryId {
        let draft = EntryDraft {
            title: title.into(),
            content: content.into(),
            created_at: at,
            ..EntryDraft::default()
        };
        let written = self
            .diary
            .write_entry(user, draft, &EventMetadata::default())
            .await
            .unwrap();
        written.state.live().unwrap().id
    }

    async fn search(
        &self,
        user: &UserId,
        text: &str,
        limit: u32,
    ) -> Result<Vec<(EntryId, f32)>, ApiError> {
        let query = SearchQuery {
            text: text.into(),
            page: 1,
            limit,
        };
        let found = self.diary.search(user, &query).await?;
        Ok(found
            .matches
            .iter()
            .map(|m| (m.entry.state.live().unwrap().id, m.ranked.score))
            .collect())
    }
}

#[derive(Deserialize)]
struct Corpus {
    entries: Vec<CorpusEntry>,
    queries: Vec<CorpusQuery>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct CorpusEntry {
    id: String,
    created_at: DateTime<Utc>,
    title: String,
    content: String,
}

#[derive(Deserialize)]
struct CorpusQuery {
    id: String,
    query: String,
    relevant: Vec<String>,
}

/// recall@5 and reciprocal rank of one ranking.
fn measure(ranking: &[String], relevant: &[String]) -> (f64, f64) {
    let found = ranking
        .iter()
        .take(5)
        .filter(|id| relevant.contains(id))
        .count();
    let recall = found as f64 / relevant.len().min(5) as f64;
    let rank = ranking.iter().position(|id| relevant.contains(id));
    (recall, rank.map_or(0.0, |r| 1.0 / (r + 1) as f64))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn search_by_meaning_beats_keywords_on_a_diary_written_for_it() {
    let corpus: Corpus =
        serde_json::from_str(include_str!("retrieval/corpus.json")).expect("the corpus is JSON");
    let platform = Platform::new(true).await;
    let user = platform.user();
    let mut names: HashMap<EntryId, String> = HashMap::new();
    for e in &corpus.entries {
        let id = platform
            .write(&user, &e.title, &e.content, Some(e.created_at))
            .await;
        names.insert(id, e.id.clone());
    }
    platform.catch_up().await;
    let stats = platform.index.stats(&user).await.unwrap();
    assert_eq!(
        stats.entries,
        corpus.entries.len() as u64,
        "every entry is indexed"
    );

    let (mut blended, mut keyword, mut similarity) = ((0.0, 0.0), (0.0, 0.0), (0.0, 0.0));
    println!(
        "{:<4} {:>9} {:>9} {:>9}  query",
        "", "blended", "keywords", "meaning"
    );
    for q in &corpus.queries {
        // The search as clients get it.
        let found = platform.search(&user, &q.query, 50).await.unwrap();
        let ranking: Vec<String> = found.iter().map(|(id, _)| names[id].clone()).collect();
        // Keywords only: BM25 over the same index, every entry a candidate.
        let terms: Vec<String> = analysis::terms::terms(&q.query, None)
            .counts
            .into_iter()
            .map(|(t, _)| t)
            .collect();
        let postings = platform.index.postings(&user, &terms).await.unwrap();
        let mut by_keyword: Vec<(EntryId, f32)> = keyword_scores(&terms, &postings, stats)
            .into_iter()
            .collect();
        by_keyword.sort_by(|a, b| {
            b.1.total_cmp(&a.1)
                .then_with(|| a.0.as_uuid().cmp(b.0.as_uuid()))
        });
        let keyword_ranking: Vec<String> =
            by_keyword.iter().map(|(id, _)| names[id].clone()).collect();
        // Similarity alone.
        let vector = MODEL.embed(&[q.query.as_str()]).unwrap().remove(0);
        let nearest = platform.index.nearest(&user, &vector, 100).await.unwrap();
        let meaning_ranking: Vec<String> =
            nearest.iter().map(|h| names[&h.entry_id].clone()).collect();

        let b = measure(&ranking, &q.relevant);
        let k = measure(&keyword_ranking, &q.relevant);
        let s = measure(&meaning_ranking, &q.relevant);
        for (total, one) in [(&mut blended, b), (&mut keyword, k), (&mut similarity, s)] {
            total.0 += one.0;
            total.1 += one.1;
        }
        println!(
            "{:<4} {:>9.2} {:>9.2} {:>9.2}  {}",
            q.id, b.0, k.0, s.0, q.query
        );
    }
    let n = corpus.queries.len() as f64;
    let mean = |t: (f64, f64)| (t.0 / n, t.1 / n);
    let (blended, keyword, similarity) = (mean(blended), mean(keyword), mean(similarity));
    println!(
        "\n{} entries, {} queries",
        corpus.entries.len(),
        corpus.queries.len()
    );
    println!("{:<28} {:>9} {:>7}", "", "recall@5", "MRR");
    println!(
        "{:<28} {:>9.3} {:>7.3}",
        "search (meaning + keywords)", blended.0, blended.1
    );
    println!(
        "{:<28} {:>9.3} {:>7.3}",
        "keywords only (BM25)", keyword.0, keyword.1
    );
    println!(
        "{:<28} {:>9.3} {:>7.3}",
        "meaning only (cosine)", similarity.0, similarity.1
    );
    assert!(
        blended.0 > keyword.0 && blended.1 > keyword.1,
        "search must beat the keyword baseline: {blended:?} against {keyword:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_index_follows_updates_deletions_and_the_analysis_switch() {
    let platform = Platform::new(true).await;
    let (user, other) = (platform.user(), platform.user());
    let hospital = platform
        .write(
            &user,
            "Ward 4",
            "Sat with Dad at the hospital all afternoon while the nurses changed his drip.",
            None,
        )
        .await;
    let garden = platform
        .write(
            &user,
            "",
            "Planted tomatoes and basil in the raised bed; the soil was still cold.",
            None,
        )
        .await;
    let baking = platform
        .write(
            &user,
            "Bread",
            "My sourdough finally rose properly. Crust crackled as it cooled.",
            None,
        )
        .await;
    platform
        .write(
            &other,
            "",
            "Visited my father in hospital; he is recovering from surgery.",
            None,
        )
        .await;
    platform.catch_up().await;
    assert_eq!(platform.index.stats(&user).await.unwrap().entries, 3);

    // Only the writer's own entries, the best first.
    let found = platform
        .search(&user, "visiting my sick father", 10)
        .await
        .unwrap();
    assert_eq!(found.first().map(|f| f.0), Some(hospital), "{found:?}");
    assert!(
        found
            .iter()
            .all(|(id, _)| [hospital, garden, baking].contains(id))
    );
    // Paged: a second page of one, and a page past the results is empty.
    let page_two = platform
        .diary
        .search(
            &user,
            &SearchQuery {
                text: "food I made".into(),
                page: 2,
                limit: 1,
            },
        )
        .await
        .unwrap();
    assert_eq!(page_two.page, 2);
    let far = platform
        .diary
        .search(
            &user,
            &SearchQuery {
                text: "food I made".into(),
                page: 1000,
                limit: 50,
            },
        )
        .await
        .unwrap();
    assert!(far.matches.is_empty() && !far.has_more);

    // An update is indexed again: the garden entry becomes about baking.
    platform
        .diary
        .change_entry(
            &garden,
            EntryChanges {
                content: Some(
                    "Baked cinnamon buns and a sourdough loaf for the neighbours.".into(),
                ),
                ..EntryChanges::default()
            },
            None,
            &EventMetadata::default(),
        )
        .await
        .unwrap();
    platform.catch_up().await;
    let found = platform.search(&user, "baking bread", 2).await.unwrap();
    let ids: HashSet<EntryId> = found.iter().map(|f| f.0).collect();
    assert_eq!(ids, HashSet::from([garden, baking]), "{found:?}");

    // Related entries: the other baking entry first, never itself.
    let related = platform.diary.related(&baking, 1, 10).await.unwrap();
    let related_ids: Vec<EntryId> = related
        .matches
        .iter()
        .map(|m| m.entry.state.live().unwrap().id)
        .collect();
    assert_eq!(related_ids.first(), Some(&garden), "{related_ids:?}");
    assert!(!related_ids.contains(&baking));

    // A deleted entry leaves the index and the results.
    platform
        .diary
        .delete_entry(&baking, None, &EventMetadata::default())
        .await
        .unwrap();
    platform.catch_up().await;
    assert_eq!(platform.index.fingerprint(&baking).await.unwrap(), None);
    assert!(
        platform
            .search(&user, "sourdough", 10)
            .await
            .unwrap()
            .iter()
            .all(|f| f.0 != baking)
    );
    assert_eq!(
        platform
            .diary
            .related(&baking, 1, 10)
            .await
            .unwrap_err()
            .code,
        ErrorCode::NotFound
    );

    // Analysis off: the writer's index is emptied, searches are refused; others keep theirs.
    platform
        .diary
        .set_analysis_setting(&user, false, &EventMetadata::default())
        .await
        .unwrap();
    platform.catch_up().await;
    assert_eq!(platform.index.stats(&user).await.unwrap().entries, 0);
    assert_eq!(platform.index.stats(&other).await.unwrap().entries, 1);
    let refused = platform.search(&user, "hospital", 10).await.unwrap_err();
    assert_eq!(refused.code, ErrorCode::FailedPrecondition, "{refused:?}");
    assert!(refused.message.contains("analysis is switched off"));
    // An entry written while it is off is not indexed.
    let unindexed = platform
        .write(&user, "", "A quiet evening reading by the window.", None)
        .await;
    platform.catch_up().await;
    assert_eq!(platform.index.fingerprint(&unindexed).await.unwrap(), None);

    // On again: every live entry is indexed again, the deleted one is not.
    platform
        .diary
        .set_analysis_setting(&user, true, &EventMetadata::default())
        .await
        .unwrap();
    platform.catch_up().await;
    assert_eq!(platform.index.stats(&user).await.unwrap().entries, 3);
    assert_eq!(platform.index.fingerprint(&baking).await.unwrap(), None);
    let found = platform
        .search(&user, "father in hospital", 1)
        .await
        .unwrap();
    assert_eq!(found.first().map(|f| f.0), Some(hospital));

    // Re-indexing an emptied index from the store: the live entries, not the deleted one.
    platform.index.clear().await.unwrap();
    let indexer = EntryIndexer::new(
        platform.store.clone(),
        platform.queries.clone(),
        platform.semantic.clone(),
    );
    let done = indexer
        .reindex_all(platform.store.as_ref(), |_| {})
        .await
        .unwrap();
    assert_eq!((done.stored, done.current), (4, 0), "{done:?}");
    assert_eq!(platform.index.stats(&user).await.unwrap().entries, 3);
    assert_eq!(platform.index.fingerprint(&baking).await.unwrap(), None);
    let again = indexer
        .reindex_all(platform.store.as_ref(), |_| {})
        .await
        .unwrap();
    assert_eq!((again.stored, again.current), (0, 4), "{again:?}");

    // Replaying every event indexes nothing twice and nothing stale.
    for runner in &platform.runners[1..] {
        runner.rebuild().await.unwrap();
    }
    assert_eq!(platform.index.stats(&user).await.unwrap().entries, 3);
    assert_eq!(platform.index.fingerprint(&baking).await.unwrap(), None);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn short_queries_match_the_writers_language_and_long_entries_stay_bounded() {
    let platform = Platform::new(true).await;
    let user = platform.user();
    let german = platform
        .write(
            &user,
            "",
            "Heute bin ich mit meinen Freunden in den Bergen gewandert. Die Aussicht auf den \
             Bodensee war wunderschön und wir haben viele Fotos gemacht.",
            None,
        )
        .await;
    // 15,000 words: far more than the chunks embedded; a rare word at its very end.
    let long_text = format!(
        "{} The last line names the xylophone.",
        "We walked along the harbour and talked about nothing in particular. ".repeat(1_400)
    );
    let long = platform.write(&user, "", &long_text, None).await;
    platform.catch_up().await;
    // One word, too short to tell its language: stemmed as the writer's entries are.
    let found = platform
        .diary
        .search(
            &user,
            &SearchQuery {
                text: "Freunden".into(),
                page: 1,
                limit: 5,
            },
        )
        .await
        .unwrap();
    let hit = found
        .matches
        .iter()
        .find(|m| m.entry.state.live().unwrap().id == german)
        .expect("the German entry is found");
    assert!(hit.ranked.keyword > 0.3, "{:?}", hit.ranked);
    // The long entry: at most MAX_CHUNKS vectors, and its last word still found by keyword.
    let stored = platform.index.vectors(&user, &[long]).await.unwrap();
    assert_eq!(
        stored[0].vectors.len(),
        diary_service::search::indexer::MAX_CHUNKS
    );
    let found = platform
        .diary
        .search(
            &user,
            &SearchQuery {
                text: "xylophone".into(),
                page: 1,
                limit: 5,
            },
        )
        .await
        .unwrap();
    let hit = found
        .matches
        .iter()
        .find(|m| m.entry.state.live().unwrap().id == long)
        .expect("the long entry is found by its last word");
    assert!(hit.ranked.keyword > 0.3, "{:?}", hit.ranked);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn analytics_group_a_period_into_labelled_themes() {
    let platform = Platform::new(true).await;
    let user = platform.user();
    let at = |day: u32| Some(format!("2026-10-{day:02}T20:00:00Z").parse().unwrap());
    let running = [
        "Long run along the river this morning, my knees held up and my pace was steady for ten kilometres.",
        "Interval training at the track: six fast laps, lungs burning, but my running pace is improving.",
        "Registered for the half marathon in spring. Running four times a week from now on.",
        "Easy recovery run in the rain; the marathon training plan says slow kilometres today.",
    ];
    let hospital = [
        "Dad's chemotherapy session took four hours at the hospital; the oncologist seemed hopeful.",
        "Drove Dad to the hospital again. The chemotherapy leaves him exhausted and nauseous.",
        "The oncologist changed Dad's chemotherapy dose after the blood tests at the hospital.",
        "Sat beside Dad in the hospital ward while the chemotherapy drip ran, holding his hand.",
    ];
    let mut day = 1;
    for text in running.iter().chain(&hospital) {
        platform.write(&user, "", text, at(day)).await;
        day += 2;
    }
    platform.catch_up().await;
    let query = AnalyticsQuery {
        period: "month".into(),
        from: "2026-10-01T00:00:00Z".parse().ok(),
        to: "2026-11-01T00:00:00Z".parse().ok(),
        time_zone: String::new(),
    };
    let analytics = platform.diary.analytics(&user, &query, "").await.unwrap();
    let themes = analytics.themes.expect("themes with the model");
    println!(
        "themes: {:?}",
        themes
            .iter()
            .map(|t| (&t.label, t.entry_count))
            .collect::<Vec<_>>()
    );
    assert_eq!(themes.len(), 2, "{themes:#?}");
    assert!(themes.iter().all(|t| t.entry_count == 4), "{themes:#?}");
    let labels: Vec<&str> = themes.iter().map(|t| t.label.as_str()).collect();
    assert!(
        labels.iter().any(|l| l.contains("chemotherapy")
            || l.contains("hospital")
            || l.contains("oncologist")),
        "{labels:?}"
    );
    assert!(
        labels
            .iter()
            .any(|l| l.contains("run") || l.contains("marathon") || l.contains("pace")),
        "{labels:?}"
    );

    // Analysis off: no themes.
    platform
        .diary
        .set_analysis_setting(&user, false, &EventMetadata::default())
        .await
        .unwrap();
    platform.catch_up().await;
    assert!(
        platform
            .diary
            .analytics(&user, &query, "")
            .await
            .unwrap()
            .themes
            .is_none()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_the_model_or_with_bad_input_the_answers_say_why() {
    let platform = Platform::new(false).await;
    let user = platform.user();
    let entry = platform.write(&user, "", "Some words.", None).await;
    let unavailable = platform.search(&user, "words", 10).await.unwrap_err();
    assert_eq!(unavailable.code, ErrorCode::Unavailable);
    assert!(
        unavailable.message.contains("model"),
        "{}",
        unavailable.message
    );
    assert_eq!(
        platform
            .diary
            .related(&entry, 1, 10)
            .await
            .unwrap_err()
            .code,
        ErrorCode::Unavailable
    );
    let analytics = platform
        .diary
        .analytics(
            &user,
            &AnalyticsQuery {
                period: "week".into(),
                ..AnalyticsQuery::default()
            },
            "",
        )
        .await
        .unwrap();
    assert!(analytics.themes.is_none());

    let platform = Platform::new(true).await;
    let user = platform.user();
    for (text, limit, field) in [
        ("   ", 10, "q"),
        (&"a".repeat(1001) as &str, 10, "q"),
        ("ok", 51, "limit"),
    ] {
        let error = platform
            .diary
            .search(
                &user,
                &SearchQuery {
                    text: text.into(),
                    page: 1,
                    limit,
                },
            )
            .await
            .unwrap_err();
        assert_eq!(error.code, ErrorCode::InvalidArgument);
        assert_eq!(error.details[0].field, field);
    }
    // A user nobody registered.
    let error = platform
        .search(&UserId::new(), "anything", 10)
        .await
        .unwrap_err();
    assert_eq!(error.code, ErrorCode::NotFound);
    // No entries yet: nothing found, no error.
    assert!(
        platform
            .search(&user, "anything at all", 10)
            .await
            .unwrap()
            .is_empty()
    );
}
