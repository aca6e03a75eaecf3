//! Pull times (ECR `lastRecordedPullTime`), recorded without touching the database on
//! the pull path.
//!
//! A manifest GET is the registry's hottest request, so a pull only updates an entry in
//! an in-memory map (no allocation once the image has been pulled before); the map is
//! written to the metadata store in one transaction by [`crate::Registry::flush_pulls`],
//! which the server calls periodically and the image-describing calls call first. A
//! crash loses the pulls since the last flush, which ECR's own contract allows ("at least
//! once every 24 hours"). The map is bounded; past the bound new images are not recorded
//! until the next flush.

use berth_core::{Digest, RepositoryName};
use berth_meta::repository::Pull;
use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{SystemTime, UNIX_EPOCH};

/// Distinct images remembered between two flushes.
const MAX_PENDING: usize = 65_536;

type Map = HashMap<RepositoryName, HashMap<Digest, i64>>;

/// Pulls not yet written to the metadata store.
#[derive(Default)]
pub struct PullRecorder {
    pending: Mutex<(Map, usize)>,
}

fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

impl PullRecorder {
    /// Notes that `digest` was pulled from `repo` now.
    pub fn record(&self, repo: &RepositoryName, digest: &Digest) {
        let at = now();
        let Ok(mut guard) = self.pending.lock() else {
            return;
        };
        let (map, len) = &mut *guard;
        if let Some(t) = map.get_mut(repo).and_then(|m| m.get_mut(digest)) {
            *t = at;
            return;
        }
        if *len >= MAX_PENDING {
            return;
        }
        map.entry(repo.clone())
            .or_default()
            .insert(digest.clone(), at);
        *len += 1;
    }

    /// Takes every pending pull, leaving the recorder empty.
    pub fn take(&self) -> Vec<Pull> {
        let Ok(mut guard) = self.pending.lock() else {
            return Vec::new();
        };
        let (map, len) = std::mem::take(&mut *guard);
        let mut out = Vec::with_capacity(len);
        for (repo, digests) in map {
            for (d, at) in digests {
                out.push((repo.clone(), d, at));
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repeated_pulls_keep_one_entry() {
        let r = PullRecorder::default();
        let repo = RepositoryName::parse("a/b").unwrap();
        let d = Digest::sha256_of(b"x");
        r.record(&repo, &d);
        r.record(&repo, &d);
        r.record(&repo, &Digest::sha256_of(b"y"));
        assert_eq!(r.take().len(), 2);
        assert!(r.take().is_empty());
    }
}
