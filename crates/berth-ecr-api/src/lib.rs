//! # berth-ecr-api: the Amazon ECR API adapter
//!
//! Serves ECR's control plane (`AmazonEC2ContainerRegistry_V20150921`, awsJson1_1,
//! SigV4) on `POST /`, so the real `aws ecr --endpoint-url …` and boto3 manage Berth
//! unchanged. Like the OCI adapter it is thin: for each request it
//!
//! 1. names the [`Operation`] from `X-Amz-Target` (a closed enum; the IAM action is a
//!    method of it),
//! 2. reads the body (bounded: 32 MiB for `UploadLayerPart`, 16 MiB otherwise) and
//!    authenticates the SigV4 signature over it with `berth-iam`,
//! 3. parses and validates the members the way ECR does ([`validate`]), so bad input gets
//!    ECR's `InvalidParameterException` wording,
//! 4. authorises `ecr:<Operation>` on the repository's ARN (or `*` for account-level
//!    operations) **before** looking anything up, so a denied caller cannot learn whether
//!    a repository exists,
//! 5. calls the [`Registry`] service or the [`Iam`] service, and shapes the answer: JSON
//!    with absent members omitted, timestamps as epoch seconds, `x-amzn-RequestId` on
//!    every response, errors as `{"__type","message"}` ([`error`]).
//!
//! It holds no state and makes no registry decisions: tag immutability, repository
//! deletion rules, image sizes and pull times live in `berth-registry` and are the same
//! on the OCI plane. Operations of capabilities Berth does not have yet answer
//! `UnsupportedOperationException` ([`operation::Support`]).

#![deny(missing_docs)]

pub mod error;
mod handlers;
pub mod operation;
pub mod page;
pub mod validate;
mod wire;

use axum::body::Body;
use axum::extract::{ConnectInfo, Request, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::any;
use axum::Router;
use berth_core::RepositoryName;
use berth_iam::sigv4::SignedRequest;
use berth_iam::{Caller, Iam};
use berth_registry::Registry;
use error::{EcrError, EcrErrorType, CONTENT_TYPE};
pub use operation::{support, Operation, Support};
use std::net::SocketAddr;

/// Largest `UploadLayerPart` request: a 20 MiB part is 28 MiB of base64, plus JSON.
pub const MAX_UPLOAD_PART_BODY: usize = 32 << 20;
/// Largest body of any other operation (`PutImage` carries a manifest of up to 4 MiB,
/// JSON-escaped).
pub const MAX_BODY: usize = 16 << 20;

/// What every request needs: the registry service, the identity service and the
/// adapter's settings.
#[derive(Clone)]
pub struct EcrApi {
    registry: Registry,
    iam: Iam,
    config: EcrConfig,
}

/// Settings of the ECR adapter.
#[derive(Debug, Clone, Default)]
pub struct EcrConfig {
    /// The name clients use for the registry, for `repositoryUri`, `proxyEndpoint` and
    /// `downloadUrl`; `None`: the `Host` each request was sent to, over `http`.
    pub public_host: Option<PublicHost>,
}

/// The registry's public name (issue 17): `host[:port]`, optionally preceded by
/// `http://` or `https://` (default `http`, what Berth itself serves). ECR answers
/// `repositoryUri` as `<host[:port]>/<repository>` and `proxyEndpoint` as
/// `<scheme>://<host[:port]>` (ECR_REFERENCE: `<account>.dkr.ecr.<region>.amazonaws.com`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PublicHost {
    scheme: &'static str,
    authority: String,
}

impl PublicHost {
    /// Parses `[http://|https://]host[:port]`. Errors: another scheme, a path, query,
    /// user info, or a host or port that is not valid in a URL authority.
    pub fn parse(s: &str) -> Result<PublicHost, String> {
        let (scheme, rest) = match s.split_once("://") {
            Some(("http", r)) => ("http", r),
            Some(("https", r)) => ("https", r),
            Some((other, _)) => {
                return Err(format!(
                    "{s:?}: scheme {other:?} is not http or https (write host[:port], optionally with http:// or https://)"
                ))
            }
            None => ("http", s),
        };
        let rest = rest.strip_suffix('/').unwrap_or(rest);
        let bad = || format!("{s:?} is not host[:port], optionally with http:// or https://");
        let authority: axum::http::uri::Authority = rest.parse().map_err(|_| bad())?;
        if authority.host().is_empty() || rest.contains('@') {
            return Err(bad());
        }
        Ok(PublicHost {
            scheme,
            authority: authority.as_str().to_string(),
        })
    }
}

