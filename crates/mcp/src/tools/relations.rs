//! Relation and transaction tools: customers and suppliers (klanten,
//! leveranciers, relaties), revenue per period (omzet) and general ledger
//! transaction lines (boekingen, mutaties).

use boekhouding_core::exact::dates::parse_odata_day;
use boekhouding_core::exact::{Cmp, Filter, Query};
use boekhouding_core::ports::Clock;
use boekhouding_core::storage::StorageError;
use boekhouding_core::storage::usage::Outcome;
use chrono::Datelike;
use serde_json::{Value, json};

use super::exact::{Args, connect, division_schema, failed};
use super::{Bookkeeping, Platform, ToolResult, read_only};

fn relation_json(r: &serde_json::Map<String, Value>) -> Value {
    let text = |k: &str| {
        r.get(k)
            .and_then(Value::as_str)
            .unwrap_or("")
            .trim()
            .to_owned()
    };
    json!({
        "id": text("ID"), "code": text("Code"), "name": text("Name"), "city": text("City"), "email": text("Email"),
        "vat_number": text("VATNumber"), "kvk": text("ChamberOfCommerce"),
        "is_customer": r.get("IsSales").and_then(Value::as_bool).unwrap_or(false),
        "is_supplier": r.get("IsSupplier").and_then(Value::as_bool).unwrap_or(false),
        "blocked": r.get("Blocked").and_then(Value::as_bool).unwrap_or(false),
    })
}

fn relations_output() -> Value {
    json!({"type": "object", "properties": {
        "division": {"type": "integer"},
        "relations": {"type": "array", "items": {"type": "object", "properties": {
            "id": {"type": "string"}, "code": {"type": "string"}, "name": {"type": "string"}, "city": {"type": "string"},
            "email": {"type": "string"}, "vat_number": {"type": "string"}, "kvk": {"type": "string"},
            "is_customer": {"type": "boolean"}, "is_supplier": {"type": "boolean"}, "blocked": {"type": "boolean"}
        }, "required": ["id", "name"]}},
        "count": {"type": "integer"}, "truncated": {"type": "boolean"}
    }, "required": ["division", "relations", "count", "truncated"]})
}

const ACCOUNT_FIELDS: [&str; 10] = [
    "ID",
    "Code",
    "Name",
    "City",
    "Email",
    "VATNumber",
    "ChamberOfCommerce",
    "IsSales",
    "IsSupplier",
    "Blocked",
];

pub fn relations_definition() -> Value {
    json!({
        "name": "get_relations",
        "title": "Customers and suppliers (relaties)",
        "description": "Lists relations from Exact Online: customers (klanten, debiteuren), suppliers (leveranciers, crediteuren) or both, with code, name, city, e-mail, VAT number (btw-nummer) and Chamber of Commerce number (KvK). Blocked relations are left out unless `active_only` is false.",
        "inputSchema": {"type": "object", "properties": {
            "division": division_schema(),
            "type": {"type": "string", "enum": ["customer", "supplier", "both"], "default": "both"},
            "active_only": {"type": "boolean", "default": true},
            "limit": {"type": "integer", "minimum": 1, "maximum": 1000, "default": 250}
        }, "additionalProperties": false},
        "outputSchema": relations_output(),
        "annotations": read_only(),
    })
}

