//! `berth serve` settings: flags, then environment variables, then an optional TOML
//! file, then defaults — the first that sets a value wins.
//!
//! Each setting is declared once, as a field of [`Settings`]: its clap attribute gives
//! the flag, the environment variable, the default and the `--help` text; the field's
//! name is its TOML key (serde reads the file into the same struct). We use clap and
//! serde on one struct rather than a layered-config crate such as figment because clap
//! already implements three of the four layers (flag > environment > default) and the
//! `--help` text, and keeps the existing environment names (`BERTH_LOG` for
//! `log_level`), which a prefix-based environment provider would not; the TOML layer
//! is slotted in by asking clap where each value came from ([`ArgMatches::value_source`]):
//! a value clap took from its default is replaced by the file's. Adding a setting is one
//! field here plus its row in the README's configuration table (a test compares the two).

use anyhow::Context;
use clap::parser::ValueSource;
use clap::{ArgMatches, Args, FromArgMatches, ValueEnum};
use serde::{Deserialize, Serialize};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

/// Log output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line.
    Json,
}

/// A secret setting (e.g. `storage_s3_secret_access_key`): serialized as itself (the
/// config file layering needs it) but never shown by `Debug`, so it cannot reach a log.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Secret(pub String);

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(***)")
    }
}

/// The metadata backend a `metadata` URL names ([`Settings::metadata_url`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MetadataUrl {
    /// `sqlite://<path>`: the embedded SQLite database file at the path (created when
    /// missing). One process at a time: `berth serve` locks it.
    Sqlite(PathBuf),
    /// `postgres://…` or `postgresql://…`: a PostgreSQL database, the URL as given
    /// (handed to `berth_meta::PgMeta::open`). Many nodes may share it.
    Postgres(String),
}

impl MetadataUrl {
    /// Parses `sqlite://<path>` (so `sqlite:///abs/path`, or `sqlite://rel/path`) or
    /// `postgres://…` / `postgresql://…`. Errors name the accepted forms.
    pub fn parse(url: &str) -> anyhow::Result<MetadataUrl> {
        if let Some(path) = url.strip_prefix("sqlite://") {
            anyhow::ensure!(
                !path.is_empty() && !path.ends_with('/'),
                "metadata {url:?}: a sqlite:// URL names the database file, \
                 e.g. sqlite:///var/lib/berth/metadata.db"
            );
            return Ok(MetadataUrl::Sqlite(PathBuf::from(path)));
        }
        if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            let rest = url.split_once("://").map(|(_, r)| r).unwrap_or_default();
            anyhow::ensure!(
                !rest.is_empty(),
                "metadata {url:?}: a postgres:// URL names a server, \
                 e.g. postgres://berth:secret@db.example.com:5432/berth"
            );
            return Ok(MetadataUrl::Postgres(url.to_string()));
        }
        anyhow::bail!(
            "metadata {:?}: expected sqlite:///path/metadata.db or postgres://user:password@host:port/database",
            redact_url(url)
        )
    }

    /// The engine's name, as [`berth_meta::Metadata::engine`] says it.
    pub fn engine(&self) -> &'static str {
        match self {
            MetadataUrl::Sqlite(_) => "sqlite",
            MetadataUrl::Postgres(_) => "postgres",
        }
    }

    /// The URL with any password replaced by `***`, for logs and errors.
    pub fn redacted(&self) -> String {
        match self {
            MetadataUrl::Sqlite(p) => format!("sqlite://{}", p.display()),
            MetadataUrl::Postgres(u) => redact_url(u),
        }
    }
}

/// `scheme://user:password@host…` with the password replaced by `***`.
fn redact_url(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_string();
    };
    let authority_end = rest.find('/').unwrap_or(rest.len());
    match rest[..authority_end].rsplit_once('@') {
        Some((userinfo, _)) if userinfo.contains(':') => {
            let user = userinfo.split_once(':').map(|(u, _)| u).unwrap_or(userinfo);
            format!("{scheme}://{user}:***@{}", &rest[userinfo.len() + 1..])
        }
        _ => url.to_string(),
    }
}

/// The blob backend a `storage` URL names ([`Settings::storage_url`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StorageUrl {
    /// `file://<path>`: blobs and upload sessions in a local directory (`blobs/`,
    /// `uploads/`). One process at a time: `berth serve` locks it.
    File(PathBuf),
    /// `s3://<bucket>[/<prefix>]`: an S3-compatible bucket, object keys under `prefix`
    /// (no leading or trailing `/`; empty for the bucket's root). Many nodes may share it.
    S3 {
        /// The bucket name (S3 naming rules: 3–63 lowercase letters, digits, `.`, `-`).
        bucket: String,
        /// The key prefix, without leading or trailing `/`.
        prefix: String,
    },
}

impl StorageUrl {
    /// Parses `file://<path>` or `s3://bucket[/prefix]`. Errors name the accepted forms.
    pub fn parse(url: &str) -> anyhow::Result<StorageUrl> {
        if let Some(path) = url.strip_prefix("file://") {
            anyhow::ensure!(
                !path.is_empty(),
                "storage {url:?}: a file:// URL names a directory, e.g. file:///var/lib/berth"
            );
            return Ok(StorageUrl::File(PathBuf::from(path)));
        }
        if let Some(rest) = url.strip_prefix("s3://") {
            let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
            // https://docs.aws.amazon.com/AmazonS3/latest/userguide/bucketnamingrules.html
            anyhow::ensure!(
                (3..=63).contains(&bucket.len())
                    && bucket.bytes().all(|b| b.is_ascii_lowercase()
                        || b.is_ascii_digit()
                        || b == b'.'
                        || b == b'-')
                    && !bucket.starts_with(['.', '-'])
                    && !bucket.ends_with(['.', '-']),
                "storage {url:?}: bucket {bucket:?} is not a valid S3 bucket name \
                 (3 to 63 lowercase letters, digits, '.' and '-')"
            );
            let prefix = prefix.trim_matches('/');
            anyhow::ensure!(
                prefix.is_empty()
                    || !prefix
                        .split('/')
                        .any(|p| p.is_empty() || p == "." || p == ".."),
                "storage {url:?}: the key prefix {prefix:?} has an empty, `.` or `..` segment"
            );
            return Ok(StorageUrl::S3 {
                bucket: bucket.to_string(),
                prefix: prefix.to_string(),
            });
        }
        anyhow::bail!("storage {url:?}: expected file:///path or s3://bucket/prefix")
    }
}

