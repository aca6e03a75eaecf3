//! Event rules and webhook targets declared in the config file (`[[events.rules]]`),
//! and the wiring of the event pipeline (`berth-eventbus`) into `berth serve`.
//!
//! A declared rule is stored exactly as the EventBridge API would store it (`PutRule`,
//! and for each target a connection, an API destination and `PutTargets`), so
//! `aws events list-rules` shows it and deliveries treat it like any other. Declarations
//! are applied at every start: idempotent, and the file wins over earlier API changes to
//! the same names.

use serde::{Deserialize, Serialize};

/// The config file's `[events]` table.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EventDeclarations {
    /// `[[events.rules]]`: rules on the `default` event bus.
    #[serde(default)]
    pub rules: Vec<DeclaredRule>,
}

/// A rule (EventBridge `PutRule` fields, snake_case) with its webhook targets.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeclaredRule {
    /// `Name`.
    pub name: String,
    /// `Description`.
    pub description: Option<String>,
    /// `EventPattern`: the EventBridge event pattern, JSON text, e.g.
    /// `'{"source":["aws.ecr"],"detail-type":["ECR Image Action"]}'`.
    pub event_pattern: String,
    /// `State`: `ENABLED` (default) or `DISABLED`.
    #[serde(default = "enabled")]
    pub state: String,
    /// `[[events.rules.targets]]`.
    #[serde(default)]
    pub targets: Vec<DeclaredTarget>,
}

fn enabled() -> String {
    "ENABLED".into()
}

/// A webhook target: EventBridge `Target` fields plus the API destination (endpoint,
/// method) and connection (auth) it is delivered through.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeclaredTarget {
    /// `Id`, unique within the rule.
    pub id: String,
    /// The API destination's `InvocationEndpoint`: the webhook URL (http or https).
    pub endpoint: String,
    /// `HttpMethod` (default `POST`).
    #[serde(default = "post")]
    pub http_method: String,
    /// The connection's authorization.
    #[serde(default)]
    pub auth: DeclaredAuth,
    /// `Input`: JSON text sent instead of the event.
    pub input: Option<String>,
    /// `InputPath`: the part of the event to send, e.g. `$.detail`.
    pub input_path: Option<String>,
    /// `RetryPolicy.MaximumRetryAttempts` (default 185).
    pub max_retry_attempts: Option<u32>,
    /// `RetryPolicy.MaximumEventAgeInSeconds` (default 86400).
    pub max_event_age_seconds: Option<u32>,
    /// The `X-Berth-Signature` secret. Default: generated when the destination is first
    /// created, and kept (print it with `berth admin events secret`).
    pub signing_secret: Option<String>,
}

fn post() -> String {
    "POST".into()
}

/// A connection's authorization (EventBridge `CreateConnection` auth parameters).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "SCREAMING_SNAKE_CASE", deny_unknown_fields)]
pub enum DeclaredAuth {
    /// No credentials (Berth's own signature only).
    #[default]
    None,
    /// `Authorization: Basic`.
    Basic {
        /// User name.
        username: String,
        /// Password.
        password: String,
    },
    /// A header carrying a key.
    ApiKey {
        /// Header name.
        api_key_name: String,
        /// Header value.
        api_key_value: String,
    },
}

use crate::config::Settings;
use anyhow::Context;
use berth_eventbus::{Deliver, DeliverConfig, EventHook, FanOut, TargetCache, DELIVER, FANOUT};
use berth_iam::Iam;
use berth_jobs::{Backoff, Clock, KindConfig, Runner, RunnerConfig};
use berth_meta::Metadata;
use berth_registry::JobHook;
use std::sync::Arc;
use std::time::Duration;

/// The job runner of `berth serve` with every kind registered (event fan-out and
/// delivery), and the registry hook that enqueues events in the transactions of pushes
/// and deletes. Errors: the HTTP client cannot be built.
pub fn pipeline(
    s: &Settings,
    meta: Arc<dyn Metadata>,
    config: Arc<dyn berth_meta::EventConfigStore>,
    iam: &Iam,
) -> anyhow::Result<(Runner, Arc<dyn JobHook>)> {
    let mut runner = Runner::new(meta.clone(), RunnerConfig::default());
    let waker = runner.waker();
    let origin = berth_events::Origin {
        account: iam.account().to_string(),
        region: iam.region().to_string(),
    };
    let hook: Arc<dyn JobHook> = Arc::new(EventHook::new(origin, Some(waker.clone())));
    // Targets are read through `config`, which opens their sealed secrets.
    let targets = Arc::new(TargetCache::new(config, Duration::from_secs(1)));
    let backoff = Backoff {
        base: Duration::from_millis(s.event_retry_initial_ms.max(1)),
        max: Duration::from_secs(s.event_retry_max_secs.max(1)),
    };
    let lease = Duration::from_secs(s.job_lease_secs);
    runner.register(
        FANOUT,
        Arc::new(FanOut::new(meta, targets.clone(), Some(waker))),
        KindConfig {
            // Fan-outs wait on a shared group commit: more at once, fewer fsyncs.
            concurrency: 16,
            lease,
            backoff,
        },
    );
    let deliver = Deliver::new(
        targets,
        &DeliverConfig {
            timeout: Duration::from_secs(s.event_delivery_timeout_secs),
        },
    )
    .map_err(anyhow::Error::msg)?;
    runner.register(
        DELIVER,
        Arc::new(deliver),
        KindConfig {
            concurrency: s.event_delivery_concurrency,
            lease,
            backoff,
        },
    );
    Ok((runner, hook))
}

