//! Webhook delivery throughput to a local receiver (issue 8 target: at least 1,000
//! events/s on the embedded default). Stores one rule with one API-destination target
//! pointing at an axum receiver in this process, enqueues `EVENTS` `event.fanout` jobs
//! in one transaction (what pushes leave behind), starts one `Runner` with the real
//! `FanOut` and `Deliver` handlers, and times until the receiver has every event and
//! every delivery job is recorded as succeeded (each state change committed, each
//! request signed and sent over HTTP).
//!
//! Run: `bench/events.sh` or `cargo bench -p berth-eventbus --bench delivery [-- EVENTS CONCURRENCY]`.

use berth_eventbus::{Deliver, DeliverConfig, FanOut, TargetCache, DELIVER, FANOUT};
use berth_events::{Event, ImageAction, Origin};
use berth_jobs::{KindConfig, Runner, RunnerConfig};
use berth_meta::events::{
    AuthorizationType, EventConfigStore, NewApiDestination, NewConnection, NewRule, RuleState,
    TargetRow, DEFAULT_EVENT_BUS,
};
use berth_meta::jobs::{JobState, JobStore, NewJob};
use berth_meta::{sqlite_jobs, SqliteMeta};
use serde_json::json;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

fn main() {
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with('-'))
        .collect();
    let events: usize = args.first().and_then(|a| a.parse().ok()).unwrap_or(5_000);
    let concurrency: usize = args.get(1).and_then(|a| a.parse().ok()).unwrap_or(64);
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async move {
        let got = Arc::new(AtomicUsize::new(0));
        let counter = got.clone();
        let app = axum::Router::new().fallback(move || {
            let c = counter.clone();
            async move {
                c.fetch_add(1, Ordering::Relaxed);
                "ok"
            }
        });
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let endpoint = format!("http://{}/hook", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await });

        let dir = tempfile::tempdir().unwrap();
        let meta = Arc::new(SqliteMeta::open(&dir.path().join("meta.db")).await.unwrap());
        let now = 1;
        let conn = meta
            .create_connection(
                &NewConnection {
                    name: "bench".into(),
                    arn: "arn:aws:events:us-east-1:111111111111:connection/bench/1".into(),
                    description: None,
                    authorization_type: AuthorizationType::ApiKey,
                    auth_parameters: json!({"ApiKeyAuthParameters":
                        {"ApiKeyName": "X-Api-Key", "ApiKeyValue": "k"}}),
                    state: "AUTHORIZED".into(),
                },
                now,
            )
            .await
            .unwrap();
        let dest = meta
            .create_api_destination(
                &NewApiDestination {
                    name: "bench".into(),
                    arn: "arn:aws:events:us-east-1:111111111111:api-destination/bench/1".into(),
                    description: None,
                    connection_arn: conn.arn,
                    invocation_endpoint: endpoint,
                    http_method: "POST".into(),
                    invocation_rate_limit_per_second: None,
                    signing_secret: "secret".into(),
                    state: "ACTIVE".into(),
                },
                now,
            )
            .await
            .unwrap();
        meta.put_rule(
            &NewRule {
                event_bus_name: DEFAULT_EVENT_BUS.into(),
                name: "all".into(),
                arn: "arn:aws:events:us-east-1:111111111111:rule/all".into(),
                description: None,
                event_pattern: Some(r#"{"source":["aws.ecr"]}"#.into()),
                state: RuleState::Enabled,
                role_arn: None,
            },
            now,
        )
        .await
        .unwrap();
        meta.put_targets(
            DEFAULT_EVENT_BUS,
            "all",
            &[TargetRow {
                target_id: "t".into(),
                arn: dest.arn,
                role_arn: None,
                input: None,
                input_path: None,
                input_transformer: None,
                http_parameters: None,
                max_event_age_seconds: None,
                max_retry_attempts: None,
            }],
            now,
        )
        .await
        .unwrap();

        let origin = Origin {
            account: "111111111111".into(),
            region: "us-east-1".into(),
        };
        let mut tx = meta.begin_write().await.unwrap();
        for i in 0..events {
            let e = Event::new(
                &ImageAction::push("bench/app", "sha256:ab", Some(&format!("t{i}"))),
                &origin,
                time::OffsetDateTime::now_utc(),
            );
            let job = NewJob::new(
                FANOUT,
                json!({"event": serde_json::to_string(&e).unwrap(), "event_id": e.id}),
            );
            sqlite_jobs::enqueue(&mut tx, &job, now).await.unwrap();
        }
        tx.commit().await.unwrap();

        let targets = Arc::new(TargetCache::new(meta.clone(), Duration::from_secs(1)));
        let mut runner = Runner::new(
            meta.clone(),
            RunnerConfig {
                poll_interval: Duration::from_millis(50),
                ..RunnerConfig::default()
            },
        );
        let waker = runner.waker();
        runner.register(
            FANOUT,
            Arc::new(FanOut::new(meta.clone(), targets.clone(), Some(waker))),
            KindConfig {
                concurrency: 16,
                ..KindConfig::default()
            },
        );
        runner.register(
            DELIVER,
            Arc::new(Deliver::new(targets, &DeliverConfig::default()).unwrap()),
            KindConfig {
                concurrency,
                ..KindConfig::default()
            },
        );
        let t = Instant::now();
        let handle = runner.start();
        loop {
            let stats = meta.job_stats(0).await.unwrap();
            let done = stats
                .counts
                .get(DELIVER)
                .and_then(|m| m.get(JobState::Succeeded.as_str()))
                .copied()
                .unwrap_or(0) as usize;
            if done == events && got.load(Ordering::Relaxed) >= events {
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let secs = t.elapsed().as_secs_f64();
        handle.shutdown(Duration::from_secs(5)).await;
        println!(
            "fan-out + signed delivery of {events} events (concurrency {concurrency}): {secs:.2} s = {:.0} events/s",
            events as f64 / secs
        );
    });
}
