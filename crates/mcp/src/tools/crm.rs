//! Sales pipeline and recurring revenue: the sales funnel by stage
//! (verkooptrechter) and monthly recurring revenue from subscriptions
//! (MRR/ARR, abonnementsomzet).

use std::collections::BTreeMap;

use boekhouding_core::exact::dates::parse_odata_day;
use boekhouding_core::exact::{Filter, Query};
use boekhouding_core::ports::Clock;
use boekhouding_core::storage::StorageError;
use boekhouding_core::storage::administrations::DivisionRef;
use serde_json::{Value, json};

use super::exact::{Args, connect, division_schema};
use super::money::round_cents;
use super::{Bookkeeping, Platform, ToolResult, read_only};

/// Rows read per entity at most; beyond this the answer says `truncated`.
const CAP: usize = 5_000;

pub fn funnel_definition() -> Value {
    json!({
        "name": "get_sales_funnel",
        "title": "Sales funnel (verkooptrechter)",
        "description": "The sales pipeline from Exact Online's opportunities (verkoopkansen) per stage: number, amount in euros and probability-weighted amount; with closed ones included also the won and lost counts and the win rate (won / (won + lost)).",
        "inputSchema": {"type": "object", "properties": {
            "division": division_schema(),
            "include_closed": {"type": "boolean", "default": false, "description": "Include won and lost opportunities."}
        }, "additionalProperties": false},
        "outputSchema": {"type": "object", "properties": {
            "division": {"type": "integer"},
            "stages": {"type": "array", "items": {"type": "object", "properties": {
                "stage": {"type": "string"}, "count": {"type": "integer"},
                "amount": {"type": "number"}, "weighted_amount": {"type": "number"}
            }, "required": ["stage", "count", "amount", "weighted_amount"]}},
            "count": {"type": "integer"}, "amount": {"type": "number"}, "weighted_amount": {"type": "number"},
            "won": {"type": "integer"}, "lost": {"type": "integer"}, "win_rate": {"type": ["number", "null"]},
            "truncated": {"type": "boolean"}
        }, "required": ["division", "stages", "count", "amount", "weighted_amount", "truncated"]},
        "annotations": read_only(),
    })
}

pub(super) async fn get_sales_funnel<P: Platform>(
    ctx: &Bookkeeping<'_, P>,
    args: &Value,
) -> Result<ToolResult, StorageError> {
    let parsed = (|| {
        let a = Args::parse(args, &["division", "include_closed"])?;
        Ok::<_, ToolResult>((a.division()?, a.boolean("include_closed")?.unwrap_or(false)))
    })();
    let (division, include_closed) = tool_try!(parsed);
    let mut conn = tool_try!(connect(ctx, division).await);
    let q = Query::new(
        "crm/Opportunities",
        &[
            "AmountDC",
            "Probability",
            "OpportunityStageDescription",
            "OpportunityStatus",
        ],
    )
    .filter((!include_closed).then(|| Filter::eq("OpportunityStatus", 1i64)))
    .orderby("OpportunityStageDescription");
    let listed = tool_try!(conn.list(ctx, &q, CAP).await);
    let mut stages: BTreeMap<String, (u64, f64, f64)> = BTreeMap::new();
    let (mut won, mut lost) = (0u64, 0u64);
    for r in &listed.rows {
        let amount = r.get("AmountDC").and_then(Value::as_f64).unwrap_or(0.0);
        let p = r.get("Probability").and_then(Value::as_f64).unwrap_or(0.0);
        let stage = r
            .get("OpportunityStageDescription")
            .and_then(Value::as_str)
            .unwrap_or("(none)")
            .to_owned();
        match r.get("OpportunityStatus").and_then(Value::as_i64) {
            Some(2) => won += 1,
            Some(3) => lost += 1,
            _ => {}
        }
        let e = stages.entry(stage).or_default();
        e.0 += 1;
        e.1 += amount;
        e.2 += amount * p;
    }
    let mut rows: Vec<Value> = stages
        .into_iter()
        .map(|(stage, (n, amount, weighted))| {
            json!({"stage": stage, "count": n, "amount": round_cents(amount), "weighted_amount": round_cents(weighted)})
        })
        .collect();
    rows.sort_by(|a, b| {
        b["weighted_amount"]
            .as_f64()
            .partial_cmp(&a["weighted_amount"].as_f64())
            .unwrap_or(std::cmp::Ordering::Equal)
    });
    let amount = round_cents(rows.iter().filter_map(|r| r["amount"].as_f64()).sum());
    let weighted = round_cents(
        rows.iter()
            .filter_map(|r| r["weighted_amount"].as_f64())
            .sum(),
    );
    let win_rate = (won + lost > 0).then(|| won as f64 / (won + lost) as f64);
    let mut text = format!(
        "{} opportunities, € {amount:.2} in the pipeline, € {weighted:.2} weighted by probability{}:",
        listed.rows.len(),
        if listed.truncated { " (truncated)" } else { "" }
    );
    for r in &rows {
        text.push_str(&format!(
            "\n{}: {} × € {} (weighted € {})",
            r["stage"].as_str().unwrap_or(""),
            r["count"],
            r["amount"],
            r["weighted_amount"]
        ));
    }
    if let Some(w) = win_rate {
        text.push_str(&format!(
            "\nWin rate {:.0} % ({won} won, {lost} lost)",
            w * 100.0
        ));
    }
    Ok(ToolResult::Ok {
        structured: json!({
            "division": conn.admin.division_code, "stages": rows, "count": listed.rows.len(),
            "amount": amount, "weighted_amount": weighted, "won": won, "lost": lost,
            "win_rate": win_rate, "truncated": listed.truncated,
        }),
        text,
        division: Some(conn.admin.division_code),
        exact_calls: conn.client.calls_made(),
    })
}

