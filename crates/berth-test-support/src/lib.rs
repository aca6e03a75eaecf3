//! Shared test fixtures for Berth's crates: one place for what every test suite used to
//! set up for itself.
//!
//! * [`Env`]: a fresh temporary data directory holding a real [`FsStore`] (blobs) and a
//!   real [`SqliteMeta`] database (`metadata.db`: content and identity tables), the
//!   [`Registry`] service and the [`Iam`] identity service over them, an administrator
//!   with an access key ([`Env::admin`]), and the **whole** HTTP app of `berth serve`
//!   ([`berth::serve::app`]: `/v2/`, the ECR API on `POST /`, `/healthz`, `/readyz`,
//!   `/metrics`), driven in process with `tower::ServiceExt::oneshot` ([`Env::send`]).
//!   Adapter tests therefore go through exactly the router, layers and error mapping the
//!   server serves, without a socket. [`Env::builder`] changes the registry's
//!   configuration or allows anonymous callers.
//! * [`user`]: an IAM user with an optional inline identity policy and an access key.
//! * [`ecr_request`]: an ECR API call (awsJson 1.1, `X-Amz-Target`) signed with SigV4
//!   exactly as botocore signs it, through `berth_iam::sigv4::sign` (aws-sigv4).
//! * [`sha256`], [`sha512`]: digest strings (`sha256:<hex>`) of bytes, computed with
//!   `sha2` directly rather than by the code under test.
//! * [`image_manifest`]: the OCI image manifest text of one config and one layer.
//! * For tests that start real processes: [`free_port`] (a loopback port), [`loud`]
//!   (a line the test harness does not capture) and [`in_ci`] (whether a missing client
//!   must fail rather than skip, per TESTING.md).
//! * [`postgres::Postgres`]: a real PostgreSQL server shared by a test binary, one fresh
//!   database per caller, stopped when the test process exits.
//! * [`nodes`]: real `berth serve` processes — one [`nodes::Node`] or a
//!   [`nodes::Cluster`] of N on the backends a test names (`--metadata`, `--storage`,
//!   one shared `--master-key-file`), for multi-node tests.
//!
//! * [`seaweedfs`]: a real SeaweedFS S3 server on loopback ([`seaweedfs::shared`]: one
//!   per test binary) for the S3 blob backend.
//!
//! Nothing here is a mock: the store writes and fsyncs real files, the metadata is a
//! real SQLite database with the server's migrations, the identity service seals secrets
//! and evaluates policies as in production. Only the master key is fixed
//! ([`MASTER_KEY`]) and audit records go to the log only.
//!
//! This crate is a dev-dependency only, never a normal one
//! (`crates/berth/tests/architecture.rs` checks it): it may depend on every Berth crate,
//! and none may depend on it for its shipped code.

#![deny(missing_docs)]

pub mod nodes;
pub mod postgres;
pub mod seaweedfs;

use axum::body::Body;
use axum::http::{Request, Response};
use axum::Router;
use berth_iam::audit::AuditSink;
use berth_iam::secret::Keys;
use berth_iam::service::{StoredKind, ADMINISTRATOR_ACCESS};
use berth_iam::{AccountId, Iam, IamConfig};
use berth_meta::{Metadata, PgMeta, SqliteMeta};
use berth_registry::{Registry, RegistryConfig};
use berth_store::{BlobStore, FsStore};
use sha2::{Digest as _, Sha256, Sha512};
use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::time::SystemTime;
use tower::ServiceExt;

/// The default account's ID (a 12-digit AWS account ID) of every [`Env`].
pub const ACCOUNT: &str = "111111111111";
/// The region every [`Env`] serves and [`ecr_request`] signs for (Berth's default).
pub const REGION: &str = "us-east-1";
/// The `Host` of in-process requests (the listen address of `berth serve`'s default).
pub const HOST: &str = "127.0.0.1:5000";
/// The fixed master key of every [`Env`] (sealing secrets, signing tokens).
pub const MASTER_KEY: [u8; 32] = [7u8; 32];

/// The credentials of one principal: an access key ID (`AKIA…`) and its secret.
#[derive(Clone, Debug)]
pub struct Key {
    /// The access key ID.
    pub id: String,
    /// The secret access key, in clear (the test needs it to sign).
    pub secret: String,
}

