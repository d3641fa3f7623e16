//! D1 in SQLite: the file a `database_id` lives in (the same file the
//! edge's `wrangler dev` instances open, so the API and the running
//! versions see one database), statements run as D1 runs them (a batch in
//! one transaction, the SQLite message on failure), and Time Travel
//! bookmarks as snapshots.

use std::path::{Path, PathBuf};
use std::time::Duration;

use hmac::{Hmac, Mac};
use rusqlite::fallible_iterator::FallibleIterator;
use rusqlite::types::{Value as SqlValue, ValueRef};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

/// Why a D1 call failed; the message is SQLite's, as D1 reports it.
#[derive(Debug, thiserror::Error)]
pub enum D1Error {
    #[error("{0}")]
    Sql(String),
    #[error("cannot open the database file")]
    Open,
}

/// The directory `wrangler dev --persist-to` keeps D1 databases in.
pub fn persist_dir(state_dir: &Path) -> PathBuf {
    state_dir.join("persist")
}

/// The SQLite file miniflare keeps the database `database_id` in:
/// `v3/d1/miniflare-D1DatabaseObject/<id>.sqlite`, where `<id>` is the
/// Durable Object id workerd derives from the name (the database id)
/// within the unique key `miniflare-D1DatabaseObject`: with
/// `k = sha256(unique key)`, `n = hmac(k, name)[..16]` and the id is
/// `n ‖ hmac(k, n)[..16]` in hex.
pub fn database_file(state_dir: &Path, database_id: &str) -> PathBuf {
    const UNIQUE_KEY: &str = "miniflare-D1DatabaseObject";
    let key = Sha256::digest(UNIQUE_KEY.as_bytes());
    let mac = |data: &[u8]| -> Vec<u8> {
        // HMAC accepts keys of any length, so this cannot fail.
        let Ok(mut m) = Hmac::<Sha256>::new_from_slice(&key) else {
            return Vec::new();
        };
        m.update(data);
        m.finalize().into_bytes()[..16].to_vec()
    };
    let name_part = mac(database_id.as_bytes());
    let check = mac(&name_part);
    persist_dir(state_dir)
        .join("v3/d1")
        .join(UNIQUE_KEY)
        .join(format!(
            "{}{}.sqlite",
            hex::encode(name_part),
            hex::encode(check)
        ))
}

fn open(file: &Path) -> Result<rusqlite::Connection, D1Error> {
    if let Some(dir) = file.parent() {
        std::fs::create_dir_all(dir).map_err(|_| D1Error::Open)?;
    }
    let conn = rusqlite::Connection::open(file).map_err(|_| D1Error::Open)?;
    // A running version may hold the file; wait for it as D1 would.
    conn.busy_timeout(Duration::from_secs(10))
        .map_err(|_| D1Error::Open)?;
    // workerd keeps its SQLite files in WAL mode; the same mode here
    // keeps both sides' readers from blocking writers.
    let _ = conn.pragma_update(None, "journal_mode", "WAL");
    Ok(conn)
}

/// D1's error text: SQLite's message and the result code's name.
fn sql_error(e: &rusqlite::Error) -> D1Error {
    match e {
        rusqlite::Error::SqliteFailure(err, msg) => {
            let name = match err.code {
                rusqlite::ErrorCode::ConstraintViolation => "SQLITE_CONSTRAINT",
                rusqlite::ErrorCode::DatabaseBusy => "SQLITE_BUSY",
                rusqlite::ErrorCode::ReadOnly => "SQLITE_READONLY",
                rusqlite::ErrorCode::TooBig => "SQLITE_TOOBIG",
                rusqlite::ErrorCode::TypeMismatch => "SQLITE_MISMATCH",
                _ => "SQLITE_ERROR",
            };
            let text = msg.clone().unwrap_or_else(|| err.to_string());
            D1Error::Sql(format!("{text}: {name}"))
        }
        other => D1Error::Sql(format!("{other}: SQLITE_ERROR")),
    }
}

fn to_sql(v: &Value) -> SqlValue {
    match v {
        Value::Null => SqlValue::Null,
        Value::Bool(b) => SqlValue::Integer(i64::from(*b)),
        Value::Number(n) => match n.as_i64() {
            Some(i) => SqlValue::Integer(i),
            None => SqlValue::Real(n.as_f64().unwrap_or_default()),
        },
        Value::String(s) => SqlValue::Text(s.clone()),
        other => SqlValue::Text(other.to_string()),
    }
}

fn to_json(v: ValueRef<'_>) -> Value {
    match v {
        ValueRef::Null => Value::Null,
        ValueRef::Integer(i) => json!(i),
        ValueRef::Real(f) => json!(f),
        ValueRef::Text(t) => Value::String(String::from_utf8_lossy(t).into_owned()),
        ValueRef::Blob(b) => json!(b),
    }
}

/// A failed request: the statements that ran before the failure (rolled
/// back with it), the failing statement when SQLite got as far as
/// preparing it, and SQLite's message.
#[derive(Debug)]
pub struct Failure {
    pub done: Vec<String>,
    pub failed: Option<String>,
    pub error: D1Error,
}

/// One statement's outcome, with its text for the log.
#[derive(Debug, Clone)]
pub struct Outcome {
    pub sql: String,
    pub columns: Vec<String>,
    pub rows: Vec<Vec<Value>>,
    pub changes: u64,
    pub last_row_id: i64,
    pub duration_ms: f64,
}

impl Outcome {
    fn meta(&self, size_after: u64) -> Value {
        json!({
            "served_by": "cloudflare-sandbox",
            "served_by_region": "WEUR",
            "served_by_primary": true,
            "duration": self.duration_ms,
            "changes": self.changes,
            "last_row_id": self.last_row_id,
            "changed_db": self.changes > 0,
            "size_after": size_after,
            "rows_read": self.rows.len(),
            "rows_written": self.changes,
        })
    }

