//! Federation for CI with no static keys (issue 13): an OIDC issuer written in this test
//! (an RSA and a P-256 key made with `openssl`, its JWKS in a file the server reads) signs
//! web identity tokens; the real AWS CLI and boto3 exchange them with Berth's STS API
//! (`AssumeRoleWithWebIdentity`, the call their web-identity credential providers make when
//! `AWS_WEB_IDENTITY_TOKEN_FILE` and `AWS_ROLE_ARN` are set) for temporary credentials, and
//! use those against the ECR API and `sts get-caller-identity`.
//!
//! AWS behaviour checked (STS API Reference: AssumeRoleWithWebIdentity, AssumeRole,
//! GetCallerIdentity; IAM User Guide, "Role trust policies" and "Available keys for AWS
//! OIDC federation"): the trust policy's `Federated` principal and its conditions on
//! `<provider>:sub` (StringLike wildcards) and `<provider>:aud`; refusals with STS's codes —
//! `AccessDenied` for a role whose trust policy does not match the `sub`,
//! `ExpiredTokenException`, `InvalidIdentityToken` for a wrong audience, an unknown key ID
//! and an untrusted issuer, `ValidationError` for a `DurationSeconds` above the role's
//! `MaxSessionDuration`; `AssumeRole` by a signed-in user named in a trust policy (and
//! refused by one that does not name it, even for an administrator whose identity policy
//! allows `*`: the trust policy must allow); the
//! session's ARN `arn:aws:sts::<account>:assumed-role/<role>/<session>`.
//!
//! Then docker pushes and pulls through `docker-credential-berth` (`credHelpers`) with the
//! web identity as its only credential, nothing written to `config.json`, and `berth image
//! digest` resolves the pushed tag to the pushed digest.
//!
//! Run: `cargo test -p berth --test federation`.

mod common;

use common::*;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{SystemTime, UNIX_EPOCH};

const ACCOUNT: &str = "111111111111";
const ISSUER: &str = "https://issuer.ci.test/oidc";
const PROVIDER: &str = "issuer.ci.test/oidc";
const AUDIENCE: &str = "sts.amazonaws.com";

/// The test's OIDC issuer: two signing keys, made with the `openssl` CLI.
struct Issuer {
    rsa: EncodingKey,
    ec: EncodingKey,
}