/// Stores the config file's `[[events.rules]]` (see the module doc): per rule, `PutRule`
/// on the `default` bus, and per target a connection and an API destination named
/// `berth-config-<rule>-<target id>` and `PutTargets`. Errors: a bad pattern or state
/// (naming the rule), or the database failed.
pub async fn apply_declarations(
    s: &Settings,
    meta: &dyn berth_meta::EventConfigStore,
    iam: &Iam,
) -> anyhow::Result<()> {
    use berth_meta::events::{
        AuthorizationType, NewApiDestination, NewConnection, NewRule, RuleState, TargetRow,
        DEFAULT_EVENT_BUS,
    };
    let arn = |kind: &str, name: &str| {
        format!(
            "arn:aws:events:{}:{}:{kind}/{name}",
            iam.region(),
            iam.account()
        )
    };
    let now = berth_jobs::SystemClock.now_ms();
    for rule in &s.events.rules {
        let ctx = || format!("config file: events rule {:?}", rule.name);
        berth_events::parse(&rule.event_pattern)
            .map_err(|e| anyhow::anyhow!("{}: event_pattern: {e}", ctx()))?;
        let state: RuleState = rule
            .state
            .parse()
            .map_err(|e| anyhow::anyhow!("{}: {e}", ctx()))?;
        meta.put_rule(
            &NewRule {
                event_bus_name: DEFAULT_EVENT_BUS.into(),
                name: rule.name.clone(),
                arn: arn("rule", &rule.name),
                description: rule.description.clone(),
                event_pattern: Some(rule.event_pattern.clone()),
                state,
                role_arn: None,
            },
            now,
        )
        .await
        .with_context(ctx)?;
        let mut targets = Vec::new();
        for t in &rule.targets {
            let name = format!("berth-config-{}-{}", rule.name, t.id);
            let (authorization_type, auth_parameters) = match &t.auth {
                DeclaredAuth::None => (AuthorizationType::ApiKey, serde_json::json!({})),
                DeclaredAuth::Basic { username, password } => (
                    AuthorizationType::Basic,
                    serde_json::json!({"BasicAuthParameters":
                        {"Username": username, "Password": password}}),
                ),
                DeclaredAuth::ApiKey {
                    api_key_name,
                    api_key_value,
                } => (
                    AuthorizationType::ApiKey,
                    serde_json::json!({"ApiKeyAuthParameters":
                        {"ApiKeyName": api_key_name, "ApiKeyValue": api_key_value}}),
                ),
            };
            let conn = NewConnection {
                name: name.clone(),
                arn: arn("connection", &format!("{name}/{}", uuid::Uuid::new_v4())),
                description: Some("declared in the config file".into()),
                authorization_type,
                auth_parameters,
                state: "AUTHORIZED".into(),
            };
            let conn = match meta.update_connection(&conn, now).await.with_context(ctx)? {
                Some(c) => c,
                None => meta.create_connection(&conn, now).await.with_context(ctx)?,
            };
            let existing = meta.api_destination(&name).await.with_context(ctx)?;
            // A declared secret wins over the stored one: the destination is recreated.
            if let (Some(d), Some(secret)) = (&existing, &t.signing_secret) {
                if &d.signing_secret != secret {
                    meta.delete_api_destination(&name, now)
                        .await
                        .with_context(ctx)?;
                }
            }
            let dest = NewApiDestination {
                name: name.clone(),
                arn: arn(
                    "api-destination",
                    &format!("{name}/{}", uuid::Uuid::new_v4()),
                ),
                description: Some("declared in the config file".into()),
                connection_arn: conn.arn.clone(),
                invocation_endpoint: t.endpoint.clone(),
                http_method: t.http_method.to_ascii_uppercase(),
                invocation_rate_limit_per_second: None,
                signing_secret: t.signing_secret.clone().unwrap_or_else(|| {
                    format!(
                        "{}{}",
                        uuid::Uuid::new_v4().simple(),
                        uuid::Uuid::new_v4().simple()
                    )
                }),
                state: "ACTIVE".into(),
            };
            let dest = match meta
                .update_api_destination(&dest, now)
                .await
                .with_context(ctx)?
            {
                Some(d) => d,
                None => meta
                    .create_api_destination(&dest, now)
                    .await
                    .with_context(ctx)?,
            };
            targets.push(TargetRow {
                target_id: t.id.clone(),
                arn: dest.arn,
                role_arn: None,
                input: t.input.clone(),
                input_path: t.input_path.clone(),
                input_transformer: None,
                http_parameters: None,
                max_event_age_seconds: t.max_event_age_seconds,
                max_retry_attempts: t.max_retry_attempts,
            });
        }
        if !targets.is_empty() {
            meta.put_targets(DEFAULT_EVENT_BUS, &rule.name, &targets, now)
                .await
                .with_context(ctx)?;
        }
        tracing::info!(rule = %rule.name, targets = targets.len(),
            "event rule declared in the config file applied");
    }
    Ok(())
}
