//! Identity and access metadata: accounts, principals, access keys, identity policies,
//! repository and registry policies, and the audit trail (issue 3).
//!
//! Rows only: what the rows mean (ARNs, policy grammar, evaluation, encryption of
//! secrets) is `berth-iam`'s business. Every write bumps a generation counter in the same
//! transaction, so a server that keeps the identity data in memory reloads it when the
//! counter moves, including after `berth admin` changed the database from another process.

use crate::Result;

/// An account (a registry ID): 12 digits.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccountRow {
    /// 12-digit account ID.
    pub account_id: String,
    /// A human name.
    pub name: String,
    /// Whether this is the registry's own (default) account. At most one is.
    pub is_default: bool,
    /// Creation time, epoch seconds.
    pub created_at: i64,
}

/// A user, role or service principal of an account.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PrincipalRow {
    /// Owning account.
    pub account_id: String,
    /// `user`, `role` or `service`.
    pub kind: String,
    /// User or role name, or the service name (e.g. `ecs-tasks.amazonaws.com`).
    pub name: String,
    /// Stable unique ID (`AIDA…` for users, `AROA…` for roles).
    pub principal_id: String,
    /// Principal tags as a JSON object of strings.
    pub tags: String,
    /// Creation time, epoch seconds.
    pub created_at: i64,
}

/// An access key: long-lived for users and services, temporary for role sessions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccessKeyRow {
    /// The access key ID (`AKIA…` long-lived, `ASIA…` temporary).
    pub access_key_id: String,
    /// Owner's account.
    pub account_id: String,
    /// Owner's kind (`user`, `role`, `service`).
    pub kind: String,
    /// Owner's name.
    pub name: String,
    /// The secret access key, encrypted (opaque to this crate).
    pub secret_enc: Vec<u8>,
    /// For temporary credentials: the role session name.
    pub session_name: Option<String>,
    /// For temporary credentials: hex SHA-256 of the session token.
    pub session_token_hash: Option<String>,
    /// For temporary credentials: expiry, epoch seconds.
    pub expires_at: Option<i64>,
    /// Creation time, epoch seconds.
    pub created_at: i64,
}

/// An inline identity policy attached to a user or role.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdentityPolicyRow {
    /// Owner's account.
    pub account_id: String,
    /// Owner's kind (`user` or `role`).
    pub kind: String,
    /// Owner's name.
    pub name: String,
    /// The policy's name.
    pub policy_name: String,
    /// The policy document (JSON text, validated by the caller).
    pub document: String,
}

/// Everything identity-related except the audit trail, loaded at once.
#[derive(Debug, Clone, Default)]
pub struct IamData {
    /// The generation this snapshot was read at.
    pub generation: i64,
    /// All accounts.
    pub accounts: Vec<AccountRow>,
    /// All principals.
    pub principals: Vec<PrincipalRow>,
    /// All access keys (secrets still encrypted).
    pub access_keys: Vec<AccessKeyRow>,
    /// All inline identity policies.
    pub policies: Vec<IdentityPolicyRow>,
    /// Repository policies: (repository name, document).
    pub repository_policies: Vec<(String, String)>,
    /// The registry policy, if set.
    pub registry_policy: Option<String>,
}

/// One audit record: an authentication or authorisation decision.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditRow {
    /// Row ID (assigned on insert; ignored when appending).
    pub id: i64,
    /// When, epoch milliseconds.
    pub at_ms: i64,
    /// The principal's ARN (or the access key ID / `anonymous` when unauthenticated).
    pub principal: String,
    /// The action (`ecr:BatchGetImage`, or `authenticate`).
    pub action: String,
    /// The resource ARN (or `*`).
    pub resource: String,
    /// `allow` or `deny`.
    pub decision: String,
    /// What decided: the policy and statement, or why authentication failed.
    pub reason: String,
    /// The caller's IP address, if known.
    pub source_ip: Option<String>,
}

