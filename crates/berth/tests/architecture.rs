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
    (
        "berth-registry",
        &["berth-core", "berth-store", "berth-meta"],
    ),
    (
        "berth-oci-api",
        &["berth-core", "berth-store", "berth-registry", "berth-iam"],
    ),
    // The ECR adapter: never the OCI adapter (DESIGN.md: adapters do not depend on
    // each other).
    (
        "berth-ecr-api",
        &[
            "berth-core",
            "berth-store",
            "berth-meta",
            "berth-registry",
            "berth-iam",
        ],
    ),
];

/// Crates that only the HTTP adapters and the binary may use.
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
        if !["berth-oci-api", "berth-ecr-api"].contains(krate) {
            for h in HTTP_CRATES {
                assert!(
                    !have.contains(*h),
                    "{krate} must know nothing about HTTP, but depends on {h}"
                );
            }
        }
    }
}
