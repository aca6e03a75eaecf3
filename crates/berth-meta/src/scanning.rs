//! Vulnerability scanning's rows (issue 11, migration `0009_scanning.sql`): imported OSV
//! records and each source's timestamp, layer inventories by layer digest, the latest
//! scan of each image, and the registry's scanning configuration. Rows only: records,
//! inventories and findings are JSON texts the scanner (`berth-scan`, through
//! `berth-registry`) writes and reads; what they mean is not this crate's business.
//!
//! Invariants: an import is one transaction (records, sources and the database
//! generation change together, so a reader sees one import or the other); starting a
//! scan writes its `IN_PROGRESS` row and enqueues its job in one transaction, so a scan
//! is never shown in progress without the job that finishes it; finishing names the
//! scan's start time, so a stale job cannot overwrite a newer scan; scans go with their
//! repository (`ON DELETE CASCADE`) and with their image (`delete_manifest` deletes the
//! image's scan in its transaction; `forget_image_scan` removes one on its own).

use crate::jobs::NewJob;
use crate::Result;
use berth_core::{Digest, RepositoryName};

/// One OSV record to import.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VulnRecordRow {
    /// The record's `id`.
    pub id: String,
    /// Its source: the OSV ecosystem without release (`PyPI`, `Debian`).
    pub source: String,
    /// Its `modified` time, RFC 3339.
    pub modified: String,
    /// The record's JSON.
    pub record: String,
}

/// What an import changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ImportOutcome {
    /// Records not stored before.
    pub inserted: u64,
    /// Records stored before with another `modified` time or text, replaced.
    pub updated: u64,
    /// Records stored before exactly as given.
    pub unchanged: u64,
    /// The vulnerability database generation after the import (grows only when
    /// something was inserted or updated).
    pub generation: i64,
}

/// One source's timestamp.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VulnSourceRow {
    /// The source (`PyPI`, `Go`, …).
    pub source: String,
    /// Its newest record's `modified` (ECR's `vulnerabilitySourceUpdatedAt`), RFC 3339.
    pub updated_at: String,
    /// When it was last imported, epoch seconds.
    pub imported_at: i64,
    /// How many records of it are stored.
    pub records: i64,
}

/// ECR's `ScanStatus` values Berth uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ScanStatus {
    /// The `scan.image` job has not finished.
    InProgress,
    /// Findings stored.
    Complete,
    /// The scan failed (the description says why).
    Failed,
    /// The image has no layers Berth can read (an index, an artifact).
    UnsupportedImage,
}

impl ScanStatus {
    /// The wire and column value.
    pub fn as_str(self) -> &'static str {
        match self {
            ScanStatus::InProgress => "IN_PROGRESS",
            ScanStatus::Complete => "COMPLETE",
            ScanStatus::Failed => "FAILED",
            ScanStatus::UnsupportedImage => "UNSUPPORTED_IMAGE",
        }
    }

    /// Parses a column value. Errors: [`crate::MetaError::Corrupt`] for anything else.
    pub fn parse(s: &str) -> Result<ScanStatus> {
        Ok(match s {
            "IN_PROGRESS" => ScanStatus::InProgress,
            "COMPLETE" => ScanStatus::Complete,
            "FAILED" => ScanStatus::Failed,
            "UNSUPPORTED_IMAGE" => ScanStatus::UnsupportedImage,
            other => {
                return Err(crate::MetaError::Corrupt(format!(
                    "image scan status {other:?}"
                )))
            }
        })
    }
}

/// The latest scan of one image.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageScanRow {
    /// Its status.
    pub status: ScanStatus,
    /// ECR's `imageScanStatus.description`.
    pub description: String,
    /// When it started, epoch seconds (identifies this scan).
    pub started_at: i64,
    /// When it completed or failed, epoch seconds.
    pub completed_at: Option<i64>,
    /// The image's inventory (JSON), once complete.
    pub inventory: Option<String>,
    /// The findings (JSON), once complete.
    pub findings: Option<String>,
    /// The vulnerability database generation the findings were matched against.
    pub db_generation: Option<i64>,
}

/// What [`ScanStore::start_image_scan`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ScanStart {
    /// The scan row is `IN_PROGRESS` and its job enqueued.
    Started,
    /// A scan of this image is in progress (started less than `stale_secs` ago): nothing
    /// changed.
    InProgress,
    /// The repository does not exist.
    RepositoryNotFound,
}

