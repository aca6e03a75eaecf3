//! AWS Signature Version 4, header form: verifying what clients send, and signing what
//! `berth login` sends.
//!
//! Spec: AWS General Reference, "Signature Version 4 signing process" (canonical request →
//! string to sign → HMAC key chain), as implemented by botocore `auth.py` `SigV4Auth`; the
//! server's checklist is `shared/reference/ECR_REFERENCE.md` §1.2. Checked against the
//! official SigV4 test suite (`tests/sigv4.rs`).
//!
//! # How verification works, and why it uses `aws-sigv4`
//!
//! The signature is recomputed with `aws-sigv4` (AWS's own signer, the one the Rust SDK
//! uses) rather than a local canonicaliser, so Berth and the SDKs share one implementation
//! of the fiddly parts (header value trimming, query sorting and encoding, path
//! normalisation, key derivation). A signer is not a verifier, so [`verify`] feeds it a
//! request rebuilt to make it sign *exactly* the client's `SignedHeaders`:
//!
//! * only the headers named in `SignedHeaders` are handed to it, in the order received, so
//!   repeated headers join with `,` as the spec says;
//! * its default exclusion list (`authorization`, `user-agent`, `x-amzn-trace-id`,
//!   `transfer-encoding`) is cleared, so a client that chose to sign `user-agent` verifies;
//! * it always adds `x-amz-date` (from the signing time): the time is the request's own
//!   `X-Amz-Date`, so the value is identical, and when the client did not sign
//!   `x-amz-date` (it used `Date`) the header is put on the exclusion list instead;
//! * it adds `x-amz-security-token` only when the credentials carry a token, and the
//!   verifying credentials never do: the token is signed only if the client listed it
//!   and sent it, like any other header;
//! * it adds `x-amz-content-sha256` only when asked (`PayloadChecksumKind::XAmzSha256`),
//!   which is never; when the client sent that header its value is the payload hash
//!   (`SignableBody::Precomputed`), after checking it is the SHA-256 of the body;
//! * it adds `host` only when no `Host` header is given, and [`parse`] requires `host`
//!   to be signed and present.
//!
//! With those settings the canonical request it builds is the one the spec defines over the
//! listed headers, which the test-suite vectors confirm. Known narrow differences from
//! botocore, none of which any SDK produces for ECR: header values are trimmed of spaces
//! only (botocore also folds tabs), and paths are double-encoded and normalised as for every
//! service but S3 (as botocore does; S3 scope switches both off).
//!
//! `aws-sigv4` is built on the `http` crate's `HeaderMap`/`Uri` types; that dependency comes
//! with it and is not used by this module's API, which takes plain strings.
//!
//! # What the caller still decides
//!
//! [`parse`] and [`verify`] do not know who owns an access key: the caller looks up the
//! secret for [`Authorization::access_key_id`], checks that [`Authorization::service`] is
//! `ecr` (ECR_REFERENCE §1.2) and, when [`Authorization::security_token`] is present, that
//! the token names a live session *of that access key* (the token need not be signed: the
//! test suite's `post-sts-header-after` adds it after signing).

use std::borrow::Cow;
use std::fmt;
use std::time::SystemTime;

use aws_credential_types::Credentials;
use aws_sigv4::http_request::{
    self, PercentEncodingMode, SignableBody, SignableRequest, SigningSettings,
    UriPathNormalizationMode,
};
use aws_sigv4::sign::v4;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use time::{Date, Duration, Month, OffsetDateTime, PrimitiveDateTime, Time};

/// The only algorithm accepted, as it appears at the start of the `Authorization` header.
pub const ALGORITHM: &str = "AWS4-HMAC-SHA256";

/// The last element of every credential scope.
pub const SCOPE_TERMINATOR: &str = "aws4_request";

