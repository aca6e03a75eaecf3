//! STS: roles' trust policies and the three operations CI credential providers call —
//! `AssumeRoleWithWebIdentity` (an OIDC token for a role session), `AssumeRole` (a signed-in
//! principal for a role session) and `GetCallerIdentity`.
//!
//! Sources: STS API Reference (AssumeRoleWithWebIdentity, AssumeRole, GetCallerIdentity:
//! parameters, limits, errors); IAM User Guide, "Role trust policies", "Creating a role for
//! web identity or OpenID Connect federation" and "Available keys for AWS OIDC federation".
//!
//! A trust policy is a resource-based policy on the role: it is evaluated with the same
//! [`policy::evaluate`] as repository policies, the role's ARN as the resource and the
//! action `sts:AssumeRoleWithWebIdentity` or `sts:AssumeRole`. For a web identity the
//! caller is a [`PrincipalKind::WebIdentity`] named by the provider's ARN (matched by
//! `"Principal": {"Federated": …}`), with the condition keys `<provider id>:sub` and
//! `<provider id>:aud` set from the verified token; it has no identity policies, so only a
//! statement of the trust policy that names it directly can allow. For `AssumeRole` the
//! caller's own identity policies count too, exactly as IAM's same-account logic says (a
//! trust policy naming only the account needs an identity policy allowing `sts:AssumeRole`).
//!
//! *Storage.* A trust policy is kept as a row of the role's inline policies under the
//! reserved name [`TRUST_POLICY_NAME`] — a name IAM's policy-name grammar (`[\w+=,.@-]`)
//! cannot produce, so no user policy can collide with it — whose document is
//! `{"AssumeRolePolicyDocument": "<policy text>", "MaxSessionDuration": <seconds>}`. It goes
//! with the role when the role is deleted, is copied by `berth admin migrate` with the other
//! policies, and needs no table of its own. It is never listed or evaluated as an identity
//! policy. The session credentials are the role-session access keys `assume_role` already
//! stores (secret sealed, session token hashed, expiry), which every node's SigV4 check
//! already honours, so nothing new is needed to make them work and expire everywhere.

use super::*;
use crate::federation::WebIdentity;
use serde::{Deserialize, Serialize};

/// The reserved policy name a role's trust policy is stored under.
pub const TRUST_POLICY_NAME: &str = "sts:AssumeRolePolicyDocument";

/// A role's maximum session duration unless configured: one hour, IAM's default.
pub const DEFAULT_MAX_SESSION_SECS: u64 = 3600;

#[derive(Serialize, Deserialize)]
struct TrustRow {
    #[serde(rename = "AssumeRolePolicyDocument")]
    document: String,
    #[serde(rename = "MaxSessionDuration")]
    max_session_duration: u64,
}

/// Reads a stored trust row; a row that does not parse denies everything (fails closed).
pub(super) fn parse_trust_row(role: &str, text: &str) -> (PolicyDocument, u64) {
    match serde_json::from_str::<TrustRow>(text) {
        Ok(r) => (
            snapshot::parse_stored(
                &format!("trust policy of role {role}"),
                &r.document,
                PolicyKind::Resource,
            ),
            r.max_session_duration.clamp(3600, 43_200),
        ),
        Err(e) => {
            tracing::error!(role, error = %e, "a stored trust policy does not parse; the role cannot be assumed until it is replaced");
            (
                snapshot::deny_all(PolicyKind::Resource),
                DEFAULT_MAX_SESSION_SECS,
            )
        }
    }
}

/// An STS error: `code` is the `<Code>` of STS's error XML (`InvalidIdentityToken`,
/// `ExpiredTokenException`, `IDPCommunicationError`, `AccessDenied`, `ValidationError`,
/// `InvalidClientTokenId`, …) and `message` its `<Message>`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StsError {
    /// STS's error code.
    pub code: &'static str,
    /// The message.
    pub message: String,
}

impl StsError {
    /// An error with `code` and `message`.
    pub fn new(code: &'static str, message: impl Into<String>) -> StsError {
        StsError {
            code,
            message: message.into(),
        }
    }

