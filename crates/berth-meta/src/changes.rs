//! Jobs caused by content changes, enqueued in the transaction that makes the change
//! (issue 8; DESIGN.md invariants 3 and 4).
//!
//! Every content write of [`crate::MetaStore`] (`put_manifest`, `delete_manifest`,
//! `delete_tag`) takes a [`ChangeHook`]. Inside its transaction, once it knows what the
//! write changed and before it commits, the store describes the change as a [`Change`],
//! asks the hook for the [`NewJob`]s it causes, and inserts them with
//! [`crate::sqlite_jobs::enqueue`] in the same transaction. So a push that commits always
//! has its jobs, and one that fails (immutable tag, missing blob, crash before commit)
//! has none. After the commit the store calls [`ChangeHook::committed`], so a runner in
//! this process can start at once instead of at its next poll.
//!
//! A feature that reacts to content (events today; replication and scan on push later)
//! is one more hook, composed with [`Hooks`]. Hooks run inside the metadata store's
//! write transaction: they must be quick and must not do I/O (build the job, nothing
//! more).

use crate::jobs::NewJob;
use berth_core::{Digest, RepositoryName, Tag};
use std::sync::Arc;

/// A committed-to-be content change, as the store saw it inside its transaction.
#[derive(Debug, Clone, Copy)]
pub enum Change<'a> {
    /// A manifest PUT that stored something: the manifest was new, or `tag` was created
    /// or moved onto it. (A PUT that changed nothing is not a change.)
    ManifestPut {
        /// The repository.
        repository: &'a RepositoryName,
        /// The manifest's digest.
        digest: &'a Digest,
        /// The tag pushed, if any.
        tag: Option<&'a Tag>,
        /// The manifest's media type.
        media_type: &'a str,
        /// Whether the manifest was stored before this PUT.
        manifest_existed: bool,
        /// The manifest the tag pointed at before, if it moved.
        previous_tag_target: Option<&'a Digest>,
    },
    /// A manifest was deleted, with every tag that pointed at it (`tags`, sorted; empty
    /// for an untagged image).
    ManifestDeleted {
        /// The repository.
        repository: &'a RepositoryName,
        /// The manifest's digest.
        digest: &'a Digest,
        /// The tags deleted with it.
        tags: &'a [String],
    },
    /// One tag was deleted; the manifest it pointed at stays.
    TagDeleted {
        /// The repository.
        repository: &'a RepositoryName,
        /// The tag.
        tag: &'a Tag,
        /// The manifest it pointed at.
        digest: &'a Digest,
    },
}

/// Turns content changes into jobs. Called inside the store's write transaction, so it
/// must be quick and infallible (no I/O): it only builds [`NewJob`]s.
pub trait ChangeHook: Send + Sync + 'static {
    /// The jobs `change` causes (often none).
    fn jobs(&self, change: &Change<'_>) -> Vec<NewJob>;

    /// Called after a transaction that enqueued at least one job committed (e.g. to wake
    /// this process's job runner). The default does nothing.
    fn committed(&self) {}
}

/// The hook that causes no jobs (a registry without background features, and tests).
#[derive(Debug, Clone, Copy, Default)]
pub struct NoJobs;

impl ChangeHook for NoJobs {
    fn jobs(&self, _change: &Change<'_>) -> Vec<NewJob> {
        Vec::new()
    }
}

/// Several hooks as one: the jobs of all, in order; `committed` calls each.
#[derive(Clone, Default)]
pub struct Hooks(pub Vec<Arc<dyn ChangeHook>>);

impl ChangeHook for Hooks {
    fn jobs(&self, change: &Change<'_>) -> Vec<NewJob> {
        self.0.iter().flat_map(|h| h.jobs(change)).collect()
    }

    fn committed(&self) {
        for h in &self.0 {
            h.committed();
        }
    }
}

/// The current time in epoch milliseconds (what the job queue stores).
pub(crate) fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

tokio::task_local! {
    /// Set (to the source, `<region>/<registryId>`) while a request that another
    /// registry's replication sent is being served: hooks see it inside the store's
    /// transaction (same task), and replication does not chain (ECR: an image that
    /// arrived by replication is not replicated again).
    pub static REPLICATED_FROM: String;
}

/// The source registry of the replication this task serves, if it serves one
/// (see [`REPLICATED_FROM`]).
pub fn replicated_from() -> Option<String> {
    REPLICATED_FROM.try_with(|s| s.clone()).ok()
}
