//! The shared test suite of [`LifecycleStore`] (issue 12: ECR lifecycle policies and
//! their previews), run once on SQLite (a temporary file) and once on PostgreSQL (a
//! fresh database on berth-test-support's throwaway server). Both must give the same
//! answers. `pg_race_*` checks, with two `PgMeta` pools standing for two nodes, that two
//! concurrent `StartLifecyclePolicyPreview`s cannot both start
//! (`LifecyclePolicyPreviewInProgressException` for the loser).
//!
//! Without PostgreSQL installed the PostgreSQL half is skipped loudly; with `CI=true`
//! it fails instead (TESTING.md).

use berth_core::RepositoryName;
use berth_meta::jobs::NewJob;
use berth_meta::lifecycle::{LifecycleStore, PreviewStart, PreviewStatus};
use berth_meta::{MetaStore, NoJobs, PgMeta};
use berth_test_support::postgres::Postgres;
use std::sync::Arc;

mod common;

use common::{job_kinds, on_both};

fn repo(s: &str) -> RepositoryName {
    RepositoryName::parse(s).unwrap()
}

const POLICY: &str = r#"{"rules":[{"rulePriority":1,"selection":{"tagStatus":"untagged","countType":"imageCountMoreThan","countNumber":1},"action":{"type":"expire"}}]}"#;
const OTHER: &str = r#"{"rules":[{"rulePriority":1,"selection":{"tagStatus":"any","countType":"imageCountMoreThan","countNumber":5},"action":{"type":"expire"}}]}"#;

fn preview_job(r: &str) -> NewJob {
    NewJob::new("lifecycle.preview", serde_json::json!({ "repository": r }))
}

// ECR PutLifecyclePolicy / GetLifecyclePolicy (with lastEvaluatedAt) /
// DeleteLifecyclePolicy: one policy per repository, replaced by a new put, gone with
// its repository.
#[tokio::test]
async fn policies_are_put_replaced_evaluated_listed_and_deleted() {
    on_both("lifecycle_policies", |b| async move {
        let m = b.meta.as_ref();
        let (a, z) = (repo("team/a"), repo("team/z"));
        assert!(
            !m.put_lifecycle_policy(&a, POLICY, 10).await.unwrap(),
            "{}: no repository, no policy",
            b.name
        );
        m.create_repository(&a).await.unwrap();
        m.create_repository(&z).await.unwrap();
        m.create_repository(&repo("team/none")).await.unwrap();
        assert!(m.lifecycle_policy(&a).await.unwrap().is_none());
        assert!(m.put_lifecycle_policy(&a, POLICY, 10).await.unwrap());
        assert!(m.put_lifecycle_policy(&z, POLICY, 11).await.unwrap());
        let p = m.lifecycle_policy(&a).await.unwrap().unwrap();
        assert_eq!(
            (p.text.as_str(), p.updated_at, p.last_evaluated_at),
            (POLICY, 10, None)
        );

        assert!(m.set_lifecycle_evaluated(&a, 20).await.unwrap());
        assert!(m.put_lifecycle_policy(&a, OTHER, 30).await.unwrap());
        let p = m.lifecycle_policy(&a).await.unwrap().unwrap();
        assert_eq!(
            (p.text.as_str(), p.updated_at, p.last_evaluated_at),
            (OTHER, 30, Some(20)),
            "{}: replacing the text keeps lastEvaluatedAt",
            b.name
        );
        assert!(!m
            .set_lifecycle_evaluated(&repo("team/none"), 20)
            .await
            .unwrap());

        assert_eq!(
            m.lifecycle_repositories(None, 10).await.unwrap(),
            ["team/a", "team/z"]
        );
        assert_eq!(
            m.lifecycle_repositories(Some("team/a"), 10).await.unwrap(),
            ["team/z"]
        );
        assert_eq!(m.lifecycle_repositories(None, 1).await.unwrap(), ["team/a"]);

        let gone = m.delete_lifecycle_policy(&a).await.unwrap().unwrap();
        assert_eq!(gone.text, OTHER);
        assert!(m.delete_lifecycle_policy(&a).await.unwrap().is_none());
        assert!(m.lifecycle_policy(&a).await.unwrap().is_none());

        // Deleting the repository takes its policy and preview with it.
        let job = preview_job("team/z");
        assert_eq!(
            m.start_lifecycle_preview(&z, POLICY, &job, 40, 600)
                .await
                .unwrap(),
            PreviewStart::Started
        );
        m.delete_repository(&z, true, &NoJobs).await.unwrap();
        m.create_repository(&z).await.unwrap();
        assert!(m.lifecycle_policy(&z).await.unwrap().is_none());
        assert!(m.lifecycle_preview(&z).await.unwrap().is_none());
        assert!(m.lifecycle_repositories(None, 10).await.unwrap().is_empty());
    })
    .await;
}

