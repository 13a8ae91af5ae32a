//! The whole platform in one process: gateway, user service and diary service on their usual
//! ports, one SQLite file for events, checkpoints and read models, projections in-process.
//! The services start from the same pieces as on their own ([`metachat_bootstrap`]).

use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use diary_service::standalone::DiaryService;
use diary_service::{DiaryReadModels, GrpcUserDirectory};
use event_sourcing::sqlite::SqliteEventStore;
use event_sourcing::{EventStore, ProjectionRunner};
use metachat_bootstrap::{Projections, ReadModels, Service, bind, open_sqlite, sqlite_runners};
use metachat_runtime::{Env, Stop};
use tokio::task::JoinSet;
use user_service::standalone::UserService;
use user_service::{GrpcWritingProfiles, UserReadModels};

/// Where the embedded platform keeps its data and listens.
#[derive(Debug, Clone)]
pub struct EmbeddedConfig {
    pub data_dir: PathBuf,
    pub bind: IpAddr,
    pub gateway_port: u16,
    pub user_port: u16,
    pub diary_port: u16,
    /// The gateway's settings from the environment (`REQUEST_TIMEOUT_MS`,
    /// `SHUTDOWN_TIMEOUT_SECS`); its service addresses are replaced by the embedded ones.
    pub gateway: api_gateway::GatewayConfig,
    /// `SHUTDOWN_TIMEOUT_SECS` (default 10): how long a stopping gRPC service waits for calls.
    pub shutdown_timeout: Duration,
    /// `READ_YOUR_WRITES_TIMEOUT_MS` (default 3000): how long a list waits for the write its
    /// consistency token names.
    pub read_your_writes: Duration,
    /// The sentence-embedding model's directory (`METACHAT_MODEL_DIR`).
    pub model_dir: PathBuf,
    /// `SERVICE_TOKEN`, between the gateway and the services of this process.
    pub service_token: metachat_grpc::ServiceToken,
}

impl EmbeddedConfig {
    /// `DATA_DIR` (default `data`), `BIND_ADDRESS` (default 127.0.0.1), `PORT` (gateway, 8080),
    /// `USER_SERVICE_PORT` (50051), `DIARY_SERVICE_PORT` (50052), `REQUEST_TIMEOUT_MS`,
    /// `SHUTDOWN_TIMEOUT_SECS`, `READ_YOUR_WRITES_TIMEOUT_MS`.
    pub fn from_env(env: &Env) -> anyhow::Result<Self> {
        Ok(Self {
            data_dir: metachat_bootstrap::data_dir(env),
            bind: env.parse("BIND_ADDRESS", IpAddr::from([127, 0, 0, 1]))?,
            gateway_port: env.parse("PORT", 8080)?,
            user_port: env.parse("USER_SERVICE_PORT", UserService::SPEC.port)?,
            diary_port: env.parse("DIARY_SERVICE_PORT", DiaryService::SPEC.port)?,
            gateway: api_gateway::GatewayConfig::from_env()?,
            shutdown_timeout: metachat_bootstrap::shutdown_timeout(env)?,
            read_your_writes: metachat_bootstrap::read_your_writes_timeout(env)?,
            model_dir: diary_service::search::model_dir(env),
            service_token: metachat_bootstrap::service_token(env)?,
        })
    }

    pub fn database(&self) -> PathBuf {
        self.data_dir.join("metachat.db")
    }
}

/// The store and read models of the embedded platform.
pub struct EmbeddedStore {
    pub store: Arc<SqliteEventStore>,
    pub users: ReadModels<dyn UserReadModels>,
    pub diary: ReadModels<dyn DiaryReadModels>,
}

impl EmbeddedStore {
    pub async fn open(config: &EmbeddedConfig) -> anyhow::Result<Self> {
        let store = open_sqlite(&config.database(), crate::codec()).await?;
        let users = UserService::sqlite_read_models(store.pool().clone()).await?;
        let diary = DiaryService::sqlite_read_models(store.pool().clone()).await?;
        Ok(Self {
            store: Arc::new(store),
            users,
            diary,
        })
    }

    /// One runner per read model, each with its own checkpoint.
    pub fn read_model_runners(&self) -> Vec<ProjectionRunner> {
        sqlite_runners(
            &self.store,
            [self.users.projection.clone(), self.diary.projection.clone()],
        )
    }

    /// One runner per follower of the two services (profile inference, entry analyzer),
    /// each with its own checkpoint.
    pub fn follower_runners(
        &self,
        user: &UserService,
        diary: &DiaryService,
    ) -> Vec<ProjectionRunner> {
        let store: Arc<dyn EventStore> = self.store.clone();
        let followers = user
            .followers(store.clone(), &self.users.queries)
            .into_iter()
            .chain(diary.followers(store, &self.diary.queries))
            .map(|f| f.projection);
        sqlite_runners(&self.store, followers)
    }
}

/// The address other components use to reach a listener bound to `ip`.
fn local_address(ip: IpAddr, port: u16) -> String {
    let host = if ip.is_unspecified() {
        IpAddr::from([127, 0, 0, 1])
    } else {
        ip
    };
    SocketAddr::new(host, port).to_string()
}

