//! Harness for the real-client integration tests in `tests/clients.rs`.
//!
//! * [`Registry::start`] runs the server under test on a free 127.0.0.1 port with a
//!   fresh data directory and stops it on drop (also when the test panics). By default
//!   that is `berth serve`; `BERTH_TEST_TARGET=distribution` runs CNCF distribution 2.8
//!   (`/usr/bin/docker-registry`) instead, so the tests themselves can be checked
//!   against a known implementation.
//! * [`docker`] is one `dockerd` per test binary, started lazily, with its state in a
//!   short `/tmp` directory; a small watchdog stops it and removes that directory when
//!   the test process exits, however it exits. `DOCKER_HOST` is set per command only.
//! * [`Containers`] gives podman and buildah their own vfs storage in a temp dir.
//! * [`require`] skips (outside CI) or fails (in CI) a test whose client is missing.
//! * [`run`] / [`run_unchecked`] run a command with a timeout and show its output when
//!   it fails.
//!
//! See `/work/shared/TESTING.md` (the project's `shared/TESTING.md`) for the flags used.
#![allow(dead_code)]

pub mod balancer;

use std::fmt::Write as _;
use std::fs;
use std::io::{Read, Seek, SeekFrom};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, ExitStatus, Stdio};
use std::sync::{Mutex, OnceLock};
use std::thread;
use std::time::{Duration, Instant};

// Not every test binary that includes this module hashes.
#[allow(unused_imports)]
pub use berth_test_support::{free_port, in_ci, loud, sha256 as sha256_digest};
use serde_json::Value;

/// Environment variable choosing the server under test: `berth` (default) or
/// `distribution`.
pub const TARGET_ENV: &str = "BERTH_TEST_TARGET";

/// Timeout for a quick client command (inspect, delete, manifest create).
pub const SHORT: Duration = Duration::from_secs(60);
/// Timeout for a command that moves images (build, push, pull, copy).
pub const LONG: Duration = Duration::from_secs(240);

// ---------------------------------------------------------------------------------
// Messages that must be seen even when the test harness captures output.
// ---------------------------------------------------------------------------------

/// A note that part of a test does not apply to the current target.
pub fn note(test: &str, msg: &str) {
    loud(&format!("NOTE {test}: {msg}"));
}

// ---------------------------------------------------------------------------------
// Which server, and which clients are installed.
// ---------------------------------------------------------------------------------

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Target {
    /// `berth serve` (this crate's binary).
    Berth,
    /// CNCF distribution 2.8, the Debian `docker-registry` package.
    Distribution,
}

impl Target {
    pub fn from_env() -> Target {
        match std::env::var(TARGET_ENV).as_deref() {
            Err(_) | Ok("") | Ok("berth") => Target::Berth,
            Ok("distribution") => Target::Distribution,
            Ok(other) => {
                panic!("{TARGET_ENV}={other:?}: expected \"berth\" or \"distribution\"")
            }
        }
    }
}

/// The Python of the venv that has the `oras` SDK (TESTING.md, `.ci/install-clients`).
/// `BERTH_TEST_PYTHON` overrides it.
pub fn oras_python() -> PathBuf {
    if let Ok(p) = std::env::var("BERTH_TEST_PYTHON") {
        return PathBuf::from(p);
    }
    workspace_root().join(".venv-clients/bin/python")
}

/// The AWS CLI's environment for tests: only `credentials` (a shared-credentials file,
/// e.g. a server's `admin-credentials`), region `us-east-1` unless `--region` says
/// otherwise, no config file, no retries (an error must not hide behind them), no pager.
pub fn aws_env(c: &mut Command, credentials: &Path) {
    c.env("AWS_SHARED_CREDENTIALS_FILE", credentials)
        .env("AWS_CONFIG_FILE", "/dev/null")
        .env("AWS_DEFAULT_REGION", "us-east-1")
        .env("AWS_MAX_ATTEMPTS", "1")
        .env("AWS_PAGER", "")
        .env_remove("AWS_ACCESS_KEY_ID")
        .env_remove("AWS_SECRET_ACCESS_KEY")
        .env_remove("AWS_SESSION_TOKEN")
        .env_remove("AWS_PROFILE");
}

/// The AWS CLI of the clients venv; `BERTH_TEST_AWS` overrides it.
pub fn aws_cli() -> PathBuf {
    if let Ok(p) = std::env::var("BERTH_TEST_AWS") {
        return PathBuf::from(p);
    }
    workspace_root().join(".venv-clients/bin/aws")
}

pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .expect("workspace root")
}

pub fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}

/// The statically linked busybox (Debian `busybox-static`) copied into test images.
pub const BUSYBOX: &str = "/bin/busybox";

fn on_path(bin: &str) -> bool {
    let Some(path) = std::env::var_os("PATH") else {
        return false;
    };
    std::env::split_paths(&path).any(|dir| is_executable(&dir.join(bin)))
}

