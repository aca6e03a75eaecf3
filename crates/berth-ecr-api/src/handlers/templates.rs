//! CreateRepositoryCreationTemplate, DescribeRepositoryCreationTemplates,
//! UpdateRepositoryCreationTemplate and DeleteRepositoryCreationTemplate (issue 10;
//! ECR_REFERENCE §2.7): members validated as botocore's model says (lengths, patterns,
//! enums), the repository policy with IAM's rules, the lifecycle policy with ECR's
//! lifecycle grammar; then thin calls into `berth_registry::creation_templates`.
//! Authorised on the registry's repositories (`…:repository/*`), as the template names
//! repositories that do not exist yet.

use super::registry_error;
use super::repositories::{encryption, EncryptionConfiguration};
use crate::error::{EcrError, EcrErrorType};
use crate::wire::{self, parse, ExclusionFilter, ResourceTag};
use crate::{page, validate, Ctx};
use berth_core::creation_template::{
    normalize_prefix, AppliedFor, CreationTemplate, TemplateEncryption, TemplateExclusionFilter,
    TemplateTag,
};
use berth_registry::creation_templates::StoredTemplate;
use serde::Deserialize;
use serde_json::{json, Value};

/// `RepositoryTemplateDescription`: at most 256 characters.
const DESCRIPTION_MAX: usize = 256;
/// `LifecyclePolicyTextForRepositoryCreationTemplate`: at most 30,720 characters.
const LIFECYCLE_MAX: usize = 30_720;
/// `CustomRoleArn`: at most 2,048 characters.
const ROLE_MAX: usize = 2_048;

/// The input of Create and Update (Update's `appliedFor` is optional).
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct TemplateRequest {
    prefix: Option<String>,
    description: Option<String>,
    encryption_configuration: Option<EncryptionConfiguration>,
    resource_tags: Option<Vec<ResourceTag>>,
    image_tag_mutability: Option<String>,
    image_tag_mutability_exclusion_filters: Option<Vec<ExclusionFilter>>,
    repository_policy: Option<String>,
    lifecycle_policy: Option<String>,
    applied_for: Option<Vec<String>>,
    custom_role_arn: Option<String>,
}

/// The validated members a request gives; `None` where the request is silent.
struct Members {
    prefix: String,
    description: Option<String>,
    encryption: Option<TemplateEncryption>,
    resource_tags: Option<Vec<TemplateTag>>,
    tag_mutability: Option<(String, Vec<TemplateExclusionFilter>)>,
    repository_policy: Option<String>,
    lifecycle_policy: Option<String>,
    applied_for: Option<Vec<AppliedFor>>,
    custom_role_arn: Option<String>,
}

/// `prefix`: ROOT or a name prefix (model pattern), 1–256 characters.
fn prefix(p: Option<&str>) -> Result<String, EcrError> {
    let p = validate::required(p, "prefix")?;
    normalize_prefix(p).map_err(|e| EcrError::invalid_parameter("prefix", e.to_string()))
}

fn applied_for(list: Vec<String>) -> Result<Vec<AppliedFor>, EcrError> {
    let names: Vec<&str> = AppliedFor::ALL.iter().map(|a| a.as_str()).collect();
    validate::list(&list, "appliedFor", 1, names.len())?;
    let mut out = Vec::new();
    for a in &list {
        validate::one_of(a, "appliedFor", &names)?;
        let a = AppliedFor::parse(a).unwrap_or(AppliedFor::CreateOnPush);
        if !out.contains(&a) {
            out.push(a);
        }
    }
    Ok(out)
}

