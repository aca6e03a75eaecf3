//! The shared test suite of [`CreationTemplateStore`] (issue 10: ECR repository creation
//! templates, ECR_REFERENCE §2.7), run once on SQLite and once on PostgreSQL (see
//! `common/mod.rs`). Both must give the same answers: one template per prefix, updates
//! and deletes by prefix, and a repository the store creates by itself gets the chosen
//! template's settings, resource tags and lifecycle policy in the creating transaction —
//! for the kind of creation the task is doing (push, replication, pull-through cache) —
//! while a creating write that fails leaves no repository behind.

use berth_core::creation_template::{
    AppliedFor, CreationTemplate, TemplateExclusionFilter, TemplateTag,
};
use berth_core::{Digest, ParsedManifest, RepositoryName, TagMutability};
use berth_meta::creation_templates::PULL_THROUGH_CACHE;
use berth_meta::{MetaError, MetaStore, NoJobs};

mod common;

use common::on_both;

fn repo(s: &str) -> RepositoryName {
    RepositoryName::parse(s).unwrap()
}

const LIFECYCLE: &str = r#"{"rules":[{"rulePriority":1,"selection":{"tagStatus":"any","countType":"imageCountMoreThan","countNumber":5},"action":{"type":"expire"}}]}"#;

fn template(prefix: &str, applied_for: &[AppliedFor], mode: &str, tag: &str) -> CreationTemplate {
    let mut t = CreationTemplate::new(prefix, applied_for);
    t.image_tag_mutability = Some(mode.into());
    if mode.ends_with("_WITH_EXCLUSION") {
        t.image_tag_mutability_exclusion_filters = vec![TemplateExclusionFilter {
            filter_type: "WILDCARD".into(),
            filter: "dev-*".into(),
        }];
    }
    t.resource_tags = vec![TemplateTag {
        key: "from".into(),
        value: tag.into(),
    }];
    t
}

/// The tag mutability and resource tags of a repository the store created.
async fn settings(m: &dyn MetaStore, name: &str) -> (TagMutability, Vec<(String, String)>) {
    let r = m.repository(&repo(name)).await.unwrap().unwrap();
    let tags = m.resource_tags(&repo(name)).await.unwrap().unwrap();
    (r.settings.tags.mode, tags)
}

// CreateRepositoryCreationTemplate / Update / Delete / Describe: one template per
// prefix (TemplateAlreadyExistsException), updates and deletes find it by prefix
// (TemplateNotFoundException), listing in prefix order.
#[tokio::test]
async fn templates_are_created_once_updated_listed_and_deleted() {
    on_both("creation_templates_crud", |b| async move {
        let m = b.meta.as_ref();
        let t = template("team", &[AppliedFor::CreateOnPush], "IMMUTABLE", "team");
        let stored = m.create_creation_template(&t, 10).await.unwrap().unwrap();
        assert_eq!((stored.created_at, stored.updated_at), (10, 10));
        assert_eq!(stored.template, t);
        assert!(
            m.create_creation_template(&t, 11).await.unwrap().is_none(),
            "{}: a second template with one prefix",
            b.name
        );
        let root = template("ROOT", &[AppliedFor::Replication], "MUTABLE", "root");
        m.create_creation_template(&root, 12)
            .await
            .unwrap()
            .unwrap();
        let prefixes: Vec<String> = m
            .creation_templates()
            .await
            .unwrap()
            .into_iter()
            .map(|t| t.template.prefix)
            .collect();
        assert_eq!(prefixes, ["ROOT", "team"], "{}", b.name);

        let mut changed = t.clone();
        changed.description = Some("now".into());
        let u = m
            .update_creation_template(&changed, 20)
            .await
            .unwrap()
            .unwrap();
        assert_eq!((u.created_at, u.updated_at), (10, 20));
        assert_eq!(u.template.description.as_deref(), Some("now"));
        let missing = template("none", &[AppliedFor::CreateOnPush], "MUTABLE", "x");
        assert!(m
            .update_creation_template(&missing, 20)
            .await
            .unwrap()
            .is_none());

        let d = m.delete_creation_template("team").await.unwrap().unwrap();
        assert_eq!(d.template, changed);
        assert!(m.delete_creation_template("team").await.unwrap().is_none());
        assert_eq!(m.creation_templates().await.unwrap().len(), 1);
    })
    .await;
}

