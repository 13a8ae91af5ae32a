//! The user service as its own process, configured by the environment: the embedded store
//! by default, the production wiring (PostgreSQL, Kafka, Cassandra) when `DB_HOST` is set.
//! How it starts and stops is [`metachat_bootstrap`]'s; what is particular to the user
//! service is [`UserService`].

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use event_sourcing::{Aggregate, EventStore, Upcasters};
use metachat_bootstrap::{ReadModels, Service, ServiceSettings, ServiceSpec};
use metachat_cassandra::CassandraConfig;
use metachat_grpc::Dependency;
use metachat_runtime::{Env, init_logging, shutdown_signal};
use scylla::client::session::Session;
use sqlx::SqlitePool;
use tokio::net::TcpListener;

use metachat_proto::user::user_service_server::UserServiceServer;

use crate::cassandra::CassandraUserReadModels;
use crate::domain::UserState;
use crate::{SqliteUserReadModels, UserGrpc, UserReadModels};

/// The user service, as the bootstrap starts it.
pub struct UserService {
    /// How long a list waits for the write its consistency token names.
    pub read_your_writes: Duration,
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
        let service = UserServiceServer::new(UserGrpc::new(store, queries, self.read_your_writes));
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
    let settings = ServiceSettings::from_env(&UserService::SPEC, Env::process())?;
    init_logging(&settings.log)?;
    let service = UserService {
        read_your_writes: settings.read_your_writes,
    };
    metachat_bootstrap::run(service, settings, shutdown_signal()).await
}
