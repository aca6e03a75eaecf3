//! The S3 backend: blobs and upload sessions in an S3-compatible bucket, shared by any
//! number of Berth nodes (issue 14, scale-out). Built on the `object_store` crate.
//!
//! Object layout under the configured key prefix `<p>` (`s3://bucket/<p>`):
//!
//! ```text
//! <p>/blobs/<alg>/<hex>                         committed blobs; immutable
//! <p>/uploads/<uuid>/info                       {"owner": …, "created": …}: the session exists
//! <p>/uploads/<uuid>/chunks/<offset:020>        {"len": n, "data": "<name>"}: chunk at offset
//! <p>/uploads/<uuid>/data/<offset:020>-<uuid>   the bytes of one appended chunk
//! ```
//!
//! Every key is built by [`S3Store::blob_key`] or [`S3Store::upload_key`].
//!
//! **No node keeps session state in memory**, so consecutive requests of one upload may
//! land on different nodes. The size of a session is learnt from the store: list its
//! chunk records and read the last one (offset + length).
//!
//! **Appends.** A chunk's bytes are written to a data object of their own (a name no
//! other request uses: offset plus a fresh UUID), streamed: a single PUT when the body
//! ends within [`PART_SIZE`], otherwise a multipart upload with at most
//! [`PARTS_IN_FLIGHT`] parts in flight, so memory per request stays about
//! `PART_SIZE × (PARTS_IN_FLIGHT + 1)` whatever the chunk's size (DESIGN.md invariant 7).
//! Only then is the chunk record `chunks/<offset>` created, with a conditional PUT
//! (`If-None-Match: *`, object_store's `PutMode::Create`): of two requests appending at
//! one offset — on one node or two — exactly one creates the record; the other deletes
//! its data object and gets [`StoreError::UploadBusy`]. A session thus holds exactly the
//! chunks whose record exists: the bytes acknowledged to clients.
//!
//! **Commits.** The chunks are read in order, hashed, and written through one multipart
//! upload (a single PUT below [`PART_SIZE`]) *to the blob's own key*; the upload is
//! completed only if the digest matches and aborted otherwise. An S3 multipart upload is
//! invisible until completed, so a blob is never visible under a digest its bytes do not
//! have (invariant 1), and a crash at any instant leaves at most an incomplete multipart
//! upload (reclaimed by the bucket's `AbortIncompleteMultipartUpload` lifecycle rule) and
//! session objects (reclaimed by [`BlobStore::expire_uploads`]). Completing twice writes
//! the same bytes twice: commits are idempotent, also across nodes.
//!
//! **What it relies on.** Read-after-write consistency of PUT, GET, HEAD and LIST (AWS S3
//! since 2020, SeaweedFS, MinIO); conditional creates (`If-None-Match: *` on PUT; AWS
//! since 2024, SeaweedFS 4.x — checked by `tests/backends.rs`). A store without
//! conditional creates can be used with [`S3Options::conditional_put`] off: then two
//! requests racing on one offset of one session may both be acknowledged and the later
//! record wins; the digest check at commit still keeps every visible blob correct.

use crate::{BlobContent, BlobStore, BlobStream, ByteStream, Result, StoreError, UploadStatus};
use berth_core::{Digest, Hasher};
use bytes::Bytes;
use futures::{StreamExt, TryStreamExt};
use object_store::aws::{AmazonS3, AmazonS3Builder, S3ConditionalPut};
use object_store::path::Path;
use object_store::{
    ClientOptions, GetOptions, GetRange, ObjectStore, ObjectStoreExt, PutMode, PutOptions,
    PutPayload, WriteMultipart,
};
use serde::{Deserialize, Serialize};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

/// Size of one part of a multipart upload, in bytes (S3's minimum is 5 MiB; 8 MiB parts
/// allow chunks and blobs up to 80 GiB within S3's 10,000 parts).
pub const PART_SIZE: usize = 8 << 20;
/// Parts of one multipart upload being sent at once.
pub const PARTS_IN_FLIGHT: usize = 2;
/// Bytes hashed per trip to the blocking pool during a commit.
const HASH_BATCH: usize = 4 << 20;