/// The ECR API router (`POST /`) over `registry` and `iam`, with URIs built from each
/// request's `Host`. Merge it into the app.
pub fn router(registry: Registry, iam: Iam) -> Router {
    router_with(registry, iam, EcrConfig::default())
}

/// [`router`] with settings.
pub fn router_with(registry: Registry, iam: Iam, config: EcrConfig) -> Router {
    Router::new().route("/", any(handle)).with_state(EcrApi {
        registry,
        iam,
        config,
    })
}

/// One request's context: who calls which operation, through which address.
pub(crate) struct Ctx<'a> {
    pub registry: &'a Registry,
    pub iam: &'a Iam,
    pub caller: Caller,
    pub op: Operation,
    /// The registry's address for `proxyEndpoint`, `repositoryUri` and download URLs:
    /// the configured public host, else the `Host` the client used (`127.0.0.1:5000`).
    pub host: String,
    /// The scheme of `proxyEndpoint` and download URLs (`http` unless configured).
    pub scheme: &'static str,
}

impl Ctx<'_> {
    /// This registry's ID (its account).
    pub fn account(&self) -> &str {
        self.iam.account().as_str()
    }

    /// Authorises this operation's action on `resource` (an ARN or `*`).
    pub async fn authorize(&self, resource: &str) -> Result<(), EcrError> {
        self.iam
            .authorize(&self.caller, self.op.into(), resource)
            .await
            .map_err(|d| EcrError::new(EcrErrorType::AccessDeniedException, d.to_string()))
    }

    /// Authorises this operation's action on a repository.
    pub async fn authorize_repo(&self, repo: &RepositoryName) -> Result<(), EcrError> {
        self.authorize(&self.iam.repository_arn(repo.as_str()))
            .await
    }

    /// Checks an optional `registryId`: this server hosts one registry.
    pub fn check_registry(&self, id: Option<&str>) -> Result<(), EcrError> {
        let Some(id) = id else { return Ok(()) };
        validate::registry_id(id, "registryId")?;
        if id != self.account() {
            return Err(EcrError::invalid_parameter(
                "registryId",
                format!(
                    "registry {id} is not hosted here; this Berth server hosts registry {}",
                    self.account()
                ),
            ));
        }
        Ok(())
    }

    /// `RepositoryNotFoundException` with ECR's message.
    pub fn repository_not_found(&self, repo: &str) -> EcrError {
        EcrError::new(
            EcrErrorType::RepositoryNotFoundException,
            format!(
                "The repository with name '{repo}' does not exist in the registry with id '{}'",
                self.account()
            ),
        )
    }
}

async fn handle(State(api): State<EcrApi>, req: Request) -> Response {
    let request_id = uuid::Uuid::new_v4().to_string();
    // Early answers keep the connection usable the way the OCI adapter's do (issue 17,
    // `berth_http::body`): an answer given before the body was read drains it or says
    // `Connection: close`; so does one given after reading only part of it.
    let (parts, body) = req.into_parts();
    let mut resp = match operation_of(&parts) {
        Err(e) => berth_http::body::settle(answer(Err(e)), body).await,
        Ok(op) if http_body::Body::size_hint(&body).lower() > body_limit(op) as u64 => {
            // Announced too large: refused unread, the rest read off the request path.
            berth_http::body::settle(answer(Err(too_large(op))), body).await
        }
        Ok(op) => {
            let (body, read) = berth_http::body::track(body);
            let resp = answer(serve(&api, op, Request::from_parts(parts, body)).await);
            berth_http::body::close_unless_read(resp, &read)
        }
    };
    if let Ok(v) = HeaderValue::from_str(&request_id) {
        resp.headers_mut().insert("x-amzn-requestid", v);
    }
    resp
}

