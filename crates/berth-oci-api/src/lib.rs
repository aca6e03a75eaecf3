//! # berth-oci-api: the OCI Distribution Spec v1.1 HTTP adapter
//!
//! A thin layer: parse the request into an [`endpoint::Endpoint`] (a pure function),
//! call the [`Registry`] service, and map the answer to the spec's headers and bodies and
//! its errors to [`error::OciError`] — nothing else. It owns no state and no rules of its
//! own beyond the wire format; the ECR API adapter calls the same service.
//!
//! Every response carries `Docker-Distribution-API-Version: registry/2.0`, which Docker
//! and containerd check for. Blob bodies stream in both directions (DESIGN.md invariant 7).

#![deny(missing_docs)]

pub mod auth;
pub mod endpoint;
pub mod error;
pub mod query;
pub mod range;

use axum::body::Body;
use axum::extract::{ConnectInfo, Request, State};
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::any;
use axum::Router;
use berth_core::{media_type, Digest, Reference, RepositoryName, MAX_MANIFEST_BYTES};
use berth_http::body;
use berth_iam::{Caller, EcrAction, Iam};
use berth_registry::Registry;
use berth_registry::{BlobContent, ByteStream};
use bytes::Bytes;
use endpoint::{Endpoint, RouteError};
use error::{range_header, ErrorCode, OciError};
use futures::{StreamExt, TryStreamExt};
use http_body_util::BodyExt;
use std::net::SocketAddr;
use std::sync::Arc;

/// Bytes read from disk per chunk when serving a blob.
const READ_CHUNK: usize = 1 << 20;

/// The route label a handler leaves in the response's extensions, for metrics middleware.
#[derive(Debug, Clone, Copy)]
pub struct RouteLabel(pub &'static str);

use query::Params;

/// The state of the OCI adapter: the service and the identity service.
#[derive(Clone)]
struct Api {
    reg: Registry,
    iam: Iam,
}

/// The `/v2/` router for `registry`, authenticating and authorising every request with
/// `iam`. Mount it at the root of the app; serve it with
/// `into_make_service_with_connect_info::<SocketAddr>()` so policies see `aws:SourceIp`.
pub fn router(registry: Registry, iam: Iam) -> Router {
    Router::new()
        .route("/v2", any(handle))
        .route("/v2/", any(handle))
        .route("/v2/{*path}", any(handle))
        .with_state(Api { reg: registry, iam })
}

/// The header a replicating registry sends with every request of a copy:
/// `<source region>/<source registryId>`. Pushes made under it cause no replication here.
pub const REPLICATION_SOURCE_HEADER: &str = "x-berth-replication-source";

async fn handle(State(api): State<Api>, req: Request) -> Response {
    let ip = req
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0.ip());
    let (parts, body) = req.into_parts();
    let (method, uri, headers) = (parts.method, parts.uri, parts.headers);
    let ep = match endpoint::parse(&method, uri.path()) {
        Ok(ep) => ep,
        Err(e) => {
            let (label, resp) = route_error(e, &method, uri.path());
            return finish(body::settle(resp, body).await, label);
        }
    };
    let label = ep.label();
    let caller = match auth::authenticate(&api.iam, &headers, Some(&ep), uri.query(), ip).await {
        Ok(c) => c,
        Err(resp) => return finish(body::settle(resp, body).await, label),
    };
    if let Err(resp) = authorize(&api, &caller, &ep, &headers).await {
        return finish(body::settle(resp, body).await, label);
    }
    let mut params: Params = query::params(uri.query());
    // § Mounting a blob: the caller must be able to pull from the source, else
    // the request is an ordinary upload (202), which reveals nothing about it.
    if let (Endpoint::StartUpload(_), Some(from)) = (&ep, params.get("from")) {
        let readable = RepositoryName::parse(from).is_ok_and(|f| {
            api.iam.is_allowed(
                &caller,
                EcrAction::GetDownloadUrlForLayer.into(),
                &api.iam.repository_arn(f.as_str()),
            )
        });
        if !readable {
            params.remove("from");
            params.remove("mount");
        }
    }
    let (body, read) = body::track(body);
    let replicated = headers
        .get(REPLICATION_SOURCE_HEADER)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let work = dispatch(&api, &caller, ep, &params, &headers, body);
    let resp = match replicated {
        // Sent by another registry's replication (issue 9): its pushes cause no
        // replication here (no chaining, as ECR).
        Some(source) => berth_registry::REPLICATED_FROM.scope(source, work).await,
        None => work.await,
    }
    .unwrap_or_else(|e| e.into_response());
    finish(body::close_unless_read(resp, &read), label)
}

