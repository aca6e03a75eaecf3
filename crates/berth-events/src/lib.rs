//! # berth-events: ECR events, EventBridge event patterns, webhook signatures
//!
//! Pure building blocks of Berth's events (issue 8); no HTTP server, no storage, no
//! delivery (delivery is a durable job of `berth-jobs`, wired by the binary).
//!
//! - [`event`]: the EventBridge envelope (`version`, `id`, `detail-type`, `source`,
//!   `account`, `time`, `region`, `resources`, `detail`) and ECR's `detail` shapes,
//!   exactly as ECR_REFERENCE.md §3 gives them. A new kind of event is one struct that
//!   implements [`event::EventDetail`].
//! - [`pattern`]: the EventBridge event-pattern language, complete (exact values,
//!   `prefix`, `suffix`, `anything-but`, `numeric`, `exists`, `equals-ignore-case`,
//!   `wildcard`, `cidr`, `$or`, nested fields, arrays), with EventBridge's
//!   `InvalidEventPatternException` messages. [`pattern::parse`] never panics.
//! - [`signature`]: the webhook signature a receiver verifies (HMAC-SHA256 over
//!   `timestamp + "." + body` with the target's secret).

#![deny(missing_docs)]

pub mod event;
pub mod pattern;
pub mod signature;

pub use event::{
    Event, EventDetail, ImageAction, ImageActionType, ImageScan, Origin, ReplicationAction,
};
pub use pattern::{parse, Pattern, PatternError};
