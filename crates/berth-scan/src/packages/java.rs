//! Java archives: the Maven artifacts a `.jar`, `.war` or `.ear` holds.
//!
//! An archive is a zip file (the JAR File Specification). Maven writes
//! `META-INF/maven/<groupId>/<artifactId>/pom.properties` (`groupId`, `artifactId`,
//! `version`) into every artifact it packages, and shaded ("uber") jars keep one per
//! artifact they absorbed: each is a package. An archive without any falls back to its
//! `META-INF/MANIFEST.MF` (see [`manifest_package`]). Archives nest: Spring Boot keeps
//! its dependencies in `BOOT-INF/lib/*.jar`, a war in `WEB-INF/lib/*.jar`, an ear holds
//! jars and wars; every entry with an archive extension is read in turn, to
//! [`JarLimits::max_depth`].
//!
//! The outer archive's bytes are in memory already (the layer reader caps any file it
//! reads); the `zip` crate reads it through a `Cursor`. Everything read from inside is
//! capped too: metadata files at [`JarLimits::max_metadata_bytes`], each nested archive
//! at [`JarLimits::max_nested_bytes`] and all of them together at
//! [`JarLimits::max_total_nested_bytes`], the entries looked at per archive at
//! [`JarLimits::max_entries`]. A nested archive over a cap, an entry that does not
//! decompress (corrupt, encrypted, an unsupported method) or an archive that is not a
//! zip is skipped; nothing here panics.

use std::io::{Cursor, Read};

use super::{Ecosystem, Package};

/// Bounds on reading one (outer) Java archive. [`JarLimits::default`] suits real images.
#[derive(Clone, Debug)]
pub struct JarLimits {
    /// How deep archives nest: the outer archive is depth 0, a jar in it depth 1: 2
    /// (a jar in a war in an ear).
    pub max_depth: usize,
    /// The largest nested archive read into memory (decompressed): 32 MiB.
    pub max_nested_bytes: u64,
    /// The most bytes of nested archives read for one outer archive: 256 MiB.
    pub max_total_nested_bytes: u64,
    /// The largest `pom.properties` or `MANIFEST.MF` read: 64 KiB.
    pub max_metadata_bytes: u64,
    /// The most entries looked at in one archive: 100,000.
    pub max_entries: usize,
}

impl Default for JarLimits {
    fn default() -> Self {
        JarLimits {
            max_depth: 2,
            max_nested_bytes: 32 << 20,
            max_total_nested_bytes: 256 << 20,
            max_metadata_bytes: 64 << 10,
            max_entries: 100_000,
        }
    }
}

/// The Maven packages of a Java archive whose file name (for the manifest fallback) is
/// `file_name`, under [`JarLimits::default`]. Sorted, without duplicates.
pub fn parse_archive(bytes: &[u8], file_name: &str) -> Vec<Package> {
    parse_archive_with(bytes, file_name, &JarLimits::default())
}

/// [`parse_archive`] under other limits.
pub fn parse_archive_with(bytes: &[u8], file_name: &str, limits: &JarLimits) -> Vec<Package> {
    let mut out = Vec::new();
    let mut budget = limits.max_total_nested_bytes;
    walk(bytes, file_name, 0, limits, &mut budget, &mut out);
    out.sort();
    out.dedup();
    out
}

fn is_archive_name(name: &str) -> bool {
    name.rsplit_once('.').is_some_and(|(_, ext)| {
        ["jar", "war", "ear"]
            .iter()
            .any(|e| ext.eq_ignore_ascii_case(e))
    })
}

/// Reads entry `i` whole if it decompresses to at most `max` bytes.
fn read_entry<R: Read + std::io::Seek>(
    zip: &mut zip::ZipArchive<R>,
    i: usize,
    max: u64,
) -> Option<Vec<u8>> {
    let entry = zip.by_index(i).ok()?;
    if entry.size() > max {
        return None;
    }
    let mut bytes = Vec::with_capacity(entry.size() as usize);
    entry.take(max + 1).read_to_end(&mut bytes).ok()?;
    (bytes.len() as u64 <= max).then_some(bytes)
}

