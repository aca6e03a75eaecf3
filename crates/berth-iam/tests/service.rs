//! The identity service over a real SQLite database: bootstrap, Basic and token
//! authentication, SigV4 with temporary credentials, evaluation across accounts, the
//! audit trail, and reloads after another process changed the tables (issue 3).

use base64::Engine;
use berth_iam::audit::AuditSink;
use berth_iam::secret::Keys;
use berth_iam::service::StoredKind;
use berth_iam::sigv4::SignedRequest;
use berth_iam::{AuthError, Caller, EcrAction, Iam, IamConfig};
use berth_meta::iam::AuditQuery;
use berth_meta::SqliteMeta;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

const PULL: &str = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":["ecr:BatchGetImage","ecr:GetDownloadUrlForLayer"],"Resource":"*"}]}"#;

struct Env {
    dir: tempfile::TempDir,
    meta: Arc<SqliteMeta>,
}

impl Env {
    async fn new() -> Env {
        let dir = tempfile::tempdir().unwrap();
        let meta = Arc::new(SqliteMeta::open(&dir.path().join("m.db")).await.unwrap());
        Env { dir, meta }
    }

    async fn iam(&self, cfg: IamConfig) -> Iam {
        self.iam_with_key(cfg, 1).await
    }

    async fn iam_with_key(&self, cfg: IamConfig, key: u8) -> Iam {
        Iam::open(
            self.meta.clone(),
            Keys::from_master(&[key; 32]),
            cfg,
            AuditSink::start(self.meta.clone()),
        )
        .await
        .unwrap()
    }
}

fn cfg(account: &str) -> IamConfig {
    IamConfig {
        account_id: Some(berth_iam::AccountId::parse(account).unwrap()),
        ..Default::default()
    }
}

fn basic(user: &str, pass: &str) -> String {
    base64::engine::general_purpose::STANDARD.encode(format!("{user}:{pass}"))
}

/// A user without policies and its access key (`berth_test_support::user`).
async fn user_with_key(iam: &Iam, account: &str, name: &str) -> (String, String) {
    let k = berth_test_support::user(iam, account, name, None).await;
    (k.id, k.secret)
}

/// Issue 3, Bootstrap: the admin's key goes to a 0600 file in the AWS shared-credentials
/// format, once; the secret is stored only encrypted.
#[tokio::test]
async fn bootstrap_writes_shared_credentials_once() {
    let env = Env::new().await;
    let iam = env.iam(cfg("111111111111")).await;
    let path = env.dir.path().join("admin-credentials");
    assert_eq!(iam.bootstrap(&path).await.unwrap(), Some(path.clone()));
    let text = std::fs::read_to_string(&path).unwrap();
    assert!(
        text.contains("[default]\naws_access_key_id = AKIA"),
        "{text}"
    );
    let secret = text
        .lines()
        .find_map(|l| l.strip_prefix("aws_secret_access_key = "))
        .unwrap()
        .to_string();
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
    }
    assert_eq!(
        iam.bootstrap(&path).await.unwrap(),
        None,
        "only on first start"
    );
    // The secret is nowhere in the database files in clear.
    for f in std::fs::read_dir(env.dir.path()).unwrap() {
        let p = f.unwrap().path();
        if p.file_name().unwrap().to_string_lossy().starts_with("m.db") {
            let bytes = std::fs::read(&p).unwrap();
            assert!(
                !bytes.windows(secret.len()).any(|w| w == secret.as_bytes()),
                "{} holds the secret in clear",
                p.display()
            );
        }
    }
    let id = text
        .lines()
        .find_map(|l| l.strip_prefix("aws_access_key_id = "))
        .unwrap();
    let caller = iam
        .authenticate_basic(&basic(id, &secret), None)
        .await
        .unwrap();
    assert_eq!(
        caller.principal.arn(),
        "arn:aws:iam::111111111111:user/admin"
    );
    iam.authorize(
        &caller,
        EcrAction::PutImage.into(),
        &iam.repository_arn("any/repo"),
    )
    .await
    .expect("AdministratorAccess");
}

