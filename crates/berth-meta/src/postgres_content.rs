//! [`MetaStore`] for [`PgMeta`]: repositories, blob links, manifests, tags and referrers
//! (the tables of `migrations/postgres/0001_init.sql`), with the SQLite backend's
//! semantics (`sqlite.rs`) under several concurrent writers.
//!
//! SQLite serialises writers (`BEGIN IMMEDIATE`), so its checks and the writes that
//! depend on them cannot interleave with another writer. Here many nodes write at
//! PostgreSQL's `READ COMMITTED`, where every statement sees what committed before it
//! started; each write therefore locks the rows its checks depend on:
//!
//! - The repository row: writes into a repository hold `FOR KEY SHARE` on it
//!   ([`ensure_repository`]), `delete_repository` takes `FOR UPDATE`, so a repository
//!   cannot be deleted while a push into it is in flight (and the push cannot land in
//!   a deleted repository).
//! - Invariant 2 (a manifest is stored only if every blob and child manifest it
//!   references is in the repository): `put_manifest` reads the blob links and child
//!   manifests `FOR KEY SHARE`, which blocks a concurrent `unlink_blob` or
//!   `delete_manifest` (both delete the row) until the push commits, and makes the
//!   push miss a row whose deletion committed first. `delete_manifest` locks the
//!   manifest `FOR UPDATE` *before* looking for indexes that reference it, so a
//!   concurrent index push either sees the manifest gone or is seen by the check.
//! - Tag immutability: a tag is created with `INSERT … ON CONFLICT DO NOTHING` and an
//!   existing tag is read `FOR UPDATE` before it is moved, so two pushes of one
//!   immutable tag cannot both win (the second sees the first's target).
//! - A deadlock or serialization failure (SQLSTATE `40P01`, `40001`) rolls the whole
//!   transaction back and it is run again ([`retrying`]), a bounded number of times.
//!
//! Reads are single statements on the pool (one snapshot each).

use crate::changes::{now_ms, Change, ChangeHook};
use crate::sqlite::now;
use crate::{
    IndexChild, ManifestHead, ManifestRow, MetaError, MetaStore, PgMeta, PutOutcome, Referrer,
    Result,
};
use berth_core::{Digest, ParsedManifest, RepositoryName, Tag};
use sqlx::{Postgres, Transaction};

/// How many times a transaction that lost a deadlock or a serialization check is run.
const ATTEMPTS: u32 = 5;

pub(crate) fn parse_digest(s: String) -> Result<Digest> {
    s.parse()
        .map_err(|e| MetaError::Corrupt(format!("stored digest {s:?}: {e}")))
}

/// Whether `e` is PostgreSQL aborting a transaction that can simply be run again
/// (`40P01` deadlock detected, `40001` serialization failure).
pub(crate) fn is_retryable(e: &MetaError) -> bool {
    matches!(e, MetaError::Db(sqlx::Error::Database(d))
        if matches!(d.code().as_deref(), Some("40P01") | Some("40001")))
}

/// Runs `attempt` until it succeeds, fails with a non-retryable error, or has run
/// [`ATTEMPTS`] times (then its last error is returned).
pub(crate) async fn retrying<T, F, Fut>(mut attempt: F) -> Result<T>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T>>,
{
    let mut n = 1;
    loop {
        match attempt().await {
            Err(e) if n < ATTEMPTS && is_retryable(&e) => n += 1,
            other => return other,
        }
    }
}

/// Enqueues a change's jobs in its transaction, commits, and tells the hook.
pub(crate) async fn commit_with_jobs(
    mut tx: Transaction<'static, Postgres>,
    jobs: &[crate::jobs::NewJob],
    hook: &dyn ChangeHook,
) -> Result<()> {
    let now = now_ms();
    for job in jobs {
        crate::postgres_jobs::enqueue(&mut tx, job, now).await?;
    }
    tx.commit().await?;
    if !jobs.is_empty() {
        hook.committed();
    }
    Ok(())
}