/// An HTTP request as received, in the shape the signature covers.
///
/// Borrowed so the HTTP layer can build one without copying. `path` is the request target's
/// path exactly as on the wire (still percent-encoded, `/` for ECR); `query` is the raw query
/// string without `?` (empty for ECR); `headers` are all received headers with names in any
/// case, repeated names allowed (HTTP/2 callers must include `host` built from
/// `:authority`); `body` is the exact body bytes.
#[derive(Debug, Clone, Copy)]
pub struct SignedRequest<'a> {
    /// The HTTP method, e.g. `POST`.
    pub method: &'a str,
    /// The percent-encoded path, e.g. `/`.
    pub path: &'a str,
    /// The raw query string without the leading `?`; empty when there is none.
    pub query: &'a str,
    /// Every header as received: `(name, value)`, names in any case, may repeat.
    pub headers: &'a [(&'a str, &'a str)],
    /// The exact body bytes.
    pub body: &'a [u8],
}

/// What an `Authorization: AWS4-HMAC-SHA256 …` header claims, once [`parse`] has checked its
/// shape. Nothing here is authenticated until [`verify`] succeeds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Authorization {
    /// The access key ID from the credential scope, e.g. `AKIDEXAMPLE`.
    pub access_key_id: String,
    /// The scope date, `yyyymmdd`; equal to the UTC day of [`Authorization::amz_date`].
    pub date: String,
    /// The scope region, e.g. `us-east-1` (whatever region the client was configured with).
    pub region: String,
    /// The scope service, e.g. `ecr`. Not checked here; see the module doc.
    pub service: String,
    /// The `SignedHeaders` list, lower-cased, in the order given; always contains `host`.
    pub signed_headers: Vec<String>,
    /// The hex signature the client sent (compared, never trusted).
    pub signature: String,
    /// The signing time: `X-Amz-Date` (`yyyymmddThhmmssZ`), or `Date` (IMF-fixdate) when
    /// there is no `X-Amz-Date`. UTC.
    pub amz_date: OffsetDateTime,
    /// The `X-Amz-Security-Token` header, when present (temporary credentials).
    pub security_token: Option<String>,
}

/// Why a request is not authenticated. `Display` gives the message AWS sends; the wire type
/// is [`SigV4Error::aws_type`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SigV4Error {
    /// No `Authorization` header. Wire: `MissingAuthenticationTokenException`,
    /// "Missing Authentication Token".
    #[error("Missing Authentication Token")]
    MissingAuthentication,
    /// The header, the date or the signed-header list is not well formed; the message says
    /// what, in AWS's words where they are known (e.g. "Authorization header requires
    /// 'Credential' parameter. Authorization=…"). Wire: `IncompleteSignatureException`.
    #[error("{0}")]
    Malformed(String),
    /// The signing time is further than `max_skew` from `now`, in either direction.
    /// Wire: `InvalidSignatureException`, "Signature expired: <t> is now earlier than
    /// <now-skew> (<now> - 15 min.)" for the past, "Signature not yet current: <t> is still
    /// later than <now+skew> (<now> + 15 min.)" for the future (AWS's two wordings).
    #[error("{}", skew_message(*signed_at, *now, *max_skew))]
    SignatureExpired {
        /// The request's signing time.
        signed_at: OffsetDateTime,
        /// The server's clock when verifying.
        now: OffsetDateTime,
        /// The tolerance that was exceeded.
        max_skew: Duration,
    },
    /// The recomputed signature differs (wrong secret, or anything signed was changed,
    /// including a body whose SHA-256 differs from its `X-Amz-Content-SHA256`).
    /// Wire: `InvalidSignatureException`.
    #[error("The request signature we calculated does not match the signature you provided. Check your AWS Secret Access Key and signing method. Consult the service documentation for details.")]
    SignatureMismatch,
}

