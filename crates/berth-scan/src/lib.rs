//! # berth-scan: image layers to a package inventory, matched against OSV advisories
//!
//! The pure half of Berth's vulnerability scanning (issue 11): no HTTP, no database, no
//! blob store. Callers hand it layer bytes as a `Read` and OSV records as bytes; it hands
//! back values they store and serve.
//!
//! - [`layer`]: streams one layer (tar, gzip- or zstd-compressed or plain, detected from
//!   its first bytes) entry by entry, never unpacking to disk, and returns a
//!   [`LayerInventory`]: what each package-database file of the layer says, keyed by its
//!   path, plus the layer's whiteouts (`.wh.<name>`) and opaque directories
//!   (`.wh..wh..opq`). A layer's inventory depends on its bytes alone, so it can be
//!   cached per layer digest. [`Limits`] bound everything read: any one file, all
//!   expanded bytes, the number of entries, a path's length; hostile input (a tar
//!   bomb, `..` in a name, a corrupt stream) ends the read with a [`ScanError`] naming why.
//! - [`merge`] applies a stack of layer inventories bottom to top (OCI image spec,
//!   "Applying Changesets": whiteouts and opaque directories hide lower layers' files) into
//!   an image's [`Inventory`].
//! - [`packages`]: one parser per package database — OS from os-release, Debian dpkg
//!   `status` and `status.d/`, Alpine `lib/apk/db/installed`, RPM `rpmdb.sqlite`
//!   ([`packages::rpm`]), Python `METADATA` /
//!   `PKG-INFO`, npm `package.json` and lockfiles, `Cargo.lock`, Go binaries' embedded
//!   build info, Rust binaries' cargo-auditable dependency tree, and Java archives
//!   ([`packages::java`]: `pom.properties`, `MANIFEST.MF`, nested jars).
//! - [`osv`]: the OSV schema (1.6) records, read from JSON, directories and OSV's zip
//!   archives.
//! - [`version`]: version ordering per ecosystem (dpkg, apk, rpm, PEP 440, semver for
//!   npm, Go and crates.io, Maven).
//! - [`matcher`]: an inventory against a [`VulnDb`] → [`Finding`]s, OSV `ranges` and
//!   `versions`, aliases merged so one CVE is one finding per package, severity from the
//!   CVSS v3 vector or the source's own rating, fixed versions.

#![deny(missing_docs)]

pub mod layer;
pub mod matcher;
pub mod osv;
pub mod packages;
pub mod version;

pub use layer::{merge, read_layer, Inventory, LayerInventory, Limits, ScanError};
pub use matcher::{Finding, Severity, VulnDb};
pub use osv::OsvRecord;
pub use packages::{Ecosystem, OsRelease, Package};
