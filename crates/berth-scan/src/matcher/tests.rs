use super::*;
use crate::osv::parse_record;

fn db(records: &[&str]) -> VulnDb {
    VulnDb::new(records.iter().map(|r| parse_record(r.as_bytes()).unwrap()))
}

fn pkg(ecosystem: Ecosystem, name: &str, version: &str) -> Package {
    Package {
        ecosystem,
        name: name.into(),
        version: version.into(),
        source: None,
    }
}

fn inventory(os: Option<(&str, &str)>, packages: Vec<Package>) -> Inventory {
    Inventory {
        os: os.map(|(id, v)| OsRelease {
            id: id.into(),
            version_id: v.into(),
            pretty_name: String::new(),
        }),
        packages,
    }
}

fn hits(db: &VulnDb, inv: &Inventory) -> Vec<(String, String)> {
    db.findings(inv)
        .into_iter()
        .map(|f| (f.name, f.package.version))
        .collect()
}

/// OSV "Evaluation": events in any order are sorted first; two `introduced`/`fixed`
/// pairs make two affected intervals (the urllib3 record PYSEC-2023-192 has this shape).
#[test]
fn unsorted_events_two_intervals() {
    let db = db(&[
        r#"{"id":"PYSEC-1","aliases":["CVE-2023-43804"],"affected":[{"package":{"ecosystem":"PyPI","name":"urllib3"},
        "ranges":[{"type":"ECOSYSTEM","events":[{"introduced":"2.0.0"},{"fixed":"2.0.6"},{"introduced":"0"},{"fixed":"1.26.17"}]}]}]}"#,
    ]);
    for (version, affected) in [
        ("1.26.5", true),
        ("1.26.17", false),
        ("1.26.18", false),
        ("2.0.0a1", false),
        ("2.0.0", true),
        ("2.0.5", true),
        ("2.0.6", false),
    ] {
        let inv = inventory(None, vec![pkg(Ecosystem::PyPI, "urllib3", version)]);
        assert_eq!(!hits(&db, &inv).is_empty(), affected, "urllib3 {version}");
    }
    let f = &db.findings(&inventory(
        None,
        vec![pkg(Ecosystem::PyPI, "urllib3", "1.26.5")],
    ))[0];
    assert_eq!(f.name, "CVE-2023-43804");
    assert_eq!(f.fixed_in_versions, ["1.26.17", "2.0.6"]);
}

/// `last_affected` includes its version; `limit` bounds from above; `versions` lists
/// match exactly even without ranges; `GIT` ranges are not evaluated.
#[test]
fn last_affected_limit_and_versions() {
    let db = db(&[
        r#"{"id":"A","affected":[{"package":{"ecosystem":"npm","name":"la"},"ranges":[{"type":"SEMVER","events":[{"introduced":"0"},{"last_affected":"4.5.1"}]}]}]}"#,
        r#"{"id":"B","affected":[{"package":{"ecosystem":"npm","name":"lim"},"ranges":[{"type":"SEMVER","events":[{"introduced":"1.0.0"},{"limit":"1.5.0"}]}]}]}"#,
        r#"{"id":"C","affected":[{"package":{"ecosystem":"npm","name":"list"},"versions":["0.9.1"],"ranges":[{"type":"GIT","events":[{"introduced":"0"}]}]}]}"#,
    ]);
    let cases = [
        ("la", "4.5.1", true),
        ("la", "4.5.2", false),
        ("lim", "1.4.9", true),
        ("lim", "1.5.0", false),
        ("lim", "0.9.0", false),
        ("list", "0.9.1", true),
        ("list", "0.9.2", false),
    ];
    for (name, version, affected) in cases {
        let inv = inventory(None, vec![pkg(Ecosystem::Npm, name, version)]);
        assert_eq!(!hits(&db, &inv).is_empty(), affected, "{name} {version}");
    }
}

