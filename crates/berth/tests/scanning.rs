//! Image scanning end to end with real clients (issue 11; ECR_REFERENCE.md §2.10, §3):
//! an image built with `umoci` whose one layer holds real package metadata — a Debian
//! `os-release` and dpkg `status` (an `openssl` whose version needs tilde ordering, a
//! `zlib1g` with an epoch), an old `urllib3` dist-info and an old `lodash` under
//! `node_modules` — is pushed with `skopeo` into a repository the AWS CLI set to scan on
//! push, and into a second one, scanned with `start-image-scan`. The AWS CLI's own
//! waiter (`aws ecr wait image-scan-complete`) returns, and `describe-image-scan-findings`
//! lists exactly what an independent matcher written here computes from the imported
//! OSV files (PyPI by the records' `versions` lists, npm by a numeric comparison of
//! plain versions, the hand-written Debian records by construction), with ECR's
//! attributes. The second repository's scan reads no layer (the inventory is cached per
//! layer digest: `berth_scan_layer_reads_total` on `/metrics`). A never-scanned image is
//! `ScanNotFoundException`. Then `berth admin vulndb import` of one more Debian record
//! re-matches the stored inventories (continuous scanning) without reading a layer, and
//! the findings show the new vulnerability. Finally `berth scan gate` fails on the HIGH
//! findings (as many as ECR's `findingSeverityCounts` say), lists them, and passes when
//! each is accepted with `--ignore`.
//!
//! OSV data: `../shared/vulndb` beside the checkout (or `$BERTH_SHARED_DIR`, else the
//! subset committed in `crates/berth-scan/tests/data/osv`); the
//! records naming `urllib3` (PyPI) and `lodash` (npm) are imported, plus two Debian
//! records written here. Run: `cargo test -p berth --test scanning`.

mod common;

use common::*;
use serde_json::Value;
use std::collections::BTreeSet;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

const T: &str = "aws_cli_scans_an_image_and_reads_its_findings";

