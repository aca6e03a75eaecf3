//! The closed set of ECR operations: what `X-Amz-Target` names, the IAM action each
//! needs, and whether Berth serves it yet. `docs/ecr-api.md` is checked against
//! [`Operation::ALL`] by `tests/docs.rs`, so the documentation cannot drift.

use std::fmt;

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

macro_rules! operations {
    ($($name:ident => $support:expr,)*) => {
        /// An ECR operation (botocore `ecr` 2015-09-21 model, plus the replication
        /// backfill operations of newer models).
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum Operation {
            $(
                #[doc = concat!("`", stringify!($name), "`")]
                $name,
            )*
        }

        impl Operation {
            /// Every operation, in the model's (alphabetical) order.
            pub const ALL: &'static [Operation] = &[$(Operation::$name,)*];

            /// The operation's name, as in `X-Amz-Target` after the prefix.
            pub fn name(self) -> &'static str {
                match self {
                    $(Operation::$name => stringify!($name),)*
                }
            }

            /// Whether Berth serves it.
            pub fn support(self) -> Support {
                match self {
                    $(Operation::$name => $support,)*
                }
            }
        }
    };
}

use Support::{NotYet, Supported};

const REPLICATION: Support = NotYet("replication");
const CACHE: Support = NotYet("pull-through cache");
const SCANNING: Support = NotYet("image scanning");
const LIFECYCLE: Support = NotYet("lifecycle policies");
const TEMPLATES: Support = NotYet("repository creation templates");
const SIGNING: Support = NotYet("image signing");
const SETTINGS: Support = NotYet("account settings");
const ARCHIVE: Support = NotYet("image archival");
const REFERRERS: Support = NotYet("ECR referrer listing (use the OCI referrers API)");
const PULL_TIME: Support = NotYet("pull-time update exclusions");

operations! {
    BatchCheckLayerAvailability => Supported,
    BatchDeleteImage => Supported,
    BatchGetImage => Supported,
    BatchGetRepositoryScanningConfiguration => SCANNING,
    CompleteLayerUpload => Supported,
    CreatePullThroughCacheRule => CACHE,
    CreateRepository => Supported,
    CreateRepositoryCreationTemplate => TEMPLATES,
    DeleteLifecyclePolicy => LIFECYCLE,
    DeletePullThroughCacheRule => CACHE,
    DeleteRegistryPolicy => Supported,
    DeleteRepository => Supported,
    DeleteRepositoryCreationTemplate => TEMPLATES,
    DeleteRepositoryPolicy => Supported,
    DeleteSigningConfiguration => SIGNING,
    DeregisterPullTimeUpdateExclusion => PULL_TIME,
    DescribeImageReplicationStatus => REPLICATION,
    DescribeImageScanFindings => SCANNING,
    DescribeImageSigningStatus => SIGNING,
    DescribeImages => Supported,
    DescribePullThroughCacheRules => CACHE,
    DescribeRegistry => Supported,
    DescribeReplicationBackfillResults => REPLICATION,
    DescribeRepositories => Supported,
    DescribeRepositoryCreationTemplates => TEMPLATES,
    GetAccountSetting => SETTINGS,
    GetAuthorizationToken => Supported,
    GetDownloadUrlForLayer => Supported,
    GetLifecyclePolicy => LIFECYCLE,
    GetLifecyclePolicyPreview => LIFECYCLE,
    GetRegistryPolicy => Supported,
    GetRegistryScanningConfiguration => SCANNING,
    GetRepositoryPolicy => Supported,
    GetSigningConfiguration => SIGNING,
    InitiateLayerUpload => Supported,
    ListImageReferrers => REFERRERS,
    ListImages => Supported,
    ListPullTimeUpdateExclusions => PULL_TIME,
    ListReplicationBackfills => REPLICATION,
    ListTagsForResource => Supported,
    PutAccountSetting => SETTINGS,
    PutImage => Supported,
    PutImageScanningConfiguration => SCANNING,
    PutImageTagMutability => Supported,
    PutLifecyclePolicy => LIFECYCLE,
    PutRegistryPolicy => Supported,
    PutRegistryScanningConfiguration => SCANNING,
    PutReplicationConfiguration => REPLICATION,
    PutSigningConfiguration => SIGNING,
    RegisterPullTimeUpdateExclusion => PULL_TIME,
    SetRepositoryPolicy => Supported,
    StartImageScan => SCANNING,
    StartLifecyclePolicyPreview => LIFECYCLE,
    StartReplicationBackfill => REPLICATION,
    StopReplicationBackfill => REPLICATION,
    TagResource => Supported,
    UntagResource => Supported,
    UpdateImageStorageClass => ARCHIVE,
    UpdatePullThroughCacheRule => CACHE,
    UpdateRepositoryCreationTemplate => TEMPLATES,
    UploadLayerPart => Supported,
    ValidatePullThroughCacheRule => CACHE,
}

impl Operation {
    /// The operation an `X-Amz-Target` value names, if any.
    pub fn from_target(target: &str) -> Option<Operation> {
        let name = target.strip_prefix(TARGET_PREFIX)?.strip_prefix('.')?;
        Operation::ALL.iter().copied().find(|o| o.name() == name)
    }

    /// The IAM action that authorises it: `ecr:<Name>`.
    pub fn action(self) -> String {
        format!("ecr:{}", self.name())
    }
}

impl fmt::Display for Operation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets_name_operations() {
        assert_eq!(
            Operation::from_target("AmazonEC2ContainerRegistry_V20150921.CreateRepository"),
            Some(Operation::CreateRepository)
        );
        assert_eq!(
            Operation::from_target("AmazonEC2ContainerRegistry_V20150921.Nope"),
            None
        );
        assert_eq!(Operation::from_target("CreateRepository"), None);
        assert_eq!(Operation::PutImage.action(), "ecr:PutImage");
        let mut names: Vec<_> = Operation::ALL.iter().map(|o| o.name()).collect();
        let n = names.len();
        names.sort();
        names.dedup();
        assert_eq!(names.len(), n);
        assert_eq!(n, 62);
    }
}
