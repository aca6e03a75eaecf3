//! # berth-registry: the service layer
//!
//! Every registry operation — push, pull, delete, mount, list, referrers — as a method of
//! [`Registry`], in domain types, used by every API adapter (the OCI Distribution API
//! today, the ECR API next). It composes a [`BlobStore`] and a [`MetaStore`] and keeps the
//! rules that make the pair a registry:
//!
//! - a repository serves only blobs linked to it (pushed or mounted into it);
//! - a blob is linked only after storage verified and committed it (invariant 1);
//! - a manifest is stored only after every blob and child manifest it references is
//!   present in the repository, checked in the storing transaction (invariant 2);
//! - a manifest is served under its digest only: the digest is computed here from the
//!   exact bytes received, never taken from the client.
//!
//! It knows nothing about HTTP: no status codes, no headers. Errors are [`RegistryError`],
//! which each adapter maps to its wire shape exactly once.

#![deny(missing_docs)]

pub mod cache;
pub mod creation_templates;
pub mod event_config;
pub mod gc;
pub mod lifecycle;
pub mod pulls;
pub mod replication;
mod repositories;
pub mod scanning;
pub mod sealed;

use berth_core::{
    Digest, ManifestError, NameError, ParsedManifest, Reference, RepositoryName, Tag,
};
use berth_meta::{ChangeHook, MetaError, MetaStore, NoJobs};
use berth_store::{BlobStore, StoreError};
use bytes::Bytes;
use std::sync::Arc;
use std::time::Duration;

pub use repositories::{VisibleRepositories, MAX_RESOURCE_TAGS};

// The domain types of the service's signatures, exported deliberately so adapters name
// them through the service and never depend on the stores (checked by
// `crates/berth/tests/architecture.rs`). Storage backends and their traits are not here:
// only the binary wires them.
pub use berth_core::{TagMutability, TagRules};
pub use berth_meta::changes::{
    replicated_from, Change, ChangeHook as JobHook, Hooks, REPLICATED_FROM,
};
pub use berth_meta::jobs::NewJob;
pub use berth_meta::repository::{Encryption, ImageKey};
pub use berth_meta::scanning::{ImageScanRow, ImportOutcome, ScanStart, ScanStatus, VulnSourceRow};
pub use berth_meta::{
    ImageRecord, IndexChild, ManifestHead, ManifestRow, Referrer, RepositoryRecord,
    RepositorySettings, TagStatus,
};
pub use berth_scan::{Finding, Inventory, OsvRecord, Package, Severity};
pub use berth_store::{BlobContent, ByteStream, UploadStatus};

/// Service-layer settings.
#[derive(Debug, Clone)]
pub struct RegistryConfig {
    /// Create a repository on its first push (distribution's behaviour). When false, a
    /// push to a repository that does not exist fails with [`RegistryError::NameUnknown`].
    pub create_on_push: bool,
    /// Upload sessions idle longer than this are cancelled and their data removed.
    pub upload_expiry: Duration,
    /// Cache manifest lookups in memory ([`cache::ManifestCache`]). Only correct when this
    /// process is the sole writer of the metadata store (the embedded SQLite default).
    pub manifest_cache: bool,
    /// Refuse OCI pulls of images whose latest scan has findings at or above a severity
    /// ([`scanning::PullBlock`]); `None`: pulls are never refused for findings.
    pub pull_block: Option<scanning::PullBlock>,
}

impl Default for RegistryConfig {
    fn default() -> Self {
        RegistryConfig {
            create_on_push: true,
            upload_expiry: Duration::from_secs(3600),
            manifest_cache: true,
            pull_block: None,
        }
    }
}

