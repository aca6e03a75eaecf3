//! ECR-style authorization tokens for `docker login`.
//!
//! ECR_REFERENCE §4.1: `authorizationToken` is base64 of `AWS:<password>`, the password
//! must contain no `:` (the AWS CLI splits on it), and tokens are valid for 12 hours and
//! tied to a region. Berth's password is self-contained and signed, so verifying it needs
//! no database read:
//!
//! ```text
//! password = "v1." base64url(claims JSON) "." base64url(HMAC-SHA256(token key, "v1." base64url(claims JSON)))
//! ```
//!
//! The claims bind the token to the principal (account, kind, name, unique principal ID,
//! and for role sessions the temporary access key), the region and the expiry. The server
//! also checks that the principal still exists, so deleting a user revokes its tokens.

use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine;
use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use sha2::Sha256;

/// How long a token is valid: 12 hours, as ECR's (seconds).
pub const TOKEN_LIFETIME_SECS: i64 = 12 * 3600;

/// What a token says about its bearer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TokenClaims {
    /// Account of the principal.
    #[serde(rename = "a")]
    pub account: String,
    /// `user`, `role` or `service`.
    #[serde(rename = "k")]
    pub kind: String,
    /// User, role or service name.
    #[serde(rename = "n")]
    pub name: String,
    /// The principal's unique ID when the token was issued.
    #[serde(rename = "i")]
    pub principal_id: String,
    /// For a role session: the temporary access key the token was obtained with.
    #[serde(rename = "t", default, skip_serializing_if = "Option::is_none")]
    pub temporary_key: Option<String>,
    /// Region the token is valid in.
    #[serde(rename = "r")]
    pub region: String,
    /// Expiry, epoch seconds.
    #[serde(rename = "e")]
    pub expires_at: i64,
}

/// Why a token was refused. `Display` is the message the client sees.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    /// Not a Berth token at all.
    #[error("authorization token is malformed (expected the password printed by `aws ecr get-login-password` or `berth login`)")]
    Malformed,
    /// The signature does not verify: forged, altered, or from another registry.
    #[error("authorization token is invalid: its signature does not match (forged, altered, or issued by another registry)")]
    BadSignature,
    /// Past its expiry.
    #[error("authorization token expired at {0}; get a new one with `aws ecr get-login-password` or `berth login`")]
    Expired(String),
    /// Issued for another region.
    #[error(
        "authorization token was issued for region {token}, but this registry serves region {ours}"
    )]
    WrongRegion {
        /// The token's region.
        token: String,
        /// This registry's region.
        ours: String,
    },
}

type HmacSha256 = Hmac<Sha256>;

fn mac(key: &[u8], msg: &[u8]) -> HmacSha256 {
    let mut m = HmacSha256::new_from_slice(key).expect("HMAC accepts any key length");
    m.update(msg);
    m
}

/// Signs `claims` into a password (colon-free, URL-safe characters and dots).
pub fn issue(key: &[u8], claims: &TokenClaims) -> String {
    let body = serde_json::to_vec(claims).expect("claims serialise");
    let signed = format!("v1.{}", URL_SAFE_NO_PAD.encode(body));
    let sig = mac(key, signed.as_bytes()).finalize().into_bytes();
    format!("{signed}.{}", URL_SAFE_NO_PAD.encode(sig))
}

/// The `authorizationToken` value: base64 of `AWS:<password>` (usable verbatim as a Basic
/// credential).
pub fn authorization_token(password: &str) -> String {
    STANDARD.encode(format!("AWS:{password}"))
}