/// The `division` and `as_of` arguments (`as_of` defaults to today).
fn division_and_as_of<P: Platform>(
    ctx: &Bookkeeping<'_, P>,
    args: &Value,
) -> Result<(Option<DivisionRef>, chrono::NaiveDate), ToolResult> {
    let a = Args::parse(args, &["division", "as_of"])?;
    let division = a.division()?;
    let as_of = a
        .date("as_of")?
        .unwrap_or_else(|| ctx.platform.clock().now().date_naive());
    Ok((division, as_of))
}

pub fn recurring_definition() -> Value {
    json!({
        "name": "get_recurring_revenue",
        "title": "Recurring revenue (MRR/ARR)",
        "description": "Monthly recurring revenue (MRR, maandelijks terugkerende omzet) and its yearly value (ARR) from the subscriptions (abonnementen) running on a date, with the number of active contracts and the largest customers.",
        "inputSchema": {"type": "object", "properties": {
            "division": division_schema(),
            "as_of": {"type": "string", "format": "date", "description": "Date to measure on (YYYY-MM-DD); today when left out."}
        }, "additionalProperties": false},
        "outputSchema": {"type": "object", "properties": {
            "division": {"type": "integer"}, "as_of": {"type": "string", "format": "date"},
            "mrr": {"type": "number"}, "arr": {"type": "number"}, "active_contracts": {"type": "integer"},
            "top_customers": {"type": "array", "items": {"type": "object", "properties": {
                "customer": {"type": "string"}, "mrr": {"type": "number"}
            }, "required": ["customer", "mrr"]}},
            "truncated": {"type": "boolean"}
        }, "required": ["division", "as_of", "mrr", "arr", "active_contracts", "top_customers", "truncated"]},
        "annotations": read_only(),
    })
}

