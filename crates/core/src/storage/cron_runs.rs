//! The `cron_runs` table: one summary row per token-cron run.

use chrono::{DateTime, Utc};
use serde::Deserialize;

use super::{SqlExecutor, Statement, StorageError, query_all};

/// Counters of one run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct RunSummary {
    pub due: u32,
    pub refreshed: u32,
    pub retried: u32,
    pub failed: u32,
    pub skipped: u32,
    pub emails_sent: u32,
    pub emails_failed: u32,
    pub purged: u32,
    /// Connections handed to the queue (fan-out mode).
    pub enqueued: u32,
    /// Calls to Exact's token endpoint.
    pub exact_calls: u32,
    /// Database round trips (statements and batches), the run's other
    /// subrequest cost.
    pub d1_queries: u32,
    /// The longest any refreshed connection had been due, in seconds.
    pub longest_wait_s: u32,
    /// Connections resealed from a retired encryption key.
    pub resealed: u32,
}

/// Which part of the cron a run row describes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum RunMode {
    /// A scheduled run that refreshes by itself.
    #[default]
    Inline,
    /// A scheduled run that hands due connections to the queue.
    Enqueue,
    /// A queue consumer invocation.
    Consume,
}

impl RunMode {
    pub const fn as_str(self) -> &'static str {
        match self {
            RunMode::Inline => "inline",
            RunMode::Enqueue => "enqueue",
            RunMode::Consume => "consume",
        }
    }
}

/// How a run ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RunOutcome {
    Ok,
    /// Some work was left for the next tick or some items failed.
    Partial,
    Error,
}

impl RunOutcome {
    pub const fn as_str(self) -> &'static str {
        match self {
            RunOutcome::Ok => "ok",
            RunOutcome::Partial => "partial",
            RunOutcome::Error => "error",
        }
    }
}

/// Opens a run row and returns its id.
pub async fn start(
    db: &impl SqlExecutor,
    cron: &str,
    mode: RunMode,
    now: DateTime<Utc>,
) -> Result<i64, StorageError> {
    let done = db
        .execute(Statement::new(
            "INSERT INTO cron_runs (cron, mode, started_at) VALUES (?, ?, ?)",
            vec![cron.into(), mode.as_str().into(), now.into()],
        ))
        .await?;
    done.last_row_id
        .ok_or_else(|| StorageError::Query("no row id for cron run".into()))
}

/// How a run ended, as its row records it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RunEnd<'a> {
    pub summary: &'a RunSummary,
    pub outcome: RunOutcome,
    /// Secret-free notes (problems, skip reasons).
    pub notes: Option<&'a str>,
    /// Why the breaker stopped refreshing, if it did.
    pub breaker: Option<&'a str>,
}

/// Closes a run row with its counters and outcome.
pub async fn finish(
    db: &impl SqlExecutor,
    id: i64,
    end: &RunEnd<'_>,
    started: DateTime<Utc>,
    now: DateTime<Utc>,
) -> Result<(), StorageError> {
    let summary = end.summary;
    let duration_ms = (now - started).num_milliseconds().max(0);
    db.execute(Statement::new(
        "UPDATE cron_runs SET finished_at = ?, due = ?, refreshed = ?, retried = ?, failed = ?,
            skipped = ?, emails_sent = ?, emails_failed = ?, purged = ?, enqueued = ?,
            exact_calls = ?, d1_queries = ?, longest_wait_s = ?, resealed = ?, duration_ms = ?,
            outcome = ?, notes = ?, breaker = ?
         WHERE id = ?",
        vec![
            now.into(),
            summary.due.into(),
            summary.refreshed.into(),
            summary.retried.into(),
            summary.failed.into(),
            summary.skipped.into(),
            summary.emails_sent.into(),
            summary.emails_failed.into(),
            summary.purged.into(),
            summary.enqueued.into(),
            summary.exact_calls.into(),
            summary.d1_queries.into(),
            summary.longest_wait_s.into(),
            summary.resealed.into(),
            duration_ms.into(),
            end.outcome.as_str().into(),
            end.notes.into(),
            end.breaker.into(),
            id.into(),
        ],
    ))
    .await?;
    Ok(())
}

/// Run rows older than `before`.
pub fn purge_statement(before: DateTime<Utc>) -> Statement {
    Statement::new(
        "DELETE FROM cron_runs WHERE started_at < ?",
        vec![before.into()],
    )
}

/// The largest integer D1 passes through JavaScript exactly.
const MAX_SAFE_ID: i64 = (1 << 53) - 1;

/// A run as the alert check reads it.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct RunFacts {
    pub id: i64,
    pub mode: String,
    pub started_at: i64,
    pub finished_at: Option<i64>,
    pub outcome: String,
    pub breaker: Option<String>,
    pub refreshed: u32,
    pub retried: u32,
    pub failed: u32,
}

/// The newest runs (up to `limit`) recorded before the run `before_id`
/// (all runs when `None`), newest first, for the alert check's
/// `batch_query`.
pub fn before_statement(before_id: Option<i64>, limit: u32) -> Statement {
    Statement::new(
        "SELECT id, mode, started_at, finished_at, outcome, breaker, refreshed, retried, failed
           FROM cron_runs WHERE id < ? ORDER BY id DESC LIMIT ?",
        // Without a run of its own, every row is before the largest id D1
        // can hold (2^53 - 1), and the search stays a key range.
        vec![before_id.unwrap_or(MAX_SAFE_ID).into(), limit.into()],
    )
}

/// A recorded run, newest first in [`recent`].
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct RecordedRun {
    pub id: i64,
    pub cron: String,
    pub started_at: i64,
    pub finished_at: Option<i64>,
    pub due: u32,
    pub refreshed: u32,
    pub failed: u32,
    pub outcome: String,
}

pub async fn recent(db: &impl SqlExecutor, limit: u32) -> Result<Vec<RecordedRun>, StorageError> {
    query_all(
        db,
        Statement::new(
            "SELECT id, cron, started_at, finished_at, due, refreshed, failed, outcome
             FROM cron_runs ORDER BY started_at DESC, id DESC LIMIT ?",
            vec![limit.into()],
        ),
    )
    .await
}

/// The newest run (by start, then id), for the deep health check.
pub async fn last(
    db: &impl SqlExecutor,
) -> Result<Option<crate::health::LastCronRun>, StorageError> {
    super::query_one(
        db,
        Statement::new(
            "SELECT id, mode, started_at, finished_at, outcome, breaker
             FROM cron_runs ORDER BY started_at DESC, id DESC LIMIT 1",
            vec![],
        ),
    )
    .await
}
