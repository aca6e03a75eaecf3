//! Jobs are enqueued in the same metadata transaction as the change that causes them
//! (issue 8; DESIGN.md invariants 3 and 4): a manifest PUT that commits has its jobs, one
//! that fails (an immutable tag, ECR_REFERENCE §2.2) or changes nothing has none; deletes
//! by digest and by tag (distribution-spec § Deleting manifests / tags) carry what they
//! removed.

use berth_core::{Digest, Reference, RepositoryName, Tag};
use berth_meta::jobs::{JobFilter, NewJob};
use berth_meta::{RepositorySettings, TagMutability, TagRules};
use berth_registry::{Change, JobHook, Registry, RegistryError};
use berth_test_support::{image_manifest, Env};
use bytes::Bytes;
use futures::StreamExt;
use serde_json::{json, Value};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

const KIND: &str = "test.change";
const OCI: &str = "application/vnd.oci.image.manifest.v1+json";

/// Describes each change as one job, and counts commits.
#[derive(Default)]
struct Recorder {
    commits: AtomicUsize,
}

impl JobHook for Recorder {
    fn jobs(&self, change: &Change<'_>) -> Vec<NewJob> {
        let v = match *change {
            Change::ManifestPut {
                repository,
                digest,
                tag,
                manifest_existed,
                previous_tag_target,
                ..
            } => json!({"put": repository.as_str(), "digest": digest.to_string(),
                        "tag": tag.map(|t| t.to_string()), "existed": manifest_existed,
                        "previous": previous_tag_target.map(|d| d.to_string())}),
            Change::ManifestDeleted {
                repository,
                digest,
                tags,
            } => {
                json!({"deleted": repository.as_str(), "digest": digest.to_string(), "tags": tags})
            }
            Change::TagDeleted {
                repository,
                tag,
                digest,
            } => json!({"untagged": repository.as_str(), "tag": tag.to_string(),
                        "digest": digest.to_string()}),
        };
        vec![NewJob::new(KIND, v)]
    }

    fn committed(&self) {
        self.commits.fetch_add(1, Ordering::SeqCst);
    }
}

async fn jobs(env: &Env) -> Vec<Value> {
    let mut rows = env
        .meta
        .list_jobs(&JobFilter {
            kind: Some(KIND.into()),
            ..JobFilter::default()
        })
        .await
        .unwrap();
    rows.reverse(); // oldest first
    rows.into_iter().map(|r| r.payload).collect()
}

async fn image(reg: &Registry, repo: &RepositoryName, nonce: &str) -> (Bytes, Digest) {
    let mut ds = Vec::new();
    for data in [format!("{{\"c\":\"{nonce}\"}}"), format!("layer {nonce}")] {
        let d = Digest::sha256_of(data.as_bytes());
        let body = futures::stream::once(futures::future::ready(Ok(Bytes::from(data.clone()))));
        reg.upload_blob(repo, &d, body.boxed()).await.unwrap();
        ds.push((d, data.len()));
    }
    let m = image_manifest(&ds[0].0.to_string(), ds[0].1, &ds[1].0.to_string(), ds[1].1);
    let d = Digest::sha256_of(m.as_bytes());
    (Bytes::from(m), d)
}

fn tag(s: &str) -> Reference {
    Reference::Tag(Tag::parse(s).unwrap())
}