/// Runs the platform until `shutdown` completes or a component fails.
pub async fn run(
    config: EmbeddedConfig,
    shutdown: impl Future<Output = ()> + Send,
) -> anyhow::Result<()> {
    // Who may call, then the ports: a refusal stops the start before anything is created on
    // disk.
    config
        .gateway
        .auth
        .check_exposure(SocketAddr::new(config.bind, config.gateway_port))?;
    // With tokens checked at the gateway, the services' own ports must not let anyone else
    // claim to be a user.
    if config.gateway.auth.enabled() && !config.bind.is_loopback() && !config.service_token.is_set()
    {
        anyhow::bail!(
            "the services would listen on {} without SERVICE_TOKEN: anyone reaching their gRPC \
             ports could act for any user past the gateway's authentication; set SERVICE_TOKEN \
             (at least 16 bytes) or listen on 127.0.0.1",
            config.bind
        );
    }
    let gateway = bind(config.bind, config.gateway_port, "API gateway").await?;
    let user = bind(config.bind, config.user_port, "user service").await?;
    let diary = bind(config.bind, config.diary_port, "diary service").await?;
    let embedded = EmbeddedStore::open(&config).await?;
    let user_address = local_address(config.bind, user.local_addr()?.port());
    let diary_address = local_address(config.bind, diary.local_addr()?.port());

    let user_service = UserService {
        read_your_writes: config.read_your_writes,
        writing: Arc::new(GrpcWritingProfiles::new(
            &diary_address,
            config.service_token.clone(),
        )?),
        service_token: config.service_token.clone(),
    };
    let diary_service = DiaryService {
        service_token: config.service_token.clone(),
        users: Arc::new(GrpcUserDirectory::new(
            &user_address,
            config.service_token.clone(),
        )?),
        read_your_writes: config.read_your_writes,
        model: diary_service::search::load_model(&config.model_dir),
    };
    let mut runners = embedded.read_model_runners();
    runners.extend(embedded.follower_runners(&user_service, &diary_service));
    let projections = Projections::start(runners);
    let stop = Stop::new();
    let mut tasks: JoinSet<anyhow::Result<&'static str>> = JoinSet::new();
    let store: Arc<dyn EventStore> = embedded.store.clone();
    let shutdown_timeout = config.shutdown_timeout;
    {
        let (store, queries, until) =
            (store.clone(), embedded.users.queries.clone(), stop.signal());
        tasks.spawn(async move {
            user_service
                .serve(user, store, queries, Vec::new(), until, shutdown_timeout)
                .await?;
            Ok("user service")
        });
    }
    {
        let (queries, until) = (embedded.diary.queries.clone(), stop.signal());
        tasks.spawn(async move {
            diary_service
                .serve(diary, store, queries, Vec::new(), until, shutdown_timeout)
                .await?;
            Ok("diary service")
        });
    }
    {
        let gateway_config = api_gateway::GatewayConfig {
            user_service_address: user_address.clone(),
            diary_service_address: diary_address.clone(),
            ..config.gateway.clone()
        };
        let until = stop.signal();
        tasks.spawn(async move {
            api_gateway::serve(gateway, gateway_config, until).await?;
            Ok("API gateway")
        });
    }
    tracing::info!(
        gateway = %local_address(config.bind, config.gateway_port),
        user_service = %user_address,
        diary_service = %diary_address,
        data = %config.database().display(),
        "MetaChat is running"
    );

    // Stop everything on the signal, or as soon as any component ends on its own.
    let mut outcome = Ok(());
    tokio::select! {
        _ = shutdown => {}
        ended = tasks.join_next() => {
            outcome = match ended {
                Some(Ok(Ok(component))) => Err(anyhow::anyhow!("the {component} stopped unexpectedly")),
                Some(Ok(Err(e))) => Err(e),
                Some(Err(e)) => Err(anyhow::anyhow!("a component panicked: {e}")),
                None => Ok(()),
            };
        }
    }
    stop.now();
    while let Some(ended) = tasks.join_next().await {
        if let Ok(Err(e)) = ended {
            tracing::error!(error = %e, "component failed while stopping");
        }
    }
    projections.stop().await;
    embedded.store.close().await;
    tracing::info!("MetaChat stopped");
    outcome
}

/// Deletes the read models and rebuilds them from the event store.
pub async fn rebuild_read_models(config: &EmbeddedConfig) -> anyhow::Result<()> {
    let embedded = EmbeddedStore::open(config).await?;
    crate::rebuild(embedded.read_model_runners()).await?;
    embedded.store.close().await;
    Ok(())
}

/// Analyses again the current content of every entry with this build's analyzers (see
/// [`diary_service::analyzer::EntryAnalyzer::reanalyze_all`]); the platform may be running.
pub async fn reanalyze(config: &EmbeddedConfig) -> anyhow::Result<()> {
    let embedded = EmbeddedStore::open(config).await?;
    let store: Arc<dyn EventStore> = embedded.store.clone();
    let analyzer =
        diary_service::analyzer::EntryAnalyzer::new(store.clone(), embedded.diary.queries.clone());
    crate::reanalyze(&analyzer, store.as_ref()).await?;
    embedded.store.close().await;
    Ok(())
}

/// Indexes every live entry for search by meaning (see
/// [`diary_service::search::indexer::EntryIndexer::reindex_all`]), with the platform stopped:
/// the running diary service keeps the index's vectors in memory and would not see these
/// writes.
pub async fn reindex(config: &EmbeddedConfig) -> anyhow::Result<()> {
    let embedded = EmbeddedStore::open(config).await?;
    let store: Arc<dyn EventStore> = embedded.store.clone();
    crate::reindex(&config.model_dir, store, embedded.diary.queries.clone()).await?;
    embedded.store.close().await;
    Ok(())
}
