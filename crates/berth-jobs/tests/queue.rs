//! The durable queue of `berth-meta` (issue 8, "Jobs"): idempotency keys, the caller's
//! transaction, leases after a crash, retries, dead jobs, deadlines, admin operations.
//! On real SQLite files in temporary directories, with explicit clock values.

use berth_jobs::Backoff;
use berth_meta::jobs::{
    Completion, Enqueued, FailOutcome, JobFilter, JobState, JobStore, Lease, NewJob,
};
use berth_meta::SqliteMeta;
use serde_json::json;
use std::time::Duration;

const T: i64 = 1_800_000_000_000;

async fn open() -> (tempfile::TempDir, SqliteMeta) {
    let dir = tempfile::tempdir().unwrap();
    let meta = SqliteMeta::open(&dir.path().join("meta.db")).await.unwrap();
    (dir, meta)
}

fn ok(lease: &Lease) -> Completion {
    Completion {
        lease: lease.clone(),
        result: json!({"ok": true}),
    }
}

/// Issue 8: "enqueueing a key that is already pending or running is a no-op" — and once
/// that job finished, the key can be enqueued again.
#[tokio::test]
async fn idempotency_key_is_a_no_op_while_pending_or_running() {
    let (_d, m) = open().await;
    let job = NewJob::new("deliver", json!({"event": 1})).idempotency_key("evt-1");
    let first = m.enqueue(&job, T).await.unwrap();
    assert!(matches!(first, Enqueued::Created(_)));
    // Queued: no-op.
    assert_eq!(
        m.enqueue(&job, T).await.unwrap(),
        Enqueued::Existing(first.id())
    );
    // The same key under another kind is another job.
    let other = NewJob::new("replicate", json!({})).idempotency_key("evt-1");
    assert!(matches!(
        m.enqueue(&other, T).await.unwrap(),
        Enqueued::Created(_)
    ));
    // Running: still a no-op.
    let claimed = m.claim("deliver", "w1", 10, 1000, T).await.unwrap();
    assert_eq!(claimed.len(), 1);
    assert_eq!(
        m.enqueue(&job, T).await.unwrap(),
        Enqueued::Existing(first.id())
    );
    // Retrying: still a no-op.
    let out = m
        .fail(&claimed[0].lease, "boom", Some(T + 10), T)
        .await
        .unwrap();
    assert_eq!(out, Some(FailOutcome::Retrying { run_at: T + 10 }));
    assert_eq!(
        m.enqueue(&job, T).await.unwrap(),
        Enqueued::Existing(first.id())
    );
    // Finished: a new job.
    let claimed = m.claim("deliver", "w1", 10, 1000, T + 10).await.unwrap();
    assert_eq!(
        m.complete(&[ok(&claimed[0].lease)], T + 11).await.unwrap(),
        vec![true]
    );
    let again = m.enqueue(&job, T + 12).await.unwrap();
    assert!(matches!(again, Enqueued::Created(id) if id != first.id()));
    // Jobs without a key are never merged.
    let plain = NewJob::new("deliver", json!({}));
    let a = m.enqueue(&plain, T).await.unwrap();
    let b = m.enqueue(&plain, T).await.unwrap();
    assert!(matches!((a, b), (Enqueued::Created(x), Enqueued::Created(y)) if x != y));
}

/// Issue 8: "enqueue in the same metadata transaction as the state change that causes
/// it": a rolled-back transaction leaves no job, a committed one does.
#[tokio::test]
async fn enqueue_in_the_callers_transaction() {
    let (_d, m) = open().await;
    let mut tx = m.begin_write().await.unwrap();
    berth_meta::sqlite_jobs::enqueue(&mut tx, &NewJob::new("k", json!(1)), T)
        .await
        .unwrap();
    tx.rollback().await.unwrap();
    assert!(m.list_jobs(&JobFilter::default()).await.unwrap().is_empty());

    let mut tx = m.begin_write().await.unwrap();
    let e = berth_meta::sqlite_jobs::enqueue(&mut tx, &NewJob::new("k", json!(2)), T)
        .await
        .unwrap();
    // Invisible to others until commit.
    assert!(m.job(e.id()).await.unwrap().is_none());
    tx.commit().await.unwrap();
    let row = m.job(e.id()).await.unwrap().unwrap();
    assert_eq!((row.state, row.payload), (JobState::Queued, json!(2)));
}

