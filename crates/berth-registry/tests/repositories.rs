//! The service layer's repository rules without HTTP: tag immutability as the OCI push
//! path meets it (ECR_REFERENCE §2.2), ECR image sizes (§2.3), pull times, repository
//! deletion and listings.

use berth_core::{Digest, Reference, RepositoryName, Tag};
use berth_meta::{RepositorySettings, TagMutability, TagRules, TagStatus};
use berth_registry::{Registry, RegistryError};
use berth_test_support::{image_manifest, Env};
use bytes::Bytes;
use futures::StreamExt;

/// A registry over a fresh data directory (the shared fixture); keep the `Env` alive.
async fn registry() -> (Registry, Env) {
    let env = Env::new().await;
    (env.registry.clone(), env)
}

fn name(s: &str) -> RepositoryName {
    RepositoryName::parse(s).unwrap()
}

fn tag(s: &str) -> Reference {
    Reference::Tag(Tag::parse(s).unwrap())
}

async fn blob(reg: &Registry, repo: &RepositoryName, data: &[u8]) -> (Digest, usize) {
    let d = Digest::sha256_of(data);
    let body = futures::stream::once(futures::future::ready(Ok(Bytes::copy_from_slice(data))));
    reg.upload_blob(repo, &d, body.boxed()).await.unwrap();
    (d, data.len())
}

/// An image manifest with a config and one layer unique to `nonce`; (body, size).
async fn image(reg: &Registry, repo: &RepositoryName, nonce: &str) -> (Bytes, u64) {
    let (c, cs) = blob(reg, repo, format!("{{\"config\":\"{nonce}\"}}").as_bytes()).await;
    let (l, ls) = blob(reg, repo, format!("layer of {nonce}").as_bytes()).await;
    let m = image_manifest(&c.to_string(), cs, &l.to_string(), ls);
    (Bytes::from(m), (cs + ls) as u64)
}

const OCI: &str = "application/vnd.oci.image.manifest.v1+json";

fn settings(mode: TagMutability, filters: &[&str]) -> RepositorySettings {
    RepositorySettings {
        tags: TagRules {
            mode,
            exclusion_filters: filters.iter().map(|f| f.to_string()).collect(),
        },
        ..RepositorySettings::default()
    }
}

// §2.2: a push that would move an immutable tag fails with ECR's message and stores
// nothing; re-pushing the same manifest under the tag is not a move; digests always pull.
#[tokio::test]
async fn immutable_tags_do_not_move_on_the_push_path() {
    let (reg, _d) = registry().await;
    let repo = name("team/imm");
    reg.create_repository(&repo, &settings(TagMutability::Immutable, &[]), &[])
        .await
        .unwrap();
    let (a, _) = image(&reg, &repo, "a").await;
    let (b, _) = image(&reg, &repo, "b").await;
    let put_a = reg
        .put_manifest(&repo, &tag("v1"), OCI, a.clone())
        .await
        .unwrap();
    reg.put_manifest(&repo, &tag("v1"), OCI, a.clone())
        .await
        .unwrap();
    let err = reg
        .put_manifest(&repo, &tag("v1"), OCI, b.clone())
        .await
        .unwrap_err();
    assert!(matches!(err, RegistryError::TagImmutable { .. }), "{err:?}");
    assert_eq!(
        err.to_string(),
        "The image tag 'v1' already exists in the 'team/imm' repository and cannot be overwritten because the repository is immutable."
    );
    // Nothing of the refused push is visible; v1 still names A.
    let b_digest = Digest::sha256_of(&b);
    assert!(matches!(
        reg.get_manifest(&repo, &Reference::Digest(b_digest.clone()))
            .await,
        Err(RegistryError::ManifestUnknown(_))
    ));
    assert_eq!(
        reg.get_manifest(&repo, &tag("v1")).await.unwrap().digest,
        put_a.digest
    );
    // A push by digest, and under a new tag, are fine.
    reg.put_manifest(&repo, &Reference::Digest(b_digest.clone()), OCI, b.clone())
        .await
        .unwrap();
    reg.put_manifest(&repo, &tag("v2"), OCI, b.clone())
        .await
        .unwrap();
    // Deleting a tag is allowed; then the tag is new again.
    reg.delete_manifest(&repo, &tag("v1")).await.unwrap();
    reg.put_manifest(&repo, &tag("v1"), OCI, b).await.unwrap();
}

