//! # berth-meta: registry metadata
//!
//! Owns what the registry knows about content: repositories, the blobs linked to each,
//! manifests (stored byte-exact), what each manifest references (with each index child's
//! platform), tags and referrers. Knows nothing about HTTP or blob bytes.
//!
//! [`Metadata`] is the seam the binary wires (content, identity, job queue and event
//! configuration in one database); [`sqlite::SqliteMeta`] is the embedded default and
//! [`postgres::PgMeta`] the scale-out backend shared by many nodes. All SQL lives in the
//! backend modules; both backends pass one shared test suite. Each state change is one transaction (DESIGN.md
//! invariant 3), and the checks that make a manifest visible — every referenced blob and
//! child manifest exists in the repository (invariant 2) — run inside the same
//! transaction that inserts it, so no concurrent delete can slip between check and insert.

#![deny(missing_docs)]

pub mod changes;
pub mod creation_templates;
pub mod events;
pub mod gc;
pub mod iam;
pub mod jobs;
pub mod lifecycle;
pub mod migrate;
pub mod postgres;
mod postgres_content;
mod postgres_creation_templates;
mod postgres_events;
mod postgres_gc;
mod postgres_iam;
pub mod postgres_jobs;
mod postgres_lifecycle;
mod postgres_replication;
mod postgres_repository;
pub mod replication;
pub mod repository;
mod scan_sql;
pub mod scanning;
pub mod sqlite;
mod sqlite_creation_templates;
mod sqlite_events;
mod sqlite_gc;
mod sqlite_iam;
pub mod sqlite_jobs;
mod sqlite_lifecycle;
mod sqlite_replication;
mod sqlite_repository;

use berth_core::{Digest, ParsedManifest, Platform, RepositoryName, Tag};

pub use berth_core::{TagMutability, TagRules};
pub use changes::{Change, ChangeHook, Hooks, NoJobs};
pub use creation_templates::CreationTemplateStore;
pub use events::EventConfigStore;
pub use gc::{BlobPin, GcBlob, GcStore};
pub use iam::IamStore;
pub use jobs::JobStore;
pub use lifecycle::LifecycleStore;
pub use postgres::PgMeta;
pub use replication::ReplicationStore;
pub use repository::{
    ImageRecord, RepositoryRecord, RepositorySettings, RepositoryStore, TagStatus,
};
pub use scanning::ScanStore;
pub use sqlite::SqliteMeta;

/// Errors of the metadata store, in domain terms.
#[derive(Debug, thiserror::Error)]
pub enum MetaError {
    /// The repository does not exist (and creating it on push is disabled).
    #[error("repository {0} does not exist")]
    RepositoryNotFound(String),
    /// A manifest references blobs not linked to the repository.
    #[error("manifest references blobs unknown to the repository: {0:?}")]
    MissingBlobs(Vec<Digest>),
    /// An index references manifests not stored in the repository.
    #[error("image index references manifests unknown to the repository: {0:?}")]
    MissingManifests(Vec<Digest>),
    /// A descriptor's `size` disagrees with the stored content it points at.
    #[error(
        "descriptor for {digest} says size {declared}, but the stored content has {actual} bytes"
    )]
    SizeMismatch {
        /// The referenced digest.
        digest: Digest,
        /// The size the descriptor declares.
        declared: u64,
        /// The stored size.
        actual: u64,
    },
    /// A manifest cannot be deleted while an index in the repository references it.
    #[error("manifest {child} is referenced by image index {parent}; delete the index first")]
    Referenced {
        /// The manifest asked to be deleted.
        child: Digest,
        /// An index that references it.
        parent: Digest,
    },
    /// A push would move a tag that the repository's tag rules make immutable.
    #[error("tag {tag} of repository {repository} is immutable")]
    TagImmutable {
        /// The repository.
        repository: String,
        /// The tag.
        tag: String,
        /// The repository's tag mutability mode that made it immutable.
        mode: berth_core::TagMutability,
    },
    /// A repository holding images cannot be deleted without `force`.
    #[error("repository {0} still contains images")]
    RepositoryNotEmpty(String),
    /// Adding resource tags would exceed the per-repository limit.
    #[error("repository {repository} would have {count} resource tags; the limit is {max}")]
    TooManyTags {
        /// The repository.
        repository: String,
        /// How many it would have.
        count: usize,
        /// The limit.
        max: usize,
    },
    /// An event-configuration resource a write needs does not exist (`kind`: `rule`,
    /// `connection` — then `name` is the connection ARN asked for — or
    /// `api destination`).
    #[error("{kind} {name} does not exist")]
    EventConfigNotFound {
        /// What kind of resource.
        kind: &'static str,
        /// Its name (or ARN).
        name: String,
    },
    /// Creating an event-configuration resource found its name taken.
    #[error("{kind} {name} already exists")]
    EventConfigExists {
        /// What kind of resource (`connection`, `api destination`).
        kind: &'static str,
        /// Its name.
        name: String,
    },
    /// A rule cannot be deleted while it has targets (EventBridge's DeleteRule).
    #[error("rule {0} still has targets")]
    RuleHasTargets(String),
    /// Adding targets would exceed the per-rule quota.
    #[error("rule {rule} would have more than {max} targets")]
    TooManyTargets {
        /// The rule.
        rule: String,
        /// The quota ([`events::MAX_TARGETS_PER_RULE`]).
        max: usize,
    },
    /// A garbage collector is deleting this blob's bytes right now (issue 12): it cannot
    /// be pinned until they are gone; then it can be written again.
    #[error("blob {0} is being garbage-collected; retry shortly")]
    BlobBeingCollected(Digest),
    /// Stored data failed to parse (corruption or a newer schema).
    #[error("corrupt metadata: {0}")]
    Corrupt(String),
    /// The database failed.
    #[error("metadata database: {0}")]
    Db(#[from] sqlx::Error),
    /// Applying migrations failed.
    #[error("metadata migration: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
}

