//! IAM JSON policy documents: grammar, validation and evaluation.
//!
//! This module is IAM's policy language, done the way the IAM User Guide describes it, for
//! the two kinds of policy Berth stores: *identity-based* policies attached to users and
//! roles, and *resource-based* policies (repository and registry policies). It is pure: no
//! I/O, no clocks except through [`RequestContext`], no async, nothing about HTTP.
//!
//! # Shape
//!
//! * [`PolicyDocument::parse`] turns JSON text into a validated document, or a
//!   [`PolicyError`] that names the statement (index and `Sid`) and the element at fault.
//!   Everything that can be decided without a request is decided here, once: actions,
//!   resources and condition values are compiled into matchers (wildcards split into
//!   tokens, fast paths for `*`, exact and `prefix*` patterns; numbers, dates, CIDR blocks
//!   and booleans parsed), condition keys lowercased, principals parsed into their kinds.
//! * [`RequestContext`] is built by the caller per request: principal, action, resource and
//!   the global condition keys (`aws:PrincipalArn`, `aws:SourceIp`, `aws:CurrentTime`, …).
//!   Building it allocates nothing; keys are computed from the principal when a condition
//!   asks for them.
//! * [`evaluate`] combines identity and resource policies into a [`Decision`] following
//!   IAM's evaluation logic (explicit deny wins; same account: either policy type may
//!   allow; cross account: both must), and [`Decision::denial_message`] renders AWS's
//!   wording for the error.
//!
//! # Why compile at parse time
//!
//! A manifest GET costs ~30 µs end to end; authorisation runs on every one of them. Policies
//! change rarely and are parsed once when stored or loaded, so everything costly (string
//! splitting, lowercasing, number/date/CIDR parsing) moves to [`PolicyDocument::parse`], and
//! [`evaluate`] only walks pre-built matchers. Evaluation allocates only when a policy uses a
//! variable or compares a non-string context value as a string, plus the names in the
//! returned [`Decision`]. `benches/policy.rs` measures it.
//!
//! # Sources
//!
//! IAM User Guide: "IAM JSON policy elements reference" (Version, Id, Statement, Sid,
//! Effect, Principal, NotPrincipal, Action, NotAction, Resource, NotResource, Condition),
//! "Condition operators", "Conditions with multiple context keys or values", "Single-valued
//! vs. multivalued context keys", "Policy variables", "Policy evaluation logic",
//! "Cross-account policy evaluation logic" and "Troubleshooting access denied error
//! messages". Where IAM's documentation leaves a choice, the choice is written next to the
//! code that makes it.
//!
//! # Not covered
//!
//! Permissions boundaries, SCPs/RCPs, session policies and the account root user: Berth has
//! none of them. `Federated` principals match only the web-identity callers of a role's trust policy
//! (`sts:AssumeRoleWithWebIdentity`, see `crate::federation`).

mod condition;
mod context;
mod document;
mod eval;
mod pattern;
mod principals;

pub use context::RequestContext;
pub use document::{Effect, PolicyDocument, Statement, Version};
pub use eval::{evaluate, Decision, DecisionReason, Missing, NamedPolicy};

use std::fmt;

/// Which kind of policy a document is; decides whether `Principal` is required or forbidden.
///
/// Source: IAM User Guide, "AWS JSON policy elements: Principal" — "You must use the
/// `Principal` element in resource-based policies" and "You cannot use the `Principal`
/// element in an identity-based policy".
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PolicyKind {
    /// Attached to a user or role. Statements must not have `Principal`/`NotPrincipal` and
    /// must have `Resource` or `NotResource`.
    Identity,
    /// Attached to a resource (a repository or registry policy). Every statement must have
    /// `Principal` or `NotPrincipal`; `Resource` may be omitted, meaning the resource the
    /// policy is attached to.
    Resource,
}

impl fmt::Display for PolicyKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            PolicyKind::Identity => "identity",
            PolicyKind::Resource => "resource",
        })
    }
}

/// Why a policy document was rejected by [`PolicyDocument::parse`].
///
/// The message is meant for the API caller as is (ECR returns it inside
/// `InvalidParameterException`). Statement-level problems name the statement by its index
/// in `Statement` and its `Sid` when it has one, then the element, for example
/// `Statement[1] (Sid "AllowPull"): Effect must be "Allow" or "Deny", got "Permit"`.
/// Invalid JSON gives `policy is not valid JSON: <serde_json's message>`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PolicyError(String);

impl PolicyError {
    /// The human-readable message (same text as `Display`).
    pub fn message(&self) -> &str {
        &self.0
    }

    pub(crate) fn new(message: impl Into<String>) -> PolicyError {
        PolicyError(message.into())
    }
}

impl fmt::Display for PolicyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for PolicyError {}
