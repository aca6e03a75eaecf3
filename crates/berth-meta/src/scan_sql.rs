//! [`ScanStore`] on both engines (migration `0009_scanning.sql`). The statements are the
//! same text on SQLite and PostgreSQL (`$n` parameters, which sqlx binds on both;
//! `INSERT … ON CONFLICT … DO UPDATE … WHERE`), so one macro implements the trait for
//! each backend with its pools and its `enqueue`; only the pools differ.
//!
//! Concurrency: starting a scan is one conditional upsert (`… DO UPDATE … WHERE the
//! current scan is not in progress or is stale … RETURNING`), atomic on both engines
//! (SQLite's single writer; PostgreSQL's row lock on the conflicting row), so two nodes
//! cannot both start a scan of one image. Finishing and re-matching name the scan's
//! `started_at`. An import runs in one transaction; the generation row is updated last,
//! so readers see the records and the new generation together.

use crate::jobs::NewJob;
use crate::scanning::{
    ImageScanRow, ImportOutcome, ScanStart, ScanStatus, ScanStore, ScannedImage, VulnRecordRow,
    VulnSourceRow,
};
use crate::{PgMeta, Result, SqliteMeta};
use berth_core::{Digest, RepositoryName};
use std::collections::BTreeMap;

type ScanTuple = (
    String,
    String,
    i64,
    Option<i64>,
    Option<String>,
    Option<String>,
    Option<i64>,
);

fn scan_row(
    (status, description, started_at, completed_at, inventory, findings, db_generation): ScanTuple,
) -> Result<ImageScanRow> {
    Ok(ImageScanRow {
        status: ScanStatus::parse(&status)?,
        description,
        started_at,
        completed_at,
        inventory,
        findings,
        db_generation,
    })
}

const SCAN_COLUMNS: &str = "s.status, s.description, s.started_at, s.completed_at, s.inventory, s.findings, s.db_generation";

