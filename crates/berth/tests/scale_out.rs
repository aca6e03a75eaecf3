//! Issue 14's scale-out deployment end to end: three `berth serve` nodes sharing one
//! PostgreSQL database (metadata, IAM, audit, job queue) and one S3 bucket (SeaweedFS:
//! blobs and upload sessions) with one master key file, behind nginx balancing round
//! robin per request — so consecutive requests of one client, even on one kept-alive
//! connection, land on different nodes.
//!
//! - docker push and pull, skopeo copy and inspect through the balancer
//!   (distribution-spec § Pushing / § Pulling); every node serves the same digest;
//! - one chunked upload whose POST, two PATCHes and PUT go to three different nodes
//!   (distribution-spec § Pushing a blob in chunks, § Getting upload status);
//! - the ECR API with the real AWS CLI through the balancer is one registry;
//! - event-delivery jobs claimed by three runners: every event delivered exactly once;
//! - a policy attached with `berth admin` applies at once on every node;
//! - replication jobs (to another deployment) run exactly once on three runners;
//! - a node killed with -9 in the middle of a push: nothing partial is visible, the push
//!   retried through the balancer succeeds, the restarted node serves it.
//!
//! One cluster per test binary, shared by the tests (each uses its own repositories).
//! Run: `cargo test -p berth --test scale_out`. PostgreSQL, SeaweedFS (`weed`), nginx,
//! docker, skopeo and the AWS CLI come from `.ci/install-clients`; outside CI a missing
//! one makes the tests print `SKIPPED`, under `CI=true` they fail.

mod common;

use berth_test_support::nodes::{Cluster, Node, NodeOptions};
use berth_test_support::postgres::Postgres;
use berth_test_support::seaweedfs;
use common::balancer::{Balancer, Logged};
use common::*;
use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex, OnceLock, RwLock};
use std::thread;
use std::time::{Duration, Instant};

const REGION: &str = "us-east-1";
/// The registry's account: the cluster's and its replication destination's (same
/// account across regions needs no registry policy, as in ECR).
const ACCOUNT: &str = "111111111111";

/// Tools every test of this file needs (PostgreSQL and `weed` are checked by their
/// fixtures).
const TOOLS: &[&str] = &["nginx", "docker", "busybox-static", "skopeo", "aws", "curl"];

struct Scale {
    /// Tests hold it for reading; the one that kills a node holds it for writing, so no
    /// other test talks to a node while it is down.
    cluster: RwLock<Cluster>,
    /// The nodes' addresses, in order (unchanged by a restart).
    hosts: Vec<String>,
    lb: Balancer,
    /// Receives the event rule's deliveries (the config file every node reads).
    hook: Hook,
    /// The `postgres://` URL of the cluster's database.
    metadata: String,
    /// An embedded-default deployment in eu-west-1, the cluster's replication peer.
    dest: Node,
    _dir: tempfile::TempDir,
}

static SCALE: OnceLock<Scale> = OnceLock::new();