/// Issue 8: "a worker that dies (kill -9) loses its lease and the job is picked up again
/// after the lease expires; a finished job is never run again". The crash is simulated by
/// a claim that is never heartbeated or completed.
#[tokio::test]
async fn expired_lease_is_claimed_again_and_the_old_owner_is_refused() {
    let (_d, m) = open().await;
    let id = m
        .enqueue(&NewJob::new("k", json!({})), T)
        .await
        .unwrap()
        .id();
    let a = m.claim("k", "crashed", 10, 1000, T).await.unwrap();
    assert_eq!(a.len(), 1);
    assert_eq!(a[0].lease.attempt, 1);
    // While the lease holds, nobody else gets the job.
    assert!(m
        .claim("k", "b", 10, 1000, T + 999)
        .await
        .unwrap()
        .is_empty());
    // Expired: claimed again, as attempt 2.
    let b = m.claim("k", "b", 10, 1000, T + 1000).await.unwrap();
    assert_eq!(b.len(), 1);
    assert_eq!(
        b[0].lease,
        Lease {
            job_id: id,
            owner: "b".into(),
            attempt: 2
        }
    );
    // The old owner can neither extend, complete nor fail it.
    assert!(!m.heartbeat(&a[0].lease, 1000, T + 1001).await.unwrap());
    assert_eq!(
        m.complete(&[ok(&a[0].lease)], T + 1001).await.unwrap(),
        vec![false]
    );
    assert_eq!(
        m.fail(&a[0].lease, "x", None, T + 1001).await.unwrap(),
        None
    );
    // Heartbeats keep the new lease alive past its first expiry.
    assert!(m.heartbeat(&b[0].lease, 1000, T + 1900).await.unwrap());
    assert!(m
        .claim("k", "c", 10, 1000, T + 2500)
        .await
        .unwrap()
        .is_empty());
    assert_eq!(
        m.complete(&[ok(&b[0].lease)], T + 2600).await.unwrap(),
        vec![true]
    );
    // Finished: never claimed again, whatever the time.
    assert!(m
        .claim("k", "c", 10, 1000, T + 1_000_000)
        .await
        .unwrap()
        .is_empty());
    let row = m.job(id).await.unwrap().unwrap();
    assert_eq!(row.state, JobState::Succeeded);
    assert_eq!(row.attempts, 2);
    assert_eq!(row.result, Some(json!({"ok": true})));
}

/// A job whose worker dies on every attempt (e.g. it crashes the process) is dead once
/// its attempts are used up, with the reason, instead of looping for ever.
#[tokio::test]
async fn lost_leases_use_up_attempts() {
    let (_d, m) = open().await;
    let id = m
        .enqueue(&NewJob::new("k", json!({})).max_attempts(2), T)
        .await
        .unwrap()
        .id();
    assert_eq!(m.claim("k", "a", 1, 100, T).await.unwrap().len(), 1);
    assert_eq!(m.claim("k", "a", 1, 100, T + 100).await.unwrap().len(), 1);
    assert!(m.claim("k", "a", 1, 100, T + 200).await.unwrap().is_empty());
    let row = m.job(id).await.unwrap().unwrap();
    assert_eq!(row.state, JobState::Dead);
    assert_eq!(
        row.last_error.as_deref(),
        Some("lease expired on attempt 2 of 2 (worker lost)")
    );
}

/// Issue 8: "retries … per-kind max attempts or deadline, then dead with the last error".
#[tokio::test]
async fn dead_after_max_attempts_with_the_last_error() {
    let (_d, m) = open().await;
    let id = m
        .enqueue(&NewJob::new("k", json!({})).max_attempts(3), T)
        .await
        .unwrap()
        .id();
    let mut now = T;
    for attempt in 1..=3 {
        let c = m.claim("k", "w", 1, 1000, now).await.unwrap();
        assert_eq!(c.len(), 1, "attempt {attempt} is claimed");
        assert_eq!(c[0].lease.attempt, attempt);
        let out = m
            .fail(
                &c[0].lease,
                &format!("error {attempt}"),
                Some(now + 50),
                now,
            )
            .await
            .unwrap()
            .unwrap();
        if attempt < 3 {
            assert_eq!(out, FailOutcome::Retrying { run_at: now + 50 });
            // Not before run_at.
            assert!(m
                .claim("k", "w", 1, 1000, now + 49)
                .await
                .unwrap()
                .is_empty());
        } else {
            assert_eq!(out, FailOutcome::Dead);
        }
        now += 50;
    }
    let row = m.job(id).await.unwrap().unwrap();
    assert_eq!(row.state, JobState::Dead);
    assert_eq!(row.last_error.as_deref(), Some("error 3"));
    assert!(m
        .claim("k", "w", 1, 1000, now + 10_000)
        .await
        .unwrap()
        .is_empty());
}

