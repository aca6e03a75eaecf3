//! Combining identity and resource policies into a decision.
//!
//! Sources: IAM User Guide, "Policy evaluation logic" (single account), "Cross-account
//! policy evaluation logic", "The difference between explicit and implicit denies",
//! "AWS JSON policy elements: Principal" (account principals) and "Troubleshooting access
//! denied error messages" (wording).
//!
//! The algorithm:
//!
//! 1. A statement *applies* when its action, resource (if any) and conditions match, and —
//!    in a resource policy — its `Principal`/`NotPrincipal` names the caller.
//! 2. Any applicable `Deny`, in either kind of policy: **explicit deny**.
//! 3. Service principals and anonymous callers have no identity policies: only a resource
//!    policy can allow them. Identity `Deny`s still count if a caller passes any.
//! 4. IAM users and role sessions in the resource's account: allowed if an identity policy
//!    **or** a resource policy allows. But a resource statement that names the caller only
//!    by account (`"123456789012"` / `arn:aws:iam::123456789012:root`) "delegates
//!    authority to the account" (Principal reference, "AWS account principals"): it
//!    grants nothing on its own, the identity policy must still allow. Only a statement that
//!    names the user, role or session ARN, `"*"`, or the caller by `NotPrincipal` exclusion
//!    allows by itself ("Policy evaluation logic", "Resource-based policies": permissions
//!    granted to a user, role or role-session ARN are not limited by an implicit deny in an
//!    identity-based policy).
//! 5. Other accounts: a resource policy must allow (naming the account suffices) **and** an
//!    identity policy must allow ("Cross-account policy evaluation logic").
//! 6. Otherwise: **implicit deny**, with which side was missing.

use super::document::{Effect, PolicyDocument, Statement};
use super::principals::Strength;
use super::{PolicyKind, RequestContext};
use crate::principal::{AccountId, PrincipalKind};

/// A policy together with the name it is reported under in decisions, e.g.
/// `"identity policy AdminAccess"` or `"repository policy"`.
#[derive(Debug, Clone, Copy)]
pub struct NamedPolicy<'a> {
    /// The name reported in [`DecisionReason`].
    pub name: &'a str,
    /// The parsed policy.
    pub document: &'a PolicyDocument,
}

/// The outcome of [`evaluate`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decision {
    /// Whether the request may proceed.
    pub allowed: bool,
    /// Why; for the audit trail and the error message.
    pub reason: DecisionReason,
    /// For an explicit deny, which kind of policy held the `Deny` statement (selects the
    /// wording of [`Decision::denial_message`]); `None` otherwise.
    pub denied_by: Option<PolicyKind>,
}

/// Why a request was allowed or denied.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DecisionReason {
    /// A `Deny` statement applied. Identity policies are checked first, so when both kinds
    /// deny, the identity policy is reported (AWS also names only one).
    ExplicitDeny {
        /// The [`NamedPolicy::name`] of the policy that denied.
        policy: String,
        /// The denying statement's `Sid`, if it has one.
        sid: Option<String>,
    },
    /// The request is allowed. Names the statement that allowed it: in the same account the
    /// first allowing identity statement, else the first resource statement allowing by
    /// itself; across accounts the resource statement that let the account in.
    Allowed {
        /// The [`NamedPolicy::name`] of the allowing policy.
        policy: String,
        /// The allowing statement's `Sid`, if it has one.
        sid: Option<String>,
    },
    /// Nothing denied, but nothing (sufficient) allowed either.
    ImplicitDeny {
        /// Which kind of policy was missing an allow.
        missing: Missing,
    },
}

/// Which kind of policy failed to allow an implicitly denied request; selects the
/// `because no … policy allows …` suffix of the AWS message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Missing {
    /// The resource side allowed (or was not needed) but no identity policy did.
    NoIdentityPolicy,
    /// The identity side allowed (or cannot exist, for service and anonymous callers) but
    /// no resource policy did.
    NoResourcePolicy,
    /// Neither kind allowed.
    Neither,
}

type Hit<'p> = (&'p str, Option<&'p str>);