/// A data directory belongs to one account: reopening with another is refused.
#[tokio::test]
async fn account_id_is_fixed_at_first_start() {
    let env = Env::new().await;
    env.iam(cfg("111111111111")).await;
    let again = Iam::open(
        env.meta.clone(),
        Keys::from_master(&[1; 32]),
        cfg("222222222222"),
        AuditSink::log_only(),
    )
    .await;
    let err = again.err().expect("must refuse").to_string();
    assert!(err.contains("belongs to account 111111111111"), "{err}");
}

/// Issue 3, Login: Basic with an access key; wrong secret, unknown key, and temporary
/// keys without their session token are refused with messages that say so.
#[tokio::test]
async fn basic_access_key_authentication() {
    let env = Env::new().await;
    let iam = env.iam(cfg("111111111111")).await;
    let (id, secret) = user_with_key(&iam, "111111111111", "ci").await;
    let c = iam
        .authenticate_basic(&basic(&id, &secret), None)
        .await
        .unwrap();
    assert_eq!(c.principal.arn(), "arn:aws:iam::111111111111:user/ci");
    // skopeo and podman send an empty user and password when they have no credentials.
    let anon = iam.authenticate_basic(&basic("", ""), None).await.unwrap();
    assert!(anon.is_anonymous());
    let e = iam
        .authenticate_basic(&basic(&id, "wrong"), None)
        .await
        .unwrap_err();
    assert!(matches!(e, AuthError::WrongSecret(_)), "{e}");
    let e = iam
        .authenticate_basic(&basic("AKIANOTAKEY000000000", "x"), None)
        .await
        .unwrap_err();
    assert!(e.to_string().contains("not known"), "{e}");
    iam.create_principal("111111111111", StoredKind::Role, "r", BTreeMap::new())
        .await
        .unwrap();
    let t = iam
        .assume_role("111111111111", "r", "s1", Duration::from_secs(900))
        .await
        .unwrap();
    let e = iam
        .authenticate_basic(&basic(&t.access_key_id, &t.secret_access_key), None)
        .await
        .unwrap_err();
    assert!(e.to_string().contains("session token"), "{e}");
}

/// ECR_REFERENCE §4.1: the token is base64 of `AWS:<password>`; it authenticates as the
/// principal, dies with the principal, expires, and is bound to the region.
#[tokio::test]
async fn authorization_tokens() {
    let env = Env::new().await;
    let iam = env.iam(cfg("111111111111")).await;
    let (id, secret) = user_with_key(&iam, "111111111111", "dev").await;
    let caller = iam
        .authenticate_basic(&basic(&id, &secret), None)
        .await
        .unwrap();
    let tok = iam.authorization_token(&caller).await.unwrap();
    let decoded = String::from_utf8(
        base64::engine::general_purpose::STANDARD
            .decode(&tok.token)
            .unwrap(),
    )
    .unwrap();
    assert_eq!(decoded, format!("AWS:{}", tok.password));
    let c = iam.authenticate_basic(&tok.token, None).await.unwrap();
    assert_eq!(c.principal.arn(), "arn:aws:iam::111111111111:user/dev");
    let hours = (tok.expires_at - time::OffsetDateTime::now_utc()).whole_minutes();
    assert!(
        (719..=720).contains(&hours),
        "valid 12 hours, got {hours} min"
    );

    // Another region (same master key): refused, naming both regions.
    let west = IamConfig {
        region: "eu-west-1".into(),
        ..cfg("111111111111")
    };
    // (A data directory serves one region, so the other server has its own.)
    let elsewhere = Env::new().await;
    let other = elsewhere.iam(west).await;
    let e = other
        .authenticate_basic(&tok.token, None)
        .await
        .unwrap_err();
    assert!(
        e.to_string().contains("region us-east-1") && e.to_string().contains("eu-west-1"),
        "{e}"
    );
    // Another registry's key: forged.
    let strange_env = Env::new().await;
    let stranger = strange_env.iam_with_key(cfg("111111111111"), 9).await;
    let e = stranger
        .authenticate_basic(&tok.token, None)
        .await
        .unwrap_err();
    assert!(e.to_string().contains("signature does not match"), "{e}");
    // Expired.
    let short = env
        .iam(IamConfig {
            token_lifetime: Duration::ZERO,
            ..cfg("111111111111")
        })
        .await;
    let t0 = short.authorization_token(&caller).await.unwrap();
    let e = short.authenticate_basic(&t0.token, None).await.unwrap_err();
    assert!(e.to_string().contains("expired"), "{e}");
    // Deleting the user revokes its tokens.
    iam.delete_principal("111111111111", StoredKind::User, "dev")
        .await
        .unwrap();
    let e = iam.authenticate_basic(&tok.token, None).await.unwrap_err();
    assert!(e.to_string().contains("no longer valid"), "{e}");
}

