//! Metering: the atomic monthly counter that plan enforcement reads
//! (`usage_counters`) and the per-call log (`api_usage`).

use chrono::{DateTime, Datelike, TimeZone, Utc};
use serde::Deserialize;

use super::caller::{CallerKey, monthly_caps, plan_cap_case, with_caller};
use super::{Row, SqlExecutor, Statement, StorageError, decode, query_one};
use crate::plan::Limit;

/// A calendar month in UTC, the metering window.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct UsageMonth {
    pub year: i32,
    pub month: u32,
}

impl UsageMonth {
    pub fn of(now: DateTime<Utc>) -> Self {
        UsageMonth {
            year: now.year(),
            month: now.month(),
        }
    }

    /// `YYYY-MM`, the key stored in `usage_counters.month`.
    pub fn key(self) -> String {
        format!("{:04}-{:02}", self.year, self.month)
    }

    /// Midnight UTC on the first day of this month.
    pub fn starts_at(self) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(self.year, self.month, 1, 0, 0, 0)
            .single()
            .unwrap_or(DateTime::<Utc>::MIN_UTC)
    }

    /// Midnight UTC on the first day of the next month: when the counter
    /// starts again.
    pub fn resets_at(self) -> DateTime<Utc> {
        let (y, m) = if self.month == 12 {
            (self.year + 1, 1)
        } else {
            (self.year, self.month + 1)
        };
        Utc.with_ymd_and_hms(y, m, 1, 0, 0, 0)
            .single()
            .unwrap_or(DateTime::<Utc>::MAX_UTC)
    }
}

/// The metering decision for one `tools/call`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Metered {
    /// Counted; `used` includes this call.
    Allowed { used: u64 },
    /// Not counted: the plan's monthly limit was already reached.
    LimitReached { used: u64 },
}

#[derive(Deserialize)]
struct Count {
    tool_calls: u64,
}

/// Counts one call if the month's limit allows it, atomically: a single
/// upsert whose update only fires below the limit, so concurrent calls can
/// never push the counter past the plan.
pub async fn try_count_call(
    db: &impl SqlExecutor,
    user_id: &str,
    month: UsageMonth,
    limit: Limit,
) -> Result<Metered, StorageError> {
    let cap = limit.cap_for_sql();
    if cap == 0 {
        return Ok(Metered::LimitReached {
            used: monthly_calls(db, user_id, month).await?,
        });
    }
    let counted: Option<Count> = query_one(
        db,
        Statement::new(
            "INSERT INTO usage_counters (user_id, month, tool_calls) VALUES (?, ?, 1)
             ON CONFLICT (user_id, month) DO UPDATE SET tool_calls = tool_calls + 1
             WHERE tool_calls < ?
             RETURNING tool_calls",
            vec![user_id.into(), month.key().into(), cap.into()],
        ),
    )
    .await?;
    match counted {
        Some(c) => Ok(Metered::Allowed { used: c.tool_calls }),
        None => Ok(Metered::LimitReached {
            used: monthly_calls(db, user_id, month).await?,
        }),
    }
}

/// The meter of [`try_count_call`] for the caller of a credential, as one
/// statement of the caller's batch: counts the call if the caller's plan
/// (its cap from `core::plan`) allows it; an empty result means refused,
/// never an error, so a refusal does not fail the batch. A cap of 0 counts
/// nothing.
pub fn meter_for_caller_statement(key: &CallerKey, month: UsageMonth) -> Statement {
    let mut rest = vec![month.key().into()];
    rest.extend(monthly_caps());
    rest.extend(monthly_caps());
    key.statement(
        with_caller!(
            api_key,
            "INSERT INTO usage_counters (user_id, month, tool_calls) SELECT user_id, ?, 1 FROM caller WHERE (",
            plan_cap_case!(),
            ") > 0 ON CONFLICT (user_id, month) DO UPDATE SET tool_calls = tool_calls + 1 WHERE tool_calls < (SELECT ",
            plan_cap_case!(),
            " FROM caller) RETURNING tool_calls"
        ),
        with_caller!(
            oauth,
            "INSERT INTO usage_counters (user_id, month, tool_calls) SELECT user_id, ?, 1 FROM caller WHERE (",
            plan_cap_case!(),
            ") > 0 ON CONFLICT (user_id, month) DO UPDATE SET tool_calls = tool_calls + 1 WHERE tool_calls < (SELECT ",
            plan_cap_case!(),
            " FROM caller) RETURNING tool_calls"
        ),
        rest,
    )
}

/// The caller's calls counted this month (after the meter, when the batch
/// took one).
pub fn count_for_caller_statement(key: &CallerKey, month: UsageMonth) -> Statement {
    key.statement(
        with_caller!(
            api_key,
            "SELECT tool_calls FROM usage_counters WHERE user_id = (SELECT user_id FROM caller) AND month = ?"
        ),
        with_caller!(
            oauth,
            "SELECT tool_calls FROM usage_counters WHERE user_id = (SELECT user_id FROM caller) AND month = ?"
        ),
        vec![month.key().into()],
    )
}

