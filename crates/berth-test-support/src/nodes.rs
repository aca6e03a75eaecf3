//! Real `berth serve` processes for multi-node tests (issue 14): N nodes on the backends
//! a test names — `--metadata`, `--storage`, one shared `--master-key-file` — each on
//! 127.0.0.1 on a free port with a data directory of its own, killed when dropped.
//!
//! ```ignore
//! let opts = NodeOptions::new(env!("CARGO_BIN_EXE_berth"))
//!     .metadata(&pg_url)                 // postgres://… (every node)
//!     .storage("s3://bucket/prefix")     // shared bucket
//!     .env("AWS_ACCESS_KEY_ID", "…")
//!     .arg("--storage-s3-endpoint").arg(&seaweed_url);
//! let cluster = Cluster::start(3, &opts);
//! let url = cluster.next_url("/v2/");   // round-robin over the nodes
//! ```
//!
//! The first node starts alone and creates the master key in the cluster's shared
//! directory (the `--master-key-file` every node is given unless the options name
//! one), then the others start with that same key — the deployment README.md describes.
//! A node answers `GET /readyz` with 200 before [`Node::start`] returns.

use std::fs;
use std::io::Read as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

/// How to start a node: the binary, the backends, extra flags and environment.
#[derive(Debug, Clone)]
pub struct NodeOptions {
    binary: PathBuf,
    metadata: Option<String>,
    storage: Option<String>,
    master_key_file: Option<PathBuf>,
    args: Vec<String>,
    env: Vec<(String, String)>,
    ready_timeout: Duration,
}

impl NodeOptions {
    /// Options for the `berth` binary at `binary` (in an integration test of the `berth`
    /// crate: `env!("CARGO_BIN_EXE_berth")`), with the embedded backends in the node's
    /// own data directory, authentication on, and 30 s to become ready.
    pub fn new(binary: impl Into<PathBuf>) -> NodeOptions {
        NodeOptions {
            binary: binary.into(),
            metadata: None,
            storage: None,
            master_key_file: None,
            args: Vec::new(),
            env: Vec::new(),
            ready_timeout: Duration::from_secs(30),
        }
    }

    /// `--metadata URL` (`sqlite:///path` or `postgres://…`).
    pub fn metadata(mut self, url: &str) -> NodeOptions {
        self.metadata = Some(url.to_string());
        self
    }

    /// `--storage URL` (`file:///path` or `s3://bucket/prefix`).
    pub fn storage(mut self, url: &str) -> NodeOptions {
        self.storage = Some(url.to_string());
        self
    }

    /// `--master-key-file FILE` for every node. [default: a file in the cluster's shared
    /// directory, created by the first node]
    pub fn master_key_file(mut self, path: impl Into<PathBuf>) -> NodeOptions {
        self.master_key_file = Some(path.into());
        self
    }

    /// One more `berth serve` argument (e.g. `--allow-anonymous`).
    pub fn arg(mut self, a: impl Into<String>) -> NodeOptions {
        self.args.push(a.into());
        self
    }

    /// One more environment variable of the node process.
    pub fn env(mut self, key: &str, value: &str) -> NodeOptions {
        self.env.push((key.to_string(), value.to_string()));
        self
    }

    /// How long a node may take to answer `GET /readyz` with 200. [default: 30 s]
    pub fn ready_timeout(mut self, t: Duration) -> NodeOptions {
        self.ready_timeout = t;
        self
    }
}

/// One running `berth serve`. Dropping it kills the process (SIGKILL) and removes its
/// data directory.
pub struct Node {
    /// `127.0.0.1:<port>`: the node's address, and the registry host of image references.
    pub host: String,
    child: Child,
    log: PathBuf,
    dir: tempfile::TempDir,
    opts: NodeOptions,
    key: Option<PathBuf>,
    cmdline: String,
}

