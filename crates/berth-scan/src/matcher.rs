//! Matching an [`Inventory`] against OSV records.
//!
//! For each installed package, the records naming its OSV ecosystem and name are
//! evaluated the way the OSV schema says ("Evaluation"): the package is affected when its
//! version is in the record's `versions` list, or when one of its `ECOSYSTEM`/`SEMVER`
//! ranges — events sorted by version, `introduced` turning "affected" on, `fixed` (at or
//! above) and `last_affected` (above) turning it off, and a `limit` bounding the range
//! from above — leaves it affected. `GIT` ranges (commits) are not evaluated.
//!
//! The records that match one package are merged when they share an ID or alias (a
//! PYSEC record and the GHSA that aliases the same CVE are one finding), so one CVE is
//! one finding per package; the finding is named by its CVE (the smallest, if several)
//! or else by its smallest ID. Its severity is the highest of its records', each from
//! the record's CVSS v3 base score (FIRST's qualitative scale: 9.0 CRITICAL, 7.0 HIGH,
//! 4.0 MEDIUM, 0.1 LOW, 0 INFORMATIONAL) or, without a vector, the source's own rating
//! (GHSA's `database_specific.severity`, Debian's `urgency`), else UNDEFINED.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::layer::Inventory;
use crate::osv::{OsvAffected, OsvRecord};
use crate::packages::{normalize_python_name, Ecosystem, OsRelease, Package};
use crate::version::{sort_bounds, Bound, Scheme, Version};

/// ECR's finding severities (`FindingSeverity` in the botocore model), ordered from
/// least to most severe; `Undefined` (no rating known) sorts lowest.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Severity {
    /// No rating.
    Undefined,
    /// CVSS 0.0.
    Informational,
    /// CVSS 0.1–3.9.
    Low,
    /// CVSS 4.0–6.9 (GHSA's `MODERATE`).
    Medium,
    /// CVSS 7.0–8.9.
    High,
    /// CVSS 9.0–10.0.
    Critical,
}

impl Severity {
    /// ECR's spelling (`CRITICAL`, …).
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Undefined => "UNDEFINED",
            Severity::Informational => "INFORMATIONAL",
            Severity::Low => "LOW",
            Severity::Medium => "MEDIUM",
            Severity::High => "HIGH",
            Severity::Critical => "CRITICAL",
        }
    }

    /// Every severity, least severe first.
    pub const ALL: [Severity; 6] = [
        Severity::Undefined,
        Severity::Informational,
        Severity::Low,
        Severity::Medium,
        Severity::High,
        Severity::Critical,
    ];

    /// From a CVSS base score (FIRST CVSS v3.1 specification §5, qualitative rating).
    pub fn from_score(score: f64) -> Severity {
        match score {
            s if s >= 9.0 => Severity::Critical,
            s if s >= 7.0 => Severity::High,
            s if s >= 4.0 => Severity::Medium,
            s if s > 0.0 => Severity::Low,
            _ => Severity::Informational,
        }
    }

    /// From a source's own rating word (`CRITICAL`, `HIGH`, `MODERATE`/`MEDIUM`, `LOW`,
    /// Debian's `unimportant`/`not yet assigned`), case-insensitively.
    pub fn from_rating(rating: &str) -> Option<Severity> {
        Some(match rating.trim().to_ascii_lowercase().as_str() {
            "critical" => Severity::Critical,
            "high" | "important" => Severity::High,
            "moderate" | "medium" => Severity::Medium,
            "low" => Severity::Low,
            "unimportant" | "negligible" | "informational" | "none" => Severity::Informational,
            _ => return None,
        })
    }
}

impl FromStr for Severity {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Severity::ALL
            .into_iter()
            .find(|v| v.as_str().eq_ignore_ascii_case(s))
            .ok_or_else(|| format!("unknown severity {s:?} (one of INFORMATIONAL, LOW, MEDIUM, HIGH, CRITICAL, UNDEFINED)"))
    }
}

