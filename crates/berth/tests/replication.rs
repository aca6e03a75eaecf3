//! Cross-region replication end to end (issue 9; ECR_REFERENCE.md §2.5): three real
//! `berth serve` deployments on loopback — `us-east-1` (the source) and `ap-south-1`,
//! `eu-west-1` (destinations, authentication on), one registry (account
//! `111111111111`) — shared by this file's tests. The source's config file declares
//! both destinations as `[[replication.peers]]` with the access keys the destinations
//! issued (their administrators'); deployments talk only through their public APIs.
//!
//! - The real `aws ecr put-replication-configuration` sets a rule `myapp/` → both
//!   destinations; its validation errors (a wildcard filter, 11 rules, 26 destinations,
//!   the source itself as destination) are ECR's `InvalidParameterException`s, and
//!   `aws ecr describe-registry` shows the stored configuration.
//! - A two-platform image index pushed with `skopeo copy --all`, plus a referrer (an
//!   artifact whose `subject` is the index, OCI distribution-spec § Listing referrers):
//!   `berth replication wait` exits 0, `aws ecr describe-image-replication-status`
//!   shows both destinations `COMPLETE`, and both destinations serve the identical
//!   index digest, both children, every blob and the referrer (in their referrers
//!   list). An image outside the prefix is not replicated (no status, 404 there).
//! - Each outcome is an `ECR Replication Action` event (source: SUCCESS per destination,
//!   FAILED with Berth's `failure-code`; destination: SUCCESS per tag received).
//! - Cross-account (a fourth deployment, account `222222222222`): FAILED naming
//!   `ecr:ReplicateImage` until the destination's registry policy has the statement
//!   ECR's documentation shows, then COMPLETE.
//! - A destination that is down (a fifth deployment, stopped): IN_PROGRESS while it
//!   is, COMPLETE once it is back.
//! - `deleteReplication`: deletions replicate where it is enabled, and only there.
//! - A destination without a configured peer is `FAILED` with `PEER_NOT_CONFIGURED`
//!   (never silently dropped), and `berth replication wait` exits non-zero naming it.
//!
//! Run: `cargo test -p berth --test replication`. skopeo, umoci and the AWS CLI come from
//! `.ci/install-clients`; outside CI a missing client makes the tests print `SKIPPED`.

mod common;

use berth_test_support::nodes::{Node, NodeOptions};
use common::*;
use serde_json::{json, Value};
use sha2::{Digest as _, Sha256};
use std::fs;
use std::path::Path;
use std::process::Command;
use std::sync::OnceLock;

const ACCOUNT: &str = "111111111111";
/// The second account's registry (cross-account replication).
const OTHER: &str = "222222222222";
const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";

fn sha(data: &[u8]) -> String {
    format!("sha256:{:x}", Sha256::digest(data))
}

/// The three deployments, started once for the whole file.
struct World {
    source: Node,
    ap: Node,
    eu: Node,
    /// `eu-west-1` of another registry (account [`OTHER`]).
    xa: Node,
    /// `us-west-1`, which one test stops and starts again.
    flaky: std::sync::Mutex<Node>,
    _config: tempfile::TempDir,
}

/// The access key in a deployment's `admin-credentials` (`[default]` profile).
fn admin_key(node: &Node) -> (String, String) {
    let text = fs::read_to_string(node.data_dir().join("admin-credentials")).unwrap();
    let get = |k: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(k))
            .map(|v| v.trim_start_matches([' ', '=']).trim().to_string())
            .unwrap_or_else(|| panic!("{k} in admin-credentials"))
    };
    (get("aws_access_key_id"), get("aws_secret_access_key"))
}

