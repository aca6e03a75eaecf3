//! Table-driven cases for IAM policy grammar and evaluation (`berth_iam::policy`).
//!
//! Every case names the IAM User Guide section (or ECR User Guide example) it comes from.
//! Evaluation cases run through one `check` helper, so internals can change without
//! rewriting cases. The resource is always in account 111111111111.

use std::collections::BTreeMap;
use std::net::IpAddr;

use berth_iam::policy::{
    evaluate, Decision, DecisionReason, Missing, NamedPolicy, PolicyDocument, PolicyKind,
    RequestContext,
};
use berth_iam::{AccountId, Principal, PrincipalKind};
use time::macros::datetime;

const OWNER: &str = "111111111111";
const REPO: &str = "arn:aws:ecr:us-east-1:111111111111:repository/team/app";
const ALICE_REPO: &str = "arn:aws:ecr:us-east-1:111111111111:repository/alice/app";
const BOB_REPO: &str = "arn:aws:ecr:us-east-1:111111111111:repository/bob/app";
const PULL: &str = "ecr:BatchGetImage";

/// Who makes the request.
#[derive(Debug, Clone, Copy)]
enum Who {
    /// IAM user alice in the owner account, tag team=web.
    Alice,
    /// IAM user bob in the owner account, no tags.
    Bob,
    /// A session of role Builder in the owner account.
    Builder,
    /// `arn:aws:sts::222222222222:assumed-role/ECSTaskExecutionRole/task-1`.
    EcsTask,
    /// IAM user mallory in account 333333333333.
    Mallory,
    /// The service principal `ecs-tasks.amazonaws.com`.
    EcsService,
    /// An unauthenticated caller.
    Anonymous,
}

fn principal(who: Who) -> Principal {
    let acct = |s| AccountId::parse(s).unwrap();
    let mk = |account, kind, name: &str, user_id: &str, tags: &[(&str, &str)]| Principal {
        account: acct(account),
        kind,
        name: name.into(),
        user_id: user_id.into(),
        tags: tags
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect::<BTreeMap<_, _>>(),
    };
    match who {
        Who::Alice => mk(
            OWNER,
            PrincipalKind::User,
            "alice",
            "AIDAALICE",
            &[("team", "web")],
        ),
        Who::Bob => mk(OWNER, PrincipalKind::User, "bob", "AIDABOB", &[]),
        Who::Builder => mk(
            OWNER,
            PrincipalKind::AssumedRole {
                session: "ci".into(),
            },
            "Builder",
            "AROABUILDER:ci",
            &[],
        ),
        Who::EcsTask => mk(
            "222222222222",
            PrincipalKind::AssumedRole {
                session: "task-1".into(),
            },
            "ECSTaskExecutionRole",
            "AROAECS:task-1",
            &[],
        ),
        Who::Mallory => mk(
            "333333333333",
            PrincipalKind::User,
            "mallory",
            "AIDAMAL",
            &[],
        ),
        Who::EcsService => mk(
            OWNER,
            PrincipalKind::Service,
            "ecs-tasks.amazonaws.com",
            "",
            &[],
        ),
        Who::Anonymous => mk(OWNER, PrincipalKind::Anonymous, "", "", &[]),
    }
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Expect {
    /// Allowed; by the statement with this Sid, when given.
    Allow(Option<&'static str>),
    /// Explicitly denied by a policy of this kind (and statement Sid, when given).
    Deny(PolicyKind, Option<&'static str>),
    /// Implicitly denied.
    Implicit(Missing),
}

type Setup = fn(RequestContext<'_>) -> RequestContext<'_>;

struct Case {
    name: &'static str,
    /// IAM User Guide section (or other doc) the case comes from.
    doc: &'static str,
    who: Who,
    action: &'static str,
    resource: &'static str,
    identity: &'static [&'static str],
    resource_policies: &'static [&'static str],
    setup: Setup,
    expect: Expect,
}

fn plain(c: RequestContext<'_>) -> RequestContext<'_> {
    c
}

fn run(case: &Case) -> Decision {
    let p = principal(case.who);
    let ids: Vec<PolicyDocument> = case
        .identity
        .iter()
        .map(|j| {
            PolicyDocument::parse(j, PolicyKind::Identity)
                .unwrap_or_else(|e| panic!("{}: {e}", case.name))
        })
        .collect();
    let res: Vec<PolicyDocument> = case
        .resource_policies
        .iter()
        .map(|j| {
            PolicyDocument::parse(j, PolicyKind::Resource)
                .unwrap_or_else(|e| panic!("{}: {e}", case.name))
        })
        .collect();
    let names: Vec<String> = (0..ids.len())
        .map(|i| format!("identity policy {i}"))
        .collect();
    let identity: Vec<NamedPolicy<'_>> = ids
        .iter()
        .zip(&names)
        .map(|(document, name)| NamedPolicy { name, document })
        .collect();
    let resource: Vec<NamedPolicy<'_>> = res
        .iter()
        .map(|document| NamedPolicy {
            name: "repository policy",
            document,
        })
        .collect();
    let ctx = RequestContext::new(&p, case.action, case.resource)
        .with_current_time(datetime!(2024-06-01 12:00:00 UTC));
    let ctx = (case.setup)(ctx);
    evaluate(
        &ctx,
        &identity,
        &resource,
        &AccountId::parse(OWNER).unwrap(),
    )
}

fn outcome(d: &Decision) -> Expect {
    match &d.reason {
        DecisionReason::Allowed { sid, .. } => Expect::Allow(sid.clone().map(|s| &*s.leak())),
        DecisionReason::ExplicitDeny { sid, .. } => {
            Expect::Deny(d.denied_by.unwrap(), sid.clone().map(|s| &*s.leak()))
        }
        DecisionReason::ImplicitDeny { missing } => Expect::Implicit(*missing),
    }
}

/// Runs every case and reports all failures at once.
fn check(cases: &[Case]) {
    let mut failures = Vec::new();
    for case in cases {
        let d = run(case);
        assert_eq!(
            d.allowed,
            matches!(d.reason, DecisionReason::Allowed { .. })
        );
        let got = outcome(&d);
        let ok = match (case.expect, got) {
            (Expect::Allow(None), Expect::Allow(_)) => true,
            (Expect::Deny(k, None), Expect::Deny(g, _)) => k == g,
            (want, got) => want == got,
        };
        if !ok {
            failures.push(format!(
                "{} [{}]: expected {:?}, got {:?}",
                case.name, case.doc, case.expect, got
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "{} failing case(s):\n{}",
        failures.len(),
        failures.join("\n")
    );
}

// ---- policies used by several cases -------------------------------------------------

const ADMIN: &str = r#"{"Version":"2012-10-17","Statement":[
  {"Sid":"Admin","Effect":"Allow","Action":"ecr:*","Resource":"*"}]}"#;

/// ECR User Guide, "Private repository policy examples": allow pull for one account's
/// role (shape of the "Allow another account" example).
const REPO_ALLOWS_ECS_ROLE: &str = r#"{"Version":"2012-10-17","Statement":[
  {"Sid":"AllowPull","Effect":"Allow",
   "Principal":{"AWS":"arn:aws:iam::222222222222:role/ECSTaskExecutionRole"},
   "Action":["ecr:BatchGetImage","ecr:GetDownloadUrlForLayer","ecr:BatchCheckLayerAvailability"]}]}"#;

const REPO_ALLOWS_ACCOUNT_222: &str = r#"{"Version":"2012-10-17","Statement":[
  {"Sid":"AllowAccount","Effect":"Allow","Principal":{"AWS":"222222222222"},
   "Action":"ecr:BatchGetImage"}]}"#;

const ECS_IDENTITY_PULL: &str = r#"{"Version":"2012-10-17","Statement":[
  {"Sid":"Pull","Effect":"Allow",
   "Action":["ecr:BatchGetImage","ecr:GetDownloadUrlForLayer","ecr:BatchCheckLayerAvailability"],
   "Resource":"arn:aws:ecr:*:111111111111:repository/*"}]}"#;

