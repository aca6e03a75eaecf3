use std::io::Write;

use super::*;
use crate::packages::Ecosystem;

/// A tar stream of `(path, content, mode)` entries.
fn tar_of(entries: &[(&str, &[u8], u32)]) -> Vec<u8> {
    let mut builder = tar::Builder::new(Vec::new());
    for (path, content, mode) in entries {
        let mut header = tar::Header::new_gnu();
        header.set_size(content.len() as u64);
        header.set_mode(*mode);
        header.set_entry_type(tar::EntryType::Regular);
        // Written raw: the builder refuses absolute names, which real layers may have.
        header.as_gnu_mut().unwrap().name[..path.len()].copy_from_slice(path.as_bytes());
        header.set_cksum();
        builder.append(&header, *content).unwrap();
    }
    builder.into_inner().unwrap()
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    enc.write_all(bytes).unwrap();
    enc.finish().unwrap()
}

fn names(inv: &Inventory) -> Vec<(String, String)> {
    inv.packages
        .iter()
        .map(|p| (p.name.clone(), p.version.clone()))
        .collect()
}

const STATUS: &[u8] = b"Package: openssl\nStatus: install ok installed\nVersion: 3.0.11-1~deb12u2\n\nPackage: zlib1g\nStatus: install ok installed\nVersion: 1:1.2.13.dfsg-1\nSource: zlib\n";

/// One layer read plain, gzip- and zstd-compressed gives the same inventory
/// (OCI image spec "Layer" media types: tar, tar+gzip, tar+zstd).
#[test]
fn compressions_give_the_same_inventory() {
    let tar = tar_of(&[
        ("etc/os-release", b"ID=debian\nVERSION_ID=\"12\"\n", 0o644),
        ("./var/lib/dpkg/status", STATUS, 0o644),
        (
            "/usr/lib/python3/dist-packages/urllib3-1.26.5.dist-info/METADATA",
            b"Name: urllib3\nVersion: 1.26.5\n",
            0o644,
        ),
        (
            "app/node_modules/lodash/package.json",
            br#"{"name":"lodash","version":"4.17.15"}"#,
            0o644,
        ),
        ("usr/bin/big", &[0u8; 4096], 0o755),
    ]);
    let zstd = zstd::encode_all(&tar[..], 3).unwrap();
    let limits = Limits::default();
    let plain = read_layer(&tar[..], &limits).unwrap();
    assert_eq!(read_layer(&gzip(&tar)[..], &limits).unwrap(), plain);
    assert_eq!(read_layer(&zstd[..], &limits).unwrap(), plain);
    // Read up to the end-of-archive block (the builder pads beyond it).
    assert!(plain.expanded_bytes > 8192 && plain.expanded_bytes <= tar.len() as u64);
    let inv = merge([&plain]);
    assert_eq!(inv.os.as_ref().unwrap().version_id, "12");
    let expected = [
        ("openssl", "3.0.11-1~deb12u2"),
        ("zlib1g", "1:1.2.13.dfsg-1"),
        ("urllib3", "1.26.5"),
        ("lodash", "4.17.15"),
    ];
    let expected: Vec<(String, String)> = expected
        .iter()
        .map(|(n, v)| (n.to_string(), v.to_string()))
        .collect();
    assert_eq!(names(&inv), expected);
    assert_eq!(inv.packages[1].source.as_deref(), Some("zlib"));
    let ecosystems: std::collections::BTreeSet<Ecosystem> =
        inv.packages.iter().map(|p| p.ecosystem).collect();
    assert_eq!(ecosystems.len(), 3);
    assert_eq!(inv.packages.len(), 4);
}

