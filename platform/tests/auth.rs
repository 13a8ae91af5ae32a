//! Authentication and authorisation end to end, with tokens the platform issues
//! (`AUTH_TOKEN_SECRET`) and a service token between the gateway and the services:
//! every route that is not public refuses a missing, forged, expired or other user's token,
//! and accepts its owner's; admins may act for everyone; registration follows `REGISTRATION`;
//! the services refuse gRPC callers without the service token; and a platform that would
//! serve without authentication where others can reach it, or in production, does not start.
//! Runs on the embedded platform, and with `METACHAT_TEST_WIRING=production` over
//! PostgreSQL, Kafka and Cassandra.

mod support;

use std::time::Duration;

use api_gateway::auth::{INVITE_SUBJECT, Issuer};
use reqwest::StatusCode;
use serde_json::{Value, json};
use support::{Platform, Reply, Wiring, default_wiring};

const SECRET: &str = "test-secret-0123456789abcdef-0123456789";
const SERVICE_TOKEN: &str = "service-token-0123456789";

fn issuer() -> Issuer {
    Issuer::new(SECRET.as_bytes(), Duration::from_secs(600)).unwrap()
}

fn bearer(token: &str) -> Vec<(&'static str, String)> {
    vec![("authorization", format!("Bearer {token}"))]
}

