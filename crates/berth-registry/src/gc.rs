//! Online garbage collection (issue 12, DESIGN.md invariant 5): reclaims blob bytes no
//! manifest references any more, while pushes and pulls go on, on any number of nodes.
//!
//! What is collected, precisely (ARCHITECTURE.md § Garbage collection):
//!
//! - a **blob** (a `blobs` row, its repository links, and its bytes) that no manifest of
//!   any repository references as config or layer, and that nothing touched (linked,
//!   mounted, or lost its last referencing manifest) for the grace window;
//! - **stray bytes**: a blob in storage that no `blobs` row names (a commit whose link
//!   never happened, or a sweep that crashed after deleting the row), once the file or
//!   object is older than the grace window.
//!
//! Never collected: manifests (an untagged manifest is still an image; deleting images
//! is the user's or lifecycle's business, and deleting an index never deletes its
//! children), index children and referrers (they are manifests), blobs referenced by any
//! of them, and upload sessions in progress (they are not blobs; idle ones expire with
//! `housekeeping.expire_uploads`).
//!
//! Each blob is swept in three steps: a metadata transaction claims it and deletes its
//! row and links (after re-checking, under locks, that it is still unreferenced and not
//! pinned by a push); then its bytes are deleted; then the claim is released. A crash
//! between leaves bytes without a row and a stale claim, which a later run finishes —
//! never a row without bytes. The protocol that keeps a concurrent push safe is in
//! `berth_meta::gc`.

use crate::{Registry, RegistryError, Result};
use berth_core::Digest;
use berth_meta::gc::{GcBlob, PIN_LIFETIME_SECS, SWEEP_LEASE_SECS};
use futures::{StreamExt, TryStreamExt};
use serde::Serialize;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// Candidates read, claimed and swept per round (one claim transaction each).
const BATCH: u32 = 256;
/// Blob deletions in flight at once (object stores answer with latency, not CPU).
const DELETES_IN_FLIGHT: usize = 8;

/// How a collection runs.
#[derive(Debug, Clone)]
pub struct GcOptions {
    /// Unreferenced content is swept only after it stayed so this long. Must be longer
    /// than any upload takes (between a layer's upload and its manifest's push).
    pub grace: Duration,
    /// Report what would be swept; change nothing.
    pub dry_run: bool,
    /// Keep every swept (or, dry, sweepable) item in [`GcReport::items`].
    pub list: bool,
}

/// Why an item was (or would be) swept.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum GcKind {
    /// A blob row (with its links and bytes) no manifest references.
    Unreferenced,
    /// Bytes in storage no blob row names.
    Stray,
    /// Bytes whose sweep a crashed or stalled run left unfinished.
    Resumed,
}

/// One swept (or sweepable) blob.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct GcItem {
    /// Its digest.
    pub digest: Digest,
    /// Its size in bytes (0 for a resumed sweep whose bytes were already gone).
    pub size: u64,
    /// Why it goes.
    pub kind: GcKind,
}

/// What a collection did (or, dry, would do).
#[derive(Debug, Clone, Default, Serialize)]
pub struct GcReport {
    /// Whether nothing was changed.
    pub dry_run: bool,
    /// Unreferenced blobs swept (rows, links and bytes).
    pub blobs: u64,
    /// Stray bytes swept.
    pub strays: u64,
    /// Unfinished sweeps of earlier runs finished.
    pub resumed: u64,
    /// Bytes of storage reclaimed.
    pub bytes: u64,
    /// Pins left by crashed pushes that were dropped.
    pub pins_expired: u64,
    /// Items whose bytes could not be deleted (the claim stays; a later run retries).
    pub failed: u64,
    /// Wall time of the run, in seconds.
    pub duration_secs: f64,
    /// The items, when [`GcOptions::list`] asked for them.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub items: Vec<GcItem>,
}

impl GcReport {
    /// Objects swept (or sweepable): blobs, strays and resumed sweeps.
    pub fn objects(&self) -> u64 {
        self.blobs + self.strays + self.resumed
    }

    fn add(&mut self, list: bool, kind: GcKind, digest: &Digest, size: u64) {
        match kind {
            GcKind::Unreferenced => self.blobs += 1,
            GcKind::Stray => self.strays += 1,
            GcKind::Resumed => self.resumed += 1,
        }
        self.bytes += size;
        if list {
            self.items.push(GcItem {
                digest: digest.clone(),
                size,
                kind,
            });
        }
    }
}

fn epoch_secs(t: SystemTime) -> i64 {
    t.duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

fn internal(what: &str) -> impl Fn(berth_meta::MetaError) -> RegistryError + '_ {
    move |e| RegistryError::Internal(format!("garbage collection, {what}: {e}"))
}

