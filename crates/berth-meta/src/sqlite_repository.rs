//! [`RepositoryStore`] for [`SqliteMeta`]: the columns and table of migration 0003.

use crate::repository::{
    Encryption, ImageKey, ImageRecord, Pull, RepositoryRecord, RepositorySettings, RepositoryStore,
    TagStatus,
};
use crate::{MetaError, Result, SqliteMeta};
use berth_core::{Digest, RepositoryName, Tag, TagMutability, TagRules};
use sqlx::{Sqlite, Transaction};
use std::time::{SystemTime, UNIX_EPOCH};

fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

fn corrupt(what: &str, e: impl std::fmt::Display) -> MetaError {
    MetaError::Corrupt(format!("{what}: {e}"))
}

fn digest(s: String) -> Result<Digest> {
    s.parse()
        .map_err(|e| corrupt(&format!("stored digest {s:?}"), e))
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

fn filters_json(rules: &TagRules) -> String {
    serde_json::Value::from(rules.exclusion_filters.clone()).to_string()
}

/// The tag rules of repository `id`, read inside a write transaction (used by
/// `put_manifest` before it moves a tag).
pub(crate) async fn tag_rules(tx: &mut Transaction<'_, Sqlite>, id: i64) -> Result<TagRules> {
    let (mode, filters) = sqlx::query_as::<_, (String, String)>(
        "SELECT tag_mutability, tag_mutability_filters FROM repositories WHERE id = ?",
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
    (SELECT group_concat(t.name, ',') FROM tags t \
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
        digest: digest(t.0)?,
        media_type: t.1,
        tags,
        size: t.2 as u64,
        pushed_at: t.3,
        artifact_type: t.4,
        subject: t.5.map(digest).transpose()?,
        last_pulled_at: t.6,
    })
}

impl SqliteMeta {
    async fn repository_id(&self, repo: &RepositoryName) -> Result<i64> {
        sqlx::query_as::<_, (i64,)>("SELECT id FROM repositories WHERE name = ?")
            .bind(repo.as_str())
            .fetch_optional(&self.reader)
            .await?
            .map(|(id,)| id)
            .ok_or_else(|| MetaError::RepositoryNotFound(repo.to_string()))
    }
}

async fn record_in(
    tx: &mut Transaction<'_, Sqlite>,
    repo: &RepositoryName,
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
        "SELECT id, {REPO_COLUMNS} FROM repositories WHERE name = ?"
    ))
    .bind(repo.as_str())
    .fetch_optional(&mut **tx)
    .await?;
    row.map(|r| Ok((r.0, repo_record((r.1, r.2, r.3, r.4, r.5, r.6, r.7))?)))
        .transpose()
}