pub(super) async fn get_recurring_revenue<P: Platform>(
    ctx: &Bookkeeping<'_, P>,
    args: &Value,
) -> Result<ToolResult, StorageError> {
    let (division, as_of) = tool_try!(division_and_as_of(ctx, args));
    let mut conn = tool_try!(connect(ctx, division).await);
    let subs = tool_try!(
        conn.list(
            ctx,
            &Query::new(
                "subscription/Subscriptions",
                &["EntryID", "OrderedByName", "StartDate", "EndDate"],
            )
            .orderby("StartDate"),
            CAP,
        )
        .await
    );
    let lines = tool_try!(
        conn.list(
            ctx,
            &Query::new("subscription/SubscriptionLines", &["EntryID", "AmountDC"]),
            CAP,
        )
        .await
    );
    let day = |v: Option<&Value>| {
        v.and_then(Value::as_str)
            .and_then(|s| parse_odata_day(s).ok())
    };
    let mut per_customer: BTreeMap<String, f64> = BTreeMap::new();
    let mut active = 0u64;
    for s in &subs.rows {
        let started = day(s.get("StartDate")).is_some_and(|d| d <= as_of);
        let running = day(s.get("EndDate")).is_none_or(|d| d >= as_of);
        if !(started && running) {
            continue;
        }
        active += 1;
        let id = s.get("EntryID").and_then(Value::as_str).unwrap_or("");
        let monthly: f64 = lines
            .rows
            .iter()
            .filter(|l| l.get("EntryID").and_then(Value::as_str) == Some(id))
            .filter_map(|l| l.get("AmountDC").and_then(Value::as_f64))
            .sum();
        let customer = s
            .get("OrderedByName")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_owned();
        *per_customer.entry(customer).or_default() += monthly;
    }
    let mrr = round_cents(per_customer.values().sum());
    let mut top: Vec<(String, f64)> = per_customer.into_iter().collect();
    top.sort_by(|a, b| b.1.partial_cmp(&a.1).unwrap_or(std::cmp::Ordering::Equal));
    top.truncate(10);
    let top_json: Vec<Value> = top
        .iter()
        .map(|(c, m)| json!({"customer": c, "mrr": round_cents(*m)}))
        .collect();
    let truncated = subs.truncated || lines.truncated;
    let text = format!(
        "On {as_of}: MRR € {mrr:.2}, ARR € {:.2}, {active} active contracts{}.{}",
        mrr * 12.0,
        if truncated { " (truncated)" } else { "" },
        top.iter()
            .map(|(c, m)| format!("\n{c}: € {:.2}/month", round_cents(*m)))
            .collect::<String>()
    );
    Ok(ToolResult::Ok {
        structured: json!({
            "division": conn.admin.division_code, "as_of": as_of.to_string(), "mrr": mrr,
            "arr": round_cents(mrr * 12.0), "active_contracts": active, "top_customers": top_json,
            "truncated": truncated,
        }),
        text,
        division: Some(conn.admin.division_code),
        exact_calls: conn.client.calls_made(),
    })
}

pub fn wip_definition() -> Value {
    json!({
        "name": "get_wip_overview",
        "title": "Work in progress (onderhanden werk)",
        "description": "Work in progress per project (onderhanden werk): hours registered and their value in euros, the budget and how much of it is used, the invoice terms scheduled up to a date, and the difference (hours value − scheduled terms: positive means work not yet billed, negative means billed ahead).",
        "inputSchema": {"type": "object", "properties": {
            "division": division_schema(),
            "as_of": {"type": "string", "format": "date", "description": "Date to measure on (YYYY-MM-DD); today when left out."}
        }, "additionalProperties": false},
        "outputSchema": {"type": "object", "properties": {
            "division": {"type": "integer"}, "as_of": {"type": "string", "format": "date"},
            "projects": {"type": "array", "items": {"type": "object", "properties": {
                "code": {"type": "string"}, "description": {"type": "string"}, "customer": {"type": "string"},
                "hours": {"type": "number"}, "hours_value": {"type": "number"}, "budget": {"type": "number"},
                "budget_used_pct": {"type": ["number", "null"]}, "terms_scheduled": {"type": "number"}, "wip": {"type": "number"}
            }, "required": ["code", "hours", "hours_value", "terms_scheduled", "wip"]}},
            "hours_value": {"type": "number"}, "terms_scheduled": {"type": "number"}, "wip": {"type": "number"},
            "truncated": {"type": "boolean"}
        }, "required": ["division", "as_of", "projects", "hours_value", "terms_scheduled", "wip", "truncated"]},
        "annotations": read_only(),
    })
}

