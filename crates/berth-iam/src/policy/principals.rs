//! The `Principal` / `NotPrincipal` elements: grammar and matching.
//!
//! Sources: IAM User Guide, "AWS JSON policy elements: Principal" and "…: NotPrincipal".

use serde_json::Value;

use crate::principal::{AccountId, Principal, PrincipalKind};

/// One entry of a `Principal` element, parsed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Entry {
    /// `"*"` or `{"AWS": "*"}`: everyone, anonymous callers included.
    Anyone,
    /// `"111111111111"` or `arn:aws:iam::111111111111:root`: the account. "This delegates
    /// authority to the account" — every IAM identity in it, subject to its own policies.
    Account(AccountId),
    /// `arn:aws:iam::<acct>:user/<name>` (any path before the name is kept).
    User { account: AccountId, name: String },
    /// `arn:aws:iam::<acct>:role/<name>`: matches every session of the role.
    Role { account: AccountId, name: String },
    /// `arn:aws:sts::<acct>:assumed-role/<role>/<session>`: that one session.
    Session {
        account: AccountId,
        role: String,
        session: String,
    },
    /// `{"Service": "ecs-tasks.amazonaws.com"}`.
    Service(String),
    /// `{"Federated": "<identity provider ARN>"}`: matches a
    /// [`PrincipalKind::WebIdentity`] caller whose token that trusted OIDC provider verified
    /// (`sts:AssumeRoleWithWebIdentity` in a role's trust policy).
    Federated(String),
    /// `{"CanonicalUser": …}` and `arn:aws:sts::<acct>:federated-user/<name>`: accepted by
    /// the grammar, never matched (Berth has neither).
    Unmatchable,
}

/// How strongly a `Principal` element names the caller.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Strength {
    /// Not named.
    No,
    /// Named only through its account (account ID or `:root` ARN).
    Account,
    /// Named directly: `*`, its user/role/session ARN, its service name, or by exclusion
    /// from a `NotPrincipal`.
    Direct,
}

/// A statement's principal clause.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum PrincipalSpec {
    Principal(Vec<Entry>),
    NotPrincipal(Vec<Entry>),
}

impl PrincipalSpec {
    /// How the clause names `p`.
    pub(crate) fn strength(&self, p: &Principal) -> Strength {
        match self {
            PrincipalSpec::Principal(entries) => entries
                .iter()
                .map(|e| entry_strength(e, p))
                .max()
                .unwrap_or(Strength::No),
            PrincipalSpec::NotPrincipal(entries) => {
                // IAM evaluates a `NotPrincipal` against each identity in the caller's
                // chain — "the account first, then the role, and then the assumed-role
                // user" — so a caller escapes the statement only when every link is
                // listed: user ARN *and* account, or session ARN *and* role ARN *and*
                // account (IAM User Guide, "NotPrincipal With Deny"). We implement that
                // strict reading: listing only a user's ARN does not exempt the user.
                let listed = |link: Link<'_>| entries.iter().any(|e| covers(e, link));
                let exempt = chain(p).iter().flatten().all(|&link| listed(link));
                if exempt {
                    Strength::No
                } else {
                    Strength::Direct
                }
            }
        }
    }
}

fn entry_strength(e: &Entry, p: &Principal) -> Strength {
    let iam = matches!(
        p.kind,
        PrincipalKind::User | PrincipalKind::AssumedRole { .. }
    );
    let hit = match e {
        Entry::Anyone => return Strength::Direct,
        Entry::Account(a) => {
            return if iam && *a == p.account {
                Strength::Account
            } else {
                Strength::No
            }
        }
        Entry::User { account, name } => {
            p.kind == PrincipalKind::User && *account == p.account && *name == p.name
        }
        Entry::Role { account, name } => {
            matches!(p.kind, PrincipalKind::AssumedRole { .. })
                && *account == p.account
                && *name == p.name
        }
        Entry::Session {
            account,
            role,
            session,
        } => {
            matches!(&p.kind, PrincipalKind::AssumedRole { session: s } if s == session)
                && *account == p.account
                && *role == p.name
        }
        Entry::Service(name) => p.kind == PrincipalKind::Service && *name == p.name,
        Entry::Federated(provider) => p.kind == PrincipalKind::WebIdentity && *provider == p.name,
        Entry::Unmatchable => false,
    };
    if hit {
        Strength::Direct
    } else {
        Strength::No
    }
}

