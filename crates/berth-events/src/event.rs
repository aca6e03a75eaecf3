//! ECR events in EventBridge's envelope (ECR_REFERENCE.md §3; EventBridge "Amazon ECR
//! events" in the ECR User Guide).
//!
//! ```json
//! {"version":"0","id":"13cde686-328b-6117-af20-0e5566167482","detail-type":"ECR Image Action",
//!  "source":"aws.ecr","account":"123456789012","time":"2019-11-16T01:54:34Z","region":"us-west-2",
//!  "resources":[],
//!  "detail":{"result":"SUCCESS","repository-name":"my-repository-name",
//!            "image-digest":"sha256:7f5b…","action-type":"PUSH","image-tag":"latest"}}
//! ```
//!
//! To add a kind (`ECR Image Scan`, `ECR Replication Action`, …): a struct with its
//! `detail` fields in the order of AWS's sample, `#[serde(rename_all = "kebab-case")]`,
//! and an [`EventDetail`] impl giving its `detail-type` and `resources`.

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

/// `source` of every ECR event.
pub const SOURCE: &str = "aws.ecr";

/// Where an event comes from: the registry's account and region.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Origin {
    /// The 12-digit account ID (the registry ID).
    pub account: String,
    /// The region, e.g. `us-west-2`.
    pub region: String,
}

impl Origin {
    /// The ARN of a repository in this account and region, as ECR puts it in
    /// `resources` (`arn:aws:ecr:<region>:<account>:repository/<name>`).
    pub fn repository_arn(&self, repository: &str) -> String {
        format!(
            "arn:aws:ecr:{}:{}:repository/{repository}",
            self.region, self.account
        )
    }
}

/// The `detail` of one kind of event.
pub trait EventDetail: Serialize {
    /// The `detail-type`, e.g. `ECR Image Action`.
    const DETAIL_TYPE: &'static str;
    /// The `resources` array (ECR Image Action: empty).
    fn resources(&self, origin: &Origin) -> Vec<String>;
}

/// An event in EventBridge's envelope; `detail` is kept as raw JSON text (in the key
/// order of the kind's struct, which is AWS's sample order) so storage and delivery
/// handle every kind alike and send exactly the bytes built once.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Event {
    /// Always `"0"`.
    pub version: String,
    /// A UUID, unique per event: receivers de-duplicate on it (delivery is at least once).
    pub id: String,
    /// The kind, e.g. `ECR Image Action`.
    #[serde(rename = "detail-type")]
    pub detail_type: String,
    /// `aws.ecr`.
    pub source: String,
    /// The account ID.
    pub account: String,
    /// RFC 3339 UTC to the second, e.g. `2019-11-16T01:54:34Z`.
    pub time: String,
    /// The region.
    pub region: String,
    /// ARNs the event is about.
    pub resources: Vec<String>,
    /// The kind's fields.
    pub detail: Box<serde_json::value::RawValue>,
}

impl PartialEq for Event {
    fn eq(&self, other: &Event) -> bool {
        self.version == other.version
            && self.id == other.id
            && self.detail_type == other.detail_type
            && self.source == other.source
            && self.account == other.account
            && self.time == other.time
            && self.region == other.region
            && self.resources == other.resources
            && self.detail.get() == other.detail.get()
    }
}

const TIME_FORMAT: &[time::format_description::FormatItem<'static>] =
    time::macros::format_description!("[year]-[month]-[day]T[hour]:[minute]:[second]Z");

impl Event {
    /// A new event of `detail`'s kind at `time`, with a fresh random `id`.
    pub fn new<D: EventDetail>(detail: &D, origin: &Origin, time: OffsetDateTime) -> Event {
        Event {
            version: "0".into(),
            id: uuid::Uuid::new_v4().to_string(),
            detail_type: D::DETAIL_TYPE.into(),
            source: SOURCE.into(),
            account: origin.account.clone(),
            time: format_time(time),
            region: origin.region.clone(),
            resources: detail.resources(origin),
            // A derived Serialize of plain fields cannot fail.
            detail: serde_json::value::to_raw_value(detail).unwrap_or_else(|_| {
                serde_json::value::RawValue::from_string("null".into()).unwrap_or_default()
            }),
        }
    }

    /// The event as JSON (what patterns match and webhooks receive).
    pub fn to_value(&self) -> serde_json::Value {
        serde_json::to_value(self).unwrap_or(serde_json::Value::Null)
    }
}

/// `time` as EventBridge writes it: UTC, seconds, `Z`.
pub fn format_time(t: OffsetDateTime) -> String {
    t.to_offset(time::UtcOffset::UTC)
        .format(TIME_FORMAT)
        .unwrap_or_default()
}

/// `action-type` of an `ECR Image Action`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum ImageActionType {
    /// "sent when each image push is completed" (one per tag pushed).
    Push,
    /// An image was deleted (OCI API or ECR API).
    Delete,
}

