-- Registry replication (issue 9): the registry's ECR replication configuration, and
-- an index to find an image's `replication.image` jobs by their idempotency key
-- `<repository>@<digest>|<region>|<registryId>|<tag>` (the jobs are the replication
-- status: DescribeImageReplicationStatus reads them). Times are Unix epoch seconds.

-- At most one row (id = 1): the `replicationConfiguration` JSON exactly as validated.
CREATE TABLE replication_configuration (
    id         INTEGER PRIMARY KEY CHECK (id = 1),
    document   TEXT NOT NULL,
    updated_at INTEGER NOT NULL
);

CREATE INDEX jobs_by_key ON jobs (kind, idempotency_key);