/// A registry and an identity service over a fresh temporary data directory, and the
/// app `berth serve` serves over them. Dropping it removes the directory.
pub struct Env {
    /// The service layer, for arranging state and checking it without HTTP.
    pub registry: Registry,
    /// The identity service (account [`ACCOUNT`], region [`REGION`]).
    pub iam: Iam,
    /// The metadata database both services share (SQLite, behind the backend-neutral
    /// trait the server holds).
    pub meta: Arc<dyn Metadata>,
    /// The blob store the registry writes (its bytes, for tests that check or damage
    /// them).
    pub store: Arc<dyn BlobStore>,
    /// Which pair of backends this environment runs on ([`Backends::from_env`]).
    pub backends: Backends,
    /// The S3 key prefix of the default store on [`Backends::PostgresS3`].
    s3_prefix: Option<String>,
    /// The access key of user `admin`, whose inline policy is `AdministratorAccess`.
    pub admin: Key,
    app: Router,
    // Declared last: removed after the services above are dropped.
    dir: tempfile::TempDir,
}

/// The metadata and blob backends an [`Env`] runs on, chosen for a whole test process by
/// the environment variable `BERTH_TEST_BACKENDS` so one suite runs on each pair
/// (issue 14: "the SQLite/disk and PostgreSQL/S3 pairs run the same tests").
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backends {
    /// `embedded` (the default, variable unset): SQLite `metadata.db` and an [`FsStore`]
    /// in the data directory.
    Embedded,
    /// `postgres-s3`: a fresh database on [`postgres::Postgres::shared`] and an S3 store
    /// on a fresh key prefix of [`seaweedfs::shared`]. Panics at [`EnvBuilder::build`]
    /// when either is not installed.
    PostgresS3,
}

/// The variable that selects [`Backends`].
pub const BACKENDS_ENV: &str = "BERTH_TEST_BACKENDS";

impl Backends {
    /// From `BERTH_TEST_BACKENDS` (`embedded` or unset, `postgres-s3`); panics on any
    /// other value, naming the accepted ones.
    pub fn from_env() -> Backends {
        match std::env::var(BACKENDS_ENV).as_deref() {
            Err(_) | Ok("") | Ok("embedded") => Backends::Embedded,
            Ok("postgres-s3") => Backends::PostgresS3,
            Ok(other) => panic!("{BACKENDS_ENV}={other:?}: expected embedded or postgres-s3"),
        }
    }
}

/// How to set up an [`Env`]: [`Env::builder`], then [`EnvBuilder::build`].
#[derive(Clone, Default)]
pub struct EnvBuilder {
    registry: RegistryConfig,
    allow_anonymous: bool,
    store: Option<Arc<dyn BlobStore>>,
}

impl std::fmt::Debug for EnvBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EnvBuilder")
            .field("registry", &self.registry)
            .field("allow_anonymous", &self.allow_anonymous)
            .field("store", &self.store.as_ref().map(|_| "custom"))
            .finish()
    }
}

impl EnvBuilder {
    /// The registry's configuration (default: [`RegistryConfig::default`]).
    pub fn registry(mut self, cfg: RegistryConfig) -> EnvBuilder {
        self.registry = cfg;
        self
    }

    /// Lets unauthenticated callers do everything (`berth serve --allow-anonymous`), for
    /// tests about the APIs rather than identity. Default: off.
    pub fn allow_anonymous(mut self, on: bool) -> EnvBuilder {
        self.allow_anonymous = on;
        self
    }

    /// The blob store (default: an [`FsStore`] in the data directory), e.g. an
    /// `S3Store` on [`seaweedfs::shared`].
    pub fn store(mut self, store: Arc<dyn BlobStore>) -> EnvBuilder {
        self.store = Some(store);
        self
    }

