//! [`ReplicationStore`] on SQLite (migration `0008_replication.sql`).

use crate::replication::{
    job_from_row, key_prefix, prefix_end, ReplicationJob, ReplicationStore, REPLICATION_JOB,
};
use crate::{Result, SqliteMeta};
use berth_core::{Digest, RepositoryName};

#[async_trait::async_trait]
impl ReplicationStore for SqliteMeta {
    async fn replication_configuration(&self) -> Result<Option<String>> {
        Ok(sqlx::query_scalar::<_, String>(
            "SELECT document FROM replication_configuration WHERE id = 1",
        )
        .fetch_optional(&self.reader)
        .await?)
    }

    async fn put_replication_configuration(&self, document: &str, now: i64) -> Result<()> {
        sqlx::query(
            "INSERT INTO replication_configuration (id, document, updated_at) VALUES (1, ?, ?)
             ON CONFLICT (id) DO UPDATE
                 SET document = excluded.document, updated_at = excluded.updated_at",
        )
        .bind(document)
        .bind(now)
        .execute(&self.writer)
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
             WHERE kind = ? AND idempotency_key >= ? AND idempotency_key < ?
             ORDER BY id",
        )
        .bind(REPLICATION_JOB)
        .bind(&prefix)
        .bind(prefix_end(&prefix))
        .fetch_all(&self.reader)
        .await?;
        Ok(rows.into_iter().filter_map(job_from_row).collect())
    }
}
