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
            let attr = |k: &str| {
                f["attributes"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .find(|a| a["key"] == k)
                    .map(|a| a["value"].as_str().unwrap().to_owned())
            };
            assert!(attr("package_version").is_some(), "{f}");
            (
                attr("package_name").unwrap(),
                f["name"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    last["imageScanFindings"]["findings"] = Value::Array(all);
    (last, got)
}

#[test]
fn aws_cli_scans_an_image_and_reads_its_findings() {
    if !require(T, &["aws", "skopeo", "umoci"]) {
        return;
    }
    let shared = shared_osv();
    let reg = Registry::start();
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
}
