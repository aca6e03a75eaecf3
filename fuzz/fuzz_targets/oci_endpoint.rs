//! OCI endpoint paths (distribution-spec § Endpoints): any method and path either fails
//! to parse or parses to an endpoint that round-trips through its own method and path.
#![no_main]

use berth_oci_api::endpoint::parse;
use http::Method;
use libfuzzer_sys::fuzz_target;

const METHODS: [Method; 7] = [
    Method::GET,
    Method::HEAD,
    Method::PUT,
    Method::POST,
    Method::PATCH,
    Method::DELETE,
    Method::OPTIONS,
];

fuzz_target!(|input: (u8, &str)| {
    let (m, path) = input;
    let method = &METHODS[m as usize % METHODS.len()];
    if let Ok(endpoint) = parse(method, path) {
        let again = parse(&endpoint.method(), &endpoint.path());
        assert_eq!(again.as_ref(), Ok(&endpoint), "{method} {path:?}");
        // Every endpoint but `/v2/` names its action.
        assert_eq!(
            endpoint.action().is_none(),
            endpoint == berth_oci_api::endpoint::Endpoint::Base
        );
    }
});
