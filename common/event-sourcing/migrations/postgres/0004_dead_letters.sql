-- Events a projection could not apply (an event type or shape its build does not know),
-- parked so that it goes on with the rest; applied again on start or when an operator asks.
CREATE TABLE dead_letters (
    projection      TEXT        NOT NULL,
    event_id        UUID        NOT NULL,
    position        BIGINT      NOT NULL,
    stream_id       TEXT        NOT NULL,
    stream_version  BIGINT      NOT NULL,
    event_type      TEXT        NOT NULL,
    error           TEXT        NOT NULL,
    parked_at       TIMESTAMPTZ NOT NULL DEFAULT now(),
    attempts        INTEGER     NOT NULL DEFAULT 1,
    retry_requested BOOLEAN     NOT NULL DEFAULT false,
    PRIMARY KEY (projection, event_id)
);
