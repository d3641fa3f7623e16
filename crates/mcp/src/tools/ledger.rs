//! Ledger tools: the chart of accounts (grootboek) and open items
//! (debiteuren/crediteuren).

use boekhouding_core::exact::dates::parse_odata_day;
use boekhouding_core::exact::{Filter, Query};
use boekhouding_core::ports::Clock;
use boekhouding_core::storage::StorageError;
use serde_json::{Value, json};

use super::exact::{Args, connect, division_schema};
use super::{Bookkeeping, Platform, ToolResult, read_only};

fn cents(v: &Value) -> i64 {
    (v.as_f64().unwrap_or(0.0) * 100.0).round() as i64
}

fn euros(c: i64) -> Value {
    json!(c as f64 / 100.0)
}

fn iso_day(v: &Value) -> Value {
    v.as_str()
        .and_then(|s| parse_odata_day(s).ok())
        .map_or(Value::Null, |d| json!(d.to_string()))
}

pub fn gl_accounts_definition() -> Value {
    json!({
        "name": "get_gl_accounts",
        "title": "Chart of accounts (grootboekrekeningen)",
        "description": "Lists the general ledger accounts (grootboekrekeningen) of an Exact Online administration: code, description, \
    whether it is a balance sheet (balans) or profit and loss (winst- en verliesrekening) account, and its Exact type. \
    Use `type` to limit to balance or profitloss accounts and `search` to find accounts by code or description (e.g. 'omzet', 'bank', '8000').",
        "inputSchema": {
            "type": "object",
            "properties": {
                "division": division_schema(),
                "type": {"type": "string", "enum": ["balance", "profitloss", "all"], "default": "all"},
                "search": {"type": "string", "maxLength": 100, "description": "Part of the description, or the start of the code."},
                "limit": {"type": "integer", "minimum": 1, "maximum": 1000, "default": 500}
            },
            "additionalProperties": false
        },
        "outputSchema": {
            "type": "object",
            "properties": {
                "division": {"type": "integer"},
                "accounts": {"type": "array", "items": {"type": "object", "properties": {
                    "code": {"type": "string"}, "description": {"type": "string"},
                    "balance_type": {"type": "string", "enum": ["balance_sheet", "profit_loss"]},
                    "exact_type": {"type": "integer"}, "blocked": {"type": "boolean"}
                }, "required": ["code", "description", "balance_type"]}},
                "count": {"type": "integer"},
                "truncated": {"type": "boolean"}
            },
            "required": ["division", "accounts", "count", "truncated"]
        },
        "annotations": read_only(),
    })
}

pub(super) async fn get_gl_accounts<P: Platform>(
    ctx: &Bookkeeping<'_, P>,
    args: &Value,
) -> Result<ToolResult, StorageError> {
    let parsed = (|| {
        let a = Args::parse(args, &["division", "type", "search", "limit"])?;
        Ok::<_, ToolResult>((
            a.division()?,
            a.choice("type", &["balance", "profitloss", "all"])?
                .unwrap_or("all"),
            a.text("search", 100)?,
            a.int("limit", 1, 1000)?.unwrap_or(500) as usize,
        ))
    })();
    let (division, kind, search, limit) = tool_try!(parsed);
    let mut conn = tool_try!(connect(ctx, division).await);
    let mut parts = Vec::new();
    match kind {
        "balance" => parts.push(Filter::eq("BalanceType", "B")),
        "profitloss" => parts.push(Filter::eq("BalanceType", "W")),
        _ => {}
    }
    if let Some(s) = &search {
        parts.push(
            Filter::contains("Description", s.clone()).or(Filter::starts_with("Code", s.clone())),
        );
    }
    let query = Query::new(
        "financial/GLAccounts",
        &[
            "ID",
            "Code",
            "Description",
            "BalanceType",
            "Type",
            "IsBlocked",
        ],
    )
    .filter(Filter::all(parts))
    .orderby("Code");
    let listed = tool_try!(conn.list(ctx, &query, limit).await);
    let accounts: Vec<Value> = listed
        .rows
        .iter()
        .map(|r| {
            json!({
                "code": r.get("Code").and_then(Value::as_str).unwrap_or("").trim(),
                "description": r.get("Description").and_then(Value::as_str).unwrap_or(""),
                "balance_type": if r.get("BalanceType").and_then(Value::as_str) == Some("W") { "profit_loss" } else { "balance_sheet" },
                "exact_type": r.get("Type").and_then(Value::as_i64).unwrap_or(0),
                "blocked": r.get("IsBlocked").and_then(Value::as_bool).unwrap_or(false),
            })
        })
        .collect();
    let mut text: Vec<String> = accounts
        .iter()
        .map(|a| {
            format!(
                "{} {} ({})",
                a["code"].as_str().unwrap_or(""),
                a["description"].as_str().unwrap_or(""),
                a["balance_type"].as_str().unwrap_or("")
            )
        })
        .collect();
    if listed.truncated {
        text.push(format!("… more accounts exist; showing the first {limit}. Narrow with `search` or raise `limit`."));
    }
    Ok(ToolResult::Ok {
        structured: json!({"division": conn.admin.division_code, "count": accounts.len(), "truncated": listed.truncated, "accounts": accounts}),
        text: text.join("\n"),
        division: Some(conn.admin.division_code),
        exact_calls: conn.client.calls_made(),
    })
}

