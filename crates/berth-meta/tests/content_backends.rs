//! The shared test suite of the content half of the metadata store — [`MetaStore`],
//! [`RepositoryStore`] and [`EventConfigStore`] — run once on each backend: SQLite (a
//! temporary file) and PostgreSQL (a fresh database on the test binary's throwaway
//! server, berth-test-support's `Postgres`). Both must give the same answers, errors
//! included (issue 14: "one shared test suite that every metadata backend passes").
//!
//! The `pg_race_*` tests only make sense on PostgreSQL: two `PgMeta` pools on one
//! database stand for two Berth nodes racing, and check that the row locks described in
//! `postgres_content.rs` keep the invariants SQLite gets from its single writer.
//!
//! Without PostgreSQL installed the PostgreSQL half is skipped loudly; with `CI=true`
//! it fails instead (TESTING.md).

use berth_core::{Digest, ParsedManifest, RepositoryName, Tag, TagMutability, TagRules};
use berth_meta::events::{
    AuthorizationType, EventConfigStore, NamePage, NewApiDestination, NewConnection, NewRule,
    RuleState, TargetRow, DEFAULT_EVENT_BUS,
};
use berth_meta::jobs::NewJob;
use berth_meta::{
    Change, ChangeHook, GcStore, MetaError, MetaStore, NoJobs, PgMeta, RepositorySettings,
    RepositoryStore, SqliteMeta, TagStatus,
};
use berth_test_support::postgres::Postgres;
use berth_test_support::{image_manifest, sha256};
use std::future::Future;
use std::sync::Arc;

/// One backend under test, with what keeps it alive and how to read its job table.
struct Backend {
    name: &'static str,
    meta: Arc<dyn MetaStore>,
    /// The database URL (`sqlite://…` or `postgres://…`), to count enqueued jobs.
    url: String,
    _dir: Option<tempfile::TempDir>,
}

async fn sqlite() -> Backend {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("meta.db");
    let meta = SqliteMeta::open(&path).await.unwrap();
    Backend {
        name: "sqlite",
        meta: Arc::new(meta),
        url: format!("sqlite://{}", path.display()),
        _dir: Some(dir),
    }
}

async fn postgres(test: &str) -> Option<Backend> {
    let pg = Postgres::shared(test)?;
    let url = pg.database();
    let meta = PgMeta::open(&url).await.unwrap();
    Some(Backend {
        name: "postgres",
        meta: Arc::new(meta),
        url,
        _dir: None,
    })
}

/// Runs `scenario` on SQLite, then on PostgreSQL (skipped loudly when it is missing
/// outside CI).
async fn on_both<F, Fut>(test: &str, scenario: F)
where
    F: Fn(Backend) -> Fut,
    Fut: Future<Output = ()>,
{
    // Closures capture only the fields they use (edition 2021): keep the SQLite file's
    // directory alive here, not in the scenario's future.
    let mut b = sqlite().await;
    let dir = b._dir.take();
    scenario(b).await;
    drop(dir);
    if let Some(b) = postgres(test).await {
        scenario(b).await;
    }
}

/// Kinds of the jobs in the backend's queue, oldest first (read with plain SQL: the
/// job store itself is another suite's subject).
async fn job_kinds(b: &Backend) -> Vec<String> {
    let sql = "SELECT kind FROM jobs ORDER BY id";
    if b.name == "sqlite" {
        let pool = sqlx::SqlitePool::connect(&b.url).await.unwrap();
        let out = sqlx::query_scalar(sql).fetch_all(&pool).await.unwrap();
        pool.close().await;
        out
    } else {
        let pool = sqlx::PgPool::connect(&b.url).await.unwrap();
        let out = sqlx::query_scalar(sql).fetch_all(&pool).await.unwrap();
        pool.close().await;
        out
    }
}

/// A hook that turns every change into one job whose kind names the change.
struct EveryChange;

impl ChangeHook for EveryChange {
    fn jobs(&self, change: &Change<'_>) -> Vec<NewJob> {
        let kind = match change {
            Change::ManifestPut { .. } => "put",
            Change::ManifestDeleted { .. } => "manifest-deleted",
            Change::TagDeleted { .. } => "tag-deleted",
        };
        vec![NewJob::new(kind, serde_json::json!({}))]
    }
}

fn repo(s: &str) -> RepositoryName {
    RepositoryName::parse(s).unwrap()
}

fn tag(s: &str) -> Tag {
    Tag::parse(s).unwrap()
}

fn digest(s: &str) -> Digest {
    s.parse().unwrap()
}

/// A pushed image: its blobs linked, its manifest body, digest and parse.
struct Image {
    body: Vec<u8>,
    digest: Digest,
    parsed: ParsedManifest,
    config: Digest,
    config_size: usize,
    layer: Digest,
}

/// Links `d` to `r` as a push does: pinned first, the pin released by the link.
async fn link_pinned(m: &dyn MetaStore, r: &RepositoryName, d: &Digest, size: u64) {
    let pin = m.pin_blob(d, now_secs()).await.unwrap();
    m.link_blob(r, pin, size, true).await.unwrap();
}

fn now_secs() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

/// An image manifest over a fresh config and layer (distinct per `seed`); links the
/// blobs to `r` when `link`.
async fn image(m: &dyn MetaStore, r: &RepositoryName, seed: &str, link: bool) -> Image {
    let config = format!("{{\"seed\":\"{seed}\"}}");
    let layer = format!("layer {seed} bytes");
    let (cd, ld) = (sha256(config.as_bytes()), sha256(layer.as_bytes()));
    if link {
        link_pinned(m, r, &digest(&cd), config.len() as u64).await;
        link_pinned(m, r, &digest(&ld), layer.len() as u64).await;
    }
    let body = image_manifest(&cd, config.len(), &ld, layer.len()).into_bytes();
    Image {
        digest: digest(&sha256(&body)),
        parsed: ParsedManifest::parse("", &body).unwrap(),
        body,
        config: digest(&cd),
        config_size: config.len(),
        layer: digest(&ld),
    }
}

async fn put(
    m: &dyn MetaStore,
    r: &RepositoryName,
    i: &Image,
    t: Option<&str>,
) -> Result<berth_meta::PutOutcome, MetaError> {
    let t = t.map(tag);
    m.put_manifest(r, &i.digest, &i.parsed, &i.body, t.as_ref(), false, &NoJobs)
        .await
}

/// An OCI image index over `children` (digest, size, architecture).
fn index(children: &[(&Digest, usize, &str)]) -> (Vec<u8>, Digest, ParsedManifest) {
    let list: Vec<String> = children
        .iter()
        .map(|(d, size, arch)| {
            format!(
                r#"{{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"{d}","size":{size},"platform":{{"architecture":"{arch}","os":"linux"}}}}"#
            )
        })
        .collect();
    let body = format!(
        r#"{{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[{}]}}"#,
        list.join(",")
    )
    .into_bytes();
    let d = digest(&sha256(&body));
    let parsed = ParsedManifest::parse("", &body).unwrap();
    (body, d, parsed)
}

