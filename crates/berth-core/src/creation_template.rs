//! ECR repository creation templates (issue 10; ECR_REFERENCE §2.7, botocore shape
//! `RepositoryCreationTemplate`): the settings a repository gets when the registry
//! creates it by itself — on a push to a missing repository (`CREATE_ON_PUSH`), when
//! replication creates it on a destination (`REPLICATION`), or when the pull-through
//! cache creates it (`PULL_THROUGH_CACHE`).
//!
//! A template's `prefix` names repositories whose name starts with the prefix followed
//! by `/` (ECR: "there is always an assumed / applied to the end of the prefix"); `ROOT`
//! names every repository. [`select`] is the one rule that picks a template: among the
//! templates applied for the kind of creation, the longest matching prefix wins and
//! `ROOT` is the fallback. Settings apply only at creation; later changes to a template
//! never touch existing repositories.
//!
//! Values are stored as their JSON (the wire shape without the timestamps), so the stored
//! form is what the ECR API answers.

use crate::name::RepositoryName;
use crate::tag_rules::{TagMutability, TagRules};
use serde::{Deserialize, Serialize};

/// The prefix that names every repository.
pub const ROOT: &str = "ROOT";

/// Why a repository is being created by the registry (ECR `RCTAppliedFor`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum AppliedFor {
    /// Replication creates the repository on a destination registry.
    Replication,
    /// The pull-through cache creates the repository on the first pull.
    PullThroughCache,
    /// A push to a repository that does not exist creates it.
    CreateOnPush,
}

impl AppliedFor {
    /// Every value, in the model's order.
    pub const ALL: [AppliedFor; 3] = [
        AppliedFor::Replication,
        AppliedFor::PullThroughCache,
        AppliedFor::CreateOnPush,
    ];

    /// The ECR enum name.
    pub fn as_str(self) -> &'static str {
        match self {
            AppliedFor::Replication => "REPLICATION",
            AppliedFor::PullThroughCache => "PULL_THROUGH_CACHE",
            AppliedFor::CreateOnPush => "CREATE_ON_PUSH",
        }
    }

    /// Parses an ECR enum name.
    pub fn parse(s: &str) -> Option<AppliedFor> {
        AppliedFor::ALL.into_iter().find(|a| a.as_str() == s)
    }
}

/// `encryptionConfiguration` of a template (`EncryptionConfigurationForRepositoryCreationTemplate`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TemplateEncryption {
    /// `AES256`, `KMS` or `KMS_DSSE`.
    pub encryption_type: String,
    /// The KMS key ARN, for the KMS types.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kms_key: Option<String>,
}

/// One resource tag (`Tag`: `Key`, `Value`, capitalised as in ECR's model).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TemplateTag {
    /// The key.
    #[serde(rename = "Key")]
    pub key: String,
    /// The value.
    #[serde(rename = "Value")]
    pub value: String,
}

/// One `imageTagMutabilityExclusionFilters` entry (`filterType` is always `WILDCARD`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TemplateExclusionFilter {
    /// `WILDCARD`.
    pub filter_type: String,
    /// The wildcard pattern.
    pub filter: String,
}

/// A repository creation template as ECR describes it, without its timestamps. Members
/// are already validated by the ECR adapter (lengths, patterns, enums, policy grammar)
/// when a value is stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CreationTemplate {
    /// `ROOT` or a repository-name prefix (stored without a trailing `/`).
    pub prefix: String,
    /// Free text, ≤ 256 characters.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// Which creations the template applies to (at least one).
    pub applied_for: Vec<AppliedFor>,
    /// `MUTABLE` (default), `IMMUTABLE`, `IMMUTABLE_WITH_EXCLUSION`, `MUTABLE_WITH_EXCLUSION`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image_tag_mutability: Option<String>,
    /// Exclusion filters for the `*_WITH_EXCLUSION` modes.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub image_tag_mutability_exclusion_filters: Vec<TemplateExclusionFilter>,
    /// Encryption at rest (default `AES256`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub encryption_configuration: Option<TemplateEncryption>,
    /// Resource tags given to the repository.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub resource_tags: Vec<TemplateTag>,
    /// Repository policy (IAM policy JSON) set on the repository.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub repository_policy: Option<String>,
    /// Lifecycle policy set on the repository.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lifecycle_policy: Option<String>,
    /// The IAM role ECR would assume to apply the template (stored and reported; Berth
    /// needs no role to apply it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub custom_role_arn: Option<String>,
}

/// A template prefix that does not follow the model's pattern.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("prefix '{0}' must be ROOT or a repository name prefix (lowercase letters, digits and separators, optionally ending in '/'), 1-256 characters")]
pub struct PrefixError(pub String);

/// Normalises a template prefix: `ROOT`, or a repository name with an optional trailing
/// `/` (which is dropped: it is always assumed). The model's pattern is the OCI name
/// grammar with an optional trailing slash, so the name parser decides.
pub fn normalize_prefix(prefix: &str) -> Result<String, PrefixError> {
    if prefix == ROOT {
        return Ok(ROOT.to_string());
    }
    let bad = || PrefixError(prefix.to_string());
    if prefix.is_empty() || prefix.len() > 256 {
        return Err(bad());
    }
    let trimmed = prefix.strip_suffix('/').unwrap_or(prefix);
    RepositoryName::parse(trimmed).map_err(|_| bad())?;
    Ok(trimmed.to_string())
}

