//! DescribeImages, ListImages, BatchGetImage, PutImage, BatchDeleteImage.

use super::registry_error;
use crate::error::{EcrError, EcrErrorType};
use crate::wire::{self, parse, ImageFailure, ImageId};
use crate::{page, validate, Ctx};
use berth_core::{Digest, Reference, RepositoryName, Tag};
use berth_registry::RegistryError;
use berth_registry::TagStatus;
use serde::Deserialize;
use serde_json::{json, Value};

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
struct Filter {
    tag_status: Option<String>,
    image_status: Option<String>,
}

/// The filter's `tagStatus`, and whether its `imageStatus` selects nothing (Berth has
/// no archived images, so `ARCHIVED` and `ACTIVATING` select none).
fn filter(f: Option<Filter>) -> Result<(TagStatus, bool), EcrError> {
    let f = f.unwrap_or_default();
    let status = match f.tag_status.as_deref() {
        None => TagStatus::Any,
        Some(s) => {
            validate::one_of(s, "tagStatus", &["TAGGED", "UNTAGGED", "ANY"])?;
            match s {
                "TAGGED" => TagStatus::Tagged,
                "UNTAGGED" => TagStatus::Untagged,
                _ => TagStatus::Any,
            }
        }
    };
    let none = match f.image_status.as_deref() {
        None => false,
        Some(s) => {
            validate::one_of(
                s,
                "imageStatus",
                &["ACTIVE", "ARCHIVED", "ACTIVATING", "ANY"],
            )?;
            matches!(s, "ARCHIVED" | "ACTIVATING")
        }
    };
    Ok((status, none))
}

/// An `ImageIdentifier` resolved to a reference, or the per-item failure ECR reports.
pub(super) fn image_ref(id: &ImageId) -> Result<(Reference, Option<Tag>), ImageFailure> {
    let tag = match id.image_tag.as_deref() {
        Some(t) => Some(Tag::parse(t).map_err(|_| {
            ImageFailure::new(
                id,
                "InvalidImageTag",
                format!(
                    "Invalid request parameters: image tag should satisfy the regex '{}'",
                    validate::TAG_PATTERN
                ),
            )
        })?),
        None => None,
    };
    let digest = match id.image_digest.as_deref() {
        Some(d) => Some(d.parse::<Digest>().map_err(|_| {
            ImageFailure::new(
                id,
                "InvalidImageDigest",
                format!(
                    "Invalid request parameters: image digest should satisfy the regex '{}'",
                    validate::LAYER_DIGEST_PATTERN
                ),
            )
        })?),
        None => None,
    };
    match (digest, tag) {
        (Some(d), tag) => Ok((Reference::Digest(d), tag)),
        (None, Some(t)) => Ok((Reference::Tag(t), None)),
        (None, None) => Err(ImageFailure::new(
            id,
            "MissingDigestAndTag",
            "Invalid request parameters: both tag and digest cannot be null",
        )),
    }
}

fn image_ids(v: Option<Vec<ImageId>>, required: bool) -> Result<Option<Vec<ImageId>>, EcrError> {
    let v = if required {
        Some(validate::required(v, "imageIds")?)
    } else {
        v
    };
    if let Some(ids) = &v {
        validate::list(ids, "imageIds", 1, 100)?;
        for id in ids {
            if let Some(t) = &id.image_tag {
                validate::length(t, "imageTag", 1, 300)?;
            }
        }
    }
    Ok(v)
}