// distribution-spec § Pushing manifests / Pulling manifests / Content discovery (tags
// list with `n` and `last`), DELETE of tags and manifests; DESIGN.md invariant 3: the
// change's jobs are enqueued in its transaction exactly when it changed something.
#[tokio::test]
async fn push_pull_list_and_delete() {
    on_both("push_pull_list_and_delete", |b| async move {
        let m = b.meta.as_ref();
        let n = b.name;
        let r = repo("team/app");
        assert!(!m.repository_exists(&r).await.unwrap(), "{n}");
        let i = image(m, &r, "one", true).await;
        assert_eq!(m.linked_blob(&r, &i.config).await.unwrap(), Some(14), "{n}");
        let out = m
            .put_manifest(
                &r,
                &i.digest,
                &i.parsed,
                &i.body,
                Some(&tag("v1")),
                false,
                &EveryChange,
            )
            .await
            .unwrap();
        assert!(!out.manifest_existed && !out.tag_unchanged, "{n}: {out:?}");
        // The same PUT again changes nothing: no job.
        let again = m
            .put_manifest(
                &r,
                &i.digest,
                &i.parsed,
                &i.body,
                Some(&tag("v1")),
                false,
                &EveryChange,
            )
            .await
            .unwrap();
        assert!(
            again.manifest_existed && again.tag_unchanged,
            "{n}: {again:?}"
        );
        for t in ["v2", "a", "z"] {
            put(m, &r, &i, Some(t)).await.unwrap();
        }
        let got = m.manifest_by_tag(&r, &tag("v1")).await.unwrap().unwrap();
        assert_eq!(
            (&got.digest, &got.body[..]),
            (&i.digest, &i.body[..]),
            "{n}"
        );
        assert_eq!(
            got.media_type, "application/vnd.oci.image.manifest.v1+json",
            "{n}"
        );
        let head = m
            .manifest_head_by_digest(&r, &i.digest)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(head.size, i.body.len() as u64, "{n}");
        assert!(
            m.manifest_head_by_tag(&r, &tag("nope"))
                .await
                .unwrap()
                .is_none(),
            "{n}"
        );
        assert_eq!(m.list_tags(&r, None, 2).await.unwrap(), ["a", "v1"], "{n}");
        assert_eq!(
            m.list_tags(&r, Some("v1"), 10).await.unwrap(),
            ["v2", "z"],
            "{n}"
        );
        // Byte order ('-' < '/' < '_'; SQLite BINARY, PostgreSQL "C"), not a locale's
        // order, which would ignore the punctuation.
        for name in ["b/a", "b/z", "b_x", "b-y"] {
            m.create_repository(&repo(name)).await.unwrap();
        }
        assert_eq!(
            m.list_repositories(None, 10).await.unwrap(),
            ["b-y", "b/a", "b/z", "b_x", "team/app"],
            "{n}"
        );
        assert!(!m.create_repository(&repo("b/a")).await.unwrap(), "{n}");
        // A second tag moves onto another manifest: previous target reported.
        let j = image(m, &r, "two", true).await;
        let moved = put(m, &r, &j, Some("v2")).await.unwrap();
        assert_eq!(moved.previous_tag_target.as_ref(), Some(&i.digest), "{n}");
        assert!(
            m.delete_tag(&r, &tag("a"), &EveryChange).await.unwrap(),
            "{n}"
        );
        assert!(
            !m.delete_tag(&r, &tag("a"), &EveryChange).await.unwrap(),
            "{n}"
        );
        // A scanned image's scan goes with it (ECR forgets a deleted image's findings).
        let scan = NewJob::new("scan.image", serde_json::json!({}));
        m.start_image_scan(&r, &i.digest, "", &scan, 1, 600)
            .await
            .unwrap();
        assert!(m.image_scan(&r, &i.digest).await.unwrap().is_some(), "{n}");
        assert!(
            m.delete_manifest(&r, &i.digest, &EveryChange)
                .await
                .unwrap(),
            "{n}"
        );
        assert!(
            m.image_scan(&r, &i.digest).await.unwrap().is_none(),
            "{n}: the scan went with the image"
        );
        assert!(
            !m.delete_manifest(&r, &i.digest, &EveryChange)
                .await
                .unwrap(),
            "{n}"
        );
        // Its tags went with it; the moved one stayed on the other manifest.
        assert_eq!(m.list_tags(&r, None, 10).await.unwrap(), ["v2"], "{n}");
        assert!(
            m.manifest_by_digest(&r, &i.digest).await.unwrap().is_none(),
            "{n}"
        );
        assert_eq!(
            job_kinds(&b).await,
            ["put", "tag-deleted", "scan.image", "manifest-deleted"],
            "{n}"
        );
        // Unlinking: the blob is no longer served from the repository.
        assert!(m.unlink_blob(&r, &i.layer).await.unwrap(), "{n}");
        assert!(!m.unlink_blob(&r, &i.layer).await.unwrap(), "{n}");
        assert_eq!(m.linked_blob(&r, &i.layer).await.unwrap(), None, "{n}");
    })
    .await;
}

