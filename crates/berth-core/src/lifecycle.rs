//! ECR lifecycle policies: the policy grammar ([`LifecyclePolicy::parse`]) and its
//! evaluation over a repository's images ([`evaluate`]), as a pure function of the
//! policy, the images and the time.
//!
//! Grammar (ECR User Guide, "Lifecycle policy properties"; `ECR_REFERENCE.md` §2.9), for
//! the standard storage class:
//!
//! ```json
//! {"rules":[{"rulePriority":1,"description":"…",
//!   "selection":{"tagStatus":"tagged|untagged|any","tagPrefixList":["prod"],
//!                "tagPatternList":["prod*"],"storageClass":"standard",
//!                "countType":"imageCountMoreThan|sinceImagePushed|sinceImagePulled",
//!                "countUnit":"days","countNumber":7},
//!   "action":{"type":"expire"}}]}
//! ```
//!
//! Evaluation (User Guide, "How lifecycle policies work" / "Lifecycle policy evaluation
//! rules"):
//!
//! - every rule is evaluated over the same images, then the rules are applied in
//!   `rulePriority` order (lowest number first); an image is expired by at most one rule;
//! - an image that matches the tagging requirements of a rule cannot be expired by a rule
//!   of lower priority, and an image marked by a higher-priority rule is still *counted*
//!   by lower rules (it keeps its position in their `imageCountMoreThan` ordering);
//! - `imageCountMoreThan`: the matching images sorted youngest first by push time; those
//!   beyond `countNumber` are expired (so the oldest go); `sinceImagePushed`: pushed more
//!   than `countNumber` days ago; `sinceImagePulled`: last recorded pull (else the push)
//!   more than `countNumber` days ago;
//! - images referenced by an image index, and referrers (manifests whose `subject` is in
//!   the repository), are never expired before or without their parent: rules select
//!   only *top-level* images, and a dependent follows when every parent it has in the
//!   repository is expired. A dependent that carries tags of its own does not simply
//!   follow (no rule selected it): once every parent of it is expired it is a top-level
//!   image, and the rules are applied again to what remains — in the same evaluation, so
//!   one run (and its preview) does what successive runs would, and never leaves a tagged
//!   child for the next run.
//!
//! Archival (`storageClass: archive`, `sinceImageTransitioned`, action `transition`) is
//! refused: Berth has one storage class.

use crate::tag_rules::wildcard_match;
use serde_json::{Map, Value};
use std::collections::{BTreeMap, HashMap, HashSet};

/// Seconds in one `countUnit` day.
pub const DAY_SECS: i64 = 86_400;
/// At most this many `*` wildcards in one `tagPatternList` entry (ECR's limit).
pub const MAX_WILDCARDS: usize = 4;

/// Why a policy text is not a valid lifecycle policy: the detail ECR puts after
/// `Lifecycle policy validation failure: `.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct PolicyError(pub String);

/// Which images a rule selects by their tags (`selection.tagStatus` and its lists).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TagSelection {
    /// `tagged`: images with tags such that every prefix (or pattern) of the list matches
    /// at least one of them.
    Tagged {
        /// `tagPrefixList` (empty when the rule uses patterns).
        prefixes: Vec<String>,
        /// `tagPatternList` (empty when the rule uses prefixes).
        patterns: Vec<String>,
    },
    /// `untagged`: images without tags.
    Untagged,
    /// `any`: every image.
    Any,
}

impl TagSelection {
    /// Whether an image with `tags` meets this selection's tagging requirements.
    pub fn matches(&self, tags: &[String]) -> bool {
        match self {
            TagSelection::Any => true,
            TagSelection::Untagged => tags.is_empty(),
            TagSelection::Tagged { prefixes, patterns } => {
                !tags.is_empty()
                    && prefixes
                        .iter()
                        .all(|p| tags.iter().any(|t| t.starts_with(p.as_str())))
                    && patterns
                        .iter()
                        .all(|p| tags.iter().any(|t| wildcard_match(p, t)))
            }
        }
    }
}

/// The criterion of a rule (`countType` with `countNumber`; days for the `since*` ones).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CountCriterion {
    /// `imageCountMoreThan`: keep this many youngest images, expire the rest.
    ImageCountMoreThan(u32),
    /// `sinceImagePushed`: expire images pushed more than this many days ago.
    SinceImagePushed(u32),
    /// `sinceImagePulled`: expire images last pulled (else pushed) more than this many
    /// days ago.
    SinceImagePulled(u32),
}