// §2.2: exclusion filters invert the rule for the tags they match.
#[tokio::test]
async fn exclusion_filters_apply_on_the_push_path() {
    let (reg, _d) = registry().await;
    let repo = name("team/excl");
    reg.create_repository(
        &repo,
        &settings(TagMutability::ImmutableWithExclusion, &["latest", "dev-*"]),
        &[],
    )
    .await
    .unwrap();
    let (a, _) = image(&reg, &repo, "a").await;
    let (b, _) = image(&reg, &repo, "b").await;
    for t in ["latest", "dev-7", "v1"] {
        reg.put_manifest(&repo, &tag(t), OCI, a.clone())
            .await
            .unwrap();
    }
    reg.put_manifest(&repo, &tag("latest"), OCI, b.clone())
        .await
        .unwrap();
    reg.put_manifest(&repo, &tag("dev-7"), OCI, b.clone())
        .await
        .unwrap();
    assert!(reg
        .put_manifest(&repo, &tag("v1"), OCI, b.clone())
        .await
        .is_err());
    reg.set_tag_rules(
        &repo,
        &TagRules {
            mode: TagMutability::MutableWithExclusion,
            exclusion_filters: vec!["v*".into()],
        },
    )
    .await
    .unwrap();
    assert!(reg
        .put_manifest(&repo, &tag("v1"), OCI, b.clone())
        .await
        .is_err());
    reg.put_manifest(&repo, &tag("latest"), OCI, a)
        .await
        .unwrap();
}

// §2.3: image sizes (config + layers; an index's largest child), tags, pull times.
#[tokio::test]
async fn images_carry_sizes_tags_and_pull_times() {
    let (reg, _d) = registry().await;
    let repo = name("team/img");
    let (a, size_a) = image(&reg, &repo, "a").await;
    let (b, size_b) = image(&reg, &repo, "bb-larger").await;
    let pa = reg
        .put_manifest(&repo, &tag("a"), OCI, a.clone())
        .await
        .unwrap();
    let pb = reg
        .put_manifest(&repo, &tag("b"), OCI, b.clone())
        .await
        .unwrap();
    let index = format!(
        r#"{{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[{{"mediaType":"{OCI}","digest":"{}","size":{}}},{{"mediaType":"{OCI}","digest":"{}","size":{}}}]}}"#,
        pa.digest,
        a.len(),
        pb.digest,
        b.len()
    );
    let pi = reg
        .put_manifest(&repo, &tag("multi"), "", Bytes::from(index))
        .await
        .unwrap();
    let by = |d: &Digest| Reference::Digest(d.clone());
    let ia = reg.image(&repo, &by(&pa.digest)).await.unwrap();
    assert_eq!(ia.size, size_a);
    assert_eq!(ia.tags, vec![Tag::parse("a").unwrap()]);
    assert!(ia.last_pulled_at.is_none());
    let ii = reg.image(&repo, &tag("multi")).await.unwrap();
    assert_eq!(ii.digest, pi.digest);
    assert_eq!(ii.size, size_a.max(size_b));
    // A manifest GET records a pull, written when images are described.
    reg.get_manifest(&repo, &tag("a")).await.unwrap();
    let ia = reg.image(&repo, &by(&pa.digest)).await.unwrap();
    assert!(ia.last_pulled_at.is_some());
    // Listings: every image; untagged ones filtered.
    let all = reg.images(&repo, TagStatus::Any, None, 10).await.unwrap();
    assert_eq!(all.len(), 3);
    reg.delete_manifest(&repo, &tag("b")).await.unwrap();
    let untagged = reg
        .list_images(&repo, TagStatus::Untagged, None, 10)
        .await
        .unwrap();
    assert_eq!(untagged, vec![(pb.digest.clone(), None)]);
    let page = reg
        .list_images(&repo, TagStatus::Any, None, 1)
        .await
        .unwrap();
    let rest = reg
        .list_images(
            &repo,
            TagStatus::Any,
            Some((
                &page[0].0.to_string(),
                page[0].1.as_ref().map_or("", |t| t.as_str()),
            )),
            10,
        )
        .await
        .unwrap();
    assert_eq!(page.len() + rest.len(), 3);
    assert!(!rest.contains(&page[0]));
}