/// Everything an S3 blob backend needs, resolved from the settings and the standard AWS
/// environment variables ([`Settings::s3`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct S3Settings {
    /// The bucket.
    pub bucket: String,
    /// The key prefix (no leading or trailing `/`; may be empty).
    pub prefix: String,
    /// The endpoint URL, if not AWS's.
    pub endpoint: Option<String>,
    /// The signing region.
    pub region: String,
    /// Static credentials, if configured (from the config file, else `AWS_ACCESS_KEY_ID`,
    /// `AWS_SECRET_ACCESS_KEY` and `AWS_SESSION_TOKEN`); `None` leaves the choice to the
    /// backend's default credential chain.
    pub credentials: Option<S3Credentials>,
    /// `storage_s3_presign_secs`: redirect blob GETs to presigned URLs valid this long.
    pub presign_downloads: Option<std::time::Duration>,
    /// `storage_s3_no_conditional_put`: the store lacks `If-None-Match: *` on PUT.
    pub no_conditional_put: bool,
}

/// Static S3 credentials.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct S3Credentials {
    /// The access key ID.
    pub access_key_id: String,
    /// The secret access key.
    pub secret_access_key: Secret,
    /// A session token (temporary credentials), from `AWS_SESSION_TOKEN`.
    pub session_token: Option<Secret>,
}

