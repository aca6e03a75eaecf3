//! Lifecycle policies (issue 12): ECR's Put/Get/DeleteLifecyclePolicy, previews, and
//! evaluation runs, on the registry's own paths.
//!
//! - A policy is validated with `berth_core::lifecycle` before it is stored; the text
//!   is kept exactly as given.
//! - A preview ([`Registry::start_lifecycle_preview`]) is a row `IN_PROGRESS` plus a
//!   [`LIFECYCLE_PREVIEW`] job enqueued in the same transaction; the job
//!   ([`Registry::run_lifecycle_preview`]) evaluates the previewed text and stores the
//!   results `COMPLETE`.
//! - A run ([`Registry::evaluate_lifecycle`], the [`LIFECYCLE_EVALUATE`] job) evaluates
//!   the stored policy with the same pure function and deletes each expired image by
//!   digest through [`Registry::delete_manifest`] — the path `BatchDeleteImage` and the
//!   OCI `DELETE` take — so each deletion enqueues its jobs (the `ECR Image Action`
//!   DELETE events) in its own transaction; then it records `lastEvaluatedAt`.
//! - Repositories under an excluded prefix ([`Registry::with_lifecycle_exclusions`],
//!   e.g. pull-through cache prefixes) are never touched: a run deletes nothing, a
//!   preview completes with no results, and both log why.

use crate::{Registry, RegistryError, Result};
use berth_core::lifecycle::{evaluate, LifecycleImage, LifecyclePolicy};
use berth_core::{media_type, Digest, Reference, RepositoryName};
use berth_meta::jobs::NewJob;
use berth_meta::lifecycle::{PreviewStart, PreviewStatus};
use berth_meta::TagStatus;
use serde::{Deserialize, Serialize};
use std::time::{SystemTime, UNIX_EPOCH};

pub use berth_meta::lifecycle::{LifecyclePolicyRow, PreviewStatus as LifecyclePreviewStatus};

/// Job kind: compute a preview (payload `{"repository": name, "startedAt": secs}`).
pub const LIFECYCLE_PREVIEW: &str = "lifecycle.preview";
/// Job kind: evaluate a repository's policy and expire images (payload
/// `{"repository": name}`, idempotency key the repository name).
pub const LIFECYCLE_EVALUATE: &str = "lifecycle.evaluate";
/// A preview still `IN_PROGRESS` this long after it started is taken as abandoned (its
/// job died), so a new one may start.
pub const PREVIEW_STALE_SECS: i64 = 600;
/// Images read per page while evaluating.
const PAGE: u32 = 1000;

fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

/// The excluded prefix that covers `repo`, if any. A prefix `p` (with or without a
/// trailing `/`) covers the repository `p` itself and every repository under `p/`;
/// `docker-hub` covers `docker-hub/library/alpine`, not `docker-hubby/x`.
pub fn excluded_by<'a>(prefixes: &'a [String], repo: &str) -> Option<&'a str> {
    prefixes
        .iter()
        .find(|p| {
            let p = p.trim_end_matches('/');
            !p.is_empty()
                && (repo == p
                    || (repo.starts_with(p) && repo.as_bytes().get(p.len()) == Some(&b'/')))
        })
        .map(String::as_str)
}

/// One image a policy expires: ECR's `LifecyclePolicyPreviewResult` in domain terms
/// (stored as JSON in the preview row).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExpiringImage {
    /// The manifest digest.
    pub digest: String,
    /// Its tags when evaluated.
    pub tags: Vec<String>,
    /// When it was pushed, epoch seconds.
    pub pushed_at: i64,
    /// The rule that expires it (`appliedRulePriority`); a child or referrer carries
    /// its parent's.
    pub rule_priority: u32,
}

/// A repository's latest preview.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LifecyclePreview {
    /// The policy text evaluated.
    pub policy_text: String,
    /// Its status.
    pub status: PreviewStatus,
    /// The images it would expire, in the order a run deletes them (empty until
    /// complete).
    pub results: Vec<ExpiringImage>,
}

/// What a lifecycle run did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LifecycleRun {
    /// The repository is under an excluded prefix (named): nothing evaluated.
    Excluded(String),
    /// The repository has no policy (any more): nothing to do.
    NoPolicy,
    /// Evaluated at `evaluated_at` (epoch seconds).
    Evaluated {
        /// Images deleted, in deletion order.
        expired: Vec<ExpiringImage>,
        /// Images planned but left alone, with why (changed or deleted meanwhile, or
        /// referenced by an index pushed meanwhile).
        skipped: Vec<(String, String)>,
        /// When.
        evaluated_at: i64,
    },
}

