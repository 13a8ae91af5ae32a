//! The diary service as its own process, configured by the environment: the embedded store
//! by default, the production wiring (PostgreSQL, Kafka, Cassandra) when `DB_HOST` is set.
//! How it starts and stops is [`metachat_bootstrap`]'s; what is particular to the diary
//! service is [`DiaryService`].

use std::future::Future;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use embeddings::Embedder;
use event_sourcing::personal::PersonalData;
use event_sourcing::{Aggregate, EventStore, Upcasters};
use metachat_bootstrap::{Follower, ReadModels, Service, ServiceSettings, ServiceSpec, Topic};
use metachat_cassandra::CassandraConfig;
use metachat_grpc::{Dependency, ServiceToken};
use metachat_runtime::{Env, grpc_uri, init_logging, shutdown_signal};
use scylla::client::session::Session;
use sqlx::SqlitePool;
use tokio::net::TcpListener;

use metachat_proto::diary::diary_service_server::DiaryServiceServer;

use crate::analyzer::EntryAnalyzer;
use crate::cassandra::CassandraDiaryReadModels;
use crate::domain::{AnalysisSettingState, EntryState, SessionState};
use crate::eraser::DiaryEraser;
use crate::search::Semantic;
use crate::search::indexer::EntryIndexer;
use crate::{DiaryGrpc, DiaryReadModels, GrpcUserDirectory, SqliteDiaryReadModels, UserDirectory};

/// The diary service, as the bootstrap starts it: it asks `users` whether a user exists.
pub struct DiaryService {
    pub users: Arc<dyn UserDirectory>,
    /// How long a list or analytics waits for the write its consistency token names.
    pub read_your_writes: Duration,
    /// The sentence-embedding model ([`crate::search::load_model`]); without it the entry
    /// indexer does not run and the semantic use cases answer 503.
    pub model: Option<Arc<Embedder>>,
    /// Callers of the API must hold it (when set).
    pub service_token: ServiceToken,
}

impl DiaryService {
    fn semantic(&self, queries: &Arc<dyn DiaryReadModels>) -> Option<Semantic> {
        self.model.clone().map(|model| Semantic {
            model,
            index: queries.search_index(),
        })
    }
}

impl Service for DiaryService {
    type Queries = dyn DiaryReadModels;

    const SPEC: ServiceSpec = ServiceSpec {
        name: "diary-service",
        port: 50052,
        topic_variable: "KAFKA_DIARY_EVENTS_TOPIC",
        topic: "diary-events",
        categories: &[
            EntryState::CATEGORY,
            SessionState::CATEGORY,
            AnalysisSettingState::CATEGORY,
        ],
        // The diary eraser follows the user topic.
        follows: Some(("KAFKA_USER_EVENTS_TOPIC", "user-events")),
    };

    fn upcasters() -> Upcasters {
        crate::upcasters()
    }

    fn personal_data() -> PersonalData {
        crate::personal_data()
    }

    /// The entry analyzer ([`crate::analyzer`]), the diary eraser ([`crate::eraser`], on the
    /// user topic) and, with the model, the entry indexer ([`crate::search::indexer`]).
    fn followers(&self, store: Arc<dyn EventStore>, queries: &Arc<Self::Queries>) -> Vec<Follower> {
        let mut followers = vec![
            Follower::new(
                Arc::new(EntryAnalyzer::new(store.clone(), queries.clone())),
                Topic::Own,
            ),
            Follower::new(Arc::new(DiaryEraser::new(store.clone())), Topic::Followed),
        ];
        if let Some(semantic) = self.semantic(queries) {
            followers.push(Follower::new(
                Arc::new(EntryIndexer::new(store, queries.clone(), semantic)),
                Topic::Own,
            ));
        }
        followers
    }

    async fn sqlite_read_models(pool: SqlitePool) -> anyhow::Result<ReadModels<Self::Queries>> {
        let models = Arc::new(SqliteDiaryReadModels::new(pool).await?);
        Ok(ReadModels::new(models.clone(), models))
    }

    async fn cassandra_read_models(
        config: &CassandraConfig,
    ) -> anyhow::Result<(ReadModels<Self::Queries>, Arc<Session>)> {
        let models = Arc::new(CassandraDiaryReadModels::connect(config).await?);
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
        let semantic = self.semantic(&queries);
        let service = DiaryServiceServer::with_interceptor(
            DiaryGrpc::new(store, queries, self.users, self.read_your_writes, semantic),
            self.service_token.check(),
        );
        metachat_grpc::serve::<DiaryServiceServer<DiaryGrpc>>(
            listener,
            |router| router.add_service(service),
            dependencies,
            shutdown,
            shutdown_timeout,
        )
        .await
    }
}

/// How the diary service process is configured: as every service, and where the user service
/// is.
#[derive(Debug, Clone)]
pub struct DiarySettings {
    pub service: ServiceSettings,
    /// `USER_SERVICE_ADDRESS` (default `localhost:50051`), as a `http://host:port` URI.
    pub user_service: String,
    /// `METACHAT_MODEL_DIR` ([`crate::search::model_dir`]).
    pub model_dir: PathBuf,
}

impl DiarySettings {
    pub fn from_env(env: &Env) -> anyhow::Result<Self> {
        let service = ServiceSettings::from_env(&DiaryService::SPEC, env)?;
        let address = env.or("USER_SERVICE_ADDRESS", "localhost:50051");
        Ok(Self {
            service,
            user_service: grpc_uri("USER_SERVICE_ADDRESS", &address)?,
            model_dir: crate::search::model_dir(env),
        })
    }
}

/// Runs until Ctrl-C or SIGTERM, serving gRPC on `PORT` (default 50052) and looking users up
/// at `USER_SERVICE_ADDRESS` (default localhost:50051); a stop waits at most
/// `SHUTDOWN_TIMEOUT_SECS` (default 10) for in-flight calls. Every variable is read before
/// anything starts ([`DiarySettings::from_env`]).
pub async fn run_from_env() -> anyhow::Result<()> {
    let settings = DiarySettings::from_env(Env::process())?;
    init_logging(&settings.service.log)?;
    let users = Arc::new(GrpcUserDirectory::new(
        &settings.user_service,
        settings.service.service_token.clone(),
    )?);
    let service = DiaryService {
        users,
        read_your_writes: settings.service.read_your_writes,
        model: crate::search::load_model(&settings.model_dir),
        service_token: settings.service.service_token.clone(),
    };
    metachat_bootstrap::run(service, settings.service, shutdown_signal()).await
}
