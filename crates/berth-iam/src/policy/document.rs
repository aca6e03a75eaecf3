//! Policy grammar: JSON text to a validated, compiled [`PolicyDocument`].
//!
//! Source: IAM User Guide, "IAM JSON policy elements reference" and "Grammar of the IAM
//! JSON policy language". Element names are case-sensitive, as in IAM; unknown elements are
//! rejected rather than ignored, so a typo (`"Actions"`) cannot silently widen or narrow a
//! policy.

use serde_json::{Map, Value};

use super::condition::{self, Condition};
use super::context::RequestContext;
use super::pattern::{ArnPattern, Pattern, Syntax};
use super::principals::{self, PrincipalSpec, Strength};
use super::{PolicyError, PolicyKind};
use crate::principal::Principal;

/// The policy language version (`Version` element).
///
/// Source: IAM User Guide, "IAM JSON policy elements: Version". Policy variables exist
/// only in `2012-10-17`; under `2008-10-17` or without `Version`, `${aws:username}` is
/// literal text.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Version {
    /// `"2012-10-17"`, the current language.
    V2012_10_17,
    /// `"2008-10-17"`, the original language (no policy variables).
    V2008_10_17,
}

impl Version {
    /// The version string as written in policies.
    pub fn as_str(self) -> &'static str {
        match self {
            Version::V2012_10_17 => "2012-10-17",
            Version::V2008_10_17 => "2008-10-17",
        }
    }
}

/// Whether a statement allows or denies (`Effect` element).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Effect {
    /// `"Allow"`.
    Allow,
    /// `"Deny"`: an explicit deny, which overrides every allow.
    Deny,
}

/// A parsed and validated IAM policy document: `Version`, `Id` and its statements, with
/// every pattern and condition value compiled for [`evaluate`](super::evaluate).
///
/// Build one with [`PolicyDocument::parse`]; it is immutable afterwards and cheap to share
/// (`Clone + Send + Sync`). Keep the original JSON text if you need to return it verbatim
/// (as `GetRepositoryPolicy` does): the document does not re-serialise.
#[derive(Debug, Clone, PartialEq)]
pub struct PolicyDocument {
    kind: PolicyKind,
    version: Option<Version>,
    id: Option<String>,
    statements: Vec<Statement>,
}

/// One statement of a policy, compiled.
#[derive(Debug, Clone, PartialEq)]
pub struct Statement {
    index: usize,
    sid: Option<String>,
    effect: Effect,
    principal: Option<PrincipalSpec>,
    actions: Vec<Pattern>,
    not_action: bool,
    /// `None`: no `Resource`/`NotResource` (resource policies only): the attached resource.
    resources: Option<Vec<ArnPattern>>,
    not_resource: bool,
    conditions: Vec<Condition>,
}

const ACTION_SYNTAX: Syntax = Syntax {
    wildcards: true,
    variables: false,
    ignore_ascii_case: true,
};

