//! A read cache for manifest lookups, the registry's hottest path (every pull starts
//! with a manifest GET or HEAD by tag).
//!
//! Written here rather than taken from a caching crate because correctness hinges on one
//! registry-specific rule that a generic cache does not give: a lookup that raced with a
//! write must never put the old answer back. Every write bumps a generation counter and
//! clears the map; a reader inserts only if the generation it saw before reading the
//! database is still current. The map is bounded: when full it is cleared (pulls refill
//! it at one database read per entry).
//!
//! Assumes this process is the only writer of its metadata, which holds for the embedded
//! SQLite default. A shared-database deployment must not enable it (see `RegistryConfig`).

use berth_core::{Reference, RepositoryName};
use berth_meta::ManifestRow;
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};

/// Entries kept before the map is cleared.
const MAX_ENTRIES: usize = 16_384;

/// Manifests by repository, then by reference (tag or digest) as requested. Keyed by the
/// validated types so a lookup borrows its key: no allocation on the hot path.
type Map = HashMap<RepositoryName, HashMap<Reference, Arc<ManifestRow>>>;

/// Cache of manifests keyed by (repository, reference).
#[derive(Default)]
pub struct ManifestCache {
    generation: AtomicU64,
    /// The map and its total number of entries.
    map: RwLock<(Map, usize)>,
}

impl ManifestCache {
    /// The current generation; pass it to [`ManifestCache::insert`] after the database read.
    pub fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }

    /// A cached manifest.
    pub fn get(&self, repo: &RepositoryName, reference: &Reference) -> Option<Arc<ManifestRow>> {
        self.map.read().ok()?.0.get(repo)?.get(reference).cloned()
    }

    /// Caches `row` unless a write happened since `generation` was read.
    pub fn insert(
        &self,
        generation: u64,
        repo: &RepositoryName,
        reference: &Reference,
        row: Arc<ManifestRow>,
    ) {
        let Ok(mut guard) = self.map.write() else {
            return;
        };
        if self.generation.load(Ordering::Acquire) != generation {
            return;
        }
        let (map, len) = &mut *guard;
        if *len >= MAX_ENTRIES {
            map.clear();
            *len = 0;
        }
        if map
            .entry(repo.clone())
            .or_default()
            .insert(reference.clone(), row)
            .is_none()
        {
            *len += 1;
        }
    }

    /// Forgets everything; call after any change to manifests or tags.
    pub fn invalidate(&self) {
        if let Ok(mut guard) = self.map.write() {
            self.generation.fetch_add(1, Ordering::AcqRel);
            guard.0.clear();
            guard.1 = 0;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row() -> Arc<ManifestRow> {
        Arc::new(ManifestRow {
            digest: berth_core::Digest::sha256_of(b"m"),
            media_type: "x".into(),
            body: bytes::Bytes::from_static(b"m"),
        })
    }

    // A read that raced with a write must not re-insert the stale answer.
    #[test]
    fn stale_reads_are_not_cached() {
        let c = ManifestCache::default();
        let (r, latest) = (
            RepositoryName::parse("r").unwrap(),
            Reference::parse("latest").unwrap(),
        );
        let g = c.generation();
        c.invalidate(); // a push lands between the reader's DB read and its insert
        c.insert(g, &r, &latest, row());
        assert!(c.get(&r, &latest).is_none());
        let g = c.generation();
        c.insert(g, &r, &latest, row());
        assert!(c.get(&r, &latest).is_some());
        c.invalidate();
        assert!(c.get(&r, &latest).is_none());
    }
}
