//! Repository management and image listings: what the ECR API adds to the push and pull
//! operations of `lib.rs` (creation with settings, deletion, tag rules, resource tags,
//! image details, `PutImage`, the layer-upload checks). Same rules as the rest of the
//! service layer; none of it knows about the ECR wire format.

use crate::{ManifestChange, PutManifest, Registry, RegistryError, Result};
use berth_core::TagRules;
use berth_core::{Digest, ParsedManifest, Reference, RepositoryName, Tag};
use berth_meta::repository::ImageKey;
use berth_meta::{ImageRecord, RepositoryRecord, RepositorySettings, TagStatus};
use bytes::Bytes;

/// One page of [`Registry::visible_repositories`].
#[derive(Debug, Default)]
pub struct VisibleRepositories {
    /// The visible repositories of the page, in lexical order of name.
    pub repositories: Vec<RepositoryRecord>,
    /// Whether another visible repository follows the page's last.
    pub more: bool,
    /// Whether any repository (visible or not) was found after the starting point.
    pub scanned_any: bool,
}

/// Resource tags a repository may carry (ECR's quota).
pub const MAX_RESOURCE_TAGS: usize = 50;

impl Registry {
    /// Creates a repository with `settings` and resource `tags`.
    /// Errors: [`RegistryError::RepositoryAlreadyExists`].
    pub async fn create_repository(
        &self,
        repo: &RepositoryName,
        settings: &RepositorySettings,
        tags: &[(String, String)],
    ) -> Result<RepositoryRecord> {
        if tags.len() > MAX_RESOURCE_TAGS {
            return Err(RegistryError::TooManyTags(format!(
                "{} tags given; a repository may have at most {MAX_RESOURCE_TAGS}",
                tags.len()
            )));
        }
        self.meta
            .create_repository_with(repo, settings, tags)
            .await?
            .ok_or_else(|| RegistryError::RepositoryAlreadyExists(repo.to_string()))
    }

    /// A repository with its settings. Errors: [`RegistryError::NameUnknown`].
    pub async fn repository(&self, repo: &RepositoryName) -> Result<RepositoryRecord> {
        self.meta
            .repository(repo)
            .await?
            .ok_or_else(|| RegistryError::NameUnknown(repo.to_string()))
    }

    /// Up to `limit` repositories after `after`, in lexical order of name.
    pub async fn repositories(
        &self,
        after: Option<&str>,
        limit: u32,
    ) -> Result<Vec<RepositoryRecord>> {
        Ok(self.meta.repositories(after, limit).await?)
    }

    /// The repositories `visible` admits, in lexical order of name, after `after`: at most
    /// `limit` of them, and whether more visible ones follow. The one filtered listing
    /// behind both the OCI catalog and ECR's DescribeRepositories, so both planes page the
    /// same way; `visible` is the caller's view (the adapters build it from their
    /// identity service's `ecr:DescribeRepositories` decision on each repository).
    /// Hidden repositories are skipped without ending a page early.
    pub async fn visible_repositories(
        &self,
        after: Option<&str>,
        limit: usize,
        visible: impl Fn(&RepositoryName) -> bool,
    ) -> Result<VisibleRepositories> {
        const BATCH: u32 = 1000;
        let mut cursor = after.map(str::to_string);
        let mut page = VisibleRepositories::default();
        loop {
            let batch = self.meta.repositories(cursor.as_deref(), BATCH).await?;
            let done = batch.len() < BATCH as usize;
            for rec in batch {
                page.scanned_any = true;
                cursor = Some(rec.name.to_string());
                if !visible(&rec.name) {
                    continue;
                }
                if page.repositories.len() == limit {
                    page.more = true;
                    return Ok(page);
                }
                page.repositories.push(rec);
            }
            if done {
                return Ok(page);
            }
        }
    }

