//! [`ReplicationStore`](crate::ReplicationStore) on SQLite (migration
//! `0008_replication.sql`): reads on the read pool, the configuration's upsert on the
//! writer; keys compare in byte order (SQLite's BINARY), as the index `jobs_by_key`.

use crate::replication::replication_store;
use crate::SqliteMeta;

replication_store!(
    SqliteMeta,
    reader,
    writer,
    get: "SELECT document FROM replication_configuration WHERE id = 1",
    put: "INSERT INTO replication_configuration (id, document, updated_at) VALUES (1, ?, ?)
          ON CONFLICT (id) DO UPDATE
              SET document = excluded.document, updated_at = excluded.updated_at",
    jobs: "SELECT id, idempotency_key, state, last_error, result FROM jobs
           WHERE kind = ? AND idempotency_key >= ? AND idempotency_key < ?
           ORDER BY id"
);
