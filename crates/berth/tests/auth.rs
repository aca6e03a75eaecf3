//! Identity, `docker login` and IAM-style policies with real clients: the "Scenarios that
//! must be CI tests" of issue 3, with the behaviour of ECR_REFERENCE §2.8 (policy
//! evaluation) and §4 (authorization tokens, the `/v2/` challenge).
//!
//! Every test starts its own secured `berth serve` (no anonymous access), manages
//! identities and policies with `berth admin` while the server runs, and checks what a
//! user of docker, podman, skopeo, curl or the AWS CLI sees: the digest pulled equals the
//! digest pushed, and a refusal carries AWS's message (`User: <arn> is not authorized to
//! perform: <action> on resource: <arn> because …`), both in the client's error and in the
//! HTTP answer.
//!
//! `berth admin` writes to the database and the server rereads it within about a second.
//! [`Secured::sync`] waits for that instead of sleeping: it creates an access key and polls
//! until the server accepts it. The server loads all identity tables in one read
//! transaction, so once that key works every earlier change is in force too.
//!
//! Run: `cargo test -p berth --test auth -- --test-threads=2`. The clients are installed
//! by `.ci/install-clients`; outside CI a test whose client is missing prints
//! `SKIPPED <test>: <tool> not installed` and passes. Identities are Berth's own, so with
//! `BERTH_TEST_TARGET=distribution` these tests print a note and pass.

mod common;

use std::cell::Cell;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;
use common::*;
use serde_json::{json, Value};

/// The registry's own account in most tests (issue 3's example IDs).
const ACCOUNT: &str = "111111111111";
/// The other account of the cross-account scenarios.
const OTHER_ACCOUNT: &str = "222222222222";
const REGION: &str = "us-east-1";
const SERVICE: &str = "ecs-tasks.amazonaws.com";
/// The user whose fresh access keys [`Secured::sync`] waits for.
const SYNC_USER: &str = "berth-test-sync";

/// The actions of a pull (issue 3 scenario 1; ECR's "AmazonEC2ContainerRegistryPullOnly").
const PULL: [&str; 3] = [
    "ecr:GetDownloadUrlForLayer",
    "ecr:BatchGetImage",
    "ecr:BatchCheckLayerAvailability",
];
/// The actions of a push into an existing repository.
const PUSH: [&str; 5] = [
    "ecr:BatchCheckLayerAvailability",
    "ecr:InitiateLayerUpload",
    "ecr:UploadLayerPart",
    "ecr:CompleteLayerUpload",
    "ecr:PutImage",
];

fn berth() -> Command {
    Command::new(env!("CARGO_BIN_EXE_berth"))
}

/// `require`, and these tests only make sense against berth.
fn ready(test: &str, tools: &[&str]) -> bool {
    if Target::from_env() == Target::Distribution {
        note(
            test,
            "identities and policies are Berth's own (distribution has none): not run",
        );
        return false;
    }
    require(test, tools)
}

fn repo_arn(account: &str, repo: &str) -> String {
    format!("arn:aws:ecr:{REGION}:{account}:repository/{repo}")
}

fn user_arn(account: &str, name: &str) -> String {
    format!("arn:aws:iam::{account}:user/{name}")
}

// ---------------------------------------------------------------------------------
// AWS's access-denied messages.
// ---------------------------------------------------------------------------------

/// Why IAM refused: selects the end of AWS's message (IAM User Guide, "Troubleshooting
/// access denied error messages").
#[derive(Clone, Copy, Debug)]
enum Why {
    NoResourcePolicy,
    NoIdentityPolicy,
    IdentityDeny,
    ResourceDeny,
}

/// `User: <principal> is not authorized to perform: <action> on resource: <resource> …`
fn denial(principal: &str, action: &str, resource: &str, why: Why) -> String {
    let end = match why {
        Why::NoResourcePolicy => {
            format!("because no resource-based policy allows the {action} action")
        }
        Why::NoIdentityPolicy => {
            format!("because no identity-based policy allows the {action} action")
        }
        Why::IdentityDeny => "with an explicit deny in an identity-based policy".to_string(),
        Why::ResourceDeny => "with an explicit deny in a resource-based policy".to_string(),
    };
    format!(
        "User: {principal} is not authorized to perform: {action} on resource: {resource} {end}"
    )
}

// ---------------------------------------------------------------------------------
// Credentials.
// ---------------------------------------------------------------------------------

/// An access key (and, for an assumed role, its session token).
#[derive(Clone, Debug)]
struct Creds {
    id: String,
    secret: String,
    session_token: Option<String>,
}

impl Creds {
    /// From `berth admin key create|role assume --format json`.
    fn from_json(o: &Output) -> Creds {
        let whole = parse_json(o);
        // `role assume` prints STS's shape ({"Credentials": {…}}), `key create` the key.
        let v = if whole["Credentials"].is_object() {
            whole["Credentials"].clone()
        } else {
            whole
        };
        let field = |k: &str| {
            v[k].as_str()
                .unwrap_or_else(|| panic!("no {k} in the output of:\n{}", o.describe()))
                .to_string()
        };
        Creds {
            id: field("AccessKeyId"),
            secret: field("SecretAccessKey"),
            session_token: v["SessionToken"].as_str().map(str::to_string),
        }
    }

    /// From an AWS shared-credentials file's `[default]` profile.
    fn from_file(path: &Path) -> Creds {
        let text =
            fs::read_to_string(path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()));
        let field = |k: &str| {
            text.lines()
                .filter_map(|l| l.split_once('='))
                .find(|(name, _)| name.trim() == k)
                .map(|(_, v)| v.trim().to_string())
                .unwrap_or_else(|| panic!("no {k} in {}:\n{text}", path.display()))
        };
        Creds {
            id: field("aws_access_key_id"),
            secret: field("aws_secret_access_key"),
            session_token: None,
        }
    }

    /// The access key as a Basic credential (`<access key ID>:<secret>`).
    fn login(&self) -> Login {
        Login {
            user: self.id.clone(),
            password: self.secret.clone(),
        }
    }
}

/// What a client sends as HTTP Basic credentials.
#[derive(Clone, Debug)]
struct Login {
    user: String,
    password: String,
}

impl Login {
    /// `AWS` and an authorization-token password (what `docker login -u AWS` sends).
    fn token(password: &str) -> Login {
        Login {
            user: "AWS".into(),
            password: password.into(),
        }
    }

    /// `user:password`, for `--creds`.
    fn pair(&self) -> String {
        format!("{}:{}", self.user, self.password)
    }

    /// The `Authorization` header value.
    fn header(&self) -> String {
        format!("Basic {}", B64.encode(self.pair()))
    }
}