/// How to reach the bucket. Fields left `None` come from the environment when
/// [`S3Options::from_env`] is used (`AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`,
/// `AWS_SESSION_TOKEN`, `AWS_REGION`/`AWS_DEFAULT_REGION`, `AWS_ENDPOINT_URL`/`AWS_ENDPOINT`,
/// `AWS_ALLOW_HTTP`), else from object_store's defaults (region `us-east-1`, AWS's endpoint).
#[derive(Clone, Debug, Default)]
pub struct S3Options {
    /// The S3 API's base URL, e.g. `http://127.0.0.1:8333` (path-style requests are used).
    /// `None`: AWS S3 (or the environment's).
    pub endpoint: Option<String>,
    /// The region requests are signed for (`us-east-1` when unset).
    pub region: Option<String>,
    /// Access key ID.
    pub access_key_id: Option<String>,
    /// Secret access key.
    pub secret_access_key: Option<String>,
    /// Session token of temporary credentials.
    pub session_token: Option<String>,
    /// Allow a plain `http://` endpoint (loopback, a private network).
    pub allow_http: bool,
    /// Start from the standard AWS environment variables; the fields above override them.
    pub from_env: bool,
    /// Disable conditional creates for stores without `If-None-Match: *` (see the module
    /// doc for what is lost). `false` (default): use them.
    pub no_conditional_put: bool,
    /// When set, [`ObjectBlob::redirect`] offers a presigned GET URL valid this long, for
    /// the API layer to redirect blob downloads to (as ECR and distribution do).
    pub presign_downloads: Option<Duration>,
}

impl S3Options {
    /// Options read from the standard AWS environment variables (see the type's doc).
    pub fn from_env() -> S3Options {
        S3Options {
            from_env: true,
            ..S3Options::default()
        }
    }

    /// Whether conditional creates are used (the default).
    pub fn conditional_put(&self) -> bool {
        !self.no_conditional_put
    }
}

/// A [`BlobStore`] on an S3-compatible bucket, safe to share between nodes.
#[derive(Clone)]
pub struct S3Store {
    s3: Arc<AmazonS3>,
    bucket: String,
    prefix: String,
    create: PutMode,
    presign: Option<Duration>,
}

impl std::fmt::Debug for S3Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "S3Store(s3://{}/{})", self.bucket, self.prefix)
    }
}

/// The record of a session's existence (`uploads/<id>/info`).
#[derive(Serialize, Deserialize)]
struct Info {
    owner: String,
    /// Seconds since the Unix epoch.
    created: u64,
}

/// The record of one acknowledged chunk (`uploads/<id>/chunks/<offset>`).
#[derive(Serialize, Deserialize)]
struct Chunk {
    /// Bytes in the chunk.
    len: u64,
    /// File name of its data object under `uploads/<id>/data/`.
    data: String,
}

/// What a listing of one session shows.
struct Session {
    owner: String,
    /// (offset, chunk record key), sorted by offset.
    chunks: Vec<(u64, Path)>,
    updated: SystemTime,
}

fn io(e: object_store::Error) -> StoreError {
    StoreError::Io(std::io::Error::other(e))
}

fn corrupt(msg: String) -> StoreError {
    StoreError::Io(std::io::Error::new(std::io::ErrorKind::InvalidData, msg))
}