fn c(
    name: &'static str,
    doc: &'static str,
    who: Who,
    action: &'static str,
    identity: &'static [&'static str],
    resource_policies: &'static [&'static str],
    expect: Expect,
) -> Case {
    Case {
        name,
        doc,
        who,
        action,
        resource: REPO,
        identity,
        resource_policies,
        setup: plain,
        expect,
    }
}

fn with(mut case: Case, setup: Setup) -> Case {
    case.setup = setup;
    case
}

fn on(mut case: Case, resource: &'static str) -> Case {
    case.resource = resource;
    case
}

use Expect::{Allow, Deny, Implicit};
use Missing::{Neither, NoIdentityPolicy, NoResourcePolicy};
use PolicyKind::{Identity as Id, Resource as Res};

fn id_policy(action: &'static str) -> &'static str {
    Box::leak(
        format!(
            r#"{{"Version":"2012-10-17","Statement":[{{"Effect":"Allow","Action":"{action}","Resource":"*"}}]}}"#
        )
        .into_boxed_str(),
    )
}

fn one(s: &'static str) -> &'static [&'static str] {
    Box::leak(vec![s].into_boxed_slice())
}

// ---- wildcards, Action / Resource ----------------------------------------------------

#[test]
fn action_and_resource_matching() {
    check(&[
        c(
            "ecr:* allows BatchGetImage",
            "IAM JSON policy elements: Action",
            Who::Alice,
            PULL,
            one(id_policy("ecr:*")),
            &[],
            Allow(None),
        ),
        c(
            "ecr:Batch* allows BatchGetImage",
            "IAM JSON policy elements: Action (wildcards)",
            Who::Alice,
            PULL,
            one(id_policy("ecr:Batch*")),
            &[],
            Allow(None),
        ),
        c(
            "ecr:Batch* does not allow PutImage",
            "IAM JSON policy elements: Action (wildcards)",
            Who::Alice,
            "ecr:PutImage",
            one(id_policy("ecr:Batch*")),
            &[],
            Implicit(Neither),
        ),
        c(
            "? matches one character",
            "IAM JSON policy elements: Action (wildcards)",
            Who::Alice,
            "ecr:GetDownloadUrlForLayer",
            one(id_policy("ecr:Get?ownloadUrlForLayer")),
            &[],
            Allow(None),
        ),
        c(
            "? needs exactly one character",
            "IAM JSON policy elements: Action (wildcards)",
            Who::Alice,
            "ecr:GetownloadUrlForLayer",
            one(id_policy("ecr:Get?ownloadUrlForLayer")),
            &[],
            Implicit(Neither),
        ),
        c(
            "actions are case-insensitive",
            "IAM JSON policy elements: Action (\"action names are case insensitive\")",
            Who::Alice,
            PULL,
            one(id_policy("ECR:batchgetimage")),
            &[],
            Allow(None),
        ),
        c(
            "* alone is every action",
            "IAM JSON policy elements: Action",
            Who::Alice,
            "ecr:DeleteRepository",
            one(id_policy("*")),
            &[],
            Allow(None),
        ),
        c(
            "resource wildcard per segment",
            "IAM JSON policy elements: Resource (wildcards within ARN segments)",
            Who::Alice,
            PULL,
            one(
                r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"ecr:*","Resource":"arn:aws:ecr:*:111111111111:repository/team/*"}]}"#,
            ),
            &[],
            Allow(None),
        ),
        c(
            "resources are case-sensitive",
            "IAM identifiers: ARNs are case-sensitive",
            Who::Alice,
            PULL,
            one(
                r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"ecr:*","Resource":"arn:aws:ecr:*:111111111111:repository/Team/*"}]}"#,
            ),
            &[],
            Implicit(Neither),
        ),
        c(
            "resource ? wildcard",
            "IAM JSON policy elements: Resource",
            Who::Alice,
            PULL,
            one(
                r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"ecr:*","Resource":"arn:aws:ecr:us-east-1:111111111111:repository/team/ap?"}]}"#,
            ),
            &[],
            Allow(None),
        ),
        c(
            "resource of another account",
            "IAM JSON policy elements: Resource",
            Who::Alice,
            PULL,
            one(
                r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"ecr:*","Resource":"arn:aws:ecr:*:999999999999:repository/*"}]}"#,
            ),
            &[],
            Implicit(Neither),
        ),
        c(
            "NotAction allows everything else",
            "IAM JSON policy elements: NotAction (with Allow)",
            Who::Alice,
            PULL,
            one(
                r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","NotAction":"ecr:Delete*","Resource":"*"}]}"#,
            ),
            &[],
            Allow(None),
        ),
        c(
            "NotAction excludes the listed actions",
            "IAM JSON policy elements: NotAction (with Allow)",
            Who::Alice,
            "ecr:DeleteRepository",
            one(
                r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","NotAction":"ecr:Delete*","Resource":"*"}]}"#,
            ),
            &[],
            Implicit(Neither),
        ),
        c(
            "Deny with NotAction denies all but the listed",
            "IAM JSON policy elements: NotAction (with Deny)",
            Who::Alice,
            "ecr:PutImage",
            &[
                ADMIN,
                r#"{"Version":"2012-10-17","Statement":[{"Sid":"ReadOnly","Effect":"Deny","NotAction":["ecr:BatchGetImage","ecr:Describe*"],"Resource":"*"}]}"#,
            ],
            &[],
            Deny(Id, Some("ReadOnly")),
        ),
        c(
            "NotResource allows other resources",
            "IAM JSON policy elements: NotResource",
            Who::Alice,
            PULL,
            one(
                r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"ecr:*","NotResource":"arn:aws:ecr:*:111111111111:repository/secret/*"}]}"#,
            ),
            &[],
            Allow(None),
        ),
        c(
            "NotResource excludes the listed resources",
            "IAM JSON policy elements: NotResource",
            Who::Alice,
            PULL,
            one(
                r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"ecr:*","NotResource":"arn:aws:ecr:*:111111111111:repository/team/*"}]}"#,
            ),
            &[],
            Implicit(Neither),
        ),
        c(
            "resource policy without Resource covers its repository",
            "ECR User Guide, repository policy examples (no Resource element)",
            Who::Bob,
            PULL,
            &[],
            one(
                r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"AWS":"arn:aws:iam::111111111111:user/bob"},"Action":"ecr:BatchGetImage"}]}"#,
            ),
            Allow(None),
        ),
    ]);
}

// ---- conditions -----------------------------------------------------------------------

const TAG_WEB: &str = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"ecr:*","Resource":"*",
  "Condition":{"StringEquals":{"aws:PrincipalTag/team":"web"}}}]}"#;

