//! The filesystem backend: the embedded default.
//!
//! On-disk layout (version 1, recorded in `<root>/layout-version`):
//!
//! ```text
//! <root>/
//!   layout-version                 "1"
//!   blobs/<alg>/<hh>/<hex>         committed blobs; immutable; <hh> = first two hex chars
//!   uploads/<uuid>/data            bytes received so far for one upload session
//!   uploads/<uuid>/owner           the opaque owner string (the repository name)
//! ```
//!
//! Every path is built by [`FsStore::blob_path`] or [`FsStore::upload_dir`].
//! Durability (DESIGN.md invariant 3): a commit fsyncs the upload's data file, links it
//! into `blobs/` (atomic on one filesystem; rename where hard links are unsupported) and
//! fsyncs the destination directory, so a crash leaves either no blob or the whole
//! verified blob. Upload data lives on the same filesystem as `blobs/`, so a commit
//! never copies bytes.
//!
//! Uploads stream: the request body is handed chunk by chunk over a bounded channel to a
//! blocking thread that writes and hashes it, so memory per upload is bounded by the
//! channel (a few chunks) whatever the blob's size (invariant 7). The running hash is
//! kept between chunks of a chunked upload; after a restart it is rebuilt by rereading
//! the data file.

use crate::{BlobContent, BlobStore, ByteStream, Result, StoreError, UploadStatus};
use berth_core::{Algorithm, Digest, Hasher};
use bytes::Bytes;
use futures::{StreamExt, TryStreamExt};
use std::collections::HashMap;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

/// Depth of the channel between the request body and the writer thread, in chunks.
const CHANNEL_DEPTH: usize = 2;
/// Bytes of body frames gathered into one batch for the writer and hasher threads.
const WRITE_CHUNK: usize = 1 << 20;
/// Most frames in one batch (below the kernel's IOV_MAX of 1024 for one writev).
const MAX_BATCH_FRAMES: usize = 512;

/// Body frames handed to the writer and hasher threads, shared between them.
type Batch = Arc<Vec<Bytes>>;

/// Writes every frame of `batch` to `f` with `writev`; returns the bytes written.
fn write_batch(f: &mut std::fs::File, batch: &[Bytes]) -> std::io::Result<u64> {
    let mut slices: Vec<std::io::IoSlice<'_>> =
        batch.iter().map(|b| std::io::IoSlice::new(b)).collect();
    let mut rest = &mut slices[..];
    let mut total = 0u64;
    while !rest.is_empty() {
        let n = f.write_vectored(rest)?;
        if n == 0 {
            return Err(std::io::ErrorKind::WriteZero.into());
        }
        total += n as u64;
        std::io::IoSlice::advance_slices(&mut rest, n);
    }
    Ok(total)
}
/// Bytes written between two requests to start writeback (`sync_file_range`), so the
/// final fsync finds little left to write.
const WRITEBACK_EVERY: u64 = 8 << 20;
/// Buffer size for rereading files, in bytes.
const READ_BUF: usize = 1 << 20;

/// Running state of one session kept in memory between requests.
#[derive(Default)]
struct Session {
    /// SHA-256 over the first `.1` bytes of the data file.
    hasher: Option<(Hasher, u64)>,
}

/// A [`BlobStore`] on a local directory.
pub struct FsStore {
    root: PathBuf,
    sessions: Mutex<HashMap<String, Arc<tokio::sync::Mutex<Session>>>>,
    stored: Arc<AtomicU64>,
}

