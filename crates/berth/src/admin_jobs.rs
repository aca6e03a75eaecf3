//! `berth admin jobs …` and `berth admin events deliveries`: the durable job queue and
//! the webhook delivery log, read and steered directly in the data directory's database
//! (a running server sees a retried job at its next poll, within a second). Output is
//! JSON, one document per command.

use berth_meta::jobs::{JobFilter, JobRow, JobState};
use berth_meta::Metadata;
use clap::Subcommand;
use serde_json::{json, Value};

/// `berth admin jobs …`.
#[derive(Debug, Subcommand)]
pub enum JobsCmd {
    /// Jobs, newest first, as a JSON array.
    List {
        /// Only this kind (e.g. `event.deliver`, `event.fanout`).
        #[arg(long)]
        kind: Option<String>,
        /// Only this state: queued, running, retrying, succeeded, dead, cancelled.
        #[arg(long)]
        state: Option<JobState>,
        /// Only jobs with a smaller ID (the last ID of the previous page).
        #[arg(long, value_name = "ID")]
        before: Option<i64>,
        /// At most this many.
        #[arg(long, default_value = "100")]
        limit: u32,
    },
    /// One job, as JSON.
    Show {
        /// The job ID.
        id: i64,
    },
    /// Run a dead or cancelled job again (attempts reset, due now).
    Retry {
        /// The job ID.
        id: i64,
    },
    /// Cancel a queued, retrying or running job.
    Cancel {
        /// The job ID.
        id: i64,
    },
    /// Counts per kind and state, and the age of the oldest due job, as JSON.
    Stats,
}

/// `berth admin events …`.
#[derive(Debug, Subcommand)]
pub enum EventsCmd {
    /// The webhook delivery log, newest first, as a JSON array: event id, rule, target,
    /// endpoint, state, attempts, last error, times.
    Deliveries {
        /// Only deliveries of this event (`id` of the event).
        #[arg(long)]
        event_id: Option<String>,
        /// Only deliveries of this rule.
        #[arg(long)]
        rule: Option<String>,
        /// Only deliveries in this state.
        #[arg(long)]
        state: Option<JobState>,
        /// At most this many (of the newest deliveries read).
        #[arg(long, default_value = "100")]
        limit: u32,
    },
    /// Print the signing secret of an API destination: the HMAC-SHA256 key of the
    /// `X-Berth-Signature` header on its deliveries (never shown by the EventBridge API).
    #[command(name = "destination-secret")]
    DestinationSecret {
        /// The API destination's name (as given to `aws events create-api-destination`).
        name: String,
    },
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

fn print(v: &impl serde::Serialize) -> anyhow::Result<()> {
    println!("{}", serde_json::to_string_pretty(v)?);
    Ok(())
}

/// Runs a `berth admin jobs` command.
pub async fn jobs(meta: &dyn Metadata, cmd: JobsCmd) -> anyhow::Result<()> {
    match cmd {
        JobsCmd::List {
            kind,
            state,
            before,
            limit,
        } => {
            let rows = meta
                .list_jobs(&JobFilter {
                    kind,
                    state,
                    before_id: before,
                    limit,
                })
                .await?;
            print(&rows)
        }
        JobsCmd::Show { id } => match meta.job(id).await? {
            Some(row) => print(&row),
            None => anyhow::bail!("job {id} does not exist"),
        },
        JobsCmd::Retry { id } => {
            anyhow::ensure!(
                meta.retry_job(id, now_ms()).await?,
                "job {id} was not retried: it does not exist, is not dead or cancelled, or \
                 another job with its idempotency key is pending"
            );
            print(&json!({"retried": id}))
        }
        JobsCmd::Cancel { id } => {
            anyhow::ensure!(
                meta.cancel_job(id, now_ms()).await?,
                "job {id} was not cancelled: it does not exist or already finished"
            );
            print(&json!({"cancelled": id}))
        }
        JobsCmd::Stats => print(&meta.job_stats(now_ms()).await?),
    }
}

/// One line of the delivery log, from an `event.deliver` job.
fn delivery(row: &JobRow) -> Value {
    let p = &row.payload;
    json!({
        "job_id": row.id,
        "event_id": p["event_id"],
        "rule": p["rule"],
        "target_id": p["target_id"],
        "endpoint": p["endpoint"],
        "state": row.state.as_str(),
        "attempts": row.attempts,
        "max_attempts": row.max_attempts,
        "last_error": row.last_error,
        "result": row.result,
        "created_at": row.created_at,
        "next_attempt_at": matches!(row.state, JobState::Queued | JobState::Retrying).then_some(row.run_at),
        "finished_at": row.finished_at,
    })
}

/// Runs a `berth admin events` command; `config` is the event configuration with its
/// secrets opened (sealed at rest).
pub async fn events(
    meta: &dyn Metadata,
    config: &dyn berth_meta::EventConfigStore,
    cmd: EventsCmd,
) -> anyhow::Result<()> {
    match cmd {
        EventsCmd::DestinationSecret { name } => match config.api_destination(&name).await? {
            Some(d) => {
                println!("{}", d.signing_secret);
                Ok(())
            }
            None => anyhow::bail!("API destination {name} does not exist"),
        },
        EventsCmd::Deliveries {
            event_id,
            rule,
            state,
            limit,
        } => {
            let mut out = Vec::new();
            let mut before = None;
            // Page through the delivery jobs until `limit` match the filters.
            'pages: loop {
                let rows = meta
                    .list_jobs(&JobFilter {
                        kind: Some(berth_eventbus::DELIVER.into()),
                        state,
                        before_id: before,
                        limit: 500,
                    })
                    .await?;
                let Some(last) = rows.last() else { break };
                before = Some(last.id);
                for row in &rows {
                    let p = &row.payload;
                    if event_id.as_deref().is_some_and(|e| p["event_id"] != e)
                        || rule.as_deref().is_some_and(|r| p["rule"] != r)
                    {
                        continue;
                    }
                    out.push(delivery(row));
                    if out.len() >= limit as usize {
                        break 'pages;
                    }
                }
            }
            print(&out)
        }
    }
}