/// The settings of `berth serve`, each declared once: a flag, an environment variable
/// and a key of the same name (snake_case) in the `--config` TOML file.
#[derive(Debug, Clone, Args, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Settings {
    /// Address to listen on for both the OCI API (/v2/) and operations endpoints
    /// (/healthz, /readyz, /metrics).
    #[arg(
        long,
        env = "BERTH_LISTEN",
        value_name = "ADDR",
        default_value = "127.0.0.1:5000"
    )]
    pub listen: SocketAddr,

    /// Directory holding everything Berth stores: blobs and uploads (filesystem) and
    /// metadata (SQLite, metadata.db). Created if missing.
    #[arg(
        long,
        env = "BERTH_DATA_DIR",
        value_name = "DIR",
        default_value = "./berth-data"
    )]
    pub data_dir: PathBuf,

    /// Where metadata and the job queue live: `sqlite:///path/metadata.db` (the embedded
    /// default, one process), or `postgres://user:password@host:port/database` (shared
    /// by many nodes; `?max_connections=N` sizes the pool).
    /// [default: sqlite://<data-dir>/metadata.db]
    #[arg(long, env = "BERTH_METADATA", value_name = "URL")]
    pub metadata: Option<String>,

    /// Where blobs and upload sessions live: `file:///path` (a local directory, one
    /// process), or `s3://bucket/prefix` (an S3-compatible object store shared by many
    /// nodes; see the `storage_s3_*` settings). [default: file://<data-dir>]
    #[arg(long, env = "BERTH_STORAGE", value_name = "URL")]
    pub storage: Option<String>,

    /// The S3 API endpoint for `s3://` storage, e.g. `http://127.0.0.1:8333` for a
    /// SeaweedFS or MinIO server (path-style requests).
    /// [default: AWS's regional endpoint]
    #[arg(long, env = "BERTH_STORAGE_S3_ENDPOINT", value_name = "URL")]
    pub storage_s3_endpoint: Option<String>,

    /// The region of the `s3://` bucket (signs its requests).
    /// [default: AWS_REGION, else AWS_DEFAULT_REGION, else us-east-1]
    #[arg(long, env = "BERTH_STORAGE_S3_REGION", value_name = "REGION")]
    pub storage_s3_region: Option<String>,

    /// Access key ID for `s3://` storage (config file only; else `AWS_ACCESS_KEY_ID`).
    #[arg(skip)]
    #[serde(default)]
    pub storage_s3_access_key_id: Option<String>,

    /// Secret access key for `s3://` storage (config file only, never a flag, so it does
    /// not show in `ps`; else `AWS_SECRET_ACCESS_KEY`). Never logged.
    #[arg(skip)]
    #[serde(default)]
    pub storage_s3_secret_access_key: Option<Secret>,

    /// Answer blob GETs of `s3://` storage with `307 Temporary Redirect` to a presigned
    /// S3 URL valid this many seconds (as ECR and distribution do), instead of streaming
    /// the bytes through Berth; clients must then reach the S3 endpoint themselves.
    /// [default: stream through Berth]
    #[arg(long, env = "BERTH_STORAGE_S3_PRESIGN_SECS", value_name = "SECS")]
    pub storage_s3_presign_secs: Option<u64>,

    /// For S3-compatible stores without conditional creates (`If-None-Match: *` on PUT):
    /// two racing appends at one upload offset may then both be acknowledged (a blob
    /// still never becomes visible under a wrong digest). Config file only; see
    /// docs/storage.md. [default: false]
    #[arg(skip)]
    #[serde(default)]
    pub storage_s3_no_conditional_put: bool,

    /// Optional TOML file with any of these settings; flags and environment override it.
    #[arg(long, env = "BERTH_CONFIG", value_name = "FILE")]
    #[serde(skip)]
    pub config: Option<PathBuf>,

    /// Log format.
    #[arg(
        long,
        env = "BERTH_LOG_FORMAT",
        value_name = "FORMAT",
        default_value = "text"
    )]
    pub log_format: LogFormat,

    /// Log filter in tracing's EnvFilter syntax, e.g. `info` or `berth=debug,info`.
    #[arg(long, env = "BERTH_LOG", value_name = "FILTER", default_value = "info")]
    pub log_level: String,

    /// Seconds an upload session may stay idle before it is cancelled and its data
    /// removed (at least 1).
    #[arg(
        long,
        env = "BERTH_UPLOAD_EXPIRY_SECS",
        value_name = "SECS",
        default_value = "3600"
    )]
    pub upload_expiry_secs: u64,

    /// Create repositories on their first push (`true`), or refuse pushes to repositories
    /// that do not exist (`false`).
    #[arg(long, env = "BERTH_CREATE_ON_PUSH", value_name = "BOOL", default_value = "true",
          action = clap::ArgAction::Set)]
    pub create_on_push: bool,

    /// The AWS-style region this registry serves: it appears in repository ARNs, and
    /// authorization tokens and SigV4 credential scopes must name it.
    #[arg(
        long,
        env = "BERTH_REGION",
        value_name = "REGION",
        default_value = "us-east-1"
    )]
    pub region: String,

    /// The 12-digit ID of this registry's own account (its registryId), used when the
    /// data directory is first initialised. [default: random]
    #[arg(long, env = "BERTH_ACCOUNT_ID", value_name = "ID")]
    pub account_id: Option<String>,

    /// DEVELOPMENT ONLY: let unauthenticated callers do everything. Logged as a warning.
    #[arg(long, env = "BERTH_ALLOW_ANONYMOUS", value_name = "BOOL", default_value = "false",
          num_args = 0..=1, default_missing_value = "true", action = clap::ArgAction::Set)]
    pub allow_anonymous: bool,

    /// File holding the 32-byte master key that encrypts stored secrets and signs
    /// tokens; created (mode 0600) when missing. Ignored when BERTH_MASTER_KEY is set.
    /// [default: <data-dir>/master.key]
    #[arg(long, env = "BERTH_MASTER_KEY_FILE", value_name = "FILE")]
    pub master_key_file: Option<PathBuf>,

    /// Lifetime of authorization tokens in seconds, 1 to 43200 (ECR's 12 hours).
    #[arg(
        long,
        env = "BERTH_TOKEN_LIFETIME_SECS",
        value_name = "SECS",
        default_value = "43200"
    )]
    pub token_lifetime_secs: u64,

    /// Days to keep audit records.
    #[arg(
        long,
        env = "BERTH_AUDIT_RETENTION_DAYS",
        value_name = "DAYS",
        default_value = "90"
    )]
    pub audit_retention_days: u64,

    /// The name clients use for this registry, `host[:port]`, optionally with a scheme
    /// (`https://registry.example.com`, `http://…`; without one, `http://`): the ECR API's
    /// `repositoryUri` is `<host[:port]>/<repository>`, and `proxyEndpoint` (and the
    /// layer API's download URLs) are `<scheme>://<host[:port]>`. E.g.
    /// `111111111111.dkr.ecr.us-east-1.amazonaws.com` for a local ECR.
    /// [default: the Host each request was sent to]
    #[arg(long, env = "BERTH_PUBLIC_HOST", value_name = "HOST")]
    pub public_host: Option<String>,

    /// Delay before the first retry of a failed webhook delivery, in milliseconds; it
    /// doubles per attempt (with jitter) up to `event_retry_max_secs`, until the target's
    /// retry policy (default 185 retries or 24 hours) runs out.
    #[arg(
        long,
        env = "BERTH_EVENT_RETRY_INITIAL_MS",
        value_name = "MS",
        default_value = "1000"
    )]
    pub event_retry_initial_ms: u64,

    /// The longest delay between two attempts of a webhook delivery, in seconds.
    #[arg(
        long,
        env = "BERTH_EVENT_RETRY_MAX_SECS",
        value_name = "SECS",
        default_value = "300"
    )]
    pub event_retry_max_secs: u64,

    /// Seconds one webhook delivery may take, connection included (EventBridge API
    /// destinations allow 5).
    #[arg(
        long,
        env = "BERTH_EVENT_DELIVERY_TIMEOUT_SECS",
        value_name = "SECS",
        default_value = "5"
    )]
    pub event_delivery_timeout_secs: u64,

    /// Webhook deliveries this process makes at once.
    #[arg(
        long,
        env = "BERTH_EVENT_DELIVERY_CONCURRENCY",
        value_name = "N",
        default_value = "32"
    )]
    pub event_delivery_concurrency: usize,

    /// Seconds a job's lease lasts without a heartbeat: the jobs of a process that died
    /// run again this long after its last heartbeat (at least 1).
    #[arg(
        long,
        env = "BERTH_JOB_LEASE_SECS",
        value_name = "SECS",
        default_value = "30"
    )]
    pub job_lease_secs: u64,

    /// Run background jobs (event fan-out and delivery, housekeeping) in this process.
    /// `false` makes an API-only process: the jobs its requests cause are still enqueued
    /// in the metadata database in the same transactions and wait there until a process
    /// with `true` runs them (on the embedded SQLite database: this one, restarted).
    #[arg(long, env = "BERTH_RUN_JOBS", value_name = "BOOL", default_value = "true",
          num_args = 0..=1, default_missing_value = "true", action = clap::ArgAction::Set)]
    pub run_jobs: bool,

    /// Days to keep finished background jobs (succeeded, dead, cancelled; the webhook
    /// delivery log is the delivery jobs) before housekeeping deletes them.
    #[arg(
        long,
        env = "BERTH_JOB_RETENTION_DAYS",
        value_name = "DAYS",
        default_value = "7"
    )]
    pub job_retention_days: u64,

    /// Run online garbage collection (`housekeeping.gc`) every `gc_period_secs`
    /// (`false`: only `berth admin gc` collects).
    #[arg(long, env = "BERTH_GC_ENABLED", value_name = "BOOL", default_value = "true",
          num_args = 0..=1, default_missing_value = "true", action = clap::ArgAction::Set)]
    pub gc_enabled: bool,

    /// Seconds between two scheduled garbage collections (cluster-wide; at least 1).
    #[arg(
        long,
        env = "BERTH_GC_PERIOD_SECS",
        value_name = "SECS",
        default_value = "86400"
    )]
    pub gc_period_secs: u64,

    /// Seconds content must stay unreferenced before garbage collection sweeps it: a
    /// blob uploaded (or a manifest referencing it deleted) more recently stays. Keep
    /// it longer than any push takes from its first layer upload to its manifest.
    #[arg(
        long,
        env = "BERTH_GC_GRACE_SECS",
        value_name = "SECS",
        default_value = "3600"
    )]
    pub gc_grace_secs: u64,
    /// Seconds between two lifecycle policy evaluations of every repository that has a
    /// policy (ECR acts "within 24 hours"): each period one `lifecycle.schedule` job
    /// enqueues a `lifecycle.evaluate` job per repository, whichever node runs it.
    #[arg(
        long,
        env = "BERTH_LIFECYCLE_INTERVAL_SECS",
        value_name = "SECS",
        default_value = "3600"
    )]
    pub lifecycle_interval_secs: u64,

    /// Repository prefixes lifecycle policies never touch, comma-separated (e.g. the
    /// pull-through cache prefixes `docker-hub,quay`): a prefix covers the repository of
    /// that name and every repository under `prefix/`. Their policies are stored but not
    /// applied, and their previews list no images. [default: none]
    #[arg(
        long,
        env = "BERTH_LIFECYCLE_EXCLUDE_PREFIXES",
        value_name = "PREFIXES",
        value_delimiter = ','
    )]
    #[serde(default)]
    pub lifecycle_exclude_prefixes: Vec<String>,

    /// Refuse OCI pulls (manifest GETs) of images whose latest completed scan has a
    /// finding at or above this severity (`UNDEFINED` < `INFORMATIONAL` < `LOW` <
    /// `MEDIUM` < `HIGH` < `CRITICAL`; findings of advisories without a rating are
    /// `UNDEFINED`, so only `UNDEFINED` blocks every finding), with `403 DENIED` naming
    /// the findings. Images not scanned yet are served. [default: off]
    #[arg(long, env = "BERTH_SCAN_BLOCK_PULLS_AT", value_name = "SEVERITY")]
    pub scan_block_pulls_at: Option<String>,

    /// Findings (CVE or advisory IDs, comma-separated) that never block a pull: accepted
    /// risks. [default: none]
    #[arg(
        long,
        env = "BERTH_SCAN_BLOCK_PULLS_IGNORE",
        value_name = "IDS",
        value_delimiter = ','
    )]
    #[serde(default)]
    pub scan_block_pulls_ignore: Vec<String>,

    /// Repository prefixes `scan_block_pulls_at` applies to, comma-separated; `p` covers
    /// `p` and `p/…`. [default: every repository]
    #[arg(
        long,
        env = "BERTH_SCAN_BLOCK_PULLS_REPOSITORIES",
        value_name = "PREFIXES",
        value_delimiter = ','
    )]
    #[serde(default)]
    pub scan_block_pulls_repositories: Vec<String>,

    /// Seconds a replication job keeps retrying a destination that is down (connection
    /// refused, timeouts, 408/429/5xx) after the push, before its status is FAILED with
    /// the last error.
    #[arg(
        long,
        env = "BERTH_REPLICATION_DEADLINE_SECS",
        value_name = "SECS",
        default_value = "3600"
    )]
    pub replication_deadline_secs: u64,

    /// Seconds one request to a replication destination may take (connecting, a HEAD,
    /// a manifest PUT); a blob upload gets one more second per MiB.
    #[arg(
        long,
        env = "BERTH_REPLICATION_REQUEST_TIMEOUT_SECS",
        value_name = "SECS",
        default_value = "30"
    )]
    pub replication_request_timeout_secs: u64,

    /// Replication destinations declared in the config file (`[[replication.peers]]`:
    /// region, registry ID, endpoint, access key; no flag).
    #[arg(skip)]
    #[serde(default)]
    pub replication: ReplicationDeclarations,

    /// Event rules and their webhook targets declared in the config file (`[[events.rules]]`;
    /// no flag).
    #[arg(skip)]
    #[serde(default)]
    pub events: crate::events::EventDeclarations,

    /// Identities declared in the config file (`[iam]` table; no flag).
    #[arg(skip)]
    #[serde(default)]
    pub iam: IamDeclarations,

    /// OIDC identity providers trusted for `sts:AssumeRoleWithWebIdentity`
    /// (`[[federation.oidc_providers]]` in the config file; no flag).
    #[arg(skip)]
    #[serde(default)]
    pub federation: FederationDeclarations,
}

