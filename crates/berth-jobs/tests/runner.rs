//! The `Runner` (issue 8, "A Worker abstraction with per-kind concurrency, a shutdown
//! deadline"): retries with backoff as `run_at` values on an injected clock, permanent
//! errors, panics, per-kind concurrency, the shutdown deadline, wake-ups.

use async_trait::async_trait;
use berth_jobs::{
    Backoff, Clock, JobError, JobHandler, JobInput, KindConfig, ManualClock, Runner, RunnerConfig,
};
use berth_meta::jobs::{JobState, JobStore, NewJob};
use berth_meta::SqliteMeta;
use serde_json::{json, Value};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

const T: i64 = 1_800_000_000_000;

async fn open() -> (tempfile::TempDir, Arc<SqliteMeta>) {
    let dir = tempfile::tempdir().unwrap();
    let meta = SqliteMeta::open(&dir.path().join("meta.db")).await.unwrap();
    (dir, Arc::new(meta))
}

/// Polls `cond` on the job until it holds (at most 10 s).
async fn wait_for(m: &SqliteMeta, id: i64, cond: impl Fn(&berth_meta::jobs::JobRow) -> bool) {
    let start = Instant::now();
    loop {
        let row = m.job(id).await.unwrap().unwrap();
        if cond(&row) {
            return;
        }
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "job {id} stuck: {row:?}"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

struct Handler<F>(F);

#[async_trait]
impl<F> JobHandler for Handler<F>
where
    F: Fn(JobInput) -> Result<Value, JobError> + Send + Sync + 'static,
{
    async fn run(&self, job: JobInput) -> Result<Value, JobError> {
        (self.0)(job)
    }
}

struct Sleep(Duration);

#[async_trait]
impl JobHandler for Sleep {
    async fn run(&self, _job: JobInput) -> Result<Value, JobError> {
        tokio::time::sleep(self.0).await;
        Ok(json!("slept"))
    }
}

fn config(clock: Arc<dyn Clock>) -> RunnerConfig {
    RunnerConfig {
        poll_interval: Duration::from_millis(20),
        clock,
        ..RunnerConfig::default()
    }
}

/// Issue 8: "retries with exponential backoff and jitter": each failed attempt moves
/// `run_at` to now + a delay in [d/2, d], with d doubling per attempt; the job is not run
/// before `run_at`; after max attempts it is dead with the last error.
#[tokio::test]
async fn retryable_failures_back_off_then_die() {
    let (_d, m) = open().await;
    let clock = Arc::new(ManualClock::new(T));
    let mut r = Runner::new(m.clone(), config(clock.clone()));
    let calls = Arc::new(AtomicUsize::new(0));
    let c = calls.clone();
    r.register(
        "flaky",
        Arc::new(Handler(move |job: JobInput| {
            c.fetch_add(1, Ordering::SeqCst);
            Err(JobError::Retryable(format!(
                "receiver down (attempt {})",
                job.attempt
            )))
        })),
        KindConfig {
            backoff: Backoff {
                base: Duration::from_secs(10),
                max: Duration::from_secs(25),
            },
            ..KindConfig::default()
        },
    );
    let id = m
        .enqueue(&NewJob::new("flaky", json!({})).max_attempts(4), T)
        .await
        .unwrap()
        .id();
    let h = r.start();
    let mut now = T;
    for (attempt, ceiling) in [(1, 10_000), (2, 20_000), (3, 25_000)] {
        wait_for(&m, id, |j| {
            j.attempts == attempt && j.state == JobState::Retrying
        })
        .await;
        let row = m.job(id).await.unwrap().unwrap();
        let delay = row.run_at - now;
        assert!(
            (ceiling / 2..=ceiling).contains(&delay),
            "attempt {attempt}: retry in {delay} ms, expected [{}, {ceiling}]",
            ceiling / 2
        );
        // Not run again before run_at, even when woken.
        clock.set(row.run_at - 1);
        h.waker().wake();
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert_eq!(calls.load(Ordering::SeqCst), attempt as usize);
        now = row.run_at;
        clock.set(now);
        h.waker().wake();
    }
    wait_for(&m, id, |j| j.state == JobState::Dead).await;
    let row = m.job(id).await.unwrap().unwrap();
    assert_eq!(row.attempts, 4);
    assert_eq!(row.last_error.as_deref(), Some("receiver down (attempt 4)"));
    h.shutdown(Duration::from_secs(1)).await;
}

/// A permanent error is dead at once; a panicking handler is a retryable failure, not
/// a dead runner; a success stores its result.
#[tokio::test]
async fn permanent_errors_panics_and_results() {
    let (_d, m) = open().await;
    let clock = Arc::new(ManualClock::new(T));
    let mut r = Runner::new(m.clone(), config(clock.clone()));
    r.register(
        "k",
        Arc::new(Handler(|job: JobInput| match job.payload["do"].as_str() {
            Some("permanent") => Err(JobError::Permanent("target deleted".into())),
            Some("panic") => panic!("handler bug"),
            _ => Ok(json!({"echo": job.payload})),
        })),
        KindConfig::default(),
    );
    let h = r.start();
    let p = m
        .enqueue(&NewJob::new("k", json!({"do": "permanent"})), T)
        .await
        .unwrap()
        .id();
    let x = m
        .enqueue(&NewJob::new("k", json!({"do": "panic"})), T)
        .await
        .unwrap()
        .id();
    let ok = m
        .enqueue(&NewJob::new("k", json!({"do": "ok"})), T)
        .await
        .unwrap()
        .id();
    h.waker().wake();
    wait_for(&m, p, |j| j.state == JobState::Dead).await;
    assert_eq!(m.job(p).await.unwrap().unwrap().attempts, 1);
    wait_for(&m, x, |j| j.state == JobState::Retrying).await;
    assert_eq!(
        m.job(x).await.unwrap().unwrap().last_error.as_deref(),
        Some("job handler panicked: handler bug")
    );
    wait_for(&m, ok, |j| j.state == JobState::Succeeded).await;
    assert_eq!(
        m.job(ok).await.unwrap().unwrap().result,
        Some(json!({"echo": {"do": "ok"}}))
    );
    let report = h.shutdown(Duration::from_secs(1)).await;
    assert_eq!(report.abandoned, 0);
}

/// Per-kind concurrency: never more than the configured number of one kind at once,
/// and a busy kind does not hold up another.
#[tokio::test]
async fn per_kind_concurrency() {
    let (_d, m) = open().await;
    let mut r = Runner::new(m.clone(), config(Arc::new(berth_jobs::SystemClock)));
    let now = Arc::new(AtomicUsize::new(0));
    let peak = Arc::new(AtomicUsize::new(0));
    struct Count(Arc<AtomicUsize>, Arc<AtomicUsize>);
    #[async_trait]
    impl JobHandler for Count {
        async fn run(&self, _job: JobInput) -> Result<Value, JobError> {
            let n = self.0.fetch_add(1, Ordering::SeqCst) + 1;
            self.1.fetch_max(n, Ordering::SeqCst);
            tokio::time::sleep(Duration::from_millis(20)).await;
            self.0.fetch_sub(1, Ordering::SeqCst);
            Ok(Value::Null)
        }
    }
    r.register(
        "slow",
        Arc::new(Count(now.clone(), peak.clone())),
        KindConfig {
            concurrency: 3,
            ..KindConfig::default()
        },
    );
    r.register(
        "fast",
        Arc::new(Sleep(Duration::ZERO)),
        KindConfig::default(),
    );
    let clock = berth_jobs::SystemClock;
    let mut slow = Vec::new();
    for i in 0..15 {
        slow.push(
            m.enqueue(&NewJob::new("slow", json!(i)), clock.now_ms())
                .await
                .unwrap()
                .id(),
        );
    }
    let fast = m
        .enqueue(&NewJob::new("fast", json!(0)), clock.now_ms())
        .await
        .unwrap()
        .id();
    let h = r.start();
    wait_for(&m, fast, |j| j.state == JobState::Succeeded).await;
    // The fast job did not wait for the 15 slow ones (5 rounds of 20 ms).
    let pending = m.job(*slow.last().unwrap()).await.unwrap().unwrap().state;
    assert_ne!(
        pending,
        JobState::Succeeded,
        "fast kind waited behind the slow kind"
    );
    for id in slow {
        wait_for(&m, id, |j| j.state == JobState::Succeeded).await;
    }
    assert_eq!(peak.load(Ordering::SeqCst), 3);
    h.shutdown(Duration::from_secs(1)).await;
}

/// Issue 8: "a shutdown deadline on SIGTERM": shutdown stops claiming, lets jobs that
/// finish within the deadline record their outcome, and abandons the rest to lease
/// expiry (they stay `running` and are claimed again once the lease expired).
#[tokio::test]
async fn shutdown_deadline_finishes_short_jobs_and_abandons_long_ones() {
    let (_d, m) = open().await;
    let clock = berth_jobs::SystemClock;
    let mut r = Runner::new(m.clone(), config(Arc::new(clock)));
    let lease = KindConfig {
        lease: Duration::from_secs(2),
        ..KindConfig::default()
    };
    r.register("short", Arc::new(Sleep(Duration::from_millis(200))), lease);
    r.register("long", Arc::new(Sleep(Duration::from_secs(60))), lease);
    let short = m
        .enqueue(&NewJob::new("short", json!(0)), clock.now_ms())
        .await
        .unwrap()
        .id();
    let long = m
        .enqueue(&NewJob::new("long", json!(0)), clock.now_ms())
        .await
        .unwrap()
        .id();
    let h = r.start();
    wait_for(&m, short, |j| j.state == JobState::Running).await;
    wait_for(&m, long, |j| j.state == JobState::Running).await;
    // Due only after shutdown began (but well inside the drain window), so a claim of it
    // could only come from a runner that kept claiming while shutting down.
    let later = m
        .enqueue(
            &NewJob::new("short", json!(1)).run_at(clock.now_ms() + 300),
            clock.now_ms(),
        )
        .await
        .unwrap()
        .id();

    let started = Instant::now();
    let report = h.shutdown(Duration::from_millis(800)).await;
    let took = started.elapsed();
    assert!(took < Duration::from_secs(5), "shutdown took {took:?}");
    assert_eq!((report.finished, report.abandoned), (1, 1));
    assert_eq!(
        m.job(short).await.unwrap().unwrap().state,
        JobState::Succeeded
    );
    assert_eq!(
        m.job(later).await.unwrap().unwrap().state,
        JobState::Queued,
        "no claims after shutdown began"
    );
    let abandoned = m.job(long).await.unwrap().unwrap();
    assert_eq!(abandoned.state, JobState::Running);
    // After the lease expires another runner takes it.
    let expiry = abandoned.lease_expires_at.unwrap();
    let again = m.claim("long", "next", 1, 1000, expiry).await.unwrap();
    assert_eq!(again.len(), 1);
    assert_eq!(again[0].lease.attempt, 2);
}

/// Same-process enqueues wake the runner at once (no poll interval to wait out), and a
/// running job's lease is extended by heartbeats while it runs longer than its lease.
#[tokio::test]
async fn waker_and_heartbeats() {
    let (_d, m) = open().await;
    let clock = berth_jobs::SystemClock;
    let mut r = Runner::new(
        m.clone(),
        RunnerConfig {
            poll_interval: Duration::from_secs(3600),
            ..config(Arc::new(clock))
        },
    );
    r.register(
        "k",
        Arc::new(Sleep(Duration::from_millis(700))),
        KindConfig {
            lease: Duration::from_millis(300),
            ..KindConfig::default()
        },
    );
    let waker = r.waker();
    let h = r.start();
    tokio::time::sleep(Duration::from_millis(50)).await; // the first poll found nothing
    let id = m
        .enqueue(&NewJob::new("k", json!(0)), clock.now_ms())
        .await
        .unwrap()
        .id();
    waker.wake();
    wait_for(&m, id, |j| j.state == JobState::Running).await;
    // Nobody can take it while it runs past its 300 ms lease: heartbeats extend it.
    for _ in 0..5 {
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert!(m
            .claim("k", "thief", 1, 1000, clock.now_ms())
            .await
            .unwrap()
            .is_empty());
    }
    wait_for(&m, id, |j| j.state == JobState::Succeeded).await;
    assert_eq!(m.job(id).await.unwrap().unwrap().attempts, 1);
    h.shutdown(Duration::from_secs(1)).await;
}

/// Regression: a kind whose slots are all busy with a long job must not stop the runner
/// from polling for other kinds' jobs (enqueued by another process, so nothing wakes it).
#[tokio::test]
async fn a_full_kind_does_not_stop_polling_for_others() {
    let (_d, m) = open().await;
    let clock = berth_jobs::SystemClock;
    let mut r = Runner::new(m.clone(), config(Arc::new(clock)));
    r.register(
        "long",
        Arc::new(Sleep(Duration::from_secs(30))),
        KindConfig {
            concurrency: 1,
            ..KindConfig::default()
        },
    );
    r.register(
        "fast",
        Arc::new(Sleep(Duration::ZERO)),
        KindConfig::default(),
    );
    let long = m
        .enqueue(&NewJob::new("long", json!(0)), clock.now_ms())
        .await
        .unwrap()
        .id();
    let h = r.start();
    wait_for(&m, long, |j| j.state == JobState::Running).await;
    let fast = m
        .enqueue(&NewJob::new("fast", json!(0)), clock.now_ms())
        .await
        .unwrap()
        .id();
    let start = Instant::now();
    wait_for(&m, fast, |j| j.state == JobState::Succeeded).await;
    assert!(
        start.elapsed() < Duration::from_secs(5),
        "took {:?}",
        start.elapsed()
    );
    h.shutdown(Duration::from_millis(100)).await;
}
