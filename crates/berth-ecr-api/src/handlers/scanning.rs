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
use berth_core::registry_scanning::RegistryScanningConfiguration;
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
    // ECR: a missing repository is RepositoryNotFoundException, an image index (nothing of
    // its own to scan: scan its children) UnsupportedImageTypeException, at once.
    ctx.registry
        .repository(&name)
        .await
        .map_err(|e| registry_error(ctx, name.as_str(), e))?;
    let head = ctx
        .registry
        .head_manifest(&name, &reference)
        .await
        .map_err(|e| registry_error(ctx, name.as_str(), e))?;
    if berth_core::media_type::is_index(&head.media_type) {
        return Err(EcrError::new(
            EcrErrorType::UnsupportedImageTypeException,
            format!(
                "The image '{reference}' in the repository with name '{name}' is an image index \
                 ({}): it has no layers of its own; scan each of its images by digest",
                head.media_type
            ),
        ));
    }
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

/// `vulnerabilitySourceUpdatedAt`: the newest `modified` of the imported vulnerability
/// sources, epoch seconds; `None` before any import.
async fn sources_updated_at(ctx: &Ctx<'_>, repo: &str) -> Result<Option<i64>, EcrError> {
    let sources = ctx
        .registry
        .vuln_sources()
        .await
        .map_err(|e| registry_error(ctx, repo, e))?;
    Ok(sources
        .iter()
        .map(|s| s.updated_at.as_str())
        .max()
        .and_then(|newest| {
            time::OffsetDateTime::parse(newest, &time::format_description::well_known::Rfc3339).ok()
        })
        .map(|t| t.unix_timestamp()))
}

/// `ImageScanFindingsSummary` of a completed scan: completion time, the sources' update
/// time, and the counts of the severities that have findings.
fn summary(scan: &ImageScan, sources_updated: Option<i64>) -> Value {
    let mut v = json!({
        "imageScanCompletedAt": scan.row.completed_at.unwrap_or(scan.row.started_at),
        "findingSeverityCounts": severity_counts(scan),
    });
    if let Some(t) = sources_updated {
        v["vulnerabilitySourceUpdatedAt"] = json!(t);
    }
    v
}

/// Adds `imageScanStatus` and, for a completed scan, `imageScanFindingsSummary` to each
/// `ImageDetail` of DescribeImages (botocore `ImageDetail`), from the images' latest
/// scans; images never scanned get neither, as in ECR.
pub(crate) async fn add_scan_summaries(
    ctx: &Ctx<'_>,
    repo: &berth_core::RepositoryName,
    details: &mut [Value],
) -> Result<(), EcrError> {
    let mut sources_updated = None;
    for d in details.iter_mut() {
        let Some(digest) = d["imageDigest"]
            .as_str()
            .and_then(|s| s.parse::<berth_core::Digest>().ok())
        else {
            continue;
        };
        let scan = ctx
            .registry
            .image_scan(repo, &digest)
            .await
            .map_err(|e| registry_error(ctx, repo.as_str(), e))?;
        let Some(scan) = scan else { continue };
        d["imageScanStatus"] =
            json!({"status": scan.row.status.as_str(), "description": scan.row.description});
        if scan.row.status == ScanStatus::Complete {
            if sources_updated.is_none() {
                sources_updated = Some(sources_updated_at(ctx, repo.as_str()).await?);
            }
            d["imageScanFindingsSummary"] = summary(&scan, sources_updated.flatten());
        }
    }
    Ok(())
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
    let sources_updated = sources_updated_at(ctx, name.as_str()).await?;
    let mut findings = summary(&scan, sources_updated);
    findings["findings"] = scan
        .findings
        .iter()
        .skip(start)
        .take(limit)
        .map(finding_json)
        .collect();
    v["imageScanFindings"] = findings;
    if start + limit < scan.findings.len() {
        v["nextToken"] = json!(page::encode(&listing, &[&(start + limit).to_string()]));
    }
    Ok(v)
}

/// The `ScanningRepositoryFilterValue` pattern of the botocore model.
const SCAN_FILTER_PATTERN: &str = "^[a-z0-9*](?:[._\\-/a-z0-9*]?[a-z0-9*]+)*$";