fn is_executable(p: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    fs::metadata(p)
        .map(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        .unwrap_or(false)
}

/// Whether a client named as in the test briefs is usable here.
pub fn tool_available(tool: &str) -> bool {
    match tool {
        "docker" => on_path("docker") && on_path("dockerd"),
        "busybox-static" => is_executable(Path::new(BUSYBOX)),
        "oras" => {
            let py = oras_python();
            is_executable(&py)
                && Command::new(&py)
                    .args(["-c", "import oras.client, oras.oci"])
                    .stdin(Stdio::null())
                    .stdout(Stdio::null())
                    .stderr(Stdio::null())
                    .status()
                    .map(|s| s.success())
                    .unwrap_or(false)
        }
        "distribution" => is_executable(Path::new(DISTRIBUTION_BIN)),
        "nginx" => is_executable(&balancer::nginx_bin()),
        // The AWS CLI and boto3 of the clients venv (.ci/install-clients).
        "aws" => is_executable(&aws_cli()),
        "boto3" => {
            let py = oras_python();
            is_executable(&py)
                && Command::new(&py)
                    .args(["-c", "import boto3"])
                    .stdin(Stdio::null())
                    .stdout(Stdio::null())
                    .stderr(Stdio::null())
                    .status()
                    .map(|s| s.success())
                    .unwrap_or(false)
        }
        "cargo-fuzz" => Command::new("cargo")
            .args(["fuzz", "--version"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .map(|s| s.success())
            .unwrap_or(false),
        other => on_path(other),
    }
}

/// Checks that every tool the test needs (plus the target server, when that is an
/// external program) is installed. If one is missing: in CI (`CI=true`) the test
/// fails with a clear message; elsewhere this prints `SKIPPED <test>: <tool> not
/// installed` to stderr and returns `false`, and the test returns early.
#[must_use]
pub fn require(test: &str, tools: &[&str]) -> bool {
    let mut wanted: Vec<&str> = tools.to_vec();
    if Target::from_env() == Target::Distribution {
        wanted.push("distribution");
    }
    let missing: Vec<&str> = wanted.into_iter().filter(|t| !tool_available(t)).collect();
    if missing.is_empty() {
        return true;
    }
    let what = missing.join(", ");
    if in_ci() {
        panic!(
            "{test}: required client(s) not installed: {what}. CI must install them \
             (.ci/install-clients; see shared/TESTING.md)"
        );
    }
    loud(&format!(
        "\n************************************************************\n\
         SKIPPED {test}: {what} not installed\n\
         ************************************************************"
    ));
    false
}

// ---------------------------------------------------------------------------------
// Running commands.
// ---------------------------------------------------------------------------------

pub struct Output {
    pub cmd: String,
    pub status: ExitStatus,
    pub stdout: String,
    pub stderr: String,
    pub elapsed: Duration,
}

impl Output {
    pub fn success(&self) -> bool {
        self.status.success()
    }

    /// The command, its exit status and (the ends of) both output streams.
    pub fn describe(&self) -> String {
        format!(
            "$ {}\nexit: {} after {:.1?}\n--- stdout ---\n{}\n--- stderr ---\n{}",
            self.cmd,
            self.status,
            self.elapsed,
            tail(&self.stdout, 6000),
            tail(&self.stderr, 6000)
        )
    }
}

fn tail(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut start = s.len() - max;
    while !s.is_char_boundary(start) {
        start += 1;
    }
    &s[start..]
}

fn describe_cmd(cmd: &Command) -> String {
    let mut s = String::new();
    for (k, v) in cmd.get_envs() {
        if let Some(v) = v {
            let _ = write!(s, "{}={} ", k.to_string_lossy(), v.to_string_lossy());
        }
    }
    let _ = write!(s, "{}", cmd.get_program().to_string_lossy());
    for a in cmd.get_args() {
        let a = a.to_string_lossy();
        if a.contains(' ') || a.is_empty() {
            let _ = write!(s, " '{a}'");
        } else {
            let _ = write!(s, " {a}");
        }
    }
    s
}

/// Runs `cmd` to completion (stdin closed), killing it after `timeout`. Output goes
/// to anonymous temp files, so a grandchild that keeps a pipe open cannot hang us.
/// Panics only on a timeout or when the program cannot be started.
pub fn run_unchecked(cmd: &mut Command, timeout: Duration) -> Output {
    let desc = describe_cmd(cmd);
    let mut out = tempfile::tempfile().expect("temp file");
    let mut err = tempfile::tempfile().expect("temp file");
    cmd.stdin(Stdio::null())
        .stdout(out.try_clone().expect("dup"))
        .stderr(err.try_clone().expect("dup"));
    let start = Instant::now();
    let mut child = cmd
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start `{desc}`: {e}"));
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait") {
            break Some(status);
        }
        if start.elapsed() > timeout {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        thread::sleep(Duration::from_millis(20));
    };
    let read = |f: &mut fs::File| {
        let mut s = Vec::new();
        f.seek(SeekFrom::Start(0)).expect("seek");
        f.read_to_end(&mut s).expect("read");
        String::from_utf8_lossy(&s).into_owned()
    };
    let stdout = read(&mut out);
    let stderr = read(&mut err);
    let elapsed = start.elapsed();
    let Some(status) = status else {
        panic!(
            "TIMEOUT after {timeout:?}: $ {desc}\n--- stdout ---\n{}\n--- stderr ---\n{}",
            tail(&stdout, 6000),
            tail(&stderr, 6000)
        );
    };
    let o = Output {
        cmd: desc,
        status,
        stdout,
        stderr,
        elapsed,
    };
    // Captured by the test harness: shown only when the test fails.
    eprintln!("$ {}  [{} in {:.1?}]", o.cmd, o.status, o.elapsed);
    o
}

/// Like [`run_unchecked`], and panics (showing the output) unless the command succeeds.
pub fn run(cmd: &mut Command, timeout: Duration) -> Output {
    let o = run_unchecked(cmd, timeout);
    if !o.success() {
        panic!("command failed:\n{}", o.describe());
    }
    o
}

// ---------------------------------------------------------------------------------
// The server under test.
// ---------------------------------------------------------------------------------

pub const DISTRIBUTION_BIN: &str = "/usr/bin/docker-registry";

/// A running registry: `berth serve` or distribution, on 127.0.0.1:<free port>, with
/// its data in a temp dir. Dropping it kills the process.
/// Under `BERTH_TEST_BACKENDS=postgres-s3` ([`berth_test_support::Backends`]): the
/// `berth serve` flags and environment of a fresh PostgreSQL database and a fresh key
/// prefix of the shared SeaweedFS bucket, so the same client tests run on the scale-out
/// backends (issue 14). Keep one and apply it again to restart a server on the same data.
#[derive(Clone, Debug)]
pub struct ScaleOutBackends {
    args: Vec<String>,
}

impl ScaleOutBackends {
    /// Fresh backends under `BERTH_TEST_BACKENDS=postgres-s3`; `None` on the embedded
    /// default.
    pub fn from_env() -> Option<ScaleOutBackends> {
        use berth_test_support::{postgres::Postgres, seaweedfs, Backends};
        if Backends::from_env() != Backends::PostgresS3 {
            return None;
        }
        let pg = Postgres::shared("postgres-s3 backends").expect("PostgreSQL installed");
        let s3 = seaweedfs::shared().expect("weed (SeaweedFS) installed");
        Some(ScaleOutBackends {
            args: vec![
                "--metadata".into(),
                pg.database(),
                "--storage".into(),
                s3.url(&seaweedfs::unique_prefix("reg")),
                "--storage-s3-endpoint".into(),
                s3.endpoint.clone(),
            ],
        })
    }

    /// Adds the flags and the S3 credentials (environment) to `c`.
    pub fn apply(&self, c: &mut Command) {
        use berth_test_support::seaweedfs;
        c.args(&self.args)
            .env("AWS_ACCESS_KEY_ID", seaweedfs::ACCESS_KEY)
            .env("AWS_SECRET_ACCESS_KEY", seaweedfs::SECRET_KEY)
            .env("AWS_REGION", "us-east-1");
    }
}

/// [`ScaleOutBackends::from_env`] applied to `c`, for a server that is never restarted.
pub fn scale_out_backends(c: &mut Command) {
    if let Some(b) = ScaleOutBackends::from_env() {
        b.apply(c);
    }
}

pub struct Registry {
    pub target: Target,
    /// `127.0.0.1:<port>`: the registry host part of image references.
    pub host: String,
    child: Child,
    log: PathBuf,
    dir: tempfile::TempDir,
}

impl Registry {
    /// Starts the server chosen by `BERTH_TEST_TARGET` and waits until it is ready
    /// (`GET /readyz` for berth, `GET /v2/` for distribution), then checks that
    /// `GET /v2/` answers 200 (distribution-spec "Determining support").
    ///
    /// Berth runs with `--allow-anonymous`: these tests are about the OCI API, and the
    /// identity tests (auth.rs) start secured servers with [`Registry::start_secured`].
    pub fn start() -> Registry {
        Registry::start_with(&["--allow-anonymous"], true)
    }

    /// Starts berth with authentication on (no anonymous access) and `extra` arguments.
    /// `GET /v2/` then answers 401 to anonymous callers.
    pub fn start_secured(extra: &[&str]) -> Registry {
        Registry::start_with(extra, false)
    }

    /// Starts the server with extra `berth serve` arguments; `anonymous_ok` says whether
    /// an anonymous `GET /v2/` must answer 200 (else 401 is expected).
    pub fn start_with(extra: &[&str], anonymous_ok: bool) -> Registry {
        let target = Target::from_env();
        let mut last_failure = String::new();
        for _attempt in 0..4 {
            let dir = tempfile::Builder::new()
                .prefix("berth-test-reg")
                .tempdir()
                .expect("temp dir");
            let port = free_port();
            let host = format!("127.0.0.1:{port}");
            let log = dir.path().join("server.log");
            let data = dir.path().join("data");
            fs::create_dir_all(&data).expect("data dir");
            let mut cmd = match target {
                Target::Berth => {
                    let mut c = Command::new(env!("CARGO_BIN_EXE_berth"));
                    c.arg("serve")
                        .arg("--listen")
                        .arg(&host)
                        .arg("--data-dir")
                        .arg(&data)
                        .args(extra);
                    scale_out_backends(&mut c);
                    c
                }
                Target::Distribution => {
                    let config = dir.path().join("config.yml");
                    fs::write(
                        &config,
                        format!(
                            "version: 0.1\n\
                             log:\n  level: info\n  accesslog:\n    disabled: false\n\
                             storage:\n  filesystem:\n    rootdirectory: {}\n  \
                             delete:\n    enabled: true\n\
                             http:\n  addr: {host}\n",
                            data.display()
                        ),
                    )
                    .expect("write distribution config");
                    let mut c = Command::new(DISTRIBUTION_BIN);
                    c.arg("serve").arg(&config);
                    c
                }
            };
            // SIGKILL the server when the thread that started it ends: Drop kills it
            // first in every normal case, but a test binary that is itself killed
            // (SIGKILL, a CI timeout) runs no Drop and would leave it running.
            // SAFETY: prctl is async-signal-safe; nothing is allocated here.
            unsafe {
                cmd.pre_exec(|| {
                    if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) != 0 {
                        return Err(std::io::Error::last_os_error());
                    }
                    Ok(())
                });
            }
            let cmdline = describe_cmd(&cmd);
            let logf = fs::File::create(&log).expect("server log");
            cmd.stdin(Stdio::null())
                .stdout(logf.try_clone().expect("dup"))
                .stderr(logf);
            let child = cmd
                .spawn()
                .unwrap_or_else(|e| panic!("cannot start {target:?} ({cmd:?}): {e}"));
            let mut reg = Registry {
                target,
                host,
                child,
                log,
                dir,
            };
            match reg.wait_ready(Duration::from_secs(30)) {
                Ok(()) => {
                    let r = http("GET", &reg.url("/v2/"), &[], None);
                    let want = if anonymous_ok || target == Target::Distribution {
                        200
                    } else {
                        401
                    };
                    assert_eq!(
                        r.status,
                        want,
                        "GET /v2/ must answer 200 (distribution-spec: determining \
                         support); got {}\n{}",
                        r.describe(),
                        reg.log_tail()
                    );
                    return reg;
                }
                Err(why) => {
                    last_failure = format!("$ {cmdline}\n{why}\n{}", reg.log_tail());
                    // Dropping `reg` kills the process; try again on another port.
                }
            }
        }
        panic!("the {target:?} server did not start:\n{last_failure}");
    }

    fn wait_ready(&mut self, timeout: Duration) -> Result<(), String> {
        let path = match self.target {
            Target::Berth => "/readyz",
            Target::Distribution => "/v2/",
        };
        let url = self.url(path);
        let start = Instant::now();
        let agent = ureq::AgentBuilder::new()
            .timeout(Duration::from_secs(2))
            .redirects(0)
            .build();
        loop {
            if let Some(status) = self.child.try_wait().expect("wait") {
                return Err(format!(
                    "{:?} exited with {status} before it was ready",
                    self.target
                ));
            }
            if let Ok(resp) = agent.get(&url).call() {
                if resp.status() == 200 {
                    return Ok(());
                }
            }
            if start.elapsed() > timeout {
                return Err(format!("GET {url} did not answer 200 within {timeout:?}"));
            }
            thread::sleep(Duration::from_millis(50));
        }
    }

    /// `http://127.0.0.1:<port><path>`
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.host, path)
    }

    /// `127.0.0.1:<port>/<name>`: an image reference for clients.
    pub fn image(&self, name: &str) -> String {
        format!("{}/{}", self.host, name)
    }

    pub fn is_distribution(&self) -> bool {
        self.target == Target::Distribution
    }

    /// The end of the server's log, for failure messages.
    pub fn log_tail(&self) -> String {
        let s = fs::read_to_string(&self.log).unwrap_or_default();
        format!(
            "--- {:?} server log ({}) ---\n{}",
            self.target,
            self.log.display(),
            tail(&s, 8000)
        )
    }

    pub fn data_dir(&self) -> PathBuf {
        self.dir.path().join("data")
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        if thread::panicking() {
            // Captured by the harness and printed with the failing test's output.
            eprintln!("{}", self.log_tail());
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

// ---------------------------------------------------------------------------------
// HTTP (the distribution API itself), with ureq.
// ---------------------------------------------------------------------------------

pub struct Resp {
    pub method: String,
    pub url: String,
    pub status: u16,
    /// Header names lower-cased; repeated headers keep every value.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Resp {
    pub fn header(&self, name: &str) -> Option<&str> {
        let name = name.to_ascii_lowercase();
        self.headers
            .iter()
            .find(|(k, _)| *k == name)
            .map(|(_, v)| v.as_str())
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("response is not JSON ({e}):\n{}", self.describe()))
    }

    /// The `code`s of an OCI error body `{"errors":[{"code",...}]}`; empty when the
    /// body is not one.
    pub fn oci_error_codes(&self) -> Vec<String> {
        serde_json::from_slice::<Value>(&self.body)
            .ok()
            .and_then(|v| v.get("errors").and_then(|e| e.as_array()).cloned())
            .unwrap_or_default()
            .iter()
            .filter_map(|e| e.get("code").and_then(|c| c.as_str()).map(str::to_owned))
            .collect()
    }

    /// Request line, status, headers and (the start of) the body.
    pub fn describe(&self) -> String {
        let mut s = format!("{} {}\n-> {}\n", self.method, self.url, self.status);
        for (k, v) in &self.headers {
            let _ = writeln!(s, "{k}: {v}");
        }
        let body = self.text();
        let shown: String = body.chars().take(3000).collect();
        let _ = write!(s, "\n{shown}");
        s
    }
}

fn agent() -> &'static ureq::Agent {
    static AGENT: OnceLock<ureq::Agent> = OnceLock::new();
    AGENT.get_or_init(|| {
        ureq::AgentBuilder::new()
            .timeout(Duration::from_secs(60))
            .redirects(0)
            .build()
    })
}

