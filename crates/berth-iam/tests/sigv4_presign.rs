//! Presigned blob URLs (`berth_iam::presign`): Berth's answer to ECR's
//! `GetDownloadUrlForLayer` "pre-signed download URL" (ECR_REFERENCE §2.4), pointing at its
//! own `/v2/<name>/blobs/<digest>`.

use berth_iam::presign::{sign_blob_query, verify_blob_query, PresignError};
use time::macros::datetime;
use time::{Duration, OffsetDateTime};

const KEY: &[u8] = b"0123456789abcdef0123456789abcdef";
const REPO: &str = "team/app";
const DIGEST: &str = "sha256:2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824";
const PRINCIPAL: &str = "arn:aws:sts::111122223333:assumed-role/ci role/run 42";
const EXPIRES: OffsetDateTime = datetime!(2025-01-01 12:00:00 UTC);
const NOW: OffsetDateTime = datetime!(2025-01-01 11:00:00 UTC);

fn signed() -> String {
    sign_blob_query(KEY, REPO, DIGEST, PRINCIPAL, EXPIRES)
}

/// The query with one parameter's value replaced.
fn with_param(query: &str, name: &str, value: &str) -> String {
    query
        .split('&')
        .map(|pair| match pair.split_once('=') {
            Some((n, _)) if n == name => format!("{n}={value}"),
            _ => pair.to_owned(),
        })
        .collect::<Vec<_>>()
        .join("&")
}

#[test]
fn round_trip_returns_the_principal() {
    let q = signed();
    assert!(
        q.starts_with("X-Berth-Expires=1735732800&X-Berth-Principal=arn%3Aaws%3Asts%3A%3A111122223333%3Aassumed-role%2Fci%20role%2Frun%2042&X-Berth-Signature="),
        "{q}"
    );
    let sig = q.rsplit_once('=').unwrap().1;
    assert_eq!(sig.len(), 64);
    assert!(sig
        .bytes()
        .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase()));
    assert_eq!(
        verify_blob_query(KEY, REPO, DIGEST, &q, NOW),
        Ok(PRINCIPAL.to_owned())
    );
    // Parameters the HTTP layer or a client adds around ours are ignored, in any order.
    let shuffled = {
        let mut parts: Vec<&str> = q.split('&').collect();
        parts.reverse();
        format!("foo=bar&{}", parts.join("&"))
    };
    assert_eq!(
        verify_blob_query(KEY, REPO, DIGEST, &shuffled, NOW),
        Ok(PRINCIPAL.to_owned())
    );
}

#[test]
fn expired_at_and_after_the_expiry() {
    let q = signed();
    assert_eq!(
        verify_blob_query(KEY, REPO, DIGEST, &q, EXPIRES),
        Err(PresignError::Expired { at: EXPIRES })
    );
    let err = verify_blob_query(KEY, REPO, DIGEST, &q, EXPIRES + Duration::hours(1)).unwrap_err();
    assert_eq!(err, PresignError::Expired { at: EXPIRES });
    assert!(
        err.to_string()
            .starts_with("presigned URL expired at 2025-01-01"),
        "{err}"
    );
    assert!(verify_blob_query(KEY, REPO, DIGEST, &q, EXPIRES - Duration::seconds(1)).is_ok());
}

#[test]
fn another_repository_or_digest_is_refused() {
    let q = signed();
    assert_eq!(
        verify_blob_query(KEY, "team/other", DIGEST, &q, NOW),
        Err(PresignError::BadSignature)
    );
    // A name that only moves the boundary between fields must not collide either.
    assert_eq!(
        verify_blob_query(KEY, "team/app\nsha256:", DIGEST, &q, NOW),
        Err(PresignError::BadSignature)
    );
    let other = "sha256:486ea46224d1bb4fb680f34f7c9ad96a8f24ec88be73ea8e5a6c65260e9cb8a7";
    assert_eq!(
        verify_blob_query(KEY, REPO, other, &q, NOW),
        Err(PresignError::BadSignature)
    );
}

#[test]
fn tampered_expiry_is_refused_not_extended() {
    let q = with_param(&signed(), "X-Berth-Expires", "1893456000"); // 2030
    assert_eq!(
        verify_blob_query(KEY, REPO, DIGEST, &q, NOW),
        Err(PresignError::BadSignature)
    );
    // Even after the real expiry, a forged expiry reads as forged, not expired.
    assert_eq!(
        verify_blob_query(KEY, REPO, DIGEST, &q, EXPIRES + Duration::days(1)),
        Err(PresignError::BadSignature)
    );
}

#[test]
fn tampered_principal_is_refused() {
    let q = with_param(
        &signed(),
        "X-Berth-Principal",
        "arn%3Aaws%3Aiam%3A%3A111122223333%3Aroot",
    );
    assert_eq!(
        verify_blob_query(KEY, REPO, DIGEST, &q, NOW),
        Err(PresignError::BadSignature)
    );
}

#[test]
fn tampered_signature_or_other_key_is_refused() {
    let q = signed();
    let (head, sig) = q.rsplit_once('=').unwrap();
    let flipped = format!(
        "{head}={}{}",
        if sig.starts_with('0') { '1' } else { '0' },
        &sig[1..]
    );
    assert_eq!(
        verify_blob_query(KEY, REPO, DIGEST, &flipped, NOW),
        Err(PresignError::BadSignature)
    );
    assert_eq!(
        verify_blob_query(KEY, REPO, DIGEST, &format!("{head}=zz"), NOW),
        Err(PresignError::BadSignature)
    );
    assert_eq!(
        verify_blob_query(b"another key", REPO, DIGEST, &q, NOW),
        Err(PresignError::BadSignature)
    );
}

#[test]
fn missing_repeated_or_malformed_parameters() {
    let q = signed();
    for name in ["X-Berth-Expires", "X-Berth-Principal", "X-Berth-Signature"] {
        let without: String = q
            .split('&')
            .filter(|p| !p.starts_with(name))
            .collect::<Vec<_>>()
            .join("&");
        let err = verify_blob_query(KEY, REPO, DIGEST, &without, NOW).unwrap_err();
        assert_eq!(err, PresignError::Missing(name));
        assert_eq!(
            err.to_string(),
            format!("presigned URL parameter {name} is missing, repeated or malformed")
        );
        let twice = format!("{q}&{name}=x");
        assert_eq!(
            verify_blob_query(KEY, REPO, DIGEST, &twice, NOW),
            Err(PresignError::Missing(name))
        );
    }
    assert_eq!(
        verify_blob_query(KEY, REPO, DIGEST, "", NOW),
        Err(PresignError::Missing("X-Berth-Expires"))
    );
    let q = with_param(&signed(), "X-Berth-Expires", "soon");
    assert_eq!(
        verify_blob_query(KEY, REPO, DIGEST, &q, NOW),
        Err(PresignError::Missing("X-Berth-Expires"))
    );
    let q = with_param(&signed(), "X-Berth-Principal", "%FF");
    assert_eq!(
        verify_blob_query(KEY, REPO, DIGEST, &q, NOW),
        Err(PresignError::Missing("X-Berth-Principal"))
    );
}
