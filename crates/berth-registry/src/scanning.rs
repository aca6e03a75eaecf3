//! Vulnerability scanning on the registry's own paths (issue 11): starting a scan,
//! running it (the `scan.image` job), importing OSV data and re-matching stored
//! inventories when it changes (continuous scanning).
//!
//! A scan reads the image manifest's layers through the blob store (files or objects
//! alike, as one byte stream on the blocking pool), each layer's inventory computed
//! once per layer digest by `berth-scan` and cached in the metadata store, so a second
//! image sharing layers reads none of them again. The merged inventory and its findings
//! are stored with the scan. Matching uses an in-memory [`VulnDb`] built from the stored
//! records and rebuilt when the database generation moves (any node's import).
//!
//! Re-matching after an import reads no layer: it decodes each stored inventory, matches
//! it against the new database and replaces the findings when they differ, returning the
//! images whose findings changed (the caller sends their `ECR Image Scan` events).

use crate::{Registry, RegistryError, Result};
use berth_core::registry_scanning::{RegistryScanningConfiguration, RepositoryScanning};
use berth_core::{Digest, Reference, RepositoryName};
use berth_meta::jobs::NewJob;
use berth_meta::scanning::{ImageScanRow, ImportOutcome, ScanStart, ScanStatus, VulnRecordRow};
use berth_scan::{Finding, Inventory, LayerInventory, Limits, OsvRecord, Severity, VulnDb};
use futures::TryStreamExt as _;
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};

/// Job kind: run the scan of one image (payload: `repository`, `digest`, `startedAt`).
pub const SCAN_IMAGE: &str = "scan.image";

/// A scan in progress for longer than this (seconds) is taken as abandoned (its job
/// died) and may be started again.
pub const SCAN_STALE_SECS: i64 = 3600;

/// ECR's description of a scan in progress and of a completed one.
pub const DESCRIPTION_IN_PROGRESS: &str = "The scan is in progress.";
/// ECR's `imageScanStatus.description` of a completed scan.
pub const DESCRIPTION_COMPLETE: &str = "The scan was completed successfully.";

fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

/// The `scan.image` job of one scan (idempotency key: the image).
pub fn scan_job(repo: &RepositoryName, digest: &Digest, started_at: i64) -> NewJob {
    NewJob::new(
        SCAN_IMAGE,
        serde_json::json!({"repository": repo.as_str(), "digest": digest.to_string(), "startedAt": started_at}),
    )
    .idempotency_key(format!("{repo}@{digest}"))
    .max_attempts(5)
}

/// Remediation (issue 11): OCI pulls of an image whose latest completed scan has a
/// finding at or above `severity` are refused with `403 DENIED` naming the findings,
/// except findings whose name or any alias is in `ignore` (accepted risks). Only
/// repositories under one of `repository_prefixes` are checked (a prefix `p` covers `p`
/// and `p/…`, as `lifecycle_exclude_prefixes` does; empty: every repository). Severities
/// order as [`Severity`] does: `UNDEFINED` (an advisory without a rating) is the lowest,
/// so only a block at `UNDEFINED` stops images whose findings all lack a rating. An image not scanned yet, or whose scan is in progress or failed, is
/// served: the gate is about known findings, and `berth scan gate` in CI is the place to
/// insist on a scan. Manifest GETs are checked (a HEAD reveals only the digest); blobs
/// are not, so this stops deployments, not a client that already knows the layers.
#[derive(Debug, Clone)]
pub struct PullBlock {
    /// The lowest severity that blocks.
    pub severity: Severity,
    /// Finding names or aliases (`CVE-…`, `GHSA-…`) that never block.
    pub ignore: std::collections::BTreeSet<String>,
    /// Repository prefixes the block applies to, by path segment (empty: all).
    pub repository_prefixes: Vec<String>,
}

/// At most this many findings are named in a refusal (the rest are counted).
const BLOCK_NAMED: usize = 10;

