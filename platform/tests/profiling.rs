//! Two weeks of writing through the HTTP API, then what the platform understood of it: the
//! analytics of the period, checked number by number against what the test wrote (measured
//! here with the same analysis crates), and the profile the user service inferred, which
//! never overwrites what the user chose. Runs on the embedded platform, and with
//! `METACHAT_TEST_WIRING=production` over PostgreSQL, Kafka and Cassandra.

mod support;

use std::collections::BTreeMap;

use chrono::{DateTime, Duration, FixedOffset, NaiveDate, SecondsFormat, SubsecRound, Utc};
use reqwest::StatusCode;
use serde_json::{Value, json};
use support::{Platform, Reply};

/// Sentences a reflective writer might put in a diary; each entry takes a few of them.
const THOUGHTS: &[&str] = &[
    "I keep thinking about why the project stalled, and I wonder whether the plan was wrong from the start.",
    "Maybe the real question is what I believe about my own work, and whether that belief is true.",
    "I tried to understand the argument from both sides before I decided anything.",
    "Reading that essay made me reconsider my assumptions about time and attention.",
    "I realised that I analyse every conversation afterwards, looking for the reason behind each word.",
    "Why do I find it so hard to rest when nothing is urgent?",
    "I noticed a pattern: the more I reflect in the morning, the calmer the afternoon feels.",
    "Today I learned that a good theory explains the evidence without ignoring the awkward parts.",
];

const SENSES: &[&str] = &[
    "The light on the river was bright and I watched the colours change until dusk.",
    "I heard the rain on the roof and the quiet hum of the city behind it.",
    "My shoulders felt heavy, so I walked for an hour and the tension slowly eased.",
    "I saw the old photographs again and could picture every face clearly.",
    "The music at the café was loud, but the voices around me sounded warm and friendly.",
    "I did not feel tired tonight, and the cool air on my skin was pleasant.",
];

const MOODS: &[&str] = &[
    "It was a good day and I am grateful for it.",
    "I felt anxious and a little sad, but it passed.",
    "Honestly, it was frustrating and I am annoyed with myself.",
    "I am happy with how calm and focused I stayed!",
    "Nothing special happened; an ordinary, quiet evening.",
];

/// The content of the `n`-th entry: deterministic, varied, long enough to be analysed.
fn content(n: usize) -> String {
    let mut sentences = Vec::new();
    for k in 0..3 {
        sentences.push(THOUGHTS[(n * 3 + k) % THOUGHTS.len()]);
    }
    sentences.push(SENSES[(n * 5) % SENSES.len()]);
    sentences.push(SENSES[(n * 5 + 2) % SENSES.len()]);
    sentences.push(MOODS[n % MOODS.len()]);
    sentences.join(" ")
}

/// As the API writes times (the test's times are whole seconds).
fn rfc3339(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::AutoSi, true)
}

/// One entry as written, with what the analysers measure of it.
struct Written {
    id: String,
    created_at: DateTime<Utc>,
    analysis: analysis::Analysis,
    compound: f64,
    tag: String,
}

/// What the test wrote: 13 of the last 14 days (one day skipped), a 45-minute session each
/// evening with two entries in it.
struct Diary {
    user: String,
    entries: Vec<Written>,
    sessions: usize,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
}

const SKIPPED_DAY: i64 = 6;
const SESSION_MINUTES: i64 = 45;