// ECR DeleteRepository: not without force while it holds images; with force, all of it.
#[tokio::test]
async fn repositories_with_images_need_force_to_delete() {
    let (reg, _d) = registry().await;
    let repo = name("team/del");
    let (a, _) = image(&reg, &repo, "a").await;
    reg.put_manifest(&repo, &tag("v1"), OCI, a).await.unwrap();
    assert!(matches!(
        reg.delete_repository(&repo, false).await,
        Err(RegistryError::RepositoryNotEmpty(_))
    ));
    reg.delete_repository(&repo, true).await.unwrap();
    assert!(matches!(
        reg.get_manifest(&repo, &tag("v1")).await,
        Err(RegistryError::NameUnknown(_))
    ));
    assert!(matches!(
        reg.delete_repository(&repo, true).await,
        Err(RegistryError::NameUnknown(_))
    ));
    assert!(matches!(
        reg.create_repository(&name("x/y"), &RepositorySettings::default(), &[])
            .await
            .and(
                reg.create_repository(&name("x/y"), &RepositorySettings::default(), &[])
                    .await
            ),
        Err(RegistryError::RepositoryAlreadyExists(_))
    ));
}

// Issue 16: `put_manifest` reports what changed, computed in the storing transaction
// (the events issue needs it; PutImage answers from it).
#[tokio::test]
async fn put_manifest_reports_what_changed() {
    use berth_registry::TagChange;
    let (reg, _dir) = registry().await;
    let repo = name("team/changes");
    let (a, _) = image(&reg, &repo, "a").await;
    let (b, _) = image(&reg, &repo, "b").await;
    let first = reg
        .put_manifest(&repo, &tag("v1"), OCI, a.clone())
        .await
        .unwrap();
    assert!(first.change.image_created);
    assert_eq!(first.media_type, OCI);
    assert_eq!(
        first.change.tag,
        Some(TagChange::Created(Tag::parse("v1").unwrap()))
    );
    let again = reg
        .put_manifest(&repo, &tag("v1"), OCI, a.clone())
        .await
        .unwrap();
    assert!(again.change.is_noop(), "{:?}", again.change);
    let moved = reg.put_manifest(&repo, &tag("v1"), OCI, b).await.unwrap();
    assert!(moved.change.image_created);
    assert_eq!(
        moved.change.tag,
        Some(TagChange::Moved {
            tag: Tag::parse("v1").unwrap(),
            previous: first.digest.clone()
        })
    );
    let by_digest = reg
        .put_manifest(&repo, &Reference::Digest(first.digest.clone()), OCI, a)
        .await
        .unwrap();
    assert!(!by_digest.change.image_created && by_digest.change.tag.is_none());
}

// §2.3 with several nodes (issue 14): each node keeps its pulls in memory and flushes
// them on its own tick, so an older pull time can arrive after a newer one. The stored
// lastRecordedPullTime is the maximum: a late flush never moves it backwards.
#[tokio::test]
async fn pull_time_flushes_from_many_nodes_merge_to_the_latest() {
    let env = Env::new().await;
    let reg = env.registry.clone();
    let repo = name("team/pulled");
    let (a, _) = image(&reg, &repo, "pulled").await;
    let p = reg.put_manifest(&repo, &tag("v1"), OCI, a).await.unwrap();
    let by = Reference::Digest(p.digest.clone());
    let at = |t: i64| vec![(repo.clone(), p.digest.clone(), t)];
    // Node B flushes a pull at t=2000, then node A's older one (t=1000) arrives late.
    env.meta.record_pulls(&at(2_000)).await.unwrap();
    env.meta.record_pulls(&at(1_000)).await.unwrap();
    let img = reg.image(&repo, &by).await.unwrap();
    assert_eq!(img.last_pulled_at, Some(2_000));
    env.meta.record_pulls(&at(3_000)).await.unwrap();
    let img = reg.image(&repo, &by).await.unwrap();
    assert_eq!(img.last_pulled_at, Some(3_000));
}

/// Issue 14, "the SQLite/disk and PostgreSQL/S3 pairs run the same tests": every other
/// test of this file again, in a child process on PostgreSQL metadata and S3 (SeaweedFS)
/// blob storage (`berth_test_support::Backends::PostgresS3`).
#[test]
fn every_test_of_this_file_on_postgres_and_s3() {
    berth_test_support::rerun_on_postgres_s3("every_test_of_this_file_on_postgres_and_s3");
}