impl Registry {
    /// The same registry never applying lifecycle policies to repositories under any of
    /// `prefixes` (see [`excluded_by`]).
    pub fn with_lifecycle_exclusions(mut self, prefixes: Vec<String>) -> Registry {
        self.lifecycle_exclude = std::sync::Arc::new(prefixes);
        self
    }

    /// The excluded prefix that covers `repo`, if any.
    pub fn lifecycle_exclusion(&self, repo: &RepositoryName) -> Option<&str> {
        excluded_by(&self.lifecycle_exclude, repo.as_str())
    }

    /// Validates and stores `text` as the repository's lifecycle policy.
    /// Errors: [`RegistryError::LifecyclePolicyInvalid`] (nothing stored),
    /// [`RegistryError::NameUnknown`].
    pub async fn put_lifecycle_policy(&self, repo: &RepositoryName, text: &str) -> Result<()> {
        LifecyclePolicy::parse(text).map_err(|e| RegistryError::LifecyclePolicyInvalid(e.0))?;
        if self.meta.put_lifecycle_policy(repo, text, now()).await? {
            Ok(())
        } else {
            Err(RegistryError::NameUnknown(repo.to_string()))
        }
    }

    /// The repository's lifecycle policy.
    /// Errors: [`RegistryError::NameUnknown`], [`RegistryError::LifecyclePolicyNotFound`].
    pub async fn lifecycle_policy(&self, repo: &RepositoryName) -> Result<LifecyclePolicyRow> {
        self.require_repository(repo).await?;
        self.meta
            .lifecycle_policy(repo)
            .await?
            .ok_or_else(|| RegistryError::LifecyclePolicyNotFound(repo.to_string()))
    }

    /// Deletes the repository's lifecycle policy, returning it.
    /// Errors: [`RegistryError::NameUnknown`], [`RegistryError::LifecyclePolicyNotFound`].
    pub async fn delete_lifecycle_policy(
        &self,
        repo: &RepositoryName,
    ) -> Result<LifecyclePolicyRow> {
        self.require_repository(repo).await?;
        self.meta
            .delete_lifecycle_policy(repo)
            .await?
            .ok_or_else(|| RegistryError::LifecyclePolicyNotFound(repo.to_string()))
    }

    /// Names of repositories with a policy, in lexical order after `after`, at most
    /// `limit`.
    pub async fn lifecycle_repositories(
        &self,
        after: Option<&str>,
        limit: u32,
    ) -> Result<Vec<String>> {
        Ok(self.meta.lifecycle_repositories(after, limit).await?)
    }

    /// Starts a preview of `text`, or of the stored policy when `text` is `None`;
    /// returns the text previewed.
    /// Errors: [`RegistryError::NameUnknown`], [`RegistryError::LifecyclePolicyNotFound`]
    /// (no text and no stored policy), [`RegistryError::LifecyclePolicyInvalid`],
    /// [`RegistryError::LifecyclePreviewInProgress`].
    pub async fn start_lifecycle_preview(
        &self,
        repo: &RepositoryName,
        text: Option<&str>,
    ) -> Result<String> {
        let text = match text {
            Some(t) => t.to_string(),
            None => self.lifecycle_policy(repo).await?.text,
        };
        LifecyclePolicy::parse(&text).map_err(|e| RegistryError::LifecyclePolicyInvalid(e.0))?;
        let at = now();
        let job = NewJob::new(
            LIFECYCLE_PREVIEW,
            serde_json::json!({ "repository": repo.as_str(), "startedAt": at }),
        )
        .max_attempts(3);
        match self
            .meta
            .start_lifecycle_preview(repo, &text, &job, at, PREVIEW_STALE_SECS)
            .await?
        {
            PreviewStart::Started => {
                self.hook.committed();
                Ok(text)
            }
            PreviewStart::InProgress => {
                Err(RegistryError::LifecyclePreviewInProgress(repo.to_string()))
            }
            PreviewStart::RepositoryNotFound => Err(RegistryError::NameUnknown(repo.to_string())),
        }
    }

