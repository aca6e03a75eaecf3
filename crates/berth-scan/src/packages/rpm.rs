//! RPM's package database in its SQLite form (`rpmdb.sqlite`, RPM ≥ 4.16: RHEL 9,
//! Rocky Linux 9, AlmaLinux 9, Fedora ≥ 33): table `Packages (hnum INTEGER PRIMARY KEY,
//! blob BLOB)`, one row per installed package, each blob an RPM header.
//!
//! *Reading SQLite from a layer:* the database's bytes are in memory (at most the layer
//! reader's file cap). SQLite can open a memory image (`sqlite3_deserialize`), but
//! `rusqlite` only takes one in a buffer allocated by `sqlite3_malloc`, which needs
//! `unsafe` code here; so the bytes are written to a temporary file instead (as large as
//! the capped file, deleted when the read ends) and opened read-only and `immutable`
//! (no locks, no `-wal` or `-shm` files made beside it). Hostile databases: only a real
//! table named `Packages` is read (a view could make a query run for ever), at most
//! [`MAX_PACKAGES`] rows, each header validated before use. No RPM data is in the OSV
//! set the tests use, so this is parsing and version ordering only.

use std::io::Write;

use super::{Ecosystem, Package};

/// The most rows of `Packages` read (a real system has a few thousand).
pub const MAX_PACKAGES: usize = 200_000;

/// The installed packages of an `rpmdb.sqlite`'s bytes; none for bytes that are not
/// such a database (or when no temporary file can be written).
pub fn parse_rpmdb_sqlite(bytes: &[u8]) -> Vec<Package> {
    // Not SQLite at all: skip the temporary file.
    if !bytes.starts_with(b"SQLite format 3\0") {
        return Vec::new();
    }
    let Ok(mut file) = tempfile::NamedTempFile::new() else {
        return Vec::new();
    };
    if file.write_all(bytes).and_then(|()| file.flush()).is_err() {
        return Vec::new();
    }
    read_db(file.path()).unwrap_or_default()
}

fn read_db(path: &std::path::Path) -> rusqlite::Result<Vec<Package>> {
    use rusqlite::OpenFlags;
    let mut uri = String::from("file:");
    for b in path.to_string_lossy().bytes() {
        // Percent-encode what a URI path may not hold as is (RFC 3986).
        if b.is_ascii_alphanumeric() || b"/-._~".contains(&b) {
            uri.push(char::from(b));
        } else {
            uri.push_str(&format!("%{b:02X}"));
        }
    }
    uri.push_str("?immutable=1");
    let conn = rusqlite::Connection::open_with_flags(
        uri,
        OpenFlags::SQLITE_OPEN_READ_ONLY
            | OpenFlags::SQLITE_OPEN_URI
            | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )?;
    let kind: Option<String> = conn
        .query_row(
            "SELECT type FROM sqlite_master WHERE name = 'Packages'",
            [],
            |row| row.get(0),
        )
        .ok();
    if kind.as_deref() != Some("table") {
        return Ok(Vec::new());
    }
    let mut statement = conn.prepare("SELECT blob FROM Packages")?;
    let mut rows = statement.query([])?;
    let mut out = Vec::new();
    let mut seen = 0;
    while let Some(row) = rows.next()? {
        seen += 1;
        if seen > MAX_PACKAGES {
            break;
        }
        if let Ok(blob) = row.get_ref(0).and_then(|v| Ok(v.as_blob()?.to_vec())) {
            out.extend(parse_header(&blob));
        }
    }
    Ok(out)
}

// Header tags (rpm's `rpmtag.h`) and the types they have.
const TAG_NAME: u32 = 1000;
const TAG_VERSION: u32 = 1001;
const TAG_RELEASE: u32 = 1002;
const TAG_EPOCH: u32 = 1003;
const TAG_SOURCERPM: u32 = 1044;
const TYPE_INT32: u32 = 4;
const TYPE_STRING: u32 = 6;