/// A result of a metadata operation.
pub type Result<T, E = MetaError> = std::result::Result<T, E>;

/// A stored manifest as served to clients.
#[derive(Debug, Clone)]
pub struct ManifestRow {
    /// Its digest (the digest of `body`).
    pub digest: Digest,
    /// The media type it was pushed with.
    pub media_type: String,
    /// The exact bytes pushed (`Bytes`, so serving a cached manifest copies nothing).
    pub body: bytes::Bytes,
}

/// A manifest's head: what HEAD returns, without the body.
#[derive(Debug, Clone)]
pub struct ManifestHead {
    /// Its digest.
    pub digest: Digest,
    /// The media type it was pushed with.
    pub media_type: String,
    /// Body length in bytes.
    pub size: u64,
}

/// One entry of the referrers API (distribution-spec § Listing referrers): a descriptor
/// of a manifest whose `subject` is the asked digest.
#[derive(Debug, Clone)]
pub struct Referrer {
    /// The referrer manifest's media type.
    pub media_type: String,
    /// Its digest.
    pub digest: Digest,
    /// Its size in bytes.
    pub size: u64,
    /// Its artifact type (`artifactType`, else the config media type).
    pub artifact_type: Option<String>,
    /// Its annotations, as a JSON object string.
    pub annotations: Option<String>,
}

/// One child of a stored image index.
#[derive(Debug, Clone)]
pub struct IndexChild {
    /// The child manifest's digest.
    pub digest: Digest,
    /// Its platform, when the index gives one.
    pub platform: Option<Platform>,
}

/// What [`MetaStore::put_manifest`] did to the tag.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PutOutcome {
    /// Whether the repository was created by this push.
    pub created_repository: bool,
    /// The digest the tag pointed at before, if it moved.
    pub previous_tag_target: Option<Digest>,
    /// Whether the manifest was already stored before this push.
    pub manifest_existed: bool,
    /// Whether the tag (if one was given) already pointed at this manifest.
    pub tag_unchanged: bool,
}