/// OCI image spec "Whiteouts": `.wh.<name>` deletes a lower path and what is under it,
/// `.wh..wh..opq` hides a directory's lower contents; the same layer's own files stay.
#[test]
fn whiteouts_and_opaque_directories_across_layers() {
    let limits = Limits::default();
    let base = read_layer(
        &tar_of(&[
            (
                "site/a-1.0.dist-info/METADATA",
                b"Name: a\nVersion: 1.0\n",
                0o644,
            ),
            (
                "site/b-1.0.dist-info/METADATA",
                b"Name: b\nVersion: 1.0\n",
                0o644,
            ),
            (
                "app/node_modules/x/package.json",
                br#"{"name":"x","version":"1.0.0"}"#,
                0o644,
            ),
            (
                "app/node_modules/y/package.json",
                br#"{"name":"y","version":"1.0.0"}"#,
                0o644,
            ),
        ])[..],
        &limits,
    )
    .unwrap();
    let upper = read_layer(
        &tar_of(&[
            ("site/.wh.a-1.0.dist-info", b"", 0o644),
            ("app/node_modules/.wh..wh..opq", b"", 0o644),
            (
                "app/node_modules/z/package.json",
                br#"{"name":"z","version":"2.0.0"}"#,
                0o644,
            ),
            (
                "site/b-1.0.dist-info/METADATA",
                b"Name: b\nVersion: 1.1\n",
                0o644,
            ),
        ])[..],
        &limits,
    )
    .unwrap();
    assert_eq!(upper.whiteouts, ["site/a-1.0.dist-info"]);
    assert_eq!(upper.opaque_dirs, ["app/node_modules"]);
    let inv = merge([&base, &upper]);
    let got: Vec<(String, String)> = names(&inv);
    assert_eq!(
        got,
        [
            ("b".to_owned(), "1.1".to_owned()),
            ("z".to_owned(), "2.0.0".to_owned())
        ]
    );
    // Upper layer alone, then the base: order matters.
    assert_eq!(merge([&upper, &base]).packages.len(), 5);
}

/// A Go binary's build information is found at a 16-aligned offset while streaming, in
/// a later chunk than the first; a misaligned copy is not.
#[test]
fn go_buildinfo_found_while_streaming() {
    let modinfo = "\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0path\tx\nmod\tx\t(devel)\t\ndep\tgolang.org/x/text\tv0.3.5\th1:a=\n\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0";
    let mut blob = packages::GO_BUILDINFO_MAGIC.to_vec();
    blob.extend_from_slice(&[8, 2]);
    blob.resize(32, 0);
    blob.push(8);
    blob.extend_from_slice(b"go1.20.1");
    blob.push(modinfo.len() as u8);
    blob.extend_from_slice(modinfo.as_bytes());
    let mut elf = b"\x7fELF".to_vec();
    elf.resize(300_000 + 3, 7);
    elf.extend_from_slice(&blob); // misaligned: ignored
    let aligned = elf.len().div_ceil(16) * 16 + 16 * 1000;
    elf.resize(aligned, 1);
    elf.extend_from_slice(&blob);
    elf.resize(elf.len() + 5000, 9);
    let layer = read_layer(
        &tar_of(&[("usr/local/bin/app", &elf, 0o755)])[..],
        &Limits::default(),
    )
    .unwrap();
    let found = &layer.files["usr/local/bin/app"].packages;
    let got: Vec<(&str, &str)> = found
        .iter()
        .map(|p| (p.name.as_str(), p.version.as_str()))
        .collect();
    assert_eq!(got, [("stdlib", "1.20.1"), ("golang.org/x/text", "0.3.5")]);
    // Not executable, or not ELF: not scanned.
    let layer = read_layer(
        &tar_of(&[("data/app", &elf, 0o644)])[..],
        &Limits::default(),
    )
    .unwrap();
    assert!(layer.files.is_empty());
}

