//! # berth-replication: ECR registry replication between Berth deployments (issue 9)
//!
//! A Berth deployment is one region of one registry. Deployments talk to each other
//! only through their public APIs: this crate copies images to a peer through the
//! peer's OCI Distribution API, authenticated with an access key the peer issued
//! (configured per destination as a [`Peer`]).
//!
//! - [`ReplicationHook`] (a `ChangeHook`): every manifest PUT in a repository that a
//!   rule of the registry's replication configuration matches enqueues one
//!   [`REPLICATION_JOB`] per destination, in the push's own transaction, with the
//!   idempotency key `<repository>@<digest>|<region>|<registryId>|<tag>`
//!   (`berth_meta::replication::job_key`). The job *is* the status row:
//!   `DescribeImageReplicationStatus` reads it (`IN_PROGRESS` while it is pending), so the
//!   status is visible as soon as the push returns. A push that arrived by replication
//!   (the request carried the source header, see `berth_oci_api`) enqueues nothing:
//!   no chaining, as in ECR.
//! - [`ReplicateImage`] (the job's handler) copies what the destination lacks: every blob
//!   is checked with `HEAD` first and never resent; a blob this process already sent to
//!   another repository of the destination is mounted from there; other missing blobs
//!   are streamed from the
//!   source's store (never whole in memory) with a monolithic `POST` + `PUT ?digest=`, which
//!   the destination verifies by digest; every child of an index is copied before the
//!   index, the manifest is put by digest, then its tag (if the tag still points at it
//!   in the source), then the image's referrers (manifests whose `subject` is the image:
//!   signatures, SBOMs). The destination repository is created by the push itself
//!   (create-on-push), so one protocol — the OCI API — serves both; a destination that
//!   refuses to create repositories on push answers `NAME_UNKNOWN`, a permanent failure.
//! - Failures: connection errors, timeouts, 408, 429 and 5xx are retryable (the runner's
//!   backoff, until the job's deadline, `replication_deadline_secs`); any other 4xx is
//!   permanent. A job's error text is `<failureCode>: <message>`; the code is one of
//!   [`FailureCode`]'s, and it is what `failureCode` shows.
//!
//! Copies are idempotent (each step checks or overwrites with identical content), so a
//! job that runs twice (a worker killed mid-copy) duplicates nothing.

#![deny(missing_docs)]

use berth_core::{Digest, ParsedManifest, Reference, RepositoryName, Tag};
use berth_eventbus::event_job;
use berth_events::{Origin, ReplicationAction};
use berth_jobs::{JobError, JobHandler, JobInput, Waker};
use berth_meta::changes::{replicated_from, Change, ChangeHook};
use berth_meta::jobs::{JobStore, NewJob};
use berth_meta::replication::{job_key, REPLICATION_JOB};
use berth_registry::replication::ReplicationConfigCell;
use berth_registry::{Registry, RegistryError};
use reqwest::StatusCode;
use serde::{Deserialize, Serialize};
use std::sync::Arc;
use std::time::Duration;

pub use berth_meta::replication::REPLICATION_JOB as JOB_KIND;

/// The header every request of a copy carries: `<source region>/<source registryId>`.
/// The destination causes no replication for pushes made under it.
pub const SOURCE_HEADER: &str = "x-berth-replication-source";

/// A destination registry: where it lives and how this deployment authenticates to it
/// (`[[replication.peers]]` in the config file). Its `Debug` never shows the secret.
#[derive(Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Peer {
    /// The destination's region (its `region` setting), e.g. `eu-west-1`.
    pub region: String,
    /// The destination registry's ID (its account), 12 digits.
    pub registry_id: String,
    /// The destination's base URL, e.g. `https://registry.eu.example.com` (the OCI API is
    /// under `/v2/`).
    pub endpoint: String,
    /// An access key ID the destination issued (for its own account, or — cross-account
    /// — for a principal the destination's registry policy names).
    pub access_key_id: String,
    /// The access key's secret.
    pub secret_access_key: String,
}

impl std::fmt::Debug for Peer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Peer")
            .field("region", &self.region)
            .field("registry_id", &self.registry_id)
            .field("endpoint", &self.endpoint)
            .field("access_key_id", &self.access_key_id)
            .field("secret_access_key", &"<redacted>")
            .finish()
    }
}

