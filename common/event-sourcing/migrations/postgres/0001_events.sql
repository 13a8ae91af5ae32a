-- The event log. Runs inside the migration transaction with `search_path` set to the store's
-- schema, so names are unqualified.
--
-- `position` comes from an identity sequence with CACHE 1 (the default, spelled out because it
-- matters): appends take the store's append lock before inserting, so with one shared sequence
-- (no per-session cache) positions are handed out in lock order, which is commit order. A
-- cache > 1 would let a later writer use a lower, pre-allocated value.
--
-- Payload and metadata are TEXT, not JSONB: they hold exactly what `EventCodec` produced. JSONB
-- would rewrite that text (key order, duplicate keys, number spelling), reject "\u0000", and
-- refuse a codec that encrypts payloads into non-JSON ciphertext.
CREATE TABLE events (
    position       BIGINT GENERATED ALWAYS AS IDENTITY (CACHE 1) PRIMARY KEY,
    event_id       UUID        NOT NULL,
    stream_id      TEXT        NOT NULL,
    stream_version BIGINT      NOT NULL CHECK (stream_version > 0),
    event_type     TEXT        NOT NULL,
    schema_version INTEGER     NOT NULL,
    payload        TEXT        NOT NULL,
    metadata       TEXT        NOT NULL,
    recorded_at    TIMESTAMPTZ NOT NULL,
    CONSTRAINT events_event_id_key UNIQUE (event_id),
    CONSTRAINT events_stream_version_key UNIQUE (stream_id, stream_version)
);

-- read_stream_as_of: one stream's events up to a moment.
CREATE INDEX events_stream_recorded_at_idx ON events (stream_id, recorded_at);
