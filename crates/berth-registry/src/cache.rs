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

use berth_meta::ManifestRow;
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};

/// Entries kept before the map is cleared.
const MAX_ENTRIES: usize = 16_384;

/// Cache of manifests keyed by (repository, reference as written).
#[derive(Default)]
pub struct ManifestCache {
    generation: AtomicU64,
    map: RwLock<HashMap<(String, String), Arc<ManifestRow>>>,
}

impl ManifestCache {
    /// The current generation; pass it to [`ManifestCache::insert`] after the database read.
    pub fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }

    /// A cached manifest.
    pub fn get(&self, repo: &str, reference: &str) -> Option<Arc<ManifestRow>> {
        // Looking up with a borrowed tuple key needs an owned key; keys are short.
        self.map
            .read()
            .ok()?
            .get(&(repo.to_owned(), reference.to_owned()))
            .cloned()
    }

    /// Caches `row` unless a write happened since `generation` was read.
    pub fn insert(&self, generation: u64, repo: &str, reference: &str, row: Arc<ManifestRow>) {
        let Ok(mut map) = self.map.write() else {
            return;
        };
        if self.generation.load(Ordering::Acquire) != generation {
            return;
        }
        if map.len() >= MAX_ENTRIES {
            map.clear();
        }
        map.insert((repo.to_owned(), reference.to_owned()), row);
    }

    /// Forgets everything; call after any change to manifests or tags.
    pub fn invalidate(&self) {
        if let Ok(mut map) = self.map.write() {
            self.generation.fetch_add(1, Ordering::AcqRel);
            map.clear();
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
            body: b"m".to_vec(),
        })
    }

    // A read that raced with a write must not re-insert the stale answer.
    #[test]
    fn stale_reads_are_not_cached() {
        let c = ManifestCache::default();
        let g = c.generation();
        c.invalidate(); // a push lands between the reader's DB read and its insert
        c.insert(g, "r", "latest", row());
        assert!(c.get("r", "latest").is_none());
        let g = c.generation();
        c.insert(g, "r", "latest", row());
        assert!(c.get("r", "latest").is_some());
        c.invalidate();
        assert!(c.get("r", "latest").is_none());
    }
}
