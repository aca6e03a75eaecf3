//! The event-configuration service (issue 8): EventBridge rules and targets, connections
//! and API destinations, for the EventBridge API adapter and `berth admin`.
//!
//! A thin layer over the metadata store's [`EventConfigStore`] half: it supplies the
//! clock (epoch milliseconds) and turns store errors into [`EventConfigError`], so the
//! adapter names no store crate. The record types are re-exported from here. Meaning
//! (pattern validation, ARNs, secrets, wire shapes) stays with the caller.

use berth_meta::{EventConfigStore, MetaError, MetaStore};
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

pub use berth_meta::events::{
    ApiDestinationRow, AuthorizationType, ConnectionRow, DeliverableRule, DeliverableTarget,
    NamePage, NewApiDestination, NewConnection, NewRule, RuleRow, RuleState, TargetRow,
    DEFAULT_EVENT_BUS, MAX_TARGETS_PER_RULE,
};

/// Errors of the event-configuration service, in domain terms.
#[derive(Debug, thiserror::Error)]
pub enum EventConfigError {
    /// A rule, connection (then `name` is the ARN asked for) or API destination a write
    /// needs does not exist.
    #[error("{kind} {name} does not exist")]
    NotFound {
        /// `rule`, `connection` or `api destination`.
        kind: &'static str,
        /// Its name (or ARN).
        name: String,
    },
    /// A create found the name taken.
    #[error("{kind} {name} already exists")]
    AlreadyExists {
        /// `connection` or `api destination`.
        kind: &'static str,
        /// Its name.
        name: String,
    },
    /// A rule with targets cannot be deleted.
    #[error("rule {0} still has targets")]
    RuleHasTargets(String),
    /// A rule would have more than [`MAX_TARGETS_PER_RULE`] targets.
    #[error("rule {rule} would have more than {max} targets")]
    TooManyTargets {
        /// The rule.
        rule: String,
        /// The quota.
        max: usize,
    },
    /// The database failed or holds corrupt data (details are logged by the caller).
    #[error("internal error: {0}")]
    Internal(String),
}

impl From<MetaError> for EventConfigError {
    fn from(e: MetaError) -> Self {
        match e {
            MetaError::EventConfigNotFound { kind, name } => {
                EventConfigError::NotFound { kind, name }
            }
            MetaError::EventConfigExists { kind, name } => {
                EventConfigError::AlreadyExists { kind, name }
            }
            MetaError::RuleHasTargets(r) => EventConfigError::RuleHasTargets(r),
            MetaError::TooManyTargets { rule, max } => {
                EventConfigError::TooManyTargets { rule, max }
            }
            e => EventConfigError::Internal(e.to_string()),
        }
    }
}

/// A result of the event-configuration service.
pub type Result<T, E = EventConfigError> = std::result::Result<T, E>;

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// The event-configuration service. Cheap to clone.
#[derive(Clone)]
pub struct EventConfig {
    meta: Arc<dyn EventConfigStore>,
}

impl EventConfig {
    /// The service over `meta` (secrets stored as given).
    pub fn new(meta: Arc<dyn MetaStore>) -> EventConfig {
        EventConfig { meta }
    }

    /// The service over `store`, e.g. a [`crate::sealed::SealedEventConfig`] that seals
    /// secrets at rest.
    pub fn over(store: Arc<dyn EventConfigStore>) -> EventConfig {
        EventConfig { meta: store }
    }

