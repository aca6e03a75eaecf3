//! Registry replication rows (issue 9, migration `0008_replication.sql`): the registry's
//! replication configuration (one JSON document, validated by `berth_core::replication`
//! before it is stored) and the lookup of an image's replication jobs, which are its
//! replication status.
//!
//! There is no separate status table: every completed push that a rule matches enqueues
//! one `replication.image` job per destination in the push's own transaction (the
//! replication hook), so a job row exists exactly when the push committed, and its state
//! *is* the status — queued, running or retrying is `IN_PROGRESS`, succeeded is
//! `COMPLETE`, dead or cancelled is `FAILED` with the job's last error. Statuses live as
//! long as finished jobs do (`job_retention_days`). Rows only: what the jobs do is
//! `berth-replication`'s business.

use crate::jobs::JobState;
use crate::Result;
use berth_core::{Digest, RepositoryName};

/// The job kind that copies one image to one destination.
pub const REPLICATION_JOB: &str = "replication.image";

/// The idempotency key of the job copying `repository@digest` (pushed with `tag`, if
/// any) to `registry_id` in `region`: `<repository>@<digest>|<region>|<registryId>|<tag>`.
/// One job per (image, destination, tag) is pending at a time; a push of the same image
/// under another tag while a copy runs gets its own job, so no tag is lost.
pub fn job_key(
    repository: &RepositoryName,
    digest: &Digest,
    region: &str,
    registry_id: &str,
    tag: Option<&str>,
) -> String {
    format!(
        "{}|{region}|{registry_id}|{}",
        key_prefix(repository, digest).trim_end_matches('|'),
        tag.unwrap_or("")
    )
}

/// The prefix every [`job_key`] of `repository@digest` starts with.
pub fn key_prefix(repository: &RepositoryName, digest: &Digest) -> String {
    format!("{repository}@{digest}|")
}

/// One `replication.image` job of an image, as [`ReplicationStore::replication_jobs`]
/// reads it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReplicationJob {
    /// Job ID (later jobs have larger IDs).
    pub id: i64,
    /// The destination region (from the key).
    pub region: String,
    /// The destination registry (from the key).
    pub registry_id: String,
    /// The job's state.
    pub state: JobState,
    /// Its last error (`<failureCode>: <message>` for replication jobs).
    pub last_error: Option<String>,
    /// Its result (JSON text) once it succeeded.
    pub result: Option<String>,
}

/// The replication half of the metadata store.
#[async_trait::async_trait]
pub trait ReplicationStore: Send + Sync {
    /// The stored `replicationConfiguration` JSON, if one was ever put.
    async fn replication_configuration(&self) -> Result<Option<String>>;
    /// Replaces the configuration with `document` (already validated), at `now`
    /// (epoch seconds).
    async fn put_replication_configuration(&self, document: &str, now: i64) -> Result<()>;
    /// Every `replication.image` job of `repository@digest` (every key starting with
    /// [`key_prefix`]), oldest first.
    async fn replication_jobs(
        &self,
        repository: &RepositoryName,
        digest: &Digest,
    ) -> Result<Vec<ReplicationJob>>;
}

/// Implements [`ReplicationStore`] for `$store` with its engine's statements: the reader
/// and writer pools and the three statements differ between SQLite and PostgreSQL
/// (placeholders, collation), the logic does not.
macro_rules! replication_store {
    ($store:ty, $reader:ident, $writer:ident, get: $get:expr, put: $put:expr, jobs: $jobs:expr) => {
        #[async_trait::async_trait]
        impl $crate::replication::ReplicationStore for $store {
            async fn replication_configuration(&self) -> $crate::Result<Option<String>> {
                Ok(sqlx::query_scalar::<_, String>($get)
                    .fetch_optional(&self.$reader)
                    .await?)
            }

            async fn put_replication_configuration(
                &self,
                document: &str,
                now: i64,
            ) -> $crate::Result<()> {
                sqlx::query($put)
                    .bind(document)
                    .bind(now)
                    .execute(&self.$writer)
                    .await?;
                Ok(())
            }

            async fn replication_jobs(
                &self,
                repository: &berth_core::RepositoryName,
                digest: &berth_core::Digest,
            ) -> $crate::Result<Vec<$crate::replication::ReplicationJob>> {
                let prefix = $crate::replication::key_prefix(repository, digest);
                let rows =
                    sqlx::query_as::<_, (i64, String, String, Option<String>, Option<String>)>(
                        $jobs,
                    )
                    .bind($crate::replication::REPLICATION_JOB)
                    .bind(&prefix)
                    .bind($crate::replication::prefix_end(&prefix))
                    .fetch_all(&self.$reader)
                    .await?;
                Ok(rows
                    .into_iter()
                    .filter_map($crate::replication::job_from_row)
                    .collect())
            }
        }
    };
}
pub(crate) use replication_store;

/// Turns a row (id, key, state, last error, result) into a [`ReplicationJob`]; rows
/// whose key does not parse are skipped.
pub(crate) fn job_from_row(
    (id, key, state, last_error, result): (i64, String, String, Option<String>, Option<String>),
) -> Option<ReplicationJob> {
    let mut parts = key.rsplitn(4, '|');
    let _tag = parts.next()?;
    let registry_id = parts.next()?.to_string();
    let region = parts.next()?.to_string();
    Some(ReplicationJob {
        id,
        region,
        registry_id,
        state: state.parse().ok()?,
        last_error,
        result,
    })
}

/// The exclusive upper bound of keys starting with `prefix` (which ends with `|`): the
/// same text with its last byte incremented (`|` → `}`).
pub(crate) fn prefix_end(prefix: &str) -> String {
    let mut s = prefix.trim_end_matches('|').to_string();
    s.push('}');
    s
}
