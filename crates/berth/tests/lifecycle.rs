//! ECR lifecycle policies end to end (issue 12; ECR_REFERENCE.md §2.9, §1.7): boto3
//! (`fixtures/lifecycle_boto3.py`) pushes images through ECR's layer API and PutImage —
//! tagged images with signatures (referrers), untagged images, two multi-arch indexes —
//! into `lc/app`, and three images into `cache/library/alpine`, under a server started
//! with `--lifecycle-exclude-prefixes cache`; it checks the policy validation errors
//! and puts one policy on both repositories, and starts their previews. Then, on this
//! side:
//!
//! - the real `aws ecr wait lifecycle-policy-preview-complete` returns (the waiter of
//!   §1.7, on `GetLifecyclePolicyPreview.status`);
//! - the preview (read page by page) expires exactly what ECR's evaluation rules say:
//!   all but one `prod*` image (rule 1) with their signatures, one index with both its
//!   children (rule 2), all but one untagged image (rule 3) — never an index child or a
//!   referrer without its parent; the excluded repository's preview is refused, naming the exclusion;
//! - `berth admin lifecycle run` enqueues a `lifecycle.evaluate` job for `lc/app` and
//!   says why `cache/library/alpine` is skipped; after the job ran, DescribeImages shows
//!   exactly the preview's images gone (the preview equals what the run expired),
//!   GetLifecyclePolicy has `lastEvaluatedAt`, every expired image has an `ECR Image
//!   Action` DELETE event queued for delivery (§3), and the excluded repository keeps
//!   every image;
//! - `berth admin gc --grace-secs 0` then leaves exactly the blobs the remaining images
//!   reference: no orphan bytes of an expired image, nothing a kept one needs.
//!
//! A second, small server runs with `--lifecycle-interval-secs 1` and no admin command:
//! its janitor's `lifecycle.schedule` job applies a policy by itself, and
//! `lastEvaluatedAt` is set (ECR: policies apply "within 24 hours" with no call).
//!
//! A third checks `sinceImagePulled` end to end: a skopeo pull recorded as
//! `lastRecordedPullTime` keeps an image that push age alone would expire.
//!
//! The heavy scenario runs once, on one server; the schedule needs a server configured
//! for it.
//!
//! Run: `cargo test -p berth --test lifecycle`. boto3 and the AWS CLI come from
//! `.ci/install-clients`; outside CI a missing client makes the test print `SKIPPED`.

mod common;

use common::*;
use serde_json::Value;
use std::collections::BTreeSet;
use std::process::Command;
use std::time::{Duration, Instant};

const APP: &str = "lc/app";
const CACHED: &str = "cache/library/alpine";

fn aws_env(reg: &Registry, c: &mut Command) {
    common::aws_env(c, &reg.data_dir().join("admin-credentials"));
}

/// Runs one phase of `lifecycle_boto3.py`; returns the JSON it prints.
fn boto3(reg: &Registry, args: &[&str]) -> Value {
    let mut c = Command::new(oras_python());
    c.arg(fixture("lifecycle_boto3.py"))
        .arg(args[0])
        .arg(reg.url(""))
        .args(&args[1..]);
    aws_env(reg, &mut c);
    let o = run_unchecked(&mut c, LONG);
    assert!(
        o.success(),
        "boto3 phase {} failed:\n{}\n{}",
        args[0],
        o.describe(),
        reg.log_tail()
    );
    parse_json(&o)
}

/// `berth admin …` on the server's data directory (the server keeps running).
fn admin(reg: &Registry, args: &[&str]) -> String {
    let mut c = Command::new(env!("CARGO_BIN_EXE_berth"));
    c.arg("admin")
        .arg("--data-dir")
        .arg(reg.data_dir())
        .args(args)
        .env("BERTH_LIFECYCLE_EXCLUDE_PREFIXES", "cache");
    run(&mut c, SHORT).stdout
}

fn strings(v: &Value) -> Vec<String> {
    v.as_array()
        .unwrap_or(&Vec::new())
        .iter()
        .map(|s| s.as_str().unwrap().to_string())
        .collect()
}

