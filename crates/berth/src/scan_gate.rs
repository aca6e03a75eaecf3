//! `berth scan gate` (issues 11 and 13): a CI security gate. It waits for an image's scan
//! (a scan on push may not have started yet: `ScanNotFoundException` is waited through,
//! like `IN_PROGRESS`), reads every page of `DescribeImageScanFindings` through the ECR API
//! (SigV4-signed, credentials found as the AWS CLI finds them, like `berth login`), and
//! prints the findings at or above `--fail-on` that `--ignore` does not accept: severity,
//! vulnerability, package, installed version, fixed version (a table, or `--format json`).
//! Exit status 0 when there are none; non-zero when there are, when the scan `FAILED` or
//! the image is `UNSUPPORTED_IMAGE` (with ECR's description), or when the timeout passes.
//!
//! Severity order: ECR's `findingSeverityCounts` keys, `INFORMATIONAL` < `LOW` < `MEDIUM`
//! < `HIGH` < `CRITICAL` (`UNDEFINED` below them all).

use anyhow::Context;
use berth_scan::Severity;
use clap::{Args, Subcommand, ValueEnum};
use std::time::{Duration, Instant};

/// `berth scan`.
#[derive(Debug, Args)]
pub struct ScanArgs {
    #[command(subcommand)]
    command: ScanCommand,
}

#[derive(Debug, Subcommand)]
enum ScanCommand {
    /// Wait for an image's scan and fail (exit 1) when it has findings at or above a
    /// severity, listing them.
    Gate(GateArgs),
}

/// ECR's severity named `s` (`UNDEFINED` for anything else).
fn severity(s: &str) -> Severity {
    Severity::ALL
        .into_iter()
        .find(|v| v.as_str() == s)
        .unwrap_or(Severity::Undefined)
}

/// `--fail-on`'s value: one of ECR's severities, in any case.
fn parse_severity(s: &str) -> Result<Severity, String> {
    let v = severity(&s.to_ascii_uppercase());
    if v.as_str().eq_ignore_ascii_case(s) {
        Ok(v)
    } else {
        Err(format!(
            "{s:?} is not a severity: CRITICAL, HIGH, MEDIUM, LOW, INFORMATIONAL or UNDEFINED"
        ))
    }
}

/// Output formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Format {
    Table,
    Json,
}

/// `berth scan gate`.
#[derive(Debug, Args)]
pub struct GateArgs {
    /// The image.
    #[command(flatten)]
    image: crate::login::ImageSelector,
    /// Fail on findings of this severity or above.
    #[arg(long, default_value = "HIGH", value_parser = parse_severity)]
    fail_on: Severity,
    /// A vulnerability accepted (its name, e.g. CVE-2023-43804; repeatable).
    #[arg(long = "ignore", value_name = "NAME")]
    ignore: Vec<String>,
    /// How long to wait for the scan: `90s`, `10m`, `1h` or seconds.
    #[arg(long, default_value = "10m", value_parser = crate::replication_wait::parse_duration)]
    timeout: Duration,
    /// `table` or `json` (the failing findings as ECR's finding objects).
    #[arg(long, value_enum, default_value = "table")]
    format: Format,
    /// The registry and the credentials.
    #[command(flatten)]
    client: crate::login::EcrClientArgs,
}

fn attribute<'a>(finding: &'a serde_json::Value, key: &str) -> &'a str {
    finding["attributes"]
        .as_array()
        .and_then(|a| a.iter().find(|x| x["key"] == key))
        .and_then(|x| x["value"].as_str())
        .unwrap_or("-")
}

