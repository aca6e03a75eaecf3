//! Wire shapes shared by several operations (botocore model structures), separate from
//! the domain types they are built from. Members absent in the model sense are `Option`
//! and skipped when `None`.

use crate::error::{EcrError, EcrErrorType};
use crate::validate;
use crate::Ctx;
use berth_registry::{ImageRecord, RepositoryRecord, TagMutability, TagRules};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

/// Parses a request body (`{}` when empty). Malformed JSON or wrongly typed members are
/// a `SerializationException`, as in AWS's JSON services.
pub fn parse<T: serde::de::DeserializeOwned>(body: &[u8]) -> Result<T, EcrError> {
    let body = if body.iter().all(u8::is_ascii_whitespace) {
        b"{}".as_slice()
    } else {
        body
    };
    serde_json::from_slice(body).map_err(|e| {
        EcrError::new(
            EcrErrorType::SerializationException,
            format!("the request body is not a valid ECR request: {e}"),
        )
    })
}

/// `ImageIdentifier`.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct ImageId {
    /// `imageDigest`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub image_digest: Option<String>,
    /// `imageTag`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub image_tag: Option<String>,
}

/// `ImageFailure`.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ImageFailure {
    /// The identifier as given.
    pub image_id: ImageId,
    /// `ImageFailureCode`.
    pub failure_code: &'static str,
    /// Why.
    pub failure_reason: String,
}

impl ImageFailure {
    pub fn new(image_id: &ImageId, code: &'static str, reason: impl Into<String>) -> Self {
        ImageFailure {
            image_id: image_id.clone(),
            failure_code: code,
            failure_reason: reason.into(),
        }
    }
}

/// `Tag` (capitalised members).
#[derive(Debug, Clone, Deserialize)]
pub struct ResourceTag {
    #[serde(rename = "Key")]
    pub key: Option<String>,
    #[serde(rename = "Value")]
    pub value: Option<String>,
}

/// Validates resource tags: keys 1–128, values 0–256 characters
/// (`InvalidTagParameterException`).
pub fn resource_tags(tags: Vec<ResourceTag>) -> Result<Vec<(String, String)>, EcrError> {
    tags.into_iter()
        .map(|t| {
            let key = t.key.unwrap_or_default();
            let value = t.value.ok_or_else(|| {
                EcrError::new(
                    EcrErrorType::InvalidTagParameterException,
                    format!("tag '{key}' has no Value; every tag needs a Key and a Value"),
                )
            })?;
            if key.is_empty() || key.chars().count() > 128 {
                return Err(EcrError::new(
                    EcrErrorType::InvalidTagParameterException,
                    format!("tag key '{key}' must be 1 to 128 characters long"),
                ));
            }
            // AWS reserves the `aws:` prefix for its own tags.
            if key.to_ascii_lowercase().starts_with("aws:") {
                return Err(EcrError::new(
                    EcrErrorType::InvalidTagParameterException,
                    format!("tag key '{key}' uses the reserved prefix 'aws:'"),
                ));
            }
            if value.chars().count() > 256 {
                return Err(EcrError::new(
                    EcrErrorType::InvalidTagParameterException,
                    format!("the value of tag '{key}' must be at most 256 characters long"),
                ));
            }
            Ok((key, value))
        })
        .collect()
}

/// `ImageTagMutabilityExclusionFilter`.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ExclusionFilter {
    pub filter_type: Option<String>,
    pub filter: Option<String>,
}

/// Validates `imageTagMutability` with its `imageTagMutabilityExclusionFilters` (1–5
/// filters, required for the `*_WITH_EXCLUSION` modes and refused for the others).
pub fn tag_rules(
    mode: Option<&str>,
    filters: Option<Vec<ExclusionFilter>>,
) -> Result<TagRules, EcrError> {
    let names: Vec<&str> = TagMutability::ALL.iter().map(|m| m.as_str()).collect();
    let mode = match mode {
        None => TagMutability::Mutable,
        Some(m) => {
            validate::one_of(m, "imageTagMutability", &names)?;
            TagMutability::parse(m).unwrap_or_default()
        }
    };
    let filters = filters.unwrap_or_default();
    let member = "imageTagMutabilityExclusionFilters";
    if mode.takes_filters() {
        validate::list(&filters, member, 1, 5)?;
    } else if !filters.is_empty() {
        return Err(EcrError::invalid_parameter(
            member,
            format!(
                "exclusion filters can only be used with IMMUTABLE_WITH_EXCLUSION or \
                 MUTABLE_WITH_EXCLUSION, not {}",
                mode.as_str()
            ),
        ));
    }
    let mut exclusion_filters = Vec::with_capacity(filters.len());
    for f in filters {
        let t = validate::required(f.filter_type.as_deref(), "filterType")?;
        validate::one_of(t, "filterType", &["WILDCARD"])?;
        let v = validate::required(f.filter, "filter")?;
        validate::exclusion_filter(&v, "filter")?;
        exclusion_filters.push(v);
    }
    Ok(TagRules {
        mode,
        exclusion_filters,
    })
}

/// The filters of `rules` on the wire; `None` when there are none.
pub fn filters_json(rules: &TagRules) -> Option<Value> {
    (!rules.exclusion_filters.is_empty()).then(|| {
        rules
            .exclusion_filters
            .iter()
            .map(|f| json!({"filterType": "WILDCARD", "filter": f}))
            .collect()
    })
}

/// Inserts `value` under `key` unless it is `None`.
pub fn put_opt(obj: &mut Value, key: &str, value: Option<impl Into<Value>>) {
    if let (Some(v), Some(map)) = (value, obj.as_object_mut()) {
        map.insert(key.to_string(), v.into());
    }
}

impl Ctx<'_> {
    /// The `Repository` structure.
    pub fn repository_json(&self, r: &RepositoryRecord) -> Value {
        let s = &r.settings;
        let mut enc = json!({"encryptionType": s.encryption.encryption_type});
        put_opt(&mut enc, "kmsKey", s.encryption.kms_key.clone());
        let mut v = json!({
            "repositoryArn": self.iam.repository_arn(r.name.as_str()),
            "registryId": self.account(),
            "repositoryName": r.name.as_str(),
            "repositoryUri": format!("{}/{}", self.host, r.name),
            "createdAt": r.created_at,
            "imageTagMutability": s.tags.mode.as_str(),
            "imageScanningConfiguration": {"scanOnPush": s.scan_on_push},
            "encryptionConfiguration": enc,
        });
        put_opt(
            &mut v,
            "imageTagMutabilityExclusionFilters",
            filters_json(&s.tags),
        );
        v
    }

    /// The `ImageDetail` structure.
    pub fn image_detail_json(&self, repo: &str, i: &ImageRecord) -> Value {
        let mut v = json!({
            "registryId": self.account(),
            "repositoryName": repo,
            "imageDigest": i.digest.to_string(),
            "imageSizeInBytes": i.size,
            "imagePushedAt": i.pushed_at,
            "imageManifestMediaType": i.media_type,
            "imageStatus": "ACTIVE",
        });
        if !i.tags.is_empty() {
            put_opt(
                &mut v,
                "imageTags",
                Some(i.tags.iter().map(|t| t.as_str()).collect::<Vec<_>>()),
            );
        }
        put_opt(&mut v, "artifactMediaType", i.artifact_type.clone());
        put_opt(&mut v, "lastRecordedPullTime", i.last_pulled_at);
        put_opt(
            &mut v,
            "subjectManifestDigest",
            i.subject.as_ref().map(|d| d.to_string()),
        );
        v
    }
}
