//! Image layers (issue 11): `berth_scan::read_layer` over any bytes (tar, gzip, zstd or
//! garbage) never panics and stays within its limits: an inventory that comes back read
//! no more expanded bytes than allowed, and stacking it (whiteouts, opaque directories)
//! is deterministic.
#![no_main]

use berth_scan::{merge, read_layer, Limits};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let limits = Limits {
        max_file_bytes: 64 << 10,
        max_expanded_bytes: 4 << 20,
        max_entries: 1000,
        max_path_bytes: 1024,
        max_go_modinfo_bytes: 64 << 10,
        max_auditable_bytes: 64 << 10,
    };
    if let Ok(layer) = read_layer(data, &limits) {
        assert!(layer.expanded_bytes <= limits.max_expanded_bytes);
        let once = merge([&layer]);
        assert_eq!(merge([&layer]), once);
        let twice = merge([&layer, &layer]);
        assert!(twice.packages.len() <= once.packages.len() * 2);
    }
});
