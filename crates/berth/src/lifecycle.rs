//! Lifecycle policies as durable jobs (issue 12), scheduled like housekeeping
//! (`crate::housekeeping`):
//!
//! - `lifecycle.schedule` is enqueued by the janitor's tick at the next boundary of
//!   `lifecycle_interval_secs` (idempotency key `periodic`, so N nodes make one job per
//!   period); it enqueues one `lifecycle.evaluate` job per repository that has a policy
//!   and is not under an excluded prefix (key: the repository name, so a repository is
//!   never evaluated twice at once);
//! - `lifecycle.evaluate` ([`Evaluate`]) runs `Registry::evaluate_lifecycle`: the
//!   expired images are deleted through the registry's delete path, each deletion
//!   enqueueing its `ECR Image Action` DELETE events in its own transaction;
//! - `lifecycle.preview` ([`Preview`]) computes a preview `StartLifecyclePolicyPreview`
//!   started (enqueued with the preview row).
//!
//! `berth admin lifecycle run` enqueues `lifecycle.evaluate` jobs the same way
//! ([`enqueue_runs`]), for every repository with a policy or one named.

use berth_jobs::{JobError, JobHandler, JobInput};
use berth_meta::jobs::NewJob;
use berth_meta::Metadata;
use berth_registry::lifecycle::{excluded_by, LifecycleRun, LIFECYCLE_EVALUATE};
use berth_registry::Registry;
use serde_json::{json, Value};
use std::sync::Arc;

pub use berth_registry::lifecycle::LIFECYCLE_PREVIEW;

/// Job kind: enqueue one `lifecycle.evaluate` job per repository with a policy.
pub const LIFECYCLE_SCHEDULE: &str = "lifecycle.schedule";

/// The `lifecycle.evaluate` job of `repository` (idempotency key: its name).
pub fn evaluate_job(repository: &str) -> NewJob {
    NewJob::new(LIFECYCLE_EVALUATE, json!({ "repository": repository }))
        .idempotency_key(repository)
        .max_attempts(3)
}

/// What [`enqueue_runs`] did for one repository.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Planned {
    /// A `lifecycle.evaluate` job was enqueued (or one was pending already): its ID.
    Enqueued(i64),
    /// The repository is under this excluded prefix: lifecycle never touches it.
    Excluded(String),
    /// The repository has no lifecycle policy.
    NoPolicy,
}

impl Planned {
    /// As `berth admin lifecycle run` prints it.
    pub fn to_json(&self, repository: &str) -> Value {
        match self {
            Planned::Enqueued(id) => {
                json!({"repository": repository, "job": id, "kind": LIFECYCLE_EVALUATE})
            }
            Planned::Excluded(p) => json!({
                "repository": repository,
                "excluded": true,
                "reason": format!("the repository is under the excluded prefix {p:?} (lifecycle_exclude_prefixes): lifecycle policies never expire its images"),
            }),
            Planned::NoPolicy => {
                json!({"repository": repository, "skipped": true, "reason": "the repository has no lifecycle policy"})
            }
        }
    }
}

/// Enqueues a `lifecycle.evaluate` job for `only` (when given) or for every repository
/// with a policy, except excluded ones; returns what was done per repository, in name
/// order. `now` is epoch ms. Errors: `only` names a repository that does not exist; the
/// database failed.
pub async fn enqueue_runs(
    meta: &dyn Metadata,
    exclude: &[String],
    only: Option<&berth_core::RepositoryName>,
    now: i64,
) -> anyhow::Result<Vec<(String, Planned)>> {
    let mut names = Vec::new();
    match only {
        Some(r) => {
            anyhow::ensure!(
                meta.repository_exists(r).await?,
                "repository {r} does not exist in this registry"
            );
            names.push(r.to_string())
        }
        None => {
            let mut after: Option<String> = None;
            loop {
                let page = meta.lifecycle_repositories(after.as_deref(), 500).await?;
                let full = page.len() == 500;
                after = page.last().cloned();
                names.extend(page);
                if !full {
                    break;
                }
            }
        }
    }
    let mut out = Vec::with_capacity(names.len());
    for name in names {
        if let Some(p) = excluded_by(exclude, &name) {
            out.push((name, Planned::Excluded(p.to_string())));
            continue;
        }
        let repo = berth_core::RepositoryName::parse(&name)?;
        if meta.lifecycle_policy(&repo).await?.is_none() {
            out.push((name, Planned::NoPolicy));
            continue;
        }
        let id = meta.enqueue(&evaluate_job(&name), now).await?.id();
        out.push((name, Planned::Enqueued(id)));
    }
    Ok(out)
}

