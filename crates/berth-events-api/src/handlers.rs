//! One function per operation: validate (the botocore model's constraints), authorise
//! `events:<Operation>` on the resource's ARN before any lookup, call the
//! [`berth_registry::event_config::EventConfig`] service, shape the answer (members
//! absent when unset, timestamps as epoch seconds). [`config_error`] is where service
//! errors become EventBridge errors.

use crate::error::{EventsError, EventsErrorType};
use crate::validate::{self as v, body};
use crate::Ctx;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use berth_iam::EventsAction as A;
use berth_registry::event_config::{
    ApiDestinationRow, AuthorizationType, ConnectionRow, EventConfigError, NamePage,
    NewApiDestination, NewConnection, NewRule, RuleRow, RuleState, TargetRow, DEFAULT_EVENT_BUS,
};
use serde_json::{json, Map, Value};

/// Runs the operation of `ctx` on `body`.
pub(crate) async fn dispatch(ctx: &Ctx<'_>, bytes: &[u8]) -> Result<Value, EventsError> {
    let m = body(bytes)?;
    match ctx.op {
        A::PutRule => put_rule(ctx, &m).await,
        A::DescribeRule => describe_rule(ctx, &m).await,
        A::ListRules => list_rules(ctx, &m).await,
        A::DeleteRule => delete_rule(ctx, &m).await,
        A::EnableRule => set_rule_state(ctx, &m, RuleState::Enabled).await,
        A::DisableRule => set_rule_state(ctx, &m, RuleState::Disabled).await,
        A::PutTargets => put_targets(ctx, &m).await,
        A::ListTargetsByRule => list_targets(ctx, &m).await,
        A::RemoveTargets => remove_targets(ctx, &m).await,
        A::TestEventPattern => test_event_pattern(ctx, &m).await,
        A::CreateConnection => create_connection(ctx, &m).await,
        A::DescribeConnection => describe_connection(ctx, &m).await,
        A::ListConnections => list_connections(ctx, &m).await,
        A::UpdateConnection => update_connection(ctx, &m).await,
        A::DeleteConnection => delete_connection(ctx, &m).await,
        A::CreateApiDestination => create_api_destination(ctx, &m).await,
        A::DescribeApiDestination => describe_api_destination(ctx, &m).await,
        A::ListApiDestinations => list_api_destinations(ctx, &m).await,
        A::UpdateApiDestination => update_api_destination(ctx, &m).await,
        A::DeleteApiDestination => delete_api_destination(ctx, &m).await,
        op => Err(EventsError::new(
            EventsErrorType::UnsupportedOperationException,
            format!("{} is not supported by Berth", op.name()),
        )),
    }
}

/// Service errors as EventBridge errors (the one place).
fn config_error(e: EventConfigError) -> EventsError {
    match e {
        EventConfigError::NotFound { kind, name } => match kind {
            "rule" => rule_not_found(&name),
            "connection" => EventsError::not_found(format!("Connection '{name}' does not exist.")),
            _ => EventsError::not_found(format!("An {kind} '{name}' does not exist.")),
        },
        EventConfigError::AlreadyExists { kind, name } => EventsError::new(
            EventsErrorType::ResourceAlreadyExistsException,
            match kind {
                "connection" => format!("Connection {name} already exists."),
                _ => format!("An api-destination '{name}' already exists."),
            },
        ),
        EventConfigError::RuleHasTargets(_) => {
            EventsError::validation("Rule can't be deleted since it has targets.")
        }
        EventConfigError::TooManyTargets { .. } => EventsError::new(
            EventsErrorType::LimitExceededException,
            "The requested resource exceeds the maximum number allowed.",
        ),
        e @ EventConfigError::Internal(_) => EventsError::internal(e),
    }
}

fn rule_not_found(name: &str) -> EventsError {
    EventsError::not_found(format!(
        "Rule {name} does not exist on EventBus {DEFAULT_EVENT_BUS}."
    ))
}

/// Epoch milliseconds as the epoch seconds awsJson timestamps carry.
fn ts(ms: i64) -> Value {
    json!(ms as f64 / 1000.0)
}

/// Inserts `value` under `key` when it is `Some`.
fn put_opt(o: &mut Map<String, Value>, key: &str, value: Option<impl Into<Value>>) {
    if let Some(v) = value {
        o.insert(key.to_string(), v.into());
    }
}

/// Checks `EventBusName` (a name or ARN): only `default` exists.
fn event_bus(ctx: &Ctx<'_>, m: &Map<String, Value>, member: &str) -> Result<(), EventsError> {
    let Some(bus) = v::opt_str(m, member)? else {
        return Ok(());
    };
    v::length(member, bus, 1, 1600)?;
    let default_arn = format!("{}event-bus/{DEFAULT_EVENT_BUS}", ctx.arn_prefix());
    if bus == DEFAULT_EVENT_BUS || bus == default_arn {
        return Ok(());
    }
    Err(EventsError::not_found(format!(
        "Event bus {bus} does not exist."
    )))
}

