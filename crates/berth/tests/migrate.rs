//! `berth admin migrate` end to end (issue 14, "copy an embedded-default registry to the
//! scale-out backends, verified, resumable"; README § Moving an embedded registry to
//! PostgreSQL and S3), with the real binary, PostgreSQL, SeaweedFS, skopeo and the AWS CLI:
//!
//! - an embedded registry (SQLite + local disk) gets an image pushed with skopeo, a
//!   repository setting changed and a repository creation template created with the AWS
//!   CLI, and is stopped;
//! - a destination database that already holds another registry is refused before
//!   anything is copied (its bucket prefix stays empty);
//! - into an empty database and prefix the copy succeeds and verifies every table and
//!   blob; run again, it resumes with nothing left to copy;
//! - a node started on the copy with the old master key accepts the old administrator's
//!   credentials, serves the image with the same digest and bytes, and keeps the
//!   repository's tag mutability and the registry's repository creation template.
//!
//! Run: `cargo test -p berth --test migrate`. PostgreSQL, SeaweedFS (`weed`), skopeo,
//! umoci and the AWS CLI come from `.ci/install-clients`; outside CI a missing one makes
//! the test print `SKIPPED`, under `CI=true` it fails.

mod common;

use berth_test_support::nodes::{Node, NodeOptions};
use berth_test_support::postgres::Postgres;
use berth_test_support::seaweedfs::{self, SeaweedFs};
use common::*;
use serde_json::Value;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

const BIN: &str = env!("CARGO_BIN_EXE_berth");

/// A registry password from `berth login` against `host` with the credentials file.
fn password(host: &str, credentials: &Path) -> String {
    let mut c = Command::new(BIN);
    c.env("AWS_SHARED_CREDENTIALS_FILE", credentials)
        .env("AWS_CONFIG_FILE", "/nonexistent/berth-test/config")
        .env_remove("AWS_ACCESS_KEY_ID")
        .env_remove("AWS_SECRET_ACCESS_KEY")
        .env_remove("AWS_SESSION_TOKEN")
        .args(["login", "--registry", &format!("http://{host}")]);
    run(&mut c, SHORT).stdout.trim().to_string()
}

/// `aws ecr …` against `node` with the credentials file; returns the JSON it prints.
fn ecr(node: &Node, credentials: &Path, args: &[&str]) -> Value {
    let mut c = Command::new(aws_cli());
    c.env("AWS_SHARED_CREDENTIALS_FILE", credentials)
        .env("AWS_CONFIG_FILE", "/nonexistent/berth-test/config")
        .env_remove("AWS_ACCESS_KEY_ID")
        .env_remove("AWS_SECRET_ACCESS_KEY")
        .env_remove("AWS_SESSION_TOKEN")
        .env("AWS_DEFAULT_REGION", "us-east-1")
        .env("AWS_MAX_ATTEMPTS", "1")
        .args(["ecr", "--endpoint-url", &node.url(""), "--output", "json"])
        .args(args);
    parse_json(&run(&mut c, SHORT))
}

/// Options of a node on PostgreSQL database `db` and bucket prefix `prefix`.
fn scale_out(s3: &SeaweedFs, db: &str, prefix: &str) -> NodeOptions {
    NodeOptions::new(BIN)
        .metadata(db)
        .storage(&s3.url(prefix))
        .arg("--storage-s3-endpoint")
        .arg(s3.endpoint.clone())
        .env("AWS_ACCESS_KEY_ID", seaweedfs::ACCESS_KEY)
        .env("AWS_SECRET_ACCESS_KEY", seaweedfs::SECRET_KEY)
        .ready_timeout(Duration::from_secs(60))
}

/// `berth admin --data-dir <data> migrate --to <db> --storage <s3 prefix>`, as the
/// README gives it (the S3 credentials from the environment).
fn migrate(s3: &SeaweedFs, data: &Path, db: &str, prefix: &str) -> Output {
    let mut c = Command::new(BIN);
    c.env("AWS_ACCESS_KEY_ID", seaweedfs::ACCESS_KEY)
        .env("AWS_SECRET_ACCESS_KEY", seaweedfs::SECRET_KEY)
        .arg("admin")
        .arg("--data-dir")
        .arg(data)
        .args(["migrate", "--to", db, "--storage", &s3.url(prefix)])
        .args(["--storage-s3-endpoint", &s3.endpoint]);
    run_unchecked(&mut c, LONG)
}

/// The JSON line of `step` in migrate's output.
fn step(o: &Output, name: &str) -> Value {
    o.stdout
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .rfind(|v| v["step"] == name)
        .unwrap_or_else(|| panic!("no {name:?} line: {}", o.describe()))
}

