//! How a MetaChat service process starts and stops, in either wiring, shared by the user and
//! diary services and the all-in-one `metachat` platform:
//!
//! 1. read every setting once from the environment ([`ServiceSettings::from_env`]);
//! 2. open the event store (SQLite embedded, PostgreSQL in production);
//! 3. open the service's read models (SQLite beside the events, or Cassandra);
//! 4. feed them: projections in-process, or the Kafka relay and consumer ([`Pipeline`]);
//! 5. serve gRPC until the shutdown signal, then stop the feeding and close the store.
//!
//! A service says what differs ([`Service`]): its name and topic, its read models in each
//! wiring, and its gRPC server.
//!
//! [`Pipeline`]: metachat_production::Pipeline

mod settings;

use std::future::Future;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use event_sourcing::personal::PersonalData;
use event_sourcing::sqlite::{SqliteCheckpoints, SqliteEventStore};
use event_sourcing::{EventCodec, EventStore, Projection, ProjectionRunner, Upcasters};
use metachat_cassandra::CassandraConfig;
use metachat_grpc::Dependency;
use metachat_production::{Pipeline, PipelineSpec};
use metachat_runtime::Stop;
use scylla::client::session::Session;
use sqlx::SqlitePool;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

pub use settings::{
    ProductionSettings, ServiceSettings, ServiceSpec, Wiring, data_dir, read_your_writes_timeout,
    service_token, shutdown_timeout,
};

/// A service's read models: what its queries ask (`Q`, e.g. `dyn UserReadModels`), and the
/// projection that keeps them (the same object, seen as a [`Projection`]).
pub struct ReadModels<Q: ?Sized> {
    pub queries: Arc<Q>,
    pub projection: Arc<dyn Projection>,
}

impl<Q: ?Sized> ReadModels<Q> {
    /// `queries` and `projection` are usually one object: `ReadModels::new(m.clone(), m)`.
    pub fn new(queries: Arc<Q>, projection: Arc<dyn Projection>) -> Self {
        Self {
            queries,
            projection,
        }
    }
}

// Not derived: a derive would ask `Q: Clone`, which a `dyn` trait is not.
impl<Q: ?Sized> Clone for ReadModels<Q> {
    fn clone(&self) -> Self {
        Self {
            queries: Arc::clone(&self.queries),
            projection: Arc::clone(&self.projection),
        }
    }
}

/// A follower and the topic it reads in production.
pub struct Follower {
    pub projection: Arc<dyn Projection>,
    pub topic: Topic,
}

/// Which topic a follower reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Topic {
    /// The service's own.
    Own,
    /// The other service's that [`ServiceSpec::follows`] names.
    Followed,
}

impl Follower {
    pub fn new(projection: Arc<dyn Projection>, topic: Topic) -> Self {
        Self { projection, topic }
    }
}

/// What differs between the services when one is started.
pub trait Service: Send + 'static {
    /// The read models as the gRPC service queries them.
    type Queries: ?Sized + Send + Sync + 'static;

    const SPEC: ServiceSpec;

    /// Upcasters of the service's old event payloads.
    fn upcasters() -> Upcasters;

    /// The personal data in the service's events ([`event_sourcing::personal`]).
    fn personal_data() -> PersonalData;

    /// How the service's events are stored: its upcasters and personal data.
    fn codec() -> EventCodec {
        EventCodec::new(Self::upcasters()).with_personal_data(Self::personal_data())
    }

    /// Followers of events that act on them (not read models): embedded, each runs as a
    /// checkpointed projection over the whole store; in production, as its own Kafka consumer
    /// group, named `<KAFKA_CONSUMER_GROUP>-<follower's name>`, on the topic it names.
    fn followers(
        &self,
        _store: Arc<dyn EventStore>,
        _queries: &Arc<Self::Queries>,
    ) -> Vec<Follower> {
        Vec::new()
    }

    /// The read models in the embedded SQLite database (`pool` also holds the events).
    fn sqlite_read_models(
        pool: SqlitePool,
    ) -> impl Future<Output = anyhow::Result<ReadModels<Self::Queries>>> + Send;

    /// The read models in Cassandra, and the session they use (for its health probe).
    fn cassandra_read_models(
        config: &CassandraConfig,
    ) -> impl Future<Output = anyhow::Result<(ReadModels<Self::Queries>, Arc<Session>)>> + Send;

    /// Serves the service's gRPC API (with health reporting `dependencies`, and reflection)
    /// on `listener` until `shutdown` completes, then for at most `shutdown_timeout`.
    fn serve(
        self,
        listener: TcpListener,
        store: Arc<dyn EventStore>,
        queries: Arc<Self::Queries>,
        dependencies: Vec<Dependency>,
        shutdown: impl Future<Output = ()> + Send + 'static,
        shutdown_timeout: Duration,
    ) -> impl Future<Output = Result<(), tonic::transport::Error>> + Send;
}

/// Runs `service` as its own process with `settings` until `shutdown` completes: binds
/// `PORT`, opens its wiring, serves, and stops cleanly.
pub async fn run<S: Service>(
    service: S,
    settings: ServiceSettings,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let listener = bind(
        IpAddr::V4(Ipv4Addr::UNSPECIFIED),
        settings.port,
        S::SPEC.name,
    )
    .await?;
    if !settings.service_token.is_set() {
        tracing::warn!(
            service = S::SPEC.name,
            port = settings.port,
            "SERVICE_TOKEN IS NOT SET: this service listens on every interface and answers \
             anyone who reaches its gRPC port, as whatever user they claim to be. Set \
             SERVICE_TOKEN (the same on the gateway and both services) unless the port is \
             reachable from this machine only"
        );
    }
    let timeout = settings.shutdown_timeout;
    match settings.wiring {
        Wiring::Embedded { data_dir } => {
            run_embedded(service, listener, &data_dir, shutdown, timeout).await
        }
        Wiring::Production(production) => {
            run_production(service, listener, *production, shutdown, timeout).await
        }
    }
}