/// Verifies a password and returns its claims. Checks the signature (constant time),
/// then the region (`region`), then the expiry against `now` (epoch seconds).
pub fn verify(
    key: &[u8],
    password: &str,
    region: &str,
    now: i64,
) -> Result<TokenClaims, TokenError> {
    let rest = password.strip_prefix("v1.").ok_or(TokenError::Malformed)?;
    let (body_b64, sig_b64) = rest.split_once('.').ok_or(TokenError::Malformed)?;
    // A signature that does not even decode was altered: say so, like any other
    // signature that does not match.
    let sig = URL_SAFE_NO_PAD
        .decode(sig_b64)
        .map_err(|_| TokenError::BadSignature)?;
    mac(key, &password.as_bytes()[..3 + body_b64.len()])
        .verify_slice(&sig)
        .map_err(|_| TokenError::BadSignature)?;
    let body = URL_SAFE_NO_PAD
        .decode(body_b64)
        .map_err(|_| TokenError::Malformed)?;
    let claims: TokenClaims = serde_json::from_slice(&body).map_err(|_| TokenError::Malformed)?;
    if claims.region != region {
        return Err(TokenError::WrongRegion {
            token: claims.region,
            ours: region.to_string(),
        });
    }
    if claims.expires_at <= now {
        let at = time::OffsetDateTime::from_unix_timestamp(claims.expires_at)
            .ok()
            .and_then(|t| {
                t.format(&time::format_description::well_known::Rfc3339)
                    .ok()
            })
            .unwrap_or_else(|| claims.expires_at.to_string());
        return Err(TokenError::Expired(at));
    }
    Ok(claims)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn claims(exp: i64) -> TokenClaims {
        TokenClaims {
            account: "111111111111".into(),
            kind: "user".into(),
            name: "alice".into(),
            principal_id: "AIDAEXAMPLE".into(),
            temporary_key: None,
            region: "us-east-1".into(),
            expires_at: exp,
        }
    }

    /// ECR_REFERENCE §4.1: the decoded token has exactly one ':' (the CLI splits on it).
    #[test]
    fn token_is_aws_colon_password_with_one_colon() {
        let pw = issue(b"k", &claims(2_000_000_000));
        let decoded =
            String::from_utf8(STANDARD.decode(authorization_token(&pw)).unwrap()).unwrap();
        assert_eq!(decoded.matches(':').count(), 1);
        assert_eq!(decoded.split_once(':').unwrap(), ("AWS", pw.as_str()));
    }

    #[test]
    fn verify_round_trip_and_refusals() {
        let pw = issue(b"k", &claims(2_000));
        assert_eq!(
            verify(b"k", &pw, "us-east-1", 1_000).unwrap(),
            claims(2_000)
        );
        assert_eq!(
            verify(b"other", &pw, "us-east-1", 1_000),
            Err(TokenError::BadSignature)
        );
        assert!(matches!(
            verify(b"k", &pw, "us-east-1", 2_000),
            Err(TokenError::Expired(_))
        ));
        assert!(matches!(
            verify(b"k", &pw, "eu-west-1", 1_000),
            Err(TokenError::WrongRegion { .. })
        ));
        assert_eq!(
            verify(b"k", "hunter2", "us-east-1", 1_000),
            Err(TokenError::Malformed)
        );
        // Altering the claims (e.g. the expiry) breaks the signature.
        let forged_body =
            URL_SAFE_NO_PAD.encode(serde_json::to_vec(&claims(9_999_999_999)).unwrap());
        let sig = pw.rsplit_once('.').unwrap().1;
        let forged = format!("v1.{forged_body}.{sig}");
        assert_eq!(
            verify(b"k", &forged, "us-east-1", 1_000),
            Err(TokenError::BadSignature)
        );
    }

    /// Regression: changing the signature's last character (which also carries base64
    /// padding bits) was reported as "malformed" rather than as a bad signature.
    #[test]
    fn any_altered_signature_character_is_a_bad_signature() {
        let pw = issue(b"k", &claims(2_000));
        for (i, _) in pw.char_indices().skip(pw.rfind('.').unwrap() + 1) {
            for c in ['A', 'B', 'Q', '_'] {
                let mut f: Vec<char> = pw.chars().collect();
                if f[i] == c {
                    continue;
                }
                f[i] = c;
                let f: String = f.into_iter().collect();
                assert_eq!(
                    verify(b"k", &f, "us-east-1", 1_000),
                    Err(TokenError::BadSignature),
                    "{f}"
                );
            }
        }
    }
}
