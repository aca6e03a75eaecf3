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

/// ECR's finding severities, lowest first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, ValueEnum)]
#[value(rename_all = "UPPER")]
pub enum Severity {
    /// No rating.
    Undefined,
    /// `INFORMATIONAL`.
    Informational,
    /// `LOW`.
    Low,
    /// `MEDIUM`.
    Medium,
    /// `HIGH`.
    High,
    /// `CRITICAL`.
    Critical,
}

impl Severity {
    /// The severity ECR names `s` (`UNDEFINED` for anything else).
    pub fn parse(s: &str) -> Severity {
        match s {
            "INFORMATIONAL" => Severity::Informational,
            "LOW" => Severity::Low,
            "MEDIUM" => Severity::Medium,
            "HIGH" => Severity::High,
            "CRITICAL" => Severity::Critical,
            _ => Severity::Undefined,
        }
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
    /// The repository.
    #[arg(long)]
    repository: String,
    /// The image's tag.
    #[arg(
        long,
        conflicts_with = "image_digest",
        required_unless_present = "image_digest"
    )]
    image_tag: Option<String>,
    /// The image's digest.
    #[arg(long)]
    image_digest: Option<String>,
    /// Fail on findings of this severity or above.
    #[arg(long, value_enum, ignore_case = true, default_value = "HIGH")]
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
    /// The registry's address. [default: http://127.0.0.1:5000]
    #[arg(long, env = "BERTH_REGISTRY", value_name = "URL")]
    registry: Option<String>,
    /// Profile in the shared credentials file.
    #[arg(long, env = "AWS_PROFILE")]
    profile: Option<String>,
    /// Region to sign for (the registry's). [default: us-east-1]
    #[arg(long, env = "AWS_REGION")]
    region: Option<String>,
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
    let url =
        crate::login::registry_url(a.registry.clone(), "aws ecr describe-image-scan-findings")?;
    let region = crate::login::signing_region(a.region.clone());
    let mut image_id = serde_json::Map::new();
    if let Some(t) = &a.image_tag {
        image_id.insert("imageTag".into(), t.clone().into());
    }
    if let Some(d) = &a.image_digest {
        image_id.insert("imageDigest".into(), d.clone().into());
    }
    let image = match (&a.image_tag, &a.image_digest) {
        (Some(t), _) => format!("{}:{t}", a.repository),
        (_, Some(d)) => format!("{}@{d}", a.repository),
        _ => a.repository.clone(),
    };
    let deadline = Instant::now() + a.timeout;
    let mut findings = Vec::new();
    let mut next: Option<String> = None;
    let mut digest = String::new();
    loop {
        let mut body = serde_json::json!({
            "repositoryName": a.repository, "imageId": image_id, "maxResults": 1000,
        });
        if let Some(n) = &next {
            body["nextToken"] = n.clone().into();
        }
        let answer = crate::login::call_ecr(
            &url,
            &region,
            a.profile.as_deref(),
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
        let severity = Severity::parse(f["severity"].as_str().unwrap_or(""));
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
            std::cmp::Reverse(Severity::parse(f["severity"].as_str().unwrap_or(""))),
            f["name"].as_str().unwrap_or("").to_string(),
        )
    });
    let threshold = format!("{:?}", a.fail_on).to_uppercase();
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
