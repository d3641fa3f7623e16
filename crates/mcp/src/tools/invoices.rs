//! Invoice and bank tools: sales invoices (verkoopfacturen), purchase
//! invoices (inkoopfacturen), each with what is still open, and bank
//! transactions (banktransacties).

use std::collections::BTreeMap;

use boekhouding_core::exact::dates::parse_odata_day;
use boekhouding_core::exact::{Filter, Query};
use boekhouding_core::ports::Clock;
use boekhouding_core::storage::StorageError;
use boekhouding_core::storage::usage::Outcome;
use chrono::Datelike;
use serde_json::{Value, json};

use super::exact::{Args, connect, division_schema, failed, guid_arg, id_schema};
use super::money::cents;
use super::{Bookkeeping, Platform, ToolResult, read_only};

fn day(v: Option<&Value>) -> Option<String> {
    v.and_then(Value::as_str)
        .and_then(|d| parse_odata_day(d).ok())
        .map(|d| d.to_string())
}

/// Which side of the books an invoice tool reads.
struct Side {
    name: &'static str,
    title: &'static str,
    dutch: &'static str,
    path: &'static str,
    open_path: &'static str,
    relation_field: &'static str,
    relation_name: &'static str,
    date_field: &'static str,
    relation_arg: &'static str,
}

const SALES: Side = Side {
    name: "get_sales_invoices",
    title: "Sales invoices (verkoopfacturen)",
    dutch: "verkoopfacturen, customers' invoices",
    path: "salesinvoice/SalesInvoices",
    open_path: "read/financial/ReceivablesList",
    relation_field: "InvoiceTo",
    relation_name: "InvoiceToName",
    date_field: "InvoiceDate",
    relation_arg: "customer_id",
};

const PURCHASES: Side = Side {
    name: "get_purchase_invoices",
    title: "Purchase invoices (inkoopfacturen)",
    dutch: "inkoopfacturen, suppliers' invoices",
    path: "purchaseentry/PurchaseEntries",
    open_path: "read/financial/PayablesList",
    relation_field: "Supplier",
    relation_name: "SupplierName",
    date_field: "EntryDate",
    relation_arg: "supplier_id",
};

fn definition(side: &Side) -> Value {
    json!({
        "name": side.name,
        "title": side.title,
        "description": format!("Invoices from Exact Online ({}) with invoice number, date, relation, amount incl. and VAT (btw) in euros, due date and the amount still open (openstaand). Filter by status open/paid, relation and date range.", side.dutch),
        "inputSchema": {"type": "object", "properties": {
            "division": division_schema(),
            "status": {"type": "string", "enum": ["open", "paid", "all"], "default": "all"},
            side.relation_arg: id_schema("Relation id (GUID) from get_relations or search_relations."),
            "from_date": {"type": "string", "format": "date"}, "to_date": {"type": "string", "format": "date"},
            "limit": {"type": "integer", "minimum": 1, "maximum": 1000, "default": 250}
        }, "additionalProperties": false},
        "outputSchema": {"type": "object", "properties": {
            "division": {"type": "integer"},
            "invoices": {"type": "array", "items": {"type": "object", "properties": {
                "invoice_number": {"type": ["integer", "null"]}, "date": {"type": ["string", "null"]}, "relation": {"type": "string"},
                "relation_id": {"type": "string"}, "amount": {"type": "number"}, "vat": {"type": "number"},
                "due_date": {"type": ["string", "null"]}, "open_amount": {"type": "number"}, "paid": {"type": "boolean"}
            }, "required": ["amount", "open_amount", "paid"]}},
            "count": {"type": "integer"}, "total": {"type": "number"}, "open_total": {"type": "number"}, "truncated": {"type": "boolean"}
        }, "required": ["division", "invoices", "count", "total", "open_total", "truncated"]},
        "annotations": read_only(),
    })
}

pub fn sales_definition() -> Value {
    definition(&SALES)
}

pub fn purchase_definition() -> Value {
    definition(&PURCHASES)
}

