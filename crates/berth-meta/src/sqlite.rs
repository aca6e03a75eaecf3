//! The SQLite backend (embedded default), on `sqlx`.
//!
//! One writer connection and a pool of read-only connections, in WAL mode, so reads
//! never wait for writes and writes are serialised in-process (no `SQLITE_BUSY` upgrade
//! deadlocks). `synchronous = FULL`: a committed transaction survives power loss, so an
//! acknowledged push is durable (DESIGN.md invariant 3). Migrations are embedded.
//!
//! Every write transaction starts with `BEGIN IMMEDIATE`: `berth admin` writes the same
//! file from another process, and a deferred transaction that read before another
//! process committed would fail at its first write (`SQLITE_BUSY_SNAPSHOT`) instead of
//! waiting its turn under the busy timeout.

use crate::changes::{now_ms, Change, ChangeHook};
use crate::{
    IndexChild, ManifestHead, ManifestRow, MetaError, MetaStore, PutOutcome, Referrer, Result,
};
use berth_core::{Digest, ParsedManifest, RepositoryName, Tag};
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};
use sqlx::{ConnectOptions, Sqlite, Transaction};
use std::path::Path;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Read connections kept open.
const READERS: u32 = 8;

/// Bytes SQLite's allocator holds in this process right now (`sqlite3_memory_used`:
/// every connection's page cache, schema and statements), for `/metrics`
/// (`berth_sqlite_memory_used_bytes`): the soak test subtracts it from RSS growth to tell
/// a filling cache from a leak.
pub fn sqlite_memory_used() -> i64 {
    // SAFETY: sqlite3_memory_used takes no arguments and only reads SQLite's own
    // allocator counters (thread-safe in the serialized/multi-thread builds sqlx uses).
    // There is no safe wrapper in sqlx or libsqlite3-sys.
    unsafe { libsqlite3_sys::sqlite3_memory_used() }
}

/// Metadata in one SQLite database file.
pub struct SqliteMeta {
    pub(crate) writer: SqlitePool,
    pub(crate) reader: SqlitePool,
}

/// The current time, epoch seconds.
pub(crate) fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

pub(crate) fn parse_digest(s: String) -> Result<Digest> {
    s.parse()
        .map_err(|e| MetaError::Corrupt(format!("stored digest {s:?}: {e}")))
}

/// Enqueues a change's jobs in its transaction, commits, and tells the hook.
pub(crate) async fn commit_with_jobs(
    mut tx: Transaction<'static, Sqlite>,
    jobs: &[crate::jobs::NewJob],
    hook: &dyn ChangeHook,
) -> Result<()> {
    let now = now_ms();
    for job in jobs {
        crate::sqlite_jobs::enqueue(&mut tx, job, now).await?;
    }
    tx.commit().await?;
    if !jobs.is_empty() {
        hook.committed();
    }
    Ok(())
}

impl SqliteMeta {
    /// Opens (creating if needed) the database at `path` and applies migrations.
    /// Errors: the database cannot be opened or migrated.
    pub async fn open(path: &Path) -> Result<SqliteMeta> {
        // The database holds sealed secrets and the audit trail: owner-only, like the
        // master key. SQLite gives its -wal and -shm files the database file's mode.
        #[cfg(unix)]
        if !path.exists() {
            use std::os::unix::fs::OpenOptionsExt;
            std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(path)
                .map_err(|e| MetaError::Corrupt(format!("creating {}: {e}", path.display())))?;
        }
        let opts = SqliteConnectOptions::new()
            .filename(path)
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Full)
            .foreign_keys(true)
            .busy_timeout(Duration::from_secs(30))
            .pragma("cache_size", "-32768")
            // The first `journal_mode = WAL` on a new file can take a second on a slow disk;
            // that is not worth a warning at the default level.
            .log_slow_statements(log::LevelFilter::Debug, Duration::from_secs(1));
        let writer = SqlitePoolOptions::new()
            .max_connections(1)
            .min_connections(1)
            .connect_with(opts.clone())
            .await?;
        sqlx::migrate!("./migrations/sqlite").run(&writer).await?;
        // No ping before each acquire: an embedded database does not drop connections,
        // and the ping was a measurable share of a blob HEAD.
        let reader = SqlitePoolOptions::new()
            .max_connections(READERS)
            .min_connections(2)
            .test_before_acquire(false)
            .connect_with(opts.read_only(true))
            .await?;
        Ok(SqliteMeta { writer, reader })
    }

    /// Closes both pools, waiting for running queries.
    pub async fn close(&self) {
        self.writer.close().await;
        self.reader.close().await;
    }
}