fn size_mismatch(digest: &Digest, declared: u64, actual: i64) -> MetaError {
    MetaError::SizeMismatch {
        digest: digest.clone(),
        declared,
        actual: actual as u64,
    }
}

/// The repository's id, creating it if allowed (with the creation template that
/// applies, `crate::creation_templates`), with the row held `FOR KEY SHARE` until
/// the transaction ends (so no concurrent `delete_repository` removes it under the
/// caller). Returns (id, created). Concurrent creators of one name meet at the unique
/// index: `ON CONFLICT DO NOTHING` waits for the other and then finds its row.
pub(crate) async fn ensure_repository(
    tx: &mut Transaction<'_, Postgres>,
    repo: &RepositoryName,
    create: bool,
) -> Result<(i64, bool)> {
    loop {
        if let Some(id) = sqlx::query_scalar::<_, i64>(
            "SELECT id FROM repositories WHERE name = $1 FOR KEY SHARE",
        )
        .bind(repo.as_str())
        .fetch_optional(&mut **tx)
        .await?
        {
            return Ok((id, false));
        }
        if !create {
            return Err(MetaError::RepositoryNotFound(repo.to_string()));
        }
        if let Some(id) = sqlx::query_scalar::<_, i64>(
            "INSERT INTO repositories (name, created_at) VALUES ($1, $2) \
             ON CONFLICT (name) DO NOTHING RETURNING id",
        )
        .bind(repo.as_str())
        .bind(now())
        .fetch_optional(&mut **tx)
        .await?
        {
            crate::postgres_creation_templates::apply_template(tx, id, repo, now()).await?;
            return Ok((id, true));
        }
        // Another node created it meanwhile (or created and deleted it): look again.
    }
}

const MANIFEST_BY_TAG: &str = "SELECT m.digest, m.media_type, m.body FROM repositories r \
    JOIN tags t ON t.repository_id = r.id \
    JOIN manifests m ON m.repository_id = t.repository_id AND m.digest = t.digest \
    WHERE r.name = $1 AND t.name = $2";
const MANIFEST_BY_DIGEST: &str = "SELECT m.digest, m.media_type, m.body FROM repositories r \
    JOIN manifests m ON m.repository_id = r.id WHERE r.name = $1 AND m.digest = $2";
const HEAD_BY_TAG: &str = "SELECT m.digest, m.media_type, m.size FROM repositories r \
    JOIN tags t ON t.repository_id = r.id \
    JOIN manifests m ON m.repository_id = t.repository_id AND m.digest = t.digest \
    WHERE r.name = $1 AND t.name = $2";
const HEAD_BY_DIGEST: &str = "SELECT m.digest, m.media_type, m.size FROM repositories r \
    JOIN manifests m ON m.repository_id = r.id WHERE r.name = $1 AND m.digest = $2";

impl PgMeta {
    async fn manifest(&self, sql: &str, repo: &str, key: &str) -> Result<Option<ManifestRow>> {
        let row = sqlx::query_as::<_, (String, String, Vec<u8>)>(sql)
            .bind(repo)
            .bind(key)
            .fetch_optional(&self.pool)
            .await?;
        row.map(|(d, media_type, body)| {
            Ok(ManifestRow {
                digest: parse_digest(d)?,
                media_type,
                body: body.into(),
            })
        })
        .transpose()
    }

    async fn head(&self, sql: &str, repo: &str, key: &str) -> Result<Option<ManifestHead>> {
        let row = sqlx::query_as::<_, (String, String, i64)>(sql)
            .bind(repo)
            .bind(key)
            .fetch_optional(&self.pool)
            .await?;
        row.map(|(d, media_type, size)| {
            Ok(ManifestHead {
                digest: parse_digest(d)?,
                media_type,
                size: size as u64,
            })
        })
        .transpose()
    }