pub(super) async fn get_invoices<P: Platform>(
    ctx: &Bookkeeping<'_, P>,
    args: &Value,
    purchases: bool,
) -> Result<ToolResult, StorageError> {
    let side = if purchases { &PURCHASES } else { &SALES };
    let parsed = (|| {
        let a = Args::parse(
            args,
            &[
                "division",
                "status",
                side.relation_arg,
                "from_date",
                "to_date",
                "limit",
            ],
        )?;
        Ok::<_, ToolResult>((
            a.division()?,
            a.choice("status", &["open", "paid", "all"])?
                .unwrap_or("all"),
            guid_arg(&a, side.relation_arg)?,
            a.date("from_date")?,
            a.date("to_date")?,
            a.int("limit", 1, 1000)?.unwrap_or(250) as usize,
        ))
    })();
    let (division, status, relation, from, to, limit) = tool_try!(parsed);
    let mut conn = tool_try!(connect(ctx, division).await);
    // What is open, per (relation, invoice number).
    let open = match conn
        .list(
            ctx,
            &Query::new(side.open_path, &["AccountId", "InvoiceNumber", "Amount"]),
            50_000,
        )
        .await
    {
        Ok(l) => l,
        Err(r) => return Ok(r),
    };
    let mut open_by: BTreeMap<(String, i64), i64> = BTreeMap::new();
    for r in &open.rows {
        let key = (
            r.get("AccountId")
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_owned(),
            r.get("InvoiceNumber").and_then(Value::as_i64).unwrap_or(0),
        );
        *open_by.entry(key).or_default() += cents(r.get("Amount"));
    }
    let mut parts = Vec::new();
    if let Some(g) = relation {
        parts.push(Filter::eq(side.relation_field, g));
    }
    if let Some(d) = from {
        parts.push(Filter::ge(side.date_field, d));
    }
    if let Some(d) = to {
        parts.push(Filter::le(side.date_field, d));
    }
    let q = Query::new(
        side.path,
        &[
            "InvoiceNumber",
            side.date_field,
            side.relation_field,
            side.relation_name,
            "AmountDC",
            "VATAmountDC",
            "DueDate",
        ],
    )
    .filter(Filter::all(parts))
    .orderby(side.date_field);
    // Status is known only after joining with the open items, so read all
    // matches (bounded) and cap after filtering.
    let listed = tool_try!(conn.list(ctx, &q, 20_000).await);
    let mut invoices = Vec::new();
    let (mut total, mut open_total) = (0i64, 0i64);
    for r in &listed.rows {
        let relation_id = r
            .get(side.relation_field)
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_owned();
        let number = r.get("InvoiceNumber").and_then(Value::as_i64);
        let open_amount = number
            .and_then(|n| open_by.get(&(relation_id.clone(), n)))
            .copied()
            .unwrap_or(0);
        let paid = open_amount == 0;
        if (status == "open" && paid) || (status == "paid" && !paid) {
            continue;
        }
        let amount = cents(r.get("AmountDC"));
        total += amount;
        open_total += open_amount;
        invoices.push(json!({
            "invoice_number": number, "date": day(r.get(side.date_field)), "relation": r.get(side.relation_name).and_then(Value::as_str).unwrap_or(""),
            "relation_id": relation_id, "amount": amount as f64 / 100.0, "vat": cents(r.get("VATAmountDC")) as f64 / 100.0,
            "due_date": day(r.get("DueDate")), "open_amount": open_amount as f64 / 100.0, "paid": paid,
        }));
    }
    let truncated = invoices.len() > limit || listed.truncated;
    invoices.truncate(limit);
    let text = format!(
        "{} invoices, total € {:.2}, still open € {:.2}{}",
        invoices.len(),
        total as f64 / 100.0,
        open_total as f64 / 100.0,
        if truncated {
            "; more exist (raise `limit` or narrow the dates)"
        } else {
            ""
        }
    );
    Ok(ToolResult::Ok {
        structured: json!({"division": conn.admin.division_code, "count": invoices.len(), "total": total as f64 / 100.0, "open_total": open_total as f64 / 100.0, "truncated": truncated, "invoices": invoices}),
        text,
        division: Some(conn.admin.division_code),
        exact_calls: conn.client.calls_made(),
    })
}