/// Parses one RPM header as the database stores it (rpm's "header structure", without
/// the 8-byte magic a package file puts before it): big-endian `il` (index entries) and
/// `dl` (data bytes), `il` 16-byte entries (`tag`, `type`, `offset`, `count`), then the
/// data. The package is `NAME` at `[EPOCH:]VERSION-RELEASE`, with its source package's
/// name from `SOURCERPM` (`openssl-3.0.7-24.el9.src.rpm` → `openssl`) when it differs.
/// A header whose counts or offsets point outside it, or without name, version and
/// release, is no package. (`gpg-pubkey` pseudo-packages are left out: keys, not
/// software.)
pub fn parse_header(blob: &[u8]) -> Option<Package> {
    let be32 = |at: usize| -> Option<u32> {
        Some(u32::from_be_bytes(
            blob.get(at..at.checked_add(4)?)?.try_into().ok()?,
        ))
    };
    let il = usize::try_from(be32(0)?).ok()?;
    let dl = usize::try_from(be32(4)?).ok()?;
    let data_start = il.checked_mul(16)?.checked_add(8)?;
    let data = blob.get(data_start..data_start.checked_add(dl)?)?;
    let entry = |tag: u32| -> Option<(u32, usize)> {
        (0..il).find_map(|i| {
            let at = 8 + 16 * i;
            (be32(at)? == tag).then_some(())?;
            Some((be32(at + 4)?, usize::try_from(be32(at + 8)?).ok()?))
        })
    };
    let string = |tag: u32| -> Option<String> {
        let (kind, offset) = entry(tag)?;
        if kind != TYPE_STRING {
            return None;
        }
        let rest = data.get(offset..)?;
        let end = rest.iter().position(|b| *b == 0)?;
        let text = std::str::from_utf8(&rest[..end]).ok()?;
        (!text.is_empty()).then(|| text.to_owned())
    };
    let name = string(TAG_NAME)?;
    if name == "gpg-pubkey" {
        return None;
    }
    let version = string(TAG_VERSION)?;
    let release = string(TAG_RELEASE)?;
    let epoch = entry(TAG_EPOCH).and_then(|(kind, offset)| {
        (kind == TYPE_INT32).then_some(())?;
        u32::from_be_bytes(data.get(offset..offset.checked_add(4)?)?.try_into().ok()?).into()
    });
    let evr = match epoch {
        Some(e) => format!("{e}:{version}-{release}"),
        None => format!("{version}-{release}"),
    };
    let source = string(TAG_SOURCERPM).and_then(|srpm| {
        let stem = srpm
            .strip_suffix(".src.rpm")
            .or(srpm.strip_suffix(".nosrc.rpm"))?;
        let (rest, _release) = stem.rsplit_once('-')?;
        let (source, _version) = rest.rsplit_once('-')?;
        (source != name && !source.is_empty()).then(|| source.to_owned())
    });
    Some(Package {
        ecosystem: Ecosystem::Rpm,
        name,
        version: evr,
        source,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An RPM header blob as rpm stores it in the database: `il`, `dl`, the index
    /// entries, then the data (strings NUL-terminated, INT32 big-endian and 4-aligned).
    fn header(strings: &[(u32, &str)], epoch: Option<u32>) -> Vec<u8> {
        let mut index = Vec::new();
        let mut data = Vec::new();
        if let Some(e) = epoch {
            index.push((TAG_EPOCH, TYPE_INT32, data.len() as u32));
            data.extend_from_slice(&e.to_be_bytes());
        }
        for (tag, s) in strings {
            index.push((*tag, TYPE_STRING, data.len() as u32));
            data.extend_from_slice(s.as_bytes());
            data.push(0);
        }
        let mut blob = Vec::new();
        blob.extend_from_slice(&(index.len() as u32).to_be_bytes());
        blob.extend_from_slice(&(data.len() as u32).to_be_bytes());
        for (tag, kind, offset) in index {
            for n in [tag, kind, offset, 1] {
                blob.extend_from_slice(&n.to_be_bytes());
            }
        }
        blob.extend_from_slice(&data);
        blob
    }

    fn openssl_libs() -> Vec<u8> {
        header(
            &[
                (TAG_NAME, "openssl-libs"),
                (TAG_VERSION, "3.0.7"),
                (TAG_RELEASE, "24.el9"),
                (TAG_SOURCERPM, "openssl-3.0.7-24.el9.src.rpm"),
            ],
            Some(1),
        )
    }

    /// rpm's header structure: name, `epoch:version-release`, the source package's name.
    #[test]
    fn header_fields() {
        let p = parse_header(&openssl_libs()).unwrap();
        assert_eq!(p.ecosystem, Ecosystem::Rpm);
        assert_eq!(p.name, "openssl-libs");
        assert_eq!(p.version, "1:3.0.7-24.el9");
        assert_eq!(p.source.as_deref(), Some("openssl"));
        let bash = header(
            &[
                (TAG_NAME, "bash"),
                (TAG_VERSION, "5.1.8"),
                (TAG_RELEASE, "6.el9"),
                (TAG_SOURCERPM, "bash-5.1.8-6.el9.src.rpm"),
            ],
            None,
        );
        let p = parse_header(&bash).unwrap();
        assert_eq!((p.version.as_str(), p.source), ("5.1.8-6.el9", None));
        let key = header(
            &[
                (TAG_NAME, "gpg-pubkey"),
                (TAG_VERSION, "1"),
                (TAG_RELEASE, "1"),
            ],
            None,
        );
        assert!(parse_header(&key).is_none());
        // Truncated, counts past the end, offsets past the data: no package, no panic.
        let whole = openssl_libs();
        for cut in 0..whole.len() {
            let _ = parse_header(&whole[..cut]);
        }
        assert!(parse_header(&[0xff, 0xff, 0xff, 0xff, 0, 0, 0, 0]).is_none());
        let mut bad = whole.clone();
        bad[8 + 16 + 8..8 + 16 + 12].copy_from_slice(&u32::MAX.to_be_bytes());
        let _ = parse_header(&bad);
    }

    /// `rpmdb.sqlite` as rpm ≥ 4.16 writes it (table `Packages (hnum, blob)`), made here
    /// with SQLite; a database whose `Packages` is a view, or bytes that are not SQLite,
    /// list nothing.
    #[test]
    fn sqlite_database() {
        let dir = tempfile::tempdir().unwrap();
        let make = |name: &str, schema: &str| {
            let path = dir.path().join(name);
            let conn = rusqlite::Connection::open(&path).unwrap();
            conn.execute_batch(schema).unwrap();
            conn.execute(
                "INSERT INTO Packages (hnum, blob) VALUES (1, ?1)",
                [openssl_libs()],
            )
            .ok();
            drop(conn);
            std::fs::read(path).unwrap()
        };
        let db = make(
            "rpmdb.sqlite",
            "PRAGMA journal_mode=WAL; CREATE TABLE Packages (hnum INTEGER PRIMARY KEY AUTOINCREMENT, blob BLOB NOT NULL); CREATE TABLE Name (key TEXT, hnum INTEGER, idx INTEGER);",
        );
        let found = parse_rpmdb_sqlite(&db);
        assert_eq!(found.len(), 1, "{found:?}");
        assert_eq!(found[0].version, "1:3.0.7-24.el9");
        let view = make(
            "view.sqlite",
            "CREATE TABLE t (hnum INTEGER, blob BLOB); CREATE VIEW Packages AS WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c) SELECT x AS hnum, x AS blob FROM c;",
        );
        assert!(parse_rpmdb_sqlite(&view).is_empty());
        assert!(parse_rpmdb_sqlite(b"SQLite format 3\0 and then garbage").is_empty());
        assert!(parse_rpmdb_sqlite(b"not a database").is_empty());
    }
}
