//! The PostgreSQL backend (scale-out), on `sqlx`.
//!
//! Several Berth nodes share one PostgreSQL database: it is the distributed engine, there
//! is no clustering of our own. One connection pool per node; every state change is one
//! transaction (DESIGN.md invariant 3) at PostgreSQL's default `READ COMMITTED`, with
//! the rows a check depends on locked (`SELECT … FOR UPDATE` / `FOR SHARE`) so the
//! manifest-visibility checks of invariant 2 hold against concurrent writers on other
//! nodes. The job queue claims with `FOR UPDATE SKIP LOCKED`. Migrations are embedded
//! (`migrations/postgres/`, the same versions as `migrations/sqlite/`) and run under
//! PostgreSQL's advisory lock, so nodes starting together migrate once.
//!
//! Queries are built at run time (`sqlx::query`, not the `query!` macros), so building
//! Berth never needs a database nor committed offline query data.

use crate::{MetaError, Result};
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};
use sqlx::{ConnectOptions, Postgres, Transaction};
use std::str::FromStr;
use std::time::Duration;

/// Connections per node unless the URL's `max_connections` query parameter says otherwise.
pub const DEFAULT_MAX_CONNECTIONS: u32 = 16;

/// Metadata in a PostgreSQL database shared by every node.
pub struct PgMeta {
    pub(crate) pool: PgPool,
}

impl PgMeta {
    /// Connects to `url` (`postgres://user:password@host:port/database`, libpq-style
    /// query parameters such as `sslmode` accepted; Berth's own `max_connections=N`
    /// sizes the pool) and applies migrations.
    /// Errors: the URL does not parse ([`MetaError::Corrupt`] naming it), the database
    /// is unreachable, or migrating failed.
    pub async fn open(url: &str) -> Result<PgMeta> {
        let (url, max) = split_pool_size(url)?;
        let opts = PgConnectOptions::from_str(&url)
            .map_err(|e| MetaError::Corrupt(format!("metadata URL: {e}")))?
            .log_slow_statements(log::LevelFilter::Debug, Duration::from_secs(1));
        let pool = PgPoolOptions::new()
            .max_connections(max)
            .min_connections(1)
            .acquire_timeout(Duration::from_secs(30))
            .connect_with(opts)
            .await?;
        sqlx::migrate!("./migrations/postgres").run(&pool).await?;
        Ok(PgMeta { pool })
    }

    /// Starts a write transaction, for callers that enqueue jobs together with their own
    /// writes. Errors: the database failed.
    pub async fn begin_write(&self) -> Result<Transaction<'static, Postgres>> {
        Ok(self.pool.begin().await?)
    }

    /// Closes the pool, waiting for running queries.
    pub async fn close(&self) {
        self.pool.close().await;
    }
}

/// Takes Berth's `max_connections` parameter out of the URL (libpq would reject it).
fn split_pool_size(url: &str) -> Result<(String, u32)> {
    let Some((base, query)) = url.split_once('?') else {
        return Ok((url.to_string(), DEFAULT_MAX_CONNECTIONS));
    };
    let mut max = DEFAULT_MAX_CONNECTIONS;
    let mut kept = Vec::new();
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        match pair.split_once('=') {
            Some(("max_connections", v)) => {
                max = v.parse().ok().filter(|n| *n > 0).ok_or_else(|| {
                    MetaError::Corrupt(format!(
                        "metadata URL: max_connections={v} is not a positive integer"
                    ))
                })?;
            }
            _ => kept.push(pair),
        }
    }
    let url = if kept.is_empty() {
        base.to_string()
    } else {
        format!("{base}?{}", kept.join("&"))
    };
    Ok((url, max))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pool_size_comes_out_of_the_url() {
        let (u, n) =
            split_pool_size("postgres://a@h/db?sslmode=disable&max_connections=4").unwrap();
        assert_eq!((u.as_str(), n), ("postgres://a@h/db?sslmode=disable", 4));
        let (u, n) = split_pool_size("postgres://a@h/db").unwrap();
        assert_eq!(
            (u.as_str(), n),
            ("postgres://a@h/db", DEFAULT_MAX_CONNECTIONS)
        );
        assert!(split_pool_size("postgres://h/db?max_connections=0").is_err());
    }
}