/// The config file's `[federation]` table (issue 13: CI without static keys).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FederationDeclarations {
    /// `[[federation.oidc_providers]]`: the OIDC issuers whose tokens roles may trust.
    #[serde(default)]
    pub oidc_providers: Vec<DeclaredOidcProvider>,
}

/// One trusted OIDC issuer (IAM's "OIDC identity provider").
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeclaredOidcProvider {
    /// The issuer URL exactly as its tokens carry it in `iss`, e.g.
    /// `https://token.actions.githubusercontent.com`. Trust policies name the provider as
    /// `arn:aws:iam::<account>:oidc-provider/<issuer without https://>`.
    pub issuer: String,
    /// The accepted audiences (`aud`, IAM's client IDs), e.g. `["sts.amazonaws.com"]`.
    pub audiences: Vec<String>,
    /// The URL of the issuer's JSON Web Key Set (`jwks_uri` of its discovery document).
    pub jwks_url: Option<String>,
    /// A file holding the key set instead (air-gapped deployments, tests).
    pub jwks_file: Option<PathBuf>,
}

/// The config file's `[replication]` table.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReplicationDeclarations {
    /// `[[replication.peers]]`: where each destination registry (region, registry ID)
    /// lives and the access key this deployment uses there. Secrets stay in the file:
    /// they are never stored in the database nor logged (`Peer`'s `Debug` redacts).
    #[serde(default)]
    pub peers: Vec<berth_replication::Peer>,
}

/// Identities declared in the config file's `[iam]` table, created on start when
/// missing and their policies (re)applied: idempotent across restarts.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IamDeclarations {
    /// `[[iam.accounts]]`: other accounts (12-digit `id`, optional `name`).
    #[serde(default)]
    pub accounts: Vec<DeclaredAccount>,
    /// `[[iam.users]]`.
    #[serde(default)]
    pub users: Vec<DeclaredPrincipal>,
    /// `[[iam.roles]]`.
    #[serde(default)]
    pub roles: Vec<DeclaredPrincipal>,
    /// `[[iam.services]]`: service principals (`name` is the service).
    #[serde(default)]
    pub services: Vec<DeclaredPrincipal>,
    /// `[iam.repository_policies]`: repository name → policy JSON text.
    #[serde(default)]
    pub repository_policies: std::collections::BTreeMap<String, String>,
    /// The registry policy JSON text.
    pub registry_policy: Option<String>,
}

/// A declared account.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeclaredAccount {
    /// 12-digit account ID.
    pub id: String,
    /// Display name.
    pub name: Option<String>,
}

/// A declared user, role or service principal.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeclaredPrincipal {
    /// Account (default: this registry's account).
    pub account: Option<String>,
    /// User or role name, or the service name.
    pub name: String,
    /// Inline identity policies: policy name → JSON text.
    #[serde(default)]
    pub policies: std::collections::BTreeMap<String, String>,
    /// Principal tags (`aws:PrincipalTag/<key>`).
    #[serde(default)]
    pub tags: std::collections::BTreeMap<String, String>,
    /// Roles only: the trust policy (`AssumeRolePolicyDocument` JSON text) naming who may
    /// assume the role (`sts:AssumeRole`, `sts:AssumeRoleWithWebIdentity`).
    pub trust_policy: Option<String>,
    /// Roles only: the longest session, 3600–43200 seconds (IAM's `MaxSessionDuration`;
    /// default 3600).
    pub max_session_duration: Option<u64>,
}