fn world() -> &'static World {
    static WORLD: OnceLock<World> = OnceLock::new();
    WORLD.get_or_init(|| {
        let bin = env!("CARGO_BIN_EXE_berth");
        let dest = |region: &str| {
            let opts = NodeOptions::new(bin)
                .arg("--region")
                .arg(region)
                .arg("--account-id")
                .arg(ACCOUNT);
            Node::start(&opts, None).unwrap_or_else(|e| panic!("{region}: {e}"))
        };
        let ap = dest("ap-south-1");
        let eu = dest("eu-west-1");
        let flaky = dest("us-west-1");
        // The other account's registry knows the source account and one of its users,
        // with the identity policy the source account grants its replication (ECR's
        // service-linked role); whether that user may push is the registry policy's call.
        let xa = Node::start(
            &NodeOptions::new(bin)
                .arg("--region")
                .arg("eu-west-1")
                .arg("--account-id")
                .arg(OTHER),
            None,
        )
        .unwrap_or_else(|e| panic!("{OTHER}: {e}"));
        let admin = |args: &[&str]| {
            let o = run(
                Command::new(bin)
                    .arg("admin")
                    .arg("--data-dir")
                    .arg(xa.data_dir())
                    .args(args),
                SHORT,
            );
            assert!(o.success(), "{}", o.describe());
            o
        };
        admin(&["account", "create", ACCOUNT]);
        admin(&["user", "create", "replication", "--account", ACCOUNT]);
        admin(&[
            "policy", "put", "--user", "replication", "--account", ACCOUNT, "--name",
            "replicate", "--document",
            r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":["ecr:ReplicateImage","ecr:CreateRepository"],"Resource":"*"}]}"#,
        ]);
        let key = parse_json(&admin(&[
            "key", "create", "--user", "replication", "--account", ACCOUNT, "--format", "json",
        ]));
        let xa_key = (
            key["AccessKeyId"].as_str().unwrap().to_string(),
            key["SecretAccessKey"].as_str().unwrap().to_string(),
        );
        let config = tempfile::tempdir().unwrap();
        let mut toml = String::new();
        for (region, account, node, (id, secret)) in [
            ("ap-south-1", ACCOUNT, &ap, admin_key(&ap)),
            ("eu-west-1", ACCOUNT, &eu, admin_key(&eu)),
            ("eu-west-1", OTHER, &xa, xa_key),
            ("us-west-1", ACCOUNT, &flaky, admin_key(&flaky)),
        ] {
            toml.push_str(&format!(
                "[[replication.peers]]\nregion = \"{region}\"\nregistry_id = \"{account}\"\n\
                 endpoint = \"http://{}\"\naccess_key_id = \"{id}\"\n\
                 secret_access_key = \"{secret}\"\n\n",
                node.host
            ));
        }
        let file = config.path().join("berth.toml");
        fs::write(&file, toml).unwrap();
        let opts = NodeOptions::new(bin)
            .arg("--region")
            .arg("us-east-1")
            .arg("--account-id")
            .arg(ACCOUNT)
            .arg("--allow-anonymous")
            .arg("--config")
            .arg(file.to_str().unwrap());
        let source = Node::start(&opts, None).unwrap_or_else(|e| panic!("source: {e}"));
        let world = World {
            source,
            ap,
            eu,
            xa,
            flaky: std::sync::Mutex::new(flaky),
            _config: config,
        };
        configure(&world);
        world
    })
}

/// The AWS CLI against `node` (region `region`) as its administrator.
fn aws(node: &Node, region: &str, args: &[&str]) -> Output {
    let mut c = Command::new(aws_cli());
    c.args(["ecr", "--endpoint-url"])
        .arg(node.url(""))
        .args(["--region", region, "--output", "json"])
        .args(args);
    aws_env(&mut c, &node.data_dir().join("admin-credentials"));
    run_unchecked(&mut c, SHORT)
}

/// `berth replication wait` against the source.
fn wait(w: &World, args: &[&str]) -> Output {
    let mut c = Command::new(env!("CARGO_BIN_EXE_berth"));
    c.args(["replication", "wait", "--registry"])
        .arg(w.source.url(""))
        .args(["--region", "us-east-1"])
        .args(args)
        .env(
            "AWS_SHARED_CREDENTIALS_FILE",
            w.source.data_dir().join("admin-credentials"),
        )
        .env_remove("AWS_ACCESS_KEY_ID")
        .env_remove("AWS_SECRET_ACCESS_KEY")
        .env_remove("AWS_PROFILE");
    run_unchecked(&mut c, LONG)
}

fn dest(region: &str) -> Value {
    json!({"region": region, "registryId": ACCOUNT})
}

/// The configuration every test relies on: `myapp/` to both destinations, `nopeer/` to
/// a region no peer is configured for, `xacct/` to the other account, `flaky/` to the
/// deployment one test stops, and `deltest/` to eu-west-1 with `deleteReplication`.
/// Put once, when the deployments start: first the rules the installed AWS CLI can
/// express, through it (its botocore model predates `deleteReplication` and refuses the
/// member client-side), then the whole configuration with `deleteReplication` as a
/// SigV4-signed PutReplicationConfiguration (the same wire call, signed as botocore
/// signs it). Tests never put another one, so they cannot race on it.
fn configure(w: &World) {
    let mut rules = vec![
        json!({"destinations": [dest("ap-south-1"), dest("eu-west-1")],
               "repositoryFilters": [{"filter": "myapp/", "filterType": "PREFIX_MATCH"}]}),
        json!({"destinations": [dest("us-west-2")],
               "repositoryFilters": [{"filter": "nopeer/", "filterType": "PREFIX_MATCH"}]}),
        json!({"destinations": [{"region": "eu-west-1", "registryId": OTHER}],
               "repositoryFilters": [{"filter": "xacct/", "filterType": "PREFIX_MATCH"}]}),
        json!({"destinations": [dest("us-west-1")],
               "repositoryFilters": [{"filter": "flaky/", "filterType": "PREFIX_MATCH"}]}),
    ];
    let cfg = json!({ "rules": rules });
    let o = aws(
        &w.source,
        "us-east-1",
        &[
            "put-replication-configuration",
            "--replication-configuration",
            &cfg.to_string(),
        ],
    );
    assert!(o.success(), "{}", o.describe());
    assert_eq!(parse_json(&o)["replicationConfiguration"], cfg);
    rules.push(json!({"destinations": [dest("eu-west-1")],
        "repositoryFilters": [{"filter": "deltest/", "filterType": "PREFIX_MATCH"}],
        "deleteReplication": {"enabled": true}}));
    let body = json!({"replicationConfiguration": {"rules": rules}}).to_string();
    let url = w.source.url("/");
    let (id, secret) = admin_key(&w.source);
    let base = [
        ("content-type", "application/x-amz-json-1.1"),
        (
            "x-amz-target",
            "AmazonEC2ContainerRegistry_V20150921.PutReplicationConfiguration",
        ),
    ];
    let signed = berth_iam::sigv4::sign(
        "POST",
        &url,
        &base,
        body.as_bytes(),
        &id,
        &secret,
        None,
        "us-east-1",
        "ecr",
        std::time::SystemTime::now(),
    )
    .unwrap();
    let mut headers: Vec<(&str, &str)> = base.to_vec();
    headers.extend(signed.iter().map(|(k, v)| (k.as_str(), v.as_str())));
    let r = http("POST", &url, &headers, Some(body.as_bytes()));
    assert_eq!(r.status, 200, "{}", r.describe());
    assert_eq!(
        r.json()["replicationConfiguration"]["rules"][4]["deleteReplication"]["enabled"],
        true
    );
}

