//! The OCI error response (distribution-spec § Error Codes): the one place where error
//! codes are declared ([`ErrorCode`]: code, spec id, default status and description side
//! by side, after CNCF distribution's `errcode` registry) and where [`RegistryError`]s
//! become wire codes and HTTP statuses. Every [`OciError`] is built from an
//! [`ErrorCode`], so a new code is added in one place; the table below is checked
//! against the enum by a unit test.
//!
//! | code | spec | status | description | raised for |
//! |---|---|---|---|---|
//! | `BLOB_UNKNOWN` | code-1 | 404 | blob unknown to registry | blob not linked to the repository; 416 for a blob `Range` that selects no byte |
//! | `BLOB_UPLOAD_INVALID` | code-2 | 400 | blob upload invalid | busy session, bad Content-Range, bad body; 416 for an out-of-order chunk |
//! | `BLOB_UPLOAD_UNKNOWN` | code-3 | 404 | blob upload unknown to registry | no such upload session |
//! | `DIGEST_INVALID` | code-4 | 400 | provided digest did not match uploaded content | malformed or missing digest, or content ≠ digest |
//! | `MANIFEST_BLOB_UNKNOWN` | code-5 | 404 | manifest references a manifest or blob unknown to registry | a referenced blob or child manifest is missing |
//! | `MANIFEST_INVALID` | code-6 | 400 | manifest invalid | malformed manifest |
//! | `MANIFEST_UNKNOWN` | code-7 | 404 | manifest unknown to registry | no such manifest or tag; a reference that is not a valid tag (GET/HEAD/DELETE); a tag whose type the `Accept` header excludes |
//! | `NAME_INVALID` | code-8 | 400 | invalid repository name | bad repository name |
//! | `NAME_UNKNOWN` | code-9 | 404 | repository name not known to registry | no such repository |
//! | `SIZE_INVALID` | code-10 | 400 | provided length did not match content length | length mismatch; 413 for a manifest over 4 MiB |
//! | `UNAUTHORIZED` | code-11 | 401 | authentication required | missing or bad credentials (with a `WWW-Authenticate` challenge) |
//! | `DENIED` | code-12 | 403 | requested access to the resource is denied | policies refuse the action; 409 for deleting a manifest an index still references |
//! | `UNSUPPORTED` | code-13 | 405 | the operation is unsupported | a method the path does not take (with `Allow`); 404 for no endpoint at the path; 400 for a bad `n`; 409 for ECR-only outcomes the OCI API does not produce (repository exists, not empty, image exists, too many tags, empty upload, layer exists) |
//! | `TOOMANYREQUESTS` | code-14 | 429 | too many requests | not raised yet |
//! | `TAG_INVALID` | — | 400 | manifest tag is invalid | a PUT to a reference that is not a valid tag; a push that would move an immutable tag (kept from distribution: Docker shows its message) |
//! | `UNKNOWN` | — | 500 | unknown error | internal fault (details only in the log) |

use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use berth_registry::RegistryError;