impl SigV4Error {
    /// The awsJson `__type` for this error: `MissingAuthenticationTokenException`,
    /// `IncompleteSignatureException` or `InvalidSignatureException`.
    pub fn aws_type(&self) -> &'static str {
        match self {
            SigV4Error::MissingAuthentication => "MissingAuthenticationTokenException",
            SigV4Error::Malformed(_) => "IncompleteSignatureException",
            SigV4Error::SignatureExpired { .. } | SigV4Error::SignatureMismatch => {
                "InvalidSignatureException"
            }
        }
    }
}

fn skew_message(signed_at: OffsetDateTime, now: OffsetDateTime, max_skew: Duration) -> String {
    let minutes = max_skew.whole_minutes();
    if signed_at < now {
        format!(
            "Signature expired: {} is now earlier than {} ({} - {minutes} min.)",
            amz_date_string(signed_at),
            amz_date_string(now - max_skew),
            amz_date_string(now),
        )
    } else {
        format!(
            "Signature not yet current: {} is still later than {} ({} + {minutes} min.)",
            amz_date_string(signed_at),
            amz_date_string(now + max_skew),
            amz_date_string(now),
        )
    }
}

/// Parses and checks the shape of a request's SigV4 `Authorization` header.
///
/// Reads `Authorization` (`AWS4-HMAC-SHA256 Credential=<akid>/<yyyymmdd>/<region>/<service>/aws4_request,
/// SignedHeaders=<a;b;c>, Signature=<hex>`), the signing time from `X-Amz-Date` or else
/// `Date`, and `X-Amz-Security-Token`. Checks: exactly one `Authorization`; all three
/// parameters present, each once; the scope has five parts ending in `aws4_request`; the
/// scope date equals the signing time's UTC day; `SignedHeaders` names `host`, has no empty
/// or repeated names, and every name is present in the request; `X-Amz-Date`,
/// `X-Amz-Security-Token` and `X-Amz-Content-SHA256` appear at most once.
///
/// Errors: [`SigV4Error::MissingAuthentication`] without an `Authorization` header,
/// [`SigV4Error::Malformed`] for everything else. Does not look at the clock or the secret.
pub fn parse(req: &SignedRequest<'_>) -> Result<Authorization, SigV4Error> {
    let mut authorizations = header_values(req, "authorization");
    let Some(value) = authorizations.next() else {
        return Err(SigV4Error::MissingAuthentication);
    };
    if authorizations.next().is_some() {
        return Err(malformed(
            "The request has more than one Authorization header; exactly one is allowed.",
        ));
    }
    let value = value.trim();
    let (algorithm, rest) = value
        .split_once(|c: char| c.is_ascii_whitespace())
        .unwrap_or((value, ""));
    if algorithm != ALGORITHM && algorithm.starts_with("AWS4-") {
        return Err(malformed(format!(
            "Unsupported AWS 'algorithm': '{algorithm}'; only '{ALGORITHM}' is accepted. Authorization={value}"
        )));
    }
    // Any other scheme (Basic, Bearer, SigV2's `AWS`) carries no SigV4 parameters; AWS
    // answers it with the same "requires 'Credential' parameter" list as an empty one.
    let rest = if algorithm == ALGORITHM { rest } else { "" };

    let (mut credential, mut signed_headers, mut signature) = (None, None, None);
    for part in rest.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let Some((key, val)) = part.split_once('=') else {
            return Err(malformed(format!(
                "'{part}' not a valid key=value pair (missing equal-sign) in Authorization header: '{value}'."
            )));
        };
        let key = key.trim();
        let slot = match key {
            "Credential" => &mut credential,
            "SignedHeaders" => &mut signed_headers,
            "Signature" => &mut signature,
            _ => continue,
        };
        if slot.is_some() {
            return Err(malformed(format!(
                "Authorization header has more than one '{key}' parameter. Authorization={value}"
            )));
        }
        *slot = Some(val.trim());
    }
    let date_header = match single_header(req, "x-amz-date")? {
        Some(v) => Some((v.trim(), true)),
        None => single_header(req, "date")?.map(|v| (v.trim(), false)),
    };

    let mut missing = String::new();
    if credential.is_none() {
        missing.push_str("Authorization header requires 'Credential' parameter. ");
    }
    if signature.is_none() {
        missing.push_str("Authorization header requires 'Signature' parameter. ");
    }
    if signed_headers.is_none() {
        missing.push_str("Authorization header requires 'SignedHeaders' parameter. ");
    }
    if date_header.is_none() {
        missing.push_str(
            "Authorization header requires existence of either a 'X-Amz-Date' or a 'Date' header. ",
        );
    }
    let (Some(credential), Some(signed_headers), Some(signature), Some((raw_date, is_amz))) =
        (credential, signed_headers, signature, date_header)
    else {
        return Err(malformed(format!("{missing}Authorization={value}")));
    };

    // Credential=<akid>/<yyyymmdd>/<region>/<service>/aws4_request
    let scope: Vec<&str> = credential.split('/').collect();
    let [access_key_id, date, region, service, terminator] = scope[..] else {
        return Err(malformed(format!(
            "Credential '{credential}' is malformed: expected '<access key id>/<yyyymmdd>/<region>/<service>/{SCOPE_TERMINATOR}'. Authorization={value}"
        )));
    };
    if terminator != SCOPE_TERMINATOR {
        return Err(malformed(format!(
            "Credential should be scoped with a valid terminator: '{SCOPE_TERMINATOR}', not '{terminator}'. "
        )));
    }
    if access_key_id.is_empty() || region.is_empty() || service.is_empty() {
        return Err(malformed(format!(
            "Credential '{credential}' has an empty access key ID, region or service. Authorization={value}"
        )));
    }
    if date.len() != 8 || !date.bytes().all(|b| b.is_ascii_digit()) {
        return Err(malformed(format!(
            "Credential scope date '{date}' is not a date in the form yyyymmdd. Authorization={value}"
        )));
    }

    let amz_date = if is_amz {
        parse_amz_date(raw_date).ok_or_else(|| {
            malformed(format!(
                "X-Amz-Date '{raw_date}' is not an ISO-8601 basic-format UTC time (yyyymmddThhmmssZ, e.g. 20150830T123600Z)."
            ))
        })?
    } else {
        parse_http_date(raw_date).ok_or_else(|| {
            malformed(format!(
                "Date '{raw_date}' is not an HTTP date (e.g. 'Sun, 30 Aug 2015 12:36:00 GMT'); send X-Amz-Date instead."
            ))
        })?
    };
    let iso = amz_date_string(amz_date);
    if date != &iso[..8] {
        return Err(malformed(format!(
            "Date in Credential scope does not match YYYYMMDD from ISO-8601 version of date from HTTP: '{date}' != '{}', from '{iso}'.",
            &iso[..8]
        )));
    }

    let mut names: Vec<String> = Vec::new();
    for name in signed_headers.split(';') {
        let name = name.trim().to_ascii_lowercase();
        if name.is_empty() {
            return Err(malformed(format!(
                "SignedHeaders '{signed_headers}' contains an empty header name. Authorization={value}"
            )));
        }
        if names.contains(&name) {
            return Err(malformed(format!(
                "SignedHeaders '{signed_headers}' names '{name}' more than once. Authorization={value}"
            )));
        }
        names.push(name);
    }
    if !names.iter().any(|n| n == "host") {
        return Err(malformed(
            "'Host' or ':authority' must be a 'SignedHeader' in the AWS Authorization.",
        ));
    }
    if let Some(absent) = names
        .iter()
        .find(|n| header_values(req, n).next().is_none())
    {
        return Err(malformed(format!(
            "Header '{absent}' is listed in SignedHeaders but is not in the request."
        )));
    }
    if signature.is_empty() {
        return Err(malformed(format!(
            "Authorization header has an empty 'Signature' parameter. Authorization={value}"
        )));
    }
    let security_token = single_header(req, "x-amz-security-token")?.map(str::to_owned);
    single_header(req, "x-amz-content-sha256")?;

    Ok(Authorization {
        access_key_id: access_key_id.to_owned(),
        date: date.to_owned(),
        region: region.to_owned(),
        service: service.to_owned(),
        signed_headers: names,
        signature: signature.to_owned(),
        amz_date,
        security_token,
    })
}