/// A permanent error is dead at once; a retry that would fall after the deadline is dead;
/// a job whose deadline passed before it ran is dead.
#[tokio::test]
async fn permanent_errors_and_deadlines() {
    let (_d, m) = open().await;
    let p = m
        .enqueue(&NewJob::new("k", json!(1)), T)
        .await
        .unwrap()
        .id();
    let c = m.claim("k", "w", 1, 1000, T).await.unwrap();
    assert_eq!(
        m.fail(&c[0].lease, "bad payload", None, T).await.unwrap(),
        Some(FailOutcome::Dead)
    );
    assert_eq!(m.job(p).await.unwrap().unwrap().state, JobState::Dead);

    let d = m
        .enqueue(&NewJob::new("k", json!(2)).deadline(T + 100), T)
        .await
        .unwrap()
        .id();
    let c = m.claim("k", "w", 1, 1000, T).await.unwrap();
    assert_eq!(
        m.fail(&c[0].lease, "down", Some(T + 101), T).await.unwrap(),
        Some(FailOutcome::Dead)
    );
    assert_eq!(
        m.job(d).await.unwrap().unwrap().last_error.as_deref(),
        Some("down")
    );

    let late = m
        .enqueue(
            &NewJob::new("k", json!(3)).deadline(T + 100).run_at(T + 50),
            T,
        )
        .await
        .unwrap()
        .id();
    assert!(m
        .claim("k", "w", 1, 1000, T + 100)
        .await
        .unwrap()
        .is_empty());
    let row = m.job(late).await.unwrap().unwrap();
    assert_eq!(row.state, JobState::Dead);
    assert_eq!(
        row.last_error.as_deref(),
        Some("deadline passed before the job could run")
    );
}