/// Reads one directory of the blob tree: at depth 0 (`blobs/`) the algorithm
/// directories, at depth 1 (`blobs/<alg>`) the `<hh>` directories, at depth 2 the blobs
/// (files named by their hex digest). Returns (directories to read next, blobs found).
/// A directory that vanished reads as empty.
#[allow(clippy::type_complexity)]
fn list_blob_dir(
    dir: &Path,
    depth: u8,
) -> std::io::Result<(Vec<(PathBuf, u8)>, Vec<crate::StoredBlob>)> {
    let (mut dirs, mut blobs) = (Vec::new(), Vec::new());
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok((dirs, blobs)),
        Err(e) => return Err(e),
    };
    for entry in entries {
        let entry = entry?;
        let path = entry.path();
        if depth < 2 {
            if entry.file_type()?.is_dir() {
                dirs.push((path, depth + 1));
            }
            continue;
        }
        // blobs/<alg>/<hh>/<hex>: the digest is "<alg>:<hex>".
        let (Some(alg), Some(hex)) = (
            dir.parent()
                .and_then(|p| p.file_name())
                .and_then(|n| n.to_str()),
            entry.file_name().to_str().map(str::to_string),
        ) else {
            continue;
        };
        let Ok(digest) = format!("{alg}:{hex}").parse::<Digest>() else {
            continue;
        };
        let m = match entry.metadata() {
            Ok(m) if m.is_file() => m,
            Ok(_) => continue,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => return Err(e),
        };
        blobs.push(crate::StoredBlob {
            digest,
            size: m.len(),
            modified: m.modified()?,
        });
    }
    Ok((dirs, blobs))
}

impl FsStore {
    /// Opens (creating if needed) a store rooted at `root`. Removes nothing.
    /// Errors: I/O errors creating the directories, or a layout version other than 1.
    pub fn open(root: impl Into<PathBuf>) -> Result<FsStore> {
        let root = root.into();
        std::fs::create_dir_all(root.join("blobs"))?;
        std::fs::create_dir_all(root.join("uploads"))?;
        let version = root.join("layout-version");
        match std::fs::read_to_string(&version) {
            Ok(v) if v.trim() == "1" => {}
            Ok(v) => {
                return Err(StoreError::Io(std::io::Error::other(format!(
                    "{} says layout version {:?}; this berth understands version 1",
                    version.display(),
                    v.trim()
                ))))
            }
            Err(_) => std::fs::write(&version, "1\n")?,
        }
        let stored = Arc::new(AtomicU64::new(0));
        let (s, blobs) = (stored.clone(), root.join("blobs"));
        // Sum stored bytes in the background so start-up does not wait on a big tree.
        std::thread::spawn(move || s.fetch_add(dir_size(&blobs), Ordering::Relaxed));
        Ok(FsStore {
            root,
            sessions: Mutex::new(HashMap::new()),
            stored,
        })
    }

    /// Path of a committed blob.
    pub fn blob_path(&self, d: &Digest) -> PathBuf {
        let hex = d.hex();
        self.root
            .join("blobs")
            .join(d.algorithm().as_str())
            .join(&hex[..2])
            .join(hex)
    }

    /// Directory of an upload session. `id` must be a UUID (checked by callers).
    fn upload_dir(&self, id: &str) -> PathBuf {
        self.root.join("uploads").join(id)
    }

    fn session(&self, id: &str) -> Arc<tokio::sync::Mutex<Session>> {
        self.sessions
            .lock()
            .unwrap()
            .entry(id.to_string())
            .or_default()
            .clone()
    }

    fn forget(&self, id: &str) {
        self.sessions.lock().unwrap().remove(id);
    }

    /// Checks that `id` is a UUID and the session exists; returns its data path.
    ///
    /// A session whose data file has a second link was already installed as a blob by a
    /// commit that was killed before it removed the session (between `link(2)` and the
    /// unlink in [`install`]): its bytes *are* a committed blob now, so appending to the
    /// file would rewrite that blob in place. Such a session is finished: it is removed
    /// here and reported as unknown, as a completed upload is.
    fn existing_upload(&self, id: &str) -> Result<PathBuf> {
        use std::os::unix::fs::MetadataExt;
        if uuid::Uuid::parse_str(id).is_err() {
            return Err(StoreError::UploadNotFound(id.to_string()));
        }
        let dir = self.upload_dir(id);
        let data = dir.join("data");
        match std::fs::metadata(&data) {
            Ok(m) if m.nlink() > 1 => {
                let _ = std::fs::remove_dir_all(&dir);
                self.forget(id);
                Err(StoreError::UploadNotFound(id.to_string()))
            }
            Ok(_) => Ok(data),
            Err(_) => Err(StoreError::UploadNotFound(id.to_string())),
        }
    }
}