/// Scanning's state shared by a registry's clones: the matcher's database at the
/// generation it was built from, and how many layers were read (for tests and metrics).
#[derive(Default)]
pub(crate) struct ScanState {
    db: Mutex<Option<(i64, Arc<VulnDb>)>>,
    layer_reads: AtomicU64,
    limits: Limits,
}

/// An image's latest scan, decoded.
#[derive(Debug, Clone)]
pub struct ImageScan {
    /// The stored row (status, times).
    pub row: ImageScanRow,
    /// The findings, once complete.
    pub findings: Vec<Finding>,
    /// The inventory, once complete.
    pub inventory: Option<Inventory>,
}

impl ImageScan {
    /// Counts per severity (ECR's `findingSeverityCounts`: severities without findings
    /// are left out).
    pub fn severity_counts(&self) -> BTreeMap<Severity, u64> {
        let mut out = BTreeMap::new();
        for f in &self.findings {
            *out.entry(f.severity).or_insert(0) += 1;
        }
        out
    }
}

/// An image whose findings changed when re-matched.
#[derive(Debug, Clone)]
pub struct Rematched {
    /// The repository.
    pub repository: RepositoryName,
    /// The image.
    pub digest: Digest,
    /// Its new scan.
    pub scan: ImageScan,
}

fn corrupt(what: &str, e: impl std::fmt::Display) -> RegistryError {
    RegistryError::Internal(format!("stored {what} does not decode: {e}"))
}

/// Whether a layer's media type is a tar layer (OCI image spec "Image Layer Filesystem
/// Changeset": `…layer.v1.tar`, `+gzip`, `+zstd`, Docker's `rootfs.diff.tar.gzip`).
fn is_tar_layer(media_type: &str) -> bool {
    media_type.starts_with("application/vnd.oci.image.layer.")
        || media_type.starts_with("application/vnd.docker.image.rootfs.")
}

impl Registry {
    /// Starts a scan of the image `reference` names (ECR StartImageScan): its scan
    /// becomes `IN_PROGRESS` and its `scan.image` job is enqueued in one transaction.
    /// Returns the image's digest and what happened. Errors:
    /// [`RegistryError::ManifestUnknown`], [`RegistryError::NameUnknown`].
    pub async fn start_image_scan(
        &self,
        repo: &RepositoryName,
        reference: &Reference,
    ) -> Result<(Digest, ScanStart)> {
        let digest = match reference {
            Reference::Digest(d) => {
                self.meta
                    .manifest_by_digest(repo, d)
                    .await?
                    .ok_or_else(|| RegistryError::ManifestUnknown(d.to_string()))?
                    .digest
            }
            Reference::Tag(t) => {
                self.meta
                    .manifest_by_tag(repo, t)
                    .await?
                    .ok_or_else(|| RegistryError::ManifestUnknown(t.to_string()))?
                    .digest
            }
        };
        let started_at = now();
        let job = scan_job(repo, &digest, started_at);
        let start = self
            .meta
            .start_image_scan(
                repo,
                &digest,
                DESCRIPTION_IN_PROGRESS,
                &job,
                started_at,
                SCAN_STALE_SECS,
            )
            .await?;
        if start == ScanStart::RepositoryNotFound {
            return Err(RegistryError::NameUnknown(repo.to_string()));
        }
        self.hook.committed();
        Ok((digest, start))
    }

    /// Sets a repository's `scanOnPush` (ECR PutImageScanningConfiguration). Errors:
    /// [`RegistryError::NameUnknown`].
    pub async fn set_scan_on_push(&self, repo: &RepositoryName, scan_on_push: bool) -> Result<()> {
        if self.meta.set_scan_on_push(repo, scan_on_push).await? {
            Ok(())
        } else {
            Err(RegistryError::NameUnknown(repo.to_string()))
        }
    }

