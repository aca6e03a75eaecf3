//! Manifests and image indexes (OCI image-spec manifest.md, image-index.md; Docker
//! schema 2) as `PUT /v2/<name>/manifests/<ref>` receives them. Parsing never panics;
//! a manifest that parses, re-serialised (other whitespace and key order), parses to
//! the same thing — what the registry stores depends on the content, not the spelling —
//! and is accepted under its own declared media type.
#![no_main]

use berth_core::ParsedManifest;
use libfuzzer_sys::fuzz_target;

const CONTENT_TYPES: [&str; 6] = [
    "",
    "application/json",
    "application/vnd.oci.image.manifest.v1+json",
    "application/vnd.oci.image.index.v1+json",
    "application/vnd.docker.distribution.manifest.v2+json",
    "application/vnd.docker.distribution.manifest.list.v2+json",
];

fuzz_target!(|input: (u8, &[u8])| {
    let (c, body) = input;
    let content_type = CONTENT_TYPES[c as usize % CONTENT_TYPES.len()];
    let Ok(parsed) = ParsedManifest::parse(content_type, body) else {
        return;
    };
    let value: serde_json::Value = serde_json::from_slice(body).expect("parsed, so JSON");
    let respelled = serde_json::to_vec_pretty(&value).unwrap();
    if let Ok(again) = ParsedManifest::parse(content_type, &respelled) {
        assert_eq!(again, parsed);
    }
    let own = ParsedManifest::parse(&parsed.media_type, body).expect("own media type");
    assert_eq!(own.media_type, parsed.media_type);
});
