//! Manifest parsing and the checks the registry makes before a manifest becomes visible.
//!
//! Implements what distribution-spec `spec.md` § Pushing manifests requires a registry to
//! know about a manifest: its media type, the blobs and manifests it references
//! (image-spec `manifest.md`, `image-index.md`), its `subject` (§ Pushing manifests with
//! subject) and the `artifactType` used by the referrers API (§ Listing referrers).
//! Parsing is done with the `oci-spec` crate's types; Docker schema2 manifests and manifest
//! lists have the same JSON shape and parse with the same types.

use crate::digest::Digest;
use crate::media_type as mt;
use oci_spec::image::{ImageIndex, ImageManifest};
use std::collections::BTreeMap;

/// Largest manifest body accepted, in bytes (4 MiB, the spec's suggested minimum limit).
pub const MAX_MANIFEST_BYTES: usize = 4 * 1024 * 1024;

/// Why a manifest body is refused. The OCI API maps these to `MANIFEST_INVALID`
/// (or `DIGEST_INVALID` for [`ManifestError::Digest`]).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ManifestError {
    /// Not JSON, or not a manifest of the claimed kind.
    #[error("manifest is not a valid {kind}: {reason}")]
    Invalid {
        /// The kind of manifest being parsed.
        kind: &'static str,
        /// The parser's explanation.
        reason: String,
    },
    /// The media type is not one Berth stores.
    #[error("unsupported manifest media type {0:?}: Berth stores OCI image manifests and indexes and Docker schema2 manifests and manifest lists (Docker schema1 is not supported)")]
    UnsupportedMediaType(String),
    /// The `mediaType` in the body disagrees with the request's `Content-Type`.
    #[error("manifest mediaType {body:?} does not match Content-Type {header:?}")]
    MediaTypeMismatch {
        /// The body's `mediaType`.
        body: String,
        /// The request's `Content-Type`.
        header: String,
    },
    /// A descriptor carries a digest Berth cannot parse.
    #[error("descriptor digest {0:?} is invalid")]
    Digest(String),
    /// Larger than [`MAX_MANIFEST_BYTES`].
    #[error("manifest is {0} bytes; the limit is 4 MiB")]
    TooLarge(usize),
}

/// A content descriptor (image-spec `descriptor.md`), reduced to what the registry uses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Descriptor {
    /// `mediaType` of the referenced content.
    pub media_type: String,
    /// `digest` of the referenced content.
    pub digest: Digest,
    /// `size` in bytes.
    pub size: u64,
}

/// The platform of one child of an image index (image-spec `image-index.md` § platform).
#[derive(Debug, Clone, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
pub struct Platform {
    /// `os`, e.g. `linux`.
    pub os: String,
    /// `architecture`, e.g. `arm64`.
    pub architecture: String,
    /// `variant`, e.g. `v8`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub variant: Option<String>,
    /// `os.version`.
    #[serde(
        default,
        rename = "os.version",
        skip_serializing_if = "Option::is_none"
    )]
    pub os_version: Option<String>,
    /// `os.features`.
    #[serde(default, rename = "os.features", skip_serializing_if = "Vec::is_empty")]
    pub os_features: Vec<String>,
    /// `features` (reserved by the spec, recorded when present).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub features: Vec<String>,
}

/// A child manifest of an index, with its platform if the index gives one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Child {
    /// The child's descriptor.
    pub descriptor: Descriptor,
    /// The child's platform.
    pub platform: Option<Platform>,
}

/// What the registry needs to know about a manifest it is asked to store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParsedManifest {
    /// The manifest's media type (one of the four in [`crate::media_type`]).
    pub media_type: String,
    /// Blobs that must exist in the repository: config and layers (non-distributable
    /// layers with `urls` are excluded, as the spec allows them to live elsewhere).
    pub blobs: Vec<Descriptor>,
    /// Child manifests (indexes only) that must exist in the repository.
    pub children: Vec<Child>,
    /// The `subject` this manifest refers to, if any.
    pub subject: Option<Descriptor>,
    /// The artifact type reported by the referrers API: `artifactType`, else the
    /// config's media type for image manifests (spec § Listing referrers).
    pub artifact_type: Option<String>,
    /// The manifest's `annotations`.
    pub annotations: BTreeMap<String, String>,
}

#[derive(serde::Deserialize)]
struct Probe {
    #[serde(rename = "mediaType")]
    media_type: Option<String>,
    manifests: Option<serde_json::Value>,
    #[serde(rename = "schemaVersion")]
    schema_version: Option<i64>,
}

#[derive(serde::Deserialize)]
struct RawIndex {
    manifests: Vec<RawChild>,
}

#[derive(serde::Deserialize)]
struct RawChild {
    platform: Option<Platform>,
}

fn descriptor(d: &oci_spec::image::Descriptor) -> Result<Descriptor, ManifestError> {
    let digest = d.digest().to_string();
    Ok(Descriptor {
        media_type: d.media_type().to_string(),
        digest: digest.parse().map_err(|_| ManifestError::Digest(digest))?,
        size: d.size(),
    })
}

