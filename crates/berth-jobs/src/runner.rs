//! The runner: claims, runs, heartbeats and records jobs, per kind, until shutdown.

use crate::{Backoff, Clock, JobError, JobHandler, JobInput, SystemClock};
use berth_meta::jobs::{ClaimedJob, Completion, FailOutcome, JobState, JobStore};
use futures::FutureExt;
use std::collections::BTreeMap;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{mpsc, Notify, Semaphore};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

/// How jobs of one kind run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KindConfig {
    /// At most this many jobs of the kind run at once in this process (≥ 1).
    pub concurrency: usize,
    /// How long a claim lasts without a heartbeat; heartbeats come every third of it.
    /// A dead worker's jobs run again this long after its last heartbeat.
    pub lease: Duration,
    /// Delay between attempts.
    pub backoff: Backoff,
}

impl Default for KindConfig {
    /// 4 at once, 30 s leases, [`Backoff::default`].
    fn default() -> KindConfig {
        KindConfig {
            concurrency: 4,
            lease: Duration::from_secs(30),
            backoff: Backoff::default(),
        }
    }
}

/// Settings of a [`Runner`].
#[derive(Clone)]
pub struct RunnerConfig {
    /// This runner's lease owner name; unique per process (the default has the PID and
    /// a random suffix).
    pub owner: String,
    /// How often to look for due jobs when nothing woke the runner (jobs enqueued by
    /// other processes, retries coming due, expired leases).
    pub poll_interval: Duration,
    /// How often to refresh the `berth_jobs{kind,state}` gauges from the database.
    pub stats_interval: Duration,
    /// Completions are written in batches of at most this many, one transaction each.
    pub completion_batch: usize,
    /// The clock (tests inject a [`crate::ManualClock`]).
    pub clock: Arc<dyn Clock>,
}

impl Default for RunnerConfig {
    fn default() -> RunnerConfig {
        let suffix = uuid::Uuid::new_v4().simple().to_string();
        RunnerConfig {
            owner: format!("pid{}-{}", std::process::id(), &suffix[..8]),
            poll_interval: Duration::from_secs(1),
            stats_interval: Duration::from_secs(5),
            completion_batch: 256,
            clock: Arc::new(SystemClock),
        }
    }
}

struct Kind {
    name: String,
    label: Arc<str>,
    handler: Arc<dyn JobHandler>,
    config: KindConfig,
    slots: Arc<Semaphore>,
}

/// Wakes a runner at once, e.g. after a transaction that enqueued jobs committed in this
/// process (other processes' jobs are found by polling).
#[derive(Clone, Debug)]
pub struct Waker(Arc<Notify>);

impl Waker {
    /// Makes the runner look for due jobs now.
    pub fn wake(&self) {
        self.0.notify_one();
    }
}

/// Runs registered job kinds from a [`JobStore`]. Build, [`Runner::register`] each kind,
/// then [`Runner::start`].
pub struct Runner {
    store: Arc<dyn JobStore>,
    config: RunnerConfig,
    kinds: Vec<Kind>,
    wake: Arc<Notify>,
}

/// What [`RunnerHandle::shutdown`] found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ShutdownReport {
    /// Jobs that finished (and were recorded) after shutdown began.
    pub finished: usize,
    /// Jobs still running at the deadline: abandoned with their leases, so another
    /// runner takes them once the leases expire.
    pub abandoned: usize,
}

/// A started runner.
pub struct RunnerHandle {
    stop: CancellationToken,
    deadline: Arc<std::sync::Mutex<Duration>>,
    task: tokio::task::JoinHandle<ShutdownReport>,
    waker: Waker,
}

impl RunnerHandle {
    /// Wakes the runner (see [`Waker`]).
    pub fn waker(&self) -> Waker {
        self.waker.clone()
    }

