//! Repository creation templates' rows (issue 10, migration `0010_creation_templates.sql`)
//! and their application when the registry creates a repository by itself.
//!
//! Rows only: a template is berth-core's [`CreationTemplate`], validated by the layer
//! above and stored as its JSON under its prefix. Which template a new repository gets
//! is berth-core's [`select`]; *when* is decided here: every content write that creates a
//! repository (`ensure_repository` of both engines, used by blob links and manifest
//! pushes) reads the templates and applies the chosen one — tag mutability and its
//! filters, encryption settings, resource tags, repository policy (bumping the identity
//! generation, as every identity write does) and lifecycle policy — in the transaction
//! that inserts the repository row, so a repository never exists without its template's
//! settings, and a failed push leaves neither. The kind of creation is
//! [`creation_kind`]: `REPLICATION` while serving another registry's replication
//! ([`crate::changes::REPLICATED_FROM`]), `PULL_THROUGH_CACHE` inside
//! [`PULL_THROUGH_CACHE`]'s scope, else `CREATE_ON_PUSH`. Repositories created through
//! the ECR API's `CreateRepository` take their settings from the request, not a
//! template (as ECR).

use crate::Result;
use berth_core::creation_template::{select, AppliedFor, CreationTemplate};
use berth_core::RepositoryName;

/// A stored template with its timestamps (epoch seconds).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredTemplate {
    /// The template.
    pub template: CreationTemplate,
    /// When it was created.
    pub created_at: i64,
    /// When it was last updated.
    pub updated_at: i64,
}

tokio::task_local! {
    /// Set while the pull-through cache fills a repository: a repository created in
    /// this scope is created for `PULL_THROUGH_CACHE`.
    pub static PULL_THROUGH_CACHE: ();
}

/// Why a repository created by the current task is being created: replication (the
/// task serves another registry's replication), the pull-through cache, or a push.
pub fn creation_kind() -> AppliedFor {
    if crate::changes::replicated_from().is_some() {
        AppliedFor::Replication
    } else if PULL_THROUGH_CACHE.try_with(|_| ()).is_ok() {
        AppliedFor::PullThroughCache
    } else {
        AppliedFor::CreateOnPush
    }
}

/// The repository creation templates part of the metadata store.
#[async_trait::async_trait]
pub trait CreationTemplateStore: Send + Sync {
    /// Every template, in prefix order.
    async fn creation_templates(&self) -> Result<Vec<StoredTemplate>>;
    /// Stores a new template at `now`; `Ok(None)` if one with its prefix exists.
    async fn create_creation_template(
        &self,
        template: &CreationTemplate,
        now: i64,
    ) -> Result<Option<StoredTemplate>>;
    /// Replaces the template with `template.prefix` at `now`; `Ok(None)` if there is none.
    async fn update_creation_template(
        &self,
        template: &CreationTemplate,
        now: i64,
    ) -> Result<Option<StoredTemplate>>;
    /// Deletes the template with `prefix`, returning it; `Ok(None)` if there is none.
    async fn delete_creation_template(&self, prefix: &str) -> Result<Option<StoredTemplate>>;
}

/// A row (prefix, document, created, updated) as a [`StoredTemplate`].
pub(crate) fn from_row(
    (prefix, document, created_at, updated_at): (String, String, i64, i64),
) -> Result<StoredTemplate> {
    let template = serde_json::from_str(&document)
        .map_err(|e| crate::MetaError::Corrupt(format!("creation template {prefix:?}: {e}")))?;
    Ok(StoredTemplate {
        template,
        created_at,
        updated_at,
    })
}

/// The JSON stored for `template`.
pub(crate) fn document(template: &CreationTemplate) -> Result<String> {
    serde_json::to_string(template).map_err(|e| crate::MetaError::Corrupt(e.to_string()))
}

/// The template (if any) a repository named `repo`, created now by the current task,
/// gets among the stored `documents`.
pub(crate) fn chosen(
    documents: &[String],
    repo: &RepositoryName,
) -> Result<Option<CreationTemplate>> {
    let templates = documents
        .iter()
        .map(|d| {
            serde_json::from_str::<CreationTemplate>(d)
                .map_err(|e| crate::MetaError::Corrupt(format!("creation template: {e}")))
        })
        .collect::<Result<Vec<_>>>()?;
    Ok(select(&templates, creation_kind(), repo.as_str()).cloned())
}

