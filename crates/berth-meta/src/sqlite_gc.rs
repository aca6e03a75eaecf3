//! [`GcStore`] for [`SqliteMeta`] (the protocol is in `gc.rs`). SQLite has one writer
//! (`BEGIN IMMEDIATE`), so a claim's checks and its deletes cannot interleave with a
//! push's link or manifest put; the `blob_guards` primary key still does the pin/claim
//! arbitration, the same statement as on PostgreSQL.

use crate::gc::{BlobPin, GcBlob, GcStore};
use crate::sqlite::parse_digest;
use crate::{MetaError, Result, SqliteMeta};
use berth_core::Digest;
use sqlx::{Sqlite, Transaction};

/// Unreferenced (by any manifest of any repository) and untouched since the bound `?`.
const UNREFERENCED: &str = "b.touched_at < ? AND NOT EXISTS \
    (SELECT 1 FROM manifest_references mr WHERE mr.target = b.digest AND mr.kind = 'blob')";

/// Releases one pin of `digest` inside the caller's transaction (the link's).
pub(crate) async fn release_pin(tx: &mut Transaction<'_, Sqlite>, digest: &str) -> Result<()> {
    sqlx::query("UPDATE blob_guards SET pins = pins - 1 WHERE digest = ? AND state = 'pinned'")
        .bind(digest)
        .execute(&mut **tx)
        .await?;
    sqlx::query("DELETE FROM blob_guards WHERE digest = ? AND state = 'pinned' AND pins <= 0")
        .bind(digest)
        .execute(&mut **tx)
        .await?;
    Ok(())
}

