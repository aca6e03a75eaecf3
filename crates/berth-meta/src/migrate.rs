//! Copying the embedded default's metadata into PostgreSQL, row for row
//! (`berth admin migrate`, issue 14).
//!
//! Both engines carry the same schema (the same migration versions; the PostgreSQL
//! migrations keep SQLite's table and column names), so the copy is generic: every
//! table of the SQLite file, in creation order (a table's foreign keys point at tables
//! created before it), is streamed into the PostgreSQL table of the same name. Each
//! value is bound as text and cast to the destination column's type (`$n::text::int8`),
//! or as bytes for `bytea` columns, so the copy needs no per-table code and fails
//! loudly — naming the table and column — when the schemas disagree.
//!
//! **Resumable:** rows are upserted on the destination's primary key, in batches, each
//! batch its own transaction; running the copy again after an interruption rewrites
//! what was copied and adds the rest. **Verified:** after the copy every table's row
//! count is compared on both sides, and identity sequences are moved past the copied
//! IDs so new rows never collide. The source must not change during the copy (the
//! caller holds the data directory's lock, so no `berth serve` runs on it).

use crate::{MetaError, PgMeta, Result, SqliteMeta};
use futures::TryStreamExt as _;
use sqlx::{Column as _, Row as _, TypeInfo as _, ValueRef as _};

/// Largest batch of rows written in one statement and transaction.
const BATCH_ROWS: usize = 500;
/// PostgreSQL's limit of bind parameters per statement.
const MAX_PARAMS: usize = 65_535;

/// The outcome of copying one table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TableCopy {
    /// The table's name.
    pub table: String,
    /// Rows in the SQLite source.
    pub source_rows: u64,
    /// Rows in the PostgreSQL destination after the copy.
    pub destination_rows: u64,
}

impl TableCopy {
    /// Whether the destination holds exactly the source's rows (by count).
    pub fn verified(&self) -> bool {
        self.source_rows == self.destination_rows
    }
}

/// One SQLite value, as read (SQLite's storage classes).
enum Value {
    Null,
    Integer(i64),
    Real(f64),
    Text(String),
    Blob(Vec<u8>),
}

/// A destination column: its name and PostgreSQL type (`udt_name`: `int8`, `text`,
/// `bytea`, `bool`…).
struct PgColumn {
    name: String,
    udt: String,
}

/// Copies every table of `src` into `dst` (whose migrations have run) and verifies the
/// row counts; `progress` is called after each table. Returns one [`TableCopy`] per
/// table. Errors: the two databases are at different migration versions, a table or
/// column is missing on the destination ([`MetaError::Corrupt`] naming it), a value does
/// not convert to the destination column's type, or a database failed. A failed copy can
/// simply be run again.
pub async fn copy_sqlite_to_postgres(
    src: &SqliteMeta,
    dst: &PgMeta,
    progress: &mut (dyn FnMut(&TableCopy) + Send),
) -> Result<Vec<TableCopy>> {
    let src_version: Option<i64> =
        sqlx::query_scalar("SELECT max(version) FROM _sqlx_migrations WHERE success")
            .fetch_one(&src.reader)
            .await?;
    let dst_version: Option<i64> =
        sqlx::query_scalar("SELECT max(version) FROM _sqlx_migrations WHERE success")
            .fetch_one(&dst.pool)
            .await?;
    if src_version != dst_version {
        return Err(MetaError::Corrupt(format!(
            "the source is at schema version {src_version:?} and the destination at \
             {dst_version:?}: run the same Berth version on both"
        )));
    }
    let tables: Vec<String> = sqlx::query_scalar(
        "SELECT name FROM sqlite_master WHERE type = 'table' \
         AND name NOT LIKE 'sqlite\\_%' ESCAPE '\\' AND name <> '_sqlx_migrations' ORDER BY rowid",
    )
    .fetch_all(&src.reader)
    .await?;
    let mut report = Vec::with_capacity(tables.len());
    for table in tables {
        copy_table(src, dst, &table).await?;
        let source_rows: i64 = sqlx::query_scalar(&format!("SELECT count(*) FROM \"{table}\""))
            .fetch_one(&src.reader)
            .await?;
        let destination_rows: i64 =
            sqlx::query_scalar(&format!("SELECT count(*) FROM \"{table}\""))
                .fetch_one(&dst.pool)
                .await?;
        let copy = TableCopy {
            table,
            source_rows: source_rows as u64,
            destination_rows: destination_rows as u64,
        };
        progress(&copy);
        report.push(copy);
    }
    advance_sequences(dst).await?;
    Ok(report)
}

