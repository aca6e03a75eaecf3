//! [`EventConfigStore`] for [`PgMeta`]: the event-configuration tables of
//! `migrations/postgres/0005_events.sql`, with `sqlite_events.rs`'s semantics.
//!
//! Concurrency: every write transaction *starts* by bumping `event_config_generation`
//! ([`begin_config_write`]). The `UPDATE` locks that single row until commit, so event
//! configuration writes from every node take turns exactly as under SQLite's single
//! writer: the checks they make (the rule exists before targets are added, at most
//! [`MAX_TARGETS_PER_RULE`] targets, no targets left when a rule is deleted, the
//! connection exists before an API destination names it) cannot interleave with
//! another write. These are rare API calls, so one lock costs nothing measurable. A
//! write that ends early (nothing to change) or fails rolls back, bump included. Reads
//! that span several statements run in one `REPEATABLE READ READ ONLY` transaction (one
//! snapshot).

use crate::events::{
    ApiDestinationRow, ConnectionRow, DeliverableRule, DeliverableTarget, EventConfigStore,
    NamePage, NewApiDestination, NewConnection, NewRule, RuleRow, RuleState, TargetRow,
    MAX_TARGETS_PER_RULE,
};
use crate::{MetaError, PgMeta, Result};
use sqlx::postgres::PgRow;
use sqlx::{Postgres, Row, Transaction};
use std::collections::HashMap;

const RULE_COLUMNS: &str = "event_bus_name, name, arn, description, event_pattern, state, \
    role_arn, created_at, updated_at";
const TARGET_COLUMNS: &str = "target_id, arn, role_arn, input, input_path, input_transformer, \
    http_parameters, max_event_age_seconds, max_retry_attempts";
const CONNECTION_COLUMNS: &str = "name, arn, description, authorization_type, auth_parameters, \
    state, created_at, updated_at, last_authorized_at";
const DESTINATION_COLUMNS: &str = "name, arn, description, connection_arn, invocation_endpoint, \
    http_method, invocation_rate_limit_per_second, signing_secret, state, created_at, updated_at";

/// Starts an event-configuration write: bumps the generation first, which locks its one
/// row until the transaction ends, so configuration writers on every node take turns
/// (see the module doc).
async fn begin_config_write(meta: &PgMeta) -> Result<Transaction<'static, Postgres>> {
    let mut tx = meta.pool.begin().await?;
    sqlx::query("UPDATE event_config_generation SET generation = generation + 1 WHERE id = 1")
        .execute(&mut *tx)
        .await?;
    Ok(tx)
}

/// Ends an event-configuration write (the generation was bumped when it began).
async fn commit_bumped(tx: Transaction<'_, Postgres>) -> Result<()> {
    tx.commit().await?;
    Ok(())
}

/// A read-only transaction with one snapshot for all its statements.
async fn begin_snapshot(meta: &PgMeta) -> Result<Transaction<'static, Postgres>> {
    Ok(meta
        .pool
        .begin_with("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
        .await?)
}

fn corrupt(what: &str, e: impl std::fmt::Display) -> MetaError {
    MetaError::Corrupt(format!("stored {what}: {e}"))
}

fn json_opt(what: &str, s: Option<String>) -> Result<Option<serde_json::Value>> {
    s.map(|s| serde_json::from_str(&s).map_err(|e| corrupt(what, e)))
        .transpose()
}

fn rule_row(r: &PgRow) -> Result<RuleRow> {
    let state: String = r.try_get("state")?;
    Ok(RuleRow {
        event_bus_name: r.try_get("event_bus_name")?,
        name: r.try_get("name")?,
        arn: r.try_get("arn")?,
        description: r.try_get("description")?,
        event_pattern: r.try_get("event_pattern")?,
        state: state.parse().map_err(|e| corrupt("rule state", e))?,
        role_arn: r.try_get("role_arn")?,
        created_at: r.try_get("created_at")?,
        updated_at: r.try_get("updated_at")?,
    })
}

fn target_row(r: &PgRow) -> Result<TargetRow> {
    Ok(TargetRow {
        target_id: r.try_get("target_id")?,
        arn: r.try_get("arn")?,
        role_arn: r.try_get("role_arn")?,
        input: r.try_get("input")?,
        input_path: r.try_get("input_path")?,
        input_transformer: json_opt("InputTransformer", r.try_get("input_transformer")?)?,
        http_parameters: json_opt("HttpParameters", r.try_get("http_parameters")?)?,
        max_event_age_seconds: r
            .try_get::<Option<i64>, _>("max_event_age_seconds")?
            .map(|v| v as u32),
        max_retry_attempts: r
            .try_get::<Option<i64>, _>("max_retry_attempts")?
            .map(|v| v as u32),
    })
}