/// The shared cluster, or `None` after a loud skip when a component is missing
/// (outside CI only).
fn scale(test: &str) -> Option<&'static Scale> {
    if !require(test, TOOLS) {
        return None;
    }
    let pg = Postgres::shared(test)?;
    let Some(s3) = seaweedfs::shared() else {
        assert!(!in_ci(), "{test}: weed (SeaweedFS) missing under CI=true");
        loud(&format!("SKIPPED {test}: weed (SeaweedFS) not installed"));
        return None;
    };
    Some(SCALE.get_or_init(|| {
        let dir = tempfile::Builder::new()
            .prefix("berth-scale")
            .tempdir()
            .unwrap();
        let hook = Hook::start();
        let dest = Node::start(
            &NodeOptions::new(env!("CARGO_BIN_EXE_berth"))
                .arg("--region")
                .arg("eu-west-1")
                .arg("--account-id")
                .arg(ACCOUNT),
            None,
        )
        .unwrap_or_else(|e| panic!("the replication destination: {e}"));
        let (dest_id, dest_secret) =
            access_key(&fs::read_to_string(dest.data_dir().join("admin-credentials")).unwrap());
        let config = dir.path().join("berth.toml");
        fs::write(
            &config,
            format!(
                r#"
[[replication.peers]]
region = "eu-west-1"
registry_id = "{ACCOUNT}"
endpoint = "http://{}"
access_key_id = "{}"
secret_access_key = "{}"

[[events.rules]]
name = "image-actions"
event_pattern = '{{"source": ["aws.ecr"], "detail-type": ["ECR Image Action"]}}'

[[events.rules.targets]]
id = "hook"
endpoint = "{}"
"#,
                dest.host,
                dest_id,
                dest_secret,
                hook.url()
            ),
        )
        .unwrap();
        let metadata = pg.database();
        let opts = NodeOptions::new(env!("CARGO_BIN_EXE_berth"))
            .metadata(&metadata)
            .storage(&s3.url(&seaweedfs::unique_prefix("scale-out")))
            .arg("--storage-s3-endpoint")
            .arg(s3.endpoint.clone())
            .arg("--config")
            .arg(config.display().to_string())
            .arg("--region")
            .arg(REGION)
            .arg("--account-id")
            .arg(ACCOUNT)
            .env("AWS_ACCESS_KEY_ID", seaweedfs::ACCESS_KEY)
            .env("AWS_SECRET_ACCESS_KEY", seaweedfs::SECRET_KEY)
            .env("AWS_REGION", "us-east-1")
            .ready_timeout(Duration::from_secs(60));
        let cluster = Cluster::start(3, &opts);
        let hosts: Vec<String> = cluster.nodes.iter().map(|n| n.host.clone()).collect();
        let lb = Balancer::start(&hosts);
        Scale {
            cluster: RwLock::new(cluster),
            hosts,
            lb,
            hook,
            metadata,
            dest,
            _dir: dir,
        }
    }))
}

impl Scale {
    fn shared(&self) -> std::sync::RwLockReadGuard<'_, Cluster> {
        self.cluster.read().unwrap_or_else(|e| e.into_inner())
    }

    /// The administrator's credentials file that node 0 wrote on the fresh database.
    fn admin_credentials(&self) -> PathBuf {
        self.shared().admin_credentials()
    }

    /// The nodes' log tails and nginx's errors, for failure messages.
    fn logs(&self) -> String {
        let c = self.shared();
        let mut s: String = c.nodes.iter().map(|n| n.log_tail() + "\n").collect();
        s.push_str(&format!("--- nginx ---\n{}", self.lb.errors()));
        s
    }

    /// The AWS CLI as the administrator against `endpoint` (the CLI's default retries:
    /// its own behaviour is part of what is tested).
    fn aws(&self, endpoint: &str, args: &[&str]) -> serde_json::Value {
        let mut c = Command::new(aws_cli());
        c.env("AWS_SHARED_CREDENTIALS_FILE", self.admin_credentials())
            .env("AWS_CONFIG_FILE", "/nonexistent/berth-test/config")
            .env("AWS_EC2_METADATA_DISABLED", "true")
            .env("AWS_PAGER", "")
            .env_remove("AWS_ACCESS_KEY_ID")
            .env_remove("AWS_SECRET_ACCESS_KEY")
            .env_remove("AWS_SESSION_TOKEN")
            .env_remove("AWS_PROFILE")
            .args(["--endpoint-url", &format!("http://{endpoint}")])
            .args(["--region", REGION, "--output", "json"])
            .args(args);
        let o = run(&mut c, SHORT);
        if o.stdout.trim().is_empty() {
            return serde_json::Value::Null;
        }
        serde_json::from_str(&o.stdout).unwrap_or_else(|e| panic!("{e}: {}", o.describe()))
    }

    /// A registry password from `berth login` through the balancer: a token every node
    /// accepts, since they share the master key.
    fn password(&self) -> String {
        let mut c = Command::new(env!("CARGO_BIN_EXE_berth"));
        c.env("AWS_SHARED_CREDENTIALS_FILE", self.admin_credentials())
            .env("AWS_CONFIG_FILE", "/nonexistent/berth-test/config")
            .env_remove("AWS_ACCESS_KEY_ID")
            .env_remove("AWS_SECRET_ACCESS_KEY")
            .env_remove("AWS_SESSION_TOKEN")
            .args(["login", "--registry", &format!("http://{}", self.lb.host)]);
        let o = run_unchecked(&mut c, SHORT);
        assert!(
            o.success(),
            "berth login through the balancer: {}\n{}",
            o.describe(),
            self.logs()
        );
        o.stdout.trim().to_string()
    }

    /// `Authorization: Basic` for direct HTTP calls to the nodes.
    fn basic(&self) -> String {
        use base64::Engine as _;
        let b =
            base64::engine::general_purpose::STANDARD.encode(format!("AWS:{}", self.password()));
        format!("Basic {b}")
    }

    /// `psql -At -c SQL` on the cluster's database.
    fn sql(&self, query: &str) -> String {
        let o = run(
            Command::new("psql").args([
                "-At",
                "-v",
                "ON_ERROR_STOP=1",
                &self.metadata,
                "-c",
                query,
            ]),
            SHORT,
        );
        o.stdout.trim().to_string()
    }
}