/// The answer to a request that is not an endpoint, with its metrics label.
fn route_error(e: RouteError, method: &Method, path: &str) -> (&'static str, Response) {
    match e {
        RouteError::NotFound => (
            "unknown",
            // spec § Error Codes: a JSON error's code "MUST be one of" code-1…code-14;
            // none names a missing route, UNSUPPORTED ("the operation is unsupported") is
            // the closest.
            OciError::new(ErrorCode::Unsupported, format!("no endpoint at {path}"))
                .with_status(StatusCode::NOT_FOUND)
                .into_response(),
        ),
        RouteError::MethodNotAllowed(res) => {
            let mut resp = OciError::method_not_allowed(method, res.label()).into_response();
            resp.headers_mut()
                .insert(header::ALLOW, HeaderValue::from_static(res.allow()));
            (res.label(), resp)
        }
        RouteError::ManifestUnknown(tag) => (
            "manifest",
            OciError::new(
                ErrorCode::ManifestUnknown,
                format!(
                    "manifest unknown: {tag:?} is not a valid tag \
                     ([a-zA-Z0-9_][a-zA-Z0-9._-]{{0,127}}) nor a digest"
                ),
            )
            .into_response(),
        ),
        RouteError::Invalid(e) => (
            "invalid",
            OciError::from(berth_registry::RegistryError::from(e)).into_response(),
        ),
    }
}

fn finish(mut resp: Response, label: &'static str) -> Response {
    resp.headers_mut().insert(
        "docker-distribution-api-version",
        HeaderValue::from_static("registry/2.0"),
    );
    resp.extensions_mut().insert(RouteLabel(label));
    resp
}

/// Authorises the request before anything touches data (DESIGN.md invariant 6), with the
/// one action [`Endpoint::action`] names. `/v2/` needs only authentication (an anonymous
/// caller is challenged unless anonymous access is on, so clients send their
/// credentials); the catalog is filtered per repository in [`catalog`]; a push into a
/// repository that does not exist yet also needs `ecr:CreateRepository`.
async fn authorize(
    api: &Api,
    caller: &Caller,
    ep: &Endpoint,
    headers: &HeaderMap,
) -> Result<(), Response> {
    let Some(action) = ep.action() else {
        if !caller.is_anonymous() {
            api.iam.record_authentication(caller).await;
        }
        if caller.is_anonymous() && !api.iam.allow_anonymous() {
            return Err(auth::unauthorized(
                headers,
                "authentication required: log in with an access key, or with AWS and the \
                 password from `aws ecr get-login-password` / `berth login`"
                    .into(),
            ));
        }
        return Ok(());
    };
    let Some(repo) = ep.repository() else {
        // The catalog: filtered per repository; anonymous callers must log in unless
        // anonymous access is on.
        if !caller.is_anonymous() {
            api.iam.record_authentication(caller).await;
        }
        if caller.is_anonymous() && !api.iam.allow_anonymous() {
            return Err(auth::unauthorized(
                headers,
                "authentication required to list repositories".into(),
            ));
        }
        return Ok(());
    };
    let arn = api.iam.repository_arn(repo.as_str());
    // A copy sent by another registry's replication (issue 9): its checks and pushes are
    // authorised as ECR authorises replication, with `ecr:ReplicateImage` (and
    // `ecr:CreateRepository` below for a new repository) — which a cross-account source
    // gets from this registry's policy — instead of the per-operation actions.
    let replicating = headers.contains_key(REPLICATION_SOURCE_HEADER)
        && matches!(
            ep,
            Endpoint::HeadBlob(..)
                | Endpoint::HeadManifest(..)
                | Endpoint::PutManifest(..)
                | Endpoint::StartUpload(_)
                | Endpoint::GetUploadStatus(..)
                | Endpoint::PatchUpload(..)
                | Endpoint::PutUpload(..)
                | Endpoint::CancelUpload(..)
        );
    let action = if replicating {
        berth_iam::EcrPermission::ReplicateImage.into()
    } else {
        action
    };
    api.iam
        .authorize(caller, action, &arn)
        .await
        .map_err(|d| auth::denied(headers, d))?;
    if ep.pushes() && api.reg.config().create_on_push && api.reg.repository(repo).await.is_err() {
        api.iam
            .authorize(caller, EcrAction::CreateRepository.into(), &arn)
            .await
            .map_err(|d| auth::denied(headers, d))?;
    }
    Ok(())
}

