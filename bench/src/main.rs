//! The baselines of `make bench` (scripts/bench/run.py), measured in the same run on the same
//! machine as MetaChat, so that a figure is read as a ratio, not as an absolute number:
//!
//! - `GET /json`: bare axum answering a JSON body from memory, byte for byte the body MetaChat
//!   answers for an entry (`BASELINE_BODY`, a file): the ceiling of a read through HTTP;
//! - `POST /sqlite`: one durable insert per request into SQLite (`BASELINE_SQLITE`, a file),
//!   with the event store's settings: WAL, `synchronous = FULL`, one writer connection;
//! - `POST /postgres`: one insert per request, each its own transaction, into PostgreSQL
//!   (`BASELINE_POSTGRES`, a URL; optional), with its default durable commit.
//!
//! Listens on `127.0.0.1:BASELINE_PORT`.

use std::sync::Arc;

use anyhow::Context;
use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::{get, post};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqliteSynchronous};
use sqlx::{Connection, PgPool, SqliteConnection};
use tokio::sync::Mutex;

struct Baselines {
    body: Vec<u8>,
    sqlite: Mutex<SqliteConnection>,
    postgres: Option<PgPool>,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let var = |name: &str| std::env::var(name).with_context(|| format!("{name} is not set"));
    let port: u16 = var("BASELINE_PORT")?.parse().context("BASELINE_PORT")?;
    let body = std::fs::read(var("BASELINE_BODY")?).context("BASELINE_BODY")?;
    let options = SqliteConnectOptions::new()
        .filename(var("BASELINE_SQLITE")?)
        .create_if_missing(true)
        .journal_mode(SqliteJournalMode::Wal)
        .synchronous(SqliteSynchronous::Full);
    let mut sqlite = SqliteConnection::connect_with(&options).await?;
    sqlx::query("CREATE TABLE IF NOT EXISTS rows (id TEXT PRIMARY KEY, body BLOB NOT NULL)")
        .execute(&mut sqlite)
        .await?;
    let postgres = match std::env::var("BASELINE_POSTGRES") {
        Ok(url) => {
            let pool = sqlx::postgres::PgPoolOptions::new()
                .max_connections(32)
                .connect(&url)
                .await
                .context("BASELINE_POSTGRES")?;
            sqlx::query(
                "CREATE TABLE IF NOT EXISTS baseline_rows (id TEXT PRIMARY KEY, body BYTEA NOT NULL)",
            )
            .execute(&pool)
            .await?;
            Some(pool)
        }
        Err(_) => None,
    };
    let state = Arc::new(Baselines {
        body,
        sqlite: Mutex::new(sqlite),
        postgres,
    });
    let app = Router::new()
        .route("/json", get(from_memory))
        .route("/sqlite", post(sqlite_insert))
        .route("/postgres", post(postgres_insert))
        .with_state(state);
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port)).await?;
    axum::serve(listener, app).await?;
    Ok(())
}

async fn from_memory(State(state): State<Arc<Baselines>>) -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "application/json")],
        state.body.clone(),
    )
}

/// One row per request and per transaction: the body MetaChat would store for an entry.
async fn sqlite_insert(State(state): State<Arc<Baselines>>) -> impl IntoResponse {
    let id = uuid::Uuid::new_v4().to_string();
    let mut sqlite = state.sqlite.lock().await;
    let stored = sqlx::query("INSERT INTO rows (id, body) VALUES (?, ?)")
        .bind(&id)
        .bind(&state.body)
        .execute(&mut *sqlite)
        .await;
    answer(stored.is_ok(), &id)
}

async fn postgres_insert(State(state): State<Arc<Baselines>>) -> impl IntoResponse {
    let id = uuid::Uuid::new_v4().to_string();
    let Some(pool) = &state.postgres else {
        return answer(false, "BASELINE_POSTGRES is not set");
    };
    let stored = sqlx::query("INSERT INTO baseline_rows (id, body) VALUES ($1, $2)")
        .bind(&id)
        .bind(&state.body)
        .execute(pool)
        .await;
    answer(stored.is_ok(), &id)
}

fn answer(stored: bool, id: &str) -> axum::response::Response {
    if stored {
        (
            StatusCode::CREATED,
            [(header::CONTENT_TYPE, "application/json")],
            format!("{{\"id\":\"{id}\"}}"),
        )
            .into_response()
    } else {
        StatusCode::INTERNAL_SERVER_ERROR.into_response()
    }
}