fn connection_row(r: &PgRow) -> Result<ConnectionRow> {
    let kind: String = r.try_get("authorization_type")?;
    let params: String = r.try_get("auth_parameters")?;
    Ok(ConnectionRow {
        name: r.try_get("name")?,
        arn: r.try_get("arn")?,
        description: r.try_get("description")?,
        authorization_type: kind.parse().map_err(|e| corrupt("authorization type", e))?,
        auth_parameters: serde_json::from_str(&params)
            .map_err(|e| corrupt("connection auth parameters", e))?,
        state: r.try_get("state")?,
        created_at: r.try_get("created_at")?,
        updated_at: r.try_get("updated_at")?,
        last_authorized_at: r.try_get("last_authorized_at")?,
    })
}

fn destination_row(r: &PgRow) -> Result<ApiDestinationRow> {
    Ok(ApiDestinationRow {
        name: r.try_get("name")?,
        arn: r.try_get("arn")?,
        description: r.try_get("description")?,
        connection_arn: r.try_get("connection_arn")?,
        invocation_endpoint: r.try_get("invocation_endpoint")?,
        http_method: r.try_get("http_method")?,
        invocation_rate_limit_per_second: r
            .try_get::<Option<i64>, _>("invocation_rate_limit_per_second")?
            .map(|v| v as u32),
        signing_secret: r.try_get("signing_secret")?,
        state: r.try_get("state")?,
        created_at: r.try_get("created_at")?,
        updated_at: r.try_get("updated_at")?,
    })
}

fn limit(page: &NamePage) -> i64 {
    if page.limit == 0 {
        100
    } else {
        page.limit as i64
    }
}

/// `LIKE` pattern for a name prefix (escaping `%`, `_` and the escape itself).
fn prefix_like(prefix: Option<&str>) -> String {
    let mut s = String::new();
    for c in prefix.unwrap_or("").chars() {
        if matches!(c, '%' | '_' | '\\') {
            s.push('\\');
        }
        s.push(c);
    }
    s.push('%');
    s
}

fn not_found(kind: &'static str, name: &str) -> MetaError {
    MetaError::EventConfigNotFound {
        kind,
        name: name.to_string(),
    }
}

async fn rule_exists(tx: &mut Transaction<'_, Postgres>, bus: &str, name: &str) -> Result<bool> {
    Ok(sqlx::query_scalar::<_, i32>(
        "SELECT 1 FROM event_rules WHERE event_bus_name = $1 AND name = $2",
    )
    .bind(bus)
    .bind(name)
    .fetch_optional(&mut **tx)
    .await?
    .is_some())
}

async fn connection_arn_exists(tx: &mut Transaction<'_, Postgres>, arn: &str) -> Result<bool> {
    Ok(
        sqlx::query_scalar::<_, i32>("SELECT 1 FROM event_connections WHERE arn = $1")
            .bind(arn)
            .fetch_optional(&mut **tx)
            .await?
            .is_some(),
    )
}

fn is_unique_violation(e: &sqlx::Error) -> bool {
    matches!(e, sqlx::Error::Database(d) if d.is_unique_violation())
}

#[async_trait::async_trait]
impl EventConfigStore for PgMeta {
    async fn replace_signing_secret(&self, name: &str, expected: &str, new: &str) -> Result<bool> {
        let mut tx = begin_config_write(self).await?;
        let done = sqlx::query(
            "UPDATE event_api_destinations SET signing_secret = $1
             WHERE name = $2 AND signing_secret = $3",
        )
        .bind(new)
        .bind(name)
        .bind(expected)
        .execute(&mut *tx)
        .await?
        .rows_affected()
            == 1;
        if done {
            commit_bumped(tx).await?;
        }
        Ok(done)
    }

    async fn event_config_generation(&self) -> Result<i64> {
        Ok(sqlx::query_scalar::<_, i64>(
            "SELECT generation FROM event_config_generation WHERE id = 1",
        )
        .fetch_one(&self.pool)
        .await?)
    }

