//! Repository settings, resource tags, image listings and pull times (issue 4: what the
//! ECR API shows about repositories and images, and tag immutability on both planes).
//!
//! The settings are the ECR ones — tag mutability with its exclusion filters, scan on
//! push, encryption — because those are the registry's vocabulary for them; how they
//! reach the wire is the ECR adapter's business. Tag immutability is enforced inside
//! [`crate::MetaStore::put_manifest`]'s transaction, so two pushes of one immutable tag
//! cannot both win.

use crate::Result;
use berth_core::{Digest, RepositoryName, Tag};

/// How tags of a repository may move (ECR `imageTagMutability`). Default [`Self::Mutable`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum TagMutability {
    /// Every tag may be moved to another image.
    #[default]
    Mutable,
    /// No tag may be moved once it exists.
    Immutable,
    /// Tags are immutable except those matching an exclusion filter.
    ImmutableWithExclusion,
    /// Tags are mutable except those matching an exclusion filter.
    MutableWithExclusion,
}

impl TagMutability {
    /// Every value, in the ECR model's order.
    pub const ALL: [TagMutability; 4] = [
        TagMutability::Mutable,
        TagMutability::Immutable,
        TagMutability::ImmutableWithExclusion,
        TagMutability::MutableWithExclusion,
    ];

    /// The ECR enum name (`MUTABLE`, `IMMUTABLE`, …), also the stored form.
    pub fn as_str(self) -> &'static str {
        match self {
            TagMutability::Mutable => "MUTABLE",
            TagMutability::Immutable => "IMMUTABLE",
            TagMutability::ImmutableWithExclusion => "IMMUTABLE_WITH_EXCLUSION",
            TagMutability::MutableWithExclusion => "MUTABLE_WITH_EXCLUSION",
        }
    }

    /// Parses an ECR enum name.
    pub fn parse(s: &str) -> Option<TagMutability> {
        TagMutability::ALL.into_iter().find(|m| m.as_str() == s)
    }

    /// Whether this mode takes exclusion filters (the `*_WITH_EXCLUSION` ones need at
    /// least one; the others take none).
    pub fn takes_filters(self) -> bool {
        matches!(
            self,
            TagMutability::ImmutableWithExclusion | TagMutability::MutableWithExclusion
        )
    }
}

/// A repository's tag mutability with its exclusion filters (wildcard patterns where
/// `*` matches any run of characters, matched against the whole tag).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct TagRules {
    /// The mode.
    pub mode: TagMutability,
    /// Exclusion filters (only for the `*_WITH_EXCLUSION` modes).
    pub exclusion_filters: Vec<String>,
}

impl TagRules {
    /// Whether an existing `tag` may not be moved to another image.
    pub fn is_immutable(&self, tag: &str) -> bool {
        let excluded = || {
            self.exclusion_filters
                .iter()
                .any(|f| wildcard_match(f, tag))
        };
        match self.mode {
            TagMutability::Mutable => false,
            TagMutability::Immutable => true,
            TagMutability::ImmutableWithExclusion => !excluded(),
            TagMutability::MutableWithExclusion => excluded(),
        }
    }
}

/// Whether `text` matches `pattern` in full, `*` matching any run of characters
/// (including none) and every other character itself.
pub fn wildcard_match(pattern: &str, text: &str) -> bool {
    let (p, t) = (pattern.as_bytes(), text.as_bytes());
    let (mut pi, mut ti) = (0, 0);
    // Position of the last `*` seen and the text position it was tried at.
    let mut star: Option<(usize, usize)> = None;
    while ti < t.len() {
        if pi < p.len() && p[pi] == b'*' {
            star = Some((pi, ti));
            pi += 1;
        } else if pi < p.len() && p[pi] == t[ti] {
            pi += 1;
            ti += 1;
        } else if let Some((sp, st)) = star {
            // Let the last `*` swallow one more character and retry.
            pi = sp + 1;
            ti = st + 1;
            star = Some((sp, st + 1));
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|&c| c == b'*')
}

/// Encryption at rest as configured at creation (ECR `encryptionConfiguration`), stored
/// and reported; Berth's filesystem store does not encrypt by itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Encryption {
    /// `AES256`, `KMS` or `KMS_DSSE`.
    pub encryption_type: String,
    /// The KMS key, for the KMS types.
    pub kms_key: Option<String>,
}

impl Default for Encryption {
    fn default() -> Self {
        Encryption {
            encryption_type: "AES256".into(),
            kms_key: None,
        }
    }
}

/// A repository's settings.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct RepositorySettings {
    /// Tag mutability and its exclusion filters.
    pub tags: TagRules,
    /// `imageScanningConfiguration.scanOnPush`.
    pub scan_on_push: bool,
    /// `encryptionConfiguration`.
    pub encryption: Encryption,
}

/// A repository with its settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RepositoryRecord {
    /// Its name.
    pub name: RepositoryName,
    /// Creation time, epoch seconds.
    pub created_at: i64,
    /// Its settings.
    pub settings: RepositorySettings,
}

/// Which images a listing includes (ECR `tagStatus`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum TagStatus {
    /// Images with at least one tag.
    Tagged,
    /// Images without tags.
    Untagged,
    /// Every image.
    #[default]
    Any,
}

/// An image (a stored manifest) as the ECR API describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageRecord {
    /// The manifest's digest.
    pub digest: Digest,
    /// The manifest's media type.
    pub media_type: String,
    /// Tags pointing at it, in lexical order.
    pub tags: Vec<Tag>,
    /// Size as ECR reports it: for an image manifest the sum of its config and layer
    /// sizes; for an index the largest size among its children.
    pub size: u64,
    /// When the manifest was first stored, epoch seconds.
    pub pushed_at: i64,
    /// `artifactType`, else the config's media type (image manifests).
    pub artifact_type: Option<String>,
    /// The manifest's `subject`, if any.
    pub subject: Option<Digest>,
    /// Last recorded pull (manifest GET), epoch seconds.
    pub last_pulled_at: Option<i64>,
}

