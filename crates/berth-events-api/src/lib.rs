//! # berth-events-api: the Amazon EventBridge API adapter
//!
//! Serves the subset of the EventBridge API (`AWSEvents`, 2015-10-07, awsJson1_1, SigV4
//! service `events`) that configures where Berth's events go, so the real
//! `aws events --endpoint-url …` and boto3 manage it unchanged (issue 8): rules
//! (`PutRule`, `DescribeRule`, `ListRules`, `DeleteRule`, `EnableRule`, `DisableRule`),
//! targets (`PutTargets`, `ListTargetsByRule`, `RemoveTargets`), `TestEventPattern`,
//! connections and API destinations (create, describe, list, update, delete). Shapes and
//! constraints follow the botocore model `events/2015-10-07/service-2.json` and the
//! EventBridge API Reference (<https://docs.aws.amazon.com/eventbridge/latest/APIReference/>).
//!
//! It shares `POST /` with the ECR adapter: the binary sends a request here when its
//! `X-Amz-Target` starts with `AWSEvents.`. Like the ECR adapter it is thin: for each
//! request it names the operation ([`EventsAction`]), reads the bounded body,
//! authenticates SigV4 with the credential scope's service `events`, validates members
//! with EventBridge's wording ([`error`]), authorises `events:<Operation>` on the
//! resource's ARN (`arn:aws:events:<region>:<account>:rule/<name>`, `…:connection/<name>`,
//! `…:api-destination/<name>`) before any lookup, and calls the registry's
//! [`EventConfig`] service.
//!
//! Berth has one event bus, `default`; any other `EventBusName` is
//! `ResourceNotFoundException`. Targets are delivered only to API destinations (Berth's
//! webhooks); PutTargets answers other target ARNs in `FailedEntries`. Connection
//! secrets and the API destinations' signing secrets are never returned.

#![deny(missing_docs)]

pub mod error;
mod handlers;
mod validate;

use axum::body::Body;
use axum::extract::{ConnectInfo, Request, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::any;
use axum::Router;
use berth_iam::sigv4::SignedRequest;
use berth_iam::{Caller, EventsAction, Iam};
use berth_registry::event_config::EventConfig;
use berth_registry::Registry;
use error::{EventsError, EventsErrorType, CONTENT_TYPE};
use std::net::SocketAddr;

/// The `X-Amz-Target` prefix of the EventBridge API.
pub const TARGET_PREFIX: &str = "AWSEvents.";

/// Largest request body: an event pattern is at most 4096 characters and a PutTargets
/// call 100 targets of a few KiB each.
pub const MAX_BODY: usize = 1 << 20;

/// The operations this adapter serves; the other EventBridge operations answer
/// `UnsupportedOperationException`.
pub const SUPPORTED: &[EventsAction] = &[
    EventsAction::PutRule,
    EventsAction::DescribeRule,
    EventsAction::ListRules,
    EventsAction::DeleteRule,
    EventsAction::EnableRule,
    EventsAction::DisableRule,
    EventsAction::PutTargets,
    EventsAction::ListTargetsByRule,
    EventsAction::RemoveTargets,
    EventsAction::TestEventPattern,
    EventsAction::CreateConnection,
    EventsAction::DescribeConnection,
    EventsAction::ListConnections,
    EventsAction::UpdateConnection,
    EventsAction::DeleteConnection,
    EventsAction::CreateApiDestination,
    EventsAction::DescribeApiDestination,
    EventsAction::ListApiDestinations,
    EventsAction::UpdateApiDestination,
    EventsAction::DeleteApiDestination,
];

#[derive(Clone)]
struct EventsApi {
    events: EventConfig,
    iam: Iam,
}

/// The EventBridge API router (`POST /`) over the registry's event configuration and
/// `iam`. The binary routes requests whose `X-Amz-Target` starts with [`TARGET_PREFIX`]
/// to it.
pub fn router(registry: &Registry, iam: Iam) -> Router {
    Router::new().route("/", any(handle)).with_state(EventsApi {
        events: registry.event_config(),
        iam,
    })
}

/// Whether a request's `X-Amz-Target` names the EventBridge API.
pub fn is_events_target(target: Option<&str>) -> bool {
    target.is_some_and(|t| t.starts_with(TARGET_PREFIX))
}

/// One request's context.
pub(crate) struct Ctx<'a> {
    pub events: &'a EventConfig,
    pub iam: &'a Iam,
    pub caller: Caller,
    pub op: EventsAction,
}

