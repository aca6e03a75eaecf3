//! One function per supported operation, grouped by area, and the table that maps an
//! [`Operation`] to its function. Each handler validates, authorises, calls a service and
//! shapes the answer; [`registry_error`] is where service errors become ECR errors.

mod access;
mod images;
mod layers;
mod lifecycle;
mod replication;
mod repositories;
mod scanning;
mod templates;

use crate::error::{EcrError, EcrErrorType};
use crate::operation::{support, Operation, Support};
use crate::Ctx;
use berth_registry::RegistryError;
use serde_json::Value;

/// Runs the operation of `ctx` on `body`.
pub(crate) async fn dispatch(ctx: &Ctx<'_>, body: &[u8]) -> Result<Value, EcrError> {
    use Operation as O;
    match ctx.op {
        O::CreateRepository => repositories::create(ctx, body).await,
        O::DescribeRepositories => repositories::describe(ctx, body).await,
        O::DeleteRepository => repositories::delete(ctx, body).await,
        O::PutImageTagMutability => repositories::put_tag_mutability(ctx, body).await,
        O::TagResource => repositories::tag_resource(ctx, body).await,
        O::UntagResource => repositories::untag_resource(ctx, body).await,
        O::ListTagsForResource => repositories::list_tags(ctx, body).await,
        O::DescribeImages => images::describe(ctx, body).await,
        O::ListImages => images::list(ctx, body).await,
        O::BatchGetImage => images::batch_get(ctx, body).await,
        O::PutImage => images::put(ctx, body).await,
        O::BatchDeleteImage => images::batch_delete(ctx, body).await,
        O::BatchCheckLayerAvailability => layers::check(ctx, body).await,
        O::InitiateLayerUpload => layers::initiate(ctx, body).await,
        O::UploadLayerPart => layers::upload_part(ctx, body).await,
        O::CompleteLayerUpload => layers::complete(ctx, body).await,
        O::GetDownloadUrlForLayer => layers::download_url(ctx, body).await,
        O::GetAuthorizationToken => access::authorization_token(ctx, body).await,
        O::SetRepositoryPolicy => access::set_repository_policy(ctx, body).await,
        O::GetRepositoryPolicy => access::get_repository_policy(ctx, body).await,
        O::DeleteRepositoryPolicy => access::delete_repository_policy(ctx, body).await,
        O::PutRegistryPolicy => access::put_registry_policy(ctx, body).await,
        O::GetRegistryPolicy => access::get_registry_policy(ctx, body).await,
        O::DeleteRegistryPolicy => access::delete_registry_policy(ctx, body).await,
        O::DescribeRegistry => replication::describe_registry(ctx, body).await,
        O::PutReplicationConfiguration => replication::put_configuration(ctx, body).await,
        O::DescribeImageReplicationStatus => replication::describe_image_status(ctx, body).await,
        O::PutLifecyclePolicy => lifecycle::put(ctx, body).await,
        O::GetLifecyclePolicy => lifecycle::get(ctx, body).await,
        O::DeleteLifecyclePolicy => lifecycle::delete(ctx, body).await,
        O::StartLifecyclePolicyPreview => lifecycle::start_preview(ctx, body).await,
        O::GetLifecyclePolicyPreview => lifecycle::get_preview(ctx, body).await,
        O::PutImageScanningConfiguration => scanning::put_configuration(ctx, body).await,
        O::StartImageScan => scanning::start(ctx, body).await,
        O::DescribeImageScanFindings => scanning::describe_findings(ctx, body).await,
        O::PutRegistryScanningConfiguration => {
            scanning::put_registry_configuration(ctx, body).await
        }
        O::GetRegistryScanningConfiguration => {
            scanning::get_registry_configuration(ctx, body).await
        }
        O::BatchGetRepositoryScanningConfiguration => {
            scanning::batch_get_repository_configuration(ctx, body).await
        }
        O::CreateRepositoryCreationTemplate => templates::create(ctx, body).await,
        O::DescribeRepositoryCreationTemplates => templates::describe(ctx, body).await,
        O::UpdateRepositoryCreationTemplate => templates::update(ctx, body).await,
        O::DeleteRepositoryCreationTemplate => templates::delete(ctx, body).await,
        op => not_yet(ctx, op, body).await,
    }
}