    /// One attempt of [`MetaStore::put_manifest`].
    #[allow(clippy::too_many_arguments)]
    async fn put_manifest_once(
        &self,
        repo: &RepositoryName,
        digest: &Digest,
        parsed: &ParsedManifest,
        body: &[u8],
        tag: Option<&Tag>,
        create: bool,
        hook: &dyn ChangeHook,
    ) -> Result<PutOutcome> {
        let mut tx = self.pool.begin().await?;
        let (id, created_repository) = ensure_repository(&mut tx, repo, create).await?;
        let mut missing = Vec::new();
        for b in &parsed.blobs {
            // FOR KEY SHARE OF rb: the link cannot be deleted (unlink_blob) until this
            // transaction ends, so the manifest never commits without it (invariant 2).
            let found = sqlx::query_scalar::<_, i64>(
                "SELECT b.size FROM repository_blobs rb JOIN blobs b ON b.digest = rb.digest \
                 WHERE rb.repository_id = $1 AND rb.digest = $2 FOR KEY SHARE OF rb",
            )
            .bind(id)
            .bind(b.digest.to_string())
            .fetch_optional(&mut *tx)
            .await?;
            match found {
                None if !missing.contains(&b.digest) => missing.push(b.digest.clone()),
                Some(size) if size as u64 != b.size => {
                    return Err(size_mismatch(&b.digest, b.size, size));
                }
                _ => {}
            }
        }
        if !missing.is_empty() {
            return Err(MetaError::MissingBlobs(missing));
        }
        // ECR's image size: config + layers for an image, the largest child for an index.
        let mut image_size: u64 = parsed.blobs.iter().map(|b| b.size).sum();
        for c in &parsed.children {
            // FOR KEY SHARE: a concurrent delete_manifest of the child waits for this
            // push, then sees the index's reference and refuses (MetaError::Referenced).
            let found = sqlx::query_as::<_, (i64, i64)>(
                "SELECT size, image_size FROM manifests WHERE repository_id = $1 AND digest = $2 \
                 FOR KEY SHARE",
            )
            .bind(id)
            .bind(c.descriptor.digest.to_string())
            .fetch_optional(&mut *tx)
            .await?;
            match found {
                None if !missing.contains(&c.descriptor.digest) => {
                    missing.push(c.descriptor.digest.clone())
                }
                Some((size, _)) if size as u64 != c.descriptor.size => {
                    return Err(size_mismatch(&c.descriptor.digest, c.descriptor.size, size));
                }
                Some((_, child_size)) => image_size = image_size.max(child_size as u64),
                None => {}
            }
        }
        if !missing.is_empty() {
            return Err(MetaError::MissingManifests(missing));
        }
        let d = digest.to_string();
        let annotations = if parsed.annotations.is_empty() {
            None
        } else {
            Some(
                serde_json::to_string(&parsed.annotations)
                    .map_err(|e| MetaError::Corrupt(e.to_string()))?,
            )
        };
        let inserted = loop {
            // A concurrent push of the same manifest: ON CONFLICT waits for it, then
            // does nothing (it committed) or inserts (it rolled back).
            let inserted = sqlx::query(
                "INSERT INTO manifests (repository_id, digest, media_type, body, size, artifact_type, subject, annotations, pushed_at, image_size) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) ON CONFLICT DO NOTHING",
            )
            .bind(id)
            .bind(&d)
            .bind(&parsed.media_type)
            .bind(body)
            .bind(body.len() as i64)
            .bind(parsed.artifact_type.as_deref())
            .bind(parsed.subject.as_ref().map(|s| s.digest.to_string()))
            .bind(&annotations)
            .bind(now())
            .bind(image_size as i64)
            .execute(&mut *tx)
            .await?
            .rows_affected()
                > 0;
            if inserted {
                break true;
            }
            // It existed: hold it (FOR KEY SHARE) so a concurrent delete_manifest cannot
            // remove it before the tag below points at it. If that delete committed
            // in between, insert it again.
            let held = sqlx::query(
                "SELECT 1 FROM manifests WHERE repository_id = $1 AND digest = $2 FOR KEY SHARE",
            )
            .bind(id)
            .bind(&d)
            .fetch_optional(&mut *tx)
            .await?
            .is_some();
            if held {
                break false;
            }
        };
        if inserted {
            let refs = parsed
                .blobs
                .iter()
                .map(|b| ("blob", &b.digest, None))
                .chain(
                    parsed
                        .children
                        .iter()
                        .map(|c| ("manifest", &c.descriptor.digest, c.platform.as_ref())),
                );
            for (pos, (kind, target, platform)) in refs.enumerate() {
                let platform = platform.map(|p| serde_json::to_string(p).unwrap_or_default());
                sqlx::query(
                    "INSERT INTO manifest_references (repository_id, manifest, position, kind, target, platform) \
                     VALUES ($1, $2, $3, $4, $5, $6)",
                )
                .bind(id)
                .bind(&d)
                .bind(pos as i64)
                .bind(kind)
                .bind(target.to_string())
                .bind(platform)
                .execute(&mut *tx)
                .await?;
            }
        }
        let mut previous_tag_target = None;
        let mut tag_unchanged = false;
        if let Some(tag) = tag {
            loop {
                // A new tag: the insert wins or waits for a concurrent creator of the
                // same tag, then falls through to the existing-tag path.
                let created = sqlx::query(
                    "INSERT INTO tags (repository_id, name, digest, updated_at) VALUES ($1, $2, $3, $4) \
                     ON CONFLICT (repository_id, name) DO NOTHING",
                )
                .bind(id)
                .bind(tag.as_str())
                .bind(&d)
                .bind(now())
                .execute(&mut *tx)
                .await?
                .rows_affected()
                    > 0;
                if created {
                    break;
                }
                // An existing tag: locked FOR UPDATE, so the immutability check and the
                // move see the target no other push can change before this commits.
                let Some(p) = sqlx::query_scalar::<_, String>(
                    "SELECT digest FROM tags WHERE repository_id = $1 AND name = $2 FOR UPDATE",
                )
                .bind(id)
                .bind(tag.as_str())
                .fetch_optional(&mut *tx)
                .await?
                else {
                    continue; // deleted in between: create it
                };
                if p != d {
                    if let Some(mode) = crate::postgres_repository::tag_rules(&mut tx, id)
                        .await
                        .map(|rules| rules.is_immutable(tag.as_str()).then_some(rules.mode))?
                    {
                        return Err(MetaError::TagImmutable {
                            repository: repo.to_string(),
                            tag: tag.to_string(),
                            mode,
                        });
                    }
                    previous_tag_target = Some(parse_digest(p)?);
                } else {
                    tag_unchanged = true;
                }
                sqlx::query(
                    "UPDATE tags SET digest = $3, updated_at = $4 WHERE repository_id = $1 AND name = $2",
                )
                .bind(id)
                .bind(tag.as_str())
                .bind(&d)
                .bind(now())
                .execute(&mut *tx)
                .await?;
                break;
            }
        }
        let changed = inserted || (tag.is_some() && !tag_unchanged);
        let jobs = if changed {
            hook.jobs(&Change::ManifestPut {
                repository: repo,
                digest,
                tag,
                media_type: &parsed.media_type,
                manifest_existed: !inserted,
                previous_tag_target: previous_tag_target.as_ref(),
            })
        } else {
            Vec::new()
        };
        commit_with_jobs(tx, &jobs, hook).await?;
        Ok(PutOutcome {
            created_repository,
            previous_tag_target,
            manifest_existed: !inserted,
            tag_unchanged,
        })
    }