async fn start(extra: &[(&'static str, String)]) -> Platform {
    let mut env = vec![
        ("AUTH_TOKEN_SECRET", SECRET.to_owned()),
        ("SERVICE_TOKEN", SERVICE_TOKEN.to_owned()),
    ];
    env.extend(extra.iter().cloned());
    Platform::start_with_env(default_wiring().await, &env).await
}

async fn register(app: &Platform, name: &str, headers: &[(&str, String)]) -> Reply {
    app.request_with(
        "POST",
        "/users",
        Some(
            json!({"username": name, "email": format!("{name}@example.com"),
                    "firstName": "A", "lastName": "B"}),
        ),
        headers,
    )
    .await
}

/// A token signed like the platform's, with any claims.
fn signed(claims: Value, secret: &str) -> String {
    jsonwebtoken::encode(
        &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256),
        &claims,
        &jsonwebtoken::EncodingKey::from_secret(secret.as_bytes()).unwrap(),
    )
    .unwrap()
}

fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

#[tokio::test]
async fn every_route_wants_its_owners_token() {
    let app = start(&[]).await;
    let issuer = issuer();
    let alice = register(&app, "alice", &[]).await;
    assert_eq!(alice.status, StatusCode::CREATED, "{}", alice.body);
    let alice = alice.id();
    let bob = register(&app, "bob", &[]).await.id();
    let (alice_token, bob_token) = (
        issuer.issue(&alice, false, None),
        issuer.issue(&bob, false, None),
    );
    let admin_token = issuer.issue(&bob, true, None);

    // Alice writes an entry in a session, with her token.
    let session = app
        .request_with(
            "POST",
            "/diary/sessions",
            Some(json!({"userId": alice})),
            &bearer(&alice_token),
        )
        .await;
    assert_eq!(session.status, StatusCode::CREATED, "{}", session.body);
    let session = session.id();
    let entry = app
        .request_with(
            "POST",
            "/diary/entries",
            Some(json!({"userId": alice, "title": "Mine", "content": "Only mine.", "sessionId": session})),
            &bearer(&alice_token),
        )
        .await;
    assert_eq!(entry.status, StatusCode::CREATED, "{}", entry.body);
    let entry = entry.id();

    // Every route that is not public, as Alice would call it.
    let calls: Vec<(&str, String, Option<Value>)> = vec![
        ("GET", "/users".into(), None),
        ("GET", format!("/users/{alice}"), None),
        (
            "PUT",
            format!("/users/{alice}"),
            Some(json!({"bio": "hello"})),
        ),
        (
            "POST",
            format!("/users/{alice}/archetype"),
            Some(
                json!({"archetypeId": "thinker", "archetypeName": "The Thinker", "confidence": 0.5}),
            ),
        ),
        (
            "PUT",
            format!("/users/{alice}/archetype"),
            Some(
                json!({"archetypeId": "thinker", "archetypeName": "The Thinker", "confidence": 0.6}),
            ),
        ),
        (
            "PUT",
            format!("/users/{alice}/modalities"),
            Some(json!({"modalities": {"visual": 0.5}})),
        ),
        ("GET", format!("/users/{alice}/history"), None),
        (
            "PUT",
            format!("/users/{alice}/password"),
            Some(json!({"newPassword": "a brand new password"})),
        ),
        ("GET", format!("/users/{alice}/export"), None),
        ("GET", format!("/users/{alice}/export.md"), None),
        ("GET", format!("/users/{alice}/analysis"), None),
        (
            "PUT",
            format!("/users/{alice}/analysis"),
            Some(json!({"enabled": true})),
        ),
        (
            "POST",
            "/diary/entries".into(),
            Some(json!({"userId": alice, "title": "", "content": "More."})),
        ),
        ("GET", format!("/diary/entries/{entry}"), None),
        (
            "PUT",
            format!("/diary/entries/{entry}"),
            Some(json!({"title": "Still mine"})),
        ),
        ("GET", format!("/diary/entries/{entry}/history"), None),
        ("GET", format!("/diary/entries/{entry}/related"), None),
        ("GET", format!("/diary/search?userId={alice}&q=mine"), None),
        ("GET", format!("/diary/entries/user/{alice}"), None),
        (
            "POST",
            "/diary/sessions".into(),
            Some(json!({"userId": alice})),
        ),
        ("GET", format!("/diary/sessions/{session}"), None),
        ("GET", format!("/diary/sessions/{session}/history"), None),
        ("GET", format!("/diary/sessions/user/{alice}"), None),
        ("GET", format!("/diary/analytics?userId={alice}"), None),
        ("PUT", format!("/diary/sessions/{session}/end"), None),
        ("DELETE", format!("/diary/entries/{entry}"), None),
        // Alice's own call of this one comes last (it erases her).
        ("DELETE", format!("/users/{alice}"), None),
    ];
    // The table covers every route but the public ones.
    let public = [
        "/",
        "/docs",
        "/docs/{file}",
        "/openapi.json",
        "/health/live",
        "/health/ready",
        "/metrics",
        "/archetypes",
        "/users",
        "/auth/token",
        "/auth/refresh",
        "/auth/signout",
        // The web app's files and its sign-in by cookies (its own test below).
        "/app/{file}",
        "/auth/session",
        "/auth/session/refresh",
    ];
    let covered: Vec<String> = calls
        .iter()
        .map(|(m, p, _)| format!("{m} {}", template(p, &alice, &entry, &session)))
        .collect();
    for (method, path) in api_gateway::routes() {
        let route = format!("{method} {path}");
        let is_public = public.contains(&path) && !(method == "GET" && path == "/users");
        assert!(
            is_public || covered.contains(&route),
            "{route} is not covered"
        );
    }

    let expired = signed(
        json!({"sub": alice, "exp": now() - 120, "iss": "metachat", "aud": "metachat"}),
        SECRET,
    );
    let forged = signed(
        json!({"sub": alice, "exp": now() + 600, "iss": "metachat", "aud": "metachat", "roles": ["admin"]}),
        "another secret entirely, 32+ bytes long",
    );
    let mut checked = 0;
    for (method, path, body) in &calls {
        let call = async |headers: Vec<(&'static str, String)>| {
            app.request_with(method, path, body.clone(), &headers).await
        };
        for (what, headers) in [
            ("no token", vec![]),
            ("a forged token", bearer(&forged)),
            ("an expired token", bearer(&expired)),
            (
                "a malformed header",
                vec![("authorization", "Basic YWxpY2U6cHc=".to_owned())],
            ),
            (
                "two tokens",
                vec![
                    ("authorization", format!("Bearer {alice_token}")),
                    ("authorization", format!("Bearer {admin_token}")),
                ],
            ),
        ] {
            let reply = call(headers).await;
            reply.assert_error(StatusCode::UNAUTHORIZED, "unauthenticated", None);
            assert!(
                reply
                    .headers
                    .get("www-authenticate")
                    .is_some_and(|v| v.to_str().unwrap().starts_with("Bearer")),
                "{method} {path} with {what}: {:?}",
                reply.headers
            );
            checked += 1;
        }
        // Bob's token: forbidden where the id is Alice's, not found where an entry or session
        // of hers is named (he may not learn it exists).
        let reply = call(bearer(&bob_token)).await;
        assert!(
            matches!(reply.status, StatusCode::FORBIDDEN | StatusCode::NOT_FOUND),
            "{method} {path} with Bob's token: {} {}",
            reply.status,
            reply.body
        );
        if path.starts_with("/diary/entries/") && !path.contains("/user/")
            || path.starts_with("/diary/sessions/") && !path.contains("/user/")
        {
            reply.assert_error(StatusCode::NOT_FOUND, "not_found", None);
        }
        if *method == "DELETE" && path.starts_with("/users/") {
            continue;
        }
        // Alice's own token passes authorisation (the admin listing aside).
        let own = call(bearer(&alice_token)).await;
        if path == "/users" {
            own.assert_error(StatusCode::FORBIDDEN, "permission_denied", None);
            let listed = call(bearer(&admin_token)).await;
            assert_eq!(listed.status, StatusCode::OK, "{}", listed.body);
        } else {
            assert!(
                !matches!(
                    own.status,
                    StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN | StatusCode::NOT_FOUND
                ),
                "{method} {path} with Alice's token: {} {}",
                own.status,
                own.body
            );
        }
    }
    assert_eq!(checked, 5 * calls.len());
    println!("{checked} refused calls, {} routes", calls.len());

    // An admin acts for anyone.
    let read = app
        .request_with(
            "GET",
            &format!("/diary/entries/user/{alice}"),
            None,
            &bearer(&admin_token),
        )
        .await;
    assert_eq!(read.status, StatusCode::OK, "{}", read.body);
    // Bob cannot write into Alice's diary by naming her in the body.
    app.request_with(
        "POST",
        "/diary/entries",
        Some(json!({"userId": alice, "title": "", "content": "Not mine."})),
        &bearer(&bob_token),
    )
    .await
    .assert_error(StatusCode::FORBIDDEN, "permission_denied", Some("userId"));
    // Public routes need no token.
    for path in ["/health/live", "/openapi.json", "/archetypes"] {
        assert_eq!(app.get(path).await.status, StatusCode::OK, "{path}");
    }
    // The events record who acted.
    let history = app
        .request_with(
            "GET",
            &format!("/users/{alice}/history"),
            None,
            &bearer(&alice_token),
        )
        .await;
    let actors: Vec<&str> = history.body["events"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|e| e["metadata"]["actor"].as_str())
        .collect();
    assert!(actors.contains(&alice.as_str()), "{actors:?}");

    // Alice erases herself; her token then finds nothing.
    let erased = app
        .request_with(
            "DELETE",
            &format!("/users/{alice}"),
            None,
            &bearer(&alice_token),
        )
        .await;
    assert_eq!(erased.status, StatusCode::NO_CONTENT, "{}", erased.body);
    app.request_with(
        "GET",
        &format!("/users/{alice}"),
        None,
        &bearer(&alice_token),
    )
    .await
    .assert_error(StatusCode::NOT_FOUND, "not_found", None);
}

/// A concrete path back to its route template.
fn template(path: &str, user: &str, entry: &str, session: &str) -> String {
    let path = path.split('?').next().unwrap_or_default();
    path.replace(
        &format!("/diary/entries/user/{user}"),
        "/diary/entries/user/{userId}",
    )
    .replace(
        &format!("/diary/sessions/user/{user}"),
        "/diary/sessions/user/{userId}",
    )
    .replace(user, "{id}")
    .replace(entry, "{id}")
    .replace(session, "{id}")
}

#[tokio::test]
async fn registration_is_open_by_invitation_or_closed() {
    let issuer = issuer();
    let admin = issuer.issue(&uuid::Uuid::new_v4().to_string(), true, None);

    let closed = start(&[("REGISTRATION", "closed".to_owned())]).await;
    register(&closed, "carol", &[]).await.assert_error(
        StatusCode::FORBIDDEN,
        "permission_denied",
        None,
    );
    assert_eq!(
        register(&closed, "carol", &bearer(&admin)).await.status,
        StatusCode::CREATED
    );
    drop(closed);

    let invite = start(&[("REGISTRATION", "invite".to_owned())]).await;
    register(&invite, "dave", &[]).await.assert_error(
        StatusCode::FORBIDDEN,
        "permission_denied",
        None,
    );
    let invitation = issuer.issue(INVITE_SUBJECT, false, Some(Duration::from_secs(600)));
    let joined = register(&invite, "dave", &[("x-invite-token", invitation.clone())]).await;
    assert_eq!(joined.status, StatusCode::CREATED, "{}", joined.body);
    // An invitation is no access token.
    invite
        .request_with(
            "GET",
            &format!("/users/{}", joined.id()),
            None,
            &bearer(&invitation),
        )
        .await
        .assert_error(StatusCode::UNAUTHORIZED, "unauthenticated", None);
}

#[tokio::test]
async fn the_services_answer_only_callers_with_the_service_token() {
    let app = start(&[]).await;
    let user = register(&app, "erin", &[]).await.id();
    let mut client =
        metachat_proto::user::user_service_client::UserServiceClient::connect(app.user_grpc())
            .await
            .unwrap();
    let request = || metachat_proto::user::GetUserRequest {
        id: user.clone(),
        as_of: None,
    };
    let refused = client.get_user(request()).await.unwrap_err();
    assert_eq!(refused.code(), tonic::Code::Unauthenticated, "{refused:?}");
    let mut with_token = tonic::Request::new(request());
    with_token
        .metadata_mut()
        .insert("x-service-token", SERVICE_TOKEN.parse().unwrap());
    assert!(client.get_user(with_token).await.is_ok());
    // Health stays open for probes.
    let channel = tonic::transport::Endpoint::from_shared(app.user_grpc())
        .unwrap()
        .connect()
        .await
        .unwrap();
    let mut health = tonic_health::pb::health_client::HealthClient::new(channel);
    assert!(
        health
            .check(tonic_health::pb::HealthCheckRequest {
                service: String::new()
            })
            .await
            .is_ok()
    );
}

#[tokio::test]
async fn without_authentication_it_serves_only_on_loopback_and_never_in_production() {
    if default_wiring().await != Wiring::Embedded {
        return;
    }
    for (env, says) in [
        (
            vec![("BIND_ADDRESS", "0.0.0.0".to_owned())],
            "authentication is off",
        ),
        (
            vec![
                ("ENVIRONMENT", "prod".to_owned()),
                ("SERVICE_TOKEN", SERVICE_TOKEN.to_owned()),
            ],
            "ENVIRONMENT=prod needs authentication",
        ),
        (
            vec![
                ("ENVIRONMENT", "prod".to_owned()),
                ("AUTH_TOKEN_SECRET", SECRET.to_owned()),
            ],
            "ENVIRONMENT=prod needs SERVICE_TOKEN",
        ),
        (
            vec![("AUTH_TOKEN_SECRET", "short".to_owned())],
            "AUTH_TOKEN_SECRET",
        ),
        (
            vec![
                ("AUTH_TOKEN_SECRET", SECRET.to_owned()),
                ("BIND_ADDRESS", "0.0.0.0".to_owned()),
            ],
            "without SERVICE_TOKEN",
        ),
    ] {
        let (status, output) = support::run_to_exit(&env).await;
        assert!(!status.success(), "{env:?} started: {output}");
        assert!(output.contains(says), "{env:?}: {output}");
        assert!(
            !output.contains(SECRET),
            "the secret is never printed: {output}"
        );
    }
    // On loopback it starts, and says loudly that it is open.
    let app = Platform::start_wired(Wiring::Embedded).await;
    assert!(
        app.logs().contains("AUTHENTICATION IS OFF"),
        "{}",
        app.logs()
    );
}

#[tokio::test]
async fn a_password_signs_in_and_tokens_refresh_once_and_sign_out() {
    let app = start(&[]).await;
    let created = app
        .post(
            "/users",
            json!({"username": "frank", "email": "frank@example.com", "firstName": "F",
                   "lastName": "G", "password": "a long enough password"}),
        )
        .await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.body);
    assert!(created.body.get("password").is_none(), "{}", created.body);
    let id = created.id();

    // Wrong password and unknown login: one answer.
    for (login, password) in [
        ("frank", "the wrong password"),
        ("nobody", "a long enough password"),
    ] {
        app.post("/auth/token", json!({"login": login, "password": password}))
            .await
            .assert_error(StatusCode::UNAUTHORIZED, "unauthenticated", None);
    }
    let tokens = app
        .post(
            "/auth/token",
            json!({"login": "FRANK@example.com", "password": "a long enough password"}),
        )
        .await;
    assert_eq!(tokens.status, StatusCode::OK, "{}", tokens.body);
    assert_eq!(tokens.body["userId"], id.as_str());
    assert_eq!(tokens.body["tokenType"], "Bearer");
    assert_eq!(tokens.body["expiresIn"], 900);
    let access = tokens.body["accessToken"].as_str().unwrap().to_owned();
    let refresh = tokens.body["refreshToken"].as_str().unwrap().to_owned();
    let me = app
        .request_with("GET", &format!("/users/{id}"), None, &bearer(&access))
        .await;
    assert_eq!(me.status, StatusCode::OK, "{}", me.body);

    // A refresh gives new tokens; the spent refresh token ends the sign-in.
    let renewed = app
        .post("/auth/refresh", json!({"refreshToken": refresh}))
        .await;
    assert_eq!(renewed.status, StatusCode::OK, "{}", renewed.body);
    let renewed_refresh = renewed.body["refreshToken"].as_str().unwrap().to_owned();
    assert_ne!(renewed_refresh, refresh);
    app.post("/auth/refresh", json!({"refreshToken": refresh}))
        .await
        .assert_error(StatusCode::UNAUTHORIZED, "unauthenticated", None);
    app.post("/auth/refresh", json!({"refreshToken": renewed_refresh}))
        .await
        .assert_error(StatusCode::UNAUTHORIZED, "unauthenticated", None);

    // Sign out: the refresh token refreshes no more.
    let again = app
        .post(
            "/auth/token",
            json!({"login": "frank", "password": "a long enough password"}),
        )
        .await;
    let refresh = again.body["refreshToken"].as_str().unwrap().to_owned();
    let out = app
        .post("/auth/signout", json!({"refreshToken": refresh}))
        .await;
    assert_eq!(out.status, StatusCode::NO_CONTENT, "{}", out.body);
    app.post("/auth/refresh", json!({"refreshToken": refresh}))
        .await
        .assert_error(StatusCode::UNAUTHORIZED, "unauthenticated", None);
    // Over-long credentials are refused before any hashing.
    app.post(
        "/auth/token",
        json!({"login": "frank", "password": "x".repeat(100_000)}),
    )
    .await
    .assert_error(
        StatusCode::BAD_REQUEST,
        "invalid_argument",
        Some("password"),
    );
    // Bad bodies name the field.
    app.post("/auth/token", json!({"login": "frank"}))
        .await
        .assert_error(StatusCode::BAD_REQUEST, "invalid_argument", None);
    app.post(
        "/users",
        json!({"username": "gina", "email": "gina@example.com", "firstName": "G",
               "lastName": "H", "password": "short"}),
    )
    .await
    .assert_error(
        StatusCode::BAD_REQUEST,
        "invalid_argument",
        Some("password"),
    );
}