impl Settings {
    /// The `clap` command that parses these settings alone (as `berth serve` does), for
    /// `berth admin` and tests.
    pub fn command() -> clap::Command {
        Settings::augment_args(clap::Command::new("serve").no_binary_name(true))
    }

    /// The settings from `berth serve`'s parsed arguments (flags, environment and
    /// defaults, as clap found them) with the `--config` TOML file layered between the
    /// environment and the defaults.
    ///
    /// Errors: the file cannot be read, is not TOML, has an unknown key or a bad value
    /// (the message names the key), or a setting is out of range.
    pub fn from_matches(m: &ArgMatches) -> anyhow::Result<Settings> {
        let args = Settings::from_arg_matches(m)?;
        let Some(path) = args.config.clone() else {
            return args.validated();
        };
        let text = std::fs::read_to_string(&path)
            .with_context(|| format!("reading config file {}", path.display()))?;
        let file: toml::Table = toml::from_str(&text)
            .with_context(|| format!("parsing config file {}", path.display()))?;
        anyhow::ensure!(
            !file.contains_key("config"),
            "config file {}: unknown field `config` (a config file cannot name another)",
            path.display()
        );
        let serde_json::Value::Object(base) = serde_json::to_value(&args)? else {
            anyhow::bail!("settings do not serialize to a map");
        };
        // A value given as a flag or an environment variable beats the file's; one clap
        // took from its default (or that has no default) yields to it.
        let given = |key: &str| {
            m.ids().any(|id| id.as_str() == key)
                && matches!(
                    m.value_source(key),
                    Some(ValueSource::CommandLine | ValueSource::EnvVariable)
                )
        };
        let layer = |keys: &mut dyn Iterator<Item = (&String, &toml::Value)>| {
            let mut merged = base.clone();
            for (k, v) in keys {
                if !given(k) {
                    merged.insert(k.clone(), serde_json::to_value(v)?);
                }
            }
            Ok::<_, anyhow::Error>(serde_json::from_value::<Settings>(merged.into()))
        };
        let mut settings = match layer(&mut file.iter())? {
            Ok(s) => s,
            Err(e) => {
                // Name the key at fault: serde's message alone does not.
                for kv in &file {
                    if let Err(e) = layer(&mut std::iter::once(kv))? {
                        anyhow::bail!("config file {}: key `{}`: {e}", path.display(), kv.0);
                    }
                }
                anyhow::bail!("config file {}: {e}", path.display());
            }
        };
        settings.config = Some(path);
        settings.validated()
    }

    /// Checks what types alone do not.
    fn validated(self) -> anyhow::Result<Settings> {
        anyhow::ensure!(
            self.upload_expiry_secs > 0,
            "upload_expiry_secs must be at least 1"
        );
        anyhow::ensure!(
            (1..=43_200).contains(&self.token_lifetime_secs),
            "token_lifetime_secs must be between 1 and 43200 (12 hours, ECR's lifetime)"
        );
        let r = &self.region;
        anyhow::ensure!(
            !r.is_empty()
                && r.len() <= 32
                && r.bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-'),
            "region {r:?} must be lowercase letters, digits and '-', like us-east-1"
        );
        anyhow::ensure!(
            self.event_delivery_timeout_secs > 0,
            "event_delivery_timeout_secs must be at least 1"
        );
        anyhow::ensure!(
            self.event_delivery_concurrency > 0,
            "event_delivery_concurrency must be at least 1"
        );
        anyhow::ensure!(self.job_lease_secs > 0, "job_lease_secs must be at least 1");
        for p in &self.federation.oidc_providers {
            anyhow::ensure!(
                p.jwks_url.is_some() != p.jwks_file.is_some(),
                "[[federation.oidc_providers]] {}: set exactly one of jwks_url and jwks_file",
                p.issuer
            );
            anyhow::ensure!(
                !p.audiences.is_empty(),
                "[[federation.oidc_providers]] {}: audiences must name at least one audience",
                p.issuer
            );
        }
        anyhow::ensure!(self.gc_period_secs > 0, "gc_period_secs must be at least 1");
        anyhow::ensure!(
            self.lifecycle_interval_secs > 0,
            "lifecycle_interval_secs must be at least 1"
        );
        for p in &self.lifecycle_exclude_prefixes {
            let name = p.trim_end_matches('/');
            berth_core::RepositoryName::parse(name).map_err(|e| {
                anyhow::anyhow!("lifecycle_exclude_prefixes: {p:?} is not a repository prefix: {e}")
            })?;
        }
        self.pull_block()?;
        let mut peers = std::collections::BTreeSet::new();
        for p in &self.replication.peers {
            let uri: axum::http::Uri = p.endpoint.parse().map_err(|e| {
                anyhow::anyhow!(
                    "replication.peers: endpoint {:?} of {} in {} is not a URL: {e}",
                    p.endpoint,
                    p.registry_id,
                    p.region
                )
            })?;
            anyhow::ensure!(
                matches!(uri.scheme_str(), Some("http") | Some("https"))
                    && uri.authority().is_some(),
                "replication.peers: endpoint {:?} of {} in {} must be an http:// or https:// URL \
                 with a host, e.g. https://registry.eu.example.com",
                p.endpoint,
                p.registry_id,
                p.region
            );
            anyhow::ensure!(
                peers.insert((p.region.as_str(), p.registry_id.as_str())),
                "replication.peers: registry {} in {} is declared twice",
                p.registry_id,
                p.region
            );
        }
        anyhow::ensure!(
            self.scan_block_pulls_at.is_some()
                || (self.scan_block_pulls_ignore.is_empty()
                    && self.scan_block_pulls_repositories.is_empty()),
            "scan_block_pulls_ignore and scan_block_pulls_repositories need scan_block_pulls_at"
        );
        if let Some(a) = &self.account_id {
            berth_iam::AccountId::parse(a).map_err(anyhow::Error::msg)?;
        }
        self.metadata_url()?;
        if let StorageUrl::S3 { .. } = self.storage_url()? {
            self.s3()?;
        } else {
            anyhow::ensure!(
                self.storage_s3_endpoint.is_none()
                    && self.storage_s3_region.is_none()
                    && self.storage_s3_access_key_id.is_none()
                    && self.storage_s3_secret_access_key.is_none()
                    && self.storage_s3_presign_secs.is_none()
                    && !self.storage_s3_no_conditional_put,
                "the storage_s3_* settings apply to s3:// storage only (storage is {:?})",
                self.storage.as_deref().unwrap_or("the data directory")
            );
        }
        if let Some(h) = &self.public_host {
            berth_ecr_api::PublicHost::parse(h).map_err(|e| anyhow::anyhow!("public_host: {e}"))?;
        }
        Ok(self)
    }