type Res = Result<Response, OciError>;

/// Answers an endpoint: the same enum [`Endpoint::action`] authorised, one arm each.
async fn dispatch(
    api: &Api,
    caller: &Caller,
    ep: Endpoint,
    params: &Params,
    headers: &HeaderMap,
    body: Body,
) -> Res {
    use Endpoint as E;
    let reg = &api.reg;
    match ep {
        E::Base => Ok(json(StatusCode::OK, serde_json::json!({}))),
        E::Catalog => catalog(api, caller, params).await,
        E::ListTags(n) => tags(reg, &n, params).await,
        E::GetManifest(n, r) => get_manifest(reg, &n, &r, headers, false).await,
        E::HeadManifest(n, r) => get_manifest(reg, &n, &r, headers, true).await,
        E::PutManifest(n, r) => put_manifest(reg, &n, &r, headers, body).await,
        E::DeleteManifest(n, r) => {
            reg.delete_manifest(&n, &r).await?;
            Ok(StatusCode::ACCEPTED.into_response())
        }
        E::GetBlob(n, d) => get_blob(reg, &n, &d, headers, false).await,
        E::HeadBlob(n, d) => get_blob(reg, &n, &d, headers, true).await,
        E::DeleteBlob(n, d) => {
            reg.delete_blob(&n, &d).await?;
            Ok(StatusCode::ACCEPTED.into_response())
        }
        E::StartUpload(n) => start_upload(reg, &n, params, body).await,
        E::GetUploadStatus(n, id) => {
            let st = reg.upload_status(&n, &id).await?;
            Ok(upload_response(StatusCode::NO_CONTENT, &n, &id, st.size))
        }
        E::PatchUpload(n, id) => patch_upload(reg, &n, &id, headers, body).await,
        E::PutUpload(n, id) => put_upload(reg, &n, &id, params, body).await,
        E::CancelUpload(n, id) => {
            reg.cancel_upload(&n, &id).await?;
            Ok(StatusCode::NO_CONTENT.into_response())
        }
        E::Referrers(n, d) => referrers(reg, &n, &d, params).await,
    }
}

fn json(status: StatusCode, v: serde_json::Value) -> Response {
    (status, axum::Json(v)).into_response()
}

fn hv(s: &str) -> HeaderValue {
    HeaderValue::from_str(s).unwrap_or_else(|_| HeaderValue::from_static(""))
}

/// Fetch limit for a page of `n`: one extra item tells whether another page exists.
fn fetch_limit(n: Option<u32>) -> u32 {
    n.map_or(u32::MAX, |n| n.saturating_add(1))
}

/// Cuts `items` (fetched with [`fetch_limit`]) to `n` and adds
/// `Link: <path?n=N&last=LAST>; rel="next"` only when more items follow.
fn paginate(
    path: &str,
    n: Option<u32>,
    mut items: Vec<String>,
) -> (Vec<String>, Option<HeaderValue>) {
    let Some(n) = n else { return (items, None) };
    if items.len() as u64 <= n as u64 {
        return (items, None);
    }
    items.truncate(n as usize);
    let link = items
        .last()
        .map(|last| hv(&query::next_link(path, n, last)));
    (items, link)
}