/// The `Set-Cookie` lines of a reply, by cookie name: `(value, attributes)`.
fn set_cookies(reply: &Reply) -> std::collections::BTreeMap<String, (String, String)> {
    reply
        .headers
        .get_all("set-cookie")
        .iter()
        .map(|v| {
            let line = v.to_str().unwrap();
            let (pair, attributes) = line.split_once(';').unwrap_or((line, ""));
            let (name, value) = pair.split_once('=').unwrap();
            (name.to_owned(), (value.to_owned(), attributes.to_owned()))
        })
        .collect()
}

/// The web app's cookies, as a browser sends them back.
fn cookie_header(cookies: &std::collections::BTreeMap<String, (String, String)>) -> String {
    cookies
        .iter()
        .map(|(name, (value, _))| format!("{name}={value}"))
        .collect::<Vec<_>>()
        .join("; ")
}

#[tokio::test]
async fn the_web_apps_cookies_sign_in_and_writes_need_the_csrf_token() {
    let app = start(&[]).await;
    let created = app
        .post(
            "/users",
            json!({"username": "hana", "email": "hana@example.com", "firstName": "H",
                   "lastName": "I", "password": "a long enough password"}),
        )
        .await;
    let id = created.id();
    let other = register(&app, "ivo", &[]).await.id();

    app.post(
        "/auth/session",
        json!({"login": "hana", "password": "the wrong one"}),
    )
    .await
    .assert_error(StatusCode::UNAUTHORIZED, "unauthenticated", None);
    let signed_in = app
        .post(
            "/auth/session",
            json!({"login": "hana", "password": "a long enough password"}),
        )
        .await;
    assert_eq!(signed_in.status, StatusCode::OK, "{}", signed_in.body);
    assert_eq!(signed_in.body["userId"], id.as_str());
    assert!(
        signed_in.body.get("accessToken").is_none(),
        "{}",
        signed_in.body
    );
    let cookies = set_cookies(&signed_in);
    for (name, http_only) in [
        ("__Host-metachat-access", true),
        ("__Host-metachat-refresh", true),
        ("__Host-metachat-csrf", false),
    ] {
        let (value, attributes) = &cookies[name];
        assert!(value.len() >= 20, "{name}");
        for attribute in ["Path=/", "Secure", "SameSite=Strict"] {
            assert!(attributes.contains(attribute), "{name}: {attributes}");
        }
        assert_eq!(
            attributes.contains("HttpOnly"),
            http_only,
            "{name}: {attributes}"
        );
        assert!(!attributes.contains("Domain"), "{name}: {attributes}");
    }
    let jar = cookie_header(&cookies);
    let csrf = cookies["__Host-metachat-csrf"].0.clone();
    let with = |extra: &[(&'static str, String)]| {
        let mut headers = vec![("cookie", jar.clone())];
        headers.extend(extra.iter().cloned());
        headers
    };

    // Reads go with the cookie alone; the session says who it is.
    let session = app
        .request_with("GET", "/auth/session", None, &with(&[]))
        .await;
    assert_eq!(session.body["userId"], id.as_str(), "{}", session.body);
    let me = app
        .request_with("GET", &format!("/users/{id}"), None, &with(&[]))
        .await;
    assert_eq!(me.status, StatusCode::OK, "{}", me.body);
    // No cache keeps what the cookie read.
    assert_eq!(me.headers["cache-control"], "private, no-store");
    // The cookie is its owner's only.
    let theirs = app
        .request_with("GET", &format!("/users/{other}"), None, &with(&[]))
        .await;
    assert_eq!(theirs.status, StatusCode::FORBIDDEN, "{}", theirs.body);

    // A write with the cookie but without the CSRF token, or with another, is refused and
    // stores nothing.
    let entry = json!({"userId": id, "title": "Forged", "content": "Not mine to write."});
    for extra in [vec![], vec![("x-csrf-token", "not-the-token".to_owned())]] {
        let refused = app
            .request_with("POST", "/diary/entries", Some(entry.clone()), &with(&extra))
            .await;
        refused.assert_error(StatusCode::FORBIDDEN, "permission_denied", None);
        assert!(
            refused.body["error"]["message"]
                .as_str()
                .unwrap()
                .contains("X-CSRF-Token")
        );
    }
    let listed = app
        .request_with(
            "GET",
            &format!("/diary/entries/user/{id}"),
            None,
            &with(&[]),
        )
        .await;
    assert_eq!(
        listed.body["entries"].as_array().unwrap().len(),
        0,
        "{}",
        listed.body
    );
    let written = app
        .request_with(
            "POST",
            "/diary/entries",
            Some(json!({"userId": id, "title": "Mine", "content": "Written in the app."})),
            &with(&[("x-csrf-token", csrf.clone())]),
        )
        .await;
    assert_eq!(written.status, StatusCode::CREATED, "{}", written.body);

    // Renewing needs the CSRF token too; it rotates the refresh cookie, and the spent one
    // ends the sign-in.
    app.request_with("POST", "/auth/session/refresh", None, &with(&[]))
        .await
        .assert_error(StatusCode::FORBIDDEN, "permission_denied", None);
    let renewed = app
        .request_with(
            "POST",
            "/auth/session/refresh",
            None,
            &with(&[("x-csrf-token", csrf.clone())]),
        )
        .await;
    assert_eq!(renewed.status, StatusCode::OK, "{}", renewed.body);
    let fresh = set_cookies(&renewed);
    assert_ne!(
        fresh["__Host-metachat-refresh"].0,
        cookies["__Host-metachat-refresh"].0
    );
    let spent = app
        .request_with(
            "POST",
            "/auth/session/refresh",
            None,
            &with(&[("x-csrf-token", csrf.clone())]),
        )
        .await;
    spent.assert_error(StatusCode::UNAUTHORIZED, "unauthenticated", None);
    assert!(
        set_cookies(&spent)["__Host-metachat-access"]
            .1
            .contains("Max-Age=0")
    );

    // Signing in again over live cookies ends the sign-in they held.
    let replaced = set_cookies(&renewed);
    let replaced_jar = cookie_header(&replaced);
    let replaced_csrf = replaced["__Host-metachat-csrf"].0.clone();
    let again = app
        .request_with(
            "POST",
            "/auth/session",
            Some(json!({"login": "hana", "password": "a long enough password"})),
            &[("cookie", replaced_jar.clone())],
        )
        .await;
    assert_eq!(again.status, StatusCode::OK, "{}", again.body);
    app.request_with(
        "POST",
        "/auth/session/refresh",
        None,
        &[("cookie", replaced_jar), ("x-csrf-token", replaced_csrf)],
    )
    .await
    .assert_error(StatusCode::UNAUTHORIZED, "unauthenticated", None);

    // Signing out ends the sign-in and clears the cookies.
    let cookies = set_cookies(&again);
    let jar = cookie_header(&cookies);
    let csrf = cookies["__Host-metachat-csrf"].0.clone();
    let out = app
        .request_with(
            "DELETE",
            "/auth/session",
            None,
            &[("cookie", jar.clone()), ("x-csrf-token", csrf.clone())],
        )
        .await;
    assert_eq!(out.status, StatusCode::NO_CONTENT, "{}", out.body);
    assert!(
        set_cookies(&out)
            .values()
            .all(|(value, attributes)| value.is_empty() && attributes.contains("Max-Age=0"))
    );
    app.request_with(
        "POST",
        "/auth/session/refresh",
        None,
        &[("cookie", jar), ("x-csrf-token", csrf)],
    )
    .await
    .assert_error(StatusCode::UNAUTHORIZED, "unauthenticated", None);
    // Without a cookie there is no session, nothing to renew and nothing to end.
    app.get("/auth/session")
        .await
        .assert_error(StatusCode::UNAUTHORIZED, "unauthenticated", None);
    app.request_with("POST", "/auth/session/refresh", None, &[])
        .await
        .assert_error(StatusCode::UNAUTHORIZED, "unauthenticated", None);
    let nothing = app.request_with("DELETE", "/auth/session", None, &[]).await;
    assert_eq!(nothing.status, StatusCode::NO_CONTENT, "{}", nothing.body);
}

/// Two Ed25519 test keys (PKCS#8 DER, generated for this test only) and their public halves.
const IDP_KEYS: [(&str, &str, &str); 2] = [
    (
        "key-2026-1",
        "302e020100300506032b6570042204208861a8195f89f9973fa45b3be56ade42fc52b96b97455b46ea3ac3c8a2529ab0",
        "sGwniA65Uu4RbcqntEAcUSIBj-c-X9DTQ3b_7HYxTkc",
    ),
    (
        "key-2026-2",
        "302e020100300506032b657004220420df42faec9be61c4cd3f9cc1908df3484273d1e2034245af0c72c039235d09627",
        "zmrqbwzEULmEv4ga_pcs2O-y7apgUXzs8qCO1ZQWL10",
    ),
];

const IDP_ISSUER: &str = "https://idp.example.test/";
const IDP_AUDIENCE: &str = "metachat-api";

fn jwks(keys: &[usize]) -> String {
    let keys: Vec<Value> = keys
        .iter()
        .map(|&k| {
            let (kid, _, x) = IDP_KEYS[k];
            json!({"kty": "OKP", "crv": "Ed25519", "x": x, "kid": kid, "alg": "EdDSA", "use": "sig"})
        })
        .collect();
    json!({ "keys": keys }).to_string()
}

/// A token of the identity provider, signed with key `key` but naming `kid`.
fn idp_token(key: usize, kid: &str, claims: Value) -> String {
    let der: Vec<u8> = (0..IDP_KEYS[key].1.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&IDP_KEYS[key].1[i..i + 2], 16).unwrap())
        .collect();
    let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::EdDSA);
    header.kid = Some(kid.to_owned());
    jsonwebtoken::encode(
        &header,
        &claims,
        &jsonwebtoken::EncodingKey::from_ed_der(&der),
    )
    .unwrap()
}