fn walk(
    bytes: &[u8],
    file_name: &str,
    depth: usize,
    limits: &JarLimits,
    budget: &mut u64,
    out: &mut Vec<Package>,
) {
    let Ok(mut zip) = zip::ZipArchive::new(Cursor::new(bytes)) else {
        return;
    };
    let mut found_pom = false;
    let mut manifest = None;
    let mut nested = Vec::new();
    for i in 0..zip.len().min(limits.max_entries) {
        let Some(Ok(name)) = zip.name_for_index(i) else {
            continue;
        };
        let name = name.into_owned();
        if name.starts_with("META-INF/maven/") && name.ends_with("/pom.properties") {
            if let Some(p) = read_entry(&mut zip, i, limits.max_metadata_bytes)
                .and_then(|b| pom_properties_package(&String::from_utf8_lossy(&b)))
            {
                out.push(p);
                found_pom = true;
            }
        } else if name.eq_ignore_ascii_case("META-INF/MANIFEST.MF") {
            manifest = read_entry(&mut zip, i, limits.max_metadata_bytes);
        } else if depth < limits.max_depth && is_archive_name(&name) {
            nested.push((i, name));
        }
    }
    if !found_pom {
        if let Some(m) = manifest {
            out.extend(manifest_package(&String::from_utf8_lossy(&m), file_name));
        }
    }
    for (i, name) in nested {
        let max = limits.max_nested_bytes.min(*budget);
        let Some(inner) = read_entry(&mut zip, i, max) else {
            continue;
        };
        *budget -= inner.len() as u64;
        let base = name.rsplit('/').next().unwrap_or(&name);
        walk(&inner, base, depth + 1, limits, budget, out);
    }
}

/// The value of `key` in a Java properties text (`java.util.Properties`: `key=value`,
/// `key: value` or `key value`, `#` and `!` comments). Written here rather than with a
/// crate: Maven's `pom.properties` holds plain `key=value` lines whose values (group,
/// artifact, version) never need the format's escapes or continuation lines.
fn property<'a>(text: &'a str, key: &str) -> Option<&'a str> {
    text.lines().find_map(|line| {
        let line = line.trim_start();
        if line.starts_with(['#', '!']) {
            return None;
        }
        let at = line.find(['=', ':', ' ', '\t'])?;
        let (k, rest) = line.split_at(at);
        let value = rest[1..].trim_start_matches([' ', '\t', '=', ':']).trim();
        (k == key && !value.is_empty()).then_some(value)
    })
}

/// The package a `pom.properties` names: `groupId:artifactId` at `version`.
pub fn pom_properties_package(text: &str) -> Option<Package> {
    let group = property(text, "groupId")?;
    let artifact = property(text, "artifactId")?;
    let version = property(text, "version")?;
    Some(Package {
        ecosystem: Ecosystem::Maven,
        name: format!("{group}:{artifact}"),
        version: version.to_owned(),
        source: None,
    })
}

/// The main section's attributes of a `MANIFEST.MF` (JAR File Specification, "Manifest
/// Specification": `Name: value` lines of at most 72 bytes, a line starting with one
/// space continuing the previous value, sections separated by blank lines).
fn manifest_main_section(text: &str) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = Vec::new();
    for line in text.lines() {
        if line.is_empty() {
            break;
        }
        if let Some(more) = line.strip_prefix(' ') {
            if let Some((_, value)) = out.last_mut() {
                value.push_str(more);
            }
        } else if let Some((k, v)) = line.split_once(':') {
            out.push((k.trim().to_owned(), v.trim().to_owned()));
        }
    }
    out
}

