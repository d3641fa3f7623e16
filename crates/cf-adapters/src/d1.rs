//! Core's [`SqlExecutor`] over a D1 binding.
//!
//! Binds values the way D1 accepts them: integers as JS numbers (never
//! BigInt, which D1 rejects) and only within 2^53, NULL as `null` (never
//! `undefined`). Rows come back through serde as JSON objects; integral
//! numbers arrive as integers.

use boekhouding_core::storage::{
    Executed, NoDatabase, Row, SqlExecutor, SqlValue, Statement, StorageError,
};
use wasm_bindgen::JsValue;
use worker::{D1Database, D1PreparedStatement};

/// Largest integer a JS number holds exactly.
const MAX_SAFE: i64 = (1 << 53) - 1;

#[derive(Debug)]
pub struct D1Executor {
    db: D1Database,
}

impl D1Executor {
    pub fn new(db: D1Database) -> Self {
        D1Executor { db }
    }

    pub fn from_env(env: &worker::Env) -> Result<Self, StorageError> {
        env.d1(crate::bindings::DB)
            .map(Self::new)
            .map_err(|e| StorageError::Unavailable(format!("binding {}: {e}", crate::bindings::DB)))
    }

    fn prepare(&self, stmt: &Statement) -> Result<D1PreparedStatement, StorageError> {
        let params = stmt
            .params
            .iter()
            .map(to_js)
            .collect::<Result<Vec<JsValue>, StorageError>>()?;
        self.db
            .prepare(stmt.sql)
            .bind(&params)
            .map_err(|e| classify(&e.to_string()))
    }
}

fn to_js(v: &SqlValue) -> Result<JsValue, StorageError> {
    Ok(match v {
        SqlValue::Null => JsValue::NULL,
        SqlValue::Integer(i) if i.abs() <= MAX_SAFE => JsValue::from_f64(*i as f64),
        SqlValue::Integer(i) => {
            return Err(StorageError::Query(format!(
                "integer {i} exceeds D1's exact range; store it as TEXT"
            )));
        }
        SqlValue::Real(f) => JsValue::from_f64(*f),
        SqlValue::Text(s) => JsValue::from_str(s),
    })
}

/// Maps D1's error text to the port's error kinds.
fn classify(message: &str) -> StorageError {
    let m = message.to_ascii_lowercase();
    if m.contains("constraint") {
        StorageError::Constraint(message.to_owned())
    } else if m.contains("network")
        || m.contains("timeout")
        || m.contains("overloaded")
        || m.contains("unavailable")
        || m.contains("reset")
        || m.contains("sqlite_busy")
        || m.contains("database is locked")
    {
        StorageError::Unavailable(message.to_owned())
    } else {
        StorageError::Query(message.to_owned())
    }
}

fn d1_error(e: worker::Error) -> StorageError {
    match e {
        worker::Error::D1(d1) => classify(&d1.cause()),
        other => classify(&other.to_string()),
    }
}

fn executed(result: &worker::D1Result) -> Result<Executed, StorageError> {
    let meta = result.meta().map_err(d1_error)?;
    Ok(Executed {
        changes: meta.as_ref().and_then(|m| m.changes).unwrap_or(0) as u64,
        last_row_id: meta.and_then(|m| m.last_row_id),
    })
}

/// Waits before retrying a statement the database refused as busy.
const BUSY_WAITS_MS: [u64; 4] = [20, 60, 150, 400];

/// SQLite refuses a statement with `SQLITE_BUSY` before it runs, so it is
/// always safe to send again (unlike other transient errors, after which
/// a write may or may not have happened).
fn is_busy(e: &StorageError) -> bool {
    matches!(e, StorageError::Unavailable(m)
        if m.contains("SQLITE_BUSY") || m.to_ascii_lowercase().contains("database is locked"))
}

impl D1Executor {
    async fn query_once(&self, stmt: &Statement) -> Result<Vec<Row>, StorageError> {
        let prepared = self.prepare(stmt)?;
        let result = prepared.all().await.map_err(d1_error)?;
        if let Some(err) = result.error() {
            return Err(classify(&err));
        }
        result.results::<Row>().map_err(d1_error)
    }

