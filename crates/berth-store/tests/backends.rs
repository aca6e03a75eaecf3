//! The one blob-backend suite: every invariant of the `BlobStore` trait (crate doc and
//! trait doc of berth-store), each test run against every backend — `FsStore` on a temp
//! directory and `S3Store` on a real SeaweedFS S3 server (one per test binary, each test
//! on a key prefix of its own). A backend passes this suite or it is not a backend.
//!
//! Upload semantics are those of distribution-spec v1.1 § Pushing blobs (chunked and
//! monolithic uploads, § Pushing a blob in chunks, Content-Range order); visibility and
//! crash rules are DESIGN.md invariants 1, 3 and 7. A "second node" is a second store
//! instance on the same directory or bucket prefix, sharing no memory with the first.

use berth_core::Digest;
use berth_store::{BlobContent, BlobStore, ByteStream, StoreError};
use berth_test_support::seaweedfs;
use bytes::Bytes;
use futures::{StreamExt, TryStreamExt};
use sha2::{Digest as _, Sha256};
use std::sync::Arc;
use std::time::Duration;

/// One backend under test: a store, and a way to open another instance ("node") on the
/// same data.
struct Backend {
    store: Arc<dyn BlobStore>,
    node: Box<dyn Fn() -> Arc<dyn BlobStore> + Send + Sync>,
    /// Whether several instances may serve one store at once. `FsStore` is one process
    /// per data directory (`berth serve` holds `berth.lock`): its sessions' locks live in
    /// memory, so concurrent requests are checked on one instance there.
    multi_node: bool,
    _dir: Option<tempfile::TempDir>,
}

impl Backend {
    fn fs() -> Backend {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().to_path_buf();
        let open =
            move || -> Arc<dyn BlobStore> { Arc::new(berth_store::FsStore::open(&path).unwrap()) };
        Backend {
            store: open(),
            node: Box::new(open),
            multi_node: false,
            _dir: Some(dir),
        }
    }

    /// `None` when SeaweedFS is not installed (outside CI; the fixture said so loudly).
    fn s3(test: &str) -> Option<Backend> {
        let server = seaweedfs::shared()?;
        let prefix = seaweedfs::unique_prefix(test);
        let open = move || -> Arc<dyn BlobStore> { Arc::new(server.store(&prefix)) };
        Some(Backend {
            store: open(),
            node: Box::new(open),
            multi_node: true,
            _dir: None,
        })
    }
}

/// Runs `$test(backend)` once per backend, as `fs::$test` and `s3::$test`.
macro_rules! backends {
    ($($test:ident),* $(,)?) => {
        mod fs {
            $(#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $test() { super::$test(super::Backend::fs()).await })*
        }
        mod s3 {
            $(#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $test() {
                if let Some(b) = super::Backend::s3(stringify!($test)) {
                    super::$test(b).await
                }
            })*
        }
    };
}

backends!(
    put_stat_open_ranges_delete,
    chunks_in_order_and_digest_mismatch_leaves_nothing_visible,
    commit_is_idempotent,
    concurrent_appends_at_one_offset_one_wins,
    upload_resumes_on_another_node,
    cancel_and_expire,
    body_error_keeps_acknowledged_bytes,
    empty_blob,
    large_multipart_upload,
    listing_shows_committed_blobs_only,
);

fn body(parts: &[&[u8]]) -> ByteStream {
    let parts: Vec<_> = parts
        .iter()
        .map(|p| Ok(Bytes::copy_from_slice(p)))
        .collect();
    futures::stream::iter(parts).boxed()
}

/// The digest of `data`, with `sha2` directly (not the code under test).
fn digest(data: &[u8]) -> Digest {
    format!("sha256:{:x}", Sha256::digest(data))
        .parse()
        .unwrap()
}

async fn read(content: BlobContent, range: std::ops::Range<u64>) -> Vec<u8> {
    let s = content.read(range).await.unwrap();
    let parts: Vec<Bytes> = s.try_collect().await.unwrap();
    parts.concat()
}

fn not_found<T>(r: berth_store::Result<T>) -> bool {
    matches!(r, Err(StoreError::UploadNotFound(_)))
}