/// Distinct nodes that answered `requests` (after a failover nginx lists every node
/// tried; the last one answered).
fn nodes_of(requests: &[Logged]) -> BTreeSet<String> {
    requests
        .iter()
        .filter_map(|r| r.upstream.rsplit(", ").next().map(str::to_string))
        .filter(|u| u != "-")
        .collect()
}

/// The path and query of an upload `Location` (absolute or relative).
fn path_of(location: &str) -> String {
    match location.split_once("://") {
        Some((_, rest)) => rest[rest.find('/').unwrap_or(rest.len())..].to_string(),
        None => location.to_string(),
    }
}

/// distribution-spec § Pushing and § Pulling through three nodes: docker (a Go client:
/// unauthenticated first request, token auth, kept-alive connections) pushes, its
/// requests spread over all three nodes; removes the image and pulls it back; skopeo
/// copies it to another repository through the balancer; every node then answers the
/// copy's tag with the pushed digest.
#[test]
fn docker_and_skopeo_push_and_pull_through_three_nodes() {
    const T: &str = "docker_and_skopeo_push_and_pull_through_three_nodes";
    let Some(s) = scale(T) else { return };
    let _shared = s.shared();
    let d = docker();
    let config = tempfile::tempdir().unwrap();
    let dk = || {
        let mut c = d.cmd();
        c.env("DOCKER_CONFIG", config.path());
        c
    };
    let pw = s.password();
    let pw_file = tempfile::NamedTempFile::new().unwrap();
    fs::write(pw_file.path(), &pw).unwrap();
    let mut login = dk();
    login.args(["login", "-u", "AWS", "--password-stdin", &s.lb.host]);
    let o = run(&mut with_stdin_from(&login, pw_file.path()), SHORT);
    assert!(o.stdout.contains("Login Succeeded"), "{}", o.describe());

    let image = format!("{}/scale/app:v1", s.lb.host);
    let image_id = d.build_busybox_image(&image, &unique("scale-out-docker"));
    let before = s.lb.requests().len();
    let o = run(dk().args(["push", &image]), LONG);
    let digest = digest_after(&o.stdout, "digest: ")
        .unwrap_or_else(|| panic!("no digest in docker push output:\n{}", o.describe()));
    let push = s.lb.requests()[before..].to_vec();
    assert_eq!(
        nodes_of(&push).len(),
        3,
        "the balancer spreads one docker push over the three nodes: {push:#?}"
    );
    run(dk().args(["rmi", "-f", &image_id]), SHORT);
    let o = run(dk().args(["pull", &image]), LONG);
    assert!(o.stdout.contains(&digest), "{}", o.describe());
    assert_eq!(d.image_id(&image), image_id, "image ID after the pull");

    let creds = format!("AWS:{pw}");
    run(
        skopeo().args([
            "copy",
            "--src-tls-verify=false",
            "--dest-tls-verify=false",
            "--src-creds",
            &creds,
            "--dest-creds",
            &creds,
            &format!("docker://{image}"),
            &format!("docker://{}/scale/copy:v1", s.lb.host),
        ]),
        LONG,
    );
    for (i, host) in s.hosts.iter().enumerate() {
        let o = run(
            skopeo().args([
                "inspect",
                "--tls-verify=false",
                "--creds",
                &creds,
                "--format",
                "{{.Digest}}",
                &format!("docker://{host}/scale/copy:v1"),
            ]),
            SHORT,
        );
        assert_eq!(o.stdout.trim(), digest, "node{i} serves the copy");
    }
}

