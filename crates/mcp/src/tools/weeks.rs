//! `get_cashflow_by_week`, the helper the cash-flow view calls (app-only:
//! hosts keep it from the model): the forecast of `get_cashflow_forecast`
//! week by week, the expected receipts and payments of each week (overdue
//! ones in the first) and the balance after it, so the last week's balance
//! is that tool's forecast balance.

use std::collections::BTreeMap;

use boekhouding_core::exact::Query;
use boekhouding_core::exact::dates::parse_odata_day;
use boekhouding_core::ports::Clock;
use boekhouding_core::storage::StorageError;
use boekhouding_core::storage::usage::Outcome;
use chrono::{Datelike, Duration, NaiveDate};
use serde_json::{Value, json};

use super::exact::{Args, connect, division_schema, failed};
use super::money::{cents, euros};
use super::reports::{gl_types, liquid_balance};
use super::{Bookkeeping, Platform, ToolResult, read_only, views};

const CAP: usize = 50_000;
pub const NAME: &str = "get_cashflow_by_week";

pub fn definition() -> Value {
    crate::apps::app_only(
        json!({
            "name": NAME,
            "title": "Cash flow forecast by week (for the view)",
            "description": "The cash flow forecast week by week: expected receipts and payments per week (overdue ones in the first week) and the bank balance after each week, up to the horizon.",
            "inputSchema": {"type": "object", "properties": {
                "division": division_schema(),
                "forecast_days": {"type": "integer", "enum": [30, 60, 90], "default": 30}
            }, "additionalProperties": false},
            "outputSchema": {"type": "object", "properties": {
                "division": {"type": "integer"}, "as_of": {"type": "string"}, "horizon": {"type": "string"},
                "bank_balance": {"type": "number"},
                "weeks": {"type": "array", "items": {"type": "object", "properties": {
                    "week_start": {"type": "string"}, "week_end": {"type": "string"},
                    "expected_in": {"type": "number"}, "expected_out": {"type": "number"}, "balance": {"type": "number"}
                }, "required": ["week_start", "week_end", "expected_in", "expected_out", "balance"]}}
            }, "required": ["division", "as_of", "horizon", "bank_balance", "weeks"]},
            "annotations": read_only(),
        }),
        views::CASHFLOW,
    )
}

/// Open amounts by the Monday of the week they fall due (overdue and
/// undated ones in this week), up to `until`.
async fn due_by_week<P: Platform>(
    ctx: &Bookkeeping<'_, P>,
    conn: &mut super::exact::Connected<'_, P>,
    path: &'static str,
    this_week: NaiveDate,
    until: NaiveDate,
) -> Result<BTreeMap<NaiveDate, i64>, ToolResult> {
    let listed = conn
        .list(ctx, &Query::new(path, &["DueDate", "Amount"]), CAP)
        .await?;
    let mut out = BTreeMap::new();
    for r in &listed.rows {
        let d = r
            .get("DueDate")
            .and_then(Value::as_str)
            .and_then(|d| parse_odata_day(d).ok());
        // The forecast's rule: everything due by the horizon, overdue and
        // undated included.
        if d.is_some_and(|d| d > until) {
            continue;
        }
        let week = d.map_or(this_week, |d| monday(d).max(this_week));
        *out.entry(week).or_insert(0) += cents(r.get("Amount"));
    }
    Ok(out)
}

fn monday(d: NaiveDate) -> NaiveDate {
    d - Duration::days(i64::from(d.weekday().num_days_from_monday()))
}

pub(super) async fn get_cashflow_by_week<P: Platform>(
    ctx: &Bookkeeping<'_, P>,
    args: &Value,
) -> Result<ToolResult, StorageError> {
    let parsed = (|| {
        let a = Args::parse(args, &["division", "forecast_days"])?;
        let days = a.int("forecast_days", 1, 365)?.unwrap_or(30);
        if ![30, 60, 90].contains(&days) {
            return Err(failed(
                "`forecast_days` must be 30, 60 or 90.",
                Outcome::InvalidArguments,
            ));
        }
        Ok::<_, ToolResult>((a.division()?, days))
    })();
    let (division, days) = tool_try!(parsed);
    let today = ctx.platform.clock().now().date_naive();
    let horizon = today + Duration::days(days);
    let mut conn = tool_try!(connect(ctx, division).await);
    let types = tool_try!(gl_types(ctx, &mut conn).await);
    let bank = tool_try!(liquid_balance(ctx, &mut conn, &types, today).await);
    let this_week = monday(today);
    let inflow = tool_try!(
        due_by_week(
            ctx,
            &mut conn,
            "read/financial/ReceivablesList",
            this_week,
            horizon
        )
        .await
    );
    let outflow = tool_try!(
        due_by_week(
            ctx,
            &mut conn,
            "read/financial/PayablesList",
            this_week,
            horizon
        )
        .await
    );
    let mut weeks = Vec::new();
    let mut balance = bank;
    let mut week = this_week;
    while week <= horizon {
        let (i, o) = (
            inflow.get(&week).copied().unwrap_or(0),
            outflow.get(&week).copied().unwrap_or(0),
        );
        balance += i - o;
        let end = (week + Duration::days(6)).min(horizon);
        weeks.push(
            json!({"week_start": week.max(today).to_string(), "week_end": end.to_string(),
            "expected_in": euros(i), "expected_out": euros(o), "balance": euros(balance)}),
        );
        week += Duration::days(7);
    }
    let text = format!(
        "Cash flow by week from {today} to {horizon}: {} weeks, ending at € {:.2}",
        weeks.len(),
        balance as f64 / 100.0
    );
    Ok(ToolResult::Ok {
        structured: json!({"division": conn.admin.division_code, "as_of": today.to_string(), "horizon": horizon.to_string(),
            "bank_balance": euros(bank), "weeks": weeks}),
        text,
        division: Some(conn.admin.division_code),
        exact_calls: conn.client.calls_made(),
    })
}
