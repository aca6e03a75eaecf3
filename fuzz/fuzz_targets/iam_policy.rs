//! IAM policy documents and their conditions (IAM User Guide, "IAM JSON policy elements
//! reference"; ECR repository and registry policies): parsing never panics, and a policy
//! that parses evaluates without panicking, deterministically, for any request context.
#![no_main]

use arbitrary::{Arbitrary, Unstructured};
use berth_iam::policy::{evaluate, NamedPolicy, PolicyDocument, PolicyKind, RequestContext};
use berth_iam::{AccountId, Principal, PrincipalKind};
use libfuzzer_sys::fuzz_target;
use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr};
use time::OffsetDateTime;

/// The request context; the policy text comes first in the input, up to a NUL byte, so
/// real policies (fuzz/seeds/iam_policy) seed the corpus as they are.
#[derive(Arbitrary, Debug)]
struct Context<'a> {
    resource_policy: bool,
    principal_kind: u8,
    principal_name: &'a str,
    foreign_account: bool,
    tag: (&'a str, &'a str),
    action: &'a str,
    resource: &'a str,
    source_ip: [u8; 4],
    secure: bool,
    /// Seconds since the epoch, folded into years 1970–2100.
    now: u32,
    key: &'a str,
    values: Vec<&'a str>,
}

fuzz_target!(|data: &[u8]| {
    let (text, rest) = data.split_at(data.iter().position(|&b| b == 0).unwrap_or(data.len()));
    let Ok(text) = std::str::from_utf8(text) else {
        return;
    };
    let Ok(i) = Context::arbitrary_take_rest(Unstructured::new(rest.get(1..).unwrap_or(&[])))
    else {
        return;
    };
    let kind = if i.resource_policy {
        PolicyKind::Resource
    } else {
        PolicyKind::Identity
    };
    let Ok(document) = PolicyDocument::parse(text, kind) else {
        return;
    };
    let account = if i.foreign_account {
        "222222222222"
    } else {
        "111111111111"
    };
    let principal = Principal {
        account: AccountId::parse(account).unwrap(),
        kind: match i.principal_kind % 4 {
            0 => PrincipalKind::User,
            1 => PrincipalKind::AssumedRole {
                session: "s".into(),
            },
            2 => PrincipalKind::Service,
            _ => PrincipalKind::Anonymous,
        },
        name: i.principal_name.to_string(),
        user_id: "AIDAFUZZ".into(),
        tags: BTreeMap::from([(i.tag.0.to_string(), i.tag.1.to_string())]),
    };
    let now = OffsetDateTime::from_unix_timestamp(i64::from(i.now) % 4_102_444_800).unwrap();
    let ctx = RequestContext::new(&principal, i.action, i.resource)
        .with_source_ip(IpAddr::V4(Ipv4Addr::from(i.source_ip)))
        .with_current_time(now)
        .with_secure_transport(i.secure)
        .with_value(i.key, i.values.iter().map(|v| v.to_string()).collect());
    let named = [NamedPolicy {
        name: "fuzzed",
        document: &document,
    }];
    let (identity, resource): (&[NamedPolicy<'_>], &[NamedPolicy<'_>]) = if i.resource_policy {
        (&[], &named)
    } else {
        (&named, &[])
    };
    let owner = AccountId::parse("111111111111").unwrap();
    let first = evaluate(&ctx, identity, resource, &owner);
    assert_eq!(evaluate(&ctx, identity, resource, &owner), first);
});
