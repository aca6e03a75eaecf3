//! `berth serve` settings: flags, then environment variables, then an optional TOML
//! file, then defaults — the first that sets a value wins. Each setting is declared once
//! (in [`ServeArgs`]), which yields the flag, the environment variable and `--help`.

use anyhow::Context;
use clap::{Args, ValueEnum};
use serde::Deserialize;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

/// Log output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line.
    Json,
}

/// Flags of `berth serve`. Every flag also reads an environment variable and a key of
/// the same name (snake_case) in the `--config` TOML file.
#[derive(Debug, Clone, Default, Args)]
pub struct ServeArgs {
    /// Address to listen on for both the OCI API (/v2/) and operations endpoints
    /// (/healthz, /readyz, /metrics). [default: 127.0.0.1:5000] [toml: listen]
    #[arg(long, env = "BERTH_LISTEN", value_name = "ADDR")]
    pub listen: Option<SocketAddr>,

    /// Directory holding everything Berth stores: blobs and uploads (filesystem) and
    /// metadata (SQLite, metadata.db). Created if missing. [default: ./berth-data] [toml: data_dir]
    #[arg(long, env = "BERTH_DATA_DIR", value_name = "DIR")]
    pub data_dir: Option<PathBuf>,

    /// Optional TOML file with any of these settings; flags and environment override it.
    #[arg(long, env = "BERTH_CONFIG", value_name = "FILE")]
    pub config: Option<PathBuf>,

    /// Log format. [default: text] [toml: log_format]
    #[arg(long, env = "BERTH_LOG_FORMAT", value_name = "FORMAT")]
    pub log_format: Option<LogFormat>,

    /// Log filter in tracing's EnvFilter syntax, e.g. `info` or `berth=debug,info`.
    /// [default: info] [toml: log_level]
    #[arg(long, env = "BERTH_LOG", value_name = "FILTER")]
    pub log_level: Option<String>,

    /// Seconds an upload session may stay idle before it is cancelled and its data
    /// removed. [default: 3600] [toml: upload_expiry_secs]
    #[arg(long, env = "BERTH_UPLOAD_EXPIRY_SECS", value_name = "SECS")]
    pub upload_expiry_secs: Option<u64>,

    /// Create repositories on their first push (`true`), or refuse pushes to repositories
    /// that do not exist (`false`). [default: true] [toml: create_on_push]
    #[arg(long, env = "BERTH_CREATE_ON_PUSH", value_name = "BOOL")]
    pub create_on_push: Option<bool>,

    /// The AWS-style region this registry serves: it appears in repository ARNs, and
    /// authorization tokens and SigV4 credential scopes must name it.
    /// [default: us-east-1] [toml: region]
    #[arg(long, env = "BERTH_REGION", value_name = "REGION")]
    pub region: Option<String>,

    /// The 12-digit ID of this registry's own account (its registryId), used when the
    /// data directory is first initialised; random if unset. [toml: account_id]
    #[arg(long, env = "BERTH_ACCOUNT_ID", value_name = "ID")]
    pub account_id: Option<String>,

    /// DEVELOPMENT ONLY: let unauthenticated callers do everything. Logged as a warning.
    /// [default: false] [toml: allow_anonymous]
    #[arg(long, env = "BERTH_ALLOW_ANONYMOUS", value_name = "BOOL", num_args = 0..=1, default_missing_value = "true")]
    pub allow_anonymous: Option<bool>,

    /// File holding the 32-byte master key that encrypts stored secrets and signs
    /// tokens; created (mode 0600) when missing. Ignored when BERTH_MASTER_KEY is set.
    /// [default: <data-dir>/master.key] [toml: master_key_file]
    #[arg(long, env = "BERTH_MASTER_KEY_FILE", value_name = "FILE")]
    pub master_key_file: Option<PathBuf>,

    /// Lifetime of authorization tokens in seconds; ECR's is 12 hours.
    /// [default: 43200] [toml: token_lifetime_secs]
    #[arg(long, env = "BERTH_TOKEN_LIFETIME_SECS", value_name = "SECS")]
    pub token_lifetime_secs: Option<u64>,

    /// Days to keep audit records. [default: 90] [toml: audit_retention_days]
    #[arg(long, env = "BERTH_AUDIT_RETENTION_DAYS", value_name = "DAYS")]
    pub audit_retention_days: Option<u64>,
}

/// Identities declared in the config file's `[iam]` table, created on start when
/// missing and their policies (re)applied: idempotent across restarts.
#[derive(Debug, Clone, Default, Deserialize)]
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
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeclaredAccount {
    /// 12-digit account ID.
    pub id: String,
    /// Display name.
    pub name: Option<String>,
}

/// A declared user, role or service principal.
#[derive(Debug, Clone, Deserialize)]
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
}

/// The TOML file's shape: the same keys as the flags.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileConfig {
    listen: Option<SocketAddr>,
    data_dir: Option<PathBuf>,
    log_format: Option<LogFormat>,
    log_level: Option<String>,
    upload_expiry_secs: Option<u64>,
    create_on_push: Option<bool>,
    region: Option<String>,
    account_id: Option<String>,
    allow_anonymous: Option<bool>,
    master_key_file: Option<PathBuf>,
    audit_retention_days: Option<u64>,
    token_lifetime_secs: Option<u64>,
    #[serde(default)]
    iam: IamDeclarations,
}

