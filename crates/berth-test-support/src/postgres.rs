//! A real PostgreSQL server for tests: one throwaway cluster per test binary, started on
//! first use on a free loopback port (TESTING.md: "PostgreSQL 15 from Debian"), and one
//! fresh database per caller ([`Postgres::database`]) so tests sharing the server never
//! see each other's rows.
//!
//! The server runs under a watchdog shell whose stdin is a pipe held by the test
//! process: when the process exits — normally, on a panic or killed — the kernel closes
//! the pipe and the watchdog stops the server (`pg_ctl stop -m immediate`) and removes
//! its directory. `fsync = off`: the tests kill Berth nodes, never the database, so its
//! own durability is not under test and syncing would only slow the suite.

use std::os::unix::process::CommandExt as _;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

/// A running throwaway PostgreSQL cluster.
pub struct Postgres {
    port: u16,
    bin: PathBuf,
    dir: PathBuf,
    _lifeline: Mutex<ChildStdin>,
    _watchdog: Mutex<Child>,
}

// Started as `sh -c WATCHDOG sh DIR AS_USER BIN PORT`.
const WATCHDOG: &str = r#"
dir=$1; as=$2; bin=$3; port=$4
run() { if [ -n "$as" ]; then runuser -u "$as" -- "$@"; else "$@"; fi; }
run "$bin/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w -t 60 \
  -o "-p $port -k $dir -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=300" start >"$dir/pg_ctl.log" 2>&1
echo started >"$dir/state"
# Blocks until the test process exits (EOF on stdin).
while read -r _line; do :; done
run "$bin/pg_ctl" -D "$dir/data" -m immediate -w stop >/dev/null 2>&1
rm -rf "$dir"
"#;

static SERVER: OnceLock<Result<Postgres, String>> = OnceLock::new();
static NEXT_DB: AtomicU32 = AtomicU32::new(0);

/// The directory holding `initdb`, `pg_ctl` and `postgres`: the newest
/// `/usr/lib/postgresql/<version>/bin` (Debian's layout), else wherever `initdb` is on
/// the `PATH`.
pub(crate) fn bin_dir() -> Option<PathBuf> {
    let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let v = e.file_name().to_str()?.parse::<u32>().ok()?;
            let bin = e.path().join("bin");
            bin.join("initdb").exists().then_some((v, bin))
        })
        .collect();
    versions.sort();
    if let Some((_, bin)) = versions.pop() {
        return Some(bin);
    }
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path).find(|p| p.join("initdb").exists() && p.join("pg_ctl").exists())
}

impl Postgres {
    /// The shared server, started on first use. `None` (after a loud skip message naming
    /// `test`) when PostgreSQL is not installed and the tests do not run in CI; in CI
    /// (`CI=true`) a missing or failing server panics, per TESTING.md.
    pub fn shared(test: &str) -> Option<&'static Postgres> {
        match SERVER.get_or_init(start) {
            Ok(pg) => Some(pg),
            Err(e) if e.starts_with("not installed") && !crate::in_ci() => {
                crate::loud(&format!(
                    "SKIPPED {test}: PostgreSQL is {e} (run .ci/install-clients)"
                ));
                None
            }
            Err(e) => panic!("PostgreSQL did not start: {e}"),
        }
    }

    /// Creates a fresh, empty database and returns its URL
    /// (`postgres://postgres@127.0.0.1:<port>/<name>`).
    pub fn database(&self) -> String {
        let name = format!(
            "t{}_{}",
            std::process::id(),
            NEXT_DB.fetch_add(1, Ordering::Relaxed)
        );
        let out = Command::new(self.bin.join("psql"))
            .args([
                "-h",
                "127.0.0.1",
                "-p",
                &self.port.to_string(),
                "-U",
                "postgres",
            ])
            .args(["-d", "postgres", "-v", "ON_ERROR_STOP=1", "-q", "-c"])
            .arg(format!("CREATE DATABASE {name}"))
            .output()
            .or_else(|_| {
                Command::new("psql")
                    .args([
                        "-h",
                        "127.0.0.1",
                        "-p",
                        &self.port.to_string(),
                        "-U",
                        "postgres",
                    ])
                    .args(["-d", "postgres", "-v", "ON_ERROR_STOP=1", "-q", "-c"])
                    .arg(format!("CREATE DATABASE {name}"))
                    .output()
            })
            .expect("running psql");
        assert!(
            out.status.success(),
            "CREATE DATABASE {name}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        self.url(&name)
    }

    /// The URL of database `name` on this server.
    pub fn url(&self, name: &str) -> String {
        format!("postgres://postgres@127.0.0.1:{}/{name}", self.port)
    }

    /// The server's port on 127.0.0.1.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The server's log so far (for failure messages).
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("server.log")).unwrap_or_default()
    }
}