    /// The registry scanning configuration (ECR GetRegistryScanningConfiguration) and
    /// whether one was ever put (before that, `BASIC` with no rules, and repositories'
    /// own `scanOnPush` decide). Errors: the stored row does not decode.
    pub async fn registry_scanning_configuration(
        &self,
    ) -> Result<(bool, RegistryScanningConfiguration)> {
        let Some((scan_type, rules)) = self.meta.registry_scanning().await? else {
            return Ok((false, RegistryScanningConfiguration::default()));
        };
        let cfg = serde_json::from_value(serde_json::json!({
            "scanType": scan_type,
            "rules": serde_json::from_str::<serde_json::Value>(&rules)
                .map_err(|e| corrupt("registry scanning rules", e))?,
        }))
        .map_err(|e| corrupt("registry scanning configuration", e))?;
        Ok((true, cfg))
    }

    /// Replaces the registry scanning configuration (ECR PutRegistryScanningConfiguration;
    /// the ECR API adapter validated it).
    pub async fn put_registry_scanning_configuration(
        &self,
        cfg: &RegistryScanningConfiguration,
    ) -> Result<()> {
        let scan_type = serde_json::to_value(cfg.scan_type)
            .map_err(|e| RegistryError::Internal(e.to_string()))?;
        let rules = serde_json::to_string(&cfg.rules)
            .map_err(|e| RegistryError::Internal(e.to_string()))?;
        self.meta
            .put_registry_scanning(scan_type.as_str().unwrap_or("BASIC"), &rules, now())
            .await?;
        Ok(())
    }

    /// How repository `repo` is scanned (ECR BatchGetRepositoryScanningConfiguration):
    /// its own `scanOnPush` and what the registry configuration makes of it. Errors:
    /// [`RegistryError::NameUnknown`].
    pub async fn repository_scanning(
        &self,
        repo: &RepositoryName,
    ) -> Result<(bool, RepositoryScanning)> {
        let settings = self.repository(repo).await?.settings;
        let (configured, cfg) = self.registry_scanning_configuration().await?;
        Ok((
            settings.scan_on_push,
            cfg.repository(configured, repo.as_str(), settings.scan_on_push),
        ))
    }

    /// Whether an OCI pull of `repo@digest` may be served under the configured
    /// [`PullBlock`]. Errors: [`RegistryError::PullBlocked`] naming the blocking
    /// findings; database errors.
    pub async fn check_pull(&self, repo: &RepositoryName, digest: &Digest) -> Result<()> {
        let Some(block) = &self.cfg.pull_block else {
            return Ok(());
        };
        if !block.repository_prefixes.is_empty()
            && crate::lifecycle::excluded_by(&block.repository_prefixes, repo.as_str()).is_none()
        {
            return Ok(());
        }
        let Some(scan) = self.image_scan(repo, digest).await? else {
            return Ok(());
        };
        if scan.row.status != ScanStatus::Complete {
            return Ok(());
        }
        let blocking: Vec<&Finding> = scan
            .findings
            .iter()
            .filter(|f| f.severity >= block.severity)
            .filter(|f| {
                !block.ignore.contains(&f.name) && !f.ids.iter().any(|i| block.ignore.contains(i))
            })
            .collect();
        if blocking.is_empty() {
            return Ok(());
        }
        metrics::counter!("berth_pulls_blocked_total").increment(1);
        let named: Vec<String> = blocking
            .iter()
            .take(BLOCK_NAMED)
            .map(|f| {
                let fixed = if f.fixed_in_versions.is_empty() {
                    "no fixed version".to_owned()
                } else {
                    format!("fixed in {}", f.fixed_in_versions.join(", "))
                };
                format!(
                    "{} {} ({} {}, {fixed})",
                    f.severity.as_str(),
                    f.name,
                    f.package.name,
                    f.package.version
                )
            })
            .collect();
        let more = blocking.len().saturating_sub(BLOCK_NAMED);
        Err(RegistryError::PullBlocked(format!(
            "pull of {repo}@{digest} refused: its latest scan has {} finding(s) at or above {}: {}{}; \
             push a fixed image, or accept a finding with scan_block_pulls_ignore",
            blocking.len(),
            block.severity.as_str(),
            named.join("; "),
            if more > 0 {
                format!("; and {more} more (aws ecr describe-image-scan-findings)")
            } else {
                String::new()
            }
        )))
    }