/// One HTTP request. Never panics on an HTTP error status (the tests check those);
/// panics on a transport error.
pub fn http(method: &str, url: &str, headers: &[(&str, &str)], body: Option<&[u8]>) -> Resp {
    let mut req = agent().request(method, url);
    for (k, v) in headers {
        req = req.set(k, v);
    }
    let result = match body {
        Some(b) => req.send_bytes(b),
        None => req.call(),
    };
    let resp = match result {
        Ok(r) => r,
        Err(ureq::Error::Status(_, r)) => r,
        Err(e) => panic!("{method} {url}: transport error: {e}"),
    };
    let status = resp.status();
    let mut hs = Vec::new();
    for name in resp.headers_names() {
        for v in resp.all(&name) {
            hs.push((name.to_ascii_lowercase(), v.to_string()));
        }
    }
    let mut data = Vec::new();
    if method != "HEAD" {
        resp.into_reader()
            .take(256 << 20)
            .read_to_end(&mut data)
            .unwrap_or_else(|e| panic!("{method} {url}: reading body: {e}"));
    }
    Resp {
        method: method.to_string(),
        url: url.to_string(),
        status,
        headers: hs,
        body: data,
    }
}

/// Every manifest media type the tests push, for `Accept`.
pub const MANIFEST_ACCEPT: &str = "application/vnd.oci.image.manifest.v1+json, \
    application/vnd.oci.image.index.v1+json, \
    application/vnd.docker.distribution.manifest.v2+json, \
    application/vnd.docker.distribution.manifest.list.v2+json";