#[test]
fn migrate_copies_an_embedded_registry_verified_and_resumable() {
    const T: &str = "migrate_copies_an_embedded_registry_verified_and_resumable";
    if !require(T, &["skopeo", "umoci", "aws"]) {
        return;
    }
    let Some(pg) = Postgres::shared(T) else {
        return;
    };
    let Some(s3) = seaweedfs::shared() else {
        assert!(!in_ci(), "{T}: weed (SeaweedFS) missing under CI=true");
        loud(&format!("SKIPPED {T}: weed (SeaweedFS) not installed"));
        return;
    };
    let rt = tokio::runtime::Runtime::new().unwrap();

    // 1. An embedded registry with an image (a 3 MB layer) and a repository setting.
    let mut embedded = Node::start(&NodeOptions::new(BIN), None).unwrap();
    let credentials = embedded.data_dir().join("admin-credentials");
    let pw = password(&embedded.host, &credentials);
    let work = tempfile::tempdir().unwrap();
    let layout = work.path().join("src");
    let layer: Vec<u8> = (0..3_000_000u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    let digest = umoci_image(&layout, "v1", "amd64", &[("/data", &layer)]);
    run(
        skopeo()
            .args(["copy", "--dest-tls-verify=false", "--dest-creds"])
            .arg(format!("AWS:{pw}"))
            .arg(format!("oci:{}:v1", layout.display()))
            .arg(format!("docker://{}/mig/app:v1", embedded.host)),
        LONG,
    );
    ecr(
        &embedded,
        &credentials,
        &[
            "put-image-tag-mutability",
            "--repository-name",
            "mig/app",
            "--image-tag-mutability",
            "IMMUTABLE",
        ],
    );
    ecr(
        &embedded,
        &credentials,
        &[
            "create-repository-creation-template",
            "--prefix",
            "mig",
            "--applied-for",
            "CREATE_ON_PUSH",
            "--description",
            "copied too",
        ],
    );
    embedded.kill(); // the copy needs the data directory unlocked

    // 2. A database already used by another registry is refused before anything is
    //    copied: the destination prefix stays empty.
    let other_db = pg.database();
    let other = Node::start(
        &scale_out(s3, &other_db, &seaweedfs::unique_prefix("mig-other")),
        None,
    )
    .unwrap();
    drop(other);
    let prefix = seaweedfs::unique_prefix("mig");
    let refused = migrate(s3, &embedded.data_dir(), &other_db, &prefix);
    assert!(!refused.success(), "{}", refused.describe());
    assert!(
        refused.stderr.contains("already holds another registry")
            && refused.stderr.contains("nothing was copied"),
        "{}",
        refused.describe()
    );
    assert!(
        rt.block_on(s3.list(&format!("{prefix}/"))).is_empty(),
        "nothing copied into the bucket"
    );

    // 3. Into an empty database: every blob copied, every table verified. Again: the
    //    rerun resumes and finds nothing left to copy.
    let db = pg.database();
    let first = migrate(s3, &embedded.data_dir(), &db, &prefix);
    assert!(first.success(), "{}", first.describe());
    let blobs = step(&first, "blobs");
    let total = blobs["total"].as_u64().unwrap();
    assert!(total >= 2, "a config and a layer at least: {blobs}");
    assert_eq!(blobs["copied"], total, "{blobs}");
    let verified = step(&first, "verified");
    assert_eq!(
        verified["tables_differing"],
        serde_json::json!([]),
        "{verified}"
    );
    assert_eq!(
        verified["blobs_missing"],
        serde_json::json!([]),
        "{verified}"
    );
    let again = migrate(s3, &embedded.data_dir(), &db, &prefix);
    assert!(again.success(), "{}", again.describe());
    let blobs = step(&again, "blobs");
    assert_eq!(
        (blobs["copied"].as_u64(), blobs["skipped"].as_u64()),
        (Some(0), Some(total)),
        "{blobs}"
    );

    // 4. A node on the copy, with the embedded registry's master key: the old
    //    administrator's key works, the image comes back with its digest and bytes, and
    //    the repository keeps its tag mutability.
    let node = Node::start(
        &scale_out(s3, &db, &prefix).master_key_file(embedded.data_dir().join("master.key")),
        None,
    )
    .unwrap();
    let pw = password(&node.host, &credentials);
    let out = work.path().join("out");
    run(
        skopeo()
            .args(["copy", "--src-tls-verify=false", "--src-creds"])
            .arg(format!("AWS:{pw}"))
            .arg(format!("docker://{}/mig/app:v1", node.host))
            .arg(format!("oci:{}:v1", out.display())),
        LONG,
    );
    assert_eq!(
        layout_manifest_digest(&out, "v1"),
        digest,
        "same manifest digest"
    );
    let manifest: Value = serde_json::from_slice(&layout_blob(&out, &digest)).unwrap();
    let layer_digest = manifest["layers"][0]["digest"].as_str().unwrap();
    assert_eq!(
        layout_blob(&out, layer_digest),
        layout_blob(&layout, layer_digest),
        "the layer's bytes"
    );
    let repos = ecr(
        &node,
        &credentials,
        &["describe-repositories", "--repository-names", "mig/app"],
    );
    assert_eq!(
        repos["repositories"][0]["imageTagMutability"], "IMMUTABLE",
        "{repos}"
    );
    let templates = ecr(
        &node,
        &credentials,
        &["describe-repository-creation-templates"],
    );
    assert_eq!(
        templates["repositoryCreationTemplates"][0]["description"], "copied too",
        "repository creation templates are copied: {templates}"
    );
}
