//! ECR's registry scanning configuration (issue 11; botocore `RegistryScanningConfiguration`,
//! ECR_REFERENCE.md §2.10): the shapes as the wire carries them and which scan frequency
//! a repository gets from them.
//!
//! Semantics (ECR User Guide, "Filters for basic/enhanced scanning"): a filter without `*`
//! matches every repository whose name *contains* it; with `*` it must match the whole
//! name, `*` standing for any run of characters (`prod*` matches `prod` and `prod-repo`,
//! not `repo-prod`). `BASIC` knows `SCAN_ON_PUSH` (unmatched repositories are `MANUAL`);
//! `ENHANCED` knows `SCAN_ON_PUSH` and `CONTINUOUS_SCAN` (continuous wins when both match;
//! unmatched repositories are not scanned automatically). Wire validation (lengths,
//! patterns, enums) is the ECR API adapter's; this module is pure and never panics.

use crate::tag_rules::wildcard_match;
use serde::{Deserialize, Serialize};

/// `ScanType`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum ScanType {
    /// Berth's own scanner, basic findings (the default when nothing was put).
    #[default]
    Basic,
    /// Accepted and stored; Berth scans with the same engine and basic-shaped findings
    /// (there is no Amazon Inspector behind it), `CONTINUOUS_SCAN` re-matches on every
    /// vulnerability-database import (which Berth does for every scanned image anyway).
    Enhanced,
}

/// `ScanFrequency`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum ScanFrequency {
    /// Every push is scanned.
    ScanOnPush,
    /// Scanned on push and re-evaluated when the vulnerability data changes.
    ContinuousScan,
    /// Only `StartImageScan`.
    Manual,
}

impl ScanFrequency {
    /// The wire name (`SCAN_ON_PUSH`, `CONTINUOUS_SCAN`, `MANUAL`).
    pub fn as_str(self) -> &'static str {
        match self {
            ScanFrequency::ScanOnPush => "SCAN_ON_PUSH",
            ScanFrequency::ContinuousScan => "CONTINUOUS_SCAN",
            ScanFrequency::Manual => "MANUAL",
        }
    }

    /// Whether a push is scanned at this frequency.
    pub fn scans_on_push(self) -> bool {
        self != ScanFrequency::Manual
    }
}

/// `ScanningRepositoryFilter`: `{filter, filterType: "WILDCARD"}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ScanningRepositoryFilter {
    /// `filter`: a substring, or a whole-name pattern when it has a `*`.
    pub filter: String,
    /// `filterType`: only `WILDCARD`.
    pub filter_type: String,
}

impl ScanningRepositoryFilter {
    /// Whether the filter selects `repository` (module doc).
    pub fn matches(&self, repository: &str) -> bool {
        if self.filter.contains('*') {
            wildcard_match(&self.filter, repository)
        } else {
            repository.contains(self.filter.as_str())
        }
    }
}

/// `RegistryScanningRule`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RegistryScanningRule {
    /// `scanFrequency`.
    pub scan_frequency: ScanFrequency,
    /// `repositoryFilters` (0–100).
    pub repository_filters: Vec<ScanningRepositoryFilter>,
}

/// `RegistryScanningConfiguration`: `{scanType, rules}` (0–2 rules).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RegistryScanningConfiguration {
    /// `scanType`.
    pub scan_type: ScanType,
    /// `rules`.
    pub rules: Vec<RegistryScanningRule>,
}

/// What a repository gets from the registry's configuration (one
/// `RepositoryScanningConfiguration` of BatchGetRepositoryScanningConfiguration).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RepositoryScanning {
    /// `scanFrequency`.
    pub frequency: ScanFrequency,
    /// `appliedScanFilters`: the filters of the rule that decided it.
    pub applied_filters: Vec<ScanningRepositoryFilter>,
}

