//! The harness of the store suites that run on both engines (lifecycle_store.rs,
//! scan_store.rs): each scenario once on SQLite (a temporary file) and once on
//! PostgreSQL (a fresh database on berth-test-support's throwaway server; skipped loudly
//! without PostgreSQL, a failure under `CI=true`).
#![allow(dead_code)]

use berth_meta::{MetaStore, PgMeta, SqliteMeta};
use berth_test_support::postgres::Postgres;
use std::future::Future;
use std::sync::Arc;

/// One backend under test.
pub struct Backend {
    pub name: &'static str,
    pub meta: Arc<dyn MetaStore>,
    pub url: String,
}

/// Runs `scenario` on SQLite, then on PostgreSQL.
pub async fn on_both<F, Fut>(test: &str, scenario: F)
where
    F: Fn(Backend) -> Fut,
    Fut: Future<Output = ()>,
{
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("meta.db");
    let meta = SqliteMeta::open(&path).await.unwrap();
    scenario(Backend {
        name: "sqlite",
        meta: Arc::new(meta),
        url: format!("sqlite://{}", path.display()),
    })
    .await;
    drop(dir);
    if let Some(pg) = Postgres::shared(test) {
        let url = pg.database();
        let meta = PgMeta::open(&url).await.unwrap();
        scenario(Backend {
            name: "postgres",
            meta: Arc::new(meta),
            url,
        })
        .await;
    }
}

/// The kinds of the queued jobs, oldest first (plain SQL: the queue is another suite's
/// subject).
pub async fn job_kinds(b: &Backend) -> Vec<String> {
    let sql = "SELECT kind FROM jobs ORDER BY id";
    if b.name == "sqlite" {
        let pool = sqlx::SqlitePool::connect(&b.url).await.unwrap();
        let out = sqlx::query_scalar(sql).fetch_all(&pool).await.unwrap();
        pool.close().await;
        out
    } else {
        let pool = sqlx::PgPool::connect(&b.url).await.unwrap();
        let out = sqlx::query_scalar(sql).fetch_all(&pool).await.unwrap();
        pool.close().await;
        out
    }
}