/// How a client authenticates to the registry.
#[derive(Clone, Copy)]
enum As<'a> {
    /// No credentials at all (`--no-creds`).
    Anonymous,
    /// `--creds user:password`.
    Creds(&'a Login),
    /// What `login` stored in this auth file.
    AuthFile(&'a Path),
}

// ---------------------------------------------------------------------------------
// A secured berth and `berth admin`.
// ---------------------------------------------------------------------------------

/// A running `berth serve` without anonymous access, and its bootstrap administrator.
struct Secured {
    reg: Registry,
    account: String,
    /// The key `berth serve` wrote to `<data-dir>/admin-credentials`.
    admin: Creds,
    sync_user: Cell<bool>,
}

impl Secured {
    fn start(account: &str, extra: &[&str]) -> Secured {
        let mut args = vec!["--account-id", account];
        args.extend_from_slice(extra);
        let reg = Registry::start_secured(&args);
        let admin = Creds::from_file(&reg.data_dir().join("admin-credentials"));
        Secured {
            reg,
            account: account.to_string(),
            admin,
            sync_user: Cell::new(false),
        }
    }

    /// `http://127.0.0.1:<port>`
    fn url(&self) -> String {
        self.reg.url("")
    }

    fn image(&self, name: &str) -> String {
        self.reg.image(name)
    }

    fn arn(&self, repo: &str) -> String {
        repo_arn(&self.account, repo)
    }

    fn user_arn(&self, name: &str) -> String {
        user_arn(&self.account, name)
    }

    fn admin_cmd(&self, args: &[&str]) -> Command {
        let mut c = berth();
        c.arg("admin")
            .arg("--data-dir")
            .arg(self.reg.data_dir())
            .args(args);
        c
    }

    /// `berth admin …`, which must succeed.
    fn admin(&self, args: &[&str]) -> Output {
        run(&mut self.admin_cmd(args), SHORT)
    }

    fn admin_unchecked(&self, args: &[&str]) -> Output {
        run_unchecked(&mut self.admin_cmd(args), SHORT)
    }

    /// `key create <owner…> --format json`.
    fn key(&self, owner: &[&str]) -> Creds {
        let mut args = vec!["key", "create"];
        args.extend_from_slice(owner);
        args.extend(["--format", "json"]);
        Creds::from_json(&self.admin(&args))
    }

    /// Creates user `name` in `account` (default: the registry's) with an access key.
    fn user(&self, name: &str, account: Option<&str>) -> Creds {
        let account = account.unwrap_or(&self.account);
        self.admin(&["user", "create", name, "--account", account]);
        self.key(&["--user", name, "--account", account])
    }

    /// `policy put <owner…> --name <name> --document <doc>`.
    fn put_identity_policy(&self, owner: &[&str], name: &str, doc: &Value) {
        let text = doc.to_string();
        let mut args = vec!["policy", "put"];
        args.extend_from_slice(owner);
        args.extend(["--name", name, "--document", &text]);
        self.admin(&args);
    }

    fn set_repository_policy(&self, repo: &str, doc: &Value) {
        self.admin(&[
            "repository-policy",
            "set",
            repo,
            "--document",
            &doc.to_string(),
        ]);
    }

    /// Waits until the server applies every `berth admin` change made so far: creates an
    /// access key and polls `GET /v2/` with it until it is accepted (see the module docs).
    fn sync(&self) {
        if !self.sync_user.get() {
            self.admin(&["user", "create", SYNC_USER]);
            self.sync_user.set(true);
        }
        let key = self.key(&["--user", SYNC_USER]).login();
        let start = Instant::now();
        loop {
            let r = http(
                "GET",
                &self.reg.url("/v2/"),
                &[("Authorization", &key.header())],
                None,
            );
            if r.status == 200 {
                return;
            }
            if start.elapsed() > Duration::from_secs(10) {
                panic!(
                    "the server did not apply `berth admin` changes within 10 s (it should \
                     within about 1 s): a new access key is still refused:\n{}",
                    r.describe()
                );
            }
            thread::sleep(Duration::from_millis(100));
        }
    }

    /// Pushes `layout`'s image to `dest` (`repo:tag`) as the administrator; returns the
    /// digest skopeo wrote.
    fn push(&self, layout: &Layout, dest: &str) -> String {
        let admin = self.admin.login();
        let o = skopeo_push(layout, &self.image(dest), As::Creds(&admin));
        assert!(
            o.success(),
            "the administrator must be able to push {dest}:\n{}",
            o.describe()
        );
        layout.digest.clone()
    }

    /// `policy simulate`: (allowed, stdout).
    fn simulate(&self, principal: &str, action: &str, resource: &str) -> (bool, String) {
        let o = self.admin_unchecked(&[
            "policy",
            "simulate",
            "--principal",
            principal,
            "--action",
            action,
            "--resource",
            resource,
        ]);
        let allowed = o.stdout.starts_with("allow");
        assert_eq!(
            o.success(),
            allowed,
            "policy simulate must exit 0 exactly when it prints allow:\n{}",
            o.describe()
        );
        assert!(
            allowed || o.stdout.starts_with("deny"),
            "policy simulate printed neither allow nor deny:\n{}",
            o.describe()
        );
        (allowed, o.stdout)
    }
}

// ---------------------------------------------------------------------------------
// Policies.
// ---------------------------------------------------------------------------------

fn identity_policy(effect: &str, actions: &[&str], resource: &str) -> Value {
    json!({
        "Version": "2012-10-17",
        "Statement": [{"Sid": format!("{effect}Ecr"), "Effect": effect, "Action": actions, "Resource": resource}]
    })
}

fn statement(sid: &str, effect: &str, principal: Value, actions: &[&str]) -> Value {
    json!({"Sid": sid, "Effect": effect, "Principal": principal, "Action": actions})
}

fn resource_policy(statements: Vec<Value>) -> Value {
    json!({"Version": "2012-10-17", "Statement": statements})
}

// ---------------------------------------------------------------------------------
// Images and clients.
// ---------------------------------------------------------------------------------

/// A one-layer image in an OCI layout (umoci), tagged `v1`, unique to `nonce`.
struct Layout {
    _dir: tempfile::TempDir,
    path: PathBuf,
    digest: String,
}

impl Layout {
    fn new(nonce: &str) -> Layout {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("oci");
        let content = format!("{nonce}\n");
        let digest = umoci_image(
            &path,
            "v1",
            "amd64",
            &[("etc/berth-test", content.as_bytes())],
        );
        Layout {
            _dir: dir,
            path,
            digest,
        }
    }
}

fn auth_args(c: &mut Command, side: &str, who: As<'_>) {
    match who {
        As::Anonymous => c.arg(format!("--{side}-no-creds")),
        As::Creds(l) => c.arg(format!("--{side}-creds")).arg(l.pair()),
        As::AuthFile(p) => c.arg(format!("--{side}-authfile")).arg(p),
    };
}

/// `skopeo copy oci:<layout>:v1 docker://<dest>`.
fn skopeo_push(layout: &Layout, dest: &str, who: As<'_>) -> Output {
    let mut c = skopeo();
    c.args(["copy", "--dest-tls-verify=false"]);
    auth_args(&mut c, "dest", who);
    c.arg(format!("oci:{}:v1", layout.path.display()))
        .arg(format!("docker://{dest}"));
    run_unchecked(&mut c, LONG)
}

/// `skopeo copy docker://<src> oci:<fresh layout>:v1` (manifest and every blob): the
/// output, and the digest pulled when it worked.
fn skopeo_pull(src: &str, who: As<'_>) -> (Output, Option<String>) {
    let dir = tempfile::tempdir().expect("temp dir");
    let dest = dir.path().join("pulled");
    let mut c = skopeo();
    c.args(["copy", "--preserve-digests", "--src-tls-verify=false"]);
    auth_args(&mut c, "src", who);
    c.arg(format!("docker://{src}"))
        .arg(format!("oci:{}:v1", dest.display()));
    let o = run_unchecked(&mut c, LONG);
    let digest = o.success().then(|| layout_manifest_digest(&dest, "v1"));
    (o, digest)
}

fn assert_pulls(src: &str, who: As<'_>, want: &str, caller: &str) {
    let (o, digest) = skopeo_pull(src, who);
    assert!(
        o.success(),
        "{caller} must be able to pull {src}:\n{}",
        o.describe()
    );
    assert_eq!(
        digest.as_deref(),
        Some(want),
        "{caller} pulled another digest of {src} than was pushed"
    );
}

/// The command failed and its error output says each of `reasons`.
fn assert_refused(o: &Output, what: &str, reasons: &[&str]) {
    assert!(
        !o.success(),
        "{what} must be refused, but it worked:\n{}",
        o.describe()
    );
    for r in reasons {
        assert!(
            o.stderr.contains(r),
            "{what} was refused, but the client's error does not say {r:?}:\n{}",
            o.describe()
        );
    }
}

/// Runs a `… login … --password-stdin` command with `password` on its standard input.
fn stdin_login(cmd: &Command, password: &str) -> Output {
    let f = tempfile::NamedTempFile::new().expect("temp file");
    fs::write(f.path(), password).expect("write password file");
    run_unchecked(&mut with_stdin_from(cmd, f.path()), SHORT)
}

/// A `berth login` (or AWS CLI) command with no credentials from the environment except
/// those set afterwards.
fn clean_aws_env(c: &mut Command) {
    for k in [
        "AWS_ACCESS_KEY_ID",
        "AWS_SECRET_ACCESS_KEY",
        "AWS_SESSION_TOKEN",
        "AWS_PROFILE",
        "AWS_REGION",
        "AWS_DEFAULT_REGION",
        "BERTH_REGISTRY",
    ] {
        c.env_remove(k);
    }
    c.env(
        "AWS_SHARED_CREDENTIALS_FILE",
        "/nonexistent/berth-test/credentials",
    )
    .env("AWS_CONFIG_FILE", "/nonexistent/berth-test/config")
    .env("AWS_MAX_ATTEMPTS", "1")
    .env("AWS_EC2_METADATA_DISABLED", "true");
}

fn creds_env(c: &mut Command, creds: &Creds) {
    c.env("AWS_ACCESS_KEY_ID", &creds.id)
        .env("AWS_SECRET_ACCESS_KEY", &creds.secret);
    if let Some(t) = &creds.session_token {
        c.env("AWS_SESSION_TOKEN", t);
    }
}

/// `berth login --registry <url>` with `creds` in the environment.
fn berth_login(url: &str, creds: &Creds) -> Output {
    let mut c = berth();
    c.args(["login", "--registry", url]);
    clean_aws_env(&mut c);
    creds_env(&mut c, creds);
    run_unchecked(&mut c, SHORT)
}

/// `aws ecr get-login-password --endpoint-url <url> --region us-east-1`, with `creds` in
/// the environment, or else `AWS_SHARED_CREDENTIALS_FILE=<file>`.
fn aws_login_password(url: &str, creds: Option<&Creds>, file: Option<&Path>) -> Output {
    let mut c = Command::new(aws_cli());
    c.args([
        "ecr",
        "get-login-password",
        "--endpoint-url",
        url,
        "--region",
        REGION,
    ]);
    clean_aws_env(&mut c);
    if let Some(creds) = creds {
        creds_env(&mut c, creds);
    }
    if let Some(f) = file {
        c.env("AWS_SHARED_CREDENTIALS_FILE", f);
    }
    run_unchecked(&mut c, SHORT)
}

/// The password a login command printed: one line, colon-free (ECR_REFERENCE §4.1).
fn password(o: &Output) -> String {
    assert!(
        o.success(),
        "getting a login password failed:\n{}",
        o.describe()
    );
    let pw = o.stdout.trim();
    assert!(
        !pw.is_empty() && !pw.contains(':') && !pw.contains(char::is_whitespace),
        "not a docker login password (one line, no ':'):\n{}",
        o.describe()
    );
    pw.to_string()
}

// ---------------------------------------------------------------------------------
// HTTP checks.
// ---------------------------------------------------------------------------------

/// One request with `login`'s Basic credentials (or none) and `headers`.
fn call(
    method: &str,
    url: &str,
    login: Option<&Login>,
    headers: &[(&str, &str)],
    body: Option<&[u8]>,
) -> Resp {
    let auth = login.map(Login::header);
    let mut hs: Vec<(&str, &str)> = headers.to_vec();
    if let Some(a) = &auth {
        hs.push(("Authorization", a));
    }
    http(method, url, &hs, body)
}

fn manifest_as(b: &Secured, repo: &str, reference: &str, login: Option<&Login>) -> Resp {
    call(
        "GET",
        &b.reg.url(&format!("/v2/{repo}/manifests/{reference}")),
        login,
        &[("Accept", MANIFEST_ACCEPT)],
        None,
    )
}

fn oci_message(r: &Resp) -> String {
    serde_json::from_slice::<Value>(&r.body)
        .ok()
        .and_then(|v| v["errors"][0]["message"].as_str().map(str::to_string))
        .unwrap_or_default()
}

/// 403 with the OCI `DENIED` code and exactly AWS's `message`.
fn assert_denied(r: &Resp, message: &str) {
    assert_eq!(r.status, 403, "expected 403 DENIED:\n{}", r.describe());
    assert_eq!(r.oci_error_codes(), ["DENIED"], "{}", r.describe());
    assert_eq!(oci_message(r), message, "{}", r.describe());
}

/// ECR's challenge (ECR_REFERENCE §4.2), naming this registry.
fn challenge(reg: &Registry) -> String {
    format!(
        "Basic realm=\"http://{}/\",service=\"ecr.amazonaws.com\"",
        reg.host
    )
}

/// 401 `UNAUTHORIZED` with the challenge, the API version header, and a message that
/// contains `reason`.
fn assert_unauthorized(reg: &Registry, r: &Resp, reason: &str) {
    assert_eq!(
        r.status,
        401,
        "expected 401 UNAUTHORIZED:\n{}",
        r.describe()
    );
    assert_eq!(
        r.header("www-authenticate"),
        Some(challenge(reg).as_str()),
        "{}",
        r.describe()
    );
    assert_eq!(
        r.header("docker-distribution-api-version"),
        Some("registry/2.0"),
        "{}",
        r.describe()
    );
    assert_eq!(r.oci_error_codes(), ["UNAUTHORIZED"], "{}", r.describe());
    assert!(
        oci_message(r).contains(reason),
        "the 401's message does not say {reason:?}:\n{}",
        r.describe()
    );
}

/// Polls `f` for up to 10 s (audit records are written asynchronously).
fn eventually<T>(what: &str, mut f: impl FnMut() -> Result<T, String>) -> T {
    let start = Instant::now();
    loop {
        match f() {
            Ok(v) => return v,
            Err(e) if start.elapsed() > Duration::from_secs(10) => {
                panic!("{what}: not within 10 s: {e}")
            }
            Err(_) => thread::sleep(Duration::from_millis(200)),
        }
    }
}

// ---------------------------------------------------------------------------------
// Scenario 1: a service principal.
// ---------------------------------------------------------------------------------

/// Issue 3 scenario 1 (ECR "repository policy examples": allow a service to pull): a
/// repository policy granting `{"Service": "ecs-tasks.amazonaws.com"}` the three pull
/// actions on production/myapp lets a caller with that service's access key pull it
/// (skopeo, podman; same digest), and nothing else: pushing there (new layer →
/// ecr:InitiateLayerUpload; known layers → ecr:PutImage), deleting, listing tags, and
/// pulling another repository are each refused with 403 DENIED and AWS's message — the
/// same for a repository that does not exist (a caller without rights cannot tell).
#[test]
fn service_principal_pulls_only_the_repository_whose_policy_names_it() {
    const T: &str = "service_principal_pulls_only_the_repository_whose_policy_names_it";
    if !ready(T, &["skopeo", "podman", "umoci"]) {
        return;
    }
    let b = Secured::start(ACCOUNT, &[]);
    let img = Layout::new(&unique("service"));
    let pushed = b.push(&img, "production/myapp:v1");
    b.push(&img, "other/app:v1");
    b.admin(&["service", "create", SERVICE]);
    let svc = b.key(&["--service", SERVICE]).login();
    b.set_repository_policy(
        "production/myapp",
        &resource_policy(vec![statement(
            "AllowPullFromEcsTasks",
            "Allow",
            json!({"Service": SERVICE}),
            &PULL,
        )]),
    );
    b.sync();
    let mine = b.arn("production/myapp");
    let theirs = b.arn("other/app");

    // It pulls production/myapp: skopeo and podman get the pushed digest.
    let image = b.image("production/myapp:v1");
    assert_pulls(&image, As::Creds(&svc), &pushed, "the service");
    let c = Containers::new();
    run(
        c.podman()
            .args(["pull", "--tls-verify=false", "--creds", &svc.pair(), &image]),
        LONG,
    );
    let o = run(
        c.podman()
            .args(["image", "inspect", "--format", "{{.Digest}}", &image]),
        SHORT,
    );
    assert_eq!(o.stdout.trim(), pushed, "podman's digest of {image}");

    // It cannot push there: a new layer needs ecr:InitiateLayerUpload...
    let new = Layout::new(&unique("service-push"));
    let o = skopeo_push(&new, &b.image("production/myapp:v2"), As::Creds(&svc));
    assert_refused(
        &o,
        "a push of a new layer by the service",
        &[&denial(
            SERVICE,
            "ecr:InitiateLayerUpload",
            &mine,
            Why::NoResourcePolicy,
        )],
    );
    // ...and tagging layers it may read needs ecr:PutImage.
    let o = skopeo_push(&img, &b.image("production/myapp:v2"), As::Creds(&svc));
    assert_refused(
        &o,
        "a push of known layers by the service",
        &[&denial(
            SERVICE,
            "ecr:PutImage",
            &mine,
            Why::NoResourcePolicy,
        )],
    );
    let r = call(
        "POST",
        &b.reg.url("/v2/production/myapp/blobs/uploads/"),
        Some(&svc),
        &[],
        None,
    );
    assert_denied(
        &r,
        &denial(
            SERVICE,
            "ecr:InitiateLayerUpload",
            &mine,
            Why::NoResourcePolicy,
        ),
    );
    let m = manifest_as(&b, "production/myapp", "v1", Some(&svc));
    assert_eq!(m.status, 200, "{}", m.describe());
    let r = call(
        "PUT",
        &b.reg.url("/v2/production/myapp/manifests/v2"),
        Some(&svc),
        &[("Content-Type", m.header("content-type").unwrap_or_default())],
        Some(&m.body),
    );
    assert_denied(
        &r,
        &denial(SERVICE, "ecr:PutImage", &mine, Why::NoResourcePolicy),
    );
    let r = call(
        "DELETE",
        &b.reg
            .url(&format!("/v2/production/myapp/manifests/{pushed}")),
        Some(&svc),
        &[],
        None,
    );
    assert_denied(
        &r,
        &denial(
            SERVICE,
            "ecr:BatchDeleteImage",
            &mine,
            Why::NoResourcePolicy,
        ),
    );
    let r = call(
        "GET",
        &b.reg.url("/v2/production/myapp/tags/list"),
        Some(&svc),
        &[],
        None,
    );
    assert_denied(
        &r,
        &denial(SERVICE, "ecr:ListImages", &mine, Why::NoResourcePolicy),
    );

    // It cannot pull another repository: skopeo says why, and so does the API.
    let (o, _) = skopeo_pull(&b.image("other/app:v1"), As::Creds(&svc));
    assert_refused(
        &o,
        "a pull of other/app by the service",
        &[
            "denied",
            &denial(SERVICE, "ecr:BatchGetImage", &theirs, Why::NoResourcePolicy),
        ],
    );
    assert_denied(
        &manifest_as(&b, "other/app", "v1", Some(&svc)),
        &denial(SERVICE, "ecr:BatchGetImage", &theirs, Why::NoResourcePolicy),
    );
    let layer = m.json()["layers"][0]["digest"]
        .as_str()
        .expect("layer digest")
        .to_string();
    let r = call(
        "GET",
        &b.reg.url(&format!("/v2/other/app/blobs/{layer}")),
        Some(&svc),
        &[],
        None,
    );
    assert_denied(
        &r,
        &denial(
            SERVICE,
            "ecr:GetDownloadUrlForLayer",
            &theirs,
            Why::NoResourcePolicy,
        ),
    );
    // A repository that does not exist looks the same as one it may not read.
    assert_denied(
        &manifest_as(&b, "missing/app", "v1", Some(&svc)),
        &denial(
            SERVICE,
            "ecr:BatchGetImage",
            &b.arn("missing/app"),
            Why::NoResourcePolicy,
        ),
    );
}

// ---------------------------------------------------------------------------------
// Scenario 2: cross-account pull.
// ---------------------------------------------------------------------------------

/// The three cases of issue 3 scenario 2 for a caller of account 222222222222 (ARN
/// `caller`, Basic credentials `login`) on production/myapp of a registry of account
/// 111111111111 holding `pushed`: the repository policy naming `named` alone, the
/// caller's identity policy (`owner`: `--role …`/`--user …` and `--account`) alone, then
/// both. Each refusal is checked in skopeo's error and the API's 403; the final pull with
/// skopeo and with podman (after `podman login`), and `policy simulate` agrees.
fn cross_account_cases(
    b: &Secured,
    caller: &str,
    login: &Login,
    owner: &[&str],
    named: &str,
    pushed: &str,
) {
    let repo = b.arn("production/myapp");
    let image = b.image("production/myapp:v1");
    let repo_policy = resource_policy(vec![statement(
        "AllowPullFromOtherAccount",
        "Allow",
        json!({ "AWS": named }),
        &PULL,
    )]);

    // 1. The repository policy alone: refused, no identity-based policy allows.
    b.set_repository_policy("production/myapp", &repo_policy);
    b.sync();
    let refusal = denial(caller, "ecr:BatchGetImage", &repo, Why::NoIdentityPolicy);
    let (o, _) = skopeo_pull(&image, As::Creds(login));
    assert_refused(
        &o,
        "a cross-account pull with only the repository policy",
        &[&refusal],
    );
    assert_denied(
        &manifest_as(b, "production/myapp", "v1", Some(login)),
        &refusal,
    );

    // 2. The identity policy alone: refused, no resource-based policy allows.
    b.admin(&["repository-policy", "delete", "production/myapp"]);
    b.put_identity_policy(
        owner,
        "PullProductionMyapp",
        &identity_policy("Allow", &PULL, &repo),
    );
    b.sync();
    let refusal = denial(caller, "ecr:BatchGetImage", &repo, Why::NoResourcePolicy);
    let (o, _) = skopeo_pull(&image, As::Creds(login));
    assert_refused(
        &o,
        "a cross-account pull with only the identity policy",
        &[&refusal],
    );
    assert_denied(
        &manifest_as(b, "production/myapp", "v1", Some(login)),
        &refusal,
    );

    // 3. Both: skopeo and podman (logged in) pull the pushed digest.
    b.set_repository_policy("production/myapp", &repo_policy);
    b.sync();
    assert_pulls(&image, As::Creds(login), pushed, caller);
    let c = Containers::new();
    let auth = c.path().join("auth.json");
    let mut pl = c.podman();
    pl.env("REGISTRY_AUTH_FILE", &auth)
        .args([
            "login",
            "--tls-verify=false",
            "-u",
            &login.user,
            "--password-stdin",
        ])
        .arg(&b.reg.host);
    let o = stdin_login(&pl, &login.password);
    assert!(o.success(), "podman login as {caller}:\n{}", o.describe());
    run(
        c.podman()
            .env("REGISTRY_AUTH_FILE", &auth)
            .args(["pull", "--tls-verify=false", &image]),
        LONG,
    );
    let o = run(
        c.podman()
            .args(["image", "inspect", "--format", "{{.Digest}}", &image]),
        SHORT,
    );
    assert_eq!(o.stdout.trim(), pushed, "podman's digest of {image}");
    let (allowed, out) = b.simulate(caller, "ecr:BatchGetImage", "production/myapp");
    assert!(
        allowed,
        "policy simulate must agree with the server:\n{out}"
    );
}

/// Issue 3 scenario 2 and ECR_REFERENCE §2.8 ("Cross-account: the resource policy … must
/// name the principal/account and the caller's identity policy must allow the action"):
/// a session of role arn:aws:iam::222222222222:role/ECSTaskExecutionRole (temporary
/// credentials from `berth admin role assume`; its identity policy allows
/// ecr:GetAuthorizationToken, which "can only be granted through an identity policy")
/// gets a token from `berth login` with its session token, and pulls production/myapp
/// from account 111111111111 only when the repository policy names the role AND the
/// role's identity policy allows the pull; either alone is refused with the missing
/// policy named. Temporary credentials used as Basic credentials are refused (they need
/// their session token).
///
/// Regression: `Iam::decide` (crates/berth-iam/src/service.rs) once judged
/// ecr:GetAuthorizationToken by a principal of another account as a cross-account request
/// on the registry's account while ignoring resource policies for that action, so every
/// foreign role session was refused a token ("… on resource: * because no resource-based
/// policy allows the ecr:GetAuthorizationToken action") and could never log in.
#[test]
fn cross_account_role_pulls_only_with_repository_and_identity_policy() {
    const T: &str = "cross_account_role_pulls_only_with_repository_and_identity_policy";
    if !ready(T, &["skopeo", "podman", "umoci"]) {
        return;
    }
    let b = Secured::start(ACCOUNT, &[]);
    let img = Layout::new(&unique("cross-account-role"));
    let pushed = b.push(&img, "production/myapp:v1");

    b.admin(&["account", "create", OTHER_ACCOUNT]);
    b.admin(&[
        "role",
        "create",
        "ECSTaskExecutionRole",
        "--account",
        OTHER_ACCOUNT,
    ]);
    let role = ["--role", "ECSTaskExecutionRole", "--account", OTHER_ACCOUNT];
    b.put_identity_policy(
        &role,
        "Login",
        &identity_policy("Allow", &["ecr:GetAuthorizationToken"], "*"),
    );
    let temp = Creds::from_json(&b.admin(&[
        "role",
        "assume",
        "ECSTaskExecutionRole",
        "--account",
        OTHER_ACCOUNT,
        "--session-name",
        "task-1",
        "--duration-secs",
        "3600",
        "--format",
        "json",
    ]));
    assert!(
        temp.id.starts_with("ASIA") && temp.session_token.is_some(),
        "temporary credentials: {temp:?}"
    );
    b.sync();

    // Temporary credentials are not usable without their session token.
    let r = call("GET", &b.reg.url("/v2/"), Some(&temp.login()), &[], None);
    assert_unauthorized(&b.reg, &r, "session token");
    let token = Login::token(&password(&berth_login(&b.url(), &temp)));

    cross_account_cases(
        &b,
        &format!("arn:aws:sts::{OTHER_ACCOUNT}:assumed-role/ECSTaskExecutionRole/task-1"),
        &token,
        &role,
        &format!("arn:aws:iam::{OTHER_ACCOUNT}:role/ECSTaskExecutionRole"),
        &pushed,
    );
}

/// Issue 3 scenario 2 with an IAM user of account 222222222222 and its access key (Basic
/// credentials, no token needed), the repository policy naming the account
/// (`"AWS": "222222222222"`, which "delegates authority to the account"): refused with
/// either policy alone, allowed with both.
#[test]
fn cross_account_user_pulls_only_with_repository_and_identity_policy() {
    const T: &str = "cross_account_user_pulls_only_with_repository_and_identity_policy";
    if !ready(T, &["skopeo", "podman", "umoci"]) {
        return;
    }
    let b = Secured::start(ACCOUNT, &[]);
    let img = Layout::new(&unique("cross-account-user"));
    let pushed = b.push(&img, "production/myapp:v1");
    b.admin(&["account", "create", OTHER_ACCOUNT]);
    let deployer = b.user("deployer", Some(OTHER_ACCOUNT)).login();
    cross_account_cases(
        &b,
        &user_arn(OTHER_ACCOUNT, "deployer"),
        &deployer,
        &["--user", "deployer", "--account", OTHER_ACCOUNT],
        OTHER_ACCOUNT,
        &pushed,
    );
}

// ---------------------------------------------------------------------------------
// Scenario 3: same account.
// ---------------------------------------------------------------------------------

/// Issue 3 scenario 3 and ECR_REFERENCE §2.8 ("A user or role only needs to be allowed
/// permission for an action through either a repository policy or an IAM policy but not
/// both"): in the registry's own account, alice (identity policy only) pulls with skopeo,
/// bob (named only in the repository policy) pulls with podman and skopeo, and carol
/// (neither) is refused; alice's policy names only production/myapp, so she is refused
/// another repository.
#[test]
fn same_account_identity_policy_alone_or_repository_policy_alone_allows_pull() {
    const T: &str = "same_account_identity_policy_alone_or_repository_policy_alone_allows_pull";
    if !ready(T, &["skopeo", "podman", "umoci"]) {
        return;
    }
    let b = Secured::start(ACCOUNT, &[]);
    let img = Layout::new(&unique("same-account"));
    let pushed = b.push(&img, "production/myapp:v1");
    b.push(&img, "other/app:v1");
    let repo = b.arn("production/myapp");
    let image = b.image("production/myapp:v1");

    let alice = b.user("alice", None).login();
    b.put_identity_policy(
        &["--user", "alice"],
        "PullProductionMyapp",
        &identity_policy("Allow", &PULL, &repo),
    );
    let bob = b.user("bob", None).login();
    b.set_repository_policy(
        "production/myapp",
        &resource_policy(vec![statement(
            "AllowBob",
            "Allow",
            json!({"AWS": b.user_arn("bob")}),
            &PULL,
        )]),
    );
    let carol = b.user("carol", None).login();
    b.sync();

    assert_pulls(
        &image,
        As::Creds(&alice),
        &pushed,
        "alice (identity policy)",
    );
    assert_pulls(&image, As::Creds(&bob), &pushed, "bob (repository policy)");
    let c = Containers::new();
    run(
        c.podman()
            .args(["pull", "--tls-verify=false", "--creds", &bob.pair(), &image]),
        LONG,
    );
    let o = run(
        c.podman()
            .args(["image", "inspect", "--format", "{{.Digest}}", &image]),
        SHORT,
    );
    assert_eq!(o.stdout.trim(), pushed, "podman's digest for bob");

    let (o, _) = skopeo_pull(&image, As::Creds(&carol));
    let refusal = denial(
        &b.user_arn("carol"),
        "ecr:BatchGetImage",
        &repo,
        Why::NoIdentityPolicy,
    );
    assert_refused(&o, "a pull by carol (no policy)", &[&refusal]);
    assert_denied(
        &manifest_as(&b, "production/myapp", "v1", Some(&carol)),
        &refusal,
    );

    let (o, _) = skopeo_pull(&b.image("other/app:v1"), As::Creds(&alice));
    assert_refused(
        &o,
        "a pull by alice of a repository her policy does not name",
        &[&denial(
            &b.user_arn("alice"),
            "ecr:BatchGetImage",
            &b.arn("other/app"),
            Why::NoIdentityPolicy,
        )],
    );
}

// ---------------------------------------------------------------------------------
// Scenario 4: explicit deny.
// ---------------------------------------------------------------------------------

/// Issue 3 scenario 4 and ECR_REFERENCE §2.8 ("explicit Deny in any applicable policy
/// wins"): dana (identity policy allows pulls everywhere) and erin (the repository policy
/// allows her pulls) both pull; then a Deny of ecr:BatchGetImage in the repository policy
/// for dana, and in erin's identity policy, refuse each of them with AWS's "with an
/// explicit deny in a resource-based / identity-based policy", while the administrator
/// still pulls and erin may still read blobs (only the action denied is denied).
/// `policy simulate` agrees.
#[test]
fn explicit_deny_in_either_policy_beats_an_allow_in_the_other() {
    const T: &str = "explicit_deny_in_either_policy_beats_an_allow_in_the_other";
    if !ready(T, &["skopeo", "umoci"]) {
        return;
    }
    let b = Secured::start(ACCOUNT, &[]);
    let img = Layout::new(&unique("deny"));
    let pushed = b.push(&img, "production/myapp:v1");
    let repo = b.arn("production/myapp");
    let image = b.image("production/myapp:v1");
    let (dana_arn, erin_arn) = (b.user_arn("dana"), b.user_arn("erin"));

    let dana = b.user("dana", None).login();
    b.put_identity_policy(
        &["--user", "dana"],
        "PullEverything",
        &identity_policy("Allow", &PULL, "*"),
    );
    let erin = b.user("erin", None).login();
    let allow_erin = statement("AllowErin", "Allow", json!({"AWS": erin_arn}), &PULL);
    b.set_repository_policy(
        "production/myapp",
        &resource_policy(vec![allow_erin.clone()]),
    );
    b.sync();
    assert_pulls(&image, As::Creds(&dana), &pushed, "dana (identity Allow)");
    assert_pulls(&image, As::Creds(&erin), &pushed, "erin (repository Allow)");

    b.set_repository_policy(
        "production/myapp",
        &resource_policy(vec![
            allow_erin,
            statement(
                "DenyDana",
                "Deny",
                json!({"AWS": dana_arn}),
                &["ecr:BatchGetImage"],
            ),
        ]),
    );
    b.put_identity_policy(
        &["--user", "erin"],
        "DenyPull",
        &identity_policy("Deny", &["ecr:BatchGetImage"], &repo),
    );
    b.sync();

    let dana_refusal = denial(&dana_arn, "ecr:BatchGetImage", &repo, Why::ResourceDeny);
    let (o, _) = skopeo_pull(&image, As::Creds(&dana));
    assert_refused(
        &o,
        "dana's pull (repository Deny over identity Allow)",
        &[&dana_refusal],
    );
    assert_denied(
        &manifest_as(&b, "production/myapp", "v1", Some(&dana)),
        &dana_refusal,
    );
    let erin_refusal = denial(&erin_arn, "ecr:BatchGetImage", &repo, Why::IdentityDeny);
    let (o, _) = skopeo_pull(&image, As::Creds(&erin));
    assert_refused(
        &o,
        "erin's pull (identity Deny over repository Allow)",
        &[&erin_refusal],
    );
    assert_denied(
        &manifest_as(&b, "production/myapp", "v1", Some(&erin)),
        &erin_refusal,
    );

    // Only the denied action is denied, and only to whom the Deny names.
    let m = manifest_as(&b, "production/myapp", "v1", Some(&b.admin.login()));
    assert_eq!(m.status, 200, "{}", m.describe());
    let layer = m.json()["layers"][0]["digest"]
        .as_str()
        .expect("layer digest")
        .to_string();
    let r = call(
        "GET",
        &b.reg.url(&format!("/v2/production/myapp/blobs/{layer}")),
        Some(&erin),
        &[],
        None,
    );
    assert_eq!(
        r.status,
        200,
        "erin's Deny names only ecr:BatchGetImage:\n{}",
        r.describe()
    );
    assert_pulls(
        &image,
        As::Creds(&b.admin.login()),
        &pushed,
        "the administrator",
    );

    for (arn, refusal) in [(&dana_arn, &dana_refusal), (&erin_arn, &erin_refusal)] {
        let (allowed, out) = b.simulate(arn, "ecr:BatchGetImage", "production/myapp");
        assert!(
            !allowed && out.contains(refusal.as_str()),
            "policy simulate for {arn} must deny with {refusal:?}:\n{out}"
        );
    }
}

// ---------------------------------------------------------------------------------
// Scenario 5: the registry policy.
// ---------------------------------------------------------------------------------

/// Issue 3 scenario 5 and ECR_REFERENCE §2.8 (registry policy; cross-account evaluation)
/// with the replication policy of the ECR User Guide (fixture `auth_registry_policy.json`:
/// account 111111111111 may ecr:CreateRepository and ecr:ReplicateImage on
/// arn:aws:ecr:us-east-1:222222222222:repository/*), on a registry of account
/// 222222222222: `registry-policy put` stores it, `get` returns it byte for byte, and it
/// is evaluated: `policy simulate` allows ecr:ReplicateImage and ecr:CreateRepository to a
/// 111111111111 user whose identity policy allows them, and denies a 333333333333 user
/// (not named), a 111111111111 user without an identity policy (cross-account needs
/// both) and actions the policy does not grant. And on the data plane: that user's push
/// into a repository that does not exist yet needs ecr:CreateRepository — refused before
/// the registry policy, accepted after.
#[test]
fn registry_policy_for_replication_is_stored_returned_and_evaluated() {
    const T: &str = "registry_policy_for_replication_is_stored_returned_and_evaluated";
    if !ready(T, &["skopeo", "umoci"]) {
        return;
    }
    const THIRD: &str = "333333333333";
    let b = Secured::start(OTHER_ACCOUNT, &[]);
    b.admin(&["account", "create", ACCOUNT]);
    b.admin(&["account", "create", THIRD]);
    let target = repo_arn(OTHER_ACCOUNT, "replicated/app");
    let replication = identity_policy(
        "Allow",
        &[
            "ecr:CreateRepository",
            "ecr:ReplicateImage",
            "ecr:BatchCheckLayerAvailability",
            "ecr:InitiateLayerUpload",
            "ecr:UploadLayerPart",
            "ecr:CompleteLayerUpload",
            "ecr:PutImage",
        ],
        &repo_arn(OTHER_ACCOUNT, "*"),
    );
    let replicator = b.user("replicator", Some(ACCOUNT)).login();
    b.put_identity_policy(
        &["--user", "replicator", "--account", ACCOUNT],
        "Replication",
        &replication,
    );
    b.user("outsider", Some(THIRD));
    b.put_identity_policy(
        &["--user", "outsider", "--account", THIRD],
        "Replication",
        &replication,
    );
    b.user("newcomer", Some(ACCOUNT));
    let replicator_arn = user_arn(ACCOUNT, "replicator");
    let outsider_arn = user_arn(THIRD, "outsider");
    let newcomer_arn = user_arn(ACCOUNT, "newcomer");

    // Before: no registry policy, and the replicator is refused.
    let o = b.admin_unchecked(&["registry-policy", "get"]);
    assert!(
        !o.success() && o.stderr.contains("no registry policy"),
        "registry-policy get without a policy:\n{}",
        o.describe()
    );
    let (allowed, out) = b.simulate(&replicator_arn, "ecr:ReplicateImage", &target);
    assert!(
        !allowed
            && out.contains(&denial(
                &replicator_arn,
                "ecr:ReplicateImage",
                &target,
                Why::NoResourcePolicy
            )),
        "{out}"
    );
    // A push into a new repository: a registry policy lets account 111111111111 push
    // (a repository policy cannot be set before its repository exists, as in ECR), but
    // creating the repository is not allowed yet.
    let push_statement = statement(
        "AllowPushFromSource",
        "Allow",
        json!({"AWS": ACCOUNT}),
        &PUSH,
    );
    b.admin(&[
        "registry-policy",
        "put",
        "--document",
        &resource_policy(vec![push_statement.clone()]).to_string(),
    ]);
    b.sync();
    let img = Layout::new(&unique("replication"));
    let dest = b.image("replicated/app:v1");
    let o = skopeo_push(&img, &dest, As::Creds(&replicator));
    assert_refused(
        &o,
        "a push into a new repository without ecr:CreateRepository",
        &[&denial(
            &replicator_arn,
            "ecr:CreateRepository",
            &target,
            Why::NoResourcePolicy,
        )],
    );

    // Stored and returned byte for byte.
    let file = fixture("auth_registry_policy.json");
    let text = fs::read_to_string(&file).expect("registry policy fixture");
    b.admin(&["registry-policy", "put", "--file", &file.to_string_lossy()]);
    let o = b.admin(&["registry-policy", "get"]);
    assert!(
        o.stdout == text || o.stdout.strip_suffix('\n') == Some(text.as_str()),
        "registry-policy get must return the document as put:\n--- put ---\n{text}\n{}",
        o.describe()
    );

    // Evaluated.
    for action in ["ecr:ReplicateImage", "ecr:CreateRepository"] {
        let (allowed, out) = b.simulate(&replicator_arn, action, &target);
        assert!(
            allowed && out.contains("ReplicationAccessCrossAccount"),
            "{action} by {replicator_arn} must be allowed by the registry policy's \
             statement:\n{out}"
        );
    }
    let cases = [
        (
            &outsider_arn,
            "ecr:ReplicateImage",
            Why::NoResourcePolicy,
            "an account the policy does not name",
        ),
        (
            &newcomer_arn,
            "ecr:ReplicateImage",
            Why::NoIdentityPolicy,
            "a user of the named account without an identity policy",
        ),
        (
            &replicator_arn,
            "ecr:BatchDeleteImage",
            Why::NoResourcePolicy,
            "an action the policy does not grant",
        ),
    ];
    for (who, action, why, case) in cases {
        let (allowed, out) = b.simulate(who, action, &target);
        let want = denial(who, action, &target, why);
        assert!(
            !allowed && out.contains(&want),
            "{case}: policy simulate must deny with {want:?}:\n{out}"
        );
    }

    // The server evaluates it too: with the push statement added back, the push creates
    // the repository.
    let mut combined: Value = serde_json::from_str(&text).expect("fixture is JSON");
    combined["Statement"]
        .as_array_mut()
        .expect("fixture has a Statement list")
        .push(push_statement);
    b.admin(&[
        "registry-policy",
        "put",
        "--document",
        &combined.to_string(),
    ]);
    b.sync();
    let o = skopeo_push(&img, &dest, As::Creds(&replicator));
    assert!(
        o.success(),
        "the replicator's push into a new repository, allowed ecr:CreateRepository by the \
         registry policy:\n{}",
        o.describe()
    );
    assert_pulls(
        &dest,
        As::Creds(&b.admin.login()),
        &img.digest,
        "the administrator",
    );
}

// ---------------------------------------------------------------------------------
// Scenario 6: login.
// ---------------------------------------------------------------------------------

/// A registry with user `dev` (identity policy `ecr:*`), its access key, a token from
/// `berth login` for it, and a token from `aws ecr get-login-password` for it.
struct LoginSetup {
    b: Secured,
    key: Login,
    berth_token: Login,
    aws_token: Login,
}

fn login_setup() -> LoginSetup {
    let b = Secured::start(ACCOUNT, &[]);
    let dev = b.user("dev", None);
    b.put_identity_policy(
        &["--user", "dev"],
        "EcrPowerUser",
        &identity_policy("Allow", &["ecr:*"], "*"),
    );
    b.sync();
    let berth_token = Login::token(&password(&berth_login(&b.url(), &dev)));
    let aws_token = Login::token(&password(&aws_login_password(&b.url(), Some(&dev), None)));
    LoginSetup {
        key: dev.login(),
        b,
        berth_token,
        aws_token,
    }
}

/// Issue 3 "Login for docker" and ECR_REFERENCE §4.1/§4.2: `docker login -u AWS
/// --password-stdin` with the password from `berth login`, then `docker push` and, after
/// `docker rmi`, `docker pull` (same image ID); the same after `docker logout` with the
/// access key ID and secret (a second tag), and with the password from `aws ecr
/// get-login-password`. Without login, the push is refused.
#[test]
fn docker_logs_in_with_a_token_and_with_an_access_key() {
    const T: &str = "docker_logs_in_with_a_token_and_with_an_access_key";
    if !ready(T, &["docker", "busybox-static", "aws"]) {
        return;
    }
    let s = login_setup();
    let d = docker();
    let config = tempfile::tempdir().expect("temp dir");
    let dk = || {
        let mut c = d.cmd();
        c.env("DOCKER_CONFIG", config.path());
        c
    };
    let host = s.b.reg.host.clone();
    let v1 = s.b.image("login/docker:v1");
    let v2 = s.b.image("login/docker:v2");
    let image_id = d.build_busybox_image(&v1, &unique("docker-login"));
    run(dk().args(["tag", &v1, &v2]), SHORT);

    let o = run_unchecked(dk().args(["push", &v1]), LONG);
    assert!(!o.success(), "docker push without login:\n{}", o.describe());

    let login = |l: &Login| {
        let mut c = dk();
        c.args(["login", "-u", &l.user, "--password-stdin", &host]);
        let o = stdin_login(&c, &l.password);
        assert!(
            o.success() && o.stdout.contains("Login Succeeded"),
            "docker login as {}:\n{}",
            l.user,
            o.describe()
        );
    };
    let pull_again = |image: &str| {
        run(dk().args(["rmi", "-f", &image_id]), SHORT);
        let o = run(dk().args(["pull", image]), LONG);
        assert!(o.stdout.contains("Pull complete"), "{}", o.describe());
        assert_eq!(
            d.image_id(image),
            image_id,
            "image ID of {image} after pull"
        );
    };
    let push = |image: &str| {
        let o = run(dk().args(["push", image]), LONG);
        digest_after(&o.stdout, "digest: ")
            .unwrap_or_else(|| panic!("no digest in docker push output:\n{}", o.describe()))
    };

    // A token from `berth login`.
    login(&s.berth_token);
    let pushed = push(&v1);
    let served = manifest_as(&s.b, "login/docker", "v1", Some(&s.key));
    assert_eq!(sha256_digest(&served.body), pushed, "{}", served.describe());
    pull_again(&v1);
    run(dk().args(["tag", &v1, &v2]), SHORT);

    // The access key.
    run(dk().args(["logout", &host]), SHORT);
    login(&s.key);
    assert_eq!(push(&v2), pushed, "the same image pushed as v2");
    pull_again(&v2);

    // A token from `aws ecr get-login-password`.
    run(dk().args(["logout", &host]), SHORT);
    login(&s.aws_token);
    pull_again(&v1);
}

/// Issue 3 "Login for … podman": `podman login -u AWS --password-stdin` with the
/// password from `berth login`, then pull, tag, push and (after `podman rmi`) pull back
/// the digest podman pushed; the same with the access key after `podman logout`, and a
/// pull with the password from `aws ecr get-login-password`. Logged out, pulls are
/// refused.
#[test]
fn podman_logs_in_with_a_token_and_with_an_access_key() {
    const T: &str = "podman_logs_in_with_a_token_and_with_an_access_key";
    if !ready(T, &["podman", "skopeo", "umoci", "aws"]) {
        return;
    }
    let s = login_setup();
    let seed = Layout::new(&unique("podman-login"));
    s.b.push(&seed, "seed/app:v1");
    let c = Containers::new();
    let auth = c.path().join("auth.json");
    let pm = |args: &[&str]| {
        let mut p = c.podman();
        p.env("REGISTRY_AUTH_FILE", &auth).args(args);
        p
    };
    let host = s.b.reg.host.clone();
    let (seed_image, v1, v2) = (
        s.b.image("seed/app:v1"),
        s.b.image("login/podman:v1"),
        s.b.image("login/podman:v2"),
    );
    let login = |l: &Login| {
        let o = stdin_login(
            &pm(&[
                "login",
                "--tls-verify=false",
                "-u",
                &l.user,
                "--password-stdin",
                &host,
            ]),
            &l.password,
        );
        assert!(o.success(), "podman login as {}:\n{}", l.user, o.describe());
    };
    let push = |image: &str| {
        let f = c.path().join("digest");
        run(
            pm(&["push", "--tls-verify=false", "--digestfile"])
                .arg(&f)
                .arg(image),
            LONG,
        );
        fs::read_to_string(&f)
            .expect("digest file")
            .trim()
            .to_string()
    };
    let pull_again = |image: &str, want: &str| {
        run(&mut pm(&["rmi", "-a", "-f"]), SHORT);
        run(&mut pm(&["pull", "--tls-verify=false", image]), LONG);
        let o = run(
            &mut pm(&["image", "inspect", "--format", "{{.Digest}}", image]),
            SHORT,
        );
        assert_eq!(o.stdout.trim(), want, "podman's digest of {image}");
    };

    // A token from `berth login`.
    login(&s.berth_token);
    run(&mut pm(&["pull", "--tls-verify=false", &seed_image]), LONG);
    run(&mut pm(&["tag", &seed_image, &v1, &v2]), SHORT);
    let d1 = push(&v1);
    pull_again(&v1, &d1);

    // Logged out: refused.
    run(&mut pm(&["logout", &host]), SHORT);
    let o = run_unchecked(&mut pm(&["pull", "--tls-verify=false", &v1]), LONG);
    assert_refused(&o, "podman pull after logout", &["unauthorized"]);

    // The access key.
    login(&s.key);
    run(&mut pm(&["tag", &v1, &v2]), SHORT);
    let d2 = push(&v2);
    pull_again(&v2, &d2);

    // A token from `aws ecr get-login-password`.
    run(&mut pm(&["logout", &host]), SHORT);
    login(&s.aws_token);
    pull_again(&v1, &d1);
}

/// Issue 3 "Login for … skopeo": `skopeo login -u AWS --password-stdin` with the password
/// from `berth login`, then `skopeo copy` to the registry and back (same digest); after
/// `skopeo logout` a push is refused; the same with the access key, and a pull with the
/// password from `aws ecr get-login-password`.
#[test]
fn skopeo_logs_in_with_a_token_and_with_an_access_key() {
    const T: &str = "skopeo_logs_in_with_a_token_and_with_an_access_key";
    if !ready(T, &["skopeo", "umoci", "aws"]) {
        return;
    }
    let s = login_setup();
    let dir = tempfile::tempdir().expect("temp dir");
    let auth = dir.path().join("auth.json");
    let host = s.b.reg.host.clone();
    let login = |l: &Login| {
        let mut c = skopeo();
        c.args(["login", "--tls-verify=false", "--authfile"])
            .arg(&auth)
            .args(["-u", &l.user, "--password-stdin", &host]);
        let o = stdin_login(&c, &l.password);
        assert!(o.success(), "skopeo login as {}:\n{}", l.user, o.describe());
    };
    let logout = || {
        run(
            skopeo()
                .args(["logout", "--authfile"])
                .arg(&auth)
                .arg(&host),
            SHORT,
        );
    };
    let img = Layout::new(&unique("skopeo-login"));
    let (v1, v2) = (s.b.image("login/skopeo:v1"), s.b.image("login/skopeo:v2"));

    login(&s.berth_token);
    let o = skopeo_push(&img, &v1, As::AuthFile(&auth));
    assert!(o.success(), "push with the token:\n{}", o.describe());
    assert_pulls(&v1, As::AuthFile(&auth), &img.digest, "skopeo with a token");

    logout();
    let o = skopeo_push(&img, &v2, As::AuthFile(&auth));
    assert_refused(&o, "skopeo push after logout", &[]);

    login(&s.key);
    let o = skopeo_push(&img, &v2, As::AuthFile(&auth));
    assert!(o.success(), "push with the access key:\n{}", o.describe());
    assert_pulls(&v2, As::AuthFile(&auth), &img.digest, "skopeo with a key");

    logout();
    login(&s.aws_token);
    assert_pulls(
        &v1,
        As::AuthFile(&auth),
        &img.digest,
        "skopeo with an AWS CLI token",
    );
}

/// Issue 3 scenario 6 (refusals) and ECR_REFERENCE §4.1 (tokens are signed, expire, and
/// are tied to a region): docker, podman and skopeo each fail to log in with (1) a wrong
/// secret, (2) a token whose signature was altered, (3) an expired token (a server with
/// `--token-lifetime-secs 2`), (4) a token from a us-east-1 server presented to an
/// eu-west-1 server sharing its master key. podman and skopeo, and the 401 `UNAUTHORIZED`
/// answer itself, say why: "does not match", "signature", "expired", "region".
#[test]
fn wrong_password_expired_token_and_other_region_token_are_refused_with_the_reason() {
    const T: &str =
        "wrong_password_expired_token_and_other_region_token_are_refused_with_the_reason";
    if !ready(T, &["docker", "podman", "skopeo"]) {
        return;
    }
    let a = Secured::start(ACCOUNT, &[]);
    let expiring = Secured::start(ACCOUNT, &["--token-lifetime-secs", "2"]);
    let key_file = a.reg.data_dir().join("master.key");
    let europe = Secured::start(
        ACCOUNT,
        &[
            "--region",
            "eu-west-1",
            "--master-key-file",
            &key_file.to_string_lossy(),
        ],
    );
    let d = docker();
    let c = Containers::new();
    let dir = tempfile::tempdir().expect("temp dir");

    let refused = |reg: &Registry, l: &Login, reason: &str, case: &str| {
        let host = &reg.host;
        // docker: the daemon reports only the status.
        let mut dl = d.cmd();
        dl.env("DOCKER_CONFIG", dir.path().join("docker")).args([
            "login",
            "-u",
            &l.user,
            "--password-stdin",
            host,
        ]);
        let o = stdin_login(&dl, &l.password);
        assert_refused(&o, &format!("docker login with {case}"), &["401"]);
        // podman and skopeo: login fails; a pull shows the server's reason.
        let mut pl = c.podman();
        pl.env("REGISTRY_AUTH_FILE", dir.path().join("podman.json"))
            .args([
                "login",
                "--tls-verify=false",
                "-u",
                &l.user,
                "--password-stdin",
                host,
            ]);
        let o = stdin_login(&pl, &l.password);
        assert_refused(&o, &format!("podman login with {case}"), &[]);
        let o = run_unchecked(
            c.podman().args([
                "pull",
                "--tls-verify=false",
                "--creds",
                &l.pair(),
                &format!("{host}/login/refused:v1"),
            ]),
            LONG,
        );
        assert_refused(
            &o,
            &format!("podman pull with {case}"),
            &["unauthorized", reason],
        );
        let mut sl = skopeo();
        sl.args(["login", "--tls-verify=false", "--authfile"])
            .arg(dir.path().join("skopeo.json"))
            .args(["-u", &l.user, "--password-stdin", host]);
        let o = stdin_login(&sl, &l.password);
        assert_refused(&o, &format!("skopeo login with {case}"), &[]);
        let o = run_unchecked(
            skopeo()
                .args(["inspect", "--tls-verify=false", "--creds", &l.pair()])
                .arg(format!("docker://{host}/login/refused:v1")),
            SHORT,
        );
        assert_refused(
            &o,
            &format!("skopeo inspect with {case}"),
            &["unauthorized", reason],
        );
        let r = call("GET", &reg.url("/v2/"), Some(l), &[], None);
        assert_unauthorized(reg, &r, reason);
    };

    let dev = a.user("dev", None);
    a.put_identity_policy(
        &["--user", "dev"],
        "EcrPowerUser",
        &identity_policy("Allow", &["ecr:*"], "*"),
    );
    a.sync();
    let token = password(&berth_login(&a.url(), &dev));
    let ok = call(
        "GET",
        &a.reg.url("/v2/"),
        Some(&Login::token(&token)),
        &[],
        None,
    );
    assert_eq!(
        ok.status,
        200,
        "the token works where it was issued:\n{}",
        ok.describe()
    );

    // An expiring token, checked later (its 2 s run while the other cases are checked).
    let issued = Instant::now();
    let short = password(&berth_login(&expiring.url(), &expiring.admin));
    let r = call(
        "GET",
        &expiring.reg.url("/v2/"),
        Some(&Login::token(&short)),
        &[],
        None,
    );
    if issued.elapsed() < Duration::from_millis(800) {
        assert_eq!(r.status, 200, "a fresh token must work:\n{}", r.describe());
    }

    // 1. A wrong secret.
    let mut wrong = dev.login();
    wrong.password = wrong.password.chars().rev().collect();
    refused(
        &a.reg,
        &wrong,
        &format!(
            "the secret access key does not match access key ID {}",
            dev.id
        ),
        "a wrong secret",
    );
    // 2. A forged token: the signature's last character changed.
    let mut forged = token.clone();
    let last = forged.pop().expect("token");
    forged.push(if last == 'A' { 'B' } else { 'A' });
    refused(
        &a.reg,
        &Login::token(&forged),
        "signature does not match",
        "an altered token",
    );
    // 3. The expired token.
    let wait = Duration::from_millis(3500).saturating_sub(issued.elapsed());
    thread::sleep(wait);
    refused(
        &expiring.reg,
        &Login::token(&short),
        "authorization token expired at",
        "an expired token",
    );
    // 4. A token from another region: same master key, so only the region differs.
    refused(
        &europe.reg,
        &Login::token(&token),
        "authorization token was issued for region us-east-1, but this registry serves \
         region eu-west-1",
        "a us-east-1 token in eu-west-1",
    );
    // (Without the shared key the signature is what fails.)
    let r = call(
        "GET",
        &expiring.reg.url("/v2/"),
        Some(&Login::token(&token)),
        &[],
        None,
    );
    assert_unauthorized(&expiring.reg, &r, "signature does not match");
}

/// Issue 3 "Bootstrap": on first start `berth serve` writes the administrator's key to
/// `<data-dir>/admin-credentials`, mode 0600, in the AWS shared-credentials format, so
/// that `AWS_SHARED_CREDENTIALS_FILE=<it> aws ecr get-login-password` (and `berth login`)
/// work; the master key file is 0600 too, and the log names the file, never the secret.
#[test]
fn bootstrap_admin_credentials_file_is_private_and_works_with_the_aws_cli() {
    const T: &str = "bootstrap_admin_credentials_file_is_private_and_works_with_the_aws_cli";
    if !ready(T, &["aws"]) {
        return;
    }
    use std::os::unix::fs::PermissionsExt;
    let b = Secured::start(ACCOUNT, &[]);
    let file = b.reg.data_dir().join("admin-credentials");
    for f in [&file, &b.reg.data_dir().join("master.key")] {
        let mode = fs::metadata(f).expect("stat").permissions().mode() & 0o777;
        assert_eq!(mode, 0o600, "mode of {}", f.display());
    }
    let text = fs::read_to_string(&file).expect("admin-credentials");
    assert!(
        text.contains("[default]") && b.admin.id.starts_with("AKIA"),
        "{text}"
    );

    let pw = password(&aws_login_password(&b.url(), None, Some(&file)));
    let r = call(
        "GET",
        &b.reg.url("/v2/"),
        Some(&Login::token(&pw)),
        &[],
        None,
    );
    assert_eq!(r.status, 200, "{}", r.describe());
    let mut c = berth();
    c.args(["login", "--registry", &b.url()]);
    clean_aws_env(&mut c);
    c.env("AWS_SHARED_CREDENTIALS_FILE", &file);
    let pw2 = password(&run_unchecked(&mut c, SHORT));
    let r = call(
        "GET",
        &b.reg.url("/v2/"),
        Some(&Login::token(&pw2)),
        &[],
        None,
    );
    assert_eq!(r.status, 200, "{}", r.describe());

    let log = fs::read_to_string(b.reg.log_path()).expect("server log");
    assert!(
        log.contains("admin-credentials"),
        "the log must say where the administrator's key is:\n{log}"
    );
    assert!(
        !log.contains(&b.admin.secret),
        "the administrator's secret is in the server log"
    );
}

// ---------------------------------------------------------------------------------
// Anonymous access.
// ---------------------------------------------------------------------------------

/// Pushes to public/app and private/app, and gives public/app the policy of a public
/// repository: `"Principal": "*"` may pull.
fn public_repository(b: &Secured) -> String {
    let img = Layout::new(&unique("public"));
    let pushed = b.push(&img, "public/app:v1");
    b.push(&img, "private/app:v1");
    b.set_repository_policy(
        "public/app",
        &resource_policy(vec![statement("PublicPull", "Allow", json!("*"), &PULL)]),
    );
    b.sync();
    pushed
}

/// Issue 3 "Identity" (anonymous access only when configured) and ECR_REFERENCE §4.2:
/// a secured server answers an anonymous `GET /v2/` (and any repository request) with
/// 401, ECR's `WWW-Authenticate: Basic realm="http://<host>/",service="ecr.amazonaws.com"`,
/// `Docker-Distribution-Api-Version` and an `UNAUTHORIZED` body; a repository policy with
/// `"Principal": "*"` allowing pulls lets curl fetch the manifest and blobs without
/// credentials (and an authenticated user without policies pull), while anonymous pushes
/// there, and anonymous pulls of other repositories, still get 401 with the challenge.
#[test]
fn anonymous_is_challenged_and_a_public_policy_allows_only_pulls() {
    const T: &str = "anonymous_is_challenged_and_a_public_policy_allows_only_pulls";
    if !ready(T, &["skopeo", "umoci", "curl"]) {
        return;
    }
    let b = Secured::start(ACCOUNT, &[]);
    let r = http("GET", &b.reg.url("/v2/"), &[], None);
    assert_unauthorized(&b.reg, &r, "authentication required");
    let carol = b.user("carol", None).login();
    let pushed = public_repository(&b);

    // curl, no credentials: the manifest and its blobs.
    let dir = tempfile::tempdir().expect("temp dir");
    let curl = |path: &str, out: &Path| {
        run(
            Command::new("curl")
                .args(["-sSf", "-H"])
                .arg(format!("Accept: {MANIFEST_ACCEPT}"))
                .arg("-o")
                .arg(out)
                .arg(b.reg.url(path)),
            SHORT,
        );
        fs::read(out).expect("curl output")
    };
    let manifest = curl("/v2/public/app/manifests/v1", &dir.path().join("m"));
    assert_eq!(sha256_digest(&manifest), pushed, "manifest fetched by curl");
    let m: Value = serde_json::from_slice(&manifest).expect("manifest JSON");
    let mut blobs = vec![m["config"]["digest"].as_str().expect("config").to_string()];
    blobs.extend(
        m["layers"]
            .as_array()
            .expect("layers")
            .iter()
            .map(|l| l["digest"].as_str().expect("digest").to_string()),
    );
    for (i, digest) in blobs.iter().enumerate() {
        let bytes = curl(
            &format!("/v2/public/app/blobs/{digest}"),
            &dir.path().join(format!("b{i}")),
        );
        assert_eq!(&sha256_digest(&bytes), digest, "blob fetched by curl");
    }
    // "*" names authenticated callers too.
    assert_pulls(
        &b.image("public/app:v1"),
        As::Creds(&carol),
        &pushed,
        "carol (no policy of her own)",
    );

    // Anonymous pushes are still challenged...
    let img = Layout::new(&unique("anonymous-push"));
    let o = skopeo_push(&img, &b.image("public/app:v2"), As::Anonymous);
    assert_refused(&o, "an anonymous push", &[]);
    let r = call(
        "POST",
        &b.reg.url("/v2/public/app/blobs/uploads/"),
        None,
        &[],
        None,
    );
    assert_unauthorized(&b.reg, &r, "ecr:InitiateLayerUpload");
    let r = call(
        "PUT",
        &b.reg.url("/v2/public/app/manifests/v2"),
        None,
        &[("Content-Type", "application/vnd.oci.image.manifest.v1+json")],
        Some(&manifest),
    );
    assert_unauthorized(&b.reg, &r, "ecr:PutImage");
    // ...and so are anonymous pulls of other repositories.
    let r = manifest_as(&b, "private/app", "v1", None);
    assert_unauthorized(&b.reg, &r, "ecr:BatchGetImage");
    let (o, _) = skopeo_pull(&b.image("private/app:v1"), As::Anonymous);
    assert_refused(&o, "an anonymous pull of private/app", &["unauthorized"]);
}

/// Issue 3 (public pulls through `"Principal": "*"`) with the clients that users run
/// without credentials: skopeo `--src-no-creds` and podman with an empty auth file pull a
/// public repository. Both answer the `Basic` challenge of `/v2/` by sending
/// `Authorization: Basic Og==` (an empty user and password; containers/image does this
/// whenever it has no credentials), which a registry must treat as anonymous.
///
/// Regression: Berth once took that for access key ID "" and answered 401.
#[test]
fn anonymous_skopeo_and_podman_pull_a_public_repository() {
    const T: &str = "anonymous_skopeo_and_podman_pull_a_public_repository";
    if !ready(T, &["skopeo", "podman", "umoci"]) {
        return;
    }
    let b = Secured::start(ACCOUNT, &[]);
    let pushed = public_repository(&b);
    let image = b.image("public/app:v1");

    let c = Containers::new();
    let auth = c.path().join("empty-auth.json");
    fs::write(&auth, "{}").expect("auth file");
    let o = run_unchecked(
        c.podman()
            .env("REGISTRY_AUTH_FILE", &auth)
            .args(["pull", "--tls-verify=false", &image]),
        LONG,
    );
    let (so, digest) = skopeo_pull(&image, As::Anonymous);
    assert!(
        so.success() && o.success(),
        "anonymous pulls of a repository whose policy allows \"Principal\": \"*\" must \
         work:\n{}\n{}",
        so.describe(),
        o.describe()
    );
    assert_eq!(digest.as_deref(), Some(pushed.as_str()));
}

// ---------------------------------------------------------------------------------
// Audit, and no secrets in logs.
// ---------------------------------------------------------------------------------

/// The records `berth admin audit --json <filters>` prints (one JSON object a line).
fn audit_rows(b: &Secured, filters: &[&str]) -> Vec<Value> {
    let mut args = vec!["audit", "--json", "--limit", "10000"];
    args.extend_from_slice(filters);
    let o = b.admin(&args);
    o.stdout
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| {
            serde_json::from_str(l)
                .unwrap_or_else(|e| panic!("audit line is not JSON ({e}): {l}\n{}", o.describe()))
        })
        .collect()
}