/// Serves whatever `body` holds as the JWKS, counting the fetches.
async fn serve_jwks(
    body: std::sync::Arc<std::sync::Mutex<String>>,
    fetches: std::sync::Arc<std::sync::atomic::AtomicUsize>,
) -> u16 {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        loop {
            let Ok((mut socket, _)) = listener.accept().await else {
                return;
            };
            let body = body.lock().unwrap().clone();
            fetches.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            tokio::spawn(async move {
                let mut request = [0u8; 4096];
                let _ = socket.read(&mut request).await;
                let response = format!(
                    "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                    body.len()
                );
                let _ = socket.write_all(response.as_bytes()).await;
            });
        }
    });
    port
}

#[tokio::test]
async fn an_identity_providers_tokens_are_verified_with_its_rotating_keys() {
    let body = std::sync::Arc::new(std::sync::Mutex::new(jwks(&[0])));
    let fetches = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let port = serve_jwks(body.clone(), fetches.clone()).await;
    let env = vec![
        (
            "AUTH_JWKS_URL",
            format!("http://127.0.0.1:{port}/.well-known/jwks.json"),
        ),
        ("AUTH_ISSUER", IDP_ISSUER.to_owned()),
        ("AUTH_AUDIENCE", IDP_AUDIENCE.to_owned()),
        ("AUTH_JWKS_REFETCH_SECS", "1".to_owned()),
        ("SERVICE_TOKEN", SERVICE_TOKEN.to_owned()),
    ];
    let app = Platform::start_with_env(default_wiring().await, &env).await;
    let user = register(&app, "hana", &[]).await.id();
    let claims = |sub: &str, iss: &str, aud: &str, roles: &[&str]| json!({"sub": sub, "iss": iss, "aud": aud, "exp": now() + 600, "roles": roles});
    let me = format!("/users/{user}");
    let get = async |token: String, path: &str| {
        app.request_with("GET", path, None, &bearer(&token)).await
    };

    let good = idp_token(
        0,
        IDP_KEYS[0].0,
        claims(&user, IDP_ISSUER, IDP_AUDIENCE, &[]),
    );
    assert_eq!(get(good.clone(), &me).await.status, StatusCode::OK);
    // Another audience, another issuer, a key the set lacks, a signature by another key.
    for token in [
        idp_token(
            0,
            IDP_KEYS[0].0,
            claims(&user, IDP_ISSUER, "someone-else", &[]),
        ),
        idp_token(
            0,
            IDP_KEYS[0].0,
            claims(&user, "https://evil.example/", IDP_AUDIENCE, &[]),
        ),
        idp_token(
            1,
            IDP_KEYS[0].0,
            claims(&user, IDP_ISSUER, IDP_AUDIENCE, &[]),
        ),
        issuer().issue(&user, true, None),
    ] {
        get(token, &me)
            .await
            .assert_error(StatusCode::UNAUTHORIZED, "unauthenticated", None);
    }
    // The provider's admin role.
    let admin = idp_token(
        0,
        IDP_KEYS[0].0,
        claims(
            &uuid::Uuid::new_v4().to_string(),
            IDP_ISSUER,
            IDP_AUDIENCE,
            &["admin"],
        ),
    );
    assert_eq!(get(admin, "/users").await.status, StatusCode::OK);

    // The provider rotates: the new key is fetched when a token names it, the old one is gone.
    *body.lock().unwrap() = jwks(&[1]);
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let before = fetches.load(std::sync::atomic::Ordering::SeqCst);
    let rotated = idp_token(
        1,
        IDP_KEYS[1].0,
        claims(&user, IDP_ISSUER, IDP_AUDIENCE, &[]),
    );
    assert_eq!(get(rotated, &me).await.status, StatusCode::OK);
    assert!(
        fetches.load(std::sync::atomic::Ordering::SeqCst) > before,
        "the set was fetched again"
    );
    get(good, &me)
        .await
        .assert_error(StatusCode::UNAUTHORIZED, "unauthenticated", None);
    // Unknown key ids do not make the gateway fetch on every request.
    let burst_start = fetches.load(std::sync::atomic::Ordering::SeqCst);
    for _ in 0..20 {
        let unknown = idp_token(
            1,
            "no-such-key",
            claims(&user, IDP_ISSUER, IDP_AUDIENCE, &[]),
        );
        get(unknown, &me)
            .await
            .assert_error(StatusCode::UNAUTHORIZED, "unauthenticated", None);
    }
    assert!(
        fetches.load(std::sync::atomic::Ordering::SeqCst) - burst_start <= 2,
        "fetched on every unknown key"
    );
}