/// One rule of a policy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LifecycleRule {
    /// `rulePriority`: unique, ≥ 1; lower numbers are applied first.
    pub priority: u32,
    /// `description`, if given.
    pub description: Option<String>,
    /// The tag selection.
    pub selection: TagSelection,
    /// The count criterion.
    pub criterion: CountCriterion,
}

/// A parsed, validated lifecycle policy: its rules in priority order. Every rule's
/// action is `expire`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LifecyclePolicy {
    /// The rules, sorted by `rulePriority`.
    pub rules: Vec<LifecycleRule>,
}

fn fail<T>(msg: impl Into<String>) -> Result<T, PolicyError> {
    Err(PolicyError(msg.into()))
}

/// Refuses members other than `allowed` (JSON-schema `additionalProperties: false`).
fn only(obj: &Map<String, Value>, allowed: &[&str], at: &str) -> Result<(), PolicyError> {
    let extra: Vec<&str> = obj
        .keys()
        .map(String::as_str)
        .filter(|k| !allowed.contains(k))
        .collect();
    if extra.is_empty() {
        Ok(())
    } else {
        fail(format!(
            "{at} has properties which are not allowed by the schema: {extra:?}"
        ))
    }
}

fn object<'a>(v: &'a Value, at: &str) -> Result<&'a Map<String, Value>, PolicyError> {
    v.as_object()
        .ok_or_else(|| PolicyError(format!("{at} must be an object")))
}

fn positive(v: Option<&Value>, name: &str, at: &str) -> Result<u32, PolicyError> {
    let Some(v) = v else {
        return fail(format!(
            "{at} has missing required properties ([\"{name}\"])"
        ));
    };
    match v.as_u64() {
        Some(n) if n >= 1 && n <= u64::from(u32::MAX) => Ok(n as u32),
        _ => fail(format!(
            "{at}.{name} must be a positive integer (at least 1), got {v}"
        )),
    }
}

fn string_list(
    v: &Value,
    name: &str,
    at: &str,
    patterns: bool,
) -> Result<Vec<String>, PolicyError> {
    let Some(items) = v.as_array() else {
        return fail(format!("{at}.{name} must be an array of strings"));
    };
    if items.is_empty() {
        return fail(format!("{at}.{name} must contain at least one entry"));
    }
    let mut out = Vec::with_capacity(items.len());
    for item in items {
        let Some(s) = item.as_str() else {
            return fail(format!(
                "{at}.{name} must be an array of strings, got {item}"
            ));
        };
        if s.is_empty() {
            return fail(format!("{at}.{name} entries must not be empty"));
        }
        if patterns && s.matches('*').count() > MAX_WILDCARDS {
            return fail(format!(
                "{at}.{name} entry '{s}' has more than {MAX_WILDCARDS} wildcard characters ('*')"
            ));
        }
        if !patterns && s.contains('*') {
            return fail(format!(
                "{at}.{name} entry '{s}' contains '*': wildcards belong in tagPatternList"
            ));
        }
        out.push(s.to_string());
    }
    Ok(out)
}

