//! [`GcStore`] for [`PgMeta`] (the protocol is in `gc.rs`), with many nodes writing at
//! `READ COMMITTED`. What orders a claim against concurrent pushes:
//!
//! - *Pin against claim:* both are one `INSERT … ON CONFLICT` on `blob_guards`' primary
//!   key. PostgreSQL makes a second insert of one key wait for the first's transaction
//!   and then see its row, so exactly one of a pin and a claim of a digest exists.
//! - *Manifest push against claim:* `put_manifest` holds each blob link it checks
//!   `FOR KEY SHARE`. A claim first locks the candidates' `blobs` rows and then all
//!   their links `FOR UPDATE` (in digest order), which waits for every push holding a
//!   link; only then, in a new statement (so a new snapshot that sees those pushes'
//!   manifests), does it check that nothing references the blob. A push that starts
//!   later waits on the claim's locks and then finds the link deleted
//!   (`MANIFEST_BLOB_UNKNOWN`).
//! - *Link against claim:* `link_blob` upserts the `blobs` row before it releases its
//!   pin. If it wrote the row first, the claim's `FOR UPDATE` waits for it and then sees
//!   the new `touched_at`; if the claim locked the row first, the link waits, and the
//!   claim still finds the pin. A blob without a row is never a candidate; a stray
//!   claim inserts its guard first and then checks for a row in a later statement.
//!
//! Deadlocks (`40P01`) between these lock orders are rerun by `retrying`.

use crate::gc::{BlobPin, GcBlob, GcStore};
use crate::postgres_content::{parse_digest, retrying};
use crate::{MetaError, PgMeta, Result};
use berth_core::Digest;
use sqlx::{Postgres, Transaction};

/// Unreferenced (by any manifest of any repository) and untouched since `$1`.
const UNREFERENCED: &str = "b.touched_at < $1 AND NOT EXISTS \
    (SELECT 1 FROM manifest_references mr WHERE mr.target = b.digest AND mr.kind = 'blob')";

/// Releases one pin of `digest` inside the caller's transaction (the link's).
pub(crate) async fn release_pin(tx: &mut Transaction<'_, Postgres>, digest: &str) -> Result<()> {
    sqlx::query("UPDATE blob_guards SET pins = pins - 1 WHERE digest = $1 AND state = 'pinned'")
        .bind(digest)
        .execute(&mut **tx)
        .await?;
    sqlx::query("DELETE FROM blob_guards WHERE digest = $1 AND state = 'pinned' AND pins <= 0")
        .bind(digest)
        .execute(&mut **tx)
        .await?;
    Ok(())
}

