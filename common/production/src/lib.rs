//! The production wiring the services share: the PostgreSQL event store, the relay that
//! publishes its events to Kafka, and the consumer that feeds a service's read models, all
//! configured from the seed's environment variables.
//!
//! A service runs in production wiring when `DB_HOST` is set; it then also needs
//! `KAFKA_BOOTSTRAP_SERVERS` and `CASSANDRA_HOSTS`, and says which are missing otherwise.
//! [`ProductionConfig::from_env`] reads all of it from the start-up snapshot of the
//! environment, before anything connects.

use std::sync::Arc;

use anyhow::{Context, bail};
use event_sourcing::postgres::{PostgresCheckpoints, PostgresEventStore, PostgresOptions};
use event_sourcing::{EventCodec, EventStore, Projection, RecordedEvent};
use metachat_cassandra::CassandraConfig;
use metachat_grpc::Dependency;
use metachat_kafka::{KafkaConfig, PgLeadership, ProjectionConsumer, Relay};
use metachat_runtime::{ConfigError, Env, Stop};
use sqlx::postgres::PgConnectOptions;
use tokio::task::JoinHandle;

/// Where the event store is: `DB_HOST`, `DB_PORT` (5432), `DB_USER` (metachat),
/// `DB_PASSWORD` (none), `DB_NAME` (metachat).
#[derive(Clone)]
pub struct PostgresConfig {
    pub host: String,
    pub port: u16,
    pub user: String,
    password: Option<String>,
    pub database: String,
}

impl std::fmt::Debug for PostgresConfig {
    // The password never reaches a log or an error.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "postgres://{}@{}:{}/{}",
            self.user, self.host, self.port, self.database
        )
    }
}

impl PostgresConfig {
    /// `None` when `DB_HOST` is unset.
    pub fn from_env(env: &Env) -> Result<Option<Self>, ConfigError> {
        let Some(host) = env.var("DB_HOST") else {
            return Ok(None);
        };
        Ok(Some(Self {
            host,
            port: env.parse_at_least("DB_PORT", 5432, 1)?,
            user: env.or("DB_USER", "metachat"),
            password: env.var("DB_PASSWORD"),
            database: env.or("DB_NAME", "metachat"),
        }))
    }

    pub fn connect_options(&self) -> PgConnectOptions {
        let options = PgConnectOptions::new()
            .host(&self.host)
            .port(self.port)
            .username(&self.user)
            .database(&self.database)
            .application_name("metachat");
        match &self.password {
            Some(password) => options.password(password),
            None => options,
        }
    }
}

/// Everything the production wiring needs, or nothing.
#[derive(Debug, Clone)]
pub struct ProductionConfig {
    pub postgres: PostgresConfig,
    pub kafka: KafkaConfig,
    pub cassandra: CassandraConfig,
}

impl ProductionConfig {
    /// `None` when none of `DB_HOST`, `KAFKA_BOOTSTRAP_SERVERS`, `CASSANDRA_HOSTS` is set (the
    /// embedded wiring); an error naming what is missing when only some are, or naming the
    /// variable whose value is unusable.
    pub fn from_env(env: &Env) -> anyhow::Result<Option<Self>> {
        let postgres = PostgresConfig::from_env(env)?;
        let kafka = KafkaConfig::from_env(env)?;
        let cassandra = CassandraConfig::from_env_if_set(env)?;
        match (postgres, kafka, cassandra) {
            (None, None, None) => Ok(None),
            (Some(postgres), Some(kafka), Some(cassandra)) => Ok(Some(Self {
                postgres,
                kafka,
                cassandra,
            })),
            (postgres, kafka, cassandra) => {
                let missing: Vec<&str> = [
                    ("DB_HOST", postgres.is_none()),
                    ("KAFKA_BOOTSTRAP_SERVERS", kafka.is_none()),
                    ("CASSANDRA_HOSTS", cassandra.is_none()),
                ]
                .into_iter()
                .filter_map(|(name, absent)| absent.then_some(name))
                .collect();
                bail!(
                    "the production wiring needs DB_HOST, KAFKA_BOOTSTRAP_SERVERS and \
                     CASSANDRA_HOSTS; missing: {} (unset all three for the embedded store)",
                    missing.join(", ")
                )
            }
        }
    }
}

/// Connects to the event store, migrating its schema, with an error that says where it tried.
pub async fn open_event_store(
    config: &PostgresConfig,
    codec: EventCodec,
) -> anyhow::Result<PostgresEventStore> {
    PostgresEventStore::connect_with(config.connect_options(), codec, PostgresOptions::default())
        .await
        .with_context(|| format!("cannot open the event store at {config:?}"))
}

