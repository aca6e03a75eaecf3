//! Package databases found in an image's files, one parser per format.
//!
//! Each parser takes the bytes of one file (already bounded by [`crate::Limits`]) and
//! returns what it lists; none of them panics or allocates more than a small multiple
//! of its input, whatever the input. Which file goes to which parser is
//! [`kind_of_path`]'s decision, from the path alone (Go and Rust binaries are recognised
//! by their content instead, in `layer.rs`). Java archives, which nest, are read by
//! [`java`].

use std::io::Read;

use serde::{Deserialize, Serialize};

pub mod java;
pub mod rpm;

/// The package ecosystem a [`Package`] belongs to, named as OSV names it
/// (<https://ossf.github.io/osv-schema/#affectedpackage-field>). Distribution
/// packages take their OSV ecosystem (`Debian:12`, `Alpine:v3.19`) from the image's
/// os-release when matched.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Ecosystem {
    /// A dpkg package (Debian, Ubuntu).
    Dpkg,
    /// An Alpine apk package.
    Apk,
    /// A Python distribution (PyPI).
    PyPI,
    /// An npm package.
    Npm,
    /// A Go module (or `stdlib`, the Go toolchain a binary was built with).
    Go,
    /// A Rust crate from crates.io (OSV ecosystem `crates.io`).
    CratesIo,
    /// A Maven artifact, named `groupId:artifactId` (OSV ecosystem `Maven`).
    Maven,
    /// An RPM package (Red Hat Enterprise Linux, Rocky Linux, AlmaLinux, Fedora).
    Rpm,
}

impl Ecosystem {
    /// The short name used in package URLs and listings (`deb`, `apk`, `pypi`, `npm`,
    /// `golang`, `cargo`, `maven`: the purl types of the package-url specification).
    pub fn purl_type(self) -> &'static str {
        match self {
            Ecosystem::Dpkg => "deb",
            Ecosystem::Apk => "apk",
            Ecosystem::PyPI => "pypi",
            Ecosystem::Npm => "npm",
            Ecosystem::Go => "golang",
            Ecosystem::CratesIo => "cargo",
            Ecosystem::Maven => "maven",
            Ecosystem::Rpm => "rpm",
        }
    }
}

/// One installed package.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Package {
    /// Its ecosystem.
    pub ecosystem: Ecosystem,
    /// Its name as the ecosystem writes it (Python names normalised by PEP 503).
    pub name: String,
    /// Its installed version, verbatim.
    pub version: String,
    /// For distribution packages, the source package it was built from, when it differs
    /// (dpkg `Source:`, apk `o:`): Debian's advisories name source packages.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
}

/// The operating system, from `etc/os-release` or `usr/lib/os-release`
/// (freedesktop.org os-release(5)).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct OsRelease {
    /// `ID` (`debian`, `ubuntu`, `alpine`, …).
    pub id: String,
    /// `VERSION_ID` (`12`, `22.04`, `3.19.1`), empty when absent.
    pub version_id: String,
    /// `PRETTY_NAME`, empty when absent.
    pub pretty_name: String,
}

/// Which parser a file's path calls for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FileKind {
    /// `etc/os-release`, `usr/lib/os-release`.
    OsRelease,
    /// `var/lib/dpkg/status`.
    DpkgStatus,
    /// A file in `var/lib/dpkg/status.d/` (distroless images: one paragraph per file).
    DpkgStatusD,
    /// `lib/apk/db/installed`.
    ApkInstalled,
    /// `*.dist-info/METADATA` or `*.egg-info/PKG-INFO`.
    PythonMetadata,
    /// `…/node_modules/<name>/package.json` or `…/node_modules/@scope/<name>/package.json`.
    NpmPackageJson,
    /// `…/package-lock.json` or `…/npm-shrinkwrap.json` of a project (not of a package
    /// under `node_modules`), or npm's hidden lockfile `…/node_modules/.package-lock.json`.
    NpmPackageLock,
    /// `…/Cargo.lock`.
    CargoLock,
    /// A Java archive: `*.jar`, `*.war`, `*.ear` (any case).
    JavaArchive,
    /// RPM's SQLite database: `var/lib/rpm/rpmdb.sqlite` or
    /// `usr/lib/sysimage/rpm/rpmdb.sqlite`.
    RpmDbSqlite,
}

