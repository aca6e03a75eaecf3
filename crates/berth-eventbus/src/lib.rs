//! # berth-eventbus: ECR events from registry changes to webhook receivers
//!
//! The event pipeline of issue 8, on the durable job queue (DESIGN.md invariant 4):
//!
//! ```text
//!  manifest PUT / DELETE ─(same transaction)─► event.fanout job ─► event.deliver job ─► POST
//!   (EventHook: one ECR Image       (FanOut: match every enabled     (Deliver: sign, auth,
//!    Action per tag, id fixed)       rule; one job per target)         timeout, retry, dead)
//! ```
//!
//! - [`EventHook`] is a `berth_meta::ChangeHook`: inside the metadata transaction of a
//!   push or a delete it builds the `ECR Image Action` events (ECR_REFERENCE.md §3: one
//!   PUSH per tag pushed, an untagged push without `image-tag`; one DELETE per tag of a
//!   deleted image) and enqueues one [`FANOUT`] job per event. The event's `id` (a UUID)
//!   is fixed there, so every retry and every duplicate delivery carries the same `id`.
//! - [`FanOut`] matches the event against every enabled rule's pattern (`berth-events`)
//!   and enqueues, in one transaction, one [`DELIVER`] job per (rule, target), with an
//!   idempotency key `<event id>/<rule>/<target id>` (a fan-out that runs twice after a
//!   crash does not double pending deliveries), the target's retry policy as the job's
//!   attempts and deadline (EventBridge's defaults: 185 retries, 24 hours).
//! - [`Deliver`] sends the event (or the target's `Input` / `InputPath` selection) to the
//!   API destination's endpoint with `X-Berth-Signature` (the destination's secret) and
//!   the connection's Basic or API-key header, and a timeout. 2xx is delivered; a
//!   timeout, a connection error, 408, 429 or 5xx is retried with backoff and jitter; any
//!   other status is a permanent failure (EventBridge does the same). Delivery is at
//!   least once: receivers de-duplicate on the event `id`.
//!
//! The delivery log is the `event.deliver` jobs themselves (`berth admin events
//! deliveries`): each job's payload names the event, rule and target; its state,
//! attempts and last error are the delivery's.
//!
//! Adding a kind of event is one `berth_events::EventDetail` struct and a line in the hook
//! (or another hook) that emits it; fan-out and delivery handle every kind alike.

#![deny(missing_docs)]

mod deliver;
mod fanout;
mod hook;
mod targets;

pub use deliver::{Deliver, DeliverConfig};
pub use fanout::FanOut;
pub use hook::{event_job, EventHook};
pub use targets::TargetCache;

/// The job kind that matches an event against the rules and enqueues its deliveries.
/// Payload: `{"event": "<event JSON text>"}`.
pub const FANOUT: &str = "event.fanout";

/// The job kind that delivers one event to one target. Payload: `{"event": "<event JSON
/// text>", "event_id", "rule", "target_id", "endpoint"}`.
pub const DELIVER: &str = "event.deliver";

/// EventBridge's default `RetryPolicy.MaximumRetryAttempts`.
pub const DEFAULT_MAX_RETRY_ATTEMPTS: u32 = 185;

/// EventBridge's default `RetryPolicy.MaximumEventAgeInSeconds` (24 hours).
pub const DEFAULT_MAX_EVENT_AGE_SECS: u32 = 86_400;

/// The current time in epoch milliseconds.
pub(crate) fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}
