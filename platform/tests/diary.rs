//! The diary routes end to end: gateway (HTTP) -> diary service (gRPC) -> event store.

mod support;

use reqwest::StatusCode;
use serde_json::json;
use support::Platform;

#[tokio::test]
async fn entries_and_sessions_through_every_diary_route() {
    let app = Platform::start().await;
    let user = app.create_user().await;

    // The seed's requests, verbatim but for real ids.
    let session = app
        .post(
            "/diary/sessions",
            json!({ "userId": user, "startTime": "2023-01-01T10:00:00Z" }),
        )
        .await;
    assert_eq!(session.status, StatusCode::CREATED, "{}", session.body);
    let session_id = session.id();
    assert_eq!(session.body["status"], "active");
    assert_eq!(session.body["startTime"], "2023-01-01T10:00:00Z");
    assert_eq!(
        session.headers["location"].to_str().unwrap(),
        format!("/diary/sessions/{session_id}")
    );

    let entry = app
        .post(
            "/diary/entries",
            json!({
                "userId": user,
                "title": "My First Entry",
                "content": "Today was a good day...",
                "tokenCount": 150,
                "sessionId": session_id,
                "tags": ["reflection", "gratitude"]
            }),
        )
        .await;
    assert_eq!(entry.status, StatusCode::CREATED, "{}", entry.body);
    let entry_id = entry.id();
    assert_eq!(entry.body["tokenCount"], 150);
    assert_eq!(entry.body["sessionId"], session_id.as_str());
    assert_eq!(entry.body["tags"], json!(["reflection", "gratitude"]));
    // Read back, once its analysis is recorded (the entry's version 2): the same entry.
    let mut fetched = app
        .eventually(&format!("/diary/entries/{entry_id}"), |r| {
            r.body["analysis"].is_object()
        })
        .await
        .body;
    assert_eq!(fetched["version"], 2, "{fetched}");
    let mut written = entry.body.clone();
    for field in ["analysis", "version", "updatedAt"] {
        fetched[field] = json!(null);
        written[field] = json!(null);
    }
    assert_eq!(fetched, written);

    let updated = app
        .put(
            &format!("/diary/entries/{entry_id}"),
            json!({
                "title": "Updated Title",
                "content": "Updated content...",
                "tokenCount": 200,
                "tags": ["reflection", "gratitude", "growth"]
            }),
        )
        .await;
    assert_eq!(updated.status, StatusCode::OK, "{}", updated.body);
    assert_eq!(updated.body["title"], "Updated Title");
    assert_eq!(updated.body["tokenCount"], 200);
    assert_eq!(
        updated.body["tags"],
        json!(["reflection", "gratitude", "growth"])
    );
    assert_eq!(
        updated.body["version"], 3,
        "after the creation and its analysis"
    );
    assert_eq!(updated.body["createdAt"], entry.body["createdAt"]);

    let ended = app
        .put(
            &format!("/diary/sessions/{session_id}/end"),
            json!({ "endTime": "2023-01-01T11:00:00Z" }),
        )
        .await;
    assert_eq!(ended.status, StatusCode::OK, "{}", ended.body);
    assert_eq!(ended.body["status"], "ended");
    assert_eq!(ended.body["endTime"], "2023-01-01T11:00:00Z");
    assert_eq!(ended.body["durationMinutes"], 60.0);
    assert_eq!(
        app.get(&format!("/diary/sessions/{session_id}")).await.body,
        ended.body
    );

    // Read with a write's token, a list shows that write in its first answer.
    let entries = app
        .get_after(&format!("/diary/entries/user/{user}"), &updated.token())
        .await;
    assert_eq!(entries.status, StatusCode::OK, "{}", entries.body);
    assert_eq!(entries.body["entries"].as_array().unwrap().len(), 1);
    assert_eq!(entries.body["entries"][0], updated.body);

    let sessions = app
        .get_after(&format!("/diary/sessions/user/{user}"), &ended.token())
        .await;
    assert_eq!(sessions.status, StatusCode::OK, "{}", sessions.body);
    assert_eq!(sessions.body["sessions"][0], ended.body);

    // Entries are created now, so a 2023 range is empty and today's range holds the entry.
    let in_2023 = app
        .get(&format!(
            "/diary/entries/user/{user}?startTime=2023-01-01&endTime=2023-12-31"
        ))
        .await;
    assert_eq!(in_2023.status, StatusCode::OK, "{}", in_2023.body);
    assert_eq!(in_2023.body["entries"], json!([]));
    let today = &entry.body["createdAt"].as_str().unwrap()[..10];
    let in_range = app
        .get(&format!(
            "/diary/entries/user/{user}?startTime={today}&endTime={today}"
        ))
        .await;
    assert_eq!(
        in_range.body["entries"].as_array().unwrap().len(),
        1,
        "{}",
        in_range.body
    );

    let analytics = app
        .get(&format!("/diary/analytics?userId={user}&period=week"))
        .await;
    assert_eq!(analytics.status, StatusCode::OK, "{}", analytics.body);
    assert_eq!(analytics.body["entryCount"], 1);
    assert_eq!(analytics.body["totalTokens"], 200);
    assert_eq!(analytics.body["period"], "week");
    // The 2023 session is outside a week ending now.
    assert_eq!(analytics.body["sessionCount"], 0);
    assert_eq!(
        analytics.body["tagFrequencies"],
        json!([{ "tag": "gratitude", "count": 1 }, { "tag": "growth", "count": 1 }, { "tag": "reflection", "count": 1 }])
    );
    let days = analytics.body["entriesPerDay"].as_array().unwrap();
    assert_eq!(days.len(), 8);
    assert_eq!(
        days.last().unwrap(),
        &json!({ "date": today, "entries": 1 })
    );

    let deleted = app.delete(&format!("/diary/entries/{entry_id}")).await;
    assert_eq!(deleted.status, StatusCode::OK, "{}", deleted.body);
    assert_eq!(deleted.body["id"], entry_id.as_str());
    assert!(deleted.body["deletedAt"].is_string());
    // 4 or 5: the new content's analysis may come first.
    assert!(
        matches!(deleted.body["version"].as_u64(), Some(4 | 5)),
        "{}",
        deleted.body
    );
    app.get(&format!("/diary/entries/{entry_id}"))
        .await
        .assert_error(StatusCode::NOT_FOUND, "not_found", None);
    app.put(
        &format!("/diary/entries/{entry_id}"),
        json!({ "title": "again" }),
    )
    .await
    .assert_error(StatusCode::NOT_FOUND, "not_found", None);
    app.delete(&format!("/diary/entries/{entry_id}"))
        .await
        .assert_error(StatusCode::NOT_FOUND, "not_found", None);
    let gone = app
        .get_after(&format!("/diary/entries/user/{user}"), &deleted.token())
        .await;
    assert_eq!(gone.body["entries"], json!([]), "{}", gone.body);

    // The history keeps the deleted entry's whole life.
    let history = app.get(&format!("/diary/entries/{entry_id}/history")).await;
    assert_eq!(history.status, StatusCode::OK, "{}", history.body);
    let types: Vec<_> = history.body["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["eventType"].as_str().unwrap().to_owned())
        // Analyses are recorded among them, asynchronously (the analysis test counts them).
        .filter(|t| t != "DiaryEntryAnalyzed")
        .collect();
    assert_eq!(
        types,
        [
            "DiaryEntryCreated",
            "DiaryEntryUpdated",
            "DiaryEntryDeleted"
        ]
    );
    let as_of = updated.body["updatedAt"].as_str().unwrap();
    let before_deletion = app
        .get(&format!("/diary/entries/{entry_id}?asOf={as_of}"))
        .await;
    assert_eq!(
        before_deletion.status,
        StatusCode::OK,
        "{}",
        before_deletion.body
    );
    assert_eq!(before_deletion.body["title"], "Updated Title");

    let session_history = app
        .get(&format!("/diary/sessions/{session_id}/history"))
        .await;
    let types: Vec<_> = session_history.body["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["eventType"].as_str().unwrap_or_default().to_owned())
        .collect();
    assert_eq!(
        types,
        [
            "DiarySessionStarted",
            "DiarySessionEntryAdded",
            "DiarySessionEnded"
        ],
        "{}",
        session_history.body
    );
}

#[tokio::test]
async fn diary_rules_refuse_what_users_would_not_expect() {
    let app = Platform::start().await;
    let user = app.create_user().await;
    let other = app.create_user().await;
    let nobody = uuid::Uuid::new_v4();

    app.post(
        "/diary/entries",
        json!({ "userId": nobody, "title": "t", "content": "c" }),
    )
    .await
    .assert_error(StatusCode::NOT_FOUND, "not_found", Some("userId"));
    app.post("/diary/sessions", json!({ "userId": nobody }))
        .await
        .assert_error(StatusCode::NOT_FOUND, "not_found", Some("userId"));
    app.post(
        "/diary/entries",
        json!({ "userId": "user-id", "title": "t", "content": "c" }),
    )
    .await
    .assert_error(StatusCode::BAD_REQUEST, "invalid_argument", Some("userId"));

    let empty = app
        .post(
            "/diary/entries",
            json!({ "userId": user, "title": "t", "content": "   ", "tags": ["ok", " "] }),
        )
        .await;
    empty.assert_error(StatusCode::BAD_REQUEST, "invalid_argument", Some("content"));
    empty.assert_error(StatusCode::BAD_REQUEST, "invalid_argument", Some("tags[1]"));
    app.post(
        "/diary/entries",
        json!({ "userId": user, "title": "t", "content": "c", "tokenCount": -1 }),
    )
    .await
    .assert_error(
        StatusCode::BAD_REQUEST,
        "invalid_argument",
        Some("tokenCount"),
    );

    // Tags are trimmed and de-duplicated; a missing token count is counted.
    let tidy = app
        .post(
            "/diary/entries",
            json!({ "userId": user, "title": "", "content": "one two three", "tags": [" Work ", "work", "home"] }),
        )
        .await;
    assert_eq!(tidy.status, StatusCode::CREATED, "{}", tidy.body);
    assert_eq!(tidy.body["tags"], json!(["Work", "home"]));
    assert_eq!(tidy.body["tokenCount"], 3);
    assert_eq!(tidy.body["sessionId"], json!(null));

    // Sessions: another user's session is not yours, an ended one takes no entries, a session
    // ends once and not before it started.
    let session = app
        .post(
            "/diary/sessions",
            json!({ "userId": user, "startTime": "2024-05-01T10:00:00Z" }),
        )
        .await;
    let session_id = session.id();
    app.post(
        "/diary/entries",
        json!({ "userId": other, "title": "t", "content": "c", "sessionId": session_id }),
    )
    .await
    .assert_error(StatusCode::NOT_FOUND, "not_found", None);
    app.put(
        &format!("/diary/sessions/{session_id}/end"),
        json!({ "endTime": "2024-05-01T09:00:00Z" }),
    )
    .await
    .assert_error(StatusCode::BAD_REQUEST, "invalid_argument", Some("endTime"));
    let ended = app
        .put(&format!("/diary/sessions/{session_id}/end"), json!({}))
        .await;
    assert_eq!(ended.status, StatusCode::OK, "{}", ended.body);
    app.put(&format!("/diary/sessions/{session_id}/end"), json!({}))
        .await
        .assert_error(StatusCode::CONFLICT, "failed_precondition", None);
    app.post(
        "/diary/entries",
        json!({ "userId": user, "title": "t", "content": "c", "sessionId": session_id }),
    )
    .await
    .assert_error(StatusCode::CONFLICT, "failed_precondition", None);
    app.post(
        "/diary/sessions",
        json!({ "userId": user, "startTime": "2999-01-01T00:00:00Z" }),
    )
    .await
    .assert_error(
        StatusCode::BAD_REQUEST,
        "invalid_argument",
        Some("startTime"),
    );

    // Queries.
    app.get(&format!("/diary/analytics?userId={user}&period=fortnight"))
        .await
        .assert_error(StatusCode::BAD_REQUEST, "invalid_argument", Some("period"));
    app.get(&format!("/diary/analytics?userId={nobody}&period=day"))
        .await
        .assert_error(StatusCode::NOT_FOUND, "not_found", None);
    app.get(&format!(
        "/diary/entries/user/{user}?startTime=2024-02-01&endTime=2024-01-01"
    ))
    .await
    .assert_error(
        StatusCode::BAD_REQUEST,
        "invalid_argument",
        Some("startTime"),
    );
    app.get(&format!("/diary/entries/user/{user}?startTime=soon"))
        .await
        .assert_error(
            StatusCode::BAD_REQUEST,
            "invalid_argument",
            Some("startTime"),
        );
    app.get(&format!("/diary/sessions/{}", uuid::Uuid::new_v4()))
        .await
        .assert_error(StatusCode::NOT_FOUND, "not_found", None);

    // Nothing refused was stored: the user has exactly the one tidy entry.
    let entries = app
        .get_after(&format!("/diary/entries/user/{user}"), &tidy.token())
        .await;
    assert_eq!(entries.body["entries"].as_array().unwrap().len(), 1);
    let others = app.get(&format!("/diary/entries/user/{other}")).await;
    assert_eq!(others.body["entries"], json!([]));
}

#[tokio::test]
async fn entry_lists_page_newest_first() {
    let app = Platform::start().await;
    let user = app.create_user().await;
    let mut ids = Vec::new();
    let mut tokens = Vec::new();
    for i in 0..5 {
        let reply = app
            .post(
                "/diary/entries",
                json!({ "userId": user, "title": format!("entry {i}"), "content": "words" }),
            )
            .await;
        assert_eq!(reply.status, StatusCode::CREATED);
        ids.push(reply.id());
        tokens.push(reply.token());
    }
    // Entries reach the read model in any order (in production each has its own partition
    // key): a token waits for one write, so read after each; once reflected, a write stays.
    let path = format!("/diary/entries/user/{user}");
    let mut all = app.get(&path).await;
    for token in &tokens {
        all = app.get_after(&path, token).await;
        assert_eq!(all.status, StatusCode::OK, "{}", all.body);
    }
    let newest_first: Vec<_> = all.body["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["id"].as_str().unwrap().to_owned())
        .collect();
    let mut expected = ids.clone();
    expected.reverse();
    assert_eq!(newest_first, expected);
    let first = app
        .get(&format!("/diary/entries/user/{user}?limit=2"))
        .await;
    assert_eq!(first.body["entries"][0]["id"], ids[4].as_str());
    assert_eq!(first.body["hasMore"], true);
    let page3 = app
        .get(&format!("/diary/entries/user/{user}?page=3&limit=2"))
        .await;
    let last: Vec<_> = page3.body["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["id"].clone())
        .collect();
    assert_eq!(last, [json!(ids[0])]);
    assert_eq!(page3.body["hasMore"], false);
}

#[tokio::test]
async fn edge_inputs_found_by_fuzzing() {
    let app = Platform::start().await;
    let user = app.create_user().await;

    // The longest content in the most verbose escaping fits the body limit.
    let content = "\\uD83D\\uDE00".repeat(100_000);
    let body = format!(
        r#"{{"userId": "{user}", "title": "astral", "content": "{content}", "tokenCount": 549.0}}"#
    );
    let entry = app
        .send_raw("POST", "/diary/entries", "application/json", &body)
        .await;
    assert_eq!(entry.status, StatusCode::CREATED, "{}", entry.body);
    assert_eq!(entry.body["tokenCount"], 549);
    assert_eq!(
        entry.body["content"].as_str().unwrap().chars().count(),
        100_000
    );
    assert_eq!(entry.headers["etag"], "\"1\"");

    let entry_id = entry.id();
    let fetched = app.get(&format!("/diary/entries/{entry_id}")).await;
    // "2" once its analysis is recorded.
    assert_eq!(
        fetched.headers["etag"].to_str().unwrap(),
        format!("\"{}\"", fetched.body["version"])
    );

    // An empty session id is not "no session"; a leap second is not a time.
    app.post(
        "/diary/entries",
        json!({ "userId": user, "title": "t", "content": "c", "sessionId": "" }),
    )
    .await
    .assert_error(
        StatusCode::BAD_REQUEST,
        "invalid_argument",
        Some("sessionId"),
    );
    app.post(
        "/diary/sessions",
        json!({ "userId": user, "startTime": "2024-02-29T12:00:60Z" }),
    )
    .await
    .assert_error(
        StatusCode::BAD_REQUEST,
        "invalid_argument",
        Some("startTime"),
    );
    app.post(
        "/diary/entries",
        json!({ "userId": user, "title": "bell\u{7}", "content": "tab\tand\nnew line" }),
    )
    .await
    .assert_error(StatusCode::BAD_REQUEST, "invalid_argument", Some("title"));
    app.post(
        "/diary/entries",
        json!({ "userId": user, "title": "t", "content": "c", "tokenCount": 1_000_001 }),
    )
    .await
    .assert_error(
        StatusCode::BAD_REQUEST,
        "invalid_argument",
        Some("tokenCount"),
    );

    let session = app.post("/diary/sessions", json!({ "userId": user })).await;
    assert_eq!(session.headers["etag"], "\"1\"");
    let ended = app
        .put(&format!("/diary/sessions/{}/end", session.id()), json!({}))
        .await;
    assert_eq!(ended.headers["etag"], "\"2\"", "{}", ended.body);
}

/// The reported defect: right after a DELETE the user's entries still showed the entry (about
/// 0.1 s in the production wiring). Read with the deletion's token, the first answer is right.
#[tokio::test]
async fn a_list_read_with_a_deletions_token_no_longer_shows_the_entry() {
    let app = Platform::start().await;
    let user = app.create_user().await;
    let path = format!("/diary/entries/user/{user}");
    let created = app
        .post(
            "/diary/entries",
            json!({ "userId": user, "title": "short-lived", "content": "soon gone" }),
        )
        .await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.body);
    let listed = app.get_after(&path, &created.token()).await;
    assert_eq!(listed.body["entries"][0]["id"], created.body["id"]);

    let deleted = app
        .delete(&format!("/diary/entries/{}", created.id()))
        .await;
    assert_eq!(deleted.status, StatusCode::OK, "{}", deleted.body);
    // The entry's analysis may have been recorded before the deletion (version 2) or not.
    assert_eq!(
        deleted.headers["etag"].to_str().unwrap(),
        format!("\"{}\"", deleted.body["version"]),
        "a deletion tags its version too"
    );
    assert!(deleted.body["version"] == 2 || deleted.body["version"] == 3);
    let started = std::time::Instant::now();
    let after = app.get_after(&path, &deleted.token()).await;
    let waited = started.elapsed();
    assert_eq!(after.status, StatusCode::OK, "{}", after.body);
    assert_eq!(after.body["entries"], json!([]), "{}", after.body);
    eprintln!("the list answered {waited:?} after the deletion, without the entry");

    // Analytics and the session list take tokens too.
    let analytics = app
        .get_after(
            &format!("/diary/analytics?userId={user}&period=day"),
            &deleted.token(),
        )
        .await;
    assert_eq!(analytics.body["entryCount"], 0, "{}", analytics.body);
    let session = app.post("/diary/sessions", json!({ "userId": user })).await;
    let sessions = app
        .get_after(&format!("/diary/sessions/user/{user}"), &session.token())
        .await;
    assert_eq!(sessions.body["sessions"][0]["id"], session.body["id"]);
}

#[tokio::test]
async fn a_token_naming_no_write_is_400_after_the_wait_and_a_malformed_one_at_once() {
    let bound = std::time::Duration::from_millis(300);
    let app = Platform::start_with_env(
        support::default_wiring().await,
        &[("READ_YOUR_WRITES_TIMEOUT_MS", bound.as_millis().to_string())],
    )
    .await;
    let user = app.create_user().await;
    let entry = app
        .post(
            "/diary/entries",
            json!({ "userId": user, "title": "t", "content": "c" }),
        )
        .await;
    // Its analysis is version 2: version 3 never comes.
    let unreached = format!("{}:3", entry.id());
    let never_seen = format!("{}:1", uuid::Uuid::new_v4());
    for (path, token) in [
        (format!("/diary/entries/user/{user}"), &unreached),
        (format!("/diary/sessions/user/{user}"), &unreached),
        (format!("/diary/analytics?userId={user}"), &never_seen),
        ("/users".to_owned(), &never_seen),
    ] {
        let started = std::time::Instant::now();
        let reply = app.get_after(&path, token).await;
        // Waited for the bound, then found that no such write was made: the client's
        // mistake, 400, with no invitation to retry.
        reply.assert_error(
            StatusCode::BAD_REQUEST,
            "invalid_argument",
            Some("X-Consistency-Token"),
        );
        assert!(
            started.elapsed() >= bound,
            "{path}: answered before the bound"
        );
        assert!(reply.headers.get("retry-after").is_none(), "{path}");
        let message = reply.body["error"]["message"].as_str().unwrap();
        assert!(
            message.contains("names no write") && message.contains(token.as_str()),
            "{message}"
        );
    }
    for malformed in ["yes", "1", &entry.id(), &format!("{}:0", entry.id())] {
        for path in [
            format!("/diary/entries/user/{user}"),
            format!("/diary/sessions/user/{user}"),
            format!("/diary/analytics?userId={user}"),
            "/users".to_owned(),
        ] {
            app.get_after(&path, malformed).await.assert_error(
                StatusCode::BAD_REQUEST,
                "invalid_argument",
                Some("X-Consistency-Token"),
            );
        }
    }
}

#[tokio::test]
async fn concurrent_updates_without_a_version_all_land_and_a_stale_if_match_is_412() {
    let app = Platform::start().await;
    let user = app.create_user().await;
    let entry = app
        .post(
            "/diary/entries",
            json!({ "userId": user, "title": "t", "content": "first words" }),
        )
        .await;
    assert_eq!(entry.status, StatusCode::CREATED, "{}", entry.body);
    let path = format!("/diary/entries/{}", entry.id());

    // Fifty writers of one entry, none naming a version: each asked for its change, and each
    // change lands (decided again on the newer state after a conflict), none answers 409.
    let writes = (0..50).map(|i| {
        let app = &app;
        let path = path.clone();
        async move {
            app.put(&path, json!({ "title": format!("title {i}") }))
                .await
        }
    });
    let replies = futures::future::join_all(writes).await;
    for reply in &replies {
        assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    }
    // 50 updates after the creation, and the content's analysis (recorded asynchronously,
    // among them; the retitles keep it).
    let now = app
        .eventually(&path, |r| r.body["analysis"].is_object())
        .await;
    assert_eq!(now.body["version"], 52, "{}", now.body);

    // A writer that names the version it read is refused once someone else changed it.
    let client = reqwest::Client::new();
    let stale = client
        .put(app.url(&path))
        .header("if-match", "\"50\"")
        .json(&json!({ "title": "stale" }))
        .send()
        .await
        .unwrap();
    assert_eq!(stale.status(), StatusCode::PRECONDITION_FAILED);
    let body: serde_json::Value = stale.json().await.unwrap();
    assert_eq!(body["error"]["code"], "precondition_failed");
    let current = client
        .delete(app.url(&path))
        .header("if-match", "\"50\"")
        .send()
        .await
        .unwrap();
    assert_eq!(current.status(), StatusCode::PRECONDITION_FAILED);
    let after = app.get(&path).await;
    assert_eq!(after.body["version"], 52, "nothing stored: {}", after.body);
    assert_ne!(after.body["title"], "stale");
    let matched = client
        .put(app.url(&path))
        .header("if-match", "\"52\"")
        .json(&json!({ "title": "matched" }))
        .send()
        .await
        .unwrap();
    assert_eq!(matched.status(), StatusCode::OK);
    assert_eq!(matched.headers()["etag"], "\"53\"");
}

/// A walk by cursor resumes after the last entry it showed: entries written or deleted during
/// the walk neither repeat one nor hide one that still exists.
#[tokio::test]
async fn a_cursor_walk_is_not_shifted_by_writes_during_it() {
    let app = Platform::start().await;
    for change in ["write a newer entry", "delete the newest entry"] {
        let user = app.create_user().await;
        let mut ids = Vec::new();
        let mut tokens = Vec::new();
        for i in 0..6 {
            let entry = app
                .post(
                    "/diary/entries",
                    json!({ "userId": user, "title": format!("e{i}"), "content": "words" }),
                )
                .await;
            assert_eq!(entry.status, StatusCode::CREATED, "{}", entry.body);
            ids.push(entry.id());
            tokens.push(entry.token());
        }
        let list = format!("/diary/entries/user/{user}?limit=3");
        let ids_of = |page: &support::Reply| -> Vec<String> {
            page.body["entries"]
                .as_array()
                .unwrap()
                .iter()
                .map(|e| e["id"].as_str().unwrap().to_owned())
                .collect()
        };
        // Each entry is its own Kafka key in production: the lists may apply them in any
        // order, so the walk starts once they show every one.
        for token in &tokens {
            app.get_after(&list, token).await;
        }
        let first = app.get(&list).await;
        let mut walked = ids_of(&first);
        assert_eq!(
            walked,
            ids[3..].iter().rev().cloned().collect::<Vec<_>>(),
            "{}",
            first.body
        );

        // Between two pages, the list changes above where the walk stands.
        let expected: Vec<String> = ids.iter().rev().cloned().collect();
        let changed = if change == "write a newer entry" {
            app.post(
                "/diary/entries",
                json!({ "userId": user, "title": "new", "content": "words" }),
            )
            .await
        } else {
            app.delete(&format!("/diary/entries/{}", ids[5])).await
        };
        assert!(changed.status.is_success(), "{}", changed.body);
        let mut cursor = first.body["nextCursor"].as_str().unwrap().to_owned();
        loop {
            let page = app
                .get_after(&format!("{list}&cursor={cursor}"), &changed.token())
                .await;
            assert_eq!(page.status, StatusCode::OK, "{}", page.body);
            walked.extend(ids_of(&page));
            match page.body["nextCursor"].as_str() {
                Some(next) => cursor = next.to_owned(),
                None => break,
            }
        }
        // e5, e4, e3 on the first page, then everything older than e3, each once.
        assert_eq!(walked, expected, "{change}: each entry once, none skipped");
    }
}

/// Every entry version's content is analysed asynchronously, and the analysis shows on the
/// entry once recorded: a `DiaryEntryAnalyzed` event on the entry's stream.
#[tokio::test]
async fn a_written_entry_is_analysed_and_an_update_is_analysed_again() {
    let app = Platform::start().await;
    let user = app.create_user().await;
    let created = app
        .post(
            "/diary/entries",
            json!({
                "userId": user,
                "title": "Morning",
                "content": "I love the bright morning light. I feel calm and grateful, and I \
                            hear the birds singing outside while I think about the year.",
                "tags": ["gratitude"]
            }),
        )
        .await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.body);
    assert_eq!(
        created.body["analysis"],
        json!(null),
        "analysed later, not in the write"
    );
    let path = format!("/diary/entries/{}", created.id());
    let first = app
        .eventually(&path, |r| r.body["analysis"].is_object())
        .await;
    let analysis = &first.body["analysis"];
    assert_eq!(analysis["entryVersion"], 1, "{}", first.body);
    let compound = analysis["sentiment"]["compound"].as_f64().unwrap();
    assert!((0.0..=1.0).contains(&compound), "a happy text: {compound}");
    assert!(analysis["tokenCount"].as_u64().unwrap() > 0);
    // No count sent: the entry's count is the tokenizer's, the one the analysis measured.
    assert_eq!(first.body["tokenCount"], analysis["tokenCount"]);
    assert!(!analysis["analyzerVersion"].as_str().unwrap().is_empty());
    assert!(
        !analysis["sentiment"]["analyzerVersion"]
            .as_str()
            .unwrap()
            .is_empty()
    );
    assert_eq!(analysis["language"], "en");
    assert_eq!(
        first.body["version"], 2,
        "the analysis is the entry's second event"
    );

    let updated = app
        .put(
            &path,
            json!({ "content": "A terrible, awful day. Everything went wrong and I am sad.",
                    "tokenCount": 5 }),
        )
        .await;
    assert_eq!(updated.status, StatusCode::OK, "{}", updated.body);
    assert_eq!(
        updated.body["analysis"],
        json!(null),
        "the old analysis went with the old text"
    );
    let version = updated.body["version"].as_u64().unwrap();
    let second = app
        .eventually(&path, |r| r.body["analysis"]["entryVersion"] == version)
        .await;
    let analysis = &second.body["analysis"];
    assert!(
        analysis["sentiment"]["compound"].as_f64().unwrap() < 0.0,
        "{}",
        second.body
    );
    // The client's count stays beside the measured one.
    assert_eq!(second.body["tokenCount"], 5);
    assert!(analysis["tokenCount"].as_u64().unwrap() > 5);

    let history = app.get(&format!("{path}/history")).await;
    let types: Vec<&str> = history.body["events"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|e| e["eventType"].as_str())
        .collect();
    assert_eq!(
        types.iter().filter(|t| **t == "DiaryEntryAnalyzed").count(),
        2,
        "one analysis per version: {}",
        history.body
    );
    let deleted = app.delete(&path).await;
    assert_eq!(deleted.status, StatusCode::OK, "{}", deleted.body);
    assert_eq!(app.get(&path).await.status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn a_post_retried_with_its_idempotency_key_gets_the_first_answer() {
    let app = Platform::start().await;
    let key = |k: &str| vec![("idempotency-key", k.to_owned())];
    let user_body = json!({"username": "retrier", "email": "retrier@example.com",
                           "firstName": "R", "lastName": "T"});
    let first = app
        .request_with("POST", "/users", Some(user_body.clone()), &key("u-1"))
        .await;
    assert_eq!(first.status, StatusCode::CREATED, "{}", first.body);
    // The answer was lost; the client sends the same request again.
    let again = app
        .request_with("POST", "/users", Some(user_body.clone()), &key("u-1"))
        .await;
    assert_eq!(again.status, StatusCode::CREATED, "{}", again.body);
    assert_eq!(again.body, first.body);
    // Without the key it is a second registration: taken.
    app.post("/users", user_body).await.assert_error(
        StatusCode::CONFLICT,
        "already_exists",
        Some("username"),
    );
    let user = first.id();

    let entry = json!({"userId": user, "title": "Once", "content": "Written once, sent twice."});
    let written = app
        .request_with("POST", "/diary/entries", Some(entry.clone()), &key("e-1"))
        .await;
    let retried = app
        .request_with("POST", "/diary/entries", Some(entry.clone()), &key("e-1"))
        .await;
    assert_eq!(written.status, StatusCode::CREATED, "{}", written.body);
    assert_eq!(retried.status, StatusCode::CREATED, "{}", retried.body);
    assert_eq!(retried.id(), written.id());
    let session = json!({"userId": user, "startTime": "2026-01-01T10:00:00Z"});
    let s1 = app
        .request_with(
            "POST",
            "/diary/sessions",
            Some(session.clone()),
            &key("s-1"),
        )
        .await;
    let s2 = app
        .request_with("POST", "/diary/sessions", Some(session), &key("s-1"))
        .await;
    assert_eq!(s1.id(), s2.id());
    // One entry stored, not two.
    let list = app
        .get_after(&format!("/diary/entries/user/{user}"), &written.token())
        .await;
    assert_eq!(
        list.body["entries"].as_array().map(Vec::len),
        Some(1),
        "{}",
        list.body
    );
    // A key that is not one.
    for bad in ["", &"k".repeat(256), "with space"] {
        app.request_with("POST", "/diary/entries", Some(entry.clone()), &key(bad))
            .await
            .assert_error(
                StatusCode::BAD_REQUEST,
                "invalid_argument",
                Some("Idempotency-Key"),
            );
    }
}

#[tokio::test]
async fn a_user_takes_everything_away_as_json_and_their_diary_as_markdown() {
    let app = Platform::start().await;
    let user = app.create_user().await;
    let first = app
        .post(
            "/diary/entries",
            json!({"userId": user, "title": "Morning", "content": "Coffee by the window.",
                   "tags": ["calm"], "createdAt": "2026-03-01T08:00:00Z"}),
        )
        .await;
    let first_id = first.id();
    let changed = app
        .put(
            &format!("/diary/entries/{first_id}"),
            json!({"content": "Coffee by the open window."}),
        )
        .await;
    assert_eq!(changed.status, StatusCode::OK, "{}", changed.body);
    let second = app
        .post(
            "/diary/entries",
            json!({"userId": user, "title": "", "content": "Rain all afternoon.",
                   "createdAt": "2026-03-02T15:00:00Z"}),
        )
        .await;
    let gone = app
        .post(
            "/diary/entries",
            json!({"userId": user, "title": "Gone", "content": "Deleted."}),
        )
        .await
        .id();
    let deleted = app.delete(&format!("/diary/entries/{gone}")).await;
    let session = app.post("/diary/sessions", json!({"userId": user})).await;
    app.get_after(&format!("/diary/entries/user/{user}"), &second.token())
        .await;
    app.get_after(&format!("/diary/sessions/user/{user}"), &session.token())
        .await;
    let listed = app
        .get_after(&format!("/diary/entries/user/{user}"), &deleted.token())
        .await;
    assert_eq!(listed.status, StatusCode::OK, "{}", listed.body);

    let export = app.get(&format!("/users/{user}/export")).await;
    assert_eq!(export.status, StatusCode::OK, "{}", export.body);
    assert!(
        export.headers["content-disposition"]
            .to_str()
            .unwrap()
            .contains(".json")
    );
    let body = &export.body;
    assert_eq!(body["format"], "metachat-export-1");
    assert_eq!(body["user"]["id"], user.as_str());
    assert_eq!(body["userHistory"]["events"][0]["eventType"], "UserCreated");
    assert_eq!(body["analysis"]["enabled"], true);
    let entries = body["entries"].as_array().unwrap();
    assert_eq!(entries.len(), 2, "the deleted entry is not listed: {body}");
    let morning = entries
        .iter()
        .find(|e| e["entry"]["id"] == first_id.as_str())
        .expect("the first entry");
    assert_eq!(morning["entry"]["content"], "Coffee by the open window.");
    // Its earlier version is in its history.
    let types: Vec<&str> = morning["history"]["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["eventType"].as_str().unwrap())
        .collect();
    assert!(
        types.starts_with(&["DiaryEntryCreated", "DiaryEntryUpdated"]),
        "{types:?}"
    );
    assert_eq!(
        morning["history"]["events"][0]["data"]["content"],
        "Coffee by the window."
    );
    assert_eq!(body["sessions"].as_array().unwrap().len(), 1);

    let markdown = app.get(&format!("/users/{user}/export.md")).await;
    assert_eq!(markdown.status, StatusCode::OK);
    assert!(
        markdown.headers["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/markdown")
    );
    let text = markdown.body.as_str().expect("text");
    let (morning_at, rain_at) = (
        text.find("Coffee by the open window.").unwrap(),
        text.find("Rain all afternoon.").unwrap(),
    );
    assert!(morning_at < rain_at, "oldest first: {text}");
    assert!(
        text.contains("## 2026-03-01T08:00:00Z · Morning") && text.contains("*Tags: calm*"),
        "{text}"
    );
    assert!(!text.contains("Deleted."), "{text}");
    // Another user's export is theirs only: an unknown id is 404.
    app.get(&format!("/users/{}/export", uuid::Uuid::new_v4()))
        .await
        .assert_error(StatusCode::NOT_FOUND, "not_found", None);
}
