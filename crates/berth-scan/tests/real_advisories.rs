//! berth-scan against real data: a layer with real package metadata of old PyPI and npm
//! packages with known advisories, a Go binary built here with `go build` (its build
//! information names the Go toolchain: `stdlib` in the Go vulnerability database), and
//! the Python packages of the test machine's own AWS CLI virtualenv, matched against the
//! real OSV records of `../shared/vulndb` (or the subset of it committed in
//! `tests/data/osv`) (issue 11, "Tests"). The expected findings are
//! computed by an independent matcher written here from the same OSV files — PyPI by
//! the records' explicit `versions` lists (no version ordering at all), npm and Go by a
//! small numeric comparison of their plain semantic versions — never copied from
//! Berth's output.

use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;

use berth_scan::osv::{read_path, OsvRecord};
use berth_scan::{merge, read_layer, Ecosystem, Limits, VulnDb};

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// The OSV folder of the shared vulnerability data: `$BERTH_SHARED_DIR/vulndb/osv`, else
/// `../shared/vulndb/osv` beside the checkout, else the subset of it committed in
/// `tests/data/osv` (every record naming a package this test's layer holds; its
/// README.md says which and under which licences).
fn osv_dir() -> PathBuf {
    let shared = std::env::var_os("BERTH_SHARED_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace().join("../shared"))
        .join("vulndb/osv");
    if shared.is_dir() {
        return shared;
    }
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/data/osv")
}

/// Builds a small Go program with the installed toolchain, offline (no module proxy).
fn go_binary(dir: &Path) -> Vec<u8> {
    std::fs::write(
        dir.join("go.mod"),
        "module example.com/berthscan\n\ngo 1.19\n",
    )
    .unwrap();
    std::fs::write(
        dir.join("main.go"),
        "package main\n\nimport \"fmt\"\n\nfunc main() { fmt.Println(\"hi\") }\n",
    )
    .unwrap();
    let out = Command::new("go")
        .args(["build", "-o", "app", "."])
        .current_dir(dir)
        .env("GOPROXY", "off")
        .env("GOFLAGS", "-mod=mod")
        .env("GOCACHE", dir.join("cache"))
        .env("GOPATH", dir.join("gopath"))
        .output()
        .expect("`go` must be installed (.ci/install-clients installs it)");
    assert!(
        out.status.success(),
        "go build: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    std::fs::read(dir.join("app")).unwrap()
}

fn go_version() -> String {
    let out = Command::new("go")
        .args(["env", "GOVERSION"])
        .output()
        .unwrap();
    String::from_utf8(out.stdout).unwrap().trim().to_owned()
}

/// Real core-metadata headers of old releases (as their wheels ship them), each with
/// advisories in the PyPI database of 2024-10.
const PYPI: &[(&str, &str)] = &[
    ("urllib3", "1.26.5"),
    ("requests", "2.25.0"),
    ("Jinja2", "2.10"),
    ("PyYAML", "5.3"),
    ("Django", "3.2"),
];
/// Old npm releases with advisories in the npm records.
const NPM: &[(&str, &str)] = &[
    ("lodash", "4.17.15"),
    ("minimist", "1.2.0"),
    ("axios", "0.21.0"),
    ("node-fetch", "2.6.0"),
    ("follow-redirects", "1.14.0"),
];

fn layer_bytes(go_app: &[u8]) -> Vec<u8> {
    let mut builder = tar::Builder::new(flate2::write::GzEncoder::new(
        Vec::new(),
        flate2::Compression::fast(),
    ));
    let mut add = |path: &str, bytes: &[u8], mode: u32| {
        let mut header = tar::Header::new_gnu();
        header.set_size(bytes.len() as u64);
        header.set_mode(mode);
        builder.append_data(&mut header, path, bytes).unwrap();
    };
    for (name, version) in PYPI {
        let meta = format!("Metadata-Version: 2.1\nName: {name}\nVersion: {version}\nSummary: s\nLicense: x\n\nlong description\n");
        add(
            &format!("usr/lib/python3.11/site-packages/{name}-{version}.dist-info/METADATA"),
            meta.as_bytes(),
            0o644,
        );
    }
    for (name, version) in NPM {
        let json = format!(r#"{{"name":"{name}","version":"{version}","main":"index.js"}}"#);
        add(
            &format!("srv/app/node_modules/{name}/package.json"),
            json.as_bytes(),
            0o644,
        );
    }
    add("usr/local/bin/app", go_app, 0o755);
    // The AWS CLI's own virtualenv: real dist-info directories as pip installed them.
    let site = workspace().join(".venv-clients/lib");
    if let Ok(pythons) = std::fs::read_dir(&site) {
        for python in pythons.flatten() {
            let dir = python.path().join("site-packages");
            for entry in std::fs::read_dir(&dir).into_iter().flatten().flatten() {
                let meta = entry.path().join("METADATA");
                if entry.file_name().to_string_lossy().ends_with(".dist-info") && meta.is_file() {
                    let bytes = std::fs::read(&meta).unwrap();
                    add(
                        &format!(
                            "opt/venv/site-packages/{}/METADATA",
                            entry.file_name().to_string_lossy()
                        ),
                        &bytes,
                        0o644,
                    );
                }
            }
        }
    }
    let mut gz = builder.into_inner().unwrap();
    gz.flush().unwrap();
    gz.finish().unwrap()
}

// --- The independent matcher -------------------------------------------------------

fn pep503(name: &str) -> String {
    let lower = name.to_lowercase().replace(['_', '.'], "-");
    let mut out = String::new();
    for c in lower.chars() {
        if !(c == '-' && out.ends_with('-')) {
            out.push(c);
        }
    }
    out
}

/// `a.b.c[-pre]` as numbers and pre-release identifiers, compared by SemVer §11.
fn semver_key(v: &str) -> Option<(Vec<u64>, Option<Vec<String>>)> {
    let (core, pre) = match v.split_once('-') {
        Some((c, p)) => (c, Some(p.split('.').map(str::to_owned).collect())),
        None => (v, None),
    };
    let mut nums: Vec<u64> = core
        .split('.')
        .map(|n| n.parse().ok())
        .collect::<Option<_>>()?;
    nums.resize(3, 0);
    Some((nums, pre))
}

fn semver_cmp(a: &str, b: &str) -> std::cmp::Ordering {
    use std::cmp::Ordering::*;
    let (Some((an, ap)), Some((bn, bp))) = (semver_key(a), semver_key(b)) else {
        panic!("not semver: {a} {b}")
    };
    an.cmp(&bn).then_with(|| match (ap, bp) {
        (None, None) => Equal,
        (None, Some(_)) => Greater,
        (Some(_), None) => Less,
        (Some(x), Some(y)) => {
            for (i, j) in x.iter().zip(&y) {
                let o = match (i.parse::<u64>(), j.parse::<u64>()) {
                    (Ok(p), Ok(q)) => p.cmp(&q),
                    (Ok(_), Err(_)) => Less,
                    (Err(_), Ok(_)) => Greater,
                    _ => i.cmp(j),
                };
                if o != Equal {
                    return o;
                }
            }
            x.len().cmp(&y.len())
        }
    })
}

/// Whether `version` is in one of the record's ranges for `(ecosystem, name)`, evaluating
/// each range's events as introduced/fixed/last_affected pairs in sorted order.
fn independent_semver_hit(record: &OsvRecord, ecosystem: &str, name: &str, version: &str) -> bool {
    record.affected.iter().any(|a| {
        let Some(p) = &a.package else { return false };
        p.ecosystem == ecosystem
            && p.name == name
            && a.ranges
                .iter()
                .filter(|r| r.kind == "SEMVER" || r.kind == "ECOSYSTEM")
                .any(|r| {
                    let mut events: Vec<(String, &str)> = r
                        .events
                        .iter()
                        .filter_map(|e| {
                            e.introduced
                                .clone()
                                .map(|v| (v, "i"))
                                .or(e.fixed.clone().map(|v| (v, "f")))
                                .or(e.last_affected.clone().map(|v| (v, "l")))
                        })
                        .collect();
                    events.sort_by(|x, y| match (x.0 == "0", y.0 == "0") {
                        (true, true) => std::cmp::Ordering::Equal,
                        (true, false) => std::cmp::Ordering::Less,
                        (false, true) => std::cmp::Ordering::Greater,
                        _ => semver_cmp(&x.0, &y.0),
                    });
                    let mut hit = false;
                    for (v, kind) in events {
                        let ord = if v == "0" {
                            std::cmp::Ordering::Greater
                        } else {
                            semver_cmp(version, &v)
                        };
                        match kind {
                            "i" if ord.is_ge() => hit = true,
                            "f" if ord.is_ge() => hit = false,
                            "l" if ord.is_gt() => hit = false,
                            _ => {}
                        }
                    }
                    hit
                })
    })
}

/// Record IDs affecting each (ecosystem, name, version), by the independent matcher.
fn independent(
    records: &[OsvRecord],
    packages: &BTreeSet<(Ecosystem, String, String)>,
) -> BTreeMap<(String, String), BTreeSet<String>> {
    let mut out: BTreeMap<(String, String), BTreeSet<String>> = BTreeMap::new();
    for r in records.iter().filter(|r| r.withdrawn.is_none()) {
        for (eco, name, version) in packages {
            let hit = match eco {
                Ecosystem::PyPI => r.affected.iter().any(|a| {
                    a.package
                        .as_ref()
                        .is_some_and(|p| p.ecosystem == "PyPI" && pep503(&p.name) == pep503(name))
                        && a.versions.iter().any(|v| v == version)
                }),
                Ecosystem::Npm => independent_semver_hit(r, "npm", name, version),
                Ecosystem::Go => independent_semver_hit(r, "Go", name, version),
                _ => false,
            };
            if hit {
                out.entry((name.clone(), version.clone()))
                    .or_default()
                    .insert(r.id.clone());
            }
        }
    }
    out
}

#[test]
fn findings_equal_an_independent_matchers() {
    let osv = osv_dir();
    let tmp = tempfile::tempdir().unwrap();
    let layer = layer_bytes(&go_binary(tmp.path()));
    let inventory = merge([&read_layer(&layer[..], &Limits::default()).unwrap()]);

    // The inventory has what the layer holds: the Go toolchain the binary names.
    let go = berth_scan::packages::go_toolchain_semver(&go_version()).unwrap();
    let packages: BTreeSet<(Ecosystem, String, String)> = inventory
        .packages
        .iter()
        .map(|p| (p.ecosystem, p.name.clone(), p.version.clone()))
        .collect();
    assert!(
        packages.contains(&(Ecosystem::Go, "stdlib".into(), go.clone())),
        "{packages:?}"
    );
    assert!(packages.contains(&(Ecosystem::PyPI, "urllib3".into(), "1.26.5".into())));
    assert!(
        packages.contains(&(Ecosystem::PyPI, "pyyaml".into(), "5.3".into())),
        "PEP 503 names"
    );
    assert!(packages.contains(&(Ecosystem::Npm, "lodash".into(), "4.17.15".into())));
    assert!(
        packages
            .iter()
            .any(|(e, n, _)| *e == Ecosystem::PyPI && n == "botocore"),
        "the venv's real dist-info"
    );

    let mut records = Vec::new();
    for eco in ["PyPI", "npm", "Go"] {
        records.extend(read_path(&osv.join(eco)).unwrap());
    }
    let expected = independent(&records, &packages);
    let db = VulnDb::new(records);
    assert!(db.sources().contains_key("PyPI") && db.sources().contains_key("Go"));
    let findings = db.findings(&inventory);

    // Per package, the record IDs Berth merged into its findings are exactly the
    // independent matcher's, and no ID is in two findings of one package.
    let record_ids: BTreeSet<&str> = db_ids(&osv);
    let mut got: BTreeMap<(String, String), BTreeSet<String>> = BTreeMap::new();
    for f in &findings {
        let ids = got
            .entry((f.package.name.clone(), f.package.version.clone()))
            .or_default();
        for id in f.ids.iter().filter(|i| record_ids.contains(i.as_str())) {
            assert!(
                ids.insert(id.clone()),
                "{id} in two findings of {}",
                f.package.name
            );
        }
    }
    assert_eq!(got, expected);
    eprintln!(
        "{} packages, {} findings ({} records matched) from {} records",
        packages.len(),
        findings.len(),
        expected.values().map(BTreeSet::len).sum::<usize>(),
        db.len()
    );
    for (name, _) in PYPI.iter().chain(NPM) {
        assert!(
            got.keys().any(|(n, _)| pep503(n) == pep503(name)),
            "{name} has advisories"
        );
    }
    assert!(
        got.contains_key(&("stdlib".to_owned(), go)),
        "the Go toolchain has advisories"
    );
    // One CVE is one finding per package.
    let mut names = BTreeSet::new();
    for f in &findings {
        assert!(
            names.insert((f.package.name.clone(), f.name.clone())),
            "{} twice for {}",
            f.name,
            f.package.name
        );
    }
    // A CVE-aliased urllib3 finding is named by its CVE, with a fix and CVSS severity from GHSA/PYSEC data.
    let cookie = findings
        .iter()
        .find(|f| f.package.name == "urllib3" && f.name == "CVE-2023-43804")
        .unwrap();
    assert_eq!(cookie.fixed_in_versions, ["1.26.17", "2.0.6"]);
}

fn db_ids(osv: &Path) -> BTreeSet<&'static str> {
    let mut ids = BTreeSet::new();
    for eco in ["PyPI", "npm", "Go"] {
        for r in read_path(&osv.join(eco)).unwrap() {
            ids.insert(&*Box::leak(r.id.into_boxed_str()));
        }
    }
    ids
}