async fn write_two_weeks(app: &Platform) -> Diary {
    let user = app.create_user().await;
    let now = Utc::now().trunc_subsecs(0);
    let mut entries = Vec::new();
    let mut sessions = 0;
    for day in 0..14i64 {
        if day == SKIPPED_DAY {
            continue;
        }
        let start = now - Duration::days(13 - day) - Duration::minutes(90);
        let session = app
            .post(
                "/diary/sessions",
                json!({"userId": user, "startTime": rfc3339(start)}),
            )
            .await;
        assert_eq!(session.status, StatusCode::CREATED, "{}", session.body);
        let session = session.id();
        for (k, minutes) in [10, 30].into_iter().enumerate() {
            let n = entries.len();
            let text = content(n);
            let created_at = start + Duration::minutes(minutes);
            let tag = format!("topic-{}", (day as usize + k) % 3);
            let reply = app
                .post(
                    "/diary/entries",
                    json!({
                        "userId": user,
                        "sessionId": session,
                        "title": format!("Evening {day}.{k}"),
                        "content": text,
                        "tags": [tag],
                        "createdAt": rfc3339(created_at),
                    }),
                )
                .await;
            assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.body);
            let id = reply.id();
            assert_eq!(
                reply.body["createdAt"],
                rfc3339(created_at),
                "{}",
                reply.body
            );
            entries.push(Written {
                id,
                created_at,
                analysis: analysis::analyze(&text),
                compound: sentiment::polarity_scores(&text).compound,
                tag,
            });
        }
        let end = start + Duration::minutes(SESSION_MINUTES);
        let ended = app
            .put(
                &format!("/diary/sessions/{session}/end"),
                json!({"endTime": rfc3339(end)}),
            )
            .await;
        assert_eq!(ended.status, StatusCode::OK, "{}", ended.body);
        sessions += 1;
    }
    Diary {
        user,
        entries,
        sessions,
        from: now - Duration::days(15),
        to: now + Duration::minutes(1),
    }
}

fn analytics_path(diary: &Diary, time_zone: &str) -> String {
    format!(
        "/diary/analytics?userId={}&from={}&to={}&timeZone={time_zone}",
        diary.user,
        rfc3339(diary.from),
        rfc3339(diary.to),
    )
}

fn close(actual: &Value, expected: f64, tolerance: f64, what: &str) {
    let actual = actual
        .as_f64()
        .unwrap_or_else(|| panic!("{what}: {actual} is not a number"));
    assert!(
        (actual - expected).abs() <= tolerance,
        "{what}: {actual} against {expected} (± {tolerance})"
    );
}

/// The analytics once every analysis is counted.
async fn settled_analytics(app: &Platform, diary: &Diary, time_zone: &str) -> Reply {
    let expected = diary.entries.len() as u64;
    // The analyses may be counted before the last session's end (they are appended
    // concurrently with it): both are waited for.
    let minutes = (diary.sessions as i64 * SESSION_MINUTES) as f64;
    app.eventually(&analytics_path(diary, time_zone), |r| {
        r.status == StatusCode::OK
            && r.body["profile"]["entries"].as_u64() == Some(expected)
            && r.body["totalSessionMinutes"].as_f64() == Some(minutes)
    })
    .await
}

/// Entries per local day of `offset`.
fn per_day(diary: &Diary, offset: FixedOffset) -> BTreeMap<NaiveDate, Vec<&Written>> {
    let mut days: BTreeMap<NaiveDate, Vec<&Written>> = BTreeMap::new();
    for e in &diary.entries {
        days.entry(e.created_at.with_timezone(&offset).date_naive())
            .or_default()
            .push(e);
    }
    days
}

