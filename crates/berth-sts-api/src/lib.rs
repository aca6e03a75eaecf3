//! # berth-sts-api: the AWS STS API adapter
//!
//! Serves the three STS operations that CI credential providers and scripts call, so the
//! real AWS CLI and SDKs get role credentials from Berth with no static keys (issue 13):
//!
//! | operation | authentication | what it does |
//! |---|---|---|
//! | `AssumeRoleWithWebIdentity` | none (the OIDC token is the credential) | a role session for a token of a trusted issuer whose claims the role's trust policy allows |
//! | `AssumeRole` | SigV4, service `sts` | a role session for a signed-in principal the trust policy allows |
//! | `GetCallerIdentity` | SigV4, service `sts` | who the caller is (`Account`, `UserId`, `Arn`) |
//!
//! STS speaks the awsQuery protocol (botocore model `sts/2011-06-15/service-2.json`): a
//! form-encoded `POST /` body `Action=<Operation>&Version=2011-06-15&<Member>=<value>…`,
//! answered with XML in the namespace `https://sts.amazonaws.com/doc/2011-06-15/`:
//! `<OperationResponse><OperationResult>…</OperationResult><ResponseMetadata><RequestId>`.
//! Errors are `<ErrorResponse><Error><Type>Sender</Type><Code>…</Code><Message>…</Message>
//! </Error><RequestId>…</RequestId></ErrorResponse>` with STS's codes (`InvalidIdentityToken`,
//! `ExpiredTokenException`, `IDPCommunicationError`, `AccessDenied`, `ValidationError`,
//! `InvalidAction`, `MissingAction`, `InvalidClientTokenId`, `SignatureDoesNotMatch`,
//! `ExpiredToken`…), 403 for authentication and authorisation failures, 400 otherwise.
//!
//! The binary routes `POST /` here when it carries no `X-Amz-Target` and a form-encoded
//! body (`is_sts_request`). Like the other adapters it is thin: [`parse_request`] is a
//! pure function from the body to a closed [`StsRequest`] (fuzzed:
//! `fuzz/fuzz_targets/sts_request.rs`), authentication and every decision are
//! `berth-iam`'s (`Iam::assume_role_with_web_identity`, `Iam::assume_role_as`,
//! `Iam::caller_identity`).

#![deny(missing_docs)]

use axum::body::Body;
use axum::extract::{ConnectInfo, Request, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::any;
use axum::Router;
use berth_iam::sigv4::SignedRequest;
use berth_iam::{AssumedRole, Iam, StsError};
use std::net::SocketAddr;

/// STS's API version, the only `Version` accepted.
pub const VERSION: &str = "2011-06-15";

/// The XML namespace of every answer.
pub const XMLNS: &str = "https://sts.amazonaws.com/doc/2011-06-15/";

/// Largest request body: a web identity token is at most 20000 characters, which
/// percent-encoding may grow threefold.
pub const MAX_BODY: usize = 64 * 1024;

/// One parsed STS request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StsRequest {
    /// `AssumeRoleWithWebIdentity`.
    AssumeRoleWithWebIdentity {
        /// `RoleArn`.
        role_arn: String,
        /// `RoleSessionName`.
        role_session_name: String,
        /// `WebIdentityToken`.
        web_identity_token: String,
        /// `DurationSeconds`, if given.
        duration_seconds: Option<u64>,
    },
    /// `AssumeRole`.
    AssumeRole {
        /// `RoleArn`.
        role_arn: String,
        /// `RoleSessionName`.
        role_session_name: String,
        /// `DurationSeconds`, if given.
        duration_seconds: Option<u64>,
    },
    /// `GetCallerIdentity`.
    GetCallerIdentity,
}

impl StsRequest {
    /// The operation's name (`Action`).
    pub fn action(&self) -> &'static str {
        match self {
            StsRequest::AssumeRoleWithWebIdentity { .. } => "AssumeRoleWithWebIdentity",
            StsRequest::AssumeRole { .. } => "AssumeRole",
            StsRequest::GetCallerIdentity => "GetCallerIdentity",
        }
    }
}

fn null(member: &str) -> StsError {
    StsError::new(
        "ValidationError",
        format!(
            "1 validation error detected: Value null at '{member}' failed to satisfy \
             constraint: Member must not be null"
        ),
    )
}