/// Hostile layers end with an error that says why, after bounded work.
#[test]
fn hostile_layers_fail_cleanly() {
    let small = Limits {
        max_expanded_bytes: 1 << 20,
        max_entries: 100,
        ..Limits::default()
    };
    // A decompression bomb: 64 MiB of zeros in a tiny gzip.
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    let mut header = tar::Header::new_gnu();
    header.set_size(64 << 20);
    header.set_mode(0o644);
    header.set_path("zeros").unwrap();
    header.set_cksum();
    enc.write_all(header.as_bytes()).unwrap();
    let zeros = vec![0u8; 1 << 20];
    for _ in 0..64 {
        enc.write_all(&zeros).unwrap();
    }
    let bomb = enc.finish().unwrap();
    assert!(bomb.len() < 200_000);
    assert_eq!(
        read_layer(&bomb[..], &small),
        Err(ScanError::TooLarge(1 << 20))
    );

    // Many entries.
    let many: Vec<(String, Vec<u8>)> = (0..101).map(|i| (format!("f{i}"), Vec::new())).collect();
    let refs: Vec<(&str, &[u8], u32)> = many
        .iter()
        .map(|(n, c)| (n.as_str(), c.as_slice(), 0o644))
        .collect();
    assert_eq!(
        read_layer(&tar_of(&refs)[..], &small),
        Err(ScanError::TooManyEntries(100))
    );

    // Path traversal (written raw: the tar crate's builder refuses `..`).
    let mut header = tar::Header::new_gnu();
    header.as_gnu_mut().unwrap().name[..20].copy_from_slice(b"../../etc/os-release");
    header.set_size(0);
    header.set_mode(0o644);
    header.set_cksum();
    let mut traversal = header.as_bytes().to_vec();
    traversal.extend_from_slice(&[0u8; 1024]);
    match read_layer(&traversal[..], &small) {
        Err(ScanError::PathTraversal(p)) => assert_eq!(p, "../../etc/os-release"),
        other => panic!("{other:?}"),
    }

    // A corrupt gzip stream: a valid start, then garbage.
    let mut corrupt = gzip(&tar_of(&[("etc/os-release", b"ID=x\n", 0o644)]));
    let mid = corrupt.len() / 2;
    for b in &mut corrupt[mid..] {
        *b ^= 0x5a;
    }
    assert!(matches!(
        read_layer(&corrupt[..], &small),
        Err(ScanError::Corrupt(_))
    ));

    // A GNU long name longer than allowed is refused before it is read.
    let mut header = tar::Header::new_gnu();
    header.set_entry_type(tar::EntryType::GNULongName);
    header.set_size(1 << 30);
    header.set_path("././@LongLink").unwrap();
    header.set_cksum();
    assert_eq!(
        read_layer(&header.as_bytes()[..], &small),
        Err(ScanError::NameTooLong(4096))
    );
}

/// A 10 GB GNU sparse file stores a few blocks; it is skipped unread, with a note.
#[test]
fn huge_sparse_file_is_skipped() {
    let mut header = tar::Header::new_gnu();
    header.set_path("usr/bin/sparse").unwrap();
    header.set_entry_type(tar::EntryType::GNUSparse);
    header.set_mode(0o755);
    header.set_size(512);
    {
        let gnu = header.as_gnu_mut().unwrap();
        let real: u64 = 10 << 30;
        gnu.realsize
            .copy_from_slice(format!("{real:012o}").as_bytes());
        gnu.sparse[0]
            .offset
            .copy_from_slice(format!("{:012o}", real - 512).as_bytes());
        gnu.sparse[0]
            .numbytes
            .copy_from_slice(format!("{:011o}\0", 512).as_bytes());
    }
    header.set_cksum();
    let mut layer = header.as_bytes().to_vec();
    layer.extend_from_slice(&[1u8; 512]);
    layer.extend_from_slice(&tar_of(&[(
        "etc/os-release",
        b"ID=alpine\nVERSION_ID=3.19.1\n",
        0o644,
    )]));
    let inv = read_layer(&layer[..], &Limits::default()).unwrap();
    assert_eq!(inv.notes, ["usr/bin/sparse: sparse file not read"]);
    assert_eq!(merge([&inv]).os.unwrap().id, "alpine");
}

/// A database file over the size limit is not read, and still hides the lower one.
#[test]
fn oversized_database_file_is_noted_and_replaces() {
    let limits = Limits {
        max_file_bytes: 10,
        ..Limits::default()
    };
    let lower = read_layer(
        &tar_of(&[("lib/apk/db/installed", b"P:a\nV:1\n", 0o644)])[..],
        &limits,
    )
    .unwrap();
    let upper = read_layer(
        &tar_of(&[("lib/apk/db/installed", b"P:a\nV:1.0-r1\n\n", 0o644)])[..],
        &limits,
    )
    .unwrap();
    assert_eq!(upper.notes.len(), 1, "{:?}", upper.notes);
    assert_eq!(merge([&lower]).packages.len(), 1);
    assert!(merge([&lower, &upper]).packages.is_empty());
}