    /// The `/query` shape: rows as objects.
    pub fn object_result(&self, size_after: u64) -> Value {
        let rows: Vec<Value> = self
            .rows
            .iter()
            .map(|r| {
                Value::Object(
                    self.columns
                        .iter()
                        .cloned()
                        .zip(r.iter().cloned())
                        .collect(),
                )
            })
            .collect();
        json!({"results": rows, "success": true, "meta": self.meta(size_after)})
    }

    /// The `/raw` shape: columns and rows as arrays.
    pub fn raw_result(&self, size_after: u64) -> Value {
        json!({
            "results": {"columns": self.columns, "rows": self.rows},
            "success": true,
            "meta": self.meta(size_after),
        })
    }
}

/// Runs `sql` (one or more statements; `params` bind to a single one) in
/// one transaction: on the first failure everything is rolled back and
/// the failure returned with the statements that ran before it.
pub fn execute(file: &Path, sql: &str, params: &[Value]) -> Result<Vec<Outcome>, Failure> {
    let fail = |done: &mut Vec<String>, failed: Option<&str>, error: D1Error| Failure {
        done: std::mem::take(done),
        failed: failed.map(str::to_owned),
        error,
    };
    let mut done: Vec<String> = Vec::new();
    let mut conn = open(file).map_err(|e| fail(&mut done, None, e))?;
    let tx = conn
        .transaction()
        .map_err(|e| fail(&mut done, None, sql_error(&e)))?;
    let mut outcomes: Vec<Outcome> = Vec::new();
    // How far into `sql` the statements that ran reach.
    let mut cursor = 0;
    {
        let mut batch = rusqlite::Batch::new(&tx, sql);
        loop {
            let mut stmt = match batch.next() {
                Ok(Some(s)) => s,
                Ok(None) => break,
                Err(e) => {
                    // SQLite could not prepare the next statement: what is
                    // left of the request after the last one that ran.
                    let rest =
                        sql[cursor..].trim_start_matches(|c: char| c == ';' || c.is_whitespace());
                    return Err(fail(&mut done, Some(rest), sql_error(&e)));
                }
            };
            let text = stmt.expanded_sql().unwrap_or_default();
            let started = std::time::Instant::now();
            let columns: Vec<String> = stmt.column_names().iter().map(|c| c.to_string()).collect();
            for (i, p) in params.iter().enumerate() {
                if let Err(e) = stmt.raw_bind_parameter(i + 1, to_sql(p)) {
                    return Err(fail(&mut done, Some(&text), sql_error(&e)));
                }
            }
            let mut rows_out = Vec::new();
            {
                let mut rows = stmt.raw_query();
                loop {
                    match rows.next() {
                        Ok(Some(row)) => {
                            let mut r = Vec::with_capacity(columns.len());
                            for i in 0..columns.len() {
                                r.push(row.get_ref(i).map(to_json).unwrap_or(Value::Null));
                            }
                            rows_out.push(r);
                        }
                        Ok(None) => break,
                        Err(e) => return Err(fail(&mut done, Some(&text), sql_error(&e))),
                    }
                }
            }
            let readonly = stmt.readonly();
            drop(stmt);
            let changes = if readonly { 0 } else { tx.changes() };
            if let Some(at) = sql[cursor..].find(&text) {
                cursor += at + text.len();
            }
            done.push(text.clone());
            outcomes.push(Outcome {
                sql: text,
                columns,
                rows: rows_out,
                changes,
                last_row_id: tx.last_insert_rowid(),
                duration_ms: started.elapsed().as_secs_f64() * 1000.0,
            });
        }
    }
    tx.commit()
        .map_err(|e| fail(&mut done, None, sql_error(&e)))?;
    Ok(outcomes)
}

/// The database file's size in bytes (0 before it exists).
pub fn size(file: &Path) -> u64 {
    std::fs::metadata(file).map_or(0, |m| m.len())
}

/// Copies the database as it is now to `snapshot`.
pub fn snapshot(file: &Path, snapshot: &Path) -> Result<(), D1Error> {
    let conn = open(file)?;
    if let Some(dir) = snapshot.parent() {
        std::fs::create_dir_all(dir).map_err(|_| D1Error::Open)?;
    }
    let _ = std::fs::remove_file(snapshot);
    conn.execute("VACUUM INTO ?1", [snapshot.to_string_lossy()])
        .map_err(|e| sql_error(&e))?;
    Ok(())
}

/// Puts a snapshot back: the database's pages become the snapshot's
/// (SQLite's backup API, under SQLite's locks, so a running version's
/// connection sees the restored content on its next read).
pub fn restore(file: &Path, snapshot: &Path) -> Result<(), D1Error> {
    let src = rusqlite::Connection::open(snapshot).map_err(|_| D1Error::Open)?;
    let mut dst = open(file)?;
    let backup = rusqlite::backup::Backup::new(&src, &mut dst).map_err(|e| sql_error(&e))?;
    backup
        .run_to_completion(256, Duration::from_millis(5), None)
        .map_err(|e| sql_error(&e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_file_name_is_the_one_miniflare_derives_from_the_database_id() {
        // Observed in a `wrangler dev --persist-to` directory for this id.
        let f = database_file(Path::new("/s"), "00000000-0000-4000-8000-000000000001");
        assert_eq!(
            f,
            Path::new(
                "/s/persist/v3/d1/miniflare-D1DatabaseObject/37202af4a48e51a6f9bf1676145f85cdbaaf76a4a51b95f5120b328bf5460e72.sqlite"
            )
        );
    }
}