fn check_analytics(body: &Value, diary: &Diary) {
    let n = diary.entries.len();
    assert_eq!(body["entryCount"], n, "{body}");
    assert_eq!(body["sessionCount"], diary.sessions);
    close(
        &body["totalSessionMinutes"],
        (diary.sessions as i64 * SESSION_MINUTES) as f64,
        1e-6,
        "totalSessionMinutes",
    );
    close(
        &body["averageSessionMinutes"],
        SESSION_MINUTES as f64,
        1e-6,
        "averageSessionMinutes",
    );
    let tokens: u64 = diary
        .entries
        .iter()
        .map(|e| u64::from(e.analysis.token_count))
        .sum();
    let words: u64 = diary
        .entries
        .iter()
        .map(|e| u64::from(e.analysis.word_count))
        .sum();
    assert_eq!(body["totalTokens"], tokens);
    assert_eq!(body["wordCount"], words);
    // 13 writing days: the 7 after the skipped day, the 6 before it.
    assert_eq!(body["writingDays"], 13);
    assert_eq!(body["longestStreak"], 7);
    assert_eq!(body["currentStreak"], 7);
    let mean: f64 = diary.entries.iter().map(|e| e.compound).sum::<f64>() / n as f64;
    close(&body["meanSentiment"], mean, 1e-4, "meanSentiment");

    // The per-day series in UTC: every day of the window, the written ones exact.
    let days = per_day(diary, FixedOffset::east_opt(0).unwrap());
    let series: BTreeMap<String, &Value> = body["days"]
        .as_array()
        .expect("days")
        .iter()
        .map(|d| (d["date"].as_str().unwrap().to_owned(), d))
        .collect();
    let span = (diary.to.date_naive() - diary.from.date_naive()).num_days() + 1;
    assert_eq!(series.len() as i64, span, "every day of the window");
    for (date, written) in &days {
        let day = series[&date.to_string()];
        assert_eq!(day["entries"], written.len(), "{date}");
        let tokens: u64 = written
            .iter()
            .map(|e| u64::from(e.analysis.token_count))
            .sum();
        assert_eq!(day["tokens"], tokens, "{date}");
        let words: u64 = written
            .iter()
            .map(|e| u64::from(e.analysis.word_count))
            .sum();
        assert_eq!(day["words"], words, "{date}");
        let mean = written.iter().map(|e| e.compound).sum::<f64>() / written.len() as f64;
        close(
            &day["meanSentiment"],
            mean,
            1e-4,
            &format!("{date} sentiment"),
        );
    }
    let quiet = series
        .iter()
        .filter(|(d, _)| !days.contains_key(&d.parse::<NaiveDate>().unwrap()))
        .count();
    assert_eq!(quiet as i64, span - days.len() as i64);

    // Tags, most frequent first.
    let mut tags: BTreeMap<&str, u64> = BTreeMap::new();
    for e in &diary.entries {
        *tags.entry(e.tag.as_str()).or_default() += 1;
    }
    for t in body["tagFrequencies"].as_array().expect("tags") {
        assert_eq!(t["count"], tags[t["tag"].as_str().unwrap()], "{t}");
    }
    assert_eq!(body["tagFrequencies"].as_array().unwrap().len(), tags.len());

    // Keywords: each counted in as many entries as name it among their own keywords.
    let keywords = body["topKeywords"].as_array().expect("topKeywords");
    assert!(!keywords.is_empty(), "{body}");
    for k in keywords {
        let phrase = k["keyword"].as_str().unwrap();
        let entries = diary
            .entries
            .iter()
            .filter(|e| e.analysis.keywords.iter().any(|w| w.phrase == phrase))
            .count();
        assert_eq!(k["entries"], entries, "{phrase}");
    }

    // The period's profile: the analysis crate's, from the same entries.
    let profile = analysis::profile(diary.entries.iter().map(|e| &e.analysis));
    let p = &body["profile"];
    assert_eq!(p["entries"], n);
    assert_eq!(p["words"], profile.features.lexicon_words);
    let analysis::ArchetypeSignals::Measured { signals } = &profile.archetype_signals else {
        panic!("two weeks of writing are enough to measure");
    };
    assert_eq!(p["archetypeState"], "measured");
    assert_eq!(
        p["archetypeSignals"][0]["id"],
        signals[0].id.as_str(),
        "{p}"
    );
    close(
        &p["archetypeSignals"][0]["confidence"],
        signals[0].confidence,
        1e-6,
        "top signal",
    );
    let analysis::SensoryProfile::Measured(sensory) = &profile.sensory else {
        panic!("two weeks of writing are enough to measure");
    };
    assert_eq!(p["sensoryState"], "measured");
    close(&p["sensory"]["visual"], sensory.visual, 1e-6, "visual");
    close(
        &p["sensory"]["auditory"],
        sensory.auditory,
        1e-6,
        "auditory",
    );
    close(
        &p["sensory"]["kinesthetic"],
        sensory.kinesthetic,
        1e-6,
        "kinesthetic",
    );
}

/// Runs `metachat reanalyze` against the platform's store, returning what it printed.
fn reanalyze(app: &Platform) -> String {
    let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_metachat"));
    command
        .arg("reanalyze")
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("LOG_LEVEL", "warn");
    match &app.wiring {
        support::Wiring::Production(env) => {
            for (key, value) in env.service_env("reanalyze") {
                command.env(key, value);
            }
        }
        _ => {
            command.env("DATA_DIR", &app.data_dir);
        }
    }
    let output = command.output().expect("run metachat reanalyze");
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(
        output.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&output.stderr)
    );
    stdout
}