// `put` verifies before storing; `open` streams any byte range (RFC 9110 § 14 as the
// OCI adapter serves it); `delete` is idempotent.
async fn put_stat_open_ranges_delete(b: Backend) {
    let s = &b.store;
    let data = b"the quick brown fox jumps over the lazy dog".repeat(100);
    let d = digest(&data);
    assert_eq!(s.stat(&d).await.unwrap(), None);
    assert!(matches!(s.open(&d).await, Err(StoreError::BlobNotFound(_))));
    let wrong = digest(b"something else");
    assert!(matches!(
        s.put(&wrong, Bytes::from(data.clone())).await,
        Err(StoreError::DigestMismatch { .. })
    ));
    assert_eq!(
        s.stat(&wrong).await.unwrap(),
        None,
        "nothing stored on mismatch"
    );
    s.put(&d, Bytes::from(data.clone())).await.unwrap();
    s.put(&d, Bytes::from(data.clone())).await.unwrap();
    let n = data.len() as u64;
    assert_eq!(s.stat(&d).await.unwrap(), Some(n));
    let c = s.open(&d).await.unwrap();
    assert_eq!(c.len(), n);
    assert_eq!(read(c, 0..n).await, data);
    assert_eq!(read(s.open(&d).await.unwrap(), 4..9).await, b"quick");
    assert_eq!(
        read(s.open(&d).await.unwrap(), n - 3..n).await,
        &data[data.len() - 3..]
    );
    s.delete(&d).await.unwrap();
    s.delete(&d).await.unwrap();
    assert_eq!(s.stat(&d).await.unwrap(), None);
}

// Garbage collection (issue 12, ARCHITECTURE.md § Garbage collection) finds bytes that
// no metadata row names by listing the store: every committed blob is listed with its
// size and a modification time, sessions in progress are not, a deleted blob is gone
// from the listing, and a second node lists what the first committed.
async fn listing_shows_committed_blobs_only(b: Backend) {
    let s = &b.store;
    let before = std::time::SystemTime::now() - Duration::from_secs(300);
    let list = |s: Arc<dyn BlobStore>| async move {
        let mut v: Vec<_> = s.list_blobs().try_collect::<Vec<_>>().await.unwrap();
        v.sort_by_key(|a| a.digest.to_string());
        v
    };
    assert!(
        list(s.clone()).await.is_empty(),
        "a new store lists nothing"
    );
    let blobs: Vec<Vec<u8>> = (0..5)
        .map(|i| format!("listed blob {i}").repeat(i + 1).into_bytes())
        .collect();
    for data in &blobs {
        s.put(&digest(data), Bytes::from(data.clone()))
            .await
            .unwrap();
    }
    // An upload in progress holds bytes but is not a blob.
    let id = s.create_upload("repo").await.unwrap();
    s.append(&id, Some(0), body(&[b"half an upload"]))
        .await
        .unwrap();
    let mut want: Vec<(Digest, u64)> = blobs.iter().map(|d| (digest(d), d.len() as u64)).collect();
    want.sort_by_key(|a| a.0.to_string());
    let got = list((b.node)()).await;
    assert_eq!(
        got.iter()
            .map(|e| (e.digest.clone(), e.size))
            .collect::<Vec<_>>(),
        want
    );
    assert!(got.iter().all(|e| e.modified > before), "{got:?}");
    s.delete(&want[0].0).await.unwrap();
    let got = list(s.clone()).await;
    assert_eq!(got.len(), 4);
    assert!(got.iter().all(|e| e.digest != want[0].0));
    s.cancel(&id).await.unwrap();
}

// distribution-spec § Pushing a blob in chunks: chunks must arrive in order (416 for an
// out-of-order Content-Range); DESIGN.md invariant 1: a digest mismatch at completion
// makes nothing visible and leaves the session's bytes as they were.
async fn chunks_in_order_and_digest_mismatch_leaves_nothing_visible(b: Backend) {
    let s = &b.store;
    let id = s.create_upload("team/app").await.unwrap();
    let st = s.upload_status(&id).await.unwrap();
    assert_eq!((st.owner.as_str(), st.size), ("team/app", 0));
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
    match s.append(&id, Some(20), body(&[b"x"])).await {
        Err(StoreError::OutOfOrder {
            current: 9,
            got: 20,
        }) => {}
        other => panic!("chunk past the end accepted: {:?}", other.map(|_| ())),
    }
    assert_eq!(s.append(&id, None, body(&[b"ld"])).await.unwrap(), 11);
    assert_eq!(s.upload_status(&id).await.unwrap().size, 11);
    let wrong = digest(b"hello there");
    assert!(matches!(
        s.commit(&id, &wrong).await,
        Err(StoreError::DigestMismatch { .. })
    ));
    assert_eq!(s.stat(&wrong).await.unwrap(), None);
    assert_eq!(s.upload_status(&id).await.unwrap().size, 11);
    let right = digest(b"hello world");
    assert_eq!(s.stat(&right).await.unwrap(), None);
    assert_eq!(s.commit(&id, &right).await.unwrap(), 11);
    assert_eq!(
        read(s.open(&right).await.unwrap(), 0..11).await,
        b"hello world"
    );
    assert!(not_found(s.upload_status(&id).await));
    assert!(not_found(s.append(&id, None, body(&[b"x"])).await));
    assert!(not_found(s.upload_status("../../etc").await));
}