/// distribution-spec § Pushing a blob in chunks with each request on another node: POST
/// on node 0, the first PATCH on node 1, the second on node 2, the closing PUT on node 0;
/// between them § Getting upload status on yet another node reports the bytes received
/// (`Range: 0-<n-1>`). Every node then serves the blob byte for byte.
#[test]
fn one_chunked_upload_across_three_nodes() {
    const T: &str = "one_chunked_upload_across_three_nodes";
    let Some(s) = scale(T) else { return };
    let _shared = s.shared();
    let auth = s.basic();
    let h = [("Authorization", auth.as_str())];
    let part1: Vec<u8> = (0..3 * 1024 * 1024).map(|i| (i % 251) as u8).collect();
    let part2: Vec<u8> = (0..2 * 1024 * 1024 + 17).map(|i| (i % 241) as u8).collect();
    let all = [part1.as_slice(), part2.as_slice()].concat();
    let digest = sha256_digest(&all);
    let url = |i: usize, path: &str| format!("http://{}{path}", s.hosts[i]);

    let r = http("POST", &url(0, "/v2/scale/chunks/blobs/uploads/"), &h, None);
    assert_eq!(r.status, 202, "{}", r.describe());
    let mut path = path_of(r.header("location").unwrap());
    let mut start = 0;
    for (i, part) in [&part1, &part2].into_iter().enumerate() {
        let range = format!("{}-{}", start, start + part.len() - 1);
        let len = part.len().to_string();
        let r = http(
            "PATCH",
            &url(i + 1, &path),
            &[
                ("Authorization", auth.as_str()),
                ("Content-Type", "application/octet-stream"),
                ("Content-Range", &range),
                ("Content-Length", &len),
            ],
            Some(part),
        );
        assert_eq!(
            r.status,
            202,
            "PATCH on node{}: {}\n{}",
            i + 1,
            r.describe(),
            s.logs()
        );
        let received = format!("0-{}", start + part.len() - 1);
        assert_eq!(r.header("range"), Some(received.as_str()));
        path = path_of(r.header("location").unwrap());
        let st = http("GET", &url((i + 2) % 3, &path), &h, None);
        assert_eq!(
            st.status,
            204,
            "status on node{}: {}",
            (i + 2) % 3,
            st.describe()
        );
        assert_eq!(st.header("range"), Some(received.as_str()));
        start += part.len();
    }
    let sep = if path.contains('?') { '&' } else { '?' };
    let r = http(
        "PUT",
        &url(0, &format!("{path}{sep}digest={digest}")),
        &h,
        None,
    );
    assert_eq!(r.status, 201, "{}\n{}", r.describe(), s.logs());
    for i in 0..3 {
        let g = http(
            "GET",
            &url(i, &format!("/v2/scale/chunks/blobs/{digest}")),
            &h,
            None,
        );
        assert_eq!(g.status, 200, "node{i}: {}", g.describe());
        assert!(g.body == all, "node{i} serves the uploaded bytes");
    }
}