    async fn execute_once(&self, stmt: &Statement) -> Result<Executed, StorageError> {
        let prepared = self.prepare(stmt)?;
        let result = prepared.run().await.map_err(d1_error)?;
        executed(&result)
    }

    async fn batch_once(&self, stmts: &[Statement]) -> Result<Vec<Executed>, StorageError> {
        let prepared = stmts
            .iter()
            .map(|s| self.prepare(s))
            .collect::<Result<Vec<_>, _>>()?;
        let results = self.db.batch(prepared).await.map_err(d1_error)?;
        results.iter().map(executed).collect()
    }

    async fn batch_query_once(&self, stmts: &[Statement]) -> Result<Vec<Vec<Row>>, StorageError> {
        let prepared = stmts
            .iter()
            .map(|s| self.prepare(s))
            .collect::<Result<Vec<_>, _>>()?;
        let results = self.db.batch(prepared).await.map_err(d1_error)?;
        results
            .iter()
            .map(|result| {
                if let Some(err) = result.error() {
                    return Err(classify(&err));
                }
                result.results::<Row>().map_err(d1_error)
            })
            .collect()
    }
}

/// Runs `attempt` again while the database answers busy.
async fn retry_busy<T, F, Fut>(mut attempt: F) -> Result<T, StorageError>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, StorageError>>,
{
    for wait in BUSY_WAITS_MS {
        match attempt().await {
            Err(e) if is_busy(&e) => {
                worker::Delay::from(std::time::Duration::from_millis(wait)).await;
            }
            other => return other,
        }
    }
    attempt().await
}

impl SqlExecutor for D1Executor {
    async fn query(&self, stmt: Statement) -> Result<Vec<Row>, StorageError> {
        retry_busy(|| self.query_once(&stmt)).await
    }

    async fn execute(&self, stmt: Statement) -> Result<Executed, StorageError> {
        retry_busy(|| self.execute_once(&stmt)).await
    }

    async fn batch(&self, stmts: Vec<Statement>) -> Result<Vec<Executed>, StorageError> {
        retry_busy(|| self.batch_once(&stmts)).await
    }

    async fn batch_query(&self, stmts: Vec<Statement>) -> Result<Vec<Vec<Row>>, StorageError> {
        retry_busy(|| self.batch_query_once(&stmts)).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_busy_database_is_retried_blindly() {
        let busy = classify("D1_ERROR: database is locked: SQLITE_BUSY");
        assert!(matches!(busy, StorageError::Unavailable(_)));
        assert!(is_busy(&busy));
        // A reset may come after the write happened: transient, not busy.
        let reset = classify("D1_ERROR: Network connection lost, connection reset");
        assert!(reset.is_retryable() && !is_busy(&reset));
        assert!(!is_busy(&classify("UNIQUE constraint failed: users.email")));
        assert!(!is_busy(&classify("no such table: nope")));
    }
}

/// A request's database: D1, or none at all (a demo request, or a Worker
/// whose binding is missing: every statement is then refused and the page
/// or tool says the service is unavailable). One type, so the code that
/// uses it is compiled once.
#[derive(Debug)]
pub enum RequestDb {
    D1(D1Executor),
    None(NoDatabase),
}

impl SqlExecutor for RequestDb {
    async fn query(&self, stmt: Statement) -> Result<Vec<Row>, StorageError> {
        match self {
            RequestDb::D1(d) => d.query(stmt).await,
            RequestDb::None(n) => n.query(stmt).await,
        }
    }
    async fn execute(&self, stmt: Statement) -> Result<Executed, StorageError> {
        match self {
            RequestDb::D1(d) => d.execute(stmt).await,
            RequestDb::None(n) => n.execute(stmt).await,
        }
    }
    async fn batch(&self, stmts: Vec<Statement>) -> Result<Vec<Executed>, StorageError> {
        match self {
            RequestDb::D1(d) => d.batch(stmts).await,
            RequestDb::None(n) => n.batch(stmts).await,
        }
    }
    async fn batch_query(&self, stmts: Vec<Statement>) -> Result<Vec<Vec<Row>>, StorageError> {
        match self {
            RequestDb::D1(d) => d.batch_query(stmts).await,
            RequestDb::None(n) => n.batch_query(stmts).await,
        }
    }
}
