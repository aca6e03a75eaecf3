//! CreateRepository, DescribeRepositories, DeleteRepository, PutImageTagMutability,
//! TagResource, UntagResource, ListTagsForResource.

use super::registry_error;
use crate::error::{EcrError, EcrErrorType};
use crate::wire::{self, parse, ExclusionFilter, ResourceTag};
use crate::{page, validate, Ctx};
use berth_core::RepositoryName;
use berth_registry::{Encryption, RepositorySettings};
use serde::Deserialize;
use serde_json::{json, Value};

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ScanningConfiguration {
    scan_on_push: Option<bool>,
}

/// `encryptionConfiguration` as requests give it.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct EncryptionConfiguration {
    encryption_type: Option<String>,
    kms_key: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct CreateRequest {
    registry_id: Option<String>,
    repository_name: Option<String>,
    tags: Option<Vec<ResourceTag>>,
    image_tag_mutability: Option<String>,
    image_tag_mutability_exclusion_filters: Option<Vec<ExclusionFilter>>,
    image_scanning_configuration: Option<ScanningConfiguration>,
    encryption_configuration: Option<EncryptionConfiguration>,
}

/// Validates an `encryptionConfiguration` (type enum, a KMS key only with a KMS type);
/// `None` is ECR's default, AES256.
pub(super) fn encryption(e: Option<EncryptionConfiguration>) -> Result<Encryption, EcrError> {
    let Some(e) = e else {
        return Ok(Encryption::default());
    };
    let t = validate::required(e.encryption_type, "encryptionType")?;
    validate::one_of(&t, "encryptionType", &["AES256", "KMS", "KMS_DSSE"])?;
    if let Some(k) = &e.kms_key {
        validate::length(k, "kmsKey", 1, 2048)?;
        if t == "AES256" {
            return Err(EcrError::invalid_parameter(
                "kmsKey",
                "a KMS key can only be given with encryptionType KMS or KMS_DSSE",
            ));
        }
    }
    Ok(Encryption {
        encryption_type: t,
        kms_key: e.kms_key,
    })
}

