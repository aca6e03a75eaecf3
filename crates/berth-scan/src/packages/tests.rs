use super::*;

/// freedesktop.org os-release(5): quoting, escapes, unknown keys.
#[test]
fn os_release_quotes_and_escapes() {
    let os = parse_os_release(
        "PRETTY_NAME=\"Debian GNU/Linux 12 (bookworm)\"\nNAME=\"Debian GNU/Linux\"\nVERSION_ID=\"12\"\nID=debian\n# comment\nbroken line\nX='a \\\" b'\n",
    );
    assert_eq!(os.id, "debian");
    assert_eq!(os.version_id, "12");
    assert_eq!(os.pretty_name, "Debian GNU/Linux 12 (bookworm)");
    let alpine = parse_os_release("NAME=\"Alpine Linux\"\nID=alpine\nVERSION_ID=3.19.1\n");
    assert_eq!(
        (alpine.id.as_str(), alpine.version_id.as_str()),
        ("alpine", "3.19.1")
    );
}

/// dpkg's status file (dpkg(1) "status"): only installed packages, `Source` with its
/// version dropped, continuation lines ignored.
#[test]
fn dpkg_status_installed_only_with_source() {
    let status = "\
Package: libc6
Status: install ok installed
Priority: optional
Source: glibc (2.36-9+deb12u3)
Version: 2.36-9+deb12u3
Description: GNU C Library
 Contains the standard libraries.
 .
 More text: with a colon

Package: removed-pkg
Status: deinstall ok config-files
Version: 1.0-1

Package: openssl
Status: install ok installed
Version: 3.0.11-1~deb12u2
Source: openssl

Package: no-version
Status: install ok installed
";
    let pkgs = parse_dpkg_status(status);
    assert_eq!(pkgs.len(), 2, "{pkgs:?}");
    assert_eq!(pkgs[0].name, "libc6");
    assert_eq!(pkgs[0].version, "2.36-9+deb12u3");
    assert_eq!(pkgs[0].source.as_deref(), Some("glibc"));
    assert_eq!(pkgs[1].name, "openssl");
    assert_eq!(
        pkgs[1].source, None,
        "a Source equal to the name is not kept"
    );
    // status.d files (distroless) carry no Status.
    let one = parse_dpkg_status("Package: tzdata\nVersion: 2024a-0+deb12u1\nArchitecture: all\n");
    assert_eq!(one[0].version, "2024a-0+deb12u1");
}

/// apk-tools' installed database: `P:`, `V:`, `o:` per paragraph.
#[test]
fn apk_installed_database() {
    let db = "C:Q1abc=\nP:musl\nV:1.2.4_git20230717-r4\nA:x86_64\no:musl\n\nC:Q1def=\nP:libcrypto3\nV:3.1.4-r5\no:openssl\nF:lib\nR:libcrypto.so.3\n\nP:noversion\n";
    let pkgs = parse_apk_installed(db);
    assert_eq!(pkgs.len(), 2, "{pkgs:?}");
    assert_eq!(
        (
            pkgs[0].name.as_str(),
            pkgs[0].version.as_str(),
            pkgs[0].source.as_deref()
        ),
        ("musl", "1.2.4_git20230717-r4", None)
    );
    assert_eq!(pkgs[1].source.as_deref(), Some("openssl"));
}

/// Core metadata: the header block only (a `Name:` in the description is not the name);
/// PEP 503 normalisation.
#[test]
fn python_metadata_header_only_and_normalised() {
    let meta = "Metadata-Version: 2.1\nName: Foo_Bar.baz\nVersion: 1.26.5\nSummary: x\n\nName: not-this\nVersion: 9\n";
    let p = parse_python_metadata(meta).unwrap();
    assert_eq!(
        (p.name.as_str(), p.version.as_str()),
        ("foo-bar-baz", "1.26.5")
    );
    assert!(parse_python_metadata("Metadata-Version: 2.1\nName: x\n").is_none());
    assert_eq!(normalize_python_name("--A__b..C--"), "a-b-c");
}

