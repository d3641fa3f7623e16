//! SQLite behind core's [`SqlExecutor`] port, for native tests.
//!
//! [`SqliteDb::migrated`] applies every file of `migrations/` in order and
//! records them in a `d1_migrations` table shaped like wrangler's own, so
//! the repositories see the same schema, and the same bookkeeping, as on
//! D1. Foreign keys are enforced as D1 enforces them.

use std::cell::RefCell;
use std::path::{Path, PathBuf};

use boekhouding_core::storage::{Executed, Row, SqlExecutor, SqlValue, Statement, StorageError};
use rusqlite::types::{ToSqlOutput, Value, ValueRef};
use rusqlite::{Connection, ErrorCode, ToSql};

/// The repository's `migrations/` directory.
pub fn migrations_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../migrations")
}

/// One migration file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Migration {
    pub name: String,
    pub sql: String,
}

/// Reads `NNNN_name.sql` files in name order, as wrangler applies them.
pub fn read_migrations(dir: &Path) -> std::io::Result<Vec<Migration>> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)?
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "sql"))
        .collect();
    files.sort();
    files
        .into_iter()
        .map(|p| {
            Ok(Migration {
                name: p
                    .file_name()
                    .map(|n| n.to_string_lossy().into_owned())
                    .unwrap_or_default(),
                sql: std::fs::read_to_string(&p)?,
            })
        })
        .collect()
}

/// A SQLite database (in memory or on disk) implementing [`SqlExecutor`].
#[derive(Debug)]
pub struct SqliteDb {
    conn: RefCell<Connection>,
    /// When set, the next N statements fail as "unavailable", to test how
    /// callers survive a database outage.
    fail_next: RefCell<u32>,
}

impl SqliteDb {
    /// A fresh in-memory database with all migrations applied.
    pub fn migrated() -> Result<Self, StorageError> {
        let db = Self::open_in_memory()?;
        let migrations = read_migrations(&migrations_dir())
            .map_err(|e| StorageError::Query(format!("reading migrations: {e}")))?;
        db.apply(&migrations)?;
        Ok(db)
    }

    pub fn open_in_memory() -> Result<Self, StorageError> {
        let conn = Connection::open_in_memory().map_err(map_err)?;
        Self::from_connection(conn)
    }

    pub fn open(path: &Path) -> Result<Self, StorageError> {
        Self::from_connection(Connection::open(path).map_err(map_err)?)
    }

    /// A database file with all migrations applied (idempotent), so several
    /// threads can each open their own connection to it.
    pub fn migrated_file(path: &Path) -> Result<Self, StorageError> {
        let db = Self::open(path)?;
        let migrations = read_migrations(&migrations_dir())
            .map_err(|e| StorageError::Query(format!("reading migrations: {e}")))?;
        db.apply(&migrations)?;
        Ok(db)
    }

    fn from_connection(conn: Connection) -> Result<Self, StorageError> {
        // Foreign keys as D1 enforces them; a busy timeout so that several
        // connections to one file (concurrency tests) wait instead of failing.
        conn.execute_batch("PRAGMA foreign_keys = ON; PRAGMA busy_timeout = 10000;")
            .map_err(map_err)?;
        Ok(SqliteDb {
            conn: RefCell::new(conn),
            fail_next: RefCell::new(0),
        })
    }

    /// Applies migrations not yet recorded, each in its own transaction,
    /// like `wrangler d1 migrations apply`.
    pub fn apply(&self, migrations: &[Migration]) -> Result<Vec<String>, StorageError> {
        let mut conn = self.conn.borrow_mut();
        conn.execute_batch(
            "CREATE TABLE IF NOT EXISTS d1_migrations (
                id INTEGER PRIMARY KEY AUTOINCREMENT,
                name TEXT UNIQUE,
                applied_at TIMESTAMP NOT NULL DEFAULT CURRENT_TIMESTAMP
            );",
        )
        .map_err(map_err)?;
        let mut applied = Vec::new();
        for m in migrations {
            let done: bool = conn
                .query_row(
                    "SELECT EXISTS (SELECT 1 FROM d1_migrations WHERE name = ?)",
                    [&m.name],
                    |r| r.get(0),
                )
                .map_err(map_err)?;
            if done {
                continue;
            }
            let tx = conn.transaction().map_err(map_err)?;
            tx.execute_batch(&m.sql)
                .map_err(|e| StorageError::Query(format!("{}: {e}", m.name)))?;
            tx.execute("INSERT INTO d1_migrations (name) VALUES (?)", [&m.name])
                .map_err(map_err)?;
            tx.commit().map_err(map_err)?;
            applied.push(m.name.clone());
        }
        Ok(applied)
    }

    /// Makes the next `n` statements fail with [`StorageError::Unavailable`].
    pub fn fail_next(&self, n: u32) {
        *self.fail_next.borrow_mut() = n;
    }

    /// SQLite's plan for a statement (`EXPLAIN QUERY PLAN`), one line per
    /// step, e.g. `SEARCH connections USING INDEX idx_... (status=? AND
    /// next_retry_at<?)`: tests prove a query uses an index with it.
    pub fn query_plan(&self, stmt: &Statement) -> Result<Vec<String>, StorageError> {
        let conn = self.conn.borrow();
        let sql = format!("EXPLAIN QUERY PLAN {}", stmt.sql);
        let mut prepared = conn.prepare(&sql).map_err(map_err)?;
        let params: Vec<Param<'_>> = stmt.params.iter().map(Param).collect();
        let mut rows = prepared
            .query(rusqlite::params_from_iter(params.iter()))
            .map_err(map_err)?;
        let mut out = Vec::new();
        while let Some(row) = rows.next().map_err(map_err)? {
            out.push(row.get::<_, String>(3).map_err(map_err)?);
        }
        Ok(out)
    }

    /// Runs raw SQL outside the port, for test set-up and assertions.
    pub fn raw(&self) -> std::cell::Ref<'_, Connection> {
        self.conn.borrow()
    }

    fn injected_failure(&self) -> Result<(), StorageError> {
        let mut left = self.fail_next.borrow_mut();
        if *left > 0 {
            *left -= 1;
            return Err(StorageError::Unavailable("injected failure".into()));
        }
        Ok(())
    }
}