/// The parser for a normalised path (no leading `/` or `./`), or `None` for a file no
/// parser reads.
pub fn kind_of_path(path: &str) -> Option<FileKind> {
    match path {
        "etc/os-release" | "usr/lib/os-release" => return Some(FileKind::OsRelease),
        "var/lib/dpkg/status" => return Some(FileKind::DpkgStatus),
        "lib/apk/db/installed" => return Some(FileKind::ApkInstalled),
        "var/lib/rpm/rpmdb.sqlite" | "usr/lib/sysimage/rpm/rpmdb.sqlite" => {
            return Some(FileKind::RpmDbSqlite)
        }
        _ => {}
    }
    if let Some(rest) = path.strip_prefix("var/lib/dpkg/status.d/") {
        // Beside each paragraph, distroless images keep `<name>.md5sums`.
        if !rest.is_empty() && !rest.contains('/') && !rest.ends_with(".md5sums") {
            return Some(FileKind::DpkgStatusD);
        }
        return None;
    }
    let (dir, file) = path.rsplit_once('/').unwrap_or(("", path));
    if file == "Cargo.lock" {
        return Some(FileKind::CargoLock);
    }
    if file == ".package-lock.json" && dir.rsplit('/').next() == Some("node_modules") {
        return Some(FileKind::NpmPackageLock);
    }
    if file == "package-lock.json" || file == "npm-shrinkwrap.json" {
        // A lockfile inside an installed package describes that package's development
        // tree, not what is installed here.
        let inside_a_package = dir.split('/').any(|d| d == "node_modules");
        return (!inside_a_package).then_some(FileKind::NpmPackageLock);
    }
    if let Some((_, ext)) = file.rsplit_once('.') {
        if ["jar", "war", "ear"]
            .iter()
            .any(|e| ext.eq_ignore_ascii_case(e))
        {
            return Some(FileKind::JavaArchive);
        }
    }
    let parent = dir.rsplit('/').next().unwrap_or(dir);
    if (file == "METADATA" && parent.ends_with(".dist-info"))
        || (file == "PKG-INFO" && parent.ends_with(".egg-info"))
    {
        return Some(FileKind::PythonMetadata);
    }
    if file == "package.json" {
        let mut parts = dir.rsplit('/');
        let name = parts.next()?;
        let above = parts.next()?;
        if above == "node_modules" && !name.starts_with('@') && !name.starts_with('.') {
            return Some(FileKind::NpmPackageJson);
        }
        if above.starts_with('@') && parts.next() == Some("node_modules") {
            return Some(FileKind::NpmPackageJson);
        }
    }
    None
}

/// Parses os-release(5): `KEY=value` lines, values optionally quoted with `"` or `'`
/// (backslash escapes inside double quotes). Unknown keys and malformed lines are ignored.
pub fn parse_os_release(text: &str) -> OsRelease {
    let mut os = OsRelease::default();
    for line in text.lines() {
        let Some((key, value)) = line.trim().split_once('=') else {
            continue;
        };
        let value = unquote(value.trim());
        match key.trim() {
            "ID" => os.id = value,
            "VERSION_ID" => os.version_id = value,
            "PRETTY_NAME" => os.pretty_name = value,
            _ => {}
        }
    }
    os
}

fn unquote(value: &str) -> String {
    let bytes = value.as_bytes();
    if bytes.len() >= 2
        && (bytes[0] == b'"' || bytes[0] == b'\'')
        && bytes[bytes.len() - 1] == bytes[0]
    {
        let inner = &value[1..value.len() - 1];
        if bytes[0] == b'"' {
            let mut out = String::with_capacity(inner.len());
            let mut chars = inner.chars();
            while let Some(c) = chars.next() {
                if c == '\\' {
                    if let Some(next) = chars.next() {
                        out.push(next);
                    }
                } else {
                    out.push(c);
                }
            }
            return out;
        }
        return inner.to_owned();
    }
    value.to_owned()
}

