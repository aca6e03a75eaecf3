//! Package databases (issue 11): the first byte picks a parser (os-release, dpkg status,
//! apk installed, Python core metadata, npm package.json, Go build information), the
//! rest is the file. Parsing never panics, gives the same answer twice, and every
//! package has a name and a version; Python names come back PEP 503-normalised.
#![no_main]

use berth_scan::layer::parse_file;
use berth_scan::packages::{normalize_python_name, parse_go_buildinfo, FileKind};
use libfuzzer_sys::fuzz_target;

const KINDS: [FileKind; 5] = [
    FileKind::OsRelease,
    FileKind::DpkgStatus,
    FileKind::ApkInstalled,
    FileKind::PythonMetadata,
    FileKind::NpmPackageJson,
];

fuzz_target!(|data: &[u8]| {
    let Some((&which, file)) = data.split_first() else {
        return;
    };
    if usize::from(which) == KINDS.len() {
        if let Some(info) = parse_go_buildinfo(file, 1 << 16) {
            assert!(info.go_version.starts_with("go"));
            let _ = info.packages();
        }
        return;
    }
    let kind = KINDS[usize::from(which) % KINDS.len()];
    let found = parse_file(kind, file);
    assert_eq!(parse_file(kind, file), found);
    for p in &found.packages {
        assert!(!p.name.is_empty() && !p.version.is_empty(), "{p:?}");
        if kind == FileKind::PythonMetadata {
            assert_eq!(normalize_python_name(&p.name), p.name);
        }
    }
});
