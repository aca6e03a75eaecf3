//! Opening the metadata and blob backends the settings name — the one place that knows
//! which engines exist. `berth serve` and every `berth admin` command go through
//! [`open_metadata`] (and `serve` through [`open_storage`]), so the rest of the binary
//! holds only `Arc<dyn Metadata>` and `Arc<dyn BlobStore>` and works the same on the
//! embedded default (SQLite + a local directory, one process) and on the scale-out pair
//! (PostgreSQL + an S3-compatible bucket, many nodes).
//!
//! [`lock_local_state`] takes the exclusive locks the embedded backends need: a SQLite
//! database file and a local blob directory each belong to one process (SQLite is
//! opened with one writer connection and the manifest cache trusts it; the filesystem
//! store keeps upload sessions and its byte count in the process). PostgreSQL and S3
//! need no lock: the database and the bucket are the distributed engines.

use crate::config::{MetadataUrl, Settings, StorageUrl};
use anyhow::Context;
use berth_meta::{Metadata, PgMeta, SqliteMeta};
use berth_store::{BlobStore, FsStore, S3Options, S3Store};
use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Opens the metadata backend `s.metadata` names: the SQLite file (created when
/// missing, migrations applied) or the PostgreSQL database (`PgMeta::open`: pool,
/// migrations).
///
/// Errors: the URL is malformed; the database cannot be opened or migrated; PostgreSQL
/// metadata in a build whose `PgMeta` does not implement [`Metadata`] yet.
pub async fn open_metadata(s: &Settings) -> anyhow::Result<Arc<dyn Metadata>> {
    match s.metadata_url()? {
        MetadataUrl::Sqlite(path) => {
            if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
                std::fs::create_dir_all(dir)
                    .with_context(|| format!("creating directory {}", dir.display()))?;
            }
            let meta = SqliteMeta::open(&path)
                .await
                .with_context(|| format!("opening metadata database {}", path.display()))?;
            Ok(Arc::new(meta))
        }
        MetadataUrl::Postgres(url) => {
            let redacted = MetadataUrl::Postgres(url.clone()).redacted();
            let meta = PgMeta::open(&url)
                .await
                .with_context(|| format!("opening metadata database {redacted}"))?;
            Ok(Arc::new(meta))
        }
    }
}

/// Opens the blob backend `s.storage` names: the filesystem store in the directory
/// (created when missing) or the S3 bucket.
///
/// Errors: the URL is malformed; the directory cannot be created or holds another
/// layout version; S3 storage in a build without the S3 backend.
pub async fn open_storage(s: &Settings) -> anyhow::Result<Arc<dyn BlobStore>> {
    match s.storage_url()? {
        StorageUrl::File(dir) => {
            let store = FsStore::open(&dir)
                .with_context(|| format!("opening blob storage in {}", dir.display()))?;
            Ok(Arc::new(store))
        }
        StorageUrl::S3 { bucket, prefix } => {
            let c = s.s3()?;
            let (access_key_id, secret_access_key, session_token) = match c.credentials {
                Some(k) => (
                    Some(k.access_key_id),
                    Some(k.secret_access_key.0),
                    k.session_token.map(|t| t.0),
                ),
                None => (None, None, None),
            };
            let store = S3Store::new(
                &bucket,
                &prefix,
                S3Options {
                    allow_http: c
                        .endpoint
                        .as_deref()
                        .is_some_and(|e| e.starts_with("http://")),
                    endpoint: c.endpoint,
                    region: Some(c.region),
                    access_key_id,
                    secret_access_key,
                    session_token,
                    presign_downloads: c.presign_downloads,
                    no_conditional_put: c.no_conditional_put,
                    ..S3Options::default()
                },
            )
            .with_context(|| format!("configuring storage s3://{bucket}/{prefix}"))?;
            store
                .check()
                .await
                .with_context(|| format!("reaching storage s3://{bucket}/{prefix}"))?;
            Ok(Arc::new(store))
        }
    }
}

/// The exclusive locks of the local state one `berth serve` process owns; released
/// when dropped (and by the kernel when the process dies, `kill -9` included).
#[derive(Debug)]
pub struct LocalLocks {
    held: Vec<(PathBuf, File)>,
}

impl LocalLocks {
    /// The lock files held, for the start-up log.
    pub fn paths(&self) -> Vec<&Path> {
        self.held.iter().map(|(p, _)| p.as_path()).collect()
    }
}

/// Takes `berth.lock` (an `flock`) in the directory of the SQLite database and in the
/// filesystem store's directory — once when they are the same (the data directory by
/// default) — so a second server on the same embedded state is refused at start rather
/// than corrupting it. Nothing is locked for PostgreSQL metadata or S3 storage.
///
/// Errors: a directory cannot be created, or another process holds its lock (the
/// message names the directory).
pub fn lock_local_state(s: &Settings) -> anyhow::Result<LocalLocks> {
    let mut dirs: Vec<PathBuf> = Vec::new();
    if let MetadataUrl::Sqlite(db) = s.metadata_url()? {
        let dir = match db.parent() {
            Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
            _ => PathBuf::from("."),
        };
        dirs.push(dir);
    }
    if let StorageUrl::File(dir) = s.storage_url()? {
        dirs.push(dir);
    }
    let mut held: Vec<(PathBuf, File)> = Vec::new();
    for dir in dirs {
        std::fs::create_dir_all(&dir)
            .with_context(|| format!("creating directory {}", dir.display()))?;
        let dir = std::fs::canonicalize(&dir)?;
        let path = dir.join("berth.lock");
        if held.iter().any(|(p, _)| *p == path) {
            continue;
        }
        let file = File::create(&path)
            .with_context(|| format!("creating lock file {}", path.display()))?;
        file.try_lock().map_err(|_| {
            anyhow::anyhow!(
                "another berth process is using data directory {} (it holds {}): the \
                 embedded SQLite metadata and filesystem storage serve one process; run \
                 several nodes on postgres:// metadata and s3:// storage instead",
                dir.display(),
                path.display()
            )
        })?;
        held.push((path, file));
    }
    Ok(LocalLocks { held })
}
