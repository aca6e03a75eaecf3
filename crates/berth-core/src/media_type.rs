//! Media types of the manifests Berth stores (image-spec `media-types.md`, Docker
//! Image Manifest V2 Schema 2).

/// OCI image manifest.
pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
/// OCI image index.
pub const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
/// Docker schema2 image manifest.
pub const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
/// Docker manifest list (multi-platform).
pub const DOCKER_MANIFEST_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";
/// OCI empty descriptor media type, used for artifacts without config.
pub const OCI_EMPTY: &str = "application/vnd.oci.empty.v1+json";

/// Whether `mt` names an index-like manifest (OCI index or Docker manifest list).
pub fn is_index(mt: &str) -> bool {
    mt == OCI_INDEX || mt == DOCKER_MANIFEST_LIST
}

/// Whether `mt` is one of the four manifest media types Berth accepts.
pub fn is_manifest(mt: &str) -> bool {
    matches!(
        mt,
        OCI_MANIFEST | OCI_INDEX | DOCKER_MANIFEST | DOCKER_MANIFEST_LIST
    )
}