async fn members(ctx: &Ctx<'_>, r: TemplateRequest) -> Result<Members, EcrError> {
    let prefix = prefix(r.prefix.as_deref())?;
    if let Some(d) = &r.description {
        validate::length(d, "description", 0, DESCRIPTION_MAX)?;
    }
    let tag_mutability =
        if r.image_tag_mutability.is_some() || r.image_tag_mutability_exclusion_filters.is_some() {
            let rules = wire::tag_rules(
                r.image_tag_mutability.as_deref(),
                r.image_tag_mutability_exclusion_filters,
            )?;
            let filters = rules
                .exclusion_filters
                .into_iter()
                .map(|filter| TemplateExclusionFilter {
                    filter_type: "WILDCARD".into(),
                    filter,
                })
                .collect();
            Some((rules.mode.as_str().to_string(), filters))
        } else {
            None
        };
    let resource_tags = match r.resource_tags {
        Some(tags) => Some(
            // A template's tags go onto every repository made from it: the same limit
            // as CreateRepository's (ECR: 50 per repository).
            wire::resource_tags(tags)
                .and_then(|t| {
                    if t.len() > 50 {
                        Err(EcrError::new(
                            EcrErrorType::TooManyTagsException,
                            format!(
                                "{} tags given; a repository (and so a template) may have at most 50",
                                t.len()
                            ),
                        ))
                    } else {
                        Ok(t)
                    }
                })?
                .into_iter()
                .map(|(key, value)| TemplateTag { key, value })
                .collect(),
        ),
        None => None,
    };
    if let Some(p) = &r.repository_policy {
        ctx.iam
            .check_repository_policy(p)
            .await
            .map_err(|e| EcrError::invalid_parameter("repositoryPolicy", e.to_string()))?;
    }
    if let Some(l) = &r.lifecycle_policy {
        validate::length(l, "lifecyclePolicy", 0, LIFECYCLE_MAX)?;
    }
    if let Some(a) = &r.custom_role_arn {
        validate::length(a, "customRoleArn", 0, ROLE_MAX)?;
    }
    Ok(Members {
        prefix,
        description: r.description,
        encryption: r
            .encryption_configuration
            .map(|e| {
                encryption(Some(e)).map(|e| TemplateEncryption {
                    encryption_type: e.encryption_type,
                    kms_key: e.kms_key,
                })
            })
            .transpose()?,
        resource_tags,
        tag_mutability,
        // ECR treats an empty policy text as none.
        repository_policy: r.repository_policy.filter(|p| !p.is_empty()),
        lifecycle_policy: r.lifecycle_policy.filter(|p| !p.is_empty()),
        applied_for: r.applied_for.map(applied_for).transpose()?,
        custom_role_arn: r.custom_role_arn.filter(|a| !a.is_empty()),
    })
}

impl Members {
    /// Writes every member the request gave into `t`.
    fn apply(self, t: &mut CreationTemplate) {
        if let Some(d) = self.description {
            t.description = Some(d);
        }
        if let Some(e) = self.encryption {
            t.encryption_configuration = Some(e);
        }
        if let Some(tags) = self.resource_tags {
            t.resource_tags = tags;
        }
        if let Some((mode, filters)) = self.tag_mutability {
            t.image_tag_mutability = Some(mode);
            t.image_tag_mutability_exclusion_filters = filters;
        }
        if let Some(p) = self.repository_policy {
            t.repository_policy = Some(p);
        }
        if let Some(l) = self.lifecycle_policy {
            t.lifecycle_policy = Some(l);
        }
        if let Some(a) = self.applied_for {
            t.applied_for = a;
        }
        if let Some(a) = self.custom_role_arn {
            t.custom_role_arn = Some(a);
        }
    }
}

/// A stored template on the wire (`RepositoryCreationTemplate`), with ECR's defaults for
/// members never set (mutable tags, AES256).
fn template_json(t: &StoredTemplate) -> Value {
    let mut v = serde_json::to_value(&t.template).unwrap_or_else(|_| json!({}));
    if let Some(obj) = v.as_object_mut() {
        obj.entry("imageTagMutability").or_insert(json!("MUTABLE"));
        obj.entry("encryptionConfiguration")
            .or_insert(json!({"encryptionType": "AES256"}));
        obj.insert("createdAt".into(), json!(t.created_at));
        obj.insert("updatedAt".into(), json!(t.updated_at));
    }
    v
}