/// An authenticated request to a destination (its administrator's key, Basic).
fn dest_get(node: &Node, path: &str) -> Resp {
    let (id, secret) = admin_key(node);
    let auth = format!(
        "Basic {}",
        base64_encode(format!("{id}:{secret}").as_bytes())
    );
    http(
        "GET",
        &node.url(path),
        &[("Authorization", &auth), ("Accept", MANIFEST_ACCEPT)],
        None,
    )
}

/// RFC 4648 base64 (the tests' one use: a Basic authorization header).
fn base64_encode(data: &[u8]) -> String {
    const T: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for c in data.chunks(3) {
        let n = (c[0] as u32) << 16
            | (*c.get(1).unwrap_or(&0) as u32) << 8
            | *c.get(2).unwrap_or(&0) as u32;
        for i in 0..4 {
            if i <= c.len() {
                out.push(T[(n >> (18 - 6 * i)) as usize & 63] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// Writes `data` as a blob of the OCI layout; returns its descriptor JSON.
fn layout_put(layout: &Path, media: &str, data: &[u8]) -> Value {
    let d = sha(data);
    fs::write(
        layout
            .join("blobs/sha256")
            .join(d.strip_prefix("sha256:").unwrap()),
        data,
    )
    .unwrap();
    json!({"mediaType": media, "digest": d, "size": data.len()})
}

/// An OCI layout holding a two-platform image index tagged `v1` (two umoci images,
/// linux/amd64 and linux/arm64, and an index over them, image-index.md). Returns the
/// index digest and the children's digests.
fn two_platform_layout(layout: &Path, nonce: &str) -> (String, Vec<String>) {
    let mut children = Vec::new();
    let mut descs = Vec::new();
    for arch in ["amd64", "arm64"] {
        let content = format!("{nonce} {arch}\n");
        let d = umoci_image(
            layout,
            arch,
            arch,
            &[("etc/berth-test", content.as_bytes())],
        );
        let size = layout_blob(layout, &d).len();
        descs.push(json!({"mediaType": OCI_MANIFEST, "digest": d, "size": size,
                          "platform": {"architecture": arch, "os": "linux"}}));
        children.push(d);
    }
    let index = serde_json::to_vec(&json!({
        "schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": descs,
    }))
    .unwrap();
    let mut desc = layout_put(layout, OCI_INDEX, &index);
    desc["annotations"] = json!({"org.opencontainers.image.ref.name": "v1"});
    let path = layout.join("index.json");
    let mut top: Value = serde_json::from_slice(&fs::read(&path).unwrap()).unwrap();
    top["manifests"].as_array_mut().unwrap().push(desc);
    fs::write(&path, serde_json::to_vec(&top).unwrap()).unwrap();
    (sha(&index), children)
}

/// The `ECR Replication Action` events `node` queued for its event rules (the
/// `event.fanout` jobs' events, read with `berth admin jobs list`): their `detail`s.
fn replication_events(node: &Node) -> Vec<Value> {
    let o = run(
        Command::new(env!("CARGO_BIN_EXE_berth"))
            .arg("admin")
            .arg("--data-dir")
            .arg(node.data_dir())
            .args(["jobs", "list", "--kind", "event.fanout", "--limit", "1000"]),
        SHORT,
    );
    parse_json(&o)
        .as_array()
        .unwrap()
        .iter()
        .map(|j| serde_json::from_str::<Value>(j["payload"]["event"].as_str().unwrap()).unwrap())
        .filter(|e| e["detail-type"] == "ECR Replication Action")
        .map(|e| e["detail"].clone())
        .collect()
}

/// The shared deployments with the test configuration, and a scratch directory with the
/// path for an OCI layout in it; `None` when a client is missing outside CI (the test is
/// skipped loudly).
fn setup(test: &str) -> Option<(&'static World, tempfile::TempDir, std::path::PathBuf)> {
    if !require(test, &["aws", "skopeo", "umoci"]) {
        return None;
    }
    let w = world();
    let dir = tempfile::tempdir().unwrap();
    let layout = dir.path().join("oci");
    Some((w, dir, layout))
}

/// `berth replication wait --repository <repository> --image-tag <tag> --timeout <timeout>`.
fn wait_tag(w: &World, repository: &str, tag: &str, timeout: &str) -> Output {
    wait(
        w,
        &[
            "--repository",
            repository,
            "--image-tag",
            tag,
            "--timeout",
            timeout,
        ],
    )
}

/// `aws ecr describe-image-replication-status` of `repository:v1` in the source.
fn status_of(w: &World, repository: &str) -> Value {
    let o = aws(
        &w.source,
        "us-east-1",
        &[
            "describe-image-replication-status",
            "--repository-name",
            repository,
            "--image-id",
            "imageTag=v1",
        ],
    );
    assert!(o.success(), "{}", o.describe());
    parse_json(&o)
}

/// [`setup`] for the test function named `$test`, which returns (skipped) when it gives
/// `None`.
macro_rules! setup {
    ($test:ident) => {
        match setup(stringify!($test)) {
            Some(shared) => shared,
            None => return,
        }
    };
}

/// `skopeo copy [extra] oci:<layout>:<tag> docker://<source>/<dest>`.
fn push_to_source(w: &World, layout: &Path, tag: &str, dest: &str, extra: &[&str]) {
    let o = run(
        skopeo()
            .args(["copy", "--dest-tls-verify=false"])
            .args(extra)
            .arg(format!("oci:{}:{tag}", layout.display()))
            .arg(format!("docker://{}/{dest}", w.source.host)),
        LONG,
    );
    assert!(o.success(), "{}", o.describe());
}

/// Pushes a signature-like artifact whose `subject` is `subject` (OCI image-spec
/// manifest.md § subject) to the source by digest; returns its digest.
fn push_referrer(w: &World, repo: &str, subject: &str, subject_size: usize) -> String {
    let config = b"{}".to_vec();
    let payload = format!("signature of {subject}").into_bytes();
    for blob in [&config, &payload] {
        let url = w.source.url(&format!(
            "/v2/{repo}/blobs/uploads/?digest={}",
            query_escape(&sha(blob))
        ));
        let r = http(
            "POST",
            &url,
            &[("Content-Type", "application/octet-stream")],
            Some(blob),
        );
        assert_eq!(r.status, 201, "{}", r.describe());
    }
    let manifest = serde_json::to_vec(&json!({
        "schemaVersion": 2, "mediaType": OCI_MANIFEST,
        "artifactType": "application/vnd.example.signature",
        "config": {"mediaType": "application/vnd.oci.empty.v1+json", "digest": sha(&config), "size": config.len()},
        "layers": [{"mediaType": "application/vnd.example.signature.v1", "digest": sha(&payload), "size": payload.len()}],
        "subject": {"mediaType": OCI_INDEX, "digest": subject, "size": subject_size},
    }))
    .unwrap();
    let d = sha(&manifest);
    let r = http(
        "PUT",
        &w.source.url(&format!("/v2/{repo}/manifests/{d}")),
        &[("Content-Type", OCI_MANIFEST)],
        Some(&manifest),
    );
    assert_eq!(r.status, 201, "{}", r.describe());
    d
}

// ECR PutReplicationConfiguration's validation (ECR_REFERENCE.md §2.5: ≤ 10 rules, ≤ 25
// distinct destinations, PREFIX_MATCH filters without wildcards, not the source itself)
// through the real AWS CLI, then DescribeRegistry returns what was stored.
#[test]
fn replication_configuration_through_the_aws_cli() {
    if !require("replication_configuration_through_the_aws_cli", &["aws"]) {
        return;
    }
    let w = world();
    let put = |cfg: Value| {
        aws(
            &w.source,
            "us-east-1",
            &[
                "put-replication-configuration",
                "--replication-configuration",
                &cfg.to_string(),
            ],
        )
    };
    let fails = |cfg: Value, want: &str| {
        let o = put(cfg);
        assert!(!o.success(), "accepted: {}", o.describe());
        assert!(
            o.stderr.contains("InvalidParameterException"),
            "{}",
            o.describe()
        );
        assert!(o.stderr.contains(want), "wanted {want:?}: {}", o.describe());
    };
    fails(
        json!({"rules": [{"destinations": [dest("eu-west-1")],
            "repositoryFilters": [{"filter": "myapp*", "filterType": "PREFIX_MATCH"}]}]}),
        "take no wildcards",
    );
    fails(
        json!({"rules": vec![json!({"destinations": [dest("eu-west-1")]}); 11]}),
        "less than or equal to 10",
    );
    let many: Vec<Value> = (0..26).map(|i| dest(&format!("xx-test-{i}"))).collect();
    fails(json!({"rules": [{"destinations": many}]}), "at most 25");
    fails(
        json!({"rules": [{"destinations": [dest("us-east-1")]}]}),
        "cannot be the source registry",
    );
    fails(
        json!({"rules": [{"destinations": [dest("eu-west-1")],
            "repositoryFilters": [{"filter": "myapp", "filterType": "SUFFIX_MATCH"}]}]}),
        "PREFIX_MATCH",
    );
    let o = aws(&w.source, "us-east-1", &["describe-registry"]);
    assert!(o.success(), "{}", o.describe());
    let v = parse_json(&o);
    assert_eq!(v["registryId"], ACCOUNT);
    assert_eq!(
        v["replicationConfiguration"]["rules"][0]["repositoryFilters"][0]["filter"],
        "myapp/"
    );
}

// The issue's main scenario: a two-platform index pushed with skopeo and a referrer are
// in both destinations, identical, once `berth replication wait` returns; ECR's
// DescribeImageReplicationStatus says COMPLETE for both; an image outside the rule's
// prefix goes nowhere.
#[test]
fn replicates_an_index_with_its_referrer_to_two_regions() {
    let (w, _dir, layout) = setup!(replicates_an_index_with_its_referrer_to_two_regions);
    let (index, children) = two_platform_layout(&layout, "replication");
    let index_size = layout_blob(&layout, &index).len();
    // ECR_REFERENCE.md §2.5, §2.7: a destination applies its own REPLICATION creation
    // template to the repositories replication creates there (eu-west-1 has one for
    // `myapp`, ap-south-1 none, so its repository gets the defaults).
    let o = aws(
        &w.eu,
        "eu-west-1",
        &[
            "create-repository-creation-template",
            "--prefix",
            "myapp",
            "--applied-for",
            "REPLICATION",
            "--resource-tags",
            "Key=replicated-by,Value=template",
        ],
    );
    assert!(o.success(), "{}", o.describe());
    push_to_source(
        w,
        &layout,
        "v1",
        "myapp/web:v1",
        &["--all", "--preserve-digests"],
    );
    let referrer = push_referrer(w, "myapp/web", &index, index_size);
    // Outside the prefix: pushed the same way, replicated nowhere.
    push_to_source(w, &layout, "amd64", "other/web:v1", &[]);

    // The pipeline's wait: every destination COMPLETE, for the image and its referrer.
    for args in [
        vec![
            "--repository",
            "myapp/web",
            "--image-tag",
            "v1",
            "--timeout",
            "2m",
        ],
        vec![
            "--repository",
            "myapp/web",
            "--image-digest",
            &referrer,
            "--timeout",
            "2m",
            "--destination",
            "ap-south-1",
            "--destination",
            "eu-west-1:111111111111",
        ],
    ] {
        let o = wait(w, &args);
        assert!(
            o.success(),
            "berth replication wait: {}\n{}",
            o.describe(),
            w.source.log_tail()
        );
        assert!(
            o.stdout.contains("COMPLETE in 2 destination(s)"),
            "{}",
            o.describe()
        );
    }
    // ECR's status API through the real AWS CLI.
    let v = status_of(w, "myapp/web");
    assert_eq!(v["imageId"]["imageDigest"], index.as_str());
    let mut statuses: Vec<(String, String)> = v["replicationStatuses"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            (
                s["region"].as_str().unwrap().to_string(),
                s["status"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    statuses.sort();
    assert_eq!(
        statuses,
        [
            ("ap-south-1".to_string(), "COMPLETE".to_string()),
            ("eu-west-1".into(), "COMPLETE".into())
        ]
    );

    // Both destinations serve the identical index, both children with their blobs, and
    // the referrer (distribution-spec § Pulling manifests, § Listing referrers).
    for node in [&w.ap, &w.eu] {
        let r = dest_get(node, "/v2/myapp/web/manifests/v1");
        assert_eq!(r.status, 200, "{}", r.describe());
        assert_eq!(r.header("docker-content-digest"), Some(index.as_str()));
        assert_eq!(r.body, layout_blob(&layout, &index), "index bytes");
        for child in &children {
            let r = dest_get(node, &format!("/v2/myapp/web/manifests/{child}"));
            assert_eq!(r.status, 200, "child {child}: {}", r.describe());
            let m = r.json();
            for layer in m["layers"].as_array().unwrap().iter().chain([&m["config"]]) {
                let d = layer["digest"].as_str().unwrap();
                let b = dest_get(node, &format!("/v2/myapp/web/blobs/{d}"));
                assert_eq!(b.status, 200, "blob {d}");
                assert_eq!(sha(&b.body), d, "blob {d} verified by digest");
            }
        }
        let r = dest_get(node, &format!("/v2/myapp/web/referrers/{index}"));
        assert_eq!(r.status, 200, "{}", r.describe());
        let listed: Vec<String> = r.json()["manifests"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| m["digest"].as_str().unwrap().to_string())
            .collect();
        assert!(
            listed.contains(&referrer),
            "referrer {referrer} listed: {listed:?}"
        );
        // Outside the prefix: nothing arrived.
        let r = dest_get(node, "/v2/other/web/manifests/v1");
        assert_eq!(r.status, 404, "{}", r.describe());
    }
    // ECR Replication Action (ECR_REFERENCE.md §3) in the source, one SUCCESS per
    // destination, and in each destination for the tag it received.
    let source_events: Vec<Value> = replication_events(&w.source)
        .into_iter()
        .filter(|d| d["repository-name"] == "myapp/web" && d["image-digest"] == index.as_str())
        .collect();
    for region in ["ap-south-1", "eu-west-1"] {
        assert!(
            source_events.iter().any(|d| d["result"] == "SUCCESS"
                && d["destination-region"] == region
                && d["action-type"] == "REPLICATE"
                && d["source-region"] == "us-east-1"
                && d["image-tag"] == "v1"),
            "{region}: {source_events:?}"
        );
    }
    for node in [&w.ap, &w.eu] {
        let got = replication_events(node);
        assert!(
            got.iter().any(|d| d["result"] == "SUCCESS"
                && d["image-digest"] == index.as_str()
                && d["source-account"] == ACCOUNT
                && d["source-region"] == "us-east-1"),
            "{got:?}"
        );
    }
    let v = status_of(w, "other/web");
    assert_eq!(v["replicationStatuses"], json!([]));
    for (node, region, want) in [
        (
            &w.eu,
            "eu-west-1",
            json!([{"Key": "replicated-by", "Value": "template"}]),
        ),
        (&w.ap, "ap-south-1", json!([])),
    ] {
        let arn = format!("arn:aws:ecr:{region}:{ACCOUNT}:repository/myapp/web");
        let o = aws(
            node,
            region,
            &["list-tags-for-resource", "--resource-arn", &arn],
        );
        assert!(o.success(), "{}", o.describe());
        assert_eq!(parse_json(&o)["tags"], want, "{region}");
    }
}

// "Never fails silently": a destination this deployment has no peer for is FAILED with
// a failureCode that says so, and the pipeline's wait exits non-zero with the reason.
#[test]
fn a_destination_without_a_peer_fails_loudly() {
    let (w, _dir, layout) = setup!(a_destination_without_a_peer_fails_loudly);
    umoci_image(&layout, "v1", "amd64", &[("etc/berth-test", b"no peer\n")]);
    push_to_source(w, &layout, "v1", "nopeer/app:v1", &[]);
    let o = wait_tag(w, "nopeer/app", "v1", "1m");
    assert!(!o.success(), "wait must fail: {}", o.describe());
    assert!(
        o.stderr
            .contains("us-west-2:111111111111 FAILED: PEER_NOT_CONFIGURED"),
        "{}",
        o.describe()
    );
    let v = status_of(w, "nopeer/app");
    assert_eq!(v["replicationStatuses"][0]["status"], "FAILED", "{v}");
    assert!(
        v["replicationStatuses"][0]["failureCode"]
            .as_str()
            .unwrap()
            .starts_with("PEER_NOT_CONFIGURED: no [[replication.peers]] entry"),
        "{v}"
    );
    // The failure is an event too, with the keys Berth adds.
    let events = replication_events(&w.source);
    assert!(
        events.iter().any(|d| d["repository-name"] == "nopeer/app"
            && d["result"] == "FAILED"
            && d["failure-code"] == "PEER_NOT_CONFIGURED"
            && d["destination-region"] == "us-west-2"),
        "{events:?}"
    );
}

// Cross-account (ECR_REFERENCE.md §2.5): the destination evaluates its registry policy
// for the source account. Without a statement granting ecr:ReplicateImage the status is
// FAILED, naming the action, the destination registry and the statement to add; with
// the statement ECR's documentation shows, a new push replicates (COMPLETE) and the
// destination repository is created (ecr:CreateRepository from the same statement).
#[test]
fn cross_account_needs_the_destinations_registry_policy() {
    let (w, _dir, layout) = setup!(cross_account_needs_the_destinations_registry_policy);
    umoci_image(
        &layout,
        "v1",
        "amd64",
        &[("etc/berth-test", b"cross-account\n")],
    );
    let push = |tag: &str| push_to_source(w, &layout, "v1", &format!("xacct/app:{tag}"), &[]);
    push("v1");
    let o = wait_tag(w, "xacct/app", "v1", "1m");
    assert!(
        !o.success(),
        "wait must fail without the policy: {}",
        o.describe()
    );
    for want in [
        "eu-west-1:222222222222 FAILED: DESTINATION_ACCESS_DENIED",
        "ecr:ReplicateImage",
        "registry 222222222222 in eu-west-1",
        "arn:aws:iam::111111111111:root",
        // The destination's own denial (fetched with a GET: a HEAD answer has no body).
        "403 Forbidden: {\"errors\":[{\"code\":\"DENIED\"",
    ] {
        assert!(o.stderr.contains(want), "wanted {want:?}: {}", o.describe());
    }
    // The statement of ECR's documentation, on the destination's registry policy.
    let policy = json!({"Version": "2012-10-17", "Statement": [{
        "Sid": "ReplicationAccessCrossAccount",
        "Effect": "Allow",
        "Principal": {"AWS": "arn:aws:iam::111111111111:root"},
        "Action": ["ecr:CreateRepository", "ecr:ReplicateImage"],
        "Resource": "arn:aws:ecr:eu-west-1:222222222222:repository/*",
    }]});
    let o = aws(
        &w.xa,
        "eu-west-1",
        &["put-registry-policy", "--policy-text", &policy.to_string()],
    );
    assert!(o.success(), "{}", o.describe());
    push("v2");
    let o = wait_tag(w, "xacct/app", "v2", "2m");
    assert!(
        o.success(),
        "with the policy: {}\n{}",
        o.describe(),
        w.source.log_tail()
    );
    let r = dest_get(&w.xa, "/v2/xacct/app/manifests/v2");
    assert_eq!(r.status, 200, "{}", r.describe());
}

// Transient faults: while the destination is down the copy is retried, and the status
// says IN_PROGRESS from the moment the push returned (never FAILED, never silent); once
// the destination is back (same address), the image arrives and the status is COMPLETE.
#[test]
fn a_destination_that_was_down_completes_after_it_returns() {
    let (w, _dir, layout) = setup!(a_destination_that_was_down_completes_after_it_returns);
    umoci_image(&layout, "v1", "amd64", &[("etc/berth-test", b"flaky\n")]);
    let mut node = w.flaky.lock().unwrap_or_else(|e| e.into_inner());
    node.kill();
    push_to_source(w, &layout, "v1", "flaky/app:v1", &[]);
    let status = || status_of(w, "flaky/app")["replicationStatuses"].clone();
    let v = status();
    assert_eq!(v[0]["region"], "us-west-1", "{v}");
    assert_eq!(v[0]["status"], "IN_PROGRESS", "{v}");
    // The copy has failed at least once against the stopped destination by now: the
    // job is retrying, not dead.
    let o = wait_tag(w, "flaky/app", "v1", "3s");
    assert!(!o.success(), "{}", o.describe());
    assert!(
        o.stderr.contains("timed out") && o.stderr.contains("us-west-1:111111111111 IN_PROGRESS"),
        "{}",
        o.describe()
    );
    assert_eq!(status()[0]["status"], "IN_PROGRESS");
    node.restart().unwrap();
    let o = wait_tag(w, "flaky/app", "v1", "2m");
    assert!(
        o.success(),
        "after the destination returned: {}\n{}",
        o.describe(),
        w.source.log_tail()
    );
    assert_eq!(status()[0]["status"], "COMPLETE");
    let r = dest_get(&node, "/v2/flaky/app/manifests/v1");
    assert_eq!(r.status, 200, "{}", r.describe());
}

// deleteReplication (botocore ReplicationRule.deleteReplication): with it enabled, an
// image deleted in the source (ECR BatchDeleteImage of its last tag) is deleted in the
// destination; without it (the `myapp/` rule) a deletion causes no replication job.
#[test]
fn deletes_replicate_only_where_delete_replication_is_enabled() {
    let (w, _dir, layout) = setup!(deletes_replicate_only_where_delete_replication_is_enabled);
    umoci_image(&layout, "v1", "amd64", &[("etc/berth-test", b"deletes\n")]);
    for repo in ["deltest/app", "myapp/kept"] {
        push_to_source(w, &layout, "v1", &format!("{repo}:v1"), &[]);
        let o = wait_tag(w, repo, "v1", "2m");
        assert!(o.success(), "{repo}: {}", o.describe());
        let o = aws(
            &w.source,
            "us-east-1",
            &[
                "batch-delete-image",
                "--repository-name",
                repo,
                "--image-ids",
                "imageTag=v1",
            ],
        );
        assert!(o.success(), "{}", o.describe());
        assert_eq!(parse_json(&o)["failures"], json!([]), "{}", o.describe());
    }
    // Enabled: the destination's image goes (a job; polled until it ran).
    let mut gone = false;
    for _ in 0..600 {
        if dest_get(&w.eu, "/v2/deltest/app/manifests/v1").status == 404 {
            gone = true;
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    assert!(
        gone,
        "deltest/app:v1 still in eu-west-1\n{}",
        w.source.log_tail()
    );
    // Not enabled: no deletion was sent, and the destination keeps the image.
    let o = run(
        Command::new(env!("CARGO_BIN_EXE_berth"))
            .arg("admin")
            .arg("--data-dir")
            .arg(w.source.data_dir())
            .args(["jobs", "list", "--kind", "replication.delete"]),
        SHORT,
    );
    let jobs = parse_json(&o);
    let repos: Vec<&str> = jobs
        .as_array()
        .unwrap()
        .iter()
        .map(|j| j["payload"]["repository"].as_str().unwrap())
        .collect();
    assert!(
        repos.contains(&"deltest/app") && !repos.contains(&"myapp/kept"),
        "{jobs}"
    );
    assert_eq!(dest_get(&w.eu, "/v2/myapp/kept/manifests/v1").status, 200);
}

// Issue 9: "an immutable tag that already points elsewhere in the destination: the image
// is replicated without moving that tag, and the status says so" — COMPLETE there, with
// the reason as its failureCode; the other destination gets the tag as usual.
#[test]
fn an_immutable_tag_in_the_destination_stays_and_the_status_says_so() {
    let (w, dir, layout) = setup!(an_immutable_tag_in_the_destination_stays_and_the_status_says_so);
    let o = aws(
        &w.eu,
        "eu-west-1",
        &[
            "create-repository",
            "--repository-name",
            "myapp/pinned",
            "--image-tag-mutability",
            "IMMUTABLE",
        ],
    );
    assert!(o.success(), "{}", o.describe());
    let theirs = dir.path().join("theirs");
    let theirs_digest = umoci_image(
        &theirs,
        "v1",
        "amd64",
        &[("etc/berth-test", b"eu's own v1\n")],
    );
    let (id, secret) = admin_key(&w.eu);
    let o = run(
        skopeo()
            .args(["copy", "--dest-tls-verify=false", "--dest-creds"])
            .arg(format!("{id}:{secret}"))
            .arg(format!("oci:{}:v1", theirs.display()))
            .arg(format!("docker://{}/myapp/pinned:v1", w.eu.host)),
        LONG,
    );
    assert!(o.success(), "{}", o.describe());

    let ours = umoci_image(
        &layout,
        "v1",
        "amd64",
        &[("etc/berth-test", b"the source's v1\n")],
    );
    assert_ne!(ours, theirs_digest);
    push_to_source(w, &layout, "v1", "myapp/pinned:v1", &[]);
    // Waiting for the tag fails: in eu-west-1 it still names the other image. Waiting
    // for the digest succeeds: the image is there.
    let o = wait_tag(w, "myapp/pinned", "v1", "2m");
    assert!(
        !o.success()
            && o.stderr
                .contains("COMPLETE by digest, but the tag there still names another image")
            && o.stderr.contains("eu-west-1"),
        "{}\n{}",
        o.describe(),
        w.source.log_tail()
    );
    let o = wait(
        w,
        &[
            "--repository",
            "myapp/pinned",
            "--image-digest",
            &ours,
            "--timeout",
            "2m",
        ],
    );
    assert!(o.success(), "{}", o.describe());

    let v = status_of(w, "myapp/pinned")["replicationStatuses"].clone();
    let of = |region: &str| {
        v.as_array()
            .unwrap()
            .iter()
            .find(|s| s["region"] == region)
            .cloned()
            .unwrap_or_else(|| panic!("{region}: {v}"))
    };
    let eu = of("eu-west-1");
    assert_eq!(eu["status"], "COMPLETE", "{v}");
    let code = eu["failureCode"].as_str().unwrap_or_default();
    assert!(
        code.starts_with("TAG_IMMUTABLE_IN_DESTINATION: tag 'v1' points to another image"),
        "{v}"
    );
    let ap = of("ap-south-1");
    assert_eq!(ap["status"], "COMPLETE", "{v}");
    assert!(ap.get("failureCode").is_none(), "{v}");

    // eu-west-1 has the image by digest and kept its own v1; ap-south-1 has the tag.
    let r = dest_get(&w.eu, &format!("/v2/myapp/pinned/manifests/{ours}"));
    assert_eq!(r.status, 200, "{}", r.describe());
    let r = dest_get(&w.eu, "/v2/myapp/pinned/manifests/v1");
    assert_eq!(
        r.header("docker-content-digest"),
        Some(theirs_digest.as_str())
    );
    let r = dest_get(&w.ap, "/v2/myapp/pinned/manifests/v1");
    assert_eq!(r.header("docker-content-digest"), Some(ours.as_str()));

    // An image no rule sends anywhere fails the wait at once (its replications would
    // have been enqueued with its push), not after the timeout.
    push_to_source(w, &layout, "v1", "solo/app:v1", &[]);
    let o = wait_tag(w, "solo/app", "v1", "10m");
    assert!(
        !o.success()
            && o.stderr
                .contains("will not replicate: no replication destination"),
        "{}",
        o.describe()
    );
    let o = wait(
        w,
        &[
            "--repository",
            "myapp/pinned",
            "--image-digest",
            &ours,
            "--destination",
            "xx-nowhere-1",
            "--timeout",
            "10m",
        ],
    );
    assert!(
        !o.success()
            && o.stderr
                .contains("xx-nowhere-1:* never sent (no rule matches)"),
        "{}",
        o.describe()
    );
}
