//! The identity service: authentication (Basic with an access key or an ECR-style token,
//! SigV4, presigned URLs), authorisation (IAM policy evaluation with the audit trail),
//! policy storage, and the administration used by `berth admin`.
//!
//! Identity data is small and read on every request, so it lives in memory as an
//! immutable [`Snapshot`] behind an `ArcSwap`; secrets are decrypted once when the
//! snapshot is built. Writes go to the database (one transaction each, bumping the
//! generation counter) and then reload the snapshot; a background task reloads it when
//! the generation moves because another process (`berth admin`) wrote, within
//! [`RELOAD_INTERVAL`].
//!
//! This instance hosts one registry, that of the default account: every repository ARN
//! is `arn:aws:ecr:<region>:<default account>:repository/<name>`. Other accounts hold
//! principals that reach it across accounts (ECR_REFERENCE §2.8).

use crate::action::{Action, EcrAction};
use crate::audit::AuditSink;
use crate::policy::{self, NamedPolicy, PolicyDocument, PolicyKind, RequestContext};
use crate::principal::{AccountId, Principal, PrincipalKind};
use crate::secret::Keys;
use crate::sigv4::{self, SignedRequest};
use crate::token::{self, TokenClaims};
use arc_swap::ArcSwap;
use berth_meta::iam::{
    AccessKeyRow, AccountRow, AuditQuery, AuditRow, IamData, IdentityPolicyRow, PrincipalRow,
};
use berth_meta::IamStore;
use sha2::{Digest as _, Sha256};
use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::net::IpAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;
use subtle::ConstantTimeEq;
use time::OffsetDateTime;
use zeroize::Zeroizing;

mod admin;
mod authn;
mod authz;
mod sessions;
mod snapshot;
mod sts;

pub use sts::{AssumedRole, StsError, TRUST_POLICY_NAME};

/// How often a server checks whether another process changed the identity tables.
pub const RELOAD_INTERVAL: Duration = Duration::from_secs(1);

/// The AdministratorAccess policy given to the bootstrap admin.
pub const ADMINISTRATOR_ACCESS: &str = r#"{"Version":"2012-10-17","Statement":[{"Sid":"AdministratorAccess","Effect":"Allow","Action":"*","Resource":"*"}]}"#;

/// Settings of the identity service.
#[derive(Debug, Clone)]
pub struct IamConfig {
    /// The region this registry serves (`us-east-1` by default); tokens and SigV4
    /// credential scopes must name it.
    pub region: String,
    /// The default account's ID to create on first start (random if `None`); if the
    /// database already has a default account with another ID, opening fails.
    pub account_id: Option<AccountId>,
    /// Development only: let unauthenticated callers do everything.
    pub allow_anonymous: bool,
    /// Lifetime of authorization tokens (12 hours, as ECR).
    pub token_lifetime: Duration,
    /// Lifetime of presigned blob URLs.
    pub presign_lifetime: Duration,
    /// Largest accepted SigV4 clock skew (15 minutes).
    pub max_clock_skew: Duration,
    /// Use the region recorded in the database instead of `region` (for `berth admin`).
    pub adopt_stored_region: bool,
    /// The trusted OIDC providers (`sts:AssumeRoleWithWebIdentity`); none by default.
    pub federation: crate::federation::Federation,
}

impl Default for IamConfig {
    fn default() -> Self {
        IamConfig {
            region: "us-east-1".into(),
            account_id: None,
            allow_anonymous: false,
            token_lifetime: Duration::from_secs(token::TOKEN_LIFETIME_SECS as u64),
            presign_lifetime: Duration::from_secs(3600),
            max_clock_skew: Duration::from_secs(15 * 60),
            adopt_stored_region: false,
            federation: crate::federation::Federation::default(),
        }
    }
}

/// An authenticated (or anonymous) caller of one request.
#[derive(Debug, Clone)]
pub struct Caller {
    /// Who.
    pub principal: Principal,
    /// From where, if known (`aws:SourceIp`).
    pub source_ip: Option<IpAddr>,
    /// How the caller authenticated (`Basic access key`, `Basic token`, `SigV4`,
    /// `presigned URL`, `anonymous`): recorded with each authorisation decision.
    pub via: &'static str,
}

impl Caller {
    /// Whether the caller presented no credentials.
    pub fn is_anonymous(&self) -> bool {
        self.principal.kind == PrincipalKind::Anonymous
    }
}

/// An ECR authorization token (ECR_REFERENCE §4.1).
#[derive(Clone)]
pub struct AuthorizationToken {
    /// base64 of `AWS:<password>`: the `authorizationToken` member.
    pub token: String,
    /// The password alone (what `get-login-password` prints).
    pub password: String,
    /// Expiry.
    pub expires_at: OffsetDateTime,
}

