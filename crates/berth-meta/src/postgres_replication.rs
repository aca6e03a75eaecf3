//! [`ReplicationStore`](crate::ReplicationStore) on PostgreSQL
//! (migrations/postgres/0008_replication.sql), the same statements as on SQLite; keys
//! compare in byte order (`COLLATE "C"`, as the index `jobs_by_key`).

use crate::replication::replication_store;
use crate::PgMeta;

replication_store!(
    PgMeta,
    pool,
    pool,
    get: "SELECT document FROM replication_configuration WHERE id = 1",
    put: "INSERT INTO replication_configuration (id, document, updated_at) VALUES (1, $1, $2)
          ON CONFLICT (id) DO UPDATE
              SET document = excluded.document, updated_at = excluded.updated_at",
    jobs: "SELECT id, idempotency_key, state, last_error, result FROM jobs
           WHERE kind = $1 AND idempotency_key COLLATE \"C\" >= $2
             AND idempotency_key COLLATE \"C\" < $3
           ORDER BY id"
);