/// Why a copy failed: the `failureCode` of `DescribeImageReplicationStatus`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailureCode {
    /// No `[[replication.peers]]` entry for the destination.
    PeerNotConfigured,
    /// The destination could not be reached or answered 408/429/5xx until the deadline.
    DestinationUnreachable,
    /// The destination did not accept the configured credentials (401).
    DestinationAuthenticationFailed,
    /// The destination's policies do not allow the copy (403).
    DestinationAccessDenied,
    /// The destination refused a request for another reason (another 4xx).
    DestinationRejected,
    /// The image is no longer in the source (deleted before the copy ran).
    SourceImageNotFound,
    /// The source could not read the image (storage or database fault).
    SourceReadFailed,
}

impl FailureCode {
    /// The code as shown: `PEER_NOT_CONFIGURED`, `DESTINATION_UNREACHABLE`, ….
    pub fn as_str(self) -> &'static str {
        match self {
            FailureCode::PeerNotConfigured => "PEER_NOT_CONFIGURED",
            FailureCode::DestinationUnreachable => "DESTINATION_UNREACHABLE",
            FailureCode::DestinationAuthenticationFailed => "DESTINATION_AUTHENTICATION_FAILED",
            FailureCode::DestinationAccessDenied => "DESTINATION_ACCESS_DENIED",
            FailureCode::DestinationRejected => "DESTINATION_REJECTED",
            FailureCode::SourceImageNotFound => "SOURCE_IMAGE_NOT_FOUND",
            FailureCode::SourceReadFailed => "SOURCE_READ_FAILED",
        }
    }
}

/// What a [`REPLICATION_JOB`] carries.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Payload {
    /// The source repository (and the destination's: ECR does not rename).
    pub repository: String,
    /// The image's digest.
    pub digest: String,
    /// The tag pushed, if any.
    pub tag: Option<String>,
    /// Destination region.
    pub region: String,
    /// Destination registry.
    pub registry_id: String,
    /// When retries stop (epoch ms; the job's deadline).
    #[serde(default)]
    pub deadline_ms: Option<i64>,
}

/// The hook that enqueues one [`REPLICATION_JOB`] per destination for every manifest PUT
/// a rule matches (module doc).
pub struct ReplicationHook {
    config: ReplicationConfigCell,
    deadline: Duration,
    waker: Option<Waker>,
}

impl ReplicationHook {
    /// A hook reading the configuration from `config`; each job may retry until
    /// `deadline` after the push; `waker` wakes this process's runner after a commit.
    pub fn new(
        config: ReplicationConfigCell,
        deadline: Duration,
        waker: Option<Waker>,
    ) -> ReplicationHook {
        ReplicationHook {
            config,
            deadline,
            waker,
        }
    }
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// Attempts per job: the deadline, not the count, ends the retries.
const MAX_ATTEMPTS: u32 = 10_000;

/// The job kind that replicates one deletion (a manifest by digest, or a tag) to one
/// destination, for rules with `deleteReplication` enabled.
pub const DELETE_JOB: &str = "replication.delete";

/// What a [`DELETE_JOB`] carries.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeletePayload {
    /// The repository.
    pub repository: String,
    /// What was deleted: a digest (the image and its tags) or a tag.
    pub reference: String,
    /// Destination region.
    pub region: String,
    /// Destination registry.
    pub registry_id: String,
}

impl ReplicationHook {
    /// One [`DELETE_JOB`] per destination that replicates `repository`'s deletions.
    fn delete_jobs(&self, repository: &RepositoryName, reference: String) -> Vec<NewJob> {
        let cfg = self.config.get();
        let deadline = now_ms().saturating_add(self.deadline.as_millis() as i64);
        cfg.delete_destinations_for(repository.as_str())
            .into_iter()
            .map(|d| {
                let key = format!("{repository}@{reference}|{}|{}", d.region, d.registry_id);
                let payload = DeletePayload {
                    repository: repository.to_string(),
                    reference: reference.clone(),
                    region: d.region.clone(),
                    registry_id: d.registry_id.clone(),
                };
                NewJob::new(
                    DELETE_JOB,
                    serde_json::to_value(&payload).unwrap_or_default(),
                )
                .idempotency_key(key)
                .max_attempts(MAX_ATTEMPTS)
                .deadline(deadline)
            })
            .collect()
    }
}