impl PolicyDocument {
    /// Parses and validates a policy of the given kind.
    ///
    /// Checks, with the IAM rule each one comes from:
    /// * the text is a JSON object with only `Version`, `Id`, `Statement`;
    /// * `Version`, when present, is `"2012-10-17"` or `"2008-10-17"`;
    /// * `Statement` is one statement object or a non-empty list of them; `Sid`s are
    ///   unique in identity policies (ECR accepts repeated `Sid`s in its resource
    ///   policies, so those may repeat);
    /// * each statement has `Effect` `"Allow"`/`"Deny"`, exactly one of `Action`/
    ///   `NotAction` (each `"*"` or `service:name` with `*`/`?` wildcards), at most one of
    ///   `Resource`/`NotResource` (each `"*"` or a six-part ARN) and, for identity policies,
    ///   at least one; for resource policies exactly one of `Principal`/`NotPrincipal`, for
    ///   identity policies neither;
    /// * principals are `"*"` or `{"AWS"|"Service"|"Federated": value or list}` with AWS
    ///   values an account ID or a root/user/role/assumed-role ARN, without partial
    ///   wildcards;
    /// * `Condition` uses known operators (optionally `ForAnyValue:`/`ForAllValues:` and
    ///   `…IfExists`) and values of the operator's type.
    ///
    /// Errors name the statement and element; see [`PolicyError`].
    pub fn parse(json: &str, kind: PolicyKind) -> Result<PolicyDocument, PolicyError> {
        let value: Value = serde_json::from_str(json)
            .map_err(|e| PolicyError::new(format!("policy is not valid JSON: {e}")))?;
        let Value::Object(top) = value else {
            return Err(PolicyError::new("policy must be a JSON object"));
        };
        for key in top.keys() {
            if !matches!(key.as_str(), "Version" | "Id" | "Statement") {
                return Err(PolicyError::new(format!(
                    "unknown top-level element \"{key}\" (expected Version, Id and Statement)"
                )));
            }
        }
        let version = match top.get("Version") {
            None => None,
            Some(Value::String(s)) if s == "2012-10-17" => Some(Version::V2012_10_17),
            Some(Value::String(s)) if s == "2008-10-17" => Some(Version::V2008_10_17),
            Some(other) => {
                return Err(PolicyError::new(format!(
                    "Version must be \"2012-10-17\" or \"2008-10-17\", got {other}"
                )))
            }
        };
        let id = match top.get("Id") {
            None => None,
            Some(Value::String(s)) => Some(s.clone()),
            Some(_) => return Err(PolicyError::new("Id must be a string")),
        };
        let raw: Vec<&Value> = match top.get("Statement") {
            None => return Err(PolicyError::new("Statement is required")),
            Some(obj @ Value::Object(_)) => vec![obj],
            Some(Value::Array(items)) if items.is_empty() => {
                return Err(PolicyError::new(
                    "Statement must contain at least one statement",
                ))
            }
            Some(Value::Array(items)) => items.iter().collect(),
            Some(_) => {
                return Err(PolicyError::new(
                    "Statement must be an object or a list of objects",
                ))
            }
        };
        let variables = version == Some(Version::V2012_10_17);
        let mut statements = Vec::with_capacity(raw.len());
        for (index, v) in raw.into_iter().enumerate() {
            let Value::Object(obj) = v else {
                return Err(PolicyError::new(format!(
                    "Statement[{index}] must be an object"
                )));
            };
            let st = Statement::parse(index, obj, kind, variables)?;
            // IAM refuses duplicate Sids in identity policies; ECR accepts them in
            // repository and registry policies (issue 17), so resource policies may
            // repeat one.
            if let (Some(sid), PolicyKind::Identity) = (&st.sid, kind) {
                if let Some(prev) = statements
                    .iter()
                    .find(|p: &&Statement| p.sid.as_deref() == Some(sid))
                {
                    return Err(st.error(format!(
                        "Sid \"{sid}\" is already used by Statement[{}]; Sids must be unique \
                         within a policy",
                        prev.index
                    )));
                }
            }
            statements.push(st);
        }
        Ok(PolicyDocument {
            kind,
            version,
            id,
            statements,
        })
    }

    /// The statements, in document order.
    pub fn statements(&self) -> &[Statement] {
        &self.statements
    }

    /// The kind the document was parsed as.
    pub fn kind(&self) -> PolicyKind {
        self.kind
    }

    /// The `Version` element, if present.
    pub fn version(&self) -> Option<Version> {
        self.version
    }

    /// The `Id` element, if present.
    pub fn id(&self) -> Option<&str> {
        self.id.as_deref()
    }
}

/// `Statement[i] (Sid "x")` or `Statement[i]`.
fn locate(index: usize, sid: Option<&str>) -> String {
    match sid {
        Some(sid) => format!("Statement[{index}] (Sid \"{sid}\")"),
        None => format!("Statement[{index}]"),
    }
}

fn string_list<'v>(v: &'v Value, field: &str) -> Result<Vec<&'v str>, String> {
    let list: Option<Vec<&str>> = match v {
        Value::String(s) => Some(vec![s.as_str()]),
        Value::Array(items) => items.iter().map(Value::as_str).collect(),
        _ => None,
    };
    match list {
        None => Err(format!("{field} must be a string or a list of strings")),
        Some(l) if l.is_empty() => Err(format!("{field} must not be an empty list")),
        Some(l) => Ok(l),
    }
}

