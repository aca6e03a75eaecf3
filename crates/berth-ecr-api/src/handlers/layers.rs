//! BatchCheckLayerAvailability, InitiateLayerUpload, UploadLayerPart,
//! CompleteLayerUpload, GetDownloadUrlForLayer — over the registry's own upload
//! sessions, so a layer uploaded here is the same blob a `docker push` would store.

use super::registry_error;
use crate::error::{EcrError, EcrErrorType};
use crate::wire::parse;
use crate::{validate, Ctx};
use base64::Engine;
use berth_core::Digest;
use berth_registry::RegistryError;
use futures::StreamExt;
use serde::Deserialize;
use serde_json::{json, Value};

/// The part size `InitiateLayerUpload` suggests (ECR's largest part is 10 MiB by the
/// quota page, 20 MiB by the API; any size is accepted here).
const PART_SIZE: u64 = 10 << 20;
/// Largest decoded `layerPartBlob` (the model's limit).
const MAX_PART: usize = 20_971_520;

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct LayerRequest {
    registry_id: Option<String>,
    repository_name: Option<String>,
    layer_digests: Option<Vec<String>>,
    layer_digest: Option<String>,
    upload_id: Option<String>,
    part_first_byte: Option<i64>,
    part_last_byte: Option<i64>,
    layer_part_blob: Option<String>,
}

pub(super) async fn check(ctx: &Ctx<'_>, body: &[u8]) -> Result<Value, EcrError> {
    let r: LayerRequest = parse(body)?;
    ctx.check_registry(r.registry_id.as_deref())?;
    let name = validate::required_repository(r.repository_name.as_deref(), "repositoryName")?;
    let digests = validate::required(r.layer_digests, "layerDigests")?;
    validate::list(&digests, "layerDigests", 1, 100)?;
    for d in &digests {
        validate::length(d, "layerDigests", 0, 1000)?;
    }
    ctx.authorize_repo(&name).await?;
    let err = |e| registry_error(ctx, name.as_str(), e);
    ctx.registry.repository(&name).await.map_err(err)?;
    let mut layers = Vec::new();
    let mut failures = Vec::new();
    for d in &digests {
        if d.is_empty() {
            failures.push(json!({"layerDigest": d, "failureCode": "MissingLayerDigest", "failureReason": "Missing layer digest"}));
            continue;
        }
        let Ok(digest) = d.parse::<Digest>() else {
            failures.push(json!({"layerDigest": d, "failureCode": "InvalidLayerDigest", "failureReason": format!("Invalid layer digest: it must satisfy the regular expression '{}' with a sha256 or sha512 digest", validate::LAYER_DIGEST_PATTERN)}));
            continue;
        };
        match ctx.registry.blob_size(&name, &digest).await {
            Ok(size) => layers.push(
                json!({"layerDigest": d, "layerAvailability": "AVAILABLE", "layerSize": size}),
            ),
            Err(RegistryError::BlobUnknown(_)) => {
                layers.push(json!({"layerDigest": d, "layerAvailability": "UNAVAILABLE"}))
            }
            Err(e) => return Err(err(e)),
        }
    }
    Ok(json!({ "layers": layers, "failures": failures }))
}

pub(super) async fn initiate(ctx: &Ctx<'_>, body: &[u8]) -> Result<Value, EcrError> {
    let r: LayerRequest = parse(body)?;
    ctx.check_registry(r.registry_id.as_deref())?;
    let name = validate::required_repository(r.repository_name.as_deref(), "repositoryName")?;
    ctx.authorize_repo(&name).await?;
    let id = ctx
        .registry
        .start_layer_upload(&name)
        .await
        .map_err(|e| registry_error(ctx, name.as_str(), e))?;
    Ok(json!({ "uploadId": id, "partSize": PART_SIZE }))
}

fn upload_id(v: Option<&str>) -> Result<&str, EcrError> {
    let id = validate::required(v, "uploadId")?;
    let ok = id.len() == 36
        && id.bytes().enumerate().all(|(i, b)| match i {
            8 | 13 | 18 | 23 => b == b'-',
            _ => b.is_ascii_hexdigit(),
        });
    if ok {
        Ok(id)
    } else {
        Err(EcrError::invalid_parameter(
            "uploadId",
            "must satisfy regular expression '[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}'",
        ))
    }
}

