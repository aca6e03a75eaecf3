//! ECR lifecycle policies (ECR_REFERENCE.md §2.9): parsing never panics; a policy that
//! parses parses to the same rules again, and its evaluation over images made from the
//! rest of the input is deterministic, expires each image at most once, never a
//! dependent (index child, referrer) before or without all its parents, and with a
//! `rulePriority` of the policy.
#![no_main]

use berth_core::lifecycle::{evaluate, LifecycleImage, LifecyclePolicy, DAY_SECS};
use libfuzzer_sys::fuzz_target;
use std::collections::HashSet;

const TAGS: [&str; 6] = ["prod", "prod-1", "v1", "dev", "latest", "release-2"];

// Input: the policy text, a NUL byte, then 3 bytes per image (tags bitmap, age in days,
// parent index + 1 or 0), so seeds are a plain policy text.
fuzz_target!(|data: &[u8]| {
    let split = data.iter().position(|b| *b == 0).unwrap_or(data.len());
    let Ok(text) = std::str::from_utf8(&data[..split]) else {
        return;
    };
    let Ok(policy) = LifecyclePolicy::parse(text) else {
        return;
    };
    assert_eq!(LifecyclePolicy::parse(text).as_ref(), Ok(&policy));
    let now = 10_000 * DAY_SECS;
    let rest = data.get(split + 1..).unwrap_or(&[]);
    let images: Vec<LifecycleImage> = rest
        .chunks_exact(3)
        .take(64)
        .enumerate()
        .map(|(i, c)| LifecycleImage {
            digest: format!("sha256:{i:02}"),
            tags: TAGS
                .iter()
                .enumerate()
                .filter(|(bit, _)| c[0] & (1 << bit) != 0)
                .map(|(_, t)| format!("{t}-{i}"))
                .collect(),
            pushed_at: now - i64::from(c[1]) * DAY_SECS,
            last_pulled_at: (c[0] & 0x80 != 0).then(|| now - i64::from(c[1] / 2) * DAY_SECS),
            parents: match c[2] as usize {
                0 => vec![],
                p if p - 1 < i => vec![format!("sha256:{:02}", p - 1)],
                p => vec![format!("sha256:missing{p}")],
            },
        })
        .collect();
    let out = evaluate(&policy, &images, now);
    assert_eq!(out, evaluate(&policy, &images, now), "deterministic");
    let priorities: HashSet<u32> = policy.rules.iter().map(|r| r.priority).collect();
    let mut seen = HashSet::new();
    for e in &out {
        assert!(seen.insert(e.digest.clone()), "expired twice: {}", e.digest);
        assert!(priorities.contains(&e.rule_priority));
        let image = images.iter().find(|i| i.digest == e.digest).expect("an input image");
        for p in &image.parents {
            if images.iter().any(|i| &i.digest == p) {
                assert!(seen.contains(p), "{} expired before or without its parent {p}", e.digest);
            }
        }
    }
});
