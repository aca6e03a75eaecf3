//! Lifecycle policies and their previews (issue 12, migration `0006_lifecycle.sql`):
//! rows only. What a policy means (its grammar and evaluation) is
//! `berth_core::lifecycle`; running it is the registry's and the job handlers' business.
//!
//! A repository has at most one policy (`PutLifecyclePolicy` replaces it) with the time
//! it was last evaluated (`GetLifecyclePolicy.lastEvaluatedAt`), and at most one preview
//! (`StartLifecyclePolicyPreview` replaces the previous one). Starting a preview inserts
//! its row `IN_PROGRESS` and enqueues the job that computes it in the same transaction,
//! so a preview is never started without the job that finishes it. Both go with their
//! repository (foreign keys `ON DELETE CASCADE`).

use crate::jobs::NewJob;
use crate::Result;
use berth_core::RepositoryName;

/// A stored lifecycle policy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LifecyclePolicyRow {
    /// The policy text exactly as put.
    pub text: String,
    /// When it was put, epoch seconds.
    pub updated_at: i64,
    /// When a `lifecycle.evaluate` run last evaluated it, epoch seconds.
    pub last_evaluated_at: Option<i64>,
}

/// The status of a preview (ECR `LifecyclePolicyPreviewStatus`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PreviewStatus {
    /// Started, results not yet stored.
    InProgress,
    /// Results stored.
    Complete,
    /// Outdated (ECR's value; Berth replaces previews instead).
    Expired,
    /// Evaluation failed (the error is stored).
    Failed,
}

impl PreviewStatus {
    /// The wire and column value (`IN_PROGRESS`, `COMPLETE`, `EXPIRED`, `FAILED`).
    pub fn as_str(self) -> &'static str {
        match self {
            PreviewStatus::InProgress => "IN_PROGRESS",
            PreviewStatus::Complete => "COMPLETE",
            PreviewStatus::Expired => "EXPIRED",
            PreviewStatus::Failed => "FAILED",
        }
    }

    /// Parses a column value. Errors: [`crate::MetaError::Corrupt`] for anything else.
    pub fn parse(s: &str) -> Result<PreviewStatus> {
        Ok(match s {
            "IN_PROGRESS" => PreviewStatus::InProgress,
            "COMPLETE" => PreviewStatus::Complete,
            "EXPIRED" => PreviewStatus::Expired,
            "FAILED" => PreviewStatus::Failed,
            other => {
                return Err(crate::MetaError::Corrupt(format!(
                    "lifecycle preview status {other:?}"
                )))
            }
        })
    }
}

/// A repository's latest lifecycle policy preview.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PreviewRow {
    /// The policy text evaluated.
    pub policy_text: String,
    /// Its status.
    pub status: PreviewStatus,
    /// When it started, epoch seconds (identifies this preview).
    pub started_at: i64,
    /// When it finished, epoch seconds.
    pub finished_at: Option<i64>,
    /// The results as the layer above stored them (a JSON document), once complete.
    pub results: Option<String>,
    /// Why it failed, if it did.
    pub error: Option<String>,
}

/// What [`LifecycleStore::start_lifecycle_preview`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PreviewStart {
    /// The preview row is `IN_PROGRESS` and its job enqueued.
    Started,
    /// A preview of this repository is in progress (started less than `stale_secs` ago):
    /// nothing changed.
    InProgress,
    /// The repository does not exist.
    RepositoryNotFound,
}

/// Lifecycle policies and previews. Implemented by [`crate::SqliteMeta`] and
/// [`crate::PgMeta`]; every [`crate::MetaStore`] is one.
#[async_trait::async_trait]
pub trait LifecycleStore: Send + Sync + 'static {
    /// Stores (or replaces) the repository's policy at `now` (epoch seconds), keeping
    /// `last_evaluated_at`; false if the repository does not exist.
    async fn put_lifecycle_policy(
        &self,
        repo: &RepositoryName,
        text: &str,
        now: i64,
    ) -> Result<bool>;
    /// The repository's policy, if it has one (`None` also when the repository does
    /// not exist: callers check the repository first).
    async fn lifecycle_policy(&self, repo: &RepositoryName) -> Result<Option<LifecyclePolicyRow>>;
    /// Deletes the repository's policy, returning what was deleted.
    async fn delete_lifecycle_policy(
        &self,
        repo: &RepositoryName,
    ) -> Result<Option<LifecyclePolicyRow>>;
    /// Records that the policy was evaluated at `at` (epoch seconds); false if the
    /// repository has no policy (any more).
    async fn set_lifecycle_evaluated(&self, repo: &RepositoryName, at: i64) -> Result<bool>;
    /// Names of repositories that have a policy, in lexical order after `after`, at
    /// most `limit`.
    async fn lifecycle_repositories(&self, after: Option<&str>, limit: u32) -> Result<Vec<String>>;
    /// Starts a preview of `text`: replaces the repository's preview with an
    /// `IN_PROGRESS` one started at `now` and enqueues `job` in the same transaction —
    /// unless a preview is in progress and started less than `stale_secs` ago (then
    /// [`PreviewStart::InProgress`], nothing written). A preview in progress for longer
    /// is taken as abandoned (its job died) and replaced.
    async fn start_lifecycle_preview(
        &self,
        repo: &RepositoryName,
        text: &str,
        job: &NewJob,
        now: i64,
        stale_secs: i64,
    ) -> Result<PreviewStart>;
    /// Stores the outcome of the preview started at `started_at`: `status`, `results`
    /// or `error`, finished at `now`. False (nothing written) if that preview is no
    /// longer the repository's current one or is no longer in progress.
    #[allow(clippy::too_many_arguments)]
    async fn finish_lifecycle_preview(
        &self,
        repo: &RepositoryName,
        started_at: i64,
        status: PreviewStatus,
        results: Option<&str>,
        error: Option<&str>,
        now: i64,
    ) -> Result<bool>;
    /// The repository's latest preview.
    async fn lifecycle_preview(&self, repo: &RepositoryName) -> Result<Option<PreviewRow>>;
}