fn listing(body: serde_json::Value, link: Option<HeaderValue>) -> Response {
    let mut resp = json(StatusCode::OK, body);
    if let Some(l) = link {
        resp.headers_mut().insert(header::LINK, l);
    }
    resp
}

/// The catalog, listing only repositories the caller may `ecr:DescribeRepositories`
/// (ECR's DescribeRepositories shows a caller only what policies let them see).
async fn catalog(api: &Api, caller: &Caller, params: &Params) -> Res {
    let query::Pagination { n, last } = query::pagination(params)?;
    let limit = n.map_or(usize::MAX, |n| n as usize);
    let page = api
        .reg
        .visible_repositories(last.as_deref(), limit, |name| {
            api.iam.is_allowed(
                caller,
                EcrAction::DescribeRepositories.into(),
                &api.iam.repository_arn(name.as_str()),
            )
        })
        .await?;
    let repos: Vec<String> = page
        .repositories
        .into_iter()
        .map(|r| r.name.to_string())
        .collect();
    let link = match (n, repos.last()) {
        (Some(n), Some(last)) if page.more => Some(hv(&query::next_link("/v2/_catalog", n, last))),
        _ => None,
    };
    Ok(listing(serde_json::json!({ "repositories": repos }), link))
}

async fn tags(reg: &Registry, name: &RepositoryName, params: &Params) -> Res {
    let query::Pagination { n, last } = query::pagination(params)?;
    let tags = reg.list_tags(name, last.as_deref(), fetch_limit(n)).await?;
    let (tags, link) = paginate(&format!("/v2/{name}/tags/list"), n, tags);
    Ok(listing(
        serde_json::json!({ "name": name.as_str(), "tags": tags }),
        link,
    ))
}

/// Whether an `Accept` header admits `mt`. No header, or one naming no manifest type at
/// all (`*/*`, `application/json`), admits everything.
fn accepts(headers: &HeaderMap, mt: &str) -> bool {
    let mut named_manifest_type = false;
    for v in headers.get_all(header::ACCEPT) {
        for item in v.to_str().unwrap_or("").split(',') {
            let t = item.split(';').next().unwrap_or("").trim();
            if t == mt || t == "*/*" {
                return true;
            }
            named_manifest_type |= media_type::is_manifest(t);
        }
    }
    !named_manifest_type
}

async fn get_manifest(
    reg: &Registry,
    name: &RepositoryName,
    r: &Reference,
    headers: &HeaderMap,
    head: bool,
) -> Res {
    let (digest, mt, size, body) = if head {
        let h = reg.head_manifest(name, r).await?;
        (h.digest, h.media_type, h.size, Bytes::new())
    } else {
        let m = reg.get_manifest(name, r).await?;
        // Remediation: an image with blocking findings is not served (issue 11).
        reg.check_pull(name, &m.digest).await?;
        let size = m.body.len() as u64;
        (m.digest.clone(), m.media_type.clone(), size, m.body.clone())
    };
    // A tag resolved to a type the client cannot read: say so rather than send it
    // (as distribution does). Pulls by digest always answer.
    if matches!(r, Reference::Tag(_)) && !accepts(headers, &mt) {
        return Err(OciError::new(
            ErrorCode::ManifestUnknown,
            format!("manifest {r} is a {mt}, which the request's Accept header does not include"),
        ));
    }
    metrics::counter!("berth_bytes_sent_total").increment(body.len() as u64);
    let mut resp = Response::new(if head {
        Body::empty()
    } else {
        Body::from(body)
    });
    let h = resp.headers_mut();
    h.insert(header::CONTENT_TYPE, hv(&mt));
    h.insert(header::CONTENT_LENGTH, HeaderValue::from(size));
    h.insert("docker-content-digest", hv(&digest.to_string()));
    h.insert(header::ETAG, hv(&format!("\"{digest}\"")));
    Ok(resp)
}

