//! [`RepositoryStore`] for [`PgMeta`]: the columns and table of
//! `migrations/postgres/0003_ecr.sql`, with `sqlite_repository.rs`'s semantics.
//!
//! Concurrency at READ COMMITTED (see [`crate::postgres_content`] for the content side):
//! `delete_repository` locks the repository row `FOR UPDATE` before checking it holds no
//! images, which waits for every push into it (they hold `FOR KEY SHARE`) and makes
//! later pushes wait and then find it gone. `tag_resource`/`untag_resource` lock it
//! `FOR NO KEY UPDATE` (which does not block pushes), so two nodes adding resource tags
//! cannot both pass the per-repository limit. `record_pulls` updates in a fixed
//! (repository, digest) order so concurrent batches cannot deadlock each other.

use crate::postgres_content::{parse_digest, retrying};
use crate::repository::{
    Encryption, ImageKey, ImageRecord, Pull, RepositoryRecord, RepositorySettings, RepositoryStore,
    TagStatus,
};
use crate::sqlite::now;
use crate::{MetaError, PgMeta, Result};
use berth_core::{Digest, RepositoryName, Tag, TagMutability, TagRules};
use sqlx::{Postgres, Transaction};

fn corrupt(what: &str, e: impl std::fmt::Display) -> MetaError {
    MetaError::Corrupt(format!("{what}: {e}"))
}

fn tag(s: &str) -> Result<Tag> {
    Tag::parse(s).map_err(|e| corrupt("stored tag", e))
}

fn status_str(s: TagStatus) -> &'static str {
    match s {
        TagStatus::Tagged => "TAGGED",
        TagStatus::Untagged => "UNTAGGED",
        TagStatus::Any => "ANY",
    }
}

fn rules_from(mode: &str, filters: &str) -> Result<TagRules> {
    Ok(TagRules {
        mode: TagMutability::parse(mode).ok_or_else(|| corrupt("tag mutability", mode))?,
        exclusion_filters: serde_json::from_str(filters)
            .map_err(|e| corrupt("tag mutability filters", e))?,
    })
}

/// The filters as SQLite stores them (a JSON array), so both engines hold the same text.
fn filters_json(rules: &TagRules) -> String {
    serde_json::Value::from(rules.exclusion_filters.clone()).to_string()
}

/// The tag rules of repository `id`, read inside `put_manifest`'s transaction before it
/// moves a tag. A concurrent `set_tag_rules` is ordered either before this read or
/// after the push, both of which SQLite's single writer could also produce.
pub(crate) async fn tag_rules(tx: &mut Transaction<'_, Postgres>, id: i64) -> Result<TagRules> {
    let (mode, filters) = sqlx::query_as::<_, (String, String)>(
        "SELECT tag_mutability, tag_mutability_filters FROM repositories WHERE id = $1",
    )
    .bind(id)
    .fetch_one(&mut **tx)
    .await?;
    rules_from(&mode, &filters)
}

const REPO_COLUMNS: &str = "name, created_at, tag_mutability, tag_mutability_filters, \
    scan_on_push, encryption_type, kms_key";

type RepoTuple = (String, i64, String, String, bool, String, Option<String>);

fn repo_record(t: RepoTuple) -> Result<RepositoryRecord> {
    Ok(RepositoryRecord {
        name: RepositoryName::parse(&t.0).map_err(|e| corrupt("stored repository name", e))?,
        created_at: t.1,
        settings: RepositorySettings {
            tags: rules_from(&t.2, &t.3)?,
            scan_on_push: t.4,
            encryption: Encryption {
                encryption_type: t.5,
                kms_key: t.6,
            },
        },
    })
}

type ImageTuple = (
    String,
    String,
    i64,
    i64,
    Option<String>,
    Option<String>,
    Option<i64>,
    Option<String>,
);