#[async_trait::async_trait]
impl RepositoryStore for SqliteMeta {
    async fn create_repository_with(
        &self,
        repo: &RepositoryName,
        settings: &RepositorySettings,
        tags: &[(String, String)],
    ) -> Result<Option<RepositoryRecord>> {
        let mut tx = self.writer.begin_with("BEGIN IMMEDIATE").await?;
        let inserted = sqlx::query_as::<_, (i64,)>(
            "INSERT INTO repositories (name, created_at, tag_mutability, tag_mutability_filters, \
             scan_on_push, encryption_type, kms_key) VALUES (?, ?, ?, ?, ?, ?, ?) \
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
        let Some((id,)) = inserted else {
            return Ok(None);
        };
        for (k, v) in tags {
            sqlx::query(
                "INSERT INTO repository_resource_tags (repository_id, key, value) VALUES (?, ?, ?) \
                 ON CONFLICT (repository_id, key) DO UPDATE SET value = excluded.value",
            )
            .bind(id)
            .bind(k)
            .bind(v)
            .execute(&mut *tx)
            .await?;
        }
        let record = record_in(&mut tx, repo).await?.map(|(_, r)| r);
        tx.commit().await?;
        Ok(record)
    }

    async fn repository(&self, repo: &RepositoryName) -> Result<Option<RepositoryRecord>> {
        sqlx::query_as::<_, RepoTuple>(&format!(
            "SELECT {REPO_COLUMNS} FROM repositories WHERE name = ?"
        ))
        .bind(repo.as_str())
        .fetch_optional(&self.reader)
        .await?
        .map(repo_record)
        .transpose()
    }

    async fn repositories(&self, after: Option<&str>, limit: u32) -> Result<Vec<RepositoryRecord>> {
        sqlx::query_as::<_, RepoTuple>(&format!(
            "SELECT {REPO_COLUMNS} FROM repositories WHERE name > ? ORDER BY name LIMIT ?"
        ))
        .bind(after.unwrap_or(""))
        .bind(limit as i64)
        .fetch_all(&self.reader)
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
        let mut tx = self.writer.begin_with("BEGIN IMMEDIATE").await?;
        let Some((id, record)) = record_in(&mut tx, repo).await? else {
            return Ok(None);
        };
        // The images that go with it (none unless `force`), each with its tags, for the
        // change's jobs: one `ManifestDeleted` per image, as delete_manifest reports.
        let rows: Vec<(String, Option<String>)> = sqlx::query_as(
            "SELECT m.digest, t.name FROM manifests m
             LEFT JOIN tags t ON t.repository_id = m.repository_id AND t.digest = m.digest
             WHERE m.repository_id = ? ORDER BY m.digest, t.name",
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
            let has_images = sqlx::query("SELECT 1 FROM manifests WHERE repository_id = ? LIMIT 1")
                .bind(id)
                .fetch_optional(&mut *tx)
                .await?
                .is_some();
            if has_images {
                return Err(MetaError::RepositoryNotEmpty(repo.to_string()));
            }
        }
        // Its images' blobs may now be unreferenced: GC's grace window starts again.
        crate::sqlite_gc::touch_referenced_blobs(&mut tx, id, None).await?;
        // Tags, manifests, their references, blob links and resource tags go with it
        // (ON DELETE CASCADE); the blobs' bytes stay for garbage collection.
        sqlx::query("DELETE FROM repositories WHERE id = ?")
            .bind(id)
            .execute(&mut *tx)
            .await?;
        // Its repository policy goes in the same transaction (issue 16), so a repository
        // created later under the name starts without one; the identity generation moves
        // so every server reloads its policies.
        let had_policy = sqlx::query("DELETE FROM repository_policies WHERE repository = ?")
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
            let digest = crate::sqlite::parse_digest(digest.clone())?;
            jobs.extend(hook.jobs(&crate::changes::Change::ManifestDeleted {
                repository: repo,
                digest: &digest,
                tags,
            }));
        }
        crate::sqlite::commit_with_jobs(tx, &jobs, hook).await?;
        Ok(Some(record))
    }

    async fn set_tag_rules(&self, repo: &RepositoryName, rules: &TagRules) -> Result<bool> {
        let r = sqlx::query(
            "UPDATE repositories SET tag_mutability = ?, tag_mutability_filters = ? WHERE name = ?",
        )
        .bind(rules.mode.as_str())
        .bind(filters_json(rules))
        .bind(repo.as_str())
        .execute(&self.writer)
        .await?;
        Ok(r.rows_affected() > 0)
    }

    async fn resource_tags(&self, repo: &RepositoryName) -> Result<Option<Vec<(String, String)>>> {
        let Some((id,)) = sqlx::query_as::<_, (i64,)>("SELECT id FROM repositories WHERE name = ?")
            .bind(repo.as_str())
            .fetch_optional(&self.reader)
            .await?
        else {
            return Ok(None);
        };
        let rows = sqlx::query_as::<_, (String, String)>(
            "SELECT key, value FROM repository_resource_tags WHERE repository_id = ? ORDER BY key",
        )
        .bind(id)
        .fetch_all(&self.reader)
        .await?;
        Ok(Some(rows))
    }