#[test]
fn string_conditions() {
    check(&[
        c(
            "StringEquals on a principal tag",
            "Condition operators: String (aws:PrincipalTag example)",
            Who::Alice,
            PULL,
            one(TAG_WEB),
            &[],
            Allow(None),
        ),
        c(
            "StringEquals, key absent: false",
            "Condition operators (key not present: condition false)",
            Who::Bob,
            PULL,
            one(TAG_WEB),
            &[],
            Implicit(Neither),
        ),
        c(
            "condition keys are case-insensitive",
            "Policy variables: \"Key names are case-insensitive\"",
            Who::Alice,
            PULL,
            one(
                r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"ecr:*","Resource":"*","Condition":{"StringEquals":{"AWS:PRINCIPALTAG/TEAM":"web"}}}]}"#,
            ),
            &[],
            Allow(None),
        ),
        c(
            "StringEquals values are case-sensitive",
            "Condition operators: StringEquals (case-sensitive)",
            Who::Alice,
            PULL,
            one(
                r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"ecr:*","Resource":"*","Condition":{"StringEquals":{"aws:PrincipalTag/team":"WEB"}}}]}"#,
            ),
            &[],
            Implicit(Neither),
        ),
        c(
            "StringEqualsIgnoreCase",
            "Condition operators: StringEqualsIgnoreCase",
            Who::Alice,
            PULL,
            one(
                r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"ecr:*","Resource":"*","Condition":{"StringEqualsIgnoreCase":{"aws:PrincipalTag/team":"WEB"}}}]}"#,
            ),
            &[],
            Allow(None),
        ),
        c(
            "several values are OR",
            "Conditions with multiple context keys or values (values: OR)",
            Who::Alice,
            PULL,
            one(
                r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"ecr:*","Resource":"*","Condition":{"StringEquals":{"aws:PrincipalTag/team":["ops","web"]}}}]}"#,
            ),
            &[],
            Allow(None),
        ),
        c(
            "several keys are AND",
            "Conditions with multiple context keys or values (keys: AND)",
            Who::Alice,
            PULL,
            one(
                r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"ecr:*","Resource":"*","Condition":{"StringEquals":{"aws:PrincipalTag/team":"web","aws:username":"bob"}}}]}"#,
            ),
            &[],
            Implicit(Neither),
        ),
        c(
            "several operators are AND",
            "Conditions with multiple context keys or values (operators: AND)",
            Who::Alice,
            PULL,
            one(
                r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"ecr:*","Resource":"*","Condition":{"StringEquals":{"aws:PrincipalTag/team":"web"},"Bool":{"aws:SecureTransport":"true"}}}]}"#,
            ),
            &[],
            Implicit(Neither),
        ),
        c(
            "StringNotEquals is NOR over values",
            "Conditions with multiple context keys or values (negated operators: NOR)",
            Who::Alice,
            PULL,
            &[
                ADMIN,
                r#"{"Version":"2012-10-17","Statement":[{"Sid":"OnlyOpsOrWeb","Effect":"Deny","Action":"ecr:*","Resource":"*","Condition":{"StringNotEquals":{"aws:PrincipalTag/team":["ops","web"]}}}]}"#,
            ],
            &[],
            Allow(None),
        ),
        c(
            "StringNotEquals, key absent: true",
            "Condition operators (negated operator, key absent: condition true)",
            Who::Bob,
            PULL,
            &[
                ADMIN,
                r#"{"Version":"2012-10-17","Statement":[{"Sid":"OnlyWeb","Effect":"Deny","Action":"ecr:*","Resource":"*","Condition":{"StringNotEquals":{"aws:PrincipalTag/team":"web"}}}]}"#,
            ],
            &[],
            Deny(Id, Some("OnlyWeb")),
        ),
        with(
            c(
                "StringLike with wildcard on a request key",
                "Condition operators: StringLike",
                Who::Alice,
                PULL,
                one(
                    r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"ecr:*","Resource":"*","Condition":{"StringLike":{"ecr:ResourceTag/env":"prod-*"}}}]}"#,
                ),
                &[],
                Allow(None),
            ),
            |c| c.with_value("ecr:ResourceTag/env", vec!["prod-eu".into()]),
        ),
        with(
            c(
                "StringNotLike",
                "Condition operators: StringNotLike",
                Who::Alice,
                PULL,
                &[
                    ADMIN,
                    r#"{"Version":"2012-10-17","Statement":[{"Sid":"NoProd","Effect":"Deny","Action":"ecr:PutImage","Resource":"*","Condition":{"StringNotLike":{"ecr:ResourceTag/env":"dev-*"}}}]}"#,
                ],
                &[],
                Allow(None),
            ),
            |c| c.with_value("ecr:ResourceTag/env", vec!["prod-eu".into()]),
        ),
        c(
            "StringEqualsIfExists, key absent: true",
            "Condition operators: ...IfExists",
            Who::Bob,
            PULL,
            one(
                r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"ecr:*","Resource":"*","Condition":{"StringEqualsIfExists":{"aws:PrincipalTag/team":"web"}}}]}"#,
            ),
            &[],
            Allow(None),
        ),
        c(
            "StringEqualsIfExists, key present: compared",
            "Condition operators: ...IfExists",
            Who::Alice,
            PULL,
            one(
                r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"ecr:*","Resource":"*","Condition":{"StringEqualsIfExists":{"aws:PrincipalTag/team":"ops"}}}]}"#,
            ),
            &[],
            Implicit(Neither),
        ),
        c(
            "aws:PrincipalType",
            "AWS global condition context keys: aws:PrincipalType",
            Who::Builder,
            PULL,
            one(
                r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"ecr:*","Resource":"*","Condition":{"StringEquals":{"aws:PrincipalType":"AssumedRole"}}}]}"#,
            ),
            &[],
            Allow(None),
        ),
        c(
            "ArnLike on aws:PrincipalArn (a session's is its role ARN)",
            "Condition operators: ARN; global keys: aws:PrincipalArn",
            Who::EcsTask,
            PULL,
            one(ECS_IDENTITY_PULL),
            one(
                r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":"*","Action":"ecr:BatchGetImage","Condition":{"ArnLike":{"aws:PrincipalArn":"arn:aws:iam::222222222222:role/ECS*"}}}]}"#,
            ),
            Allow(None),
        ),
        c(
            "ArnNotEquals",
            "Condition operators: ARN",
            Who::EcsTask,
            PULL,
            one(ECS_IDENTITY_PULL),
            one(
                r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":"*","Action":"ecr:BatchGetImage","Condition":{"ArnNotEquals":{"aws:PrincipalArn":"arn:aws:iam::222222222222:role/ECSTaskExecutionRole"}}}]}"#,
            ),
            Implicit(NoResourcePolicy),
        ),
        c(
            "aws:PrincipalAccount",
            "AWS global condition context keys: aws:PrincipalAccount",
            Who::Mallory,
            PULL,
            one(ADMIN),
            one(
                r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":"*","Action":"ecr:BatchGetImage","Condition":{"StringEquals":{"aws:PrincipalAccount":["222222222222","333333333333"]}}}]}"#,
            ),
            Allow(None),
        ),
    ]);
}