struct Param<'a>(&'a SqlValue);

impl ToSql for Param<'_> {
    fn to_sql(&self) -> rusqlite::Result<ToSqlOutput<'_>> {
        Ok(match self.0 {
            SqlValue::Null => ToSqlOutput::Owned(Value::Null),
            SqlValue::Integer(i) => ToSqlOutput::Owned(Value::Integer(*i)),
            SqlValue::Real(f) => ToSqlOutput::Owned(Value::Real(*f)),
            SqlValue::Text(s) => ToSqlOutput::Borrowed(ValueRef::Text(s.as_bytes())),
        })
    }
}

fn map_err(e: rusqlite::Error) -> StorageError {
    match e.sqlite_error_code() {
        Some(ErrorCode::ConstraintViolation) => StorageError::Constraint(e.to_string()),
        Some(ErrorCode::DatabaseBusy | ErrorCode::DatabaseLocked) => {
            StorageError::Unavailable(e.to_string())
        }
        _ => StorageError::Query(e.to_string()),
    }
}

fn run_query(conn: &Connection, stmt: &Statement) -> Result<Vec<Row>, StorageError> {
    let mut prepared = conn.prepare_cached(stmt.sql).map_err(map_err)?;
    let names: Vec<String> = prepared
        .column_names()
        .into_iter()
        .map(str::to_owned)
        .collect();
    let params: Vec<Param<'_>> = stmt.params.iter().map(Param).collect();
    let mut rows = prepared
        .query(rusqlite::params_from_iter(params.iter()))
        .map_err(map_err)?;
    let mut out = Vec::new();
    while let Some(row) = rows.next().map_err(map_err)? {
        let mut map = Row::new();
        for (i, name) in names.iter().enumerate() {
            let v = match row.get_ref(i).map_err(map_err)? {
                ValueRef::Null => serde_json::Value::Null,
                ValueRef::Integer(n) => n.into(),
                ValueRef::Real(f) => serde_json::Number::from_f64(f)
                    .map_or(serde_json::Value::Null, serde_json::Value::Number),
                ValueRef::Text(t) => String::from_utf8_lossy(t).into_owned().into(),
                ValueRef::Blob(b) => b.iter().map(|x| serde_json::Value::from(*x)).collect(),
            };
            map.insert(name.clone(), v);
        }
        out.push(map);
    }
    Ok(out)
}

fn run_execute(conn: &Connection, stmt: &Statement) -> Result<Executed, StorageError> {
    let mut prepared = conn.prepare_cached(stmt.sql).map_err(map_err)?;
    let params: Vec<Param<'_>> = stmt.params.iter().map(Param).collect();
    let changes = prepared
        .execute(rusqlite::params_from_iter(params.iter()))
        .map_err(map_err)?;
    Ok(Executed {
        changes: changes as u64,
        last_row_id: Some(conn.last_insert_rowid()),
    })
}

impl SqlExecutor for SqliteDb {
    async fn query(&self, stmt: Statement) -> Result<Vec<Row>, StorageError> {
        self.injected_failure()?;
        run_query(&self.conn.borrow(), &stmt)
    }

    async fn execute(&self, stmt: Statement) -> Result<Executed, StorageError> {
        self.injected_failure()?;
        run_execute(&self.conn.borrow(), &stmt)
    }

    async fn batch(&self, stmts: Vec<Statement>) -> Result<Vec<Executed>, StorageError> {
        self.injected_failure()?;
        let mut conn = self.conn.borrow_mut();
        let tx = conn.transaction().map_err(map_err)?;
        let mut out = Vec::with_capacity(stmts.len());
        for stmt in &stmts {
            out.push(run_execute(&tx, stmt)?);
        }
        tx.commit().map_err(map_err)?;
        Ok(out)
    }

    async fn batch_query(&self, stmts: Vec<Statement>) -> Result<Vec<Vec<Row>>, StorageError> {
        self.injected_failure()?;
        let mut conn = self.conn.borrow_mut();
        let tx = conn.transaction().map_err(map_err)?;
        let mut out = Vec::with_capacity(stmts.len());
        for stmt in &stmts {
            out.push(run_query(&tx, stmt)?);
        }
        tx.commit().map_err(map_err)?;
        Ok(out)
    }
}