/// `detail` of `ECR Image Action` (push and delete), keys in the order of AWS's sample.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct ImageAction {
    /// `SUCCESS` (the only value AWS documents).
    pub result: String,
    /// The repository.
    pub repository_name: String,
    /// The manifest digest, `sha256:…`.
    pub image_digest: String,
    /// `PUSH` or `DELETE`.
    pub action_type: ImageActionType,
    /// The tag pushed or deleted; omitted for an untagged image.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub image_tag: Option<String>,
}

impl ImageAction {
    /// A successful push of `digest` under `tag` (one event per tag; `None` for a push
    /// by digest).
    pub fn push(repository: &str, digest: &str, tag: Option<&str>) -> ImageAction {
        ImageAction::new(ImageActionType::Push, repository, digest, tag)
    }

    /// A successful deletion of `digest` (with `tag` if it was deleted by tag).
    pub fn delete(repository: &str, digest: &str, tag: Option<&str>) -> ImageAction {
        ImageAction::new(ImageActionType::Delete, repository, digest, tag)
    }

    fn new(kind: ImageActionType, repository: &str, digest: &str, tag: Option<&str>) -> Self {
        ImageAction {
            result: "SUCCESS".into(),
            repository_name: repository.into(),
            image_digest: digest.into(),
            action_type: kind,
            image_tag: tag.map(str::to_string),
        }
    }
}

impl EventDetail for ImageAction {
    const DETAIL_TYPE: &'static str = "ECR Image Action";
    fn resources(&self, _origin: &Origin) -> Vec<String> {
        Vec::new()
    }
}

/// `detail` of `ECR Image Scan` (a basic scan completed; ECR_REFERENCE.md §3), keys in
/// the order of AWS's sample. `resources` is the repository's ARN.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct ImageScan {
    /// `COMPLETE` (or `FAILED`).
    pub scan_status: String,
    /// The repository.
    pub repository_name: String,
    /// Findings per severity (`CRITICAL`, `HIGH`, …), only severities with findings.
    pub finding_severity_counts: std::collections::BTreeMap<String, u64>,
    /// The manifest digest, `sha256:…`.
    pub image_digest: String,
    /// The image's tags (empty for an untagged image).
    pub image_tags: Vec<String>,
}

impl EventDetail for ImageScan {
    const DETAIL_TYPE: &'static str = "ECR Image Scan";
    /// The repository's ARN in the registry that emits the event (AWS's sample).
    fn resources(&self, origin: &Origin) -> Vec<String> {
        vec![origin.repository_arn(&self.repository_name)]
    }
}

/// `detail` of `ECR Replication Action` (ECR_REFERENCE.md §3), keys in the order of AWS's
/// sample: `result`, `repository-name`, `image-digest`, `source-account`, `action-type`
/// (`REPLICATE`), `source-region`, `image-tag`. AWS says a failure "may include
/// additional error information" without naming keys; Berth adds `destination-region`
/// and `destination-account` (on the source's events) and, on `FAILED`, `failure-code`
/// and `failure-reason` (the `failureCode` of DescribeImageReplicationStatus, split at
/// its first `: `).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct ReplicationAction {
    /// `SUCCESS` or `FAILED`.
    pub result: String,
    /// The repository (the same name in source and destination).
    pub repository_name: String,
    /// The image's digest.
    pub image_digest: String,
    /// The source registry's account.
    pub source_account: String,
    /// Always `REPLICATE`.
    pub action_type: String,
    /// The source registry's region.
    pub source_region: String,
    /// The tag replicated, if any.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub image_tag: Option<String>,
    /// Berth: the destination's region (source-side events).
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub destination_region: Option<String>,
    /// Berth: the destination's account (source-side events).
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub destination_account: Option<String>,
    /// Berth: why it failed (a code such as `DESTINATION_ACCESS_DENIED`).
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub failure_code: Option<String>,
    /// Berth: the failure's message.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub failure_reason: Option<String>,
}

