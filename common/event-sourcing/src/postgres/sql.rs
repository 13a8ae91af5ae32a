//! Every SQL statement of the store, and the names it derives from the schema (quoted
//! identifiers, advisory lock keys, the notification channel).

use std::sync::Arc;

use super::options::PostgresOptions;
use crate::error::EventStoreError;
use crate::error::Result;

const EVENT_COLUMNS: &str = "position, event_id, stream_id, stream_version, event_type, \
     schema_version, payload, metadata, recorded_at";

/// Every statement, with the schema's quoted name filled in once.
pub(super) struct Sql {
    pub(super) append_lock: Arc<str>,
    pub(super) lookup: Arc<str>,
    pub(super) insert: Arc<str>,
    pub(super) read_stream: Arc<str>,
    pub(super) read_stream_as_of: Arc<str>,
    pub(super) stream_version: Arc<str>,
    pub(super) stored_ids: Arc<str>,
    pub(super) read_all: Arc<str>,
    pub(super) head: Arc<str>,
    pub(super) checkpoint_load: Arc<str>,
    pub(super) checkpoint_save: Arc<str>,
    pub(super) keys_read: Arc<str>,
    pub(super) keys_create: Arc<str>,
    pub(super) keys_erase: Arc<str>,
    pub(super) keys_vacuum: Arc<str>,
}

impl Sql {
    pub(super) fn new(schema: &str, options: &PostgresOptions) -> Self {
        let events = format!("{}.events", quote_ident(schema));
        let checkpoints = format!("{}.checkpoints", quote_ident(schema));
        let data_keys = format!("{}.data_keys", quote_ident(schema));
        let select = format!("SELECT {EVENT_COLUMNS} FROM {events}");
        // The time stored with new events: the statement's clock, but never earlier than the
        // last stored event (module docs), so "as of" a time always selects a stream prefix.
        let recorded_now = format!(
            "GREATEST(statement_timestamp(), \
             (SELECT recorded_at FROM {events} ORDER BY position DESC LIMIT 1))"
        );
        let s = |sql: String| Arc::<str>::from(sql);
        Self {
            // One round trip; see the module docs for why the lock makes the order safe.
            append_lock: s(format!(
                "SET LOCAL lock_timeout = {}; \
                 SET LOCAL idle_in_transaction_session_timeout = {}; \
                 SELECT pg_advisory_xact_lock({})",
                options.lock_timeout.as_millis().max(1),
                options.idle_in_transaction_timeout.as_millis().max(1),
                lock_key("append", schema),
            )),
            // Where the write's event ids are stored already (and when), and each stream's
            // version; rows of the second kind have no event id, and carry the time an event
            // stored now would get (the `recorded_at` reported for a write without events).
            lookup: s(format!(
                "SELECT event_id, stream_id, stream_version, position, recorded_at FROM {events} \
                 WHERE event_id = ANY($1) \
                 UNION ALL \
                 SELECT NULL, s.stream_id, \
                   (SELECT MAX(stream_version) FROM {events} WHERE stream_id = s.stream_id), \
                   NULL, {recorded_now} \
                 FROM UNNEST($2::text[]) AS s(stream_id)"
            )),
            // One statement per stream write, returning its last position and the time stored
            // with its events (one value for the whole statement). ORDER BY makes positions
            // follow the event order. The notification ($8 is the channel) rides in the same
            // round trip; PostgreSQL delivers it only if the transaction commits.
            insert: s(format!(
                "WITH inserted AS ( \
                   INSERT INTO {events} (event_id, stream_id, stream_version, event_type, \
                     schema_version, payload, metadata, recorded_at) \
                   SELECT e.event_id, $2, $3 + e.ord, e.event_type, e.schema_version, \
                     e.payload, e.metadata, {recorded_now} \
                   FROM UNNEST($1::uuid[], $4::text[], $5::int4[], $6::text[], $7::text[]) \
                     WITH ORDINALITY \
                     AS e(event_id, event_type, schema_version, payload, metadata, ord) \
                   ORDER BY e.ord \
                   RETURNING position, recorded_at), \
                 last AS (SELECT MAX(position) AS position, MAX(recorded_at) AS recorded_at \
                   FROM inserted) \
                 SELECT last.position, last.recorded_at, pg_notify($8, last.position::text) \
                 FROM last"
            )),
            read_stream: s(format!(
                "{select} WHERE stream_id = $1 AND stream_version >= $2 \
                 ORDER BY stream_version LIMIT $3"
            )),
            read_stream_as_of: s(format!(
                "{select} WHERE stream_id = $1 AND recorded_at <= $2 ORDER BY stream_version"
            )),
            stream_version: s(format!(
                "SELECT MAX(stream_version) FROM {events} WHERE stream_id = $1"
            )),
            stored_ids: s(format!(
                "SELECT event_id FROM {events} WHERE event_id = ANY($1)"
            )),
            read_all: s(format!(
                "{select} WHERE position > $1 ORDER BY position LIMIT $2"
            )),
            head: s(format!("SELECT COALESCE(MAX(position), 0) FROM {events}")),
            checkpoint_load: s(format!(
                "SELECT position FROM {checkpoints} WHERE name = $1"
            )),
            checkpoint_save: s(format!(
                "INSERT INTO {checkpoints} (name, position, updated_at) VALUES ($1, $2, now()) \
                 ON CONFLICT (name) DO UPDATE SET position = EXCLUDED.position, \
                 updated_at = EXCLUDED.updated_at"
            )),
            keys_read: s(format!(
                "SELECT subject, key FROM {data_keys} WHERE subject = ANY($1)"
            )),
            keys_create: s(format!(
                "INSERT INTO {data_keys} (subject, key) \
                 SELECT * FROM UNNEST($1::text[], $2::bytea[]) ON CONFLICT (subject) DO NOTHING"
            )),
            keys_erase: s(format!(
                "INSERT INTO {data_keys} (subject, key, erased_at) VALUES ($1, NULL, now()) \
                 ON CONFLICT (subject) DO UPDATE SET key = NULL, \
                 erased_at = COALESCE({data_keys}.erased_at, EXCLUDED.erased_at)"
            )),
            keys_vacuum: s(format!("VACUUM {data_keys}")),
        }
    }
}