impl S3Store {
    /// A store for `url`, `s3://<bucket>[/<key prefix>]` (what `--storage` takes).
    /// Errors: a URL of another form, or options object_store refuses.
    pub fn from_url(url: &str, opts: S3Options) -> Result<S3Store> {
        let bad = || {
            StoreError::Io(std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                format!("storage URL {url:?} is not of the form s3://bucket[/prefix]"),
            ))
        };
        let rest = url.strip_prefix("s3://").ok_or_else(bad)?;
        let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
        if bucket.is_empty() {
            return Err(bad());
        }
        S3Store::new(bucket, prefix, opts)
    }

    /// A store on `bucket`, keeping every object under `prefix` (`a/b`, or empty).
    /// Connects lazily: see [`S3Store::check`].
    pub fn new(bucket: &str, prefix: &str, opts: S3Options) -> Result<S3Store> {
        let mut b = if opts.from_env {
            AmazonS3Builder::from_env()
        } else {
            AmazonS3Builder::new()
        };
        b = b.with_bucket_name(bucket);
        if let Some(e) = &opts.endpoint {
            b = b.with_endpoint(e).with_virtual_hosted_style_request(false);
        }
        if let Some(r) = &opts.region {
            b = b.with_region(r);
        }
        if let Some(k) = &opts.access_key_id {
            b = b.with_access_key_id(k);
        }
        if let Some(s) = &opts.secret_access_key {
            b = b.with_secret_access_key(s);
        }
        if let Some(t) = &opts.session_token {
            b = b.with_token(t);
        }
        if opts.allow_http {
            b = b.with_allow_http(true);
        }
        b = b.with_conditional_put(if opts.conditional_put() {
            S3ConditionalPut::ETagMatch
        } else {
            S3ConditionalPut::Disabled
        });
        // Blob downloads stream for as long as the client reads: no whole-request
        // timeout, only one for connecting.
        b = b.with_client_options(
            ClientOptions::new()
                .with_allow_http(opts.allow_http)
                .with_timeout_disabled()
                .with_connect_timeout(Duration::from_secs(10)),
        );
        let s3 = b.build().map_err(io)?;
        Ok(S3Store {
            s3: Arc::new(s3),
            bucket: bucket.to_string(),
            prefix: prefix.trim_matches('/').to_string(),
            create: if opts.conditional_put() {
                PutMode::Create
            } else {
                PutMode::Overwrite
            },
            presign: opts.presign_downloads,
        })
    }

    /// Lists the prefix once: fails when the endpoint is unreachable, the bucket missing
    /// or the credentials refused. For start-up checks and readiness probes.
    pub async fn check(&self) -> Result<()> {
        self.s3
            .list_with_delimiter(Some(&self.key("blobs")))
            .await
            .map(|_| ())
            .map_err(io)
    }

    fn key(&self, rest: &str) -> Path {
        if self.prefix.is_empty() {
            Path::from(rest)
        } else {
            Path::from(format!("{}/{rest}", self.prefix))
        }
    }

    /// Key of a committed blob: `<prefix>/blobs/<alg>/<hex>`.
    pub fn blob_key(&self, d: &Digest) -> Path {
        self.key(&format!("blobs/{}/{}", d.algorithm().as_str(), d.hex()))
    }

    /// Key of `rest` (`info`, `chunks/…`, `data/…`) in upload session `id`, or of the
    /// session's directory when `rest` is empty.
    pub fn upload_key(&self, id: &str, rest: &str) -> Path {
        if rest.is_empty() {
            self.key(&format!("uploads/{id}"))
        } else {
            self.key(&format!("uploads/{id}/{rest}"))
        }
    }

    /// Reads a whole small object (a record). `Ok(None)` when it does not exist.
    async fn get_small(&self, key: &Path) -> Result<Option<Bytes>> {
        match self.s3.get(key).await {
            Ok(r) => Ok(Some(r.bytes().await.map_err(io)?)),
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(e) => Err(io(e)),
        }
    }

    /// Lists session `id`. Errors: [`StoreError::UploadNotFound`] for a malformed ID or a
    /// session without its `info` record.
    async fn session(&self, id: &str) -> Result<Session> {
        if uuid::Uuid::parse_str(id).is_err() {
            return Err(StoreError::UploadNotFound(id.to_string()));
        }
        let dir = self.upload_key(id, "");
        let objects: Vec<_> = self.s3.list(Some(&dir)).try_collect().await.map_err(io)?;
        let info_key = self.upload_key(id, "info");
        if !objects.iter().any(|o| o.location == info_key) {
            return Err(StoreError::UploadNotFound(id.to_string()));
        }
        let updated = objects
            .iter()
            .map(|o| SystemTime::from(o.last_modified))
            .max()
            .unwrap_or(SystemTime::UNIX_EPOCH);
        let chunks_dir = self.upload_key(id, "chunks");
        let mut chunks: Vec<(u64, Path)> = objects
            .into_iter()
            .filter(|o| o.location.prefix_matches(&chunks_dir))
            .filter_map(|o| {
                let off = o.location.filename()?.parse::<u64>().ok()?;
                Some((off, o.location))
            })
            .collect();
        chunks.sort_by_key(|c| c.0);
        let info = self
            .get_small(&info_key)
            .await?
            .ok_or_else(|| StoreError::UploadNotFound(id.to_string()))?;
        let info: Info = serde_json::from_slice(&info)
            .map_err(|e| corrupt(format!("upload {id}: info record: {e}")))?;
        Ok(Session {
            owner: info.owner,
            chunks,
            updated,
        })
    }

    async fn chunk(&self, key: &Path) -> Result<Chunk> {
        let raw = self
            .get_small(key)
            .await?
            .ok_or_else(|| corrupt(format!("chunk record {key} vanished")))?;
        serde_json::from_slice(&raw).map_err(|e| corrupt(format!("chunk record {key}: {e}")))
    }

    /// Bytes held by a session: the last chunk's offset plus its length.
    async fn size(&self, s: &Session) -> Result<u64> {
        match s.chunks.last() {
            None => Ok(0),
            Some((off, key)) => Ok(off + self.chunk(key).await?.len),
        }
    }

    /// Deletes every object of session `id`, its `info` record first (so other nodes see
    /// it gone at once). Returns whether the session existed.
    async fn remove_session(&self, id: &str) -> Result<bool> {
        let info = self.upload_key(id, "info");
        let existed = match self.s3.head(&info).await {
            Ok(_) => true,
            Err(object_store::Error::NotFound { .. }) => false,
            Err(e) => return Err(io(e)),
        };
        self.delete_quietly(&info).await?;
        let dir = self.upload_key(id, "");
        let keys = self.s3.list(Some(&dir)).map_ok(|m| m.location).boxed();
        let mut deleted = self.s3.delete_stream(keys);
        while let Some(r) = deleted.next().await {
            match r {
                Ok(_) | Err(object_store::Error::NotFound { .. }) => {}
                Err(e) => return Err(io(e)),
            }
        }
        Ok(existed)
    }

    async fn delete_quietly(&self, key: &Path) -> Result<()> {
        match self.s3.delete(key).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(io(e)),
        }
    }

    /// Streams the bytes of a session's chunks in order, checking that they are
    /// contiguous. The records are read first; the data objects as the stream is polled.
    async fn session_bytes(
        &self,
        id: &str,
        s: &Session,
    ) -> Result<futures::stream::BoxStream<'static, Result<Bytes>>> {
        let mut parts = Vec::with_capacity(s.chunks.len());
        let mut end = 0u64;
        for (off, key) in &s.chunks {
            if *off != end {
                return Err(corrupt(format!(
                    "upload {id}: chunk at {off} does not follow byte {end}"
                )));
            }
            let c = self.chunk(key).await?;
            end += c.len;
            parts.push(self.upload_key(id, &format!("data/{}", c.data)));
        }
        let s3 = self.s3.clone();
        Ok(futures::stream::iter(parts)
            .then(move |key| {
                let s3 = s3.clone();
                async move { s3.get(&key).await.map_err(io) }
            })
            .map_ok(|r| r.into_stream().map_err(io))
            .try_flatten()
            .boxed())
    }
}

