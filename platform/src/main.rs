//! `metachat`: the whole platform in one process, or any one service by name.

use metachat_runtime::{Env, LogSettings, init_logging, shutdown_signal};

mod dead_letters;
mod embedded;
mod production;

const USAGE: &str = "\
Usage: metachat [COMMAND]

Commands:
  run                   Run the whole platform in one process (the default): API gateway on
                        PORT (8080), user service on USER_SERVICE_PORT (50051), diary service on
                        DIARY_SERVICE_PORT (50052), data in DATA_DIR (./data).
  user-service          Run only the user service (configured like the user-service binary).
  diary-service         Run only the diary service.
  api-gateway           Run only the API gateway.
  rebuild-read-models   Rebuild the read models from the event store, then exit: the embedded
                        ones in DATA_DIR, or with DB_HOST set the Cassandra ones from PostgreSQL.
  reanalyze             Analyse every entry's current content again with this build's analyzers
                        (after an analyzer's version changed), then exit; safe while the
                        platform runs. DATA_DIR, or with DB_HOST set the production wiring.
  reindex               Index every live entry for search by meaning (after the model was
                        installed or Kafka's retention dropped events the indexer never saw),
                        then exit. With DB_HOST set (production) safe while the services run;
                        embedded, with the platform stopped.
  dead-letters [list|retry|drop] [--projection NAME] [--event ID]
                        The events projections could not apply (parked so that they go on):
                        list them; ask the running platform to apply them again (within 5 s;
                        each is also retried when a service starts); or drop them. DATA_DIR, or
                        with DB_HOST set PostgreSQL.
  token --user ID [--admin] [--ttl-secs N]
                        Print an access token for user ID, signed with AUTH_TOKEN_SECRET (for
                        development, and for operators who hold the secret); --admin adds the
                        admin role. Valid for AUTH_ACCESS_TOKEN_TTL_SECS (900) or N seconds.
  token --invite [--ttl-secs N]
                        Print an invitation for REGISTRATION=invite (X-Invite-Token), valid 7
                        days or N seconds.
  help                  Show this text.

Logging: LOG_LEVEL (info), LOG_FORMAT (json|text), LOG_OUTPUT (stdout|PATH), ENVIRONMENT (dev).";

fn main() -> std::process::ExitCode {
    let command = std::env::args().nth(1).unwrap_or_else(|| "run".to_owned());
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("metachat: cannot start the async runtime: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    // Every command reads its settings from this one snapshot, before it starts anything.
    let env = Env::process();
    let result = runtime.block_on(async {
        match command.as_str() {
            "run" => {
                let log = LogSettings::read(env, "metachat")?;
                let config = embedded::EmbeddedConfig::from_env(env)?;
                init_logging(&log)?;
                embedded::run(config, shutdown_signal()).await
            }
            "rebuild-read-models" => {
                let log = LogSettings::read(env, "metachat")?;
                match metachat_production::ProductionConfig::from_env(env)? {
                    Some(config) => {
                        init_logging(&log)?;
                        production::rebuild_read_models(&config).await
                    }
                    None => {
                        let config = embedded::EmbeddedConfig::from_env(env)?;
                        init_logging(&log)?;
                        embedded::rebuild_read_models(&config).await
                    }
                }
            }
            "reanalyze" => {
                let log = LogSettings::read(env, "metachat")?;
                match metachat_production::ProductionConfig::from_env(env)? {
                    Some(config) => {
                        init_logging(&log)?;
                        production::reanalyze(&config).await
                    }
                    None => {
                        let config = embedded::EmbeddedConfig::from_env(env)?;
                        init_logging(&log)?;
                        embedded::reanalyze(&config).await
                    }
                }
            }
            "reindex" => {
                let log = LogSettings::read(env, "metachat")?;
                match metachat_production::ProductionConfig::from_env(env)? {
                    Some(config) => {
                        init_logging(&log)?;
                        production::reindex(&config, env).await
                    }
                    None => {
                        let config = embedded::EmbeddedConfig::from_env(env)?;
                        init_logging(&log)?;
                        embedded::reindex(&config).await
                    }
                }
            }
            "dead-letters" => {
                let args: Vec<String> = std::env::args().skip(2).collect();
                dead_letters::run(env, &args).await
            }
            "token" => {
                let args: Vec<String> = std::env::args().skip(2).collect();
                let token = mint_token(env, &args)?;
                println!("{token}");
                Ok(())
            }
            "user-service" => user_service::standalone::run_from_env().await,
            "diary-service" => diary_service::standalone::run_from_env().await,
            "api-gateway" => api_gateway::standalone::run_from_env().await,
            "help" | "-h" | "--help" => {
                println!("{USAGE}");
                Ok(())
            }
            "version" | "-V" | "--version" => {
                println!("metachat {}", env!("CARGO_PKG_VERSION"));
                Ok(())
            }
            other => Err(anyhow::anyhow!("unknown command {other:?}\n\n{USAGE}")),
        }
    });
    metachat_runtime::exit_code("metachat", result)
}

/// `metachat token`: an access token or an invitation signed with `AUTH_TOKEN_SECRET`.
fn mint_token(env: &Env, args: &[String]) -> anyhow::Result<String> {
    let auth = api_gateway::auth::AuthConfig::read(env)?;
    let issuer = auth.issuer.ok_or_else(|| {
        anyhow::anyhow!("set AUTH_TOKEN_SECRET (at least 32 bytes) to sign tokens")
    })?;
    let (mut user, mut admin, mut invite, mut ttl) = (None, false, false, None);
    let mut args = args.iter();
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--user" => user = args.next().cloned(),
            "--admin" => admin = true,
            "--invite" => invite = true,
            "--ttl-secs" => {
                let value = args.next().map(String::as_str).unwrap_or_default();
                let secs: u64 = value
                    .parse()
                    .ok()
                    .filter(|s| (1..=366 * 24 * 3600).contains(s))
                    .ok_or_else(|| {
                        anyhow::anyhow!(
                            "--ttl-secs {value:?}: a whole number of seconds, at most a year"
                        )
                    })?;
                ttl = Some(std::time::Duration::from_secs(secs));
            }
            other => anyhow::bail!("token: unknown argument {other:?}\n\n{USAGE}"),
        }
    }
    if invite {
        let ttl = ttl.unwrap_or(std::time::Duration::from_secs(7 * 24 * 3600));
        return Ok(issuer.issue(api_gateway::auth::INVITE_SUBJECT, false, Some(ttl)));
    }
    let user =
        user.ok_or_else(|| anyhow::anyhow!("token: --user <user id> or --invite is required"))?;
    let id = uuid::Uuid::try_parse(&user)
        .map_err(|_| anyhow::anyhow!("--user {user:?}: not a user id (a UUID)"))?;
    Ok(issuer.issue(&id.hyphenated().to_string(), admin, ttl))
}

/// Runs a re-analysis, printing its progress.
async fn reanalyze(
    analyzer: &diary_service::analyzer::EntryAnalyzer,
    store: &dyn event_sourcing::EventStore,
) -> anyhow::Result<()> {
    let done = analyzer
        .reanalyze_all(store, |p| {
            tracing::info!(
                events = p.events,
                recorded = p.recorded,
                "re-analysis in progress"
            );
        })
        .await
        .map_err(|e| anyhow::anyhow!("re-analysis stopped: {e}"))?;
    println!(
        "read {} events: {} analyses recorded, {} entries already current, {} older contents or entries of writers with analysis off skipped",
        done.events, done.recorded, done.current, done.skipped
    );
    Ok(())
}

/// Runs a re-indexing with the model in `model_dir`, printing its progress.
async fn reindex(
    model_dir: &std::path::Path,
    store: std::sync::Arc<dyn event_sourcing::EventStore>,
    queries: std::sync::Arc<dyn diary_service::DiaryReadModels>,
) -> anyhow::Result<()> {
    let model = diary_service::search::load_model(model_dir).ok_or_else(|| {
        anyhow::anyhow!(
            "no sentence-embedding model in {}: run scripts/model.sh",
            model_dir.display()
        )
    })?;
    let semantic = diary_service::search::Semantic {
        model,
        index: queries.search_index(),
    };
    let indexer =
        diary_service::search::indexer::EntryIndexer::new(store.clone(), queries, semantic);
    let done = indexer
        .reindex_all(store.as_ref(), |p| {
            tracing::info!(
                events = p.events,
                stored = p.stored,
                "re-indexing in progress"
            );
        })
        .await
        .map_err(|e| anyhow::anyhow!("re-indexing stopped: {e}"))?;
    println!(
        "read {} events: {} entries indexed, {} already current, {} deleted or of writers with analysis off",
        done.events, done.stored, done.current, done.skipped
    );
    Ok(())
}

/// Rebuilds each projection from position zero, reporting how far each got.
async fn rebuild(runners: Vec<event_sourcing::ProjectionRunner>) -> anyhow::Result<()> {
    for runner in runners {
        let reached = runner
            .rebuild()
            .await
            .map_err(|e| anyhow::anyhow!("rebuilding {}: {e}", runner.name()))?;
        tracing::info!(
            projection = runner.name(),
            position = reached,
            "read model rebuilt"
        );
        println!("rebuilt {} up to position {reached}", runner.name());
    }
    Ok(())
}

/// How the platform's events are stored: both services' upcasters and personal data, so one
/// store (embedded) or one tool (rebuild, reanalyze, reindex) reads and writes them all.
fn codec() -> event_sourcing::EventCodec {
    use diary_service::standalone::DiaryService;
    use metachat_bootstrap::Service;
    use user_service::standalone::UserService;
    event_sourcing::EventCodec::new(UserService::upcasters().merge(DiaryService::upcasters()))
        .with_personal_data(UserService::personal_data().merge(DiaryService::personal_data()))
}
