//! `berth serve`: wiring of storage, metadata, the service and the HTTP app; logging,
//! metrics, the janitor (housekeeping jobs, pull times), and graceful shutdown.

use crate::config::{LogFormat, Settings};
use crate::housekeeping;
use anyhow::Context;
use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use berth_ecr_api::EcrConfig;
use berth_iam::Iam;
use berth_oci_api::RouteLabel;
use berth_registry::{Registry, RegistryConfig};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use std::future::IntoFuture;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Installs the log subscriber. Lines are written to stderr by a dedicated thread
/// (`tracing-appender`), so a request never waits on the terminal or journald; the
/// queue blocks rather than drops when full, because audit lines must not be lost.
/// Keep the returned guard alive: dropping it flushes the queue.
fn init_logging(s: &Settings) -> anyhow::Result<tracing_appender::non_blocking::WorkerGuard> {
    // aws-sigv4 logs canonical requests, session tokens included, at TRACE: never let it
    // (no secret or token may reach a log line, whatever filter the operator sets).
    let filter = tracing_subscriber::EnvFilter::try_new(format!("{},aws_sigv4=off", s.log_level))
        .with_context(|| format!("bad log filter {:?}", s.log_level))?;
    let (writer, guard) = tracing_appender::non_blocking::NonBlockingBuilder::default()
        .lossy(false)
        .finish(std::io::stderr());
    // Colours only on a terminal: log files and journald get plain text.
    let b = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_writer(writer);
    match s.log_format {
        LogFormat::Json => b.json().init(),
        LogFormat::Text => b.init(),
    }
    Ok(guard)
}

fn init_metrics() -> anyhow::Result<PrometheusHandle> {
    let buckets = [
        0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
    ];
    PrometheusBuilder::new()
        .set_buckets_for_metric(
            Matcher::Full("berth_http_request_duration_seconds".into()),
            &buckets,
        )?
        .install_recorder()
        .context("installing the metrics recorder")
}

/// Records requests by route, method and status with a latency histogram.
async fn track(req: Request, next: Next) -> Response {
    let start = Instant::now();
    let method = req.method().as_str().to_owned();
    // The ECR API is `POST /` (dispatched on X-Amz-Target inside its adapter).
    let ecr = req.uri().path() == "/" && req.method() == axum::http::Method::POST;
    let resp = next.run(req).await;
    let route = resp
        .extensions()
        .get::<RouteLabel>()
        .map(|r| r.0)
        .unwrap_or(if ecr { "ecr" } else { "ops" });
    let status = resp.status().as_u16().to_string();
    let labels = [
        ("route", route.to_string()),
        ("method", method),
        ("status", status),
    ];
    metrics::counter!("berth_http_requests_total", &labels).increment(1);
    metrics::histogram!("berth_http_request_duration_seconds", &labels[..2])
        .record(start.elapsed().as_secs_f64());
    resp
}

#[derive(Clone)]
struct Ops {
    registry: Registry,
    metrics: PrometheusHandle,
}

async fn healthz() -> &'static str {
    "ok\n"
}

async fn readyz(State(ops): State<Ops>) -> Response {
    match ops.registry.catalog(None, 1).await {
        Ok(_) => (StatusCode::OK, "ready\n").into_response(),
        Err(e) => (StatusCode::SERVICE_UNAVAILABLE, format!("not ready: {e}\n")).into_response(),
    }
}

async fn metrics_endpoint(State(ops): State<Ops>) -> String {
    if let Some(b) = ops.registry.store().stored_bytes() {
        metrics::gauge!("berth_stored_bytes").set(b as f64);
    }
    metrics::gauge!("berth_sqlite_memory_used_bytes")
        .set(berth_meta::sqlite::sqlite_memory_used() as f64);
    ops.metrics.render()
}

/// The whole HTTP app that `berth serve` serves: the OCI Distribution API on `/v2/`
/// (`berth_oci_api::router`), the ECR API on `POST /` with `X-Amz-Target`
/// (`berth_ecr_api::router`), the EventBridge API on `POST /` with
/// `X-Amz-Target: AWSEvents.*` (`berth_events_api::router`), the STS API on `POST /` with a
/// form-encoded body (`berth_sts_api::router`), and the operations endpoints `/healthz`, `/readyz` and
/// `/metrics` (rendered from `metrics`), with the request-metrics, tracing and
/// catch-panic layers. It holds no socket: tests drive it in process with
/// `tower::ServiceExt::oneshot` (see `berth-test-support`), so they exercise exactly the
/// router the server serves.
pub fn app(registry: Registry, iam: Iam, metrics: PrometheusHandle) -> Router {
    app_with(registry, iam, metrics, EcrConfig::default())
}

