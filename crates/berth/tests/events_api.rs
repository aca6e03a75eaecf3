//! The EventBridge API (issue 8, "Events") through the real AWS CLI (`aws events …
//! --endpoint-url`) and boto3 against one `berth serve`: connections and API
//! destinations, rules, targets, `TestEventPattern` agreeing with Berth's own matcher on
//! the EventBridge User Guide's content-filtering cases, EventBridge's error shapes, and
//! `events:<Operation>` authorisation.
//!
//! Shapes and messages: EventBridge API Reference
//! (<https://docs.aws.amazon.com/eventbridge/latest/APIReference/>), botocore
//! `events/2015-10-07`. Run: `cargo test -p berth --test events_api`.

mod common;

use common::*;
use serde_json::{json, Value};
use std::path::PathBuf;
use std::process::Command;

/// `aws events` pointed at one registry with one credentials file.
struct Events {
    endpoint: String,
    credentials: PathBuf,
}

impl Events {
    fn cmd(&self, args: &[&str]) -> Command {
        let mut c = Command::new(aws_cli());
        aws_env(&mut c, &self.credentials);
        c.args([
            "--endpoint-url",
            &self.endpoint,
            "--output",
            "json",
            "events",
        ])
        .args(args);
        c
    }

    /// `aws events <args>`, which must succeed; its JSON output (or null).
    fn ok(&self, args: &[&str]) -> Value {
        let o = run(&mut self.cmd(args), SHORT);
        if o.stdout.trim().is_empty() {
            Value::Null
        } else {
            parse_json(&o)
        }
    }

    /// `aws events <args>`, which must fail with error type `kind`; its stderr.
    fn fails(&self, args: &[&str], kind: &str) -> String {
        let o = run_unchecked(&mut self.cmd(args), SHORT);
        assert!(
            !o.success(),
            "expected {kind}, but it succeeded:\n{}",
            o.describe()
        );
        assert!(
            o.stderr.contains(&format!("An error occurred ({kind})")),
            "expected {kind}:\n{}",
            o.describe()
        );
        o.stderr
    }
}

fn berth_admin(reg: &Registry, args: &[&str]) -> String {
    let mut c = Command::new(env!("CARGO_BIN_EXE_berth"));
    c.arg("admin")
        .arg("--data-dir")
        .arg(reg.data_dir())
        .args(args);
    run(&mut c, SHORT).stdout
}

/// An `ECR Image Action` event in the envelope of ECR_REFERENCE §3, with a few extra
/// detail members for the pattern cases (numbers, arrays, nesting, an IP address).
fn sample_event() -> Value {
    json!({
        "version": "0",
        "id": "5d1c7a3e-0d6b-4d4f-9a43-1c2b3d4e5f60",
        "detail-type": "ECR Image Action",
        "source": "aws.ecr",
        "account": "111111111111",
        "time": "2026-12-03T07:00:00Z",
        "region": "us-east-1",
        "resources": ["arn:aws:ecr:us-east-1:111111111111:repository/team/app"],
        "detail": {
            "result": "SUCCESS",
            "repository-name": "team/app",
            "image-digest": "sha256:0f1e2d3c4b5a69788796a5b4c3d2e1f00f1e2d3c4b5a69788796a5b4c3d2e1f0",
            "action-type": "PUSH",
            "image-tag": "v1.2.3",
            "size": 42,
            "tags": ["blue", "green"],
            "source-ip": "10.0.0.7",
            "build": {"runner": {"arch": "arm64"}}
        }
    })
}