/// Parses a form-encoded awsQuery body into a request, with STS's errors: `MissingAction`,
/// `InvalidAction` (an unknown operation or `Version`), `ValidationError` (a required member
/// missing, `DurationSeconds` not a number, a session policy, which Berth does not apply).
/// Never panics, whatever the bytes.
pub fn parse_request(body: &[u8]) -> Result<StsRequest, StsError> {
    let pairs: Vec<(String, String)> = serde_urlencoded::from_bytes(body).map_err(|e| {
        StsError::new(
            "MalformedQueryString",
            format!("the request body is not form-encoded: {e}"),
        )
    })?;
    let get = |k: &str| pairs.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str());
    let action = get("Action")
        .ok_or_else(|| StsError::new("MissingAction", "Missing Action"))?
        .to_string();
    match get("Version") {
        Some(VERSION) => {}
        Some(v) => {
            return Err(StsError::new(
                "InvalidAction",
                format!("Could not find operation {action} for version {v}"),
            ))
        }
        None => {
            return Err(StsError::new(
                "MissingParameter",
                "The request must contain the parameter Version",
            ))
        }
    }
    let required = |k: &str, member: &str| get(k).map(str::to_string).ok_or_else(|| null(member));
    let duration = || -> Result<Option<u64>, StsError> {
        get("DurationSeconds")
            .map(|v| {
                v.parse::<u64>().map_err(|_| {
                    StsError::new(
                        "ValidationError",
                        format!(
                            "1 validation error detected: Value '{v}' at 'durationSeconds' \
                             failed to satisfy constraint: Member must be a number"
                        ),
                    )
                })
            })
            .transpose()
    };
    let no_session_policies = || {
        if pairs
            .iter()
            .any(|(k, _)| k == "Policy" || k.starts_with("PolicyArns."))
        {
            Err(StsError::new(
                "ValidationError",
                "session policies (Policy, PolicyArns) are not supported by Berth: the \
                 session has the role's permissions",
            ))
        } else {
            Ok(())
        }
    };
    match action.as_str() {
        "AssumeRoleWithWebIdentity" => {
            no_session_policies()?;
            Ok(StsRequest::AssumeRoleWithWebIdentity {
                role_arn: required("RoleArn", "roleArn")?,
                role_session_name: required("RoleSessionName", "roleSessionName")?,
                web_identity_token: required("WebIdentityToken", "webIdentityToken")?,
                duration_seconds: duration()?,
            })
        }
        "AssumeRole" => {
            no_session_policies()?;
            Ok(StsRequest::AssumeRole {
                role_arn: required("RoleArn", "roleArn")?,
                role_session_name: required("RoleSessionName", "roleSessionName")?,
                duration_seconds: duration()?,
            })
        }
        "GetCallerIdentity" => Ok(StsRequest::GetCallerIdentity),
        other => Err(StsError::new(
            "InvalidAction",
            format!("Could not find operation {other} for version {VERSION}"),
        )),
    }
}

/// Whether a `POST /` is an STS call: no `X-Amz-Target` (the awsJson APIs' marker) and a
/// form-encoded body (`Content-Type: application/x-www-form-urlencoded`).
pub fn is_sts_request(headers: &HeaderMap) -> bool {
    headers.get("x-amz-target").is_none()
        && headers
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| {
                v.trim_start()
                    .to_ascii_lowercase()
                    .starts_with("application/x-www-form-urlencoded")
            })
}

/// The STS router (`POST /`) over `iam`.
pub fn router(iam: Iam) -> Router {
    Router::new().route("/", any(handle)).with_state(iam)
}

fn esc(s: &str) -> std::borrow::Cow<'_, str> {
    quick_xml::escape::escape(s)
}

/// STS's error XML for `e` (`<Type>` is `Sender`: every error raised here is the caller's).
pub fn error_xml(e: &StsError, request_id: &str) -> String {
    format!(
        "<ErrorResponse xmlns=\"{XMLNS}\">\n  <Error>\n    <Type>Sender</Type>\n    \
         <Code>{}</Code>\n    <Message>{}</Message>\n  </Error>\n  \
         <RequestId>{request_id}</RequestId>\n</ErrorResponse>\n",
        e.code,
        esc(&e.message)
    )
}