    /// Creates or replaces a rule (PutRule), keeping its targets.
    pub async fn put_rule(&self, rule: &NewRule) -> Result<RuleRow> {
        Ok(self.meta.put_rule(rule, now_ms()).await?)
    }
    /// One rule.
    pub async fn rule(&self, bus: &str, name: &str) -> Result<Option<RuleRow>> {
        Ok(self.meta.rule(bus, name).await?)
    }
    /// Rules of a bus, in name order.
    pub async fn list_rules(&self, bus: &str, page: &NamePage) -> Result<Vec<RuleRow>> {
        Ok(self.meta.list_rules(bus, page).await?)
    }
    /// Deletes a rule; `false` if it did not exist. Errors: `RuleHasTargets`.
    pub async fn delete_rule(&self, bus: &str, name: &str) -> Result<bool> {
        Ok(self.meta.delete_rule(bus, name).await?)
    }
    /// Enables or disables a rule; `false` if it does not exist.
    pub async fn set_rule_state(&self, bus: &str, name: &str, state: RuleState) -> Result<bool> {
        Ok(self.meta.set_rule_state(bus, name, state, now_ms()).await?)
    }
    /// Adds or replaces targets. Errors: `NotFound` (rule), `TooManyTargets`.
    pub async fn put_targets(&self, bus: &str, rule: &str, targets: &[TargetRow]) -> Result<()> {
        Ok(self.meta.put_targets(bus, rule, targets, now_ms()).await?)
    }
    /// A rule's targets. Errors: `NotFound` (rule).
    pub async fn list_targets(&self, bus: &str, rule: &str) -> Result<Vec<TargetRow>> {
        Ok(self.meta.list_targets(bus, rule).await?)
    }
    /// Removes targets; per ID whether it existed. Errors: `NotFound` (rule).
    pub async fn remove_targets(&self, bus: &str, rule: &str, ids: &[String]) -> Result<Vec<bool>> {
        Ok(self.meta.remove_targets(bus, rule, ids, now_ms()).await?)
    }
    /// Creates a connection. Errors: `AlreadyExists`.
    pub async fn create_connection(&self, c: &NewConnection) -> Result<ConnectionRow> {
        Ok(self.meta.create_connection(c, now_ms()).await?)
    }
    /// Replaces a connection's settings; `None` if it does not exist.
    pub async fn update_connection(&self, c: &NewConnection) -> Result<Option<ConnectionRow>> {
        Ok(self.meta.update_connection(c, now_ms()).await?)
    }
    /// One connection by name.
    pub async fn connection(&self, name: &str) -> Result<Option<ConnectionRow>> {
        Ok(self.meta.connection(name).await?)
    }
    /// Connections in name order, optionally only in `state`.
    pub async fn list_connections(
        &self,
        page: &NamePage,
        state: Option<&str>,
    ) -> Result<Vec<ConnectionRow>> {
        Ok(self.meta.list_connections(page, state).await?)
    }
    /// Deletes a connection; what was deleted, `None` if it did not exist.
    pub async fn delete_connection(&self, name: &str) -> Result<Option<ConnectionRow>> {
        Ok(self.meta.delete_connection(name, now_ms()).await?)
    }
    /// Creates an API destination. Errors: `AlreadyExists`, `NotFound` (connection).
    pub async fn create_api_destination(&self, d: &NewApiDestination) -> Result<ApiDestinationRow> {
        Ok(self.meta.create_api_destination(d, now_ms()).await?)
    }
    /// Replaces an API destination's settings (not its ARN or signing secret); `None` if
    /// it does not exist. Errors: `NotFound` (connection).
    pub async fn update_api_destination(
        &self,
        d: &NewApiDestination,
    ) -> Result<Option<ApiDestinationRow>> {
        Ok(self.meta.update_api_destination(d, now_ms()).await?)
    }
    /// One API destination by name.
    pub async fn api_destination(&self, name: &str) -> Result<Option<ApiDestinationRow>> {
        Ok(self.meta.api_destination(name).await?)
    }
    /// API destinations in name order, optionally only those using `connection_arn`.
    pub async fn list_api_destinations(
        &self,
        page: &NamePage,
        connection_arn: Option<&str>,
    ) -> Result<Vec<ApiDestinationRow>> {
        Ok(self
            .meta
            .list_api_destinations(page, connection_arn)
            .await?)
    }
    /// Deletes an API destination; what was deleted, `None` if it did not exist.
    pub async fn delete_api_destination(&self, name: &str) -> Result<Option<ApiDestinationRow>> {
        Ok(self.meta.delete_api_destination(name, now_ms()).await?)
    }
    /// Every enabled rule with its targets resolved (the delivery pipeline's read).
    pub async fn deliverable_targets(&self) -> Result<Vec<DeliverableRule>> {
        Ok(self.meta.deliverable_targets().await?)
    }
}

impl crate::Registry {
    /// The event-configuration service over this registry's metadata store, sealing
    /// secrets at rest when the registry has a sealer ([`crate::Registry::with_secret_sealer`]).
    pub fn event_config(&self) -> EventConfig {
        match &self.sealer {
            Some(sealer) => EventConfig::over(Arc::new(crate::sealed::SealedEventConfig::new(
                self.meta.clone(),
                sealer.clone(),
            ))),
            None => EventConfig::new(self.meta.clone()),
        }
    }
}
