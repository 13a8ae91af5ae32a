//! The user routes end to end: gateway (HTTP) -> user service (gRPC) -> event store.

mod support;

use reqwest::StatusCode;
use serde_json::json;
use support::Platform;

#[tokio::test]
async fn user_lifecycle_through_every_user_route() {
    let app = Platform::start().await;

    // The seed's request, verbatim.
    let created = app
        .post(
            "/users",
            json!({
                "username": "johndoe",
                "email": "john@example.com",
                "firstName": "John",
                "lastName": "Doe",
                "dateOfBirth": "1990-01-01"
            }),
        )
        .await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.body);
    let id = created.id();
    assert_eq!(
        created.headers["location"].to_str().unwrap(),
        format!("/users/{id}")
    );
    assert_eq!(created.body["username"], "johndoe");
    assert_eq!(created.body["email"], "john@example.com");
    assert_eq!(created.body["dateOfBirth"], "1990-01-01");
    assert_eq!(created.body["archetype"], json!(null));
    assert_eq!(created.body["version"], 1);

    // Read your write: the GET right after the POST shows it.
    let fetched = app.get(&format!("/users/{id}")).await;
    assert_eq!(fetched.status, StatusCode::OK);
    assert_eq!(fetched.body, created.body);

    let updated = app
        .put(
            &format!("/users/{id}"),
            json!({
                "firstName": "John",
                "lastName": "Doe",
                "dateOfBirth": "1990-01-01",
                "avatar": "base64-encoded-image",
                "bio": "Software developer and AI enthusiast"
            }),
        )
        .await;
    assert_eq!(updated.status, StatusCode::OK, "{}", updated.body);
    assert_eq!(updated.body["bio"], "Software developer and AI enthusiast");
    assert_eq!(updated.body["avatar"], "base64-encoded-image");
    assert_eq!(updated.body["version"], 2);

    // A partial update leaves other fields; an empty string clears an optional one.
    let partial = app.put(&format!("/users/{id}"), json!({ "bio": "" })).await;
    assert_eq!(partial.status, StatusCode::OK, "{}", partial.body);
    assert_eq!(partial.body["bio"], json!(null));
    assert_eq!(partial.body["avatar"], "base64-encoded-image");
    assert_eq!(partial.body["firstName"], "John");

    let assigned = app
        .post(
            &format!("/users/{id}/archetype"),
            json!({
                "archetypeId": "thinker",
                "archetypeName": "The Thinker",
                "confidence": 0.85,
                "description": "Analytical and introspective personality type"
            }),
        )
        .await;
    assert_eq!(assigned.status, StatusCode::OK, "{}", assigned.body);
    assert_eq!(assigned.body["archetype"]["archetypeId"], "thinker");
    assert_eq!(assigned.body["archetype"]["confidence"], 0.85);

    let reassigned = app
        .post(
            &format!("/users/{id}/archetype"),
            json!({ "archetypeId": "dreamer", "archetypeName": "The Dreamer", "confidence": 0.5, "description": "" }),
        )
        .await;
    reassigned.assert_error(StatusCode::CONFLICT, "failed_precondition", None);

    let archetype_updated = app
        .put(
            &format!("/users/{id}/archetype"),
            json!({
                "archetypeId": "thinker",
                "archetypeName": "The Thinker",
                "confidence": 0.90,
                "description": "Updated description"
            }),
        )
        .await;
    assert_eq!(
        archetype_updated.status,
        StatusCode::OK,
        "{}",
        archetype_updated.body
    );
    assert_eq!(archetype_updated.body["archetype"]["confidence"], 0.9);
    assert_eq!(
        archetype_updated.body["archetype"]["description"],
        "Updated description"
    );
    assert_eq!(
        archetype_updated.body["archetype"]["assignedAt"], assigned.body["archetype"]["assignedAt"],
        "an update keeps the assignment time"
    );

    let modalities = app
        .put(
            &format!("/users/{id}/modalities"),
            json!({ "modalities": { "visual": 0.8, "auditory": 0.6, "kinesthetic": 0.4 } }),
        )
        .await;
    assert_eq!(modalities.status, StatusCode::OK, "{}", modalities.body);
    assert_eq!(
        modalities.body["modalities"],
        json!({ "visual": 0.8, "auditory": 0.6, "kinesthetic": 0.4 })
    );

    // Every write names itself in X-Consistency-Token (id and version, as in its body).
    for write in [
        &created,
        &updated,
        &partial,
        &assigned,
        &archetype_updated,
        &modalities,
    ] {
        write.token();
    }

    // The list (a read model) read with the last change's token shows every change.
    let final_version = modalities.body["version"].as_u64().unwrap();
    let list = app
        .get_after("/users?page=1&limit=10", &modalities.token())
        .await;
    assert_eq!(list.status, StatusCode::OK, "{}", list.body);
    assert_eq!(list.body["users"][0]["version"], final_version);
    assert_eq!(list.body["total"], 1);
    assert_eq!(list.body["page"], 1);
    assert_eq!(list.body["limit"], 10);
    assert_eq!(list.body["hasMore"], false);
    assert_eq!(
        list.body["users"][0], modalities.body,
        "list and GET show the same user"
    );

    // The history holds every event in order, with metadata.
    let history = app.get(&format!("/users/{id}/history")).await;
    assert_eq!(history.status, StatusCode::OK, "{}", history.body);
    let types: Vec<_> = history.body["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["eventType"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(
        types,
        [
            "UserCreated",
            "UserProfileUpdated",
            "UserProfileUpdated",
            "ArchetypeAssigned",
            "ArchetypeUpdated",
            "ModalitiesUpdated"
        ]
    );
    let first = &history.body["events"][0];
    assert_eq!(first["data"]["username"], "johndoe");
    assert!(first["metadata"]["requestId"].is_string(), "{first}");
}