/// Writes one object from a stream of buffers: one PUT if it ends within [`PART_SIZE`],
/// else a multipart upload. Nothing is visible at the key before [`ObjectWriter::finish`].
struct ObjectWriter {
    s3: Arc<AmazonS3>,
    key: Path,
    head: Vec<Bytes>,
    head_len: usize,
    multipart: Option<WriteMultipart>,
    written: u64,
}

impl ObjectWriter {
    fn new(s3: Arc<AmazonS3>, key: Path) -> ObjectWriter {
        ObjectWriter {
            s3,
            key,
            head: Vec::new(),
            head_len: 0,
            multipart: None,
            written: 0,
        }
    }

    async fn write(&mut self, b: Bytes) -> Result<()> {
        self.written += b.len() as u64;
        if let Some(mp) = self.multipart.as_mut() {
            mp.wait_for_capacity(PARTS_IN_FLIGHT).await.map_err(io)?;
            mp.put(b);
            return Ok(());
        }
        self.head_len += b.len();
        self.head.push(b);
        if self.head_len >= PART_SIZE {
            let upload = self.s3.put_multipart(&self.key).await.map_err(io)?;
            let mut mp = WriteMultipart::new_with_chunk_size(upload, PART_SIZE);
            for b in self.head.drain(..) {
                mp.put(b);
            }
            self.head_len = 0;
            self.multipart = Some(mp);
        }
        Ok(())
    }