    /// Each vulnerability source with its timestamps.
    pub async fn vuln_sources(&self) -> Result<Vec<berth_meta::scanning::VulnSourceRow>> {
        Ok(self.meta.vuln_sources().await?)
    }

    /// The latest scan of an image, decoded; `None` if it was never scanned.
    pub async fn image_scan(
        &self,
        repo: &RepositoryName,
        digest: &Digest,
    ) -> Result<Option<ImageScan>> {
        let Some(row) = self.meta.image_scan(repo, digest).await? else {
            return Ok(None);
        };
        decode_scan(row).map(Some)
    }

    /// How many layers scans have read (and not found cached) in this process.
    pub fn scan_layer_reads(&self) -> u64 {
        self.scan.layer_reads.load(Ordering::Relaxed)
    }

    /// The matcher's database at the stored generation, rebuilt when another import
    /// moved it. Returns it with its generation.
    pub async fn vuln_db(&self) -> Result<(i64, Arc<VulnDb>)> {
        let generation = self.meta.vuln_db_generation().await?;
        if let Some((g, db)) = self.scan.db.lock().expect("vuln db lock").as_ref() {
            if *g == generation {
                return Ok((*g, db.clone()));
            }
        }
        let texts = self.meta.vuln_records().await?;
        let db = tokio::task::spawn_blocking(move || {
            let records = texts
                .iter()
                .filter_map(|t| berth_scan::osv::parse_record(t.as_bytes()).ok());
            VulnDb::new(records)
        })
        .await
        .map_err(|e| {
            RegistryError::Internal(format!("building the vulnerability database: {e}"))
        })?;
        let db = Arc::new(db);
        *self.scan.db.lock().expect("vuln db lock") = Some((generation, db.clone()));
        Ok((generation, db))
    }

    /// Imports OSV records (`berth admin vulndb import`) in one transaction; see
    /// [`berth_meta::ScanStore::import_vuln_records`].
    pub async fn import_vulnerabilities(&self, records: &[OsvRecord]) -> Result<ImportOutcome> {
        Ok(self
            .meta
            .import_vuln_records(&vuln_rows(records)?, now())
            .await?)
    }

    /// Runs the scan of `digest` started at `started_at` (the `scan.image` job):
    /// inventories its layers (cached per layer digest), matches them, and stores the
    /// outcome. A layer the scanner refuses (corrupt, hostile) makes the scan `FAILED`
    /// with the reason; an image without tar layers is `UNSUPPORTED_IMAGE`. Returns the
    /// stored scan, or `None` when a newer scan replaced this one. Errors: storage or
    /// database failures (the job retries).
    pub async fn run_image_scan(
        &self,
        repo: &RepositoryName,
        digest: &Digest,
        started_at: i64,
    ) -> Result<Option<ImageScan>> {
        let row = match self.inventory_image(repo, digest).await {
            Ok(Some(inventory)) => {
                let (generation, db) = self.vuln_db().await?;
                let findings = db.findings(&inventory);
                ImageScanRow {
                    status: ScanStatus::Complete,
                    description: DESCRIPTION_COMPLETE.into(),
                    started_at,
                    completed_at: Some(now()),
                    inventory: Some(
                        serde_json::to_string(&inventory).map_err(|e| corrupt("inventory", e))?,
                    ),
                    findings: Some(
                        serde_json::to_string(&findings).map_err(|e| corrupt("findings", e))?,
                    ),
                    db_generation: Some(generation),
                }
            }
            Ok(None) => ImageScanRow {
                status: ScanStatus::UnsupportedImage,
                description:
                    "The image has no layers Berth can scan (an image index or an artifact).".into(),
                started_at,
                completed_at: Some(now()),
                inventory: None,
                findings: None,
                db_generation: None,
            },
            Err(ScanFailure::Layer(digest, e)) => ImageScanRow {
                status: ScanStatus::Failed,
                description: format!("Layer {digest} could not be scanned: {e}."),
                started_at,
                completed_at: Some(now()),
                inventory: None,
                findings: None,
                db_generation: None,
            },
            Err(ScanFailure::Registry(RegistryError::ManifestUnknown(_))) => return Ok(None),
            Err(ScanFailure::Registry(e)) => return Err(e),
        };
        if !self
            .meta
            .finish_image_scan(repo, digest, started_at, &row)
            .await?
        {
            return Ok(None);
        }
        decode_scan(row).map(Some)
    }