/// [`app`] with the ECR adapter's settings (`public_host`): what `berth serve` runs.
pub fn app_with(registry: Registry, iam: Iam, metrics: PrometheusHandle, ecr: EcrConfig) -> Router {
    let ops = Ops {
        registry: registry.clone(),
        metrics,
    };
    let ops_routes = Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics_endpoint))
        .with_state(ops);
    // `POST /` is shared by the AWS APIs: `X-Amz-Target: AWSEvents.*` is the EventBridge
    // API, a form-encoded body without a target the STS API (awsQuery), anything else the
    // ECR API (which answers unknown targets).
    let events_api = berth_events_api::router(&registry, iam.clone());
    let ecr_api = berth_ecr_api::router_with(registry.clone(), iam.clone(), ecr);
    let sts_api = berth_sts_api::router(iam.clone());
    let aws = Router::new().route(
        "/",
        axum::routing::any(move |req: axum::extract::Request| {
            let target = req
                .headers()
                .get("x-amz-target")
                .and_then(|v| v.to_str().ok());
            let api = if berth_events_api::is_events_target(target) {
                events_api.clone()
            } else if berth_sts_api::is_sts_request(req.headers()) {
                sts_api.clone()
            } else {
                ecr_api.clone()
            };
            async move {
                use tower::ServiceExt;
                match api.oneshot(req).await {
                    Ok(r) => r,
                    Err(never) => match never {},
                }
            }
        }),
    );
    berth_oci_api::router(registry, iam)
        .merge(aws)
        .merge(ops_routes)
        .layer(axum::middleware::from_fn(track))
        .layer(tower_http::trace::TraceLayer::new_for_http())
        .layer(tower_http::catch_panic::CatchPanicLayer::new())
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    tokio::select! { _ = ctrl_c => {}, _ = term => {} }
    tracing::info!(
        "shutting down: finishing requests in flight (up to 30 s; signal again to stop now)"
    );
}

/// The longest wait between two attempts of a replication job: a destination that
/// comes back is served again within this long.
const REPLICATION_MAX_BACKOFF: Duration = Duration::from_secs(30);

/// How long running background jobs may take to finish at shutdown.
const JOB_DRAIN_DEADLINE: Duration = Duration::from_secs(10);