// ECR StartLifecyclePolicyPreview / GetLifecyclePolicyPreview: IN_PROGRESS with its job
// enqueued in the same transaction, LifecyclePolicyPreviewInProgressException while it
// runs, COMPLETE with the results; a new preview replaces the last one.
#[tokio::test]
async fn previews_start_with_their_job_and_complete_once() {
    on_both("lifecycle_previews", |b| async move {
        let m = b.meta.as_ref();
        let r = repo("team/app");
        assert_eq!(
            m.start_lifecycle_preview(&r, POLICY, &preview_job("team/app"), 100, 600)
                .await
                .unwrap(),
            PreviewStart::RepositoryNotFound
        );
        assert!(
            job_kinds(&b).await.is_empty(),
            "{}: nothing enqueued",
            b.name
        );
        m.create_repository(&r).await.unwrap();
        assert!(m.lifecycle_preview(&r).await.unwrap().is_none());
        assert_eq!(
            m.start_lifecycle_preview(&r, POLICY, &preview_job("team/app"), 100, 600)
                .await
                .unwrap(),
            PreviewStart::Started
        );
        assert_eq!(job_kinds(&b).await, ["lifecycle.preview"]);
        let v = m.lifecycle_preview(&r).await.unwrap().unwrap();
        assert_eq!(v.status, PreviewStatus::InProgress);
        assert_eq!((v.policy_text.as_str(), v.started_at), (POLICY, 100));
        assert_eq!((v.finished_at, v.results), (None, None));

        // In progress: a second start changes nothing.
        assert_eq!(
            m.start_lifecycle_preview(&r, OTHER, &preview_job("team/app"), 200, 600)
                .await
                .unwrap(),
            PreviewStart::InProgress
        );
        assert_eq!(job_kinds(&b).await.len(), 1);
        assert_eq!(
            m.lifecycle_preview(&r).await.unwrap().unwrap().policy_text,
            POLICY
        );

        // Only the current preview can be finished, once.
        assert!(!m
            .finish_lifecycle_preview(&r, 99, PreviewStatus::Complete, Some("[]"), None, 150)
            .await
            .unwrap());
        assert!(m
            .finish_lifecycle_preview(&r, 100, PreviewStatus::Complete, Some("[1]"), None, 150)
            .await
            .unwrap());
        assert!(!m
            .finish_lifecycle_preview(&r, 100, PreviewStatus::Failed, None, Some("x"), 160)
            .await
            .unwrap());
        let v = m.lifecycle_preview(&r).await.unwrap().unwrap();
        assert_eq!(v.status, PreviewStatus::Complete);
        assert_eq!(
            (v.finished_at, v.results.as_deref()),
            (Some(150), Some("[1]"))
        );

        // A new preview replaces the completed one, results cleared.
        assert_eq!(
            m.start_lifecycle_preview(&r, OTHER, &preview_job("team/app"), 300, 600)
                .await
                .unwrap(),
            PreviewStart::Started
        );
        let v = m.lifecycle_preview(&r).await.unwrap().unwrap();
        assert_eq!(
            (v.status, v.policy_text.as_str(), v.results),
            (PreviewStatus::InProgress, OTHER, None)
        );
        // One in progress for longer than the stale limit was abandoned: replaced.
        assert_eq!(
            m.start_lifecycle_preview(&r, POLICY, &preview_job("team/app"), 300 + 601, 600)
                .await
                .unwrap(),
            PreviewStart::Started
        );
        assert_eq!(
            m.lifecycle_preview(&r).await.unwrap().unwrap().started_at,
            901
        );
        // A failure is stored with its reason.
        assert!(m
            .finish_lifecycle_preview(&r, 901, PreviewStatus::Failed, None, Some("bad"), 902)
            .await
            .unwrap());
        let v = m.lifecycle_preview(&r).await.unwrap().unwrap();
        assert_eq!(
            (v.status, v.error.as_deref()),
            (PreviewStatus::Failed, Some("bad"))
        );
    })
    .await;
}

// Two nodes start a preview of one repository at the same moment: exactly one starts
// (and enqueues one job); the other is told a preview is in progress.
#[tokio::test]
async fn pg_race_two_nodes_cannot_both_start_a_preview() {
    let Some(pg) = Postgres::shared("lifecycle_race") else {
        return;
    };
    let url = pg.database();
    let a = Arc::new(PgMeta::open(&url).await.unwrap());
    let b = Arc::new(PgMeta::open(&url).await.unwrap());
    for round in 0..20 {
        let r = repo(&format!("race/r{round}"));
        a.create_repository(&r).await.unwrap();
        let job = preview_job(r.as_str());
        let (x, y) = tokio::join!(
            a.start_lifecycle_preview(&r, POLICY, &job, 1000, 600),
            b.start_lifecycle_preview(&r, OTHER, &job, 1000, 600),
        );
        let mut got = [x.unwrap(), y.unwrap()];
        got.sort_by_key(|s| format!("{s:?}"));
        assert_eq!(
            got,
            [PreviewStart::InProgress, PreviewStart::Started],
            "round {round}"
        );
    }
    let pool = sqlx::PgPool::connect(&url).await.unwrap();
    let n: i64 = sqlx::query_scalar("SELECT count(*) FROM jobs WHERE kind = 'lifecycle.preview'")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(n, 20, "one job per started preview");
    pool.close().await;
}