/// Resolved settings.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Listen address.
    pub listen: SocketAddr,
    /// Data directory.
    pub data_dir: PathBuf,
    /// Log format.
    pub log_format: LogFormat,
    /// Log filter.
    pub log_level: String,
    /// Upload idle expiry.
    pub upload_expiry: Duration,
    /// Create repositories on push.
    pub create_on_push: bool,
    /// Region served.
    pub region: String,
    /// The default account's ID for first start.
    pub account_id: Option<berth_iam::AccountId>,
    /// Development flag: anonymous callers may do everything.
    pub allow_anonymous: bool,
    /// The master key file.
    pub master_key_file: PathBuf,
    /// Audit retention.
    pub audit_retention: Duration,
    /// Authorization token lifetime.
    pub token_lifetime: Duration,
    /// Identities declared in the config file.
    pub iam: IamDeclarations,
}

impl ServeArgs {
    /// Merges flags/environment (already in `self`) over the TOML file over defaults.
    /// Errors: the file cannot be read or has unknown keys or bad values.
    pub fn resolve(self) -> anyhow::Result<Settings> {
        let file = match &self.config {
            Some(p) => {
                let text = std::fs::read_to_string(p)
                    .with_context(|| format!("reading config file {}", p.display()))?;
                toml::from_str::<FileConfig>(&text)
                    .with_context(|| format!("parsing config file {}", p.display()))?
            }
            None => FileConfig::default(),
        };
        let upload_expiry_secs = self
            .upload_expiry_secs
            .or(file.upload_expiry_secs)
            .unwrap_or(3600);
        anyhow::ensure!(
            upload_expiry_secs > 0,
            "upload_expiry_secs must be at least 1"
        );
        let data_dir = self
            .data_dir
            .or(file.data_dir)
            .unwrap_or_else(|| PathBuf::from("berth-data"));
        Ok(Settings {
            listen: self
                .listen
                .or(file.listen)
                .unwrap_or_else(|| "127.0.0.1:5000".parse().expect("valid default")),
            log_format: self
                .log_format
                .or(file.log_format)
                .unwrap_or(LogFormat::Text),
            log_level: self
                .log_level
                .or(file.log_level)
                .unwrap_or_else(|| "info".into()),
            upload_expiry: Duration::from_secs(upload_expiry_secs),
            create_on_push: self.create_on_push.or(file.create_on_push).unwrap_or(true),
            region: {
                let r = self
                    .region
                    .or(file.region)
                    .unwrap_or_else(|| "us-east-1".into());
                anyhow::ensure!(
                    !r.is_empty()
                        && r.len() <= 32
                        && r.bytes()
                            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-'),
                    "region {r:?} must be lowercase letters, digits and '-', like us-east-1"
                );
                r
            },
            account_id: self
                .account_id
                .or(file.account_id)
                .map(|a| berth_iam::AccountId::parse(&a).map_err(anyhow::Error::msg))
                .transpose()?,
            allow_anonymous: self
                .allow_anonymous
                .or(file.allow_anonymous)
                .unwrap_or(false),
            master_key_file: self
                .master_key_file
                .or(file.master_key_file)
                .unwrap_or_else(|| data_dir.join("master.key")),
            audit_retention: Duration::from_secs(
                86_400
                    * self
                        .audit_retention_days
                        .or(file.audit_retention_days)
                        .unwrap_or(90),
            ),
            token_lifetime: {
                let t = self
                    .token_lifetime_secs
                    .or(file.token_lifetime_secs)
                    .unwrap_or(43_200);
                anyhow::ensure!(
                    (1..=43_200).contains(&t),
                    "token_lifetime_secs must be between 1 and 43200 (12 hours, ECR's lifetime)"
                );
                Duration::from_secs(t)
            },
            iam: file.iam,
            data_dir,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // Issue #2: flags > environment > TOML file > defaults.
    #[test]
    fn flags_override_file_which_overrides_defaults() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("berth.toml");
        std::fs::write(
            &f,
            "listen = \"127.0.0.1:6000\"\ndata_dir = \"/tmp/x\"\nupload_expiry_secs = 60\n",
        )
        .unwrap();
        let s = ServeArgs {
            config: Some(f.clone()),
            data_dir: Some("/tmp/y".into()),
            ..Default::default()
        }
        .resolve()
        .unwrap();
        assert_eq!(s.listen.port(), 6000);
        assert_eq!(s.data_dir, PathBuf::from("/tmp/y"));
        assert_eq!(s.upload_expiry, Duration::from_secs(60));
        assert!(s.create_on_push);
        let d = ServeArgs::default().resolve().unwrap();
        assert_eq!(d.listen.to_string(), "127.0.0.1:5000");
        assert_eq!(d.log_format, LogFormat::Text);
        std::fs::write(&f, "listn = \"x\"\n").unwrap();
        let e = ServeArgs {
            config: Some(f),
            ..Default::default()
        }
        .resolve()
        .unwrap_err();
        assert!(format!("{e:#}").contains("unknown field"), "{e:#}");
    }

    /// The README's TOML examples parse with this code's keys, so the docs cannot drift.
    #[test]
    fn readme_toml_examples_parse() {
        let readme =
            std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../../README.md"))
                .unwrap();
        let blocks: Vec<&str> = readme
            .split("```toml\n")
            .skip(1)
            .map(|b| b.split("```").next().unwrap())
            .collect();
        assert!(blocks.len() >= 2, "README has its TOML examples");
        for b in blocks {
            let f: FileConfig = toml::from_str(b).unwrap_or_else(|e| panic!("{e}\n{b}"));
            for p in f.iam.repository_policies.values() {
                serde_json::from_str::<serde_json::Value>(p).unwrap();
            }
        }
    }
}