#[test]
fn numeric_date_bool_ip_null_conditions() {
    check(&[
        with(
            c(
                "NumericLessThan",
                "Condition operators: Numeric",
                Who::Alice,
                PULL,
                one(
                    r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"ecr:*","Resource":"*","Condition":{"NumericLessThan":{"ecr:imageCount":"10"}}}]}"#,
                ),
                &[],
                Allow(None),
            ),
            |c| c.with_value("ecr:imageCount", vec!["5".into()]),
        ),
        with(
            c(
                "NumericGreaterThanEquals false",
                "Condition operators: Numeric",
                Who::Alice,
                PULL,
                one(
                    r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"ecr:*","Resource":"*","Condition":{"NumericGreaterThanEquals":{"ecr:imageCount":6}}}]}"#,
                ),
                &[],
                Implicit(Neither),
            ),
            |c| c.with_value("ecr:imageCount", vec!["5".into()]),
        ),
        with(
            c(
                "NumericNotEquals, non-number request value matches nothing",
                "Condition operators: Numeric",
                Who::Alice,
                PULL,
                one(
                    r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"ecr:*","Resource":"*","Condition":{"NumericEquals":{"ecr:imageCount":"5"}}}]}"#,
                ),
                &[],
                Implicit(Neither),
            ),
            |c| c.with_value("ecr:imageCount", vec!["five".into()]),
        ),
        c(
            "DateLessThan aws:CurrentTime (ISO 8601)",
            "Condition operators: Date (aws:CurrentTime example)",
            Who::Alice,
            PULL,
            one(
                r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"ecr:*","Resource":"*","Condition":{"DateLessThan":{"aws:CurrentTime":"2025-01-01T00:00:00Z"}}}]}"#,
            ),
            &[],
            Allow(None),
        ),
        c(
            "DateGreaterThan aws:CurrentTime",
            "Condition operators: Date",
            Who::Alice,
            PULL,
            one(
                r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"ecr:*","Resource":"*","Condition":{"DateGreaterThan":{"aws:CurrentTime":"2025-01-01T00:00:00Z"}}}]}"#,
            ),
            &[],
            Implicit(Neither),
        ),
        c(
            "Date window with epoch seconds",
            "Condition operators: Date (epoch values)",
            Who::Alice,
            PULL,
            one(
                r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"ecr:*","Resource":"*","Condition":{"DateGreaterThanEquals":{"aws:EpochTime":"1704067200"},"DateLessThan":{"aws:CurrentTime":"1735689600"}}}]}"#,
            ),
            &[],
            Allow(None),
        ),
        c(
            "Bool aws:SecureTransport false denies plain HTTP",
            "Condition operators: Boolean (aws:SecureTransport example)",
            Who::Alice,
            PULL,
            &[
                ADMIN,
                r#"{"Version":"2012-10-17","Statement":[{"Sid":"TlsOnly","Effect":"Deny","Action":"*","Resource":"*","Condition":{"Bool":{"aws:SecureTransport":"false"}}}]}"#,
            ],
            &[],
            Deny(Id, Some("TlsOnly")),
        ),
        with(
            c(
                "Bool aws:SecureTransport over TLS",
                "Condition operators: Boolean",
                Who::Alice,
                PULL,
                &[
                    ADMIN,
                    r#"{"Version":"2012-10-17","Statement":[{"Sid":"TlsOnly","Effect":"Deny","Action":"*","Resource":"*","Condition":{"Bool":{"aws:SecureTransport":false}}}]}"#,
                ],
                &[],
                Allow(Some("Admin")),
            ),
            |c| c.with_secure_transport(true),
        ),
        with(
            c(
                "IpAddress IPv4 CIDR inside",
                "Condition operators: IP address (203.0.113.0/24 example)",
                Who::Alice,
                PULL,
                one(
                    r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"ecr:*","Resource":"*","Condition":{"IpAddress":{"aws:SourceIp":"203.0.113.0/24"}}}]}"#,
                ),
                &[],
                Allow(None),
            ),
            |c| c.with_source_ip("203.0.113.7".parse::<IpAddr>().unwrap()),
        ),
        with(
            c(
                "IpAddress IPv4 CIDR outside",
                "Condition operators: IP address",
                Who::Alice,
                PULL,
                one(
                    r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"ecr:*","Resource":"*","Condition":{"IpAddress":{"aws:SourceIp":"203.0.113.0/24"}}}]}"#,
                ),
                &[],
                Implicit(Neither),
            ),
            |c| c.with_source_ip("198.51.100.1".parse::<IpAddr>().unwrap()),
        ),
        with(
            c(
                "IpAddress IPv6 CIDR",
                "Condition operators: IP address (2001:DB8:1234:5678::/64 example)",
                Who::Alice,
                PULL,
                one(
                    r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"ecr:*","Resource":"*","Condition":{"IpAddress":{"aws:SourceIp":["203.0.113.0/24","2001:DB8:1234:5678::/64"]}}}]}"#,
                ),
                &[],
                Allow(None),
            ),
            |c| c.with_source_ip("2001:db8:1234:5678::1".parse::<IpAddr>().unwrap()),
        ),
        with(
            c(
                "IPv4 address against an IPv6 block",
                "Condition operators: IP address",
                Who::Alice,
                PULL,
                one(
                    r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"ecr:*","Resource":"*","Condition":{"IpAddress":{"aws:SourceIp":"2001:DB8:1234:5678::/64"}}}]}"#,
                ),
                &[],
                Implicit(Neither),
            ),
            |c| c.with_source_ip("203.0.113.7".parse::<IpAddr>().unwrap()),
        ),
        c(
            "NotIpAddress, aws:SourceIp absent: true, so the Deny applies",
            "Condition operators (negated operator, key absent)",
            Who::Alice,
            PULL,
            &[
                ADMIN,
                r#"{"Version":"2012-10-17","Statement":[{"Sid":"Office","Effect":"Deny","Action":"*","Resource":"*","Condition":{"NotIpAddress":{"aws:SourceIp":"203.0.113.0/24"}}}]}"#,
            ],
            &[],
            Deny(Id, Some("Office")),
        ),
        with(
            c(
                "NotIpAddress, inside the block",
                "Condition operators: IP address (Deny outside range example)",
                Who::Alice,
                PULL,
                &[
                    ADMIN,
                    r#"{"Version":"2012-10-17","Statement":[{"Sid":"Office","Effect":"Deny","Action":"*","Resource":"*","Condition":{"NotIpAddress":{"aws:SourceIp":"203.0.113.0/24"}}}]}"#,
                ],
                &[],
                Allow(None),
            ),
            |c| c.with_source_ip("203.0.113.9".parse::<IpAddr>().unwrap()),
        ),
        c(
            "Null true: key absent",
            "Condition operators: Condition operator to check existence of condition keys",
            Who::Builder,
            PULL,
            one(
                r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"ecr:*","Resource":"*","Condition":{"Null":{"aws:username":"true"}}}]}"#,
            ),
            &[],
            Allow(None),
        ),
        c(
            "Null false: key present required",
            "Condition operators: Null",
            Who::Builder,
            PULL,
            one(
                r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"ecr:*","Resource":"*","Condition":{"Null":{"aws:username":"false"}}}]}"#,
            ),
            &[],
            Implicit(Neither),
        ),
        with(
            c(
                "DateLessThan with a fixed clock",
                "Condition operators: Date",
                Who::Alice,
                PULL,
                one(
                    r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"ecr:*","Resource":"*","Condition":{"DateLessThan":{"aws:CurrentTime":"2020-01-01"}}}]}"#,
                ),
                &[],
                Allow(None),
            ),
            |c| c.with_current_time(time::macros::datetime!(2019-12-31 23:59:59 UTC)),
        ),
    ]);
}

const ANY_TAG_KEY: &str = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"ecr:*","Resource":"*",
  "Condition":{"ForAnyValue:StringEquals":{"aws:TagKeys":["team","env"]}}}]}"#;
const ALL_TAG_KEYS: &str = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"ecr:*","Resource":"*",
  "Condition":{"ForAllValues:StringEquals":{"aws:TagKeys":["team","env"]}}}]}"#;