pub fn outstanding_definition() -> Value {
    let side = json!({"type": "object", "properties": {
        "items": {"type": "array", "items": {"type": "object", "properties": {
            "relation": {"type": "string"}, "relation_code": {"type": "string"}, "invoice_number": {"type": ["integer", "null"]},
            "invoice_date": {"type": ["string", "null"], "format": "date"}, "due_date": {"type": ["string", "null"], "format": "date"},
            "amount": {"type": "number"}, "days_overdue": {"type": "integer"}
        }, "required": ["relation", "amount", "days_overdue"]}},
        "count": {"type": "integer"}, "total": {"type": "number"}, "overdue_total": {"type": "number"}, "truncated": {"type": "boolean"}
    }, "required": ["items", "count", "total", "overdue_total", "truncated"]});
    json!({
        "name": "get_outstanding_invoices",
        "title": "Outstanding invoices (openstaande posten)",
        "description": "Open invoices from Exact Online: what customers still owe (debiteuren, receivables) and what the company \
    still has to pay suppliers (crediteuren, payables), with amounts in euros, due dates and days overdue as of today. \
    Use `overdue_only` or `min_days_overdue` for a dunning list (aanmaningen).",
        "inputSchema": {
            "type": "object",
            "properties": {
                "division": division_schema(),
                "type": {"type": "string", "enum": ["receivable", "payable", "both"], "default": "both"},
                "overdue_only": {"type": "boolean", "default": false},
                "min_days_overdue": {"type": "integer", "minimum": 0, "maximum": 3650}
            },
            "additionalProperties": false
        },
        "outputSchema": {
            "type": "object",
            "properties": {"division": {"type": "integer"}, "as_of": {"type": "string", "format": "date"}, "receivables": side, "payables": side},
            "required": ["division", "as_of"]
        },
        "annotations": read_only(),
    })
}

pub(super) async fn get_outstanding_invoices<P: Platform>(
    ctx: &Bookkeeping<'_, P>,
    args: &Value,
) -> Result<ToolResult, StorageError> {
    let parsed = (|| {
        let a = Args::parse(
            args,
            &["division", "type", "overdue_only", "min_days_overdue"],
        )?;
        Ok::<_, ToolResult>((
            a.division()?,
            a.choice("type", &["receivable", "payable", "both"])?
                .unwrap_or("both"),
            a.boolean("overdue_only")?.unwrap_or(false),
            a.int("min_days_overdue", 0, 3650)?,
        ))
    })();
    let (division, kind, overdue_only, min_days) = tool_try!(parsed);
    let mut conn = tool_try!(connect(ctx, division).await);
    let today = ctx.platform.clock().now().date_naive();
    let threshold = min_days.unwrap_or(if overdue_only { 1 } else { i64::MIN });
    let mut out = json!({"division": conn.admin.division_code, "as_of": today.to_string()});
    let mut text = Vec::new();
    const CAP: usize = 5_000;
    for (key, path, label) in [
        (
            "receivables",
            "read/financial/ReceivablesList",
            "receivable",
        ),
        ("payables", "read/financial/PayablesList", "payable"),
    ] {
        if kind != "both" && kind != label {
            continue;
        }
        let query = Query::new(
            path,
            &[
                "AccountName",
                "AccountCode",
                "InvoiceNumber",
                "InvoiceDate",
                "DueDate",
                "Amount",
            ],
        );
        let listed = tool_try!(conn.list(ctx, &query, CAP).await);
        let mut items: Vec<(i64, Value)> = listed
            .rows
            .iter()
            .map(|r| {
                let due = r.get("DueDate").and_then(Value::as_str).and_then(|s| parse_odata_day(s).ok());
                let days = due.map_or(0, |d| (today - d).num_days());
                let c = cents(r.get("Amount").unwrap_or(&Value::Null));
                (c, json!({
                    "relation": r.get("AccountName").and_then(Value::as_str).unwrap_or(""),
                    "relation_code": r.get("AccountCode").and_then(Value::as_str).unwrap_or("").trim(),
                    "invoice_number": r.get("InvoiceNumber").cloned().unwrap_or(Value::Null),
                    "invoice_date": iso_day(r.get("InvoiceDate").unwrap_or(&Value::Null)),
                    "due_date": iso_day(r.get("DueDate").unwrap_or(&Value::Null)),
                    "amount": euros(c),
                    "days_overdue": days.max(0),
                }))
            })
            .filter(|(_, v)| v["days_overdue"].as_i64().unwrap_or(0) >= threshold)
            .collect();
        items.sort_by_key(|(_, v)| std::cmp::Reverse(v["days_overdue"].as_i64().unwrap_or(0)));
        let total: i64 = items.iter().map(|(c, _)| c).sum();
        let overdue: i64 = items
            .iter()
            .filter(|(_, v)| v["days_overdue"].as_i64().unwrap_or(0) > 0)
            .map(|(c, _)| c)
            .sum();
        text.push(format!(
            "{}: {} open, total € {:.2}, of which overdue € {:.2}{}",
            key,
            items.len(),
            total as f64 / 100.0,
            overdue as f64 / 100.0,
            if listed.truncated {
                " (more items exist than were read)"
            } else {
                ""
            }
        ));
        out[key] = json!({
            "count": items.len(), "total": euros(total), "overdue_total": euros(overdue), "truncated": listed.truncated,
            "items": items.into_iter().map(|(_, v)| v).collect::<Vec<_>>(),
        });
    }
    Ok(ToolResult::Ok {
        structured: out,
        text: text.join("\n"),
        division: Some(conn.admin.division_code),
        exact_calls: conn.client.calls_made(),
    })
}
