//! The awsJson1_1 error response: `{"__type": <shape name>, "message": …}` with status
//! 400, or 500 for real faults (`ServerException`), `Content-Type:
//! application/x-amz-json-1.1` and `X-Amzn-ErrorType` (ECR_REFERENCE §1.4). The one place
//! where domain errors become ECR error types.
//!
//! Every `__type` Berth answers is a variant of [`EcrErrorType`], declared once with its
//! HTTP status and description (as distribution's `errcode` registry and garage's error
//! enum do), so a new type is added in one place. Types marked "model" are exception
//! shapes of the botocore model (`service-2.json`); the others are the errors every AWS
//! JSON service shares (authentication, serialization, unknown operations). The table
//! below is checked against the enum by `tests/docs.rs`, and the model types against
//! botocore's model.
//!
//! | `__type` | status | origin | raised for |
//! |---|---|---|---|
//! | `InvalidParameterException` | 400 | model | a member's length, pattern, enum or range; a bad `nextToken`; a `registryId` this server does not host; an invalid manifest or policy |
//! | `SerializationException` | 400 | common | a body that is not JSON or has members of the wrong type |
//! | `UnknownOperationException` | 400 | common | an `X-Amz-Target` that names no ECR operation (405 for a method other than POST) |
//! | `UnsupportedOperationException` | 400 | common | an ECR operation of a capability Berth does not have yet |
//! | `MissingAuthenticationTokenException` | 400 | common | a request without credentials |
//! | `IncompleteSignatureException` | 400 | common | a malformed SigV4 signature |
//! | `InvalidSignatureException` | 400 | common | a SigV4 signature that does not verify |
//! | `UnrecognizedClientException` | 400 | common | an access key this registry does not know |
//! | `ExpiredTokenException` | 400 | common | expired credentials |
//! | `AccessDeniedException` | 400 | common | the policies do not allow the action |
//! | `RepositoryNotFoundException` | 400 | model | a repository that does not exist |
//! | `RepositoryAlreadyExistsException` | 400 | model | creating a repository that exists |
//! | `RepositoryNotEmptyException` | 400 | model | deleting a repository with images without `force` |
//! | `ImageNotFoundException` | 400 | model | an image that does not exist |
//! | `ImageAlreadyExistsException` | 400 | model | `PutImage` that would change nothing |
//! | `ImageTagAlreadyExistsException` | 400 | model | moving an immutable tag |
//! | `ImageDigestDoesNotMatchException` | 400 | model | `PutImage` whose manifest does not hash to `imageDigest` |
//! | `LayersNotFoundException` | 400 | model | a manifest referencing layers the repository lacks |
//! | `ReferencedImagesNotFoundException` | 400 | model | an index referencing images the repository lacks |
//! | `UploadNotFoundException` | 400 | model | an upload ID that is not (or no longer) known |
//! | `InvalidLayerPartException` | 400 | model | a part that is not contiguous or too large |
//! | `InvalidLayerException` | 400 | model | a completed upload that does not hash to its digest |
//! | `EmptyUploadException` | 400 | model | completing an upload without parts |
//! | `LayerAlreadyExistsException` | 400 | model | completing an upload of a layer the repository has |
//! | `LayerInaccessibleException` | 400 | model | a download URL for a layer of no image |
//! | `RepositoryPolicyNotFoundException` | 400 | model | a repository without a policy |
//! | `RegistryPolicyNotFoundException` | 400 | model | a registry without a policy |
//! | `InvalidTagParameterException` | 400 | model | a resource tag key or value out of bounds |
//! | `TooManyTagsException` | 400 | model | more than 50 resource tags |
//! | `LifecyclePolicyNotFoundException` | 400 | model | a repository without a lifecycle policy |
//! | `LifecyclePolicyPreviewInProgressException` | 400 | model | starting a preview while one is in progress |
//! | `LifecyclePolicyPreviewNotFoundException` | 400 | model | a repository without a lifecycle policy preview |
//! | `ScanNotFoundException` | 400 | model | scan findings of an image that was never scanned |
//! | `UnsupportedImageTypeException` | 400 | model | StartImageScan of an image index or an artifact without layers to scan |
//! | `TemplateAlreadyExistsException` | 400 | model | creating a repository creation template whose prefix has one |
//! | `TemplateNotFoundException` | 400 | model | updating or deleting a repository creation template that does not exist |
//! | `ServerException` | 500 | model | storage or database faults (details only in the log) |

