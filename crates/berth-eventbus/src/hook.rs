//! The change hook that turns registry changes into `ECR Image Action` events.

use crate::FANOUT;
use berth_events::{Event, ImageAction, Origin};
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
        let event = Event::new(&action, &self.origin, time::OffsetDateTime::now_utc());
        // The event as text: deliveries send exactly these bytes, keys in AWS's order.
        let text = serde_json::to_string(&event).unwrap_or_default();
        NewJob::new(
            FANOUT,
            serde_json::json!({ "event": text, "event_id": event.id }),
        )
    }
}

impl ChangeHook for EventHook {
    fn jobs(&self, change: &Change<'_>) -> Vec<NewJob> {
        match *change {
            Change::ManifestPut {
                repository,
                digest,
                tag,
                ..
            } => vec![self.job(ImageAction::push(
                repository.as_str(),
                &digest.to_string(),
                tag.map(|t| t.as_str()),
            ))],
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
