//! The EventBridge adapter in process, through the whole app of `berth serve`
//! (`berth-test-support`): protocol and authentication, the model's constraints, and
//! behaviours the real-client test (`crates/berth/tests/events_api.rs`) does not reach.
//! EventBridge API Reference: <https://docs.aws.amazon.com/eventbridge/latest/APIReference/>.

use berth_test_support::{events_request, user, Env, Key, ACCOUNT};
use http_body_util::BodyExt;
use serde_json::{json, Value};
use std::time::SystemTime;

struct Answer {
    status: u16,
    body: Value,
}

impl Answer {
    fn ok(self) -> Value {
        assert_eq!(
            self.status, 200,
            "expected success, got {} {}",
            self.status, self.body
        );
        self.body
    }

    fn err(self, kind: &str) -> String {
        assert_eq!(
            self.body["__type"], kind,
            "expected {kind}, got {} {}",
            self.status, self.body
        );
        assert_eq!(self.status, 400);
        self.body["message"].as_str().unwrap_or("").to_string()
    }
}

async fn call_signed(env: &Env, key: &Key, op: &str, body: Value, service: &str) -> Answer {
    let resp = env
        .send(events_request(
            key,
            op,
            &body.to_string(),
            service,
            SystemTime::now(),
        ))
        .await;
    let status = resp.status().as_u16();
    assert_eq!(resp.headers()["content-type"], "application/x-amz-json-1.1");
    let bytes = resp.into_body().collect().await.unwrap().to_bytes();
    Answer {
        status,
        body: serde_json::from_slice(&bytes).unwrap_or(Value::Null),
    }
}

async fn call(env: &Env, op: &str, body: Value) -> Answer {
    call_signed(env, &env.admin, op, body, "events").await
}

// SigV4: the credential scope must name the EventBridge service; ECR's scope is refused.
#[tokio::test]
async fn signature_must_be_scoped_to_events() {
    let env = Env::new().await;
    let m = call_signed(&env, &env.admin, "ListRules", json!({}), "ecr")
        .await
        .err("InvalidSignatureException");
    assert!(m.contains("'events'"), "{m}");
    call(&env, "ListRules", json!({})).await.ok();
}

// Operations of the model Berth does not serve, and names outside the model.
#[tokio::test]
async fn unsupported_and_unknown_operations() {
    let env = Env::new().await;
    let m = call(&env, "PutEvents", json!({"Entries": []}))
        .await
        .err("UnsupportedOperationException");
    assert!(m.contains("PutEvents"), "{m}");
    call(&env, "MakeCoffee", json!({}))
        .await
        .err("UnknownOperationException");
}

// Issue 17: an answer given before the body is read keeps the connection usable, as in
// the ECR and OCI adapters (berth_http::body, shared): a small unread body is drained and
// the connection kept; a large one gets `Connection: close`.
#[tokio::test]
async fn early_answers_drain_small_bodies_and_close_after_large_ones() {
    let env = Env::new().await;
    let request = |body: Vec<u8>| {
        axum::http::Request::builder()
            .method("POST")
            .uri("/")
            .header("host", berth_test_support::HOST)
            .header("x-amz-target", "AWSEvents.MakeCoffee")
            .body(axum::body::Body::from(body))
            .unwrap()
    };
    for (size, closes) in [(1000, false), (2 << 20, true)] {
        let resp = env.send(request(vec![b' '; size])).await;
        assert_eq!(
            resp.headers()
                .get("connection")
                .is_some_and(|v| v == "close"),
            closes,
            "{size}-byte body: {:?}",
            resp.headers()
        );
        let bytes = resp.into_body().collect().await.unwrap().to_bytes();
        let body: Value = serde_json::from_slice(&bytes).unwrap();
        assert_eq!(body["__type"], "UnknownOperationException");
    }
}

