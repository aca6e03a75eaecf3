//! [`LifecycleStore`] on PostgreSQL (migrations/postgres/0006_lifecycle.sql), the same
//! statements as on SQLite. Many nodes may start a preview of one repository at once:
//! the start locks the repository row `FOR NO KEY UPDATE` (pushes, which hold it `FOR
//! KEY SHARE`, are not blocked) before it looks for a preview in progress, so two
//! starts cannot both win.

use crate::jobs::NewJob;
use crate::lifecycle::{
    LifecyclePolicyRow, LifecycleStore, PreviewRow, PreviewStart, PreviewStatus,
};
use crate::{PgMeta, Result};
use berth_core::RepositoryName;

use crate::sqlite_lifecycle::PreviewTuple;

#[async_trait::async_trait]
impl LifecycleStore for PgMeta {
    async fn put_lifecycle_policy(
        &self,
        repo: &RepositoryName,
        text: &str,
        now: i64,
    ) -> Result<bool> {
        let r = sqlx::query(
            "INSERT INTO lifecycle_policies (repository_id, policy_text, updated_at)
             SELECT id, $1, $2 FROM repositories WHERE name = $3
             ON CONFLICT (repository_id) DO UPDATE
                 SET policy_text = excluded.policy_text, updated_at = excluded.updated_at",
        )
        .bind(text)
        .bind(now)
        .bind(repo.as_str())
        .execute(&self.pool)
        .await?;
        Ok(r.rows_affected() > 0)
    }

    async fn lifecycle_policy(&self, repo: &RepositoryName) -> Result<Option<LifecyclePolicyRow>> {
        Ok(sqlx::query_as::<_, (String, i64, Option<i64>)>(
            "SELECT p.policy_text, p.updated_at, p.last_evaluated_at
             FROM lifecycle_policies p JOIN repositories r ON r.id = p.repository_id
             WHERE r.name = $1",
        )
        .bind(repo.as_str())
        .fetch_optional(&self.pool)
        .await?
        .map(|(text, updated_at, last_evaluated_at)| LifecyclePolicyRow {
            text,
            updated_at,
            last_evaluated_at,
        }))
    }

    async fn delete_lifecycle_policy(
        &self,
        repo: &RepositoryName,
    ) -> Result<Option<LifecyclePolicyRow>> {
        Ok(sqlx::query_as::<_, (String, i64, Option<i64>)>(
            "DELETE FROM lifecycle_policies
             WHERE repository_id = (SELECT id FROM repositories WHERE name = $1)
             RETURNING policy_text, updated_at, last_evaluated_at",
        )
        .bind(repo.as_str())
        .fetch_optional(&self.pool)
        .await?
        .map(|(text, updated_at, last_evaluated_at)| LifecyclePolicyRow {
            text,
            updated_at,
            last_evaluated_at,
        }))
    }

    async fn set_lifecycle_evaluated(&self, repo: &RepositoryName, at: i64) -> Result<bool> {
        let r = sqlx::query(
            "UPDATE lifecycle_policies SET last_evaluated_at = $1
             WHERE repository_id = (SELECT id FROM repositories WHERE name = $2)",
        )
        .bind(at)
        .bind(repo.as_str())
        .execute(&self.pool)
        .await?;
        Ok(r.rows_affected() > 0)
    }

    async fn lifecycle_repositories(&self, after: Option<&str>, limit: u32) -> Result<Vec<String>> {
        Ok(sqlx::query_scalar::<_, String>(
            "SELECT r.name FROM lifecycle_policies p JOIN repositories r ON r.id = p.repository_id
             WHERE r.name > $1 ORDER BY r.name LIMIT $2",
        )
        .bind(after.unwrap_or(""))
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await?)
    }

    async fn start_lifecycle_preview(
        &self,
        repo: &RepositoryName,
        text: &str,
        job: &NewJob,
        now: i64,
        stale_secs: i64,
    ) -> Result<PreviewStart> {
        let mut tx = self.begin_write().await?;
        let Some(id) = sqlx::query_scalar::<_, i64>(
            "SELECT id FROM repositories WHERE name = $1 FOR NO KEY UPDATE",
        )
        .bind(repo.as_str())
        .fetch_optional(&mut *tx)
        .await?
        else {
            return Ok(PreviewStart::RepositoryNotFound);
        };
        let running = sqlx::query_scalar::<_, i64>(
            "SELECT started_at FROM lifecycle_previews
             WHERE repository_id = $1 AND status = 'IN_PROGRESS' AND started_at > $2",
        )
        .bind(id)
        .bind(now - stale_secs)
        .fetch_optional(&mut *tx)
        .await?;
        if running.is_some() {
            return Ok(PreviewStart::InProgress);
        }
        sqlx::query(
            "INSERT INTO lifecycle_previews (repository_id, policy_text, status, started_at)
             VALUES ($1, $2, 'IN_PROGRESS', $3)
             ON CONFLICT (repository_id) DO UPDATE SET policy_text = excluded.policy_text,
                 status = 'IN_PROGRESS', started_at = excluded.started_at,
                 finished_at = NULL, results = NULL, error = NULL",
        )
        .bind(id)
        .bind(text)
        .bind(now)
        .execute(&mut *tx)
        .await?;
        crate::postgres_jobs::enqueue(&mut tx, job, now.saturating_mul(1000)).await?;
        tx.commit().await?;
        Ok(PreviewStart::Started)
    }

    async fn finish_lifecycle_preview(
        &self,
        repo: &RepositoryName,
        started_at: i64,
        status: PreviewStatus,
        results: Option<&str>,
        error: Option<&str>,
        now: i64,
    ) -> Result<bool> {
        let r = sqlx::query(
            "UPDATE lifecycle_previews SET status = $1, results = $2, error = $3, finished_at = $4
             WHERE repository_id = (SELECT id FROM repositories WHERE name = $5)
               AND started_at = $6 AND status = 'IN_PROGRESS'",
        )
        .bind(status.as_str())
        .bind(results)
        .bind(error)
        .bind(now)
        .bind(repo.as_str())
        .bind(started_at)
        .execute(&self.pool)
        .await?;
        Ok(r.rows_affected() > 0)
    }

    async fn lifecycle_preview(&self, repo: &RepositoryName) -> Result<Option<PreviewRow>> {
        sqlx::query_as::<_, PreviewTuple>(
            "SELECT v.policy_text, v.status, v.started_at, v.finished_at, v.results, v.error
             FROM lifecycle_previews v JOIN repositories r ON r.id = v.repository_id
             WHERE r.name = $1",
        )
        .bind(repo.as_str())
        .fetch_optional(&self.pool)
        .await?
        .map(crate::sqlite_lifecycle::preview_row)
        .transpose()
    }
}
