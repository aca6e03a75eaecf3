//! The one vocabulary of IAM actions that Berth authorises.
//!
//! Every API adapter names the action a request needs with a value of [`Action`], never a
//! string literal, so the set of actions a policy can grant is closed and checked by the
//! compiler. The ECR actions are exactly the operations of the ECR API (botocore `ecr`
//! 2015-09-21 model, ECR_REFERENCE §2): IAM's action for an ECR operation is
//! `ecr:<OperationName>` (AWS Service Authorization Reference, "Actions defined by Amazon
//! Elastic Container Registry"). The OCI Distribution API has no actions of its own; ECR
//! checks the ECR action of the equivalent operation (ECR_REFERENCE §4.2), so the OCI
//! adapter uses these too. The EventBridge API's actions are [`EventsAction`]
//! (`events:<OperationName>`). Later services (STS `sts:*`, Secrets Manager
//! `secretsmanager:*`) add a variant to [`Action`] and a list like [`EcrAction`].

use std::fmt;

macro_rules! ecr_actions {
    ($($name:ident,)*) => {
        /// An ECR API operation, which is also the IAM action `ecr:<Name>` that authorises
        /// it (and the OCI requests ECR maps to it).
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub enum EcrAction {
            $(
                #[doc = concat!("`ecr:", stringify!($name), "`")]
                $name,
            )*
        }

        impl EcrAction {
            /// Every ECR action, in the model's (alphabetical) order.
            pub const ALL: &'static [EcrAction] = &[$(EcrAction::$name,)*];

            /// The operation's name, as in `X-Amz-Target` after the prefix
            /// (`PutImage`).
            pub fn name(self) -> &'static str {
                match self {
                    $(EcrAction::$name => stringify!($name),)*
                }
            }

            /// The IAM action name as policies write it (`ecr:PutImage`).
            pub fn as_str(self) -> &'static str {
                match self {
                    $(EcrAction::$name => concat!("ecr:", stringify!($name)),)*
                }
            }
        }
    };
}

ecr_actions! {
    BatchCheckLayerAvailability,
    BatchDeleteImage,
    BatchGetImage,
    BatchGetRepositoryScanningConfiguration,
    CompleteLayerUpload,
    CreatePullThroughCacheRule,
    CreateRepository,
    CreateRepositoryCreationTemplate,
    DeleteLifecyclePolicy,
    DeletePullThroughCacheRule,
    DeleteRegistryPolicy,
    DeleteRepository,
    DeleteRepositoryCreationTemplate,
    DeleteRepositoryPolicy,
    DeleteSigningConfiguration,
    DeregisterPullTimeUpdateExclusion,
    DescribeImageReplicationStatus,
    DescribeImageScanFindings,
    DescribeImageSigningStatus,
    DescribeImages,
    DescribePullThroughCacheRules,
    DescribeRegistry,
    DescribeReplicationBackfillResults,
    DescribeRepositories,
    DescribeRepositoryCreationTemplates,
    GetAccountSetting,
    GetAuthorizationToken,
    GetDownloadUrlForLayer,
    GetLifecyclePolicy,
    GetLifecyclePolicyPreview,
    GetRegistryPolicy,
    GetRegistryScanningConfiguration,
    GetRepositoryPolicy,
    GetSigningConfiguration,
    InitiateLayerUpload,
    ListImageReferrers,
    ListImages,
    ListPullTimeUpdateExclusions,
    ListReplicationBackfills,
    ListTagsForResource,
    PutAccountSetting,
    PutImage,
    PutImageScanningConfiguration,
    PutImageTagMutability,
    PutLifecyclePolicy,
    PutRegistryPolicy,
    PutRegistryScanningConfiguration,
    PutReplicationConfiguration,
    PutSigningConfiguration,
    RegisterPullTimeUpdateExclusion,
    SetRepositoryPolicy,
    StartImageScan,
    StartLifecyclePolicyPreview,
    StartReplicationBackfill,
    StopReplicationBackfill,
    TagResource,
    UntagResource,
    UpdateImageStorageClass,
    UpdatePullThroughCacheRule,
    UpdateRepositoryCreationTemplate,
    UploadLayerPart,
    ValidatePullThroughCacheRule,
}