/// One vulnerability of one installed package.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Finding {
    /// The finding's name: its CVE, else its smallest record ID.
    pub name: String,
    /// Every record ID and alias merged into it, sorted.
    pub ids: Vec<String>,
    /// The affected package.
    pub package: Package,
    /// Its severity.
    pub severity: Severity,
    /// The highest CVSS v3 base score among its records, if any has a vector.
    pub cvss3_score: Option<f64>,
    /// That score's vector.
    pub cvss3_vector: Option<String>,
    /// Versions that fix it (the `fixed` events above the installed version), sorted.
    pub fixed_in_versions: Vec<String>,
    /// The summary (or the start of the details) of its first record.
    pub description: String,
    /// A reference URL (an `ADVISORY`, else the first).
    pub uri: Option<String>,
}

/// An index of OSV records by (ecosystem, package name), and each source's timestamp.
#[derive(Debug, Default)]
pub struct VulnDb {
    records: Vec<OsvRecord>,
    by_package: HashMap<(String, String), Vec<(usize, usize)>>,
    sources: BTreeMap<String, String>,
}

/// The OSV ecosystem name without its release (`Debian:12` → `Debian`).
fn ecosystem_base(ecosystem: &str) -> &str {
    ecosystem.split(':').next().unwrap_or(ecosystem)
}

fn index_name(ecosystem_base: &str, name: &str) -> String {
    match ecosystem_base {
        "PyPI" => normalize_python_name(name),
        _ => name.to_owned(),
    }
}

impl VulnDb {
    /// Indexes records (withdrawn ones are kept for listing but never match). A record
    /// with an ID seen before replaces the earlier one.
    pub fn new(records: impl IntoIterator<Item = OsvRecord>) -> VulnDb {
        let mut by_id: BTreeMap<String, OsvRecord> = BTreeMap::new();
        for r in records {
            by_id.insert(r.id.clone(), r);
        }
        let mut db = VulnDb::default();
        for (i, record) in by_id.into_values().enumerate() {
            for (j, affected) in record.affected.iter().enumerate() {
                let Some(package) = &affected.package else {
                    continue;
                };
                let base = ecosystem_base(&package.ecosystem);
                let source = db.sources.entry(base.to_owned()).or_default();
                if record.modified > *source {
                    *source = record.modified.clone();
                }
                db.by_package
                    .entry((base.to_owned(), index_name(base, &package.name)))
                    .or_default()
                    .push((i, j));
            }
            db.records.push(record);
        }
        db
    }

    /// How many records it holds.
    pub fn len(&self) -> usize {
        self.records.len()
    }

    /// Whether it holds none.
    pub fn is_empty(&self) -> bool {
        self.records.is_empty()
    }

    /// Each source (OSV ecosystem, without release) and its newest record's `modified`
    /// time: ECR's `vulnerabilitySourceUpdatedAt`.
    pub fn sources(&self) -> &BTreeMap<String, String> {
        &self.sources
    }

    /// The findings of an inventory, sorted by severity (most severe first), then name
    /// and package.
    pub fn findings(&self, inventory: &Inventory) -> Vec<Finding> {
        let mut out = Vec::new();
        for package in &inventory.packages {
            out.extend(self.package_findings(package, inventory.os.as_ref()));
        }
        out.sort_by(|a, b| {
            b.severity
                .cmp(&a.severity)
                .then_with(|| a.name.cmp(&b.name))
                .then_with(|| a.package.cmp(&b.package))
        });
        out
    }

    fn package_findings(&self, package: &Package, os: Option<&OsRelease>) -> Vec<Finding> {
        let Some((base, release, scheme)) = osv_ecosystem(package.ecosystem, os) else {
            return Vec::new();
        };
        // Distribution advisories name source packages; look up both names.
        let mut names = vec![index_name(base, &package.name)];
        if let Some(source) = &package.source {
            names.push(source.clone());
        }
        let mut matched: BTreeMap<usize, BTreeSet<String>> = BTreeMap::new();
        for name in &names {
            let Some(entries) = self.by_package.get(&(base.to_owned(), name.clone())) else {
                continue;
            };
            for &(i, j) in entries {
                let record = &self.records[i];
                let affected = &record.affected[j];
                if record.withdrawn.is_some() || !release_matches(affected, release.as_deref()) {
                    continue;
                }
                if let Some(fixed) = affected_by(affected, scheme, &package.version) {
                    matched.entry(i).or_default().extend(fixed);
                }
            }
        }
        // Merge records sharing an ID or alias.
        let mut groups: Vec<(BTreeSet<String>, Vec<usize>, BTreeSet<String>)> = Vec::new();
        for (i, fixed) in matched {
            let record = &self.records[i];
            let mut ids: BTreeSet<String> = record.aliases.iter().cloned().collect();
            ids.insert(record.id.clone());
            let mut members = vec![i];
            let mut fixes = fixed;
            let mut k = 0;
            while k < groups.len() {
                if !groups[k].0.is_disjoint(&ids) {
                    let (other_ids, other_members, other_fixes) = groups.swap_remove(k);
                    ids.extend(other_ids);
                    members.extend(other_members);
                    fixes.extend(other_fixes);
                    k = 0;
                } else {
                    k += 1;
                }
            }
            groups.push((ids, members, fixes));
        }
        groups
            .into_iter()
            .map(|(ids, mut members, fixes)| {
                members.sort();
                self.finding(package, scheme, ids, &members, fixes)
            })
            .collect()
    }

