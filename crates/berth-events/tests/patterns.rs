//! EventBridge event patterns, checked against the examples of the EventBridge User
//! Guide pages "Amazon EventBridge event patterns" (eb-event-patterns), "Content filtering
//! in Amazon EventBridge event patterns" (eb-event-patterns-content-based-filtering) and
//! "Comparison operators for use in event patterns" (eb-create-pattern-operators): each
//! row is (pattern, event, matches?). Then EventBridge's validation errors, and that
//! `parse` never panics.

use berth_events::pattern::parse;
use serde_json::{json, Value};

/// The EC2 state-change event the "Event patterns" page matches against.
fn ec2_event() -> Value {
    json!({
        "version": "0",
        "id": "6a7e8feb-b491-4cf7-a9f1-bf3703467718",
        "detail-type": "EC2 Instance State-change Notification",
        "source": "aws.ec2",
        "account": "111122223333",
        "time": "2017-12-22T18:43:48Z",
        "region": "us-west-1",
        "resources": ["arn:aws:ec2:us-west-1:123456789012:instance/i-1234567890abcdef0"],
        "detail": {"instance-id": "i-1234567890abcdef0", "state": "terminated"}
    })
}

/// The event the content-filtering page's numeric and combined examples use.
fn content_event() -> Value {
    json!({
        "version": "0",
        "id": "0",
        "detail-type": "x",
        "source": "com.mycompany.myapp",
        "account": "123456789012",
        "time": "2017-10-02T18:43:48Z",
        "region": "us-east-1",
        "resources": [],
        "detail": {
            "state": "running", "c-count": 5, "d-count": 7, "x-limit": 301.8,
            "source-ip": "10.0.0.123", "FileName": "image.png",
            "service": "EventBridge", "FilePath": "dir/sub/init.png"
        }
    })
}

fn check(pattern: &str, event: &Value, want: bool) {
    let p = parse(pattern).unwrap_or_else(|e| panic!("{pattern}: {e}"));
    assert_eq!(p.matches(event), want, "pattern {pattern}\nevent {event}");
}

fn detail(d: Value) -> Value {
    json!({"source": "aws.test", "detail": d})
}