const IMAGE_COLUMNS: &str = "m.digest, m.media_type, m.image_size, m.pushed_at, \
    m.artifact_type, m.subject, m.last_pulled_at, \
    (SELECT string_agg(t.name, ',') FROM tags t \
     WHERE t.repository_id = m.repository_id AND t.digest = m.digest)";

fn image_record(t: ImageTuple) -> Result<ImageRecord> {
    // Tags cannot contain ',' (distribution-spec tag grammar), so the list splits back.
    let mut tags =
        t.7.as_deref()
            .map(|s| s.split(',').map(tag).collect::<Result<Vec<_>>>())
            .transpose()?
            .unwrap_or_default();
    tags.sort();
    Ok(ImageRecord {
        digest: parse_digest(t.0)?,
        media_type: t.1,
        tags,
        size: t.2 as u64,
        pushed_at: t.3,
        artifact_type: t.4,
        subject: t.5.map(parse_digest).transpose()?,
        last_pulled_at: t.6,
    })
}

impl PgMeta {
    async fn repository_id(&self, repo: &RepositoryName) -> Result<i64> {
        sqlx::query_scalar::<_, i64>("SELECT id FROM repositories WHERE name = $1")
            .bind(repo.as_str())
            .fetch_optional(&self.pool)
            .await?
            .ok_or_else(|| MetaError::RepositoryNotFound(repo.to_string()))
    }

    /// One attempt of [`RepositoryStore::record_pulls`].
    async fn record_pulls_once(&self, pulls: &[&Pull]) -> Result<()> {
        let mut tx = self.pool.begin().await?;
        for (repo, d, at) in pulls {
            sqlx::query(
                "UPDATE manifests SET last_pulled_at = GREATEST(COALESCE(last_pulled_at, 0), $1) \
                 WHERE repository_id = (SELECT id FROM repositories WHERE name = $2) AND digest = $3",
            )
            .bind(at)
            .bind(repo.as_str())
            .bind(d.to_string())
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(())
    }
}

/// The repository `repo` with its id, its row locked with `lock` (`FOR UPDATE`, `FOR
/// NO KEY UPDATE`) until the transaction ends.
async fn record_locked(
    tx: &mut Transaction<'_, Postgres>,
    repo: &RepositoryName,
    lock: &str,
) -> Result<Option<(i64, RepositoryRecord)>> {
    let row = sqlx::query_as::<
        _,
        (
            i64,
            String,
            i64,
            String,
            String,
            bool,
            String,
            Option<String>,
        ),
    >(&format!(
        "SELECT id, {REPO_COLUMNS} FROM repositories WHERE name = $1 {lock}"
    ))
    .bind(repo.as_str())
    .fetch_optional(&mut **tx)
    .await?;
    row.map(|r| Ok((r.0, repo_record((r.1, r.2, r.3, r.4, r.5, r.6, r.7))?)))
        .transpose()
}

async fn upsert_resource_tags(
    tx: &mut Transaction<'_, Postgres>,
    id: i64,
    tags: &[(String, String)],
) -> Result<()> {
    for (k, v) in tags {
        sqlx::query(
            "INSERT INTO repository_resource_tags (repository_id, key, value) VALUES ($1, $2, $3) \
             ON CONFLICT (repository_id, key) DO UPDATE SET value = excluded.value",
        )
        .bind(id)
        .bind(k)
        .bind(v)
        .execute(&mut **tx)
        .await?;
    }
    Ok(())
}

#[async_trait::async_trait]
impl RepositoryStore for PgMeta {
    async fn create_repository_with(
        &self,
        repo: &RepositoryName,
        settings: &RepositorySettings,
        tags: &[(String, String)],
    ) -> Result<Option<RepositoryRecord>> {
        let mut tx = self.pool.begin().await?;
        // Two nodes creating one name meet at the unique index: one inserts, the other
        // waits for it and then does nothing (Ok(None), as when it existed before).
        let inserted = sqlx::query_scalar::<_, i64>(
            "INSERT INTO repositories (name, created_at, tag_mutability, tag_mutability_filters, \
             scan_on_push, encryption_type, kms_key) VALUES ($1, $2, $3, $4, $5, $6, $7) \
             ON CONFLICT (name) DO NOTHING RETURNING id",
        )
        .bind(repo.as_str())
        .bind(now())
        .bind(settings.tags.mode.as_str())
        .bind(filters_json(&settings.tags))
        .bind(settings.scan_on_push)
        .bind(&settings.encryption.encryption_type)
        .bind(settings.encryption.kms_key.as_deref())
        .fetch_optional(&mut *tx)
        .await?;
        let Some(id) = inserted else {
            return Ok(None);
        };
        upsert_resource_tags(&mut tx, id, tags).await?;
        let record = record_locked(&mut tx, repo, "").await?.map(|(_, r)| r);
        tx.commit().await?;
        Ok(record)
    }