    /// One attempt of [`MetaStore::link_blob`]: record (or touch) the blob, link it,
    /// release the pin. The blob row is written first: a GC claiming it holds the row
    /// `FOR UPDATE` from its first statement, so the two are ordered by that lock (see
    /// `postgres_gc.rs`), and the pin is still there while GC looks for it.
    async fn link_pinned(
        &self,
        repo: &RepositoryName,
        digest: &Digest,
        size: u64,
        create: bool,
    ) -> Result<()> {
        let mut tx = self.pool.begin().await?;
        let (id, _) = ensure_repository(&mut tx, repo, create).await?;
        let d = digest.to_string();
        let now = now();
        sqlx::query(
            "INSERT INTO blobs (digest, size, created_at, touched_at) VALUES ($1, $2, $3, $3) \
             ON CONFLICT (digest) DO UPDATE SET touched_at = EXCLUDED.touched_at",
        )
        .bind(&d)
        .bind(size as i64)
        .bind(now)
        .execute(&mut *tx)
        .await?;
        sqlx::query(
            "INSERT INTO repository_blobs (repository_id, digest, linked_at) VALUES ($1, $2, $3) \
             ON CONFLICT DO NOTHING",
        )
        .bind(id)
        .bind(&d)
        .bind(now)
        .execute(&mut *tx)
        .await?;
        crate::postgres_gc::release_pin(&mut tx, &d).await?;
        tx.commit().await?;
        Ok(())
    }

