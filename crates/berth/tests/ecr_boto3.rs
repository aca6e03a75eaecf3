//! boto3 against `berth serve`: the scenarios in `fixtures/ecr_boto3.py` run with the
//! clients venv's Python, signed with the administrator credentials the server writes
//! on first start. The script asserts what a boto3 user checks; this side checks what
//! needs docker.
//!
//! Sections cited are from `shared/reference/ECR_REFERENCE.md`.
//!
//! Run: `cargo test -p berth --test ecr_boto3`.

mod common;

use common::*;
use serde_json::Value;
use std::process::Command;
use std::time::Duration;

/// Runs one scenario of `ecr_boto3.py`; returns the JSON it prints.
fn boto3(reg: &Registry, args: &[&str], timeout: Duration) -> Value {
    let mut c = Command::new(oras_python());
    c.arg(fixture("ecr_boto3.py"))
        .arg(args[0])
        .arg(reg.url(""))
        .args(&args[1..])
        .env(
            "AWS_SHARED_CREDENTIALS_FILE",
            reg.data_dir().join("admin-credentials"),
        )
        .env("AWS_CONFIG_FILE", "/dev/null")
        .env("AWS_DEFAULT_REGION", "us-east-1")
        .env("AWS_MAX_ATTEMPTS", "1")
        .env_remove("AWS_ACCESS_KEY_ID")
        .env_remove("AWS_SECRET_ACCESS_KEY")
        .env_remove("AWS_SESSION_TOKEN")
        .env_remove("AWS_PROFILE");
    let o = run_unchecked(&mut c, timeout);
    assert!(
        o.success(),
        "boto3 scenario failed:\n{}\n{}",
        o.describe(),
        reg.log_tail()
    );
    parse_json(&o)
}

/// §1.7 paginators (ListImages, DescribeImages, DescribeRepositories) over 1,050
/// images, with the default page and explicit page sizes; `batch_get_image`, `put_image`
/// of the fetched manifest under a new tag, and `describe_images` sizes that match it.
#[test]
fn boto3_paginates_1050_images_and_reputs_a_fetched_manifest() {
    const T: &str = "boto3_paginates_1050_images_and_reputs_a_fetched_manifest";
    if !require(T, &["boto3"]) {
        return;
    }
    let reg = Registry::start_secured(&[]);
    let out = boto3(&reg, &["paginate", "1050"], LONG);
    assert_eq!(out["images"], 1050);
}

/// §2.4: `initiate_layer_upload`, `upload_layer_part` in several parts,
/// `complete_layer_upload` and `put_image` make an image that docker (logged in with
/// `aws ecr get-login-password`) pulls: its image ID is the config uploaded, its digest
/// the manifest put. The download URL of the layer works without credentials.
#[test]
fn boto3_layer_api_round_trip_makes_an_image_docker_pulls() {
    const T: &str = "boto3_layer_api_round_trip_makes_an_image_docker_pulls";
    if !require(T, &["boto3", "aws", "docker"]) {
        return;
    }
    let reg = Registry::start_secured(&[]);
    let repo = "boto/layers";
    let out = boto3(&reg, &["layers", repo, &unique("nonce")], SHORT);
    let digest = out["digest"].as_str().unwrap();
    let config = out["config"].as_str().unwrap();

    let d = docker();
    let mut password = Command::new(aws_cli());
    password
        .env(
            "AWS_SHARED_CREDENTIALS_FILE",
            reg.data_dir().join("admin-credentials"),
        )
        .env("AWS_CONFIG_FILE", "/dev/null")
        .env("AWS_DEFAULT_REGION", "us-east-1")
        .args(["ecr", "get-login-password", "--endpoint-url", &reg.url("")]);
    let pw = run(&mut password, SHORT).stdout.trim().to_string();
    // `--password-stdin` needs a pipe; the password goes through the environment of a
    // shell rather than a command line.
    let mut login = Command::new("sh");
    for (k, v) in d.cmd().get_envs() {
        if let Some(v) = v {
            login.env(k, v);
        }
    }
    login
        .env("PW", &pw)
        .env("REG", &reg.host)
        .arg("-c")
        .arg(r#"printf '%s' "$PW" | docker login --username AWS --password-stdin "$REG""#);
    run(&mut login, SHORT);

    let image = reg.image(&format!("{repo}:v1"));
    run(d.cmd().args(["pull", &image]), LONG);
    assert_eq!(d.image_id(&image), config);
    let digests = run(
        d.cmd().args([
            "image",
            "inspect",
            "--format",
            "{{json .RepoDigests}}",
            &image,
        ]),
        SHORT,
    )
    .stdout;
    assert!(
        digests.contains(&format!("{repo}@{digest}")),
        "{digests} lacks {digest}"
    );
    run(d.cmd().args(["rmi", "-f", &image]), SHORT);
    run(d.cmd().args(["logout", &reg.host]), SHORT);
}

/// §1.2 and §2.1: a wrong secret, an unknown key, a request signed 20 minutes ago (the
/// clock botocore signs with, moved back), a bad repository name, an over-long tag, a
/// forged `nextToken`: each refused with ECR's error type and a message that says why.
#[test]
fn boto3_refusals_have_ecr_types_and_useful_messages() {
    const T: &str = "boto3_refusals_have_ecr_types_and_useful_messages";
    if !require(T, &["boto3"]) {
        return;
    }
    let reg = Registry::start_secured(&[]);
    let out = boto3(&reg, &["errors"], SHORT);
    assert_eq!(out["ok"], true);
}