/// Why an operation failed, in registry terms (one variant per distinct user-facing cause).
#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    /// The repository does not exist.
    #[error("repository {0} is not known to the registry")]
    NameUnknown(String),
    /// A push to a repository that does not exist while creation on push is off.
    #[error("repository {0} does not exist, and this registry does not create repositories on push (create_on_push = false): create the repository first")]
    NotCreatedOnPush(String),
    /// The repository name is invalid.
    #[error("{0}")]
    NameInvalid(String),
    /// A tag is invalid.
    #[error("{0}")]
    TagInvalid(String),
    /// The blob is not linked to the repository.
    #[error("blob {0} is not known to this repository")]
    BlobUnknown(Digest),
    /// The upload session does not exist in this repository.
    #[error("upload {0} is not known (never started, completed, cancelled or expired)")]
    BlobUploadUnknown(String),
    /// The upload session cannot take this request (e.g. busy with another request).
    #[error("{0}")]
    BlobUploadInvalid(String),
    /// A chunk does not start at the current end of the upload.
    #[error(
        "chunk starts at byte {got} but the upload holds {current} bytes; resume at {current}"
    )]
    RangeInvalid {
        /// Bytes the upload holds now.
        current: u64,
        /// Where the chunk claimed to start.
        got: u64,
    },
    /// A digest is malformed, or content does not hash to the digest claimed.
    #[error("{0}")]
    DigestInvalid(String),
    /// A `Content-Length`/`Content-Range` disagreed with the body.
    #[error("{0}")]
    SizeInvalid(String),
    /// The manifest does not exist in the repository.
    #[error("manifest {0} is not known to this repository")]
    ManifestUnknown(String),
    /// The manifest is malformed.
    #[error("{0}")]
    ManifestInvalid(String),
    /// The manifest exceeds the size limit.
    #[error("{0}")]
    ManifestTooLarge(String),
    /// Blobs or child manifests the manifest references are missing from the repository.
    #[error("manifest references {kind} not present in the repository: {}", .missing.iter().map(|d| d.to_string()).collect::<Vec<_>>().join(", "))]
    ManifestBlobUnknown {
        /// "blobs" or "manifests".
        kind: &'static str,
        /// The missing digests.
        missing: Vec<Digest>,
    },
    /// A pull refused because the image's latest scan has findings at or above the
    /// configured severity ([`scanning::PullBlock`]); the message names them.
    #[error("{0}")]
    PullBlocked(String),
    /// The request conflicts with the repository's state (e.g. deleting an index child).
    #[error("{0}")]
    Conflict(String),
    /// A push would move a tag the repository's tag rules make immutable (ECR's message).
    #[error("The image tag '{tag}' already exists in the '{repository}' repository and cannot be overwritten because {}", immutability_reason(*.mode))]
    TagImmutable {
        /// The repository.
        repository: String,
        /// The tag.
        tag: String,
        /// The repository's mode that made the tag immutable.
        mode: TagMutability,
    },
    /// The repository exists already.
    #[error("repository {0} already exists")]
    RepositoryAlreadyExists(String),
    /// The repository holds images and deletion was not forced.
    #[error("repository {0} still contains images; delete them first or force the deletion")]
    RepositoryNotEmpty(String),
    /// The manifest is stored already and the push would change nothing.
    #[error("image {digest}{} already exists", .tag.as_ref().map(|t| format!(" with tag {t}")).unwrap_or_default())]
    ImageAlreadyExists {
        /// The manifest's digest.
        digest: Digest,
        /// The tag given, if any.
        tag: Option<String>,
    },
    /// A manifest does not hash to the digest the client gave for it.
    #[error("manifest has digest {computed}, not the {given} given")]
    ManifestDigestMismatch {
        /// The digest the client gave.
        given: Digest,
        /// The digest of the bytes received.
        computed: Digest,
    },
    /// Too many resource tags.
    #[error("{0}")]
    TooManyTags(String),
    /// An upload was completed without any bytes.
    #[error("upload {0} holds no data")]
    EmptyUpload(String),
    /// A layer upload completed for a blob the repository already has.
    #[error("blob {0} already exists in the repository")]
    BlobExists(Digest),
    /// The request body failed while streaming.
    #[error("request body failed: {0}")]
    Body(String),
    /// A lifecycle policy text is not valid (the detail of ECR's `Lifecycle policy
    /// validation failure`).
    #[error("{0}")]
    LifecyclePolicyInvalid(String),
    /// The repository (named) has no lifecycle policy.
    #[error("repository {0} has no lifecycle policy")]
    LifecyclePolicyNotFound(String),
    /// A lifecycle policy preview of the repository (named) is in progress.
    #[error("a lifecycle policy preview of repository {0} is in progress")]
    LifecyclePreviewInProgress(String),
    /// The repository (named) has no lifecycle policy preview.
    #[error("repository {0} has no lifecycle policy preview")]
    LifecyclePreviewNotFound(String),
    /// A replication configuration ECR would refuse (type and message in ECR's words).
    #[error("{0}")]
    ReplicationConfigInvalid(berth_core::replication::ReplicationConfigError),
    /// A repository creation template with this prefix exists.
    #[error("a repository creation template with prefix {0} exists")]
    TemplateAlreadyExists(String),
    /// No repository creation template has this prefix.
    #[error("no repository creation template has prefix {0}")]
    TemplateNotFound(String),
    /// An internal fault (storage or database); details are logged, not shown.
    #[error("internal error: {0}")]
    Internal(String),
}

