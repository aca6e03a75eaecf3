//! Durable background jobs (issue 8; DESIGN.md invariant 4): rows and the [`JobStore`]
//! seam. What a job *does* is `berth-jobs`' business; this module only keeps the queue.
//!
//! A job moves through these states (the `state` column of `0004_jobs.sql`):
//!
//! ```text
//!  enqueue ─► queued ──claim──► running ──complete──► succeeded
//!               ▲                 │ │
//!               │                 │ └─fail (retryable, attempts and deadline left)─► retrying ─┐
//!               │                 │                                                            │
//!               │                 └─fail (permanent / no attempts / past deadline)─► dead     │
//!               │        lease expired: claimable again (or dead if no attempts left)          │
//!               └── retry (admin) ◄── dead, cancelled            claim when run_at is due ◄───┘
//! ```
//!
//! A claim is a *lease*: the job is `running` for one owner until `lease_expires_at`;
//! a worker that dies (kill -9) simply stops extending it, and once it expired any
//! claimer takes the job again. Every later write of the worker names its [`Lease`]
//! (owner and attempt number), so a worker that lost its lease cannot overwrite the
//! outcome of the one that took over: the job is never finished twice.
//!
//! Times are Unix epoch **milliseconds** and are passed in by the caller, so tests can
//! drive the clock.

use crate::Result;
use std::collections::BTreeMap;

/// The state of a job (column `state`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum JobState {
    /// Waiting for `run_at`.
    Queued,
    /// Leased to a worker until `lease_expires_at`.
    Running,
    /// Failed with a retryable error; runs again at `run_at`.
    Retrying,
    /// Finished successfully; never runs again.
    Succeeded,
    /// Failed for good (permanent error, attempts or deadline exhausted); `last_error`
    /// says why. Runs again only through [`JobStore::retry_job`].
    Dead,
    /// Cancelled by an operator.
    Cancelled,
}

impl JobState {
    /// Every state, in lifecycle order.
    pub const ALL: [JobState; 6] = [
        JobState::Queued,
        JobState::Running,
        JobState::Retrying,
        JobState::Succeeded,
        JobState::Dead,
        JobState::Cancelled,
    ];

    /// The stored (and displayed) name: `queued`, `running`, `retrying`, `succeeded`,
    /// `dead`, `cancelled`.
    pub fn as_str(self) -> &'static str {
        match self {
            JobState::Queued => "queued",
            JobState::Running => "running",
            JobState::Retrying => "retrying",
            JobState::Succeeded => "succeeded",
            JobState::Dead => "dead",
            JobState::Cancelled => "cancelled",
        }
    }
}

impl std::fmt::Display for JobState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for JobState {
    type Err = String;
    /// Parses a stored name. Errors: any other string, with the list of valid names.
    fn from_str(s: &str) -> std::result::Result<Self, String> {
        JobState::ALL
            .into_iter()
            .find(|st| st.as_str() == s)
            .ok_or_else(|| {
                format!(
                    "unknown job state {s:?}; expected one of queued, running, retrying, succeeded, dead, cancelled"
                )
            })
    }
}

/// A job to enqueue. Build with [`NewJob::new`] and the setters.
#[derive(Debug, Clone, PartialEq)]
pub struct NewJob {
    /// The job kind (selects the handler), e.g. `event.deliver`.
    pub kind: String,
    /// The handler's input.
    pub payload: serde_json::Value,
    /// If set: enqueueing while a job of the same kind and key is queued, retrying or
    /// running does nothing (and returns that job's ID).
    pub idempotency_key: Option<String>,
    /// Earliest start, epoch ms; `None` means now.
    pub run_at: Option<i64>,
    /// Attempts before the job is dead (≥ 1).
    pub max_attempts: u32,
    /// If set, epoch ms after which no attempt starts: a failure whose retry would fall
    /// after it makes the job dead.
    pub deadline: Option<i64>,
}

/// The default for [`NewJob::max_attempts`].
pub const DEFAULT_MAX_ATTEMPTS: u32 = 10;

impl NewJob {
    /// A job of `kind` with `payload`, due now, [`DEFAULT_MAX_ATTEMPTS`], no key, no
    /// deadline.
    pub fn new(kind: impl Into<String>, payload: serde_json::Value) -> NewJob {
        NewJob {
            kind: kind.into(),
            payload,
            idempotency_key: None,
            run_at: None,
            max_attempts: DEFAULT_MAX_ATTEMPTS,
            deadline: None,
        }
    }