/// One identity in a caller's chain (see [`PrincipalSpec::strength`]).
#[derive(Debug, Clone, Copy)]
enum Link<'p> {
    Account(&'p AccountId),
    User(&'p Principal),
    Role(&'p Principal),
    Session(&'p Principal),
    Service(&'p str),
    Federated(&'p str),
    Anonymous,
}

fn chain(p: &Principal) -> [Option<Link<'_>>; 3] {
    match &p.kind {
        PrincipalKind::User => [Some(Link::Account(&p.account)), Some(Link::User(p)), None],
        PrincipalKind::AssumedRole { .. } => [
            Some(Link::Account(&p.account)),
            Some(Link::Role(p)),
            Some(Link::Session(p)),
        ],
        PrincipalKind::Service => [Some(Link::Service(&p.name)), None, None],
        PrincipalKind::Anonymous => [Some(Link::Anonymous), None, None],
        PrincipalKind::WebIdentity => [Some(Link::Federated(&p.name)), None, None],
    }
}

fn covers(e: &Entry, link: Link<'_>) -> bool {
    match (e, link) {
        (Entry::Anyone, _) => true,
        (Entry::Account(a), Link::Account(b)) => a == b,
        (Entry::User { .. }, Link::User(p)) => entry_strength(e, p) == Strength::Direct,
        (Entry::Role { .. }, Link::Role(p)) => entry_strength(e, p) == Strength::Direct,
        (Entry::Session { .. }, Link::Session(p)) => entry_strength(e, p) == Strength::Direct,
        (Entry::Service(a), Link::Service(b)) => a == b,
        (Entry::Federated(a), Link::Federated(b)) => a == b,
        _ => false,
    }
}

/// Parses a `Principal`/`NotPrincipal` value. Errors are messages without the statement
/// prefix; `field` is the element name for them.
pub(crate) fn parse(value: &Value, field: &str) -> Result<Vec<Entry>, String> {
    match value {
        Value::String(s) if s == "*" => Ok(vec![Entry::Anyone]),
        Value::String(s) => Err(format!(
            "{field} must be \"*\" or an object such as {{\"AWS\": …}} or {{\"Service\": …}}, \
             got \"{s}\""
        )),
        Value::Object(map) => {
            if map.is_empty() {
                return Err(format!("{field} must not be empty"));
            }
            let mut entries = Vec::new();
            for (kind, v) in map {
                let values = string_list(v).ok_or_else(|| {
                    format!("{field}.{kind} must be a string or a list of strings")
                })?;
                if values.is_empty() {
                    return Err(format!("{field}.{kind} must not be an empty list"));
                }
                for s in values {
                    entries.push(match kind.as_str() {
                        "AWS" => parse_aws(s).map_err(|e| format!("{field}.AWS: {e}"))?,
                        "Service" => {
                            parse_service(s).map_err(|e| format!("{field}.Service: {e}"))?
                        }
                        "Federated" => Entry::Federated(s.to_string()),
                        "CanonicalUser" => Entry::Unmatchable,
                        other => {
                            return Err(format!(
                                "{field} has unknown principal type \"{other}\" \
                                 (expected \"AWS\", \"Service\" or \"Federated\")"
                            ))
                        }
                    });
                }
            }
            Ok(entries)
        }
        _ => Err(format!(
            "{field} must be \"*\" or an object such as {{\"AWS\": …}} or {{\"Service\": …}}"
        )),
    }
}

fn string_list(v: &Value) -> Option<Vec<&str>> {
    match v {
        Value::String(s) => Some(vec![s.as_str()]),
        Value::Array(items) => items.iter().map(Value::as_str).collect(),
        _ => None,
    }
}

fn no_wildcards(s: &str) -> Result<(), String> {
    if s.contains(['*', '?']) {
        // "You cannot use a wildcard to match part of a principal name or ARN."
        Err(format!(
            "\"{s}\" contains a wildcard; a principal may only be \"*\" as a whole"
        ))
    } else {
        Ok(())
    }
}

fn parse_service(s: &str) -> Result<Entry, String> {
    no_wildcards(s)?;
    if s.is_empty() || s.contains(char::is_whitespace) {
        return Err(format!("\"{s}\" is not a service principal name"));
    }
    Ok(Entry::Service(s.to_string()))
}

fn parse_aws(s: &str) -> Result<Entry, String> {
    if s == "*" {
        return Ok(Entry::Anyone);
    }
    no_wildcards(s)?;
    if let Ok(account) = AccountId::parse(s) {
        return Ok(Entry::Account(account));
    }
    let invalid =
        || format!("\"{s}\" is not an account ID, or a root, user, role or assumed-role ARN");
    let parts: Vec<&str> = s.splitn(6, ':').collect();
    let [arn, partition, service, region, account, resource] = parts[..] else {
        return Err(invalid());
    };
    if arn != "arn" || partition.is_empty() || !region.is_empty() {
        return Err(invalid());
    }
    let account = AccountId::parse(account).map_err(|e| format!("\"{s}\": {e}"))?;
    let nonempty = |n: &str| (!n.is_empty()).then(|| n.to_string());
    let entry = match (service, resource.split_once('/')) {
        ("iam", None) if resource == "root" => Some(Entry::Account(account)),
        ("iam", Some(("user", name))) => {
            nonempty(last_segment(name)).map(|name| Entry::User { account, name })
        }
        ("iam", Some(("role", name))) => {
            nonempty(last_segment(name)).map(|name| Entry::Role { account, name })
        }
        ("sts", Some(("assumed-role", rest))) => match rest.split_once('/') {
            Some((role, session)) if !role.is_empty() && !session.is_empty() => {
                Some(Entry::Session {
                    account,
                    role: role.to_string(),
                    session: session.to_string(),
                })
            }
            _ => None,
        },
        ("sts", Some(("federated-user", name))) if !name.is_empty() => Some(Entry::Unmatchable),
        _ => None,
    };
    entry.ok_or_else(invalid)
}

/// User and role ARNs may carry a path (`user/division/alice`); the name is the last part.
fn last_segment(path_and_name: &str) -> &str {
    path_and_name.rsplit('/').next().unwrap_or(path_and_name)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    fn acct(s: &str) -> AccountId {
        AccountId::parse(s).unwrap()
    }

    fn user(account: &str, name: &str) -> Principal {
        Principal {
            account: acct(account),
            kind: PrincipalKind::User,
            name: name.into(),
            user_id: "AIDA".into(),
            tags: BTreeMap::new(),
        }
    }

    fn session(account: &str, role: &str, s: &str) -> Principal {
        Principal {
            account: acct(account),
            kind: PrincipalKind::AssumedRole { session: s.into() },
            name: role.into(),
            user_id: "AROA:s".into(),
            tags: BTreeMap::new(),
        }
    }

    #[test]
    fn parses_every_form() {
        let v: Value = serde_json::json!({"AWS": [
            "111111111111",
            "arn:aws:iam::111111111111:root",
            "arn:aws:iam::111111111111:user/ops/alice",
            "arn:aws:iam::111111111111:role/Builder",
            "arn:aws:sts::111111111111:assumed-role/Builder/ci",
            "*"
        ], "Service": "ecs-tasks.amazonaws.com", "Federated": "accounts.google.com"});
        let e = parse(&v, "Principal").unwrap();
        assert_eq!(e.len(), 8);
        assert_eq!(
            e[2],
            Entry::User {
                account: acct("111111111111"),
                name: "alice".into()
            }
        );
    }

    #[test]
    fn rejects_bad_forms() {
        for bad in [
            serde_json::json!({"AWS": "arn:aws:iam::111111111111:user/*"}),
            serde_json::json!({"AWS": "1111"}),
            serde_json::json!({"AWS": "arn:aws:s3:::bucket"}),
            serde_json::json!({"Service": "*.amazonaws.com"}),
            serde_json::json!({"Nope": "x"}),
            serde_json::json!("alice"),
            serde_json::json!({}),
        ] {
            assert!(parse(&bad, "Principal").is_err(), "{bad}");
        }
    }

    #[test]
    fn strengths() {
        let spec = |v| PrincipalSpec::Principal(parse(&v, "Principal").unwrap());
        let alice = user("111111111111", "alice");
        assert_eq!(
            spec(serde_json::json!({"AWS": "111111111111"})).strength(&alice),
            Strength::Account
        );
        assert_eq!(
            spec(
                serde_json::json!({"AWS": ["111111111111", "arn:aws:iam::111111111111:user/alice"]})
            )
            .strength(&alice),
            Strength::Direct
        );
        let s = session("222222222222", "Builder", "ci");
        assert_eq!(
            spec(serde_json::json!({"AWS": "arn:aws:iam::222222222222:role/Builder"})).strength(&s),
            Strength::Direct
        );
        assert_eq!(
            spec(
                serde_json::json!({"AWS": "arn:aws:sts::222222222222:assumed-role/Builder/other"})
            )
            .strength(&s),
            Strength::No
        );
    }

    #[test]
    fn not_principal_needs_the_whole_chain() {
        let not = |v| PrincipalSpec::NotPrincipal(parse(&v, "NotPrincipal").unwrap());
        let s = session("444455556666", "audit", "app");
        let only_session =
            not(serde_json::json!({"AWS": "arn:aws:sts::444455556666:assumed-role/audit/app"}));
        assert_eq!(only_session.strength(&s), Strength::Direct);
        let whole = not(serde_json::json!({"AWS": [
            "arn:aws:sts::444455556666:assumed-role/audit/app",
            "arn:aws:iam::444455556666:role/audit",
            "arn:aws:iam::444455556666:root"
        ]}));
        assert_eq!(whole.strength(&s), Strength::No);
        assert_eq!(
            whole.strength(&session("444455556666", "audit", "other")),
            Strength::Direct
        );
    }
}