/// Why a tag is immutable, ending ECR's refusal message (ECR's own sentence for
/// `IMMUTABLE`; the exclusion modes say which filters decided).
fn immutability_reason(mode: TagMutability) -> &'static str {
    match mode {
        TagMutability::ImmutableWithExclusion => {
            "the repository is immutable (IMMUTABLE_WITH_EXCLUSION) and the tag matches none of its exclusion filters."
        }
        TagMutability::MutableWithExclusion => {
            "the tag matches an exclusion filter of the repository (MUTABLE_WITH_EXCLUSION), which makes it immutable."
        }
        TagMutability::Immutable | TagMutability::Mutable => "the repository is immutable.",
    }
}

/// How long a push waits for a garbage collection deleting the bytes of the blob it
/// is committing before it gives up (the collection's claim takes milliseconds; only a
/// crashed collector's claim lasts longer, until the next run finishes it).
pub const PIN_WAIT: Duration = Duration::from_secs(30);

/// A result of a service operation.
pub type Result<T, E = RegistryError> = std::result::Result<T, E>;

impl From<NameError> for RegistryError {
    fn from(e: NameError) -> Self {
        match e {
            NameError::Name(_) => RegistryError::NameInvalid(e.to_string()),
            NameError::Tag(_) => RegistryError::TagInvalid(e.to_string()),
            NameError::Digest(d) => RegistryError::DigestInvalid(d.to_string()),
        }
    }
}

impl From<MetaError> for RegistryError {
    fn from(e: MetaError) -> Self {
        match e {
            MetaError::RepositoryNotFound(n) => RegistryError::NameUnknown(n),
            MetaError::MissingBlobs(missing) => RegistryError::ManifestBlobUnknown {
                kind: "blobs",
                missing,
            },
            MetaError::MissingManifests(missing) => RegistryError::ManifestBlobUnknown {
                kind: "manifests",
                missing,
            },
            e @ MetaError::Referenced { .. } => RegistryError::Conflict(e.to_string()),
            MetaError::TagImmutable {
                repository,
                tag,
                mode,
            } => RegistryError::TagImmutable {
                repository,
                tag,
                mode,
            },
            MetaError::RepositoryNotEmpty(n) => RegistryError::RepositoryNotEmpty(n),
            e @ MetaError::TooManyTags { .. } => RegistryError::TooManyTags(e.to_string()),
            e @ MetaError::SizeMismatch { .. } => RegistryError::ManifestInvalid(e.to_string()),
            e => RegistryError::Internal(e.to_string()),
        }
    }
}