#[tokio::test]
async fn state_as_of_a_past_time_is_replayed() {
    let app = Platform::start().await;
    let id = app.create_user().await;
    let before = app.get(&format!("/users/{id}")).await;
    tokio::time::sleep(std::time::Duration::from_millis(30)).await;
    let between = chrono_now();
    tokio::time::sleep(std::time::Duration::from_millis(30)).await;
    let changed = app
        .put(&format!("/users/{id}"), json!({ "firstName": "Changed" }))
        .await;
    assert_eq!(changed.status, StatusCode::OK);

    let then = app.get(&format!("/users/{id}?asOf={}", between)).await;
    assert_eq!(then.status, StatusCode::OK, "{}", then.body);
    assert_eq!(then.body["firstName"], "Test");
    assert_eq!(then.body, before.body);
    let now = app.get(&format!("/users/{id}")).await;
    assert_eq!(now.body["firstName"], "Changed");

    let too_early = app.get(&format!("/users/{id}?asOf=2000-01-01")).await;
    too_early.assert_error(StatusCode::NOT_FOUND, "not_found", None);
    let garbage = app.get(&format!("/users/{id}?asOf=yesterday")).await;
    garbage.assert_error(StatusCode::BAD_REQUEST, "invalid_argument", Some("asOf"));
}

fn chrono_now() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Micros, true)
}

#[tokio::test]
async fn usernames_and_emails_are_unique_case_insensitively() {
    let app = Platform::start().await;
    let first = app
        .post(
            "/users",
            json!({ "username": "Alice", "email": "Alice@Example.com", "firstName": "A", "lastName": "L" }),
        )
        .await;
    assert_eq!(first.status, StatusCode::CREATED, "{}", first.body);

    let same_name = app
        .post(
            "/users",
            json!({ "username": "alice", "email": "other@example.com", "firstName": "A", "lastName": "L" }),
        )
        .await;
    same_name.assert_error(StatusCode::CONFLICT, "already_exists", Some("username"));

    let same_email = app
        .post(
            "/users",
            json!({ "username": "alice2", "email": "alice@EXAMPLE.com", "firstName": "A", "lastName": "L" }),
        )
        .await;
    same_email.assert_error(StatusCode::CONFLICT, "already_exists", Some("email"));

    // A refused creation stores nothing: the other name is still free.
    let retry = app
        .post(
            "/users",
            json!({ "username": "alice2", "email": "alice2@example.com", "firstName": "A", "lastName": "L" }),
        )
        .await;
    assert_eq!(retry.status, StatusCode::CREATED, "{}", retry.body);
    // Two users, two writes (on two partitions in production): wait for each.
    app.get_after("/users", &first.token()).await;
    let list = app.get_after("/users", &retry.token()).await;
    assert_eq!(list.body["total"], 2, "{}", list.body);
    assert_eq!(list.body["users"].as_array().unwrap().len(), 2);
}