    /// Creates the directory, opens the store, the database, the services and the app,
    /// and creates the administrator. Panics (failing the test) if any of it fails.
    pub async fn build(self) -> Env {
        let dir = tempfile::Builder::new()
            .prefix("berth-test-")
            .tempdir()
            .expect("creating a temporary data directory");
        let backends = Backends::from_env();
        let mut s3_prefix = None;
        let (store, meta): (Arc<dyn BlobStore>, Arc<dyn Metadata>) = match backends {
            Backends::Embedded => (
                match self.store {
                    Some(s) => s,
                    None => Arc::new(FsStore::open(dir.path()).expect("opening the blob store")),
                },
                Arc::new(
                    SqliteMeta::open(&dir.path().join("metadata.db"))
                        .await
                        .expect("opening the metadata database"),
                ),
            ),
            Backends::PostgresS3 => {
                let pg = postgres::Postgres::shared("Env on BERTH_TEST_BACKENDS=postgres-s3")
                    .expect("BERTH_TEST_BACKENDS=postgres-s3 needs PostgreSQL installed");
                let s3 = seaweedfs::shared()
                    .expect("BERTH_TEST_BACKENDS=postgres-s3 needs weed (SeaweedFS) installed");
                let prefix = seaweedfs::unique_prefix("env");
                s3_prefix = Some(prefix.clone());
                (
                    match self.store {
                        Some(s) => s,
                        None => Arc::new(s3.store(&prefix)),
                    },
                    Arc::new(
                        PgMeta::open(&pg.database())
                            .await
                            .expect("opening the PostgreSQL metadata database"),
                    ),
                )
            }
        };
        let registry = Registry::new(store.clone(), meta.clone(), self.registry);
        let iam = Iam::open(
            meta.clone(),
            Keys::from_master(&MASTER_KEY),
            IamConfig {
                region: REGION.to_string(),
                account_id: Some(AccountId::parse(ACCOUNT).expect("a valid account ID")),
                allow_anonymous: self.allow_anonymous,
                ..IamConfig::default()
            },
            AuditSink::log_only(),
        )
        .await
        .expect("opening the identity service");
        let admin = user(&iam, ACCOUNT, "admin", Some(ADMINISTRATOR_ACCESS)).await;
        // A recorder of its own, not installed globally: tests may build many apps.
        let metrics = metrics_exporter_prometheus::PrometheusBuilder::new()
            .build_recorder()
            .handle();
        let app = berth::serve::app(registry.clone(), iam.clone(), metrics);
        Env {
            registry,
            iam,
            meta,
            store,
            backends,
            s3_prefix,
            admin,
            app,
            dir,
        }
    }
}

impl Env {
    /// An environment with the default registry configuration and authentication on.
    pub async fn new() -> Env {
        EnvBuilder::default().build().await
    }

    /// Settings other than the defaults of [`Env::new`].
    pub fn builder() -> EnvBuilder {
        EnvBuilder::default()
    }

    /// The data directory (the store's `blobs/` and `uploads/`, `metadata.db`).
    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// Every committed blob the default store holds, as the backend itself lists them:
    /// the files under `blobs/` of the data directory (paths), or the S3 keys under
    /// `<prefix>/blobs/`. For "nothing was stored" checks (DESIGN.md invariant 1).
    pub async fn stored_blobs(&self) -> Vec<String> {
        match &self.s3_prefix {
            Some(prefix) => {
                let s3 = seaweedfs::shared().expect("the SeaweedFS of this Env");
                s3.list(&format!("{prefix}/blobs/")).await
            }
            None => {
                fn walk(p: &Path, out: &mut Vec<String>) {
                    for e in std::fs::read_dir(p).into_iter().flatten().flatten() {
                        if e.file_type().map(|t| t.is_dir()).unwrap_or(false) {
                            walk(&e.path(), out);
                        } else {
                            out.push(e.path().display().to_string());
                        }
                    }
                }
                let mut out = Vec::new();
                walk(&self.dir.path().join("blobs"), &mut out);
                out
            }
        }
    }

    /// The whole app of `berth serve` ([`berth::serve::app`]) over this environment.
    pub fn app(&self) -> Router {
        self.app.clone()
    }

    /// Sends one request through the app, in process (`tower::ServiceExt::oneshot`).
    pub async fn send(&self, req: Request<Body>) -> Response<Body> {
        match self.app().oneshot(req).await {
            Ok(resp) => resp,
            Err(never) => match never {},
        }
    }
}

/// Creates IAM user `name` in `account`, with inline identity policy `policy` (named
/// `inline`) when given, and an access key for it.
pub async fn user(iam: &Iam, account: &str, name: &str, policy: Option<&str>) -> Key {
    iam.create_principal(account, StoredKind::User, name, BTreeMap::new())
        .await
        .expect("creating the user");
    if let Some(policy) = policy {
        iam.put_identity_policy(account, StoredKind::User, name, "inline", policy)
            .await
            .expect("attaching the policy");
    }
    let k = iam
        .create_access_key(account, StoredKind::User, name)
        .await
        .expect("creating the access key");
    Key {
        id: k.access_key_id,
        secret: k.secret_access_key.to_string(),
    }
}