/// Implements [`CreationTemplateStore`] for `$store` and defines `$apply`, the function
/// `ensure_repository` calls in its transaction after inserting a repository row, with
/// each engine's pools, transaction type and statements (placeholders differ, the logic
/// does not).
macro_rules! creation_template_store {
    ($store:ty, $db:ty, $reader:ident, $writer:ident, $apply:ident,
     list: $list:expr, insert: $insert:expr, update: $update:expr, delete: $delete:expr,
     docs: $docs:expr, settings: $settings:expr, tag: $tag:expr, policy: $policy:expr,
     bump: $bump:expr, lifecycle: $lifecycle:expr) => {
        #[async_trait::async_trait]
        impl $crate::creation_templates::CreationTemplateStore for $store {
            async fn creation_templates(
                &self,
            ) -> $crate::Result<Vec<$crate::creation_templates::StoredTemplate>> {
                sqlx::query_as::<_, (String, String, i64, i64)>($list)
                    .fetch_all(&self.$reader)
                    .await?
                    .into_iter()
                    .map($crate::creation_templates::from_row)
                    .collect()
            }

            async fn create_creation_template(
                &self,
                template: &berth_core::creation_template::CreationTemplate,
                now: i64,
            ) -> $crate::Result<Option<$crate::creation_templates::StoredTemplate>> {
                sqlx::query_as::<_, (String, String, i64, i64)>($insert)
                    .bind(&template.prefix)
                    .bind($crate::creation_templates::document(template)?)
                    .bind(now)
                    .fetch_optional(&self.$writer)
                    .await?
                    .map($crate::creation_templates::from_row)
                    .transpose()
            }

            async fn update_creation_template(
                &self,
                template: &berth_core::creation_template::CreationTemplate,
                now: i64,
            ) -> $crate::Result<Option<$crate::creation_templates::StoredTemplate>> {
                sqlx::query_as::<_, (String, String, i64, i64)>($update)
                    .bind($crate::creation_templates::document(template)?)
                    .bind(now)
                    .bind(&template.prefix)
                    .fetch_optional(&self.$writer)
                    .await?
                    .map($crate::creation_templates::from_row)
                    .transpose()
            }

            async fn delete_creation_template(
                &self,
                prefix: &str,
            ) -> $crate::Result<Option<$crate::creation_templates::StoredTemplate>> {
                sqlx::query_as::<_, (String, String, i64, i64)>($delete)
                    .bind(prefix)
                    .fetch_optional(&self.$writer)
                    .await?
                    .map($crate::creation_templates::from_row)
                    .transpose()
            }
        }

        /// Applies the creation template chosen for the repository `repo` (row `id`),
        /// just inserted in `tx`, inside `tx`.
        pub(crate) async fn $apply(
            tx: &mut sqlx::Transaction<'_, $db>,
            id: i64,
            repo: &berth_core::RepositoryName,
            now: i64,
        ) -> $crate::Result<()> {
            let docs: Vec<String> = sqlx::query_scalar($docs).fetch_all(&mut **tx).await?;
            let Some(t) = $crate::creation_templates::chosen(&docs, repo)? else {
                return Ok(());
            };
            let rules = t.tag_rules();
            let encryption = t.encryption_configuration.clone().unwrap_or_else(|| {
                berth_core::creation_template::TemplateEncryption {
                    encryption_type: "AES256".into(),
                    kms_key: None,
                }
            });
            sqlx::query($settings)
                .bind(rules.mode.as_str())
                .bind(serde_json::Value::from(rules.exclusion_filters).to_string())
                .bind(&encryption.encryption_type)
                .bind(encryption.kms_key.as_deref())
                .bind(id)
                .execute(&mut **tx)
                .await?;
            for tag in &t.resource_tags {
                sqlx::query($tag)
                    .bind(id)
                    .bind(&tag.key)
                    .bind(&tag.value)
                    .execute(&mut **tx)
                    .await?;
            }
            if let Some(policy) = &t.repository_policy {
                // The generation first: identity writers lock it before touching
                // policy rows, so taking locks in the same order cannot deadlock.
                sqlx::query($bump).execute(&mut **tx).await?;
                sqlx::query($policy)
                    .bind(repo.as_str())
                    .bind(policy)
                    .bind(now)
                    .execute(&mut **tx)
                    .await?;
            }
            if let Some(lifecycle) = &t.lifecycle_policy {
                sqlx::query($lifecycle)
                    .bind(id)
                    .bind(lifecycle)
                    .bind(now)
                    .execute(&mut **tx)
                    .await?;
            }
            Ok(())
        }
    };
}
pub(crate) use creation_template_store;
