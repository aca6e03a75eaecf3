//! OSV records and version ordering (issue 11): a record that parses survives a
//! serialise/parse round trip, and matching an inventory against it is deterministic;
//! every ecosystem's version comparison is antisymmetric on any two strings taken from
//! the record (its event versions) and the inventory.
#![no_main]

use berth_scan::osv::parse_record;
use berth_scan::packages::{Ecosystem, OsRelease, Package};
use berth_scan::version::{compare, Scheme};
use berth_scan::{Inventory, VulnDb};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(record) = parse_record(data) else {
        return;
    };
    let text = serde_json::to_string(&record).unwrap();
    assert_eq!(parse_record(text.as_bytes()).unwrap(), record);
    let mut versions: Vec<String> = Vec::new();
    let mut packages = Vec::new();
    for a in &record.affected {
        for r in &a.ranges {
            for e in &r.events {
                versions.extend([&e.introduced, &e.fixed, &e.last_affected, &e.limit].into_iter().flatten().cloned());
            }
        }
        versions.extend(a.versions.iter().cloned());
        if let Some(p) = &a.package {
            for ecosystem in [Ecosystem::Dpkg, Ecosystem::Apk, Ecosystem::PyPI, Ecosystem::Npm, Ecosystem::Go, Ecosystem::CratesIo, Ecosystem::Maven] {
                for v in versions.iter().take(4) {
                    packages.push(Package { ecosystem, name: p.name.clone(), version: v.clone(), source: None });
                }
            }
        }
    }
    versions.truncate(16);
    for scheme in [
        Scheme::Dpkg,
        Scheme::Apk,
        Scheme::Pep440,
        Scheme::Semver,
        Scheme::Maven,
    ] {
        for a in &versions {
            for b in &versions {
                assert_eq!(compare(scheme, a, b), compare(scheme, b, a).map(|o| o.reverse()), "{scheme:?} {a} {b}");
            }
        }
    }
    packages.truncate(64);
    let inventory = Inventory {
        os: Some(OsRelease { id: "debian".into(), version_id: "12".into(), pretty_name: String::new() }),
        packages,
    };
    let db = VulnDb::new([record]);
    assert_eq!(db.findings(&inventory), db.findings(&inventory));
});