/// A Rust binary in a layer: its cargo-auditable `.dep-v0` section (a section built with
/// the `object` crate's writer, as cargo-auditable is not installed here) names its
/// crates.io dependencies; a Cargo.lock, an npm lockfile and a jar in the same layer
/// are read too.
#[test]
fn rust_binaries_lockfiles_and_jars_in_a_layer() {
    let elf = crate::packages::tests::auditable_elf(
        r#"{"packages":[{"name":"tokio","version":"1.13.0","source":"crates.io"}]}"#,
    );
    let lock = b"version = 3\n[[package]]\nname = \"regex\"\nversion = \"1.5.4\"\nsource = \"registry+https://github.com/rust-lang/crates.io-index\"\n";
    let npm = br#"{"lockfileVersion":3,"packages":{"node_modules/minimist":{"version":"1.2.0"}}}"#;
    let props = crate::packages::java::tests::pom_properties("log4j", "log4j", "1.2.17");
    let jar = crate::packages::java::tests::zip_of(
        &[(
            "META-INF/maven/log4j/log4j/pom.properties",
            props.as_bytes(),
        )],
        false,
    );
    let layer = tar_of(&[
        ("usr/local/bin/server", &elf[..], 0o755),
        ("srv/app/Cargo.lock", &lock[..], 0o644),
        ("srv/web/package-lock.json", &npm[..], 0o644),
        (
            "srv/web/node_modules/minimist/package.json",
            &br#"{"name":"minimist","version":"1.2.0"}"#[..],
            0o644,
        ),
        ("opt/app/app.jar", &jar[..], 0o644),
    ]);
    let inv = merge([&read_layer(&layer[..], &Limits::default()).unwrap()]);
    let got: Vec<(Ecosystem, &str, &str)> = inv
        .packages
        .iter()
        .map(|p| (p.ecosystem, p.name.as_str(), p.version.as_str()))
        .collect();
    assert_eq!(
        got,
        [
            (Ecosystem::Npm, "minimist", "1.2.0"),
            (Ecosystem::CratesIo, "regex", "1.5.4"),
            (Ecosystem::CratesIo, "tokio", "1.13.0"),
            (Ecosystem::Maven, "log4j:log4j", "1.2.17"),
        ],
        "the lockfile's minimist and node_modules' are one package"
    );
    // An executable over the file limit is streamed for Go build information only.
    let small = Limits {
        max_file_bytes: 64,
        ..Limits::default()
    };
    let inv = read_layer(
        &tar_of(&[("usr/local/bin/server", &elf[..], 0o755)])[..],
        &small,
    )
    .unwrap();
    assert!(inv.files.is_empty(), "{inv:?}");
}

/// The per-layer cache format stays readable: an inventory stored before format 1 (no
/// `format` field, only the ecosystems of then) decodes, as format 0; a new one says 1.
#[test]
fn inventories_stored_by_older_versions_still_decode() {
    let old = r#"{"files":{"lib/apk/db/installed":{"packages":[{"ecosystem":"Apk","name":"musl","version":"1.2.4-r2"}]}},"whiteouts":[],"opaque_dirs":[],"notes":[],"expanded_bytes":10}"#;
    let inv: LayerInventory = serde_json::from_str(old).unwrap();
    assert_eq!(inv.format, 0);
    assert_eq!(merge([&inv]).packages[0].name, "musl");
    let new = read_layer(
        &tar_of(&[("etc/os-release", b"ID=alpine\n", 0o644)])[..],
        &Limits::default(),
    )
    .unwrap();
    assert_eq!(new.format, LayerInventory::FORMAT);
    let text = serde_json::to_string(&new).unwrap();
    assert_eq!(serde_json::from_str::<LayerInventory>(&text).unwrap(), new);
}