/// The members every operation naming a repository has (botocore input shapes).
#[derive(serde::Deserialize)]
#[serde(rename_all = "camelCase")]
struct RepositoryTarget {
    registry_id: Option<String>,
    repository_name: Option<String>,
}

/// An operation Berth does not serve yet: the input is checked as far as ECR would
/// before anything else (valid JSON; for an operation naming a repository
/// ([`operation::names_repository`](crate::operation::names_repository)), its
/// `registryId` and `repositoryName`, the authorisation on the repository, and that the
/// repository exists), then `UnsupportedOperationException`. One mechanism for every
/// such operation, driven by the model's input shapes, not per-operation code.
async fn not_yet(ctx: &Ctx<'_>, op: Operation, body: &[u8]) -> Result<Value, EcrError> {
    if crate::operation::names_repository(op) {
        let r: RepositoryTarget = crate::wire::parse(body)?;
        ctx.check_registry(r.registry_id.as_deref())?;
        let name =
            crate::validate::required_repository(r.repository_name.as_deref(), "repositoryName")?;
        ctx.authorize_repo(&name).await?;
        ctx.registry
            .repository(&name)
            .await
            .map_err(|e| registry_error(ctx, name.as_str(), e))?;
    } else {
        let _: Value = crate::wire::parse(body)?;
    }
    Err(unsupported(op))
}

/// The answer to an operation Berth does not serve yet.
fn unsupported(op: Operation) -> EcrError {
    let what = match support(op) {
        Support::NotYet(capability) => capability,
        Support::Supported => "this operation",
    };
    EcrError::new(
        EcrErrorType::UnsupportedOperationException,
        format!(
            "{} is not supported by this Berth registry yet: it belongs to {what}, which \
             Berth does not implement yet (docs/ecr-api.md lists the supported operations)",
            op.name()
        ),
    )
}