    /// The HTTP status STS answers with it: 403 for `AccessDenied` and the
    /// authentication failures, 400 otherwise.
    pub fn status(&self) -> u16 {
        match self.code {
            "AccessDenied"
            | "IDPRejectedClaim"
            | "InvalidClientTokenId"
            | "SignatureDoesNotMatch"
            | "IncompleteSignature"
            | "MissingAuthenticationToken" => 403,
            _ => 400,
        }
    }
}

impl fmt::Display for StsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.code, self.message)
    }
}

impl std::error::Error for StsError {}

/// The outcome of an AssumeRole* call: the session's credentials and names.
#[derive(Clone)]
pub struct AssumedRole {
    /// The temporary credentials.
    pub credentials: TemporaryCredentials,
    /// `arn:aws:sts::<account>:assumed-role/<role>/<session>`.
    pub arn: String,
    /// `<role ID>:<session>` (`AssumedRoleId`).
    pub assumed_role_id: String,
    /// For AssumeRoleWithWebIdentity: the verified token's provider, subject and audience.
    pub web_identity: Option<WebIdentity>,
}

fn validation(member: &str, value: &str, rule: &str) -> StsError {
    StsError::new(
        "ValidationError",
        format!(
            "1 validation error detected: Value '{value}' at '{member}' failed to satisfy \
             constraint: {rule}"
        ),
    )
}

impl Iam {
    /// Sets a role's trust policy (a resource-based policy document whose statements name
    /// who may assume it) and its maximum session duration (3600–43200 s; IAM's
    /// `MaxSessionDuration`, default 3600).
    ///
    /// Errors: the document does not parse, the duration is out of range, the role does
    /// not exist, the database fails.
    pub async fn put_role_trust_policy(
        &self,
        account: &str,
        role: &str,
        text: &str,
        max_session_secs: Option<u64>,
    ) -> Result<(), IamError> {
        validate_policy(text, PolicyKind::Resource)?;
        let max = max_session_secs.unwrap_or(DEFAULT_MAX_SESSION_SECS);
        if !(3600..=43_200).contains(&max) {
            return Err(IamError::Invalid(format!(
                "the maximum session duration {max} s must be between 3600 and 43200 seconds"
            )));
        }
        self.snapshot().require_role(account, role)?;
        let row = TrustRow {
            document: text.to_string(),
            max_session_duration: max,
        };
        self.inner
            .store
            .put_identity_policy(&IdentityPolicyRow {
                account_id: account.into(),
                kind: StoredKind::Role.as_str().into(),
                name: role.into(),
                policy_name: TRUST_POLICY_NAME.into(),
                document: serde_json::to_string(&row).expect("trust row serialises"),
            })
            .await?;
        self.reload().await
    }

    /// A role's trust policy text and maximum session duration, if it has one.
    pub async fn get_role_trust_policy(
        &self,
        account: &str,
        role: &str,
    ) -> Result<Option<(String, u64)>, IamError> {
        let data = self.inner.store.load_iam().await?;
        Ok(data
            .policies
            .into_iter()
            .find(|p| {
                p.account_id == account
                    && p.kind == StoredKind::Role.as_str()
                    && p.name == role
                    && p.policy_name == TRUST_POLICY_NAME
            })
            .and_then(|p| serde_json::from_str::<TrustRow>(&p.document).ok())
            .map(|r| (r.document, r.max_session_duration)))
    }

    /// `(account, role name)` of `arn:aws:iam::<account>:role/[<path>/]<name>`.
    fn parse_role_arn(arn: &str) -> Result<(String, String), StsError> {
        let bad = || {
            validation(
                "roleArn",
                arn,
                "Member must be a role ARN: arn:aws:iam::<account>:role/<name>",
            )
        };
        let rest = arn.strip_prefix("arn:aws:iam::").ok_or_else(bad)?;
        let (account, rest) = rest.split_once(':').ok_or_else(bad)?;
        let path = rest.strip_prefix("role/").ok_or_else(bad)?;
        let name = path.rsplit('/').next().unwrap_or(path);
        AccountId::parse(account).map_err(|_| bad())?;
        if name.is_empty() {
            return Err(bad());
        }
        Ok((account.to_string(), name.to_string()))
    }