fn field<'a>(row: &'a Value, k: &str) -> &'a str {
    row[k].as_str().unwrap_or_default()
}

/// Issue 3 "Audit" and "No secret or token ever appears in a log line": after mallory's
/// pulls are refused (no policy; then an explicit Deny with Sid DenyMallory),
/// `berth admin audit --decision deny --json` lists each with principal, action,
/// resource, decision, source IP and a reason (the implicit deny; the Sid that denied),
/// and the failed authentication with a wrong secret; `--decision allow` lists only
/// allows. The server runs at `--log-level trace`, and neither its log nor the audit trail
/// contains any secret that was used: access-key secrets, the wrong secret, token
/// passwords and Basic credentials, an assumed role's secret and session token.
#[test]
fn audit_records_denials_with_reason_and_logs_hold_no_secrets() {
    const T: &str = "audit_records_denials_with_reason_and_logs_hold_no_secrets";
    if !ready(T, &["skopeo", "umoci"]) {
        return;
    }
    let b = Secured::start(ACCOUNT, &["--log-level", "trace"]);
    let img = Layout::new(&unique("audit"));
    let pushed = b.push(&img, "team/secret:v1");
    let image = b.image("team/secret:v1");
    let repo = b.arn("team/secret");
    let mallory = b.user("mallory", None);
    let mallory_arn = b.user_arn("mallory");
    b.admin(&["role", "create", "deployer"]);
    b.put_identity_policy(
        &["--role", "deployer"],
        "Pull",
        &identity_policy(
            "Allow",
            &[
                "ecr:GetAuthorizationToken",
                "ecr:BatchGetImage",
                "ecr:GetDownloadUrlForLayer",
                "ecr:BatchCheckLayerAvailability",
            ],
            "*",
        ),
    );
    let temp = Creds::from_json(&b.admin(&[
        "role",
        "assume",
        "deployer",
        "--session-name",
        "audit-1",
        "--format",
        "json",
    ]));
    b.sync();

    // Refused: no policy at all, then an explicit Deny.
    let (o, _) = skopeo_pull(&image, As::Creds(&mallory.login()));
    assert_refused(
        &o,
        "mallory's pull",
        &[&denial(
            &mallory_arn,
            "ecr:BatchGetImage",
            &repo,
            Why::NoIdentityPolicy,
        )],
    );
    b.set_repository_policy(
        "team/secret",
        &resource_policy(vec![statement(
            "DenyMallory",
            "Deny",
            json!({"AWS": mallory_arn}),
            &["ecr:*"],
        )]),
    );
    b.sync();
    let (o, _) = skopeo_pull(&image, As::Creds(&mallory.login()));
    assert_refused(
        &o,
        "mallory's pull",
        &[&denial(
            &mallory_arn,
            "ecr:BatchGetImage",
            &repo,
            Why::ResourceDeny,
        )],
    );
    // A wrong secret.
    let wrong = Login {
        user: mallory.id.clone(),
        password: format!("{}Wrong", mallory.secret.chars().rev().collect::<String>()),
    };
    let r = call("GET", &b.reg.url("/v2/"), Some(&wrong), &[], None);
    assert_unauthorized(&b.reg, &r, "does not match");
    // Tokens: the administrator's, and the role session's (SigV4 with its session token).
    let admin_pw = password(&berth_login(&b.url(), &b.admin));
    assert_pulls(
        &image,
        As::Creds(&Login::token(&admin_pw)),
        &pushed,
        "the administrator",
    );
    let role_pw = password(&berth_login(&b.url(), &temp));
    assert_pulls(
        &image,
        As::Creds(&Login::token(&role_pw)),
        &pushed,
        "the deployer session",
    );

    // The audit trail.
    let denied = eventually("two denied pulls by mallory in the audit trail", || {
        let rows = audit_rows(
            &b,
            &[
                "--decision",
                "deny",
                "--principal",
                &mallory_arn,
                "--action",
                "ecr:BatchGetImage",
            ],
        );
        let explicit = rows
            .iter()
            .any(|r| field(r, "reason").contains("DenyMallory"));
        let implicit = rows
            .iter()
            .any(|r| field(r, "reason").contains("implicit deny"));
        if explicit && implicit {
            Ok(rows)
        } else {
            Err(format!("{rows:#?}"))
        }
    });
    for row in &denied {
        assert_eq!(field(row, "principal"), mallory_arn, "{row}");
        assert_eq!(field(row, "action"), "ecr:BatchGetImage", "{row}");
        assert_eq!(field(row, "resource"), repo, "{row}");
        assert_eq!(field(row, "decision"), "deny", "{row}");
        assert_eq!(field(row, "sourceIp"), "127.0.0.1", "{row}");
        assert!(!field(row, "time").is_empty(), "{row}");
    }
    // Newest first: the explicit deny came last.
    assert!(
        field(&denied[0], "reason").contains("DenyMallory"),
        "newest first: {denied:#?}"
    );
    let failed = eventually("the failed authentication in the audit trail", || {
        let rows = audit_rows(&b, &["--decision", "deny", "--action", "authenticate"]);
        rows.into_iter()
            .find(|r| field(r, "principal") == mallory.id)
            .ok_or_else(|| "not yet".to_string())
    });
    assert!(
        field(&failed, "reason").contains("does not match"),
        "the reason of a failed authentication: {failed}"
    );
    let session = format!("arn:aws:sts::{ACCOUNT}:assumed-role/deployer/audit-1");
    let allowed = eventually("the deployer's pull in the audit trail", || {
        let rows = audit_rows(&b, &["--decision", "allow", "--resource", "team/secret"]);
        if rows
            .iter()
            .any(|r| field(r, "principal") == session && field(r, "action") == "ecr:BatchGetImage")
        {
            Ok(rows)
        } else {
            Err(format!("{rows:#?}"))
        }
    });
    assert!(
        allowed
            .iter()
            .all(|r| field(r, "decision") == "allow" && field(r, "resource") == repo),
        "--decision allow --resource team/secret: {allowed:#?}"
    );

    // No secret anywhere.
    let log = fs::read_to_string(b.reg.log_path()).expect("server log");
    let trail = b.admin(&["audit", "--limit", "100000"]).stdout;
    let token = temp.session_token.clone().expect("session token");
    let secrets = [
        ("the administrator's secret", b.admin.secret.clone()),
        ("mallory's secret", mallory.secret.clone()),
        ("a wrong secret", wrong.password.clone()),
        ("the administrator's token password", admin_pw.clone()),
        ("the deployer's token password", role_pw.clone()),
        ("the deployer's secret", temp.secret.clone()),
        ("the deployer's session token", token),
        ("a Basic credential", B64.encode(format!("AWS:{admin_pw}"))),
        ("a Basic credential", B64.encode(mallory.login().pair())),
    ];
    for (what, s) in &secrets {
        assert!(
            !log.contains(s.as_str()),
            "{what} appears in the server log ({})",
            b.reg.log_path().display()
        );
        assert!(
            !trail.contains(s.as_str()),
            "{what} appears in the audit trail"
        );
    }
    assert!(
        log.contains("access decision"),
        "the log at trace level should hold the decisions (is it the right file?)"
    );
}

