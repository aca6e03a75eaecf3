//! Reading one layer into a [`LayerInventory`], and stacking layers into an image's
//! [`Inventory`].
//!
//! A layer is read once, front to back, as a stream: the compression is told from its
//! first bytes (gzip `1f 8b`, zstd `28 b5 2f fd`, else an uncompressed tar), entries are
//! walked with the `tar` crate in *raw* mode, and only the files a parser wants
//! ([`crate::packages::kind_of_path`]) are read into memory, each at most
//! [`Limits::max_file_bytes`]. Executables starting with the ELF magic are read whole
//! when they are at most [`Limits::max_file_bytes`] and searched for a Go
//! build-information blob and for cargo-auditable's `.dep-v0` section (a Rust binary's
//! dependency tree, read with the `object` crate); bigger ones are streamed in
//! fixed-size chunks for the Go blob only (see `scan_go_binary`), never held whole. Raw mode is used because the tar crate, in its default mode, reads GNU long
//! names and PAX headers into memory whatever their size; here they are bounded by
//! [`Limits::max_path_bytes`]. GNU sparse entries are skipped unread (a 10 GB sparse
//! file costs its few stored blocks).
//!
//! Limits and hostile input end the read with a [`ScanError`] that says why: the expanded
//! stream outgrowing [`Limits::max_expanded_bytes`] (a decompression bomb), more than
//! [`Limits::max_entries`] entries, a `..` component in a name (path traversal: Berth
//! never writes entries anywhere, but such a layer is not one a runtime would apply), a
//! corrupt gzip, zstd or tar stream. Memory is bounded by the limits, not by the layer.

use std::cell::Cell;
use std::collections::BTreeMap;
use std::io::{self, BufRead, BufReader, Read};
use std::rc::Rc;

use serde::{Deserialize, Serialize};

use crate::packages::{self, FileKind, OsRelease, Package};

/// Bounds on reading one layer. [`Limits::default`] suits real images.
#[derive(Clone, Debug)]
pub struct Limits {
    /// The largest package-database file read (bigger ones are skipped with a note):
    /// 64 MiB.
    pub max_file_bytes: u64,
    /// The most bytes the decompressed tar stream may have: 16 GiB.
    pub max_expanded_bytes: u64,
    /// The most tar entries: 2,000,000.
    pub max_entries: u64,
    /// The longest entry name (GNU long names and PAX `path` included): 4,096 bytes.
    pub max_path_bytes: usize,
    /// The longest Go build-information string (module list) read: 4 MiB.
    pub max_go_modinfo_bytes: usize,
    /// The most bytes a Rust binary's cargo-auditable dependency tree may inflate to
    /// (its JSON; real ones are tens of KiB): 8 MiB.
    pub max_auditable_bytes: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_file_bytes: 64 << 20,
            max_expanded_bytes: 16 << 30,
            max_entries: 2_000_000,
            max_path_bytes: 4096,
            max_go_modinfo_bytes: 4 << 20,
            max_auditable_bytes: 8 << 20,
        }
    }
}

/// Why a layer could not be read. Every variant says what was wrong with the layer.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ScanError {
    /// The compressed stream or the tar inside it is malformed (or reading it failed).
    #[error("layer is not a readable tar stream: {0}")]
    Corrupt(String),
    /// The decompressed stream is larger than the limit (a decompression bomb, or a
    /// layer beyond what the scanner accepts).
    #[error("layer expands to more than {0} bytes")]
    TooLarge(u64),
    /// The layer has more entries than the limit.
    #[error("layer has more than {0} entries")]
    TooManyEntries(u64),
    /// An entry's name climbs out of the root with `..`.
    #[error("layer entry {0:?} has a '..' component (path traversal)")]
    PathTraversal(String),
    /// An entry's name (or GNU long name, or PAX path) is longer than the limit.
    #[error("layer entry name longer than {0} bytes")]
    NameTooLong(usize),
}

/// What one package-database file said.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct FileFindings {
    /// The operating system, for an os-release file.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub os: Option<OsRelease>,
    /// The packages it lists (empty for a file that replaced a lower layer's and lists
    /// none, or one skipped for its size).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub packages: Vec<Package>,
}

