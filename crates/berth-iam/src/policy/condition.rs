//! The `Condition` element: operators, set qualifiers, parsing and evaluation.
//!
//! Sources: IAM User Guide, "IAM JSON policy elements: Condition operators", "Conditions
//! with multiple context keys or values", "Single-valued vs. multivalued context keys"
//! (set operators) and "Policy variables".
//!
//! The rules, as implemented (each key of each operator is one [`Condition`]):
//!
//! * Several operators, and several keys under one operator: AND.
//! * Several policy values for one key: OR; for a negated operator (`StringNotEquals`,
//!   `NotIpAddress`, …): NOR — "the key does not match any of the values".
//! * Key absent from the request: the condition is false, except that it is **true** for
//!   negated operators ("If the policy condition requires that the key is not matched, such
//!   as StringNotLike or ArnNotLike, and the right key is not present, the condition is
//!   true"), for `…IfExists` operators, and `Null` tests presence itself.
//! * `ForAnyValue:` — true if at least one request value matches; false when the key is
//!   absent or has no values.
//! * `ForAllValues:` — true if every request value matches; also true when the key is absent
//!   or has no values (IAM: "it also returns true if there are no context keys in the
//!   request").
//! * With a set qualifier and a negated operator, the negation applies per request value
//!   (`ForAllValues:StringNotEquals` = no request value is among the policy values).
//! * A request value that cannot be read as the operator's type (a non-number for
//!   `Numeric…`) matches nothing.
//! * A policy variable with no value and no default makes the condition false: IAM says an
//!   unresolvable variable "causes the statement to be invalid", i.e. it does not apply.

use std::net::IpAddr;

use ipnet::IpNet;
use serde_json::Value;
use time::OffsetDateTime;

use super::context::{RequestContext, Scalar};
use super::pattern::{ArnPattern, Pattern, Syntax};

/// One key under one operator, compiled.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Condition {
    /// Lowercased: condition keys are case-insensitive.
    key: Box<str>,
    qualifier: Qualifier,
    if_exists: bool,
    kind: Kind,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Qualifier {
    Single,
    ForAnyValue,
    ForAllValues,
}