    /// Deletes a repository; with `force`, also every image in it (each a change for the
    /// job hook, enqueued in the same transaction: one ECR `DELETE` event per image,
    /// per tag). Its repository policy
    /// goes in the same transaction (ECR: a repository created later under the name has
    /// none); identity services learn of it through the identity generation, so a caller
    /// holding one reloads it after this returns (its periodic reload is the backstop).
    /// Errors: [`RegistryError::NameUnknown`], [`RegistryError::RepositoryNotEmpty`].
    pub async fn delete_repository(
        &self,
        repo: &RepositoryName,
        force: bool,
    ) -> Result<RepositoryRecord> {
        let deleted = self
            .meta
            .delete_repository(repo, force, self.hook.as_ref())
            .await;
        self.invalidate_cache();
        deleted?.ok_or_else(|| RegistryError::NameUnknown(repo.to_string()))
    }

    /// Replaces the repository's tag mutability rules.
    /// Errors: [`RegistryError::NameUnknown`].
    pub async fn set_tag_rules(&self, repo: &RepositoryName, rules: &TagRules) -> Result<()> {
        if self.meta.set_tag_rules(repo, rules).await? {
            Ok(())
        } else {
            Err(RegistryError::NameUnknown(repo.to_string()))
        }
    }

    /// The repository's resource tags, in key order. Errors: [`RegistryError::NameUnknown`].
    pub async fn resource_tags(&self, repo: &RepositoryName) -> Result<Vec<(String, String)>> {
        self.meta
            .resource_tags(repo)
            .await?
            .ok_or_else(|| RegistryError::NameUnknown(repo.to_string()))
    }

    /// Adds or overwrites resource tags (others are kept).
    /// Errors: [`RegistryError::NameUnknown`], [`RegistryError::TooManyTags`].
    pub async fn tag_resource(
        &self,
        repo: &RepositoryName,
        tags: &[(String, String)],
    ) -> Result<()> {
        if self
            .meta
            .tag_resource(repo, tags, MAX_RESOURCE_TAGS)
            .await?
        {
            Ok(())
        } else {
            Err(RegistryError::NameUnknown(repo.to_string()))
        }
    }

    /// Removes resource tags by key. Errors: [`RegistryError::NameUnknown`].
    pub async fn untag_resource(&self, repo: &RepositoryName, keys: &[String]) -> Result<()> {
        if self.meta.untag_resource(repo, keys).await? {
            Ok(())
        } else {
            Err(RegistryError::NameUnknown(repo.to_string()))
        }
    }

    /// Up to `limit` (digest, tag) pairs after `after`, ordered by digest then tag.
    /// Errors: [`RegistryError::NameUnknown`].
    pub async fn list_images(
        &self,
        repo: &RepositoryName,
        status: TagStatus,
        after: Option<(&str, &str)>,
        limit: u32,
    ) -> Result<Vec<ImageKey>> {
        Ok(self.meta.list_images(repo, status, after, limit).await?)
    }

    /// Up to `limit` images after digest `after`, in digest order, with their tags, sizes
    /// and pull times. Errors: [`RegistryError::NameUnknown`].
    pub async fn images(
        &self,
        repo: &RepositoryName,
        status: TagStatus,
        after: Option<&str>,
        limit: u32,
    ) -> Result<Vec<ImageRecord>> {
        self.flush_pulls().await?;
        Ok(self.meta.images(repo, status, after, limit).await?)
    }

    /// One image by tag or digest.
    /// Errors: [`RegistryError::NameUnknown`], [`RegistryError::ManifestUnknown`].
    pub async fn image(&self, repo: &RepositoryName, reference: &Reference) -> Result<ImageRecord> {
        self.flush_pulls().await?;
        let digest = match reference {
            Reference::Digest(d) => Some(d.clone()),
            Reference::Tag(t) => self
                .meta
                .manifest_head_by_tag(repo, t)
                .await?
                .map(|h| h.digest),
        };
        let found = match digest {
            Some(d) => self.meta.image(repo, &d).await?,
            None => None,
        };
        match found {
            Some(i) => Ok(i),
            None => Err(self.manifest_unknown(repo, reference).await),
        }
    }