/// What one layer holds, computed from its bytes alone (so it can be cached per layer
/// digest): the findings of each interesting file by normalised path (no leading `/`),
/// and the layer's deletions of lower layers' files.
///
/// Its JSON is the per-layer cache's format, and stays backward compatible: an
/// inventory stored by an older Berth still decodes (new fields have defaults, new
/// [`crate::Ecosystem`] variants only add). What an older reader did not look for is
/// not in it, though; [`LayerInventory::format`] says which reader made it (absent: 0),
/// so a cache can tell an inventory older than [`LayerInventory::FORMAT`] and re-read
/// its layer.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct LayerInventory {
    /// The reader's format ([`LayerInventory::FORMAT`] for one made by this version;
    /// 0 for one stored before the field existed). 1: Cargo.lock, cargo-auditable
    /// binaries, npm lockfiles and Java archives are read.
    #[serde(default)]
    pub format: u32,
    /// Findings per file path.
    pub files: BTreeMap<String, FileFindings>,
    /// Paths deleted by `.wh.<name>` entries (the path without the prefix).
    #[serde(default)]
    pub whiteouts: Vec<String>,
    /// Directories made opaque by `.wh..wh..opq` (empty string: the root).
    #[serde(default)]
    pub opaque_dirs: Vec<String>,
    /// Files not read and why (over the size limit, sparse).
    #[serde(default)]
    pub notes: Vec<String>,
    /// Bytes of the decompressed tar stream.
    pub expanded_bytes: u64,
}

impl LayerInventory {
    /// The format of the inventories [`read_layer`] makes now.
    pub const FORMAT: u32 = 1;
}

/// An image's packages: its layers' inventories stacked.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Inventory {
    /// The operating system (`etc/os-release` over `usr/lib/os-release`).
    pub os: Option<OsRelease>,
    /// Every package, sorted, duplicates (one package found at two paths) removed.
    pub packages: Vec<Package>,
}

/// Stacks layer inventories, lowest first, by the OCI image spec's "Applying Changesets"
/// rules: a layer's opaque directories hide everything lower layers put under them, its
/// whiteouts hide the named path and everything under it, then its own files replace
/// lower ones at the same path.
pub fn merge<'a>(layers: impl IntoIterator<Item = &'a LayerInventory>) -> Inventory {
    let mut files: BTreeMap<&str, &FileFindings> = BTreeMap::new();
    for layer in layers {
        for dir in &layer.opaque_dirs {
            files.retain(|path, _| !is_under(path, dir));
        }
        for gone in &layer.whiteouts {
            files.retain(|path, _| *path != gone.as_str() && !is_under(path, gone));
        }
        for (path, found) in &layer.files {
            files.insert(path, found);
        }
    }
    let os = files
        .get("etc/os-release")
        .or_else(|| files.get("usr/lib/os-release"))
        .and_then(|f| f.os.clone());
    let mut packages: Vec<Package> = files
        .values()
        .flat_map(|f| f.packages.iter().cloned())
        .collect();
    packages.sort();
    packages.dedup();
    Inventory { os, packages }
}

fn is_under(path: &str, dir: &str) -> bool {
    dir.is_empty()
        || path
            .strip_prefix(dir)
            .is_some_and(|rest| rest.starts_with('/'))
}

/// Counts the decompressed bytes and refuses to go past the limit; `exceeded` tells the
/// caller why the tar reader failed.
struct Counted<R> {
    inner: R,
    count: Rc<Cell<u64>>,
    limit: u64,
    exceeded: Rc<Cell<bool>>,
}

impl<R: Read> Read for Counted<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        let total = self.count.get() + n as u64;
        self.count.set(total);
        if total > self.limit {
            self.exceeded.set(true);
            return Err(io::Error::other("expanded size limit"));
        }
        Ok(n)
    }
}

