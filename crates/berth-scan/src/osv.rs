//! OSV records (<https://ossf.github.io/osv-schema/>, schema 1.6): the fields matching
//! and reporting use, read leniently (unknown fields ignored, missing lists empty).
//!
//! [`read_path`] reads what `berth vulndb import` is given: one `.json` record, a
//! directory tree of them, or one of the zip archives OSV publishes per ecosystem
//! (`<ecosystem>/all.zip`: one record per entry). Every record is bounded
//! ([`MAX_RECORD_BYTES`]); a file that is not a record is an error naming it.

use std::io::Read;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// The largest record read (real ones are a few kB; the largest of the OSV feeds is
/// under 1 MiB).
pub const MAX_RECORD_BYTES: u64 = 8 << 20;

/// One OSV vulnerability record.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct OsvRecord {
    /// `id`, e.g. `PYSEC-2023-192`, `GHSA-…`, `GO-2020-0001`.
    pub id: String,
    /// `modified`, RFC 3339.
    #[serde(default)]
    pub modified: String,
    /// `published`, RFC 3339.
    #[serde(default)]
    pub published: Option<String>,
    /// `withdrawn`: a withdrawn record matches nothing.
    #[serde(default)]
    pub withdrawn: Option<String>,
    /// `aliases`: other IDs of the same vulnerability (CVE, GHSA, …).
    #[serde(default)]
    pub aliases: Vec<String>,
    /// `summary`.
    #[serde(default)]
    pub summary: Option<String>,
    /// `details`.
    #[serde(default)]
    pub details: Option<String>,
    /// `severity`: scores (`CVSS_V3` vectors among them).
    #[serde(default)]
    pub severity: Vec<OsvSeverity>,
    /// `affected`: packages, ranges and versions.
    #[serde(default)]
    pub affected: Vec<OsvAffected>,
    /// `references`.
    #[serde(default)]
    pub references: Vec<OsvReference>,
    /// `database_specific`: GHSA puts its rating (`severity`: `LOW` … `CRITICAL`) here.
    #[serde(default)]
    pub database_specific: Option<serde_json::Value>,
}

/// A `severity` entry.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct OsvSeverity {
    /// `CVSS_V2`, `CVSS_V3`, `CVSS_V4`, `Ubuntu`.
    #[serde(rename = "type")]
    pub kind: String,
    /// The vector (or rating).
    pub score: String,
}

/// A `references` entry.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct OsvReference {
    /// `ADVISORY`, `FIX`, `WEB`, …
    #[serde(rename = "type", default)]
    pub kind: String,
    /// The URL.
    #[serde(default)]
    pub url: String,
}

/// An `affected` entry.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct OsvAffected {
    /// `package`; an entry without one (a GIT-only entry) matches nothing here.
    #[serde(default)]
    pub package: Option<OsvPackage>,
    /// `ranges`.
    #[serde(default)]
    pub ranges: Vec<OsvRange>,
    /// `versions`: an explicit list of affected versions.
    #[serde(default)]
    pub versions: Vec<String>,
    /// `ecosystem_specific` (Debian and Ubuntu put `urgency`/`severity` here).
    #[serde(default)]
    pub ecosystem_specific: Option<serde_json::Value>,
    /// `database_specific`.
    #[serde(default)]
    pub database_specific: Option<serde_json::Value>,
}

/// `affected[].package`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct OsvPackage {
    /// `ecosystem`: `PyPI`, `npm`, `Go`, `crates.io`, `Debian:12`, `Alpine:v3.19`, …
    #[serde(default)]
    pub ecosystem: String,
    /// `name`.
    #[serde(default)]
    pub name: String,
}

/// `affected[].ranges[]`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct OsvRange {
    /// `SEMVER`, `ECOSYSTEM` or `GIT` (GIT ranges name commits: not matched here).
    #[serde(rename = "type", default)]
    pub kind: String,
    /// `events`, in any order.
    #[serde(default)]
    pub events: Vec<OsvEvent>,
}