    /// Makes the object visible.
    async fn finish(self) -> Result<u64> {
        match self.multipart {
            Some(mp) => {
                mp.finish().await.map_err(io)?;
            }
            None => {
                let payload: PutPayload = self.head.into_iter().collect();
                self.s3.put(&self.key, payload).await.map_err(io)?;
            }
        }
        Ok(self.written)
    }

    /// Drops what was written (aborts the multipart upload; best effort).
    async fn abort(self) {
        if let Some(mp) = self.multipart {
            let _ = mp.abort().await;
        }
    }
}

/// A blob stored in an object store, opened for reading ([`BlobContent::Object`]).
pub struct ObjectBlob {
    s3: Arc<AmazonS3>,
    key: Path,
    len: u64,
    redirect: Option<String>,
}

impl ObjectBlob {
    /// Size in bytes.
    pub fn len(&self) -> u64 {
        self.len
    }

    /// Whether the blob is empty.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// A presigned GET URL of the whole object, when the store was configured with
    /// [`S3Options::presign_downloads`]; the API layer may answer `307` to it.
    pub fn redirect(&self) -> Option<&str> {
        self.redirect.as_deref()
    }

    /// Streams bytes `range` (end exclusive, within `0..len`) with one ranged GET.
    pub async fn read(self, range: std::ops::Range<u64>) -> Result<BlobStream> {
        if range.start >= range.end {
            return Ok(futures::stream::empty().boxed());
        }
        let opts = GetOptions {
            range: Some(GetRange::Bounded(range)),
            ..GetOptions::default()
        };
        let r = self.s3.get_opts(&self.key, opts).await.map_err(io)?;
        Ok(r.into_stream().map_err(std::io::Error::other).boxed())
    }
}

#[async_trait::async_trait]
impl BlobStore for S3Store {
    fn list_blobs(&self) -> crate::BlobListing {
        // `<p>/blobs/<alg>/<hex>`, one LIST page at a time (object_store pages lazily).
        let prefix = self.key("blobs");
        self.s3
            .list(Some(&prefix))
            .map_err(io)
            .try_filter_map(|meta| async move {
                let parts: Vec<_> = meta.location.parts().collect();
                let n = parts.len();
                if n < 2 {
                    return Ok(None);
                }
                let digest = format!("{}:{}", parts[n - 2].as_ref(), parts[n - 1].as_ref());
                Ok(digest
                    .parse::<Digest>()
                    .ok()
                    .map(|digest| crate::StoredBlob {
                        digest,
                        size: meta.size,
                        modified: meta.last_modified.into(),
                    }))
            })
            .boxed()
    }