/// Moves a verified, fsynced file `src` into place at `dst` (a blob path) and fsyncs the
/// directory. If the blob is already stored the file is dropped (same content).
fn install(src: &Path, dst: &Path, len: u64, stored: &AtomicU64) -> std::io::Result<()> {
    if dst.exists() {
        let _ = std::fs::remove_file(src);
        return Ok(());
    }
    let parent = dst.parent().expect("blob path has a parent");
    if !parent.is_dir() {
        std::fs::create_dir_all(parent)?;
        // The new `<hh>` (and, for the first blob, `<alg>` and `blobs`) directory
        // entries must be durable too: fsyncing only `<hh>` below would let a power loss
        // drop the whole directory, and with it a blob already acknowledged (DESIGN.md
        // invariant 3). At most 256 times per algorithm, so the cost does not matter.
        for dir in parent.ancestors().skip(1).take(3) {
            std::fs::File::open(dir)?.sync_all()?;
        }
    }
    // Link, not rename: link(2) refuses to replace an existing `dst`, so when concurrent
    // commits of the same content race past the `exists` check above, exactly one
    // installs the blob and counts its bytes (a rename silently replaced the first copy
    // and `stored` counted the blob once per racer).
    match std::fs::hard_link(src, dst) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
            let _ = std::fs::remove_file(src);
            return Ok(());
        }
        // A filesystem without hard links: rename (may replace an identical copy).
        Err(_) => std::fs::rename(src, dst)?,
    }
    std::fs::File::open(parent)?.sync_all()?;
    let _ = std::fs::remove_file(src);
    stored.fetch_add(len, Ordering::Relaxed);
    Ok(())
}

/// Asks the kernel to start writing `len` bytes at `offset` of `f` to disk, without
/// waiting (Linux `sync_file_range(SYNC_FILE_RANGE_WRITE)`). Durability still comes from
/// the fsync at commit; this only spreads the disk writes over the upload. No safe
/// wrapper exists in std, hence the one `unsafe` call; failures are ignored (it is a hint).
#[cfg(target_os = "linux")]
fn start_writeback(f: &std::fs::File, offset: u64, len: u64) {
    use std::os::fd::AsRawFd;
    // SAFETY: the fd is valid for the lifetime of `f`; the call only reads its arguments.
    unsafe {
        libc::sync_file_range(
            f.as_raw_fd(),
            offset as i64,
            len as i64,
            libc::SYNC_FILE_RANGE_WRITE,
        );
    }
}

#[cfg(not(target_os = "linux"))]
fn start_writeback(_f: &std::fs::File, _offset: u64, _len: u64) {}

fn dir_size(p: &Path) -> u64 {
    let Ok(rd) = std::fs::read_dir(p) else {
        return 0;
    };
    rd.flatten()
        .map(|e| match e.file_type() {
            Ok(t) if t.is_dir() => dir_size(&e.path()),
            Ok(_) => e.metadata().map(|m| m.len()).unwrap_or(0),
            Err(_) => 0,
        })
        .sum()
}

fn hash_file(path: &Path, alg: Algorithm) -> std::io::Result<Digest> {
    let mut f = std::fs::File::open(path)?;
    let mut h = alg.hasher();
    let mut buf = vec![0u8; READ_BUF];
    loop {
        let n = f.read(&mut buf)?;
        if n == 0 {
            return Ok(h.finish());
        }
        h.update(&buf[..n]);
    }
}

fn join_err(e: tokio::task::JoinError) -> StoreError {
    StoreError::Io(std::io::Error::other(e.to_string()))
}

