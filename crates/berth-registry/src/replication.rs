//! The registry's replication configuration and image replication status (issue 9), on
//! the registry's own paths: `PutReplicationConfiguration` / `DescribeRegistry` and
//! `DescribeImageReplicationStatus`.
//!
//! The configuration is validated by `berth_core::replication`, stored through
//! `berth_meta::ReplicationStore`, and held in memory ([`ReplicationConfigCell`]) for
//! the replication hook, which runs inside a push's transaction and may not read the
//! database: a put updates this process's cell at once, and `berth serve` reloads it
//! every second for changes made on other nodes. Statuses are the image's
//! `replication.image` jobs (`berth_meta::replication`).

use crate::{Registry, RegistryError, Result};
use berth_core::replication::ReplicationConfiguration;
use berth_core::{Digest, Reference, RepositoryName};
use berth_meta::jobs::JobState;
use std::sync::{Arc, RwLock};

/// The current replication configuration, shared by the registry (which replaces it on
/// a put or reload) and the replication hook (which reads it on every push).
#[derive(Debug, Clone, Default)]
pub struct ReplicationConfigCell(Arc<RwLock<Arc<ReplicationConfiguration>>>);

impl ReplicationConfigCell {
    /// The configuration now.
    pub fn get(&self) -> Arc<ReplicationConfiguration> {
        self.0.read().map(|g| g.clone()).unwrap_or_default()
    }

    fn set(&self, cfg: ReplicationConfiguration) {
        if let Ok(mut g) = self.0.write() {
            *g = Arc::new(cfg);
        }
    }
}

/// `ReplicationStatus` of one destination.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReplicationStatus {
    /// A copy is queued, running or waiting to retry.
    InProgress,
    /// The last copy succeeded.
    Complete,
    /// The last copy failed for good.
    Failed,
}

impl ReplicationStatus {
    /// ECR's value: `IN_PROGRESS`, `COMPLETE`, `FAILED`.
    pub fn as_str(self) -> &'static str {
        match self {
            ReplicationStatus::InProgress => "IN_PROGRESS",
            ReplicationStatus::Complete => "COMPLETE",
            ReplicationStatus::Failed => "FAILED",
        }
    }
}

/// `ImageReplicationStatus`: an image's status at one destination.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageReplicationStatus {
    /// Destination region.
    pub region: String,
    /// Destination registry.
    pub registry_id: String,
    /// The status.
    pub status: ReplicationStatus,
    /// Why it failed (`<code>: <message>`), when it did.
    pub failure_code: Option<String>,
}

/// The `failureCode` prefix of a `COMPLETE` status whose image was replicated by digest
/// while the pushed tag stayed on another image in the destination (immutable there).
pub const TAG_IMMUTABLE_IN_DESTINATION: &str = "TAG_IMMUTABLE_IN_DESTINATION";

impl Registry {
    /// The same registry reading and replacing its replication configuration in `cell`
    /// (shared with the replication hook built before the registry).
    pub fn with_replication_config(mut self, cell: ReplicationConfigCell) -> Registry {
        self.replication = cell;
        self
    }

    /// The shared cell the replication hook reads the configuration from.
    pub fn replication_config_cell(&self) -> ReplicationConfigCell {
        self.replication.clone()
    }

    /// Validates `json` (the `replicationConfiguration` member) for this registry
    /// (`registry_id` in `region`), stores it in place of the previous one and makes it
    /// current. Errors: [`RegistryError::ReplicationConfigInvalid`] (nothing stored).
    pub async fn put_replication_configuration(
        &self,
        json: &serde_json::Value,
        region: &str,
        registry_id: &str,
    ) -> Result<ReplicationConfiguration> {
        let cfg = ReplicationConfiguration::parse(json, region, registry_id)
            .map_err(RegistryError::ReplicationConfigInvalid)?;
        let text =
            serde_json::to_string(&cfg).map_err(|e| RegistryError::Internal(e.to_string()))?;
        self.meta
            .put_replication_configuration(&text, now())
            .await?;
        self.replication.set(cfg.clone());
        Ok(cfg)
    }

