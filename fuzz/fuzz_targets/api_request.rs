//! ECR and EventBridge JSON requests (awsJson 1.1; ECR API Reference and EventBridge API
//! Reference, per operation), signed by an administrator and sent through the whole app
//! of `berth serve` in process (`berth-test-support`'s `Env`: real SQLite and files).
//! Whatever the body: never a 500 and never a panic; every refusal is AWS's error shape
//! (`__type` and `message`), and every answer is JSON.
#![no_main]

use berth_iam::{EcrAction, EventsAction};
use berth_test_support::{ecr_request, events_request, Env};
use http_body_util::BodyExt;
use libfuzzer_sys::fuzz_target;
use std::sync::OnceLock;
use std::time::SystemTime;

struct World {
    rt: tokio::runtime::Runtime,
    env: Env,
}

fn world() -> &'static World {
    static WORLD: OnceLock<World> = OnceLock::new();
    WORLD.get_or_init(|| {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let env = rt.block_on(Env::new());
        World { rt, env }
    })
}

fuzz_target!(|input: (u16, &str)| {
    let (pick, body) = input;
    let w = world();
    let ecr = EcrAction::ALL;
    let events = EventsAction::ALL;
    let i = pick as usize % (ecr.len() + events.len());
    let (req, what) = if i < ecr.len() {
        let op = ecr[i].name();
        (ecr_request(&w.env.admin, op, body, SystemTime::now()), op)
    } else {
        let op = events[i - ecr.len()].name();
        let req = events_request(&w.env.admin, op, body, "events", SystemTime::now());
        (req, op)
    };
    w.rt.block_on(async {
        let resp = w.env.send(req).await;
        let status = resp.status();
        let bytes = resp.into_body().collect().await.unwrap().to_bytes();
        assert!(
            !status.is_server_error(),
            "{what} {body:?}: {status} {}",
            String::from_utf8_lossy(&bytes)
        );
        let answer: serde_json::Value = serde_json::from_slice(&bytes)
            .unwrap_or_else(|e| panic!("{what} {body:?}: {status}, not JSON ({e})"));
        if !status.is_success() {
            assert!(
                answer["__type"].is_string() && answer["message"].is_string(),
                "{what} {body:?}: {status} {answer}"
            );
        }
    });
});
