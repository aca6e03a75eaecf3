//! Issue 8: "claiming must be correct with several processes on one database" and "two
//! processes on one database never run the same job at once". This test binary runs as
//! the parent (no environment variable): it enqueues jobs in a SQLite file and starts
//! three copies of itself as workers (`BERTH_JOBS_CHILD_DB` set), each a `Runner` with
//! its own `SqliteMeta` (its own writer connection) claiming as fast as it can. Every
//! worker logs the jobs it ran; the parent checks that every job ran exactly once and
//! succeeded.

use async_trait::async_trait;
use berth_jobs::{JobError, JobHandler, JobInput, KindConfig, Runner, RunnerConfig};
use berth_meta::jobs::{JobState, JobStore, NewJob};
use berth_meta::SqliteMeta;
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const JOBS: i64 = 1500;
const WORKERS: usize = 3;

struct Record(Arc<Mutex<Vec<i64>>>);

#[async_trait]
impl JobHandler for Record {
    async fn run(&self, job: JobInput) -> Result<Value, JobError> {
        self.0.lock().unwrap().push(job.id);
        // Give the other processes a chance to try to claim the same job meanwhile.
        tokio::task::yield_now().await;
        Ok(json!(std::process::id()))
    }
}

async fn child(db: &Path, out: &Path) {
    let meta = Arc::new(SqliteMeta::open(db).await.unwrap());
    let ran = Arc::new(Mutex::new(Vec::new()));
    let mut runner = Runner::new(
        meta.clone(),
        RunnerConfig {
            poll_interval: Duration::from_millis(5),
            completion_batch: 16,
            ..RunnerConfig::default()
        },
    );
    runner.register(
        "k",
        Arc::new(Record(ran.clone())),
        KindConfig {
            concurrency: 8,
            ..KindConfig::default()
        },
    );
    let h = runner.start();
    let start = Instant::now();
    loop {
        let stats = meta.job_stats(0).await.unwrap();
        if stats.total(JobState::Succeeded) == JOBS as u64 {
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "jobs not done: {stats:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    h.shutdown(Duration::from_secs(5)).await;
    let ids = ran
        .lock()
        .unwrap()
        .iter()
        .map(|i| i.to_string())
        .collect::<Vec<_>>();
    std::fs::write(out, ids.join("\n")).unwrap();
}

async fn parent() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("meta.db");
    let meta = SqliteMeta::open(&db).await.unwrap();
    let mut tx = meta.begin_write().await.unwrap();
    for i in 0..JOBS {
        berth_meta::sqlite_jobs::enqueue(&mut tx, &NewJob::new("k", json!(i)), 0)
            .await
            .unwrap();
    }
    tx.commit().await.unwrap();
    let exe = std::env::current_exe().unwrap();
    let children: Vec<_> = (0..WORKERS)
        .map(|w| {
            let out = dir.path().join(format!("ran-{w}"));
            let child = std::process::Command::new(&exe)
                .env("BERTH_JOBS_CHILD_DB", &db)
                .env("BERTH_JOBS_CHILD_OUT", &out)
                .spawn()
                .unwrap();
            (child, out)
        })
        .collect();
    let mut runs: BTreeMap<i64, Vec<usize>> = BTreeMap::new();
    for (w, (mut child, out)) in children.into_iter().enumerate() {
        assert!(child.wait().unwrap().success(), "worker {w} failed");
        for line in std::fs::read_to_string(&out)
            .unwrap()
            .lines()
            .filter(|l| !l.is_empty())
        {
            runs.entry(line.parse().unwrap()).or_default().push(w);
        }
    }
    let twice: Vec<_> = runs.iter().filter(|(_, w)| w.len() > 1).collect();
    assert!(twice.is_empty(), "jobs run more than once: {twice:?}");
    assert_eq!(runs.len() as i64, JOBS, "every job ran");
    let stats = meta.job_stats(0).await.unwrap();
    assert_eq!(stats.total(JobState::Succeeded), JOBS as u64);
    let per_worker: Vec<usize> = (0..WORKERS)
        .map(|w| runs.values().filter(|v| v[0] == w).count())
        .collect();
    println!("jobs per worker process: {per_worker:?}");
}

fn main() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    match (
        std::env::var_os("BERTH_JOBS_CHILD_DB"),
        std::env::var_os("BERTH_JOBS_CHILD_OUT"),
    ) {
        (Some(db), Some(out)) => rt.block_on(child(Path::new(&db), Path::new(&out))),
        _ => {
            print!("test several_processes_never_run_one_job_twice ... ");
            rt.block_on(parent());
            println!("ok");
        }
    }
}