/// ECR CreateRepository, SetRepositoryPolicy, PutImageTagMutability through the
/// balancer with the real AWS CLI (SigV4, the CLI's retries), then every node describes
/// the same repository, returns the same policy and refuses to move a tag as an
/// IMMUTABLE repository must (ImageTagAlreadyExistsException): one registry, not three.
#[test]
fn ecr_api_through_the_balancer_is_one_registry() {
    const T: &str = "ecr_api_through_the_balancer_is_one_registry";
    let Some(s) = scale(T) else { return };
    let _shared = s.shared();
    let lb = s.lb.host.as_str();
    let created = s.aws(
        lb,
        &[
            "ecr",
            "create-repository",
            "--repository-name",
            "scale/ecr",
            "--image-tag-mutability",
            "IMMUTABLE",
        ],
    );
    let arn = created["repository"]["repositoryArn"]
        .as_str()
        .unwrap()
        .to_string();
    let policy = r#"{"Version":"2012-10-17","Statement":[{"Sid":"pull","Effect":"Allow","Principal":{"AWS":"*"},"Action":["ecr:BatchGetImage"]}]}"#;
    s.aws(
        lb,
        &[
            "ecr",
            "set-repository-policy",
            "--repository-name",
            "scale/ecr",
            "--policy-text",
            policy,
        ],
    );
    let want: serde_json::Value = serde_json::from_str(policy).unwrap();
    for (i, host) in s.hosts.iter().enumerate() {
        let d = s.aws(
            host,
            &[
                "ecr",
                "describe-repositories",
                "--repository-names",
                "scale/ecr",
            ],
        );
        assert_eq!(
            d["repositories"][0]["repositoryArn"],
            arn.as_str(),
            "node{i}"
        );
        assert_eq!(
            d["repositories"][0]["imageTagMutability"], "IMMUTABLE",
            "node{i}"
        );
        let p = s.aws(
            host,
            &[
                "ecr",
                "get-repository-policy",
                "--repository-name",
                "scale/ecr",
            ],
        );
        let got: serde_json::Value =
            serde_json::from_str(p["policyText"].as_str().unwrap()).unwrap();
        assert_eq!(
            got, want,
            "node{i} returns the policy set through the balancer"
        );
    }
}

/// Replication jobs run exactly once with three runners (issue 14, "replication and
/// cache jobs run exactly once"; issue 9): a rule put through the balancer, 12 manifest
/// PUTs spread over the nodes, each enqueuing its `replication.image` job in the push's
/// transaction; every job succeeds in one attempt, and the destination (another
/// deployment, eu-west-1) serves every tag with the digest pushed.
#[test]
fn replication_jobs_run_exactly_once_on_three_runners() {
    const T: &str = "replication_jobs_run_exactly_once_on_three_runners";
    let Some(s) = scale(T) else { return };
    let _shared = s.shared();
    s.aws(
        &s.lb.host,
        &[
            "ecr",
            "put-replication-configuration",
            "--replication-configuration",
            &format!(
                r#"{{"rules":[{{"destinations":[{{"region":"eu-west-1","registryId":"{ACCOUNT}"}}],"repositoryFilters":[{{"filter":"scale/repl","filterType":"PREFIX_MATCH"}}]}}]}}"#
            ),
        ],
    );
    // Other nodes read the configuration within a second.
    thread::sleep(Duration::from_millis(2500));
    let auth = s.basic();
    let repo = "scale/repl/app";
    let config =
        br#"{"architecture":"arm64","os":"linux","rootfs":{"type":"layers","diff_ids":[]}}"#;
    let config_digest = sha256_digest(config);
    let r = http(
        "POST",
        &format!(
            "http://{}/v2/{repo}/blobs/uploads/?digest={config_digest}",
            s.lb.host
        ),
        &[
            ("Authorization", auth.as_str()),
            ("Content-Type", "application/octet-stream"),
        ],
        Some(config),
    );
    assert_eq!(r.status, 201, "{}", r.describe());
    let mut pushed: BTreeMap<String, String> = BTreeMap::new();
    for i in 0..12 {
        let manifest = serde_json::json!({
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": {
                "mediaType": "application/vnd.oci.image.config.v1+json",
                "digest": config_digest,
                "size": config.len(),
            },
            "layers": [],
            "annotations": {"replicated": i.to_string()},
        })
        .to_string();
        let tag = format!("r{i}");
        let r = http(
            "PUT",
            &format!("http://{}/v2/{repo}/manifests/{tag}", s.hosts[i % 3]),
            &[
                ("Authorization", auth.as_str()),
                ("Content-Type", "application/vnd.oci.image.manifest.v1+json"),
            ],
            Some(manifest.as_bytes()),
        );
        assert_eq!(r.status, 201, "{}", r.describe());
        pushed.insert(tag, sha256_digest(manifest.as_bytes()));
    }
    let ours =
        format!("FROM jobs WHERE kind = 'replication.image' AND idempotency_key LIKE '{repo}@%'");
    let start = Instant::now();
    loop {
        let done = s.sql(&format!("SELECT count(*) {ours} AND state = 'succeeded'"));
        if done.trim() == "12" {
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(120),
            "replication jobs succeeded: {done} of 12 after 120 s: {}\n{}",
            s.sql(&format!("SELECT state, attempts, last_error {ours}")),
            s.logs()
        );
        thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(
        s.sql(&format!("SELECT count(*), max(attempts) {ours}"))
            .trim(),
        "12|1",
        "one job per push, one attempt each"
    );
    let dest_auth = basic_auth(&access_key(
        &fs::read_to_string(s.dest.data_dir().join("admin-credentials")).unwrap(),
    ));
    for (tag, digest) in &pushed {
        let r = http(
            "HEAD",
            &s.dest.url(&format!("/v2/{repo}/manifests/{tag}")),
            &[
                ("Authorization", dest_auth.as_str()),
                ("Accept", "application/vnd.oci.image.manifest.v1+json"),
            ],
            None,
        );
        assert_eq!(r.status, 200, "{tag} in eu-west-1: {}", r.describe());
        assert_eq!(
            r.header("Docker-Content-Digest"),
            Some(digest.as_str()),
            "{tag}"
        );
    }
}