    /// `DurationSeconds` checked against STS's range and the role's maximum.
    fn session_duration(requested: Option<u64>, max: u64) -> Result<Duration, StsError> {
        let secs = requested.unwrap_or(DEFAULT_MAX_SESSION_SECS.min(max));
        if secs < 900 {
            return Err(validation(
                "durationSeconds",
                &secs.to_string(),
                "Member must have value greater than or equal to 900",
            ));
        }
        if secs > max {
            return Err(StsError::new(
                "ValidationError",
                format!(
                    "The requested DurationSeconds exceeds the MaxSessionDuration set for this \
                     role ({secs} > {max})."
                ),
            ));
        }
        Ok(Duration::from_secs(secs))
    }

    /// Evaluates the role's trust policy for `principal` (with `identity` its identity
    /// policies) and records the decision; `Ok(max session seconds)` when allowed.
    #[allow(clippy::too_many_arguments)]
    async fn check_trust(
        &self,
        principal: &Principal,
        source_ip: Option<IpAddr>,
        action: &str,
        account: &str,
        role: &str,
        extra: &[(String, String)],
        who: &str,
    ) -> Result<u64, StsError> {
        let role_arn = format!("arn:aws:iam::{account}:role/{role}");
        let key = (account.to_string(), StoredKind::Role, role.to_string());
        let snap = self.snapshot();
        let (allowed, reason, max) = match (
            snap.principals.contains_key(&key),
            snap.trust_policies.get(&key),
        ) {
            (false, _) => (false, format!("role {role_arn} does not exist"), 0),
            (true, None) => (false, format!("role {role_arn} has no trust policy"), 0),
            (true, Some((doc, max))) => {
                let identity = snap.identity_policies_of(principal);
                let mut ctx = RequestContext::new(principal, action, &role_arn);
                if let Some(ip) = source_ip {
                    ctx = ctx.with_source_ip(ip);
                }
                for (k, v) in extra {
                    ctx = ctx.with_value(k, vec![v.clone()]);
                }
                let trust = [NamedPolicy {
                    name: "trust policy",
                    document: doc,
                }];
                let role_account = AccountId::parse(account).expect("parsed role ARN");
                // The trust policy must always allow: unlike other resource policies,
                // an identity policy alone never lets a principal assume a role. A
                // statement naming the principal itself suffices; one naming only its
                // account delegates to the account, whose identity policies must then
                // allow the action too (IAM User Guide, "Role trust policies").
                let mut d = policy::evaluate(&ctx, &[], &trust, &role_account);
                if matches!(
                    d.reason,
                    policy::DecisionReason::ImplicitDeny {
                        missing: policy::Missing::NoIdentityPolicy
                    }
                ) {
                    d = policy::evaluate(&ctx, &identity, &trust, &role_account);
                }
                let why = Self::reason(Some(&d));
                (d.allowed, why, *max)
            }
        };
        self.inner
            .audit
            .record(AuditRow {
                id: 0,
                at_ms: OffsetDateTime::now_utc().unix_timestamp_nanos() as i64 / 1_000_000,
                principal: who.to_string(),
                action: action.to_string(),
                resource: role_arn.clone(),
                decision: if allowed { "allow" } else { "deny" }.into(),
                reason: reason.clone(),
                source_ip: source_ip.map(|i| i.to_string()),
            })
            .await;
        if allowed {
            Ok(max)
        } else {
            Err(StsError::new(
                "AccessDenied",
                format!("Not authorized to perform {action} on {role_arn} ({who}): {reason}"),
            ))
        }
    }

