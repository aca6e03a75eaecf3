//! The `event.deliver` job: one HTTP request to one webhook (an EventBridge API
//! destination), signed.

use crate::targets::TargetCache;
use berth_jobs::{JobError, JobHandler, JobInput};
use berth_meta::events::AuthorizationType;
use serde_json::{json, Value};
use std::sync::Arc;
use std::time::Duration;

/// Settings of [`Deliver`].
#[derive(Debug, Clone)]
pub struct DeliverConfig {
    /// Time allowed for one request, connection included (EventBridge API destinations
    /// allow 5 s).
    pub timeout: Duration,
}

impl Default for DeliverConfig {
    fn default() -> DeliverConfig {
        DeliverConfig {
            timeout: Duration::from_secs(5),
        }
    }
}

/// Handler of [`crate::DELIVER`] jobs. Sends the body — the target's `Input` if set,
/// else the part of the event its `InputPath` selects (`$`, `$.detail`,
/// `$.detail.repository-name`, `$.resources[0]`), else the event exactly as built — with
///
/// - `Content-Type: application/json`, `User-Agent: berth/<version>`;
/// - `X-Berth-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256 of "t.body">` keyed with
///   the API destination's signing secret (`berth_events::signature`);
/// - the connection's `Authorization: Basic …` (BASIC) or `<ApiKeyName>: <ApiKeyValue>`
///   (API_KEY), and its `InvocationHttpParameters.HeaderParameters`.
///
/// Outcomes: 2xx → delivered (result: the status). Timeout, connection failure, 408,
/// 429, 5xx → retryable. Other statuses, a rule or target that no longer exists, an
/// inactive destination, OAuth connections (not supported yet) → permanent (dead with
/// the reason).
pub struct Deliver {
    client: reqwest::Client,
    targets: Arc<TargetCache>,
}

impl Deliver {
    /// A delivery handler resolving targets through `targets`.
    /// Errors: the HTTP client cannot be built (TLS initialisation).
    pub fn new(targets: Arc<TargetCache>, config: &DeliverConfig) -> Result<Deliver, String> {
        let client = reqwest::Client::builder()
            .timeout(config.timeout)
            .connect_timeout(config.timeout)
            .user_agent(concat!("berth/", env!("CARGO_PKG_VERSION")))
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|e| format!("building the webhook HTTP client: {e}"))?;
        Ok(Deliver { client, targets })
    }
}

/// Selects `path` (EventBridge `InputPath`, JSONPath restricted to names and indexes)
/// from `event`. `None` when it selects nothing or is not of that form.
fn input_path(event: &Value, path: &str) -> Option<Value> {
    let rest = path.strip_prefix('$')?;
    let mut pointer = String::new();
    for seg in rest.split('.').skip(1) {
        let (name, idx) = match seg.split_once('[') {
            Some((n, i)) => (n, Some(i.strip_suffix(']')?)),
            None => (seg, None),
        };
        pointer.push('/');
        pointer.push_str(&name.replace('~', "~0").replace('/', "~1"));
        if let Some(i) = idx {
            pointer.push('/');
            pointer.push_str(i);
        }
    }
    if !rest.is_empty() && !rest.starts_with('.') {
        return None;
    }
    event.pointer(&pointer).cloned()
}

fn str_field<'a>(p: &'a Value, k: &str) -> Result<&'a str, JobError> {
    p.get(k)
        .and_then(Value::as_str)
        .ok_or_else(|| JobError::Permanent(format!("payload has no `{k}`")))
}

