//! Report tools computed from Exact's reporting balance: trial balance
//! (proefbalans), profit and loss (winst- en verliesrekening), a balance
//! sheet at a date with prior years carried forward (balans), revenue per
//! period (omzet), and aging of open items (ouderdomsanalyse).

use std::collections::BTreeMap;

use boekhouding_core::exact::dates::parse_odata_day;
use boekhouding_core::exact::{Cmp, Filter, Query};
use boekhouding_core::ports::Clock;
use boekhouding_core::storage::StorageError;
use boekhouding_core::storage::administrations::DivisionRef;
use chrono::{Datelike, NaiveDate};
use serde_json::{Value, json};

use super::carry::{OPENING_BALANCE, position_at};
use super::exact::{Args, Connected, connect, division_schema};
use super::money::{cents, euros};
use super::{Bookkeeping, Platform, ToolResult, read_only};

const CAP: usize = 50_000;

/// The equity line for earlier years' results no closing has moved into
/// equity yet.
const PRIOR_RESULT: &str = "Resultaat voorgaande boekjaren";

fn s<'a>(r: &'a serde_json::Map<String, Value>, k: &str) -> &'a str {
    r.get(k).and_then(Value::as_str).unwrap_or("")
}

fn year_schema() -> Value {
    json!({"type": "integer", "minimum": 2000, "maximum": 2100, "description": "Financial year (boekjaar); the current year when omitted."})
}

/// One account's figures, keyed by GL code.
#[derive(Default, Clone)]
pub(super) struct Acc {
    pub description: String,
    pub balance_type: String,
    pub gl_type: i64,
    pub debit: i64,
    pub credit: i64,
    pub amount: i64,
}

/// GL types by account id, for revenue/cost classification.
pub(super) async fn gl_types<P: Platform>(
    ctx: &Bookkeeping<'_, P>,
    conn: &mut Connected<'_, P>,
) -> Result<BTreeMap<String, i64>, ToolResult> {
    // The chart of accounts changes rarely: an hour in the cache.
    let q = Query::new("financial/GLAccounts", &["ID", "Type"]);
    let listed = conn.cached_list(ctx, "gl-types", &q, 10_000, 3_600).await?;
    Ok(listed
        .rows
        .iter()
        .map(|r| {
            (
                s(r, "ID").to_owned(),
                r.get("Type").and_then(Value::as_i64).unwrap_or(0),
            )
        })
        .collect())
}

/// The arguments `division`, `year` and `period_from`..`period_to`
/// (default 1..12, checked in order) of the period reports.
fn year_and_periods(
    args: &Value,
) -> Result<(Option<DivisionRef>, Option<i64>, i64, i64), ToolResult> {
    let a = Args::parse(args, &["division", "year", "period_from", "period_to"])?;
    let from = a.int("period_from", 1, 12)?.unwrap_or(1);
    let to = a.int("period_to", 1, 12)?.unwrap_or(12);
    if from > to {
        return Err(super::exact::failed(
            "`period_from` must not be after `period_to`.",
            boekhouding_core::storage::usage::Outcome::InvalidArguments,
        ));
    }
    Ok((a.division()?, a.int("year", 2000, 2100)?, from, to))
}

/// The profit-and-loss rows of a year's periods `from` to `to`.
pub(super) fn pl_filter(year: i64, from: i64, to: i64) -> Filter {
    Filter::eq("ReportingYear", year)
        .and(Filter::eq("BalanceType", "W"))
        .and(Filter::cmp("ReportingPeriod", Cmp::Ge, from))
        .and(Filter::cmp("ReportingPeriod", Cmp::Le, to))
}

/// Reporting balance rows matching `filter`, summed per GL account code.
pub(super) async fn balances<P: Platform>(
    ctx: &Bookkeeping<'_, P>,
    conn: &mut Connected<'_, P>,
    filter: Filter,
    types: &BTreeMap<String, i64>,
) -> Result<(BTreeMap<String, Acc>, bool), ToolResult> {
    let q = Query::new(
        "financial/ReportingBalance",
        &[
            "GLAccount",
            "GLAccountCode",
            "GLAccountDescription",
            "BalanceType",
            "ReportingYear",
            "ReportingPeriod",
            "Amount",
            "AmountDebit",
            "AmountCredit",
        ],
    )
    .filter(Some(filter));
    let listed = conn.list(ctx, &q, CAP).await?;
    let mut out: BTreeMap<String, Acc> = BTreeMap::new();
    for r in &listed.rows {
        let e = out
            .entry(s(r, "GLAccountCode").trim().to_owned())
            .or_default();
        e.description = s(r, "GLAccountDescription").to_owned();
        e.balance_type = s(r, "BalanceType").to_owned();
        e.gl_type = types.get(s(r, "GLAccount")).copied().unwrap_or(0);
        e.amount += cents(r.get("Amount"));
        e.debit += cents(r.get("AmountDebit"));
        e.credit += cents(r.get("AmountCredit"));
    }
    Ok((out, listed.truncated))
}

fn current_year<P: Platform>(ctx: &Bookkeeping<'_, P>) -> i64 {
    i64::from(ctx.platform.clock().now().year())
}

pub fn trial_balance_definition() -> Value {
    json!({
        "name": "get_trial_balance",
        "title": "Trial balance (proefbalans)",
        "description": "The trial balance (proefbalans, saldibalans) of an Exact Online administration for a financial year, optionally up to a period: per general ledger account (grootboekrekening) the opening balance (beginbalans: balance-sheet accounts carried forward from earlier years, whether or not those years are closed; zero for profit and loss), the year's debit and credit and the balance at the period's end. The result of earlier years not yet closed into equity is its own line. Debit and credit totals are equal and the balances add up to zero.",
        "inputSchema": {"type": "object", "properties": {
            "division": division_schema(), "year": year_schema(),
            "period": {"type": "integer", "minimum": 1, "maximum": 12, "description": "Up to and including this period (month); the whole year when omitted."}
        }, "additionalProperties": false},
        "outputSchema": {"type": "object", "properties": {
            "division": {"type": "integer"}, "year": {"type": "integer"}, "up_to_period": {"type": "integer"},
            "accounts": {"type": "array", "items": {"type": "object", "properties": {
                "code": {"type": "string"}, "description": {"type": "string"}, "balance_type": {"type": "string"},
                "opening": {"type": "number"}, "debit": {"type": "number"}, "credit": {"type": "number"}, "balance": {"type": "number"}
            }, "required": ["code", "opening", "debit", "credit", "balance"]}},
            "total_opening": {"type": "number"}, "total_debit": {"type": "number"}, "total_credit": {"type": "number"}, "total_balance": {"type": "number"}, "truncated": {"type": "boolean"}
        }, "required": ["division", "year", "accounts", "total_opening", "total_debit", "total_credit", "total_balance", "truncated"]},
        "annotations": read_only(),
    })
}

