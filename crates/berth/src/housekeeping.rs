//! Periodic housekeeping as durable jobs (issue 8: one way background work happens):
//! `housekeeping.expire_uploads` cancels idle upload sessions and removes their data,
//! `housekeeping.prune_audit` deletes audit records past their retention,
//! `housekeeping.prune_jobs` deletes finished jobs past theirs. The janitor's
//! tick only enqueues them, with the idempotency key `periodic` (a no-op while one is
//! pending or running), so they are retried on failure, visible in `berth admin jobs`,
//! and counted on `/metrics` like every other job.
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

/// The periodic job of `kind` (idempotency key `periodic`, 3 attempts).
pub fn periodic(kind: &str) -> NewJob {
    NewJob::new(kind, json!({}))
        .idempotency_key("periodic")
        .max_attempts(3)
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