impl ChangeHook for ReplicationHook {
    fn jobs(&self, change: &Change<'_>) -> Vec<NewJob> {
        if replicated_from().is_some() {
            return Vec::new();
        }
        let (repository, digest, tag) = match *change {
            Change::ManifestPut {
                repository,
                digest,
                tag,
                ..
            } => (repository, digest, tag),
            Change::ManifestDeleted {
                repository, digest, ..
            } => return self.delete_jobs(repository, digest.to_string()),
            Change::TagDeleted {
                repository, tag, ..
            } => return self.delete_jobs(repository, tag.as_str().to_string()),
        };
        let cfg = self.config.get();
        let deadline = now_ms().saturating_add(self.deadline.as_millis() as i64);
        cfg.destinations_for(repository.as_str())
            .into_iter()
            .map(|d| {
                let payload = Payload {
                    repository: repository.to_string(),
                    digest: digest.to_string(),
                    tag: tag.map(|t| t.as_str().to_string()),
                    region: d.region.clone(),
                    registry_id: d.registry_id.clone(),
                    deadline_ms: Some(deadline),
                };
                NewJob::new(
                    REPLICATION_JOB,
                    serde_json::to_value(&payload).unwrap_or_default(),
                )
                .idempotency_key(job_key(
                    repository,
                    digest,
                    &d.region,
                    &d.registry_id,
                    tag.map(|t| t.as_str()),
                ))
                .max_attempts(MAX_ATTEMPTS)
                .deadline(deadline)
            })
            .collect()
    }

    fn committed(&self) {
        if let Some(w) = &self.waker {
            w.wake();
        }
    }
}

/// A copy step's failure.
#[derive(Debug)]
struct CopyError {
    code: FailureCode,
    message: String,
    retryable: bool,
}

impl CopyError {
    fn permanent(code: FailureCode, message: impl Into<String>) -> CopyError {
        CopyError {
            code,
            message: message.into(),
            retryable: false,
        }
    }

    fn into_job_error(self) -> JobError {
        let text = format!("{}: {}", self.code.as_str(), self.message);
        if self.retryable {
            JobError::Retryable(text)
        } else {
            JobError::Permanent(text)
        }
    }
}

fn source_error(e: RegistryError) -> CopyError {
    match e {
        RegistryError::ManifestUnknown(r) | RegistryError::NameUnknown(r) => CopyError::permanent(
            FailureCode::SourceImageNotFound,
            format!("{r} is no longer in the source registry"),
        ),
        other => CopyError {
            code: FailureCode::SourceReadFailed,
            message: other.to_string(),
            retryable: true,
        },
    }
}

fn network_error(what: &str, e: reqwest::Error) -> CopyError {
    CopyError {
        code: FailureCode::DestinationUnreachable,
        message: format!("{what}: {e}"),
        retryable: true,
    }
}

/// The error for a destination's answer `status` with `body` to `what`.
fn status_error(what: &str, status: StatusCode, body: &str) -> CopyError {
    let body = body.chars().take(500).collect::<String>();
    let message = format!("{what}: the destination answered {status}: {body}");
    let (code, retryable) = match status.as_u16() {
        408 | 429 | 500..=599 => (FailureCode::DestinationUnreachable, true),
        401 => (FailureCode::DestinationAuthenticationFailed, false),
        403 => (FailureCode::DestinationAccessDenied, false),
        _ => (FailureCode::DestinationRejected, false),
    };
    CopyError {
        code,
        message,
        retryable,
    }
}

/// Settings of [`ReplicateImage`].
#[derive(Debug, Clone)]
pub struct CopySettings {
    /// This registry's region and ID, sent in [`SOURCE_HEADER`].
    pub source_region: String,
    /// This registry's ID.
    pub source_registry_id: String,
    /// Timeout of one request without a body (HEAD, manifest PUT); blob uploads get
    /// this long per MiB on top.
    pub request_timeout: Duration,
    /// The longest delay between two attempts (the runner's backoff maximum): a
    /// transient failure this close to the deadline is the last one, and is recorded
    /// as `FAILED` (with its event) by the handler itself.
    pub max_backoff: Duration,
}

