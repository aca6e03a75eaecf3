//! EventBridge's awsJson1_1 errors: `{"__type": <shape name>, "message": …}`, status 400
//! (500 for `InternalException`), `Content-Type: application/x-amz-json-1.1` and
//! `X-Amzn-ErrorType`. Every `__type` Berth answers here is a variant of
//! [`EventsErrorType`], declared once with its status; "model" types are exception shapes
//! of botocore's `events` model, the others are errors every AWS JSON service shares.
//!
//! | `__type` | status | origin | raised for |
//! |---|---|---|---|
//! | `ValidationException` | 400 | common | a member's length, pattern or range; a rule with targets deleted; a bad `NextToken`; a malformed `Event` |
//! | `InvalidEventPatternException` | 400 | model | an event pattern EventBridge would refuse |
//! | `ResourceNotFoundException` | 400 | model | a rule, connection, API destination or event bus that does not exist |
//! | `ResourceAlreadyExistsException` | 400 | model | creating a connection or API destination whose name is taken |
//! | `LimitExceededException` | 400 | model | more than 5 targets on a rule |
//! | `SerializationException` | 400 | common | a body that is not JSON or has members of the wrong type |
//! | `UnknownOperationException` | 400 | common | an `X-Amz-Target` naming no EventBridge operation (405 for a method other than POST) |
//! | `UnsupportedOperationException` | 400 | common | an EventBridge operation Berth does not serve |
//! | `MissingAuthenticationTokenException` | 400 | common | a request without credentials |
//! | `IncompleteSignatureException` | 400 | common | a malformed SigV4 signature |
//! | `InvalidSignatureException` | 400 | common | a SigV4 signature that does not verify, or scoped to another service or region |
//! | `UnrecognizedClientException` | 400 | common | an access key this registry does not know |
//! | `ExpiredTokenException` | 400 | common | expired credentials |
//! | `AccessDeniedException` | 400 | common | the policies do not allow `events:<Operation>` |
//! | `InternalException` | 500 | model | database faults (details only in the log) |

use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};

/// The awsJson content type.
pub const CONTENT_TYPE: &str = "application/x-amz-json-1.1";

macro_rules! error_types {
    ($($variant:ident, $status:literal, $modeled:literal, $desc:literal;)*) => {
        /// An EventBridge error type: the `__type` of an error answer.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum EventsErrorType {
            $(
                #[doc = $desc]
                $variant,
            )*
        }

        impl EventsErrorType {
            /// Every error type, in the order of the table above.
            pub const ALL: &'static [EventsErrorType] = &[$(EventsErrorType::$variant),*];

            /// The shape name sent as `__type` and `X-Amzn-ErrorType`.
            pub fn name(self) -> &'static str {
                match self {
                    $(EventsErrorType::$variant => stringify!($variant),)*
                }
            }

            /// The HTTP status it is answered with.
            pub fn status(self) -> StatusCode {
                match self {
                    $(EventsErrorType::$variant => match StatusCode::from_u16($status) {
                        Ok(s) => s,
                        Err(_) => StatusCode::INTERNAL_SERVER_ERROR,
                    },)*
                }
            }

            /// Whether botocore's `events` model defines this shape.
            pub fn modeled(self) -> bool {
                match self {
                    $(EventsErrorType::$variant => $modeled,)*
                }
            }

            /// The type named `name`, if Berth answers it.
            pub fn from_name(name: &str) -> Option<EventsErrorType> {
                EventsErrorType::ALL.iter().copied().find(|t| t.name() == name)
            }
        }
    };
}

