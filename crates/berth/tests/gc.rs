//! Online garbage collection (issue 12, DESIGN.md invariant 5) through the real binary:
//! a `berth serve` process, pushes and pulls over the OCI Distribution API (spec.md
//! § Pushing blobs / § Pushing manifests / § Pulling / § Deleting manifests), and the
//! real `berth admin gc` command line, run while the server serves.
//!
//! - The failure class of CNCF distribution's collector cannot happen: multi-arch
//!   indexes with untagged children and a referrer (image-index.md, spec.md § Listing
//!   referrers) keep every child, config and layer through a collection.
//! - After an image is deleted, a collection with grace 0 removes its unshared blobs
//!   from storage and keeps the ones other images share; `--dry-run` says exactly that
//!   first, with the bytes, and changes nothing.
//! - Many pushes (shared and fresh layers) and deletes race collections (the server's
//!   scheduled `housekeeping.gc` every second plus `berth admin gc` in a loop, grace 0):
//!   every acknowledged image pulls byte for byte afterwards, and what was deleted is
//!   gone from storage. `BERTH_GC_RACE_PUSHES` sets the number of pushes (default 200;
//!   docs/benchmarks.md records a 1,000-push run).

mod common;

use common::*;
use sha2::{Digest as _, Sha256};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";

fn sha(data: &[u8]) -> String {
    format!("sha256:{:x}", Sha256::digest(data))
}

/// `blobs/sha256/<hh>/<hex>` under the server's data directory (FsStore's layout,
/// crates/berth-store/src/fs.rs; the data directory is the default storage root).
fn blob_file(data_dir: &Path, digest: &str) -> PathBuf {
    let hex = digest.strip_prefix("sha256:").unwrap();
    data_dir.join("blobs/sha256").join(&hex[..2]).join(hex)
}

/// Whether the blob's bytes are in storage.
fn stored(data_dir: &Path, digest: &str) -> bool {
    blob_file(data_dir, digest).exists()
}

/// Monolithic blob upload (spec.md § Single POST). Returns the HTTP status.
fn push_blob(base: &str, name: &str, data: &[u8]) -> u16 {
    let url = format!(
        "{base}/v2/{name}/blobs/uploads/?digest={}",
        query_escape(&sha(data))
    );
    http(
        "POST",
        &url,
        &[("Content-Type", "application/octet-stream")],
        Some(data),
    )
    .status
}

/// PUT a manifest (spec.md § Pushing manifests); returns the response.
fn put_manifest(base: &str, name: &str, reference: &str, media: &str, body: &[u8]) -> Resp {
    http(
        "PUT",
        &format!("{base}/v2/{name}/manifests/{reference}"),
        &[("Content-Type", media)],
        Some(body),
    )
}