/// Where [`ReplicateImage`] sends its `ECR Replication Action` events: the job queue
/// (one `event.fanout` job per outcome) and this registry's origin.
pub struct EventSink {
    /// The queue.
    pub jobs: Arc<dyn JobStore>,
    /// This registry's account and region.
    pub origin: Origin,
}

/// The handler of [`REPLICATION_JOB`] (module doc).
pub struct ReplicateImage {
    registry: Registry,
    peers: Vec<Peer>,
    settings: CopySettings,
    http: reqwest::Client,
    events: Option<EventSink>,
    /// Mount hints: (region, registry, digest) → the destination repository this
    /// process last sent the blob to. In memory only: after a restart a blob is uploaded
    /// once more per destination, then mounted again.
    sent_to: std::sync::Mutex<std::collections::HashMap<(String, String, Digest), String>>,
}

impl ReplicateImage {
    /// A handler copying from `registry` to `peers`. Errors: the HTTP client cannot be
    /// built (TLS roots).
    pub fn new(
        registry: Registry,
        peers: Vec<Peer>,
        settings: CopySettings,
    ) -> Result<ReplicateImage, String> {
        let http = reqwest::Client::builder()
            .connect_timeout(settings.request_timeout)
            .build()
            .map_err(|e| format!("building the replication HTTP client: {e}"))?;
        Ok(ReplicateImage {
            registry,
            peers,
            settings,
            http,
            events: None,
            sent_to: Default::default(),
        })
    }

    /// The same handler emitting `ECR Replication Action` events (SUCCESS, FAILED) to
    /// `sink`.
    pub fn with_events(mut self, sink: EventSink) -> ReplicateImage {
        self.events = Some(sink);
        self
    }

    /// Enqueues the outcome's event (idempotency key: the replication job), so a rerun
    /// of the handler after a crash does not emit it twice while it is pending.
    async fn emit(&self, job_id: i64, p: &Payload, failure: Option<&CopyError>) {
        let Some(sink) = &self.events else { return };
        let detail = ReplicationAction {
            result: if failure.is_some() {
                "FAILED"
            } else {
                "SUCCESS"
            }
            .into(),
            repository_name: p.repository.clone(),
            image_digest: p.digest.clone(),
            source_account: sink.origin.account.clone(),
            action_type: "REPLICATE".into(),
            source_region: sink.origin.region.clone(),
            image_tag: p.tag.clone(),
            destination_region: Some(p.region.clone()),
            destination_account: Some(p.registry_id.clone()),
            failure_code: failure.map(|e| e.code.as_str().to_string()),
            failure_reason: failure.map(|e| e.message.clone()),
        };
        let job =
            event_job(&detail, &sink.origin).idempotency_key(format!("replication-event/{job_id}"));
        if let Err(e) = sink.jobs.enqueue(&job, now_ms()).await {
            tracing::warn!(error = %e, job_id, "enqueueing the ECR Replication Action event failed");
        }
    }
}

/// One copy: the source repository, the destination, and the HTTP client.
struct Copy<'a> {
    h: &'a ReplicateImage,
    peer: &'a Peer,
    repo: RepositoryName,
    base: String,
}