fn rule_name<'a>(m: &'a Map<String, Value>, member: &str) -> Result<&'a str, EventsError> {
    let name = v::req_str(m, member)?;
    v::name(member, name, 64)?;
    Ok(name)
}

/// Page size `Limit` (1–100, default 100) and the name after which to continue.
fn page(m: &Map<String, Value>, kind: &str, prefix_member: &str) -> Result<NamePage, EventsError> {
    let limit = v::opt_int(m, "Limit")?.unwrap_or(100);
    v::range("limit", limit, 1, 100)?;
    let name_prefix = v::opt_str(m, prefix_member)?.map(str::to_owned);
    if let Some(p) = &name_prefix {
        v::length("namePrefix", p, 1, 64)?;
    }
    let after = match v::opt_str(m, "NextToken")? {
        None => None,
        Some(t) => Some(decode_token(t, kind)?),
    };
    Ok(NamePage {
        name_prefix,
        after,
        limit: limit as u32 + 1,
    })
}

fn encode_token(kind: &str, last: &str) -> String {
    URL_SAFE_NO_PAD.encode(format!("berth1\n{kind}\n{last}"))
}

fn decode_token(token: &str, kind: &str) -> Result<String, EventsError> {
    let bad = || {
        EventsError::validation(
            "The NextToken was not issued by this operation; pass the NextToken of the previous \
             response unchanged.",
        )
    };
    let raw = URL_SAFE_NO_PAD.decode(token).map_err(|_| bad())?;
    let text = String::from_utf8(raw).map_err(|_| bad())?;
    let mut parts = text.splitn(3, '\n');
    if parts.next() != Some("berth1") || parts.next() != Some(kind) {
        return Err(bad());
    }
    parts.next().map(str::to_owned).ok_or_else(bad)
}

/// Cuts a `limit + 1` listing to a page and its `NextToken`.
fn paginate<T>(
    mut rows: Vec<T>,
    page: &NamePage,
    kind: &str,
    name: impl Fn(&T) -> &str,
) -> (Vec<T>, Option<String>) {
    let want = (page.limit - 1) as usize;
    if rows.len() > want {
        rows.truncate(want);
        let token = rows.last().map(|r| encode_token(kind, name(r)));
        (rows, token)
    } else {
        (rows, None)
    }
}

// ---- rules -------------------------------------------------------------------------

fn rule_json(ctx: &Ctx<'_>, r: &RuleRow, describe: bool) -> Value {
    let mut o = Map::new();
    o.insert("Name".into(), r.name.clone().into());
    o.insert("Arn".into(), r.arn.clone().into());
    put_opt(&mut o, "EventPattern", r.event_pattern.clone());
    o.insert("State".into(), r.state.as_str().into());
    put_opt(&mut o, "Description", r.description.clone());
    put_opt(&mut o, "RoleArn", r.role_arn.clone());
    o.insert("EventBusName".into(), r.event_bus_name.clone().into());
    if describe {
        o.insert("CreatedBy".into(), ctx.iam.account().to_string().into());
    }
    Value::Object(o)
}

/// Parses an event pattern as EventBridge does. Errors: `InvalidEventPatternException`.
fn pattern(text: &str) -> Result<berth_events::Pattern, EventsError> {
    v::length("eventPattern", text, 0, 4096)?;
    berth_events::parse(text)
        .map_err(|e| EventsError::new(EventsErrorType::InvalidEventPatternException, e.to_string()))
}

async fn put_rule(ctx: &Ctx<'_>, m: &Map<String, Value>) -> Result<Value, EventsError> {
    let name = rule_name(m, "Name")?;
    let description = v::opt_str(m, "Description")?;
    if let Some(d) = description {
        v::length("description", d, 0, 512)?;
    }
    let role_arn = v::opt_str(m, "RoleArn")?;
    if let Some(r) = role_arn {
        v::length("roleArn", r, 1, 1600)?;
    }
    let state = match v::opt_str(m, "State")? {
        None => RuleState::Enabled,
        Some(s) => {
            v::one_of(
                "state",
                s,
                &[
                    "ENABLED",
                    "DISABLED",
                    "ENABLED_WITH_ALL_CLOUDTRAIL_MANAGEMENT_EVENTS",
                ],
            )?;
            match s {
                "DISABLED" => RuleState::Disabled,
                // Berth has no CloudTrail management events: both enabled states match
                // every event Berth emits.
                _ => RuleState::Enabled,
            }
        }
    };
    let schedule = v::opt_str(m, "ScheduleExpression")?;
    let event_pattern = v::opt_str(m, "EventPattern")?;
    event_bus(ctx, m, "EventBusName")?;
    if schedule.is_some() {
        return Err(EventsError::validation(
            "ScheduleExpression is not supported by Berth: rules match the events Berth emits \
             with an EventPattern; scheduled rules are not run.",
        ));
    }
    let Some(event_pattern) = event_pattern else {
        return Err(EventsError::validation(
            "Parameter(s) EventPattern or ScheduleExpression must be specified.",
        ));
    };
    let arn = ctx.rule_arn(name);
    ctx.authorize(&arn).await?;
    pattern(event_pattern)?;
    let rule = ctx
        .events
        .put_rule(&NewRule {
            event_bus_name: DEFAULT_EVENT_BUS.into(),
            name: name.into(),
            arn,
            description: description.map(str::to_owned),
            event_pattern: Some(event_pattern.to_owned()),
            state,
            role_arn: role_arn.map(str::to_owned),
        })
        .await
        .map_err(config_error)?;
    Ok(json!({ "RuleArn": rule.arn }))
}