pub(super) async fn create(ctx: &Ctx<'_>, body: &[u8]) -> Result<Value, EcrError> {
    let r: CreateRequest = parse(body)?;
    ctx.check_registry(r.registry_id.as_deref())?;
    let name = validate::required_repository(r.repository_name.as_deref(), "repositoryName")?;
    let tags = wire::resource_tags(r.tags.unwrap_or_default())?;
    let settings = RepositorySettings {
        tags: wire::tag_rules(
            r.image_tag_mutability.as_deref(),
            r.image_tag_mutability_exclusion_filters,
        )?,
        scan_on_push: r
            .image_scanning_configuration
            .and_then(|s| s.scan_on_push)
            .unwrap_or(false),
        encryption: encryption(r.encryption_configuration)?,
    };
    ctx.authorize_repo(&name).await?;
    let record = ctx
        .registry
        .create_repository(&name, &settings, &tags)
        .await
        .map_err(|e| registry_error(ctx, name.as_str(), e))?;
    Ok(json!({ "repository": ctx.repository_json(&record) }))
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct DescribeRequest {
    registry_id: Option<String>,
    repository_names: Option<Vec<String>>,
    next_token: Option<String>,
    max_results: Option<i64>,
}

pub(super) async fn describe(ctx: &Ctx<'_>, body: &[u8]) -> Result<Value, EcrError> {
    let r: DescribeRequest = parse(body)?;
    ctx.check_registry(r.registry_id.as_deref())?;
    let limit = validate::max_results(r.max_results, "maxResults", 1000, page::DEFAULT_PAGE)?;
    if let Some(names) = r.repository_names {
        validate::list(&names, "repositoryNames", 1, 100)?;
        if r.next_token.is_some() || r.max_results.is_some() {
            return Err(EcrError::invalid_parameter(
                "repositoryNames",
                "nextToken and maxResults cannot be used together with repositoryNames",
            ));
        }
        let names = names
            .iter()
            .map(|n| validate::repository_name(n, "repositoryNames"))
            .collect::<Result<Vec<_>, _>>()?;
        let mut out = Vec::with_capacity(names.len());
        for name in &names {
            ctx.authorize_repo(name).await?;
            let rec = ctx
                .registry
                .repository(name)
                .await
                .map_err(|e| registry_error(ctx, name.as_str(), e))?;
            out.push(ctx.repository_json(&rec));
        }
        return Ok(json!({ "repositories": out }));
    }
    let after = match &r.next_token {
        Some(t) => Some(page::decode(t, "repositories", 1)?.remove(0)),
        None => None,
    };
    // Only repositories the caller may describe are listed. Policies are evaluated
    // without recording each one; the listing as a whole is recorded below.
    let action = ctx.op.into();
    let page = ctx
        .registry
        .visible_repositories(after.as_deref(), limit as usize, |name| {
            ctx.iam
                .is_allowed(&ctx.caller, action, &ctx.iam.repository_arn(name.as_str()))
        })
        .await
        .map_err(|e| registry_error(ctx, "", e))?;
    let (out, more, seen_any) = (page.repositories, page.more, page.scanned_any);
    if out.is_empty() && (seen_any || r.next_token.is_none()) {
        // Nothing visible: say why if the caller may not list at all, naming the
        // repositories of this registry as ECR does (`…:repository/*`).
        ctx.authorize(&ctx.iam.repository_arn("*")).await?;
    } else if !out.is_empty() {
        ctx.authorize(&ctx.iam.repository_arn(out[0].name.as_str()))
            .await?;
    }
    let mut v = json!({
        "repositories": out.iter().map(|r| ctx.repository_json(r)).collect::<Vec<_>>()
    });
    if more {
        let last = out.last().map(|r| r.name.to_string()).unwrap_or_default();
        wire::put_opt(
            &mut v,
            "nextToken",
            Some(page::encode("repositories", &[&last])),
        );
    }
    Ok(v)
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct DeleteRequest {
    registry_id: Option<String>,
    repository_name: Option<String>,
    force: Option<bool>,
}

pub(super) async fn delete(ctx: &Ctx<'_>, body: &[u8]) -> Result<Value, EcrError> {
    let r: DeleteRequest = parse(body)?;
    ctx.check_registry(r.registry_id.as_deref())?;
    let name = validate::required_repository(r.repository_name.as_deref(), "repositoryName")?;
    ctx.authorize_repo(&name).await?;
    let record = ctx
        .registry
        .delete_repository(&name, r.force.unwrap_or(false))
        .await
        .map_err(|e| registry_error(ctx, name.as_str(), e))?;
    // The repository's policy went in the same transaction; bring the policy snapshot up
    // to date now rather than at the next reload tick.
    if let Err(e) = ctx.iam.reload().await {
        tracing::warn!(repository = %name, error = %e, "reloading policies after deleting a repository failed; the periodic reload will catch up");
    }
    Ok(json!({ "repository": ctx.repository_json(&record) }))
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct MutabilityRequest {
    registry_id: Option<String>,
    repository_name: Option<String>,
    image_tag_mutability: Option<String>,
    image_tag_mutability_exclusion_filters: Option<Vec<ExclusionFilter>>,
}

pub(super) async fn put_tag_mutability(ctx: &Ctx<'_>, body: &[u8]) -> Result<Value, EcrError> {
    let r: MutabilityRequest = parse(body)?;
    ctx.check_registry(r.registry_id.as_deref())?;
    let name = validate::required_repository(r.repository_name.as_deref(), "repositoryName")?;
    let mode = validate::required(r.image_tag_mutability.as_deref(), "imageTagMutability")?;
    let rules = wire::tag_rules(Some(mode), r.image_tag_mutability_exclusion_filters)?;
    ctx.authorize_repo(&name).await?;
    ctx.registry
        .set_tag_rules(&name, &rules)
        .await
        .map_err(|e| registry_error(ctx, name.as_str(), e))?;
    let mut v = json!({
        "registryId": ctx.account(),
        "repositoryName": name.as_str(),
        "imageTagMutability": rules.mode.as_str(),
    });
    wire::put_opt(
        &mut v,
        "imageTagMutabilityExclusionFilters",
        wire::filters_json(&rules),
    );
    Ok(v)
}

/// The repository an ARN of this registry names.
fn repository_of_arn(ctx: &Ctx<'_>, arn: Option<&str>) -> Result<RepositoryName, EcrError> {
    let arn = validate::required(arn, "resourceArn")?;
    let prefix = ctx.iam.repository_arn("");
    let name = arn.strip_prefix(&prefix).ok_or_else(|| {
        EcrError::invalid_parameter(
            "resourceArn",
            format!("Invalid ARN '{arn}': expected a repository of this registry, {prefix}<name>"),
        )
    })?;
    validate::repository_name(name, "resourceArn")
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct TagRequest {
    resource_arn: Option<String>,
    tags: Option<Vec<ResourceTag>>,
    tag_keys: Option<Vec<String>>,
}

pub(super) async fn tag_resource(ctx: &Ctx<'_>, body: &[u8]) -> Result<Value, EcrError> {
    let r: TagRequest = parse(body)?;
    let name = repository_of_arn(ctx, r.resource_arn.as_deref())?;
    let tags = wire::resource_tags(validate::required(r.tags, "tags")?)?;
    ctx.authorize_repo(&name).await?;
    ctx.registry
        .tag_resource(&name, &tags)
        .await
        .map_err(|e| registry_error(ctx, name.as_str(), e))?;
    Ok(json!({}))
}

pub(super) async fn untag_resource(ctx: &Ctx<'_>, body: &[u8]) -> Result<Value, EcrError> {
    let r: TagRequest = parse(body)?;
    let name = repository_of_arn(ctx, r.resource_arn.as_deref())?;
    let keys = validate::required(r.tag_keys, "tagKeys")?;
    validate::list(&keys, "tagKeys", 0, 200)?;
    for k in &keys {
        if k.is_empty() || k.chars().count() > 128 {
            return Err(EcrError::new(
                EcrErrorType::InvalidTagParameterException,
                format!("tag key '{k}' must be 1 to 128 characters long"),
            ));
        }
    }
    ctx.authorize_repo(&name).await?;
    ctx.registry
        .untag_resource(&name, &keys)
        .await
        .map_err(|e| registry_error(ctx, name.as_str(), e))?;
    Ok(json!({}))
}

pub(super) async fn list_tags(ctx: &Ctx<'_>, body: &[u8]) -> Result<Value, EcrError> {
    let r: TagRequest = parse(body)?;
    let name = repository_of_arn(ctx, r.resource_arn.as_deref())?;
    ctx.authorize_repo(&name).await?;
    let tags = ctx
        .registry
        .resource_tags(&name)
        .await
        .map_err(|e| registry_error(ctx, name.as_str(), e))?;
    Ok(json!({
        "tags": tags.iter().map(|(k, v)| json!({"Key": k, "Value": v})).collect::<Vec<_>>()
    }))
}