impl fmt::Debug for AuthorizationToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "AuthorizationToken(<redacted>, expires {})",
            self.expires_at
        )
    }
}

/// New long-lived credentials (shown once).
#[derive(Clone)]
pub struct NewAccessKey {
    /// `AKIA…`.
    pub access_key_id: String,
    /// The secret access key.
    pub secret_access_key: Zeroizing<String>,
}

/// Temporary credentials of an assumed role (STS-shaped).
#[derive(Clone)]
pub struct TemporaryCredentials {
    /// `ASIA…`.
    pub access_key_id: String,
    /// The secret access key.
    pub secret_access_key: Zeroizing<String>,
    /// The session token (`X-Amz-Security-Token`).
    pub session_token: Zeroizing<String>,
    /// Expiry.
    pub expiration: OffsetDateTime,
}

/// Why authentication failed. `Display` is the message for the client; [`Self::aws_type`]
/// the ECR API's `__type`.
#[derive(Debug, Clone, thiserror::Error)]
pub enum AuthError {
    /// An access key ID nobody issued (or was deleted).
    #[error("The security token included in the request is invalid: access key ID {0} is not known to this registry.")]
    UnknownAccessKey(String),
    /// Basic auth with the right key ID and the wrong secret.
    #[error("invalid credentials: the secret access key does not match access key ID {0}")]
    WrongSecret(String),
    /// Temporary credentials were used without (or with the wrong) session token.
    #[error("The security token included in the request is invalid: temporary credentials {0} need their session token (use SigV4 with X-Amz-Security-Token, or `aws ecr get-login-password` / `berth login` for docker)")]
    SessionToken(String),
    /// Temporary credentials past their expiry.
    #[error(
        "The security token included in the request is expired: the credentials of {0} expired"
    )]
    ExpiredCredentials(String),
    /// An authorization token that failed verification.
    #[error("{0}")]
    Token(#[from] token::TokenError),
    /// The principal a token was issued to no longer exists.
    #[error("authorization token is no longer valid: {0} was deleted")]
    Revoked(String),
    /// A malformed `Authorization` header.
    #[error("malformed Authorization header: {0}")]
    Malformed(String),
    /// A SigV4 failure (signature, skew, format).
    #[error("{0}")]
    SigV4(#[from] sigv4::SigV4Error),
    /// The credential scope names another region.
    #[error("Credential should be scoped to a valid region, not '{0}'. This registry serves region '{1}'.")]
    WrongRegion(String, String),
    /// The credential scope names another service (the one given, the one expected).
    #[error("Credential should be scoped to correct service: '{1}', not '{0}'.")]
    WrongService(String, String),
    /// A presigned URL that failed verification.
    #[error("presigned URL refused: {0}")]
    Presign(String),
}

impl AuthError {
    /// The AWS error type (`__type`) for the ECR API.
    pub fn aws_type(&self) -> &'static str {
        match self {
            AuthError::UnknownAccessKey(_) | AuthError::SessionToken(_) | AuthError::Revoked(_) => {
                "UnrecognizedClientException"
            }
            AuthError::ExpiredCredentials(_) => "ExpiredTokenException",
            AuthError::SigV4(e) => e.aws_type(),
            AuthError::Malformed(_) => "IncompleteSignatureException",
            _ => "InvalidSignatureException",
        }
    }

    /// Whether the failure may come from a snapshot older than the database (a key or
    /// principal created a moment ago by another process).
    fn may_be_stale(&self) -> bool {
        matches!(self, AuthError::UnknownAccessKey(_) | AuthError::Revoked(_))
    }

    /// Short reason for the audit trail (never contains a secret).
    fn audit_reason(&self) -> String {
        self.to_string()
    }
}

/// A refused authorisation. `Display` is AWS's message:
/// `User: <arn> is not authorized to perform: <action> on resource: <arn> because …`.
#[derive(Debug, Clone)]
pub struct Denied {
    /// The message.
    pub message: String,
    /// Whether the caller was anonymous (the OCI API then answers 401 with a challenge).
    pub anonymous: bool,
}

impl fmt::Display for Denied {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for Denied {}

/// Errors of identity administration and policy storage.
#[derive(Debug, thiserror::Error)]
pub enum IamError {
    /// A policy document failed validation; the message names statement and field.
    #[error("{0}")]
    InvalidPolicy(String),
    /// Bad input (names, IDs).
    #[error("{0}")]
    Invalid(String),
    /// Something named does not exist.
    #[error("{0}")]
    NotFound(String),
    /// Something to create exists.
    #[error("{0}")]
    AlreadyExists(String),
    /// The database failed.
    #[error("identity store: {0}")]
    Meta(#[from] berth_meta::MetaError),
    /// The master key failed.
    #[error("{0}")]
    Secret(#[from] crate::secret::SecretError),
    /// Writing a file (the admin credentials) failed.
    #[error("{0}")]
    Io(String),
}

/// Kinds of principals stored in the identity tables.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum StoredKind {
    /// An IAM user.
    User,
    /// An IAM role.
    Role,
    /// A service principal.
    Service,
}

impl StoredKind {
    /// `user`, `role`, `service`.
    pub fn as_str(self) -> &'static str {
        match self {
            StoredKind::User => "user",
            StoredKind::Role => "role",
            StoredKind::Service => "service",
        }
    }