/// Records that share an alias are one finding; its severity is the highest, its
/// CVSS the highest-scoring vector; GHSA's `MODERATE` is MEDIUM.
#[test]
fn aliases_merge_and_severity() {
    let db = db(&[
        r#"{"id":"PYSEC-9","aliases":["CVE-2024-1"],"affected":[{"package":{"ecosystem":"PyPI","name":"Requests"},"ranges":[{"type":"ECOSYSTEM","events":[{"introduced":"0"},{"fixed":"2.32.0"}]}]}]}"#,
        r#"{"id":"GHSA-aaaa","aliases":["CVE-2024-1"],"severity":[{"type":"CVSS_V3","score":"CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H"}],"affected":[{"package":{"ecosystem":"PyPI","name":"requests"},"ranges":[{"type":"ECOSYSTEM","events":[{"introduced":"0"},{"fixed":"2.32.0"}]}]}]}"#,
        r#"{"id":"GHSA-bbbb","database_specific":{"severity":"MODERATE"},"affected":[{"package":{"ecosystem":"PyPI","name":"requests"},"ranges":[{"type":"ECOSYSTEM","events":[{"introduced":"0"},{"fixed":"2.31.0"}]}]}]}"#,
        r#"{"id":"GHSA-cccc","withdrawn":"2024-01-01T00:00:00Z","affected":[{"package":{"ecosystem":"PyPI","name":"requests"},"ranges":[{"type":"ECOSYSTEM","events":[{"introduced":"0"}]}]}]}"#,
    ]);
    let found = db.findings(&inventory(
        None,
        vec![pkg(Ecosystem::PyPI, "requests", "2.25.0")],
    ));
    assert_eq!(found.len(), 2, "{found:#?}");
    assert_eq!(found[0].name, "CVE-2024-1");
    assert_eq!(found[0].ids, ["CVE-2024-1", "GHSA-aaaa", "PYSEC-9"]);
    assert_eq!(found[0].severity, Severity::Critical);
    assert_eq!(found[0].cvss3_score, Some(9.8));
    assert_eq!(found[1].name, "GHSA-bbbb");
    assert_eq!(found[1].severity, Severity::Medium);
    assert_eq!(found[1].cvss3_vector, None);
}

/// Distribution packages: dpkg versions with epoch and tilde, the record's release must
/// be the image's, and Debian advisories name the source package.
#[test]
fn debian_epoch_tilde_release_and_source() {
    let db = db(&[
        r#"{"id":"DSA-1","aliases":["CVE-2023-5678"],"affected":[{"package":{"ecosystem":"Debian:12","name":"openssl"},"ranges":[{"type":"ECOSYSTEM","events":[{"introduced":"0"},{"fixed":"3.0.11-1~deb12u2"}]}],"ecosystem_specific":{"urgency":"high"}}]}"#,
        r#"{"id":"DSA-2","affected":[{"package":{"ecosystem":"Debian:12","name":"zlib"},"ranges":[{"type":"ECOSYSTEM","events":[{"introduced":"0"},{"fixed":"1:1.2.13.dfsg-2"}]}]}]}"#,
        r#"{"id":"DSA-3","affected":[{"package":{"ecosystem":"Debian:11","name":"zlib"},"ranges":[{"type":"ECOSYSTEM","events":[{"introduced":"0"}]}]}]}"#,
    ]);
    let mut zlib = pkg(Ecosystem::Dpkg, "zlib1g", "1:1.2.13.dfsg-1");
    zlib.source = Some("zlib".into());
    let packages = vec![
        pkg(Ecosystem::Dpkg, "openssl", "3.0.11-1~deb12u1"),
        pkg(Ecosystem::Dpkg, "openssl", "3.0.11-1~deb12u2"),
        zlib,
        // Without its epoch, 1.2.13.dfsg-3 would be above the fix; with epoch 0 it is below `1:`.
        pkg(Ecosystem::Dpkg, "zlib", "1.2.13.dfsg-3"),
    ];
    let got = hits(&db, &inventory(Some(("debian", "12")), packages.clone()));
    assert_eq!(
        got,
        [
            ("CVE-2023-5678".into(), "3.0.11-1~deb12u1".into()),
            ("DSA-2".into(), "1.2.13.dfsg-3".into()),
            ("DSA-2".into(), "1:1.2.13.dfsg-1".into())
        ]
    );
    let f = db.findings(&inventory(Some(("debian", "12")), packages.clone()));
    assert_eq!(f[0].severity, Severity::High, "Debian's urgency");
    // On Debian 11 only DSA-3 applies.
    let got = hits(&db, &inventory(Some(("debian", "11")), packages));
    assert_eq!(got.len(), 2, "{got:?}");
    assert!(got.iter().all(|(n, _)| n == "DSA-3"));
}