    /// One attempt of [`MetaStore::delete_manifest`].
    async fn delete_manifest_once(
        &self,
        repo: &RepositoryName,
        digest: &Digest,
        hook: &dyn ChangeHook,
    ) -> Result<bool> {
        let mut tx = self.pool.begin().await?;
        let Some(id) = sqlx::query_scalar::<_, i64>(
            "SELECT id FROM repositories WHERE name = $1 FOR KEY SHARE",
        )
        .bind(repo.as_str())
        .fetch_optional(&mut *tx)
        .await?
        else {
            return Ok(false);
        };
        let d = digest.to_string();
        // Lock the manifest first, then look for indexes referencing it: an index push
        // holding it (FOR KEY SHARE) makes this wait and then see its reference; one
        // that starts later waits for this delete and then finds the child missing.
        let exists = sqlx::query(
            "SELECT 1 FROM manifests WHERE repository_id = $1 AND digest = $2 FOR UPDATE",
        )
        .bind(id)
        .bind(&d)
        .fetch_optional(&mut *tx)
        .await?
        .is_some();
        if !exists {
            return Ok(false);
        }
        if let Some(parent) = sqlx::query_scalar::<_, String>(
            "SELECT manifest FROM manifest_references WHERE repository_id = $1 AND target = $2 AND kind = 'manifest' LIMIT 1",
        )
        .bind(id)
        .bind(&d)
        .fetch_optional(&mut *tx)
        .await?
        {
            return Err(MetaError::Referenced {
                child: digest.clone(),
                parent: parse_digest(parent)?,
            });
        }
        // Its blobs may now be unreferenced: GC's grace window starts again (gc.rs).
        crate::postgres_gc::touch_referenced_blobs(&mut tx, id, Some(&d)).await?;
        // The tags that go with it (ON DELETE CASCADE), for the change's jobs, locked:
        // a tag being moved onto this manifest waits on the manifest lock above, and
        // one being moved off it makes this wait and then drops out (READ COMMITTED
        // re-checks a locked row), so the list is exactly what the delete removes.
        let tags: Vec<String> = sqlx::query_scalar(
            "SELECT name FROM tags WHERE repository_id = $1 AND digest = $2 ORDER BY name FOR UPDATE",
        )
        .bind(id)
        .bind(&d)
        .fetch_all(&mut *tx)
        .await?;
        let n = sqlx::query("DELETE FROM manifests WHERE repository_id = $1 AND digest = $2")
            .bind(id)
            .bind(&d)
            .execute(&mut *tx)
            .await?
            .rows_affected();
        // The image's scan goes with it (ECR forgets a deleted image's findings).
        sqlx::query("DELETE FROM image_scans WHERE repository_id = $1 AND manifest_digest = $2")
            .bind(id)
            .bind(&d)
            .execute(&mut *tx)
            .await?;
        let jobs = if n > 0 {
            hook.jobs(&Change::ManifestDeleted {
                repository: repo,
                digest,
                tags: &tags,
            })
        } else {
            Vec::new()
        };
        commit_with_jobs(tx, &jobs, hook).await?;
        Ok(n > 0)
    }
}