#[test]
fn npm_package_json() {
    let p = parse_npm_package_json(br#"{"name":"lodash","version":"4.17.15","dependencies":{}}"#)
        .unwrap();
    assert_eq!((p.name.as_str(), p.version.as_str()), ("lodash", "4.17.15"));
    assert!(parse_npm_package_json(br#"{"name":"x"}"#).is_none());
    assert!(parse_npm_package_json(b"not json").is_none());
    assert!(parse_npm_package_json(br#"{"name":1,"version":"1"}"#).is_none());
}

/// Which paths are package databases: dist-info METADATA, node_modules package.json
/// (scoped too) but not files deeper inside a package, dpkg status.d without md5sums.
#[test]
fn paths_to_parsers() {
    use FileKind::*;
    let cases = [
        ("etc/os-release", Some(OsRelease)),
        ("var/lib/dpkg/status", Some(DpkgStatus)),
        ("var/lib/dpkg/status.d/tzdata", Some(DpkgStatusD)),
        ("var/lib/dpkg/status.d/tzdata.md5sums", None),
        ("lib/apk/db/installed", Some(ApkInstalled)),
        (
            "usr/lib/python3/site-packages/urllib3-1.26.5.dist-info/METADATA",
            Some(PythonMetadata),
        ),
        (
            "usr/lib/python3/site-packages/foo.egg-info/PKG-INFO",
            Some(PythonMetadata),
        ),
        ("app/node_modules/lodash/package.json", Some(NpmPackageJson)),
        (
            "app/node_modules/@babel/core/package.json",
            Some(NpmPackageJson),
        ),
        ("app/node_modules/lodash/fp/package.json", None),
        ("app/package.json", None),
        ("node_modules/.bin/package.json", None),
        ("usr/bin/ls", None),
        ("srv/app/Cargo.lock", Some(CargoLock)),
        ("Cargo.lock", Some(CargoLock)),
        ("srv/app/package-lock.json", Some(NpmPackageLock)),
        ("srv/app/npm-shrinkwrap.json", Some(NpmPackageLock)),
        (
            "srv/app/node_modules/.package-lock.json",
            Some(NpmPackageLock),
        ),
        ("srv/app/node_modules/left-pad/package-lock.json", None),
        ("opt/app/app.jar", Some(JavaArchive)),
        ("usr/local/tomcat/webapps/ROOT.WAR", Some(JavaArchive)),
        ("opt/app.ear", Some(JavaArchive)),
        ("opt/app.jar.sha1", None),
        ("var/lib/rpm/rpmdb.sqlite", Some(RpmDbSqlite)),
        ("usr/lib/sysimage/rpm/rpmdb.sqlite", Some(RpmDbSqlite)),
        ("var/lib/rpm/Packages", None),
    ];
    for (path, expected) in cases {
        assert_eq!(kind_of_path(path), expected, "{path}");
    }
}

#[test]
fn go_toolchain_versions_as_semver() {
    assert_eq!(go_toolchain_semver("go1.19.8").as_deref(), Some("1.19.8"));
    assert_eq!(go_toolchain_semver("go1.21").as_deref(), Some("1.21.0"));
    assert_eq!(
        go_toolchain_semver("go1.21rc2").as_deref(),
        Some("1.21.0-rc.2")
    );
    assert_eq!(
        go_toolchain_semver("go1.22.1 X:boringcrypto").as_deref(),
        Some("1.22.1")
    );
    assert_eq!(go_toolchain_semver("devel"), None);
    assert_eq!(go_toolchain_semver("go1.x"), None);
}

/// The Go 1.18+ blob layout (`debug/buildinfo`): header, varint strings, sentinels,
/// `=>` replacing the dependency before it.
#[test]
fn go_buildinfo_blob() {
    let modinfo = "path\texample.com/app\nmod\texample.com/app\t(devel)\t\ndep\tgolang.org/x/net\tv0.7.0\th1:abc=\ndep\tgithub.com/a/b\tv1.0.0\th1:x=\n=>\tgithub.com/fork/b\tv1.0.1\th1:y=\nbuild\t-compiler=gc\n";
    let mut wrapped = vec![0u8; 16];
    wrapped.extend_from_slice(modinfo.as_bytes());
    wrapped.extend_from_slice(&[0u8; 16]);
    let mut blob = GO_BUILDINFO_MAGIC.to_vec();
    blob.push(8);
    blob.push(2);
    blob.resize(32, 0);
    blob.push(8);
    blob.extend_from_slice(b"go1.19.8");
    let mut len = wrapped.len();
    while len >= 0x80 {
        blob.push((len as u8) | 0x80);
        len >>= 7;
    }
    blob.push(len as u8);
    blob.extend_from_slice(&wrapped);
    let info = parse_go_buildinfo(&blob, 1 << 20).unwrap();
    assert_eq!(info.go_version, "go1.19.8");
    assert_eq!(
        info.deps,
        [
            ("golang.org/x/net".to_owned(), "v0.7.0".to_owned()),
            ("github.com/fork/b".to_owned(), "v1.0.1".to_owned())
        ]
    );
    let names: Vec<(String, String)> = info
        .packages()
        .into_iter()
        .map(|p| (p.name, p.version))
        .collect();
    assert_eq!(names[0], ("stdlib".to_owned(), "1.19.8".to_owned()));
    assert_eq!(
        names[1],
        ("golang.org/x/net".to_owned(), "0.7.0".to_owned())
    );
    // Truncated, or strings longer than allowed, or pointer-format headers: none.
    assert!(parse_go_buildinfo(&blob[..blob.len() - 1], 1 << 20).is_none());
    assert!(parse_go_buildinfo(&blob, 8).is_none());
    let mut old = blob.clone();
    old[15] = 0;
    assert!(parse_go_buildinfo(&old, 1 << 20).is_none());
}

/// The Cargo book, "Cargo.lock": every lockfile version lists `[[package]]` tables;
/// only crates.io's (git index or sparse index) are crates.io packages — workspace
/// members, path and git dependencies, other registries are not.
#[test]
fn cargo_lock_versions_1_to_4() {
    // Version 1 (Cargo < 1.41): a `[root]` table and checksums under `[metadata]`.
    let v1 = r#"
[root]
name = "app"
version = "0.1.0"
dependencies = ["smallvec 1.6.0 (registry+https://github.com/rust-lang/crates.io-index)"]

[[package]]
name = "smallvec"
version = "1.6.0"
source = "registry+https://github.com/rust-lang/crates.io-index"

[metadata]
"checksum smallvec 1.6.0 (registry+https://github.com/rust-lang/crates.io-index)" = "abc"
"#;
    let names = |text: &str| -> Vec<(String, String)> {
        parse_cargo_lock(text.as_bytes())
            .into_iter()
            .map(|p| {
                assert_eq!(p.ecosystem, Ecosystem::CratesIo);
                (p.name, p.version)
            })
            .collect()
    };
    assert_eq!(names(v1), [("smallvec".into(), "1.6.0".into())]);
    // Version 4 (Cargo ≥ 1.83): `version = 4`, the sparse index, a workspace member, a
    // path crate named like a crates.io crate, a git crate and another registry.
    let v4 = r#"
# This file is automatically @generated by Cargo.
# It is not intended for manual editing.
version = 4

[[package]]
name = "app"
version = "0.1.0"
dependencies = ["regex", "time"]

[[package]]
name = "regex"
version = "1.5.4"
source = "sparse+https://index.crates.io/"
checksum = "d07a8629359eb56f1e2fb1652bb04212c072a87ba68546a04065d525673ac461"

[[package]]
name = "time"
version = "0.1.0"

[[package]]
name = "serde"
version = "1.0.0"
source = "git+https://example.com/serde#abc"

[[package]]
name = "tokio"
version = "1.0.0"
source = "registry+https://example.com/other-index"
"#;
    assert_eq!(names(v4), [("regex".into(), "1.5.4".into())]);
    assert!(names("not [ toml").is_empty());
    assert!(names("[[package]]\nname = 1\n").is_empty());
    assert!(parse_cargo_lock(&[0xff, 0xfe]).is_empty());
}

/// docs.npmjs.com "package-lock.json": v1's nested `dependencies`, v2/v3's `packages`
/// keyed by install path; dev entries, links, the root and sources that are not
/// versions are left out; an `npm:` alias is the package it names.
#[test]
fn npm_package_lock_v1_v2_v3() {
    let pairs = |bytes: &[u8]| -> Vec<(String, String)> {
        let mut v: Vec<_> = parse_npm_package_lock(bytes)
            .into_iter()
            .map(|p| (p.name, p.version))
            .collect();
        v.sort();
        v
    };
    let v1 = br#"{"name":"app","version":"1.0.0","lockfileVersion":1,"requires":true,
      "dependencies":{
        "lodash":{"version":"4.17.15","resolved":"https://r/lodash-4.17.15.tgz"},
        "mocha":{"version":"8.0.0","dev":true},
        "local":{"version":"file:../local"},
        "old-lodash":{"version":"npm:lodash@4.17.4"},
        "axios":{"version":"0.21.0","dependencies":{
            "follow-redirects":{"version":"1.14.0"}}}}}"#;
    assert_eq!(
        pairs(v1),
        [
            ("axios".into(), "0.21.0".into()),
            ("follow-redirects".into(), "1.14.0".into()),
            ("lodash".into(), "4.17.15".into()),
            ("lodash".into(), "4.17.4".into()),
        ]
    );
    // v2 carries both forms; `packages` wins. v3 has `packages` only.
    let v3 = br#"{"name":"app","lockfileVersion":3,"packages":{
        "":{"name":"app","version":"1.0.0"},
        "node_modules/minimist":{"version":"1.2.0"},
        "node_modules/@scope/pkg":{"version":"2.0.0"},
        "node_modules/a/node_modules/minimist":{"version":"0.0.8"},
        "node_modules/alias":{"name":"node-fetch","version":"2.6.0"},
        "node_modules/devonly":{"version":"1.0.0","dev":true},
        "node_modules/linked":{"resolved":"packages/linked","link":true},
        "packages/linked":{"name":"linked","version":"0.0.1"}},
      "dependencies":{"ignored":{"version":"9.9.9"}}}"#;
    assert_eq!(
        pairs(v3),
        [
            ("@scope/pkg".into(), "2.0.0".into()),
            ("minimist".into(), "0.0.8".into()),
            ("minimist".into(), "1.2.0".into()),
            ("node-fetch".into(), "2.6.0".into()),
        ]
    );
    assert!(pairs(b"[1,2]").is_empty());
    assert!(pairs(b"{").is_empty());
}

/// A tiny ELF object with a `.dep-v0` section holding `json` zlib-compressed, made with
/// the `object` crate's writer (cargo-auditable is not installed here; the section's
/// name and content are what cargo-auditable writes).
pub(crate) fn auditable_elf(json: &str) -> Vec<u8> {
    use object::write::Object;
    use object::{Architecture, BinaryFormat, Endianness, SectionKind};
    use std::io::Write;
    let mut z = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::best());
    z.write_all(json.as_bytes()).unwrap();
    let compressed = z.finish().unwrap();
    let mut obj = Object::new(BinaryFormat::Elf, Architecture::X86_64, Endianness::Little);
    let section = obj.add_section(
        Vec::new(),
        AUDITABLE_SECTION.as_bytes().to_vec(),
        SectionKind::ReadOnlyData,
    );
    obj.append_section_data(section, &compressed, 1);
    obj.write().unwrap()
}

/// cargo-auditable's format (auditable-serde): a package list with `source` and `kind`;
/// only crates.io runtime dependencies are packages of the binary.
#[test]
fn auditable_section_crates_io_runtime_only() {
    let json = r#"{"packages":[
        {"name":"app","version":"0.1.0","source":"local","dependencies":[1,2],"root":true},
        {"name":"tokio","version":"1.13.0","source":"crates.io"},
        {"name":"serde_derive","version":"1.0.0","source":"crates.io","kind":"build"},
        {"name":"mygit","version":"0.1.0","source":"git"}]}"#;
    let elf = auditable_elf(json);
    let found = parse_auditable_binary(&elf, 1 << 20);
    assert_eq!(
        found,
        [Package {
            ecosystem: Ecosystem::CratesIo,
            name: "tokio".into(),
            version: "1.13.0".into(),
            source: None
        }]
    );
    assert!(
        parse_auditable_binary(&elf, 16).is_empty(),
        "over the JSON cap"
    );
    assert!(parse_auditable_binary(&auditable_elf("{}"), 1 << 20).is_empty());
    assert!(parse_auditable_binary(&elf[..elf.len() / 2], 1 << 20).is_empty());
    assert!(parse_auditable_binary(b"\x7fELF garbage", 1 << 20).is_empty());
}

/// The `scan_packages` fuzz seed `auditable-elf` is an ELF64 executable header written by
/// hand (not by the `object` crate), section headers at the end as linkers place them:
/// its `.dep-v0` is found too.
#[test]
fn auditable_section_of_a_hand_written_elf() {
    let seed = std::fs::read(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../fuzz/seeds/scan_packages/auditable-elf"),
    )
    .unwrap();
    let found = parse_auditable_binary(&seed[1..], 1 << 20);
    let names: Vec<_> = found
        .iter()
        .map(|p| (p.name.as_str(), p.version.as_str()))
        .collect();
    assert_eq!(names, [("tokio", "1.13.0")]);
}