fn size_mismatch(digest: &Digest, declared: u64, actual: i64) -> MetaError {
    MetaError::SizeMismatch {
        digest: digest.clone(),
        declared,
        actual: actual as u64,
    }
}

/// The repository's id, creating it if allowed (with the creation template that applies,
/// `crate::creation_templates`). Returns (id, created).
async fn ensure_repository(
    tx: &mut Transaction<'_, Sqlite>,
    repo: &RepositoryName,
    create: bool,
) -> Result<(i64, bool)> {
    if let Some((id,)) = sqlx::query_as::<_, (i64,)>("SELECT id FROM repositories WHERE name = ?")
        .bind(repo.as_str())
        .fetch_optional(&mut **tx)
        .await?
    {
        return Ok((id, false));
    }
    if !create {
        return Err(MetaError::RepositoryNotFound(repo.to_string()));
    }
    let (id,) = sqlx::query_as::<_, (i64,)>(
        "INSERT INTO repositories (name, created_at) VALUES (?, ?) RETURNING id",
    )
    .bind(repo.as_str())
    .bind(now())
    .fetch_one(&mut **tx)
    .await?;
    crate::sqlite_creation_templates::apply_template(tx, id, repo, now()).await?;
    Ok((id, true))
}

const MANIFEST_BY_TAG: &str = "SELECT m.digest, m.media_type, m.body FROM repositories r \
    JOIN tags t ON t.repository_id = r.id \
    JOIN manifests m ON m.repository_id = t.repository_id AND m.digest = t.digest \
    WHERE r.name = ? AND t.name = ?";
const MANIFEST_BY_DIGEST: &str = "SELECT m.digest, m.media_type, m.body FROM repositories r \
    JOIN manifests m ON m.repository_id = r.id WHERE r.name = ? AND m.digest = ?";
const HEAD_BY_TAG: &str = "SELECT m.digest, m.media_type, m.size FROM repositories r \
    JOIN tags t ON t.repository_id = r.id \
    JOIN manifests m ON m.repository_id = t.repository_id AND m.digest = t.digest \
    WHERE r.name = ? AND t.name = ?";
const HEAD_BY_DIGEST: &str = "SELECT m.digest, m.media_type, m.size FROM repositories r \
    JOIN manifests m ON m.repository_id = r.id WHERE r.name = ? AND m.digest = ?";