    async fn repository(&self, repo: &RepositoryName) -> Result<Option<RepositoryRecord>> {
        sqlx::query_as::<_, RepoTuple>(&format!(
            "SELECT {REPO_COLUMNS} FROM repositories WHERE name = $1"
        ))
        .bind(repo.as_str())
        .fetch_optional(&self.pool)
        .await?
        .map(repo_record)
        .transpose()
    }

    async fn repositories(&self, after: Option<&str>, limit: u32) -> Result<Vec<RepositoryRecord>> {
        sqlx::query_as::<_, RepoTuple>(&format!(
            "SELECT {REPO_COLUMNS} FROM repositories WHERE name > $1 ORDER BY name LIMIT $2"
        ))
        .bind(after.unwrap_or(""))
        .bind(limit as i64)
        .fetch_all(&self.pool)
        .await?
        .into_iter()
        .map(repo_record)
        .collect()
    }

    async fn delete_repository(
        &self,
        repo: &RepositoryName,
        force: bool,
        hook: &dyn crate::ChangeHook,
    ) -> Result<Option<RepositoryRecord>> {
        let mut tx = self.pool.begin().await?;
        // FOR UPDATE: waits for pushes into the repository (FOR KEY SHARE) to commit, so
        // the emptiness check below sees their manifests; later pushes wait for this.
        let Some((id, record)) = record_locked(&mut tx, repo, "FOR UPDATE").await? else {
            return Ok(None);
        };
        // The images that go with it (none unless `force`), each with its tags, for the
        // change's jobs: one `ManifestDeleted` per image, as delete_manifest reports.
        // The repository row is locked FOR UPDATE, so no push adds to them meanwhile.
        let rows: Vec<(String, Option<String>)> = sqlx::query_as(
            "SELECT m.digest, t.name FROM manifests m
             LEFT JOIN tags t ON t.repository_id = m.repository_id AND t.digest = m.digest
             WHERE m.repository_id = $1 ORDER BY m.digest COLLATE \"C\", t.name COLLATE \"C\"",
        )
        .bind(id)
        .fetch_all(&mut *tx)
        .await?;
        let mut images: Vec<(String, Vec<String>)> = Vec::new();
        for (digest, tag) in rows {
            if images.last().map(|(d, _)| d != &digest).unwrap_or(true) {
                images.push((digest, Vec::new()));
            }
            if let (Some(t), Some((_, tags))) = (tag, images.last_mut()) {
                tags.push(t);
            }
        }
        if !force {
            let has_images =
                sqlx::query("SELECT 1 FROM manifests WHERE repository_id = $1 LIMIT 1")
                    .bind(id)
                    .fetch_optional(&mut *tx)
                    .await?
                    .is_some();
            if has_images {
                return Err(MetaError::RepositoryNotEmpty(repo.to_string()));
            }
        }
        // Its images' blobs may now be unreferenced: GC's grace window starts again.
        crate::postgres_gc::touch_referenced_blobs(&mut tx, id, None).await?;
        // Tags, manifests, their references, blob links and resource tags go with it
        // (ON DELETE CASCADE); the blobs' bytes stay for garbage collection.
        sqlx::query("DELETE FROM repositories WHERE id = $1")
            .bind(id)
            .execute(&mut *tx)
            .await?;
        // Its repository policy goes in the same transaction (issue 16), so a repository
        // created later under the name starts without one; the identity generation moves
        // so every server reloads its policies.
        let had_policy = sqlx::query("DELETE FROM repository_policies WHERE repository = $1")
            .bind(repo.as_str())
            .execute(&mut *tx)
            .await?
            .rows_affected()
            > 0;
        if had_policy {
            sqlx::query("UPDATE iam_generation SET generation = generation + 1 WHERE id = 1")
                .execute(&mut *tx)
                .await?;
        }
        let mut jobs = Vec::new();
        for (digest, tags) in &images {
            let digest = crate::postgres_content::parse_digest(digest.clone())?;
            jobs.extend(hook.jobs(&crate::changes::Change::ManifestDeleted {
                repository: repo,
                digest: &digest,
                tags,
            }));
        }
        crate::postgres_content::commit_with_jobs(tx, &jobs, hook).await?;
        Ok(Some(record))
    }