/// `*`, or `service:name` where the service prefix is letters, digits and `-`, and the name
/// is letters and digits with `*`/`?` wildcards (IAM User Guide, "IAM JSON policy elements:
/// Action").
fn valid_action(a: &str) -> bool {
    if a == "*" {
        return true;
    }
    let Some((service, name)) = a.split_once(':') else {
        return false;
    };
    !service.is_empty()
        && service
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-')
        && !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'*' || b == b'?')
}

/// Exactly one of two mutually exclusive elements, or neither.
fn one_of<'m>(
    obj: &'m Map<String, Value>,
    a: &'static str,
    b: &'static str,
) -> Result<Option<(&'static str, &'m Value)>, String> {
    match (obj.get(a), obj.get(b)) {
        (Some(_), Some(_)) => Err(format!("{a} and {b} cannot both be present")),
        (Some(v), None) => Ok(Some((a, v))),
        (None, Some(v)) => Ok(Some((b, v))),
        (None, None) => Ok(None),
    }
}

impl Statement {
    fn parse(
        index: usize,
        obj: &Map<String, Value>,
        kind: PolicyKind,
        variables: bool,
    ) -> Result<Statement, PolicyError> {
        let sid = match obj.get("Sid") {
            None => None,
            Some(Value::String(s)) => Some(s.clone()),
            Some(_) => {
                return Err(PolicyError::new(format!(
                    "{}: Sid must be a string",
                    locate(index, None)
                )))
            }
        };
        let err =
            |msg: String| PolicyError::new(format!("{}: {msg}", locate(index, sid.as_deref())));

        for key in obj.keys() {
            if !matches!(
                key.as_str(),
                "Sid"
                    | "Effect"
                    | "Principal"
                    | "NotPrincipal"
                    | "Action"
                    | "NotAction"
                    | "Resource"
                    | "NotResource"
                    | "Condition"
            ) {
                return Err(err(format!("unknown element \"{key}\"")));
            }
        }

        let effect = match obj.get("Effect") {
            None => return Err(err("Effect is required".into())),
            Some(Value::String(s)) if s == "Allow" => Effect::Allow,
            Some(Value::String(s)) if s == "Deny" => Effect::Deny,
            Some(Value::String(s)) => {
                return Err(err(format!(
                    "Effect must be \"Allow\" or \"Deny\", got \"{s}\""
                )))
            }
            Some(other) => {
                return Err(err(format!(
                    "Effect must be \"Allow\" or \"Deny\", got {other}"
                )))
            }
        };

        let principal = match (one_of(obj, "Principal", "NotPrincipal").map_err(err)?, kind) {
            (Some((field, _)), PolicyKind::Identity) => {
                return Err(err(format!(
                    "{field} is not allowed in an identity-based policy; the principal is \
                     the identity the policy is attached to"
                )))
            }
            (None, PolicyKind::Resource) => {
                return Err(err(
                    "Principal or NotPrincipal is required in a resource-based policy".into(),
                ))
            }
            (None, PolicyKind::Identity) => None,
            (Some((field, v)), PolicyKind::Resource) => {
                let entries = principals::parse(v, field).map_err(err)?;
                Some(if field == "Principal" {
                    PrincipalSpec::Principal(entries)
                } else {
                    PrincipalSpec::NotPrincipal(entries)
                })
            }
        };

        let Some((action_field, action_value)) = one_of(obj, "Action", "NotAction").map_err(err)?
        else {
            return Err(err("Action or NotAction is required".into()));
        };
        let mut actions = Vec::new();
        for a in string_list(action_value, action_field).map_err(err)? {
            if !valid_action(a) {
                return Err(err(format!(
                    "{action_field} \"{a}\" must be \"*\" or \"<service>:<action>\", \
                     such as \"ecr:BatchGetImage\" or \"ecr:*\""
                )));
            }
            actions.push(Pattern::compile(a, ACTION_SYNTAX));
        }

        let (resources, not_resource) = match one_of(obj, "Resource", "NotResource").map_err(err)? {
            None if kind == PolicyKind::Identity => {
                return Err(err(
                    "Resource or NotResource is required in an identity-based policy".into(),
                ))
            }
            None => (None, false),
            Some((field, v)) => {
                let mut pats = Vec::new();
                for r in string_list(v, field).map_err(err)? {
                    pats.push(
                        ArnPattern::compile(r, variables)
                            .map_err(|e| err(format!("{field} {e}")))?,
                    );
                }
                (Some(pats), field == "NotResource")
            }
        };

        let conditions = match obj.get("Condition") {
            None => Vec::new(),
            Some(v) => condition::parse(v, variables).map_err(err)?,
        };

        Ok(Statement {
            index,
            sid,
            effect,
            principal,
            not_action: action_field == "NotAction",
            actions,
            resources,
            not_resource,
            conditions,
        })
    }