async fn describe_rule(ctx: &Ctx<'_>, m: &Map<String, Value>) -> Result<Value, EventsError> {
    let name = rule_name(m, "Name")?;
    event_bus(ctx, m, "EventBusName")?;
    ctx.authorize(&ctx.rule_arn(name)).await?;
    let rule = ctx
        .events
        .rule(DEFAULT_EVENT_BUS, name)
        .await
        .map_err(config_error)?
        .ok_or_else(|| rule_not_found(name))?;
    Ok(rule_json(ctx, &rule, true))
}

async fn list_rules(ctx: &Ctx<'_>, m: &Map<String, Value>) -> Result<Value, EventsError> {
    let page = page(m, "rules", "NamePrefix")?;
    event_bus(ctx, m, "EventBusName")?;
    ctx.authorize(&ctx.rule_arn("*")).await?;
    let rows = ctx
        .events
        .list_rules(DEFAULT_EVENT_BUS, &page)
        .await
        .map_err(config_error)?;
    let (rows, token) = paginate(rows, &page, "rules", |r| &r.name);
    let mut o = Map::new();
    o.insert(
        "Rules".into(),
        rows.iter().map(|r| rule_json(ctx, r, false)).collect(),
    );
    put_opt(&mut o, "NextToken", token);
    Ok(Value::Object(o))
}

async fn delete_rule(ctx: &Ctx<'_>, m: &Map<String, Value>) -> Result<Value, EventsError> {
    let name = rule_name(m, "Name")?;
    v::opt_bool(m, "Force")?;
    event_bus(ctx, m, "EventBusName")?;
    ctx.authorize(&ctx.rule_arn(name)).await?;
    // Deleting a rule that does not exist succeeds (EventBridge: "If you call delete rule
    // multiple times for the same rule, all calls will succeed").
    ctx.events
        .delete_rule(DEFAULT_EVENT_BUS, name)
        .await
        .map_err(config_error)?;
    Ok(json!({}))
}

async fn set_rule_state(
    ctx: &Ctx<'_>,
    m: &Map<String, Value>,
    state: RuleState,
) -> Result<Value, EventsError> {
    let name = rule_name(m, "Name")?;
    event_bus(ctx, m, "EventBusName")?;
    ctx.authorize(&ctx.rule_arn(name)).await?;
    if !ctx
        .events
        .set_rule_state(DEFAULT_EVENT_BUS, name, state)
        .await
        .map_err(config_error)?
    {
        return Err(rule_not_found(name));
    }
    Ok(json!({}))
}

// ---- targets -----------------------------------------------------------------------

/// Why a target cannot be delivered by Berth, if it cannot: only this registry's API
/// destinations are deliverable.
fn undeliverable(ctx: &Ctx<'_>, arn: &str) -> Option<String> {
    let own = format!("{}api-destination/", ctx.arn_prefix());
    if arn.starts_with(&own) {
        return None;
    }
    Some(format!(
        "Berth delivers events only to API destinations ({own}<name>/<id>, see \
         CreateApiDestination); target ARN {arn} is not one"
    ))
}