#[test]
fn set_operators() {
    check(&[
        with(
            c(
                "ForAnyValue: one request value matches",
                "Set operators for multivalued context keys: ForAnyValue",
                Who::Alice,
                "ecr:TagResource",
                one(ANY_TAG_KEY),
                &[],
                Allow(None),
            ),
            |c| c.with_value("aws:TagKeys", vec!["env".into(), "cost".into()]),
        ),
        with(
            c(
                "ForAnyValue: none matches",
                "Set operators: ForAnyValue",
                Who::Alice,
                "ecr:TagResource",
                one(ANY_TAG_KEY),
                &[],
                Implicit(Neither),
            ),
            |c| c.with_value("aws:TagKeys", vec!["cost".into()]),
        ),
        with(
            c(
                "ForAnyValue: empty key is false",
                "Set operators: ForAnyValue (no values: false)",
                Who::Alice,
                "ecr:TagResource",
                one(ANY_TAG_KEY),
                &[],
                Implicit(Neither),
            ),
            |c| c.with_value("aws:TagKeys", vec![]),
        ),
        c(
            "ForAnyValue: missing key is false",
            "Set operators: ForAnyValue (key missing: false)",
            Who::Alice,
            "ecr:TagResource",
            one(ANY_TAG_KEY),
            &[],
            Implicit(Neither),
        ),
        with(
            c(
                "ForAllValues: every request value matches",
                "Set operators for multivalued context keys: ForAllValues",
                Who::Alice,
                "ecr:TagResource",
                one(ALL_TAG_KEYS),
                &[],
                Allow(None),
            ),
            |c| c.with_value("aws:TagKeys", vec!["env".into(), "team".into()]),
        ),
        with(
            c(
                "ForAllValues: one request value outside the set",
                "Set operators: ForAllValues",
                Who::Alice,
                "ecr:TagResource",
                one(ALL_TAG_KEYS),
                &[],
                Implicit(Neither),
            ),
            |c| c.with_value("aws:TagKeys", vec!["env".into(), "cost".into()]),
        ),
        with(
            c(
                "ForAllValues: empty key is true",
                "Set operators: ForAllValues (no values: true)",
                Who::Alice,
                "ecr:TagResource",
                one(ALL_TAG_KEYS),
                &[],
                Allow(None),
            ),
            |c| c.with_value("aws:TagKeys", vec![]),
        ),
        c(
            "ForAllValues: missing key is true",
            "Set operators: ForAllValues (\"also returns true if there are no context keys\")",
            Who::Alice,
            "ecr:TagResource",
            one(ALL_TAG_KEYS),
            &[],
            Allow(None),
        ),
        with(
            c(
                "ForAnyValue:StringEquals in a Deny catches a forbidden key",
                "Multivalued context key examples: Deny with ForAnyValue",
                Who::Alice,
                "ecr:TagResource",
                &[
                    ADMIN,
                    r#"{"Version":"2012-10-17","Statement":[{"Sid":"NoOwnerTag","Effect":"Deny","Action":"ecr:TagResource","Resource":"*","Condition":{"ForAnyValue:StringEquals":{"aws:TagKeys":"owner"}}}]}"#,
                ],
                &[],
                Deny(Id, Some("NoOwnerTag")),
            ),
            |c| c.with_value("aws:TagKeys", vec!["env".into(), "owner".into()]),
        ),
        with(
            c(
                "ForAllValues:StringLike with wildcards",
                "Multivalued context key examples: ForAllValues with StringLike",
                Who::Alice,
                "ecr:TagResource",
                one(
                    r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"ecr:*","Resource":"*","Condition":{"ForAllValues:StringLike":{"aws:TagKeys":"Created*"}}}]}"#,
                ),
                &[],
                Allow(None),
            ),
            |c| c.with_value("aws:TagKeys", vec!["CreatedBy".into(), "CreatedAt".into()]),
        ),
        with(
            c(
                "ForAllValues:StringNotEquals: no request value in the set",
                "Conditions with multiple context keys or values (negated matching)",
                Who::Alice,
                "ecr:TagResource",
                one(
                    r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"ecr:*","Resource":"*","Condition":{"ForAllValues:StringNotEquals":{"aws:TagKeys":["owner","admin"]}}}]}"#,
                ),
                &[],
                Implicit(Neither),
            ),
            |c| c.with_value("aws:TagKeys", vec!["env".into(), "admin".into()]),
        ),
    ]);
}

// ---- policy variables -------------------------------------------------------------------

const HOME_REPO: &str = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"ecr:*",
  "Resource":"arn:aws:ecr:*:111111111111:repository/${aws:username}/*"}]}"#;

#[test]
fn policy_variables() {
    check(&[
        on(
            c(
                "${aws:username} in Resource: own repository",
                "IAM policy elements: Variables (Resource element)",
                Who::Alice,
                PULL,
                one(HOME_REPO),
                &[],
                Allow(None),
            ),
            ALICE_REPO,
        ),
        on(
            c(
                "${aws:username} in Resource: someone else's",
                "IAM policy elements: Variables (Resource element)",
                Who::Alice,
                PULL,
                one(HOME_REPO),
                &[],
                Implicit(Neither),
            ),
            BOB_REPO,
        ),
        on(
            c(
                "variable without a value: statement does not apply",
                "Policy variables: principal key values (\"not present\")",
                Who::Builder,
                PULL,
                one(HOME_REPO),
                &[],
                Implicit(Neither),
            ),
            ALICE_REPO,
        ),
        on(
            c(
                "Version 2008-10-17: variables are literal",
                "Policy variables: Version note",
                Who::Alice,
                PULL,
                one(
                    r#"{"Version":"2008-10-17","Statement":[{"Effect":"Allow","Action":"ecr:*","Resource":"arn:aws:ecr:*:111111111111:repository/${aws:username}/*"}]}"#,
                ),
                &[],
                Implicit(Neither),
            ),
            ALICE_REPO,
        ),
        on(
            c(
                "default value",
                "Policy variables: Specifying default values",
                Who::Builder,
                PULL,
                one(
                    r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"ecr:*","Resource":"arn:aws:ecr:*:111111111111:repository/${aws:username, 'bob'}/*"}]}"#,
                ),
                &[],
                Allow(None),
            ),
            BOB_REPO,
        ),
        with(
            c(
                "variable in a condition value",
                "Policy variables: Condition element",
                Who::Alice,
                PULL,
                one(
                    r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"ecr:*","Resource":"*","Condition":{"StringEquals":{"ecr:ResourceTag/owner":"${aws:username}"}}}]}"#,
                ),
                &[],
                Allow(None),
            ),
            |c| c.with_value("ecr:ResourceTag/owner", vec!["alice".into()]),
        ),
        with(
            c(
                "principal tag as variable",
                "Policy variables: Tags as policy variables",
                Who::Alice,
                PULL,
                one(
                    r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"ecr:*","Resource":"*","Condition":{"StringEquals":{"ecr:ResourceTag/team":"${aws:PrincipalTag/team}"}}}]}"#,
                ),
                &[],
                Allow(None),
            ),
            |c| c.with_value("ecr:ResourceTag/team", vec!["web".into()]),
        ),
    ]);
}

// ---- explicit deny, same account, cross account, service, anonymous ---------------------

const REPO_DENY_ALL_PUSH: &str = r#"{"Version":"2012-10-17","Statement":[
  {"Sid":"NoPush","Effect":"Deny","Principal":"*","Action":["ecr:PutImage","ecr:InitiateLayerUpload"]}]}"#;
const REPO_ALLOWS_BOB: &str = r#"{"Version":"2012-10-17","Statement":[
  {"Sid":"Bob","Effect":"Allow","Principal":{"AWS":"arn:aws:iam::111111111111:user/bob"},"Action":"ecr:*"}]}"#;
const REPO_ALLOWS_OWN_ACCOUNT: &str = r#"{"Version":"2012-10-17","Statement":[
  {"Sid":"Account","Effect":"Allow","Principal":{"AWS":"arn:aws:iam::111111111111:root"},"Action":"ecr:*"}]}"#;

#[test]
fn explicit_deny_wins() {
    check(&[
        c(
            "identity Deny beats identity Allow",
            "The difference between explicit and implicit denies",
            Who::Alice,
            "ecr:DeleteRepository",
            &[
                ADMIN,
                r#"{"Version":"2012-10-17","Statement":[{"Sid":"NoDelete","Effect":"Deny","Action":"ecr:Delete*","Resource":"*"}]}"#,
            ],
            &[],
            Deny(Id, Some("NoDelete")),
        ),
        c(
            "resource Deny beats identity Allow",
            "Policy evaluation logic: deny evaluation",
            Who::Alice,
            "ecr:PutImage",
            one(ADMIN),
            one(REPO_DENY_ALL_PUSH),
            Deny(Res, Some("NoPush")),
        ),
        c(
            "identity Deny beats resource Allow",
            "Policy evaluation logic: deny evaluation",
            Who::Bob,
            "ecr:PutImage",
            one(
                r#"{"Version":"2012-10-17","Statement":[{"Sid":"NoPush","Effect":"Deny","Action":"ecr:PutImage","Resource":"*"}]}"#,
            ),
            one(REPO_ALLOWS_BOB),
            Deny(Id, Some("NoPush")),
        ),
        c(
            "Deny for another action does not apply",
            "Policy evaluation logic",
            Who::Alice,
            PULL,
            one(ADMIN),
            one(REPO_DENY_ALL_PUSH),
            Allow(Some("Admin")),
        ),
        c(
            "resource Deny applies to service principals",
            "Policy evaluation logic: deny evaluation",
            Who::EcsService,
            "ecr:PutImage",
            &[],
            &[
                r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"Service":"ecs-tasks.amazonaws.com"},"Action":"ecr:*"}]}"#,
                REPO_DENY_ALL_PUSH,
            ],
            Deny(Res, Some("NoPush")),
        ),
    ]);
}

