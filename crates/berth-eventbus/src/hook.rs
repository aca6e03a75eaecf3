//! The change hook that turns registry changes into `ECR Image Action` events.

use crate::FANOUT;
use berth_events::{Event, EventDetail, ImageAction, Origin, ReplicationAction};
use berth_jobs::Waker;
use berth_meta::changes::{Change, ChangeHook};
use berth_meta::jobs::NewJob;

/// Emits ECR's `ECR Image Action` for every change (ECR_REFERENCE.md §3): a manifest
/// PUT is a PUSH (one per tag pushed; a push by digest has no `image-tag`), a deleted
/// manifest is one DELETE per tag it had (one without `image-tag` if it had none), a
/// deleted tag is one DELETE with that tag. Each event becomes one [`FANOUT`] job,
/// enqueued in the change's transaction; its `id` is fixed here.
pub struct EventHook {
    origin: Origin,
    waker: Option<Waker>,
}

impl EventHook {
    /// A hook for the registry of `origin` (account and region from the settings);
    /// `waker`, if given, wakes this process's job runner after each commit.
    pub fn new(origin: Origin, waker: Option<Waker>) -> EventHook {
        EventHook { origin, waker }
    }

    fn job(&self, action: ImageAction) -> NewJob {
        event_job(&action, &self.origin)
    }
}

/// The [`FANOUT`] job of a new event of `detail`'s kind from `origin`, now: its `id` is
/// fixed here, so retries and duplicates of the job share it.
pub fn event_job<D: EventDetail>(detail: &D, origin: &Origin) -> NewJob {
    let event = Event::new(detail, origin, time::OffsetDateTime::now_utc());
    // The event as text: deliveries send exactly these bytes, keys in AWS's order.
    let text = serde_json::to_string(&event).unwrap_or_default();
    NewJob::new(
        FANOUT,
        serde_json::json!({ "event": text, "event_id": event.id }),
    )
}

impl ChangeHook for EventHook {
    fn jobs(&self, change: &Change<'_>) -> Vec<NewJob> {
        match *change {
            Change::ManifestPut {
                repository,
                digest,
                tag,
                ..
            } => {
                let mut jobs = vec![self.job(ImageAction::push(
                    repository.as_str(),
                    &digest.to_string(),
                    tag.map(|t| t.as_str()),
                ))];
                // A tag another registry's replication put here: the destination's
                // `ECR Replication Action` (one per replicated tag).
                if let (Some(source), Some(tag)) = (berth_meta::changes::replicated_from(), tag) {
                    let (region, account) = source.split_once('/').unwrap_or((&source, ""));
                    jobs.push(event_job(
                        &ReplicationAction {
                            result: "SUCCESS".into(),
                            repository_name: repository.to_string(),
                            image_digest: digest.to_string(),
                            source_account: account.to_string(),
                            action_type: "REPLICATE".into(),
                            source_region: region.to_string(),
                            image_tag: Some(tag.as_str().to_string()),
                            destination_region: None,
                            destination_account: None,
                            failure_code: None,
                            failure_reason: None,
                        },
                        &self.origin,
                    ));
                }
                jobs
            }
            Change::ManifestDeleted {
                repository,
                digest,
                tags,
            } => {
                let d = digest.to_string();
                if tags.is_empty() {
                    vec![self.job(ImageAction::delete(repository.as_str(), &d, None))]
                } else {
                    tags.iter()
                        .map(|t| self.job(ImageAction::delete(repository.as_str(), &d, Some(t))))
                        .collect()
                }
            }
            Change::TagDeleted {
                repository,
                tag,
                digest,
            } => vec![self.job(ImageAction::delete(
                repository.as_str(),
                &digest.to_string(),
                Some(tag.as_str()),
            ))],
        }
    }

    fn committed(&self) {
        if let Some(w) = &self.waker {
            w.wake();
        }
    }
}