/// `GET /v2/<name>/manifests/<reference>` accepting every manifest type.
pub fn get_manifest(reg: &Registry, name: &str, reference: &str) -> Resp {
    http(
        "GET",
        &reg.url(&format!("/v2/{name}/manifests/{reference}")),
        &[("Accept", MANIFEST_ACCEPT)],
        None,
    )
}

/// Resolves a `Location` (absolute, or relative to the registry) to a URL.
pub fn absolute(reg: &Registry, location: &str) -> String {
    if location.starts_with("http://") || location.starts_with("https://") {
        location.to_string()
    } else if location.starts_with('/') {
        reg.url(location)
    } else {
        reg.url(&format!("/{location}"))
    }
}

/// Parses the `rel="next"` target out of an RFC 8288 `Link` header value.
pub fn link_next(value: &str) -> Option<String> {
    for part in value.split(',') {
        let part = part.trim();
        let (Some(open), Some(close)) = (part.find('<'), part.find('>')) else {
            continue;
        };
        let params = &part[close + 1..];
        let is_next = params.split(';').any(|p| {
            let p = p.trim().replace(' ', "");
            p == "rel=\"next\"" || p == "rel=next"
        });
        if is_next {
            return Some(part[open + 1..close].to_string());
        }
    }
    None
}