impl RegistryScanningConfiguration {
    /// The frequency repository `repository` is scanned at. `configured` says whether a
    /// registry configuration was ever put: before that, the repository's own
    /// (deprecated but still honoured) `scanOnPush` decides. Afterwards the rules decide,
    /// and with `BASIC` a repository's own `scanOnPush: true` still adds scan on push
    /// (PutImageScanningConfiguration is deprecated in ECR, not ignored by Berth).
    pub fn repository(
        &self,
        configured: bool,
        repository: &str,
        scan_on_push: bool,
    ) -> RepositoryScanning {
        let own = RepositoryScanning {
            frequency: if scan_on_push {
                ScanFrequency::ScanOnPush
            } else {
                ScanFrequency::Manual
            },
            applied_filters: Vec::new(),
        };
        if !configured {
            return own;
        }
        let matching = |f: ScanFrequency| {
            self.rules
                .iter()
                .filter(|r| r.scan_frequency == f)
                .flat_map(|r| r.repository_filters.iter())
                .filter(|flt| flt.matches(repository))
                .cloned()
                .collect::<Vec<_>>()
        };
        let order: &[ScanFrequency] = match self.scan_type {
            ScanType::Enhanced => &[ScanFrequency::ContinuousScan, ScanFrequency::ScanOnPush],
            ScanType::Basic => &[ScanFrequency::ScanOnPush],
        };
        for &f in order {
            let applied = matching(f);
            if !applied.is_empty() {
                return RepositoryScanning {
                    frequency: f,
                    applied_filters: applied,
                };
            }
        }
        match self.scan_type {
            ScanType::Basic => own,
            ScanType::Enhanced => RepositoryScanning {
                frequency: ScanFrequency::Manual,
                applied_filters: Vec::new(),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn filter(f: &str) -> ScanningRepositoryFilter {
        ScanningRepositoryFilter {
            filter: f.into(),
            filter_type: "WILDCARD".into(),
        }
    }

    fn rule(f: ScanFrequency, filters: &[&str]) -> RegistryScanningRule {
        RegistryScanningRule {
            scan_frequency: f,
            repository_filters: filters.iter().map(|s| filter(s)).collect(),
        }
    }

    // ECR User Guide, "Filters": `prod*` matches prod, prod-repo, prodrepo, not repo-prod;
    // a filter without a wildcard matches names containing it.
    #[test]
    fn filters_match_as_the_user_guide_says() {
        let f = filter("prod*");
        assert!(f.matches("prod") && f.matches("prod-repo") && f.matches("prodrepo"));
        assert!(!f.matches("repo-prod"));
        let f = filter("team");
        assert!(f.matches("team/app") && f.matches("my-team-app"));
        assert!(!f.matches("tea/m"));
        assert!(filter("*").matches("anything/at/all"));
    }

    // ECR_REFERENCE §2.10: BASIC unmatched → MANUAL; ENHANCED: continuous wins over scan on
    // push; unmatched → not scanned.
    #[test]
    fn the_rules_decide_once_a_configuration_was_put() {
        let none = RegistryScanningConfiguration::default();
        assert_eq!(
            none.repository(false, "a", true).frequency,
            ScanFrequency::ScanOnPush
        );
        assert_eq!(
            none.repository(false, "a", false).frequency,
            ScanFrequency::Manual
        );
        assert_eq!(
            none.repository(true, "a", false).frequency,
            ScanFrequency::Manual
        );

        let basic = RegistryScanningConfiguration {
            scan_type: ScanType::Basic,
            rules: vec![rule(ScanFrequency::ScanOnPush, &["prod*"])],
        };
        let r = basic.repository(true, "prod/api", false);
        assert_eq!(r.frequency, ScanFrequency::ScanOnPush);
        assert_eq!(r.applied_filters, vec![filter("prod*")]);
        assert_eq!(
            basic.repository(true, "dev/api", false).frequency,
            ScanFrequency::Manual
        );
        assert_eq!(
            basic.repository(true, "dev/api", true).frequency,
            ScanFrequency::ScanOnPush
        );

        let enhanced = RegistryScanningConfiguration {
            scan_type: ScanType::Enhanced,
            rules: vec![
                rule(ScanFrequency::ScanOnPush, &["*"]),
                rule(ScanFrequency::ContinuousScan, &["prod"]),
            ],
        };
        assert_eq!(
            enhanced.repository(true, "prod/api", false).frequency,
            ScanFrequency::ContinuousScan
        );
        assert_eq!(
            enhanced.repository(true, "dev", false).frequency,
            ScanFrequency::ScanOnPush
        );
        let only_prod = RegistryScanningConfiguration {
            scan_type: ScanType::Enhanced,
            rules: vec![rule(ScanFrequency::ContinuousScan, &["prod"])],
        };
        assert_eq!(
            only_prod.repository(true, "dev", true).frequency,
            ScanFrequency::Manual
        );
    }

    #[test]
    fn the_wire_shape_round_trips() {
        let json = serde_json::json!({"scanType": "ENHANCED", "rules": [
            {"scanFrequency": "CONTINUOUS_SCAN",
             "repositoryFilters": [{"filter": "prod*", "filterType": "WILDCARD"}]}]});
        let c: RegistryScanningConfiguration = serde_json::from_value(json.clone()).unwrap();
        assert_eq!(serde_json::to_value(&c).unwrap(), json);
    }
}