    /// Stops claiming, waits up to `deadline` for running jobs to finish and their
    /// outcomes to be written, then abandons the rest to lease expiry.
    pub async fn shutdown(self, deadline: Duration) -> ShutdownReport {
        if let Ok(mut d) = self.deadline.lock() {
            *d = deadline;
        }
        self.stop.cancel();
        match self.task.await {
            Ok(report) => report,
            Err(e) => {
                tracing::error!(error = %e, "job runner task failed");
                ShutdownReport {
                    finished: 0,
                    abandoned: 0,
                }
            }
        }
    }
}

enum Outcome {
    Done(Completion),
    Recorded,
}

impl Runner {
    /// A runner on `store` with no kinds yet.
    pub fn new(store: Arc<dyn JobStore>, config: RunnerConfig) -> Runner {
        Runner {
            store,
            config,
            kinds: Vec::new(),
            wake: Arc::new(Notify::new()),
        }
    }

    /// Registers the handler of `kind` (a later registration of the same kind replaces
    /// it). Jobs of kinds nobody registered stay queued.
    pub fn register(
        &mut self,
        kind: impl Into<String>,
        handler: Arc<dyn JobHandler>,
        config: KindConfig,
    ) -> &mut Runner {
        let name = kind.into();
        self.kinds.retain(|k| k.name != name);
        let config = KindConfig {
            concurrency: config.concurrency.max(1),
            lease: config.lease.max(Duration::from_millis(30)),
            ..config
        };
        self.kinds.push(Kind {
            label: Arc::from(name.as_str()),
            name,
            handler,
            slots: Arc::new(Semaphore::new(config.concurrency)),
            config,
        });
        self
    }

    /// A [`Waker`] for this runner, usable before and after [`Runner::start`].
    pub fn waker(&self) -> Waker {
        Waker(self.wake.clone())
    }

    /// Starts claiming and running jobs in background tasks.
    pub fn start(self) -> RunnerHandle {
        let stop = CancellationToken::new();
        let deadline = Arc::new(std::sync::Mutex::new(Duration::from_secs(30)));
        let waker = self.waker();
        let task = tokio::spawn(self.run(stop.clone(), deadline.clone()));
        RunnerHandle {
            stop,
            deadline,
            task,
            waker,
        }
    }