/// Verifies a parsed signature: clock skew first, then the signature itself.
///
/// `secret_access_key` is the secret of `auth.access_key_id`; `now` is the server's clock;
/// `max_skew` the allowed distance either side (AWS uses 5 or 15 minutes, see
/// ECR_REFERENCE §1.2). The signature is recomputed with `aws-sigv4` over exactly
/// `auth.signed_headers` (see the module doc), with the payload hash of `req.body` — or the
/// `X-Amz-Content-SHA256` value, which must then be the hex SHA-256 of the body (unsigned
/// and streaming payloads are refused as [`SigV4Error::Malformed`]) — and compared in
/// constant time.
///
/// Errors: [`SigV4Error::SignatureExpired`], [`SigV4Error::SignatureMismatch`], or
/// [`SigV4Error::Malformed`] when the request cannot be put in canonical form (no `host`
/// header, an unusable header name or URI).
pub fn verify(
    req: &SignedRequest<'_>,
    auth: &Authorization,
    secret_access_key: &str,
    now: OffsetDateTime,
    max_skew: Duration,
) -> Result<(), SigV4Error> {
    if (auth.amz_date - now).abs() > max_skew {
        return Err(SigV4Error::SignatureExpired {
            signed_at: auth.amz_date,
            now,
            max_skew,
        });
    }
    let expected = expected_signature(req, auth, secret_access_key)?;
    if bool::from(expected.as_bytes().ct_eq(auth.signature.as_bytes())) {
        Ok(())
    } else {
        Err(SigV4Error::SignatureMismatch)
    }
}

