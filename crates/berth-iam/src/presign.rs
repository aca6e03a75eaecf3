//! Presigned blob URLs: short-lived links to Berth's own `/v2/<name>/blobs/<digest>` that
//! work without other credentials until they expire.
//!
//! ECR's `GetDownloadUrlForLayer` answers "a pre-signed Amazon S3 download URL"
//! (ECR_REFERENCE §2.4); Berth has no S3, so it answers a URL to its own blob endpoint with
//! this query appended:
//!
//! ```text
//! X-Berth-Expires=<unix seconds>&X-Berth-Principal=<percent-encoded ARN>&X-Berth-Signature=<64 hex>
//! ```
//!
//! The signature is HMAC-SHA256 (RFC 2104, FIPS 180-4), keyed with a server secret, over a
//! canonical string binding the repository, the digest, the principal the link acts for and
//! the expiry; each field is length-prefixed so no two field lists produce the same string:
//!
//! ```text
//! BERTH-PRESIGNED-BLOB-V1\n
//! <len>:<repository>\n<len>:<digest>\n<len>:<principal arn>\n<len>:<expires>\n
//! ```
//!
//! The link carries no access key: whoever holds it reads that one blob as that principal
//! until it expires, like an S3 presigned URL. The caller decides the lifetime, still checks
//! the principal's permission when serving, and rotates the key to revoke every link.
//! Pure functions: no clock, no storage.

use hmac::{Hmac, Mac};
use percent_encoding::{percent_decode_str, utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};
use sha2::Sha256;
use time::OffsetDateTime;

/// Query parameter holding the expiry, Unix seconds (UTC).
pub const EXPIRES_PARAM: &str = "X-Berth-Expires";
/// Query parameter holding the percent-encoded principal ARN.
pub const PRINCIPAL_PARAM: &str = "X-Berth-Principal";
/// Query parameter holding the lower-case hex HMAC-SHA256.
pub const SIGNATURE_PARAM: &str = "X-Berth-Signature";

const CANONICAL_PREFIX: &[u8] = b"BERTH-PRESIGNED-BLOB-V1\n";

/// RFC 3986 unreserved characters stay as they are; everything else is percent-encoded.
const QUERY_VALUE: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

/// Why a presigned blob query is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PresignError {
    /// A parameter is absent, given twice, or not of its form (expiry not an integer,
    /// principal not percent-encoded UTF-8). Holds the parameter's name.
    #[error("presigned URL parameter {0} is missing, repeated or malformed")]
    Missing(&'static str),
    /// The signature is valid but the link expired at `at` (the current time is at or past it).
    #[error("presigned URL expired at {at}")]
    Expired {
        /// When the link stopped working.
        at: OffsetDateTime,
    },
    /// The signature does not match this repository, digest, principal and expiry under the
    /// key (tampered, for another blob, or signed with another key).
    #[error("presigned URL signature does not match")]
    BadSignature,
}

/// Signs a read of blob `digest` in `repository` for `principal_arn`, valid until
/// `expires_at` (truncated to whole seconds).
///
/// Returns the query string to append after `?` (no leading `?`):
/// `X-Berth-Expires=<unix seconds>&X-Berth-Principal=<percent-encoded>&X-Berth-Signature=<hex>`.
/// `key` is the server's secret of any length (32 random bytes is plenty).
pub fn sign_blob_query(
    key: &[u8],
    repository: &str,
    digest: &str,
    principal_arn: &str,
    expires_at: OffsetDateTime,
) -> String {
    let expires = expires_at.unix_timestamp();
    let signature = hex::encode(
        mac(key, repository, digest, principal_arn, expires)
            .finalize()
            .into_bytes(),
    );
    format!(
        "{EXPIRES_PARAM}={expires}&{PRINCIPAL_PARAM}={}&{SIGNATURE_PARAM}={signature}",
        utf8_percent_encode(principal_arn, QUERY_VALUE)
    )
}

/// Checks a presigned query for a request to blob `digest` in `repository` at time `now`.
///
/// `query` is the raw query string (without `?`); parameters other than the three
/// `X-Berth-*` ones are ignored. Returns the principal ARN the link acts for.
/// The signature is checked (in constant time) before the expiry, so a tampered expiry is
/// [`PresignError::BadSignature`], never [`PresignError::Expired`].
///
/// Errors: [`PresignError::Missing`], [`PresignError::BadSignature`],
/// [`PresignError::Expired`] when `now >= expires`.
pub fn verify_blob_query(
    key: &[u8],
    repository: &str,
    digest: &str,
    query: &str,
    now: OffsetDateTime,
) -> Result<String, PresignError> {
    let (mut expires, mut principal, mut signature) = (None, None, None);
    for pair in query.split('&') {
        let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
        let (slot, param) = match name {
            EXPIRES_PARAM => (&mut expires, EXPIRES_PARAM),
            PRINCIPAL_PARAM => (&mut principal, PRINCIPAL_PARAM),
            SIGNATURE_PARAM => (&mut signature, SIGNATURE_PARAM),
            _ => continue,
        };
        if slot.replace(value).is_some() {
            return Err(PresignError::Missing(param));
        }
    }
    let expires: i64 = expires
        .and_then(|v| v.parse().ok())
        .ok_or(PresignError::Missing(EXPIRES_PARAM))?;
    let principal = principal
        .and_then(|v| percent_decode_str(v).decode_utf8().ok())
        .ok_or(PresignError::Missing(PRINCIPAL_PARAM))?
        .into_owned();
    let signature = signature.ok_or(PresignError::Missing(SIGNATURE_PARAM))?;
    let signature = hex::decode(signature).map_err(|_| PresignError::BadSignature)?;

    mac(key, repository, digest, &principal, expires)
        .verify_slice(&signature)
        .map_err(|_| PresignError::BadSignature)?;

    // Signed by us, so in range; an out-of-range value could only come from a forged MAC.
    let at =
        OffsetDateTime::from_unix_timestamp(expires).map_err(|_| PresignError::BadSignature)?;
    if now >= at {
        return Err(PresignError::Expired { at });
    }
    Ok(principal)
}

/// HMAC-SHA256 over the canonical string described in the module doc.
fn mac(key: &[u8], repository: &str, digest: &str, principal: &str, expires: i64) -> Hmac<Sha256> {
    let mut mac = Hmac::<Sha256>::new_from_slice(key).expect("HMAC accepts keys of any length");
    mac.update(CANONICAL_PREFIX);
    for field in [repository, digest, principal, &expires.to_string()] {
        mac.update(field.len().to_string().as_bytes());
        mac.update(b":");
        mac.update(field.as_bytes());
        mac.update(b"\n");
    }
    mac
}
