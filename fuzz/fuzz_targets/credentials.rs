//! The two bearer credentials Berth hands out: `docker login` passwords from
//! GetAuthorizationToken (ECR API, GetAuthorizationToken) and presigned blob URLs
//! (GetDownloadUrlForLayer). Checking an arbitrary one never panics and never succeeds
//! for a key that did not sign it.
#![no_main]

use arbitrary::Arbitrary;
use berth_iam::{presign, token};
use libfuzzer_sys::fuzz_target;
use time::OffsetDateTime;

#[derive(Arbitrary, Debug)]
struct Input<'a> {
    password: &'a str,
    region: &'a str,
    query: &'a str,
    repository: &'a str,
    digest: &'a str,
    now: u32,
}

const KEY: &[u8] = b"berth-fuzz-key-that-signed-nothing-here";

fuzz_target!(|i: Input<'_>| {
    assert!(token::verify(KEY, i.password, i.region, i64::from(i.now)).is_err());
    let now = OffsetDateTime::from_unix_timestamp(i64::from(i.now)).unwrap();
    assert!(presign::verify_blob_query(KEY, i.repository, i.digest, i.query, now).is_err());
});