    async fn tag_resource(
        &self,
        repo: &RepositoryName,
        tags: &[(String, String)],
        max: usize,
    ) -> Result<bool> {
        let mut tx = self.writer.begin_with("BEGIN IMMEDIATE").await?;
        let Some((id,)) = sqlx::query_as::<_, (i64,)>("SELECT id FROM repositories WHERE name = ?")
            .bind(repo.as_str())
            .fetch_optional(&mut *tx)
            .await?
        else {
            return Ok(false);
        };
        for (k, v) in tags {
            sqlx::query(
                "INSERT INTO repository_resource_tags (repository_id, key, value) VALUES (?, ?, ?) \
                 ON CONFLICT (repository_id, key) DO UPDATE SET value = excluded.value",
            )
            .bind(id)
            .bind(k)
            .bind(v)
            .execute(&mut *tx)
            .await?;
        }
        let (count,) = sqlx::query_as::<_, (i64,)>(
            "SELECT COUNT(*) FROM repository_resource_tags WHERE repository_id = ?",
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
        let mut tx = self.writer.begin_with("BEGIN IMMEDIATE").await?;
        let Some((id,)) = sqlx::query_as::<_, (i64,)>("SELECT id FROM repositories WHERE name = ?")
            .bind(repo.as_str())
            .fetch_optional(&mut *tx)
            .await?
        else {
            return Ok(false);
        };
        for k in keys {
            sqlx::query("DELETE FROM repository_resource_tags WHERE repository_id = ? AND key = ?")
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
             WHERE m.repository_id = ?1 \
               AND (m.digest > ?2 OR (m.digest = ?2 AND COALESCE(t.name, '') > ?3)) \
               AND (?4 = 'ANY' OR (?4 = 'TAGGED') = (t.name IS NOT NULL)) \
             ORDER BY m.digest, COALESCE(t.name, '') LIMIT ?5",
        )
        .bind(id)
        .bind(after_digest)
        .bind(after_tag)
        .bind(status_str(status))
        .bind(limit as i64)
        .fetch_all(&self.reader)
        .await?;
        rows.into_iter()
            .map(|(d, t)| Ok((digest(d)?, t.as_deref().map(tag).transpose()?)))
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
             WHERE m.repository_id = ?1 AND m.digest > ?2 \
               AND (?3 = 'ANY' OR (?3 = 'TAGGED') = EXISTS (SELECT 1 FROM tags x \
                    WHERE x.repository_id = m.repository_id AND x.digest = m.digest)) \
             ORDER BY m.digest LIMIT ?4"
        ))
        .bind(id)
        .bind(after.unwrap_or(""))
        .bind(status_str(status))
        .bind(limit as i64)
        .fetch_all(&self.reader)
        .await?;
        rows.into_iter().map(image_record).collect()
    }

    async fn image(&self, repo: &RepositoryName, d: &Digest) -> Result<Option<ImageRecord>> {
        let id = self.repository_id(repo).await?;
        sqlx::query_as::<_, ImageTuple>(&format!(
            "SELECT {IMAGE_COLUMNS} FROM manifests m WHERE m.repository_id = ? AND m.digest = ?"
        ))
        .bind(id)
        .bind(d.to_string())
        .fetch_optional(&self.reader)
        .await?
        .map(image_record)
        .transpose()
    }

    async fn record_pulls(&self, pulls: &[Pull]) -> Result<()> {
        if pulls.is_empty() {
            return Ok(());
        }
        let mut tx = self.writer.begin_with("BEGIN IMMEDIATE").await?;
        for (repo, d, at) in pulls {
            sqlx::query(
                "UPDATE manifests SET last_pulled_at = MAX(COALESCE(last_pulled_at, 0), ?) \
                 WHERE repository_id = (SELECT id FROM repositories WHERE name = ?) AND digest = ?",
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

    async fn blob_in_image(&self, repo: &RepositoryName, d: &Digest) -> Result<bool> {
        Ok(sqlx::query(
            "SELECT 1 FROM repositories r JOIN manifest_references mr ON mr.repository_id = r.id \
             WHERE r.name = ? AND mr.target = ? AND mr.kind = 'blob' LIMIT 1",
        )
        .bind(repo.as_str())
        .bind(d.to_string())
        .fetch_optional(&self.reader)
        .await?
        .is_some())
    }
}