// ---------------------------------------------------------------------------------
// dockerd: one per test binary.
// ---------------------------------------------------------------------------------

pub struct Docker {
    /// `unix:///tmp/berth-dkXXXXXX/docker.sock`
    pub host: String,
    config_dir: PathBuf,
    dir: PathBuf,
    /// The watchdog's stdin. The test process never writes to it; when the process
    /// exits the kernel closes it, and the watchdog stops dockerd and removes `dir`.
    _lifeline: Mutex<ChildStdin>,
    _watchdog: Mutex<Child>,
}

// Started as `sh -c WATCHDOG sh DIR dockerd ARGS...`.
const WATCHDOG: &str = r#"
dir=$1; shift
"$@" >"$dir/dockerd.log" 2>&1 </dev/null &
d=$!
echo "$d" >"$dir/dockerd.wpid"
# Blocks until the test process exits (EOF on stdin).
while read -r _line; do :; done
kill -TERM "$d" 2>/dev/null
i=0
while kill -0 "$d" 2>/dev/null && [ "$i" -lt 120 ]; do sleep 0.25; i=$((i+1)); done
if kill -0 "$d" 2>/dev/null; then
  kill -KILL "$d" 2>/dev/null
  sleep 0.5
  if [ -f "$dir/docker-exec/containerd/containerd.pid" ]; then
    kill -KILL "$(cat "$dir/docker-exec/containerd/containerd.pid")" 2>/dev/null
  fi
