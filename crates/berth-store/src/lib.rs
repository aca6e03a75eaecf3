//! # berth-store: content-addressed blob storage
//!
//! Owns the bytes of blobs and of uploads in progress, and nothing else: it knows
//! digests and upload IDs, never repositories, tags, HTTP or policies.
//!
//! The [`BlobStore`] trait is the seam between the service layer and a storage backend.
//! [`fs::FsStore`] is the embedded default (a local directory); [`s3::S3Store`] keeps
//! blobs and upload sessions in an S3-compatible bucket, for several nodes sharing one
//! store. Every backend keeps the
//! invariants written on the trait; the most important is DESIGN.md invariant 1 and 3:
//! a blob becomes visible under a digest only after its bytes were hashed to that digest
//! and made durable (fsync of data, rename, fsync of directory).

#![deny(missing_docs)]

pub mod fs;
pub mod s3;

use berth_core::{Digest, DigestError};
use bytes::Bytes;
use futures::stream::BoxStream;
use std::time::{Duration, SystemTime};

pub use fs::FsStore;
pub use s3::{ObjectBlob, S3Options, S3Store};

/// Errors of blob storage, in storage terms. The service layer maps them to the
/// distribution-spec codes (`BLOB_UNKNOWN`, `BLOB_UPLOAD_UNKNOWN`, `DIGEST_INVALID`, …).
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// No blob with this digest is stored.
    #[error("blob {0} is not stored")]
    BlobNotFound(Digest),
    /// No upload session with this ID exists (never created, completed, cancelled or expired).
    #[error("upload {0} does not exist")]
    UploadNotFound(String),
    /// A chunk was sent for a position other than the current end of the upload.
    #[error("chunk starts at byte {got} but the upload has {current} bytes")]
    OutOfOrder {
        /// Bytes the upload holds now.
        current: u64,
        /// Position the chunk claimed to start at.
        got: u64,
    },
    /// The uploaded bytes hash to a different digest than the client claimed.
    #[error("uploaded content has digest {actual}, not {expected}")]
    DigestMismatch {
        /// The digest the client claimed.
        expected: Digest,
        /// The digest of the bytes received.
        actual: Digest,
    },
    /// Another request is writing to the same upload session right now.
    #[error("upload {0} is busy with another request")]
    UploadBusy(String),
    /// The request body failed while streaming (client went away, body too large…).
    #[error("request body: {0}")]
    Body(String),
    /// A digest string could not be parsed.
    #[error(transparent)]
    Digest(#[from] DigestError),
    /// An I/O failure of the backend.
    #[error("storage I/O: {0}")]
    Io(#[from] std::io::Error),
}

/// A result of a storage operation.
pub type Result<T, E = StoreError> = std::result::Result<T, E>;

/// A stream of body chunks fed into an upload. Errors abort the append; the bytes
/// written before the error stay in the session (spec: the upload can be resumed).
pub type ByteStream = BoxStream<'static, std::result::Result<Bytes, String>>;

/// Stored blob content opened for reading.
pub enum BlobContent {
    /// A local file: the API layer may serve it with zero-copy I/O. `len` is its size.
    File {
        /// The open file, positioned at 0.
        file: std::fs::File,
        /// Size in bytes.
        len: u64,
    },
    /// An object in an object store ([`S3Store`]): read it in byte ranges with
    /// [`ObjectBlob::read`], or redirect the client to [`ObjectBlob::redirect`].
    Object(ObjectBlob),
}

/// A stream of a blob's bytes; errors are I/O errors of the backend.
pub type BlobStream = BoxStream<'static, std::io::Result<Bytes>>;

impl BlobContent {
    /// Size of the blob in bytes.
    pub fn len(&self) -> u64 {
        match self {
            BlobContent::File { len, .. } => *len,
            BlobContent::Object(o) => o.len(),
        }
    }

    /// Whether the blob is empty (zero bytes).
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Streams bytes `range` (end exclusive, within `0..len`) of the blob. A file is
    /// read in 1 MiB blocks on the blocking pool; an object with one ranged GET.
    /// Errors: I/O errors of the backend (also later, inside the stream).
    pub async fn read(self, range: std::ops::Range<u64>) -> Result<BlobStream> {
        match self {
            BlobContent::File { file, .. } => Ok(file_range(file, range)),
            BlobContent::Object(o) => o.read(range).await,
        }
    }
}

/// Streams `range` of `file` in blocks of at most 1 MiB, read with `pread` on the
/// blocking pool.
fn file_range(file: std::fs::File, range: std::ops::Range<u64>) -> BlobStream {
    use futures::StreamExt;
    use std::os::unix::fs::FileExt;
    let file = std::sync::Arc::new(file);
    futures::stream::try_unfold((file, range), |(file, r)| async move {
        if r.start >= r.end {
            return Ok(None);
        }
        let want = (r.end - r.start).min(1 << 20) as usize;
        let f = file.clone();
        let start = r.start;
        let buf = tokio::task::spawn_blocking(move || -> std::io::Result<Vec<u8>> {
            let mut buf = vec![0u8; want];
            f.read_exact_at(&mut buf, start)?;
            Ok(buf)
        })
        .await
        .map_err(std::io::Error::other)??;
        Ok(Some((Bytes::from(buf), (file, start + want as u64..r.end))))
    })
    .boxed()
}

/// One committed blob as a listing ([`BlobStore::list_blobs`]) sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredBlob {
    /// The digest the blob is stored under.
    pub digest: Digest,
    /// Its size in bytes.
    pub size: u64,
    /// When its bytes were last written (file mtime, object `Last-Modified`).
    pub modified: SystemTime,
}