pub(super) async fn get_trial_balance<P: Platform>(
    ctx: &Bookkeeping<'_, P>,
    args: &Value,
) -> Result<ToolResult, StorageError> {
    let parsed = (|| {
        let a = Args::parse(args, &["division", "year", "period"])?;
        Ok::<_, ToolResult>((
            a.division()?,
            a.int("year", 2000, 2100)?,
            a.int("period", 1, 12)?,
        ))
    })();
    let (division, year, period) = tool_try!(parsed);
    let year = year.unwrap_or_else(|| current_year(ctx));
    let up_to = period.unwrap_or(12);
    let mut conn = tool_try!(connect(ctx, division).await);
    let position = tool_try!(position_at(ctx, &mut conn, year, up_to, &BTreeMap::new()).await);
    let mut accounts: Vec<Value> = position
        .accounts
        .iter()
        .map(|(code, a)| json!({"code": code, "description": a.description, "balance_type": if a.is_balance_sheet() { "balance_sheet" } else { "profit_loss" }, "opening": euros(a.opening), "debit": euros(a.debit), "credit": euros(a.credit), "balance": euros(a.balance())}))
        .collect();
    let (mut to, td, tc, mut tb) = position
        .accounts
        .values()
        .fold((0, 0, 0, 0), |(o, d, c, b), a| {
            (o + a.opening, d + a.debit, c + a.credit, b + a.balance())
        });
    // Earlier years' results that no closing has moved into equity yet
    // balance the carried-forward balance-sheet accounts.
    if position.prior_pl != 0 {
        to += position.prior_pl;
        tb += position.prior_pl;
        accounts.push(json!({"code": "", "description": PRIOR_RESULT, "balance_type": "balance_sheet", "opening": euros(position.prior_pl), "debit": euros(0), "credit": euros(0), "balance": euros(position.prior_pl)}));
    }
    let text = format!(
        "Trial balance {year} up to period {up_to}: {} accounts, opening € {:.2}, debit € {:.2}, credit € {:.2}, difference € {:.2}",
        accounts.len(),
        to as f64 / 100.0,
        td as f64 / 100.0,
        tc as f64 / 100.0,
        tb as f64 / 100.0
    );
    Ok(ToolResult::Ok {
        structured: json!({"division": conn.admin.division_code, "year": year, "up_to_period": up_to, "accounts": accounts, "total_opening": euros(to), "total_debit": euros(td), "total_credit": euros(tc), "total_balance": euros(tb), "truncated": position.truncated}),
        text,
        division: Some(conn.admin.division_code),
        exact_calls: conn.client.calls_made(),
    })
}

pub fn profit_loss_definition() -> Value {
    json!({
        "name": "get_profit_loss",
        "title": "Profit and loss (winst- en verliesrekening)",
        "description": "Profit and loss statement (winst- en verliesrekening, resultatenrekening) for a financial year and a range of periods: revenue (omzet), cost of sales (kostprijs omzet), other costs (kosten) and the result (resultaat), with the amounts per general ledger account.",
        "inputSchema": {"type": "object", "properties": {
            "division": division_schema(), "year": year_schema(),
            "period_from": {"type": "integer", "minimum": 1, "maximum": 12, "default": 1},
            "period_to": {"type": "integer", "minimum": 1, "maximum": 12, "default": 12}
        }, "additionalProperties": false},
        "outputSchema": {"type": "object", "properties": {
            "division": {"type": "integer"}, "year": {"type": "integer"}, "period_from": {"type": "integer"}, "period_to": {"type": "integer"},
            "revenue": {"type": "number"}, "cost_of_sales": {"type": "number"}, "gross_margin": {"type": "number"}, "other_costs": {"type": "number"}, "result": {"type": "number"},
            "lines": {"type": "array", "items": {"type": "object", "properties": {"code": {"type": "string"}, "description": {"type": "string"}, "category": {"type": "string"}, "amount": {"type": "number"}}, "required": ["code", "category", "amount"]}},
            "truncated": {"type": "boolean"}
        }, "required": ["division", "year", "revenue", "cost_of_sales", "other_costs", "result", "lines", "truncated"]},
        "annotations": read_only(),
    })
}

/// Revenue, cost of sales, other costs and result (cents, revenue and
/// result positive when profitable) of profit-and-loss accounts.
fn pl_totals(accs: &BTreeMap<String, Acc>) -> (i64, i64, i64, i64) {
    let mut revenue = 0;
    let mut cos = 0;
    let mut other = 0;
    for a in accs.values().filter(|a| a.balance_type == "W") {
        match a.gl_type {
            110 => revenue -= a.amount,
            111 => cos += a.amount,
            _ => other += a.amount,
        }
    }
    (revenue, cos, other, revenue - cos - other)
}