/// Runs `berth scan …`.
pub fn run(args: ScanArgs) -> anyhow::Result<()> {
    let ScanCommand::Gate(a) = args.command;
    let url = crate::login::registry_url(
        a.client.registry.clone(),
        "aws ecr describe-image-scan-findings",
    )?;
    let region = crate::login::signing_region(a.client.region.clone());
    let image_id = a.image.image_id();
    let image = a.image.display();
    let deadline = Instant::now() + a.timeout;
    let mut findings = Vec::new();
    let mut next: Option<String> = None;
    let mut digest = String::new();
    loop {
        let mut body = serde_json::json!({
            "repositoryName": a.image.repository, "imageId": image_id, "maxResults": 1000,
        });
        if let Some(n) = &next {
            body["nextToken"] = n.clone().into();
        }
        let answer = crate::login::call_ecr(
            &url,
            &region,
            a.client.profile.as_deref(),
            "DescribeImageScanFindings",
            body.to_string().as_bytes(),
        );
        let v = match answer {
            Ok(v) => v,
            Err(e) if format!("{e}").contains("ScanNotFoundException") && next.is_none() => {
                anyhow::ensure!(
                    Instant::now() < deadline,
                    "{image} has not been scanned within {:?} ({e}); start a scan with \
                     `aws ecr start-image-scan` or turn on scan on push",
                    a.timeout
                );
                std::thread::sleep(Duration::from_secs(1));
                continue;
            }
            Err(e) => return Err(e),
        };
        let status = v["imageScanStatus"]["status"].as_str().unwrap_or("");
        match status {
            "COMPLETE" | "ACTIVE" => {}
            "FAILED"
            | "UNSUPPORTED_IMAGE"
            | "SCAN_ELIGIBILITY_EXPIRED"
            | "FINDINGS_UNAVAILABLE" => {
                anyhow::bail!(
                    "the scan of {image} is {status}: {}",
                    v["imageScanStatus"]["description"]
                        .as_str()
                        .unwrap_or("no description")
                )
            }
            _ => {
                anyhow::ensure!(
                    Instant::now() < deadline,
                    "the scan of {image} is still {status} after {:?}",
                    a.timeout
                );
                std::thread::sleep(Duration::from_secs(1));
                continue;
            }
        }
        if digest.is_empty() {
            digest = v["imageId"]["imageDigest"]
                .as_str()
                .unwrap_or_default()
                .to_string();
        }
        if let Some(list) = v["imageScanFindings"]["findings"].as_array() {
            findings.extend(list.iter().cloned());
        }
        next = v["nextToken"].as_str().map(str::to_string);
        if next.is_none() {
            break;
        }
    }
    let total = findings.len();
    let (mut failing, mut ignored) = (Vec::new(), 0usize);
    for f in findings {
        let severity = severity(f["severity"].as_str().unwrap_or(""));
        if severity < a.fail_on {
            continue;
        }
        let name = f["name"].as_str().unwrap_or("");
        if a.ignore.iter().any(|i| i == name) {
            ignored += 1;
            continue;
        }
        failing.push(f);
    }
    failing.sort_by_key(|f| {
        (
            std::cmp::Reverse(severity(f["severity"].as_str().unwrap_or(""))),
            f["name"].as_str().unwrap_or("").to_string(),
        )
    });
    let threshold = a.fail_on.as_str();
    match a.format {
        Format::Json => println!(
            "{}",
            serde_json::to_string_pretty(&serde_json::json!({
                "image": image, "imageDigest": digest, "failOn": threshold,
                "findings": failing, "ignored": ignored, "total": total,
            }))
            .context("printing")?
        ),
        Format::Table if !failing.is_empty() => {
            println!(
                "{:<10} {:<20} {:<24} {:<20} FIXED IN",
                "SEVERITY", "VULNERABILITY", "PACKAGE", "INSTALLED"
            );
            for f in &failing {
                println!(
                    "{:<10} {:<20} {:<24} {:<20} {}",
                    f["severity"].as_str().unwrap_or("-"),
                    f["name"].as_str().unwrap_or("-"),
                    attribute(f, "package_name"),
                    attribute(f, "package_version"),
                    attribute(f, "fixed_in_versions"),
                );
            }
        }
        Format::Table => {}
    }
    anyhow::ensure!(
        failing.is_empty(),
        "{} finding(s) at or above {threshold} in {image} ({digest}); {ignored} ignored, {total} in all",
        failing.len()
    );
    eprintln!(
        "no finding at or above {threshold} in {image} ({digest}); {ignored} ignored, {total} in all"
    );
    Ok(())
}