    fn parse(s: &str) -> Option<StoredKind> {
        match s {
            "user" => Some(StoredKind::User),
            "role" => Some(StoredKind::Role),
            "service" => Some(StoredKind::Service),
            _ => None,
        }
    }
}

type PrincipalKey = (String, StoredKind, String);

struct StoredPrincipal {
    principal_id: String,
    tags: BTreeMap<String, String>,
}

struct StoredKey {
    account: String,
    kind: StoredKind,
    name: String,
    secret: Zeroizing<String>,
    session_name: Option<String>,
    session_token_hash: Option<String>,
    expires_at: Option<i64>,
}

/// An immutable copy of the identity tables, with policies parsed and secrets decrypted.
struct Snapshot {
    generation: i64,
    default_account: Option<AccountId>,
    accounts: BTreeMap<String, AccountRow>,
    principals: HashMap<PrincipalKey, StoredPrincipal>,
    keys: HashMap<String, StoredKey>,
    identity_policies: HashMap<PrincipalKey, Vec<(String, PolicyDocument)>>,
    /// Roles' trust policies (stored under [`TRUST_POLICY_NAME`]) with their maximum
    /// session duration in seconds.
    trust_policies: HashMap<PrincipalKey, (PolicyDocument, u64)>,
    repository_policies: HashMap<String, (String, PolicyDocument)>,
    registry_policy: Option<(String, PolicyDocument)>,
    /// Access keys whose secret did not decrypt with the master key.
    unsealable: usize,
}

struct Inner {
    store: Arc<dyn IamStore>,
    keys: Keys,
    cfg: IamConfig,
    account: AccountId,
    snap: ArcSwap<Snapshot>,
    audit: AuditSink,
    repo_arn_prefix: String,
}

/// The identity service. Cheap to clone.
#[derive(Clone)]
pub struct Iam {
    inner: Arc<Inner>,
}

fn now_secs() -> i64 {
    OffsetDateTime::now_utc().unix_timestamp()
}

fn random_chars(n: usize, alphabet: &[u8]) -> String {
    use rand::Rng;
    let mut rng = rand::rng();
    (0..n)
        .map(|_| alphabet[rng.random_range(0..alphabet.len())] as char)
        .collect()
}

const ID_ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
const SECRET_ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

fn sha256_hex(s: &str) -> String {
    hex::encode(Sha256::digest(s.as_bytes()))
}

/// Validates an IAM user/role name: 1–64 of `[\w+=,.@-]` (IAM quotas and naming rules).
fn check_name(what: &str, name: &str) -> Result<(), IamError> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "_+=,.@-".contains(c));
    if ok {
        Ok(())
    } else {
        Err(IamError::Invalid(format!(
            "{what} name '{name}' must be 1-64 characters of letters, digits and _+=,.@-"
        )))
    }
}

impl Iam {
    /// Opens the service over `store`: loads the identity data and makes sure the default
    /// account exists (creating it with `cfg.account_id`, or a random ID, on first
    /// start). Does not start background tasks; see [`Iam::spawn_reloader`].
    ///
    /// Errors: the database fails, or it already belongs to another account than
    /// `cfg.account_id`.
    pub async fn open(
        store: Arc<dyn IamStore>,
        keys: Keys,
        cfg: IamConfig,
        audit: AuditSink,
    ) -> Result<Iam, IamError> {
        let mut snap = Snapshot::build(store.load_iam().await?, &keys);
        if snap.unsealable > 0 {
            return Err(IamError::Invalid(format!(
                "{} stored access key(s) cannot be decrypted with this master key: is \
                 BERTH_MASTER_KEY or the master key file the one this data directory was \
                 created with?",
                snap.unsealable
            )));
        }
        // The region is part of every ARN in stored policies: a data directory serves one.
        let mut cfg = cfg;
        match store.get_setting("region").await? {
            Some(r) if r != cfg.region && cfg.adopt_stored_region => cfg.region = r,
            Some(r) if r != cfg.region => {
                return Err(IamError::Invalid(format!(
                    "this data directory serves region {r}, but region {} was configured \
                     (ARNs in its policies name {r})",
                    cfg.region
                )))
            }
            Some(_) => {}
            None if cfg.adopt_stored_region => {}
            None => store.put_setting("region", &cfg.region).await?,
        }
        let account = match (&snap.default_account, &cfg.account_id) {
            (Some(have), Some(want)) if have != want => {
                return Err(IamError::Invalid(format!(
                "this data directory belongs to account {have}, but account {want} was configured"
            )))
            }
            (Some(have), _) => have.clone(),
            (None, want) => {
                let id = match want {
                    Some(id) => id.clone(),
                    None => {
                        let digits = random_chars(11, b"0123456789");
                        AccountId::parse(&format!("1{digits}")).expect("12 digits")
                    }
                };
                store
                    .create_account(&AccountRow {
                        account_id: id.to_string(),
                        name: "default".into(),
                        is_default: true,
                        created_at: now_secs(),
                    })
                    .await?;
                snap = Snapshot::build(store.load_iam().await?, &keys);
                id
            }
        };
        let repo_arn_prefix = format!("arn:aws:ecr:{}:{}:repository/", cfg.region, account);
        Ok(Iam {
            inner: Arc::new(Inner {
                store,
                keys,
                cfg,
                account,
                snap: ArcSwap::from_pointee(snap),
                audit,
                repo_arn_prefix,
            }),
        })
    }