fn parse_target(t: &Value) -> Result<TargetRow, EventsError> {
    let Value::Object(t) = t else {
        return Err(EventsError::new(
            EventsErrorType::SerializationException,
            "each member of Targets must be an object",
        ));
    };
    let id = v::req_str(t, "Id")?;
    v::name("targets.member.id", id, 64)?;
    let arn = v::req_str(t, "Arn")?;
    v::length("targets.member.arn", arn, 1, 1600)?;
    let input = v::opt_str(t, "Input")?;
    if let Some(i) = input {
        v::length("targets.member.input", i, 0, 8192)?;
        if serde_json::from_str::<Value>(i).is_err() {
            return Err(EventsError::validation(format!(
                "Input for target {id} is not valid JSON text."
            )));
        }
    }
    let input_path = v::opt_str(t, "InputPath")?;
    if let Some(p) = input_path {
        v::length("targets.member.inputPath", p, 0, 256)?;
    }
    if input.is_some() as u8 + input_path.is_some() as u8 + t.contains_key("InputTransformer") as u8
        > 1
    {
        return Err(EventsError::validation(format!(
            "Only one of Input, InputPath, or InputTransformer must be provided for target {id}."
        )));
    }
    let role_arn = v::opt_str(t, "RoleArn")?;
    let retry = v::opt_obj(t, "RetryPolicy")?;
    let (mut max_age, mut max_attempts) = (None, None);
    if let Some(r) = retry {
        if let Some(a) = v::opt_int(r, "MaximumEventAgeInSeconds")? {
            v::range(
                "targets.member.retryPolicy.maximumEventAgeInSeconds",
                a,
                60,
                86400,
            )?;
            max_age = Some(a as u32);
        }
        if let Some(n) = v::opt_int(r, "MaximumRetryAttempts")? {
            v::range("targets.member.retryPolicy.maximumRetryAttempts", n, 0, 185)?;
            max_attempts = Some(n as u32);
        }
    }
    Ok(TargetRow {
        target_id: id.into(),
        arn: arn.into(),
        role_arn: role_arn.map(str::to_owned),
        input: input.map(str::to_owned),
        input_path: input_path.map(str::to_owned),
        input_transformer: v::opt_obj(t, "InputTransformer")?.map(|o| Value::Object(o.clone())),
        http_parameters: v::opt_obj(t, "HttpParameters")?.map(|o| Value::Object(o.clone())),
        max_event_age_seconds: max_age,
        max_retry_attempts: max_attempts,
    })
}

fn target_json(t: &TargetRow) -> Value {
    let mut o = Map::new();
    o.insert("Id".into(), t.target_id.clone().into());
    o.insert("Arn".into(), t.arn.clone().into());
    put_opt(&mut o, "RoleArn", t.role_arn.clone());
    put_opt(&mut o, "Input", t.input.clone());
    put_opt(&mut o, "InputPath", t.input_path.clone());
    put_opt(&mut o, "InputTransformer", t.input_transformer.clone());
    put_opt(&mut o, "HttpParameters", t.http_parameters.clone());
    if t.max_event_age_seconds.is_some() || t.max_retry_attempts.is_some() {
        let mut r = Map::new();
        put_opt(&mut r, "MaximumRetryAttempts", t.max_retry_attempts);
        put_opt(&mut r, "MaximumEventAgeInSeconds", t.max_event_age_seconds);
        o.insert("RetryPolicy".into(), Value::Object(r));
    }
    Value::Object(o)
}

async fn put_targets(ctx: &Ctx<'_>, m: &Map<String, Value>) -> Result<Value, EventsError> {
    let rule = rule_name(m, "Rule")?;
    event_bus(ctx, m, "EventBusName")?;
    let list = v::opt_list(m, "Targets")?.ok_or_else(|| v::missing("targets"))?;
    if list.is_empty() || list.len() > 100 {
        return Err(EventsError::constraint(
            "targets",
            &format!("{} targets", list.len()),
            "Member must have length between 1 and 100",
        ));
    }
    let targets = list
        .iter()
        .map(parse_target)
        .collect::<Result<Vec<_>, _>>()?;
    ctx.authorize(&ctx.rule_arn(rule)).await?;
    let mut failed = Vec::new();
    let mut accepted = Vec::new();
    for t in targets {
        match undeliverable(ctx, &t.arn) {
            Some(why) => failed.push(json!({
                "TargetId": t.target_id,
                "ErrorCode": "ValidationException",
                "ErrorMessage": why,
            })),
            None => accepted.push(t),
        }
    }
    if !accepted.is_empty() {
        ctx.events
            .put_targets(DEFAULT_EVENT_BUS, rule, &accepted)
            .await
            .map_err(config_error)?;
    } else if ctx
        .events
        .rule(DEFAULT_EVENT_BUS, rule)
        .await
        .map_err(config_error)?
        .is_none()
    {
        return Err(rule_not_found(rule));
    }
    Ok(json!({ "FailedEntryCount": failed.len(), "FailedEntries": failed }))
}

async fn list_targets(ctx: &Ctx<'_>, m: &Map<String, Value>) -> Result<Value, EventsError> {
    let rule = rule_name(m, "Rule")?;
    event_bus(ctx, m, "EventBusName")?;
    let limit = v::opt_int(m, "Limit")?.unwrap_or(100);
    v::range("limit", limit, 1, 100)?;
    ctx.authorize(&ctx.rule_arn(rule)).await?;
    let targets = ctx
        .events
        .list_targets(DEFAULT_EVENT_BUS, rule)
        .await
        .map_err(config_error)?;
    // At most 5 targets per rule: one page always holds them all.
    Ok(json!({ "Targets": targets.iter().map(target_json).collect::<Vec<_>>() }))
}