    /// The pull block of `scan_block_pulls_*` (issue 11's remediation), `None` when
    /// `scan_block_pulls_at` is unset. Errors: an unknown severity.
    pub fn pull_block(&self) -> anyhow::Result<Option<berth_registry::scanning::PullBlock>> {
        let Some(at) = &self.scan_block_pulls_at else {
            return Ok(None);
        };
        let severity: berth_registry::Severity = at.to_ascii_uppercase().parse().map_err(|_| {
            anyhow::anyhow!(
                "scan_block_pulls_at: {at:?} is not a severity (UNDEFINED, INFORMATIONAL, LOW, MEDIUM, HIGH, CRITICAL)"
            )
        })?;
        Ok(Some(berth_registry::scanning::PullBlock {
            severity,
            ignore: self.scan_block_pulls_ignore.iter().cloned().collect(),
            repository_prefixes: self.scan_block_pulls_repositories.clone(),
        }))
    }

    /// How long an upload session may stay idle.
    pub fn upload_expiry(&self) -> Duration {
        Duration::from_secs(self.upload_expiry_secs)
    }

    /// How long audit records are kept.
    pub fn audit_retention(&self) -> Duration {
        Duration::from_secs(86_400 * self.audit_retention_days)
    }

    /// How long content must stay unreferenced before garbage collection sweeps it.
    pub fn gc_grace(&self) -> Duration {
        Duration::from_secs(self.gc_grace_secs)
    }

    /// Time between scheduled garbage collections.
    pub fn gc_period(&self) -> Duration {
        Duration::from_secs(self.gc_period_secs)
    }

    /// How long finished jobs are kept.
    pub fn job_retention(&self) -> Duration {
        Duration::from_secs(86_400 * self.job_retention_days)
    }

    /// How often lifecycle policies are evaluated.
    pub fn lifecycle_interval(&self) -> Duration {
        Duration::from_secs(self.lifecycle_interval_secs)
    }

    /// Lifetime of authorization tokens.
    pub fn token_lifetime(&self) -> Duration {
        Duration::from_secs(self.token_lifetime_secs)
    }

    /// The master key file (default `<data-dir>/master.key`).
    pub fn master_key_file(&self) -> PathBuf {
        self.master_key_file
            .clone()
            .unwrap_or_else(|| self.data_dir.join("master.key"))
    }

    /// The metadata backend: `metadata`, or the embedded SQLite file
    /// `<data-dir>/metadata.db`. Errors: the URL is neither `sqlite://` nor `postgres://`.
    pub fn metadata_url(&self) -> anyhow::Result<MetadataUrl> {
        match &self.metadata {
            Some(u) => MetadataUrl::parse(u),
            None => Ok(MetadataUrl::Sqlite(self.data_dir.join("metadata.db"))),
        }
    }

    /// The blob backend: `storage`, or the data directory. Errors: the URL is neither
    /// `file://` nor `s3://`, or names a bad bucket.
    pub fn storage_url(&self) -> anyhow::Result<StorageUrl> {
        match &self.storage {
            Some(u) => StorageUrl::parse(u),
            None => Ok(StorageUrl::File(self.data_dir.clone())),
        }
    }

    /// The S3 settings of `s3://` storage, with the region and credentials taken from
    /// the standard AWS environment variables when the settings do not give them.
    /// Errors: storage is not `s3://`; only one of the access key ID and the secret is
    /// given; the endpoint is not an `http://` or `https://` URL.
    pub fn s3(&self) -> anyhow::Result<S3Settings> {
        let StorageUrl::S3 { bucket, prefix } = self.storage_url()? else {
            anyhow::bail!("storage is not an s3:// URL");
        };
        let env = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
        if let Some(e) = &self.storage_s3_endpoint {
            anyhow::ensure!(
                (e.starts_with("http://") || e.starts_with("https://"))
                    && e.len() > "https://".len(),
                "storage_s3_endpoint {e:?} must be an http:// or https:// URL"
            );
        }
        let region = self
            .storage_s3_region
            .clone()
            .or_else(|| env("AWS_REGION"))
            .or_else(|| env("AWS_DEFAULT_REGION"))
            .unwrap_or_else(|| "us-east-1".to_string());
        let credentials = match (
            &self.storage_s3_access_key_id,
            &self.storage_s3_secret_access_key,
        ) {
            (Some(id), Some(secret)) => Some(S3Credentials {
                access_key_id: id.clone(),
                secret_access_key: secret.clone(),
                session_token: None,
            }),
            (None, None) => match (env("AWS_ACCESS_KEY_ID"), env("AWS_SECRET_ACCESS_KEY")) {
                (Some(id), Some(secret)) => Some(S3Credentials {
                    access_key_id: id,
                    secret_access_key: Secret(secret),
                    session_token: env("AWS_SESSION_TOKEN").map(Secret),
                }),
                _ => None,
            },
            _ => anyhow::bail!(
                "storage_s3_access_key_id and storage_s3_secret_access_key go together: \
                 give both or neither"
            ),
        };
        Ok(S3Settings {
            bucket,
            prefix,
            endpoint: self.storage_s3_endpoint.clone(),
            region,
            credentials,
            presign_downloads: self
                .storage_s3_presign_secs
                .map(std::time::Duration::from_secs),
            no_conditional_put: self.storage_s3_no_conditional_put,
        })
    }

    /// The default account's ID for a first start (validated by [`Settings::from_matches`]).
    pub fn account_id(&self) -> Option<berth_iam::AccountId> {
        self.account_id
            .as_deref()
            .and_then(|a| berth_iam::AccountId::parse(a).ok())
    }