/// Why `dst` cannot receive a copy of `src`, if it cannot: it already holds another
/// registry (a default account other than the source's, or repositories while it has no
/// account at all). `None`: the destination is empty, or holds an earlier, interrupted
/// copy of this same registry (same default account), which a rerun resumes. Checked
/// before anything is copied — blobs included — so a wrong `--to` changes nothing.
/// Errors: a database failed.
pub async fn destination_conflict(src: &SqliteMeta, dst: &PgMeta) -> Result<Option<String>> {
    let source: Option<String> =
        sqlx::query_scalar("SELECT account_id FROM iam_accounts WHERE is_default = 1")
            .fetch_optional(&src.reader)
            .await?;
    let destination: Option<String> =
        sqlx::query_scalar("SELECT account_id FROM iam_accounts WHERE is_default")
            .fetch_optional(&dst.pool)
            .await?;
    let repositories: i64 = sqlx::query_scalar("SELECT count(*) FROM repositories")
        .fetch_one(&dst.pool)
        .await?;
    Ok(match (source, destination) {
        (Some(s), Some(d)) if s != d => Some(format!(
            "the destination database already holds another registry (default account \
             {d}; this registry's is {s}): migrate into an empty database, or drop that \
             registry first"
        )),
        (_, None) if repositories > 0 => Some(format!(
            "the destination database already holds {repositories} repositories of another \
             registry: migrate into an empty database"
        )),
        _ => None,
    })
}

/// The destination's columns of `table`, in order, and its primary-key columns.
async fn pg_columns(dst: &PgMeta, table: &str) -> Result<(Vec<PgColumn>, Vec<String>)> {
    let cols: Vec<(String, String)> = sqlx::query_as(
        "SELECT column_name::text, udt_name::text FROM information_schema.columns \
         WHERE table_schema = current_schema() AND table_name = $1 ORDER BY ordinal_position",
    )
    .bind(table)
    .fetch_all(&dst.pool)
    .await?;
    if cols.is_empty() {
        return Err(MetaError::Corrupt(format!(
            "table {table} does not exist in the PostgreSQL database"
        )));
    }
    let key: Vec<String> = sqlx::query_scalar(
        "SELECT a.attname::text FROM pg_index i \
         JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = ANY(i.indkey) \
         WHERE i.indrelid = to_regclass($1) AND i.indisprimary",
    )
    .bind(table)
    .fetch_all(&dst.pool)
    .await?;
    let cols = cols
        .into_iter()
        .map(|(name, udt)| PgColumn { name, udt })
        .collect();
    Ok((cols, key))
}

async fn copy_table(src: &SqliteMeta, dst: &PgMeta, table: &str) -> Result<()> {
    let (pg_cols, key) = pg_columns(dst, table).await?;
    let select = format!("SELECT * FROM \"{table}\"");
    let mut rows = sqlx::query(&select).fetch(&src.reader);
    let mut columns: Option<Vec<usize>> = None; // source column → index in pg_cols
    let mut batch: Vec<Vec<Value>> = Vec::new();
    let mut batch_rows = BATCH_ROWS;
    while let Some(row) = rows.try_next().await? {
        let map = match &columns {
            Some(m) => m,
            None => {
                let mut m = Vec::new();
                for c in row.columns() {
                    let i = pg_cols
                        .iter()
                        .position(|p| p.name == c.name())
                        .ok_or_else(|| {
                            MetaError::Corrupt(format!(
                                "column {table}.{} does not exist in the PostgreSQL database",
                                c.name()
                            ))
                        })?;
                    m.push(i);
                }
                batch_rows = BATCH_ROWS.min(MAX_PARAMS / m.len().max(1));
                columns.insert(m)
            }
        };
        let mut values = Vec::with_capacity(map.len());
        for i in 0..map.len() {
            values.push(read_value(&row, i)?);
        }
        batch.push(values);
        if batch.len() >= batch_rows {
            write_batch(dst, table, &pg_cols, map, &key, &batch).await?;
            batch.clear();
        }
    }
    if let Some(map) = &columns {
        if !batch.is_empty() {
            write_batch(dst, table, &pg_cols, map, &key, &batch).await?;
        }
    }
    Ok(())
}

fn read_value(row: &sqlx::sqlite::SqliteRow, i: usize) -> Result<Value> {
    let raw = row.try_get_raw(i)?;
    if raw.is_null() {
        return Ok(Value::Null);
    }
    let kind = raw.type_info().name().to_string();
    Ok(match kind.as_str() {
        "INTEGER" | "BOOLEAN" | "INT8" => Value::Integer(row.try_get(i)?),
        "REAL" => Value::Real(row.try_get(i)?),
        "BLOB" => Value::Blob(row.try_get(i)?),
        _ => Value::Text(row.try_get(i)?),
    })
}