    async fn run(
        self,
        stop: CancellationToken,
        deadline: Arc<std::sync::Mutex<Duration>>,
    ) -> ShutdownReport {
        let Runner {
            store,
            config,
            kinds,
            wake,
        } = self;
        let clock = config.clock.clone();
        let (done_tx, done_rx) =
            mpsc::channel::<(Arc<str>, Completion)>(config.completion_batch * 4);
        let completer = tokio::spawn(completer(
            store.clone(),
            clock.clone(),
            done_rx,
            config.completion_batch.max(1),
        ));
        let stats = tokio::spawn(stats_loop(
            store.clone(),
            clock.clone(),
            config.stats_interval,
            stop.clone(),
        ));
        let mut running: JoinSet<()> = JoinSet::new();
        let kinds: Vec<Arc<Kind>> = kinds.into_iter().map(Arc::new).collect();
        while !stop.is_cancelled() {
            for kind in &kinds {
                let free = kind.slots.available_permits();
                if free == 0 {
                    continue;
                }
                let now = clock.now_ms();
                let lease_ms = kind.config.lease.as_millis() as i64;
                let claimed = match store
                    .claim(&kind.name, &config.owner, free as u32, lease_ms, now)
                    .await
                {
                    Ok(c) => c,
                    Err(e) => {
                        tracing::warn!(kind = %kind.name, error = %e, "claiming jobs failed");
                        continue;
                    }
                };
                for job in claimed {
                    let Ok(permit) = kind.slots.clone().try_acquire_owned() else {
                        break; // cannot happen: only this loop takes permits
                    };
                    metrics::counter!("berth_jobs_started_total", "kind" => kind.name.clone())
                        .increment(1);
                    let kind = kind.clone();
                    let store = store.clone();
                    let clock = clock.clone();
                    let done_tx = done_tx.clone();
                    let wake = wake.clone();
                    running.spawn(async move {
                        let gauge =
                            metrics::gauge!("berth_jobs_running_local", "kind" => kind.name.clone());
                        gauge.increment(1.0);
                        let outcome = run_one(&kind, store.as_ref(), clock.as_ref(), job).await;
                        if let Some(Outcome::Done(c)) = outcome {
                            let _ = done_tx.send((kind.label.clone(), c)).await;
                        }
                        gauge.decrement(1.0);
                        drop(permit);
                        wake.notify_one();
                    });
                }
            }
            // Reap finished tasks so the set does not grow.
            while running.try_join_next().is_some() {}
            // Wait for a wake-up (an enqueue in this process, or a slot freed), the poll
            // interval (other processes' jobs, retries coming due, expired leases), or a
            // stop. A kind whose slots are full does not delay the others' polling.
            tokio::select! {
                _ = wake.notified() => {}
                _ = tokio::time::sleep(config.poll_interval) => {}
                _ = stop.cancelled() => {}
            }
        }
        // Shutdown: no more claims; wait for running jobs up to the deadline.
        let limit = deadline.lock().map(|d| *d).unwrap_or(Duration::ZERO);
        let in_flight = running.len();
        let waited = tokio::time::timeout(limit, async {
            while running.join_next().await.is_some() {}
        })
        .await;
        let abandoned = if waited.is_err() {
            let n = running.len();
            running.abort_all();
            while running.join_next().await.is_some() {}
            n
        } else {
            0
        };
        drop(done_tx);
        let _ = completer.await;
        stats.abort();
        if abandoned > 0 {
            tracing::warn!(
                abandoned,
                "shutdown deadline reached; unfinished jobs run again when their leases expire"
            );
        }
        ShutdownReport {
            finished: in_flight - abandoned,
            abandoned,
        }
    }
}

/// Runs one claimed job with heartbeats; records failures directly and returns
/// successes for the batched completer.
async fn run_one(
    kind: &Kind,
    store: &dyn JobStore,
    clock: &dyn Clock,
    job: ClaimedJob,
) -> Option<Outcome> {
    let lease = job.lease.clone();
    let input = JobInput {
        id: lease.job_id,
        attempt: lease.attempt,
        max_attempts: job.max_attempts,
        payload: job.payload,
        idempotency_key: job.idempotency_key,
    };
    let lease_ms = kind.config.lease.as_millis() as i64;
    let run = AssertUnwindSafe(kind.handler.run(input)).catch_unwind();
    tokio::pin!(run);
    let mut beat = tokio::time::interval(kind.config.lease / 3);
    beat.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    beat.tick().await; // the first tick is immediate
    let result = loop {
        tokio::select! {
            r = &mut run => break r,
            _ = beat.tick() => {
                match store.heartbeat(&lease, lease_ms, clock.now_ms()).await {
                    Ok(true) => {}
                    Ok(false) => {
                        tracing::warn!(job = lease.job_id, kind = %kind.name,
                            "lease lost (expired or cancelled); abandoning the attempt");
                        metrics::counter!("berth_jobs_lease_lost_total", "kind" => kind.name.clone())
                            .increment(1);
                        return None;
                    }
                    Err(e) => tracing::warn!(job = lease.job_id, error = %e, "heartbeat failed"),
                }
            }
        }
    };
    let result = result.unwrap_or_else(|panic| {
        let msg = panic
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| panic.downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "unknown panic".into());
        Err(JobError::Retryable(format!("job handler panicked: {msg}")))
    });
    match result {
        Ok(result) => Some(Outcome::Done(Completion { lease, result })),
        Err(err) => {
            let now = clock.now_ms();
            let retry_at = match &err {
                JobError::Retryable(_) => {
                    let jitter: f64 = rand::random();
                    let delay = kind.config.backoff.delay(lease.attempt, jitter);
                    Some(now + delay.as_millis() as i64)
                }
                JobError::Permanent(_) => None,
            };
            match store.fail(&lease, &err.to_string(), retry_at, now).await {
                Ok(Some(FailOutcome::Retrying { run_at })) => {
                    tracing::info!(job = lease.job_id, kind = %kind.name, attempt = lease.attempt,
                        error = %err, retry_in_ms = run_at - now, "job failed; will retry");
                    metrics::counter!("berth_jobs_failed_total", "kind" => kind.name.clone())
                        .increment(1);
                }
                Ok(Some(FailOutcome::Dead)) => {
                    tracing::warn!(job = lease.job_id, kind = %kind.name, attempt = lease.attempt,
                        error = %err, "job is dead");
                    metrics::counter!("berth_jobs_dead_total", "kind" => kind.name.clone())
                        .increment(1);
                }
                Ok(None) => {
                    metrics::counter!("berth_jobs_lease_lost_total", "kind" => kind.name.clone())
                        .increment(1);
                }
                Err(e) => {
                    tracing::warn!(job = lease.job_id, error = %e,
                        "recording a failure failed; the job runs again after its lease expires");
                }
            }
            Some(Outcome::Recorded)
        }
    }
}