// ---------------------------------------------------------------------------------
// `berth admin` while the server is busy.
// ---------------------------------------------------------------------------------

/// `berth admin` "works on the database while the server runs" (issue 3: `berth admin`
/// subcommands attach policies; the server picks them up): 40 `repository-policy set` and
/// 40 `registry-policy put`, made while a client pulls (every request writes audit
/// records), must all succeed.
///
/// Regression: the writes that read the previous document first ran in a deferred
/// transaction and failed at once with "database is locked" when the server committed in
/// between; every write transaction now starts with `BEGIN IMMEDIATE`.
#[test]
fn admin_policy_changes_succeed_while_the_server_is_busy() {
    const T: &str = "admin_policy_changes_succeed_while_the_server_is_busy";
    if !ready(T, &["skopeo", "umoci"]) {
        return;
    }
    let b = Secured::start(ACCOUNT, &[]);
    let img = Layout::new(&unique("busy"));
    b.push(&img, "team/app:v1");
    let stop = Arc::new(AtomicBool::new(false));
    let requests = Arc::new(AtomicU64::new(0));
    let client = {
        let (stop, requests) = (stop.clone(), requests.clone());
        let url = b.reg.url("/v2/team/app/manifests/v1");
        let auth = b.admin.login().header();
        thread::spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                let r = http(
                    "GET",
                    &url,
                    &[("Authorization", &auth), ("Accept", MANIFEST_ACCEPT)],
                    None,
                );
                assert_eq!(r.status, 200, "{}", r.describe());
                requests.fetch_add(1, Ordering::Relaxed);
            }
        })
    };
    let doc =
        resource_policy(vec![statement("PublicPull", "Allow", json!("*"), &PULL)]).to_string();
    let text = fs::read_to_string(fixture("auth_registry_policy.json")).expect("fixture");
    let mut failures = Vec::new();
    for _ in 0..40 {
        let set = b.admin_unchecked(&["repository-policy", "set", "team/app", "--document", &doc]);
        let put = b.admin_unchecked(&["registry-policy", "put", "--document", &text]);
        failures.extend(
            [set, put]
                .into_iter()
                .filter(|o| !o.success())
                .map(|o| o.describe()),
        );
    }
    stop.store(true, Ordering::Relaxed);
    client.join().expect("client thread");
    assert!(
        requests.load(Ordering::Relaxed) > 0,
        "the client made no request"
    );
    assert!(
        failures.is_empty(),
        "{} of 80 `berth admin` policy changes failed while the server served {} \
         requests; the first:\n{}",
        failures.len(),
        requests.load(Ordering::Relaxed),
        failures[0]
    );
}