    /// On first start (no principals at all), creates the default account's `admin` user
    /// with the AdministratorAccess policy and an access key, and writes the key to
    /// `path` (mode 0600) in the AWS shared-credentials format. Returns `Some(path)` when
    /// it did. The secret is written only to the file, never logged.
    pub async fn bootstrap(&self, path: &Path) -> Result<Option<std::path::PathBuf>, IamError> {
        if !self.snapshot().principals.is_empty() {
            return Ok(None);
        }
        let account = self.inner.account.to_string();
        self.create_principal(&account, StoredKind::User, "admin", BTreeMap::new())
            .await?;
        self.put_identity_policy(
            &account,
            StoredKind::User,
            "admin",
            "AdministratorAccess",
            ADMINISTRATOR_ACCESS,
        )
        .await?;
        let key = self
            .create_access_key(&account, StoredKind::User, "admin")
            .await?;
        let text = format!(
            "# Berth bootstrap administrator (user arn:aws:iam::{account}:user/admin).\n\
             # Use with: AWS_SHARED_CREDENTIALS_FILE=<this file> aws ecr ... --endpoint-url <registry>\n\
             [default]\naws_access_key_id = {}\naws_secret_access_key = {}\n",
            key.access_key_id,
            key.secret_access_key.as_str()
        );
        write_private_file(path, text.as_bytes())
            .map_err(|e| IamError::Io(format!("writing {}: {e}", path.display())))?;
        Ok(Some(path.to_path_buf()))
    }

    /// This registry's account (its `registryId`).
    pub fn account(&self) -> &AccountId {
        &self.inner.account
    }

    /// The region this registry serves.
    pub fn region(&self) -> &str {
        &self.inner.cfg.region
    }

    /// Whether anonymous callers may do everything (development flag).
    pub fn allow_anonymous(&self) -> bool {
        self.inner.cfg.allow_anonymous
    }

    /// `arn:aws:ecr:<region>:<account>:repository/<name>`.
    pub fn repository_arn(&self, repository: &str) -> String {
        format!("{}{repository}", self.inner.repo_arn_prefix)
    }

    /// The audit sink (to flush it on shutdown).
    pub fn audit(&self) -> &AuditSink {
        &self.inner.audit
    }

    // ---- authentication -------------------------------------------------------------
}

/// Validates a policy document: size (≤ 10240 characters, ECR's limit for repository
/// and registry policies) and grammar.
pub fn validate_policy(text: &str, kind: PolicyKind) -> Result<(), IamError> {
    if text.chars().count() > 10_240 {
        return Err(IamError::InvalidPolicy(
            "policy text must be at most 10240 characters".into(),
        ));
    }
    PolicyDocument::parse(text, kind)
        .map(|_| ())
        .map_err(|e| IamError::InvalidPolicy(e.to_string()))
}

/// Writes `bytes` to `path` with mode 0600: to a temporary file first, fsynced, then
/// renamed into place, so the file is never seen half-written.
pub fn write_private_file(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    let tmp = path.with_extension("tmp");
    let _ = std::fs::remove_file(&tmp);
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut opts, 0o600);
    let mut f = opts.open(&tmp)?;
    f.write_all(bytes)?;
    f.sync_all()?;
    std::fs::rename(&tmp, path)?;
    if let Some(dir) = path.parent() {
        if let Ok(d) = std::fs::File::open(dir) {
            let _ = d.sync_all();
        }
    }
    Ok(())
}
