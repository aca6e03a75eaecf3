//! The job queue's SQL on PostgreSQL.
//!
//! PLACEHOLDER in PG-A's branch: only [`enqueue`], which the content writes of
//! [`crate::PgMeta`] call inside their transactions. PG-B's `postgres_jobs.rs` (the whole
//! [`crate::JobStore`] and [`crate::Metadata`] for [`crate::PgMeta`]) replaces this file
//! at merge; it keeps this function's signature and semantics.

use crate::jobs::{Enqueued, NewJob};
use crate::Result;
use sqlx::{Postgres, Transaction};

/// Enqueues `job` inside the caller's transaction, so the job exists if and only if the
/// caller's state change commits. Idempotent while a job of the same kind and key is
/// queued, retrying or running: returns [`Enqueued::Existing`] and writes nothing.
/// Same semantics as [`crate::sqlite_jobs::enqueue`].
///
/// Concurrency: `ON CONFLICT … DO NOTHING` against the partial unique index
/// `jobs_active_key` makes a concurrent insert of the same key wait for the other
/// transaction and then do nothing (it committed) or insert (it rolled back). The
/// follow-up `SELECT` runs with a new READ COMMITTED snapshot, so it sees the committed
/// row; if that job finished in between (no active row any more), the insert is tried
/// again. Errors: the database failed.
pub async fn enqueue(
    tx: &mut Transaction<'_, Postgres>,
    job: &NewJob,
    now: i64,
) -> Result<Enqueued> {
    let payload = job.payload.to_string();
    loop {
        let inserted = sqlx::query_scalar::<_, i64>(
            "INSERT INTO jobs (kind, payload, idempotency_key, state, run_at, max_attempts, deadline,
                               created_at, updated_at)
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
        .bind(job.max_attempts.max(1) as i64)
        .bind(job.deadline)
        .bind(now)
        .fetch_optional(&mut **tx)
        .await?;
        if let Some(id) = inserted {
            return Ok(Enqueued::Created(id));
        }
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