/// Sets `touched_at` to now on the blobs that manifest `manifest` of repository `repo`
/// references (every manifest of `repo` when `None`), inside the transaction deleting it.
pub(crate) async fn touch_referenced_blobs(
    tx: &mut Transaction<'_, Sqlite>,
    repo: i64,
    manifest: Option<&str>,
) -> Result<()> {
    sqlx::query(
        "UPDATE blobs SET touched_at = ? WHERE digest IN (SELECT target FROM manifest_references \
         WHERE repository_id = ? AND kind = 'blob' AND (? IS NULL OR manifest = ?))",
    )
    .bind(crate::sqlite::now())
    .bind(repo)
    .bind(manifest)
    .bind(manifest)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

#[async_trait::async_trait]
impl GcStore for SqliteMeta {
    async fn pin_blob(&self, digest: &Digest, now: i64) -> Result<BlobPin> {
        let pinned: Option<i64> = sqlx::query_scalar(
            "INSERT INTO blob_guards (digest, state, pins, owner, updated_at) VALUES (?, 'pinned', 1, NULL, ?) \
             ON CONFLICT (digest) DO UPDATE SET pins = blob_guards.pins + 1, updated_at = excluded.updated_at \
             WHERE blob_guards.state = 'pinned' RETURNING pins",
        )
        .bind(digest.to_string())
        .bind(now)
        .fetch_optional(&self.writer)
        .await?;
        match pinned {
            Some(_) => Ok(BlobPin::new(digest.clone())),
            None => Err(MetaError::BlobBeingCollected(digest.clone())),
        }
    }

    async fn unpin_blob(&self, pin: BlobPin) -> Result<()> {
        let mut tx = self.writer.begin_with("BEGIN IMMEDIATE").await?;
        release_pin(&mut tx, &pin.digest().to_string()).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn gc_candidates(
        &self,
        cutoff: i64,
        after: Option<&Digest>,
        limit: u32,
    ) -> Result<Vec<GcBlob>> {
        let rows: Vec<(String, i64)> = sqlx::query_as(&format!(
            "SELECT b.digest, b.size FROM blobs b WHERE {UNREFERENCED} AND b.digest > ? \
             ORDER BY b.digest LIMIT ?"
        ))
        .bind(cutoff)
        .bind(after.map(|d| d.to_string()).unwrap_or_default())
        .bind(limit as i64)
        .fetch_all(&self.reader)
        .await?;
        rows.into_iter()
            .map(|(d, size)| {
                Ok(GcBlob {
                    digest: parse_digest(d)?,
                    size: size as u64,
                })
            })
            .collect()
    }

    async fn gc_claim_blobs(
        &self,
        digests: &[Digest],
        cutoff: i64,
        owner: &str,
        now: i64,
    ) -> Result<Vec<GcBlob>> {
        let mut tx = self.writer.begin_with("BEGIN IMMEDIATE").await?;
        let mut claimed = Vec::new();
        for digest in digests {
            let d = digest.to_string();
            let Some(size) = sqlx::query_scalar::<_, i64>(&format!(
                "SELECT b.size FROM blobs b WHERE b.digest = ? AND {UNREFERENCED}"
            ))
            .bind(&d)
            .bind(cutoff)
            .fetch_optional(&mut *tx)
            .await?
            else {
                continue;
            };
            let claim = sqlx::query(
                "INSERT INTO blob_guards (digest, state, pins, owner, updated_at) VALUES (?, 'sweeping', 0, ?, ?) \
                 ON CONFLICT (digest) DO NOTHING",
            )
            .bind(&d)
            .bind(owner)
            .bind(now)
            .execute(&mut *tx)
            .await?;
            if claim.rows_affected() == 0 {
                continue; // pinned by a push, or another GC's
            }
            sqlx::query("DELETE FROM repository_blobs WHERE digest = ?")
                .bind(&d)
                .execute(&mut *tx)
                .await?;
            sqlx::query("DELETE FROM blobs WHERE digest = ?")
                .bind(&d)
                .execute(&mut *tx)
                .await?;
            claimed.push(GcBlob {
                digest: digest.clone(),
                size: size as u64,
            });
        }
        tx.commit().await?;
        Ok(claimed)
    }

    async fn gc_unknown_blobs(&self, digests: &[Digest]) -> Result<Vec<Digest>> {
        let mut conn = self.reader.acquire().await?;
        let mut unknown = Vec::new();
        for digest in digests {
            let d = digest.to_string();
            let known = sqlx::query(
                "SELECT 1 FROM blobs WHERE digest = ? UNION ALL SELECT 1 FROM blob_guards WHERE digest = ?",
            )
            .bind(&d)
            .bind(&d)
            .fetch_optional(&mut *conn)
            .await?
            .is_some();
            if !known {
                unknown.push(digest.clone());
            }
        }
        Ok(unknown)
    }

    async fn gc_claim_strays(
        &self,
        digests: &[Digest],
        owner: &str,
        now: i64,
    ) -> Result<Vec<Digest>> {
        let mut tx = self.writer.begin_with("BEGIN IMMEDIATE").await?;
        let mut claimed = Vec::new();
        for digest in digests {
            let r = sqlx::query(
                "INSERT INTO blob_guards (digest, state, pins, owner, updated_at) \
                 SELECT ?1, 'sweeping', 0, ?2, ?3 WHERE NOT EXISTS (SELECT 1 FROM blobs WHERE digest = ?1) \
                 ON CONFLICT (digest) DO NOTHING",
            )
            .bind(digest.to_string())
            .bind(owner)
            .bind(now)
            .execute(&mut *tx)
            .await?;
            if r.rows_affected() > 0 {
                claimed.push(digest.clone());
            }
        }
        tx.commit().await?;
        Ok(claimed)
    }

    async fn gc_held(&self, digests: &[Digest], owner: &str) -> Result<Vec<Digest>> {
        // The writer: the answer must include this process's own latest claims.
        let mut conn = self.writer.acquire().await?;
        let mut held = Vec::new();
        for digest in digests {
            if sqlx::query(
                "SELECT 1 FROM blob_guards WHERE digest = ? AND state = 'sweeping' AND owner = ?",
            )
            .bind(digest.to_string())
            .bind(owner)
            .fetch_optional(&mut *conn)
            .await?
            .is_some()
            {
                held.push(digest.clone());
            }
        }
        Ok(held)
    }

    async fn gc_release(&self, digests: &[Digest], owner: &str) -> Result<()> {
        let mut tx = self.writer.begin_with("BEGIN IMMEDIATE").await?;
        for digest in digests {
            sqlx::query(
                "DELETE FROM blob_guards WHERE digest = ? AND state = 'sweeping' AND owner = ?",
            )
            .bind(digest.to_string())
            .bind(owner)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    async fn gc_take_over_stale(&self, before: i64, owner: &str, now: i64) -> Result<Vec<Digest>> {
        let rows: Vec<String> = sqlx::query_scalar(
            "UPDATE blob_guards SET owner = ?, updated_at = ? \
             WHERE state = 'sweeping' AND updated_at < ? RETURNING digest",
        )
        .bind(owner)
        .bind(now)
        .bind(before)
        .fetch_all(&self.writer)
        .await?;
        rows.into_iter().map(parse_digest).collect()
    }

    async fn gc_expire_pins(&self, before: i64) -> Result<u64> {
        Ok(
            sqlx::query("DELETE FROM blob_guards WHERE state = 'pinned' AND updated_at < ?")
                .bind(before)
                .execute(&self.writer)
                .await?
                .rows_affected(),
        )
    }
}