/// Registry metadata. Methods taking `create: bool` create the repository when it is
/// missing and `create` is true, and fail with [`MetaError::RepositoryNotFound`] otherwise.
/// Repository settings and image listings are the [`RepositoryStore`] half; the event
/// configuration (EventBridge rules, targets, connections, API destinations) is the
/// [`EventConfigStore`] part; what garbage collection needs is the [`GcStore`] part;
/// lifecycle policies and previews the [`LifecycleStore`] part; the replication
/// configuration and an image's replication jobs the [`ReplicationStore`] part;
/// vulnerability scanning's rows the [`ScanStore`] part; repository creation templates
/// the [`CreationTemplateStore`] part.
#[async_trait::async_trait]
pub trait MetaStore:
    RepositoryStore
    + EventConfigStore
    + GcStore
    + LifecycleStore
    + ReplicationStore
    + ScanStore
    + CreationTemplateStore
    + Send
    + Sync
    + 'static
{
    /// Whether the repository exists.
    async fn repository_exists(&self, repo: &RepositoryName) -> Result<bool>;
    /// Creates a repository; returns false if it already existed.
    async fn create_repository(&self, repo: &RepositoryName) -> Result<bool>;
    /// Repository names in lexical order after `last`, at most `limit`.
    async fn list_repositories(&self, last: Option<&str>, limit: u32) -> Result<Vec<String>>;

    /// Size of `digest` if it is linked to `repo`.
    async fn linked_blob(&self, repo: &RepositoryName, digest: &Digest) -> Result<Option<u64>>;
    /// Links the blob `pin` names (committed to storage while pinned) to `repo`
    /// (idempotent), records it if new, sets its `touched_at` to now and releases the
    /// pin, in one transaction (the pin is released on failure too). See [`gc`].
    async fn link_blob(
        &self,
        repo: &RepositoryName,
        pin: BlobPin,
        size: u64,
        create: bool,
    ) -> Result<()>;
    /// Unlinks a blob from `repo`; false if it was not linked.
    async fn unlink_blob(&self, repo: &RepositoryName, digest: &Digest) -> Result<bool>;

    /// Stores a manifest (idempotent by digest) and, if `tag` is given, points the tag at
    /// it — one transaction that first checks every referenced blob and child manifest.
    /// Errors: [`MetaError::TagImmutable`] if the tag exists, points at another manifest
    /// and the repository's [`TagRules`] make it immutable (nothing is stored then).
    /// If the PUT changed something (a new manifest, a tag created or moved), the jobs
    /// `hook` returns for [`Change::ManifestPut`] are enqueued in the same transaction.
    #[allow(clippy::too_many_arguments)]
    async fn put_manifest(
        &self,
        repo: &RepositoryName,
        digest: &Digest,
        parsed: &ParsedManifest,
        body: &[u8],
        tag: Option<&Tag>,
        create: bool,
        hook: &dyn ChangeHook,
    ) -> Result<PutOutcome>;
    /// A manifest by tag.
    async fn manifest_by_tag(
        &self,
        repo: &RepositoryName,
        tag: &Tag,
    ) -> Result<Option<ManifestRow>>;
    /// A manifest by digest.
    async fn manifest_by_digest(
        &self,
        repo: &RepositoryName,
        digest: &Digest,
    ) -> Result<Option<ManifestRow>>;
    /// A manifest's head by tag.
    async fn manifest_head_by_tag(
        &self,
        repo: &RepositoryName,
        tag: &Tag,
    ) -> Result<Option<ManifestHead>>;
    /// A manifest's head by digest.
    async fn manifest_head_by_digest(
        &self,
        repo: &RepositoryName,
        digest: &Digest,
    ) -> Result<Option<ManifestHead>>;
    /// Deletes a manifest and every tag pointing at it; false if it did not exist.
    /// Errors: [`MetaError::Referenced`] if an index in the repository references it.
    /// The jobs `hook` returns for [`Change::ManifestDeleted`] are enqueued in the same
    /// transaction.
    async fn delete_manifest(
        &self,
        repo: &RepositoryName,
        digest: &Digest,
        hook: &dyn ChangeHook,
    ) -> Result<bool>;
    /// Deletes one tag; false if it did not exist. The jobs `hook` returns for
    /// [`Change::TagDeleted`] are enqueued in the same transaction.
    async fn delete_tag(
        &self,
        repo: &RepositoryName,
        tag: &Tag,
        hook: &dyn ChangeHook,
    ) -> Result<bool>;
    /// Tags in lexical order after `last`, at most `limit`.
    async fn list_tags(
        &self,
        repo: &RepositoryName,
        last: Option<&str>,
        limit: u32,
    ) -> Result<Vec<String>>;
    /// Manifests in `repo` whose subject is `subject`, optionally only of `artifact_type`.
    async fn referrers(
        &self,
        repo: &RepositoryName,
        subject: &Digest,
        artifact_type: Option<&str>,
    ) -> Result<Vec<Referrer>>;
    /// The children of an index, with their platforms, in document order.
    async fn index_children(
        &self,
        repo: &RepositoryName,
        index: &Digest,
    ) -> Result<Vec<IndexChild>>;
}

/// Everything Berth keeps in its metadata database, as one object: content
/// ([`MetaStore`], with [`RepositoryStore`] and [`EventConfigStore`]), identities and the
/// audit log ([`IamStore`]) and the job queue ([`JobStore`]). The binary holds an
/// `Arc<dyn Metadata>` and hands out the narrower traits (trait upcasting).
#[async_trait::async_trait]
pub trait Metadata: MetaStore + IamStore + JobStore {
    /// Enqueues `jobs` in one transaction (group commit: one durable write for many
    /// jobs), with [`JobStore::enqueue`]'s idempotency per job. `now` is epoch ms.
    /// Errors: the database failed (then none is enqueued).
    async fn enqueue_batch(&self, jobs: &[jobs::NewJob], now: i64) -> Result<()>;
    /// The engine's name (`sqlite` or `postgres`), for logs and `/metrics`.
    fn engine(&self) -> &'static str;
    /// Whether this process is the only writer of the database (the embedded SQLite
    /// file under the data directory's lock), so in-memory caches of mutable rows are
    /// correct. False for PostgreSQL, which many nodes share.
    fn single_writer(&self) -> bool;
    /// Closes the connection pools, waiting for running queries.
    async fn close(&self);
}