    /// The repository's latest preview.
    /// Errors: [`RegistryError::NameUnknown`], [`RegistryError::LifecyclePreviewNotFound`].
    pub async fn lifecycle_preview(&self, repo: &RepositoryName) -> Result<LifecyclePreview> {
        self.require_repository(repo).await?;
        let row = self
            .meta
            .lifecycle_preview(repo)
            .await?
            .ok_or_else(|| RegistryError::LifecyclePreviewNotFound(repo.to_string()))?;
        let results = match &row.results {
            Some(json) => serde_json::from_str(json).map_err(|e| {
                RegistryError::Internal(format!("stored lifecycle preview of {repo}: {e}"))
            })?,
            None => Vec::new(),
        };
        Ok(LifecyclePreview {
            policy_text: row.policy_text,
            status: row.status,
            results,
        })
    }

    /// Computes the preview started at `started_at` and stores it `COMPLETE` (the
    /// [`LIFECYCLE_PREVIEW`] job). Returns how many images it would expire, or `None`
    /// when that preview is no longer the current one in progress. An excluded
    /// repository's preview completes with no results.
    /// Errors: reading the images failed (the job retries).
    pub async fn run_lifecycle_preview(
        &self,
        repo: &RepositoryName,
        started_at: i64,
    ) -> Result<Option<usize>> {
        let Some(row) = self.meta.lifecycle_preview(repo).await? else {
            return Ok(None);
        };
        if row.started_at != started_at || row.status != PreviewStatus::InProgress {
            return Ok(None);
        }
        let results = match (
            self.lifecycle_exclusion(repo),
            LifecyclePolicy::parse(&row.policy_text),
        ) {
            (Some(prefix), _) => {
                tracing::info!(
                    repository = %repo,
                    prefix,
                    "lifecycle preview: the repository is under an excluded prefix \
                     (lifecycle_exclude_prefixes), so lifecycle never expires its images; \
                     the preview lists none"
                );
                Vec::new()
            }
            (None, Ok(policy)) => self.lifecycle_plan(repo, &policy, now()).await?,
            (None, Err(e)) => {
                self.meta
                    .finish_lifecycle_preview(
                        repo,
                        started_at,
                        PreviewStatus::Failed,
                        None,
                        Some(&e.0),
                        now(),
                    )
                    .await?;
                return Ok(Some(0));
            }
        };
        let json = serde_json::to_string(&results)
            .map_err(|e| RegistryError::Internal(format!("encoding a lifecycle preview: {e}")))?;
        let stored = self
            .meta
            .finish_lifecycle_preview(
                repo,
                started_at,
                PreviewStatus::Complete,
                Some(&json),
                None,
                now(),
            )
            .await?;
        Ok(stored.then_some(results.len()))
    }

    /// What `policy` expires in `repo` at `now` (epoch seconds), in deletion order:
    /// every image read (tags, push and last pull times, index children, subjects) and
    /// handed to the pure evaluator.
    /// Errors: [`RegistryError::NameUnknown`], the store failed.
    pub async fn lifecycle_plan(
        &self,
        repo: &RepositoryName,
        policy: &LifecyclePolicy,
        now: i64,
    ) -> Result<Vec<ExpiringImage>> {
        self.require_repository(repo).await?;
        let mut records = Vec::new();
        let mut after: Option<String> = None;
        loop {
            let page = self
                .images(repo, TagStatus::Any, after.as_deref(), PAGE)
                .await?;
            let full = page.len() == PAGE as usize;
            after = page.last().map(|i| i.digest.to_string());
            records.extend(page);
            if !full {
                break;
            }
        }
        let mut parents: std::collections::HashMap<String, Vec<String>> = Default::default();
        for r in &records {
            if let Some(s) = &r.subject {
                parents
                    .entry(r.digest.to_string())
                    .or_default()
                    .push(s.to_string());
            }
            if media_type::is_index(&r.media_type) {
                for c in self.meta.index_children(repo, &r.digest).await? {
                    parents
                        .entry(c.digest.to_string())
                        .or_default()
                        .push(r.digest.to_string());
                }
            }
        }
        let images: Vec<LifecycleImage> = records
            .iter()
            .map(|r| LifecycleImage {
                digest: r.digest.to_string(),
                tags: r.tags.iter().map(|t| t.to_string()).collect(),
                pushed_at: r.pushed_at,
                last_pulled_at: r.last_pulled_at,
                parents: parents.remove(&r.digest.to_string()).unwrap_or_default(),
            })
            .collect();
        let by_digest: std::collections::HashMap<&str, &LifecycleImage> =
            images.iter().map(|i| (i.digest.as_str(), i)).collect();
        Ok(evaluate(policy, &images, now)
            .into_iter()
            .map(|e| {
                let image = by_digest[e.digest.as_str()];
                ExpiringImage {
                    digest: e.digest,
                    tags: image.tags.clone(),
                    pushed_at: image.pushed_at,
                    rule_priority: e.rule_priority,
                }
            })
            .collect())
    }