async fn put_manifest(
    reg: &Registry,
    name: &RepositoryName,
    r: &Reference,
    headers: &HeaderMap,
    body: Body,
) -> Res {
    let ct = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let bytes = match http_body_util::Limited::new(body, MAX_MANIFEST_BYTES)
        .collect()
        .await
    {
        Ok(c) => c.to_bytes(),
        Err(e) if e.is::<http_body_util::LengthLimitError>() => {
            return Err(
                OciError::new(ErrorCode::SizeInvalid, "manifest exceeds the 4 MiB limit")
                    .with_status(StatusCode::PAYLOAD_TOO_LARGE),
            )
        }
        Err(e) => return Err(berth_registry::RegistryError::Body(e.to_string()).into()),
    };
    metrics::counter!("berth_bytes_received_total").increment(bytes.len() as u64);
    let put = reg.put_manifest(name, r, ct, bytes).await?;
    let mut resp = StatusCode::CREATED.into_response();
    let h = resp.headers_mut();
    h.insert(
        header::LOCATION,
        hv(&format!("/v2/{name}/manifests/{}", put.digest)),
    );
    h.insert("docker-content-digest", hv(&put.digest.to_string()));
    if let Some(s) = put.subject {
        h.insert("oci-subject", hv(&s.to_string()));
    }
    Ok(resp)
}

/// Streams `len` bytes of `file` from `start`, in [`READ_CHUNK`] reads on the blocking pool.
fn file_stream(
    file: std::fs::File,
    start: u64,
    len: u64,
) -> impl futures::Stream<Item = std::io::Result<Bytes>> + Send {
    use std::os::unix::fs::FileExt;
    let file = Arc::new(file);
    futures::stream::try_unfold((file, start, len), |(file, off, left)| async move {
        if left == 0 {
            return Ok(None);
        }
        let want = left.min(READ_CHUNK as u64) as usize;
        let f = file.clone();
        let buf = tokio::task::spawn_blocking(move || -> std::io::Result<Vec<u8>> {
            let mut buf = vec![0u8; want];
            let mut got = 0;
            while got < want {
                let n = f.read_at(&mut buf[got..], off + got as u64)?;
                if n == 0 {
                    return Err(std::io::Error::new(
                        std::io::ErrorKind::UnexpectedEof,
                        "blob shorter than recorded",
                    ));
                }
                got += n;
            }
            Ok(buf)
        })
        .await
        .map_err(std::io::Error::other)??;
        metrics::counter!("berth_bytes_sent_total").increment(want as u64);
        Ok(Some((
            Bytes::from(buf),
            (file, off + want as u64, left - want as u64),
        )))
    })
}

