//! The audit trail: every authentication and authorisation decision, to structured logs
//! (target `berth::audit`) and to the `audit_log` table (queryable with
//! `berth admin audit`).
//!
//! Writing a row per request on the request's path would serialise every pull behind the
//! database writer, so records go through a bounded channel to one task that appends them
//! in batches (one transaction per batch). When the channel is full the request waits
//! (backpressure) rather than drop a record. On shutdown, [`AuditSink::flush`] drains it.

use berth_meta::iam::AuditRow;
use berth_meta::IamStore;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{mpsc, oneshot};

/// Records buffered before requests wait.
const CAPACITY: usize = 16_384;
/// Records appended per transaction at most.
const BATCH: usize = 1_024;

enum Msg {
    Row(AuditRow),
    Flush(oneshot::Sender<()>),
}

/// A handle to the audit writer. Cheap to clone.
#[derive(Clone)]
pub struct AuditSink {
    tx: Option<mpsc::Sender<Msg>>,
}

impl AuditSink {
    /// Starts the writer task on the current Tokio runtime.
    pub fn start(store: Arc<dyn IamStore>) -> AuditSink {
        let (tx, mut rx) = mpsc::channel::<Msg>(CAPACITY);
        tokio::spawn(async move {
            let mut buf = Vec::with_capacity(BATCH);
            loop {
                if rx.recv_many(&mut buf, BATCH).await == 0 {
                    break;
                }
                let mut rows = Vec::with_capacity(buf.len());
                let mut waiters = Vec::new();
                for m in buf.drain(..) {
                    match m {
                        Msg::Row(r) => rows.push(r),
                        Msg::Flush(w) => waiters.push(w),
                    }
                }
                // Retry a failing database a few times; an audit record is not dropped
                // silently: if it cannot be written it is at least in the log.
                for attempt in 0..5 {
                    match store.append_audit(&rows).await {
                        Ok(()) => break,
                        Err(e) => {
                            tracing::error!(error = %e, attempt, records = rows.len(), "writing the audit trail failed");
                            tokio::time::sleep(Duration::from_millis(200 << attempt)).await;
                        }
                    }
                }
                for w in waiters {
                    let _ = w.send(());
                }
            }
        });
        AuditSink { tx: Some(tx) }
    }

    /// A sink that only logs (for `berth admin`, which has no long-running task).
    pub fn log_only() -> AuditSink {
        AuditSink { tx: None }
    }

    /// Logs the decision and queues it for the table.
    pub async fn record(&self, row: AuditRow) {
        tracing::info!(
            target: "berth::audit",
            principal = %row.principal,
            action = %row.action,
            resource = %row.resource,
            decision = %row.decision,
            reason = %row.reason,
            source_ip = row.source_ip.as_deref().unwrap_or("-"),
            "access decision"
        );
        if let Some(tx) = &self.tx {
            let _ = tx.send(Msg::Row(row)).await;
        }
    }

    /// Waits until every record queued before this call is in the table.
    pub async fn flush(&self) {
        if let Some(tx) = &self.tx {
            let (w, r) = oneshot::channel();
            if tx.send(Msg::Flush(w)).await.is_ok() {
                let _ = r.await;
            }
        }
    }
}
