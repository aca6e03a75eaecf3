//! The durable queue of `berth-meta` (issue 8, "Jobs"): idempotency keys, the caller's
//! transaction, leases after a crash, retries, dead jobs, deadlines, admin operations.
//!
//! One suite for both backends: every scenario takes `&dyn JobStore` and runs on SQLite
//! (a real file in a temporary directory) and on PostgreSQL (a fresh database on the
//! test server of `berth_test_support::postgres`; skipped loudly without PostgreSQL
//! outside CI). Explicit clock values. The last tests race two PostgreSQL pools — two
//! nodes — on one database, which only PostgreSQL allows.

use berth_jobs::Backoff;
use berth_meta::jobs::{
    Completion, Enqueued, FailOutcome, JobFilter, JobState, JobStore, Lease, NewJob,
};
use berth_meta::{PgMeta, SqliteMeta};
use berth_test_support::postgres::Postgres;
use serde_json::json;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

const T: i64 = 1_800_000_000_000;

/// One backend under test.
enum Backend {
    Sqlite {
        _dir: tempfile::TempDir,
        meta: SqliteMeta,
    },
    Pg(PgMeta),
}

impl Backend {
    fn store(&self) -> &dyn JobStore {
        match self {
            Backend::Sqlite { meta, .. } => meta,
            Backend::Pg(m) => m,
        }
    }
}

/// A fresh SQLite file, and a fresh PostgreSQL database when the server is available.
async fn backends(test: &str) -> Vec<Backend> {
    let dir = tempfile::tempdir().unwrap();
    let sqlite = SqliteMeta::open(&dir.path().join("meta.db")).await.unwrap();
    let mut all = vec![Backend::Sqlite {
        _dir: dir,
        meta: sqlite,
    }];
    if let Some(pg) = Postgres::shared(test) {
        all.push(Backend::Pg(PgMeta::open(&pg.database()).await.unwrap()));
    }
    all
}

/// Runs `scenario` once per backend.
macro_rules! on_both {
    ($test:ident, $scenario:ident) => {
        #[doc = concat!("Runs [`", stringify!($scenario), "`] on SQLite and on PostgreSQL.")]
        #[tokio::test]
        async fn $test() {
            for b in backends(stringify!($test)).await {
                $scenario(b.store()).await;
            }
        }
    };
}

fn ok(lease: &Lease) -> Completion {
    Completion {
        lease: lease.clone(),
        result: json!({"ok": true}),
    }
}

