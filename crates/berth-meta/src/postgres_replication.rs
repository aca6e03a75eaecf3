//! [`ReplicationStore`] on PostgreSQL (migrations/postgres/0008_replication.sql); keys compare in byte order (`COLLATE "C"`, as the index).

use crate::replication::{
    job_from_row, key_prefix, prefix_end, ReplicationJob, ReplicationStore, REPLICATION_JOB,
};
use crate::{Result, PgMeta};
use berth_core::{Digest, RepositoryName};

#[async_trait::async_trait]
impl ReplicationStore for PgMeta {
    async fn replication_configuration(&self) -> Result<Option<String>> {
        Ok(sqlx::query_scalar::<_, String>(
            "SELECT document FROM replication_configuration WHERE id = 1",
        )
        .fetch_optional(&self.pool)
        .await?)
    }

    async fn put_replication_configuration(&self, document: &str, now: i64) -> Result<()> {
        sqlx::query(
            "INSERT INTO replication_configuration (id, document, updated_at) VALUES (1, $1, $2)
             ON CONFLICT (id) DO UPDATE
                 SET document = excluded.document, updated_at = excluded.updated_at",
        )
        .bind(document)
        .bind(now)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    async fn replication_jobs(
        &self,
        repository: &RepositoryName,
        digest: &Digest,
    ) -> Result<Vec<ReplicationJob>> {
        let prefix = key_prefix(repository, digest);
        let rows = sqlx::query_as::<_, (i64, String, String, Option<String>)>(
            "SELECT id, idempotency_key, state, last_error FROM jobs
             WHERE kind = $1 AND idempotency_key COLLATE \"C\" >= $2
               AND idempotency_key COLLATE \"C\" < $3
             ORDER BY id",
        )
        .bind(REPLICATION_JOB)
        .bind(&prefix)
        .bind(prefix_end(&prefix))
        .fetch_all(&self.pool)
        .await?;
        Ok(rows.into_iter().filter_map(job_from_row).collect())
    }
}
