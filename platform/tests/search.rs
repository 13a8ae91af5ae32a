//! Search by meaning through the HTTP API, with the real model: entries written, indexed by
//! the diary service's entry indexer, found by a query sharing none of their words, related
//! to each other, grouped into themes in analytics; removed from results when deleted or when
//! analysis is switched off; and without the model, a platform that still runs and says why
//! search is unavailable. Runs on the embedded platform, and with
//! `METACHAT_TEST_WIRING=production` over PostgreSQL, Kafka and Cassandra.

mod support;

use reqwest::StatusCode;
use serde_json::{Value, json};
use support::{Platform, Reply, Wiring, default_wiring};

const RUNNING: [&str; 4] = [
    "Long run along the river this morning, my knees held up and my pace was steady for ten kilometres.",
    "Interval training at the track: six fast laps, lungs burning, but my running pace is improving.",
    "Registered for the half marathon in spring. Running four times a week from now on.",
    "Easy recovery run in the rain; the marathon training plan says slow kilometres today.",
];

const HOSPITAL: [&str; 4] = [
    "Dad's chemotherapy session took four hours at the hospital; the oncologist seemed hopeful.",
    "Drove Dad to the hospital again. The chemotherapy leaves him exhausted and nauseous.",
    "The oncologist changed Dad's chemotherapy dose after the blood tests at the hospital.",
    "Sat beside Dad in the hospital ward while the chemotherapy drip ran, holding his hand.",
];