use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};

/// The awsJson content type.
pub const CONTENT_TYPE: &str = "application/x-amz-json-1.1";

/// Declares [`EcrErrorType`] once: variant, HTTP status, whether the botocore model
/// defines the shape, and its description.
macro_rules! error_types {
    ($($variant:ident, $status:literal, $modeled:literal, $desc:literal;)*) => {
        /// An ECR error type: the `__type` of an error answer (a shape name).
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum EcrErrorType {
            $(
                #[doc = $desc]
                $variant,
            )*
        }

        impl EcrErrorType {
            /// Every error type, in the order of the table above.
            pub const ALL: &'static [EcrErrorType] = &[$(EcrErrorType::$variant),*];

            /// The shape name sent as `__type` and `X-Amzn-ErrorType`.
            pub fn name(self) -> &'static str {
                match self {
                    $(EcrErrorType::$variant => stringify!($variant),)*
                }
            }

            /// The HTTP status it is answered with.
            pub fn status(self) -> StatusCode {
                match self {
                    $(EcrErrorType::$variant => match StatusCode::from_u16($status) {
                        Ok(s) => s,
                        Err(_) => StatusCode::INTERNAL_SERVER_ERROR,
                    },)*
                }
            }

            /// Whether the botocore ECR model defines this shape (the others are errors
            /// common to AWS JSON services).
            pub fn modeled(self) -> bool {
                match self {
                    $(EcrErrorType::$variant => $modeled,)*
                }
            }

            /// What the type means.
            pub fn description(self) -> &'static str {
                match self {
                    $(EcrErrorType::$variant => $desc,)*
                }
            }

            /// The type named `name`, if Berth answers it.
            pub fn from_name(name: &str) -> Option<EcrErrorType> {
                EcrErrorType::ALL.iter().copied().find(|t| t.name() == name)
            }
        }
    };
}

error_types! {
    InvalidParameterException, 400, true, "The specified parameter is invalid.";
    SerializationException, 400, false, "The request body is not valid JSON or a member has the wrong type.";
    UnknownOperationException, 400, false, "The request names no operation of the service.";
    UnsupportedOperationException, 400, false, "The operation belongs to a capability Berth does not implement yet.";
    MissingAuthenticationTokenException, 400, false, "The request carries no credentials.";
    IncompleteSignatureException, 400, false, "The request signature is malformed.";
    InvalidSignatureException, 400, false, "The request signature does not verify.";
    UnrecognizedClientException, 400, false, "The access key is not known.";
    ExpiredTokenException, 400, false, "The credentials have expired.";
    AccessDeniedException, 400, false, "The policies do not allow the action.";
    RepositoryNotFoundException, 400, true, "The specified repository could not be found.";
    RepositoryAlreadyExistsException, 400, true, "The specified repository already exists in the specified registry.";
    RepositoryNotEmptyException, 400, true, "The specified repository contains images; deleting it needs force.";
    ImageNotFoundException, 400, true, "The image requested does not exist in the specified repository.";
    ImageAlreadyExistsException, 400, true, "The image has already been pushed and nothing would change.";
    ImageTagAlreadyExistsException, 400, true, "The tag exists and the repository's tag rules make it immutable.";
    ImageDigestDoesNotMatchException, 400, true, "The image digest does not match the digest computed for the manifest.";
    LayersNotFoundException, 400, true, "The specified layers could not be found in the repository.";
    ReferencedImagesNotFoundException, 400, true, "The manifest list references an image that does not exist.";
    UploadNotFoundException, 400, true, "The upload could not be found or is not valid for this repository.";
    InvalidLayerPartException, 400, true, "The layer part is not valid or not consecutive to the previous part.";
    InvalidLayerException, 400, true, "The layer's computed digest does not match the digest specified.";
    EmptyUploadException, 400, true, "The layer upload does not contain any layer parts.";
    LayerAlreadyExistsException, 400, true, "The image layer already exists in the repository.";
    LayerInaccessibleException, 400, true, "The layer is not associated with an image.";
    RepositoryPolicyNotFoundException, 400, true, "The repository has no repository policy.";
    RegistryPolicyNotFoundException, 400, true, "The registry has no registry policy.";
    InvalidTagParameterException, 400, true, "A resource tag key or value is invalid.";
    TooManyTagsException, 400, true, "The repository would have more than 50 resource tags.";
    LifecyclePolicyNotFoundException, 400, true, "The lifecycle policy could not be found, and no policy is set to the repository.";
    LifecyclePolicyPreviewInProgressException, 400, true, "The previous lifecycle policy preview request has not completed.";
    LifecyclePolicyPreviewNotFoundException, 400, true, "There is no dry run for this repository.";
    ScanNotFoundException, 400, true, "The specified image scan could not be found.";
    UnsupportedImageTypeException, 400, true, "The image is of a type that cannot be scanned.";
    TemplateAlreadyExistsException, 400, true, "The repository creation template already exists.";
    TemplateNotFoundException, 400, true, "The specified repository creation template could not be found.";
    ServerException, 500, true, "A server-side fault.";
}

