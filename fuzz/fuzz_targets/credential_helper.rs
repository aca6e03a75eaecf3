//! The client side's outside input (issue 13): what docker writes on
//! `docker-credential-berth`'s stdin (`store`'s JSON through `parse_store`, `get`'s server
//! URL through `endpoint_for`) and image references given to `berth image digest`
//! (`parse_reference`). Never a panic; an endpoint is always `http://` or `https://`, one
//! host and a trailing `/`; a reference that parses names a repository and a tag or digest.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = berth::credential_helper::parse_store(data);
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(url) = berth::credential_helper::endpoint_for(text) {
        assert!(url.starts_with("http://") || url.starts_with("https://"), "{url}");
        assert!(url.ends_with('/'), "{url}");
        let host = url.split_once("://").unwrap().1.trim_end_matches('/');
        assert!(!host.is_empty() && !host.contains('/'), "{url}");
    }
    if let Ok(r) = berth::image_digest::parse_reference(text) {
        assert!(!r.repository.is_empty());
        assert!(!r.id.1.is_empty());
    }
});