impl Ctx<'_> {
    /// `arn:aws:events:<region>:<account>:` — the prefix of every ARN of this API.
    pub fn arn_prefix(&self) -> String {
        format!(
            "arn:aws:events:{}:{}:",
            self.iam.region(),
            self.iam.account()
        )
    }

    /// A rule's ARN (on the default bus: `…:rule/<name>`).
    pub fn rule_arn(&self, name: &str) -> String {
        format!("{}rule/{name}", self.arn_prefix())
    }

    /// Authorises this operation's action on `resource` (an ARN or `*`).
    pub async fn authorize(&self, resource: &str) -> Result<(), EventsError> {
        self.iam
            .authorize(&self.caller, self.op.into(), resource)
            .await
            .map_err(|d| EventsError::new(EventsErrorType::AccessDeniedException, d.to_string()))
    }
}

async fn handle(State(api): State<EventsApi>, req: Request) -> Response {
    let request_id = uuid::Uuid::new_v4().to_string();
    // Early answers keep the connection usable the way the ECR and OCI adapters' do
    // (issue 17, `berth_http::body`): an answer given before the body was read drains it
    // or says `Connection: close`; so does one given after reading only part of it.
    let (parts, body) = req.into_parts();
    let mut resp = match operation_of(&parts) {
        Err(e) => berth_http::body::settle(answer(Err(e)), body).await,
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
fn answer(result: Result<serde_json::Value, EventsError>) -> Response {
    match result {
        Ok(body) => {
            let mut r = (StatusCode::OK, body.to_string()).into_response();
            r.headers_mut()
                .insert(header::CONTENT_TYPE, HeaderValue::from_static(CONTENT_TYPE));
            r
        }
        Err(e) => {
            tracing::debug!(error = %e, "EventBridge API request refused");
            e.into_response()
        }
    }
}

/// The operation a request names: `POST /` with `X-Amz-Target: AWSEvents.<Operation>`.
fn operation_of(parts: &axum::http::request::Parts) -> Result<EventsAction, EventsError> {
    if parts.method != axum::http::Method::POST {
        let mut e = EventsError::new(
            EventsErrorType::UnknownOperationException,
            format!(
                "{} / is not an EventBridge operation: use POST /",
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
    target
        .strip_prefix(TARGET_PREFIX)
        .and_then(EventsAction::from_name)
        .ok_or_else(|| {
            EventsError::new(
                EventsErrorType::UnknownOperationException,
                format!("X-Amz-Target '{target}' names no operation of AWSEvents"),
            )
        })
}

async fn serve(
    api: &EventsApi,
    op: EventsAction,
    req: Request,
) -> Result<serde_json::Value, EventsError> {
    let source_ip = req
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0.ip());
    let host = berth_http::sigv4::request_host(req.headers(), req.uri());
    let (parts, body) = req.into_parts();
    let body = read_body(body).await?;
    let headers = berth_http::sigv4::signed_headers(&parts.headers, &host);
    let signed = SignedRequest {
        method: parts.method.as_str(),
        path: parts.uri.path(),
        query: parts.uri.query().unwrap_or(""),
        headers: &headers,
        body: &body,
    };
    let caller = if parts.headers.get(header::AUTHORIZATION).is_none() && api.iam.allow_anonymous()
    {
        api.iam.anonymous(source_ip)
    } else {
        api.iam
            .authenticate_sigv4_for(&signed, source_ip, "events")
            .await
            .map_err(|e| {
                let kind = EventsErrorType::from_name(e.aws_type())
                    .unwrap_or(EventsErrorType::InvalidSignatureException);
                EventsError::new(kind, e.to_string())
            })?
    };
    if !SUPPORTED.contains(&op) {
        return Err(EventsError::new(
            EventsErrorType::UnsupportedOperationException,
            format!(
                "{} is not supported by Berth: its EventBridge API configures rules, targets, \
                 connections and API destinations on the default event bus only (README: \
                 \"Configuring events rules (EventBridge API)\")",
                op.name()
            ),
        ));
    }
    let ctx = Ctx {
        events: &api.events,
        iam: &api.iam,
        caller,
        op,
    };
    handlers::dispatch(&ctx, &body).await
}

async fn read_body(body: Body) -> Result<bytes::Bytes, EventsError> {
    use http_body_util::BodyExt;
    match http_body_util::Limited::new(body, MAX_BODY).collect().await {
        Ok(c) => Ok(c.to_bytes()),
        Err(e) if e.is::<http_body_util::LengthLimitError>() => Err(EventsError::validation(
            format!("the request body exceeds {MAX_BODY} bytes"),
        )),
        Err(e) => Err(EventsError::new(
            EventsErrorType::SerializationException,
            format!("reading the request body failed: {e}"),
        )),
    }
}