fi
grep -o " $dir/[^ ]*" /proc/mounts | sort -r | while read -r m; do umount -l "$m" 2>/dev/null; done
rm -rf "$dir"
"#;

static DOCKER: OnceLock<Result<Docker, String>> = OnceLock::new();

/// The shared dockerd, started on first use (flags exactly as in TESTING.md).
pub fn docker() -> &'static Docker {
    match DOCKER.get_or_init(start_dockerd) {
        Ok(d) => d,
        Err(e) => panic!("dockerd did not start:\n{e}"),
    }
}

fn start_dockerd() -> Result<Docker, String> {
    // Short, so the unix socket paths stay far below the 108-byte limit.
    let dir = tempfile::Builder::new()
        .prefix("berth-dk")
        .tempdir_in("/tmp")
        .map_err(|e| format!("temp dir: {e}"))?
        .keep();
    let config_dir = dir.join("config");
    fs::create_dir_all(&config_dir).map_err(|e| e.to_string())?;
    let sock = dir.join("docker.sock");
    let mut cmd = Command::new("sh");
    cmd.arg("-c")
        .arg(WATCHDOG)
        .arg("sh")
        .arg(&dir)
        .arg("dockerd")
        .args([
            "--iptables=false",
            "--ip6tables=false",
            "--bridge=none",
            "--storage-driver=vfs",
        ])
        .arg("--data-root")
        .arg(dir.join("docker"))
        .arg("--exec-root")
        .arg(dir.join("docker-exec"))
        .arg("--pidfile")
        .arg(dir.join("dockerd.pid"))
        .arg("-H")
        .arg(format!("unix://{}", sock.display()))
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        // Its own process group: a Ctrl-C of `cargo test` reaches the test process,
        // whose exit then stops dockerd through the lifeline.
        .process_group(0);
    let mut watchdog = cmd.spawn().map_err(|e| format!("spawn dockerd: {e}"))?;
    let lifeline = watchdog.stdin.take().expect("piped stdin");
    let d = Docker {
        host: format!("unix://{}", sock.display()),
        config_dir,
        dir: dir.clone(),
        _lifeline: Mutex::new(lifeline),
        _watchdog: Mutex::new(watchdog),
    };
    let start = Instant::now();
    loop {
        let o = run_unchecked(
            d.cmd().args(["version", "--format", "{{.Server.Version}}"]),
            Duration::from_secs(10),
        );
        if o.success() {
            return Ok(d);
        }
        if start.elapsed() > Duration::from_secs(60) {
            let log = fs::read_to_string(dir.join("dockerd.log")).unwrap_or_default();
            return Err(format!(
                "{}\n--- dockerd.log ---\n{}",
                o.describe(),
                tail(&log, 6000)
            ));
        }
        thread::sleep(Duration::from_millis(250));
    }
}

impl Docker {
    /// A `docker` command talking to this daemon (`DOCKER_HOST` and `DOCKER_CONFIG`
    /// set on the command only).
    pub fn cmd(&self) -> Command {
        let mut c = Command::new("docker");
        c.env("DOCKER_HOST", &self.host)
            .env("DOCKER_CONFIG", &self.config_dir);
        c
    }

    pub fn log_tail(&self) -> String {
        let s = fs::read_to_string(self.dir.join("dockerd.log")).unwrap_or_default();
        tail(&s, 6000).to_string()
    }