impl Copy<'_> {
    fn request(&self, method: reqwest::Method, url: &str) -> reqwest::RequestBuilder {
        self.h
            .http
            .request(method, url)
            .basic_auth(&self.peer.access_key_id, Some(&self.peer.secret_access_key))
            .header(
                SOURCE_HEADER,
                format!(
                    "{}/{}",
                    self.h.settings.source_region, self.h.settings.source_registry_id
                ),
            )
            .timeout(self.h.settings.request_timeout)
    }

    async fn send(
        &self,
        what: &str,
        req: reqwest::RequestBuilder,
    ) -> Result<reqwest::Response, CopyError> {
        req.send().await.map_err(|e| network_error(what, e))
    }

    async fn expect(
        &self,
        what: &str,
        resp: reqwest::Response,
        ok: &[StatusCode],
    ) -> Result<reqwest::Response, CopyError> {
        if ok.contains(&resp.status()) {
            return Ok(resp);
        }
        let status = resp.status();
        let body = resp.text().await.unwrap_or_default();
        Err(status_error(what, status, &body))
    }

    /// Copies the blob unless the destination has it: `HEAD` first; then, if this process
    /// sent the blob to another repository of the destination before, a cross-repository
    /// mount from there (distribution-spec § Mounting a blob from another repository);
    /// else (or if the destination answers 202 to the mount) the bytes. Returns what
    /// happened.
    async fn blob(&self, digest: &Digest) -> Result<BlobCopy, CopyError> {
        let url = format!("{}/v2/{}/blobs/{digest}", self.base, self.repo);
        let what = format!("checking blob {digest}");
        let head = self
            .send(&what, self.request(reqwest::Method::HEAD, &url))
            .await?;
        match head.status() {
            StatusCode::OK => return Ok(BlobCopy::Present),
            StatusCode::NOT_FOUND => {}
            s => return Err(status_error(&what, s, "")),
        }
        let what = format!("uploading blob {digest}");
        let key = (
            self.peer.region.clone(),
            self.peer.registry_id.clone(),
            digest.clone(),
        );
        let from = self
            .h
            .sent_to
            .lock()
            .ok()
            .and_then(|m| m.get(&key).cloned());
        let start = match from.filter(|f| *f != self.repo.as_str()) {
            Some(from) => format!(
                "{}/v2/{}/blobs/uploads/?mount={digest}&from={from}",
                self.base, self.repo
            ),
            None => format!("{}/v2/{}/blobs/uploads/", self.base, self.repo),
        };
        let resp = self
            .send(&what, self.request(reqwest::Method::POST, &start))
            .await?;
        let resp = self
            .expect(&what, resp, &[StatusCode::ACCEPTED, StatusCode::CREATED])
            .await?;
        if resp.status() == StatusCode::CREATED {
            return Ok(BlobCopy::Mounted);
        }
        let location = resp
            .headers()
            .get(reqwest::header::LOCATION)
            .and_then(|v| v.to_str().ok())
            .ok_or_else(|| {
                CopyError::permanent(
                    FailureCode::DestinationRejected,
                    format!("{what}: the destination's 202 has no Location"),
                )
            })?;
        let location = if location.starts_with('/') {
            format!("{}{location}", self.base)
        } else {
            location.to_string()
        };
        let sep = if location.contains('?') { '&' } else { '?' };
        let put_url = format!("{location}{sep}digest={digest}");
        let content = self
            .h
            .registry
            .open_blob(&self.repo, digest)
            .await
            .map_err(source_error)?;
        let len = content.len();
        // Streamed from the store in ≤ 1 MiB pieces: never the whole blob in memory.
        let stream = content.read(0..len).await.map_err(|e| CopyError {
            code: FailureCode::SourceReadFailed,
            message: format!("reading blob {digest}: {e}"),
            retryable: true,
        })?;
        let timeout = self.h.settings.request_timeout + Duration::from_secs(len >> 20);
        let req = self
            .request(reqwest::Method::PUT, &put_url)
            .timeout(timeout)
            .header(reqwest::header::CONTENT_TYPE, "application/octet-stream")
            .header(reqwest::header::CONTENT_LENGTH, len)
            .body(reqwest::Body::wrap_stream(stream));
        let resp = self.send(&what, req).await?;
        self.expect(&what, resp, &[StatusCode::CREATED]).await?;
        if let Ok(mut m) = self.h.sent_to.lock() {
            if m.len() >= SENT_TO_CAPACITY {
                m.clear();
            }
            m.insert(key, self.repo.to_string());
        }
        Ok(BlobCopy::Sent)
    }

    /// Copies the manifest `digest` (and all it references) unless the destination has
    /// it, then puts `tag` on it. Index children first, then blobs, then the manifest.
    async fn manifest(&self, digest: &Digest, stats: &mut Stats) -> Result<(), CopyError> {
        let url = format!("{}/v2/{}/manifests/{digest}", self.base, self.repo);
        let what = format!("checking manifest {digest}");
        let head = self
            .send(&what, self.request(reqwest::Method::HEAD, &url))
            .await?;
        match head.status() {
            StatusCode::OK => return Ok(()),
            // NAME_UNKNOWN (no repository yet) is a 404 too: the push creates it.
            StatusCode::NOT_FOUND => {}
            s => {
                // A HEAD answer has no body: for a refusal, ask again with GET so the
                // status carries the destination's reason (the action it denied).
                let mut reason = String::new();
                if s == StatusCode::UNAUTHORIZED || s == StatusCode::FORBIDDEN {
                    if let Ok(r) = self
                        .send(&what, self.request(reqwest::Method::GET, &url))
                        .await
                    {
                        reason = r.text().await.unwrap_or_default();
                    }
                }
                return Err(status_error(&what, s, &reason));
            }
        }
        let row = self
            .h
            .registry
            .manifest_for_replication(&self.repo, digest)
            .await
            .map_err(source_error)?;
        let parsed = ParsedManifest::parse(&row.media_type, &row.body).map_err(|e| {
            CopyError::permanent(
                FailureCode::SourceReadFailed,
                format!("manifest {digest} does not parse: {e}"),
            )
        })?;
        for child in &parsed.children {
            Box::pin(self.manifest(&child.descriptor.digest, stats)).await?;
        }
        for b in &parsed.blobs {
            match self.blob(&b.digest).await? {
                BlobCopy::Sent => {
                    stats.blobs_sent += 1;
                    stats.bytes_sent += b.size;
                }
                BlobCopy::Mounted => stats.blobs_mounted += 1,
                BlobCopy::Present => stats.blobs_present += 1,
            }
        }
        self.put_manifest(&row.media_type, &row.body, &digest.to_string())
            .await?;
        stats.manifests_sent += 1;
        Ok(())
    }

    async fn put_manifest(
        &self,
        media_type: &str,
        body: &bytes::Bytes,
        reference: &str,
    ) -> Result<(), CopyError> {
        let url = format!("{}/v2/{}/manifests/{reference}", self.base, self.repo);
        let what = format!("putting manifest {reference}");
        let req = self
            .request(reqwest::Method::PUT, &url)
            .header(reqwest::header::CONTENT_TYPE, media_type)
            .body(body.clone());
        let resp = self.send(&what, req).await?;
        self.expect(&what, resp, &[StatusCode::CREATED]).await?;
        Ok(())
    }
}

