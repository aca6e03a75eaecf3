//! # berth-core: the registry's vocabulary
//!
//! Validated newtypes for the words of the OCI Distribution and Image specs —
//! [`Digest`], [`RepositoryName`], [`Tag`], [`Reference`] — and manifest parsing
//! ([`manifest::ParsedManifest`]) that extracts what the registry must check before a
//! manifest becomes visible: the blobs and child manifests it references, its `subject`,
//! its `artifactType`, and (for an index) every child's platform. [`TagRules`] are the
//! repository's tag mutability rules (ECR's modes and exclusion wildcards).
//!
//! This crate knows nothing about HTTP, storage or databases. Every other crate speaks
//! in these types, so a string that reached the service layer has already been validated
//! against the spec's grammar.
#![deny(missing_docs)]

pub mod creation_template;
pub mod digest;
pub mod lifecycle;
pub mod manifest;
pub mod media_type;
pub mod name;
pub mod registry_scanning;
pub mod replication;
pub mod tag_rules;

pub use digest::{Algorithm, Digest, DigestError, Hasher};
pub use manifest::MAX_MANIFEST_BYTES;
pub use manifest::{Descriptor, ManifestError, ParsedManifest, Platform};
pub use name::{NameError, Reference, RepositoryName, Tag};
pub use tag_rules::{wildcard_match, TagMutability, TagRules};
