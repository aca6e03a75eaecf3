//! Repository names, tags, digests and references (distribution-spec § Pulling
//! manifests grammar): parsing never panics, and what parses prints back unchanged.
#![no_main]

use berth_core::{Digest, Reference, RepositoryName, Tag};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|s: &str| {
    if let Ok(n) = RepositoryName::parse(s) {
        assert_eq!(n.to_string(), s);
    }
    if let Ok(t) = Tag::parse(s) {
        assert_eq!(t.to_string(), s);
    }
    if let Ok(d) = s.parse::<Digest>() {
        assert_eq!(d.to_string(), s);
    }
    if let Ok(r) = Reference::parse(s) {
        assert_eq!(r.to_string(), s);
        assert_eq!(Reference::parse(&r.to_string()).ok(), Some(r));
    }
});