fn parse_rule(v: &Value, index: usize) -> Result<LifecycleRule, PolicyError> {
    let at = format!("rules[{index}]");
    let rule = object(v, &at)?;
    only(
        rule,
        &["rulePriority", "description", "selection", "action"],
        &at,
    )?;
    let priority = positive(rule.get("rulePriority"), "rulePriority", &at)?;
    let description = match rule.get("description") {
        None => None,
        Some(Value::String(s)) => Some(s.clone()),
        Some(other) => return fail(format!("{at}.description must be a string, got {other}")),
    };
    for required in ["selection", "action"] {
        if !rule.contains_key(required) {
            return fail(format!(
                "{at} has missing required properties ([\"{required}\"])"
            ));
        }
    }
    // The action first: a transition rule is refused as such, whatever its selection.
    let action_at = format!("{at}.action");
    let action = object(&rule["action"], &action_at)?;
    only(action, &["type", "targetStorageClass"], &action_at)?;
    match action.get("type").and_then(Value::as_str) {
        Some("expire") => {}
        Some("transition") => {
            return fail(format!(
                "{action_at}.type 'transition' (archival) is not supported: Berth has one storage class; use 'expire'"
            ))
        }
        Some(other) => {
            return fail(format!(
                "{action_at}.type '{other}' is not a valid enum value (allowed: [\"expire\", \"transition\"])"
            ))
        }
        None => {
            return fail(format!(
                "{action_at} has missing required properties ([\"type\"])"
            ))
        }
    }
    if action.contains_key("targetStorageClass") {
        return fail(format!(
            "{action_at}.targetStorageClass is only allowed with action type 'transition'"
        ));
    }

    let sel_at = format!("{at}.selection");
    let sel = object(&rule["selection"], &sel_at)?;
    only(
        sel,
        &[
            "tagStatus",
            "tagPrefixList",
            "tagPatternList",
            "storageClass",
            "countType",
            "countUnit",
            "countNumber",
        ],
        &sel_at,
    )?;
    match sel.get("storageClass") {
        None => {}
        Some(Value::String(s)) if s == "standard" => {}
        Some(Value::String(s)) if s == "archive" => {
            return fail(format!(
                "{sel_at}.storageClass 'archive' is not supported: Berth has one storage class ('standard')"
            ))
        }
        Some(other) => {
            return fail(format!(
                "{sel_at}.storageClass {other} is not a valid enum value (allowed: [\"standard\", \"archive\"])"
            ))
        }
    }
    let status = match sel.get("tagStatus") {
        None => {
            return fail(format!(
                "{sel_at} has missing required properties ([\"tagStatus\"])"
            ))
        }
        Some(v) => v.as_str().unwrap_or(""),
    };
    let prefixes = sel
        .get("tagPrefixList")
        .map(|v| string_list(v, "tagPrefixList", &sel_at, false))
        .transpose()?;
    let patterns = sel
        .get("tagPatternList")
        .map(|v| string_list(v, "tagPatternList", &sel_at, true))
        .transpose()?;
    let selection = match status {
        "tagged" => match (prefixes, patterns) {
            (None, None) => {
                return fail(format!(
                    "{sel_at}: tagPrefixList or tagPatternList is required when tagStatus is 'tagged'"
                ))
            }
            (Some(_), Some(_)) => {
                return fail(format!(
                    "{sel_at}: tagPrefixList and tagPatternList cannot both be used in one rule"
                ))
            }
            (p, q) => TagSelection::Tagged {
                prefixes: p.unwrap_or_default(),
                patterns: q.unwrap_or_default(),
            },
        },
        "untagged" | "any" if prefixes.is_some() || patterns.is_some() => {
            return fail(format!(
                "{sel_at}: tagPrefixList and tagPatternList are only allowed when tagStatus is 'tagged', not '{status}'"
            ))
        }
        "untagged" => TagSelection::Untagged,
        "any" => TagSelection::Any,
        _ => {
            return fail(format!(
                "{sel_at}.tagStatus {} is not a valid enum value (allowed: [\"tagged\", \"untagged\", \"any\"])",
                sel["tagStatus"]
            ))
        }
    };
    let count_type = match sel.get("countType") {
        None => {
            return fail(format!(
                "{sel_at} has missing required properties ([\"countType\"])"
            ))
        }
        Some(v) => v.as_str().unwrap_or(""),
    };
    let number = positive(sel.get("countNumber"), "countNumber", &sel_at)?;
    let unit = sel.get("countUnit");
    let criterion = match count_type {
        "imageCountMoreThan" => {
            if unit.is_some() {
                return fail(format!(
                    "{sel_at}: countUnit is not allowed when countType is 'imageCountMoreThan'"
                ));
            }
            CountCriterion::ImageCountMoreThan(number)
        }
        "sinceImagePushed" | "sinceImagePulled" => {
            match unit {
                Some(Value::String(u)) if u == "days" => {}
                None => {
                    return fail(format!(
                        "{sel_at}: countUnit 'days' is required when countType is '{count_type}'"
                    ))
                }
                Some(other) => {
                    return fail(format!(
                        "{sel_at}.countUnit {other} is not a valid enum value (allowed: [\"days\"])"
                    ))
                }
            }
            if count_type == "sinceImagePushed" {
                CountCriterion::SinceImagePushed(number)
            } else {
                CountCriterion::SinceImagePulled(number)
            }
        }
        "sinceImageTransitioned" => {
            return fail(format!(
                "{sel_at}.countType 'sinceImageTransitioned' applies to archived images, which Berth does not have"
            ))
        }
        _ => {
            return fail(format!(
                "{sel_at}.countType {} is not a valid enum value (allowed: [\"imageCountMoreThan\", \"sinceImagePushed\", \"sinceImagePulled\", \"sinceImageTransitioned\"])",
                sel["countType"]
            ))
        }
    };
    Ok(LifecycleRule {
        priority,
        description,
        selection,
        criterion,
    })
}

