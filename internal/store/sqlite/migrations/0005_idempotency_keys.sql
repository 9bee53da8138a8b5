-- The Idempotency-Key records: one per key, written in the transaction of
-- the write it belongs to, so it exists exactly when that write was
-- committed. body is the recorded answer (JSON, or empty for a 204);
-- created_at is INTEGER microseconds since the Unix epoch.

CREATE TABLE idempotency_keys (
    key         TEXT    PRIMARY KEY,
    fingerprint TEXT    NOT NULL,
    status      INTEGER NOT NULL,
    body        BLOB    NOT NULL,
    created_at  INTEGER NOT NULL
) STRICT;

CREATE INDEX idempotency_keys_created_at_idx ON idempotency_keys (created_at);