error_types! {
    ValidationException, 400, false, "A member fails the model's constraints, or the request is not valid in the resource's state.";
    InvalidEventPatternException, 400, true, "The event pattern is not valid.";
    ResourceNotFoundException, 400, true, "An entity that you specified does not exist.";
    ResourceAlreadyExistsException, 400, true, "The resource you are trying to create already exists.";
    LimitExceededException, 400, true, "The request failed because it attempted to create a resource beyond the allowed service quota.";
    SerializationException, 400, false, "The request body is not valid JSON or a member has the wrong type.";
    UnknownOperationException, 400, false, "The request names no operation of the service.";
    UnsupportedOperationException, 400, false, "The operation is one Berth does not serve.";
    MissingAuthenticationTokenException, 400, false, "The request carries no credentials.";
    IncompleteSignatureException, 400, false, "The request signature is malformed.";
    InvalidSignatureException, 400, false, "The request signature does not verify.";
    UnrecognizedClientException, 400, false, "The access key is not known.";
    ExpiredTokenException, 400, false, "The credentials have expired.";
    AccessDeniedException, 400, false, "The policies do not allow the action.";
    InternalException, 500, true, "This exception occurs due to unexpected causes.";
}

/// An error in the awsJson1_1 wire shape.
#[derive(Debug, Clone)]
pub struct EventsError {
    /// HTTP status: the type's, or 405 for a method other than POST.
    pub status: StatusCode,
    /// The `__type`.
    pub kind: EventsErrorType,
    /// The `message`.
    pub message: String,
}

impl EventsError {
    /// An error of type `kind`.
    pub fn new(kind: EventsErrorType, message: impl Into<String>) -> EventsError {
        EventsError {
            status: kind.status(),
            kind,
            message: message.into(),
        }
    }

    /// `ValidationException` with `message`.
    pub fn validation(message: impl Into<String>) -> EventsError {
        EventsError::new(EventsErrorType::ValidationException, message)
    }

    /// `ValidationException` in AWS's constraint wording: `1 validation error detected:
    /// Value '<value>' at '<member>' failed to satisfy constraint: Member must …`.
    pub fn constraint(member: &str, value: &str, constraint: &str) -> EventsError {
        EventsError::validation(format!(
            "1 validation error detected: Value '{value}' at '{member}' failed to satisfy \
             constraint: {constraint}"
        ))
    }

    /// `ResourceNotFoundException` with `message`.
    pub fn not_found(message: impl Into<String>) -> EventsError {
        EventsError::new(EventsErrorType::ResourceNotFoundException, message)
    }

    /// A server fault (500 `InternalException`); `cause` is logged, not shown.
    pub fn internal(cause: impl std::fmt::Display) -> EventsError {
        tracing::error!(error = %cause, "EventBridge API internal error");
        EventsError::new(
            EventsErrorType::InternalException,
            "internal server error; the server log has details",
        )
    }
}

impl std::fmt::Display for EventsError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.kind.name(), self.message)
    }
}

impl IntoResponse for EventsError {
    fn into_response(self) -> Response {
        let body = serde_json::json!({"__type": self.kind.name(), "message": self.message});
        let mut resp = (self.status, body.to_string()).into_response();
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

    // The table in the module doc lists exactly the declared types, in order.
    #[test]
    fn table_matches_the_enum() {
        let doc: Vec<&str> = include_str!("error.rs")
            .lines()
            .filter_map(|l| l.strip_prefix("//! | `"))
            .filter_map(|l| l.split('`').next())
            .filter(|name| *name != "__type")
            .collect();
        let declared: Vec<&str> = EventsErrorType::ALL.iter().map(|t| t.name()).collect();
        assert_eq!(doc, declared);
        assert_eq!(EventsErrorType::InternalException.status(), 500);
        assert!(EventsErrorType::InvalidEventPatternException.modeled());
    }

    // Every authentication failure berth-iam reports names a declared type.
    #[test]
    fn authentication_types_are_declared() {
        use berth_iam::sigv4::SigV4Error;
        use berth_iam::AuthError;
        for e in [
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
            AuthError::WrongService("s".into(), "events".into()),
        ] {
            assert!(
                EventsErrorType::from_name(e.aws_type()).is_some(),
                "{} is not an EventsErrorType",
                e.aws_type()
            );
        }
    }
}