    async fn stat(&self, digest: &Digest) -> Result<Option<u64>> {
        match self.s3.head(&self.blob_key(digest)).await {
            Ok(m) => Ok(Some(m.size)),
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(e) => Err(io(e)),
        }
    }

    async fn open(&self, digest: &Digest) -> Result<BlobContent> {
        use object_store::signer::Signer;
        let key = self.blob_key(digest);
        let len = self
            .stat(digest)
            .await?
            .ok_or_else(|| StoreError::BlobNotFound(digest.clone()))?;
        let redirect = match self.presign {
            Some(ttl) => {
                // The method type is object_store's (the `http` crate's), inferred so this
                // crate names no HTTP crate (crates/berth/tests/architecture.rs).
                let get = "GET".parse().map_err(|_| corrupt("GET".into()))?;
                let url = self.s3.signed_url(get, &key, ttl).await.map_err(io)?;
                Some(url.to_string())
            }
            None => None,
        };
        Ok(BlobContent::Object(ObjectBlob {
            s3: self.s3.clone(),
            key,
            len,
            redirect,
        }))
    }

    async fn delete(&self, digest: &Digest) -> Result<()> {
        self.delete_quietly(&self.blob_key(digest)).await
    }

    async fn create_upload(&self, owner: &str) -> Result<String> {
        let id = uuid::Uuid::new_v4().to_string();
        let created = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .unwrap_or_default()
            .as_secs();
        let info = serde_json::to_vec(&Info {
            owner: owner.to_string(),
            created,
        })
        .map_err(|e| corrupt(e.to_string()))?;
        let opts = PutOptions {
            mode: self.create.clone(),
            ..PutOptions::default()
        };
        self.s3
            .put_opts(&self.upload_key(&id, "info"), info.into(), opts)
            .await
            .map_err(io)?;
        Ok(id)
    }

    async fn upload_status(&self, id: &str) -> Result<UploadStatus> {
        let s = self.session(id).await?;
        Ok(UploadStatus {
            id: id.to_string(),
            size: self.size(&s).await?,
            owner: s.owner,
            updated: s.updated,
        })
    }

    async fn append(&self, id: &str, offset: Option<u64>, mut body: ByteStream) -> Result<u64> {
        let s = self.session(id).await?;
        let current = self.size(&s).await?;
        if let Some(got) = offset {
            if got != current {
                return Err(StoreError::OutOfOrder { current, got });
            }
        }
        let data = format!("{current:020}-{}", uuid::Uuid::new_v4());
        let data_key = self.upload_key(id, &format!("data/{data}"));
        let mut w = ObjectWriter::new(self.s3.clone(), data_key.clone());
        let mut body_err = None;
        while let Some(item) = body.next().await {
            match item {
                Ok(b) if b.is_empty() => {}
                Ok(b) => {
                    if let Err(e) = w.write(b).await {
                        w.abort().await;
                        return Err(e);
                    }
                }
                Err(e) => {
                    body_err = Some(e);
                    break;
                }
            }
        }
        // As on a filesystem, the bytes received before a body error stay in the session.
        if w.written == 0 {
            w.abort().await;
            return match body_err {
                Some(e) => Err(StoreError::Body(e)),
                None => Ok(current),
            };
        }
        let len = w.finish().await?;
        let record =
            serde_json::to_vec(&Chunk { len, data }).map_err(|e| corrupt(e.to_string()))?;
        let opts = PutOptions {
            mode: self.create.clone(),
            ..PutOptions::default()
        };
        let chunk_key = self.upload_key(id, &format!("chunks/{current:020}"));
        match self.s3.put_opts(&chunk_key, record.into(), opts).await {
            Ok(_) => {}
            Err(object_store::Error::AlreadyExists { .. }) => {
                // Another request appended at this offset first: it won.
                self.delete_quietly(&data_key).await?;
                return Err(StoreError::UploadBusy(id.to_string()));
            }
            Err(e) => {
                let _ = self.delete_quietly(&data_key).await;
                return Err(io(e));
            }
        }
        // A session cancelled, committed or expired meanwhile must not be revived.
        if let Err(object_store::Error::NotFound { .. }) =
            self.s3.head(&self.upload_key(id, "info")).await
        {
            let _ = self.delete_quietly(&chunk_key).await;
            let _ = self.delete_quietly(&data_key).await;
            return Err(StoreError::UploadNotFound(id.to_string()));
        }
        if let Some(e) = body_err {
            return Err(StoreError::Body(e));
        }
        Ok(current + len)
    }