pub(super) async fn get_profit_loss<P: Platform>(
    ctx: &Bookkeeping<'_, P>,
    args: &Value,
) -> Result<ToolResult, StorageError> {
    let (division, year, from, to) = tool_try!(year_and_periods(args));
    let year = year.unwrap_or_else(|| current_year(ctx));
    let mut conn = tool_try!(connect(ctx, division).await);
    let types = tool_try!(gl_types(ctx, &mut conn).await);
    let (accs, truncated) =
        tool_try!(balances(ctx, &mut conn, pl_filter(year, from, to), &types).await);
    let (revenue, cos, other, result) = pl_totals(&accs);
    let lines: Vec<Value> = accs
        .iter()
        .map(|(code, a)| {
            let (category, amount) = match a.gl_type {
                110 => ("revenue", -a.amount),
                111 => ("cost_of_sales", a.amount),
                _ => ("other_costs", a.amount),
            };
            json!({"code": code, "description": a.description, "category": category, "amount": euros(amount)})
        })
        .collect();
    let text = format!(
        "Profit and loss {year} periods {from}-{to}: revenue € {:.2}, cost of sales € {:.2}, other costs € {:.2}, result € {:.2}",
        revenue as f64 / 100.0,
        cos as f64 / 100.0,
        other as f64 / 100.0,
        result as f64 / 100.0
    );
    Ok(ToolResult::Ok {
        structured: json!({"division": conn.admin.division_code, "year": year, "period_from": from, "period_to": to,
            "revenue": euros(revenue), "cost_of_sales": euros(cos), "gross_margin": euros(revenue - cos), "other_costs": euros(other), "result": euros(result),
            "lines": lines, "truncated": truncated}),
        text,
        division: Some(conn.admin.division_code),
        exact_calls: conn.client.calls_made(),
    })
}

pub fn balance_sheet_definition() -> Value {
    json!({
        "name": "get_balance_sheet",
        "title": "Balance sheet at a date (balans)",
        "description": "The balance sheet (balans) at the end of the month of a date: assets (activa) and liabilities and equity (passiva) per general ledger account, \
    with earlier years carried forward (so balances are true positions, not one year's movements; a closed year counts once, through its opening balance), the result of earlier years not yet closed into equity (onverdeelde winst) and the current year's result (resultaat lopend boekjaar) shown in equity. Assets equal liabilities plus equity.",
        "inputSchema": {"type": "object", "properties": {
            "division": division_schema(),
            "date": {"type": "string", "format": "date", "description": "YYYY-MM-DD; the balance at the end of that month. Today when omitted."}
        }, "additionalProperties": false},
        "outputSchema": {"type": "object", "properties": {
            "division": {"type": "integer"}, "as_of_period": {"type": "string"},
            "assets": {"type": "array", "items": {"type": "object", "properties": {"code": {"type": "string"}, "description": {"type": "string"}, "amount": {"type": "number"}}, "required": ["code", "amount"]}},
            "liabilities_and_equity": {"type": "array", "items": {"type": "object", "properties": {"code": {"type": "string"}, "description": {"type": "string"}, "amount": {"type": "number"}}, "required": ["code", "amount"]}},
            "total_assets": {"type": "number"}, "total_liabilities_and_equity": {"type": "number"},
            "prior_years_result": {"type": "number"}, "current_year_result": {"type": "number"}, "truncated": {"type": "boolean"}
        }, "required": ["division", "assets", "liabilities_and_equity", "total_assets", "total_liabilities_and_equity", "current_year_result", "truncated"]},
        "annotations": read_only(),
    })
}

pub(super) async fn get_balance_sheet<P: Platform>(
    ctx: &Bookkeeping<'_, P>,
    args: &Value,
) -> Result<ToolResult, StorageError> {
    let parsed = (|| {
        let a = Args::parse(args, &["division", "date"])?;
        let date = a.date("date")?;
        Ok::<_, ToolResult>((a.division()?, date))
    })();
    let (division, date) = tool_try!(parsed);
    let date = date.unwrap_or_else(|| ctx.platform.clock().now().date_naive());
    let (year, month) = (i64::from(date.year()), i64::from(date.month()));
    let mut conn = tool_try!(connect(ctx, division).await);
    let position = tool_try!(position_at(ctx, &mut conn, year, month, &BTreeMap::new()).await);
    let (prior_result, current_result) = (position.prior_result(), position.current_result());
    let mut assets = Vec::new();
    let mut passiva = Vec::new();
    let (mut ta, mut tp) = (0i64, 0i64);
    for (code, a) in position
        .accounts
        .iter()
        .filter(|(_, a)| a.is_balance_sheet() && a.balance() != 0)
    {
        let amount = a.balance();
        if amount > 0 {
            ta += amount;
            assets
                .push(json!({"code": code, "description": a.description, "amount": euros(amount)}));
        } else {
            tp -= amount;
            passiva.push(
                json!({"code": code, "description": a.description, "amount": euros(-amount)}),
            );
        }
    }
    for (label, amount) in [
        (PRIOR_RESULT, prior_result),
        ("Resultaat lopend boekjaar", current_result),
    ] {
        if amount != 0 {
            tp += amount;
            passiva.push(json!({"code": "", "description": label, "amount": euros(amount)}));
        }
    }
    let text = format!(
        "Balance sheet at the end of {year}-{month:02}: assets € {:.2}, liabilities and equity € {:.2} (current year result € {:.2})",
        ta as f64 / 100.0,
        tp as f64 / 100.0,
        current_result as f64 / 100.0
    );
    Ok(ToolResult::Ok {
        structured: json!({"division": conn.admin.division_code, "as_of_period": format!("{year}-{month:02}"), "assets": assets, "liabilities_and_equity": passiva,
            "total_assets": euros(ta), "total_liabilities_and_equity": euros(tp), "prior_years_result": euros(prior_result), "current_year_result": euros(current_result), "truncated": position.truncated}),
        text,
        division: Some(conn.admin.division_code),
        exact_calls: conn.client.calls_made(),
    })
}