    async fn inventory_image(
        &self,
        repo: &RepositoryName,
        digest: &Digest,
    ) -> std::result::Result<Option<Inventory>, ScanFailure> {
        let manifest = self
            .meta
            .manifest_by_digest(repo, digest)
            .await
            .map_err(RegistryError::from)?
            .ok_or_else(|| RegistryError::ManifestUnknown(digest.to_string()))?;
        #[derive(serde::Deserialize)]
        struct Layer {
            #[serde(rename = "mediaType", default)]
            media_type: String,
            digest: String,
        }
        #[derive(serde::Deserialize)]
        struct Image {
            #[serde(default)]
            layers: Vec<Layer>,
        }
        let image: Image =
            serde_json::from_slice(&manifest.body).unwrap_or(Image { layers: Vec::new() });
        let layers: Vec<&Layer> = image
            .layers
            .iter()
            .filter(|l| is_tar_layer(&l.media_type))
            .collect();
        if layers.is_empty() {
            return Ok(None);
        }
        let mut inventories = Vec::with_capacity(layers.len());
        for layer in layers {
            let d = layer
                .digest
                .parse::<Digest>()
                .map_err(|e| RegistryError::ManifestInvalid(e.to_string()))?;
            inventories.push(self.layer_inventory(repo, &d).await?);
        }
        Ok(Some(berth_scan::merge(&inventories)))
    }

    /// A layer's inventory: cached, else read from the blob store and cached. One cached
    /// by an older scanner ([`LayerInventory::FORMAT`] grew: more package databases are
    /// read now) is read again and replaced, once.
    async fn layer_inventory(
        &self,
        repo: &RepositoryName,
        layer: &Digest,
    ) -> std::result::Result<LayerInventory, ScanFailure> {
        let cached = self
            .meta
            .layer_inventory(layer)
            .await
            .map_err(RegistryError::from)?;
        let mut outdated = false;
        if let Some(text) = &cached {
            match serde_json::from_str::<LayerInventory>(text) {
                Ok(inv) if inv.format >= LayerInventory::FORMAT => return Ok(inv),
                _ => outdated = true,
            }
        }
        let content = self.open_blob(repo, layer).await?;
        let len = content.len();
        let stream = content.read(0..len).await.map_err(RegistryError::from)?;
        self.scan.layer_reads.fetch_add(1, Ordering::Relaxed);
        metrics::counter!("berth_scan_layer_reads_total").increment(1);
        let reader = tokio_util::io::StreamReader::new(stream.map_err(std::io::Error::other));
        let limits = self.scan.limits.clone();
        let inventory = tokio::task::spawn_blocking(move || {
            let sync = tokio_util::io::SyncIoBridge::new(reader);
            berth_scan::read_layer(sync, &limits)
        })
        .await
        .map_err(|e| RegistryError::Internal(format!("scanning a layer: {e}")))?
        .map_err(|e| ScanFailure::Layer(layer.clone(), e))?;
        let text = serde_json::to_string(&inventory).map_err(|e| corrupt("layer inventory", e))?;
        if outdated {
            self.meta.replace_layer_inventory(layer, &text, now()).await
        } else {
            self.meta.put_layer_inventory(layer, &text, now()).await
        }
        .map_err(RegistryError::from)?;
        Ok(inventory)
    }