async fn remove_targets(ctx: &Ctx<'_>, m: &Map<String, Value>) -> Result<Value, EventsError> {
    let rule = rule_name(m, "Rule")?;
    event_bus(ctx, m, "EventBusName")?;
    v::opt_bool(m, "Force")?;
    let list = v::opt_list(m, "Ids")?.ok_or_else(|| v::missing("ids"))?;
    if list.is_empty() || list.len() > 100 {
        return Err(EventsError::constraint(
            "ids",
            &format!("{} ids", list.len()),
            "Member must have length between 1 and 100",
        ));
    }
    let mut ids = Vec::with_capacity(list.len());
    for id in list {
        let Some(id) = id.as_str() else {
            return Err(EventsError::new(
                EventsErrorType::SerializationException,
                "each member of Ids must be a string",
            ));
        };
        v::name("ids.member", id, 64)?;
        ids.push(id.to_string());
    }
    ctx.authorize(&ctx.rule_arn(rule)).await?;
    // Removing an ID the rule does not have is not a failure (EventBridge answers it
    // without a failed entry).
    ctx.events
        .remove_targets(DEFAULT_EVENT_BUS, rule, &ids)
        .await
        .map_err(config_error)?;
    Ok(json!({ "FailedEntryCount": 0, "FailedEntries": [] }))
}

async fn test_event_pattern(ctx: &Ctx<'_>, m: &Map<String, Value>) -> Result<Value, EventsError> {
    let text = v::req_str(m, "EventPattern")?;
    let event = v::req_str(m, "Event")?;
    ctx.authorize("*").await?;
    let pattern = pattern(text)?;
    // The event must be an AWS event: a JSON object with these members (EventBridge API
    // Reference, TestEventPattern: "the following fields are mandatory").
    let invalid = || EventsError::validation("Parameter Event is not valid.");
    let event: Value = serde_json::from_str(event).map_err(|_| invalid())?;
    let Value::Object(o) = &event else {
        return Err(invalid());
    };
    for field in [
        "id",
        "account",
        "source",
        "time",
        "region",
        "resources",
        "detail-type",
    ] {
        if !o.contains_key(field) {
            return Err(invalid());
        }
    }
    Ok(json!({ "Result": pattern.matches(&event) }))
}

// ---- connections -------------------------------------------------------------------

fn connection_arn_for(ctx: &Ctx<'_>, name: &str) -> String {
    format!("{}connection/{name}", ctx.arn_prefix())
}

fn connection_not_found(name: &str) -> EventsError {
    EventsError::not_found(format!(
        "Failed to describe the connection(s). Connection '{name}' does not exist."
    ))
}

/// Checks `AuthParameters` for `kind` (only that type's parameters, with their required
/// members) and returns what to store.
fn auth_parameters(kind: AuthorizationType, p: &Map<String, Value>) -> Result<Value, EventsError> {
    let member =
        |key: &str| -> Result<Option<&Map<String, Value>>, EventsError> { v::opt_obj(p, key) };
    let (basic, api_key, oauth) = (
        member("BasicAuthParameters")?,
        member("ApiKeyAuthParameters")?,
        member("OAuthParameters")?,
    );
    let given = basic.is_some() as u8 + api_key.is_some() as u8 + oauth.is_some() as u8;
    let wrong = || {
        EventsError::validation(format!(
            "AuthParameters must contain exactly the parameters of AuthorizationType {}.",
            kind.as_str()
        ))
    };
    if given != 1 {
        return Err(wrong());
    }
    match kind {
        AuthorizationType::Basic => {
            let b = basic.ok_or_else(wrong)?;
            v::length(
                "authParameters.basicAuthParameters.username",
                v::req_str(b, "Username")?,
                1,
                512,
            )?;
            v::length(
                "authParameters.basicAuthParameters.password",
                v::req_str(b, "Password")?,
                1,
                512,
            )?;
        }
        AuthorizationType::ApiKey => {
            let k = api_key.ok_or_else(wrong)?;
            v::length(
                "authParameters.apiKeyAuthParameters.apiKeyName",
                v::req_str(k, "ApiKeyName")?,
                1,
                512,
            )?;
            v::length(
                "authParameters.apiKeyAuthParameters.apiKeyValue",
                v::req_str(k, "ApiKeyValue")?,
                1,
                512,
            )?;
        }
        AuthorizationType::OauthClientCredentials => {
            return Err(EventsError::validation(
                "Berth does not deliver through OAUTH_CLIENT_CREDENTIALS connections; use BASIC \
                 or API_KEY.",
            ))
        }
    }
    v::opt_obj(p, "InvocationHttpParameters")?;
    Ok(Value::Object(p.clone()))
}

fn authorization_type(m: &Map<String, Value>) -> Result<Option<AuthorizationType>, EventsError> {
    let Some(s) = v::opt_str(m, "AuthorizationType")? else {
        return Ok(None);
    };
    v::one_of(
        "authorizationType",
        s,
        &["BASIC", "OAUTH_CLIENT_CREDENTIALS", "API_KEY"],
    )?;
    Ok(s.parse().ok())
}