    fn error(&self, msg: String) -> PolicyError {
        PolicyError::new(format!(
            "{}: {msg}",
            locate(self.index, self.sid.as_deref())
        ))
    }

    /// Position in the document's `Statement` list (0 for a lone statement object).
    pub fn index(&self) -> usize {
        self.index
    }

    /// The `Sid`, if any.
    pub fn sid(&self) -> Option<&str> {
        self.sid.as_deref()
    }

    /// `Allow` or `Deny`.
    pub fn effect(&self) -> Effect {
        self.effect
    }

    /// How this statement's `Principal`/`NotPrincipal` names `p`; identity statements,
    /// having none, name their own identity directly.
    pub(crate) fn principal_strength(&self, p: &Principal) -> Strength {
        match &self.principal {
            None => Strength::Direct,
            Some(spec) => spec.strength(p),
        }
    }

    /// `Action`/`NotAction` against the request's action (ASCII case-insensitive).
    pub(crate) fn action_matches(&self, ctx: &RequestContext<'_>) -> bool {
        let hit = self
            .actions
            .iter()
            .any(|p| p.matches(ctx.action, ctx) == Some(true));
        hit != self.not_action
    }

    /// `Resource`/`NotResource` against the request's resource. An entry whose variable
    /// cannot be resolved matches nothing under `Resource`, and makes a `NotResource`
    /// statement not apply ("causes the statement to be invalid").
    pub(crate) fn resource_matches(&self, ctx: &RequestContext<'_>) -> bool {
        let Some(patterns) = &self.resources else {
            return true;
        };
        if patterns.iter().any(|p| matches!(p, ArnPattern::Any)) {
            return !self.not_resource;
        }
        let mut hit = false;
        for p in patterns {
            match p.matches(ctx.resource, ctx) {
                Some(true) => {
                    hit = true;
                    break;
                }
                Some(false) => {}
                None if self.not_resource => return false,
                None => {}
            }
        }
        hit != self.not_resource
    }

    /// All conditions hold (AND).
    pub(crate) fn conditions_hold(&self, ctx: &RequestContext<'_>) -> bool {
        self.conditions.iter().all(|c| c.holds(ctx))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn assert_send_sync<T: Send + Sync + Clone + std::fmt::Debug>() {}

    #[test]
    fn document_is_send_sync() {
        assert_send_sync::<PolicyDocument>();
    }

    #[test]
    fn actions() {
        for ok in [
            "*",
            "ecr:*",
            "ecr:Batch*",
            "ecr:Get?ownloadUrlForLayer",
            "s3:Get*Acl",
        ] {
            assert!(valid_action(ok), "{ok}");
        }
        for bad in ["ecr", ":x", "ecr:", "ecr:Get Image", "*:*x", "ecr:a/b"] {
            assert!(!valid_action(bad), "{bad}");
        }
    }

    #[test]
    fn lone_statement_object_is_index_zero() {
        let d = PolicyDocument::parse(
            r#"{"Statement":{"Sid":"A","Effect":"Allow","Action":"ecr:*","Resource":"*"}}"#,
            PolicyKind::Identity,
        )
        .unwrap();
        assert_eq!(d.statements().len(), 1);
        assert_eq!(d.statements()[0].index(), 0);
        assert_eq!(d.statements()[0].sid(), Some("A"));
        assert_eq!(d.version(), None);
    }
}