pub(super) async fn get_relations<P: Platform>(
    ctx: &Bookkeeping<'_, P>,
    args: &Value,
) -> Result<ToolResult, StorageError> {
    let parsed = (|| {
        let a = Args::parse(args, &["division", "type", "active_only", "limit"])?;
        Ok::<_, ToolResult>((
            a.division()?,
            a.choice("type", &["customer", "supplier", "both"])?
                .unwrap_or("both"),
            a.boolean("active_only")?.unwrap_or(true),
            a.int("limit", 1, 1000)?.unwrap_or(250) as usize,
        ))
    })();
    let (division, kind, active_only, limit) = tool_try!(parsed);
    let mut conn = tool_try!(connect(ctx, division).await);
    // crm/Accounts has mandatory filtering; the role filter always applies.
    let role = match kind {
        "customer" => Filter::eq("IsSales", true),
        "supplier" => Filter::eq("IsSupplier", true),
        _ => Filter::eq("IsSales", true).or(Filter::eq("IsSupplier", true)),
    };
    let filter = if active_only {
        role.and(Filter::eq("Blocked", false))
    } else {
        role
    };
    let q = Query::new("crm/Accounts", &ACCOUNT_FIELDS)
        .filter(Some(filter))
        .orderby("Name");
    let listed = tool_try!(conn.list(ctx, &q, limit).await);
    let relations: Vec<Value> = listed.rows.iter().map(relation_json).collect();
    let text = format!(
        "{} relations{}:\n{}",
        relations.len(),
        if listed.truncated {
            " (more exist; raise `limit`)"
        } else {
            ""
        },
        relations
            .iter()
            .map(|r| format!(
                "{} {}",
                r["code"].as_str().unwrap_or(""),
                r["name"].as_str().unwrap_or("")
            ))
            .collect::<Vec<_>>()
            .join("\n")
    );
    Ok(ToolResult::Ok {
        structured: json!({"division": conn.admin.division_code, "relations": relations, "count": listed.rows.len(), "truncated": listed.truncated}),
        text,
        division: Some(conn.admin.division_code),
        exact_calls: conn.client.calls_made(),
    })
}

pub fn search_relations_definition() -> Value {
    json!({
        "name": "search_relations",
        "title": "Find a relation",
        "description": "Finds customers or suppliers (relaties) in Exact Online by part of the name, the relation code, the KvK number or the VAT number (btw-nummer). Use the returned id with other tools.",
        "inputSchema": {"type": "object", "properties": {
            "division": division_schema(),
            "query": {"type": "string", "minLength": 1, "maxLength": 100},
            "search_field": {"type": "string", "enum": ["name", "code", "kvk", "vat"], "default": "name"}
        }, "required": ["query"], "additionalProperties": false},
        "outputSchema": relations_output(),
        "annotations": read_only(),
    })
}

pub(super) async fn search_relations<P: Platform>(
    ctx: &Bookkeeping<'_, P>,
    args: &Value,
) -> Result<ToolResult, StorageError> {
    let parsed = (|| {
        let a = Args::parse(args, &["division", "query", "search_field"])?;
        let query = a.text("query", 100)?.ok_or_else(|| {
            failed(
                "`query` is required: part of a name, a code, a KvK or VAT number.",
                Outcome::InvalidArguments,
            )
        })?;
        Ok::<_, ToolResult>((
            a.division()?,
            query,
            a.choice("search_field", &["name", "code", "kvk", "vat"])?
                .unwrap_or("name"),
        ))
    })();
    let (division, query, field) = tool_try!(parsed);
    let mut conn = tool_try!(connect(ctx, division).await);
    let filter = match field {
        "code" => Filter::contains("Code", query.clone()),
        "kvk" => Filter::eq("ChamberOfCommerce", query.clone()),
        "vat" => Filter::eq("VATNumber", query.replace(' ', "").to_uppercase()),
        _ => Filter::contains("Name", query.clone()),
    };
    let q = Query::new("crm/Accounts", &ACCOUNT_FIELDS)
        .filter(Some(filter))
        .orderby("Name");
    let listed = tool_try!(conn.list(ctx, &q, 50).await);
    let relations: Vec<Value> = listed.rows.iter().map(relation_json).collect();
    let text = if relations.is_empty() {
        format!("No relation matches {query:?} on {field}.")
    } else {
        relations
            .iter()
            .map(|r| {
                format!(
                    "{} {} ({})",
                    r["code"].as_str().unwrap_or(""),
                    r["name"].as_str().unwrap_or(""),
                    r["city"].as_str().unwrap_or("")
                )
            })
            .collect::<Vec<_>>()
            .join("\n")
    };
    Ok(ToolResult::Ok {
        structured: json!({"division": conn.admin.division_code, "relations": relations, "count": listed.rows.len(), "truncated": listed.truncated}),
        text,
        division: Some(conn.admin.division_code),
        exact_calls: conn.client.calls_made(),
    })
}