fn ids(reply: &Reply) -> Vec<String> {
    reply.body["results"]
        .as_array()
        .map(|r| {
            r.iter()
                .filter_map(|x| x["entry"]["id"].as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}

async fn write(platform: &Platform, user: &str, day: u32, content: &str) -> String {
    let reply = platform
        .post(
            "/diary/entries",
            json!({"userId": user, "title": "", "content": content,
                   "createdAt": format!("2026-10-{day:02}T20:00:00Z")}),
        )
        .await;
    assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.body);
    reply.id()
}

#[tokio::test]
async fn entries_are_found_by_meaning_related_and_grouped_into_themes() {
    let platform = Platform::start().await;
    let user = platform.create_user().await;
    let mut running = Vec::new();
    let mut hospital = Vec::new();
    for (i, (run, ward)) in RUNNING.iter().zip(HOSPITAL).enumerate() {
        running.push(write(&platform, &user, 1 + 2 * i as u32, run).await);
        hospital.push(write(&platform, &user, 2 + 2 * i as u32, ward).await);
    }

    // None of these words is in the entries; the hospital entries come first.
    let path = format!("/diary/search?userId={user}&q=looking+after+my+sick+father&limit=4");
    let found = platform
        .eventually(&path, |r| {
            r.status == StatusCode::OK
                && ids(r).len() == 4
                && ids(r).iter().all(|id| hospital.contains(id))
        })
        .await;
    let first = &found.body["results"][0];
    for field in ["score", "similarity", "keywordScore"] {
        assert!(first[field].is_number(), "{field}: {}", found.body);
    }
    assert!(first["score"].as_f64().unwrap() > 0.2, "{}", found.body);
    assert_eq!(
        first["keywordScore"], 0.0,
        "no word of the query is in the entries"
    );
    assert_eq!(first["entry"]["userId"], user.as_str());
    assert_eq!(first["entry"]["analysis"], Value::Null);
    assert_eq!(
        (found.body["page"].clone(), found.body["limit"].clone()),
        (json!(1), json!(4))
    );
    // Scores never increase down the list.
    let scores: Vec<f64> = found.body["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["score"].as_f64().unwrap())
        .collect();
    assert!(scores.windows(2).all(|w| w[0] >= w[1]), "{scores:?}");

    // Wait for every entry to be indexed: the running entries are found too.
    platform
        .eventually(
            &format!("/diary/search?userId={user}&q=training+for+a+race&limit=4"),
            |r| ids(r).len() == 4 && ids(r).iter().all(|id| running.contains(id)),
        )
        .await;

    // Every entry indexed, the hospital entries still come first, and paging goes on.
    let all = platform
        .get(&format!(
            "/diary/search?userId={user}&q=looking+after+my+sick+father&limit=10"
        ))
        .await;
    let all_ids = ids(&all);
    assert!(
        all_ids.len() >= 4 && all_ids[..4].iter().all(|id| hospital.contains(id)),
        "{}",
        all.body
    );
    let second = platform
        .get(&format!(
            "/diary/search?userId={user}&q=looking+after+my+sick+father&limit=2&page=2"
        ))
        .await;
    assert_eq!(ids(&second), all_ids[2..4].to_vec(), "{}", second.body);
    assert_eq!(second.body["page"], 2);

    // Related: the other hospital entries first, never the entry itself.
    let related = platform
        .get(&format!("/diary/entries/{}/related?limit=3", hospital[0]))
        .await;
    assert_eq!(related.status, StatusCode::OK, "{}", related.body);
    let related_ids = ids(&related);
    assert_eq!(related_ids.len(), 3, "{}", related.body);
    assert!(
        related_ids.iter().all(|id| hospital[1..].contains(id)),
        "{}",
        related.body
    );

    // Themes: two, of four entries each.
    let analytics = platform
        .get(&format!(
            "/diary/analytics?userId={user}&from=2026-10-01T00:00:00Z&to=2026-11-01T00:00:00Z"
        ))
        .await;
    assert_eq!(analytics.status, StatusCode::OK, "{}", analytics.body);
    let themes = analytics.body["themes"].as_array().expect("themes").clone();
    assert_eq!(themes.len(), 2, "{}", analytics.body["themes"]);
    for theme in &themes {
        assert_eq!(theme["entryCount"], 4, "{theme}");
        assert!(!theme["label"].as_str().unwrap().is_empty(), "{theme}");
        assert_eq!(
            theme["exampleEntryIds"].as_array().unwrap().len(),
            3,
            "{theme}"
        );
    }

    // A deleted entry leaves the results.
    let deleted = &hospital[0];
    assert_eq!(
        platform
            .delete(&format!("/diary/entries/{deleted}"))
            .await
            .status,
        StatusCode::OK
    );
    platform
        .eventually(&path, |r| {
            r.status == StatusCode::OK && !ids(r).contains(deleted)
        })
        .await;
    platform
        .get(&format!("/diary/entries/{deleted}/related"))
        .await
        .assert_error(StatusCode::NOT_FOUND, "not_found", None);

    // Bad input names the parameter.
    for (query, field) in [
        (format!("userId={user}"), "q"),
        (format!("userId={user}&q=%20%20"), "q"),
        (format!("userId={user}&q=a%0Ab"), "q"),
        (format!("userId={user}&q={}", "a".repeat(1001)), "q"),
        (format!("userId={user}&q=x&limit=51"), "limit"),
        (format!("userId={user}&q=x&page=0"), "page"),
        (format!("userId={user}&q=%FF%FE"), "q"),
        ("userId=nope&q=x".to_owned(), "userId"),
        ("q=x".to_owned(), "userId"),
    ] {
        platform
            .get(&format!("/diary/search?{query}"))
            .await
            .assert_error(StatusCode::BAD_REQUEST, "invalid_argument", Some(field));
    }
    platform
        .get(&format!(
            "/diary/search?userId={}&q=x",
            uuid::Uuid::new_v4()
        ))
        .await
        .assert_error(StatusCode::NOT_FOUND, "not_found", None);
    // Another writer finds nothing of this one's.
    let stranger = platform.create_user().await;
    let theirs = platform
        .get(&format!(
            "/diary/search?userId={stranger}&q=hospital+chemotherapy"
        ))
        .await;
    assert_eq!(theirs.status, StatusCode::OK, "{}", theirs.body);
    assert!(ids(&theirs).is_empty(), "{}", theirs.body);

    // Analysis off: searches are refused and themes are gone.
    let off = platform
        .put(
            &format!("/users/{user}/analysis"),
            json!({"enabled": false}),
        )
        .await;
    assert_eq!(off.status, StatusCode::OK, "{}", off.body);
    let refused = platform
        .eventually(&path, |r| r.status == StatusCode::CONFLICT)
        .await;
    refused.assert_error(StatusCode::CONFLICT, "failed_precondition", None);
    assert!(
        refused.body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("analysis")
    );
    let analytics = platform
        .get(&format!("/diary/analytics?userId={user}&period=year"))
        .await;
    assert_eq!(analytics.body["themes"], Value::Null, "{}", analytics.body);
}

#[tokio::test]
async fn without_the_model_the_platform_runs_and_says_why_search_is_unavailable() {
    // The embedded platform is enough: the model is read where the diary service runs.
    if default_wiring().await != Wiring::Embedded {
        return;
    }
    let missing = std::env::temp_dir().join("metachat-no-model-here");
    let platform = Platform::start_with_env(
        Wiring::Embedded,
        &[("METACHAT_MODEL_DIR", missing.display().to_string())],
    )
    .await;
    let user = platform.create_user().await;
    let entry = write(
        &platform,
        &user,
        3,
        "Writing still works without the model.",
    )
    .await;
    let reply = platform
        .get(&format!("/diary/search?userId={user}&q=anything"))
        .await;
    reply.assert_error(StatusCode::SERVICE_UNAVAILABLE, "unavailable", None);
    let message = reply.body["error"]["message"].as_str().unwrap();
    assert!(
        message.contains("model") && message.contains("scripts/model.sh"),
        "{message}"
    );
    platform
        .get(&format!("/diary/entries/{entry}/related"))
        .await
        .assert_error(StatusCode::SERVICE_UNAVAILABLE, "unavailable", None);
    let analytics = platform
        .eventually(
            &format!("/diary/analytics?userId={user}&period=year"),
            |r| r.body["entryCount"] == 1,
        )
        .await;
    assert_eq!(analytics.body["themes"], Value::Null, "{}", analytics.body);
    // Said once, at start-up.
    let logs = platform.logs();
    assert_eq!(
        logs.matches("search by meaning, related entries and themes are off")
            .count(),
        1,
        "{logs}"
    );
}
