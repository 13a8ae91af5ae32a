//! The user service as its own process, configured by the environment: the embedded store
//! by default, the production wiring (PostgreSQL, Kafka, Cassandra) when `DB_HOST` is set.
//! How it starts and stops is [`metachat_bootstrap`]'s; what is particular to the user
//! service is [`UserService`].

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use event_sourcing::personal::PersonalData;
use event_sourcing::{Aggregate, EventStore, Upcasters};
use metachat_bootstrap::{Follower, ReadModels, Service, ServiceSettings, ServiceSpec, Topic};
use metachat_cassandra::CassandraConfig;
use metachat_grpc::{Dependency, ServiceToken};
use metachat_runtime::{Env, grpc_uri, init_logging, shutdown_signal};
use scylla::client::session::Session;
use sqlx::SqlitePool;
use tokio::net::TcpListener;

use metachat_proto::user::user_service_server::UserServiceServer;

use crate::cassandra::CassandraUserReadModels;
use crate::domain::UserState;
use crate::{
    GrpcWritingProfiles, ProfileInference, SqliteUserReadModels, UserGrpc, UserReadModels,
    WritingProfiles,
};

/// The user service, as the bootstrap starts it.
pub struct UserService {
    /// How long a list waits for the write its consistency token names.
    pub read_your_writes: Duration,
    /// Where profile inference reads a writer's analysed writing (the diary service).
    pub writing: Arc<dyn WritingProfiles>,
    /// Callers of the API must hold it (when set).
    pub service_token: ServiceToken,
}

impl Service for UserService {
    type Queries = dyn UserReadModels;

    const SPEC: ServiceSpec = ServiceSpec {
        name: "user-service",
        port: 50051,
        topic_variable: "KAFKA_USER_EVENTS_TOPIC",
        topic: "user-events",
        categories: &[UserState::CATEGORY],
        follows: Some(("KAFKA_DIARY_EVENTS_TOPIC", "diary-events")),
    };

    fn upcasters() -> Upcasters {
        crate::upcasters()
    }

    fn personal_data() -> PersonalData {
        crate::personal_data()
    }

    /// Profile inference ([`crate::inference`]), on the diary topic.
    fn followers(
        &self,
        store: Arc<dyn EventStore>,
        _queries: &Arc<Self::Queries>,
    ) -> Vec<Follower> {
        vec![Follower::new(
            Arc::new(ProfileInference::new(store, self.writing.clone())),
            Topic::Followed,
        )]
    }

    async fn sqlite_read_models(pool: SqlitePool) -> anyhow::Result<ReadModels<Self::Queries>> {
        let models = Arc::new(SqliteUserReadModels::new(pool).await?);
        Ok(ReadModels::new(models.clone(), models))
    }

    async fn cassandra_read_models(
        config: &CassandraConfig,
    ) -> anyhow::Result<(ReadModels<Self::Queries>, Arc<Session>)> {
        let models = Arc::new(CassandraUserReadModels::connect(config).await?);
        let session = models.session().clone();
        Ok((ReadModels::new(models.clone(), models), session))
    }

    async fn serve(
        self,
        listener: TcpListener,
        store: Arc<dyn EventStore>,
        queries: Arc<Self::Queries>,
        dependencies: Vec<Dependency>,
        shutdown: impl Future<Output = ()> + Send + 'static,
        shutdown_timeout: Duration,
    ) -> Result<(), tonic::transport::Error> {
        crate::metrics::describe();
        event_sourcing::metrics::describe();
        let service = UserServiceServer::with_interceptor(
            UserGrpc::new(store, queries, self.read_your_writes),
            self.service_token.check(),
        );
        metachat_grpc::serve::<UserServiceServer<UserGrpc>>(
            listener,
            |router| router.add_service(service),
            dependencies,
            shutdown,
            shutdown_timeout,
        )
        .await
    }
}

/// Runs until Ctrl-C or SIGTERM, serving gRPC on `PORT` (default 50051); a stop waits at most
/// `SHUTDOWN_TIMEOUT_SECS` (default 10) for in-flight calls. Every variable is read before
/// anything starts ([`ServiceSettings::from_env`]).
pub async fn run_from_env() -> anyhow::Result<()> {
    let env = Env::process();
    let settings = ServiceSettings::from_env(&UserService::SPEC, env)?;
    let diary = grpc_uri(
        "DIARY_SERVICE_ADDRESS",
        &env.or("DIARY_SERVICE_ADDRESS", "localhost:50052"),
    )?;
    init_logging(&settings.log)?;
    let service = UserService {
        read_your_writes: settings.read_your_writes,
        writing: Arc::new(GrpcWritingProfiles::new(
            &diary,
            settings.service_token.clone(),
        )?),
        service_token: settings.service_token.clone(),
    };
    metachat_bootstrap::run(service, settings, shutdown_signal()).await
}