impl From<StoreError> for RegistryError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::BlobNotFound(d) => RegistryError::BlobUnknown(d),
            StoreError::UploadNotFound(id) => RegistryError::BlobUploadUnknown(id),
            StoreError::OutOfOrder { current, got } => RegistryError::RangeInvalid { current, got },
            e @ StoreError::DigestMismatch { .. } => RegistryError::DigestInvalid(e.to_string()),
            e @ StoreError::UploadBusy(_) => RegistryError::BlobUploadInvalid(e.to_string()),
            StoreError::Body(m) => RegistryError::Body(m),
            StoreError::Digest(d) => RegistryError::DigestInvalid(d.to_string()),
            e @ StoreError::Io(_) => RegistryError::Internal(e.to_string()),
        }
    }
}

impl From<ManifestError> for RegistryError {
    fn from(e: ManifestError) -> Self {
        match e {
            ManifestError::TooLarge(_) => RegistryError::ManifestTooLarge(e.to_string()),
            ManifestError::Digest(_) => RegistryError::DigestInvalid(e.to_string()),
            e => RegistryError::ManifestInvalid(e.to_string()),
        }
    }
}

/// The result of storing a manifest: what it is and what changed, computed inside the
/// storing transaction (so events and answers need no second read).
#[derive(Debug, Clone)]
pub struct PutManifest {
    /// The digest of the bytes stored.
    pub digest: Digest,
    /// The manifest's media type.
    pub media_type: String,
    /// The manifest's `subject`, if any (returned as `OCI-Subject`).
    pub subject: Option<Digest>,
    /// What the push changed.
    pub change: ManifestChange,
}

/// What storing a manifest changed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ManifestChange {
    /// The repository was created by this push.
    pub repository_created: bool,
    /// The manifest was not stored before (an image was created).
    pub image_created: bool,
    /// The tag given, if any, and what happened to it.
    pub tag: Option<TagChange>,
}

/// What happened to the tag of a push.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TagChange {
    /// The tag did not exist and now points at the manifest.
    Created(Tag),
    /// The tag pointed at `previous` and now points at the manifest.
    Moved {
        /// The tag.
        tag: Tag,
        /// The manifest it pointed at before.
        previous: Digest,
    },
    /// The tag already pointed at the manifest.
    Unchanged(Tag),
}

impl ManifestChange {
    fn new(out: &berth_meta::PutOutcome, tag: Option<&Tag>) -> ManifestChange {
        ManifestChange {
            repository_created: out.created_repository,
            image_created: !out.manifest_existed,
            tag: tag.map(|t| match (&out.previous_tag_target, out.tag_unchanged) {
                (_, true) => TagChange::Unchanged(t.clone()),
                (Some(previous), false) => TagChange::Moved {
                    tag: t.clone(),
                    previous: previous.clone(),
                },
                (None, false) => TagChange::Created(t.clone()),
            }),
        }
    }

    /// Whether the push changed nothing (the manifest existed and the tag, if any, was
    /// already on it).
    pub fn is_noop(&self) -> bool {
        !self.image_created && matches!(self.tag, None | Some(TagChange::Unchanged(_)))
    }
}

/// The registry service. Cheap to clone (all state behind `Arc`).
#[derive(Clone)]
pub struct Registry {
    store: Arc<dyn BlobStore>,
    meta: Arc<dyn MetaStore>,
    cfg: Arc<RegistryConfig>,
    cache: Option<Arc<cache::ManifestCache>>,
    pulls: Arc<pulls::PullRecorder>,
    hook: Arc<dyn ChangeHook>,
    sealer: Option<Arc<dyn sealed::SecretSealer>>,
    lifecycle_exclude: Arc<Vec<String>>,
    scan: Arc<scanning::ScanState>,
    replication: replication::ReplicationConfigCell,
}

impl Registry {
    /// Composes a registry from a blob store and a metadata store.
    pub fn new(
        store: Arc<dyn BlobStore>,
        meta: Arc<dyn MetaStore>,
        cfg: RegistryConfig,
    ) -> Registry {
        let cache = cfg
            .manifest_cache
            .then(|| Arc::new(cache::ManifestCache::default()));
        Registry {
            store,
            meta,
            cfg: Arc::new(cfg),
            cache,
            pulls: Arc::default(),
            hook: Arc::new(NoJobs),
            sealer: None,
            lifecycle_exclude: Arc::default(),
            scan: Arc::default(),
            replication: Default::default(),
        }
    }