fn is_nondistributable(d: &oci_spec::image::Descriptor) -> bool {
    let m = d.media_type().to_string();
    d.urls().as_ref().is_some_and(|u| !u.is_empty())
        && (m.contains("foreign") || m.contains("nondistributable"))
}

impl ParsedManifest {
    /// Parses `body`, whose request declared `content_type` (may be empty or generic).
    ///
    /// The media type is the `Content-Type` when it names a manifest type, otherwise the
    /// body's `mediaType`, otherwise inferred from the shape (`manifests` ⇒ OCI index).
    /// Errors: [`ManifestError`] for anything that is not a well-formed manifest.
    pub fn parse(content_type: &str, body: &[u8]) -> Result<ParsedManifest, ManifestError> {
        if body.len() > MAX_MANIFEST_BYTES {
            return Err(ManifestError::TooLarge(body.len()));
        }
        // JSON is UTF-8 (RFC 8259 § 8.1), and serde_json does not look inside strings it
        // skips: without this check, invalid bytes in an unknown field would be stored and
        // later break every consumer that decodes the manifest (found by fuzz/manifest).
        let text = std::str::from_utf8(body).map_err(|e| ManifestError::Invalid {
            kind: "JSON document",
            reason: format!("not UTF-8: {e}"),
        })?;
        let probe: Probe = serde_json::from_str(text).map_err(|e| ManifestError::Invalid {
            kind: "JSON document",
            reason: e.to_string(),
        })?;
        let header = content_type.split(';').next().unwrap_or("").trim();
        // A specific Content-Type that is not a manifest type (Docker schema1, OCI artifact
        // manifest, anything else) is refused by name; generic ones defer to the body.
        let generic = matches!(
            header,
            "" | "application/json" | "application/octet-stream" | "text/plain"
        );
        if !generic && !mt::is_manifest(header) {
            return Err(ManifestError::UnsupportedMediaType(header.to_string()));
        }
        let media_type = if mt::is_manifest(header) {
            if let Some(body_mt) = &probe.media_type {
                if body_mt != header {
                    return Err(ManifestError::MediaTypeMismatch {
                        body: body_mt.clone(),
                        header: header.to_string(),
                    });
                }
            }
            header.to_string()
        } else if let Some(body_mt) = probe.media_type.clone() {
            body_mt
        } else if probe.manifests.is_some() {
            mt::OCI_INDEX.to_string()
        } else {
            mt::OCI_MANIFEST.to_string()
        };
        if !mt::is_manifest(&media_type) {
            return Err(ManifestError::UnsupportedMediaType(media_type));
        }
        if probe.schema_version != Some(2) {
            return Err(ManifestError::Invalid {
                kind: "manifest",
                reason: "schemaVersion must be 2".into(),
            });
        }
        if mt::is_index(&media_type) {
            let idx: ImageIndex =
                serde_json::from_slice(body).map_err(|e| ManifestError::Invalid {
                    kind: "image index",
                    reason: e.to_string(),
                })?;
            // oci-spec's Platform drops `os.version`/`features`; read platforms with ours.
            let raw: RawIndex =
                serde_json::from_slice(body).map_err(|e| ManifestError::Invalid {
                    kind: "image index",
                    reason: e.to_string(),
                })?;
            let mut children = Vec::with_capacity(idx.manifests().len());
            for (m, r) in idx.manifests().iter().zip(raw.manifests) {
                children.push(Child {
                    descriptor: descriptor(m)?,
                    platform: r.platform,
                });
            }
            Ok(ParsedManifest {
                media_type,
                blobs: Vec::new(),
                children,
                subject: idx.subject().as_ref().map(descriptor).transpose()?,
                artifact_type: idx
                    .artifact_type()
                    .as_ref()
                    .map(|a| a.to_string())
                    .filter(|a| !a.is_empty()),
                annotations: idx
                    .annotations()
                    .clone()
                    .map(|a| a.into_iter().collect())
                    .unwrap_or_default(),
            })
        } else {
            let m: ImageManifest =
                serde_json::from_slice(body).map_err(|e| ManifestError::Invalid {
                    kind: "image manifest",
                    reason: e.to_string(),
                })?;
            let mut blobs = vec![descriptor(m.config())?];
            for l in m.layers() {
                if !is_nondistributable(l) {
                    blobs.push(descriptor(l)?);
                }
            }
            // § Listing referrers: an empty artifactType counts as absent.
            let artifact_type = m
                .artifact_type()
                .as_ref()
                .map(|a| a.to_string())
                .filter(|a| !a.is_empty())
                .or_else(|| Some(m.config().media_type().to_string()));
            Ok(ParsedManifest {
                media_type,
                blobs,
                children: Vec::new(),
                subject: m.subject().as_ref().map(descriptor).transpose()?,
                artifact_type,
                annotations: m
                    .annotations()
                    .clone()
                    .map(|a| a.into_iter().collect())
                    .unwrap_or_default(),
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const CFG: &str = "sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a";
    const L1: &str = "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

    fn image(extra: &str) -> String {
        format!(
            r#"{{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json",
            "config":{{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"{CFG}","size":2}},
            "layers":[{{"mediaType":"application/vnd.oci.image.layer.v1.tar+gzip","digest":"{L1}","size":0}}]{extra}}}"#
        )
    }

    // RFC 8259 § 8.1: JSON text is UTF-8. Invalid bytes in a field Berth does not read
    // are refused too (fuzz/manifest found them accepted, regression for issue 19).
    #[test]
    fn invalid_utf8_anywhere_is_not_a_manifest() {
        let mut body = image(r#","x-unknown":"AB""#).into_bytes();
        let at = body.windows(2).position(|w| w == b"AB").unwrap();
        body[at] = 0xff;
        body[at + 1] = 0xfe;
        let err = ParsedManifest::parse(mt::OCI_MANIFEST, &body).unwrap_err();
        assert!(err.to_string().contains("not UTF-8"), "{err}");
    }

    // image-spec manifest.md: config and layers are the blobs a manifest references.
    #[test]
    fn image_manifest_lists_config_and_layers() {
        let p = ParsedManifest::parse(mt::OCI_MANIFEST, image("").as_bytes()).unwrap();
        assert_eq!(p.media_type, mt::OCI_MANIFEST);
        assert_eq!(p.blobs.len(), 2);
        assert_eq!(p.blobs[0].digest.to_string(), CFG);
        assert_eq!(
            p.artifact_type.as_deref(),
            Some("application/vnd.oci.image.config.v1+json")
        );
        assert!(p.subject.is_none());
    }

    // distribution-spec § Pushing manifests with subject; § Listing referrers (artifactType).
    #[test]
    fn subject_and_artifact_type_are_recorded() {
        let extra = format!(
            r#","artifactType":"application/vnd.example.sbom","subject":{{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"{L1}","size":7}}"#
        );
        let p = ParsedManifest::parse("", image(&extra).as_bytes()).unwrap();
        assert_eq!(p.subject.unwrap().digest.to_string(), L1);
        assert_eq!(
            p.artifact_type.as_deref(),
            Some("application/vnd.example.sbom")
        );
    }

    // image-spec image-index.md § platform: each child's platform is recorded.
    #[test]
    fn index_children_carry_platforms() {
        let body = format!(
            r#"{{"schemaVersion":2,"mediaType":"application/vnd.docker.distribution.manifest.list.v2+json","manifests":[
            {{"mediaType":"application/vnd.docker.distribution.manifest.v2+json","digest":"{L1}","size":1,"platform":{{"os":"linux","architecture":"arm64","variant":"v8"}}}},
            {{"mediaType":"application/vnd.docker.distribution.manifest.v2+json","digest":"{CFG}","size":1,"platform":{{"os":"windows","architecture":"amd64","os.version":"10.0.17763"}}}}]}}"#
        );
        let p = ParsedManifest::parse(mt::DOCKER_MANIFEST_LIST, body.as_bytes()).unwrap();
        assert_eq!(p.children.len(), 2);
        let arm = p.children[0].platform.as_ref().unwrap();
        assert_eq!(
            (
                arm.os.as_str(),
                arm.architecture.as_str(),
                arm.variant.as_deref()
            ),
            ("linux", "arm64", Some("v8"))
        );
        assert_eq!(
            p.children[1]
                .platform
                .as_ref()
                .unwrap()
                .os_version
                .as_deref(),
            Some("10.0.17763")
        );
    }