/// Identities are one registry across nodes (issue 14, "the IAM snapshot reload made
/// correct with many nodes"): a user's key is first seen by every node while it has no
/// policy (each node refuses it, and now holds it in its snapshot), then `berth admin`
/// attaches a policy; the very next request to each node — well inside the one-second
/// reload tick — is allowed, because a denial first checks whether the identity tables
/// changed (`Iam::authorize` → `refresh`).
#[test]
fn a_policy_attached_by_berth_admin_applies_at_once_on_every_node() {
    const T: &str = "a_policy_attached_by_berth_admin_applies_at_once_on_every_node";
    let Some(s) = scale(T) else { return };
    let shared = s.shared();
    s.aws(
        &s.lb.host,
        &[
            "ecr",
            "create-repository",
            "--repository-name",
            "scale/late",
        ],
    );
    let key_file = shared.master_key_file().to_path_buf();
    let admin = |args: &[&str]| {
        let mut c = Command::new(env!("CARGO_BIN_EXE_berth"));
        c.args(["admin", "--metadata", &s.metadata, "--master-key-file"])
            .arg(&key_file)
            .args(args);
        run(&mut c, SHORT).stdout
    };
    admin(&["user", "create", "late"]);
    let credentials = admin(&["key", "create", "--user", "late"]);
    let basic = basic_auth(&access_key(&credentials));
    let list = |host: &str| {
        http(
            "GET",
            &format!("http://{host}/v2/scale/late/tags/list"),
            &[("Authorization", basic.as_str())],
            None,
        )
    };
    for (i, host) in s.hosts.iter().enumerate() {
        let r = list(host);
        assert_eq!(r.status, 403, "node{i}, no policy yet: {}", r.describe());
    }
    let policy = tempfile::NamedTempFile::new().unwrap();
    fs::write(
        policy.path(),
        r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"ecr:ListImages","Resource":"*"}]}"#,
    )
    .unwrap();
    admin(&[
        "policy",
        "put",
        "--user",
        "late",
        "--name",
        "list",
        "--file",
        policy.path().to_str().unwrap(),
    ]);
    for (i, host) in s.hosts.iter().enumerate() {
        let r = list(host);
        assert_eq!(
            r.status,
            200,
            "node{i}, right after the policy was attached: {}\n{}",
            r.describe(),
            s.logs()
        );
    }
}