impl EventDetail for ReplicationAction {
    const DETAIL_TYPE: &'static str = "ECR Replication Action";
    /// The repository's ARN in the registry that emits the event (AWS's sample).
    fn resources(&self, origin: &Origin) -> Vec<String> {
        vec![origin.repository_arn(&self.repository_name)]
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// ECR_REFERENCE.md §3, `ECR Image Scan`: the repository's ARN as the resource, the
    /// sample's keys in its order.
    #[test]
    fn image_scan_event_has_the_samples_shape() {
        let scan = ImageScan {
            scan_status: "COMPLETE".into(),
            repository_name: "team/app".into(),
            finding_severity_counts: [("CRITICAL".to_owned(), 10), ("MEDIUM".to_owned(), 9)]
                .into_iter()
                .collect(),
            image_digest: "sha256:ab".into(),
            image_tags: vec!["latest".into()],
        };
        let e = Event::new(
            &scan,
            &origin(),
            time::macros::datetime!(2019-11-16 01:54:34 UTC),
        );
        assert_eq!(e.detail_type, "ECR Image Scan");
        assert_eq!(
            e.resources,
            ["arn:aws:ecr:us-west-2:123456789012:repository/team/app"]
        );
        assert_eq!(
            e.detail.get(),
            r#"{"scan-status":"COMPLETE","repository-name":"team/app","finding-severity-counts":{"CRITICAL":10,"MEDIUM":9},"image-digest":"sha256:ab","image-tags":["latest"]}"#
        );
    }

    fn origin() -> Origin {
        Origin {
            account: "123456789012".into(),
            region: "us-west-2".into(),
        }
    }

    /// ECR_REFERENCE.md §3, the canonical push example: same keys, same order, same
    /// values (but the random `id`).
    #[test]
    fn push_event_is_the_canonical_example() {
        let digest = "sha256:7f5b2640fe6fb4f46592dfd3410c4a79dac4f89e4782432e0378abcd1234";
        let t = time::macros::datetime!(2019-11-16 01:54:34 UTC);
        let e = Event::new(
            &ImageAction::push("my-repository-name", digest, Some("latest")),
            &origin(),
            t,
        );
        let mut got = serde_json::to_string(&e).unwrap();
        got = got.replace(&e.id, "13cde686-328b-6117-af20-0e5566167482");
        let want = r#"{"version":"0","id":"13cde686-328b-6117-af20-0e5566167482","detail-type":"ECR Image Action","source":"aws.ecr","account":"123456789012","time":"2019-11-16T01:54:34Z","region":"us-west-2","resources":[],"detail":{"result":"SUCCESS","repository-name":"my-repository-name","image-digest":"sha256:7f5b2640fe6fb4f46592dfd3410c4a79dac4f89e4782432e0378abcd1234","action-type":"PUSH","image-tag":"latest"}}"#;
        assert_eq!(got, want);
        assert!(uuid::Uuid::parse_str(&e.id).is_ok());
        // Round trip.
        let back: Event = serde_json::from_str(want).unwrap();
        assert_eq!(back.detail_type, "ECR Image Action");
    }

    /// Delete events carry `action-type: DELETE`; an untagged image has no `image-tag`;
    /// every event gets its own `id`; times are UTC seconds.
    #[test]
    fn delete_untagged_and_ids() {
        let t = time::macros::datetime!(2026-12-02 18:00:00.987 +01:00);
        let a = Event::new(
            &ImageAction::delete("team/app", "sha256:ab", None),
            &origin(),
            t,
        );
        let b = Event::new(
            &ImageAction::delete("team/app", "sha256:ab", None),
            &origin(),
            t,
        );
        assert_ne!(a.id, b.id);
        assert_eq!(a.time, "2026-12-02T17:00:00Z");
        assert_eq!(
            a.to_value()["detail"],
            json!({"result": "SUCCESS", "repository-name": "team/app",
                   "image-digest": "sha256:ab", "action-type": "DELETE"})
        );
        assert_eq!(
            origin().repository_arn("team/app"),
            "arn:aws:ecr:us-west-2:123456789012:repository/team/app"
        );
    }
}