#[tokio::test]
async fn callers_and_sign_ins_are_rate_limited_with_retry_after() {
    let app = start(&[
        ("RATE_LIMIT_PER_MINUTE", "30".to_owned()),
        ("SIGN_IN_RATE_LIMIT_PER_MINUTE", "3".to_owned()),
    ])
    .await;
    let user = register(&app, "ivan", &[]).await.id();
    let token = issuer().issue(&user, false, None);
    let me = format!("/users/{user}");
    let mut statuses = Vec::new();
    for _ in 0..40 {
        statuses.push(app.request_with("GET", &me, None, &bearer(&token)).await);
    }
    let limited = statuses
        .iter()
        .position(|r| r.status == StatusCode::TOO_MANY_REQUESTS)
        .expect("the 31st request of a minute is refused");
    assert!(
        (29..=31).contains(&limited),
        "refused from request {limited}"
    );
    let refused = &statuses[limited];
    refused.assert_error(StatusCode::TOO_MANY_REQUESTS, "too_many_requests", None);
    let retry: u64 = refused.headers["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=2).contains(&retry), "Retry-After {retry}");
    // Another user has a rate of their own; probes are never limited.
    let other = issuer().issue(&uuid::Uuid::new_v4().to_string(), true, None);
    assert_eq!(
        app.request_with("GET", "/users", None, &bearer(&other))
            .await
            .status,
        StatusCode::OK
    );
    for _ in 0..40 {
        assert_eq!(app.get("/health/live").await.status, StatusCode::OK);
    }
    // Sign-ins: 3 a minute from one address, right or wrong.
    let attempts: Vec<StatusCode> = futures::future::join_all((0..5).map(|_| {
        app.post(
            "/auth/token",
            json!({"login": "ivan", "password": "not the password"}),
        )
    }))
    .await
    .into_iter()
    .map(|r| r.status)
    .collect();
    assert_eq!(
        attempts
            .iter()
            .filter(|s| **s == StatusCode::TOO_MANY_REQUESTS)
            .count(),
        2,
        "{attempts:?}"
    );
}

#[tokio::test]
async fn a_changed_password_ends_the_sign_ins_made_before() {
    let app = start(&[]).await;
    let created = app
        .post(
            "/users",
            json!({"username": "judy", "email": "judy@example.com", "firstName": "J",
                   "lastName": "K", "password": "the first password"}),
        )
        .await;
    let id = created.id();
    let signed_in = app
        .post(
            "/auth/token",
            json!({"login": "judy", "password": "the first password"}),
        )
        .await;
    let access = signed_in.body["accessToken"].as_str().unwrap().to_owned();
    let refresh = signed_in.body["refreshToken"].as_str().unwrap().to_owned();
    let path = format!("/users/{id}/password");
    // The current password is required, and must be right.
    for current in [None, Some("not the first one")] {
        let mut body = json!({"newPassword": "the second password"});
        if let Some(current) = current {
            body["currentPassword"] = json!(current);
        }
        app.request_with("PUT", &path, Some(body), &bearer(&access))
            .await
            .assert_error(
                StatusCode::FORBIDDEN,
                "permission_denied",
                Some("currentPassword"),
            );
    }
    app.request_with(
        "PUT",
        &path,
        Some(json!({"currentPassword": "the first password", "newPassword": "short"})),
        &bearer(&access),
    )
    .await
    .assert_error(
        StatusCode::BAD_REQUEST,
        "invalid_argument",
        Some("newPassword"),
    );
    let changed = app
        .request_with(
            "PUT",
            &path,
            Some(json!({"currentPassword": "the first password", "newPassword": "the second password"})),
            &bearer(&access),
        )
        .await;
    assert_eq!(changed.status, StatusCode::NO_CONTENT, "{}", changed.body);
    // The old password no longer signs in; the new one does; the old sign-in refreshes no more.
    app.post(
        "/auth/token",
        json!({"login": "judy", "password": "the first password"}),
    )
    .await
    .assert_error(StatusCode::UNAUTHORIZED, "unauthenticated", None);
    let again = app
        .post(
            "/auth/token",
            json!({"login": "judy", "password": "the second password"}),
        )
        .await;
    assert_eq!(again.status, StatusCode::OK, "{}", again.body);
    let refused = app
        .post("/auth/refresh", json!({"refreshToken": refresh}))
        .await;
    refused.assert_error(StatusCode::UNAUTHORIZED, "unauthenticated", None);
    assert!(
        refused.body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("password changed")
    );
    let fresh = app
        .post(
            "/auth/refresh",
            json!({"refreshToken": again.body["refreshToken"]}),
        )
        .await;
    assert_eq!(fresh.status, StatusCode::OK, "{}", fresh.body);
}

/// Answers every request with a redirect to `location`.
async fn serve_redirect(location: String) -> u16 {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        while let Ok((mut socket, _)) = listener.accept().await {
            let location = location.clone();
            tokio::spawn(async move {
                let mut request = [0u8; 4096];
                let _ = socket.read(&mut request).await;
                let response = format!(
                    "HTTP/1.1 302 Found\r\nlocation: {location}\r\ncontent-length: 0\r\nconnection: close\r\n\r\n"
                );
                let _ = socket.write_all(response.as_bytes()).await;
            });
        }
    });
    port
}