impl std::fmt::Display for EcrErrorType {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// An error in the awsJson1_1 wire shape.
#[derive(Debug, Clone)]
pub struct EcrError {
    /// HTTP status: the type's, or 405 for a method other than POST.
    pub status: StatusCode,
    /// The `__type`.
    pub kind: EcrErrorType,
    /// The `message`.
    pub message: String,
    /// Extra members some error shapes carry (`InvalidLayerPartException`).
    pub extra: serde_json::Map<String, serde_json::Value>,
}

impl EcrError {
    /// An error of type `kind`, answered with the type's status.
    pub fn new(kind: EcrErrorType, message: impl Into<String>) -> EcrError {
        EcrError {
            status: kind.status(),
            kind,
            message: message.into(),
            extra: serde_json::Map::new(),
        }
    }

    /// A server fault (500 `ServerException`); `cause` is logged, not shown.
    pub fn server(cause: impl std::fmt::Display) -> EcrError {
        tracing::error!(error = %cause, "ECR API internal error");
        EcrError::new(
            EcrErrorType::ServerException,
            "internal server error; the server log has details",
        )
    }

    /// `InvalidParameterException` in ECR's wording:
    /// `Invalid parameter at '<member>' failed to satisfy constraint: '<constraint>'`.
    pub fn invalid_parameter(member: &str, constraint: impl std::fmt::Display) -> EcrError {
        EcrError::new(
            EcrErrorType::InvalidParameterException,
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
        body.insert("__type".into(), self.kind.name().into());
        body.insert("message".into(), self.message.into());
        let mut resp = (self.status, serde_json::Value::Object(body).to_string()).into_response();
        let h = resp.headers_mut();
        h.insert("content-type", HeaderValue::from_static(CONTENT_TYPE));
        h.insert(
            "x-amzn-errortype",
            HeaderValue::from_static(self.kind.name()),
        );
        resp
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use berth_iam::sigv4::SigV4Error;
    use berth_iam::AuthError;

    // Every authentication failure berth-iam reports names a declared type, so the
    // fallback in `serve` is never taken.
    #[test]
    fn authentication_types_are_declared() {
        let errors = [
            AuthError::UnknownAccessKey("k".into()),
            AuthError::WrongSecret("k".into()),
            AuthError::SessionToken("k".into()),
            AuthError::ExpiredCredentials("k".into()),
            AuthError::Revoked("p".into()),
            AuthError::Malformed("m".into()),
            AuthError::SigV4(SigV4Error::MissingAuthentication),
            AuthError::SigV4(SigV4Error::Malformed("m".into())),
            AuthError::SigV4(SigV4Error::SignatureMismatch),
            AuthError::WrongRegion("a".into(), "b".into()),
            AuthError::WrongService("s".into(), "ecr".into()),
            AuthError::Presign("p".into()),
        ];
        for e in errors {
            assert!(
                EcrErrorType::from_name(e.aws_type()).is_some(),
                "{} is not an EcrErrorType",
                e.aws_type()
            );
        }
    }

    #[test]
    fn names_and_statuses() {
        assert_eq!(EcrErrorType::ServerException.status(), 500);
        assert_eq!(EcrErrorType::InvalidParameterException.status(), 400);
        assert_eq!(
            EcrErrorType::from_name("RepositoryNotFoundException"),
            Some(EcrErrorType::RepositoryNotFoundException)
        );
        assert_eq!(EcrErrorType::from_name("Nope"), None);
    }
}