/// Sets `touched_at` to now on the blobs that manifest `manifest` of repository `repo`
/// references (every manifest of `repo` when `None`), inside the transaction deleting
/// it; rows are locked in digest order so two deletes cannot deadlock on them.
pub(crate) async fn touch_referenced_blobs(
    tx: &mut Transaction<'_, Postgres>,
    repo: i64,
    manifest: Option<&str>,
) -> Result<()> {
    sqlx::query(
        "UPDATE blobs SET touched_at = $1 WHERE digest IN (SELECT digest FROM blobs WHERE digest IN \
         (SELECT target FROM manifest_references WHERE repository_id = $2 AND kind = 'blob' \
          AND ($3::text IS NULL OR manifest = $3)) ORDER BY digest FOR NO KEY UPDATE)",
    )
    .bind(crate::sqlite::now())
    .bind(repo)
    .bind(manifest)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

fn strings(digests: &[Digest]) -> Vec<String> {
    digests.iter().map(|d| d.to_string()).collect()
}

fn digests(rows: Vec<String>) -> Result<Vec<Digest>> {
    rows.into_iter().map(parse_digest).collect()
}

impl PgMeta {
    /// One attempt of [`GcStore::gc_claim_blobs`].
    async fn claim_blobs_once(
        &self,
        digests: &[String],
        cutoff: i64,
        owner: &str,
        now: i64,
    ) -> Result<Vec<GcBlob>> {
        let mut tx = self.pool.begin().await?;
        sqlx::query("SELECT 1 FROM blobs WHERE digest = ANY($1) ORDER BY digest FOR UPDATE")
            .bind(digests)
            .fetch_all(&mut *tx)
            .await?;
        sqlx::query(
            "SELECT 1 FROM repository_blobs WHERE digest = ANY($1) ORDER BY digest, repository_id FOR UPDATE",
        )
        .bind(digests)
        .fetch_all(&mut *tx)
        .await?;
        // A new statement: a new snapshot, with every push that held a link committed.
        let unreferenced: Vec<(String, i64)> = sqlx::query_as(&format!(
            "SELECT b.digest, b.size FROM blobs b WHERE {UNREFERENCED} AND b.digest = ANY($2) ORDER BY b.digest"
        ))
        .bind(cutoff)
        .bind(digests)
        .fetch_all(&mut *tx)
        .await?;
        let names: Vec<String> = unreferenced.iter().map(|(d, _)| d.clone()).collect();
        let claimed: Vec<String> = sqlx::query_scalar(
            "INSERT INTO blob_guards (digest, state, pins, owner, updated_at) \
             SELECT d, 'sweeping', 0, $2, $3 FROM unnest($1::text[]) AS d \
             ON CONFLICT (digest) DO NOTHING RETURNING digest",
        )
        .bind(&names)
        .bind(owner)
        .bind(now)
        .fetch_all(&mut *tx)
        .await?;
        sqlx::query("DELETE FROM repository_blobs WHERE digest = ANY($1)")
            .bind(&claimed)
            .execute(&mut *tx)
            .await?;
        sqlx::query("DELETE FROM blobs WHERE digest = ANY($1)")
            .bind(&claimed)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        unreferenced
            .into_iter()
            .filter(|(d, _)| claimed.contains(d))
            .map(|(d, size)| {
                Ok(GcBlob {
                    digest: parse_digest(d)?,
                    size: size as u64,
                })
            })
            .collect()
    }

    /// One attempt of [`GcStore::gc_claim_strays`].
    async fn claim_strays_once(
        &self,
        digests: &[String],
        owner: &str,
        now: i64,
    ) -> Result<Vec<String>> {
        let mut tx = self.pool.begin().await?;
        // The guard first: from here on no push can pin these digests ...
        let claimed: Vec<String> = sqlx::query_scalar(
            "INSERT INTO blob_guards (digest, state, pins, owner, updated_at) \
             SELECT d, 'sweeping', 0, $2, $3 FROM unnest($1::text[]) AS d \
             ON CONFLICT (digest) DO NOTHING RETURNING digest",
        )
        .bind(digests)
        .bind(owner)
        .bind(now)
        .fetch_all(&mut *tx)
        .await?;
        // ... and a link that released its pin before has committed its row: drop
        // the claims of digests that have one.
        let linked: Vec<String> = sqlx::query_scalar(
            "DELETE FROM blob_guards g WHERE g.digest = ANY($1) AND g.owner = $2 \
             AND EXISTS (SELECT 1 FROM blobs b WHERE b.digest = g.digest) RETURNING g.digest",
        )
        .bind(&claimed)
        .bind(owner)
        .fetch_all(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(claimed
            .into_iter()
            .filter(|d| !linked.contains(d))
            .collect())
    }
}

#[async_trait::async_trait]
impl GcStore for PgMeta {
    async fn pin_blob(&self, digest: &Digest, now: i64) -> Result<BlobPin> {
        let pinned: Option<i64> = sqlx::query_scalar(
            "INSERT INTO blob_guards (digest, state, pins, owner, updated_at) VALUES ($1, 'pinned', 1, NULL, $2) \
             ON CONFLICT (digest) DO UPDATE SET pins = blob_guards.pins + 1, updated_at = EXCLUDED.updated_at \
             WHERE blob_guards.state = 'pinned' RETURNING pins",
        )
        .bind(digest.to_string())
        .bind(now)
        .fetch_optional(&self.pool)
        .await?;
        match pinned {
            Some(_) => Ok(BlobPin::new(digest.clone())),
            None => Err(MetaError::BlobBeingCollected(digest.clone())),
        }
    }

    async fn unpin_blob(&self, pin: BlobPin) -> Result<()> {
        let d = pin.digest().to_string();
        retrying(|| async {
            let mut tx = self.pool.begin().await?;
            release_pin(&mut tx, &d).await?;
            tx.commit().await?;
            Ok(())
        })
        .await
    }

    async fn gc_candidates(
        &self,
        cutoff: i64,
        after: Option<&Digest>,
        limit: u32,
    ) -> Result<Vec<GcBlob>> {
        let rows: Vec<(String, i64)> = sqlx::query_as(&format!(
            "SELECT b.digest, b.size FROM blobs b WHERE {UNREFERENCED} AND b.digest > $2 \
             ORDER BY b.digest LIMIT $3"
        ))
        .bind(cutoff)
        .bind(after.map(|d| d.to_string()).unwrap_or_default())
        .bind(limit as i64)
        .fetch_all(&self.pool)
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
        let names = strings(digests);
        retrying(|| self.claim_blobs_once(&names, cutoff, owner, now)).await
    }

    async fn gc_unknown_blobs(&self, digests: &[Digest]) -> Result<Vec<Digest>> {
        let rows: Vec<String> = sqlx::query_scalar(
            "SELECT d FROM unnest($1::text[]) AS d WHERE NOT EXISTS (SELECT 1 FROM blobs WHERE digest = d) \
             AND NOT EXISTS (SELECT 1 FROM blob_guards WHERE digest = d)",
        )
        .bind(strings(digests))
        .fetch_all(&self.pool)
        .await?;
        self::digests(rows)
    }

    async fn gc_claim_strays(
        &self,
        digests: &[Digest],
        owner: &str,
        now: i64,
    ) -> Result<Vec<Digest>> {
        let names = strings(digests);
        let claimed = retrying(|| self.claim_strays_once(&names, owner, now)).await?;
        self::digests(claimed)
    }

    async fn gc_held(&self, digests: &[Digest], owner: &str) -> Result<Vec<Digest>> {
        let rows: Vec<String> = sqlx::query_scalar(
            "SELECT digest FROM blob_guards WHERE digest = ANY($1) AND state = 'sweeping' AND owner = $2",
        )
        .bind(strings(digests))
        .bind(owner)
        .fetch_all(&self.pool)
        .await?;
        self::digests(rows)
    }

    async fn gc_release(&self, digests: &[Digest], owner: &str) -> Result<()> {
        sqlx::query(
            "DELETE FROM blob_guards WHERE digest = ANY($1) AND state = 'sweeping' AND owner = $2",
        )
        .bind(strings(digests))
        .bind(owner)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    async fn gc_take_over_stale(&self, before: i64, owner: &str, now: i64) -> Result<Vec<Digest>> {
        let rows: Vec<String> = sqlx::query_scalar(
            "UPDATE blob_guards SET owner = $1, updated_at = $2 \
             WHERE state = 'sweeping' AND updated_at < $3 RETURNING digest",
        )
        .bind(owner)
        .bind(now)
        .bind(before)
        .fetch_all(&self.pool)
        .await?;
        self::digests(rows)
    }

    async fn gc_expire_pins(&self, before: i64) -> Result<u64> {
        Ok(
            sqlx::query("DELETE FROM blob_guards WHERE state = 'pinned' AND updated_at < $1")
                .bind(before)
                .execute(&self.pool)
                .await?
                .rows_affected(),
        )
    }
}
