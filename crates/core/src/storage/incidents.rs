//! The `incidents` table: what the token cron's alert check found wrong,
//! one row per incident and at most one open per kind (a unique partial
//! index), so the mail that says an incident opened is queued exactly
//! once: in the batch that inserts the row.

use chrono::{DateTime, Utc};
use serde::Deserialize;

use super::{Statement, from_unix};
use crate::storage::{Row, StorageError, decode};

/// An incident as the check reads it back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OpenIncident {
    pub id: i64,
    pub kind: String,
    pub opened_at: DateTime<Utc>,
    pub last_seen: DateTime<Utc>,
    pub details: String,
}

#[derive(Deserialize)]
struct RawIncident {
    id: i64,
    kind: String,
    opened_at: i64,
    last_seen: i64,
    details: String,
}

/// The open incidents (for a `batch_query`; decode with [`decode_open`]).
pub fn open_statement() -> Statement {
    Statement::new(
        "SELECT id, kind, opened_at, last_seen, details FROM incidents
          WHERE resolved_at IS NULL ORDER BY kind",
        vec![],
    )
}

pub fn decode_open(rows: Vec<Row>) -> Result<Vec<OpenIncident>, StorageError> {
    rows.into_iter()
        .map(|row| {
            let r: RawIncident = decode(row)?;
            Ok(OpenIncident {
                id: r.id,
                kind: r.kind,
                opened_at: from_unix(r.opened_at)?,
                last_seen: from_unix(r.last_seen)?,
                details: r.details,
            })
        })
        .collect()
}

/// Opens an incident. Fails (the unique index) while one of the kind is
/// open, which fails the batch with its mail: never two for one incident.
pub fn open_insert_statement(kind: &str, details: &str, now: DateTime<Utc>) -> Statement {
    Statement::new(
        "INSERT INTO incidents (kind, opened_at, last_seen, details) VALUES (?, ?, ?, ?)",
        vec![kind.into(), now.into(), now.into(), details.into()],
    )
}

/// The condition is still there: when it was last seen, and what it is now.
pub fn seen_statement(id: i64, details: &str, now: DateTime<Utc>) -> Statement {
    Statement::new(
        "UPDATE incidents SET last_seen = ?, details = ? WHERE id = ? AND resolved_at IS NULL",
        vec![now.into(), details.into(), id.into()],
    )
}

/// Resolves an open incident.
pub fn resolve_statement(id: i64, now: DateTime<Utc>) -> Statement {
    Statement::new(
        "UPDATE incidents SET resolved_at = ? WHERE id = ? AND resolved_at IS NULL",
        vec![now.into(), id.into()],
    )
}

/// Resolved incidents older than `before` (open ones are always kept).
pub fn purge_statement(before: DateTime<Utc>) -> Statement {
    Statement::new(
        "DELETE FROM incidents WHERE resolved_at IS NOT NULL AND resolved_at < ?",
        vec![before.into()],
    )
}

/// Every incident, newest first, for operators and tests.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct StoredIncident {
    pub id: i64,
    pub kind: String,
    pub opened_at: i64,
    pub last_seen: i64,
    pub resolved_at: Option<i64>,
    pub details: String,
}

pub fn all_statement() -> Statement {
    Statement::new(
        "SELECT id, kind, opened_at, last_seen, resolved_at, details FROM incidents
          ORDER BY id DESC",
        vec![],
    )
}