/// The fields of RFC 822-style paragraphs (dpkg's control format, Python's core
/// metadata): `Field: value`, continuation lines starting with a space or tab, paragraphs
/// separated by blank lines. Returns, per paragraph, the fields whose names are in
/// `wanted` (first occurrence wins), continuation lines dropped.
fn paragraphs<'a>(text: &'a str, wanted: &[&str]) -> Vec<Vec<(&'a str, &'a str)>> {
    let mut out = Vec::new();
    let mut current: Vec<(&str, &str)> = Vec::new();
    let mut seen_any = false;
    for line in text.lines() {
        if line.trim().is_empty() {
            if seen_any {
                out.push(std::mem::take(&mut current));
                seen_any = false;
            }
            continue;
        }
        seen_any = true;
        if line.starts_with(' ') || line.starts_with('\t') {
            continue;
        }
        if let Some((field, value)) = line.split_once(':') {
            let field = field.trim();
            if wanted.iter().any(|w| w.eq_ignore_ascii_case(field))
                && !current.iter().any(|(f, _)| f.eq_ignore_ascii_case(field))
            {
                current.push((field, value.trim()));
            }
        }
    }
    if seen_any {
        out.push(current);
    }
    out
}

fn field<'a>(paragraph: &[(&'a str, &'a str)], name: &str) -> Option<&'a str> {
    paragraph
        .iter()
        .find(|(f, _)| f.eq_ignore_ascii_case(name))
        .map(|(_, v)| *v)
        .filter(|v| !v.is_empty())
}

/// Parses a dpkg status database (`var/lib/dpkg/status`, or one file of `status.d/`):
/// every paragraph whose `Status` says the package is installed (`… installed`; files of
/// `status.d/` carry no `Status` and count as installed) with its `Package`, `Version`
/// and `Source` (`Source: name (version)` keeps the name only; deb-src-control(5)).
pub fn parse_dpkg_status(text: &str) -> Vec<Package> {
    let mut out = Vec::new();
    for p in paragraphs(text, &["Package", "Version", "Status", "Source"]) {
        if let Some(status) = field(&p, "Status") {
            if status.split_whitespace().last() != Some("installed") {
                continue;
            }
        }
        let (Some(name), Some(version)) = (field(&p, "Package"), field(&p, "Version")) else {
            continue;
        };
        let source = field(&p, "Source")
            .and_then(|s| s.split_whitespace().next())
            .filter(|s| *s != name)
            .map(str::to_owned);
        out.push(Package {
            ecosystem: Ecosystem::Dpkg,
            name: name.to_owned(),
            version: version.to_owned(),
            source,
        });
    }
    out
}

/// Parses Alpine's installed database (`lib/apk/db/installed`; apk-tools' "apkindex"
/// format): one-letter fields `P:` (name), `V:` (version), `o:` (origin, the source
/// package), paragraphs separated by blank lines.
pub fn parse_apk_installed(text: &str) -> Vec<Package> {
    let mut out = Vec::new();
    let mut name: Option<&str> = None;
    let mut version: Option<&str> = None;
    let mut origin: Option<&str> = None;
    let mut flush =
        |name: &mut Option<&str>, version: &mut Option<&str>, origin: &mut Option<&str>| {
            if let (Some(n), Some(v)) = (name.take(), version.take()) {
                out.push(Package {
                    ecosystem: Ecosystem::Apk,
                    name: n.to_owned(),
                    version: v.to_owned(),
                    source: origin.filter(|o| *o != n).map(str::to_owned),
                });
            }
            *origin = None;
        };
    for line in text.lines() {
        if line.trim().is_empty() {
            flush(&mut name, &mut version, &mut origin);
            continue;
        }
        match line.split_once(':') {
            Some(("P", v)) if !v.is_empty() => name = Some(v),
            Some(("V", v)) if !v.is_empty() => version = Some(v),
            Some(("o", v)) if !v.is_empty() => origin = Some(v),
            _ => {}
        }
    }
    flush(&mut name, &mut version, &mut origin);
    out
}