pub fn aging_definition(kind: &'static str) -> Value {
    let (name, title, dutch) = if kind == "receivables" {
        (
            "get_aging_receivables",
            "Aging of receivables",
            "debiteuren",
        )
    } else {
        ("get_aging_payables", "Aging of payables", "crediteuren")
    };
    json!({
        "name": name,
        "title": title,
        "description": format!("Aging analysis (ouderdomsanalyse) of open {kind} ({dutch}): open amounts in euros by days past due: not yet due, 1-30, 31-60, 61-90 and over 90 days, in total and per relation."),
        "inputSchema": {"type": "object", "properties": {"division": division_schema()}, "additionalProperties": false},
        "outputSchema": {"type": "object", "properties": {
            "division": {"type": "integer"}, "as_of": {"type": "string", "format": "date"},
            "buckets": {"type": "object", "properties": {"not_due": {"type": "number"}, "days_1_30": {"type": "number"}, "days_31_60": {"type": "number"}, "days_61_90": {"type": "number"}, "days_over_90": {"type": "number"}}},
            "total": {"type": "number"},
            "relations": {"type": "array", "items": {"type": "object", "properties": {"relation": {"type": "string"}, "total": {"type": "number"}, "over_90": {"type": "number"}}, "required": ["relation", "total"]}},
            "truncated": {"type": "boolean"}
        }, "required": ["division", "as_of", "buckets", "total", "relations", "truncated"]},
        "annotations": read_only(),
    })
}

pub(super) async fn get_aging<P: Platform>(
    ctx: &Bookkeeping<'_, P>,
    args: &Value,
    payables: bool,
) -> Result<ToolResult, StorageError> {
    let division = tool_try!(Args::parse(args, &["division"]).and_then(|a| a.division()));
    let mut conn = tool_try!(connect(ctx, division).await);
    let path = if payables {
        "read/financial/PayablesList"
    } else {
        "read/financial/ReceivablesList"
    };
    let listed = match conn
        .list(
            ctx,
            &Query::new(path, &["AccountName", "DueDate", "Amount"]),
            CAP,
        )
        .await
    {
        Ok(l) => l,
        Err(r) => return Ok(r),
    };
    let today = ctx.platform.clock().now().date_naive();
    let mut buckets = [0i64; 5];
    let mut per: BTreeMap<String, (i64, i64)> = BTreeMap::new();
    for r in &listed.rows {
        let days = r
            .get("DueDate")
            .and_then(Value::as_str)
            .and_then(|d| parse_odata_day(d).ok())
            .map_or(0, |d| (today - d).num_days());
        let amount = cents(r.get("Amount"));
        let b = match days {
            ..=0 => 0,
            1..=30 => 1,
            31..=60 => 2,
            61..=90 => 3,
            _ => 4,
        };
        buckets[b] += amount;
        let e = per.entry(s(r, "AccountName").to_owned()).or_default();
        e.0 += amount;
        if b == 4 {
            e.1 += amount;
        }
    }
    let total: i64 = buckets.iter().sum();
    let mut relations: Vec<(String, i64, i64)> =
        per.into_iter().map(|(k, (t, o))| (k, t, o)).collect();
    relations.sort_by_key(|(_, t, _)| std::cmp::Reverse(*t));
    let text = format!(
        "{}: not due € {:.2}, 1-30 € {:.2}, 31-60 € {:.2}, 61-90 € {:.2}, >90 € {:.2}; total € {:.2}",
        if payables {
            "Payables aging"
        } else {
            "Receivables aging"
        },
        buckets[0] as f64 / 100.0,
        buckets[1] as f64 / 100.0,
        buckets[2] as f64 / 100.0,
        buckets[3] as f64 / 100.0,
        buckets[4] as f64 / 100.0,
        total as f64 / 100.0
    );
    Ok(ToolResult::Ok {
        structured: json!({"division": conn.admin.division_code, "as_of": today.to_string(),
            "buckets": {"not_due": euros(buckets[0]), "days_1_30": euros(buckets[1]), "days_31_60": euros(buckets[2]), "days_61_90": euros(buckets[3]), "days_over_90": euros(buckets[4])},
            "total": euros(total),
            "relations": relations.into_iter().map(|(r, t, o)| json!({"relation": r, "total": euros(t), "over_90": euros(o)})).collect::<Vec<_>>(),
            "truncated": listed.truncated}),
        text,
        division: Some(conn.admin.division_code),
        exact_calls: conn.client.calls_made(),
    })
}

pub fn vat_definition() -> Value {
    json!({
        "name": "get_vat_summary",
        "title": "VAT summary (btw-overzicht)",
        "description": "VAT (btw, omzetbelasting) for a quarter or a month, from the VAT accounts in Exact Online: VAT charged on sales (af te dragen), VAT paid on purchases (voorbelasting, te vorderen) and the balance to pay or to reclaim, for preparing the VAT return (btw-aangifte). Defaults to the current quarter.",
        "inputSchema": {"type": "object", "properties": {
            "division": division_schema(), "year": year_schema(),
            "quarter": {"type": "integer", "minimum": 1, "maximum": 4},
            "period": {"type": "integer", "minimum": 1, "maximum": 12, "description": "A single month instead of a quarter."}
        }, "additionalProperties": false},
        "outputSchema": {"type": "object", "properties": {
            "division": {"type": "integer"}, "year": {"type": "integer"}, "period_from": {"type": "integer"}, "period_to": {"type": "integer"},
            "accounts": {"type": "array", "items": {"type": "object", "properties": {"code": {"type": "string"}, "description": {"type": "string"}, "to_pay": {"type": "number"}, "to_claim": {"type": "number"}}, "required": ["code", "to_pay", "to_claim"]}},
            "vat_to_pay": {"type": "number"}, "vat_to_claim": {"type": "number"}, "balance": {"type": "number"}, "truncated": {"type": "boolean"}
        }, "required": ["division", "year", "period_from", "period_to", "accounts", "vat_to_pay", "vat_to_claim", "balance", "truncated"]},
        "annotations": read_only(),
    })
}