    /// The configured public name (validated by [`Settings::from_matches`]).
    pub fn public_host(&self) -> Option<berth_ecr_api::PublicHost> {
        self.public_host
            .as_deref()
            .and_then(|h| berth_ecr_api::PublicHost::parse(h).ok())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load(args: &[&str]) -> anyhow::Result<Settings> {
        Settings::from_matches(&Settings::command().try_get_matches_from(args)?)
    }

    // Issue #2: flags > environment > TOML file > defaults. (Environment variables are
    // process-wide, so only this test sets one, and only ones no other test reads.)
    #[test]
    fn flags_override_environment_which_overrides_file_which_overrides_defaults() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("berth.toml");
        std::fs::write(
            &f,
            "listen = \"127.0.0.1:6000\"\ndata_dir = \"/tmp/x\"\nupload_expiry_secs = 60\n\
             audit_retention_days = 7\ntoken_lifetime_secs = 600\n",
        )
        .unwrap();
        let cfg = f.to_str().unwrap();
        std::env::set_var("BERTH_AUDIT_RETENTION_DAYS", "8");
        std::env::set_var("BERTH_TOKEN_LIFETIME_SECS", "900");
        let s = load(&[
            "--config",
            cfg,
            "--data-dir",
            "/tmp/y",
            "--token-lifetime-secs",
            "1200",
        ]);
        std::env::remove_var("BERTH_AUDIT_RETENTION_DAYS");
        std::env::remove_var("BERTH_TOKEN_LIFETIME_SECS");
        let s = s.unwrap();
        assert_eq!(s.listen.port(), 6000, "file over default");
        assert_eq!(s.data_dir, PathBuf::from("/tmp/y"), "flag over file");
        assert_eq!(
            s.upload_expiry(),
            Duration::from_secs(60),
            "file over default"
        );
        assert_eq!(s.audit_retention_days, 8, "environment over file");
        assert_eq!(
            s.token_lifetime_secs, 1200,
            "flag over environment and file"
        );
        assert!(s.create_on_push, "default");
        assert_eq!(s.master_key_file(), PathBuf::from("/tmp/y/master.key"));

        let d = load(&[]).unwrap();
        assert_eq!(d.listen.to_string(), "127.0.0.1:5000");
        assert_eq!(d.log_format, LogFormat::Text);
        assert!(!d.allow_anonymous);
        assert!(load(&["--allow-anonymous"]).unwrap().allow_anonymous);
        assert!(!load(&["--create-on-push", "false"]).unwrap().create_on_push);
    }