fn answer(ctx: &Ctx<'_>, t: &StoredTemplate) -> Value {
    json!({
        "registryId": ctx.account(),
        "repositoryCreationTemplate": template_json(t),
    })
}

/// Authorises the operation on the registry's repositories.
async fn authorize(ctx: &Ctx<'_>) -> Result<(), EcrError> {
    ctx.authorize(&ctx.iam.repository_arn("*")).await
}

pub(super) async fn create(ctx: &Ctx<'_>, body: &[u8]) -> Result<Value, EcrError> {
    let r: TemplateRequest = parse(body)?;
    validate::required(r.applied_for.as_ref(), "appliedFor")?;
    let m = members(ctx, r).await?;
    authorize(ctx).await?;
    let mut template = CreationTemplate::new(&m.prefix, &[]);
    m.apply(&mut template);
    let stored = ctx
        .registry
        .create_creation_template(&template)
        .await
        .map_err(|e| registry_error(ctx, "", e))?;
    Ok(answer(ctx, &stored))
}

pub(super) async fn update(ctx: &Ctx<'_>, body: &[u8]) -> Result<Value, EcrError> {
    let r: TemplateRequest = parse(body)?;
    let m = members(ctx, r).await?;
    authorize(ctx).await?;
    let prefix = m.prefix.clone();
    let stored = ctx
        .registry
        .update_creation_template(&prefix, |t| m.apply(t))
        .await
        .map_err(|e| registry_error(ctx, "", e))?;
    Ok(answer(ctx, &stored))
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct DeleteRequest {
    prefix: Option<String>,
}

pub(super) async fn delete(ctx: &Ctx<'_>, body: &[u8]) -> Result<Value, EcrError> {
    let r: DeleteRequest = parse(body)?;
    let prefix = prefix(r.prefix.as_deref())?;
    authorize(ctx).await?;
    let stored = ctx
        .registry
        .delete_creation_template(&prefix)
        .await
        .map_err(|e| registry_error(ctx, "", e))?;
    Ok(answer(ctx, &stored))
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct DescribeRequest {
    prefixes: Option<Vec<String>>,
    next_token: Option<String>,
    max_results: Option<i64>,
}

pub(super) async fn describe(ctx: &Ctx<'_>, body: &[u8]) -> Result<Value, EcrError> {
    let r: DescribeRequest = parse(body)?;
    let limit = validate::max_results(r.max_results, "maxResults", 1000, page::DEFAULT_PAGE)?;
    let wanted = r
        .prefixes
        .map(|ps| {
            ps.iter()
                .map(|p| prefix(Some(p)))
                .collect::<Result<Vec<_>, _>>()
        })
        .transpose()?;
    let after = match &r.next_token {
        Some(t) => Some(page::decode(t, "creation-templates", 1)?.remove(0)),
        None => None,
    };
    authorize(ctx).await?;
    let all = ctx
        .registry
        .creation_templates()
        .await
        .map_err(|e| registry_error(ctx, "", e))?;
    let mut matching = all.iter().filter(|t| {
        wanted
            .as_ref()
            .is_none_or(|w| w.contains(&t.template.prefix))
            && after.as_ref().is_none_or(|a| t.template.prefix > *a)
    });
    let out: Vec<&StoredTemplate> = matching.by_ref().take(limit as usize).collect();
    let mut v = json!({
        "registryId": ctx.account(),
        "repositoryCreationTemplates": out.iter().map(|t| template_json(t)).collect::<Vec<_>>(),
    });
    if matching.next().is_some() {
        if let Some(last) = out.last() {
            v["nextToken"] = json!(page::encode("creation-templates", &[&last.template.prefix]));
        }
    }
    Ok(v)
}