/// `berth admin jobs retry|cancel|list|show`: the operations underneath, and the
/// statistics behind the metrics.
#[tokio::test]
async fn cancel_retry_list_and_stats() {
    let (_d, m) = open().await;
    let a = m
        .enqueue(&NewJob::new("a", json!(1)).idempotency_key("x"), T)
        .await
        .unwrap()
        .id();
    let b = m
        .enqueue(&NewJob::new("b", json!(2)).run_at(T - 5000), T)
        .await
        .unwrap()
        .id();
    let _c = m
        .enqueue(&NewJob::new("b", json!(3)).run_at(T + 5000), T)
        .await
        .unwrap()
        .id();

    let stats = m.job_stats(T).await.unwrap();
    assert_eq!(stats.total(JobState::Queued), 3);
    assert_eq!(stats.counts["b"]["queued"], 2);
    assert_eq!(stats.oldest_due_age_ms, Some(5000));

    assert!(m.cancel_job(a, T).await.unwrap());
    assert!(!m.cancel_job(a, T).await.unwrap(), "already cancelled");
    assert!(!m.cancel_job(999, T).await.unwrap(), "no such job");
    assert!(m.claim("a", "w", 10, 1000, T).await.unwrap().is_empty());
    // A pending job with the same key blocks the retry, so there are never two.
    let a2 = m
        .enqueue(&NewJob::new("a", json!(1)).idempotency_key("x"), T)
        .await
        .unwrap();
    assert!(matches!(a2, Enqueued::Created(_)));
    assert!(!m.retry_job(a, T).await.unwrap());
    assert!(m.cancel_job(a2.id(), T).await.unwrap());
    assert!(m.retry_job(a, T + 1).await.unwrap());
    let row = m.job(a).await.unwrap().unwrap();
    assert_eq!(
        (row.state, row.attempts, row.run_at),
        (JobState::Queued, 0, T + 1)
    );
    assert!(
        !m.retry_job(b, T).await.unwrap(),
        "queued jobs are not retried"
    );

    let only_b = m
        .list_jobs(&JobFilter {
            kind: Some("b".into()),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(only_b.len(), 2);
    assert!(only_b[0].id > only_b[1].id, "newest first");
    let cancelled = m
        .list_jobs(&JobFilter {
            state: Some(JobState::Cancelled),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(
        cancelled.iter().map(|j| j.id).collect::<Vec<_>>(),
        vec![a2.id()]
    );
    let page = m
        .list_jobs(&JobFilter {
            before_id: Some(only_b[0].id),
            limit: 1,
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(page.len(), 1);
    assert!(page[0].id < only_b[0].id);
    // The JSON `berth admin jobs show` prints.
    let shown = serde_json::to_value(m.job(b).await.unwrap().unwrap()).unwrap();
    assert_eq!(shown["state"], "queued");
    assert_eq!(shown["payload"], json!(2));
}

/// Issue 8 ("durable jobs", a queue that runs for years): finished jobs past their
/// retention are deleted, whatever way they finished; pending and running jobs never are.
#[tokio::test]
async fn finished_jobs_past_their_retention_are_pruned() {
    let (_d, m) = open().await;
    let job = |n: i64| NewJob::new("k", json!(n));
    let done = m.enqueue(&job(1), T).await.unwrap().id();
    let claimed = m.claim("k", "w", 1, 1000, T).await.unwrap();
    m.complete(&[ok(&claimed[0].lease)], T).await.unwrap();
    let dead = m.enqueue(&job(2).max_attempts(1), T).await.unwrap().id();
    let claimed = m.claim("k", "w", 1, 1000, T).await.unwrap();
    m.fail(&claimed[0].lease, "boom", None, T).await.unwrap();
    let cancelled = m.enqueue(&job(3), T).await.unwrap().id();
    assert!(m.cancel_job(cancelled, T).await.unwrap());
    let running = m.enqueue(&job(4), T).await.unwrap().id();
    let claimed = m.claim("k", "w", 1, 1000, T).await.unwrap();
    assert_eq!(claimed[0].lease.job_id, running);
    let queued = m
        .enqueue(&job(5).run_at(T - 1_000_000), T)
        .await
        .unwrap()
        .id();
    let recent = m.enqueue(&job(6), T).await.unwrap().id();
    m.cancel_job(queued, T).await.unwrap();
    m.retry_job(queued, T).await.unwrap();
    m.cancel_job(recent, T + 10).await.unwrap();

    // Nothing finished before T: nothing pruned.
    assert_eq!(m.prune_jobs(T).await.unwrap(), 0);
    // Everything finished at T goes; the job cancelled at T + 10 stays.
    assert_eq!(m.prune_jobs(T + 1).await.unwrap(), 3);
    for id in [done, dead, cancelled] {
        assert!(m.job(id).await.unwrap().is_none(), "job {id} pruned");
    }
    for (id, state) in [
        (running, JobState::Running),
        (queued, JobState::Queued),
        (recent, JobState::Cancelled),
    ] {
        assert_eq!(m.job(id).await.unwrap().unwrap().state, state);
    }
}

/// Backoff: exponential, capped, with half of each delay guaranteed and half random.
#[test]
fn backoff_doubles_caps_and_jitters_within_bounds() {
    let b = Backoff {
        base: Duration::from_secs(1),
        max: Duration::from_secs(60),
    };
    let ceilings: Vec<u64> = (1..=8).map(|n| b.ceiling(n).as_secs()).collect();
    assert_eq!(ceilings, vec![1, 2, 4, 8, 16, 32, 60, 60]);
    assert_eq!(b.ceiling(u32::MAX), Duration::from_secs(60), "no overflow");
    for n in 1..=10 {
        let d = b.ceiling(n);
        assert_eq!(b.delay(n, 0.0), d / 2);
        assert!(b.delay(n, 0.999_999) <= d);
        for _ in 0..100 {
            let x = b.delay(n, rand::random());
            assert!(
                x >= d / 2 && x <= d,
                "attempt {n}: {x:?} outside [{:?}, {d:?}]",
                d / 2
            );
        }
    }
    assert_eq!(b.delay(3, f64::NAN), b.ceiling(3) / 2);
    assert_eq!(b.delay(3, 7.0), b.ceiling(3));
}