/// A listing of committed blobs, in no particular order; errors are the backend's I/O
/// errors (also inside the stream).
pub type BlobListing = BoxStream<'static, Result<StoredBlob>>;

/// The state of an upload session (distribution-spec § Pushing blobs in chunks).
#[derive(Debug, Clone)]
pub struct UploadStatus {
    /// The upload's ID (a UUID string).
    pub id: String,
    /// The opaque owner given at creation (the service layer stores the repository name).
    pub owner: String,
    /// Bytes received so far.
    pub size: u64,
    /// When the session last received data (used for expiry).
    pub updated: SystemTime,
}

/// A content-addressed blob store with resumable upload sessions.
///
/// Invariants every backend keeps:
/// - `stat`/`open` never see a blob whose bytes do not hash to its digest, nor a blob
///   whose bytes are not yet durable;
/// - `commit` is atomic and idempotent: committing content that is already stored
///   succeeds and leaves one copy;
/// - an upload session holds only the bytes acknowledged to the client, and concurrent
///   requests against one session are refused ([`StoreError::UploadBusy`]) rather than
///   interleaved.
#[async_trait::async_trait]
pub trait BlobStore: Send + Sync + 'static {
    /// Size in bytes of a stored blob, or `None` if it is not stored.
    async fn stat(&self, digest: &Digest) -> Result<Option<u64>>;
    /// Opens a stored blob. Errors: [`StoreError::BlobNotFound`].
    async fn open(&self, digest: &Digest) -> Result<BlobContent>;
    /// Removes a stored blob (idempotent). Callers must first make sure nothing references it.
    async fn delete(&self, digest: &Digest) -> Result<()>;
    /// Every committed blob, for garbage collection to compare with the metadata store
    /// (bytes no metadata row names are swept). Upload sessions are not listed; entries
    /// whose name is not a digest are skipped. Memory stays bounded by one directory (or
    /// one listing page) at a time.
    fn list_blobs(&self) -> BlobListing;

    /// Starts an upload session owned by `owner`; returns its ID.
    async fn create_upload(&self, owner: &str) -> Result<String>;
    /// Current state of a session. Errors: [`StoreError::UploadNotFound`].
    async fn upload_status(&self, id: &str) -> Result<UploadStatus>;
    /// Appends `body` at byte `offset` (or at the current end if `None`) and returns the
    /// new size. Errors: [`StoreError::OutOfOrder`] if `offset` is not the current end.
    async fn append(&self, id: &str, offset: Option<u64>, body: ByteStream) -> Result<u64>;
    /// Verifies that the session's bytes hash to `expected`, makes them durable and
    /// stores them as that blob; removes the session. Returns the blob's size.
    /// Errors: [`StoreError::DigestMismatch`] (the session is left intact).
    async fn commit(&self, id: &str, expected: &Digest) -> Result<u64>;
    /// Stores `data` directly as a blob after verifying its digest (small blobs, manifests
    /// pushed as blobs, mounts from other stores).
    async fn put(&self, expected: &Digest, data: Bytes) -> Result<()>;
    /// Cancels a session and removes its data (idempotent).
    async fn cancel(&self, id: &str) -> Result<()>;
    /// Cancels every session idle for longer than `idle`; returns how many were removed.
    async fn expire_uploads(&self, idle: Duration) -> Result<usize>;
    /// Total bytes of stored blobs (for metrics), if cheaply known.
    fn stored_bytes(&self) -> Option<u64>;
}