/// Content filtering in Amazon EventBridge event patterns (EventBridge User Guide):
/// one case per matcher kind, each expected to match or not the sample event.
const PATTERN_CASES: &[(&str, &str, bool)] = &[
    ("exact value", r#"{"source":["aws.ecr"]}"#, true),
    ("exact value, other", r#"{"source":["aws.s3"]}"#, false),
    (
        "exact, one of several",
        r#"{"detail-type":["ECR Image Scan","ECR Image Action"]}"#,
        true,
    ),
    (
        "prefix",
        r#"{"detail":{"image-tag":[{"prefix":"v1."}]}}"#,
        true,
    ),
    (
        "prefix, no match",
        r#"{"detail":{"image-tag":[{"prefix":"v2."}]}}"#,
        false,
    ),
    (
        "suffix",
        r#"{"detail":{"repository-name":[{"suffix":"/app"}]}}"#,
        true,
    ),
    (
        "anything-but value",
        r#"{"detail":{"action-type":[{"anything-but":"DELETE"}]}}"#,
        true,
    ),
    (
        "anything-but list",
        r#"{"detail":{"action-type":[{"anything-but":["PUSH","DELETE"]}]}}"#,
        false,
    ),
    (
        "anything-but prefix",
        r#"{"detail":{"image-tag":[{"anything-but":{"prefix":"v1"}}]}}"#,
        false,
    ),
    (
        "numeric range",
        r#"{"detail":{"size":[{"numeric":[">",0,"<=",42]}]}}"#,
        true,
    ),
    (
        "numeric, out of range",
        r#"{"detail":{"size":[{"numeric":[">",42]}]}}"#,
        false,
    ),
    (
        "exists true",
        r#"{"detail":{"image-tag":[{"exists":true}]}}"#,
        true,
    ),
    (
        "exists true, absent",
        r#"{"detail":{"signature":[{"exists":true}]}}"#,
        false,
    ),
    (
        "exists false",
        r#"{"detail":{"signature":[{"exists":false}]}}"#,
        true,
    ),
    (
        "equals-ignore-case",
        r#"{"detail":{"action-type":[{"equals-ignore-case":"push"}]}}"#,
        true,
    ),
    (
        "wildcard",
        r#"{"detail":{"repository-name":[{"wildcard":"team/*"}]}}"#,
        true,
    ),
    (
        "wildcard, no match",
        r#"{"detail":{"repository-name":[{"wildcard":"ops/*"}]}}"#,
        false,
    ),
    (
        "$or",
        r#"{"$or":[{"detail":{"action-type":["DELETE"]}},{"detail":{"image-tag":["v1.2.3"]}}]}"#,
        true,
    ),
    (
        "$or, neither",
        r#"{"$or":[{"detail":{"action-type":["DELETE"]}},{"detail":{"size":[{"numeric":["<",1]}]}}]}"#,
        false,
    ),
    (
        "nested fields",
        r#"{"detail":{"build":{"runner":{"arch":["arm64"]}}}}"#,
        true,
    ),
    (
        "array: any element",
        r#"{"detail":{"tags":["green"]}}"#,
        true,
    ),
    ("array: no element", r#"{"detail":{"tags":["red"]}}"#, false),
    (
        "cidr",
        r#"{"detail":{"source-ip":[{"cidr":"10.0.0.0/24"}]}}"#,
        true,
    ),
    (
        "several fields: AND",
        r#"{"source":["aws.ecr"],"detail":{"result":["FAILURE"]}}"#,
        false,
    ),
];

#[test]
fn aws_cli_and_boto3_configure_rules_targets_and_destinations() {
    const T: &str = "aws_cli_and_boto3_configure_rules_targets_and_destinations";
    if !require(T, &["aws", "boto3"]) {
        return;
    }
    let reg = Registry::start_secured(&[]);
    let ev = Events {
        endpoint: reg.url(""),
        credentials: reg.data_dir().join("admin-credentials"),
    };

    // --- Connections (CreateConnection, DescribeConnection: no secret returned) ---
    let conn = ev.ok(&[
        "create-connection",
        "--name",
        "hooks",
        "--authorization-type",
        "API_KEY",
        "--auth-parameters",
        r#"{"ApiKeyAuthParameters":{"ApiKeyName":"x-api-key","ApiKeyValue":"very-secret-value"}}"#,
    ]);
    let conn_arn = conn["ConnectionArn"].as_str().unwrap().to_string();
    assert!(
        conn_arn.starts_with("arn:aws:events:us-east-1:")
            && conn_arn.contains(":connection/hooks/"),
        "{conn}"
    );
    assert_eq!(conn["ConnectionState"], "AUTHORIZED");
    ev.fails(
        &[
            "create-connection",
            "--name",
            "hooks",
            "--authorization-type",
            "BASIC",
            "--auth-parameters",
            r#"{"BasicAuthParameters":{"Username":"u","Password":"p"}}"#,
        ],
        "ResourceAlreadyExistsException",
    );
    let d = run(
        &mut ev.cmd(&["describe-connection", "--name", "hooks"]),
        SHORT,
    )
    .stdout;
    assert!(
        !d.contains("very-secret-value"),
        "a secret was returned: {d}"
    );
    let d: Value = serde_json::from_str(&d).unwrap();
    assert_eq!(
        d["AuthParameters"]["ApiKeyAuthParameters"]["ApiKeyName"],
        "x-api-key"
    );
    assert_eq!(d["AuthorizationType"], "API_KEY");
    let l = ev.ok(&["list-connections"]);
    assert_eq!(l["Connections"][0]["Name"], "hooks");

    // --- API destinations; the signing secret only through `berth admin` ---
    // AWS CLI v1 fetches parameter values that start with http:// (its `paramfile`
    // feature), so the endpoint goes in --cli-input-json (README says so too).
    let input = json!({
        "Name": "receiver",
        "ConnectionArn": conn_arn,
        "InvocationEndpoint": "http://127.0.0.1:9/hook",
        "HttpMethod": "POST",
        "InvocationRateLimitPerSecond": 50,
    })
    .to_string();
    let dest = ev.ok(&["create-api-destination", "--cli-input-json", &input]);
    let dest_arn = dest["ApiDestinationArn"].as_str().unwrap().to_string();
    assert!(dest_arn.contains(":api-destination/receiver/"), "{dest}");
    assert_eq!(dest["ApiDestinationState"], "ACTIVE");
    let dd = ev.ok(&["describe-api-destination", "--name", "receiver"]);
    assert_eq!(dd["InvocationEndpoint"], "http://127.0.0.1:9/hook");
    assert_eq!(dd["ConnectionArn"], conn_arn.as_str());
    assert_eq!(dd["InvocationRateLimitPerSecond"], 50);
    let secret = berth_admin(&reg, &["events", "destination-secret", "receiver"]);
    let secret = secret.trim();
    assert!(
        secret.len() == 64 && secret.chars().all(|c| c.is_ascii_hexdigit()),
        "{secret:?}"
    );
    assert!(
        !dd.to_string().contains(secret),
        "describe returned the signing secret"
    );
    let orphan = json!({
        "Name": "orphan",
        "ConnectionArn": "arn:aws:events:us-east-1:111111111111:connection/none/x",
        "InvocationEndpoint": "https://hooks.example/",
        "HttpMethod": "POST",
    })
    .to_string();
    ev.fails(
        &["create-api-destination", "--cli-input-json", &orphan],
        "ResourceNotFoundException",
    );
    let ld = ev.ok(&["list-api-destinations", "--connection-arn", &conn_arn]);
    assert_eq!(ld["ApiDestinations"].as_array().unwrap().len(), 1);

    // --- Rules ---
    let pattern = r#"{"source":["aws.ecr"],"detail-type":["ECR Image Action"],"detail":{"action-type":["PUSH"]}}"#;
    let r = ev.ok(&[
        "put-rule",
        "--name",
        "on-push",
        "--event-pattern",
        pattern,
        "--description",
        "pushes",
    ]);
    let rule_arn = r["RuleArn"].as_str().unwrap().to_string();
    assert!(
        rule_arn.starts_with("arn:aws:events:us-east-1:") && rule_arn.ends_with(":rule/on-push")
    );
    let dr = ev.ok(&["describe-rule", "--name", "on-push"]);
    assert_eq!(dr["State"], "ENABLED");
    assert_eq!(dr["EventPattern"], pattern);
    assert_eq!(dr["EventBusName"], "default");
    assert_eq!(dr["Description"], "pushes");
    let e = ev.fails(
        &[
            "put-rule",
            "--name",
            "bad",
            "--event-pattern",
            r#"{"source":"aws.ecr"}"#,
        ],
        "InvalidEventPatternException",
    );
    assert!(e.contains("Event pattern is not valid"), "{e}");
    ev.fails(
        &["describe-rule", "--name", "bad"],
        "ResourceNotFoundException",
    );
    ev.fails(
        &[
            "describe-rule",
            "--name",
            "on-push",
            "--event-bus-name",
            "other",
        ],
        "ResourceNotFoundException",
    );
    ev.fails(
        &["put-rule", "--name", "no/slash", "--event-pattern", pattern],
        "ValidationException",
    );
    ev.ok(&[
        "put-rule",
        "--name",
        "second",
        "--event-pattern",
        pattern,
        "--state",
        "DISABLED",
    ]);
    let lr = ev.ok(&["list-rules", "--name-prefix", "on-"]);
    let names: Vec<&str> = lr["Rules"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["Name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["on-push"]);
    // The CLI's paginator follows NextToken through pages of one.
    let all = ev.ok(&["list-rules", "--page-size", "1"]);
    assert_eq!(all["Rules"].as_array().unwrap().len(), 2, "{all}");
    ev.ok(&["enable-rule", "--name", "second"]);
    assert_eq!(
        ev.ok(&["describe-rule", "--name", "second"])["State"],
        "ENABLED"
    );
    ev.ok(&["disable-rule", "--name", "second"]);
    assert_eq!(
        ev.ok(&["describe-rule", "--name", "second"])["State"],
        "DISABLED"
    );
    ev.fails(
        &["enable-rule", "--name", "missing"],
        "ResourceNotFoundException",
    );

    // --- Targets: only API destinations are deliverable ---
    let sqs = "arn:aws:sqs:us-east-1:111111111111:queue";
    let targets = json!([
        {"Id": "webhook", "Arn": dest_arn, "RetryPolicy": {"MaximumRetryAttempts": 3, "MaximumEventAgeInSeconds": 3600}},
        {"Id": "queue", "Arn": sqs}
    ])
    .to_string();
    let pt = ev.ok(&["put-targets", "--rule", "on-push", "--targets", &targets]);
    assert_eq!(pt["FailedEntryCount"], 1, "{pt}");
    assert_eq!(pt["FailedEntries"][0]["TargetId"], "queue");
    assert!(
        pt["FailedEntries"][0]["ErrorMessage"]
            .as_str()
            .unwrap()
            .contains("only to API destinations"),
        "{pt}"
    );
    let lt = ev.ok(&["list-targets-by-rule", "--rule", "on-push"]);
    assert_eq!(lt["Targets"].as_array().unwrap().len(), 1, "{lt}");
    assert_eq!(lt["Targets"][0]["Arn"], dest_arn.as_str());
    assert_eq!(lt["Targets"][0]["RetryPolicy"]["MaximumRetryAttempts"], 3);
    ev.fails(
        &[
            "put-targets",
            "--rule",
            "missing",
            "--targets",
            &json!([{"Id": "a", "Arn": dest_arn}]).to_string(),
        ],
        "ResourceNotFoundException",
    );
    let six: Vec<Value> = (0..6)
        .map(|i| json!({"Id": format!("t{i}"), "Arn": dest_arn}))
        .collect();
    ev.fails(
        &[
            "put-targets",
            "--rule",
            "second",
            "--targets",
            &Value::Array(six).to_string(),
        ],
        "LimitExceededException",
    );
    let e = ev.fails(&["delete-rule", "--name", "on-push"], "ValidationException");
    assert!(
        e.contains("Rule can't be deleted since it has targets."),
        "{e}"
    );

    // --- TestEventPattern agrees with Berth's matcher on every documented case ---
    let event = sample_event().to_string();
    for (what, pattern, expected) in PATTERN_CASES {
        let ours = berth_events::parse(pattern)
            .unwrap_or_else(|e| panic!("{what}: {e}"))
            .matches(&sample_event());
        let cli = ev.ok(&[
            "test-event-pattern",
            "--event-pattern",
            pattern,
            "--event",
            &event,
        ]);
        assert_eq!(ours, *expected, "Berth's matcher, case {what}: {pattern}");
        assert_eq!(
            cli["Result"], *expected,
            "TestEventPattern, case {what}: {pattern}"
        );
    }
    ev.fails(
        &[
            "test-event-pattern",
            "--event-pattern",
            r#"{"detail":{"size":[{"numeric":[">"]}]}}"#,
            "--event",
            &event,
        ],
        "InvalidEventPatternException",
    );
    ev.fails(
        &[
            "test-event-pattern",
            "--event-pattern",
            r#"{"source":["aws.ecr"]}"#,
            "--event",
            r#"{"source":"aws.ecr"}"#,
        ],
        "ValidationException",
    );

    // --- IAM: events:<Operation>, denied in AWS's shape ---
    berth_admin(&reg, &["user", "create", "reader"]);
    berth_admin(
        &reg,
        &[
            "policy",
            "put",
            "--user",
            "reader",
            "--name",
            "read-rules",
            "--document",
            r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":["events:DescribeRule","events:ListRules"],"Resource":"*"}]}"#,
        ],
    );
    let key = berth_admin(&reg, &["key", "create", "--user", "reader"]);
    let creds = reg.data_dir().join("reader.credentials");
    std::fs::write(&creds, key).unwrap();
    let reader = Events {
        endpoint: reg.url(""),
        credentials: creds,
    };
    // The server picks up identities `berth admin` wrote within a second.
    let mut tries = 0;
    loop {
        let o = run_unchecked(
            &mut reader.cmd(&["describe-rule", "--name", "on-push"]),
            SHORT,
        );
        tries += 1;
        if o.success() {
            break;
        }
        assert!(
            tries < 20,
            "the reader never became known:\n{}",
            o.describe()
        );
        std::thread::sleep(std::time::Duration::from_millis(250));
    }
    let e = reader.fails(
        &["put-rule", "--name", "sneaky", "--event-pattern", pattern],
        "AccessDeniedException",
    );
    assert!(
        e.contains("events:PutRule") && e.contains("rule/sneaky"),
        "{e}"
    );
    ev.fails(
        &["describe-rule", "--name", "sneaky"],
        "ResourceNotFoundException",
    );

    // --- boto3: the same API through botocore's EventBridge client ---
    let script = r#"
import json, sys, boto3
c = boto3.client("events", endpoint_url=sys.argv[1], region_name="us-east-1")
out = {}
c.put_rule(Name="from-boto3", EventPattern=json.dumps({"source": ["aws.ecr"]}))
out["rule"] = c.describe_rule(Name="from-boto3")["Arn"]
out["targets"] = c.put_targets(Rule="from-boto3", Targets=[{"Id": "w", "Arn": sys.argv[2]}])["FailedEntryCount"]
out["listed"] = [t["Id"] for t in c.list_targets_by_rule(Rule="from-boto3")["Targets"]]
out["match"] = c.test_event_pattern(EventPattern=json.dumps({"detail": {"image-tag": [{"prefix": "v1"}]}}), Event=sys.argv[3])["Result"]
try:
    c.put_rule(Name="x", EventPattern="{not json")
except c.exceptions.InvalidEventPatternException as e:
    out["bad"] = e.response["Error"]["Code"]
try:
    c.describe_api_destination(Name="nope")
except c.exceptions.ResourceNotFoundException as e:
    out["missing"] = e.response["Error"]["Code"]
c.remove_targets(Rule="from-boto3", Ids=["w"])
c.delete_rule(Name="from-boto3")
out["left"] = [r["Name"] for r in c.list_rules()["Rules"]]
print(json.dumps(out))
"#;
    let mut py = Command::new(oras_python());
    py.arg("-c")
        .arg(script)
        .arg(reg.url(""))
        .arg(&dest_arn)
        .arg(&event)
        .env(
            "AWS_SHARED_CREDENTIALS_FILE",
            reg.data_dir().join("admin-credentials"),
        )
        .env("AWS_CONFIG_FILE", "/dev/null")
        .env("AWS_MAX_ATTEMPTS", "1")
        .env_remove("AWS_ACCESS_KEY_ID")
        .env_remove("AWS_SECRET_ACCESS_KEY")
        .env_remove("AWS_SESSION_TOKEN")
        .env_remove("AWS_PROFILE");
    let b = parse_json(&run(&mut py, SHORT));
    assert!(
        b["rule"].as_str().unwrap().ends_with(":rule/from-boto3"),
        "{b}"
    );
    assert_eq!(b["targets"], 0, "{b}");
    assert_eq!(b["listed"], json!(["w"]));
    assert_eq!(b["match"], true);
    assert_eq!(b["bad"], "InvalidEventPatternException");
    assert_eq!(b["missing"], "ResourceNotFoundException");
    assert_eq!(b["left"], json!(["on-push", "second"]));

    // --- Deletion, in dependency order ---
    ev.ok(&["remove-targets", "--rule", "on-push", "--ids", "webhook"]);
    ev.ok(&["delete-rule", "--name", "on-push"]);
    ev.ok(&["delete-rule", "--name", "second"]);
    ev.fails(
        &["describe-rule", "--name", "on-push"],
        "ResourceNotFoundException",
    );
    ev.ok(&["delete-api-destination", "--name", "receiver"]);
    ev.fails(
        &["describe-api-destination", "--name", "receiver"],
        "ResourceNotFoundException",
    );
    let dc = ev.ok(&["delete-connection", "--name", "hooks"]);
    assert_eq!(dc["ConnectionState"], "DELETING");
    ev.fails(
        &["describe-connection", "--name", "hooks"],
        "ResourceNotFoundException",
    );
    assert_eq!(ev.ok(&["list-rules"])["Rules"], json!([]));
}