/// Spawns `berth serve` for `opts` on `host` with data in `dir/data`, output appended to
/// `log`; returns the child and its command line.
fn spawn(
    opts: &NodeOptions,
    key: Option<&Path>,
    host: &str,
    dir: &Path,
    log: &Path,
) -> Result<(Child, String), String> {
    let mut cmd = Command::new(&opts.binary);
    cmd.arg("serve")
        .arg("--listen")
        .arg(host)
        .arg("--data-dir")
        .arg(dir.join("data"))
        .env_remove("BERTH_CONFIG");
    if let Some(m) = &opts.metadata {
        cmd.arg("--metadata").arg(m);
    }
    if let Some(s) = &opts.storage {
        cmd.arg("--storage").arg(s);
    }
    if let Some(k) = key {
        cmd.arg("--master-key-file").arg(k);
    }
    cmd.args(&opts.args);
    for (k, v) in &opts.env {
        cmd.env(k, v);
    }
    // SIGKILL the node when the test process ends: Drop kills it in every normal case,
    // but a test binary that is itself killed runs no Drop.
    // SAFETY: prctl is async-signal-safe; nothing is allocated here.
    unsafe {
        use std::os::unix::process::CommandExt as _;
        cmd.pre_exec(|| {
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let logf = fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)
        .map_err(|e| format!("opening the log: {e}"))?;
    let errf = logf.try_clone().map_err(|e| e.to_string())?;
    cmd.stdin(Stdio::null()).stdout(logf).stderr(errf);
    let cmdline = format!("{cmd:?}");
    // From the process-long spawner thread: a node outlives the test that started it
    // (clusters are shared by the tests of a binary) and dies with the process.
    let child =
        crate::spawn_for_process(cmd).map_err(|e| format!("cannot start {cmdline}: {e}"))?;
    Ok((child, cmdline))
}

impl Node {
    /// Starts one node with `opts` (`master_key_file` overrides the options' file) and
    /// waits until `GET /readyz` answers 200. Retries on another port if the one it
    /// picked was taken meanwhile.
    ///
    /// Errors: the process exited or did not become ready in time; the message holds the
    /// command line and the end of its log.
    pub fn start(opts: &NodeOptions, master_key_file: Option<&Path>) -> Result<Node, String> {
        let key = master_key_file
            .map(Path::to_path_buf)
            .or_else(|| opts.master_key_file.clone());
        let mut last = String::new();
        for _attempt in 0..3 {
            let dir = tempfile::Builder::new()
                .prefix("berth-node-")
                .tempdir()
                .map_err(|e| format!("creating a data directory: {e}"))?;
            let host = format!("127.0.0.1:{}", crate::free_port());
            let log = dir.path().join("server.log");
            let (child, cmdline) = spawn(opts, key.as_deref(), &host, dir.path(), &log)?;
            let mut node = Node {
                host,
                child,
                log,
                dir,
                opts: opts.clone(),
                key: key.clone(),
                cmdline,
            };
            match node.wait_ready(opts.ready_timeout) {
                Ok(()) => return Ok(node),
                Err(why) => {
                    let exited = node.child.try_wait().ok().flatten().is_some();
                    last = format!("$ {}\n{why}\n{}", node.cmdline, node.log_tail());
                    // A node that exited (bad settings, a refused key) will not start on
                    // another port either.
                    if exited && !node.log_text().contains("binding 127.0.0.1") {
                        return Err(last);
                    }
                }
            }
        }
        Err(last)
    }

    /// Starts the node again — after [`Node::kill`], or killing it first — on the same
    /// address and data directory (a load balancer that knows it by address sends it
    /// requests again), and waits until it is ready. The new process's output is
    /// appended to the same log.
    ///
    /// Errors: as [`Node::start`] (the address may have been taken meanwhile: then the
    /// error says so).
    pub fn restart(&mut self) -> Result<(), String> {
        self.kill();
        let (child, cmdline) = spawn(
            &self.opts,
            self.key.as_deref(),
            &self.host,
            self.dir.path(),
            &self.log,
        )?;
        self.child = child;
        self.cmdline = cmdline;
        let timeout = self.opts.ready_timeout;
        self.wait_ready(timeout)
            .map_err(|why| format!("$ {}\n{why}\n{}", self.cmdline, self.log_tail()))
    }

    fn wait_ready(&mut self, timeout: Duration) -> Result<(), String> {
        let agent = ureq::AgentBuilder::new()
            .timeout(Duration::from_secs(2))
            .redirects(0)
            .build();
        let url = self.url("/readyz");
        let start = Instant::now();
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Err(format!("berth exited with {status} before it was ready"));
            }
            if let Ok(r) = agent.get(&url).call() {
                if r.status() == 200 {
                    return Ok(());
                }
            }
            if start.elapsed() > timeout {
                return Err(format!("GET {url} did not answer 200 within {timeout:?}"));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// `http://127.0.0.1:<port><path>`.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.host, path)
    }

    /// The node's data directory (its `admin-credentials` and, for the embedded
    /// backends, its blobs and database).
    pub fn data_dir(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    /// The process ID, e.g. to `kill -9` it mid-request.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Kills the process (SIGKILL) and waits for it; the data directory stays until the
    /// node is dropped.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    fn log_text(&self) -> String {
        let mut s = String::new();
        if let Ok(mut f) = fs::File::open(&self.log) {
            let _ = f.read_to_string(&mut s);
        }
        s
    }

    /// The end of the node's log, for failure messages.
    pub fn log_tail(&self) -> String {
        let s = self.log_text();
        let mut cut = s.len().saturating_sub(8000);
        while !s.is_char_boundary(cut) {
            cut += 1;
        }
        format!("--- berth node {} log ---\n{}", self.host, &s[cut..])
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        if std::thread::panicking() {
            // Captured by the harness and printed with the failing test's output.
            eprintln!("{}", self.log_tail());
        }
        self.kill();
    }
}

/// N nodes on the same backends and one master key, for round-robin clients.
pub struct Cluster {
    /// The nodes, in start order (node 0 created the master key and the administrator).
    pub nodes: Vec<Node>,
    next: AtomicUsize,
    key: PathBuf,
    // Declared last: removed after the nodes are killed.
    _shared: tempfile::TempDir,
}

impl Cluster {
    /// Starts `n` (≥ 1) nodes with `opts`: node 0 alone first (it creates the master key
    /// and, on a fresh database, the administrator), then the rest. Panics (failing the
    /// test) with the node's log if one does not start.
    pub fn start(n: usize, opts: &NodeOptions) -> Cluster {
        assert!(n >= 1, "a cluster has at least one node");
        let shared = tempfile::Builder::new()
            .prefix("berth-cluster-")
            .tempdir()
            .expect("creating the cluster's shared directory");
        let key = opts
            .master_key_file
            .clone()
            .unwrap_or_else(|| shared.path().join("master.key"));
        let mut nodes = Vec::with_capacity(n);
        for i in 0..n {
            let node = Node::start(opts, Some(&key))
                .unwrap_or_else(|e| panic!("node {i} of {n} did not start:\n{e}"));
            nodes.push(node);
        }
        Cluster {
            nodes,
            next: AtomicUsize::new(0),
            key,
            _shared: shared,
        }
    }

    /// The master key file every node was given.
    pub fn master_key_file(&self) -> &Path {
        &self.key
    }

    /// The administrator's credentials file (AWS shared-credentials format) that node 0
    /// wrote when it created the administrator on a fresh database.
    pub fn admin_credentials(&self) -> PathBuf {
        self.nodes[0].data_dir().join("admin-credentials")
    }

    /// `path` on the next node in turn (round-robin), so consecutive requests land on
    /// different nodes.
    pub fn next_url(&self, path: &str) -> String {
        let i = self.next.fetch_add(1, Ordering::Relaxed) % self.nodes.len();
        self.nodes[i].url(path)
    }
}