#[tokio::test]
async fn invalid_input_is_refused_with_the_field_named() {
    let app = Platform::start().await;
    let bad = app
        .post(
            "/users",
            json!({ "username": "x", "email": "not-an-email", "firstName": "  ", "lastName": "L", "dateOfBirth": "2999-01-01" }),
        )
        .await;
    bad.assert_error(
        StatusCode::BAD_REQUEST,
        "invalid_argument",
        Some("username"),
    );
    for field in ["email", "firstName", "dateOfBirth"] {
        bad.assert_error(StatusCode::BAD_REQUEST, "invalid_argument", Some(field));
    }
    let not_a_date = app
        .post(
            "/users",
            json!({ "username": "okname", "email": "ok@example.com", "firstName": "A", "lastName": "B", "dateOfBirth": "1990-02-30" }),
        )
        .await;
    not_a_date.assert_error(
        StatusCode::BAD_REQUEST,
        "invalid_argument",
        Some("dateOfBirth"),
    );

    let wrong_type = app
        .post(
            "/users",
            json!({ "username": "okname", "email": "ok@example.com", "firstName": 5, "lastName": "B" }),
        )
        .await;
    wrong_type.assert_error(
        StatusCode::BAD_REQUEST,
        "invalid_argument",
        Some("firstName"),
    );

    let malformed = app
        .send_raw("POST", "/users", "application/json", "{\"username\": ")
        .await;
    malformed.assert_error(StatusCode::BAD_REQUEST, "invalid_argument", None);

    let missing = app.post("/users", json!({ "username": "okname" })).await;
    missing.assert_error(StatusCode::BAD_REQUEST, "invalid_argument", Some("email"));

    let id = app.create_user().await;
    let confidence = app
        .post(
            &format!("/users/{id}/archetype"),
            json!({ "archetypeId": "thinker", "archetypeName": "The Thinker", "confidence": 1.5, "description": "" }),
        )
        .await;
    confidence.assert_error(
        StatusCode::BAD_REQUEST,
        "invalid_argument",
        Some("confidence"),
    );

    let early_update = app
        .put(
            &format!("/users/{id}/archetype"),
            json!({ "archetypeId": "thinker", "archetypeName": "The Thinker", "confidence": 0.5, "description": "" }),
        )
        .await;
    early_update.assert_error(StatusCode::CONFLICT, "failed_precondition", None);

    let modality = app
        .put(
            &format!("/users/{id}/modalities"),
            json!({ "modalities": { "visual": 1.2, "smell": 0.3 } }),
        )
        .await;
    modality.assert_error(
        StatusCode::BAD_REQUEST,
        "invalid_argument",
        Some("modalities.visual"),
    );
    modality.assert_error(
        StatusCode::BAD_REQUEST,
        "invalid_argument",
        Some("modalities.smell"),
    );

    let empty = app
        .put(
            &format!("/users/{id}/modalities"),
            json!({ "modalities": {} }),
        )
        .await;
    empty.assert_error(
        StatusCode::BAD_REQUEST,
        "invalid_argument",
        Some("modalities"),
    );

    // None of the refused commands changed the user.
    let user = app.get(&format!("/users/{id}")).await;
    assert_eq!(user.body["version"], 1, "{}", user.body);
    assert_eq!(user.body["archetype"], json!(null));
}