/// The count read by [`count_for_caller_statement`] (0: none yet).
pub fn decode_count(rows: Vec<Row>) -> Result<u64, StorageError> {
    Ok(rows
        .into_iter()
        .next()
        .map(decode::<Count>)
        .transpose()?
        .map_or(0, |c| c.tool_calls))
}

/// The decision of [`meter_for_caller_statement`]: its row, or none when
/// refused (`used` is the month's count read after it).
pub fn decode_meter(rows: Vec<Row>, used: u64) -> Result<Metered, StorageError> {
    match rows.into_iter().next().map(decode::<Count>).transpose()? {
        Some(c) => Ok(Metered::Allowed { used: c.tool_calls }),
        None => Ok(Metered::LimitReached { used }),
    }
}

/// Gives back a call counted in advance that did not run (the request
/// turned out not to call the tool it was metered for).
pub fn refund_statement(user_id: &str, month: UsageMonth) -> Statement {
    Statement::new(
        "UPDATE usage_counters SET tool_calls = tool_calls - 1
         WHERE user_id = ? AND month = ? AND tool_calls > 0",
        vec![user_id.into(), month.key().into()],
    )
}

/// Calls counted so far this month.
pub async fn monthly_calls(
    db: &impl SqlExecutor,
    user_id: &str,
    month: UsageMonth,
) -> Result<u64, StorageError> {
    let row: Option<Count> = query_one(
        db,
        Statement::new(
            "SELECT tool_calls FROM usage_counters WHERE user_id = ? AND month = ?",
            vec![user_id.into(), month.key().into()],
        ),
    )
    .await?;
    Ok(row.map_or(0, |c| c.tool_calls))
}

/// How a call was authenticated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AuthKind {
    ApiKey { key_id: String },
    OAuth { client_id: String },
}

/// The outcome recorded for a call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Ok,
    ToolError,
    InvalidArguments,
    LimitExceeded,
    Forbidden,
    UpstreamError,
    InternalError,
}

impl Outcome {
    pub const fn as_str(self) -> &'static str {
        match self {
            Outcome::Ok => "ok",
            Outcome::ToolError => "tool_error",
            Outcome::InvalidArguments => "invalid_arguments",
            Outcome::LimitExceeded => "limit_exceeded",
            Outcome::Forbidden => "forbidden",
            Outcome::UpstreamError => "upstream_error",
            Outcome::InternalError => "internal_error",
        }
    }
}

/// One `api_usage` row.
#[derive(Debug, Clone, PartialEq)]
pub struct CallRecord {
    pub user_id: String,
    pub auth: AuthKind,
    pub tool: String,
    pub division_code: Option<i64>,
    pub outcome: Outcome,
    pub latency_ms: u32,
    pub exact_calls: u32,
    pub request_id: Option<String>,
    pub client_name: Option<String>,
    pub at: DateTime<Utc>,
}

pub async fn record_call(db: &impl SqlExecutor, call: &CallRecord) -> Result<(), StorageError> {
    db.execute(record_call_statement(call)).await?;
    Ok(())
}

/// The `api_usage` row of a call, to write after the answer.
pub fn record_call_statement(call: &CallRecord) -> Statement {
    let (kind, key_id, client_id) = match &call.auth {
        AuthKind::ApiKey { key_id } => ("api_key", Some(key_id.clone()), None),
        AuthKind::OAuth { client_id } => ("oauth", None, Some(client_id.clone())),
    };
    Statement::new(
        "INSERT INTO api_usage (user_id, auth_kind, api_key_id, oauth_client_id, tool,
            division_code, outcome, latency_ms, exact_calls, request_id, client_name, at)
         VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        vec![
            call.user_id.clone().into(),
            kind.into(),
            key_id.into(),
            client_id.into(),
            call.tool.clone().into(),
            call.division_code.into(),
            call.outcome.as_str().into(),
            call.latency_ms.into(),
            call.exact_calls.into(),
            call.request_id.clone().into(),
            call.client_name.clone().into(),
            call.at.into(),
        ],
    )
}

/// Retention of per-call rows: older ones are folded into
/// `usage_rollups` (monthly totals per user and tool) and deleted, in one
/// atomic batch so no call is counted twice or lost. Returns both
/// statements; the second's change count is the number purged.
pub fn roll_up_and_purge_statements(cutoff: DateTime<Utc>) -> [Statement; 2] {
    [
        Statement::new(
            "INSERT INTO usage_rollups (user_id, month, tool, calls, errors, total_latency_ms)
             SELECT user_id, strftime('%Y-%m', at, 'unixepoch'), tool, COUNT(*),
                    SUM(outcome <> 'ok'), SUM(latency_ms)
               FROM api_usage INDEXED BY idx_api_usage_at WHERE at < ?
              GROUP BY user_id, strftime('%Y-%m', at, 'unixepoch'), tool
             ON CONFLICT (user_id, month, tool) DO UPDATE SET
                calls = calls + excluded.calls,
                errors = errors + excluded.errors,
                total_latency_ms = total_latency_ms + excluded.total_latency_ms",
            vec![cutoff.into()],
        ),
        Statement::new("DELETE FROM api_usage WHERE at < ?", vec![cutoff.into()]),
    ]
}

