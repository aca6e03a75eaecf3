//! Periodic housekeeping as durable jobs (issue 8: one way background work happens):
//! `housekeeping.expire_uploads` cancels idle upload sessions and removes their data,
//! `housekeeping.prune_audit` deletes audit records past their retention,
//! `housekeeping.prune_jobs` deletes finished jobs past theirs, `housekeeping.gc` runs
//! online garbage collection (`berth_registry::gc`; every `gc_period_secs`, unless
//! `gc_enabled` is false). The janitor's
//! tick only enqueues them ([`periodic`]), with the idempotency key `periodic` (a no-op
//! while one is queued, retrying or running), so they are retried on failure, visible in
//! `berth admin jobs`, and counted on `/metrics` like every other job.
//!
//! Several nodes on one database all run a janitor. So that N nodes do not run each job
//! N times per period, a tick enqueues the next run at the next wall-clock boundary of
//! the job's period (a multiple of the period since the epoch): the first node to tick
//! creates that queued job, every other node's enqueue finds it pending and does
//! nothing, and after it ran the next tick schedules the following boundary — one run
//! per period for the whole cluster (clock skew between nodes can add one). A process's
//! first tick asks for a run now instead, so a restarted node cleans up at once (again a
//! no-op if another node's run is already queued).
//!
//! Recording pull times (`Registry::flush_pulls`) stays on the janitor's tick: the pulls
//! are in this process's memory, and a job may be claimed by any process.

use berth_iam::Iam;
use berth_jobs::{JobError, JobHandler, JobInput};
use berth_meta::jobs::NewJob;
use berth_registry::Registry;
use serde_json::{json, Value};
use std::time::Duration;

/// Job kind: cancel idle upload sessions.
pub const EXPIRE_UPLOADS: &str = "housekeeping.expire_uploads";
/// Job kind: prune the audit trail.
pub const PRUNE_AUDIT: &str = "housekeeping.prune_audit";
/// Job kind: delete finished jobs past their retention.
pub const PRUNE_JOBS: &str = "housekeeping.prune_jobs";

/// Job kind: online garbage collection of unreferenced blobs.
pub const GC: &str = "housekeeping.gc";

/// The periodic job of `kind` (idempotency key `periodic`, 3 attempts), due at the next
/// multiple of `period` after `now` (epoch ms), or now when `immediately`.
pub fn periodic(kind: &str, period: Duration, now: i64, immediately: bool) -> NewJob {
    let job = NewJob::new(kind, json!({}))
        .idempotency_key("periodic")
        .max_attempts(3);
    if immediately {
        return job;
    }
    let period = (period.as_millis() as i64).max(1);
    job.run_at((now.div_euclid(period) + 1) * period)
}

/// Handler of [`EXPIRE_UPLOADS`].
pub struct ExpireUploads(pub Registry);

#[async_trait::async_trait]
impl JobHandler for ExpireUploads {
    async fn run(&self, _job: JobInput) -> Result<Value, JobError> {
        let n = self
            .0
            .expire_uploads()
            .await
            .map_err(|e| JobError::Retryable(format!("expiring upload sessions: {e}")))?;
        if n > 0 {
            tracing::info!(expired = n, "removed idle upload sessions");
        }
        Ok(json!({ "expired": n }))
    }
}

/// Handler of [`PRUNE_AUDIT`]: records older than the retention.
pub struct PruneAudit {
    /// The identity service holding the audit trail.
    pub iam: Iam,
    /// How long records are kept.
    pub retention: Duration,
}

#[async_trait::async_trait]
impl JobHandler for PruneAudit {
    async fn run(&self, _job: JobInput) -> Result<Value, JobError> {
        let n = self
            .iam
            .prune_audit(self.retention)
            .await
            .map_err(|e| JobError::Retryable(format!("pruning the audit trail: {e}")))?;
        if n > 0 {
            tracing::info!(pruned = n, "pruned old audit records");
        }
        Ok(json!({ "pruned": n }))
    }
}

/// Handler of [`PRUNE_JOBS`]: finished jobs older than the retention.
pub struct PruneJobs {
    /// The job queue.
    pub jobs: std::sync::Arc<dyn berth_meta::JobStore>,
    /// How long finished jobs are kept.
    pub retention: Duration,
}

#[async_trait::async_trait]
impl JobHandler for PruneJobs {
    async fn run(&self, _job: JobInput) -> Result<Value, JobError> {
        let now = berth_jobs::Clock::now_ms(&berth_jobs::SystemClock);
        let before = now.saturating_sub(self.retention.as_millis() as i64);
        let n = self
            .jobs
            .prune_jobs(before)
            .await
            .map_err(|e| JobError::Retryable(format!("pruning finished jobs: {e}")))?;
        if n > 0 {
            tracing::info!(pruned = n, "pruned finished jobs");
        }
        Ok(json!({ "pruned": n }))
    }
}

/// Handler of [`GC`]: one collection with the configured grace window; its result is
/// the report (counts, bytes, seconds) without the item list.
pub struct GarbageCollect {
    /// The service whose stores are collected.
    pub registry: Registry,
    /// [`berth_registry::gc::GcOptions::grace`].
    pub grace: Duration,
}

#[async_trait::async_trait]
impl JobHandler for GarbageCollect {
    async fn run(&self, _job: JobInput) -> Result<Value, JobError> {
        let opts = berth_registry::gc::GcOptions {
            grace: self.grace,
            dry_run: false,
            list: false,
        };
        let report = self
            .registry
            .collect_garbage(&opts)
            .await
            .map_err(|e| JobError::Retryable(format!("garbage collection: {e}")))?;
        tracing::info!(
            blobs = report.blobs,
            strays = report.strays,
            resumed = report.resumed,
            bytes = report.bytes,
            failed = report.failed,
            seconds = report.duration_secs,
            "garbage collection finished"
        );
        serde_json::to_value(&report).map_err(|e| JobError::Permanent(e.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // Several nodes ticking in one period all ask for the same run (so the idempotency
    // key makes it one job), and it is the next boundary, never the past.
    #[test]
    fn periodic_runs_are_aligned_to_the_period() {
        let p = Duration::from_secs(60);
        let a = periodic(EXPIRE_UPLOADS, p, 120_001, false);
        let b = periodic(EXPIRE_UPLOADS, p, 179_999, false);
        assert_eq!(a.run_at, Some(180_000));
        assert_eq!(b.run_at, Some(180_000));
        assert_eq!(
            periodic(EXPIRE_UPLOADS, p, 180_000, false).run_at,
            Some(240_000)
        );
        assert_eq!(a.idempotency_key.as_deref(), Some("periodic"));
        assert_eq!(periodic(PRUNE_JOBS, p, 5, true).run_at, None);
    }
}