#[test]
fn event_patterns_page_examples() {
    let e = ec2_event();
    // "Creating event patterns": source only; several fields.
    check(r#"{"source": ["aws.ec2"]}"#, &e, true);
    check(r#"{"source": ["aws.s3"]}"#, &e, false);
    check(
        r#"{"source": ["aws.ec2"], "detail-type": ["EC2 Instance State-change Notification"]}"#,
        &e,
        true,
    );
    // Values in an array are OR-ed: any state of the list.
    check(
        r#"{"source": ["aws.ec2"], "detail-type": ["EC2 Instance State-change Notification"],
            "detail": {"state": ["running", "terminated"]}}"#,
        &e,
        true,
    );
    check(
        r#"{"detail": {"state": ["pending", "running"]}}"#,
        &e,
        false,
    );
    // Nested field absent from the event.
    check(r#"{"detail": {"missing": ["x"]}}"#, &e, false);
    // "Event and event pattern values in arrays": matches if the arrays intersect.
    check(
        r#"{"resources": ["arn:aws:ec2:us-east-1:123456789012:instance/i-b188560f",
                          "arn:aws:ec2:us-west-1:123456789012:instance/i-1234567890abcdef0",
                          "arn:aws:ec2:us-east-1:444455556666:instance/i-b188560f"]}"#,
        &e,
        true,
    );
    check(
        r#"{"resources": ["arn:aws:ec2:us-east-1:111122223333:instance/i-b188560f"]}"#,
        &e,
        false,
    );
    // Matching is case-sensitive and exact.
    check(r#"{"source": ["AWS.EC2"]}"#, &e, false);
    check(r#"{"source": ["aws.ec"]}"#, &e, false);
}

#[test]
fn null_and_empty_string_values() {
    // "Matching null values and empty strings".
    let ev = detail(json!({"eventVersion": "", "responseElements": null}));
    check(r#"{"detail": {"responseElements": [null]}}"#, &ev, true);
    check(r#"{"detail": {"eventVersion": [""]}}"#, &ev, true);
    check(r#"{"detail": {"eventVersion": [null]}}"#, &ev, false);
    // A missing field is not null.
    check(r#"{"detail": {"other": [null]}}"#, &ev, false);
    // Exact numbers and booleans.
    let ev = detail(json!({"n": 300, "b": true}));
    check(r#"{"detail": {"n": [300]}}"#, &ev, true);
    check(r#"{"detail": {"n": [3.0e2]}}"#, &ev, true);
    check(r#"{"detail": {"n": ["300"]}}"#, &ev, false);
    check(r#"{"detail": {"b": [true]}}"#, &ev, true);
    check(r#"{"detail": {"b": ["true"]}}"#, &ev, false);
}

#[test]
fn prefix_and_suffix() {
    let e = content_event();
    check(r#"{"time": [{"prefix": "2017-10-02"}]}"#, &e, true);
    check(r#"{"time": [{"prefix": "2017-10-03"}]}"#, &e, false);
    // Prefix ignoring case: EventB, EVENTB, eventb…
    check(
        r#"{"detail": {"service": [{"prefix": {"equals-ignore-case": "EventB"}}]}}"#,
        &e,
        true,
    );
    check(
        r#"{"detail": {"service": [{"prefix": {"equals-ignore-case": "eventb"}}]}}"#,
        &e,
        true,
    );
    check(
        r#"{"detail": {"service": [{"prefix": "eventb"}]}}"#,
        &e,
        false,
    );
    check(
        r#"{"detail": {"FileName": [{"suffix": ".png"}]}}"#,
        &e,
        true,
    );
    check(
        r#"{"detail": {"FileName": [{"suffix": ".PNG"}]}}"#,
        &e,
        false,
    );
    check(
        r#"{"detail": {"FileName": [{"suffix": {"equals-ignore-case": ".PNG"}}]}}"#,
        &e,
        true,
    );
    // Prefix only matches strings.
    check(r#"{"detail": {"c-count": [{"prefix": "5"}]}}"#, &e, false);
}

#[test]
fn anything_but() {
    let e = content_event();
    check(
        r#"{"detail": {"state": [{"anything-but": "initializing"}]}}"#,
        &e,
        true,
    );
    check(
        r#"{"detail": {"state": [{"anything-but": "running"}]}}"#,
        &e,
        false,
    );
    check(
        r#"{"detail": {"x-limit": [{"anything-but": 123}]}}"#,
        &e,
        true,
    );
    check(
        r#"{"detail": {"c-count": [{"anything-but": 5}]}}"#,
        &e,
        false,
    );
    check(
        r#"{"detail": {"state": [{"anything-but": ["stopped", "overloaded"]}]}}"#,
        &e,
        true,
    );
    check(
        r#"{"detail": {"state": [{"anything-but": ["stopped", "running"]}]}}"#,
        &e,
        false,
    );
    check(
        r#"{"detail": {"x-limit": [{"anything-but": [100, 200, 300]}]}}"#,
        &e,
        true,
    );
    check(
        r#"{"detail": {"x-limit": [{"anything-but": [100, 301.8]}]}}"#,
        &e,
        false,
    );
    check(
        r#"{"detail": {"state": [{"anything-but": {"prefix": "init"}}]}}"#,
        &e,
        true,
    );
    check(
        r#"{"detail": {"state": [{"anything-but": {"prefix": "run"}}]}}"#,
        &e,
        false,
    );
    check(
        r#"{"detail": {"FileName": [{"anything-but": {"suffix": ".txt"}}]}}"#,
        &e,
        true,
    );
    check(
        r#"{"detail": {"FileName": [{"anything-but": {"suffix": ".png"}}]}}"#,
        &e,
        false,
    );
    check(
        r#"{"detail": {"state": [{"anything-but": {"equals-ignore-case": "initializing"}}]}}"#,
        &e,
        true,
    );
    check(
        r#"{"detail": {"state": [{"anything-but": {"equals-ignore-case": "RUNNING"}}]}}"#,
        &e,
        false,
    );
    check(
        r#"{"detail": {"state": [{"anything-but": {"equals-ignore-case": ["initializing", "stopped"]}}]}}"#,
        &e,
        true,
    );
    check(
        r#"{"detail": {"FilePath": [{"anything-but": {"wildcard": "*/lib/*"}}]}}"#,
        &e,
        true,
    );
    check(
        r#"{"detail": {"FilePath": [{"anything-but": {"wildcard": ["*/lib/*", "*/sub/*"]}}]}}"#,
        &e,
        false,
    );
    // Anything-but needs the field to exist.
    check(
        r#"{"detail": {"absent": [{"anything-but": "x"}]}}"#,
        &e,
        false,
    );
}

#[test]
fn numeric_ranges() {
    let e = content_event();
    // The content-filtering page's example: c-count 5, d-count 7, x-limit 301.8.
    check(
        r#"{"detail": {"c-count": [{"numeric": [">", 0, "<=", 5]}],
                       "d-count": [{"numeric": ["<", 10]}],
                       "x-limit": [{"numeric": ["=", 3.018e2]}]}}"#,
        &e,
        true,
    );
    check(
        r#"{"detail": {"c-count": [{"numeric": [">", 0, "<", 5]}]}}"#,
        &e,
        false,
    );
    check(
        r#"{"detail": {"c-count": [{"numeric": [">=", 5]}]}}"#,
        &e,
        true,
    );
    check(
        r#"{"detail": {"d-count": [{"numeric": [">", 7]}]}}"#,
        &e,
        false,
    );
    // Numeric matches numbers only, not numeric strings.
    check(
        r#"{"detail": {"source-ip": [{"numeric": [">", 0]}]}}"#,
        &detail(json!({"source-ip": "5"})),
        false,
    );
}

#[test]
fn cidr_exists_equals_ignore_case_wildcard() {
    let e = content_event();
    check(
        r#"{"detail": {"source-ip": [{"cidr": "10.0.0.0/24"}]}}"#,
        &e,
        true,
    );
    check(
        r#"{"detail": {"source-ip": [{"cidr": "10.0.1.0/24"}]}}"#,
        &e,
        false,
    );
    let v6 = detail(json!({"sourceIPAddress": "2001:db8:1234:1a00::1"}));
    check(
        r#"{"detail": {"sourceIPAddress": [{"cidr": "2001:db8:1234:1a00::/64"}]}}"#,
        &v6,
        true,
    );
    check(
        r#"{"detail": {"sourceIPAddress": [{"cidr": "10.0.0.0/8"}]}}"#,
        &v6,
        false,
    );
    // Exists: on leaves only; false also matches when the parent is missing.
    check(r#"{"detail": {"state": [{"exists": true}]}}"#, &e, true);
    check(r#"{"detail": {"c-count": [{"exists": false}]}}"#, &e, false);
    check(r#"{"detail": {"nothing": [{"exists": false}]}}"#, &e, true);
    check(r#"{"other": {"nothing": [{"exists": false}]}}"#, &e, true);
    check(r#"{"detail": [{"exists": true}]}"#, &e, false);
    // equals-ignore-case.
    check(
        r#"{"detail-type": [{"equals-ignore-case": "ec2 instance state-change notification"}]}"#,
        &ec2_event(),
        true,
    );
    check(
        r#"{"source": [{"equals-ignore-case": "AWS.EC"}]}"#,
        &ec2_event(),
        false,
    );
    // Wildcard: "*" spans any characters, "/" included.
    check(
        r#"{"detail": {"FilePath": [{"wildcard": "dir/*.png"}]}}"#,
        &e,
        true,
    );
    check(
        r#"{"detail": {"FilePath": [{"wildcard": "dir/*/init.png"}]}}"#,
        &e,
        true,
    );
    check(
        r#"{"detail": {"FilePath": [{"wildcard": "dir/*.jpg"}]}}"#,
        &e,
        false,
    );
    let arn = json!({"EventBusArn": "arn:aws:events:us-east-1:123456789012:event-bus/myEventBus"});
    check(
        r#"{"EventBusArn": [{"wildcard": "arn:aws:events:us-east-1:*:event-bus/*"}]}"#,
        &arn,
        true,
    );
    check(
        r#"{"EventBusArn": [{"wildcard": "arn:aws:events:us-west-2:*:event-bus/*"}]}"#,
        &arn,
        false,
    );
    let star = json!({"f": "a*b"});
    check(r#"{"f": [{"wildcard": "a\\*b"}]}"#, &star, true);
    check(
        r#"{"f": [{"wildcard": "a\\*b"}]}"#,
        &json!({"f": "axb"}),
        false,
    );
}

#[test]
fn or_and_combinations() {
    let e = content_event();
    // "$or" at the top: any of the sub-patterns.
    check(
        r#"{"$or": [{"detail": {"c-count": [{"numeric": [">", 10]}]}},
                    {"detail": {"d-count": [{"numeric": ["<", 10]}]}},
                    {"detail": {"x-limit": [{"numeric": ["=", 0]}]}}]}"#,
        &e,
        true,
    );
    check(
        r#"{"$or": [{"detail": {"c-count": [{"numeric": [">", 10]}]}},
                    {"detail": {"d-count": [{"numeric": [">", 10]}]}}]}"#,
        &e,
        false,
    );
    // "$or" inside detail, AND-ed with the other fields.
    check(
        r#"{"source": ["com.mycompany.myapp"],
            "detail": {"state": ["running"],
                       "$or": [{"c-count": [{"numeric": [">", 0, "<=", 5]}]},
                               {"d-count": [{"numeric": ["<", 10]}]}]}}"#,
        &e,
        true,
    );
    check(
        r#"{"source": ["aws.ec2"],
            "detail": {"$or": [{"c-count": [5]}, {"d-count": [7]}]}}"#,
        &e,
        false,
    );
    // The content-filtering page's combined example.
    check(
        r#"{"time": [{"prefix": "2017-10-02"}],
            "detail": {"state": [{"anything-but": "initializing"}],
                       "c-count": [{"numeric": [">", 0, "<=", 5]}],
                       "d-count": [{"numeric": ["<", 10]}],
                       "x-limit": [{"anything-but": [100, 200, 300]}]}}"#,
        &e,
        true,
    );
    // Several matchers for one field: any of them.
    check(
        r#"{"detail": {"state": [{"prefix": "x"}, "running"]}}"#,
        &e,
        true,
    );
}

#[test]
fn arrays_of_objects_match_within_one_element() {
    let ev = json!({"detail": {"items": [{"a": 1, "b": "x"}, {"a": 2, "b": "y"}],
                              "tags": ["red", "blue"]}});
    check(
        r#"{"detail": {"items": {"a": [2], "b": ["y"]}}}"#,
        &ev,
        true,
    );
    check(
        r#"{"detail": {"items": {"a": [1], "b": ["y"]}}}"#,
        &ev,
        false,
    );
    check(r#"{"detail": {"tags": ["blue"]}}"#, &ev, true);
    check(
        r#"{"detail": {"tags": [{"anything-but": "red"}]}}"#,
        &ev,
        true,
    );
}

/// An ECR push event (ECR_REFERENCE.md §3) with the patterns ECR's docs suggest.
#[test]
fn ecr_image_action_patterns() {
    let ev: Value = serde_json::from_str(r#"{"version":"0","id":"13cde686-328b-6117-af20-0e5566167482","detail-type":"ECR Image Action","source":"aws.ecr","account":"123456789012","time":"2019-11-16T01:54:34Z","region":"us-west-2","resources":[],"detail":{"result":"SUCCESS","repository-name":"my-repository-name","image-digest":"sha256:7f5b","action-type":"PUSH","image-tag":"latest"}}"#).unwrap();
    check(
        r#"{"source": ["aws.ecr"], "detail-type": ["ECR Image Action"],
            "detail": {"action-type": ["PUSH"], "result": ["SUCCESS"],
                       "repository-name": [{"prefix": "my-"}], "image-tag": ["latest"]}}"#,
        &ev,
        true,
    );
    check(
        r#"{"source": ["aws.ecr"], "detail": {"action-type": ["DELETE"]}}"#,
        &ev,
        false,
    );
    // `resources: []` has no leaf: exists false.
    check(r#"{"resources": [{"exists": false}]}"#, &ev, true);
}

/// `InvalidEventPatternException` messages for the mistakes users make.
#[test]
fn validation_errors() {
    let cases = [
        (r#"["aws.ec2"]"#, "Filter is not an object"),
        (
            r#"{"source": "aws.ec2"}"#,
            "\"source\" must be an object or an array",
        ),
        (r#"{"source": []}"#, "Empty arrays are not allowed"),
        (
            r#"{"source": [["a"]]}"#,
            "Match value must be String, number, true, false, or null",
        ),
        (
            r#"{"source": [{"foo": "a"}]}"#,
            "Unrecognized match type foo",
        ),
        (
            r#"{"source": [{"prefix": 1}]}"#,
            "prefix match pattern must be a string",
        ),
        (
            r#"{"source": [{"suffix": null}]}"#,
            "suffix match pattern must be a string",
        ),
        (
            r#"{"source": [{"exists": "yes"}]}"#,
            "exists match pattern must be either true or false.",
        ),
        (
            r#"{"n": [{"numeric": 5}]}"#,
            "Value of numeric must be an array.",
        ),
        (
            r#"{"n": [{"numeric": []}]}"#,
            "Invalid member in numeric match: ]",
        ),
        (
            r#"{"n": [{"numeric": [">", 5, "<", 1]}]}"#,
            "Bottom must be less than top",
        ),
        (
            r#"{"n": [{"numeric": [">", 6e9]}]}"#,
            "Value must be between -5.0E9 and 5.0E9, inclusive",
        ),
        (
            r#"{"n": [{"anything-but": true}]}"#,
            "Value of anything-but must be an array or single string/number value.",
        ),
        (
            r#"{"n": [{"anything-but": [null]}]}"#,
            "Inside anything but list, start|null|boolean is not supported.",
        ),
        (
            r#"{"n": [{"wildcard": "a**b"}]}"#,
            "Consecutive wildcard characters at pos 2",
        ),
        (
            r#"{"n": [{"prefix": "a", "suffix": "b"}]}"#,
            "Only one key allowed in match expression",
        ),
        (
            r#"{"$or": [{"a": ["b"]}]}"#,
            "There must have at least 2 items in Or relationship array",
        ),
        (
            r#"{"n": [{"cidr": "10.0.0.0/33"}]}"#,
            "Nonstandard IP address: 10.0.0.0/33",
        ),
    ];
    for (pattern, reason) in cases {
        let e = parse(pattern).expect_err(pattern);
        assert_eq!(e.reason, reason, "{pattern}");
        assert_eq!(
            e.to_string(),
            format!("Event pattern is not valid. Reason: {reason}")
        );
    }
    assert!(parse("{not json").is_err());
}

/// Fuzz-style: `parse` and `matches` never panic, on truncations and byte mutations of
/// valid patterns and on deep nesting.
#[test]
fn parse_never_panics() {
    let seeds = [
        r#"{"detail": {"c-count": [{"numeric": [">", 0, "<=", 5]}], "$or": [{"a": [1]}, {"b": [{"wildcard": "x*\\*"}]}]}}"#,
        r#"{"x": [{"anything-but": {"wildcard": ["*/lib/*"]}}, {"cidr": "::1/128"}, {"prefix": {"equals-ignore-case": "A"}}]}"#,
    ];
    let alphabet = br#"{}[]":,*\ 0123456789.-+eE$ortruefalsenull/"#;
    let event = content_event();
    for seed in seeds {
        for cut in 0..seed.len() {
            if let Ok(p) = parse(&seed[..cut]) {
                p.matches(&event);
            }
        }
        for _ in 0..3000 {
            let mut bytes = seed.as_bytes().to_vec();
            for _ in 0..rand::random_range(1..4) {
                let i = rand::random_range(0..bytes.len());
                bytes[i] = alphabet[rand::random_range(0..alphabet.len())];
            }
            if let Ok(text) = String::from_utf8(bytes) {
                if let Ok(p) = parse(&text) {
                    p.matches(&event);
                    p.matches(&json!([1, {"detail": null}]));
                }
            }
        }
    }
    let deep = format!("{}{}", r#"{"a":"#.repeat(10_000), "}".repeat(10_000));
    assert!(parse(&deep).is_err());
}