macro_rules! scan_store {
    ($meta:ty, reader: |$r:ident| $reader:expr, writer: |$w:ident| $writer:expr, enqueue: $enqueue:path) => {
        #[async_trait::async_trait]
        impl ScanStore for $meta {
            async fn import_vuln_records(&self, records: &[VulnRecordRow], now: i64) -> Result<ImportOutcome> {
                let mut tx = self.begin_write().await?;
                let mut outcome = ImportOutcome::default();
                let mut newest: BTreeMap<&str, &str> = BTreeMap::new();
                for r in records {
                    let slot = newest.entry(r.source.as_str()).or_insert("");
                    if r.modified.as_str() > *slot {
                        *slot = r.modified.as_str();
                    }
                    let stored = sqlx::query_as::<_, (String, String)>("SELECT modified, record FROM vuln_records WHERE id = $1")
                        .bind(&r.id)
                        .fetch_optional(&mut *tx)
                        .await?;
                    match stored {
                        Some((modified, record)) if modified == r.modified && record == r.record => {
                            outcome.unchanged += 1;
                            continue;
                        }
                        Some(_) => outcome.updated += 1,
                        None => outcome.inserted += 1,
                    }
                    sqlx::query(
                        "INSERT INTO vuln_records (id, source, modified, record) VALUES ($1, $2, $3, $4)
                         ON CONFLICT (id) DO UPDATE SET source = excluded.source,
                             modified = excluded.modified, record = excluded.record",
                    )
                    .bind(&r.id)
                    .bind(&r.source)
                    .bind(&r.modified)
                    .bind(&r.record)
                    .execute(&mut *tx)
                    .await?;
                }
                for (source, updated_at) in newest {
                    sqlx::query(
                        "INSERT INTO vuln_sources (source, updated_at, imported_at, records)
                         VALUES ($1, $2, $3, (SELECT count(*) FROM vuln_records WHERE source = $1))
                         ON CONFLICT (source) DO UPDATE SET
                             updated_at = CASE WHEN excluded.updated_at > vuln_sources.updated_at
                                               THEN excluded.updated_at ELSE vuln_sources.updated_at END,
                             imported_at = excluded.imported_at, records = excluded.records",
                    )
                    .bind(source)
                    .bind(updated_at)
                    .bind(now)
                    .execute(&mut *tx)
                    .await?;
                }
                if outcome.inserted + outcome.updated > 0 {
                    sqlx::query("UPDATE vuln_db_generation SET generation = generation + 1 WHERE id = 1")
                        .execute(&mut *tx)
                        .await?;
                }
                outcome.generation = sqlx::query_scalar::<_, i64>("SELECT generation FROM vuln_db_generation WHERE id = 1")
                    .fetch_one(&mut *tx)
                    .await?;
                tx.commit().await?;
                Ok(outcome)
            }

            async fn vuln_records(&self) -> Result<Vec<String>> {
                let $r = self;
                Ok(sqlx::query_scalar::<_, String>("SELECT record FROM vuln_records ORDER BY id")
                    .fetch_all($reader)
                    .await?)
            }

            async fn vuln_db_generation(&self) -> Result<i64> {
                let $r = self;
                Ok(sqlx::query_scalar::<_, i64>("SELECT generation FROM vuln_db_generation WHERE id = 1")
                    .fetch_one($reader)
                    .await?)
            }

            async fn vuln_sources(&self) -> Result<Vec<VulnSourceRow>> {
                let $r = self;
                Ok(sqlx::query_as::<_, (String, String, i64, i64)>(
                    "SELECT source, updated_at, imported_at, records FROM vuln_sources ORDER BY source",
                )
                .fetch_all($reader)
                .await?
                .into_iter()
                .map(|(source, updated_at, imported_at, records)| VulnSourceRow {
                    source,
                    updated_at,
                    imported_at,
                    records,
                })
                .collect())
            }

            async fn layer_inventory(&self, layer: &Digest) -> Result<Option<String>> {
                let $r = self;
                Ok(sqlx::query_scalar::<_, String>("SELECT inventory FROM layer_inventories WHERE digest = $1")
                    .bind(layer.to_string())
                    .fetch_optional($reader)
                    .await?)
            }

            async fn put_layer_inventory(&self, layer: &Digest, inventory: &str, now: i64) -> Result<()> {
                let $w = self;
                sqlx::query(
                    "INSERT INTO layer_inventories (digest, inventory, created_at) VALUES ($1, $2, $3)
                     ON CONFLICT (digest) DO NOTHING",
                )
                .bind(layer.to_string())
                .bind(inventory)
                .bind(now)
                .execute($writer)
                .await?;
                Ok(())
            }

            async fn replace_layer_inventory(&self, layer: &Digest, inventory: &str, now: i64) -> Result<()> {
                let $w = self;
                sqlx::query(
                    "INSERT INTO layer_inventories (digest, inventory, created_at) VALUES ($1, $2, $3)
                     ON CONFLICT (digest) DO UPDATE SET inventory = excluded.inventory, created_at = excluded.created_at",
                )
                .bind(layer.to_string())
                .bind(inventory)
                .bind(now)
                .execute($writer)
                .await?;
                Ok(())
            }

            async fn start_image_scan(
                &self,
                repo: &RepositoryName,
                digest: &Digest,
                description: &str,
                job: &NewJob,
                now: i64,
                stale_secs: i64,
            ) -> Result<ScanStart> {
                let mut tx = self.begin_write().await?;
                let exists = sqlx::query_scalar::<_, i64>("SELECT id FROM repositories WHERE name = $1")
                    .bind(repo.as_str())
                    .fetch_optional(&mut *tx)
                    .await?;
                if exists.is_none() {
                    return Ok(ScanStart::RepositoryNotFound);
                }
                let started = sqlx::query_scalar::<_, i64>(
                    "INSERT INTO image_scans (repository_id, manifest_digest, status, description, started_at)
                     SELECT id, $2, 'IN_PROGRESS', $3, $4 FROM repositories WHERE name = $1
                     ON CONFLICT (repository_id, manifest_digest) DO UPDATE SET status = 'IN_PROGRESS',
                         description = excluded.description, started_at = excluded.started_at,
                         completed_at = NULL, inventory = NULL, findings = NULL, db_generation = NULL
                     WHERE image_scans.status <> 'IN_PROGRESS' OR image_scans.started_at <= $5
                     RETURNING started_at",
                )
                .bind(repo.as_str())
                .bind(digest.to_string())
                .bind(description)
                .bind(now)
                .bind(now - stale_secs)
                .fetch_optional(&mut *tx)
                .await?;
                if started.is_none() {
                    return Ok(ScanStart::InProgress);
                }
                $enqueue(&mut tx, job, now.saturating_mul(1000)).await?;
                tx.commit().await?;
                Ok(ScanStart::Started)
            }

            async fn finish_image_scan(&self, repo: &RepositoryName, digest: &Digest, started_at: i64, row: &ImageScanRow) -> Result<bool> {
                let $w = self;
                let r = sqlx::query(
                    "UPDATE image_scans SET status = $1, description = $2, completed_at = $3,
                         inventory = $4, findings = $5, db_generation = $6
                     WHERE repository_id = (SELECT id FROM repositories WHERE name = $7)
                       AND manifest_digest = $8 AND started_at = $9",
                )
                .bind(row.status.as_str())
                .bind(&row.description)
                .bind(row.completed_at)
                .bind(&row.inventory)
                .bind(&row.findings)
                .bind(row.db_generation)
                .bind(repo.as_str())
                .bind(digest.to_string())
                .bind(started_at)
                .execute($writer)
                .await?;
                Ok(r.rows_affected() > 0)
            }

            async fn rematch_image_scan(
                &self,
                repo: &RepositoryName,
                digest: &Digest,
                started_at: i64,
                findings: &str,
                db_generation: i64,
                now: i64,
            ) -> Result<bool> {
                let $w = self;
                let r = sqlx::query(
                    "UPDATE image_scans SET findings = $1, db_generation = $2, completed_at = $3
                     WHERE repository_id = (SELECT id FROM repositories WHERE name = $4)
                       AND manifest_digest = $5 AND started_at = $6 AND status = 'COMPLETE'",
                )
                .bind(findings)
                .bind(db_generation)
                .bind(now)
                .bind(repo.as_str())
                .bind(digest.to_string())
                .bind(started_at)
                .execute($writer)
                .await?;
                Ok(r.rows_affected() > 0)
            }

            async fn image_scan(&self, repo: &RepositoryName, digest: &Digest) -> Result<Option<ImageScanRow>> {
                let $r = self;
                sqlx::query_as::<_, ScanTuple>(&format!(
                    "SELECT {SCAN_COLUMNS} FROM image_scans s JOIN repositories r ON r.id = s.repository_id
                     WHERE r.name = $1 AND s.manifest_digest = $2"
                ))
                .bind(repo.as_str())
                .bind(digest.to_string())
                .fetch_optional($reader)
                .await?
                .map(scan_row)
                .transpose()
            }

            async fn forget_image_scan(&self, repo: &RepositoryName, digest: &Digest) -> Result<bool> {
                let $w = self;
                let r = sqlx::query(
                    "DELETE FROM image_scans WHERE repository_id = (SELECT id FROM repositories WHERE name = $1)
                       AND manifest_digest = $2",
                )
                .bind(repo.as_str())
                .bind(digest.to_string())
                .execute($writer)
                .await?;
                Ok(r.rows_affected() > 0)
            }

            async fn stale_image_scans(&self, generation: i64, after: Option<(&str, &str)>, limit: u32) -> Result<Vec<ScannedImage>> {
                let $r = self;
                let (after_repo, after_digest) = after.unwrap_or(("", ""));
                let rows = sqlx::query_as::<_, (String, String, String, String, i64, Option<i64>, Option<String>, Option<String>, Option<i64>)>(&format!(
                    "SELECT r.name, s.manifest_digest, {SCAN_COLUMNS}
                     FROM image_scans s JOIN repositories r ON r.id = s.repository_id
                     WHERE s.status = 'COMPLETE' AND s.db_generation < $1
                       AND (r.name > $2 OR (r.name = $2 AND s.manifest_digest > $3))
                     ORDER BY r.name, s.manifest_digest LIMIT $4"
                ))
                .bind(generation)
                .bind(after_repo)
                .bind(after_digest)
                .bind(i64::from(limit))
                .fetch_all($reader)
                .await?;
                rows.into_iter()
                    .map(|(repository, digest, a, b, c, d, e, f, g)| {
                        Ok(ScannedImage {
                            repository,
                            digest,
                            scan: scan_row((a, b, c, d, e, f, g))?,
                        })
                    })
                    .collect()
            }

            async fn set_scan_on_push(&self, repo: &RepositoryName, scan_on_push: bool) -> Result<bool> {
                let $w = self;
                let r = sqlx::query("UPDATE repositories SET scan_on_push = $1 WHERE name = $2")
                    .bind(scan_on_push)
                    .bind(repo.as_str())
                    .execute($writer)
                    .await?;
                Ok(r.rows_affected() > 0)
            }

            async fn registry_scanning(&self) -> Result<Option<(String, String)>> {
                let $r = self;
                Ok(sqlx::query_as::<_, (String, String)>("SELECT scan_type, rules FROM registry_scanning WHERE id = 1")
                    .fetch_optional($reader)
                    .await?)
            }

            async fn put_registry_scanning(&self, scan_type: &str, rules: &str, now: i64) -> Result<()> {
                let $w = self;
                sqlx::query(
                    "INSERT INTO registry_scanning (id, scan_type, rules, updated_at) VALUES (1, $1, $2, $3)
                     ON CONFLICT (id) DO UPDATE SET scan_type = excluded.scan_type, rules = excluded.rules,
                         updated_at = excluded.updated_at",
                )
                .bind(scan_type)
                .bind(rules)
                .bind(now)
                .execute($writer)
                .await?;
                Ok(())
            }
        }
    };
}

scan_store!(SqliteMeta, reader: |m| &m.reader, writer: |m| &m.writer, enqueue: crate::sqlite_jobs::enqueue);
scan_store!(PgMeta, reader: |m| &m.pool, writer: |m| &m.pool, enqueue: crate::postgres_jobs::enqueue);