    /// Sets the idempotency key.
    pub fn idempotency_key(mut self, key: impl Into<String>) -> NewJob {
        self.idempotency_key = Some(key.into());
        self
    }

    /// Sets the earliest start (epoch ms).
    pub fn run_at(mut self, at_ms: i64) -> NewJob {
        self.run_at = Some(at_ms);
        self
    }

    /// Sets the number of attempts (values below 1 count as 1).
    pub fn max_attempts(mut self, n: u32) -> NewJob {
        self.max_attempts = n.max(1);
        self
    }

    /// Sets the deadline (epoch ms).
    pub fn deadline(mut self, at_ms: i64) -> NewJob {
        self.deadline = Some(at_ms);
        self
    }
}

/// What an enqueue did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Enqueued {
    /// A new job with this ID.
    Created(i64),
    /// A job with the same kind and idempotency key is already pending or running: this
    /// is its ID, and nothing was written.
    Existing(i64),
}

impl Enqueued {
    /// The job's ID, new or existing.
    pub fn id(self) -> i64 {
        match self {
            Enqueued::Created(id) | Enqueued::Existing(id) => id,
        }
    }
}

/// One claim of a job: who holds it and which attempt it is. Every write a worker makes
/// about the job names its lease, and is refused once the lease is lost.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lease {
    /// The job.
    pub job_id: i64,
    /// The claimer (a worker ID unique per process).
    pub owner: String,
    /// The attempt number this claim made (1 for the first).
    pub attempt: u32,
}

/// A job handed to a worker by [`JobStore::claim`].
#[derive(Debug, Clone, PartialEq)]
pub struct ClaimedJob {
    /// The lease to name in later writes.
    pub lease: Lease,
    /// The job kind.
    pub kind: String,
    /// The handler's input.
    pub payload: serde_json::Value,
    /// The idempotency key it was enqueued with.
    pub idempotency_key: Option<String>,
    /// Attempts allowed.
    pub max_attempts: u32,
    /// Deadline, epoch ms.
    pub deadline: Option<i64>,
    /// When the lease runs out unless extended, epoch ms.
    pub lease_expires_at: i64,
    /// When the job was enqueued, epoch ms.
    pub created_at: i64,
}

/// A successful end of a claimed job, for [`JobStore::complete`].
#[derive(Debug, Clone, PartialEq)]
pub struct Completion {
    /// The lease the worker holds.
    pub lease: Lease,
    /// The handler's result.
    pub result: serde_json::Value,
}

/// What [`JobStore::fail`] did with a failed attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailOutcome {
    /// The job will run again at this time (epoch ms).
    Retrying {
        /// When.
        run_at: i64,
    },
    /// The job is dead.
    Dead,
}

/// A stored job, as `berth admin jobs list|show` prints it.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct JobRow {
    /// Job ID.
    pub id: i64,
    /// Kind.
    pub kind: String,
    /// Input.
    pub payload: serde_json::Value,
    /// Idempotency key.
    pub idempotency_key: Option<String>,
    /// State.
    #[serde(serialize_with = "ser_state")]
    pub state: JobState,
    /// Next (or last) start, epoch ms.
    pub run_at: i64,
    /// Attempts made.
    pub attempts: u32,
    /// Attempts allowed.
    pub max_attempts: u32,
    /// Deadline, epoch ms.
    pub deadline: Option<i64>,
    /// Last (or current) lease owner.
    pub lease_owner: Option<String>,
    /// Lease expiry while running, epoch ms.
    pub lease_expires_at: Option<i64>,
    /// The last failure's message.
    pub last_error: Option<String>,
    /// The handler's result, once succeeded.
    pub result: Option<serde_json::Value>,
    /// Enqueued at, epoch ms.
    pub created_at: i64,
    /// Last change, epoch ms.
    pub updated_at: i64,
    /// Succeeded, dead or cancelled at, epoch ms.
    pub finished_at: Option<i64>,
}

fn ser_state<S: serde::Serializer>(s: &JobState, ser: S) -> std::result::Result<S::Ok, S::Error> {
    ser.serialize_str(s.as_str())
}

/// Filters of [`JobStore::list_jobs`]; newest first.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct JobFilter {
    /// Only this kind.
    pub kind: Option<String>,
    /// Only this state.
    pub state: Option<JobState>,
    /// Only jobs with a smaller ID (pagination: the last ID of the previous page).
    pub before_id: Option<i64>,
    /// At most this many (0 means 100).
    pub limit: u32,
}