    async fn put_rule(&self, rule: &NewRule, now: i64) -> Result<RuleRow> {
        let mut tx = begin_config_write(self).await?;
        let row = sqlx::query(&format!(
            "INSERT INTO event_rules ({RULE_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)
             ON CONFLICT (event_bus_name, name) DO UPDATE SET
                 arn = excluded.arn, description = excluded.description,
                 event_pattern = excluded.event_pattern, state = excluded.state,
                 role_arn = excluded.role_arn, updated_at = excluded.updated_at
             RETURNING {RULE_COLUMNS}"
        ))
        .bind(&rule.event_bus_name)
        .bind(&rule.name)
        .bind(&rule.arn)
        .bind(&rule.description)
        .bind(&rule.event_pattern)
        .bind(rule.state.as_str())
        .bind(&rule.role_arn)
        .bind(now)
        .bind(now)
        .fetch_one(&mut *tx)
        .await?;
        let out = rule_row(&row)?;
        commit_bumped(tx).await?;
        Ok(out)
    }

    async fn rule(&self, bus: &str, name: &str) -> Result<Option<RuleRow>> {
        sqlx::query(&format!(
            "SELECT {RULE_COLUMNS} FROM event_rules WHERE event_bus_name = $1 AND name = $2"
        ))
        .bind(bus)
        .bind(name)
        .fetch_optional(&self.pool)
        .await?
        .as_ref()
        .map(rule_row)
        .transpose()
    }

    async fn list_rules(&self, bus: &str, page: &NamePage) -> Result<Vec<RuleRow>> {
        sqlx::query(&format!(
            "SELECT {RULE_COLUMNS} FROM event_rules
             WHERE event_bus_name = $1 AND name LIKE $2 ESCAPE '\\' AND name > $3
             ORDER BY name LIMIT $4"
        ))
        .bind(bus)
        .bind(prefix_like(page.name_prefix.as_deref()))
        .bind(page.after.as_deref().unwrap_or(""))
        .bind(limit(page))
        .fetch_all(&self.pool)
        .await?
        .iter()
        .map(rule_row)
        .collect()
    }

    async fn delete_rule(&self, bus: &str, name: &str) -> Result<bool> {
        let mut tx = begin_config_write(self).await?;
        let targets = sqlx::query_scalar::<_, i64>(
            "SELECT count(*) FROM event_targets WHERE event_bus_name = $1 AND rule_name = $2",
        )
        .bind(bus)
        .bind(name)
        .fetch_one(&mut *tx)
        .await?;
        if targets > 0 {
            return Err(MetaError::RuleHasTargets(name.to_string()));
        }
        let done = sqlx::query("DELETE FROM event_rules WHERE event_bus_name = $1 AND name = $2")
            .bind(bus)
            .bind(name)
            .execute(&mut *tx)
            .await?;
        if done.rows_affected() == 0 {
            return Ok(false);
        }
        commit_bumped(tx).await?;
        Ok(true)
    }

    async fn set_rule_state(
        &self,
        bus: &str,
        name: &str,
        state: RuleState,
        now: i64,
    ) -> Result<bool> {
        let mut tx = begin_config_write(self).await?;
        let done = sqlx::query(
            "UPDATE event_rules SET state = $1, updated_at = $2 WHERE event_bus_name = $3 AND name = $4",
        )
        .bind(state.as_str())
        .bind(now)
        .bind(bus)
        .bind(name)
        .execute(&mut *tx)
        .await?;
        if done.rows_affected() == 0 {
            return Ok(false);
        }
        commit_bumped(tx).await?;
        Ok(true)
    }