#[derive(Debug, Clone, PartialEq)]
enum Kind {
    /// `Null`: `true` means "the key must be absent".
    Null(Vec<bool>),
    Test {
        test: Test,
        negated: bool,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Cmp {
    Eq,
    Lt,
    Le,
    Gt,
    Ge,
}

impl Cmp {
    fn holds<T: PartialOrd>(self, request: T, policy: T) -> bool {
        match self {
            Cmp::Eq => request == policy,
            Cmp::Lt => request < policy,
            Cmp::Le => request <= policy,
            Cmp::Gt => request > policy,
            Cmp::Ge => request >= policy,
        }
    }
}

/// The positive form of an operator with its parsed policy values.
#[derive(Debug, Clone, PartialEq)]
enum Test {
    /// `StringEquals` (exact, case-sensitive) / `StringEqualsIgnoreCase`. Values may hold
    /// variables, never wildcards.
    StrEq {
        values: Vec<Pattern>,
        ignore_case: bool,
    },
    /// `StringLike`: `*` and `?` wildcards, variables.
    StrLike(Vec<Pattern>),
    Num {
        cmp: Cmp,
        values: Vec<f64>,
    },
    Date {
        cmp: Cmp,
        values: Vec<OffsetDateTime>,
    },
    Bool(Vec<bool>),
    Ip(Vec<IpNet>),
    /// `ArnEquals` and `ArnLike` behave the same: segment-wise wildcard match.
    Arn(Vec<ArnPattern>),
    /// `BinaryEquals`: base64 text compared byte for byte.
    Binary(Vec<String>),
}

/// Every base operator IAM defines: (name, family, comparison, negated).
const OPERATORS: &[(&str, Family, Cmp, bool)] = &[
    ("StringEquals", Family::StrEq, Cmp::Eq, false),
    ("StringNotEquals", Family::StrEq, Cmp::Eq, true),
    ("StringEqualsIgnoreCase", Family::StrEqIc, Cmp::Eq, false),
    ("StringNotEqualsIgnoreCase", Family::StrEqIc, Cmp::Eq, true),
    ("StringLike", Family::StrLike, Cmp::Eq, false),
    ("StringNotLike", Family::StrLike, Cmp::Eq, true),
    ("NumericEquals", Family::Num, Cmp::Eq, false),
    ("NumericNotEquals", Family::Num, Cmp::Eq, true),
    ("NumericLessThan", Family::Num, Cmp::Lt, false),
    ("NumericLessThanEquals", Family::Num, Cmp::Le, false),
    ("NumericGreaterThan", Family::Num, Cmp::Gt, false),
    ("NumericGreaterThanEquals", Family::Num, Cmp::Ge, false),
    ("DateEquals", Family::Date, Cmp::Eq, false),
    ("DateNotEquals", Family::Date, Cmp::Eq, true),
    ("DateLessThan", Family::Date, Cmp::Lt, false),
    ("DateLessThanEquals", Family::Date, Cmp::Le, false),
    ("DateGreaterThan", Family::Date, Cmp::Gt, false),
    ("DateGreaterThanEquals", Family::Date, Cmp::Ge, false),
    ("Bool", Family::Bool, Cmp::Eq, false),
    ("BinaryEquals", Family::Binary, Cmp::Eq, false),
    ("IpAddress", Family::Ip, Cmp::Eq, false),
    ("NotIpAddress", Family::Ip, Cmp::Eq, true),
    ("ArnEquals", Family::Arn, Cmp::Eq, false),
    ("ArnLike", Family::Arn, Cmp::Eq, false),
    ("ArnNotEquals", Family::Arn, Cmp::Eq, true),
    ("ArnNotLike", Family::Arn, Cmp::Eq, true),
    ("Null", Family::Null, Cmp::Eq, false),
];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Family {
    StrEq,
    StrEqIc,
    StrLike,
    Num,
    Date,
    Bool,
    Binary,
    Ip,
    Arn,
    Null,
}

/// Parses one `Condition` element into its flat list of conditions. `variables` is whether
/// the policy's Version enables policy variables. Errors are messages without the
/// statement prefix.
pub(crate) fn parse(value: &Value, variables: bool) -> Result<Vec<Condition>, String> {
    let Value::Object(ops) = value else {
        return Err("Condition must be an object of {operator: {key: value(s)}}".into());
    };
    let mut out = Vec::new();
    for (op_name, keys) in ops {
        let (qualifier, rest) = split_qualifier(op_name);
        let (base, if_exists) = match rest.len().checked_sub("IfExists".len()) {
            Some(at)
                if rest.is_char_boundary(at) && rest[at..].eq_ignore_ascii_case("IfExists") =>
            {
                (&rest[..at], true)
            }
            _ => (rest, false),
        };
        let &(_, family, cmp, negated) = OPERATORS
            .iter()
            .find(|(n, ..)| n.eq_ignore_ascii_case(base))
            .ok_or_else(|| format!("Condition has unknown operator \"{op_name}\""))?;
        if family == Family::Null && if_exists {
            return Err(format!(
                "Condition operator \"{op_name}\" is not valid: Null cannot take IfExists"
            ));
        }
        let Value::Object(keys) = keys else {
            return Err(format!(
                "Condition operator \"{op_name}\" must map condition keys to values"
            ));
        };
        if keys.is_empty() {
            return Err(format!(
                "Condition operator \"{op_name}\" has no condition keys"
            ));
        }
        for (key, vals) in keys {
            let raw = scalar_list(vals).ok_or_else(|| {
                format!(
                    "Condition {op_name} key \"{key}\": values must be a string, number, \
                     boolean or a list of them"
                )
            })?;
            if raw.is_empty() {
                return Err(format!(
                    "Condition {op_name} key \"{key}\" must have at least one value"
                ));
            }
            let bad = |v: &str, what: &str| {
                format!("Condition {op_name} key \"{key}\": value \"{v}\" is not {what}")
            };
            let string_syntax = |wildcards| Syntax {
                wildcards,
                variables,
                ignore_ascii_case: false,
            };
            let kind = match family {
                Family::Null => Kind::Null(
                    raw.iter()
                        .map(|v| parse_bool(v).ok_or_else(|| bad(v, "\"true\" or \"false\"")))
                        .collect::<Result<_, _>>()?,
                ),
                _ => {
                    let test = match family {
                        Family::StrEq | Family::StrEqIc => Test::StrEq {
                            values: raw
                                .iter()
                                .map(|v| Pattern::compile(v, string_syntax(false)))
                                .collect(),
                            ignore_case: family == Family::StrEqIc,
                        },
                        Family::StrLike => Test::StrLike(
                            raw.iter()
                                .map(|v| Pattern::compile(v, string_syntax(true)))
                                .collect(),
                        ),
                        Family::Num => Test::Num {
                            cmp,
                            values: raw
                                .iter()
                                .map(|v| parse_number(v).ok_or_else(|| bad(v, "a number")))
                                .collect::<Result<_, _>>()?,
                        },
                        Family::Date => Test::Date {
                            cmp,
                            values: raw
                                .iter()
                                .map(|v| {
                                    parse_date(v)
                                        .ok_or_else(|| bad(v, "an ISO 8601 date or epoch seconds"))
                                })
                                .collect::<Result<_, _>>()?,
                        },
                        Family::Bool => Test::Bool(
                            raw.iter()
                                .map(|v| {
                                    parse_bool(v).ok_or_else(|| bad(v, "\"true\" or \"false\""))
                                })
                                .collect::<Result<_, _>>()?,
                        ),
                        Family::Ip => Test::Ip(
                            raw.iter()
                                .map(|v| {
                                    parse_net(v).ok_or_else(|| {
                                        bad(v, "an IPv4 or IPv6 address or CIDR block")
                                    })
                                })
                                .collect::<Result<_, _>>()?,
                        ),
                        Family::Arn => Test::Arn(
                            raw.iter()
                                .map(|v| {
                                    ArnPattern::compile(v, variables).map_err(|e| {
                                        format!("Condition {op_name} key \"{key}\": {e}")
                                    })
                                })
                                .collect::<Result<_, _>>()?,
                        ),
                        Family::Binary => Test::Binary(raw.iter().map(|v| v.to_string()).collect()),
                        Family::Null => unreachable!(),
                    };
                    Kind::Test { test, negated }
                }
            };
            out.push(Condition {
                key: key.to_ascii_lowercase().into_boxed_str(),
                qualifier,
                if_exists,
                kind,
            });
        }
    }
    Ok(out)
}

fn split_qualifier(op: &str) -> (Qualifier, &str) {
    for (prefix, q) in [
        ("ForAnyValue:", Qualifier::ForAnyValue),
        ("ForAllValues:", Qualifier::ForAllValues),
    ] {
        if op.len() >= prefix.len()
            && op.is_char_boundary(prefix.len())
            && op[..prefix.len()].eq_ignore_ascii_case(prefix)
        {
            return (q, &op[prefix.len()..]);
        }
    }
    (Qualifier::Single, op)
}

/// Condition values may be JSON strings, numbers or booleans; IAM reads them all as text.
fn scalar_list(v: &Value) -> Option<Vec<String>> {
    fn one(v: &Value) -> Option<String> {
        match v {
            Value::String(s) => Some(s.clone()),
            Value::Number(n) => Some(n.to_string()),
            Value::Bool(b) => Some(b.to_string()),
            _ => None,
        }
    }
    match v {
        Value::Array(items) => items.iter().map(one).collect(),
        other => one(other).map(|s| vec![s]),
    }
}

fn parse_bool(s: &str) -> Option<bool> {
    if s.eq_ignore_ascii_case("true") {
        Some(true)
    } else if s.eq_ignore_ascii_case("false") {
        Some(false)
    } else {
        None
    }
}

fn parse_number(s: &str) -> Option<f64> {
    s.trim().parse::<f64>().ok().filter(|n| n.is_finite())
}

fn parse_net(s: &str) -> Option<IpNet> {
    let s = s.trim();
    s.parse::<IpNet>()
        .ok()
        .or_else(|| s.parse::<IpAddr>().ok().map(IpNet::from))
}

/// A date as IAM's `Date…` operators accept it: epoch seconds, or ISO 8601 — with time
/// and offset, with time and no offset (UTC), or a bare date (midnight UTC).
pub(crate) fn parse_date(s: &str) -> Option<OffsetDateTime> {
    use time::format_description::well_known::Iso8601;
    let s = s.trim();
    let digits = s.strip_prefix('-').unwrap_or(s);
    if !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit()) {
        return OffsetDateTime::from_unix_timestamp(s.parse().ok()?).ok();
    }
    if let Ok(t) = OffsetDateTime::parse(s, &Iso8601::DEFAULT) {
        return Some(t);
    }
    if let Ok(t) = time::PrimitiveDateTime::parse(s, &Iso8601::DEFAULT) {
        return Some(t.assume_utc());
    }
    time::Date::parse(s, &Iso8601::DEFAULT)
        .ok()
        .map(|d| d.midnight().assume_utc())
}

/// Unicode case-insensitive equality without allocating.
fn eq_ignore_case(a: &str, b: &str) -> bool {
    if a.is_ascii() && b.is_ascii() {
        return a.eq_ignore_ascii_case(b);
    }
    a.chars()
        .flat_map(char::to_lowercase)
        .eq(b.chars().flat_map(char::to_lowercase))
}

impl Condition {
    /// Whether the condition holds for the request.
    pub(crate) fn holds(&self, ctx: &RequestContext<'_>) -> bool {
        let values = ctx.lookup(&self.key).filter(|v| v.len() > 0);
        let (test, negated) = match &self.kind {
            Kind::Null(expect_absent) => {
                let absent = values.is_none();
                return expect_absent.contains(&absent);
            }
            Kind::Test { test, negated } => (test, *negated),
        };
        let Some(values) = values else {
            return match self.qualifier {
                Qualifier::ForAllValues => true,
                Qualifier::ForAnyValue => self.if_exists,
                Qualifier::Single => self.if_exists || negated,
            };
        };
        // `Some(hit)` per request value; `None` aborts (unresolvable variable).
        let mut each = (0..values.len()).map(|i| test.any_policy_value(values.get(i), ctx));
        match self.qualifier {
            Qualifier::Single => {
                let mut any = false;
                for hit in each.by_ref() {
                    match hit {
                        Some(true) => any = true,
                        Some(false) => {}
                        None => return false,
                    }
                }
                any != negated
            }
            Qualifier::ForAnyValue => {
                let mut any = false;
                for hit in each {
                    match hit {
                        Some(h) => any |= h != negated,
                        None => return false,
                    }
                }
                any
            }
            Qualifier::ForAllValues => {
                let mut all = true;
                for hit in each {
                    match hit {
                        Some(h) => all &= h != negated,
                        None => return false,
                    }
                }
                all
            }
        }
    }
}

impl Test {
    /// Whether one request value matches any policy value (the positive form). `None` when
    /// a policy variable cannot be resolved.
    fn any_policy_value(&self, v: Scalar<'_>, ctx: &RequestContext<'_>) -> Option<bool> {
        let mut unresolved = false;
        let mut fold = |r: Option<bool>| match r {
            Some(true) => true,
            Some(false) => false,
            None => {
                unresolved = true;
                false
            }
        };
        let hit = match self {
            Test::StrEq {
                values,
                ignore_case,
            } => {
                let text = v.as_text();
                values.iter().any(|p| {
                    fold(p.resolve(ctx).map(|want| {
                        if *ignore_case {
                            eq_ignore_case(&want, &text)
                        } else {
                            *want == *text
                        }
                    }))
                })
            }
            Test::StrLike(values) => {
                let text = v.as_text();
                values.iter().any(|p| fold(p.matches(&text, ctx)))
            }
            Test::Arn(values) => {
                let text = v.as_text();
                values.iter().any(|p| fold(p.matches(&text, ctx)))
            }
            Test::Binary(values) => {
                let text = v.as_text();
                values.iter().any(|p| **p == *text)
            }
            Test::Num { cmp, values } => {
                let n = match v {
                    Scalar::Epoch(t) => Some(t.unix_timestamp() as f64),
                    Scalar::Str(s) => parse_number(s),
                    _ => None,
                };
                n.is_some_and(|n| values.iter().any(|&p| cmp.holds(n, p)))
            }
            Test::Date { cmp, values } => {
                let t = match v {
                    Scalar::Time(t) | Scalar::Epoch(t) => Some(t),
                    Scalar::Str(s) => parse_date(s),
                    _ => None,
                };
                t.is_some_and(|t| values.iter().any(|&p| cmp.holds(t, p)))
            }
            Test::Bool(values) => {
                let b = match v {
                    Scalar::Bool(b) => Some(b),
                    Scalar::Str(s) => parse_bool(s),
                    _ => None,
                };
                b.is_some_and(|b| values.contains(&b))
            }
            Test::Ip(nets) => {
                let ip = match v {
                    Scalar::Ip(ip) => Some(ip),
                    Scalar::Str(s) => s.trim().parse::<IpAddr>().ok(),
                    _ => None,
                };
                ip.is_some_and(|ip| nets.iter().any(|n| n.contains(&ip)))
            }
        };
        // A match decides; an unresolvable variable only matters if nothing matched.
        if hit {
            Some(true)
        } else if unresolved {
            None
        } else {
            Some(false)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates() {
        let t = |s| parse_date(s).map(|t| t.unix_timestamp());
        assert_eq!(t("0"), Some(0));
        assert_eq!(t("1700000000"), Some(1_700_000_000));
        assert_eq!(t("2020-01-01T00:00:00Z"), Some(1_577_836_800));
        assert_eq!(t("2020-01-01T01:00:00+01:00"), Some(1_577_836_800));
        assert_eq!(t("2020-01-01T00:00:00.000Z"), Some(1_577_836_800));
        assert_eq!(t("2020-01-01T00:00:00"), Some(1_577_836_800));
        assert_eq!(t("2020-01-01"), Some(1_577_836_800));
        assert_eq!(t("yesterday"), None);
    }

    #[test]
    fn operator_names() {
        let ok = |op: &str| {
            parse(&serde_json::json!({op: {"aws:x": "1"}}), true)
                .map(|c| c.len())
                .map_err(|e| e.to_string())
        };
        assert_eq!(ok("StringEquals"), Ok(1));
        assert_eq!(ok("ForAnyValue:StringLikeIfExists"), Ok(1));
        assert_eq!(ok("ForAllValues:NumericLessThan"), Ok(1));
        assert!(ok("StringMatches")
            .unwrap_err()
            .contains("unknown operator \"StringMatches\""));
        assert!(ok("NullIfExists").is_err());
        let err = parse(
            &serde_json::json!({"DateLessThan": {"aws:CurrentTime": "yesterday"}}),
            true,
        )
        .unwrap_err();
        assert!(err.contains("not an ISO 8601 date"), "{err}");
    }

    #[test]
    fn networks() {
        assert!(parse_net("203.0.113.0/24").is_some());
        assert!(parse_net("2001:db8::/32").is_some());
        assert!(parse_net("203.0.113.7").is_some());
        assert!(parse_net("203.0.113.0/33").is_none());
    }
}