    /// The same registry sealing the event configuration's secrets at rest with `sealer`
    /// (see [`sealed`]); without one they are stored as given.
    pub fn with_secret_sealer(mut self, sealer: Arc<dyn sealed::SecretSealer>) -> Registry {
        self.sealer = Some(sealer);
        self
    }

    /// The same registry with `hook` deciding which background jobs each content change
    /// causes (events, later replication and scans): every manifest PUT, manifest delete
    /// and tag delete, from either API, hands it to the metadata store, which enqueues
    /// the jobs in the transaction that makes the change (`berth_meta::changes`).
    /// Compose several features' hooks with [`Hooks`].
    pub fn with_job_hook(mut self, hook: Arc<dyn JobHook>) -> Registry {
        self.hook = hook;
        self
    }

    /// The blob store (for metrics).
    pub fn store(&self) -> &Arc<dyn BlobStore> {
        &self.store
    }

    /// The settings in force.
    pub fn config(&self) -> &RegistryConfig {
        &self.cfg
    }

    async fn require_repository(&self, repo: &RepositoryName) -> Result<()> {
        if self.meta.repository_exists(repo).await? {
            Ok(())
        } else {
            Err(RegistryError::NameUnknown(repo.to_string()))
        }
    }

    /// Maps a metadata error of a push: a missing repository means creation on push is off.
    fn push_error(e: MetaError) -> RegistryError {
        match e {
            MetaError::RepositoryNotFound(n) => RegistryError::NotCreatedOnPush(n),
            e => e.into(),
        }
    }

    // ---- blobs (spec § Pulling blobs, § Checking if content exists) ----

    /// Size of a blob linked to `repo`. Errors: [`RegistryError::BlobUnknown`].
    pub async fn blob_size(&self, repo: &RepositoryName, digest: &Digest) -> Result<u64> {
        self.meta
            .linked_blob(repo, digest)
            .await?
            .ok_or_else(|| RegistryError::BlobUnknown(digest.clone()))
    }

    /// Opens a blob linked to `repo`. Errors: [`RegistryError::BlobUnknown`].
    pub async fn open_blob(&self, repo: &RepositoryName, digest: &Digest) -> Result<BlobContent> {
        self.blob_size(repo, digest).await?;
        match self.store.open(digest).await {
            Ok(b) => Ok(b),
            // Linked in metadata but gone from storage: an operator problem, not the
            // client's. Answer 500 and log it, never a misleading "unknown blob".
            Err(StoreError::BlobNotFound(d)) => Err(RegistryError::Internal(format!(
                "blob {d} is linked to repository {repo} but missing from blob storage"
            ))),
            Err(e) => Err(e.into()),
        }
    }

    /// Unlinks a blob from `repo` (spec § Deleting blobs). Bytes stay in storage until
    /// garbage collection, since other repositories may link them.
    pub async fn delete_blob(&self, repo: &RepositoryName, digest: &Digest) -> Result<()> {
        if self.meta.unlink_blob(repo, digest).await? {
            Ok(())
        } else {
            Err(RegistryError::BlobUnknown(digest.clone()))
        }
    }

    // ---- uploads (spec § Pushing blobs) ----

    /// Starts an upload session in `repo`; returns its ID.
    /// Errors: [`RegistryError::NameUnknown`] when creation on push is off and `repo` is missing.
    pub async fn start_upload(&self, repo: &RepositoryName) -> Result<String> {
        if !self.cfg.create_on_push && !self.meta.repository_exists(repo).await? {
            return Err(RegistryError::NotCreatedOnPush(repo.to_string()));
        }
        Ok(self.store.create_upload(repo.as_str()).await?)
    }