    fn finding(
        &self,
        package: &Package,
        scheme: Scheme,
        ids: BTreeSet<String>,
        members: &[usize],
        fixes: BTreeSet<String>,
    ) -> Finding {
        let name = ids
            .iter()
            .find(|id| id.starts_with("CVE-"))
            .cloned()
            .unwrap_or_else(|| self.records[members[0]].id.clone());
        let mut severity = Severity::Undefined;
        let mut cvss: Option<(f64, String)> = None;
        for &i in members {
            let (s, c) = record_severity(&self.records[i]);
            severity = severity.max(s);
            if let Some((score, vector)) = c {
                if cvss.as_ref().is_none_or(|(best, _)| score > *best) {
                    cvss = Some((score, vector));
                }
            }
        }
        let first = &self.records[members[0]];
        let description = first
            .summary
            .clone()
            .filter(|s| !s.is_empty())
            .or_else(|| {
                first
                    .details
                    .as_ref()
                    .map(|d| d.chars().take(1024).collect())
            })
            .unwrap_or_default();
        let uri = first
            .references
            .iter()
            .find(|r| r.kind == "ADVISORY")
            .or(first.references.first())
            .map(|r| r.url.clone());
        let mut fixed_in_versions: Vec<String> = fixes.into_iter().collect();
        fixed_in_versions
            .sort_by(|a, b| crate::version::compare(scheme, a, b).unwrap_or_else(|| a.cmp(b)));
        Finding {
            name,
            ids: ids.into_iter().collect(),
            package: package.clone(),
            severity,
            cvss3_score: cvss.as_ref().map(|c| c.0),
            cvss3_vector: cvss.map(|c| c.1),
            fixed_in_versions,
            description,
            uri,
        }
    }
}

/// A package's OSV ecosystem (base name, release to match, version scheme). Distribution
/// packages need the image's OS: dpkg on `debian` → `Debian:<VERSION_ID>`, on `ubuntu`
/// → `Ubuntu:<VERSION_ID>`; apk → `Alpine:v<major>.<minor>`.
fn osv_ecosystem(
    ecosystem: Ecosystem,
    os: Option<&OsRelease>,
) -> Option<(&'static str, Option<String>, Scheme)> {
    let release =
        |os: Option<&OsRelease>| os.map(|o| o.version_id.clone()).filter(|v| !v.is_empty());
    Some(match ecosystem {
        Ecosystem::Dpkg => match os.map(|o| o.id.as_str()) {
            Some("ubuntu") => ("Ubuntu", release(os), Scheme::Dpkg),
            _ => ("Debian", release(os), Scheme::Dpkg),
        },
        Ecosystem::Apk => {
            let minor = release(os)
                .map(|v| format!("v{}", v.split('.').take(2).collect::<Vec<_>>().join(".")));
            ("Alpine", minor, Scheme::Apk)
        }
        Ecosystem::PyPI => ("PyPI", None, Scheme::Pep440),
        Ecosystem::Npm => ("npm", None, Scheme::Semver),
        Ecosystem::Go => ("Go", None, Scheme::Semver),
        Ecosystem::CratesIo => ("crates.io", None, Scheme::Semver),
        Ecosystem::Maven => ("Maven", None, Scheme::Maven),
        // OSV names the RPM distributions' ecosystems `Red Hat`, `Rocky Linux` and
        // `AlmaLinux`; the last two by major release (`AlmaLinux:9`). Red Hat's carry
        // CPE-like releases (`Red Hat:enterprise_linux:9::baseos`), matched whatever the
        // release here.
        Ecosystem::Rpm => {
            let major = release(os).map(|v| v.split('.').next().unwrap_or_default().to_owned());
            match os.map(|o| o.id.as_str()) {
                Some("rocky") => ("Rocky Linux", major, Scheme::Rpm),
                Some("almalinux") => ("AlmaLinux", major, Scheme::Rpm),
                _ => ("Red Hat", None, Scheme::Rpm),
            }
        }
    })
}