impl CreationTemplate {
    /// A template with only its prefix and `appliedFor`: every setting at ECR's default.
    pub fn new(prefix: &str, applied_for: &[AppliedFor]) -> CreationTemplate {
        CreationTemplate {
            prefix: prefix.to_string(),
            description: None,
            applied_for: applied_for.to_vec(),
            image_tag_mutability: None,
            image_tag_mutability_exclusion_filters: vec![],
            encryption_configuration: None,
            resource_tags: vec![],
            repository_policy: None,
            lifecycle_policy: None,
            custom_role_arn: None,
        }
    }

    /// Whether this template's prefix names `repository` (ROOT names every repository).
    pub fn matches(&self, repository: &str) -> bool {
        self.prefix == ROOT
            || repository
                .strip_prefix(self.prefix.as_str())
                .is_some_and(|rest| rest.starts_with('/'))
    }

    /// The tag rules a repository created from this template gets.
    pub fn tag_rules(&self) -> TagRules {
        TagRules {
            mode: self
                .image_tag_mutability
                .as_deref()
                .and_then(TagMutability::parse)
                .unwrap_or_default(),
            exclusion_filters: self
                .image_tag_mutability_exclusion_filters
                .iter()
                .map(|f| f.filter.clone())
                .collect(),
        }
    }
}

/// The template a repository named `repository`, created for `kind`, gets: among the
/// templates applied for `kind` whose prefix names it, the longest prefix; `ROOT` only
/// when no other matches; `None` when none applies (the registry's defaults then).
pub fn select<'a>(
    templates: &'a [CreationTemplate],
    kind: AppliedFor,
    repository: &str,
) -> Option<&'a CreationTemplate> {
    templates
        .iter()
        .filter(|t| t.applied_for.contains(&kind) && t.matches(repository))
        .max_by_key(|t| {
            if t.prefix == ROOT {
                0
            } else {
                t.prefix.len() + 1
            }
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn template(prefix: &str, applied_for: &[AppliedFor]) -> CreationTemplate {
        CreationTemplate::new(prefix, applied_for)
    }

    // ECR_REFERENCE §2.7: "longest matching prefix wins (`prod/team` beats `prod` for
    // `prod/team/x`); ROOT is the fallback"; the prefix has an implicit trailing `/`.
    #[test]
    fn longest_prefix_wins_and_root_is_the_fallback() {
        use AppliedFor::*;
        let ts = [
            template(ROOT, &[CreateOnPush, Replication]),
            template("prod", &[CreateOnPush]),
            template("prod/team", &[CreateOnPush]),
            template("cache", &[PullThroughCache]),
        ];
        let pick = |kind, repo| select(&ts, kind, repo).map(|t| t.prefix.as_str());
        assert_eq!(pick(CreateOnPush, "prod/team/x"), Some("prod/team"));
        assert_eq!(pick(CreateOnPush, "prod/other"), Some("prod"));
        assert_eq!(
            pick(CreateOnPush, "production/x"),
            Some(ROOT),
            "implicit '/'"
        );
        assert_eq!(
            pick(CreateOnPush, "prod"),
            Some(ROOT),
            "the prefix itself is not under it"
        );
        assert_eq!(
            pick(Replication, "prod/team/x"),
            Some(ROOT),
            "appliedFor filters"
        );
        assert_eq!(
            pick(PullThroughCache, "cache/library/alpine"),
            Some("cache")
        );
        assert_eq!(pick(PullThroughCache, "other"), None);
    }

    // botocore `Prefix` pattern: a name prefix with an optional trailing `/`, or ROOT.
    #[test]
    fn prefixes_follow_the_model_pattern() {
        assert_eq!(normalize_prefix("ROOT").unwrap(), "ROOT");
        assert_eq!(normalize_prefix("prod/").unwrap(), "prod");
        assert_eq!(normalize_prefix("a.b_c-d/e").unwrap(), "a.b_c-d/e");
        for bad in ["", "/", "Prod", "a//b", "-a", "a b", "a//"] {
            assert!(normalize_prefix(bad).is_err(), "{bad:?}");
        }
        assert!(normalize_prefix(&"a".repeat(257)).is_err());
    }

    #[test]
    fn stored_json_is_the_wire_shape() {
        let mut t = template("prod", &[AppliedFor::CreateOnPush]);
        t.resource_tags = vec![TemplateTag {
            key: "team".into(),
            value: "a".into(),
        }];
        let v = serde_json::to_value(&t).unwrap();
        assert_eq!(
            v,
            serde_json::json!({"prefix": "prod", "appliedFor": ["CREATE_ON_PUSH"],
                "resourceTags": [{"Key": "team", "Value": "a"}]})
        );
        let back: CreationTemplate = serde_json::from_value(v).unwrap();
        assert_eq!(back, t);
    }
}