    /// State of an upload session of `repo`. Errors: [`RegistryError::BlobUploadUnknown`].
    pub async fn upload_status(&self, repo: &RepositoryName, id: &str) -> Result<UploadStatus> {
        let st = self.store.upload_status(id).await?;
        if st.owner != repo.as_str() {
            return Err(RegistryError::BlobUploadUnknown(id.to_string()));
        }
        Ok(st)
    }

    /// Appends a chunk at `offset` (the current end if `None`); returns the new size.
    /// Errors: [`RegistryError::RangeInvalid`] for an out-of-order chunk.
    pub async fn append_upload(
        &self,
        repo: &RepositoryName,
        id: &str,
        offset: Option<u64>,
        body: ByteStream,
    ) -> Result<u64> {
        self.upload_status(repo, id).await?;
        Ok(self.store.append(id, offset, body).await?)
    }

    /// Appends an optional last chunk, verifies the digest, commits the blob and links it
    /// to `repo`. Errors: [`RegistryError::DigestInvalid`] if the bytes hash to another digest
    /// (the session stays open so the client may retry).
    pub async fn complete_upload(
        &self,
        repo: &RepositoryName,
        id: &str,
        digest: &Digest,
        body: Option<ByteStream>,
    ) -> Result<u64> {
        self.upload_status(repo, id).await?;
        if let Some(body) = body {
            self.store.append(id, None, body).await?;
        }
        // Pinned from before the bytes are committed until they are linked, so garbage
        // collection cannot delete them in between (berth_meta::gc).
        let pin = self.pin_blob(digest).await?;
        let size = match self.store.commit(id, digest).await {
            Ok(size) => size,
            Err(e) => {
                let _ = self.meta.unpin_blob(pin).await;
                if let StoreError::DigestMismatch { .. } = e {
                    // As distribution does: a failed completion ends the session, so a
                    // retry of the same PUT cannot append the body a second time.
                    let _ = self.store.cancel(id).await;
                }
                return Err(e.into());
            }
        };
        self.meta
            .link_blob(repo, pin, size, self.cfg.create_on_push)
            .await
            .map_err(Self::push_error)?;
        Ok(size)
    }

    /// Cancels an upload session (spec § Canceling an upload).
    pub async fn cancel_upload(&self, repo: &RepositoryName, id: &str) -> Result<()> {
        self.upload_status(repo, id).await?;
        Ok(self.store.cancel(id).await?)
    }

    /// A single-request upload (`POST ?digest=`, spec § Single POST): stores `body` as
    /// blob `digest` in `repo`. On a digest mismatch nothing is stored.
    pub async fn upload_blob(
        &self,
        repo: &RepositoryName,
        digest: &Digest,
        body: ByteStream,
    ) -> Result<u64> {
        let id = self.start_upload(repo).await?;
        let result = self.complete_upload(repo, &id, digest, Some(body)).await;
        if result.is_err() {
            let _ = self.store.cancel(&id).await;
        }
        result
    }

    /// Mounts a blob from repository `from` into `repo` (spec § Mounting a blob from another
    /// repository). Returns the size if mounted, `None` if `from` does not have the blob
    /// (the caller then starts a normal upload).
    pub async fn mount_blob(
        &self,
        repo: &RepositoryName,
        from: &RepositoryName,
        digest: &Digest,
    ) -> Result<Option<u64>> {
        let Some(size) = self.meta.linked_blob(from, digest).await? else {
            return Ok(None);
        };
        // Pinned before checking the bytes, so a garbage collection cannot delete them
        // between the check and the link; one sweeping them now makes this a normal
        // upload instead.
        let pin = match self.pin_blob(digest).await {
            Ok(pin) => pin,
            Err(RegistryError::BlobUploadInvalid(_)) => return Ok(None),
            Err(e) => return Err(e),
        };
        if self.store.stat(digest).await?.is_none() {
            let _ = self.meta.unpin_blob(pin).await;
            return Ok(None);
        }
        self.meta
            .link_blob(repo, pin, size, self.cfg.create_on_push)
            .await
            .map_err(Self::push_error)?;
        Ok(Some(size))
    }

