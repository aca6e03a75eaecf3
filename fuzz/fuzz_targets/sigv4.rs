//! SigV4 `Authorization` headers and signed requests (AWS General Reference, "Signature
//! Version 4 signing process"), as the ECR API receives them: parsing never panics, and
//! verifying whatever parses never panics either.
#![no_main]

use arbitrary::Arbitrary;
use berth_iam::sigv4::{parse, parse_amz_date, verify, SignedRequest};
use libfuzzer_sys::fuzz_target;
use time::{Duration, OffsetDateTime};

#[derive(Arbitrary, Debug)]
struct Input<'a> {
    method: &'a str,
    path: &'a str,
    query: &'a str,
    authorization: &'a str,
    amz_date: &'a str,
    headers: Vec<(&'a str, &'a str)>,
    body: &'a [u8],
    secret: &'a str,
    /// Seconds since the epoch, folded into years 1970–2100.
    now: u32,
}

fuzz_target!(|i: Input<'_>| {
    let _ = parse_amz_date(i.amz_date);
    let mut headers = vec![
        ("authorization", i.authorization),
        ("x-amz-date", i.amz_date),
        ("host", "127.0.0.1"),
    ];
    headers.extend(i.headers.iter().copied());
    let req = SignedRequest {
        method: i.method,
        path: i.path,
        query: i.query,
        headers: &headers,
        body: i.body,
    };
    if let Ok(auth) = parse(&req) {
        let now = OffsetDateTime::from_unix_timestamp(i64::from(i.now) % 4_102_444_800).unwrap();
        let _ = verify(&req, &auth, i.secret, now, Duration::minutes(15));
    }
});