    // distribution-spec § Pushing manifests: mediaType must match Content-Type.
    #[test]
    fn refuses_bad_manifests() {
        assert!(matches!(
            ParsedManifest::parse(mt::OCI_INDEX, image("").as_bytes()),
            Err(ManifestError::MediaTypeMismatch { .. })
        ));
        assert!(ParsedManifest::parse(mt::OCI_MANIFEST, b"not json").is_err());
        // Docker schema1 is named as unsupported, not reported as a bad schemaVersion.
        assert!(matches!(
            ParsedManifest::parse(
                "application/vnd.docker.distribution.manifest.v1+prettyjws",
                br#"{"schemaVersion":1}"#
            ),
            Err(ManifestError::UnsupportedMediaType(_))
        ));
        assert!(ParsedManifest::parse(mt::OCI_MANIFEST, br#"{"schemaVersion":2}"#).is_err());
        assert!(ParsedManifest::parse(
            "",
            br#"{"schemaVersion":1,"mediaType":"application/vnd.oci.image.manifest.v1+json"}"#
        )
        .is_err());
        let big = vec![b' '; MAX_MANIFEST_BYTES + 1];
        assert!(matches!(
            ParsedManifest::parse("", &big),
            Err(ManifestError::TooLarge(_))
        ));
    }
}