/// The OSV data: `$BERTH_SHARED_DIR/vulndb/osv`, else `../shared/vulndb/osv` beside the
/// checkout, else the subset committed in `crates/berth-scan/tests/data/osv` (it holds
/// every record naming urllib3 and lodash).
fn shared_osv() -> PathBuf {
    let shared = std::env::var_os("BERTH_SHARED_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace_root().join("../shared"))
        .join("vulndb/osv");
    if shared.is_dir() {
        return shared;
    }
    workspace_root().join("crates/berth-scan/tests/data/osv")
}

/// `aws ecr <args>` as the bootstrap administrator; the raw output.
fn aws(reg: &Registry, args: &[&str]) -> Output {
    let mut c = Command::new(aws_cli());
    aws_admin_env(reg, &mut c);
    c.args(["--endpoint-url", &reg.url(""), "--output", "json", "ecr"])
        .args(args);
    run_unchecked(&mut c, LONG)
}

fn aws_ok(reg: &Registry, args: &[&str]) -> Value {
    let o = aws(reg, args);
    assert!(
        o.success(),
        "aws ecr {args:?}:\n{}\n{}",
        o.describe(),
        reg.log_tail()
    );
    if o.stdout.trim().is_empty() {
        Value::Null
    } else {
        parse_json(&o)
    }
}

fn admin(reg: &Registry, args: &[&str]) -> Value {
    let mut c = Command::new(env!("CARGO_BIN_EXE_berth"));
    c.arg("admin")
        .arg("--data-dir")
        .arg(reg.data_dir())
        .args(args);
    parse_json(&run(&mut c, LONG))
}

fn layer_reads(reg: &Registry) -> u64 {
    let text = http("GET", &reg.url("/metrics"), &[], None).text();
    text.lines()
        .find(|l| l.starts_with("berth_scan_layer_reads_total"))
        .and_then(|l| l.split_whitespace().last())
        .map(|v| v.parse::<f64>().unwrap() as u64)
        .unwrap_or(0)
}

const STATUS: &str = "Package: openssl\nStatus: install ok installed\nVersion: 3.0.11-1~deb12u1\nArchitecture: amd64\n\nPackage: zlib1g\nStatus: install ok installed\nSource: zlib\nVersion: 1:1.2.13.dfsg-1\nArchitecture: amd64\n";
/// Fixed in a version that sorts above the installed one only by the tilde rule.
const DSA_OPENSSL: &str = r#"{"id":"DSA-5532-1","modified":"2023-10-26T00:00:00Z","aliases":["CVE-2023-5678"],"summary":"openssl security update","affected":[{"package":{"ecosystem":"Debian:12","name":"openssl"},"ranges":[{"type":"ECOSYSTEM","events":[{"introduced":"0"},{"fixed":"3.0.11-1~deb12u2"}]}],"ecosystem_specific":{"urgency":"high"}}]}"#;
/// Fixed at exactly the installed version (epoch 1): not affected.
const DSA_ZLIB_FIXED: &str = r#"{"id":"DLA-0001-1","modified":"2023-01-01T00:00:00Z","aliases":["CVE-2022-37434"],"affected":[{"package":{"ecosystem":"Debian:12","name":"zlib"},"ranges":[{"type":"ECOSYSTEM","events":[{"introduced":"0"},{"fixed":"1:1.2.13.dfsg-1"}]}]}]}"#;
/// Imported later: affects the installed zlib (fixed above it, epoch 1).
const DSA_ZLIB_NEW: &str = r#"{"id":"DSA-9999-1","modified":"2026-12-01T00:00:00Z","aliases":["CVE-2026-0001"],"affected":[{"package":{"ecosystem":"Debian:12","name":"zlib"},"ranges":[{"type":"ECOSYSTEM","events":[{"introduced":"0"},{"fixed":"1:1.2.13.dfsg-2"}]}],"ecosystem_specific":{"urgency":"medium"}}]}"#;

// --- The independent matcher ---------------------------------------------------------

fn numbers(v: &str) -> Vec<u64> {
    v.split('.').map(|n| n.parse().unwrap()).collect()
}

/// The name ECR shows for a record: its CVE, else its ID.
fn display_name(r: &Value) -> String {
    r["aliases"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .filter(|a| a.starts_with("CVE-"))
        .min()
        .map(str::to_owned)
        .unwrap_or_else(|| r["id"].as_str().unwrap().to_owned())
}

/// (package, finding name) pairs for urllib3 1.26.5 and lodash 4.17.15 from the copied
/// OSV files, plus the hand-written Debian records' known answers.
fn expected(osv: &Path) -> BTreeSet<(String, String)> {
    let mut out = BTreeSet::new();
    for entry in fs::read_dir(osv).unwrap().flatten() {
        let r: Value = serde_json::from_slice(&fs::read(entry.path()).unwrap()).unwrap();
        if !r["withdrawn"].is_null() {
            continue;
        }
        for a in r["affected"].as_array().into_iter().flatten() {
            let (eco, name) = (
                a["package"]["ecosystem"].as_str().unwrap_or(""),
                a["package"]["name"].as_str().unwrap_or(""),
            );
            let hit = match (eco, name) {
                ("PyPI", "urllib3") => a["versions"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .any(|v| v == "1.26.5"),
                ("npm", "lodash") => a["ranges"].as_array().into_iter().flatten().any(|range| {
                    let mut hit = false;
                    for e in range["events"].as_array().into_iter().flatten() {
                        let v = numbers("4.17.15");
                        if let Some(i) = e["introduced"].as_str() {
                            hit |= i == "0" || v >= numbers(i);
                        } else if let Some(f) = e["fixed"].as_str() {
                            hit &= v < numbers(f);
                        }
                    }
                    hit
                }),
                _ => false,
            };
            if hit {
                out.insert((name.to_owned(), display_name(&r)));
            }
        }
    }
    out.insert(("openssl".into(), "CVE-2023-5678".into()));
    out
}

/// The value of a finding's attribute `key` (`package_name`, `package_version`, …).
fn attribute(f: &Value, key: &str) -> Option<String> {
    f["attributes"]
        .as_array()?
        .iter()
        .find(|a| a["key"] == key)
        .and_then(|a| a["value"].as_str())
        .map(str::to_owned)
}

fn findings(reg: &Registry, repo: &str) -> (Value, BTreeSet<(String, String)>) {
    let mut all = Vec::new();
    let mut token: Option<String> = None;
    let mut last;
    loop {
        let mut args = vec![
            "describe-image-scan-findings",
            "--repository-name",
            repo,
            "--image-id",
            "imageTag=v1",
            "--max-results",
            "7",
        ];
        if let Some(t) = &token {
            args.extend(["--next-token", t]);
        }
        // The CLI paginates on its own; --no-paginate so each page is one call.
        args.push("--no-paginate");
        last = aws_ok(reg, &args);
        all.extend(
            last["imageScanFindings"]["findings"]
                .as_array()
                .cloned()
                .unwrap_or_default(),
        );
        match last["nextToken"].as_str() {
            Some(t) => token = Some(t.to_owned()),
            None => break,
        }
    }
    let got = all
        .iter()
        .map(|f| {
            assert!(attribute(f, "package_version").is_some(), "{f}");
            (
                attribute(f, "package_name").unwrap(),
                f["name"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    last["imageScanFindings"]["findings"] = Value::Array(all);
    (last, got)
}

#[test]
fn aws_cli_scans_an_image_and_reads_its_findings() {
    if !require(T, &["aws", "skopeo", "umoci", "boto3"]) {
        return;
    }
    let shared = shared_osv();
    // Pulls of images under scan/blocked with HIGH or CRITICAL findings are refused;
    // the openssl advisory below is an accepted risk.
    let reg = Registry::start_with(
        &[
            "--allow-anonymous",
            "--scan-block-pulls-at",
            "HIGH",
            "--scan-block-pulls-repositories",
            "scan/blocked",
            "--scan-block-pulls-ignore",
            "CVE-2023-5678",
        ],
        true,
    );
    let tmp = tempfile::tempdir().unwrap();

    // The vulnerability data: the real records naming urllib3 and lodash, and the Debian
    // records written above.
    let osv = tmp.path().join("osv");
    fs::create_dir(&osv).unwrap();
    for (eco, needle) in [("PyPI", "\"urllib3\""), ("npm", "\"lodash\"")] {
        for entry in fs::read_dir(shared.join(eco)).unwrap().flatten() {
            let text = fs::read_to_string(entry.path()).unwrap();
            if text.contains(needle) && entry.file_name() != "PROVENANCE.json" {
                fs::write(osv.join(entry.file_name()), text).unwrap();
            }
        }
    }
    fs::write(osv.join("DSA-5532-1.json"), DSA_OPENSSL).unwrap();
    fs::write(osv.join("DLA-0001-1.json"), DSA_ZLIB_FIXED).unwrap();
    let imported = admin(&reg, &["vulndb", "import", osv.to_str().unwrap()]);
    assert_eq!(imported["inserted"], imported["records"], "{imported}");
    let want = expected(&osv);
    assert!(
        want.iter().any(|(p, _)| p == "urllib3") && want.iter().any(|(p, _)| p == "lodash"),
        "{want:?}"
    );

    // The image: one layer of real package metadata.
    let layout = tmp.path().join("layout");
    let meta =
        "Metadata-Version: 2.1\nName: urllib3\nVersion: 1.26.5\nSummary: HTTP library\n\nbody\n";
    umoci_image(
        &layout,
        "v1",
        "amd64",
        &[
            (
                "/etc/os-release",
                b"PRETTY_NAME=\"Debian GNU/Linux 12 (bookworm)\"\nID=debian\nVERSION_ID=\"12\"\n",
            ),
            ("/var/lib/dpkg/status", STATUS.as_bytes()),
            (
                "/usr/lib/python3/dist-packages/urllib3-1.26.5.dist-info/METADATA",
                meta.as_bytes(),
            ),
            (
                "/srv/app/node_modules/lodash/package.json",
                br#"{"name":"lodash","version":"4.17.15"}"#,
            ),
        ],
    );

    // Scan on push (PutImageScanningConfiguration), then a manual scan in a second
    // repository, then an image nobody scanned.
    aws_ok(
        &reg,
        &["create-repository", "--repository-name", "scan/onpush"],
    );
    let put = aws_ok(
        &reg,
        &[
            "put-image-scanning-configuration",
            "--repository-name",
            "scan/onpush",
            "--image-scanning-configuration",
            "scanOnPush=true",
        ],
    );
    assert_eq!(
        put["imageScanningConfiguration"]["scanOnPush"], true,
        "{put}"
    );
    let digest = skopeo_push_layout(&layout, "v1", &reg.image("scan/onpush:v1"));
    let wait = |repo: &str| {
        // Scan on push starts in a job right after the push; the waiter treats
        // ScanNotFoundException as failure, so first see the scan exist.
        let deadline = std::time::Instant::now() + LONG;
        while aws(
            &reg,
            &[
                "describe-image-scan-findings",
                "--repository-name",
                repo,
                "--image-id",
                "imageTag=v1",
            ],
        )
        .stderr
        .contains("(ScanNotFoundException)")
        {
            assert!(
                std::time::Instant::now() < deadline,
                "no scan of {repo} started\n{}",
                reg.log_tail()
            );
            std::thread::sleep(std::time::Duration::from_millis(200));
        }
        let o = aws(
            &reg,
            &[
                "wait",
                "image-scan-complete",
                "--repository-name",
                repo,
                "--image-id",
                "imageTag=v1",
            ],
        );
        assert!(
            o.success(),
            "waiter for {repo}:\n{}\n{}",
            o.describe(),
            reg.log_tail()
        );
    };
    wait("scan/onpush");
    let reads_after_first = layer_reads(&reg);
    assert_eq!(reads_after_first, 1, "one layer read");

    let (page, got) = findings(&reg, "scan/onpush");
    assert_eq!(
        got, want,
        "Berth's findings against the independent matcher's"
    );
    assert_eq!(page["imageScanStatus"]["status"], "COMPLETE", "{page}");
    assert_eq!(page["imageId"]["imageDigest"], digest.as_str());
    let f = &page["imageScanFindings"];
    assert!(
        f["vulnerabilitySourceUpdatedAt"].is_number() && f["imageScanCompletedAt"].is_number(),
        "{f}"
    );
    let counts = f["findingSeverityCounts"].as_object().unwrap();
    assert_eq!(
        counts.values().map(|v| v.as_u64().unwrap()).sum::<u64>() as usize,
        want.len(),
        "{f}"
    );
    assert!(
        counts.values().all(|v| v.as_u64().unwrap() > 0),
        "only severities with findings: {f}"
    );
    let openssl = f["findings"]
        .as_array()
        .unwrap()
        .iter()
        .find(|x| x["name"] == "CVE-2023-5678")
        .unwrap();
    assert_eq!(openssl["severity"], "HIGH", "Debian's urgency: {openssl}");
    let attrs: Vec<(String, String)> = openssl["attributes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| {
            (
                a["key"].as_str().unwrap().to_owned(),
                a["value"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    assert!(
        attrs.contains(&("package_version".into(), "3.0.11-1~deb12u1".into())),
        "{attrs:?}"
    );
    assert!(
        attrs.contains(&("fixed_in_versions".into(), "3.0.11-1~deb12u2".into())),
        "{attrs:?}"
    );
    let with_cvss = f["findings"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|x| {
            x["attributes"]
                .as_array()
                .unwrap()
                .iter()
                .any(|a| a["key"] == "CVSS3_VECTOR")
        })
        .count();
    assert!(with_cvss > 0, "GHSA records carry CVSS v3 vectors: {f}");

    // StartImageScan on the same image in another repository: its layer is cached.
    skopeo_push_layout(&layout, "v1", &reg.image("scan/manual:v1"));
    aws_ok(
        &reg,
        &["describe-images", "--repository-name", "scan/manual"],
    );
    let e = aws(
        &reg,
        &[
            "describe-image-scan-findings",
            "--repository-name",
            "scan/manual",
            "--image-id",
            "imageTag=v1",
        ],
    );
    assert!(
        e.stderr.contains("(ScanNotFoundException)"),
        "never scanned: {}",
        e.describe()
    );
    let started = aws_ok(
        &reg,
        &[
            "start-image-scan",
            "--repository-name",
            "scan/manual",
            "--image-id",
            "imageTag=v1",
        ],
    );
    assert_eq!(
        started["imageScanStatus"]["status"], "IN_PROGRESS",
        "{started}"
    );
    wait("scan/manual");
    assert_eq!(findings(&reg, "scan/manual").1, want);
    assert_eq!(
        layer_reads(&reg),
        reads_after_first,
        "the second image read no layer"
    );

    // Continuous scanning: a new advisory flips the findings of both images, no layer read.
    let more = tmp.path().join("more");
    fs::create_dir(&more).unwrap();
    fs::write(more.join("DSA-9999-1.json"), DSA_ZLIB_NEW).unwrap();
    let imported = admin(&reg, &["vulndb", "import", more.to_str().unwrap()]);
    let job = imported["rematchJob"]
        .as_i64()
        .unwrap_or_else(|| panic!("{imported}"));
    let deadline = std::time::Instant::now() + LONG;
    loop {
        let j = admin(&reg, &["jobs", "show", &job.to_string()]);
        if j["state"] == "succeeded" {
            assert_eq!(j["result"]["changed"], 2, "{j}");
            break;
        }
        assert!(
            std::time::Instant::now() < deadline && j["state"] != "dead",
            "{j}\n{}",
            reg.log_tail()
        );
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
    let mut want_now = want.clone();
    want_now.insert(("zlib1g".into(), "CVE-2026-0001".into()));
    for repo in ["scan/onpush", "scan/manual"] {
        assert_eq!(findings(&reg, repo).1, want_now, "{repo}");
    }
    assert_eq!(
        layer_reads(&reg),
        reads_after_first,
        "re-matching read no layer"
    );

    // `berth scan gate` (issue 11 remediation, issue 13): findings at or above HIGH fail
    // the gate, listed with package, installed and fixed versions; the count agrees with
    // ECR's findingSeverityCounts as the AWS CLI reads them; accepting every one of them
    // with --ignore passes it.
    let (page, _) = findings(&reg, "scan/onpush");
    let counts = &page["imageScanFindings"]["findingSeverityCounts"];
    let severe = counts["HIGH"].as_u64().unwrap_or(0) + counts["CRITICAL"].as_u64().unwrap_or(0);
    assert!(severe > 0, "the fixture has HIGH findings: {counts}");
    let gate = |extra: &[&str]| {
        let mut c = Command::new(env!("CARGO_BIN_EXE_berth"));
        aws_admin_env(&reg, &mut c);
        c.args([
            "scan",
            "gate",
            "--registry",
            &reg.url(""),
            "--repository",
            "scan/onpush",
            "--image-tag",
            "v1",
            "--timeout",
            "60s",
        ])
        .args(extra);
        run_unchecked(&mut c, LONG)
    };
    let o = gate(&["--fail-on", "HIGH"]);
    assert!(!o.success(), "{}", o.describe());
    assert!(
        o.stderr.contains(&format!(
            "{severe} finding(s) at or above HIGH in scan/onpush:v1"
        )),
        "{}",
        o.describe()
    );
    let row = o
        .stdout
        .lines()
        .find(|l| l.contains("CVE-2023-5678"))
        .unwrap_or_else(|| panic!("the openssl finding is listed:\n{}", o.describe()));
    for cell in ["HIGH", "openssl", "3.0.11-1~deb12u1", "3.0.11-1~deb12u2"] {
        assert!(row.contains(cell), "{row}");
    }
    let o = gate(&["--fail-on", "high", "--format", "json"]);
    let listed: Value =
        serde_json::from_str(&o.stdout).unwrap_or_else(|e| panic!("{e}\n{}", o.describe()));
    let names: Vec<String> = listed["findings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["name"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(names.len() as u64, severe, "{listed}");
    let mut accept = vec!["--fail-on", "HIGH"];
    for n in &names {
        accept.extend(["--ignore", n.as_str()]);
    }
    let o = gate(&accept);
    assert!(o.success(), "every HIGH finding accepted: {}", o.describe());
    assert!(
        o.stderr.contains("no finding at or above HIGH"),
        "{}",
        o.describe()
    );

    // DescribeImages carries each scanned image's status and findings summary (botocore
    // ImageDetail.imageScanStatus / imageScanFindingsSummary); a never-scanned image none.
    let images = aws_ok(
        &reg,
        &["describe-images", "--repository-name", "scan/onpush"],
    );
    let detail = &images["imageDetails"][0];
    assert_eq!(detail["imageScanStatus"]["status"], "COMPLETE", "{detail}");
    let summary = &detail["imageScanFindingsSummary"];
    assert_eq!(
        summary["findingSeverityCounts"]
            .as_object()
            .map(|c| c.values().map(|v| v.as_u64().unwrap()).sum::<u64>()),
        Some(want_now.len() as u64),
        "{detail}"
    );
    assert!(summary["imageScanCompletedAt"].is_number(), "{detail}");
    assert!(
        summary["vulnerabilitySourceUpdatedAt"].is_number(),
        "{detail}"
    );

    registry_scanning_rules_decide_scan_on_push(&reg, &layout);
    pulls_with_blocking_findings_are_refused(&reg, &layout, &want_now);
    boto3_ticket_handler_files_tickets_and_tags_the_image(&reg, &layout);
    hostile_layers_fail_the_scan_not_the_server(&reg);
    start_image_scan_refuses_what_it_cannot_scan(&reg, &layout);
}

/// `aws ecr describe-image-scan-findings` on `repo:v1`: whether it answers
/// ScanNotFoundException.
fn never_scanned(reg: &Registry, repo: &str) -> bool {
    let o = aws(
        reg,
        &[
            "describe-image-scan-findings",
            "--repository-name",
            repo,
            "--image-id",
            "imageTag=v1",
        ],
    );
    o.stderr.contains("(ScanNotFoundException)")
}

/// The finished `scan.on_push` job of `repo` (its result says what was decided).
fn scan_on_push_result(reg: &Registry, repo: &str) -> Value {
    let deadline = std::time::Instant::now() + LONG;
    loop {
        let jobs = admin(
            reg,
            &["jobs", "list", "--kind", "scan.on_push", "--limit", "1000"],
        );
        if let Some(j) = jobs
            .as_array()
            .unwrap()
            .iter()
            .find(|j| j["payload"]["repository"] == repo && j["state"] == "succeeded")
        {
            return j["result"].clone();
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no scan.on_push job of {repo}: {jobs}"
        );
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
}

/// ECR PutRegistryScanningConfiguration / GetRegistryScanningConfiguration /
/// BatchGetRepositoryScanningConfiguration (ECR_REFERENCE §2.10): a BASIC rule with a
/// wildcard filter makes pushes to matching repositories scanned, others stay MANUAL;
/// ECR's validation; and a deleted image's scan goes with it.
fn registry_scanning_rules_decide_scan_on_push(reg: &Registry, layout: &Path) {
    let got = aws_ok(reg, &["get-registry-scanning-configuration"]);
    assert_eq!(got["scanningConfiguration"]["scanType"], "BASIC", "{got}");
    assert_eq!(
        got["scanningConfiguration"]["rules"],
        serde_json::json!([]),
        "{got}"
    );

    // ECR's validation, each refusal an InvalidParameterException saying why.
    for (scan_type, rules, why) in [
        (
            "BASIC",
            r#"[{"scanFrequency":"CONTINUOUS_SCAN","repositoryFilters":[{"filter":"scan","filterType":"WILDCARD"}]}]"#,
            "only supported with the ENHANCED scan type",
        ),
        (
            "BASIC",
            r#"[{"scanFrequency":"SCAN_ON_PUSH","repositoryFilters":[{"filter":"Scan/Rule","filterType":"WILDCARD"}]}]"#,
            "must satisfy regular expression",
        ),
        (
            "ENHANCED",
            r#"[{"scanFrequency":"MANUAL","repositoryFilters":[{"filter":"scan","filterType":"WILDCARD"}]}]"#,
            "MANUAL is not a rule of the ENHANCED scan type",
        ),
    ] {
        let bad = aws(
            reg,
            &[
                "put-registry-scanning-configuration",
                "--scan-type",
                scan_type,
                "--rules",
                rules,
            ],
        );
        assert!(
            bad.stderr.contains("(InvalidParameterException)") && bad.stderr.contains(why),
            "{}",
            bad.describe()
        );
    }

    let rules = r#"[{"scanFrequency":"SCAN_ON_PUSH","repositoryFilters":[{"filter":"scan/rule*","filterType":"WILDCARD"}]}]"#;
    let put = aws_ok(
        reg,
        &[
            "put-registry-scanning-configuration",
            "--scan-type",
            "BASIC",
            "--rules",
            rules,
        ],
    );
    assert_eq!(
        put["registryScanningConfiguration"]["rules"][0]["repositoryFilters"][0]["filter"],
        "scan/rule*",
        "{put}"
    );
    let got = aws_ok(reg, &["get-registry-scanning-configuration"]);
    assert_eq!(
        got["scanningConfiguration"], put["registryScanningConfiguration"],
        "{got}"
    );

    // Pushed without a repository-level scanOnPush: the rule decides.
    skopeo_push_layout(layout, "v1", &reg.image("scan/other:v1"));
    skopeo_push_layout(layout, "v1", &reg.image("scan/rule-a:v1"));
    assert_eq!(
        scan_on_push_result(reg, "scan/other")["scanFrequency"],
        "MANUAL"
    );
    assert!(scan_on_push_result(reg, "scan/rule-a")["started"].is_string());
    assert!(never_scanned(reg, "scan/other"));
    assert!(!never_scanned(reg, "scan/rule-a"));

    let batch = aws_ok(
        reg,
        &[
            "batch-get-repository-scanning-configuration",
            "--repository-names",
            "scan/rule-a",
            "scan/other",
            "scan/onpush",
            "scan/missing",
        ],
    );
    let by_name = |n: &str| {
        batch["scanningConfigurations"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["repositoryName"] == n)
            .cloned()
            .unwrap_or_else(|| panic!("{n}: {batch}"))
    };
    let a = by_name("scan/rule-a");
    assert_eq!(
        (a["scanFrequency"].as_str(), a["scanOnPush"].as_bool()),
        (Some("SCAN_ON_PUSH"), Some(false)),
        "{a}"
    );
    assert_eq!(a["appliedScanFilters"][0]["filter"], "scan/rule*", "{a}");
    assert!(
        a["repositoryArn"]
            .as_str()
            .unwrap()
            .ends_with(":repository/scan/rule-a"),
        "{a}"
    );
    assert_eq!(by_name("scan/other")["scanFrequency"], "MANUAL", "{batch}");
    // BASIC: a repository's own (deprecated) scanOnPush still scans on push.
    assert_eq!(
        by_name("scan/onpush")["scanFrequency"],
        "SCAN_ON_PUSH",
        "{batch}"
    );
    assert_eq!(
        batch["failures"][0]["repositoryName"], "scan/missing",
        "{batch}"
    );
    assert_eq!(
        batch["failures"][0]["failureCode"], "REPOSITORY_NOT_FOUND",
        "{batch}"
    );

    // A deleted image's scan goes with it: pushed again, it has none until scanned.
    aws_ok(
        reg,
        &[
            "batch-delete-image",
            "--repository-name",
            "scan/manual",
            "--image-ids",
            "imageTag=v1",
        ],
    );
    skopeo_push_layout(layout, "v1", &reg.image("scan/manual:v1"));
    assert!(
        never_scanned(reg, "scan/manual"),
        "the old scan went with the deleted image"
    );
}

/// Issue 11's remediation, "a blocked pull says why": with `--scan-block-pulls-at HIGH`
/// for `scan/blocked`, the scanned image's manifest GET is `403 DENIED` naming each
/// HIGH/CRITICAL finding not accepted (`--scan-block-pulls-ignore`); before its scan it
/// is served, HEAD still answers, and other repositories are not affected.
fn pulls_with_blocking_findings_are_refused(
    reg: &Registry,
    layout: &Path,
    want: &BTreeSet<(String, String)>,
) {
    let digest = skopeo_push_layout(layout, "v1", &reg.image("scan/blocked:v1"));
    let accept = [("Accept", "application/vnd.oci.image.manifest.v1+json")];
    let url = reg.url("/v2/scan/blocked/manifests/v1");
    assert_eq!(
        http("GET", &url, &accept, None).status,
        200,
        "not scanned yet: served"
    );
    scan_and_wait(reg, "scan/blocked");

    // Which findings must be named: HIGH and CRITICAL ones, from the findings Berth
    // reported (checked against the independent matcher above), minus the accepted one.
    let (page, got) = findings(reg, "scan/blocked");
    assert_eq!(&got, want);
    let blocking: BTreeSet<String> = page["imageScanFindings"]["findings"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| f["severity"] == "HIGH" || f["severity"] == "CRITICAL")
        .map(|f| f["name"].as_str().unwrap().to_owned())
        .filter(|n| n != "CVE-2023-5678")
        .collect();
    assert!(
        !blocking.is_empty(),
        "the test image has HIGH findings besides openssl's: {page}"
    );

    for reference in ["v1", digest.as_str()] {
        let r = http(
            "GET",
            &reg.url(&format!("/v2/scan/blocked/manifests/{reference}")),
            &accept,
            None,
        );
        assert_eq!(r.status, 403, "{}", r.describe());
        assert_eq!(r.oci_error_codes(), ["DENIED"], "{}", r.describe());
        let text = r.text();
        for name in blocking.iter().take(10) {
            assert!(text.contains(name.as_str()), "{name} named: {text}");
        }
        assert!(
            !text.contains("CVE-2023-5678"),
            "the accepted finding is not named: {text}"
        );
    }
    assert_eq!(
        http("HEAD", &url, &accept, None).status,
        200,
        "HEAD reveals only the digest"
    );
    // A real client shows the reason.
    let dest = tempfile::tempdir().unwrap();
    let o = run_unchecked(
        skopeo().args([
            "copy",
            "--src-tls-verify=false",
            &format!("docker://{}", reg.image("scan/blocked:v1")),
            &format!("oci:{}:v1", dest.path().join("out").display()),
        ]),
        LONG,
    );
    assert!(
        !o.success() && o.stderr.contains("refused") && o.stderr.contains("at or above HIGH"),
        "{}",
        o.describe()
    );
    // The same image elsewhere is not under the block.
    let other = http(
        "GET",
        &reg.url("/v2/scan/onpush/manifests/v1"),
        &accept,
        None,
    );
    assert_eq!(other.status, 200, "{}", other.describe());
}

/// Issue 11: "a boto3 handler like the classic Lambda that creates a ticket per CRITICAL
/// finding runs unchanged against Berth, fed by a real webhook delivery"
/// (`fixtures/scan_ticket_handler.py`: EventBridge rule → API destination → handler →
/// DescribeImageScanFindings → tickets, then the image tagged `vulnerable` with
/// BatchGetImage + PutImage, ECR's retagging recipe).
fn boto3_ticket_handler_files_tickets_and_tags_the_image(reg: &Registry, layout: &Path) {
    let digest = skopeo_push_layout(layout, "v1", &reg.image("scan/tickets:v1"));
    let mut c = Command::new(oras_python());
    c.arg(fixture("scan_ticket_handler.py"))
        .arg(reg.url(""))
        .args(["scan/tickets", "v1"]);
    aws_env(&mut c, &reg.data_dir().join("admin-credentials"));
    let o = run_unchecked(&mut c, LONG);
    assert!(o.success(), "{}\n{}", o.describe(), reg.log_tail());
    let out = parse_json(&o);

    let event = &out["event"];
    assert_eq!(event["detail-type"], "ECR Image Scan", "{event}");
    assert_eq!(event["detail"]["image-digest"], digest.as_str(), "{event}");
    assert_eq!(
        event["detail"]["image-tags"],
        serde_json::json!(["v1"]),
        "{event}"
    );

    // One ticket per HIGH or CRITICAL finding, with the package, installed and fixed
    // versions the handler read from the finding's attributes.
    let (page, _) = findings(reg, "scan/tickets");
    let mut want: Vec<(String, String, String)> = page["imageScanFindings"]["findings"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| f["severity"] == "HIGH" || f["severity"] == "CRITICAL")
        .map(|f| {
            let attr = |k: &str| attribute(f, k).unwrap_or_default();
            (
                f["name"].as_str().unwrap().to_owned(),
                attr("package_name"),
                attr("package_version"),
            )
        })
        .collect();
    let mut got: Vec<(String, String, String)> = out["tickets"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| {
            (
                t["cve"].as_str().unwrap().to_owned(),
                t["package"].as_str().unwrap().to_owned(),
                t["installed"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    want.sort();
    got.sort();
    assert!(!want.is_empty());
    assert_eq!(got, want);
    let openssl = out["tickets"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["cve"] == "CVE-2023-5678")
        .unwrap_or_else(|| panic!("{out}"));
    assert_eq!(openssl["fixed"], "3.0.11-1~deb12u2", "{openssl}");

    assert_eq!(out["tagged"], digest.as_str(), "{out}");
    let tagged = aws_ok(
        reg,
        &[
            "describe-images",
            "--repository-name",
            "scan/tickets",
            "--image-ids",
            "imageTag=vulnerable",
        ],
    );
    assert_eq!(
        tagged["imageDetails"][0]["imageDigest"],
        digest.as_str(),
        "{tagged}"
    );
}

/// Writes two hostile gzip layers with Python's tarfile/gzip (independent of Berth's tar
/// code): a path-traversal entry, and a gzip stream corrupted half-way. Prints their
/// paths.
const HOSTILE_LAYERS: &str = r#"
import gzip, io, sys, tarfile
out = sys.argv[1]
def layer(entries):
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.GNU_FORMAT) as t:
        for name, data in entries:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            t.addfile(info, io.BytesIO(data))
    return gzip.compress(buf.getvalue())
open(out + "/traversal", "wb").write(layer([("etc/os-release", b"ID=debian\n"), ("../../etc/shadow", b"x")]))
good = layer([("etc/os-release", b"ID=debian\n"), ("var/lib/dpkg/status", b"Package: a\n" * 4000)])
bad = bytearray(good)
for i in range(len(bad) // 2, len(bad)):
    bad[i] ^= 0x5A
open(out + "/corrupt", "wb").write(bytes(bad))
"#;

/// Pushes `layer` (gzip tar) as the only layer of `repo:v1` through the OCI API
/// (monolithic uploads, distribution-spec § Pushing a blob monolithically); returns the
/// manifest digest.
fn push_raw_image(reg: &Registry, repo: &str, layer: &[u8]) -> String {
    let config =
        br#"{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[]}}"#;
    for blob in [&config[..], layer] {
        let d = berth_test_support::sha256(blob);
        let r = http(
            "POST",
            &reg.url(&format!("/v2/{repo}/blobs/uploads/?digest={d}")),
            &[("Content-Type", "application/octet-stream")],
            Some(blob),
        );
        assert_eq!(r.status, 201, "{}", r.describe());
    }
    let manifest = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                   "digest": berth_test_support::sha256(config), "size": config.len()},
        "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip",
                    "digest": berth_test_support::sha256(layer), "size": layer.len()}],
    })
    .to_string();
    let r = http(
        "PUT",
        &reg.url(&format!("/v2/{repo}/manifests/v1")),
        &[("Content-Type", "application/vnd.oci.image.manifest.v1+json")],
        Some(manifest.as_bytes()),
    );
    assert_eq!(r.status, 201, "{}", r.describe());
    berth_test_support::sha256(manifest.as_bytes())
}

/// Issue 11, "hostile layers: the scan fails cleanly with a reason, the server keeps
/// serving": a path-traversal entry and a corrupt gzip stream, pushed and scanned
/// through a running server, end FAILED with the reason in `imageScanStatus`, and the
/// server answers pulls and scans afterwards.
fn hostile_layers_fail_the_scan_not_the_server(reg: &Registry) {
    let dir = tempfile::tempdir().unwrap();
    run(
        Command::new(oras_python())
            .args(["-c", HOSTILE_LAYERS])
            .arg(dir.path()),
        SHORT,
    );
    for (name, reason) in [
        ("traversal", "has a '..' component (path traversal)"),
        ("corrupt", "is not a readable tar stream"),
    ] {
        let repo = format!("scan/hostile-{name}");
        let layer = fs::read(dir.path().join(name)).unwrap();
        push_raw_image(reg, &repo, &layer);
        aws_ok(
            reg,
            &[
                "start-image-scan",
                "--repository-name",
                &repo,
                "--image-id",
                "imageTag=v1",
            ],
        );
        let deadline = std::time::Instant::now() + LONG;
        let status = loop {
            let o = aws_ok(
                reg,
                &[
                    "describe-image-scan-findings",
                    "--repository-name",
                    &repo,
                    "--image-id",
                    "imageTag=v1",
                ],
            );
            if o["imageScanStatus"]["status"] != "IN_PROGRESS" {
                break o["imageScanStatus"].clone();
            }
            assert!(std::time::Instant::now() < deadline, "{o}");
            std::thread::sleep(std::time::Duration::from_millis(200));
        };
        assert_eq!(status["status"], "FAILED", "{name}: {status}");
        let description = status["description"].as_str().unwrap();
        assert!(description.contains(reason), "{name}: {status}");
        assert!(
            description.contains(&berth_test_support::sha256(&layer)),
            "{status}"
        );
    }
    // Still serving: a pull and a scan of a good image.
    let r = http(
        "GET",
        &reg.url("/v2/scan/onpush/manifests/v1"),
        &[("Accept", "application/vnd.oci.image.manifest.v1+json")],
        None,
    );
    assert_eq!(r.status, 200, "{}", r.describe());
    assert!(never_scanned(reg, "scan/other"));
    scan_and_wait(reg, "scan/other");
}

/// `aws ecr start-image-scan` of `repo:v1`, then `aws ecr wait image-scan-complete`.
fn scan_and_wait(reg: &Registry, repo: &str) {
    aws_ok(
        reg,
        &[
            "start-image-scan",
            "--repository-name",
            repo,
            "--image-id",
            "imageTag=v1",
        ],
    );
    let o = aws(
        reg,
        &[
            "wait",
            "image-scan-complete",
            "--repository-name",
            repo,
            "--image-id",
            "imageTag=v1",
        ],
    );
    assert!(o.success(), "{}", o.describe());
}

/// ECR StartImageScan errors (botocore model): a missing repository is
/// RepositoryNotFoundException, an image index UnsupportedImageTypeException — at once,
/// not a scan that never completes.
fn start_image_scan_refuses_what_it_cannot_scan(reg: &Registry, layout: &Path) {
    let child = skopeo_push_layout(layout, "v1", &reg.image("scan/index:v1"));
    let size = get_manifest(reg, "scan/index", "v1").body.len();
    let index = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.index.v1+json",
        "manifests": [{"mediaType": "application/vnd.oci.image.manifest.v1+json",
                       "digest": child, "size": size,
                       "platform": {"architecture": "amd64", "os": "linux"}}],
    })
    .to_string();
    let r = http(
        "PUT",
        &reg.url("/v2/scan/index/manifests/multi"),
        &[("Content-Type", "application/vnd.oci.image.index.v1+json")],
        Some(index.as_bytes()),
    );
    assert_eq!(r.status, 201, "{}", r.describe());
    let o = aws(
        reg,
        &[
            "start-image-scan",
            "--repository-name",
            "scan/index",
            "--image-id",
            "imageTag=multi",
        ],
    );
    assert!(
        o.stderr.contains("(UnsupportedImageTypeException)") && o.stderr.contains("image index"),
        "{}",
        o.describe()
    );
    let o = aws(
        reg,
        &[
            "start-image-scan",
            "--repository-name",
            "scan/nope",
            "--image-id",
            "imageTag=v1",
        ],
    );
    assert!(
        o.stderr.contains("(RepositoryNotFoundException)"),
        "{}",
        o.describe()
    );
}