// DESIGN.md invariant 2: a manifest is stored only if every referenced blob and child
// manifest is in the repository with the declared size; a failed PUT stores nothing.
// distribution-spec § Deleting manifests: an index's child cannot go first.
#[tokio::test]
async fn references_are_checked_and_protected() {
    on_both("references_are_checked_and_protected", |b| async move {
        let m = b.meta.as_ref();
        let n = b.name;
        let r = repo("refs");
        let err = put(m, &r, &image(m, &r, "x", false).await, Some("t"))
            .await
            .unwrap_err();
        assert!(
            matches!(err, MetaError::RepositoryNotFound(_)),
            "{n}: {err}"
        );
        m.create_repository(&r).await.unwrap();
        let unlinked = image(m, &r, "unlinked", false).await;
        let err = put(m, &r, &unlinked, Some("t")).await.unwrap_err();
        match err {
            MetaError::MissingBlobs(d) => {
                assert_eq!(d, [unlinked.config.clone(), unlinked.layer.clone()], "{n}")
            }
            e => panic!("{n}: {e}"),
        }
        // A descriptor whose size disagrees with the linked blob.
        let i = image(m, &r, "one", true).await;
        let mut wrong = i.parsed.clone();
        wrong.blobs[1].size += 1;
        let err = m
            .put_manifest(&r, &i.digest, &wrong, &i.body, None, false, &NoJobs)
            .await
            .unwrap_err();
        assert!(
            matches!(
                err,
                MetaError::SizeMismatch {
                    actual: 15,
                    declared: 16,
                    ..
                }
            ),
            "{n}: {err}"
        );
        assert!(
            m.manifest_by_digest(&r, &i.digest).await.unwrap().is_none(),
            "{n}"
        );
        assert!(m.list_tags(&r, None, 10).await.unwrap().is_empty(), "{n}");

        put(m, &r, &i, None).await.unwrap();
        let ghost = digest(&sha256(b"ghost"));
        let (body, d, parsed) = index(&[(&i.digest, i.body.len(), "amd64"), (&ghost, 5, "arm64")]);
        let err = m
            .put_manifest(&r, &d, &parsed, &body, Some(&tag("multi")), false, &NoJobs)
            .await
            .unwrap_err();
        assert!(
            matches!(&err, MetaError::MissingManifests(g) if g == std::slice::from_ref(&ghost)),
            "{n}: {err}"
        );
        let (body, d, parsed) = index(&[(&i.digest, i.body.len() + 1, "amd64")]);
        let err = m
            .put_manifest(&r, &d, &parsed, &body, None, false, &NoJobs)
            .await
            .unwrap_err();
        assert!(matches!(err, MetaError::SizeMismatch { .. }), "{n}: {err}");
        let j = image(m, &r, "two", true).await;
        put(m, &r, &j, None).await.unwrap();
        let (body, d, parsed) = index(&[
            (&i.digest, i.body.len(), "amd64"),
            (&j.digest, j.body.len(), "arm64"),
        ]);
        m.put_manifest(&r, &d, &parsed, &body, Some(&tag("multi")), false, &NoJobs)
            .await
            .unwrap();
        let kids = m.index_children(&r, &d).await.unwrap();
        assert_eq!(kids.len(), 2, "{n}");
        assert_eq!(kids[0].digest, i.digest, "{n}");
        assert_eq!(
            kids[1].platform.as_ref().unwrap().architecture,
            "arm64",
            "{n}"
        );
        let err = m.delete_manifest(&r, &j.digest, &NoJobs).await.unwrap_err();
        assert!(
            matches!(&err, MetaError::Referenced { parent, .. } if parent == &d),
            "{n}: {err}"
        );
        // ECR imageSizeInBytes: config + layer for an image, the largest child for an index.
        let img = m.image(&r, &i.digest).await.unwrap().unwrap();
        assert_eq!(img.size, 14 + 15, "{n}");
        let idx = m.image(&r, &d).await.unwrap().unwrap();
        assert_eq!(idx.size, 14 + 15, "{n}");
        assert_eq!(idx.tags, [tag("multi")], "{n}");
        assert!(m.blob_in_image(&r, &i.layer).await.unwrap(), "{n}");
        assert!(!m.blob_in_image(&r, &unlinked.layer).await.unwrap(), "{n}");
        assert!(m.delete_manifest(&r, &d, &NoJobs).await.unwrap(), "{n}");
        assert!(
            m.delete_manifest(&r, &j.digest, &NoJobs).await.unwrap(),
            "{n}"
        );
    })
    .await;
}

