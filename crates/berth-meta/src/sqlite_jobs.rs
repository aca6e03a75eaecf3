//! The job queue's SQL on SQLite ([`JobStore`] for [`SqliteMeta`]).
//!
//! Claiming is one `UPDATE … WHERE id IN (SELECT … LIMIT n) RETURNING …` inside a
//! `BEGIN IMMEDIATE` transaction: SQLite has one writer at a time, across processes, so
//! two claimers never select the same row. On PostgreSQL the same statement works with
//! `FOR UPDATE SKIP LOCKED` added to the sub-select, which lets concurrent claimers
//! skip each other's rows instead of waiting. Every other statement is plain SQL that
//! runs unchanged on both (`ON CONFLICT … WHERE … DO NOTHING` against the partial
//! unique index, `RETURNING`).

use crate::jobs::{
    ClaimedJob, Completion, Enqueued, FailOutcome, JobFilter, JobRow, JobState, JobStats, JobStore,
    Lease, NewJob,
};
use crate::{MetaError, Result, SqliteMeta};
use sqlx::sqlite::SqliteRow;
use sqlx::{Row, Sqlite, Transaction};

impl SqliteMeta {
    /// Starts a write transaction (`BEGIN IMMEDIATE`, see the module doc of
    /// [`crate::sqlite`]), for callers that enqueue jobs with [`enqueue`] together with
    /// their own writes. Errors: the database failed.
    pub async fn begin_write(&self) -> Result<Transaction<'static, Sqlite>> {
        Ok(self.writer.begin_with("BEGIN IMMEDIATE").await?)
    }
}

/// Enqueues `job` inside the caller's transaction, so the job exists if and only if the
/// caller's state change commits. Idempotent while a job of the same kind and key is
/// queued, retrying or running: returns [`Enqueued::Existing`] and writes nothing.
/// Errors: the database failed.
pub async fn enqueue(tx: &mut Transaction<'_, Sqlite>, job: &NewJob, now: i64) -> Result<Enqueued> {
    let payload = job.payload.to_string();
    let inserted = sqlx::query_scalar::<_, i64>(
        "INSERT INTO jobs (kind, payload, idempotency_key, state, run_at, max_attempts, deadline,
                           created_at, updated_at)
         VALUES (?, ?, ?, 'queued', ?, ?, ?, ?, ?)
         ON CONFLICT (kind, idempotency_key)
             WHERE idempotency_key IS NOT NULL AND state IN ('queued', 'running', 'retrying')
         DO NOTHING
         RETURNING id",
    )
    .bind(&job.kind)
    .bind(&payload)
    .bind(&job.idempotency_key)
    .bind(job.run_at.unwrap_or(now))
    .bind(job.max_attempts.max(1) as i64)
    .bind(job.deadline)
    .bind(now)
    .bind(now)
    .fetch_optional(&mut **tx)
    .await?;
    if let Some(id) = inserted {
        return Ok(Enqueued::Created(id));
    }
    let id = sqlx::query_scalar::<_, i64>(
        "SELECT id FROM jobs WHERE kind = ? AND idempotency_key = ?
           AND state IN ('queued', 'running', 'retrying')",
    )
    .bind(&job.kind)
    .bind(&job.idempotency_key)
    .fetch_one(&mut **tx)
    .await?;
    Ok(Enqueued::Existing(id))
}

fn json(column: &str, s: String) -> Result<serde_json::Value> {
    serde_json::from_str(&s)
        .map_err(|e| MetaError::Corrupt(format!("stored job {column} is not JSON: {e}")))
}

fn job_row(r: &SqliteRow) -> Result<JobRow> {
    let state: String = r.try_get("state")?;
    Ok(JobRow {
        id: r.try_get("id")?,
        kind: r.try_get("kind")?,
        payload: json("payload", r.try_get("payload")?)?,
        idempotency_key: r.try_get("idempotency_key")?,
        state: state.parse().map_err(MetaError::Corrupt)?,
        run_at: r.try_get("run_at")?,
        attempts: r.try_get::<i64, _>("attempts")? as u32,
        max_attempts: r.try_get::<i64, _>("max_attempts")? as u32,
        deadline: r.try_get("deadline")?,
        lease_owner: r.try_get("lease_owner")?,
        lease_expires_at: r.try_get("lease_expires_at")?,
        last_error: r.try_get("last_error")?,
        result: r
            .try_get::<Option<String>, _>("result")?
            .map(|s| json("result", s))
            .transpose()?,
        created_at: r.try_get("created_at")?,
        updated_at: r.try_get("updated_at")?,
        finished_at: r.try_get("finished_at")?,
    })
}

#[async_trait::async_trait]
impl JobStore for SqliteMeta {
    async fn enqueue(&self, job: &NewJob, now: i64) -> Result<Enqueued> {
        let mut tx = self.begin_write().await?;
        let out = enqueue(&mut tx, job, now).await?;
        tx.commit().await?;
        Ok(out)
    }