#[tokio::test]
async fn jobs_exist_exactly_when_the_change_commits() {
    let env = Env::new().await;
    let rec = Arc::new(Recorder::default());
    let reg = env.registry.clone().with_job_hook(rec.clone());
    let repo = RepositoryName::parse("team/app").unwrap();
    reg.create_repository(
        &repo,
        &RepositorySettings {
            tags: TagRules {
                mode: TagMutability::Immutable,
                exclusion_filters: vec![],
            },
            ..RepositorySettings::default()
        },
        &[],
    )
    .await
    .unwrap();
    let (a, da) = image(&reg, &repo, "a").await;
    let (b, _db) = image(&reg, &repo, "b").await;

    // A new manifest under a new tag: one job, in the PUT's transaction.
    reg.put_manifest(&repo, &tag("v1"), OCI, a.clone())
        .await
        .unwrap();
    // The same again: nothing changed, no job.
    reg.put_manifest(&repo, &tag("v1"), OCI, a.clone())
        .await
        .unwrap();
    // A second tag on the same manifest: a change (the tag was created).
    reg.put_manifest(&repo, &tag("v2"), OCI, a.clone())
        .await
        .unwrap();
    // Moving an immutable tag fails: nothing stored, no job.
    let err = reg
        .put_manifest(&repo, &tag("v1"), OCI, b.clone())
        .await
        .unwrap_err();
    assert!(matches!(err, RegistryError::TagImmutable { .. }), "{err:?}");
    // A push by digest: untagged.
    let (c, dc) = image(&reg, &repo, "c").await;
    reg.put_manifest(&repo, &Reference::Digest(dc.clone()), OCI, c)
        .await
        .unwrap();
    assert_eq!(
        jobs(&env).await,
        vec![
            json!({"put": "team/app", "digest": da.to_string(), "tag": "v1", "existed": false, "previous": null}),
            json!({"put": "team/app", "digest": da.to_string(), "tag": "v2", "existed": true, "previous": null}),
            json!({"put": "team/app", "digest": dc.to_string(), "tag": null, "existed": false, "previous": null}),
        ]
    );

    // Deleting a tag, then the manifest with its remaining tag; a failed delete (unknown
    // digest) enqueues nothing.
    reg.delete_manifest(&repo, &tag("v2")).await.unwrap();
    reg.delete_manifest(&repo, &Reference::Digest(da.clone()))
        .await
        .unwrap();
    let missing = Digest::sha256_of(b"nothing");
    assert!(reg
        .delete_manifest(&repo, &Reference::Digest(missing))
        .await
        .is_err());
    let all = jobs(&env).await;
    assert_eq!(
        all[3..],
        [
            json!({"untagged": "team/app", "tag": "v2", "digest": da.to_string()}),
            json!({"deleted": "team/app", "digest": da.to_string(), "tags": ["v1"]}),
        ]
    );
    assert_eq!(
        rec.commits.load(Ordering::SeqCst),
        5,
        "one wake-up per committed change"
    );
}

/// ECR DeleteRepository with `force` (ECR_REFERENCE.md; ECR emits an `ECR Image Action`
/// DELETE per image it removes): every image in the repository is a `ManifestDeleted`
/// change with its tags, enqueued in the deletion's transaction; a refused delete (not
/// forced, images present) and an empty repository's delete enqueue nothing.
#[tokio::test]
async fn forced_repository_delete_reports_every_image_in_its_transaction() {
    let env = Env::new().await;
    let rec = Arc::new(Recorder::default());
    let reg = env.registry.clone().with_job_hook(rec.clone());
    let repo = RepositoryName::parse("team/gone").unwrap();
    let (a, da) = image(&reg, &repo, "a").await;
    let (b, db) = image(&reg, &repo, "b").await;
    reg.put_manifest(&repo, &tag("v1"), OCI, a.clone())
        .await
        .unwrap();
    reg.put_manifest(&repo, &tag("v2"), OCI, a).await.unwrap();
    reg.put_manifest(&repo, &Reference::Digest(db.clone()), OCI, b)
        .await
        .unwrap();
    let pushes = jobs(&env).await.len();
    assert!(matches!(
        reg.delete_repository(&repo, false).await,
        Err(RegistryError::RepositoryNotEmpty(_))
    ));
    assert_eq!(
        jobs(&env).await.len(),
        pushes,
        "a refused delete enqueues nothing"
    );
    reg.delete_repository(&repo, true).await.unwrap();
    let mut deleted = jobs(&env).await[pushes..].to_vec();
    deleted.sort_by_key(|v| v["digest"].as_str().unwrap().to_string());
    let mut want = vec![
        json!({"deleted": "team/gone", "digest": da.to_string(), "tags": ["v1", "v2"]}),
        json!({"deleted": "team/gone", "digest": db.to_string(), "tags": []}),
    ];
    want.sort_by_key(|v| v["digest"].as_str().unwrap().to_string());
    assert_eq!(deleted, want);
    assert_eq!(
        rec.commits.load(Ordering::SeqCst),
        4,
        "3 pushes, 1 forced delete"
    );

    // An empty repository goes without jobs.
    let empty = RepositoryName::parse("team/empty").unwrap();
    reg.create_repository(&empty, &RepositorySettings::default(), &[])
        .await
        .unwrap();
    let before = jobs(&env).await.len();
    reg.delete_repository(&empty, true).await.unwrap();
    assert_eq!(jobs(&env).await.len(), before);
    assert_eq!(rec.commits.load(Ordering::SeqCst), 4);
}

/// Issue 14, "the SQLite/disk and PostgreSQL/S3 pairs run the same tests": every other
/// test of this file again, in a child process on PostgreSQL metadata and S3 (SeaweedFS)
/// blob storage (`berth_test_support::Backends::PostgresS3`).
#[test]
fn every_test_of_this_file_on_postgres_and_s3() {
    berth_test_support::rerun_on_postgres_s3("every_test_of_this_file_on_postgres_and_s3");
}