/// Normalises a Python distribution name (PEP 503: lower case, runs of `-`, `_`, `.`
/// become one `-`), the form OSV's PyPI records use for matching.
pub fn normalize_python_name(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    let mut separator = false;
    for c in name.chars() {
        if c == '-' || c == '_' || c == '.' {
            separator = true;
        } else {
            if separator && !out.is_empty() {
                out.push('-');
            }
            separator = false;
            out.extend(c.to_lowercase());
        }
    }
    out
}

/// Parses Python core metadata (`METADATA` of a `.dist-info`, `PKG-INFO` of an
/// `.egg-info`; packaging.python.org "Core metadata specifications"): the header block's
/// `Name` (normalised by PEP 503) and `Version`.
pub fn parse_python_metadata(text: &str) -> Option<Package> {
    // Only the header block: the description body after the first blank line is free text.
    let header = paragraphs(text, &["Name", "Version"]).into_iter().next()?;
    let name = normalize_python_name(field(&header, "Name")?);
    let version = field(&header, "Version")?;
    if name.is_empty() {
        return None;
    }
    Some(Package {
        ecosystem: Ecosystem::PyPI,
        name,
        version: version.to_owned(),
        source: None,
    })
}

/// Parses an npm `package.json` (docs.npmjs.com "package.json"): its `name` and `version`
/// strings; anything else, or JSON that does not parse, is no package.
pub fn parse_npm_package_json(bytes: &[u8]) -> Option<Package> {
    #[derive(Deserialize)]
    struct PackageJson {
        name: Option<String>,
        version: Option<String>,
    }
    let parsed: PackageJson = serde_json::from_slice(bytes).ok()?;
    let (name, version) = (parsed.name?, parsed.version?);
    if name.is_empty() || version.is_empty() {
        return None;
    }
    Some(Package {
        ecosystem: Ecosystem::Npm,
        name,
        version,
        source: None,
    })
}

/// The `source` of a `Cargo.lock` package from crates.io: the git index Cargo has always
/// used, or the sparse index (Cargo ≥ 1.68). Other registries' packages are not matched
/// against crates.io advisories.
const CRATES_IO_SOURCES: [&str; 2] = [
    "registry+https://github.com/rust-lang/crates.io-index",
    "sparse+https://index.crates.io/",
];

/// Parses a `Cargo.lock` (TOML; every lockfile version, 1 to 4, lists `[[package]]`
/// tables with `name`, `version` and, for packages not in the workspace, `source`; the
/// Cargo book, "Cargo.lock"): the packages whose source is crates.io. Workspace members
/// and path dependencies (no `source`), git dependencies and other registries are left
/// out: a local crate may share a name with an unrelated crates.io crate. A file that
/// is not TOML, or has no `package` array, lists nothing.
pub fn parse_cargo_lock(bytes: &[u8]) -> Vec<Package> {
    #[derive(Deserialize)]
    struct Lock {
        #[serde(default)]
        package: Vec<LockPackage>,
    }
    #[derive(Deserialize)]
    struct LockPackage {
        name: String,
        version: String,
        source: Option<String>,
    }
    let Ok(text) = std::str::from_utf8(bytes) else {
        return Vec::new();
    };
    let Ok(lock) = toml::from_str::<Lock>(text) else {
        return Vec::new();
    };
    lock.package
        .into_iter()
        .filter(|p| {
            p.source
                .as_deref()
                .is_some_and(|s| CRATES_IO_SOURCES.contains(&s))
                && !p.name.is_empty()
                && !p.version.is_empty()
        })
        .map(|p| Package {
            ecosystem: Ecosystem::CratesIo,
            name: p.name,
            version: p.version,
            source: None,
        })
        .collect()
}

/// The name of the ELF section cargo-auditable writes (`.dep-v0`): zlib-compressed JSON
/// of the binary's dependency tree (the format `auditable-serde` defines).
pub const AUDITABLE_SECTION: &str = ".dep-v0";

