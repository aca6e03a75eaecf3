//! The closed set of ECR operations: what `X-Amz-Target` names, the IAM action each
//! needs, and whether Berth serves it yet. `docs/ecr-api.md` is checked against
//! [`Operation::ALL`] by `tests/docs.rs`, so the documentation cannot drift.

/// The `X-Amz-Target` prefix of every ECR operation (botocore `targetPrefix`).
pub const TARGET_PREFIX: &str = "AmazonEC2ContainerRegistry_V20150921";

/// Whether Berth serves an operation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Support {
    /// Implemented.
    Supported,
    /// Belongs to a capability Berth does not have yet (named); answered with
    /// `UnsupportedOperationException`, never a fake success.
    NotYet(&'static str),
}

/// An ECR operation: the same closed list as the IAM actions that authorise them
/// ([`EcrAction`], one list for both), so the operation `X` is authorised as `ecr:X`.
pub use berth_iam::EcrAction as Operation;

use Support::{NotYet, Supported};

const REPLICATION: Support = NotYet("replication");
const CACHE: Support = NotYet("pull-through cache");
const SIGNING: Support = NotYet("image signing");
const SETTINGS: Support = NotYet("account settings");
const ARCHIVE: Support = NotYet("image archival");
const REFERRERS: Support = NotYet("ECR referrer listing (use the OCI referrers API)");
const PULL_TIME: Support = NotYet("pull-time update exclusions");

/// Whether Berth serves `op`: one row per operation of the model, so a new operation
/// cannot be added to [`Operation`] without deciding its support here.
pub fn support(op: Operation) -> Support {
    match op {
        Operation::BatchCheckLayerAvailability => Supported,
        Operation::BatchDeleteImage => Supported,
        Operation::BatchGetImage => Supported,
        Operation::BatchGetRepositoryScanningConfiguration => Supported,
        Operation::CompleteLayerUpload => Supported,
        Operation::CreatePullThroughCacheRule => CACHE,
        Operation::CreateRepository => Supported,
        Operation::CreateRepositoryCreationTemplate => Supported,
        Operation::DeleteLifecyclePolicy => Supported,
        Operation::DeletePullThroughCacheRule => CACHE,
        Operation::DeleteRegistryPolicy => Supported,
        Operation::DeleteRepository => Supported,
        Operation::DeleteRepositoryCreationTemplate => Supported,
        Operation::DeleteRepositoryPolicy => Supported,
        Operation::DeleteSigningConfiguration => SIGNING,
        Operation::DeregisterPullTimeUpdateExclusion => PULL_TIME,
        Operation::DescribeImageReplicationStatus => Supported,
        Operation::DescribeImageScanFindings => Supported,
        Operation::DescribeImageSigningStatus => SIGNING,
        Operation::DescribeImages => Supported,
        Operation::DescribePullThroughCacheRules => CACHE,
        Operation::DescribeRegistry => Supported,
        Operation::DescribeReplicationBackfillResults => REPLICATION,
        Operation::DescribeRepositories => Supported,
        Operation::DescribeRepositoryCreationTemplates => Supported,
        Operation::GetAccountSetting => SETTINGS,
        Operation::GetAuthorizationToken => Supported,
        Operation::GetDownloadUrlForLayer => Supported,
        Operation::GetLifecyclePolicy => Supported,
        Operation::GetLifecyclePolicyPreview => Supported,
        Operation::GetRegistryPolicy => Supported,
        Operation::GetRegistryScanningConfiguration => Supported,
        Operation::GetRepositoryPolicy => Supported,
        Operation::GetSigningConfiguration => SIGNING,
        Operation::InitiateLayerUpload => Supported,
        Operation::ListImageReferrers => REFERRERS,
        Operation::ListImages => Supported,
        Operation::ListPullTimeUpdateExclusions => PULL_TIME,
        Operation::ListReplicationBackfills => REPLICATION,
        Operation::ListTagsForResource => Supported,
        Operation::PutAccountSetting => SETTINGS,
        Operation::PutImage => Supported,
        Operation::PutImageScanningConfiguration => Supported,
        Operation::PutImageTagMutability => Supported,
        Operation::PutLifecyclePolicy => Supported,
        Operation::PutRegistryPolicy => Supported,
        Operation::PutRegistryScanningConfiguration => Supported,
        Operation::PutReplicationConfiguration => Supported,
        Operation::PutSigningConfiguration => SIGNING,
        Operation::RegisterPullTimeUpdateExclusion => PULL_TIME,
        Operation::SetRepositoryPolicy => Supported,
        Operation::StartImageScan => Supported,
        Operation::StartLifecyclePolicyPreview => Supported,
        Operation::StartReplicationBackfill => REPLICATION,
        Operation::StopReplicationBackfill => REPLICATION,
        Operation::TagResource => Supported,
        Operation::UntagResource => Supported,
        Operation::UpdateImageStorageClass => ARCHIVE,
        Operation::UpdatePullThroughCacheRule => CACHE,
        Operation::UpdateRepositoryCreationTemplate => Supported,
        Operation::UploadLayerPart => Supported,
        Operation::ValidatePullThroughCacheRule => CACHE,
    }
}

/// Whether the operation's input names one repository: its botocore input shape has a
/// required `repositoryName` member (checked against the model by `tests/docs.rs`).
/// Operations Berth does not serve yet still validate it and look the repository up
/// before refusing, as ECR would (issue 17): a missing repository is
/// `RepositoryNotFoundException` for them too.
pub fn names_repository(op: Operation) -> bool {
    matches!(
        op,
        Operation::BatchCheckLayerAvailability
            | Operation::BatchDeleteImage
            | Operation::BatchGetImage
            | Operation::CompleteLayerUpload
            | Operation::CreateRepository
            | Operation::DeleteLifecyclePolicy
            | Operation::DeleteRepository
            | Operation::DeleteRepositoryPolicy
            | Operation::DescribeImageReplicationStatus
            | Operation::DescribeImageScanFindings
            | Operation::DescribeImageSigningStatus
            | Operation::DescribeImages
            | Operation::GetDownloadUrlForLayer
            | Operation::GetLifecyclePolicy
            | Operation::GetLifecyclePolicyPreview
            | Operation::GetRepositoryPolicy
            | Operation::InitiateLayerUpload
            | Operation::ListImageReferrers
            | Operation::ListImages
            | Operation::PutImage
            | Operation::PutImageScanningConfiguration
            | Operation::PutImageTagMutability
            | Operation::PutLifecyclePolicy
            | Operation::SetRepositoryPolicy
            | Operation::StartImageScan
            | Operation::StartLifecyclePolicyPreview
            | Operation::UpdateImageStorageClass
            | Operation::UploadLayerPart
    )
}

/// The operation an `X-Amz-Target` value names, if any.
pub fn from_target(target: &str) -> Option<Operation> {
    Operation::from_name(target.strip_prefix(TARGET_PREFIX)?.strip_prefix('.')?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets_name_operations() {
        assert_eq!(
            from_target("AmazonEC2ContainerRegistry_V20150921.CreateRepository"),
            Some(Operation::CreateRepository)
        );
        assert_eq!(
            from_target("AmazonEC2ContainerRegistry_V20150921.Nope"),
            None
        );
        assert_eq!(from_target("CreateRepository"), None);
        assert_eq!(Operation::PutImage.as_str(), "ecr:PutImage");
    }
}