/// One entry of an image listing: an image and one of its tags (`None` if untagged).
pub type ImageKey = (Digest, Option<Tag>);

/// A recorded pull: repository, manifest digest, when (epoch seconds).
pub type Pull = (RepositoryName, Digest, i64);

/// Repository settings, resource tags, image listings and pull times. Implemented by
/// [`crate::SqliteMeta`]; every [`crate::MetaStore`] is one.
#[async_trait::async_trait]
pub trait RepositoryStore: Send + Sync + 'static {
    /// Creates a repository with `settings` and resource `tags`; `Ok(None)` if a
    /// repository of that name exists.
    async fn create_repository_with(
        &self,
        repo: &RepositoryName,
        settings: &RepositorySettings,
        tags: &[(String, String)],
    ) -> Result<Option<RepositoryRecord>>;
    /// A repository with its settings.
    async fn repository(&self, repo: &RepositoryName) -> Result<Option<RepositoryRecord>>;
    /// Repositories in lexical order of name after `after`, at most `limit`.
    async fn repositories(&self, after: Option<&str>, limit: u32) -> Result<Vec<RepositoryRecord>>;
    /// Deletes a repository with everything in it; `Ok(None)` if it does not exist.
    /// Errors: [`crate::MetaError::RepositoryNotEmpty`] if it holds images and `force`
    /// is false.
    async fn delete_repository(
        &self,
        repo: &RepositoryName,
        force: bool,
    ) -> Result<Option<RepositoryRecord>>;
    /// Replaces the tag rules; false if the repository does not exist.
    async fn set_tag_rules(&self, repo: &RepositoryName, rules: &TagRules) -> Result<bool>;
    /// The repository's resource tags in key order; `None` if it does not exist.
    async fn resource_tags(&self, repo: &RepositoryName) -> Result<Option<Vec<(String, String)>>>;
    /// Adds or overwrites resource tags; false if the repository does not exist.
    /// Errors: [`crate::MetaError::TooManyTags`] if the repository would hold more than
    /// `max` tags (nothing is changed then).
    async fn tag_resource(
        &self,
        repo: &RepositoryName,
        tags: &[(String, String)],
        max: usize,
    ) -> Result<bool>;
    /// Removes resource tags by key (absent keys are ignored); false if the repository
    /// does not exist.
    async fn untag_resource(&self, repo: &RepositoryName, keys: &[String]) -> Result<bool>;
    /// (digest, tag) pairs in order of digest then tag (untagged first), after `after`
    /// (a digest and a tag, `""` for untagged), at most `limit`.
    async fn list_images(
        &self,
        repo: &RepositoryName,
        status: TagStatus,
        after: Option<(&str, &str)>,
        limit: u32,
    ) -> Result<Vec<ImageKey>>;
    /// Images in digest order after `after`, at most `limit`.
    async fn images(
        &self,
        repo: &RepositoryName,
        status: TagStatus,
        after: Option<&str>,
        limit: u32,
    ) -> Result<Vec<ImageRecord>>;
    /// One image by digest.
    async fn image(&self, repo: &RepositoryName, digest: &Digest) -> Result<Option<ImageRecord>>;
    /// Records pull times (keeping the latest per image) in one transaction; pulls of
    /// images that no longer exist are ignored.
    async fn record_pulls(&self, pulls: &[Pull]) -> Result<()>;
    /// Whether a manifest in `repo` references blob `digest` as its config or a layer.
    async fn blob_in_image(&self, repo: &RepositoryName, digest: &Digest) -> Result<bool>;
}

#[cfg(test)]
mod tests {
    use super::*;

    // ECR "Image tag mutability": `*` matches any run of characters.
    #[test]
    fn wildcards_match_whole_tags() {
        for (p, t) in [
            ("latest", "latest"),
            ("*", ""),
            ("*", "anything"),
            ("dev-*", "dev-1"),
            ("dev-*", "dev-"),
            ("*-rc", "1.0-rc"),
            ("v*.*", "v1.2"),
            ("a*b*c", "aXbYbZc"),
            ("**", "x"),
        ] {
            assert!(wildcard_match(p, t), "{p:?} should match {t:?}");
        }
        for (p, t) in [
            ("latest", "latest2"),
            ("dev-*", "prod-dev-1"),
            ("*-rc", "1.0-rc1"),
            ("v*.*", "v12"),
            ("a*b*c", "aXbYbZ"),
            ("", "x"),
        ] {
            assert!(!wildcard_match(p, t), "{p:?} should not match {t:?}");
        }
    }

    #[test]
    fn exclusion_filters_invert_the_mode() {
        let rules = |mode, f: &[&str]| TagRules {
            mode,
            exclusion_filters: f.iter().map(|s| s.to_string()).collect(),
        };
        let r = rules(TagMutability::ImmutableWithExclusion, &["latest", "dev-*"]);
        assert!(!r.is_immutable("latest"));
        assert!(!r.is_immutable("dev-42"));
        assert!(r.is_immutable("v1.0"));
        let r = rules(TagMutability::MutableWithExclusion, &["release-*"]);
        assert!(r.is_immutable("release-1"));
        assert!(!r.is_immutable("latest"));
        assert!(rules(TagMutability::Immutable, &[]).is_immutable("x"));
        assert!(!rules(TagMutability::Mutable, &[]).is_immutable("x"));
    }
}