    /// Continuous scanning: re-matches every complete scan matched against an older
    /// database generation (reading stored inventories only, never a layer) and stores
    /// the findings of those that changed; returns them. Scans whose findings did not
    /// change only record the new generation.
    pub async fn rematch_scans(&self) -> Result<Vec<Rematched>> {
        let (generation, db) = self.vuln_db().await?;
        let mut changed = Vec::new();
        let mut after: Option<(String, String)> = None;
        loop {
            let page = self
                .meta
                .stale_image_scans(
                    generation,
                    after.as_ref().map(|(r, d)| (r.as_str(), d.as_str())),
                    200,
                )
                .await?;
            let full = page.len() == 200;
            for image in page {
                after = Some((image.repository.clone(), image.digest.clone()));
                let (Ok(repo), Ok(digest)) = (
                    RepositoryName::parse(&image.repository),
                    image.digest.parse::<Digest>(),
                ) else {
                    continue;
                };
                let inventory: Inventory =
                    match image.scan.inventory.as_deref().map(serde_json::from_str) {
                        Some(Ok(inv)) => inv,
                        _ => continue,
                    };
                let old: Vec<Finding> = image
                    .scan
                    .findings
                    .as_deref()
                    .and_then(|f| serde_json::from_str(f).ok())
                    .unwrap_or_default();
                let findings = db.findings(&inventory);
                let text = serde_json::to_string(&findings).map_err(|e| corrupt("findings", e))?;
                let at = now();
                if !self
                    .meta
                    .rematch_image_scan(
                        &repo,
                        &digest,
                        image.scan.started_at,
                        &text,
                        generation,
                        at,
                    )
                    .await?
                {
                    continue;
                }
                if findings != old {
                    let mut row = image.scan;
                    row.findings = Some(text);
                    row.db_generation = Some(generation);
                    row.completed_at = Some(at);
                    changed.push(Rematched {
                        repository: repo,
                        digest,
                        scan: ImageScan {
                            row,
                            findings,
                            inventory: Some(inventory),
                        },
                    });
                }
            }
            if !full {
                break;
            }
        }
        Ok(changed)
    }
}

enum ScanFailure {
    Layer(Digest, berth_scan::ScanError),
    Registry(RegistryError),
}

impl From<RegistryError> for ScanFailure {
    fn from(e: RegistryError) -> Self {
        ScanFailure::Registry(e)
    }
}

/// The rows an import stores: each record's JSON with its source (the OSV ecosystem of
/// its first affected package, without release) and `modified` time.
pub fn vuln_rows(records: &[OsvRecord]) -> Result<Vec<VulnRecordRow>> {
    records
        .iter()
        .map(|r| {
            let source = r
                .affected
                .iter()
                .find_map(|a| a.package.as_ref())
                .map(|p| p.ecosystem.split(':').next().unwrap_or("").to_owned())
                .unwrap_or_default();
            Ok(VulnRecordRow {
                id: r.id.clone(),
                source,
                modified: r.modified.clone(),
                record: serde_json::to_string(r)
                    .map_err(|e| RegistryError::Internal(e.to_string()))?,
            })
        })
        .collect()
}

fn decode_scan(row: ImageScanRow) -> Result<ImageScan> {
    let findings = match row.findings.as_deref() {
        Some(text) => serde_json::from_str(text).map_err(|e| corrupt("findings", e))?,
        None => Vec::new(),
    };
    let inventory = match row.inventory.as_deref() {
        Some(text) => Some(serde_json::from_str(text).map_err(|e| corrupt("inventory", e))?),
        None => None,
    };
    Ok(ImageScan {
        row,
        findings,
        inventory,
    })
}