/// A record's release (`Debian:12` → `12`) matches the image's when equal, or when the
/// record names none; an image whose release is unknown matches every release.
fn release_matches(affected: &OsvAffected, image_release: Option<&str>) -> bool {
    let Some(package) = &affected.package else {
        return false;
    };
    match (package.ecosystem.split_once(':'), image_release) {
        (None, _) | (_, None) => true,
        (Some((_, record)), Some(image)) => {
            record == image || record.starts_with(&format!("{image}:"))
        }
    }
}

/// Whether `version` is affected by this entry; if so, the `fixed` versions of its
/// ranges above `version`.
pub fn affected_by(
    affected: &OsvAffected,
    scheme: Scheme,
    version: &str,
) -> Option<BTreeSet<String>> {
    let mut hit = affected.versions.iter().any(|v| v == version);
    let mut fixed = BTreeSet::new();
    for range in &affected.ranges {
        let scheme = match range.kind.as_str() {
            "ECOSYSTEM" => scheme,
            "SEMVER" => Scheme::Semver,
            _ => continue,
        };
        let Some(installed) = Version::parse(scheme, version) else {
            continue;
        };
        #[derive(Clone, Copy, PartialEq)]
        enum Kind {
            Introduced,
            Fixed,
            LastAffected,
            Limit,
        }
        let mut events = Vec::new();
        for e in &range.events {
            let (text, kind) = match (&e.introduced, &e.fixed, &e.last_affected, &e.limit) {
                (Some(t), _, _, _) => (t, Kind::Introduced),
                (_, Some(t), _, _) => (t, Kind::Fixed),
                (_, _, Some(t), _) => (t, Kind::LastAffected),
                (_, _, _, Some(t)) => (t, Kind::Limit),
                _ => continue,
            };
            if let Some(bound) = Bound::parse(scheme, text) {
                events.push((bound, (kind, text)));
            }
        }
        sort_bounds(&mut events);
        let mut in_range = false;
        let mut limits = Vec::new();
        for (bound, (kind, text)) in &events {
            let order = bound.order_of(&installed);
            let at_or_above = matches!(order, Some(o) if o.is_ge());
            match kind {
                Kind::Introduced if at_or_above => in_range = true,
                Kind::Fixed if at_or_above => in_range = false,
                Kind::LastAffected if order == Some(std::cmp::Ordering::Greater) => {
                    in_range = false
                }
                Kind::Fixed => {
                    fixed.insert((*text).clone());
                }
                Kind::Limit => limits.push(order),
                _ => {}
            }
        }
        let under_a_limit = limits.is_empty() || limits.contains(&Some(std::cmp::Ordering::Less));
        if in_range && under_a_limit {
            hit = true;
        }
    }
    hit.then_some(fixed)
}

/// A record's severity and its CVSS v3 base score and vector, if it has one.
pub fn record_severity(record: &OsvRecord) -> (Severity, Option<(f64, String)>) {
    for s in &record.severity {
        if s.kind == "CVSS_V3" {
            if let Ok(vector) = cvss::v3::Vector::from_str(&s.score) {
                let score = vector.base_score().value();
                return (Severity::from_score(score), Some((score, s.score.clone())));
            }
        }
    }
    let rating = |v: &Option<serde_json::Value>, key: &str| {
        v.as_ref()
            .and_then(|v| v.get(key))
            .and_then(|s| s.as_str())
            .and_then(Severity::from_rating)
    };
    let own = rating(&record.database_specific, "severity").or_else(|| {
        record.affected.iter().find_map(|a| {
            rating(&a.ecosystem_specific, "severity")
                .or_else(|| rating(&a.ecosystem_specific, "urgency"))
                .or_else(|| rating(&a.database_specific, "severity"))
        })
    });
    (own.unwrap_or(Severity::Undefined), None)
}

#[cfg(test)]
mod tests;
