//! ECR replication configurations (`PutReplicationConfiguration`'s
//! `replicationConfiguration`, ECR_REFERENCE.md §2.5): parsing any JSON never panics; a
//! configuration that parses serialises to JSON that parses to the same configuration,
//! and matching any repository name never panics and yields only its own destinations,
//! each once.
#![no_main]

use berth_core::replication::ReplicationConfiguration;
use libfuzzer_sys::fuzz_target;

// Input: the configuration JSON, a NUL byte, a repository name (so seeds are plain text).
fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let (json, repo) = text.split_once('\0').unwrap_or((text, "myapp/web"));
    let Ok(value) = serde_json::from_str::<serde_json::Value>(json) else {
        return;
    };
    let Ok(cfg) = ReplicationConfiguration::parse(&value, "us-east-1", "111111111111") else {
        return;
    };
    let again = serde_json::to_value(&cfg).unwrap();
    let cfg2 = ReplicationConfiguration::parse(&again, "us-east-1", "111111111111").unwrap();
    assert_eq!(cfg, cfg2);
    let dests = cfg.destinations_for(repo);
    for (i, d) in dests.iter().enumerate() {
        assert!(!dests[..i].contains(d));
        assert!(cfg.rules.iter().any(|r| r.destinations.contains(d)));
    }
});