pub(super) async fn upload_part(ctx: &Ctx<'_>, body: &[u8]) -> Result<Value, EcrError> {
    let r: LayerRequest = parse(body)?;
    ctx.check_registry(r.registry_id.as_deref())?;
    let name = validate::required_repository(r.repository_name.as_deref(), "repositoryName")?;
    let id = upload_id(r.upload_id.as_deref())?;
    let first = validate::non_negative(
        validate::required(r.part_first_byte, "partFirstByte")?,
        "partFirstByte",
    )?;
    let last = validate::non_negative(
        validate::required(r.part_last_byte, "partLastByte")?,
        "partLastByte",
    )?;
    let blob = validate::required(r.layer_part_blob, "layerPartBlob")?;
    let data = base64::engine::general_purpose::STANDARD
        .decode(blob.as_bytes())
        .map_err(|e| {
            EcrError::new(
                EcrErrorType::SerializationException,
                format!("layerPartBlob is not valid base64: {e}"),
            )
        })?;
    drop(blob);
    if data.len() > MAX_PART {
        return Err(EcrError::invalid_parameter(
            "layerPartBlob",
            format!("Member must have length less than or equal to {MAX_PART}"),
        ));
    }
    ctx.authorize_repo(&name).await?;
    let part_error = |msg: String| {
        EcrError::new(EcrErrorType::InvalidLayerPartException, msg)
            .with("registryId", ctx.account())
            .with("repositoryName", name.as_str())
            .with("uploadId", id)
    };
    if data.is_empty() || last < first || last - first + 1 != data.len() as u64 {
        return Err(part_error(format!(
            "partFirstByte {first} and partLastByte {last} describe {} bytes, but layerPartBlob holds {}",
            (last + 1).saturating_sub(first),
            data.len()
        )));
    }
    let stream: berth_registry::ByteStream =
        futures::stream::once(futures::future::ready(Ok(bytes::Bytes::from(data)))).boxed();
    let size = ctx
        .registry
        .append_upload(&name, id, Some(first), stream)
        .await
        .map_err(|e| registry_error(ctx, name.as_str(), e))?;
    Ok(json!({
        "registryId": ctx.account(),
        "repositoryName": name.as_str(),
        "uploadId": id,
        "lastByteReceived": size.saturating_sub(1),
    }))
}

pub(super) async fn complete(ctx: &Ctx<'_>, body: &[u8]) -> Result<Value, EcrError> {
    let r: LayerRequest = parse(body)?;
    ctx.check_registry(r.registry_id.as_deref())?;
    let name = validate::required_repository(r.repository_name.as_deref(), "repositoryName")?;
    let id = upload_id(r.upload_id.as_deref())?;
    let digests = validate::required(r.layer_digests, "layerDigests")?;
    validate::list(&digests, "layerDigests", 1, 100)?;
    let digests = digests
        .iter()
        .map(|d| validate::digest(d, "layerDigests"))
        .collect::<Result<Vec<_>, _>>()?;
    // One upload is one layer: the first digest names it.
    let digest = &digests[0];
    ctx.authorize_repo(&name).await?;
    match ctx.registry.finish_layer_upload(&name, id, digest).await {
        Ok(_) => Ok(json!({
            "registryId": ctx.account(),
            "repositoryName": name.as_str(),
            "uploadId": id,
            "layerDigest": digest.to_string(),
        })),
        Err(RegistryError::DigestInvalid(m)) => Err(EcrError::new(EcrErrorType::InvalidLayerException,
            format!("The layer digest calculated for upload id '{id}' does not match the provided digest '{digest}': {m}. The upload has been discarded; start again with InitiateLayerUpload."),
        )),
        Err(e) => Err(registry_error(ctx, name.as_str(), e)),
    }
}

pub(super) async fn download_url(ctx: &Ctx<'_>, body: &[u8]) -> Result<Value, EcrError> {
    let r: LayerRequest = parse(body)?;
    ctx.check_registry(r.registry_id.as_deref())?;
    let name = validate::required_repository(r.repository_name.as_deref(), "repositoryName")?;
    let digest = validate::digest(
        validate::required(r.layer_digest.as_deref(), "layerDigest")?,
        "layerDigest",
    )?;
    ctx.authorize_repo(&name).await?;
    let err = |e| registry_error(ctx, name.as_str(), e);
    ctx.registry.repository(&name).await.map_err(err)?;
    ctx.registry.blob_size(&name, &digest).await.map_err(err)?;
    if !ctx
        .registry
        .blob_in_image(&name, &digest)
        .await
        .map_err(err)?
    {
        return Err(EcrError::new(EcrErrorType::LayerInaccessibleException,
            format!(
                "The layer with digest '{digest}' is not referenced by any image in the repository with name '{name}'; download URLs are issued only for layers of images"
            ),
        ));
    }
    let (query, _expires) =
        ctx.iam
            .presign_blob_query(&ctx.caller, name.as_str(), &digest.to_string());
    Ok(json!({
        "downloadUrl": format!("{}://{}/v2/{name}/blobs/{digest}?{query}", ctx.scheme, ctx.host),
        "layerDigest": digest.to_string(),
    }))
}
