//! Repository settings, resource tags, image listings and pull times (issue 4: what the
//! ECR API shows about repositories and images, and tag immutability on both planes).
//!
//! The settings are the ECR ones — tag mutability with its exclusion filters, scan on
//! push, encryption — because those are the registry's vocabulary for them; how they
//! reach the wire is the ECR adapter's business. Tag immutability is enforced inside
//! [`crate::MetaStore::put_manifest`]'s transaction, so two pushes of one immutable tag
//! cannot both win.

use crate::Result;
use berth_core::{Digest, RepositoryName, Tag, TagRules};

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
/// [`crate::SqliteMeta`] and [`crate::PgMeta`]; every [`crate::MetaStore`] is one.
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
    /// Deletes a repository with everything in it, its repository policy included, in
    /// one transaction (bumping the identity generation when a policy went);
    /// `Ok(None)` if it does not exist.
    /// Errors: [`crate::MetaError::RepositoryNotEmpty`] if it holds images and `force`
    /// is false.
    ///
    /// Every image deleted with it is a [`crate::changes::Change::ManifestDeleted`] (with
    /// its tags): the jobs `hook` returns for them are enqueued in the same transaction
    /// (ECR emits an `ECR Image Action` DELETE per image a forced DeleteRepository
    /// removes).
    async fn delete_repository(
        &self,
        repo: &RepositoryName,
        force: bool,
        hook: &dyn crate::ChangeHook,
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
    /// images that no longer exist are ignored. The stored time becomes the maximum of
    /// the stored and the given one, never an earlier time: several nodes flush their
    /// in-memory pulls independently, so an older pull may arrive after a newer one.
    async fn record_pulls(&self, pulls: &[Pull]) -> Result<()>;
    /// Whether a manifest in `repo` references blob `digest` as its config or a layer.
    async fn blob_in_image(&self, repo: &RepositoryName, digest: &Digest) -> Result<bool>;
}
