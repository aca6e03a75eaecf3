//! ECR's registry replication configuration (issue 9; botocore `ReplicationConfiguration`,
//! ECR_REFERENCE.md §2.5): the shapes as the wire carries them, validation with ECR's
//! limits, and which destinations a repository's pushes go to.
//!
//! [`ReplicationConfiguration::parse`] takes the `replicationConfiguration` member of
//! `PutReplicationConfiguration` as JSON and checks what ECR checks on the server:
//! at most 10 rules, at most 25 distinct destinations over all rules, 1–100
//! `PREFIX_MATCH` filters per rule when the member is present, filter values by the
//! model's pattern (a `*` is refused with its own message: prefixes take no
//! wildcards), regions and registry IDs by their patterns, and no destination equal
//! to the source registry in its own region. Errors carry the ECR error type and
//! ECR's `Invalid parameter at '<member>' failed to satisfy constraint: '…'` wording.
//! Pure: no I/O, never panics (fuzzed as `replication_config`).

use serde::{Deserialize, Serialize};

/// At most this many rules (ECR's quota; the model allows 25).
pub const MAX_RULES: usize = 10;
/// At most this many distinct destinations over all rules (ECR's quota).
pub const MAX_DESTINATIONS: usize = 25;
/// At most this many repository filters per rule (botocore model).
pub const MAX_FILTERS: usize = 100;

/// `ReplicationConfiguration`: the registry's replication rules.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ReplicationConfiguration {
    /// `rules` (0–10).
    pub rules: Vec<ReplicationRule>,
}

/// `ReplicationRule`: where matching repositories' pushes go.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ReplicationRule {
    /// `destinations`.
    pub destinations: Vec<ReplicationDestination>,
    /// `repositoryFilters` (absent: every repository).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub repository_filters: Option<Vec<RepositoryFilter>>,
    /// `deleteReplication` (absent: deletes are not replicated).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delete_replication: Option<DeleteReplication>,
}

/// `ReplicationDestination`: one registry in one region.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ReplicationDestination {
    /// `region`, e.g. `eu-west-1`.
    pub region: String,
    /// `registryId`: the destination registry's 12-digit account ID.
    pub registry_id: String,
}

/// `RepositoryFilter`: a repository-name prefix.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RepositoryFilter {
    /// `filter`: the prefix.
    pub filter: String,
    /// `filterType`: only `PREFIX_MATCH`.
    pub filter_type: String,
}

/// `DeleteReplication`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct DeleteReplication {
    /// `enabled`: whether deletions and tag removals are replicated.
    pub enabled: bool,
}

/// Which ECR error a configuration error is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConfigErrorKind {
    /// `InvalidParameterException`.
    InvalidParameter,
    /// `ValidationException`.
    Validation,
}

/// A configuration ECR would refuse: the error type and its message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct ReplicationConfigError {
    /// The ECR error type.
    pub kind: ConfigErrorKind,
    /// The message, in ECR's wording.
    pub message: String,
}

fn invalid(member: &str, constraint: impl std::fmt::Display) -> ReplicationConfigError {
    ReplicationConfigError {
        kind: ConfigErrorKind::InvalidParameter,
        message: format!(
            "Invalid parameter at '{member}' failed to satisfy constraint: '{constraint}'"
        ),
    }
}

/// The `RepositoryFilterValue` pattern of the botocore model.
pub const FILTER_PATTERN: &str = "^(?:[a-z0-9]+(?:[._-][a-z0-9]*)*/)*[a-z0-9]*(?:[._-][a-z0-9]*)*$";

/// Whether `s` matches [`FILTER_PATTERN`]: segments separated by `/`, each of
/// `[a-z0-9._-]`, every one but the last non-empty and starting with `[a-z0-9]`.
fn filter_matches_pattern(s: &str) -> bool {
    let segments: Vec<&str> = s.split('/').collect();
    let last = segments.len() - 1;
    segments.iter().enumerate().all(|(i, seg)| {
        let chars_ok = seg
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"._-".contains(&b));
        let start_ok = i == last
            || seg
                .bytes()
                .next()
                .is_some_and(|b| b.is_ascii_lowercase() || b.is_ascii_digit());
        chars_ok && start_ok
    })
}

fn region_ok(s: &str) -> bool {
    (2..=25).contains(&s.len())
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
}

fn registry_id_ok(s: &str) -> bool {
    s.len() == 12 && s.bytes().all(|b| b.is_ascii_digit())
}

