//! Event sourcing for MetaChat: streams with optimistic concurrency, one global order,
//! aggregates rebuilt by replay, and checkpointed projections. It knows nothing of users or
//! diaries.
//!
//! # Guarantees
//!
//! **Atomic.** One call to [`EventStore::append_streams`] stores all of its events, in one or
//! several streams, or none of them. Each stream write carries an [`ExpectedVersion`]; if any
//! stream is not at the version its write expects, the whole call fails with
//! [`EventStoreError::WrongExpectedVersion`] and nothing is stored. Stream versions are
//! 1, 2, 3, ... without gaps.
//!
//! **Idempotent.** Every event has a unique id. Re-sending a batch whose events are already
//! stored succeeds, reports `already_stored`, and stores nothing: a client that lost the answer
//! to an append can retry it safely. An id that is already stored, sent in some other batch or
//! stream, is refused with [`EventStoreError::EventIdReused`].
//!
//! **Ordered.** Each stored event gets a [`Position`] in one total order. [`EventStore::read_all`]
//! returns events in position order and only from a settled prefix: once an event at position
//! P has been returned, no event below P can appear later. A reader that remembers the last
//! position it processed and asks for what follows it never skips an event, also while
//! other writers are committing. Backends whose transactions can commit out of position order
//! (PostgreSQL sequences) must hold back the unsettled tail rather than return it.
//!
//! **At least once.** Projections ([`ProjectionRunner`]) apply events, then save the position
//! they reached. A crash between the two replays those events on restart, so a projection sees
//! some events twice and must be idempotent: a consumer keys its writes by the aggregate's id
//! and stream version (ignore an event whose version it has already applied), never by
//! "increment on arrival". What a consumer must do: process in the order given, record its
//! position only after its effects are stored, and treat redelivery as normal.
//!
//! **Versioned payloads.** Each event records its payload's schema version. Readers register
//! [`Upcasters`] that turn an old payload shape into the current one when it is read, so the
//! stored history is never rewritten and domain code only knows the newest shape.
//!
//! **Temporal.** [`EventStore::read_stream_as_of`] returns a stream as it was at a moment, and
//! [`Repository::load_as_of`] replays it: the state of any aggregate at any time.
//!
//! **Erasable.** Payloads pass through one [`EventCodec`] on their way in and out of every
//! backend. It seals each event's personal data with a key of its subject (a user), and
//! [`EventStore::erase_subject`] deletes that key: the data can no longer be read from the
//! store or from any copy of its events ([`personal`]).
//!
//! # Backends
//!
//! [`sqlite`]: one embedded file, for a single host. [`postgres`]: a PostgreSQL schema shared by
//! any number of processes; appends are serialised by an advisory lock so that positions commit
//! in order, `LISTEN`/`NOTIFY` wakes subscribers in every process, and while the server is
//! unreachable operations fail at once instead of waiting for a connection (see its module docs).

mod aggregate;
mod codec;
pub mod dead_letter;
mod error;
mod event;
pub mod metrics;
pub mod personal;
pub mod postgres;
mod projection;
pub mod sqlite;
mod store;
pub mod testing;

#[cfg(feature = "contract-tests")]
pub mod contract;

pub use aggregate::{
    Aggregate, AppendError, DomainEvent, ExecuteError, Executed, Loaded, Repository,
    append_settled, conflict_backoff, decode_event, encode_event, fold, new_event_with_id,
    new_events, replay, stream_turn,
};
pub use codec::{EventCodec, UpcastFn, Upcasters};
pub use error::{EventStoreError, Result};
pub use event::{
    AppendResult, EventMetadata, ExpectedVersion, NewEvent, Position, RecordedEvent, StreamName,
    StreamWrite, stream_aggregate_id, stream_category,
};
pub use projection::{
    CheckpointStore, FALLBACK_POLL, Projection, ProjectionError, ProjectionRunner, Subscription,
    to_apply, wait_for_position,
};
pub use store::{EventStore, read_full_stream};
