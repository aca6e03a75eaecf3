//! [`IamStore`] for [`PgMeta`]: the identity tables of `migrations/postgres/0002_iam.sql`,
//! the statements of [`crate::sqlite_iam`] ported.
//!
//! Concurrency across nodes (PostgreSQL at `READ COMMITTED`): every identity write starts
//! by locking the single `iam_generation` row (`SELECT … FOR UPDATE`) and ends by bumping
//! it, so identity writers run one at a time — what `BEGIN IMMEDIATE` gives on SQLite.
//! That keeps the read-then-write operations exact: `create_account` with `is_default`
//! clears the flag on every other account with no second default slipping in
//! concurrently, and `set_repository_policy` / `set_registry_policy` return the document
//! they really replaced. Identity writes are rare (administration), so serialising them
//! costs nothing. [`IamStore::load_iam`] reads in one `REPEATABLE READ` transaction, so
//! the snapshot and its generation are consistent across the tables (at `READ COMMITTED`
//! each statement would see a different moment). The audit trail and settings are not
//! identity data and take no lock: appends and prunes touch disjoint rows.

use crate::iam::{
    AccessKeyRow, AccountRow, AuditQuery, AuditRow, IamData, IamStore, IdentityPolicyRow,
    PrincipalRow,
};
use crate::sqlite::now;
use crate::{PgMeta, Result};
use sqlx::{Postgres, Transaction};

impl PgMeta {
    /// Starts an identity write: a transaction holding the `iam_generation` row lock,
    /// which serialises identity writers across nodes (module doc).
    async fn begin_iam_write(&self) -> Result<Transaction<'static, Postgres>> {
        let mut tx = self.pool.begin().await?;
        sqlx::query("SELECT generation FROM iam_generation WHERE id = 1 FOR UPDATE")
            .execute(&mut *tx)
            .await?;
        Ok(tx)
    }
}

/// Ends an identity write: bumps the generation in the same transaction and commits,
/// so servers holding a snapshot know to reload.
async fn commit_bumped(mut tx: Transaction<'_, Postgres>) -> Result<()> {
    sqlx::query("UPDATE iam_generation SET generation = generation + 1 WHERE id = 1")
        .execute(&mut *tx)
        .await?;
    tx.commit().await?;
    Ok(())
}

type KeyTuple = (
    String,
    String,
    String,
    String,
    Vec<u8>,
    Option<String>,
    Option<String>,
    Option<i64>,
    i64,
);

fn key_row(t: KeyTuple) -> AccessKeyRow {
    AccessKeyRow {
        access_key_id: t.0,
        account_id: t.1,
        kind: t.2,
        name: t.3,
        secret_enc: t.4,
        session_name: t.5,
        session_token_hash: t.6,
        expires_at: t.7,
        created_at: t.8,
    }
}

type AuditTuple = (
    i64,
    i64,
    String,
    String,
    String,
    String,
    String,
    Option<String>,
);

#[async_trait::async_trait]
impl IamStore for PgMeta {
    async fn iam_generation(&self) -> Result<i64> {
        let (g,) =
            sqlx::query_as::<_, (i64,)>("SELECT generation FROM iam_generation WHERE id = 1")
                .fetch_one(&self.pool)
                .await?;
        Ok(g)
    }