/// Alpine: apk versions, `Alpine:v3.19` from VERSION_ID 3.19.1.
#[test]
fn alpine_release_and_apk_versions() {
    let db = db(&[
        r#"{"id":"ALPINE-1","affected":[{"package":{"ecosystem":"Alpine:v3.19","name":"openssl"},"ranges":[{"type":"ECOSYSTEM","events":[{"introduced":"0"},{"fixed":"3.1.4-r5"}]}]}]}"#,
    ]);
    let mut crypto = pkg(Ecosystem::Apk, "libcrypto3", "3.1.4-r4");
    crypto.source = Some("openssl".into());
    let fixed = Package {
        version: "3.1.4-r5".into(),
        ..crypto.clone()
    };
    let pre = Package {
        version: "3.1.4_rc1-r9".into(),
        ..crypto.clone()
    };
    let got = hits(
        &db,
        &inventory(Some(("alpine", "3.19.1")), vec![crypto.clone(), fixed, pre]),
    );
    assert_eq!(
        got,
        [
            ("ALPINE-1".into(), "3.1.4-r4".into()),
            ("ALPINE-1".into(), "3.1.4_rc1-r9".into())
        ]
    );
    assert!(hits(&db, &inventory(Some(("alpine", "3.18.0")), vec![crypto])).is_empty());
}

#[test]
fn severity_names_and_scores() {
    assert_eq!(Severity::from_score(9.0), Severity::Critical);
    assert_eq!(Severity::from_score(8.9), Severity::High);
    assert_eq!(Severity::from_score(0.1), Severity::Low);
    assert_eq!(Severity::from_score(0.0), Severity::Informational);
    assert_eq!("high".parse::<Severity>(), Ok(Severity::High));
    assert!("severe".parse::<Severity>().is_err());
    assert!(Severity::Critical > Severity::High && Severity::Low > Severity::Undefined);
}

/// RPM packages take their OSV ecosystem from os-release (`almalinux` → `AlmaLinux:<major>`,
/// `rocky` → `Rocky Linux:<major>`, anything else → `Red Hat`, any release) and compare
/// by rpm's EVR order. The records are written here in the shape AlmaLinux's OSV feed
/// uses (no RPM advisories are in the test data).
#[test]
fn rpm_distributions_and_evr() {
    let db = db(&[
        r#"{"id":"ALSA-TEST-1","aliases":["CVE-2024-0001"],"affected":[{"package":{"ecosystem":"AlmaLinux:9","name":"openssl"},
        "ranges":[{"type":"ECOSYSTEM","events":[{"introduced":"0"},{"fixed":"1:3.0.7-25.el9_3"}]}]}]}"#,
        r#"{"id":"RLSA-TEST-1","affected":[{"package":{"ecosystem":"Rocky Linux:8","name":"openssl"},
        "ranges":[{"type":"ECOSYSTEM","events":[{"introduced":"0"},{"fixed":"1:1.1.1k-12.el8"}]}]}]}"#,
    ]);
    let mut libs = pkg(Ecosystem::Rpm, "openssl-libs", "1:3.0.7-24.el9");
    libs.source = Some("openssl".into());
    let alma9 = inventory(Some(("almalinux", "9.3")), vec![libs.clone()]);
    assert_eq!(
        hits(&db, &alma9),
        [("CVE-2024-0001".into(), "1:3.0.7-24.el9".into())]
    );
    let f = &db.findings(&alma9)[0];
    assert_eq!(f.fixed_in_versions, ["1:3.0.7-25.el9_3"]);
    libs.version = "1:3.0.7-25.el9_3".into();
    assert!(hits(
        &db,
        &inventory(Some(("almalinux", "9.3")), vec![libs.clone()])
    )
    .is_empty());
    libs.version = "1:3.0.7-24.el9".into();
    assert!(
        hits(&db, &inventory(Some(("rocky", "9.3")), vec![libs.clone()])).is_empty(),
        "Rocky Linux 9 is not AlmaLinux, and the Rocky record is for release 8"
    );
}
