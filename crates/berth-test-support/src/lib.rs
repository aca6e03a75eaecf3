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
use berth_meta::{Metadata, SqliteMeta};
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
    /// The access key of user `admin`, whose inline policy is `AdministratorAccess`.
    pub admin: Key,
    app: Router,
    // Declared last: removed after the services above are dropped.
    dir: tempfile::TempDir,
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
        let store: Arc<dyn BlobStore> = match self.store {
            Some(s) => s,
            None => Arc::new(FsStore::open(dir.path()).expect("opening the blob store")),
        };
        let meta: Arc<dyn Metadata> = Arc::new(
            SqliteMeta::open(&dir.path().join("metadata.db"))
                .await
                .expect("opening the metadata database"),
        );
        let registry = Registry::new(store, meta.clone(), self.registry);
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
