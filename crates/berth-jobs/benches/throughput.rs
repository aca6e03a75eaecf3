//! Trivial-job throughput on the embedded default (SQLite file, `synchronous=FULL`):
//! DESIGN.md target "at least 2,000 trivial jobs per second". Enqueues `JOBS` no-op jobs,
//! starts one `Runner`, and times until all are recorded as succeeded (claimed, run,
//! completed — every state change committed). Also times enqueueing, batched in one
//! transaction and one transaction per job (what a push costs).
//!
//! Run: `bench/jobs.sh` or `cargo bench -p berth-jobs --bench throughput [-- JOBS CONCURRENCY]`.

use async_trait::async_trait;
use berth_jobs::{JobError, JobHandler, JobInput, KindConfig, Runner, RunnerConfig};
use berth_meta::jobs::{JobState, JobStore, NewJob};
use berth_meta::SqliteMeta;
use serde_json::{json, Value};
use std::sync::Arc;
use std::time::{Duration, Instant};

struct Noop;

#[async_trait]
impl JobHandler for Noop {
    async fn run(&self, _job: JobInput) -> Result<Value, JobError> {
        Ok(Value::Null)
    }
}

fn main() {
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with('-'))
        .collect();
    let jobs: usize = args.first().and_then(|a| a.parse().ok()).unwrap_or(20_000);
    let concurrency: usize = args.get(1).and_then(|a| a.parse().ok()).unwrap_or(64);
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async move {
        let dir = tempfile::tempdir().unwrap();
        let meta = Arc::new(SqliteMeta::open(&dir.path().join("meta.db")).await.unwrap());

        let single = 500;
        let t = Instant::now();
        for i in 0..single {
            meta.enqueue(&NewJob::new("other", json!(i)), 0).await.unwrap();
        }
        let per_tx = single as f64 / t.elapsed().as_secs_f64();

        let t = Instant::now();
        let mut tx = meta.begin_write().await.unwrap();
        for i in 0..jobs {
            berth_meta::sqlite_jobs::enqueue(&mut tx, &NewJob::new("noop", json!({"i": i})), 0)
                .await
                .unwrap();
        }
        tx.commit().await.unwrap();
        let batched = jobs as f64 / t.elapsed().as_secs_f64();

        let mut runner = Runner::new(meta.clone(), RunnerConfig::default());
        runner.register("noop", Arc::new(Noop), KindConfig { concurrency, ..KindConfig::default() });
        let t = Instant::now();
        let h = runner.start();
        loop {
            let done = meta.job_stats(0).await.unwrap().counts["noop"]
                .get(JobState::Succeeded.as_str())
                .copied()
                .unwrap_or(0);
            if done == jobs as u64 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        let elapsed = t.elapsed();
        h.shutdown(Duration::from_secs(5)).await;
        println!("enqueue, one transaction per job: {per_tx:.0} jobs/s");
        println!("enqueue, {jobs} in one transaction: {batched:.0} jobs/s");
        println!(
            "claimed, run and completed: {jobs} trivial jobs in {:.2} s = {:.0} jobs/s (concurrency {concurrency})",
            elapsed.as_secs_f64(),
            jobs as f64 / elapsed.as_secs_f64()
        );
    });
}
