//! Vulnerability scanning as durable jobs (issue 11):
//!
//! - `scan.image` ([`ScanImage`]) runs the scan `StartImageScan` (or scan on push)
//!   started: `Registry::run_image_scan`, then one `ECR Image Scan` event
//!   (ECR_REFERENCE.md §3) through the event rules, as an `event.fanout` job;
//! - `scan.on_push` ([`ScanOnPush`]) is enqueued by [`ScanHook`] in the transaction of
//!   every push that stored a new manifest; it starts a scan when the repository's
//!   `scanOnPush` is set;
//! - `scan.rematch` ([`Rematch`]) is enqueued by `berth admin vulndb import` when the
//!   import changed the database (key: the new generation): continuous scanning
//!   re-matches every stored inventory (no layer is read) and sends a new `ECR Image
//!   Scan` event for each image whose findings changed.
//!
//! Delivery is at least once: a retried `scan.image` may send its event twice.

use berth_events::{Event, ImageScan, Origin};
use berth_jobs::{JobError, JobHandler, JobInput, Waker};
use berth_meta::changes::{Change, ChangeHook};
use berth_meta::jobs::NewJob;
use berth_meta::Metadata;
use berth_registry::scanning::{ImageScan as StoredScan, SCAN_IMAGE};
use berth_registry::Registry;
use serde_json::{json, Value};
use std::sync::Arc;

/// Job kind: start a scan of a pushed image if its repository scans on push.
pub const SCAN_ON_PUSH: &str = "scan.on_push";
/// Job kind: re-match stored inventories after a vulnerability database import.
pub const SCAN_REMATCH: &str = "scan.rematch";

/// Enqueues [`SCAN_ON_PUSH`] for every push that stored a new manifest, in the push's
/// transaction; the job decides (the repository's `scanOnPush` is read when it runs).
pub struct ScanHook {
    /// Wakes this process's runner after a commit.
    pub waker: Option<Waker>,
}

impl ChangeHook for ScanHook {
    fn jobs(&self, change: &Change<'_>) -> Vec<NewJob> {
        match *change {
            Change::ManifestPut {
                repository,
                digest,
                manifest_existed: false,
                ..
            } => vec![NewJob::new(
                SCAN_ON_PUSH,
                json!({"repository": repository.as_str(), "digest": digest.to_string()}),
            )
            .idempotency_key(format!("{repository}@{digest}"))
            .max_attempts(5)],
            _ => Vec::new(),
        }
    }

    fn committed(&self) {
        if let Some(w) = &self.waker {
            w.wake();
        }
    }
}

fn field<'a>(job: &'a JobInput, name: &str) -> Result<&'a str, JobError> {
    job.payload
        .get(name)
        .and_then(Value::as_str)
        .ok_or_else(|| JobError::Permanent(format!("payload has no {name}: {}", job.payload)))
}

fn image(job: &JobInput) -> Result<(berth_core::RepositoryName, berth_core::Digest), JobError> {
    let repo = berth_core::RepositoryName::parse(field(job, "repository")?)
        .map_err(|e| JobError::Permanent(e.to_string()))?;
    let digest = field(job, "digest")?
        .parse()
        .map_err(|e: berth_core::DigestError| JobError::Permanent(e.to_string()))?;
    Ok((repo, digest))
}

/// The `ECR Image Scan` event of a finished scan, as an `event.fanout` job.
async fn scan_event(
    registry: &Registry,
    origin: &Origin,
    repo: &berth_core::RepositoryName,
    digest: &berth_core::Digest,
    scan: &StoredScan,
) -> NewJob {
    let tags = registry
        .image(repo, &berth_core::Reference::Digest(digest.clone()))
        .await
        .map(|i| i.tags.iter().map(|t| t.to_string()).collect())
        .unwrap_or_default();
    let detail = ImageScan {
        scan_status: scan.row.status.as_str().to_owned(),
        repository_name: repo.to_string(),
        finding_severity_counts: scan
            .severity_counts()
            .into_iter()
            .map(|(s, n)| (s.as_str().to_owned(), n))
            .collect(),
        image_digest: digest.to_string(),
        image_tags: tags,
    };
    let event = Event::new(&detail, origin, time::OffsetDateTime::now_utc());
    let text = serde_json::to_string(&event).unwrap_or_default();
    NewJob::new(
        berth_eventbus::FANOUT,
        json!({ "event": text, "event_id": event.id }),
    )
}