/// Issue 8: "enqueueing a key that is already pending or running is a no-op" — and once
/// that job finished, the key can be enqueued again.
async fn idempotency_key_is_a_no_op_while_pending_or_running_on(m: &dyn JobStore) {
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
on_both!(
    idempotency_key_is_a_no_op_while_pending_or_running,
    idempotency_key_is_a_no_op_while_pending_or_running_on
);

/// Issue 8: "enqueue in the same metadata transaction as the state change that causes
/// it": a rolled-back transaction leaves no job, a committed one does. `$enqueue` is the
/// backend's `enqueue(&mut Transaction, …)`.
macro_rules! enqueue_in_the_callers_transaction_on {
    ($m:expr, $enqueue:path) => {{
        let m = $m;
        let mut tx = m.begin_write().await.unwrap();
        $enqueue(&mut tx, &NewJob::new("k", json!(1)), T)
            .await
            .unwrap();
        tx.rollback().await.unwrap();
        assert!(m.list_jobs(&JobFilter::default()).await.unwrap().is_empty());

        let mut tx = m.begin_write().await.unwrap();
        let e = $enqueue(&mut tx, &NewJob::new("k", json!(2)), T)
            .await
            .unwrap();
        // Invisible to others until commit.
        assert!(m.job(e.id()).await.unwrap().is_none());
        tx.commit().await.unwrap();
        let row = m.job(e.id()).await.unwrap().unwrap();
        assert_eq!((row.state, row.payload), (JobState::Queued, json!(2)));
    }};
}

/// Runs [`enqueue_in_the_callers_transaction_on`] with `sqlite_jobs::enqueue` and with
/// `postgres_jobs::enqueue`.
#[tokio::test]
async fn enqueue_in_the_callers_transaction() {
    for b in backends("enqueue_in_the_callers_transaction").await {
        match &b {
            Backend::Sqlite { meta: m, .. } => {
                enqueue_in_the_callers_transaction_on!(m, berth_meta::sqlite_jobs::enqueue)
            }
            Backend::Pg(m) => {
                enqueue_in_the_callers_transaction_on!(m, berth_meta::postgres_jobs::enqueue)
            }
        }
    }
}

/// Issue 8: "a worker that dies (kill -9) loses its lease and the job is picked up again
/// after the lease expires; a finished job is never run again". The crash is simulated by
/// a claim that is never heartbeated or completed.
async fn expired_lease_is_claimed_again_and_the_old_owner_is_refused_on(m: &dyn JobStore) {
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
on_both!(
    expired_lease_is_claimed_again_and_the_old_owner_is_refused,
    expired_lease_is_claimed_again_and_the_old_owner_is_refused_on
);

/// A job whose worker dies on every attempt (e.g. it crashes the process) is dead once
/// its attempts are used up, with the reason, instead of looping for ever.
async fn lost_leases_use_up_attempts_on(m: &dyn JobStore) {
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
on_both!(lost_leases_use_up_attempts, lost_leases_use_up_attempts_on);

/// Issue 8: "retries … per-kind max attempts or deadline, then dead with the last error".
async fn dead_after_max_attempts_with_the_last_error_on(m: &dyn JobStore) {
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
on_both!(
    dead_after_max_attempts_with_the_last_error,
    dead_after_max_attempts_with_the_last_error_on
);

/// A permanent error is dead at once; a retry that would fall after the deadline is dead;
/// a job whose deadline passed before it ran is dead.
async fn permanent_errors_and_deadlines_on(m: &dyn JobStore) {
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
on_both!(
    permanent_errors_and_deadlines,
    permanent_errors_and_deadlines_on
);

/// `berth admin jobs retry|cancel|list|show`: the operations underneath, and the
/// statistics behind the metrics.
async fn cancel_retry_list_and_stats_on(m: &dyn JobStore) {
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
on_both!(cancel_retry_list_and_stats, cancel_retry_list_and_stats_on);

/// Issue 8 ("durable jobs", a queue that runs for years): finished jobs past their
/// retention are deleted, whatever way they finished; pending and running jobs never are.
async fn finished_jobs_past_their_retention_are_pruned_on(m: &dyn JobStore) {
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
on_both!(
    finished_jobs_past_their_retention_are_pruned,
    finished_jobs_past_their_retention_are_pruned_on
);

/// Two nodes on one PostgreSQL database, as `berth serve` runs them: two pools.
async fn two_nodes(test: &str) -> Option<(Arc<PgMeta>, Arc<PgMeta>)> {
    let pg = Postgres::shared(test)?;
    let url = pg.database();
    let a = PgMeta::open(&url).await.unwrap();
    let b = PgMeta::open(&url).await.unwrap();
    Some((Arc::new(a), Arc::new(b)))
}

/// Issue 8 / DESIGN.md invariant 4 on PostgreSQL: claimers on several nodes at once never
/// lease one job twice (`FOR UPDATE SKIP LOCKED`), and together they drain the queue:
/// every job is claimed exactly once, as attempt 1.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_claimers_on_two_nodes_never_share_a_job() {
    let Some((a, b)) = two_nodes("concurrent_claimers_on_two_nodes_never_share_a_job").await else {
        return;
    };
    let jobs: Vec<NewJob> = (0..300).map(|n| NewJob::new("k", json!(n))).collect();
    a.enqueue_batch(&jobs, T).await.unwrap();
    let mut tasks = Vec::new();
    for w in 0..8 {
        let node = if w % 2 == 0 { a.clone() } else { b.clone() };
        tasks.push(tokio::spawn(async move {
            let owner = format!("w{w}");
            let mut got = Vec::new();
            loop {
                let batch = node.claim("k", &owner, 7, 60_000, T).await.unwrap();
                if batch.is_empty() {
                    return got;
                }
                got.extend(batch.into_iter().map(|j| (j.lease, j.payload)));
            }
        }));
    }
    let mut by_job: BTreeMap<i64, Vec<Lease>> = BTreeMap::new();
    for t in tasks {
        for (lease, _) in t.await.unwrap() {
            by_job.entry(lease.job_id).or_default().push(lease);
        }
    }
    assert_eq!(by_job.len(), 300, "every job claimed");
    for (id, leases) in &by_job {
        assert_eq!(leases.len(), 1, "job {id} leased to {leases:?}");
        assert_eq!(leases[0].attempt, 1);
        let row = a.job(*id).await.unwrap().unwrap();
        assert_eq!(row.lease_owner.as_deref(), Some(leases[0].owner.as_str()));
    }
    assert_eq!(b.job_stats(T).await.unwrap().total(JobState::Running), 300);
}

/// Issue 8 ("enqueueing a key that is already pending or running is a no-op") across
/// nodes: many concurrent enqueues of one key on two nodes make one job, and every
/// caller is told its ID; a concurrent retry of a finished job with that key is refused
/// rather than making a second pending one.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_enqueues_of_one_key_make_one_job() {
    let Some((a, b)) = two_nodes("concurrent_enqueues_of_one_key_make_one_job").await else {
        return;
    };
    // A dead job holding the same key, to be retried while the enqueues race.
    let old = a
        .enqueue(&NewJob::new("deliver", json!(0)).idempotency_key("evt"), T)
        .await
        .unwrap()
        .id();
    let c = a.claim("deliver", "w", 1, 1000, T).await.unwrap();
    a.fail(&c[0].lease, "gone", None, T).await.unwrap();
    let job = NewJob::new("deliver", json!(1)).idempotency_key("evt");
    let mut tasks = Vec::new();
    for n in 0..16 {
        let node = if n % 2 == 0 { a.clone() } else { b.clone() };
        let job = job.clone();
        tasks.push(tokio::spawn(async move {
            if n == 5 {
                node.retry_job(old, T).await.map(|r| (None, r)).unwrap()
            } else {
                (Some(node.enqueue(&job, T).await.unwrap()), false)
            }
        }));
    }
    let mut ids = Vec::new();
    let mut retried = false;
    for t in tasks {
        match t.await.unwrap() {
            (Some(e), _) => ids.push(e),
            (None, r) => retried = r,
        }
    }
    let pending: Vec<_> = a
        .list_jobs(&JobFilter::default())
        .await
        .unwrap()
        .into_iter()
        .filter(|j| j.state == JobState::Queued)
        .collect();
    assert_eq!(pending.len(), 1, "one pending job for the key: {pending:?}");
    let winner = pending[0].id;
    assert_eq!(retried, winner == old, "the retry applied iff it won");
    let created = ids
        .iter()
        .filter(|e| matches!(e, Enqueued::Created(_)))
        .count();
    assert_eq!(created, usize::from(winner != old));
    assert!(ids.iter().all(|e| e.id() == winner), "{ids:?}");
}

/// A worker lost on one node (its lease expired) is replaced by exactly one claimer
/// when both nodes try at the same moment; the loser's old lease stays refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_expired_lease_is_taken_over_by_one_node() {
    let Some((a, b)) = two_nodes("an_expired_lease_is_taken_over_by_one_node").await else {
        return;
    };
    let ids: Vec<i64> = {
        let mut v = Vec::new();
        for n in 0..20 {
            v.push(
                a.enqueue(&NewJob::new("k", json!(n)), T)
                    .await
                    .unwrap()
                    .id(),
            );
        }
        v
    };
    let lost = a.claim("k", "crashed", 100, 1000, T).await.unwrap();
    assert_eq!(lost.len(), 20);
    let (ra, rb) = tokio::join!(
        a.claim("k", "a", 100, 1000, T + 1000),
        b.claim("k", "b", 100, 1000, T + 1000)
    );
    let (ra, rb) = (ra.unwrap(), rb.unwrap());
    assert_eq!(ra.len() + rb.len(), 20, "each expired job taken over once");
    let mut taken: Vec<i64> = ra.iter().chain(&rb).map(|j| j.lease.job_id).collect();
    taken.sort();
    assert_eq!(taken, ids);
    assert!(ra.iter().chain(&rb).all(|j| j.lease.attempt == 2));
    for l in &lost {
        assert!(!b.heartbeat(&l.lease, 1000, T + 1001).await.unwrap());
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