#[tokio::test]
async fn keys_are_taken_from_the_configured_url_only_never_from_a_redirect() {
    let body = std::sync::Arc::new(std::sync::Mutex::new(jwks(&[0])));
    let fetches = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let keys_port = serve_jwks(body, fetches.clone()).await;
    let redirect_port = serve_redirect(format!(
        "http://127.0.0.1:{keys_port}/.well-known/jwks.json"
    ))
    .await;
    let env = vec![
        (
            "AUTH_JWKS_URL",
            format!("http://127.0.0.1:{redirect_port}/jwks"),
        ),
        ("AUTH_ISSUER", IDP_ISSUER.to_owned()),
        ("AUTH_AUDIENCE", IDP_AUDIENCE.to_owned()),
        ("SERVICE_TOKEN", SERVICE_TOKEN.to_owned()),
    ];
    let app = Platform::start_with_env(default_wiring().await, &env).await;
    let user = register(&app, "ines", &[]).await.id();
    let token = idp_token(
        0,
        IDP_KEYS[0].0,
        json!({"sub": user, "iss": IDP_ISSUER, "aud": IDP_AUDIENCE, "exp": now() + 600}),
    );
    // The configured URL answers no keys: the provider's keys are unavailable (503), and
    // the token is not accepted on keys from elsewhere.
    app.request_with("GET", &format!("/users/{user}"), None, &bearer(&token))
        .await
        .assert_error(StatusCode::SERVICE_UNAVAILABLE, "unavailable", None);
    assert_eq!(
        fetches.load(std::sync::atomic::Ordering::SeqCst),
        0,
        "the redirect was not followed"
    );
}