/// Decides whether `ctx` is allowed, given the caller's identity policies and the
/// resource's policies (repository policy, registry policy), for a resource owned by
/// `resource_account`. Identity documents should be [`PolicyKind::Identity`] and resource
/// documents [`PolicyKind::Resource`]; see the module documentation for the rules and
/// their sources.
pub fn evaluate(
    ctx: &RequestContext<'_>,
    identity: &[NamedPolicy<'_>],
    resource: &[NamedPolicy<'_>],
    resource_account: &AccountId,
) -> Decision {
    let principal = ctx.principal;
    let is_iam = matches!(
        principal.kind,
        PrincipalKind::User | PrincipalKind::AssumedRole { .. }
    );

    // Identity policies: look for a Deny everywhere, remember the first Allow.
    let mut identity_allow: Option<Hit<'_>> = None;
    for policy in identity {
        for st in policy.document.statements() {
            let want_allow = is_iam && identity_allow.is_none();
            if st.effect() == Effect::Allow && !want_allow {
                continue;
            }
            // Identity statements have no Principal (strength Direct); a resource-kind
            // document passed here by mistake still only applies to whom it names.
            if st.principal_strength(principal) == Strength::No {
                continue;
            }
            if applies(st, ctx) {
                match st.effect() {
                    Effect::Deny => return deny(policy, st, PolicyKind::Identity),
                    Effect::Allow => identity_allow = Some((policy.name, st.sid())),
                }
            }
        }
    }

    // Resource policies: same, separating allows by how they name the caller.
    let mut direct_allow: Option<Hit<'_>> = None;
    let mut account_allow: Option<Hit<'_>> = None;
    for policy in resource {
        for st in policy.document.statements() {
            let strength = st.principal_strength(principal);
            if strength == Strength::No {
                continue;
            }
            if st.effect() == Effect::Allow {
                let slot = if strength == Strength::Direct {
                    &direct_allow
                } else {
                    &account_allow
                };
                if slot.is_some() {
                    continue;
                }
            }
            if applies(st, ctx) {
                let hit = Some((policy.name, st.sid()));
                match (st.effect(), strength) {
                    (Effect::Deny, _) => return deny(policy, st, PolicyKind::Resource),
                    (Effect::Allow, Strength::Direct) => direct_allow = hit,
                    (Effect::Allow, _) => account_allow = hit,
                }
            }
        }
    }

    let allowed = |(policy, sid): Hit<'_>| Decision {
        allowed: true,
        reason: DecisionReason::Allowed {
            policy: policy.to_string(),
            sid: sid.map(str::to_string),
        },
        denied_by: None,
    };
    let implicit = |missing| Decision {
        allowed: false,
        reason: DecisionReason::ImplicitDeny { missing },
        denied_by: None,
    };

    if !is_iam {
        return match direct_allow {
            Some(hit) => allowed(hit),
            None => implicit(Missing::NoResourcePolicy),
        };
    }
    if principal.account == *resource_account {
        match (identity_allow, direct_allow) {
            (Some(hit), _) | (None, Some(hit)) => allowed(hit),
            (None, None) if account_allow.is_some() => implicit(Missing::NoIdentityPolicy),
            (None, None) => implicit(Missing::Neither),
        }
    } else {
        match (identity_allow, direct_allow.or(account_allow)) {
            (Some(_), Some(res)) => allowed(res),
            (Some(_), None) => implicit(Missing::NoResourcePolicy),
            (None, Some(_)) => implicit(Missing::NoIdentityPolicy),
            (None, None) => implicit(Missing::Neither),
        }
    }
}

fn applies(st: &Statement, ctx: &RequestContext<'_>) -> bool {
    st.action_matches(ctx) && st.resource_matches(ctx) && st.conditions_hold(ctx)
}

fn deny(policy: &NamedPolicy<'_>, st: &Statement, kind: PolicyKind) -> Decision {
    Decision {
        allowed: false,
        reason: DecisionReason::ExplicitDeny {
            policy: policy.name.to_string(),
            sid: st.sid().map(str::to_string),
        },
        denied_by: Some(kind),
    }
}

impl Decision {
    /// AWS's access-denied message for a denied request, `None` when allowed:
    ///
    /// `User: <principal arn> is not authorized to perform: <action> on resource:
    /// <resource>` followed by ` with an explicit deny in a resource-based policy`,
    /// ` with an explicit deny in an identity-based policy`,
    /// ` because no resource-based policy allows the <action> action` or
    /// ` because no identity-based policy allows the <action> action`.
    ///
    /// Source: IAM User Guide, "Troubleshooting access denied error messages" ("If multiple
    /// policy types deny an authorization request, AWS includes only one of those policy
    /// types"). For [`Missing::Neither`] we name the resource-based policy when the
    /// principal's ARN and the resource ARN are in different accounts (the owner's policy
    /// is what a cross-account caller lacks first, as ECR reports it) and the
    /// identity-based policy otherwise.
    pub fn denial_message(
        &self,
        principal_arn: &str,
        action: &str,
        resource: &str,
    ) -> Option<String> {
        let suffix = match &self.reason {
            DecisionReason::Allowed { .. } => return None,
            DecisionReason::ExplicitDeny { .. } if self.denied_by == Some(PolicyKind::Resource) => {
                " with an explicit deny in a resource-based policy".to_string()
            }
            DecisionReason::ExplicitDeny { .. } => {
                " with an explicit deny in an identity-based policy".to_string()
            }
            DecisionReason::ImplicitDeny { missing } => {
                let kind = match missing {
                    Missing::NoIdentityPolicy => "identity-based",
                    Missing::NoResourcePolicy => "resource-based",
                    Missing::Neither if cross_account(principal_arn, resource) => "resource-based",
                    Missing::Neither => "identity-based",
                };
                format!(" because no {kind} policy allows the {action} action")
            }
        };
        Some(format!(
            "User: {principal_arn} is not authorized to perform: {action} on resource: \
             {resource}{suffix}"
        ))
    }
}

/// Whether two ARNs name different accounts (fifth segment); `false` if either has none.
fn cross_account(a: &str, b: &str) -> bool {
    let account = |arn: &str| {
        arn.split(':')
            .nth(4)
            .filter(|s| !s.is_empty())
            .map(str::to_string)
    };
    matches!((account(a), account(b)), (Some(x), Some(y)) if x != y)
}