/// The signature `aws-sigv4` computes for `req` over exactly `auth.signed_headers`.
fn expected_signature(
    req: &SignedRequest<'_>,
    auth: &Authorization,
    secret_access_key: &str,
) -> Result<String, SigV4Error> {
    let signed = |name: &str| {
        auth.signed_headers
            .iter()
            .any(|s| name.eq_ignore_ascii_case(s))
    };
    // aws-sigv4 panics when it has neither a Host header nor a URI authority to derive it
    // from; `parse` guarantees one, but `Authorization` can be built by hand.
    if !req
        .headers
        .iter()
        .any(|(n, _)| n.eq_ignore_ascii_case("host") && signed(n))
    {
        return Err(malformed(
            "'Host' or ':authority' must be a 'SignedHeader' in the AWS Authorization.",
        ));
    }

    let body = match single_header(req, "x-amz-content-sha256")? {
        None => SignableBody::Bytes(req.body),
        Some(declared) => {
            let declared = declared.trim();
            if declared.len() != 64 || !declared.bytes().all(|b| b.is_ascii_hexdigit()) {
                return Err(malformed(format!(
                    "X-Amz-Content-SHA256 '{declared}' is not accepted: this service requires the hex SHA-256 of the payload (unsigned and streaming payloads are not supported)."
                )));
            }
            // The header's value is what the client signed; it only protects the body if
            // it is the body's hash (S3 answers XAmzContentSHA256Mismatch here).
            if !declared.eq_ignore_ascii_case(&hex::encode(Sha256::digest(req.body))) {
                return Err(SigV4Error::SignatureMismatch);
            }
            SignableBody::Precomputed(declared.to_owned())
        }
    };

    let path = if req.path.is_empty() { "/" } else { req.path };
    let uri: Cow<'_, str> = if req.query.is_empty() {
        Cow::Borrowed(path)
    } else {
        Cow::Owned(format!("{path}?{}", req.query))
    };
    let headers = req
        .headers
        .iter()
        .filter(|(name, _)| signed(name))
        .map(|(name, value)| (*name, *value));
    let signable = SignableRequest::new(req.method, uri, headers, body).map_err(|e| {
        malformed(format!(
            "The request cannot be put in SigV4 canonical form: {e}"
        ))
    })?;

    let mut settings = SigningSettings::default();
    // Sign what the client listed and nothing else: no default exclusions, and exclude the
    // x-amz-date that aws-sigv4 always adds when the client signed `date` instead.
    settings.excluded_headers = Some(if signed("x-amz-date") {
        Vec::new()
    } else {
        vec![Cow::Borrowed("x-amz-date")]
    });
    if auth.service == "s3" {
        // The spec's one exception: S3 paths are encoded once and not normalised.
        settings.percent_encoding_mode = PercentEncodingMode::Single;
        settings.uri_path_normalization_mode = UriPathNormalizationMode::Disabled;
    }
    // No session token in the verifying identity: aws-sigv4 would add it as a header.
    let identity = Credentials::new(
        auth.access_key_id.clone(),
        secret_access_key.to_owned(),
        None,
        None,
        "berth-sigv4-verify",
    )
    .into();
    let params = v4::SigningParams::builder()
        .identity(&identity)
        .region(&auth.region)
        .name(&auth.service)
        .time(SystemTime::from(auth.amz_date))
        .settings(settings)
        .build()
        .map_err(|e| malformed(format!("SigV4 signing parameters are incomplete: {e}")))?
        .into();
    let output = http_request::sign(signable, &params).map_err(|e| {
        malformed(format!(
            "The request cannot be put in SigV4 canonical form: {e}"
        ))
    })?;
    Ok(output.signature().to_owned())
}