    /// The stored configuration (no rules if none was ever put), also made current.
    pub async fn reload_replication_configuration(&self) -> Result<ReplicationConfiguration> {
        let cfg = match self.meta.replication_configuration().await? {
            Some(text) => serde_json::from_str(&text).map_err(|e| {
                RegistryError::Internal(format!("stored replication configuration: {e}"))
            })?,
            None => ReplicationConfiguration::default(),
        };
        self.replication.set(cfg.clone());
        Ok(cfg)
    }

    /// The image's replication status per destination it was ever sent to, in the
    /// order of its first job. Per destination, a pending job makes it `IN_PROGRESS`;
    /// otherwise the latest job decides (succeeded: `COMPLETE`, with
    /// [`TAG_IMMUTABLE_IN_DESTINATION`] as its `failureCode` when the copy left a tag the
    /// destination keeps immutable where it was; dead or cancelled: `FAILED` with its last
    /// error). Errors: [`RegistryError::NameUnknown`],
    /// [`RegistryError::ManifestUnknown`].
    pub async fn image_replication_statuses(
        &self,
        repo: &RepositoryName,
        reference: &Reference,
    ) -> Result<(Digest, Vec<ImageReplicationStatus>)> {
        let digest = self.head_manifest(repo, reference).await?.digest;
        let jobs = self.meta.replication_jobs(repo, &digest).await?;
        let mut out: Vec<(ImageReplicationStatus, bool)> = Vec::new();
        for j in jobs {
            let pending = matches!(
                j.state,
                JobState::Queued | JobState::Running | JobState::Retrying
            );
            let status = match j.state {
                JobState::Succeeded => ReplicationStatus::Complete,
                JobState::Dead | JobState::Cancelled => ReplicationStatus::Failed,
                _ => ReplicationStatus::InProgress,
            };
            // A copy that succeeded without moving a tag the destination keeps immutable
            // says so (issue 9): COMPLETE, with the reason as its failureCode.
            let tag_not_moved = j
                .result
                .as_deref()
                .and_then(|r| serde_json::from_str::<serde_json::Value>(r).ok())
                .and_then(|r| r["tagNotMoved"].as_str().map(str::to_owned));
            let failure_code = match status {
                ReplicationStatus::Failed => {
                    Some(j.last_error.unwrap_or_else(|| "CANCELLED".into()))
                }
                ReplicationStatus::Complete => {
                    tag_not_moved.map(|m| format!("{TAG_IMMUTABLE_IN_DESTINATION}: {m}"))
                }
                ReplicationStatus::InProgress => None,
            };
            let s = ImageReplicationStatus {
                region: j.region,
                registry_id: j.registry_id,
                status,
                failure_code,
            };
            match out
                .iter_mut()
                .find(|(o, _)| o.region == s.region && o.registry_id == s.registry_id)
            {
                // A pending job wins over any finished one; otherwise the later job.
                Some((o, was_pending)) if !*was_pending || pending => {
                    *o = s;
                    *was_pending = pending;
                }
                Some(_) => {}
                None => out.push((s, pending)),
            }
        }
        Ok((digest, out.into_iter().map(|(s, _)| s).collect()))
    }

    /// A manifest by digest for replication: like [`Registry::get_manifest`], but not
    /// recorded as a pull (copying is not a pull in ECR's `lastRecordedPullTime`).
    pub async fn manifest_for_replication(
        &self,
        repo: &RepositoryName,
        digest: &Digest,
    ) -> Result<berth_meta::ManifestRow> {
        match self.meta.manifest_by_digest(repo, digest).await? {
            Some(r) => Ok(r),
            None => Err(self
                .manifest_unknown(repo, &Reference::Digest(digest.clone()))
                .await),
        }
    }

    /// The tags on `digest` in `repo`, sorted (none when the image is gone).
    pub async fn tags_of(&self, repo: &RepositoryName, digest: &Digest) -> Result<Vec<String>> {
        Ok(self
            .meta
            .image(repo, digest)
            .await?
            .map(|i| i.tags.iter().map(|t| t.as_str().to_string()).collect())
            .unwrap_or_default())
    }
}

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}
