//! PutReplicationConfiguration, DescribeRegistry and DescribeImageReplicationStatus
//! (issue 9): thin calls into the registry's replication service
//! (`berth_registry::replication`), shaped as botocore's model says.

use super::registry_error;
use crate::error::EcrError;
use crate::wire::{parse, ImageId};
use crate::{validate, Ctx};
use berth_core::Reference;
use serde::Deserialize;
use serde_json::{json, Value};

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct PutRequest {
    replication_configuration: Option<Value>,
}

pub(super) async fn put_configuration(ctx: &Ctx<'_>, body: &[u8]) -> Result<Value, EcrError> {
    let r: PutRequest = parse(body)?;
    let cfg = validate::required(r.replication_configuration, "replicationConfiguration")?;
    ctx.authorize("*").await?;
    let stored = ctx
        .registry
        .put_replication_configuration(&cfg, ctx.iam.region(), ctx.account())
        .await
        .map_err(|e| registry_error(ctx, "", e))?;
    Ok(json!({ "replicationConfiguration": stored }))
}

pub(super) async fn describe_registry(ctx: &Ctx<'_>, body: &[u8]) -> Result<Value, EcrError> {
    let _: Value = parse(body)?;
    ctx.authorize("*").await?;
    let cfg = ctx
        .registry
        .reload_replication_configuration()
        .await
        .map_err(|e| registry_error(ctx, "", e))?;
    Ok(json!({
        "registryId": ctx.account(),
        "replicationConfiguration": cfg,
    }))
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct StatusRequest {
    registry_id: Option<String>,
    repository_name: Option<String>,
    image_id: Option<ImageId>,
}

pub(super) async fn describe_image_status(ctx: &Ctx<'_>, body: &[u8]) -> Result<Value, EcrError> {
    let r: StatusRequest = parse(body)?;
    ctx.check_registry(r.registry_id.as_deref())?;
    let name = validate::required_repository(r.repository_name.as_deref(), "repositoryName")?;
    let id = validate::required(r.image_id, "imageId")?;
    let reference = match (&id.image_digest, &id.image_tag) {
        (Some(d), _) => Reference::Digest(validate::digest(d, "imageId.imageDigest")?),
        (None, Some(t)) => Reference::Tag(validate::image_tag(t, "imageId.imageTag")?),
        (None, None) => {
            return Err(EcrError::invalid_parameter(
                "imageId",
                "Member must have either an imageDigest or an imageTag",
            ))
        }
    };
    ctx.authorize_repo(&name).await?;
    let (digest, statuses) = ctx
        .registry
        .image_replication_statuses(&name, &reference)
        .await
        .map_err(|e| registry_error(ctx, name.as_str(), e))?;
    let statuses: Vec<Value> = statuses
        .into_iter()
        .map(|s| {
            let mut v = json!({
                "region": s.region,
                "registryId": s.registry_id,
                "status": s.status.as_str(),
            });
            if let Some(f) = s.failure_code {
                v["failureCode"] = json!(f);
            }
            v
        })
        .collect();
    Ok(json!({
        "repositoryName": name.as_str(),
        "imageId": {
            "imageDigest": digest.to_string(),
            "imageTag": id.image_tag,
        },
        "replicationStatuses": statuses,
    }))
}