// ECR_REFERENCE §2.7: the longest matching prefix among the templates applied for the
// kind of creation wins, ROOT is the fallback; settings apply in the creating
// transaction, and only at creation.
#[tokio::test]
async fn a_created_repository_gets_the_template_of_its_kind_of_creation() {
    on_both("creation_templates_apply", |b| async move {
        let m = b.meta.as_ref();
        use AppliedFor::*;
        let mut team = template("team", &[CreateOnPush], "IMMUTABLE_WITH_EXCLUSION", "team");
        team.lifecycle_policy = Some(LIFECYCLE.into());
        for t in [
            template("ROOT", &[CreateOnPush, Replication], "IMMUTABLE", "root"),
            team,
            template("team/sub", &[Replication], "MUTABLE_WITH_EXCLUSION", "sub"),
            template("cache", &[PullThroughCache], "IMMUTABLE", "cache"),
        ] {
            m.create_creation_template(&t, 1).await.unwrap().unwrap();
        }

        // A push (no task-local): CREATE_ON_PUSH; `team/sub/x` falls to `team`, as
        // `team/sub` is for replication only.
        m.create_repository(&repo("team/sub/x")).await.unwrap();
        let (mode, tags) = settings(m, "team/sub/x").await;
        assert_eq!(mode, TagMutability::ImmutableWithExclusion, "{}", b.name);
        assert_eq!(tags, [("from".to_string(), "team".to_string())]);
        let r = m.repository(&repo("team/sub/x")).await.unwrap().unwrap();
        assert_eq!(r.settings.tags.exclusion_filters, ["dev-*"]);
        assert_eq!(
            m.lifecycle_policy(&repo("team/sub/x")).await.unwrap().unwrap().text,
            LIFECYCLE
        );
        m.create_repository(&repo("elsewhere")).await.unwrap();
        assert_eq!(settings(m, "elsewhere").await.0, TagMutability::Immutable);

        // Replication: REPLICATION templates.
        berth_meta::changes::REPLICATED_FROM
            .scope("us-west-2/222222222222".into(), async {
                m.create_repository(&repo("team/sub/y")).await.unwrap();
                m.create_repository(&repo("team/z")).await.unwrap();
            })
            .await;
        assert_eq!(
            settings(m, "team/sub/y").await,
            (
                TagMutability::MutableWithExclusion,
                vec![("from".to_string(), "sub".to_string())]
            ),
            "{}",
            b.name
        );
        assert_eq!(settings(m, "team/z").await.1, [("from".to_string(), "root".to_string())]);
        assert!(m.lifecycle_policy(&repo("team/z")).await.unwrap().is_none());

        // The pull-through cache: PULL_THROUGH_CACHE templates only; none for `other`.
        PULL_THROUGH_CACHE
            .scope((), async {
                m.create_repository(&repo("cache/library/alpine")).await.unwrap();
                m.create_repository(&repo("other/alpine")).await.unwrap();
            })
            .await;
        assert_eq!(settings(m, "cache/library/alpine").await.0, TagMutability::Immutable);
        assert_eq!(settings(m, "other/alpine").await, (TagMutability::Mutable, vec![]));

        // A creating write that fails creates nothing: the manifest references a blob
        // the repository lacks, and the repository (with its template) is rolled back.
        let body = br#"{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a","size":2},"layers":[]}"#;
        let parsed =
            ParsedManifest::parse("application/vnd.oci.image.manifest.v1+json", body).unwrap();
        let e = m
            .put_manifest(
                &repo("team/failed"),
                &Digest::sha256_of(body),
                &parsed,
                body,
                None,
                true,
                &NoJobs,
            )
            .await
            .unwrap_err();
        assert!(matches!(e, MetaError::MissingBlobs(_)), "{e}");
        assert!(!m.repository_exists(&repo("team/failed")).await.unwrap());
    })
    .await;
}
