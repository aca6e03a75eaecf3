//! # berth-jobs: background work on the durable queue
//!
//! Every background effect of Berth (event delivery, replication, cache fill, scans,
//! lifecycle, housekeeping) is a *job* (DESIGN.md invariant 4): a row in the metadata
//! store's queue ([`berth_meta::jobs`]), enqueued in the same transaction as the state
//! change that causes it, run by a [`JobHandler`] registered for its kind, retried with
//! exponential backoff and jitter, dead with its last error when attempts or the
//! deadline run out, and visible to `berth admin jobs`.
//!
//! [`Runner`] claims due jobs per kind (up to the kind's concurrency), runs them, keeps
//! their leases alive with heartbeats, and records the outcome. A runner that dies
//! (kill -9) stops heartbeating; its jobs are claimed again, by any process, once their
//! leases expire. Delivery is therefore **at least once**: handlers must be idempotent
//! (an event delivery carries the event `id` for de-duplication; a copy checks what the
//! destination already has).
//!
//! ## Why our own queue and not apalis
//!
//! We evaluated apalis 1.0 with `apalis-sqlite` 1.0 (December 2026) against what Berth
//! needs, and wrote a small queue instead (about 750 lines with doc comments in `berth-meta`,
//! 650 here):
//!
//! - **sqlx version**: `apalis-sqlite` 1.0 is built on sqlx 0.9; Berth is on sqlx 0.8,
//!   and `libsqlite3-sys` may be linked only once, so the two cannot coexist, and a
//!   caller's `sqlx::Transaction` of one cannot be passed to the other. Enqueueing in
//!   the caller's transaction (a manifest PUT that commits always has its events) is
//!   the property we need most.
//! - **Idempotency**: apalis' key is unique per (queue, key) for ever; ours is a no-op
//!   only while a job with the key is pending or running, so the same effect can be
//!   enqueued again once the previous one finished.
//! - **Schema and migrations**: apalis brings its own tables (`Jobs`, `Workers` with a
//!   foreign key from jobs to registered workers) and its own migrator, which would share
//!   `_sqlx_migrations` with ours; we want one migration sequence and one backup.
//! - Leases, per-kind concurrency, dead state and inspection exist in apalis too, but
//!   the tower/codec layering is far more than Berth uses.
//!
//! What it costs: we maintain the claim SQL and its PostgreSQL variant (`FOR UPDATE SKIP
//! LOCKED`, noted in `berth_meta::sqlite_jobs`).
//!
//! ## Metrics (the `metrics` crate; the binary exports them on `/metrics`)
//!
//! - `berth_jobs{kind,state}` (gauge): jobs in the database per kind and state, all
//!   processes, refreshed every [`RunnerConfig::stats_interval`];
//! - `berth_jobs_oldest_due_age_seconds` (gauge): how long the oldest due job has waited;
//! - `berth_jobs_running_local{kind}` (gauge): jobs this process runs now;
//! - `berth_jobs_started_total`, `berth_jobs_succeeded_total`, `berth_jobs_failed_total`
//!   (failed attempts that will be retried), `berth_jobs_dead_total`,
//!   `berth_jobs_lease_lost_total` (counters, label `kind`).

#![deny(missing_docs)]

mod backoff;
mod clock;
mod runner;

pub use backoff::Backoff;
pub use clock::{Clock, ManualClock, SystemClock};
pub use runner::{KindConfig, Runner, RunnerConfig, RunnerHandle, ShutdownReport, Waker};

/// A job as its handler sees it.
#[derive(Debug, Clone, PartialEq)]
pub struct JobInput {
    /// The job's ID (stable across attempts).
    pub id: i64,
    /// Which attempt this is, from 1.
    pub attempt: u32,
    /// Attempts allowed.
    pub max_attempts: u32,
    /// The payload it was enqueued with.
    pub payload: serde_json::Value,
    /// Its idempotency key, if any.
    pub idempotency_key: Option<String>,
}

/// Why a job attempt failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum JobError {
    /// A transient failure (receiver down, timeout): retried with backoff while attempts
    /// and the deadline allow.
    #[error("{0}")]
    Retryable(String),
    /// A failure that retrying cannot fix (bad payload, target deleted): the job is dead
    /// at once, with this message.
    #[error("{0}")]
    Permanent(String),
}

/// The work of one job kind. Implementations must be idempotent: a job may run again
/// after its worker died before recording the outcome.
#[async_trait::async_trait]
pub trait JobHandler: Send + Sync + 'static {
    /// Runs one attempt. `Ok` carries the result stored with the job (JSON).
    async fn run(&self, job: JobInput) -> Result<serde_json::Value, JobError>;
}