/// Reads one layer (its blob's bytes, compressed or not) into its inventory. See the
/// module doc for what is read and the errors.
pub fn read_layer(reader: impl Read, limits: &Limits) -> Result<LayerInventory, ScanError> {
    let mut reader = BufReader::with_capacity(64 << 10, reader);
    let magic = reader
        .fill_buf()
        .map_err(|e| ScanError::Corrupt(e.to_string()))?;
    let decompressed: Box<dyn Read> = if magic.starts_with(&[0x1f, 0x8b]) {
        Box::new(flate2::bufread::MultiGzDecoder::new(reader))
    } else if magic.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
        Box::new(
            zstd::stream::read::Decoder::with_buffer(reader)
                .map_err(|e| ScanError::Corrupt(e.to_string()))?,
        )
    } else {
        Box::new(reader)
    };
    let count = Rc::new(Cell::new(0));
    let exceeded = Rc::new(Cell::new(false));
    let counted = Counted {
        inner: decompressed,
        count: count.clone(),
        limit: limits.max_expanded_bytes,
        exceeded: exceeded.clone(),
    };
    let result = walk(counted, limits);
    if exceeded.get() {
        return Err(ScanError::TooLarge(limits.max_expanded_bytes));
    }
    let mut inventory = result?;
    inventory.expanded_bytes = count.get();
    inventory.format = LayerInventory::FORMAT;
    Ok(inventory)
}

fn corrupt(e: io::Error) -> ScanError {
    ScanError::Corrupt(e.to_string())
}

/// Normalises an entry name: no leading `/` or `./`, no empty or `.` components, no
/// trailing `/`; `..` anywhere is path traversal.
fn normalize(raw: &[u8]) -> Result<String, ScanError> {
    let text = String::from_utf8_lossy(raw);
    let mut parts = Vec::new();
    for part in text.split('/') {
        match part {
            "" | "." => {}
            ".." => return Err(ScanError::PathTraversal(text.into_owned())),
            p => parts.push(p),
        }
    }
    Ok(parts.join("/"))
}

/// Reads a metadata entry (GNU long name, PAX header) whole, refusing one over `max`.
fn read_small(entry: &mut impl Read, size: u64, max: usize) -> Result<Vec<u8>, ScanError> {
    if size > max as u64 {
        return Err(ScanError::NameTooLong(max));
    }
    let mut bytes = Vec::with_capacity(size as usize);
    entry.take(size).read_to_end(&mut bytes).map_err(corrupt)?;
    Ok(bytes)
}

/// The `path` record of a PAX extended header (POSIX.1-2008 pax: `<len> <key>=<value>\n`).
fn pax_path(bytes: &[u8]) -> Option<Vec<u8>> {
    let mut rest = bytes;
    let mut path = None;
    while !rest.is_empty() {
        let space = rest.iter().position(|b| *b == b' ')?;
        let len: usize = std::str::from_utf8(&rest[..space]).ok()?.parse().ok()?;
        if len <= space + 1 || len > rest.len() {
            return None;
        }
        let record = &rest[space + 1..len];
        let record = record.strip_suffix(b"\n").unwrap_or(record);
        if let Some(value) = record.strip_prefix(b"path=") {
            path = Some(value.to_vec());
        }
        rest = &rest[len..];
    }
    path
}

