//! ARCHITECTURE.md: "dependencies point downward only". Checks the workspace's crate
//! graph with `cargo metadata`, so a new dependency that breaks a seam fails CI.

use std::collections::{BTreeMap, BTreeSet};
use std::process::Command;

/// For each workspace crate: the workspace crates it may depend on.
const ALLOWED: &[(&str, &[&str])] = &[
    ("berth-core", &[]),
    ("berth-store", &["berth-core"]),
    ("berth-meta", &["berth-core"]),
    ("berth-iam", &["berth-core", "berth-meta"]),
    // Background work (issue 8): the queue lives in the metadata store.
    ("berth-jobs", &["berth-core", "berth-meta"]),
    // Events and event patterns: pure, no storage.
    ("berth-events", &["berth-core"]),
    // The scanner (issue 11): layers to inventories, OSV matching; pure, no Berth crate.
    ("berth-scan", &[]),
    // HTTP plumbing both adapters share (early answers and request bodies): no Berth
    // crate below it.
    ("berth-http", &[]),
    // The event pipeline: hooks, fan-out and webhook delivery on the job queue.
    (
        "berth-eventbus",
        &["berth-core", "berth-meta", "berth-jobs", "berth-events"],
    ),
    (
        "berth-registry",
        &["berth-core", "berth-store", "berth-meta", "berth-scan"],
    ),
    // Replication (issue 9): the push hook and the copy job, on the registry service
    // (the source's side) and a peer's public HTTP API (the destination's).
    (
        "berth-replication",
        &[
            "berth-core",
            "berth-meta",
            "berth-jobs",
            "berth-registry",
            "berth-events",
            "berth-eventbus",
        ],
    ),
    // The adapters depend on services, never on the stores (issue 16), nor on each
    // other (DESIGN.md).
    (
        "berth-oci-api",
        &["berth-core", "berth-registry", "berth-iam", "berth-http"],
    ),
    (
        "berth-ecr-api",
        &["berth-core", "berth-registry", "berth-iam", "berth-http"],
    ),
    // The EventBridge API (issue 8): also the pure event-pattern language.
    (
        "berth-events-api",
        &["berth-registry", "berth-iam", "berth-events", "berth-http"],
    ),
    // The STS API (issue 13): identity only, no registry.
    ("berth-sts-api", &["berth-iam", "berth-http"]),
    // Test fixtures may use everything, the binary's `serve::app` included.
    (
        "berth-test-support",
        &[
            "berth",
            "berth-core",
            "berth-store",
            "berth-meta",
            "berth-registry",
            "berth-iam",
            "berth-oci-api",
            "berth-ecr-api",
            "berth-http",
            "berth-events-api",
        ],
    ),
];

/// The adapters' source directories: they must not name the stores' crates at all (not
/// even through a re-export), so storage record types cannot leak into the wire code.
const ADAPTERS: &[&str] = &[
    "berth-oci-api",
    "berth-ecr-api",
    "berth-events-api",
    "berth-sts-api",
];

/// The crate of shared test fixtures: a dev-dependency only.
const TEST_SUPPORT: &str = "berth-test-support";

/// Crates that only the HTTP adapters, their shared plumbing (berth-http) and the binary
/// may use.
const HTTP_CRATES: &[&str] = &["axum", "hyper", "http", "tower-http"];

#[test]
fn crate_dependencies_point_downward() {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let out = Command::new(cargo)
        .args([
            "metadata",
            "--format-version",
            "1",
            "--no-deps",
            "--offline",
        ])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("running cargo metadata");
    assert!(
        out.status.success(),
        "cargo metadata failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let meta: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let mut deps: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for p in meta["packages"].as_array().unwrap() {
        let name = p["name"].as_str().unwrap().to_string();
        // Shipped code never links the test fixtures: only `[dev-dependencies]` name them.
        for d in p["dependencies"].as_array().unwrap() {
            if d["name"] == TEST_SUPPORT {
                assert_eq!(
                    d["kind"], "dev",
                    "{name} may depend on {TEST_SUPPORT} only as a dev-dependency"
                );
            }
        }
        if name == TEST_SUPPORT {
            assert_eq!(
                p["publish"],
                serde_json::json!([]),
                "{TEST_SUPPORT} must have `publish = false`"
            );
        }
        let normal = p["dependencies"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|d| d["kind"].is_null()) // normal deps only; tests may use anything
            .map(|d| d["name"].as_str().unwrap().to_string())
            .collect();
        deps.insert(name, normal);
    }
    for (krate, allowed) in ALLOWED {
        let have = deps
            .get(*krate)
            .unwrap_or_else(|| panic!("{krate} is not in the workspace"));
        for d in have.iter().filter(|d| d.starts_with("berth")) {
            assert!(
                allowed.contains(&d.as_str()),
                "{krate} must not depend on {d} (see ARCHITECTURE.md)"
            );
        }
        if ![
            "berth-oci-api",
            "berth-ecr-api",
            "berth-events-api",
            "berth-sts-api",
            "berth-http",
            TEST_SUPPORT,
        ]
        .contains(krate)
        {
            for h in HTTP_CRATES {
                assert!(
                    !have.contains(*h),
                    "{krate} must know nothing about HTTP, but depends on {h}"
                );
            }
        }
    }
}

// Issue 16: "adapters depend on services, not on stores". A dependency check cannot see
// a re-export, so the adapters' sources are read too.
#[test]
fn adapters_name_no_store_crate() {
    let crates = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    for adapter in ADAPTERS {
        let mut dirs = vec![crates.join(adapter).join("src")];
        while let Some(dir) = dirs.pop() {
            for entry in std::fs::read_dir(&dir).unwrap().flatten() {
                let path = entry.path();
                if path.is_dir() {
                    dirs.push(path);
                    continue;
                }
                if path.extension().is_none_or(|e| e != "rs") {
                    continue;
                }
                let text = std::fs::read_to_string(&path).unwrap();
                for (i, line) in text.lines().enumerate() {
                    for store in ["berth_store", "berth_meta"] {
                        assert!(
                            !line.contains(store),
                            "{}:{}: an adapter names `{store}`; use the types berth-registry \
                             exports",
                            path.display(),
                            i + 1
                        );
                    }
                }
            }
        }
    }
}