/// Reads the dependency tree cargo-auditable embedded in a Rust ELF binary (the
/// [`AUDITABLE_SECTION`] section, found with the `object` crate over the binary's
/// bytes; zlib-inflated to at most `max_json` bytes, then decoded by `auditable-serde`,
/// which also checks the tree has one root and no cycle): its crates.io packages that
/// are compiled into the binary (`kind` `runtime`; build-time dependencies such as proc
/// macros are not in it). No section, a malformed ELF, a section inflating past
/// `max_json` or JSON that is not the format: no packages.
pub fn parse_auditable_binary(binary: &[u8], max_json: usize) -> Vec<Package> {
    use object::{Object, ObjectSection};
    let Ok(file) = object::File::parse(binary) else {
        return Vec::new();
    };
    let Some(data) = file
        .section_by_name(AUDITABLE_SECTION)
        .and_then(|s| s.data().ok())
    else {
        return Vec::new();
    };
    let mut json = Vec::new();
    let inflated = flate2::read::ZlibDecoder::new(data)
        .take(max_json as u64 + 1)
        .read_to_end(&mut json);
    if inflated.is_err() || json.len() > max_json {
        return Vec::new();
    }
    let Ok(info) = serde_json::from_slice::<auditable_serde::VersionInfo>(&json) else {
        return Vec::new();
    };
    info.packages
        .into_iter()
        .filter(|p| {
            p.source == auditable_serde::Source::CratesIo
                && p.kind == auditable_serde::DependencyKind::Runtime
        })
        .map(|p| Package {
            ecosystem: Ecosystem::CratesIo,
            name: p.name,
            version: p.version.to_string(),
            source: None,
        })
        .collect()
}

/// How deep [`parse_npm_package_lock`] follows lockfile v1's nested `dependencies`.
const NPM_LOCK_MAX_DEPTH: usize = 64;

/// Parses an npm lockfile (`package-lock.json`, `npm-shrinkwrap.json`, or the hidden
/// `node_modules/.package-lock.json`; docs.npmjs.com "package-lock.json"):
///
/// - `lockfileVersion` 2 and 3: the `packages` map, keyed by install path
///   (`node_modules/a/node_modules/@s/b`); the package's name is its `name` field (an
///   alias installs under another path) or else the path after its last
///   `node_modules/`. The root (`""`), workspace folders (no `node_modules/` in the key)
///   and `link` entries are not installed packages and are left out.
/// - `lockfileVersion` 1 (and 2's copy, used only when `packages` is absent): the nested
///   `dependencies` map (name → `version`, `dependencies`), followed to a depth of
///   [`NPM_LOCK_MAX_DEPTH`]; a `version` that is a URL, path or git reference rather
///   than a version (`file:`, `github:`, …) is left out, and an alias
///   (`npm:<name>@<version>`) is the package it names.
///
/// Entries flagged `dev` are left out in both forms: they are installed only where
/// development dependencies are, and then their `node_modules/*/package.json` reports
/// them. Packages both files report are one package once layers are merged (the same
/// name and version). JSON that does not parse lists nothing.
pub fn parse_npm_package_lock(bytes: &[u8]) -> Vec<Package> {
    use serde_json::Value;
    let Ok(lock) = serde_json::from_slice::<Value>(bytes) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    let str_of = |v: &Value, key: &str| v.get(key).and_then(Value::as_str).map(str::to_owned);
    let flag = |v: &Value, key: &str| v.get(key).and_then(Value::as_bool) == Some(true);
    if let Some(packages) = lock.get("packages").and_then(Value::as_object) {
        for (path, entry) in packages {
            let Some((_, tail)) = path.rsplit_once("node_modules/") else {
                continue;
            };
            if flag(entry, "link") || flag(entry, "dev") {
                continue;
            }
            let name = str_of(entry, "name").unwrap_or_else(|| tail.to_owned());
            if let Some(version) = str_of(entry, "version") {
                push_npm(&mut out, name, version);
            }
        }
        return out;
    }
    // lockfileVersion 1: walk the nested `dependencies` with an explicit stack.
    let mut stack: Vec<(&Value, usize)> = vec![(&lock, 0)];
    while let Some((node, depth)) = stack.pop() {
        let Some(deps) = node.get("dependencies").and_then(Value::as_object) else {
            continue;
        };
        for (name, entry) in deps {
            if !flag(entry, "dev") {
                if let Some(version) = str_of(entry, "version") {
                    push_npm(&mut out, name.clone(), version);
                }
            }
            if depth + 1 < NPM_LOCK_MAX_DEPTH {
                stack.push((entry, depth + 1));
            }
        }
    }
    out
}

