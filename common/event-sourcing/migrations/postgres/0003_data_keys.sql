-- Each data subject's key (crypto-shredding of personal data): `key` is NULL once the
-- subject is erased, and the row stays so that nothing more is stored of them.
CREATE TABLE data_keys (
    subject    TEXT        PRIMARY KEY,
    key        BYTEA,
    created_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    erased_at  TIMESTAMPTZ,
    CHECK ((key IS NULL) = (erased_at IS NOT NULL))
);
