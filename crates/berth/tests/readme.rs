//! The README's walkthrough, run as written (issue 17: "a test runs the README's
//! commands so the README cannot drift again").
//!
//! Every fenced ```` ```sh ```` block that follows a `<!-- readme-test -->` line is
//! extracted in order and run by one `bash` (`set -euo pipefail`), in a fresh empty
//! directory, against real docker (the test's own dockerd), podman, skopeo, umoci, curl,
//! jq, the AWS CLI and the oras Python SDK of the clients venv. The README defines its
//! variables itself; the test changes only the port (`export BERTH=127.0.0.1:5000` →
//! a free port) and isolates the clients (`HOME`, `DOCKER_CONFIG`, podman's storage and
//! auth file in the temp directory). The `berth` on `PATH` is this build's.
//!
//! Run: `cargo test -p berth --test readme`. Outside CI a missing client makes the test
//! print `SKIPPED`; with `CI=true` it fails.

mod common;

use common::*;
use std::fs;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

/// The marker before each block the test runs.
const MARKER: &str = "<!-- readme-test -->";
/// The README's definition of the registry's address, which the test points elsewhere.
const ADDRESS_LINE: &str = "export BERTH=127.0.0.1:5000\n";

/// The marked ```` ```sh ```` blocks of `readme`, in order.
fn marked_blocks(readme: &str) -> Vec<String> {
    let mut blocks = Vec::new();
    let mut rest = readme;
    while let Some(i) = rest.find(MARKER) {
        rest = &rest[i + MARKER.len()..];
        let body = rest
            .trim_start_matches('\n')
            .strip_prefix("```sh\n")
            .unwrap_or_else(|| panic!("{MARKER} must be followed by a ```sh block:\n{rest:.200}"));
        let end = body.find("\n```").expect("an unterminated ```sh block");
        blocks.push(body[..=end].to_string());
        rest = &body[end..];
    }
    blocks
}

#[test]
fn readme_walkthrough_runs_as_written() {
    const T: &str = "readme_walkthrough_runs_as_written";
    if !require(
        T,
        &[
            "docker",
            "podman",
            "skopeo",
            "umoci",
            "curl",
            "jq",
            "aws",
            "oras",
            "busybox-static",
        ],
    ) {
        return;
    }
    let readme = fs::read_to_string(workspace_root().join("README.md")).unwrap();
    let blocks = marked_blocks(&readme);
    assert!(
        blocks.len() >= 6,
        "the walkthrough's blocks are marked: {}",
        blocks.len()
    );
    let script = blocks.concat();
    assert!(
        script.starts_with(ADDRESS_LINE),
        "the walkthrough starts by naming the address with {ADDRESS_LINE:?}"
    );
    for (what, needle) in [
        ("starts the registry", "berth serve"),
        ("builds an image before pushing it", "docker build"),
        ("uses podman", "podman "),
        ("uses skopeo", "skopeo "),
        ("uses the oras SDK", "oras.client"),
        ("uses the AWS CLI", "aws ecr"),
    ] {
        assert!(script.contains(needle), "the walkthrough {what}");
    }

    let dir = tempfile::Builder::new()
        .prefix("berth-readme")
        .tempdir()
        .unwrap();
    let work = dir.path().join("work");
    let home = dir.path().join("home");
    for d in [&work, &home] {
        fs::create_dir_all(d).unwrap();
    }
    let storage = dir.path().join("storage.conf");
    fs::write(
        &storage,
        format!(
            "[storage]\ndriver = \"vfs\"\ngraphroot = \"{}\"\nrunroot = \"{}\"\n",
            dir.path().join("podman-root").display(),
            dir.path().join("podman-run").display()
        ),
    )
    .unwrap();

    let port = free_port();
    let script = format!(
        "set -euo pipefail\n\
         # The server the walkthrough starts in the background stops with this shell.\n\
         trap 'kill $(jobs -p) 2>/dev/null || true' EXIT\n\
         export BERTH=127.0.0.1:{port}\n{}\n\
         kill -TERM %1 && wait %1\n\
         echo walkthrough-complete\n",
        &script[ADDRESS_LINE.len()..]
    );
    fs::write(dir.path().join("walkthrough.sh"), &script).unwrap();

    let berth_bin = Path::new(env!("CARGO_BIN_EXE_berth")).parent().unwrap();
    let venv_bin = aws_cli().parent().unwrap().to_path_buf();
    let path = std::env::join_paths([berth_bin.to_path_buf(), venv_bin].into_iter().chain(
        std::env::split_paths(&std::env::var_os("PATH").unwrap_or_default()),
    ))
    .unwrap();
    let docker_host = docker()
        .cmd()
        .get_envs()
        .find(|(k, _)| *k == "DOCKER_HOST")
        .and_then(|(_, v)| v.map(|v| v.to_owned()))
        .expect("DOCKER_HOST of the test dockerd");

    let mut bash = Command::new("bash");
    bash.arg(dir.path().join("walkthrough.sh"))
        .current_dir(&work)
        .env_clear()
        .env("PATH", path)
        .env("HOME", &home)
        .env("DOCKER_HOST", docker_host)
        .env("DOCKER_CONFIG", home.join(".docker"))
        .env("CONTAINERS_STORAGE_CONF", &storage)
        .env("REGISTRY_AUTH_FILE", dir.path().join("auth.json"))
        .env("AWS_CONFIG_FILE", "/dev/null")
        .env("AWS_MAX_ATTEMPTS", "1")
        .env("AWS_PAGER", "")
        .env("TMPDIR", dir.path());
    let o = run_unchecked(&mut bash, Duration::from_secs(900));
    let log = fs::read_to_string(work.join("berth.log")).unwrap_or_default();
    assert!(
        o.success() && o.stdout.contains("walkthrough-complete"),
        "the README walkthrough failed:\n{}\n--- berth.log ---\n{}",
        o.describe(),
        &log[log.len().saturating_sub(6000)..]
    );

    // What a user following it would see.
    let account = o
        .stdout
        .lines()
        .find_map(|l| l.strip_prefix("this registry is account "))
        .expect("the walkthrough prints the account ID");
    assert!(
        account.len() == 12 && account.bytes().all(|b| b.is_ascii_digit()),
        "{account:?}"
    );
    let lines: Vec<&str> = o.stdout.lines().collect();
    assert!(
        lines.contains(&"arm64"),
        "skopeo --override-arch arm64 chose the arm64 child"
    );
    assert!(lines.contains(&"amd64"), "the index lists the amd64 child");
    assert!(
        lines.contains(&"application/vnd.example.sbom"),
        "the referrers API lists the SBOM"
    );
    assert!(
        o.stdout.contains(&format!(
            "is not authorized to perform: ecr:PutImage on resource: \
             arn:aws:ecr:us-east-1:{account}:repository/team/hello"
        )),
        "the simulation denies ci a push outside ci/*:\n{}",
        o.stdout
    );
    assert!(
        o.stdout
            .contains(&format!("arn:aws:iam::{account}:user/ci\tecr:PutImage")),
        "the audit trail shows ci's push:\n{}",
        o.stdout
    );
    assert!(
        log.contains("stopped"),
        "the server shut down cleanly:\n{log}"
    );
}
