//! `Range` (RFC 9110 § 14.1.2, blob GET) and upload `Content-Range` (distribution-spec
//! § Pushing a blob in chunks): never a panic, and a satisfiable range lies inside the
//! blob.
#![no_main]

use berth_oci_api::range::{byte_range, content_range_start};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|input: (u64, &str)| {
    let (len, value) = input;
    if let Ok(Some((first, last))) = byte_range(value, len) {
        assert!(first <= last && last < len, "{value:?} against {len}");
    }
    if let Some(start) = content_range_start(value) {
        assert!(value.contains(&start.to_string()));
    }
});
