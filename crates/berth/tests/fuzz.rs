//! Issue 19, "the fuzz targets build and run briefly in CI": runs `fuzz/smoke.sh`, which
//! builds every cargo-fuzz target in `fuzz/` (OCI endpoint paths, OCI listing query
//! strings (`n`, `last`, `artifactType`), references and
//! digests, manifests and indexes, Range headers, IAM policies, SigV4, login tokens and
//! presigned URLs, EventBridge event patterns, ECR lifecycle policies, image layers,
//! package databases and OSV records) and runs each for a few seconds from its
//! committed seeds, checking each target's properties (round trips, determinism, no
//! panic, no overflow with debug assertions on).
//!
//! `BERTH_FUZZ_SECONDS` sets the time per target (default 15). Needs cargo-fuzz
//! (`.ci/install-clients`); without it the test says SKIPPED, and fails under `CI=true`.

mod common;

use common::*;
use std::path::Path;
use std::process::Command;

#[test]
fn every_fuzz_target_builds_and_runs_without_a_failure() {
    if !require(
        "every_fuzz_target_builds_and_runs_without_a_failure",
        &["cargo-fuzz"],
    ) {
        return;
    }
    let secs = std::env::var("BERTH_FUZZ_SECONDS").unwrap_or_else(|_| "15".into());
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fuzz/smoke.sh");
    let out = Command::new("bash")
        .arg(&script)
        .arg(&secs)
        .output()
        .expect("run fuzz/smoke.sh");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    println!("{stdout}");
    assert!(
        out.status.success(),
        "fuzz/smoke.sh failed:\n{stdout}\n{}",
        stderr
            .lines()
            .rev()
            .take(60)
            .collect::<Vec<_>>()
            .into_iter()
            .rev()
            .collect::<Vec<_>>()
            .join("\n")
    );
    assert!(stdout.contains("every target ran"), "{stdout}");
}