/// The ECR error for a service error about repository `repo`.
pub(crate) fn registry_error(ctx: &Ctx<'_>, repo: &str, e: RegistryError) -> EcrError {
    use RegistryError as E;
    let account = ctx.account();
    match e {
        E::NameUnknown(_) | E::NotCreatedOnPush(_) => ctx.repository_not_found(repo),
        E::NameInvalid(m) => EcrError::invalid_parameter("repositoryName", m),
        E::TagInvalid(m) => EcrError::invalid_parameter("imageTag", m),
        E::BlobUnknown(d) => EcrError::new(EcrErrorType::LayersNotFoundException,
            format!("The layer with digest '{d}' does not exist in the repository with name '{repo}' in the registry with id '{account}'"),
        ),
        E::BlobUploadUnknown(id) => EcrError::new(EcrErrorType::UploadNotFoundException,
            format!("The upload with id '{id}' does not exist in the repository with name '{repo}' in the registry with id '{account}' (never started, completed, or expired)"),
        ),
        E::RangeInvalid { current, got } => EcrError::new(EcrErrorType::InvalidLayerPartException,
            format!("The part starts at byte {got}, but the upload holds {current} bytes; the next part must start at byte {current}"),
        )
        .with("registryId", account)
        .with("repositoryName", repo)
        .with("lastValidByteReceived", current.saturating_sub(1)),
        E::BlobUploadInvalid(m) | E::Body(m) | E::SizeInvalid(m) => {
            EcrError::new(EcrErrorType::InvalidLayerPartException, m)
        }
        E::DigestInvalid(m) => EcrError::invalid_parameter("digest", m),
        E::ManifestUnknown(r) => EcrError::new(EcrErrorType::ImageNotFoundException,
            format!("The image '{r}' does not exist within the repository with name '{repo}' in the registry with id '{account}'"),
        ),
        E::ManifestInvalid(m) | E::ManifestTooLarge(m) => {
            EcrError::invalid_parameter("imageManifest", m)
        }
        E::ManifestBlobUnknown { kind, missing } => {
            let list = missing.iter().map(|d| format!("'{d}'")).collect::<Vec<_>>().join(", ");
            if kind == "manifests" {
                EcrError::new(EcrErrorType::ReferencedImagesNotFoundException,
                    format!("The following images referenced in the manifest list were not found in the repository with name '{repo}': [{list}]"),
                )
            } else {
                EcrError::new(EcrErrorType::LayersNotFoundException,
                    format!("Layers with digests [{list}] required for pushing image into repository with name '{repo}' in the registry with id '{account}' do not exist"),
                )
            }
        }
        E::Conflict(m) => EcrError::invalid_parameter("imageIds", m),
        E::PullBlocked(m) => EcrError::new(EcrErrorType::AccessDeniedException, m),
        e @ E::TagImmutable { .. } => EcrError::new(EcrErrorType::ImageTagAlreadyExistsException, e.to_string()),
        E::RepositoryAlreadyExists(_) => EcrError::new(EcrErrorType::RepositoryAlreadyExistsException,
            format!("The repository with name '{repo}' already exists in the registry with id '{account}'"),
        ),
        E::RepositoryNotEmpty(_) => EcrError::new(EcrErrorType::RepositoryNotEmptyException,
            format!("The repository with name '{repo}' in registry with id '{account}' cannot be deleted because it still contains images"),
        ),
        E::ImageAlreadyExists { digest, tag } => EcrError::new(EcrErrorType::ImageAlreadyExistsException,
            match tag {
                Some(t) => format!("Image with digest '{digest}' and tag '{t}' already exists in the repository with name '{repo}' in registry with id '{account}'"),
                None => format!("Image with digest '{digest}' already exists in the repository with name '{repo}' in registry with id '{account}'"),
            },
        ),
        E::ManifestDigestMismatch { given, computed } => EcrError::new(EcrErrorType::ImageDigestDoesNotMatchException,
            format!("The image digest '{given}' does not match the digest '{computed}' calculated for the manifest"),
        ),
        E::TooManyTags(m) => EcrError::new(EcrErrorType::TooManyTagsException, m),
        E::EmptyUpload(id) => EcrError::new(EcrErrorType::EmptyUploadException,
            format!("The upload with id '{id}' in the repository with name '{repo}' contains no layer parts"),
        ),
        E::BlobExists(d) => EcrError::new(EcrErrorType::LayerAlreadyExistsException,
            format!("The layer with digest '{d}' already exists in the repository with name '{repo}' in registry with id '{account}'"),
        ),
        E::LifecyclePolicyInvalid(m) => EcrError::invalid_parameter(
            "LifecyclePolicyText",
            format!("Lifecycle policy validation failure: {m}"),
        ),
        E::LifecyclePolicyNotFound(_) => EcrError::new(EcrErrorType::LifecyclePolicyNotFoundException,
            format!("Lifecycle policy does not exist for the repository with name '{repo}' in the registry with id '{account}'"),
        ),
        E::LifecyclePreviewInProgress(_) => EcrError::new(EcrErrorType::LifecyclePolicyPreviewInProgressException,
            format!("Previous lifecycle policy preview request has not been completed for the repository with name '{repo}' in the registry with id '{account}'"),
        ),
        E::LifecyclePreviewNotFound(_) => EcrError::new(EcrErrorType::LifecyclePolicyPreviewNotFoundException,
            format!("There is no dry run for the repository with name '{repo}' in the registry with id '{account}'"),
        ),
        // Both kinds are InvalidParameterException on the wire (the adapter declares no
        // ValidationException; botocore checks the model's shapes before sending).
        E::ReplicationConfigInvalid(e) => {
            EcrError::new(EcrErrorType::InvalidParameterException, e.message)
        }
        E::TemplateAlreadyExists(p) => EcrError::new(EcrErrorType::TemplateAlreadyExistsException,
            format!("The repository creation template with prefix '{p}' already exists in the registry with id '{account}'"),
        ),
        E::TemplateNotFound(p) => EcrError::new(EcrErrorType::TemplateNotFoundException,
            format!("The repository creation template with prefix '{p}' does not exist in the registry with id '{account}'"),
        ),
        E::Internal(m) => EcrError::server(m),
    }
}