/// The job's row once it finished (`berth admin jobs show`), waiting for the server's
/// runner to pick it up.
fn finished_job(reg: &Registry, id: i64) -> Value {
    let deadline = Instant::now() + LONG;
    loop {
        let job: Value = serde_json::from_str(&admin(reg, &["jobs", "show", &id.to_string()]))
            .expect("jobs show prints JSON");
        match job["state"].as_str() {
            Some("succeeded") => return job,
            Some("dead") | Some("cancelled") => {
                panic!("job {id} failed: {job}\n{}", reg.log_tail())
            }
            _ => {}
        }
        assert!(
            Instant::now() < deadline,
            "job {id} did not finish: {job}\n{}",
            reg.log_tail()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[test]
fn lifecycle_preview_equals_the_run_and_excluded_prefixes_survive() {
    const T: &str = "lifecycle_preview_equals_the_run_and_excluded_prefixes_survive";
    if !require(T, &["boto3", "aws"]) {
        return;
    }
    let reg = Registry::start_secured(&["--lifecycle-exclude-prefixes", "cache"]);
    let pushed = boto3(&reg, &["setup"]);

    // §1.7 waiter LifecyclePolicyPreviewComplete: the real AWS CLI polls
    // GetLifecyclePolicyPreview until status is COMPLETE.
    {
        let repo = APP;
        let mut wait = Command::new(aws_cli());
        aws_env(&reg, &mut wait);
        wait.args([
            "ecr",
            "wait",
            "lifecycle-policy-preview-complete",
            "--endpoint-url",
            &reg.url(""),
            "--repository-name",
            repo,
        ]);
        run(&mut wait, LONG);
    }

    // §2.9 evaluation, as the preview shows it.
    let preview = boto3(&reg, &["preview", APP]);
    let results = preview.as_array().unwrap();
    let expired: BTreeSet<String> = results
        .iter()
        .map(|r| r["digest"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(expired.len(), results.len(), "each image once: {preview}");
    let rule_of = |d: &str| {
        results
            .iter()
            .find(|r| r["digest"] == d)
            .map(|r| r["rule"].as_u64().unwrap())
    };
    // Rule 1 keeps one of the three prod images; each expired one takes its signature
    // (a referrer) with it, and a kept one keeps its signature.
    let prod = strings(&pushed["prod"]);
    let gone_prod: Vec<&String> = prod.iter().filter(|d| expired.contains(*d)).collect();
    assert_eq!(gone_prod.len(), 2, "all but one prod image: {preview}");
    for d in &prod {
        let sig = pushed["prod_sigs"][d].as_str().unwrap();
        assert_eq!(
            expired.contains(d),
            expired.contains(sig),
            "a signature goes exactly with its subject {d}: {preview}"
        );
        if expired.contains(d) {
            assert_eq!((rule_of(d), rule_of(sig)), (Some(1), Some(1)));
        }
    }
    // Rule 2 keeps one of the two indexes; the other goes with both children, and the
    // kept index keeps its children (index children are never expired on their own,
    // though they are untagged and rule 3 keeps only one untagged image).
    let indexes = pushed["indexes"].as_object().unwrap();
    let gone_index: Vec<&String> = indexes.keys().filter(|d| expired.contains(*d)).collect();
    assert_eq!(gone_index.len(), 1, "{preview}");
    for (index, children) in indexes {
        for c in strings(children) {
            assert_eq!(
                expired.contains(index),
                expired.contains(&c),
                "child {c} follows index {index}: {preview}"
            );
            if expired.contains(&c) {
                assert_eq!(rule_of(&c), Some(2), "a child carries its index's rule");
            }
        }
    }
    // Rule 3 keeps one of the four untagged images.
    let untagged = strings(&pushed["untagged"]);
    let gone_untagged: Vec<&String> = untagged.iter().filter(|d| expired.contains(*d)).collect();
    assert_eq!(gone_untagged.len(), 3, "{preview}");
    assert!(gone_untagged.iter().all(|d| rule_of(d) == Some(3)));
    assert_eq!(
        expired.len(),
        2 + 2 + 1 + 2 + 3,
        "nothing else (dev-1 stays): {preview}"
    );

    // The excluded repository's preview says why it would expire nothing (the setup
    // phase checked the error's type and words).
    assert!(
        pushed["cached_preview_error"]
            .as_str()
            .is_some_and(|m| m.contains(CACHED)),
        "{}",
        pushed["cached_preview_error"]
    );

    // On demand: `berth admin lifecycle run` (a repository that does not exist is
    // named as such, not as one without a policy).
    let mut missing = Command::new(env!("CARGO_BIN_EXE_berth"));
    missing
        .arg("admin")
        .arg("--data-dir")
        .arg(reg.data_dir())
        .args(["lifecycle", "run", "--repository", "lc/no-such-repo"]);
    let o = run_unchecked(&mut missing, SHORT);
    assert!(
        !o.success()
            && o.stderr
                .contains("repository lc/no-such-repo does not exist"),
        "{}",
        o.describe()
    );
    let out = admin(&reg, &["lifecycle", "run"]);
    let lines: Vec<Value> = out
        .lines()
        .map(|l| serde_json::from_str(l).expect("one JSON object per line"))
        .collect();
    assert_eq!(lines.len(), 2, "{out}");
    let cached_line = lines.iter().find(|l| l["repository"] == CACHED).unwrap();
    assert_eq!(cached_line["excluded"], true, "{out}");
    assert!(
        cached_line["reason"]
            .as_str()
            .unwrap()
            .contains("excluded prefix \"cache\""),
        "{out}"
    );
    let app_line = lines.iter().find(|l| l["repository"] == APP).unwrap();
    let job = finished_job(&reg, app_line["job"].as_i64().expect("a job ID"));
    let ran: BTreeSet<String> = job["result"]["expired"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["imageDigest"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(ran, expired, "the run expired exactly the preview: {job}");

    // DescribeImages: exactly the preview's images are gone; lastEvaluatedAt is set.
    let after = boto3(&reg, &["images", APP]);
    let left: BTreeSet<String> = after["images"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["digest"].as_str().unwrap().to_string())
        .collect();
    assert!(left.is_disjoint(&expired), "{after}");
    assert_eq!(left.len(), 3 + 3 + 4 + 6 + 1 - expired.len(), "{after}");
    assert!(after["lastEvaluatedAt"].as_f64().is_some(), "{after}");
    let cached = boto3(&reg, &["images", CACHED]);
    assert_eq!(
        cached["images"].as_array().unwrap().len(),
        3,
        "the excluded repository keeps every image: {cached}"
    );
    assert_eq!(cached["lastEvaluatedAt"], Value::Null, "never evaluated");

    // §3: one `ECR Image Action` DELETE per expired image (per tag for tagged ones),
    // enqueued with the deletion.
    let fanout: Value = serde_json::from_str(&admin(
        &reg,
        &["jobs", "list", "--kind", "event.fanout", "--limit", "1000"],
    ))
    .unwrap();
    let deleted: BTreeSet<String> = fanout
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|j| {
            let event: Value = serde_json::from_str(j["payload"]["event"].as_str()?).ok()?;
            (event["detail-type"] == "ECR Image Action"
                && event["detail"]["action-type"] == "DELETE"
                && event["detail"]["repository-name"] == APP)
                .then(|| {
                    event["detail"]["image-digest"]
                        .as_str()
                        .unwrap()
                        .to_string()
                })
        })
        .collect();
    assert_eq!(deleted, expired, "a DELETE event per expired image");

    // Issue 12, "after GC no orphan bytes remain": a collection with grace 0 (nothing is
    // being pushed now) leaves in storage exactly the blobs that the images still in
    // either repository reference, read back through BatchGetImage.
    let before_gc = stored_digests(&reg.data_dir());
    let report = admin(&reg, &["gc", "--grace-secs", "0"]);
    let referenced: BTreeSet<String> = strings(&boto3(&reg, &["blobs", APP, CACHED]))
        .into_iter()
        .collect();
    let stored = stored_digests(&reg.data_dir());
    assert_eq!(
        stored, referenced,
        "no orphan and no missing blob after GC: {report}"
    );
    assert!(
        before_gc.len() > stored.len(),
        "the expired images' own blobs were in storage before the collection: {report}"
    );
}

/// The blob digests in FsStore's layout (`blobs/sha256/<hh>/<hex>` under the data
/// directory, crates/berth-store/src/fs.rs).
fn stored_digests(data_dir: &std::path::Path) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    for shard in std::fs::read_dir(data_dir.join("blobs/sha256"))
        .unwrap()
        .flatten()
    {
        for f in std::fs::read_dir(shard.path()).unwrap().flatten() {
            out.insert(format!("sha256:{}", f.file_name().to_string_lossy()));
        }
    }
    out
}

/// ECR applies lifecycle policies by itself, with no call (§2.9, "within 24 hours"):
/// with `--lifecycle-interval-secs 1`, the janitor's `lifecycle.schedule` job enqueues
/// the repository's `lifecycle.evaluate` job, which expires two of three untagged images
/// and sets `lastEvaluatedAt`.
#[test]
fn scheduled_lifecycle_runs_apply_policies_without_a_call() {
    const T: &str = "scheduled_lifecycle_runs_apply_policies_without_a_call";
    if !require(T, &["boto3"]) {
        return;
    }
    let reg = Registry::start_secured(&["--lifecycle-interval-secs", "1"]);
    let pushed = boto3(&reg, &["scheduled", "sched/app"]);
    assert_eq!(pushed.as_array().unwrap().len(), 3);
    let deadline = Instant::now() + LONG;
    let after = loop {
        let after = boto3(&reg, &["images", "sched/app"]);
        if after["lastEvaluatedAt"].is_number() {
            break after;
        }
        assert!(
            Instant::now() < deadline,
            "no scheduled evaluation: {after}\n{}",
            reg.log_tail()
        );
        std::thread::sleep(Duration::from_millis(500));
    };
    assert_eq!(
        after["images"].as_array().unwrap().len(),
        1,
        "one untagged image kept: {after}"
    );
    let runs: Value = serde_json::from_str(&admin(
        &reg,
        &[
            "jobs",
            "list",
            "--kind",
            "lifecycle.schedule",
            "--state",
            "succeeded",
        ],
    ))
    .unwrap();
    assert!(!runs.as_array().unwrap().is_empty(), "{runs}");
}

/// `aws ecr <args>` as the administrator; the parsed output.
fn ecr(reg: &Registry, args: &[&str]) -> Value {
    let mut c = Command::new(aws_cli());
    aws_env(reg, &mut c);
    c.args(["ecr", "--endpoint-url", &reg.url(""), "--output", "json"])
        .args(args);
    let o = run(&mut c, LONG);
    if o.stdout.trim().is_empty() {
        Value::Null
    } else {
        parse_json(&o)
    }
}

// ECR_REFERENCE §2.9 `countType: sinceImagePulled`: an image expires when its last
// recorded pull (ECR's lastRecordedPullTime; its push when never pulled) is older than
// `countNumber` days. Three images pushed "ten days ago" (their push times moved back
// in the database, the only way to age an image in a test): one pulled now by skopeo,
// one pulled eight days ago, one never — the policy of five days keeps only the first.
#[test]
fn since_image_pulled_keeps_what_was_pulled_recently() {
    const T: &str = "since_image_pulled_keeps_what_was_pulled_recently";
    if !require(T, &["aws", "skopeo", "umoci"]) {
        return;
    }
    let reg = Registry::start();
    let dir = tempfile::tempdir().unwrap();
    let mut digest = std::collections::BTreeMap::new();
    for name in ["recent", "old", "never"] {
        let layout = dir.path().join(name);
        umoci_image(&layout, "v1", "amd64", &[("etc/pulled", name.as_bytes())]);
        let d = skopeo_push_layout(&layout, "v1", &reg.image(&format!("lc/pulled:{name}")));
        digest.insert(name, d);
    }
    // A real pull of `recent` (manifest GET) records its pull time.
    let o = run(
        skopeo().args([
            "inspect",
            "--raw",
            "--tls-verify=false",
            &format!("docker://{}", reg.image("lc/pulled:recent")),
        ]),
        LONG,
    );
    assert!(o.success(), "{}", o.describe());
    let images = ecr(&reg, &["describe-images", "--repository-name", "lc/pulled"]);
    let pulled: Vec<&Value> = images["imageDetails"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|i| i.get("lastRecordedPullTime").is_some())
        .collect();
    assert_eq!(
        pulled.len(),
        1,
        "only the pulled image has a pull time: {images}"
    );
    assert_eq!(pulled[0]["imageDigest"], digest["recent"].as_str());

    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let ten_days_ago = now - 10 * 86_400;
    let eight_days_ago = now - 8 * 86_400;
    let age = format!(
        "import sqlite3, sys\n\
         db = sqlite3.connect(sys.argv[1], timeout=30)\n\
         db.execute(\"UPDATE manifests SET pushed_at = {ten_days_ago} WHERE repository_id = \
         (SELECT id FROM repositories WHERE name = 'lc/pulled')\")\n\
         db.execute(\"UPDATE manifests SET last_pulled_at = {eight_days_ago} WHERE digest = '{}'\")\n\
         db.commit()\n",
        digest["old"]
    );
    run(
        Command::new(oras_python())
            .args(["-c", &age])
            .arg(reg.data_dir().join("metadata.db")),
        SHORT,
    );

    let policy = r#"{"rules":[{"rulePriority":1,"description":"not pulled for 5 days",
        "selection":{"tagStatus":"any","countType":"sinceImagePulled","countUnit":"days","countNumber":5},
        "action":{"type":"expire"}}]}"#;
    ecr(
        &reg,
        &[
            "put-lifecycle-policy",
            "--repository-name",
            "lc/pulled",
            "--lifecycle-policy-text",
            policy,
        ],
    );
    let out = admin(&reg, &["lifecycle", "run", "--repository", "lc/pulled"]);
    let line: Value = serde_json::from_str(out.lines().next().unwrap()).unwrap();
    let job = finished_job(&reg, line["job"].as_i64().expect("a job ID"));
    let expired: BTreeSet<String> = job["result"]["expired"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["imageDigest"].as_str().unwrap().to_string())
        .collect();
    let want: BTreeSet<String> = [digest["old"].clone(), digest["never"].clone()].into();
    assert_eq!(expired, want, "{job}");
    let left = ecr(&reg, &["describe-images", "--repository-name", "lc/pulled"]);
    let left: Vec<&str> = left["imageDetails"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["imageDigest"].as_str().unwrap())
        .collect();
    assert_eq!(left, [digest["recent"].as_str()]);
}