pub fn revenue_definition() -> Value {
    json!({
        "name": "get_revenue",
        "title": "Revenue per period (omzet)",
        "description": "Revenue (omzet) per period (month) of a financial year from Exact Online, with the year total, and optionally the previous year for comparison (groei).",
        "inputSchema": {"type": "object", "properties": {
            "division": division_schema(),
            "year": {"type": "integer", "minimum": 2000, "maximum": 2100},
            "compare_previous_year": {"type": "boolean", "default": false}
        }, "additionalProperties": false},
        "outputSchema": {"type": "object", "properties": {
            "division": {"type": "integer"}, "year": {"type": "integer"},
            "periods": {"type": "array", "items": {"type": "object", "properties": {"period": {"type": "integer"}, "revenue": {"type": "number"}, "previous_year": {"type": ["number", "null"]}}, "required": ["period", "revenue"]}},
            "total": {"type": "number"}, "previous_year_total": {"type": ["number", "null"]}
        }, "required": ["division", "year", "periods", "total"]},
        "annotations": read_only(),
    })
}

pub(super) async fn get_revenue<P: Platform>(
    ctx: &Bookkeeping<'_, P>,
    args: &Value,
) -> Result<ToolResult, StorageError> {
    let parsed = (|| {
        let a = Args::parse(args, &["division", "year", "compare_previous_year"])?;
        Ok::<_, ToolResult>((
            a.division()?,
            a.int("year", 2000, 2100)?,
            a.boolean("compare_previous_year")?.unwrap_or(false),
        ))
    })();
    let (division, year, compare) = tool_try!(parsed);
    let year = year.unwrap_or_else(|| i64::from(ctx.platform.clock().now().year()));
    let mut conn = tool_try!(connect(ctx, division).await);
    let mut by_year = Vec::new();
    for y in if compare {
        vec![year, year - 1]
    } else {
        vec![year]
    } {
        let q = Query::new("read/financial/RevenueListByYear", &[]).param("year", y.to_string());
        let listed = tool_try!(conn.list(ctx, &q, 100).await);
        let mut per = [0i64; 12];
        for r in &listed.rows {
            let p = r.get("Period").and_then(Value::as_i64).unwrap_or(0);
            if (1..=12).contains(&p) {
                per[(p - 1) as usize] +=
                    (r.get("Amount").and_then(Value::as_f64).unwrap_or(0.0) * 100.0).round() as i64;
            }
        }
        by_year.push(per);
    }
    let cur = by_year[0];
    let prev = by_year.get(1).copied();
    let periods: Vec<Value> = (0..12)
        .map(|i| json!({"period": i + 1, "revenue": cur[i] as f64 / 100.0, "previous_year": prev.map(|p| p[i] as f64 / 100.0)}))
        .collect();
    let total: i64 = cur.iter().sum();
    let prev_total: Option<i64> = prev.map(|p| p.iter().sum());
    let text = match prev_total {
        Some(p) => format!(
            "Revenue {year}: € {:.2} (previous year € {:.2})",
            total as f64 / 100.0,
            p as f64 / 100.0
        ),
        None => format!("Revenue {year}: € {:.2}", total as f64 / 100.0),
    };
    Ok(ToolResult::Ok {
        structured: json!({"division": conn.admin.division_code, "year": year, "periods": periods, "total": total as f64 / 100.0, "previous_year_total": prev_total.map(|p| p as f64 / 100.0)}),
        text,
        division: Some(conn.admin.division_code),
        exact_calls: conn.client.calls_made(),
    })
}

pub fn transactions_definition() -> Value {
    json!({
        "name": "get_transactions",
        "title": "General ledger transactions (boekingen)",
        "description": "Transaction lines (boekingen, mutaties) from the general ledger (grootboek) of Exact Online, filtered by date range, financial year and period, GL account code or journal (dagboek). Amounts in euros, debit positive and credit negative.",
        "inputSchema": {"type": "object", "properties": {
            "division": division_schema(),
            "from_date": {"type": "string", "format": "date"}, "to_date": {"type": "string", "format": "date"},
            "year": {"type": "integer", "minimum": 2000, "maximum": 2100}, "period": {"type": "integer", "minimum": 1, "maximum": 12},
            "gl_account": {"type": "string", "maxLength": 20, "description": "GL account code, e.g. 8000"},
            "journal": {"type": "string", "maxLength": 10, "description": "Journal (dagboek) code, e.g. 70"},
            "limit": {"type": "integer", "minimum": 1, "maximum": 5000, "default": 500}
        }, "additionalProperties": false},
        "outputSchema": {"type": "object", "properties": {
            "division": {"type": "integer"},
            "transactions": {"type": "array", "items": {"type": "object", "properties": {
                "date": {"type": ["string", "null"]}, "entry_number": {"type": ["integer", "null"]}, "journal": {"type": "string"},
                "gl_account": {"type": "string"}, "gl_description": {"type": "string"}, "relation": {"type": ["string", "null"]},
                "description": {"type": "string"}, "amount": {"type": "number"}, "invoice_number": {"type": ["integer", "null"]}
            }, "required": ["gl_account", "amount"]}},
            "count": {"type": "integer"}, "total": {"type": "number"}, "truncated": {"type": "boolean"}
        }, "required": ["division", "transactions", "count", "total", "truncated"]},
        "annotations": read_only(),
    })
}

