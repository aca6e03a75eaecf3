//! The shared test suite of [`ScanStore`] (issue 11: imported OSV records with each
//! source's timestamp, layer inventories by digest, image scans, the registry's scanning
//! configuration), run once on SQLite (a temporary file) and once on PostgreSQL (a fresh
//! database on berth-test-support's throwaway server). Both must give the same answers.
//!
//! Without PostgreSQL installed the PostgreSQL half is skipped loudly; with `CI=true`
//! it fails instead (TESTING.md).

use berth_core::{Digest, RepositoryName};
use berth_meta::jobs::NewJob;
use berth_meta::scanning::{ImageScanRow, ScanStart, ScanStatus, VulnRecordRow};
use berth_meta::NoJobs;

mod common;

use common::{job_kinds, on_both};

fn repo(s: &str) -> RepositoryName {
    RepositoryName::parse(s).unwrap()
}

fn record(id: &str, source: &str, modified: &str) -> VulnRecordRow {
    VulnRecordRow {
        id: id.into(),
        source: source.into(),
        modified: modified.into(),
        record: format!(r#"{{"id":"{id}","modified":"{modified}"}}"#),
    }
}

// `berth vulndb import`: records replace by ID, each source keeps its newest `modified`
// (ECR's vulnerabilitySourceUpdatedAt) and import time, the generation moves only when
// something changed.
#[tokio::test]
async fn imports_keep_each_sources_timestamp_and_a_generation() {
    on_both("scan_imports", |b| async move {
        let m = b.meta.as_ref();
        assert_eq!(m.vuln_db_generation().await.unwrap(), 0);
        let first = [
            record("A", "PyPI", "2024-01-01T00:00:00Z"),
            record("B", "PyPI", "2024-03-01T00:00:00Z"),
            record("G", "Go", "2026-08-21T00:00:00Z"),
        ];
        let o = m.import_vuln_records(&first, 100).await.unwrap();
        assert_eq!(
            (o.inserted, o.updated, o.unchanged, o.generation),
            (3, 0, 0, 1),
            "{}",
            b.name
        );
        let o = m.import_vuln_records(&first, 200).await.unwrap();
        assert_eq!(
            (o.inserted, o.updated, o.unchanged, o.generation),
            (0, 0, 3, 1),
            "{}: nothing new",
            b.name
        );
        let o = m
            .import_vuln_records(&[record("A", "PyPI", "2024-02-01T00:00:00Z")], 300)
            .await
            .unwrap();
        assert_eq!((o.inserted, o.updated, o.generation), (0, 1, 2));
        let sources = m.vuln_sources().await.unwrap();
        let view: Vec<(&str, &str, i64, i64)> = sources
            .iter()
            .map(|s| {
                (
                    s.source.as_str(),
                    s.updated_at.as_str(),
                    s.imported_at,
                    s.records,
                )
            })
            .collect();
        assert_eq!(
            view,
            [
                ("Go", "2026-08-21T00:00:00Z", 200, 1),
                ("PyPI", "2024-03-01T00:00:00Z", 300, 2)
            ],
            "{}",
            b.name
        );
        let texts = m.vuln_records().await.unwrap();
        assert_eq!(texts.len(), 3);
        assert!(texts[0].contains("2024-02-01"), "{}: A replaced", b.name);
    })
    .await;
}

// A layer's inventory is computed once per digest (per scanner format), shared by every
// repository.
#[tokio::test]
async fn layer_inventories_are_cached_by_digest() {
    on_both("scan_layers", |b| async move {
        let m = b.meta.as_ref();
        let d = Digest::sha256_of(b"layer");
        assert!(m.layer_inventory(&d).await.unwrap().is_none());
        m.put_layer_inventory(&d, "{\"files\":{}}", 1)
            .await
            .unwrap();
        m.put_layer_inventory(&d, "{\"other\":1}", 2).await.unwrap();
        assert_eq!(
            m.layer_inventory(&d).await.unwrap().as_deref(),
            Some("{\"files\":{}}"),
            "{}: first writer wins",
            b.name
        );
        // A newer scanner format replaces it.
        m.replace_layer_inventory(&d, "{\"format\":1,\"files\":{}}", 3)
            .await
            .unwrap();
        assert_eq!(
            m.layer_inventory(&d).await.unwrap().as_deref(),
            Some("{\"format\":1,\"files\":{}}"),
            "{}: replaced",
            b.name
        );
    })
    .await;
}

// ECR StartImageScan / DescribeImageScanFindings: IN_PROGRESS with its `scan.image` job
// in one transaction, one scan at a time per image, COMPLETE once by the scan that
// started; continuous scanning lists scans matched against an older database and
// re-matches them; scans go with their image and repository.
#[tokio::test]
async fn scans_start_with_their_job_finish_once_and_rematch() {
    on_both("scan_images", |b| async move {
        let m = b.meta.as_ref();
        let (r, d) = (repo("team/app"), Digest::sha256_of(b"manifest"));
        let job = NewJob::new("scan.image", serde_json::json!({"repository": "team/app"}));
        assert_eq!(
            m.start_image_scan(&r, &d, "", &job, 100, 600)
                .await
                .unwrap(),
            ScanStart::RepositoryNotFound
        );
        m.create_repository(&r).await.unwrap();
        assert!(m.image_scan(&r, &d).await.unwrap().is_none());
        assert_eq!(
            m.start_image_scan(&r, &d, "started", &job, 100, 600)
                .await
                .unwrap(),
            ScanStart::Started
        );
        assert_eq!(
            m.start_image_scan(&r, &d, "again", &job, 200, 600)
                .await
                .unwrap(),
            ScanStart::InProgress
        );
        assert_eq!(job_kinds(&b).await, ["scan.image"], "{}", b.name);
        let s = m.image_scan(&r, &d).await.unwrap().unwrap();
        assert_eq!(
            (s.status, s.description.as_str(), s.started_at),
            (ScanStatus::InProgress, "started", 100)
        );

        let done = ImageScanRow {
            status: ScanStatus::Complete,
            description: "The scan was completed successfully.".into(),
            started_at: 100,
            completed_at: Some(150),
            inventory: Some("{}".into()),
            findings: Some("[1]".into()),
            db_generation: Some(1),
        };
        assert!(
            !m.finish_image_scan(&r, &d, 99, &done).await.unwrap(),
            "{}: a stale scan",
            b.name
        );
        assert!(m.finish_image_scan(&r, &d, 100, &done).await.unwrap());
        assert_eq!(m.image_scan(&r, &d).await.unwrap().unwrap(), done);

        // A stale in-progress scan (its job died) can be restarted.
        let other = Digest::sha256_of(b"other");
        assert_eq!(
            m.start_image_scan(&r, &other, "", &job, 100, 600)
                .await
                .unwrap(),
            ScanStart::Started
        );
        assert_eq!(
            m.start_image_scan(&r, &other, "", &job, 800, 600)
                .await
                .unwrap(),
            ScanStart::Started
        );

        let stale = m.stale_image_scans(2, None, 10).await.unwrap();
        assert_eq!(stale.len(), 1, "{}: only complete scans", b.name);
        assert_eq!(
            (stale[0].repository.as_str(), stale[0].digest.clone()),
            ("team/app", d.to_string())
        );
        assert!(m.stale_image_scans(1, None, 10).await.unwrap().is_empty());
        assert!(m
            .stale_image_scans(2, Some(("team/app", &d.to_string())), 10)
            .await
            .unwrap()
            .is_empty());
        assert!(m
            .rematch_image_scan(&r, &d, 100, "[2]", 2, 300)
            .await
            .unwrap());
        assert!(!m
            .rematch_image_scan(&r, &d, 99, "[3]", 2, 300)
            .await
            .unwrap());
        let s = m.image_scan(&r, &d).await.unwrap().unwrap();
        assert_eq!(
            (s.findings.as_deref(), s.db_generation, s.completed_at),
            (Some("[2]"), Some(2), Some(300))
        );

        assert!(m.forget_image_scan(&r, &other).await.unwrap());
        assert!(!m.forget_image_scan(&r, &other).await.unwrap());
        m.delete_repository(&r, true, &NoJobs).await.unwrap();
        m.create_repository(&r).await.unwrap();
        assert!(
            m.image_scan(&r, &d).await.unwrap().is_none(),
            "{}: gone with the repository",
            b.name
        );
    })
    .await;
}

// PutRegistryScanningConfiguration / GetRegistryScanningConfiguration.
#[tokio::test]
async fn registry_scanning_configuration_is_one_row() {
    on_both("scan_registry", |b| async move {
        let m = b.meta.as_ref();
        assert!(m.registry_scanning().await.unwrap().is_none());
        m.put_registry_scanning("BASIC", "[]", 1).await.unwrap();
        m.put_registry_scanning("ENHANCED", "[{\"scanFrequency\":\"CONTINUOUS_SCAN\"}]", 2)
            .await
            .unwrap();
        assert_eq!(
            m.registry_scanning().await.unwrap(),
            Some((
                "ENHANCED".to_owned(),
                "[{\"scanFrequency\":\"CONTINUOUS_SCAN\"}]".to_owned()
            )),
            "{}",
            b.name
        );
    })
    .await;
}
