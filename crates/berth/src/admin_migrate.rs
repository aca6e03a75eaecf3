//! `berth admin migrate`: copies an embedded-default registry (SQLite metadata and a
//! local blob directory) to the scale-out backends (PostgreSQL and S3-compatible
//! storage), verified and resumable (issue 14).
//!
//! Order: blobs first, then metadata, so the destination's metadata never names a blob
//! the destination storage lacks. Every blob goes through the destination store's
//! upload path, which hashes the bytes and refuses them unless they match their digest
//! (`BlobStore::commit`), and a blob already there with the right size is skipped — so
//! a rerun after an interruption copies only what is missing. The metadata copy is
//! [`berth_meta::migrate::copy_sqlite_to_postgres`] (upserts on primary keys, row counts
//! compared per table). The source's lock is held throughout: no `berth serve` may run
//! on it meanwhile. Sealed secrets are copied as they are: the nodes must be started with
//! the source's master key (`--master-key-file <data-dir>/master.key`).

use crate::config::{MetadataUrl, Settings, StorageUrl};
use anyhow::Context;
use berth_meta::migrate::{copy_sqlite_to_postgres, destination_conflict, linked_blobs, TableCopy};
use berth_meta::{PgMeta, SqliteMeta};
use berth_store::{BlobContent, BlobStore, FsStore};
use clap::Args;
use futures::StreamExt as _;
use serde_json::json;

/// `berth admin migrate`.
#[derive(Debug, Args)]
pub struct MigrateArgs {
    /// The PostgreSQL database to copy the metadata into (`postgres://user:password@host:port/db`).
    #[arg(long, value_name = "URL")]
    pub to: String,
    /// The blob storage to copy the blobs into (`s3://bucket/prefix`, or `file:///dir`).
    #[arg(long, value_name = "URL")]
    pub storage: String,
    /// The S3 endpoint (e.g. `http://127.0.0.1:8333` for SeaweedFS); as `berth serve
    /// --storage-s3-endpoint`. Credentials and region come from the standard AWS
    /// environment variables, as for `berth serve`.
    #[arg(long, value_name = "URL")]
    pub storage_s3_endpoint: Option<String>,
    /// The S3 region, as `berth serve --storage-s3-region`.
    #[arg(long, value_name = "REGION")]
    pub storage_s3_region: Option<String>,
}