pub(super) async fn get_transactions<P: Platform>(
    ctx: &Bookkeeping<'_, P>,
    args: &Value,
) -> Result<ToolResult, StorageError> {
    let parsed = (|| {
        let a = Args::parse(
            args,
            &[
                "division",
                "from_date",
                "to_date",
                "year",
                "period",
                "gl_account",
                "journal",
                "limit",
            ],
        )?;
        Ok::<_, ToolResult>((
            a.division()?,
            a.date("from_date")?,
            a.date("to_date")?,
            a.int("year", 2000, 2100)?,
            a.int("period", 1, 12)?,
            a.text("gl_account", 20)?,
            a.text("journal", 10)?,
            a.int("limit", 1, 5000)?.unwrap_or(500) as usize,
        ))
    })();
    let (division, from, to, year, period, gl, journal, limit) = tool_try!(parsed);
    let mut conn = tool_try!(connect(ctx, division).await);
    let mut parts = Vec::new();
    if let Some(d) = from {
        parts.push(Filter::ge("Date", d));
    }
    if let Some(d) = to {
        parts.push(Filter::le("Date", d));
    }
    if let Some(y) = year {
        parts.push(Filter::eq("FinancialYear", y));
    }
    if let Some(p) = period {
        parts.push(Filter::cmp("FinancialPeriod", Cmp::Eq, p));
    }
    if let Some(g) = gl {
        parts.push(Filter::eq("GLAccountCode", g));
    }
    if let Some(j) = journal {
        parts.push(Filter::eq("JournalCode", j));
    }
    let q = Query::new(
        "financialtransaction/TransactionLines",
        &[
            "Date",
            "EntryNumber",
            "JournalCode",
            "GLAccountCode",
            "GLAccountDescription",
            "AccountName",
            "Description",
            "AmountDC",
            "InvoiceNumber",
        ],
    )
    .filter(Filter::all(parts))
    .orderby("Date");
    let listed = tool_try!(conn.list(ctx, &q, limit).await);
    let mut total = 0i64;
    let transactions: Vec<Value> = listed
        .rows
        .iter()
        .map(|r| {
            let c = (r.get("AmountDC").and_then(Value::as_f64).unwrap_or(0.0) * 100.0).round() as i64;
            total += c;
            json!({
                "date": r.get("Date").and_then(Value::as_str).and_then(|d| parse_odata_day(d).ok()).map(|d| d.to_string()),
                "entry_number": r.get("EntryNumber").and_then(Value::as_i64),
                "journal": r.get("JournalCode").and_then(Value::as_str).unwrap_or(""),
                "gl_account": r.get("GLAccountCode").and_then(Value::as_str).unwrap_or("").trim(),
                "gl_description": r.get("GLAccountDescription").and_then(Value::as_str).unwrap_or(""),
                "relation": r.get("AccountName").and_then(Value::as_str),
                "description": r.get("Description").and_then(Value::as_str).unwrap_or(""),
                "amount": c as f64 / 100.0,
                "invoice_number": r.get("InvoiceNumber").and_then(Value::as_i64),
            })
        })
        .collect();
    let text = format!(
        "{} transaction lines, net € {:.2}{}",
        transactions.len(),
        total as f64 / 100.0,
        if listed.truncated {
            "; more exist, narrow the filters or raise `limit`"
        } else {
            ""
        }
    );
    Ok(ToolResult::Ok {
        structured: json!({"division": conn.admin.division_code, "transactions": transactions, "count": listed.rows.len(), "total": total as f64 / 100.0, "truncated": listed.truncated}),
        text,
        division: Some(conn.admin.division_code),
        exact_calls: conn.client.calls_made(),
    })
}