    async fn commit(&self, id: &str, expected: &Digest) -> Result<u64> {
        let s = self.session(id).await?;
        let exists = self.stat(expected).await?.is_some();
        let mut bytes = self.session_bytes(id, &s).await?;
        // Hash on the blocking pool in batches, while parts upload in the background.
        let mut hasher: Hasher = expected.algorithm().hasher();
        let mut batch: Vec<Bytes> = Vec::new();
        let mut batch_len = 0usize;
        let mut w = (!exists).then(|| ObjectWriter::new(self.s3.clone(), self.blob_key(expected)));
        let mut size = 0u64;
        let mut failed = None;
        loop {
            let next = match bytes.next().await {
                Some(Ok(b)) => Some(b),
                Some(Err(e)) => {
                    failed = Some(e);
                    break;
                }
                None => None,
            };
            let done = next.is_none();
            if let Some(b) = next {
                size += b.len() as u64;
                if let Some(w) = w.as_mut() {
                    if let Err(e) = w.write(b.clone()).await {
                        failed = Some(e);
                        break;
                    }
                }
                batch_len += b.len();
                batch.push(b);
            }
            if batch_len >= HASH_BATCH || (done && !batch.is_empty()) {
                let todo = std::mem::take(&mut batch);
                batch_len = 0;
                hasher = tokio::task::spawn_blocking(move || {
                    todo.iter().for_each(|b| hasher.update(b));
                    hasher
                })
                .await
                .map_err(|e| StoreError::Io(std::io::Error::other(e.to_string())))?;
            }
            if done {
                break;
            }
        }
        if let Some(e) = failed {
            if let Some(w) = w {
                w.abort().await;
            }
            return Err(e);
        }
        let actual = hasher.finish();
        if &actual != expected {
            if let Some(w) = w {
                w.abort().await;
            }
            return Err(StoreError::DigestMismatch {
                expected: expected.clone(),
                actual,
            });
        }
        if let Some(w) = w {
            w.finish().await?;
        }
        self.remove_session(id).await?;
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
        self.s3
            .put(&self.blob_key(expected), data.into())
            .await
            .map_err(io)?;
        Ok(())
    }

    async fn cancel(&self, id: &str) -> Result<()> {
        if uuid::Uuid::parse_str(id).is_err() || !self.remove_session(id).await? {
            return Err(StoreError::UploadNotFound(id.to_string()));
        }
        Ok(())
    }

    async fn expire_uploads(&self, idle: Duration) -> Result<usize> {
        let now = SystemTime::now();
        let dir = self.key("uploads");
        let mut last: std::collections::BTreeMap<String, SystemTime> = Default::default();
        let mut objects = self.s3.list(Some(&dir));
        while let Some(m) = objects.next().await {
            let m = m.map_err(io)?;
            // <prefix>/uploads/<id>/…: the part after `uploads`.
            let Some(id) = m
                .location
                .prefix_match(&dir)
                .and_then(|mut parts| parts.next())
                .map(|p| p.as_ref().to_string())
            else {
                continue;
            };
            let t = SystemTime::from(m.last_modified);
            let e = last.entry(id).or_insert(t);
            *e = (*e).max(t);
        }
        let mut removed = 0;
        for (id, t) in last {
            if now.duration_since(t).unwrap_or_default() < idle {
                continue;
            }
            if self.remove_session(&id).await? {
                removed += 1;
            }
        }
        Ok(removed)
    }

    fn stored_bytes(&self) -> Option<u64> {
        None
    }
}