// distribution-spec § Listing referrers: manifests whose `subject` is the digest, with
// their artifact type and annotations, filtered by `artifactType`.
#[tokio::test]
async fn referrers_by_subject_and_artifact_type() {
    on_both("referrers_by_subject_and_artifact_type", |b| async move {
        let m = b.meta.as_ref();
        let n = b.name;
        let r = repo("sig");
        let i = image(m, &r, "subject", true).await;
        put(m, &r, &i, Some("v1")).await.unwrap();
        let c = image(m, &r, "sigconf", true).await;
        let mut made = Vec::new();
        for (k, at) in [(0, "application/vnd.example.sig"), (1, "application/vnd.example.sbom")] {
            let body = format!(
                r#"{{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","artifactType":"{at}","config":{{"mediaType":"application/vnd.oci.empty.v1+json","digest":"{}","size":{}}},"layers":[],"subject":{{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"{}","size":{}}},"annotations":{{"k":"{k}"}}}}"#,
                c.config, c.config_size, i.digest, i.body.len()
            )
            .into_bytes();
            let d = digest(&sha256(&body));
            let parsed = ParsedManifest::parse("", &body).unwrap();
            m.put_manifest(&r, &d, &parsed, &body, None, false, &NoJobs)
                .await
                .unwrap();
            made.push(d);
        }
        let all = m.referrers(&r, &i.digest, None).await.unwrap();
        assert_eq!(all.len(), 2, "{n}");
        let sboms = m
            .referrers(&r, &i.digest, Some("application/vnd.example.sbom"))
            .await
            .unwrap();
        assert_eq!(sboms.len(), 1, "{n}");
        assert_eq!(sboms[0].digest, made[1], "{n}");
        assert_eq!(sboms[0].annotations.as_deref(), Some(r#"{"k":"1"}"#), "{n}");
        assert!(m.referrers(&r, &c.config, None).await.unwrap().is_empty(), "{n}");
        // ECR ListImages with tagStatus and pagination over (digest, tag).
        let keys = m.list_images(&r, TagStatus::Any, None, 10).await.unwrap();
        assert_eq!(keys.len(), 3, "{n}");
        let tagged = m.list_images(&r, TagStatus::Tagged, None, 10).await.unwrap();
        assert_eq!(tagged, [(i.digest.clone(), Some(tag("v1")))], "{n}");
        let untagged = m.images(&r, TagStatus::Untagged, None, 10).await.unwrap();
        let mut want = made.clone();
        want.sort_by_key(|d| d.to_string());
        assert_eq!(untagged.iter().map(|x| x.digest.clone()).collect::<Vec<_>>(), want, "{n}");
        let first = m.list_images(&r, TagStatus::Any, None, 1).await.unwrap();
        let first_tag = first[0].1.as_ref().map(|t| t.as_str().to_string()).unwrap_or_default();
        let rest = m
            .list_images(&r, TagStatus::Any, Some((&first[0].0.to_string(), &first_tag)), 10)
            .await
            .unwrap();
        assert_eq!(rest.len(), 2, "{n}");
    })
    .await;
}

// ECR imageTagMutability (IMMUTABLE, IMMUTABLE_WITH_EXCLUSION): moving an immutable tag
// is refused with nothing stored; re-pushing the same digest is not a move.
#[tokio::test]
async fn immutable_tags_refuse_moves() {
    on_both("immutable_tags_refuse_moves", |b| async move {
        let m = b.meta.as_ref();
        let n = b.name;
        let r = repo("imm");
        let settings = RepositorySettings {
            tags: TagRules {
                mode: TagMutability::ImmutableWithExclusion,
                exclusion_filters: vec!["latest".into()],
            },
            ..Default::default()
        };
        m.create_repository_with(&r, &settings, &[])
            .await
            .unwrap()
            .unwrap();
        let i = image(m, &r, "one", true).await;
        let j = image(m, &r, "two", true).await;
        put(m, &r, &i, Some("v1")).await.unwrap();
        put(m, &r, &i, Some("latest")).await.unwrap();
        assert!(
            put(m, &r, &i, Some("v1")).await.unwrap().tag_unchanged,
            "{n}"
        );
        let err = put(m, &r, &j, Some("v1")).await.unwrap_err();
        assert!(
            matches!(
                err,
                MetaError::TagImmutable {
                    mode: TagMutability::ImmutableWithExclusion,
                    ..
                }
            ),
            "{n}: {err}"
        );
        assert!(
            m.manifest_by_digest(&r, &j.digest).await.unwrap().is_none(),
            "{n}: nothing stored"
        );
        put(m, &r, &j, Some("latest")).await.unwrap();
        assert!(
            m.set_tag_rules(&r, &TagRules::default()).await.unwrap(),
            "{n}"
        );
        put(m, &r, &j, Some("v1")).await.unwrap();
        assert!(
            !m.set_tag_rules(&repo("missing"), &TagRules::default())
                .await
                .unwrap(),
            "{n}"
        );
    })
    .await;
}

// ECR CreateRepository / DescribeRepositories / TagResource (50-tag limit) /
// UntagResource / DeleteRepository (RepositoryNotEmptyException without force) and
// the pull times of DescribeImages (lastRecordedPullTime).
#[tokio::test]
async fn repository_settings_tags_pulls_and_deletion() {
    on_both(
        "repository_settings_tags_pulls_and_deletion",
        |b| async move {
            let m = b.meta.as_ref();
            let n = b.name;
            let r = repo("ecr/app");
            let mut settings = RepositorySettings {
                scan_on_push: true,
                ..Default::default()
            };
            settings.encryption.encryption_type = "KMS".into();
            settings.encryption.kms_key = Some("arn:aws:kms:us-east-1:1:key/k".into());
            let created = m
                .create_repository_with(&r, &settings, &[("team".into(), "a".into())])
                .await
                .unwrap()
                .unwrap();
            assert_eq!(created.settings, settings, "{n}");
            assert!(
                m.create_repository_with(&r, &settings, &[])
                    .await
                    .unwrap()
                    .is_none(),
                "{n}"
            );
            assert_eq!(m.repository(&r).await.unwrap().unwrap(), created, "{n}");
            m.create_repository(&repo("ecr/zz")).await.unwrap();
            let page = m.repositories(Some("ecr/app"), 10).await.unwrap();
            assert_eq!(page.len(), 1, "{n}");
            assert!(!page[0].settings.scan_on_push, "{n}");

            let tags: Vec<(String, String)> =
                (0..4).map(|k| (format!("k{k}"), "v".into())).collect();
            let err = m.tag_resource(&r, &tags, 4).await.unwrap_err();
            assert!(
                matches!(
                    err,
                    MetaError::TooManyTags {
                        count: 5,
                        max: 4,
                        ..
                    }
                ),
                "{n}: {err}"
            );
            assert_eq!(
                m.resource_tags(&r).await.unwrap().unwrap().len(),
                1,
                "{n}: rolled back"
            );
            assert!(
                m.tag_resource(&r, &[("team".into(), "b".into())], 4)
                    .await
                    .unwrap(),
                "{n}"
            );
            assert!(m.untag_resource(&r, &["nope".into()]).await.unwrap(), "{n}");
            assert_eq!(
                m.resource_tags(&r).await.unwrap().unwrap(),
                [("team".to_string(), "b".to_string())],
                "{n}"
            );
            assert!(m.untag_resource(&r, &["team".into()]).await.unwrap(), "{n}");
            assert!(
                m.resource_tags(&repo("nope")).await.unwrap().is_none(),
                "{n}"
            );
            assert!(
                !m.tag_resource(&repo("nope"), &tags, 50).await.unwrap(),
                "{n}"
            );

            let i = image(m, &r, "one", true).await;
            put(m, &r, &i, Some("v1")).await.unwrap();
            m.record_pulls(&[
                (r.clone(), i.digest.clone(), 200),
                (r.clone(), i.digest.clone(), 100),
                (repo("gone"), i.digest.clone(), 300),
            ])
            .await
            .unwrap();
            assert_eq!(
                m.image(&r, &i.digest)
                    .await
                    .unwrap()
                    .unwrap()
                    .last_pulled_at,
                Some(200),
                "{n}"
            );
            m.record_pulls(&[(r.clone(), i.digest.clone(), 150)])
                .await
                .unwrap();
            assert_eq!(
                m.image(&r, &i.digest)
                    .await
                    .unwrap()
                    .unwrap()
                    .last_pulled_at,
                Some(200),
                "{n}"
            );
            let err = m
                .images(&repo("nope"), TagStatus::Any, None, 1)
                .await
                .unwrap_err();
            assert!(
                matches!(err, MetaError::RepositoryNotFound(_)),
                "{n}: {err}"
            );

            let err = m.delete_repository(&r, false, &NoJobs).await.unwrap_err();
            assert!(
                matches!(err, MetaError::RepositoryNotEmpty(_)),
                "{n}: {err}"
            );
            let gone = m
                .delete_repository(&r, true, &NoJobs)
                .await
                .unwrap()
                .unwrap();
            assert_eq!(gone.name, r, "{n}");
            assert!(
                m.delete_repository(&r, true, &NoJobs)
                    .await
                    .unwrap()
                    .is_none(),
                "{n}"
            );
            assert!(!m.repository_exists(&r).await.unwrap(), "{n}");
            // A repository created again under the name starts empty.
            m.create_repository(&r).await.unwrap();
            assert!(
                m.manifest_by_tag(&r, &tag("v1")).await.unwrap().is_none(),
                "{n}"
            );
            assert_eq!(m.linked_blob(&r, &i.config).await.unwrap(), None, "{n}");
        },
    )
    .await;
}

fn rule(name: &str, state: RuleState) -> NewRule {
    NewRule {
        event_bus_name: DEFAULT_EVENT_BUS.into(),
        name: name.into(),
        arn: format!("arn:aws:events:us-east-1:111111111111:rule/{name}"),
        description: None,
        event_pattern: Some(r#"{"source":["aws.ecr"]}"#.into()),
        state,
        role_arn: None,
    }
}

fn target(id: &str, arn: &str) -> TargetRow {
    TargetRow {
        target_id: id.into(),
        arn: arn.into(),
        role_arn: None,
        input: None,
        input_path: None,
        input_transformer: None,
        http_parameters: Some(serde_json::json!({"HeaderParameters": {"x": "y"}})),
        max_event_age_seconds: Some(3600),
        max_retry_attempts: Some(3),
    }
}

fn connection(name: &str) -> NewConnection {
    NewConnection {
        name: name.into(),
        arn: format!("arn:aws:events:us-east-1:111111111111:connection/{name}/u1"),
        description: None,
        authorization_type: AuthorizationType::ApiKey,
        auth_parameters: serde_json::json!({
            "ApiKeyAuthParameters": {"ApiKeyName": "x-key", "ApiKeyValue": "s3cret"}
        }),
        state: "AUTHORIZED".into(),
    }
}

fn destination(name: &str, connection_arn: &str) -> NewApiDestination {
    NewApiDestination {
        name: name.into(),
        arn: format!("arn:aws:events:us-east-1:111111111111:api-destination/{name}/u2"),
        description: None,
        connection_arn: connection_arn.into(),
        invocation_endpoint: "http://127.0.0.1:9/hook".into(),
        http_method: "POST".into(),
        invocation_rate_limit_per_second: Some(300),
        signing_secret: "sign-me".into(),
        state: "ACTIVE".into(),
    }
}

// The delivery pipeline's read (EventBridge rules → targets → API destinations →
// connections): only ENABLED rules; targets resolved to their API destination and its
// connection, secrets included; other ARNs stay unresolved. Every write moves the
// generation; a refused write does not.
#[tokio::test]
async fn deliverable_targets_resolve_destinations_and_connections() {
    on_both(
        "deliverable_targets_resolve_destinations_and_connections",
        |b| async move {
            let m = b.meta.as_ref();
            let n = b.name;
            let g0 = m.event_config_generation().await.unwrap();
            let conn = m.create_connection(&connection("hook"), 1).await.unwrap();
            assert_eq!(conn.api_key(), Some(("x-key", "s3cret")), "{n}");
            let err = m
                .create_connection(&connection("hook"), 1)
                .await
                .unwrap_err();
            assert!(
                matches!(
                    err,
                    MetaError::EventConfigExists {
                        kind: "connection",
                        ..
                    }
                ),
                "{n}: {err}"
            );
            let err = m
                .create_api_destination(&destination("recv", "arn:nope"), 2)
                .await
                .unwrap_err();
            assert!(
                matches!(
                    err,
                    MetaError::EventConfigNotFound {
                        kind: "connection",
                        ..
                    }
                ),
                "{n}: {err}"
            );
            let dest = m
                .create_api_destination(&destination("recv", &conn.arn), 2)
                .await
                .unwrap();
            let err = m
                .create_api_destination(&destination("recv", &conn.arn), 2)
                .await
                .unwrap_err();
            assert!(
                matches!(
                    err,
                    MetaError::EventConfigExists {
                        kind: "api destination",
                        ..
                    }
                ),
                "{n}: {err}"
            );
            m.put_rule(&rule("on", RuleState::Enabled), 3)
                .await
                .unwrap();
            m.put_rule(&rule("off", RuleState::Disabled), 3)
                .await
                .unwrap();
            let sqs = "arn:aws:sqs:us-east-1:111111111111:q";
            m.put_targets(
                DEFAULT_EVENT_BUS,
                "on",
                &[target("a", &dest.arn), target("b", sqs)],
                4,
            )
            .await
            .unwrap();
            m.put_targets(DEFAULT_EVENT_BUS, "off", &[target("a", &dest.arn)], 4)
                .await
                .unwrap();
            let g1 = m.event_config_generation().await.unwrap();
            assert_eq!(g1, g0 + 6, "{n}: one bump per successful write");

            let got = m.deliverable_targets().await.unwrap();
            assert_eq!(got.len(), 1, "{n}: only the enabled rule");
            assert_eq!(got[0].rule.name, "on", "{n}");
            assert_eq!(got[0].targets.len(), 2, "{n}");
            let a = &got[0].targets[0];
            assert_eq!(
                a.api_destination.as_ref().unwrap().signing_secret,
                "sign-me",
                "{n}"
            );
            assert_eq!(
                a.connection.as_ref().unwrap().api_key(),
                Some(("x-key", "s3cret")),
                "{n}"
            );
            assert_eq!(a.target.max_retry_attempts, Some(3), "{n}");
            assert_eq!(
                a.target.http_parameters,
                target("a", "").http_parameters,
                "{n}"
            );
            assert!(got[0].targets[1].api_destination.is_none(), "{n}");

            // Updates, lookups by ARN, listings with a prefix ('_' is literal) and filters.
            let mut upd = connection("hook");
            upd.state = "DEAUTHORIZED".into();
            assert_eq!(
                m.update_connection(&upd, 5).await.unwrap().unwrap().state,
                "DEAUTHORIZED",
                "{n}"
            );
            assert!(
                m.update_connection(&connection("nope"), 5)
                    .await
                    .unwrap()
                    .is_none(),
                "{n}"
            );
            assert_eq!(
                m.connection_by_arn(&conn.arn).await.unwrap().unwrap().name,
                "hook",
                "{n}"
            );
            m.create_connection(&connection("hoo_k"), 6).await.unwrap();
            m.create_connection(&connection("hooXk"), 6).await.unwrap();
            let page = NamePage {
                name_prefix: Some("hoo_".into()),
                ..Default::default()
            };
            let listed = m.list_connections(&page, None).await.unwrap();
            assert_eq!(
                listed.iter().map(|c| c.name.as_str()).collect::<Vec<_>>(),
                ["hoo_k"],
                "{n}"
            );
            let listed = m
                .list_connections(&NamePage::default(), Some("DEAUTHORIZED"))
                .await
                .unwrap();
            assert_eq!(listed.len(), 1, "{n}");
            let dests = m
                .list_api_destinations(&NamePage::default(), Some(&conn.arn))
                .await
                .unwrap();
            assert_eq!(dests.len(), 1, "{n}");
            assert_eq!(
                m.api_destination_by_arn(&dest.arn)
                    .await
                    .unwrap()
                    .unwrap()
                    .name,
                "recv",
                "{n}"
            );
            let rules = m
                .list_rules(
                    DEFAULT_EVENT_BUS,
                    &NamePage {
                        after: Some("off".into()),
                        ..Default::default()
                    },
                )
                .await
                .unwrap();
            assert_eq!(
                rules.iter().map(|r| r.name.as_str()).collect::<Vec<_>>(),
                ["on"],
                "{n}"
            );
            assert!(
                m.set_rule_state(DEFAULT_EVENT_BUS, "on", RuleState::Disabled, 7)
                    .await
                    .unwrap(),
                "{n}"
            );
            assert!(
                !m.set_rule_state(DEFAULT_EVENT_BUS, "nope", RuleState::Disabled, 7)
                    .await
                    .unwrap(),
                "{n}"
            );
            assert!(m.deliverable_targets().await.unwrap().is_empty(), "{n}");
            assert!(
                m.delete_api_destination("recv", 8).await.unwrap().is_some(),
                "{n}"
            );
            assert!(
                m.delete_api_destination("recv", 8).await.unwrap().is_none(),
                "{n}"
            );
            assert!(
                m.delete_connection("hook", 8).await.unwrap().is_some(),
                "{n}"
            );
            assert!(m.connection("hook").await.unwrap().is_none(), "{n}");
        },
    )
    .await;
}

// EventBridge: a rule with targets cannot be deleted (DeleteRule); more than 5 targets
// per rule is refused with nothing written (PutTargets LimitExceededException).
#[tokio::test]
async fn rule_deletion_and_target_limit() {
    on_both("rule_deletion_and_target_limit", |b| async move {
        let m = b.meta.as_ref();
        let n = b.name;
        let err = m
            .put_targets(DEFAULT_EVENT_BUS, "r", &[target("t", "arn:x")], 1)
            .await
            .unwrap_err();
        assert!(
            matches!(err, MetaError::EventConfigNotFound { kind: "rule", .. }),
            "{n}: {err}"
        );
        m.put_rule(&rule("r", RuleState::Enabled), 1).await.unwrap();
        let five: Vec<_> = (0..5).map(|i| target(&format!("t{i}"), "arn:x")).collect();
        m.put_targets(DEFAULT_EVENT_BUS, "r", &five, 2)
            .await
            .unwrap();
        let g = m.event_config_generation().await.unwrap();
        let err = m
            .put_targets(DEFAULT_EVENT_BUS, "r", &[target("t5", "arn:x")], 3)
            .await
            .unwrap_err();
        assert!(
            matches!(err, MetaError::TooManyTargets { max: 5, .. }),
            "{n}: {err}"
        );
        assert_eq!(
            m.event_config_generation().await.unwrap(),
            g,
            "{n}: refused, not bumped"
        );
        assert_eq!(
            m.list_targets(DEFAULT_EVENT_BUS, "r").await.unwrap().len(),
            5,
            "{n}"
        );
        let err = m.delete_rule(DEFAULT_EVENT_BUS, "r").await.unwrap_err();
        assert!(matches!(err, MetaError::RuleHasTargets(_)), "{n}: {err}");
        let ids: Vec<String> = (0..5)
            .map(|i| format!("t{i}"))
            .chain(["zz".into()])
            .collect();
        let removed = m
            .remove_targets(DEFAULT_EVENT_BUS, "r", &ids, 4)
            .await
            .unwrap();
        assert_eq!(removed, vec![true, true, true, true, true, false], "{n}");
        assert!(m.delete_rule(DEFAULT_EVENT_BUS, "r").await.unwrap(), "{n}");
        assert!(!m.delete_rule(DEFAULT_EVENT_BUS, "r").await.unwrap(), "{n}");
        let err = m.list_targets(DEFAULT_EVENT_BUS, "r").await.unwrap_err();
        assert!(
            matches!(err, MetaError::EventConfigNotFound { kind: "rule", .. }),
            "{n}: {err}"
        );
    })
    .await;
}

/// Two `PgMeta` pools on one fresh database: two Berth nodes. `None` when PostgreSQL is
/// missing outside CI (skipped loudly).
async fn two_nodes(test: &str) -> Option<(Arc<PgMeta>, Arc<PgMeta>)> {
    let url = Postgres::shared(test)?.database();
    let a = PgMeta::open(&url).await.unwrap();
    let b = PgMeta::open(&url).await.unwrap();
    Some((Arc::new(a), Arc::new(b)))
}

/// Rounds of each race: enough for both orders to happen, small enough to stay quick.
const ROUNDS: usize = 20;

// Tag immutability across nodes (ECR IMMUTABLE): of concurrent pushes of one tag with
// different manifests, exactly one wins; the others get TagImmutable and store nothing.
#[tokio::test]
async fn pg_race_pushes_of_one_immutable_tag() {
    let Some((a, b)) = two_nodes("pg_race_pushes_of_one_immutable_tag").await else {
        return;
    };
    let r = repo("race/imm");
    let settings = RepositorySettings {
        tags: TagRules {
            mode: TagMutability::Immutable,
            exclusion_filters: vec![],
        },
        ..Default::default()
    };
    a.create_repository_with(&r, &settings, &[])
        .await
        .unwrap()
        .unwrap();
    for round in 0..ROUNDS {
        let t = format!("v{round}");
        let mut pushes = Vec::new();
        for k in 0..4 {
            let node: Arc<PgMeta> = if k % 2 == 0 { a.clone() } else { b.clone() };
            let i = image(node.as_ref(), &r, &format!("{round}-{k}"), true).await;
            let (r, t) = (r.clone(), t.clone());
            pushes.push(tokio::spawn(async move {
                put(node.as_ref(), &r, &i, Some(&t)).await.map(|_| i.digest)
            }));
        }
        let mut won = Vec::new();
        for p in pushes {
            match p.await.unwrap() {
                Ok(d) => won.push(d),
                Err(MetaError::TagImmutable { .. }) => {}
                Err(e) => panic!("round {round}: {e}"),
            }
        }
        assert_eq!(won.len(), 1, "round {round}: exactly one push wins");
        let now = a.manifest_by_tag(&r, &tag(&t)).await.unwrap().unwrap();
        assert_eq!(now.digest, won[0], "round {round}");
        assert_eq!(
            a.images(&r, TagStatus::Any, None, 1000)
                .await
                .unwrap()
                .len(),
            round + 1
        );
    }
}

// DESIGN.md invariant 2 across nodes: an index push racing the deletion of its child
// never leaves an index whose child is gone — one of them fails (Referenced or
// MissingManifests).
#[tokio::test]
async fn pg_race_index_push_against_child_delete() {
    let Some((a, b)) = two_nodes("pg_race_index_push_against_child_delete").await else {
        return;
    };
    let r = repo("race/index");
    a.create_repository(&r).await.unwrap();
    let (mut pushed, mut deleted) = (0, 0);
    for round in 0..ROUNDS {
        let child = image(a.as_ref(), &r, &format!("{round}"), true).await;
        put(a.as_ref(), &r, &child, None).await.unwrap();
        let (body, d, parsed) = index(&[(&child.digest, child.body.len(), "amd64")]);
        let (na, rr, ix) = (a.clone(), r.clone(), d.clone());
        let push = tokio::spawn(async move {
            na.put_manifest(&rr, &ix, &parsed, &body, None, false, &NoJobs)
                .await
        });
        let (nb, rr, cd) = (b.clone(), r.clone(), child.digest.clone());
        let delete = tokio::spawn(async move { nb.delete_manifest(&rr, &cd, &NoJobs).await });
        let (push, delete) = (push.await.unwrap(), delete.await.unwrap());
        match (&push, &delete) {
            (Ok(_), Err(MetaError::Referenced { .. })) => pushed += 1,
            (Err(MetaError::MissingManifests(_)), Ok(true)) => deleted += 1,
            other => panic!("round {round}: both or neither won: {other:?}"),
        }
        let index_there = a.manifest_by_digest(&r, &d).await.unwrap().is_some();
        let child_there = a
            .manifest_by_digest(&r, &child.digest)
            .await
            .unwrap()
            .is_some();
        assert!(
            !index_there || child_there,
            "round {round}: an index without its child"
        );
    }
    assert_eq!(pushed + deleted, ROUNDS);
}

// ECR DeleteRepository without force across nodes: a push into the repository and its
// deletion never both succeed (a deleted repository holds no image; a repository with
// an image is not deleted).
#[tokio::test]
async fn pg_race_push_against_repository_delete() {
    let Some((a, b)) = two_nodes("pg_race_push_against_repository_delete").await else {
        return;
    };
    for round in 0..ROUNDS {
        let r = repo(&format!("race/repo{round}"));
        let i = image(a.as_ref(), &r, &format!("{round}"), true).await;
        let (na, rr) = (a.clone(), r.clone());
        let push = tokio::spawn(async move { put(na.as_ref(), &rr, &i, Some("v1")).await });
        let (nb, rr) = (b.clone(), r.clone());
        let delete = tokio::spawn(async move { nb.delete_repository(&rr, false, &NoJobs).await });
        match (push.await.unwrap(), delete.await.unwrap()) {
            (Ok(_), Err(MetaError::RepositoryNotEmpty(_))) => {
                assert!(a.manifest_by_tag(&r, &tag("v1")).await.unwrap().is_some())
            }
            (Err(MetaError::RepositoryNotFound(_)), Ok(Some(_))) => {
                assert!(!a.repository_exists(&r).await.unwrap())
            }
            other => panic!("round {round}: {other:?}"),
        }
    }
}

// Per-resource limits across nodes (ECR TagResource's 50 tags, EventBridge's 5 targets
// per rule): two nodes adding at once cannot both pass the check.
#[tokio::test]
async fn pg_race_limits_hold_across_nodes() {
    let Some((a, b)) = two_nodes("pg_race_limits_hold_across_nodes").await else {
        return;
    };
    for round in 0..ROUNDS {
        let r = repo(&format!("race/tags{round}"));
        a.create_repository(&r).await.unwrap();
        let three = |p: &str| -> Vec<(String, String)> {
            (0..3)
                .map(|k| (format!("{p}{k}"), "v".to_string()))
                .collect()
        };
        let (ta, tb) = (three("a"), three("b"));
        let (na, nb, ra, rb) = (a.clone(), b.clone(), r.clone(), r.clone());
        let x = tokio::spawn(async move { na.tag_resource(&ra, &ta, 5).await });
        let y = tokio::spawn(async move { nb.tag_resource(&rb, &tb, 5).await });
        let oks = [x.await.unwrap(), y.await.unwrap()]
            .into_iter()
            .filter(|o| match o {
                Ok(true) => true,
                Err(MetaError::TooManyTags { .. }) => false,
                other => panic!("round {round}: {other:?}"),
            })
            .count();
        assert_eq!(oks, 1, "round {round}");
        assert_eq!(
            a.resource_tags(&r).await.unwrap().unwrap().len(),
            3,
            "round {round}"
        );

        let name = format!("r{round}");
        a.put_rule(&rule(&name, RuleState::Enabled), 1)
            .await
            .unwrap();
        let ids = |p: &str| -> Vec<TargetRow> {
            (0..3)
                .map(|k| target(&format!("{p}{k}"), "arn:x"))
                .collect()
        };
        let (ta, tb) = (ids("a"), ids("b"));
        let (na, nb, ra, rb) = (a.clone(), b.clone(), name.clone(), name.clone());
        let x = tokio::spawn(async move { na.put_targets(DEFAULT_EVENT_BUS, &ra, &ta, 2).await });
        let y = tokio::spawn(async move { nb.put_targets(DEFAULT_EVENT_BUS, &rb, &tb, 2).await });
        let oks = [x.await.unwrap(), y.await.unwrap()]
            .into_iter()
            .filter(|o| match o {
                Ok(()) => true,
                Err(MetaError::TooManyTargets { .. }) => false,
                other => panic!("round {round}: {other:?}"),
            })
            .count();
        assert_eq!(oks, 1, "round {round}");
        assert_eq!(
            a.list_targets(DEFAULT_EVENT_BUS, &name)
                .await
                .unwrap()
                .len(),
            3
        );
    }
}

// ---- garbage collection (issue 12; protocol in berth-meta/src/gc.rs) ----

fn digests_of(v: &[berth_meta::GcBlob]) -> Vec<Digest> {
    v.iter().map(|b| b.digest.clone()).collect()
}

// The mark: a blob is collectable only when no manifest of any repository references
// it (an untagged manifest, an index's child and a referrer all keep theirs) and it was
// not touched within the grace window; deleting its last manifest restarts the window.
// The claim deletes row and links, and locks pushes out until the claim is released.
#[tokio::test]
async fn gc_marks_claims_and_guards() {
    on_both("gc_marks_claims_and_guards", |b| async move {
        let (m, n) = (b.meta.as_ref(), b.name);
        let (r1, r2) = (repo("gc/one"), repo("gc/two"));
        let a = image(m, &r1, &format!("{n}-a"), true).await;
        let c = image(m, &r1, &format!("{n}-c"), true).await;
        put(m, &r1, &a, None).await.unwrap(); // untagged: still an image
        put(m, &r1, &c, Some("c")).await.unwrap();
        let (ib, id, ip) = index(&[(&c.digest, c.body.len(), "arm64")]);
        m.put_manifest(&r1, &id, &ip, &ib, Some(&tag("multi")), false, &NoJobs)
            .await
            .unwrap();
        let later = now_secs() + 10;
        let sorted = |mut v: Vec<Digest>| {
            v.sort_by_key(|d| d.to_string());
            v
        };
        // Everything is referenced: nothing to collect, whatever the grace.
        assert_eq!(
            m.gc_candidates(later, None, 100).await.unwrap(),
            vec![],
            "{n}"
        );
        // A blob uploaded but not (yet) referenced is collectable only after the grace.
        let orphan = digest(&sha256(format!("{n} orphan").as_bytes()));
        link_pinned(m, &r1, &orphan, 9).await;
        assert_eq!(
            m.gc_candidates(now_secs() - 3600, None, 100).await.unwrap(),
            vec![],
            "{n}"
        );
        assert_eq!(
            digests_of(&m.gc_candidates(later, None, 100).await.unwrap()),
            vec![orphan.clone()],
            "{n}"
        );
        // Deleting the index frees nothing (its child is an image).
        m.delete_manifest(&r1, &id, &NoJobs).await.unwrap();
        assert_eq!(
            m.gc_candidates(later, None, 100).await.unwrap().len(),
            1,
            "{n}"
        );
        // r2 holds the same image as a (same blobs, pushed there too).
        let shared = image(m, &r2, &format!("{n}-a"), true).await;
        put(m, &r2, &shared, Some("a")).await.unwrap();
        m.delete_manifest(&r1, &a.digest, &NoJobs).await.unwrap();
        // a's blobs are still referenced by r2's copy of the image.
        assert_eq!(
            digests_of(&m.gc_candidates(later, None, 100).await.unwrap()),
            vec![orphan.clone()],
            "{n}"
        );
        m.delete_manifest(&r2, &shared.digest, &NoJobs)
            .await
            .unwrap();
        let want = sorted(vec![orphan.clone(), a.config.clone(), a.layer.clone()]);
        let cands = m.gc_candidates(later, None, 100).await.unwrap();
        assert_eq!(digests_of(&cands), want, "{n}");
        // Paging in digest order.
        let first = m.gc_candidates(later, None, 1).await.unwrap();
        let rest = m
            .gc_candidates(later, Some(&first[0].digest), 100)
            .await
            .unwrap();
        assert_eq!(
            [digests_of(&first), digests_of(&rest)].concat(),
            want,
            "{n}"
        );
        // The manifest deletion touched them: within the grace they stay.
        assert_eq!(
            m.gc_candidates(now_secs() - 3600, None, 100).await.unwrap(),
            vec![],
            "{n}"
        );

        // A pinned blob (a push committing it) cannot be claimed.
        let pin = m.pin_blob(&a.layer, now_secs()).await.unwrap();
        let claimed = m
            .gc_claim_blobs(&want, later, "gc-1", now_secs())
            .await
            .unwrap();
        assert_eq!(
            sorted(digests_of(&claimed)),
            sorted(vec![orphan.clone(), a.config.clone()]),
            "{n}"
        );
        assert_eq!(
            claimed.iter().find(|b| b.digest == orphan).unwrap().size,
            9,
            "{n}"
        );
        // Claimed: row and links are gone (pulls and manifest pushes see no blob) ...
        assert_eq!(m.linked_blob(&r1, &a.config).await.unwrap(), None, "{n}");
        let again = image(m, &r1, &format!("{n}-a"), false).await;
        assert!(
            matches!(
                put(m, &r1, &again, None).await,
                Err(MetaError::MissingBlobs(_))
            ),
            "{n}"
        );
        // ... a second GC cannot claim it, and a push cannot pin it until released.
        assert_eq!(
            m.gc_claim_strays(std::slice::from_ref(&a.config), "gc-2", now_secs())
                .await
                .unwrap(),
            vec![],
            "{n}"
        );
        assert!(
            matches!(
                m.pin_blob(&a.config, now_secs()).await,
                Err(MetaError::BlobBeingCollected(_))
            ),
            "{n}"
        );
        assert_eq!(m.gc_held(&want, "gc-1").await.unwrap().len(), 2, "{n}");
        assert_eq!(m.gc_held(&want, "gc-2").await.unwrap(), vec![], "{n}");
        m.gc_release(&digests_of(&claimed), "gc-1").await.unwrap();
        let repin = m.pin_blob(&a.config, now_secs()).await.unwrap();
        m.link_blob(&r1, repin, a.config_size as u64, true)
            .await
            .unwrap();
        assert!(
            m.linked_blob(&r1, &a.config).await.unwrap().is_some(),
            "{n}"
        );
        m.link_blob(&r2, pin, 1, true).await.unwrap();
        // Released pins leave no guard behind: the layer is claimable again.
        assert_eq!(
            m.gc_unknown_blobs(std::slice::from_ref(&a.layer))
                .await
                .unwrap(),
            vec![],
            "{n}"
        );

        // Strays: bytes no row names. Known blobs and guarded digests are not strays.
        let stray = digest(&sha256(format!("{n} stray").as_bytes()));
        let pinned_stray = digest(&sha256(format!("{n} pinned stray").as_bytes()));
        let p2 = m.pin_blob(&pinned_stray, now_secs()).await.unwrap();
        let listed = vec![a.layer.clone(), stray.clone(), pinned_stray.clone()];
        assert_eq!(
            m.gc_unknown_blobs(&listed).await.unwrap(),
            vec![stray.clone()],
            "{n}"
        );
        assert_eq!(
            m.gc_claim_strays(&listed, "gc-3", now_secs())
                .await
                .unwrap(),
            vec![stray.clone()],
            "{n}"
        );
        m.unpin_blob(p2).await.unwrap();
        // A crashed GC's claim is taken over once stale, never before.
        assert_eq!(
            m.gc_take_over_stale(now_secs() - 900, "gc-4", now_secs())
                .await
                .unwrap(),
            vec![],
            "{n}"
        );
        assert_eq!(
            m.gc_take_over_stale(now_secs() + 1, "gc-4", now_secs())
                .await
                .unwrap(),
            vec![stray.clone()],
            "{n}"
        );
        assert_eq!(
            m.gc_held(std::slice::from_ref(&stray), "gc-3")
                .await
                .unwrap(),
            vec![],
            "{n}"
        );
        m.gc_release(std::slice::from_ref(&stray), "gc-4")
            .await
            .unwrap();
        // A crashed push's pin expires.
        let _lost = m.pin_blob(&stray, now_secs() - 7200).await.unwrap();
        assert_eq!(m.gc_expire_pins(now_secs() - 3600).await.unwrap(), 1, "{n}");
        assert_eq!(
            m.gc_unknown_blobs(std::slice::from_ref(&stray))
                .await
                .unwrap(),
            vec![stray],
            "{n}"
        );
    })
    .await;
}

// DESIGN.md invariant 5 across nodes: a GC claim racing a manifest push that references
// the blob never lets both win — either the push committed first and the blob is not
// claimed, or the claim did and the push fails with MissingBlobs. Never a stored
// manifest whose blob row is gone.
#[tokio::test]
async fn pg_race_gc_claim_against_manifest_push() {
    let Some((a, b)) = two_nodes("pg_race_gc_claim_against_manifest_push").await else {
        return;
    };
    let r = repo("race/gc");
    let (mut pushed, mut claimed) = (0, 0);
    for round in 0..ROUNDS * 2 {
        let i = image(a.as_ref(), &r, &format!("gc-{round}"), true).await;
        let later = now_secs() + 10;
        let blobs = vec![i.config.clone(), i.layer.clone()];
        let (a2, r2) = (a.clone(), r.clone());
        let push = tokio::spawn(async move { put(a2.as_ref(), &r2, &i, None).await.map(|_| i) });
        let b2 = b.clone();
        let gc =
            tokio::spawn(async move { b2.gc_claim_blobs(&blobs, later, "gc", now_secs()).await });
        let (push, gc) = (push.await.unwrap(), gc.await.unwrap().unwrap());
        match push {
            Ok(i) => {
                pushed += 1;
                assert!(
                    gc.is_empty(),
                    "round {round}: a referenced blob was claimed"
                );
                assert!(a.linked_blob(&r, &i.layer).await.unwrap().is_some());
                assert!(a.linked_blob(&r, &i.config).await.unwrap().is_some());
            }
            Err(MetaError::MissingBlobs(_)) => {
                claimed += 1;
                assert!(
                    !gc.is_empty(),
                    "round {round}: push failed but nothing was claimed"
                );
                b.gc_release(&digests_of(&gc), "gc").await.unwrap();
            }
            Err(e) => panic!("round {round}: {e}"),
        }
    }
    eprintln!("pg_race_gc_claim_against_manifest_push: {pushed} pushes won, {claimed} claims won");
}

// The pin/claim arbitration across nodes: of a push pinning a digest and a GC claiming
// it as stray at the same moment, exactly one succeeds.
#[tokio::test]
async fn pg_race_pin_against_stray_claim() {
    let Some((a, b)) = two_nodes("pg_race_pin_against_stray_claim").await else {
        return;
    };
    for round in 0..ROUNDS * 2 {
        let d = digest(&sha256(format!("pin race {round}").as_bytes()));
        let (a2, d2) = (a.clone(), d.clone());
        let pin = tokio::spawn(async move { a2.pin_blob(&d2, now_secs()).await });
        let (b2, d3) = (b.clone(), d.clone());
        let claim = tokio::spawn(async move { b2.gc_claim_strays(&[d3], "gc", now_secs()).await });
        let (pin, claim) = (pin.await.unwrap(), claim.await.unwrap().unwrap());
        match pin {
            Ok(p) => {
                assert!(claim.is_empty(), "round {round}: pinned and claimed");
                a.unpin_blob(p).await.unwrap();
            }
            Err(MetaError::BlobBeingCollected(_)) => {
                assert_eq!(claim, vec![d.clone()], "round {round}");
                b.gc_release(&claim, "gc").await.unwrap();
            }
            Err(e) => panic!("round {round}: {e}"),
        }
    }
}