impl Registry {
    /// Runs one garbage collection (see the module doc). Safe while pushes, pulls and
    /// other collections run, on this node or others sharing the stores. Records
    /// `berth_gc_*` metrics unless dry.
    /// Errors: the metadata store or storage failed (what was swept before stays swept).
    pub async fn collect_garbage(&self, opts: &GcOptions) -> Result<GcReport> {
        let started = Instant::now();
        let owner = format!("gc-{}-{}", std::process::id(), uuid::Uuid::new_v4());
        let now_t = SystemTime::now();
        let now = epoch_secs(now_t);
        let cutoff_t = now_t - opts.grace;
        // Swept when unreferenced since `now - grace` or earlier (`touched_at` has
        // one-second resolution; the stores compare `touched_at < cutoff`).
        let cutoff = now - opts.grace.as_secs() as i64 + 1;
        let mut report = GcReport {
            dry_run: opts.dry_run,
            ..GcReport::default()
        };
        if !opts.dry_run {
            report.pins_expired = self
                .meta
                .gc_expire_pins(now - PIN_LIFETIME_SECS)
                .await
                .map_err(internal("expiring pins"))?;
            // Sweeps a crashed (or stalled) run left: finish them first.
            let stale = self
                .meta
                .gc_take_over_stale(now - SWEEP_LEASE_SECS, &owner, now)
                .await
                .map_err(internal("taking over stale sweeps"))?;
            for chunk in stale.chunks(BATCH as usize) {
                let mut blobs = Vec::new();
                for d in chunk {
                    let size = self.store.stat(d).await?.unwrap_or(0);
                    blobs.push(GcBlob {
                        digest: d.clone(),
                        size,
                    });
                }
                self.sweep(&blobs, &owner, GcKind::Resumed, opts, &mut report)
                    .await?;
            }
        }

        // Blob rows no manifest references (the mark is a snapshot read; each claim
        // re-checks under locks).
        let mut after: Option<Digest> = None;
        loop {
            let page = self
                .meta
                .gc_candidates(cutoff, after.as_ref(), BATCH)
                .await
                .map_err(internal("finding unreferenced blobs"))?;
            let Some(last) = page.last() else { break };
            after = Some(last.digest.clone());
            if opts.dry_run {
                for b in &page {
                    report.add(opts.list, GcKind::Unreferenced, &b.digest, b.size);
                }
                continue;
            }
            let digests: Vec<Digest> = page.iter().map(|b| b.digest.clone()).collect();
            let claimed = self
                .meta
                .gc_claim_blobs(&digests, cutoff, &owner, now)
                .await
                .map_err(internal("claiming unreferenced blobs"))?;
            self.sweep(&claimed, &owner, GcKind::Unreferenced, opts, &mut report)
                .await?;
        }

        // Bytes in storage that no row names, older than the grace window.
        let mut listing = self
            .store
            .list_blobs()
            .try_filter(|b| futures::future::ready(b.modified < cutoff_t))
            .try_chunks(BATCH as usize);
        while let Some(chunk) = listing.next().await {
            let chunk = chunk.map_err(|e| RegistryError::from(e.1))?;
            let digests: Vec<Digest> = chunk.iter().map(|b| b.digest.clone()).collect();
            let unknown = self
                .meta
                .gc_unknown_blobs(&digests)
                .await
                .map_err(internal("looking up stored blobs"))?;
            if unknown.is_empty() {
                continue;
            }
            let size_of = |d: &Digest| chunk.iter().find(|b| &b.digest == d).map_or(0, |b| b.size);
            if opts.dry_run {
                for d in &unknown {
                    report.add(opts.list, GcKind::Stray, d, size_of(d));
                }
                continue;
            }
            let claimed = self
                .meta
                .gc_claim_strays(&unknown, &owner, now)
                .await
                .map_err(internal("claiming stray blobs"))?;
            let blobs: Vec<GcBlob> = claimed
                .iter()
                .map(|d| GcBlob {
                    digest: d.clone(),
                    size: size_of(d),
                })
                .collect();
            self.sweep(&blobs, &owner, GcKind::Stray, opts, &mut report)
                .await?;
        }

        let elapsed = started.elapsed();
        report.duration_secs = elapsed.as_secs_f64();
        if !opts.dry_run {
            metrics::counter!("berth_gc_runs_total").increment(1);
            metrics::counter!("berth_gc_bytes_reclaimed_total").increment(report.bytes);
            metrics::counter!("berth_gc_objects_swept_total").increment(report.objects());
            metrics::gauge!("berth_gc_last_run_duration_seconds").set(elapsed.as_secs_f64());
            metrics::gauge!("berth_gc_last_run_bytes_reclaimed").set(report.bytes as f64);
            metrics::gauge!("berth_gc_last_run_objects_swept").set(report.objects() as f64);
            metrics::gauge!("berth_gc_last_run_timestamp_seconds").set(now as f64);
        }
        Ok(report)
    }

    /// Deletes the bytes of `claimed` (claims `owner` holds), then releases the claims.
    /// A claim lost meanwhile (taken over by another run) is left to its new owner.
    async fn sweep(
        &self,
        claimed: &[GcBlob],
        owner: &str,
        kind: GcKind,
        opts: &GcOptions,
        report: &mut GcReport,
    ) -> Result<()> {
        if claimed.is_empty() {
            return Ok(());
        }
        let digests: Vec<Digest> = claimed.iter().map(|b| b.digest.clone()).collect();
        let held = self
            .meta
            .gc_held(&digests, owner)
            .await
            .map_err(internal("checking claims"))?;
        let mut to_delete: Vec<GcBlob> = Vec::with_capacity(held.len());
        for b in claimed {
            if held.contains(&b.digest) {
                to_delete.push(b.clone());
            }
        }
        let results: Vec<(GcBlob, bool)> = futures::stream::iter(to_delete)
        .map(|b| async move {
            match self.store.delete(&b.digest).await {
                Ok(()) => (b, true),
                Err(e) => {
                    tracing::warn!(digest = %b.digest, error = %e, "garbage collection could not delete a blob; a later run retries");
                    (b, false)
                }
            }
        })
        .buffer_unordered(DELETES_IN_FLIGHT)
        .collect()
        .await;
        let mut deleted = Vec::new();
        for (b, ok) in results {
            if ok {
                report.add(opts.list, kind, &b.digest, b.size);
                deleted.push(b.digest);
            } else {
                report.failed += 1;
            }
        }
        self.meta
            .gc_release(&deleted, owner)
            .await
            .map_err(internal("releasing claims"))?;
        Ok(())
    }
}