/// An OCI image manifest over `config` and `layers`, optionally with a subject.
fn image_manifest(config: &[u8], layers: &[&[u8]], subject: Option<(&str, usize)>) -> Vec<u8> {
    let layers: Vec<String> = layers
        .iter()
        .map(|l| {
            format!(
                r#"{{"mediaType":"application/vnd.oci.image.layer.v1.tar","digest":"{}","size":{}}}"#,
                sha(l),
                l.len()
            )
        })
        .collect();
    let subject = subject
        .map(|(d, n)| {
            format!(r#","subject":{{"mediaType":"{OCI_INDEX}","digest":"{d}","size":{n}}}"#)
        })
        .unwrap_or_default();
    format!(
        r#"{{"schemaVersion":2,"mediaType":"{OCI_MANIFEST}","config":{{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"{}","size":{}}},"layers":[{}]{subject}}}"#,
        sha(config),
        config.len(),
        layers.join(",")
    )
    .into_bytes()
}

/// An image: config, layers, manifest.
struct Image {
    config: Vec<u8>,
    layers: Vec<Vec<u8>>,
    manifest: Vec<u8>,
}

impl Image {
    fn new(config: Vec<u8>, layers: Vec<Vec<u8>>) -> Image {
        let refs: Vec<&[u8]> = layers.iter().map(|l| l.as_slice()).collect();
        let manifest = image_manifest(&config, &refs, None);
        Image {
            config,
            layers,
            manifest,
        }
    }

    fn digest(&self) -> String {
        sha(&self.manifest)
    }

    fn blobs(&self) -> Vec<&[u8]> {
        std::iter::once(self.config.as_slice())
            .chain(self.layers.iter().map(|l| l.as_slice()))
            .collect()
    }

    /// Uploads the blobs and puts the manifest under `reference`; the manifest PUT's
    /// response (201 is the acknowledgement).
    fn push(&self, base: &str, name: &str, reference: &str) -> Resp {
        for b in self.blobs() {
            let s = push_blob(base, name, b);
            assert_eq!(s, 201, "blob upload in {name}");
        }
        put_manifest(base, name, reference, OCI_MANIFEST, &self.manifest)
    }

    /// Pulls the manifest by `reference` and every blob, byte for byte (spec.md
    /// § Pulling manifests, § Pulling blobs).
    fn assert_pulls(&self, base: &str, name: &str, reference: &str) {
        let m = http(
            "GET",
            &format!("{base}/v2/{name}/manifests/{reference}"),
            &[("Accept", MANIFEST_ACCEPT)],
            None,
        );
        assert_eq!(m.status, 200, "{name}:{reference}: {}", m.describe());
        assert_eq!(m.body, self.manifest, "{name}:{reference}: manifest bytes");
        for b in self.blobs() {
            let r = http(
                "GET",
                &format!("{base}/v2/{name}/blobs/{}", sha(b)),
                &[],
                None,
            );
            assert_eq!(r.status, 200, "{name}: blob {}: {}", sha(b), r.describe());
            assert_eq!(r.body, b, "{name}: blob {} bytes", sha(b));
        }
    }
}

fn rand_bytes(label: &str, n: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(n);
    let mut seed = Sha256::digest(format!("{label} {}", unique("b")).as_bytes()).to_vec();
    while out.len() < n {
        out.extend_from_slice(&seed);
        seed = Sha256::digest(&seed).to_vec();
    }
    out.truncate(n);
    out
}

/// `berth admin gc` against the server's data directory, while it serves.
fn admin_gc(reg: &Registry, args: &[&str]) -> String {
    let out = run(
        Command::new(env!("CARGO_BIN_EXE_berth"))
            .args(["admin", "--data-dir"])
            .arg(reg.data_dir())
            .arg("gc")
            .args(args),
        Duration::from_secs(120),
    );
    out.stdout
}

fn start(extra: &[&str]) -> Registry {
    let mut args = vec!["--allow-anonymous"];
    args.extend_from_slice(extra);
    Registry::start_with(&args, true)
}

// The distribution failure class: an index's children are untagged manifests and a
// referrer is reachable only through its subject; a collection (grace 0) must keep
// every one of them, with every config and layer, and sweep nothing.
#[test]
fn gc_keeps_index_children_and_referrers() {
    let reg = start(&["--gc-enabled", "false"]);
    let base = reg.url("");
    let name = "gc/multi";
    let shared = rand_bytes("shared base layer", 4096);
    let amd = Image::new(
        br#"{"architecture":"amd64","os":"linux"}"#.to_vec(),
        vec![shared.clone(), rand_bytes("amd64 layer", 3000)],
    );
    let arm = Image::new(
        br#"{"architecture":"arm64","os":"linux"}"#.to_vec(),
        vec![shared.clone(), rand_bytes("arm64 layer", 2000)],
    );
    // Children pushed by digest only (untagged), as skopeo/podman push an index.
    for i in [&amd, &arm] {
        let r = i.push(&base, name, &i.digest());
        assert_eq!(r.status, 201, "{}", r.describe());
    }
    let index = format!(
        r#"{{"schemaVersion":2,"mediaType":"{OCI_INDEX}","manifests":[{{"mediaType":"{OCI_MANIFEST}","digest":"{}","size":{},"platform":{{"architecture":"amd64","os":"linux"}}}},{{"mediaType":"{OCI_MANIFEST}","digest":"{}","size":{},"platform":{{"architecture":"arm64","os":"linux"}}}}]}}"#,
        amd.digest(),
        amd.manifest.len(),
        arm.digest(),
        arm.manifest.len()
    )
    .into_bytes();
    let r = put_manifest(&base, name, "v1", OCI_INDEX, &index);
    assert_eq!(r.status, 201, "{}", r.describe());
    // A signature-like referrer of the index (untagged, only reachable by subject).
    let sig_config = br#"{"signature":"demo"}"#.to_vec();
    let sig_layer = rand_bytes("signature payload", 500);
    let sig_manifest = image_manifest(
        &sig_config,
        &[&sig_layer],
        Some((&sha(&index), index.len())),
    );
    for b in [&sig_config, &sig_layer] {
        assert_eq!(push_blob(&base, name, b), 201);
    }
    let r = put_manifest(
        &base,
        name,
        &sha(&sig_manifest),
        OCI_MANIFEST,
        &sig_manifest,
    );
    assert_eq!(r.status, 201, "{}", r.describe());

    let dry = admin_gc(&reg, &["--dry-run", "--grace-secs", "0"]);
    assert!(
        dry.contains("0 objects would be swept") && dry.contains("0 bytes would be reclaimed"),
        "{dry}"
    );
    let out = admin_gc(&reg, &["--grace-secs", "0"]);
    assert!(out.contains("0 objects swept"), "{out}");
    assert!(out.contains("0 bytes reclaimed"), "{out}");

    let idx = get_manifest(&reg, name, "v1");
    assert_eq!(idx.status, 200);
    assert_eq!(idx.body, index);
    amd.assert_pulls(&base, name, &amd.digest());
    arm.assert_pulls(&base, name, &arm.digest());
    let sig = get_manifest(&reg, name, &sha(&sig_manifest));
    assert_eq!(sig.body, sig_manifest);
    for b in [&sig_config, &sig_layer] {
        let r = http(
            "GET",
            &format!("{base}/v2/{name}/blobs/{}", sha(b)),
            &[],
            None,
        );
        assert_eq!((r.status, &r.body), (200, b));
    }
    let referrers = http(
        "GET",
        &format!("{base}/v2/{name}/referrers/{}", sha(&index)),
        &[],
        None,
    );
    assert!(
        referrers.text().contains(&sha(&sig_manifest)),
        "{}",
        referrers.text()
    );
}

// ECR/OCI deletion then collection: after `DELETE /v2/<name>/manifests/<digest>` the
// image's unshared blobs stay (and still count) until a collection with grace 0 sweeps
// them from storage; the layer another image shares stays; a dry run lists exactly the
// unshared blobs with their bytes first and deletes nothing.
#[test]
fn gc_sweeps_unshared_blobs_of_deleted_images() {
    let reg = start(&["--gc-enabled", "false"]);
    let base = reg.url("");
    let name = "gc/deleted";
    let shared = rand_bytes("shared", 5000);
    let a = Image::new(
        br#"{"image":"a"}"#.to_vec(),
        vec![shared.clone(), rand_bytes("only a", 7000)],
    );
    let b = Image::new(
        br#"{"image":"b"}"#.to_vec(),
        vec![shared.clone(), rand_bytes("only b", 6000)],
    );
    assert_eq!(a.push(&base, name, "a").status, 201);
    assert_eq!(b.push(&base, name, "b").status, 201);
    let data = reg.data_dir();
    for blob in a.blobs().into_iter().chain(b.blobs()) {
        assert!(
            stored(&data, &sha(blob)),
            "pushed blob {} is stored",
            sha(blob)
        );
    }
    // A collection with the default grace (1 h) sweeps nothing just pushed or deleted.
    let r = http(
        "DELETE",
        &format!("{base}/v2/{name}/manifests/{}", a.digest()),
        &[],
        None,
    );
    assert_eq!(r.status, 202, "{}", r.describe());
    let out = admin_gc(&reg, &[]);
    assert!(out.contains("0 objects swept"), "{out}");

    let gone: Vec<&[u8]> = vec![&a.config, &a.layers[1]];
    let gone_bytes: usize = gone.iter().map(|g| g.len()).sum();
    let dry = admin_gc(&reg, &["--dry-run", "--grace-secs", "0"]);
    for g in &gone {
        assert!(
            dry.contains(&format!(
                "would sweep {} {} bytes (unreferenced)",
                sha(g),
                g.len()
            )),
            "{dry}"
        );
    }
    assert!(!dry.contains(&sha(&shared)), "{dry}");
    assert!(
        dry.contains(&format!(
            "2 objects would be swept (2 unreferenced blobs, 0 stray), {gone_bytes} bytes"
        )),
        "{dry}"
    );
    for g in &gone {
        assert!(stored(&data, &sha(g)), "a dry run deleted nothing");
    }
    let out = admin_gc(&reg, &["--grace-secs", "0"]);
    assert!(
        out.contains(&format!("2 objects swept (2 unreferenced blobs, 0 stray, 0 resumed), {gone_bytes} bytes reclaimed")),
        "{out}"
    );
    for g in &gone {
        assert!(!stored(&data, &sha(g)), "{} left storage", sha(g));
        let r = http(
            "GET",
            &format!("{base}/v2/{name}/blobs/{}", sha(g)),
            &[],
            None,
        );
        assert_eq!(r.status, 404, "{}", r.describe());
        assert_eq!(r.oci_error_codes(), vec!["BLOB_UNKNOWN".to_string()]);
    }
    assert!(stored(&data, &sha(&shared)), "the shared layer stays");
    b.assert_pulls(&base, name, "b");
    // Pushing the deleted image again works (its blobs are uploaded anew).
    assert_eq!(a.push(&base, name, "a").status, 201);
    a.assert_pulls(&base, name, "a");
    // Stray bytes (a blob file no metadata names) are swept too.
    let stray = rand_bytes("stray", 1234);
    let path = blob_file(&data, &sha(&stray));
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(&path, &stray).unwrap();
    let out = admin_gc(&reg, &["--grace-secs", "0"]);
    assert!(
        out.contains(&format!("swept {} 1234 bytes (stray)", sha(&stray))),
        "{out}"
    );
    assert!(!path.exists());
    a.assert_pulls(&base, name, "a");
}

// DESIGN.md invariant 5 under load: pushes with shared and fresh layers, some deleted
// again, race the server's scheduled collection (every second) and `berth admin gc` in
// a loop, all with grace 0. A push whose manifest PUT finds a layer swept between its
// upload and the PUT is refused (MANIFEST_BLOB_UNKNOWN, nothing stored) and retried, as
// a client would; every acknowledged image pulls byte for byte at the end, and the
// deleted images' fresh layers are gone from storage.
#[test]
fn gc_racing_pushes_never_loses_an_acknowledged_image() {
    let reg = start(&[
        "--gc-grace-secs",
        "0",
        "--gc-period-secs",
        "1",
        "--upload-expiry-secs",
        "4",
    ]);
    let data = reg.data_dir();
    race(
        &[reg.url("")],
        &|| admin_gc(&reg, &["--grace-secs", "0"]),
        &|d| stored(&data, d),
    );
}

// The same race on the scale-out backends (issue 14): two `berth serve` nodes sharing one
// PostgreSQL database and one SeaweedFS bucket, each collecting every second, pushes and
// pulls round-robin over both, and `berth admin gc` as a third process on the same
// stores. Claims and pins are rows, so three collectors and two push paths agree.
#[test]
fn gc_racing_pushes_on_two_nodes_postgres_and_s3() {
    use berth_test_support::nodes::{Cluster, NodeOptions};
    use berth_test_support::{postgres::Postgres, seaweedfs};
    let Some(pg) = Postgres::shared("gc_racing_pushes_on_two_nodes_postgres_and_s3") else {
        return;
    };
    let Some(s3) = seaweedfs::shared() else {
        return;
    };
    let metadata = pg.database();
    let storage = s3.url(&seaweedfs::unique_prefix("gc-race"));
    let opts = NodeOptions::new(env!("CARGO_BIN_EXE_berth"))
        .metadata(&metadata)
        .storage(&storage)
        .arg("--storage-s3-endpoint")
        .arg(s3.endpoint.clone())
        .arg("--allow-anonymous")
        .arg("--gc-grace-secs")
        .arg("0")
        .arg("--gc-period-secs")
        .arg("1")
        .arg("--upload-expiry-secs")
        .arg("4")
        .env("AWS_ACCESS_KEY_ID", seaweedfs::ACCESS_KEY)
        .env("AWS_SECRET_ACCESS_KEY", seaweedfs::SECRET_KEY)
        .env("AWS_ALLOW_HTTP", "true");
    let cluster = Cluster::start(2, &opts);
    let bases: Vec<String> = cluster.nodes.iter().map(|n| n.url("")).collect();
    let admin = || {
        run(
            Command::new(env!("CARGO_BIN_EXE_berth"))
                .args(["admin", "--metadata", &metadata, "gc", "--grace-secs", "0"])
                .args(["--storage", &storage, "--storage-s3-endpoint", &s3.endpoint])
                .env("AWS_ACCESS_KEY_ID", seaweedfs::ACCESS_KEY)
                .env("AWS_SECRET_ACCESS_KEY", seaweedfs::SECRET_KEY)
                .env("AWS_ALLOW_HTTP", "true")
                .env("BERTH_MASTER_KEY_FILE", cluster.master_key_file()),
            Duration::from_secs(120),
        )
        .stdout
    };
    let rt = tokio::runtime::Runtime::new().unwrap();
    let store = rt.block_on(async { s3.store(storage.trim_start_matches("s3://berth/")) });
    let stored = |d: &str| {
        let d: berth_core::Digest = d.parse().unwrap();
        rt.block_on(berth_store::BlobStore::stat(&store, &d))
            .unwrap()
            .is_some()
    };
    race(&bases, &admin, &stored);
}

/// The race of the two tests above over the registry nodes at `bases` (pushes, deletes
/// and pulls round-robin), `admin` running one `berth admin gc --grace-secs 0`, and
/// `stored` saying whether a digest's bytes are in storage.
fn race(bases: &[String], admin: &(dyn Fn() -> String + Sync), stored: &dyn Fn(&str) -> bool) {
    let pushes: usize = std::env::var("BERTH_GC_RACE_PUSHES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(200);
    let shared: Vec<Vec<u8>> = (0..3)
        .map(|i| rand_bytes(&format!("base {i}"), 3000))
        .collect();
    let done = std::sync::atomic::AtomicBool::new(false);
    let workers = 4;
    let (acked, deleted, retries, abandoned, gc_runs) = std::thread::scope(|s| {
        let gc = s.spawn(|| {
            let mut runs = 0;
            while !done.load(std::sync::atomic::Ordering::Relaxed) {
                let out = admin();
                assert!(out.contains("objects swept"), "{out}");
                runs += 1;
                // A short pause: collections still overlap every phase of the pushes
                // (hundreds of runs, plus the nodes' own each second), but a push on
                // slower storage (S3) gets a chance between two of them. Back to back,
                // a busy machine starved most pushes of the two-node run (grace 0 is a
                // liveness limit, which is what the grace window is for).
                std::thread::sleep(Duration::from_millis(50));
            }
            runs
        });
        let handles: Vec<_> = (0..workers)
            .map(|w| {
                let shared = &shared;
                s.spawn(move || {
                    let mut acked = Vec::new();
                    let mut deleted = Vec::new();
                    let mut retries = 0;
                    let mut abandoned = 0;
                    for k in (w..pushes).step_by(workers) {
                        let base = &bases[k % bases.len()];
                        let name = format!("race/r{}", k % 5);
                        let image = Image::new(
                            format!("{{\"push\":{k}}}").into_bytes(),
                            vec![
                                shared[k % 3].clone(),
                                rand_bytes(&format!("fresh {k}"), 2000),
                            ],
                        );
                        let tag = format!("t{k}");
                        let mut ok = false;
                        for _attempt in 0..20 {
                            let r = image.push(base, &name, &tag);
                            if r.status == 201 {
                                ok = true;
                                break;
                            }
                            assert_eq!(
                                r.oci_error_codes(),
                                vec!["MANIFEST_BLOB_UNKNOWN".to_string()],
                                "{}",
                                r.describe()
                            );
                            retries += 1;
                        }
                        if !ok {
                            // Never acknowledged, so nothing is owed; with grace 0 and
                            // collectors back to back a slow push can lose the race
                            // every time (a real grace window exists to prevent that).
                            abandoned += 1;
                            continue;
                        }
                        if k % 4 == 0 {
                            let r = http(
                                "DELETE",
                                &format!("{base}/v2/{name}/manifests/{}", image.digest()),
                                &[],
                                None,
                            );
                            assert_eq!(r.status, 202, "{}", r.describe());
                            deleted.push(image);
                        } else {
                            acked.push((name, tag, image));
                        }
                    }
                    (acked, deleted, retries, abandoned)
                })
            })
            .collect();
        let mut all = (Vec::new(), Vec::new(), 0, 0);
        for h in handles {
            let (a, d, r, n) = h.join().unwrap();
            all.0.extend(a);
            all.1.extend(d);
            all.2 += r;
            all.3 += n;
        }
        done.store(true, std::sync::atomic::Ordering::Relaxed);
        let runs = gc.join().unwrap();
        (all.0, all.1, all.2, all.3, runs)
    });
    // One last collection after everything settled: the deleted images' garbage goes.
    let out = admin();
    eprintln!(
        "{pushes} pushes on {} node(s): {} kept, {} deleted, {retries} retried after a sweep, {abandoned} given up after 20 tries, {gc_runs} admin collections; last: {}",
        bases.len(),
        acked.len(),
        deleted.len(),
        out.lines().last().unwrap_or_default()
    );
    // Not vacuous: most pushes went through despite grace 0.
    assert!(
        abandoned * 4 <= pushes,
        "{abandoned} of {pushes} pushes never went through"
    );
    for (i, (name, tag, image)) in acked.iter().enumerate() {
        // Pulled from another node than the one that took the push, when there are two.
        image.assert_pulls(&bases[(i + 1) % bases.len()], name, tag);
    }
    for image in &deleted {
        assert!(
            !stored(&sha(&image.layers[1])),
            "a deleted image's fresh layer was collected"
        );
    }
    for s in &shared {
        assert!(stored(&sha(s)), "shared layers stay");
    }
    // The nodes' scheduled collections ran and reported on /metrics (each node's own).
    for base in bases {
        let mut metrics = String::new();
        for _ in 0..200 {
            metrics = http("GET", &format!("{base}/metrics"), &[], None).text();
            if metrics.contains("berth_gc_runs_total") {
                break;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        for m in [
            "berth_gc_runs_total",
            "berth_gc_bytes_reclaimed_total",
            "berth_gc_objects_swept_total",
            "berth_gc_last_run_duration_seconds",
        ] {
            assert!(metrics.contains(m), "{m} on {base}/metrics:\n{metrics}");
        }
    }
}
