//! Cost of authorising one request, the way a manifest GET does it: an admin identity
//! policy plus a two-statement repository policy with a condition.
//!
//! Run: `cargo bench -p berth-iam --bench policy`. The number to compare with is a
//! manifest GET's ~30 µs end to end.
//!
//! Measured on the 2-core development machine (criterion medians, including
//! `RequestContext::new`, which reads the clock): same-account admin ≈ 0.21 µs,
//! cross-account role with an `IpAddress` condition ≈ 0.33 µs — about 1% of a manifest
//! GET. Parsing the repository policy once ≈ 12 µs.

use std::collections::BTreeMap;
use std::hint::black_box;
use std::net::IpAddr;

use berth_iam::policy::{evaluate, NamedPolicy, PolicyDocument, PolicyKind, RequestContext};
use berth_iam::{AccountId, Principal, PrincipalKind};
use criterion::{criterion_group, criterion_main, Criterion};

const ADMIN: &str = r#"{
  "Version": "2012-10-17",
  "Statement": [{"Sid": "Admin", "Effect": "Allow", "Action": "ecr:*", "Resource": "*"}]
}"#;

const REPOSITORY: &str = r#"{
  "Version": "2012-10-17",
  "Statement": [
    {
      "Sid": "AllowPullFromOrg",
      "Effect": "Allow",
      "Principal": {"AWS": ["arn:aws:iam::222222222222:root", "arn:aws:iam::333333333333:role/ci"]},
      "Action": ["ecr:BatchGetImage", "ecr:GetDownloadUrlForLayer", "ecr:BatchCheckLayerAvailability"],
      "Condition": {"IpAddress": {"aws:SourceIp": ["10.0.0.0/8", "2001:db8::/32"]}}
    },
    {
      "Sid": "DenyDeleteOutsideOffice",
      "Effect": "Deny",
      "Principal": "*",
      "Action": ["ecr:BatchDeleteImage", "ecr:DeleteRepository"],
      "Condition": {"NotIpAddress": {"aws:SourceIp": "203.0.113.0/24"}}
    }
  ]
}"#;

fn bench(c: &mut Criterion) {
    let admin = PolicyDocument::parse(ADMIN, PolicyKind::Identity).unwrap();
    let repo = PolicyDocument::parse(REPOSITORY, PolicyKind::Resource).unwrap();
    let account = AccountId::parse("111111111111").unwrap();
    let alice = Principal {
        account: account.clone(),
        kind: PrincipalKind::User,
        name: "alice".into(),
        user_id: "AIDAEXAMPLE".into(),
        tags: BTreeMap::new(),
    };
    let ci = Principal {
        account: AccountId::parse("222222222222").unwrap(),
        kind: PrincipalKind::AssumedRole {
            session: "build-42".into(),
        },
        name: "ci".into(),
        user_id: "AROAEXAMPLE:build-42".into(),
        tags: BTreeMap::new(),
    };
    let ip: IpAddr = "10.1.2.3".parse().unwrap();
    let resource = "arn:aws:ecr:us-east-1:111111111111:repository/team/app";
    let identity = [NamedPolicy {
        name: "identity policy AdminAccess",
        document: &admin,
    }];
    let resource_policies = [NamedPolicy {
        name: "repository policy",
        document: &repo,
    }];

    c.bench_function("evaluate/same-account admin, manifest GET", |b| {
        b.iter(|| {
            let ctx = RequestContext::new(&alice, "ecr:BatchGetImage", resource).with_source_ip(ip);
            let d = evaluate(
                black_box(&ctx),
                black_box(&identity),
                black_box(&resource_policies),
                &account,
            );
            assert!(d.allowed);
            d
        })
    });

    c.bench_function("evaluate/cross-account role, manifest GET", |b| {
        b.iter(|| {
            let ctx = RequestContext::new(&ci, "ecr:BatchGetImage", resource).with_source_ip(ip);
            let d = evaluate(
                black_box(&ctx),
                black_box(&identity),
                black_box(&resource_policies),
                &account,
            );
            assert!(d.allowed);
            d
        })
    });

    c.bench_function("parse/repository policy", |b| {
        b.iter(|| PolicyDocument::parse(black_box(REPOSITORY), PolicyKind::Resource).unwrap())
    });
}

criterion_group!(benches, bench);
criterion_main!(benches);