// BlobStore::commit: "atomic and idempotent: committing content that is already stored
// succeeds and leaves one copy" — also when the same content was uploaded twice.
async fn commit_is_idempotent(b: Backend) {
    let s = &b.store;
    let data = b"layer bytes";
    let d = digest(data);
    let a = s.create_upload("r").await.unwrap();
    let c = s.create_upload("r").await.unwrap();
    s.append(&a, None, body(&[data])).await.unwrap();
    s.append(&c, None, body(&[data])).await.unwrap();
    assert_eq!(s.commit(&a, &d).await.unwrap(), 11);
    assert_eq!(s.commit(&c, &d).await.unwrap(), 11);
    assert!(
        not_found(s.commit(&a, &d).await),
        "a committed session is gone"
    );
    assert_eq!(s.stat(&d).await.unwrap(), Some(11));
    assert_eq!(read(s.open(&d).await.unwrap(), 0..11).await, data);
}

/// A body that signals when it is first polled, then waits for `go` before yielding.
fn gated_body(
    data: &'static [u8],
) -> (
    ByteStream,
    tokio::sync::oneshot::Receiver<()>,
    tokio::sync::oneshot::Sender<()>,
) {
    let (started_tx, started) = tokio::sync::oneshot::channel::<()>();
    let (go, go_rx) = tokio::sync::oneshot::channel::<()>();
    let s = futures::stream::once(async move {
        let _ = started_tx.send(());
        let _ = go_rx.await;
        Ok(Bytes::from_static(data))
    })
    .boxed();
    (s, started, go)
}

// BlobStore invariant: "concurrent requests against one session are refused rather than
// interleaved". Two appends at offset 0 (on two nodes where the backend allows several),
// the first held open mid-body while the second runs: exactly one is acknowledged, and
// the session holds exactly its bytes.
async fn concurrent_appends_at_one_offset_one_wins(b: Backend) {
    let s = b.store.clone();
    let id = s.create_upload("r").await.unwrap();
    let (first_body, started, go) = gated_body(b"first!");
    let (s1, id1) = (s.clone(), id.clone());
    let first = tokio::spawn(async move { s1.append(&id1, Some(0), first_body).await });
    started.await.unwrap();
    let other = if b.multi_node { (b.node)() } else { s.clone() };
    let second = other.append(&id, Some(0), body(&[b"second"])).await;
    go.send(()).unwrap();
    let first = first.await.unwrap();
    let refused = |r: &berth_store::Result<u64>| {
        matches!(
            r,
            Err(StoreError::UploadBusy(_)) | Err(StoreError::OutOfOrder { .. })
        )
    };
    let winner: &[u8] = match (&first, &second) {
        (Ok(6), r) if refused(r) => b"first!",
        (r, Ok(6)) if refused(r) => b"second",
        other => panic!("both or neither append acknowledged: {other:?}"),
    };
    assert_eq!(s.upload_status(&id).await.unwrap().size, 6);
    let d = digest(winner);
    assert_eq!(s.commit(&id, &d).await.unwrap(), 6);
    assert_eq!(read(s.open(&d).await.unwrap(), 0..6).await, winner);
}

// Issue 14: consecutive PATCH requests of one upload land on different nodes, which
// share only the store. Each node sees the others' chunks and continues from them.
async fn upload_resumes_on_another_node(b: Backend) {
    let (a, n2) = (b.store.clone(), (b.node)());
    let id = a.create_upload("team/app").await.unwrap();
    assert_eq!(a.append(&id, Some(0), body(&[b"abc"])).await.unwrap(), 3);
    let st = n2.upload_status(&id).await.unwrap();
    assert_eq!((st.size, st.owner.as_str()), (3, "team/app"));
    assert_eq!(n2.append(&id, Some(3), body(&[b"def"])).await.unwrap(), 6);
    assert!(matches!(
        a.append(&id, Some(3), body(&[b"zzz"])).await,
        Err(StoreError::OutOfOrder { current: 6, got: 3 })
    ));
    assert_eq!(a.append(&id, Some(6), body(&[b"ghi"])).await.unwrap(), 9);
    let n3 = (b.node)();
    let d = digest(b"abcdefghi");
    assert_eq!(n3.commit(&id, &d).await.unwrap(), 9);
    assert_eq!(read(a.open(&d).await.unwrap(), 0..9).await, b"abcdefghi");
    assert!(not_found(a.upload_status(&id).await));
}