/// Events and read models in `data_dir/<service>.db`, projections in-process.
async fn run_embedded<S: Service>(
    service: S,
    listener: TcpListener,
    data_dir: &Path,
    shutdown: impl Future<Output = ()> + Send + 'static,
    shutdown_timeout: Duration,
) -> anyhow::Result<()> {
    let name = S::SPEC.name;
    let path = data_dir.join(format!("{name}.db"));
    let store = Arc::new(open_sqlite(&path, S::codec()).await?);
    let read_models = S::sqlite_read_models(store.pool().clone()).await?;
    let followers = service.followers(store.clone(), &read_models.queries);
    let projections = Projections::start(sqlite_runners(
        &store,
        std::iter::once(read_models.projection).chain(followers.into_iter().map(|f| f.projection)),
    ));
    tracing::info!(
        port = listener.local_addr()?.port(),
        data = %path.display(),
        "{name} listening"
    );
    let served = service
        .serve(
            listener,
            store.clone(),
            read_models.queries,
            Vec::new(),
            shutdown,
            shutdown_timeout,
        )
        .await;
    projections.stop().await;
    store.close().await;
    served?;
    tracing::info!("{name} stopped");
    Ok(())
}

/// Events in PostgreSQL, published to the service's topic by the elected relay, read models in
/// Cassandra fed by the service's consumer group.
async fn run_production<S: Service>(
    service: S,
    listener: TcpListener,
    settings: ProductionSettings,
    shutdown: impl Future<Output = ()> + Send + 'static,
    shutdown_timeout: Duration,
) -> anyhow::Result<()> {
    let name = S::SPEC.name;
    let ProductionSettings {
        config,
        topic,
        group,
        followed_topic,
    } = settings;
    let store = metachat_production::open_event_store(&config.postgres, S::codec()).await?;
    let (read_models, session) = S::cassandra_read_models(&config.cassandra).await?;
    let spec = PipelineSpec {
        service: name,
        topic,
        group,
        categories: S::SPEC.categories,
    };
    let followers = service
        .followers(Arc::new(store.clone()), &read_models.queries)
        .into_iter()
        .map(|f| {
            let topic = match (f.topic, &followed_topic) {
                (Topic::Own, _) => spec.topic.clone(),
                (Topic::Followed, Some(followed)) => followed.clone(),
                (Topic::Followed, None) => {
                    anyhow::bail!("{name} follows no other service's topic")
                }
            };
            Ok((f.projection, topic))
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    let pipeline = Pipeline::start(
        &spec,
        &config.kafka,
        &store,
        read_models.projection,
        followers,
    )
    .await?;
    let dependencies = metachat_production::dependencies(&store, &config.kafka, session)?;
    tracing::info!(
        port = listener.local_addr()?.port(),
        event_store = ?config.postgres,
        topic = %spec.topic,
        "{name} listening (production wiring)"
    );
    let served = service
        .serve(
            listener,
            Arc::new(store.clone()),
            read_models.queries,
            dependencies,
            shutdown,
            shutdown_timeout,
        )
        .await;
    pipeline.stop().await;
    store.close().await;
    served?;
    tracing::info!("{name} stopped");
    Ok(())
}

/// A listener on `ip:port`, with an error that says what it was for.
pub async fn bind(ip: IpAddr, port: u16, what: &str) -> anyhow::Result<TcpListener> {
    TcpListener::bind(SocketAddr::new(ip, port))
        .await
        .with_context(|| format!("cannot listen for the {what} on {ip}:{port} (is it in use?)"))
}

/// Opens (creating if missing) the embedded event store at `path`.
pub async fn open_sqlite(path: &Path, codec: EventCodec) -> anyhow::Result<SqliteEventStore> {
    SqliteEventStore::open(path, codec)
        .await
        .with_context(|| format!("opening the event store {}", path.display()))
}

/// One runner per read model of the embedded store, each with its own checkpoint beside the
/// events.
pub fn sqlite_runners(
    store: &Arc<SqliteEventStore>,
    projections: impl IntoIterator<Item = Arc<dyn Projection>>,
) -> Vec<ProjectionRunner> {
    let checkpoints = Arc::new(SqliteCheckpoints::new(store));
    projections
        .into_iter()
        .map(|p| ProjectionRunner::new(store.clone(), checkpoints.clone(), p))
        .collect()
}

/// Projection runners following the store in the background.
pub struct Projections {
    stop: Stop,
    tasks: Vec<JoinHandle<()>>,
}

impl Projections {
    pub fn start(runners: Vec<ProjectionRunner>) -> Self {
        let stop = Stop::new();
        let tasks = runners
            .into_iter()
            .map(|runner| tokio::spawn(runner.run(stop.signal())))
            .collect();
        Self { stop, tasks }
    }

    /// Stops the runners (each between two batches) and waits for them.
    pub async fn stop(self) {
        self.stop.now();
        for task in self.tasks {
            let _ = task.await;
        }
    }
}