fn start() -> Result<Postgres, String> {
    let bin = bin_dir().ok_or_else(|| "not installed (no initdb found)".to_string())?;
    let dir = tempfile::Builder::new()
        .prefix("berth-pg")
        .tempdir_in("/tmp")
        .map_err(|e| format!("temp dir: {e}"))?
        .keep();
    // initdb refuses to run as root: run the server as the `postgres` user then.
    let as_user = if is_root() { "postgres" } else { "" };
    if !as_user.is_empty() {
        chown(&dir, as_user)?;
    }
    let mut initdb = Command::new(if as_user.is_empty() { "sh" } else { "runuser" });
    if !as_user.is_empty() {
        initdb.args(["-u", as_user, "--"]);
    } else {
        initdb.arg("-c").arg("exec \"$0\" \"$@\"");
    }
    let out = initdb
        .arg(bin.join("initdb"))
        .arg("-D")
        .arg(dir.join("data"))
        .args(["-A", "trust", "-U", "postgres", "--no-sync", "-E", "UTF8"])
        .output()
        .map_err(|e| format!("running initdb: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "initdb failed: {}",
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    let port = crate::free_port();
    let mut watchdog = Command::new("sh")
        .arg("-c")
        .arg(WATCHDOG)
        .arg("sh")
        .arg(&dir)
        .arg(as_user)
        .arg(&bin)
        .arg(port.to_string())
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .process_group(0)
        .spawn()
        .map_err(|e| format!("spawning the watchdog: {e}"))?;
    let lifeline = watchdog.stdin.take().expect("piped stdin");
    let pg = Postgres {
        port,
        bin,
        dir: dir.clone(),
        _lifeline: Mutex::new(lifeline),
        _watchdog: Mutex::new(watchdog),
    };
    let start = Instant::now();
    while !dir.join("state").exists() {
        if start.elapsed() > Duration::from_secs(90) {
            let log = std::fs::read_to_string(dir.join("pg_ctl.log")).unwrap_or_default();
            return Err(format!("not ready after 90 s: {log}\n{}", pg.log()));
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    if std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        let log = std::fs::read_to_string(dir.join("pg_ctl.log")).unwrap_or_default();
        return Err(format!("pg_ctl start failed: {log}\n{}", pg.log()));
    }
    Ok(pg)
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .map(|o| o.stdout.trim_ascii() == b"0")
        .unwrap_or(false)
}

fn chown(dir: &Path, user: &str) -> Result<(), String> {
    let ok = Command::new("chown")
        .arg(format!("{user}:"))
        .arg(dir)
        .status()
        .map_err(|e| format!("chown: {e}"))?
        .success();
    ok.then_some(())
        .ok_or_else(|| format!("chown {user} {} failed", dir.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The fixture gives each caller its own empty database on one shared server.
    #[test]
    fn fresh_databases_on_one_server() {
        let Some(pg) = Postgres::shared("fresh_databases_on_one_server") else {
            return;
        };
        let a = pg.database();
        let b = pg.database();
        assert_ne!(a, b);
        for url in [a, b] {
            let out = Command::new("psql")
                .args([
                    url.as_str(),
                    "-tAc",
                    "SELECT count(*) FROM pg_tables WHERE schemaname = 'public'",
                ])
                .output()
                .expect("psql");
            assert_eq!(
                String::from_utf8_lossy(&out.stdout).trim(),
                "0",
                "{}",
                pg.log()
            );
        }
    }
}