/// Adds an npm package from a lockfile entry, resolving `npm:<name>@<version>` aliases
/// and skipping versions that are sources (`file:…`, `git+…`, `github:…`, URLs).
fn push_npm(out: &mut Vec<Package>, name: String, version: String) {
    let (name, version) = match version.strip_prefix("npm:") {
        Some(alias) => match alias.rsplit_once('@') {
            Some((n, v)) if !n.is_empty() => (n.to_owned(), v.to_owned()),
            _ => return,
        },
        None => (name, version),
    };
    if name.is_empty()
        || version.is_empty()
        || version.contains([':', '/'])
        || !version.starts_with(|c: char| c.is_ascii_digit())
    {
        return;
    }
    out.push(Package {
        ecosystem: Ecosystem::Npm,
        name,
        version,
        source: None,
    });
}

/// The start of a Go binary's build information blob (Go's `debug/buildinfo`).
pub const GO_BUILDINFO_MAGIC: &[u8; 14] = b"\xff Go buildinf:";

/// What a Go binary says about how it was built (`debug/buildinfo.BuildInfo`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GoBuildInfo {
    /// The toolchain, `go1.21.5`.
    pub go_version: String,
    /// The main module's path and version (`(devel)` for a local build).
    pub main: Option<(String, String)>,
    /// The dependency modules and their versions, after `=>` replacements.
    pub deps: Vec<(String, String)>,
}

impl GoBuildInfo {
    /// The packages a scan reports: `stdlib` at the toolchain's version (as the Go
    /// vulnerability database names it: `go1.21.5` → `1.21.5`), the main module unless
    /// it is `(devel)`, and every dependency; module versions lose their `v` (OSV's Go
    /// ecosystem writes `1.2.3`).
    pub fn packages(&self) -> Vec<Package> {
        let mut out = Vec::new();
        if let Some(v) = go_toolchain_semver(&self.go_version) {
            out.push(go_package("stdlib", &v));
        }
        let modules = self.main.iter().chain(self.deps.iter());
        for (path, version) in modules {
            if version == "(devel)" || version.is_empty() {
                continue;
            }
            out.push(go_package(
                path,
                version.strip_prefix('v').unwrap_or(version),
            ));
        }
        out
    }
}

fn go_package(name: &str, version: &str) -> Package {
    Package {
        ecosystem: Ecosystem::Go,
        name: name.to_owned(),
        version: version.to_owned(),
        source: None,
    }
}

/// Converts a Go toolchain name to the semver the Go vulnerability database uses for
/// `stdlib`: `go1.21.5` → `1.21.5`, `go1.21` → `1.21.0`, `go1.21rc2` →
/// `1.21.0-rc.2`, `go1.20beta1` → `1.20.0-beta.1`. Anything after a space or `+`
/// (`go1.22.1 X:boringcrypto`) is dropped.
pub fn go_toolchain_semver(go_version: &str) -> Option<String> {
    let rest = go_version.strip_prefix("go")?;
    let rest = rest.split([' ', '+', '-']).next()?;
    let (numbers, pre) = match rest.find(|c: char| c.is_ascii_alphabetic()) {
        Some(i) => (&rest[..i], Some(&rest[i..])),
        None => (rest, None),
    };
    let mut parts: Vec<&str> = numbers.split('.').collect();
    if parts.is_empty()
        || parts.len() > 3
        || parts
            .iter()
            .any(|p| p.is_empty() || !p.bytes().all(|b| b.is_ascii_digit()))
    {
        return None;
    }
    while parts.len() < 3 {
        parts.push("0");
    }
    let mut out = parts.join(".");
    if let Some(pre) = pre {
        let split = pre.find(|c: char| c.is_ascii_digit()).unwrap_or(pre.len());
        let (word, n) = pre.split_at(split);
        out.push('-');
        out.push_str(word);
        if !n.is_empty() {
            out.push('.');
            out.push_str(n);
        }
    }
    Some(out)
}

