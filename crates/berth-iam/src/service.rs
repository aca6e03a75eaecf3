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
    /// The credential scope names another service.
    #[error("Credential should be scoped to correct service: 'ecr', not '{0}'.")]
    WrongService(String),
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
    repository_policies: HashMap<String, (String, PolicyDocument)>,
    registry_policy: Option<(String, PolicyDocument)>,
    /// Access keys whose secret did not decrypt with the master key.
    unsealable: usize,
}

/// A policy that denies everything: stands in for a stored document that no longer
/// parses, so a damaged policy fails closed.
fn deny_all(kind: PolicyKind) -> PolicyDocument {
    let text = match kind {
        PolicyKind::Identity => r#"{"Statement":{"Effect":"Deny","Action":"*","Resource":"*"}}"#,
        PolicyKind::Resource => r#"{"Statement":{"Effect":"Deny","Principal":"*","Action":"*"}}"#,
    };
    PolicyDocument::parse(text, kind).expect("built-in policy parses")
}

fn parse_stored(what: &str, text: &str, kind: PolicyKind) -> PolicyDocument {
    PolicyDocument::parse(text, kind).unwrap_or_else(|e| {
        tracing::error!(policy = what, error = %e, "a stored policy does not parse; it denies everything until replaced");
        deny_all(kind)
    })
}

impl Snapshot {
    fn build(data: IamData, keys: &Keys) -> Snapshot {
        let accounts: BTreeMap<String, AccountRow> = data
            .accounts
            .into_iter()
            .map(|a| (a.account_id.clone(), a))
            .collect();
        let default_account = accounts
            .values()
            .find(|a| a.is_default)
            .and_then(|a| AccountId::parse(&a.account_id).ok());
        let mut principals = HashMap::new();
        for p in data.principals {
            let Some(kind) = StoredKind::parse(&p.kind) else {
                continue;
            };
            let tags = serde_json::from_str(&p.tags).unwrap_or_default();
            principals.insert(
                (p.account_id, kind, p.name),
                StoredPrincipal {
                    principal_id: p.principal_id,
                    tags,
                },
            );
        }
        let mut stored_keys = HashMap::new();
        let mut unsealable = 0usize;
        for k in data.access_keys {
            let Some(kind) = StoredKind::parse(&k.kind) else {
                continue;
            };
            match keys.unseal(&k.secret_enc) {
                Ok(secret) => {
                    stored_keys.insert(
                        k.access_key_id,
                        StoredKey {
                            account: k.account_id,
                            kind,
                            name: k.name,
                            secret,
                            session_name: k.session_name,
                            session_token_hash: k.session_token_hash,
                            expires_at: k.expires_at,
                        },
                    );
                }
                Err(_) => unsealable += 1,
            }
        }
        if unsealable > 0 {
            tracing::error!(
                keys = unsealable,
                "access keys cannot be decrypted with this master key; they will not authenticate (was master.key replaced?)"
            );
        }
        let mut identity_policies: HashMap<PrincipalKey, Vec<(String, PolicyDocument)>> =
            HashMap::new();
        for p in data.policies {
            let Some(kind) = StoredKind::parse(&p.kind) else {
                continue;
            };
            let doc = parse_stored(&p.policy_name, &p.document, PolicyKind::Identity);
            identity_policies
                .entry((p.account_id, kind, p.name))
                .or_default()
                .push((p.policy_name, doc));
        }
        let repository_policies = data
            .repository_policies
            .into_iter()
            .map(|(repo, text)| {
                let doc = parse_stored(&repo, &text, PolicyKind::Resource);
                (repo, (text, doc))
            })
            .collect();
        let registry_policy = data.registry_policy.map(|text| {
            let doc = parse_stored("registry policy", &text, PolicyKind::Resource);
            (text, doc)
        });
        Snapshot {
            generation: data.generation,
            default_account,
            accounts,
            principals,
            keys: stored_keys,
            identity_policies,
            repository_policies,
            registry_policy,
            unsealable,
        }
    }
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