pub(super) async fn get_vat_summary<P: Platform>(
    ctx: &Bookkeeping<'_, P>,
    args: &Value,
) -> Result<ToolResult, StorageError> {
    let parsed = (|| {
        let a = Args::parse(args, &["division", "year", "quarter", "period"])?;
        Ok::<_, ToolResult>((
            a.division()?,
            a.int("year", 2000, 2100)?,
            a.int("quarter", 1, 4)?,
            a.int("period", 1, 12)?,
        ))
    })();
    let (division, year, quarter, period) = tool_try!(parsed);
    let now = ctx.platform.clock().now();
    let year = year.unwrap_or_else(|| i64::from(now.year()));
    let (from, to) = match (quarter, period) {
        (Some(_), Some(_)) => {
            return Ok(super::exact::failed(
                "Give either `quarter` or `period`, not both.",
                boekhouding_core::storage::usage::Outcome::InvalidArguments,
            ));
        }
        (Some(q), None) => (q * 3 - 2, q * 3),
        (None, Some(p)) => (p, p),
        (None, None) => {
            let q = (i64::from(now.month()) - 1) / 3 + 1;
            (q * 3 - 2, q * 3)
        }
    };
    let mut conn = tool_try!(connect(ctx, division).await);
    let types = tool_try!(gl_types(ctx, &mut conn).await);
    // An opening balance on a VAT account is an earlier period's VAT, not
    // this return's, even when it was entered in period 1.
    let filter = Filter::eq("ReportingYear", year)
        .and(Filter::cmp("ReportingPeriod", Cmp::Ge, from))
        .and(Filter::cmp("ReportingPeriod", Cmp::Le, to))
        .and(Filter::cmp("Type", Cmp::Ne, OPENING_BALANCE));
    let (accs, truncated) = tool_try!(balances(ctx, &mut conn, filter, &types).await);
    let (mut pay, mut claim) = (0i64, 0i64);
    let accounts: Vec<Value> = accs
        .iter()
        .filter(|(_, a)| a.gl_type == 24)
        .map(|(code, a)| {
            // Sales VAT is booked as credit (to pay); purchase VAT as debit.
            let to_pay = a.credit;
            let to_claim = a.debit;
            pay += to_pay;
            claim += to_claim;
            json!({"code": code, "description": a.description, "to_pay": euros(to_pay), "to_claim": euros(to_claim)})
        })
        .collect();
    let balance = pay - claim;
    let text = format!(
        "VAT {year} periods {from}-{to}: to pay € {:.2}, to claim € {:.2}, {} € {:.2}",
        pay as f64 / 100.0,
        claim as f64 / 100.0,
        if balance >= 0 {
            "balance to pay"
        } else {
            "balance to reclaim"
        },
        balance.abs() as f64 / 100.0
    );
    Ok(ToolResult::Ok {
        structured: json!({"division": conn.admin.division_code, "year": year, "period_from": from, "period_to": to, "accounts": accounts,
            "vat_to_pay": euros(pay), "vat_to_claim": euros(claim), "balance": euros(balance), "truncated": truncated}),
        text,
        division: Some(conn.admin.division_code),
        exact_calls: conn.client.calls_made(),
    })
}

pub fn cashflow_definition() -> Value {
    json!({
        "name": "get_cashflow_forecast",
        "title": "Cash flow forecast (liquiditeitsprognose)",
        "description": "A simple liquidity forecast (liquiditeitsprognose, kasstroom): today's bank and cash balance, plus open receivables (debiteuren) and minus open payables (crediteuren) falling due within the horizon (overdue ones included), giving the expected balance at the horizon.",
        "inputSchema": {"type": "object", "properties": {
            "division": division_schema(),
            "forecast_days": {"type": "integer", "enum": [30, 60, 90], "default": 30}
        }, "additionalProperties": false},
        "outputSchema": {"type": "object", "properties": {
            "division": {"type": "integer"}, "as_of": {"type": "string"}, "horizon": {"type": "string"},
            "bank_balance": {"type": "number"}, "expected_in": {"type": "number"}, "expected_out": {"type": "number"},
            "forecast_balance": {"type": "number"}, "warning": {"type": ["string", "null"]}
        }, "required": ["division", "as_of", "horizon", "bank_balance", "expected_in", "expected_out", "forecast_balance"]},
        "annotations": read_only(),
    })
}

/// Bank and cash balance (GL types 10 and 12) at the end of today's month,
/// carried forward.
pub(super) async fn liquid_balance<P: Platform>(
    ctx: &Bookkeeping<'_, P>,
    conn: &mut Connected<'_, P>,
    types: &BTreeMap<String, i64>,
    today: NaiveDate,
) -> Result<i64, ToolResult> {
    let (y, m) = (i64::from(today.year()), i64::from(today.month()));
    Ok(position_at(ctx, conn, y, m, types)
        .await?
        .of_types(&[10, 12]))
}

/// Open amounts falling due by `until` (overdue included).
async fn due_by<P: Platform>(
    ctx: &Bookkeeping<'_, P>,
    conn: &mut Connected<'_, P>,
    path: &'static str,
    until: NaiveDate,
) -> Result<(i64, i64), ToolResult> {
    let listed = conn
        .list(ctx, &Query::new(path, &["DueDate", "Amount"]), CAP)
        .await?;
    let mut due = 0;
    let mut all = 0;
    for r in &listed.rows {
        let amount = cents(r.get("Amount"));
        all += amount;
        let d = r
            .get("DueDate")
            .and_then(Value::as_str)
            .and_then(|d| parse_odata_day(d).ok());
        if d.is_none_or(|d| d <= until) {
            due += amount;
        }
    }
    Ok((due, all))
}