/// Runs the registry until SIGTERM or Ctrl-C.
pub async fn run(s: Settings) -> anyhow::Result<()> {
    let _log_guard = init_logging(&s)?;
    let metrics = init_metrics()?;
    // Metrics exist from the start, so dashboards see zeros rather than gaps.
    metrics::gauge!("berth_uploads_in_progress").set(0.0);
    metrics::counter!("berth_bytes_received_total").increment(0);
    metrics::counter!("berth_bytes_sent_total").increment(0);
    std::fs::create_dir_all(&s.data_dir)
        .with_context(|| format!("creating data directory {}", s.data_dir.display()))?;
    let data_dir = std::fs::canonicalize(&s.data_dir)?;
    // The embedded backends belong to one process: lock them before touching anything
    // (crate::backends). PostgreSQL and S3 take no lock: many nodes share them.
    let locks = crate::backends::lock_local_state(&s)?;
    // Bind before creating anything: a busy port should fail before first-start files
    // (master key, admin credentials) are written.
    let listener = tokio::net::TcpListener::bind(s.listen)
        .await
        .with_context(|| format!("binding {}", s.listen))?;
    let store = crate::backends::open_storage(&s).await?;
    let meta = crate::backends::open_metadata(&s).await?;
    let iam = crate::identity::open(&s, meta.clone(), true).await?;
    // Event-configuration secrets are sealed with the master key; rows stored in
    // plaintext by earlier versions are sealed now (idempotent).
    let sealer = crate::identity::sealer(&s)?;
    let events_config = Arc::new(berth_registry::sealed::SealedEventConfig::new(
        meta.clone(),
        sealer.clone(),
    ));
    let resealed = events_config
        .seal_plaintext_rows(berth_jobs::Clock::now_ms(&berth_jobs::SystemClock))
        .await
        .context("sealing event-configuration secrets stored in plaintext")?;
    if resealed > 0 {
        tracing::info!(
            rows = resealed,
            "sealed event-configuration secrets stored in plaintext by an earlier version"
        );
    }
    crate::events::apply_declarations(&s, &*events_config, &iam).await?;
    // Background work: one runner for every job kind (berth-jobs); content changes
    // enqueue their jobs in their own transactions through the registry's hook.
    let (mut runner, event_hook) =
        crate::events::pipeline(&s, meta.clone(), events_config.clone(), &iam)?;
    // Replication (issue 9): pushes a rule matches enqueue one copy job per destination,
    // reading the configuration from a cell the registry keeps current; scan on push
    // (crate::scanning) is one more hook beside the events'.
    let replication_config = berth_registry::replication::ReplicationConfigCell::default();
    let hook: Arc<dyn berth_registry::JobHook> = Arc::new(berth_registry::Hooks(vec![
        event_hook,
        Arc::new(berth_replication::ReplicationHook::new(
            replication_config.clone(),
            Duration::from_secs(s.replication_deadline_secs),
            Some(runner.waker()),
        )) as Arc<dyn berth_registry::JobHook>,
        Arc::new(crate::scanning::ScanHook {
            waker: Some(runner.waker()),
        }),
    ]));
    let registry = Registry::new(
        store,
        meta.clone(),
        RegistryConfig {
            create_on_push: s.create_on_push,
            upload_expiry: s.upload_expiry(),
            // Cached manifests are only right while this process is the only writer
            // (the embedded SQLite database); other nodes' deletes and tag moves would
            // go unseen in a shared database.
            manifest_cache: meta.single_writer(),
            pull_block: s.pull_block()?,
        },
    )
    .with_job_hook(hook)
    .with_secret_sealer(sealer)
    .with_lifecycle_exclusions(s.lifecycle_exclude_prefixes.clone())
    .with_replication_config(replication_config);
    registry
        .reload_replication_configuration()
        .await
        .context("reading the replication configuration")?;
    let replicate = Arc::new(
        berth_replication::ReplicateImage::new(
            registry.clone(),
            s.replication.peers.clone(),
            berth_replication::CopySettings {
                source_region: iam.region().to_string(),
                source_registry_id: iam.account().to_string(),
                request_timeout: Duration::from_secs(s.replication_request_timeout_secs.max(1)),
                max_backoff: REPLICATION_MAX_BACKOFF,
            },
        )
        .map_err(anyhow::Error::msg)?
        .with_events(berth_replication::EventSink {
            jobs: meta.clone(),
            origin: berth_events::Origin {
                account: iam.account().to_string(),
                region: iam.region().to_string(),
            },
        }),
    );
    let replication_kind = berth_jobs::KindConfig {
        concurrency: 8,
        lease: Duration::from_secs(s.job_lease_secs),
        // A destination that is down is retried soon after it returns.
        backoff: berth_jobs::Backoff {
            base: Duration::from_millis(500),
            max: REPLICATION_MAX_BACKOFF,
        },
    };
    runner.register(
        berth_replication::JOB_KIND,
        replicate.clone(),
        replication_kind,
    );
    runner.register(
        berth_replication::DELETE_JOB,
        Arc::new(berth_replication::ReplicateDelete(replicate)),
        replication_kind,
    );
    let housekeeping = berth_jobs::KindConfig {
        concurrency: 1,
        ..berth_jobs::KindConfig::default()
    };
    runner.register(
        housekeeping::EXPIRE_UPLOADS,
        Arc::new(housekeeping::ExpireUploads(registry.clone())),
        housekeeping,
    );
    runner.register(
        housekeeping::PRUNE_AUDIT,
        Arc::new(housekeeping::PruneAudit {
            iam: iam.clone(),
            retention: s.audit_retention(),
        }),
        housekeeping,
    );
    runner.register(
        housekeeping::PRUNE_JOBS,
        Arc::new(housekeeping::PruneJobs {
            jobs: meta.clone(),
            retention: s.job_retention(),
        }),
        housekeeping,
    );
    runner.register(
        housekeeping::GC,
        Arc::new(housekeeping::GarbageCollect {
            registry: registry.clone(),
            grace: s.gc_grace(),
        }),
        housekeeping,
    );
    runner.register(
        crate::lifecycle::LIFECYCLE_SCHEDULE,
        Arc::new(crate::lifecycle::Schedule {
            meta: meta.clone(),
            exclude: s.lifecycle_exclude_prefixes.clone(),
        }),
        housekeeping,
    );
    runner.register(
        berth_registry::lifecycle::LIFECYCLE_EVALUATE,
        Arc::new(crate::lifecycle::Evaluate(registry.clone())),
        housekeeping,
    );
    runner.register(
        crate::lifecycle::LIFECYCLE_PREVIEW,
        Arc::new(crate::lifecycle::Preview(registry.clone())),
        housekeeping,
    );
    let origin = berth_events::Origin {
        account: iam.account().to_string(),
        region: iam.region().to_string(),
    };
    let scans = berth_jobs::KindConfig {
        concurrency: 2,
        ..berth_jobs::KindConfig::default()
    };
    runner.register(
        berth_registry::scanning::SCAN_IMAGE,
        Arc::new(crate::scanning::ScanImage {
            registry: registry.clone(),
            meta: meta.clone(),
            origin: origin.clone(),
        }),
        scans,
    );
    runner.register(
        crate::scanning::SCAN_ON_PUSH,
        Arc::new(crate::scanning::ScanOnPush(registry.clone())),
        scans,
    );
    runner.register(
        crate::scanning::SCAN_REMATCH,
        Arc::new(crate::scanning::Rematch {
            registry: registry.clone(),
            meta: meta.clone(),
            origin,
        }),
        housekeeping,
    );
    let waker = runner.waker();
    let jobs = if s.run_jobs {
        Some(runner.start())
    } else {
        tracing::info!("background jobs are not run in this process (--run-jobs false): they stay queued for another one");
        None
    };

    // Background tasks stop when `stop` is sent, between two rounds, and are awaited at
    // shutdown (issue 16: drained, not aborted).
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(());
    let stopped = |mut rx: tokio::sync::watch::Receiver<()>| async move {
        // An error means the sender is gone: stop as well.
        let _ = rx.changed().await;
    };
    // Janitor: enqueue the housekeeping jobs (upload expiry every tick's period, audit
    // and job pruning every 60; see crate::housekeeping for how N nodes share them) and
    // the lifecycle schedule (every lifecycle_interval_secs, never at once on start:
    // crate::lifecycle), and record pull times, which live in this process's memory.
    let janitor = {
        let registry = registry.clone();
        let meta = meta.clone();
        let mut first = true;
        let every = (s.upload_expiry() / 4).clamp(Duration::from_secs(1), Duration::from_secs(60));
        let gc_period = s.gc_enabled.then(|| s.gc_period());
        let lifecycle_every = s.lifecycle_interval();
        let mut stop = Box::pin(stopped(stop_rx.clone()));
        tokio::spawn(async move {
            // Ticks often enough for the shortest period (a lifecycle interval under the
            // housekeeping tick is not rounded up to it).
            let mut tick = tokio::time::interval(
                every
                    .min(lifecycle_every)
                    .min(gc_period.unwrap_or(every))
                    .max(Duration::from_secs(1)),
            );
            loop {
                tokio::select! {
                    _ = tick.tick() => {}
                    _ = &mut stop => break,
                }
                let now = berth_jobs::Clock::now_ms(&berth_jobs::SystemClock);
                let mut due = vec![
                    housekeeping::periodic(housekeeping::EXPIRE_UPLOADS, every, now, first),
                    housekeeping::periodic(housekeeping::PRUNE_AUDIT, every * 60, now, first),
                    housekeeping::periodic(housekeeping::PRUNE_JOBS, every * 60, now, first),
                    housekeeping::periodic(
                        crate::lifecycle::LIFECYCLE_SCHEDULE,
                        lifecycle_every,
                        now,
                        false,
                    ),
                ];
                // Garbage collection at the period's wall-clock boundaries only (never
                // "now" at start: a fleet restarting should not all collect at once).
                if let Some(period) = gc_period {
                    due.push(housekeeping::periodic(housekeeping::GC, period, now, false));
                }
                first = false;
                if let Err(e) = meta.enqueue_batch(&due, now).await {
                    tracing::warn!(error = %e, "enqueueing housekeeping failed");
                }
                waker.wake();
                // Pull times (ECR lastRecordedPullTime) are kept in memory between ticks.
                if let Err(e) = registry.flush_pulls().await {
                    tracing::warn!(error = %e, "recording pull times failed");
                }
            }
        })
    };

    tracing::info!(
        listen = %listener.local_addr()?,
        data_dir = %data_dir.display(),
        metadata = %s.metadata_url()?.redacted(),
        metadata_engine = meta.engine(),
        storage = ?s.storage_url()?,
        locked = ?locks.paths(),
        upload_expiry_secs = s.upload_expiry_secs,
        create_on_push = s.create_on_push,
        account = %iam.account(),
        region = iam.region(),
        "berth is serving the OCI Distribution API on /v2/"
    );
    let listener = axum::serve::ListenerExt::tap_io(listener, |tcp| {
        let _ = tcp.set_nodelay(true);
    });
    if s.allow_anonymous {
        tracing::warn!(
            listen = %s.listen,
            "anonymous access is ON (--allow-anonymous): anyone who can reach this address can \
             push, overwrite and delete; use it for development only"
        );
    }
    let (sig_tx, sig_rx) = tokio::sync::oneshot::channel::<()>();
    let reloader = iam.spawn_reloader_until(stopped(stop_rx.clone()));
    // Other nodes' PutReplicationConfiguration reaches this node's replication hook
    // within a second (this node's own puts at once).
    let replication_reloader = {
        let registry = registry.clone();
        let mut stop = Box::pin(stopped(stop_rx));
        tokio::spawn(async move {
            loop {
                tokio::select! {
                    _ = &mut stop => break,
                    _ = tokio::time::sleep(Duration::from_secs(1)) => {}
                }
                if let Err(e) = registry.reload_replication_configuration().await {
                    tracing::warn!(error = %e, "reloading the replication configuration failed");
                }
            }
        })
    };
    let flusher = registry.clone();
    let ecr = EcrConfig {
        public_host: s.public_host(),
    };
    let service = app_with(registry, iam.clone(), metrics, ecr)
        .into_make_service_with_connect_info::<std::net::SocketAddr>();
    let server = axum::serve(listener, service).with_graceful_shutdown(async move {
        shutdown_signal().await;
        let _ = sig_tx.send(());
    });
    // Graceful shutdown waits for requests in flight, but not forever: 30 s, or until a
    // second signal.
    let deadline = async move {
        if sig_rx.await.is_ok() {
            tokio::select! {
                _ = tokio::time::sleep(Duration::from_secs(30)) => "the 30 s shutdown deadline passed",
                _ = shutdown_signal() => "a second signal arrived",
            }
        } else {
            std::future::pending().await
        }
    };
    let forced = tokio::select! {
        r = server.into_future() => { r.context("serving HTTP")?; None }
        why = deadline => Some(why),
    };
    // Requests are done (or abandoned): let the background tasks finish their round and
    // stop, then write what they and the requests left in memory.
    let _ = stop_tx.send(());
    for (name, task) in [
        ("janitor", janitor),
        ("identity reloader", reloader),
        ("replication configuration reloader", replication_reloader),
    ] {
        if let Err(e) = task.await {
            tracing::warn!(error = %e, "the {name} ended abnormally");
        }
    }
    // Jobs in flight get a deadline to finish; the rest run again after their leases
    // expire (in this process at its next start, or in another one).
    let report = match jobs {
        Some(jobs) => jobs.shutdown(JOB_DRAIN_DEADLINE).await,
        None => berth_jobs::ShutdownReport {
            finished: 0,
            abandoned: 0,
        },
    };
    tracing::info!(
        finished = report.finished,
        abandoned = report.abandoned,
        "background jobs stopped"
    );
    // Pull times recorded since the janitor's last flush.
    if let Err(e) = flusher.flush_pulls().await {
        tracing::warn!(error = %e, "recording pull times at shutdown failed");
    }
    // Every audit record of a served request is in the database before we exit.
    iam.audit().flush().await;
    meta.close().await;
    drop(locks);
    match forced {
        None => {
            tracing::info!("stopped");
            Ok(())
        }
        Some(why) => anyhow::bail!("stopped with requests still in flight: {why}"),
    }
}
