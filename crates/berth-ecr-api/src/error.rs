//! The awsJson1_1 error response: `{"__type": <shape name>, "message": …}` with status
//! 400, or 500 for real faults (`ServerException`), `Content-Type:
//! application/x-amz-json-1.1` and `X-Amzn-ErrorType` (ECR_REFERENCE §1.4). The one place
//! where domain errors become ECR error types.
//!
//! | `__type` | raised for |
//! |---|---|
//! | `InvalidParameterException` | a member's length, pattern, enum or range; a bad `nextToken`; a `registryId` this server does not host; an invalid manifest or policy |
//! | `SerializationException` | a body that is not JSON or has members of the wrong type |
//! | `UnknownOperationException` | an `X-Amz-Target` that names no ECR operation |
//! | `UnsupportedOperationException` | an ECR operation of a capability Berth does not have yet |
//! | `MissingAuthenticationTokenException`, `IncompleteSignatureException`, `InvalidSignatureException`, `UnrecognizedClientException`, `ExpiredTokenException` | authentication (berth-iam decides) |
//! | `AccessDeniedException` | the policies do not allow the action |
//! | `RepositoryNotFoundException`, `RepositoryAlreadyExistsException`, `RepositoryNotEmptyException` | repositories |
//! | `ImageNotFoundException`, `ImageAlreadyExistsException`, `ImageTagAlreadyExistsException`, `ImageDigestDoesNotMatchException`, `LayersNotFoundException`, `ReferencedImagesNotFoundException` | images |
//! | `UploadNotFoundException`, `InvalidLayerPartException`, `InvalidLayerException`, `EmptyUploadException`, `LayerAlreadyExistsException`, `LayerInaccessibleException` | layers |
//! | `RepositoryPolicyNotFoundException`, `RegistryPolicyNotFoundException` | policies |
//! | `InvalidTagParameterException`, `TooManyTagsException` | resource tags |
//! | `ServerException` (500) | storage or database faults (details only in the log) |

use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};

/// The awsJson content type.
pub const CONTENT_TYPE: &str = "application/x-amz-json-1.1";

/// An error in the awsJson1_1 wire shape.
#[derive(Debug, Clone)]
pub struct EcrError {
    /// HTTP status: 400, or 500 for `ServerException`.
    pub status: StatusCode,
    /// The `__type`: an ECR error shape name.
    pub kind: &'static str,
    /// The `message`.
    pub message: String,
    /// Extra members some error shapes carry (`InvalidLayerPartException`).
    pub extra: serde_json::Map<String, serde_json::Value>,
}

impl EcrError {
    /// A client error (400) of type `kind`.
    pub fn new(kind: &'static str, message: impl Into<String>) -> EcrError {
        EcrError {
            status: StatusCode::BAD_REQUEST,
            kind,
            message: message.into(),
            extra: serde_json::Map::new(),
        }
    }

    /// A server fault (500 `ServerException`); `cause` is logged, not shown.
    pub fn server(cause: impl std::fmt::Display) -> EcrError {
        tracing::error!(error = %cause, "ECR API internal error");
        EcrError {
            status: StatusCode::INTERNAL_SERVER_ERROR,
            kind: "ServerException",
            message: "internal server error; the server log has details".into(),
            extra: serde_json::Map::new(),
        }
    }

    /// `InvalidParameterException` in ECR's wording:
    /// `Invalid parameter at '<member>' failed to satisfy constraint: '<constraint>'`.
    pub fn invalid_parameter(member: &str, constraint: impl std::fmt::Display) -> EcrError {
        EcrError::new(
            "InvalidParameterException",
            format!("Invalid parameter at '{member}' failed to satisfy constraint: '{constraint}'"),
        )
    }

    /// Adds an extra member to the error body.
    pub fn with(mut self, key: &str, value: impl Into<serde_json::Value>) -> EcrError {
        self.extra.insert(key.to_string(), value.into());
        self
    }
}

impl std::fmt::Display for EcrError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.kind, self.message)
    }
}

impl IntoResponse for EcrError {
    fn into_response(self) -> Response {
        let mut body = self.extra;
        body.insert("__type".into(), self.kind.into());
        body.insert("message".into(), self.message.into());
        let mut resp = (self.status, serde_json::Value::Object(body).to_string()).into_response();
        let h = resp.headers_mut();
        h.insert("content-type", HeaderValue::from_static(CONTENT_TYPE));
        h.insert("x-amzn-errortype", HeaderValue::from_static(self.kind));
        resp
    }
}