pub(super) async fn get_cashflow_forecast<P: Platform>(
    ctx: &Bookkeeping<'_, P>,
    args: &Value,
) -> Result<ToolResult, StorageError> {
    let parsed = (|| {
        let a = Args::parse(args, &["division", "forecast_days"])?;
        let days = a.int("forecast_days", 1, 365)?.unwrap_or(30);
        if ![30, 60, 90].contains(&days) {
            return Err(super::exact::failed(
                "`forecast_days` must be 30, 60 or 90.",
                boekhouding_core::storage::usage::Outcome::InvalidArguments,
            ));
        }
        Ok::<_, ToolResult>((a.division()?, days))
    })();
    let (division, days) = tool_try!(parsed);
    let today = ctx.platform.clock().now().date_naive();
    let horizon = today + chrono::Duration::days(days);
    let mut conn = tool_try!(connect(ctx, division).await);
    let types = tool_try!(gl_types(ctx, &mut conn).await);
    let bank = tool_try!(liquid_balance(ctx, &mut conn, &types, today).await);
    let (inflow, _) = match due_by(ctx, &mut conn, "read/financial/ReceivablesList", horizon).await
    {
        Ok(x) => x,
        Err(r) => return Ok(r),
    };
    let (outflow, _) =
        tool_try!(due_by(ctx, &mut conn, "read/financial/PayablesList", horizon).await);
    let forecast = bank + inflow - outflow;
    let warning = (forecast < 0).then(|| {
        format!(
            "The expected balance on {horizon} is negative: € {:.2}.",
            forecast as f64 / 100.0
        )
    });
    let text = format!(
        "Cash now € {:.2}; expected in € {:.2}, out € {:.2} by {horizon}; forecast € {:.2}",
        bank as f64 / 100.0,
        inflow as f64 / 100.0,
        outflow as f64 / 100.0,
        forecast as f64 / 100.0
    );
    Ok(ToolResult::Ok {
        structured: json!({"division": conn.admin.division_code, "as_of": today.to_string(), "horizon": horizon.to_string(), "bank_balance": euros(bank),
            "expected_in": euros(inflow), "expected_out": euros(outflow), "forecast_balance": euros(forecast), "warning": warning}),
        text,
        division: Some(conn.admin.division_code),
        exact_calls: conn.client.calls_made(),
    })
}

pub fn snapshot_definition() -> Value {
    json!({
        "name": "get_financial_snapshot",
        "title": "Financial snapshot (financieel overzicht)",
        "description": "A one-call overview (financieel overzicht, KPI's) of an administration: revenue and result of the year so far, cash (liquide middelen), open receivables (debiteuren) with the overdue part, and open payables (crediteuren).",
        "inputSchema": {"type": "object", "properties": {"division": division_schema()}, "additionalProperties": false},
        "outputSchema": {"type": "object", "properties": {
            "division": {"type": "integer"}, "as_of": {"type": "string"}, "year": {"type": "integer"},
            "revenue_ytd": {"type": "number"}, "result_ytd": {"type": "number"}, "cash": {"type": "number"},
            "receivables": {"type": "number"}, "receivables_overdue": {"type": "number"}, "payables": {"type": "number"}
        }, "required": ["division", "as_of", "year", "revenue_ytd", "result_ytd", "cash", "receivables", "receivables_overdue", "payables"]},
        "annotations": read_only(),
    })
}

pub(super) async fn get_financial_snapshot<P: Platform>(
    ctx: &Bookkeeping<'_, P>,
    args: &Value,
) -> Result<ToolResult, StorageError> {
    let division = tool_try!(Args::parse(args, &["division"]).and_then(|a| a.division()));
    let today = ctx.platform.clock().now().date_naive();
    let year = i64::from(today.year());
    let mut conn = tool_try!(connect(ctx, division).await);
    let types = tool_try!(gl_types(ctx, &mut conn).await);
    let ytd = Filter::eq("ReportingYear", year)
        .and(Filter::eq("BalanceType", "W"))
        .and(Filter::cmp(
            "ReportingPeriod",
            Cmp::Le,
            i64::from(today.month()),
        ));
    let (pl, _) = tool_try!(balances(ctx, &mut conn, ytd, &types).await);
    let (revenue, _, _, result) = pl_totals(&pl);
    let cash = tool_try!(liquid_balance(ctx, &mut conn, &types, today).await);
    let yesterday = today - chrono::Duration::days(1);
    let (overdue, receivables) =
        tool_try!(due_by(ctx, &mut conn, "read/financial/ReceivablesList", yesterday).await);
    let (_, payables) =
        tool_try!(due_by(ctx, &mut conn, "read/financial/PayablesList", today).await);
    let text = format!(
        "{year} so far: revenue € {:.2}, result € {:.2}; cash € {:.2}; receivables € {:.2} (overdue € {:.2}); payables € {:.2}",
        revenue as f64 / 100.0,
        result as f64 / 100.0,
        cash as f64 / 100.0,
        receivables as f64 / 100.0,
        overdue as f64 / 100.0,
        payables as f64 / 100.0
    );
    Ok(ToolResult::Ok {
        structured: json!({"division": conn.admin.division_code, "as_of": today.to_string(), "year": year, "revenue_ytd": euros(revenue), "result_ytd": euros(result),
            "cash": euros(cash), "receivables": euros(receivables), "receivables_overdue": euros(overdue), "payables": euros(payables)}),
        text,
        division: Some(conn.admin.division_code),
        exact_calls: conn.client.calls_made(),
    })
}

pub fn aging_analysis_definition() -> Value {
    let side = aging_definition("receivables")["outputSchema"].clone();
    json!({
        "name": "get_aging_analysis",
        "title": "Aging analysis of receivables and payables",
        "description": "Aging analysis (ouderdomsanalyse) of both open receivables (debiteuren) and open payables (crediteuren) in one answer: open amounts in euros by days past due (not yet due, 1-30, 31-60, 61-90, over 90), per relation, and the net position (receivables minus payables).",
        "inputSchema": {"type": "object", "properties": {"division": division_schema()}, "additionalProperties": false},
        "outputSchema": {"type": "object", "properties": {
            "division": {"type": "integer"},
            "receivables": side.clone(),
            "payables": side,
            "net_position": {"type": "number"}
        }, "required": ["division", "receivables", "payables", "net_position"]},
        "annotations": read_only(),
    })
}