/// Writes successes in batches: one transaction per batch, so trivial jobs are not
/// bounded by one fsync each. A batch that fails to write leaves its jobs running; they
/// run again after their leases expire (at least once).
async fn completer(
    store: Arc<dyn JobStore>,
    clock: Arc<dyn Clock>,
    mut rx: mpsc::Receiver<(Arc<str>, Completion)>,
    batch: usize,
) {
    let mut buf = Vec::with_capacity(batch);
    while rx.recv_many(&mut buf, batch).await > 0 {
        let done: Vec<Completion> = buf.iter().map(|(_, c)| c.clone()).collect();
        match store.complete(&done, clock.now_ms()).await {
            Ok(applied) => {
                let mut per_kind: BTreeMap<&str, u64> = BTreeMap::new();
                let mut lost = 0;
                for ((kind, _), ok) in buf.iter().zip(&applied) {
                    if *ok {
                        *per_kind.entry(kind).or_default() += 1;
                    } else {
                        lost += 1;
                    }
                }
                for (kind, n) in per_kind {
                    metrics::counter!("berth_jobs_succeeded_total", "kind" => kind.to_string())
                        .increment(n);
                }
                if lost > 0 {
                    metrics::counter!("berth_jobs_lease_lost_total").increment(lost);
                    tracing::warn!(
                        lost,
                        "completed jobs whose lease was lost were not recorded"
                    );
                }
            }
            Err(e) => tracing::warn!(error = %e, jobs = buf.len(),
                "recording completed jobs failed; they run again after their leases expire"),
        }
        buf.clear();
    }
}

async fn stats_loop(
    store: Arc<dyn JobStore>,
    clock: Arc<dyn Clock>,
    every: Duration,
    stop: CancellationToken,
) {
    let mut tick = tokio::time::interval(every.max(Duration::from_millis(10)));
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = stop.cancelled() => return,
        }
        match store.job_stats(clock.now_ms()).await {
            Ok(stats) => {
                for (kind, states) in &stats.counts {
                    for st in JobState::ALL {
                        let n = states.get(st.as_str()).copied().unwrap_or(0);
                        metrics::gauge!("berth_jobs", "kind" => kind.clone(), "state" => st.as_str())
                            .set(n as f64);
                    }
                }
                metrics::gauge!("berth_jobs_oldest_due_age_seconds")
                    .set(stats.oldest_due_age_ms.unwrap_or(0) as f64 / 1000.0);
            }
            Err(e) => tracing::debug!(error = %e, "reading job statistics failed"),
        }
    }
}