fn sign(
    body: &[u8],
    id: &str,
    secret: &str,
    token: Option<&str>,
    region: &str,
) -> Vec<(String, String)> {
    let base = [
        ("content-type", "application/x-amz-json-1.1"),
        (
            "x-amz-target",
            "AmazonEC2ContainerRegistry_V20150921.GetAuthorizationToken",
        ),
        ("host", "127.0.0.1:5000"),
    ];
    let mut h: Vec<(String, String)> = base
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    h.extend(
        berth_iam::sigv4::sign(
            "POST",
            "http://127.0.0.1:5000/",
            &base,
            body,
            id,
            secret,
            token,
            region,
            "ecr",
            std::time::SystemTime::now(),
        )
        .unwrap(),
    );
    h
}

async fn sigv4(iam: &Iam, headers: &[(String, String)], body: &[u8]) -> Result<Caller, AuthError> {
    let hs: Vec<(&str, &str)> = headers
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    iam.authenticate_sigv4(
        &SignedRequest {
            method: "POST",
            path: "/",
            query: "",
            headers: &hs,
            body,
        },
        None,
    )
    .await
}

/// ECR_REFERENCE §1.2: SigV4 with temporary credentials needs the session token; the
/// credential scope must name this region.
#[tokio::test]
async fn sigv4_with_assumed_role_credentials() {
    let env = Env::new().await;
    let iam = env.iam(cfg("111111111111")).await;
    iam.create_account("222222222222", "partner").await.unwrap();
    iam.create_principal(
        "222222222222",
        StoredKind::Role,
        "ECSTaskExecutionRole",
        BTreeMap::new(),
    )
    .await
    .unwrap();
    let t = iam
        .assume_role(
            "222222222222",
            "ECSTaskExecutionRole",
            "task-1",
            Duration::from_secs(900),
        )
        .await
        .unwrap();
    let body = b"{}";
    let h = sign(
        body,
        &t.access_key_id,
        &t.secret_access_key,
        Some(&t.session_token),
        "us-east-1",
    );
    let c = sigv4(&iam, &h, body).await.unwrap();
    assert_eq!(
        c.principal.arn(),
        "arn:aws:sts::222222222222:assumed-role/ECSTaskExecutionRole/task-1"
    );
    // Tokens issued to a session work and name the session.
    let tok = iam.authorization_token(&c).await.unwrap();
    let again = iam.authenticate_basic(&tok.token, None).await.unwrap();
    assert_eq!(again.principal.arn(), c.principal.arn());

    let no_token = sign(
        body,
        &t.access_key_id,
        &t.secret_access_key,
        None,
        "us-east-1",
    );
    let e = sigv4(&iam, &no_token, body).await.unwrap_err();
    assert_eq!(e.aws_type(), "UnrecognizedClientException", "{e}");
    let wrong_region = sign(
        body,
        &t.access_key_id,
        &t.secret_access_key,
        Some(&t.session_token),
        "eu-west-1",
    );
    let e = sigv4(&iam, &wrong_region, body).await.unwrap_err();
    assert!(e.to_string().contains("eu-west-1"), "{e}");
    let wrong_secret = sign(
        body,
        &t.access_key_id,
        "not-the-secret",
        Some(&t.session_token),
        "us-east-1",
    );
    let e = sigv4(&iam, &wrong_secret, body).await.unwrap_err();
    assert_eq!(e.aws_type(), "InvalidSignatureException", "{e}");
    // Ending the session (deleting its credentials) revokes its tokens.
    iam.delete_access_key(&t.access_key_id).await.unwrap();
    assert!(iam.authenticate_basic(&tok.token, None).await.is_err());
}