    /// Starts the task that reloads the snapshot when another process changed the
    /// identity tables, and deletes expired temporary credentials.
    pub fn spawn_reloader(&self) -> tokio::task::JoinHandle<()> {
        let iam = self.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(RELOAD_INTERVAL);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            let mut n: u64 = 0;
            loop {
                tick.tick().await;
                n += 1;
                if n.is_multiple_of(60) {
                    if let Err(e) = iam.inner.store.delete_expired_keys(now_secs()).await {
                        tracing::warn!(error = %e, "deleting expired temporary credentials failed");
                    }
                }
                match iam.inner.store.iam_generation().await {
                    Ok(g) if g != iam.snapshot().generation => {
                        if let Err(e) = iam.reload().await {
                            tracing::warn!(error = %e, "reloading identities failed");
                        }
                    }
                    Ok(_) => {}
                    Err(e) => tracing::warn!(error = %e, "checking identity generation failed"),
                }
            }
        })
    }

    /// Reloads the snapshot if another process changed the identity tables since it was
    /// read; returns whether it did. Called before refusing an unknown key, so a key made
    /// with `berth admin` works at once rather than after the next reload tick.
    async fn refresh(&self) -> bool {
        match self.inner.store.iam_generation().await {
            Ok(g) if g != self.snapshot().generation => self.reload().await.is_ok(),
            _ => false,
        }
    }

    /// Rereads the identity tables.
    pub async fn reload(&self) -> Result<(), IamError> {
        let data = self.inner.store.load_iam().await?;
        self.inner
            .snap
            .store(Arc::new(Snapshot::build(data, &self.inner.keys)));
        Ok(())
    }

    fn snapshot(&self) -> arc_swap::Guard<Arc<Snapshot>> {
        self.inner.snap.load()
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

    /// An anonymous caller.
    pub fn anonymous(&self, source_ip: Option<IpAddr>) -> Caller {
        Caller {
            principal: Principal {
                account: self.inner.account.clone(),
                kind: PrincipalKind::Anonymous,
                name: String::new(),
                user_id: "anonymous".into(),
                tags: BTreeMap::new(),
            },
            source_ip,
            via: "anonymous",
        }
    }

    fn principal_of(
        &self,
        snap: &Snapshot,
        account: &str,
        kind: StoredKind,
        name: &str,
        session: Option<&str>,
    ) -> Option<Principal> {
        let stored = snap
            .principals
            .get(&(account.to_string(), kind, name.to_string()))?;
        let account = AccountId::parse(account).ok()?;
        let (pkind, user_id) = match (kind, session) {
            (StoredKind::User, _) => (PrincipalKind::User, stored.principal_id.clone()),
            (StoredKind::Role, Some(s)) => (
                PrincipalKind::AssumedRole {
                    session: s.to_string(),
                },
                format!("{}:{s}", stored.principal_id),
            ),
            (StoredKind::Role, None) => return None,
            (StoredKind::Service, _) => (PrincipalKind::Service, stored.principal_id.clone()),
        };
        Some(Principal {
            account,
            kind: pkind,
            name: name.to_string(),
            user_id,
            tags: stored.tags.clone(),
        })
    }

    async fn audit_authn(&self, who: &str, ip: Option<IpAddr>, ok: bool, reason: String) {
        self.inner
            .audit
            .record(AuditRow {
                id: 0,
                at_ms: OffsetDateTime::now_utc().unix_timestamp_nanos() as i64 / 1_000_000,
                principal: who.to_string(),
                action: "authenticate".into(),
                resource: "*".into(),
                decision: if ok { "allow" } else { "deny" }.into(),
                reason,
                source_ip: ip.map(|i| i.to_string()),
            })
            .await;
    }

    /// Records a successful authentication that no authorisation decision follows (the
    /// OCI `/v2/` check). Other successful authentications are recorded with the
    /// authorisation decision of the same request, which names the method (`via`).
    pub async fn record_authentication(&self, caller: &Caller) {
        self.audit_authn(
            &caller.principal.arn(),
            caller.source_ip,
            true,
            caller.via.to_string(),
        )
        .await;
    }

    /// Authenticates an HTTP Basic credential (the part after `Basic `): either
    /// `AWS:<token password>` (ECR_REFERENCE §4.1) or `<access key ID>:<secret>`; an empty
    /// user and password is an anonymous caller.
    /// Records the outcome in the audit trail (never the secret).
    pub async fn authenticate_basic(
        &self,
        credential: &str,
        source_ip: Option<IpAddr>,
    ) -> Result<Caller, AuthError> {
        let mut r = self.basic(credential);
        if matches!(&r, Err((_, e)) if e.may_be_stale()) && self.refresh().await {
            r = self.basic(credential);
        }
        match r {
            Ok((principal, via)) => Ok(Caller {
                principal,
                source_ip,
                via,
            }),
            Err((who, e)) => {
                self.audit_authn(&who, source_ip, false, e.audit_reason())
                    .await;
                Err(e)
            }
        }
    }

    /// The principal a Basic credential names, or (who it claimed to be, why refused).
    fn basic(&self, credential: &str) -> Result<(Principal, &'static str), (String, AuthError)> {
        use base64::Engine;
        let malformed = |m: &str| ("unknown".to_string(), AuthError::Malformed(m.into()));
        let raw = base64::engine::general_purpose::STANDARD
            .decode(credential.trim())
            .map_err(|_| malformed("Basic credential is not base64"))?;
        let raw = Zeroizing::new(
            String::from_utf8(raw).map_err(|_| malformed("Basic credential is not UTF-8"))?,
        );
        let (user, pass) = raw
            .split_once(':')
            .ok_or_else(|| malformed("Basic credential has no ':'"))?;
        // skopeo and podman answer a Basic challenge without credentials with an empty
        // user and password (`Basic Og==`): that is an anonymous caller.
        if user.is_empty() && pass.is_empty() {
            return Ok((self.anonymous(None).principal, "anonymous"));
        }
        if user == "AWS" {
            self.verify_token(pass)
                .map(|p| (p, "Basic token"))
                .map_err(|e| ("AWS (authorization token)".to_string(), e))
        } else {
            self.verify_key_secret(user, pass)
                .map(|p| (p, "Basic access key"))
                .map_err(|e| (user.to_string(), e))
        }
    }

    fn verify_token(&self, password: &str) -> Result<Principal, AuthError> {
        let claims = token::verify(
            self.inner.keys.token_key(),
            password,
            &self.inner.cfg.region,
            now_secs(),
        )?;
        let snap = self.snapshot();
        let kind = StoredKind::parse(&claims.kind)
            .ok_or(AuthError::Token(token::TokenError::Malformed))?;
        let mut session = None;
        if let Some(k) = &claims.temporary_key {
            let key = snap
                .keys
                .get(k)
                .ok_or_else(|| AuthError::Revoked(format!("temporary credentials {k}")))?;
            if key.expires_at.is_some_and(|e| e <= now_secs()) {
                return Err(AuthError::ExpiredCredentials(k.clone()));
            }
            session = key.session_name.clone();
        }
        let revoked = || AuthError::Revoked(format!("{} {}", claims.kind, claims.name));
        let stored = snap
            .principals
            .get(&(claims.account.clone(), kind, claims.name.clone()))
            .ok_or_else(revoked)?;
        if stored.principal_id != claims.principal_id {
            return Err(revoked());
        }
        self.principal_of(
            &snap,
            &claims.account,
            kind,
            &claims.name,
            session.as_deref(),
        )
        .ok_or_else(revoked)
    }

    fn verify_key_secret(&self, akid: &str, secret: &str) -> Result<Principal, AuthError> {
        let snap = self.snapshot();
        let key = snap
            .keys
            .get(akid)
            .ok_or_else(|| AuthError::UnknownAccessKey(akid.to_string()))?;
        if key.session_token_hash.is_some() {
            return Err(AuthError::SessionToken(akid.to_string()));
        }
        if !bool::from(key.secret.as_bytes().ct_eq(secret.as_bytes())) {
            return Err(AuthError::WrongSecret(akid.to_string()));
        }
        self.principal_of(&snap, &key.account, key.kind, &key.name, None)
            .ok_or_else(|| AuthError::UnknownAccessKey(akid.to_string()))
    }

    /// Authenticates a SigV4-signed request (ECR_REFERENCE §1.2): looks up the access
    /// key, requires the session token for temporary credentials, requires the credential
    /// scope to name this region and service `ecr`, and verifies the signature and clock
    /// skew.
    pub async fn authenticate_sigv4(
        &self,
        req: &SignedRequest<'_>,
        source_ip: Option<IpAddr>,
    ) -> Result<Caller, AuthError> {
        let parsed = sigv4::parse(req);
        let who = parsed
            .as_ref()
            .map(|a| a.access_key_id.clone())
            .unwrap_or_else(|_| "unknown".into());
        let parsed = parsed.map_err(AuthError::from);
        let mut r = parsed
            .clone()
            .and_then(|auth| self.verify_sigv4(req, &auth));
        if matches!(&r, Err(e) if e.may_be_stale()) && self.refresh().await {
            r = parsed.and_then(|auth| self.verify_sigv4(req, &auth));
        }
        match r {
            Ok(principal) => Ok(Caller {
                principal,
                source_ip,
                via: "SigV4",
            }),
            Err(e) => {
                self.audit_authn(&who, source_ip, false, e.audit_reason())
                    .await;
                Err(e)
            }
        }
    }

    fn verify_sigv4(
        &self,
        req: &SignedRequest<'_>,
        auth: &sigv4::Authorization,
    ) -> Result<Principal, AuthError> {
        let snap = self.snapshot();
        let akid = &auth.access_key_id;
        let key = snap
            .keys
            .get(akid)
            .ok_or_else(|| AuthError::UnknownAccessKey(akid.clone()))?;
        if let Some(hash) = &key.session_token_hash {
            let given = auth
                .security_token
                .as_deref()
                .map(sha256_hex)
                .unwrap_or_default();
            if !bool::from(given.as_bytes().ct_eq(hash.as_bytes())) {
                return Err(AuthError::SessionToken(akid.clone()));
            }
            if key.expires_at.is_some_and(|e| e <= now_secs()) {
                return Err(AuthError::ExpiredCredentials(akid.clone()));
            }
        }
        if auth.service != "ecr" {
            return Err(AuthError::WrongService(auth.service.clone()));
        }
        if auth.region != self.inner.cfg.region {
            return Err(AuthError::WrongRegion(
                auth.region.clone(),
                self.inner.cfg.region.clone(),
            ));
        }
        let skew = time::Duration::try_from(self.inner.cfg.max_clock_skew)
            .unwrap_or(time::Duration::minutes(15));
        sigv4::verify(req, auth, &key.secret, OffsetDateTime::now_utc(), skew)?;
        self.principal_of(
            &snap,
            &key.account,
            key.kind,
            &key.name,
            key.session_name.as_deref(),
        )
        .ok_or_else(|| AuthError::UnknownAccessKey(akid.clone()))
    }

    /// A presigned URL's query for `GET /v2/<repository>/blobs/<digest>`, valid for the
    /// configured lifetime, carrying the caller's identity. Returns (query, expiry).
    pub fn presign_blob_query(
        &self,
        caller: &Caller,
        repository: &str,
        digest: &str,
    ) -> (String, OffsetDateTime) {
        let expires = OffsetDateTime::now_utc()
            + time::Duration::try_from(self.inner.cfg.presign_lifetime)
                .unwrap_or(time::Duration::hours(1));
        let q = crate::presign::sign_blob_query(
            self.inner.keys.presign_key(),
            repository,
            digest,
            &caller.principal.arn(),
            expires,
        );
        (q, expires)
    }

    /// Verifies a presigned blob URL's query and returns the caller it was issued to
    /// (still subject to authorisation: a URL never grants more than its issuer has).
    pub async fn authenticate_presigned(
        &self,
        repository: &str,
        digest: &str,
        query: &str,
        source_ip: Option<IpAddr>,
    ) -> Result<Caller, AuthError> {
        let r = crate::presign::verify_blob_query(
            self.inner.keys.presign_key(),
            repository,
            digest,
            query,
            OffsetDateTime::now_utc(),
        )
        .map_err(|e| AuthError::Presign(e.to_string()))
        .and_then(|arn| {
            self.principal_by_arn(&arn)
                .ok_or_else(|| AuthError::Revoked(arn.clone()))
        });
        match r {
            Ok(principal) => Ok(Caller {
                principal,
                source_ip,
                via: "presigned URL",
            }),
            Err(e) => {
                self.audit_authn("presigned URL", source_ip, false, e.audit_reason())
                    .await;
                Err(e)
            }
        }
    }

    /// The principal an ARN (as [`Principal::arn`] prints it) names, if it exists.
    fn principal_by_arn(&self, arn: &str) -> Option<Principal> {
        let snap = self.snapshot();
        if let Some(rest) = arn.strip_prefix("arn:aws:iam::") {
            let (account, rest) = rest.split_once(':')?;
            let name = rest.strip_prefix("user/")?;
            return self.principal_of(&snap, account, StoredKind::User, name, None);
        }
        if let Some(rest) = arn.strip_prefix("arn:aws:sts::") {
            let (account, rest) = rest.split_once(':')?;
            let (role, session) = rest.strip_prefix("assumed-role/")?.split_once('/')?;
            return self.principal_of(&snap, account, StoredKind::Role, role, Some(session));
        }
        // A service principal: its name, in whichever account issued it.
        snap.principals
            .keys()
            .find(|(_, k, n)| *k == StoredKind::Service && n == arn)
            .and_then(|(a, k, n)| self.principal_of(&snap, a, *k, n, None))
    }

    /// An ECR authorization token for the caller, valid 12 hours (or until the caller's
    /// temporary credentials expire, if sooner), in this region.
    pub async fn authorization_token(
        &self,
        caller: &Caller,
    ) -> Result<AuthorizationToken, IamError> {
        let p = &caller.principal;
        let (kind, temporary_key, cap) = match &p.kind {
            PrincipalKind::User => (StoredKind::User, None, None),
            PrincipalKind::Service => (StoredKind::Service, None, None),
            PrincipalKind::AssumedRole { session } => {
                let snap = self.snapshot();
                let key = snap.keys.iter().find(|(_, k)| {
                    k.kind == StoredKind::Role
                        && k.account == p.account.as_str()
                        && k.name == p.name
                        && k.session_name.as_deref() == Some(session)
                });
                let (id, k) = key.ok_or_else(|| {
                    IamError::NotFound(format!("the session {} has ended", p.arn()))
                })?;
                (StoredKind::Role, Some(id.clone()), k.expires_at)
            }
            PrincipalKind::Anonymous => {
                return Err(IamError::Invalid(
                    "anonymous callers cannot get an authorization token".into(),
                ))
            }
        };
        let snap = self.snapshot();
        let stored = snap
            .principals
            .get(&(p.account.to_string(), kind, p.name.clone()))
            .ok_or_else(|| IamError::NotFound(format!("{} does not exist", p.arn())))?;
        let mut expires = now_secs() + self.inner.cfg.token_lifetime.as_secs() as i64;
        if let Some(c) = cap {
            expires = expires.min(c);
        }
        let claims = TokenClaims {
            account: p.account.to_string(),
            kind: kind.as_str().into(),
            name: p.name.clone(),
            principal_id: stored.principal_id.clone(),
            temporary_key,
            region: self.inner.cfg.region.clone(),
            expires_at: expires,
        };
        let password = token::issue(self.inner.keys.token_key(), &claims);
        Ok(AuthorizationToken {
            token: token::authorization_token(&password),
            password,
            expires_at: OffsetDateTime::from_unix_timestamp(expires)
                .unwrap_or_else(|_| OffsetDateTime::now_utc()),
        })
    }

    // ---- authorisation --------------------------------------------------------------

    /// Evaluates whether `caller` may perform `action` on `resource` (an ARN or `*`),
    /// without recording it. Used to filter listings; the listing itself is authorised
    /// with [`Iam::authorize`].
    pub fn is_allowed(&self, caller: &Caller, action: Action, resource: &str) -> bool {
        self.evaluate(caller, action.as_str(), resource)
            .is_none_or(|d| d.allowed)
    }

    /// Authorises one action, as IAM evaluates it (ECR_REFERENCE §2.8): identity policies
    /// of the caller, the repository's policy (for repository ARNs) and the registry
    /// policy as resource-based policies; explicit deny wins; same account: either
    /// allows; across accounts: both must. `ecr:GetAuthorizationToken` only counts
    /// identity policies. Records the decision in the audit trail.
    ///
    /// Errors: [`Denied`] with AWS's message.
    pub async fn authorize(
        &self,
        caller: &Caller,
        action: Action,
        resource: &str,
    ) -> Result<(), Denied> {
        let action = action.as_str();
        let principal = caller.principal.arn();
        let (allowed, reason, message) = self.decide(caller, &principal, action, resource);
        self.inner
            .audit
            .record(AuditRow {
                id: 0,
                at_ms: OffsetDateTime::now_utc().unix_timestamp_nanos() as i64 / 1_000_000,
                principal,
                action: action.to_string(),
                resource: resource.to_string(),
                decision: if allowed { "allow" } else { "deny" }.into(),
                reason: format!("{reason} (authenticated by {})", caller.via),
                source_ip: caller.source_ip.map(|i| i.to_string()),
            })
            .await;
        if allowed {
            Ok(())
        } else {
            Err(Denied {
                message,
                anonymous: caller.is_anonymous(),
            })
        }
    }

    /// The policy decision for one request, or `None` when the caller is anonymous and
    /// anonymous access is on (the development flag allows everything).
    fn evaluate(&self, caller: &Caller, action: &str, resource: &str) -> Option<policy::Decision> {
        let p = &caller.principal;
        if p.kind == PrincipalKind::Anonymous && self.inner.cfg.allow_anonymous {
            return None;
        }
        let snap = self.snapshot();
        let identity_key = match &p.kind {
            PrincipalKind::User => Some((p.account.to_string(), StoredKind::User, p.name.clone())),
            PrincipalKind::AssumedRole { .. } => {
                Some((p.account.to_string(), StoredKind::Role, p.name.clone()))
            }
            _ => None,
        };
        let identity: Vec<NamedPolicy<'_>> = identity_key
            .and_then(|k| snap.identity_policies.get(&k))
            .map(|v| {
                v.iter()
                    .map(|(name, document)| NamedPolicy { name, document })
                    .collect()
            })
            .unwrap_or_default();
        let mut resource_policies: Vec<NamedPolicy<'_>> = Vec::with_capacity(2);
        if !action.eq_ignore_ascii_case(EcrAction::GetAuthorizationToken.as_str()) {
            if let Some(repo) = resource.strip_prefix(self.inner.repo_arn_prefix.as_str()) {
                if let Some((_, doc)) = snap.repository_policies.get(repo) {
                    resource_policies.push(NamedPolicy {
                        name: "repository policy",
                        document: doc,
                    });
                }
            }
            if let Some((_, doc)) = &snap.registry_policy {
                resource_policies.push(NamedPolicy {
                    name: "registry policy",
                    document: doc,
                });
            }
        }
        let mut ctx = RequestContext::new(p, action, resource);
        if let Some(ip) = caller.source_ip {
            ctx = ctx.with_source_ip(ip);
        }
        // ecr:GetAuthorizationToken is granted by identity policies alone (ECR_REFERENCE
        // §2.8): it is the caller's own account's resource, so a cross-account caller is
        // judged as in its own account.
        let resource_account =
            if action.eq_ignore_ascii_case(EcrAction::GetAuthorizationToken.as_str()) {
                &p.account
            } else {
                &self.inner.account
            };
        Some(policy::evaluate(
            &ctx,
            &identity,
            &resource_policies,
            resource_account,
        ))
    }

    /// What decided, in words, for the audit trail.
    fn reason(d: Option<&policy::Decision>) -> String {
        let Some(d) = d else {
            return "anonymous access is enabled (--allow-anonymous)".into();
        };
        match &d.reason {
            policy::DecisionReason::Allowed { policy, sid } => match sid {
                Some(s) => format!("allowed by {policy} statement {s}"),
                None => format!("allowed by {policy}"),
            },
            policy::DecisionReason::ExplicitDeny { policy, sid } => match sid {
                Some(s) => format!("explicit deny in {policy} statement {s}"),
                None => format!("explicit deny in {policy}"),
            },
            policy::DecisionReason::ImplicitDeny { missing } => match missing {
                policy::Missing::NoIdentityPolicy => {
                    "implicit deny: no identity-based policy allows it".to_string()
                }
                policy::Missing::NoResourcePolicy => {
                    "implicit deny: no resource-based policy allows it".to_string()
                }
                policy::Missing::Neither => {
                    "implicit deny: no identity-based or resource-based policy allows it"
                        .to_string()
                }
            },
        }
    }

    /// (allowed, audit reason, denial message); the message is empty when allowed.
    fn decide(
        &self,
        caller: &Caller,
        principal_arn: &str,
        action: &str,
        resource: &str,
    ) -> (bool, String, String) {
        let d = self.evaluate(caller, action, resource);
        let allowed = d.as_ref().is_none_or(|d| d.allowed);
        let message = match &d {
            Some(d) if !allowed => d
                .denial_message(principal_arn, action, resource)
                .unwrap_or_default(),
            _ => String::new(),
        };
        (allowed, Self::reason(d.as_ref()), message)
    }

    // ---- policies -------------------------------------------------------------------

    /// Validates and stores a repository policy (ECR SetRepositoryPolicy; ≤ 10240 chars).
    pub async fn set_repository_policy(
        &self,
        repository: &str,
        text: &str,
    ) -> Result<(), IamError> {
        validate_policy(text, PolicyKind::Resource)?;
        self.inner
            .store
            .set_repository_policy(repository, Some(text))
            .await?;
        self.reload().await
    }

    /// The repository's policy text, if any.
    pub async fn get_repository_policy(
        &self,
        repository: &str,
    ) -> Result<Option<String>, IamError> {
        Ok(self
            .snapshot()
            .repository_policies
            .get(repository)
            .map(|(t, _)| t.clone()))
    }

    /// Deletes the repository's policy; returns the deleted text, if there was one.
    pub async fn delete_repository_policy(
        &self,
        repository: &str,
    ) -> Result<Option<String>, IamError> {
        let prev = self
            .inner
            .store
            .set_repository_policy(repository, None)
            .await?;
        self.reload().await?;
        Ok(prev)
    }

    /// Validates and stores the registry policy (ECR PutRegistryPolicy; ≤ 10240 chars).
    pub async fn put_registry_policy(&self, text: &str) -> Result<(), IamError> {
        validate_policy(text, PolicyKind::Resource)?;
        self.inner.store.set_registry_policy(Some(text)).await?;
        self.reload().await
    }

    /// The registry policy text, if set.
    pub async fn get_registry_policy(&self) -> Result<Option<String>, IamError> {
        Ok(self
            .snapshot()
            .registry_policy
            .as_ref()
            .map(|(t, _)| t.clone()))
    }

    /// Deletes the registry policy; returns the deleted text, if there was one.
    pub async fn delete_registry_policy(&self) -> Result<Option<String>, IamError> {
        let prev = self.inner.store.set_registry_policy(None).await?;
        self.reload().await?;
        Ok(prev)
    }

    // ---- administration -------------------------------------------------------------

    /// Creates an account. Errors: bad ID, or it exists.
    pub async fn create_account(&self, account_id: &str, name: &str) -> Result<(), IamError> {
        AccountId::parse(account_id).map_err(IamError::Invalid)?;
        let created = self
            .inner
            .store
            .create_account(&AccountRow {
                account_id: account_id.into(),
                name: name.into(),
                is_default: false,
                created_at: now_secs(),
            })
            .await?;
        self.reload().await?;
        created
            .then_some(())
            .ok_or_else(|| IamError::AlreadyExists(format!("account {account_id} already exists")))
    }

    /// Deletes an account and everything in it. The default account cannot be deleted.
    pub async fn delete_account(&self, account_id: &str) -> Result<(), IamError> {
        if account_id == self.inner.account.as_str() {
            return Err(IamError::Invalid(format!(
                "account {account_id} is this registry's own account and cannot be deleted"
            )));
        }
        let done = self.inner.store.delete_account(account_id).await?;
        self.reload().await?;
        done.then_some(())
            .ok_or_else(|| IamError::NotFound(format!("account {account_id} does not exist")))
    }

    /// All accounts as (ID, name, is default).
    pub fn list_accounts(&self) -> Vec<(String, String, bool)> {
        self.snapshot()
            .accounts
            .values()
            .map(|a| (a.account_id.clone(), a.name.clone(), a.is_default))
            .collect()
    }

    /// Creates a user, role or service principal in `account`. A service principal's
    /// name is the service, e.g. `ecs-tasks.amazonaws.com`.
    pub async fn create_principal(
        &self,
        account: &str,
        kind: StoredKind,
        name: &str,
        tags: BTreeMap<String, String>,
    ) -> Result<(), IamError> {
        if kind == StoredKind::Service {
            let ok = !name.is_empty()
                && name.len() <= 128
                && name.contains('.')
                && name
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || ".-".contains(c));
            if !ok {
                return Err(IamError::Invalid(format!(
                    "service name '{name}' must look like a DNS name, e.g. ecs-tasks.amazonaws.com"
                )));
            }
        } else {
            check_name(kind.as_str(), name)?;
        }
        if !self.snapshot().accounts.contains_key(account) {
            return Err(IamError::NotFound(format!(
                "account {account} does not exist"
            )));
        }
        let prefix = match kind {
            StoredKind::User => "AIDA",
            StoredKind::Role => "AROA",
            StoredKind::Service => "ASVC",
        };
        let created = self
            .inner
            .store
            .create_principal(&PrincipalRow {
                account_id: account.into(),
                kind: kind.as_str().into(),
                name: name.into(),
                principal_id: format!("{prefix}{}", random_chars(17, ID_ALPHABET)),
                tags: serde_json::to_string(&tags).unwrap_or_else(|_| "{}".into()),
                created_at: now_secs(),
            })
            .await?;
        self.reload().await?;
        created.then_some(()).ok_or_else(|| {
            IamError::AlreadyExists(format!(
                "{} '{name}' already exists in account {account}",
                kind.as_str()
            ))
        })
    }

    /// Deletes a principal with its keys and policies (its tokens stop working).
    pub async fn delete_principal(
        &self,
        account: &str,
        kind: StoredKind,
        name: &str,
    ) -> Result<(), IamError> {
        let done = self
            .inner
            .store
            .delete_principal(account, kind.as_str(), name)
            .await?;
        self.reload().await?;
        done.then_some(()).ok_or_else(|| {
            IamError::NotFound(format!(
                "{} '{name}' does not exist in account {account}",
                kind.as_str()
            ))
        })
    }

    /// Principals as (account, kind, name, ARN-or-service-name).
    pub fn list_principals(
        &self,
        account: Option<&str>,
    ) -> Vec<(String, StoredKind, String, String)> {
        let snap = self.snapshot();
        let mut v: Vec<_> = snap
            .principals
            .keys()
            .filter(|(a, _, _)| account.is_none_or(|x| x == a))
            .map(|(a, k, n)| {
                let arn = match k {
                    StoredKind::User => format!("arn:aws:iam::{a}:user/{n}"),
                    StoredKind::Role => format!("arn:aws:iam::{a}:role/{n}"),
                    StoredKind::Service => n.clone(),
                };
                (a.clone(), *k, n.clone(), arn)
            })
            .collect();
        v.sort();
        v
    }

    /// Issues a long-lived access key to a user or service principal. The secret is
    /// returned once and stored only encrypted.
    pub async fn create_access_key(
        &self,
        account: &str,
        kind: StoredKind,
        name: &str,
    ) -> Result<NewAccessKey, IamError> {
        if kind == StoredKind::Role {
            return Err(IamError::Invalid(
                "roles have no long-lived access keys; assume the role for temporary credentials"
                    .into(),
            ));
        }
        if !self
            .snapshot()
            .principals
            .contains_key(&(account.to_string(), kind, name.to_string()))
        {
            return Err(IamError::NotFound(format!(
                "{} '{name}' does not exist in account {account}",
                kind.as_str()
            )));
        }
        let id = format!("AKIA{}", random_chars(16, ID_ALPHABET));
        let secret = Zeroizing::new(random_chars(40, SECRET_ALPHABET));
        self.inner
            .store
            .create_access_key(&AccessKeyRow {
                access_key_id: id.clone(),
                account_id: account.into(),
                kind: kind.as_str().into(),
                name: name.into(),
                secret_enc: self.inner.keys.seal(&secret),
                session_name: None,
                session_token_hash: None,
                expires_at: None,
                created_at: now_secs(),
            })
            .await?;
        self.reload().await?;
        Ok(NewAccessKey {
            access_key_id: id,
            secret_access_key: secret,
        })
    }

    /// Access keys as (ID, owner ARN-or-service, session, expiry epoch seconds).
    pub fn list_access_keys(
        &self,
        account: Option<&str>,
    ) -> Vec<(String, String, Option<String>, Option<i64>)> {
        let snap = self.snapshot();
        let mut v: Vec<_> = snap
            .keys
            .iter()
            .filter(|(_, k)| account.is_none_or(|a| a == k.account))
            .map(|(id, k)| {
                let owner = match k.kind {
                    StoredKind::User => format!("arn:aws:iam::{}:user/{}", k.account, k.name),
                    StoredKind::Role => format!("arn:aws:iam::{}:role/{}", k.account, k.name),
                    StoredKind::Service => k.name.clone(),
                };
                (id.clone(), owner, k.session_name.clone(), k.expires_at)
            })
            .collect();
        v.sort();
        v
    }

    /// Deletes an access key (or temporary credentials).
    pub async fn delete_access_key(&self, access_key_id: &str) -> Result<(), IamError> {
        let done = self.inner.store.delete_access_key(access_key_id).await?;
        self.reload().await?;
        done.then_some(())
            .ok_or_else(|| IamError::NotFound(format!("access key {access_key_id} does not exist")))
    }

    /// Attaches (creates or replaces) an inline identity policy to a user or role.
    /// Errors: [`IamError::InvalidPolicy`] naming the statement and field.
    pub async fn put_identity_policy(
        &self,
        account: &str,
        kind: StoredKind,
        name: &str,
        policy_name: &str,
        text: &str,
    ) -> Result<(), IamError> {
        if kind == StoredKind::Service {
            return Err(IamError::Invalid(
                "service principals have no identity policies; grant them access with a repository or registry policy".into(),
            ));
        }
        check_name("policy", policy_name)?;
        validate_policy(text, PolicyKind::Identity)?;
        if !self
            .snapshot()
            .principals
            .contains_key(&(account.to_string(), kind, name.to_string()))
        {
            return Err(IamError::NotFound(format!(
                "{} '{name}' does not exist in account {account}",
                kind.as_str()
            )));
        }
        self.inner
            .store
            .put_identity_policy(&IdentityPolicyRow {
                account_id: account.into(),
                kind: kind.as_str().into(),
                name: name.into(),
                policy_name: policy_name.into(),
                document: text.into(),
            })
            .await?;
        self.reload().await
    }

    /// Detaches an inline identity policy.
    pub async fn delete_identity_policy(
        &self,
        account: &str,
        kind: StoredKind,
        name: &str,
        policy_name: &str,
    ) -> Result<(), IamError> {
        let done = self
            .inner
            .store
            .delete_identity_policy(account, kind.as_str(), name, policy_name)
            .await?;
        self.reload().await?;
        done.then_some(()).ok_or_else(|| {
            IamError::NotFound(format!(
                "policy '{policy_name}' is not attached to {} '{name}'",
                kind.as_str()
            ))
        })
    }

    /// Identity policies of a user or role as (policy name, document text).
    pub async fn list_identity_policies(
        &self,
        account: &str,
        kind: StoredKind,
        name: &str,
    ) -> Result<Vec<(String, String)>, IamError> {
        let data = self.inner.store.load_iam().await?;
        Ok(data
            .policies
            .into_iter()
            .filter(|p| p.account_id == account && p.kind == kind.as_str() && p.name == name)
            .map(|p| (p.policy_name, p.document))
            .collect())
    }

    /// Assumes a role: issues temporary credentials (`ASIA…` key, secret, session token)
    /// valid for `duration` (15 minutes to 12 hours, as STS AssumeRole).
    pub async fn assume_role(
        &self,
        account: &str,
        role: &str,
        session_name: &str,
        duration: Duration,
    ) -> Result<TemporaryCredentials, IamError> {
        let secs = duration.as_secs();
        if !(900..=43_200).contains(&secs) {
            return Err(IamError::Invalid(format!(
                "duration {secs} s must be between 900 and 43200 seconds"
            )));
        }
        let ok = (2..=64).contains(&session_name.len())
            && session_name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "_=,.@-".contains(c));
        if !ok {
            return Err(IamError::Invalid(format!(
                "role session name '{session_name}' must be 2-64 characters of letters, digits and _=,.@-"
            )));
        }
        if !self.snapshot().principals.contains_key(&(
            account.to_string(),
            StoredKind::Role,
            role.to_string(),
        )) {
            return Err(IamError::NotFound(format!(
                "role '{role}' does not exist in account {account}"
            )));
        }
        let id = format!("ASIA{}", random_chars(16, ID_ALPHABET));
        let secret = Zeroizing::new(random_chars(40, SECRET_ALPHABET));
        let session_token = Zeroizing::new(random_chars(96, SECRET_ALPHABET));
        let expires = now_secs() + secs as i64;
        self.inner
            .store
            .create_access_key(&AccessKeyRow {
                access_key_id: id.clone(),
                account_id: account.into(),
                kind: "role".into(),
                name: role.into(),
                secret_enc: self.inner.keys.seal(&secret),
                session_name: Some(session_name.into()),
                session_token_hash: Some(sha256_hex(&session_token)),
                expires_at: Some(expires),
                created_at: now_secs(),
            })
            .await?;
        self.reload().await?;
        Ok(TemporaryCredentials {
            access_key_id: id,
            secret_access_key: secret,
            session_token,
            expiration: OffsetDateTime::from_unix_timestamp(expires)
                .unwrap_or_else(|_| OffsetDateTime::now_utc()),
        })
    }

    /// Evaluates a request without performing it (`berth admin policy simulate`):
    /// (allowed, what decided, AWS denial message). `principal_arn` may be `anonymous`.
    pub fn simulate(
        &self,
        principal_arn: &str,
        action: &str,
        resource: &str,
        source_ip: Option<IpAddr>,
    ) -> Result<(bool, String, String), IamError> {
        let caller = if principal_arn == "anonymous" {
            self.anonymous(source_ip)
        } else {
            let principal = self.principal_by_arn(principal_arn).ok_or_else(|| {
                IamError::NotFound(format!(
                    "principal {principal_arn} does not exist (give a user ARN, \
                     arn:aws:sts::<account>:assumed-role/<role>/<session>, a service name, \
                     or anonymous)"
                ))
            })?;
            Caller {
                principal,
                source_ip,
                via: "simulation",
            }
        };
        let arn = caller.principal.arn();
        Ok(self.decide(&caller, &arn, action, resource))
    }

    /// Audit records matching `q`, newest first.
    pub async fn query_audit(&self, q: &AuditQuery) -> Result<Vec<AuditRow>, IamError> {
        Ok(self.inner.store.query_audit(q).await?)
    }

    /// Deletes audit records older than `max_age`.
    pub async fn prune_audit(&self, max_age: Duration) -> Result<u64, IamError> {
        let cutoff = OffsetDateTime::now_utc().unix_timestamp_nanos() as i64 / 1_000_000
            - max_age.as_millis() as i64;
        Ok(self.inner.store.prune_audit(cutoff).await?)
    }
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
