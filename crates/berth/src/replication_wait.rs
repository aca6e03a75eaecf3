//! `berth replication wait` (issue 9): waits until an image has arrived in every
//! replication destination, so a pipeline never deploys in another region before the
//! image is there. It polls the source registry's `DescribeImageReplicationStatus`
//! (SigV4-signed, credentials found as the AWS CLI finds them, like `berth login`) every
//! second and exits 0 when every destination asked for (by default: every destination
//! the image was sent to, at least one) is `COMPLETE`; non-zero with the reason when one
//! is `FAILED` (its `failureCode` names the cause) or the timeout passed. Waiting for a
//! tag fails when a destination keeps that tag immutable on another image (`COMPLETE` by
//! digest with a `TAG_IMMUTABLE_IN_DESTINATION` failureCode), and a destination the image
//! was never sent to (no rule matches) fails at once: pushes enqueue their replications
//! in their own transaction, so the list is final.

use anyhow::Context;
use berth_registry::replication::TAG_IMMUTABLE_IN_DESTINATION;
use clap::{Args, Subcommand};
use std::time::{Duration, Instant};

/// `berth replication`.
#[derive(Debug, Args)]
pub struct ReplicationArgs {
    #[command(subcommand)]
    command: ReplicationCommand,
}

#[derive(Debug, Subcommand)]
enum ReplicationCommand {
    /// Wait until an image is COMPLETE in every replication destination; exit non-zero
    /// with the reason when a destination FAILED or the timeout passed.
    Wait(WaitArgs),
}

/// `berth replication wait`.
#[derive(Debug, Args)]
pub struct WaitArgs {
    /// The image.
    #[command(flatten)]
    image: crate::login::ImageSelector,
    /// A destination to wait for, `REGION` or `REGION:ACCOUNT` (repeatable). [default:
    /// every destination the image was sent to]
    #[arg(long = "destination", value_name = "REGION[:ACCOUNT]")]
    destinations: Vec<String>,
    /// How long to wait: `90s`, `10m`, `1h` or seconds.
    #[arg(long, default_value = "10m", value_parser = parse_duration)]
    timeout: Duration,
    /// The source registry and the credentials.
    #[command(flatten)]
    client: crate::login::EcrClientArgs,
}

/// `90s`, `10m`, `1h`, or a number of seconds.
pub(crate) fn parse_duration(s: &str) -> Result<Duration, String> {
    let (n, unit) = match s.char_indices().find(|(_, c)| !c.is_ascii_digit()) {
        Some((i, _)) => s.split_at(i),
        None => (s, "s"),
    };
    let n: u64 = n
        .parse()
        .map_err(|_| format!("{s:?} is not a duration like 90s, 10m or 1h"))?;
    let secs = match unit {
        "s" => n,
        "m" => n * 60,
        "h" => n * 3600,
        _ => return Err(format!("{s:?} is not a duration like 90s, 10m or 1h")),
    };
    Ok(Duration::from_secs(secs))
}

/// Runs `berth replication …`.
pub fn run(args: ReplicationArgs) -> anyhow::Result<()> {
    match args.command {
        ReplicationCommand::Wait(w) => wait(w),
    }
}

fn wait(a: WaitArgs) -> anyhow::Result<()> {
    let url = crate::login::registry_url(
        a.client.registry.clone(),
        "aws ecr describe-image-replication-status",
    )?;
    let region = crate::login::signing_region(a.client.region.clone());
    let body =
        serde_json::json!({"repositoryName": a.image.repository, "imageId": a.image.image_id()})
            .to_string();
    let wanted: Vec<(String, Option<String>)> = a
        .destinations
        .iter()
        .map(|d| match d.split_once(':') {
            Some((r, acct)) => (r.to_string(), Some(acct.to_string())),
            None => (d.clone(), None),
        })
        .collect();
    let image = a.image.display();
    let start = Instant::now();
    loop {
        let v = crate::login::call_ecr(
            &url,
            &region,
            a.client.profile.as_deref(),
            "DescribeImageReplicationStatus",
            body.as_bytes(),
        )?;
        let statuses = v["replicationStatuses"]
            .as_array()
            .context("the answer has no replicationStatuses")?;
        let mut pending = Vec::new();
        let mut seen = 0;
        for s in statuses {
            let (r, acct) = (
                s["region"].as_str().unwrap_or(""),
                s["registryId"].as_str().unwrap_or(""),
            );
            let asked = wanted.is_empty()
                || wanted
                    .iter()
                    .any(|(wr, wa)| wr == r && wa.as_deref().is_none_or(|x| x == acct));
            if !asked {
                continue;
            }
            seen += 1;
            match s["status"].as_str() {
                // The image arrived by digest, but the destination keeps the tag on
                // another image: waiting for a tag, that is not the image arriving.
                Some("COMPLETE")
                    if a.image.image_tag.is_some()
                        && s["failureCode"]
                            .as_str()
                            .is_some_and(|c| c.starts_with(TAG_IMMUTABLE_IN_DESTINATION)) =>
                {
                    anyhow::bail!(
                        "replication of {image} to {r}:{acct} is COMPLETE by digest, but the tag \
                         there still names another image: {}",
                        s["failureCode"].as_str().unwrap_or_default()
                    )
                }
                Some("COMPLETE") => {}
                Some("FAILED") => anyhow::bail!(
                    "replication of {image} to {r}:{acct} FAILED: {}",
                    s["failureCode"].as_str().unwrap_or("no failureCode")
                ),
                other => pending.push(format!("{r}:{acct} {}", other.unwrap_or("?"))),
            }
        }
        let missing: Vec<String> = wanted
            .iter()
            .filter(|(wr, wa)| {
                !statuses.iter().any(|s| {
                    s["region"].as_str() == Some(wr.as_str())
                        && wa
                            .as_deref()
                            .is_none_or(|x| s["registryId"].as_str() == Some(x))
                })
            })
            .map(|(r, acct)| format!("{r}:{}", acct.as_deref().unwrap_or("*")))
            .collect();
        if pending.is_empty() && missing.is_empty() && seen > 0 {
            println!("{image}: COMPLETE in {seen} destination(s)");
            return Ok(());
        }
        // A push enqueues its replications in its own transaction, so once the image
        // exists the destinations it goes to are all listed: one that is not will never
        // be (no rule matches), and waiting cannot change that.
        if !missing.is_empty() || seen == 0 {
            let mut why: Vec<String> = missing
                .iter()
                .map(|m| format!("{m} never sent (no rule matches)"))
                .collect();
            if seen == 0 && why.is_empty() {
                why.push("no replication destination for this image (no rule matches)".into());
            }
            anyhow::bail!("{image} will not replicate: {}", why.join(", "));
        }
        if start.elapsed() >= a.timeout {
            anyhow::bail!(
                "timed out after {:?} waiting for {image}: {}",
                a.timeout,
                pending.join(", ")
            );
        }
        std::thread::sleep(Duration::from_secs(1).min(a.timeout.saturating_sub(start.elapsed())));
    }
}