/// ECR_REFERENCE §2.8 / issue 3 scenarios 2 and 3, through the service: same account,
/// identity OR repository policy; across accounts, both; the audit trail records each.
#[tokio::test]
async fn evaluation_across_accounts_and_audit() {
    let env = Env::new().await;
    let iam = env.iam(cfg("111111111111")).await;
    let repo = iam.repository_arn("production/myapp");
    let (id, secret) = user_with_key(&iam, "111111111111", "dev").await;
    let dev = iam
        .authenticate_basic(&basic(&id, &secret), None)
        .await
        .unwrap();
    let d = iam
        .authorize(&dev, EcrAction::BatchGetImage.into(), &repo)
        .await
        .unwrap_err();
    assert!(
        d.message.starts_with(&format!(
            "User: arn:aws:iam::111111111111:user/dev is not authorized to perform: ecr:BatchGetImage on resource: {repo} because"
        )),
        "{}",
        d.message
    );
    iam.put_identity_policy("111111111111", StoredKind::User, "dev", "pull", PULL)
        .await
        .unwrap();
    iam.authorize(&dev, EcrAction::BatchGetImage.into(), &repo)
        .await
        .unwrap();

    iam.create_account("222222222222", "partner").await.unwrap();
    iam.create_principal(
        "222222222222",
        StoredKind::Role,
        "ECSTaskExecutionRole",
        BTreeMap::new(),
    )
    .await
    .unwrap();
    let t = iam
        .assume_role(
            "222222222222",
            "ECSTaskExecutionRole",
            "s1",
            Duration::from_secs(900),
        )
        .await
        .unwrap();
    let h = sign(
        b"{}",
        &t.access_key_id,
        &t.secret_access_key,
        Some(&t.session_token),
        "us-east-1",
    );
    let role = sigv4(&iam, &h, b"{}").await.unwrap();
    // Identity policy alone: refused across accounts.
    iam.put_identity_policy(
        "222222222222",
        StoredKind::Role,
        "ECSTaskExecutionRole",
        "pull",
        PULL,
    )
    .await
    .unwrap();
    assert!(iam
        .authorize(&role, EcrAction::BatchGetImage.into(), &repo)
        .await
        .is_err());
    // Both: allowed.
    iam.set_repository_policy(
        "production/myapp",
        r#"{"Version":"2012-10-17","Statement":[{"Sid":"AllowCrossAccountPull","Effect":"Allow","Principal":{"AWS":"arn:aws:iam::222222222222:role/ECSTaskExecutionRole"},"Action":["ecr:GetDownloadUrlForLayer","ecr:BatchGetImage"]}]}"#,
    )
    .await
    .unwrap();
    iam.authorize(&role, EcrAction::BatchGetImage.into(), &repo)
        .await
        .unwrap();
    // Resource policy alone: refused.
    iam.delete_identity_policy(
        "222222222222",
        StoredKind::Role,
        "ECSTaskExecutionRole",
        "pull",
    )
    .await
    .unwrap();
    let d = iam
        .authorize(&role, EcrAction::BatchGetImage.into(), &repo)
        .await
        .unwrap_err();
    assert!(
        d.message.contains("no identity-based policy"),
        "{}",
        d.message
    );

    iam.audit().flush().await;
    let rows = iam
        .query_audit(&AuditQuery {
            principal: Some(role.principal.arn()),
            action: Some("ecr:BatchGetImage".into()),
            limit: 10,
            ..Default::default()
        })
        .await
        .unwrap();
    let decisions: Vec<&str> = rows.iter().map(|r| r.decision.as_str()).collect();
    assert_eq!(
        decisions,
        ["deny", "allow", "deny"],
        "newest first: {rows:?}"
    );
    assert!(rows[1].reason.contains("AllowCrossAccountPull"), "{rows:?}");
    // `berth admin audit --resource`: exact by default (tryout: `team/tiny` also matched
    // `team/tinyx`), a prefix only when asked.
    let q = |resource: Option<String>, resource_prefix: Option<String>| AuditQuery {
        resource,
        resource_prefix,
        action: Some("ecr:BatchGetImage".into()),
        limit: 100,
        ..Default::default()
    };
    let short = repo.trim_end_matches("app").to_string();
    assert!(iam
        .query_audit(&q(Some(short.clone()), None))
        .await
        .unwrap()
        .is_empty());
    assert!(!iam
        .query_audit(&q(None, Some(short)))
        .await
        .unwrap()
        .is_empty());
    assert!(!iam
        .query_audit(&q(Some(repo.clone()), None))
        .await
        .unwrap()
        .is_empty());
}