/// An ECR API call as the AWS CLI and boto3 send it (ECR_REFERENCE §1.1–1.2):
/// `POST /` to [`HOST`], `Content-Type: application/x-amz-json-1.1`,
/// `X-Amz-Target: AmazonEC2ContainerRegistry_V20150921.<op>`, the raw `body`, signed
/// with SigV4 by `key` for service `ecr` in [`REGION`] at `time`.
pub fn ecr_request(key: &Key, op: &str, body: &str, time: SystemTime) -> Request<Body> {
    let target = format!("AmazonEC2ContainerRegistry_V20150921.{op}");
    let headers = [
        ("host", HOST),
        ("content-type", "application/x-amz-json-1.1"),
        ("x-amz-target", target.as_str()),
    ];
    let added = berth_iam::sigv4::sign(
        "POST",
        &format!("http://{HOST}/"),
        &headers,
        body.as_bytes(),
        &key.id,
        &key.secret,
        None,
        REGION,
        "ecr",
        time,
    )
    .expect("signing the request");
    let mut req = Request::builder().method("POST").uri("/");
    for (k, v) in headers {
        req = req.header(k, v);
    }
    for (k, v) in &added {
        req = req.header(k.as_str(), v.as_str());
    }
    req.body(Body::from(body.to_string()))
        .expect("a valid request")
}

/// An EventBridge API call as the AWS CLI and boto3 send it: `POST /` to [`HOST`],
/// `X-Amz-Target: AWSEvents.<op>`, the raw `body`, signed with SigV4 by `key` for
/// `service` (`events` for a correct call) in [`REGION`] at `time`.
pub fn events_request(
    key: &Key,
    op: &str,
    body: &str,
    service: &str,
    time: SystemTime,
) -> Request<Body> {
    let target = format!("AWSEvents.{op}");
    let headers = [
        ("host", HOST),
        ("content-type", "application/x-amz-json-1.1"),
        ("x-amz-target", target.as_str()),
    ];
    let added = berth_iam::sigv4::sign(
        "POST",
        &format!("http://{HOST}/"),
        &headers,
        body.as_bytes(),
        &key.id,
        &key.secret,
        None,
        REGION,
        service,
        time,
    )
    .expect("signing the request");
    let mut req = Request::builder().method("POST").uri("/");
    for (k, v) in headers {
        req = req.header(k, v);
    }
    for (k, v) in &added {
        req = req.header(k.as_str(), v.as_str());
    }
    req.body(Body::from(body.to_string()))
        .expect("a valid request")
}

/// The digest string `sha256:<64 hex>` of `data` (OCI image-spec, descriptor.md
/// "Digests"). Computed with `sha2` directly, not with `berth-core`, so a test that
/// checks what Berth served against it does not trust Berth's own digest code.
pub fn sha256(data: &[u8]) -> String {
    format!("sha256:{:x}", Sha256::digest(data))
}

/// The digest string `sha512:<128 hex>` of `data` (OCI image-spec, descriptor.md
/// "Digests": the other registered algorithm), with `sha2` directly.
pub fn sha512(data: &[u8]) -> String {
    format!("sha512:{:x}", Sha512::digest(data))
}

/// The text of an OCI image manifest (image-spec manifest.md) over one config blob and
/// one uncompressed tar layer, given their digests and sizes; compact JSON, so its digest
/// is that of exactly these bytes.
pub fn image_manifest(config: &str, config_size: usize, layer: &str, layer_size: usize) -> String {
    format!(
        r#"{{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"{config}","size":{config_size}}},"layers":[{{"mediaType":"application/vnd.oci.image.layer.v1.tar","digest":"{layer}","size":{layer_size}}}]}}"#
    )
}

/// A port on 127.0.0.1 that was free a moment ago (bound to port 0, then released).
/// Another process may take it before the server binds it: callers that start a
/// server retry on a new port when it fails to start.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("binding a free loopback port")
        .port()
}

/// Writes `msg` and a newline straight to the process's stderr: `cargo test` captures
/// `eprintln!` of passing tests, but not writes to the stderr handle itself, so skips,
/// notes and measurements stay visible in a normal run.
pub fn loud(msg: &str) {
    use std::io::Write as _;
    let mut err = std::io::stderr().lock();
    let _ = writeln!(err, "{msg}");
    let _ = err.flush();
}

/// Whether the tests run in CI (`CI=true` or `CI=1`), where a missing client fails the
/// test instead of skipping it (TESTING.md, "Rules").
pub fn in_ci() -> bool {
    std::env::var("CI")
        .map(|v| v.eq_ignore_ascii_case("true") || v == "1")
        .unwrap_or(false)
}