/// Signs a request the way the AWS SDKs do (client side, for `berth login` and tests),
/// with `aws-sigv4` and its default settings.
///
/// `url` is absolute (`http://host:port/path?query`); the signed `host` is taken from a
/// `host` entry in `headers` if there is one, else from the URL, keeping the port unless it
/// is the scheme's default (as botocore does) — the HTTP client must send that same `Host`.
/// All of `headers` are signed except `user-agent`, `x-amzn-trace-id`, `authorization` and
/// `transfer-encoding`; the payload hash is the SHA-256 of `body`; `time` is the signing
/// time (normally now).
///
/// Returns the headers to add, lower-case names: `authorization`, `x-amz-date`, and
/// `x-amz-security-token` when `session_token` is given. Errors (as text) when the URL or a
/// header cannot be signed, or the URL has no host and no `host` header is given.
#[allow(clippy::too_many_arguments)] // the signature's inputs; fixed by the shared API
pub fn sign(
    method: &str,
    url: &str,
    headers: &[(&str, &str)],
    body: &[u8],
    access_key_id: &str,
    secret: &str,
    session_token: Option<&str>,
    region: &str,
    service: &str,
    time: SystemTime,
) -> Result<Vec<(String, String)>, String> {
    let has_host_header = headers.iter().any(|(n, _)| n.eq_ignore_ascii_case("host"));
    let url_has_host = url
        .split_once("://")
        .is_some_and(|(_, rest)| !rest.starts_with(['/', '?', '#']) && !rest.is_empty());
    if !has_host_header && !url_has_host {
        // aws-sigv4 would panic deriving `host` from a URL without an authority.
        return Err(format!(
            "cannot sign a request to '{url}': the URL has no host and no Host header is given"
        ));
    }
    let signable = SignableRequest::new(
        method,
        url,
        headers.iter().copied(),
        SignableBody::Bytes(body),
    )
    .map_err(|e| format!("cannot sign a request to '{url}': {e}"))?;
    let identity = Credentials::new(
        access_key_id,
        secret,
        session_token.map(str::to_owned),
        None,
        "berth",
    )
    .into();
    let params = v4::SigningParams::builder()
        .identity(&identity)
        .region(region)
        .name(service)
        .time(time)
        .settings(SigningSettings::default())
        .build()
        .map_err(|e| format!("SigV4 signing parameters are incomplete: {e}"))?
        .into();
    let (instructions, _signature) = http_request::sign(signable, &params)
        .map_err(|e| format!("cannot sign a request to '{url}': {e}"))?
        .into_parts();
    Ok(instructions
        .headers()
        .map(|(name, value)| (name.to_owned(), value.to_owned()))
        .collect())
}