// distribution-spec § Canceling an upload; expiry of idle sessions (the janitor).
async fn cancel_and_expire(b: Backend) {
    let s = &b.store;
    let id = s.create_upload("r").await.unwrap();
    s.append(&id, None, body(&[b"partial"])).await.unwrap();
    (b.node)().cancel(&id).await.unwrap();
    assert!(not_found(s.upload_status(&id).await));
    assert!(not_found(s.append(&id, None, body(&[b"x"])).await));
    assert!(not_found(s.cancel(&id).await));
    assert!(not_found(s.cancel("not-a-uuid").await));

    let idle = s.create_upload("r").await.unwrap();
    s.append(&idle, None, body(&[b"bytes"])).await.unwrap();
    assert_eq!(
        s.expire_uploads(Duration::from_secs(3600)).await.unwrap(),
        0
    );
    assert_eq!(s.upload_status(&idle).await.unwrap().size, 5);
    assert_eq!(s.expire_uploads(Duration::ZERO).await.unwrap(), 1);
    assert!(not_found(s.upload_status(&idle).await));
}

// ByteStream: "Errors abort the append; the bytes written before the error stay in the
// session (spec: the upload can be resumed)".
async fn body_error_keeps_acknowledged_bytes(b: Backend) {
    let s = &b.store;
    let id = s.create_upload("r").await.unwrap();
    let broken = futures::stream::iter(vec![
        Ok(Bytes::from_static(b"abc")),
        Err("client went away".to_string()),
    ])
    .boxed();
    assert!(matches!(
        s.append(&id, Some(0), broken).await,
        Err(StoreError::Body(_))
    ));
    let size = s.upload_status(&id).await.unwrap().size;
    assert_eq!(size, 3);
    assert_eq!(s.append(&id, Some(3), body(&[b"def"])).await.unwrap(), 6);
    let d = digest(b"abcdef");
    assert_eq!(s.commit(&id, &d).await.unwrap(), 6);
}

// The empty blob (sha256:e3b0…) is a valid blob (OCI image-spec descriptor.md: size 0).
async fn empty_blob(b: Backend) {
    let s = &b.store;
    let id = s.create_upload("r").await.unwrap();
    assert_eq!(s.append(&id, None, body(&[])).await.unwrap(), 0);
    let d = digest(b"");
    assert_eq!(s.commit(&id, &d).await.unwrap(), 0);
    assert_eq!(s.stat(&d).await.unwrap(), Some(0));
    assert!(read(s.open(&d).await.unwrap(), 0..0).await.is_empty());
}

/// Deterministic bytes of block `i` (1 MiB): xorshift, so no two blocks are equal.
fn block(i: u64) -> Bytes {
    let mut x = 0x9E37_79B9_7F4A_7C15u64 ^ (i + 1).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    let mut v = Vec::with_capacity(1 << 20);
    while v.len() < 1 << 20 {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        v.extend_from_slice(&x.to_le_bytes());
    }
    Bytes::from(v)
}

fn blocks(range: std::ops::Range<u64>) -> ByteStream {
    futures::stream::iter(range).map(|i| Ok(block(i))).boxed()
}

// DESIGN.md invariant 7 and issue 14: a 70 MiB blob in two chunks (40 MiB and 30 MiB,
// each a multipart upload on S3), committed through a multipart upload, read back whole
// and across a part boundary. Bodies are generated as they stream, never held whole.
async fn large_multipart_upload(b: Backend) {
    const BLOCKS: u64 = 70;
    let mut h = Sha256::new();
    (0..BLOCKS).for_each(|i| h.update(block(i)));
    let d: Digest = format!("sha256:{:x}", h.finalize()).parse().unwrap();
    let s = &b.store;
    let id = s.create_upload("r").await.unwrap();
    assert_eq!(
        s.append(&id, Some(0), blocks(0..40)).await.unwrap(),
        40 << 20
    );
    let other = (b.node)();
    assert_eq!(
        other
            .append(&id, Some(40 << 20), blocks(40..BLOCKS))
            .await
            .unwrap(),
        BLOCKS << 20
    );
    assert_eq!(other.commit(&id, &d).await.unwrap(), BLOCKS << 20);
    assert_eq!(s.stat(&d).await.unwrap(), Some(BLOCKS << 20));
    // Whole, hashed as it streams.
    let mut stream = s
        .open(&d)
        .await
        .unwrap()
        .read(0..BLOCKS << 20)
        .await
        .unwrap();
    let mut h = Sha256::new();
    let mut n = 0u64;
    while let Some(part) = stream.next().await {
        let part = part.unwrap();
        n += part.len() as u64;
        h.update(&part);
    }
    assert_eq!(n, BLOCKS << 20);
    assert_eq!(format!("sha256:{:x}", h.finalize()), d.to_string());
    // A range across the 8 MiB part boundary and the 40 MiB chunk boundary.
    let start = (40 << 20) - 10;
    let got = read(s.open(&d).await.unwrap(), start..start + 20).await;
    let mut want = block(39)[(1 << 20) - 10..].to_vec();
    want.extend_from_slice(&block(40)[..10]);
    assert_eq!(got, want);
}