    /// Pins `digest` against garbage collection (berth_meta::gc). While a collection is
    /// deleting its bytes the pin is refused; that takes milliseconds, so this waits
    /// (up to [`PIN_WAIT`]) and tries again.
    /// Errors: [`RegistryError::BlobUploadInvalid`] if the collection did not finish in
    /// time (the client may retry the request).
    async fn pin_blob(&self, digest: &Digest) -> Result<berth_meta::BlobPin> {
        let deadline = std::time::Instant::now() + PIN_WAIT;
        loop {
            let now = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_secs() as i64)
                .unwrap_or(0);
            match self.meta.pin_blob(digest, now).await {
                Ok(pin) => return Ok(pin),
                Err(e @ MetaError::BlobBeingCollected(_)) => {
                    if std::time::Instant::now() >= deadline {
                        return Err(RegistryError::BlobUploadInvalid(e.to_string()));
                    }
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
                Err(e) => return Err(e.into()),
            }
        }
    }

    /// Removes upload sessions idle longer than the configured expiry; returns how many.
    pub async fn expire_uploads(&self) -> Result<usize> {
        Ok(self.store.expire_uploads(self.cfg.upload_expiry).await?)
    }

    // ---- manifests (spec § Pushing manifests, § Pulling manifests) ----

    /// Stores a manifest under `reference` (a tag, or the digest it must hash to).
    /// `content_type` is the request's `Content-Type`. The digest is computed from `body`
    /// with sha256, or with the algorithm of a digest reference.
    /// Errors: [`RegistryError::ManifestInvalid`], [`RegistryError::DigestInvalid`],
    /// [`RegistryError::ManifestBlobUnknown`], [`RegistryError::NameUnknown`].
    pub async fn put_manifest(
        &self,
        repo: &RepositoryName,
        reference: &Reference,
        content_type: &str,
        body: Bytes,
    ) -> Result<PutManifest> {
        let parsed = ParsedManifest::parse(content_type, &body)?;
        let (digest, tag) = match reference {
            Reference::Digest(want) => {
                let got = want.recompute(&body);
                if &got != want {
                    return Err(RegistryError::DigestInvalid(format!(
                        "manifest body has digest {got}, not the {want} given in the URL"
                    )));
                }
                (got, None)
            }
            Reference::Tag(t) => (Digest::sha256_of(&body), Some(t)),
        };
        let stored = self
            .meta
            .put_manifest(
                repo,
                &digest,
                &parsed,
                &body,
                tag,
                self.cfg.create_on_push,
                self.hook.as_ref(),
            )
            .await;
        // Invalidate even on failure: the transaction may have committed before an error.
        self.invalidate_cache();
        let out = stored.map_err(Self::push_error)?;
        Ok(PutManifest {
            digest,
            change: ManifestChange::new(&out, tag),
            media_type: parsed.media_type,
            subject: parsed.subject.map(|s| s.digest),
        })
    }

    /// A manifest by tag or digest, recorded as a pull of that image ([`pulls`]).
    /// Errors: [`RegistryError::ManifestUnknown`] (or [`RegistryError::NameUnknown`] when
    /// the repository does not exist).
    pub async fn get_manifest(
        &self,
        repo: &RepositoryName,
        reference: &Reference,
    ) -> Result<Arc<ManifestRow>> {
        let generation = match &self.cache {
            Some(c) => match c.get(repo, reference) {
                Some(hit) => {
                    self.pulls.record(repo, &hit.digest);
                    return Ok(hit);
                }
                None => c.generation(),
            },
            None => 0,
        };
        let row = match reference {
            Reference::Tag(t) => self.meta.manifest_by_tag(repo, t).await?,
            Reference::Digest(d) => self.meta.manifest_by_digest(repo, d).await?,
        };
        match row {
            Some(r) => {
                self.pulls.record(repo, &r.digest);
                let r = Arc::new(r);
                if let Some(c) = &self.cache {
                    c.insert(generation, repo, reference, r.clone());
                }
                Ok(r)
            }
            None => Err(self.manifest_unknown(repo, reference).await),
        }
    }