pub fn bank_definition() -> Value {
    json!({
        "name": "get_bank_transactions",
        "title": "Bank transactions (banktransacties)",
        "description": "Bank statement lines (bankmutaties, afschriften) booked in Exact Online for a date range: date, amount (received positive, paid negative), relation, description and the account it was booked to. Defaults to the current month.",
        "inputSchema": {"type": "object", "properties": {
            "division": division_schema(),
            "from_date": {"type": "string", "format": "date"}, "to_date": {"type": "string", "format": "date"},
            "limit": {"type": "integer", "minimum": 1, "maximum": 5000, "default": 1000}
        }, "additionalProperties": false},
        "outputSchema": {"type": "object", "properties": {
            "division": {"type": "integer"}, "from_date": {"type": "string"}, "to_date": {"type": "string"},
            "transactions": {"type": "array", "items": {"type": "object", "properties": {
                "date": {"type": ["string", "null"]}, "amount": {"type": "number"}, "relation": {"type": ["string", "null"]},
                "description": {"type": "string"}, "gl_account": {"type": "string"}
            }, "required": ["amount"]}},
            "count": {"type": "integer"}, "received": {"type": "number"}, "paid": {"type": "number"}, "net": {"type": "number"}, "truncated": {"type": "boolean"}
        }, "required": ["division", "transactions", "count", "received", "paid", "net", "truncated"]},
        "annotations": read_only(),
    })
}

pub(super) async fn get_bank_transactions<P: Platform>(
    ctx: &Bookkeeping<'_, P>,
    args: &Value,
) -> Result<ToolResult, StorageError> {
    let today = ctx.platform.clock().now().date_naive();
    let parsed = (|| {
        let a = Args::parse(args, &["division", "from_date", "to_date", "limit"])?;
        Ok::<_, ToolResult>((
            a.division()?,
            a.date("from_date")?,
            a.date("to_date")?,
            a.int("limit", 1, 5000)?.unwrap_or(1000) as usize,
        ))
    })();
    let (division, from, to, limit) = tool_try!(parsed);
    let from = from.unwrap_or_else(|| today.with_day(1).unwrap_or(today));
    let to = to.unwrap_or(today);
    if from > to {
        return Ok(failed(
            "`from_date` must not be after `to_date`.",
            Outcome::InvalidArguments,
        ));
    }
    let mut conn = tool_try!(connect(ctx, division).await);
    let q = Query::new(
        "financialtransaction/BankEntryLines",
        &[
            "Date",
            "AmountDC",
            "AccountName",
            "Description",
            "GLAccountCode",
        ],
    )
    .filter(Some(Filter::ge("Date", from).and(Filter::le("Date", to))))
    .orderby("Date");
    let listed = tool_try!(conn.list(ctx, &q, limit).await);
    let (mut received, mut paid) = (0i64, 0i64);
    let transactions: Vec<Value> = listed
        .rows
        .iter()
        .map(|r| {
            let c = cents(r.get("AmountDC"));
            if c >= 0 {
                received += c;
            } else {
                paid -= c;
            }
            json!({"date": day(r.get("Date")), "amount": c as f64 / 100.0, "relation": r.get("AccountName").and_then(Value::as_str),
                   "description": r.get("Description").and_then(Value::as_str).unwrap_or(""), "gl_account": r.get("GLAccountCode").and_then(Value::as_str).unwrap_or("")})
        })
        .collect();
    let text = format!(
        "{} bank lines {from} to {to}: received € {:.2}, paid € {:.2}, net € {:.2}",
        transactions.len(),
        received as f64 / 100.0,
        paid as f64 / 100.0,
        (received - paid) as f64 / 100.0
    );
    Ok(ToolResult::Ok {
        structured: json!({"division": conn.admin.division_code, "from_date": from.to_string(), "to_date": to.to_string(), "transactions": transactions,
            "count": listed.rows.len(), "received": received as f64 / 100.0, "paid": paid as f64 / 100.0, "net": (received - paid) as f64 / 100.0, "truncated": listed.truncated}),
        text,
        division: Some(conn.admin.division_code),
        exact_calls: conn.client.calls_made(),
    })
}
