//! The request context: what a request is, as IAM conditions see it.
//!
//! Source: IAM User Guide, "Policy evaluation logic" (processing the request context) and
//! "AWS global condition context keys". Keys are case-insensitive; lookups take the
//! lowercased key.

use std::borrow::Cow;
use std::net::IpAddr;
use std::sync::OnceLock;

use time::OffsetDateTime;

use super::pattern::Vars;
use crate::principal::{Principal, PrincipalKind};

/// Everything [`evaluate`](super::evaluate) needs to know about one request: who
/// ([`Principal`]), what (`action`, e.g. `ecr:BatchGetImage`), on what (`resource`, an ARN
/// such as `arn:aws:ecr:us-east-1:111111111111:repository/app`) and the condition keys.
///
/// Global keys come from the principal and need no setting:
///
/// | key | value |
/// |---|---|
/// | `aws:PrincipalAccount` | the principal's account (users and role sessions) |
/// | `aws:PrincipalArn` | user ARN; for a role session the **role** ARN, as IAM does |
/// | `aws:username` | the user name (users only) |
/// | `aws:userid` | [`Principal::user_id`] when not empty |
/// | `aws:PrincipalType` | [`Principal::principal_type`] |
/// | `aws:PrincipalTag/<key>` | each principal tag |
/// | `aws:PrincipalServiceName` | the service name (service principals only) |
/// | `aws:PrincipalIsAWSService` | `true` for service principals, else `false` |
/// | `aws:CurrentTime`, `aws:EpochTime` | now, unless [`with_current_time`](Self::with_current_time) |
/// | `aws:SecureTransport` | `false`, unless [`with_secure_transport`](Self::with_secure_transport) |
/// | `aws:SourceIp` | only after [`with_source_ip`](Self::with_source_ip) |
///
/// Keys absent for a principal kind (for example `aws:username` for a role session) are
/// absent from the context, which is what `…IfExists` and `Null` test. Any other key
/// (`ecr:ResourceTag/<key>`, `aws:RequestTag/<key>`, …) is added with
/// [`with_value`](Self::with_value), which also overrides a global key of the same name.
///
/// Building a context allocates nothing; `aws:PrincipalArn` is formatted the first time a
/// policy asks for it.
#[derive(Debug)]
pub struct RequestContext<'a> {
    pub(crate) principal: &'a Principal,
    pub(crate) action: &'a str,
    pub(crate) resource: &'a str,
    now: OffsetDateTime,
    source_ip: Option<IpAddr>,
    secure_transport: bool,
    /// Extra keys, lowercased, in insertion order; a later entry for the same key wins.
    extra: Vec<(String, Vec<String>)>,
    principal_arn: OnceLock<String>,
}

/// One value of a context key, typed where the context knows the type.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Scalar<'c> {
    Str(&'c str),
    /// `aws:CurrentTime`: compared as a date, printed as ISO 8601.
    Time(OffsetDateTime),
    /// `aws:EpochTime`: compared as a date or number, printed as epoch seconds.
    Epoch(OffsetDateTime),
    Bool(bool),
    Ip(IpAddr),
}

/// The values of a context key.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Values<'c> {
    One(Scalar<'c>),
    Many(&'c [String]),
}

impl Values<'_> {
    pub(crate) fn len(&self) -> usize {
        match self {
            Values::One(_) => 1,
            Values::Many(v) => v.len(),
        }
    }

    pub(crate) fn get(&self, i: usize) -> Scalar<'_> {
        match self {
            Values::One(s) => *s,
            Values::Many(v) => Scalar::Str(&v[i]),
        }
    }
}

impl Scalar<'_> {
    /// The value as text, the way IAM prints it.
    pub(crate) fn as_text(&self) -> Cow<'_, str> {
        match self {
            Scalar::Str(s) => Cow::Borrowed(s),
            Scalar::Time(t) => Cow::Owned(
                t.format(&time::format_description::well_known::Rfc3339)
                    .unwrap_or_default(),
            ),
            Scalar::Epoch(t) => Cow::Owned(t.unix_timestamp().to_string()),
            Scalar::Bool(true) => Cow::Borrowed("true"),
            Scalar::Bool(false) => Cow::Borrowed("false"),
            Scalar::Ip(ip) => Cow::Owned(ip.to_string()),
        }
    }
}