#[async_trait::async_trait]
impl JobHandler for Deliver {
    async fn run(&self, job: JobInput) -> Result<Value, JobError> {
        let p = &job.payload;
        let event = str_field(p, "event")?;
        let rule = str_field(p, "rule")?;
        let target_id = str_field(p, "target_id")?;
        let target = self
            .targets
            .target(rule, target_id)
            .await
            .map_err(JobError::Retryable)?
            .ok_or_else(|| {
                JobError::Permanent(format!(
                    "rule {rule:?} is no longer enabled or has no target {target_id:?}"
                ))
            })?;
        let dest = target.api_destination.as_ref().ok_or_else(|| {
            JobError::Permanent(format!(
                "target {target_id:?} ({}) is not an API destination",
                target.target.arn
            ))
        })?;
        if !dest.state.eq_ignore_ascii_case("ACTIVE") {
            return Err(JobError::Permanent(format!(
                "API destination {} is {}",
                dest.name, dest.state
            )));
        }
        let body: Vec<u8> = match (&target.target.input, &target.target.input_path) {
            (Some(input), _) => input.clone().into_bytes(),
            (None, Some(path)) => {
                let v: Value = serde_json::from_str(event)
                    .map_err(|e| JobError::Permanent(format!("event is not JSON: {e}")))?;
                let selected = input_path(&v, path).ok_or_else(|| {
                    JobError::Permanent(format!("InputPath {path:?} selects nothing"))
                })?;
                serde_json::to_vec(&selected).unwrap_or_default()
            }
            (None, None) => event.as_bytes().to_vec(),
        };
        let method = reqwest::Method::from_bytes(dest.http_method.as_bytes())
            .map_err(|_| JobError::Permanent(format!("bad HTTP method {:?}", dest.http_method)))?;
        let now_s = crate::now_ms() / 1000;
        let signature = berth_events::signature::sign(dest.signing_secret.as_bytes(), now_s, &body);
        let mut req = self
            .client
            .request(method, &dest.invocation_endpoint)
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .header(berth_events::signature::HEADER, signature);
        if let Some(conn) = &target.connection {
            match conn.authorization_type {
                AuthorizationType::Basic => {
                    if let Some((user, pass)) = conn.basic_auth() {
                        req = req.basic_auth(user, Some(pass));
                    }
                }
                AuthorizationType::ApiKey => {
                    if let Some((name, value)) = conn.api_key() {
                        req = req.header(name, value);
                    }
                }
                AuthorizationType::OauthClientCredentials => {
                    return Err(JobError::Permanent(format!(
                        "connection {} uses OAUTH_CLIENT_CREDENTIALS, which Berth does not deliver yet",
                        conn.name
                    )));
                }
            }
            let headers = conn
                .invocation_http_parameters()
                .and_then(|h| h.get("HeaderParameters"))
                .and_then(Value::as_array);
            for h in headers.into_iter().flatten() {
                if let (Some(k), Some(v)) = (h["Key"].as_str(), h["Value"].as_str()) {
                    req = req.header(k, v);
                }
            }
        }
        let resp = req.body(body).send().await.map_err(|e| {
            let kind = if e.is_timeout() {
                "timed out"
            } else if e.is_connect() {
                "connection failed"
            } else {
                "request failed"
            };
            JobError::Retryable(format!("{} {kind}: {e}", dest.invocation_endpoint))
        })?;
        let status = resp.status();
        if status.is_success() {
            return Ok(json!({ "status": status.as_u16() }));
        }
        let msg = format!(
            "{} answered HTTP {}",
            dest.invocation_endpoint,
            status.as_u16()
        );
        if status.is_server_error() || status.as_u16() == 429 || status.as_u16() == 408 {
            Err(JobError::Retryable(msg))
        } else {
            Err(JobError::Permanent(msg))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::input_path;
    use serde_json::json;

    // EventBridge InputPath: JSONPath of names and indexes.
    #[test]
    fn input_path_selects() {
        let e = json!({"detail": {"repository-name": "a/b", "n": [1, 2]}, "resources": ["x"]});
        assert_eq!(input_path(&e, "$"), Some(e.clone()));
        assert_eq!(
            input_path(&e, "$.detail.repository-name"),
            Some(json!("a/b"))
        );
        assert_eq!(input_path(&e, "$.detail.n[1]"), Some(json!(2)));
        assert_eq!(input_path(&e, "$.resources[0]"), Some(json!("x")));
        assert_eq!(input_path(&e, "$.missing"), None);
        assert_eq!(input_path(&e, "detail"), None);
        assert_eq!(input_path(&e, "$x"), None);
    }
}
