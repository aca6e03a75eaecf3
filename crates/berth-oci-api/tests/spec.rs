//! In-process conformance suite for the OCI Distribution Specification v1.1
//! (<https://github.com/opencontainers/distribution-spec/blob/main/spec.md>).
//!
//! Every test drives the whole app of `berth serve` (`berth::serve::app`, which routes
//! `/v2/` to [`berth_oci_api::router`]) with `tower::ServiceExt::oneshot` (no sockets)
//! over a fresh registry in a temporary directory (FsStore + SqliteMeta), set up by the
//! shared fixture `berth_test_support::Env`, and
//! names in its doc comment the section of `spec.md` it checks ("§ …"). Requests and
//! expectations are written as data through one helper, [`Reg::check`]:
//!
//! ```ignore
//! r.check(get("/v2/"), 200).await;
//! r.check(get("/v2/UPPER/tags/list"), (400, "NAME_INVALID")).await;
//! ```
//!
//! `check` also asserts what the spec requires of *every* answer: the
//! `Docker-Distribution-API-Version: registry/2.0` header (§ Legacy Docker support HTTP
//! headers) and, for errors, the `{"errors":[{"code","message","detail"}]}` body
//! (§ Error Codes).

use axum::body::Body;
use axum::http::{Method, Request, StatusCode};
use berth_registry::RegistryConfig;
use berth_test_support::{sha256, sha512, Env};
use bytes::Bytes;
use http_body_util::BodyExt;
use serde_json::{json, Value};

const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
const OCI_CONFIG: &str = "application/vnd.oci.image.config.v1+json";
const OCI_LAYER: &str = "application/vnd.oci.image.layer.v1.tar+gzip";
const OCI_EMPTY: &str = "application/vnd.oci.empty.v1+json";
const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
const DOCKER_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";
const DOCKER_CONFIG: &str = "application/vnd.docker.container.image.v1+json";
const DOCKER_LAYER: &str = "application/vnd.docker.image.rootfs.diff.tar.gzip";

/// § Error Codes: the only codes a JSON error body may carry (code-1 … code-14).
const SPEC_ERROR_CODES: [&str; 14] = [
    "BLOB_UNKNOWN",
    "BLOB_UPLOAD_INVALID",
    "BLOB_UPLOAD_UNKNOWN",
    "DIGEST_INVALID",
    "MANIFEST_BLOB_UNKNOWN",
    "MANIFEST_INVALID",
    "MANIFEST_UNKNOWN",
    "NAME_INVALID",
    "NAME_UNKNOWN",
    "SIZE_INVALID",
    "UNAUTHORIZED",
    "DENIED",
    "UNSUPPORTED",
    "TOOMANYREQUESTS",
];

// ---------------------------------------------------------------------------------------
// The harness
// ---------------------------------------------------------------------------------------

/// A registry over a temporary directory, and the whole app of `berth serve` over it
/// (the shared fixture of `berth-test-support`).
struct Reg {
    env: Env,
}

/// A request, built as data: `put(path).header(k, v).body(bytes)`.
struct Req {
    method: Method,
    uri: String,
    headers: Vec<(String, String)>,
    body: Bytes,
    /// When set, the body is sent as these frames instead of `body`.
    frames: Option<Vec<Result<Bytes, std::io::Error>>>,
}

fn req(method: Method, uri: impl Into<String>) -> Req {
    Req {
        method,
        uri: uri.into(),
        headers: Vec::new(),
        body: Bytes::new(),
        frames: None,
    }
}
fn get(uri: impl Into<String>) -> Req {
    req(Method::GET, uri)
}
fn head(uri: impl Into<String>) -> Req {
    req(Method::HEAD, uri)
}
fn put(uri: impl Into<String>) -> Req {
    req(Method::PUT, uri)
}
fn post(uri: impl Into<String>) -> Req {
    req(Method::POST, uri)
}
fn patch(uri: impl Into<String>) -> Req {
    req(Method::PATCH, uri)
}
fn delete(uri: impl Into<String>) -> Req {
    req(Method::DELETE, uri)
}

impl Req {
    fn header(mut self, k: &str, v: impl Into<String>) -> Req {
        self.headers.push((k.to_string(), v.into()));
        self
    }
    fn body(mut self, b: impl Into<Bytes>) -> Req {
        self.body = b.into();
        self
    }
    /// An `application/octet-stream` body with its `Content-Length` (blob uploads).
    fn octets(self, b: impl Into<Bytes>) -> Req {
        let b = b.into();
        self.header("content-type", "application/octet-stream")
            .header("content-length", b.len().to_string())
            .body(b)
    }
    /// A body sent frame by frame, as hyper delivers one off the wire.
    fn streaming(mut self, frames: Vec<Result<Bytes, std::io::Error>>) -> Req {
        self.frames = Some(frames);
        self
    }
    /// A manifest body of media type `mt`.
    fn manifest(self, mt: &str, b: impl Into<Bytes>) -> Req {
        self.header("content-type", mt).body(b)
    }
}

/// The expected status, and for errors optionally the expected first error code.
struct Want(u16, Option<&'static str>);
impl From<u16> for Want {
    fn from(s: u16) -> Want {
        Want(s, None)
    }
}
impl From<(u16, &'static str)> for Want {
    fn from((s, c): (u16, &'static str)) -> Want {
        Want(s, Some(c))
    }
}

/// A collected response.
struct Resp {
    what: String,
    status: StatusCode,
    headers: axum::http::HeaderMap,
    body: Bytes,
}

impl Resp {
    /// A header's value (`None` when absent).
    fn hdr(&self, name: &str) -> Option<&str> {
        self.headers
            .get(name)
            .map(|v| v.to_str().expect("ASCII header"))
    }
    /// Asserts `name: value`.
    fn has(&self, name: &str, value: &str) -> &Resp {
        assert_eq!(
            self.hdr(name),
            Some(value),
            "{}: header {name}; headers {:?}",
            self.what,
            self.headers
        );
        self
    }
    /// Asserts that `name` is absent.
    fn lacks(&self, name: &str) -> &Resp {
        assert_eq!(self.hdr(name), None, "{}: header {name}", self.what);
        self
    }
    /// Asserts the body.
    fn body_is(&self, want: &[u8]) -> &Resp {
        assert!(
            self.body == want,
            "{}: body differs ({} bytes, want {})",
            self.what,
            self.body.len(),
            want.len()
        );
        self
    }
    fn json(&self) -> Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("{}: body is not JSON ({e}): {:?}", self.what, self.body))
    }
    /// The first error of an error body.
    fn error(&self) -> Value {
        self.json()["errors"][0].clone()
    }
}

impl Reg {
    async fn new() -> Reg {
        Reg::with_config(RegistryConfig::default()).await
    }

    async fn with_config(cfg: RegistryConfig) -> Reg {
        Reg::build(cfg, true).await
    }

    /// A registry whose identity service admits no anonymous caller (for the order of
    /// routing and authentication).
    async fn authenticated() -> Reg {
        Reg::build(RegistryConfig::default(), false).await
    }

    async fn build(cfg: RegistryConfig, allow_anonymous: bool) -> Reg {
        // These tests are about the OCI API, not identity: anonymous callers may do
        // everything (auth is tested with real clients in crates/berth/tests/auth.rs),
        // except in the tests of routing before authentication.
        let env = Env::builder()
            .registry(cfg)
            .allow_anonymous(allow_anonymous)
            .build()
            .await;
        Reg { env }
    }

    /// Sends `r` and asserts the status (and error code) in `want`, the API version header
    /// on every answer, and the error body shape of every 4xx/5xx answer to a non-HEAD
    /// request. Returns the response for further checks.
    async fn check(&self, r: Req, want: impl Into<Want>) -> Resp {
        let Want(status, code) = want.into();
        let what = format!("{} {}", r.method, r.uri);
        let is_head = r.method == Method::HEAD;
        let mut b = Request::builder().method(r.method).uri(&r.uri);
        for (k, v) in &r.headers {
            b = b.header(k, v);
        }
        let resp = self
            .env
            .send(
                b.body(match r.frames {
                    Some(f) => Body::from_stream(futures::stream::iter(f)),
                    None => Body::from(r.body),
                })
                .unwrap(),
            )
            .await;
        let (parts, body) = resp.into_parts();
        let resp = Resp {
            what,
            status: parts.status,
            headers: parts.headers,
            body: body.collect().await.unwrap().to_bytes(),
        };
        assert_eq!(
            resp.status.as_u16(),
            status,
            "{}: status; body {}",
            resp.what,
            String::from_utf8_lossy(&resp.body)
        );
        resp.has("docker-distribution-api-version", "registry/2.0");
        if status >= 400 && !is_head {
            let errors = resp.json()["errors"].clone();
            let errors = errors
                .as_array()
                .unwrap_or_else(|| panic!("{}: no errors array", resp.what));
            assert!(!errors.is_empty(), "{}: empty errors array", resp.what);
            for e in errors {
                assert!(e["code"].is_string(), "{}: error without code", resp.what);
                if status < 500 {
                    // § Error Codes: "The `code` field MUST be one of the following".
                    // TAG_INVALID is the one exception, kept on purpose: it is the Docker
                    // Registry HTTP API v2 code that DESIGN.md requires for bad and
                    // immutable tags, and clients show it as is.
                    let c = e["code"].as_str().unwrap();
                    assert!(
                        SPEC_ERROR_CODES.contains(&c) || c == "TAG_INVALID",
                        "{}: {} is not a code of § Error Codes",
                        resp.what,
                        e["code"]
                    );
                }
                assert!(
                    e["message"].is_string(),
                    "{}: error without message",
                    resp.what
                );
            }
            if let Some(code) = code {
                assert_eq!(errors[0]["code"], code, "{}: error code", resp.what);
            }
        }
        resp
    }

