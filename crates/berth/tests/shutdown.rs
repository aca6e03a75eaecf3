//! Graceful shutdown of `berth serve` (issue 16): on SIGTERM the server stops accepting,
//! finishes requests in flight, stops and awaits its background tasks (upload janitor,
//! identity reloader) and flushes the audit sink, so every audit record of a served
//! request is in the database after a clean shutdown, where `berth admin audit` reads it.
//!
//! Run: `cargo test -p berth --test shutdown`. Needs no external client.

mod common;

use base64::Engine;
use common::*;
use std::io::{Read, Write};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// The value of `key` in the AWS shared-credentials file the server writes.
fn credential(text: &str, key: &str) -> String {
    text.lines()
        .filter_map(|l| l.split_once('='))
        .find(|(k, _)| k.trim() == key)
        .map(|(_, v)| v.trim().to_string())
        .unwrap_or_else(|| panic!("no {key} in credentials:\n{text}"))
}

/// A `berth serve` on a free port with its own data directory; killed on drop.
struct Server {
    dir: tempfile::TempDir,
    host: String,
    child: std::process::Child,
}

impl Server {
    fn start() -> Server {
        let dir = tempfile::tempdir().unwrap();
        let log = std::fs::File::create(dir.path().join("server.log")).unwrap();
        let host = format!("127.0.0.1:{}", free_port());
        let child = Command::new(env!("CARGO_BIN_EXE_berth"))
            .args(["serve", "--listen", &host, "--data-dir"])
            .arg(dir.path().join("data"))
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap();
        let server = Server { dir, host, child };
        let start = Instant::now();
        while http_status(&format!("http://{}/readyz", server.host)) != Some(200) {
            assert!(
                start.elapsed() < Duration::from_secs(30),
                "server not ready: {}",
                server.log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        server
    }

    fn data(&self) -> std::path::PathBuf {
        self.dir.path().join("data")
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("server.log")).unwrap_or_default()
    }

    /// `Authorization: Basic …` with the administrator's access key.
    fn admin_auth(&self) -> String {
        let creds = std::fs::read_to_string(self.data().join("admin-credentials")).unwrap();
        let basic = base64::engine::general_purpose::STANDARD.encode(format!(
            "{}:{}",
            credential(&creds, "aws_access_key_id"),
            credential(&creds, "aws_secret_access_key")
        ));
        format!("Basic {basic}")
    }

    fn sigterm(&self) {
        // SAFETY: kill(2) on the child we started.
        assert_eq!(
            unsafe { libc::kill(self.child.id() as i32, libc::SIGTERM) },
            0
        );
    }

    /// Waits up to `limit` for the server to exit.
    fn exit_within(&mut self, limit: Duration) -> Option<std::process::ExitStatus> {
        let start = Instant::now();
        loop {
            if let Some(s) = self.child.try_wait().unwrap() {
                return Some(s);
            }
            if start.elapsed() > limit {
                return None;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Issue 16: requests then SIGTERM, and every audit record of a served request is in
/// the audit table after the clean shutdown (exit 0), read by `berth admin audit`.
#[test]
fn sigterm_drains_the_audit_trail_into_the_database() {
    let mut server = Server::start();
    let host = server.host.clone();
    let auth = server.admin_auth();
    // Each request is authorised as ecr:ListImages on its own repository, which makes
    // one audit record each (a 404 after the decision: the repository does not exist).
    const N: usize = 40;
    for i in 0..N {
        let r = http(
            "GET",
            &format!("http://{host}/v2/drain/r{i}/tags/list"),
            &[("Authorization", &auth)],
            None,
        );
        assert_eq!(r.status, 404, "{}", r.describe());
    }
    // SIGTERM at once: records still queued in the sink must reach the table.
    server.sigterm();
    let status = server
        .exit_within(Duration::from_secs(30))
        .expect("exits after SIGTERM");
    assert!(status.success(), "a clean shutdown exits 0: {status}");
    let log = server.log();
    assert!(log.contains("stopped"), "{log}");

    let out = run(
        Command::new(env!("CARGO_BIN_EXE_berth"))
            .args([
                "admin",
                "audit",
                "--action",
                "ecr:ListImages",
                "--limit",
                "1000",
                "--data-dir",
            ])
            .arg(server.data()),
        SHORT,
    );
    for i in 0..N {
        let repo = format!(":repository/drain/r{i}\t");
        assert!(
            out.stdout
                .lines()
                .any(|l| l.contains(&repo) && l.contains("\tallow\t")),
            "no audit record for drain/r{i} after SIGTERM:\n{}",
            out.stdout
        );
    }
    // Fixed-width timestamps (issue 17): every line's first column is 24 characters.
    for l in out.stdout.lines() {
        let at = l.split('\t').next().unwrap();
        assert_eq!(at.len(), 24, "timestamp {at:?} in {l:?}");
        assert!(at.ends_with('Z'), "{at}");
    }
}

/// Opens an upload and starts a PATCH whose body is only half sent: a request in flight.
fn start_slow_upload(server: &Server) -> (std::net::TcpStream, usize) {
    let auth = server.admin_auth();
    let r = http(
        "POST",
        &format!("http://{}/v2/slow/app/blobs/uploads/", server.host),
        &[("Authorization", &auth)],
        None,
    );
    assert_eq!(r.status, 202, "{}", r.describe());
    let location = r.header("location").unwrap().to_string();
    let path = location
        .strip_prefix(&format!("http://{}", server.host))
        .unwrap_or(&location)
        .to_string();
    const LEN: usize = 1 << 20;
    let mut tcp = std::net::TcpStream::connect(&server.host).unwrap();
    write!(
        tcp,
        "PATCH {path} HTTP/1.1\r\nHost: {}\r\nAuthorization: {auth}\r\n\
         Content-Type: application/octet-stream\r\nContent-Length: {LEN}\r\n\r\n",
        server.host
    )
    .unwrap();
    tcp.write_all(&vec![7u8; LEN / 2]).unwrap();
    tcp.flush().unwrap();
    std::thread::sleep(Duration::from_millis(300));
    (tcp, LEN - LEN / 2)
}

/// Graceful shutdown: SIGTERM lets a request in flight finish (its answer arrives, then
/// the server exits 0); a second SIGTERM stops at once, exiting non-zero.
#[test]
fn sigterm_finishes_requests_in_flight_and_a_second_signal_stops_at_once() {
    let mut server = Server::start();
    let (mut tcp, rest) = start_slow_upload(&server);
    server.sigterm();
    assert!(
        server.exit_within(Duration::from_millis(1500)).is_none(),
        "the server must wait for the request in flight:\n{}",
        server.log()
    );
    tcp.write_all(&vec![7u8; rest]).unwrap();
    let mut answer = String::new();
    tcp.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let _ = tcp.read_to_string(&mut answer);
    assert!(
        answer.starts_with("HTTP/1.1 202"),
        "the upload in flight completes: {answer:?}"
    );
    let status = server
        .exit_within(Duration::from_secs(30))
        .expect("exits once the request is done");
    assert!(status.success(), "{status}\n{}", server.log());

    let mut server = Server::start();
    let (_tcp, _) = start_slow_upload(&server);
    server.sigterm();
    assert!(server.exit_within(Duration::from_millis(1000)).is_none());
    server.sigterm();
    let status = server
        .exit_within(Duration::from_secs(5))
        .expect("a second signal stops at once");
    assert!(
        !status.success(),
        "stopping with a request in flight is not clean"
    );
    assert!(
        server.log().contains("a second signal arrived"),
        "{}",
        server.log()
    );
}

fn http_status(url: &str) -> Option<u16> {
    match ureq::get(url).timeout(Duration::from_secs(2)).call() {
        Ok(r) => Some(r.status()),
        Err(ureq::Error::Status(s, _)) => Some(s),
        Err(_) => None,
    }
}
