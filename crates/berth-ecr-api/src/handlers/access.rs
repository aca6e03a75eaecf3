//! GetAuthorizationToken, the repository and registry policy operations, and
//! thin calls into `berth-iam`.

use super::registry_error;
use crate::error::{EcrError, EcrErrorType};
use crate::wire::parse;
use crate::{validate, Ctx};
use berth_core::RepositoryName;
use berth_iam::IamError;
use serde::Deserialize;
use serde_json::{json, Value};

/// A refused policy in ECR's words (`Invalid parameter at 'PolicyText' failed to satisfy
/// constraint: 'Invalid repository policy provided'`, issue 17), followed by what is wrong
/// with it. `kind` is `repository` or `registry`.
fn policy_error(kind: &str, e: IamError) -> EcrError {
    match e {
        IamError::InvalidPolicy(m) => EcrError::new(
            EcrErrorType::InvalidParameterException,
            format!(
                "Invalid parameter at 'PolicyText' failed to satisfy constraint: \
                 'Invalid {kind} policy provided': {m}"
            ),
        ),
        e => iam_error(e),
    }
}

fn iam_error(e: IamError) -> EcrError {
    match e {
        IamError::Invalid(m)
        | IamError::InvalidPolicy(m)
        | IamError::NotFound(m)
        | IamError::AlreadyExists(m) => EcrError::new(EcrErrorType::InvalidParameterException, m),
        e => EcrError::server(e),
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct TokenRequest {
    registry_ids: Option<Vec<String>>,
}

pub(super) async fn authorization_token(ctx: &Ctx<'_>, body: &[u8]) -> Result<Value, EcrError> {
    let r: TokenRequest = parse(body)?;
    let ids = r.registry_ids.unwrap_or_default();
    if !ids.is_empty() {
        validate::list(&ids, "registryIds", 1, 10)?;
    }
    for id in &ids {
        ctx.check_registry(Some(id))?;
    }
    ctx.authorize("*").await?;
    let token = ctx
        .iam
        .authorization_token(&ctx.caller)
        .await
        .map_err(iam_error)?;
    // The deprecated registryIds get one entry each; the token is the same for all.
    let data: Vec<Value> = (0..ids.len().max(1))
        .map(|_| {
            json!({
                "authorizationToken": token.token,
                "expiresAt": token.expires_at.unix_timestamp(),
                "proxyEndpoint": format!("{}://{}", ctx.scheme, ctx.host),
            })
        })
        .collect();
    Ok(json!({ "authorizationData": data }))
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct PolicyRequest {
    registry_id: Option<String>,
    repository_name: Option<String>,
    policy_text: Option<String>,
    #[allow(dead_code)] // accepted; Berth never refuses a policy for locking out its setter
    force: Option<bool>,
}

/// Validates the request and authorises it on the repository, then checks that the
/// repository exists (after authorising, so a denied caller learns nothing).
async fn repository(ctx: &Ctx<'_>, r: &PolicyRequest) -> Result<RepositoryName, EcrError> {
    ctx.check_registry(r.registry_id.as_deref())?;
    let name = validate::required_repository(r.repository_name.as_deref(), "repositoryName")?;
    if let Some(p) = &r.policy_text {
        validate::length(p, "policyText", 0, 10240)?;
    }
    ctx.authorize_repo(&name).await?;
    ctx.registry
        .repository(&name)
        .await
        .map_err(|e| registry_error(ctx, name.as_str(), e))?;
    Ok(name)
}

fn repository_policy_not_found(ctx: &Ctx<'_>, name: &RepositoryName) -> EcrError {
    EcrError::new(EcrErrorType::RepositoryPolicyNotFoundException,
        format!(
            "Repository policy does not exist for the repository with name '{name}' in the registry with id '{}'",
            ctx.account()
        ),
    )
}

fn repository_policy(ctx: &Ctx<'_>, name: &RepositoryName, text: String) -> Value {
    json!({"registryId": ctx.account(), "repositoryName": name.as_str(), "policyText": text})
}

pub(super) async fn set_repository_policy(ctx: &Ctx<'_>, body: &[u8]) -> Result<Value, EcrError> {
    let r: PolicyRequest = parse(body)?;
    let text = validate::required(r.policy_text.clone(), "policyText")?;
    let name = repository(ctx, &r).await?;
    ctx.iam
        .set_repository_policy(name.as_str(), &text)
        .await
        .map_err(|e| policy_error("repository", e))?;
    Ok(repository_policy(ctx, &name, text))
}

pub(super) async fn get_repository_policy(ctx: &Ctx<'_>, body: &[u8]) -> Result<Value, EcrError> {
    let r: PolicyRequest = parse(body)?;
    let name = repository(ctx, &r).await?;
    match ctx
        .iam
        .get_repository_policy(name.as_str())
        .await
        .map_err(iam_error)?
    {
        Some(text) => Ok(repository_policy(ctx, &name, text)),
        None => Err(repository_policy_not_found(ctx, &name)),
    }
}

pub(super) async fn delete_repository_policy(
    ctx: &Ctx<'_>,
    body: &[u8],
) -> Result<Value, EcrError> {
    let r: PolicyRequest = parse(body)?;
    let name = repository(ctx, &r).await?;
    match ctx
        .iam
        .delete_repository_policy(name.as_str())
        .await
        .map_err(iam_error)?
    {
        Some(text) => Ok(repository_policy(ctx, &name, text)),
        None => Err(repository_policy_not_found(ctx, &name)),
    }
}

fn registry_policy_not_found(ctx: &Ctx<'_>) -> EcrError {
    EcrError::new(
        EcrErrorType::RegistryPolicyNotFoundException,
        format!(
            "Registry policy does not exist in the registry with id '{}'",
            ctx.account()
        ),
    )
}

fn registry_policy(ctx: &Ctx<'_>, text: String) -> Value {
    json!({"registryId": ctx.account(), "policyText": text})
}

pub(super) async fn put_registry_policy(ctx: &Ctx<'_>, body: &[u8]) -> Result<Value, EcrError> {
    let r: PolicyRequest = parse(body)?;
    let text = validate::required(r.policy_text, "policyText")?;
    validate::length(&text, "policyText", 0, 10240)?;
    ctx.authorize("*").await?;
    ctx.iam
        .put_registry_policy(&text)
        .await
        .map_err(|e| policy_error("registry", e))?;
    Ok(registry_policy(ctx, text))
}

pub(super) async fn get_registry_policy(ctx: &Ctx<'_>, body: &[u8]) -> Result<Value, EcrError> {
    let _: Value = parse(body)?;
    ctx.authorize("*").await?;
    match ctx.iam.get_registry_policy().await.map_err(iam_error)? {
        Some(text) => Ok(registry_policy(ctx, text)),
        None => Err(registry_policy_not_found(ctx)),
    }
}

pub(super) async fn delete_registry_policy(ctx: &Ctx<'_>, body: &[u8]) -> Result<Value, EcrError> {
    let _: Value = parse(body)?;
    ctx.authorize("*").await?;
    match ctx.iam.delete_registry_policy().await.map_err(iam_error)? {
        Some(text) => Ok(registry_policy(ctx, text)),
        None => Err(registry_policy_not_found(ctx)),
    }
}