    /// Pushes `data` to `repo` with a single POST (§ Single POST); returns its sha256 digest.
    async fn blob(&self, repo: &str, data: &[u8]) -> String {
        let d = sha256(data);
        self.check(
            post(format!("/v2/{repo}/blobs/uploads/?digest={d}")).octets(data.to_vec()),
            201,
        )
        .await;
        d
    }

    /// Pushes a config and a layer to `repo` and returns an OCI image manifest over them
    /// (pretty-printed, with a trailing newline, so byte-exactness is observable).
    async fn image(&self, repo: &str, seed: &str) -> Vec<u8> {
        let config = format!(r#"{{"architecture":"amd64","os":"linux","seed":"{seed}"}}"#);
        let layer = format!("layer of {seed}");
        let (c, l) = (
            self.blob(repo, config.as_bytes()).await,
            self.blob(repo, layer.as_bytes()).await,
        );
        manifest(json!({
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "config": {"mediaType": OCI_CONFIG, "digest": c, "size": config.len()},
            "layers": [{"mediaType": OCI_LAYER, "digest": l, "size": layer.len()}],
        }))
    }

    /// PUTs a manifest and asserts § Pushing Manifests' answer; returns its digest.
    async fn push(&self, repo: &str, reference: &str, mt: &str, body: &[u8]) -> String {
        let d = sha256(body);
        self.check(
            put(format!("/v2/{repo}/manifests/{reference}")).manifest(mt, body.to_vec()),
            201,
        )
        .await
        .has("location", &format!("/v2/{repo}/manifests/{d}"))
        .has("docker-content-digest", &d);
        d
    }

    /// Every committed blob the store holds (files, or S3 keys on the PostgreSQL + S3
    /// run), as the backend lists them.
    async fn stored_blobs(&self) -> Vec<String> {
        self.env.stored_blobs().await
    }
}

/// A manifest document as bytes: pretty JSON plus a newline.
fn manifest(v: Value) -> Vec<u8> {
    let mut b = serde_json::to_vec_pretty(&v).unwrap();
    b.push(b'\n');
    b
}

/// A descriptor of a manifest (for `subject` and index entries).
fn desc(mt: &str, body: &[u8]) -> Value {
    json!({"mediaType": mt, "digest": sha256(body), "size": body.len()})
}

/// The target of a `Link: <url>; rel="next"` header.
fn next_link(r: &Resp) -> Option<String> {
    let l = r.hdr("link")?;
    assert!(l.ends_with("rel=\"next\""), "{}: Link {l:?}", r.what);
    let start = l.find('<').expect("Link has <") + 1;
    let end = l.find('>').expect("Link has >");
    Some(l[start..end].to_string())
}

// ---------------------------------------------------------------------------------------
// § Determining Support, § Endpoints, § Error Codes
// ---------------------------------------------------------------------------------------

/// § Determining Support (end-1): `GET /v2/` answers 200; with the legacy
/// `Docker-Distribution-API-Version` header (asserted by `check` on every answer).
#[tokio::test]
async fn determining_support_end_1() {
    let r = Reg::new().await;
    r.check(get("/v2/"), 200).await;
    r.check(get("/v2"), 200).await;
    r.check(head("/v2/"), 200).await;
}

/// § Endpoints: a path that is no endpoint of the table is 404 (and still carries the
/// API version header and an error body, whose code § Error Codes restricts to its list:
/// `UNSUPPORTED`).
#[tokio::test]
async fn unknown_endpoint_is_404() {
    let r = Reg::new().await;
    r.check(get("/v2/team/app/unknown"), (404, "UNSUPPORTED"))
        .await;
    r.check(get("/v2/team/app"), (404, "UNSUPPORTED")).await;
}

/// § Pulling manifests (the `<name>` grammar) and § Error Codes `NAME_INVALID`.
#[tokio::test]
async fn invalid_name_is_400_name_invalid() {
    let r = Reg::new().await;
    for path in [
        "/v2/UPPER/tags/list",
        "/v2/team//app/manifests/latest",
        "/v2/-app/blobs/uploads/",
        "/v2/a..b/manifests/latest",
    ] {
        let m = if path.ends_with("uploads/") {
            post(path)
        } else {
            get(path)
        };
        r.check(m, (400, "NAME_INVALID")).await;
    }
}

/// § Error Codes `UNSUPPORTED`: a method an endpoint does not take is 405, with the
/// methods it does take in `Allow` (RFC 9110 § 15.5.6).
#[tokio::test]
async fn method_not_allowed_is_405_unsupported() {
    let r = Reg::new().await;
    for (q, allow) in [
        (post("/v2/app/tags/list"), "GET"),
        (patch("/v2/app/manifests/latest"), "GET, HEAD, PUT, DELETE"),
        (delete("/v2/_catalog"), "GET"),
        (
            put(format!("/v2/app/blobs/{}", sha256(b"x"))),
            "GET, HEAD, DELETE",
        ),
        (get("/v2/app/blobs/uploads/"), "POST"),
        (
            post("/v2/app/blobs/uploads/some-id"),
            "GET, PATCH, PUT, DELETE",
        ),
    ] {
        r.check(q, (405, "UNSUPPORTED")).await.has("allow", allow);
    }
}

/// Regression (issue 16): `PATCH` of a blob was authorised as
/// `ecr:GetDownloadUrlForLayer` and only then answered 405, so a caller was told to log
/// in, or refused an action the request never needed. The method is part of the parsed
/// endpoint now: 405 comes before authentication, with or without credentials.
#[tokio::test]
async fn blob_patch_is_405_before_any_authorisation() {
    let r = Reg::authenticated().await;
    let d = sha256(b"x");
    for q in [
        patch(format!("/v2/app/blobs/{d}")).octets(b"abc".to_vec()),
        patch(format!("/v2/app/blobs/{d}")).header(
            "authorization",
            "Basic QUtJQVhYWFhYWFhYWFhYWFhYWFg6bm9wZQ==",
        ),
    ] {
        let resp = r.check(q, (405, "UNSUPPORTED")).await;
        resp.has("allow", "GET, HEAD, DELETE")
            .lacks("www-authenticate");
        let msg = resp.error()["message"].as_str().unwrap().to_string();
        assert!(!msg.contains("GetDownloadUrlForLayer"), "{msg}");
    }
    // The same path with a method it takes still asks for credentials.
    r.check(get(format!("/v2/app/blobs/{d}")), (401, "UNAUTHORIZED"))
        .await;
}

// ---------------------------------------------------------------------------------------
// § Pushing blobs, § Pulling blobs, § Checking if content exists
// ---------------------------------------------------------------------------------------

/// § Pushing a blob monolithically, POST then PUT (end-4a, end-6): 202 + Location, then
/// 201 + Location of the blob + Docker-Content-Digest; § Pulling blobs (end-2) returns it.
#[tokio::test]
async fn blob_post_then_put() {
    let r = Reg::new().await;
    let data = b"hello, monolithic world".to_vec();
    let d = sha256(&data);
    let resp = r.check(post("/v2/team/app/blobs/uploads/"), 202).await;
    let loc = resp.hdr("location").unwrap().to_string();
    assert!(loc.starts_with("/v2/team/app/blobs/uploads/"), "{loc}");
    r.check(put(format!("{loc}?digest={d}")).octets(data.clone()), 201)
        .await
        .has("location", &format!("/v2/team/app/blobs/{d}"))
        .has("docker-content-digest", &d);
    r.check(get(format!("/v2/team/app/blobs/{d}")), 200)
        .await
        .has("docker-content-digest", &d)
        .has("content-length", &data.len().to_string())
        .body_is(&data);
    // The session is closed once the blob is committed.
    r.check(get(&loc), (404, "BLOB_UPLOAD_UNKNOWN")).await;
}

/// § Single POST (end-4b): `POST ?digest=` with the whole blob is 201 + Location; an empty
/// blob is a blob like any other.
#[tokio::test]
async fn blob_single_post() {
    let r = Reg::new().await;
    for data in [b"single post".to_vec(), Vec::new()] {
        let d = sha256(&data);
        r.check(
            post(format!("/v2/app/blobs/uploads/?digest={d}")).octets(data.clone()),
            201,
        )
        .await
        .has("location", &format!("/v2/app/blobs/{d}"))
        .has("docker-content-digest", &d);
        r.check(get(format!("/v2/app/blobs/{d}")), 200)
            .await
            .has("content-length", &data.len().to_string())
            .body_is(&data);
    }
}

/// § Pushing a blob in chunks (end-5, end-13, end-6): each PATCH with `Content-Range` is
/// 202 with Location and `Range: 0-<end>`; the status GET is 204 with the same; the last
/// chunk may ride on the closing PUT.
#[tokio::test]
async fn blob_chunked_with_content_range() {
    let r = Reg::new().await;
    let data = b"0123456789abcdefghij".to_vec();
    let d = sha256(&data);
    let loc = r
        .check(
            post("/v2/app/blobs/uploads/").header("content-length", "0"),
            202,
        )
        .await
        .hdr("location")
        .unwrap()
        .to_string();
    let loc = r
        .check(
            patch(&loc)
                .header("content-range", "0-4")
                .octets(data[0..5].to_vec()),
            202,
        )
        .await
        .has("location", &loc)
        .has("range", "0-4")
        .hdr("location")
        .unwrap()
        .to_string();
    r.check(
        patch(&loc)
            .header("content-range", "5-11")
            .octets(data[5..12].to_vec()),
        202,
    )
    .await
    .has("range", "0-11");
    r.check(get(&loc), 204)
        .await
        .has("location", &loc)
        .has("range", "0-11");
    r.check(
        put(format!("{loc}?digest={d}"))
            .header("content-range", "12-19")
            .octets(data[12..].to_vec()),
        201,
    )
    .await
    .has("location", &format!("/v2/app/blobs/{d}"))
    .has("docker-content-digest", &d);
    r.check(get(format!("/v2/app/blobs/{d}")), 200)
        .await
        .body_is(&data);
}

/// § Pushing a blob in chunks: PATCH without `Content-Range` appends at the end
/// (streamed upload, as docker and containerd send it); a zero-length closing PUT.
#[tokio::test]
async fn blob_chunked_without_content_range() {
    let r = Reg::new().await;
    let data = b"streamed in three pieces".to_vec();
    let d = sha256(&data);
    let loc = r
        .check(post("/v2/app/blobs/uploads/"), 202)
        .await
        .hdr("location")
        .unwrap()
        .to_string();
    let mut end = 0;
    for piece in data.chunks(9) {
        end += piece.len();
        r.check(patch(&loc).octets(piece.to_vec()), 202)
            .await
            .has("range", &format!("0-{}", end - 1));
    }
    r.check(put(format!("{loc}?digest={d}")), 201).await;
    r.check(head(format!("/v2/app/blobs/{d}")), 200)
        .await
        .has("content-length", &data.len().to_string());
}

/// § Pushing a blob in chunks, with bodies as they arrive off the wire: many small,
/// uneven frames (more than the store's write buffer), in PATCH and in the closing PUT;
/// and a body that fails mid-stream keeps what arrived (the upload can be resumed from
/// the `Range` the status GET reports).
#[tokio::test]
async fn blob_streamed_in_many_frames_and_resumed() {
    let r = Reg::new().await;
    let data: Vec<u8> = (0..2_600_000u32).map(|i| (i * 7 + i / 251) as u8).collect();
    let frames = |part: &[u8]| -> Vec<Result<Bytes, std::io::Error>> {
        let mut out = Vec::new();
        let mut rest = part;
        let mut n = 1usize;
        while !rest.is_empty() {
            let take = rest.len().min(1 + (n * 4099) % 9001);
            out.push(Ok(Bytes::copy_from_slice(&rest[..take])));
            rest = &rest[take..];
            n += 1;
        }
        out
    };
    let stream_req = |r: Req, frames: Vec<Result<Bytes, std::io::Error>>| {
        r.header("content-type", "application/octet-stream")
            .streaming(frames)
    };
    for d in [sha256(&data), sha512(&data)] {
        let loc = r
            .check(post("/v2/app/blobs/uploads/"), 202)
            .await
            .hdr("location")
            .unwrap()
            .to_string();
        // First PATCH: 1,000,000 bytes, then the body fails.
        let mut f = frames(&data[..1_000_000]);
        f.push(Err(std::io::Error::other("client went away")));
        r.check(stream_req(patch(&loc), f), 400).await;
        r.check(get(&loc), 204).await.has("range", "0-999999");
        // Resume with the rest, in two requests.
        r.check(
            stream_req(
                patch(&loc).header("content-range", "1000000-1999999"),
                frames(&data[1_000_000..2_000_000]),
            ),
            202,
        )
        .await
        .has("range", "0-1999999");
        r.check(
            stream_req(put(format!("{loc}?digest={d}")), frames(&data[2_000_000..])),
            201,
        )
        .await
        .has("docker-content-digest", &d);
        r.check(get(format!("/v2/app/blobs/{d}")), 200)
            .await
            .has("content-length", &data.len().to_string())
            .body_is(&data);
    }
}

/// § Pushing a blob in chunks: "If a chunk is uploaded out of order, the registry MUST
/// respond with a 416"; the answer carries the current `Range` and Location, and the
/// session survives so the client can resume from there.
#[tokio::test]
async fn out_of_order_chunk_is_416_with_current_range() {
    let r = Reg::new().await;
    let data = b"abcdefghij".to_vec();
    let loc = r
        .check(post("/v2/app/blobs/uploads/"), 202)
        .await
        .hdr("location")
        .unwrap()
        .to_string();
    r.check(
        patch(&loc)
            .header("content-range", "0-4")
            .octets(data[..5].to_vec()),
        202,
    )
    .await;
    // A gap, a replay of the start, and an overlap are all out of order.
    for cr in ["7-9", "0-4", "3-7"] {
        r.check(
            patch(&loc)
                .header("content-range", cr)
                .octets(b"xyz".to_vec()),
            (416, "BLOB_UPLOAD_INVALID"),
        )
        .await
        .has("range", "0-4")
        .has("location", &loc);
    }
    r.check(get(&loc), 204).await.has("range", "0-4");
    r.check(
        patch(&loc)
            .header("content-range", "5-9")
            .octets(data[5..].to_vec()),
        202,
    )
    .await
    .has("range", "0-9");
    r.check(put(format!("{loc}?digest={}", sha256(&data))), 201)
        .await;
}

/// § Pushing a blob in chunks (end-13): the status of a fresh session is 204 with
/// Location and a `Range` header.
#[tokio::test]
async fn upload_status_is_204_with_range() {
    let r = Reg::new().await;
    let loc = r
        .check(post("/v2/app/blobs/uploads/"), 202)
        .await
        .hdr("location")
        .unwrap()
        .to_string();
    let resp = r.check(get(&loc), 204).await;
    resp.has("location", &loc);
    assert!(resp.hdr("range").is_some(), "no Range on upload status");
    assert!(resp.body.is_empty());
    // A session belongs to the repository that started it.
    let id = loc.rsplit('/').next().unwrap();
    r.check(
        get(format!("/v2/other/blobs/uploads/{id}")),
        (404, "BLOB_UPLOAD_UNKNOWN"),
    )
    .await;
}

/// § Cancel a blob upload (end-14): DELETE is 204; afterwards the session is unknown
/// (§ Error Codes `BLOB_UPLOAD_UNKNOWN`) to GET, PATCH, PUT and DELETE.
#[tokio::test]
async fn cancelled_upload_is_blob_upload_unknown() {
    let r = Reg::new().await;
    let loc = r
        .check(post("/v2/app/blobs/uploads/"), 202)
        .await
        .hdr("location")
        .unwrap()
        .to_string();
    r.check(patch(&loc).octets(b"partial".to_vec()), 202).await;
    r.check(delete(&loc), 204).await;
    r.check(get(&loc), (404, "BLOB_UPLOAD_UNKNOWN")).await;
    r.check(
        patch(&loc).octets(b"more".to_vec()),
        (404, "BLOB_UPLOAD_UNKNOWN"),
    )
    .await;
    r.check(
        put(format!("{loc}?digest={}", sha256(b"partial"))),
        (404, "BLOB_UPLOAD_UNKNOWN"),
    )
    .await;
    r.check(delete(&loc), (404, "BLOB_UPLOAD_UNKNOWN")).await;
    assert!(r.stored_blobs().await.is_empty());
}

/// § Single POST and § POST then PUT: "the `<digest>` MUST match the blob's digest";
/// a mismatch is 400 `DIGEST_INVALID` and stores nothing (DESIGN.md invariant 1).
#[tokio::test]
async fn wrong_digest_is_digest_invalid_and_nothing_is_stored() {
    let r = Reg::new().await;
    let data = b"the real content".to_vec();
    let claimed = sha256(b"something else");
    r.check(
        post(format!("/v2/app/blobs/uploads/?digest={claimed}")).octets(data.clone()),
        (400, "DIGEST_INVALID"),
    )
    .await;
    let loc = r
        .check(post("/v2/app/blobs/uploads/"), 202)
        .await
        .hdr("location")
        .unwrap()
        .to_string();
    r.check(
        put(format!("{loc}?digest={claimed}")).octets(data.clone()),
        (400, "DIGEST_INVALID"),
    )
    .await;
    for d in [claimed, sha256(&data)] {
        r.check(head(format!("/v2/app/blobs/{d}")), 404).await;
        r.check(get(format!("/v2/app/blobs/{d}")), (404, "BLOB_UNKNOWN"))
            .await;
    }
    let stored = r.stored_blobs().await;
    assert!(stored.is_empty(), "{stored:?}");
    // A malformed digest is DIGEST_INVALID too, in the query and in the path.
    r.check(
        post("/v2/app/blobs/uploads/?digest=sha256:nothex").octets(data.clone()),
        (400, "DIGEST_INVALID"),
    )
    .await;
    r.check(get("/v2/app/blobs/sha256:abc"), (400, "DIGEST_INVALID"))
        .await;
    r.check(
        get(format!("/v2/app/blobs/md5:{}", "0".repeat(32))),
        (400, "DIGEST_INVALID"),
    )
    .await;
    // Completing an upload needs a digest.
    r.check(put(&loc), (400, "DIGEST_INVALID")).await;
}

/// § Pushing blobs with the other registered algorithm (image-spec descriptor.md
/// § Registered algorithms: sha512): single POST, chunked, and a manifest PUT by a sha512
/// digest (§ Pushing Manifests: Docker-Content-Digest MUST equal the client's digest).
#[tokio::test]
async fn sha512_digests() {
    let r = Reg::new().await;
    let data = b"sha512 content".to_vec();
    let d = sha512(&data);
    assert!(d.starts_with("sha512:") && d.len() == 7 + 128);
    r.check(
        post(format!("/v2/app/blobs/uploads/?digest={d}")).octets(data.clone()),
        201,
    )
    .await
    .has("docker-content-digest", &d);
    r.check(get(format!("/v2/app/blobs/{d}")), 200)
        .await
        .has("docker-content-digest", &d)
        .body_is(&data);

    let chunked = b"chunked sha512 content".to_vec();
    let d2 = sha512(&chunked);
    let loc = r
        .check(post("/v2/app/blobs/uploads/"), 202)
        .await
        .hdr("location")
        .unwrap()
        .to_string();
    r.check(
        patch(&loc)
            .header("content-range", "0-6")
            .octets(chunked[..7].to_vec()),
        202,
    )
    .await;
    r.check(
        put(format!("{loc}?digest={d2}")).octets(chunked[7..].to_vec()),
        201,
    )
    .await
    .has("docker-content-digest", &d2);
    r.check(head(format!("/v2/app/blobs/{d2}")), 200)
        .await
        .has("content-length", &chunked.len().to_string());

    let body = manifest(json!({
        "schemaVersion": 2, "mediaType": OCI_MANIFEST,
        "config": {"mediaType": OCI_CONFIG, "digest": d, "size": data.len()},
        "layers": [{"mediaType": OCI_LAYER, "digest": d2, "size": chunked.len()}],
    }));
    let md = sha512(&body);
    r.check(
        put(format!("/v2/app/manifests/{md}")).manifest(OCI_MANIFEST, body.clone()),
        201,
    )
    .await
    .has("docker-content-digest", &md)
    .has("location", &format!("/v2/app/manifests/{md}"));
    r.check(get(format!("/v2/app/manifests/{md}")), 200)
        .await
        .has("docker-content-digest", &md)
        .body_is(&body);
}

/// § Pulling blobs: "Range requests SHOULD be supported" (RFC 9110 § 14): a satisfiable
/// range is 206 with `Content-Range`, an unsatisfiable one 416 with `bytes */<len>`.
#[tokio::test]
async fn blob_range_requests() {
    let r = Reg::new().await;
    let data = b"0123456789".to_vec();
    let d = r.blob("app", &data).await;
    let url = format!("/v2/app/blobs/{d}");
    for (range, content_range, part) in [
        ("bytes=2-5", "bytes 2-5/10", &data[2..6]),
        ("bytes=7-", "bytes 7-9/10", &data[7..]),
        ("bytes=-3", "bytes 7-9/10", &data[7..]),
        ("bytes=5-100", "bytes 5-9/10", &data[5..]),
        ("bytes=0-0", "bytes 0-0/10", &data[..1]),
    ] {
        r.check(get(&url).header("range", range), 206)
            .await
            .has("content-range", content_range)
            .has("content-length", &part.len().to_string())
            .has("docker-content-digest", &d)
            .body_is(part);
    }
    for range in ["bytes=10-", "bytes=100-200", "bytes=-0"] {
        r.check(get(&url).header("range", range), 416)
            .await
            .has("content-range", "bytes */10");
    }
    // RFC 9110 § 14.2: an invalid range (last < first, not numbers) is ignored: 200, whole blob.
    for range in ["bytes=5-2", "bytes=x-y", "items=0-1"] {
        r.check(get(&url).header("range", range), 200)
            .await
            .lacks("content-range")
            .body_is(&data);
    }
}

/// § Checking if content exists in the registry (end-2 HEAD): 200 with Content-Length
/// and Docker-Content-Digest, and no body; 404 for a blob that is not there.
#[tokio::test]
async fn blob_head_has_length_and_no_body() {
    let r = Reg::new().await;
    let data = vec![7u8; 100_000];
    let d = r.blob("app", &data).await;
    let resp = r.check(head(format!("/v2/app/blobs/{d}")), 200).await;
    resp.has("content-length", "100000")
        .has("docker-content-digest", &d);
    assert!(resp.body.is_empty(), "HEAD answered with a body");
    r.check(head(format!("/v2/app/blobs/{}", sha256(b"absent"))), 404)
        .await;
}

/// § Mounting a blob from another repository (end-11): a blob is served only by the
/// repositories it was pushed or mounted into (`BLOB_UNKNOWN` elsewhere); a mount is
/// 201 + Location + Docker-Content-Digest.
#[tokio::test]
async fn blob_is_scoped_to_its_repository_until_mounted() {
    let r = Reg::new().await;
    let d = r.blob("team/src", b"shared layer").await;
    r.check(
        get(format!("/v2/team/dst/blobs/{d}")),
        (404, "BLOB_UNKNOWN"),
    )
    .await;
    r.check(head(format!("/v2/team/dst/blobs/{d}")), 404).await;
    r.check(
        post(format!(
            "/v2/team/dst/blobs/uploads/?mount={d}&from=team/src"
        )),
        201,
    )
    .await
    .has("location", &format!("/v2/team/dst/blobs/{d}"))
    .has("docker-content-digest", &d);
    r.check(get(format!("/v2/team/dst/blobs/{d}")), 200)
        .await
        .body_is(b"shared layer");
    // § Deleting Blobs is per repository: unlinking it from the source leaves the mount.
    r.check(delete(format!("/v2/team/src/blobs/{d}")), 202)
        .await;
    r.check(
        get(format!("/v2/team/src/blobs/{d}")),
        (404, "BLOB_UNKNOWN"),
    )
    .await;
    r.check(get(format!("/v2/team/dst/blobs/{d}")), 200)
        .await
        .body_is(b"shared layer");
}

/// § Mounting a blob from another repository: "if a registry … is unable to mount the
/// requested blob, it SHOULD return a 202" — an upload session the client can use.
#[tokio::test]
async fn mount_from_repository_lacking_the_blob_starts_an_upload() {
    let r = Reg::new().await;
    let data = b"not in src".to_vec();
    let d = sha256(&data);
    r.blob("src", b"something else").await;
    for from in ["does/not/exist", "INVALID", "src"] {
        let resp = r
            .check(
                post(format!("/v2/dst/blobs/uploads/?mount={d}&from={from}")),
                202,
            )
            .await;
        let loc = resp.hdr("location").unwrap().to_string();
        assert!(loc.starts_with("/v2/dst/blobs/uploads/"), "{loc}");
        r.check(get(format!("/v2/dst/blobs/{d}")), (404, "BLOB_UNKNOWN"))
            .await;
        if from == "src" {
            r.check(put(format!("{loc}?digest={d}")).octets(data.clone()), 201)
                .await;
        }
    }
    r.check(get(format!("/v2/dst/blobs/{d}")), 200)
        .await
        .body_is(&data);
}

/// § Deleting Blobs (end-10): 202, then the blob is unknown (404 `BLOB_UNKNOWN`), and a
/// second delete is 404.
#[tokio::test]
async fn delete_blob_is_202_then_404() {
    let r = Reg::new().await;
    let d = r.blob("app", b"to be deleted").await;
    r.check(delete(format!("/v2/app/blobs/{d}")), 202).await;
    r.check(get(format!("/v2/app/blobs/{d}")), (404, "BLOB_UNKNOWN"))
        .await;
    r.check(head(format!("/v2/app/blobs/{d}")), 404).await;
    r.check(delete(format!("/v2/app/blobs/{d}")), (404, "BLOB_UNKNOWN"))
        .await;
    // A manifest can no longer reference it (§ Push: MANIFEST_BLOB_UNKNOWN).
    let body = manifest(json!({
        "schemaVersion": 2, "mediaType": OCI_MANIFEST,
        "config": {"mediaType": OCI_CONFIG, "digest": d, "size": 13},
        "layers": [],
    }));
    r.check(
        put("/v2/app/manifests/v1").manifest(OCI_MANIFEST, body),
        (404, "MANIFEST_BLOB_UNKNOWN"),
    )
    .await;
}

// ---------------------------------------------------------------------------------------
// § Pushing Manifests, § Pulling manifests, § Content Management
// ---------------------------------------------------------------------------------------

/// § Pushing Manifests (end-7) by tag and by digest; § Pulling manifests (end-3): GET and
/// HEAD by tag and by digest answer the exact bytes stored, the stored Content-Type and
/// Docker-Content-Digest; a tag pushed again moves to the new manifest.
#[tokio::test]
async fn oci_manifest_by_tag_and_by_digest() {
    let r = Reg::new().await;
    let body = r.image("team/app", "one").await;
    let d = r.push("team/app", "v1", OCI_MANIFEST, &body).await;
    assert_eq!(r.push("team/app", &d, OCI_MANIFEST, &body).await, d);
    let accept = format!("{OCI_INDEX}, {OCI_MANIFEST}, {DOCKER_LIST}, {DOCKER_MANIFEST}");
    for reference in ["v1", d.as_str()] {
        let url = format!("/v2/team/app/manifests/{reference}");
        r.check(get(&url).header("accept", &accept), 200)
            .await
            .has("content-type", OCI_MANIFEST)
            .has("docker-content-digest", &d)
            .has("content-length", &body.len().to_string())
            .body_is(&body);
        let h = r.check(head(&url), 200).await;
        h.has("content-type", OCI_MANIFEST)
            .has("docker-content-digest", &d)
            .has("content-length", &body.len().to_string());
        assert!(h.body.is_empty(), "HEAD answered with a body");
    }
    // Content-Type parameters are ignored (§ Pushing Manifests: "The registry SHOULD
    // ignore parameters on the Content-Type header").
    let body2 = r.image("team/app", "two").await;
    let d2 = r
        .push(
            "team/app",
            "v1",
            &format!("{OCI_MANIFEST}; charset=utf-8"),
            &body2,
        )
        .await;
    r.check(get("/v2/team/app/manifests/v1"), 200)
        .await
        .has("docker-content-digest", &d2)
        .has("content-type", OCI_MANIFEST)
        .body_is(&body2);
    r.check(get(format!("/v2/team/app/manifests/{d}")), 200)
        .await
        .body_is(&body);
    // Tags are per repository: the same tag elsewhere names that repository's manifest.
    let there = r.image("team/other", "three").await;
    let d3 = r.push("team/other", "v1", OCI_MANIFEST, &there).await;
    r.check(get("/v2/team/other/manifests/v1"), 200)
        .await
        .has("docker-content-digest", &d3)
        .body_is(&there);
    r.check(get("/v2/team/app/manifests/v1"), 200)
        .await
        .has("docker-content-digest", &d2);
    r.check(
        get(format!("/v2/team/other/manifests/{d}")),
        (404, "MANIFEST_UNKNOWN"),
    )
    .await;
}

/// § Pushing Manifests: an OCI image index (image-spec image-index.md) whose children
/// are present is stored and served byte-exact with its media type.
#[tokio::test]
async fn oci_index_by_tag_and_by_digest() {
    let r = Reg::new().await;
    let amd = r.image("app", "amd64").await;
    let arm = r.image("app", "arm64").await;
    r.push("app", &sha256(&amd), OCI_MANIFEST, &amd).await;
    r.push("app", &sha256(&arm), OCI_MANIFEST, &arm).await;
    let mut a = desc(OCI_MANIFEST, &amd);
    a["platform"] = json!({"architecture": "amd64", "os": "linux"});
    let mut b = desc(OCI_MANIFEST, &arm);
    b["platform"] = json!({"architecture": "arm64", "os": "linux", "variant": "v8"});
    let index = manifest(json!({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": [a, b]}));
    let d = r.push("app", "multi", OCI_INDEX, &index).await;
    assert_eq!(r.push("app", &d, OCI_INDEX, &index).await, d);
    for reference in ["multi", d.as_str()] {
        r.check(get(format!("/v2/app/manifests/{reference}")), 200)
            .await
            .has("content-type", OCI_INDEX)
            .has("docker-content-digest", &d)
            .body_is(&index);
    }
}

/// § Pushing Manifests with Docker's types (Image Manifest V2 Schema 2 and manifest
/// list), which the spec's clients (docker, containerd) push.
#[tokio::test]
async fn docker_schema2_and_manifest_list() {
    let r = Reg::new().await;
    let config = br#"{"architecture":"amd64","os":"linux"}"#;
    let c = r.blob("app", config).await;
    let l = r.blob("app", b"docker layer").await;
    let m = manifest(json!({
        "schemaVersion": 2, "mediaType": DOCKER_MANIFEST,
        "config": {"mediaType": DOCKER_CONFIG, "digest": c, "size": config.len()},
        "layers": [{"mediaType": DOCKER_LAYER, "digest": l, "size": 12}],
    }));
    let md = r.push("app", "v2", DOCKER_MANIFEST, &m).await;
    let mut entry = desc(DOCKER_MANIFEST, &m);
    entry["platform"] = json!({"architecture": "amd64", "os": "linux"});
    let list =
        manifest(json!({"schemaVersion": 2, "mediaType": DOCKER_LIST, "manifests": [entry]}));
    let ld = r.push("app", "list", DOCKER_LIST, &list).await;
    for (reference, mt, digest, body) in [
        ("v2", DOCKER_MANIFEST, &md, &m),
        (md.as_str(), DOCKER_MANIFEST, &md, &m),
        ("list", DOCKER_LIST, &ld, &list),
        (ld.as_str(), DOCKER_LIST, &ld, &list),
    ] {
        r.check(get(format!("/v2/app/manifests/{reference}")), 200)
            .await
            .has("content-type", mt)
            .has("docker-content-digest", digest)
            .body_is(body);
        r.check(head(format!("/v2/app/manifests/{reference}")), 200)
            .await
            .has("content-type", mt)
            .has("content-length", &body.len().to_string());
    }
}

/// § Push: "When a manifest is rejected for this reason, the registry must return one or
/// more `MANIFEST_BLOB_UNKNOWN` errors" — the detail names the missing digest, and the
/// manifest is not stored (DESIGN.md invariant 2).
#[tokio::test]
async fn missing_layer_is_manifest_blob_unknown() {
    let r = Reg::new().await;
    let c = r.blob("app", b"{}").await;
    let missing = sha256(b"never pushed");
    let body = manifest(json!({
        "schemaVersion": 2, "mediaType": OCI_MANIFEST,
        "config": {"mediaType": OCI_CONFIG, "digest": c, "size": 2},
        "layers": [{"mediaType": OCI_LAYER, "digest": missing, "size": 12}],
    }));
    let resp = r
        .check(
            put("/v2/app/manifests/v1").manifest(OCI_MANIFEST, body.clone()),
            (404, "MANIFEST_BLOB_UNKNOWN"),
        )
        .await;
    let e = resp.error();
    assert!(
        e["detail"].to_string().contains(&missing),
        "detail does not name {missing}: {e}"
    );
    assert!(e["message"].as_str().unwrap().contains(&missing), "{e}");
    r.check(get("/v2/app/manifests/v1"), (404, "MANIFEST_UNKNOWN"))
        .await;
    r.check(
        get(format!("/v2/app/manifests/{}", sha256(&body))),
        (404, "MANIFEST_UNKNOWN"),
    )
    .await;
}

/// § Push: an index whose child manifest is absent is refused with
/// `MANIFEST_BLOB_UNKNOWN` naming the child.
#[tokio::test]
async fn index_with_missing_child_is_manifest_blob_unknown() {
    let r = Reg::new().await;
    let present = r.image("app", "present").await;
    r.push("app", &sha256(&present), OCI_MANIFEST, &present)
        .await;
    let absent = r.image("app", "absent").await; // blobs pushed, manifest not
    let index = manifest(json!({
        "schemaVersion": 2, "mediaType": OCI_INDEX,
        "manifests": [desc(OCI_MANIFEST, &present), desc(OCI_MANIFEST, &absent)],
    }));
    let resp = r
        .check(
            put("/v2/app/manifests/multi").manifest(OCI_INDEX, index),
            (404, "MANIFEST_BLOB_UNKNOWN"),
        )
        .await;
    let detail = resp.error()["detail"].to_string();
    assert!(detail.contains(&sha256(&absent)), "{detail}");
    assert!(!detail.contains(&sha256(&present)), "{detail}");
    r.check(get("/v2/app/manifests/multi"), (404, "MANIFEST_UNKNOWN"))
        .await;
}

/// § Pushing Manifests: "The Docker-Content-Digest header … MUST be equal to the client
/// provided digest" — a body that does not hash to the digest in the URL is refused.
#[tokio::test]
async fn manifest_digest_mismatch_is_digest_invalid() {
    let r = Reg::new().await;
    let body = r.image("app", "x").await;
    let wrong = sha256(b"another document");
    r.check(
        put(format!("/v2/app/manifests/{wrong}")).manifest(OCI_MANIFEST, body.clone()),
        (400, "DIGEST_INVALID"),
    )
    .await;
    r.check(
        get(format!("/v2/app/manifests/{}", sha256(&body))),
        (404, "MANIFEST_UNKNOWN"),
    )
    .await;
}

/// § Pushing Manifests: "a request to push a manifest over this limit [SHOULD get] 413
/// Payload Too Large", and registries "SHOULD expect to … support manifest pushes of at
/// least 4 megabytes": exactly 4 MiB is stored, one byte more is 413.
#[tokio::test]
async fn manifest_size_limit_is_4_mib() {
    let r = Reg::new().await;
    let c = r.blob("app", b"{}").await;
    let doc = |pad: usize| {
        manifest(json!({
            "schemaVersion": 2, "mediaType": OCI_MANIFEST,
            "config": {"mediaType": OCI_CONFIG, "digest": c, "size": 2},
            "layers": [],
            "annotations": {"pad": "x".repeat(pad)},
        }))
    };
    let limit = 4 * 1024 * 1024;
    let at_limit = doc(limit - doc(0).len());
    assert_eq!(at_limit.len(), limit);
    r.push("app", "big", OCI_MANIFEST, &at_limit).await;
    r.check(get("/v2/app/manifests/big"), 200)
        .await
        .body_is(&at_limit);
    let over = doc(limit + 1 - doc(0).len());
    r.check(
        put("/v2/app/manifests/too-big").manifest(OCI_MANIFEST, over),
        (413, "SIZE_INVALID"),
    )
    .await;
    r.check(get("/v2/app/manifests/too-big"), (404, "MANIFEST_UNKNOWN"))
        .await;
}

/// § Error Codes `MANIFEST_INVALID`: a body that is not a manifest, and (§ Pushing
/// Manifests) a `mediaType` that disagrees with the request's Content-Type.
#[tokio::test]
async fn malformed_manifests_are_manifest_invalid() {
    let r = Reg::new().await;
    let body = r.image("app", "x").await;
    for (ct, b) in [
        (OCI_MANIFEST, b"not json at all".to_vec()),
        (OCI_MANIFEST, b"{\"schemaVersion\": 2".to_vec()),
        (
            OCI_MANIFEST,
            br#"{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json"}"#
                .to_vec(),
        ),
        (
            OCI_MANIFEST,
            br#"{"schemaVersion":1,"name":"app","tag":"v1"}"#.to_vec(),
        ),
        (OCI_MANIFEST, Vec::new()),
        // mediaType ≠ Content-Type
        (OCI_INDEX, body.clone()),
        (DOCKER_MANIFEST, body.clone()),
    ] {
        r.check(
            put("/v2/app/manifests/v1").manifest(ct, b),
            (400, "MANIFEST_INVALID"),
        )
        .await;
    }
    r.check(get("/v2/app/manifests/v1"), (404, "MANIFEST_UNKNOWN"))
        .await;
}

/// § Deleting Manifests (end-9 by digest): 202; "a GET to /v2/<name>/manifests/<digest>
/// and any tag pointing to that digest will return a 404", and the tags are gone from
/// the tag list.
#[tokio::test]
async fn delete_manifest_by_digest_removes_its_tags() {
    let r = Reg::new().await;
    let body = r.image("app", "x").await;
    let d = r.push("app", "a", OCI_MANIFEST, &body).await;
    r.push("app", "b", OCI_MANIFEST, &body).await;
    let other = r.image("app", "y").await;
    r.push("app", "keep", OCI_MANIFEST, &other).await;
    // Pull first, so a read cache (if any) holds them when the manifest is deleted.
    for reference in ["a", "b", d.as_str()] {
        r.check(get(format!("/v2/app/manifests/{reference}")), 200)
            .await;
        r.check(head(format!("/v2/app/manifests/{reference}")), 200)
            .await;
    }
    // The same manifest in another repository is not affected by the delete.
    assert_eq!(r.image("mirror", "x").await, body);
    r.push("mirror", "a", OCI_MANIFEST, &body).await;
    r.check(delete(format!("/v2/app/manifests/{d}")), 202).await;
    for reference in ["a", "b", d.as_str()] {
        r.check(
            get(format!("/v2/app/manifests/{reference}")),
            (404, "MANIFEST_UNKNOWN"),
        )
        .await;
        r.check(head(format!("/v2/app/manifests/{reference}")), 404)
            .await;
    }
    let tags = r.check(get("/v2/app/tags/list"), 200).await.json();
    assert_eq!(tags["tags"], json!(["keep"]));
    r.check(
        delete(format!("/v2/app/manifests/{d}")),
        (404, "MANIFEST_UNKNOWN"),
    )
    .await;
    r.check(get("/v2/mirror/manifests/a"), 200)
        .await
        .body_is(&body);
    r.check(get(format!("/v2/mirror/manifests/{d}")), 200)
        .await
        .body_is(&body);
}

/// § Deleting tags (end-9 by tag): 202; the tag is gone (404) while the manifest and its
/// other tags stay.
#[tokio::test]
async fn delete_tag_removes_only_the_tag() {
    let r = Reg::new().await;
    let body = r.image("app", "x").await;
    let d = r.push("app", "a", OCI_MANIFEST, &body).await;
    r.push("app", "b", OCI_MANIFEST, &body).await;
    // Pull first, so a read cache (if any) holds the tag when it is deleted.
    for reference in ["a", "b", d.as_str()] {
        r.check(get(format!("/v2/app/manifests/{reference}")), 200)
            .await;
        r.check(head(format!("/v2/app/manifests/{reference}")), 200)
            .await;
    }
    r.check(delete("/v2/app/manifests/a"), 202).await;
    r.check(head("/v2/app/manifests/a"), 404).await;
    r.check(get("/v2/app/manifests/a"), (404, "MANIFEST_UNKNOWN"))
        .await;
    r.check(get("/v2/app/manifests/b"), 200)
        .await
        .body_is(&body);
    r.check(get(format!("/v2/app/manifests/{d}")), 200)
        .await
        .body_is(&body);
    let tags = r.check(get("/v2/app/tags/list"), 200).await.json();
    assert_eq!(tags["tags"], json!(["b"]));
    r.check(delete("/v2/app/manifests/a"), (404, "MANIFEST_UNKNOWN"))
        .await;
}

/// § Content Management with DESIGN.md invariant 2: a manifest that an index in the
/// repository still references cannot be deleted (409); once the index is gone it can.
#[tokio::test]
async fn deleting_an_index_child_is_409_while_the_index_exists() {
    let r = Reg::new().await;
    let child = r.image("app", "child").await;
    let cd = r.push("app", "child", OCI_MANIFEST, &child).await;
    let index = manifest(json!({
        "schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": [desc(OCI_MANIFEST, &child)],
    }));
    let id = r.push("app", "multi", OCI_INDEX, &index).await;
    let resp = r
        .check(delete(format!("/v2/app/manifests/{cd}")), (409, "DENIED"))
        .await;
    assert!(
        resp.error()["message"].as_str().unwrap().contains(&id),
        "the message should name the index"
    );
    r.check(get(format!("/v2/app/manifests/{cd}")), 200).await;
    r.check(get("/v2/app/manifests/child"), 200).await;
    r.check(delete(format!("/v2/app/manifests/{id}")), 202)
        .await;
    r.check(delete(format!("/v2/app/manifests/{cd}")), 202)
        .await;
    r.check(
        get(format!("/v2/app/manifests/{cd}")),
        (404, "MANIFEST_UNKNOWN"),
    )
    .await;
}

/// § Pulling manifests: "A 404 Not Found response will be returned if the image is
/// unknown", with § Error Codes `MANIFEST_UNKNOWN` in a known repository and
/// `NAME_UNKNOWN` for a repository that does not exist.
#[tokio::test]
async fn unknown_manifest_and_unknown_repository() {
    let r = Reg::new().await;
    let body = r.image("app", "x").await;
    r.push("app", "v1", OCI_MANIFEST, &body).await;
    let absent = sha256(b"absent");
    for reference in ["v2", absent.as_str()] {
        r.check(
            get(format!("/v2/app/manifests/{reference}")),
            (404, "MANIFEST_UNKNOWN"),
        )
        .await;
        r.check(head(format!("/v2/app/manifests/{reference}")), 404)
            .await;
        r.check(
            get(format!("/v2/nope/manifests/{reference}")),
            (404, "NAME_UNKNOWN"),
        )
        .await;
    }
    r.check(get("/v2/nope/tags/list"), (404, "NAME_UNKNOWN"))
        .await;
    r.check(delete("/v2/nope/manifests/v1"), (404, "NAME_UNKNOWN"))
        .await;
    r.check(
        delete(format!("/v2/nope/manifests/{absent}")),
        (404, "NAME_UNKNOWN"),
    )
    .await;
}

// ---------------------------------------------------------------------------------------
// § Pushing Manifests with Subject, § Listing Referrers
// ---------------------------------------------------------------------------------------

/// Pushes an image to `app` and three referrers of it; returns (subject digest,
/// [(referrer digest, referrer bytes)]).
async fn referrers_fixture(r: &Reg) -> (String, Vec<(String, Vec<u8>)>) {
    let subject = r.image("app", "subject").await;
    let sd = r.push("app", "v1", OCI_MANIFEST, &subject).await;
    let empty = r.blob("app", b"{}").await;
    let sbom_blob = r.blob("app", b"{\"spdxVersion\":\"SPDX-2.3\"}").await;
    // An artifact with artifactType and annotations.
    let sbom = manifest(json!({
        "schemaVersion": 2, "mediaType": OCI_MANIFEST,
        "artifactType": "application/vnd.example.sbom.v1+json",
        "config": {"mediaType": OCI_EMPTY, "digest": empty, "size": 2},
        "layers": [{"mediaType": "application/spdx+json", "digest": sbom_blob, "size": 26}],
        "subject": desc(OCI_MANIFEST, &subject),
        "annotations": {"org.opencontainers.image.created": "2024-01-01T00:00:00Z", "org.example.format": "spdx"},
    }));
    // An image manifest without artifactType: its config media type stands in.
    let sig = manifest(json!({
        "schemaVersion": 2, "mediaType": OCI_MANIFEST,
        "config": {"mediaType": "application/vnd.example.signature.config.v1+json", "digest": empty, "size": 2},
        "layers": [],
        "subject": desc(OCI_MANIFEST, &subject),
    }));
    // An index without artifactType: the descriptor has none.
    let idx = manifest(json!({
        "schemaVersion": 2, "mediaType": OCI_INDEX,
        "manifests": [],
        "subject": desc(OCI_MANIFEST, &subject),
        "annotations": {"org.example.kind": "bundle"},
    }));
    let mut out = Vec::new();
    for (mt, body) in [(OCI_MANIFEST, sbom), (OCI_MANIFEST, sig), (OCI_INDEX, idx)] {
        let d = sha256(&body);
        r.check(
            put(format!("/v2/app/manifests/{d}")).manifest(mt, body.clone()),
            201,
        )
        .await
        .has("oci-subject", &sd)
        .has("docker-content-digest", &d);
        out.push((d, body));
    }
    (sd, out)
}

/// § Pushing Manifests with Subject: the registry "MUST respond with the response header
/// `OCI-Subject: <subject digest>`"; and § Push: it "must accept a manifest that includes
/// a subject field referencing another manifest that does not yet exist". A manifest
/// without subject gets no such header.
#[tokio::test]
async fn manifest_with_subject_answers_oci_subject() {
    let r = Reg::new().await;
    let empty = r.blob("app", b"{}").await;
    let ghost = sha256(b"a subject pushed later");
    let body = manifest(json!({
        "schemaVersion": 2, "mediaType": OCI_MANIFEST,
        "artifactType": "application/vnd.example.sig",
        "config": {"mediaType": OCI_EMPTY, "digest": empty, "size": 2},
        "layers": [],
        "subject": {"mediaType": OCI_MANIFEST, "digest": ghost, "size": 22},
    }));
    r.check(
        put("/v2/app/manifests/sig").manifest(OCI_MANIFEST, body.clone()),
        201,
    )
    .await
    .has("oci-subject", &ghost);
    let refs = r
        .check(get(format!("/v2/app/referrers/{ghost}")), 200)
        .await
        .json();
    assert_eq!(refs["manifests"][0]["digest"], sha256(&body));
    let plain = r.image("app", "plain").await;
    r.check(
        put("/v2/app/manifests/plain").manifest(OCI_MANIFEST, plain),
        201,
    )
    .await
    .lacks("oci-subject");
}

/// § Listing Referrers (end-12a): 200, Content-Type the OCI index type, an image index
/// listing every manifest whose subject is the digest, each descriptor with mediaType,
/// size, digest, `artifactType` (the manifest's, else the config's media type, omitted
/// for an index without one) and the manifest's annotations; no `OCI-Filters-Applied`.
#[tokio::test]
async fn referrers_list_descriptors() {
    let r = Reg::new().await;
    let (sd, refs) = referrers_fixture(&r).await;
    let resp = r.check(get(format!("/v2/app/referrers/{sd}")), 200).await;
    resp.has("content-type", OCI_INDEX)
        .lacks("oci-filters-applied");
    let v = resp.json();
    assert_eq!(v["schemaVersion"], 2);
    assert_eq!(v["mediaType"], OCI_INDEX);
    let list = v["manifests"].as_array().unwrap();
    assert_eq!(list.len(), 3, "{v}");
    let find = |d: &str| {
        list.iter()
            .find(|m| m["digest"] == d)
            .unwrap_or_else(|| panic!("{d} not listed: {v}"))
            .clone()
    };
    let (sbom, sig, idx) = (&refs[0], &refs[1], &refs[2]);
    assert_eq!(
        find(&sbom.0),
        json!({
            "mediaType": OCI_MANIFEST, "digest": sbom.0, "size": sbom.1.len(),
            "artifactType": "application/vnd.example.sbom.v1+json",
            "annotations": {"org.opencontainers.image.created": "2024-01-01T00:00:00Z", "org.example.format": "spdx"},
        })
    );
    assert_eq!(
        find(&sig.0),
        json!({
            "mediaType": OCI_MANIFEST, "digest": sig.0, "size": sig.1.len(),
            "artifactType": "application/vnd.example.signature.config.v1+json",
        })
    );
    assert_eq!(
        find(&idx.0),
        json!({
            "mediaType": OCI_INDEX, "digest": idx.0, "size": idx.1.len(),
            "annotations": {"org.example.kind": "bundle"},
        })
    );
    // A deleted referrer is no longer listed.
    r.check(delete(format!("/v2/app/manifests/{}", sig.0)), 202)
        .await;
    let v = r
        .check(get(format!("/v2/app/referrers/{sd}")), 200)
        .await
        .json();
    assert_eq!(v["manifests"].as_array().unwrap().len(), 2, "{v}");
}

/// § Listing Referrers (end-12b): `?artifactType=` filters, and the answer says so with
/// `OCI-Filters-Applied: artifactType`; the query value is percent-decoded (`+` → `%2B`).
#[tokio::test]
async fn referrers_filter_by_artifact_type() {
    let r = Reg::new().await;
    let (sd, refs) = referrers_fixture(&r).await;
    let v = r
        .check(
            get(format!(
                "/v2/app/referrers/{sd}?artifactType=application%2Fvnd.example.sbom.v1%2Bjson"
            )),
            200,
        )
        .await
        .has("oci-filters-applied", "artifactType")
        .has("content-type", OCI_INDEX)
        .json();
    let list = v["manifests"].as_array().unwrap();
    assert_eq!(list.len(), 1, "{v}");
    assert_eq!(list[0]["digest"], refs[0].0);
    let v = r
        .check(
            get(format!(
                "/v2/app/referrers/{sd}?artifactType=application/vnd.example.signature.config.v1%2Bjson"
            )),
            200,
        )
        .await
        .has("oci-filters-applied", "artifactType")
        .json();
    assert_eq!(v["manifests"][0]["digest"], refs[1].0, "{v}");
    let v = r
        .check(
            get(format!(
                "/v2/app/referrers/{sd}?artifactType=application/x-none"
            )),
            200,
        )
        .await
        .has("oci-filters-applied", "artifactType")
        .json();
    assert_eq!(v["manifests"], json!([]));
}

/// § Listing Referrers: "If a query results in no matching referrers, an empty manifest
/// list MUST be returned" (never a 404 for a known repository); an invalid digest is 400.
#[tokio::test]
async fn referrers_of_unknown_digest_is_empty_list() {
    let r = Reg::new().await;
    let body = r.image("app", "x").await;
    let d = r.push("app", "v1", OCI_MANIFEST, &body).await;
    for subject in [sha256(b"never pushed"), d, sha512(b"x")] {
        let v = r
            .check(get(format!("/v2/app/referrers/{subject}")), 200)
            .await
            .has("content-type", OCI_INDEX)
            .json();
        assert_eq!(
            v,
            json!({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": []})
        );
    }
    r.check(
        get("/v2/app/referrers/sha256:nothex"),
        (400, "DIGEST_INVALID"),
    )
    .await;
}

/// § Listing Referrers, with image-spec manifest.md § artifactType: an *empty*
/// `artifactType` counts as missing, so the config's media type (image manifest) is
/// reported, or none at all (index).
#[tokio::test]
async fn referrers_treat_empty_artifact_type_as_missing() {
    let r = Reg::new().await;
    let subject = r.image("app", "subject").await;
    let sd = r.push("app", "v1", OCI_MANIFEST, &subject).await;
    let empty = r.blob("app", b"{}").await;
    let m = manifest(json!({
        "schemaVersion": 2, "mediaType": OCI_MANIFEST, "artifactType": "",
        "config": {"mediaType": "application/vnd.example.config.v1+json", "digest": empty, "size": 2},
        "layers": [],
        "subject": desc(OCI_MANIFEST, &subject),
    }));
    let i = manifest(json!({
        "schemaVersion": 2, "mediaType": OCI_INDEX, "artifactType": "",
        "manifests": [],
        "subject": desc(OCI_MANIFEST, &subject),
    }));
    r.push("app", &sha256(&m), OCI_MANIFEST, &m).await;
    r.push("app", &sha256(&i), OCI_INDEX, &i).await;
    let v = r
        .check(get(format!("/v2/app/referrers/{sd}")), 200)
        .await
        .json();
    let list = v["manifests"].as_array().unwrap();
    assert_eq!(list.len(), 2, "{v}");
    for d in list {
        if d["digest"] == sha256(&m) {
            assert_eq!(
                d["artifactType"], "application/vnd.example.config.v1+json",
                "{v}"
            );
        } else {
            assert!(d.get("artifactType").is_none(), "{v}");
        }
    }
    let v = r
        .check(
            get(format!(
                "/v2/app/referrers/{sd}?artifactType=application/vnd.example.config.v1%2Bjson"
            )),
            200,
        )
        .await
        .json();
    assert_eq!(v["manifests"].as_array().unwrap().len(), 1, "{v}");
}

// ---------------------------------------------------------------------------------------
// § Listing Tags, catalog
// ---------------------------------------------------------------------------------------

/// § Listing Tags (end-8a, end-8b): walking 25 tags with `n=7` by following the `Link`
/// header (RFC 5988, `rel="next"`) returns each tag exactly once, in lexical
/// ("ASCIIbetical") order, pages of exactly `n` but the last, and no Link on the last.
#[tokio::test]
async fn tags_list_paginates_with_link() {
    let r = Reg::new().await;
    let body = r.image("team/app", "x").await;
    let names = [
        "latest",
        "v1",
        "v1.0",
        "v1.10",
        "v1.2",
        "v10",
        "V2",
        "_private",
        "a-b",
        "a.b",
        "a_b",
        "0",
        "9",
        "Z",
        "zz",
        "build-100",
        "build-99",
        "rc1",
        "RC2",
        "x.y.z",
        "stable",
        "edge",
        "1.0.0-alpha",
        "1.0.0",
        "main",
    ];
    assert_eq!(names.len(), 25);
    for t in names.iter().rev() {
        r.push("team/app", t, OCI_MANIFEST, &body).await;
    }
    let mut want: Vec<String> = names.iter().map(|s| s.to_string()).collect();
    want.sort(); // byte order == Go's sort.Strings

    let all = r.check(get("/v2/team/app/tags/list"), 200).await;
    all.lacks("link");
    assert_eq!(all.json(), json!({"name": "team/app", "tags": want}));

    let mut got: Vec<String> = Vec::new();
    let mut url = "/v2/team/app/tags/list?n=7".to_string();
    let mut pages = Vec::new();
    loop {
        let resp = r.check(get(&url), 200).await;
        let v = resp.json();
        assert_eq!(v["name"], "team/app");
        let page: Vec<String> = serde_json::from_value(v["tags"].clone()).unwrap();
        pages.push(page.len());
        got.extend(page);
        match next_link(&resp) {
            Some(next) => url = next,
            None => break,
        }
        assert!(pages.len() < 10, "pagination does not end");
    }
    assert_eq!(pages, [7, 7, 7, 4]);
    assert_eq!(got, want);

    // `last` alone, `n` + `last`, and n=0 ("MUST return an empty list, and MUST NOT
    // include a Link header").
    let v = r
        .check(
            get(format!("/v2/team/app/tags/list?last={}", want[20])),
            200,
        )
        .await
        .json();
    assert_eq!(v["tags"], json!(want[21..]));
    let v = r
        .check(
            get(format!("/v2/team/app/tags/list?n=2&last={}", want[3])),
            200,
        )
        .await
        .json();
    assert_eq!(v["tags"], json!(want[4..6]));
    let v = r
        .check(get("/v2/team/app/tags/list?n=0"), 200)
        .await
        .lacks("link")
        .json();
    assert_eq!(v["tags"], json!([]));
    let v = r
        .check(get("/v2/team/app/tags/list?n=1000"), 200)
        .await
        .lacks("link")
        .json();
    assert_eq!(v["tags"], json!(want));
}

/// Catalog (`/v2/_catalog`, § Listing Repositories is reserved; distribution's API):
/// `n`/`last` pagination with `Link`, names in lexical order.
#[tokio::test]
async fn catalog_paginates_with_link() {
    let r = Reg::new().await;
    let repos = ["b", "a/z", "a", "c/d/e", "a-b"];
    for repo in repos {
        r.blob(repo, repo.as_bytes()).await;
    }
    let mut want: Vec<String> = repos.iter().map(|s| s.to_string()).collect();
    want.sort();
    let v = r.check(get("/v2/_catalog"), 200).await.json();
    assert_eq!(v["repositories"], json!(want));

    let mut got: Vec<String> = Vec::new();
    let mut url = "/v2/_catalog?n=2".to_string();
    let mut pages = Vec::new();
    loop {
        let resp = r.check(get(&url), 200).await;
        let page: Vec<String> =
            serde_json::from_value(resp.json()["repositories"].clone()).unwrap();
        pages.push(page.len());
        got.extend(page);
        match next_link(&resp) {
            Some(next) => url = next,
            None => break,
        }
        assert!(pages.len() < 10, "pagination does not end");
    }
    assert_eq!(pages, [2, 2, 1]);
    assert_eq!(got, want);
    let v = r
        .check(get(format!("/v2/_catalog?n=10&last={}", want[2])), 200)
        .await
        .lacks("link")
        .json();
    assert_eq!(v["repositories"], json!(want[3..]));
}

// ---------------------------------------------------------------------------------------
// Bad input (DESIGN.md § Error handling: never panics, never corrupts state)
// ---------------------------------------------------------------------------------------

/// § Pushing a blob in chunks: `<range>` "MUST match `^[0-9]+-[0-9]+$`"; anything else
/// is a 400 and leaves the session as it was.
#[tokio::test]
async fn garbage_content_range_is_400() {
    let r = Reg::new().await;
    let loc = r
        .check(post("/v2/app/blobs/uploads/"), 202)
        .await
        .hdr("location")
        .unwrap()
        .to_string();
    for cr in [
        "garbage",
        "bytes=0-4",
        "-",
        "0-",
        "-4",
        "4-0",
        "a-b",
        "0-99999999999999999999999",
        "",
    ] {
        r.check(
            patch(&loc)
                .header("content-range", cr)
                .octets(b"hello".to_vec()),
            (400, "BLOB_UPLOAD_INVALID"),
        )
        .await;
    }
    r.check(get(&loc), 204).await.has("range", "0-0");
    r.check(
        patch(&loc)
            .header("content-range", "0-4")
            .octets(b"hello".to_vec()),
        202,
    )
    .await
    .has("range", "0-4");
}

/// § Listing Tags: `n` is an integer; anything else is 400 (for tags and the catalog),
/// with a code from § Error Codes' list (`UNSUPPORTED`).
#[tokio::test]
async fn non_numeric_n_is_400() {
    let r = Reg::new().await;
    let body = r.image("app", "x").await;
    r.push("app", "v1", OCI_MANIFEST, &body).await;
    for n in ["abc", "-1", "1.5", "ten"] {
        r.check(
            get(format!("/v2/app/tags/list?n={n}")),
            (400, "UNSUPPORTED"),
        )
        .await;
        r.check(get(format!("/v2/_catalog?n={n}")), (400, "UNSUPPORTED"))
            .await;
    }
}

/// § Pulling manifests (`<name>` grammar; Berth's limit is 256 characters, ECR's): a 257
/// character name is `NAME_INVALID` on every endpoint, a 256 character one works.
#[tokio::test]
async fn overlong_name_is_name_invalid() {
    let r = Reg::new().await;
    let long = "a".repeat(257);
    let nested = format!("{}/{}", "b".repeat(128), "c".repeat(128)); // 257 with the slash
    for name in [&long, &nested] {
        let d = sha256(b"x");
        for q in [
            get(format!("/v2/{name}/tags/list")),
            get(format!("/v2/{name}/manifests/latest")),
            put(format!("/v2/{name}/manifests/latest")).body("{}"),
            get(format!("/v2/{name}/blobs/{d}")),
            post(format!("/v2/{name}/blobs/uploads/")),
            get(format!("/v2/{name}/referrers/{d}")),
        ] {
            r.check(q, (400, "NAME_INVALID")).await;
        }
    }
    let ok = "a".repeat(256);
    r.blob(&ok, b"fits").await;
}

/// § Pulling manifests: a tag matches `[a-zA-Z0-9_][a-zA-Z0-9._-]{0,127}`; a push to 129
/// characters (or a bad first character) is `TAG_INVALID`, 128 works. Reading or deleting
/// under such a reference is 404 `MANIFEST_UNKNOWN`: no such manifest can exist (what the
/// conformance suite expects of `.INVALID_MANIFEST_NAME`, issue 17).
#[tokio::test]
async fn overlong_tag_is_tag_invalid() {
    let r = Reg::new().await;
    let body = r.image("app", "x").await;
    for tag in [
        "t".repeat(129),
        "-lead".to_string(),
        ".dot".to_string(),
        ".INVALID_MANIFEST_NAME".to_string(),
    ] {
        r.check(
            get(format!("/v2/app/manifests/{tag}")),
            (404, "MANIFEST_UNKNOWN"),
        )
        .await;
        r.check(head(format!("/v2/app/manifests/{tag}")), 404).await;
        r.check(
            put(format!("/v2/app/manifests/{tag}")).manifest(OCI_MANIFEST, body.clone()),
            (400, "TAG_INVALID"),
        )
        .await;
        r.check(
            delete(format!("/v2/app/manifests/{tag}")),
            (404, "MANIFEST_UNKNOWN"),
        )
        .await;
    }
    r.push("app", &"t".repeat(128), OCI_MANIFEST, &body).await;
}

/// § Error Codes `BLOB_UPLOAD_UNKNOWN` for upload IDs that are not sessions (including
/// path-traversal attempts), and odd query strings: nothing panics, nothing is created.
#[tokio::test]
async fn odd_upload_ids_and_queries_are_refused_cleanly() {
    let r = Reg::new().await;
    for id in [
        "not-a-uuid",
        "..",
        "00000000-0000-0000-0000-000000000000",
        "%2e%2e%2f%2e%2e%2fetc",
    ] {
        let url = format!("/v2/app/blobs/uploads/{id}");
        r.check(get(&url), (404, "BLOB_UPLOAD_UNKNOWN")).await;
        r.check(
            patch(&url).octets(b"x".to_vec()),
            (404, "BLOB_UPLOAD_UNKNOWN"),
        )
        .await;
        r.check(
            put(format!("{url}?digest={}", sha256(b"x"))).octets(b"x".to_vec()),
            (404, "BLOB_UPLOAD_UNKNOWN"),
        )
        .await;
        r.check(delete(&url), (404, "BLOB_UPLOAD_UNKNOWN")).await;
    }
    r.check(
        post("/v2/app/blobs/uploads/?mount=sha256:zz&from=src"),
        (400, "DIGEST_INVALID"),
    )
    .await;
    r.check(get("/v2/app/referrers/notadigest"), (400, "DIGEST_INVALID"))
        .await;
    assert!(r.stored_blobs().await.is_empty());
}

// ---------------------------------------------------------------------------------------
// Regressions found by a new user trying the README (each names the case).

/// Regression: a PUT completing an upload with the wrong digest left the session open
/// with the body appended, so retrying the same PUT with the right digest hashed the body
/// twice. Now the failed completion ends the session (as distribution does).
#[tokio::test]
async fn failed_completion_ends_the_upload_session() {
    let r = Reg::new().await;
    let loc = r
        .check(post("/v2/app/blobs/uploads/"), 202)
        .await
        .hdr("location")
        .unwrap()
        .to_string();
    r.check(
        put(format!("{loc}?digest={}", sha256(b"other"))).octets(&b"hello\n"[..]),
        (400, "DIGEST_INVALID"),
    )
    .await;
    r.check(get(&loc), (404, "BLOB_UPLOAD_UNKNOWN")).await;
}

/// Regression: a descriptor whose `size` disagreed with the stored blob was accepted, so
/// clients failed only when pulling. image-spec descriptor.md: `size` MUST be the exact
/// byte length; the push is refused with MANIFEST_INVALID naming the digest.
#[tokio::test]
async fn descriptor_size_must_match_the_stored_blob() {
    let r = Reg::new().await;
    let c = r.blob("app", b"{}").await;
    let body = manifest(json!({
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": {"mediaType": OCI_CONFIG, "digest": c, "size": 3},
        "layers": [],
    }));
    let resp = r
        .check(
            put("/v2/app/manifests/v1").manifest(OCI_MANIFEST, body),
            (400, "MANIFEST_INVALID"),
        )
        .await;
    let msg = resp.error()["message"].as_str().unwrap().to_string();
    assert!(msg.contains(&c) && msg.contains("size 3"), "{msg}");
}

/// Regression: a page that ended exactly at the last tag still carried `Link: rel="next"`
/// to an empty page. § Listing Tags: the Link header appears only when more results exist.
#[tokio::test]
async fn no_next_link_on_the_last_full_page() {
    let r = Reg::new().await;
    let body = r.image("app", "a").await;
    for t in ["a", "b", "c", "d"] {
        r.push("app", t, OCI_MANIFEST, &body).await;
    }
    let first = r.check(get("/v2/app/tags/list?n=2"), 200).await;
    assert!(next_link(&first).is_some());
    let last = r.check(get("/v2/app/tags/list?n=2&last=b"), 200).await;
    assert_eq!(last.json()["tags"], json!(["c", "d"]));
    last.lacks("link");
    r.check(get("/v2/_catalog?n=1"), 200).await.lacks("link");
}

/// Regression: with creation on push turned off, a push failed with a bare "repository
/// is not known"; the message now says why and what to do.
#[tokio::test]
async fn push_without_create_on_push_explains_itself() {
    let r = Reg::with_config(RegistryConfig {
        create_on_push: false,
        ..RegistryConfig::default()
    })
    .await;
    let resp = r
        .check(post("/v2/team/app/blobs/uploads/"), (404, "NAME_UNKNOWN"))
        .await;
    let msg = resp.error()["message"].as_str().unwrap().to_string();
    assert!(msg.contains("create_on_push"), "{msg}");
}

/// Regression: a Docker schema1 manifest was refused as "schemaVersion must be 2"; it is
/// now refused by its media type, which tells the user what to change.
#[tokio::test]
async fn unsupported_manifest_types_are_named() {
    let r = Reg::new().await;
    let resp = r
        .check(
            put("/v2/app/manifests/v1").manifest(
                "application/vnd.docker.distribution.manifest.v1+prettyjws",
                &br#"{"schemaVersion":1,"name":"app","tag":"v1"}"#[..],
            ),
            (400, "MANIFEST_INVALID"),
        )
        .await;
    let msg = resp.error()["message"].as_str().unwrap().to_string();
    assert!(msg.contains("unsupported manifest media type"), "{msg}");
}

/// Regression: a blob linked in metadata but missing from storage (an operator deleted
/// files) was reported to clients as `BLOB_UNKNOWN` and logged nowhere. It is a server
/// fault: 500, with the cause in the server log only.
#[tokio::test]
async fn blob_missing_from_storage_is_a_server_error() {
    let r = Reg::new().await;
    let d = r.blob("app", b"precious").await;
    let digest: berth_core::Digest = d.parse().unwrap();
    r.env.store.delete(&digest).await.unwrap();
    let resp = r.check(get(format!("/v2/app/blobs/{d}")), 500).await;
    let msg = resp.error()["message"].as_str().unwrap().to_string();
    assert!(!msg.contains(&d), "internal details leaked: {msg}");
}

/// Issue 14, "the SQLite/disk and PostgreSQL/S3 pairs run the same tests": every other
/// test of this file again, in a child process on PostgreSQL metadata and S3 (SeaweedFS)
/// blob storage (`berth_test_support::Backends::PostgresS3`).
#[test]
fn every_test_of_this_file_on_postgres_and_s3() {
    berth_test_support::rerun_on_postgres_s3("every_test_of_this_file_on_postgres_and_s3");
}