    async fn put_targets(
        &self,
        bus: &str,
        rule: &str,
        targets: &[TargetRow],
        now: i64,
    ) -> Result<()> {
        let mut tx = begin_config_write(self).await?;
        if !rule_exists(&mut tx, bus, rule).await? {
            return Err(not_found("rule", rule));
        }
        for t in targets {
            sqlx::query(&format!(
                "INSERT INTO event_targets (event_bus_name, rule_name, {TARGET_COLUMNS},
                     created_at, updated_at)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)
                 ON CONFLICT (event_bus_name, rule_name, target_id) DO UPDATE SET
                     arn = excluded.arn, role_arn = excluded.role_arn, input = excluded.input,
                     input_path = excluded.input_path,
                     input_transformer = excluded.input_transformer,
                     http_parameters = excluded.http_parameters,
                     max_event_age_seconds = excluded.max_event_age_seconds,
                     max_retry_attempts = excluded.max_retry_attempts,
                     updated_at = excluded.updated_at"
            ))
            .bind(bus)
            .bind(rule)
            .bind(&t.target_id)
            .bind(&t.arn)
            .bind(&t.role_arn)
            .bind(&t.input)
            .bind(&t.input_path)
            .bind(t.input_transformer.as_ref().map(|v| v.to_string()))
            .bind(t.http_parameters.as_ref().map(|v| v.to_string()))
            .bind(t.max_event_age_seconds.map(i64::from))
            .bind(t.max_retry_attempts.map(i64::from))
            .bind(now)
            .bind(now)
            .execute(&mut *tx)
            .await?;
        }
        let count = sqlx::query_scalar::<_, i64>(
            "SELECT count(*) FROM event_targets WHERE event_bus_name = $1 AND rule_name = $2",
        )
        .bind(bus)
        .bind(rule)
        .fetch_one(&mut *tx)
        .await?;
        if count as usize > MAX_TARGETS_PER_RULE {
            // Dropping the transaction rolls every insert back.
            return Err(MetaError::TooManyTargets {
                rule: rule.to_string(),
                max: MAX_TARGETS_PER_RULE,
            });
        }
        commit_bumped(tx).await
    }

    async fn list_targets(&self, bus: &str, rule: &str) -> Result<Vec<TargetRow>> {
        // One read transaction: the rule's existence and its targets agree.
        let mut tx = begin_snapshot(self).await?;
        if !rule_exists(&mut tx, bus, rule).await? {
            return Err(not_found("rule", rule));
        }
        let rows = sqlx::query(&format!(
            "SELECT {TARGET_COLUMNS} FROM event_targets
             WHERE event_bus_name = $1 AND rule_name = $2 ORDER BY target_id"
        ))
        .bind(bus)
        .bind(rule)
        .fetch_all(&mut *tx)
        .await?;
        rows.iter().map(target_row).collect()
    }

    async fn remove_targets(
        &self,
        bus: &str,
        rule: &str,
        ids: &[String],
        _now: i64,
    ) -> Result<Vec<bool>> {
        let mut tx = begin_config_write(self).await?;
        if !rule_exists(&mut tx, bus, rule).await? {
            return Err(not_found("rule", rule));
        }
        let mut out = Vec::with_capacity(ids.len());
        for id in ids {
            let done = sqlx::query(
                "DELETE FROM event_targets
                 WHERE event_bus_name = $1 AND rule_name = $2 AND target_id = $3",
            )
            .bind(bus)
            .bind(rule)
            .bind(id)
            .execute(&mut *tx)
            .await?;
            out.push(done.rows_affected() == 1);
        }
        commit_bumped(tx).await?;
        Ok(out)
    }

    async fn create_connection(&self, c: &NewConnection, now: i64) -> Result<ConnectionRow> {
        let mut tx = begin_config_write(self).await?;
        let row = sqlx::query(&format!(
            "INSERT INTO event_connections ({CONNECTION_COLUMNS})
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) RETURNING {CONNECTION_COLUMNS}"
        ))
        .bind(&c.name)
        .bind(&c.arn)
        .bind(&c.description)
        .bind(c.authorization_type.as_str())
        .bind(c.auth_parameters.to_string())
        .bind(&c.state)
        .bind(now)
        .bind(now)
        .bind(now)
        .fetch_one(&mut *tx)
        .await
        .map_err(|e| {
            if is_unique_violation(&e) {
                MetaError::EventConfigExists {
                    kind: "connection",
                    name: c.name.clone(),
                }
            } else {
                e.into()
            }
        })?;
        let out = connection_row(&row)?;
        commit_bumped(tx).await?;
        Ok(out)
    }

    async fn update_connection(
        &self,
        c: &NewConnection,
        now: i64,
    ) -> Result<Option<ConnectionRow>> {
        let mut tx = begin_config_write(self).await?;
        let row = sqlx::query(&format!(
            "UPDATE event_connections SET description = $1, authorization_type = $2,
                 auth_parameters = $3, state = $4, updated_at = $5, last_authorized_at = $6
             WHERE name = $7 RETURNING {CONNECTION_COLUMNS}"
        ))
        .bind(&c.description)
        .bind(c.authorization_type.as_str())
        .bind(c.auth_parameters.to_string())
        .bind(&c.state)
        .bind(now)
        .bind(now)
        .bind(&c.name)
        .fetch_optional(&mut *tx)
        .await?;
        let Some(row) = row else { return Ok(None) };
        let out = connection_row(&row)?;
        commit_bumped(tx).await?;
        Ok(Some(out))
    }

    async fn connection(&self, name: &str) -> Result<Option<ConnectionRow>> {
        sqlx::query(&format!(
            "SELECT {CONNECTION_COLUMNS} FROM event_connections WHERE name = $1"
        ))
        .bind(name)
        .fetch_optional(&self.pool)
        .await?
        .as_ref()
        .map(connection_row)
        .transpose()
    }

    async fn connection_by_arn(&self, arn: &str) -> Result<Option<ConnectionRow>> {
        sqlx::query(&format!(
            "SELECT {CONNECTION_COLUMNS} FROM event_connections WHERE arn = $1"
        ))
        .bind(arn)
        .fetch_optional(&self.pool)
        .await?
        .as_ref()
        .map(connection_row)
        .transpose()
    }

    async fn list_connections(
        &self,
        page: &NamePage,
        state: Option<&str>,
    ) -> Result<Vec<ConnectionRow>> {
        sqlx::query(&format!(
            "SELECT {CONNECTION_COLUMNS} FROM event_connections
             WHERE name LIKE $1 ESCAPE '\\' AND name > $2 AND ($3::text IS NULL OR state = $4)
             ORDER BY name LIMIT $5"
        ))
        .bind(prefix_like(page.name_prefix.as_deref()))
        .bind(page.after.as_deref().unwrap_or(""))
        .bind(state)
        .bind(state)
        .bind(limit(page))
        .fetch_all(&self.pool)
        .await?
        .iter()
        .map(connection_row)
        .collect()
    }

    async fn delete_connection(&self, name: &str, _now: i64) -> Result<Option<ConnectionRow>> {
        let mut tx = begin_config_write(self).await?;
        let row = sqlx::query(&format!(
            "DELETE FROM event_connections WHERE name = $1 RETURNING {CONNECTION_COLUMNS}"
        ))
        .bind(name)
        .fetch_optional(&mut *tx)
        .await?;
        let Some(row) = row else { return Ok(None) };
        let out = connection_row(&row)?;
        commit_bumped(tx).await?;
        Ok(Some(out))
    }

    async fn create_api_destination(
        &self,
        d: &NewApiDestination,
        now: i64,
    ) -> Result<ApiDestinationRow> {
        let mut tx = begin_config_write(self).await?;
        if !connection_arn_exists(&mut tx, &d.connection_arn).await? {
            return Err(not_found("connection", &d.connection_arn));
        }
        let row = sqlx::query(&format!(
            "INSERT INTO event_api_destinations ({DESTINATION_COLUMNS})
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11) RETURNING {DESTINATION_COLUMNS}"
        ))
        .bind(&d.name)
        .bind(&d.arn)
        .bind(&d.description)
        .bind(&d.connection_arn)
        .bind(&d.invocation_endpoint)
        .bind(&d.http_method)
        .bind(d.invocation_rate_limit_per_second.map(i64::from))
        .bind(&d.signing_secret)
        .bind(&d.state)
        .bind(now)
        .bind(now)
        .fetch_one(&mut *tx)
        .await
        .map_err(|e| {
            if is_unique_violation(&e) {
                MetaError::EventConfigExists {
                    kind: "api destination",
                    name: d.name.clone(),
                }
            } else {
                e.into()
            }
        })?;
        let out = destination_row(&row)?;
        commit_bumped(tx).await?;
        Ok(out)
    }

    async fn update_api_destination(
        &self,
        d: &NewApiDestination,
        now: i64,
    ) -> Result<Option<ApiDestinationRow>> {
        let mut tx = begin_config_write(self).await?;
        if !connection_arn_exists(&mut tx, &d.connection_arn).await? {
            return Err(not_found("connection", &d.connection_arn));
        }
        let row = sqlx::query(&format!(
            "UPDATE event_api_destinations SET description = $1, connection_arn = $2,
                 invocation_endpoint = $3, http_method = $4,
                 invocation_rate_limit_per_second = $5, state = $6, updated_at = $7
             WHERE name = $8 RETURNING {DESTINATION_COLUMNS}"
        ))
        .bind(&d.description)
        .bind(&d.connection_arn)
        .bind(&d.invocation_endpoint)
        .bind(&d.http_method)
        .bind(d.invocation_rate_limit_per_second.map(i64::from))
        .bind(&d.state)
        .bind(now)
        .bind(&d.name)
        .fetch_optional(&mut *tx)
        .await?;
        let Some(row) = row else { return Ok(None) };
        let out = destination_row(&row)?;
        commit_bumped(tx).await?;
        Ok(Some(out))
    }

    async fn api_destination(&self, name: &str) -> Result<Option<ApiDestinationRow>> {
        sqlx::query(&format!(
            "SELECT {DESTINATION_COLUMNS} FROM event_api_destinations WHERE name = $1"
        ))
        .bind(name)
        .fetch_optional(&self.pool)
        .await?
        .as_ref()
        .map(destination_row)
        .transpose()
    }

    async fn api_destination_by_arn(&self, arn: &str) -> Result<Option<ApiDestinationRow>> {
        sqlx::query(&format!(
            "SELECT {DESTINATION_COLUMNS} FROM event_api_destinations WHERE arn = $1"
        ))
        .bind(arn)
        .fetch_optional(&self.pool)
        .await?
        .as_ref()
        .map(destination_row)
        .transpose()
    }

    async fn list_api_destinations(
        &self,
        page: &NamePage,
        connection_arn: Option<&str>,
    ) -> Result<Vec<ApiDestinationRow>> {
        sqlx::query(&format!(
            "SELECT {DESTINATION_COLUMNS} FROM event_api_destinations
             WHERE name LIKE $1 ESCAPE '\\' AND name > $2 AND ($3::text IS NULL OR connection_arn = $4)
             ORDER BY name LIMIT $5"
        ))
        .bind(prefix_like(page.name_prefix.as_deref()))
        .bind(page.after.as_deref().unwrap_or(""))
        .bind(connection_arn)
        .bind(connection_arn)
        .bind(limit(page))
        .fetch_all(&self.pool)
        .await?
        .iter()
        .map(destination_row)
        .collect()
    }

    async fn delete_api_destination(
        &self,
        name: &str,
        _now: i64,
    ) -> Result<Option<ApiDestinationRow>> {
        let mut tx = begin_config_write(self).await?;
        let row = sqlx::query(&format!(
            "DELETE FROM event_api_destinations WHERE name = $1 RETURNING {DESTINATION_COLUMNS}"
        ))
        .bind(name)
        .fetch_optional(&mut *tx)
        .await?;
        let Some(row) = row else { return Ok(None) };
        let out = destination_row(&row)?;
        commit_bumped(tx).await?;
        Ok(Some(out))
    }

    async fn deliverable_targets(&self) -> Result<Vec<DeliverableRule>> {
        // One read transaction: a consistent snapshot across the four tables.
        let mut tx = begin_snapshot(self).await?;
        let rules = sqlx::query(&format!(
            "SELECT {RULE_COLUMNS} FROM event_rules WHERE state = 'ENABLED'
             ORDER BY event_bus_name, name"
        ))
        .fetch_all(&mut *tx)
        .await?;
        let targets = sqlx::query(&format!(
            "SELECT event_bus_name, rule_name, {TARGET_COLUMNS} FROM event_targets
             ORDER BY event_bus_name, rule_name, target_id"
        ))
        .fetch_all(&mut *tx)
        .await?;
        let destinations: HashMap<String, ApiDestinationRow> = sqlx::query(&format!(
            "SELECT {DESTINATION_COLUMNS} FROM event_api_destinations"
        ))
        .fetch_all(&mut *tx)
        .await?
        .iter()
        .map(|r| destination_row(r).map(|d| (d.arn.clone(), d)))
        .collect::<Result<_>>()?;
        let connections: HashMap<String, ConnectionRow> = sqlx::query(&format!(
            "SELECT {CONNECTION_COLUMNS} FROM event_connections"
        ))
        .fetch_all(&mut *tx)
        .await?
        .iter()
        .map(|r| connection_row(r).map(|c| (c.arn.clone(), c)))
        .collect::<Result<_>>()?;
        tx.commit().await?;

        let mut by_rule: HashMap<(String, String), Vec<DeliverableTarget>> = HashMap::new();
        for r in &targets {
            let target = target_row(r)?;
            let api_destination = destinations.get(&target.arn).cloned();
            let connection = api_destination
                .as_ref()
                .and_then(|d| connections.get(&d.connection_arn).cloned());
            by_rule
                .entry((r.try_get("event_bus_name")?, r.try_get("rule_name")?))
                .or_default()
                .push(DeliverableTarget {
                    target,
                    api_destination,
                    connection,
                });
        }
        rules
            .iter()
            .map(|r| {
                let rule = rule_row(r)?;
                let targets = by_rule
                    .remove(&(rule.event_bus_name.clone(), rule.name.clone()))
                    .unwrap_or_default();
                Ok(DeliverableRule { rule, targets })
            })
            .collect()
    }
}