fn not_found(ctx: &Ctx<'_>, repo: &RepositoryName, id: &ImageId) -> EcrError {
    let show = |v: &Option<String>| v.clone().unwrap_or_else(|| "null".into());
    EcrError::new(EcrErrorType::ImageNotFoundException,
        format!(
            "The image with imageId {{imageDigest:'{}', imageTag:'{}'}} does not exist within the repository with name '{repo}' in the registry with id '{}'",
            show(&id.image_digest),
            show(&id.image_tag),
            ctx.account()
        ),
    )
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct DescribeRequest {
    registry_id: Option<String>,
    repository_name: Option<String>,
    image_ids: Option<Vec<ImageId>>,
    next_token: Option<String>,
    max_results: Option<i64>,
    filter: Option<Filter>,
}

pub(super) async fn describe(ctx: &Ctx<'_>, body: &[u8]) -> Result<Value, EcrError> {
    let r: DescribeRequest = parse(body)?;
    ctx.check_registry(r.registry_id.as_deref())?;
    let name = validate::required_repository(r.repository_name.as_deref(), "repositoryName")?;
    let ids = image_ids(r.image_ids, false)?;
    let limit = validate::max_results(r.max_results, "maxResults", 1000, page::DEFAULT_PAGE)?;
    let (status, none) = filter(r.filter)?;
    if ids.is_some() && (r.next_token.is_some() || r.max_results.is_some()) {
        return Err(EcrError::invalid_parameter(
            "imageIds",
            "nextToken and maxResults cannot be used together with imageIds",
        ));
    }
    let after = match &r.next_token {
        Some(t) => Some(page::decode(t, &format!("images {name}"), 1)?.remove(0)),
        None => None,
    };
    ctx.authorize_repo(&name).await?;
    let err = |e| registry_error(ctx, name.as_str(), e);
    if let Some(ids) = ids {
        let mut out: Vec<Value> = Vec::with_capacity(ids.len());
        let mut seen = Vec::new();
        for id in &ids {
            let (reference, tag) = match image_ref(id) {
                Ok(r) => r,
                Err(f) => return Err(EcrError::invalid_parameter("imageIds", f.failure_reason)),
            };
            let image = match ctx.registry.image(&name, &reference).await {
                Ok(i) => i,
                Err(RegistryError::ManifestUnknown(_)) => return Err(not_found(ctx, &name, id)),
                Err(e) => return Err(err(e)),
            };
            if tag.is_some_and(|t| !image.tags.contains(&t)) {
                return Err(not_found(ctx, &name, id));
            }
            if !seen.contains(&image.digest) {
                seen.push(image.digest.clone());
                out.push(ctx.image_detail_json(name.as_str(), &image));
            }
        }
        super::scanning::add_scan_summaries(ctx, &name, &mut out).await?;
        return Ok(json!({ "imageDetails": out }));
    }
    let mut images = if none {
        // Still answers RepositoryNotFoundException for a missing repository.
        ctx.registry.repository(&name).await.map_err(err)?;
        Vec::new()
    } else {
        ctx.registry
            .images(&name, status, after.as_deref(), limit + 1)
            .await
            .map_err(err)?
    };
    let more = images.len() > limit as usize;
    images.truncate(limit as usize);
    let mut details: Vec<Value> = images
        .iter()
        .map(|i| ctx.image_detail_json(name.as_str(), i))
        .collect();
    super::scanning::add_scan_summaries(ctx, &name, &mut details).await?;
    let mut v = json!({ "imageDetails": details });
    if more {
        let last = images
            .last()
            .map(|i| i.digest.to_string())
            .unwrap_or_default();
        wire::put_opt(
            &mut v,
            "nextToken",
            Some(page::encode(&format!("images {name}"), &[&last])),
        );
    }
    Ok(v)
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ListRequest {
    registry_id: Option<String>,
    repository_name: Option<String>,
    next_token: Option<String>,
    max_results: Option<i64>,
    filter: Option<Filter>,
}

pub(super) async fn list(ctx: &Ctx<'_>, body: &[u8]) -> Result<Value, EcrError> {
    let r: ListRequest = parse(body)?;
    ctx.check_registry(r.registry_id.as_deref())?;
    let name = validate::required_repository(r.repository_name.as_deref(), "repositoryName")?;
    let limit = validate::max_results(r.max_results, "maxResults", 1000, page::DEFAULT_PAGE)?;
    let (status, none) = filter(r.filter)?;
    let after = match &r.next_token {
        Some(t) => {
            let k = page::decode(t, &format!("image-ids {name}"), 2)?;
            Some((k[0].clone(), k[1].clone()))
        }
        None => None,
    };
    ctx.authorize_repo(&name).await?;
    let err = |e| registry_error(ctx, name.as_str(), e);
    let mut keys = if none {
        ctx.registry.repository(&name).await.map_err(err)?;
        Vec::new()
    } else {
        ctx.registry
            .list_images(
                &name,
                status,
                after.as_ref().map(|(d, t)| (d.as_str(), t.as_str())),
                limit + 1,
            )
            .await
            .map_err(err)?
    };
    let more = keys.len() > limit as usize;
    keys.truncate(limit as usize);
    let ids: Vec<ImageId> = keys
        .iter()
        .map(|(d, t)| ImageId {
            image_digest: Some(d.to_string()),
            image_tag: t.as_ref().map(|t| t.to_string()),
        })
        .collect();
    let mut v = json!({ "imageIds": ids });
    if more {
        if let Some((d, t)) = keys.last() {
            let t = t.as_ref().map(|t| t.as_str()).unwrap_or("");
            wire::put_opt(
                &mut v,
                "nextToken",
                Some(page::encode(
                    &format!("image-ids {name}"),
                    &[&d.to_string(), t],
                )),
            );
        }
    }
    Ok(v)
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct BatchGetRequest {
    registry_id: Option<String>,
    repository_name: Option<String>,
    image_ids: Option<Vec<ImageId>>,
    accepted_media_types: Option<Vec<String>>,
}

pub(super) async fn batch_get(ctx: &Ctx<'_>, body: &[u8]) -> Result<Value, EcrError> {
    let r: BatchGetRequest = parse(body)?;
    ctx.check_registry(r.registry_id.as_deref())?;
    let name = validate::required_repository(r.repository_name.as_deref(), "repositoryName")?;
    let ids = image_ids(r.image_ids, true)?.unwrap_or_default();
    if let Some(m) = &r.accepted_media_types {
        validate::list(m, "acceptedMediaTypes", 1, 100)?;
    }
    ctx.authorize_repo(&name).await?;
    let err = |e| registry_error(ctx, name.as_str(), e);
    ctx.registry.repository(&name).await.map_err(err)?;
    let mut images = Vec::new();
    let mut failures = Vec::new();
    for id in &ids {
        let (reference, tag) = match image_ref(id) {
            Ok(r) => r,
            Err(f) => {
                failures.push(f);
                continue;
            }
        };
        let by_tag = matches!(reference, Reference::Tag(_));
        let m = match ctx.registry.get_manifest(&name, &reference).await {
            Ok(m) => m,
            Err(RegistryError::ManifestUnknown(_)) => {
                failures.push(ImageFailure::new(
                    id,
                    "ImageNotFound",
                    "Requested image not found",
                ));
                continue;
            }
            Err(e) => return Err(err(e)),
        };
        if let Some(t) = &tag {
            // Both given: the tag must point at the digest.
            match ctx
                .registry
                .get_manifest(&name, &Reference::Tag(t.clone()))
                .await
            {
                Ok(tm) if tm.digest == m.digest => {}
                Ok(_) | Err(RegistryError::ManifestUnknown(_)) => {
                    failures.push(ImageFailure::new(
                        id,
                        "ImageTagDoesNotMatchDigest",
                        format!(
                            "Invalid request parameters: tag '{t}' does not point at digest '{}'",
                            m.digest
                        ),
                    ));
                    continue;
                }
                Err(e) => return Err(err(e)),
            }
        }
        if let Some(accepted) = &r.accepted_media_types {
            // As on /v2/: a tag resolving to a format the client does not accept is not
            // served (Berth does not convert manifests); a digest always is.
            if by_tag && !accepted.iter().any(|a| a == &m.media_type) {
                failures.push(ImageFailure::new(
                    id,
                    "ImageNotFound",
                    format!(
                        "Requested image is a {}, which acceptedMediaTypes does not include (Berth does not convert manifests between formats)",
                        m.media_type
                    ),
                ));
                continue;
            }
        }
        let image_id = ImageId {
            image_digest: Some(m.digest.to_string()),
            image_tag: id.image_tag.clone(),
        };
        images.push(json!({
            "registryId": ctx.account(),
            "repositoryName": name.as_str(),
            "imageId": image_id,
            "imageManifest": String::from_utf8_lossy(&m.body),
            "imageManifestMediaType": m.media_type,
        }));
    }
    Ok(json!({ "images": images, "failures": failures }))
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct PutRequest {
    registry_id: Option<String>,
    repository_name: Option<String>,
    image_manifest: Option<String>,
    image_manifest_media_type: Option<String>,
    image_tag: Option<String>,
    image_digest: Option<String>,
}

pub(super) async fn put(ctx: &Ctx<'_>, body: &[u8]) -> Result<Value, EcrError> {
    let r: PutRequest = parse(body)?;
    ctx.check_registry(r.registry_id.as_deref())?;
    let name = validate::required_repository(r.repository_name.as_deref(), "repositoryName")?;
    let manifest = validate::required(r.image_manifest, "imageManifest")?;
    validate::length(&manifest, "imageManifest", 1, 4_194_304)?;
    let tag = r
        .image_tag
        .as_deref()
        .map(|t| validate::image_tag(t, "imageTag"))
        .transpose()?;
    let digest = r
        .image_digest
        .as_deref()
        .map(|d| validate::digest(d, "imageDigest"))
        .transpose()?;
    // ECR_REFERENCE §1.5: `imageManifestMediaType` is required when the manifest has no
    // `mediaType`; ECR refuses rather than guessing.
    if r.image_manifest_media_type.is_none() {
        if let Ok(Value::Object(m)) = serde_json::from_str::<Value>(&manifest) {
            if !m.contains_key("mediaType") {
                return Err(EcrError::invalid_parameter(
                    "imageManifestMediaType",
                    "the manifest has no mediaType field, so imageManifestMediaType is required",
                ));
            }
        }
    }
    ctx.authorize_repo(&name).await?;
    let put = ctx
        .registry
        .put_image(
            &name,
            bytes::Bytes::from(manifest.clone().into_bytes()),
            r.image_manifest_media_type.as_deref(),
            tag.as_ref(),
            digest.as_ref(),
        )
        .await
        .map_err(|e| registry_error(ctx, name.as_str(), e))?;
    let media_type = r.image_manifest_media_type.unwrap_or(put.media_type);
    Ok(json!({
        "image": {
            "registryId": ctx.account(),
            "repositoryName": name.as_str(),
            "imageId": ImageId {
                image_digest: Some(put.digest.to_string()),
                image_tag: tag.map(|t| t.to_string()),
            },
            "imageManifest": manifest,
            "imageManifestMediaType": media_type,
        }
    }))
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct BatchDeleteRequest {
    registry_id: Option<String>,
    repository_name: Option<String>,
    image_ids: Option<Vec<ImageId>>,
}

pub(super) async fn batch_delete(ctx: &Ctx<'_>, body: &[u8]) -> Result<Value, EcrError> {
    let r: BatchDeleteRequest = parse(body)?;
    ctx.check_registry(r.registry_id.as_deref())?;
    let name = validate::required_repository(r.repository_name.as_deref(), "repositoryName")?;
    let ids = image_ids(r.image_ids, true)?.unwrap_or_default();
    ctx.authorize_repo(&name).await?;
    let err = |e| registry_error(ctx, name.as_str(), e);
    ctx.registry.repository(&name).await.map_err(err)?;
    let mut deleted: Vec<ImageId> = Vec::new();
    let mut failures = Vec::new();
    for id in &ids {
        let (reference, tag) = match image_ref(id) {
            Ok(r) => r,
            Err(f) => {
                failures.push(f);
                continue;
            }
        };
        let image = match ctx.registry.image(&name, &reference).await {
            Ok(i) => i,
            Err(RegistryError::ManifestUnknown(_)) => {
                failures.push(ImageFailure::new(
                    id,
                    "ImageNotFound",
                    "Requested image not found",
                ));
                continue;
            }
            Err(e) => return Err(err(e)),
        };
        let digest = image.digest.clone();
        // The tag to remove: the one named (by itself, or with its digest).
        let tag = match (&reference, tag) {
            (Reference::Tag(t), _) => Some(t.clone()),
            (Reference::Digest(_), Some(t)) => {
                if !image.tags.contains(&t) {
                    failures.push(ImageFailure::new(
                        id,
                        "ImageTagDoesNotMatchDigest",
                        format!("Invalid request parameters: tag '{t}' does not point at digest '{digest}'"),
                    ));
                    continue;
                }
                Some(t)
            }
            (Reference::Digest(_), None) => None,
        };
        let result = match &tag {
            // ECR: removing an image's last tag deletes the image.
            Some(t) if image.tags.len() > 1 => {
                ctx.registry
                    .delete_manifest(&name, &Reference::Tag(t.clone()))
                    .await
            }
            _ => {
                ctx.registry
                    .delete_manifest(&name, &Reference::Digest(digest.clone()))
                    .await
            }
        };
        match result {
            Ok(()) => match &tag {
                Some(t) => deleted.push(ImageId {
                    image_digest: Some(digest.to_string()),
                    image_tag: Some(t.to_string()),
                }),
                None if image.tags.is_empty() => deleted.push(ImageId {
                    image_digest: Some(digest.to_string()),
                    image_tag: None,
                }),
                None => deleted.extend(image.tags.iter().map(|t| ImageId {
                    image_digest: Some(digest.to_string()),
                    image_tag: Some(t.to_string()),
                })),
            },
            Err(RegistryError::Conflict(m)) => match &tag {
                // The last tag of an image an index references: untag, keep the image.
                Some(t) => {
                    ctx.registry
                        .delete_manifest(&name, &Reference::Tag(t.clone()))
                        .await
                        .map_err(err)?;
                    deleted.push(ImageId {
                        image_digest: Some(digest.to_string()),
                        image_tag: Some(t.to_string()),
                    });
                }
                None => failures.push(ImageFailure::new(id, "ImageReferencedByManifestList", m)),
            },
            Err(RegistryError::ManifestUnknown(_)) => {
                failures.push(ImageFailure::new(
                    id,
                    "ImageNotFound",
                    "Requested image not found",
                ));
            }
            Err(e) => return Err(err(e)),
        }
    }
    Ok(json!({ "imageIds": deleted, "failures": failures }))
}
