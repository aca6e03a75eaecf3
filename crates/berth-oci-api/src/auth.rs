//! Authentication and authorisation of OCI API requests (issue 3; ECR_REFERENCE §4.2).
//!
//! Credentials: HTTP Basic with `AWS:<authorization token password>` (what
//! `docker login -u AWS` sends after `aws ecr get-login-password` / `berth login`) or
//! `<access key ID>:<secret access key>`; a presigned blob URL's query
//! (GetDownloadUrlForLayer); or none (anonymous). Every endpoint's ECR action
//! ([`Endpoint::action`]) is authorised on the repository's ARN before the service is
//! called, so a caller without rights learns nothing about the repository
//! (DESIGN.md invariant 6).
//!
//! Refusals: bad credentials, or an anonymous caller that policies do not admit → 401
//! `UNAUTHORIZED` with `WWW-Authenticate: Basic realm=…,service=…` so clients log in;
//! an authenticated caller without rights → 403 `DENIED` with AWS's message.

use crate::endpoint::Endpoint;
use crate::error::{ErrorCode, OciError};
use axum::http::{header, HeaderMap, HeaderValue};
use axum::response::{IntoResponse, Response};
use berth_iam::{AuthError, Caller, Denied, Iam};
use std::net::IpAddr;

/// The `WWW-Authenticate` challenge: ECR's form, with the realm naming this registry's
/// address as the client reached it.
fn challenge(headers: &HeaderMap) -> HeaderValue {
    let host = headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .filter(|h| h.bytes().all(|b| b.is_ascii_graphic() && b != b'"'))
        .unwrap_or("localhost");
    HeaderValue::from_str(&format!(
        "Basic realm=\"http://{host}/\",service=\"ecr.amazonaws.com\""
    ))
    .unwrap_or_else(|_| HeaderValue::from_static("Basic realm=\"berth\""))
}

/// 401 `UNAUTHORIZED` with the challenge (distribution-spec § Error Codes code-11).
pub fn unauthorized(headers: &HeaderMap, message: String) -> Response {
    let mut resp = OciError::new(ErrorCode::Unauthorized, message).into_response();
    resp.headers_mut()
        .insert(header::WWW_AUTHENTICATE, challenge(headers));
    resp
}

/// The response for a refused authorisation.
pub fn denied(headers: &HeaderMap, d: Denied) -> Response {
    if d.anonymous {
        unauthorized(headers, format!("authentication required: {}", d.message))
    } else {
        OciError::new(ErrorCode::Denied, d.message).into_response()
    }
}

fn auth_failed(headers: &HeaderMap, e: AuthError) -> Response {
    unauthorized(headers, e.to_string())
}

/// Who is calling: from the `Authorization` header, a presigned blob URL, or nobody.
/// Errors: a 401 response for credentials that do not verify (never silently anonymous).
pub async fn authenticate(
    iam: &Iam,
    headers: &HeaderMap,
    ep: Option<&Endpoint>,
    query: Option<&str>,
    ip: Option<IpAddr>,
) -> Result<Caller, Response> {
    if let Some(v) = headers.get(header::AUTHORIZATION) {
        let v = v.to_str().unwrap_or("");
        let (scheme, cred) = v.split_once(' ').unwrap_or((v, ""));
        if scheme.eq_ignore_ascii_case("basic") {
            return iam
                .authenticate_basic(cred, ip)
                .await
                .map_err(|e| auth_failed(headers, e));
        }
        return Err(unauthorized(
            headers,
            format!(
                "unsupported Authorization scheme '{scheme}': this registry takes Basic credentials \
                 (an access key, or AWS and the password from `aws ecr get-login-password`)"
            ),
        ));
    }
    if let (Some(Endpoint::GetBlob(n, d) | Endpoint::HeadBlob(n, d)), Some(q)) = (ep, query) {
        if q.contains("X-Berth-Signature=") {
            return iam
                .authenticate_presigned(n.as_str(), &d.to_string(), q, ip)
                .await
                .map_err(|e| auth_failed(headers, e));
        }
    }
    Ok(iam.anonymous(ip))
}
