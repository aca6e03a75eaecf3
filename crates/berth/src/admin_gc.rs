//! `berth admin gc [--dry-run]`: one online garbage collection run from the command line
//! (issue 12), on the stores `berth serve` would open with the same settings. Safe while
//! servers run (the collection's claims and the pushes' pins are in the metadata
//! database: `berth_meta::gc`), so it takes no lock. A dry run prints every blob that
//! would go and the bytes it would reclaim; a real run prints what went, the bytes
//! reclaimed, the objects swept and the duration.

use crate::config::Settings;
use berth_registry::gc::{GcKind, GcOptions, GcReport};
use berth_registry::{Registry, RegistryConfig};
use clap::Args;

/// `berth admin gc` arguments.
#[derive(Debug, Args)]
pub struct GcArgs {
    /// Print what would be swept and how many bytes it holds; change nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Grace window in seconds (default: the server's `gc_grace_secs`).
    #[arg(long, value_name = "SECS")]
    pub grace_secs: Option<u64>,
    /// The blob storage, as `berth serve --storage` takes it. [default: the config
    /// file's, else the data directory]
    #[arg(long, env = "BERTH_STORAGE", value_name = "URL")]
    pub storage: Option<String>,
    /// The S3 endpoint, as `berth serve --storage-s3-endpoint`.
    #[arg(long, env = "BERTH_STORAGE_S3_ENDPOINT", value_name = "URL")]
    pub storage_s3_endpoint: Option<String>,
    /// The S3 region, as `berth serve --storage-s3-region`.
    #[arg(long, env = "BERTH_STORAGE_S3_REGION", value_name = "REGION")]
    pub storage_s3_region: Option<String>,
    /// Print the report as one JSON object instead of lines.
    #[arg(long)]
    pub json: bool,
}

/// Runs `berth admin gc` with the server settings `s` (whose storage flags `args` may
/// override). Errors: the stores cannot be opened, or the collection failed.
pub async fn run(s: &Settings, args: GcArgs) -> anyhow::Result<()> {
    let mut s = s.clone();
    if let Some(v) = args.storage {
        s.storage = Some(v);
    }
    if let Some(v) = args.storage_s3_endpoint {
        s.storage_s3_endpoint = Some(v);
    }
    if let Some(v) = args.storage_s3_region {
        s.storage_s3_region = Some(v);
    }
    if let crate::config::MetadataUrl::Sqlite(db) = s.metadata_url()? {
        anyhow::ensure!(
            db.exists(),
            "{} does not exist: run `berth serve --data-dir {}` once first",
            db.display(),
            s.data_dir.display()
        );
    }
    let store = crate::backends::open_storage(&s).await?;
    let meta = crate::backends::open_metadata(&s).await?;
    let registry = Registry::new(
        store,
        meta.clone(),
        RegistryConfig {
            manifest_cache: false,
            ..RegistryConfig::default()
        },
    );
    let opts = GcOptions {
        grace: args
            .grace_secs
            .map(std::time::Duration::from_secs)
            .unwrap_or_else(|| s.gc_grace()),
        dry_run: args.dry_run,
        list: true,
    };
    let report = registry.collect_garbage(&opts).await;
    meta.close().await;
    let report = report?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print!("{}", render(&report, opts.grace));
    }
    anyhow::ensure!(
        report.failed == 0,
        "{} blobs could not be deleted from storage (see the log); the next run retries them",
        report.failed
    );
    Ok(())
}

/// The human-readable report: one line per item, then the totals.
fn render(r: &GcReport, grace: std::time::Duration) -> String {
    let mut out = String::new();
    let verb = if r.dry_run { "would sweep" } else { "swept" };
    for i in &r.items {
        let kind = match i.kind {
            GcKind::Unreferenced => "unreferenced",
            GcKind::Stray => "stray",
            GcKind::Resumed => "resumed",
        };
        out.push_str(&format!("{verb} {} {} bytes ({kind})\n", i.digest, i.size));
    }
    if r.dry_run {
        out.push_str(&format!(
            "dry run (grace {}s): {} objects would be swept ({} unreferenced blobs, {} stray), {} bytes would be reclaimed\n",
            grace.as_secs(),
            r.objects(),
            r.blobs,
            r.strays,
            r.bytes
        ));
    } else {
        out.push_str(&format!(
            "garbage collection (grace {}s): {} objects swept ({} unreferenced blobs, {} stray, {} resumed), {} bytes reclaimed in {:.3}s\n",
            grace.as_secs(),
            r.objects(),
            r.blobs,
            r.strays,
            r.resumed,
            r.bytes,
            r.duration_secs
        ));
    }
    out
}