impl EcrAction {
    /// The action whose operation name is `name` (`PutImage`; exact case, as
    /// `X-Amz-Target` carries it).
    pub fn from_name(name: &str) -> Option<EcrAction> {
        EcrAction::ALL.iter().copied().find(|a| a.name() == name)
    }
}

macro_rules! events_actions {
    ($($name:ident,)*) => {
        /// An EventBridge API operation (botocore `events` 2015-10-07 model), which is also
        /// the IAM action `events:<Name>` that authorises it (AWS Service Authorization
        /// Reference, "Actions defined by Amazon EventBridge").
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub enum EventsAction {
            $(
                #[doc = concat!("`events:", stringify!($name), "`")]
                $name,
            )*
        }

        impl EventsAction {
            /// Every EventBridge action, in the model's (alphabetical) order.
            pub const ALL: &'static [EventsAction] = &[$(EventsAction::$name,)*];

            /// The operation's name, as in `X-Amz-Target` after `AWSEvents.` (`PutRule`).
            pub fn name(self) -> &'static str {
                match self {
                    $(EventsAction::$name => stringify!($name),)*
                }
            }

            /// The IAM action name as policies write it (`events:PutRule`).
            pub fn as_str(self) -> &'static str {
                match self {
                    $(EventsAction::$name => concat!("events:", stringify!($name)),)*
                }
            }
        }
    };
}

events_actions! {
    ActivateEventSource,
    CancelReplay,
    CreateApiDestination,
    CreateArchive,
    CreateConnection,
    CreateEndpoint,
    CreateEventBus,
    CreatePartnerEventSource,
    DeactivateEventSource,
    DeauthorizeConnection,
    DeleteApiDestination,
    DeleteArchive,
    DeleteConnection,
    DeleteEndpoint,
    DeleteEventBus,
    DeletePartnerEventSource,
    DeleteRule,
    DescribeApiDestination,
    DescribeArchive,
    DescribeConnection,
    DescribeEndpoint,
    DescribeEventBus,
    DescribeEventSource,
    DescribePartnerEventSource,
    DescribeReplay,
    DescribeRule,
    DisableRule,
    EnableRule,
    ListApiDestinations,
    ListArchives,
    ListConnections,
    ListEndpoints,
    ListEventBuses,
    ListEventSources,
    ListPartnerEventSourceAccounts,
    ListPartnerEventSources,
    ListReplays,
    ListRuleNamesByTarget,
    ListRules,
    ListTagsForResource,
    ListTargetsByRule,
    PutEvents,
    PutPartnerEvents,
    PutPermission,
    PutRule,
    PutTargets,
    RemovePermission,
    RemoveTargets,
    StartReplay,
    TagResource,
    TestEventPattern,
    UntagResource,
    UpdateApiDestination,
    UpdateArchive,
    UpdateConnection,
    UpdateEndpoint,
    UpdateEventBus,
}

impl EventsAction {
    /// The action whose operation name is `name` (`PutRule`; exact case, as
    /// `X-Amz-Target` carries it).
    pub fn from_name(name: &str) -> Option<EventsAction> {
        EventsAction::ALL.iter().copied().find(|a| a.name() == name)
    }
}

/// ECR's IAM actions that are permissions only, not API operations (AWS Service
/// Authorization Reference, "Actions defined by Amazon ECR": "Permission only").
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum EcrPermission {
    /// `ecr:ReplicateImage`: what a destination registry's policy grants a source
    /// account so its replication may push into the destination (ECR_REFERENCE §2.5).
    ReplicateImage,
}

impl EcrPermission {
    /// Every permission-only ECR action.
    pub const ALL: &'static [EcrPermission] = &[EcrPermission::ReplicateImage];