/// Queue statistics for metrics and `berth admin jobs`.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct JobStats {
    /// Number of jobs per kind and state (absent pairs are zero).
    pub counts: BTreeMap<String, BTreeMap<String, u64>>,
    /// Age in ms of the oldest job that is due (queued or retrying with `run_at` in the
    /// past) but not running: how far behind the workers are. `None` when none is due.
    pub oldest_due_age_ms: Option<i64>,
}

impl JobStats {
    /// Number of jobs in `state`, all kinds.
    pub fn total(&self, state: JobState) -> u64 {
        self.counts
            .values()
            .filter_map(|m| m.get(state.as_str()))
            .sum()
    }
}

/// The durable job queue. Implemented by [`crate::SqliteMeta`] and by
/// [`crate::PgMeta`], which runs the same SQL with `FOR UPDATE SKIP LOCKED` in
/// [`JobStore::claim`] (see [`crate::postgres_jobs`]).
///
/// To enqueue in the same transaction as the state change that causes the job, use
/// [`crate::sqlite_jobs::enqueue`] or [`crate::postgres_jobs::enqueue`] with the
/// caller's transaction.
#[async_trait::async_trait]
pub trait JobStore: Send + Sync {
    /// Enqueues `job` in its own transaction. Idempotent per (kind, key) while pending or
    /// running. Errors: the database failed.
    async fn enqueue(&self, job: &NewJob, now: i64) -> Result<Enqueued>;

    /// Leases up to `limit` due jobs of `kind` to `owner` for `lease_ms`: queued or
    /// retrying jobs whose `run_at` has come, and running jobs whose lease expired
    /// (their worker is gone). Oldest `run_at` first. In the same write, jobs that can no
    /// longer run (an expired lease on the last attempt, a passed deadline) become dead.
    /// Several processes may claim concurrently: no job is leased to two at once.
    async fn claim(
        &self,
        kind: &str,
        owner: &str,
        limit: u32,
        lease_ms: i64,
        now: i64,
    ) -> Result<Vec<ClaimedJob>>;

    /// Extends a lease to `now + lease_ms`. Returns `false` if the lease was lost (it
    /// expired and another worker took the job, or the job was cancelled).
    async fn heartbeat(&self, lease: &Lease, lease_ms: i64, now: i64) -> Result<bool>;

    /// Marks jobs succeeded with their results, in one transaction. Returns, per
    /// completion, whether it applied (`false`: the lease was lost, nothing written).
    async fn complete(&self, done: &[Completion], now: i64) -> Result<Vec<bool>>;

    /// Records a failed attempt. `retry_at: None` means the error is permanent. The job
    /// becomes dead if the error is permanent, the attempts are used up, or `retry_at`
    /// is past the deadline; otherwise it is retrying at `retry_at`. Returns `None` if
    /// the lease was lost.
    async fn fail(
        &self,
        lease: &Lease,
        error: &str,
        retry_at: Option<i64>,
        now: i64,
    ) -> Result<Option<FailOutcome>>;

    /// Cancels a queued, retrying or running job (a running job's worker finds its lease
    /// lost when it reports). Returns `false` if the job does not exist or already
    /// finished.
    async fn cancel_job(&self, id: i64, now: i64) -> Result<bool>;

    /// Puts a dead or cancelled job back to queued, due now, with its attempts reset.
    /// Returns `false` if the job does not exist, is not dead or cancelled, or another
    /// job with its kind and idempotency key is pending.
    async fn retry_job(&self, id: i64, now: i64) -> Result<bool>;

    /// One job. Errors: stored JSON that does not parse (corruption).
    async fn job(&self, id: i64) -> Result<Option<JobRow>>;

    /// Jobs matching `filter`, newest first.
    async fn list_jobs(&self, filter: &JobFilter) -> Result<Vec<JobRow>>;

    /// Counts per kind and state, and the age of the oldest due job.
    async fn job_stats(&self, now: i64) -> Result<JobStats>;

    /// Deletes finished jobs (succeeded, dead, cancelled) that finished before
    /// `before` (epoch ms), so the queue does not grow without bound; their idempotency
    /// keys were already free. Returns how many were deleted. Pending and running jobs
    /// are never touched.
    async fn prune_jobs(&self, before: i64) -> Result<u64>;
}