/// `"name"` with inner quotes doubled: a safe SQL identifier.
pub(super) fn quote_ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

pub(super) fn check_schema_name(schema: &str) -> Result<()> {
    // PostgreSQL silently truncates longer names, which could merge two stores.
    if schema.is_empty() || schema.len() > 63 || schema.contains('\0') {
        return Err(configuration(format!(
            "schema name {schema:?} must be 1 to 63 bytes without NUL"
        )));
    }
    Ok(())
}

/// The advisory lock key for `purpose` in `schema`: stable across processes and builds (FNV-1a),
/// so every process using the schema takes the same lock, and stores in other schemas of the same
/// database do not wait for each other (a hash collision would only serialise them).
pub(super) fn lock_key(purpose: &str, schema: &str) -> i64 {
    fnv1a(&format!("metachat.event_store.{purpose}:{schema}")) as i64
}

/// The `NOTIFY` channel of a schema (at most 63 bytes, PostgreSQL's identifier limit).
pub(super) fn notification_channel(schema: &str) -> String {
    let readable = format!("metachat_events.{schema}");
    if readable.len() <= 63 {
        readable
    } else {
        format!("metachat_events.{:016x}", fnv1a(schema))
    }
}

fn fnv1a(text: &str) -> u64 {
    let mut hash = fnv::FnvHasher::default();
    std::hash::Hasher::write(&mut hash, text.as_bytes());
    std::hash::Hasher::finish(&hash)
}

pub(super) fn to_i64(value: u64) -> i64 {
    i64::try_from(value).unwrap_or(i64::MAX)
}

pub(super) fn configuration(message: impl Into<String>) -> EventStoreError {
    EventStoreError::Backend(sqlx::Error::Configuration(message.into().into()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identifiers_are_quoted() {
        assert_eq!(quote_ident("events"), "\"events\"");
        assert_eq!(quote_ident("a\"b"), "\"a\"\"b\"");
    }

    #[test]
    pub(super) fn lock_keys_are_stable_and_per_schema() {
        // Fixed values: a change would let old and new builds take different locks.
        assert_eq!(fnv1a(""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(fnv1a("a"), 0xaf63_dc4c_8601_ec8c);
        assert_ne!(lock_key("append", "one"), lock_key("append", "two"));
        assert_ne!(lock_key("append", "one"), lock_key("migrate", "one"));
    }

    #[test]
    fn channels_fit_postgres_identifiers() {
        assert_eq!(notification_channel("public"), "metachat_events.public");
        let long = "x".repeat(63);
        let channel = notification_channel(&long);
        assert!(channel.len() <= 63);
        assert_ne!(channel, notification_channel(&"y".repeat(63)));
    }

    #[test]
    fn schema_names_are_checked() {
        assert!(check_schema_name("contract_1").is_ok());
        assert!(check_schema_name("").is_err());
        assert!(check_schema_name(&"s".repeat(64)).is_err());
    }
}
