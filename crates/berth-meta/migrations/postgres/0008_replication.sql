-- Registry replication (issue 9) on PostgreSQL, as migrations/sqlite/0008_replication.sql:
-- the registry's ECR replication configuration (one row), and an index to find an
-- image's `replication.image` jobs by idempotency-key prefix (byte order, COLLATE "C").

CREATE TABLE replication_configuration (
    id         BIGINT PRIMARY KEY CHECK (id = 1),
    document   TEXT NOT NULL,
    updated_at BIGINT NOT NULL
);

CREATE INDEX jobs_by_key ON jobs (kind, (idempotency_key COLLATE "C"));