/// Runs every other test of the calling test binary once more on
/// [`Backends::PostgresS3`] (a child process of the same binary with
/// `BERTH_TEST_BACKENDS=postgres-s3` and `--skip this_test`), and fails with the child's
/// failures if any test fails there. So one suite written against [`Env`] proves both
/// backend pairs (issue 14) while `cargo test` stays one command. In the child itself,
/// and outside CI when PostgreSQL or SeaweedFS is missing (a loud SKIPPED), it does
/// nothing; under `CI=true` a missing one fails.
pub fn rerun_on_postgres_s3(this_test: &str) {
    rerun_on_postgres_s3_only(this_test, &[]);
}

/// [`rerun_on_postgres_s3`] for the tests named in `tests` only (exact names; all other
/// tests when empty): for files whose other tests inspect the data directory's files.
pub fn rerun_on_postgres_s3_only(this_test: &str, tests: &[&str]) {
    if Backends::from_env() != Backends::Embedded {
        return;
    }
    let missing: Vec<&str> = [
        ("PostgreSQL", postgres::bin_dir().is_some()),
        ("weed (SeaweedFS)", seaweedfs::weed_binary().is_some()),
    ]
    .into_iter()
    .filter(|(_, ok)| !ok)
    .map(|(what, _)| what)
    .collect();
    if !missing.is_empty() {
        let what = missing.join(" and ");
        assert!(
            !in_ci(),
            "{this_test}: {what} not installed; CI must install it (.ci/install-clients)"
        );
        loud(&format!(
            "\n************************************************************\n\
             SKIPPED {this_test}: {what} not installed\n\
             ************************************************************"
        ));
        return;
    }
    let exe = std::env::current_exe().expect("the test binary's path");
    let out = std::process::Command::new(&exe)
        .env(BACKENDS_ENV, "postgres-s3")
        .args(["--skip", this_test])
        .args(tests)
        .args(if tests.is_empty() {
            None
        } else {
            Some("--exact")
        })
        .output()
        .unwrap_or_else(|e| panic!("running {} again: {e}", exe.display()));
    let stdout = String::from_utf8_lossy(&out.stdout);
    let summary = stdout
        .lines()
        .filter(|l| l.starts_with("test result:"))
        .collect::<Vec<_>>()
        .join("\n");
    if !out.status.success() {
        let failures = stdout
            .find("\nfailures:")
            .map(|i| &stdout[i..])
            .unwrap_or(&stdout);
        let mut cut = failures.len().saturating_sub(30_000);
        while !failures.is_char_boundary(cut) {
            cut += 1;
        }
        panic!(
            "the suite on PostgreSQL + S3 ({BACKENDS_ENV}=postgres-s3 {} --skip {this_test}) \
             failed ({}):\n{}\n{}",
            exe.display(),
            out.status,
            &failures[cut..],
            String::from_utf8_lossy(&out.stderr)
                .lines()
                .rev()
                .take(40)
                .collect::<Vec<_>>()
                .into_iter()
                .rev()
                .collect::<Vec<_>>()
                .join("\n")
        );
    }
    println!("on PostgreSQL + S3: {summary}");
}

/// Spawns `cmd` from one thread that lives as long as the test process, and returns the
/// child. Fixtures that set `PR_SET_PDEATHSIG` (so a child dies with a test binary that
/// is itself killed) need this when the child is shared: the signal fires when the
/// *thread* that spawned the child exits, which for a plain `Command::spawn` in a test is
/// the end of that one test, not of the process.
///
/// Errors: those of [`std::process::Command::spawn`].
pub fn spawn_for_process(cmd: std::process::Command) -> std::io::Result<std::process::Child> {
    use std::sync::mpsc;
    type Request = (
        std::process::Command,
        mpsc::Sender<std::io::Result<std::process::Child>>,
    );
    static SPAWNER: std::sync::OnceLock<std::sync::Mutex<mpsc::Sender<Request>>> =
        std::sync::OnceLock::new();
    let spawner = SPAWNER.get_or_init(|| {
        let (tx, rx) = mpsc::channel::<Request>();
        std::thread::Builder::new()
            .name("berth-test-spawner".into())
            .spawn(move || {
                for (mut cmd, reply) in rx {
                    let _ = reply.send(cmd.spawn());
                }
            })
            .expect("starting the spawner thread");
        std::sync::Mutex::new(tx)
    });
    let (tx, rx) = mpsc::channel();
    spawner
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .send((cmd, tx))
        .map_err(|_| std::io::Error::other("the spawner thread is gone"))?;
    rx.recv()
        .map_err(|_| std::io::Error::other("the spawner thread is gone"))?
}