#[async_trait::async_trait]
impl BlobStore for FsStore {
    async fn stat(&self, digest: &Digest) -> Result<Option<u64>> {
        match tokio::fs::metadata(self.blob_path(digest)).await {
            Ok(m) => Ok(Some(m.len())),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    async fn open(&self, digest: &Digest) -> Result<BlobContent> {
        let path = self.blob_path(digest);
        let d = digest.clone();
        tokio::task::spawn_blocking(move || match std::fs::File::open(&path) {
            Ok(file) => {
                let len = file.metadata()?.len();
                Ok(BlobContent::File { file, len })
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Err(StoreError::BlobNotFound(d)),
            Err(e) => Err(e.into()),
        })
        .await
        .map_err(join_err)?
    }

    fn list_blobs(&self) -> crate::BlobListing {
        // Directories still to read: `blobs/<alg>` first, then each `blobs/<alg>/<hh>`,
        // one directory per trip to the blocking pool.
        let start = vec![(self.root.join("blobs"), 0u8)];
        futures::stream::try_unfold(start, |mut pending| async move {
            loop {
                let Some((dir, depth)) = pending.pop() else {
                    return Ok::<_, StoreError>(None);
                };
                let (dirs, blobs) = tokio::task::spawn_blocking(move || list_blob_dir(&dir, depth))
                    .await
                    .map_err(std::io::Error::other)??;
                pending.extend(dirs);
                if !blobs.is_empty() {
                    return Ok(Some((
                        futures::stream::iter(blobs.into_iter().map(Ok)),
                        pending,
                    )));
                }
            }
        })
        .try_flatten()
        .boxed()
    }

    async fn delete(&self, digest: &Digest) -> Result<()> {
        let path = self.blob_path(digest);
        if let Ok(m) = tokio::fs::metadata(&path).await {
            match tokio::fs::remove_file(&path).await {
                Ok(()) => {
                    self.stored.fetch_sub(
                        m.len().min(self.stored.load(Ordering::Relaxed)),
                        Ordering::Relaxed,
                    );
                }
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(e.into()),
            }
        }
        Ok(())
    }

    async fn create_upload(&self, owner: &str) -> Result<String> {
        let id = uuid::Uuid::new_v4().to_string();
        let dir = self.upload_dir(&id);
        tokio::fs::create_dir_all(&dir).await?;
        tokio::fs::write(dir.join("owner"), owner).await?;
        tokio::fs::File::create(dir.join("data")).await?;
        Ok(id)
    }

    async fn upload_status(&self, id: &str) -> Result<UploadStatus> {
        let data = self.existing_upload(id)?;
        let meta = tokio::fs::metadata(&data).await?;
        let owner = tokio::fs::read_to_string(self.upload_dir(id).join("owner"))
            .await
            .unwrap_or_default();
        Ok(UploadStatus {
            id: id.to_string(),
            owner,
            size: meta.len(),
            updated: meta.modified()?,
        })
    }

    async fn append(&self, id: &str, offset: Option<u64>, mut body: ByteStream) -> Result<u64> {
        let data = self.existing_upload(id)?;
        let session = self.session(id);
        let mut guard = session
            .try_lock()
            .map_err(|_| StoreError::UploadBusy(id.to_string()))?;
        let current = tokio::fs::metadata(&data).await?.len();
        if let Some(got) = offset {
            if got != current {
                return Err(StoreError::OutOfOrder { current, got });
            }
        }
        // Keep the running hash only if it covers exactly the bytes on disk.
        let hasher = match guard.hasher.take() {
            Some((h, n)) if n == current => Some(h),
            _ if current == 0 => Some(Algorithm::Sha256.hasher()),
            _ => None,
        };
        // Two blocking threads per request, fed the same chunks: one writes (and starts
        // writeback as it goes), one hashes, so hashing overlaps the kernel's copy into
        // the page cache instead of adding to it.
        let (tx, mut rx) = tokio::sync::mpsc::channel::<Batch>(CHANNEL_DEPTH);
        let (htx, mut hrx) = tokio::sync::mpsc::channel::<Batch>(CHANNEL_DEPTH);
        let writer = tokio::task::spawn_blocking(move || -> std::io::Result<u64> {
            let mut f = std::fs::OpenOptions::new().append(true).open(&data)?;
            let mut written = 0u64;
            let mut flushed = 0u64;
            while let Some(batch) = rx.blocking_recv() {
                written += write_batch(&mut f, &batch)?;
                if written - flushed >= WRITEBACK_EVERY {
                    start_writeback(&f, current + flushed, written - flushed);
                    flushed = written;
                }
            }
            Ok(written)
        });
        let hash_thread = tokio::task::spawn_blocking(move || -> Option<Hasher> {
            let mut hasher = hasher;
            while let Some(batch) = hrx.blocking_recv() {
                if let Some(h) = hasher.as_mut() {
                    batch.iter().for_each(|frame| h.update(frame));
                }
            }
            hasher
        });
        // Batch the body's frames (hyper yields a few KiB to a few hundred KiB at a time)
        // up to WRITE_CHUNK bytes: one channel hop and one writev per batch instead of per
        // frame, and no copy — the frames are hyper's own buffers, shared by reference
        // with both threads. Memory per upload: CHANNEL_DEPTH + 2 batches.
        let mut body_err = None;
        let mut batch: Vec<Bytes> = Vec::new();
        let mut batch_len = 0usize;
        while let Some(item) = body.next().await {
            match item {
                Ok(frame) if frame.is_empty() => {}
                Ok(frame) => {
                    batch_len += frame.len();
                    batch.push(frame);
                    if batch_len >= WRITE_CHUNK || batch.len() >= MAX_BATCH_FRAMES {
                        let full: Batch = Arc::new(std::mem::take(&mut batch));
                        batch_len = 0;
                        if tx.send(full.clone()).await.is_err() || htx.send(full).await.is_err() {
                            break; // the writer failed; its error is reported below
                        }
                    }
                }
                Err(e) => {
                    body_err = Some(e);
                    break;
                }
            }
        }
        if !batch.is_empty() {
            let last: Batch = Arc::new(batch);
            if tx.send(last.clone()).await.is_ok() {
                let _ = htx.send(last).await;
            }
        }
        drop((tx, htx));
        let written = writer.await.map_err(join_err)?;
        let hasher = hash_thread.await.map_err(join_err)?;
        // If the write failed part-way, the hash covers bytes that may not be on disk:
        // drop it (commit rehashes the file) and report the error.
        let written = match written {
            Ok(w) => w,
            Err(e) => {
                guard.hasher = None;
                return Err(e.into());
            }
        };
        let size = current + written;
        guard.hasher = hasher.map(|h| (h, size));
        if let Some(e) = body_err {
            return Err(StoreError::Body(e));
        }
        Ok(size)
    }

    async fn commit(&self, id: &str, expected: &Digest) -> Result<u64> {
        let data = self.existing_upload(id)?;
        let session = self.session(id);
        let mut guard = session
            .try_lock()
            .map_err(|_| StoreError::UploadBusy(id.to_string()))?;
        let size = tokio::fs::metadata(&data).await?.len();
        let running = match guard.hasher.take() {
            Some((h, n)) if n == size && h.algorithm() == expected.algorithm() => Some(h),
            _ => None,
        };
        let alg = expected.algorithm();
        let data2 = data.clone();
        let actual = tokio::task::spawn_blocking(move || -> std::io::Result<Digest> {
            let d = match running {
                Some(h) => h.finish(),
                None => hash_file(&data2, alg)?,
            };
            std::fs::File::open(&data2)?.sync_data()?;
            Ok(d)
        })
        .await
        .map_err(join_err)??;
        if &actual != expected {
            // Leave the session intact (its bytes are still valid); forget the hash state.
            return Err(StoreError::DigestMismatch {
                expected: expected.clone(),
                actual,
            });
        }
        let dir = self.upload_dir(id);
        let dst = self.blob_path(expected);
        let stored = self.stored.clone();
        tokio::task::spawn_blocking(move || -> std::io::Result<()> {
            install(&data, &dst, size, &stored)?;
            std::fs::remove_dir_all(&dir)
        })
        .await
        .map_err(join_err)??;
        drop(guard);
        self.forget(id);
        Ok(size)
    }

    async fn put(&self, expected: &Digest, data: Bytes) -> Result<()> {
        let actual = expected.recompute(&data);
        if &actual != expected {
            return Err(StoreError::DigestMismatch {
                expected: expected.clone(),
                actual,
            });
        }
        if self.stat(expected).await?.is_some() {
            return Ok(());
        }
        let tmp_dir = self
            .root
            .join("uploads")
            .join(uuid::Uuid::new_v4().to_string());
        let dst = self.blob_path(expected);
        let stored = self.stored.clone();
        tokio::task::spawn_blocking(move || -> std::io::Result<()> {
            std::fs::create_dir_all(&tmp_dir)?;
            let p = tmp_dir.join("data");
            let mut f = std::fs::File::create(&p)?;
            f.write_all(&data)?;
            f.sync_data()?;
            install(&p, &dst, data.len() as u64, &stored)?;
            std::fs::remove_dir_all(&tmp_dir)
        })
        .await
        .map_err(join_err)??;
        Ok(())
    }

    async fn cancel(&self, id: &str) -> Result<()> {
        if uuid::Uuid::parse_str(id).is_err() {
            return Err(StoreError::UploadNotFound(id.to_string()));
        }
        let dir = self.upload_dir(id);
        match tokio::fs::remove_dir_all(&dir).await {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(StoreError::UploadNotFound(id.to_string()))
            }
            Err(e) => return Err(e.into()),
        }
        self.forget(id);
        Ok(())
    }

    async fn expire_uploads(&self, idle: Duration) -> Result<usize> {
        let mut rd = tokio::fs::read_dir(self.root.join("uploads")).await?;
        let now = SystemTime::now();
        let mut removed = 0;
        while let Some(e) = rd.next_entry().await? {
            let name = e.file_name().to_string_lossy().to_string();
            let path = e.path();
            let modified = match tokio::fs::metadata(path.join("data")).await {
                Ok(m) => m.modified()?,
                Err(_) => e.metadata().await?.modified()?,
            };
            if now.duration_since(modified).unwrap_or_default() < idle {
                continue;
            }
            // Never expire a session a request is writing to right now.
            let session = self.session(&name);
            let Ok(_busy) = session.try_lock() else {
                continue;
            };
            if tokio::fs::remove_dir_all(&path).await.is_ok() {
                removed += 1;
            }
            self.forget(&name);
        }
        Ok(removed)
    }

    fn stored_bytes(&self) -> Option<u64> {
        Some(self.stored.load(Ordering::Relaxed))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures::stream;

    fn body(parts: &[&'static [u8]]) -> ByteStream {
        stream::iter(
            parts
                .iter()
                .map(|p| Ok(Bytes::from_static(p)))
                .collect::<Vec<_>>(),
        )
        .boxed()
    }

    // distribution-spec § Pushing blobs in chunks; DESIGN.md invariant 1.
    #[tokio::test]
    async fn chunked_upload_commits_only_the_right_digest() {
        let dir = tempfile::tempdir().unwrap();
        let s = FsStore::open(dir.path()).unwrap();
        let id = s.create_upload("team/app").await.unwrap();
        assert_eq!(
            s.append(&id, Some(0), body(&[b"hello ", b"wor"]))
                .await
                .unwrap(),
            9
        );
        match s.append(&id, Some(3), body(&[b"x"])).await {
            Err(StoreError::OutOfOrder { current: 9, got: 3 }) => {}
            other => panic!("out-of-order chunk accepted: {:?}", other.map(|_| ())),
        }
        assert_eq!(s.append(&id, None, body(&[b"ld"])).await.unwrap(), 11);
        let wrong = Digest::sha256_of(b"other");
        assert!(matches!(
            s.commit(&id, &wrong).await,
            Err(StoreError::DigestMismatch { .. })
        ));
        assert_eq!(s.stat(&wrong).await.unwrap(), None);
        let right = Digest::sha256_of(b"hello world");
        assert_eq!(s.commit(&id, &right).await.unwrap(), 11);
        assert_eq!(s.stat(&right).await.unwrap(), Some(11));
        assert!(matches!(
            s.upload_status(&id).await,
            Err(StoreError::UploadNotFound(_))
        ));
    }

    // A restart loses the in-memory hash; commit must rehash (sha512 too).
    #[tokio::test]
    async fn commit_after_restart_rehashes() {
        let dir = tempfile::tempdir().unwrap();
        let id = {
            let s = FsStore::open(dir.path()).unwrap();
            let id = s.create_upload("r").await.unwrap();
            s.append(&id, None, body(&[b"abc"])).await.unwrap();
            id
        };
        let s = FsStore::open(dir.path()).unwrap();
        assert_eq!(s.upload_status(&id).await.unwrap().size, 3);
        let mut h = Algorithm::Sha512.hasher();
        h.update(b"abc");
        let d = h.finish();
        assert_eq!(s.commit(&id, &d).await.unwrap(), 3);
        assert!(matches!(
            s.open(&d).await.unwrap(),
            BlobContent::File { len: 3, .. }
        ));
    }

    // Regression (issue 19's soak): a commit killed between linking the session's data
    // file into `blobs/` and removing the session left a session whose data file *is*
    // the committed blob's inode; resuming it after the restart appended to the blob in
    // place, so the blob no longer hashed to its digest (DESIGN.md invariants 1 and 3).
    // The crash state is made exactly as `install` leaves it at that instant.
    #[tokio::test]
    async fn a_session_whose_commit_was_killed_after_the_link_cannot_rewrite_the_blob() {
        let dir = tempfile::tempdir().unwrap();
        let d = Digest::sha256_of(b"committed bytes");
        let id = {
            let s = FsStore::open(dir.path()).unwrap();
            let id = s.create_upload("r").await.unwrap();
            s.append(&id, None, body(&[b"committed bytes"]))
                .await
                .unwrap();
            let dst = s.blob_path(&d);
            std::fs::create_dir_all(dst.parent().unwrap()).unwrap();
            std::fs::hard_link(s.upload_dir(&id).join("data"), &dst).unwrap();
            id // killed here: the session is still on disk
        };
        let s = FsStore::open(dir.path()).unwrap();
        assert!(matches!(
            s.append(&id, Some(15), body(&[b" and more"])).await,
            Err(StoreError::UploadNotFound(_))
        ));
        assert!(matches!(
            s.upload_status(&id).await,
            Err(StoreError::UploadNotFound(_))
        ));
        assert!(
            !s.upload_dir(&id).exists(),
            "the finished session is removed"
        );
        let BlobContent::File { mut file, len } = s.open(&d).await.unwrap() else {
            panic!("a file store opens files")
        };
        let mut bytes = Vec::new();
        file.read_to_end(&mut bytes).unwrap();
        assert_eq!((len, bytes.as_slice()), (15, &b"committed bytes"[..]));
    }

    #[tokio::test]
    async fn idle_uploads_expire_and_put_is_idempotent() {
        let dir = tempfile::tempdir().unwrap();
        let s = FsStore::open(dir.path()).unwrap();
        let id = s.create_upload("r").await.unwrap();
        assert_eq!(
            s.expire_uploads(Duration::from_secs(3600)).await.unwrap(),
            0
        );
        assert_eq!(s.expire_uploads(Duration::ZERO).await.unwrap(), 1);
        assert!(s.upload_status(&id).await.is_err());
        let d = Digest::sha256_of(b"x");
        s.put(&d, Bytes::from_static(b"x")).await.unwrap();
        s.put(&d, Bytes::from_static(b"x")).await.unwrap();
        assert!(s.put(&d, Bytes::from_static(b"y")).await.is_err());
        assert!(matches!(
            s.upload_status("../../etc").await,
            Err(StoreError::UploadNotFound(_))
        ));
    }
}
