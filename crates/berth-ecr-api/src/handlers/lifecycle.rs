//! PutLifecyclePolicy, GetLifecyclePolicy, DeleteLifecyclePolicy,
//! StartLifecyclePolicyPreview and GetLifecyclePolicyPreview (issue 12): thin calls into
//! the registry's lifecycle service, shaped as botocore's model says.

use super::registry_error;
use crate::error::{EcrError, EcrErrorType};
use crate::wire::{parse, ImageId};
use crate::{page, validate, Ctx};
use berth_core::RepositoryName;
use berth_registry::lifecycle::{ExpiringImage, LifecyclePreviewStatus};
use serde::Deserialize;
use serde_json::{json, Value};

/// `LifecyclePolicyText`: 100–30,720 characters (botocore model).
const TEXT_MIN: usize = 100;
const TEXT_MAX: usize = 30_720;

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct PolicyRequest {
    registry_id: Option<String>,
    repository_name: Option<String>,
    lifecycle_policy_text: Option<String>,
}

/// Validates the request's common members and authorises it on the repository (before
/// looking anything up, so a denied caller learns nothing).
pub(super) async fn target(
    ctx: &Ctx<'_>,
    registry_id: Option<&str>,
    repository_name: Option<&str>,
) -> Result<RepositoryName, EcrError> {
    ctx.check_registry(registry_id)?;
    let name = validate::required_repository(repository_name, "repositoryName")?;
    ctx.authorize_repo(&name).await?;
    Ok(name)
}

fn text_length(text: &str) -> Result<(), EcrError> {
    validate::length(text, "lifecyclePolicyText", TEXT_MIN, TEXT_MAX)
}

pub(super) async fn put(ctx: &Ctx<'_>, body: &[u8]) -> Result<Value, EcrError> {
    let r: PolicyRequest = parse(body)?;
    let text = validate::required(r.lifecycle_policy_text, "lifecyclePolicyText")?;
    text_length(&text)?;
    let name = target(ctx, r.registry_id.as_deref(), r.repository_name.as_deref()).await?;
    ctx.registry
        .put_lifecycle_policy(&name, &text)
        .await
        .map_err(|e| registry_error(ctx, name.as_str(), e))?;
    Ok(json!({
        "registryId": ctx.account(),
        "repositoryName": name.as_str(),
        "lifecyclePolicyText": text,
    }))
}

pub(super) async fn get(ctx: &Ctx<'_>, body: &[u8]) -> Result<Value, EcrError> {
    let r: PolicyRequest = parse(body)?;
    let name = target(ctx, r.registry_id.as_deref(), r.repository_name.as_deref()).await?;
    let p = ctx
        .registry
        .lifecycle_policy(&name)
        .await
        .map_err(|e| registry_error(ctx, name.as_str(), e))?;
    let mut v = json!({
        "registryId": ctx.account(),
        "repositoryName": name.as_str(),
        "lifecyclePolicyText": p.text,
    });
    if let Some(at) = p.last_evaluated_at {
        v["lastEvaluatedAt"] = json!(at);
    }
    Ok(v)
}

pub(super) async fn delete(ctx: &Ctx<'_>, body: &[u8]) -> Result<Value, EcrError> {
    let r: PolicyRequest = parse(body)?;
    let name = target(ctx, r.registry_id.as_deref(), r.repository_name.as_deref()).await?;
    let p = ctx
        .registry
        .delete_lifecycle_policy(&name)
        .await
        .map_err(|e| registry_error(ctx, name.as_str(), e))?;
    let mut v = json!({
        "registryId": ctx.account(),
        "repositoryName": name.as_str(),
        "lifecyclePolicyText": p.text,
    });
    if let Some(at) = p.last_evaluated_at {
        v["lastEvaluatedAt"] = json!(at);
    }
    Ok(v)
}