async fn get_blob(
    reg: &Registry,
    name: &RepositoryName,
    d: &Digest,
    headers: &HeaderMap,
    head: bool,
) -> Res {
    let blob_headers = |resp: &mut Response, len: u64| {
        let h = resp.headers_mut();
        h.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/octet-stream"),
        );
        h.insert(header::CONTENT_LENGTH, HeaderValue::from(len));
        h.insert("docker-content-digest", hv(&d.to_string()));
        h.insert(header::ACCEPT_RANGES, HeaderValue::from_static("bytes"));
        h.insert(header::ETAG, hv(&format!("\"{d}\"")));
        h.insert(
            header::CACHE_CONTROL,
            HeaderValue::from_static("max-age=31536000"),
        );
    };
    if head {
        let size = reg.blob_size(name, d).await?;
        let mut resp = Response::new(Body::empty());
        blob_headers(&mut resp, size);
        return Ok(resp);
    }
    let content = reg.open_blob(name, d).await?;
    let len = content.len();
    let range = match headers.get(header::RANGE).and_then(|v| v.to_str().ok()) {
        Some(v) => range::byte_range(v, len),
        None => Ok(None),
    };
    // An object store configured to presign downloads: send the client there (307, as
    // ECR and distribution do), Range header and all; S3 answers ranges itself.
    if let BlobContent::Object(o) = &content {
        if let (Some(url), Ok(_)) = (o.redirect(), &range) {
            let mut resp = StatusCode::TEMPORARY_REDIRECT.into_response();
            let h = resp.headers_mut();
            h.insert(header::LOCATION, hv(url));
            h.insert("docker-content-digest", hv(&d.to_string()));
            h.insert(header::CONTENT_LENGTH, HeaderValue::from(0));
            return Ok(resp);
        }
    }
    let body = |start: u64, n: u64| async move {
        match content {
            BlobContent::File { file, .. } => Ok(Body::from_stream(file_stream(file, start, n))),
            other => {
                let stream = other
                    .read(start..start + n)
                    .await
                    .map_err(|e| OciError::from(berth_registry::RegistryError::from(e)))?;
                Ok::<_, OciError>(Body::from_stream(stream.inspect_ok(|b| {
                    metrics::counter!("berth_bytes_sent_total").increment(b.len() as u64);
                })))
            }
        }
    };
    match range {
        Ok(None) => {
            let mut resp = Response::new(body(0, len).await?);
            blob_headers(&mut resp, len);
            Ok(resp)
        }
        Ok(Some((start, end))) => {
            let n = end - start + 1;
            let mut resp = Response::new(body(start, n).await?);
            *resp.status_mut() = StatusCode::PARTIAL_CONTENT;
            blob_headers(&mut resp, n);
            resp.headers_mut().insert(
                header::CONTENT_RANGE,
                hv(&format!("bytes {start}-{end}/{len}")),
            );
            Ok(resp)
        }
        Err(range::Unsatisfiable) => {
            let mut resp = OciError::new(
                ErrorCode::BlobUnknown,
                format!("requested range is not satisfiable for a blob of {len} bytes"),
            )
            .with_status(StatusCode::RANGE_NOT_SATISFIABLE)
            .into_response();
            resp.headers_mut()
                .insert(header::CONTENT_RANGE, hv(&format!("bytes */{len}")));
            Ok(resp)
        }
    }
}

/// Counts upload requests streaming right now (the `berth_uploads_in_progress` gauge).
struct InFlight;
impl InFlight {
    fn new() -> InFlight {
        metrics::gauge!("berth_uploads_in_progress").increment(1.0);
        InFlight
    }
}
impl Drop for InFlight {
    fn drop(&mut self) {
        metrics::gauge!("berth_uploads_in_progress").decrement(1.0);
    }
}

/// The request body as a [`ByteStream`], counting bytes received.
fn body_stream(body: Body) -> ByteStream {
    let guard = InFlight::new();
    body.into_data_stream()
        .map(move |r| {
            let _keep = &guard;
            r.inspect(|b| {
                metrics::counter!("berth_bytes_received_total").increment(b.len() as u64);
            })
            .map_err(|e| e.to_string())
        })
        .boxed()
}

fn upload_response(status: StatusCode, name: &RepositoryName, id: &str, size: u64) -> Response {
    let mut resp = status.into_response();
    let h = resp.headers_mut();
    h.insert(
        header::LOCATION,
        hv(&format!("/v2/{name}/blobs/uploads/{id}")),
    );
    h.insert(header::RANGE, hv(&range_header(size)));
    h.insert("docker-upload-uuid", hv(id));
    h.insert(header::CONTENT_LENGTH, HeaderValue::from(0));
    resp
}

fn blob_created(name: &RepositoryName, d: &Digest) -> Response {
    let mut resp = StatusCode::CREATED.into_response();
    let h = resp.headers_mut();
    h.insert(header::LOCATION, hv(&format!("/v2/{name}/blobs/{d}")));
    h.insert("docker-content-digest", hv(&d.to_string()));
    h.insert(header::CONTENT_LENGTH, HeaderValue::from(0));
    resp
}

fn digest_param(params: &Params) -> Result<Option<Digest>, OciError> {
    params
        .get("digest")
        .map(|d| {
            d.parse::<Digest>()
                .map_err(|e| berth_registry::RegistryError::DigestInvalid(e.to_string()).into())
        })
        .transpose()
}

