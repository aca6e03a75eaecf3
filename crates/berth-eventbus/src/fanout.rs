//! The `event.fanout` job: one event → one delivery job per matching (rule, target).

use crate::targets::TargetCache;
use crate::{DEFAULT_MAX_EVENT_AGE_SECS, DEFAULT_MAX_RETRY_ATTEMPTS, DELIVER};
use berth_jobs::{JobError, JobHandler, JobInput, Waker};
use berth_meta::jobs::NewJob;
use berth_meta::Metadata;
use serde_json::{json, Value};
use std::sync::Arc;
use tokio::sync::{mpsc, oneshot};

/// One fan-out's deliveries waiting to be written, and where to say it is done.
type Batch = (Vec<NewJob>, oneshot::Sender<Result<(), String>>);

/// Writes the deliveries of concurrent fan-outs in one transaction per batch (group
/// commit): one fsync for many events instead of one each.
async fn writer(meta: Arc<dyn Metadata>, mut rx: mpsc::Receiver<Batch>, waker: Option<Waker>) {
    let mut buf: Vec<Batch> = Vec::with_capacity(64);
    let mut all: Vec<NewJob> = Vec::new();
    while rx.recv_many(&mut buf, 64).await > 0 {
        let now = crate::now_ms();
        all.clear();
        all.extend(buf.iter_mut().flat_map(|(jobs, _)| jobs.drain(..)));
        let result = meta
            .enqueue_batch(&all, now)
            .await
            .map_err(|e| format!("enqueueing deliveries: {e}"));
        if result.is_ok() {
            if let Some(w) = &waker {
                w.wake();
            }
        }
        for (_, done) in buf.drain(..) {
            let _ = done.send(result.clone());
        }
    }
}

/// Handler of [`crate::FANOUT`] jobs: matches the event against every enabled rule's
/// `event_pattern` and enqueues, in one transaction, a [`DELIVER`] job per target of
/// each matching rule that is an API destination. Targets of other kinds (SQS, Lambda…)
/// cannot be delivered here and are skipped with a warning. A rule whose stored pattern
/// no longer parses matches nothing (and is logged).
pub struct FanOut {
    targets: Arc<TargetCache>,
    batches: mpsc::Sender<Batch>,
}

impl FanOut {
    /// A fan-out over `meta`'s job queue and `targets`' rules; `waker` wakes this
    /// process's runner after deliveries were enqueued. Must be called inside a Tokio
    /// runtime: it starts the task that writes deliveries in batches.
    pub fn new(meta: Arc<dyn Metadata>, targets: Arc<TargetCache>, waker: Option<Waker>) -> FanOut {
        let (batches, rx) = mpsc::channel(256);
        tokio::spawn(writer(meta, rx, waker));
        FanOut { targets, batches }
    }
}

#[async_trait::async_trait]
impl JobHandler for FanOut {
    async fn run(&self, job: JobInput) -> Result<Value, JobError> {
        let text = job
            .payload
            .get("event")
            .and_then(Value::as_str)
            .ok_or_else(|| JobError::Permanent("payload has no `event` text".into()))?;
        let event: Value = serde_json::from_str(text)
            .map_err(|e| JobError::Permanent(format!("event is not JSON: {e}")))?;
        let event_id = event["id"].as_str().unwrap_or_default().to_string();
        let rules = self.targets.current().await.map_err(JobError::Retryable)?;
        let now = crate::now_ms();
        let mut jobs = Vec::new();
        for r in rules.iter() {
            let Some(pattern_text) = r.rule.event_pattern.as_deref() else {
                continue; // a scheduled rule: events never match it
            };
            let pattern = match berth_events::parse(pattern_text) {
                Ok(p) => p,
                Err(e) => {
                    tracing::warn!(rule = %r.rule.name, error = %e,
                        "stored event pattern does not parse; the rule matches nothing");
                    continue;
                }
            };
            if !pattern.matches(&event) {
                continue;
            }
            for t in &r.targets {
                let Some(dest) = &t.api_destination else {
                    tracing::warn!(rule = %r.rule.name, target = %t.target.target_id,
                        arn = %t.target.arn, "target is not an API destination; not delivered");
                    continue;
                };
                let retries = t
                    .target
                    .max_retry_attempts
                    .unwrap_or(DEFAULT_MAX_RETRY_ATTEMPTS);
                let age = t
                    .target
                    .max_event_age_seconds
                    .unwrap_or(DEFAULT_MAX_EVENT_AGE_SECS);
                jobs.push(
                    NewJob::new(
                        DELIVER,
                        json!({
                            "event": text,
                            "event_id": event_id,
                            "rule": r.rule.name,
                            "target_id": t.target.target_id,
                            "endpoint": dest.invocation_endpoint,
                        }),
                    )
                    .idempotency_key(format!("{event_id}/{}/{}", r.rule.name, t.target.target_id))
                    .max_attempts(retries.saturating_add(1))
                    .deadline(now + i64::from(age) * 1000),
                );
            }
        }
        let n = jobs.len();
        if n > 0 {
            let (done, wait) = oneshot::channel();
            self.batches
                .send((jobs, done))
                .await
                .map_err(|_| JobError::Retryable("delivery writer stopped".into()))?;
            wait.await
                .map_err(|_| JobError::Retryable("delivery writer stopped".into()))?
                .map_err(JobError::Retryable)?;
        }
        Ok(json!({ "event_id": event_id, "deliveries": n }))
    }
}