impl Copy<'_> {
    /// Puts the manifest by tag. `Ok(None)`: the tag names it now; `Ok(Some(reason))`:
    /// the destination refused to move a tag it keeps immutable (`TAG_INVALID` naming
    /// immutability, as Berth and ECR answer), which is not a failure of the copy — the
    /// image is there by digest. Other refusals are errors as for any request.
    async fn put_tag(
        &self,
        media_type: &str,
        body: &bytes::Bytes,
        tag: &str,
    ) -> Result<Option<String>, CopyError> {
        let url = format!("{}/v2/{}/manifests/{tag}", self.base, self.repo);
        let what = format!("putting manifest {tag}");
        let req = self
            .request(reqwest::Method::PUT, &url)
            .header(reqwest::header::CONTENT_TYPE, media_type)
            .body(body.clone());
        let resp = self.send(&what, req).await?;
        let status = resp.status();
        if status == StatusCode::CREATED {
            return Ok(None);
        }
        let text = resp.text().await.unwrap_or_default();
        if status == StatusCode::BAD_REQUEST && immutable_tag_refusal(&text) {
            let message = serde_json::from_str::<serde_json::Value>(&text)
                .ok()
                .and_then(|v| v["errors"][0]["message"].as_str().map(str::to_owned))
                .unwrap_or(text);
            return Ok(Some(message));
        }
        Err(status_error(&what, status, &text))
    }
}

/// Whether an OCI error body is a refusal to move an immutable tag: `TAG_INVALID` whose
/// message speaks of immutability or of a tag that cannot be overwritten (Berth's and
/// ECR's wording).
fn immutable_tag_refusal(body: &str) -> bool {
    let lower = body.to_ascii_lowercase();
    body.contains("TAG_INVALID")
        && (lower.contains("immutable") || lower.contains("cannot be overwritten"))
}

/// What [`Copy::blob`] did.
enum BlobCopy {
    /// The destination repository had it.
    Present,
    /// Mounted from another repository of the destination.
    Mounted,
    /// The bytes were sent.
    Sent,
}