/// Filters for [`IamStore::query_audit`]; `None` means any.
#[derive(Debug, Clone, Default)]
pub struct AuditQuery {
    /// Exact principal ARN.
    pub principal: Option<String>,
    /// Exact action (case-sensitive as recorded).
    pub action: Option<String>,
    /// `allow` or `deny`.
    pub decision: Option<String>,
    /// Exact resource ARN.
    pub resource: Option<String>,
    /// Resource ARN prefix.
    pub resource_prefix: Option<String>,
    /// Only records at or after this time, epoch milliseconds.
    pub since_ms: Option<i64>,
    /// At most this many records, newest first.
    pub limit: u32,
}

/// The identity tables. Implemented by [`crate::SqliteMeta`] and by [`crate::PgMeta`]
/// (which serialises identity writers on the `iam_generation` row lock).
///
/// Errors: [`crate::MetaError::Db`] on database failure; creating something that exists
/// returns `Ok(false)` rather than an error, and deleting something absent `Ok(false)`.
#[async_trait::async_trait]
pub trait IamStore: Send + Sync + 'static {
    /// The current generation (bumped by every identity write).
    async fn iam_generation(&self) -> Result<i64>;
    /// Loads all identity data in one read transaction.
    async fn load_iam(&self) -> Result<IamData>;
    /// Creates an account; `Ok(false)` if it exists. Setting `is_default` clears it on
    /// every other account.
    async fn create_account(&self, row: &AccountRow) -> Result<bool>;
    /// Deletes an account with its principals, keys and policies.
    async fn delete_account(&self, account_id: &str) -> Result<bool>;
    /// Creates a principal; `Ok(false)` if one of that kind and name exists.
    /// Errors: the account does not exist ([`crate::MetaError::Corrupt`] is not used;
    /// a foreign-key failure surfaces as `Db`).
    async fn create_principal(&self, row: &PrincipalRow) -> Result<bool>;
    /// Deletes a principal with its keys and policies.
    async fn delete_principal(&self, account_id: &str, kind: &str, name: &str) -> Result<bool>;
    /// Stores an access key.
    async fn create_access_key(&self, row: &AccessKeyRow) -> Result<()>;
    /// Deletes an access key.
    async fn delete_access_key(&self, access_key_id: &str) -> Result<bool>;
    /// Deletes temporary credentials that expired before `now` (epoch seconds).
    async fn delete_expired_keys(&self, now: i64) -> Result<u64>;
    /// Creates or replaces an inline identity policy.
    async fn put_identity_policy(&self, row: &IdentityPolicyRow) -> Result<()>;
    /// Deletes an inline identity policy.
    async fn delete_identity_policy(
        &self,
        account_id: &str,
        kind: &str,
        name: &str,
        policy_name: &str,
    ) -> Result<bool>;
    /// Sets (Some) or deletes (None) a repository's policy; returns the previous one.
    async fn set_repository_policy(
        &self,
        repository: &str,
        document: Option<&str>,
    ) -> Result<Option<String>>;
    /// Sets (Some) or deletes (None) the registry policy; returns the previous one.
    async fn set_registry_policy(&self, document: Option<&str>) -> Result<Option<String>>;
    /// A registry-wide setting (e.g. `region`), if set.
    async fn get_setting(&self, key: &str) -> Result<Option<String>>;
    /// Sets a registry-wide setting.
    async fn put_setting(&self, key: &str, value: &str) -> Result<()>;
    /// Appends audit records in one transaction.
    async fn append_audit(&self, rows: &[AuditRow]) -> Result<()>;
    /// Audit records matching `q`, newest first.
    async fn query_audit(&self, q: &AuditQuery) -> Result<Vec<AuditRow>>;
    /// Deletes audit records older than `before_ms`; returns how many.
    async fn prune_audit(&self, before_ms: i64) -> Result<u64>;
}
