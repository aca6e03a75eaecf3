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
        Ok(Settings {
            listen: self
                .listen
                .or(file.listen)
                .unwrap_or_else(|| "127.0.0.1:5000".parse().expect("valid default")),
            data_dir: self
                .data_dir
                .or(file.data_dir)
                .unwrap_or_else(|| PathBuf::from("berth-data")),
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
}
