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

    /// Event rules and their webhook targets declared in the config file (`[[events.rules]]`;
    /// no flag).
    #[arg(skip)]
    #[serde(default)]
    pub events: crate::events::EventDeclarations,

    /// Identities declared in the config file (`[iam]` table; no flag).
    #[arg(skip)]
    #[serde(default)]
    pub iam: IamDeclarations,
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
        if let Some(a) = &self.account_id {
            berth_iam::AccountId::parse(a).map_err(anyhow::Error::msg)?;
        }
        if let Some(h) = &self.public_host {
            berth_ecr_api::PublicHost::parse(h).map_err(|e| anyhow::anyhow!("public_host: {e}"))?;
        }
        Ok(self)
    }

    /// How long an upload session may stay idle.
    pub fn upload_expiry(&self) -> Duration {
        Duration::from_secs(self.upload_expiry_secs)
    }

    /// How long audit records are kept.
    pub fn audit_retention(&self) -> Duration {
        Duration::from_secs(86_400 * self.audit_retention_days)
    }

    /// How long finished jobs are kept.
    pub fn job_retention(&self) -> Duration {
        Duration::from_secs(86_400 * self.job_retention_days)
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
        ] {
            std::fs::write(&f, text).unwrap();
            let e = load(&["--config", cfg]).unwrap_err();
            assert!(format!("{e:#}").contains(expect), "{text}: {e:#}");
        }
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