fn walk(stream: impl Read, limits: &Limits) -> Result<LayerInventory, ScanError> {
    let mut archive = tar::Archive::new(stream);
    let mut inventory = LayerInventory::default();
    let mut long_name: Option<Vec<u8>> = None;
    let mut pax_name: Option<Vec<u8>> = None;
    let mut entries_seen = 0u64;
    for entry in archive.entries().map_err(corrupt)?.raw(true) {
        let mut entry = entry.map_err(corrupt)?;
        entries_seen += 1;
        if entries_seen > limits.max_entries {
            return Err(ScanError::TooManyEntries(limits.max_entries));
        }
        let kind = entry.header().entry_type();
        let size = entry.header().entry_size().map_err(corrupt)?;
        match kind.as_byte() {
            // GNU long name: the name of the next entry.
            b'L' => {
                let mut name = read_small(&mut entry, size, limits.max_path_bytes)?;
                while name.last() == Some(&0) {
                    name.pop();
                }
                long_name = Some(name);
                continue;
            }
            // PAX extended header for the next entry.
            b'x' | b'X' => {
                let bytes = read_small(&mut entry, size, limits.max_path_bytes.saturating_mul(4))?;
                pax_name = pax_path(&bytes);
                continue;
            }
            // GNU long link name, PAX global header: nothing a scan uses.
            b'K' | b'g' => continue,
            _ => {}
        }
        let raw_name = match (pax_name.take(), long_name.take()) {
            (Some(name), _) | (None, Some(name)) => name,
            (None, None) => entry.path_bytes().into_owned(),
        };
        if raw_name.len() > limits.max_path_bytes {
            return Err(ScanError::NameTooLong(limits.max_path_bytes));
        }
        let path = normalize(&raw_name)?;
        let (dir, base) = match path.rsplit_once('/') {
            Some((dir, base)) => (dir, base),
            None => ("", path.as_str()),
        };
        if let Some(hidden) = base.strip_prefix(".wh.") {
            if hidden == ".wh..opq" {
                inventory.opaque_dirs.push(dir.to_owned());
            } else if !hidden.is_empty() {
                let gone = if dir.is_empty() {
                    hidden.to_owned()
                } else {
                    format!("{dir}/{hidden}")
                };
                inventory.whiteouts.push(gone);
            }
            continue;
        }
        let file_kind = packages::kind_of_path(&path);
        let regular = matches!(kind, tar::EntryType::Regular | tar::EntryType::Continuous);
        if kind.is_gnu_sparse() {
            inventory
                .notes
                .push(format!("{path}: sparse file not read"));
        }
        if !regular {
            // A directory, link or sparse file at a database's path still replaces the
            // lower layer's file there.
            if file_kind.is_some() {
                inventory.files.insert(path, FileFindings::default());
            }
            continue;
        }
        match file_kind {
            Some(file_kind) => {
                if size > limits.max_file_bytes {
                    inventory.notes.push(format!(
                        "{path}: {size} bytes, over the {} byte limit; not read",
                        limits.max_file_bytes
                    ));
                    inventory.files.insert(path, FileFindings::default());
                    continue;
                }
                let mut bytes = Vec::with_capacity(size as usize);
                (&mut entry)
                    .take(size)
                    .read_to_end(&mut bytes)
                    .map_err(corrupt)?;
                let found = parse_file(file_kind, &path, &bytes);
                inventory.files.insert(path, found);
            }
            None => {
                let executable = entry
                    .header()
                    .mode()
                    .map(|m| m & 0o111 != 0)
                    .unwrap_or(false);
                if executable && size >= 64 {
                    let packages = scan_binary(&mut entry, size, limits).map_err(corrupt)?;
                    if !packages.is_empty() {
                        inventory
                            .files
                            .insert(path, FileFindings { os: None, packages });
                    }
                }
            }
        }
    }
    Ok(inventory)
}

/// Runs the parser `kind` calls for over the bytes of the file at `path` (a Java
/// archive's file name is its manifest fallback's artifact name).
pub fn parse_file(kind: FileKind, path: &str, bytes: &[u8]) -> FileFindings {
    let text = || String::from_utf8_lossy(bytes);
    let mut found = FileFindings::default();
    match kind {
        FileKind::OsRelease => found.os = Some(packages::parse_os_release(&text())),
        FileKind::DpkgStatus | FileKind::DpkgStatusD => {
            found.packages = packages::parse_dpkg_status(&text())
        }
        FileKind::ApkInstalled => found.packages = packages::parse_apk_installed(&text()),
        FileKind::PythonMetadata => {
            found.packages = packages::parse_python_metadata(&text())
                .into_iter()
                .collect()
        }
        FileKind::NpmPackageJson => {
            found.packages = packages::parse_npm_package_json(bytes)
                .into_iter()
                .collect()
        }
        FileKind::NpmPackageLock => found.packages = packages::parse_npm_package_lock(bytes),
        FileKind::CargoLock => found.packages = packages::parse_cargo_lock(bytes),
        FileKind::RpmDbSqlite => found.packages = packages::rpm::parse_rpmdb_sqlite(bytes),
        FileKind::JavaArchive => {
            let name = path.rsplit('/').next().unwrap_or(path);
            found.packages = packages::java::parse_archive(bytes, name)
        }
    }
    found
}