    /// `DOCKER_BUILDKIT=0 docker build` of a runnable image `FROM scratch` holding the
    /// static busybox at /bin/busybox and a file /etc/berth-test with `nonce` (so each
    /// test's layer is its own). Returns the image ID (`sha256:...`).
    pub fn build_busybox_image(&self, tag: &str, nonce: &str) -> String {
        let ctx = tempfile::tempdir().expect("temp dir");
        let rootfs = ctx.path().join("rootfs");
        fs::create_dir_all(rootfs.join("bin")).unwrap();
        fs::create_dir_all(rootfs.join("etc")).unwrap();
        fs::copy(BUSYBOX, rootfs.join("bin/busybox")).expect("copy busybox");
        fs::write(rootfs.join("etc/berth-test"), format!("{nonce}\n")).unwrap();
        fs::copy(fixture("busybox.Dockerfile"), ctx.path().join("Dockerfile"))
            .expect("Dockerfile fixture");
        run(
            self.cmd()
                .env("DOCKER_BUILDKIT", "0")
                .args(["build", "-q", "-t", tag])
                .arg(ctx.path()),
            LONG,
        );
        self.image_id(tag)
    }

    pub fn image_id(&self, reference: &str) -> String {
        run(
            self.cmd()
                .args(["image", "inspect", "--format", "{{.Id}}", reference]),
            SHORT,
        )
        .stdout
        .trim()
        .to_string()
    }

    /// `docker push`, returning the manifest digest it prints (`<tag>: digest: ...`).
    pub fn push(&self, reference: &str) -> String {
        let o = run(self.cmd().args(["push", reference]), LONG);
        digest_after(&o.stdout, "digest: ")
            .unwrap_or_else(|| panic!("no digest in docker push output:\n{}", o.describe()))
    }
}

/// The `sha256:<64 hex>` that follows `marker` in `text`.
pub fn digest_after(text: &str, marker: &str) -> Option<String> {
    let i = text.find(marker)? + marker.len();
    let d: String = text[i..]
        .chars()
        .take_while(|c| c.is_ascii_alphanumeric() || *c == ':')
        .collect();
    (d.starts_with("sha256:") && d.len() == 71).then_some(d)
}

// ---------------------------------------------------------------------------------
// podman, buildah, skopeo, umoci.
// ---------------------------------------------------------------------------------

/// podman and buildah sharing one vfs store in a temp dir.
pub struct Containers {
    dir: tempfile::TempDir,
}

impl Default for Containers {
    fn default() -> Self {
        Self::new()
    }
}

impl Containers {
    pub fn new() -> Containers {
        let dir = tempfile::Builder::new()
            .prefix("berth-test-ctr")
            .tempdir()
            .expect("temp dir");
        Containers { dir }
    }

    fn store_args(&self, c: &mut Command) {
        let d = self.dir.path();
        c.arg("--storage-driver")
            .arg("vfs")
            .arg("--root")
            .arg(d.join("root"))
            .arg("--runroot")
            .arg(d.join("run"));
    }

    pub fn podman(&self) -> Command {
        let mut c = Command::new("podman");
        self.store_args(&mut c);
        c.arg("--tmpdir")
            .arg(self.dir.path().join("tmp"))
            .arg("--events-backend")
            .arg("none");
        c
    }

    pub fn buildah(&self) -> Command {
        let mut c = Command::new("buildah");
        self.store_args(&mut c);
        c
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }
}

impl Drop for Containers {
    fn drop(&mut self) {
        // vfs layers are plain directories; nothing is mounted. Best effort anyway.
        let root = self.dir.path().to_string_lossy().into_owned();
        if let Ok(mounts) = fs::read_to_string("/proc/mounts") {
            for m in mounts.lines().filter_map(|l| l.split(' ').nth(1)) {
                if m.starts_with(&root) {
                    let _ = Command::new("umount").arg("-l").arg(m).status();
                }
            }
        }
    }
}

/// `skopeo --insecure-policy`: the tests check the registry, not signature policy.
pub fn skopeo() -> Command {
    let mut c = Command::new("skopeo");
    c.arg("--insecure-policy");
    c
}

/// Adds an image tagged `tag` to the OCI layout `layout` (created if missing) with
/// `umoci`: one layer holding `files` (path under / -> content), and a config for
/// `linux/<arch>`. Returns the manifest digest recorded in the layout's index.json.
pub fn umoci_image(layout: &Path, tag: &str, arch: &str, files: &[(&str, &[u8])]) -> String {
    if !layout.join("index.json").exists() {
        run(
            Command::new("umoci").args(["init", "--layout"]).arg(layout),
            SHORT,
        );
    }
    let image = format!("{}:{tag}", layout.display());
    run(
        Command::new("umoci").args(["new", "--image", &image]),
        SHORT,
    );
    let bundle = tempfile::tempdir().expect("temp dir");
    let b = bundle.path().join("b");
    run(
        Command::new("umoci")
            .args(["unpack", "--rootless", "--image", &image])
            .arg(&b),
        SHORT,
    );
    for (path, content) in files {
        let p = b.join("rootfs").join(path.trim_start_matches('/'));
        fs::create_dir_all(p.parent().unwrap()).unwrap();
        fs::write(&p, content).unwrap();
    }
    run(
        Command::new("umoci")
            .args(["repack", "--image", &image])
            .arg(&b),
        SHORT,
    );
    run(
        Command::new("umoci").args([
            "config",
            "--image",
            &image,
            "--architecture",
            arch,
            "--os",
            "linux",
        ]),
        SHORT,
    );
    layout_manifest_digest(layout, tag)
}