fn openssl(args: &[&str]) -> Vec<u8> {
    let o = Command::new("openssl")
        .args(args)
        .output()
        .expect("openssl");
    assert!(
        o.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    o.stdout
}

fn b64url(bytes: &[u8]) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

impl Issuer {
    /// Makes the keys under `dir` and writes the JWKS (RFC 7517) to `dir/jwks.json`.
    fn new(dir: &Path) -> Issuer {
        let rsa_pem = dir.join("rsa.pem");
        let ec_pem = dir.join("ec.pem");
        openssl(&[
            "genpkey",
            "-algorithm",
            "RSA",
            "-pkeyopt",
            "rsa_keygen_bits:2048",
            "-out",
            rsa_pem.to_str().unwrap(),
        ]);
        openssl(&[
            "genpkey",
            "-algorithm",
            "EC",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-out",
            ec_pem.to_str().unwrap(),
        ]);
        let modulus = String::from_utf8(openssl(&[
            "rsa",
            "-in",
            rsa_pem.to_str().unwrap(),
            "-noout",
            "-modulus",
        ]))
        .unwrap();
        let n = hex::decode(modulus.trim().trim_start_matches("Modulus=")).unwrap();
        // A P-256 SubjectPublicKeyInfo ends with the uncompressed point 04 || x || y.
        let spki = openssl(&[
            "pkey",
            "-in",
            ec_pem.to_str().unwrap(),
            "-pubout",
            "-outform",
            "DER",
        ]);
        let point = &spki[spki.len() - 65..];
        assert_eq!(point[0], 4, "uncompressed EC point");
        let jwks = json!({"keys": [
            {"kty": "RSA", "kid": "rsa-1", "use": "sig", "alg": "RS256",
             "n": b64url(&n), "e": b64url(&[1, 0, 1])},
            {"kty": "EC", "kid": "ec-1", "use": "sig", "alg": "ES256", "crv": "P-256",
             "x": b64url(&point[1..33]), "y": b64url(&point[33..])},
        ]});
        std::fs::write(dir.join("jwks.json"), jwks.to_string()).unwrap();
        Issuer {
            rsa: EncodingKey::from_rsa_pem(&std::fs::read(&rsa_pem).unwrap()).unwrap(),
            ec: EncodingKey::from_ec_pem(&std::fs::read(&ec_pem).unwrap()).unwrap(),
        }
    }

    /// A token like GitHub Actions' (`iss`, `aud`, `sub`, `iat`, `exp`), signed with the
    /// RSA key (`kid` rsa-1) or the EC key (ec-1); `kid` overrides the header's key ID.
    fn token(&self, alg: Algorithm, kid: &str, claims: Value) -> String {
        let mut header = Header::new(alg);
        header.kid = Some(kid.to_string());
        let key = match alg {
            Algorithm::ES256 => &self.ec,
            _ => &self.rsa,
        };
        jsonwebtoken::encode(&header, &claims, key).unwrap()
    }

    fn claims(sub: &str, aud: &str, lifetime: i64) -> Value {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_secs() as i64;
        json!({"iss": ISSUER, "aud": aud, "sub": sub, "iat": now - 600, "exp": now + lifetime})
    }
}

fn trust(sub_pattern: &str) -> String {
    json!({
        "Version": "2012-10-17",
        "Statement": [{
            "Effect": "Allow",
            "Principal": {"Federated": format!("arn:aws:iam::{ACCOUNT}:oidc-provider/{PROVIDER}")},
            "Action": "sts:AssumeRoleWithWebIdentity",
            "Condition": {
                "StringEquals": {format!("{PROVIDER}:aud"): AUDIENCE},
                "StringLike": {format!("{PROVIDER}:sub"): sub_pattern}
            }
        }]
    })
    .to_string()
}

/// The server's config file: the trusted issuer and three roles.
fn config(dir: &Path) -> PathBuf {
    let ecr_all = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"ecr:*","Resource":"*"}]}"#;
    let admin_may_assume = json!({
        "Version": "2012-10-17",
        "Statement": [{"Effect": "Allow",
                       "Principal": {"AWS": format!("arn:aws:iam::{ACCOUNT}:user/admin")},
                       "Action": "sts:AssumeRole"}]
    })
    .to_string();
    let toml = format!(
        "[[federation.oidc_providers]]\nissuer = {issuer:?}\naudiences = [{AUDIENCE:?}]\n\
         jwks_file = {jwks:?}\n\n\
         [[iam.roles]]\nname = \"deployer\"\nmax_session_duration = 7200\ntrust_policy = '''{t1}'''\n\
         [iam.roles.policies]\necr = '''{ecr_all}'''\n\n\
         [[iam.roles]]\nname = \"releaser\"\ntrust_policy = '''{t2}'''\n\
         [iam.roles.policies]\necr = '''{ecr_all}'''\n\n\
         [[iam.roles]]\nname = \"operator\"\ntrust_policy = '''{admin_may_assume}'''\n\
         [iam.roles.policies]\necr = '''{ecr_all}'''\n",
        issuer = ISSUER,
        jwks = dir.join("jwks.json").display().to_string(),
        t1 = trust("repo:acme/app:ref:refs/heads/*"),
        t2 = trust("repo:acme/app:environment:prod"),
    );
    let path = dir.join("berth.toml");
    std::fs::write(&path, toml).unwrap();
    path
}

/// The AWS CLI with no credentials but a web identity: the environment a CI job's OIDC
/// step leaves (`AWS_WEB_IDENTITY_TOKEN_FILE`, `AWS_ROLE_ARN`), every service's endpoint
/// at Berth (`AWS_ENDPOINT_URL`).
fn web_identity_env(c: &mut Command, reg: &Registry, token_file: &Path, role: &str) {
    aws_env(c, Path::new("/dev/null"));
    c.env("AWS_WEB_IDENTITY_TOKEN_FILE", token_file)
        .env(
            "AWS_ROLE_ARN",
            format!("arn:aws:iam::{ACCOUNT}:role/{role}"),
        )
        .env("AWS_ROLE_SESSION_NAME", "ci-run-42")
        .env("AWS_ENDPOINT_URL", reg.url(""));
}

fn aws(args: &[&str], env: impl FnOnce(&mut Command)) -> Output {
    let mut c = Command::new(aws_cli());
    env(&mut c);
    c.args(["--output", "json"]).args(args);
    run_unchecked(&mut c, SHORT)
}