// ---------------------------------------------------------------------------------
// Connections after early answers (issue 17).
// ---------------------------------------------------------------------------------

/// Regression (issue 17): Go clients (docker, containerd, the conformance suite) send a
/// PATCH or PUT with a body first without credentials and retry with credentials on the
/// same kept-alive connection. Berth answered 401 before reading the body and closed the
/// connection without `Connection: close`, so the retry died with EOF / broken pipe and
/// pushes failed at random. A real Go `net/http` client
/// (`tests/fixtures/keepalive/main.go`), four workers at once, does unauthenticated then
/// authenticated PATCH and PUT with bodies (64 KiB, and every tenth round 3 MiB, more than
/// the server drains), plus PATCHes answered 404: no request may fail.
#[test]
fn go_client_keeps_connections_after_early_answers() {
    let test = "go_client_keeps_connections_after_early_answers";
    if !ready(test, &["go"]) {
        return;
    }
    let b = Secured::start(ACCOUNT, &[]);
    let dir = tempfile::tempdir().expect("temp dir");
    let bin = dir.path().join("keepalive");
    run(
        Command::new("go")
            .arg("build")
            .arg("-o")
            .arg(&bin)
            .arg(fixture("keepalive/main.go"))
            .env("GOCACHE", dir.path().join("gocache"))
            .env("GOPATH", dir.path().join("gopath"))
            .env("GOFLAGS", "-mod=mod")
            .env("GOPROXY", "off")
            .env("GO111MODULE", "off"),
        LONG,
    );
    let login = b.admin.login();
    let o = run_unchecked(
        Command::new(&bin).args([
            &b.url(),
            "team/keepalive",
            &login.user,
            &login.password,
            "4",
            "50",
        ]),
        LONG,
    );
    assert!(
        o.success(),
        "requests failed over kept-alive connections:\n{}\nserver log:\n{}",
        o.describe(),
        b.reg.log_tail()
    );
}