/// One range event: exactly one of its fields is set in a valid record.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct OsvEvent {
    /// `introduced`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub introduced: Option<String>,
    /// `fixed`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fixed: Option<String>,
    /// `last_affected`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_affected: Option<String>,
    /// `limit`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limit: Option<String>,
}

/// Why reading OSV data failed.
#[derive(Debug, thiserror::Error)]
pub enum OsvError {
    /// A file or directory could not be read. The message names the path; the cause is
    /// the error's source (printed once by error chains such as anyhow's `{:#}`).
    #[error("reading {path}")]
    Io {
        /// The path.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// A record is not OSV JSON.
    #[error("{location}: not an OSV record: {reason}")]
    NotARecord {
        /// The file (and zip entry).
        location: String,
        /// What the JSON parser said.
        reason: String,
    },
    /// A record is larger than [`MAX_RECORD_BYTES`].
    #[error("{location}: larger than {MAX_RECORD_BYTES} bytes")]
    TooLarge {
        /// The file (and zip entry).
        location: String,
    },
    /// A zip archive is corrupt.
    #[error("{path}: not a readable zip archive: {reason}")]
    Zip {
        /// The archive.
        path: PathBuf,
        /// What the zip reader said.
        reason: String,
    },
}

/// Parses one record from JSON bytes. Never panics.
pub fn parse_record(bytes: &[u8]) -> Result<OsvRecord, serde_json::Error> {
    let record: OsvRecord = serde_json::from_slice(bytes)?;
    if record.id.is_empty() {
        return Err(serde::de::Error::missing_field("id"));
    }
    Ok(record)
}

fn read_bounded(reader: impl Read, location: &str) -> Result<Vec<u8>, std::io::Error> {
    let mut bytes = Vec::new();
    reader.take(MAX_RECORD_BYTES + 1).read_to_end(&mut bytes)?;
    if bytes.len() as u64 > MAX_RECORD_BYTES {
        return Err(std::io::Error::other(format!(
            "{location}: larger than {MAX_RECORD_BYTES} bytes"
        )));
    }
    Ok(bytes)
}

fn record_from(bytes: &[u8], location: String) -> Result<OsvRecord, OsvError> {
    parse_record(bytes).map_err(|e| OsvError::NotARecord {
        location,
        reason: e.to_string(),
    })
}

/// Reads every record under `path`: a `.json` file, a `.zip` archive of `.json` entries,
/// or a directory searched recursively for both (other files, such as READMEs and
/// `PROVENANCE.json`/`SOURCES.json` bookkeeping, are skipped: only files whose record
/// parses with an `id` count, and a `.json` that fails to parse is an error unless its
/// name is all upper case). Records are returned in path order.
pub fn read_path(path: &Path) -> Result<Vec<OsvRecord>, OsvError> {
    let io = |source| OsvError::Io {
        path: path.to_owned(),
        source,
    };
    let meta = std::fs::metadata(path).map_err(io)?;
    if meta.is_dir() {
        let mut entries: Vec<PathBuf> = std::fs::read_dir(path)
            .map_err(io)?
            .map(|e| e.map(|e| e.path()))
            .collect::<Result<_, _>>()
            .map_err(io)?;
        entries.sort();
        let mut out = Vec::new();
        for entry in entries {
            let is_dir = std::fs::metadata(&entry)
                .map(|m| m.is_dir())
                .unwrap_or(false);
            let ext = entry.extension().and_then(|e| e.to_str()).unwrap_or("");
            if is_dir || ext == "json" || ext == "zip" {
                if is_bookkeeping(&entry) {
                    continue;
                }
                out.extend(read_path(&entry)?);
            }
        }
        return Ok(out);
    }
    if path.extension().and_then(|e| e.to_str()) == Some("zip") {
        return read_zip(path);
    }
    let location = path.display().to_string();
    let file = std::fs::File::open(path).map_err(io)?;
    let bytes = read_bounded(file, &location).map_err(|_| OsvError::TooLarge {
        location: location.clone(),
    })?;
    Ok(vec![record_from(&bytes, location)?])
}

/// `SOURCES.json`, `PROVENANCE.json`: files beside the records that describe them.
fn is_bookkeeping(path: &Path) -> bool {
    let stem = path.file_stem().and_then(|s| s.to_str()).unwrap_or("");
    path.extension().and_then(|e| e.to_str()) == Some("json")
        && !stem.is_empty()
        && stem.chars().all(|c| c.is_ascii_uppercase() || c == '_')
}

fn read_zip(path: &Path) -> Result<Vec<OsvRecord>, OsvError> {
    let zip_error = |e: zip::result::ZipError| OsvError::Zip {
        path: path.to_owned(),
        reason: e.to_string(),
    };
    let file = std::fs::File::open(path).map_err(|source| OsvError::Io {
        path: path.to_owned(),
        source,
    })?;
    let mut archive = zip::ZipArchive::new(file).map_err(zip_error)?;
    let mut out = Vec::new();
    for i in 0..archive.len() {
        let entry = archive.by_index(i).map_err(zip_error)?;
        let name = String::from_utf8_lossy(entry.name_raw()).into_owned();
        if !entry.is_file() || !name.ends_with(".json") {
            continue;
        }
        let location = format!("{}!{name}", path.display());
        if entry.size() > MAX_RECORD_BYTES {
            return Err(OsvError::TooLarge { location });
        }
        let bytes = read_bounded(entry, &location).map_err(|e| OsvError::Zip {
            path: path.to_owned(),
            reason: e.to_string(),
        })?;
        out.push(record_from(&bytes, location)?);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The OSV schema's own example shape, with fields Berth does not read.
    #[test]
    fn parses_a_record_and_ignores_unknown_fields() {
        let record = parse_record(
            br#"{"schema_version":"1.6.0","id":"GHSA-x","modified":"2024-01-01T00:00:00Z",
                "aliases":["CVE-2024-1"],"affected":[{"package":{"ecosystem":"npm","name":"x"},
                "ranges":[{"type":"SEMVER","events":[{"introduced":"0"},{"fixed":"1.2.3"}]}],
                "versions":["1.0.0"],"whatever":1}],"severity":[{"type":"CVSS_V3","score":"CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H"}]}"#,
        )
        .unwrap();
        assert_eq!(record.id, "GHSA-x");
        assert_eq!(
            record.affected[0].ranges[0].events[1].fixed.as_deref(),
            Some("1.2.3")
        );
        assert!(parse_record(b"{}").is_err(), "a record needs an id");
        assert!(parse_record(b"[1,2]").is_err());
    }

    #[test]
    fn reads_directories_and_zip_archives() {
        let dir = tempfile::tempdir().unwrap();
        let record = br#"{"id":"OSV-1","affected":[]}"#;
        std::fs::create_dir(dir.path().join("npm")).unwrap();
        std::fs::write(dir.path().join("npm/OSV-1.json"), record).unwrap();
        std::fs::write(
            dir.path().join("npm/PROVENANCE.json"),
            b"{\"not\":\"a record\"}",
        )
        .unwrap();
        std::fs::write(dir.path().join("README.md"), b"# not a record").unwrap();
        let zip_path = dir.path().join("all.zip");
        {
            let mut zip = zip::ZipWriter::new(std::fs::File::create(&zip_path).unwrap());
            zip.start_file("OSV-2.json", zip::write::SimpleFileOptions::default())
                .unwrap();
            std::io::Write::write_all(&mut zip, br#"{"id":"OSV-2"}"#).unwrap();
            zip.finish().unwrap();
        }
        let ids: Vec<String> = read_path(dir.path())
            .unwrap()
            .into_iter()
            .map(|r| r.id)
            .collect();
        assert_eq!(ids, ["OSV-2", "OSV-1"]);
        std::fs::write(dir.path().join("npm/bad.json"), b"{").unwrap();
        let err = read_path(dir.path()).unwrap_err().to_string();
        assert!(
            err.contains("bad.json") && err.contains("not an OSV record"),
            "{err}"
        );
    }
}