/// `AuthParameters` as Describe answers them: user names and key names, never a
/// password, API key value or secret invocation parameter.
fn public_auth_parameters(c: &ConnectionRow) -> Value {
    let mut o = Map::new();
    if let Some((user, _)) = c.basic_auth() {
        o.insert("BasicAuthParameters".into(), json!({ "Username": user }));
    }
    if let Some((key, _)) = c.api_key() {
        o.insert("ApiKeyAuthParameters".into(), json!({ "ApiKeyName": key }));
    }
    if let Some(Value::Object(h)) = c.invocation_http_parameters() {
        let mut out = Map::new();
        for (section, list) in h {
            let Value::Array(list) = list else { continue };
            let shown: Vec<Value> = list
                .iter()
                .map(|p| {
                    let mut p = p.clone();
                    if let Value::Object(po) = &mut p {
                        if po.get("IsValueSecret") == Some(&Value::Bool(true)) {
                            po.remove("Value");
                        }
                    }
                    p
                })
                .collect();
            out.insert(section.clone(), Value::Array(shown));
        }
        o.insert("InvocationHttpParameters".into(), Value::Object(out));
    }
    Value::Object(o)
}

fn connection_summary(c: &ConnectionRow) -> Map<String, Value> {
    let mut o = Map::new();
    o.insert("ConnectionArn".into(), c.arn.clone().into());
    o.insert("Name".into(), c.name.clone().into());
    o.insert("ConnectionState".into(), c.state.clone().into());
    o.insert(
        "AuthorizationType".into(),
        c.authorization_type.as_str().into(),
    );
    o.insert("CreationTime".into(), ts(c.created_at));
    o.insert("LastModifiedTime".into(), ts(c.updated_at));
    put_opt(&mut o, "LastAuthorizedTime", c.last_authorized_at.map(ts));
    o
}

async fn create_connection(ctx: &Ctx<'_>, m: &Map<String, Value>) -> Result<Value, EventsError> {
    let name = rule_name(m, "Name")?;
    let description = v::opt_str(m, "Description")?;
    if let Some(d) = description {
        v::length("description", d, 0, 512)?;
    }
    let kind = authorization_type(m)?.ok_or_else(|| v::missing("authorizationType"))?;
    let params = v::opt_obj(m, "AuthParameters")?.ok_or_else(|| v::missing("authParameters"))?;
    let params = auth_parameters(kind, params)?;
    ctx.authorize(&connection_arn_for(ctx, name)).await?;
    let c = ctx
        .events
        .create_connection(&NewConnection {
            name: name.into(),
            arn: format!("{}/{}", connection_arn_for(ctx, name), uuid::Uuid::new_v4()),
            description: description.map(str::to_owned),
            authorization_type: kind,
            auth_parameters: params,
            state: "AUTHORIZED".into(),
        })
        .await
        .map_err(config_error)?;
    Ok(json!({
        "ConnectionArn": c.arn,
        "ConnectionState": c.state,
        "CreationTime": ts(c.created_at),
        "LastModifiedTime": ts(c.updated_at),
    }))
}

async fn describe_connection(ctx: &Ctx<'_>, m: &Map<String, Value>) -> Result<Value, EventsError> {
    let name = rule_name(m, "Name")?;
    ctx.authorize(&connection_arn_for(ctx, name)).await?;
    let c = ctx
        .events
        .connection(name)
        .await
        .map_err(config_error)?
        .ok_or_else(|| connection_not_found(name))?;
    let mut o = connection_summary(&c);
    put_opt(&mut o, "Description", c.description.clone());
    o.insert("AuthParameters".into(), public_auth_parameters(&c));
    Ok(Value::Object(o))
}

async fn list_connections(ctx: &Ctx<'_>, m: &Map<String, Value>) -> Result<Value, EventsError> {
    let page = page(m, "connections", "NamePrefix")?;
    let state = v::opt_str(m, "ConnectionState")?;
    if let Some(s) = state {
        v::one_of(
            "connectionState",
            s,
            &[
                "CREATING",
                "UPDATING",
                "DELETING",
                "AUTHORIZED",
                "DEAUTHORIZED",
                "AUTHORIZING",
                "DEAUTHORIZING",
                "ACTIVE",
                "FAILED_CONNECTIVITY",
            ],
        )?;
    }
    ctx.authorize(&connection_arn_for(ctx, "*")).await?;
    let rows = ctx
        .events
        .list_connections(&page, state)
        .await
        .map_err(config_error)?;
    let (rows, token) = paginate(rows, &page, "connections", |c| &c.name);
    let mut o = Map::new();
    o.insert(
        "Connections".into(),
        rows.iter()
            .map(|c| Value::Object(connection_summary(c)))
            .collect(),
    );
    put_opt(&mut o, "NextToken", token);
    Ok(Value::Object(o))
}