async fn start_upload(reg: &Registry, name: &RepositoryName, params: &Params, body: Body) -> Res {
    // § Mounting a blob from another repository: 201 if mounted, else a normal upload.
    if let (Some(mount), Some(from)) = (params.get("mount"), params.get("from")) {
        let d: Digest = mount.parse().map_err(|e: berth_core::DigestError| {
            OciError::from(berth_registry::RegistryError::DigestInvalid(e.to_string()))
        })?;
        if let Ok(from) = RepositoryName::parse(from) {
            if reg.mount_blob(name, &from, &d).await?.is_some() {
                return Ok(blob_created(name, &d));
            }
        }
    } else if let Some(d) = digest_param(params)? {
        // § Single POST: the whole blob in this request.
        reg.upload_blob(name, &d, body_stream(body)).await?;
        return Ok(blob_created(name, &d));
    }
    let id = reg.start_upload(name).await?;
    Ok(upload_response(StatusCode::ACCEPTED, name, &id, 0))
}

/// The upload chunk's first byte from `Content-Range`, if the header is present
/// ([`range::content_range_start`]).
fn content_range_start(headers: &HeaderMap) -> Result<Option<u64>, OciError> {
    let Some(v) = headers.get(header::CONTENT_RANGE) else {
        return Ok(None);
    };
    v.to_str()
        .ok()
        .and_then(range::content_range_start)
        .map(Some)
        .ok_or_else(|| {
            OciError::new(
                ErrorCode::BlobUploadInvalid,
                "Content-Range must be <start>-<end>",
            )
        })
}

async fn patch_upload(
    reg: &Registry,
    name: &RepositoryName,
    id: &str,
    headers: &HeaderMap,
    body: Body,
) -> Res {
    let offset = content_range_start(headers)?;
    match reg.append_upload(name, id, offset, body_stream(body)).await {
        Ok(size) => Ok(upload_response(StatusCode::ACCEPTED, name, id, size)),
        Err(e) => {
            let mut resp = OciError::from(e).into_response();
            if resp.status() == StatusCode::RANGE_NOT_SATISFIABLE {
                resp.headers_mut().insert(
                    header::LOCATION,
                    hv(&format!("/v2/{name}/blobs/uploads/{id}")),
                );
            }
            Ok(resp)
        }
    }
}

async fn put_upload(
    reg: &Registry,
    name: &RepositoryName,
    id: &str,
    params: &Params,
    body: Body,
) -> Res {
    let d = digest_param(params)?.ok_or_else(|| {
        OciError::new(
            ErrorCode::DigestInvalid,
            "completing an upload needs ?digest=<digest>",
        )
    })?;
    reg.complete_upload(name, id, &d, Some(body_stream(body)))
        .await?;
    Ok(blob_created(name, &d))
}

async fn referrers(reg: &Registry, name: &RepositoryName, d: &Digest, params: &Params) -> Res {
    let filter = query::artifact_type(params);
    let list = reg.referrers(name, d, filter).await?;
    let manifests: Vec<serde_json::Value> = list
        .into_iter()
        .map(|r| {
            let mut v =
                serde_json::json!({"mediaType": r.media_type, "digest": r.digest, "size": r.size});
            if let Some(a) = r.artifact_type {
                v["artifactType"] = a.into();
            }
            if let Some(a) = r
                .annotations
                .and_then(|a| serde_json::from_str::<serde_json::Value>(&a).ok())
            {
                v["annotations"] = a;
            }
            v
        })
        .collect();
    let body = serde_json::json!({"schemaVersion": 2, "mediaType": media_type::OCI_INDEX, "manifests": manifests});
    let mut resp = json(StatusCode::OK, body);
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(media_type::OCI_INDEX),
    );
    if filter.is_some() {
        resp.headers_mut().insert(
            "oci-filters-applied",
            HeaderValue::from_static("artifactType"),
        );
    }
    Ok(resp)
}