    async fn load_iam(&self) -> Result<IamData> {
        // One REPEATABLE READ transaction: every statement sees the same snapshot.
        let mut tx = self.pool.begin().await?;
        sqlx::query("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ READ ONLY")
            .execute(&mut *tx)
            .await?;
        let (generation,) =
            sqlx::query_as::<_, (i64,)>("SELECT generation FROM iam_generation WHERE id = 1")
                .fetch_one(&mut *tx)
                .await?;
        let accounts = sqlx::query_as::<_, (String, String, bool, i64)>(
            "SELECT account_id, name, is_default, created_at FROM iam_accounts ORDER BY account_id",
        )
        .fetch_all(&mut *tx)
        .await?
        .into_iter()
        .map(|(account_id, name, is_default, created_at)| AccountRow {
            account_id,
            name,
            is_default,
            created_at,
        })
        .collect();
        let principals = sqlx::query_as::<_, (String, String, String, String, String, i64)>(
            "SELECT account_id, kind, name, principal_id, tags, created_at FROM iam_principals \
             ORDER BY account_id, kind, name",
        )
        .fetch_all(&mut *tx)
        .await?
        .into_iter()
        .map(
            |(account_id, kind, name, principal_id, tags, created_at)| PrincipalRow {
                account_id,
                kind,
                name,
                principal_id,
                tags,
                created_at,
            },
        )
        .collect();
        let access_keys = sqlx::query_as::<_, KeyTuple>(
            "SELECT access_key_id, account_id, kind, name, secret_enc, session_name, \
             session_token_hash, expires_at, created_at FROM iam_access_keys \
             ORDER BY account_id, kind, name, created_at",
        )
        .fetch_all(&mut *tx)
        .await?
        .into_iter()
        .map(key_row)
        .collect();
        let policies = sqlx::query_as::<_, (String, String, String, String, String)>(
            "SELECT account_id, kind, name, policy_name, document FROM iam_policies \
             ORDER BY account_id, kind, name, policy_name",
        )
        .fetch_all(&mut *tx)
        .await?
        .into_iter()
        .map(
            |(account_id, kind, name, policy_name, document)| IdentityPolicyRow {
                account_id,
                kind,
                name,
                policy_name,
                document,
            },
        )
        .collect();
        let repository_policies = sqlx::query_as::<_, (String, String)>(
            "SELECT repository, document FROM repository_policies ORDER BY repository",
        )
        .fetch_all(&mut *tx)
        .await?;
        let registry_policy = sqlx::query_as::<_, (String,)>(
            "SELECT value FROM registry_settings WHERE key = 'registry_policy'",
        )
        .fetch_optional(&mut *tx)
        .await?
        .map(|(v,)| v);
        tx.commit().await?;
        Ok(IamData {
            generation,
            accounts,
            principals,
            access_keys,
            policies,
            repository_policies,
            registry_policy,
        })
    }

    async fn create_account(&self, row: &AccountRow) -> Result<bool> {
        let mut tx = self.begin_iam_write().await?;
        let done = sqlx::query(
            "INSERT INTO iam_accounts (account_id, name, is_default, created_at) \
             VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING",
        )
        .bind(&row.account_id)
        .bind(&row.name)
        .bind(row.is_default)
        .bind(row.created_at)
        .execute(&mut *tx)
        .await?
        .rows_affected()
            == 1;
        if done && row.is_default {
            sqlx::query("UPDATE iam_accounts SET is_default = FALSE WHERE account_id != $1")
                .bind(&row.account_id)
                .execute(&mut *tx)
                .await?;
        }
        commit_bumped(tx).await?;
        Ok(done)
    }

    async fn delete_account(&self, account_id: &str) -> Result<bool> {
        let mut tx = self.begin_iam_write().await?;
        let done = sqlx::query("DELETE FROM iam_accounts WHERE account_id = $1")
            .bind(account_id)
            .execute(&mut *tx)
            .await?
            .rows_affected()
            == 1;
        commit_bumped(tx).await?;
        Ok(done)
    }

    async fn create_principal(&self, row: &PrincipalRow) -> Result<bool> {
        let mut tx = self.begin_iam_write().await?;
        let done = sqlx::query(
            "INSERT INTO iam_principals (account_id, kind, name, principal_id, tags, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (account_id, kind, name) DO NOTHING",
        )
        .bind(&row.account_id)
        .bind(&row.kind)
        .bind(&row.name)
        .bind(&row.principal_id)
        .bind(&row.tags)
        .bind(row.created_at)
        .execute(&mut *tx)
        .await?
        .rows_affected()
            == 1;
        commit_bumped(tx).await?;
        Ok(done)
    }

    async fn delete_principal(&self, account_id: &str, kind: &str, name: &str) -> Result<bool> {
        let mut tx = self.begin_iam_write().await?;
        let done = sqlx::query(
            "DELETE FROM iam_principals WHERE account_id = $1 AND kind = $2 AND name = $3",
        )
        .bind(account_id)
        .bind(kind)
        .bind(name)
        .execute(&mut *tx)
        .await?
        .rows_affected()
            == 1;
        commit_bumped(tx).await?;
        Ok(done)
    }

