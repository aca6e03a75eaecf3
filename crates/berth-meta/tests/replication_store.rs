//! The shared test suite of [`ReplicationStore`] (issue 9: the registry's replication
//! configuration, and an image's `replication.image` jobs as its replication status),
//! run once on SQLite (a temporary file) and once on PostgreSQL (a fresh database on
//! berth-test-support's throwaway server). Both must give the same answers.
//!
//! Without PostgreSQL installed the PostgreSQL half is skipped loudly; with `CI=true`
//! it fails instead (TESTING.md).

use berth_core::{Digest, RepositoryName};
use berth_meta::jobs::{JobState, JobStore, NewJob};
use berth_meta::replication::{job_key, ReplicationStore, REPLICATION_JOB};
use berth_meta::{PgMeta, SqliteMeta};
use berth_test_support::postgres::Postgres;
use std::sync::Arc;

trait Both: ReplicationStore + JobStore {}
impl<T: ReplicationStore + JobStore> Both for T {}

async fn on_both(test: &str, scenario: impl AsyncFn(&'static str, Arc<dyn Both>)) {
    let dir = tempfile::tempdir().unwrap();
    let meta = SqliteMeta::open(&dir.path().join("meta.db")).await.unwrap();
    scenario("sqlite", Arc::new(meta)).await;
    if let Some(pg) = Postgres::shared(test) {
        let meta = PgMeta::open(&pg.database()).await.unwrap();
        scenario("postgres", Arc::new(meta)).await;
    }
}

fn repo(s: &str) -> RepositoryName {
    RepositoryName::parse(s).unwrap()
}

fn digest(fill: char) -> Digest {
    format!("sha256:{}", fill.to_string().repeat(64))
        .parse()
        .unwrap()
}

// PutReplicationConfiguration replaces the whole configuration; DescribeRegistry reads it.
#[tokio::test]
async fn configuration_is_replaced_whole() {
    on_both("replication_configuration", async |name, s| {
        assert_eq!(s.replication_configuration().await.unwrap(), None, "{name}");
        s.put_replication_configuration(r#"{"rules":[]}"#, 1)
            .await
            .unwrap();
        s.put_replication_configuration(r#"{"rules":[{"destinations":[]}]}"#, 2)
            .await
            .unwrap();
        assert_eq!(
            s.replication_configuration().await.unwrap().as_deref(),
            Some(r#"{"rules":[{"destinations":[]}]}"#),
            "{name}"
        );
    })
    .await;
}

// DescribeImageReplicationStatus: one image's jobs, per destination, with their states,
// and never another image's (a repository whose name extends this one's, another digest).
#[tokio::test]
async fn an_images_jobs_are_found_by_key() {
    on_both("replication_jobs", async |name, s| {
        let (app, app2) = (repo("myapp/web"), repo("myapp/web-b"));
        let (d, other) = (digest('a'), digest('b'));
        for (r, dg, region, tag) in [
            (&app, &d, "ap-south-1", Some("v1")),
            (&app, &d, "eu-west-1", Some("v1")),
            (&app, &d, "eu-west-1", None),
            (&app, &other, "eu-west-1", None),
            (&app2, &d, "eu-west-1", None),
        ] {
            let key = job_key(r, dg, region, "111111111111", tag);
            s.enqueue(
                &NewJob::new(REPLICATION_JOB, serde_json::json!({})).idempotency_key(key),
                1,
            )
            .await
            .unwrap();
        }
        // The first job fails for good.
        let claimed = s.claim(REPLICATION_JOB, "w", 1, 60_000, 2).await.unwrap();
        s.fail(&claimed[0].lease, "DESTINATION_ACCESS_DENIED: no", None, 3)
            .await
            .unwrap();
        let jobs = s.replication_jobs(&app, &d).await.unwrap();
        let seen: Vec<(&str, JobState)> =
            jobs.iter().map(|j| (j.region.as_str(), j.state)).collect();
        assert_eq!(
            seen,
            [
                ("ap-south-1", JobState::Dead),
                ("eu-west-1", JobState::Queued),
                ("eu-west-1", JobState::Queued)
            ],
            "{name}"
        );
        assert_eq!(jobs[0].registry_id, "111111111111");
        assert_eq!(
            jobs[0].last_error.as_deref(),
            Some("DESTINATION_ACCESS_DENIED: no")
        );
        assert!(s
            .replication_jobs(&repo("myapp/none"), &d)
            .await
            .unwrap()
            .is_empty());
    })
    .await;
}
