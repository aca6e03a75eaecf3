//! The real AWS CLI (`aws ecr … --endpoint-url`) against `berth serve`, and docker logged
//! in with `aws ecr get-login-password`. Each test starts its own secured server (no
//! anonymous access) and uses the administrator credentials it writes on first start,
//! `<data-dir>/admin-credentials`, as `AWS_SHARED_CREDENTIALS_FILE`.
//!
//! Sections cited are from `shared/reference/ECR_REFERENCE.md`.
//!
//! Run: `cargo test -p berth --test ecr_cli`. The AWS CLI comes from the clients venv
//! (`.ci/install-clients`); outside CI a missing client makes a test print `SKIPPED`.

mod common;

use common::*;
use serde_json::{json, Value};
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

/// The AWS CLI pointed at one registry with one credentials file.
struct Aws {
    endpoint: String,
    credentials: PathBuf,
}

impl Aws {
    /// As the registry's bootstrap administrator.
    fn admin(reg: &Registry) -> Aws {
        Aws::with_credentials(reg, reg.data_dir().join("admin-credentials"))
    }

    fn with_credentials(reg: &Registry, credentials: PathBuf) -> Aws {
        assert!(
            credentials.exists(),
            "{} does not exist\n{}",
            credentials.display(),
            reg.log_tail()
        );
        Aws {
            endpoint: reg.url(""),
            credentials,
        }
    }

    /// Environment for the CLI: only this credentials file, the server's region, no
    /// retries (an error must not hide behind them), no pager.
    fn env(&self, c: &mut Command) {
        aws_env(c, &self.credentials);
    }

    fn cmd(&self, args: &[&str]) -> Command {
        let mut c = Command::new(aws_cli());
        self.env(&mut c);
        c.args(["--endpoint-url", &self.endpoint, "--output", "json", "ecr"])
            .args(args);
        c
    }

    /// Runs `aws ecr <args>`, which must succeed; its JSON output (or null).
    fn ok(&self, args: &[&str]) -> Value {
        let o = run(&mut self.cmd(args), SHORT);
        if o.stdout.trim().is_empty() {
            Value::Null
        } else {
            parse_json(&o)
        }
    }

    /// Runs `aws ecr <args>`, which must fail with ECR error `kind`; returns stderr.
    fn fails(&self, args: &[&str], kind: &str) -> String {
        let o = run_unchecked(&mut self.cmd(args), SHORT);
        assert!(
            !o.success(),
            "expected {kind}, but it succeeded:\n{}",
            o.describe()
        );
        assert!(
            o.stderr.contains(&format!("An error occurred ({kind})")),
            "expected {kind}:\n{}",
            o.describe()
        );
        o.stderr
    }
}

fn file(dir: &Path, name: &str, content: &[u8]) -> String {
    let p = dir.join(name);
    fs::write(&p, content).unwrap();
    p.display().to_string()
}

/// Uploads `data` as one layer with the CLI's layer API (§2.4), in parts of at most
/// `part` bytes; returns its digest.
fn upload_layer(aws: &Aws, dir: &Path, repo: &str, data: &[u8], part: usize) -> String {
    let init = aws.ok(&["initiate-layer-upload", "--repository-name", repo]);
    let id = init["uploadId"].as_str().unwrap().to_string();
    assert!(init["partSize"].as_u64().unwrap() > 0);
    for (i, chunk) in data.chunks(part).enumerate() {
        let first = i * part;
        let last = first + chunk.len() - 1;
        let path = file(dir, &format!("part-{i}"), chunk);
        let r = aws.ok(&[
            "upload-layer-part",
            "--repository-name",
            repo,
            "--upload-id",
            &id,
            "--part-first-byte",
            &first.to_string(),
            "--part-last-byte",
            &last.to_string(),
            "--layer-part-blob",
            &format!("fileb://{path}"),
        ]);
        assert_eq!(r["lastByteReceived"], last as u64);
    }
    let digest = sha256_digest(data);
    let r = aws.ok(&[
        "complete-layer-upload",
        "--repository-name",
        repo,
        "--upload-id",
        &id,
        "--layer-digests",
        &digest,
    ]);
    assert_eq!(r["layerDigest"], digest);
    digest
}

/// An OCI image manifest for a config and one layer.
fn manifest(config: &[u8], layer: &[u8]) -> String {
    json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                   "digest": sha256_digest(config), "size": config.len()},
        "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar",
                    "digest": sha256_digest(layer), "size": layer.len()}],
    })
    .to_string()
}