impl SqliteMeta {
    /// [`MetaStore::link_blob`]'s transaction: record, link, touch, release the pin.
    async fn link_pinned(
        &self,
        repo: &RepositoryName,
        digest: &Digest,
        size: u64,
        create: bool,
    ) -> Result<()> {
        let mut tx = self.writer.begin_with("BEGIN IMMEDIATE").await?;
        let (id, _) = ensure_repository(&mut tx, repo, create).await?;
        let d = digest.to_string();
        let now = now();
        sqlx::query(
            "INSERT INTO blobs (digest, size, created_at, touched_at) VALUES (?, ?, ?, ?) \
             ON CONFLICT (digest) DO UPDATE SET touched_at = excluded.touched_at",
        )
        .bind(&d)
        .bind(size as i64)
        .bind(now)
        .bind(now)
        .execute(&mut *tx)
        .await?;
        sqlx::query("INSERT OR IGNORE INTO repository_blobs (repository_id, digest, linked_at) VALUES (?, ?, ?)")
            .bind(id)
            .bind(&d)
            .bind(now)
            .execute(&mut *tx)
            .await?;
        crate::sqlite_gc::release_pin(&mut tx, &d).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn manifest(&self, sql: &str, repo: &str, key: &str) -> Result<Option<ManifestRow>> {
        let row = sqlx::query_as::<_, (String, String, Vec<u8>)>(sql)
            .bind(repo)
            .bind(key)
            .fetch_optional(&self.reader)
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
            .fetch_optional(&self.reader)
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
}

#[async_trait::async_trait]
impl MetaStore for SqliteMeta {
    async fn repository_exists(&self, repo: &RepositoryName) -> Result<bool> {
        Ok(sqlx::query("SELECT 1 FROM repositories WHERE name = ?")
            .bind(repo.as_str())
            .fetch_optional(&self.reader)
            .await?
            .is_some())
    }

    async fn create_repository(&self, repo: &RepositoryName) -> Result<bool> {
        let mut tx = self.writer.begin_with("BEGIN IMMEDIATE").await?;
        let (_, created) = ensure_repository(&mut tx, repo, true).await?;
        tx.commit().await?;
        Ok(created)
    }

    async fn list_repositories(&self, last: Option<&str>, limit: u32) -> Result<Vec<String>> {
        let rows = sqlx::query_as::<_, (String,)>(
            "SELECT name FROM repositories WHERE name > ? ORDER BY name LIMIT ?",
        )
        .bind(last.unwrap_or(""))
        .bind(limit as i64)
        .fetch_all(&self.reader)
        .await?;
        Ok(rows.into_iter().map(|(n,)| n).collect())
    }

    async fn linked_blob(&self, repo: &RepositoryName, digest: &Digest) -> Result<Option<u64>> {
        let row = sqlx::query_as::<_, (i64,)>(
            "SELECT b.size FROM repositories r JOIN repository_blobs rb ON rb.repository_id = r.id \
             JOIN blobs b ON b.digest = rb.digest WHERE r.name = ? AND rb.digest = ?",
        )
        .bind(repo.as_str())
        .bind(digest.to_string())
        .fetch_optional(&self.reader)
        .await?;
        Ok(row.map(|(s,)| s as u64))
    }

    async fn link_blob(
        &self,
        repo: &RepositoryName,
        pin: crate::BlobPin,
        size: u64,
        create: bool,
    ) -> Result<()> {
        let linked = self.link_pinned(repo, pin.digest(), size, create).await;
        if linked.is_err() {
            // The pin would expire anyway; release it now so GC is not held up.
            let _ = crate::GcStore::unpin_blob(self, pin).await;
        }
        linked
    }

    async fn unlink_blob(&self, repo: &RepositoryName, digest: &Digest) -> Result<bool> {
        let r = sqlx::query(
            "DELETE FROM repository_blobs WHERE repository_id = (SELECT id FROM repositories WHERE name = ?) AND digest = ?",
        )
        .bind(repo.as_str())
        .bind(digest.to_string())
        .execute(&self.writer)
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
        let mut tx = self.writer.begin_with("BEGIN IMMEDIATE").await?;
        let (id, created_repository) = ensure_repository(&mut tx, repo, create).await?;
        let mut missing = Vec::new();
        for b in &parsed.blobs {
            let found = sqlx::query_as::<_, (i64,)>(
                "SELECT b.size FROM repository_blobs rb JOIN blobs b ON b.digest = rb.digest \
                 WHERE rb.repository_id = ? AND rb.digest = ?",
            )
            .bind(id)
            .bind(b.digest.to_string())
            .fetch_optional(&mut *tx)
            .await?;
            match found {
                None if !missing.contains(&b.digest) => missing.push(b.digest.clone()),
                Some((size,)) if size as u64 != b.size => {
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
            let found = sqlx::query_as::<_, (i64, i64)>(
                "SELECT size, image_size FROM manifests WHERE repository_id = ? AND digest = ?",
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
        let inserted = sqlx::query(
            "INSERT OR IGNORE INTO manifests (repository_id, digest, media_type, body, size, artifact_type, subject, annotations, pushed_at, image_size) \
             VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        )
        .bind(id)
        .bind(&d)
        .bind(&parsed.media_type)
        .bind(body)
        .bind(body.len() as i64)
        .bind(parsed.artifact_type.as_deref())
        .bind(parsed.subject.as_ref().map(|s| s.digest.to_string()))
        .bind(annotations)
        .bind(now())
        .bind(image_size as i64)
        .execute(&mut *tx)
        .await?
        .rows_affected()
            > 0;
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
                    "INSERT INTO manifest_references (repository_id, manifest, position, kind, target, platform) VALUES (?, ?, ?, ?, ?, ?)",
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
            let prev = sqlx::query_as::<_, (String,)>(
                "SELECT digest FROM tags WHERE repository_id = ? AND name = ?",
            )
            .bind(id)
            .bind(tag.as_str())
            .fetch_optional(&mut *tx)
            .await?;
            if let Some((p,)) = prev {
                if p != d {
                    // Moving a tag: allowed only if the repository's rules say it is
                    // mutable. Checked here, in the transaction that moves it.
                    if let Some(mode) = crate::sqlite_repository::tag_rules(&mut tx, id)
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
            }
            sqlx::query(
                "INSERT INTO tags (repository_id, name, digest, updated_at) VALUES (?, ?, ?, ?) \
                 ON CONFLICT (repository_id, name) DO UPDATE SET digest = excluded.digest, updated_at = excluded.updated_at",
            )
            .bind(id)
            .bind(tag.as_str())
            .bind(&d)
            .bind(now())
            .execute(&mut *tx)
            .await?;
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
        let mut tx = self.writer.begin_with("BEGIN IMMEDIATE").await?;
        let Some((id,)) = sqlx::query_as::<_, (i64,)>("SELECT id FROM repositories WHERE name = ?")
            .bind(repo.as_str())
            .fetch_optional(&mut *tx)
            .await?
        else {
            return Ok(false);
        };
        let d = digest.to_string();
        if let Some((parent,)) = sqlx::query_as::<_, (String,)>(
            "SELECT manifest FROM manifest_references WHERE repository_id = ? AND target = ? AND kind = 'manifest' LIMIT 1",
        )
        .bind(id)
        .bind(&d)
        .fetch_optional(&mut *tx)
        .await?
        {
            return Err(MetaError::Referenced { child: digest.clone(), parent: parse_digest(parent)? });
        }
        // Its blobs may now be unreferenced: GC's grace window starts again (gc.rs).
        crate::sqlite_gc::touch_referenced_blobs(&mut tx, id, Some(&d)).await?;
        // The tags that go with it (ON DELETE CASCADE), for the change's jobs.
        let tags: Vec<String> = sqlx::query_scalar(
            "SELECT name FROM tags WHERE repository_id = ? AND digest = ? ORDER BY name",
        )
        .bind(id)
        .bind(&d)
        .fetch_all(&mut *tx)
        .await?;
        let n = sqlx::query("DELETE FROM manifests WHERE repository_id = ? AND digest = ?")
            .bind(id)
            .bind(&d)
            .execute(&mut *tx)
            .await?
            .rows_affected();
        // The image's scan goes with it (ECR forgets a deleted image's findings).
        sqlx::query("DELETE FROM image_scans WHERE repository_id = ? AND manifest_digest = ?")
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

    async fn delete_tag(
        &self,
        repo: &RepositoryName,
        tag: &Tag,
        hook: &dyn ChangeHook,
    ) -> Result<bool> {
        let mut tx = self.writer.begin_with("BEGIN IMMEDIATE").await?;
        let deleted: Option<String> = sqlx::query_scalar(
            "DELETE FROM tags WHERE repository_id = (SELECT id FROM repositories WHERE name = ?) AND name = ? \
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
        let rows = sqlx::query_as::<_, (String,)>(
            "SELECT t.name FROM repositories r JOIN tags t ON t.repository_id = r.id \
             WHERE r.name = ? AND t.name > ? ORDER BY t.name LIMIT ?",
        )
        .bind(repo.as_str())
        .bind(last.unwrap_or(""))
        .bind(limit as i64)
        .fetch_all(&self.reader)
        .await?;
        Ok(rows.into_iter().map(|(n,)| n).collect())
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
             WHERE r.name = ? AND m.subject = ? AND (? IS NULL OR m.artifact_type = ?) ORDER BY m.pushed_at, m.digest",
        )
        .bind(repo.as_str())
        .bind(subject.to_string())
        .bind(artifact_type)
        .bind(artifact_type)
        .fetch_all(&self.reader)
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
             WHERE r.name = ? AND mr.manifest = ? AND mr.kind = 'manifest' ORDER BY mr.position",
        )
        .bind(repo.as_str())
        .bind(index.to_string())
        .fetch_all(&self.reader)
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