/// Reads into `buf` until it holds `want` bytes or the input ends; false at the end.
fn fill_to(input: &mut impl Read, buf: &mut Vec<u8>, want: usize) -> io::Result<bool> {
    while buf.len() < want {
        let start = buf.len();
        buf.resize(want, 0);
        let n = input.read(&mut buf[start..])?;
        buf.truncate(start + n);
        if n == 0 {
            return Ok(false);
        }
    }
    Ok(true)
}

/// The packages an executable of `size` bytes names: Go build information and, for one
/// of at most [`Limits::max_file_bytes`] (held whole: ELF section headers sit at the
/// end, so a section cannot be found in one forward pass without the bytes before it),
/// cargo-auditable's dependency tree. Files not starting with the ELF magic name none.
fn scan_binary(input: &mut impl Read, size: u64, limits: &Limits) -> io::Result<Vec<Package>> {
    let mut head = Vec::with_capacity(16);
    if !fill_to(input, &mut head, 16)? || !head.starts_with(b"\x7fELF") {
        return Ok(Vec::new());
    }
    if size > limits.max_file_bytes {
        let mut whole = head.chain(input);
        return Ok(scan_go_binary(&mut whole, limits.max_go_modinfo_bytes)?
            .map(|info| info.packages())
            .unwrap_or_default());
    }
    let mut bytes = head;
    let rest = size.saturating_sub(bytes.len() as u64);
    bytes.reserve(rest as usize);
    input.take(rest).read_to_end(&mut bytes)?;
    let mut packages = scan_go_binary(&mut &bytes[..], limits.max_go_modinfo_bytes)?
        .map(|info| info.packages())
        .unwrap_or_default();
    packages.extend(packages::parse_auditable_binary(
        &bytes,
        limits.max_auditable_bytes,
    ));
    Ok(packages)
}

/// Finds and parses a Go binary's build information while streaming the file.
///
/// *Why our own reader:* Go's `debug/buildinfo` finds the blob by its magic at a
/// 16-byte-aligned offset of the data segment; the Rust crates found that parse it
/// (reverse-engineering tools) want the whole binary in memory as an `object` file.
/// A layer is a stream we read once, and a 200 MB binary should not be held whole, so
/// this scans fixed 256 KiB chunks for the magic at 16-byte-aligned file offsets
/// (`.go.buildinfo` is 16-aligned in the file of every Go ≥ 1.18 ELF binary) and hands
/// the bytes after it to [`packages::parse_go_buildinfo`], which validates the header,
/// so a stray copy of the magic elsewhere (in a binary that links `debug/buildinfo`)
/// is skipped. Files not starting with the ELF magic are not scanned.
fn scan_go_binary(
    input: &mut impl Read,
    max_modinfo: usize,
) -> io::Result<Option<packages::GoBuildInfo>> {
    const CHUNK: usize = 256 << 10;
    let need = packages::go_buildinfo_need(max_modinfo);
    let mut buf = Vec::with_capacity(CHUNK + 64);
    if !fill_to(input, &mut buf, 16)? || !buf.starts_with(b"\x7fELF") {
        return Ok(None);
    }
    // `base` is the file offset of `buf[0]`; candidates sit at offsets that are multiples of 16.
    let mut base = 0u64;
    loop {
        let more = fill_to(input, &mut buf, CHUNK)?;
        let mut i = ((16 - base % 16) % 16) as usize;
        while i + 14 <= buf.len() {
            if buf[i] == 0xff && buf[i..i + 14] == packages::GO_BUILDINFO_MAGIC[..] {
                // Bring the candidate to the front and read what a blob may need.
                buf.drain(..i);
                base += i as u64;
                i = 0;
                fill_to(input, &mut buf, need)?;
                if let Some(info) = packages::parse_go_buildinfo(&buf, max_modinfo) {
                    return Ok(Some(info));
                }
            }
            i += 16;
        }
        if !more {
            return Ok(None);
        }
        // Keep the last 13 bytes: a magic may start there and end in the next chunk.
        let keep_from = buf.len().saturating_sub(13);
        buf.drain(..keep_from);
        base += keep_from as u64;
    }
}

#[cfg(test)]
mod tests;