/// Whether `s` matches [`SCAN_FILTER_PATTERN`]: `[a-z0-9*]` characters, single `.`, `_`,
/// `-` or `/` separators between them, starting and ending with `[a-z0-9*]`.
fn scan_filter_ok(s: &str) -> bool {
    let word = |b: u8| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'*';
    let b = s.as_bytes();
    !b.is_empty()
        && word(b[0])
        && word(b[b.len() - 1])
        && b.windows(2).all(|w| word(w[0]) || word(w[1]))
        && b.iter().all(|&c| word(c) || b"._-/".contains(&c))
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct PutRegistryRequest {
    scan_type: Option<String>,
    rules: Option<Vec<Value>>,
}

/// The rules of a PutRegistryScanningConfiguration, checked as ECR checks them (model
/// lengths, patterns and enums; one rule per frequency; `CONTINUOUS_SCAN` only with
/// `ENHANCED`).
fn registry_configuration(
    r: PutRegistryRequest,
) -> Result<RegistryScanningConfiguration, EcrError> {
    let scan_type = r.scan_type.unwrap_or_else(|| "BASIC".into());
    validate::one_of(&scan_type, "scanType", &["BASIC", "ENHANCED"])?;
    let rules = r.rules.unwrap_or_default();
    validate::list(&rules, "rules", 0, 2)?;
    for (i, rule) in rules.iter().enumerate() {
        let at = format!("rules.{}", i + 1);
        let frequency = rule.get("scanFrequency").and_then(Value::as_str);
        let frequency = validate::required(frequency, &format!("{at}.scanFrequency"))?;
        validate::one_of(
            frequency,
            &format!("{at}.scanFrequency"),
            &["SCAN_ON_PUSH", "CONTINUOUS_SCAN", "MANUAL"],
        )?;
        if frequency == "MANUAL" && scan_type == "ENHANCED" {
            return Err(EcrError::invalid_parameter(
                &format!("{at}.scanFrequency"),
                "MANUAL is not a rule of the ENHANCED scan type; ENHANCED supports SCAN_ON_PUSH and CONTINUOUS_SCAN (repositories no rule matches are not scanned)",
            ));
        }
        if frequency == "CONTINUOUS_SCAN" && scan_type == "BASIC" {
            return Err(EcrError::invalid_parameter(
                &format!("{at}.scanFrequency"),
                "CONTINUOUS_SCAN is only supported with the ENHANCED scan type; BASIC supports SCAN_ON_PUSH and MANUAL",
            ));
        }
        let filters = rule.get("repositoryFilters").and_then(Value::as_array);
        let filters = validate::required(filters, &format!("{at}.repositoryFilters"))?;
        validate::list(filters, &format!("{at}.repositoryFilters"), 0, 100)?;
        for f in filters {
            let member = format!("{at}.repositoryFilters.filter");
            let value = f.get("filter").and_then(Value::as_str);
            let value = validate::required(value, &member)?;
            validate::length(value, &member, 1, 255)?;
            if !scan_filter_ok(value) {
                return Err(EcrError::invalid_parameter(
                    &member,
                    format!("must satisfy regular expression '{SCAN_FILTER_PATTERN}'"),
                ));
            }
            let kind = f.get("filterType").and_then(Value::as_str);
            let kind = validate::required(kind, &format!("{at}.repositoryFilters.filterType"))?;
            validate::one_of(
                kind,
                &format!("{at}.repositoryFilters.filterType"),
                &["WILDCARD"],
            )?;
        }
    }
    let mut frequencies: Vec<&str> = rules
        .iter()
        .filter_map(|r| r.get("scanFrequency").and_then(Value::as_str))
        .collect();
    frequencies.sort_unstable();
    if frequencies.windows(2).any(|w| w[0] == w[1]) {
        return Err(EcrError::invalid_parameter(
            "rules",
            "each scanFrequency may appear in one rule only",
        ));
    }
    serde_json::from_value(json!({"scanType": scan_type, "rules": rules}))
        .map_err(|e| EcrError::invalid_parameter("rules", e))
}

pub(super) async fn put_registry_configuration(
    ctx: &Ctx<'_>,
    body: &[u8],
) -> Result<Value, EcrError> {
    let r: PutRegistryRequest = parse(body)?;
    let cfg = registry_configuration(r)?;
    ctx.authorize("*").await?;
    ctx.registry
        .put_registry_scanning_configuration(&cfg)
        .await
        .map_err(|e| registry_error(ctx, "", e))?;
    Ok(json!({ "registryScanningConfiguration": cfg }))
}

pub(super) async fn get_registry_configuration(
    ctx: &Ctx<'_>,
    body: &[u8],
) -> Result<Value, EcrError> {
    let _: Value = parse(body)?;
    ctx.authorize("*").await?;
    let (_, cfg) = ctx
        .registry
        .registry_scanning_configuration()
        .await
        .map_err(|e| registry_error(ctx, "", e))?;
    Ok(json!({"registryId": ctx.account(), "scanningConfiguration": cfg}))
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct BatchGetRequest {
    repository_names: Option<Vec<String>>,
}

/// BatchGetRepositoryScanningConfiguration: per repository its `scanOnPush`, the
/// frequency the registry configuration gives it and the filters that decided it; a
/// missing repository is a `REPOSITORY_NOT_FOUND` failure, not an error.
pub(super) async fn batch_get_repository_configuration(
    ctx: &Ctx<'_>,
    body: &[u8],
) -> Result<Value, EcrError> {
    let r: BatchGetRequest = parse(body)?;
    let names = validate::required(r.repository_names, "repositoryNames")?;
    validate::list(&names, "repositoryNames", 1, 25)?;
    let mut configurations = Vec::new();
    let mut failures = Vec::new();
    for n in &names {
        let name = validate::repository_name(n, "repositoryNames")?;
        ctx.authorize_repo(&name).await?;
        match ctx.registry.repository_scanning(&name).await {
            Ok((scan_on_push, scanning)) => configurations.push(json!({
                "repositoryArn": ctx.iam.repository_arn(name.as_str()),
                "repositoryName": name.as_str(),
                "scanOnPush": scan_on_push,
                "scanFrequency": scanning.frequency.as_str(),
                "appliedScanFilters": scanning.applied_filters,
            })),
            Err(berth_registry::RegistryError::NameUnknown(_)) => failures.push(json!({
                "repositoryName": name.as_str(),
                "failureCode": "REPOSITORY_NOT_FOUND",
                "failureReason": format!(
                    "The repository with name '{name}' does not exist in the registry with id '{}'",
                    ctx.account()
                ),
            })),
            Err(e) => return Err(registry_error(ctx, name.as_str(), e)),
        }
    }
    Ok(json!({"scanningConfigurations": configurations, "failures": failures}))
}