async fn update_connection(ctx: &Ctx<'_>, m: &Map<String, Value>) -> Result<Value, EventsError> {
    let name = rule_name(m, "Name")?;
    let description = v::opt_str(m, "Description")?;
    if let Some(d) = description {
        v::length("description", d, 0, 512)?;
    }
    let kind = authorization_type(m)?;
    let params = v::opt_obj(m, "AuthParameters")?;
    ctx.authorize(&connection_arn_for(ctx, name)).await?;
    let old = ctx
        .events
        .connection(name)
        .await
        .map_err(config_error)?
        .ok_or_else(|| connection_not_found(name))?;
    let kind = kind.unwrap_or(old.authorization_type);
    // Members given replace the stored ones; the others are kept (an update may change
    // only a password).
    let mut merged = match &old.auth_parameters {
        Value::Object(o) if kind == old.authorization_type => o.clone(),
        _ => Map::new(),
    };
    if let Some(p) = params {
        for (k, val) in p {
            match (merged.get_mut(k), val) {
                (Some(Value::Object(have)), Value::Object(new)) => {
                    for (k2, v2) in new {
                        have.insert(k2.clone(), v2.clone());
                    }
                }
                _ => {
                    merged.insert(k.clone(), val.clone());
                }
            }
        }
    }
    let params = auth_parameters(kind, &merged)?;
    let c = ctx
        .events
        .update_connection(&NewConnection {
            name: name.into(),
            arn: old.arn.clone(),
            description: description.map(str::to_owned).or(old.description),
            authorization_type: kind,
            auth_parameters: params,
            state: "AUTHORIZED".into(),
        })
        .await
        .map_err(config_error)?
        .ok_or_else(|| connection_not_found(name))?;
    let mut o = connection_summary(&c);
    o.remove("Name");
    o.remove("AuthorizationType");
    Ok(Value::Object(o))
}

async fn delete_connection(ctx: &Ctx<'_>, m: &Map<String, Value>) -> Result<Value, EventsError> {
    let name = rule_name(m, "Name")?;
    ctx.authorize(&connection_arn_for(ctx, name)).await?;
    let c = ctx
        .events
        .delete_connection(name)
        .await
        .map_err(config_error)?
        .ok_or_else(|| connection_not_found(name))?;
    let mut o = connection_summary(&c);
    o.remove("Name");
    o.remove("AuthorizationType");
    o.insert("ConnectionState".into(), "DELETING".into());
    Ok(Value::Object(o))
}

// ---- API destinations --------------------------------------------------------------

fn destination_arn_for(ctx: &Ctx<'_>, name: &str) -> String {
    format!("{}api-destination/{name}", ctx.arn_prefix())
}

fn destination_not_found(name: &str) -> EventsError {
    EventsError::not_found(format!(
        "Failed to describe the api-destination(s). An api-destination '{name}' does not exist."
    ))
}

const HTTP_METHODS: &[&str] = &["POST", "GET", "HEAD", "OPTIONS", "PUT", "PATCH", "DELETE"];

/// `InvocationEndpoint`: an absolute `http` or `https` URL (EventBridge requires https;
/// Berth also takes http, for receivers on a private network or loopback).
fn endpoint(value: &str) -> Result<(), EventsError> {
    v::length("invocationEndpoint", value, 1, 2048)?;
    let ok = value
        .parse::<axum::http::Uri>()
        .ok()
        .is_some_and(|u| matches!(u.scheme_str(), Some("http" | "https")) && u.host().is_some());
    if !ok {
        return Err(EventsError::constraint(
            "invocationEndpoint",
            value,
            "Member must be an absolute http:// or https:// URL",
        ));
    }
    Ok(())
}

fn destination_json(d: &ApiDestinationRow, describe: bool) -> Value {
    let mut o = Map::new();
    o.insert("ApiDestinationArn".into(), d.arn.clone().into());
    o.insert("Name".into(), d.name.clone().into());
    if describe {
        put_opt(&mut o, "Description", d.description.clone());
    }
    o.insert("ApiDestinationState".into(), d.state.clone().into());
    o.insert("ConnectionArn".into(), d.connection_arn.clone().into());
    o.insert(
        "InvocationEndpoint".into(),
        d.invocation_endpoint.clone().into(),
    );
    o.insert("HttpMethod".into(), d.http_method.clone().into());
    put_opt(
        &mut o,
        "InvocationRateLimitPerSecond",
        d.invocation_rate_limit_per_second,
    );
    o.insert("CreationTime".into(), ts(d.created_at));
    o.insert("LastModifiedTime".into(), ts(d.updated_at));
    Value::Object(o)
}

fn destination_write_answer(d: &ApiDestinationRow) -> Value {
    json!({
        "ApiDestinationArn": d.arn,
        "ApiDestinationState": d.state,
        "CreationTime": ts(d.created_at),
        "LastModifiedTime": ts(d.updated_at),
    })
}

/// A fresh signing secret: 32 random bytes, hex.
fn signing_secret() -> String {
    hex::encode(rand::random::<[u8; 32]>())
}