#[tokio::test]
async fn two_weeks_of_writing_give_exact_analytics_and_an_inferred_profile_beside_the_chosen_one() {
    let app = Platform::start().await;
    let diary = write_two_weeks(&app).await;
    let user = diary.user.clone();
    // The user chose an archetype of their own.
    let chosen = app
        .post(
            &format!("/users/{user}/archetype"),
            json!({"archetypeId": "planner", "archetypeName": "The Planner",
                   "confidence": 0.9, "description": "my own choice"}),
        )
        .await;
    assert_eq!(chosen.status, StatusCode::OK, "{}", chosen.body);

    let analytics = settled_analytics(&app, &diary, "UTC").await;
    check_analytics(&analytics.body, &diary);

    // Each entry's analysis explains itself: states, sensory words, features and words.
    let first = &diary.entries[0];
    let entry = app.get(&format!("/diary/entries/{}", first.id)).await;
    let explained = &entry.body["analysis"]["explanation"];
    let single = analysis::profile(std::iter::once(&first.analysis));
    assert_eq!(explained["entries"], 1, "{}", entry.body);
    assert_eq!(explained["words"], single.features.lexicon_words);
    let expected_state = |measured: bool| {
        if measured {
            "measured"
        } else {
            "insufficientText"
        }
    };
    assert_eq!(
        explained["archetypeState"],
        expected_state(matches!(
            single.archetype_signals,
            analysis::ArchetypeSignals::Measured { .. }
        ))
    );
    assert_eq!(
        explained["sensoryState"],
        expected_state(matches!(
            single.sensory,
            analysis::SensoryProfile::Measured(_)
        ))
    );
    if let analysis::ArchetypeSignals::Measured { signals } = &single.archetype_signals {
        assert_eq!(
            explained["archetypeSignals"][0]["id"],
            signals[0].id.as_str()
        );
        assert!(
            !explained["archetypeSignals"][0]["evidence"]
                .as_array()
                .unwrap()
                .is_empty()
        );
    }
    assert_eq!(analytics.body["analysisEnabled"], true);
    assert_eq!(analytics.body["timeZone"], "UTC");

    // The same window in India (UTC+05:30, no daylight saving): the days are local days.
    let india = settled_analytics(&app, &diary, "Asia/Kolkata").await;
    let local = per_day(&diary, FixedOffset::east_opt(5 * 3600 + 1800).unwrap());
    for day in india.body["days"].as_array().unwrap() {
        let date: NaiveDate = day["date"].as_str().unwrap().parse().unwrap();
        let expected = local.get(&date).map_or(0, Vec::len);
        assert_eq!(day["entries"], expected, "{date} in Asia/Kolkata");
    }

    // The inferred profile: the analysis crate's over the same writing (recorded when it
    // moves by a step or more, so within that step of the exact figure).
    let profile = analysis::profile(diary.entries.iter().map(|e| &e.analysis));
    let analysis::ArchetypeSignals::Measured { signals } = &profile.archetype_signals else {
        panic!("measured");
    };
    let analysis::SensoryProfile::Measured(sensory) = &profile.sensory else {
        panic!("measured");
    };
    let step = 0.02;
    let within = |v: &Value, x: f64| v.as_f64().is_some_and(|v| (v - x).abs() < step + 1e-9);
    let settled = app
        .eventually(&format!("/users/{user}"), |r| {
            let a = &r.body["inferredArchetype"];
            let m = &r.body["inferredModalities"]["weights"];
            a["archetypeId"] == signals[0].id.as_str()
                && within(&a["confidence"], signals[0].confidence)
                && within(&m["visual"], sensory.visual)
                && within(&m["auditory"], sensory.auditory)
                && within(&m["kinesthetic"], sensory.kinesthetic)
        })
        .await;
    let user_json = &settled.body;
    let inferred = &user_json["inferredArchetype"];
    assert_eq!(inferred["archetypeName"], signals[0].name.as_str());
    assert!(!inferred["evidence"].as_array().unwrap().is_empty());
    assert_eq!(inferred["basis"]["windowDays"], 90);
    assert!(inferred["basis"]["entries"].as_u64().unwrap() >= 1);
    assert!(inferred["assignedAt"].is_string());
    let coverage = user_json["inferredModalities"]["coverage"]
        .as_f64()
        .unwrap();
    assert!(coverage > 0.0 && coverage < 1.0, "{coverage}");
    // What the user chose is untouched.
    assert_eq!(user_json["archetype"]["archetypeId"], "planner");
    assert_eq!(user_json["archetype"]["confidence"], 0.9);
    // The history shows the inference as the product's events, marked inferred.
    let history = app.get(&format!("/users/{user}/history")).await;
    let inferred_events: Vec<&Value> = history.body["events"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["data"]["inferred"].is_object())
        .collect();
    assert!(
        inferred_events
            .iter()
            .any(|e| e["eventType"] == "ArchetypeAssigned"),
        "{}",
        history.body
    );
    assert!(
        inferred_events
            .iter()
            .any(|e| e["eventType"] == "ModalitiesUpdated")
    );

    // A re-analysis while the platform serves: every entry's analysis is current, so it
    // records nothing, and the analytics stay exact.
    let output = reanalyze(&app);
    assert!(
        output.contains(&format!(
            "0 analyses recorded, {} entries already current",
            diary.entries.len()
        )),
        "{output}"
    );
    check_analytics(&settled_analytics(&app, &diary, "UTC").await.body, &diary);

    // The catalogue names the inferred archetype.
    let catalogue = app.get("/archetypes").await;
    assert_eq!(catalogue.status, StatusCode::OK);
    assert!(
        catalogue.body["archetypes"]
            .as_array()
            .unwrap()
            .iter()
            .any(|a| a["id"] == inferred["archetypeId"])
    );

    // Switched off: everything derived disappears, what the user wrote and chose stays.
    let before_off = rfc3339(Utc::now());
    let off = app
        .put(
            &format!("/users/{user}/analysis"),
            json!({"enabled": false}),
        )
        .await;
    assert_eq!(off.status, StatusCode::OK, "{}", off.body);
    assert_eq!(off.body["enabled"], false);
    let cleared = app
        .eventually(&format!("/users/{user}"), |r| {
            r.body["inferredArchetype"].is_null() && r.body["inferredModalities"].is_null()
        })
        .await;
    assert_eq!(cleared.body["archetype"]["archetypeId"], "planner");
    // Erased also from the user's past and history: no inferred value, no evidence word.
    let past = app.get(&format!("/users/{user}?asOf={before_off}")).await;
    assert_eq!(past.status, StatusCode::OK, "{}", past.body);
    assert!(past.body["inferredArchetype"].is_null(), "{}", past.body);
    assert_eq!(past.body["archetype"]["archetypeId"], "planner");
    let history = app.get(&format!("/users/{user}/history")).await;
    let events = history.body["events"].as_array().unwrap();
    assert!(
        events.iter().all(|e| e["data"]["inferred"].is_null()),
        "{}",
        history.body
    );
    assert!(
        events
            .iter()
            .any(|e| e["eventType"] == "ArchetypeAssigned" && e["data"]["erased"].is_string())
    );
    let entry = app
        .get(&format!("/diary/entries/{}", diary.entries[0].id))
        .await;
    assert!(entry.body["analysis"].is_null(), "{}", entry.body);
    assert!(off.headers.get("x-consistency-token").is_none());
    let hidden = app
        .eventually(&analytics_path(&diary, "UTC"), |r| {
            r.body["analysisEnabled"] == false
        })
        .await;
    assert!(hidden.body["meanSentiment"].is_null());
    assert_eq!(hidden.body["topKeywords"], json!([]));
    assert_eq!(hidden.body["entryCount"], diary.entries.len());

    // Back on: every entry is analysed again and the profile inferred again.
    let on = app
        .put(&format!("/users/{user}/analysis"), json!({"enabled": true}))
        .await;
    assert_eq!(on.status, StatusCode::OK, "{}", on.body);
    let again = settled_analytics(&app, &diary, "UTC").await;
    check_analytics(&again.body, &diary);
    app.eventually(&format!("/users/{user}"), |r| {
        r.body["inferredArchetype"]["archetypeId"] == signals[0].id.as_str()
    })
    .await;
}