    async fn claim(
        &self,
        kind: &str,
        owner: &str,
        limit: u32,
        lease_ms: i64,
        now: i64,
    ) -> Result<Vec<ClaimedJob>> {
        let mut tx = self.begin_write().await?;
        // Jobs that can no longer run: a lost lease on the last attempt (the worker died
        // every time, e.g. a job that crashes the process), or a passed deadline.
        sqlx::query(
            "UPDATE jobs SET state = 'dead', finished_at = ?1, updated_at = ?1,
                 lease_expires_at = NULL,
                 last_error = CASE WHEN state = 'running'
                     THEN 'lease expired on attempt ' || attempts || ' of ' || max_attempts
                          || ' (worker lost)'
                     ELSE coalesce(last_error, 'deadline passed before the job could run') END
             WHERE kind = ?2 AND (
                 (state = 'running' AND lease_expires_at <= ?1
                    AND (attempts >= max_attempts OR deadline <= ?1))
                 OR (state IN ('queued', 'retrying') AND deadline <= ?1))",
        )
        .bind(now)
        .bind(kind)
        .execute(&mut *tx)
        .await?;
        // PostgreSQL: add `FOR UPDATE SKIP LOCKED` to the sub-select.
        let rows = sqlx::query(
            "UPDATE jobs SET state = 'running', attempts = attempts + 1, lease_owner = ?1,
                 lease_expires_at = ?2, updated_at = ?3
             WHERE id IN (
                 SELECT id FROM jobs
                 WHERE kind = ?4 AND (
                     (state IN ('queued', 'retrying') AND run_at <= ?3)
                     OR (state = 'running' AND lease_expires_at <= ?3))
                 ORDER BY run_at, id
                 LIMIT ?5)
             RETURNING id, kind, payload, idempotency_key, attempts, max_attempts, deadline,
                       lease_expires_at, created_at, run_at",
        )
        .bind(owner)
        .bind(now + lease_ms)
        .bind(now)
        .bind(kind)
        .bind(limit as i64)
        .fetch_all(&mut *tx)
        .await?;
        tx.commit().await?;
        let mut jobs = rows
            .iter()
            .map(|r| {
                Ok((
                    r.try_get::<i64, _>("run_at")?,
                    ClaimedJob {
                        lease: Lease {
                            job_id: r.try_get("id")?,
                            owner: owner.to_string(),
                            attempt: r.try_get::<i64, _>("attempts")? as u32,
                        },
                        kind: r.try_get("kind")?,
                        payload: json("payload", r.try_get("payload")?)?,
                        idempotency_key: r.try_get("idempotency_key")?,
                        max_attempts: r.try_get::<i64, _>("max_attempts")? as u32,
                        deadline: r.try_get("deadline")?,
                        lease_expires_at: r.try_get("lease_expires_at")?,
                        created_at: r.try_get("created_at")?,
                    },
                ))
            })
            .collect::<Result<Vec<_>>>()?;
        // RETURNING does not keep the sub-select's order.
        jobs.sort_by_key(|(run_at, j)| (*run_at, j.lease.job_id));
        Ok(jobs.into_iter().map(|(_, j)| j).collect())
    }