pub(super) async fn get_wip_overview<P: Platform>(
    ctx: &Bookkeeping<'_, P>,
    args: &Value,
) -> Result<ToolResult, StorageError> {
    let (division, as_of) = tool_try!(division_and_as_of(ctx, args));
    let mut conn = tool_try!(connect(ctx, division).await);
    let projects = tool_try!(
        conn.list(
            ctx,
            &Query::new(
                "project/Projects",
                &["ID", "Code", "Description", "AccountName", "BudgetedAmount"],
            )
            .orderby("Code"),
            CAP,
        )
        .await
    );
    let hours = tool_try!(
        conn.list(
            ctx,
            &Query::new(
                "project/TimeTransactions",
                &["Project", "Quantity", "AmountFC"]
            )
            .filter(Some(Filter::le("Date", as_of))),
            CAP,
        )
        .await
    );
    let terms = tool_try!(
        conn.list(
            ctx,
            &Query::new("project/InvoiceTerms", &["Project", "Amount"])
                .filter(Some(Filter::le("ExecutionFromDate", as_of))),
            CAP,
        )
        .await
    );
    let key = |r: &serde_json::Map<String, Value>, k: &str| {
        r.get(k)
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_ascii_lowercase()
    };
    let num = |r: &serde_json::Map<String, Value>, k: &str| {
        r.get(k).and_then(Value::as_f64).unwrap_or(0.0)
    };
    let mut totals = (0.0f64, 0.0f64);
    let rows: Vec<Value> = projects
        .rows
        .iter()
        .map(|p| {
            let id = key(p, "ID");
            let (h, value) = hours
                .rows
                .iter()
                .filter(|t| key(t, "Project") == id)
                .fold((0.0, 0.0), |(h, v), t| (h + num(t, "Quantity"), v + num(t, "AmountFC")));
            let scheduled: f64 = terms
                .rows
                .iter()
                .filter(|t| key(t, "Project") == id)
                .map(|t| num(t, "Amount"))
                .sum();
            let budget = num(p, "BudgetedAmount");
            totals.0 += value;
            totals.1 += scheduled;
            json!({
                "code": p.get("Code").and_then(Value::as_str).unwrap_or(""),
                "description": p.get("Description").and_then(Value::as_str).unwrap_or(""),
                "customer": p.get("AccountName").and_then(Value::as_str).unwrap_or(""),
                "hours": (h * 100.0).round() / 100.0, "hours_value": round_cents(value), "budget": round_cents(budget),
                "budget_used_pct": (budget > 0.0).then(|| ((value / budget) * 1000.0).round() / 10.0),
                "terms_scheduled": round_cents(scheduled), "wip": round_cents(value - scheduled),
            })
        })
        .collect();
    let truncated = projects.truncated || hours.truncated || terms.truncated;
    let text = format!(
        "Work in progress on {as_of}: hours value € {:.2}, invoice terms scheduled € {:.2}, not yet billed € {:.2} over {} projects{}.",
        totals.0,
        totals.1,
        totals.0 - totals.1,
        rows.len(),
        if truncated { " (truncated)" } else { "" }
    );
    Ok(ToolResult::Ok {
        structured: json!({
            "division": conn.admin.division_code, "as_of": as_of.to_string(), "projects": rows,
            "hours_value": round_cents(totals.0), "terms_scheduled": round_cents(totals.1),
            "wip": round_cents(totals.0 - totals.1), "truncated": truncated,
        }),
        text,
        division: Some(conn.admin.division_code),
        exact_calls: conn.client.calls_made(),
    })
}

pub fn cost_center_definition() -> Value {
    json!({
        "name": "get_cost_center_report",
        "title": "Cost centre report (kostenplaatsenrapport)",
        "description": "Revenue, costs and result per cost centre (kostenplaats) over a range of periods of one year, from the booked transaction lines; lines without a cost centre are reported as `(none)`. Keep the range short for busy administrations: the lines are read one by one.",
        "inputSchema": {"type": "object", "properties": {
            "division": division_schema(),
            "year": {"type": "integer", "minimum": 2000, "maximum": 2100},
            "period_from": {"type": "integer", "minimum": 1, "maximum": 12},
            "period_to": {"type": "integer", "minimum": 1, "maximum": 12}
        }, "required": ["year", "period_from"], "additionalProperties": false},
        "outputSchema": {"type": "object", "properties": {
            "division": {"type": "integer"}, "year": {"type": "integer"},
            "period_from": {"type": "integer"}, "period_to": {"type": "integer"},
            "cost_centers": {"type": "array", "items": {"type": "object", "properties": {
                "cost_center": {"type": "string"}, "revenue": {"type": "number"}, "costs": {"type": "number"}, "result": {"type": "number"}
            }, "required": ["cost_center", "revenue", "costs", "result"]}},
            "truncated": {"type": "boolean"}
        }, "required": ["division", "year", "period_from", "period_to", "cost_centers", "truncated"]},
        "annotations": read_only(),
    })
}