    /// The name after `ecr:` (`ReplicateImage`).
    pub fn name(self) -> &'static str {
        match self {
            EcrPermission::ReplicateImage => "ReplicateImage",
        }
    }

    /// The IAM action name as policies write it (`ecr:ReplicateImage`).
    pub fn as_str(self) -> &'static str {
        match self {
            EcrPermission::ReplicateImage => "ecr:ReplicateImage",
        }
    }
}

/// An IAM action Berth authorises. Closed: adding a service adds a variant.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Action {
    /// `ecr:*` actions of ECR API operations.
    Ecr(EcrAction),
    /// `ecr:*` permission-only actions (no operation: `ecr:ReplicateImage`).
    EcrPermission(EcrPermission),
    /// `events:*` actions (the EventBridge API, issue 8).
    Events(EventsAction),
}

impl Action {
    /// The IAM action name as policies write it (`ecr:PutImage`).
    pub fn as_str(self) -> &'static str {
        match self {
            Action::Ecr(a) => a.as_str(),
            Action::EcrPermission(a) => a.as_str(),
            Action::Events(a) => a.as_str(),
        }
    }

    /// Parses an action name as policies write it (`ecr:PutImage`). Service prefixes and
    /// action names are case-insensitive in IAM (the IAM User Guide, "IAM JSON policy
    /// elements: Action"). `None` for a name no service of Berth defines, which is
    /// how `berth admin policy simulate` warns about a misspelt action.
    pub fn parse(name: &str) -> Option<Action> {
        let (service, action) = name.split_once(':')?;
        if service.eq_ignore_ascii_case("ecr") {
            EcrAction::ALL
                .iter()
                .copied()
                .find(|a| a.name().eq_ignore_ascii_case(action))
                .map(Action::Ecr)
                .or_else(|| {
                    EcrPermission::ALL
                        .iter()
                        .copied()
                        .find(|a| a.name().eq_ignore_ascii_case(action))
                        .map(Action::EcrPermission)
                })
        } else if service.eq_ignore_ascii_case("events") {
            EventsAction::ALL
                .iter()
                .copied()
                .find(|a| a.name().eq_ignore_ascii_case(action))
                .map(Action::Events)
        } else {
            None
        }
    }
}

impl From<EcrAction> for Action {
    fn from(a: EcrAction) -> Action {
        Action::Ecr(a)
    }
}

impl fmt::Display for Action {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl From<EcrPermission> for Action {
    fn from(a: EcrPermission) -> Action {
        Action::EcrPermission(a)
    }
}

impl From<EventsAction> for Action {
    fn from(a: EventsAction) -> Action {
        Action::Events(a)
    }
}

impl fmt::Display for EventsAction {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl fmt::Display for EcrAction {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_iams() {
        assert_eq!(EcrAction::PutImage.as_str(), "ecr:PutImage");
        assert_eq!(EcrAction::PutImage.name(), "PutImage");
        assert_eq!(
            Action::parse("ECR:putimage"),
            Some(Action::Ecr(EcrAction::PutImage))
        );
        assert_eq!(Action::parse("ecr:PutImages"), None);
        assert_eq!(
            Action::parse("ecr:replicateimage").map(Action::as_str),
            Some("ecr:ReplicateImage")
        );
        assert_eq!(Action::parse("s3:GetObject"), None);
        assert_eq!(Action::parse("PutImage"), None);
        assert_eq!(EcrAction::from_name("putimage"), None);
        let mut names: Vec<_> = EcrAction::ALL.iter().map(|a| a.name()).collect();
        let n = names.len();
        names.sort();
        names.dedup();
        assert_eq!(names.len(), n, "no action listed twice");
        assert_eq!(n, 62, "the ECR model's 62 operations");
        assert_eq!(
            EventsAction::ALL.len(),
            57,
            "the EventBridge model's 57 operations"
        );
        assert_eq!(
            Action::parse("events:putrule"),
            Some(Action::Events(EventsAction::PutRule))
        );
        assert_eq!(
            Action::Events(EventsAction::PutRule).as_str(),
            "events:PutRule"
        );
    }
}