impl LifecyclePolicy {
    /// Parses and validates a policy text.
    /// Errors: [`PolicyError`] naming the rule and member at fault: not JSON, unknown
    /// members, missing required members (`rules`, `rulePriority`, `selection`,
    /// `tagStatus`, `countType`, `countNumber`, `action`, `type`), values outside their
    /// enums, `rulePriority`/`countNumber` not a positive integer, duplicate
    /// `rulePriority`, `tagged` without `tagPrefixList`/`tagPatternList` (or with both),
    /// lists on `untagged`/`any`, more than 4 `*` in a pattern, `countUnit` missing for
    /// the `since*` types or present for `imageCountMoreThan`, an `any` rule that does
    /// not have the highest `rulePriority`, two rules selecting untagged images, two
    /// tagged rules with the same list, and archival (`archive`, `transition`,
    /// `sinceImageTransitioned`).
    pub fn parse(text: &str) -> Result<LifecyclePolicy, PolicyError> {
        let doc: Value = serde_json::from_str(text)
            .map_err(|e| PolicyError(format!("the policy is not valid JSON: {e}")))?;
        let top = object(&doc, "the policy")?;
        only(top, &["rules"], "the policy")?;
        let Some(rules) = top.get("rules") else {
            return fail("the policy has missing required properties ([\"rules\"])");
        };
        let Some(rules) = rules.as_array() else {
            return fail("rules must be an array");
        };
        if rules.is_empty() {
            return fail("rules must contain at least one rule");
        }
        let mut parsed = rules
            .iter()
            .enumerate()
            .map(|(i, r)| parse_rule(r, i))
            .collect::<Result<Vec<_>, _>>()?;
        parsed.sort_by_key(|r| r.priority);
        for pair in parsed.windows(2) {
            if pair[0].priority == pair[1].priority {
                return fail(format!(
                    "rulePriority {} is used by more than one rule; rule priorities must be unique",
                    pair[0].priority
                ));
            }
        }
        let last = parsed.last().map(|r| r.priority);
        if let Some(any) = parsed
            .iter()
            .find(|r| r.selection == TagSelection::Any && Some(r.priority) != last)
        {
            return fail(format!(
                "the rule with tagStatus 'any' (rulePriority {}) must have the highest rulePriority",
                any.priority
            ));
        }
        if parsed
            .iter()
            .filter(|r| r.selection == TagSelection::Untagged)
            .count()
            > 1
        {
            return fail("only one rule may select untagged images (tagStatus 'untagged')");
        }
        let mut lists = HashSet::new();
        for r in &parsed {
            if let TagSelection::Tagged { prefixes, patterns } = &r.selection {
                let mut key = (prefixes.clone(), patterns.clone());
                key.0.sort();
                key.1.sort();
                if !lists.insert(key) {
                    return fail(format!(
                        "the rule with rulePriority {} selects the same tagPrefixList/tagPatternList as a rule before it; each tagged rule must select a different list",
                        r.priority
                    ));
                }
            }
        }
        Ok(LifecyclePolicy { rules: parsed })
    }
}

/// An image as the evaluator sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LifecycleImage {
    /// The manifest digest (`alg:hex`).
    pub digest: String,
    /// Its tags.
    pub tags: Vec<String>,
    /// When it was pushed, epoch seconds.
    pub pushed_at: i64,
    /// When it was last pulled, epoch seconds, if ever recorded.
    pub last_pulled_at: Option<i64>,
    /// Its parents in the repository: image indexes listing it as a child, and its
    /// `subject` when that manifest is in the repository. Digests not among the images
    /// evaluated are ignored.
    pub parents: Vec<String>,
}

/// An image a policy expires.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Expiry {
    /// The image's digest.
    pub digest: String,
    /// The rule that expires it (for a dependent, its parent's rule).
    pub rule_priority: u32,
    /// Whether it follows a parent (an index child or a referrer) rather than being
    /// selected by the rule itself.
    pub follows_parent: bool,
}

/// Evaluates `policy` over `images` at `now` (epoch seconds). Returns the images to
/// expire in the order they must be deleted: images selected by rules oldest first
/// (push time, then digest), each dependent after all its parents. Pure: the same input
/// gives the same answer, which is why a preview equals the run that follows it.
///
/// Applied to a fixed point: after a round, the expired images are taken out and the
/// rules applied again to the rest, until a round expires nothing. Only a round that
/// freed a tagged dependent (all its parents expired) can expire more, so this is what
/// successive evaluations at `now` would do, in one; later rounds' images come after
/// earlier rounds' (a parent is always deleted before its former children).
pub fn evaluate(policy: &LifecyclePolicy, images: &[LifecycleImage], now: i64) -> Vec<Expiry> {
    let mut out = evaluate_round(policy, images, now);
    if out.is_empty() {
        return out;
    }
    let mut remaining: Vec<&LifecycleImage> = images.iter().collect();
    let mut round_len = out.len();
    loop {
        let gone: HashSet<&str> = out[out.len() - round_len..]
            .iter()
            .map(|e| e.digest.as_str())
            .collect();
        // Only a tagged dependent whose parents all went can change the next round.
        let freed = remaining.iter().any(|i| {
            !i.tags.is_empty()
                && !gone.contains(i.digest.as_str())
                && !i.parents.is_empty()
                && i.parents.iter().any(|p| gone.contains(p.as_str()))
        });
        remaining.retain(|i| !gone.contains(i.digest.as_str()));
        if !freed {
            return out;
        }
        let rest: Vec<LifecycleImage> = remaining.iter().map(|i| (*i).clone()).collect();
        let round = evaluate_round(policy, &rest, now);
        if round.is_empty() {
            return out;
        }
        round_len = round.len();
        out.extend(round);
    }
}