/// How many (destination, digest) → repository entries the mount hints keep before
/// starting over (a hint only saves bytes; losing it costs one upload).
const SENT_TO_CAPACITY: usize = 100_000;

/// What one copy did (stored as the job's result).
#[derive(Debug, Default, Serialize)]
struct Stats {
    manifests_sent: u64,
    blobs_sent: u64,
    blobs_mounted: u64,
    blobs_present: u64,
    bytes_sent: u64,
    referrers: u64,
    tag: Option<String>,
    /// Why the tag was not moved (the destination keeps it immutable on another image).
    #[serde(rename = "tagNotMoved", skip_serializing_if = "Option::is_none")]
    tag_not_moved: Option<String>,
}

#[async_trait::async_trait]
impl JobHandler for ReplicateImage {
    async fn run(&self, job: JobInput) -> Result<serde_json::Value, JobError> {
        let p: Payload = serde_json::from_value(job.payload)
            .map_err(|e| JobError::Permanent(format!("bad replication payload: {e}")))?;
        match self.copy(&p).await {
            Ok(v) => {
                self.emit(job.id, &p, None).await;
                Ok(v)
            }
            Err(mut e) => {
                // The last transient failure before the deadline ends the job here, so
                // its FAILED status and event are the handler's own.
                let last = p.deadline_ms.is_some_and(|d| {
                    now_ms().saturating_add(self.settings.max_backoff.as_millis() as i64) >= d
                }) || job.attempt >= job.max_attempts;
                if e.retryable && last {
                    e.retryable = false;
                    // Say what happened: with a deadline shorter than the longest backoff
                    // this may be the first attempt.
                    e.message = format!(
                        "{} (attempt {}; gave up: a further retry, up to {} s away, would \
                         pass the replication deadline, replication_deadline_secs)",
                        e.message,
                        job.attempt,
                        self.settings.max_backoff.as_secs()
                    );
                }
                if !e.retryable {
                    self.emit(job.id, &p, Some(&e)).await;
                }
                Err(e.into_job_error())
            }
        }
    }
}

impl ReplicateImage {
    async fn copy(&self, p: &Payload) -> Result<serde_json::Value, CopyError> {
        let bad = |what: &str| {
            CopyError::permanent(FailureCode::SourceReadFailed, format!("bad {what} in job"))
        };
        let repo = RepositoryName::parse(&p.repository).map_err(|_| bad("repository"))?;
        let digest: Digest = p.digest.parse().map_err(|_| bad("digest"))?;
        let peer = self
            .peers
            .iter()
            .find(|x| x.region == p.region && x.registry_id == p.registry_id)
            .ok_or_else(|| {
                CopyError::permanent(
                    FailureCode::PeerNotConfigured,
                    format!(
                        "no [[replication.peers]] entry for registry {} in region {}: add its \
                         endpoint and credentials to this registry's config file",
                        p.registry_id, p.region
                    ),
                )
            })?;
        let copy = Copy {
            h: self,
            peer,
            repo: repo.clone(),
            base: peer.endpoint.trim_end_matches('/').to_string(),
        };
        let mut stats = Stats::default();
        self.copy_all(&copy, p, &repo, &digest, &mut stats)
            .await
            .map_err(|e| self.explain(e, p))?;
        tracing::info!(
            repository = %repo, %digest, region = %p.region, registry = %p.registry_id,
            blobs_sent = stats.blobs_sent, bytes_sent = stats.bytes_sent,
            "image replicated"
        );
        Ok(serde_json::to_value(&stats).unwrap_or_default())
    }

    /// A refusal by the destination's policies says which statement its registry policy
    /// needs (the one ECR's documentation shows for cross-account replication).
    fn explain(&self, mut e: CopyError, p: &Payload) -> CopyError {
        if e.code == FailureCode::DestinationAccessDenied {
            let statement = serde_json::json!({
                "Sid": "ReplicationAccessCrossAccount",
                "Effect": "Allow",
                "Principal": {"AWS": format!("arn:aws:iam::{}:root", self.settings.source_registry_id)},
                "Action": ["ecr:CreateRepository", "ecr:ReplicateImage"],
                "Resource": format!("arn:aws:ecr:{}:{}:repository/*", p.region, p.registry_id),
            });
            e.message = format!(
                "registry {} in {} refused replication from registry {} in {}: its registry \
                 policy must allow this account ecr:ReplicateImage (and ecr:CreateRepository \
                 for repositories it does not have yet); add this statement to it: {statement}. \
                 The destination said: {}",
                p.registry_id,
                p.region,
                self.settings.source_registry_id,
                self.settings.source_region,
                e.message
            );
        }
        e
    }