/// The package a manifest names, for an archive without `pom.properties`: version from
/// `Implementation-Version`, else `Bundle-Version` (OSGi); artifact from the archive's
/// file name when it is `<artifact>-<version>.<ext>`; group from
/// `Implementation-Vendor-Id`, else from `Bundle-SymbolicName` when that is
/// `<group>.<artifact>`. Without all three there is no Maven name to match, so no package.
pub fn manifest_package(text: &str, file_name: &str) -> Option<Package> {
    let attrs = manifest_main_section(text);
    let get = |key: &str| {
        attrs
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(key))
            .map(|(_, v)| v.as_str())
            .filter(|v| !v.is_empty())
    };
    let version = get("Implementation-Version").or_else(|| get("Bundle-Version"))?;
    let stem = file_name.rsplit_once('.').map_or(file_name, |(s, _)| s);
    let artifact = stem
        .strip_suffix(version)?
        .strip_suffix('-')
        .filter(|a| !a.is_empty())?;
    let group = match get("Implementation-Vendor-Id") {
        Some(g) => g.to_owned(),
        None => {
            // `Bundle-SymbolicName: org.example.lib;singleton:=true`
            let symbolic = get("Bundle-SymbolicName")?.split(';').next()?.trim();
            symbolic
                .strip_suffix(artifact)?
                .strip_suffix('.')
                .filter(|g| !g.is_empty())?
                .to_owned()
        }
    };
    Some(Package {
        ecosystem: Ecosystem::Maven,
        name: format!("{group}:{artifact}"),
        version: version.to_owned(),
        source: None,
    })
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use std::io::Write;

    /// A zip archive of `(name, bytes)` entries, deflated (as `jar` writes them) or stored
    /// (as Spring Boot stores nested jars).
    pub(crate) fn zip_of(entries: &[(&str, &[u8])], stored: bool) -> Vec<u8> {
        let mut w = zip::ZipWriter::new(Cursor::new(Vec::new()));
        let method = if stored {
            zip::CompressionMethod::Stored
        } else {
            zip::CompressionMethod::Deflated
        };
        let options = zip::write::SimpleFileOptions::default().compression_method(method);
        for (name, bytes) in entries {
            w.start_file(*name, options).unwrap();
            w.write_all(bytes).unwrap();
        }
        w.finish().unwrap().into_inner()
    }

    /// What Maven's archiver writes for an artifact.
    pub(crate) fn pom_properties(group: &str, artifact: &str, version: &str) -> String {
        format!("#Generated by Maven\n#Tue Mar 06 12:00:00 UTC 2012\nversion={version}\ngroupId={group}\nartifactId={artifact}\n")
    }

    fn names(found: &[Package]) -> Vec<(&str, &str)> {
        found
            .iter()
            .map(|p| (p.name.as_str(), p.version.as_str()))
            .collect()
    }

    /// pom.properties of every artifact in an archive (a shaded jar keeps several); its
    /// manifest is then not used.
    #[test]
    fn pom_properties_of_a_jar_and_a_shaded_jar() {
        let log4j = pom_properties("log4j", "log4j", "1.2.17");
        let shaded = pom_properties("com.google.guava", "guava", "20.0");
        let jar = zip_of(
            &[
                (
                    "META-INF/MANIFEST.MF",
                    b"Manifest-Version: 1.0\r\nImplementation-Version: 9.9\r\n\r\n",
                ),
                (
                    "META-INF/maven/log4j/log4j/pom.properties",
                    log4j.as_bytes(),
                ),
                ("META-INF/maven/log4j/log4j/pom.xml", b"<project/>"),
                (
                    "META-INF/maven/com.google.guava/guava/pom.properties",
                    shaded.as_bytes(),
                ),
                ("org/apache/log4j/Logger.class", &[0xca, 0xfe, 0xba, 0xbe]),
            ],
            false,
        );
        let found = parse_archive(&jar, "log4j-1.2.17.jar");
        assert_eq!(
            names(&found),
            [
                ("com.google.guava:guava", "20.0"),
                ("log4j:log4j", "1.2.17")
            ]
        );
        assert!(found.iter().all(|p| p.ecosystem == Ecosystem::Maven));
    }

    /// JAR File Specification manifests: 72-byte lines continued by a leading space;
    /// `Implementation-*` then OSGi `Bundle-*` attributes, with the file name for the
    /// artifact.
    #[test]
    fn manifest_fallback() {
        let manifest = "Manifest-Version: 1.0\r\nImplementation-Vendor-Id: org.exa\r\n mple\r\nImplementation-Version: 2.3.1\r\n\r\nName: x/\r\nImplementation-Version: 0\r\n";
        let p = manifest_package(manifest, "widget-2.3.1.jar").unwrap();
        assert_eq!(
            (p.name.as_str(), p.version.as_str()),
            ("org.example:widget", "2.3.1")
        );
        let osgi = "Bundle-SymbolicName: org.apache.commons.commons-text;singleton:=true\nBundle-Version: 1.9\n";
        let p = manifest_package(osgi, "commons-text-1.9.jar").unwrap();
        assert_eq!(
            (p.name.as_str(), p.version.as_str()),
            ("org.apache.commons:commons-text", "1.9")
        );
        // No group, or a file name that does not carry the version: no Maven name.
        assert!(manifest_package("Implementation-Version: 1.0\n", "lib-1.0.jar").is_none());
        assert!(manifest_package(manifest, "widget.jar").is_none());
        let jar = zip_of(&[("META-INF/MANIFEST.MF", manifest.as_bytes())], false);
        assert_eq!(
            names(&parse_archive(&jar, "widget-2.3.1.jar")),
            [("org.example:widget", "2.3.1")]
        );
    }

    /// Nested archives (Spring Boot `BOOT-INF/lib/`, a war's `WEB-INF/lib/`, an ear's
    /// modules) are read to the depth limit, each within its size cap and all within the
    /// total budget.
    #[test]
    fn nested_archives_bounded() {
        let inner = |g: &str, a: &str, v: &str| {
            let props = pom_properties(g, a, v);
            zip_of(
                &[(
                    &format!("META-INF/maven/{g}/{a}/pom.properties"),
                    props.as_bytes(),
                )],
                false,
            )
        };
        let log4j = inner("log4j", "log4j", "1.2.17");
        let text = inner("org.apache.commons", "commons-text", "1.9");
        let war = zip_of(
            &[
                ("WEB-INF/lib/commons-text-1.9.jar", &text),
                ("WEB-INF/web.xml", b"<web-app/>"),
            ],
            false,
        );
        let boot = zip_of(
            &[
                ("BOOT-INF/lib/log4j-1.2.17.jar", &log4j),
                ("BOOT-INF/lib/app.war", &war),
                ("BOOT-INF/lib/broken.jar", b"not a zip"),
            ],
            true,
        );
        assert_eq!(
            names(&parse_archive(&boot, "app.jar")),
            [
                ("log4j:log4j", "1.2.17"),
                ("org.apache.commons:commons-text", "1.9")
            ]
        );
        let shallow = JarLimits {
            max_depth: 1,
            ..JarLimits::default()
        };
        assert_eq!(
            names(&parse_archive_with(&boot, "app.jar", &shallow)),
            [("log4j:log4j", "1.2.17")]
        );
        let small = JarLimits {
            max_nested_bytes: 16,
            ..JarLimits::default()
        };
        assert!(parse_archive_with(&boot, "app.jar", &small).is_empty());
        let budget = JarLimits {
            max_total_nested_bytes: log4j.len() as u64,
            ..JarLimits::default()
        };
        assert_eq!(
            names(&parse_archive_with(&boot, "app.jar", &budget)),
            [("log4j:log4j", "1.2.17")]
        );
        // A zip bomb inside: a nested "jar" of 64 MiB of zeros deflates to ~64 KiB; the cap
        // stops it after 32 MiB of inflation and the archive's other entries still count.
        let zeros = vec![0u8; 64 << 20];
        let bomb = zip_of(
            &[
                ("BOOT-INF/lib/bomb.jar", &zeros),
                ("BOOT-INF/lib/log4j-1.2.17.jar", &log4j),
            ],
            false,
        );
        assert_eq!(
            names(&parse_archive(&bomb, "app.jar")),
            [("log4j:log4j", "1.2.17")]
        );
        assert!(parse_archive(b"PK\x03\x04 truncated", "x.jar").is_empty());
    }
}
