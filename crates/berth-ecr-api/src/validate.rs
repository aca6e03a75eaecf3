//! Server-side checks of the members botocore does not check (it validates only
//! `required`, types and `min`; ECR_REFERENCE §1.1): lengths, patterns, enums and
//! ranges from the botocore model, each failing with ECR's `InvalidParameterException`
//! wording. Values that pass come out as Berth's validated types.

use crate::error::EcrError;
use berth_core::{Digest, RepositoryName, Tag};

/// The repository-name pattern as ECR prints it in errors.
pub const REPOSITORY_NAME_PATTERN: &str =
    "[a-z0-9]+((\\.|_|__|-+)[a-z0-9]+)*(/[a-z0-9]+((\\.|_|__|-+)[a-z0-9]+)*)*";
/// The `LayerDigest` pattern.
pub const LAYER_DIGEST_PATTERN: &str = "[a-zA-Z0-9-_+.]+:[a-fA-F0-9]+";
/// The tag grammar Berth serves on the data plane (distribution-spec), stricter than
/// ECR's 1–300 characters of anything.
pub const TAG_PATTERN: &str = "[a-zA-Z0-9_][a-zA-Z0-9._-]{0,127}";
/// The `ImageTagMutabilityExclusionFilterValue` pattern.
pub const EXCLUSION_FILTER_PATTERN: &str = "^[0-9a-zA-Z._*-]{1,128}$";

/// A required member.
pub fn required<T>(v: Option<T>, member: &str) -> Result<T, EcrError> {
    v.ok_or_else(|| EcrError::invalid_parameter(member, "Member must not be null"))
}

/// A string length within `min..=max` characters.
pub fn length(s: &str, member: &str, min: usize, max: usize) -> Result<(), EcrError> {
    let n = s.chars().count();
    if n < min {
        return Err(EcrError::invalid_parameter(
            member,
            format!("Member must have length greater than or equal to {min}"),
        ));
    }
    if n > max {
        return Err(EcrError::invalid_parameter(
            member,
            format!("Member must have length less than or equal to {max}"),
        ));
    }
    Ok(())
}

/// A list length within `min..=max` items.
pub fn list<T>(v: &[T], member: &str, min: usize, max: usize) -> Result<(), EcrError> {
    if v.len() < min {
        return Err(EcrError::invalid_parameter(
            member,
            format!("Member must have length greater than or equal to {min}"),
        ));
    }
    if v.len() > max {
        return Err(EcrError::invalid_parameter(
            member,
            format!("Member must have length less than or equal to {max}"),
        ));
    }
    Ok(())
}

/// A member that must be one of `allowed`.
pub fn one_of(s: &str, member: &str, allowed: &[&str]) -> Result<(), EcrError> {
    if allowed.contains(&s) {
        Ok(())
    } else {
        Err(EcrError::invalid_parameter(
            member,
            format!(
                "Member must satisfy enum value set: [{}]",
                allowed.join(", ")
            ),
        ))
    }
}

fn pattern_error(member: &str, pattern: &str) -> EcrError {
    EcrError::invalid_parameter(
        member,
        format!("must satisfy regular expression '{pattern}'"),
    )
}

/// A repository name: 2–256 characters matching ECR's pattern.
pub fn repository_name(s: &str, member: &str) -> Result<RepositoryName, EcrError> {
    length(s, member, 2, 256)?;
    RepositoryName::parse(s).map_err(|_| pattern_error(member, REPOSITORY_NAME_PATTERN))
}

/// A required repository name.
pub fn required_repository(s: Option<&str>, member: &str) -> Result<RepositoryName, EcrError> {
    repository_name(required(s, member)?, member)
}

/// A registry ID: 12 digits.
pub fn registry_id(s: &str, member: &str) -> Result<(), EcrError> {
    if s.len() == 12 && s.bytes().all(|b| b.is_ascii_digit()) {
        Ok(())
    } else {
        Err(pattern_error(member, "[0-9]{12}"))
    }
}

/// An image tag: ECR's 1–300 characters, then the distribution-spec grammar Berth needs
/// to serve the tag on `/v2/`.
pub fn image_tag(s: &str, member: &str) -> Result<Tag, EcrError> {
    length(s, member, 1, 300)?;
    Tag::parse(s).map_err(|_| {
        EcrError::invalid_parameter(
            member,
            format!(
                "must satisfy regular expression '{TAG_PATTERN}' (Berth serves tags on the OCI \
                 Distribution API, whose grammar allows at most 128 characters)"
            ),
        )
    })
}

/// A digest (`ImageDigest` or `LayerDigest`): sha256 or sha512.
pub fn digest(s: &str, member: &str) -> Result<Digest, EcrError> {
    s.parse::<Digest>().map_err(|e| {
        EcrError::invalid_parameter(
            member,
            format!("must satisfy regular expression '{LAYER_DIGEST_PATTERN}' ({e})"),
        )
    })
}

/// `maxResults`: 1..=`max`; `default` when absent.
pub fn max_results(v: Option<i64>, member: &str, max: i64, default: u32) -> Result<u32, EcrError> {
    match v {
        None => Ok(default),
        Some(n) if n < 1 => Err(EcrError::invalid_parameter(
            member,
            "Member must have value greater than or equal to 1",
        )),
        Some(n) if n > max => Err(EcrError::invalid_parameter(
            member,
            format!("Member must have value less than or equal to {max}"),
        )),
        Some(n) => Ok(n as u32),
    }
}

/// A long that must be ≥ 0.
pub fn non_negative(v: i64, member: &str) -> Result<u64, EcrError> {
    u64::try_from(v).map_err(|_| {
        EcrError::invalid_parameter(member, "Member must have value greater than or equal to 0")
    })
}

/// A tag-mutability exclusion filter value.
pub fn exclusion_filter(s: &str, member: &str) -> Result<(), EcrError> {
    length(s, member, 1, 128)?;
    if s.bytes()
        .all(|b| b.is_ascii_alphanumeric() || b"._*-".contains(&b))
    {
        Ok(())
    } else {
        Err(pattern_error(member, EXCLUSION_FILTER_PATTERN))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_use_ecr_wording() {
        let e = repository_name("Bad", "repositoryName").unwrap_err();
        assert_eq!(
            e.kind,
            crate::error::EcrErrorType::InvalidParameterException
        );
        assert_eq!(
            e.message,
            "Invalid parameter at 'repositoryName' failed to satisfy constraint: 'must satisfy \
             regular expression '[a-z0-9]+((\\.|_|__|-+)[a-z0-9]+)*(/[a-z0-9]+((\\.|_|__|-+)[a-z0-9]+)*)*''"
        );
        let e = image_tag(&"a".repeat(301), "imageTag").unwrap_err();
        assert!(e
            .message
            .ends_with("'Member must have length less than or equal to 300'"));
        assert!(repository_name("a", "repositoryName")
            .unwrap_err()
            .message
            .contains("greater than or equal to 2"));
        assert_eq!(max_results(None, "maxResults", 1000, 100).unwrap(), 100);
        assert!(max_results(Some(1001), "maxResults", 1000, 100).is_err());
        assert!(exclusion_filter("dev-*", "filter").is_ok());
        assert!(exclusion_filter("dev/*", "filter").is_err());
    }
}