pub(super) async fn get_cost_center_report<P: Platform>(
    ctx: &Bookkeeping<'_, P>,
    args: &Value,
) -> Result<ToolResult, StorageError> {
    let parsed = (|| {
        let a = Args::parse(args, &["division", "year", "period_from", "period_to"])?;
        let year = a.int("year", 2000, 2100)?.ok_or_else(|| {
            super::exact::failed(
                "`year` is required.",
                boekhouding_core::storage::usage::Outcome::InvalidArguments,
            )
        })?;
        let from = a.int("period_from", 1, 12)?.ok_or_else(|| {
            super::exact::failed(
                "`period_from` is required.",
                boekhouding_core::storage::usage::Outcome::InvalidArguments,
            )
        })?;
        let to = a.int("period_to", 1, 12)?.unwrap_or(from);
        if from > to {
            return Err(super::exact::failed(
                "`period_from` must not be after `period_to`.",
                boekhouding_core::storage::usage::Outcome::InvalidArguments,
            ));
        }
        Ok::<_, ToolResult>((a.division()?, year, from, to))
    })();
    let (division, year, from, to) = tool_try!(parsed);
    let mut conn = tool_try!(connect(ctx, division).await);
    let chart = tool_try!(
        conn.cached_list(
            ctx,
            "gl-balance-types",
            &Query::new("financial/GLAccounts", &["ID", "Type", "BalanceType"]),
            10_000,
            3_600,
        )
        .await
    );
    // GL id → revenue? (profit-and-loss accounts only).
    let pl: std::collections::HashMap<String, bool> = chart
        .rows
        .iter()
        .filter(|r| r.get("BalanceType").and_then(Value::as_str) == Some("W"))
        .map(|r| {
            (
                r.get("ID")
                    .and_then(Value::as_str)
                    .unwrap_or("")
                    .to_ascii_lowercase(),
                r.get("Type").and_then(Value::as_i64) == Some(110),
            )
        })
        .collect();
    let lines = tool_try!(
        conn.list(
            ctx,
            &Query::new(
                "financialtransaction/TransactionLines",
                &["GLAccount", "CostCenter", "AmountDC"],
            )
            .filter(Some(
                Filter::eq("FinancialYear", year)
                    .and(Filter::cmp(
                        "FinancialPeriod",
                        boekhouding_core::exact::Cmp::Ge,
                        from
                    ))
                    .and(Filter::cmp(
                        "FinancialPeriod",
                        boekhouding_core::exact::Cmp::Le,
                        to
                    )),
            )),
            CAP,
        )
        .await
    );
    // cost centre → (revenue, costs) in cents.
    let mut per: BTreeMap<String, (i64, i64)> = BTreeMap::new();
    for l in &lines.rows {
        let gl = l.get("GLAccount").and_then(Value::as_str).unwrap_or("");
        let amount =
            (l.get("AmountDC").and_then(Value::as_f64).unwrap_or(0.0) * 100.0).round() as i64;
        let centre = l
            .get("CostCenter")
            .and_then(Value::as_str)
            .map(str::trim)
            .filter(|c| !c.is_empty())
            .unwrap_or("(none)")
            .to_owned();
        match pl.get(&gl.to_ascii_lowercase()) {
            Some(true) => per.entry(centre).or_default().0 -= amount,
            Some(false) => per.entry(centre).or_default().1 += amount,
            None => {}
        }
    }
    let rows: Vec<Value> = per
        .iter()
        .map(|(c, (rev, cost))| {
            json!({"cost_center": c, "revenue": *rev as f64 / 100.0, "costs": *cost as f64 / 100.0,
                "result": (rev - cost) as f64 / 100.0})
        })
        .collect();
    let text = format!(
        "Cost centres {year} periods {from}-{to}{}:{}",
        if lines.truncated { " (truncated)" } else { "" },
        rows.iter()
            .map(|r| format!(
                "\n{}: revenue € {}, costs € {}, result € {}",
                r["cost_center"].as_str().unwrap_or(""),
                r["revenue"],
                r["costs"],
                r["result"]
            ))
            .collect::<String>()
    );
    Ok(ToolResult::Ok {
        structured: json!({
            "division": conn.admin.division_code, "year": year, "period_from": from, "period_to": to,
            "cost_centers": rows, "truncated": lines.truncated,
        }),
        text,
        division: Some(conn.admin.division_code),
        exact_calls: conn.client.calls_made(),
    })
}