    fn invalidate_cache(&self) {
        if let Some(c) = &self.cache {
            c.invalidate();
        }
    }

    /// A manifest's digest, media type and size without its body (for HEAD).
    pub async fn head_manifest(
        &self,
        repo: &RepositoryName,
        reference: &Reference,
    ) -> Result<ManifestHead> {
        if let Some(hit) = self.cache.as_ref().and_then(|c| c.get(repo, reference)) {
            return Ok(ManifestHead {
                digest: hit.digest.clone(),
                media_type: hit.media_type.clone(),
                size: hit.body.len() as u64,
            });
        }
        let row = match reference {
            Reference::Tag(t) => self.meta.manifest_head_by_tag(repo, t).await?,
            Reference::Digest(d) => self.meta.manifest_head_by_digest(repo, d).await?,
        };
        match row {
            Some(r) => Ok(r),
            None => Err(self.manifest_unknown(repo, reference).await),
        }
    }

    async fn manifest_unknown(
        &self,
        repo: &RepositoryName,
        reference: &Reference,
    ) -> RegistryError {
        match self.meta.repository_exists(repo).await {
            Ok(false) => RegistryError::NameUnknown(repo.to_string()),
            Ok(true) => RegistryError::ManifestUnknown(reference.to_string()),
            Err(e) => e.into(),
        }
    }

    /// Deletes by digest (the manifest and every tag on it) or by tag (only the tag),
    /// spec § Deleting manifests / § Deleting tags.
    /// Errors: [`RegistryError::ManifestUnknown`], [`RegistryError::Conflict`] when an index
    /// in the repository still references the manifest.
    pub async fn delete_manifest(
        &self,
        repo: &RepositoryName,
        reference: &Reference,
    ) -> Result<()> {
        let found = match reference {
            Reference::Digest(d) => self.meta.delete_manifest(repo, d, self.hook.as_ref()).await,
            Reference::Tag(t) => self.meta.delete_tag(repo, t, self.hook.as_ref()).await,
        };
        self.invalidate_cache();
        let found = found?;
        if found {
            Ok(())
        } else {
            Err(self.manifest_unknown(repo, reference).await)
        }
    }

    /// The children of an image index with their platforms.
    pub async fn index_children(
        &self,
        repo: &RepositoryName,
        index: &Digest,
    ) -> Result<Vec<IndexChild>> {
        Ok(self.meta.index_children(repo, index).await?)
    }

    // ---- content discovery (spec § Content discovery) ----

    /// Up to `n` tags after `last`, in lexical order. Errors: [`RegistryError::NameUnknown`].
    pub async fn list_tags(
        &self,
        repo: &RepositoryName,
        last: Option<&str>,
        n: u32,
    ) -> Result<Vec<String>> {
        let tags = self.meta.list_tags(repo, last, n).await?;
        if tags.is_empty() {
            self.require_repository(repo).await?;
        }
        Ok(tags)
    }

    /// Up to `n` repository names after `last`, in lexical order.
    pub async fn catalog(&self, last: Option<&str>, n: u32) -> Result<Vec<String>> {
        Ok(self.meta.list_repositories(last, n).await?)
    }

    /// Manifests whose `subject` is `subject`, optionally filtered by artifact type
    /// (spec § Listing referrers). An unknown subject gives an empty list.
    pub async fn referrers(
        &self,
        repo: &RepositoryName,
        subject: &Digest,
        artifact_type: Option<&str>,
    ) -> Result<Vec<Referrer>> {
        let list = self.meta.referrers(repo, subject, artifact_type).await?;
        if list.is_empty() {
            self.require_repository(repo).await?;
        }
        Ok(list)
    }
}