    async fn heartbeat(&self, lease: &Lease, lease_ms: i64, now: i64) -> Result<bool> {
        let done = sqlx::query(
            "UPDATE jobs SET lease_expires_at = ?, updated_at = ?
             WHERE id = ? AND state = 'running' AND lease_owner = ? AND attempts = ?",
        )
        .bind(now + lease_ms)
        .bind(now)
        .bind(lease.job_id)
        .bind(&lease.owner)
        .bind(lease.attempt as i64)
        .execute(&self.writer)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    async fn complete(&self, done: &[Completion], now: i64) -> Result<Vec<bool>> {
        let mut tx = self.begin_write().await?;
        let mut applied = Vec::with_capacity(done.len());
        for c in done {
            let r = sqlx::query(
                "UPDATE jobs SET state = 'succeeded', result = ?, lease_expires_at = NULL,
                     finished_at = ?, updated_at = ?
                 WHERE id = ? AND state = 'running' AND lease_owner = ? AND attempts = ?",
            )
            .bind(c.result.to_string())
            .bind(now)
            .bind(now)
            .bind(c.lease.job_id)
            .bind(&c.lease.owner)
            .bind(c.lease.attempt as i64)
            .execute(&mut *tx)
            .await?;
            applied.push(r.rows_affected() == 1);
        }
        tx.commit().await?;
        Ok(applied)
    }

    async fn fail(
        &self,
        lease: &Lease,
        error: &str,
        retry_at: Option<i64>,
        now: i64,
    ) -> Result<Option<FailOutcome>> {
        let mut tx = self.begin_write().await?;
        let row = sqlx::query_as::<_, (i64, i64, Option<i64>)>(
            "SELECT attempts, max_attempts, deadline FROM jobs
             WHERE id = ? AND state = 'running' AND lease_owner = ? AND attempts = ?",
        )
        .bind(lease.job_id)
        .bind(&lease.owner)
        .bind(lease.attempt as i64)
        .fetch_optional(&mut *tx)
        .await?;
        let Some((attempts, max_attempts, deadline)) = row else {
            return Ok(None);
        };
        let outcome = match retry_at {
            Some(at) if attempts < max_attempts && deadline.is_none_or(|d| at <= d) => {
                FailOutcome::Retrying { run_at: at }
            }
            _ => FailOutcome::Dead,
        };
        let (state, run_at, finished) = match outcome {
            FailOutcome::Retrying { run_at } => ("retrying", run_at, None),
            FailOutcome::Dead => ("dead", now, Some(now)),
        };
        sqlx::query(
            "UPDATE jobs SET state = ?, run_at = ?, last_error = ?, lease_expires_at = NULL,
                 finished_at = ?, updated_at = ?
             WHERE id = ?",
        )
        .bind(state)
        .bind(run_at)
        .bind(error)
        .bind(finished)
        .bind(now)
        .bind(lease.job_id)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(Some(outcome))
    }

    async fn cancel_job(&self, id: i64, now: i64) -> Result<bool> {
        let r = sqlx::query(
            "UPDATE jobs SET state = 'cancelled', lease_expires_at = NULL, finished_at = ?,
                 updated_at = ?
             WHERE id = ? AND state IN ('queued', 'retrying', 'running')",
        )
        .bind(now)
        .bind(now)
        .bind(id)
        .execute(&self.writer)
        .await?;
        Ok(r.rows_affected() == 1)
    }

    async fn retry_job(&self, id: i64, now: i64) -> Result<bool> {
        let r = sqlx::query(
            "UPDATE jobs SET state = 'queued', run_at = ?1, attempts = 0, lease_owner = NULL,
                 lease_expires_at = NULL, finished_at = NULL, updated_at = ?1
             WHERE id = ?2 AND state IN ('dead', 'cancelled')
               AND NOT EXISTS (
                   SELECT 1 FROM jobs AS other
                   WHERE other.kind = jobs.kind AND other.idempotency_key = jobs.idempotency_key
                     AND other.state IN ('queued', 'running', 'retrying'))",
        )
        .bind(now)
        .bind(id)
        .execute(&self.writer)
        .await?;
        Ok(r.rows_affected() == 1)
    }

    async fn job(&self, id: i64) -> Result<Option<JobRow>> {
        sqlx::query("SELECT * FROM jobs WHERE id = ?")
            .bind(id)
            .fetch_optional(&self.reader)
            .await?
            .as_ref()
            .map(job_row)
            .transpose()
    }

    async fn list_jobs(&self, filter: &JobFilter) -> Result<Vec<JobRow>> {
        let limit = if filter.limit == 0 { 100 } else { filter.limit };
        let rows = sqlx::query(
            "SELECT * FROM jobs
             WHERE (?1 IS NULL OR kind = ?1) AND (?2 IS NULL OR state = ?2)
               AND (?3 IS NULL OR id < ?3)
             ORDER BY id DESC LIMIT ?4",
        )
        .bind(&filter.kind)
        .bind(filter.state.map(JobState::as_str))
        .bind(filter.before_id)
        .bind(limit as i64)
        .fetch_all(&self.reader)
        .await?;
        rows.iter().map(job_row).collect()
    }

    async fn prune_jobs(&self, before: i64) -> Result<u64> {
        let r = sqlx::query(
            "DELETE FROM jobs WHERE state IN ('succeeded', 'dead', 'cancelled')
               AND coalesce(finished_at, updated_at) < ?",
        )
        .bind(before)
        .execute(&self.writer)
        .await?;
        Ok(r.rows_affected())
    }

    async fn job_stats(&self, now: i64) -> Result<JobStats> {
        let mut stats = JobStats::default();
        let rows = sqlx::query_as::<_, (String, String, i64)>(
            "SELECT kind, state, count(*) FROM jobs GROUP BY kind, state",
        )
        .fetch_all(&self.reader)
        .await?;
        for (kind, state, n) in rows {
            stats
                .counts
                .entry(kind)
                .or_default()
                .insert(state, n as u64);
        }
        let oldest = sqlx::query_scalar::<_, Option<i64>>(
            "SELECT min(run_at) FROM jobs WHERE state IN ('queued', 'retrying') AND run_at <= ?",
        )
        .bind(now)
        .fetch_one(&self.reader)
        .await?;
        stats.oldest_due_age_ms = oldest.map(|t| now - t);
        Ok(stats)
    }
}

#[async_trait::async_trait]
impl crate::Metadata for SqliteMeta {
    async fn enqueue_batch(&self, jobs: &[NewJob], now: i64) -> Result<()> {
        let mut tx = self.begin_write().await?;
        for job in jobs {
            enqueue(&mut tx, job, now).await?;
        }
        tx.commit().await?;
        Ok(())
    }

    fn engine(&self) -> &'static str {
        "sqlite"
    }

    fn single_writer(&self) -> bool {
        true
    }

    async fn close(&self) {
        SqliteMeta::close(self).await;
    }
}
