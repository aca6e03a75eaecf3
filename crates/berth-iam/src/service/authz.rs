//! Authorisation: evaluating policies for a caller, action and resource, deciding, and
//! recording the decision in the audit trail; and the policy simulator.

use super::*;

impl Iam {
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
        let (mut allowed, mut reason, mut message) =
            self.decide(caller, &principal, action, resource);
        // A policy written by another node or `berth admin` a moment ago (a key created,
        // then its policy attached) must not be refused for up to a reload interval:
        // before denying a signed-in caller, reread the identity tables if their
        // generation moved, and decide again. One indexed single-row read per denial;
        // anonymous callers (every Go client's first request) do not trigger it.
        if !allowed && !caller.is_anonymous() && self.refresh().await {
            (allowed, reason, message) = self.decide(caller, &principal, action, resource);
        }
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
    pub(super) fn evaluate(
        &self,
        caller: &Caller,
        action: &str,
        resource: &str,
    ) -> Option<policy::Decision> {
        let p = &caller.principal;
        if p.kind == PrincipalKind::Anonymous && self.inner.cfg.allow_anonymous {
            return None;
        }
        if p.kind == PrincipalKind::Service
            && action.eq_ignore_ascii_case(EcrAction::GetAuthorizationToken.as_str())
        {
            // A service principal has no identity policies, the only ones that can grant
            // ecr:GetAuthorizationToken, yet it authenticates with its own access key. The
            // token carries no rights of its own (each request made with it is judged by
            // the repository and registry policies naming the service, as the key is), so
            // a service may always get one for itself (issue 17).
            return Some(policy::Decision {
                allowed: true,
                reason: policy::DecisionReason::Allowed {
                    policy: "the service principal rule (a token for itself)".into(),
                    sid: None,
                },
                denied_by: None,
            });
        }
        let snap = self.snapshot();
        let identity = snap.identity_policies_of(p);
        let mut resource_policies: Vec<NamedPolicy<'_>> = Vec::with_capacity(2);
        // Repository and registry policies are ECR's resource policies: they govern
        // `ecr:*` actions only (EventBridge resources have none in Berth).
        let ecr_action = action.len() > 4 && action[..4].eq_ignore_ascii_case("ecr:");
        if ecr_action && !action.eq_ignore_ascii_case(EcrAction::GetAuthorizationToken.as_str()) {
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
    pub(super) fn reason(d: Option<&policy::Decision>) -> String {
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
    pub(super) fn decide(
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
}
