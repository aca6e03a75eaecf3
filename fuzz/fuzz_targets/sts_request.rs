//! STS requests (issue 13): any form-encoded awsQuery body through
//! `berth_sts_api::parse_request` (never a panic; a body that parses names one of the three
//! operations, and the same bytes parse the same way again; a refusal carries one of STS's
//! codes and a message), and any text as a web identity token through
//! `berth_iam::federation::unverified_issuer` (never a panic; an issuer read from a token
//! is read again from the same token).
#![no_main]

use libfuzzer_sys::fuzz_target;

const CODES: &[&str] = &[
    "MalformedQueryString",
    "MissingAction",
    "MissingParameter",
    "InvalidAction",
    "ValidationError",
];

fuzz_target!(|data: &[u8]| {
    match berth_sts_api::parse_request(data) {
        Ok(r) => {
            assert!(matches!(
                r.action(),
                "AssumeRoleWithWebIdentity" | "AssumeRole" | "GetCallerIdentity"
            ));
            assert_eq!(berth_sts_api::parse_request(data).unwrap(), r);
            if let berth_sts_api::StsRequest::AssumeRoleWithWebIdentity {
                web_identity_token,
                ..
            } = &r
            {
                let iss = berth_iam::federation::unverified_issuer(web_identity_token);
                assert_eq!(
                    berth_iam::federation::unverified_issuer(web_identity_token),
                    iss
                );
            }
        }
        Err(e) => {
            assert!(CODES.contains(&e.code), "{e}");
            assert!(!e.message.is_empty());
            let xml = berth_sts_api::error_xml(&e, "r");
            assert!(xml.contains(&format!("<Code>{}</Code>", e.code)));
        }
    }
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = berth_iam::federation::unverified_issuer(text);
    }
});