/// The digest index.json of an OCI layout records for `tag`.
pub fn layout_manifest_digest(layout: &Path, tag: &str) -> String {
    let index: Value =
        serde_json::from_slice(&fs::read(layout.join("index.json")).expect("index.json"))
            .expect("index.json is JSON");
    index["manifests"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|m| m["annotations"]["org.opencontainers.image.ref.name"] == tag)
        .filter_map(|m| m["digest"].as_str())
        .next_back()
        .unwrap_or_else(|| panic!("tag {tag} not in {}/index.json", layout.display()))
        .to_string()
}

/// The bytes of blob `digest` in an OCI layout.
pub fn layout_blob(layout: &Path, digest: &str) -> Vec<u8> {
    let hex = digest.strip_prefix("sha256:").expect("sha256 digest");
    fs::read(layout.join("blobs/sha256").join(hex))
        .unwrap_or_else(|e| panic!("blob {digest} in {}: {e}", layout.display()))
}

/// `skopeo copy` from an OCI layout to the registry; returns the pushed digest
/// (`--digestfile`).
pub fn skopeo_push_layout(layout: &Path, tag: &str, dest: &str) -> String {
    let df = tempfile::NamedTempFile::new().expect("temp file");
    run(
        skopeo()
            .args(["copy", "--dest-tls-verify=false", "--digestfile"])
            .arg(df.path())
            .arg(format!("oci:{}:{tag}", layout.display()))
            .arg(format!("docker://{dest}")),
        LONG,
    );
    fs::read_to_string(df.path())
        .expect("digest file")
        .trim()
        .to_string()
}

/// Parses a JSON document printed by a client, with the command in the panic message.
pub fn parse_json(o: &Output) -> Value {
    serde_json::from_str(&o.stdout)
        .unwrap_or_else(|e| panic!("output is not JSON ({e}):\n{}", o.describe()))
}

/// A name unique in this process, for repositories and nonces.
pub fn unique(prefix: &str) -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    let n = N.fetch_add(1, Ordering::Relaxed);
    let t = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    format!("{prefix}-{}-{n}-{t:x}", std::process::id())
}

/// Percent-encodes a query parameter value (everything but RFC 3986 unreserved
/// characters), so that e.g. the `+` of `application/vnd.x+json` is not read as a space.
pub fn query_escape(v: &str) -> String {
    let mut s = String::new();
    for b in v.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            s.push(b as char);
        } else {
            let _ = write!(s, "%{b:02X}");
        }
    }
    s
}

// ---------------------------------------------------------------------------------
// Helpers of the identity tests (auth.rs).
// ---------------------------------------------------------------------------------

impl Registry {
    /// The file the server's stdout and stderr go to (the whole log, not its tail).
    pub fn log_path(&self) -> PathBuf {
        self.log.clone()
    }
}

/// Runs `cmd` with its standard input read from the file `input` (for
/// `--password-stdin`): `run_unchecked` closes stdin, so the command runs under
/// `sh -c 'exec "$@" < FILE'`, keeping its program, arguments and environment.
pub fn with_stdin_from(cmd: &Command, input: &Path) -> Command {
    let mut sh = Command::new("sh");
    sh.arg("-c")
        .arg(r#"f=$1; shift; exec "$@" < "$f""#)
        .arg("sh")
        .arg(input)
        .arg(cmd.get_program())
        .args(cmd.get_args());
    for (k, v) in cmd.get_envs() {
        match v {
            Some(v) => sh.env(k, v),
            None => sh.env_remove(k),
        };
    }
    if let Some(dir) = cmd.get_current_dir() {
        sh.current_dir(dir);
    }
    sh
}

/// Points an AWS CLI or boto3 command at `reg` as its bootstrap administrator: only the
/// server's `admin-credentials` ([`aws_env`]).
pub fn aws_admin_env(reg: &Registry, c: &mut Command) {
    aws_env(c, &reg.data_dir().join("admin-credentials"));
}

/// The access key in a shared-credentials text (`[default]` with `aws_access_key_id` and
/// `aws_secret_access_key`, as `admin-credentials` and `berth admin key create` print it).
pub fn access_key(credentials: &str) -> (String, String) {
    let get = |k: &str| {
        credentials
            .lines()
            .find_map(|l| l.strip_prefix(k))
            .map(|v| v.trim_start_matches([' ', '=']).trim().to_string())
            .unwrap_or_else(|| panic!("{k} in {credentials}"))
    };
    (get("aws_access_key_id"), get("aws_secret_access_key"))
}

/// `Authorization: Basic` with an access key ID and secret (the OCI API accepts them).
pub fn basic_auth((id, secret): &(String, String)) -> String {
    use base64::Engine as _;
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("{id}:{secret}"))
    )
}
