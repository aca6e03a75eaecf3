//! Package databases (issue 11): the first byte picks a parser (os-release, dpkg status,
//! apk installed, Python core metadata, npm package.json, npm lockfile, Cargo.lock, Java
//! archive, Go build information, a Rust binary's cargo-auditable section, an RPM header
//! blob, an `rpmdb.sqlite`), the rest is the file. Parsing never panics, gives the same answer twice, and every package has a
//! name and a version; Python names come back PEP 503-normalised, Maven names are
//! `group:artifact`.
#![no_main]

use berth_scan::layer::parse_file;
use berth_scan::packages::{
    normalize_python_name, parse_auditable_binary, parse_go_buildinfo, rpm, FileKind,
};
use libfuzzer_sys::fuzz_target;

const KINDS: [FileKind; 8] = [
    FileKind::OsRelease,
    FileKind::DpkgStatus,
    FileKind::ApkInstalled,
    FileKind::PythonMetadata,
    FileKind::NpmPackageJson,
    FileKind::NpmPackageLock,
    FileKind::CargoLock,
    FileKind::JavaArchive,
];

fuzz_target!(|data: &[u8]| {
    let Some((&which, file)) = data.split_first() else {
        return;
    };
    let which = usize::from(which);
    if which == KINDS.len() {
        if let Some(info) = parse_go_buildinfo(file, 1 << 16) {
            assert!(info.go_version.starts_with("go"));
            let _ = info.packages();
        }
        return;
    }
    if which == KINDS.len() + 1 {
        let found = parse_auditable_binary(file, 1 << 16);
        assert_eq!(parse_auditable_binary(file, 1 << 16), found);
        assert!(found.iter().all(|p| !p.name.is_empty() && !p.version.is_empty()));
        return;
    }
    if which == KINDS.len() + 2 {
        if let Some(p) = rpm::parse_header(file) {
            assert!(!p.name.is_empty() && !p.version.is_empty(), "{p:?}");
            assert_eq!(rpm::parse_header(file), Some(p));
        }
        return;
    }
    if which == KINDS.len() + 3 {
        let found = rpm::parse_rpmdb_sqlite(file);
        assert!(found.iter().all(|p| !p.name.is_empty() && !p.version.is_empty()));
        return;
    }
    let kind = KINDS[which % KINDS.len()];
    let found = parse_file(kind, "app/lib/demo-1.0.jar", file);
    assert_eq!(parse_file(kind, "app/lib/demo-1.0.jar", file), found);
    for p in &found.packages {
        assert!(!p.name.is_empty() && !p.version.is_empty(), "{p:?}");
        if kind == FileKind::PythonMetadata {
            assert_eq!(normalize_python_name(&p.name), p.name);
        }
        if kind == FileKind::JavaArchive {
            assert!(p.name.contains(':'), "{p:?}");
        }
    }
});