/// Handler of [`SCAN_IMAGE`].
pub struct ScanImage {
    /// The registry (blob and metadata stores).
    pub registry: Registry,
    /// The job queue, for the event.
    pub meta: Arc<dyn Metadata>,
    /// Account and region of the events.
    pub origin: Origin,
}

#[async_trait::async_trait]
impl JobHandler for ScanImage {
    async fn run(&self, job: JobInput) -> Result<Value, JobError> {
        let (repo, digest) = image(&job)?;
        let started_at = job
            .payload
            .get("startedAt")
            .and_then(Value::as_i64)
            .ok_or_else(|| {
                JobError::Permanent(format!("payload has no startedAt: {}", job.payload))
            })?;
        let scan = match self
            .registry
            .run_image_scan(&repo, &digest, started_at)
            .await
        {
            Ok(Some(scan)) => scan,
            Ok(None) => return Ok(json!({"superseded": true})),
            Err(e) => {
                return Err(JobError::Retryable(format!(
                    "scanning {repo}@{digest}: {e}"
                )))
            }
        };
        let event = scan_event(&self.registry, &self.origin, &repo, &digest, &scan).await;
        let now = berth_jobs::Clock::now_ms(&berth_jobs::SystemClock);
        self.meta
            .enqueue(&event, now)
            .await
            .map_err(|e| JobError::Retryable(format!("enqueueing the scan event: {e}")))?;
        Ok(json!({"status": scan.row.status.as_str(), "findings": scan.findings.len()}))
    }
}

/// Handler of [`SCAN_ON_PUSH`].
pub struct ScanOnPush(pub Registry);

#[async_trait::async_trait]
impl JobHandler for ScanOnPush {
    async fn run(&self, job: JobInput) -> Result<Value, JobError> {
        let (repo, digest) = image(&job)?;
        // The repository's own scanOnPush and the registry scanning configuration's
        // rules decide (berth_core::registry_scanning).
        let scanning = match self.0.repository_scanning(&repo).await {
            Ok((_, scanning)) => scanning,
            Err(berth_registry::RegistryError::NameUnknown(_)) => {
                return Ok(json!({"repository": null}))
            }
            Err(e) => return Err(JobError::Retryable(e.to_string())),
        };
        if !scanning.frequency.scans_on_push() {
            return Ok(json!({"scanFrequency": scanning.frequency.as_str()}));
        }
        match self
            .0
            .start_image_scan(&repo, &berth_core::Reference::Digest(digest))
            .await
        {
            Ok((_, start)) => Ok(json!({"started": format!("{start:?}")})),
            Err(berth_registry::RegistryError::ManifestUnknown(_)) => Ok(json!({"image": null})),
            Err(e) => Err(JobError::Retryable(e.to_string())),
        }
    }
}

/// Handler of [`SCAN_REMATCH`].
pub struct Rematch {
    /// The registry.
    pub registry: Registry,
    /// The job queue, for the events.
    pub meta: Arc<dyn Metadata>,
    /// Account and region of the events.
    pub origin: Origin,
}

#[async_trait::async_trait]
impl JobHandler for Rematch {
    async fn run(&self, _job: JobInput) -> Result<Value, JobError> {
        let changed = self
            .registry
            .rematch_scans()
            .await
            .map_err(|e| JobError::Retryable(format!("re-matching stored inventories: {e}")))?;
        let now = berth_jobs::Clock::now_ms(&berth_jobs::SystemClock);
        for c in &changed {
            let event = scan_event(
                &self.registry,
                &self.origin,
                &c.repository,
                &c.digest,
                &c.scan,
            )
            .await;
            self.meta
                .enqueue(&event, now)
                .await
                .map_err(|e| JobError::Retryable(format!("enqueueing a scan event: {e}")))?;
        }
        Ok(json!({"changed": changed.len()}))
    }
}

/// The `scan.rematch` job of database generation `generation`.
pub fn rematch_job(generation: i64) -> NewJob {
    NewJob::new(SCAN_REMATCH, json!({"generation": generation}))
        .idempotency_key(generation.to_string())
        .max_attempts(5)
}

/// `SCAN_IMAGE`, re-exported for the runner's registration.
pub const SCAN_IMAGE_KIND: &str = SCAN_IMAGE;
