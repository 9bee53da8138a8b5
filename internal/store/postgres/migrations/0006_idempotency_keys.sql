-- The Idempotency-Key records: one per key, written in the transaction of
-- the write it belongs to, so it exists exactly when that write was
-- committed. body is the recorded answer (JSON, or empty for a 204).
-- Expired records are deleted by the service (created_at index).

CREATE TABLE idempotency_keys (
    key         text COLLATE "C" PRIMARY KEY,
    fingerprint text        NOT NULL,
    status      integer     NOT NULL,
    body        bytea       NOT NULL,
    created_at  timestamptz NOT NULL
);

CREATE INDEX idempotency_keys_created_at_idx ON idempotency_keys (created_at);