#[async_trait::async_trait]
impl MetaStore for PgMeta {
    async fn repository_exists(&self, repo: &RepositoryName) -> Result<bool> {
        Ok(sqlx::query("SELECT 1 FROM repositories WHERE name = $1")
            .bind(repo.as_str())
            .fetch_optional(&self.pool)
            .await?
            .is_some())
    }

    async fn create_repository(&self, repo: &RepositoryName) -> Result<bool> {
        let mut tx = self.pool.begin().await?;
        let (_, created) = ensure_repository(&mut tx, repo, true).await?;
        tx.commit().await?;
        Ok(created)
    }

    async fn list_repositories(&self, last: Option<&str>, limit: u32) -> Result<Vec<String>> {
        Ok(sqlx::query_scalar::<_, String>(
            "SELECT name FROM repositories WHERE name > $1 ORDER BY name LIMIT $2",
        )
        .bind(last.unwrap_or(""))
        .bind(limit as i64)
        .fetch_all(&self.pool)
        .await?)
    }

    async fn linked_blob(&self, repo: &RepositoryName, digest: &Digest) -> Result<Option<u64>> {
        let row = sqlx::query_scalar::<_, i64>(
            "SELECT b.size FROM repositories r JOIN repository_blobs rb ON rb.repository_id = r.id \
             JOIN blobs b ON b.digest = rb.digest WHERE r.name = $1 AND rb.digest = $2",
        )
        .bind(repo.as_str())
        .bind(digest.to_string())
        .fetch_optional(&self.pool)
        .await?;
        Ok(row.map(|s| s as u64))
    }

    async fn link_blob(
        &self,
        repo: &RepositoryName,
        pin: crate::BlobPin,
        size: u64,
        create: bool,
    ) -> Result<()> {
        let linked = retrying(|| self.link_pinned(repo, pin.digest(), size, create)).await;
        if linked.is_err() {
            // The pin would expire anyway; release it now so GC is not held up.
            let _ = crate::GcStore::unpin_blob(self, pin).await;
        }
        linked
    }

    async fn unlink_blob(&self, repo: &RepositoryName, digest: &Digest) -> Result<bool> {
        // One statement: it waits for pushes holding the link (FOR KEY SHARE).
        let r = sqlx::query(
            "DELETE FROM repository_blobs WHERE repository_id = (SELECT id FROM repositories WHERE name = $1) AND digest = $2",
        )
        .bind(repo.as_str())
        .bind(digest.to_string())
        .execute(&self.pool)
        .await?;
        Ok(r.rows_affected() > 0)
    }

    async fn put_manifest(
        &self,
        repo: &RepositoryName,
        digest: &Digest,
        parsed: &ParsedManifest,
        body: &[u8],
        tag: Option<&Tag>,
        create: bool,
        hook: &dyn ChangeHook,
    ) -> Result<PutOutcome> {
        retrying(|| self.put_manifest_once(repo, digest, parsed, body, tag, create, hook)).await
    }

    async fn manifest_by_tag(
        &self,
        repo: &RepositoryName,
        tag: &Tag,
    ) -> Result<Option<ManifestRow>> {
        self.manifest(MANIFEST_BY_TAG, repo.as_str(), tag.as_str())
            .await
    }

    async fn manifest_by_digest(
        &self,
        repo: &RepositoryName,
        digest: &Digest,
    ) -> Result<Option<ManifestRow>> {
        self.manifest(MANIFEST_BY_DIGEST, repo.as_str(), &digest.to_string())
            .await
    }

    async fn manifest_head_by_tag(
        &self,
        repo: &RepositoryName,
        tag: &Tag,
    ) -> Result<Option<ManifestHead>> {
        self.head(HEAD_BY_TAG, repo.as_str(), tag.as_str()).await
    }

    async fn manifest_head_by_digest(
        &self,
        repo: &RepositoryName,
        digest: &Digest,
    ) -> Result<Option<ManifestHead>> {
        self.head(HEAD_BY_DIGEST, repo.as_str(), &digest.to_string())
            .await
    }

