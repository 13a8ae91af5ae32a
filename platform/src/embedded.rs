//! The whole platform in one process: gateway, user service and diary service on their usual
//! ports, one SQLite file for events, checkpoints and read models, projections in-process.

use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use diary_service::{GrpcUserDirectory, SqliteDiaryReadModels};
use event_sourcing::sqlite::{SqliteCheckpoints, SqliteEventStore};
use event_sourcing::{EventCodec, EventStore, Projection, ProjectionRunner};
use metachat_runtime::{Stop, env_or, env_parse};
use tokio::net::TcpListener;
use tokio::task::JoinSet;
use user_service::SqliteUserReadModels;

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
}

impl EmbeddedConfig {
    /// `DATA_DIR` (default `data`), `BIND_ADDRESS` (default 127.0.0.1), `PORT` (gateway, 8080),
    /// `USER_SERVICE_PORT` (50051), `DIARY_SERVICE_PORT` (50052).
    pub fn from_env() -> anyhow::Result<Self> {
        Ok(Self {
            data_dir: PathBuf::from(env_or("DATA_DIR", "data")),
            bind: env_parse("BIND_ADDRESS", IpAddr::from([127, 0, 0, 1]))?,
            gateway_port: env_parse("PORT", 8080)?,
            user_port: env_parse("USER_SERVICE_PORT", 50051)?,
            diary_port: env_parse("DIARY_SERVICE_PORT", 50052)?,
            gateway: api_gateway::GatewayConfig::from_env()?,
            shutdown_timeout: Duration::from_secs(env_parse(
                metachat_grpc::SHUTDOWN_TIMEOUT_VAR,
                metachat_grpc::DEFAULT_SHUTDOWN_TIMEOUT.as_secs(),
            )?),
        })
    }

    pub fn database(&self) -> PathBuf {
        self.data_dir.join("metachat.db")
    }
}

/// The store and read models of the embedded platform.
pub struct EmbeddedStore {
    pub store: Arc<SqliteEventStore>,
    pub users: Arc<SqliteUserReadModels>,
    pub diary: Arc<SqliteDiaryReadModels>,
}

impl EmbeddedStore {
    pub async fn open(config: &EmbeddedConfig) -> anyhow::Result<Self> {
        let path = config.database();
        let codec = EventCodec::new(user_service::upcasters().merge(diary_service::upcasters()));
        let store = SqliteEventStore::open(&path, codec)
            .await
            .with_context(|| format!("opening the event store {}", path.display()))?;
        let users = Arc::new(SqliteUserReadModels::new(store.pool().clone()).await?);
        let diary = Arc::new(SqliteDiaryReadModels::new(store.pool().clone()).await?);
        Ok(Self {
            store: Arc::new(store),
            users,
            diary,
        })
    }

    /// One runner per read model, each with its own checkpoint.
    pub fn projection_runners(&self) -> Vec<ProjectionRunner> {
        let checkpoints = Arc::new(SqliteCheckpoints::new(&self.store));
        let projections: [Arc<dyn Projection>; 2] = [self.users.clone(), self.diary.clone()];
        projections
            .into_iter()
            .map(|p| ProjectionRunner::new(self.store.clone(), checkpoints.clone(), p))
            .collect()
    }
}

async fn bind(ip: IpAddr, port: u16, what: &str) -> anyhow::Result<TcpListener> {
    TcpListener::bind(SocketAddr::new(ip, port))
        .await
        .with_context(|| format!("cannot listen for the {what} on {ip}:{port} (is it in use?)"))
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
    let embedded = EmbeddedStore::open(&config).await?;
    let gateway = bind(config.bind, config.gateway_port, "API gateway").await?;
    let user = bind(config.bind, config.user_port, "user service").await?;
    let diary = bind(config.bind, config.diary_port, "diary service").await?;
    let user_address = local_address(config.bind, user.local_addr()?.port());
    let diary_address = local_address(config.bind, diary.local_addr()?.port());

    let stop = Stop::new();
    let mut tasks: JoinSet<anyhow::Result<&'static str>> = JoinSet::new();
    for runner in embedded.projection_runners() {
        let until = stop.signal();
        tasks.spawn(async move {
            runner.run(until).await;
            Ok("projections")
        });
    }
    let store: Arc<dyn EventStore> = embedded.store.clone();
    let shutdown_timeout = config.shutdown_timeout;
    {
        let (store, read_models, until) = (store.clone(), embedded.users.clone(), stop.signal());
        tasks.spawn(async move {
            user_service::serve(
                user,
                store,
                read_models,
                Vec::new(),
                until,
                shutdown_timeout,
            )
            .await?;
            Ok("user service")
        });
    }
    {
        let users = Arc::new(GrpcUserDirectory::new(&user_address)?);
        let (read_models, until) = (embedded.diary.clone(), stop.signal());
        tasks.spawn(async move {
            diary_service::serve(
                diary,
                store,
                read_models,
                users,
                Vec::new(),
                until,
                shutdown_timeout,
            )
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
    embedded.store.close().await;
    tracing::info!("MetaChat stopped");
    outcome
}

/// Deletes the read models and rebuilds them from the event store.
pub async fn rebuild_read_models(config: &EmbeddedConfig) -> anyhow::Result<()> {
    let embedded = EmbeddedStore::open(config).await?;
    crate::rebuild(embedded.projection_runners()).await?;
    embedded.store.close().await;
    Ok(())
}
