//! The job queue's SQL on PostgreSQL ([`JobStore`] for [`PgMeta`]), and [`PgMeta`]'s
//! [`crate::Metadata`] methods (group-committed enqueue, engine name).
//!
//! The statements are those of [`crate::sqlite_jobs`], ported; what SQLite got from its
//! single writer (`BEGIN IMMEDIATE`), PostgreSQL gets from row locks, because several
//! nodes run these statements at `READ COMMITTED` at the same time:
//!
//! - **Claiming** selects candidates with `FOR UPDATE SKIP LOCKED`: a row another claimer
//!   has locked is skipped, not waited for, so no job is leased to two owners and
//!   claimers do not queue behind each other. The outer `UPDATE` re-checks its `WHERE`
//!   against the newest row version (PostgreSQL re-evaluates it on locked rows).
//! - **Reaping** (jobs that can no longer run become dead) also locks with
//!   `SKIP LOCKED`: two claimers never update the same set of rows in different orders
//!   (no deadlock), and a row being reaped by one is left to it.
//! - **Enqueueing** with a key relies on the partial unique index `jobs_active_key`:
//!   `INSERT … ON CONFLICT DO NOTHING` waits for a concurrent insert of the same key and
//!   then does nothing. The follow-up `SELECT` of the existing job can find none if that
//!   job finished in between (SQLite cannot interleave there); the insert is then retried.
//! - **Failing** locks the job (`SELECT … FOR UPDATE`) before deciding retrying/dead, so
//!   the decision is made on the row it writes.
//! - **Retrying** a dead job checks that no job with its key is pending in the same
//!   statement; a concurrent enqueue of that key that commits first makes the `UPDATE`
//!   hit `jobs_active_key` (unique violation), which means exactly "another job with its
//!   key is pending": `false`, as the check would have said.
//! - **Group commit** ([`PgMeta::enqueue_batch`]) retries the whole transaction on a
//!   deadlock, which two batches inserting the same keys in different orders can meet.

use crate::jobs::{
    ClaimedJob, Completion, Enqueued, FailOutcome, JobFilter, JobRow, JobState, JobStats, JobStore,
    Lease, NewJob,
};
use crate::{MetaError, PgMeta, Result};
use sqlx::postgres::PgRow;
use sqlx::{Postgres, Row, Transaction};

/// How often a transaction that PostgreSQL aborted for a deadlock or a serialization
/// failure is run again before the error is returned.
const RETRIES: u32 = 5;

/// Enqueues `job` inside the caller's transaction, so the job exists if and only if the
/// caller's state change commits (issue 8; the PostgreSQL twin of
/// [`crate::sqlite_jobs::enqueue`]). Idempotent while a job of the same kind and key is
/// queued, retrying or running: returns [`Enqueued::Existing`] and writes nothing. A
/// concurrent transaction enqueueing the same key makes this wait until it commits or
/// rolls back. Errors: the database failed.
pub async fn enqueue(
    tx: &mut Transaction<'_, Postgres>,
    job: &NewJob,
    now: i64,
) -> Result<Enqueued> {
    let payload = job.payload.to_string();
    loop {
        let inserted = sqlx::query_scalar::<_, i64>(
            "INSERT INTO jobs (kind, payload, idempotency_key, state, run_at, max_attempts,
                               deadline, created_at, updated_at)
             VALUES ($1, $2, $3, 'queued', $4, $5, $6, $7, $7)
             ON CONFLICT (kind, idempotency_key)
                 WHERE idempotency_key IS NOT NULL AND state IN ('queued', 'running', 'retrying')
             DO NOTHING
             RETURNING id",
        )
        .bind(&job.kind)
        .bind(&payload)
        .bind(&job.idempotency_key)
        .bind(job.run_at.unwrap_or(now))
        .bind(i64::from(job.max_attempts.max(1)))
        .bind(job.deadline)
        .bind(now)
        .fetch_optional(&mut **tx)
        .await?;
        if let Some(id) = inserted {
            return Ok(Enqueued::Created(id));
        }
        // READ COMMITTED: this statement sees the conflicting job once its transaction
        // committed. If it finished meanwhile, the key is free again: insert anew.
        let existing = sqlx::query_scalar::<_, i64>(
            "SELECT id FROM jobs WHERE kind = $1 AND idempotency_key = $2
               AND state IN ('queued', 'running', 'retrying')",
        )
        .bind(&job.kind)
        .bind(&job.idempotency_key)
        .fetch_optional(&mut **tx)
        .await?;
        if let Some(id) = existing {
            return Ok(Enqueued::Existing(id));
        }
    }
}

/// Whether PostgreSQL aborted the statement for a deadlock (`40P01`) or a serialization
/// failure (`40001`): running the transaction again is the documented remedy.
fn retryable(e: &MetaError) -> bool {
    matches!(e, MetaError::Db(sqlx::Error::Database(d))
        if matches!(d.code().as_deref(), Some("40P01") | Some("40001")))
}