/// A completed scan, as continuous scanning lists them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScannedImage {
    /// The repository.
    pub repository: String,
    /// The manifest digest.
    pub digest: String,
    /// The stored scan.
    pub scan: ImageScanRow,
}

/// Scanning's rows. Implemented by [`crate::SqliteMeta`] and [`crate::PgMeta`]; every
/// [`crate::MetaStore`] is one.
#[async_trait::async_trait]
pub trait ScanStore: Send + Sync + 'static {
    /// Imports records at `now` (epoch seconds) in one transaction: each replaces the
    /// stored record of its ID when its `modified` or text differs; every source named
    /// gets its newest `modified` and `imported_at = now`; the generation grows by one
    /// if anything changed.
    async fn import_vuln_records(
        &self,
        records: &[VulnRecordRow],
        now: i64,
    ) -> Result<ImportOutcome>;
    /// Every stored record's JSON, in ID order.
    async fn vuln_records(&self) -> Result<Vec<String>>;
    /// The current vulnerability database generation (0 before any import).
    async fn vuln_db_generation(&self) -> Result<i64>;
    /// Every source with its timestamps, by name.
    async fn vuln_sources(&self) -> Result<Vec<VulnSourceRow>>;

    /// The cached inventory (JSON) of a layer.
    async fn layer_inventory(&self, layer: &Digest) -> Result<Option<String>>;
    /// Caches a layer's inventory (first writer wins: inventories of one digest are equal).
    async fn put_layer_inventory(&self, layer: &Digest, inventory: &str, now: i64) -> Result<()>;
    /// Replaces a layer's cached inventory: one made by an older scanner format that a
    /// newer scanner re-read (inventories of one digest and format are equal, so a race
    /// of two nodes replacing it stores the same text).
    async fn replace_layer_inventory(
        &self,
        layer: &Digest,
        inventory: &str,
        now: i64,
    ) -> Result<()>;

    /// Starts a scan of an image: its row becomes `IN_PROGRESS` (description
    /// `description`) started at `now`, and `job` is enqueued, in one transaction —
    /// unless a scan of it is in progress and started less than `stale_secs` ago.
    async fn start_image_scan(
        &self,
        repo: &RepositoryName,
        digest: &Digest,
        description: &str,
        job: &NewJob,
        now: i64,
        stale_secs: i64,
    ) -> Result<ScanStart>;
    /// Stores the outcome of the scan started at `started_at`; false (nothing written)
    /// if that scan is no longer the image's current one. `row.started_at` is kept.
    async fn finish_image_scan(
        &self,
        repo: &RepositoryName,
        digest: &Digest,
        started_at: i64,
        row: &ImageScanRow,
    ) -> Result<bool>;
    /// Replaces a complete scan's findings after re-matching (continuous scanning), only
    /// if the scan is still the one started at `started_at`; false otherwise.
    async fn rematch_image_scan(
        &self,
        repo: &RepositoryName,
        digest: &Digest,
        started_at: i64,
        findings: &str,
        db_generation: i64,
        now: i64,
    ) -> Result<bool>;
    /// The latest scan of an image.
    async fn image_scan(
        &self,
        repo: &RepositoryName,
        digest: &Digest,
    ) -> Result<Option<ImageScanRow>>;
    /// Deletes an image's scan (the image was deleted); false if it had none.
    async fn forget_image_scan(&self, repo: &RepositoryName, digest: &Digest) -> Result<bool>;
    /// Complete scans matched against a generation older than `generation`, at most
    /// `limit`, ordered by (repository, digest) after `after`.
    async fn stale_image_scans(
        &self,
        generation: i64,
        after: Option<(&str, &str)>,
        limit: u32,
    ) -> Result<Vec<ScannedImage>>;

    /// Sets a repository's `imageScanningConfiguration.scanOnPush`; false if the
    /// repository does not exist.
    async fn set_scan_on_push(&self, repo: &RepositoryName, scan_on_push: bool) -> Result<bool>;

    /// The registry's scanning configuration: scan type and rules (JSON), if ever put.
    async fn registry_scanning(&self) -> Result<Option<(String, String)>>;
    /// Stores the registry's scanning configuration.
    async fn put_registry_scanning(&self, scan_type: &str, rules: &str, now: i64) -> Result<()>;
}