    /// Evaluates the repository's stored policy now and deletes what it expires (the
    /// [`LIFECYCLE_EVALUATE`] job), then records `lastEvaluatedAt`. Each image is
    /// deleted by digest through [`Registry::delete_manifest`] (parents before their
    /// children and referrers), only if its tags are still the ones evaluated.
    /// Errors: [`RegistryError::NameUnknown`], the store failed (the job retries; what
    /// was deleted stays deleted, and the next attempt plans again).
    pub async fn evaluate_lifecycle(&self, repo: &RepositoryName) -> Result<LifecycleRun> {
        if let Some(prefix) = self.lifecycle_exclusion(repo) {
            tracing::info!(
                repository = %repo,
                prefix,
                "lifecycle: the repository is under an excluded prefix (lifecycle_exclude_prefixes); \
                 its policy is not applied"
            );
            return Ok(LifecycleRun::Excluded(prefix.to_string()));
        }
        let Some(row) = self.meta.lifecycle_policy(repo).await? else {
            return Ok(LifecycleRun::NoPolicy);
        };
        let policy = LifecyclePolicy::parse(&row.text).map_err(|e| {
            RegistryError::Internal(format!(
                "the stored lifecycle policy of {repo} is invalid: {e}"
            ))
        })?;
        let at = now();
        let plan = self.lifecycle_plan(repo, &policy, at).await?;
        let mut expired = Vec::new();
        let mut skipped = Vec::new();
        for image in plan {
            let digest = image
                .digest
                .parse::<Digest>()
                .map_err(|e| RegistryError::Internal(format!("stored digest: {e}")))?;
            match self.meta.image(repo, &digest).await? {
                Some(now_image)
                    if now_image
                        .tags
                        .iter()
                        .map(|t| t.as_str())
                        .eq(image.tags.iter().map(String::as_str)) => {}
                Some(_) => {
                    skipped.push((
                        image.digest,
                        "its tags changed since it was evaluated".into(),
                    ));
                    continue;
                }
                None => {
                    skipped.push((image.digest, "deleted meanwhile".into()));
                    continue;
                }
            }
            match self.delete_manifest(repo, &Reference::Digest(digest)).await {
                Ok(()) => {
                    tracing::info!(
                        repository = %repo,
                        digest = %image.digest,
                        rule_priority = image.rule_priority,
                        "lifecycle policy expired an image"
                    );
                    expired.push(image);
                }
                Err(RegistryError::ManifestUnknown(_)) => {
                    skipped.push((image.digest, "deleted meanwhile".into()))
                }
                Err(RegistryError::Conflict(m)) => skipped.push((image.digest, m)),
                Err(e) => return Err(e),
            }
        }
        self.meta.set_lifecycle_evaluated(repo, at).await?;
        metrics::counter!("berth_lifecycle_expired_images_total").increment(expired.len() as u64);
        Ok(LifecycleRun::Evaluated {
            expired,
            skipped,
            evaluated_at: at,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::excluded_by;

    #[test]
    fn exclusion_prefixes_cover_whole_path_segments() {
        let p = vec!["docker-hub".to_string(), "quay/".to_string()];
        assert_eq!(
            excluded_by(&p, "docker-hub/library/alpine"),
            Some("docker-hub")
        );
        assert_eq!(excluded_by(&p, "docker-hub"), Some("docker-hub"));
        assert_eq!(excluded_by(&p, "quay/org/app"), Some("quay/"));
        assert_eq!(excluded_by(&p, "docker-hubby/app"), None);
        assert_eq!(excluded_by(&p, "team/docker-hub"), None);
        assert_eq!(excluded_by(&[String::new()], "anything"), None);
    }
}