/// Whether the error is a unique violation (`23505`).
fn unique_violation(e: &sqlx::Error) -> bool {
    matches!(e, sqlx::Error::Database(d) if d.code().as_deref() == Some("23505"))
}

fn json(column: &str, s: String) -> Result<serde_json::Value> {
    serde_json::from_str(&s)
        .map_err(|e| MetaError::Corrupt(format!("stored job {column} is not JSON: {e}")))
}

fn count(n: i64) -> u32 {
    u32::try_from(n).unwrap_or(u32::MAX)
}

fn job_row(r: &PgRow) -> Result<JobRow> {
    let state: String = r.try_get("state")?;
    Ok(JobRow {
        id: r.try_get("id")?,
        kind: r.try_get("kind")?,
        payload: json("payload", r.try_get("payload")?)?,
        idempotency_key: r.try_get("idempotency_key")?,
        state: state.parse().map_err(MetaError::Corrupt)?,
        run_at: r.try_get("run_at")?,
        attempts: count(r.try_get("attempts")?),
        max_attempts: count(r.try_get("max_attempts")?),
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

impl PgMeta {
    /// Enqueues `jobs` in one transaction (group commit), each with
    /// [`JobStore::enqueue`]'s idempotency; the whole transaction is run again if
    /// PostgreSQL aborts it for a deadlock. `now` is epoch ms. Errors: the database
    /// failed (then none is enqueued).
    pub async fn enqueue_batch(&self, jobs: &[NewJob], now: i64) -> Result<()> {
        let mut attempt = 0;
        loop {
            let run = async {
                let mut tx = self.begin_write().await?;
                for job in jobs {
                    enqueue(&mut tx, job, now).await?;
                }
                tx.commit().await?;
                Ok(())
            };
            match run.await {
                Err(e) if retryable(&e) && attempt < RETRIES => attempt += 1,
                other => return other,
            }
        }
    }
}

#[async_trait::async_trait]
impl JobStore for PgMeta {
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
        // every time, e.g. a job that crashes the process), or a passed deadline. Rows
        // another claimer holds are skipped (see the module doc).
        sqlx::query(
            "UPDATE jobs SET state = 'dead', finished_at = $1, updated_at = $1,
                 lease_expires_at = NULL,
                 last_error = CASE WHEN state = 'running'
                     THEN 'lease expired on attempt ' || attempts || ' of ' || max_attempts
                          || ' (worker lost)'
                     ELSE coalesce(last_error, 'deadline passed before the job could run') END
             WHERE id IN (
                 SELECT id FROM jobs
                 WHERE kind = $2 AND (
                     (state = 'running' AND lease_expires_at <= $1
                        AND (attempts >= max_attempts OR deadline <= $1))
                     OR (state IN ('queued', 'retrying') AND deadline <= $1))
                 FOR UPDATE SKIP LOCKED)",
        )
        .bind(now)
        .bind(kind)
        .execute(&mut *tx)
        .await?;
        let rows = sqlx::query(
            "UPDATE jobs SET state = 'running', attempts = attempts + 1, lease_owner = $1,
                 lease_expires_at = $2, updated_at = $3
             WHERE id IN (
                 SELECT id FROM jobs
                 WHERE kind = $4 AND (
                     (state IN ('queued', 'retrying') AND run_at <= $3)
                     OR (state = 'running' AND lease_expires_at <= $3))
                 ORDER BY run_at, id
                 LIMIT $5
                 FOR UPDATE SKIP LOCKED)
             RETURNING id, kind, payload, idempotency_key, attempts, max_attempts, deadline,
                       lease_expires_at, created_at, run_at",
        )
        .bind(owner)
        .bind(now + lease_ms)
        .bind(now)
        .bind(kind)
        .bind(i64::from(limit))
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
                            attempt: count(r.try_get("attempts")?),
                        },
                        kind: r.try_get("kind")?,
                        payload: json("payload", r.try_get("payload")?)?,
                        idempotency_key: r.try_get("idempotency_key")?,
                        max_attempts: count(r.try_get("max_attempts")?),
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
        // One conditional UPDATE: PostgreSQL re-checks the lease on the newest row
        // version, so a heartbeat racing a re-claim either extends or is refused.
        let done = sqlx::query(
            "UPDATE jobs SET lease_expires_at = $1, updated_at = $2
             WHERE id = $3 AND state = 'running' AND lease_owner = $4 AND attempts = $5",
        )
        .bind(now + lease_ms)
        .bind(now)
        .bind(lease.job_id)
        .bind(&lease.owner)
        .bind(i64::from(lease.attempt))
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    async fn complete(&self, done: &[Completion], now: i64) -> Result<Vec<bool>> {
        let mut tx = self.begin_write().await?;
        let mut applied = Vec::with_capacity(done.len());
        for c in done {
            let r = sqlx::query(
                "UPDATE jobs SET state = 'succeeded', result = $1, lease_expires_at = NULL,
                     finished_at = $2, updated_at = $2
                 WHERE id = $3 AND state = 'running' AND lease_owner = $4 AND attempts = $5",
            )
            .bind(c.result.to_string())
            .bind(now)
            .bind(c.lease.job_id)
            .bind(&c.lease.owner)
            .bind(i64::from(c.lease.attempt))
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
        // FOR UPDATE: no claimer or canceller changes the row between this check of the
        // lease and the write below.
        let row = sqlx::query_as::<_, (i64, i64, Option<i64>)>(
            "SELECT attempts, max_attempts, deadline FROM jobs
             WHERE id = $1 AND state = 'running' AND lease_owner = $2 AND attempts = $3
             FOR UPDATE",
        )
        .bind(lease.job_id)
        .bind(&lease.owner)
        .bind(i64::from(lease.attempt))
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
            "UPDATE jobs SET state = $1, run_at = $2, last_error = $3, lease_expires_at = NULL,
                 finished_at = $4, updated_at = $5
             WHERE id = $6",
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
            "UPDATE jobs SET state = 'cancelled', lease_expires_at = NULL, finished_at = $1,
                 updated_at = $1
             WHERE id = $2 AND state IN ('queued', 'retrying', 'running')",
        )
        .bind(now)
        .bind(id)
        .execute(&self.pool)
        .await?;
        Ok(r.rows_affected() == 1)
    }

    async fn retry_job(&self, id: i64, now: i64) -> Result<bool> {
        let r = sqlx::query(
            "UPDATE jobs SET state = 'queued', run_at = $1, attempts = 0, lease_owner = NULL,
                 lease_expires_at = NULL, finished_at = NULL, updated_at = $1
             WHERE id = $2 AND state IN ('dead', 'cancelled')
               AND NOT EXISTS (
                   SELECT 1 FROM jobs AS other
                   WHERE other.kind = jobs.kind AND other.idempotency_key = jobs.idempotency_key
                     AND other.state IN ('queued', 'running', 'retrying'))",
        )
        .bind(now)
        .bind(id)
        .execute(&self.pool)
        .await;
        match r {
            Ok(r) => Ok(r.rows_affected() == 1),
            // A job with the same key became pending concurrently (module doc).
            Err(e) if unique_violation(&e) => Ok(false),
            Err(e) => Err(e.into()),
        }
    }

    async fn job(&self, id: i64) -> Result<Option<JobRow>> {
        sqlx::query("SELECT * FROM jobs WHERE id = $1")
            .bind(id)
            .fetch_optional(&self.pool)
            .await?
            .as_ref()
            .map(job_row)
            .transpose()
    }

    async fn list_jobs(&self, filter: &JobFilter) -> Result<Vec<JobRow>> {
        let limit = if filter.limit == 0 { 100 } else { filter.limit };
        let rows = sqlx::query(
            "SELECT * FROM jobs
             WHERE ($1::TEXT IS NULL OR kind = $1) AND ($2::TEXT IS NULL OR state = $2)
               AND ($3::BIGINT IS NULL OR id < $3)
             ORDER BY id DESC LIMIT $4",
        )
        .bind(&filter.kind)
        .bind(filter.state.map(JobState::as_str))
        .bind(filter.before_id)
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(job_row).collect()
    }

    async fn prune_jobs(&self, before: i64) -> Result<u64> {
        let r = sqlx::query(
            "DELETE FROM jobs WHERE state IN ('succeeded', 'dead', 'cancelled')
               AND coalesce(finished_at, updated_at) < $1",
        )
        .bind(before)
        .execute(&self.pool)
        .await?;
        Ok(r.rows_affected())
    }

    async fn job_stats(&self, now: i64) -> Result<JobStats> {
        let mut stats = JobStats::default();
        let rows = sqlx::query_as::<_, (String, String, i64)>(
            "SELECT kind, state, count(*) FROM jobs GROUP BY kind, state",
        )
        .fetch_all(&self.pool)
        .await?;
        for (kind, state, n) in rows {
            stats
                .counts
                .entry(kind)
                .or_default()
                .insert(state, u64::try_from(n).unwrap_or(0));
        }
        let oldest = sqlx::query_scalar::<_, Option<i64>>(
            "SELECT min(run_at) FROM jobs WHERE state IN ('queued', 'retrying') AND run_at <= $1",
        )
        .bind(now)
        .fetch_one(&self.pool)
        .await?;
        stats.oldest_due_age_ms = oldest.map(|t| now - t);
        Ok(stats)
    }
}

#[async_trait::async_trait]
impl crate::Metadata for PgMeta {
    async fn enqueue_batch(&self, jobs: &[NewJob], now: i64) -> Result<()> {
        PgMeta::enqueue_batch(self, jobs, now).await
    }

    fn engine(&self) -> &'static str {
        "postgres"
    }

    fn single_writer(&self) -> bool {
        false
    }

    async fn close(&self) {
        PgMeta::close(self).await;
    }
}