// ---------------------------------------------------------------------------------
// Workloads: role sessions and service principals (issue 17), and docker under load.
// ---------------------------------------------------------------------------------

/// The fenced block (of any language) that follows `marker` in the README.
fn readme_block(marker: &str) -> String {
    let readme = fs::read_to_string(workspace_root().join("README.md")).expect("README.md");
    let at = readme
        .find(marker)
        .unwrap_or_else(|| panic!("README.md has no {marker}"));
    let rest = readme[at + marker.len()..].trim_start_matches('\n');
    let body = &rest[rest.find('\n').expect("a fenced block") + 1..];
    body[..body.find("\n```").expect("an unterminated block") + 1].to_string()
}

/// Issue 17 "Using it": the README's workload examples work verbatim with docker, on one
/// server.
/// - A role session (ECS's task execution role): the README's `pull.json`
///   (`<!-- readme-role-policy -->`, with ecr:GetAuthorizationToken as AWS's managed
///   AmazonECSTaskExecutionRolePolicy has) on role ECSTaskExecutionRole of account
///   222222222222, the README's `repo-policy.json` on production/myapp, and the README's
///   shell block (`role assume --format env`, `berth login | docker login`, `docker pull`)
///   run by bash as written: the pulled image is the one pushed.
/// - A service principal (ecs-tasks.amazonaws.com) with its access key: `berth login`
///   (GetAuthorizationToken) gives it a token, which docker logs in with and pulls the
///   repository whose policy names `{"Service": …}`; pushing is refused with AWS's
///   message; the key itself also works as docker's Basic credentials. Before this fix a
///   service could get no token at all.
#[test]
fn role_sessions_and_service_principals_log_in_and_pull_with_docker_as_documented() {
    const T: &str =
        "role_sessions_and_service_principals_log_in_and_pull_with_docker_as_documented";
    if !ready(T, &["docker", "busybox-static"]) {
        return;
    }
    let b = Secured::start(ACCOUNT, &[]);
    let d = docker();
    let config = tempfile::tempdir().expect("temp dir");
    let dk = || {
        let mut c = d.cmd();
        c.env("DOCKER_CONFIG", config.path());
        c
    };
    let host = b.reg.host.clone();
    let login = |l: &Login| {
        let mut c = dk();
        c.args(["login", "-u", &l.user, "--password-stdin", &host]);
        let o = stdin_login(&c, &l.password);
        assert!(o.success(), "docker login as {}:\n{}", l.user, o.describe());
    };
    let image = b.image("production/myapp:1");
    let image_id = d.build_busybox_image(&image, &unique("workloads"));
    login(&b.admin.login());
    run(dk().args(["push", &image]), LONG);
    run(dk().args(["logout", &host]), SHORT);

    // The role, with the README's policies.
    b.admin(&["account", "create", OTHER_ACCOUNT, "--name", "partner"]);
    b.admin(&[
        "role",
        "create",
        "ECSTaskExecutionRole",
        "--account",
        OTHER_ACCOUNT,
    ]);
    let role_policy: Value =
        serde_json::from_str(&readme_block("<!-- readme-role-policy -->")).expect("pull.json");
    b.put_identity_policy(
        &["--role", "ECSTaskExecutionRole", "--account", OTHER_ACCOUNT],
        "pull",
        &role_policy,
    );
    let repo_policy: Value =
        serde_json::from_str(&readme_block("<!-- readme-role-repo-policy -->"))
            .expect("repo-policy.json");
    b.set_repository_policy("production/myapp", &repo_policy);
    b.sync();
    run(dk().args(["rmi", "-f", &image_id]), SHORT);
    let script = readme_block("<!-- readme-role-login -->");
    let berth_bin = PathBuf::from(env!("CARGO_BIN_EXE_berth"));
    let path = format!(
        "{}:{}",
        berth_bin.parent().unwrap().display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let mut sh = Command::new("bash");
    clean_aws_env(&mut sh);
    sh.args(["-euo", "pipefail", "-c", &script])
        .env("PATH", path)
        .env("BERTH", &host)
        .env("BERTH_DATA_DIR", b.reg.data_dir())
        .env("DOCKER_HOST", &d.host)
        .env("DOCKER_CONFIG", config.path());
    let o = run_unchecked(&mut sh, LONG);
    assert!(
        o.success(),
        "the README's role session block failed:\n{script}\n{}\nserver log:\n{}",
        o.describe(),
        b.reg.log_tail()
    );
    assert_eq!(
        d.image_id(&image),
        image_id,
        "the image the role session pulled"
    );
    run(dk().args(["logout", &host]), SHORT);

    // The service principal, with a repository policy naming it.
    b.admin(&["service", "create", SERVICE]);
    let service = b.key(&["--service", SERVICE]);
    b.set_repository_policy(
        "production/myapp",
        &resource_policy(vec![
            repo_policy["Statement"][0].clone(),
            statement(
                "AllowEcsPull",
                "Allow",
                json!({ "Service": SERVICE }),
                &PULL,
            ),
        ]),
    );
    b.sync();
    let token = berth_login(&b.url(), &service);
    assert!(
        token.success(),
        "berth login as {SERVICE}:\n{}",
        token.describe()
    );
    run(dk().args(["rmi", "-f", &image_id]), SHORT);
    login(&Login::token(&password(&token)));
    run(dk().args(["pull", &image]), LONG);
    assert_eq!(d.image_id(&image), image_id, "the image {SERVICE} pulled");
    let other = b.image("production/myapp:from-service");
    run(dk().args(["tag", &image, &other]), SHORT);
    let o = run_unchecked(dk().args(["push", &other]), LONG);
    assert!(
        !o.success() && format!("{}{}", o.stdout, o.stderr).contains("not authorized to perform"),
        "{SERVICE} must not push:\n{}",
        o.describe()
    );
    run(dk().args(["logout", &host]), SHORT);
    run(dk().args(["rmi", "-f", &image_id]), SHORT);
    login(&service.login());
    run(dk().args(["pull", &image]), LONG);
    assert_eq!(d.image_id(&image), image_id, "pulled with the key as Basic");
    run(dk().args(["logout", &host]), SHORT);
}

/// Issue 17 "Connections die after a 401 to a request with a body … test … with docker
/// under load": four `docker push`es of distinct images at once, logged in with a token
/// (authentication on), all succeed with the digest the registry then serves, and none
/// reports EOF, a broken pipe or a reset connection.
#[test]
fn concurrent_docker_pushes_with_authentication_all_succeed() {
    const T: &str = "concurrent_docker_pushes_with_authentication_all_succeed";
    if !ready(T, &["docker", "busybox-static"]) {
        return;
    }
    let b = Secured::start(ACCOUNT, &[]);
    let d = docker();
    let config = tempfile::tempdir().expect("temp dir");
    let token = Login::token(&password(&berth_login(&b.url(), &b.admin)));
    let mut c = d.cmd();
    c.env("DOCKER_CONFIG", config.path()).args([
        "login",
        "-u",
        "AWS",
        "--password-stdin",
        &b.reg.host,
    ]);
    let o = stdin_login(&c, &token.password);
    assert!(o.success(), "docker login:\n{}", o.describe());
    let images: Vec<String> = (0..4)
        .map(|i| {
            let image = b.image(&format!("load/app{i}:v1"));
            d.build_busybox_image(&image, &unique("load"));
            image
        })
        .collect();
    let pushes: Vec<_> = images
        .iter()
        .map(|image| {
            let mut c = d.cmd();
            c.env("DOCKER_CONFIG", config.path()).args(["push", image]);
            let image = image.clone();
            thread::spawn(move || (image, run_unchecked(&mut c, LONG)))
        })
        .collect();
    for p in pushes {
        let (image, o) = p.join().expect("push thread");
        let all = format!("{}{}", o.stdout, o.stderr).to_lowercase();
        assert!(
            o.success()
                && !all.contains("eof")
                && !all.contains("broken pipe")
                && !all.contains("connection reset"),
            "docker push {image} under load:\n{}\nserver log:\n{}",
            o.describe(),
            b.reg.log_tail()
        );
        let pushed = digest_after(&o.stdout, "digest: ")
            .unwrap_or_else(|| panic!("no digest in docker push output:\n{}", o.describe()));
        let (repo, tag) = image
            .split_once('/')
            .map(|(_, rest)| rest.rsplit_once(':').unwrap())
            .unwrap();
        let served = manifest_as(&b, repo, tag, Some(&b.admin.login()));
        assert_eq!(sha256_digest(&served.body), pushed, "{}", served.describe());
    }
}