/// Formats a time as SigV4's ISO-8601 basic form, `yyyymmddThhmmssZ`, in UTC.
pub fn amz_date_string(t: OffsetDateTime) -> String {
    let t = t.to_offset(time::UtcOffset::UTC);
    format!(
        "{:04}{:02}{:02}T{:02}{:02}{:02}Z",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute(),
        t.second()
    )
}

/// Parses `yyyymmddThhmmssZ` (the `X-Amz-Date` form); `None` for anything else.
pub fn parse_amz_date(s: &str) -> Option<OffsetDateTime> {
    let b = s.as_bytes();
    if b.len() != 16 || b[8] != b'T' || b[15] != b'Z' {
        return None;
    }
    let num = |r: std::ops::Range<usize>| -> Option<u32> {
        let digits = &s[r];
        digits
            .bytes()
            .all(|c| c.is_ascii_digit())
            .then(|| digits.parse().ok())?
    };
    let date = Date::from_calendar_date(
        num(0..4)? as i32,
        Month::try_from(num(4..6)? as u8).ok()?,
        num(6..8)? as u8,
    )
    .ok()?;
    let time = Time::from_hms(num(9..11)? as u8, num(11..13)? as u8, num(13..15)? as u8).ok()?;
    Some(PrimitiveDateTime::new(date, time).assume_utc())
}

/// Parses an HTTP `Date` in IMF-fixdate form (`Sun, 30 Aug 2015 12:36:00 GMT`, RFC 9110
/// §5.6.7); the weekday is not checked. `None` for anything else.
fn parse_http_date(s: &str) -> Option<OffsetDateTime> {
    let parts: Vec<&str> = s.split_ascii_whitespace().collect();
    let [_weekday, day, month, year, hms, "GMT"] = parts[..] else {
        return None;
    };
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let month = MONTHS.iter().position(|m| *m == month)? as u8 + 1;
    let date = Date::from_calendar_date(
        year.parse().ok()?,
        Month::try_from(month).ok()?,
        day.parse().ok()?,
    )
    .ok()?;
    let hms: Vec<u8> = hms
        .split(':')
        .map(|p| p.parse().ok())
        .collect::<Option<_>>()?;
    let [h, m, sec] = hms[..] else { return None };
    Some(PrimitiveDateTime::new(date, Time::from_hms(h, m, sec).ok()?).assume_utc())
}

fn malformed(message: impl fmt::Display) -> SigV4Error {
    SigV4Error::Malformed(message.to_string())
}

/// Values of every header named `name` (ASCII case-insensitive), in order received.
fn header_values<'r>(req: &SignedRequest<'r>, name: &str) -> impl Iterator<Item = &'r str> {
    let name = name.to_owned();
    req.headers
        .iter()
        .filter(move |(n, _)| n.eq_ignore_ascii_case(&name))
        .map(|(_, v)| *v)
}

/// The header's value if it appears at most once; `Malformed` if it repeats.
fn single_header<'r>(req: &SignedRequest<'r>, name: &str) -> Result<Option<&'r str>, SigV4Error> {
    let mut values = header_values(req, name);
    let first = values.next();
    if values.next().is_some() {
        return Err(malformed(format!(
            "Header '{name}' appears more than once; it must appear once."
        )));
    }
    Ok(first)
}