    /// Writes the pull times recorded since the last flush; returns how many images.
    pub async fn flush_pulls(&self) -> Result<usize> {
        let pulls = self.pulls.take();
        if !pulls.is_empty() {
            self.meta.record_pulls(&pulls).await?;
        }
        Ok(pulls.len())
    }

    /// Stores a manifest given as a whole (ECR `PutImage`): into an existing repository
    /// only, under `tag` if given. `media_type` is the declared media type, if any;
    /// `expected` is a digest the manifest must hash to.
    /// Errors: [`RegistryError::NameUnknown`], [`RegistryError::ManifestDigestMismatch`],
    /// [`RegistryError::ImageAlreadyExists`] (same manifest, and the tag already on it or
    /// none given), [`RegistryError::TagImmutable`], [`RegistryError::ManifestBlobUnknown`],
    /// and the manifest errors of [`Registry::put_manifest`].
    pub async fn put_image(
        &self,
        repo: &RepositoryName,
        body: Bytes,
        media_type: Option<&str>,
        tag: Option<&Tag>,
        expected: Option<&Digest>,
    ) -> Result<PutManifest> {
        let parsed = ParsedManifest::parse(media_type.unwrap_or(""), &body)?;
        let digest = match expected {
            Some(want) => {
                let got = want.recompute(&body);
                if &got != want {
                    return Err(RegistryError::ManifestDigestMismatch {
                        given: want.clone(),
                        computed: got,
                    });
                }
                got
            }
            None => Digest::sha256_of(&body),
        };
        let stored = self
            .meta
            .put_manifest(
                repo,
                &digest,
                &parsed,
                &body,
                tag,
                false,
                self.hook.as_ref(),
            )
            .await;
        self.invalidate_cache();
        let change = ManifestChange::new(&stored?, tag);
        if change.is_noop() {
            return Err(RegistryError::ImageAlreadyExists {
                digest,
                tag: tag.map(|t| t.to_string()),
            });
        }
        Ok(PutManifest {
            digest,
            change,
            media_type: parsed.media_type,
            subject: parsed.subject.map(|s| s.digest),
        })
    }

    /// Starts an upload in an existing repository (ECR `InitiateLayerUpload`, which
    /// never creates repositories). Errors: [`RegistryError::NameUnknown`].
    pub async fn start_layer_upload(&self, repo: &RepositoryName) -> Result<String> {
        self.require_repository(repo).await?;
        Ok(self.store.create_upload(repo.as_str()).await?)
    }

    /// Completes an upload as ECR's `CompleteLayerUpload` does: an empty upload or a
    /// layer the repository already has is refused (and the session ended), otherwise as
    /// [`Registry::complete_upload`]. Errors: [`RegistryError::EmptyUpload`],
    /// [`RegistryError::BlobExists`], [`RegistryError::DigestInvalid`],
    /// [`RegistryError::BlobUploadUnknown`].
    pub async fn finish_layer_upload(
        &self,
        repo: &RepositoryName,
        id: &str,
        digest: &Digest,
    ) -> Result<u64> {
        let st = self.upload_status(repo, id).await?;
        if st.size == 0 {
            let _ = self.store.cancel(id).await;
            return Err(RegistryError::EmptyUpload(id.to_string()));
        }
        if self.meta.linked_blob(repo, digest).await?.is_some() {
            let _ = self.store.cancel(id).await;
            return Err(RegistryError::BlobExists(digest.clone()));
        }
        self.complete_upload(repo, id, digest, None).await
    }

    /// Whether an image in `repo` uses blob `digest` as its config or a layer.
    pub async fn blob_in_image(&self, repo: &RepositoryName, digest: &Digest) -> Result<bool> {
        Ok(self.meta.blob_in_image(repo, digest).await?)
    }
}
