//! What garbage collection needs from the metadata store (issue 12, DESIGN.md
//! invariant 5): the rows that decide what is unreferenced, and the guards that keep a
//! sweep and a push of one blob from interleaving. The sweep itself (which bytes to
//! delete, in which order) is `berth-registry`'s `gc` module; this trait is rows only.
//!
//! ## The protocol
//!
//! A blob (a `blobs` row) is *referenced* while some manifest of some repository names
//! it as its config or a layer (`manifest_references` with `kind = 'blob'`). Index
//! children and referrers are manifests: they are rows of `manifests`, never swept, and
//! their own config and layers are references like any other. An untagged manifest is
//! still an image (ECR's DescribeImages lists it), so its blobs are referenced.
//!
//! A blob's `touched_at` (epoch seconds) is the last time it became wanted without a
//! manifest referencing it: its last link (an upload committed into a repository, a
//! mount) or the deletion of a manifest that referenced it. GC sweeps an unreferenced
//! blob only when `touched_at` is older than the grace window, so a push that uploaded
//! its layers but has not yet put its manifest — or that found a layer of a just-deleted
//! image by HEAD and is about to reference it — keeps it.
//!
//! Bytes are written before their row exists (commit, then link), so GC must never
//! delete bytes a push is about to link. Every push therefore *pins* the digest
//! ([`GcStore::pin_blob`]) before it commits or mounts and releases the pin in the
//! transaction that links the blob ([`MetaStore::link_blob`](crate::MetaStore::link_blob)
//! takes the [`BlobPin`] by value). A GC *claims* a digest before deleting its bytes by
//! inserting a `sweeping` row in `blob_guards`, whose primary key is the digest: a pin
//! and a claim of one digest can never both exist, on SQLite (one writer) and on
//! PostgreSQL (the unique key arbitrates concurrent inserts). So either the push pinned
//! first and GC skips the digest, or GC claimed first and the pin fails with
//! [`MetaError::BlobBeingCollected`] until the bytes are gone (then the push writes them
//! again). A claim of a row-backed blob deletes its links and row in the same
//! transaction, after locking them, so a manifest push either commits before (and the
//! re-checked reference makes GC skip it) or finds the link gone (`MANIFEST_BLOB_UNKNOWN`,
//! nothing stored). Only then are the bytes deleted, and last the claim released: a
//! crash in between leaves a stale claim, which the next GC finishes
//! ([`GcStore::gc_take_over_stale`]) — never a row without bytes.
//!
//! Times passed in are epoch seconds.

use crate::Result;
use berth_core::Digest;

/// A pin older than this is left by a crashed push (a pin lives from just before a
/// blob's commit to its link) and is dropped by the next GC. One hour: far longer than
/// committing any blob takes.
pub const PIN_LIFETIME_SECS: i64 = 3600;

/// A GC claim older than this is taken over by another GC run, which finishes the sweep
/// (deletes the bytes again, releases the claim). A GC process must not stall longer
/// than this between checking that it still holds a claim and deleting the bytes.
pub const SWEEP_LEASE_SECS: i64 = 900;

/// Proof that a push pinned `digest` ([`GcStore::pin_blob`]): no GC deletes its bytes
/// until the pin is released by [`MetaStore::link_blob`](crate::MetaStore::link_blob)
/// or [`GcStore::unpin_blob`] (or expires after [`PIN_LIFETIME_SECS`]).
#[derive(Debug)]
#[must_use = "a pin is released by link_blob or unpin_blob"]
pub struct BlobPin {
    digest: Digest,
}

impl BlobPin {
    /// A pin of `digest`; only backends create one, after recording it.
    pub(crate) fn new(digest: Digest) -> BlobPin {
        BlobPin { digest }
    }

    /// The pinned digest.
    pub fn digest(&self) -> &Digest {
        &self.digest
    }
}

/// A blob GC may collect: its digest and its size in bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GcBlob {
    /// The blob's digest.
    pub digest: Digest,
    /// Its size in bytes.
    pub size: u64,
}

/// Rows and guards for online garbage collection (see the module doc for the protocol).
#[async_trait::async_trait]
pub trait GcStore: Send + Sync {
    /// Pins `digest` for a push about to commit or mount it. `now` is epoch seconds.
    /// Errors: [`crate::MetaError::BlobBeingCollected`] while a GC is deleting its
    /// bytes (retry after a moment: the bytes are then gone and must be written again).
    async fn pin_blob(&self, digest: &Digest, now: i64) -> Result<BlobPin>;

    /// Releases a pin without linking (the commit or mount failed).
    async fn unpin_blob(&self, pin: BlobPin) -> Result<()>;

    /// The mark: blobs referenced by no manifest of any repository, with `touched_at`
    /// before `cutoff`, in digest order after `after`, at most `limit`. A snapshot read;
    /// [`GcStore::gc_claim_blobs`] re-checks each under locks.
    async fn gc_candidates(
        &self,
        cutoff: i64,
        after: Option<&Digest>,
        limit: u32,
    ) -> Result<Vec<GcBlob>>;

    /// In one transaction, claims every blob of `digests` that is still unreferenced,
    /// untouched since `cutoff` and neither pinned nor claimed: records a `sweeping`
    /// guard owned by `owner` and deletes the blob's links and row. Returns the claimed
    /// blobs; their bytes are then the caller's to delete, and the claims to release.
    async fn gc_claim_blobs(
        &self,
        digests: &[Digest],
        cutoff: i64,
        owner: &str,
        now: i64,
    ) -> Result<Vec<GcBlob>>;

    /// Of `digests` (bytes found in storage), those with no `blobs` row and no guard:
    /// stray bytes a crash or an unlinked commit left. A snapshot read.
    async fn gc_unknown_blobs(&self, digests: &[Digest]) -> Result<Vec<Digest>>;

    /// In one transaction, claims every digest of `digests` that has no `blobs` row and
    /// no guard (stray bytes), owned by `owner`. Returns the claimed ones.
    async fn gc_claim_strays(
        &self,
        digests: &[Digest],
        owner: &str,
        now: i64,
    ) -> Result<Vec<Digest>>;

    /// Of `digests`, those whose claim `owner` still holds (checked right before their
    /// bytes are deleted).
    async fn gc_held(&self, digests: &[Digest], owner: &str) -> Result<Vec<Digest>>;

    /// Releases `owner`'s claims of `digests` (their bytes are gone).
    async fn gc_release(&self, digests: &[Digest], owner: &str) -> Result<()>;

    /// Takes over claims not renewed since `before` (left by a crashed or stalled GC):
    /// they become `owner`'s, renewed at `now`. Returns their digests.
    async fn gc_take_over_stale(&self, before: i64, owner: &str, now: i64) -> Result<Vec<Digest>>;

    /// Drops pins not renewed since `before` (left by crashed pushes); returns how many.
    async fn gc_expire_pins(&self, before: i64) -> Result<u64>;
}