pub(super) async fn start_preview(ctx: &Ctx<'_>, body: &[u8]) -> Result<Value, EcrError> {
    let r: PolicyRequest = parse(body)?;
    if let Some(t) = &r.lifecycle_policy_text {
        text_length(t)?;
    }
    let name = target(ctx, r.registry_id.as_deref(), r.repository_name.as_deref()).await?;
    // Issue 12, "the preview shows why": a repository lifecycle never touches gets the
    // reason instead of a preview that would always be empty.
    if let Some(prefix) = ctx.registry.lifecycle_exclusion(&name) {
        return Err(EcrError::new(
            EcrErrorType::InvalidParameterException,
            format!(
                "The repository with name '{name}' in the registry with id '{}' is under the \
                 excluded prefix '{prefix}' (lifecycle_exclude_prefixes): lifecycle policies \
                 never expire its images, so a preview would expire nothing",
                ctx.account()
            ),
        ));
    }
    let text = ctx
        .registry
        .start_lifecycle_preview(&name, r.lifecycle_policy_text.as_deref())
        .await
        .map_err(|e| registry_error(ctx, name.as_str(), e))?;
    Ok(json!({
        "registryId": ctx.account(),
        "repositoryName": name.as_str(),
        "lifecyclePolicyText": text,
        "status": LifecyclePreviewStatus::InProgress.as_str(),
    }))
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
struct PreviewFilter {
    tag_status: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct PreviewRequest {
    registry_id: Option<String>,
    repository_name: Option<String>,
    image_ids: Option<Vec<ImageId>>,
    next_token: Option<String>,
    max_results: Option<i64>,
    filter: Option<PreviewFilter>,
}

fn result_json(i: &ExpiringImage) -> Value {
    let mut v = json!({
        "imageDigest": i.digest,
        "imagePushedAt": i.pushed_at,
        "action": {"type": "EXPIRE"},
        "appliedRulePriority": i.rule_priority,
        "storageClass": "STANDARD",
    });
    if !i.tags.is_empty() {
        v["imageTags"] = json!(i.tags);
    }
    v
}

pub(super) async fn get_preview(ctx: &Ctx<'_>, body: &[u8]) -> Result<Value, EcrError> {
    let r: PreviewRequest = parse(body)?;
    // Members first (ECR_REFERENCE §1.7: maxResults 1–100, default 100; imageIds 1–100
    // and not with nextToken/maxResults; filter.tagStatus TAGGED|UNTAGGED|ANY).
    let limit = validate::max_results(r.max_results, "maxResults", 100, 100)? as usize;
    if let Some(ids) = &r.image_ids {
        validate::list(ids, "imageIds", 1, 100)?;
        if r.next_token.is_some() || r.max_results.is_some() {
            return Err(EcrError::invalid_parameter(
                "imageIds",
                "nextToken and maxResults cannot be used together with imageIds",
            ));
        }
    }
    let status = r.filter.unwrap_or_default().tag_status;
    if let Some(s) = &status {
        validate::one_of(s, "filter.tagStatus", &["TAGGED", "UNTAGGED", "ANY"])?;
    }
    let name = target(ctx, r.registry_id.as_deref(), r.repository_name.as_deref()).await?;
    let start = match &r.next_token {
        Some(t) => page::decode(t, &format!("lifecycle-preview {name}"), 1)?
            .remove(0)
            .parse::<usize>()
            .map_err(|_| EcrError::invalid_parameter("nextToken", "not a token of this listing"))?,
        None => 0,
    };
    let preview = ctx
        .registry
        .lifecycle_preview(&name)
        .await
        .map_err(|e| registry_error(ctx, name.as_str(), e))?;
    let mut v = json!({
        "registryId": ctx.account(),
        "repositoryName": name.as_str(),
        "lifecyclePolicyText": preview.policy_text,
        "status": preview.status.as_str(),
        "previewResults": [],
    });
    if preview.status != LifecyclePreviewStatus::Complete {
        return Ok(v);
    }
    let total = preview.results.len();
    let selected: Vec<&ExpiringImage> = preview
        .results
        .iter()
        .filter(|i| match status.as_deref() {
            Some("TAGGED") => !i.tags.is_empty(),
            Some("UNTAGGED") => i.tags.is_empty(),
            _ => true,
        })
        .filter(|i| match &r.image_ids {
            None => true,
            Some(ids) => ids.iter().any(|id| {
                id.image_digest.as_deref().is_none_or(|d| d == i.digest)
                    && id
                        .image_tag
                        .as_deref()
                        .is_none_or(|t| i.tags.iter().any(|x| x == t))
                    && (id.image_digest.is_some() || id.image_tag.is_some())
            }),
        })
        .collect();
    let (page, more) = if r.image_ids.is_some() {
        (selected, false)
    } else {
        let end = (start + limit).min(selected.len());
        let more = end < selected.len();
        (selected[start.min(end)..end].to_vec(), more)
    };
    v["previewResults"] = Value::Array(page.iter().map(|i| result_json(i)).collect());
    v["summary"] = json!({ "expiringImageTotalCount": total });
    if more {
        v["nextToken"] = json!(page::encode(
            &format!("lifecycle-preview {name}"),
            &[&(start + limit).to_string()]
        ));
    }
    Ok(v)
}