async fn create_api_destination(
    ctx: &Ctx<'_>,
    m: &Map<String, Value>,
) -> Result<Value, EventsError> {
    let name = rule_name(m, "Name")?;
    let description = v::opt_str(m, "Description")?;
    if let Some(d) = description {
        v::length("description", d, 0, 512)?;
    }
    let connection_arn = v::req_str(m, "ConnectionArn")?;
    v::length("connectionArn", connection_arn, 1, 1600)?;
    let url = v::req_str(m, "InvocationEndpoint")?;
    endpoint(url)?;
    let method = v::req_str(m, "HttpMethod")?;
    v::one_of("httpMethod", method, HTTP_METHODS)?;
    let rate = v::opt_int(m, "InvocationRateLimitPerSecond")?;
    if let Some(r) = rate {
        v::range("invocationRateLimitPerSecond", r, 1, i64::from(u32::MAX))?;
    }
    ctx.authorize(&destination_arn_for(ctx, name)).await?;
    let d = ctx
        .events
        .create_api_destination(&NewApiDestination {
            name: name.into(),
            arn: format!(
                "{}/{}",
                destination_arn_for(ctx, name),
                uuid::Uuid::new_v4()
            ),
            description: description.map(str::to_owned),
            connection_arn: connection_arn.into(),
            invocation_endpoint: url.into(),
            http_method: method.into(),
            invocation_rate_limit_per_second: rate.map(|r| r as u32),
            signing_secret: signing_secret(),
            state: "ACTIVE".into(),
        })
        .await
        .map_err(config_error)?;
    Ok(destination_write_answer(&d))
}

async fn describe_api_destination(
    ctx: &Ctx<'_>,
    m: &Map<String, Value>,
) -> Result<Value, EventsError> {
    let name = rule_name(m, "Name")?;
    ctx.authorize(&destination_arn_for(ctx, name)).await?;
    let d = ctx
        .events
        .api_destination(name)
        .await
        .map_err(config_error)?
        .ok_or_else(|| destination_not_found(name))?;
    Ok(destination_json(&d, true))
}

async fn list_api_destinations(
    ctx: &Ctx<'_>,
    m: &Map<String, Value>,
) -> Result<Value, EventsError> {
    let page = page(m, "api-destinations", "NamePrefix")?;
    let connection_arn = v::opt_str(m, "ConnectionArn")?;
    ctx.authorize(&destination_arn_for(ctx, "*")).await?;
    let rows = ctx
        .events
        .list_api_destinations(&page, connection_arn)
        .await
        .map_err(config_error)?;
    let (rows, token) = paginate(rows, &page, "api-destinations", |d| &d.name);
    let mut o = Map::new();
    o.insert(
        "ApiDestinations".into(),
        rows.iter().map(|d| destination_json(d, false)).collect(),
    );
    put_opt(&mut o, "NextToken", token);
    Ok(Value::Object(o))
}

async fn update_api_destination(
    ctx: &Ctx<'_>,
    m: &Map<String, Value>,
) -> Result<Value, EventsError> {
    let name = rule_name(m, "Name")?;
    let description = v::opt_str(m, "Description")?;
    if let Some(d) = description {
        v::length("description", d, 0, 512)?;
    }
    let connection_arn = v::opt_str(m, "ConnectionArn")?;
    let url = v::opt_str(m, "InvocationEndpoint")?;
    if let Some(u) = url {
        endpoint(u)?;
    }
    let method = v::opt_str(m, "HttpMethod")?;
    if let Some(h) = method {
        v::one_of("httpMethod", h, HTTP_METHODS)?;
    }
    let rate = v::opt_int(m, "InvocationRateLimitPerSecond")?;
    if let Some(r) = rate {
        v::range("invocationRateLimitPerSecond", r, 1, i64::from(u32::MAX))?;
    }
    ctx.authorize(&destination_arn_for(ctx, name)).await?;
    let old = ctx
        .events
        .api_destination(name)
        .await
        .map_err(config_error)?
        .ok_or_else(|| destination_not_found(name))?;
    let d = ctx
        .events
        .update_api_destination(&NewApiDestination {
            name: name.into(),
            arn: old.arn.clone(),
            description: description.map(str::to_owned).or(old.description),
            connection_arn: connection_arn
                .map(str::to_owned)
                .unwrap_or(old.connection_arn),
            invocation_endpoint: url.map(str::to_owned).unwrap_or(old.invocation_endpoint),
            http_method: method.map(str::to_owned).unwrap_or(old.http_method),
            invocation_rate_limit_per_second: rate
                .map(|r| r as u32)
                .or(old.invocation_rate_limit_per_second),
            signing_secret: old.signing_secret,
            state: old.state,
        })
        .await
        .map_err(config_error)?
        .ok_or_else(|| destination_not_found(name))?;
    Ok(destination_write_answer(&d))
}

async fn delete_api_destination(
    ctx: &Ctx<'_>,
    m: &Map<String, Value>,
) -> Result<Value, EventsError> {
    let name = rule_name(m, "Name")?;
    ctx.authorize(&destination_arn_for(ctx, name)).await?;
    ctx.events
        .delete_api_destination(name)
        .await
        .map_err(config_error)?
        .ok_or_else(|| destination_not_found(name))?;
    Ok(json!({}))
}
