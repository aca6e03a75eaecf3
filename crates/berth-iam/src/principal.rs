//! Principals: who a request is made by, in IAM's terms.
//!
//! Source: IAM User Guide, "AWS JSON policy elements: Principal" and "IAM identifiers"
//! (ARN forms `arn:aws:iam::<account>:user/<name>`, `arn:aws:iam::<account>:role/<name>`,
//! `arn:aws:sts::<account>:assumed-role/<role>/<session>`, `arn:aws:iam::<account>:root`).

use std::collections::BTreeMap;
use std::fmt;

/// A 12-digit AWS-style account ID, which is also the registry ID (`registryId`) of the
/// account's registry. Invariant: exactly 12 ASCII digits.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct AccountId(String);

impl AccountId {
    /// Parses a 12-digit account ID; errors with a message naming the rule.
    pub fn parse(s: &str) -> Result<AccountId, String> {
        if s.len() == 12 && s.bytes().all(|b| b.is_ascii_digit()) {
            Ok(AccountId(s.to_string()))
        } else {
            Err(format!("account ID '{s}' must be exactly 12 digits"))
        }
    }

    /// The ID as a string of 12 digits.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for AccountId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// What kind of principal made a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PrincipalKind {
    /// An IAM user `arn:aws:iam::<account>:user/<name>`.
    User,
    /// A session of an assumed role: `arn:aws:sts::<account>:assumed-role/<role>/<session>`.
    /// Policies that name the role's ARN (`arn:aws:iam::<account>:role/<role>`) match it.
    AssumedRole {
        /// The session name given when the role was assumed.
        session: String,
    },
    /// A service principal such as `ecs-tasks.amazonaws.com`, matched by policies with
    /// `"Principal": {"Service": …}`. `Principal::name` holds the service name.
    Service,
    /// An unauthenticated caller. Matches only `"Principal": "*"` (or `{"AWS": "*"}`).
    Anonymous,
    /// The bearer of a verified OIDC token asking to assume a role
    /// (`sts:AssumeRoleWithWebIdentity`; IAM User Guide, "Creating a role for web identity
    /// or OpenID Connect federation"). `Principal::name` holds the identity provider's ARN
    /// (`arn:aws:iam::<account>:oidc-provider/<issuer without https://>`), matched by trust
    /// policies with `"Principal": {"Federated": "<that ARN>"}`; `Principal::user_id` holds the
    /// token's `sub`. Such a principal only ever appears while a trust policy is evaluated:
    /// it makes no other request.
    WebIdentity,
}

/// An authenticated (or anonymous) caller.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    /// The account the principal belongs to (for a service principal: the account that
    /// issued its credentials; for anonymous: the registry's own account).
    pub account: AccountId,
    /// The kind of principal.
    pub kind: PrincipalKind,
    /// User name, role name (for assumed roles), or service name; empty for anonymous.
    pub name: String,
    /// A stable unique ID (`aws:userid`), e.g. the user's ID or `<role id>:<session>`.
    pub user_id: String,
    /// Principal tags (`aws:PrincipalTag/<key>`).
    pub tags: BTreeMap<String, String>,
}

impl Principal {
    /// The principal's ARN as IAM prints it in denials, e.g.
    /// `arn:aws:iam::111111111111:user/alice`. Service principals print their service
    /// name; anonymous callers print `anonymous`.
    pub fn arn(&self) -> String {
        match &self.kind {
            PrincipalKind::User => format!("arn:aws:iam::{}:user/{}", self.account, self.name),
            PrincipalKind::AssumedRole { session } => format!(
                "arn:aws:sts::{}:assumed-role/{}/{}",
                self.account, self.name, session
            ),
            PrincipalKind::Service => self.name.clone(),
            PrincipalKind::Anonymous => "anonymous".to_string(),
            PrincipalKind::WebIdentity => format!("{}:sub/{}", self.name, self.user_id),
        }
    }

    /// For an assumed-role session, the role's ARN `arn:aws:iam::<account>:role/<name>`.
    pub fn role_arn(&self) -> Option<String> {
        match &self.kind {
            PrincipalKind::AssumedRole { .. } => {
                Some(format!("arn:aws:iam::{}:role/{}", self.account, self.name))
            }
            _ => None,
        }
    }

    /// The account root ARN `arn:aws:iam::<account>:root`.
    pub fn account_root_arn(&self) -> String {
        format!("arn:aws:iam::{}:root", self.account)
    }

    /// The value of `aws:PrincipalType`: `User`, `AssumedRole`, `Anonymous`, or
    /// `WebIdentityUser`, `AWSService`... as the IAM condition-key reference lists them.
    pub fn principal_type(&self) -> &'static str {
        match self.kind {
            PrincipalKind::User => "User",
            PrincipalKind::AssumedRole { .. } => "AssumedRole",
            PrincipalKind::Service => "Service",
            PrincipalKind::Anonymous => "Anonymous",
            PrincipalKind::WebIdentity => "WebIdentityUser",
        }
    }
}
