//! A real HTTP load balancer in front of several `berth serve` nodes: nginx (Debian's
//! `nginx-light`, from `.ci/install-clients`), round-robin **per request** over one
//! keep-alive pool, so consecutive requests of one client — even on one connection —
//! land on different nodes, as behind any production load balancer. Bodies stream
//! through unbuffered in both directions (`proxy_request_buffering off`,
//! `proxy_buffering off`), and each request's upstream is written to an access log so a
//! test can prove where its requests went ([`Balancer::requests`]).

use std::fs;
use std::os::unix::process::CommandExt as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The nginx binary (Debian installs it under /usr/sbin, not always on a user's PATH).
pub fn nginx_bin() -> PathBuf {
    ["/usr/sbin/nginx", "/usr/local/sbin/nginx"]
        .iter()
        .map(PathBuf::from)
        .find(|p| p.exists())
        .unwrap_or_else(|| PathBuf::from("nginx"))
}

/// One request as the balancer logged it.
#[derive(Debug, Clone)]
pub struct Logged {
    /// `GET`, `PATCH`…
    pub method: String,
    /// The request path (without the query).
    pub path: String,
    /// The node (`127.0.0.1:<port>`) that answered (nginx's `$upstream_addr`; after a
    /// failover it lists every node tried, comma-separated).
    pub upstream: String,
    /// The status sent to the client.
    pub status: u16,
}

/// A running nginx balancing over some nodes; stopped on drop.
pub struct Balancer {
    /// `127.0.0.1:<port>`: where clients connect.
    pub host: String,
    child: Child,
    dir: tempfile::TempDir,
}

impl Balancer {
    /// Starts nginx on a free port in front of `nodes` (`127.0.0.1:<port>` each).
    pub fn start(nodes: &[String]) -> Balancer {
        let mut last = String::new();
        for _ in 0..4 {
            let dir = tempfile::Builder::new()
                .prefix("berth-lb")
                .tempdir()
                .unwrap();
            for sub in ["tmp", "logs"] {
                fs::create_dir_all(dir.path().join(sub)).unwrap();
            }
            // Workers run as nobody when the master is root.
            let _ = Command::new("chmod")
                .arg("-R")
                .arg("a+rwx")
                .arg(dir.path())
                .status();
            let port = super::free_port();
            let host = format!("127.0.0.1:{port}");
            fs::write(
                dir.path().join("nginx.conf"),
                config(dir.path(), &host, nodes),
            )
            .unwrap();
            let mut cmd = Command::new(nginx_bin());
            cmd.arg("-p")
                .arg(dir.path())
                .arg("-c")
                .arg(dir.path().join("nginx.conf"))
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(fs::File::create(dir.path().join("logs/stderr.log")).unwrap());
            // SAFETY: prctl is async-signal-safe; nothing is allocated here.
            unsafe {
                cmd.pre_exec(|| {
                    if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) != 0 {
                        return Err(std::io::Error::last_os_error());
                    }
                    Ok(())
                });
            }
            // Spawned from the process-long thread: the balancer is shared by the tests
            // of a binary, and PR_SET_PDEATHSIG fires when the spawning thread ends.
            let child = berth_test_support::spawn_for_process(cmd).expect("starting nginx");
            let mut lb = Balancer { host, child, dir };
            let start = Instant::now();
            loop {
                if let Ok(Some(st)) = lb.child.try_wait() {
                    last = format!("nginx exited with {st}: {}", lb.errors());
                    break;
                }
                if std::net::TcpStream::connect(&lb.host).is_ok() {
                    return lb;
                }
                if start.elapsed() > Duration::from_secs(20) {
                    last = format!("nginx not listening after 20 s: {}", lb.errors());
                    break;
                }
                std::thread::sleep(Duration::from_millis(25));
            }
        }
        panic!("the load balancer did not start: {last}");
    }

    /// Every request logged so far, in order.
    pub fn requests(&self) -> Vec<Logged> {
        let text = fs::read_to_string(self.dir.path().join("logs/access.log")).unwrap_or_default();
        text.lines()
            .filter_map(|l| {
                let mut f = l.split('\t');
                let method = f.next()?.to_string();
                let path = f.next()?.to_string();
                let upstream = f.next()?.to_string();
                let status = f.next()?.parse().ok()?;
                Some(Logged {
                    method,
                    path,
                    upstream,
                    status,
                })
            })
            .collect()
    }

    /// nginx's error log (for failure messages).
    pub fn errors(&self) -> String {
        let p = self.dir.path().join("logs");
        let mut s = fs::read_to_string(p.join("error.log")).unwrap_or_default();
        s.push_str(&fs::read_to_string(p.join("stderr.log")).unwrap_or_default());
        s
    }
}

impl Drop for Balancer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn config(dir: &Path, host: &str, nodes: &[String]) -> String {
    let d = dir.display();
    let servers: String = nodes
        .iter()
        .map(|n| format!("    server {n} max_fails=1 fail_timeout=2s;\n"))
        .collect();
    format!(
        r#"daemon off;
master_process on;
worker_processes 1;
pid {d}/nginx.pid;
error_log {d}/logs/error.log warn;
events {{ worker_connections 1024; }}
http {{
  log_format balanced "$request_method\t$uri\t$upstream_addr\t$status";
  access_log {d}/logs/access.log balanced;
  client_body_temp_path {d}/tmp/body;
  proxy_temp_path {d}/tmp/proxy;
  fastcgi_temp_path {d}/tmp/fastcgi;
  uwsgi_temp_path {d}/tmp/uwsgi;
  scgi_temp_path {d}/tmp/scgi;
  upstream berth {{
{servers}    keepalive 32;
  }}
  server {{
    listen {host};
    client_max_body_size 0;
    proxy_request_buffering off;
    proxy_buffering off;
    proxy_http_version 1.1;
    proxy_set_header Connection "";
    proxy_set_header Host $http_host;
    proxy_read_timeout 300s;
    proxy_send_timeout 300s;
    # A request that fails on a node (refused, reset: the node died, or a kept-alive
    # connection to a node that was restarted went stale) goes to the next node, POST
    # and PATCH included: each Berth write commits in one transaction or not at all, so
    # resending it is safe (README, "Three nodes on PostgreSQL and SeaweedFS").
    proxy_next_upstream error timeout non_idempotent;
    location / {{ proxy_pass http://berth; }}
  }}
}}
"#
    )
}