/// One round of [`evaluate`]: the rules over the top-level images of `images`, and the
/// untagged dependents that follow them.
fn evaluate_round(policy: &LifecyclePolicy, images: &[LifecycleImage], now: i64) -> Vec<Expiry> {
    let present: HashSet<&str> = images.iter().map(|i| i.digest.as_str()).collect();
    // An image's parents that are among the images (a missing subject is no parent).
    fn parents_in<'a>(i: &'a LifecycleImage, present: &HashSet<&str>) -> Vec<&'a str> {
        i.parents
            .iter()
            .map(String::as_str)
            .filter(|p| present.contains(p) && *p != i.digest)
            .collect()
    }
    // Rules see top-level images only, youngest first (digest breaks ties).
    let mut top: Vec<&LifecycleImage> = images
        .iter()
        .filter(|i| parents_in(i, &present).is_empty())
        .collect();
    top.sort_by(|a, b| {
        b.pushed_at
            .cmp(&a.pushed_at)
            .then_with(|| b.digest.cmp(&a.digest))
    });
    let mut marked: HashMap<&str, u32> = HashMap::new();
    let mut claimed: HashSet<&str> = HashSet::new();
    for rule in &policy.rules {
        let matching: Vec<&LifecycleImage> = top
            .iter()
            .copied()
            .filter(|i| rule.selection.matches(&i.tags))
            .collect();
        let older_than = |t: i64, days: u32| now - t > i64::from(days) * DAY_SECS;
        for (position, image) in matching.iter().enumerate() {
            let selected = match rule.criterion {
                CountCriterion::ImageCountMoreThan(n) => position >= n as usize,
                CountCriterion::SinceImagePushed(d) => older_than(image.pushed_at, d),
                CountCriterion::SinceImagePulled(d) => {
                    older_than(image.last_pulled_at.unwrap_or(image.pushed_at), d)
                }
            };
            let d = image.digest.as_str();
            if selected && !claimed.contains(d) && !marked.contains_key(d) {
                marked.insert(d, rule.priority);
            }
        }
        // Whatever this rule's tagging requirements match, no lower rule may expire.
        claimed.extend(matching.iter().map(|i| i.digest.as_str()));
    }
    let mut out: Vec<Expiry> = Vec::new();
    let mut selected: Vec<&LifecycleImage> = top
        .iter()
        .copied()
        .filter(|i| marked.contains_key(i.digest.as_str()))
        .collect();
    selected.reverse(); // oldest first
    for i in selected {
        out.push(Expiry {
            digest: i.digest.clone(),
            rule_priority: marked[i.digest.as_str()],
            follows_parent: false,
        });
    }
    // Dependents follow when every parent is expired; repeat for dependents of
    // dependents (a referrer of an index child). Tagged dependents stay.
    let mut dependents: Vec<&LifecycleImage> = images
        .iter()
        .filter(|i| !parents_in(i, &present).is_empty() && i.tags.is_empty())
        .collect();
    dependents.sort_by(|a, b| {
        a.pushed_at
            .cmp(&b.pushed_at)
            .then_with(|| a.digest.cmp(&b.digest))
    });
    let mut done: BTreeMap<String, u32> = out
        .iter()
        .map(|e| (e.digest.clone(), e.rule_priority))
        .collect();
    loop {
        let mut progressed = false;
        for dep in &dependents {
            if done.contains_key(&dep.digest) {
                continue;
            }
            let parents = parents_in(dep, &present);
            if parents.iter().all(|p| done.contains_key(*p)) {
                let priority = parents.iter().map(|p| done[*p]).min().unwrap_or(1);
                done.insert(dep.digest.clone(), priority);
                out.push(Expiry {
                    digest: dep.digest.clone(),
                    rule_priority: priority,
                    follows_parent: true,
                });
                progressed = true;
            }
        }
        if !progressed {
            break;
        }
    }
    out
}

#[cfg(test)]
mod tests;
