//! The OCI error response (distribution-spec § Error Codes): the one place where
//! [`RegistryError`]s become wire codes and HTTP statuses.
//!
//! | code | status | raised for |
//! |---|---|---|
//! | `BLOB_UNKNOWN` | 404 | blob not linked to the repository |
//! | `BLOB_UPLOAD_INVALID` | 400 / 416 | busy session, bad Content-Range, out-of-order chunk (416) |
//! | `BLOB_UPLOAD_UNKNOWN` | 404 | no such upload session |
//! | `DIGEST_INVALID` | 400 | malformed digest, or content ≠ digest |
//! | `MANIFEST_BLOB_UNKNOWN` | 404 | manifest references a missing blob or child manifest |
//! | `MANIFEST_INVALID` | 400 | malformed manifest |
//! | `MANIFEST_UNKNOWN` | 404 | no such manifest/tag |
//! | `NAME_INVALID` | 400 | bad repository name |
//! | `NAME_UNKNOWN` | 404 | no such repository |
//! | `SIZE_INVALID` | 400 / 413 | length mismatch; manifest over 4 MiB (413) |
//! | `TAG_INVALID` | 400 | bad tag; a push that would move an immutable tag |
//! | `DENIED` | 409 | deleting a manifest an index still references |
//! | `UNSUPPORTED` | 409 | ECR-only outcomes the OCI API does not produce (repository exists, not empty, image exists, too many tags, empty upload, layer exists) |
//! | `UNSUPPORTED` | 405 | method not allowed on the endpoint |
//! | `UNKNOWN` | 500 | internal fault (details only in the log) |

use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use berth_registry::RegistryError;

/// An error in the OCI wire shape: `{"errors":[{"code","message","detail"}]}`.
#[derive(Debug)]
pub struct OciError {
    /// HTTP status.
    pub status: StatusCode,
    /// The spec's error code.
    pub code: &'static str,
    /// Human-readable message.
    pub message: String,
    /// Structured detail (may be null).
    pub detail: serde_json::Value,
    /// For 416 answers: the upload's current `Range` header value.
    pub range: Option<String>,
}

impl OciError {
    /// An error with no detail.
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> OciError {
        OciError {
            status,
            code,
            message: message.into(),
            detail: serde_json::Value::Null,
            range: None,
        }
    }

    /// 405 `UNSUPPORTED` for a method an endpoint does not take.
    pub fn method_not_allowed(method: &axum::http::Method, what: &str) -> OciError {
        OciError::new(
            StatusCode::METHOD_NOT_ALLOWED,
            "UNSUPPORTED",
            format!("{method} is not supported on {what}"),
        )
    }
}

/// The `Range` value for an upload holding `size` bytes (`0-<last byte>`; `0-0` when
/// empty, as distribution and the clients written against it expect).
pub fn range_header(size: u64) -> String {
    format!("0-{}", size.saturating_sub(1))
}

impl From<RegistryError> for OciError {
    fn from(e: RegistryError) -> Self {
        use RegistryError as E;
        let msg = e.to_string();
        let (status, code) = match &e {
            E::NameUnknown(_) | E::NotCreatedOnPush(_) => (StatusCode::NOT_FOUND, "NAME_UNKNOWN"),
            E::NameInvalid(_) => (StatusCode::BAD_REQUEST, "NAME_INVALID"),
            E::TagInvalid(_) | E::TagImmutable { .. } => (StatusCode::BAD_REQUEST, "TAG_INVALID"),
            E::BlobUnknown(_) => (StatusCode::NOT_FOUND, "BLOB_UNKNOWN"),
            E::BlobUploadUnknown(_) => (StatusCode::NOT_FOUND, "BLOB_UPLOAD_UNKNOWN"),
            E::BlobUploadInvalid(_) | E::Body(_) => {
                (StatusCode::BAD_REQUEST, "BLOB_UPLOAD_INVALID")
            }
            E::RangeInvalid { .. } => (StatusCode::RANGE_NOT_SATISFIABLE, "BLOB_UPLOAD_INVALID"),
            E::DigestInvalid(_) | E::ManifestDigestMismatch { .. } => {
                (StatusCode::BAD_REQUEST, "DIGEST_INVALID")
            }
            E::SizeInvalid(_) => (StatusCode::BAD_REQUEST, "SIZE_INVALID"),
            E::ManifestUnknown(_) => (StatusCode::NOT_FOUND, "MANIFEST_UNKNOWN"),
            E::ManifestInvalid(_) => (StatusCode::BAD_REQUEST, "MANIFEST_INVALID"),
            E::ManifestTooLarge(_) => (StatusCode::PAYLOAD_TOO_LARGE, "SIZE_INVALID"),
            E::ManifestBlobUnknown { .. } => (StatusCode::NOT_FOUND, "MANIFEST_BLOB_UNKNOWN"),
            E::Conflict(_) => (StatusCode::CONFLICT, "DENIED"),
            E::RepositoryAlreadyExists(_)
            | E::RepositoryNotEmpty(_)
            | E::ImageAlreadyExists { .. }
            | E::TooManyTags(_)
            | E::EmptyUpload(_)
            | E::BlobExists(_) => (StatusCode::CONFLICT, "UNSUPPORTED"),
            E::Internal(_) => (StatusCode::INTERNAL_SERVER_ERROR, "UNKNOWN"),
        };
        let mut err = OciError::new(status, code, msg);
        match e {
            E::ManifestBlobUnknown { missing, .. } => {
                err.detail = serde_json::json!(missing
                    .iter()
                    .map(|d| serde_json::json!({"digest": d}))
                    .collect::<Vec<_>>());
            }
            E::RangeInvalid { current, .. } => err.range = Some(range_header(current)),
            E::Internal(m) => {
                tracing::error!(error = %m, "internal error");
                err.message = "internal server error; the server log has details".into();
            }
            _ => {}
        }
        err
    }
}

impl IntoResponse for OciError {
    fn into_response(self) -> Response {
        let body = serde_json::json!({"errors": [{"code": self.code, "message": self.message, "detail": self.detail}]});
        let mut resp = (self.status, axum::Json(body)).into_response();
        if let Some(r) = self.range.and_then(|r| HeaderValue::from_str(&r).ok()) {
            resp.headers_mut().insert("range", r);
        }
        resp
    }
}