// PutRule: schedules are not run; a pattern or schedule is required; names follow
// [\.\-_A-Za-z0-9]+ (1–64); only the default bus exists. DeleteRule of a missing rule
// succeeds (the API Reference: all repeated calls succeed).
#[tokio::test]
async fn rule_constraints() {
    let env = Env::new().await;
    let m = call(
        &env,
        "PutRule",
        json!({"Name": "s", "ScheduleExpression": "rate(5 minutes)"}),
    )
    .await
    .err("ValidationException");
    assert!(m.contains("ScheduleExpression"), "{m}");
    call(&env, "PutRule", json!({"Name": "s"}))
        .await
        .err("ValidationException");
    let m = call(
        &env,
        "PutRule",
        json!({"Name": "a".repeat(65), "EventPattern": "{}"}),
    )
    .await
    .err("ValidationException");
    assert!(m.contains("length less than or equal to 64"), "{m}");
    call(
        &env,
        "PutRule",
        json!({"Name": "r", "EventPattern": "{}", "EventBusName": "custom"}),
    )
    .await
    .err("ResourceNotFoundException");
    let arn = format!("arn:aws:events:us-east-1:{ACCOUNT}:event-bus/default");
    call(
        &env,
        "PutRule",
        json!({"Name": "r", "EventPattern": r#"{"source":["aws.ecr"]}"#, "EventBusName": arn}),
    )
    .await
    .ok();
    call(&env, "PutRule", json!({"Name": "r", "EventPattern": "[1]"}))
        .await
        .err("InvalidEventPatternException");
    // PutRule replaces: the state given last wins, the targets stay.
    call(
        &env,
        "PutRule",
        json!({"Name": "r", "EventPattern": r#"{"source":["aws.ecr"]}"#, "State": "DISABLED"}),
    )
    .await
    .ok();
    assert_eq!(
        call(&env, "DescribeRule", json!({"Name": "r"})).await.ok()["State"],
        "DISABLED"
    );
    call(&env, "DeleteRule", json!({"Name": "r"})).await.ok();
    call(&env, "DeleteRule", json!({"Name": "r"})).await.ok();
    // A NextToken of another listing is refused.
    for i in 0..3 {
        call(
            &env,
            "PutRule",
            json!({"Name": format!("p{i}"), "EventPattern": "{}"}),
        )
        .await
        .ok();
    }
    let page = call(&env, "ListRules", json!({"Limit": 2})).await.ok();
    assert_eq!(page["Rules"].as_array().unwrap().len(), 2);
    let token = page["NextToken"].as_str().unwrap().to_string();
    let rest = call(&env, "ListRules", json!({"NextToken": token}))
        .await
        .ok();
    assert_eq!(rest["Rules"][0]["Name"], "p2");
    assert!(rest.get("NextToken").is_none(), "{rest}");
    call(&env, "ListConnections", json!({"NextToken": token}))
        .await
        .err("ValidationException");
    // NamePrefix is a literal prefix: `_` (valid in names) is no wildcard.
    call(
        &env,
        "PutRule",
        json!({"Name": "a_1", "EventPattern": "{}"}),
    )
    .await
    .ok();
    call(
        &env,
        "PutRule",
        json!({"Name": "ab1", "EventPattern": "{}"}),
    )
    .await
    .ok();
    let l = call(&env, "ListRules", json!({"NamePrefix": "a_"}))
        .await
        .ok();
    let names: Vec<&str> = l["Rules"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["Name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["a_1"]);
}

// CreateConnection: exactly the parameters of the authorization type; OAuth is refused
// (Berth does not fetch tokens); secret invocation parameters are hidden by Describe.
#[tokio::test]
async fn connection_parameters_and_secrets() {
    let env = Env::new().await;
    call(
        &env,
        "CreateConnection",
        json!({"Name": "c", "AuthorizationType": "BASIC",
        "AuthParameters": {"BasicAuthParameters": {"Username": "u"}}}),
    )
    .await
    .err("ValidationException");
    call(
        &env,
        "CreateConnection",
        json!({"Name": "c", "AuthorizationType": "BASIC",
        "AuthParameters": {"ApiKeyAuthParameters": {"ApiKeyName": "k", "ApiKeyValue": "v"}}}),
    )
    .await
    .err("ValidationException");
    let m = call(&env, "CreateConnection", json!({"Name": "c", "AuthorizationType": "OAUTH_CLIENT_CREDENTIALS",
        "AuthParameters": {"OAuthParameters": {"AuthorizationEndpoint": "https://a/", "HttpMethod": "POST",
            "ClientParameters": {"ClientID": "i", "ClientSecret": "s"}}}}))
        .await
        .err("ValidationException");
    assert!(m.contains("OAUTH_CLIENT_CREDENTIALS"), "{m}");
    call(
        &env,
        "CreateConnection",
        json!({"Name": "c", "AuthorizationType": "BASIC",
        "AuthParameters": {
            "BasicAuthParameters": {"Username": "u", "Password": "hunter2"},
            "InvocationHttpParameters": {"HeaderParameters": [
                {"Key": "x-tenant", "Value": "blue", "IsValueSecret": false},
                {"Key": "x-token", "Value": "tok-secret", "IsValueSecret": true}]}}}),
    )
    .await
    .ok();
    let d = call(&env, "DescribeConnection", json!({"Name": "c"}))
        .await
        .ok();
    let text = d.to_string();
    assert!(
        !text.contains("hunter2") && !text.contains("tok-secret"),
        "{text}"
    );
    assert_eq!(d["AuthParameters"]["BasicAuthParameters"]["Username"], "u");
    let headers = &d["AuthParameters"]["InvocationHttpParameters"]["HeaderParameters"];
    assert_eq!(headers[0]["Value"], "blue");
    assert!(headers[1].get("Value").is_none(), "{headers}");
    // UpdateConnection may change only the password; the user name stays.
    call(
        &env,
        "UpdateConnection",
        json!({"Name": "c",
        "AuthParameters": {"BasicAuthParameters": {"Password": "new"}}}),
    )
    .await
    .ok();
    let d = call(&env, "DescribeConnection", json!({"Name": "c"}))
        .await
        .ok();
    assert_eq!(d["AuthParameters"]["BasicAuthParameters"]["Username"], "u");
    // An API destination's endpoint must be an absolute http(s) URL.
    let conn = d["ConnectionArn"].as_str().unwrap();
    call(
        &env,
        "CreateApiDestination",
        json!({"Name": "d", "ConnectionArn": conn,
        "InvocationEndpoint": "ftp://x/", "HttpMethod": "POST"}),
    )
    .await
    .err("ValidationException");
    call(
        &env,
        "CreateApiDestination",
        json!({"Name": "d", "ConnectionArn": conn,
        "InvocationEndpoint": "https://hooks.example/x", "HttpMethod": "BREW"}),
    )
    .await
    .err("ValidationException");
    let d = call(
        &env,
        "CreateApiDestination",
        json!({"Name": "d", "ConnectionArn": conn,
        "InvocationEndpoint": "https://hooks.example/x", "HttpMethod": "PUT"}),
    )
    .await
    .ok();
    call(
        &env,
        "UpdateApiDestination",
        json!({"Name": "d", "InvocationEndpoint": "https://hooks.example/y"}),
    )
    .await
    .ok();
    let got = call(&env, "DescribeApiDestination", json!({"Name": "d"}))
        .await
        .ok();
    assert_eq!(got["InvocationEndpoint"], "https://hooks.example/y");
    assert_eq!(got["HttpMethod"], "PUT");
    assert_eq!(got["ApiDestinationArn"], d["ApiDestinationArn"]);
}

// DESIGN.md invariant 6: authorised before any lookup, as `events:<Operation>` on the
// resource's ARN; a denial names the action and resource.
#[tokio::test]
async fn events_actions_are_authorised_on_arns() {
    let env = Env::new().await;
    let policy = r#"{"Version":"2012-10-17","Statement":[
        {"Effect":"Allow","Action":"events:*","Resource":"*"},
        {"Effect":"Deny","Action":"events:PutRule","Resource":"arn:aws:events:*:*:rule/prod-*"}]}"#;
    let dev = user(&env.iam, ACCOUNT, "dev", Some(policy)).await;
    call_signed(
        &env,
        &dev,
        "PutRule",
        json!({"Name": "dev-x", "EventPattern": "{}"}),
        "events",
    )
    .await
    .ok();
    let m = call_signed(
        &env,
        &dev,
        "PutRule",
        json!({"Name": "prod-x", "EventPattern": "{}"}),
        "events",
    )
    .await
    .err("AccessDeniedException");
    assert!(
        m.contains("events:PutRule") && m.contains("rule/prod-x"),
        "{m}"
    );
    // An ECR-only user may not touch events.
    let ecr = user(&env.iam, ACCOUNT, "ecr-only", Some(
        r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"ecr:*","Resource":"*"}]}"#,
    ))
    .await;
    call_signed(&env, &ecr, "ListRules", json!({}), "events")
        .await
        .err("AccessDeniedException");
}

/// Issue 14, "the SQLite/disk and PostgreSQL/S3 pairs run the same tests": every other
/// test of this file again, in a child process on PostgreSQL metadata and S3 (SeaweedFS)
/// blob storage (`berth_test_support::Backends::PostgresS3`).
#[test]
fn every_test_of_this_file_on_postgres_and_s3() {
    berth_test_support::rerun_on_postgres_s3("every_test_of_this_file_on_postgres_and_s3");
}