impl ReplicationConfiguration {
    /// Parses and validates the `replicationConfiguration` JSON for the registry
    /// `source_registry` in `source_region`. Errors: see the module doc.
    pub fn parse(
        json: &serde_json::Value,
        source_region: &str,
        source_registry: &str,
    ) -> Result<ReplicationConfiguration, ReplicationConfigError> {
        let cfg: ReplicationConfiguration =
            serde_json::from_value(json.clone()).map_err(|e| ReplicationConfigError {
                kind: ConfigErrorKind::Validation,
                message: format!("Invalid replicationConfiguration: {e}"),
            })?;
        cfg.validate(source_region, source_registry)?;
        Ok(cfg)
    }

    /// Checks ECR's rules (module doc) on an already deserialised configuration.
    pub fn validate(
        &self,
        source_region: &str,
        source_registry: &str,
    ) -> Result<(), ReplicationConfigError> {
        if self.rules.len() > MAX_RULES {
            return Err(invalid(
                "replicationConfiguration.rules",
                format!("Member must have length less than or equal to {MAX_RULES}"),
            ));
        }
        let mut distinct = std::collections::BTreeSet::new();
        for (i, rule) in self.rules.iter().enumerate() {
            let at = format!("replicationConfiguration.rules.{}", i + 1);
            for d in &rule.destinations {
                if !region_ok(&d.region) {
                    return Err(invalid(
                        &format!("{at}.destinations.region"),
                        "Member must satisfy regular expression pattern: [0-9a-z-]{2,25}",
                    ));
                }
                if !registry_id_ok(&d.registry_id) {
                    return Err(invalid(
                        &format!("{at}.destinations.registryId"),
                        "Member must satisfy regular expression pattern: [0-9]{12}",
                    ));
                }
                if d.region == source_region && d.registry_id == source_registry {
                    return Err(ReplicationConfigError {
                        kind: ConfigErrorKind::InvalidParameter,
                        message: format!(
                            "Invalid parameter at '{at}.destinations' failed to satisfy \
                             constraint: 'Replication destination cannot be the source \
                             registry {source_registry} in its own region {source_region}'"
                        ),
                    });
                }
                distinct.insert(d.clone());
            }
            if let Some(filters) = &rule.repository_filters {
                if filters.is_empty() || filters.len() > MAX_FILTERS {
                    return Err(invalid(
                        &format!("{at}.repositoryFilters"),
                        format!("Member must have length between 1 and {MAX_FILTERS}, inclusive"),
                    ));
                }
                for f in filters {
                    let member = format!("{at}.repositoryFilters.filter");
                    if f.filter_type != "PREFIX_MATCH" {
                        return Err(invalid(
                            &format!("{at}.repositoryFilters.filterType"),
                            "Member must satisfy enum value set: [PREFIX_MATCH]",
                        ));
                    }
                    if f.filter.contains('*') {
                        return Err(invalid(
                            &member,
                            format!(
                                "Repository filter '{}' contains '*': PREFIX_MATCH filters \
                                 are repository name prefixes and take no wildcards",
                                f.filter
                            ),
                        ));
                    }
                    let n = f.filter.chars().count();
                    if !(2..=256).contains(&n) {
                        return Err(invalid(
                            &member,
                            "Member must have length between 2 and 256, inclusive",
                        ));
                    }
                    if !filter_matches_pattern(&f.filter) {
                        return Err(invalid(
                            &member,
                            format!(
                                "Member must satisfy regular expression pattern: {FILTER_PATTERN}"
                            ),
                        ));
                    }
                }
            }
        }
        if distinct.len() > MAX_DESTINATIONS {
            return Err(invalid(
                "replicationConfiguration.rules.destinations",
                format!(
                    "The replication configuration has {} distinct destinations; at most \
                     {MAX_DESTINATIONS} are allowed",
                    distinct.len()
                ),
            ));
        }
        Ok(())
    }

    /// The distinct destinations of every rule whose filters match `repository` (a
    /// rule without filters matches every repository), in order of first appearance.
    pub fn destinations_for(&self, repository: &str) -> Vec<&ReplicationDestination> {
        self.matching(repository, false)
    }

    /// The distinct destinations of every matching rule with `deleteReplication`
    /// enabled: where deletions and tag removals in `repository` are replicated.
    pub fn delete_destinations_for(&self, repository: &str) -> Vec<&ReplicationDestination> {
        self.matching(repository, true)
    }