#[test]
fn same_account_is_or() {
    check(&[
        c(
            "identity policy alone allows",
            "Policy evaluation for requests within a single account",
            Who::Alice,
            PULL,
            one(ADMIN),
            &[],
            Allow(Some("Admin")),
        ),
        c(
            "resource policy naming the user alone allows",
            "Policy evaluation logic: resource-based policies (IAM user ARN)",
            Who::Bob,
            PULL,
            &[],
            one(REPO_ALLOWS_BOB),
            Allow(Some("Bob")),
        ),
        c(
            "resource policy naming the role allows its sessions",
            "Policy evaluation logic: resource-based policies (IAM role ARN)",
            Who::Builder,
            PULL,
            &[],
            one(
                r#"{"Version":"2012-10-17","Statement":[{"Sid":"Role","Effect":"Allow","Principal":{"AWS":"arn:aws:iam::111111111111:role/Builder"},"Action":"ecr:*"}]}"#,
            ),
            Allow(Some("Role")),
        ),
        c(
            "resource policy naming the session allows it",
            "Policy evaluation logic: resource-based policies (role session ARN)",
            Who::Builder,
            PULL,
            &[],
            one(
                r#"{"Version":"2012-10-17","Statement":[{"Sid":"Sess","Effect":"Allow","Principal":{"AWS":"arn:aws:sts::111111111111:assumed-role/Builder/ci"},"Action":"ecr:*"}]}"#,
            ),
            Allow(Some("Sess")),
        ),
        c(
            "resource policy naming only the account delegates: not enough alone",
            "Principal: AWS account principals (\"delegates authority to the account\")",
            Who::Bob,
            PULL,
            &[],
            one(REPO_ALLOWS_OWN_ACCOUNT),
            Implicit(NoIdentityPolicy),
        ),
        c(
            "account delegation plus identity allow",
            "Principal: AWS account principals",
            Who::Alice,
            PULL,
            one(ADMIN),
            one(REPO_ALLOWS_OWN_ACCOUNT),
            Allow(Some("Admin")),
        ),
        c(
            "resource policy for someone else, no identity",
            "Policy evaluation for requests within a single account",
            Who::Alice,
            PULL,
            &[],
            one(REPO_ALLOWS_BOB),
            Implicit(Neither),
        ),
        c(
            "Principal * allows same-account users by itself",
            "Principal: All principals",
            Who::Bob,
            PULL,
            &[],
            one(
                r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":"*","Action":"ecr:BatchGetImage"}]}"#,
            ),
            Allow(None),
        ),
    ]);
}

#[test]
fn cross_account_is_and() {
    check(&[
        c(
            "ECS role: repository policy names it and identity allows",
            "Cross-account policy evaluation logic",
            Who::EcsTask,
            PULL,
            one(ECS_IDENTITY_PULL),
            one(REPO_ALLOWS_ECS_ROLE),
            Allow(Some("AllowPull")),
        ),
        c(
            "ECS role: repository policy only",
            "Cross-account policy evaluation logic (identity must allow)",
            Who::EcsTask,
            PULL,
            &[],
            one(REPO_ALLOWS_ECS_ROLE),
            Implicit(NoIdentityPolicy),
        ),
        c(
            "ECS role: identity policy only",
            "Cross-account policy evaluation logic (resource must allow)",
            Who::EcsTask,
            PULL,
            one(ECS_IDENTITY_PULL),
            &[],
            Implicit(NoResourcePolicy),
        ),
        c(
            "ECS role: repository names its account",
            "Cross-account policy evaluation logic (specify the entire account)",
            Who::EcsTask,
            PULL,
            one(ECS_IDENTITY_PULL),
            one(REPO_ALLOWS_ACCOUNT_222),
            Allow(Some("AllowAccount")),
        ),
        c(
            "ECS role: repository names another role",
            "Cross-account policy evaluation logic",
            Who::EcsTask,
            PULL,
            one(ECS_IDENTITY_PULL),
            one(
                r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"AWS":"arn:aws:iam::222222222222:role/Other"},"Action":"ecr:*"}]}"#,
            ),
            Implicit(NoResourcePolicy),
        ),
        c(
            "ECS role: action outside both grants",
            "Cross-account policy evaluation logic",
            Who::EcsTask,
            "ecr:PutImage",
            one(ECS_IDENTITY_PULL),
            one(REPO_ALLOWS_ECS_ROLE),
            Implicit(Neither),
        ),
        c(
            "another account's user with admin identity but no grant",
            "Cross-account policy evaluation logic",
            Who::Mallory,
            PULL,
            one(ADMIN),
            one(REPO_ALLOWS_ECS_ROLE),
            Implicit(NoResourcePolicy),
        ),
        c(
            "NotPrincipal Deny exempts a fully listed session",
            "NotPrincipal with Deny (IAM role example)",
            Who::EcsTask,
            PULL,
            one(ECS_IDENTITY_PULL),
            one(r#"{"Version":"2012-10-17","Statement":[
            {"Sid":"Open","Effect":"Allow","Principal":"*","Action":"ecr:BatchGetImage"},
            {"Sid":"OnlyEcs","Effect":"Deny","NotPrincipal":{"AWS":["arn:aws:sts::222222222222:assumed-role/ECSTaskExecutionRole/task-1","arn:aws:iam::222222222222:role/ECSTaskExecutionRole","arn:aws:iam::222222222222:root"]},"Action":"ecr:*"}]}"#),
            Allow(Some("Open")),
        ),
        c(
            "NotPrincipal Deny applies to everyone else",
            "NotPrincipal with Deny",
            Who::Mallory,
            PULL,
            one(ADMIN),
            one(r#"{"Version":"2012-10-17","Statement":[
            {"Sid":"Open","Effect":"Allow","Principal":"*","Action":"ecr:BatchGetImage"},
            {"Sid":"OnlyEcs","Effect":"Deny","NotPrincipal":{"AWS":["arn:aws:sts::222222222222:assumed-role/ECSTaskExecutionRole/task-1","arn:aws:iam::222222222222:role/ECSTaskExecutionRole","arn:aws:iam::222222222222:root"]},"Action":"ecr:*"}]}"#),
            Deny(Res, Some("OnlyEcs")),
        ),
        c(
            "NotPrincipal listing only the session ARN does not exempt it",
            "NotPrincipal with Deny (account and role must be listed too)",
            Who::EcsTask,
            PULL,
            one(ECS_IDENTITY_PULL),
            one(r#"{"Version":"2012-10-17","Statement":[
            {"Sid":"Open","Effect":"Allow","Principal":"*","Action":"ecr:BatchGetImage"},
            {"Sid":"OnlyEcs","Effect":"Deny","NotPrincipal":{"AWS":"arn:aws:sts::222222222222:assumed-role/ECSTaskExecutionRole/task-1"},"Action":"ecr:*"}]}"#),
            Deny(Res, Some("OnlyEcs")),
        ),
    ]);
}

const REPO_ALLOWS_ECS_SERVICE: &str = r#"{"Version":"2012-10-17","Statement":[
  {"Sid":"EcsPull","Effect":"Allow","Principal":{"Service":"ecs-tasks.amazonaws.com"},"Action":["ecr:BatchGetImage","ecr:GetDownloadUrlForLayer"]}]}"#;
const REPO_PUBLIC_PULL: &str = r#"{"Version":"2012-10-17","Statement":[
  {"Sid":"Public","Effect":"Allow","Principal":"*","Action":["ecr:BatchGetImage","ecr:GetDownloadUrlForLayer"]}]}"#;

