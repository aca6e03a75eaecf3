//! The evaluator and parser against the ECR User Guide's lifecycle policy rules
//! ("Lifecycle policy evaluation rules", "Examples of lifecycle policies").

use super::*;

const NOW: i64 = 1_000 * DAY_SECS;

fn img(digest: &str, tags: &[&str], age_days: i64) -> LifecycleImage {
    LifecycleImage {
        digest: digest.to_string(),
        tags: tags.iter().map(|t| t.to_string()).collect(),
        pushed_at: NOW - age_days * DAY_SECS,
        last_pulled_at: None,
        parents: vec![],
    }
}

fn child(digest: &str, parents: &[&str], age_days: i64) -> LifecycleImage {
    LifecycleImage {
        parents: parents.iter().map(|p| p.to_string()).collect(),
        ..img(digest, &[], age_days)
    }
}

fn policy(rules: &str) -> LifecyclePolicy {
    LifecyclePolicy::parse(&format!(r#"{{"rules":[{rules}]}}"#)).expect("valid policy")
}

fn rule(priority: u32, selection: &str) -> String {
    format!(r#"{{"rulePriority":{priority},"selection":{selection},"action":{{"type":"expire"}}}}"#)
}

fn expired(p: &LifecyclePolicy, images: &[LifecycleImage]) -> Vec<(String, u32)> {
    evaluate(p, images, NOW)
        .into_iter()
        .map(|e| (e.digest, e.rule_priority))
        .collect()
}

fn names(v: &[(String, u32)]) -> Vec<&str> {
    v.iter().map(|(d, _)| d.as_str()).collect()
}

fn parse_err(rules: &str) -> String {
    LifecyclePolicy::parse(&format!(r#"{{"rules":[{rules}]}}"#))
        .expect_err("policy must be refused")
        .0
}

// ---- imageCountMoreThan: keep the N youngest, expire the rest, oldest first ----

#[test]
fn count_rule_keeps_the_youngest_and_expires_the_oldest_first() {
    let p = policy(&rule(
        1,
        r#"{"tagStatus":"untagged","countType":"imageCountMoreThan","countNumber":2}"#,
    ));
    let images = [
        img("d1", &[], 1),
        img("d5", &[], 5),
        img("d3", &[], 3),
        img("d2", &[], 2),
        img("tagged", &["v1"], 9),
    ];
    let out = expired(&p, &images);
    assert_eq!(
        names(&out),
        ["d5", "d3"],
        "oldest first, the two youngest kept"
    );
    assert!(out.iter().all(|(_, r)| *r == 1));
}

#[test]
fn count_rule_with_fewer_images_than_the_count_expires_nothing() {
    let p = policy(&rule(
        1,
        r#"{"tagStatus":"any","countType":"imageCountMoreThan","countNumber":5}"#,
    ));
    assert!(expired(&p, &[img("a", &["x"], 3), img("b", &[], 1)]).is_empty());
}

#[test]
fn equal_push_times_are_ordered_by_digest_so_preview_and_run_agree() {
    let p = policy(&rule(
        1,
        r#"{"tagStatus":"untagged","countType":"imageCountMoreThan","countNumber":1}"#,
    ));
    let a = [img("sha256:bb", &[], 1), img("sha256:aa", &[], 1)];
    let b = [img("sha256:aa", &[], 1), img("sha256:bb", &[], 1)];
    assert_eq!(expired(&p, &a), expired(&p, &b));
    assert_eq!(names(&expired(&p, &a)), ["sha256:aa"]);
}

// ---- age rules ----

#[test]
fn since_image_pushed_expires_images_older_than_the_days() {
    let p = policy(&rule(
        1,
        r#"{"tagStatus":"any","countType":"sinceImagePushed","countUnit":"days","countNumber":14}"#,
    ));
    let images = [
        img("old", &["a"], 20),
        img("edge", &["b"], 14),
        img("new", &[], 3),
        img("older", &[], 30),
    ];
    assert_eq!(names(&expired(&p, &images)), ["older", "old"]);
}

#[test]
fn since_image_pulled_uses_the_last_pull_and_falls_back_to_the_push() {
    let p = policy(&rule(
        1,
        r#"{"tagStatus":"any","countType":"sinceImagePulled","countUnit":"days","countNumber":7}"#,
    ));
    let mut pulled_recently = img("pulled", &["a"], 100);
    pulled_recently.last_pulled_at = Some(NOW - 2 * DAY_SECS);
    let mut pulled_long_ago = img("stale", &["b"], 100);
    pulled_long_ago.last_pulled_at = Some(NOW - 50 * DAY_SECS);
    let never_pulled_old = img("never-old", &[], 10);
    let never_pulled_new = img("never-new", &[], 1);
    let out = expired(
        &p,
        &[
            pulled_recently,
            pulled_long_ago,
            never_pulled_old,
            never_pulled_new,
        ],
    );
    assert_eq!(names(&out), ["stale", "never-old"]);
}

// ---- tag selection ----

#[test]
fn tag_prefix_list_requires_every_prefix_to_match_some_tag() {
    let p = policy(&rule(
        1,
        r#"{"tagStatus":"tagged","tagPrefixList":["prod","release"],"countType":"sinceImagePushed","countUnit":"days","countNumber":1}"#,
    ));
    let images = [
        img("both", &["prod-1", "release-1"], 5),
        img("only-prod", &["prod-2"], 5),
        img("untagged", &[], 5),
    ];
    assert_eq!(names(&expired(&p, &images)), ["both"]);
}

#[test]
fn tag_pattern_list_matches_wildcards_against_whole_tags() {
    let p = policy(&rule(
        1,
        r#"{"tagStatus":"tagged","tagPatternList":["*prod*"],"countType":"imageCountMoreThan","countNumber":1}"#,
    ));
    let images = [
        img("a", &["v1-prod-x"], 3),
        img("b", &["production"], 2),
        img("c", &["prod"], 1),
        img("d", &["dev"], 9),
    ];
    assert_eq!(names(&expired(&p, &images)), ["a", "b"]);
    // "prod*" does not match "v1-prod" (the pattern is anchored).
    let p = policy(&rule(
        1,
        r#"{"tagStatus":"tagged","tagPatternList":["prod*"],"countType":"sinceImagePushed","countUnit":"days","countNumber":1}"#,
    ));
    assert_eq!(
        names(&expired(
            &p,
            &[img("x", &["v1-prod"], 5), img("y", &["prod-1"], 5)]
        )),
        ["y"]
    );
}

#[test]
fn untagged_rule_never_touches_tagged_images_and_any_takes_both() {
    let untagged = policy(&rule(
        1,
        r#"{"tagStatus":"untagged","countType":"sinceImagePushed","countUnit":"days","countNumber":1}"#,
    ));
    let any = policy(&rule(
        1,
        r#"{"tagStatus":"any","countType":"sinceImagePushed","countUnit":"days","countNumber":1}"#,
    ));
    let images = [img("t", &["v1"], 5), img("u", &[], 6)];
    assert_eq!(names(&expired(&untagged, &images)), ["u"]);
    assert_eq!(names(&expired(&any, &images)), ["u", "t"]);
}

// ---- priorities: applied in order, one rule per image, still counted ----

#[test]
fn images_marked_by_a_higher_rule_are_still_counted_by_lower_rules() {
    // The User Guide's example: rule 1 expires untagged images older than ... ; rule 2
    // keeps one image of any kind. The images rule 1 marks still occupy rule 2's
    // positions, so rule 2 expires fewer images than a fresh count would.
    let p = policy(&format!(
        "{},{}",
        rule(
            1,
            r#"{"tagStatus":"untagged","countType":"sinceImagePushed","countUnit":"days","countNumber":10}"#
        ),
        rule(
            2,
            r#"{"tagStatus":"any","countType":"imageCountMoreThan","countNumber":1}"#
        )
    ));
    let images = [
        img("new-untagged", &[], 1),
        img("old-untagged", &[], 20),
        img("tagged", &["v1"], 2),
    ];
    let out = expired(&p, &images);
    // Rule 1 marks old-untagged. Rule 2 counts [new-untagged, tagged, old-untagged]
    // and expires positions ≥ 1: tagged (new) and old-untagged, which rule 1 already
    // marked — so it keeps priority 1.
    assert_eq!(
        out,
        vec![("old-untagged".into(), 1), ("tagged".into(), 2)],
        "old-untagged keeps the higher rule; tagged goes by rule 2"
    );
}

#[test]
fn an_image_matching_a_higher_rules_tags_cannot_be_expired_by_a_lower_rule() {
    // Rule 1 keeps 2 prod images; rule 2 keeps 1 image of any kind. The prod images
    // match rule 1's tagging requirements, so rule 2 cannot expire them even though
    // it counts them.
    let p = policy(&format!(
        "{},{}",
        rule(
            1,
            r#"{"tagStatus":"tagged","tagPrefixList":["prod"],"countType":"imageCountMoreThan","countNumber":2}"#
        ),
        rule(
            2,
            r#"{"tagStatus":"any","countType":"imageCountMoreThan","countNumber":1}"#
        )
    ));
    let images = [
        img("prod1", &["prod1"], 1),
        img("prod2", &["prod2"], 2),
        img("prod3", &["prod3"], 3),
        img("dev", &["dev"], 4),
    ];
    let out = expired(&p, &images);
    assert_eq!(
        out,
        vec![("dev".into(), 2), ("prod3".into(), 1)],
        "oldest first; prod1 and prod2 are protected from rule 2"
    );
}

#[test]
fn rules_are_applied_by_priority_not_by_their_order_in_the_text() {
    let text = format!(
        r#"{{"rules":[{},{}]}}"#,
        rule(
            5,
            r#"{"tagStatus":"any","countType":"sinceImagePushed","countUnit":"days","countNumber":1}"#
        ),
        rule(
            2,
            r#"{"tagStatus":"tagged","tagPrefixList":["keep"],"countType":"imageCountMoreThan","countNumber":10}"#
        )
    );
    let p = LifecyclePolicy::parse(&text).unwrap();
    assert_eq!(p.rules[0].priority, 2);
    // "keep" images match rule 2 (not expired: fewer than 10), so rule 5 cannot take them.
    let out = expired(&p, &[img("k", &["keep-1"], 50), img("o", &["other"], 50)]);
    assert_eq!(out, vec![("o".into(), 5)]);
}

// ---- dependents: index children and referrers follow their parent ----

#[test]
fn index_children_follow_their_index_and_are_never_expired_alone() {
    let p = policy(&rule(
        1,
        r#"{"tagStatus":"any","countType":"imageCountMoreThan","countNumber":1}"#,
    ));
    let images = [
        img("index-old", &["v1"], 10),
        child("amd64-old", &["index-old"], 10),
        child("arm64-old", &["index-old"], 10),
        img("index-new", &["v2"], 1),
        child("amd64-new", &["index-new"], 1),
        child("arm64-new", &["index-new"], 1),
    ];
    let out = evaluate(&p, &images, NOW);
    let got: Vec<(&str, bool)> = out
        .iter()
        .map(|e| (e.digest.as_str(), e.follows_parent))
        .collect();
    // Children are not counted as images of their own (else the count of 1 would
    // expire index-new's children), and they go after their index.
    assert_eq!(
        got,
        [
            ("index-old", false),
            ("amd64-old", true),
            ("arm64-old", true)
        ]
    );
    assert!(out.iter().all(|e| e.rule_priority == 1));
}

#[test]
fn a_child_shared_by_two_indexes_stays_while_one_of_them_stays() {
    let p = policy(&rule(
        1,
        r#"{"tagStatus":"tagged","tagPrefixList":["old"],"countType":"sinceImagePushed","countUnit":"days","countNumber":1}"#,
    ));
    let images = [
        img("i-old", &["old"], 10),
        img("i-new", &["new"], 10),
        child("shared", &["i-old", "i-new"], 10),
        child("own", &["i-old"], 10),
    ];
    assert_eq!(names(&expired(&p, &images)), ["i-old", "own"]);
}

/// A tagged index child is not expired with its index (no rule selected it), but once
/// the index is expired it is an image like any other: the same evaluation applies the
/// rules to it, so one run — and its preview — does what two successive runs would.
#[test]
fn tagged_children_of_an_expired_index_are_judged_in_the_same_evaluation() {
    let p = policy(&rule(
        1,
        r#"{"tagStatus":"any","countType":"imageCountMoreThan","countNumber":1}"#,
    ));
    let mut amd64 = child("amd64", &["index"], 12);
    amd64.tags = vec!["v1-amd64".into()];
    let mut arm64 = child("arm64", &["index"], 12);
    arm64.tags = vec!["v1-arm64".into()];
    let images = [
        img("newest", &["v2"], 1),
        img("index", &["v1"], 11),
        amd64,
        arm64,
    ];
    let out = evaluate(&p, &images, NOW);
    let got: Vec<(&str, bool)> = out
        .iter()
        .map(|e| (e.digest.as_str(), e.follows_parent))
        .collect();
    // Round 1 keeps `newest` and expires the index; round 2 sees `newest`, `amd64`,
    // `arm64` as top-level images and keeps only the youngest of them.
    assert_eq!(got, [("index", false), ("amd64", false), ("arm64", false)]);
    // The fixed point: evaluating what is left expires nothing more.
    let left: Vec<LifecycleImage> = images
        .iter()
        .filter(|i| !out.iter().any(|e| e.digest == i.digest))
        .cloned()
        .collect();
    assert!(evaluate(&p, &left, NOW).is_empty());
    // A tagged child whose index stays is left alone.
    let p = policy(&rule(
        1,
        r#"{"tagStatus":"tagged","tagPrefixList":["v1-"],"countType":"sinceImagePushed","countUnit":"days","countNumber":1}"#,
    ));
    assert!(
        expired(&p, &images).is_empty(),
        "children of a kept index stay"
    );
}

#[test]
fn referrers_follow_their_subject_including_referrers_of_index_children() {
    let p = policy(&rule(
        1,
        r#"{"tagStatus":"untagged","countType":"sinceImagePushed","countUnit":"days","countNumber":1}"#,
    ));
    // An untagged index with a child; a signature on the index, an SBOM on the child,
    // and a signature on the SBOM. A fresh image with its own signature stays.
    let images = [
        img("index", &[], 10),
        child("child", &["index"], 10),
        child("sig-index", &["index"], 9),
        child("sbom-child", &["child"], 9),
        child("sig-sbom", &["sbom-child"], 8),
        img("fresh", &[], 0),
        child("sig-fresh", &["fresh"], 0),
    ];
    let out = expired(&p, &images);
    assert_eq!(
        names(&out),
        ["index", "child", "sbom-child", "sig-index", "sig-sbom"],
        "each dependent after its parents (then by push time and digest)"
    );
    // Old referrers of a fresh subject are not expired by themselves.
    let images = [img("fresh", &[], 0), child("old-sig", &["fresh"], 30)];
    assert!(expired(&p, &images).is_empty());
}

#[test]
fn a_referrer_whose_subject_is_not_in_the_repository_is_an_image_of_its_own() {
    let p = policy(&rule(
        1,
        r#"{"tagStatus":"untagged","countType":"sinceImagePushed","countUnit":"days","countNumber":1}"#,
    ));
    let images = [child("dangling-sig", &["sha256:gone"], 5)];
    assert_eq!(names(&expired(&p, &images)), ["dangling-sig"]);
}

#[test]
fn a_tagged_child_is_not_taken_with_its_index() {
    let p = policy(&rule(
        1,
        r#"{"tagStatus":"tagged","tagPrefixList":["v"],"countType":"sinceImagePushed","countUnit":"days","countNumber":1}"#,
    ));
    let mut tagged_child = child("amd64", &["index"], 10);
    tagged_child.tags = vec!["amd64-only".into()];
    let images = [
        img("index", &["v1"], 10),
        tagged_child,
        child("arm64", &["index"], 10),
    ];
    assert_eq!(names(&expired(&p, &images)), ["index", "arm64"]);
}

// ---- the grammar and ECR's validation rules ----

#[test]
fn valid_policies_of_the_user_guide_parse() {
    let p = policy(&format!(
        "{},{},{}",
        rule(
            1,
            r#"{"tagStatus":"tagged","tagPatternList":["prod*"],"countType":"imageCountMoreThan","countNumber":10}"#
        ),
        rule(
            2,
            r#"{"tagStatus":"untagged","countType":"sinceImagePushed","countUnit":"days","countNumber":14}"#
        ),
        rule(
            3,
            r#"{"tagStatus":"any","storageClass":"standard","countType":"sinceImagePulled","countUnit":"days","countNumber":90}"#
        )
    ));
    assert_eq!(p.rules.len(), 3);
    assert_eq!(p.rules[1].criterion, CountCriterion::SinceImagePushed(14));
    let with_description = r#"{"rules":[{"rulePriority":1,"description":"Expire images older than 14 days","selection":{"tagStatus":"untagged","countType":"sinceImagePushed","countUnit":"days","countNumber":14},"action":{"type":"expire"}}]}"#;
    assert_eq!(
        LifecyclePolicy::parse(with_description).unwrap().rules[0]
            .description
            .as_deref(),
        Some("Expire images older than 14 days")
    );
}

#[test]
fn invalid_policies_are_refused_with_the_reason() {
    let cases: &[(&str, &str)] = &[
        (
            &rule(
                0,
                r#"{"tagStatus":"any","countType":"imageCountMoreThan","countNumber":1}"#,
            ),
            "rulePriority must be a positive integer",
        ),
        (
            &format!(
                "{},{}",
                rule(
                    1,
                    r#"{"tagStatus":"untagged","countType":"imageCountMoreThan","countNumber":1}"#
                ),
                rule(
                    1,
                    r#"{"tagStatus":"tagged","tagPrefixList":["a"],"countType":"imageCountMoreThan","countNumber":1}"#
                )
            ),
            "rulePriority 1 is used by more than one rule",
        ),
        (
            &rule(
                1,
                r#"{"tagStatus":"tagged","countType":"imageCountMoreThan","countNumber":1}"#,
            ),
            "tagPrefixList or tagPatternList is required when tagStatus is 'tagged'",
        ),
        (
            &rule(
                1,
                r#"{"tagStatus":"tagged","tagPrefixList":["a"],"tagPatternList":["a*"],"countType":"imageCountMoreThan","countNumber":1}"#,
            ),
            "cannot both be used",
        ),
        (
            &rule(
                1,
                r#"{"tagStatus":"untagged","tagPrefixList":["a"],"countType":"imageCountMoreThan","countNumber":1}"#,
            ),
            "only allowed when tagStatus is 'tagged'",
        ),
        (
            &rule(
                1,
                r#"{"tagStatus":"tagged","tagPatternList":["*a*b*c*d*"],"countType":"imageCountMoreThan","countNumber":1}"#,
            ),
            "more than 4 wildcard characters",
        ),
        (
            &rule(
                1,
                r#"{"tagStatus":"any","countType":"imageCountMoreThan","countUnit":"days","countNumber":1}"#,
            ),
            "countUnit is not allowed when countType is 'imageCountMoreThan'",
        ),
        (
            &rule(
                1,
                r#"{"tagStatus":"any","countType":"sinceImagePushed","countNumber":1}"#,
            ),
            "countUnit 'days' is required",
        ),
        (
            &rule(
                1,
                r#"{"tagStatus":"any","countType":"sinceImagePushed","countUnit":"hours","countNumber":1}"#,
            ),
            "countUnit \"hours\" is not a valid enum value",
        ),
        (
            &rule(
                1,
                r#"{"tagStatus":"any","countType":"imageCountMoreThan","countNumber":0}"#,
            ),
            "countNumber must be a positive integer",
        ),
        (
            &rule(1, r#"{"tagStatus":"any","countType":"imageCountMoreThan"}"#),
            "missing required properties ([\"countNumber\"])",
        ),
        (
            &rule(
                1,
                r#"{"tagStatus":"some","countType":"imageCountMoreThan","countNumber":1}"#,
            ),
            "tagStatus \"some\" is not a valid enum value",
        ),
        (
            &rule(1, r#"{"countType":"imageCountMoreThan","countNumber":1}"#),
            "missing required properties ([\"tagStatus\"])",
        ),
        (
            &rule(
                1,
                r#"{"tagStatus":"any","countType":"byAge","countNumber":1}"#,
            ),
            "countType \"byAge\" is not a valid enum value",
        ),
        (
            &rule(
                1,
                r#"{"tagStatus":"any","countType":"imageCountMoreThan","countNumber":1,"extra":1}"#,
            ),
            "not allowed by the schema: [\"extra\"]",
        ),
        (
            &format!(
                "{},{}",
                rule(
                    1,
                    r#"{"tagStatus":"any","countType":"imageCountMoreThan","countNumber":1}"#
                ),
                rule(
                    2,
                    r#"{"tagStatus":"untagged","countType":"imageCountMoreThan","countNumber":1}"#
                )
            ),
            "tagStatus 'any' (rulePriority 1) must have the highest rulePriority",
        ),
        (
            &format!(
                "{},{}",
                rule(
                    1,
                    r#"{"tagStatus":"untagged","countType":"imageCountMoreThan","countNumber":1}"#
                ),
                rule(
                    2,
                    r#"{"tagStatus":"untagged","countType":"sinceImagePushed","countUnit":"days","countNumber":1}"#
                )
            ),
            "only one rule may select untagged images",
        ),
        (
            &format!(
                "{},{}",
                rule(
                    1,
                    r#"{"tagStatus":"tagged","tagPrefixList":["a","b"],"countType":"imageCountMoreThan","countNumber":1}"#
                ),
                rule(
                    2,
                    r#"{"tagStatus":"tagged","tagPrefixList":["b","a"],"countType":"imageCountMoreThan","countNumber":5}"#
                )
            ),
            "selects the same tagPrefixList/tagPatternList",
        ),
        (
            &rule(
                1,
                r#"{"tagStatus":"any","storageClass":"archive","countType":"sinceImageTransitioned","countUnit":"days","countNumber":1}"#,
            ),
            "'archive' is not supported",
        ),
        (
            r#"{"rulePriority":1,"selection":{"tagStatus":"any","countType":"imageCountMoreThan","countNumber":1},"action":{"type":"transition","targetStorageClass":"archive"}}"#,
            "'transition' (archival) is not supported",
        ),
        (
            r#"{"rulePriority":1,"selection":{"tagStatus":"any","countType":"imageCountMoreThan","countNumber":1},"action":{"type":"delete"}}"#,
            "type 'delete' is not a valid enum value",
        ),
        (
            r#"{"rulePriority":1,"selection":{"tagStatus":"any","countType":"imageCountMoreThan","countNumber":1}}"#,
            "missing required properties ([\"action\"])",
        ),
        (
            &rule(
                1,
                r#"{"tagStatus":"tagged","tagPrefixList":[],"countType":"imageCountMoreThan","countNumber":1}"#,
            ),
            "tagPrefixList must contain at least one entry",
        ),
    ];
    for (rules, want) in cases {
        let got = parse_err(rules);
        assert!(
            got.contains(want),
            "{rules}\n  refused with: {got}\n  expected: {want}"
        );
    }
    for (text, want) in [
        ("not json", "not valid JSON"),
        ("{}", "missing required properties ([\"rules\"])"),
        (r#"{"rules":[]}"#, "at least one rule"),
        (r#"{"rules":{}}"#, "rules must be an array"),
        (r#"[1]"#, "must be an object"),
    ] {
        let got = LifecyclePolicy::parse(text).unwrap_err().0;
        assert!(got.contains(want), "{text}: {got}");
    }
}