#[tokio::test]
async fn unknown_and_malformed_ids_and_paging_bounds() {
    let app = Platform::start().await;
    let missing = uuid::Uuid::new_v4();
    app.get(&format!("/users/{missing}")).await.assert_error(
        StatusCode::NOT_FOUND,
        "not_found",
        None,
    );
    app.put(&format!("/users/{missing}"), json!({ "bio": "x" }))
        .await
        .assert_error(StatusCode::NOT_FOUND, "not_found", None);
    app.get(&format!("/users/{missing}/history"))
        .await
        .assert_error(StatusCode::NOT_FOUND, "not_found", None);
    app.get("/users/not-a-uuid").await.assert_error(
        StatusCode::BAD_REQUEST,
        "invalid_argument",
        Some("id"),
    );
    app.get("/users?limit=1000").await.assert_error(
        StatusCode::BAD_REQUEST,
        "invalid_argument",
        Some("limit"),
    );
    app.get("/users?page=0").await.assert_error(
        StatusCode::BAD_REQUEST,
        "invalid_argument",
        Some("page"),
    );
    app.get("/users?page=abc").await.assert_error(
        StatusCode::BAD_REQUEST,
        "invalid_argument",
        Some("page"),
    );

    let mut tokens = Vec::new();
    for _ in 0..3 {
        tokens.push(app.create_user_written().await.token());
    }
    // One token per user (each may be on its own partition); the last answer shows all three.
    let mut page1 = app.get("/users?page=1&limit=2").await;
    for token in &tokens {
        page1 = app.get_after("/users?page=1&limit=2", token).await;
    }
    assert_eq!(page1.body["total"], 3, "{}", page1.body);
    assert_eq!(page1.body["users"].as_array().unwrap().len(), 2);
    assert_eq!(page1.body["hasMore"], true);
    let page2 = app.get("/users?page=2&limit=2").await;
    assert_eq!(page2.body["users"].as_array().unwrap().len(), 1);
    assert_eq!(page2.body["hasMore"], false);
    assert_ne!(page1.body["users"][0]["id"], page2.body["users"][0]["id"]);
    let cursor = page1.body["nextCursor"]
        .as_str()
        .expect("a next cursor")
        .to_owned();
    let by_cursor = app.get(&format!("/users?limit=2&cursor={cursor}")).await;
    assert_eq!(
        by_cursor.body["users"], page2.body["users"],
        "a cursor continues where its page ended"
    );
    assert_eq!(by_cursor.body["nextCursor"], serde_json::Value::Null);
    app.get("/users?cursor=not-a-cursor").await.assert_error(
        StatusCode::BAD_REQUEST,
        "invalid_argument",
        Some("cursor"),
    );
    let beyond = app.get("/users?page=9&limit=2").await;
    assert_eq!(beyond.status, StatusCode::OK);
    assert_eq!(beyond.body["users"], json!([]));
}

#[tokio::test]
async fn versions_are_etags_and_if_match_is_forwarded() {
    let app = Platform::start().await;
    let id = app.create_user().await;
    let fetched = app.get(&format!("/users/{id}")).await;
    assert_eq!(fetched.headers["etag"], "\"1\"");
    // Upper-case ids are the same id.
    let upper = app.get(&format!("/users/{}", id.to_uppercase())).await;
    assert_eq!(upper.status, StatusCode::OK, "{}", upper.body);
    assert_eq!(upper.body["id"], id.as_str());

    let client = reqwest::Client::new();
    let updated = client
        .put(app.url(&format!("/users/{id}")))
        .header("if-match", "\"1\"")
        .json(&json!({ "bio": "matched" }))
        .send()
        .await
        .unwrap();
    assert_eq!(updated.status(), StatusCode::OK);
    assert_eq!(updated.headers()["etag"], "\"2\"");
    let any = client
        .put(app.url(&format!("/users/{id}/modalities")))
        .header("if-match", "*")
        .json(&json!({ "modalities": { "visual": 0.5 } }))
        .send()
        .await
        .unwrap();
    assert_eq!(any.status(), StatusCode::OK);
    assert_eq!(any.headers()["etag"], "\"3\"");
    let malformed = client
        .put(app.url(&format!("/users/{id}")))
        .header("if-match", "version 3")
        .json(&json!({ "bio": "x" }))
        .send()
        .await
        .unwrap();
    assert_eq!(malformed.status(), StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn dates_of_birth_are_exactly_year_month_day() {
    let app = Platform::start().await;
    let id = app.create_user().await;
    for bad in ["1990-1-1", "+1990-01-01", " 1990-01-01 "] {
        app.put(&format!("/users/{id}"), json!({ "dateOfBirth": bad }))
            .await
            .assert_error(
                StatusCode::BAD_REQUEST,
                "invalid_argument",
                Some("dateOfBirth"),
            );
    }
    let set = app
        .put(
            &format!("/users/{id}"),
            json!({ "dateOfBirth": "1990-01-01" }),
        )
        .await;
    assert_eq!(set.body["dateOfBirth"], "1990-01-01", "{}", set.body);
    let cleared = app
        .put(&format!("/users/{id}"), json!({ "dateOfBirth": "" }))
        .await;
    assert_eq!(cleared.body["dateOfBirth"], json!(null), "{}", cleared.body);
}