impl<'a> RequestContext<'a> {
    /// A context for `principal` performing `action` on `resource`, with the global keys
    /// listed on the type, `aws:CurrentTime` = now and `aws:SecureTransport` = `false`.
    pub fn new(principal: &'a Principal, action: &'a str, resource: &'a str) -> Self {
        RequestContext {
            principal,
            action,
            resource,
            now: OffsetDateTime::now_utc(),
            source_ip: None,
            secure_transport: false,
            extra: Vec::new(),
            principal_arn: OnceLock::new(),
        }
    }

    /// Sets `aws:SourceIp`, the caller's address (IPv4 or IPv6).
    pub fn with_source_ip(mut self, ip: IpAddr) -> Self {
        self.source_ip = Some(ip);
        self
    }

    /// Sets `aws:CurrentTime` and `aws:EpochTime` (tests, or a time taken once per request).
    pub fn with_current_time(mut self, t: OffsetDateTime) -> Self {
        self.now = t;
        self
    }

    /// Sets `aws:SecureTransport` (whether the request came over TLS).
    pub fn with_secure_transport(mut self, secure: bool) -> Self {
        self.secure_transport = secure;
        self
    }

    /// Adds a key with its values, e.g. `("ecr:ResourceTag/team", vec!["web".into()])`.
    /// The key is case-insensitive. Several values make it a multivalued key (use
    /// `ForAnyValue:`/`ForAllValues:` in policies); an empty list is a key that is present
    /// with no values, which `ForAllValues:` treats as vacuously true and every other
    /// operator as absent.
    pub fn with_value(mut self, key: &str, values: Vec<String>) -> Self {
        let key = key.to_ascii_lowercase();
        self.extra.retain(|(k, _)| *k != key);
        self.extra.push((key, values));
        self
    }

    /// The principal making the request.
    pub fn principal(&self) -> &'a Principal {
        self.principal
    }

    /// The action, as given to [`new`](Self::new).
    pub fn action(&self) -> &'a str {
        self.action
    }

    /// The resource ARN, as given to [`new`](Self::new).
    pub fn resource(&self) -> &'a str {
        self.resource
    }

    fn is_iam(&self) -> bool {
        matches!(
            self.principal.kind,
            PrincipalKind::User | PrincipalKind::AssumedRole { .. }
        )
    }

    /// The values of `key_lc` (already lowercased), or `None` when absent.
    pub(crate) fn lookup(&self, key_lc: &str) -> Option<Values<'_>> {
        if let Some((_, v)) = self.extra.iter().find(|(k, _)| k == key_lc) {
            return Some(Values::Many(v));
        }
        let p = self.principal;
        let one = |s| Some(Values::One(s));
        match key_lc {
            "aws:principalaccount" if self.is_iam() => one(Scalar::Str(p.account.as_str())),
            "aws:principalarn" if self.is_iam() => {
                let arn = self.principal_arn.get_or_init(|| match p.role_arn() {
                    Some(role) => role,
                    None => p.arn(),
                });
                one(Scalar::Str(arn))
            }
            "aws:username" if p.kind == PrincipalKind::User => one(Scalar::Str(&p.name)),
            "aws:userid" if !p.user_id.is_empty() => one(Scalar::Str(&p.user_id)),
            "aws:principaltype" => one(Scalar::Str(p.principal_type())),
            "aws:principalservicename" if p.kind == PrincipalKind::Service => {
                one(Scalar::Str(&p.name))
            }
            "aws:principalisawsservice" => one(Scalar::Bool(p.kind == PrincipalKind::Service)),
            "aws:currenttime" => one(Scalar::Time(self.now)),
            "aws:epochtime" => one(Scalar::Epoch(self.now)),
            "aws:securetransport" => one(Scalar::Bool(self.secure_transport)),
            "aws:sourceip" => self.source_ip.map(|ip| Values::One(Scalar::Ip(ip))),
            _ => {
                let tag = key_lc.strip_prefix("aws:principaltag/")?;
                p.tags
                    .iter()
                    .find(|(k, _)| k.eq_ignore_ascii_case(tag))
                    .map(|(_, v)| Values::One(Scalar::Str(v)))
            }
        }
    }
}

impl Vars for RequestContext<'_> {
    fn var(&self, key_lc: &str) -> Option<Cow<'_, str>> {
        match self.lookup(key_lc)? {
            Values::One(s) => Some(match s {
                Scalar::Str(s) => Cow::Borrowed(s),
                other => Cow::Owned(other.as_text().into_owned()),
            }),
            Values::Many([v]) => Some(Cow::Borrowed(v)),
            Values::Many(_) => None,
        }
    }
}