    async fn create_access_key(&self, row: &AccessKeyRow) -> Result<()> {
        let mut tx = self.begin_iam_write().await?;
        sqlx::query(
            "INSERT INTO iam_access_keys (access_key_id, account_id, kind, name, secret_enc, \
             session_name, session_token_hash, expires_at, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
        )
        .bind(&row.access_key_id)
        .bind(&row.account_id)
        .bind(&row.kind)
        .bind(&row.name)
        .bind(&row.secret_enc)
        .bind(&row.session_name)
        .bind(&row.session_token_hash)
        .bind(row.expires_at)
        .bind(row.created_at)
        .execute(&mut *tx)
        .await?;
        commit_bumped(tx).await?;
        Ok(())
    }

    async fn delete_access_key(&self, access_key_id: &str) -> Result<bool> {
        let mut tx = self.begin_iam_write().await?;
        let done = sqlx::query("DELETE FROM iam_access_keys WHERE access_key_id = $1")
            .bind(access_key_id)
            .execute(&mut *tx)
            .await?
            .rows_affected()
            == 1;
        commit_bumped(tx).await?;
        Ok(done)
    }

    async fn delete_expired_keys(&self, now: i64) -> Result<u64> {
        let mut tx = self.begin_iam_write().await?;
        let n = sqlx::query(
            "DELETE FROM iam_access_keys WHERE expires_at IS NOT NULL AND expires_at < $1",
        )
        .bind(now)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        if n > 0 {
            commit_bumped(tx).await?;
        } else {
            tx.commit().await?;
        }
        Ok(n)
    }

    async fn put_identity_policy(&self, row: &IdentityPolicyRow) -> Result<()> {
        let mut tx = self.begin_iam_write().await?;
        sqlx::query(
            "INSERT INTO iam_policies (account_id, kind, name, policy_name, document) \
             VALUES ($1, $2, $3, $4, $5) ON CONFLICT (account_id, kind, name, policy_name) \
             DO UPDATE SET document = excluded.document",
        )
        .bind(&row.account_id)
        .bind(&row.kind)
        .bind(&row.name)
        .bind(&row.policy_name)
        .bind(&row.document)
        .execute(&mut *tx)
        .await?;
        commit_bumped(tx).await?;
        Ok(())
    }

    async fn delete_identity_policy(
        &self,
        account_id: &str,
        kind: &str,
        name: &str,
        policy_name: &str,
    ) -> Result<bool> {
        let mut tx = self.begin_iam_write().await?;
        let done = sqlx::query(
            "DELETE FROM iam_policies WHERE account_id = $1 AND kind = $2 AND name = $3 \
             AND policy_name = $4",
        )
        .bind(account_id)
        .bind(kind)
        .bind(name)
        .bind(policy_name)
        .execute(&mut *tx)
        .await?
        .rows_affected()
            == 1;
        commit_bumped(tx).await?;
        Ok(done)
    }

    async fn set_repository_policy(
        &self,
        repository: &str,
        document: Option<&str>,
    ) -> Result<Option<String>> {
        let mut tx = self.begin_iam_write().await?;
        let previous = sqlx::query_as::<_, (String,)>(
            "SELECT document FROM repository_policies WHERE repository = $1",
        )
        .bind(repository)
        .fetch_optional(&mut *tx)
        .await?
        .map(|(d,)| d);
        match document {
            Some(doc) => {
                sqlx::query(
                    "INSERT INTO repository_policies (repository, document, updated_at) \
                     VALUES ($1, $2, $3) ON CONFLICT (repository) DO UPDATE SET \
                     document = excluded.document, updated_at = excluded.updated_at",
                )
                .bind(repository)
                .bind(doc)
                .bind(now())
                .execute(&mut *tx)
                .await?;
            }
            None => {
                sqlx::query("DELETE FROM repository_policies WHERE repository = $1")
                    .bind(repository)
                    .execute(&mut *tx)
                    .await?;
            }
        }
        commit_bumped(tx).await?;
        Ok(previous)
    }