/// The HTTP answer for an operation's result.
fn answer(result: Result<serde_json::Value, EcrError>) -> Response {
    match result {
        Ok(body) => {
            let mut r = (StatusCode::OK, body.to_string()).into_response();
            r.headers_mut()
                .insert(header::CONTENT_TYPE, HeaderValue::from_static(CONTENT_TYPE));
            r
        }
        Err(e) => {
            tracing::debug!(error = %e, "ECR API request refused");
            e.into_response()
        }
    }
}

/// The operation a request names: `POST /` with a known `X-Amz-Target`.
fn operation_of(parts: &axum::http::request::Parts) -> Result<Operation, EcrError> {
    if parts.method != axum::http::Method::POST {
        let mut e = EcrError::new(EcrErrorType::UnknownOperationException,
            format!(
                "{} / is not an ECR operation: the ECR API takes POST / with an X-Amz-Target header",
                parts.method
            ),
        );
        e.status = StatusCode::METHOD_NOT_ALLOWED;
        return Err(e);
    }
    let target = parts
        .headers
        .get("x-amz-target")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    operation::from_target(target).ok_or_else(|| {
        EcrError::new(
            EcrErrorType::UnknownOperationException,
            if target.is_empty() {
                "the request has no X-Amz-Target header naming an ECR operation".to_string()
            } else {
                format!(
                    "X-Amz-Target '{target}' names no operation of {}",
                    operation::TARGET_PREFIX
                )
            },
        )
    })
}

async fn serve(api: &EcrApi, op: Operation, req: Request) -> Result<serde_json::Value, EcrError> {
    let source_ip = req
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0.ip());
    let host = berth_http::sigv4::request_host(req.headers(), req.uri());
    let (parts, body) = req.into_parts();
    let body = read_body(body, op).await?;

    let signed_headers = berth_http::sigv4::signed_headers(&parts.headers, &host);
    let signed = SignedRequest {
        method: parts.method.as_str(),
        path: parts.uri.path(),
        query: parts.uri.query().unwrap_or(""),
        headers: &signed_headers,
        body: &body,
    };
    let caller = if parts.headers.get(header::AUTHORIZATION).is_none() && api.iam.allow_anonymous()
    {
        api.iam.anonymous(source_ip)
    } else {
        api.iam
            .authenticate_sigv4(&signed, source_ip)
            .await
            .map_err(|e| {
                // berth-iam names the authentication error type; every name it uses is
                // a variant (checked by the `authentication_types_are_declared` test).
                let kind = EcrErrorType::from_name(e.aws_type())
                    .unwrap_or(EcrErrorType::InvalidSignatureException);
                EcrError::new(kind, e.to_string())
            })?
    };
    let (scheme, host) = match &api.config.public_host {
        Some(p) => (p.scheme, p.authority.clone()),
        None => ("http", host),
    };
    let ctx = Ctx {
        registry: &api.registry,
        iam: &api.iam,
        caller,
        op,
        host,
        scheme,
    };
    handlers::dispatch(&ctx, &body).await
}

/// The largest body `op` takes.
fn body_limit(op: Operation) -> usize {
    if op == Operation::UploadLayerPart {
        MAX_UPLOAD_PART_BODY
    } else {
        MAX_BODY
    }
}

/// The refusal of a body larger than [`body_limit`].
fn too_large(op: Operation) -> EcrError {
    EcrError::new(
        EcrErrorType::InvalidParameterException,
        format!(
            "the {} request body exceeds {} bytes{}",
            op.name(),
            body_limit(op),
            if op == Operation::UploadLayerPart {
                "; send layer parts of at most 20 MiB (20971520 bytes)"
            } else {
                ""
            }
        ),
    )
}

async fn read_body(body: Body, op: Operation) -> Result<bytes::Bytes, EcrError> {
    use http_body_util::BodyExt;
    match http_body_util::Limited::new(body, body_limit(op))
        .collect()
        .await
    {
        Ok(c) => Ok(c.to_bytes()),
        Err(e) if e.is::<http_body_util::LengthLimitError>() => Err(too_large(op)),
        Err(e) => Err(EcrError::new(
            EcrErrorType::SerializationException,
            format!("reading the request body failed: {e}"),
        )),
    }
}
