//! Issue 8's event pipeline end to end: real clients push and delete, `berth serve`
//! emits ECR's `ECR Image Action` events (ECR_REFERENCE.md §3), and a real HTTP receiver
//! (an axum server in this test, on a free loopback port) gets them, signed with
//! `X-Berth-Signature` and authenticated as the rule's connection says. Rules and targets
//! come from the config file (`[[events.rules]]`).
//!
//! - docker push of two tags, an OCI tag DELETE (distribution-spec § Deleting tags) and
//!   `aws ecr batch-delete-image` reach the receiver with the exact ECR shapes; the
//!   signature verifies with `berth_events::signature::verify`; a push refused for an
//!   immutable tag (ECR_REFERENCE.md §2.2) enqueues nothing;
//! - `aws ecr delete-repository --force` reaches it as one DELETE per image and tag; the
//!   connection's password and the signing secret are not in the database files in
//!   clear (sealed with the master key) and `berth admin events destination-secret`
//!   opens the sealed secret;
//! - a receiver that is down for 30 s gets everything once it is back (retries with
//!   backoff, visible in `berth admin events deliveries` and on `/metrics`);
//! - `kill -9` of Berth with 100 deliveries queued or in flight: after the restart every
//!   event arrives (duplicates allowed, always with the same `id`).
//!
//! Run: `cargo test -p berth --test events`. docker and the AWS CLI come from
//! `.ci/install-clients`; outside CI a missing client makes the first test print
//! `SKIPPED`.

mod common;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use common::*;
use serde_json::{json, Value};
use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

const SECRET: &str = "test-signing-secret";
const ACCOUNT: &str = "123456789012";
const REGION: &str = "us-west-2";

// ---------------------------------------------------------------------------------
// The webhook receiver.
// ---------------------------------------------------------------------------------

/// One request the receiver accepted (and answered 200).
#[derive(Clone, Debug)]
struct Delivery {
    path: String,
    headers: BTreeMap<String, String>,
    body: String,
}

impl Delivery {
    fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.body))
    }

    /// The signature verifies with the destination's secret (berth-events' verifier,
    /// 5 minutes' tolerance).
    fn assert_signed(&self) {
        let header = self
            .headers
            .get("x-berth-signature")
            .unwrap_or_else(|| panic!("no X-Berth-Signature: {self:?}"));
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs() as i64;
        berth_events::signature::verify(SECRET.as_bytes(), header, self.body.as_bytes(), now, 300)
            .unwrap_or_else(|e| panic!("signature does not verify ({e}): {self:?}"));
    }
}

const OK: u8 = 0;
/// Hold each request until the mode changes, then answer 503 without recording it.
const HANG: u8 = 1;

#[derive(Clone)]
struct Rx {
    got: Arc<Mutex<Vec<Delivery>>>,
    mode: Arc<AtomicU8>,
}

async fn receive(
    State(rx): State<Rx>,
    uri: axum::http::Uri,
    headers: HeaderMap,
    body: Bytes,
) -> StatusCode {
    while rx.mode.load(Ordering::SeqCst) == HANG {
        tokio::time::sleep(Duration::from_millis(20)).await;
        if rx.mode.load(Ordering::SeqCst) != HANG {
            return StatusCode::SERVICE_UNAVAILABLE;
        }
    }
    let headers = headers
        .iter()
        .map(|(k, v)| (k.as_str().to_string(), v.to_str().unwrap_or("").to_string()))
        .collect();
    rx.got.lock().unwrap().push(Delivery {
        path: uri.path().to_string(),
        headers,
        body: String::from_utf8_lossy(&body).into_owned(),
    });
    StatusCode::OK
}

/// A real HTTP server on a fixed free port that records what it gets; it can be stopped
/// (connections refused) and started again on the same port.
struct Receiver {
    rt: tokio::runtime::Runtime,
    port: u16,
    rx: Rx,
    task: Option<tokio::task::JoinHandle<()>>,
}

impl Receiver {
    fn new() -> Receiver {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        let mut r = Receiver {
            rt,
            port: free_port(),
            rx: Rx {
                got: Arc::default(),
                mode: Arc::new(AtomicU8::new(OK)),
            },
            task: None,
        };
        r.start();
        r
    }

    fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    fn start(&mut self) {
        assert!(self.task.is_none());
        let app = axum::Router::new()
            .fallback(receive)
            .with_state(self.rx.clone());
        let port = self.port;
        let listener = self.rt.block_on(async move {
            // The port was ours a moment ago; retry briefly if the old socket lingers.
            for _ in 0..100 {
                if let Ok(l) = tokio::net::TcpListener::bind(("127.0.0.1", port)).await {
                    return l;
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            panic!("cannot bind the receiver's port {port} again");
        });
        self.task = Some(self.rt.spawn(async move {
            let _ = axum::serve(listener, app).await;
        }));
    }

    /// Stops listening: deliveries now fail to connect.
    fn stop(&mut self) {
        if let Some(t) = self.task.take() {
            t.abort();
            let _ = self.rt.block_on(t);
        }
    }

    fn set_mode(&self, mode: u8) {
        self.rx.mode.store(mode, Ordering::SeqCst);
    }

    fn got(&self) -> Vec<Delivery> {
        self.rx.got.lock().unwrap().clone()
    }

    /// Waits (up to `limit`, generous: this is not a timing test) until `done` holds for
    /// what arrived; panics with what did arrive otherwise.
    fn wait_for(
        &self,
        what: &str,
        limit: Duration,
        done: impl Fn(&[Delivery]) -> bool,
    ) -> Vec<Delivery> {
        let start = Instant::now();
        loop {
            let got = self.got();
            if done(&got) {
                return got;
            }
            if start.elapsed() > limit {
                let bodies: Vec<&str> = got.iter().map(|d| d.body.as_str()).collect();
                panic!(
                    "{what}: not reached within {limit:?}; received {}:\n{bodies:#?}",
                    got.len()
                );
            }
            thread::sleep(Duration::from_millis(50));
        }
    }
}

/// Distinct event ids received, checking that every copy of one id is the same event.
fn distinct(got: &[Delivery]) -> BTreeMap<String, Value> {
    let mut by_id: BTreeMap<String, Value> = BTreeMap::new();
    for d in got {
        let v = d.json();
        let id = v["id"]
            .as_str()
            .unwrap_or_else(|| panic!("no id: {v}"))
            .to_string();
        if let Some(prev) = by_id.get(&id) {
            assert_eq!(prev, &v, "a redelivery carries the same event");
        }
        by_id.insert(id, v);
    }
    by_id
}

// ---------------------------------------------------------------------------------
// berth serve with a config file, restartable on its data directory.
// ---------------------------------------------------------------------------------

struct Berth {
    child: Option<Child>,
    port: u16,
    args: Vec<String>,
    runs: u32,
    root: tempfile::TempDir,
}

impl Berth {
    /// Starts `berth serve` (anonymous access on, account 123456789012, us-west-2) with
    /// `config` as its TOML file and `extra` flags.
    fn start(config: &str, extra: &[&str]) -> Berth {
        let root = tempfile::Builder::new()
            .prefix("berth-events-")
            .tempdir()
            .unwrap();
        fs::write(root.path().join("berth.toml"), config).unwrap();
        let mut b = Berth {
            child: None,
            port: 0,
            args: extra.iter().map(|s| s.to_string()).collect(),
            runs: 0,
            root,
        };
        b.spawn();
        b
    }

    fn data(&self) -> PathBuf {
        self.root.path().join("data")
    }

    fn config(&self) -> PathBuf {
        self.root.path().join("berth.toml")
    }

    fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    fn host(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    fn log(&self) -> String {
        let text = fs::read_to_string(self.root.path().join(format!("server-{}.log", self.runs)))
            .unwrap_or_default();
        text.chars()
            .rev()
            .take(6000)
            .collect::<Vec<_>>()
            .into_iter()
            .rev()
            .collect()
    }

    fn spawn(&mut self) {
        for attempt in 0..5 {
            self.port = free_port();
            self.runs += 1;
            let log = fs::File::create(self.root.path().join(format!("server-{}.log", self.runs)))
                .unwrap();
            let mut cmd = Command::new(env!("CARGO_BIN_EXE_berth"));
            for (k, _) in std::env::vars_os() {
                if k.to_string_lossy().starts_with("BERTH_") {
                    cmd.env_remove(k);
                }
            }
            cmd.arg("serve")
                .arg("--listen")
                .arg(self.host())
                .arg("--data-dir")
                .arg(self.data())
                .arg("--config")
                .arg(self.config())
                .args([
                    "--allow-anonymous",
                    "--account-id",
                    ACCOUNT,
                    "--region",
                    REGION,
                ])
                .args(&self.args)
                .stdin(Stdio::null())
                .stdout(log.try_clone().unwrap())
                .stderr(log);
            self.child = Some(cmd.spawn().expect("starting berth"));
            let start = Instant::now();
            loop {
                if let Ok(Some(st)) = self.child.as_mut().unwrap().try_wait() {
                    self.child = None;
                    if self.log().contains("binding") && attempt < 4 {
                        break;
                    }
                    panic!("berth exited with {st}:\n{}", self.log());
                }
                if let Ok(r) = ureq::get(&self.url("/readyz")).call() {
                    if r.status() == 200 {
                        return;
                    }
                }
                assert!(
                    start.elapsed() < Duration::from_secs(60),
                    "not ready:\n{}",
                    self.log()
                );
                thread::sleep(Duration::from_millis(25));
            }
        }
    }

    fn kill9(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// `berth admin --data-dir … --config … <args>`: its JSON output.
    fn admin(&self, args: &[&str]) -> Value {
        let mut c = Command::new(env!("CARGO_BIN_EXE_berth"));
        c.arg("admin")
            .arg("--data-dir")
            .arg(self.data())
            .arg("--config")
            .arg(self.config())
            .args(args);
        let o = run(&mut c, SHORT);
        serde_json::from_str(&o.stdout).unwrap_or_else(|e| panic!("{e}: {}", o.describe()))
    }

    /// The delivery log (`berth admin events deliveries`).
    fn deliveries(&self) -> Vec<Value> {
        self.admin(&["events", "deliveries", "--limit", "10000"])
            .as_array()
            .cloned()
            .unwrap_or_default()
    }
}

impl Drop for Berth {
    fn drop(&mut self) {
        if thread::panicking() {
            eprintln!("--- berth log ---\n{}", self.log());
        }
        self.kill9();
    }
}

/// A config file with one rule matching every `ECR Image Action`, delivered to
/// `endpoint` with Basic auth and the test's signing secret.
fn config(endpoint: &str) -> String {
    format!(
        r#"
[[events.rules]]
name = "image-actions"
description = "every push and delete"
event_pattern = '{{"source": ["aws.ecr"], "detail-type": ["ECR Image Action"]}}'

[[events.rules.targets]]
id = "hook"
endpoint = "{endpoint}"
signing_secret = "{SECRET}"
auth = {{ type = "BASIC", username = "berth", password = "hook-password" }}
"#
    )
}

// ---------------------------------------------------------------------------------
// Pushing small images over HTTP (distribution-spec § Pushing).
// ---------------------------------------------------------------------------------

fn push_blob(b: &Berth, repo: &str, data: &[u8]) -> (String, usize) {
    let d = sha256_digest(data);
    let r = http(
        "POST",
        &b.url(&format!("/v2/{repo}/blobs/uploads/?digest={d}")),
        &[("Content-Type", "application/octet-stream")],
        Some(data),
    );
    assert_eq!(r.status, 201, "{}", r.describe());
    (d, data.len())
}

/// An OCI image manifest over a fresh config and layer; (body, digest).
fn small_image(b: &Berth, repo: &str, nonce: &str) -> (Vec<u8>, String) {
    let (c, cs) = push_blob(b, repo, format!("{{\"nonce\":\"{nonce}\"}}").as_bytes());
    let (l, ls) = push_blob(b, repo, format!("layer {nonce}").as_bytes());
    let m = berth_test_support::image_manifest(&c, cs, &l, ls).into_bytes();
    let d = sha256_digest(&m);
    (m, d)
}

fn put_manifest(b: &Berth, repo: &str, reference: &str, body: &[u8]) -> Resp {
    http(
        "PUT",
        &b.url(&format!("/v2/{repo}/manifests/{reference}")),
        &[("Content-Type", "application/vnd.oci.image.manifest.v1+json")],
        Some(body),
    )
}

/// The envelope of ECR_REFERENCE.md §3, key for key and in AWS's order, with `detail`.
fn assert_envelope(d: &Delivery, detail: &Value) {
    d.assert_signed();
    let v = d.json();
    let keys: Vec<&str> = v.as_object().unwrap().keys().map(|k| k.as_str()).collect();
    let mut want = vec![
        "account",
        "detail",
        "detail-type",
        "id",
        "region",
        "resources",
        "source",
        "time",
        "version",
    ];
    want.sort();
    let mut got = keys.clone();
    got.sort();
    assert_eq!(got, want, "envelope keys: {}", d.body);
    assert!(
        d.body.starts_with("{\"version\":\"0\",\"id\":\""),
        "envelope order as AWS's sample: {}",
        d.body
    );
    assert_eq!(v["version"], "0");
    assert_eq!(v["detail-type"], "ECR Image Action");
    assert_eq!(v["source"], "aws.ecr");
    assert_eq!(v["account"], ACCOUNT);
    assert_eq!(v["region"], REGION);
    assert_eq!(v["resources"], json!([]));
    assert!(
        uuid_like(v["id"].as_str().unwrap()),
        "id is a UUID: {}",
        v["id"]
    );
    let t = v["time"].as_str().unwrap();
    assert!(
        t.len() == 20 && t.ends_with('Z') && t.as_bytes()[10] == b'T',
        "time like 2019-11-16T01:54:34Z: {t}"
    );
    assert_eq!(&v["detail"], detail, "{}", d.body);
    // detail keys in the order of AWS's sample.
    let order = [
        "\"result\"",
        "\"repository-name\"",
        "\"image-digest\"",
        "\"action-type\"",
    ];
    let pos: Vec<usize> = order.iter().map(|k| d.body.find(k).unwrap()).collect();
    assert!(
        pos.windows(2).all(|w| w[0] < w[1]),
        "detail key order: {}",
        d.body
    );
}

fn uuid_like(s: &str) -> bool {
    let parts: Vec<&str> = s.split('-').collect();
    parts.iter().map(|p| p.len()).collect::<Vec<_>>() == [8, 4, 4, 4, 12]
        && s.chars().all(|c| c == '-' || c.is_ascii_hexdigit())
}

fn image_action(action: &str, repo: &str, digest: &str, tag: Option<&str>) -> Value {
    let mut v = json!({"result": "SUCCESS", "repository-name": repo, "image-digest": digest,
                       "action-type": action});
    if let Some(t) = tag {
        v["image-tag"] = json!(t);
    }
    v
}

// ---------------------------------------------------------------------------------
// Tests.
// ---------------------------------------------------------------------------------

/// ECR_REFERENCE.md §3: PUSH "sent when each image push is completed", one per tag
/// pushed (docker pushes two tags: two PUSH events with one digest), an untagged push
/// without `image-tag`; DELETE from the OCI API (delete by tag, distribution-spec
/// § Deleting tags) and from ECR BatchDeleteImage (the image's last tag deletes the
/// image). Each arrives signed (`X-Berth-Signature`) and with the connection's Basic
/// credentials. A PUT refused for an immutable tag (§2.2) enqueues no event.
#[test]
fn docker_push_and_deletes_reach_the_webhook_in_ecr_shapes() {
    if !require(
        "docker_push_and_deletes_reach_the_webhook_in_ecr_shapes",
        &["docker", "busybox-static", "aws"],
    ) {
        return;
    }
    let rx = Receiver::new();
    let b = Berth::start(&config(&rx.url("/hook")), &[]);

    // docker push, two tags.
    let d = docker();
    let image = format!("{}/team/app", b.host());
    d.build_busybox_image(&format!("{image}:v1"), "events-test");
    run(
        d.cmd()
            .args(["tag", &format!("{image}:v1"), &format!("{image}:v2")]),
        SHORT,
    );
    let digest = d.push(&format!("{image}:v1"));
    assert_eq!(d.push(&format!("{image}:v2")), digest);
    let got = rx.wait_for("two PUSH events", Duration::from_secs(60), |g| g.len() >= 2);
    let mut pushes: Vec<&Delivery> = got.iter().collect();
    pushes.sort_by_key(|d| d.json()["detail"]["image-tag"].as_str().map(str::to_string));
    assert_envelope(
        pushes[0],
        &image_action("PUSH", "team/app", &digest, Some("v1")),
    );
    assert_envelope(
        pushes[1],
        &image_action("PUSH", "team/app", &digest, Some("v2")),
    );
    for p in &pushes {
        assert_eq!(p.path, "/hook");
        assert_eq!(
            p.headers.get("authorization").map(String::as_str),
            Some("Basic YmVydGg6aG9vay1wYXNzd29yZA=="),
            "the connection's Basic credentials (berth:hook-password)"
        );
        assert_eq!(
            p.headers.get("content-type").map(String::as_str),
            Some("application/json")
        );
    }
    assert_ne!(
        pushes[0].json()["id"],
        pushes[1].json()["id"],
        "one event per tag"
    );

    // An untagged push (by digest).
    let (m, md) = small_image(&b, "team/app", "untagged");
    assert_eq!(put_manifest(&b, "team/app", &md, &m).status, 201);
    let got = rx.wait_for("untagged PUSH", Duration::from_secs(30), |g| g.len() >= 3);
    let untagged = got
        .iter()
        .find(|d| d.json()["detail"]["image-digest"] == md.as_str())
        .unwrap();
    assert_envelope(untagged, &image_action("PUSH", "team/app", &md, None));

    // OCI DELETE of tag v2.
    let r = http("DELETE", &b.url("/v2/team/app/manifests/v2"), &[], None);
    assert_eq!(r.status, 202, "{}", r.describe());
    let got = rx.wait_for("DELETE v2", Duration::from_secs(30), |g| g.len() >= 4);
    let del = got
        .iter()
        .find(|d| d.json()["detail"]["action-type"] == "DELETE")
        .unwrap();
    assert_envelope(
        del,
        &image_action("DELETE", "team/app", &digest, Some("v2")),
    );

    // aws ecr batch-delete-image of the last tag: the image is deleted.
    let creds = b.data().join("admin-credentials");
    let aws = |args: &[&str]| {
        let mut c = Command::new(aws_cli());
        c.env("AWS_SHARED_CREDENTIALS_FILE", &creds)
            .env("AWS_CONFIG_FILE", "/dev/null")
            .env("AWS_DEFAULT_REGION", REGION)
            .env("AWS_MAX_ATTEMPTS", "1")
            .env("AWS_PAGER", "")
            .env_remove("AWS_ACCESS_KEY_ID")
            .env_remove("AWS_SECRET_ACCESS_KEY")
            .env_remove("AWS_PROFILE")
            .args(["--endpoint-url", &b.url(""), "--output", "json", "ecr"])
            .args(args);
        let o = run(&mut c, SHORT);
        serde_json::from_str::<Value>(&o.stdout).unwrap_or(Value::Null)
    };
    let out = aws(&[
        "batch-delete-image",
        "--repository-name",
        "team/app",
        "--image-ids",
        "imageTag=v1",
    ]);
    assert_eq!(
        out["imageIds"],
        json!([{"imageDigest": digest, "imageTag": "v1"}]),
        "{out}"
    );
    let got = rx.wait_for("DELETE v1", Duration::from_secs(30), |g| g.len() >= 5);
    let del = got
        .iter()
        .find(|d| {
            d.json()["detail"]["image-tag"] == "v1" && d.json()["detail"]["action-type"] == "DELETE"
        })
        .unwrap();
    assert_envelope(
        del,
        &image_action("DELETE", "team/app", &digest, Some("v1")),
    );

    // Immutable tags (§2.2): the refused PUT stores nothing and enqueues nothing.
    aws(&[
        "create-repository",
        "--repository-name",
        "team/imm",
        "--image-tag-mutability",
        "IMMUTABLE",
    ]);
    let (a, da) = small_image(&b, "team/imm", "imm-a");
    let (c, _dc) = small_image(&b, "team/imm", "imm-b");
    assert_eq!(put_manifest(&b, "team/imm", "v1", &a).status, 201);
    let refused = put_manifest(&b, "team/imm", "v1", &c);
    assert_eq!(refused.status, 400, "{}", refused.describe());
    let fanouts = b.admin(&["jobs", "list", "--kind", "event.fanout", "--limit", "1000"]);
    let imm: Vec<&Value> = fanouts
        .as_array()
        .unwrap()
        .iter()
        .filter(|j| j["payload"]["event"].as_str().unwrap().contains("team/imm"))
        .collect();
    assert_eq!(
        imm.len(),
        1,
        "only the accepted push has an event: {imm:#?}"
    );
    let got = rx.wait_for("PUSH team/imm", Duration::from_secs(30), |g| g.len() >= 6);
    let imm_events: Vec<&Delivery> = got
        .iter()
        .filter(|d| d.json()["detail"]["repository-name"] == "team/imm")
        .collect();
    assert_eq!(imm_events.len(), 1);
    assert_envelope(
        imm_events[0],
        &image_action("PUSH", "team/imm", &da, Some("v1")),
    );

    // The delivery log has every delivery, succeeded at the first attempt.
    let log = b.deliveries();
    assert_eq!(log.len(), 6, "{log:#?}");
    for l in &log {
        assert_eq!(l["state"], "succeeded", "{l}");
        assert_eq!(l["rule"], "image-actions");
        assert_eq!(l["target_id"], "hook");
        assert_eq!(l["attempts"], 1);
    }

    // ECR DeleteRepository with force (`aws ecr delete-repository --force`): one DELETE
    // per image it removes, per tag (an untagged image without `image-tag`), as the OCI
    // and BatchDeleteImage deletes report them.
    let (x, dx) = small_image(&b, "team/gone", "gone-x");
    let (y, dy) = small_image(&b, "team/gone", "gone-y");
    assert_eq!(put_manifest(&b, "team/gone", "r1", &x).status, 201);
    assert_eq!(put_manifest(&b, "team/gone", "r2", &x).status, 201);
    assert_eq!(put_manifest(&b, "team/gone", &dy, &y).status, 201);
    rx.wait_for("3 PUSH team/gone", Duration::from_secs(30), |g| {
        g.len() >= 9
    });
    let out = aws(&[
        "delete-repository",
        "--repository-name",
        "team/gone",
        "--force",
    ]);
    assert_eq!(out["repository"]["repositoryName"], "team/gone", "{out}");
    let got = rx.wait_for("3 DELETE team/gone", Duration::from_secs(30), |g| {
        g.len() >= 12
    });
    let mut gone: Vec<&Delivery> = got
        .iter()
        .filter(|d| {
            let v = d.json();
            v["detail"]["repository-name"] == "team/gone" && v["detail"]["action-type"] == "DELETE"
        })
        .collect();
    assert_eq!(gone.len(), 3, "one DELETE per image and tag");
    gone.sort_by_key(|d| d.json()["detail"]["image-tag"].as_str().map(str::to_string));
    assert_envelope(gone[0], &image_action("DELETE", "team/gone", &dy, None));
    assert_envelope(
        gone[1],
        &image_action("DELETE", "team/gone", &dx, Some("r1")),
    );
    assert_envelope(
        gone[2],
        &image_action("DELETE", "team/gone", &dx, Some("r2")),
    );

    // Secrets at rest (issue 8): the connection's Basic password and the destination's
    // signing secret are sealed with the master key; the database files never hold them
    // in clear, yet every delivery above authenticated and verified.
    for f in ["metadata.db", "metadata.db-wal"] {
        let bytes = fs::read(b.data().join(f)).unwrap_or_default();
        for secret in ["hook-password", SECRET] {
            assert!(
                !bytes.windows(secret.len()).any(|w| w == secret.as_bytes()),
                "{f} holds {secret:?} in clear"
            );
        }
    }
    let admin_secret = Command::new(env!("CARGO_BIN_EXE_berth"))
        .arg("admin")
        .arg("--data-dir")
        .arg(b.data())
        .arg("--config")
        .arg(b.config())
        .args([
            "events",
            "destination-secret",
            "berth-config-image-actions-hook",
        ])
        .output()
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&admin_secret.stdout).trim(),
        SECRET,
        "berth admin events destination-secret opens the sealed secret: {}",
        String::from_utf8_lossy(&admin_secret.stderr)
    );
}

/// Retries with backoff (EventBridge retries for up to 24 hours): the receiver is down
/// for 30 s; every event is delivered once it is back, the delivery log shows the failed
/// attempts, and `/metrics` counts the jobs.
#[test]
fn receiver_down_for_30_s_then_everything_arrives() {
    let mut rx = Receiver::new();
    rx.stop();
    let b = Berth::start(
        &config(&rx.url("/hook")),
        &[
            "--event-retry-initial-ms",
            "100",
            "--event-retry-max-secs",
            "2",
        ],
    );
    let down = Instant::now();
    let (m, _) = small_image(&b, "down/app", "down");
    let tags: Vec<String> = (0..5).map(|i| format!("t{i}")).collect();
    for t in &tags {
        assert_eq!(put_manifest(&b, "down/app", t, &m).status, 201);
    }
    // Wait until every delivery failed at least twice (the log says why), then keep the
    // receiver down for the rest of the 30 s.
    let start = Instant::now();
    loop {
        let log = b.deliveries();
        if log.len() == tags.len()
            && log
                .iter()
                .all(|l| l["attempts"].as_u64().unwrap_or(0) >= 2 && l["state"] != "succeeded")
        {
            for l in &log {
                let e = l["last_error"].as_str().unwrap_or_default();
                assert!(
                    e.contains("connection failed") || e.contains("request failed"),
                    "{l}"
                );
            }
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "no retries seen: {log:#?}"
        );
        thread::sleep(Duration::from_millis(200));
    }
    let rest = Duration::from_secs(30).saturating_sub(down.elapsed());
    thread::sleep(rest);
    assert!(rx.got().is_empty());
    rx.start();
    let got = rx.wait_for("all five events", Duration::from_secs(60), |g| {
        distinct(g).len() == tags.len()
    });
    let events = distinct(&got);
    let received: BTreeSet<String> = events
        .values()
        .map(|v| v["detail"]["image-tag"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(received, tags.iter().cloned().collect());
    for d in &got {
        d.assert_signed();
    }
    // The log ends succeeded; /metrics shows the job gauges (refreshed every few seconds).
    let start = Instant::now();
    loop {
        let log = b.deliveries();
        let metrics = http("GET", &b.url("/metrics"), &[], None).text();
        if log.iter().all(|l| l["state"] == "succeeded")
            && metrics.contains("berth_jobs{kind=\"event.deliver\",state=\"succeeded\"} 5")
        {
            assert!(
                metrics.contains("berth_jobs_oldest_due_age_seconds"),
                "{metrics}"
            );
            assert!(
                metrics.contains("berth_jobs_failed_total{kind=\"event.deliver\"}"),
                "{metrics}"
            );
            // Housekeeping runs on the same queue (issue 8: one way background work
            // happens): the janitor's first tick enqueued upload expiry and audit pruning.
            for kind in ["housekeeping.expire_uploads", "housekeeping.prune_audit"] {
                let jobs = b.admin(&["jobs", "list", "--kind", kind, "--state", "succeeded"]);
                assert!(!jobs.as_array().unwrap().is_empty(), "{kind}: {jobs}");
            }
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "{log:#?}\n{metrics}"
        );
        thread::sleep(Duration::from_millis(200));
    }
}

/// DESIGN.md invariant 4 and issue 8: `kill -9` of Berth while 100 deliveries are
/// queued or in flight (the receiver holds every request open) loses none: after the
/// restart, once the dead process's leases expire, every event arrives; duplicates are
/// allowed and carry the same `id`.
#[test]
fn kill_9_with_100_deliveries_queued_loses_none() {
    let rx = Receiver::new();
    rx.set_mode(HANG);
    let mut b = Berth::start(
        &config(&rx.url("/hook")),
        &[
            "--job-lease-secs",
            "2",
            "--event-retry-initial-ms",
            "100",
            "--event-retry-max-secs",
            "1",
            "--event-delivery-timeout-secs",
            "60",
        ],
    );
    let (m, _) = small_image(&b, "crash/app", "crash");
    let tags: BTreeSet<String> = (0..100).map(|i| format!("t{i:03}")).collect();
    for t in &tags {
        assert_eq!(put_manifest(&b, "crash/app", t, &m).status, 201);
    }
    let start = Instant::now();
    loop {
        let log = b.deliveries();
        if log.len() == tags.len() {
            assert!(log.iter().all(|l| l["state"] != "succeeded"), "{log:#?}");
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "{} deliveries queued",
            log.len()
        );
        thread::sleep(Duration::from_millis(100));
    }
    b.kill9();
    rx.set_mode(OK); // held requests now answer 503 and are not counted
    b.spawn();
    let got = rx.wait_for(
        "100 events after the restart",
        Duration::from_secs(90),
        |g| distinct(g).len() == tags.len(),
    );
    let events = distinct(&got);
    let received: BTreeSet<String> = events
        .values()
        .map(|v| v["detail"]["image-tag"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(received, tags);
    for d in &got {
        d.assert_signed();
    }
}
