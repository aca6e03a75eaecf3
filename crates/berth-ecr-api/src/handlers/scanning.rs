//! PutImageScanningConfiguration, StartImageScan and DescribeImageScanFindings (issue 11,
//! basic scanning): thin calls into the registry's scanning service, shaped as botocore's
//! model and ECR_REFERENCE.md §2.10 say. A basic finding carries the attributes
//! `package_name`, `package_version`, `CVSS3_SCORE`, `CVSS3_VECTOR` (when the advisory has
//! a vector) and `fixed_in_versions` (comma-separated), and `findingSeverityCounts` holds
//! only the severities that have findings.

use super::images::image_ref;
use super::lifecycle::target;
use super::registry_error;
use crate::error::{EcrError, EcrErrorType};
use crate::wire::{parse, ImageId};
use crate::{page, validate, Ctx};
use berth_core::Reference;
use berth_registry::scanning::ImageScan;
use berth_registry::{Finding, ScanStatus};
use serde::Deserialize;
use serde_json::{json, Value};

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ScanningConfiguration {
    scan_on_push: Option<bool>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct PutRequest {
    registry_id: Option<String>,
    repository_name: Option<String>,
    image_scanning_configuration: Option<ScanningConfiguration>,
}

pub(super) async fn put_configuration(ctx: &Ctx<'_>, body: &[u8]) -> Result<Value, EcrError> {
    let r: PutRequest = parse(body)?;
    let config = validate::required(r.image_scanning_configuration, "imageScanningConfiguration")?;
    let scan_on_push = config.scan_on_push.unwrap_or(false);
    let name = target(ctx, r.registry_id.as_deref(), r.repository_name.as_deref()).await?;
    ctx.registry
        .set_scan_on_push(&name, scan_on_push)
        .await
        .map_err(|e| registry_error(ctx, name.as_str(), e))?;
    Ok(json!({
        "registryId": ctx.account(),
        "repositoryName": name.as_str(),
        "imageScanningConfiguration": {"scanOnPush": scan_on_push},
    }))
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ImageRequest {
    registry_id: Option<String>,
    repository_name: Option<String>,
    image_id: Option<ImageId>,
    next_token: Option<String>,
    max_results: Option<i64>,
}

/// The request's image as a reference (ECR's wording for a bad identifier).
fn reference(id: &ImageId) -> Result<Reference, EcrError> {
    image_ref(id)
        .map(|(r, _)| r)
        .map_err(|f| EcrError::invalid_parameter("imageId", f.failure_reason))
}

pub(super) async fn start(ctx: &Ctx<'_>, body: &[u8]) -> Result<Value, EcrError> {
    let r: ImageRequest = parse(body)?;
    let id = validate::required(r.image_id, "imageId")?;
    let reference = reference(&id)?;
    let name = target(ctx, r.registry_id.as_deref(), r.repository_name.as_deref()).await?;
    let (digest, _) = ctx
        .registry
        .start_image_scan(&name, &reference)
        .await
        .map_err(|e| registry_error(ctx, name.as_str(), e))?;
    let mut image_id = json!({"imageDigest": digest.to_string()});
    if let Some(tag) = id.image_tag {
        image_id["imageTag"] = json!(tag);
    }
    Ok(json!({
        "registryId": ctx.account(),
        "repositoryName": name.as_str(),
        "imageId": image_id,
        "imageScanStatus": {"status": "IN_PROGRESS", "description": berth_registry::scanning::DESCRIPTION_IN_PROGRESS},
    }))
}

/// A basic finding (`ImageScanFinding`).
fn finding_json(f: &Finding) -> Value {
    let mut attributes = vec![
        json!({"key": "package_version", "value": f.package.version}),
        json!({"key": "package_name", "value": f.package.name}),
    ];
    if let (Some(score), Some(vector)) = (f.cvss3_score, &f.cvss3_vector) {
        attributes.push(json!({"key": "CVSS3_SCORE", "value": format!("{score:.1}")}));
        attributes.push(json!({"key": "CVSS3_VECTOR", "value": vector}));
    }
    if !f.fixed_in_versions.is_empty() {
        attributes
            .push(json!({"key": "fixed_in_versions", "value": f.fixed_in_versions.join(",")}));
    }
    let mut v = json!({
        "name": f.name,
        "description": f.description,
        "severity": f.severity.as_str(),
        "attributes": attributes,
    });
    if let Some(uri) = &f.uri {
        v["uri"] = json!(uri);
    }
    v
}

/// `imageScanFindingsSummary`-style counts: only severities with findings.
pub(crate) fn severity_counts(scan: &ImageScan) -> Value {
    let mut counts = serde_json::Map::new();
    for (severity, n) in scan.severity_counts() {
        counts.insert(severity.as_str().to_owned(), json!(n));
    }
    Value::Object(counts)
}

pub(super) async fn describe_findings(ctx: &Ctx<'_>, body: &[u8]) -> Result<Value, EcrError> {
    let r: ImageRequest = parse(body)?;
    // maxResults 1–1000 (botocore model), default 100 like the other listings.
    let limit = validate::max_results(r.max_results, "maxResults", 1000, 100)? as usize;
    let id = validate::required(r.image_id, "imageId")?;
    let reference = reference(&id)?;
    let name = target(ctx, r.registry_id.as_deref(), r.repository_name.as_deref()).await?;
    let manifest = ctx
        .registry
        .head_manifest(&name, &reference)
        .await
        .map_err(|e| registry_error(ctx, name.as_str(), e))?;
    let digest = manifest.digest;
    let scan = ctx
        .registry
        .image_scan(&name, &digest)
        .await
        .map_err(|e| registry_error(ctx, name.as_str(), e))?
        .ok_or_else(|| {
            EcrError::new(
                EcrErrorType::ScanNotFoundException,
                format!(
                    "Image scan does not exist for the image with '{{imageDigest:'{digest}'}}' in the repository with name '{name}' in the registry with id '{}'",
                    ctx.account()
                ),
            )
        })?;
    let listing = format!("scan-findings {name} {digest} {}", scan.row.started_at);
    let start = match &r.next_token {
        Some(t) => page::decode(t, &listing, 1)?
            .remove(0)
            .parse::<usize>()
            .map_err(|_| EcrError::invalid_parameter("nextToken", "not a token of this listing"))?,
        None => 0,
    };
    let mut image_id = json!({"imageDigest": digest.to_string()});
    if let Some(tag) = &id.image_tag {
        image_id["imageTag"] = json!(tag);
    }
    let mut v = json!({
        "registryId": ctx.account(),
        "repositoryName": name.as_str(),
        "imageId": image_id,
        "imageScanStatus": {"status": scan.row.status.as_str(), "description": scan.row.description},
    });
    if scan.row.status != ScanStatus::Complete {
        return Ok(v);
    }
    let sources = ctx
        .registry
        .vuln_sources()
        .await
        .map_err(|e| registry_error(ctx, name.as_str(), e))?;
    let mut findings = serde_json::json!({
        "imageScanCompletedAt": scan.row.completed_at.unwrap_or(scan.row.started_at),
        "findingSeverityCounts": severity_counts(&scan),
        "findings": scan.findings.iter().skip(start).take(limit).map(finding_json).collect::<Vec<_>>(),
    });
    if let Some(newest) = sources.iter().map(|s| s.updated_at.as_str()).max() {
        if let Ok(t) =
            time::OffsetDateTime::parse(newest, &time::format_description::well_known::Rfc3339)
        {
            findings["vulnerabilitySourceUpdatedAt"] = json!(t.unix_timestamp());
        }
    }
    v["imageScanFindings"] = findings;
    if start + limit < scan.findings.len() {
        v["nextToken"] = json!(page::encode(&listing, &[&(start + limit).to_string()]));
    }
    Ok(v)
}