/// Upserts `batch` (rows of source-ordered values; `map` gives each value's destination
/// column) in one statement and transaction.
async fn write_batch(
    dst: &PgMeta,
    table: &str,
    pg_cols: &[PgColumn],
    map: &[usize],
    key: &[String],
    batch: &[Vec<Value>],
) -> Result<()> {
    let names: Vec<&str> = map.iter().map(|&i| pg_cols[i].name.as_str()).collect();
    let mut sql = format!(
        "INSERT INTO \"{table}\" ({}) VALUES ",
        names
            .iter()
            .map(|n| format!("\"{n}\""))
            .collect::<Vec<_>>()
            .join(", ")
    );
    let mut n = 0;
    for (r, _) in batch.iter().enumerate() {
        if r > 0 {
            sql.push_str(", ");
        }
        sql.push('(');
        for (c, &i) in map.iter().enumerate() {
            if c > 0 {
                sql.push_str(", ");
            }
            n += 1;
            let udt = &pg_cols[i].udt;
            if udt == "bytea" {
                sql.push_str(&format!("${n}"));
            } else {
                sql.push_str(&format!("${n}::text::\"{udt}\""));
            }
        }
        sql.push(')');
    }
    let updates: Vec<String> = names
        .iter()
        .filter(|n| !key.iter().any(|k| k == *n))
        .map(|n| format!("\"{n}\" = EXCLUDED.\"{n}\""))
        .collect();
    if key.is_empty() {
        return Err(MetaError::Corrupt(format!(
            "table {table} has no primary key in the PostgreSQL database: the copy cannot be resumed"
        )));
    }
    let conflict = key
        .iter()
        .map(|k| format!("\"{k}\""))
        .collect::<Vec<_>>()
        .join(", ");
    if updates.is_empty() {
        sql.push_str(&format!(" ON CONFLICT ({conflict}) DO NOTHING"));
    } else {
        sql.push_str(&format!(
            " ON CONFLICT ({conflict}) DO UPDATE SET {}",
            updates.join(", ")
        ));
    }
    let mut q = sqlx::query(&sql);
    for row in batch {
        for (c, v) in row.iter().enumerate() {
            let bytea = pg_cols[map[c]].udt == "bytea";
            q = match (v, bytea) {
                (Value::Null, true) => q.bind(None::<Vec<u8>>),
                (Value::Null, false) => q.bind(None::<String>),
                (Value::Blob(b), true) => q.bind(b.clone()),
                (Value::Text(t), true) => q.bind(t.as_bytes().to_vec()),
                (Value::Integer(i), false) => q.bind(i.to_string()),
                (Value::Real(f), false) => q.bind(f.to_string()),
                (Value::Text(t), false) => q.bind(t.clone()),
                (Value::Blob(b), false) => match std::str::from_utf8(b) {
                    Ok(s) => q.bind(s.to_string()),
                    Err(_) => {
                        return Err(MetaError::Corrupt(format!(
                            "{table}.{} holds bytes, but the PostgreSQL column is {}",
                            names[c], pg_cols[map[c]].udt
                        )))
                    }
                },
                (Value::Integer(_) | Value::Real(_), true) => {
                    return Err(MetaError::Corrupt(format!(
                        "{table}.{} holds a number, but the PostgreSQL column is bytea",
                        names[c]
                    )))
                }
            };
        }
    }
    let mut tx = dst.pool.begin().await?;
    q.execute(&mut *tx).await?;
    tx.commit().await?;
    Ok(())
}

/// Moves every identity/serial sequence past the largest copied ID.
async fn advance_sequences(dst: &PgMeta) -> Result<()> {
    let cols: Vec<(String, String)> = sqlx::query_as(
        "SELECT table_name::text, column_name::text FROM information_schema.columns \
         WHERE table_schema = current_schema() \
         AND (is_identity = 'YES' OR column_default LIKE 'nextval(%')",
    )
    .fetch_all(&dst.pool)
    .await?;
    for (table, column) in cols {
        sqlx::query(&format!(
            "SELECT setval(pg_get_serial_sequence($1, $2), \
             GREATEST((SELECT max(\"{column}\") FROM \"{table}\"), 0) + 1, false)"
        ))
        .bind(&table)
        .bind(&column)
        .execute(&dst.pool)
        .await?;
    }
    Ok(())
}

/// Every blob the source's repositories link (`blobs` table): digest and size in bytes,
/// in digest order. Blobs not linked anywhere are garbage and are not copied.
/// Errors: the database failed, or a stored digest does not parse.
pub async fn linked_blobs(src: &SqliteMeta) -> Result<Vec<(berth_core::Digest, u64)>> {
    let rows: Vec<(String, i64)> = sqlx::query_as("SELECT digest, size FROM blobs ORDER BY digest")
        .fetch_all(&src.reader)
        .await?;
    rows.into_iter()
        .map(|(d, size)| {
            d.parse()
                .map(|d| (d, size as u64))
                .map_err(|e| MetaError::Corrupt(format!("stored digest {d:?}: {e}")))
        })
        .collect()
}