    async fn copy_all(
        &self,
        copy: &Copy<'_>,
        p: &Payload,
        repo: &RepositoryName,
        digest: &Digest,
        stats: &mut Stats,
    ) -> Result<(), CopyError> {
        let bad = |what: &str| {
            CopyError::permanent(FailureCode::SourceReadFailed, format!("bad {what} in job"))
        };
        copy.manifest(digest, stats).await?;
        // The tag, if it still names this image in the source (a later push that moved it
        // has its own job).
        if let Some(t) = &p.tag {
            let tag = Tag::parse(t).map_err(|_| bad("tag"))?;
            let here = self
                .registry
                .head_manifest(repo, &Reference::Tag(tag))
                .await
                .ok()
                .map(|h| h.digest);
            if here.as_ref() == Some(digest) {
                let row = self
                    .registry
                    .manifest_for_replication(repo, digest)
                    .await
                    .map_err(source_error)?;
                match copy.put_tag(&row.media_type, &row.body, t).await? {
                    None => stats.tag = Some(t.clone()),
                    Some(reason) => {
                        tracing::warn!(
                            repository = %repo, %digest, tag = %t, region = %p.region,
                            registry = %p.registry_id, %reason,
                            "replicated by digest; the destination keeps the tag on another image"
                        );
                        stats.tag_not_moved = Some(format!(
                            "tag '{t}' points to another image in registry {} in {} and is \
                             immutable there; the image was replicated by digest ({reason})",
                            p.registry_id, p.region
                        ));
                    }
                }
            }
        }
        // Referrers after the image (signatures, SBOMs: their subject is this image).
        let referrers = self
            .registry
            .referrers(repo, digest, None)
            .await
            .map_err(source_error)?;
        for r in referrers {
            copy.manifest(&r.digest, stats).await?;
            stats.referrers += 1;
        }
        Ok(())
    }
}

/// The handler of [`DELETE_JOB`]: `DELETE /v2/<name>/manifests/<reference>` at the
/// destination (distribution-spec § Deleting manifests / tags); gone already (404) is
/// success, other failures are classified as for copies.
pub struct ReplicateDelete(pub Arc<ReplicateImage>);

#[async_trait::async_trait]
impl JobHandler for ReplicateDelete {
    async fn run(&self, job: JobInput) -> Result<serde_json::Value, JobError> {
        let p: DeletePayload = serde_json::from_value(job.payload)
            .map_err(|e| JobError::Permanent(format!("bad replication payload: {e}")))?;
        let h = &self.0;
        let peer = h
            .peers
            .iter()
            .find(|x| x.region == p.region && x.registry_id == p.registry_id)
            .ok_or_else(|| {
                JobError::Permanent(format!(
                    "{}: no [[replication.peers]] entry for registry {} in region {}",
                    FailureCode::PeerNotConfigured.as_str(),
                    p.registry_id,
                    p.region
                ))
            })?;
        let repo = RepositoryName::parse(&p.repository)
            .map_err(|_| JobError::Permanent("bad repository in job".into()))?;
        let copy = Copy {
            h,
            peer,
            repo,
            base: peer.endpoint.trim_end_matches('/').to_string(),
        };
        let url = format!("{}/v2/{}/manifests/{}", copy.base, copy.repo, p.reference);
        let what = format!("deleting {}", p.reference);
        let resp = copy
            .send(&what, copy.request(reqwest::Method::DELETE, &url))
            .await
            .map_err(CopyError::into_job_error)?;
        copy.expect(&what, resp, &[StatusCode::ACCEPTED, StatusCode::NOT_FOUND])
            .await
            .map_err(CopyError::into_job_error)?;
        Ok(serde_json::json!({"deleted": p.reference}))
    }
}
