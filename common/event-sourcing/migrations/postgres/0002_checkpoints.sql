-- Projection checkpoints: how far each named projection has applied the global order.
CREATE TABLE checkpoints (
    name       TEXT        PRIMARY KEY,
    position   BIGINT      NOT NULL,
    updated_at TIMESTAMPTZ NOT NULL
);