/// Per-tool totals of a user's calls in a month, for the dashboard (the
/// per-call rows still kept plus the roll-ups of purged ones).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct ToolUsage {
    pub tool: String,
    pub calls: u64,
    pub errors: u64,
}

pub async fn tool_usage(
    db: &impl SqlExecutor,
    user_id: &str,
    month: UsageMonth,
) -> Result<Vec<ToolUsage>, StorageError> {
    let from = Utc
        .with_ymd_and_hms(month.year, month.month, 1, 0, 0, 0)
        .single()
        .unwrap_or(DateTime::<Utc>::MIN_UTC);
    super::query_all(
        db,
        Statement::new(
            "SELECT tool, SUM(calls) AS calls, SUM(errors) AS errors FROM (
                SELECT tool, COUNT(*) AS calls, SUM(outcome <> 'ok') AS errors
                  FROM api_usage WHERE user_id = ? AND at >= ? AND at < ? GROUP BY tool
                UNION ALL
                SELECT tool, calls, errors FROM usage_rollups WHERE user_id = ? AND month = ?)
             GROUP BY tool ORDER BY calls DESC, tool",
            vec![
                user_id.into(),
                from.into(),
                month.resets_at().into(),
                user_id.into(),
                month.key().into(),
            ],
        ),
    )
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn month_keys_and_reset_dates() {
        let dec = Utc.with_ymd_and_hms(2026, 12, 31, 23, 59, 59).unwrap();
        let m = UsageMonth::of(dec);
        assert_eq!(m.key(), "2026-12");
        assert_eq!(
            m.resets_at(),
            Utc.with_ymd_and_hms(2027, 1, 1, 0, 0, 0).unwrap()
        );
        let feb = UsageMonth::of(Utc.with_ymd_and_hms(2028, 2, 29, 12, 0, 0).unwrap());
        assert_eq!(feb.key(), "2028-02");
        assert_eq!(
            feb.resets_at(),
            Utc.with_ymd_and_hms(2028, 3, 1, 0, 0, 0).unwrap()
        );
    }
}

/// One recent tool call, for the dashboard's activity list.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct RecentCall {
    pub at: i64,
    pub tool: String,
    pub division_code: Option<i64>,
    pub outcome: String,
    pub latency_ms: i64,
    pub client_name: Option<String>,
}

/// The user's last `limit` tool calls, newest first (an index range scan
/// on `(user_id, at)`).
pub async fn recent_calls(
    db: &impl SqlExecutor,
    user_id: &str,
    limit: u32,
) -> Result<Vec<RecentCall>, StorageError> {
    super::query_all(
        db,
        Statement::new(
            "SELECT at, tool, division_code, outcome, latency_ms, client_name FROM api_usage
             WHERE user_id = ? ORDER BY at DESC, id DESC LIMIT ?",
            vec![user_id.into(), limit.into()],
        ),
    )
    .await
}

/// Calls per UTC day (`YYYY-MM-DD`) and per tool of one month, for the
/// dashboard's chart. Per-call rows are kept 90 days, so a month in the
/// dashboard is always complete.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct MonthUsage {
    pub per_day: Vec<(String, u32)>,
    pub per_tool: Vec<(String, u32)>,
}

pub async fn month_usage(
    db: &impl SqlExecutor,
    user_id: &str,
    month: UsageMonth,
) -> Result<MonthUsage, StorageError> {
    #[derive(Deserialize)]
    struct Bucket {
        key: String,
        n: u32,
    }
    let start = month.starts_at();
    let end = month.resets_at();
    let per_day: Vec<Bucket> = super::query_all(
        db,
        Statement::new(
            "SELECT strftime('%Y-%m-%d', at, 'unixepoch') AS key, COUNT(*) AS n FROM api_usage
             WHERE user_id = ? AND at >= ? AND at < ? GROUP BY key ORDER BY key",
            vec![user_id.into(), start.into(), end.into()],
        ),
    )
    .await?;
    let per_tool: Vec<Bucket> = super::query_all(
        db,
        Statement::new(
            "SELECT tool AS key, COUNT(*) AS n FROM api_usage
             WHERE user_id = ? AND at >= ? AND at < ? GROUP BY tool ORDER BY n DESC, tool LIMIT 12",
            vec![user_id.into(), start.into(), end.into()],
        ),
    )
    .await?;
    Ok(MonthUsage {
        per_day: per_day.into_iter().map(|b| (b.key, b.n)).collect(),
        per_tool: per_tool.into_iter().map(|b| (b.key, b.n)).collect(),
    })
}

/// Tool calls logged since `since` (`calls`) and how many of them ended in
/// an internal error (`errors`), for the alert check's `batch_query`.
pub fn window_outcomes_statement(since: DateTime<Utc>) -> Statement {
    Statement::new(
        "SELECT COUNT(*) AS calls,
                COALESCE(SUM(CASE WHEN outcome = 'internal_error' THEN 1 ELSE 0 END), 0) AS errors
           FROM api_usage WHERE at >= ?",
        vec![since.into()],
    )
}