    async fn set_tag_rules(&self, repo: &RepositoryName, rules: &TagRules) -> Result<bool> {
        let r = sqlx::query(
            "UPDATE repositories SET tag_mutability = $1, tag_mutability_filters = $2 WHERE name = $3",
        )
        .bind(rules.mode.as_str())
        .bind(filters_json(rules))
        .bind(repo.as_str())
        .execute(&self.pool)
        .await?;
        Ok(r.rows_affected() > 0)
    }

    async fn resource_tags(&self, repo: &RepositoryName) -> Result<Option<Vec<(String, String)>>> {
        // One snapshot for the existence check and the rows.
        let mut tx = self
            .pool
            .begin_with("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
            .await?;
        let Some(id) = sqlx::query_scalar::<_, i64>("SELECT id FROM repositories WHERE name = $1")
            .bind(repo.as_str())
            .fetch_optional(&mut *tx)
            .await?
        else {
            return Ok(None);
        };
        let rows = sqlx::query_as::<_, (String, String)>(
            "SELECT key, value FROM repository_resource_tags WHERE repository_id = $1 ORDER BY key",
        )
        .bind(id)
        .fetch_all(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(Some(rows))
    }

    async fn tag_resource(
        &self,
        repo: &RepositoryName,
        tags: &[(String, String)],
        max: usize,
    ) -> Result<bool> {
        let mut tx = self.pool.begin().await?;
        // FOR NO KEY UPDATE: concurrent TagResource calls on this repository take turns,
        // so the count below includes every committed addition (pushes are not blocked).
        let Some((id, _)) = record_locked(&mut tx, repo, "FOR NO KEY UPDATE").await? else {
            return Ok(false);
        };
        upsert_resource_tags(&mut tx, id, tags).await?;
        let count = sqlx::query_scalar::<_, i64>(
            "SELECT COUNT(*) FROM repository_resource_tags WHERE repository_id = $1",
        )
        .bind(id)
        .fetch_one(&mut *tx)
        .await?;
        if count as usize > max {
            // Dropping the transaction rolls the additions back.
            return Err(MetaError::TooManyTags {
                repository: repo.to_string(),
                count: count as usize,
                max,
            });
        }
        tx.commit().await?;
        Ok(true)
    }

    async fn untag_resource(&self, repo: &RepositoryName, keys: &[String]) -> Result<bool> {
        let mut tx = self.pool.begin().await?;
        let Some((id, _)) = record_locked(&mut tx, repo, "FOR NO KEY UPDATE").await? else {
            return Ok(false);
        };
        for k in keys {
            sqlx::query(
                "DELETE FROM repository_resource_tags WHERE repository_id = $1 AND key = $2",
            )
            .bind(id)
            .bind(k)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(true)
    }

    async fn list_images(
        &self,
        repo: &RepositoryName,
        status: TagStatus,
        after: Option<(&str, &str)>,
        limit: u32,
    ) -> Result<Vec<ImageKey>> {
        let id = self.repository_id(repo).await?;
        let (after_digest, after_tag) = after.unwrap_or(("", ""));
        let rows = sqlx::query_as::<_, (String, Option<String>)>(
            "SELECT m.digest, t.name FROM manifests m \
             LEFT JOIN tags t ON t.repository_id = m.repository_id AND t.digest = m.digest \
             WHERE m.repository_id = $1 \
               AND (m.digest > $2 OR (m.digest = $2 AND COALESCE(t.name, '') > $3)) \
               AND ($4 = 'ANY' OR ($4 = 'TAGGED') = (t.name IS NOT NULL)) \
             ORDER BY m.digest, COALESCE(t.name, '') LIMIT $5",
        )
        .bind(id)
        .bind(after_digest)
        .bind(after_tag)
        .bind(status_str(status))
        .bind(limit as i64)
        .fetch_all(&self.pool)
        .await?;
        rows.into_iter()
            .map(|(d, t)| Ok((parse_digest(d)?, t.as_deref().map(tag).transpose()?)))
            .collect()
    }

    async fn images(
        &self,
        repo: &RepositoryName,
        status: TagStatus,
        after: Option<&str>,
        limit: u32,
    ) -> Result<Vec<ImageRecord>> {
        let id = self.repository_id(repo).await?;
        let rows = sqlx::query_as::<_, ImageTuple>(&format!(
            "SELECT {IMAGE_COLUMNS} FROM manifests m \
             WHERE m.repository_id = $1 AND m.digest > $2 \
               AND ($3 = 'ANY' OR ($3 = 'TAGGED') = EXISTS (SELECT 1 FROM tags x \
                    WHERE x.repository_id = m.repository_id AND x.digest = m.digest)) \
             ORDER BY m.digest LIMIT $4"
        ))
        .bind(id)
        .bind(after.unwrap_or(""))
        .bind(status_str(status))
        .bind(limit as i64)
        .fetch_all(&self.pool)
        .await?;
        rows.into_iter().map(image_record).collect()
    }

    async fn image(&self, repo: &RepositoryName, d: &Digest) -> Result<Option<ImageRecord>> {
        let id = self.repository_id(repo).await?;
        sqlx::query_as::<_, ImageTuple>(&format!(
            "SELECT {IMAGE_COLUMNS} FROM manifests m WHERE m.repository_id = $1 AND m.digest = $2"
        ))
        .bind(id)
        .bind(d.to_string())
        .fetch_optional(&self.pool)
        .await?
        .map(image_record)
        .transpose()
    }

    async fn record_pulls(&self, pulls: &[Pull]) -> Result<()> {
        if pulls.is_empty() {
            return Ok(());
        }
        // Row locks taken in one global order: two nodes flushing overlapping batches
        // wait for each other instead of deadlocking.
        let mut sorted: Vec<&Pull> = pulls.iter().collect();
        sorted.sort_by_key(|p| (p.0.to_string(), p.1.to_string()));
        retrying(|| self.record_pulls_once(&sorted)).await
    }

    async fn blob_in_image(&self, repo: &RepositoryName, d: &Digest) -> Result<bool> {
        Ok(sqlx::query(
            "SELECT 1 FROM repositories r JOIN manifest_references mr ON mr.repository_id = r.id \
             WHERE r.name = $1 AND mr.target = $2 AND mr.kind = 'blob' LIMIT 1",
        )
        .bind(repo.as_str())
        .bind(d.to_string())
        .fetch_optional(&self.pool)
        .await?
        .is_some())
    }
}