    // Bad files and values are refused with the key named.
    #[test]
    fn bad_config_names_the_key() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("berth.toml");
        let cfg = f.to_str().unwrap();
        for (text, expect) in [
            ("listn = \"x\"\n", "unknown field `listn`"),
            ("listen = 5\n", "key `listen`"),
            ("config = \"other.toml\"\n", "unknown field `config`"),
            (
                "upload_expiry_secs = 0\n",
                "upload_expiry_secs must be at least 1",
            ),
            ("region = \"US East\"\n", "region \"US East\""),
            ("public_host = \"a/b\"\n", "public_host"),
            ("scan_block_pulls_at = \"SEVERE\"\n", "scan_block_pulls_at"),
            (
                "scan_block_pulls_ignore = [\"CVE-1\"]\n",
                "need scan_block_pulls_at",
            ),
        ] {
            std::fs::write(&f, text).unwrap();
            let e = load(&["--config", cfg]).unwrap_err();
            assert!(format!("{e:#}").contains(expect), "{text}: {e:#}");
        }
    }

    // Issue 14: the backend settings. Defaults are the embedded pair in the data
    // directory; URLs parse into the backend they name; bad ones are refused at start
    // with the accepted forms named, and passwords never reach the message.
    #[test]
    fn backend_settings_parse_and_default_to_the_data_directory() {
        let d = load(&["--data-dir", "/srv/b"]).unwrap();
        assert_eq!(
            d.metadata_url().unwrap(),
            MetadataUrl::Sqlite(PathBuf::from("/srv/b/metadata.db"))
        );
        assert_eq!(
            d.storage_url().unwrap(),
            StorageUrl::File(PathBuf::from("/srv/b"))
        );

        let s = load(&[
            "--metadata",
            "postgres://berth:hunter2@db:5432/berth?max_connections=4",
            "--storage",
            "s3://my-bucket/a/b/",
            "--storage-s3-endpoint",
            "http://127.0.0.1:8333",
            "--storage-s3-region",
            "eu-west-1",
        ])
        .unwrap();
        let m = s.metadata_url().unwrap();
        assert_eq!(m.engine(), "postgres");
        assert_eq!(
            m.redacted(),
            "postgres://berth:***@db:5432/berth?max_connections=4"
        );
        let s3 = s.s3().unwrap();
        assert_eq!(
            (s3.bucket.as_str(), s3.prefix.as_str()),
            ("my-bucket", "a/b")
        );
        assert_eq!(s3.endpoint.as_deref(), Some("http://127.0.0.1:8333"));
        assert_eq!(s3.region, "eu-west-1");

        assert_eq!(
            MetadataUrl::parse("sqlite:///var/lib/berth/m.db").unwrap(),
            MetadataUrl::Sqlite(PathBuf::from("/var/lib/berth/m.db"))
        );
        assert_eq!(
            MetadataUrl::parse("postgresql://h/db").unwrap().engine(),
            "postgres"
        );
        assert_eq!(
            StorageUrl::parse("file:///data/blobs").unwrap(),
            StorageUrl::File(PathBuf::from("/data/blobs"))
        );
        assert_eq!(
            StorageUrl::parse("s3://bucket").unwrap(),
            StorageUrl::S3 {
                bucket: "bucket".into(),
                prefix: String::new()
            }
        );
    }

    #[test]
    fn bad_backend_settings_are_refused_with_the_accepted_forms() {
        for (args, expect) in [
            (
                &["--metadata", "mysql://u:pw@h/db"][..],
                "expected sqlite:///path/metadata.db or postgres://",
            ),
            (&["--metadata", "sqlite://"][..], "names the database file"),
            (&["--metadata", "postgres://"][..], "names a server"),
            (
                &["--storage", "/plain/path"][..],
                "expected file:///path or s3://",
            ),
            (&["--storage", "s3://B"][..], "not a valid S3 bucket name"),
            (
                &["--storage", "s3://ok-bucket/a//b"][..],
                "empty, `.` or `..` segment",
            ),
            (
                &[
                    "--storage",
                    "s3://ok-bucket",
                    "--storage-s3-endpoint",
                    "localhost:8333",
                ][..],
                "must be an http:// or https:// URL",
            ),
            (
                &["--storage-s3-region", "us-east-1"][..],
                "apply to s3:// storage only",
            ),
        ] {
            let e = load(args).unwrap_err();
            assert!(format!("{e:#}").contains(expect), "{args:?}: {e:#}");
            assert!(!format!("{e:#}").contains(":pw@"), "password in {e:#}");
        }
        // The secret comes from the file only, goes with its key ID, and Debug hides it.
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("berth.toml");
        let cfg = f.to_str().unwrap();
        std::fs::write(
            &f,
            "storage = \"s3://ok-bucket\"\nstorage_s3_secret_access_key = \"s3cr3t\"\n",
        )
        .unwrap();
        let e = load(&["--config", cfg]).unwrap_err();
        assert!(format!("{e:#}").contains("go together"), "{e:#}");
        std::fs::write(
            &f,
            "storage = \"s3://ok-bucket\"\nstorage_s3_access_key_id = \"AKIAX\"\n\
             storage_s3_secret_access_key = \"s3cr3t\"\n",
        )
        .unwrap();
        let s = load(&["--config", cfg]).unwrap();
        let c = s.s3().unwrap().credentials.unwrap();
        assert_eq!(c.access_key_id, "AKIAX");
        assert_eq!(c.secret_access_key.0, "s3cr3t");
        assert!(!format!("{s:?}").contains("s3cr3t"));
        // docs/storage.md's presigned downloads and stores without conditional creates.
        std::fs::write(
            &f,
            "storage = \"s3://ok-bucket\"\nstorage_s3_presign_secs = 300\n\
             storage_s3_no_conditional_put = true\n",
        )
        .unwrap();
        let c = load(&["--config", cfg]).unwrap().s3().unwrap();
        assert_eq!(
            c.presign_downloads,
            Some(std::time::Duration::from_secs(300))
        );
        assert!(c.no_conditional_put);
        let e = load(&["--storage-s3-presign-secs", "60"]).unwrap_err();
        assert!(
            format!("{e:#}").contains("apply to s3:// storage only"),
            "{e:#}"
        );
    }

    /// Issue 9: replication peers come from the config file only, and their secrets
    /// never reach a log line (the settings' Debug redacts them).
    #[test]
    fn replication_peers_are_read_and_their_secrets_redacted() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("berth.toml");
        std::fs::write(
            &f,
            "[[replication.peers]]\nregion = \"eu-west-1\"\nregistry_id = \"111111111111\"\n\
             endpoint = \"http://127.0.0.1:5001\"\naccess_key_id = \"AKIAPEER\"\n\
             secret_access_key = \"peer-s3cr3t\"\n",
        )
        .unwrap();
        let s = load(&["--config", f.to_str().unwrap()]).unwrap();
        assert_eq!(s.replication.peers.len(), 1);
        // A bad endpoint or a peer declared twice is refused at start.
        let peer = |endpoint: &str| {
            format!(
                "[[replication.peers]]\nregion = \"eu-west-1\"\nregistry_id = \"111111111111\"\n\
                 endpoint = \"{endpoint}\"\naccess_key_id = \"AKIAPEER\"\n\
                 secret_access_key = \"x\"\n"
            )
        };
        for (text, want) in [
            (peer("not a url"), "is not a URL"),
            (peer("ftp://host"), "must be an http:// or https:// URL"),
            (peer("http://a:1") + &peer("http://b:2"), "declared twice"),
        ] {
            let g = dir.path().join("bad.toml");
            std::fs::write(&g, text).unwrap();
            let e = load(&["--config", g.to_str().unwrap()]).unwrap_err();
            assert!(format!("{e:#}").contains(want), "{e:#}");
        }
        assert_eq!(s.replication.peers[0].secret_access_key, "peer-s3cr3t");
        let debug = format!("{s:?}");
        assert!(
            debug.contains("AKIAPEER") && !debug.contains("peer-s3cr3t"),
            "{debug}"
        );
    }

    fn readme() -> String {
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../../README.md")).unwrap()
    }

    /// The README's TOML examples parse with this code's keys, so the docs cannot drift.
    #[test]
    fn readme_toml_examples_parse() {
        let readme = readme();
        let blocks: Vec<&str> = readme
            .split("```toml\n")
            .skip(1)
            .map(|b| b.split("```").next().unwrap())
            .collect();
        assert!(blocks.len() >= 2, "README has its TOML examples");
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("berth.toml");
        for b in blocks {
            std::fs::write(&f, b).unwrap();
            let s =
                load(&["--config", f.to_str().unwrap()]).unwrap_or_else(|e| panic!("{e:#}\n{b}"));
            for p in s.iam.repository_policies.values() {
                serde_json::from_str::<serde_json::Value>(p).unwrap();
            }
        }
    }

    /// The README's configuration table has one row per setting, with the flag, the
    /// environment variable, the TOML key and the default declared here (issue 16: the
    /// docs cannot drift from the one declaration).
    #[test]
    fn readme_configuration_table_matches_the_settings() {
        let readme = readme();
        let table = readme
            .split("| flag | environment | TOML key | default | meaning |")
            .nth(1)
            .expect("README has the configuration table");
        let rows: Vec<Vec<String>> = table
            .lines()
            .skip(2)
            .take_while(|l| l.starts_with('|'))
            .map(|l| {
                l.replace("\\|", "/")
                    .split('|')
                    .map(|c| c.trim().trim_matches('`').to_string())
                    .collect()
            })
            .collect();
        let cmd = Settings::command();
        let args: Vec<_> = cmd
            .get_arguments()
            .filter(|a| a.get_long().is_some())
            .collect();
        assert_eq!(rows.len(), args.len(), "one README row per setting");
        for a in args {
            let long = a.get_long().unwrap();
            let row = rows
                .iter()
                .find(|r| r[1].split(' ').next() == Some(&format!("--{long}")))
                .unwrap_or_else(|| panic!("README has no row for --{long}"));
            let env = a.get_env().unwrap().to_str().unwrap();
            assert_eq!(row[2], env, "--{long}: environment variable");
            let key = if long == "config" {
                "—".to_string()
            } else {
                long.replace('-', "_")
            };
            assert_eq!(row[3], key, "--{long}: TOML key");
            let default = a
                .get_default_values()
                .first()
                .map(|d| d.to_str().unwrap().to_string());
            let help = a.get_help().map(|h| h.to_string()).unwrap_or_default();
            let documented = help
                .rsplit_once("[default: ")
                .map(|(_, d)| d.trim_end_matches(']').to_string());
            match (default, documented) {
                (Some(d), _) => assert_eq!(row[4], d, "--{long}: default"),
                (None, Some(d)) => assert_eq!(row[4], d, "--{long}: default (from --help)"),
                (None, None) => assert_eq!(row[4], "none", "--{long}: no default"),
            }
        }
    }
}