/// Declares [`ErrorCode`] and its table from one list.
macro_rules! error_codes {
    ($($(#[$doc:meta])* $v:ident = ($code:literal, $spec:literal, $status:ident, $desc:literal);)*) => {
        /// Every error code the OCI API answers with (distribution-spec § Error Codes
        /// code-1 … code-14, plus distribution's `TAG_INVALID` and `UNKNOWN`).
        #[derive(Debug, Clone, Copy, PartialEq, Eq)]
        pub enum ErrorCode {
            $($(#[$doc])* $v,)*
        }

        impl ErrorCode {
            /// Every code, in the table's order.
            pub const ALL: &'static [ErrorCode] = &[$(ErrorCode::$v),*];

            /// The code as sent in `errors[].code`.
            pub fn as_str(self) -> &'static str {
                match self { $(ErrorCode::$v => $code,)* }
            }

            /// The spec's identifier (`code-1` …), or `None` for codes outside the spec.
            pub fn spec_id(self) -> Option<&'static str> {
                match self { $(ErrorCode::$v => (!$spec.is_empty()).then_some($spec),)* }
            }

            /// The HTTP status the code is answered with unless a case says otherwise.
            pub fn status(self) -> StatusCode {
                match self { $(ErrorCode::$v => StatusCode::$status,)* }
            }

            /// The spec's one-line description.
            pub fn description(self) -> &'static str {
                match self { $(ErrorCode::$v => $desc,)* }
            }
        }
    };
}

error_codes! {
    /// code-1: a blob is not known to the repository.
    BlobUnknown = ("BLOB_UNKNOWN", "code-1", NOT_FOUND, "blob unknown to registry");
    /// code-2: an upload request is invalid.
    BlobUploadInvalid = ("BLOB_UPLOAD_INVALID", "code-2", BAD_REQUEST, "blob upload invalid");
    /// code-3: an upload session is not known.
    BlobUploadUnknown = ("BLOB_UPLOAD_UNKNOWN", "code-3", NOT_FOUND, "blob upload unknown to registry");
    /// code-4: a digest is malformed or does not match the content.
    DigestInvalid = ("DIGEST_INVALID", "code-4", BAD_REQUEST, "provided digest did not match uploaded content");
    /// code-5: a manifest references content the repository does not have.
    ManifestBlobUnknown = ("MANIFEST_BLOB_UNKNOWN", "code-5", NOT_FOUND, "manifest references a manifest or blob unknown to registry");
    /// code-6: a manifest is malformed.
    ManifestInvalid = ("MANIFEST_INVALID", "code-6", BAD_REQUEST, "manifest invalid");
    /// code-7: a manifest is not known.
    ManifestUnknown = ("MANIFEST_UNKNOWN", "code-7", NOT_FOUND, "manifest unknown to registry");
    /// code-8: a repository name is invalid.
    NameInvalid = ("NAME_INVALID", "code-8", BAD_REQUEST, "invalid repository name");
    /// code-9: a repository is not known.
    NameUnknown = ("NAME_UNKNOWN", "code-9", NOT_FOUND, "repository name not known to registry");
    /// code-10: a length does not match the content.
    SizeInvalid = ("SIZE_INVALID", "code-10", BAD_REQUEST, "provided length did not match content length");
    /// code-11: credentials are missing or do not verify.
    Unauthorized = ("UNAUTHORIZED", "code-11", UNAUTHORIZED, "authentication required");
    /// code-12: the caller may not do this.
    Denied = ("DENIED", "code-12", FORBIDDEN, "requested access to the resource is denied");
    /// code-13: the operation is not supported.
    Unsupported = ("UNSUPPORTED", "code-13", METHOD_NOT_ALLOWED, "the operation is unsupported");
    /// code-14: the caller sent too many requests.
    TooManyRequests = ("TOOMANYREQUESTS", "code-14", TOO_MANY_REQUESTS, "too many requests");
    /// Distribution's `TAG_INVALID` (not in the spec's list): a tag cannot be written.
    TagInvalid = ("TAG_INVALID", "", BAD_REQUEST, "manifest tag is invalid");
    /// Distribution's `UNKNOWN` (not in the spec's list): an internal fault.
    Unknown = ("UNKNOWN", "", INTERNAL_SERVER_ERROR, "unknown error");
}

/// An error in the OCI wire shape: `{"errors":[{"code","message","detail"}]}`.
#[derive(Debug)]
pub struct OciError {
    /// HTTP status (the code's default unless [`OciError::with_status`] changed it).
    pub status: StatusCode,
    /// The error code.
    pub code: ErrorCode,
    /// Human-readable message.
    pub message: String,
    /// Structured detail (may be null).
    pub detail: serde_json::Value,
    /// For 416 answers: the upload's current `Range` header value.
    pub range: Option<String>,
}

impl OciError {
    /// An error with the code's default status and no detail.
    pub fn new(code: ErrorCode, message: impl Into<String>) -> OciError {
        OciError {
            status: code.status(),
            code,
            message: message.into(),
            detail: serde_json::Value::Null,
            range: None,
        }
    }

    /// The same error answered with another status (the cases in the module table).
    pub fn with_status(mut self, status: StatusCode) -> OciError {
        self.status = status;
        self
    }

    /// 405 `UNSUPPORTED` for a method an endpoint does not take.
    pub fn method_not_allowed(method: &axum::http::Method, what: &str) -> OciError {
        OciError::new(
            ErrorCode::Unsupported,
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
        use ErrorCode as C;
        use RegistryError as E;
        let msg = e.to_string();
        let (code, status) = match &e {
            E::NameUnknown(_) | E::NotCreatedOnPush(_) => (C::NameUnknown, None),
            E::NameInvalid(_) => (C::NameInvalid, None),
            E::TagInvalid(_) | E::TagImmutable { .. } => (C::TagInvalid, None),
            E::BlobUnknown(_) => (C::BlobUnknown, None),
            E::BlobUploadUnknown(_) => (C::BlobUploadUnknown, None),
            E::BlobUploadInvalid(_) | E::Body(_) => (C::BlobUploadInvalid, None),
            E::RangeInvalid { .. } => (
                C::BlobUploadInvalid,
                Some(StatusCode::RANGE_NOT_SATISFIABLE),
            ),
            E::DigestInvalid(_) | E::ManifestDigestMismatch { .. } => (C::DigestInvalid, None),
            E::SizeInvalid(_) => (C::SizeInvalid, None),
            E::ManifestUnknown(_) => (C::ManifestUnknown, None),
            E::ManifestInvalid(_) => (C::ManifestInvalid, None),
            E::ManifestTooLarge(_) => (C::SizeInvalid, Some(StatusCode::PAYLOAD_TOO_LARGE)),
            E::ManifestBlobUnknown { .. } => (C::ManifestBlobUnknown, None),
            E::Conflict(_) => (C::Denied, Some(StatusCode::CONFLICT)),
            E::PullBlocked(_) => (C::Denied, None),
            E::RepositoryAlreadyExists(_)
            | E::RepositoryNotEmpty(_)
            | E::ImageAlreadyExists { .. }
            | E::TooManyTags(_)
            | E::EmptyUpload(_)
            | E::BlobExists(_)
            | E::LifecyclePolicyInvalid(_)
            | E::LifecyclePolicyNotFound(_)
            | E::LifecyclePreviewInProgress(_)
            | E::LifecyclePreviewNotFound(_)
            | E::ReplicationConfigInvalid(_)
            | E::TemplateAlreadyExists(_)
            | E::TemplateNotFound(_) => (C::Unsupported, Some(StatusCode::CONFLICT)),
            E::Internal(_) => (C::Unknown, None),
        };
        let mut err = OciError::new(code, msg);
        if let Some(s) = status {
            err.status = s;
        }
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
        let body = serde_json::json!({"errors": [{"code": self.code.as_str(), "message": self.message, "detail": self.detail}]});
        let mut resp = (self.status, axum::Json(body)).into_response();
        if let Some(r) = self.range.and_then(|r| HeaderValue::from_str(&r).ok()) {
            resp.headers_mut().insert("range", r);
        }
        resp
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // The module doc's table is the enum, row for row: code, spec id, status.
    #[test]
    fn module_table_matches_the_enum() {
        let rows: Vec<Vec<String>> = include_str!("error.rs")
            .lines()
            .filter_map(|l| l.strip_prefix("//! | `"))
            .map(|l| {
                format!("`{l}")
                    .split('|')
                    .map(|c| c.trim().trim_matches('`').to_string())
                    .collect()
            })
            .collect();
        assert_eq!(rows.len(), ErrorCode::ALL.len(), "one table row per code");
        for (row, code) in rows.iter().zip(ErrorCode::ALL) {
            assert_eq!(row[0], code.as_str());
            assert_eq!(row[1], code.spec_id().unwrap_or("—"), "{}", row[0]);
            assert_eq!(row[2], code.status().as_u16().to_string(), "{}", row[0]);
            assert_eq!(row[3], code.description(), "{}", row[0]);
        }
    }

    // § Error Codes: code-1 … code-14 are all declared, numbered in order.
    #[test]
    fn spec_codes_are_numbered_in_order() {
        let spec: Vec<_> = ErrorCode::ALL.iter().filter_map(|c| c.spec_id()).collect();
        let want: Vec<_> = (1..=14).map(|i| format!("code-{i}")).collect();
        assert_eq!(spec, want);
    }
}