fn rfc3339(t: time::OffsetDateTime) -> String {
    // STS writes `2026-12-03T19:00:00Z`: whole seconds, UTC.
    let t = t.replace_nanosecond(0).unwrap_or(t);
    t.format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}

fn session_xml(a: &AssumedRole) -> String {
    let c = &a.credentials;
    format!(
        "    <Credentials>\n      <AccessKeyId>{}</AccessKeyId>\n      \
         <SecretAccessKey>{}</SecretAccessKey>\n      <SessionToken>{}</SessionToken>\n      \
         <Expiration>{}</Expiration>\n    </Credentials>\n    <AssumedRoleUser>\n      \
         <AssumedRoleId>{}</AssumedRoleId>\n      <Arn>{}</Arn>\n    </AssumedRoleUser>\n",
        esc(&c.access_key_id),
        esc(c.secret_access_key.as_str()),
        esc(c.session_token.as_str()),
        rfc3339(c.expiration),
        esc(&a.assumed_role_id),
        esc(&a.arn),
    )
}

fn wrap(action: &str, result: &str, request_id: &str) -> String {
    format!(
        "<{action}Response xmlns=\"{XMLNS}\">\n  <{action}Result>\n{result}  </{action}Result>\n  \
         <ResponseMetadata>\n    <RequestId>{request_id}</RequestId>\n  </ResponseMetadata>\n\
         </{action}Response>\n"
    )
}

async fn handle(State(iam): State<Iam>, req: Request) -> Response {
    let request_id = uuid::Uuid::new_v4().to_string();
    let (parts, body) = req.into_parts();
    let result = if parts.method != axum::http::Method::POST {
        let e = StsError::new(
            "InvalidAction",
            format!(
                "{} / is not an STS call: use POST / with a form-encoded body",
                parts.method
            ),
        );
        Err(e)
    } else {
        let (body, read) = berth_http::body::track(body);
        let r = serve(&iam, parts, body, &request_id).await;
        return berth_http::body::close_unless_read(answer(r, &request_id), &read);
    };
    berth_http::body::settle(answer(result, &request_id), body).await
}

fn answer(result: Result<String, StsError>, request_id: &str) -> Response {
    let (status, text) = match result {
        Ok(xml) => (StatusCode::OK, xml),
        Err(e) => {
            tracing::debug!(error = %e, "STS request refused");
            (
                StatusCode::from_u16(e.status()).unwrap_or(StatusCode::BAD_REQUEST),
                error_xml(&e, request_id),
            )
        }
    };
    let mut r = (status, text).into_response();
    r.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static("text/xml"));
    if let Ok(v) = HeaderValue::from_str(request_id) {
        r.headers_mut().insert("x-amzn-requestid", v);
    }
    r
}

async fn read_body(body: Body) -> Result<bytes::Bytes, StsError> {
    use http_body_util::BodyExt;
    match http_body_util::Limited::new(body, MAX_BODY).collect().await {
        Ok(c) => Ok(c.to_bytes()),
        Err(e) if e.is::<http_body_util::LengthLimitError>() => Err(StsError::new(
            "ValidationError",
            format!("the request body exceeds {MAX_BODY} bytes"),
        )),
        Err(e) => Err(StsError::new(
            "MalformedQueryString",
            format!("reading the request body failed: {e}"),
        )),
    }
}

/// STS's code for a SigV4 authentication failure.
fn auth_code(aws_type: &str) -> &'static str {
    match aws_type {
        "UnrecognizedClientException" => "InvalidClientTokenId",
        "ExpiredTokenException" => "ExpiredToken",
        "IncompleteSignatureException" => "IncompleteSignature",
        _ => "SignatureDoesNotMatch",
    }
}