/// Both sides of the aging analysis, each exactly as its own tool answers.
pub(super) async fn get_aging_analysis<P: Platform>(
    ctx: &Bookkeeping<'_, P>,
    args: &Value,
) -> Result<ToolResult, StorageError> {
    let mut sides = Vec::new();
    let mut calls = 0;
    let mut texts = Vec::new();
    for payables in [false, true] {
        match get_aging(ctx, args, payables).await? {
            ToolResult::Ok {
                structured,
                text,
                exact_calls,
                ..
            } => {
                calls += exact_calls;
                texts.push(text);
                sides.push(structured);
            }
            failed => return Ok(failed),
        }
    }
    let (receivables, payables) = (sides.remove(0), sides.remove(0));
    let net = ((receivables["total"].as_f64().unwrap_or(0.0)
        - payables["total"].as_f64().unwrap_or(0.0))
        * 100.0)
        .round()
        / 100.0;
    let division = receivables["division"].as_i64();
    Ok(ToolResult::Ok {
        structured: json!({
            "division": division, "receivables": receivables, "payables": payables, "net_position": net,
        }),
        text: format!(
            "Receivables:\n{}\n\nPayables:\n{}\n\nNet position (receivables − payables): € {net:.2}",
            texts[0], texts[1]
        ),
        division,
        exact_calls: calls,
    })
}

pub fn budget_comparison_definition() -> Value {
    json!({
        "name": "get_budget_comparison",
        "title": "Budget versus actual (begroting)",
        "description": "Compares the budget (begroting) with the actual figures per profit-and-loss account for a year and period range, in euros with revenue shown positive: budget, actual, variance (actual − budget) and variance in percent, plus totals for revenue, costs and result.",
        "inputSchema": {"type": "object", "properties": {
            "division": division_schema(),
            "year": year_schema(),
            "period_from": {"type": "integer", "minimum": 1, "maximum": 12, "default": 1},
            "period_to": {"type": "integer", "minimum": 1, "maximum": 12, "default": 12}
        }, "additionalProperties": false},
        "outputSchema": {"type": "object", "properties": {
            "division": {"type": "integer"}, "year": {"type": "integer"},
            "period_from": {"type": "integer"}, "period_to": {"type": "integer"},
            "lines": {"type": "array", "items": {"type": "object", "properties": {
                "code": {"type": "string"}, "description": {"type": "string"}, "category": {"type": "string"},
                "budget": {"type": "number"}, "actual": {"type": "number"}, "variance": {"type": "number"},
                "variance_pct": {"type": ["number", "null"]}
            }, "required": ["code", "category", "budget", "actual", "variance"]}},
            "budget_result": {"type": "number"}, "actual_result": {"type": "number"},
            "truncated": {"type": "boolean"}
        }, "required": ["division", "year", "lines", "budget_result", "actual_result", "truncated"]},
        "annotations": read_only(),
    })
}

pub(super) async fn get_budget_comparison<P: Platform>(
    ctx: &Bookkeeping<'_, P>,
    args: &Value,
) -> Result<ToolResult, StorageError> {
    let (division, year, from, to) = tool_try!(year_and_periods(args));
    let year = year.unwrap_or_else(|| current_year(ctx));
    let mut conn = tool_try!(connect(ctx, division).await);
    let types = tool_try!(gl_types(ctx, &mut conn).await);
    let period = |f: &'static str| Filter::cmp(f, Cmp::Ge, from).and(Filter::cmp(f, Cmp::Le, to));
    let (actual, truncated_a) =
        tool_try!(balances(ctx, &mut conn, pl_filter(year, from, to), &types).await);
    let budgets = tool_try!(
        conn.list(
            ctx,
            &Query::new(
                "budget/Budgets",
                &["GLAccount", "GLAccountCode", "ReportingPeriod", "AmountDC"],
            )
            .filter(Some(
                Filter::eq("ReportingYear", year).and(period("ReportingPeriod")),
            )),
            CAP,
        )
        .await
    );
    // code → (budget cents, gl type)
    let mut budget: BTreeMap<String, (i64, i64)> = BTreeMap::new();
    for r in &budgets.rows {
        let e = budget
            .entry(s(r, "GLAccountCode").trim().to_owned())
            .or_default();
        e.0 += cents(r.get("AmountDC"));
        e.1 = types.get(s(r, "GLAccount")).copied().unwrap_or(e.1);
    }
    let codes: std::collections::BTreeSet<String> =
        actual.keys().chain(budget.keys()).cloned().collect();
    let (mut budget_result, mut actual_result) = (0i64, 0i64);
    let lines: Vec<Value> = codes
        .iter()
        .map(|code| {
            let a = actual.get(code);
            let (b, b_type) = budget.get(code).copied().unwrap_or((0, 0));
            let gl_type = a.map_or(b_type, |a| a.gl_type);
            let act = a.map_or(0, |a| a.amount);
            // Result = −(sum of P&L amounts): revenue is credit (negative).
            budget_result -= b;
            actual_result -= act;
            let (category, sign) = match gl_type {
                110 => ("revenue", -1),
                111 => ("cost_of_sales", 1),
                _ => ("other_costs", 1),
            };
            let (b, act) = (b * sign, act * sign);
            let variance = act - b;
            let pct = (b != 0).then(|| ((variance as f64 / b as f64) * 1000.0).round() / 10.0);
            json!({
                "code": code,
                "description": a.map(|a| a.description.clone()).unwrap_or_default(),
                "category": category, "budget": euros(b), "actual": euros(act),
                "variance": euros(variance), "variance_pct": pct,
            })
        })
        .collect();
    let truncated = truncated_a || budgets.truncated;
    let text = format!(
        "Budget versus actual {year} periods {from}-{to}: budgeted result € {:.2}, actual result € {:.2}, variance € {:.2}.{}",
        budget_result as f64 / 100.0,
        actual_result as f64 / 100.0,
        (actual_result - budget_result) as f64 / 100.0,
        if truncated { " (truncated)" } else { "" }
    );
    Ok(ToolResult::Ok {
        structured: json!({
            "division": conn.admin.division_code, "year": year, "period_from": from, "period_to": to,
            "lines": lines, "budget_result": euros(budget_result), "actual_result": euros(actual_result),
            "truncated": truncated,
        }),
        text,
        division: Some(conn.admin.division_code),
        exact_calls: conn.client.calls_made(),
    })
}

