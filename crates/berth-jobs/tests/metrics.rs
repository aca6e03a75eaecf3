//! Issue 8: "counters (queued, running, succeeded, failed, dead, age of the oldest
//! queued job) on /metrics": the runner's metrics, read from a recorder installed for
//! this test binary (the binary installs the Prometheus exporter the same way).

use async_trait::async_trait;
use berth_jobs::{Backoff, JobError, JobHandler, JobInput, KindConfig, Runner, RunnerConfig};
use berth_meta::jobs::{JobState, JobStore, NewJob};
use berth_meta::SqliteMeta;
use metrics_util::debugging::{DebugValue, DebuggingRecorder};
use serde_json::{json, Value};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

struct ByPayload;

#[async_trait]
impl JobHandler for ByPayload {
    async fn run(&self, job: JobInput) -> Result<Value, JobError> {
        match job.payload.as_str() {
            Some("retry") => Err(JobError::Retryable("try later".into())),
            Some("dead") => Err(JobError::Permanent("no".into())),
            _ => Ok(Value::Null),
        }
    }
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

#[tokio::test]
async fn runner_reports_counts_and_oldest_due_age() {
    let recorder = DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    recorder.install().unwrap();

    let dir = tempfile::tempdir().unwrap();
    let m = Arc::new(SqliteMeta::open(&dir.path().join("meta.db")).await.unwrap());
    let now = now_ms();
    for p in ["ok", "ok", "retry", "dead"] {
        m.enqueue(&NewJob::new("k", json!(p)), now).await.unwrap();
    }
    // A kind nobody runs: queued for a minute already.
    m.enqueue(&NewJob::new("orphan", json!(0)).run_at(now - 60_000), now)
        .await
        .unwrap();
    let mut r = Runner::new(
        m.clone(),
        RunnerConfig {
            poll_interval: Duration::from_millis(10),
            stats_interval: Duration::from_millis(20),
            ..RunnerConfig::default()
        },
    );
    r.register(
        "k",
        Arc::new(ByPayload),
        KindConfig {
            backoff: Backoff {
                base: Duration::from_secs(600),
                max: Duration::from_secs(600),
            },
            ..KindConfig::default()
        },
    );
    let h = r.start();
    let start = Instant::now();
    loop {
        let s = m.job_stats(now_ms()).await.unwrap();
        if s.total(JobState::Succeeded) == 2
            && s.total(JobState::Dead) == 1
            && s.total(JobState::Retrying) == 1
        {
            break;
        }
        assert!(start.elapsed() < Duration::from_secs(10), "{s:?}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    tokio::time::sleep(Duration::from_millis(100)).await; // a stats refresh
    h.shutdown(Duration::from_secs(1)).await;

    let snap = snapshotter.snapshot().into_vec();
    let get = |name: &str, labels: &[(&str, &str)]| -> Option<f64> {
        snap.iter().find_map(|(k, _, _, v)| {
            let key = k.key();
            let want: Vec<(String, String)> = labels
                .iter()
                .map(|(a, b)| (a.to_string(), b.to_string()))
                .collect();
            let have: Vec<(String, String)> = key
                .labels()
                .map(|l| (l.key().to_string(), l.value().to_string()))
                .collect();
            (key.name() == name && want.iter().all(|w| have.contains(w))).then(|| match v {
                DebugValue::Counter(c) => *c as f64,
                DebugValue::Gauge(g) => g.into_inner(),
                DebugValue::Histogram(h) => h.len() as f64,
            })
        })
    };
    assert_eq!(
        get("berth_jobs_succeeded_total", &[("kind", "k")]),
        Some(2.0)
    );
    assert_eq!(get("berth_jobs_failed_total", &[("kind", "k")]), Some(1.0));
    assert_eq!(get("berth_jobs_dead_total", &[("kind", "k")]), Some(1.0));
    assert_eq!(get("berth_jobs_started_total", &[("kind", "k")]), Some(4.0));
    assert_eq!(get("berth_jobs_running_local", &[("kind", "k")]), Some(0.0));
    assert_eq!(
        get("berth_jobs", &[("kind", "k"), ("state", "succeeded")]),
        Some(2.0)
    );
    assert_eq!(
        get("berth_jobs", &[("kind", "k"), ("state", "retrying")]),
        Some(1.0)
    );
    assert_eq!(
        get("berth_jobs", &[("kind", "orphan"), ("state", "queued")]),
        Some(1.0)
    );
    let age = get("berth_jobs_oldest_due_age_seconds", &[]).unwrap();
    assert!((60.0..120.0).contains(&age), "oldest due age {age}");
}
