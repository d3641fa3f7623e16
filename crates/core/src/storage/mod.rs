//! Repositories over a minimal SQL executor.
//!
//! Every table's SQL lives in exactly one module here, and the very same
//! text runs on D1 (`boekhouding-cf`) and on SQLite in native tests
//! (`boekhouding-sqlite`, which applies the real `migrations/`). Conventions
//! that keep the two engines in step:
//!
//! - only `?` placeholders, bound positionally;
//! - timestamps are INTEGER Unix seconds, passed in from the caller's clock
//!   (never `datetime('now')`, so tests run in virtual time);
//! - booleans are INTEGER 0/1 and are decoded from integers, never as
//!   `bool` (D1 hands back numbers);
//! - integers stay below 2^53 (D1's JavaScript boundary);
//! - rows arrive as JSON objects keyed by column name.

pub mod administrations;
pub mod api_keys;
pub mod audit_log;
pub mod billing_accounts;
pub mod billing_events;
pub mod caller;
pub mod connections;
pub mod cron_runs;
pub mod email_queue;
pub mod error_log;
pub mod incidents;
pub mod login_states;
pub mod oauth_clients;
pub mod oauth_codes;
pub mod oauth_grants;
pub mod oauth_tokens;
pub mod security_events;
pub mod sessions;
pub mod usage;
pub mod users;

use chrono::{DateTime, TimeZone, Utc};
use serde::de::DeserializeOwned;

use crate::ports::{Randomness, RandomnessUnavailable};

/// A value bound to a `?` placeholder.
#[derive(Debug, Clone, PartialEq)]
pub enum SqlValue {
    Null,
    Integer(i64),
    Real(f64),
    Text(String),
}

impl From<&str> for SqlValue {
    fn from(v: &str) -> Self {
        SqlValue::Text(v.to_owned())
    }
}
impl From<String> for SqlValue {
    fn from(v: String) -> Self {
        SqlValue::Text(v)
    }
}
impl From<&String> for SqlValue {
    fn from(v: &String) -> Self {
        SqlValue::Text(v.clone())
    }
}
impl From<i64> for SqlValue {
    fn from(v: i64) -> Self {
        SqlValue::Integer(v)
    }
}
impl From<u32> for SqlValue {
    fn from(v: u32) -> Self {
        SqlValue::Integer(i64::from(v))
    }
}
impl From<bool> for SqlValue {
    fn from(v: bool) -> Self {
        SqlValue::Integer(i64::from(v))
    }
}
impl From<DateTime<Utc>> for SqlValue {
    fn from(v: DateTime<Utc>) -> Self {
        SqlValue::Integer(v.timestamp())
    }
}
impl<T: Into<SqlValue>> From<Option<T>> for SqlValue {
    fn from(v: Option<T>) -> Self {
        v.map_or(SqlValue::Null, Into::into)
    }
}

/// One SQL statement with its positional parameters.
#[derive(Debug, Clone, PartialEq)]
pub struct Statement {
    pub sql: &'static str,
    pub params: Vec<SqlValue>,
}

impl Statement {
    pub fn new(sql: &'static str, params: Vec<SqlValue>) -> Self {
        Statement { sql, params }
    }

    /// The statement as one SQL text with its parameters written in as
    /// literals (text quoted with `'` doubled, NULL, numbers), for tools
    /// that can only send text: `wrangler d1 execute --command` (the deploy
    /// tooling's audit rows). Workers and tests bind parameters instead.
    /// `None` when the placeholders and parameters do not match in number,
    /// or a text holds a NUL (which SQLite's literals cannot carry).
    pub fn inline_sql(&self) -> Option<String> {
        let mut out = String::with_capacity(self.sql.len() + 64);
        let mut params = self.params.iter();
        for c in self.sql.chars() {
            if c != '?' {
                out.push(c);
                continue;
            }
            match params.next()? {
                SqlValue::Null => out.push_str("NULL"),
                SqlValue::Integer(i) => out.push_str(&i.to_string()),
                SqlValue::Real(r) if r.is_finite() => out.push_str(&format!("{r:?}")),
                SqlValue::Real(_) => return None,
                SqlValue::Text(t) if t.contains('\0') => return None,
                SqlValue::Text(t) => {
                    out.push('\'');
                    out.push_str(&t.replace('\'', "''"));
                    out.push('\'');
                }
            }
        }
        params.next().is_none().then_some(out)
    }
}

/// A result row: column name → JSON value (integers as numbers, TEXT as
/// strings, NULL as null).
pub type Row = serde_json::Map<String, serde_json::Value>;

/// What a write did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Executed {
    pub changes: u64,
    pub last_row_id: Option<i64>,
}

/// Storage failures, as a caller can act on them.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StorageError {
    /// The database could not be reached or failed transiently; retrying
    /// may help. Maps to HTTP 503.
    #[error("database unavailable: {0}")]
    Unavailable(String),
    /// A UNIQUE, CHECK or FOREIGN KEY constraint rejected the write. Maps
    /// to a 409/400 where a user caused it, else 500.
    #[error("constraint violated: {0}")]
    Constraint(String),
    /// SQL or schema mismatch: a bug or a missing migration. Maps to 500.
    #[error("query failed: {0}")]
    Query(String),
    /// A row did not have the expected shape. Maps to 500.
    #[error("unexpected row shape: {0}")]
    Decode(String),
    #[error(transparent)]
    Randomness(#[from] RandomnessUnavailable),
}

