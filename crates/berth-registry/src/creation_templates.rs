//! Repository creation templates (issue 10; ECR CreateRepositoryCreationTemplate and
//! friends): stored through berth-meta's `CreationTemplateStore`, chosen by berth-core's
//! `creation_template::select` and applied by the metadata store inside the transaction
//! that creates a repository on push, by replication or by the pull-through cache
//! (`berth_meta::creation_templates`). The ECR adapter validates each member against the
//! model (and the repository policy against IAM's rules) before calling these.

use crate::{Registry, RegistryError, Result};
use berth_core::creation_template::CreationTemplate;
use berth_core::lifecycle::LifecyclePolicy;
pub use berth_meta::creation_templates::StoredTemplate;

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

/// The checks of the template's members that are the registry's: a lifecycle policy
/// must parse with ECR's lifecycle rules.
fn check(template: &CreationTemplate) -> Result<()> {
    if let Some(text) = &template.lifecycle_policy {
        LifecyclePolicy::parse(text).map_err(|e| RegistryError::LifecyclePolicyInvalid(e.0))?;
    }
    Ok(())
}

impl Registry {
    /// Every template, in prefix order.
    pub async fn creation_templates(&self) -> Result<Vec<StoredTemplate>> {
        Ok(self.meta.creation_templates().await?)
    }

    /// Stores a new template. Errors: [`RegistryError::TemplateAlreadyExists`],
    /// [`RegistryError::LifecyclePolicyInvalid`].
    pub async fn create_creation_template(
        &self,
        template: &CreationTemplate,
    ) -> Result<StoredTemplate> {
        check(template)?;
        self.meta
            .create_creation_template(template, now())
            .await?
            .ok_or_else(|| RegistryError::TemplateAlreadyExists(template.prefix.clone()))
    }

    /// Changes the template with `prefix` by `change` (members the request gives replace
    /// the stored ones). Errors: [`RegistryError::TemplateNotFound`],
    /// [`RegistryError::LifecyclePolicyInvalid`].
    pub async fn update_creation_template(
        &self,
        prefix: &str,
        change: impl FnOnce(&mut CreationTemplate),
    ) -> Result<StoredTemplate> {
        let not_found = || RegistryError::TemplateNotFound(prefix.to_string());
        let mut template = self
            .meta
            .creation_templates()
            .await?
            .into_iter()
            .find(|t| t.template.prefix == prefix)
            .ok_or_else(not_found)?
            .template;
        change(&mut template);
        template.prefix = prefix.to_string();
        check(&template)?;
        self.meta
            .update_creation_template(&template, now())
            .await?
            .ok_or_else(not_found)
    }

    /// Deletes the template with `prefix`, returning it.
    /// Errors: [`RegistryError::TemplateNotFound`].
    pub async fn delete_creation_template(&self, prefix: &str) -> Result<StoredTemplate> {
        self.meta
            .delete_creation_template(prefix)
            .await?
            .ok_or_else(|| RegistryError::TemplateNotFound(prefix.to_string()))
    }
}
