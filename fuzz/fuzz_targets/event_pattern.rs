//! EventBridge event patterns (EventBridge User Guide, "Event patterns" and "Content
//! filtering"): parsing never panics, and a pattern that parses matches any JSON event
//! without panicking, the same way twice.
#![no_main]

use libfuzzer_sys::fuzz_target;

// Input: the pattern, a NUL byte, the event (so seeds are plain text).
fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let (pattern, event) = text.split_once('\0').unwrap_or((text, "{}"));
    let Ok(p) = berth_events::parse(pattern) else {
        return;
    };
    if let Ok(first) = p.matches_json(event) {
        assert_eq!(p.matches_json(event).ok(), Some(first));
    }
});