impl StorageError {
    pub fn is_retryable(&self) -> bool {
        matches!(self, StorageError::Unavailable(_))
    }
}

/// The port: run SQL. Implemented over D1 (production) and SQLite (tests).
///
/// Workers are single-threaded, so futures need not be `Send`.
#[allow(async_fn_in_trait)]
pub trait SqlExecutor {
    /// Runs a read and returns all rows.
    async fn query(&self, stmt: Statement) -> Result<Vec<Row>, StorageError>;
    /// Runs a write.
    async fn execute(&self, stmt: Statement) -> Result<Executed, StorageError>;
    /// Runs writes in order, atomically: all or none.
    async fn batch(&self, stmts: Vec<Statement>) -> Result<Vec<Executed>, StorageError>;
    /// Runs statements in order, atomically (one transaction, one round
    /// trip), and returns each one's rows (a write's `RETURNING` rows, or
    /// none). A failing statement fails the whole batch.
    async fn batch_query(&self, stmts: Vec<Statement>) -> Result<Vec<Vec<Row>>, StorageError>;
}

/// A borrowed executor is an executor, so wrappers (`counting::Counting`)
/// can hold either.
impl<T: SqlExecutor + ?Sized> SqlExecutor for &T {
    async fn query(&self, stmt: Statement) -> Result<Vec<Row>, StorageError> {
        (**self).query(stmt).await
    }
    async fn execute(&self, stmt: Statement) -> Result<Executed, StorageError> {
        (**self).execute(stmt).await
    }
    async fn batch(&self, stmts: Vec<Statement>) -> Result<Vec<Executed>, StorageError> {
        (**self).batch(stmts).await
    }
    async fn batch_query(&self, stmts: Vec<Statement>) -> Result<Vec<Vec<Row>>, StorageError> {
        (**self).batch_query(stmts).await
    }
}

/// The executor of a request that must not reach any database (a demo):
/// every statement is refused, so a code path that would read or write
/// customer data fails loudly instead.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoDatabase;

impl NoDatabase {
    fn refuse() -> StorageError {
        StorageError::Query("this request has no database".into())
    }
}

impl SqlExecutor for NoDatabase {
    async fn query(&self, _stmt: Statement) -> Result<Vec<Row>, StorageError> {
        Err(Self::refuse())
    }
    async fn execute(&self, _stmt: Statement) -> Result<Executed, StorageError> {
        Err(Self::refuse())
    }
    async fn batch(&self, _stmts: Vec<Statement>) -> Result<Vec<Executed>, StorageError> {
        Err(Self::refuse())
    }
    async fn batch_query(&self, _stmts: Vec<Statement>) -> Result<Vec<Vec<Row>>, StorageError> {
        Err(Self::refuse())
    }
}

pub(crate) fn decode<T: DeserializeOwned>(row: Row) -> Result<T, StorageError> {
    serde_json::from_value(serde_json::Value::Object(row))
        .map_err(|e| StorageError::Decode(e.to_string()))
}

pub(crate) async fn query_one<T: DeserializeOwned>(
    db: &impl SqlExecutor,
    stmt: Statement,
) -> Result<Option<T>, StorageError> {
    db.query(stmt)
        .await?
        .into_iter()
        .next()
        .map(decode)
        .transpose()
}

pub(crate) async fn query_all<T: DeserializeOwned>(
    db: &impl SqlExecutor,
    stmt: Statement,
) -> Result<Vec<T>, StorageError> {
    db.query(stmt).await?.into_iter().map(decode).collect()
}

/// Unix seconds back to a time; out-of-range values decode as an error.
pub(crate) fn from_unix(secs: i64) -> Result<DateTime<Utc>, StorageError> {
    Utc.timestamp_opt(secs, 0)
        .single()
        .ok_or_else(|| StorageError::Decode(format!("timestamp {secs} out of range")))
}

/// A new random row id: 128 bits as 32 hex characters.
pub fn new_id(rng: &impl Randomness) -> Result<String, RandomnessUnavailable> {
    let mut raw = [0u8; 16];
    rng.fill(&mut raw)?;
    Ok(hex::encode(raw))
}

/// The deep health check: the names of the applied migrations, in the
/// order they were applied (`d1_migrations`, wrangler's own table).
pub async fn applied_migration_names(db: &impl SqlExecutor) -> Result<Vec<String>, StorageError> {
    #[derive(serde::Deserialize)]
    struct Name {
        name: String,
    }
    let rows: Vec<Name> = query_all(db, applied_migration_names_statement()).await?;
    Ok(rows.into_iter().map(|r| r.name).collect())
}

/// Health probe: the database answers and how many migrations it has.
pub async fn applied_migrations(db: &impl SqlExecutor) -> Result<u32, StorageError> {
    #[derive(serde::Deserialize)]
    struct Count {
        n: u32,
    }
    let row: Option<Count> = query_one(
        db,
        Statement::new("SELECT COUNT(*) AS n FROM d1_migrations", vec![]),
    )
    .await?;
    Ok(row.map_or(0, |c| c.n))
}

/// The names of the migrations this build expects, in order (compiled in
/// by `build.rs`: [`crate::health::EXPECTED_MIGRATIONS`]).
pub fn expected_migrations() -> Vec<&'static str> {
    crate::health::EXPECTED_MIGRATIONS.to_vec()
}

/// The names of the migrations the database has applied, in order (for a
/// `batch_query`; each row has `name`).
pub fn applied_migration_names_statement() -> Statement {
    Statement::new("SELECT name FROM d1_migrations ORDER BY id", vec![])
}