    fn matching(&self, repository: &str, deletes: bool) -> Vec<&ReplicationDestination> {
        let mut out: Vec<&ReplicationDestination> = Vec::new();
        for rule in self
            .rules
            .iter()
            .filter(|r| !deletes || r.delete_replication.is_some_and(|d| d.enabled))
        {
            let matches = match &rule.repository_filters {
                None => true,
                Some(fs) => fs.iter().any(|f| repository.starts_with(&f.filter)),
            };
            if matches {
                for d in &rule.destinations {
                    if !out.contains(&d) {
                        out.push(d);
                    }
                }
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn cfg(v: serde_json::Value) -> Result<ReplicationConfiguration, ReplicationConfigError> {
        ReplicationConfiguration::parse(&v, "us-east-1", "111111111111")
    }

    fn dest(region: &str) -> serde_json::Value {
        json!({"region": region, "registryId": "111111111111"})
    }

    #[test]
    fn ecr_user_guide_example_parses_and_matches_prefixes() {
        let c = cfg(
            json!({"rules":[{"destinations":[dest("ap-south-1"), dest("eu-west-1")],
            "repositoryFilters":[{"filter":"myapp/","filterType":"PREFIX_MATCH"}],
            "deleteReplication":{"enabled":true}}]}),
        )
        .unwrap();
        assert_eq!(c.destinations_for("myapp/web").len(), 2);
        assert_eq!(c.delete_destinations_for("myapp/web").len(), 2);
        assert!(c.destinations_for("other/web").is_empty());
        let text = serde_json::to_value(&c).unwrap();
        assert_eq!(text["rules"][0]["deleteReplication"]["enabled"], true);
    }

    #[test]
    fn a_rule_without_filters_matches_every_repository() {
        let c = cfg(json!({"rules":[{"destinations":[dest("eu-west-1")]}]})).unwrap();
        assert_eq!(c.destinations_for("anything").len(), 1);
        // Deletes replicate only where deleteReplication is enabled.
        assert!(c.delete_destinations_for("anything").is_empty());
    }

    #[test]
    fn wildcard_filters_are_refused_with_their_own_message() {
        let e = cfg(json!({"rules":[{"destinations":[dest("eu-west-1")],
            "repositoryFilters":[{"filter":"my*","filterType":"PREFIX_MATCH"}]}]}))
        .unwrap_err();
        assert_eq!(e.kind, ConfigErrorKind::InvalidParameter);
        assert!(e.message.contains("take no wildcards"), "{}", e.message);
    }

    #[test]
    fn ecr_quotas_are_enforced() {
        let rule = json!({"destinations":[dest("eu-west-1")]});
        let e = cfg(json!({"rules": vec![rule; 11]})).unwrap_err();
        assert!(
            e.message.contains("less than or equal to 10"),
            "{}",
            e.message
        );
        let many: Vec<_> = (0..26).map(|i| dest(&format!("region-{i}"))).collect();
        let e = cfg(json!({"rules":[{"destinations": many}]})).unwrap_err();
        assert!(
            e.message.contains("26 distinct destinations"),
            "{}",
            e.message
        );
        let filters: Vec<_> = (0..101)
            .map(|i| json!({"filter": format!("p{i}"), "filterType":"PREFIX_MATCH"}))
            .collect();
        let e = cfg(json!({"rules":[{"destinations":[dest("eu-west-1")],
            "repositoryFilters": filters}]}))
        .unwrap_err();
        assert!(e.message.contains("between 1 and 100"), "{}", e.message);
    }

    #[test]
    fn the_source_itself_is_not_a_destination() {
        let e = cfg(json!({"rules":[{"destinations":[dest("us-east-1")]}]})).unwrap_err();
        assert!(
            e.message.contains("cannot be the source registry"),
            "{}",
            e.message
        );
        // Another account in the same region is a destination.
        cfg(json!({"rules":[{"destinations":[{"region":"us-east-1","registryId":"222222222222"}]}]}))
            .unwrap();
    }

    #[test]
    fn model_patterns_are_checked() {
        for bad in [
            json!({"region":"EU","registryId":"111111111111"}),
            json!({"region":"eu-west-1","registryId":"1111"}),
        ] {
            assert!(cfg(json!({"rules":[{"destinations":[bad]}]})).is_err());
        }
        for (f, ok) in [
            ("myapp/", true),
            ("ab", true),
            ("a/b/c", true),
            ("My", false),
            ("/a", false),
            ("a//b", false),
            ("a", false),
        ] {
            let r = cfg(json!({"rules":[{"destinations":[dest("eu-west-1")],
                "repositoryFilters":[{"filter":f,"filterType":"PREFIX_MATCH"}]}]}));
            assert_eq!(r.is_ok(), ok, "{f}");
        }
        let e = cfg(json!({"rules":[{"destinations":[dest("eu-west-1")],
            "repositoryFilters":[{"filter":"ab","filterType":"SUFFIX"}]}]}))
        .unwrap_err();
        assert!(e.message.contains("PREFIX_MATCH"));
    }
}