/// Jobs run exactly once with three runners on one queue (issue 14, "jobs run exactly
/// once"; issue 8's lease and claim rules on PostgreSQL `FOR UPDATE SKIP LOCKED`): 24
/// manifest PUTs spread over the nodes each enqueue a fan-out job in their transaction;
/// each becomes one webhook delivery of the config file's rule. The receiver gets every
/// PUSH event exactly once, every job ran one attempt, and more than one node claimed
/// jobs.
#[test]
fn event_jobs_run_exactly_once_on_three_runners() {
    const T: &str = "event_jobs_run_exactly_once_on_three_runners";
    let Some(s) = scale(T) else { return };
    let _shared = s.shared();
    let auth = s.basic();
    let h = [("Authorization", auth.as_str())];
    let repo = "scale/events";
    let config =
        br#"{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[]}}"#;
    let config_digest = sha256_digest(config);
    let r = http(
        "POST",
        &format!(
            "http://{}/v2/{repo}/blobs/uploads/?digest={config_digest}",
            s.lb.host
        ),
        &[
            ("Authorization", auth.as_str()),
            ("Content-Type", "application/octet-stream"),
        ],
        Some(config),
    );
    assert_eq!(r.status, 201, "{}", r.describe());
    let mut pushed = BTreeSet::new();
    for i in 0..24 {
        let manifest = serde_json::json!({
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": {
                "mediaType": "application/vnd.oci.image.config.v1+json",
                "digest": config_digest,
                "size": config.len(),
            },
            "layers": [],
            "annotations": {"n": i.to_string()},
        })
        .to_string();
        let tag = format!("t{i}");
        let r = http(
            "PUT",
            &format!("http://{}/v2/{repo}/manifests/{tag}", s.hosts[i % 3]),
            &[
                h[0],
                ("Content-Type", "application/vnd.oci.image.manifest.v1+json"),
            ],
            Some(manifest.as_bytes()),
        );
        assert_eq!(r.status, 201, "{}", r.describe());
        pushed.insert(tag);
    }
    // Every PUSH of this repository arrives; then nothing more (a late duplicate would
    // come within the settle time: deliveries are immediate here).
    let ours = |got: &[Delivery]| -> Vec<serde_json::Value> {
        got.iter()
            .map(|d| serde_json::from_str::<serde_json::Value>(&d.body).unwrap())
            .filter(|v| {
                v["detail"]["repository-name"] == repo && v["detail"]["action-type"] == "PUSH"
            })
            .collect()
    };
    let start = Instant::now();
    while ours(&s.hook.got()).len() < pushed.len() {
        assert!(
            start.elapsed() < Duration::from_secs(120),
            "PUSH events of {repo}: {} of {} after 120 s\n{}",
            ours(&s.hook.got()).len(),
            pushed.len(),
            s.logs()
        );
        thread::sleep(Duration::from_millis(100));
    }
    thread::sleep(Duration::from_secs(3));
    let events = ours(&s.hook.got());
    let mut by_id: BTreeMap<String, usize> = BTreeMap::new();
    for e in &events {
        *by_id
            .entry(e["id"].as_str().unwrap().to_string())
            .or_default() += 1;
    }
    let duplicates: Vec<_> = by_id.iter().filter(|(_, n)| **n > 1).collect();
    assert!(
        duplicates.is_empty(),
        "delivered more than once: {duplicates:?}"
    );
    let tags: BTreeSet<String> = events
        .iter()
        .map(|e| e["detail"]["image-tag"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(tags, pushed, "one PUSH event per manifest PUT");
    // The queue's own record: each delivery job ran one attempt; several nodes claimed.
    let attempts = s.sql(
        "SELECT count(*), coalesce(max(attempts), 0), count(DISTINCT lease_owner) \
         FROM jobs WHERE kind = 'event.deliver' AND state = 'succeeded'",
    );
    let cols: Vec<u64> = attempts.split('|').map(|c| c.parse().unwrap()).collect();
    assert!(
        cols[0] >= pushed.len() as u64,
        "succeeded deliveries: {attempts}"
    );
    assert_eq!(cols[1], 1, "a delivery job ran more than once: {attempts}");
    assert!(
        cols[2] >= 2,
        "one runner claimed every delivery: {attempts}"
    );
}

/// A node killed with -9 while a layer streams into it (distribution-spec § Monolithic
/// upload): nothing partial is visible on the other nodes (HEAD 404), the same upload
/// retried through the balancer — which then skips the dead node — succeeds, and the
/// restarted node, on the same address, serves the exact bytes.
#[test]
fn node_killed_mid_push_then_the_retry_succeeds() {
    const T: &str = "node_killed_mid_push_then_the_retry_succeeds";
    let Some(s) = scale(T) else { return };
    let auth = s.basic();
    let mut cluster = s.cluster.write().unwrap_or_else(|e| e.into_inner());
    let h = [("Authorization", auth.as_str())];
    let dir = tempfile::tempdir().unwrap();
    let layer: Vec<u8> = (0..48u32 * 1024 * 1024)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 24) as u8)
        .collect();
    let layer_path = dir.path().join("layer");
    fs::write(&layer_path, &layer).unwrap();
    let digest = sha256_digest(&layer);
    let victim = 2;
    let vhost = s.hosts[victim].clone();
    let r = http(
        "POST",
        &format!("http://{vhost}/v2/scale/killed/blobs/uploads/"),
        &h,
        None,
    );
    assert_eq!(r.status, 202, "{}", r.describe());
    let path = path_of(r.header("location").unwrap());
    let sep = if path.contains('?') { '&' } else { '?' };
    // A monolithic PUT streamed at 8 MiB/s (about 6 s), killed after 2.
    let mut curl = Command::new("curl")
        .args(["-sS", "-o", "/dev/null", "--limit-rate", "8M", "-X", "PUT"])
        .args(["-H", &format!("Authorization: {auth}")])
        .args(["-H", "Content-Type: application/octet-stream"])
        .arg("--data-binary")
        .arg(format!("@{}", layer_path.display()))
        .arg(format!("http://{vhost}{path}{sep}digest={digest}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    thread::sleep(Duration::from_secs(2));
    cluster.nodes[victim].kill();
    let _ = curl.wait();
    for i in [0, 1] {
        let r = http(
            "HEAD",
            &format!("http://{}/v2/scale/killed/blobs/{digest}", s.hosts[i]),
            &h,
            None,
        );
        assert_eq!(
            r.status,
            404,
            "node{i} serves a partial blob: {}",
            r.describe()
        );
    }
    // The retry through the balancer, POST with the whole body (§ Monolithic upload in
    // a single POST), on whichever live node nginx picks.
    let r = http(
        "POST",
        &format!(
            "http://{}/v2/scale/killed/blobs/uploads/?digest={digest}",
            s.lb.host
        ),
        &[
            ("Authorization", auth.as_str()),
            ("Content-Type", "application/octet-stream"),
        ],
        Some(&layer),
    );
    assert_eq!(r.status, 201, "{}\n{}", r.describe(), s.lb.errors());
    for i in [0, 1] {
        let r = http(
            "HEAD",
            &format!("http://{}/v2/scale/killed/blobs/{digest}", s.hosts[i]),
            &h,
            None,
        );
        assert_eq!(r.status, 200, "node{i}: {}", r.describe());
        let len = layer.len().to_string();
        assert_eq!(r.header("content-length"), Some(len.as_str()));
    }
    cluster.nodes[victim]
        .restart()
        .unwrap_or_else(|e| panic!("restarting node{victim}: {e}"));
    let g = http(
        "GET",
        &format!("http://{vhost}/v2/scale/killed/blobs/{digest}"),
        &h,
        None,
    );
    assert_eq!(g.status, 200, "{}", g.describe());
    assert!(g.body == layer, "the restarted node serves the exact bytes");
}

// ---------------------------------------------------------------------------------
// The webhook receiver of the event rule.
// ---------------------------------------------------------------------------------

/// One request the receiver answered 200.
#[derive(Clone, Debug)]
struct Delivery {
    body: String,
}

/// A real HTTP server on a free port that records every POST body.
struct Hook {
    port: u16,
    got: Arc<Mutex<Vec<Delivery>>>,
    _rt: tokio::runtime::Runtime,
}

impl Hook {
    fn start() -> Hook {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap();
        let got: Arc<Mutex<Vec<Delivery>>> = Arc::default();
        let state = got.clone();
        let app = axum::Router::new().fallback(move |body: axum::body::Bytes| {
            let state = state.clone();
            async move {
                state.lock().unwrap().push(Delivery {
                    body: String::from_utf8_lossy(&body).into_owned(),
                });
                axum::http::StatusCode::OK
            }
        });
        let listener = rt
            .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
            .unwrap();
        let port = listener.local_addr().unwrap().port();
        rt.spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Hook { port, got, _rt: rt }
    }

    fn url(&self) -> String {
        format!("http://127.0.0.1:{}/hook", self.port)
    }

    fn got(&self) -> Vec<Delivery> {
        self.got.lock().unwrap().clone()
    }
}