/// Copies the registry `src` describes (its data directory's SQLite database and blob
/// directory) to `args`' backends, printing one JSON line per step and a summary.
/// Errors: the source is not the embedded default, a `berth serve` holds its lock, a
/// backend cannot be opened, a blob fails verification, or a table's row counts differ
/// after the copy (then the exit status is non-zero; running it again resumes).
pub async fn run(src: &Settings, args: MigrateArgs) -> anyhow::Result<()> {
    let MetadataUrl::Sqlite(db) = src.metadata_url()? else {
        anyhow::bail!("berth admin migrate copies from the embedded SQLite metadata; --metadata names another engine");
    };
    let StorageUrl::File(blob_dir) = src.storage_url()? else {
        anyhow::bail!("berth admin migrate copies from local blob storage");
    };
    anyhow::ensure!(
        db.exists(),
        "{} does not exist: nothing to migrate",
        db.display()
    );
    anyhow::ensure!(
        matches!(MetadataUrl::parse(&args.to)?, MetadataUrl::Postgres(_)),
        "--to must be a postgres:// URL"
    );
    let _locks = crate::backends::lock_local_state(src)
        .context("the source must not be served during the copy (stop berth serve first)")?;

    // The destination as a node would open it.
    let mut argv: Vec<String> = vec![
        "--data-dir".into(),
        src.data_dir.display().to_string(),
        "--metadata".into(),
        args.to.clone(),
        "--storage".into(),
        args.storage.clone(),
    ];
    if let Some(e) = &args.storage_s3_endpoint {
        argv.extend(["--storage-s3-endpoint".into(), e.clone()]);
    }
    if let Some(r) = &args.storage_s3_region {
        argv.extend(["--storage-s3-region".into(), r.clone()]);
    }
    let dst_settings = Settings::from_matches(&Settings::command().try_get_matches_from(argv)?)?;
    let dst_store = crate::backends::open_storage(&dst_settings).await?;
    let src_store = FsStore::open(&blob_dir)
        .with_context(|| format!("opening blob storage in {}", blob_dir.display()))?;
    let src_meta = SqliteMeta::open(&db)
        .await
        .with_context(|| format!("opening {}", db.display()))?;
    let redacted = MetadataUrl::parse(&args.to)?.redacted();
    let dst_meta = PgMeta::open(&args.to)
        .await
        .with_context(|| format!("opening {redacted}"))?;

    if let Some(why) = destination_conflict(&src_meta, &dst_meta).await? {
        anyhow::bail!("{redacted}: {why}; nothing was copied");
    }
    let blobs = linked_blobs(&src_meta).await?;
    let (mut copied, mut skipped, mut bytes) = (0u64, 0u64, 0u64);
    for (digest, size) in &blobs {
        if dst_store.stat(digest).await? == Some(*size) {
            skipped += 1;
            continue;
        }
        copy_blob(&src_store, dst_store.as_ref(), digest)
            .await
            .with_context(|| format!("copying blob {digest}"))?;
        copied += 1;
        bytes += size;
        if copied % 100 == 0 {
            println!(
                "{}",
                json!({"step": "blobs", "copied": copied, "skipped": skipped})
            );
        }
    }
    println!(
        "{}",
        json!({"step": "blobs", "total": blobs.len(), "copied": copied, "skipped": skipped, "bytes_copied": bytes})
    );

    let mut print = |t: &TableCopy| {
        println!(
            "{}",
            json!({"step": "table", "table": t.table, "source_rows": t.source_rows,
                   "destination_rows": t.destination_rows, "verified": t.verified()})
        );
    };
    let tables = copy_sqlite_to_postgres(&src_meta, &dst_meta, &mut print).await?;
    // Verify the blobs as the destination sees them now.
    let mut missing = Vec::new();
    for (digest, size) in &blobs {
        if dst_store.stat(digest).await? != Some(*size) {
            missing.push(digest.to_string());
        }
    }
    src_meta.close().await;
    dst_meta.close().await;
    let bad: Vec<&TableCopy> = tables.iter().filter(|t| !t.verified()).collect();
    println!(
        "{}",
        json!({"step": "verified", "tables": tables.len(), "tables_differing": bad.iter().map(|t| &t.table).collect::<Vec<_>>(),
               "blobs": blobs.len(), "blobs_missing": missing})
    );
    let grown: Vec<&str> = bad
        .iter()
        .filter(|t| t.destination_rows > t.source_rows)
        .map(|t| t.table.as_str())
        .collect();
    anyhow::ensure!(
        grown.is_empty(),
        "the destination has rows the source does not ({}): it has been used since an \
         earlier copy, so rerunning cannot make the two equal; migrate into an empty \
         database, or keep serving the destination",
        grown.join(", ")
    );
    anyhow::ensure!(
        bad.is_empty() && missing.is_empty(),
        "the copy is incomplete (see the lines above); run the same command again to resume"
    );
    eprintln!(
        "migrated: start every node with --metadata <the --to URL> --storage {} and \
         --master-key-file {} (the sealed secrets need the same key)",
        args.storage,
        src.master_key_file().display()
    );
    Ok(())
}

/// Streams one blob from the local store through the destination's upload path, which
/// verifies its digest before it becomes visible.
async fn copy_blob(
    src: &FsStore,
    dst: &dyn BlobStore,
    digest: &berth_core::Digest,
) -> anyhow::Result<()> {
    let file = match src.open(digest).await? {
        BlobContent::File { file, .. } => file,
        BlobContent::Object(_) => anyhow::bail!("the local store returned a non-file blob"),
    };
    let body =
        tokio_util::io::ReaderStream::with_capacity(tokio::fs::File::from_std(file), 1 << 20)
            .map(|r| r.map_err(|e| e.to_string()))
            .boxed();
    let id = dst.create_upload("berth-admin-migrate").await?;
    let result = async {
        dst.append(&id, Some(0), body).await?;
        dst.commit(&id, digest).await
    }
    .await;
    if result.is_err() {
        let _ = dst.cancel(&id).await;
    }
    result?;
    Ok(())
}