    async fn set_registry_policy(&self, document: Option<&str>) -> Result<Option<String>> {
        let mut tx = self.begin_iam_write().await?;
        let previous = sqlx::query_as::<_, (String,)>(
            "SELECT value FROM registry_settings WHERE key = 'registry_policy'",
        )
        .fetch_optional(&mut *tx)
        .await?
        .map(|(d,)| d);
        match document {
            Some(doc) => {
                sqlx::query(
                    "INSERT INTO registry_settings (key, value) VALUES ('registry_policy', $1) \
                     ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                )
                .bind(doc)
                .execute(&mut *tx)
                .await?;
            }
            None => {
                sqlx::query("DELETE FROM registry_settings WHERE key = 'registry_policy'")
                    .execute(&mut *tx)
                    .await?;
            }
        }
        commit_bumped(tx).await?;
        Ok(previous)
    }

    async fn get_setting(&self, key: &str) -> Result<Option<String>> {
        Ok(
            sqlx::query_as::<_, (String,)>("SELECT value FROM registry_settings WHERE key = $1")
                .bind(key)
                .fetch_optional(&self.pool)
                .await?
                .map(|(v,)| v),
        )
    }

    async fn put_setting(&self, key: &str, value: &str) -> Result<()> {
        // One upsert: concurrent writers of one key never fail, the last one wins.
        sqlx::query(
            "INSERT INTO registry_settings (key, value) VALUES ($1, $2) \
             ON CONFLICT (key) DO UPDATE SET value = excluded.value",
        )
        .bind(key)
        .bind(value)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    async fn append_audit(&self, rows: &[AuditRow]) -> Result<()> {
        if rows.is_empty() {
            return Ok(());
        }
        // One multi-row INSERT per chunk (7 parameters a row, far below PostgreSQL's
        // 65,535 per statement), all chunks in one transaction.
        let mut tx = self.pool.begin().await?;
        for chunk in rows.chunks(1000) {
            let mut qb = sqlx::QueryBuilder::<Postgres>::new(
                "INSERT INTO audit_log (at_ms, principal, action, resource, decision, reason, \
                 source_ip) ",
            );
            qb.push_values(chunk, |mut b, r| {
                b.push_bind(r.at_ms)
                    .push_bind(&r.principal)
                    .push_bind(&r.action)
                    .push_bind(&r.resource)
                    .push_bind(&r.decision)
                    .push_bind(&r.reason)
                    .push_bind(&r.source_ip);
            });
            qb.build().execute(&mut *tx).await?;
        }
        tx.commit().await?;
        Ok(())
    }

    async fn query_audit(&self, q: &AuditQuery) -> Result<Vec<AuditRow>> {
        let mut qb = sqlx::QueryBuilder::<Postgres>::new(
            "SELECT id, at_ms, principal, action, resource, decision, reason, source_ip \
             FROM audit_log WHERE 1 = 1",
        );
        if let Some(p) = &q.principal {
            qb.push(" AND principal = ").push_bind(p.clone());
        }
        if let Some(a) = &q.action {
            qb.push(" AND action = ").push_bind(a.clone());
        }
        if let Some(d) = &q.decision {
            qb.push(" AND decision = ").push_bind(d.clone());
        }
        if let Some(r) = &q.resource {
            qb.push(" AND resource = ").push_bind(r.clone());
        }
        if let Some(r) = &q.resource_prefix {
            // A literal prefix (no LIKE wildcards to escape).
            qb.push(" AND starts_with(resource, ")
                .push_bind(r.clone())
                .push(")");
        }
        if let Some(s) = q.since_ms {
            qb.push(" AND at_ms >= ").push_bind(s);
        }
        qb.push(" ORDER BY id DESC LIMIT ")
            .push_bind(i64::from(q.limit.max(1)));
        let rows = qb
            .build_query_as::<AuditTuple>()
            .fetch_all(&self.pool)
            .await?;
        Ok(rows
            .into_iter()
            .map(
                |(id, at_ms, principal, action, resource, decision, reason, source_ip)| AuditRow {
                    id,
                    at_ms,
                    principal,
                    action,
                    resource,
                    decision,
                    reason,
                    source_ip,
                },
            )
            .collect())
    }

    async fn prune_audit(&self, before_ms: i64) -> Result<u64> {
        let n = sqlx::query("DELETE FROM audit_log WHERE at_ms < $1")
            .bind(before_ms)
            .execute(&self.pool)
            .await?
            .rows_affected();
        Ok(n)
    }
}