/// Malformed policies are refused with a message naming the statement and field, and
/// nothing is stored.
#[tokio::test]
async fn malformed_policies_are_refused() {
    let env = Env::new().await;
    let iam = env.iam(cfg("111111111111")).await;
    let e = iam
        .set_repository_policy(
            "r",
            r#"{"Statement":[{"Sid":"A","Effect":"Permit","Principal":"*","Action":"ecr:*"}]}"#,
        )
        .await
        .unwrap_err()
        .to_string();
    assert!(e.contains("Statement[0]") && e.contains("Effect"), "{e}");
    assert_eq!(iam.get_repository_policy("r").await.unwrap(), None);
    let e = iam
        .put_registry_policy(&format!(
            "{{\"Statement\":[],\"Id\":\"{}\"}}",
            "x".repeat(10_300)
        ))
        .await
        .unwrap_err()
        .to_string();
    assert!(e.contains("10240"), "{e}");
}

/// `berth admin` writes from another process; a server sees it after a reload, and its
/// reloader notices within a few seconds.
#[tokio::test]
async fn changes_by_another_process_are_picked_up() {
    let env = Env::new().await;
    let server = env.iam(cfg("111111111111")).await;
    let _reloader = server.spawn_reloader();
    let admin = env.iam(cfg("111111111111")).await;
    let (id, secret) = user_with_key(&admin, "111111111111", "late").await;
    let mut ok = false;
    for _ in 0..50 {
        if server
            .authenticate_basic(&basic(&id, &secret), None)
            .await
            .is_ok()
        {
            ok = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        ok,
        "the server did not pick up a key created by another process"
    );
}

/// Anonymous callers match only `"Principal": "*"`, unless the development flag is on.
#[tokio::test]
async fn anonymous_access() {
    let env = Env::new().await;
    let iam = env.iam(cfg("111111111111")).await;
    let anon = iam.anonymous(None);
    let repo = iam.repository_arn("public/app");
    let d = iam
        .authorize(&anon, EcrAction::BatchGetImage.into(), &repo)
        .await
        .unwrap_err();
    assert!(d.anonymous);
    iam.set_repository_policy(
        "public/app",
        r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":"*","Action":["ecr:BatchGetImage","ecr:GetDownloadUrlForLayer"]}]}"#,
    )
    .await
    .unwrap();
    iam.authorize(&anon, EcrAction::BatchGetImage.into(), &repo)
        .await
        .unwrap();
    assert!(iam
        .authorize(&anon, EcrAction::PutImage.into(), &repo)
        .await
        .is_err());
    let dev = env
        .iam(IamConfig {
            allow_anonymous: true,
            ..cfg("111111111111")
        })
        .await;
    dev.authorize(&dev.anonymous(None), EcrAction::PutImage.into(), &repo)
        .await
        .unwrap();
}

/// Tryout regression: a key made by `berth admin` (another process) was refused for up
/// to a second; an unknown key now makes the server check for newer identity data first.
#[tokio::test]
async fn a_key_made_by_another_process_works_at_once() {
    let env = Env::new().await;
    let server = env.iam(cfg("111111111111")).await;
    let admin = env.iam(cfg("111111111111")).await;
    let (id, secret) = user_with_key(&admin, "111111111111", "fresh").await;
    server
        .authenticate_basic(&basic(&id, &secret), None)
        .await
        .expect("no reload tick needed");
}

/// Tryout regressions: the wrong master key and another region are refused at start
/// (rather than every key failing, or every ARN silently changing); `berth admin`
/// adopts the recorded region.
#[tokio::test]
async fn wrong_master_key_and_other_region_refused_at_open() {
    let env = Env::new().await;
    let iam = env.iam(cfg("111111111111")).await;
    user_with_key(&iam, "111111111111", "u").await;
    let e = Iam::open(
        env.meta.clone(),
        Keys::from_master(&[2; 32]),
        cfg("111111111111"),
        AuditSink::log_only(),
    )
    .await
    .err()
    .expect("wrong key refused")
    .to_string();
    assert!(
        e.contains("cannot be decrypted with this master key"),
        "{e}"
    );
    let west = IamConfig {
        region: "eu-west-1".into(),
        ..cfg("111111111111")
    };
    let e = Iam::open(
        env.meta.clone(),
        Keys::from_master(&[1; 32]),
        west.clone(),
        AuditSink::log_only(),
    )
    .await
    .err()
    .expect("other region refused")
    .to_string();
    assert!(e.contains("serves region us-east-1"), "{e}");
    let admin = Iam::open(
        env.meta.clone(),
        Keys::from_master(&[1; 32]),
        IamConfig {
            adopt_stored_region: true,
            ..west
        },
        AuditSink::log_only(),
    )
    .await
    .unwrap();
    assert_eq!(admin.region(), "us-east-1");
}

/// `berth admin policy simulate --principal anonymous --source-ip …` evaluates an
/// anonymous caller with a source address.
#[tokio::test]
async fn simulate_anonymous_with_source_ip() {
    let env = Env::new().await;
    let iam = env.iam(cfg("111111111111")).await;
    iam.set_repository_policy(
        "public/app",
        r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":"*","Action":"ecr:BatchGetImage","Condition":{"IpAddress":{"aws:SourceIp":"10.0.0.0/8"}}}]}"#,
    )
    .await
    .unwrap();
    let arn = iam.repository_arn("public/app");
    let inside = iam
        .simulate(
            "anonymous",
            "ecr:BatchGetImage",
            &arn,
            Some("10.1.2.3".parse().unwrap()),
        )
        .unwrap();
    assert!(inside.0, "{inside:?}");
    let outside = iam
        .simulate(
            "anonymous",
            "ecr:BatchGetImage",
            &arn,
            Some("192.0.2.1".parse().unwrap()),
        )
        .unwrap();
    assert!(
        !outside.0 && outside.1 == "implicit deny: no resource-based policy allows it",
        "{outside:?}"
    );
}

/// Issue 17: a service principal (ecs-tasks.amazonaws.com) authenticated with its access
/// key may get an authorization token for itself, though it has no identity policies (the
/// only ones that grant ecr:GetAuthorizationToken to others); the token authenticates as
/// the service and grants nothing by itself: pulling still needs a resource policy naming
/// the service. Identity policies for a service are refused with a message pointing at
/// roles, not at a registry policy (which cannot grant a token).
#[tokio::test]
async fn service_principals_get_a_token_for_themselves() {
    let env = Env::new().await;
    let iam = env.iam(cfg("111111111111")).await;
    let svc = "ecs-tasks.amazonaws.com";
    iam.create_principal("111111111111", StoredKind::Service, svc, BTreeMap::new())
        .await
        .unwrap();
    let key = iam
        .create_access_key("111111111111", StoredKind::Service, svc)
        .await
        .unwrap();
    let caller = iam
        .authenticate_basic(&basic(&key.access_key_id, &key.secret_access_key), None)
        .await
        .unwrap();
    iam.authorize(&caller, EcrAction::GetAuthorizationToken.into(), "*")
        .await
        .unwrap();
    let tok = iam.authorization_token(&caller).await.unwrap();
    let by_token = iam.authenticate_basic(&tok.token, None).await.unwrap();
    assert_eq!(by_token.principal.arn(), caller.principal.arn());
    let repo = iam.repository_arn("production/myapp");
    assert!(iam
        .authorize(&by_token, EcrAction::BatchGetImage.into(), &repo)
        .await
        .is_err());
    iam.set_repository_policy(
        "production/myapp",
        r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"Service":"ecs-tasks.amazonaws.com"},"Action":"ecr:BatchGetImage"}]}"#,
    )
    .await
    .unwrap();
    iam.authorize(&by_token, EcrAction::BatchGetImage.into(), &repo)
        .await
        .unwrap();
    let e = iam
        .put_identity_policy(
            "111111111111",
            StoredKind::Service,
            svc,
            "pull",
            r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"ecr:*","Resource":"*"}]}"#,
        )
        .await
        .unwrap_err()
        .to_string();
    assert!(e.contains("role") && !e.contains("registry policy"), "{e}");
}