/// `aws sts assume-role-with-web-identity` called directly (unsigned, as STS allows):
/// must fail with `code`; returns stderr.
fn refused(reg: &Registry, role: &str, token: &str, extra: &[&str], code: &str) -> String {
    let o = aws(
        &[
            [
                "sts",
                "assume-role-with-web-identity",
                "--role-arn",
                &format!("arn:aws:iam::{ACCOUNT}:role/{role}"),
                "--role-session-name",
                "ci",
                "--web-identity-token",
                token,
            ]
            .as_slice(),
            extra,
        ]
        .concat(),
        |c| {
            aws_env(c, Path::new("/dev/null"));
            c.env("AWS_ENDPOINT_URL", reg.url(""));
        },
    );
    assert!(!o.success(), "expected {code}:\n{}", o.describe());
    assert!(
        o.stderr.contains(&format!("An error occurred ({code})")),
        "expected {code}:\n{}",
        o.describe()
    );
    o.stderr
}

#[test]
fn web_identity_tokens_become_role_sessions_for_the_aws_cli_and_boto3() {
    if !require(
        "web_identity_tokens_become_role_sessions_for_the_aws_cli_and_boto3",
        &["aws", "boto3", "openssl"],
    ) {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let issuer = Issuer::new(dir.path());
    let cfg = config(dir.path());
    let reg =
        Registry::start_secured(&["--account-id", ACCOUNT, "--config", cfg.to_str().unwrap()]);

    // 1. The AWS CLI's web identity provider: RS256 token whose sub matches deployer's
    //    StringLike pattern → a session; sts get-caller-identity names it, ECR works.
    let token_file = dir.path().join("token");
    let main_token = issuer.token(
        Algorithm::RS256,
        "rsa-1",
        Issuer::claims("repo:acme/app:ref:refs/heads/main", AUDIENCE, 600),
    );
    std::fs::write(&token_file, &main_token).unwrap();
    let o = aws(&["sts", "get-caller-identity"], |c| {
        web_identity_env(c, &reg, &token_file, "deployer")
    });
    assert!(o.success(), "{}", o.describe());
    let id = parse_json(&o);
    assert_eq!(
        id["Arn"],
        format!("arn:aws:sts::{ACCOUNT}:assumed-role/deployer/ci-run-42")
    );
    assert_eq!(id["Account"], ACCOUNT);
    assert!(
        id["UserId"].as_str().unwrap().ends_with(":ci-run-42"),
        "{id}"
    );
    for args in [
        ["ecr", "create-repository", "--repository-name", "acme/app"].as_slice(),
        ["ecr", "describe-repositories"].as_slice(),
    ] {
        let o = aws(args, |c| web_identity_env(c, &reg, &token_file, "deployer"));
        assert!(o.success(), "{}", o.describe());
    }
    let o = aws(&["ecr", "describe-repositories"], |c| {
        web_identity_env(c, &reg, &token_file, "deployer")
    });
    assert_eq!(
        parse_json(&o)["repositories"][0]["repositoryName"],
        "acme/app",
        "{}",
        o.describe()
    );

    // 2. The same token for `releaser`, whose trust policy wants the prod environment's
    //    sub: refused, with the reason (AccessDenied, as STS says it).
    let e = refused(&reg, "releaser", &main_token, &[], "AccessDenied");
    assert!(
        e.contains("Not authorized to perform sts:AssumeRoleWithWebIdentity"),
        "{e}"
    );
    assert!(e.contains("repo:acme/app:ref:refs/heads/main"), "{e}");
    // And through the CLI's credential provider, the command fails before any ECR call.
    let o = aws(&["ecr", "describe-repositories"], |c| {
        web_identity_env(c, &reg, &token_file, "releaser")
    });
    assert!(
        !o.success() && o.stderr.contains("AccessDenied"),
        "{}",
        o.describe()
    );

    // 3. Refusals of the token itself.
    let expired = issuer.token(
        Algorithm::RS256,
        "rsa-1",
        Issuer::claims("repo:acme/app:ref:refs/heads/main", AUDIENCE, -3600),
    );
    refused(&reg, "deployer", &expired, &[], "ExpiredTokenException");
    let wrong_aud = issuer.token(
        Algorithm::RS256,
        "rsa-1",
        Issuer::claims("repo:acme/app:ref:refs/heads/main", "another-client", 600),
    );
    let e = refused(&reg, "deployer", &wrong_aud, &[], "InvalidIdentityToken");
    assert!(e.contains("Incorrect token audience"), "{e}");
    let unknown_kid = issuer.token(
        Algorithm::RS256,
        "rotated-away",
        Issuer::claims("repo:acme/app:ref:refs/heads/main", AUDIENCE, 600),
    );
    let e = refused(&reg, "deployer", &unknown_kid, &[], "InvalidIdentityToken");
    assert!(e.contains("rotated-away"), "{e}");
    // Signed by the right key but claiming another issuer: not a trusted provider.
    let mut other = Issuer::claims("repo:acme/app:ref:refs/heads/main", AUDIENCE, 600);
    other["iss"] = json!("https://evil.example");
    let e = refused(
        &reg,
        "deployer",
        &issuer.token(Algorithm::RS256, "rsa-1", other),
        &[],
        "InvalidIdentityToken",
    );
    assert!(e.contains("No OpenIDConnect provider"), "{e}");
    // A key ID of the EC key on an RS256 token: the signature does not verify.
    refused(
        &reg,
        "deployer",
        &issuer.token(
            Algorithm::RS256,
            "ec-1",
            Issuer::claims("repo:acme/app:ref:refs/heads/main", AUDIENCE, 600),
        ),
        &[],
        "InvalidIdentityToken",
    );
    // DurationSeconds above deployer's MaxSessionDuration (7200).
    let e = refused(
        &reg,
        "deployer",
        &main_token,
        &["--duration-seconds", "7201"],
        "ValidationError",
    );
    assert!(e.contains("MaxSessionDuration"), "{e}");

    // 4. boto3: an ES256 token through boto3's own web identity provider, and the direct
    //    call with its response members.
    let es_token_file = dir.path().join("es-token");
    std::fs::write(
        &es_token_file,
        issuer.token(
            Algorithm::ES256,
            "ec-1",
            Issuer::claims("repo:acme/app:ref:refs/heads/feature-x", AUDIENCE, 600),
        ),
    )
    .unwrap();
    let script = r#"
import json, os, sys, boto3
from botocore.config import Config
cfg = Config(retries={"total_max_attempts": 1})
s = boto3.session.Session(region_name="us-east-1")
ident = s.client("sts", config=cfg).get_caller_identity()
repos = s.client("ecr", config=cfg).describe_repositories()["repositories"]
token = open(os.environ["AWS_WEB_IDENTITY_TOKEN_FILE"]).read()
plain = boto3.session.Session(region_name="us-east-1", aws_access_key_id="x", aws_secret_access_key="x")
r = plain.client("sts", config=cfg).assume_role_with_web_identity(
    RoleArn=os.environ["AWS_ROLE_ARN"], RoleSessionName="direct", WebIdentityToken=token,
    DurationSeconds=900)
print(json.dumps({
    "arn": ident["Arn"], "repos": [x["repositoryName"] for x in repos],
    "session_arn": r["AssumedRoleUser"]["Arn"], "subject": r["SubjectFromWebIdentityToken"],
    "audience": r["Audience"], "provider": r["Provider"],
    "key": r["Credentials"]["AccessKeyId"],
    "lifetime": int(r["Credentials"]["Expiration"].timestamp()),
}))
"#;
    let mut c = Command::new(oras_python());
    web_identity_env(&mut c, &reg, &es_token_file, "deployer");
    c.args(["-c", script]);
    let o = run(&mut c, SHORT);
    let v: Value = serde_json::from_str(o.stdout.trim()).unwrap_or_else(|e| {
        panic!("{e}\n{}", o.describe());
    });
    assert_eq!(
        v["arn"],
        format!("arn:aws:sts::{ACCOUNT}:assumed-role/deployer/ci-run-42")
    );
    assert_eq!(v["repos"], json!(["acme/app"]));
    assert_eq!(
        v["session_arn"],
        format!("arn:aws:sts::{ACCOUNT}:assumed-role/deployer/direct")
    );
    assert_eq!(v["subject"], "repo:acme/app:ref:refs/heads/feature-x");
    assert_eq!(v["audience"], AUDIENCE);
    assert_eq!(v["provider"], PROVIDER);
    assert!(v["key"].as_str().unwrap().starts_with("ASIA"), "{v}");
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    let lifetime = v["lifetime"].as_i64().unwrap() - now;
    assert!(
        (800..=900).contains(&lifetime),
        "DurationSeconds=900 gives a 15-minute session, got {lifetime} s"
    );

    // 5. AssumeRole (SigV4, service sts) by the administrator, whom operator's trust
    //    policy names; the session's credentials work against ECR. deployer's trust
    //    policy names no AWS principal: refused.
    let admin = reg.data_dir().join("admin-credentials");
    let o = aws(
        &[
            "sts",
            "assume-role",
            "--role-arn",
            &format!("arn:aws:iam::{ACCOUNT}:role/operator"),
            "--role-session-name",
            "ops",
        ],
        |c| {
            aws_env(c, &admin);
            c.env("AWS_ENDPOINT_URL", reg.url(""));
        },
    );
    assert!(o.success(), "{}", o.describe());
    let creds = parse_json(&o)["Credentials"].clone();
    let o = aws(&["sts", "get-caller-identity"], |c| {
        aws_env(c, Path::new("/dev/null"));
        c.env("AWS_ENDPOINT_URL", reg.url(""))
            .env("AWS_ACCESS_KEY_ID", creds["AccessKeyId"].as_str().unwrap())
            .env(
                "AWS_SECRET_ACCESS_KEY",
                creds["SecretAccessKey"].as_str().unwrap(),
            )
            .env("AWS_SESSION_TOKEN", creds["SessionToken"].as_str().unwrap());
    });
    assert!(o.success(), "{}", o.describe());
    assert_eq!(
        parse_json(&o)["Arn"],
        format!("arn:aws:sts::{ACCOUNT}:assumed-role/operator/ops")
    );
    let o = aws(
        &[
            "sts",
            "assume-role",
            "--role-arn",
            &format!("arn:aws:iam::{ACCOUNT}:role/deployer"),
            "--role-session-name",
            "ops",
        ],
        |c| {
            aws_env(c, &admin);
            c.env("AWS_ENDPOINT_URL", reg.url(""));
        },
    );
    assert!(
        !o.success() && o.stderr.contains("An error occurred (AccessDenied)"),
        "{}",
        o.describe()
    );

    // 6. docker with `docker-credential-berth` (config.json `credHelpers`), the job's
    //    web identity its only credential: push and pull work, and config.json holds no
    //    secret afterwards (docker credential-helper protocol: `get` per command).
    if !require("docker_credential_helper", &["docker", "busybox-static"]) {
        return;
    }
    let d = docker();
    let image = reg.image("acme/app:ci");
    d.build_busybox_image(&image, "federation-credential-helper");
    let docker_config = dir.path().join("docker-config");
    std::fs::create_dir_all(&docker_config).unwrap();
    let config_json = json!({"credHelpers": {reg.host.clone(): "berth"}}).to_string();
    std::fs::write(docker_config.join("config.json"), &config_json).unwrap();
    let helper_dir = Path::new(env!("CARGO_BIN_EXE_docker-credential-berth"))
        .parent()
        .unwrap()
        .to_path_buf();
    let path = format!(
        "{}:{}",
        helper_dir.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let docker_with = |args: &[&str], web: bool| {
        let mut c = d.cmd();
        c.env("DOCKER_CONFIG", &docker_config).env("PATH", &path);
        if web {
            web_identity_env(&mut c, &reg, &token_file, "deployer");
        } else {
            aws_env(&mut c, Path::new("/dev/null"));
        }
        c.args(args);
        run_unchecked(&mut c, LONG)
    };
    // Without any credential the helper has nothing to sign with: it says why (on
    // stdout, per the protocol), and docker's push is refused.
    let mut c = Command::new(env!("CARGO_BIN_EXE_docker-credential-berth"));
    aws_env(&mut c, Path::new("/nonexistent/credentials"));
    let mut child = c
        .arg("get")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    {
        use std::io::Write as _;
        let mut stdin = child.stdin.take().unwrap();
        stdin.write_all(reg.host.as_bytes()).unwrap();
    }
    let o = child.wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&o.stdout);
    assert!(
        !o.status.success() && stdout.contains("no credentials"),
        "docker-credential-berth get without credentials: {stdout}"
    );
    let o = docker_with(&["push", &image], false);
    assert!(
        !o.success() && o.stderr.contains("no basic auth credentials"),
        "{}",
        o.describe()
    );
    let o = docker_with(&["push", &image], true);
    assert!(o.success(), "{}", o.describe());
    let digest = digest_after(&o.stdout, "digest: ").expect("docker push prints the digest");
    run(d.cmd().args(["rmi", &image]), SHORT);
    let by_digest = format!("{}@{digest}", reg.image("acme/app"));
    let o = docker_with(&["pull", &by_digest], true);
    assert!(o.success(), "{}", o.describe());
    assert_eq!(
        std::fs::read_to_string(docker_config.join("config.json")).unwrap(),
        config_json,
        "docker wrote nothing (no token, no secret) to config.json"
    );
    // Deploy by digest: `berth image digest` resolves the tag with the web identity's
    // session (DescribeImages) to what docker pushed.
    let mut c = Command::new(env!("CARGO_BIN_EXE_berth"));
    web_identity_env(&mut c, &reg, &token_file, "deployer");
    c.args(["image", "digest", "--reference-out", &image]);
    assert_eq!(run(&mut c, SHORT).stdout.trim(), by_digest);
    // The protocol's other actions keep nothing.
    let mut c = Command::new(env!("CARGO_BIN_EXE_docker-credential-berth"));
    c.arg("list");
    assert_eq!(run(&mut c, SHORT).stdout.trim(), "{}");
}