#[test]
fn service_and_anonymous_principals() {
    check(&[
        c(
            "service principal named by Service",
            "Principal: AWS service principals",
            Who::EcsService,
            PULL,
            &[],
            one(REPO_ALLOWS_ECS_SERVICE),
            Allow(Some("EcsPull")),
        ),
        c(
            "service principal, action not granted",
            "Principal: AWS service principals",
            Who::EcsService,
            "ecr:PutImage",
            &[],
            one(REPO_ALLOWS_ECS_SERVICE),
            Implicit(NoResourcePolicy),
        ),
        c(
            "service principal: identity policies cannot allow",
            "Policy evaluation logic (services have no identity policies)",
            Who::EcsService,
            PULL,
            one(ADMIN),
            &[],
            Implicit(NoResourcePolicy),
        ),
        c(
            "service principal not matched by an account principal",
            "Principal: AWS account principals",
            Who::EcsService,
            PULL,
            &[],
            one(REPO_ALLOWS_OWN_ACCOUNT),
            Implicit(NoResourcePolicy),
        ),
        c(
            "anonymous with Principal *",
            "Principal: All principals (anonymous users)",
            Who::Anonymous,
            PULL,
            &[],
            one(REPO_PUBLIC_PULL),
            Allow(Some("Public")),
        ),
        c(
            "anonymous with {\"AWS\": \"*\"}",
            "Principal: All principals",
            Who::Anonymous,
            PULL,
            &[],
            one(
                r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"AWS":"*"},"Action":"ecr:BatchGetImage"}]}"#,
            ),
            Allow(None),
        ),
        c(
            "anonymous not matched by an account principal",
            "Principal: AWS account principals",
            Who::Anonymous,
            PULL,
            &[],
            one(REPO_ALLOWS_OWN_ACCOUNT),
            Implicit(NoResourcePolicy),
        ),
        c(
            "anonymous push not granted by public pull",
            "Principal: All principals",
            Who::Anonymous,
            "ecr:PutImage",
            &[],
            one(REPO_PUBLIC_PULL),
            Implicit(NoResourcePolicy),
        ),
    ]);
}

// ---- denial messages ------------------------------------------------------------------

