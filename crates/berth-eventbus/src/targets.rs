//! A short-lived cache of the deliverable rules, so a burst of deliveries does not read
//! the rule tables once per event.

use berth_meta::events::{DeliverableRule, DeliverableTarget, EventConfigStore};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::Mutex;

/// The enabled rules with their resolved targets (`EventConfigStore::deliverable_targets`),
/// re-read when older than its time to live or when a lookup misses (a target added a
/// moment ago is found at once; a removed one is noticed within the time to live).
pub struct TargetCache {
    store: Arc<dyn EventConfigStore>,
    ttl: Duration,
    cached: Mutex<Option<(Instant, Arc<Vec<DeliverableRule>>)>>,
    /// The rules with the configuration generation they were read at.
    current: Mutex<Option<(i64, Arc<Vec<DeliverableRule>>)>>,
}

impl TargetCache {
    /// A cache over `store` whose answers are at most `ttl` old.
    pub fn new(store: Arc<dyn EventConfigStore>, ttl: Duration) -> TargetCache {
        TargetCache {
            store,
            ttl,
            cached: Mutex::new(None),
            current: Mutex::new(None),
        }
    }

    /// Every enabled rule as the database has it now: what fan-out matches against.
    /// Reads the configuration's generation counter (bumped by every write) and re-reads
    /// the rules only when it moved. Errors: the database failed (as text).
    pub async fn current(&self) -> Result<Arc<Vec<DeliverableRule>>, String> {
        let generation = self
            .store
            .event_config_generation()
            .await
            .map_err(|e| format!("reading event rules: {e}"))?;
        if let Some((g, rules)) = &*self.current.lock().await {
            if *g == generation {
                return Ok(rules.clone());
            }
        }
        let rules = self.fresh().await?;
        *self.current.lock().await = Some((generation, rules.clone()));
        Ok(rules)
    }

    /// Every enabled rule, read now (no cache).
    /// Errors: the database failed (as text).
    pub async fn fresh(&self) -> Result<Arc<Vec<DeliverableRule>>, String> {
        let rules = Arc::new(
            self.store
                .deliverable_targets()
                .await
                .map_err(|e| format!("reading event rules: {e}"))?,
        );
        *self.cached.lock().await = Some((Instant::now(), rules.clone()));
        Ok(rules)
    }

    /// The target `target_id` of the enabled rule `rule`, or `None` if there is none now.
    /// Errors: the database failed (as text).
    pub async fn target(
        &self,
        rule: &str,
        target_id: &str,
    ) -> Result<Option<DeliverableTarget>, String> {
        let cached = self.cached.lock().await.clone();
        if let Some((at, rules)) = cached {
            if at.elapsed() < self.ttl {
                if let Some(t) = find(&rules, rule, target_id) {
                    return Ok(Some(t));
                }
            }
        }
        Ok(find(&self.fresh().await?, rule, target_id))
    }
}

fn find(rules: &[DeliverableRule], rule: &str, target_id: &str) -> Option<DeliverableTarget> {
    rules
        .iter()
        .find(|r| r.rule.name == rule)?
        .targets
        .iter()
        .find(|t| t.target.target_id == target_id)
        .cloned()
}
