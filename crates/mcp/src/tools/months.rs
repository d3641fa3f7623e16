//! `get_profit_loss_by_month`, the helper the profit and loss view calls
//! (app-only: hosts keep it from the model): revenue, cost of sales, other
//! costs and result per month of a year and of the year before, classified
//! exactly as `get_profit_loss` classifies them, from one reporting-balance
//! request.

use std::collections::BTreeMap;

use boekhouding_core::exact::{Cmp, Filter, Query};
use boekhouding_core::ports::Clock;
use boekhouding_core::storage::StorageError;
use chrono::Datelike;
use serde_json::{Value, json};

use super::exact::{Args, connect, division_schema};
use super::money::{cents, euros};
use super::reports::gl_types;
use super::{Bookkeeping, Platform, ToolResult, read_only, views};

const CAP: usize = 50_000;
pub const NAME: &str = "get_profit_loss_by_month";

pub fn definition() -> Value {
    let month = json!({"type": "object", "properties": {
        "period": {"type": "integer"}, "revenue": {"type": "number"}, "cost_of_sales": {"type": "number"},
        "other_costs": {"type": "number"}, "result": {"type": "number"},
        "previous_year_revenue": {"type": "number"}, "previous_year_result": {"type": "number"}
    }, "required": ["period", "revenue", "cost_of_sales", "other_costs", "result", "previous_year_revenue", "previous_year_result"]});
    crate::apps::app_only(
        json!({
            "name": NAME,
            "title": "Profit and loss by month (for the view)",
            "description": "Revenue, cost of sales, other costs and result per month of a financial year, with the previous year's revenue and result per month.",
            "inputSchema": {"type": "object", "properties": {
                "division": division_schema(),
                "year": {"type": "integer", "minimum": 2000, "maximum": 2100}
            }, "additionalProperties": false},
            "outputSchema": {"type": "object", "properties": {
                "division": {"type": "integer"}, "year": {"type": "integer"}, "previous_year": {"type": "integer"},
                "months": {"type": "array", "items": month}, "truncated": {"type": "boolean"}
            }, "required": ["division", "year", "previous_year", "months", "truncated"]},
            "annotations": read_only(),
        }),
        views::PROFIT_LOSS,
    )
}

/// Revenue, cost of sales and other costs of one month, in cents.
#[derive(Default, Clone, Copy)]
struct Month {
    revenue: i64,
    cost_of_sales: i64,
    other: i64,
}

impl Month {
    fn result(self) -> i64 {
        self.revenue - self.cost_of_sales - self.other
    }
}

pub(super) async fn get_profit_loss_by_month<P: Platform>(
    ctx: &Bookkeeping<'_, P>,
    args: &Value,
) -> Result<ToolResult, StorageError> {
    let parsed = Args::parse(args, &["division", "year"])
        .and_then(|a| Ok((a.division()?, a.int("year", 2000, 2100)?)));
    let (division, year) = tool_try!(parsed);
    let year = year.unwrap_or_else(|| i64::from(ctx.platform.clock().now().year()));
    let mut conn = tool_try!(connect(ctx, division).await);
    let types = tool_try!(gl_types(ctx, &mut conn).await);
    let q = Query::new(
        "financial/ReportingBalance",
        &[
            "GLAccount",
            "BalanceType",
            "ReportingYear",
            "ReportingPeriod",
            "Amount",
        ],
    )
    .filter(Some(
        Filter::eq("BalanceType", "W")
            .and(Filter::cmp("ReportingYear", Cmp::Ge, year - 1))
            .and(Filter::cmp("ReportingYear", Cmp::Le, year))
            .and(Filter::cmp("ReportingPeriod", Cmp::Ge, 1))
            .and(Filter::cmp("ReportingPeriod", Cmp::Le, 12)),
    ));
    let listed = tool_try!(conn.list(ctx, &q, CAP).await);
    let mut by: BTreeMap<(i64, i64), Month> = BTreeMap::new();
    for r in &listed.rows {
        let (Some(y), Some(p)) = (
            r.get("ReportingYear").and_then(Value::as_i64),
            r.get("ReportingPeriod").and_then(Value::as_i64),
        ) else {
            continue;
        };
        let amount = cents(r.get("Amount"));
        let account = r.get("GLAccount").and_then(Value::as_str).unwrap_or("");
        let m = by.entry((y, p)).or_default();
        // The classification of `get_profit_loss` (`pl_totals`).
        match types.get(account).copied().unwrap_or(0) {
            110 => m.revenue -= amount,
            111 => m.cost_of_sales += amount,
            _ => m.other += amount,
        }
    }
    let months: Vec<Value> = (1..=12)
        .map(|p| {
            let m = by.get(&(year, p)).copied().unwrap_or_default();
            let prev = by.get(&(year - 1, p)).copied().unwrap_or_default();
            json!({"period": p, "revenue": euros(m.revenue), "cost_of_sales": euros(m.cost_of_sales),
                "other_costs": euros(m.other), "result": euros(m.result()),
                "previous_year_revenue": euros(prev.revenue), "previous_year_result": euros(prev.result())})
        })
        .collect();
    let text = format!("Profit and loss of {year} by month, with {}", year - 1);
    Ok(ToolResult::Ok {
        structured: json!({"division": conn.admin.division_code, "year": year, "previous_year": year - 1,
            "months": months, "truncated": listed.truncated}),
        text,
        division: Some(conn.admin.division_code),
        exact_calls: conn.client.calls_made(),
    })
}