/// Where a service's events go and where its read models come from.
#[derive(Debug, Clone)]
pub struct PipelineSpec {
    /// The service's name: names its relay (checkpoint and leader lock).
    pub service: &'static str,
    /// The topic its events are published to and its read models consume.
    pub topic: String,
    /// The consumer group its replicas share.
    pub group: String,
    /// The stream categories it publishes (`user`; `entry`, `session`).
    pub categories: &'static [&'static str],
}

/// A service's running relay and consumer.
pub struct Pipeline {
    stop: Stop,
    tasks: Vec<JoinHandle<()>>,
}

impl Pipeline {
    /// Creates the topics if missing, then starts the relay (publishing once elected leader
    /// among the service's replicas), the consumer feeding `projection`, and one consumer per
    /// follower on the topic paired with it, in group `<group>-<follower's name>` (its
    /// replicas share the work by partition, so each entity's events reach one of them, in
    /// order).
    pub async fn start(
        spec: &PipelineSpec,
        kafka: &KafkaConfig,
        store: &PostgresEventStore,
        projection: Arc<dyn Projection>,
        followers: Vec<(Arc<dyn Projection>, String)>,
    ) -> anyhow::Result<Self> {
        metachat_kafka::metrics::describe();
        let mut topics: Vec<&str> = vec![&spec.topic];
        topics.extend(followers.iter().map(|(_, topic)| topic.as_str()));
        // Each once: a topic named twice in one creation request fails it.
        topics.sort_unstable();
        topics.dedup();
        metachat_kafka::topics::ensure_topics(kafka, &topics)
            .await
            .map_err(anyhow::Error::msg)?;
        let topic = spec.topic.clone();
        let categories = spec.categories;
        let route = move |event: &RecordedEvent| {
            categories
                .contains(&event.category())
                .then(|| topic.clone())
        };
        let events: Arc<dyn EventStore> = Arc::new(store.clone());
        let relay = Relay::new(
            spec.service,
            kafka,
            events.clone(),
            Arc::new(PostgresCheckpoints::new(store)),
            PgLeadership::new(store.pool().clone(), store.schema()),
            Arc::new(route),
        )
        .context("cannot create the Kafka producer")?;
        let letters = Arc::new(PostgresCheckpoints::new(store));
        let consumer = ProjectionConsumer::new(
            kafka,
            &spec.group,
            &[&spec.topic],
            projection,
            events.clone(),
            letters.clone(),
        )
        .context("cannot create the Kafka consumer")?;
        let mut followers_consumers = Vec::new();
        for (follower, topic) in followers {
            let group = format!("{}-{}", spec.group, follower.name());
            followers_consumers.push(
                ProjectionConsumer::new(
                    kafka,
                    &group,
                    &[&topic],
                    follower,
                    events.clone(),
                    letters.clone(),
                )
                .with_context(|| format!("cannot create the Kafka consumer {group}"))?,
            );
        }
        let stop = Stop::new();
        let mut tasks = vec![
            tokio::spawn(relay.run(stop.signal())),
            tokio::spawn(consumer.run(stop.signal())),
        ];
        tasks.extend(
            followers_consumers
                .into_iter()
                .map(|c| tokio::spawn(c.run(stop.signal()))),
        );
        Ok(Self { stop, tasks })
    }

    /// Stops the relay and the consumer (which commits what it applied).
    pub async fn stop(self) {
        self.stop.now();
        for task in self.tasks {
            let _ = task.await;
        }
    }
}

/// The health of a production-wired service's dependencies: PostgreSQL (critical: without the
/// event store nothing works), Kafka and Cassandra (reads of lists and writes' propagation).
///
/// PostgreSQL is not queried: its status is the store's own availability
/// ([`PostgresEventStore::watch_available`]), which fails every request at once while the server
/// is known to be down, so readiness turns with the first failed operation or lost listening
/// connection instead of after a query that could wait out the pool's acquire timeout.
pub fn dependencies(
    store: &PostgresEventStore,
    kafka: &KafkaConfig,
    cassandra: Arc<scylla::client::session::Session>,
) -> anyhow::Result<Vec<Dependency>> {
    let probe = metachat_kafka::topics::KafkaProbe::new(kafka)
        .context("cannot create the Kafka health probe")?;
    Ok(vec![
        Dependency::watched("postgres", true, store.watch_available()),
        Dependency::new("kafka", false, move || {
            let probe = probe.clone();
            async move { probe.reachable().await }
        }),
        Dependency::new("cassandra", false, move || {
            let session = Arc::clone(&cassandra);
            async move { metachat_cassandra::ping(&session).await }
        }),
    ])
}
