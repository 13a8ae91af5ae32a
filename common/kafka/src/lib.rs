//! The bridge between the write side and the read side of the production wiring.
//!
//! - [`relay::Relay`] publishes stored events, in position order, to Kafka topics (key = the
//!   aggregate id, so each entity's events stay in order in one partition), with an idempotent
//!   producer, recording a checkpoint after each delivered batch. Only the leader publishes:
//!   replicas of a service wait on a PostgreSQL advisory lock ([`leader`]). An event is in the
//!   store before anything publishes it; a broker outage only delays publishing.
//! - [`consumer::ProjectionConsumer`] reads those topics in a consumer group and applies each
//!   event to a projection, committing offsets only after the projection stored it
//!   (at-least-once; projections are idempotent by stream version).
//!
//! The message format is in [`message`].

pub mod config;
pub mod consumer;
pub mod leader;
pub mod message;
pub mod metrics;
pub mod relay;
pub mod topics;

pub use config::{KafkaConfig, topic_from_env};
pub use consumer::ProjectionConsumer;
pub use leader::PgLeadership;
pub use relay::{Relay, Route};