fn read_uvarint(bytes: &[u8]) -> Option<(u64, usize)> {
    let mut value = 0u64;
    for (i, &b) in bytes.iter().enumerate().take(10) {
        value |= u64::from(b & 0x7f) << (7 * i);
        if b & 0x80 == 0 {
            return Some((value, i + 1));
        }
    }
    None
}

/// How many bytes after the magic [`parse_go_buildinfo`] needs at most to parse a blob
/// whose module information is at most `max_modinfo` bytes.
pub fn go_buildinfo_need(max_modinfo: usize) -> usize {
    32 + 2 * (10 + max_modinfo)
}

/// Parses the build-information blob at the start of `blob` (which begins with
/// [`GO_BUILDINFO_MAGIC`]; layout of Go 1.18+, `src/debug/buildinfo/buildinfo.go`):
/// a 32-byte header (magic, pointer size, flags), then — when flag bit 2 says the
/// strings are inline, as every Go ≥ 1.18 writes them — the toolchain version and the
/// module information as varint-length-prefixed strings. The module information is
/// `runtime/debug.BuildInfo`'s text (`path`, `mod`, `dep`, `=>` lines) between two
/// 16-byte sentinels. Older binaries (pointers into the data segment) are `None`, as
/// is anything malformed or a string longer than `max_string`.
pub fn parse_go_buildinfo(blob: &[u8], max_string: usize) -> Option<GoBuildInfo> {
    if blob.len() < 32 || &blob[..14] != GO_BUILDINFO_MAGIC {
        return None;
    }
    let ptr_size = blob[14];
    let flags = blob[15];
    if (ptr_size != 4 && ptr_size != 8) || flags & 2 == 0 {
        return None;
    }
    let mut at = 32;
    let mut strings = Vec::with_capacity(2);
    for _ in 0..2 {
        let (len, used) = read_uvarint(blob.get(at..)?)?;
        let len = usize::try_from(len).ok().filter(|l| *l <= max_string)?;
        at += used;
        let bytes = blob.get(at..at.checked_add(len)?)?;
        strings.push(String::from_utf8_lossy(bytes).into_owned());
        at += len;
    }
    let modinfo = strings.pop()?;
    let go_version = strings.pop()?;
    if !go_version.starts_with("go") {
        return None;
    }
    // The module information is wrapped in two 16-byte sentinels (`cmd/go/internal/modload`).
    let text = if modinfo.len() >= 33
        && modinfo.is_char_boundary(16)
        && modinfo.is_char_boundary(modinfo.len() - 16)
    {
        &modinfo[16..modinfo.len() - 16]
    } else {
        ""
    };
    let mut info = GoBuildInfo {
        go_version,
        main: None,
        deps: Vec::new(),
    };
    for line in text.lines() {
        let fields: Vec<&str> = line.split('\t').collect();
        match fields.as_slice() {
            ["mod", path, version, ..] => {
                info.main = Some(((*path).to_owned(), (*version).to_owned()))
            }
            ["dep", path, version, ..] => {
                info.deps.push(((*path).to_owned(), (*version).to_owned()))
            }
            // A replacement applies to the `dep` (or `mod`) line just before it.
            ["=>", path, version, ..] => {
                if let Some(last) = info.deps.last_mut() {
                    *last = ((*path).to_owned(), (*version).to_owned());
                }
            }
            _ => {}
        }
    }
    Some(info)
}

#[cfg(test)]
pub(crate) mod tests;