    async fn delete_manifest(
        &self,
        repo: &RepositoryName,
        digest: &Digest,
        hook: &dyn ChangeHook,
    ) -> Result<bool> {
        retrying(|| self.delete_manifest_once(repo, digest, hook)).await
    }

    async fn delete_tag(
        &self,
        repo: &RepositoryName,
        tag: &Tag,
        hook: &dyn ChangeHook,
    ) -> Result<bool> {
        let mut tx = self.pool.begin().await?;
        // One statement: DELETE … RETURNING locks and removes the row atomically, so
        // the digest it returns is the one the tag pointed at when it went.
        let deleted: Option<String> = sqlx::query_scalar(
            "DELETE FROM tags WHERE repository_id = (SELECT id FROM repositories WHERE name = $1) AND name = $2 \
             RETURNING digest",
        )
        .bind(repo.as_str())
        .bind(tag.as_str())
        .fetch_optional(&mut *tx)
        .await?;
        let jobs = match &deleted {
            Some(d) => hook.jobs(&Change::TagDeleted {
                repository: repo,
                tag,
                digest: &parse_digest(d.clone())?,
            }),
            None => Vec::new(),
        };
        commit_with_jobs(tx, &jobs, hook).await?;
        Ok(deleted.is_some())
    }

    async fn list_tags(
        &self,
        repo: &RepositoryName,
        last: Option<&str>,
        limit: u32,
    ) -> Result<Vec<String>> {
        Ok(sqlx::query_scalar::<_, String>(
            "SELECT t.name FROM repositories r JOIN tags t ON t.repository_id = r.id \
             WHERE r.name = $1 AND t.name > $2 ORDER BY t.name LIMIT $3",
        )
        .bind(repo.as_str())
        .bind(last.unwrap_or(""))
        .bind(limit as i64)
        .fetch_all(&self.pool)
        .await?)
    }

    async fn referrers(
        &self,
        repo: &RepositoryName,
        subject: &Digest,
        artifact_type: Option<&str>,
    ) -> Result<Vec<Referrer>> {
        let rows = sqlx::query_as::<_, (String, String, i64, Option<String>, Option<String>)>(
            "SELECT m.media_type, m.digest, m.size, m.artifact_type, m.annotations FROM repositories r \
             JOIN manifests m ON m.repository_id = r.id \
             WHERE r.name = $1 AND m.subject = $2 AND ($3::text IS NULL OR m.artifact_type = $3) \
             ORDER BY m.pushed_at, m.digest",
        )
        .bind(repo.as_str())
        .bind(subject.to_string())
        .bind(artifact_type)
        .fetch_all(&self.pool)
        .await?;
        rows.into_iter()
            .map(|(media_type, d, size, artifact_type, annotations)| {
                Ok(Referrer {
                    media_type,
                    digest: parse_digest(d)?,
                    size: size as u64,
                    artifact_type,
                    annotations,
                })
            })
            .collect()
    }

    async fn index_children(
        &self,
        repo: &RepositoryName,
        index: &Digest,
    ) -> Result<Vec<IndexChild>> {
        let rows = sqlx::query_as::<_, (String, Option<String>)>(
            "SELECT mr.target, mr.platform FROM repositories r JOIN manifest_references mr ON mr.repository_id = r.id \
             WHERE r.name = $1 AND mr.manifest = $2 AND mr.kind = 'manifest' ORDER BY mr.position",
        )
        .bind(repo.as_str())
        .bind(index.to_string())
        .fetch_all(&self.pool)
        .await?;
        rows.into_iter()
            .map(|(d, p)| {
                let platform = p
                    .map(|p| {
                        serde_json::from_str(&p)
                            .map_err(|e| MetaError::Corrupt(format!("platform {p:?}: {e}")))
                    })
                    .transpose()?;
                Ok(IndexChild {
                    digest: parse_digest(d)?,
                    platform,
                })
            })
            .collect()
    }
}