    async fn start_session(
        &self,
        account: &str,
        role: &str,
        session_name: &str,
        duration: Duration,
        web_identity: Option<WebIdentity>,
    ) -> Result<AssumedRole, StsError> {
        let credentials = self
            .assume_role(account, role, session_name, duration)
            .await
            .map_err(|e| match e {
                IamError::Invalid(m) => StsError::new("ValidationError", m),
                IamError::NotFound(m) => StsError::new("AccessDenied", m),
                other => StsError::new("InternalFailure", other.to_string()),
            })?;
        let role_id = self
            .snapshot()
            .principals
            .get(&(account.to_string(), StoredKind::Role, role.to_string()))
            .map(|p| p.principal_id.clone())
            .unwrap_or_default();
        Ok(AssumedRole {
            credentials,
            arn: format!("arn:aws:sts::{account}:assumed-role/{role}/{session_name}"),
            assumed_role_id: format!("{role_id}:{session_name}"),
            web_identity,
        })
    }

    /// `AssumeRoleWithWebIdentity`: verifies `token` with the trusted OIDC providers
    /// ([`crate::federation`]), evaluates the role's trust policy for the provider with
    /// the condition keys `<provider id>:sub` and `<provider id>:aud`, and starts a role
    /// session of `duration_secs` (default 3600, at most the role's maximum).
    ///
    /// Errors (STS codes): `InvalidIdentityToken` (not a JWT, bad signature, unknown
    /// issuer or key, wrong audience), `ExpiredTokenException`, `IDPCommunicationError`
    /// (the key set cannot be read), `AccessDenied` (no such role, no trust policy, or the
    /// trust policy does not allow this token), `ValidationError`.
    pub async fn assume_role_with_web_identity(
        &self,
        role_arn: &str,
        session_name: &str,
        token: &str,
        duration_secs: Option<u64>,
        source_ip: Option<IpAddr>,
    ) -> Result<AssumedRole, StsError> {
        let (account, role) = Self::parse_role_arn(role_arn)?;
        let identity = self
            .inner
            .cfg
            .federation
            .verify(token)
            .await
            .map_err(|e| StsError::new(e.code(), e.to_string()))?;
        let provider_arn = format!(
            "arn:aws:iam::{account}:oidc-provider/{}",
            identity.provider_id
        );
        let principal = Principal {
            account: AccountId::parse(&account).expect("parsed role ARN"),
            kind: PrincipalKind::WebIdentity,
            name: provider_arn,
            user_id: identity.subject.clone(),
            tags: BTreeMap::new(),
        };
        let extra = [
            (
                format!("{}:sub", identity.provider_id),
                identity.subject.clone(),
            ),
            (
                format!("{}:aud", identity.provider_id),
                identity.audience.clone(),
            ),
        ];
        let who = format!(
            "{} (sub {}, aud {})",
            principal.name, identity.subject, identity.audience
        );
        let max = self
            .check_trust(
                &principal,
                source_ip,
                "sts:AssumeRoleWithWebIdentity",
                &account,
                &role,
                &extra,
                &who,
            )
            .await?;
        let duration = Self::session_duration(duration_secs, max)?;
        self.start_session(&account, &role, session_name, duration, Some(identity))
            .await
    }

    /// `AssumeRole` by a signed-in caller: the role's trust policy (and, as IAM's
    /// evaluation logic says, the caller's identity policies) must allow `sts:AssumeRole`.
    ///
    /// Errors (STS codes): `AccessDenied`, `ValidationError`.
    pub async fn assume_role_as(
        &self,
        caller: &Caller,
        role_arn: &str,
        session_name: &str,
        duration_secs: Option<u64>,
    ) -> Result<AssumedRole, StsError> {
        let (account, role) = Self::parse_role_arn(role_arn)?;
        let who = caller.principal.arn();
        let max = self
            .check_trust(
                &caller.principal,
                caller.source_ip,
                "sts:AssumeRole",
                &account,
                &role,
                &[],
                &who,
            )
            .await?;
        let duration = Self::session_duration(duration_secs, max)?;
        self.start_session(&account, &role, session_name, duration, None)
            .await
    }

    /// `GetCallerIdentity`: (`Account`, `UserId`, `Arn`) of the caller. Needs no
    /// permission (STS API Reference).
    pub fn caller_identity(&self, caller: &Caller) -> (String, String, String) {
        let p = &caller.principal;
        (p.account.to_string(), p.user_id.clone(), p.arn())
    }
}