#[test]
fn denial_messages_follow_aws_wording() {
    // IAM User Guide, "Troubleshooting access denied error messages".
    let msg = |case: Case| {
        let p = principal(case.who);
        run(&case).denial_message(&p.arn(), case.action, case.resource)
    };
    assert_eq!(
        msg(c(
            "",
            "",
            Who::Alice,
            "ecr:PutImage",
            one(ADMIN),
            one(REPO_DENY_ALL_PUSH),
            Allow(None)
        ))
        .unwrap(),
        "User: arn:aws:iam::111111111111:user/alice is not authorized to perform: ecr:PutImage \
         on resource: arn:aws:ecr:us-east-1:111111111111:repository/team/app with an explicit \
         deny in a resource-based policy"
    );
    assert_eq!(
        msg(c("", "", Who::Alice, "ecr:DeleteRepository",
            &[ADMIN, r#"{"Version":"2012-10-17","Statement":[{"Effect":"Deny","Action":"ecr:Delete*","Resource":"*"}]}"#], &[], Allow(None))).unwrap(),
        "User: arn:aws:iam::111111111111:user/alice is not authorized to perform: \
         ecr:DeleteRepository on resource: arn:aws:ecr:us-east-1:111111111111:repository/team/app \
         with an explicit deny in an identity-based policy"
    );
    assert_eq!(
        msg(c(
            "",
            "",
            Who::EcsTask,
            PULL,
            &[],
            one(REPO_ALLOWS_ECS_ROLE),
            Allow(None)
        ))
        .unwrap(),
        "User: arn:aws:sts::222222222222:assumed-role/ECSTaskExecutionRole/task-1 is not \
         authorized to perform: ecr:BatchGetImage on resource: \
         arn:aws:ecr:us-east-1:111111111111:repository/team/app because no identity-based \
         policy allows the ecr:BatchGetImage action"
    );
    assert_eq!(
        msg(c(
            "",
            "",
            Who::EcsTask,
            PULL,
            one(ECS_IDENTITY_PULL),
            &[],
            Allow(None)
        ))
        .unwrap(),
        "User: arn:aws:sts::222222222222:assumed-role/ECSTaskExecutionRole/task-1 is not \
         authorized to perform: ecr:BatchGetImage on resource: \
         arn:aws:ecr:us-east-1:111111111111:repository/team/app because no resource-based \
         policy allows the ecr:BatchGetImage action"
    );
    // Neither allowed: same account names the identity side, cross account the resource side.
    assert!(msg(c("", "", Who::Bob, PULL, &[], &[], Allow(None)))
        .unwrap()
        .ends_with("because no identity-based policy allows the ecr:BatchGetImage action"));
    assert!(msg(c("", "", Who::Mallory, PULL, &[], &[], Allow(None)))
        .unwrap()
        .ends_with("because no resource-based policy allows the ecr:BatchGetImage action"));
    assert_eq!(
        msg(c("", "", Who::Alice, PULL, one(ADMIN), &[], Allow(None))),
        None
    );
}

// ---- grammar ------------------------------------------------------------------------------

fn parse_err(json: &str, kind: PolicyKind) -> String {
    match PolicyDocument::parse(json, kind) {
        Ok(_) => panic!("expected an error for {json}"),
        Err(e) => e.to_string(),
    }
}

#[test]
fn grammar_errors_name_statement_and_element() {
    // (source, policy, kind, expected message or prefix)
    let cases: &[(&str, &str, PolicyKind, &str)] = &[
        (
            "JSON policy grammar",
            r#"{"Statement": ["#,
            Id,
            "policy is not valid JSON: ",
        ),
        (
            "Version element",
            r#"{"Version":"2020-01-01","Statement":[{"Effect":"Allow","Action":"*","Resource":"*"}]}"#,
            Id,
            r#"Version must be "2012-10-17" or "2008-10-17""#,
        ),
        (
            "Effect element",
            r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"*","Resource":"*"},{"Sid":"AllowPull","Effect":"Permit","Action":"*","Resource":"*"}]}"#,
            Id,
            r#"Statement[1] (Sid "AllowPull"): Effect must be "Allow" or "Deny", got "Permit""#,
        ),
        (
            "Effect element",
            r#"{"Statement":[{"Action":"*","Resource":"*"}]}"#,
            Id,
            "Statement[0]: Effect is required",
        ),
        (
            "NotAction element",
            r#"{"Statement":[{"Effect":"Allow","Action":"*","NotAction":"ecr:*","Resource":"*"}]}"#,
            Id,
            "Statement[0]: Action and NotAction cannot both be present",
        ),
        (
            "Action element",
            r#"{"Statement":[{"Effect":"Allow","Resource":"*"}]}"#,
            Id,
            "Statement[0]: Action or NotAction is required",
        ),
        (
            "Action element (vendor prefix)",
            r#"{"Statement":[{"Effect":"Allow","Action":"BatchGetImage","Resource":"*"}]}"#,
            Id,
            r#"Statement[0]: Action "BatchGetImage" must be "*" or "<service>:<action>""#,
        ),
        (
            "Action element",
            r#"{"Statement":[{"Effect":"Allow","Action":[],"Resource":"*"}]}"#,
            Id,
            "Statement[0]: Action must not be an empty list",
        ),
        (
            "Resource element",
            r#"{"Statement":[{"Effect":"Allow","Action":"ecr:*"}]}"#,
            Id,
            "Statement[0]: Resource or NotResource is required in an identity-based policy",
        ),
        (
            "NotResource element",
            r#"{"Statement":[{"Effect":"Allow","Action":"ecr:*","Resource":"*","NotResource":"*"}]}"#,
            Id,
            "Statement[0]: Resource and NotResource cannot both be present",
        ),
        (
            "Resource element (ARN format)",
            r#"{"Statement":[{"Sid":"R","Effect":"Allow","Action":"ecr:*","Resource":"repository/app"}]}"#,
            Id,
            r#"Statement[0] (Sid "R"): Resource "repository/app" must be "*" or an ARN"#,
        ),
        (
            "Principal element (identity policies)",
            r#"{"Statement":[{"Effect":"Allow","Principal":"*","Action":"ecr:*","Resource":"*"}]}"#,
            Id,
            "Statement[0]: Principal is not allowed in an identity-based policy",
        ),
        (
            "Principal element (resource policies)",
            r#"{"Statement":[{"Effect":"Allow","Action":"ecr:*"}]}"#,
            Res,
            "Statement[0]: Principal or NotPrincipal is required in a resource-based policy",
        ),
        (
            "NotPrincipal element",
            r#"{"Statement":[{"Effect":"Deny","Principal":"*","NotPrincipal":{"AWS":"111111111111"},"Action":"ecr:*"}]}"#,
            Res,
            "Statement[0]: Principal and NotPrincipal cannot both be present",
        ),
        (
            "Principal element (no partial wildcards)",
            r#"{"Statement":[{"Sid":"W","Effect":"Allow","Principal":{"AWS":"arn:aws:iam::111111111111:user/*"},"Action":"ecr:*"}]}"#,
            Res,
            r#"Statement[0] (Sid "W"): Principal.AWS: "arn:aws:iam::111111111111:user/*" contains a wildcard"#,
        ),
        (
            "Principal element (no partial wildcards)",
            r#"{"Statement":[{"Effect":"Allow","Principal":{"Service":"*.amazonaws.com"},"Action":"ecr:*"}]}"#,
            Res,
            r#"Statement[0]: Principal.Service: "*.amazonaws.com" contains a wildcard"#,
        ),
        (
            "Principal element (account IDs)",
            r#"{"Statement":[{"Effect":"Allow","Principal":{"AWS":"12345"},"Action":"ecr:*"}]}"#,
            Res,
            "Statement[0]: Principal.AWS: \"12345\" is not an account ID",
        ),
        (
            "Principal element",
            r#"{"Statement":[{"Effect":"Allow","Principal":"alice","Action":"ecr:*"}]}"#,
            Res,
            "Statement[0]: Principal must be \"*\" or an object",
        ),
        (
            "Condition operators",
            r#"{"Statement":[{"Effect":"Allow","Action":"ecr:*","Resource":"*","Condition":{"StringMatches":{"aws:username":"a"}}}]}"#,
            Id,
            r#"Statement[0]: Condition has unknown operator "StringMatches""#,
        ),
        (
            "Condition operators: IP address",
            r#"{"Statement":[{"Sid":"Ip","Effect":"Allow","Action":"ecr:*","Resource":"*","Condition":{"IpAddress":{"aws:SourceIp":"300.1.1.1/8"}}}]}"#,
            Id,
            r#"Statement[0] (Sid "Ip"): Condition IpAddress key "aws:SourceIp": value "300.1.1.1/8" is not an IPv4 or IPv6 address or CIDR block"#,
        ),
        (
            "Condition operators: Numeric",
            r#"{"Statement":[{"Effect":"Allow","Action":"ecr:*","Resource":"*","Condition":{"NumericLessThan":{"ecr:x":"ten"}}}]}"#,
            Id,
            r#"Statement[0]: Condition NumericLessThan key "ecr:x": value "ten" is not a number"#,
        ),
        (
            "Condition operators: Null",
            r#"{"Statement":[{"Effect":"Allow","Action":"ecr:*","Resource":"*","Condition":{"Null":{"ecr:x":"maybe"}}}]}"#,
            Id,
            r#"Statement[0]: Condition Null key "ecr:x": value "maybe" is not "true" or "false""#,
        ),
        (
            "Sid element (unique)",
            r#"{"Statement":[{"Sid":"A","Effect":"Allow","Action":"*","Resource":"*"},{"Sid":"A","Effect":"Deny","Action":"*","Resource":"*"}]}"#,
            Id,
            r#"Statement[1] (Sid "A"): Sid "A" is already used by Statement[0]"#,
        ),
        (
            "Statement element",
            r#"{"Version":"2012-10-17"}"#,
            Id,
            "Statement is required",
        ),
        (
            "Statement element",
            r#"{"Statement":[]}"#,
            Id,
            "Statement must contain at least one statement",
        ),
        (
            "Policy grammar (element names)",
            r#"{"Statement":[{"Effect":"Allow","Actions":"ecr:*","Resource":"*"}]}"#,
            Id,
            r#"Statement[0]: unknown element "Actions""#,
        ),
        (
            "Policy grammar (element names)",
            r#"{"Statment":[]}"#,
            Id,
            r#"unknown top-level element "Statment""#,
        ),
    ];
    let mut failures = Vec::new();
    for (source, json, kind, want) in cases {
        let got = parse_err(json, *kind);
        if !got.starts_with(want) {
            failures.push(format!(
                "[{source}] {json}\n  want prefix: {want}\n  got:         {got}"
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn documented_examples_parse() {
    // ECR User Guide, "Private repository policy examples": allow pull from another
    // account's role and a service, deny push to everyone else.
    let repo = r#"{
      "Version": "2012-10-17",
      "Statement": [
        {
          "Sid": "AllowPull",
          "Effect": "Allow",
          "Principal": {"AWS": ["arn:aws:iam::222222222222:role/ECSTaskExecutionRole", "333333333333"],
                        "Service": ["ecs-tasks.amazonaws.com"]},
          "Action": ["ecr:BatchGetImage", "ecr:GetDownloadUrlForLayer", "ecr:BatchCheckLayerAvailability"],
          "Condition": {"StringEquals": {"aws:SourceAccount": "222222222222"}}
        },
        {
          "Sid": "DenyPushFromOutside",
          "Effect": "Deny",
          "NotPrincipal": {"AWS": "arn:aws:iam::111111111111:root"},
          "Action": ["ecr:PutImage", "ecr:InitiateLayerUpload", "ecr:UploadLayerPart", "ecr:CompleteLayerUpload"]
        }
      ]
    }"#;
    let d = PolicyDocument::parse(repo, PolicyKind::Resource).unwrap();
    assert_eq!(d.statements().len(), 2);
    assert_eq!(d.statements()[1].sid(), Some("DenyPushFromOutside"));

    // IAM User Guide, "Policy variables": a lone statement object, Id, and a variable.
    let id = r#"{"Version":"2012-10-17","Id":"home","Statement":{"Effect":"Allow","Action":["ecr:*"],
      "Resource":["arn:aws:ecr:us-east-2:111111111111:repository/${aws:username}"]}}"#;
    let d = PolicyDocument::parse(id, PolicyKind::Identity).unwrap();
    assert_eq!(d.id(), Some("home"));
}

/// Issue 17: ECR's SetRepositoryPolicy and PutRegistryPolicy accept a policy whose
/// statements repeat a `Sid`, while IAM refuses that in identity policies (the
/// "Sid element (unique)" case above). Both statements of a repeated Sid take effect.
#[test]
fn resource_policies_may_repeat_a_sid() {
    let doc = r#"{"Version":"2012-10-17","Statement":[
      {"Sid":"Pull","Effect":"Allow","Principal":{"AWS":"arn:aws:iam::111111111111:root"},"Action":"ecr:BatchGetImage"},
      {"Sid":"Pull","Effect":"Allow","Principal":{"AWS":"arn:aws:iam::111111111111:root"},"Action":"ecr:GetDownloadUrlForLayer"}]}"#;
    let d = PolicyDocument::parse(doc, PolicyKind::Resource).unwrap();
    assert_eq!(d.statements().len(), 2);
    assert_eq!(d.statements()[0].sid(), d.statements()[1].sid());
    let identity = doc.replace(
        r#""Principal":{"AWS":"arn:aws:iam::111111111111:root"},"#,
        r#""Resource":"*","#,
    );
    let e = parse_err(&identity, PolicyKind::Identity);
    assert!(
        e.contains(r#"Sid "Pull" is already used by Statement[0]"#),
        "{e}"
    );
}