async fn serve(
    iam: &Iam,
    parts: axum::http::request::Parts,
    body: Body,
    request_id: &str,
) -> Result<String, StsError> {
    let source_ip = parts
        .extensions
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0.ip());
    let body = read_body(body).await?;
    let request = parse_request(&body)?;
    let action = request.action();
    let caller = match &request {
        StsRequest::AssumeRoleWithWebIdentity { .. } => None,
        _ => {
            let host = berth_http::sigv4::request_host(&parts.headers, &parts.uri);
            let headers = berth_http::sigv4::signed_headers(&parts.headers, &host);
            if parts.headers.get(header::AUTHORIZATION).is_none() {
                return Err(StsError::new(
                    "MissingAuthenticationToken",
                    format!("{action} must be signed with SigV4 (credential scope service sts)"),
                ));
            }
            let signed = SignedRequest {
                method: parts.method.as_str(),
                path: parts.uri.path(),
                query: parts.uri.query().unwrap_or(""),
                headers: &headers,
                body: &body,
            };
            Some(
                iam.authenticate_sigv4_for(&signed, source_ip, "sts")
                    .await
                    .map_err(|e| StsError::new(auth_code(e.aws_type()), e.to_string()))?,
            )
        }
    };
    let result = match (request, caller) {
        (
            StsRequest::AssumeRoleWithWebIdentity {
                role_arn,
                role_session_name,
                web_identity_token,
                duration_seconds,
            },
            _,
        ) => {
            let a = iam
                .assume_role_with_web_identity(
                    &role_arn,
                    &role_session_name,
                    &web_identity_token,
                    duration_seconds,
                    source_ip,
                )
                .await?;
            let w = a.web_identity.as_ref().expect("web identity session");
            format!(
                "{}    <SubjectFromWebIdentityToken>{}</SubjectFromWebIdentityToken>\n    \
                 <Audience>{}</Audience>\n    <Provider>{}</Provider>\n",
                session_xml(&a),
                esc(&w.subject),
                esc(&w.audience),
                esc(&w.provider_id)
            )
        }
        (
            StsRequest::AssumeRole {
                role_arn,
                role_session_name,
                duration_seconds,
            },
            Some(caller),
        ) => {
            let a = iam
                .assume_role_as(&caller, &role_arn, &role_session_name, duration_seconds)
                .await?;
            session_xml(&a)
        }
        (StsRequest::GetCallerIdentity, Some(caller)) => {
            let (account, user_id, arn) = iam.caller_identity(&caller);
            format!(
                "    <Arn>{}</Arn>\n    <UserId>{}</UserId>\n    <Account>{}</Account>\n",
                esc(&arn),
                esc(&user_id),
                esc(&account)
            )
        }
        (_, None) => unreachable!("signed operations have a caller"),
    };
    Ok(wrap(action, &result, request_id))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// STS API Reference, AssumeRoleWithWebIdentity "Request Parameters": the members as
    /// botocore's awsQuery serializer sends them.
    #[test]
    fn parses_the_query_protocol_body() {
        let r = parse_request(
            b"Action=AssumeRoleWithWebIdentity&Version=2011-06-15&RoleArn=arn%3Aaws%3Aiam%3A%3A111111111111%3Arole%2Fci\
              &RoleSessionName=s1&WebIdentityToken=a.b.c&DurationSeconds=900",
        )
        .unwrap();
        assert_eq!(
            r,
            StsRequest::AssumeRoleWithWebIdentity {
                role_arn: "arn:aws:iam::111111111111:role/ci".into(),
                role_session_name: "s1".into(),
                web_identity_token: "a.b.c".into(),
                duration_seconds: Some(900),
            }
        );
        assert_eq!(
            parse_request(b"Action=GetCallerIdentity&Version=2011-06-15").unwrap(),
            StsRequest::GetCallerIdentity
        );
    }

    #[test]
    fn refusals_use_sts_codes() {
        assert_eq!(
            parse_request(b"Version=2011-06-15").unwrap_err().code,
            "MissingAction"
        );
        assert_eq!(
            parse_request(b"Action=GetSessionToken&Version=2011-06-15")
                .unwrap_err()
                .code,
            "InvalidAction"
        );
        let e =
            parse_request(b"Action=AssumeRole&Version=2011-06-15&RoleSessionName=x").unwrap_err();
        assert_eq!(e.code, "ValidationError");
        assert!(e.message.contains("'roleArn'"), "{}", e.message);
        let e = parse_request(
            b"Action=AssumeRole&Version=2011-06-15&RoleArn=a&RoleSessionName=x&Policy=%7B%7D",
        )
        .unwrap_err();
        assert!(e.message.contains("session policies"), "{}", e.message);
    }

    #[test]
    fn error_xml_escapes_the_message() {
        let x = error_xml(&StsError::new("AccessDenied", "a <b> & c"), "r1");
        assert!(x.contains("<Message>a &lt;b&gt; &amp; c</Message>"), "{x}");
        assert!(x.contains("<Code>AccessDenied</Code>"));
    }
}