/// Handler of [`LIFECYCLE_SCHEDULE`].
pub struct Schedule {
    /// The metadata store (policies and the job queue).
    pub meta: Arc<dyn Metadata>,
    /// `lifecycle_exclude_prefixes`.
    pub exclude: Vec<String>,
}

#[async_trait::async_trait]
impl JobHandler for Schedule {
    async fn run(&self, _job: JobInput) -> Result<Value, JobError> {
        let now = berth_jobs::Clock::now_ms(&berth_jobs::SystemClock);
        let planned = enqueue_runs(self.meta.as_ref(), &self.exclude, None, now)
            .await
            .map_err(|e| JobError::Retryable(format!("scheduling lifecycle runs: {e}")))?;
        let mut enqueued = 0;
        for (repo, p) in &planned {
            match p {
                Planned::Enqueued(_) => enqueued += 1,
                Planned::Excluded(prefix) => tracing::info!(
                    repository = %repo,
                    prefix = %prefix,
                    "lifecycle: repository excluded by lifecycle_exclude_prefixes; not evaluated"
                ),
                Planned::NoPolicy => {}
            }
        }
        Ok(json!({ "enqueued": enqueued, "repositories": planned.len() }))
    }
}

fn repository(job: &JobInput) -> Result<berth_core::RepositoryName, JobError> {
    job.payload
        .get("repository")
        .and_then(Value::as_str)
        .and_then(|r| berth_core::RepositoryName::parse(r).ok())
        .ok_or_else(|| JobError::Permanent(format!("payload names no repository: {}", job.payload)))
}

/// Handler of `lifecycle.evaluate`.
pub struct Evaluate(pub Registry);

#[async_trait::async_trait]
impl JobHandler for Evaluate {
    async fn run(&self, job: JobInput) -> Result<Value, JobError> {
        let repo = repository(&job)?;
        match self.0.evaluate_lifecycle(&repo).await {
            Ok(LifecycleRun::Excluded(prefix)) => Ok(json!({"excluded": prefix})),
            Ok(LifecycleRun::NoPolicy) => Ok(json!({"policy": null})),
            Ok(LifecycleRun::Evaluated {
                expired,
                skipped,
                evaluated_at,
            }) => Ok(json!({
                "expired": expired.iter().map(|i| json!({
                    "imageDigest": i.digest,
                    "imageTags": i.tags,
                    "appliedRulePriority": i.rule_priority,
                })).collect::<Vec<_>>(),
                "skipped": skipped.iter().map(|(d, why)| json!({"imageDigest": d, "reason": why})).collect::<Vec<_>>(),
                "evaluatedAt": evaluated_at,
            })),
            Err(berth_registry::RegistryError::NameUnknown(_)) => Ok(json!({"repository": null})),
            Err(e) => Err(JobError::Retryable(format!(
                "evaluating the lifecycle policy of {repo}: {e}"
            ))),
        }
    }
}

/// Handler of [`LIFECYCLE_PREVIEW`].
pub struct Preview(pub Registry);

#[async_trait::async_trait]
impl JobHandler for Preview {
    async fn run(&self, job: JobInput) -> Result<Value, JobError> {
        let repo = repository(&job)?;
        let started_at = job
            .payload
            .get("startedAt")
            .and_then(Value::as_i64)
            .ok_or_else(|| {
                JobError::Permanent(format!("payload has no startedAt: {}", job.payload))
            })?;
        match self.0.run_lifecycle_preview(&repo, started_at).await {
            Ok(n) => Ok(json!({ "expiring": n })),
            Err(e) => Err(JobError::Retryable(format!(
                "computing the lifecycle preview of {repo}: {e}"
            ))),
        }
    }
}