pub fn margin_analysis_definition() -> Value {
    json!({
        "name": "get_margin_analysis",
        "title": "Margin analysis (margeanalyse)",
        "description": "Gross margin (brutomarge) per month of a year: revenue, cost of sales, gross margin in euros and as a percentage of revenue, with the year's totals; plus the list-price margin of the items sold (standard sales price against standard cost), highest and lowest first.",
        "inputSchema": {"type": "object", "properties": {
            "division": division_schema(),
            "year": year_schema()
        }, "additionalProperties": false},
        "outputSchema": {"type": "object", "properties": {
            "division": {"type": "integer"}, "year": {"type": "integer"},
            "months": {"type": "array", "items": {"type": "object", "properties": {
                "period": {"type": "integer"}, "revenue": {"type": "number"}, "cost_of_sales": {"type": "number"},
                "gross_margin": {"type": "number"}, "margin_pct": {"type": ["number", "null"]}
            }, "required": ["period", "revenue", "cost_of_sales", "gross_margin"]}},
            "revenue": {"type": "number"}, "cost_of_sales": {"type": "number"},
            "gross_margin": {"type": "number"}, "margin_pct": {"type": ["number", "null"]},
            "items": {"type": "array", "items": {"type": "object", "properties": {
                "code": {"type": "string"}, "description": {"type": "string"}, "sales_price": {"type": "number"},
                "cost_price": {"type": "number"}, "margin_pct": {"type": ["number", "null"]}
            }, "required": ["code", "sales_price", "cost_price"]}},
            "truncated": {"type": "boolean"}
        }, "required": ["division", "year", "months", "revenue", "cost_of_sales", "gross_margin", "items", "truncated"]},
        "annotations": read_only(),
    })
}

fn pct(part: i64, whole: i64) -> Option<f64> {
    (whole != 0).then(|| ((part as f64 / whole as f64) * 1000.0).round() / 10.0)
}

pub(super) async fn get_margin_analysis<P: Platform>(
    ctx: &Bookkeeping<'_, P>,
    args: &Value,
) -> Result<ToolResult, StorageError> {
    let parsed = (|| {
        let a = Args::parse(args, &["division", "year"])?;
        Ok::<_, ToolResult>((a.division()?, a.int("year", 2000, 2100)?))
    })();
    let (division, year) = tool_try!(parsed);
    let year = year.unwrap_or_else(|| current_year(ctx));
    let mut conn = tool_try!(connect(ctx, division).await);
    let types = tool_try!(gl_types(ctx, &mut conn).await);
    let q = Query::new(
        "financial/ReportingBalance",
        &["GLAccount", "ReportingPeriod", "Amount"],
    )
    .filter(Some(
        Filter::eq("ReportingYear", year).and(Filter::eq("BalanceType", "W")),
    ));
    let listed = tool_try!(conn.list(ctx, &q, CAP).await);
    // period → (revenue, cost of sales) in cents, revenue positive.
    let mut months: BTreeMap<i64, (i64, i64)> = BTreeMap::new();
    for r in &listed.rows {
        let period = r
            .get("ReportingPeriod")
            .and_then(Value::as_i64)
            .unwrap_or(0);
        let e = months.entry(period).or_default();
        match types.get(s(r, "GLAccount")).copied().unwrap_or(0) {
            110 => e.0 -= cents(r.get("Amount")),
            111 => e.1 += cents(r.get("Amount")),
            _ => {}
        }
    }
    let (mut revenue, mut cos) = (0i64, 0i64);
    let month_rows: Vec<Value> = months
        .iter()
        .map(|(p, (rev, c))| {
            revenue += rev;
            cos += c;
            json!({"period": p, "revenue": euros(*rev), "cost_of_sales": euros(*c),
                "gross_margin": euros(rev - c), "margin_pct": pct(rev - c, *rev)})
        })
        .collect();
    let items = tool_try!(
        conn.list(
            ctx,
            &Query::new(
                "logistics/Items",
                &[
                    "Code",
                    "Description",
                    "StandardSalesPrice",
                    "CostPriceStandard"
                ],
            )
            .filter(Some(Filter::eq("IsSalesItem", true))),
            CAP,
        )
        .await
    );
    let mut item_rows: Vec<(Option<f64>, Value)> = items
        .rows
        .iter()
        .map(|r| {
            let (price, cost) = (
                cents(r.get("StandardSalesPrice")),
                cents(r.get("CostPriceStandard")),
            );
            let m = pct(price - cost, price);
            (
                m,
                json!({"code": s(r, "Code").trim(), "description": s(r, "Description"),
                    "sales_price": euros(price), "cost_price": euros(cost), "margin_pct": m}),
            )
        })
        .collect();
    item_rows.sort_by(|a, b| {
        b.0.unwrap_or(f64::MIN)
            .partial_cmp(&a.0.unwrap_or(f64::MIN))
            .unwrap_or(std::cmp::Ordering::Equal)
    });
    let margin = revenue - cos;
    let text = format!(
        "Gross margin {year}: revenue € {:.2}, cost of sales € {:.2}, gross margin € {:.2}{}.{}",
        revenue as f64 / 100.0,
        cos as f64 / 100.0,
        margin as f64 / 100.0,
        pct(margin, revenue)
            .map(|p| format!(" ({p} %)"))
            .unwrap_or_default(),
        month_rows
            .iter()
            .map(|m| format!(
                "\nperiod {}: € {} revenue, € {} margin{}",
                m["period"],
                m["revenue"],
                m["gross_margin"],
                m["margin_pct"]
                    .as_f64()
                    .map(|p| format!(" ({p} %)"))
                    .unwrap_or_default()
            ))
            .collect::<String>()
    );
    Ok(ToolResult::Ok {
        structured: json!({
            "division": conn.admin.division_code, "year": year, "months": month_rows,
            "revenue": euros(revenue), "cost_of_sales": euros(cos), "gross_margin": euros(margin),
            "margin_pct": pct(margin, revenue),
            "items": item_rows.into_iter().map(|(_, v)| v).collect::<Vec<_>>(),
            "truncated": listed.truncated || items.truncated,
        }),
        text,
        division: Some(conn.admin.division_code),
        exact_calls: conn.client.calls_made(),
    })
}