/// ECR_REFERENCE §1.5 and §2.1–2.4: create, describe, tag, set mutability, put and get a
/// policy, push through the layer API and PutImage, list and describe images,
/// batch-delete, delete without and with `--force` — all with `aws ecr`.
#[test]
fn aws_cli_manages_a_repository_through_its_whole_life() {
    const T: &str = "aws_cli_manages_a_repository_through_its_whole_life";
    if !require(T, &["aws"]) {
        return;
    }
    let reg = Registry::start_secured(&[]);
    let aws = Aws::admin(&reg);
    let tmp = tempfile::tempdir().unwrap();
    let repo = "team/life";

    let created = aws.ok(&[
        "create-repository",
        "--repository-name",
        repo,
        "--image-tag-mutability",
        "IMMUTABLE",
        "--image-scanning-configuration",
        "scanOnPush=true",
        "--tags",
        "Key=team,Value=platform",
    ]);
    let arn = created["repository"]["repositoryArn"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(
        arn.starts_with("arn:aws:ecr:us-east-1:") && arn.ends_with(":repository/team/life"),
        "{arn}"
    );
    assert_eq!(
        created["repository"]["repositoryUri"],
        format!("{}/{repo}", reg.host)
    );
    aws.fails(
        &["create-repository", "--repository-name", repo],
        "RepositoryAlreadyExistsException",
    );

    let d = aws.ok(&["describe-repositories", "--repository-names", repo]);
    let r = &d["repositories"][0];
    assert_eq!(r["imageTagMutability"], "IMMUTABLE");
    assert_eq!(r["imageScanningConfiguration"]["scanOnPush"], true);
    assert_eq!(r["encryptionConfiguration"]["encryptionType"], "AES256");

    aws.ok(&[
        "tag-resource",
        "--resource-arn",
        &arn,
        "--tags",
        "Key=env,Value=prod",
    ]);
    let tags = aws.ok(&["list-tags-for-resource", "--resource-arn", &arn]);
    assert_eq!(
        tags["tags"],
        json!([{"Key": "env", "Value": "prod"}, {"Key": "team", "Value": "platform"}])
    );
    aws.ok(&[
        "untag-resource",
        "--resource-arn",
        &arn,
        "--tag-keys",
        "env",
    ]);

    let m = aws.ok(&[
        "put-image-tag-mutability",
        "--repository-name",
        repo,
        "--image-tag-mutability",
        "MUTABLE",
    ]);
    assert_eq!(m["imageTagMutability"], "MUTABLE");

    // Principals of a repository policy must be of accounts the registry knows.
    berth_admin(
        &reg,
        &["account", "create", "222222222222", "--name", "partner"],
    );
    let policy = r#"{"Version":"2012-10-17","Statement":[{"Sid":"ReadOnly","Effect":"Allow","Principal":{"AWS":"arn:aws:iam::222222222222:root"},"Action":["ecr:BatchGetImage","ecr:GetDownloadUrlForLayer"]}]}"#;
    let pf = file(tmp.path(), "policy.json", policy.as_bytes());
    aws.ok(&[
        "set-repository-policy",
        "--repository-name",
        repo,
        "--policy-text",
        &format!("file://{pf}"),
    ]);
    let got = aws.ok(&["get-repository-policy", "--repository-name", repo]);
    assert_eq!(got["policyText"], policy);

    // An image through the layer API (parts of 4 bytes) and put-image.
    let config =
        br#"{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[]}}"#;
    let layer = b"not really a tar, but a blob all the same";
    upload_layer(&aws, tmp.path(), repo, config, 16);
    upload_layer(&aws, tmp.path(), repo, layer, 4);
    let m = manifest(config, layer);
    let mf = file(tmp.path(), "manifest.json", m.as_bytes());
    let put = aws.ok(&[
        "put-image",
        "--repository-name",
        repo,
        "--image-tag",
        "v1",
        "--image-manifest",
        &format!("file://{mf}"),
    ]);
    let digest = put["image"]["imageId"]["imageDigest"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(digest, sha256_digest(m.as_bytes()));
    aws.ok(&[
        "put-image",
        "--repository-name",
        repo,
        "--image-tag",
        "v2",
        "--image-manifest",
        &format!("file://{mf}"),
    ]);
    aws.fails(
        &[
            "put-image",
            "--repository-name",
            repo,
            "--image-tag",
            "v2",
            "--image-manifest",
            &format!("file://{mf}"),
        ],
        "ImageAlreadyExistsException",
    );

    let list = aws.ok(&["list-images", "--repository-name", repo]);
    assert_eq!(
        list["imageIds"],
        json!([{"imageDigest": digest, "imageTag": "v1"}, {"imageDigest": digest, "imageTag": "v2"}])
    );
    let di = aws.ok(&["describe-images", "--repository-name", repo]);
    let detail = &di["imageDetails"][0];
    assert_eq!(detail["imageDigest"], digest);
    assert_eq!(detail["imageTags"], json!(["v1", "v2"]));
    assert_eq!(
        detail["imageSizeInBytes"],
        (config.len() + layer.len()) as u64
    );
    assert_eq!(
        detail["imageManifestMediaType"],
        "application/vnd.oci.image.manifest.v1+json"
    );
    assert!(detail["imagePushedAt"].is_number());

    let del = aws.ok(&[
        "batch-delete-image",
        "--repository-name",
        repo,
        "--image-ids",
        "imageTag=v2",
    ]);
    assert_eq!(
        del["imageIds"],
        json!([{"imageDigest": digest, "imageTag": "v2"}])
    );
    assert_eq!(del["failures"], json!([]));
    let del = aws.ok(&[
        "batch-delete-image",
        "--repository-name",
        repo,
        "--image-ids",
        "imageTag=nope",
    ]);
    assert_eq!(del["failures"][0]["failureCode"], "ImageNotFound");

    let e = aws.fails(
        &["delete-repository", "--repository-name", repo],
        "RepositoryNotEmptyException",
    );
    assert!(e.contains("still contains images"), "{e}");
    let gone = aws.ok(&["delete-repository", "--repository-name", repo, "--force"]);
    assert_eq!(gone["repository"]["repositoryName"], repo);
    aws.fails(
        &["describe-repositories", "--repository-names", repo],
        "RepositoryNotFoundException",
    );
    aws.fails(
        &["get-repository-policy", "--repository-name", repo],
        "RepositoryNotFoundException",
    );
}

/// `aws ecr get-login-password | docker login --username AWS --password-stdin` (§4.1),
/// then docker push and pull; a push that would move an immutable tag fails with
/// `TAG_INVALID` and ECR's message (§2.2), and pulling by digest still works.
#[test]
fn aws_get_login_password_logs_docker_in_to_push_and_pull() {
    const T: &str = "aws_get_login_password_logs_docker_in_to_push_and_pull";
    if !require(T, &["aws", "docker", "busybox-static"]) {
        return;
    }
    let reg = Registry::start_secured(&[]);
    let aws = Aws::admin(&reg);
    let d = docker();

    let token = aws.ok(&["get-authorization-token"]);
    assert_eq!(
        token["authorizationData"][0]["proxyEndpoint"],
        format!("http://{}", reg.host)
    );

    // The pipe exactly as users type it.
    let dk = d.cmd();
    let mut sh = Command::new("sh");
    for (k, v) in dk.get_envs() {
        if let Some(v) = v {
            sh.env(k, v);
        }
    }
    aws.env(&mut sh);
    sh.env("AWS", aws_cli())
        .env("EP", reg.url(""))
        .env("REG", &reg.host)
        .arg("-c")
        .arg(r#""$AWS" ecr get-login-password --endpoint-url "$EP" | docker login --username AWS --password-stdin "$REG""#);
    let o = run(&mut sh, SHORT);
    assert!(o.stdout.contains("Login Succeeded"), "{}", o.describe());

    aws.ok(&[
        "create-repository",
        "--repository-name",
        "team/imm",
        "--image-tag-mutability",
        "IMMUTABLE",
    ]);
    let first = reg.image("team/imm:1");
    let id_a = d.build_busybox_image(&first, &unique("ecr-a"));
    let digest_a = d.push(&first);

    // Another image under the same immutable tag.
    let id_b = d.build_busybox_image(&first, &unique("ecr-b"));
    assert_ne!(id_a, id_b);
    let o = run_unchecked(d.cmd().args(["push", &first]), LONG);
    assert!(
        !o.success(),
        "moving an immutable tag must fail:\n{}",
        o.describe()
    );
    let want = "The image tag '1' already exists in the 'team/imm' repository and cannot be overwritten because the repository is immutable.";
    let all = format!("{}{}", o.stdout, o.stderr);
    assert!(
        all.contains("tag invalid") && all.contains(want),
        "{}",
        o.describe()
    );
    // The same image pushes fine under a new tag, and the old one still pulls by digest.
    let second = reg.image("team/imm:2");
    run(d.cmd().args(["tag", &first, &second]), SHORT);
    d.push(&second);
    run(d.cmd().args(["rmi", "-f", &id_a, &id_b]), SHORT);
    let by_digest = reg.image(&format!("team/imm@{digest_a}"));
    run(d.cmd().args(["pull", &by_digest]), LONG);
    assert_eq!(d.image_id(&by_digest), id_a);
    run(d.cmd().args(["pull", &first]), LONG);
    assert_eq!(d.image_id(&first), id_a);

    // describe-images sees both, with the pull recorded.
    let di = aws.ok(&[
        "describe-images",
        "--repository-name",
        "team/imm",
        "--image-ids",
        &format!("imageDigest={digest_a}"),
    ]);
    assert_eq!(di["imageDetails"][0]["imageTags"], json!(["1"]));
    assert!(
        di["imageDetails"][0]["lastRecordedPullTime"].is_number(),
        "{di}"
    );
    run(d.cmd().args(["logout", &reg.host]), SHORT);
}

/// §1.2 and §2.1: a wrong secret, an unknown key, a bad repository name and an
/// over-long tag are refused with ECR's error types and messages that say what to fix.
#[test]
fn aws_cli_refuses_bad_credentials_and_bad_input() {
    const T: &str = "aws_cli_refuses_bad_credentials_and_bad_input";
    if !require(T, &["aws"]) {
        return;
    }
    let reg = Registry::start_secured(&[]);
    let aws = Aws::admin(&reg);
    let tmp = tempfile::tempdir().unwrap();
    let creds = fs::read_to_string(&aws.credentials).unwrap();
    let wrong_secret = creds
        .lines()
        .map(|l| {
            if l.starts_with("aws_secret_access_key") {
                "aws_secret_access_key = wrongwrongwrongwrongwrongwrongwrongwrong".to_string()
            } else {
                l.to_string()
            }
        })
        .collect::<Vec<_>>()
        .join("\n");
    let bad = Aws::with_credentials(
        &reg,
        file(tmp.path(), "wrong", wrong_secret.as_bytes()).into(),
    );
    let e = bad.fails(&["describe-repositories"], "InvalidSignatureException");
    assert!(
        e.contains("The request signature we calculated does not match"),
        "{e}"
    );
    let nobody = "[default]\naws_access_key_id = AKIAIAMNOBODY0000000\naws_secret_access_key = x\n";
    let unknown =
        Aws::with_credentials(&reg, file(tmp.path(), "unknown", nobody.as_bytes()).into());
    let e = unknown.fails(&["describe-repositories"], "UnrecognizedClientException");
    assert!(
        e.contains("The security token included in the request is invalid"),
        "{e}"
    );

    let e = aws.fails(
        &["create-repository", "--repository-name", "Team/App"],
        "InvalidParameterException",
    );
    assert!(
        e.contains("Invalid parameter at 'repositoryName' failed to satisfy constraint"),
        "{e}"
    );
    aws.ok(&["create-repository", "--repository-name", "team/app"]);
    let long = "t".repeat(301);
    let e = aws.fails(
        &[
            "batch-get-image",
            "--repository-name",
            "team/app",
            "--image-ids",
            &format!("imageTag={long}"),
        ],
        "InvalidParameterException",
    );
    assert!(
        e.contains("Member must have length less than or equal to 300"),
        "{e}"
    );
    let e = aws.fails(
        &["describe-pull-through-cache-rules"],
        "UnsupportedOperationException",
    );
    assert!(e.contains("pull-through cache"), "{e}");
}

/// Issue 17 with the real AWS CLI, on one server:
/// - SetRepositoryPolicy accepts repeated `Sid`s (ECR does); PutRegistryPolicy takes any
///   ECR action (the registry policy's V2 scope, "all ECR actions");
/// - a repository policy naming a principal of an account the registry does not know, or
///   a `Resource` that is not an ECR ARN, is ECR's `InvalidParameterException`
///   "Invalid parameter at 'PolicyText' failed to satisfy constraint: 'Invalid repository
///   policy provided'", and nothing is stored;
/// - operations of capabilities not built yet look the repository up first:
///   RepositoryNotFoundException for a missing one, UnsupportedOperationException else;
/// - DeleteRepository --force takes the repository policy with it (issue 16, one
///   transaction): a repository re-created under the name has none
///   (RepositoryPolicyNotFoundException).
#[test]
fn aws_cli_policy_checks_and_unbuilt_operations_follow_ecr() {
    const T: &str = "aws_cli_policy_checks_and_unbuilt_operations_follow_ecr";
    if !require(T, &["aws"]) {
        return;
    }
    let reg = Registry::start_secured(&[]);
    let aws = Aws::admin(&reg);
    let tmp = tempfile::tempdir().unwrap();
    let repo = "team/policies";
    aws.ok(&["create-repository", "--repository-name", repo]);
    let account = aws.ok(&["describe-registry"])["registryId"]
        .as_str()
        .unwrap()
        .to_string();
    let set = |name: &str, policy: &str| {
        let pf = file(tmp.path(), name, policy.as_bytes());
        vec![
            "set-repository-policy".to_string(),
            "--repository-name".into(),
            repo.into(),
            "--policy-text".into(),
            format!("file://{pf}"),
        ]
    };

    // Repeated Sids are accepted, and the policy is returned byte for byte.
    let twice = format!(
        r#"{{"Version":"2012-10-17","Statement":[{{"Sid":"Pull","Effect":"Allow","Principal":{{"AWS":"arn:aws:iam::{account}:root"}},"Action":"ecr:BatchGetImage"}},{{"Sid":"Pull","Effect":"Allow","Principal":{{"AWS":"arn:aws:iam::{account}:root"}},"Action":"ecr:GetDownloadUrlForLayer"}}]}}"#
    );
    let v = set("twice.json", &twice);
    aws.ok(&v.iter().map(String::as_str).collect::<Vec<_>>());
    assert_eq!(
        aws.ok(&["get-repository-policy", "--repository-name", repo])["policyText"],
        twice.as_str()
    );

    // Outside the registry: refused with ECR's wording, and the stored policy is kept.
    for (file_name, policy, detail) in [
        (
            "unknown-account.json",
            r#"{"Version":"2012-10-17","Statement":[{"Sid":"X","Effect":"Allow","Principal":{"AWS":"arn:aws:iam::999999999999:role/Deployer"},"Action":"ecr:BatchGetImage"}]}"#.to_string(),
            "is in account 999999999999, which this registry does not know",
        ),
        (
            "not-ecr.json",
            format!(r#"{{"Version":"2012-10-17","Statement":[{{"Effect":"Allow","Principal":{{"AWS":"{account}"}},"Action":"ecr:BatchGetImage","Resource":"arn:aws:s3:::bucket/*"}}]}}"#),
            r#"Resource "arn:aws:s3:::bucket/*" is not an ECR ARN"#,
        ),
    ] {
        let v = set(file_name, &policy);
        let e = aws.fails(
            &v.iter().map(String::as_str).collect::<Vec<_>>(),
            "InvalidParameterException",
        );
        assert!(
            e.contains(
                "Invalid parameter at 'PolicyText' failed to satisfy constraint: \
                 'Invalid repository policy provided'"
            ) && e.contains(detail),
            "{file_name}: {e}"
        );
    }
    assert_eq!(
        aws.ok(&["get-repository-policy", "--repository-name", repo])["policyText"],
        twice.as_str()
    );

    // The registry policy's V2 scope: every ECR action may be granted.
    let registry = format!(
        r#"{{"Version":"2012-10-17","Statement":[{{"Sid":"All","Effect":"Allow","Principal":{{"AWS":"arn:aws:iam::{account}:root"}},"Action":["ecr:*","ecr:StartImageScan","ecr:PutLifecyclePolicy","ecr:CreatePullThroughCacheRule"],"Resource":"arn:aws:ecr:us-east-1:{account}:repository/*"}}]}}"#
    );
    let pf = file(tmp.path(), "registry.json", registry.as_bytes());
    aws.ok(&[
        "put-registry-policy",
        "--policy-text",
        &format!("file://{pf}"),
    ]);
    assert_eq!(
        aws.ok(&["get-registry-policy"])["policyText"],
        registry.as_str()
    );
    aws.ok(&["delete-registry-policy"]);

    // Operations not built yet: the repository is looked up first.
    // (Lifecycle policies, replication and image scanning are served now:
    // tests/lifecycle.rs, tests/replication.rs, tests/scanning.rs.)
    let calls: [Vec<&str>; 1] = [vec![
        "describe-image-signing-status",
        "--image-id",
        "imageTag=latest",
    ]];
    for call in &calls {
        let mut missing = call.clone();
        missing.extend(["--repository-name", "team/missing"]);
        let e = aws.fails(&missing, "RepositoryNotFoundException");
        assert!(
            e.contains(&format!(
                "The repository with name 'team/missing' does not exist in the registry with id '{account}'"
            )),
            "{}: {e}",
            call[0]
        );
        let mut present = call.clone();
        present.extend(["--repository-name", repo]);
        aws.fails(&present, "UnsupportedOperationException");
    }

    // DeleteRepository --force with an image and a policy, then the name again: no policy.
    let config =
        br#"{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[]}}"#;
    let layer = b"a layer, so the repository is not empty";
    upload_layer(&aws, tmp.path(), repo, config, 1 << 20);
    upload_layer(&aws, tmp.path(), repo, layer, 1 << 20);
    let m = manifest(config, layer);
    let mf = file(tmp.path(), "manifest.json", m.as_bytes());
    aws.ok(&[
        "put-image",
        "--repository-name",
        repo,
        "--image-tag",
        "v1",
        "--image-manifest",
        &format!("file://{mf}"),
    ]);
    aws.fails(
        &["delete-repository", "--repository-name", repo],
        "RepositoryNotEmptyException",
    );
    aws.ok(&["delete-repository", "--repository-name", repo, "--force"]);
    aws.ok(&["create-repository", "--repository-name", repo]);
    let e = aws.fails(
        &["get-repository-policy", "--repository-name", repo],
        "RepositoryPolicyNotFoundException",
    );
    assert!(e.contains("Repository policy does not exist"), "{e}");
}

/// `berth admin --data-dir <the server's> <args>`, which must succeed; its stdout.
fn berth_admin(reg: &Registry, args: &[&str]) -> String {
    let mut c = Command::new(env!("CARGO_BIN_EXE_berth"));
    c.arg("admin")
        .arg("--data-dir")
        .arg(reg.data_dir())
        .args(args);
    run(&mut c, SHORT).stdout
}

/// `docker login` to `reg` as `user` with `password` on stdin (never on a command line).
fn docker_login(d: &Docker, reg: &Registry, user: &str, password: &str) -> Output {
    let mut sh = Command::new("sh");
    for (k, v) in d.cmd().get_envs() {
        if let Some(v) = v {
            sh.env(k, v);
        }
    }
    sh.env("PW", password)
        .env("U", user)
        .env("REG", &reg.host)
        .arg("-c")
        .arg(r#"printf '%s' "$PW" | docker login --username "$U" --password-stdin "$REG""#);
    run_unchecked(&mut sh, SHORT)
}

/// The value of `key` in an AWS shared-credentials text.
fn credential(text: &str, key: &str) -> String {
    text.lines()
        .filter_map(|l| l.split_once('='))
        .find(|(k, _)| k.trim() == key)
        .map(|(_, v)| v.trim().to_string())
        .unwrap_or_else(|| panic!("no {key} in credentials:\n{text}"))
}

/// The repository policy of issue 4, set with `aws ecr set-repository-policy
/// --policy-text file://…` on `production/myapp`, governs real `docker pull`s (§2.8): the
/// service principal `ecs-tasks.amazonaws.com` (with its access key) and a session of
/// `arn:aws:iam::222222222222:role/ECSTaskExecutionRole` (cross-account: its identity
/// policy allows, and the repository policy names it) pull; a user of this account and
/// another role of account 222222222222, which it does not name, are refused; the
/// service principal may not push, since the policy grants only pull actions.
#[test]
fn aws_repository_policy_from_the_issue_governs_real_pulls() {
    const T: &str = "aws_repository_policy_from_the_issue_governs_real_pulls";
    if !require(T, &["aws", "docker", "busybox-static"]) {
        return;
    }
    let reg = Registry::start_secured(&[]);
    let aws = Aws::admin(&reg);
    let d = docker();
    let tmp = tempfile::tempdir().unwrap();
    let repo = "production/myapp";
    let image = reg.image(&format!("{repo}:1"));

    // The administrator creates the repository, pushes an image and sets the policy.
    aws.ok(&["create-repository", "--repository-name", repo]);
    let admin_creds = fs::read_to_string(&aws.credentials).unwrap();
    let pw = run(&mut aws.cmd(&["get-login-password"]), SHORT).stdout;
    let o = docker_login(d, &reg, "AWS", pw.trim());
    assert!(o.success(), "{}", o.describe());
    let id = d.build_busybox_image(&image, &unique("myapp"));
    let digest = d.push(&image);
    // The policy names a role of account 222222222222, which must be known first.
    berth_admin(
        &reg,
        &["account", "create", "222222222222", "--name", "partner"],
    );
    let policy = r#"{"Version":"2012-10-17","Statement":[{"Sid":"AllowECSPull","Effect":"Allow","Principal":{"Service":"ecs-tasks.amazonaws.com"},"Action":["ecr:GetDownloadUrlForLayer","ecr:BatchGetImage","ecr:BatchCheckLayerAvailability"]},{"Sid":"AllowCrossAccountPull","Effect":"Allow","Principal":{"AWS":"arn:aws:iam::222222222222:role/ECSTaskExecutionRole"},"Action":["ecr:GetDownloadUrlForLayer","ecr:BatchGetImage"]}]}"#;
    let pf = file(tmp.path(), "policy.json", policy.as_bytes());
    aws.ok(&[
        "set-repository-policy",
        "--repository-name",
        repo,
        "--policy-text",
        &format!("file://{pf}"),
    ]);
    assert_eq!(
        aws.ok(&["get-repository-policy", "--repository-name", repo])["policyText"],
        policy
    );
    drop(admin_creds);

    // The principals: the ECS service with an access key; account 222222222222 with the
    // role the policy names and one it does not, both allowed by their identity policy
    // to log in and pull; a user of this account allowed only to log in.
    let login_and_pull = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":["ecr:GetAuthorizationToken","ecr:BatchGetImage","ecr:GetDownloadUrlForLayer","ecr:BatchCheckLayerAvailability"],"Resource":"*"}]}"#;
    berth_admin(&reg, &["service", "create", "ecs-tasks.amazonaws.com"]);
    let ecs = berth_admin(
        &reg,
        &["key", "create", "--service", "ecs-tasks.amazonaws.com"],
    );
    let mut sessions = Vec::new();
    for role in ["ECSTaskExecutionRole", "OtherRole"] {
        berth_admin(&reg, &["role", "create", role, "--account", "222222222222"]);
        berth_admin(
            &reg,
            &[
                "policy",
                "put",
                "--role",
                role,
                "--account",
                "222222222222",
                "--name",
                "pull",
                "--document",
                login_and_pull,
            ],
        );
        let creds = berth_admin(
            &reg,
            &[
                "role",
                "assume",
                role,
                "--account",
                "222222222222",
                "--session-name",
                "task",
            ],
        );
        sessions.push(file(
            tmp.path(),
            &format!("{role}.credentials"),
            creds.as_bytes(),
        ));
    }
    berth_admin(&reg, &["user", "create", "intruder"]);
    berth_admin(
        &reg,
        &[
            "policy",
            "put",
            "--user",
            "intruder",
            "--name",
            "login",
            "--document",
            r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"ecr:GetAuthorizationToken","Resource":"*"}]}"#,
        ],
    );
    let intruder = berth_admin(&reg, &["key", "create", "--user", "intruder"]);
    let intruder = file(tmp.path(), "intruder.credentials", intruder.as_bytes());

    let pull = |who: &str| {
        let _ = run_unchecked(d.cmd().args(["rmi", "-f", &image, &id]), SHORT);
        let o = run_unchecked(d.cmd().args(["pull", &image]), LONG);
        eprintln!("pull as {who}: {}", o.describe());
        o
    };
    let login_with_aws = |creds: &str| {
        let a = Aws::with_credentials(&reg, PathBuf::from(creds));
        let pw = run(&mut a.cmd(&["get-login-password"]), SHORT).stdout;
        let o = docker_login(d, &reg, "AWS", pw.trim());
        assert!(o.success(), "{}", o.describe());
    };

    // Named in the policy: the ECS service (Basic with its access key) pulls... once
    // the server has reloaded the identities `berth admin` wrote (within a second).
    let mut tries = 0;
    let o = loop {
        let o = docker_login(
            d,
            &reg,
            &credential(&ecs, "aws_access_key_id"),
            &credential(&ecs, "aws_secret_access_key"),
        );
        tries += 1;
        if o.success() || tries == 20 {
            break o;
        }
        std::thread::sleep(std::time::Duration::from_millis(250));
    };
    assert!(o.success(), "{}", o.describe());
    let o = pull("ecs-tasks.amazonaws.com");
    assert!(o.success(), "{}", o.describe());
    assert_eq!(d.image_id(&image), id);
    // ...but may not push.
    let other_tag = reg.image(&format!("{repo}:from-ecs"));
    run(d.cmd().args(["tag", &image, &other_tag]), SHORT);
    let o = run_unchecked(d.cmd().args(["push", &other_tag]), LONG);
    assert!(!o.success(), "{}", o.describe());
    assert!(
        format!("{}{}", o.stdout, o.stderr).contains("not authorized to perform"),
        "{}",
        o.describe()
    );

    // Named in the policy: a session of the cross-account role pulls.
    login_with_aws(&sessions[0]);
    let o = pull("ECSTaskExecutionRole");
    assert!(o.success(), "{}", o.describe());
    assert_eq!(d.image_id(&image), id);
    let repo_digests = run(
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
        repo_digests.contains(&digest),
        "{repo_digests} lacks {digest}"
    );

    // Not named: another role of that account, and a user of this account.
    for (who, creds) in [("OtherRole", &sessions[1]), ("intruder", &intruder)] {
        login_with_aws(creds);
        let o = pull(who);
        assert!(!o.success(), "{who} must not pull:\n{}", o.describe());
        let all = format!("{}{}", o.stdout, o.stderr);
        assert!(
            all.contains("not authorized to perform: ecr:BatchGetImage") || all.contains("denied"),
            "{who}: {}",
            o.describe()
        );
    }
    run(d.cmd().args(["logout", &reg.host]), SHORT);
}

/// ECR_REFERENCE §1.5 (PutImage): a manifest without `mediaType`, pushed without
/// `--image-manifest-media-type`, is refused with ECR's `InvalidParameterException`
/// naming `imageManifestMediaType`; given the media type, the same manifest is stored.
#[test]
fn aws_put_image_without_any_media_type_is_refused() {
    const T: &str = "aws_put_image_without_any_media_type_is_refused";
    if !require(T, &["aws"]) {
        return;
    }
    let reg = Registry::start_secured(&[]);
    let aws = Aws::admin(&reg);
    let tmp = tempfile::tempdir().unwrap();
    aws.ok(&["create-repository", "--repository-name", "team/bare"]);
    let (config, layer) = (br#"{"os":"linux"}"#.as_slice(), b"bare layer".as_slice());
    upload_layer(&aws, tmp.path(), "team/bare", config, 1 << 20);
    upload_layer(&aws, tmp.path(), "team/bare", layer, 1 << 20);
    let mut m: Value = serde_json::from_str(&manifest(config, layer)).unwrap();
    m.as_object_mut().unwrap().remove("mediaType");
    let bare = m.to_string();
    let e = aws.fails(
        &[
            "put-image",
            "--repository-name",
            "team/bare",
            "--image-tag",
            "v1",
            "--image-manifest",
            &bare,
        ],
        "InvalidParameterException",
    );
    assert!(
        e.contains("Invalid parameter at 'imageManifestMediaType'"),
        "{e}"
    );
    let r = aws.ok(&[
        "put-image",
        "--repository-name",
        "team/bare",
        "--image-tag",
        "v1",
        "--image-manifest",
        &bare,
        "--image-manifest-media-type",
        "application/vnd.oci.image.manifest.v1+json",
    ]);
    assert_eq!(
        r["image"]["imageId"]["imageDigest"],
        sha256_digest(bare.as_bytes())
    );
}

/// Issue 17: with `--public-host`, the ECR API names the registry by that name rather
/// than the address the client used: `repositoryUri` is `<host>/<repository>`
/// (ECR_REFERENCE: `<registryId>.dkr.ecr.<region>.amazonaws.com/<name>`) in
/// CreateRepository and DescribeRepositories, and `proxyEndpoint` of
/// GetAuthorizationToken is `https://<host>` (ECR's form); without a scheme the setting
/// means `http://`, and without the setting the request's `Host` is used (checked in
/// `aws_get_login_password_logs_docker_in_to_push_and_pull`).
#[test]
fn aws_cli_sees_the_configured_public_host() {
    const T: &str = "aws_cli_sees_the_configured_public_host";
    if !require(T, &["aws"]) {
        return;
    }
    let name = "111111111111.dkr.ecr.us-east-1.amazonaws.com";
    let reg = Registry::start_secured(&[
        "--account-id",
        "111111111111",
        "--public-host",
        &format!("https://{name}"),
    ]);
    let aws = Aws::admin(&reg);
    let created = aws.ok(&["create-repository", "--repository-name", "team/app"]);
    assert_eq!(
        created["repository"]["repositoryUri"],
        format!("{name}/team/app")
    );
    let described = aws.ok(&["describe-repositories"]);
    assert_eq!(
        described["repositories"][0]["repositoryUri"],
        format!("{name}/team/app"),
        "{described}"
    );
    let token = aws.ok(&["get-authorization-token"]);
    assert_eq!(
        token["authorizationData"][0]["proxyEndpoint"],
        format!("https://{name}")
    );
    drop(reg);

    // host:port without a scheme: plain HTTP, as Berth serves.
    let reg = Registry::start_secured(&["--public-host", "registry.internal:8443"]);
    let aws = Aws::admin(&reg);
    aws.ok(&["create-repository", "--repository-name", "team/app"]);
    let described = aws.ok(&["describe-repositories", "--repository-names", "team/app"]);
    assert_eq!(
        described["repositories"][0]["repositoryUri"],
        "registry.internal:8443/team/app"
    );
    let token = aws.ok(&["get-authorization-token"]);
    assert_eq!(
        token["authorizationData"][0]["proxyEndpoint"],
        "http://registry.internal:8443"
    );
}
